"""The MMU facade: paging controls, the modelled TLBs, and linear-address memory access.

Two caches live here and must not be confused (DESIGN.md §2):

* the **modelled TLBs** (:mod:`lavsim.mmu.tlb`): architecture; their misses are reported to
  the ``listener`` and cost simulated cycles;
* the **host fast path**: per access kind, a ``dict`` from virtual page number to a
  :class:`FastPage` (frame view, physical base, permission mask, hit owner, dword and word
  views). It holds pages of any entry the modelled TLBs hold, not only of MRU ones, in two
  variants made at the fill (over views made once per frame): while the entry is the MRU of
  its set the page's ``owner`` is the TLB, and a fast hit is exactly a modelled hit that
  changes no LRU state (one hit credited); otherwise the owner is the entry's
  :class:`FastWay`, whose ``hits += 1`` credits the TLB and makes the entry MRU
  (:meth:`TLB.touch`, what the modelled probe does), putting the MRU variants in the dict.
  The TLB's hooks keep this exact: ``on_demote`` (an entry stops being MRU: its pages are
  swapped for the way-credited variants) and ``on_drop`` (an entry is replaced, evicted,
  invalidated or flushed: its pages leave the dict); a CR0.WP change clears the dict (the
  permission mask depends on WP). The converse is not needed: an entry that becomes MRU
  because another left its set keeps way-credited pages until its next hit (a ``touch`` of
  the MRU changes nothing). So the TLB contents in LRU order and every TLB's statistics are
  those of the modelled path. Writes go through the fast path only when the cached Dirty
  flag is set, so a write that must set D always reaches the modelled path. With
  ``MMUConfig.fast_path`` off the dicts stay empty and every access takes the modelled path;
  the results, TLB contents, LRU order and statistics are identical
  (tests/mmu/test_mmu_properties.py, tests/mmu/test_fast_ways.py).

  Code outside the MMU that inlines the fast path (``lavsim.cpu.fast``, ``lavsim.cpu.far``,
  the executor's fetch) looks pages up through :attr:`MMU.data_page` / :attr:`MMU.code_page`
  (the bound ``get`` of the dict in use, so a lookup costs what a dict lookup costs), tests
  ``page.mask & (FAST_READ << user)`` (or ``FAST_WRITE``), credits ``page.owner.hits`` and
  then uses the views. A ``None`` or a missing permission bit means: take the modelled path.
  The credit must be made in access order, once per access (or ``+= n`` for n accesses in a
  row to that page), right after the lookup. A page object never changes, but a hit or a
  fill may change which object the dict holds, so a caller that keeps a page across
  accesses checks ``data_page(vpn) is page`` before each (as the executor's blocks do).

With CR0.PG=0 a linear address is the physical address; the fast dict then maps page numbers to
frames directly and the TLBs are not used.

**The tracer seam.** ``add_tracer(t)`` attaches a :class:`MemoryTracer`: its
``on_access(kind, phys, size, user)`` is called for every physical access the simulated
processor makes, before the access is done (after its translation succeeded), with the
:class:`Access` kind, the physical address, the size in bytes and the access's ``user`` flag
(``False`` for the processor's implicit supervisor accesses). What is reported:

* data reads and writes (``READ``/``WRITE``), per physical piece: an access crossing a page
  is two events, one per page, in address order;
* instruction fetch (``FETCH``): the decoder's fetch window, i.e. the bytes it reads from
  physical memory to decode one instruction: from its first byte up to 15 bytes, the CS
  limit or the end of the page, whichever comes first, plus, only when the instruction
  continues into the next page, the rest of the window there. Every executed instruction is
  fetched: the executor reports the window of each hit in its decoded-instruction cache
  (:meth:`MMU.report_fetch`) and runs no blocks while a tracer is attached. A tracer that
  names its ``access_kinds`` without ``FETCH`` (a board's memory hierarchy) is not sent
  windows: none is reported, or worked out, while no attached tracer wants them;
* the executed instruction's exact bytes (``INSN``), reported once its length is known
  (after the decode, or at a hit in the decoded-instruction cache), one event per page it
  lies in: what a code cache must see (the fetch window reaches past the instruction). A
  fetch that faults reports its window but no ``INSN``;
* page-walk entry reads (``WALK_READ``) and Accessed/Dirty write-backs (``AD_WRITE``, a
  locked update on hardware), 4 bytes each;
* the Accessed/busy-bit update of a descriptor (``LOCKED_READ`` of its access byte, then
  ``LOCKED_WRITE`` when a bit changes); descriptor, gate and TSS reads are ``READ`` with
  ``user=False``;
* REP MOVSD/STOSD bulk runs: one event per contiguous physical run with its length (a run
  never crosses a page), ``READ`` of the source then ``WRITE`` of the destination. Per run,
  not per item, because a run with its length already names every cache line it touches and
  one call per run keeps the bulk path a bulk path; a tracer that wants items splits it into
  ``size // 4`` dwords (the item path, taken when the bulk path does not apply, reports each
  item's read and write);
* far-transfer and interrupt stack frames and everything else the CPU reads or writes go
  through the scalar accessors above and are reported as they are; a guest read-modify-write
  (XCHG with memory, a LOCK-prefixed instruction) is its ``READ`` then its ``WRITE``.

A tracer may offer an :class:`AccessFilter` (``fast_filter``): the ``INSN``/``READ``/``WRITE``
cases it answers by counting alone, which the CPU's translations then test inline instead of
reporting (:attr:`MMU.hot_filter`, while it is the only tracer).

While any tracer is attached the instance's class is :class:`_TracingMMU`, whose scalar
accessors report their fast hits exactly as the modelled path reports (kind, physical address,
size, ``user``, order; page-crossing accesses take the modelled path as before), and
``data_page`` / ``code_page`` answer None, so code that inlines the fast path (and would
report nothing) takes the accessors; with no tracer the accessors are the plain ones and pay
nothing. Tracers observe only:
they must not change memory, registers or the MMU, and a run gives the same cycles, registers,
memory and TLB statistics with or without them (tests/mmu/test_mmu_tracer.py). The one
exception is a board's memory hierarchy (:mod:`lavsim.memsys`), which is a timing model: it
adds stall cycles to the CPU's TSC and changes nothing else (tests/machine/
test_board_equivalence.py checks that registers, memory and faults stay those of the run
without it). Accesses made
around the processor are not reported: host-side loaders and checkers using
:class:`~lavsim.memory.PhysicalMemory` directly, and device transfers (the network interface's
DMA, ``lavsim.network``, reads and writes physical memory through the machine).

**Page cache attributes.** Each TLB fill records the PCD/PWT bits of the mapping entry by
physical frame (:attr:`MMU.page_cache`, :attr:`MMU.large_page_cache`), only for pages that
have one of them set (and drops the record when the frame is mapped again without them); a
board's hierarchy looks an access's frame up there, so the tracer seam stays
``on_access(kind, phys, size, user)`` and the fast path and the no-tracer path do not change.
The record is what the TLB entry latched unless two linear mappings with different bits alias
one frame (then the latest fill wins), which the SDM advises against.

**State.** :meth:`MMU.get_state` / :meth:`MMU.set_state` give and take the paging controls,
the counters (declared once in :data:`MMU_COUNTERS`) and every TLB's entries in LRU order as
JSON-ready data; the fast path is host-side and is dropped by ``set_state``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

import attrs

from lavsim.errors import ConfigError
from lavsim.faults import PF, PF_P, PF_U, PF_W, CpuFault
from lavsim.memory import HOST_LITTLE_ENDIAN, PhysicalMemory
from lavsim.mmu.paging import (
    CR0_PG,
    CR0_WP,
    CR4_PGE,
    CR4_PSE,
    WalkResult,
    allowed,
    walk,
)
from lavsim.mmu.tlb import TLB, TLBConfig, TLBEntry, TLBStats
from lavsim.stats import CounterGroup

#: Fast-path permission mask bits: a read by ``user`` needs ``FAST_READ << user``, a write
#: ``FAST_WRITE << user`` (``user`` is 0 or 1).
FAST_READ = 1
FAST_WRITE = 4
_READ_SUP = FAST_READ
_READ_USER = FAST_READ << 1
_WRITE_SUP = FAST_WRITE
_WRITE_USER = FAST_WRITE << 1
_ALL = _READ_SUP | _READ_USER | _WRITE_SUP | _WRITE_USER

_MASK32 = 0xFFFFFFFF
_PG_BIT = 1 << 31
_unpack16 = struct.Struct("<H").unpack_from
_unpack32 = struct.Struct("<I").unpack_from


class Access(enum.IntEnum):
    """The kind of one physical access reported to a :class:`MemoryTracer`."""

    FETCH = 0
    """Instruction fetch (the decoder's fetch window)."""
    READ = 1
    """Data read (explicit, or an implicit supervisor read: descriptors, gates, TSS, stacks)."""
    WRITE = 2
    """Data write (explicit, or implicit: interrupt and far-transfer stack frames)."""
    WALK_READ = 3
    """Read of a page-directory or page-table entry by a page walk."""
    AD_WRITE = 4
    """Accessed/Dirty write-back into a paging entry (a locked update on hardware)."""
    LOCKED_READ = 5
    """Read half of a locked read-modify-write (a descriptor's Accessed/busy bit)."""
    LOCKED_WRITE = 6
    """Write half of a locked read-modify-write."""
    INSN = 7
    """The exact bytes of one decoded instruction (reported after its decode, per page piece;
    ``FETCH`` is the decoder's look-ahead window, longer than the instruction)."""

    @property
    def is_write(self) -> bool:
        """Does this kind of access store to memory?"""
        return self in _WRITE_KINDS


_WRITE_KINDS = frozenset({Access.WRITE, Access.AD_WRITE, Access.LOCKED_WRITE})


class MemoryTracer(Protocol):
    """Sees every physical access of the simulated processor (see the module docstring).

    ``on_access`` must not change any simulated state (memory, registers, the MMU; a memory
    hierarchy charges the TSC and nothing else, see the module docstring); it may read
    :class:`~lavsim.memory.PhysicalMemory` (the access has not been done yet: a write's old
    bytes are still there).

    A tracer may have an ``access_kinds`` attribute, the collection of :class:`Access` kinds
    it consumes (read once, at ``add_tracer``): ``on_access`` is then called for those kinds
    only, and no fetch window is reported at all while no attached tracer wants ``FETCH``.
    Without the attribute it sees every kind.

    A tracer may also have ``on_insn(phys, size, user)``, doing exactly what
    ``on_access(Access.INSN, phys, size, user)`` does: when it is the only tracer, instruction
    bytes are reported through it (a call less per instruction). Likewise ``on_read`` and
    ``on_write`` for ``READ`` and ``WRITE``: the scalar accessors' hits report through them.
    """

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None: ...


class AccessFilter:
    """A tracer's fast-filter protocol: the ``INSN``, ``READ`` and ``WRITE`` accesses it
    answers by counting alone, so that code which reports those accesses itself (the CPU's
    block translations, :mod:`lavsim.cpu.translate`) can test for them inline and call the
    tracer only for the others. A tracer offers one as its ``fast_filter`` attribute (read at
    ``add_tracer``); :attr:`MMU.hot_filter` is it while that tracer is the only one attached
    and nobody wants ``FETCH``.

    Lines are physical addresses shifted right by ``code_shift`` / ``data_shift``. The tracer
    promises, for as long as it stays attached:

    * ``INSN`` of ``(phys, size)`` whose every line is a key of ``code_hot``: exactly one
      ``code_counts.read_hits += 1`` per line; anything else: ``insn(phys, size)``;
    * ``READ`` inside one line that is a key of ``data_hot``: ``data_counts.read_hits += 1``;
      else ``read(phys, size)``;
    * ``WRITE`` inside one line that is a key of ``data_hot`` while ``write_back`` is true and
      every mapping in ``write_guards`` is empty: ``data_counts.write_hits += 1`` and
      ``data_counts.dirty[(line & set_mask) * ways + data_hot[line]] = True``; else
      ``write(phys, size)``;
    * ``insn``, ``read`` and ``write`` are what ``on_access`` does for that kind (``user``
      ignored), and none of the three touches the MMU;
    * the counted cases change nothing else: in particular no key enters or leaves
      ``code_hot`` / ``data_hot`` except inside a call into the tracer.

    The mappings are the tracer's live ones (tested in place, never copied); ``key`` names the
    constants (the shifts) a translation may build in.
    """

    __slots__ = (
        "code_counts",
        "code_hot",
        "code_shift",
        "data_counts",
        "data_hot",
        "data_shift",
        "insn",
        "key",
        "read",
        "set_mask",
        "ways",
        "write",
        "write_back",
        "write_guards",
    )

    def __init__(
        self,
        code: tuple[Mapping[int, int], Any, int, Callable[[int, int], None]],
        data: tuple[Mapping[int, int], Any, int, Callable[[int, int], None],
                    Callable[[int, int], None]],
        write_back: bool,
        set_mask: int,
        ways: int,
        write_guards: tuple[Mapping[int, int], ...],
    ) -> None:
        self.code_hot, self.code_counts, self.code_shift, self.insn = code
        self.data_hot, self.data_counts, self.data_shift, self.read, self.write = data
        self.write_back = write_back
        self.set_mask = set_mask
        self.ways = ways
        self.write_guards = write_guards
        self.key = ("filter", self.code_shift, self.data_shift)


#: The kinds an :class:`AccessFilter` answers for.
_FILTERED = frozenset({Access.INSN, Access.READ, Access.WRITE})

#: Every kind except the decoder's look-ahead window: a tracer with these kinds (or all)
#: is called directly, with no filtering call in between.
_ALL_BUT_FETCH = frozenset(Access) - {Access.FETCH}


class MMUListener(Protocol):
    """Receives the MMU's modelled memory-system events (the timing model turns them into cycles).

    ``on_tlb_miss`` is called on every modelled TLB miss (successful or faulting walk) with the
    number of paging-entry reads and Accessed/Dirty write-backs the walk made. A listener may
    also define ``on_dirty_walk(linear, walk_reads, ad_writes)``, called when a write hits a TLB
    entry whose cached Dirty flag is 0 and the MMU goes back to the tables to set D; if it does
    not, that walk is reported through ``on_tlb_miss(False, ...)`` instead.
    """

    def on_tlb_miss(self, fetch: bool, linear: int, walk_reads: int, ad_writes: int) -> None: ...


@attrs.frozen(slots=True)
class MMUConfig:
    """TLB organisation of an MMU.

    ``tlb``: the unified TLB (4 KiB pages; 4 MiB pages cached in 4 KiB pieces), or the data TLB
    for 4 KiB pages when ``itlb`` is given. ``itlb``: a separate instruction TLB (4 MiB pages in
    4 KiB pieces); without it instruction fetches use the data side. ``large_dtlb``: a separate
    data TLB for 4 MiB pages; without it they are cached in 4 KiB pieces in ``tlb``.
    ``fast_path``: enable the host-side fast path (changes no simulated result).
    """

    tlb: TLBConfig
    itlb: TLBConfig | None = None
    large_dtlb: TLBConfig | None = None
    fast_path: bool = True

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.tlb, TLBConfig):
            raise ConfigError("tlb", "must be a TLBConfig")
        for name in ("itlb", "large_dtlb"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), TLBConfig):
                raise ConfigError(name, "must be a TLBConfig or None")
        if not isinstance(self.fast_path, bool):
            raise ConfigError("fast_path", "must be a bool")

    @classmethod
    def i486(cls) -> MMUConfig:
        """Intel486: one unified 32-entry 4-way TLB (timing-reference §10, [EI486])."""
        return cls(tlb=TLBConfig(32, 4))

    @classmethod
    def pentium(cls) -> MMUConfig:
        """Pentium (P54C): ITLB 32x4-way; DTLB 64x4-way (4 KiB) + 8x4-way (4 MiB) (§10, [VEN])."""
        return cls(tlb=TLBConfig(64, 4), itlb=TLBConfig(32, 4), large_dtlb=TLBConfig(8, 4))


