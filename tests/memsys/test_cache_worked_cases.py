"""Worked cases from the manuals: the i486 pseudo-LRU victim sequence (Embedded Intel486 HRM
p. 3-12), a write miss on the i486 that does not allocate, a Pentium write-back of a dirty
victim, and the bank rule of the P54C data cache."""

from __future__ import annotations

import pytest

from lavsim.boards import I486_L1, P54C_L1
from lavsim.errors import ConfigError
from lavsim.memsys import Cache, CacheConfig

I486 = I486_L1.unified
P54C_D = P54C_L1.data
assert I486 is not None and P54C_D is not None

SET_STRIDE_486 = 128 * 16  # 128 sets of 16-byte lines: same set every 2 KiB
SET_STRIDE_P5 = 128 * 32


def _line(k: int) -> int:
    return 0x100000 + k * SET_STRIDE_486  # line k of set 0


def test_the_i486_cache_has_the_documented_geometry() -> None:
    assert (I486.size, I486.ways, I486.line, I486.sets) == (8192, 4, 16, 128)
    assert (P54C_D.size, P54C_D.ways, P54C_D.line, P54C_D.sets) == (8192, 2, 32, 128)


def test_the_i486_pseudo_lru_fills_invalid_lines_first_then_follows_b0_b1_b2() -> None:
    cache = Cache(I486)
    for k in range(4):  # L0..L3 filled in order (invalid lines first)
        assert cache.read(_line(k)).filled
    # After L3: B0 = 0 (L2/L3 last), B1 = 0 (L1 after L0), B2 = 0 (L3 last).
    assert cache.lines(0)[2] == [0, 0, 0]
    cache.read(_line(4))  # B0 = 0 -> L0/L1, B1 = 0 -> L0 is replaced
    assert not cache.probe(_line(0)) and cache.lines(0)[0][0] >= 0
    assert cache.lines(0)[2] == [1, 1, 0]
    cache.read(_line(5))  # B0 = 1 -> L2/L3, B2 = 0 -> L2
    assert not cache.probe(_line(2))


def test_pseudo_lru_differs_from_true_lru_on_the_textbook_order_l0_l2_l3_l1() -> None:
    cache = Cache(I486)
    lru = Cache(CacheConfig("lru", 8192, 4, 16, "lru"))
    for c in (cache, lru):
        for k in range(4):
            c.read(_line(k))
        for k in (0, 2, 3, 1):  # L0 is now the least recently used
            assert c.read(_line(k)).hit
        c.read(_line(9))
    assert not lru.probe(_line(0))  # true LRU replaces L0
    # B0 = 1 (L1 last) -> L2/L3; B2 = 0 (L3 after L2) -> L2 is replaced, L0 survives.
    assert cache.probe(_line(0)) and not cache.probe(_line(2))


def test_an_i486_write_miss_does_not_allocate_and_writes_through() -> None:
    cache = Cache(I486)
    result = cache.write(0x2000)
    assert not result.hit and not result.filled and result.through
    assert not cache.probe(0x2000)
    assert cache.read(0x2000).filled  # the next read still misses
    hit = cache.write(0x2004)
    assert hit.hit and hit.through and not cache.is_dirty(0x2004)  # write-through


def test_a_pentium_dirty_victim_is_written_back_when_its_set_refills() -> None:
    cache = Cache(P54C_D)
    a, b, c = 0x40000, 0x40000 + SET_STRIDE_P5, 0x40000 + 2 * SET_STRIDE_P5
    cache.read(a)
    assert cache.write(a + 4) == cache.write(a)  # hits, no bus traffic
    assert cache.is_dirty(a) and not cache.write(a).through
    cache.read(b)  # a is now least recently used
    result = cache.read(c)
    assert result.filled and result.victim == a and cache.writebacks == 1
    assert not cache.probe(a)


def test_a_pentium_write_miss_does_not_allocate() -> None:
    cache = Cache(P54C_D)
    result = cache.write(0x5000)
    assert result.through and not result.filled and not cache.probe(0x5000)


def test_the_p54c_data_cache_has_8_banks_of_4_bytes_picked_by_address_bits_2_to_4() -> None:
    assert [P54C_D.bank(4 * k) for k in range(9)] == [0, 1, 2, 3, 4, 5, 6, 7, 0]
    assert P54C_D.same_bank(0x1000, 0x1020)  # 32 bytes apart: same bank, another word
    assert not P54C_D.same_bank(0x1000, 0x1004)
    assert not P54C_D.same_bank(0x1000, 0x1002)  # the same dword is no conflict


@pytest.mark.parametrize(("field", "kwargs"), [
    ("size", {"size": 3000}), ("ways", {"ways": 3}), ("line", {"line": 2}),
    ("replacement", {"replacement": "fifo"}), ("size", {"size": 32, "ways": 4}),
])
def test_a_bad_cache_organisation_is_refused_naming_the_field(field: str, kwargs: dict[str, object],
                                                              ) -> None:
    args: dict[str, object] = {"name": "x", "size": 8192, "ways": 4, "line": 16}
    args.update(kwargs)
    with pytest.raises(ConfigError) as info:
        CacheConfig(**args)  # type: ignore[arg-type]
    assert info.value.field == field
