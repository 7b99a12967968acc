"""System instructions (SDM Vol. 2 pages of MOV Sreg, POP Sreg, LGDT..., LAR, LSL, VERR/VERW,
ARPL, MOV CRn, INVLPG, CPUID, RDTSC, IN/OUT, CLI/STI, HLT)."""

from __future__ import annotations

from typing import Any

import pytest
from pmkit import (
    CODE0,
    CODE3,
    CONFORMING0,
    DATA0,
    DATA2,
    DATA3,
    FREE,
    GDT,
    LDT_SEL,
    TSS,
    TSS_SEL,
    Rig,
    call_gate,
)

from lavsim.cpu.state import (
    CR0_PE,
    CR0_PG,
    DS,
    EAX,
    EBX,
    ECX,
    EDX,
    ESP,
    IF,
    SS,
    ZF,
)
from lavsim.cpu.system import CPUID_VENDOR
from lavsim.faults import GP, NP, UD, CpuFault
from lavsim.faults import SS as SS_VEC
from lavsim.mmu.descriptors import (
    SYS_TSS32_AVAILABLE,
    TSS32_SIZE,
    SegmentDescriptor,
    SystemDescriptor,
)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def run(rig: Rig, handler: str, opcode: bytes, **fields: Any) -> None:
    rig.execute(rig.insn(handler, opcode, **fields))


def fault(rig: Rig, handler: str, opcode: bytes, **fields: Any) -> tuple[int, int | None]:
    with pytest.raises(CpuFault) as info:
        run(rig, handler, opcode, **fields)
    return info.value.vector, info.value.error_code


def zf(rig: Rig) -> bool:
    return bool(rig.cpu.get_eflags() & ZF)


def ring3(rig: Rig) -> None:
    rig.enter(CODE3, DATA3, 0x8000, 0x400)


MOV_SREG = b"\x8e"


# --- segment registers -----------------------------------------------------------------------


def test_mov_to_ds_loads_hidden_cache_and_sets_accessed_bit(rig: Rig) -> None:
    sel = rig.gdt(FREE, SegmentDescriptor(0x12000, 0xFF, 0x2, 0))
    rig.cpu.regs[EAX] = sel
    run(rig, "mov_to_sreg", MOV_SREG, reg=DS, rm=EAX, size=2)
    cache = rig.cpu.seg[DS]
    assert (cache.selector, cache.base, cache.limit) == (sel, 0x12000, 0xFF)
    assert rig.descriptor(sel).accessed


def test_mov_null_to_ds_is_allowed_and_unusable(rig: Rig) -> None:
    rig.cpu.regs[EAX] = 3
    run(rig, "mov_to_sreg", MOV_SREG, reg=DS, rm=EAX, size=2)
    assert not rig.cpu.seg[DS].valid


def test_mov_null_to_ss_is_gp0(rig: Rig) -> None:
    rig.cpu.regs[EAX] = 0
    assert fault(rig, "mov_to_sreg", MOV_SREG, reg=SS, rm=EAX, size=2) == (GP, 0)


def test_mov_ring0_data_to_ds_at_cpl3_is_gp_selector(rig: Rig) -> None:
    ring3(rig)
    rig.cpu.regs[EAX] = DATA0
    assert fault(rig, "mov_to_sreg", MOV_SREG, reg=DS, rm=EAX, size=2) == (GP, DATA0)


def test_mov_not_present_to_ds_is_np_selector(rig: Rig) -> None:
    sel = rig.gdt(FREE, SegmentDescriptor(0, 0xFF, 0x2, 0, present=False))
    rig.cpu.regs[EAX] = sel
    assert fault(rig, "mov_to_sreg", MOV_SREG, reg=DS, rm=EAX, size=2) == (NP, sel)


def test_mov_not_present_to_ss_is_ss_selector(rig: Rig) -> None:
    sel = rig.gdt(FREE, SegmentDescriptor(0, 0xFF, 0x2, 0, present=False))
    rig.cpu.regs[EAX] = sel
    assert fault(rig, "mov_to_sreg", MOV_SREG, reg=SS, rm=EAX, size=2) == (SS_VEC, sel)


def test_mov_to_cs_is_ud(rig: Rig) -> None:
    assert fault(rig, "mov_to_sreg", MOV_SREG, reg=1, rm=EAX, size=2) == (UD, None)


