"""Interrupts and exceptions through the IDT, IRET, double and triple fault
(SDM Vol. 3 chapter 6; Vol. 2 INT n and IRET)."""

from __future__ import annotations

import pytest
from pmkit import (
    CODE0,
    CODE2,
    CODE3,
    CONFORMING0,
    DATA0,
    DATA3,
    ESP0,
    TSS_SEL,
    Rig,
    int_gate,
)

from lavsim.cpu.interrupts import (
    TripleFaultReport,
    _is_double_fault,
    deliver,
    deliver_external,
    handle_fault,
)
from lavsim.cpu.state import DS, ESP, IF, NT, OF, SS, TF, VM
from lavsim.faults import DF, GP, NP, PF, TS, UD, CpuFault, gp, pf, ud
from lavsim.mmu.descriptors import SYS_TASK_GATE, GateDescriptor

HANDLER = 0x6000


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    for v in range(64):
        r.idt(v, int_gate(CODE0, HANDLER + v, dpl=0))
    return r


def int_n(rig: Rig, n: int) -> None:
    rig.execute(rig.insn("int_n", b"\xcd", length=2, imm=n))


def iret(rig: Rig) -> None:
    rig.execute(rig.insn("iret", b"\xcf", length=1))


def fault_from_int(rig: Rig, n: int) -> CpuFault:
    with pytest.raises(CpuFault) as info:
        int_n(rig, n)
    return info.value


# --- delivery --------------------------------------------------------------------------------


def test_int_n_same_privilege_pushes_eflags_cs_eip_of_next_instruction(rig: Rig) -> None:
    rig.idt(0x40, int_gate(CODE0, 0x6400))
    rig.cpu.idtr_limit = 0x7FF
    rig.cpu.set_eflags(IF | TF, IF | TF)
    flags = rig.cpu.get_eflags()
    int_n(rig, 0x40)
    cpu = rig.cpu
    assert (cpu.eip, cpu.regs[ESP]) == (0x6400, 0x7000 - 12)
    assert rig.stack(3) == [0x102, CODE0, flags]
    assert not cpu.get_eflags() & (IF | TF), "interrupt gates clear IF and TF"


def test_trap_gate_leaves_if_set(rig: Rig) -> None:
    rig.idt(0x41, int_gate(CODE0, 0x6400, trap=True))
    rig.cpu.set_eflags(IF, IF)
    int_n(rig, 0x41)
    assert rig.cpu.get_eflags() & IF


def test_int_n_from_ring3_switches_to_ss0_esp0(rig: Rig) -> None:
    rig.idt(0x80, int_gate(CODE0, 0x6800, dpl=3))
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    int_n(rig, 0x80)
    cpu = rig.cpu
    assert (cpu.cpl, cpu.seg[SS].selector, cpu.regs[ESP]) == (0, DATA0, ESP0 - 20)
    frame = rig.stack(5)
    assert frame[0:2] == [0x402, CODE3]
    assert frame[3:] == [0x8000, DATA3]


def test_iret_to_outer_ring_restores_stack_and_nulls_privileged_data_segments(rig: Rig) -> None:
    rig.idt(0x80, int_gate(CODE0, 0x6800, dpl=3))
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    rig.cpu.set_eflags(IF, IF)
    int_n(rig, 0x80)
    from lavsim.cpu.system import _load_sreg

    _load_sreg(rig.cpu, DS, DATA0)
    iret(rig)
    cpu = rig.cpu
    assert (cpu.cpl, cpu.eip, cpu.regs[ESP], cpu.seg[SS].selector) == (3, 0x402, 0x8000, DATA3)
    assert cpu.get_eflags() & IF
    assert not cpu.seg[DS].valid


def test_exception_pushes_error_code_and_saves_faulting_eip(rig: Rig) -> None:
    handle_fault(rig.cpu, gp(0x28))
    assert rig.cpu.eip == HANDLER + GP
    assert rig.stack(4)[:3] == [0x28, 0x100, CODE0]


def test_exception_without_error_code_pushes_none(rig: Rig) -> None:
    handle_fault(rig.cpu, ud())
    assert rig.cpu.regs[ESP] == 0x7000 - 12
    assert rig.stack(2) == [0x100, CODE0]


def test_page_fault_loads_cr2(rig: Rig) -> None:
    handle_fault(rig.cpu, pf(6, 0xDEAD000))
    assert rig.cpu.cr2 == 0xDEAD000
    assert rig.stack(1) == [6]


def test_fault_returns_to_faulting_instruction_trap_to_next(rig: Rig) -> None:
    """#GP raised by an instruction saves its own address; INT3 (a trap) saves the next."""
    # The core restores EIP to the faulting instruction; Rig.execute does the same.
    with pytest.raises(CpuFault) as info:
        rig.retf()  # empty stack frame -> null CS -> #GP(0)
    handle_fault(rig.cpu, info.value)
    assert rig.stack(2)[1] == 0x100
    rig.enter(CODE0, DATA0, 0x7000, 0x200)
    rig.execute(rig.insn("int3", b"\xcc", length=1))
    assert rig.stack(1) == [0x201]


