"""Call gates against unicorn (QEMU's IA-32): the same memory image and program run on both.

Ring 0 enters ring 3 with a far RET to an outer level, loads DS/ES, pushes parameters and calls
through a 32-bit call gate (in the GDT or the LDT) to ring 0 or ring 2; the procedure reads its
copied parameters, SS and ESP, loads a privileged data segment into DS and returns with
RETF imm16 to ring 3. Registers, segment selectors and both stacks must agree.

Unicorn checks neither segment limits nor all descriptor types, and it delivers no exception
through the IDT: only legal paths and the #GP/#NP cases it does raise are compared (for those,
the vector and the faulting CS:EIP). Unicorn's TR must be given as an *available* 32-bit TSS
(flags 0x8900): QEMU refuses other types when it reads SSn:ESPn.
"""

from __future__ import annotations

import pytest

unicorn = pytest.importorskip("unicorn")
from unicorn import x86_const as X  # noqa: E402

from lavsim.machine import Machine, MachineConfig  # noqa: E402
from lavsim.mmu.descriptors import (  # noqa: E402
    CODE_EXECUTE_READ,
    DATA_READ_WRITE,
    SYS_CALL_GATE32,
    SYS_LDT,
    GateDescriptor,
    SegmentDescriptor,
    SystemDescriptor,
    Tss32,
)

START, RING3, INNER = 0x10000, 0x11000, 0x12000
LDT_BASE = 0x3000
STACK0, STACK2, STACK3 = 0x9000, 0xB000, 0x30000
CODE2, DATA2 = 6 << 3 | 2, 7 << 3 | 2
GATE_GDT = 8 << 3 | 3
LDT_SEL = 9 << 3
GATE_LDT = 0 << 3 | 4 | 3
TSS_BASE = 0x2800

SREGS = ("ES", "CS", "SS", "DS", "FS", "GS")


def build(ring: int, params: int, in_ldt: bool, gate_dpl: int = 3,
          gate_present: bool = True) -> tuple[Machine, int]:
    """The machine with the program loaded, and the address where the program ends."""
    m = Machine(MachineConfig(memory_size=1 << 20))
    lay = m.setup_flat_protected_mode(entry=START, stack_top=STACK0, tss_base=TSS_BASE)
    gdt = lay.gdt_base
    m.load(gdt + 8 * 6, SegmentDescriptor(0, 0xFFFFF, CODE_EXECUTE_READ, 2, g=True).encode())
    m.load(gdt + 8 * 7, SegmentDescriptor(0, 0xFFFFF, DATA_READ_WRITE, 2, g=True).encode())
    m.load(gdt + 8 * 9, SystemDescriptor(LDT_BASE, 0xFF, SYS_LDT).encode())
    m.load(TSS_BASE, Tss32(esp0=STACK0, ss0=0x10, esp2=STACK2, ss2=DATA2).encode())
    target = 0x08 if ring == 0 else CODE2 & ~3
    gate = GateDescriptor(SYS_CALL_GATE32, target, INNER, params, gate_dpl, gate_present)
    m.load(LDT_BASE if in_ldt else gdt + 8 * 8, gate.encode())
    inner_data = 0x10 if ring == 0 else DATA2
    code0 = bytes([
        0x66, 0xB8, LDT_SEL, 0x00,  # mov ax, LDT_SEL
        0x0F, 0x00, 0xD0,  # lldt ax
        0x6A, 0x23,  # push user SS
        0x68, *STACK3.to_bytes(4, "little"),  # push user ESP
        0x6A, 0x1B,  # push user CS
        0x68, *RING3.to_bytes(4, "little"),  # push user EIP
        0xCB,  # retf: to ring 3 (DS, ES are nulled on the way)
    ])
    selector = GATE_LDT if in_ldt else GATE_GDT
    code3 = bytes([
        0x66, 0xB8, 0x23, 0x00,  # mov ax, 0x23
        0x8E, 0xD8,  # mov ds, ax
        0x8E, 0xC0,  # mov es, ax
        *[b for k in range(params) for b in (0x6A, 0x40 + params - 1 - k)],  # push args
        0x9A, 0, 0, 0, 0, selector & 0xFF, selector >> 8,  # call far gate:0
    ])
    last = 8 + 4 * (params - 1)
    inner = bytes([
        0x8B, 0x44, 0x24, 0x08,  # mov eax, [esp+8]   first copied parameter
        0x8B, 0x5C, 0x24, last,  # mov ebx, [esp+last] last copied parameter (or saved ESP)
        0x8C, 0xD1,  # mov ecx, ss
        0x89, 0xE2,  # mov edx, esp
        0x66, 0xBE, inner_data, 0x00,  # mov si, inner data selector
        0x8E, 0xDE,  # mov ds, si: the outer ring may not keep it
        0xCA, 4 * params, 0x00,  # retf imm16
    ])
    m.load(START, code0)
    m.load(RING3, code3)
    m.load(INNER, inner)
    return m, RING3 + len(code3)


