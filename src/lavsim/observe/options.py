"""The ``lavsim rpc`` options that look inside a run (kept apart from :mod:`lavsim.cli`).

``--trace-out``, ``--stats-out``, ``--trace-instructions`` and ``--gdb`` observe their own runs
of the workload, before the table is measured: one harness per observed mechanism
(``--observe``, default every mechanism of the table; ``--gdb`` and ``--trace-instructions``
take the first) on the first profile and the first size of the table, ``--calls`` calls. The
table itself is measured exactly as without these options. The statistics file has, per
mechanism, the machine's, the MMU's and the TLBs' counters since boot, the kernel observer's
counters of the last call's window, and the cycles of every call.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import attrs

from lavsim.errors import ConfigError, LavsimError
from lavsim.experiments.harness import Harness
from lavsim.experiments.mechanisms import MECHANISMS, Mechanism, mechanism
from lavsim.experiments.workload import Workload
from lavsim.kernel.debug import gdb_server
from lavsim.models import ModelSpec
from lavsim.observe.itrace import InstructionTrace, TraceFilter, parse_range
from lavsim.observe.statsfile import Stat, collect, write_stats
from lavsim.observe.timeline import Timeline

__all__ = ["OPTION_FIELDS", "add_observe_options", "add_plot_option", "add_verbosity",
           "check_plot", "observe_rpc", "setup_logging", "wanted"]

#: ConfigError fields of these options -> the option (for the CLI's one-line errors).
OPTION_FIELDS = {"port": "--gdb", "max_events": "--trace-max-events", "range": "--trace-range",
                 "cpl": "--trace-cpl", "trace_call": "--trace-call", "mechanism": "--observe",
                 "trace_out": "--trace-out",
                 "stats_out": "--stats-out", "trace_instructions": "--trace-instructions",
                 "plot": "--plot"}


def _keys(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise argparse.ArgumentTypeError("needs at least one mechanism")
    return keys


def _cpls(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated CPLs 0..3, not {text!r}") from None
    if not values or any(not 0 <= v <= 3 for v in values):
        raise argparse.ArgumentTypeError(f"comma-separated CPLs 0..3, not {text!r}")
    return values


def _range(text: str) -> tuple[int, int]:
    try:
        return parse_range(text)
    except LavsimError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a TCP port 1..65535, not {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port 1..65535, not {text!r}")
    return value


def add_output_files(group: argparse._ArgumentGroup, traced: str) -> None:
    """The observation files ``lavsim rpc`` and ``lavsim run`` share: ``--trace-out``,
    ``--trace-max-events``, ``--stats-out`` and ``--trace-instructions`` (``traced``: what the
    instruction trace covers, for the help text)."""
    group.add_argument("--trace-out", metavar="FILE.json", default=None,
                       help="write a timeline trace (Chrome trace-event JSON, opens in "
                       "Perfetto; 1 trace microsecond = 1 cycle)")
    group.add_argument("--trace-max-events", type=int, default=500_000, metavar="N",
                       help="stop recording new trace events after N (default 500000)")
    group.add_argument("--stats-out", metavar="FILE", default=None,
                       help="write every counter (gem5-like text, or JSON for *.json)")
    group.add_argument("--trace-instructions", metavar="FILE", default=None,
                       help=f"write a symbolic instruction trace {traced}")


def add_observe_options(parser: argparse.ArgumentParser) -> None:
    """Add the observation options to the ``rpc`` parser."""
    group = parser.add_argument_group("looking inside (their own runs, before the table)")
    group.add_argument("--observe", type=_keys, default=None, metavar="MECHANISMS",
                       help="mechanisms to observe (default: every mechanism of the table)")
    add_output_files(group, "of the calls (the first observed mechanism)")
    group.add_argument("--trace-call", type=int, default=None, metavar="K",
                       help="instruction trace: only call K (0: the first, cold call)")
    group.add_argument("--trace-range", type=_range, default=None, metavar="START-END",
                       help="instruction trace: linear addresses START-END or START+LEN")
    group.add_argument("--trace-routine", type=_keys, default=None, metavar="NAMES",
                       help="instruction trace: routines or process labels (prefixes)")
    group.add_argument("--trace-cpl", type=_cpls, default=None, metavar="CPLS",
                       help="instruction trace: CPLs, e.g. 0 or 1,2,3")
    group.add_argument("--trace-pid", type=_cpls_or_pids, default=None, metavar="PIDS",
                       help="instruction trace: pids of the processes whose code ran")
    group.add_argument("--gdb", type=_port, default=None, metavar="PORT",
                       help="wait for gdb on 127.0.0.1:PORT and let it drive the first "
                       "observed mechanism's run")


def add_verbosity(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """Add ``-v/--verbose`` (repeatable): -v logs boot, processes, threads and faults, -vv
    also every gdb packet and each observed run. Silent by default."""
    parser.add_argument("-v", "--verbose", action="count",
                        default=0 if top else argparse.SUPPRESS,
                        help="log to standard error: -v boot, processes, threads, faults; "
                        "-vv more")


def setup_logging(verbose: int) -> None:
    """Send the ``lavsim`` loggers to standard error at the level ``verbose`` asks for."""
    logger = logging.getLogger("lavsim")
    for old in [h for h in logger.handlers if getattr(h, "lavsim_cli", False)]:
        logger.removeHandler(old)  # a second main() in one process must not log twice
    if verbose <= 0:
        logger.setLevel(logging.NOTSET)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.lavsim_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)


def add_plot_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--plot FILE`` (rpc and sweep)."""
    parser.add_argument("--plot", metavar="FILE.png|svg", default=None,
                        help="also draw the figures into FILE (needs matplotlib: "
                        "pip install 'lavsim[plot]')")


