"""Integer instruction semantics by the SDM Vol. 2 pages: results, #DE, stack rules, POPF
privilege rules, ENTER/LEAVE, restartability on faults, near control transfer and cycles."""

from __future__ import annotations

from cpu_harness import CODE, DATA, STACK_TOP, Bare, execute

from lavsim.cpu.state import CS, DF, ESP, IF, IOPL, SS
from lavsim.faults import DE, GP, PF
from lavsim.mmu.segmentation import SegmentCache

EAX, ECX, EDX, EBX, _, EBP, ESI, EDI = range(8)


def le(v: int) -> bytes:
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


def test_div_by_zero_raises_de_at_the_instruction() -> None:
    b = execute(b"\xf7\xf3", eax=10, edx=0, ebx=0)
    fault, eip = b.faults[0]
    assert (fault.vector, eip) == (DE, CODE)
    assert b.cpu.regs[EAX] == 10


def test_div_quotient_overflow_raises_de() -> None:
    b = execute(b"\xf7\xf3", eax=0, edx=5, ebx=5)
    assert b.faults[0][0].vector == DE


def test_idiv_int_min_by_minus_one_raises_de() -> None:
    b = execute(b"\x99\xf7\xfb", eax=0x80000000, ebx=0xFFFFFFFF)
    assert b.faults[0][0].vector == DE


def test_idiv_truncates_toward_zero_remainder_takes_dividend_sign() -> None:
    b = execute(b"\x99\xf7\xfb", eax=(-7) & 0xFFFFFFFF, ebx=2)
    assert b.cpu.regs[EAX] == (-3) & 0xFFFFFFFF and b.cpu.regs[EDX] == (-1) & 0xFFFFFFFF


def test_div8_uses_ax_and_stores_al_ah() -> None:
    b = execute(b"\xf6\xf3", eax=0x1234_0107, ebx=0x10)  # AX=0x0107 / 0x10
    assert b.cpu.regs[EAX] == 0x1234_0710


def test_mul8_writes_ax() -> None:
    b = execute(b"\xf6\xe3", eax=0xFFFF_FF10, ebx=0x10)
    assert b.cpu.regs[EAX] == 0xFFFF_0100


def test_push_esp_pushes_the_old_value() -> None:
    b = execute(b"\x54")
    assert b.mem.read32(STACK_TOP - 4) == STACK_TOP and b.cpu.regs[ESP] == STACK_TOP - 4


def test_pop_to_memory_with_esp_base_uses_incremented_esp() -> None:
    b = Bare()
    b.mem.write32(STACK_TOP - 8, 0xAABBCCDD)
    b.cpu.regs[ESP] = STACK_TOP - 8
    execute(b"\x8f\x04\x24", b=b)  # pop [esp]
    assert b.mem.read32(STACK_TOP - 4) == 0xAABBCCDD and b.cpu.regs[ESP] == STACK_TOP - 4


def test_pushad_popad_round_trip_skips_esp() -> None:
    b = execute(b"\x60\xb8\x00\x00\x00\x00\x61", eax=1, ecx=2, edx=3, ebx=4, ebp=6, esi=7, edi=8)
    assert b.cpu.regs[:4] == [1, 2, 3, 4] and b.cpu.regs[ESP] == STACK_TOP
    assert b.mem.read32(STACK_TOP - 20) == STACK_TOP  # the original ESP image


def test_push_faulting_on_a_missing_page_changes_nothing() -> None:
    page = (STACK_TOP >> 12) - 1
    b = Bare(unmapped=(page,))
    execute(b"\x50", b=b, eax=5)
    fault, eip = b.faults[0]
    assert (fault.vector, eip, b.cpu.regs[ESP]) == (PF, CODE, STACK_TOP)


def test_pushad_partially_faulting_keeps_esp() -> None:
    page = (STACK_TOP >> 12) - 1
    b = Bare(unmapped=(page,))
    b.cpu.regs[ESP] = (page << 12) + 0x10  # the 8 pushes cross into the missing page below
    b.mem.write(CODE, b"\x60")
    b.run(1)
    assert b.faults and b.cpu.regs[ESP] == (page << 12) + 0x10


def test_rmw_to_readonly_page_faults_without_touching_flags_or_memory() -> None:
    page = DATA >> 12
    b = Bare(readonly=(page,))
    b.cpu.eflags = 2
    b.cpu.user = True  # CPL-3 access: a read-only page refuses the write
    b.cpu.seg[CS] = SegmentCache.flat(0x1B, 3, True)
    b.mem.write32(DATA, 0xFFFFFFFF)
    execute(b"\x83\x05" + le(DATA) + b"\x01", b=b)  # add dword [DATA], 1
    fault, eip = b.faults[0]
    assert fault.vector == PF and eip == CODE
    assert b.mem.read32(DATA) == 0xFFFFFFFF and b.cpu.get_eflags() & 0xFFF == 2


def test_popfd_at_cpl0_changes_iopl_and_if() -> None:
    b = execute(b"\x68" + le(IOPL | IF | 2) + b"\x9d")
    assert b.cpu.get_eflags() & (IOPL | IF) == IOPL | IF


