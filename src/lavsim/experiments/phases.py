"""The phase observer: every cycle of a measured call sorted into one phase.

A step observer (:meth:`lavsim.machine.Machine.add_observer`) beside the kernel's
:class:`~lavsim.kernel.observer.KernelObserver`. It sorts each step into the same row the
kernel observer does (one :class:`~lavsim.kernel.observer.StepClassifier`), maps the row to a
phase of :data:`PHASE_ORDER` through :data:`lavsim.kernel.ipc.PHASES`, and

- moves the page-walk cycles of each step (the MMU's walk reads and A/D writes, charged by the
  profile's ``page_walk.*`` costs) into ``TLB refill``;
- moves the cycles the board's memory hierarchy stalled in each step (cache misses, full write
  buffers, locked cycles, page-walk misses included) into ``memory stalls``;
- tells the client's user code (``user stub``) from the server's (``server``) by the LDT loaded;
- gives every step taken while another (filler) thread is current to ``other threads``;
- counts the bytes a call gate copied (from the ring-2 stack depth after the gate) and the
  bytes the client copied into a shared segment (ECX at its ``copy_args`` label).

It reads state only, so observing a run changes none of its cycles. It is a
:class:`~lavsim.machine.BlockObserver`: told once per run of kernel code inside one routine, it
needs one step alone only where k_current changes (switch_to's ``.Lcurrent`` store), as every
step is sorted by the k_current it leaves.
"""

from __future__ import annotations

import attrs

from lavsim.cpu.state import ECX, ESP
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import PHASES as IPC_PHASES
from lavsim.kernel.observer import (
    ROW_FAR_RETURN,
    ROW_GATE_CALL,
    ROW_IDLE,
    ROW_INTERRUPT,
    ROW_USER,
    StepClassifier,
)
from lavsim.kernel.system import LavenderSystem, Process
from lavsim.machine import BlockSplits
from lavsim.mmu import descriptors as d

__all__ = ["PHASE_ORDER", "PhaseObserver", "Window"]

#: Phases of one call, in the order they are printed.
PHASE_ORDER: tuple[str, ...] = (
    "user stub", "trap entry", "argument checks", "ipc queues and headers", "copy in",
    "scheduling", "context switch and CR3", "copy out", "return", "gate call", "server",
    "far return", "other threads", "idle and interrupts", "TLB refill", "memory stalls",
    "other",
)  # fmt: skip

#: Kernel observer rows -> phase (the client's and server's user rows are told apart by the
#: LDT loaded; see PhaseObserver).
_ROW_PHASE: dict[str, str] = {
    row: phase
    for phase, rows in IPC_PHASES.items()
    if phase not in ("user", "return", "idle and interrupts")
    for row in rows
}
_ROW_PHASE.update({
    "trap_return": "return", ROW_GATE_CALL: "gate call", ROW_FAR_RETURN: "far return",
    "<ring 1>": "server", "<ring 2>": "server", ROW_INTERRUPT: "idle and interrupts",
    "schedule_idle": "idle and interrupts", "timer_handler": "idle and interrupts",
})  # fmt: skip


@attrs.frozen
class Window:
    """What the phase observer counted over one window: cycles by phase and by kernel-observer
    row (page walks included, to check against :class:`~lavsim.kernel.observer.KernelStats`),
    idle cycles, far calls through a gate and the bytes copied outside the kernel."""

    phases: dict[str, int]
    rows: dict[str, int]
    idle: int
    gate_calls: int
    gate_bytes: int
    user_copy_bytes: int


class PhaseObserver:
    """A step observer that sorts each step's cycles into :data:`PHASE_ORDER` and counts the
    bytes a call gate or the client's argument copy moved (it reads state only)."""

    def __init__(
        self, system: LavenderSystem, client: Process, others: frozenset[int],
        copy_label: int | None,
    ) -> None:
        self.system = system
        self.machine = system.machine
        self.mmu = system.machine.mmu
        profile = system.machine.cpu.profile
        self._walk_read = profile.table["page_walk.read"]
        self._walk_ad = profile.table["page_walk.ad_write"]
        self._client_ldt = client.ldt_selector
        #: TCB addresses of the other (filler) threads.
        self._others = others
        self._copy_label = copy_label
        self._k_current = system.image.symbol("k_current") - L.KERNEL_BASE
        self._esp2 = L.TSS_PHYS + d.TSS32_ESP2
        self.classify = StepClassifier(system.image)
        self._splits = self.classify.splits(
            frozenset({system.image.symbol("switch_to.Lcurrent")}))
        self.reset()

    def reset(self) -> None:
        """Start a new window."""
        self.phases: dict[str, int] = dict.fromkeys(PHASE_ORDER, 0)
        self.rows: dict[str, int] = {}
        self.idle = 0
        self.gate_bytes = 0
        self.gate_calls = 0
        self.user_copy_bytes = 0
        self._reads = self.mmu.walk_reads
        self._ads = self.mmu.ad_writes
        hierarchy = self.machine.hierarchy
        self._stalls = hierarchy.stall_cycles if hierarchy is not None else 0

    def _stalled(self) -> int:
        hierarchy = self.machine.hierarchy
        if hierarchy is None:
            return 0
        stalls = hierarchy.stall_cycles - self._stalls
        self._stalls = hierarchy.stall_cycles
        return stalls

    def block_splits(self) -> BlockSplits:
        """Routine starts, and the k_current store alone (the BlockObserver protocol)."""
        return self._splits

    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, before: int, after: int, /
    ) -> None:
        self.observe_run(kind, cs, eip, pc, cpl, 1, before, after)

    def observe_run(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, steps: int, before: int,
        after: int, /,
    ) -> None:
        """Sort a run of steps of one row into its phase."""
        cycles = after - before
        mmu = self.mmu
        walk = (mmu.walk_reads - self._reads) * self._walk_read + (
            mmu.ad_writes - self._ads
        ) * self._walk_ad
        self._reads = mmu.walk_reads
        self._ads = mmu.ad_writes
        # Cycles the board's memory hierarchy stalled this step (0 on the ideal board) are
        # their own phase, whatever code made the access.
        stalled = self._stalled()
        self.phases["memory stalls"] += stalled
        walk += stalled
        cpu = self.machine.cpu
        row = self.classify(kind, pc, cpl, cpu.cpl)
        if row is ROW_IDLE:
            self.idle += cycles
            self.phases["idle and interrupts"] += cycles - walk
            self.phases["TLB refill"] += walk - stalled
            return
        self.rows[row] = self.rows.get(row, 0) + cycles
        if row is ROW_GATE_CALL:
            self.gate_calls += 1
            esp2 = self.machine.memory.read32(self._esp2)
            # Inner-ring stack after the gate: SS, ESP, the parameters, CS, EIP.
            self.gate_bytes += esp2 - cpu.regs[ESP] - 16
        elif cpl == 3 and pc == self._copy_label:
            self.user_copy_bytes += 4 * cpu.regs[ECX]
        if self.machine.memory.read32(self._k_current) in self._others:
            phase = "other threads"
        elif row is ROW_USER:
            phase = "user stub" if cpu.ldtr.selector == self._client_ldt else "server"
        else:
            phase = _ROW_PHASE.get(row, "other")
        self.phases[phase] += cycles - walk
        self.phases["TLB refill"] += walk - stalled

    def window(self) -> Window:
        """What was counted since :meth:`reset`."""
        return Window(dict(self.phases), dict(self.rows), self.idle, self.gate_calls,
                      self.gate_bytes, self.user_copy_bytes)
