"""Address spaces: page directories and page tables built in guest memory.

One :class:`PageTables` owns every paging structure of a booted system:

- the **kernel window**: all of physical memory (up to 1 GiB) mapped at ``KERNEL_BASE +
  physical``, supervisor, writable, global. Its page tables are shared: every page directory
  holds the same PDEs ``768..1023`` pointing at the same table frames.
- the **resident space** ``0x80000000..0xBFFFFFFF``: user, global, and again the *same* page
  tables in every directory. A resident page table is created when the first page in its 4 MiB
  is mapped, and its PDE is written into every directory that exists then or later, so that a
  mapping added afterwards is seen by every address space at once.
- one **page directory per process group** (and the boot directory, holding only the shared
  parts), whose PDEs ``0..511`` point at that group's own tables.

PDEs are created with the Accessed flag already set: the processor would set it on first use,
and a pre-set A keeps every copy of a shared PDE bit-for-bit identical across directories.
"""

from __future__ import annotations

import struct

import attrs

from lavsim.errors import ConfigError
from lavsim.kernel.frames import FrameAllocator
from lavsim.kernel.layout import (
    KERNEL_BASE,
    KERNEL_WINDOW,
    PAGE_SHIFT,
    PAGE_SIZE,
    PDE_KERNEL_FIRST,
    PDE_RESIDENT_FIRST,
    RESIDENT_BASE,
)
from lavsim.memory import PhysicalMemory
from lavsim.mmu import paging as pg


@attrs.define
class PageDirectory:
    """One address space: a page-directory frame and the page tables of its user range."""

    name: str
    pfn: int
    #: PDE index (0..511) -> page-table frame, for the user range only.
    user_tables: dict[int, int] = attrs.field(factory=dict)

    @property
    def cr3(self) -> int:
        """The CR3 value that selects this address space (PWT = PCD = 0)."""
        return self.pfn << PAGE_SHIFT


def is_shared_linear(linear: int) -> bool:
    """True for resident and kernel addresses, mapped by tables every directory shares."""
    return linear >= RESIDENT_BASE


