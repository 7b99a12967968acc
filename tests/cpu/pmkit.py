"""Protected-mode test kit: a CPU state over real memory and MMU with descriptor tables in
memory, and a way to run one instruction's semantics the way the core does.

Used by the call-gate, interrupt and system-instruction tests; it needs neither the decoder
nor the executor, so the far-transfer rules are tested on their own.
"""

from __future__ import annotations

from typing import Any

from lavsim.cpu.decoder import HANDLERS
from lavsim.cpu.insn import Insn
from lavsim.cpu.isa import FORMS, Form
from lavsim.cpu.state import CS, DS, ES, ESP, FS, GS, SS, CpuState
from lavsim.faults import CpuFault
from lavsim.memory import PhysicalMemory
from lavsim.mmu.descriptors import (
    CODE_EXECUTE_READ,
    CODE_EXECUTE_READ_CONFORMING,
    DATA_READ_WRITE,
    SYS_CALL_GATE32,
    SYS_INTERRUPT_GATE32,
    SYS_TRAP_GATE32,
    SYS_TSS32_AVAILABLE,
    TSS32_SIZE,
    GateDescriptor,
    SegmentDescriptor,
    SystemDescriptor,
    Tss32,
)
from lavsim.mmu.mmu import MMU, MMUConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.models import get_model
from lavsim.timing import get_profile

GDT = 0x1000
IDT = 0x3000
TSS = 0x5000
LDT = 0x6000

# GDT layout of the kit (selectors with their natural RPL).
CODE0, DATA0 = 0x08, 0x10
CODE3, DATA3 = 0x1B, 0x23
TSS_SEL = 0x28
CODE2, DATA2 = 0x32, 0x3A
CODE1, DATA1 = 0x41, 0x49
CONFORMING0 = 0x50
LDT_SEL = 0x58
#: First free GDT index for a test's own descriptors.
FREE = 12

#: Inner stacks in the TSS.
ESP0, ESP1, ESP2 = 0x9000, 0xA000, 0xB000


def flat(dpl: int, code: bool, conforming: bool = False) -> SegmentDescriptor:
    type_ = (CODE_EXECUTE_READ_CONFORMING if conforming else CODE_EXECUTE_READ) if code \
        else DATA_READ_WRITE
    return SegmentDescriptor(base=0, limit=0xFFFFF, type=type_, dpl=dpl, g=True, db=True)


def call_gate(selector: int, offset: int, dpl: int = 3, params: int = 0,
              present: bool = True) -> GateDescriptor:
    return GateDescriptor(SYS_CALL_GATE32, selector, offset, params, dpl, present)


def int_gate(selector: int, offset: int, dpl: int = 0, trap: bool = False,
             present: bool = True) -> GateDescriptor:
    return GateDescriptor(SYS_TRAP_GATE32 if trap else SYS_INTERRUPT_GATE32, selector, offset,
                          0, dpl, present)


def form(handler: str, opcode: bytes) -> Form:
    for f in FORMS:
        if f.handler == handler and f.opcode == opcode:
            return f
    raise LookupError((handler, opcode))


