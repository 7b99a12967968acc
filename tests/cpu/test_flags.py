"""EFLAGS status flags by instruction, as the SDM Vol. 2 instruction pages define them, and the
lazy-flags machinery (conditions evaluated from the record equal those from settled flags)."""

from __future__ import annotations

import pytest
from cpu_harness import execute
from hypothesis import given
from hypothesis import strategies as st

from lavsim.cpu import flags as fl
from lavsim.cpu.state import AF, CF, OF, PF, SF, ZF

STATUS = CF | PF | AF | ZF | SF | OF


def status_after(code: bytes, eflags: int = 2, **regs: int) -> int:
    b = execute(code, eflags=eflags, **regs)
    return b.cpu.get_eflags() & STATUS


def test_add_sets_cf_af_of_zf_pf() -> None:
    # 0xFFFFFFFF + 1 = 0: CF, ZF, AF, PF (0 has even parity); no OF
    assert status_after(b"\x01\xd8", eax=0xFFFFFFFF, ebx=1) == CF | ZF | AF | PF


def test_add_signed_overflow_sets_of_and_sf() -> None:
    assert status_after(b"\x01\xd8", eax=0x7FFFFFFF, ebx=1) == OF | SF | AF | PF


def test_sub_borrow_sets_cf_and_sf() -> None:
    # 0 - 1 = 0xFFFFFFFF
    assert status_after(b"\x29\xd8", eax=0, ebx=1) == CF | SF | AF | PF


def test_cmp_equal_sets_zf_only_plus_pf() -> None:
    assert status_after(b"\x39\xd8", eax=5, ebx=5) == ZF | PF


def test_adc_uses_carry_in() -> None:
    # CF=1: 0xFFFFFFFF + 0 + 1 = 0 with carry
    assert status_after(b"\x11\xd8", eflags=2 | CF, eax=0xFFFFFFFF, ebx=0) & (CF | ZF) == CF | ZF


def test_sbb_uses_borrow_in() -> None:
    assert status_after(b"\x19\xd8", eflags=2 | CF, eax=0, ebx=0) & (CF | SF) == CF | SF


def test_logic_ops_clear_cf_and_of() -> None:
    for code in (b"\x21\xd8", b"\x09\xd8", b"\x31\xd8", b"\x85\xd8"):
        got = status_after(code, eflags=2 | CF | OF, eax=0x80000000, ebx=0x80000001)
        assert got & (CF | OF) == 0


def test_inc_and_dec_preserve_cf() -> None:
    assert status_after(b"\x40", eflags=2 | CF, eax=0xFFFFFFFF) & (CF | ZF) == CF | ZF
    assert status_after(b"\x48", eflags=2, eax=0) & (CF | SF) == SF


def test_inc_after_cmp_keeps_the_cmp_carry() -> None:
    # cmp eax, ebx (borrow) ; inc ecx: CF from the CMP survives
    assert status_after(b"\x39\xd8\x41", eax=0, ebx=1, ecx=5) & CF == CF


def test_neg_sets_cf_unless_zero() -> None:
    assert status_after(b"\xf7\xd8", eax=0) & CF == 0
    assert status_after(b"\xf7\xd8", eax=3) & CF == CF
    assert status_after(b"\xf7\xd8", eax=0x80000000) & OF == OF


def test_shift_by_zero_leaves_flags_untouched() -> None:
    before = 2 | CF | OF | ZF
    assert status_after(b"\xc1\xe0\x00", eflags=before, eax=1) == CF | OF | ZF
    assert status_after(b"\xd3\xe0", eflags=before, eax=1, ecx=32) == CF | OF | ZF  # 32 & 31 = 0


def test_shl_by_one_defines_of_as_msb_xor_cf() -> None:
    # 0x40000000 << 1 = 0x80000000: CF=0, MSB=1 -> OF=1
    assert status_after(b"\xd1\xe0", eax=0x40000000) & (CF | OF | SF) == OF | SF
    # 0xC0000000 << 1: CF=1, MSB=1 -> OF=0
    assert status_after(b"\xd1\xe0", eax=0xC0000000) & (CF | OF) == CF


def test_shr_by_one_of_is_original_msb_and_sar_clears_of() -> None:
    assert status_after(b"\xd1\xe8", eax=0x80000001) & (CF | OF) == CF | OF
    assert status_after(b"\xd1\xf8", eax=0x80000001) & (CF | OF | SF) == CF | SF


def test_rotates_change_only_cf_and_of() -> None:
    before = 2 | ZF | SF | PF | AF
    got = status_after(b"\xd1\xc0", eflags=before, eax=0x80000000)  # rol eax,1 -> 1, CF=1
    assert got & (ZF | SF | PF | AF) == ZF | SF | PF | AF
    assert got & (CF | OF) == CF | OF  # OF = MSB(0x1)=0 XOR CF=1


def test_rcr_by_one_of_uses_original_msb_xor_cf() -> None:
    assert status_after(b"\xd1\xd8", eflags=2 | CF, eax=0) & (CF | OF) == OF


def test_mul_sets_cf_and_of_when_high_half_nonzero() -> None:
    assert status_after(b"\xf7\xe3", eax=0x10000, ebx=0x10000) & (CF | OF) == CF | OF
    assert status_after(b"\xf7\xe3", eax=3, ebx=4) & (CF | OF) == 0


def test_imul_cf_of_when_truncation_changes_value() -> None:
    assert status_after(b"\x0f\xaf\xc3", eax=0x40000000, ebx=2) & (CF | OF) == CF | OF
    assert status_after(b"\x0f\xaf\xc3", eax=0xFFFFFFFF, ebx=2) & (CF | OF) == 0  # -1*2


@given(st.sampled_from([fl.ADD, fl.SUB, fl.ADC, fl.SBB, fl.LOGIC, fl.INC, fl.DEC]),
       st.sampled_from([1, 2, 4]), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 1), st.integers(0, 15))
def test_condition_from_lazy_record_equals_condition_from_settled_flags(
        kind: int, size: int, a: int, b: int, c: int, cc: int) -> None:
    m = fl.MASK[size]
    a &= m
    b &= m
    if kind == fl.ADD:
        lazy: tuple[int, ...] = (kind, size, (a + b) & m, a, b)
    elif kind == fl.SUB:
        lazy = (kind, size, (a - b) & m, a, b)
    elif kind == fl.ADC:
        lazy = (kind, size, (a + b + c) & m, a, b, c)
    elif kind == fl.SBB:
        lazy = (kind, size, (a - b - c) & m, a, b, c)
    elif kind == fl.LOGIC:
        lazy = (kind, size, a & b)
    else:
        lazy = (kind, size, (a + (1 if kind == fl.INC else -1)) & m, a, c)

    class S:
        eflags = 2
        lazy_flags: tuple[int, ...] | None = None

    s = S()
    s.lazy_flags = lazy
    direct = fl.condition(s, cc)  # type: ignore[arg-type]
    settled = fl.evaluate(fl.compute(lazy), cc)
    assert direct == settled


@pytest.mark.parametrize("cc,taken", [(4, True), (5, False), (2, False), (3, True),
                                      (12, False), (15, False), (14, True)])
def test_jcc_after_cmp_equal(cc: int, taken: bool) -> None:
    # cmp eax, ebx (equal); jcc +1; inc ecx
    b = execute(b"\x39\xd8" + bytes([0x70 + cc, 1]) + b"\x41", eax=7, ebx=7, ecx=0)
    assert b.cpu.regs[1] == (0 if taken else 1)
