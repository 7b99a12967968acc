"""Engines that measure an experiment's points (issue 18), and :func:`run_experiment`.

Every point is independent and deterministic (:func:`~lavsim.experiments.rpc.measure_call` is a
pure function of the mechanism and the workload), so the engines only differ in where
:func:`run_point` runs:

- :class:`SerialEngine`: in this process, one after the other;
- :class:`PoolEngine`: a local process pool (``concurrent.futures``), ``jobs`` processes;
- :class:`DaskEngine`: a Dask distributed cluster (the optional extra ``lavsim[dist]``).

Each outcome carries the :func:`~lavsim.experiments.store.code_version` of the process that
measured it; :func:`run_experiment` refuses (as a failed point, never stored) an outcome from a
worker whose lavsim differs from its own. It puts the points back in grid order, so the result
is the same, bit for bit, whichever engine and however many workers ran it. A point that
raises is recorded as failed with its reason and the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import copyreg
import multiprocessing
import multiprocessing.context
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import attrs

from lavsim.errors import ConfigError
from lavsim.experiments.experiment import Experiment, ExperimentResult, PointResult
from lavsim.experiments.mechanisms import mechanism
from lavsim.experiments.rpc import CallCost, measure_call
from lavsim.experiments.store import (
    Store,
    code_version,
    decode_figures,
    encode_figures,
    point_key,
)
from lavsim.experiments.workload import Workload

__all__ = [
    "DaskEngine",
    "Engine",
    "Outcome",
    "PoolEngine",
    "Reporter",
    "SerialEngine",
    "Task",
    "default_jobs",
    "make_engine",
    "run_experiment",
    "run_point",
]


def _mappingproxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


# A CPU model's timing profile keeps its costs in a read-only mapping, which pickle cannot
# carry; a model loaded from a file must travel to the workers, so teach pickle to rebuild it.
copyreg.pickle(MappingProxyType, lambda m: (_mappingproxy, (dict(m),)))


@attrs.frozen
class Task:
    """One point to measure: its store key, the mechanism's key and the workload."""

    index: int
    key: str
    mechanism: str
    workload: Workload


@attrs.frozen
class Outcome:
    """What measuring a task gave: the figures (JSON, :func:`encode_figures`) or the reason it
    failed, the measuring process's lavsim version, the seconds it took, and where it ran."""

    index: int
    key: str
    result: str | None
    error: str | None
    version: str
    seconds: float
    worker: str


def run_point(task: Task) -> Outcome:
    """Measure one task (in whichever process the engine chose); never raises."""
    start = time.perf_counter()
    result = error = None
    try:
        cost = measure_call(task.mechanism, task.workload)
        result = encode_figures(cost.cold, cost.warm, cost.samples)
    except Exception as exc:  # a harness bug or a guest that never reaches its measurement
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())} " \
                f"({os.path.basename(frame.filename)}:{frame.lineno})"
    return Outcome(task.index, task.key, result, error, code_version(),
                   time.perf_counter() - start, f"{socket.gethostname()}:{os.getpid()}")


class Engine(Protocol):
    """Runs tasks and yields their outcomes as they finish (in any order)."""

    name: str

    def map(self, tasks: Sequence[Task]) -> Iterator[Outcome]: ...


