"""A host-side observer of a running Lavender system: where the cycles go, and kernel events.

The observer is called by :meth:`lavsim.machine.Machine.run` after every step and looks at the
CPU between steps; it never writes guest state, so a run observed and a run not observed give
the same cycles, registers and memory (tests/kernel/test_observer_hook.py checks it for step
observers, tests/kernel/test_audit_guards.py for this one). It attributes every cycle to a *row*:

- a kernel routine (the label without a dot that starts the code holding EIP, see
  :class:`~lavsim.kernel.image.KernelImage`), for instructions executed at CPL 0;
- ``"<user>"`` (CPL 3) or ``"<ring 1>"``/``"<ring 2>"`` for instructions of outer rings;
- ``"<trap>"``: an instruction of an outer ring that ended in ring 0 (``int 0x30`` or a
  faulting instruction), its cost including the processor's delivery through the IDT;
- ``"<interrupt>"``: delivery of a hardware interrupt (no instruction executed);
- ``"<gate call>"`` / ``"<far return>"``: an instruction of an outer ring that moved to a more
  / less privileged outer ring (a far CALL through a call gate into a migrated procedure, its
  RETF back);
- ``"<idle>"``: cycles skipped while halted waiting for an interrupt.

Events are counted from the addresses executed: kernel entries (a step from an outer ring into
ring 0), system calls (``syscall_entry``), context switches (``switch_to`` with a different
thread), LDT loads and CR3 loads (the ``lldt`` and ``mov cr3`` of ``switch_to``).

The observer is a :class:`~lavsim.machine.BlockObserver`: :meth:`KernelObserver.run` adds it to
the machine for the length of one :meth:`lavsim.machine.Machine.run` and counts from the
machine's reports, of one step or of a run of ring-0 steps inside one routine (cut at every
routine start; each event address above comes as a step of its own, read right after it), so
the CPU keeps running its blocks under observation.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from lavsim.cpu.state import EAX, ECX
from lavsim.kernel.image import KernelImage
from lavsim.kernel.layout import (
    GDT_LDT_FIRST,
    GDT_OWNER_PHYS,
    KERNEL_BASE,
    LDT_ENTRIES,
    LDT_FIRST_SHARED,
    LDT_OWNER_PHYS,
)
from lavsim.machine import STEP_INSTRUCTION, STEP_INTERRUPT, BlockSplits, Machine, RunResult

ROW_USER = "<user>"
ROW_TRAP = "<trap>"
ROW_INTERRUPT = "<interrupt>"
ROW_IDLE = "<idle>"
ROW_GATE_CALL = "<gate call>"
ROW_FAR_RETURN = "<far return>"
#: Context switches :attr:`KernelObserver.switch_log` keeps (the latest ones).
SWITCH_LOG_MAX = 4096


#: Rows of instructions that stayed in an outer ring, by CPL.
_RING_ROWS = {1: "<ring 1>", 2: "<ring 2>", 3: ROW_USER}



class CodeOwners:
    """Which process's code a code selector names, with the loaded LDT: the pid read from the
    kernel's slot-owner tables exactly as migrate.s's ``frame_owner`` reads them (a shared or
    GDT slot's owner, else the LDT's process), memoised per (LDT, CS) until :meth:`clear`."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._cache: dict[int, int] = {}

    def clear(self) -> None:
        self._cache.clear()

    def __call__(self, cs: int) -> int:
        ldt = self.machine.cpu.ldtr.selector
        key = (ldt << 16) | cs
        pid = self._cache.get(key)
        if pid is None:
            ldt_pid = max((ldt >> 3) - GDT_LDT_FIRST, 0)
            index = cs >> 3
            owner = 0
            if not cs & 4:
                owner = self.machine.memory.read8(GDT_OWNER_PHYS + index)
            elif index >= LDT_FIRST_SHARED:
                owner = self.machine.memory.read8(LDT_OWNER_PHYS + ldt_pid * LDT_ENTRIES + index)
            pid = owner or ldt_pid
            self._cache[key] = pid
        return pid

