"""The I/O bus, the interrupt controller, the interval timer and the console port."""

from __future__ import annotations

import pytest

from lavsim.devices import (
    CONSOLE_PORT,
    PIC_COMMAND,
    PIC_DATA,
    TIMER_COUNT,
    TIMER_PERIOD,
    Bus,
    Console,
    IntervalTimer,
    ProgrammableInterruptController,
)
from lavsim.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def test_unclaimed_port_reads_all_ones_and_ignores_writes() -> None:
    bus = Bus()
    bus.write(0x300, 1, 0x12)
    assert (bus.read(0x300, 1), bus.read(0x300, 2), bus.read(0x300, 4)) == (
        0xFF, 0xFFFF, 0xFFFFFFFF)


def test_a_port_can_be_claimed_once() -> None:
    bus = Bus()
    bus.attach(Console(), CONSOLE_PORT)
    with pytest.raises(ConfigError):
        bus.attach(Console(), CONSOLE_PORT)


def test_console_collects_written_bytes() -> None:
    bus = Bus()
    console = Console()
    bus.attach(console, CONSOLE_PORT)
    for ch in b"hi\n":
        bus.write(CONSOLE_PORT, 1, ch)
    assert console.text == "hi\n"
    assert bus.read(CONSOLE_PORT, 1) == 0xE9


def test_pic_presents_highest_priority_unmasked_request() -> None:
    pic = ProgrammableInterruptController(0x20)
    pic.raise_irq(3)
    pic.raise_irq(1)
    assert pic.acknowledge() == 0x21
    # IRQ 1 is in service: IRQ 3 (lower priority) waits for its EOI.
    assert pic.acknowledge() is None
    pic.io_write(PIC_COMMAND, 1, 0x20)  # non-specific EOI
    assert pic.acknowledge() == 0x23


def test_higher_priority_request_nests_above_one_in_service() -> None:
    pic = ProgrammableInterruptController(0x20)
    pic.raise_irq(4)
    assert pic.acknowledge() == 0x24
    pic.raise_irq(0)
    assert pic.acknowledge() == 0x20


def test_pic_mask_register_blocks_lines() -> None:
    pic = ProgrammableInterruptController(0x20)
    pic.io_write(PIC_DATA, 1, 0x01)
    pic.raise_irq(0)
    assert not pic.output
    assert pic.io_read(PIC_DATA, 1) == 0x01
    pic.io_write(PIC_DATA, 1, 0x00)
    assert pic.output


def test_pic_initialisation_sets_vector_base() -> None:
    pic = ProgrammableInterruptController(0x08)
    pic.io_write(PIC_COMMAND, 1, 0x13)  # ICW1: single, ICW4 needed
    pic.io_write(PIC_DATA, 1, 0x40)  # ICW2
    pic.io_write(PIC_DATA, 1, 0x01)  # ICW4
    pic.io_write(PIC_DATA, 1, 0xFE)  # now OCW1: the mask
    assert pic.imr == 0xFE
    pic.raise_irq(0)
    assert pic.acknowledge() == 0x40


def test_pic_specific_eoi_and_isr_read() -> None:
    pic = ProgrammableInterruptController(0x20)
    pic.raise_irq(2)
    pic.acknowledge()
    pic.io_write(PIC_COMMAND, 1, 0x0B)  # OCW3: read ISR
    assert pic.io_read(PIC_COMMAND, 1) == 0x04
    pic.io_write(PIC_COMMAND, 1, 0x62)  # specific EOI, IRQ 2
    assert pic.io_read(PIC_COMMAND, 1) == 0


def test_repeated_edge_while_pending_is_coalesced() -> None:
    pic = ProgrammableInterruptController(0x20)
    pic.raise_irq(0)
    pic.raise_irq(0)
    assert pic.lost == 1


def test_pic_rejects_unaligned_base() -> None:
    with pytest.raises(ConfigError) as info:
        ProgrammableInterruptController(0x21)
    assert info.value.field == "pic_base"


def test_timer_raises_irq0_every_period_cycles() -> None:
    pic = ProgrammableInterruptController(0x20)
    clock = Clock()
    timer = IntervalTimer(pic, clock, period=1000)
    assert timer.next_event == 1000
    assert not timer.advance(999)
    assert timer.advance(1000)
    assert pic.irr == 1 and timer.ticks == 1 and timer.next_event == 2000
    assert timer.advance(4500)
    assert timer.ticks == 4 and timer.next_event == 5000


def test_timer_is_programmed_through_ports() -> None:
    pic = ProgrammableInterruptController(0x20)
    clock = Clock()
    timer = IntervalTimer(pic, clock)
    assert timer.next_event is None
    clock.now = 300
    timer.io_write(TIMER_PERIOD, 4, 50)
    assert timer.next_event == 350
    assert timer.io_read(TIMER_PERIOD, 4) == 50
    clock.now = 320
    assert timer.io_read(TIMER_COUNT, 4) == 30
    timer.io_write(TIMER_PERIOD, 4, 0)
    assert timer.next_event is None and not timer.advance(10_000)