def test_software_int_to_gate_with_dpl_below_cpl_is_gp_idt_entry(rig: Rig) -> None:
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    f = fault_from_int(rig, 0x30)
    assert (f.vector, f.error_code) == (GP, 0x30 * 8 + 2)


def test_exception_ignores_gate_dpl(rig: Rig) -> None:
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    handle_fault(rig.cpu, ud())
    assert rig.cpu.cpl == 0 and rig.cpu.eip == HANDLER + UD


def test_vector_beyond_idt_limit_is_gp_idt_entry(rig: Rig) -> None:
    rig.cpu.idtr_limit = 8 * 0x20 - 1
    f = fault_from_int(rig, 0x20)
    assert (f.vector, f.error_code) == (GP, 0x20 * 8 + 2)


def test_not_present_gate_is_np_idt_entry(rig: Rig) -> None:
    rig.idt(0x33, int_gate(CODE0, 0x6400, present=False))
    f = fault_from_int(rig, 0x33)
    assert (f.vector, f.error_code) == (NP, 0x33 * 8 + 2)


def test_task_gate_in_idt_is_gp_task_switch_not_modelled(rig: Rig) -> None:
    rig.idt(0x34, GateDescriptor(SYS_TASK_GATE, TSS_SEL, 0, 0, 0))
    f = fault_from_int(rig, 0x34)
    assert (f.vector, f.error_code) == (GP, 0x34 * 8 + 2)


def test_gate_to_non_code_segment_is_gp_selector(rig: Rig) -> None:
    rig.idt(0x35, int_gate(DATA0, 0x6400))
    f = fault_from_int(rig, 0x35)
    assert (f.vector, f.error_code) == (GP, DATA0)


def test_delivery_fault_during_exception_sets_ext_bit(rig: Rig) -> None:
    rig.idt(UD, int_gate(DATA0, 0x6400))
    with pytest.raises(CpuFault) as info:
        deliver(rig.cpu, UD, ext=True)
    assert info.value.error_code == DATA0 | 1


def test_interrupt_to_conforming_handler_stays_at_cpl(rig: Rig) -> None:
    rig.idt(0x36, int_gate(CONFORMING0, 0x6400, dpl=3))
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    int_n(rig, 0x36)
    assert rig.cpu.cpl == 3 and rig.cpu.regs[ESP] == 0x8000 - 12


def test_interrupt_to_ring2_with_bad_tss_is_ts_tss_selector(rig: Rig) -> None:
    rig.idt(0x37, int_gate(CODE2, 0x6400, dpl=3))
    rig.cpu.tr.limit = 0x10
    rig.cpu.tr.refresh()
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    f = fault_from_int(rig, 0x37)
    assert (f.vector, f.error_code) == (TS, TSS_SEL)


def test_into_traps_only_when_of_is_set(rig: Rig) -> None:
    rig.idt(4, int_gate(CODE0, 0x6400, dpl=0))
    rig.execute(rig.insn("into", b"\xce", length=1))
    assert rig.cpu.eip == 0x101
    rig.cpu.set_eflags(OF, OF)
    rig.execute(rig.insn("into", b"\xce", length=1))
    assert rig.cpu.eip == 0x6400


# --- IRET ------------------------------------------------------------------------------------


def test_iret_same_privilege_restores_eflags_and_returns(rig: Rig) -> None:
    rig.push(0x202 | OF, CODE0, 0x1234)
    iret(rig)
    assert rig.cpu.eip == 0x1234 and rig.cpu.get_eflags() & OF and rig.cpu.regs[ESP] == 0x7000


def test_iret_with_nt_is_gp0_task_return_not_modelled(rig: Rig) -> None:
    rig.push(0x202, CODE0, 0x1234)
    rig.cpu.set_eflags(NT, NT)
    with pytest.raises(CpuFault) as info:
        iret(rig)
    assert (info.value.vector, info.value.error_code) == (GP, 0)


def test_iret_to_v86_mode_is_gp0_not_modelled(rig: Rig) -> None:
    rig.push(0x202 | VM, CODE0, 0x1234)
    with pytest.raises(CpuFault) as info:
        iret(rig)
    assert (info.value.vector, info.value.error_code) == (GP, 0)


def test_iret_at_cpl3_cannot_change_iopl_or_if(rig: Rig) -> None:
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    rig.push(0x3202, CODE3, 0x500)
    iret(rig)
    flags = rig.cpu.get_eflags()
    assert not flags & 0x3000 and not flags & IF


def test_iret_to_more_privileged_ring_is_gp_selector(rig: Rig) -> None:
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    rig.push(0x202, CODE0, 0x500)
    with pytest.raises(CpuFault) as info:
        iret(rig)
    assert (info.value.vector, info.value.error_code) == (GP, CODE0)


# --- double and triple fault -----------------------------------------------------------------


