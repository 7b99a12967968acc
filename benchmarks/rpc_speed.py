"""The main job's speed (issue 15): the wall time of ``lavsim rpc`` with its default arguments,
beside the MIPS of a pure-Python interpreter floor measured in the same run, and their product
(wall seconds x floor MIPS: how many floor instructions the job costs, in millions; it does not
depend on how fast the host is, so runs on different hosts or under different loads compare).
The issue's target is a product of at most 15.

    python benchmarks/rpc_speed.py [--runs N] [--in-process] [-- extra lavsim rpc arguments]

``lavsim rpc`` runs in a fresh interpreter by default (imports and all, as a user starts it);
``--in-process`` runs it in this one (an import already made costs nothing then). The floor
is measured before and after the job and the higher figure is kept (the host's speed as the
job saw it; another process on the host slows both). ``lavsim rpc`` runs on every core by
default (``-- --jobs 1``: one process) and reads assembled guest code from its cache on disk
(``LAVSIM_CACHE_DIR``; the first run after a change to the guest sources assembles them:
``LAVSIM_CACHE=0`` measures that case every time).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import time

import floorref  # the same-run floor, beside this script


def floor_mips(seconds: float = 1.5) -> float:
    """The floor's MIPS (:mod:`floorref`), in wall time like the job."""
    return floorref.floor_mips(seconds)


def rpc_wall(extra: list[str], in_process: bool) -> float:
    """Seconds of one ``lavsim rpc`` (output discarded; a failure raises)."""
    args = ["rpc", "--no-progress", *extra]
    t0 = time.perf_counter()
    if in_process:
        from lavsim.cli import main

        with contextlib.redirect_stdout(io.StringIO()):
            if main(args) != 0:
                raise SystemExit("lavsim rpc failed")
    else:
        subprocess.run([sys.executable, "-m", "lavsim", *args], check=True,
                       stdout=subprocess.DEVNULL, env=os.environ.copy())
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs of lavsim rpc (default 1)")
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("extra", nargs="*", help="arguments for lavsim rpc (after --)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for k in range(args.runs):
        before = floor_mips()
        wall = rpc_wall(args.extra, args.in_process)
        floor = max(before, floor_mips())
        print(f"run {k + 1}: lavsim rpc {wall:.2f} s wall, floor {floor:.2f} MIPS, "
              f"wall x floor {wall * floor:.1f} (target <= 15)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
