"""Cycles of a message RPC (call + reply round trip) through the kernel's ports (issue 5): two
processes of one group, two groups (CR3 load and TLB refill each way), and the L4-style direct
handoff, on both CPU profiles.

Measured by the experiments' harness (lavsim.experiments: mechanisms message-group,
message-groups, handoff-group, handoff-groups), the same as ``lavsim rpc``: the client's call is
the six register loads and the ``int 0x30`` between its labels ``call_start`` and ``call_end``;
machine breakpoints there cut the run into one window per call. A call's cycles are the TSC
advance over its window, and its phases are the same cycles sorted by the phase observer, so
the two always agree (the harness checks it). Cold = the first call; warm = the mean of the
others. No timer runs, so nothing else is scheduled.

(An earlier version timed the call with guest RDTSC minus an empty RDTSC pair, 1,400 cycles on
the i486 model for one group, and printed a phase total of 1,450.3 from an observer window of a
whole loop iteration: the two RDTSC, the stores of the time stamps, and the loop's increment,
compare and branch: 50.3 cycles per call outside the RDTSC window, all of them in the client's
user code. The window here is the call alone: for one group it measures the RDTSC figure,
1,400 (tests/experiments/test_measurement_layer.py checks that guest RDTSC minus an
empty pair equals the harness's window). The cross-group columns moved by two cycles, because
that benchmark laid its processes out differently: 3 TLB misses per call rather than 1.)

Run: python benchmarks/ipc_cycles.py [--calls N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import math

from lavsim.experiments import CallCost, Workload, measure_call, mechanism
from lavsim.experiments.phases import PHASE_ORDER
from lavsim.experiments.rpc import Figures
from lavsim.kernel import layout as L

KEYS = ("message-group", "message-groups", "handoff-group", "handoff-groups")
COUNTS = (
    ("instructions", "instructions"), ("kernel entries", "kernel_entries"),
    ("context switches", "context_switches"), ("CR3 loads", "cr3_loads"),
    ("TLB misses", "tlb_misses"), ("message copies", "message_copies"),
    ("bytes copied", "bytes_copied"),
)  # fmt: skip


def _phases(label: str, figures: dict[str, Figures], fmt: str, width: int) -> list[str]:
    lines = [f"-- per-phase cycles of {label} --"]
    for phase in PHASE_ORDER:
        values = [f.phases[phase] for f in figures.values()]
        if any(values):
            lines.append(f"{phase:26}" + "".join(f"{v:>{width}{fmt}}" for v in values))
    lines.append(f"{'total':26}" + "".join(f"{f.cycles:>{width}{fmt}}" for f in figures.values()))
    return lines


def report(profile: str, costs: dict[str, CallCost]) -> str:
    """One profile's figures as text."""
    width = 34
    size = next(iter(costs.values())).size
    lines = [f"\n== {profile}: {size}-byte message RPC, cycles per call "
             "(TSC advance over the call's window) ==",
             f"{'':26}" + "".join(f"{mechanism(k).label:>{width}}" for k in costs),
             f"{'cold (first call)':26}" + "".join(f"{c.cold.cycles:>{width},.0f}"
                                                    for c in costs.values()),
             f"{'warm (mean)':26}" + "".join(f"{c.warm.cycles:>{width},.1f}"
                                              for c in costs.values())]  # fmt: skip
    for name, attr in COUNTS:
        lines.append(f"{name + ' / warm call':26}" + "".join(
            f"{getattr(c.warm, attr):>{width},.1f}" for c in costs.values()))
    warm = next(iter(costs.values())).workload.calls - 1
    lines += _phases(f"one warm call (mean of {warm})", {k: c.warm for k, c in costs.items()},
                     ",.1f", width)
    lines += _phases("the cold call", {k: c.cold for k, c in costs.items()}, ",.0f", width)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=12, help="calls per run (first is cold)")
    parser.add_argument("--size", type=int, default=0,
                        help="message size in bytes (a multiple of 4, 0..4096)")
    args = parser.parse_args()
    if args.calls < 2 or not 0 <= args.size <= L.IPC_MAX_MESSAGE or args.size % 4:
        parser.error("--calls must be >= 2 and --size a multiple of 4 in 0..4096")
    for profile in ("i486", "pentium"):
        work = Workload(profile=profile, size=args.size, calls=args.calls)
        costs = {key: measure_call(key, work) for key in KEYS}
        for c in costs.values():  # every figure below is from the same windows
            # Warm figures are means over calls (fractional once the Pentium's BTB makes calls
            # differ), so their phase sum equals the cycles up to float rounding.
            assert all(math.isclose(sum(f.phases.values()), f.cycles, abs_tol=1e-6)
                       for f in (c.cold, c.warm))
        print(report(profile, costs))


if __name__ == "__main__":
    main()
