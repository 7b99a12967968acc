"""Independent jobs run in forked worker processes, their results handed back in job order.

:func:`run_forked` is the ``lavsim rpc`` table's pool (``--jobs N``). Workers are *forked*
from this process after it has warmed what they all need (the assembled kernel, say), so they
start with its caches and its state exactly: a job is a plain callable that is never pickled
(only its result is), and a CPU model read from a file or a model a test replaced in place is
the same in every worker. Where fork is not safe (no ``fork`` start method, or other threads
running, whose held locks a fork would copy) the jobs run here, one after the other: the
results are the same either way.

A job that raises comes back as a :class:`~lavsim.errors.LavsimError` carrying its message (a
:class:`LavsimError` from the job keeps its text; anything else is named with its type and the
line that raised it); a worker that dies (killed, out of memory) is reported as one, naming a
job it did not finish. Either way the jobs not started are cancelled: nothing hangs.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from lavsim.errors import ConfigError, LavsimError

__all__ = ["can_fork", "check_jobs", "run_forked"]

#: The jobs of the pool being started: set before the workers fork, read by index in them.
_JOBS: Sequence[Callable[[], Any]] = ()


def check_jobs(jobs: object) -> int:
    """``jobs`` as a worker count (:class:`ConfigError` naming ``jobs`` unless an int >= 1)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError("jobs", f"must be an integer of at least 1, got {jobs!r}")
    return jobs


def can_fork() -> bool:
    """Whether workers can be forked safely from this process now."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _quiet() -> None:
    # Ctrl-C reaches every process of the group: the parent cancels, the workers just finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LavsimError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}{where}"


def _run_chunk(chunk: tuple[int, ...]) -> list[tuple[int, bool, Any]]:
    """In a worker: run the jobs of ``chunk``; each gives (index, ok, result or message)."""
    out: list[tuple[int, bool, Any]] = []
    for index in chunk:
        try:
            out.append((index, True, _JOBS[index]()))
        except Exception as exc:
            out.append((index, False, _describe(exc)))
            break  # the caller stops at the first failure, as a serial run would
    return out


def run_forked(
    jobs: Sequence[Callable[[], Any]],
    workers: int,
    *,
    chunks: Sequence[Sequence[int]] | None = None,
    labels: Sequence[str] | None = None,
    done: Callable[[int], None] | None = None,
) -> list[Any]:
    """Run every job and return their results in job order.

    ``chunks`` groups job indices that one worker runs together, in the order they are handed
    out (put the longest first; default: one chunk per job, in order); every index must be in
    exactly one chunk. ``done(index)`` is called here as each job's result arrives. With
    ``workers`` 1, one job, or no safe fork, the jobs run in this process in job order and an
    exception propagates unchanged. ``labels`` name the jobs in error messages."""
    workers = check_jobs(workers)
    parts = [tuple(c) for c in chunks] if chunks is not None else [(k,) for k in range(len(jobs))]
    if sorted(k for c in parts for k in c) != list(range(len(jobs))):
        raise ValueError("chunks must hold every job index exactly once")
    names = list(labels) if labels is not None else [f"job {k}" for k in range(len(jobs))]
    if workers == 1 or len(parts) <= 1 or not can_fork():
        results = []
        for k, job in enumerate(jobs):
            results.append(job())
            if done is not None:
                done(k)
        return results
    global _JOBS
    _JOBS = jobs
    got: dict[int, Any] = {}
    # What the workers inherit is never garbage to them: keep their collector off it (and
    # their copies of its pages untouched).
    gc.freeze()
    pool = cf.ProcessPoolExecutor(max_workers=min(workers, len(parts)),
                                  mp_context=multiprocessing.get_context("fork"),
                                  initializer=_quiet)
    try:
        try:
            futures = {pool.submit(_run_chunk, c): c for c in parts}
        except OSError as error:  # no fork: a process limit, or no memory to copy this one
            raise LavsimError(f"cannot start {workers} worker processes ({error}); --jobs 1 "
                              "runs every measurement in this process") from None
        for future in cf.as_completed(futures):
            try:
                answers = future.result()
            except BrokenProcessPool:
                unfinished = [k for k in futures[future] if k not in got]
                raise LavsimError(
                    f"a worker process died (killed, or out of memory?) before it finished "
                    f"{names[unfinished[0]] if unfinished else 'its jobs'}; nothing was "
                    f"printed (--jobs 1 runs every measurement in this process)"
                ) from None
            for index, ok, value in answers:
                if not ok:
                    raise LavsimError(f"{names[index]}: {value}")
                got[index] = value
                if done is not None:
                    done(index)
    except BaseException:
        # Ctrl-C, or a job failed: what the other workers are running is of no use now, so
        # stop them rather than wait (the pool has no public way to; Python 3.14 adds one).
        processes = getattr(pool, "_processes", None) or {}
        for process in list(processes.values()):
            process.terminate()
        raise
    finally:
        _JOBS = ()
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()
    return [got[k] for k in range(len(jobs))]
