"""The same-run speed reference of the speed benchmarks (issue 15): the loop of the workplace's
interpreter floor (a toy ISA, one dict-dispatched call per instruction), mirrored here so that
each benchmark run measures its own reference on this host, now. Speed targets are ratios to
it; absolute times of different runs are never compared."""

from __future__ import annotations

import time
from collections.abc import Callable


def floor_mips(seconds: float = 1.5, clock: Callable[[], float] = time.perf_counter) -> float:
    """MIPS of the floor loop run for ``seconds`` of ``clock`` (wall time by default, as the
    workplace floor measures; pass ``time.process_time`` for this process's CPU time)."""
    r = [0] * 8
    m = 0xFFFFFFFF

    def add(a: int, b: int, c: int) -> None:
        r[a] = (r[b] + r[c]) & m

    def addi(a: int, b: int, c: int) -> None:
        r[a] = (r[b] + c) & m

    ops = {0: add, 1: addi}
    prog = [(0, 2, 2, 1), (1, 4, 2, 3), (0, 5, 5, 4), (1, 1, 1, 1), (0, 6, 1, 5)]
    n = 0
    t0 = clock()
    while clock() - t0 < seconds:
        for _ in range(20000):
            for op, a, b, c in prog:
                ops[op](a, b, c)
            n += 6  # the loop's branch counts as the sixth instruction
    return n / (clock() - t0) / 1e6
