"""Simulator speed: simulated MIPS (host wall clock) on two guest loops, in flat 32-bit
protected mode with paging on and the TLB model on (Pentium TLBs, Pentium timing):

1. load / add / store / inc / cmp / branch:
       L: mov eax, [esi] ; add eax, ebx ; mov [esi], eax ; inc ecx ; cmp ecx, edx ; jne L
2. call-gate round trips (same privilege): L: call far GATE:0 ; dec ecx ; jnz L, the gate's
   procedure being a RETF.

Run: ``python benchmarks/sim_speed.py [--instructions N]``.
"""

from __future__ import annotations

import argparse
import time

from lavsim.cpu.core import CPU
from lavsim.cpu.state import CR0_ET, CR0_PE, CR0_PG, CS, DS, ES, ESP, FS, GS, SS
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import MMU, MMUConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.timing import PENTIUM

PAGE_DIR, PAGE_TABLE, GDT = 0x1000, 0x2000, 0x5000
CODE, PROC, DATA, STACK_TOP = 0x100000, 0x101000, 0x200000, 0x300000


def machine() -> CPU:
    mem = PhysicalMemory(4 << 20)
    mem.write32(PAGE_DIR, PAGE_TABLE | 7)
    for page in range(1024):  # identity-map the first 4 MiB, user, writable
        mem.write32(PAGE_TABLE + 4 * page, (page << 12) | 7)
    mmu = MMU(mem, MMUConfig.pentium())
    cpu = CPU(mmu, PENTIUM)
    cpu.cr0 = CR0_PE | CR0_ET | CR0_PG
    cpu.cr3 = PAGE_DIR
    mmu.load_cr3(PAGE_DIR)
    mmu.set_controls(cpu.cr0, 0)
    cpu.seg[CS] = SegmentCache.flat(0x08, 0, True)
    for s in (DS, ES, SS, FS, GS):
        cpu.seg[s] = SegmentCache.flat(0x10, 0, False)
    cpu.regs[ESP] = STACK_TOP
    cpu.eip = CODE
    return cpu


def measure(cpu: CPU, instructions: int) -> float:
    start = time.perf_counter()
    reason = cpu.run(max_instructions=instructions)
    elapsed = time.perf_counter() - start
    if reason != "instruction_limit":
        raise RuntimeError(f"benchmark loop stopped early: {reason}")
    return instructions / elapsed / 1e6


def alu_loop(instructions: int) -> float:
    cpu = machine()
    cpu.mmu.memory.write(CODE, bytes([0x8B, 0x06, 0x01, 0xD8, 0x89, 0x06, 0x41, 0x39, 0xD1,
                                      0x75, 0xF5]))
    cpu.regs[6], cpu.regs[3], cpu.regs[2] = DATA, 1, 0xFFFFFFFF
    return measure(cpu, instructions)


def gate_loop(instructions: int) -> float | None:
    try:
        import lavsim.cpu.far  # noqa: F401
        from lavsim.mmu.descriptors import SYS_CALL_GATE32, GateDescriptor, SegmentDescriptor
    except ImportError:
        return None
    cpu = machine()
    mem = cpu.mmu.memory
    mem.write(GDT + 0x08, SegmentDescriptor(0, 0xFFFFF, 0xB, 0, True, True, True).encode())
    mem.write(GDT + 0x10, SegmentDescriptor(0, 0xFFFFF, 0x3, 0, True, True, True).encode())
    mem.write(GDT + 0x18, GateDescriptor(SYS_CALL_GATE32, 0x08, PROC, 0, 0).encode())
    cpu.gdtr_base, cpu.gdtr_limit = GDT, 0x1F
    mem.write(CODE, b"\x9a\x00\x00\x00\x00\x18\x00" + b"\x49" + b"\x75\xf6")
    mem.write(PROC, b"\xcb")  # retf
    cpu.regs[1] = 0xFFFFFFFF
    return measure(cpu, instructions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.instructions
    print(f"load/add/store/inc/cmp/branch loop: {alu_loop(n):.3f} simulated MIPS")
    gate = gate_loop(max(n // 10, 1000))
    if gate is None:
        print("call-gate round trips: n/a (far transfers not built yet)")
    else:
        print(f"call-gate round-trip loop:          {gate:.3f} simulated MIPS")


if __name__ == "__main__":
    main()
