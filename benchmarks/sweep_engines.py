"""What the sweep engines cost and gain (issue 18), on one grid of experiment points:

1. serial (``--jobs 1``) against a local process pool of ``--jobs`` processes (default 2): the
   wall-clock speed-up, pool start-up included (what ``lavsim sweep --jobs 2`` gains);
2. a Dask ``LocalCluster`` on the loopback (worker processes, one thread each): the overhead
   per point, measured two ways: the wall time per point of one Dask worker less that of the
   serial run, and the round trip of a task that does nothing (submit, schedule, run, send the
   result back). Cluster start-up and the first run on fresh workers are printed separately;
   a real cluster starts once.

Every engine's table is checked to be the serial one, byte for byte. The host is shared (other
processes load the cores while this runs), so the figures vary from run to run; the load
average is printed beside them.

Run: ``python benchmarks/sweep_engines.py [--points N] [--jobs J] [--no-dask]``.
"""

from __future__ import annotations

import argparse
import os
import time

from lavsim.experiments.engines import (
    DaskEngine,
    Engine,
    PoolEngine,
    SerialEngine,
    run_experiment,
)
from lavsim.experiments.experiment import Experiment, ExperimentResult
from lavsim.experiments.mechanisms import MECHANISMS
from lavsim.experiments.workload import Workload


def grid(points: int) -> Experiment:
    """``points`` points (rounded up to whole rows): sizes x 0..2 other threads x the RPC
    table's five mechanisms."""
    per_size = 3 * len(MECHANISMS)
    sizes = tuple(range(0, 4 * ((points + per_size - 1) // per_size), 4))
    return Experiment(
        name="bench", base=Workload(calls=8),
        axes=(("size", sizes), ("other_threads", (0, 1, 2)), ("mechanism", tuple(MECHANISMS))),
    )  # fmt: skip


def timed(experiment: Experiment, engine: Engine) -> tuple[float, ExperimentResult]:
    start = time.perf_counter()
    result = run_experiment(experiment, engine)
    return time.perf_counter() - start, result


def _nothing(x: int) -> int:
    return x


def dask_figures(experiment: Experiment, serial_time: float, reference: str) -> None:
    from distributed import Client, LocalCluster

    n = len(experiment.points)
    for workers in (1, 2):
        start = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            up = time.perf_counter() - start
            engine = DaskEngine(client=client)
            first, result = timed(experiment, engine)
            assert result.to_csv() == reference, "dask differs from serial"
            # Again on the same (now warm) workers: a fresh worker process first imports
            # lavsim and assembles the guest sources, once, which a long sweep amortises.
            wall, result = timed(experiment, engine)
            assert result.to_csv() == reference, "dask differs from serial"
            trivial = client.map(_nothing, range(n), pure=False)
            client.gather(trivial)  # warm: the function is shipped once
            start = time.perf_counter()
            client.gather(client.map(_nothing, range(n, 2 * n), pure=False))
            empty = time.perf_counter() - start
        print(f"dask, {workers} worker(s): cluster start {up:.2f} s; {n} points in {first:.2f} s "
              f"on fresh workers, {wall:.2f} s on warm ones ({1000 * wall / n:.1f} ms/point, "
              f"speed-up {serial_time / wall:.2f}x over serial)")
        if workers == 1:
            print(f"  overhead per point against serial (warm): "
                  f"{1000 * (wall - serial_time) / n:+.1f} ms; an empty task's round trip: "
                  f"{1000 * empty / n:.2f} ms/task ({n} tasks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-dask", dest="dask", action="store_false")
    args = parser.parse_args()
    experiment = grid(args.points)
    n = len(experiment.points)
    print(f"grid: {n} points (calls=8 each); cores {os.cpu_count()}, load average "
          f"{os.getloadavg()[0]:.2f} at start")
    serial_time, serial = timed(experiment, SerialEngine())
    reference = serial.to_csv()
    print(f"serial: {serial_time:.2f} s ({1000 * serial_time / n:.1f} ms/point)")
    pool_time, pooled = timed(experiment, PoolEngine(args.jobs))
    assert pooled.to_csv() == reference, "the pool differs from serial"
    print(f"--jobs {args.jobs}: {pool_time:.2f} s, speed-up {serial_time / pool_time:.2f}x "
          "over serial")
    if args.dask:
        dask_figures(experiment, serial_time, reference)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
