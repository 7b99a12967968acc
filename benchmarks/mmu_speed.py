"""Host speed of the MMU: translations per host second on the TLB-hit and TLB-miss paths.

Run: ``python benchmarks/mmu_speed.py``. Figures are host-machine dependent; they measure the
simulator, not the simulated machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import MMU, MMUConfig
from lavsim.mmu.paging import CR0_PE, CR0_PG, CR0_WP, RW, US, A, D, P

PD = 0x1000
PT = 0x2000
N = 200_000


def machine(config: MMUConfig) -> MMU:
    """4 MiB identity-mapped with user, writable, already accessed and dirty pages."""
    mem = PhysicalMemory(8 << 20)
    mem.write32(PD, PT | P | RW | US | A)
    for i in range(1024):
        mem.write32(PT + 4 * i, (i << 12) | P | RW | US | A | D)
    mmu = MMU(mem, config)
    mmu.load_cr3(PD)
    mmu.set_controls(CR0_PE | CR0_PG | CR0_WP, 0)
    return mmu


def rate(body: Callable[[int], None], n: int = N) -> float:
    """Operations per second of ``body(n)`` (best of three)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        body(n)
        best = min(best, time.perf_counter() - start)
    return n / best


def hit_translate(mmu: MMU) -> Callable[[int], None]:
    translate = mmu.translate
    mmu.translate(0x5000, False, True)

    def body(n: int) -> None:
        for _ in range(n):
            translate(0x5004, False, True)

    return body


def hit_read32(mmu: MMU) -> Callable[[int], None]:
    read32 = mmu.read32
    mmu.read32(0x5000, True)

    def body(n: int) -> None:
        for _ in range(n):
            read32(0x5004, True)

    return body


def hit_write32(mmu: MMU) -> Callable[[int], None]:
    write32 = mmu.write32
    mmu.write32(0x5000, 0, True)

    def body(n: int) -> None:
        for i in range(n):
            write32(0x5004, i, True)

    return body


def miss_translate(mmu: MMU) -> Callable[[int], None]:
    # 64 pages in a 4-way TLB with 8 or 16 sets: every access evicts, every access misses.
    translate = mmu.translate
    addresses = [(i % 64) << 15 for i in range(N)]

    def body(n: int) -> None:
        for a in addresses[:n]:
            translate(a, False, True)

    return body


def main() -> None:
    rows = []
    for name, config in (("i486", MMUConfig.i486()), ("pentium", MMUConfig.pentium())):
        for fast in (True, False):
            cfg = MMUConfig(config.tlb, config.itlb, config.large_dtlb, fast_path=fast)
            miss_mmu = machine(cfg)
            results = [
                rate(hit_translate(machine(cfg))),
                rate(hit_read32(machine(cfg))),
                rate(hit_write32(machine(cfg))),
                rate(miss_translate(miss_mmu), N // 4),
            ]
            assert miss_mmu.stats.hits == 0, "the miss benchmark must really miss"
            rows.append((name, "on" if fast else "off", results))
    print(f"{'config':8} {'fast':4} {'hit translate/s':>16} {'hit read32/s':>14} "
          f"{'hit write32/s':>14} {'miss translate/s':>17}")
    for name, fast, (t, r, w, m) in rows:
        print(f"{name:8} {fast:4} {t:16,.0f} {r:14,.0f} {w:14,.0f} {m:17,.0f}")


if __name__ == "__main__":
    main()
