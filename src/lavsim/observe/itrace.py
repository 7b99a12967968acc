"""Symbolic instruction traces: one line per step of a Lavender system, with names.

Each line of an :class:`InstructionTrace` (a step observer) gives::

    cycle  CPL  process  thread  routine+offset  disassembly  cycles  reason

``cycle`` is the TSC before the step; ``process`` the process whose code ran (from CS, as the
kernel observer finds it; ``kernel`` at CPL 0); ``thread`` the current Lavender thread (``-``
for none); ``routine+offset`` the kernel routine, or ``process.label+offset`` of the nearest
label of the process's image; ``cycles`` what the step was charged, and ``reason`` what beyond
the instruction's own cost it includes: ``tlb miss xN`` (page walks), ``dirty walk``, ``trap``
(delivery through the IDT into ring 0), ``gate`` / ``far return`` (a privilege change in the
outer rings), ``interrupt`` (a hardware interrupt delivered), ``idle`` (HLT skipped ahead).

Filters (:class:`TraceFilter`): a linear address range, routine names (kernel routines or
process labels, by prefix), process pids, CPLs; a line is written when every given filter
accepts the step. ``limit`` bounds the lines written.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection

import attrs

from lavsim.cpu.disasm import disassemble_one
from lavsim.errors import ConfigError
from lavsim.kernel import layout as L
from lavsim.kernel.observer import (
    ROW_FAR_RETURN,
    ROW_GATE_CALL,
    ROW_TRAP,
    CodeOwners,
    StepClassifier,
)
from lavsim.kernel.system import LavenderSystem, Process
from lavsim.machine import STEP_INSTRUCTION, STEP_INTERRUPT

__all__ = ["InstructionTrace", "TraceFilter", "parse_range"]

HEADER = (f"{'cycle':>10} {'cpl':>3} {'process':<12} {'thr':>3} {'where':<32} "
          f"{'instruction':<34} {'cyc':>5} reason")


def parse_range(text: str) -> tuple[int, int]:
    """``START-END`` or ``START+LENGTH`` (integers in any base Python reads) -> [start, end)."""
    try:
        if "+" in text:
            start, length = (int(v, 0) for v in text.split("+", 1))
            return start, start + length
        start, end = (int(v, 0) for v in text.split("-", 1))
    except ValueError:
        raise ConfigError("range", f"START-END or START+LENGTH, not {text!r}") from None
    if end <= start:
        raise ConfigError("range", f"{text!r} is empty")
    return start, end


@attrs.frozen
class TraceFilter:
    """Which steps to write (every filter given must accept the step)."""

    address: tuple[int, int] | None = None
    routines: Collection[str] = ()
    pids: Collection[int] = ()
    cpls: Collection[int] = ()

    def __attrs_post_init__(self) -> None:
        for cpl in self.cpls:
            if cpl not in (0, 1, 2, 3):
                raise ConfigError("cpl", f"CPLs are 0..3, not {cpl}")


class InstructionTrace:
    """A step observer writing one symbolic line per step to ``write`` (see the module)."""

    def __init__(self, system: LavenderSystem, write: Callable[[str], None],
                 selection: TraceFilter | None = None, limit: int | None = None) -> None:
        self.system = system
        self.machine = system.machine
        self.write = write
        self.filter = selection or TraceFilter()
        self.limit = limit
        self.lines = 0
        self.classify = StepClassifier(system.image)
        self._k_current = system.image.symbol("k_current") - L.KERNEL_BASE
        self._labels: dict[int, tuple[list[int], list[str]]] = {}
        self._owner = CodeOwners(self.machine)
        stats = self.machine.mmu.stats
        self._misses, self._dirty = stats.misses, stats.dirty_walks
        write(HEADER)

    def attach(self) -> InstructionTrace:
        """Start observing the machine."""
        self.machine.add_observer(self)
        return self

    def detach(self) -> None:
        """Stop observing."""
        self.machine.remove_observer(self)


    def _label(self, process: Process, offset: int) -> str:
        table = self._labels.get(process.pid)
        if table is None:
            pairs = sorted((v, k) for k, v in process.symbols.items()
                           if 0 <= v < process.code_size and not k.isupper())
            table = ([v for v, _ in pairs], [k for _, k in pairs])
            self._labels[process.pid] = table
        k = bisect.bisect_right(table[0], offset) - 1
        if k < 0:
            return f"{process.name}+{offset:#x}"
        return f"{process.name}.{table[1][k]}+{offset - table[0][k]:#x}"

    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, cycles_before: int,
        cycles_after: int, /,
    ) -> None:
        if self.limit is not None and self.lines >= self.limit:
            return
        stats = self.machine.mmu.stats
        misses = stats.misses - self._misses
        dirty = stats.dirty_walks - self._dirty
        self._misses, self._dirty = stats.misses, stats.dirty_walks
        sel = self.filter
        if sel.cpls and cpl not in sel.cpls:
            return
        if sel.address is not None and not sel.address[0] <= pc < sel.address[1]:
            return
        pid = self._owner(cs) if cpl else 0
        if sel.pids and pid not in sel.pids:
            return
        if cpl == 0:
            routine = self.system.image.routine_at(pc)
            start = self.system.image.symbol(routine) if routine else pc
            where = f"{routine}+{pc - start:#x}" if routine else f"{pc:#010x}"
            process_name = "kernel"
        else:
            process = self.system.processes.get(pid)
            where = self._label(process, eip) if process is not None else f"{pc:#010x}"
            process_name = process.name if process is not None else f"pid {pid}"
        if sel.routines and not any(where.startswith(r) for r in sel.routines):
            return
        tcb = self.machine.memory.read32(self._k_current)
        tid = (tcb - L.TCB_LINEAR) // L.TCB_SIZE if tcb >= L.TCB_LINEAR else 0
        reasons = []
        if kind == STEP_INSTRUCTION:
            code = self.machine.peek(pc, 15)
            text = disassemble_one(code, eip).text if code else "<unmapped>"
            row = self.classify(kind, pc, cpl, self.machine.cpu.cpl)
            if row is ROW_TRAP:
                reasons.append("trap")
            elif row is ROW_GATE_CALL:
                reasons.append("gate")
            elif row is ROW_FAR_RETURN:
                reasons.append("far return")
        elif kind == STEP_INTERRUPT:
            text = "<interrupt delivery>"
            reasons.append("interrupt")
        else:
            text = "<hlt: idle>"
            reasons.append("idle")
        if misses:
            reasons.append(f"tlb miss x{misses}")
        if dirty:
            reasons.append("dirty walk")
        thread = str(tid) if 0 < tid < L.MAX_THREADS else "-"
        self.write(f"{cycles_before:>10} {cpl:>3} {process_name:<12.12} {thread:>3} "
                   f"{where:<32} {text:<34} {cycles_after - cycles_before:>5} "
                   f"{', '.join(reasons)}".rstrip())
        self.lines += 1
