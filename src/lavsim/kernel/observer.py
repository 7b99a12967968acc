"""A host-side observer of a running Lavender system: where the cycles go, and kernel events.

The observer runs the machine one step at a time and looks at the CPU between steps; it never
writes guest state, so a run observed and a run not observed give the same cycles, registers
and memory (tests/test_kernel_stats.py checks it). It attributes every cycle to a *row*:

- a kernel routine (the label without a dot that starts the code holding EIP, see
  :class:`~lavsim.kernel.image.KernelImage`), for instructions executed at CPL 0;
- ``"<user>"`` (CPL 3) or ``"<ring 1>"``/``"<ring 2>"`` for instructions of outer rings;
- ``"<trap>"``: an instruction of an outer ring that ended in ring 0 (``int 0x30`` or a
  faulting instruction), its cost including the processor's delivery through the IDT;
- ``"<interrupt>"``: delivery of a hardware interrupt (no instruction executed);
- ``"<idle>"``: cycles skipped while halted waiting for an interrupt.

Events are counted from the addresses executed: kernel entries (a step from an outer ring into
ring 0), system calls (``syscall_entry``), context switches (``switch_to`` with a different
thread), LDT loads and CR3 loads (the ``lldt`` and ``mov cr3`` of ``switch_to``).

The machine has no public per-instruction hook, so :meth:`KernelObserver.run` repeats
:meth:`lavsim.machine.Machine.run`'s loop (devices, idle, limits) around ``cpu.step()``.
"""

from __future__ import annotations

from typing import Any

import attrs

from lavsim.cpu.state import CS, EAX, IF, MASK32
from lavsim.errors import MemoryAccessError
from lavsim.kernel.image import KernelImage
from lavsim.kernel.layout import KERNEL_BASE
from lavsim.machine import Machine, RunResult

ROW_USER = "<user>"
ROW_TRAP = "<trap>"
ROW_INTERRUPT = "<interrupt>"
ROW_IDLE = "<idle>"


@attrs.frozen
class RowStats:
    """Cycles and instructions (steps) attributed to one row."""

    cycles: int
    steps: int


@attrs.frozen
class KernelStats:
    """What the observer counted (since boot or the last :meth:`reset`), plus the MMU's
    counters over the same window.

    ``cycles`` is the TSC advance, ``cycles_by_cpl`` splits the non-idle cycles by the CPL the
    step started at (traps and interrupt deliveries count as CPL 0), ``rows`` by routine.
    """

    cycles: int
    instructions: int
    idle_cycles: int
    cycles_by_cpl: dict[int, int]
    rows: dict[str, RowStats]
    kernel_entries: int
    syscalls: int
    interrupts: int
    context_switches: int
    ldt_loads: int
    cr3_loads: int
    tlb_misses: int
    tlb_flushes: int
    page_walk_reads: int

    def cycles_in(self, *rows: str) -> int:
        """Sum of the cycles of the named rows (absent rows count 0)."""
        return sum(self.rows[r].cycles for r in rows if r in self.rows)

    def table(self) -> str:
        """The statistics as text a person can read."""
        lines = [
            f"cycles {self.cycles:,}  instructions {self.instructions:,}  "
            f"idle {self.idle_cycles:,}",
            "cycles by CPL: " + ", ".join(
                f"CPL {cpl}: {c:,}" for cpl, c in sorted(self.cycles_by_cpl.items())
            ),
            f"kernel entries {self.kernel_entries}, system calls {self.syscalls}, "
            f"interrupts {self.interrupts}, context switches {self.context_switches}, "
            f"LDT loads {self.ldt_loads}, CR3 loads {self.cr3_loads}",
            f"TLB misses {self.tlb_misses}, TLB flushes {self.tlb_flushes}, "
            f"page-walk reads {self.page_walk_reads}",
            f"{'row':24} {'cycles':>12} {'steps':>10}",
        ]
        for name, row in sorted(self.rows.items(), key=lambda kv: -kv[1].cycles):
            lines.append(f"{name:24} {row.cycles:>12,} {row.steps:>10,}")
        return "\n".join(lines)


