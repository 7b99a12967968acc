"""The decoder: prefixes, ModRM/SIB forms, operand sizes, #UD cases, LOCK rules, the 15-byte
limit and instruction-fetch faults (SDM Vol. 2 chapter 2; Vol. 3 5.3 for the CS limit)."""

from __future__ import annotations

import pytest
from cpu_harness import CODE, Bare

from lavsim.cpu.decoder import decode
from lavsim.cpu.insn import Insn
from lavsim.cpu.state import CS, DS, ES, FS, SS
from lavsim.faults import GP, PF, PF_U, UD, CpuFault
from lavsim.mmu.segmentation import SegmentCache


def dec(code: bytes, b: Bare | None = None) -> Insn:
    b = b or Bare()
    b.load(code)
    return decode(b.cpu, CODE)


def fault_of(code: bytes, b: Bare | None = None) -> CpuFault:
    with pytest.raises(CpuFault) as info:
        dec(code, b)
    return info.value


def test_modrm_register_form() -> None:
    i = dec(bytes([0x01, 0xD8]))  # add eax, ebx
    assert (i.form.mnemonic, i.mem, i.rm, i.reg, i.size, i.length) == ("add", False, 0, 3, 4, 2)


def test_sib_with_base_index_scale_and_disp8() -> None:
    i = dec(bytes([0x8B, 0x44, 0x8B, 0xF0]))  # mov eax, [ebx+ecx*4-16]
    assert (i.mem, i.base, i.index, i.scale, i.disp, i.seg) == (True, 3, 1, 4, -16, DS)


def test_sib_without_base_takes_disp32() -> None:
    i = dec(bytes([0x8B, 0x04, 0x8D]) + (0x1000).to_bytes(4, "little"))  # [ecx*4+0x1000]
    assert (i.base, i.index, i.scale, i.disp, i.length) == (-1, 1, 4, 0x1000, 7)


def test_mod0_rm5_is_disp32_without_base() -> None:
    i = dec(bytes([0x8B, 0x05, 0x78, 0x56, 0x34, 0x12]))
    assert (i.base, i.index, i.disp) == (-1, -1, 0x12345678)


def test_ebp_and_esp_bases_default_to_ss() -> None:
    assert dec(bytes([0x8B, 0x45, 0x08])).seg == SS  # [ebp+8]
    assert dec(bytes([0x8B, 0x04, 0x24])).seg == SS  # [esp]


def test_segment_override_last_one_wins() -> None:
    assert dec(bytes([0x26, 0x64, 0x8B, 0x45, 0x08])).seg == FS


def test_operand_size_prefix_selects_16_bit_and_immediate_width() -> None:
    i = dec(bytes([0x66, 0xB8, 0x34, 0x12]))  # mov ax, 0x1234
    assert (i.size, i.imm, i.length) == (2, 0x1234, 4)


def test_simm8_is_sign_extended_to_operand_size() -> None:
    assert dec(bytes([0x83, 0xC0, 0xFF])).imm == 0xFFFFFFFF
    assert dec(bytes([0x66, 0x83, 0xC0, 0xFF])).imm == 0xFFFF


def test_size_variants_sharing_an_opcode_follow_the_operand_size() -> None:
    assert dec(b"\x60").form.mnemonic == "pushad"
    i = dec(b"\x66\x60")
    assert i.form.handler == "pushad" and "size16" in i.form.attrs and i.size == 2
    assert dec(b"\x66\xa5").form.mnemonic == "movsw"


def test_0x90_is_nop_not_xchg() -> None:
    assert dec(b"\x90").form.mnemonic == "nop"
    i = dec(b"\x93")
    assert (i.form.mnemonic, i.reg, i.rm) == ("xchg", 3, 0)


def test_rel8_branch_target_is_next_eip_plus_displacement() -> None:
    i = dec(bytes([0x74, 0xFE]))  # je $
    assert i.imm == CODE and i.cc == 4


def test_rel32_and_rel16_targets() -> None:
    assert dec(b"\xe8" + (0x10).to_bytes(4, "little")).imm == CODE + 5 + 0x10
    assert dec(b"\x66\xe9\x00\x00").imm == (CODE + 4) & 0xFFFF


def test_ptr16_32_and_enter_second_immediate() -> None:
    i = dec(b"\x9a" + (0x1234).to_bytes(4, "little") + b"\x08\x00")
    assert (i.imm, i.imm2, i.length) == (0x1234, 8, 7)
    i = dec(b"\xc8\x10\x00\x02")
    assert (i.imm, i.imm2) == (0x10, 2)


def test_moffs_is_a_memory_operand_with_absolute_offset() -> None:
    i = dec(b"\xa1" + (0x2000).to_bytes(4, "little"))
    assert (i.mem, i.base, i.index, i.disp, i.reg) == (True, -1, -1, 0x2000, 0)