def unicorn_start(m: Machine) -> unicorn.Uc:
    """A unicorn engine in the state ``m`` is in now (before it runs)."""
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)
    uc.mem_map(0, 0x100000)
    uc.mem_write(0, m.memory.read(0, 0x100000))
    cpu = m.cpu
    uc.reg_write(X.UC_X86_REG_GDTR, (0, cpu.gdtr_base, cpu.gdtr_limit, 0))
    uc.reg_write(X.UC_X86_REG_IDTR, (0, cpu.idtr_base, cpu.idtr_limit, 0))
    uc.reg_write(X.UC_X86_REG_TR, (cpu.tr.selector, cpu.tr.base, cpu.tr.limit, 0x8900))
    for name in ("SS", "DS", "ES", "FS", "GS", "CS"):
        uc.reg_write(getattr(X, f"UC_X86_REG_{name}"), cpu.seg[SREGS.index(name)].selector)
    uc.reg_write(X.UC_X86_REG_ESP, cpu.regs[4])
    return uc


def unicorn_run(uc: unicorn.Uc, end: int) -> int | None:
    """Run to ``end``; the vector of the exception that stopped it, if any."""
    caught: list[int] = []

    def on_interrupt(engine: unicorn.Uc, intno: int, _data: object) -> None:
        caught.append(intno)
        engine.emu_stop()

    uc.hook_add(unicorn.UC_HOOK_INTR, on_interrupt)
    uc.emu_start(START, end, count=200)
    return caught[0] if caught else None


def compare_state(m: Machine, uc: unicorn.Uc) -> None:
    cpu = m.cpu
    order = ("EAX", "ECX", "EDX", "EBX", "ESP", "EBP", "ESI", "EDI")
    mine = {name: cpu.regs[k] for k, name in enumerate(order)}
    mine["EIP"] = cpu.eip
    theirs = {name: uc.reg_read(getattr(X, f"UC_X86_REG_{name}")) for name in mine}
    assert mine == theirs
    sel_mine = {name: cpu.seg[k].selector for k, name in enumerate(SREGS)}
    sel_theirs = {name: uc.reg_read(getattr(X, f"UC_X86_REG_{name}")) for name in sel_mine}
    assert sel_mine == sel_theirs


def compare_memory(m: Machine, uc: unicorn.Uc, start: int, n: int) -> None:
    assert m.memory.read(start, n) == bytes(uc.mem_read(start, n))


@pytest.mark.parametrize("in_ldt", [False, True], ids=["gdt", "ldt"])
@pytest.mark.parametrize("ring", [0, 2])
@pytest.mark.parametrize("params", [0, 1, 3, 6])
def test_gate_call_and_retf_imm_to_outer_ring_agree_with_unicorn(
    ring: int, params: int, in_ldt: bool
) -> None:
    m, end = build(ring, params, in_ldt)
    uc = unicorn_start(m)
    m.add_breakpoint(end)
    result = m.run(max_instructions=200)
    assert result.reason == "breakpoint"
    assert unicorn_run(uc, end) is None
    compare_state(m, uc)
    assert m.cpu.cpl == 3 and m.cpu.seg[3].selector == 0, "DS held inner data: nulled"
    # EAX = first copied argument (or the saved ESP), EBX = last one (or the saved CS).
    assert (m.cpu.regs[0], m.cpu.regs[3]) == (
        (0x40, 0x40 + params - 1) if params else (STACK3, 0x1B))
    inner_top = STACK0 if ring == 0 else STACK2
    frame = 16 + 4 * params
    compare_memory(m, uc, inner_top - frame, frame)
    compare_memory(m, uc, STACK3 - 4 * params - 8, 4 * params + 8)


@pytest.mark.parametrize(
    ("kind", "vector"), [("gate_dpl", 13), ("gate_not_present", 11)]
)
def test_gate_faults_unicorn_raises_agree(kind: str, vector: int) -> None:
    if kind == "gate_dpl":
        m, end = build(0, 1, False, gate_dpl=0)
    else:
        m, end = build(0, 1, False, gate_present=False)
    uc = unicorn_start(m)
    m.add_breakpoint(end)
    result = m.run(max_instructions=200)
    # lavsim's IDT is empty: the fault escalates to a triple fault whose report starts with it.
    assert result.reason == "triple_fault"
    first = result.report.chain[0]
    assert first.vector == vector and first.error_code == GATE_GDT & ~3
    assert unicorn_run(uc, end) == vector
    assert uc.reg_read(X.UC_X86_REG_EIP) == result.report.eip
    assert uc.reg_read(X.UC_X86_REG_CS) == result.report.cs
