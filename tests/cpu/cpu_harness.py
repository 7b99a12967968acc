"""A bare machine for the CPU tests: physical memory, an MMU with identity paging, flat CPL-0
segments and a CPU; faults are recorded instead of delivered through an IDT.

Not a test module: the CPU tests import it (the Machine class is another layer's work).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lavsim.cpu import interrupts
from lavsim.cpu.core import CPU
from lavsim.cpu.state import CR0_PE, CR0_PG, CS, DS, ES, ESP, FS, GS, SS
from lavsim.faults import CpuFault
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import MMU, MMUConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.timing import TimingProfile
from lavsim.timing.pentium import PENTIUM_SEQUENTIAL

PAGE_DIR = 0x1000
PAGE_TABLES = 0x2000  # one table per 4 MiB mapped, consecutive
CODE = 0x100000
DATA = 0x200000
STACK_TOP = 0x300000
MEM_SIZE = 8 << 20  # mapped (identity) and installed by default

P, RW, US = 1, 2, 4


def identity_tables(mem: PhysicalMemory, mapped: int = MEM_SIZE, unmapped: tuple[int, ...] = (),
                    readonly: tuple[int, ...] = ()) -> None:
    """Identity-map the first ``mapped`` bytes (user, writable) with 4 KiB pages, except the
    page numbers in ``unmapped`` (not present) and ``readonly`` (R/W = 0)."""
    pages = mapped >> 12
    tables = (pages + 1023) // 1024
    for t in range(tables):
        mem.write32(PAGE_DIR + 4 * t, (PAGE_TABLES + 0x1000 * t) | P | RW | US)
    for page in range(pages):
        flags = P | RW | US
        if page in unmapped:
            flags = 0
        elif page in readonly:
            flags = P | US
        mem.write32(PAGE_TABLES + 4 * page, (page << 12) | flags)


class Bare:
    """Memory + MMU + CPU in flat 32-bit protected mode with paging, CPL 0."""

    def __init__(
        self,
        paging: bool = True,
        decode_cache: bool = True,
        # The table figures alone: the issue model's charges are tested in test_pairing.py.
        profile: TimingProfile = PENTIUM_SEQUENTIAL,
        config: MMUConfig | None = None,
        unmapped: tuple[int, ...] = (),
        readonly: tuple[int, ...] = (),
        mem_size: int = MEM_SIZE,
    ) -> None:
        self.mem = PhysicalMemory(mem_size)
        self.mmu = MMU(self.mem, config if config is not None else MMUConfig.pentium())
        self.cpu = CPU(self.mmu, profile, decode_cache=decode_cache)
        cpu = self.cpu
        cr0 = CR0_PE | (1 << 4)
        if paging:
            identity_tables(self.mem, min(mem_size, MEM_SIZE), unmapped, readonly)
            cr0 |= CR0_PG
            self.mmu.load_cr3(PAGE_DIR)
            cpu.cr3 = PAGE_DIR
        cpu.cr0 = cr0
        self.mmu.set_controls(cr0, 0)
        cpu.seg[CS] = SegmentCache.flat(0x08, 0, True)
        for s in (DS, ES, SS, FS, GS):
            cpu.seg[s] = SegmentCache.flat(0x10, 0, False)
        cpu.eip = CODE
        cpu.regs[ESP] = STACK_TOP
        self.faults: list[tuple[CpuFault, int]] = []

    def load(self, code: bytes, at: int = CODE) -> None:
        self.mem.write(at, code)
        self.cpu.flush_decode_cache()

    def run(self, max_instructions: int = 10_000, max_cycles: int | None = None) -> str:
        """Run with faults recorded (and the CPU halted at the first one)."""
        with recording_faults(self.faults):
            return self.cpu.run(max_instructions=max_instructions, max_cycles=max_cycles)

    def step(self) -> None:
        with recording_faults(self.faults):
            self.cpu.step()


@contextmanager
def recording_faults(out: list[tuple[CpuFault, int]]) -> Iterator[None]:
    """Replace IDT delivery: record (fault, EIP) and halt the CPU."""
    original = interrupts.handle_fault

    def record(cpu: Any, fault: CpuFault) -> None:
        out.append((fault, cpu.eip))
        cpu.halted = True

    interrupts.handle_fault = record  # type: ignore[assignment]
    try:
        yield
    finally:
        interrupts.handle_fault = original  # type: ignore[assignment]


REG_INDEX = {"eax": 0, "ecx": 1, "edx": 2, "ebx": 3, "esp": 4, "ebp": 5, "esi": 6, "edi": 7}


def execute(code: bytes, eflags: int | None = None, b: Bare | None = None,
            **regs: int) -> Bare:
    """Run ``code`` (followed by UD2) from CODE with the given registers; the UD2 must be
    the first fault unless the caller inspects ``faults`` itself."""
    b = b or Bare()
    b.load(code + b"\x0f\x0b")
    for name, value in regs.items():
        b.cpu.regs[REG_INDEX[name]] = value & 0xFFFFFFFF
    if eflags is not None:
        b.cpu.set_eflags(eflags)
    b.run()
    return b
