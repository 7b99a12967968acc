"""The page walk: SDM Vol. 3 §4.3 (32-bit paging), §4.6 (access rights), §4.7 (#PF error
code and CR2), §4.8 (Accessed and Dirty flags); entry encode/decode."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lavsim.faults import PF, PF_P, PF_U, PF_W, CpuFault
from lavsim.memory import PhysicalMemory
from lavsim.mmu.paging import PDE, PS, PTE, RW, US, A, D, G, P, allowed, walk

PD = 0x1000
PT = 0x2000
LIN = 0x00403ABC  # PDE index 1, PTE index 3, offset 0xABC
PAGE = 0x0007_7000
PDE_ADDR = PD + 4 * 1
PTE_ADDR = PT + 4 * 3


def tables(pde: int | None, pte: int | None) -> PhysicalMemory:
    """Memory holding a page directory at PD whose entry 1 points at the table PT."""
    mem = PhysicalMemory(16 << 20)
    if pde is not None:
        mem.write32(PDE_ADDR, PT | pde)
    if pte is not None:
        mem.write32(PTE_ADDR, PAGE | pte)
    return mem


def do_walk(mem: PhysicalMemory, write: bool = False, user: bool = False, wp: bool = False,
            pse: bool = False, linear: int = LIN):
    return walk(mem, PD, linear, write, user, wp, pse)


def test_4k_page_translates_and_sets_accessed_at_both_levels() -> None:
    mem = tables(P | RW | US, P | RW | US)
    r = do_walk(mem)
    assert r.fault is None
    assert r.physical == PAGE | 0xABC and r.frame == PAGE and not r.large
    assert (r.reads, r.ad_writes) == (2, 2)
    assert mem.read32(PDE_ADDR) & A and mem.read32(PTE_ADDR) & A
    assert not mem.read32(PTE_ADDR) & D and not r.d
    again = do_walk(mem)
    assert (again.reads, again.ad_writes) == (2, 0)  # A already set: nothing written back


def test_write_sets_dirty_in_the_pte_only() -> None:
    mem = tables(P | RW | US, P | RW | US)
    r = do_walk(mem, write=True)
    assert r.fault is None and r.d
    assert mem.read32(PTE_ADDR) & (A | D) == A | D
    assert not mem.read32(PDE_ADDR) & D  # a PDE that points to a table has no dirty flag
    assert r.ad_writes == 2  # PDE.A, and PTE.A|D in one write


@pytest.mark.parametrize(("write", "user"), list(itertools.product([False, True], repeat=2)))
def test_not_present_pde_faults_with_p_clear_and_writes_nothing(write: bool, user: bool) -> None:
    mem = tables(RW | US, P | RW | US)
    before = mem.digest()
    r = do_walk(mem, write=write, user=user)
    code = (PF_W if write else 0) | (PF_U if user else 0)
    assert r.fault == CpuFault(PF, code, LIN)
    assert r.fault.cr2 == LIN
    assert (r.reads, r.ad_writes) == (1, 0)
    assert mem.digest() == before


@pytest.mark.parametrize(("write", "user"), list(itertools.product([False, True], repeat=2)))
def test_not_present_pte_faults_with_p_clear(write: bool, user: bool) -> None:
    mem = tables(P | RW | US, RW | US)
    before = mem.digest()
    r = do_walk(mem, write=write, user=user)
    assert r.fault == CpuFault(PF, (PF_W if write else 0) | (PF_U if user else 0), LIN)
    assert (r.reads, r.ad_writes) == (2, 0)
    assert mem.digest() == before  # a refused access sets no Accessed flag


@pytest.mark.parametrize(
    ("pde", "pte", "write", "code"),
    [
        (P | RW, P | RW | US, False, PF_P | PF_U),  # directory U/S=0
        (P | RW | US, P | RW, False, PF_P | PF_U),  # table U/S=0
        (P | US, P | RW | US, True, PF_P | PF_W | PF_U),  # directory R/W=0
        (P | RW | US, P | US, True, PF_P | PF_W | PF_U),  # table R/W=0
    ],
)
def test_user_access_needs_us_and_user_write_needs_rw_at_both_levels(
    pde: int, pte: int, write: bool, code: int
) -> None:
    mem = tables(pde, pte)
    before = mem.digest()
    r = do_walk(mem, write=write, user=True, wp=False)
    assert r.fault == CpuFault(PF, code, LIN)
    assert mem.digest() == before


@pytest.mark.parametrize("readonly_at", ["pde", "pte"])
def test_supervisor_write_to_read_only_page_faults_only_with_wp(readonly_at: str) -> None:
    pde = P | US if readonly_at == "pde" else P | RW | US
    pte = P | US if readonly_at == "pte" else P | RW | US
    assert do_walk(tables(pde, pte), write=True, wp=False).fault is None
    r = do_walk(tables(pde, pte), write=True, wp=True)
    assert r.fault == CpuFault(PF, PF_P | PF_W, LIN)


def test_supervisor_reads_a_supervisor_page_and_user_does_not() -> None:
    mem = tables(P | RW, P | RW)
    assert do_walk(mem).fault is None
    assert do_walk(mem, user=True).fault == CpuFault(PF, PF_P | PF_U, LIN)


def test_combined_rights_follow_the_manual_for_every_flag_combination() -> None:
    # SDM Vol. 3 §4.6, written out independently of paging.allowed.
    for pde_us, pde_rw, pte_us, pte_rw, user, write, wp in itertools.product(
        [False, True], repeat=7
    ):
        pde = P | (US if pde_us else 0) | (RW if pde_rw else 0)
        pte = P | (US if pte_us else 0) | (RW if pte_rw else 0)
        r = do_walk(tables(pde, pte), write=write, user=user, wp=wp)
        user_page = pde_us and pte_us
        writable = pde_rw and pte_rw
        if user:
            ok = user_page and (writable or not write)
        else:
            ok = not write or writable or not wp
        assert (r.fault is None) == ok
        if r.fault is None:
            assert (r.us, r.rw) == (user_page, writable)
        else:
            assert r.fault.error_code == PF_P | (PF_W if write else 0) | (PF_U if user else 0)


def test_4mib_page_under_pse_maps_22_bits_and_keeps_a_d_in_the_pde() -> None:
    mem = PhysicalMemory(16 << 20)
    big = 0x0080_0000
    mem.write32(PDE_ADDR, big | P | RW | US | PS | G)
    r = do_walk(mem, write=True, user=True, pse=True)
    assert r.fault is None and r.large and r.large_base == big
    assert r.physical == big | (LIN & 0x3FFFFF)
    assert r.frame == r.physical & ~0xFFF
    assert r.g and r.d
    assert (r.reads, r.ad_writes) == (1, 1)
    assert mem.read32(PDE_ADDR) & (A | D) == A | D


def test_ps_bit_is_ignored_without_cr4_pse() -> None:
    mem = tables(P | RW | US | PS, P | RW | US)
    r = do_walk(mem, pse=False)
    assert r.fault is None and not r.large and r.physical == PAGE | 0xABC


@pytest.mark.parametrize(
    ("pde", "user", "write", "wp", "code"),
    [
        (P | RW | PS, True, False, False, PF_P | PF_U),
        (P | US | PS, True, True, False, PF_P | PF_U | PF_W),
        (P | US | PS, False, True, True, PF_P | PF_W),
        (RW | US | PS, False, False, False, 0),
    ],
)
def test_4mib_page_protection_faults(pde: int, user: bool, write: bool, wp: bool, code: int
                                     ) -> None:
    mem = PhysicalMemory(16 << 20)
    mem.write32(PDE_ADDR, 0x0040_0000 | pde)
    before = mem.digest()
    r = do_walk(mem, write=write, user=user, wp=wp, pse=True)
    assert r.fault == CpuFault(PF, code, LIN)
    assert r.reads == 1 and mem.digest() == before


def test_global_flag_is_reported_from_the_pte() -> None:
    assert do_walk(tables(P | RW, P | RW | G)).g
    assert not do_walk(tables(P | RW | G, P | RW)).g  # G in a table-pointing PDE is ignored


def test_linear_address_is_taken_modulo_4_gib() -> None:
    mem = tables(P | RW, P | RW)
    r = do_walk(mem, linear=(1 << 32) | LIN)
    assert r.fault is None and r.physical == PAGE | 0xABC


def test_allowed_is_the_permission_rule() -> None:
    assert allowed(True, False, False, True, True)
    assert not allowed(True, False, True, True, False)
    assert allowed(False, False, True, False, False)
    assert not allowed(False, False, True, False, True)


@given(st.integers(0, 0xFFFFFFFF))
def test_pde_and_pte_round_trip_every_bit_pattern(value: int) -> None:
    assert PDE.decode(value).encode() == value
    assert PTE.decode(value).encode() == value
    assert PDE.decode(PDE.decode(value).encode()) == PDE.decode(value)


def test_entry_fields_name_the_bits() -> None:
    pde = PDE.decode(0x00C0_0000 | P | RW | PS | G | (5 << 9))
    assert (pde.address, pde.p, pde.rw, pde.us, pde.ps, pde.g, pde.avail) == (
        0x00C0_0000, True, True, False, True, True, 5,
    )
    pte = PTE(address=0x1234_5000, p=True, us=True, d=True)
    assert pte.encode() == 0x1234_5000 | P | US | D