#: The MMU's own counters, declared once (the TLBs' are :data:`lavsim.mmu.tlb.TLB_COUNTERS`).
MMU_COUNTERS = CounterGroup(
    ("walks", "page walks made on a TLB miss"),
    ("dirty_walks", "walks made to set a Dirty flag on a TLB hit"),
    ("walk_reads", "paging-entry reads of both kinds of walk"),
    ("ad_writes", "Accessed/Dirty write-backs of both kinds of walk"),
    ("page_faults", "#PF raised by the MMU"),
    ("flushes", "flush events (CR3 loads, paging-control changes, flush())"),
    ("invlpgs", "INVLPG executions"),
)


@attrs.frozen(slots=True)
class MMUStats:
    """A snapshot of the MMU's event counters (:data:`MMU_COUNTERS`, described there).

    ``hits``/``misses``/``evictions`` sum over the TLBs (``tlbs`` has each one's own).
    ``flushes`` counts flush events (CR3 loads, paging-control changes, ``flush()``),
    ``invlpgs`` INVLPG executions, ``walks`` page walks on a TLB miss, ``dirty_walks`` walks made
    to set a Dirty flag on a TLB hit, ``walk_reads`` / ``ad_writes`` the paging-entry reads and
    A/D write-backs of both kinds of walk, ``page_faults`` the #PF the MMU raised.
    """

    hits: int
    misses: int
    flushes: int
    evictions: int
    invlpgs: int
    walks: int
    dirty_walks: int
    walk_reads: int
    ad_writes: int
    page_faults: int
    tlbs: tuple[tuple[str, TLBStats], ...]

    def table(self) -> str:
        """The counters as a small text table."""
        lines = [f"{'TLB':8} {'hits':>10} {'misses':>8} {'evict':>7} {'flush':>6} {'invlpg':>6}"]
        for name, s in self.tlbs:
            lines.append(
                f"{name:8} {s.hits:>10} {s.misses:>8} {s.evictions:>7} {s.flushes:>6} "
                f"{s.invlpgs:>6}"
            )
        lines.append(
            f"walks {self.walks}, dirty walks {self.dirty_walks}, walk reads {self.walk_reads}, "
            f"A/D writes {self.ad_writes}, page faults {self.page_faults}"
        )
        return "\n".join(lines)


