"""The host fast path holds every way of a TLB set it has seen, not only the MRU one, and stays
exact: a hit on a non-MRU page makes it MRU as the modelled path does, so TLB contents in LRU
order and every TLB's statistics equal those of an MMU without the fast path (hypothesis), and
two pages alternating in one set (the ring-3 and ring-2 stacks of the gate loop) never take the
modelled path once both are cached.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.faults import CpuFault
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import MMU, Access, FastWay, MMUConfig
from lavsim.mmu.paging import CR0_PE, CR0_PG, CR4_PSE, PS, RW, US, D, P
from lavsim.mmu.tlb import TLB, TLBConfig

PD, PT = 0x1000, 0x2000
LARGE_PDE = 2  # linear 0x800000..0xBFFFFF: a 4 MiB page
CONFIGS = {
    "i486": MMUConfig.i486(),
    "pentium": MMUConfig.pentium(),
    "tiny": MMUConfig(tlb=TLBConfig(4, 2)),
    "split": MMUConfig(tlb=TLBConfig(4, 2), itlb=TLBConfig(2, 2), large_dtlb=TLBConfig(2, 2)),
}
# Pages of the 4 KiB table: page numbers 0..63 collide in every set of these TLBs; some are
# read-only, some supervisor-only, some not yet dirty (a write must walk to set D).
PAGES = 64


def build(config: MMUConfig, fast: bool) -> MMU:
    mem = PhysicalMemory(16 << 20)
    mem.write32(PD, PT | P | RW | US)
    mem.write32(PD + 4 * LARGE_PDE, 0x00C0_0000 | P | RW | US | PS | D)
    for page in range(PAGES):
        flags = P | (0 if page % 7 == 3 else RW) | (0 if page % 11 == 5 else US)
        flags |= 0 if page % 5 == 1 else D
        mem.write32(PT + 4 * page, (0x10_0000 + 0x1000 * page) | flags)
    mmu = MMU(mem, MMUConfig(config.tlb, config.itlb, config.large_dtlb, fast_path=fast))
    mmu.load_cr3(PD)
    mmu.set_controls(CR0_PE | CR0_PG, CR4_PSE)
    return mmu


def linear(page: int, offset: int) -> int:
    if page < PAGES:
        return (page << 12) | offset
    return (LARGE_PDE << 22) | ((page - PAGES) << 12) | offset  # pieces of the 4 MiB page


ACCESSES = ["read8", "read16", "read32", "write8", "write16", "write32", "fetch8", "fetch32",
            "translate"]
access = st.tuples(
    st.integers(0, PAGES + 8 - 1),
    st.sampled_from([0, 4, 0x802, 0xFFC, 0xFFF]),
    st.sampled_from(ACCESSES),
    st.booleans(),
)
# Hot sets: a stream mostly over a few pages of one set, with the rest mixed in.
stream = st.lists(st.one_of(access, access.map(lambda a: (a[0] % 4 * 16, *a[1:]))),
                  min_size=20, max_size=200)


def do(mmu: MMU, op: tuple[int, int, str, bool]) -> Any:
    page, offset, how, user = op
    lin = linear(page, offset)
    try:
        if how == "translate":
            return mmu.translate(lin, False, user)
        if how.startswith("write"):
            getattr(mmu, how)(lin, page * 77 + offset, user)
            return None
        return getattr(mmu, how)(lin, user)
    except CpuFault as fault:
        return fault


def check_fast_path_shape(mmu: MMU) -> None:
    """Every page on the fast path maps what its modelled entry maps, and is credited to the
    TLB itself only while that entry is the MRU of its set (an entry that became MRU because
    another left the set keeps its way-credited pages until its next hit: still exact)."""
    tables = {id(mmu._dfast_paged): mmu._dfast_paged, id(mmu._ifast_paged): mmu._ifast_paged}
    for table in tables.values():
        for vpn, page in table.items():
            owner = page.owner
            tlb: TLB = owner.tlb if isinstance(owner, FastWay) else owner  # type: ignore[assignment]
            key = (vpn << 12) >> tlb.page_shift
            sets = tlb.contents()
            held = dict(sets[key % len(sets)])
            assert key in held, f"page {vpn:#x} is on the fast path but not in {tlb.name}"
            entry = held[key]
            frame = entry.base | ((vpn << 12) & 0x3FF000) if tlb.page_shift == 22 else entry.base
            assert page.base == frame
            assert owner is not tlb or tlb.is_mru(vpn << 12)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Access, int, int, bool]] = []

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None:
        self.events.append((kind, phys, size, user))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(CONFIGS)), stream, st.booleans())
def test_fast_ways_give_the_modelled_tlb_state_and_statistics_exactly(
    name: str, ops: list[Any], traced: bool
) -> None:
    fast, slow = build(CONFIGS[name], True), build(CONFIGS[name], False)
    seen = [Recorder(), Recorder()]
    if traced:  # and the fast hits report what the modelled path reports
        fast.add_tracer(seen[0])
        slow.add_tracer(seen[1])
    for op in ops:
        assert do(fast, op) == do(slow, op), op
        assert seen[0].events == seen[1].events, op
        check_fast_path_shape(fast)
    assert fast.stats == slow.stats
    for tlb_name, tlb in fast.tlbs.items():
        assert tlb.contents() == slow.tlbs[tlb_name].contents(), tlb_name
        assert tlb.stats() == slow.tlbs[tlb_name].stats(), tlb_name
    assert fast.memory.digest() == slow.memory.digest()


@pytest.mark.parametrize("name", ["pentium", "i486"])
def test_two_pages_alternating_in_one_set_stay_on_the_fast_path(name: str,
                                                                monkeypatch: Any) -> None:
    # The gate loop's stacks: ring 3 at 0x2FF000 and ring 2 at 0x27F000 share a DTLB set
    # (vpn 0x2FF and 0x27F modulo 16 and 8 sets); here pages 0x3F and 0x1F of the table.
    fast, slow = build(CONFIGS[name], True), build(CONFIGS[name], False)
    a, b = linear(0x3F, 0xFFC), linear(0x1F, 0xFFC)
    for mmu in (fast, slow):
        mmu.write32(a, 1, True)
        mmu.write32(b, 2, False)
    calls = []
    real = MMU._translate

    def counting(self: MMU, *args: Any) -> int:
        if self is fast:
            calls.append(args)
        return real(self, *args)

    monkeypatch.setattr(MMU, "_translate", counting)
    for i in range(200):
        for mmu in (fast, slow):
            mmu.write32(a, i, True)
            assert mmu.read32(b, False) == 2
            mmu.write32(b, 2, False)
            assert mmu.read32(a, True) == i
    assert calls == []
    assert fast.stats == slow.stats
    assert [t.contents() for t in fast.tlbs.values()] == [t.contents() for t in slow.tlbs.values()]


def test_a_fill_reuses_the_frame_views() -> None:
    mmu = build(CONFIGS["tiny"], True)
    mmu.read32(linear(0, 0), False)
    view = mmu.data_page(0)
    assert view is not None
    for page in (16, 32, 48):  # evict page 0 (every page here lies in set 0)
        mmu.read32(linear(page, 0), False)
    assert mmu.data_page(0) is None
    mmu.read32(linear(0, 0), False)
    again = mmu.data_page(0)
    assert again is not None and again is not view
    assert again.dwords is view.dwords and again.frame is view.frame


def test_a_tracer_keeps_the_mmu_fast_path_and_sees_each_fast_hit(monkeypatch: Any) -> None:
    mmu = build(CONFIGS["pentium"], True)
    lin = linear(0x3F, 0x10)
    mmu.write32(lin, 5, True)
    recorder = Recorder()
    mmu.add_tracer(recorder)
    calls = []
    real = MMU._translate

    def counting(self: MMU, *args: Any) -> int:
        calls.append(args)
        return real(self, *args)

    monkeypatch.setattr(MMU, "_translate", counting)
    hits = mmu.stats.hits
    assert mmu.read32(lin, True) == 5
    mmu.write16(lin + 2, 7, True)
    assert mmu.read8(lin + 2, False) == 7
    assert calls == [] and mmu.stats.hits == hits + 3
    phys = 0x10_0000 + 0x3F * 0x1000 + 0x10
    assert recorder.events == [(Access.READ, phys, 4, True), (Access.WRITE, phys + 2, 2, True),
                               (Access.READ, phys + 2, 1, False)]
    # Code inlining the fast path is sent to the accessors while the tracer is attached.
    assert mmu.data_page(0x3F) is None and mmu.code_page(0x3F) is None
    mmu.remove_tracer(recorder)
    assert mmu.data_page(0x3F) is not None
    mmu.read32(lin, True)
    assert len(recorder.events) == 3 and calls == []


def test_a_subclass_of_the_mmu_keeps_its_class_and_reports_with_its_fast_path_off() -> None:
    class Mine(MMU):
        __slots__ = ()

    mem = build(CONFIGS["tiny"], True).memory
    mmu = Mine(mem, CONFIGS["tiny"])
    mmu.load_cr3(PD)
    mmu.set_controls(CR0_PE | CR0_PG, CR4_PSE)
    mmu.read32(0, False)
    recorder = Recorder()
    mmu.add_tracer(recorder)
    assert type(mmu) is Mine and mmu.data_page(0) is None
    mmu.read32(0, False)
    assert recorder.events == [(Access.READ, 0x10_0000, 4, False)]
    mmu.remove_tracer(recorder)
    mmu.read32(0, False)
    assert type(mmu) is Mine and mmu.data_page(0) is not None and len(recorder.events) == 1