class Rig:
    """A ring-0 flat machine state with a GDT, an IDT, a TSS (ESP0..2 set) and an LDT."""

    def __init__(self, profile: str = "i486") -> None:
        self.memory = PhysicalMemory(1 << 22)
        self.mmu = MMU(self.memory, MMUConfig.i486())
        self.cpu = CpuState(self.mmu, get_profile(profile))
        self.cpu.cpuid_signature = get_model(profile).cpuid_signature  # as Machine does
        self.cpu.shutdown = None  # type: ignore[attr-defined]
        cpu = self.cpu
        cpu.gdtr_base, cpu.gdtr_limit = GDT, 0x7FF
        cpu.idtr_base, cpu.idtr_limit = IDT, 0x7FF
        self.gdt(CODE0 >> 3, flat(0, True))
        self.gdt(DATA0 >> 3, flat(0, False))
        self.gdt(CODE3 >> 3, flat(3, True))
        self.gdt(DATA3 >> 3, flat(3, False))
        self.gdt(CODE2 >> 3, flat(2, True))
        self.gdt(DATA2 >> 3, flat(2, False))
        self.gdt(CODE1 >> 3, flat(1, True))
        self.gdt(DATA1 >> 3, flat(1, False))
        self.gdt(CONFORMING0 >> 3, flat(0, True, conforming=True))
        self.gdt(TSS_SEL >> 3, SystemDescriptor(TSS, TSS32_SIZE - 1, SYS_TSS32_AVAILABLE))
        self.gdt(LDT_SEL >> 3, SystemDescriptor(LDT, 0xFF, 0x2))
        self.memory.write(TSS, Tss32(esp0=ESP0, ss0=DATA0, esp1=ESP1, ss1=DATA1, esp2=ESP2,
                                     ss2=DATA2).encode())
        cpu.tr = SegmentCache.from_descriptor(
            TSS_SEL, SystemDescriptor(TSS, TSS32_SIZE - 1, SYS_TSS32_AVAILABLE | 2))
        cpu.ldtr = SegmentCache.from_descriptor(LDT_SEL, SystemDescriptor(LDT, 0xFF, 0x2))
        self.enter(CODE0, DATA0, 0x7000, 0x100)

    # --- tables ----------------------------------------------------------------------------
    def gdt(self, index: int, desc: Any) -> int:
        self.memory.write(GDT + 8 * index, desc.encode())
        return index << 3

    def ldt(self, index: int, desc: Any) -> int:
        self.memory.write(LDT + 8 * index, desc.encode())
        return (index << 3) | 4

    def idt(self, vector: int, desc: Any) -> None:
        self.memory.write(IDT + 8 * vector, desc.encode())

    def descriptor(self, selector: int) -> SegmentDescriptor:
        base = LDT if selector & 4 else GDT
        return SegmentDescriptor.decode(self.memory.read(base + (selector & 0xFFF8), 8))

    # --- state -----------------------------------------------------------------------------
    def enter(self, cs: int, ss: int, esp: int, eip: int, data: int | None = None) -> None:
        """Put the CPU at cs:eip with ss:esp, CPL = RPL of cs, DS/ES/FS/GS = ``data`` (ss)."""
        cpu = self.cpu
        cpu.seg[CS] = SegmentCache.from_descriptor(cs, self.descriptor(cs))
        cpu.seg[SS] = SegmentCache.from_descriptor(ss, self.descriptor(ss))
        d = ss if data is None else data
        for r in (DS, ES, FS, GS):
            cpu.seg[r] = SegmentCache.from_descriptor(d, self.descriptor(d))
        cpu.set_cpl(cs & 3)
        cpu.regs[ESP] = esp
        cpu.eip = eip

    def push(self, *values: int) -> None:
        for v in values:
            self.cpu.push(v, 4)

    def stack(self, n: int, esp: int | None = None) -> list[int]:
        at = self.cpu.regs[ESP] if esp is None else esp
        return [self.memory.read32(at + 4 * k) for k in range(n)]

    # --- running one instruction's semantics like the core --------------------------------
    def insn(self, handler: str, opcode: bytes, *, size: int = 4, length: int = 7,
             base_cycles: int = 0, **fields: Any) -> Insn:
        i = Insn()
        i.form = form(handler, opcode)
        i.addr = self.cpu.eip
        i.length = length
        i.next_eip = (i.addr + length) & 0xFFFFFFFF
        i.size = size
        i.reg = i.rm = i.imm = i.imm2 = i.cc = i.rep = i.disp = 0
        i.mem = False
        i.seg = 3
        i.base = i.index = -1
        i.scale = 1
        i.lock = False
        i.timing = i.form.timing
        i.cycles = base_cycles
        i.handler = HANDLERS[handler]
        for k, v in fields.items():
            setattr(i, k, v)
        return i

    def execute(self, i: Insn) -> None:
        """As the core does: charge the base, EIP = next, run; restore EIP on a fault."""
        cpu = self.cpu
        cpu.tsc += i.cycles
        cpu.eip = i.next_eip
        try:
            i.handler(cpu, i)
        except CpuFault:
            cpu.eip = i.addr
            raise

    def far_call(self, selector: int, offset: int = 0, **kw: Any) -> None:
        self.execute(self.insn("call_far", b"\x9a", imm=offset, imm2=selector, **kw))

    def far_jmp(self, selector: int, offset: int = 0, **kw: Any) -> None:
        self.execute(self.insn("jmp_far", b"\xea", imm=offset, imm2=selector, **kw))

    def retf(self, imm: int | None = None, **kw: Any) -> None:
        if imm is None:
            self.execute(self.insn("ret_far", b"\xcb", length=1, **kw))
        else:
            self.execute(self.insn("ret_far", b"\xca", length=3, imm=imm, **kw))

    def snapshot(self) -> tuple[Any, ...]:
        cpu = self.cpu
        return (tuple(cpu.regs), cpu.eip, cpu.cpl, cpu.get_eflags(),
                tuple(s.selector for s in cpu.seg), tuple(s.valid for s in cpu.seg))

