"""The modelled TLB: geometry, true LRU, global entries, INVLPG, staleness, D updates, stats."""

from __future__ import annotations

import pytest

from lavsim.errors import ConfigError
from lavsim.faults import PF, PF_P, PF_U, PF_W, CpuFault
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import MMU, MMUConfig
from lavsim.mmu.paging import CR0_PE, CR0_PG, CR0_WP, CR4_PGE, CR4_PSE, PS, RW, US, A, D, G, P
from lavsim.mmu.tlb import TLB, TLBConfig, TLBEntry

PD = 0x1000
PT = 0x2000  # maps linear 0..4 MiB


def entry(base: int = 0x5000, g: bool = False, large: bool = False) -> TLBEntry:
    return TLBEntry(base=base, us=True, rw=True, d=True, g=g, large=large)


# --- TLBConfig --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "ways", "field"),
    [(0, 1, "entries"), (6, 4, "entries"), (-4, 2, "entries"), (4, 0, "ways"), (8, -1, "ways")],
)
def test_tlb_config_refuses_bad_geometry_naming_the_field(entries: int, ways: int, field: str
                                                          ) -> None:
    with pytest.raises(ConfigError) as info:
        TLBConfig(entries, ways)
    assert info.value.field == field


def test_tlb_config_refuses_non_int() -> None:
    with pytest.raises(ConfigError) as info:
        TLBConfig(32, 4.0)  # type: ignore[arg-type]
    assert info.value.field == "ways"


def test_presets_have_the_documented_geometry() -> None:
    i486 = MMUConfig.i486()
    assert (i486.tlb, i486.itlb, i486.large_dtlb) == (TLBConfig(32, 4), None, None)
    p5 = MMUConfig.pentium()
    assert (p5.itlb, p5.tlb, p5.large_dtlb) == (TLBConfig(32, 4), TLBConfig(64, 4),
                                                TLBConfig(8, 4))
    assert TLBConfig(32, 4).sets == 8


# --- the TLB structure ------------------------------------------------------------------


def test_lru_evicts_the_least_recently_used_entry_of_the_set() -> None:
    tlb = TLB(TLBConfig(4, 2))  # two sets of two ways; even page numbers share set 0
    tlb.fill(0x0000, entry(0xA000))
    tlb.fill(0x2000, entry(0xB000))
    assert tlb.lookup(0x0000) == entry(0xA000)  # page 0 becomes MRU, page 2 is now LRU
    tlb.fill(0x4000, entry(0xC000))
    assert tlb.lookup(0x2000) is None
    assert tlb.lookup(0x0000) is not None and tlb.lookup(0x4000) is not None
    assert tlb.evictions == 1
    assert [k for k, _ in tlb.contents()[0]] == [0, 4]
    tlb.fill(0x1000, entry())  # odd page: set 1, no eviction
    assert tlb.evictions == 1
    assert (tlb.hits, tlb.misses) == (3, 1)


def test_lru_order_follows_every_hit() -> None:
    tlb = TLB(TLBConfig(4, 4))  # one set, four ways
    for page in range(4):
        tlb.fill(page << 12, entry(page << 12))
    for page in (2, 0, 3, 1):
        tlb.lookup(page << 12)
    assert [k for k, _ in tlb.contents()[0]] == [2, 0, 3, 1]
    tlb.fill(9 << 12, entry())
    assert [k for k, _ in tlb.contents()[0]] == [0, 3, 1, 9]


def test_refill_replaces_without_eviction() -> None:
    tlb = TLB(TLBConfig(2, 2))
    tlb.fill(0x1000, entry(0xA000))
    tlb.fill(0x2000, entry(0xB000))
    tlb.fill(0x1000, entry(0xC000))
    assert tlb.evictions == 0 and len(tlb) == 2
    assert tlb.probe(0x1000) == entry(0xC000)


def test_flush_keeps_only_global_entries_when_asked() -> None:
    tlb = TLB(TLBConfig(8, 2))
    tlb.fill(0x1000, entry(g=True))
    tlb.fill(0x2000, entry())
    tlb.flush(keep_global=True)
    assert tlb.probe(0x1000) is not None and tlb.probe(0x2000) is None
    tlb.flush(keep_global=False)
    assert len(tlb) == 0 and tlb.flushes == 2


