"""The instructions compiled C needs (issue 16) against the manual's rules, with hypothesis:
BT/BTS/BTR/BTC (register, immediate, bit strings in memory), BSF/BSR, SHLD/SHRD, XADD,
CMPXCHG, CMPXCHG8B (Pentium only), ENDBR32, and the x87 escapes (#UD, #NM by CR0)."""

from __future__ import annotations

from cpu_harness import CODE, DATA, Bare, execute
from hypothesis import given
from hypothesis import strategies as st

from lavsim.cpu import x87
from lavsim.cpu.state import AF, CF, OF, PF, SF, ZF
from lavsim.cpu.system import CPUID_CX8
from lavsim.faults import NM, UD
from lavsim.faults import PF as PAGE_FAULT

EAX, ECX, EDX, EBX, _, EBP, ESI, EDI = range(8)
STATUS = CF | PF | AF | ZF | SF | OF
U32 = st.integers(0, 2**32 - 1)
FLAGS = st.integers(0, 2**32 - 1).map(lambda v: 2 | (v & STATUS))


def le(v: int) -> bytes:
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


def flags(b: Bare) -> int:
    return b.cpu.get_eflags() & STATUS


@given(U32, st.integers(0, 255), st.integers(0, 3), FLAGS)
def test_bt_family_by_immediate_sets_cf_and_changes_one_bit_only(
    value: int, offset: int, op: int, eflags: int
) -> None:
    # bt/bts/btr/btc eax, imm8
    b = execute(bytes([0x0F, 0xBA, 0xE0 | (4 + op) << 3, offset]), eflags=eflags, eax=value)
    bit = offset % 32
    want = [value, value | 1 << bit, value & ~(1 << bit), value ^ 1 << bit][op]
    assert b.cpu.regs[EAX] == want
    assert flags(b) & CF == (CF if value >> bit & 1 else 0)
    assert flags(b) & ZF == eflags & ZF  # ZF unaffected (OF SF AF PF undefined)


@given(st.integers(-200, 200), st.integers(0, 3))
def test_bt_memory_with_register_offset_addresses_a_bit_string(offset: int, op: int) -> None:
    b = Bare()
    base = DATA + 0x100
    string = bytes(range(256)) * 2
    b.mem.write(DATA, string)
    # bts-family dword [esi], ecx
    execute(bytes([0x0F, (0xA3, 0xAB, 0xB3, 0xBB)[op], 0x0E]), b=b, esi=base, ecx=offset)
    byte_at = base + (offset >> 3) - DATA
    old = string[byte_at]
    bit = offset & 7
    assert b.cpu.get_eflags() & CF == (CF if old >> bit & 1 else 0)
    new = b.mem.read(DATA + byte_at, 1)[0]
    assert new == [old, old | 1 << bit, old & ~(1 << bit), old ^ 1 << bit][op]


@given(U32.filter(bool), st.booleans(), FLAGS)
def test_bsf_bsr_find_the_lowest_and_highest_set_bit(value: int, reverse: bool, eflags: int
                                                      ) -> None:
    b = execute(bytes([0x0F, 0xBD if reverse else 0xBC, 0xC2]), eflags=eflags, edx=value,
                eax=0x1234)
    want = value.bit_length() - 1 if reverse else (value & -value).bit_length() - 1
    assert b.cpu.regs[EAX] == want
    assert flags(b) & ZF == 0


def test_bsf_of_zero_sets_zf_and_leaves_the_destination() -> None:
    b = execute(b"\x0f\xbc\xc2", eax=0x1234, edx=0)
    assert b.cpu.regs[EAX] == 0x1234 and b.cpu.get_eflags() & ZF


@given(U32, U32, st.integers(0, 255), st.booleans(), st.booleans(), FLAGS)
def test_shld_shrd_shift_the_64_bit_concatenation(
    d: int, s: int, count: int, left: bool, by_cl: bool, eflags: int
) -> None:
    if by_cl:
        code = bytes([0x0F, 0xA5 if left else 0xAD, 0xD0])  # shld/shrd eax, edx, cl
    else:
        code = bytes([0x0F, 0xA4 if left else 0xAC, 0xD0, count])
    b = execute(code, eflags=eflags, eax=d, edx=s, ecx=count)
    n = count & 31
    if n == 0:
        assert b.cpu.regs[EAX] == d and flags(b) == eflags & STATUS
        return
    if left:
        wide = ((d << 32) | s) << n
        r, cf = (wide >> 32) & 0xFFFFFFFF, (wide >> 64) & 1
    else:
        wide = ((s << 32) | d) >> (n - 1)
        r, cf = (wide >> 1) & 0xFFFFFFFF, wide & 1
    assert b.cpu.regs[EAX] == r
    f = flags(b)
    assert f & CF == (CF if cf else 0)
    assert f & ZF == (ZF if r == 0 else 0) and f & SF == (SF if r >> 31 else 0)
    if n == 1:
        assert f & OF == (OF if (r ^ d) >> 31 else 0)