def test_pop_ds_refused_leaves_esp_unchanged(rig: Rig) -> None:
    ring3(rig)
    rig.push(DATA0)
    esp = rig.cpu.regs[ESP]
    assert fault(rig, "pop_sreg", b"\x1f", length=1) == (GP, DATA0)
    assert rig.cpu.regs[ESP] == esp


def test_push_and_pop_sreg_round_trip(rig: Rig) -> None:
    run(rig, "push_sreg", b"\x1e", length=1)
    assert rig.stack(1) == [DATA0]
    run(rig, "pop_sreg", b"\x07", length=1)
    assert rig.cpu.seg[0].selector == DATA0 and rig.cpu.regs[ESP] == 0x7000


def test_mov_from_sreg_zero_extends_in_register(rig: Rig) -> None:
    rig.cpu.regs[EBX] = 0xFFFFFFFF
    run(rig, "mov_from_sreg", b"\x8c", reg=DS, rm=EBX)
    assert rig.cpu.regs[EBX] == DATA0


# --- descriptor tables, LDTR, TR -------------------------------------------------------------


def test_lgdt_and_sgdt(rig: Rig) -> None:
    rig.memory.write16(0x7800, 0x1FF)
    rig.memory.write32(0x7802, 0x123456)
    run(rig, "lgdt", b"\x0f\x01", mem=True, disp=0x7800)
    assert (rig.cpu.gdtr_base, rig.cpu.gdtr_limit) == (0x123456, 0x1FF)
    run(rig, "sgdt", b"\x0f\x01", mem=True, disp=0x7900)
    assert rig.memory.read(0x7900, 6) == bytes.fromhex("ff0156341200")


def test_lidt_at_cpl3_is_gp0(rig: Rig) -> None:
    ring3(rig)
    assert fault(rig, "lidt", b"\x0f\x01", mem=True, disp=0x7800) == (GP, 0)


def test_lgdt_with_register_operand_is_ud(rig: Rig) -> None:
    assert fault(rig, "lgdt", b"\x0f\x01") == (UD, None)


def test_ltr_marks_tss_busy_and_str_reads_it(rig: Rig) -> None:
    sel = rig.gdt(FREE, SystemDescriptor(TSS, TSS32_SIZE - 1, SYS_TSS32_AVAILABLE))
    rig.cpu.regs[EAX] = sel
    run(rig, "ltr", b"\x0f\x00", rm=EAX, size=2)
    assert rig.cpu.tr.selector == sel
    assert rig.memory.read8(GDT + sel + 5) & 0xF == 0xB
    run(rig, "str_", b"\x0f\x00", rm=EBX, size=2)
    assert rig.cpu.regs[EBX] & 0xFFFF == sel
    # Loading a busy TSS again is refused.
    assert fault(rig, "ltr", b"\x0f\x00", rm=EAX, size=2) == (GP, sel)


def test_lldt_and_sldt(rig: Rig) -> None:
    rig.cpu.regs[EAX] = 0
    run(rig, "lldt", b"\x0f\x00", rm=EAX, size=2)
    assert not rig.cpu.ldtr.valid
    rig.cpu.regs[EAX] = LDT_SEL
    run(rig, "lldt", b"\x0f\x00", rm=EAX, size=2)
    run(rig, "sldt", b"\x0f\x00", rm=ECX, size=2)
    assert rig.cpu.regs[ECX] == LDT_SEL
    rig.cpu.regs[EAX] = DATA0
    assert fault(rig, "lldt", b"\x0f\x00", rm=EAX, size=2) == (GP, DATA0)


# --- LAR, LSL, VERR, VERW, ARPL --------------------------------------------------------------


def test_lar_returns_access_rights_of_visible_segment(rig: Rig) -> None:
    rig.cpu.regs[EAX] = DATA0
    run(rig, "lar", b"\x0f\x02", reg=EBX, rm=EAX)
    high = rig.memory.read32(GDT + DATA0 + 4)
    assert zf(rig) and rig.cpu.regs[EBX] == high & 0x00F0FF00


def test_lar_of_ring0_segment_at_cpl3_clears_zf(rig: Rig) -> None:
    ring3(rig)
    rig.cpu.regs[EBX] = 0x55
    rig.cpu.regs[EAX] = DATA0
    run(rig, "lar", b"\x0f\x02", reg=EBX, rm=EAX)
    assert not zf(rig) and rig.cpu.regs[EBX] == 0x55