class KernelObserver:
    """Counts cycles and kernel events of ``machine`` running the kernel ``image``."""

    def __init__(self, machine: Machine, image: KernelImage, k_current: int) -> None:
        self.machine = machine
        self.image = image
        #: Physical address of the kernel variable k_current (read to tell real switches).
        self._k_current_phys = k_current - KERNEL_BASE
        self._switch_to = image.symbol("switch_to")
        self._load_ldt = image.symbol("switch_to.Lload_ldt")
        self._load_cr3 = image.symbol("switch_to.Lload_cr3")
        self._syscall = image.symbol("syscall_entry")
        self._row_cache: dict[int, str] = {}
        self.reset()

    def reset(self) -> None:
        """Start a new measurement window."""
        cpu = self.machine.cpu
        mmu = self.machine.mmu.stats
        self._base_tsc = cpu.tsc
        self._base_instructions = cpu.instructions
        self._base_misses = mmu.misses
        self._base_flushes = mmu.flushes
        self._base_walk_reads = mmu.walk_reads
        self.idle_cycles = 0
        self.by_cpl: dict[int, int] = {}
        self.cycles: dict[str, int] = {}
        self.steps: dict[str, int] = {}
        self.kernel_entries = 0
        self.syscalls = 0
        self.interrupts = 0
        self.context_switches = 0
        #: (from TCB, to TCB) of every context switch, in order.
        self.switch_log: list[tuple[int, int]] = []
        self.ldt_loads = 0
        self.cr3_loads = 0

    def stats(self) -> KernelStats:
        """The counts of the current window."""
        cpu = self.machine.cpu
        mmu = self.machine.mmu.stats
        return KernelStats(
            cycles=cpu.tsc - self._base_tsc,
            instructions=cpu.instructions - self._base_instructions,
            idle_cycles=self.idle_cycles,
            cycles_by_cpl=dict(self.by_cpl),
            rows={k: RowStats(v, self.steps.get(k, 0)) for k, v in self.cycles.items()},
            kernel_entries=self.kernel_entries,
            syscalls=self.syscalls,
            interrupts=self.interrupts,
            context_switches=self.context_switches,
            ldt_loads=self.ldt_loads,
            cr3_loads=self.cr3_loads,
            tlb_misses=mmu.misses - self._base_misses,
            tlb_flushes=mmu.flushes - self._base_flushes,
            page_walk_reads=mmu.walk_reads - self._base_walk_reads,
        )

    def _row(self, pc: int, cpl: int) -> str:
        if cpl == 3:
            return ROW_USER
        if cpl:
            return f"<ring {cpl}>"
        row = self._row_cache.get(pc)
        if row is None:
            row = self.image.routine_at(pc) or f"<kernel {pc:#010x}>"
            self._row_cache[pc] = row
        return row

    def _add(self, row: str, cpl: int, cycles: int) -> None:
        self.cycles[row] = self.cycles.get(row, 0) + cycles
        self.steps[row] = self.steps.get(row, 0) + 1
        self.by_cpl[cpl] = self.by_cpl.get(cpl, 0) + cycles

    def run(self, max_cycles: int | None = None, max_instructions: int | None = None) -> RunResult:
        """Run like :meth:`Machine.run`, observing every step."""
        machine = self.machine
        cpu: Any = machine.cpu
        memory = machine.memory
        timer = machine.timer
        start_cycles = cpu.tsc
        start_instructions = cpu.instructions
        cycle_limit = None if max_cycles is None else start_cycles + max_cycles
        insn_limit = None if max_instructions is None else start_instructions + max_instructions
        seg = cpu.seg
        regs = cpu.regs
        switch_to, load_ldt, load_cr3, syscall = (
            self._switch_to, self._load_ldt, self._load_cr3, self._syscall
        )
        reason = ""
        detail = ""
        try:
            while True:
                if cpu.shutdown:
                    reason = "triple_fault"
                    break
                event = timer.next_event
                if event is not None and cpu.tsc >= event:
                    machine._advance_devices()
                if cpu.halted:
                    t0 = cpu.tsc
                    woke = machine._idle(cycle_limit)
                    if cpu.halted:
                        self.idle_cycles += cpu.tsc - t0
                    else:  # an interrupt was delivered
                        self.interrupts += 1
                        self._add(ROW_INTERRUPT, 0, cpu.tsc - t0)
                    if woke is not None:
                        reason = woke
                        break
                    continue
                if insn_limit is not None and cpu.instructions >= insn_limit:
                    reason = "instruction_limit"
                    break
                if cycle_limit is not None and cpu.tsc >= cycle_limit:
                    reason = "cycle_limit"
                    break
                cpl = cpu.cpl
                t0 = cpu.tsc
                if cpu.irq_pending and cpu.eflags & IF:  # IF is never a lazy flag
                    cpu.step()
                    self.interrupts += 1
                    if cpl:
                        self.kernel_entries += 1
                    self._add(ROW_INTERRUPT, 0, cpu.tsc - t0)
                    continue
                pc = (seg[CS].base + cpu.eip) & MASK32
                if cpl == 0:
                    if pc == switch_to:
                        current = memory.read32(self._k_current_phys)
                        if regs[EAX] != current:
                            self.context_switches += 1
                            self.switch_log.append((current, regs[EAX]))
                    elif pc == load_cr3:
                        self.cr3_loads += 1
                    elif pc == load_ldt:
                        self.ldt_loads += 1
                    elif pc == syscall:
                        self.syscalls += 1
                cpu.step()
                if cpl and not cpu.cpl:
                    self.kernel_entries += 1
                    self._add(ROW_TRAP, 0, cpu.tsc - t0)
                else:
                    self._add(self._row(pc, cpl), cpl, cpu.tsc - t0)
        except MemoryAccessError as error:
            reason = "bus_error"
            detail = str(error)
        report = getattr(cpu, "shutdown_report", None) if reason == "triple_fault" else None
        if reason == "triple_fault" and not detail:
            detail = str(cpu.shutdown)
        return RunResult(
            reason, cpu.tsc - start_cycles, cpu.instructions - start_instructions, report,
            None, detail,
        )  # fmt: skip
