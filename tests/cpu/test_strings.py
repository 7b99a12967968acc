"""String instructions: REP/REPE/REPNE, DF, ES:EDI destination, source override, per-item
restart after a fault, cycles, and the REP MOVSD/STOSD bulk path's equivalence with the
item-by-item path (results, cycles, TLB statistics and contents, A/D bits)."""

from __future__ import annotations

import pytest
from cpu_harness import CODE, DATA, Bare, execute
from hypothesis import given
from hypothesis import strategies as st

from lavsim.cpu import ops_string
from lavsim.cpu.state import DF, ES, FS
from lavsim.faults import PF
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.segmentation import SegmentCache

ECX, ESI, EDI = 1, 6, 7


def test_rep_movsb_copies_and_advances() -> None:
    b = Bare()
    b.mem.write(DATA, b"hello world")
    execute(b"\xf3\xa4", b=b, esi=DATA, edi=DATA + 0x100, ecx=11)
    assert b.mem.read(DATA + 0x100, 11) == b"hello world"
    assert (b.cpu.regs[ESI], b.cpu.regs[EDI], b.cpu.regs[ECX]) == (DATA + 11, DATA + 0x10B, 0)


def test_std_makes_string_ops_go_down() -> None:
    b = execute(b"\xfd\xab", eax=0x11223344, edi=DATA + 8)
    assert b.mem.read32(DATA + 8) == 0x11223344 and b.cpu.regs[EDI] == DATA + 4
    assert b.cpu.get_eflags() & DF


def test_repe_cmpsb_stops_at_first_difference() -> None:
    b = Bare()
    b.mem.write(DATA, b"abcX")
    b.mem.write(DATA + 0x100, b"abcY")
    execute(b"\xf3\xa6", b=b, esi=DATA, edi=DATA + 0x100, ecx=10)
    assert b.cpu.regs[ECX] == 6 and b.cpu.regs[ESI] == DATA + 4


def test_repne_scasb_finds_byte() -> None:
    b = Bare()
    b.mem.write(DATA, b"xyz\0")
    execute(b"\xf2\xae", b=b, eax=0, edi=DATA, ecx=100)
    assert b.cpu.regs[EDI] == DATA + 4 and b.cpu.regs[ECX] == 96


def test_destination_is_es_even_with_override_and_source_takes_override() -> None:
    b = Bare()
    b.cpu.seg[FS] = SegmentCache(0x30, DATA + 0x1000, 0xFFFF, 0x3, True, 0, True, True)
    b.cpu.seg[ES] = SegmentCache(0x38, DATA + 0x2000, 0xFFFF, 0x3, True, 0, True, True)
    b.mem.write32(DATA + 0x1010, 0xCAFEBABE)
    execute(b"\x64\xa5", b=b, esi=0x10, edi=0x20)  # movsd fs:[esi] -> es:[edi]
    assert b.mem.read32(DATA + 0x2020) == 0xCAFEBABE


def test_rep_with_ecx_zero_does_nothing_but_costs_rep_base() -> None:
    b = execute(b"\xf3\xa5", b=Bare(paging=False), ecx=0, esi=DATA, edi=DATA + 64)
    t = b.cpu.profile.table
    assert b.cpu.tsc == t["rep.base"] + t["ud2"]


def test_rep_cycles_are_base_plus_per_item() -> None:
    b = execute(b"\xf3\xa4", b=Bare(paging=False), ecx=7, esi=DATA, edi=DATA + 64)
    t = b.cpu.profile.table
    assert b.cpu.tsc == t["rep.base"] + 7 * t["rep_movs.per"] + t["ud2"]


def test_fault_mid_rep_leaves_registers_at_completed_items_and_restarts() -> None:
    page = (DATA >> 12) + 1
    b = Bare(unmapped=(page,))
    start = (page << 12) - 8  # two dwords fit before the missing page
    b.mem.write(CODE, b"\xf3\xab\x0f\x0b")
    b.cpu.regs[EDI], b.cpu.regs[ECX], b.cpu.regs[0] = start, 5, 0x55AA55AA
    b.run()
    fault, eip = b.faults[0]
    assert (fault.vector, fault.cr2, eip) == (PF, page << 12, CODE)
    assert b.cpu.regs[ECX] == 3 and b.cpu.regs[EDI] == page << 12
    # map the page and restart: the instruction finishes the remaining 3 items
    b.mem.write32(0x2000 + 4 * page, (page << 12) | 7)
    b.mmu.invlpg(page << 12)
    b.faults.clear()
    b.cpu.halted = False
    b.run()
    assert b.cpu.regs[ECX] == 0 and b.mem.read32((page << 12) + 8) == 0x55AA55AA


