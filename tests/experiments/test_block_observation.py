"""The kernel and phase observers told once per run of kernel code (block observation) count
exactly what they count told step by step: the same KernelStats and phase windows, call by
call, and the same machine at the end, on several mechanisms, boards and workloads (filler
threads and timer interrupts included, so context switches, interrupts and the
``other threads`` phase are cut where they happen)."""

from __future__ import annotations

import hashlib

import pytest

from lavsim.experiments.harness import CallWindow, Harness
from lavsim.experiments.mechanisms import MECHANISMS
from lavsim.experiments.workload import Workload
from lavsim.kernel.observer import KernelObserver
from lavsim.machine import BlockObserver


def _windows(mech: str, work: Workload, per_step: bool) -> tuple[list[CallWindow], str, int]:
    harness = Harness(MECHANISMS[mech], work)
    machine = harness.system.machine
    if per_step:
        machine.add_observer(lambda *step: None)  # a per-instruction observer: steps
    runs = 0
    observer = harness.system.observer
    assert isinstance(observer, KernelObserver)
    assert isinstance(observer, BlockObserver) and isinstance(harness.observer, BlockObserver)
    original = observer.observe_run

    def counting(*run: int | str) -> None:
        nonlocal runs
        if run[5] != 1:  # steps
            runs += 1
        original(*run)  # type: ignore[arg-type]

    observer.observe_run = counting  # type: ignore[method-assign]
    windows = harness.run()
    harness.check(windows)
    cpu = machine.cpu
    state = [*cpu.regs, cpu.eip, cpu.get_eflags(), cpu.cr3, cpu.tsc, cpu.instructions,
             machine.mmu.stats]
    digest = hashlib.sha256(repr(state).encode() + machine.memory.digest().encode())
    return windows, digest.hexdigest(), runs


CASES = [
    ("message-group", Workload(calls=3, size=16)),
    ("message-group", Workload(profile="pentium", calls=3, other_threads=2, other_work=5,
                               timer_period=400, board="p100")),
    ("message-groups", Workload(profile="pentium", calls=3, size=64, board="p100")),
    ("handoff-groups", Workload(calls=3, other_threads=2, other_work=30, timer_period=700)),
    ("l4-groups", Workload(calls=3, size=16, board="486dx2-66")),
    ("l4-small-spaces", Workload(profile="pentium", calls=3, other_threads=1,
                                 timer_period=500)),
    ("lrpc-groups", Workload(profile="pentium", calls=3, size=16)),
    ("migration-group", Workload(calls=3, size=64, board="486dx2-66")),
    ("migration-resident", Workload(profile="pentium", calls=3, board="p100")),
]


@pytest.mark.parametrize(("mech", "work"), CASES, ids=[
    f"{m}-{w.profile}-{w.board}-timer{w.timer_period}" for m, w in CASES])
def test_block_observation_counts_what_step_observation_counts(
    mech: str, work: Workload,
) -> None:
    by_run, state_run, runs = _windows(mech, work, per_step=False)
    by_step, state_step, none = _windows(mech, work, per_step=True)
    assert by_run == by_step
    assert state_run == state_step
    assert none == 0
    # The runs really were gathered (kernel code told in runs of several steps), and with a
    # timer the windows hold interrupts and switches to the filler threads.
    assert runs > 0
    if work.timer_period:
        assert sum(w.stats.interrupts for w in by_run) > 0
        assert sum(w.phases.phases["other threads"] for w in by_run) > 0