def test_contributory_fault_during_gp_delivery_is_double_fault(rig: Rig) -> None:
    rig.idt(GP, int_gate(CODE0, 0x6400, present=False))  # delivering #GP raises #NP
    handle_fault(rig.cpu, gp(0))
    assert rig.cpu.eip == HANDLER + DF
    assert rig.stack(1) == [0], "#DF pushes error code 0"


def test_page_fault_during_page_fault_delivery_is_double_fault(rig: Rig) -> None:
    rig.idt(PF, int_gate(CODE0, 0x6400, present=False))
    handle_fault(rig.cpu, pf(0, 0x1000))
    assert rig.cpu.eip == HANDLER + DF


def test_benign_exception_then_fault_is_handled_serially(rig: Rig) -> None:
    rig.idt(UD, int_gate(CODE0, 0x6400, present=False))
    handle_fault(rig.cpu, ud())
    assert rig.cpu.eip == HANDLER + NP
    assert rig.stack(1) == [UD * 8 + 2 + 1], "#NP(IDT entry of #UD, EXT)"


@pytest.mark.parametrize(
    ("first", "second", "double"),
    [
        # SDM Vol. 3, table 6-5.
        ("benign", "benign", False), ("benign", "contributory", False), ("benign", "pf", False),
        ("contributory", "benign", False), ("contributory", "contributory", True),
        ("contributory", "pf", False),
        ("pf", "benign", False), ("pf", "contributory", True), ("pf", "pf", True),
    ],
)
def test_double_fault_conditions_follow_table_6_5(first: str, second: str, double: bool) -> None:
    assert _is_double_fault(first, second) is double


def test_fault_while_delivering_double_fault_is_triple_fault_with_report(rig: Rig) -> None:
    rig.idt(GP, int_gate(CODE0, 0x6400, present=False))
    rig.idt(DF, int_gate(CODE0, 0x6400, present=False))
    before_eip = rig.cpu.eip
    handle_fault(rig.cpu, gp(0x10))
    cpu = rig.cpu
    report = cpu.shutdown_report  # type: ignore[attr-defined]
    assert isinstance(report, TripleFaultReport)
    assert report.vectors == (GP, NP, DF, NP)
    assert report.error_codes == (0x10, GP * 8 + 3, 0, DF * 8 + 3)
    assert report.eip == before_eip and report.cs == CODE0
    assert "triple fault" in cpu.shutdown  # type: ignore[attr-defined]


def test_empty_idt_gives_triple_fault(rig: Rig) -> None:
    rig.cpu.idtr_limit = 0
    handle_fault(rig.cpu, ud())
    assert rig.cpu.shutdown_report.vectors[-2:] == (DF, GP)  # type: ignore[attr-defined]


# --- external interrupts ---------------------------------------------------------------------


def test_external_interrupt_uses_acknowledged_vector_and_clears_halted(rig: Rig) -> None:
    rig.idt(0x20, int_gate(CODE0, 0x6200))
    cpu = rig.cpu
    cpu.set_eflags(IF, IF)
    cpu.halted = True
    cpu.ack_interrupt = lambda: 0x20  # type: ignore[attr-defined]
    deliver_external(cpu)
    assert cpu.eip == 0x6200 and not cpu.halted
    assert rig.stack(1) == [0x100]
    assert not cpu.get_eflags() & IF


def test_external_interrupt_is_not_taken_with_if_clear(rig: Rig) -> None:
    cpu = rig.cpu
    cpu.ack_interrupt = lambda: 0x20  # type: ignore[attr-defined]
    deliver_external(cpu)
    assert cpu.eip == 0x100


def test_external_vector_13_is_benign_for_double_fault_rules(rig: Rig) -> None:
    """A hardware interrupt on vector 13 is not a #GP: a fault delivering it is serial."""
    rig.idt(13, int_gate(CODE0, 0x6400, present=False))
    cpu = rig.cpu
    cpu.set_eflags(IF, IF)
    cpu.ack_interrupt = lambda: 13  # type: ignore[attr-defined]
    deliver_external(cpu)
    assert cpu.eip == HANDLER + NP


# --- timing ----------------------------------------------------------------------------------


def test_int_and_iret_cost_the_486_figures(rig: Rig) -> None:
    rig.idt(0x80, int_gate(CODE0, 0x6800, dpl=3))
    rig.enter(CODE3, DATA3, 0x8000, 0x400)
    t = rig.cpu.tsc
    int_n(rig, 0x80)
    assert rig.cpu.tsc - t == 71
    t = rig.cpu.tsc
    iret(rig)
    assert rig.cpu.tsc - t == 36
    rig.idt(0x81, int_gate(CODE3, 0x6800, dpl=3))
    t = rig.cpu.tsc
    int_n(rig, 0x81)
    assert rig.cpu.tsc - t == 44
    t = rig.cpu.tsc
    handle_fault(rig.cpu, ud())
    assert rig.cpu.tsc - t == rig.cpu.profile.table["exception.inner"]
