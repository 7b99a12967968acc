"""The hierarchy's stall cycles: line fills at the board's burst timing, page-walk reads through
the data cache, the write buffer (depth, read-around rule, drain on locked cycles), the
Pentium's dirty-victim write-back and CR0.CD."""

from __future__ import annotations

from fractions import Fraction

import attrs

from lavsim.boards import BOARDS, I486_L1, P54C_L1
from lavsim.memsys import BusTiming, MemoryHierarchy
from lavsim.mmu.mmu import Access


@attrs.define
class Clock:
    tsc: int = 0


@attrs.define
class Controls:
    cr0: int = 0x80000011


# 486, no L2, 1:1 clock: a 16-byte fill is 5+3+3+3 = 14 cycles, a single write 5.
NO_L2 = BusTiming(ratio=Fraction(1), bus_width=4, dram_burst=(5, 3, 3, 3), dram_write=5)


def _h(config: object = I486_L1, timing: BusTiming = NO_L2) -> tuple[MemoryHierarchy, Clock]:
    clock = Clock()
    return MemoryHierarchy(config, timing, clock, Controls()), clock  # type: ignore[arg-type]


def _cost(h: MemoryHierarchy, clock: Clock, kind: Access, phys: int, size: int = 4) -> int:
    before = clock.tsc
    h.on_access(kind, phys, size, False)
    return clock.tsc - before


def test_a_read_miss_costs_one_burst_fill_and_the_next_read_of_the_line_hits() -> None:
    h, clock = _h()
    assert _cost(h, clock, Access.READ, 0x1000) == 14
    assert _cost(h, clock, Access.READ, 0x100C) == 0
    assert h.stall_cycles == h.read_stall == 14


def test_a_page_walk_whose_pte_hits_in_the_data_cache_costs_less_than_one_that_misses() -> None:
    h, clock = _h()
    miss = _cost(h, clock, Access.WALK_READ, 0x5000) + _cost(h, clock, Access.WALK_READ, 0x6010)
    # The next walk of a neighbouring page: the PDE and the PTE (same line) hit.
    hit = _cost(h, clock, Access.WALK_READ, 0x5000) + _cost(h, clock, Access.WALK_READ, 0x6014)
    assert hit < miss and hit == 0 and miss == 28


def test_instruction_bytes_fill_the_code_cache_line_by_line_and_fetch_windows_are_ignored() -> None:
    h, clock = _h(P54C_L1)
    assert _cost(h, clock, Access.FETCH, 0x2000, 15) == 0
    two_lines = _cost(h, clock, Access.INSN, 0x201E, 4)  # crosses a 32-byte line
    assert h.code.fills == 2 and two_lines > 0 and h.data.fills == 0


def test_the_i486_write_buffer_takes_four_writes_then_stalls_until_the_oldest_is_written() -> None:
    h, clock = _h()
    for k in range(4):
        assert _cost(h, clock, Access.WRITE, 0x3000 + 4 * k) == 0
    # Each buffered write takes the bus for 5 cycles, one after another: the oldest is done
    # at 5, so the fifth write waits 5 cycles.
    assert _cost(h, clock, Access.WRITE, 0x3010) == 5
    assert h.buffer_full == 1 and h.write_stall == 5
    clock.tsc += 100  # the buffer drains while the core works
    assert _cost(h, clock, Access.WRITE, 0x3014) == 0


def test_the_pentium_write_buffer_has_two_entries() -> None:
    h, clock = _h(P54C_L1, attrs.evolve(NO_L2, bus_width=8))
    assert [_cost(h, clock, Access.WRITE, 0x3000 + 64 * k) for k in range(3)] == [0, 0, 5]


def test_a_read_miss_goes_around_buffered_writes_only_if_all_of_them_hit() -> None:
    h, clock = _h()
    h.on_access(Access.READ, 0x7000, 4, False)  # line 0x7000 cached
    base = clock.tsc
    h.on_access(Access.WRITE, 0x7004, 4, False)  # a write hit, buffered
    assert _cost(h, clock, Access.READ, 0x9000) == 14 and h.read_arounds == 1
    assert clock.tsc - base == 14
    h2, clock2 = _h()
    h2.on_access(Access.WRITE, 0x8000, 4, False)  # a write miss, buffered
    assert _cost(h2, clock2, Access.READ, 0x9000) == 5 + 14  # waits for the write first


def test_a_locked_cycle_drains_the_write_buffer_and_goes_to_memory() -> None:
    h, clock = _h()
    for k in range(3):
        h.on_access(Access.WRITE, 0x3000 + 4 * k, 4, False)
    # 15 cycles of buffered writes, then a locked read (5) and write (5) of a paging entry.
    assert _cost(h, clock, Access.AD_WRITE, 0x6000) == 15 + 10
    assert not h.buffer and h.locked_stall == 25