def test_invlpg_of_a_large_page_removes_every_4k_piece_of_it() -> None:
    tlb = TLB(TLBConfig(16, 4))
    tlb.fill(0x0040_1000, entry(large=True))
    tlb.fill(0x0040_2000, entry(large=True))
    tlb.fill(0x0080_1000, entry(large=True))  # another 4 MiB page
    tlb.fill(0x0040_3000, entry())  # a 4 KiB page in the same region: not part of it
    tlb.invlpg(0x007F_FFFF)
    assert tlb.probe(0x0040_1000) is None and tlb.probe(0x0040_2000) is None
    assert tlb.probe(0x0080_1000) is not None and tlb.probe(0x0040_3000) is not None
    assert tlb.invlpgs == 1


def test_large_page_tlb_is_keyed_by_4mib_page() -> None:
    tlb = TLB(TLBConfig(8, 4), page_shift=22)
    tlb.fill(0x0040_0000, entry(0x0080_0000, large=True))
    assert tlb.probe(0x007F_F123) is not None
    tlb.invlpg(0x0050_0000)
    assert tlb.probe(0x0040_0000) is None


# --- through the MMU --------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.misses: list[tuple[bool, int, int, int]] = []
        self.dirty: list[tuple[int, int, int]] = []

    def on_tlb_miss(self, fetch: bool, linear: int, walk_reads: int, ad_writes: int) -> None:
        self.misses.append((fetch, linear, walk_reads, ad_writes))

    def on_dirty_walk(self, linear: int, walk_reads: int, ad_writes: int) -> None:
        self.dirty.append((linear, walk_reads, ad_writes))


def machine(config: MMUConfig | None = None, cr4: int = 0, wp: bool = True
            ) -> tuple[PhysicalMemory, MMU]:
    """Identity-map 0..4 MiB with user, writable 4 KiB pages; paging on."""
    mem = PhysicalMemory(32 << 20)
    mem.write32(PD, PT | P | RW | US)
    for i in range(1024):
        mem.write32(PT + 4 * i, (i << 12) | P | RW | US)
    mmu = MMU(mem, config or MMUConfig.i486())
    mmu.load_cr3(PD)
    mmu.set_controls(CR0_PE | CR0_PG | (CR0_WP if wp else 0), cr4)
    return mem, mmu


def pte_addr(linear: int) -> int:
    return PT + 4 * ((linear >> 12) & 0x3FF)


@pytest.mark.parametrize("fast", [True, False])
def test_page_table_edit_without_invalidation_is_served_stale(fast: bool) -> None:
    mem, mmu = machine(MMUConfig(tlb=TLBConfig(32, 4), fast_path=fast))
    mem.write32(0x9000, 0x11111111)
    mem.write32(0xA000, 0x22222222)
    assert mmu.read32(0x9000, True) == 0x11111111
    mem.write32(pte_addr(0x9000), 0xA000 | P | RW | US)  # remap, no INVLPG
    assert mmu.read32(0x9000, True) == 0x11111111  # the TLB still holds the old frame
    mmu.invlpg(0x9000)
    assert mmu.read32(0x9000, True) == 0x22222222


@pytest.mark.parametrize("fast", [True, False])
def test_revoked_permission_is_still_granted_until_invalidated(fast: bool) -> None:
    mem, mmu = machine(MMUConfig(tlb=TLBConfig(32, 4), fast_path=fast))
    mmu.write32(0x9000, 1, True)  # fills with D=1
    mem.write32(pte_addr(0x9000), 0x9000 | P | A | D)  # supervisor, read-only
    mmu.write32(0x9000, 2, True)  # stale entry still allows it
    assert mem.read32(0x9000) == 2
    mmu.invlpg(0x9000)
    with pytest.raises(CpuFault) as info:
        mmu.write32(0x9000, 3, True)
    assert info.value == CpuFault(PF, PF_P | PF_W | PF_U, 0x9000)


