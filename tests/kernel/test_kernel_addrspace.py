"""Page directories and tables built in guest memory (lavsim.kernel.addrspace)."""

from __future__ import annotations

from lavsim.kernel.addrspace import PageTables
from lavsim.kernel.frames import FrameAllocator
from lavsim.kernel.layout import KERNEL_BASE, PDE_RESIDENT_FIRST, RESIDENT_BASE
from lavsim.memory import PhysicalMemory
from lavsim.mmu import paging as pg

MEMORY = 8 << 20


def _tables() -> PageTables:
    memory = PhysicalMemory(MEMORY)
    tables = PageTables(memory, FrameAllocator(0x100000, MEMORY))
    tables.build_kernel_window(MEMORY)
    return tables


def _walk(tables: PageTables, cr3: int, linear: int, *, user: bool, write: bool) -> pg.WalkResult:
    return pg.walk(tables.memory, cr3, linear, write, user, True, False)


def test_kernel_window_maps_physical_memory_supervisor_only_and_global() -> None:
    tables = _tables()
    pd = tables.new_directory("g")
    for phys in (0, 0x12345, MEMORY - 4):
        result = _walk(tables, pd.cr3, KERNEL_BASE + phys, user=False, write=True)
        assert result.fault is None and result.physical == phys
        assert result.g
        assert _walk(tables, pd.cr3, KERNEL_BASE + phys, user=True, write=False).fault
    # Beyond installed memory nothing is mapped.
    assert tables.pte(pd, KERNEL_BASE + MEMORY) is None


def test_group_mappings_are_private_to_their_directory() -> None:
    tables = _tables()
    a, b = tables.new_directory("a"), tables.new_directory("b")
    frame = tables.frames.allocate_one()
    tables.map_page(a, 0x400000, frame, writable=True)
    result = _walk(tables, a.cr3, 0x400123, user=True, write=True)
    assert result.fault is None and result.physical == (frame << 12) | 0x123
    assert not result.g
    assert _walk(tables, b.cr3, 0x400123, user=True, write=False).fault


def test_read_only_pages_refuse_user_and_supervisor_writes_with_wp() -> None:
    tables = _tables()
    pd = tables.new_directory("a")
    tables.map_page(pd, 0x400000, tables.frames.allocate_one(), writable=False)
    assert _walk(tables, pd.cr3, 0x400000, user=True, write=False).fault is None
    assert _walk(tables, pd.cr3, 0x400000, user=True, write=True).fault
    assert _walk(tables, pd.cr3, 0x400000, user=False, write=True).fault


def test_resident_space_uses_the_same_tables_in_every_directory() -> None:
    tables = _tables()
    early = tables.new_directory("early")
    frame = tables.frames.allocate_one()
    tables.map_page(None, RESIDENT_BASE + 0x5000, frame, writable=True)
    late = tables.new_directory("late")
    # A page added after both directories exist, in a new 4 MiB region, too.
    frame2 = tables.frames.allocate_one()
    tables.map_page(None, RESIDENT_BASE + 0x1000000, frame2, writable=True)
    for linear, f in ((RESIDENT_BASE + 0x5000, frame), (RESIDENT_BASE + 0x1000000, frame2)):
        for pd in (early, late):
            result = _walk(tables, pd.cr3, linear, user=True, write=True)
            assert result.fault is None and result.physical == f << 12 and result.g
    for index in range(PDE_RESIDENT_FIRST, 1024):
        assert tables.pde(early, index << 22) == tables.pde(late, index << 22)


def test_tables_needed_counts_only_missing_tables() -> None:
    tables = _tables()
    pd = tables.new_directory("a")
    assert tables.tables_needed(pd, 0x400000, 0x1000) == 1
    tables.map_page(pd, 0x400000, tables.frames.allocate_one(), writable=True)
    assert tables.tables_needed(pd, 0x400000, 0x1000) == 0
    assert tables.tables_needed(pd, 0x7FF000, 0x2000) == 1
    assert tables.tables_needed(None, RESIDENT_BASE, 0x800000) == 2


def test_table_frames_are_never_user_mapped() -> None:
    tables = _tables()
    pd = tables.new_directory("a")
    tables.map_page(pd, 0x400000, tables.frames.allocate_one(), writable=True)
    tables.map_page(None, RESIDENT_BASE, tables.frames.allocate_one(), writable=True)
    user_frames = {pte >> 12 for pte in tables.user_mappings(pd).values()}
    assert user_frames and not user_frames & tables.table_frames()
