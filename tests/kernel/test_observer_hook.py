"""The Machine's public per-step observer hook, and host-side loads dropping decoded code."""

from __future__ import annotations

import pytest
from bare_machines import COUNTER, ENTRY, machine, timer_machine

from lavsim.cpu.asm import assemble
from lavsim.errors import ConfigError
from lavsim.machine import STEP_IDLE, STEP_INSTRUCTION, STEP_INTERRUPT

Event = tuple[str, int, int, int, int, int, int]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, kind: str, cs: int, eip: int, pc: int, cpl: int, before: int,
                 after: int, /) -> None:
        self.events.append((kind, cs, eip, pc, cpl, before, after))


def test_observer_sees_instructions_interrupts_and_idle_and_every_cycle() -> None:
    m = timer_machine(1000)
    rec = Recorder()
    m.add_observer(rec)
    result = m.run(max_cycles=10_500)
    kinds = [e[0] for e in rec.events]
    assert kinds.count(STEP_INTERRUPT) == 10 == m.memory.read32(COUNTER)
    assert STEP_IDLE in kinds
    assert kinds.count(STEP_INSTRUCTION) == result.instructions
    # The events tile the run: each starts where the last ended, and they add up to it.
    assert rec.events[0][5] == 0 and rec.events[-1][6] == m.cpu.tsc
    for a, b in zip(rec.events, rec.events[1:], strict=False):
        assert a[6] == b[5]
    assert sum(e[6] - e[5] for e in rec.events) == result.cycles
    idle = sum(e[6] - e[5] for e in rec.events if e[0] == STEP_IDLE)
    assert idle == m.stats().idle_cycles
    first = rec.events[0]
    assert first[:5] == (STEP_INSTRUCTION, 0x08, ENTRY, ENTRY, 0)


def test_an_observed_run_equals_an_unobserved_one() -> None:
    digests = []
    for observe in (False, True):
        m = timer_machine(777, profile="pentium")
        if observe:
            m.add_observer(Recorder())
        result = m.run(max_cycles=20_000)
        digests.append((result, m.state_digest(), m.stats()))
    assert digests[0] == digests[1]


def test_observers_can_be_removed_and_must_be_callable() -> None:
    m = machine(bytes([0x90, 0x90, 0xFA, 0xF4]))
    rec = Recorder()
    m.add_observer(rec)
    m.remove_observer(rec)
    assert m.observers == ()
    m.run()
    assert rec.events == []
    with pytest.raises(ConfigError) as info:
        m.add_observer(42)  # type: ignore[arg-type]
    assert info.value.field == "observer"


def test_observer_reports_a_faulting_instruction_and_a_breakpoint_still_stops() -> None:
    m = machine(bytes([0x90, 0x90, 0xFA, 0xF4]))
    rec = Recorder()
    m.add_observer(rec)
    m.add_breakpoint(ENTRY + 2)
    assert m.run().reason == "breakpoint"
    assert [e[2] for e in rec.events] == [ENTRY, ENTRY + 1]


def test_load_drops_decoded_instructions_of_the_frames_written() -> None:
    first = assemble("mov eax, 1\ncli\nhlt\n", origin=ENTRY).code
    second = assemble("mov eax, 2\ncli\nhlt\n", origin=ENTRY).code
    m = machine(first)
    assert m.run().reason == "halted" and m.cpu.regs[0] == 1
    m.load(ENTRY, second)
    m.cpu.eip, m.cpu.halted = ENTRY, False
    assert m.run().reason == "halted"
    assert m.cpu.regs[0] == 2, "the decoded-instruction cache served the old code"
