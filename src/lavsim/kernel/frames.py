"""The physical frame allocator the boot loader uses for page tables and process segments.

Frames are handed out lowest first, so the same sequence of requests gives the same frames in
every run (determinism). Frames below ``first`` hold the kernel's fixed structures and are never
handed out. A request that cannot be met raises :class:`~lavsim.errors.ConfigError` and
allocates nothing.
"""

from __future__ import annotations

import heapq

from lavsim.errors import ConfigError
from lavsim.kernel.layout import PAGE_SHIFT, PAGE_SIZE


class FrameAllocator:
    """Allocates 4 KiB physical frames between ``first`` (inclusive) and ``end`` (exclusive).

    Both are byte addresses and must be page aligned.
    """

    def __init__(self, first: int, end: int) -> None:
        if first % PAGE_SIZE or end % PAGE_SIZE:
            raise ConfigError("frames", "the frame range must be page aligned")
        if not 0 <= first <= end:
            raise ConfigError("frames", f"empty or reversed range {first:#x}..{end:#x}")
        self.first_pfn = first >> PAGE_SHIFT
        self.end_pfn = end >> PAGE_SHIFT
        #: Frames never handed out yet start here; freed frames wait in ``_freed``.
        self._next = self.first_pfn
        self._freed: list[int] = []
        self._in_use: set[int] = set()

    @property
    def total(self) -> int:
        """Frames the allocator manages."""
        return self.end_pfn - self.first_pfn

    @property
    def available(self) -> int:
        """Frames that can still be allocated."""
        return (self.end_pfn - self._next) + len(self._freed)

    @property
    def in_use(self) -> int:
        """Frames allocated and not freed."""
        return len(self._in_use)

    def allocate(self, count: int = 1, what: str = "frames") -> list[int]:
        """``count`` frame numbers, lowest first; ConfigError(``what``) if fewer are free."""
        if count < 0:
            raise ConfigError(what, f"cannot allocate {count} frames")
        if count > self.available:
            raise ConfigError(
                what,
                f"needs {count} free 4 KiB frames but only {self.available} are left; "
                "boot with a larger memory_size",
            )
        out: list[int] = []
        for _ in range(count):
            if self._freed:
                pfn = heapq.heappop(self._freed)
            else:
                pfn = self._next
                self._next += 1
            out.append(pfn)
        self._in_use.update(out)
        return out

    def allocate_one(self, what: str = "frames") -> int:
        """One frame number."""
        return self.allocate(1, what)[0]

    def free(self, pfns: list[int]) -> None:
        """Give frames back; freeing a frame that is not allocated is a host error."""
        for pfn in pfns:
            if pfn not in self._in_use:
                raise ValueError(f"frame {pfn:#x} is not allocated")
        for pfn in pfns:
            self._in_use.discard(pfn)
            heapq.heappush(self._freed, pfn)

    def is_allocated(self, pfn: int) -> bool:
        """True while ``pfn`` is handed out."""
        return pfn in self._in_use