def test_popfd_at_cpl3_keeps_iopl_and_if_when_cpl_above_iopl() -> None:
    b = Bare()
    b.cpu.set_cpl(3)
    b.cpu.seg[CS] = SegmentCache.flat(0x1B, 3, True)
    b.cpu.seg[SS] = SegmentCache.flat(0x23, 3, False)
    execute(b"\x68" + le(IOPL | IF | DF | 2) + b"\x9d", b=b)
    flags = b.cpu.get_eflags()
    assert flags & (IOPL | IF) == 0 and flags & DF


def test_enter_level_zero_and_leave() -> None:
    b = execute(b"\xc8\x10\x00\x00\xc9", ebp=0x1234)
    assert b.cpu.regs[EBP] == 0x1234 and b.cpu.regs[ESP] == STACK_TOP


def test_enter_nested_level_copies_frame_pointers() -> None:
    b = Bare()
    b.mem.write32(STACK_TOP - 0x100 - 4, 0x5555)  # the outer frame's saved pointer
    execute(b"\xc8\x08\x00\x02", b=b, ebp=STACK_TOP - 0x100)
    esp = STACK_TOP - 4 - 4 - 4 - 8
    assert b.cpu.regs[EBP] == STACK_TOP - 4
    assert b.mem.read32(STACK_TOP - 8) == 0x5555  # copied [ebp-4]
    assert b.mem.read32(STACK_TOP - 12) == STACK_TOP - 4  # frame_temp
    assert b.cpu.regs[ESP] == esp


def test_xchg_memory_swaps() -> None:
    b = Bare()
    b.mem.write32(DATA, 7)
    execute(b"\x87\x05" + le(DATA), b=b, eax=9)
    assert b.mem.read32(DATA) == 9 and b.cpu.regs[EAX] == 7


def test_movsx_movzx_lea_bswap_cdq() -> None:
    assert execute(b"\x0f\xbe\xc3", ebx=0x80).cpu.regs[EAX] == 0xFFFFFF80
    assert execute(b"\x0f\xb7\xc3", ebx=0xFFFF8001).cpu.regs[EAX] == 0x8001
    assert execute(b"\x8d\x44\x8b\x10", ebx=0x100, ecx=2).cpu.regs[EAX] == 0x118
    assert execute(b"\x0f\xc8", eax=0x11223344).cpu.regs[EAX] == 0x44332211
    assert execute(b"\x99", eax=0x80000000).cpu.regs[EDX] == 0xFFFFFFFF


def test_setcc_and_cmovcc() -> None:
    b = execute(b"\x39\xd8\x0f\x9c\xc1\x0f\x4c\xd3", eax=1, ebx=2, ecx=0xFF, edx=0)
    assert b.cpu.regs[ECX] == 1 and b.cpu.regs[EDX] == 2  # setl cl; cmovl edx, ebx


def test_rcl_through_carry() -> None:
    assert execute(b"\xd1\xd0", eflags=2 | 1, eax=0).cpu.regs[EAX] == 1


def test_shift_count_is_masked_to_five_bits() -> None:
    assert execute(b"\xc1\xe0\x21", eax=1).cpu.regs[EAX] == 2  # shl eax, 33 -> by 1


def test_call_and_ret_imm16() -> None:
    # call +1 ; ud2-ish skip: target is a ret 4 that releases a pushed argument
    code = b"\x6a\x05" + b"\xe8\x02\x00\x00\x00" + b"\xeb\x03" + b"\xc2\x04\x00"
    b = execute(code)
    assert b.cpu.regs[ESP] == STACK_TOP and b.faults[0][1] == CODE + len(code)


def test_near_jump_beyond_cs_limit_raises_gp_without_moving() -> None:
    b = Bare()
    b.cpu.seg[CS] = SegmentCache(0x08, 0, CODE + 0x100, 0xB, True, 0, True, True)
    execute(b"\xe9" + le(0x200), b=b)
    fault, eip = b.faults[0]
    assert (fault.vector, fault.error_code, eip) == (GP, 0, CODE)


def test_loop_counts_ecx_and_charges_taken_and_not_taken() -> None:
    b = execute(b"\xe2\xfe", b=Bare(paging=False), ecx=3)  # loop $
    t = b.cpu.profile.table
    assert b.cpu.regs[ECX] == 0
    assert b.cpu.tsc == 2 * t["loop.taken"] + t["loop.not_taken"] + t["ud2"]


def test_jcc_cycles_taken_vs_not_taken() -> None:
    b = execute(b"\x39\xc0\x74\x00", b=Bare(paging=False), eax=0)  # cmp; je +0 (taken)
    t = b.cpu.profile.table
    assert b.cpu.tsc == t["cmp.rr"] + t["jcc.taken"] + t["ud2"]


def test_tlb_misses_charge_page_walk_reads_and_ad_writes() -> None:
    b = execute(b"\x90\x90")
    t = b.cpu.profile.table
    stats = b.mmu.stats
    assert stats.walk_reads > 0 and stats.ad_writes > 0
    walk = stats.walk_reads * t["page_walk.read"] + stats.ad_writes * t["page_walk.ad_write"]
    assert b.cpu.tsc == 2 * t["nop"] + t["ud2"] + walk
