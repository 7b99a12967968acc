"""Physical memory: sparse, numpy-backed 4 KiB frames.

The installed size may be anything up to 4 GiB, but nothing is allocated up front: a frame (a
``numpy.uint8`` array of 4096 bytes) is created zero-filled the first time it is written or its
:meth:`PhysicalMemory.frame_view` is taken. Reading a frame that was never created reads zeros
and allocates nothing.

Frames are never replaced once created, so a ``memoryview`` handed out by
:meth:`PhysicalMemory.frame_view` stays valid and sees every later write, whichever path made
it (scalar, bulk, or another view). The MMU relies on this for its host-side fast path.

Every access is checked against the installed size; an access outside ``0..size-1`` raises
:class:`~lavsim.errors.MemoryAccessError` before any byte is written (never a silent 0).
"""

from __future__ import annotations

import hashlib
import struct
import sys

import numpy as np
import numpy.typing as npt

from lavsim.errors import ConfigError, MemoryAccessError

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1
#: The largest installable size: the whole 32-bit physical address space.
MAX_SIZE = 1 << 32

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_unpack16 = _U16.unpack_from
_unpack32 = _U32.unpack_from
_pack16 = _U16.pack_into
_pack32 = _U32.pack_into

#: True when the host stores integers little-endian, so that a ``memoryview`` cast to ``"I"``
#: reads guest dwords directly (faster than ``struct`` for aligned accesses).
HOST_LITTLE_ENDIAN = sys.byteorder == "little"

Frame = npt.NDArray[np.uint8]


