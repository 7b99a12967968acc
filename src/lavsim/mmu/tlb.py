"""The modelled TLB: set-associative, true LRU per set, statistics.

This is architecture, not a simulator-speed cache: its size, associativity and misses cost
simulated cycles, and it caches what hardware caches. An entry holds what a page walk found at
fill time (the frame, the *combined* U/S and R/W of both paging levels, the Dirty flag and the
Global flag); a page-table edit made afterwards is not seen until the entry is invalidated
(INVLPG, a CR3 load, a flush) or evicted, exactly as on real hardware.

Replacement is true LRU within a set (real 486 and Pentium TLBs use pseudo-LRU; true LRU is the
documented simplification, see docs/design.md). A set is a ``dict`` in LRU order: first key the
least recently used, last key the most recently used (MRU). A hit on the MRU entry changes no
state; a hit on another entry moves it to the end.

One :class:`TLB` caches pages of one size: 4 KiB (``page_shift=12``, keys are virtual page
numbers) or 4 MiB (``page_shift=22``, the Pentium's separate data TLB for large pages). A 4 KiB
structure may also hold 4 KiB *pieces* of a 4 MiB page (``large=True``), as the Pentium's code
TLB does; INVLPG of any address in that 4 MiB page removes every piece.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from lavsim.errors import ConfigError
from lavsim.stats import CounterGroup

#: ``on_demote(key)``: the entry of ``key`` is still held but is no longer the MRU entry of its
#: set. The MMU uses it to keep its host-side fast path exact (see lavsim.mmu.mmu).
DemoteHook = Callable[[int], None]
#: ``on_drop(key)``: the entry of ``key`` is no longer held (replaced, evicted or invalidated);
#: ``on_drop(None)``: any entry may have gone (a flush, a restored state).
DropHook = Callable[[int | None], None]


@attrs.frozen(slots=True)
class TLBConfig:
    """Geometry of one TLB: ``entries`` in total, ``ways`` per set (``entries // ways`` sets)."""

    entries: int
    ways: int

    def __attrs_post_init__(self) -> None:
        for name in ("entries", "ways"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(name, f"must be an int, not {type(value).__name__}")
        if self.ways < 1:
            raise ConfigError("ways", f"must be at least 1, got {self.ways}")
        if self.entries < 1 or self.entries % self.ways:
            raise ConfigError(
                "entries", f"must be a positive multiple of ways ({self.ways}), got {self.entries}"
            )

    @property
    def sets(self) -> int:
        """Number of sets."""
        return self.entries // self.ways


@attrs.frozen(slots=True)
class TLBEntry:
    """One cached translation.

    ``base``: physical base of the cached page (4 KiB aligned; 4 MiB aligned in a large-page
    TLB). ``us``/``rw``: combined permissions of the directory and table entries at fill time.
    ``d``: the Dirty flag as the walk left it. ``g``: the Global flag of the mapping entry.
    ``large``: the translation came from a 4 MiB page.
    """

    base: int
    us: bool
    rw: bool
    d: bool
    g: bool
    large: bool = False


#: The counters of a :class:`TLB`, declared once (``TLBStats`` has one field per counter).
TLB_COUNTERS = CounterGroup(
    ("hits", "lookups that found the page"),
    ("misses", "lookups that did not (each one a page walk)"),
    ("flushes", "flush events (CR3 loads, paging-control changes)"),
    ("evictions", "entries replaced to make room (LRU victims)"),
    ("invlpgs", "INVLPG executions"),
)


@attrs.frozen(slots=True)
class TLBStats:
    """A snapshot of one TLB's counters (see :data:`TLB_COUNTERS`)."""

    hits: int = 0
    misses: int = 0
    flushes: int = 0
    evictions: int = 0
    invlpgs: int = 0


def _int(value: object, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{value!r} is not an int in 0..{high}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not a bool")
    return value


class TLB:
    """A set-associative TLB with true LRU replacement per set.

    ``lookup`` counts a hit or a miss; ``probe`` does the same search (and the same LRU
    update) without counting, for a caller that searches several TLBs in parallel and counts
    itself (the MMU). Counters are public attributes so that the MMU can credit hits and misses.
    """

    __slots__ = (
        "_large_pieces",
        "_nsets",
        "_sets",
        "config",
        "evictions",
        "flushes",
        "hits",
        "invlpgs",
        "misses",
        "name",
        "on_demote",
        "on_drop",
        "page_shift",
    )

    def __init__(self, config: TLBConfig, page_shift: int = 12, name: str = "tlb") -> None:
        if page_shift not in (12, 22):
            raise ConfigError("page_shift", f"must be 12 (4 KiB) or 22 (4 MiB), got {page_shift}")
        self.config = config
        self.page_shift = page_shift
        self.name = name
        self._nsets = config.sets
        self._sets: list[dict[int, TLBEntry]] = [{} for _ in range(config.sets)]
        self._large_pieces = 0
        self.hits = 0
        self.misses = 0
        self.flushes = 0
        self.evictions = 0
        self.invlpgs = 0
        self.on_demote: DemoteHook | None = None
        self.on_drop: DropHook | None = None

    # --- search and fill -----------------------------------------------------------------

    def probe(self, linear: int) -> TLBEntry | None:
        """The entry for the page holding ``linear`` (made MRU of its set), or ``None``."""
        key = linear >> self.page_shift
        s = self._sets[key % self._nsets]
        entry = s.get(key)
        if entry is not None:
            mru = next(reversed(s))
            if mru != key:
                del s[key]
                s[key] = entry
                if self.on_demote is not None:
                    self.on_demote(mru)
        return entry

    def touch(self, key: int) -> bool:
        """Make the held entry of page number ``key`` the MRU of its set, as a hit on it does
        (no statistics); False, changing nothing, if it is not held."""
        s = self._sets[key % self._nsets]
        entry = s.get(key)
        if entry is None:
            return False
        mru = next(reversed(s))
        if mru != key:
            del s[key]
            s[key] = entry
            if self.on_demote is not None:
                self.on_demote(mru)
        return True

    def lookup(self, linear: int) -> TLBEntry | None:
        """As :meth:`probe`, counting a hit or a miss."""
        entry = self.probe(linear)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def is_mru(self, linear: int) -> bool:
        """Is the page holding ``linear`` cached as the most recently used entry of its set?"""
        key = linear >> self.page_shift
        s = self._sets[key % self._nsets]
        return bool(s) and next(reversed(s)) == key

    def fill(self, linear: int, entry: TLBEntry) -> None:
        """Cache ``entry`` for the page holding ``linear`` as the MRU of its set.

        An existing entry for that page is replaced; otherwise a full set evicts its LRU entry.
        """
        key = linear >> self.page_shift
        s = self._sets[key % self._nsets]
        drop = self.on_drop
        old = s.pop(key, None)
        if old is not None:
            if old.large:
                self._large_pieces -= 1
            if drop is not None:
                drop(key)
        elif len(s) >= self.config.ways:
            victim = next(iter(s))
            if s.pop(victim).large:
                self._large_pieces -= 1
            self.evictions += 1
            if drop is not None:
                drop(victim)
        if s and self.on_demote is not None:
            self.on_demote(next(reversed(s)))
        s[key] = entry
        if entry.large and self.page_shift == 12:
            self._large_pieces += 1

    # --- invalidation --------------------------------------------------------------------

    def _remove(self, key: int) -> bool:
        s = self._sets[key % self._nsets]
        entry = s.pop(key, None)
        if entry is None:
            return False
        if entry.large and self.page_shift == 12:
            self._large_pieces -= 1
        if self.on_drop is not None:
            self.on_drop(key)
        return True

    def invalidate(self, linear: int) -> bool:
        """Drop the entry for the page holding ``linear`` (no statistics); True if one was held.

        Used when a page fault invalidates the faulting page's entry (SDM Vol. 3 §4.10.4.1).
        """
        return self._remove(linear >> self.page_shift)

    def invlpg(self, linear: int) -> None:
        """INVLPG: drop every entry that translates ``linear``.

        That includes 4 KiB pieces of a 4 MiB page covering ``linear``: INVLPG invalidates the
        whole page, whatever size the TLB cached it in (SDM Vol. 3 §4.10.4.1).
        """
        self.invlpgs += 1
        linear &= 0xFFFFFFFF
        self._remove(linear >> self.page_shift)
        if self._large_pieces:
            region = linear >> 22
            for s in self._sets:
                doomed = [k for k, e in s.items() if e.large and k >> 10 == region]
                for k in doomed:
                    self._remove(k)

    def flush(self, keep_global: bool) -> None:
        """Drop every entry, or every non-global entry when ``keep_global`` (CR3 load with PGE)."""
        self.flushes += 1
        for s in self._sets:
            if keep_global:
                doomed = [k for k, e in s.items() if not e.g]
                for k in doomed:
                    del s[k]
            else:
                s.clear()
        self._large_pieces = sum(
            1 for s in self._sets for e in s.values() if e.large and self.page_shift == 12
        )
        if self.on_drop is not None:
            self.on_drop(None)

    # --- inspection ----------------------------------------------------------------------

    def contents(self) -> list[list[tuple[int, TLBEntry]]]:
        """Every set's ``(key, entry)`` pairs, least to most recently used."""
        return [list(s.items()) for s in self._sets]

    def __len__(self) -> int:
        return sum(len(s) for s in self._sets)

    def stats(self) -> TLBStats:
        """A snapshot of the counters."""
        return TLBStats(**TLB_COUNTERS.read(self))

    # --- checkpoint state ----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The TLB's state as JSON-ready data: its counters and every set's entries, least to
        most recently used, as ``[key, base, us, rw, d, g, large]``."""
        state: dict[str, Any] = TLB_COUNTERS.get_state(self)
        state["sets"] = [
            [[key, e.base, e.us, e.rw, e.d, e.g, e.large] for key, e in s.items()]
            for s in self._sets
        ]
        return state

    def check_state(
        self, state: Mapping[str, Any]
    ) -> tuple[list[dict[int, TLBEntry]], dict[str, int]]:
        """Validate ``state`` (as :meth:`get_state` gives) for this TLB's geometry; returns
        the sets and counters, or raises ``ValueError`` saying what is wrong."""
        counters = TLB_COUNTERS.check_state(state)
        sets = state["sets"]
        nsets = self._nsets
        if not isinstance(sets, list) or len(sets) != nsets:
            raise ValueError(f"TLB {self.name} needs {nsets} sets")
        out: list[dict[int, TLBEntry]] = []
        for index, entries in enumerate(sets):
            if not isinstance(entries, list) or len(entries) > self.config.ways:
                raise ValueError(f"TLB {self.name} set {index} holds more than its ways")
            held: dict[int, TLBEntry] = {}
            for item in entries:
                if not isinstance(item, list) or len(item) != 7:
                    raise ValueError(f"TLB {self.name}: malformed entry")
                key, base, us, rw, d, g, large = item
                key = _int(key, 0xFFFFFFFF >> self.page_shift)
                if key % nsets != index or key in held:
                    raise ValueError(f"TLB {self.name}: page {key:#x} in the wrong set")
                flags = [_bool(v) for v in (us, rw, d, g, large)]
                base = _int(base, 0xFFFFFFFF)
                # What a fill stores: a frame aligned to this TLB's page size, and in a TLB
                # of 4 MiB pages only 4 MiB pages.
                if base & ((1 << self.page_shift) - 1) or (self.page_shift == 22 and not flags[4]):
                    raise ValueError(f"TLB {self.name}: page {key:#x} maps to {base:#x}, not a "
                                     f"frame of its page size")
                held[key] = TLBEntry(base, *flags)
            out.append(held)
        return out, counters

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Put back a state from :meth:`get_state` (checked first; ``ValueError`` and no change
        if it does not fit this TLB). Tells ``on_drop`` that everything changed."""
        sets, counters = self.check_state(state)
        for held, saved in zip(self._sets, sets, strict=True):
            held.clear()
            held.update(saved)
        self._large_pieces = sum(
            1 for s in sets for e in s.values() if e.large and self.page_shift == 12
        )
        for name, value in counters.items():
            setattr(self, name, value)
        if self.on_drop is not None:
            self.on_drop(None)

    def __repr__(self) -> str:
        return (
            f"TLB({self.name}, entries={self.config.entries}, ways={self.config.ways}, "
            f"page={'4M' if self.page_shift == 22 else '4K'}, held={len(self)})"
        )