class _Uncounted:
    """Stands in for a TLB as the 'owner' of fast entries when paging is off (nothing counted)."""

    __slots__ = ("hits",)

    def __init__(self) -> None:
        self.hits = 0


class FastPage:
    """One page of the host fast path (see the module docstring).

    ``frame``: the frame's byte view; ``base``: its physical address; ``mask``: the
    ``FAST_READ``/``FAST_WRITE`` bits allowed (shifted by ``user``); ``owner``: what a hit is
    credited to (``owner.hits += 1``): the owning TLB while the entry is the MRU of its set,
    else the entry's :class:`FastWay`, whose credit also makes the entry MRU; ``dwords`` /
    ``words``: the frame cast to native 32/16-bit units (aligned accesses only; the fast path
    exists only on little-endian hosts). A page's fields never change: when its entry changes
    rank the MMU puts another ``FastPage`` in the dict.
    """

    __slots__ = ("base", "dwords", "frame", "mask", "owner", "words")

    def __init__(
        self, views: FrameViews, base: int, mask: int, owner: TLB | FastWay | _Uncounted
    ) -> None:
        self.frame, self.dwords, self.words = views
        self.base = base
        self.mask = mask
        self.owner = owner


#: A frame's byte view and its casts to dwords and words, made once per frame.
FrameViews = tuple[memoryview, memoryview, memoryview]


class FastWay:
    """A modelled TLB entry the fast path holds pages of (one page, or the 4 KiB pieces of a
    4 MiB entry that were touched), in two variants per page: ``mru`` (owner: the TLB; a hit
    only counts) and ``lru`` (owner: this way; a hit counts and makes the entry MRU, exactly
    what the modelled path's probe does). ``table`` is the fast dict the pages live in; it
    holds the ``mru`` variants while the entry is the MRU of its set, else the ``lru`` ones.
    """

    __slots__ = ("key", "lru", "mru", "table", "tlb")

    def __init__(self, tlb: TLB, key: int, table: dict[int, FastPage]) -> None:
        self.tlb = tlb
        self.key = key
        self.table = table
        self.mru: dict[int, FastPage] = {}
        self.lru: dict[int, FastPage] = {}

    @property
    def hits(self) -> int:
        """The owning TLB's hit counter."""
        return self.tlb.hits

    @hits.setter
    def hits(self, value: int) -> None:
        # A hit on an entry that is not the MRU of its set: count it, make it MRU (the TLB's
        # hook puts the former MRU's lru pages in the table) and put its mru pages in.
        tlb = self.tlb
        tlb.hits = value
        if tlb.touch(self.key):
            self.table.update(self.mru)


class _FastSide:
    """The fast path's view of one TLB: its ways by key and the TLB's hooks."""

    __slots__ = ("mmu", "table", "tlb", "ways")

    def __init__(self, mmu: MMU, tlb: TLB, table: dict[int, FastPage]) -> None:
        self.mmu = mmu
        self.tlb = tlb
        self.table = table
        self.ways: dict[int, FastWay] = {}
        tlb.on_demote = self.demote
        tlb.on_drop = self.drop

    def demote(self, key: int) -> None:
        way = self.ways.get(key)
        if way is not None:
            self.table.update(way.lru)

    def drop(self, key: int | None) -> None:
        if key is None:
            self.mmu._clear_fast()
            return
        way = self.ways.pop(key, None)
        if way is None:
            return
        table = self.table
        for vpn, page in way.mru.items():
            held = table.get(vpn)
            if held is page or held is way.lru[vpn]:
                del table[vpn]


PageLookup = Callable[[int], FastPage | None]


class _TracedWalkMemory:
    """Physical memory as a page walk sees it while tracers are attached: reports each entry
    read and A/D write-back, then does it."""

    __slots__ = ("memory", "mmu")

    def __init__(self, mmu: MMU) -> None:
        self.mmu = mmu
        self.memory = mmu.memory

    def read32(self, addr: int) -> int:
        self.mmu._emit(Access.WALK_READ, addr, 4, False)
        return self.memory.read32(addr)

    def write32(self, addr: int, value: int) -> None:
        self.mmu._emit(Access.AD_WRITE, addr, 4, False)
        self.memory.write32(addr, value)


