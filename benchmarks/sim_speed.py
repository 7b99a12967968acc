"""Simulator speed: simulated MIPS (instructions per host second) on the guest loops of
issue 15, each as a ratio to the floor measured in the same run. Protected mode, paging on,
the TLB model on (Pentium TLBs):

1. load / add / store / inc / cmp / branch, flat ring 0, ideal memory (the Pentium's table
   figures, sequential issue):
       L: mov eax, [esi] ; add eax, ebx ; mov [esi], eax ; inc ecx ; cmp ecx, edx ; jne L
2. the same loop with the Pentium issue model (U/V pairing, AGI, BTB), ideal memory;
3. the same loop on the default Pentium board ``p100`` (its L1/L2/DRAM hierarchy attached to
   the MMU as a tracer) with the issue model;
4. call-gate round trips to an inner ring: ring 3 pushes two parameters and calls through a
   DPL 3 call gate (parameter count 2) into a DPL 2 code segment, whose procedure returns with
   ``retf 8`` (Pentium issue model, ideal memory):
       L: push eax ; push ebx ; call far GATE:0 ; dec ecx ; jnz L        PROC: retf 8

Each loop runs three ways in the same run: interpreted (``CPU(fast=False)``: no
specialisations, no blocks, the reference far-transfer path), the block loop
(``translate=False``) and translated (the default). Simulated results are identical every way
(tests/cpu/test_fast_paths.py, tests/cpu/test_translate.py, tests/cpu/test_far_fast_path.py);
only the host time differs. The floor is :func:`floor_mips`.

Run: ``python benchmarks/sim_speed.py [--instructions N] [--repeat R]`` (the best of R runs).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import floorref  # the same-run floor, beside this script
from lavsim.boards import get_board
from lavsim.cpu.core import CPU
from lavsim.cpu.state import CR0_ET, CR0_PE, CR0_PG, CS, DS, ES, ESP, FS, GS, SS
from lavsim.memory import PhysicalMemory
from lavsim.mmu.descriptors import (
    CODE_EXECUTE_READ,
    DATA_READ_WRITE,
    SYS_CALL_GATE32,
    SYS_TSS32_AVAILABLE,
    TSS32_SIZE,
    GateDescriptor,
    SegmentDescriptor,
    SystemDescriptor,
    Tss32,
)
from lavsim.mmu.mmu import MMU, MMUConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.timing import PENTIUM, TimingProfile
from lavsim.timing.pentium import PENTIUM_SEQUENTIAL

PAGE_DIR, PAGE_TABLE, GDT, TSS = 0x1000, 0x2000, 0x5000, 0x6000
CODE, PROC, DATA = 0x100000, 0x101000, 0x200000
STACK3_TOP, STACK2_TOP = 0x300000, 0x280000

# GDT of the gate loop: selectors with their RPL.
CODE0, DATA0, GATE, CODE2, DATA2, CODE3, DATA3, TSS_SEL = (
    0x08, 0x10, 0x1B, 0x20, 0x2A, 0x33, 0x3B, 0x40,
)


#: The benchmark's clock: CPU time of this process (floor.py uses wall time; on a shared host
#: other processes' load then moves both figures of one run differently, CPU time does not).
CLOCK = time.process_time

#: How a loop is run: (CPU fast paths, translator).
MODES = {"interpreted": (False, False), "blocks": (True, False), "translated": (True, True)}


def floor_mips(seconds: float = 1.5) -> float:
    """The floor's MIPS (:mod:`floorref`), timed like the loops below, in this process's CPU
    time (:data:`CLOCK`)."""
    return floorref.floor_mips(seconds, CLOCK)


def machine(mode: str, profile: TimingProfile = PENTIUM, board: str | None = None) -> CPU:
    """A CPU in flat ring-0 protected mode, the first 4 MiB identity-mapped (user, writable);
    ``board``: attach that board's memory hierarchy to the MMU."""
    mem = PhysicalMemory(4 << 20)
    mem.write32(PAGE_DIR, PAGE_TABLE | 7)
    for page in range(1024):
        mem.write32(PAGE_TABLE + 4 * page, (page << 12) | 7)
    mmu = MMU(mem, MMUConfig.pentium())
    fast, translate = MODES[mode]
    cpu = CPU(mmu, profile, fast=fast, translate=translate)
    if board is not None:
        hierarchy = get_board(board).build(cpu, mmu)
        assert hierarchy is not None
        mmu.add_tracer(hierarchy)
    cpu.cr0 = CR0_PE | CR0_ET | CR0_PG
    cpu.cr3 = PAGE_DIR
    mmu.load_cr3(PAGE_DIR)
    mmu.set_controls(cpu.cr0, 0)
    cpu.seg[CS] = SegmentCache.flat(CODE0, 0, True)
    for s in (DS, ES, SS, FS, GS):
        cpu.seg[s] = SegmentCache.flat(DATA0, 0, False)
    cpu.regs[ESP] = STACK3_TOP
    cpu.eip = CODE
    return cpu


