"""Cycles of a null inter-process call by thread migration, phase by phase (issue 5).

For both CPU profiles, a call into a procedure of another process of the same group and into
a resident-space server, through the call library (lav_call) and as a bare far CALL through
the gate: the warm mean and the first (cold) call, split into user stub, gate call, procedure,
far return, TLB refill (page walks) and kernel (always 0), measured by the experiments'
harness and phase observer (lavsim.experiments: mechanisms migration-group,
migration-resident, far-call-group, far-call-resident).

    python benchmarks/migration_cycles.py [--calls 20] [--args 0]
"""

from __future__ import annotations

import argparse

from lavsim.experiments import CallCost, Workload, measure_call
from lavsim.experiments.rpc import Figures

#: (target, mechanism) -> experiments key.
KEYS = {
    ("group", "lav_call"): "migration-group", ("group", "far call"): "far-call-group",
    ("resident", "lav_call"): "migration-resident", ("resident", "far call"): "far-call-resident",
}  # fmt: skip
SHOWN = ("user stub", "gate call", "server", "far return", "TLB refill")
HEADS = ("user stub", "gate call", "procedure", "far return", "TLB refill", "kernel")


def _kernel(f: Figures) -> float:
    return sum(v for p, v in f.phases.items() if p not in SHOWN)


def table(costs: list[tuple[str, str, CallCost]]) -> str:
    head = (f"{'profile':8} {'target':9} {'mechanism':9} {'args':>4} {'':5} "
            + " ".join(f"{p:>10}" for p in HEADS) + f" {'total':>8} {'TLB miss':>8}")
    lines = [head, "-" * len(head)]
    for target, mech, c in costs:
        for label, f in (("warm", c.warm), ("cold", c.cold)):
            cells = [f.phases[p] for p in SHOWN] + [_kernel(f)]
            lines.append(
                f"{c.profile:8} {target:9} {mech:9} {c.size // 4:>4} {label:5} "
                + " ".join(f"{v:>10.1f}" for v in cells)
                + f" {f.cycles:>8.1f} {f.tlb_misses:>8.1f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--args", type=int, default=0, help="gate parameters, 0..31")
    args = parser.parse_args()
    if not 0 <= args.args <= 31:
        parser.error("--args: 0..31 doublewords")
    costs = [
        (target, mech, measure_call(KEYS[target, mech],
                                    Workload(profile=profile, size=4 * args.args,
                                             calls=args.calls)))
        for profile in ("i486", "pentium")
        for target in ("group", "resident")
        for mech in ("lav_call", "far call")
    ]
    print(table(costs))
    for _, _, c in costs:
        for f in (c.cold, c.warm):
            assert f.kernel_entries == 0 and f.cr3_loads == 0 and _kernel(f) == 0


if __name__ == "__main__":
    main()
