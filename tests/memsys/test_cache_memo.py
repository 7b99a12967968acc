"""The cache's host-side shortcuts are exact. The memo of repeated hits: touching a set's last
touched way again changes no replacement state (true LRU and the tree pseudo-LRU, every
state), so a cache and a hierarchy that serve such hits from the memo give the same results,
tags, dirty bits, replacement bits, counters, stalls and write buffers as ones that never use
it. Clearing and invalidating leave the state of a new cache (and an empty memo)."""

from __future__ import annotations

import itertools
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from lavsim.cpu.asm import assemble
from lavsim.machine import Machine, MachineConfig
from lavsim.memsys import Cache, CacheConfig


class Unmemoised(Cache):
    """The cache with its memo kept empty: every access takes the full lookup."""

    __slots__ = ()

    def _touch(self, index: int, way: int) -> None:
        super()._touch(index, way)
        self._forget()


def _unmemoise(cache: Cache) -> None:
    cache._forget()
    cache.__class__ = Unmemoised


@pytest.mark.parametrize("replacement", ["lru", "plru"])
@pytest.mark.parametrize("ways", [1, 2, 4, 8])
def test_touching_the_last_touched_way_again_changes_no_replacement_state(
    replacement: str, ways: int
) -> None:
    cache = Cache(CacheConfig("c", 16 * ways, ways, 16, replacement))
    if replacement == "lru":
        states = [list(p) for p in itertools.permutations(range(ways))]
    else:
        states = [list(b) for b in itertools.product((0, 1), repeat=ways - 1)]
    for state in states:
        for way in range(ways):
            width = len(state)
            cache.repl[0:width] = list(state)
            cache.tags[0:ways] = list(range(ways))
            cache._touch(0, way)
            once = cache.repl[0:width]
            cache._touch(0, way)
            assert cache.repl[0:width] == once, (state, way)


CONFIGS = [
    CacheConfig("i486", 4 * 4 * 16, 4, 16, "plru"),
    CacheConfig("p54c", 4 * 2 * 32, 2, 32, "lru", write_back=True),
    CacheConfig("wa", 4 * 4 * 16, 4, 16, "lru", write_back=True, write_allocate=True),
    CacheConfig("dm", 4 * 16, 1, 16, "plru", write_back=True, write_allocate=True),
]
op = st.one_of(
    st.tuples(st.sampled_from(["read", "write"]), st.integers(0, 40),
              st.booleans(), st.booleans()),
    st.tuples(st.sampled_from(["invalidate", "restore", "clear"]), st.just(0), st.booleans(),
              st.just(False)),
)


def check_memo_consistent(cache: Cache) -> None:
    """Every memo entry names a present line in the way it says, the last touched of its set."""
    ways, shift = cache.config.ways, cache._line_shift
    for line, way in cache._hot.items():
        index, tag = cache._locate(line << shift)
        assert cache.tags[index * ways + way] == tag
        assert cache._set_hot[index] == line


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CONFIGS), st.lists(op, max_size=250))
def test_a_memoised_cache_equals_one_without_the_memo_on_random_streams(
    config: CacheConfig, ops: list[Any]
) -> None:
    memo, plain = Cache(config), Cache(config)
    _unmemoise(plain)
    for kind, n, flag, through in ops:
        if kind in ("read", "write"):
            addr = 0x8000 + n * config.line // 2  # two addresses per line, lines in all sets
            if kind == "read":
                results = [c.read(addr, flag) for c in (memo, plain)]
            else:
                results = [c.write(addr, flag, through) for c in (memo, plain)]
            assert results[0] == results[1]
        elif kind == "invalidate":
            dirty = [line for line, d in memo.contents() if d] if flag else []
            assert memo.invalidate(flag) == plain.invalidate(flag) == dirty
        elif kind == "restore":
            memo.set_state(memo.get_state())
            plain.set_state(plain.get_state())
        else:
            memo.clear_lines()
            plain.clear_lines()
        assert memo.get_state() == plain.get_state()
        check_memo_consistent(memo)
        if kind in ("invalidate", "clear"):  # every line gone, the tree/LRU state initial
            fresh = Cache(config).get_state()
            assert {k: v for k, v in memo.get_state().items() if k != "counters"} == {
                k: v for k, v in fresh.items() if k != "counters"}


LOOP = """
    mov esi, 0x20000
    mov ebx, 3
    mov ecx, 0
top:
    mov eax, [esi]
    add eax, ebx
    mov [esi], eax
    mov [esi + 0x1004], ecx
    add esi, 0x24
    and esi, 0x23FFF
    inc ecx
    cmp ecx, 3000
    jne top
    mov edi, 0x30000
    mov ecx, 700
    rep stosd
    hlt
"""


@pytest.mark.parametrize("board", ["486dx2-66", "p100"])
def test_a_board_gives_the_same_stalls_and_cache_state_with_and_without_the_memo(
    board: str,
) -> None:
    machines = []
    for memo in (True, False):
        profile = "pentium" if board == "p100" else "i486"
        m = Machine(MachineConfig(profile=profile, memory_size=1 << 20, board=board))
        m.load(0x10000, assemble(LOOP, origin=0x10000).code)
        m.setup_flat_protected_mode(entry=0x10000)
        assert m.hierarchy is not None
        if not memo:
            for cache in m.hierarchy.caches().values():
                _unmemoise(cache)
        m.run(max_cycles=5_000_000)
        machines.append(m)
    a, b = machines
    assert a.cpu.halted and a.cpu.tsc == b.cpu.tsc
    assert a.hierarchy is not None and b.hierarchy is not None
    assert a.hierarchy.stall_cycles > 0
    assert a.hierarchy.get_state() == b.hierarchy.get_state()
    assert a.hierarchy.counters() == b.hierarchy.counters()