class MMU:
    """Linear-address access to ``memory`` through paging and the modelled TLBs.

    Hot-path methods (TLB hit on an MRU entry, access inside one page): ``translate``,
    ``read8/16/32``, ``write8/16/32``, ``fetch8/16/32``: one dict lookup, one mask test, one
    counter increment and the memory access. Everything else takes the modelled path.
    """

    __slots__ = (
        "_dfast",
        "_dfast_paged",
        "_dirty_cb",
        "_emit",
        "_fast_enabled",
        "_identity",
        "_ifast",
        "_ifast_paged",
        "_itlb",
        "_listener",
        "_ltlb",
        "_miss_cb",
        "_nofast",
        "_paging",
        "_pge",
        "_pse",
        "_routes",
        "_side_of",
        "_tlb",
        "_tlbs",
        "_tracers",
        "_uncounted",
        "_views",
        "_walk_memory",
        "_wp",
        "ad_writes",
        "code_page",
        "config",
        "cr0",
        "cr3",
        "cr4",
        "data_page",
        "dirty_walks",
        "emit_insn",
        "emit_read",
        "emit_write",
        "fetch_page",
        "flushes",
        "frame_page",
        "hot_filter",
        "invlpgs",
        "large_page_cache",
        "memory",
        "page_cache",
        "page_faults",
        "traces_fetch",
        "tracing",
        "walk_reads",
        "walks",
    )

    def __init__(self, memory: PhysicalMemory, config: MMUConfig | None = None) -> None:
        self.memory = memory
        self.config = config if config is not None else MMUConfig.i486()
        cfg = self.config
        self.cr0 = 0
        self.cr3 = 0
        self.cr4 = 0
        self._paging = False
        self._wp = False
        self._pse = False
        self._pge = False
        self._tlb = TLB(cfg.tlb, 12, "dtlb" if cfg.itlb is not None else "tlb")
        self._itlb = TLB(cfg.itlb, 12, "itlb") if cfg.itlb is not None else self._tlb
        self._ltlb = TLB(cfg.large_dtlb, 22, "dtlb4m") if cfg.large_dtlb is not None else None
        tlbs = [self._tlb]
        if self._itlb is not self._tlb:
            tlbs.insert(0, self._itlb)
        if self._ltlb is not None:
            tlbs.append(self._ltlb)
        self._tlbs: tuple[TLB, ...] = tuple(tlbs)

        self._fast_enabled = cfg.fast_path
        self._nofast: dict[int, FastPage] = {}
        self._identity: dict[int, FastPage] = {}
        self._dfast_paged: dict[int, FastPage] = {}
        self._ifast_paged: dict[int, FastPage] = (
            {} if self._itlb is not self._tlb else self._dfast_paged
        )
        self._uncounted = _Uncounted()
        # Each TLB's fast-path side: the dict its pages go to (the ITLB's own dict when the
        # TLBs are split; the large-page TLB's pieces are data pages).
        self._side_of: dict[TLB, _FastSide] = {
            t: _FastSide(self, t, self._ifast_paged if t is self._itlb else self._dfast_paged)
            for t in self._tlbs
        }
        self._views: dict[int, FrameViews] = {}
        self._dfast = self._identity if self._fast_enabled else self._nofast
        self._ifast = self._dfast
        #: The fast-path lookup for data accesses: ``data_page(linear >> 12)`` is the
        #: :class:`FastPage` of that page or None (the bound ``get`` of the dict in use).
        self.data_page: PageLookup = self._dfast.get
        #: The same for instruction fetches (the ITLB's pages when the TLBs are split).
        self.code_page: PageLookup = self._ifast.get
        #: The same as ``code_page`` while no tracer is attached, and with tracers too: for a
        #: caller that reports each fetch itself (``report_fetch``/``report_insn``) right after
        #: a hit, which is then exactly ``translate(linear, False, user, True)``.
        self.fetch_page: PageLookup = self._ifast.get
        #: The data side's page map, kept with tracers too: for a caller that only wants the
        #: frame of a data access already made (it credits nothing and accesses nothing), or
        #: one that reports each access it makes itself, right after the hit and before the
        #: access (as the tracing accessors do; the translations under an AccessFilter).
        self.frame_page: PageLookup = self._dfast.get
        self._tracers: tuple[MemoryTracer, ...] = ()
        #: Reports one access to every tracer: the tracer's own ``on_access`` when there is
        #: one (a call less per access), else :meth:`_trace`.
        self._emit: Callable[[Access, int, int, bool], None] = self._trace
        #: ``emit_insn(phys, n, user)``: :meth:`report_insn` for a caller that knows a tracer is
        #: attached (a call less per instruction: the executor's traced block loop).
        self.emit_insn: Callable[[int, int, bool], None] = partial(self._trace, Access.INSN)
        #: The same for ``READ`` and ``WRITE`` (the tracing scalar accessors' hits).
        self.emit_read: Callable[[int, int, bool], None] = partial(self._trace, Access.READ)
        self.emit_write: Callable[[int, int, bool], None] = partial(self._trace, Access.WRITE)
        #: By kind value: the ``on_access`` of each tracer that wants that kind.
        self._routes: tuple[tuple[Callable[[Access, int, int, bool], None], ...], ...] = ()
        #: Does an attached tracer want ``FETCH``? (Read only; while False no fetch window is
        #: reported, so a caller may skip working one out for ``report_fetch``.)
        self.traces_fetch = False
        #: The only attached tracer's :class:`AccessFilter` (None: no tracer, several, one
        #: without a filter, or one wanting ``FETCH``). Read only.
        self.hot_filter: AccessFilter | None = None
        #: Is a tracer attached (``data_page`` / ``code_page`` then answer None, so that code
        #: inlining the fast path takes the MMU's accessors, which report every access)? Read
        #: only (an attribute, not a property: the executor tests it per instruction).
        self.tracing = False
        self._walk_memory = _TracedWalkMemory(self)
        #: PCD/PWT of the pages that have them (``PCD | PWT`` bits as in the entry), by frame:
        #: 4 KiB frame number (phys >> 12) here, 4 MiB frame number (phys >> 22) in
        #: ``large_page_cache``. Recorded at each TLB fill, when the processor latches the bits
        #: into the entry; a board's hierarchy reads them (see "Page cache attributes" in the
        #: module docstring). Both stay empty, and cost nothing, while no page has the bits.
        self.page_cache: dict[int, int] = {}
        self.large_page_cache: dict[int, int] = {}

        self._listener: MMUListener | None = None
        self._miss_cb: MissCallback | None = None
        self._dirty_cb: DirtyCallback | None = None
        self.walks = 0
        self.dirty_walks = 0
        self.walk_reads = 0
        self.ad_writes = 0
        self.page_faults = 0
        self.flushes = 0
        self.invlpgs = 0

    # --- listener ------------------------------------------------------------------------

    @property
    def listener(self) -> MMUListener | None:
        """The event listener (or ``None``); see :class:`MMUListener`."""
        return self._listener

    @listener.setter
    def listener(self, value: MMUListener | None) -> None:
        self._listener = value
        if value is None:
            self._miss_cb = None
            self._dirty_cb = None
            return
        miss = value.on_tlb_miss
        self._miss_cb = miss
        dirty: DirtyCallback | None = getattr(value, "on_dirty_walk", None)
        if dirty is None:

            def as_miss(linear: int, walk_reads: int, ad_writes: int, /) -> None:
                miss(False, linear, walk_reads, ad_writes)

            dirty = as_miss
        self._dirty_cb = dirty

    # --- control registers ---------------------------------------------------------------

    def set_controls(self, cr0: int, cr4: int) -> None:
        """Take new CR0 and CR4 values (after a MOV to CR0/CR4).

        Changing CR0.PG, CR4.PSE or CR4.PGE flushes every TLB entry, global ones included
        (SDM Vol. 3 §4.10.4.1). A CR0.WP change needs no flush: entries cache the U/S and R/W
        flags, and WP is applied at every access.
        """
        cr0 &= _MASK32
        cr4 &= _MASK32
        changed0 = cr0 ^ self.cr0
        changed4 = cr4 ^ self.cr4
        self.cr0 = cr0
        self.cr4 = cr4
        self._paging = bool(cr0 & CR0_PG)
        self._wp = bool(cr0 & CR0_WP)
        self._pse = bool(cr4 & CR4_PSE)
        self._pge = bool(cr4 & CR4_PGE)
        if changed0 & CR0_PG or changed4 & (CR4_PSE | CR4_PGE):
            self.flush(keep_global=False)
        if changed0 & CR0_WP:
            self._clear_fast()
        self._select_fast()

    def _select_fast(self) -> None:
        """Point the accessors at the fast dicts for the current paging mode (or at the empty
        one when the fast path is off), and the public lookups at them too unless a tracer is
        attached (then at the empty one: inlined fast paths would report nothing)."""
        if not self._fast_enabled:
            self._dfast = self._ifast = self._nofast
        elif self._paging:
            self._dfast = self._dfast_paged
            self._ifast = self._ifast_paged
        else:
            self._dfast = self._ifast = self._identity
        self.fetch_page = self._ifast.get
        self.frame_page = self._dfast.get
        if self._tracers:
            self.data_page = self.code_page = self._nofast.get
        else:
            self.data_page = self._dfast.get
            self.code_page = self._ifast.get

    def load_cr3(self, value: int) -> None:
        """MOV to CR3: new page-directory base; flushes non-global entries (all without PGE)."""
        self.cr3 = value & _MASK32
        self.flush(keep_global=self._pge)

    def invlpg(self, linear: int) -> None:
        """INVLPG: drop every TLB entry translating ``linear`` (4 MiB pages included)."""
        self.invlpgs += 1
        for tlb in self._tlbs:
            tlb.invlpg(linear)

    def flush(self, keep_global: bool = False) -> None:
        """Drop every TLB entry, or every non-global one when ``keep_global``."""
        self.flushes += 1
        for tlb in self._tlbs:
            tlb.flush(keep_global)

    # --- statistics and inspection -------------------------------------------------------

    @property
    def stats(self) -> MMUStats:
        """A snapshot of the event counters."""
        per = tuple((t.name, t.stats()) for t in self._tlbs)
        return MMUStats(
            hits=sum(s.hits for _, s in per),
            misses=sum(s.misses for _, s in per),
            evictions=sum(s.evictions for _, s in per),
            tlbs=per,
            **MMU_COUNTERS.read(self),
        )

    @property
    def tlbs(self) -> dict[str, TLB]:
        """The modelled TLBs by name (``tlb``; or ``itlb``, ``dtlb``, ``dtlb4m``)."""
        return {t.name: t for t in self._tlbs}

    # --- the fast path's bookkeeping -----------------------------------------------------

    def _clear_fast(self) -> None:
        self._dfast_paged.clear()
        self._ifast_paged.clear()
        for side in self._side_of.values():
            side.ways.clear()

    def _frame_views(self, pfn: int) -> FrameViews | None:
        """The frame's views, made once per frame (a frame is never replaced); None if the
        frame is not installed or the host is big-endian."""
        views = self._views.get(pfn)
        if views is None:
            if pfn >= self.memory.frame_count:
                return None  # not installed: the access itself will report MemoryAccessError
            if not HOST_LITTLE_ENDIAN:
                # The aligned fast branches read guest words through native-order cast views;
                # on a big-endian host every access takes the modelled path (same results).
                return None
            frame = self.memory.frame_view(pfn)
            views = self._views[pfn] = (frame, frame.cast("I"), frame.cast("H"))
        return views

    def _remember(self, linear: int, entry: TLBEntry, owner: TLB) -> None:
        """Put the page of ``linear`` in the fast dict: its entry just became MRU in ``owner``."""
        if not self._fast_enabled:
            return
        side = self._side_of[owner]
        key = linear >> owner.page_shift
        vpn = linear >> 12
        way = side.ways.get(key)
        if way is None:
            way = side.ways[key] = FastWay(owner, key, side.table)
        elif vpn in way.mru:
            side.table.update(way.mru)
            return
        frame = entry.base | (linear & 0x3FF000) if owner.page_shift == 22 else entry.base
        views = self._frame_views(frame >> 12)
        if views is None:
            return
        us = entry.us
        mask = _READ_SUP | (_READ_USER if us else 0)
        if entry.d:
            if entry.rw or not self._wp:
                mask |= _WRITE_SUP
            if us and entry.rw:
                mask |= _WRITE_USER
        way.mru[vpn] = FastPage(views, frame, mask, owner)
        way.lru[vpn] = FastPage(views, frame, mask, way)
        side.table.update(way.mru)

    # --- the modelled path ---------------------------------------------------------------

    def _translate(self, linear: int, write: bool, user: bool, fetch: bool) -> int:
        """Translate one access through the modelled TLBs and the tables (the slow path)."""
        linear &= _MASK32
        if not self._paging:
            if self._fast_enabled and (linear >> 12) not in self._identity:
                views = self._frame_views(linear >> 12)
                if views is not None:
                    self._identity[linear >> 12] = FastPage(
                        views, linear & 0xFFFFF000, _ALL, self._uncounted
                    )
            return linear
        tlb = self._itlb if fetch else self._tlb
        large = self._ltlb if (not fetch or self._itlb is self._tlb) else None
        owner = tlb
        entry = tlb.probe(linear)
        if entry is None and large is not None:
            entry = large.probe(linear)
            owner = large
        if entry is None:
            return self._miss(linear, write, user, fetch, tlb, large)

        owner.hits += 1
        if not allowed(entry.us, entry.rw, write, user, self._wp):
            # A page fault invalidates the TLB entries for the faulting page (SDM Vol. 3
            # §4.10.4.1), so the handler's retry after fixing the tables walks again.
            owner.invalidate(linear)
            self.page_faults += 1
            raise CpuFault(PF, PF_P | (PF_W if write else 0) | (PF_U if user else 0), linear)
        if write and not entry.d:
            return self._dirty_walk(linear, user, tlb, large, owner)
        self._remember(linear, entry, owner)
        if owner.page_shift == 22:
            return entry.base | (linear & 0x3FFFFF)
        return entry.base | (linear & 0xFFF)

    def _walk(self, linear: int, write: bool, user: bool) -> WalkResult:
        memory = self._walk_memory if self._tracers else self.memory
        result = walk(memory, self.cr3, linear, write, user, self._wp, self._pse)
        self.walk_reads += result.reads
        self.ad_writes += result.ad_writes
        return result

    def _fill(self, linear: int, result: WalkResult, tlb: TLB, large: TLB | None) -> int:
        bits = result.cache
        if bits or self.page_cache or self.large_page_cache:
            self._record_cache(result, bits)
        if result.large and large is not None:
            entry = TLBEntry(result.large_base, result.us, result.rw, result.d, result.g, True)
            large.fill(linear, entry)
            self._remember(linear, entry, large)
        else:
            entry = TLBEntry(result.frame, result.us, result.rw, result.d, result.g, result.large)
            tlb.fill(linear, entry)
            self._remember(linear, entry, tlb)
        return result.physical

    def _record_cache(self, result: WalkResult, bits: int) -> None:
        # Only touched once some page had PCD/PWT set: a later cacheable mapping of the frame
        # drops its record.
        if result.large:
            table, key = self.large_page_cache, result.large_base >> 22
        else:
            table, key = self.page_cache, result.frame >> 12
        if bits:
            table[key] = bits
        else:
            table.pop(key, None)

    def _miss(
        self, linear: int, write: bool, user: bool, fetch: bool, tlb: TLB, large: TLB | None
    ) -> int:
        result = self._walk(linear, write, user)
        self.walks += 1
        # The miss belongs to the TLB that holds (or would hold) this page's size.
        (large if result.large and large is not None else tlb).misses += 1
        if self._miss_cb is not None:
            self._miss_cb(fetch, linear, result.reads, result.ad_writes)
        if result.fault is not None:
            self.page_faults += 1
            raise result.fault
        return self._fill(linear, result, tlb, large)

    def _dirty_walk(self, linear: int, user: bool, tlb: TLB, large: TLB | None, owner: TLB) -> int:
        """A write hit an entry whose cached D is 0: walk the tables again to set D.

        The walk sees the tables as they are now (as the processor's D-update does); the entry
        is replaced by what it finds, or dropped if the walk faults.
        """
        owner.invalidate(linear)
        result = self._walk(linear, True, user)
        self.dirty_walks += 1
        if self._dirty_cb is not None:
            self._dirty_cb(linear, result.reads, result.ad_writes)
        if result.fault is not None:
            self.page_faults += 1
            raise result.fault
        return self._fill(linear, result, tlb, large)

    # --- translation ---------------------------------------------------------------------

    def translate(self, linear: int, write: bool, user: bool, fetch: bool = False) -> int:
        """The physical address of one access at ``linear``, or ``CpuFault`` #PF.

        ``user``: a CPL 3 access that is not an implicit supervisor access. Fast on a TLB hit.
        """
        e = (self._ifast if fetch else self._dfast).get(linear >> 12)
        if e is not None and e.mask & ((4 if write else 1) << user):
            e.owner.hits += 1
            return e.base | (linear & 0xFFF)
        return self._translate(linear, write, user, fetch)

    def translate_owned(self, linear: int, write: bool, user: bool) -> tuple[int, TLB | None]:
        """:meth:`translate` of a data access, and the modelled TLB that counted it (the one
        whose hits or misses it changed; None with paging off). For a caller that credits
        that TLB further hits itself (the REP bulk path)."""
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & ((4 if write else 1) << user):
            owner = e.owner
            owner.hits += 1  # what translate() does on this hit
            phys = e.base | (linear & 0xFFF)
            if type(owner) is FastWay:
                return phys, owner.tlb
            return phys, owner if type(owner) is TLB else None
        tlbs = self._tlbs
        before = [t.hits + t.misses for t in tlbs]
        phys = self._translate(linear, write, user, False)
        for t, b in zip(tlbs, before, strict=True):
            if t.hits + t.misses != b:
                return phys, t
        return phys, None

    # --- scalar access -------------------------------------------------------------------

    def read8(self, linear: int, user: bool) -> int:
        """Data read of the byte at ``linear``."""
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (1 << user):
            e.owner.hits += 1
            return e.frame[linear & 0xFFF]
        p = self._translate(linear, False, user, False)
        if self._tracers:
            self._emit(Access.READ, p, 1, user)
        return self.memory.read8(p)

    def read16(self, linear: int, user: bool) -> int:
        """Data read of the little-endian word at ``linear`` (any alignment)."""
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (1 << user):
            off = linear & 0xFFF
            if not off & 1:
                e.owner.hits += 1
                return e.words[off >> 1]
            if off != 0xFFF:
                e.owner.hits += 1
                return int(_unpack16(e.frame, off)[0])
        return self._read_slow(linear, 2, user, False)

    def read32(self, linear: int, user: bool) -> int:
        """Data read of the little-endian dword at ``linear`` (any alignment)."""
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (1 << user):
            off = linear & 0xFFF
            if not off & 3:
                e.owner.hits += 1
                return e.dwords[off >> 2]
            if off <= 0xFFC:
                e.owner.hits += 1
                return int(_unpack32(e.frame, off)[0])
        return self._read_slow(linear, 4, user, False)

    def fetch8(self, linear: int, user: bool) -> int:
        """Instruction-fetch read of the byte at ``linear`` (through the ITLB when split)."""
        e = self._ifast.get(linear >> 12)
        if e is not None and e.mask & (1 << user):
            e.owner.hits += 1
            return e.frame[linear & 0xFFF]
        p = self._translate(linear, False, user, True)
        if self.traces_fetch:
            self._emit(Access.FETCH, p, 1, user)
        return self.memory.read8(p)

    def fetch16(self, linear: int, user: bool) -> int:
        """Instruction-fetch read of the word at ``linear``."""
        e = self._ifast.get(linear >> 12)
        if e is not None and e.mask & (1 << user) and (linear & 0xFFF) != 0xFFF:
            e.owner.hits += 1
            return int(_unpack16(e.frame, linear & 0xFFF)[0])
        return self._read_slow(linear, 2, user, True)

    def fetch32(self, linear: int, user: bool) -> int:
        """Instruction-fetch read of the dword at ``linear``."""
        e = self._ifast.get(linear >> 12)
        if e is not None and e.mask & (1 << user) and (linear & 0xFFF) <= 0xFFC:
            e.owner.hits += 1
            return int(_unpack32(e.frame, linear & 0xFFF)[0])
        return self._read_slow(linear, 4, user, True)

    def write8(self, linear: int, value: int, user: bool) -> None:
        """Data write of the low 8 bits of ``value`` at ``linear``."""
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (4 << user):
            e.owner.hits += 1
            e.frame[linear & 0xFFF] = value & 0xFF
            return
        p = self._translate(linear, True, user, False)
        if self._tracers:
            self._emit(Access.WRITE, p, 1, user)
        self.memory.write8(p, value)

    def write16(self, linear: int, value: int, user: bool) -> None:
        """Data write of the low 16 bits of ``value`` at ``linear`` (any alignment)."""
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (4 << user):
            off = linear & 0xFFF
            if not off & 1:
                e.owner.hits += 1
                e.words[off >> 1] = value & 0xFFFF
                return
        self._write_slow(linear, 2, value, user)

    def write32(self, linear: int, value: int, user: bool) -> None:
        """Data write of the low 32 bits of ``value`` at ``linear`` (any alignment)."""
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (4 << user):
            off = linear & 0xFFF
            if not off & 3:
                e.owner.hits += 1
                e.dwords[off >> 2] = value & _MASK32
                return
        self._write_slow(linear, 4, value, user)

    def read(self, linear: int, size: int, user: bool, fetch: bool = False) -> int:
        """Read ``size`` (1, 2 or 4) bytes little-endian at ``linear``."""
        if not fetch:
            # The scalar accessors' fast paths (same results: they fall back to _read_slow).
            if size == 4:
                return self.read32(linear, user)
            if size == 2:
                return self.read16(linear, user)
            if size == 1:
                return self.read8(linear, user)
        if size not in (1, 2, 4):
            raise ConfigError("size", f"must be 1, 2 or 4, got {size}")
        return self._read_slow(linear, size, user, fetch)

    def write(self, linear: int, size: int, value: int, user: bool) -> None:
        """Write the low ``size`` (1, 2 or 4) bytes of ``value`` little-endian at ``linear``."""
        if size == 4:
            self.write32(linear, value, user)
        elif size == 2:
            self.write16(linear, value, user)
        elif size == 1:
            self.write8(linear, value, user)
        else:
            raise ConfigError("size", f"must be 1, 2 or 4, got {size}")

    def _read_slow(self, linear: int, size: int, user: bool, fetch: bool) -> int:
        linear &= _MASK32
        first = 0x1000 - (linear & 0xFFF)
        if size <= first:
            p = self.translate(linear, False, user, fetch)
            if self._tracers and (self.traces_fetch or not fetch):
                self._emit(Access.FETCH if fetch else Access.READ, p, size, user)
            if size == 4:
                return self.memory.read32(p)
            if size == 2:
                return self.memory.read16(p)
            return self.memory.read8(p)
        # Crosses into the next page (wrapping at 4 GiB): translate the pages in order.
        p1 = self.translate(linear, False, user, fetch)
        p2 = self.translate((linear + first) & _MASK32, False, user, fetch)
        if self._tracers and (self.traces_fetch or not fetch):
            kind = Access.FETCH if fetch else Access.READ
            self._emit(kind, p1, first, user)
            self._emit(kind, p2, size - first, user)
        data = self.memory.read(p1, first) + self.memory.read(p2, size - first)
        return int.from_bytes(data, "little")

    def _write_slow(self, linear: int, size: int, value: int, user: bool) -> None:
        linear &= _MASK32
        first = 0x1000 - (linear & 0xFFF)
        if size <= first:
            p = self.translate(linear, True, user)
            if self._tracers:
                self._emit(Access.WRITE, p, size, user)
            if size == 4:
                self.memory.write32(p, value)
            elif size == 2:
                self.memory.write16(p, value)
            else:
                self.memory.write8(p, value)
            return
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        # Both pages must be writable before any byte is stored (no partial write).
        p1 = self.translate(linear, True, user)
        p2 = self.translate((linear + first) & _MASK32, True, user)
        if self._tracers:
            self._emit(Access.WRITE, p1, first, user)
            self._emit(Access.WRITE, p2, size - first, user)
        self.memory.write(p1, data[:first])
        self.memory.write(p2, data[first:])

    # --- bulk access ---------------------------------------------------------------------

    def _pieces(
        self, linear: int, n: int, write: bool, user: bool, fetch: bool
    ) -> list[tuple[int, int, int]]:
        """``(physical, offset in the buffer, length)`` per page of ``linear..linear+n-1``."""
        out: list[tuple[int, int, int]] = []
        done = 0
        linear &= _MASK32
        while done < n:
            a = (linear + done) & _MASK32
            chunk = min(n - done, 0x1000 - (a & 0xFFF))
            out.append((self.translate(a, write, user, fetch), done, chunk))
            done += chunk
        return out

    def read_bytes(self, linear: int, n: int, user: bool, fetch: bool = False) -> bytes:
        """``n`` bytes from ``linear`` (one translation per page touched)."""
        if n < 0:
            raise ConfigError("n", f"must not be negative, got {n}")
        pieces = self._pieces(linear, n, False, user, fetch)
        if self._tracers and (self.traces_fetch or not fetch):
            for p, _, k in pieces:
                self._emit(Access.FETCH if fetch else Access.READ, p, k, user)
        return b"".join(self.memory.read(p, k) for p, _, k in pieces)

    def write_bytes(self, linear: int, data: bytes | bytearray | memoryview, user: bool) -> None:
        """Store ``data`` at ``linear``; all pages are checked writable before a byte is stored."""
        buf = memoryview(data).cast("B")
        pieces = self._pieces(linear, len(buf), True, user, False)
        if self._tracers:
            for p, _, k in pieces:
                self._emit(Access.WRITE, p, k, user)
        for p, off, k in pieces:
            self.memory.write(p, buf[off : off + k])

    # --- physical access on behalf of the CPU (reported to tracers) ----------------------

    def fetch_physical(self, phys: int, n: int, user: bool) -> bytes:
        """The decoder's instruction fetch: ``n`` bytes at physical ``phys`` (already
        translated as a fetch), reported as :attr:`Access.FETCH`."""
        if self.traces_fetch:
            self._emit(Access.FETCH, phys, n, user)
        return self.memory.read(phys, n)

    def report_fetch(self, phys: int, n: int, user: bool) -> None:
        """Report an instruction fetch the executor served from its decoded-instruction cache:
        the ``n`` bytes at ``phys`` a fresh decode would read (nothing is read)."""
        if self.traces_fetch:
            self._emit(Access.FETCH, phys, n, user)

    def report_insn(self, phys: int, n: int, user: bool) -> None:
        """Report the ``n`` bytes at ``phys`` of an instruction about to execute (one call
        per page the instruction lies in) as :attr:`Access.INSN`; nothing is read."""
        if self._tracers:
            self.emit_insn(phys, n, user)

    def copy_physical(self, dst: int, src: int, n: int, user: bool) -> None:
        """A bulk string move of ``n`` bytes between translated physical runs (each inside one
        page): one ``READ`` of the source run, then one ``WRITE`` of the destination run."""
        if self._tracers:
            self._emit(Access.READ, src, n, user)
            self._emit(Access.WRITE, dst, n, user)
        self.memory.copy(dst, src, n)

    def write_physical(self, phys: int, data: bytes, user: bool) -> None:
        """A bulk string store of ``data`` at a translated physical run (inside one page),
        reported as one ``WRITE``."""
        if self._tracers:
            self._emit(Access.WRITE, phys, len(data), user)
        self.memory.write(phys, data)

    def or_locked8(self, linear: int, bits: int) -> bool:
        """The processor's locked update of a descriptor's access byte at ``linear``: OR in
        ``bits``, storing only when a bit changes (a supervisor access: the Accessed bit of a
        segment, the busy bit of a TSS). True when the byte was written. The same
        translations as ``read8`` then ``write8``; reported as ``LOCKED_READ`` /
        ``LOCKED_WRITE``."""
        p = self.translate(linear, False, False)
        if self._tracers:
            self._emit(Access.LOCKED_READ, p, 1, False)
        byte = self.memory.read8(p)
        if byte | bits == byte:
            return False
        p = self.translate(linear, True, False)
        if self._tracers:
            self._emit(Access.LOCKED_WRITE, p, 1, False)
        self.memory.write8(p, byte | bits)
        return True

    # --- tracers -------------------------------------------------------------------------

    @property
    def tracers(self) -> tuple[MemoryTracer, ...]:
        """The attached tracers, in attach order."""
        return self._tracers

    def add_tracer(self, tracer: MemoryTracer) -> None:
        """Attach ``tracer`` (see the module docstring): from now on it sees every physical
        access. The MMU's accessors switch to their reporting variants (fast hits included);
        ``data_page`` / ``code_page`` answer None until the last tracer is removed."""
        if not callable(getattr(tracer, "on_access", None)):
            raise ConfigError("tracer", "must have an on_access(kind, phys, size, user) method")
        if tracer in self._tracers:
            raise ConfigError("tracer", "is already attached")
        kinds = getattr(tracer, "access_kinds", None)
        if kinds is not None and not (
            isinstance(kinds, (set, frozenset, tuple, list))
            and all(isinstance(k, Access) for k in kinds)
        ):
            raise ConfigError("tracer", "access_kinds must be a collection of Access kinds")
        self._tracers = (*self._tracers, tracer)
        self._route()
        if type(self) is MMU:
            self.__class__ = _TracingMMU
        elif type(self) is not _TracingMMU:
            # A subclass of the MMU has no reporting variant: its fast path is off instead.
            self._fast_enabled = False
            self.drop_fast_path()
        self._select_fast()

    def remove_tracer(self, tracer: MemoryTracer) -> None:
        """Detach ``tracer``; the accessors that report nothing come back when the last one
        goes."""
        if tracer not in self._tracers:
            raise ConfigError("tracer", "is not attached")
        self._tracers = tuple(t for t in self._tracers if t is not tracer)
        self._route()
        if not self._tracers:
            traced = type(self) is _TracingMMU  # a plain test: mypy would narrow self
            if traced:
                self.__class__ = MMU
            self._fast_enabled = self.config.fast_path
            self._select_fast()

    def invalidate_caches(self, write_back: bool) -> None:
        """INVD (``write_back=False``) or WBINVD: tell every attached tracer that has an
        ``invalidate_caches(write_back)`` method (a board's memory hierarchy) to empty its
        caches. Without one (the ideal board) the instruction has no effect beyond its cycles."""
        for tracer in self._tracers:
            invalidate = getattr(tracer, "invalidate_caches", None)
            if invalidate is not None:
                invalidate(write_back)

    def _route(self) -> None:
        """Work out who gets each kind from the tracers' ``access_kinds`` (MemoryTracer)."""
        wants = [frozenset(getattr(t, "access_kinds", Access)) for t in self._tracers]
        self._routes = tuple(
            tuple(t.on_access for t, w in zip(self._tracers, wants, strict=True) if kind in w)
            for kind in sorted(Access)
        )
        self.traces_fetch = bool(self._routes[Access.FETCH])
        self.tracing = bool(self._tracers)
        only = self._tracers[0] if len(self._tracers) == 1 else None
        flt = getattr(only, "fast_filter", None)
        # Only when it is sent every kind the filter stands for (and no fetch windows).
        filtered = bool(wants) and wants[0] >= _FILTERED and not self.traces_fetch
        self.hot_filter = flt if filtered and isinstance(flt, AccessFilter) else None
        # One tracer wanting every kind that is emitted unguarded: called directly.
        direct = len(wants) == 1 and wants[0] >= _ALL_BUT_FETCH
        self._emit = self._tracers[0].on_access if direct else self._trace
        on_insn = getattr(self._tracers[0], "on_insn", None) if direct else None
        self.emit_insn = on_insn if callable(on_insn) else partial(self._emit, Access.INSN)
        on_read = getattr(self._tracers[0], "on_read", None) if direct else None
        self.emit_read = on_read if callable(on_read) else partial(self._emit, Access.READ)
        on_write = getattr(self._tracers[0], "on_write", None) if direct else None
        self.emit_write = on_write if callable(on_write) else partial(self._emit, Access.WRITE)

    def _trace(self, kind: Access, phys: int, size: int, user: bool) -> None:
        for on_access in self._routes[kind]:
            on_access(kind, phys, size, user)

    def drop_fast_path(self) -> None:
        """Empty the host fast path (it refills from the modelled TLBs as pages are touched).
        Changes no simulated state."""
        self._clear_fast()
        self._identity.clear()
        self._select_fast()

    # --- checkpoint state ----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The MMU's simulated state as JSON-ready data: CR0/CR3/CR4 as last set, the
        counters, and each TLB's :meth:`~lavsim.mmu.tlb.TLB.get_state` by name."""
        state: dict[str, Any] = {"cr0": self.cr0, "cr3": self.cr3, "cr4": self.cr4}
        state.update(MMU_COUNTERS.get_state(self))
        state["tlbs"] = {t.name: t.get_state() for t in self._tlbs}
        # Present only once a page had PCD/PWT (older snapshots and most runs have neither).
        for name in ("page_cache", "large_page_cache"):
            table = getattr(self, name)
            if table:
                state[name] = [[k, v] for k, v in sorted(table.items())]
        return state

    def check_state(self, state: Mapping[str, Any]) -> list[int]:
        """Validate a :meth:`get_state` mapping for this MMU's TLB geometry: ``ValueError``
        (or ``KeyError``/``TypeError``) saying what is wrong. Returns CR0, CR3, CR4."""
        controls = []
        for name in ("cr0", "cr3", "cr4"):
            value = state[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MASK32:
                raise ValueError(f"{name} = {value!r} is not a 32-bit int")
            controls.append(value)
        if controls[0] & _PG_BIT and not controls[0] & 1:
            raise ValueError(f"cr0 = {controls[0]:#x} has PG without PE")
        MMU_COUNTERS.check_state(state)
        tlbs = state["tlbs"]
        mine = {t.name: t for t in self._tlbs}
        if not isinstance(tlbs, dict) or set(tlbs) != set(mine):
            raise ValueError(f"TLBs {sorted(tlbs)} != {sorted(mine)}")
        for name, tlb in mine.items():
            tlb.check_state(tlbs[name])
        for name in ("page_cache", "large_page_cache"):
            items = state.get(name, [])
            if not isinstance(items, list) or any(
                not isinstance(e, list) or len(e) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) for v in e)
                or not 0 <= e[0] < 1 << 20 or e[1] & ~0x18 or not e[1]
                for e in items
            ):
                raise ValueError(f"{name} must be a list of [frame, PCD|PWT bits] pairs")
        return controls

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Put back a state from :meth:`get_state`, taken on an MMU of the same TLB geometry.
        Everything is checked first (:meth:`check_state`; nothing changed if refused); the
        controls are restored without the flush a change would cause, then the TLBs, and the
        fast path is emptied."""
        cr0, cr3, cr4 = self.check_state(state)
        tlbs = state["tlbs"]
        mine = {t.name: t for t in self._tlbs}
        self.cr0, self.cr4 = cr0, cr4
        self.set_controls(cr0, cr4)  # nothing changed: derives the mode bits, no flush
        self.cr3 = cr3
        MMU_COUNTERS.set_state(self, state)
        for name, tlb in mine.items():
            tlb.set_state(tlbs[name])
        for name in ("page_cache", "large_page_cache"):
            table = getattr(self, name)
            table.clear()  # in place: a hierarchy holds these dicts
            table.update((k, v) for k, v in state.get(name, []))
        self.drop_fast_path()


class _TracingMMU(MMU):
    """The MMU while tracers are attached (``add_tracer`` switches the instance's class, so
    the MMU without tracers pays nothing): the scalar accessors' fast hits report to the
    tracers exactly what the modelled path reports (kind, physical address, size, ``user``),
    before the access; everything else (page-crossing and unaligned-at-the-edge accesses,
    misses) takes the modelled path, which reports as before."""

    __slots__ = ()

    def read8(self, linear: int, user: bool) -> int:
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (1 << user):
            e.owner.hits += 1
            off = linear & 0xFFF
            self.emit_read(e.base | off, 1, user)
            return e.frame[off]
        return self._read_slow(linear, 1, user, False)

    def read16(self, linear: int, user: bool) -> int:
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (1 << user):
            off = linear & 0xFFF
            if off != 0xFFF:
                e.owner.hits += 1
                self.emit_read(e.base | off, 2, user)
                if not off & 1:
                    return e.words[off >> 1]
                return int(_unpack16(e.frame, off)[0])
        return self._read_slow(linear, 2, user, False)

    def read32(self, linear: int, user: bool) -> int:
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (1 << user):
            off = linear & 0xFFF
            if off <= 0xFFC:
                e.owner.hits += 1
                self.emit_read(e.base | off, 4, user)
                if not off & 3:
                    return e.dwords[off >> 2]
                return int(_unpack32(e.frame, off)[0])
        return self._read_slow(linear, 4, user, False)

    def fetch8(self, linear: int, user: bool) -> int:
        e = self._ifast.get(linear >> 12)
        if e is not None and e.mask & (1 << user):
            e.owner.hits += 1
            off = linear & 0xFFF
            if self.traces_fetch:
                self._emit(Access.FETCH, e.base | off, 1, user)
            return e.frame[off]
        return self._read_slow(linear, 1, user, True)

    def fetch16(self, linear: int, user: bool) -> int:
        e = self._ifast.get(linear >> 12)
        if e is not None and e.mask & (1 << user) and (linear & 0xFFF) != 0xFFF:
            e.owner.hits += 1
            off = linear & 0xFFF
            if self.traces_fetch:
                self._emit(Access.FETCH, e.base | off, 2, user)
            return int(_unpack16(e.frame, off)[0])
        return self._read_slow(linear, 2, user, True)

    def fetch32(self, linear: int, user: bool) -> int:
        e = self._ifast.get(linear >> 12)
        if e is not None and e.mask & (1 << user) and (linear & 0xFFF) <= 0xFFC:
            e.owner.hits += 1
            off = linear & 0xFFF
            if self.traces_fetch:
                self._emit(Access.FETCH, e.base | off, 4, user)
            return int(_unpack32(e.frame, off)[0])
        return self._read_slow(linear, 4, user, True)

    def write8(self, linear: int, value: int, user: bool) -> None:
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (4 << user):
            e.owner.hits += 1
            off = linear & 0xFFF
            self.emit_write(e.base | off, 1, user)
            e.frame[off] = value & 0xFF
            return
        self._write_slow(linear, 1, value, user)

    def write16(self, linear: int, value: int, user: bool) -> None:
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (4 << user):
            off = linear & 0xFFF
            if not off & 1:
                e.owner.hits += 1
                self.emit_write(e.base | off, 2, user)
                e.words[off >> 1] = value & 0xFFFF
                return
        self._write_slow(linear, 2, value, user)

    def write32(self, linear: int, value: int, user: bool) -> None:
        e = self._dfast.get(linear >> 12)
        if e is not None and e.mask & (4 << user):
            off = linear & 0xFFF
            if not off & 3:
                e.owner.hits += 1
                self.emit_write(e.base | off, 4, user)
                e.dwords[off >> 2] = value & _MASK32
                return
        self._write_slow(linear, 4, value, user)


class MissCallback(Protocol):
    """``on_tlb_miss`` as a bound method."""

    def __call__(self, fetch: bool, linear: int, walk_reads: int, ad_writes: int, /) -> None: ...


class DirtyCallback(Protocol):
    """``on_dirty_walk`` as a bound method."""

    def __call__(self, linear: int, walk_reads: int, ad_writes: int, /) -> None: ...
