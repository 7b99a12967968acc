"""Cycles of a null inter-process call by thread migration, phase by phase (issue 5).

For both CPU profiles, a call into a procedure of another process of the same group and into
a resident-space server, through the call library (lav_call) and as a bare far CALL through
the gate: the warm mean and the first (cold) call, split into user stub, gate call, procedure,
return and kernel (always 0) by a host-side step observer (lavsim.kernel.callcost).

    python benchmarks/migration_cycles.py [--calls 20] [--args 0]
"""

from __future__ import annotations

import argparse

from lavsim.kernel.callcost import MECHANISMS, TARGETS, measure, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--args", type=int, default=0)
    args = parser.parse_args()
    costs = [
        measure(profile, mechanism, target, args=args.args, calls=args.calls)
        for profile in ("i486", "pentium")
        for target in TARGETS
        for mechanism in MECHANISMS
    ]
    print(table(costs))
    assert all(c.kernel_entries == 0 and c.cr3_loads_in_calls == 0 for c in costs)


if __name__ == "__main__":
    main()