def test_not_present_translations_are_never_cached() -> None:
    mem, mmu = machine()
    mem.write32(pte_addr(0x9000), 0)
    with pytest.raises(CpuFault):
        mmu.read32(0x9000, False)
    mem.write32(pte_addr(0x9000), 0x9000 | P | RW)
    mmu.read32(0x9000, False)  # no INVLPG needed after making a page present
    assert mmu.stats.misses == 2


def test_cr3_load_flushes_all_without_pge() -> None:
    mem, mmu = machine()
    mem.write32(pte_addr(0x9000), 0x9000 | P | RW | US | G)
    mmu.read32(0x9000, False)
    mmu.read32(0xA000, False)
    mmu.load_cr3(PD)
    mmu.read32(0x9000, False)
    mmu.read32(0xA000, False)
    assert mmu.stats.misses == 4


def test_global_entries_survive_cr3_load_only_with_pge() -> None:
    mem, mmu = machine(cr4=CR4_PGE)
    mem.write32(pte_addr(0x9000), 0x9000 | P | RW | US | G)
    mmu.read32(0x9000, False)
    mmu.read32(0xA000, False)
    mmu.load_cr3(PD)
    mmu.read32(0x9000, False)  # global: still cached
    mmu.read32(0xA000, False)  # not global: flushed
    assert (mmu.stats.hits, mmu.stats.misses) == (1, 3)
    mmu.set_controls(mmu.cr0, 0)  # clearing CR4.PGE flushes everything, globals too
    mmu.read32(0x9000, False)
    assert mmu.stats.misses == 4


def test_invlpg_removes_a_global_entry() -> None:
    mem, mmu = machine(cr4=CR4_PGE)
    mem.write32(pte_addr(0x9000), 0x9000 | P | RW | US | G)
    mmu.read32(0x9000, False)
    mmu.invlpg(0x9FFF)
    mmu.read32(0x9000, False)
    assert mmu.stats.misses == 2 and mmu.stats.invlpgs == 1


def test_write_through_a_clean_entry_walks_again_to_set_dirty() -> None:
    mem, mmu = machine()
    rec = Recorder()
    mmu.listener = rec
    mmu.read32(0x9000, True)
    assert not mem.read32(pte_addr(0x9000)) & D
    mmu.write32(0x9000, 7, True)
    assert mem.read32(pte_addr(0x9000)) & (A | D) == A | D
    assert rec.misses == [(False, 0x9000, 2, 2)]  # the read's walk: PDE.A and PTE.A
    assert rec.dirty == [(0x9000, 2, 1)]  # the D update: one write-back
    s = mmu.stats
    assert (s.hits, s.misses, s.dirty_walks, s.walks) == (1, 1, 1, 1)
    mmu.write32(0x9004, 8, True)  # D now cached: a plain hit
    assert mmu.stats.dirty_walks == 1 and mmu.stats.hits == 2


def test_dirty_walk_without_on_dirty_walk_is_reported_as_a_miss_event() -> None:
    class MissOnly:
        def __init__(self) -> None:
            self.events: list[tuple[bool, int, int, int]] = []

        def on_tlb_miss(self, fetch: bool, linear: int, walk_reads: int, ad_writes: int
                        ) -> None:
            self.events.append((fetch, linear, walk_reads, ad_writes))

    _, mmu = machine()
    listener = MissOnly()
    mmu.listener = listener
    mmu.read8(0x9000, False)
    mmu.write8(0x9000, 1, False)
    assert listener.events == [(False, 0x9000, 2, 2), (False, 0x9000, 2, 1)]


def test_dirty_walk_sees_the_tables_as_they_are_now() -> None:
    mem, mmu = machine()
    mmu.read32(0x9000, True)
    mem.write32(pte_addr(0x9000), 0)  # unmapped without INVLPG
    assert mmu.read32(0x9000, True) == 0  # reads still hit the stale entry
    with pytest.raises(CpuFault) as info:
        mmu.write32(0x9000, 1, True)  # but setting D must walk, and the walk faults
    assert info.value == CpuFault(PF, PF_W | PF_U, 0x9000)