def _snapshot(b: Bare) -> tuple[object, ...]:
    s = b.mmu.stats
    tlbs = tuple((name, t.contents()) for name, t in b.mmu.tlbs.items())
    return (list(b.cpu.regs), b.cpu.tsc, b.cpu.get_eflags(), b.mem.digest(), s, tlbs)


def _run_rep(code: bytes, bulk: bool, config: MMUConfig, **regs: int) -> tuple[object, ...]:
    with pytest.MonkeyPatch.context() as m:
        if not bulk:
            m.setattr(ops_string, "bulk_movsd", lambda *args: 0)
            m.setattr(ops_string, "bulk_stosd", lambda *args: 0)
        b = Bare(config=config)
        for k in range(0, 0x3000, 4):
            b.mem.write32(DATA + k, k * 2654435761 & 0xFFFFFFFF)
        b = execute(code, b=b, **regs)
        return _snapshot(b)


@pytest.mark.parametrize("config", [MMUConfig.i486(), MMUConfig.pentium()],
                         ids=["i486", "pentium"])
@given(src=st.integers(0, 0x2000), dst=st.integers(0, 0x2000), count=st.integers(0, 0x500),
       stos=st.booleans())
def test_bulk_path_equals_item_path(config: MMUConfig, src: int, dst: int, count: int,
                                    stos: bool) -> None:
    code = b"\xf3\xab" if stos else b"\xf3\xa5"
    regs = dict(esi=DATA + src, edi=DATA + dst, ecx=count, eax=0x12345678)
    fast = _run_rep(code, True, config, **regs)
    slow = _run_rep(code, False, config, **regs)
    assert fast == slow


def test_bulk_path_is_taken_for_a_page_sized_copy() -> None:
    calls: list[int] = []
    original = ops_string.bulk_movsd

    def spy(cpu: object, seg: int, *bound: int) -> int:
        n = original(cpu, seg, *bound)  # type: ignore[arg-type]
        calls.append(n)
        return n

    ops_string.bulk_movsd = spy  # type: ignore[assignment]
    try:
        execute(b"\xf3\xa5", esi=DATA, edi=DATA + 0x1000, ecx=1024)
    finally:
        ops_string.bulk_movsd = original
    assert calls and max(calls) == 1024


# --- stops between iterations (interruptible REP) ----------------------------------------------

#: REP forms with their per-item key: MOVSB/MOVSD, STOSB/STOSD, LODSB, REPE CMPSB, REPNE SCASB.
REP_FORMS = {
    "movsb": b"\xf3\xa4", "movsd": b"\xf3\xa5", "stosb": b"\xf3\xaa", "stosd": b"\xf3\xab",
    "lodsb": b"\xf3\xac", "cmpsb": b"\xf3\xa6", "scasb": b"\xf2\xae",
}


def _run_rep_in_pieces(code: bytes, bulk: bool, config: MMUConfig, chunk: int | None,
                       **regs: int) -> tuple[object, ...]:
    """Run ``code`` + UD2 with ``cpu.run(max_cycles=chunk)`` until the UD2 faults; returns
    the final state and, per piece, (ECX, TSC, EIP) where it stopped."""
    with pytest.MonkeyPatch.context() as m:
        if not bulk:
            m.setattr(ops_string, "bulk_movsd", lambda *args: 0)
            m.setattr(ops_string, "bulk_stosd", lambda *args: 0)
        b = Bare(config=config)
        for k in range(0, 0x3000, 4):
            b.mem.write32(DATA + k, k * 2654435761 & 0xFFFFFFFF)
        b.load(code + b"\x0f\x0b")
        for name, value in regs.items():
            b.cpu.regs[{"eax": 0, "ecx": 1, "esi": 6, "edi": 7}[name]] = value
        stops: list[tuple[int, int, int]] = []
        for _ in range(20_000):
            reason = b.run(max_cycles=chunk)
            stops.append((b.cpu.regs[ECX], b.cpu.tsc, b.cpu.eip))
            if reason != "cycle_limit":
                break
        assert [eip for _, eip in b.faults] == [CODE + len(code)]
        return (*_snapshot(b), b.cpu.instructions, stops)


