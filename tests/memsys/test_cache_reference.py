"""The cache against a plain reference model on random address streams (hypothesis): a dict of
sets, each an explicit list of lines in recency order (LRU) or three named tree bits (the i486's
B0, B1, B2); both must give the same hits, misses, victims, write-backs and contents."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from lavsim.memsys import Cache, CacheConfig


class ReferenceCache:
    """Written from the rules in words, not from the model's code."""

    def __init__(self, config: CacheConfig) -> None:
        self.c = config
        # set index -> {way: (tag, dirty)}
        self.lines: dict[int, dict[int, tuple[int, bool]]] = {}
        self.order: dict[int, list[int]] = {}  # LRU: ways, least recent first
        self.bits: dict[int, list[int]] = {}  # PLRU (4 ways): [B0, B1, B2]
        self.writebacks = 0

    def _where(self, addr: int) -> tuple[int, int]:
        line = addr // self.c.line
        return line % self.c.sets, line // self.c.sets

    def _used(self, s: int, way: int) -> None:
        if self.c.replacement == "lru":
            order = self.order.setdefault(s, list(range(self.c.ways)))
            order.remove(way)
            order.append(way)
        else:
            b = self.bits.setdefault(s, [0, 0, 0])
            if way in (0, 1):
                b[0] = 1
                b[1] = 1 if way == 0 else 0
            else:
                b[0] = 0
                b[2] = 1 if way == 2 else 0

    def _victim(self, s: int) -> int:
        lines = self.lines.setdefault(s, {})
        for way in range(self.c.ways):
            if way not in lines:
                return way
        if self.c.replacement == "lru":
            return self.order.setdefault(s, list(range(self.c.ways)))[0]
        b = self.bits.setdefault(s, [0, 0, 0])
        if b[0] == 0:
            return 0 if b[1] == 0 else 1
        return 2 if b[2] == 0 else 3

    def _find(self, s: int, tag: int) -> int | None:
        for way, (t, _) in self.lines.get(s, {}).items():
            if t == tag:
                return way
        return None

    def access(self, addr: int, write: bool) -> tuple[bool, bool, int, bool]:
        """(hit, filled, victim line address or -1, goes to memory)."""
        s, tag = self._where(addr)
        way = self._find(s, tag)
        wb = self.c.write_back
        if way is not None:
            self._used(s, way)
            if write and wb:
                self.lines[s][way] = (tag, True)
            return True, False, -1, write and not wb
        if write and not self.c.write_allocate:
            return False, False, -1, True
        way = self._victim(s)
        victim = -1
        old = self.lines.setdefault(s, {}).get(way)
        if old is not None and old[1]:
            victim = (old[0] * self.c.sets + s) * self.c.line
            self.writebacks += 1
        self.lines[s][way] = (tag, write and wb)
        self._used(s, way)
        return False, True, victim, write and not wb

    def contents(self) -> list[tuple[int, bool]]:
        out = []
        for s in sorted(self.lines):
            for way in sorted(self.lines[s]):
                tag, dirty = self.lines[s][way]
                out.append(((tag * self.c.sets + s) * self.c.line, dirty))
        return out


def _check(config: CacheConfig, stream: list[tuple[bool, int]]) -> None:
    cache = Cache(config)
    ref = ReferenceCache(config)
    for write, addr in stream:
        got = cache.write(addr) if write else cache.read(addr)
        assert (got.hit, got.filled, got.victim, got.through) == ref.access(addr, write), (
            f"{'write' if write else 'read'} {addr:#x}")
    assert cache.contents() == ref.contents()
    assert cache.writebacks == ref.writebacks


# Small caches so that a short stream exercises replacement: 4 sets, addresses over 32 lines.
_I486_SMALL = CacheConfig("l1", 4 * 4 * 16, 4, 16, "plru")
_P54C_SMALL = CacheConfig("l1d", 4 * 2 * 32, 2, 32, "lru", write_back=True)
_LRU4_WB_ALLOC = CacheConfig("x", 4 * 4 * 16, 4, 16, "lru", write_back=True, write_allocate=True)


def _streams(line: int) -> st.SearchStrategy[list[tuple[bool, int]]]:
    addr = st.integers(0, 32 * 4 - 1).map(lambda n: n * line // 4 + 0x10000)
    return st.lists(st.tuples(st.booleans(), addr), max_size=200)


@settings(max_examples=150, deadline=None)
@given(_streams(16))
def test_the_i486_cache_matches_the_reference_on_random_streams(stream: list[tuple[bool, int]],
                                                                ) -> None:
    _check(_I486_SMALL, stream)


@settings(max_examples=150, deadline=None)
@given(_streams(32))
def test_the_p54c_data_cache_matches_the_reference_on_random_streams(
    stream: list[tuple[bool, int]],
) -> None:
    _check(_P54C_SMALL, stream)


@settings(max_examples=100, deadline=None)
@given(_streams(16))
def test_a_write_allocating_lru_cache_matches_the_reference(stream: list[tuple[bool, int]],
                                                            ) -> None:
    _check(_LRU4_WB_ALLOC, stream)


@settings(max_examples=50, deadline=None)
@given(_streams(32))
def test_cache_state_round_trips_and_continues_identically(stream: list[tuple[bool, int]]) -> None:
    half = len(stream) // 2
    a = Cache(_P54C_SMALL)
    for write, addr in stream[:half]:
        (a.write if write else a.read)(addr)
    b = Cache(_P54C_SMALL)
    b.set_state(a.get_state())
    for write, addr in stream[half:]:
        ra = (a.write if write else a.read)(addr)
        rb = (b.write if write else b.read)(addr)
        assert ra == rb
    assert a.get_state() == b.get_state()