class PageTables:
    """Every page directory and page table of one system, in ``memory``."""

    def __init__(self, memory: PhysicalMemory, frames: FrameAllocator) -> None:
        self.memory = memory
        self.frames = frames
        #: Shared PDE index (512..1023) -> PDE value, written into every directory.
        self.shared_pdes: dict[int, int] = {}
        self.directories: list[PageDirectory] = []

    # --- building -------------------------------------------------------------------------

    def _zeroed_frame(self, what: str) -> int:
        pfn = self.frames.allocate_one(what)
        self.memory.fill(pfn << PAGE_SHIFT, PAGE_SIZE, 0)
        return pfn

    def build_kernel_window(self, size: int) -> None:
        """Map physical ``0..size-1`` at ``KERNEL_BASE``: supervisor, writable, global."""
        size = min(size, KERNEL_WINDOW)
        pages = size >> PAGE_SHIFT
        tables = -(-pages // 1024)
        if tables > self.frames.available:
            raise ConfigError("memory_size", "too small for the kernel's page tables")
        for t in range(tables):
            table = self._zeroed_frame("memory_size")
            base = table << PAGE_SHIFT
            first, n = t * 1024, min(1024, pages - t * 1024)
            flags = pg.P | pg.RW | pg.G
            # One write of the whole table (the same bytes as n 32-bit writes; faster).
            entries = [((first + i) << PAGE_SHIFT) | flags for i in range(n)]
            self.memory.write(base, struct.pack(f"<{n}I", *entries))
            self._set_shared_pde(PDE_KERNEL_FIRST + t, base | pg.P | pg.RW | pg.A)

    def new_directory(self, name: str) -> PageDirectory:
        """A new address space holding the kernel window and the resident space."""
        pd = PageDirectory(name, self._zeroed_frame("page directory"))
        base = pd.pfn << PAGE_SHIFT
        for index, value in self.shared_pdes.items():
            self.memory.write32(base + 4 * index, value)
        self.directories.append(pd)
        return pd

    def _set_shared_pde(self, index: int, value: int) -> None:
        self.shared_pdes[index] = value
        for pd in self.directories:
            self.memory.write32((pd.pfn << PAGE_SHIFT) + 4 * index, value)

    def tables_needed(self, pd: PageDirectory | None, linear: int, size: int) -> int:
        """How many new page tables mapping ``size`` bytes at ``linear`` would allocate."""
        if size <= 0:
            return 0
        first, last = linear >> 22, (linear + size - 1) >> 22
        count = 0
        for index in range(first, last + 1):
            if index >= PDE_RESIDENT_FIRST:
                count += index not in self.shared_pdes
            else:
                assert pd is not None
                count += index not in pd.user_tables
        return count

    def _table_for(self, pd: PageDirectory | None, linear: int) -> int:
        index = linear >> 22
        if index >= PDE_RESIDENT_FIRST:
            if index >= PDE_KERNEL_FIRST:
                raise ValueError(f"{linear:#x} is in kernel space, mapped only by the window")
            value = self.shared_pdes.get(index)
            if value is None:
                table = self._zeroed_frame("resident page table")
                value = (table << PAGE_SHIFT) | pg.P | pg.RW | pg.US | pg.A
                self._set_shared_pde(index, value)
            return value & pg.ADDRESS_MASK
        if pd is None:
            raise ValueError("a user-space mapping needs a page directory")
        existing = pd.user_tables.get(index)
        if existing is None:
            table = self._zeroed_frame("page table")
            pd.user_tables[index] = table
            self.memory.write32(
                (pd.pfn << PAGE_SHIFT) + 4 * index,
                (table << PAGE_SHIFT) | pg.P | pg.RW | pg.US | pg.A,
            )
        else:
            table = existing
        return table << PAGE_SHIFT

    def map_page(
        self, pd: PageDirectory | None, linear: int, pfn: int, *, writable: bool
    ) -> None:
        """Map one user-accessible page (resident pages are global, group pages are not)."""
        if linear % PAGE_SIZE:
            raise ValueError(f"linear address {linear:#x} is not page aligned")
        if linear >= KERNEL_BASE:
            raise ValueError(f"{linear:#x} is in kernel space")
        table = self._table_for(pd, linear)
        entry = (pfn << PAGE_SHIFT) | pg.P | pg.US | (pg.RW if writable else 0)
        if is_shared_linear(linear):
            entry |= pg.G
        self.memory.write32(table + ((linear >> 10) & 0xFFC), entry)

    # --- inspection -----------------------------------------------------------------------

    def pde(self, pd: PageDirectory, linear: int) -> int:
        """The PDE that maps ``linear`` in ``pd`` (as stored in guest memory)."""
        return self.memory.read32((pd.pfn << PAGE_SHIFT) + ((linear >> 20) & 0xFFC))

    def pte(self, pd: PageDirectory, linear: int) -> int | None:
        """The PTE that maps ``linear`` in ``pd``, or None when its PDE is not present."""
        pde = self.pde(pd, linear)
        if not pde & pg.P:
            return None
        return self.memory.read32((pde & pg.ADDRESS_MASK) + ((linear >> 10) & 0xFFC))

    def translate(self, pd: PageDirectory, linear: int, *, user: bool, write: bool) -> int | None:
        """The physical address of ``linear`` in ``pd`` for the given access, or None when the
        access would page-fault (a software walk: no Accessed/Dirty write-back, no TLB)."""
        pde = self.pde(pd, linear)
        pte = self.pte(pd, linear)
        if pte is None or not pte & pg.P:
            return None
        if not pg.allowed(bool(pde & pte & pg.US), bool(pde & pte & pg.RW), write, user, True):
            return None
        return (pte & pg.ADDRESS_MASK) | (linear & 0xFFF)

    def table_frames(self) -> set[int]:
        """Every frame holding a page directory or a page table."""
        out = {pd.pfn for pd in self.directories}
        for pd in self.directories:
            out.update(pd.user_tables.values())
        out.update(v >> PAGE_SHIFT for v in self.shared_pdes.values())
        return out

    def user_mappings(self, pd: PageDirectory) -> dict[int, int]:
        """Linear page -> PTE of every user-accessible page of ``pd`` (group and resident)."""
        out: dict[int, int] = {}
        base = pd.pfn << PAGE_SHIFT
        for index in range(PDE_KERNEL_FIRST):
            pde = self.memory.read32(base + 4 * index)
            if not pde & pg.P or not pde & pg.US:
                continue
            table = pde & pg.ADDRESS_MASK
            for i in range(1024):
                pte = self.memory.read32(table + 4 * i)
                if pte & pg.P and pte & pg.US:
                    out[(index << 22) | (i << 12)] = pte
        return out