def test_lar_reports_call_gates_but_lsl_does_not(rig: Rig) -> None:
    gate = rig.gdt(FREE, call_gate(CODE0, 0, dpl=3))
    rig.cpu.regs[EAX] = gate
    run(rig, "lar", b"\x0f\x02", reg=EBX, rm=EAX)
    assert zf(rig)
    run(rig, "lsl", b"\x0f\x03", reg=EBX, rm=EAX)
    assert not zf(rig)


def test_lsl_gives_byte_granular_limit(rig: Rig) -> None:
    rig.cpu.regs[EAX] = DATA0
    run(rig, "lsl", b"\x0f\x03", reg=EBX, rm=EAX)
    assert zf(rig) and rig.cpu.regs[EBX] == 0xFFFFFFFF
    rig.cpu.regs[EAX] = TSS_SEL
    run(rig, "lsl", b"\x0f\x03", reg=EBX, rm=EAX)
    assert zf(rig) and rig.cpu.regs[EBX] == TSS32_SIZE - 1


def test_lar_of_null_selector_clears_zf(rig: Rig) -> None:
    rig.cpu.set_eflags(ZF, ZF)
    rig.cpu.regs[EAX] = 0
    run(rig, "lar", b"\x0f\x02", reg=EBX, rm=EAX)
    assert not zf(rig)


@pytest.mark.parametrize(
    ("selector", "cpl3", "readable", "writable"),
    [
        (DATA0, False, True, True),
        (DATA0, True, False, False),
        (DATA3, True, True, True),
        (CODE0, False, True, False),
        (CONFORMING0, True, True, False),  # conforming code: no privilege check
        (TSS_SEL, False, False, False),
        (DATA2, False, True, True),
    ],
)
def test_verr_verw(rig: Rig, selector: int, cpl3: bool, readable: bool, writable: bool) -> None:
    if cpl3:
        ring3(rig)
    rig.cpu.regs[EAX] = selector
    run(rig, "verr", b"\x0f\x00", rm=EAX, size=2)
    assert zf(rig) is readable
    run(rig, "verw", b"\x0f\x00", rm=EAX, size=2)
    assert zf(rig) is writable


def test_arpl_raises_rpl_to_the_source(rig: Rig) -> None:
    rig.cpu.regs[EAX] = 0x10
    rig.cpu.regs[EBX] = 0x1B
    run(rig, "arpl", b"\x63", rm=EAX, reg=EBX, size=2)
    assert zf(rig) and rig.cpu.regs[EAX] == 0x13
    run(rig, "arpl", b"\x63", rm=EAX, reg=EBX, size=2)
    assert not zf(rig)


# --- control registers -----------------------------------------------------------------------


def test_mov_cr3_loads_mmu_and_reads_back(rig: Rig) -> None:
    rig.cpu.regs[EAX] = 0x20000
    run(rig, "mov_to_cr", b"\x0f\x22", reg=3, rm=EAX)
    assert rig.cpu.cr3 == 0x20000
    run(rig, "mov_from_cr", b"\x0f\x20", reg=3, rm=EBX)
    assert rig.cpu.regs[EBX] == 0x20000


def test_mov_cr0_pg_without_pe_is_gp0(rig: Rig) -> None:
    rig.cpu.regs[EAX] = CR0_PG
    assert fault(rig, "mov_to_cr", b"\x0f\x22", reg=0, rm=EAX) == (GP, 0)


def test_mov_cr0_clearing_pe_is_gp0_no_real_mode(rig: Rig) -> None:
    rig.cpu.regs[EAX] = 0
    assert fault(rig, "mov_to_cr", b"\x0f\x22", reg=0, rm=EAX) == (GP, 0)


def test_mov_cr4_with_unmodelled_bit_is_gp0(rig: Rig) -> None:
    rig.cpu.regs[EAX] = 1 << 5  # PAE
    assert fault(rig, "mov_to_cr", b"\x0f\x22", reg=4, rm=EAX) == (GP, 0)


def test_mov_crn_at_cpl3_is_gp0(rig: Rig) -> None:
    ring3(rig)
    assert fault(rig, "mov_from_cr", b"\x0f\x20", reg=0, rm=EAX) == (GP, 0)


def test_mov_to_cr_cost_is_the_crn_figure(rig: Rig) -> None:
    rig.cpu.regs[EAX] = CR0_PE
    t = rig.cpu.tsc
    run(rig, "mov_to_cr", b"\x0f\x22", reg=0, rm=EAX)
    assert rig.cpu.tsc - t == rig.cpu.profile.table["mov_to_cr0"] == 16