def test_fault_on_a_tlb_hit_invalidates_the_entry() -> None:
    mem, mmu = machine()
    mem.write32(pte_addr(0x9000), 0x9000 | P | US)  # read-only user page
    mmu.read32(0x9000, True)
    with pytest.raises(CpuFault) as info:
        mmu.write32(0x9000, 1, True)
    assert info.value == CpuFault(PF, PF_P | PF_W | PF_U, 0x9000)
    mem.write32(pte_addr(0x9000), 0x9000 | P | RW | US)  # the handler makes it writable
    mmu.write32(0x9000, 1, True)  # and the retry walks again without INVLPG
    s = mmu.stats
    assert (s.misses, s.page_faults) == (2, 1)


def test_cr0_wp_applies_to_cached_entries_immediately() -> None:
    mem, mmu = machine(wp=False)
    mem.write32(pte_addr(0x9000), 0x9000 | P | US | A | D)
    mmu.write32(0x9000, 1, False)  # WP=0: supervisor may write a read-only page
    mmu.set_controls(CR0_PE | CR0_PG | CR0_WP, 0)
    with pytest.raises(CpuFault):
        mmu.write32(0x9000, 2, False)


def test_pentium_splits_fetches_data_and_large_pages() -> None:
    mem, mmu = machine(MMUConfig.pentium(), cr4=CR4_PSE)
    mem.write32(PD + 4 * 2, 0x0080_0000 | P | RW | US | PS)  # 4 MiB page at 8 MiB
    mmu.fetch8(0x9000, True)
    mmu.read8(0x9000, True)
    mmu.read8(0x0080_0000, True)
    mmu.read8(0x00BF_F000, True)  # same 4 MiB page: a hit in the large-page DTLB
    mmu.fetch8(0x0080_0000, True)
    mmu.fetch8(0x0080_1000, True)  # the ITLB caches 4 MiB pages in 4 KiB pieces
    tlbs = {name: s for name, s in mmu.stats.tlbs}
    assert (tlbs["itlb"].misses, tlbs["dtlb"].misses, tlbs["dtlb4m"].misses) == (3, 1, 1)
    assert tlbs["dtlb4m"].hits == 1
    assert len(mmu.tlbs["itlb"]) == 3 and len(mmu.tlbs["dtlb4m"]) == 1
    mmu.invlpg(0x00A0_0000)  # anywhere in the 4 MiB page: removes it from both TLBs
    assert len(mmu.tlbs["itlb"]) == 1 and len(mmu.tlbs["dtlb4m"]) == 0


def test_i486_caches_4mib_pages_in_4k_pieces() -> None:
    mem, mmu = machine(cr4=CR4_PSE)
    mem.write32(PD + 4 * 2, 0x0080_0000 | P | RW | US | PS)
    mmu.read8(0x0080_0000, False)
    mmu.read8(0x0080_1000, False)
    assert mmu.stats.misses == 2
    mmu.invlpg(0x0080_0000)
    assert len(mmu.tlbs["tlb"]) == 0


def test_page_crossing_write_checks_both_pages_before_writing() -> None:
    mem, mmu = machine()
    mem.write32(pte_addr(0xA000), 0xA000 | P | US)  # second page read-only
    with pytest.raises(CpuFault) as info:
        mmu.write32(0x9FFE, 0xAABBCCDD, True)
    assert info.value.cr2 == 0xA000
    assert mem.read32(0x9FFC) == 0  # nothing written to the first page
    with pytest.raises(CpuFault):
        mmu.write_bytes(0x9F00, b"\x01" * 0x200, True)
    assert mem.read(0x9F00, 0x100) == bytes(0x100)


def test_paging_off_means_linear_is_physical_and_no_tlb_use() -> None:
    mem = PhysicalMemory(1 << 20)
    mmu = MMU(mem)
    mmu.write32(0x1234, 0xDEADBEEF, True)
    assert mem.read32(0x1234) == 0xDEADBEEF and mmu.translate(0x1234, True, True) == 0x1234
    assert mmu.read_bytes(0x1233, 6, False) == b"\x00\xef\xbe\xad\xde\x00"
    assert mmu.stats.hits == 0 and mmu.stats.misses == 0


def test_stats_table_names_each_tlb() -> None:
    _, mmu = machine(MMUConfig.pentium())
    text = mmu.stats.table()
    assert "itlb" in text and "dtlb4m" in text
