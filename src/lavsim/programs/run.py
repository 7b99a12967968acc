"""``lavsim run``: run ELF programs built by ``lavsim cc``, as Lavender processes or bare.

Under the kernel (:func:`run_lavender`) each program becomes a process
(:meth:`lavsim.kernel.system.LavenderSystem.create_elf_process`) in the group the caller names
(by default all in one group) or in the resident space, with one thread at its entry point;
the run ends when every thread has ended, or when the first program's threads have (servers
left waiting for requests do not keep it going). The *status* is the exit code of the first
program's first thread (128 + the vector when a fault killed it). Bare (:func:`run_bare`) the
program is a flat CPL-0 image linked with ``lavsim cc --bare``: no kernel, console port 0xE9,
exit by HLT with the status in EAX.

**Procedures** (:func:`link_procedures`): every function a program declares with
``LAV_EXPORT`` is exported for migration and imported into every other program of the
exporter's group (a resident export needs no import), and a program that declares
``LAV_IMPORT(fn)`` gets the address of another program's ``fn`` in its ``fn__lav_import``
(from another group ``lav_proc_call`` answers ``LAV_E_UNREACHABLE``, as for any other group);
an address found through the name server works the same way.

**Measured regions**: a program calls ``lav_mark(1)`` and ``lav_mark(2)`` (``lavender.h``);
the runner puts a breakpoint on the runtime's ``__lav_mark_hit`` and reads the counters there,
so :attr:`ProgramRun.marked` is exactly the instructions and cycles from the first instruction
of ``__lav_mark_hit(1)`` to the first of ``__lav_mark_hit(2)`` (a mark costs the same few
instructions each time, bare or under the kernel, and nothing in Python is charged).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from attrs import field, frozen

from lavsim.cpu import x87
from lavsim.cpu.state import EAX, ESP, SS
from lavsim.elf import ElfProgram
from lavsim.errors import ConfigError
from lavsim.kernel.system import LavenderSystem, Process, RunOutcome, Thread
from lavsim.machine import Machine, MachineConfig
from lavsim.programs.procedures import export_c_procedure

MARK_SYMBOL = "__lav_mark_hit"
#: Bare layout: stack top and the stack's size below it (the heap ends there).
BARE_MEMORY = 16 << 20
BARE_STACK = 0x10000
#: Under the kernel the run is resumed every so many cycles to see whether the first
#: program's threads have all ended (a stop at a cycle limit and a resume change nothing).
CHECK_EVERY = 200_000


@frozen
class ProgramRun:
    """What a run printed and how it ended."""

    status: int
    console: str
    cycles: int
    instructions: int
    reason: str
    detail: str
    marked: tuple[int, int] | None  # (instructions, cycles) between mark 1 and mark 2
    faults: tuple[str, ...] = ()
    #: Every measured region by number: region k lies between marks 2k-1 and 2k.
    regions: dict[int, tuple[int, int]] = field(factory=dict)

    def summary(self) -> str:
        """The statistics lines ``lavsim run`` prints on stderr."""
        lines = [f"lavsim run: {self.reason}, status {self.status}, {self.instructions} "
                 f"instructions, {self.cycles} cycles"]
        for k, (insns, cycles) in sorted(self.regions.items()):
            name = "marked region" if k == 1 else f"marked region {k}"
            lines.append(f"{name}: {insns} instructions, {cycles} cycles")
        if self.marked is not None and 1 not in self.regions:
            lines.append(f"marked region: {self.marked[0]} instructions, {self.marked[1]} "
                         "cycles")
        lines += [f"  {f}" for f in self.faults]
        if self.detail and self.reason not in ("done", "halted"):
            lines.append(f"  {self.detail}")
        return "\n".join(lines)


class RunObserver(Protocol):
    """Something that looks inside a :func:`run_lavender` run (``lavsim run --gdb``,
    ``--trace-out`` ...: :class:`lavsim.observe.runopts.RunObservation`); it only reads."""

    @property
    def kernel_stats(self) -> bool:
        """Whether the system needs its kernel observer (``observe=True``)."""
        ...

    def start(self, system: LavenderSystem, processes: Sequence[Process]) -> None:
        """Called once the programs are loaded, before the first instruction."""

    def finish(self, status: int | None) -> None:
        """Called when the run is over (``status`` None if it failed)."""


class _Marks:
    """Breakpoints on ``__lav_mark_hit`` and the counters read at marks 1 and 2."""

    def __init__(self, machine: Machine, addresses: Sequence[int]) -> None:
        self.machine = machine
        self.addresses = tuple(addresses)
        self.at: dict[int, tuple[int, int]] = {}
        for a in self.addresses:
            machine.add_breakpoint(a)

    def hit(self) -> None:
        """At a mark: record the counters, then step over the breakpoint."""
        m = self.machine
        cpu = m.cpu
        linear = (cpu.seg[SS].base + cpu.regs[ESP] + 4) & 0xFFFFFFFF
        raw = m.peek(linear, 4)
        which = struct.unpack("<I", raw)[0] if raw is not None else 0
        self.at.setdefault(which, (cpu.instructions, cpu.tsc))
        pc = m.pc
        m.remove_breakpoint(pc)
        m.step()
        m.add_breakpoint(pc)

    def regions(self) -> dict[int, tuple[int, int]]:
        """Region k: from mark 2k-1 to mark 2k, for every pair both marks of which were hit."""
        out = {}
        for start in sorted(w for w in self.at if w % 2 == 1):
            if start + 1 in self.at:
                (i1, c1), (i2, c2) = self.at[start], self.at[start + 1]
                out[(start + 1) // 2] = (i2 - i1, c2 - c1)
        return out

    def region(self) -> tuple[int, int] | None:
        if 1 in self.at and 2 in self.at:
            (i1, c1), (i2, c2) = self.at[1], self.at[2]
            return i2 - i1, c2 - c1
        return None


ENTRY_SUFFIX = "__lav_entry"
IMPORT_SUFFIX = "__lav_import"


def link_procedures(system: LavenderSystem, programs: Sequence[ElfProgram],
                    processes: Sequence[Process]) -> dict[str, str]:
    """Export every ``LAV_EXPORT`` function of ``programs`` and fill every ``LAV_IMPORT``
    (see the module docstring); returns import -> exporting program for what was linked.
    A function exported by two programs, or imported with none exporting it, is refused."""
    exports = {}
    for program, process in zip(programs, processes, strict=True):
        for name in sorted(n for n in program.symbols if n.endswith(ENTRY_SUFFIX)):
            fn = name[: -len(ENTRY_SUFFIX)]
            if fn in exports:
                raise ConfigError("programs", f"{fn!r} is exported by two programs")
            exports[fn] = (process, export_c_procedure(system, process, program, fn))
    for program in programs:
        for name in sorted(n for n in program.symbols if n.endswith(IMPORT_SUFFIX)):
            fn = name[: -len(IMPORT_SUFFIX)]
            if fn not in exports:
                raise ConfigError("programs", f"{program.name} imports {fn!r}, which no "
                                  "program exports (LAV_EXPORT)")
    # Every other member of the exporter's group imports (an address found through the name
    # server must work too); a resident export needs no import.
    for owner, export in exports.values():
        if export.resident:
            continue
        for process in processes:
            if process is not owner and process.group is owner.group:
                system.sharing.import_procedure(process, export)
    linked = {}
    for program, process in zip(programs, processes, strict=True):
        for name in sorted(n for n in program.symbols if n.endswith(IMPORT_SUFFIX)):
            fn = name[: -len(IMPORT_SUFFIX)]
            owner, export = exports[fn]
            system.sharing.write_address(process, program.symbols[name], export.address())
            linked[fn] = owner.name
    return linked


def run_lavender(
    programs: Sequence[ElfProgram],
    *,
    profile: str = "i486",
    board: str = "ideal",
    groups: Sequence[int] | None = None,
    max_threads: int = 4,
    heap_size: int = 0x10000,
    max_cycles: int | None = None,
    name_server: bool = False,
    observer: RunObserver | None = None,
) -> ProgramRun:
    """Run ``programs`` under the kernel. ``groups``: one entry per program, the number of
    its group (1, 2 ...; 0 for the resident space); by default all share group 1. A process
    is named after its file (``sorting`` for ``build/sorting.elf``). ``board``: the memory
    system (:mod:`lavsim.boards`; default ideal memory). ``name_server``: start the name
    server (port 0, a resident process) before the programs. ``observer`` looks on."""
    if not programs:
        raise ConfigError("programs", "give at least one program")
    placement = list(groups) if groups is not None else [1] * len(programs)
    if len(placement) != len(programs):
        raise ConfigError("groups", f"{len(placement)} groups for {len(programs)} programs")
    if any(not isinstance(g, int) or g < 0 for g in placement):
        raise ConfigError("groups", "group numbers are ints >= 0 (0: resident)")
    system = LavenderSystem(profile, observe=observer is not None and observer.kernel_stats,
                            board=board)
    if name_server:
        system.start_name_server()
    made: dict[int, object] = {}
    processes = []
    for program, g in zip(programs, placement, strict=True):
        group = None
        if g:
            if g not in made:
                made[g] = system.create_group(f"group{g}")
            group = made[g]
        process = system.create_elf_process(
            group, program, max_threads=max_threads, heap_size=heap_size,  # type: ignore[arg-type]
            name=Path(program.name).stem or program.name)
        processes.append(process)
    link_procedures(system, programs, processes)
    threads = [system.create_thread(p, p.symbols.get("_start", 0)) for p in processes]
    marks = _Marks(system.machine, [
        p.code_base + p.symbols[MARK_SYMBOL] for p in processes if MARK_SYMBOL in p.symbols
    ])
    if observer is None:
        return _run(system, processes, threads, marks, max_cycles)
    observer.start(system, processes)
    run = None
    try:
        run = _run(system, processes, threads, marks, max_cycles)
    finally:
        observer.finish(run.status if run is not None else None)
    return run


def _run(system: LavenderSystem, processes: Sequence[Process], threads: Sequence[Thread],
         marks: _Marks, max_cycles: int | None) -> ProgramRun:
    start_cycles = system.machine.cpu.tsc
    start_insns = system.machine.cpu.instructions
    while True:
        spent = system.machine.cpu.tsc - start_cycles
        left = CHECK_EVERY if max_cycles is None else min(CHECK_EVERY, max_cycles - spent)
        outcome: RunOutcome = system.run(max_cycles=max(0, left))
        if outcome.status == "breakpoint":
            marks.hit()
            continue
        if outcome.status != "cycle_limit":
            break
        if max_cycles is not None and system.machine.cpu.tsc - start_cycles >= max_cycles:
            break
        if all(system.thread_state(t).state == "dead" for t in processes[0].threads):
            # the first program is done; servers still waiting for requests do not hold it
            outcome = RunOutcome("done", outcome.cycles, outcome.instructions,
                                 "the first program's threads have ended", None,
                                 outcome.faulted, outcome.blocked)
            break
    first = system.thread_state(threads[0])
    if first.fault is not None:
        status = 128 + first.fault.vector
    else:
        status = first.exit_code
    return ProgramRun(
        status=status, console=system.console, reason=outcome.status,
        cycles=system.machine.cpu.tsc - start_cycles,
        instructions=system.machine.cpu.instructions - start_insns,
        detail=outcome.detail, marked=marks.region(), regions=marks.regions(),
        faults=tuple(f.describe() for f in outcome.faulted),
    )  # fmt: skip


def run_bare(program: ElfProgram, *, profile: str = "i486", board: str = "ideal",
             max_cycles: int | None = None) -> ProgramRun:
    """Run a program linked with ``lavsim cc --bare`` on a bare flat machine at CPL 0."""
    machine = Machine(MachineConfig(profile=profile, memory_size=BARE_MEMORY, board=board))
    data = bytearray(program.data_image())
    heap_end = BARE_MEMORY - BARE_STACK
    top = max(program.code_offset + len(program.code), program.data_offset + len(data))
    if top > heap_end:
        raise ConfigError("program", f"the program ({top:#x} bytes) does not fit a bare "
                                     f"machine's {heap_end:#x}")
    if "__lav_heap_end" in program.symbols:
        at = program.symbols["__lav_heap_end"] - program.data_offset
        data[at : at + 4] = struct.pack("<I", heap_end)
    machine.load(program.code_offset, program.code)
    machine.load(program.data_offset, bytes(data))
    machine.setup_flat_protected_mode(program.entry, stack_top=BARE_MEMORY - 16)
    marks = _Marks(machine, [program.symbols[MARK_SYMBOL]] if MARK_SYMBOL in program.symbols
                   else [])
    cpu = machine.cpu
    start_cycles, start_insns = cpu.tsc, cpu.instructions
    while True:
        spent = cpu.tsc - start_cycles
        left = None if max_cycles is None else max(0, max_cycles - spent)
        result = machine.run(max_cycles=left)
        if result.reason != "breakpoint":
            break
        marks.hit()
    faults: tuple[str, ...] = ()
    if result.reason == "halted":
        status = cpu.regs[EAX]
        if status & 0x80000000:
            status -= 1 << 32
    else:
        # No IDT on a bare machine: an exception ends the run (a triple fault).
        status = 128 + 6
        code = machine.peek(machine.pc, 4)
        named = x87.describe(code) if code is not None else None
        where = f"at {machine.pc:#010x}"
        faults = (f"{result.reason} {where}: {named} (lavsim models no FPU)" if named
                  else f"{result.reason} {where}: {result.detail}",)
    return ProgramRun(
        status=status, console=machine.console, reason=result.reason,
        cycles=cpu.tsc - start_cycles, instructions=cpu.instructions - start_insns,
        detail=result.detail, marked=marks.region(), regions=marks.regions(),
        faults=faults,
    )  # fmt: skip
