"""Far CALL/JMP/RET directly and through call gates (SDM Vol. 2 CALL, JMP, RET; Vol. 3 5.8)."""

from __future__ import annotations

import pytest
from pmkit import (
    CODE0,
    CODE1,
    CODE2,
    CODE3,
    CONFORMING0,
    DATA0,
    DATA2,
    DATA3,
    ESP0,
    ESP2,
    FREE,
    TSS,
    TSS_SEL,
    Rig,
    call_gate,
    flat,
)

from lavsim.cpu.state import CS, DS, ES, ESP, FS, GS, SS
from lavsim.faults import GP, NP, TS, CpuFault
from lavsim.faults import SS as SS_VEC
from lavsim.mmu.descriptors import (
    DATA_READ_ONLY,
    SYS_TASK_GATE,
    GateDescriptor,
    SegmentDescriptor,
)


@pytest.fixture(params=[False, True], ids=["reference", "far_fast"])
def rig(request: pytest.FixtureRequest) -> Rig:
    """The kit's CPU on the reference far-transfer path and on the flattened one
    (``far_fast``): every rule below must hold on both."""
    r = Rig()
    r.cpu.far_fast = request.param
    return r


def ring3(rig: Rig, esp: int = 0x8000, eip: int = 0x400) -> None:
    rig.enter(CODE3, DATA3, esp, eip)


def expect_fault(rig: Rig, vector: int, code: int, action: object) -> None:
    before = rig.snapshot()
    with pytest.raises(CpuFault) as info:
        action()  # type: ignore[operator]
    assert (info.value.vector, info.value.error_code) == (vector, code)
    assert rig.snapshot() == before, "a faulting far transfer must not change registers"


# --- direct transfers ------------------------------------------------------------------------


def test_direct_far_call_pushes_cs_and_return_eip(rig: Rig) -> None:
    rig.far_call(CODE0, 0x2000)
    cpu = rig.cpu
    assert (cpu.seg[CS].selector, cpu.eip, cpu.regs[ESP]) == (CODE0, 0x2000, 0x7000 - 8)
    assert rig.stack(2) == [0x107, CODE0]


def test_direct_call_sets_rpl_of_cs_to_cpl(rig: Rig) -> None:
    rig.far_call(CODE0 | 0, 0x2000)
    ring3(rig)
    rig.far_call(CODE3 & ~3, 0x2000)  # RPL 0 <= CPL 3 is allowed; CS.RPL becomes 3
    assert rig.cpu.seg[CS].selector == CODE3


def test_direct_call_to_more_privileged_nonconforming_segment_is_gp_selector(rig: Rig) -> None:
    ring3(rig)
    expect_fault(rig, GP, CODE0, lambda: rig.far_call(CODE0, 0x10))


def test_direct_call_to_conforming_segment_keeps_cpl(rig: Rig) -> None:
    ring3(rig)
    rig.far_call(CONFORMING0, 0x10)
    assert rig.cpu.cpl == 3
    assert rig.cpu.seg[CS].selector == CONFORMING0 | 3


def test_direct_call_with_null_selector_is_gp0(rig: Rig) -> None:
    expect_fault(rig, GP, 0, lambda: rig.far_call(0, 0x10))


def test_direct_call_beyond_gdt_limit_is_gp_selector(rig: Rig) -> None:
    expect_fault(rig, GP, 0x800, lambda: rig.far_call(0x800, 0x10))


def test_direct_call_to_not_present_segment_is_np_selector(rig: Rig) -> None:
    sel = rig.gdt(FREE, SegmentDescriptor(0, 0xFFFFF, 0xA, 0, present=False, g=True))
    expect_fault(rig, NP, sel, lambda: rig.far_call(sel, 0x10))


def test_direct_call_to_data_segment_is_gp_selector(rig: Rig) -> None:
    expect_fault(rig, GP, DATA0, lambda: rig.far_call(DATA0, 0x10))


def test_direct_call_beyond_code_limit_is_gp0(rig: Rig) -> None:
    sel = rig.gdt(FREE, SegmentDescriptor(0, 0xFFF, 0xA, 0))
    expect_fault(rig, GP, 0, lambda: rig.far_call(sel, 0x1000))


