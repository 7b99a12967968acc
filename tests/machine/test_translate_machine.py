"""The block translator under the Lavender kernel: the IPC workload of
``test_machine_blocks.kernel`` (an echo server and a client copying messages with REP MOVSD,
four groups under timer preemption with CR3 switches and TLB refills, a faulting thread) runs
with every block translated at its first entry exactly as with the translator off and as one
step at a time: cycles, registers, memory, statistics, console, devices."""

from __future__ import annotations

from typing import Any

import pytest
from test_machine_blocks import everything, kernel

from lavsim.cpu import core


@pytest.mark.parametrize(("profile", "period"), [("i486", 650), ("pentium", 1_300)])
def test_the_kernel_ipc_workload_runs_identically_translated(
    monkeypatch: pytest.MonkeyPatch, profile: str, period: int
) -> None:
    monkeypatch.setattr(core, "TRANSLATE_AFTER", 0)
    made: list[int] = []
    real = core.translate_block

    def spy(cpu: Any, block: Any, *args: Any) -> Any:
        made.append(block.addr)
        return real(cpu, block, *args)

    monkeypatch.setattr(core, "translate_block", spy)
    out = []
    for mode in ("translated", "blocks", "steps"):
        system = kernel(profile, period)
        system.machine.cpu.translate = mode == "translated"
        if mode == "steps":
            system.machine.add_observer(lambda *step: None)
        outcomes = [system.run(max_cycles=c) for c in (7_777, 120_000, 3_000_000)]
        out.append((outcomes, everything(system.machine, []), system.console))
    assert out[0] == out[1] == out[2]
    assert out[0][0][-1].status == "done"
    assert len(made) > 20  # kernel paths, the IPC copies and the workers ran translated


def test_chained_translations_under_timer_interrupts_and_cr3_switches_run_identically(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same workload with the chained dispatch counted: about a third of the translated
    entries are chained jumps (no general lookup), between timer interrupts, CR3 switches,
    TLB refills and faults, and everything simulated is the block loop's and the single
    steps'."""
    monkeypatch.setattr(core, "TRANSLATE_AFTER", 0)
    entries = [0]
    lookups = [0]
    real = core.translate_block
    real_lookup = core.CPU._translation

    def spy(cpu: Any, block: Any, *args: Any) -> Any:
        fn = real(cpu, block, *args)

        def counted(*a: Any) -> Any:
            entries[0] += 1
            return fn(*a)

        return counted

    def lookup(cpu: Any, *args: Any) -> Any:
        lookups[0] += 1
        return real_lookup(cpu, *args)

    monkeypatch.setattr(core, "translate_block", spy)
    monkeypatch.setattr(core.CPU, "_translation", lookup)
    out = []
    for mode in ("translated", "blocks", "steps"):
        system = kernel("pentium", 1_300)
        system.machine.cpu.translate = mode == "translated"
        if mode == "steps":
            system.machine.add_observer(lambda *step: None)
        outcomes = [system.run(max_cycles=c) for c in (5_000, 200_000, 3_000_000)]
        out.append((outcomes, everything(system.machine, []), system.console))
    assert out[0] == out[1] == out[2]
    assert out[0][0][-1].status == "done"
    chained = entries[0] - lookups[0]  # entries not preceded by a general lookup
    assert lookups[0] > 0 and 4 * chained > entries[0]