class PhysicalMemory:
    """Installed physical memory of ``size`` bytes, allocated frame by frame on first touch.

    ``size`` must be an ``int``, a multiple of 4096, between 4096 and 4 GiB inclusive.
    """

    __slots__ = ("_frames", "_views", "size")

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise ConfigError("size", f"must be an int, not {type(size).__name__}")
        if size < PAGE_SIZE or size > MAX_SIZE:
            raise ConfigError("size", f"must be between 4096 and 4 GiB, got {size}")
        if size & PAGE_MASK:
            raise ConfigError("size", f"must be a multiple of 4096, got {size}")
        self.size = size
        self._frames: dict[int, Frame] = {}
        self._views: dict[int, memoryview] = {}

    # --- frames --------------------------------------------------------------------------

    @property
    def frame_count(self) -> int:
        """Number of 4 KiB frames installed (allocated or not)."""
        return self.size >> PAGE_SHIFT

    @property
    def pages_touched(self) -> int:
        """Number of frames allocated so far (written to, or handed out by ``frame_view``)."""
        return len(self._frames)

    def allocated_frames(self) -> list[int]:
        """Page frame numbers of the allocated frames, ascending."""
        return sorted(self._frames)

    def _frame(self, pfn: int) -> memoryview:
        """The view of frame ``pfn`` (already bounds-checked), creating the frame if needed."""
        view = self._views.get(pfn)
        if view is None:
            array = np.zeros(PAGE_SIZE, dtype=np.uint8)
            # numpy arrays export the buffer protocol; numpy's stubs do not say so to mypy.
            view = memoryview(array)  # type: ignore[arg-type]
            self._frames[pfn] = array
            self._views[pfn] = view
        return view

    def frame_view(self, pfn: int) -> memoryview:
        """A writable ``memoryview`` (format ``B``, 4096 bytes) of frame ``pfn``.

        Allocates the frame if it does not exist yet. The view stays valid for the life of this
        memory and aliases the frame: writes through it are guest-visible.
        """
        if not 0 <= pfn < (self.size >> PAGE_SHIFT):
            raise MemoryAccessError(pfn << PAGE_SHIFT, PAGE_SIZE, self.size)
        return self._frame(pfn)

    def frame_array(self, pfn: int) -> Frame:
        """The numpy array of frame ``pfn`` (allocated if needed), for bulk host-side work."""
        self.frame_view(pfn)
        return self._frames[pfn]

    def _check(self, addr: int, n: int) -> None:
        if n < 0 or addr < 0 or addr + n > self.size:
            raise MemoryAccessError(addr, n, self.size)

    # --- scalar access -------------------------------------------------------------------

    def read8(self, addr: int) -> int:
        """The byte at physical ``addr``."""
        if not 0 <= addr < self.size:
            raise MemoryAccessError(addr, 1, self.size)
        view = self._views.get(addr >> PAGE_SHIFT)
        return 0 if view is None else view[addr & PAGE_MASK]

    def read16(self, addr: int) -> int:
        """The little-endian word at physical ``addr`` (any alignment)."""
        off = addr & PAGE_MASK
        if off <= PAGE_SIZE - 2 and addr >= 0 and addr + 2 <= self.size:
            view = self._views.get(addr >> PAGE_SHIFT)
            return 0 if view is None else int(_unpack16(view, off)[0])
        return int.from_bytes(self.read(addr, 2), "little")

    def read32(self, addr: int) -> int:
        """The little-endian dword at physical ``addr`` (any alignment)."""
        off = addr & PAGE_MASK
        if off <= PAGE_SIZE - 4 and addr >= 0 and addr + 4 <= self.size:
            view = self._views.get(addr >> PAGE_SHIFT)
            return 0 if view is None else int(_unpack32(view, off)[0])
        return int.from_bytes(self.read(addr, 4), "little")

    def write8(self, addr: int, value: int) -> None:
        """Store the low 8 bits of ``value`` at physical ``addr``."""
        if not 0 <= addr < self.size:
            raise MemoryAccessError(addr, 1, self.size)
        self._frame(addr >> PAGE_SHIFT)[addr & PAGE_MASK] = value & 0xFF

    def write16(self, addr: int, value: int) -> None:
        """Store the low 16 bits of ``value`` little-endian at physical ``addr``."""
        off = addr & PAGE_MASK
        if off <= PAGE_SIZE - 2 and addr >= 0 and addr + 2 <= self.size:
            _pack16(self._frame(addr >> PAGE_SHIFT), off, value & 0xFFFF)
        else:
            self.write(addr, (value & 0xFFFF).to_bytes(2, "little"))

    def write32(self, addr: int, value: int) -> None:
        """Store the low 32 bits of ``value`` little-endian at physical ``addr``."""
        off = addr & PAGE_MASK
        if off <= PAGE_SIZE - 4 and addr >= 0 and addr + 4 <= self.size:
            _pack32(self._frame(addr >> PAGE_SHIFT), off, value & 0xFFFFFFFF)
        else:
            self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    # --- bulk access ---------------------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes starting at physical ``addr``."""
        self._check(addr, n)
        out = bytearray(n)
        done = 0
        while done < n:
            a = addr + done
            off = a & PAGE_MASK
            chunk = min(n - done, PAGE_SIZE - off)
            view = self._views.get(a >> PAGE_SHIFT)
            if view is not None:
                out[done : done + chunk] = view[off : off + chunk]
            done += chunk
        return bytes(out)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` starting at physical ``addr`` (all-or-nothing bounds check)."""
        src = memoryview(data).cast("B")
        n = len(src)
        self._check(addr, n)
        done = 0
        while done < n:
            a = addr + done
            off = a & PAGE_MASK
            chunk = min(n - done, PAGE_SIZE - off)
            self._frame(a >> PAGE_SHIFT)[off : off + chunk] = src[done : done + chunk]
            done += chunk

    def copy(self, dst: int, src: int, n: int) -> None:
        """Copy ``n`` bytes from physical ``src`` to physical ``dst``.

        Overlapping ranges behave like ``memmove`` (the result is as if the source were read in
        full before any byte was written).
        """
        self._check(src, n)
        self._check(dst, n)
        if n == 0 or dst == src:
            return
        # Reading the source in full first gives memmove semantics for any overlap; page-sized
        # chunks keep it to a few slice copies.
        self.write(dst, self.read(src, n))

    def fill(self, addr: int, n: int, byte: int) -> None:
        """Set ``n`` bytes from physical ``addr`` to the low 8 bits of ``byte``."""
        self._check(addr, n)
        value = byte & 0xFF
        done = 0
        while done < n:
            a = addr + done
            off = a & PAGE_MASK
            chunk = min(n - done, PAGE_SIZE - off)
            pfn = a >> PAGE_SHIFT
            if value == 0 and pfn not in self._frames:
                pass  # an absent frame already reads as zeros; keep memory sparse
            else:
                self._frame(pfn)
                self._frames[pfn][off : off + chunk] = value
            done += chunk

    # --- inspection ----------------------------------------------------------------------

    def digest(self) -> str:
        """SHA-256 (hex) of the memory contents.

        Independent of which frames happen to be allocated: an allocated all-zero frame hashes
        like an absent one, so two runs that leave the same bytes give the same digest.
        """
        h = hashlib.sha256()
        h.update(self.size.to_bytes(8, "little"))
        for pfn in sorted(self._frames):
            array = self._frames[pfn]
            if array.any():
                h.update(pfn.to_bytes(4, "little"))
                h.update(array.tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"PhysicalMemory(size={self.size:#x}, pages_touched={len(self._frames)})"