@pytest.mark.parametrize("config", [MMUConfig.i486(), MMUConfig.pentium()],
                         ids=["i486", "pentium"])
@given(src=st.integers(0, 0x2000), dst=st.integers(0, 0x2000), count=st.integers(0, 0x500),
       stos=st.booleans(), chunk=st.integers(1, 300))
def test_bulk_path_equals_item_path_when_cut_by_cycle_limits(
    config: MMUConfig, src: int, dst: int, count: int, stos: bool, chunk: int
) -> None:
    # The bulk path stops at the very item the item path stops at: same pieces, same state.
    code = REP_FORMS["stosd" if stos else "movsd"]
    regs = dict(esi=DATA + src, edi=DATA + dst, ecx=count, eax=0x12345678)
    assert (_run_rep_in_pieces(code, True, config, chunk, **regs)
            == _run_rep_in_pieces(code, False, config, chunk, **regs))


@given(form=st.sampled_from(sorted(REP_FORMS)), count=st.integers(0, 0x300),
       chunk=st.integers(1, 200), bulk=st.booleans())
def test_a_rep_cut_into_pieces_costs_and_does_what_it_does_whole(
    form: str, count: int, chunk: int, bulk: bool
) -> None:
    """Stops between iterations change no register, flag, byte or cycle, and the instruction
    retires once; only the fetches of the resumed instruction add ITLB hits."""
    code = REP_FORMS[form]
    regs = dict(esi=DATA, edi=DATA + 0x1000 + 4, ecx=count, eax=0)
    config = MMUConfig.pentium()
    whole = _run_rep_in_pieces(code, bulk, config, None, **regs)
    cut = _run_rep_in_pieces(code, bulk, config, chunk, **regs)
    # regs, tsc, eflags, memory, TLB contents, instructions retired
    assert cut[:4] == whole[:4] and cut[5:7] == whole[5:7]
    stops = cut[7]
    assert isinstance(stops, list)
    resumed = sum(1 for _, _, eip in stops[:-1] if eip == CODE)
    cut_tlbs, whole_tlbs = dict(cut[4].tlbs), dict(whole[4].tlbs)  # type: ignore[attr-defined]
    assert cut_tlbs["dtlb"] == whole_tlbs["dtlb"]
    assert cut_tlbs["itlb"].hits == whole_tlbs["itlb"].hits + resumed
    assert cut_tlbs["itlb"].misses == whole_tlbs["itlb"].misses
    # Every piece but the last stops within one item of its budget.
    per = Bare().cpu.profile.table[f"rep_{form[:4]}.per"]
    start = 0
    for _, tsc, eip in stops[:-1]:
        if eip == CODE:
            assert start + chunk <= tsc < start + chunk + per + 64  # + a page walk
        start = tsc


def test_a_stopped_rep_resumes_at_the_remaining_items_with_eip_at_it() -> None:
    b = Bare(paging=False)
    b.load(b"\xf3\xa5\x0f\x0b")
    b.cpu.regs[ESI], b.cpu.regs[EDI], b.cpu.regs[ECX] = DATA, DATA + 0x4000, 1000
    t = b.cpu.profile.table
    assert b.run(max_cycles=100) == "cycle_limit"
    # Each item costs rep_movs.per; the base is not charged to a stopped instruction.
    items = 1000 - b.cpu.regs[ECX]
    assert b.cpu.eip == CODE and b.cpu.instructions == 0
    assert items == -(-100 // t["rep_movs.per"]) and b.cpu.tsc == items * t["rep_movs.per"]
    assert b.cpu.regs[ESI] == DATA + 4 * items and b.cpu.regs[EDI] == DATA + 0x4000 + 4 * items
    b.run()
    assert b.cpu.regs[ECX] == 0 and b.cpu.instructions == 1
    assert b.cpu.tsc == t["rep.base"] + 1000 * t["rep_movs.per"] + t["ud2"]