def check_plot(args: argparse.Namespace) -> None:
    """Refuse a bad ``--plot`` path, or a missing matplotlib, before anything runs."""
    if getattr(args, "plot", None) is None:
        return
    from lavsim.observe import plots

    plots.check_plot_path(args.plot)
    plots._pyplot()


def _cpls_or_pids(text: str) -> list[int]:
    try:
        values = [int(v, 0) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, not {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("needs at least one pid")
    return values


def wanted(args: argparse.Namespace) -> bool:
    """True when any observation option was given."""
    return any(getattr(args, name, None) is not None for name in
               ("trace_out", "stats_out", "trace_instructions", "gdb"))


def _window_filter(trace: InstructionTrace, start: int, end: int,
                   only: int | None = None) -> Callable[..., None]:
    """Pass only the steps of the calls (from ``call_start`` up to ``call_end``) to ``trace``;
    with ``only``, of call number ``only`` alone (0: the first, cold call)."""
    active = [False]
    calls = [0]

    def observer(kind: str, cs: int, eip: int, pc: int, cpl: int, before: int,
                 after: int, /) -> None:
        if pc == start and cpl == 3:
            active[0] = only is None or calls[0] == only
            calls[0] += 1
        elif pc == end and cpl == 3:
            active[0] = False
        if active[0]:
            trace(kind, cs, eip, pc, cpl, before, after)
        else:
            # Keep the trace's per-step counter baselines current.
            stats = trace.machine.mmu.stats
            trace._misses, trace._dirty = stats.misses, stats.dirty_walks

    return observer


def observe_rpc(args: argparse.Namespace, base: Workload, profile: ModelSpec, size: int,
                report: Callable[[str], None] | None = None) -> None:
    """Run the observed mechanisms with the options of ``args`` (see the module)."""
    say = report or (lambda text: print(text, file=sys.stderr))
    for field in ("trace_out", "stats_out", "trace_instructions"):
        path = getattr(args, field)
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise ConfigError(field, f"no directory for {path!r}")
    if args.trace_call is not None and not 0 <= args.trace_call < args.calls:
        raise ConfigError("trace_call", f"call {args.trace_call} of {args.calls} calls "
                                        f"(0..{args.calls - 1})")
    keys = args.observe or list(MECHANISMS)
    mechs: list[Mechanism] = [mechanism(k) for k in keys]
    work = attrs.evolve(base, profile=profile, size=size, calls=args.calls)
    timeline = (Timeline(max_events=args.trace_max_events)
                if args.trace_out is not None else None)
    stats: list[Stat] = []
    itrace_file = None
    for index, mech in enumerate(mechs):
        logging.getLogger("lavsim.observe").debug("observing %s on %s", mech.key, work)
        harness = Harness(mech, work)
        system = harness.system
        label = f"{mech.label} {system.machine.model.name} {size} B"
        recorder = timeline.attach(system, label) if timeline is not None else None
        observers = []
        if index == 0 and args.trace_instructions is not None:
            itrace_file = Path(args.trace_instructions).open("w")  # noqa: SIM115
            selection = TraceFilter(address=args.trace_range, routines=args.trace_routine or (),
                                    pids=args.trace_pid or (), cpls=args.trace_cpl or ())
            sink = itrace_file

            def write(line: str, sink: TextIO = sink) -> None:
                sink.write(line + "\n")

            trace = InstructionTrace(system, write, selection)
            observers.append(_window_filter(trace, harness.start, harness.end,
                                            args.trace_call))
        for observer in observers:
            system.machine.add_observer(observer)
        server = None
        if index == 0 and args.gdb is not None:
            server = gdb_server(system, args.gdb, wait=False, timeout=None)
            say(f"lavsim rpc: {label}: waiting for gdb on 127.0.0.1:{server.port} "
                f"(gdb -ex 'target remote 127.0.0.1:{server.port}')")
            server.wait_for_gdb()
        try:
            windows = harness.run()
        finally:
            for observer in observers:
                system.machine.remove_observer(observer)
            if recorder is not None:
                recorder.detach()
            if server is not None:
                server.finish(0)
        harness.check(windows)
        if index == 0 and itrace_file is not None:
            itrace_file.close()
            say(f"lavsim rpc: instruction trace of {label} in {args.trace_instructions}")
        if args.stats_out is not None:
            stats.extend(collect(system, prefix=mech.key.replace("-", "_")))
            for k, w in enumerate(windows):
                stats.append(Stat(f"{mech.key.replace('-', '_')}.call{k}.cycles",
                                  w.stats.cycles, f"cycles of call {k} (call 0 is cold)"))
    if timeline is not None:
        timeline.write(args.trace_out)
        counts = ", ".join(f"{n} {k}" for k, n in sorted(timeline.counts().items()))
        say(f"lavsim rpc: timeline of {len(mechs)} mechanism(s) in {args.trace_out}: "
            f"{len(timeline.events)} events ({counts})"
            + ("; truncated at --trace-max-events" if timeline.truncated else ""))
    if args.stats_out is not None:
        write_stats(args.stats_out, stats)
        say(f"lavsim rpc: {len(stats)} counters in {args.stats_out}")