def test_a_pentium_dirty_victim_keeps_the_bus_busy_after_its_fill() -> None:
    timing = attrs.evolve(NO_L2, bus_width=8)
    h, clock = _h(P54C_L1, timing)
    stride = 128 * 32
    fill = timing.core(timing.burst_clocks(timing.dram_burst, 32))
    h.on_access(Access.READ, 0x10000, 4, False)
    h.on_access(Access.WRITE, 0x10000, 4, False)  # dirty, no bus traffic
    assert h.buffered_writes == 0
    h.on_access(Access.READ, 0x10000 + stride, 4, False)
    assert _cost(h, clock, Access.READ, 0x10000 + 2 * stride) == fill  # evicts the dirty line
    assert h.data.writebacks == 1
    # The write-back runs after that fill: the next miss waits for it.
    assert _cost(h, clock, Access.READ, 0x20000) == 2 * fill


def test_cr0_cd_stops_line_fills() -> None:
    h, clock = _h()
    h.controls.cr0 |= 1 << 30  # type: ignore[misc]
    assert _cost(h, clock, Access.READ, 0x1000) == 5  # a single transfer, no fill
    assert _cost(h, clock, Access.READ, 0x1000) == 5 and h.data.fills == 0


def test_miss_costs_derive_from_the_board_ratio_and_l2() -> None:
    board = BOARDS["486dx2-66"]
    assert board.timing is not None
    h, clock = _h(I486_L1, board.timing)
    # Not in the L2: DRAM 5-3-3-3 bus clocks at core/bus 2.
    assert _cost(h, clock, Access.READ, 0x1000) == 2 * 14
    for k in range(1, 5):  # four more lines of the L1 set: the pseudo-LRU evicts 0x1000
        h.on_access(Access.READ, 0x1000 + k * 2048, 4, False)
    assert not h.data.probe(0x1000)
    # The L2 still holds the line: 2-1-1-1 at ratio 2.
    assert _cost(h, clock, Access.READ, 0x1000) == 2 * 5
    assert (h.l2_misses, h.l2_hits) == (5, 1)
    h.clear()  # empties the L2 too
    assert _cost(h, clock, Access.READ, 0x1000) == 2 * 14


def test_hierarchy_state_round_trips_and_later_stalls_are_identical() -> None:
    board = BOARDS["p100"]
    assert board.timing is not None
    a, ca = _h(P54C_L1, board.timing)
    stream = [(Access.READ, 0x1000 + 4096 * k) for k in range(20)] + [
        (Access.WRITE, 0x9000 + 8 * k) for k in range(10)]
    for kind, addr in stream:
        a.on_access(kind, addr, 4, False)
    b, cb = _h(P54C_L1, board.timing)
    b.set_state(a.get_state())
    cb.tsc = ca.tsc
    for kind, addr in reversed(stream):
        assert _cost(a, ca, kind, addr) == _cost(b, cb, kind, addr)
    assert a.get_state() == b.get_state()


def test_bus_time_is_exact_at_a_fractional_clock_ratio_and_stalls_round_up_once() -> None:
    # 3 bus clocks per write at core/bus 3/2 = 4.5 core cycles each; two buffers.
    timing = BusTiming(ratio=Fraction(3, 2), bus_width=8, dram_burst=(5, 2, 2, 2), dram_write=3)
    h, clock = _h(P54C_L1, timing)
    for k in range(4):
        h.on_access(Access.WRITE, 0x3000 + 64 * k, 4, False)
    # Writes end at 4.5, 9, 13.5, 18: the third waits until 4.5 (5 cycles), the fourth until
    # 9; rounding each write up to 5 cycles would give 10.
    assert clock.tsc == 9 and h.write_stall == 9


def test_a_pentium_locked_cycle_writes_a_dirty_line_back_first_and_still_uses_the_bus() -> None:
    timing = attrs.evolve(NO_L2, bus_width=8)
    h, clock = _h(P54C_L1, timing)
    h.on_access(Access.READ, 0x6000, 4, False)
    h.on_access(Access.WRITE, 0x6000, 4, False)  # the line is now dirty
    fill = timing.core(timing.burst_clocks(timing.dram_burst, 32))
    clock.tsc += 100  # the bus is idle
    assert _cost(h, clock, Access.LOCKED_READ, 0x6000) == fill + 5
    assert not h.data.is_dirty(0x6000) and h.data.probe(0x6000)
    assert _cost(h, clock, Access.LOCKED_WRITE, 0x6000) == 5
