"""The ``lavsim run`` options that look inside a run of C programs (kept apart from the
command, :mod:`lavsim.programs.commands`, which calls :func:`add_run_options` and hands a
:class:`RunObservation` to :func:`lavsim.programs.run.run_lavender`).

Unlike ``lavsim rpc`` (whose observation options make runs of their own), here the observed
run *is* the run: ``--gdb PORT`` waits for gdb on 127.0.0.1:PORT once the programs are loaded
and lets it drive the run; ``--trace-out FILE.json`` writes its timeline (a track per thread),
``--stats-out FILE`` every counter at its end, ``--trace-instructions FILE`` one symbolic line
per step (``process.function+offset`` from the ELF symbols). All of them only read state: the
run's cycles are those of a run without them.

gdb and segments: code addresses in gdb are linear (CS.base + EIP), so the ELF's functions can
be used by name. For the program's own debug information (``lavsim cc -g``),
:func:`add_symbol_file_command` gives the ``add-symbol-file`` command that places ``.text``,
``.data`` and ``.bss`` at their linear addresses; globals then print by name with their types.
The stack is an offset in SS (a C process's DS = SS): read a local at ``$ss_base + $ebp - N``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from lavsim.errors import ConfigError, LavsimError
from lavsim.gdbstub import GdbServer
from lavsim.kernel.debug import gdb_server
from lavsim.kernel.system import LavenderSystem, Process
from lavsim.observe.itrace import InstructionTrace
from lavsim.observe.options import _port, add_output_files
from lavsim.observe.statsfile import collect, write_stats
from lavsim.observe.timeline import Timeline, TimelineRecorder

__all__ = ["RUN_OPTIONS", "RUN_OPTION_FIELDS", "RunObservation", "add_run_options",
           "add_symbol_file_command"]

#: ConfigError fields of these options -> the option (for the command's one-line errors).
RUN_OPTION_FIELDS = {"port": "--gdb", "trace_out": "--trace-out", "stats_out": "--stats-out",
                     "trace_instructions": "--trace-instructions",
                     "max_events": "--trace-max-events"}

_FIELDS = ("gdb", "trace_out", "stats_out", "trace_instructions")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--gdb``, ``--trace-out``, ``--trace-max-events``, ``--stats-out`` and
    ``--trace-instructions`` to the ``run`` parser."""
    group = parser.add_argument_group("looking inside the run")
    group.add_argument("--gdb", type=_port, default=None, metavar="PORT",
                       help="wait for gdb on 127.0.0.1:PORT once the programs are loaded")
    add_output_files(group, "of the whole run")


def add_symbol_file_command(path: str, process: Process) -> str | None:
    """gdb's ``add-symbol-file`` command placing the ELF ``path``'s ``.text``, ``.data`` and
    ``.bss`` at their linear addresses in ``process`` (None if the file has no ``.text``)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        sections = {s.name: s["sh_addr"] for s in elf.iter_sections()
                    if s.name in (".text", ".data", ".bss")}
    if ".text" not in sections:
        return None
    words = [f"add-symbol-file {path} {process.code_base + sections['.text']:#x}"]
    for name in (".data", ".bss"):
        if name in sections:
            words.append(f"-s {name} {process.data_base + sections[name]:#x}")
    return " ".join(words)


class RunObservation:
    """What ``lavsim run``'s observation options ask for, started on the loaded system
    (:meth:`start`) and written out at the end (:meth:`finish`)."""

    def __init__(self, args: argparse.Namespace, paths: Sequence[str],
                 report: Callable[[str], None] | None = None) -> None:
        self.gdb: int | None = args.gdb
        self.trace_out: str | None = args.trace_out
        self.stats_out: str | None = args.stats_out
        self.trace_instructions: str | None = args.trace_instructions
        self.max_events: int = args.trace_max_events
        self.paths = list(paths)
        self.say = report or (lambda text: print(text, file=sys.stderr))
        for field in ("trace_out", "stats_out", "trace_instructions"):
            path = getattr(self, field)
            if path is not None and not Path(path).resolve().parent.is_dir():
                raise ConfigError(field, f"no directory for {path!r}")
        if self.max_events < 1:
            raise ConfigError("max_events", "must be >= 1")
        self.system: LavenderSystem | None = None
        self._timeline: Timeline | None = None
        self._recorder: TimelineRecorder | None = None
        self._itrace: InstructionTrace | None = None
        self._itrace_file: TextIO | None = None
        self._server: GdbServer | None = None

    @staticmethod
    def wanted(args: argparse.Namespace) -> bool:
        """True when any observation option was given."""
        return any(getattr(args, name, None) is not None for name in _FIELDS)

    @property
    def kernel_stats(self) -> bool:
        """Whether the system needs the kernel observer (for the statistics file)."""
        return self.stats_out is not None

    def start(self, system: LavenderSystem, processes: Sequence[Process]) -> None:
        """Attach the recorders and, with ``--gdb``, wait for gdb (it resumes the run)."""
        self.system = system
        if self.trace_out is not None:
            self._timeline = Timeline(max_events=self.max_events)
            self._recorder = self._timeline.attach(system, "lavsim run")
        if self.trace_instructions is not None:
            self._itrace_file = Path(self.trace_instructions).open("w")  # noqa: SIM115
            sink = self._itrace_file

            def write(line: str) -> None:
                sink.write(line + "\n")

            self._itrace = InstructionTrace(system, write)
            system.machine.add_observer(self._itrace)
        if self.gdb is not None:
            self._server = gdb_server(system, self.gdb, wait=False, timeout=None)
            port = self._server.port
            self.say(f"lavsim run: waiting for gdb on 127.0.0.1:{port} "
                     f"(gdb -ex 'target remote 127.0.0.1:{port}')")
            for path, process in zip(self.paths, processes, strict=False):
                try:
                    line = add_symbol_file_command(path, process)
                except (OSError, LavsimError, ValueError):
                    line = None
                if line is not None:
                    self.say(f"lavsim run: {process.name} (pid {process.pid}) debug info: "
                             f"{line}")
            self._server.wait_for_gdb()

    def finish(self, status: int | None) -> None:
        """Stop recording and write the files (also after a failed run: ``status`` None)."""
        if self._itrace is not None and self.system is not None:
            self.system.machine.remove_observer(self._itrace)
        if self._itrace_file is not None:
            self._itrace_file.close()
            self.say(f"lavsim run: instruction trace ({self._itrace.lines if self._itrace else 0}"
                     f" lines) in {self.trace_instructions}")
        if self._recorder is not None:
            self._recorder.detach()
        if self._server is not None:
            self._server.finish(status or 0)
        if self._timeline is not None and self.trace_out is not None:
            self._timeline.write(self.trace_out)
            counts = ", ".join(f"{n} {k}" for k, n in sorted(self._timeline.counts().items()))
            self.say(f"lavsim run: timeline in {self.trace_out}: "
                     f"{len(self._timeline.events)} events ({counts})"
                     + ("; truncated at --trace-max-events" if self._timeline.truncated
                        else ""))
        if self.stats_out is not None and self.system is not None:
            stats = collect(self.system, prefix="run")
            write_stats(self.stats_out, stats)
            self.say(f"lavsim run: {len(stats)} counters in {self.stats_out}")


def _observation(args: argparse.Namespace) -> RunObservation | None:
    return RunObservation(args, args.programs) if RunObservation.wanted(args) else None


#: What :func:`lavsim.programs.commands.run_main` takes to offer these options.
RUN_OPTIONS = (add_run_options, _observation, RUN_OPTION_FIELDS)