@given(U32, U32)
def test_xadd_exchanges_and_adds_with_add_flags(d: int, s: int) -> None:
    b = Bare()
    b.mem.write(DATA, le(d))
    execute(b"\xf0\x0f\xc1\x06", b=b, esi=DATA, eax=s)  # lock xadd [esi], eax
    r = (d + s) & 0xFFFFFFFF
    assert b.mem.read(DATA, 4) == le(r) and b.cpu.regs[EAX] == d
    assert b.cpu.get_eflags() & CF == (CF if d + s > 0xFFFFFFFF else 0)


@given(U32, U32, U32, st.booleans())
def test_cmpxchg_stores_or_loads_by_the_comparison(d: int, acc: int, src: int, equal: bool
                                                   ) -> None:
    acc = d if equal else acc
    b = Bare()
    b.mem.write(DATA, le(d))
    execute(b"\xf0\x0f\xb1\x0e", b=b, esi=DATA, eax=acc, ecx=src)  # lock cmpxchg [esi], ecx
    if acc == d:
        assert b.mem.read(DATA, 4) == le(src) and b.cpu.get_eflags() & ZF
    else:
        assert b.mem.read(DATA, 4) == le(d) and b.cpu.regs[EAX] == d
        assert not b.cpu.get_eflags() & ZF
    assert b.cpu.get_eflags() & CF == (CF if acc < d else 0)  # as CMP EAX, dest


def test_cmpxchg_writes_a_read_only_page_even_when_the_comparison_fails() -> None:
    page = DATA >> 12
    b = Bare(readonly=(page,))
    b.cpu.cr0 |= 1 << 16  # WP: the supervisor too honours read-only pages
    b.mmu.set_controls(b.cpu.cr0, 0)
    b.mem.write(DATA, le(5))
    execute(b"\x0f\xb1\x0e", b=b, esi=DATA, eax=7, ecx=9)
    fault, eip = b.faults[0]
    assert (fault.vector, eip) == (PAGE_FAULT, CODE)
    assert b.cpu.regs[EAX] == 7  # nothing changed


@given(U32, U32, U32, U32, st.booleans(), FLAGS)
def test_cmpxchg8b_on_the_pentium_changes_only_zf(
    lo: int, hi: int, new_lo: int, new_hi: int, equal: bool, eflags: int
) -> None:
    b = Bare()
    b.cpu.cpuid_signature = 0x521
    b.mem.write(DATA, le(lo) + le(hi))
    eax, edx = (lo, hi) if equal else (lo ^ 1, hi)
    execute(b"\x0f\xc7\x0e", b=b, eflags=eflags, esi=DATA, eax=eax, edx=edx, ebx=new_lo,
            ecx=new_hi)
    if equal:
        assert b.mem.read(DATA, 8) == le(new_lo) + le(new_hi)
    else:
        assert (b.cpu.regs[EAX], b.cpu.regs[EDX]) == (lo, hi)
        assert b.mem.read(DATA, 8) == le(lo) + le(hi)
    assert flags(b) == (eflags & STATUS & ~ZF) | (ZF if equal else 0)


def test_cmpxchg8b_is_undefined_on_the_486_as_cpuid_says() -> None:
    for signature, defined in ((0x480, False), (0x521, True)):
        b = Bare()
        b.cpu.cpuid_signature = signature
        execute(b"\x0f\xc7\x0e", b=b, esi=DATA)
        fault, eip = b.faults[0]
        assert (fault.vector == UD and eip == CODE) != defined
        c = Bare()
        c.cpu.cpuid_signature = signature
        execute(b"\xb8\x01\x00\x00\x00\x0f\xa2", b=c)  # cpuid leaf 1
        assert bool(c.cpu.regs[EDX] & CPUID_CX8) == defined


def test_cmpxchg8b_with_a_register_operand_is_undefined() -> None:
    b = Bare()
    b.cpu.cpuid_signature = 0x521
    execute(b"\x0f\xc7\xc8", b=b)
    assert b.faults[0][1] == CODE and b.faults[0][0].vector == UD


def test_endbr32_is_a_no_op_and_other_0f_1e_bytes_are_undefined() -> None:
    b = execute(b"\xf3\x0f\x1e\xfb\x40", eax=1)
    assert b.cpu.regs[EAX] == 2  # reached the INC after it
    for code in (b"\x0f\x1e\xfb", b"\xf3\x0f\x1e\xfa", b"\xf3\x0f\x1e\x03"):
        b = execute(code)
        assert b.faults[0][0].vector == UD and b.faults[0][1] == CODE, code.hex()


def test_x87_instructions_raise_ud_or_nm_by_cr0() -> None:
    for cr0_bits, vector in ((0, UD), (1 << 2, NM), (1 << 3, NM)):  # EM, TS
        b = Bare()
        b.cpu.cr0 |= cr0_bits
        execute(b"\xd9\xe8", b=b)  # fld1
        assert b.faults[0][0].vector == vector and b.faults[0][1] == CODE


def test_x87_instructions_are_named_for_reports() -> None:
    assert x87.describe(b"\xd9\xe8") == "x87 instruction fld1 (d9 e8)"
    assert x87.describe(b"\xdd\x05\x00\x00\x00\x00") == (
        "x87 instruction fld qword ptr [mem] (dd 05)")
    assert x87.describe(b"\xdd\xd9") == "x87 instruction fstp st(1) (dd d9)"
    assert x87.describe(b"\x90") is None