@pytest.mark.parametrize("code", [
    b"\x0f\xff",        # undefined two-byte opcode
    b"\xd6",            # undefined one-byte opcode (SALC)
    b"\xf7\xc8",        # F7 /1 undefined
    b"\xff\xf8",        # FF /7 undefined
    b"\x8d\xc0",        # LEA with a register operand
    b"\xff\xd8",        # CALL far m16:32 with a register operand
    b"\x0f\x01\xd0",    # LGDT with a register operand
    b"\x8e\xc8",        # MOV CS, ax
    b"\x8c\xf0",        # Sreg 6
    b"\x0f\x20\xc8",    # MOV eax, CR1
    b"\x67\x8b\x00",    # address-size prefix: not in the subset
    b"\x0f\x0b",        # UD2
])
def test_undefined_encodings_raise_ud(code: bytes) -> None:
    b = Bare()
    b.load(code)
    b.step()
    assert b.faults and b.faults[0][0].vector == UD and b.faults[0][1] == CODE


def test_lock_is_legal_on_lockable_memory_destination() -> None:
    assert dec(bytes([0xF0, 0x01, 0x18])).lock  # lock add [eax], ebx


@pytest.mark.parametrize("code", [
    bytes([0xF0, 0x01, 0xD8]),  # register destination
    bytes([0xF0, 0x03, 0x18]),  # reg <- r/m form: destination is a register
    bytes([0xF0, 0x39, 0x18]),  # CMP is not lockable
    bytes([0xF0, 0x90]),        # NOP
])
def test_lock_elsewhere_raises_ud(code: bytes) -> None:
    assert fault_of(code).vector == UD


def test_fifteen_bytes_decode_sixteen_raise_gp() -> None:
    ok = b"\x3e" * 5 + b"\x81\x05" + (0x200000).to_bytes(4, "little") + b"\x01\x00\x00\x00"
    assert len(ok) == 15 and dec(ok).length == 15
    assert fault_of(b"\x3e" + ok).vector == GP


def test_fetch_beyond_cs_limit_raises_gp0() -> None:
    b = Bare()
    b.cpu.seg[CS] = SegmentCache(0x08, 0, CODE + 2, 0xB, True, 0, True, True)
    b.load(b"\xb8\x01\x00\x00\x00")  # 5 bytes, only 3 inside the limit
    f = fault_of(b"\xb8\x01\x00\x00\x00", b)
    assert (f.vector, f.error_code) == (GP, 0)


def test_instruction_crossing_into_a_missing_page_faults_at_that_page() -> None:
    page = (CODE >> 12) + 1
    b = Bare(unmapped=(page,))
    start = (page << 12) - 2
    b.mem.write(start, b"\xb8\x01\x00\x00\x00")
    b.cpu.eip = start
    b.step()
    fault, eip = b.faults[0]
    assert (fault.vector, fault.cr2, eip) == (PF, page << 12, start)
    assert not fault.error_code & PF_U


def test_two_byte_instruction_ending_at_page_end_does_not_touch_next_page() -> None:
    page = (CODE >> 12) + 1
    b = Bare(unmapped=(page,))
    start = (page << 12) - 2
    b.mem.write(start, b"\x01\xd8")
    b.cpu.eip = start
    b.step()
    assert not b.faults and b.cpu.eip == page << 12


def test_string_destination_is_es_and_source_honours_override() -> None:
    i = dec(b"\x64\xa5")
    assert (i.seg, i.rep) == (FS, 0)
    assert dec(b"\xf3\xa5").rep == 0xF3
    assert ES == 0


def test_base_cycles_come_from_the_profile_by_form_letters() -> None:
    b = Bare()
    t = b.cpu.profile.table
    assert dec(bytes([0x01, 0xD8]), b).cycles == t["alu.rr"]
    assert dec(bytes([0x01, 0x18]), b).cycles == t["alu.mr"]
    assert dec(bytes([0x03, 0x18]), b).cycles == t["alu.rm"]
    assert dec(bytes([0x83, 0x00, 0x01]), b).cycles == t["alu.mi"]
    assert dec(bytes([0xD1, 0xE0]), b).cycles == t["shift.r1"]
    assert dec(bytes([0xD3, 0x20]), b).cycles == t["shift.mcl"]
    assert dec(bytes([0x87, 0x18]), b).timing == "xchg.rm"
    assert dec(bytes([0x74, 0x00]), b).cycles == t["jcc.not_taken"]
    assert dec(bytes([0xF3, 0xA5]), b).cycles == t["rep.base"]
    assert dec(bytes([0xA5]), b).cycles == t["movs"]
