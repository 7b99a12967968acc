"""The write buffer takes a write's words in one call (``_buffer_write`` with the line pieces and
their word counts, the L2 told each piece's words at once: ``Cache.write_repeated``; a full
buffer's steady state in closed form) and leaves exactly what one call and one L2 write per
word left: random mixes of scalar writes, REP-sized
runs across lines and pages at every alignment, reads and instruction bytes, on every board's
caches (write-through and write-back L1, with and without L2), with PWT/PCD pages and CR0.NW,
with the clock barely moving so the buffer stays full: the same stall after every access, and
the same caches, buffer, bus time and counters; also from a restored buffer whose entries are
closer than a core cycle, which the closed form may not take."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import attrs
import pytest

from lavsim.boards import BOARDS
from lavsim.memsys import Cache, CacheConfig, MemoryHierarchy
from lavsim.mmu.mmu import Access


@attrs.define
class Clock:
    tsc: int = 0


@attrs.define
class Controls:
    cr0: int = 0x80000011
    page_cache: dict[int, int] = attrs.field(factory=dict)
    large_page_cache: dict[int, int] = attrs.field(factory=dict)


class OneCallPerWord(MemoryHierarchy):
    """The buffer as it was: one call per bus word (also for the one-word shortcut)."""

    def _buffer_write(self, pieces: Iterable[tuple[int, bool, int]]) -> int:
        return sum(self._one_word(addr, hit) for addr, hit, count in pieces
                   for _ in range(count))

    def _buffer_word(self, addr: int, hit: bool) -> int:
        return self._one_word(addr, hit)

    def _one_word(self, addr: int, hit: bool) -> int:
        d = self._d
        now = self.clock.tsc * d
        buffer = self.buffer
        while buffer and buffer[0][0] <= now:
            buffer.popleft()
        stall = 0
        if len(buffer) >= self._buffers:
            self.buffer_full += 1
            stall = -((now - buffer[0][0]) // d)
            now += stall * d
            while buffer and buffer[0][0] <= now:
                buffer.popleft()
        start = max(now, self.bus_free)
        l2 = self.l2
        if l2 is None:
            cost = self._dram_write
        elif l2.write(addr).hit:
            self.l2_hits += 1
            cost = self._l2_write
        else:
            self.l2_misses += 1
            cost = self._dram_write
        self.bus_free = start + cost
        buffer.append((self.bus_free, hit))
        self.buffered_writes += 1
        return self._stall(stall) if stall else 0


def _accesses(seed: int) -> list[tuple[int, Access, int, int]]:
    """(cycles the core works first, kind, physical address, size)."""
    rng = random.Random(seed)
    out = []
    for _ in range(700):
        work = rng.choice([0, 0, 0, 1, 2, 5, 40])
        base = rng.choice([0x10000, 0x11000, 0x12000, 0x52000, 0x93000]) + rng.randrange(0x1000)
        pick = rng.random()
        if pick < 0.4:
            out.append((work, Access.WRITE, base, rng.choice([1, 2, 4, 4])))
        elif pick < 0.6:
            out.append((work, Access.WRITE, base & ~3, 4 * rng.randrange(2, 300)))
        elif pick < 0.85:
            out.append((work, Access.READ, base, rng.choice([1, 2, 4, 64])))
        else:
            out.append((work, Access.INSN, base, rng.randrange(1, 16)))
    return out


def _run(cls: type[MemoryHierarchy], board: str, seed: int, nw: bool, bits: int) -> Any:
    spec = BOARDS[board]
    assert spec.l1 is not None and spec.timing is not None
    clock = Clock()
    controls = Controls(cr0=0x80000011 | (1 << 29 if nw else 0))
    if bits:
        controls.page_cache[0x11] = bits  # PWT (8) or PCD (16) on one page
    h = cls(spec.l1, spec.timing, clock, controls)  # type: ignore[arg-type]
    stalls = []
    for work, kind, phys, size in _accesses(seed):
        clock.tsc += work
        before = clock.tsc
        h.on_access(kind, phys, size, False)
        stalls.append(clock.tsc - before)
    return stalls, clock.tsc, h.get_state()


@pytest.mark.parametrize("board", ["486dx2-66", "486dx-50", "p100"])
@pytest.mark.parametrize(("nw", "bits"), [(False, 0), (False, 8), (False, 16), (True, 0)])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_line_piece_in_one_call_buffers_what_one_call_per_word_buffers(
    board: str, nw: bool, bits: int, seed: int,
) -> None:
    words = _run(MemoryHierarchy, board, seed, nw, bits)
    reference = _run(OneCallPerWord, board, seed, nw, bits)
    assert words == reference
    state = words[2]
    assert state["counters"]["buffered_writes"] > 1000
    if not nw:
        assert state["counters"]["buffer_full"] > 100


@pytest.mark.parametrize("write_allocate", [False, True])
@pytest.mark.parametrize("write_back", [False, True])
@pytest.mark.parametrize(("ways", "replacement"), [(1, "lru"), (2, "lru"), (4, "plru")])
def test_repeated_writes_of_a_line_told_at_once_equal_the_writes_one_by_one(
    write_allocate: bool, write_back: bool, ways: int, replacement: str,
) -> None:
    config = CacheConfig("c", 1024, ways, 16, replacement, write_back=write_back,
                         write_allocate=write_allocate)
    rng = random.Random(ways)
    at_once, one_by_one = Cache(config), Cache(config)
    answers = []
    for _ in range(2000):
        addr = rng.randrange(0x4000)
        if rng.random() < 0.4:
            assert at_once.read(addr).hit == one_by_one.read(addr).hit
            continue
        count = rng.choice([1, 2, 3, 4, 8])
        first, later = at_once.write_repeated(addr, count)
        each = [one_by_one.write(addr).hit for _ in range(count)]
        assert [first, *[later] * (count - 1)] == each
        answers.append(first)
        assert at_once.get_state() == one_by_one.get_state()
    assert any(answers) and not all(answers)


@pytest.mark.parametrize("gap", [0, 1, 2, 3])
def test_a_buffer_restored_with_entries_closer_than_a_cycle_buffers_word_by_word(
    gap: int,
) -> None:
    # The P54C's caches with four write buffers at the p100's bus (a core cycle is 2 ticks):
    # a saved state may hold entries any distance apart.
    spec = BOARDS["p100"]
    assert spec.l1 is not None and spec.timing is not None
    config = attrs.evolve(spec.l1, write_buffers=4)
    outcomes = []
    for cls in (MemoryHierarchy, OneCallPerWord):
        clock = Clock(tsc=1000)
        h = cls(config, spec.timing, clock, Controls())  # type: ignore[arg-type]
        state = h.get_state()
        state["buffer"] = [[2001 + k * gap, 0] for k in range(4)]
        state["bus_free"] = 2001 + 3 * gap
        h.set_state(state)
        h.on_access(Access.WRITE, 0x40000, 256, False)
        outcomes.append((clock.tsc, h.get_state()))
    assert outcomes[0] == outcomes[1]
