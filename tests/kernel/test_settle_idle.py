"""settle() reaches a quiescent point on a healthy idle kernel whose timer runs, also when the
run limit cut the timer tick's path: stepping at the idle HLT must stop with the processor
halted instead of skipping to the next tick and delivering it in the same step."""

from __future__ import annotations

from ipc_kit import ECHO_SERVER, define

from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.invariants import check_kernel_consistency, quiescent, settle


def idle_system() -> LavenderSystem:
    """One server blocked in receive on a port nobody sends to: the kernel idles in HLT and
    the timer keeps ticking."""
    system = LavenderSystem(memory_size=8 << 20, timer_period=2_000, observe=False)
    group = system.create_group()
    server = system.create_process(group, define(ECHO_SERVER, REPLY_WAIT=L.SYS_REPLY_WAIT),
                                   data=bytes([1]), data_size=0x2000)
    system.create_thread(server, "main")
    return system


def test_settle_reaches_the_idle_hlt_from_inside_the_tick_path() -> None:
    cut = 0
    for budget in range(20_000, 40_000, 97):
        system = idle_system()
        system.run(max_cycles=budget)
        if quiescent(system):
            continue
        cut += 1
        assert system.machine.cpu.cpl == 0
        assert settle(system), f"did not settle after a cut at {budget} cycles"
        assert system.machine.cpu.halted
        assert check_kernel_consistency(system) == []
    assert cut >= 10  # the budgets did cut kernel paths


def test_settling_changes_no_simulated_result() -> None:
    end = 60_000
    for budget in (20_194, 24_171, 31_251):
        settled = idle_system()
        settled.run(max_cycles=budget)
        assert settle(settled)
        machine = settled.machine
        machine.run(max_cycles=end - machine.cpu.tsc)
        straight = idle_system()
        straight.run(max_cycles=end)
        assert machine.state_digest() == straight.machine.state_digest()
        assert machine.stats() == straight.machine.stats()
