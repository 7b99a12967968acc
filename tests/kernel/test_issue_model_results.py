"""The Pentium issue model changes cycles only: a kernel workload ends with the same memory,
registers and console output under the pentium model and its sequential twin, and its cycles
do not depend on whether the machine runs blocks or steps (an observer attached)."""

from __future__ import annotations

from letters import WORKER

from lavsim.kernel import LavenderSystem
from lavsim.timing import PENTIUM
from lavsim.timing.pentium import PENTIUM_SEQUENTIAL


def _system(profile: object) -> LavenderSystem:
    system = LavenderSystem(profile=profile, memory_size=8 << 20, timer_period=0)  # type: ignore[arg-type]
    for letter in "ab":
        group = system.create_group()
        process = system.create_process(group, WORKER, data_size=16, max_threads=2)
        system.create_thread(process, "main", args=(ord(letter),))
    return system


def _result(system: LavenderSystem) -> tuple[object, ...]:
    m = system.machine
    return (system.console, m.memory.digest(), list(m.cpu.regs), m.cpu.eip, m.cpu.instructions)


def test_a_kernel_workload_ends_the_same_with_and_without_the_issue_model() -> None:
    paired, sequential = _system(PENTIUM), _system(PENTIUM_SEQUENTIAL)
    assert paired.run().status == "done" and sequential.run().status == "done"
    assert _result(paired) == _result(sequential)
    assert paired.machine.cpu.tsc < sequential.machine.cpu.tsc


def test_kernel_cycles_are_the_same_in_blocks_and_single_steps() -> None:
    blocks, steps = _system(PENTIUM), _system(PENTIUM)
    steps.machine.add_observer(lambda *_: None)
    assert blocks.run().status == "done" and steps.run().status == "done"
    assert blocks.machine.cpu.tsc == steps.machine.cpu.tsc
    assert _result(blocks) == _result(steps)