def test_direct_call_without_stack_room_is_ss0(rig: Rig) -> None:
    small = rig.gdt(FREE, SegmentDescriptor(0x20000, 0xFFF, 0x2, 0))
    rig.enter(CODE0, small, 4, 0x100, data=DATA0)
    expect_fault(rig, SS_VEC, 0, lambda: rig.far_call(CODE0, 0x10))


def test_far_jmp_to_code_segment(rig: Rig) -> None:
    rig.far_jmp(CODE0, 0x1234)
    assert (rig.cpu.eip, rig.cpu.regs[ESP]) == (0x1234, 0x7000)


def test_task_gate_and_tss_targets_are_gp_selector_task_switch_not_modelled(rig: Rig) -> None:
    gate = rig.gdt(FREE, GateDescriptor(SYS_TASK_GATE, TSS_SEL, 0, 0, 0))
    expect_fault(rig, GP, gate, lambda: rig.far_call(gate, 0))
    expect_fault(rig, GP, TSS_SEL, lambda: rig.far_jmp(TSS_SEL, 0))


def test_retf_same_privilege_pops_cs_eip_and_imm(rig: Rig) -> None:
    rig.push(0xAA, 0xBB, CODE0, 0x4444)
    rig.retf(8)
    assert (rig.cpu.eip, rig.cpu.regs[ESP]) == (0x4444, 0x7000)


# --- call gates: same privilege --------------------------------------------------------------


def test_call_gate_same_privilege_pushes_cs_eip_and_enters_at_gate_offset(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=0, params=3))
    rig.far_call(gate, 0xDEAD)  # the instruction's offset is ignored
    cpu = rig.cpu
    assert (cpu.eip, cpu.cpl, cpu.seg[CS].selector) == (0x3000, 0, CODE0)
    assert cpu.regs[ESP] == 0x7000 - 8  # no parameters copied without a privilege change
    assert rig.stack(2) == [0x107, CODE0]


def test_jmp_through_call_gate_does_not_push(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=0))
    rig.far_jmp(gate, 0)
    assert (rig.cpu.eip, rig.cpu.regs[ESP]) == (0x3000, 0x7000)


def test_jmp_through_call_gate_to_more_privileged_code_is_gp_code_selector(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3))
    ring3(rig)
    expect_fault(rig, GP, CODE0, lambda: rig.far_jmp(gate | 3, 0))


# --- call gates: to an inner ring ------------------------------------------------------------


@pytest.mark.parametrize("params", [0, 1, 2, 5, 31])
def test_call_gate_to_inner_ring_switches_stack_from_tss_and_copies_params(
    rig: Rig, params: int
) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3, params=params))
    ring3(rig, esp=0x8000)
    args = [0x1000 + k for k in range(params)]
    for value in reversed(args):
        rig.push(value)  # arg 0 ends at the lowest address, as a C caller pushes
    caller_esp = rig.cpu.regs[ESP]
    rig.far_call(gate | 3, 0)
    cpu = rig.cpu
    assert (cpu.cpl, cpu.seg[CS].selector, cpu.seg[SS].selector) == (0, CODE0, DATA0)
    assert cpu.eip == 0x3000
    assert cpu.regs[ESP] == ESP0 - 16 - 4 * params
    frame = rig.stack(4 + params)
    assert frame[0] == 0x407 and frame[1] == CODE3
    assert frame[2 : 2 + params] == args
    assert frame[2 + params :] == [caller_esp, DATA3]


def test_call_gate_from_ring3_to_ring2_uses_ss2_esp2(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE2, 0x3000, dpl=3, params=1))
    ring3(rig)
    rig.push(0x77)
    rig.far_call(gate | 3, 0)
    cpu = rig.cpu
    assert (cpu.cpl, cpu.seg[SS].selector, cpu.regs[ESP]) == (2, DATA2, ESP2 - 20)
    assert rig.stack(5) == [0x407, CODE3, 0x77, 0x8000 - 4, DATA3]


def test_call_gate_to_conforming_code_stays_at_same_privilege(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CONFORMING0, 0x3000, dpl=3, params=2))
    ring3(rig)
    rig.far_call(gate | 3, 0)
    assert rig.cpu.cpl == 3 and rig.cpu.seg[SS].selector == DATA3
    assert rig.cpu.regs[ESP] == 0x8000 - 8


