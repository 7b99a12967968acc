"""The memory hierarchy: L1 caches, write buffers, an optional L2 and DRAM, as stall cycles.

A :class:`MemoryHierarchy` is a tracer on the MMU's access seam (:mod:`lavsim.mmu.mmu`):
it sees every physical access of the processor, runs it through its caches and charges the
cycles the access waits for the bus to ``clock.tsc`` (the CPU's time stamp counter) at once,
inside the instruction that made the access. So a run charges the same stalls whether the CPU
runs blocks, single instructions or REP items (with a tracer attached the CPU's blocks report
every instruction's bytes, and a REP run is one access of many words).
The timing profile keeps giving every instruction its cost on a cache hit; the hierarchy adds
only what a miss, a full write buffer or a locked cycle costs beyond it. Nothing here changes
an architectural result: memory is always up to date (the data lives in
:class:`~lavsim.memory.PhysicalMemory`; the caches hold tags and states only).

What each access does (costs from :class:`BusTiming`, i.e. from the board):

* ``INSN`` (the exact bytes of each executed instruction): a read of every code-cache line they
  touch. ``FETCH`` (the decoder's look-ahead window) is ignored: it overstates the bytes.
* ``READ`` and ``WALK_READ`` (page-table entries are cacheable, Embedded Intel486 HRM
  p. 3-16/3-17): a read of every data-cache line touched. A miss fills the line with a burst
  (``L1 line / bus width`` beats); the fill waits for buffered writes first unless all of them
  hit the cache, in which case it goes ahead of them (the read-around rule, HRM p. 3-10 and
  SDM Vol. 3 §22.34). A dirty victim (write-back cache) is written back after the fill and
  keeps the bus busy for its burst.
* ``WRITE``: a write of every data-cache line touched. A write that goes to memory
  (write-through, or a miss without allocation) takes a write-buffer entry per bus word; a full
  buffer stalls until its oldest entry is written. Buffered writes drain in order, one at a
  time, each taking the bus for a single-transfer write.
* ``AD_WRITE``, ``LOCKED_READ``, ``LOCKED_WRITE``: locked cycles. The buffers drain first
  (stall until the bus is idle), then the read or write is a single bus transfer the CPU waits
  for; locked reads do not allocate. An ``AD_WRITE`` is the locked read-modify-write of a paging
  entry (SDM Vol. 3 §8.1.2.1): a read and a write. With ``locked_writeback`` (the Pentium,
  SDM §22.34) a dirty line holding the location is written back first; the line stays valid
  and is updated.

Control bits: CR0.CD = 1 stops line fills (misses become single transfers; hits still hit),
CR0.NW = 1 stops write-through of write hits (as documented for the i486, HRM table 3-? "Cache
operating modes"). PCD and PWT of the entry that maps a page (SDM Vol. 3 §11.5.1, "page-level
cache control") come from the MMU's record by physical frame (``MMU.page_cache``, filled at
TLB fills): a read or instruction fetch from a PCD page does not allocate a line (like CR0.CD,
a line that is already present still hits), a write to a PCD page does not allocate and goes
to memory, and a write to a PWT page goes to memory even in the Pentium's write-back cache
(the line, if present, is updated and stays clean). Page-walk reads and A/D updates are
always cacheable here: the PCD/PWT of CR3 and of the PDE, which govern them, are not
modelled. A PCD read's single transfer does not fill the L2 either (it is served from the L2
only on a hit); bus writes reach the L2 as any bus write does (the PCD pin's effect on an
external cache is the board's, and no board source gives it). A CR3
load does nothing to the caches (they are physically tagged). INVD and WBINVD reach
:meth:`MemoryHierarchy.invalidate` through the MMU (``MMU.invalidate_caches``).

Host-side, a write's bus words go to the buffer in one call (its L1 line writes first: the two
sides share no state), the L2 hears a line's words at once (``Cache.write_repeated``) and a full
buffer's steady state (each word waits for the oldest entry) is worked out in closed form, with
the results of the word-by-word path (tests/memsys/test_buffered_words.py).

Write buffer times are absolute TSC values, so HLT idle time drains the buffers and a
snapshot taken at any instruction boundary restores to the same later cycles.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any, Protocol

import attrs

from lavsim.errors import ConfigError, check_int
from lavsim.memsys.cache import Cache, CacheConfig
from lavsim.mmu.mmu import Access, AccessFilter
from lavsim.stats import CounterGroup

__all__ = [
    "HIERARCHY_COUNTERS",
    "BusTiming",
    "Clock",
    "HierarchyConfig",
    "MemoryHierarchy",
]

_CR0_CD = 1 << 30
_CR0_NW = 1 << 29
_PCD = 1 << 4  # page-level cache disable, as in a paging entry (PWT is bit 3)


class Clock(Protocol):
    """What the hierarchy charges: the processor's time stamp counter."""

    tsc: int