def measure(cpu: CPU, instructions: int) -> float:
    start = CLOCK()
    reason = cpu.run(max_instructions=instructions)
    elapsed = CLOCK() - start
    if reason != "instruction_limit":
        raise RuntimeError(f"benchmark loop stopped early: {reason}")
    return instructions / elapsed / 1e6


def alu_loop(mode: str, instructions: int, profile: TimingProfile = PENTIUM,
             board: str | None = None) -> float:
    cpu = machine(mode, profile, board)
    cpu.mmu.memory.write(CODE, bytes([0x8B, 0x06, 0x01, 0xD8, 0x89, 0x06, 0x41, 0x39, 0xD1,
                                      0x75, 0xF5]))
    cpu.regs[6], cpu.regs[3], cpu.regs[2] = DATA, 1, 0xFFFFFFFF
    return measure(cpu, instructions)


def _flat(dpl: int, code: bool) -> SegmentDescriptor:
    return SegmentDescriptor(0, 0xFFFFF, CODE_EXECUTE_READ if code else DATA_READ_WRITE, dpl,
                             g=True)


def gate_loop(mode: str, instructions: int) -> float:
    import lavsim.cpu.far  # noqa: F401  (registers the far-transfer semantics)

    cpu = machine(mode)
    mem = cpu.mmu.memory
    tss = SystemDescriptor(TSS, TSS32_SIZE - 1, SYS_TSS32_AVAILABLE)
    entries = {
        CODE0: _flat(0, True), DATA0: _flat(0, False),
        GATE: GateDescriptor(SYS_CALL_GATE32, CODE2, PROC, 2, 3),
        CODE2: _flat(2, True), DATA2: _flat(2, False),
        CODE3: _flat(3, True), DATA3: _flat(3, False),
        TSS_SEL: tss,
    }
    for selector, desc in entries.items():
        mem.write(GDT + (selector & ~7), desc.encode())
    cpu.gdtr_base, cpu.gdtr_limit = GDT, 0x47
    mem.write(TSS, Tss32(esp0=0x2F0000, ss0=DATA0, esp2=STACK2_TOP, ss2=DATA2).encode())
    cpu.tr = SegmentCache.from_descriptor(
        TSS_SEL, SystemDescriptor(TSS, TSS32_SIZE - 1, SYS_TSS32_AVAILABLE | 2))
    # Ring 3.
    cpu.seg[CS] = SegmentCache.from_descriptor(CODE3, _flat(3, True))
    for s in (DS, ES, SS, FS, GS):
        cpu.seg[s] = SegmentCache.from_descriptor(DATA3, _flat(3, False))
    cpu.set_cpl(3)
    mem.write(CODE, b"\x50" + b"\x53"                          # L: push eax ; push ebx
              + b"\x9a\x00\x00\x00\x00" + GATE.to_bytes(2, "little")  # call far GATE:0
              + b"\x49" + b"\x75\xf4")                         # dec ecx ; jnz L
    mem.write(PROC, b"\xca\x08\x00")                           # retf 8
    cpu.regs[1] = 0xFFFFFFFF
    return measure(cpu, instructions)


def best(fn: Callable[[str, int], float], mode: str, n: int, repeat: int) -> float:
    return max(fn(mode, n) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instructions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, r = args.instructions, args.repeat
    rows: list[tuple[str, Callable[[str, int], float], int, float]] = [
        ("ring 0 loop, ideal, sequential issue",
         lambda mode, k: alu_loop(mode, k, PENTIUM_SEQUENTIAL), n, 1.0),
        ("ring 0 loop, ideal, Pentium pairing", alu_loop, n, 0.0),
        ("ring 0 loop, p100 board, pairing",
         lambda mode, k: alu_loop(mode, k, PENTIUM, "p100"), max(n // 4, 1000), 0.5),
        ("call gate 3->2, 2 params, retf 8", gate_loop, max(n // 10, 1000), 0.1),
    ]
    floor = floor_mips()
    print(f"floor (same run): {floor:.3f} MIPS")
    head = "".join(f"{m:>19}" for m in MODES)
    print(f"{'loop':38}{head}   target   (simulated MIPS, x floor)")
    for name, fn, count, target in rows:
        cells = ""
        for mode in MODES:
            mips = best(fn, mode, count, r)
            cells += f"{mips:>9.3f} {mips / floor:>6.3f}x  "
        goal = f">= {target}x" if target else "-"
        print(f"{name:38}{cells} {goal}")
    print(f"floor (same run, again): {floor_mips():.3f} MIPS")


if __name__ == "__main__":
    main()