def test_gate_call_then_retf_imm_returns_to_outer_ring_and_pops_params(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE2, 0x3000, dpl=3, params=2))
    ring3(rig)
    rig.push(2, 1)
    rig.far_call(gate | 3, 0)
    rig.retf(8)
    cpu = rig.cpu
    assert (cpu.cpl, cpu.eip, cpu.seg[CS].selector, cpu.seg[SS].selector) == (3, 0x407, CODE3,
                                                                              DATA3)
    assert cpu.regs[ESP] == 0x8000  # caller's parameters popped too


def test_retf_to_outer_ring_nulls_data_segments_the_outer_ring_may_not_hold(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3))
    ring3(rig)
    rig.far_call(gate | 3, 0)
    cpu = rig.cpu
    # The inner procedure loads ring-0 data into DS and FS, keeps the caller's ES and GS.
    from lavsim.cpu.system import _load_sreg

    _load_sreg(cpu, DS, DATA0)
    _load_sreg(cpu, FS, DATA0)
    rig.retf()
    assert not cpu.seg[DS].valid and cpu.seg[DS].selector == 0
    assert not cpu.seg[FS].valid
    assert cpu.seg[ES].valid and cpu.seg[ES].selector == DATA3
    assert cpu.seg[GS].valid


def test_retf_to_outer_ring_keeps_conforming_code_in_data_registers(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3))
    ring3(rig)
    rig.far_call(gate | 3, 0)
    from lavsim.cpu.system import _load_sreg

    _load_sreg(rig.cpu, DS, CONFORMING0)
    rig.retf()
    assert rig.cpu.seg[DS].valid


# --- call gate faults ------------------------------------------------------------------------


def test_call_gate_with_dpl_below_cpl_is_gp_gate_selector(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=0))
    ring3(rig)
    expect_fault(rig, GP, gate, lambda: rig.far_call(gate | 3, 0))


def test_call_gate_with_dpl_below_rpl_is_gp_gate_selector(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=2))
    rig.enter(CODE2, DATA2, 0x8000, 0x400)
    expect_fault(rig, GP, gate, lambda: rig.far_call(gate | 3, 0))


def test_not_present_call_gate_is_np_gate_selector(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3, present=False))
    ring3(rig)
    expect_fault(rig, NP, gate, lambda: rig.far_call(gate | 3, 0))


def test_call_gate_with_null_code_selector_is_gp0(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(0, 0x3000, dpl=3))
    ring3(rig)
    expect_fault(rig, GP, 0, lambda: rig.far_call(gate | 3, 0))


def test_call_gate_to_data_segment_is_gp_code_selector(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(DATA0, 0x3000, dpl=3))
    ring3(rig)
    expect_fault(rig, GP, DATA0, lambda: rig.far_call(gate | 3, 0))


def test_call_gate_to_less_privileged_code_is_gp_code_selector(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE3, 0x3000, dpl=3))
    rig.enter(CODE1, 0x49, 0x8000, 0x400)
    expect_fault(rig, GP, CODE3 & ~3, lambda: rig.far_call(gate | 1, 0))


def test_call_gate_to_not_present_code_is_np_code_selector(rig: Rig) -> None:
    code = rig.gdt(FREE + 1, SegmentDescriptor(0, 0xFFFFF, 0xA, 0, present=False, g=True))
    gate = rig.gdt(FREE, call_gate(code, 0x3000, dpl=3))
    ring3(rig)
    expect_fault(rig, NP, code, lambda: rig.far_call(gate | 3, 0))


def test_call_gate_offset_beyond_code_limit_is_gp0(rig: Rig) -> None:
    code = rig.gdt(FREE + 1, SegmentDescriptor(0, 0xFFF, 0xA, 0))
    gate = rig.gdt(FREE, call_gate(code, 0x5000, dpl=3))
    ring3(rig)
    expect_fault(rig, GP, 0, lambda: rig.far_call(gate | 3, 0))


def test_inner_stack_beyond_tss_limit_is_ts_tss_selector(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE2, 0x3000, dpl=3))
    rig.cpu.tr.limit = 0x17  # SS2:ESP2 at 0x14..0x19 do not fit
    rig.cpu.tr.refresh()
    ring3(rig)
    expect_fault(rig, TS, TSS_SEL, lambda: rig.far_call(gate | 3, 0))


