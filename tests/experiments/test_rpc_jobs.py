"""`lavsim rpc --jobs N`: the table's measurements spread over forked workers
(:mod:`lavsim.experiments.forked`) give the same table, CSV and JSON as one process; a worker
that fails or dies is reported in one line, and progress still counts every measurement.

The pool forks only from a process with no other thread (else it runs the jobs in the process
itself), and an earlier test of the suite (Dask's) leaves a thread behind: so each case that
needs real workers runs here when this process may fork, else alone in a fresh interpreter
(:func:`_with_workers`)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lavsim.cli import main
from lavsim.errors import ConfigError, LavsimError
from lavsim.experiments import forked, rpc
from lavsim.experiments.forked import can_fork, run_forked
from lavsim.experiments.rpc import CallCost, rpc_table
from lavsim.experiments.workload import Workload

#: A small table that still has both profiles, two sizes either side of the gate's limit, every
#: mechanism and the remote rows.
SMALL = {"profiles": ("i486", "pentium"), "sizes": (0, 256), "calls": 3}


def _with_workers(case: Callable[[], None]) -> None:
    """Run ``case`` (a function of this module) where workers can really be forked."""
    if can_fork():
        case()
        return
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import {Path(__file__).stem} as t; t.{case.__name__}()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-4000:]


@contextlib.contextmanager
def _measure_call_replaced(fake: Callable[..., CallCost]) -> Iterator[None]:
    real = rpc.measure_call
    rpc.measure_call = fake  # type: ignore[assignment]
    try:
        yield
    finally:
        rpc.measure_call = real


def _same_for_one_and_two_workers() -> None:
    serial = rpc_table(**SMALL, jobs=1)  # type: ignore[arg-type]
    pooled = rpc_table(**SMALL, jobs=2)  # type: ignore[arg-type]
    assert len(pooled.costs) == 2 * 2 * len(rpc.MECHANISMS) and len(pooled.remote) == 4
    assert pooled.to_text() == serial.to_text()
    assert pooled.to_csv() == serial.to_csv()
    assert pooled.to_json() == serial.to_json()


def test_the_table_csv_and_json_are_the_same_for_one_and_two_workers() -> None:
    _with_workers(_same_for_one_and_two_workers)


def test_a_job_count_below_one_is_refused_naming_the_option(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rpc", "--jobs", "0", "--no-progress", "--no-remote", "--sizes", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lavsim rpc: error: argument --jobs: must be an integer of at least 1, got 0")
    with pytest.raises(ConfigError, match="jobs"):
        rpc_table(sizes=(0,), jobs=True)


def _worker_dies() -> None:
    here = os.getpid()
    real = rpc.measure_call

    def dies_at_16(mech: rpc.Mechanism | str, work: Workload | None = None) -> CallCost:
        if work is not None and work.size == 16:
            assert os.getpid() != here, "the measurement ran in the parent"
            os._exit(3)  # as a worker killed by the OOM killer would vanish
        return real(mech, work)

    out, err = io.StringIO(), io.StringIO()
    with (_measure_call_replaced(dies_at_16), contextlib.redirect_stdout(out),
          contextlib.redirect_stderr(err)):
        status = main(["rpc", "--jobs", "2", "--profile", "i486", "--sizes", "0,16",
                       "--calls", "2", "--no-remote", "--no-progress"])
    text = err.getvalue()
    assert status == 1 and out.getvalue() == ""
    assert text.startswith("lavsim: a worker process died") and text.count("\n") == 1, text
    assert "Traceback" not in text


def test_a_worker_that_dies_is_reported_in_one_line_not_a_hang() -> None:
    _with_workers(_worker_dies)


def _measurement_fails() -> None:
    real = rpc.measure_call

    def fails(mech: rpc.Mechanism | str, work: Workload | None = None) -> CallCost:
        if work is not None and work.size == 16:
            raise LavsimError("the client never reached its breakpoint")
        return real(mech, work)

    with _measure_call_replaced(fails), pytest.raises(
            LavsimError, match=r"^i486 .* 16 B: the client never reached its"):
        rpc_table(("i486",), (0, 16), calls=2, remote=False, jobs=2)


def test_a_measurement_that_fails_in_a_worker_is_named_with_its_reason() -> None:
    _with_workers(_measurement_fails)


def _progress_counts() -> None:
    seen: list[tuple[int, int, str]] = []
    rpc_table(("i486",), (0, 16), calls=2, jobs=2,
              progress=lambda done, total, what: seen.append((done, total, what)))
    total = 2 * len(rpc.MECHANISMS) + 2  # the remote rows count 2
    assert seen[-1] == (total, total, "done")
    counts = [done for done, _, _ in seen[:-1]]
    assert counts == sorted(counts) and counts[-1] == total and len(counts) == total - 1
    labels = {what for _, _, what in seen[:-1]}
    assert "i486 remote call and shipping" in labels
    assert {f"i486 {m.label} {s} B" for m in rpc.MECHANISMS.values() for s in (0, 16)} <= labels


def test_progress_counts_every_measurement_once_with_workers() -> None:
    _with_workers(_progress_counts)


def _results_in_order() -> None:
    jobs = [lambda k=k: (k, os.getpid()) for k in range(7)]
    results = run_forked(jobs, 2, chunks=[[6, 0], [3], [5, 1, 2], [4]])
    assert [k for k, _ in results] == list(range(7))
    assert all(pid != os.getpid() for _, pid in results)  # really ran in workers


def test_forked_results_come_back_in_job_order_whatever_the_chunks() -> None:
    _with_workers(_results_in_order)


def _fails() -> int:
    raise LavsimError("the first job failed")


def _failure_stops_the_others() -> None:
    start = time.monotonic()
    with pytest.raises(LavsimError, match="job 0: the first job failed"):
        run_forked([_fails, lambda: time.sleep(30)], 2)
    assert time.monotonic() - start < 15


def test_a_failure_stops_the_other_workers_at_once() -> None:
    _with_workers(_failure_stops_the_others)


def test_chunks_must_cover_every_job_once() -> None:
    with pytest.raises(ValueError, match="exactly once"):
        run_forked([lambda: 1, lambda: 2], 2, chunks=[[0], [0]])


def test_with_another_thread_running_the_jobs_run_here_in_order() -> None:
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert not can_fork()
        order: list[int] = []
        results = run_forked([lambda k=k: os.getpid() for k in range(3)], 2, done=order.append)
    finally:
        stop.set()
        helper.join()
    assert results == [os.getpid()] * 3 and order == [0, 1, 2]


def test_workers_that_cannot_start_are_reported_in_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class NoFork(forked.cf.ProcessPoolExecutor):
        def submit(self, *args: object, **kwargs: object) -> forked.cf.Future[object]:
            raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(forked.cf, "ProcessPoolExecutor", NoFork)
    monkeypatch.setattr(forked, "can_fork", lambda: True)  # nothing forks: submit fails first
    with pytest.raises(LavsimError, match=r"^cannot start 2 worker processes \(.*Resource"):
        run_forked([lambda: 1, lambda: 2], 2)
