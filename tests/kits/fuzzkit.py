"""Shared pieces of the fuzz tests: encoded instruction instances from the ISA table, a bare
machine with a catch-all IDT at CPL 0 or 3, and a counter of instructions fuzzed."""

from __future__ import annotations

import functools
from collections import Counter

import attrs
from asmgen import all_instances

from lavsim.cpu.asm import assemble
from lavsim.cpu.state import CS, DS, ES, ESP, FS, GS, SS
from lavsim.errors import AssemblyError
from lavsim.machine import Machine, MachineConfig
from lavsim.mmu.descriptors import (
    CODE_EXECUTE_READ_ACCESSED,
    DATA_READ_WRITE_ACCESSED,
    SYS_INTERRUPT_GATE32,
    GateDescriptor,
    SegmentDescriptor,
)
from lavsim.mmu.segmentation import SegmentCache

#: Instructions (steps) executed by the fuzz tests of this session, by test family.
FUZZED: Counter[str] = Counter()

CODE = 0x10000
HANDLER = 0x4000
STACK0 = 0x30000
STACK3 = 0x28000
#: Every segment the fuzzed code can name is limited to this many bytes, so that a REP string
#: instruction with a huge ECX ends at the limit (see test_fuzz_machine's REP reproducer).
SEGMENT_BYTES = 0x40000


_ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17})
# inc dword ptr [esp]; iretd  /  add esp, 4; inc dword ptr [esp]; iretd
_STUB = bytes([0xFF, 0x04, 0x24, 0xCF])
_STUB_WITH_ERROR = bytes([0x83, 0xC4, 0x04]) + _STUB


@functools.cache
def encodings() -> tuple[bytes, ...]:
    """One encoding per assemblable instance of every form of the ISA table."""
    out = []
    for inst in all_instances():
        try:
            out.append(assemble(inst.prefix + inst.text + "\n", origin=0).code)
        except AssemblyError:
            continue  # instances that name labels of the GNU comparison file
    return tuple(out)


@attrs.frozen
class BareRun:
    reason: str
    steps: int
    digest: str


def bare_machine(code: bytes, cpl: int, regs: list[int], profile: str = "i486",
                 board: str = "ideal") -> Machine:
    """A 1 MiB machine in protected mode, paging off, every segment limited to
    :data:`SEGMENT_BYTES`, every IDT vector a DPL 3 interrupt gate to a ring-0 stub that drops
    the error code (if any), adds 1 to the saved EIP and returns (so execution goes on one byte
    past a faulting instruction), ``code`` at CODE, run at ``cpl``, on ``board``."""
    m = Machine(MachineConfig(profile=profile, memory_size=1 << 20, board=board))
    layout = m.setup_flat_protected_mode(entry=CODE, stack_top=STACK0)
    limit = SEGMENT_BYTES - 1
    code0 = SegmentDescriptor(0, limit, CODE_EXECUTE_READ_ACCESSED, 0, db=True)
    data0 = SegmentDescriptor(0, limit, DATA_READ_WRITE_ACCESSED, 0, db=True)
    code3 = attrs.evolve(code0, dpl=3)
    data3 = attrs.evolve(data0, dpl=3)
    for index, desc in enumerate((code0, data0, code3, data3), start=1):
        m.load(layout.gdt_base + 8 * index, desc.encode())
    idt = bytearray()
    for vector in range(256):
        stub = HANDLER + 16 * vector
        m.load(stub, _STUB_WITH_ERROR if vector in _ERROR_CODE_VECTORS else _STUB)
        gate = GateDescriptor(SYS_INTERRUPT_GATE32, layout.kernel_code, stub, dpl=3)
        idt += gate.encode()
    m.load(layout.idt_base, bytes(idt))
    m.load(CODE, code)
    cpu = m.cpu
    if cpl == 3:
        cpu.seg[CS] = SegmentCache.from_descriptor(layout.user_code, code3)
        for sreg in (SS, DS, ES, FS, GS):
            cpu.seg[sreg] = SegmentCache.from_descriptor(layout.user_data, data3)
        cpu.set_cpl(3)
    else:
        cpu.seg[CS] = SegmentCache.from_descriptor(layout.kernel_code, code0)
        for sreg in (SS, DS, ES, FS, GS):
            cpu.seg[sreg] = SegmentCache.from_descriptor(layout.kernel_data, data0)
    for k, value in enumerate(regs[:8]):
        if k != ESP:
            cpu.regs[k] = value
    cpu.regs[ESP] = STACK3 if cpl == 3 else STACK0
    return m


def run_bare(code: bytes, cpl: int, regs: list[int], family: str,
             max_instructions: int = 400) -> BareRun:
    m = bare_machine(code, cpl, regs)
    steps = 0

    def count(*_: object) -> None:
        nonlocal steps
        steps += 1

    m.add_observer(count)
    result = m.run(max_instructions=max_instructions, max_cycles=200_000)
    FUZZED[family] += steps
    return BareRun(result.reason, steps, m.state_digest())
