"""The leakage experiment: bytes an importer can read next to a shared object, by pages and by
segments, measured by guest probes in the importer (lavsim.kernel.leakage).

    python benchmarks/leakage.py [--objects 200] [--seed 1]
"""

from __future__ import annotations

import argparse

from lavsim.kernel.leakage import architectural_leak, run_experiment, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for title, aligned in (("random size, random alignment (2**0 .. 2**12)", False),
                           ("random size, page-aligned start", True)):
        results = run_experiment(args.objects, args.seed, page_aligned=aligned)
        assert all(r.boundary_faulted and r.object_seen == r.size for r in results)
        assert all(r.leaked == architectural_leak(r.method, r.size, r.offset_in_page)
                   for r in results)
        print(f"{title}: {args.objects} objects, sizes 1..8192 bytes")
        print(f"  {'method':8} {'objects':>8} {'mean leaked':>12} {'median':>8} {'max':>6} "
              f"{'no leak':>8}")
        for s in summarize(results):
            print(f"  {s.method:8} {s.objects:>8} {s.mean:>12.1f} {s.median:>8.0f} "
                  f"{s.maximum:>6} {s.zero:>8}")
        print()


if __name__ == "__main__":
    main()
