"""Host slowdown of the memory hierarchy: a board with caches against the ideal board, measured
in the same run.

1. The guest loop of ``sim_speed.py`` (load / add / store / inc / cmp / branch, flat ring 0,
   paging on) on a ``Machine`` of each board: simulated MIPS and the ratio to ``ideal``. With a
   hierarchy attached the CPU's blocks and its inlined fast paths are off (the tracer seam's
   rule; the MMU's accessors keep their fast path), so this ratio is mostly that, plus the
   caches' own work.
2. ``lavsim rpc`` (every mechanism at 0 and 4096 bytes, no remote rows) on ``ideal`` and on each
   CPU model's default board: host seconds and the ratio.

Simulated results do not depend on the host; only the time does.

Run: ``python benchmarks/bench_memsys.py [--instructions N] [--repeat R]`` (best of R runs).
"""

from __future__ import annotations

import argparse
import time

from lavsim.boards import BOARDS, DEFAULT_BOARDS
from lavsim.cpu.asm import assemble
from lavsim.cpu.state import CR0_PG
from lavsim.experiments.rpc import rpc_table
from lavsim.experiments.workload import DEFAULT, Workload
from lavsim.machine import Machine, MachineConfig

LOOP = """
    mov esi, 0x200000
    mov ebx, 3
    mov ecx, 0
    mov edx, 0x7fffffff
top:
    mov eax, [esi]
    add eax, ebx
    mov [esi], eax
    inc ecx
    cmp ecx, edx
    jne top
"""
CODE = 0x100000
PAGE_DIR, PAGE_TABLE = 0x10000, 0x11000


def _loop_machine(profile: str, board: str) -> Machine:
    m = Machine(MachineConfig(profile=profile, memory_size=4 << 20, board=board))
    m.load(CODE, assemble(LOOP, origin=CODE).code)
    m.setup_flat_protected_mode(entry=CODE)
    # Paging on: the first 4 MiB identity-mapped (as sim_speed.py).
    m.memory.write32(PAGE_DIR, PAGE_TABLE | 7)
    for page in range(1024):
        m.memory.write32(PAGE_TABLE + 4 * page, (page << 12) | 7)
    cpu = m.cpu
    cpu.cr3 = PAGE_DIR
    m.mmu.load_cr3(PAGE_DIR)
    cpu.cr0 |= CR0_PG
    m.mmu.set_controls(cpu.cr0, cpu.cr4)
    return m


def guest_mips(profile: str, board: str, instructions: int, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        m = _loop_machine(profile, board)
        start = time.perf_counter()
        m.run(max_instructions=instructions)
        best = max(best, instructions / (time.perf_counter() - start) / 1e6)
    return best


def rpc_seconds(profile: str, board: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        rpc_table([profile], [0, 4096], calls=4, remote=False, base=Workload(board=board))
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print("guest loop (simulated MIPS, best of", args.repeat, "runs)")
    for profile in DEFAULT_BOARDS:
        ideal = guest_mips(profile, "ideal", args.instructions, args.repeat)
        print(f"  {profile:8} ideal {ideal:7.3f}")
        for board in (b for b in BOARDS.values() if b.cpu == profile):
            mips = guest_mips(profile, board.name, args.instructions, args.repeat)
            print(f"  {profile:8} {board.name:10} {mips:7.3f}  slowdown x{ideal / mips:.2f}")
    print("lavsim rpc, sizes 0 and 4096, 4 calls, no remote rows (host seconds)")
    for profile, board in DEFAULT_BOARDS.items():
        ideal_s = rpc_seconds(profile, "ideal", args.repeat)
        board_s = rpc_seconds(profile, DEFAULT, args.repeat)
        print(f"  {profile:8} ideal {ideal_s:6.2f} s   {board:10} {board_s:6.2f} s   "
              f"slowdown x{board_s / ideal_s:.2f}")


if __name__ == "__main__":
    main()