def test_null_inner_stack_selector_is_ts0(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3))
    rig.memory.write16(TSS + 8, 0)
    ring3(rig)
    expect_fault(rig, TS, 0, lambda: rig.far_call(gate | 3, 0))


def test_inner_stack_with_wrong_dpl_is_ts_ss_selector(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3))
    rig.memory.write16(TSS + 8, DATA2 & ~3)
    ring3(rig)
    expect_fault(rig, TS, DATA2 & ~3, lambda: rig.far_call(gate | 3, 0))


def test_read_only_inner_stack_is_ts_ss_selector(rig: Rig) -> None:
    ro = rig.gdt(FREE + 1, SegmentDescriptor(0, 0xFFFFF, DATA_READ_ONLY, 0, g=True))
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3))
    rig.memory.write16(TSS + 8, ro)
    ring3(rig)
    expect_fault(rig, TS, ro, lambda: rig.far_call(gate | 3, 0))


def test_not_present_inner_stack_is_ss_ss_selector(rig: Rig) -> None:
    np_stack = rig.gdt(FREE + 1, SegmentDescriptor(0, 0xFFFFF, 0x2, 0, present=False, g=True))
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3))
    rig.memory.write16(TSS + 8, np_stack)
    ring3(rig)
    expect_fault(rig, SS_VEC, np_stack, lambda: rig.far_call(gate | 3, 0))


def test_inner_stack_without_room_for_frame_and_params_is_ss_ss_selector(rig: Rig) -> None:
    small = rig.gdt(FREE + 1, SegmentDescriptor(0x20000, 0xFFF, 0x2, 0))
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3, params=4))
    rig.memory.write16(TSS + 8, small)
    rig.memory.write32(TSS + 4, 16 + 12)  # room for the frame and three parameters only
    ring3(rig)
    expect_fault(rig, SS_VEC, small, lambda: rig.far_call(gate | 3, 0))


def test_parameters_beyond_caller_stack_limit_is_ss0(rig: Rig) -> None:
    small3 = rig.gdt(FREE + 1, SegmentDescriptor(0x20000, 0xFFF, 0x2, 3))
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3, params=2))
    rig.enter(CODE3, small3, 0xFFC, 0x400, data=DATA3)
    expect_fault(rig, SS_VEC, 0, lambda: rig.far_call(gate | 3, 0))


# --- RETF faults -----------------------------------------------------------------------------


def test_retf_to_more_privileged_ring_is_gp_selector(rig: Rig) -> None:
    ring3(rig)
    rig.push(CODE0, 0x100)  # CS pushed first (higher address), then EIP
    expect_fault(rig, GP, CODE0, lambda: rig.retf())


def test_retf_with_null_cs_is_gp0(rig: Rig) -> None:
    rig.push(0, 0x100)
    expect_fault(rig, GP, 0, lambda: rig.retf())


def test_retf_to_not_present_cs_is_np_selector(rig: Rig) -> None:
    code = rig.gdt(FREE, SegmentDescriptor(0, 0xFFFFF, 0xA, 3, present=False, g=True))
    rig.push(code | 3, 0x100)
    expect_fault(rig, NP, code, lambda: rig.retf())


def test_retf_outer_with_ss_rpl_not_matching_is_gp_ss_selector(rig: Rig) -> None:
    rig.push(DATA2, 0x9000, CODE3, 0x100)
    expect_fault(rig, GP, DATA2 & ~3, lambda: rig.retf())


def test_retf_outer_with_null_ss_is_gp0(rig: Rig) -> None:
    rig.push(0, 0x9000, CODE3, 0x100)
    expect_fault(rig, GP, 0, lambda: rig.retf())


def test_retf_with_empty_stack_is_ss0(rig: Rig) -> None:
    small = rig.gdt(FREE, SegmentDescriptor(0x20000, 0xFFF, 0x2, 0))
    rig.enter(CODE0, small, 0xFFC, 0x100, data=DATA0)
    expect_fault(rig, SS_VEC, 0, lambda: rig.retf())