def test_invlpg_reaches_the_mmu(rig: Rig) -> None:
    before = rig.cpu.mmu.stats.invlpgs
    run(rig, "invlpg", b"\x0f\x01", mem=True, disp=0x5123)
    assert rig.cpu.mmu.stats.invlpgs == before + 1


# --- CPUID, RDTSC ----------------------------------------------------------------------------


def test_cpuid_vendor_says_lavsim(rig: Rig) -> None:
    rig.cpu.regs[EAX] = 0
    run(rig, "cpuid", b"\x0f\xa2")
    regs = rig.cpu.regs
    vendor = b"".join(regs[r].to_bytes(4, "little") for r in (EBX, EDX, ECX))
    assert vendor == CPUID_VENDOR and b"Lavsim" in vendor and regs[EAX] == 1


def test_cpuid_leaf1_signature_by_profile() -> None:
    p5 = Rig("pentium")
    p5.cpu.regs[EAX] = 1
    run(p5, "cpuid", b"\x0f\xa2")
    assert (p5.cpu.regs[EAX] >> 8) & 0xF == 5
    assert p5.cpu.regs[EDX] & (1 << 4), "TSC feature bit"


def test_rdtsc_reads_the_cycle_counter(rig: Rig) -> None:
    rig.cpu.tsc = 0x1_2345_6789
    run(rig, "rdtsc", b"\x0f\x31")
    assert (rig.cpu.regs[EDX], rig.cpu.regs[EAX]) == (1, 0x2345_6789)


def test_rdtsc_with_tsd_at_cpl3_is_gp0(rig: Rig) -> None:
    rig.cpu.cr4 = 1 << 2
    ring3(rig)
    assert fault(rig, "rdtsc", b"\x0f\x31") == (GP, 0)


# --- I/O, CLI/STI, HLT -----------------------------------------------------------------------


def test_in_out_reach_the_bus(rig: Rig) -> None:
    written: list[tuple[int, int, int]] = []
    rig.cpu.io_write = lambda port, size, value: written.append((port, size, value))
    rig.cpu.io_read = lambda port, size: 0xAB if port == 0x60 else 0
    rig.cpu.regs[EAX] = 0x41
    run(rig, "out", b"\xe6", imm=0xE9, size=1)
    rig.cpu.regs[EDX] = 0x60
    run(rig, "in_", b"\xec", size=1)
    assert written == [(0xE9, 1, 0x41)] and rig.cpu.regs[EAX] & 0xFF == 0xAB


def test_io_at_cpl_above_iopl_is_gp0(rig: Rig) -> None:
    ring3(rig)
    assert fault(rig, "out", b"\xe6", imm=0xE9, size=1) == (GP, 0)
    rig.cpu.set_eflags(0x3000, 0x3000)  # IOPL 3
    run(rig, "out", b"\xe6", imm=0xE9, size=1)


def test_cli_sti_follow_iopl(rig: Rig) -> None:
    run(rig, "sti", b"\xfb", length=1)
    assert rig.cpu.get_eflags() & IF
    ring3(rig)
    assert fault(rig, "cli", b"\xfa", length=1) == (GP, 0)


def test_hlt_halts_at_cpl0_and_is_gp0_at_cpl3(rig: Rig) -> None:
    run(rig, "hlt", b"\xf4", length=1)
    assert rig.cpu.halted
    ring3(rig)
    assert fault(rig, "hlt", b"\xf4", length=1) == (GP, 0)


@pytest.mark.parametrize(("handler", "opcode"), [("invd", b"\x0f\x08"), ("wbinvd", b"\x0f\x09")])
def test_invd_and_wbinvd_at_cpl3_are_gp0(rig: Rig, handler: str, opcode: bytes) -> None:
    ring3(rig)
    assert fault(rig, handler, opcode) == (GP, 0)


@pytest.mark.parametrize(("handler", "opcode"), [("invd", b"\x0f\x08"), ("wbinvd", b"\x0f\x09")])
def test_invd_and_wbinvd_at_cpl0_change_no_register(rig: Rig, handler: str, opcode: bytes) -> None:
    regs = list(rig.cpu.regs)
    flags = rig.cpu.get_eflags()
    run(rig, handler, opcode)
    assert list(rig.cpu.regs) == regs and rig.cpu.get_eflags() == flags
