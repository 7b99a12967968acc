"""Remote calls between hosts against local migration and local message RPC, and the number of
calls after which shipping the procedure pays off (issue 8).

    python benchmarks/remote_cycles.py [--quick]

Every figure is measured by the guest with RDTSC: guest instructions plus modelled costs (the
network's latency and per-byte cycles, and idle cycles in HLT while a host waits for a frame).
"""

from __future__ import annotations

import argparse

from lavsim.network import NetworkFaults
from lavsim.remote import measure_faulty_calls, measure_lookup, measure_remote

#: One fault kind at a time (seed 1), for the table of remote calls on a faulty network.
FAULTS = (
    ("none", None),
    ("drop 0.1", NetworkFaults(seed=1, drop=0.1)),
    ("duplicate 0.1", NetworkFaults(seed=1, duplicate=0.1)),
    ("delay 0.1 (1..10,000)", NetworkFaults(seed=1, delay=0.1)),
    ("reorder 0.1 (hold 20,000)", NetworkFaults(seed=1, reorder=0.1)),
    ("drop 1.0", NetworkFaults(seed=1, drop=1.0)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one latency, one size")
    args = parser.parse_args()
    latencies = (2_000,) if args.quick else (500, 2_000, 10_000)
    pads = (0,) if args.quick else (0, 1_000, 3_000)
    print("cycles per call (guest RDTSC; network latency and per-byte cost are modelled cycles)")
    header = (f"{'profile':8} {'latency':>8} {'code B':>7} {'local mig':>10} {'local RPC':>10} "
              f"{'remote':>9} {'ship once':>10} {'shipped':>8} {'break-even':>11}")
    print(header)
    print("-" * len(header))
    for profile in ("i486", "pentium"):
        for latency in latencies:
            for pad in pads:
                c = measure_remote(profile, latency=latency, per_byte=1, pad=pad)
                print(f"{profile:8} {latency:>8} {c.code_size:>7} {c.local_migration:>10.1f} "
                      f"{c.local_rpc:>10.1f} {c.remote:>9.1f} {c.shipping:>10} "
                      f"{c.shipped:>8.1f} {c.break_even:>11}")
    print("per_byte = 1 cycle/byte; break-even = smallest n with n*remote >= ship + n*shipped")
    print()
    print("lav_lookup by name from host 1 (guest RDTSC; network cycles modelled)")
    header = (f"{'profile':8} {'latency':>8} {'hosts':>6} {'local name':>11} "
              f"{'on host 2':>10} {'nowhere':>9}")
    print(header)
    print("-" * len(header))
    for profile in ("i486", "pentium"):
        for latency in latencies:
            for hosts in (2, 3):
                lk = measure_lookup(profile, latency=latency, per_byte=1, hosts=hosts)
                print(f"{profile:8} {latency:>8} {hosts:>6} {lk.local:>11} {lk.remote:>10} "
                      f"{lk.missing:>9}")
    print()
    print("remote calls on a faulty network (latency 2000, default call timeout, 3 retries; "
          "50 calls, each timed)")
    header = (f"{'profile':8} {'faults':26} {'ok':>4} {'mean ok':>9} {'worst ok':>9} "
              f"{'mean failed':>12} {'resent':>7} {'replayed':>9} {'gave up':>8}")
    print(header)
    print("-" * len(header))
    for profile in ("i486", "pentium"):
        for label, faults in FAULTS if not args.quick or profile == "i486" else ():
            f = measure_faulty_calls(faults, profile, calls=10 if label == "drop 1.0" else 50)
            print(f"{profile:8} {label:26} {f.ok:>4} {f.mean:>9.1f} {f.worst:>9} "
                  f"{f.failed_mean:>12.1f} {f.retransmissions:>7} {f.replayed:>9} "
                  f"{f.gave_up:>8}")
    print(f"call timeout {f.timeout} cycles (two round trips of the largest frame + 100,000)")


if __name__ == "__main__":
    main()