class StepClassifier:
    """Sorts one step of the machine into a row (see the module docstring): the kernel routine
    holding EIP, ``<user>``, ``<ring 1>``/``<ring 2>``, ``<trap>``, ``<gate call>``, ``<far
    return>``, ``<interrupt>`` or ``<idle>``. Every observer that reports rows (this module's
    :class:`KernelObserver`, the experiments' phase observer) sorts with it, so their rows agree.

    Called after the step, with the CPL the step started at (``cpl``) and the CPL it left
    (``new_cpl``); it reads nothing else of the machine.
    """

    def __init__(self, image: KernelImage) -> None:
        self.image = image
        self._routines: dict[int, str] = {}

    def routine(self, pc: int) -> str:
        """The row of a ring-0 instruction at linear address ``pc``."""
        row = self._routines.get(pc)
        if row is None:
            row = self.image.routine_at(pc) or f"<kernel {pc:#010x}>"
            self._routines[pc] = row
        return row

    def splits(self, singles: frozenset[int] = frozenset()) -> BlockSplits:
        """Runs this classifier sorts alike: CPL-0 code of the image from its first routine
        on, cut at every routine start (plus the observer's ``singles``)."""
        starts = self.image.routine_starts
        return BlockSplits(frozenset(starts), singles, starts[0] if starts else self.image.end,
                           self.image.end)

    def __call__(self, kind: str, pc: int, cpl: int, new_cpl: int) -> str:
        if kind == STEP_INSTRUCTION:
            if not cpl:
                return self.routine(pc)
            if not new_cpl:
                return ROW_TRAP
            if new_cpl != cpl:
                return ROW_GATE_CALL if new_cpl < cpl else ROW_FAR_RETURN
            return _RING_ROWS[cpl]
        return ROW_INTERRUPT if kind == STEP_INTERRUPT else ROW_IDLE


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
    #: Cycles by the pid of the process whose code ran (from CS: a thread inside a migrated
    #: procedure counts for the procedure's process; see migrate.s); 0 = the kernel.
    cycles_by_process: dict[int, int] = attrs.field(factory=dict)
    #: Message copies by the IPC service (entries of ipc.s's ipc_copy_in / ipc_copy_out, the
    #: REP MOVSD copies user -> kernel buffer -> user) and the bytes they moved.
    copies_in: int = 0
    copies_out: int = 0
    bytes_copied_in: int = 0
    bytes_copied_out: int = 0
    #: Cycles the board's memory hierarchy stalled (0 on the ideal board), in total, by row
    #: and by process; they are part of the rows' and processes' cycles above.
    memory_stalls: int = 0
    stalls_by_row: dict[str, int] = attrs.field(factory=dict)
    stalls_by_process: dict[int, int] = attrs.field(factory=dict)
    #: L4-style long messages (issue 14: l4ipc.s's l4_copy_long, sender's segment -> the
    #: receiver's buffer, once) and the bytes they moved.
    copies_direct: int = 0
    bytes_copied_direct: int = 0

    @property
    def messages_copied(self) -> int:
        """Message copies in either direction (and direct ones)."""
        return self.copies_in + self.copies_out + self.copies_direct

    @property
    def bytes_copied(self) -> int:
        """Bytes moved by message copies."""
        return self.bytes_copied_in + self.bytes_copied_out + self.bytes_copied_direct

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
            f"message copies in {self.copies_in} ({self.bytes_copied_in} bytes), "
            f"out {self.copies_out} ({self.bytes_copied_out} bytes)",
            "cycles by process: " + ", ".join(
                f"{'kernel' if pid == 0 else f'pid {pid}'}: {c:,}"
                for pid, c in sorted(self.cycles_by_process.items())
            ),
            f"{'row':24} {'cycles':>12} {'steps':>10}",
        ]
        if self.memory_stalls:
            lines.insert(-1, f"memory stalls {self.memory_stalls:,}, by process: " + ", ".join(
                f"{'kernel' if pid == 0 else f'pid {pid}'}: {c:,}"
                for pid, c in sorted(self.stalls_by_process.items())))
        for name, row in sorted(self.rows.items(), key=lambda kv: -kv[1].cycles):
            stalled = self.stalls_by_row.get(name, 0)
            extra = f"  ({stalled:,} stalled on memory)" if stalled else ""
            lines.append(f"{name:24} {row.cycles:>12,} {row.steps:>10,}{extra}")
        return "\n".join(lines)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 64) <= value < 1 << 64:
        raise ValueError(f"observer.{name}: must be an int, not {value!r}")


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
        # LRPC switches domain without switching threads (lrpc.s).
        self._lrpc_ldt = image.symbol("lrpc_domain.Ldm_ldt")
        self._lrpc_cr3 = image.symbol("lrpc_domain.Ldm_cr3")
        self._copy_direct = image.symbol("l4_copy_long")
        self._syscall = image.symbol("syscall_entry")
        self._copy_in = image.symbol("ipc_copy_in")
        self._copy_out = image.symbol("ipc_copy_out")
        self.classify = StepClassifier(image)
        self._owner = CodeOwners(machine)
        # Block observation: the event addresses are read right after their instruction.
        events = (self._switch_to, self._load_ldt, self._load_cr3, self._lrpc_ldt,
                  self._lrpc_cr3, self._copy_direct, self._syscall, self._copy_in,
                  self._copy_out)
        self._splits = self.classify.splits(frozenset(events))
        # Everything set so far is fixed by the machine and the image; what reset() and the
        # counting set is the observer's state (get_state).
        self._fixed = frozenset(vars(self)) | {"_fixed"}
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
        #: (from TCB, to TCB) of the latest SWITCH_LOG_MAX context switches, in order (bounded:
        #: a long run must not grow host memory without end).
        self.switch_log: deque[tuple[int, int]] = deque(maxlen=SWITCH_LOG_MAX)
        self.ldt_loads = 0
        self.cr3_loads = 0
        self.by_process: dict[int, int] = {}
        self.copies_in = self.copies_out = self.copies_direct = 0
        self.bytes_copied_in = self.bytes_copied_out = self.bytes_copied_direct = 0
        self.stalls_by_row: dict[str, int] = {}
        self.stalls_by_process: dict[int, int] = {}
        self._base_stalls = self._last_stalls = self._stall_count()

    # --- checkpoints ----------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The counters of the current window as JSON data (each attribute the observer counts
        with: ints, maps as [key, value] pairs, the switch log as pairs), for a system
        snapshot file."""
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            if name in self._fixed:
                continue
            if isinstance(value, int):
                out[name] = value
            elif isinstance(value, dict):
                out[name] = [[k, v] for k, v in value.items()]
            elif isinstance(value, deque):
                out[name] = [list(item) for item in value]
            else:
                raise TypeError(f"observer attribute {name} ({type(value).__name__}) has no "
                                "snapshot form")
        return out

    def check_state(self, state: object) -> None:
        """``ValueError`` naming the field unless ``state`` is a :meth:`get_state` of an
        observer like this one (the same counters, each well typed)."""
        mine = self.get_state()
        if not isinstance(state, dict) or set(state) != set(mine):
            raise ValueError(f"observer: must have exactly the counters {sorted(mine)}")
        for name, value in state.items():
            live = getattr(self, name)
            if isinstance(live, int):
                _check_count(name, value)
                continue
            if not isinstance(value, list):
                raise ValueError(f"observer.{name}: must be a list")
            width = 2
            if isinstance(live, deque) and live.maxlen is not None and len(value) > live.maxlen:
                raise ValueError(f"observer.{name}: more than {live.maxlen} entries")
            for k, item in enumerate(value):
                if not isinstance(item, list) or len(item) != width:
                    raise ValueError(f"observer.{name}[{k}]: must be a pair")
                if isinstance(live, dict):
                    if not isinstance(item[0], int | str) or isinstance(item[0], bool):
                        raise ValueError(f"observer.{name}[{k}]: a key is an int or a str")
                else:
                    _check_count(f"{name}[{k}]", item[0])
                _check_count(f"{name}[{k}]", item[1])
            if isinstance(live, dict) and len({repr(item[0]) for item in value}) != len(value):
                raise ValueError(f"observer.{name}: a key twice")

    def set_state(self, state: dict[str, Any]) -> None:
        """Install a state :meth:`check_state` accepted."""
        for name, value in state.items():
            live = getattr(self, name)
            if isinstance(live, int):
                setattr(self, name, value)
            elif isinstance(live, dict):
                setattr(self, name, {k: v for k, v in value})
            else:
                setattr(self, name, deque((tuple(item) for item in value), maxlen=live.maxlen))

    def _stall_count(self) -> int:
        hierarchy = self.machine.hierarchy
        return hierarchy.stall_cycles if hierarchy is not None else 0

    def _stalled(self, row: str, pid: int) -> None:
        """Attribute the stall cycles of the step just made to ``row`` and ``pid``."""
        now = self._stall_count()
        stalled = now - self._last_stalls
        if stalled:
            self._last_stalls = now
            self.stalls_by_row[row] = self.stalls_by_row.get(row, 0) + stalled
            self.stalls_by_process[pid] = self.stalls_by_process.get(pid, 0) + stalled

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
            cycles_by_process=dict(self.by_process),
            copies_in=self.copies_in, copies_out=self.copies_out,
            bytes_copied_in=self.bytes_copied_in, bytes_copied_out=self.bytes_copied_out,
            memory_stalls=self._stall_count() - self._base_stalls,
            stalls_by_row=dict(self.stalls_by_row),
            stalls_by_process=dict(self.stalls_by_process),
            copies_direct=self.copies_direct, bytes_copied_direct=self.bytes_copied_direct,
        )

    def _add(self, row: str, cpl: int, cycles: int, steps: int = 1) -> None:
        self.cycles[row] = self.cycles.get(row, 0) + cycles
        self.steps[row] = self.steps.get(row, 0) + steps
        self.by_cpl[cpl] = self.by_cpl.get(cpl, 0) + cycles

    def run(self, max_cycles: int | None = None, max_instructions: int | None = None) -> RunResult:
        """Run like :meth:`Machine.run`, observing every step."""
        machine = self.machine
        # Slot owners change only between runs (the boot loader's sharing setup).
        self._owner.clear()
        machine.add_observer(self)
        try:
            return machine.run(max_cycles, max_instructions)
        finally:
            machine.remove_observer(self)

    def block_splits(self) -> BlockSplits:
        """Runs are cut at routine starts; each event address is a run of its own (the
        :class:`~lavsim.machine.BlockObserver` protocol)."""
        return self._splits

    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, cycles_before: int,
        cycles_after: int, /,
    ) -> None:
        """One step of the machine (the :class:`~lavsim.machine.StepObserver` protocol)."""
        self.observe_run(kind, cs, eip, pc, cpl, 1, cycles_before, cycles_after)

    def observe_run(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, steps: int,
        cycles_before: int, cycles_after: int, /,
    ) -> None:
        """``steps`` steps of one row (the :class:`~lavsim.machine.BlockObserver` protocol:
        an event address always comes as a run of one step)."""
        cycles = cycles_after - cycles_before
        if kind == STEP_INSTRUCTION:
            if cpl == 0:
                if pc == self._switch_to:
                    # switch_to begins with pushes: after its first instruction EAX still
                    # names the next thread and k_current the previous one.
                    current = self.machine.memory.read32(self._k_current_phys)
                    target = self.machine.cpu.regs[EAX]
                    if target != current:
                        self.context_switches += 1
                        self.switch_log.append((current, target))
                elif pc == self._load_cr3 or pc == self._lrpc_cr3:
                    self.cr3_loads += 1
                elif pc == self._load_ldt or pc == self._lrpc_ldt:
                    self.ldt_loads += 1
                elif pc == self._syscall:
                    self.syscalls += 1
                elif pc == self._copy_in:  # ECX = the byte count (kept by the first insn)
                    self.copies_in += 1
                    self.bytes_copied_in += self.machine.cpu.regs[ECX]
                elif pc == self._copy_out:
                    self.copies_out += 1
                    self.bytes_copied_out += self.machine.cpu.regs[ECX]
                elif pc == self._copy_direct:  # L4 long message: sender -> receiver, once
                    self.copies_direct += 1
                    self.bytes_copied_direct += self.machine.cpu.regs[ECX]
            pid = self._owner(cs) if cpl else 0
            self.by_process[pid] = self.by_process.get(pid, 0) + cycles
            row = self.classify(kind, pc, cpl, self.machine.cpu.cpl)
            if row is ROW_TRAP:
                self.kernel_entries += 1
                self._add(ROW_TRAP, 0, cycles)
            else:
                self._add(row, cpl, cycles, steps)
            self._stalled(row, pid)
        elif kind == STEP_INTERRUPT:
            self.by_process[0] = self.by_process.get(0, 0) + cycles
            self.interrupts += 1
            if cpl:
                self.kernel_entries += 1
            self._add(ROW_INTERRUPT, 0, cycles)
            self._stalled(ROW_INTERRUPT, 0)
        else:
            self.idle_cycles += cycles
            self._stalled(ROW_IDLE, 0)
