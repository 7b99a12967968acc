"""The harness: boot a workload for one mechanism and cut its run into one window per call.

:class:`Harness` boots a :class:`~lavsim.kernel.LavenderSystem` on the workload's machine, lets
the mechanism build its client and server, adds the workload's other (filler) threads, and
runs the client call by call: machine breakpoints on the client's labels ``call_start`` and
``call_end`` stop the run at the edges of every call. Over each window the kernel's step
observer (:class:`~lavsim.kernel.observer.KernelObserver`) and the phase observer
(:class:`~lavsim.experiments.phases.PhaseObserver`) count; the window's cycles are the TSC
advance between the two stops, i.e. exactly the cycles of the instructions from ``call_start``
up to (not including) ``call_end``.
"""

from __future__ import annotations

import attrs

from lavsim.cpu.state import EAX, ECX
from lavsim.errors import LavsimError
from lavsim.experiments.mechanisms import Mechanism, Parties
from lavsim.experiments.phases import PhaseObserver, Window
from lavsim.experiments.workload import Workload
from lavsim.kernel.ipc import user_prelude
from lavsim.kernel.observer import KernelStats
from lavsim.kernel.system import LavenderSystem

__all__ = ["CallWindow", "Harness"]


@attrs.frozen
class CallWindow:
    """One call: the kernel observer's statistics, the phase observer's window, and the
    client's EAX and ECX at ``call_end``."""

    stats: KernelStats
    phases: Window
    eax: int
    ecx: int


def _filler(work: int) -> str:
    spin = f"    mov ecx, {work}\n.Lspin:\n    dec ecx\n    jnz .Lspin\n" if work else ""
    return f"main:\n{spin}    mov eax, SYS_YIELD\n    int 0x30\n    jmp main\n"


class Harness:
    """A booted workload for one mechanism, ready to be run call by call."""

    def __init__(self, mech: Mechanism, work: Workload) -> None:
        self.mech = mech
        self.work = work
        system = LavenderSystem(
            profile=work.profile, memory_size=work.memory_size, timer_period=work.timer_period,
            mmu=work.mmu(), global_pages=work.global_pages, board=work.board_spec,
        )  # fmt: skip
        self.system = system
        self.parties: Parties = mech.build(system, work)
        client = self.parties.client
        self.thread = system.create_thread(client, "main")
        others: set[int] = set()
        if work.other_threads:
            group = system.create_group("others")
            filler = system.create_process(
                group, user_prelude() + _filler(work.other_work),
                max_threads=work.other_threads, stack_size=256, name="others",
            )  # fmt: skip
            for _ in range(work.other_threads):
                others.add(system.create_thread(filler, "main").tcb_linear)
        self.observer = PhaseObserver(system, client, frozenset(others),
                                      self.parties.copy_label)
        self.start = client.code_base + client.symbol("call_start")
        self.end = client.code_base + client.symbol("call_end")

    def _run_to(self, address: int) -> None:
        system = self.system
        cpu = system.machine.cpu
        client_ldt = self.parties.client.ldt_selector
        for _ in range(1_000):
            outcome = system.run(max_cycles=20_000_000)
            if outcome.status != "breakpoint":
                state = system.thread_state(self.thread)
                raise LavsimError(
                    f"{self.mech.key} on {self.work}: the run ended with {outcome.status} "
                    f"{outcome.detail} (client: {state.state}, "
                    f"{state.fault.describe() if state.fault else 'no fault'})"
                )
            if system.machine.pc == address and cpu.cpl == 3 and cpu.ldtr.selector == client_ldt:
                return
        raise LavsimError("the client never reached its breakpoint")

    def run(self) -> list[CallWindow]:
        """Run the workload's calls and return one window per call (the first is cold)."""
        system = self.system
        machine = system.machine
        machine.add_breakpoint(self.start)
        machine.add_breakpoint(self.end)
        machine.add_observer(self.observer)
        out = []
        try:
            self._run_to(self.start)
            if machine.hierarchy is not None:
                # Cold: the first call starts with caches that hold nothing of it (see
                # docs/timing.md, "Cold and warm"); the TLBs are as the setup left them.
                machine.hierarchy.clear()
            for k in range(self.work.calls):
                if k:
                    self._run_to(self.start)
                system.reset_stats()
                self.observer.reset()
                self._run_to(self.end)
                regs = machine.cpu.regs
                out.append(CallWindow(system.stats(), self.observer.window(), regs[EAX],
                                      regs[ECX]))
        finally:
            machine.remove_observer(self.observer)
            machine.remove_breakpoint(self.start)
            machine.remove_breakpoint(self.end)
        return out

    def check(self, windows: list[CallWindow]) -> None:
        """Raise :class:`~lavsim.errors.LavsimError` unless every call returned what the
        mechanism expects, every window's phases add up to its cycles, the two observers
        agree row by row, and the server opened the port the client calls."""
        key, parties = self.mech.key, self.parties
        for w in windows:
            if w.eax != parties.result or (parties.status is not None and w.ecx != parties.status):
                raise LavsimError(f"{key}: call returned EAX={w.eax:#x} ECX={w.ecx:#x}")
            total = sum(w.phases.phases.values())
            if total != w.stats.cycles:
                raise LavsimError(f"{key}: phases add up to {total}, not {w.stats.cycles}")
            kernel_rows = {name: row.cycles for name, row in w.stats.rows.items() if row.cycles}
            rows = {k: v for k, v in w.phases.rows.items() if v}
            if rows != kernel_rows or w.phases.idle != w.stats.idle_cycles:
                raise LavsimError(f"{key}: the phase observer's rows differ from the kernel "
                                  "observer's")
        if parties.port is not None:
            info = self.system.port_info(parties.port)
            if info.owner_pid != parties.server.pid:
                raise LavsimError("the message server did not open the expected port")