class SerialEngine:
    """Every task in this process, in order."""

    name = "serial"

    def map(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        for task in tasks:
            yield run_point(task)


def default_jobs() -> int:
    """All the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _failed(task: Task, reason: str) -> Outcome:
    # A reason is one line (some of Dask's messages run to several).
    line = " ".join(reason.split())
    return Outcome(task.index, task.key, None, line[:300], code_version(), 0.0, "-")


def _context() -> multiprocessing.context.BaseContext:
    # Forking copies this process's warm caches (assembled guest code), so workers start at
    # once; but forking a process with other threads running (a Dask client, say) can copy a
    # held lock, so then start workers from a fresh server process instead.
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class PoolEngine:
    """A pool of ``jobs`` local processes."""

    name = "local"

    def __init__(self, jobs: int | None = None) -> None:
        jobs = default_jobs() if jobs is None else jobs
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ConfigError("jobs", f"must be an integer of at least 1, got {jobs!r}")
        self.jobs = jobs

    def map(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        if not tasks:
            return
        if self.jobs == 1 or len(tasks) == 1:  # a pool would only add its start-up
            yield from SerialEngine().map(tasks)
            return
        with cf.ProcessPoolExecutor(max_workers=min(self.jobs, len(tasks)),
                                    mp_context=_context()) as pool:
            futures = {pool.submit(run_point, t): t for t in tasks}
            for future in cf.as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # the worker process died
                    yield _failed(futures[future], f"worker lost: {type(exc).__name__}: {exc}")


class DaskEngine:
    """A Dask distributed cluster: a scheduler's ``address`` (``tcp://host:8786``) or a
    ``distributed.Client`` already connected. The workers need lavsim installed, the same
    version (checked per point)."""

    name = "dask"

    def __init__(self, address: str | None = None, client: Any = None) -> None:
        try:
            import distributed
        except ImportError:
            raise ConfigError("engine", "dask needs the optional extra: pip install "
                              "'lavsim[dist]'") from None
        self._distributed = distributed
        if client is None:
            if not address:
                raise ConfigError("scheduler", "the dask engine needs a scheduler address "
                                  "(tcp://HOST:8786)")
            try:
                client = distributed.Client(address, timeout=10)  # type: ignore[no-untyped-call]
            except OSError as exc:
                raise ConfigError("scheduler", f"cannot reach {address}: {exc}") from None
            self._own = True
        else:
            self._own = False
        self.client = client

    def worker_versions(self) -> dict[str, str]:
        """Each worker's lavsim version, by worker address."""
        return dict(self.client.run(code_version))

    def map(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        if not tasks:
            return
        futures = self.client.map(run_point, list(tasks), pure=False)
        by_future = dict(zip(futures, tasks, strict=True))
        try:
            done = self._distributed.as_completed(futures)  # type: ignore[no-untyped-call]
            for future in done:
                try:
                    yield future.result()
                except Exception as exc:  # lost worker, or one that cannot import lavsim
                    yield _failed(by_future[future], f"dask: {type(exc).__name__}: {exc}")
        finally:
            if self._own:
                self.client.close()


def make_engine(name: str = "local", *, jobs: int | None = None,
                scheduler: str | None = None) -> Engine:
    """The engine called ``name``: ``local`` (``jobs`` processes, 1: serial) or ``dask``."""
    if name == "local":
        return PoolEngine(jobs)
    if name == "dask":
        return DaskEngine(scheduler)
    raise ConfigError("engine", f"one of local, dask, not {name!r}")


class Reporter(Protocol):
    """Told how a run goes (see :mod:`lavsim.experiments.progress`)."""

    def start(self, total: int, reused: int) -> None: ...

    def point(self, label: str, error: str | None) -> None: ...

    def finish(self) -> None: ...


def _cost(mech: str, work: Workload, result: str) -> CallCost:
    cold, warm, samples = decode_figures(result)
    return CallCost(mechanism=mechanism(mech), workload=work, cold=cold, warm=warm,
                    samples=samples)


def run_experiment(
    experiment: Experiment,
    engine: Engine | None = None,
    *,
    store: Store | None = None,
    progress: Reporter | None = None,
    expected_version: str | None = None,
) -> ExperimentResult:
    """Measure every point of ``experiment`` on ``engine`` (default: serial in this process)
    and return them in grid order. Points found in ``store`` are read back, not measured; each
    point measured is written to it as it finishes. An outcome from a process whose lavsim is
    not ``expected_version`` (default: this one's) is refused as a failed point."""
    engine = engine or SerialEngine()
    expected = expected_version or code_version()
    points = experiment.points
    keys = [point_key(p.mechanism, p.workload) for p in points]
    stored = store.lookup(keys) if store is not None else {}
    results: dict[str, str] = dict(stored)
    errors: dict[str, str] = {}
    tasks: dict[str, Task] = {}
    for point, key in zip(points, keys, strict=True):
        if key not in results and key not in tasks:
            tasks[key] = Task(point.index, key, point.mechanism, point.workload)
    reused = sum(1 for k in keys if k in stored)
    if progress is not None:
        progress.start(len(points), reused)
    computed = 0
    label = {k: p.label() for p, k in zip(points, keys, strict=True)}
    for outcome in engine.map(list(tasks.values())):
        error = outcome.error
        if error is None and outcome.version != expected:
            error = f"refused: worker {outcome.worker} runs {outcome.version}, not {expected}"
        if error is None and outcome.result is not None:
            results[outcome.key] = outcome.result
            computed += 1
            if store is not None:
                task = tasks[outcome.key]
                store.put(outcome.key, experiment=experiment.name, index=task.index,
                          mechanism=task.mechanism, label=label[outcome.key],
                          workload=task.workload, result=outcome.result,
                          seconds=outcome.seconds, worker=outcome.worker)
        else:
            errors[outcome.key] = error or "no result"
        if progress is not None:
            progress.point(label[outcome.key], errors.get(outcome.key))
    if progress is not None:
        progress.finish()
    out = []
    for point, key in zip(points, keys, strict=True):
        if key in results:
            out.append(PointResult(point, _cost(point.mechanism, point.workload, results[key]),
                                   rows=experiment.rows))
        else:
            out.append(PointResult(point, None, errors.get(key, "not run"),
                                   rows=experiment.rows))
    return ExperimentResult(experiment, tuple(out), computed=computed, reused=reused)