def test_retf_beyond_return_code_limit_is_gp0(rig: Rig) -> None:
    code = rig.gdt(FREE, SegmentDescriptor(0, 0xFFF, 0xA, 0))
    rig.push(code, 0x2000)
    expect_fault(rig, GP, 0, lambda: rig.retf())


def test_accessed_bit_is_set_on_the_gate_target_code_segment(rig: Rig) -> None:
    code = rig.gdt(FREE + 1, flat(0, True))
    gate = rig.gdt(FREE, call_gate(code, 0x3000, dpl=3))
    ring3(rig)
    rig.far_call(gate | 3, 0)
    assert rig.descriptor(code).accessed


# --- timing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [0, 1, 3, 8])
@pytest.mark.parametrize("base", [0, 20])
def test_call_gate_round_trip_costs_the_486_figures(params: int, base: int) -> None:
    """486: CALL gate to more privilege 69 (no params) or 77 + 4x; RETF imm16 outer 33."""
    rig = Rig("i486")
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3, params=params))
    ring3(rig)
    start = rig.cpu.tsc
    rig.far_call(gate | 3, 0, base_cycles=base)
    call = rig.cpu.tsc - start
    rig.retf(4 * params, base_cycles=base)
    ret = rig.cpu.tsc - start - call
    assert call == (69 if params == 0 else 77 + 4 * params)
    assert ret == 33


def test_same_privilege_gate_and_direct_costs(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0x3000, dpl=0))
    t = rig.cpu.tsc
    rig.far_call(gate, 0)
    assert rig.cpu.tsc - t == 35
    t = rig.cpu.tsc
    rig.retf()
    assert rig.cpu.tsc - t == 18
    t = rig.cpu.tsc
    rig.far_call(CODE0, 0x10)
    assert rig.cpu.tsc - t == 20
    t = rig.cpu.tsc
    rig.far_jmp(gate, 0)
    assert rig.cpu.tsc - t == 31


def test_pentium_inner_gate_cost() -> None:
    p5 = Rig("pentium")
    gate = p5.gdt(FREE, call_gate(CODE0, 0x3000, dpl=3))
    p5.enter(CODE3, DATA3, 0x8000, 0x400)
    t = p5.cpu.tsc
    p5.far_call(gate | 3, 0)
    assert p5.cpu.tsc - t == 44
    assert p5.cpu.regs[ESP] == ESP0 - 16


@pytest.mark.parametrize("profile", ["i486", "pentium"])
@pytest.mark.parametrize("params", [0, 2, 5])
def test_decoded_gate_round_trip_costs_exactly_the_profile_figures(
    profile: str, params: int
) -> None:
    """Through the decoder and executor: CALL gate inner + RETF imm16 outer cost the profile's
    figures exactly, whatever base the decoder charged for the forms."""
    from lavsim.machine import Machine, MachineConfig

    m = Machine(MachineConfig(profile=profile, memory_size=1 << 20))
    layout = m.setup_flat_protected_mode(entry=0x10000, stack_top=0x9000)
    gate = call_gate(0x08, 0x12000, dpl=3, params=params)
    m.load(layout.gdt_base + 8 * layout.first_free_index, gate.encode())
    selector = layout.first_free_index << 3 | 3
    m.load(0x10000, bytes([0x6A, 0x23, 0x68, 0, 0, 3, 0, 0x6A, 0x1B, 0x68, 0, 0x10, 1, 0, 0xCB]))
    call_at = 0x11000 + 2 * params
    m.load(0x11000, bytes([0x6A, 0x11] * params + [0x9A, 0, 0, 0, 0, selector, 0]))
    m.load(0x12000, bytes([0xCA, 4 * params, 0]))
    for address in (call_at, 0x12000, call_at + 7):
        m.add_breakpoint(address)
    assert m.run().reason == "breakpoint"
    call = m.run()
    ret = m.run()
    assert (call.breakpoint, ret.breakpoint) == (0x12000, call_at + 7)
    table = m.profile.table
    assert call.cycles == m.profile.call_gate_cycles(True, params)
    assert ret.cycles == table["retf_imm.outer"]
    if profile == "i486":
        assert call.cycles == (69 if params == 0 else 77 + 4 * params) and ret.cycles == 33