class _Controls(Protocol):
    cr0: int


def _burst(field: str, value: object) -> tuple[int, ...]:
    if (not isinstance(value, tuple) or not value
            or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64
                   for v in value)):
        raise ConfigError(field, f"must be a tuple of bus clocks per beat (1..64), got {value!r}")
    return value


@attrs.frozen
class BusTiming:
    """What the bus costs, in bus clocks, and the core/bus clock ``ratio`` that turns them
    into core cycles (the hierarchy keeps bus time exactly and rounds a stall up to whole
    core cycles). ``burst``: clocks per beat of a burst
    (e.g. ``(2, 1, 1, 1)``; beats past the last given repeat it). ``write``: clocks of a
    single-transfer write. ``l2``: the external cache (None = none) served at ``l2_burst`` /
    ``l2_write``; misses in it go to DRAM at ``dram_burst`` / ``dram_write``. ``bus_width``:
    bytes per beat (4 on the i486, 8 on the Pentium)."""

    ratio: Fraction
    bus_width: int
    dram_burst: tuple[int, ...]
    dram_write: int
    l2: CacheConfig | None = None
    l2_burst: tuple[int, ...] = (2, 1, 1, 1)
    l2_write: int = 2

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.ratio, Fraction) or not 1 <= self.ratio <= 16:
            raise ConfigError("ratio", f"must be a Fraction in 1..16, got {self.ratio!r}")
        check_int("bus_width", self.bus_width, 1, 64)
        _burst("dram_burst", self.dram_burst)
        _burst("l2_burst", self.l2_burst)
        check_int("dram_write", self.dram_write, 1, 64)
        check_int("l2_write", self.l2_write, 1, 64)
        if self.l2 is not None and not isinstance(self.l2, CacheConfig):
            raise ConfigError("l2", "must be a CacheConfig or None")

    def core(self, bus_clocks: int) -> int:
        """``bus_clocks`` in core cycles (rounded up: the core waits for whole bus clocks)."""
        n = self.ratio * bus_clocks
        return -((-n.numerator) // n.denominator)

    def burst_clocks(self, burst: tuple[int, ...], nbytes: int) -> int:
        """Bus clocks of a burst moving ``nbytes``."""
        beats = max(1, -(-nbytes // self.bus_width))
        return sum(burst[min(i, len(burst) - 1)] for i in range(beats))


@attrs.frozen
class HierarchyConfig:
    """The processor's side: ``unified`` L1 (the i486) or ``code`` + ``data`` L1 (the P54C),
    ``write_buffers`` entries, and ``locked_writeback`` (a locked cycle to a dirty line writes
    it back first, the Pentium's rule)."""

    unified: CacheConfig | None = None
    code: CacheConfig | None = None
    data: CacheConfig | None = None
    write_buffers: int = 4
    locked_writeback: bool = False

    def __attrs_post_init__(self) -> None:
        check_int("write_buffers", self.write_buffers, 1, 64)
        if self.unified is not None:
            if self.code is not None or self.data is not None:
                raise ConfigError("unified", "a unified L1 excludes code and data caches")
        elif self.code is None or self.data is None:
            raise ConfigError("unified", "give a unified L1, or both code and data caches")
        for field in ("unified", "code", "data"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, CacheConfig):
                raise ConfigError(field, "must be a CacheConfig or None")

    @property
    def caches(self) -> tuple[CacheConfig, ...]:
        """The L1 caches, code first."""
        if self.unified is not None:
            return (self.unified,)
        assert self.code is not None and self.data is not None
        return (self.code, self.data)


#: Stall counters of a :class:`MemoryHierarchy` (cycles unless named otherwise).
HIERARCHY_COUNTERS = CounterGroup(
    ("stall_cycles", "cycles stalled on memory, in total"),
    ("fetch_stall", "cycles stalled on code-cache misses"),
    ("read_stall", "cycles stalled on data-cache read misses"),
    ("walk_stall", "cycles stalled on page-walk entry reads"),
    ("write_stall", "cycles stalled on a full write buffer"),
    ("locked_stall", "cycles of locked cycles (buffer drain and the transfers)"),
    ("buffered_writes", "writes put in the write buffer"),
    ("buffer_full", "writes that found the write buffer full"),
    ("read_arounds", "line fills that went ahead of buffered writes"),
    ("l2_hits", "L1 fills and bus writes served by the L2"),
    ("l2_misses", "L1 fills and bus writes that went to DRAM"),
)


def _spaced(buffer: deque[tuple[int, bool]], d: int) -> bool:
    """Are the buffered writes' completion times at least ``d`` ticks (a core cycle) apart?"""
    previous = -d
    for t, _ in buffer:
        if t - previous < d:
            return False
        previous = t
    return True


class MemoryHierarchy:
    """The caches and write buffers of one machine, charging ``clock`` (see the module
    docstring). ``controls`` supplies CR0 (the MMU); attach with ``mmu.add_tracer(h)``."""

    def __init__(
        self, config: HierarchyConfig, timing: BusTiming, clock: Clock, controls: _Controls
    ) -> None:
        self.config = config
        self.timing = timing
        self.clock = clock
        self.controls = controls
        if config.unified is not None:
            self.code = self.data = Cache(config.unified)
            self.l1: tuple[Cache, ...] = (self.code,)
        else:
            assert config.code is not None and config.data is not None
            self.code = Cache(config.code)
            self.data = Cache(config.data)
            self.l1 = (self.code, self.data)
        self.l2 = Cache(timing.l2) if timing.l2 is not None else None
        # The MMU's PCD/PWT records by frame (the same dicts, mutated in place), if any.
        self._page_cache: dict[int, int] = getattr(controls, "page_cache", {})
        self._large_page_cache: dict[int, int] = getattr(controls, "large_page_cache", {})
        #: Completion times (bus ticks, see ``_d``) of buffered writes, oldest first, and
        #: whether each hit L1.
        self.buffer: deque[tuple[int, bool]] = deque()
        #: Bus ticks (TSC x ``_d``) at which the bus is idle again.
        self.bus_free = 0
        # The counters of HIERARCHY_COUNTERS.
        self.stall_cycles = self.fetch_stall = self.read_stall = self.walk_stall = 0
        self.write_stall = self.locked_stall = 0
        self.buffered_writes = self.buffer_full = self.read_arounds = 0
        self.l2_hits = self.l2_misses = 0
        dispatch = {
            Access.INSN: self.on_insn,
            Access.READ: self._read,
            Access.WALK_READ: self._walk_read,
            Access.WRITE: self._write,
            Access.AD_WRITE: self._ad_write,
            Access.LOCKED_READ: self._locked_read,
            Access.LOCKED_WRITE: self._locked_write,
        }
        # Indexed by the kind's value (FETCH, the decoder's look-ahead, is ignored: None).
        self._handlers: list[Callable[[int, int], None] | None] = [
            dispatch.get(kind) for kind in sorted(Access)
        ]
        #: The kinds it consumes (the MMU's tracer protocol): no fetch windows are reported.
        self.access_kinds = frozenset(kind for kind in Access if kind in dispatch)
        t = timing
        line_d = self.data.config.line
        line_c = self.code.config.line
        # Bus time is kept in ticks of 1/D core cycle (ratio = N/D core cycles per bus clock),
        # so a bus clock is exactly N ticks and back-to-back transfers do not round up one by
        # one; the core waits for whole cycles (a stall is rounded up once).
        self._d = t.ratio.denominator
        n = t.ratio.numerator
        self._dram_fill = {line_d: n * t.burst_clocks(t.dram_burst, line_d),
                           line_c: n * t.burst_clocks(t.dram_burst, line_c)}
        self._l2_fill = {line_d: n * t.burst_clocks(t.l2_burst, line_d),
                         line_c: n * t.burst_clocks(t.l2_burst, line_c)}
        self._dram_single = n * t.dram_burst[0]
        self._l2_single = n * t.l2_burst[0]
        self._dram_write = n * t.dram_write
        self._l2_write = n * t.l2_write
        self._word = min(t.bus_width, 4)  # bytes per bus write of a buffered write
        self._buffers = config.write_buffers
        l2_line = timing.l2.line if timing.l2 is not None else line_d
        self._l2_victim = n * t.burst_clocks(t.dram_burst, l2_line)

    # --- the tracer seam -------------------------------------------------------------

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None:
        """One physical access (the MMU's tracer seam): charge its stall cycles."""
        handler = self._handlers[kind]
        if handler is not None:
            handler(phys, size)

    def _now(self) -> int:
        """The TSC in bus-time ticks."""
        return self.clock.tsc * self._d

    def _stall_ticks(self, ticks: int) -> int:
        """Stall for ``ticks`` of bus time, rounded up to whole core cycles."""
        return self._stall(-((-ticks) // self._d))

    def _stall(self, cycles: int) -> int:
        if cycles > 0:
            self.clock.tsc += cycles
            self.stall_cycles += cycles
        return cycles

    def _lines(self, cache: Cache, phys: int, size: int) -> range:
        line = cache.config.line
        first = phys - phys % line
        return range(first, phys + max(size, 1), line)

    # --- reads -------------------------------------------------------------------------

    def _page_bits(self, phys: int) -> int:
        """PCD | PWT of the page holding ``phys`` (0 while no page has them: two dict truth
        tests)."""
        if self._page_cache:
            bits = self._page_cache.get(phys >> 12)
            if bits is not None:
                return bits
        if self._large_page_cache:
            return self._large_page_cache.get(phys >> 22, 0)
        return 0

    def on_insn(self, phys: int, size: int, user: bool = False) -> None:
        """``on_access(Access.INSN, phys, size, user)`` (also the MMU's shortcut for
        instruction bytes, see :class:`~lavsim.mmu.mmu.MemoryTracer`)."""
        code = self.code
        shift = code._line_shift
        line = phys >> shift
        if line in code._hot and (phys + size - 1) >> shift == line:
            # One line, the last touched of its set: a hit that changes no state and costs
            # nothing (what the general path below does for it, without the work).
            code.read_hits += 1
            return
        uncached = self._page_bits(phys) & _PCD
        for line in self._lines(self.code, phys, size):
            self.fetch_stall += self._read_line(self.code, line, 4, uncached)

    def _read(self, phys: int, size: int, user: bool = False) -> None:
        data = self.data
        shift = data._line_shift
        line = phys >> shift
        if line in data._hot and (phys + size - 1) >> shift == line:
            data.read_hits += 1  # as in on_insn
            return
        uncached = self._page_bits(phys) & _PCD
        for line in self._lines(self.data, phys, size):
            self.read_stall += self._read_line(self.data, line, min(size, 4), uncached)

    def _walk_read(self, phys: int, size: int) -> None:
        data = self.data
        if (phys >> data._line_shift) in data._hot:
            data.read_hits += 1  # as in on_insn
            return
        self.walk_stall += self._read_line(data, phys, 4)

    def _read_line(self, cache: Cache, addr: int, size: int, uncached: int = 0) -> int:
        fill = not (self.controls.cr0 & _CR0_CD or uncached)
        result = cache.read(addr, fill)
        if result.hit:
            return 0
        now = self._now()
        start, around = self._read_start(now)
        if result.filled:
            busy = self._fill_cost(addr, cache.config.line)
        else:
            busy = self._single_read(addr)
        end = start + busy
        if around:
            # The buffered writes wait for the read: each finishes ``busy`` cycles later.
            self.buffer = deque((t + busy, h) for t, h in self.buffer)
            self.bus_free += busy
        if result.victim >= 0:
            # The dirty victim goes out after the fill (the write-back buffer).
            self.bus_free = max(self.bus_free, end) + self._line_write(result.victim,
                                                                      cache.config.line)
        else:
            self.bus_free = max(self.bus_free, end)
        return self._stall_ticks(end - now)

    def _read_start(self, now: int) -> tuple[int, bool]:
        """When a read miss gets the bus, and whether it goes around buffered writes: after
        them, unless all of them hit the cache; then before them."""
        self._retire(now)
        if self.buffer and all(hit for _, hit in self.buffer):
            self.read_arounds += 1
            return now, True
        return max(now, self.bus_free), False

    def _fill_cost(self, addr: int, line: int) -> int:
        l2 = self.l2
        if l2 is None:
            return self._dram_fill[line]
        result = l2.read(addr)
        if result.hit:
            self.l2_hits += 1
            return self._l2_fill[line]
        self.l2_misses += 1
        cost = self._dram_fill[line]
        if result.victim >= 0:
            cost += self._l2_victim  # the L2 writes its dirty victim back before refilling
        return cost

    def _single_read(self, addr: int) -> int:
        l2 = self.l2
        if l2 is not None and l2.probe(addr):
            self.l2_hits += 1
            return self._l2_single
        if l2 is not None:
            self.l2_misses += 1
        return self._dram_single

    # --- writes ------------------------------------------------------------------------

    def _write(self, phys: int, size: int, user: bool = False) -> None:
        data = self.data
        if data._write_back and not (self._page_cache or self._large_page_cache):
            shift = data._line_shift
            line = phys >> shift
            way = data._hot.get(line)
            if way is not None and (phys + size - 1) >> shift == line:
                # A write-back hit on the set's last touched line of a page without PCD/PWT:
                # the line turns dirty, nothing goes to the bus (as the general path below).
                data.write_hits += 1
                data.dirty[(line & data._set_mask) * data.config.ways + way] = True
                return
        nw = self.controls.cr0 & _CR0_NW
        line_size = data.config.line
        end = phys + max(size, 1)
        bits = self._page_bits(phys)
        allocate = not bits & _PCD
        through = bits != 0  # PWT, or PCD (an uncacheable write goes to memory)
        if (end - 1) // line_size == phys // line_size:
            # Inside one line (the usual case): the loop below for a single piece.
            result = data.write(phys, allocate, through)
            if result.through and not (nw and result.hit):
                count = -(-(end - phys) // self._word)
                if count == 1:
                    self.write_stall += self._buffer_word(phys, result.hit)
                else:
                    self.write_stall += self._buffer_write(((phys, result.hit, count),))
            return
        width = self.timing.bus_width
        # The L1 writes of all lines first, then their bus writes: the two touch nothing the
        # other reads (L1 state; the buffer, bus, L2 and clock), so the order is immaterial.
        pieces = []
        for line in self._lines(data, phys, size):
            lo = max(phys, line)
            hi = min(end, line + line_size)
            result = data.write(lo, allocate, through)
            if not result.through or (nw and result.hit):
                continue
            # One bus write per bus word of the piece (a REP run is many words).
            pieces.append((lo, result.hit, max(1, -(-(hi - lo) // min(width, 4)))))
        if pieces:
            self.write_stall += self._buffer_write(pieces)

    #: ``on_access(Access.READ / WRITE, phys, size, user)`` (the MMU's shortcuts for the
    #: scalar accessors' hits, see :class:`~lavsim.mmu.mmu.MemoryTracer`).
    on_read = _read
    on_write = _write

    def _bus_write_cost(self, addr: int) -> int:
        l2 = self.l2
        if l2 is not None:
            if l2.write(addr).hit:
                self.l2_hits += 1
                return self._l2_write
            self.l2_misses += 1
        return self._dram_write

    def _line_write(self, addr: int, line: int) -> int:
        l2 = self.l2
        if l2 is not None:
            if l2.write(addr).hit:
                self.l2_hits += 1
                return self._l2_fill[line]
            self.l2_misses += 1
        return self._dram_fill[line]

    def _retire(self, now: int) -> None:
        buffer = self.buffer
        while buffer and buffer[0][0] <= now:
            buffer.popleft()

    def _buffer_write(self, pieces: Iterable[tuple[int, bool, int]]) -> int:
        """Each piece ``(addr, hit, count)`` is ``count`` bus writes of a word at ``addr`` (one
        line's piece of a write; ``hit``: it hit L1) through the write buffer, one word after
        the other; returns the cycles they stalled (charged)."""
        # (_retire, _bus_write_cost and _stall inline, and the loops over the pieces and the
        # words inside: every write-through write comes here, a REP run with a word per item.)
        d = self._d
        clock = self.clock
        buffer = self.buffer
        buffers = self._buffers
        l2 = self.l2
        dram = self._dram_write
        bus_free = self.bus_free
        stalled = 0
        for addr, hit, count in pieces:
            if l2 is None:
                first = rest = dram
            elif count == 1:
                if l2.write(addr).hit:
                    self.l2_hits += 1
                    first = rest = self._l2_write
                else:
                    self.l2_misses += 1
                    first = rest = dram
            else:
                # The L2 sees the piece's words as ``count`` writes of one line.
                h1, h2 = l2.write_repeated(addr, count)
                first = self._l2_write if h1 else dram
                rest = self._l2_write if h2 else dram
                hits = h1 + h2 * (count - 1)
                self.l2_hits += hits
                self.l2_misses += count - hits
            cost = first
            for k in range(count):
                if (k and count - k > buffers > 1 and len(buffer) == buffers and rest >= d
                        and buffer[0][0] > clock.tsc * d
                        and bus_free >= buffer[-1][0] and _spaced(buffer, d)):
                    stalled += self._steady(count - k, rest, hit, bus_free)
                    bus_free += (count - k) * rest
                    break
                now = clock.tsc * d
                while buffer and buffer[0][0] <= now:
                    buffer.popleft()
                if len(buffer) >= buffers:
                    self.buffer_full += 1
                    stall = -((now - buffer[0][0]) // d)  # whole cycles until it is done
                    now += stall * d
                    while buffer and buffer[0][0] <= now:
                        buffer.popleft()
                    if stall > 0:
                        clock.tsc += stall
                        self.stall_cycles += stall
                        stalled += stall
                bus_free = (now if now > bus_free else bus_free) + cost
                buffer.append((bus_free, hit))
                cost = rest
            self.buffered_writes += count
        self.bus_free = bus_free
        return stalled

    def _buffer_word(self, addr: int, hit: bool) -> int:
        """``_buffer_write(((addr, hit, 1),))``: one bus word, a scalar write's usual case
        (the same steps without the loops)."""
        l2 = self.l2
        if l2 is None:
            cost = self._dram_write
        elif l2.write(addr).hit:
            self.l2_hits += 1
            cost = self._l2_write
        else:
            self.l2_misses += 1
            cost = self._dram_write
        d = self._d
        clock = self.clock
        buffer = self.buffer
        now = clock.tsc * d
        while buffer and buffer[0][0] <= now:
            buffer.popleft()
        stall = 0
        if len(buffer) >= self._buffers:
            self.buffer_full += 1
            stall = -((now - buffer[0][0]) // d)  # whole cycles until it is done
            now += stall * d
            while buffer and buffer[0][0] <= now:
                buffer.popleft()
            if stall > 0:
                clock.tsc += stall
                self.stall_cycles += stall
            else:
                stall = 0
        bus_free = self.bus_free
        bus_free = (now if now > bus_free else bus_free) + cost
        self.bus_free = bus_free
        buffer.append((bus_free, hit))
        self.buffered_writes += 1
        return stall

    def _steady(self, m: int, cost: int, hit: bool, bus_free: int) -> int:
        """``m`` (more than the buffer holds) more words of ``cost`` ticks into a full buffer
        whose oldest entry is not done yet, entries at least a core cycle apart and the bus
        busy until ``bus_free``, past the newest; returns the cycles stalled (charged). Each
        word then stalls until the oldest entry is done (a whole cycle later than the one
        before at least, so exactly that one leaves) and goes on the bus after the newest,
        which keeps all of that true: the words' work in closed form (the caller moves
        ``bus_free`` on by ``m * cost``)."""
        buffer = self.buffer
        b = len(buffer)
        assert m > b  # (the last word's oldest entry is one of the words')
        last = bus_free + (m - b) * cost
        tail = [(bus_free + i * cost, hit) for i in range(m - b + 1, m + 1)]
        clock = self.clock
        stall = -((-last) // self._d) - clock.tsc  # the cycle the last word's oldest is done
        clock.tsc += stall
        self.stall_cycles += stall
        self.buffer_full += m
        buffer.clear()
        buffer.extend(tail)
        return stall

    # --- locked cycles -----------------------------------------------------------------

    def _drain(self) -> int:
        """Wait until every buffered write is done and the bus is idle (ticks)."""
        self.buffer.clear()
        return max(0, self.bus_free - self._now())

    def _locked(self, phys: int, read: bool, write: bool) -> None:
        ticks = self._drain()
        line = self.data.config.line
        if self.config.locked_writeback and self.data.is_dirty(phys):
            ticks += self._line_write(phys, line)
            self._clean(phys)
        if read:
            # A locked read goes to the bus even when the line is cached (LOCK# is asserted
            # on the bus, SDM §8.1.2); the cache's replacement state still sees it.
            self.data.read(phys, allocate=False)
            ticks += self._single_read(phys)
        if write:
            self.data.write(phys, allocate=False)
            self._clean(phys)
            ticks += self._bus_write_cost(phys)
        self.bus_free = self._now() + ticks
        self.locked_stall += self._stall_ticks(ticks)

    def _clean(self, phys: int) -> None:
        self.data.mark_clean(phys)

    def _ad_write(self, phys: int, size: int) -> None:
        self._locked(phys, True, True)

    def _locked_read(self, phys: int, size: int) -> None:
        self._locked(phys, True, False)

    def _locked_write(self, phys: int, size: int) -> None:
        self._locked(phys, False, True)

    # --- whole-cache operations -------------------------------------------------------

    def invalidate(self, write_back: bool) -> None:
        """INVD (``write_back=False``) or WBINVD: empty the L1 caches, and the L2, which the
        processor's special bus cycles ask the board to flush (SDM Vol. 2, INVD and WBINVD).
        WBINVD first writes the dirty L1 lines back, one burst each, and the CPU waits for
        them (and for the write buffers to drain); the L2's own write-backs keep the bus busy
        but do not stall the CPU (it does not wait for the external cache). INVD writes
        nothing back: on hardware dirty data is lost, here memory already holds it (the
        caches hold tags only), so only the cache contents and statistics differ."""
        ticks = self._drain()
        for cache in self.l1:
            for line in cache.invalidate(write_back):
                ticks += self._line_write(line, cache.config.line)
        self.locked_stall += self._stall_ticks(ticks)
        self.bus_free = max(self.bus_free, self._now())
        if self.l2 is not None:
            for _ in self.l2.invalidate(write_back):
                self.bus_free += self._l2_victim

    def invalidate_caches(self, write_back: bool) -> None:
        """The MMU's cache-control seam (:meth:`lavsim.mmu.mmu.MMU.invalidate_caches`):
        :meth:`invalidate`."""
        self.invalidate(write_back)

    def clear(self) -> None:
        """Empty every cache and the write buffer without charging anything (host-side: the
        state of a machine whose caches hold nothing useful, e.g. after a read scan of more
        memory than the caches hold); counters are kept."""
        for cache in self.caches().values():
            cache.clear_lines()
        self.buffer.clear()
        self.bus_free = min(self.bus_free, self._now())

    # --- statistics and state ----------------------------------------------------------

    def caches(self) -> dict[str, Cache]:
        """Every cache by its configured name, L1 first."""
        out = {c.config.name: c for c in self.l1}
        if self.l2 is not None:
            out[self.l2.config.name] = self.l2
        return out

    def counters(self) -> dict[str, int]:
        """Every counter, flat: ``<cache>.<counter>`` and the hierarchy's own."""
        out = HIERARCHY_COUNTERS.read(self)
        for name, cache in self.caches().items():
            for key, value in cache.get_state()["counters"].items():
                out[f"{name}.{key}"] = value
        return out

    def get_state(self) -> dict[str, Any]:
        """Cache contents, write buffer, bus time and counters as JSON-ready data."""
        return {
            "caches": {name: c.get_state() for name, c in self.caches().items()},
            "buffer": [[t, int(h)] for t, h in self.buffer],
            "bus_free": self.bus_free,
            "counters": HIERARCHY_COUNTERS.get_state(self),
        }

    def check_state(self, state: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming what is wrong with ``state`` (changes nothing)."""
        for key in ("caches", "buffer", "bus_free", "counters"):
            if key not in state:
                raise ValueError(f"memory hierarchy: {key!r} missing")
        caches = self.caches()
        saved = state["caches"]
        if not isinstance(saved, Mapping) or set(saved) != set(caches):
            raise ValueError(f"memory hierarchy: caches must be {sorted(caches)}")
        for name, cache in caches.items():
            cache.check_state(saved[name])
        buffer = state["buffer"]
        if (not isinstance(buffer, list) or len(buffer) > self.config.write_buffers
                or any(not isinstance(e, list) or len(e) != 2 or not isinstance(e[0], int)
                       or e[1] not in (0, 1) for e in buffer)):
            raise ValueError("memory hierarchy: write buffer entries are wrong")
        bus_free = state["bus_free"]
        if isinstance(bus_free, bool) or not isinstance(bus_free, int) or bus_free < 0:
            raise ValueError("memory hierarchy: bus_free must be a non-negative int")
        HIERARCHY_COUNTERS.check_state(state["counters"])

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Put back a :meth:`get_state` mapping (checked first; nothing changed if refused)."""
        self.check_state(state)
        for name, cache in self.caches().items():
            cache.set_state(state["caches"][name])
        self.buffer = deque((int(t), bool(h)) for t, h in state["buffer"])
        self.bus_free = int(state["bus_free"])
        HIERARCHY_COUNTERS.set_state(self, state["counters"])

    # --- the fast-filter protocol ------------------------------------------------------

    @property
    def fast_filter(self) -> AccessFilter:
        """Its no-state-change cases for code that reports accesses itself (the MMU's
        :class:`~lavsim.mmu.mmu.AccessFilter`, read at ``add_tracer``): the one-line hits on
        a set's last touched line (``Cache._hot``) that :meth:`on_insn`, :meth:`_read` and
        :meth:`_write` serve by counting alone (an instruction over several such lines is the
        general path's hit on each, which changes nothing but the count)."""
        code, data = self.code, self.data
        return AccessFilter(
            (code._hot, code, code._line_shift, self.on_insn),
            (data._hot, data, data._line_shift, self._read, self._write),
            data._write_back, data._set_mask, data.config.ways,
            (self._page_cache, self._large_page_cache),
        )
