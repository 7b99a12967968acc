"""The RPC cycle table (issue 6): cycles per inter-process call by thread migration (in-group
and into a resident server), message RPC (one group, two groups, direct handoff) and the two-host
rows, per CPU profile and argument size, with counts and a per-phase breakdown.

The same as ``lavsim rpc``; see :mod:`lavsim.experiments.rpc` for how every figure is measured.

    python benchmarks/rpc_cycles.py [--profile both] [--sizes 0,16,64,256,1024,4096]
                                    [--calls 8] [--format table|csv|json] [--no-remote]
"""

from __future__ import annotations

import sys

from lavsim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["rpc", *sys.argv[1:]]))
