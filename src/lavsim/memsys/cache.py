"""One set-associative, physically tagged cache: organisation, replacement, write policy.

A :class:`Cache` keeps, per set, the tag of each way (``-1`` = invalid), a dirty bit per way
and the replacement state, and answers :meth:`Cache.read` / :meth:`Cache.write` with what the
bus has to do (nothing, a line fill, a write-back of a dirty victim, a write to memory). It
models no timing: :mod:`lavsim.memsys.hierarchy` turns its answers into cycles.

Replacement (``CacheConfig.replacement``):

* ``"plru"``: the tree pseudo-LRU of the i486 (Embedded Intel486 Hardware Reference Manual
  p. 3-12, figure "On-chip cache replacement strategy"): ``ways - 1`` bits per set; with 4 ways
  they are B0, B1, B2. An access to L0 or L1 sets B0 = 1, to L2 or L3 B0 = 0; an access to L0
  sets B1 = 1, to L1 B1 = 0; to L2 B2 = 1, to L3 B2 = 0. A victim: an invalid line if the set
  has one (the lowest-numbered, which the manual leaves open), else B0 = 0 -> L0 (B1 = 0) or
  L1; B0 = 1 -> L2 (B2 = 0) or L3. For other power-of-two way counts the same tree is used.
* ``"lru"``: true LRU (the P54C's caches; one bit per set with 2 ways): an invalid line
  first, else the least recently used.

Write policy: ``write_back`` (a write hit marks the line dirty; a dirty victim is written
back) or write-through (every write goes to memory; lines are never dirty).
``write_allocate``: a write miss fills the line (neither the i486 nor the P54C does).
Line states are invalid / clean / dirty: enough for one processor. Of MESI, the shared state
and snooping (inquire cycles, HITM#, invalidation by another master) are left out, since
nothing else in the machine caches memory; device DMA writes memory around the caches and
the model does not invalidate lines it overwrites (no device writes cached data in lavsim).

Banks: ``banks`` interleaved banks of ``bank_width`` bytes (the P54C data cache: 8 x 4 bytes,
bank = address bits 2-4); :meth:`CacheConfig.bank` and :meth:`CacheConfig.same_bank` give the
rule the Pentium pairing model uses (two accesses in one clock to the same bank conflict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from lavsim.errors import ConfigError, check_int
from lavsim.stats import CounterGroup

__all__ = ["CACHE_COUNTERS", "Cache", "CacheConfig", "CacheResult"]

_REPLACEMENTS: Final = ("lru", "plru")


def _power_of_two(field: str, value: int) -> None:
    if value & (value - 1):
        raise ConfigError(field, f"must be a power of two, got {value}")


@attrs.frozen
class CacheConfig:
    """The organisation of one cache (every field checked when built; ``ConfigError`` names
    the field). ``size``, ``ways`` and ``line`` in bytes/ways, powers of two."""

    name: str
    size: int
    ways: int
    line: int
    replacement: str = "lru"
    write_back: bool = False
    write_allocate: bool = False
    banks: int = 1
    bank_width: int = 4

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("name", "must be a non-empty string")
        check_int("size", self.size, 16, 1 << 30)
        check_int("ways", self.ways, 1, 64)
        check_int("line", self.line, 4, 4096)
        check_int("banks", self.banks, 1, 64)
        check_int("bank_width", self.bank_width, 1, 64)
        for field in ("size", "ways", "line", "banks", "bank_width"):
            _power_of_two(field, getattr(self, field))
        if self.size < self.ways * self.line:
            raise ConfigError("size", f"must hold at least one set ({self.ways * self.line})")
        if self.replacement not in _REPLACEMENTS:
            raise ConfigError("replacement", f"must be one of {_REPLACEMENTS}, got "
                              f"{self.replacement!r}")
        for field in ("write_back", "write_allocate"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigError(field, "must be a bool")

    @property
    def sets(self) -> int:
        """Number of sets."""
        return self.size // (self.ways * self.line)

    def bank(self, addr: int) -> int:
        """The bank holding byte ``addr`` (P54C: address bits 2-4)."""
        return (addr // self.bank_width) % self.banks

    def same_bank(self, a: int, b: int) -> bool:
        """Do two accesses at ``a`` and ``b`` use the same bank (a conflict if made together)?
        Two accesses to the same bank-width word are not counted as a conflict here."""
        return self.bank(a) == self.bank(b) and a // self.bank_width != b // self.bank_width


@attrs.frozen
class CacheResult:
    """What one access needed: ``hit``; ``filled`` (a line was allocated); ``victim`` (the
    line address of a dirty line written back, or -1); ``through`` (the write goes on to
    memory: write-through, or a write miss that does not allocate)."""

    hit: bool
    filled: bool = False
    victim: int = -1
    through: bool = False


_HIT = CacheResult(True)
_HIT_THROUGH = CacheResult(True, through=True)
_MISS_THROUGH = CacheResult(False, through=True)
_FILL = CacheResult(False, filled=True)

#: The counters of every :class:`Cache` (per kind of access: reads and writes).
CACHE_COUNTERS = CounterGroup(
    ("read_hits", "reads that hit"),
    ("read_misses", "reads that missed"),
    ("write_hits", "writes that hit"),
    ("write_misses", "writes that missed"),
    ("fills", "lines allocated"),
    ("writebacks", "dirty lines written back (evicted or flushed)"),
    ("invalidations", "whole-cache invalidations (INVD/WBINVD)"),
)


class Cache:
    """A cache of :class:`CacheConfig` organisation (see the module docstring).

    Addresses are physical byte addresses; only the line an access's first byte falls in is
    looked up (callers split accesses that cross lines).
    """

    __slots__ = (
        "_hot",
        "_line_shift",
        "_lru",
        "_set_hot",
        "_set_mask",
        "_set_shift",
        "_width",
        "_write_back",
        "config",
        "dirty",
        "fills",
        "invalidations",
        "read_hits",
        "read_misses",
        "repl",
        "tags",
        "write_hits",
        "write_misses",
        "writebacks",
    )

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self._line_shift = config.line.bit_length() - 1
        self._set_mask = config.sets - 1
        self._set_shift = self._line_shift + config.sets.bit_length() - 1
        self._lru = config.replacement == "lru"
        self._write_back = config.write_back
        #: The memo of repeated hits (host-side, not state): line number (``addr >>
        #: line_shift``) -> way of each set's most recently touched line, which is present;
        #: ``_set_hot[index]`` is that line number, or -1 when unknown. A hit on such a line
        #: changes no replacement state (re-touching the last touched way is a no-op for LRU
        #: and for the tree), so it is served from here with the same counters and result.
        self._hot: dict[int, int] = {}
        self._set_hot: list[int] = []
        #: Entries of ``repl`` per set.
        self._width = config.ways if self._lru else config.ways - 1
        # Flat, set after set (set i at [i * ways, (i + 1) * ways)), not a list per set:
        # thousands of sets per cache and dozens of machines per job would be millions of
        # lists to build, empty and have the garbage collector walk. See :meth:`lines`.
        #: The tag of each way, -1 if invalid.
        self.tags: list[int] = []
        #: The dirty bit of each way.
        self.dirty: list[bool] = []
        #: Per set (``_width`` entries): ``lru`` -- ways from least to most recently used;
        #: ``plru`` -- the tree bits, bit i = node i of the tree (node 0 = B0, 1 = B1, 2 = B2
        #: for 4 ways).
        self.repl: list[int] = []
        self.clear_lines()
        # The counters of CACHE_COUNTERS.
        self.read_hits = self.read_misses = self.write_hits = self.write_misses = 0
        self.fills = self.writebacks = self.invalidations = 0

    def clear_lines(self) -> None:
        """Every line invalid and clean, replacement state as at reset; counters kept
        (host-side: nothing is charged or counted)."""
        sets, ways = self.config.sets, self.config.ways
        self.tags = [-1] * (sets * ways)
        self.dirty = [False] * (sets * ways)
        self.repl = self._initial_repl() * sets
        self._forget()

    def _forget(self) -> None:
        """Empty the memo (after anything that changes lines other than through ``_touch``)."""
        self._hot.clear()
        self._set_hot = [-1] * self.config.sets

    def _initial_repl(self) -> list[int]:
        if self._lru:
            return list(range(self.config.ways))
        return [0] * (self.config.ways - 1)

    def lines(self, index: int) -> tuple[list[int], list[bool], list[int]]:
        """Set ``index`` as copies: the tag of each way, its dirty bits, its replacement
        state (see the attributes)."""
        ways, width = self.config.ways, self._width
        b = index * ways
        r = index * width
        return self.tags[b:b + ways], self.dirty[b:b + ways], self.repl[r:r + width]

    # --- addresses ---------------------------------------------------------------------

    def line_of(self, addr: int) -> int:
        """The line address (first byte of the line) of ``addr``."""
        return addr >> self._line_shift << self._line_shift

    def _locate(self, addr: int) -> tuple[int, int]:
        return (addr >> self._line_shift) & self._set_mask, addr >> self._set_shift

    def _line_addr(self, index: int, tag: int) -> int:
        return (tag << self._set_shift) | (index << self._line_shift)

    # --- replacement -------------------------------------------------------------------

    def _find(self, index: int, tag: int) -> int:
        """The way of set ``index`` holding ``tag``, or -1."""
        ways = self.config.ways
        b = index * ways
        if ways == 1:
            return 0 if self.tags[b] == tag else -1
        row = self.tags[b:b + ways]
        return row.index(tag) if tag in row else -1

    def _touch(self, index: int, way: int) -> None:
        ways = self.config.ways
        if self._lru:
            if ways > 1:
                b = index * ways
                order = self.repl[b:b + ways]
                order.remove(way)
                order.append(way)
                self.repl[b:b + ways] = order
        else:
            r = self.repl
            base = index * self._width
            # Walk the tree from the root: at each node, record which half was used (1 = the
            # lower half, as B0 = 1 for L0/L1 and B1 = 1 for L0).
            node, lo, width = 0, 0, ways
            while width > 1:
                half = width // 2
                lower = way < lo + half
                r[base + node] = 1 if lower else 0
                node = 2 * node + (1 if lower else 2)
                if not lower:
                    lo += half
                width = half
        # This line is now the set's last touched one: the memo's entry for the set.
        line = (self.tags[index * ways + way] << (self._set_shift - self._line_shift)) | index
        old = self._set_hot[index]
        if old != line:
            if old >= 0:
                del self._hot[old]
            self._hot[line] = way
            self._set_hot[index] = line

    def _victim(self, index: int) -> int:
        ways = self.config.ways
        b = index * ways
        tags = self.tags
        for way in range(ways):
            if tags[b + way] < 0:
                return way
        r = self.repl
        if self._lru:
            return r[b]
        base = index * self._width
        # A bit of 0 means the lower half was not the last used: replace there.
        node, lo, width = 0, 0, ways
        while width > 1:
            half = width // 2
            if r[base + node]:
                lo += half
                node = 2 * node + 2
            else:
                node = 2 * node + 1
            width = half
        return lo

    # --- accesses ----------------------------------------------------------------------

    def probe(self, addr: int) -> bool:
        """Is the line of ``addr`` present? (Changes nothing.)"""
        index, tag = self._locate(addr)
        return self._find(index, tag) >= 0

    def is_dirty(self, addr: int) -> bool:
        """Is the line of ``addr`` present and dirty? (Changes nothing.)"""
        index, tag = self._locate(addr)
        way = self._find(index, tag)
        return way >= 0 and self.dirty[index * self.config.ways + way]

    def mark_clean(self, addr: int) -> None:
        """The line of ``addr``, if present, is clean now (its data went to memory)."""
        index, tag = self._locate(addr)
        way = self._find(index, tag)
        if way >= 0:
            self.dirty[index * self.config.ways + way] = False

    def read(self, addr: int, allocate: bool = True) -> CacheResult:
        """A read of the line of ``addr``: a hit updates the replacement state; a miss fills
        the line (unless ``allocate`` is false: CR0.CD, a locked or uncacheable read)."""
        if (addr >> self._line_shift) in self._hot:
            self.read_hits += 1  # the set's last touched line: touching it changes nothing
            return _HIT
        index, tag = self._locate(addr)
        way = self._find(index, tag)
        if way >= 0:
            self.read_hits += 1
            self._touch(index, way)
            return _HIT
        self.read_misses += 1
        if not allocate:
            return _MISS_THROUGH
        return self._fill(index, tag)

    def write(self, addr: int, allocate: bool = True, through: bool = False) -> CacheResult:
        """A write to the line of ``addr`` (see the write policy in the module docstring).
        ``through``: write through even in a write-back cache (a page with PWT or PCD)."""
        line = addr >> self._line_shift
        hot = self._hot.get(line)
        if hot is not None:  # the set's last touched line: touching it changes nothing
            self.write_hits += 1
            if self._write_back and not through:
                self.dirty[(line & self._set_mask) * self.config.ways + hot] = True
                return _HIT
            return _HIT_THROUGH
        index, tag = self._locate(addr)
        way = self._find(index, tag)
        config = self.config
        if way >= 0:
            self.write_hits += 1
            self._touch(index, way)
            if config.write_back and not through:
                self.dirty[index * config.ways + way] = True
                return _HIT
            return _HIT_THROUGH
        self.write_misses += 1
        if not (config.write_allocate and allocate):
            return _MISS_THROUGH
        result = self._fill(index, tag)
        if config.write_back:
            self.dirty[index * config.ways + self._find(index, tag)] = True
            return result
        return CacheResult(False, True, result.victim, through=True)

    def write_repeated(self, addr: int, count: int) -> tuple[bool, bool]:
        """``count`` (>= 1) :meth:`write` calls at ``addr`` one after another (a line's words
        written one by one); returns whether the first hit and whether the later ones hit.
        Exactly what the calls do: after the first the line is either present and the set's
        last touched one (each later write is a memo hit, changing only the counters and an
        already set dirty bit) or absent and not allocated (each later write is the same miss,
        changing only the counters); so the second call is made and the rest counted."""
        first = self.write(addr).hit
        if count == 1:
            return first, first
        later = self.write(addr).hit
        if later:
            self.write_hits += count - 2
        else:
            self.write_misses += count - 2
        return first, later

    def _fill(self, index: int, tag: int) -> CacheResult:
        way = self._victim(index)
        at = index * self.config.ways + way
        tags = self.tags
        victim = -1
        if tags[at] >= 0 and self.dirty[at]:
            victim = self._line_addr(index, tags[at])
            self.writebacks += 1
        tags[at] = tag
        self.dirty[at] = False
        self.fills += 1
        self._touch(index, way)
        return _FILL if victim < 0 else CacheResult(False, True, victim)

    def invalidate(self, write_back: bool) -> list[int]:
        """Invalidate every line (INVD, ``write_back=False``; WBINVD, ``True``). Returns the
        line addresses of the dirty lines written back (none for INVD: their data is lost
        on hardware; here memory already holds it, see the module docstring of the
        hierarchy)."""
        written: list[int] = []
        if write_back:
            ways, dirty = self.config.ways, self.dirty
            for at, tag in enumerate(self.tags):
                if tag >= 0 and dirty[at]:
                    written.append(self._line_addr(at // ways, tag))
        self.clear_lines()
        self.writebacks += len(written)
        self.invalidations += 1
        return written

    def contents(self) -> list[tuple[int, bool]]:
        """Every valid line as ``(line address, dirty)``, in set then way order."""
        out = []
        ways, dirty = self.config.ways, self.dirty
        for at, tag in enumerate(self.tags):
            if tag >= 0:
                out.append((self._line_addr(at // ways, tag), dirty[at]))
        return out

    # --- state -------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Tags, dirty bits, replacement state and counters as JSON-ready data."""
        return {
            "tags": _rows(self.tags, self.config.ways, self.config.sets),
            "dirty": [[int(d) for d in row]
                      for row in _rows(self.dirty, self.config.ways, self.config.sets)],
            "repl": _rows(self.repl, self._width, self.config.sets),
            "counters": CACHE_COUNTERS.get_state(self),
        }

    def check_state(self, state: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the first thing wrong with ``state`` for this
        organisation (changes nothing)."""
        config = self.config
        sets, ways = config.sets, config.ways
        for key in ("tags", "dirty", "repl", "counters"):
            if key not in state:
                raise ValueError(f"cache {config.name}: {key!r} missing")
        for key in ("tags", "dirty", "repl"):
            rows = state[key]
            if not isinstance(rows, list) or len(rows) != sets:
                raise ValueError(f"cache {config.name}: {key!r} must list {sets} sets")
        width = ways if config.replacement == "lru" else ways - 1
        max_tag = (1 << 32) >> self._set_shift
        for i in range(sets):
            tags, dirty, repl = state["tags"][i], state["dirty"][i], state["repl"][i]
            if (not isinstance(tags, list) or len(tags) != ways
                    or any(isinstance(t, bool) or not isinstance(t, int) or not -1 <= t < max_tag
                           for t in tags)):
                raise ValueError(f"cache {config.name}: set {i} tags are not {ways} tags")
            valid = [t for t in tags if t >= 0]
            if len(set(valid)) != len(valid):
                raise ValueError(f"cache {config.name}: set {i} holds a line twice")
            if not isinstance(dirty, list) or len(dirty) != ways or any(
                    d not in (0, 1) or (d and tags[w] < 0) for w, d in enumerate(dirty)):
                raise ValueError(f"cache {config.name}: set {i} dirty bits are wrong")
            if any(dirty) and not config.write_back:
                raise ValueError(f"cache {config.name}: set {i} is dirty in a "
                                 "write-through cache")
            if not isinstance(repl, list) or len(repl) != width:
                raise ValueError(f"cache {config.name}: set {i} replacement state is wrong")
            if config.replacement == "lru" and sorted(repl) != list(range(ways)):
                raise ValueError(f"cache {config.name}: set {i} LRU order is not a permutation")
            if config.replacement == "plru" and any(b not in (0, 1) for b in repl):
                raise ValueError(f"cache {config.name}: set {i} tree bits are not 0/1")
        CACHE_COUNTERS.check_state(state["counters"])

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Put back a :meth:`get_state` mapping (checked first; nothing changed if refused)."""
        self.check_state(state)
        self.tags = [t for row in state["tags"] for t in row]
        self.dirty = [bool(d) for row in state["dirty"] for d in row]
        self.repl = [r for row in state["repl"] for r in row]
        self._forget()
        CACHE_COUNTERS.set_state(self, state["counters"])


def _rows(flat: list[Any], width: int, sets: int) -> list[list[Any]]:
    """A flat per-set list cut into one list per set."""
    return [flat[i * width:(i + 1) * width] for i in range(sets)]
