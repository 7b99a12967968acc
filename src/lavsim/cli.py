"""The ``lavsim`` command (also ``python -m lavsim``).

    lavsim rpc   [--profile i486|pentium|both] [--cpu-model FILE.toml] [--sizes 0,16,64,...]
                 [--board NAME] [--calls N] [--tlb ENTRIES] [--memory BYTES]
                 [--timer-period CYCLES] [--no-remote] [--compare] [--format table|csv|json]
                 [--jobs N]
    lavsim sweep size|threads|working-set|tlb [--profile ...] [--cpu-model FILE] [--values ...]
                 [--board NAME] [--mechanisms ...] [--size B] [--working-set P] [--threads K]
                 [--calls N] [--format table|csv|json] [--progress|--no-progress]
    lavsim boards
                 [--jobs N | --engine dask --scheduler ADDRESS] [--store FILE]
    lavsim sweep EXPERIMENT.toml [--format ...] [--jobs N | --engine dask ...] [--store FILE]
    lavsim results STORE [--format csv|json]
    lavsim cycles [--profile P] [--cpu-model FILE] [--board B] [--iterations N] [--warmup N]
                  [--format table|json]
                  [--reg NAME=VALUE] [--mem ADDRESS=HEX] FILE|-
    lavsim cc    [--bare] [gcc options] SOURCES... [-o OUT.elf]   (C for lavsim: gcc -m32)
    lavsim run   [--profile i486|pentium] [--bare] [--groups G,...] [--threads N] [--heap B]
                 PROGRAM.elf...
    lavsim --version

``--board``: the memory system (``lavsim boards`` lists them); by default each CPU model runs
on its default board (:data:`lavsim.boards.DEFAULT_BOARDS`), named in the table header;
``--board ideal`` gives the figures of ideal memory (every access hits). A board named without
``--profile`` runs its own CPU model.

Tables go to standard output; progress (on long runs, or when asked) to standard error. A bad
argument gets one line on standard error naming the option, and exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

import attrs

from lavsim import __version__
from lavsim.boards import BOARDS, DEFAULT_BOARDS
from lavsim.errors import ConfigError, LavsimError
from lavsim.experiments import published
from lavsim.experiments.engines import default_jobs, make_engine, run_experiment
from lavsim.experiments.experiment import builtin_experiment, load_experiment
from lavsim.experiments.mechanisms import MECHANISMS, VARIANTS, mechanism
from lavsim.experiments.progress import reporter
from lavsim.experiments.rpc import DEFAULT_SIZES, rpc_table
from lavsim.experiments.store import Store, StoreError, export, read_results
from lavsim.experiments.sweeps import SWEEPS, run_sweep
from lavsim.experiments.workload import (
    DEFAULT,
    DEFAULT_MEMORY,
    DEFAULT_TIMER_PERIOD,
    PROFILES,
    Workload,
)
from lavsim.models import CpuModel, ModelFileError, load_model_file
from lavsim.observe.options import (
    OPTION_FIELDS,
    add_observe_options,
    add_plot_option,
    add_verbosity,
    check_plot,
    observe_rpc,
    setup_logging,
    wanted,
)
from lavsim.observe.plots import plot_rpc, plot_sweep

#: The option behind each field a ConfigError may name, by command (library names -> ours).
_OPTIONS = {
    "rpc": {
        "profile": "--profile", "profiles": "--profile", "size": "--sizes", "sizes": "--sizes",
        "calls": "--calls", "tlb_entries": "--tlb", "memory_size": "--memory",
        "timer_period": "--timer-period", "format": "--format", "board": "--board",
        "compare": "--compare", "jobs": "--jobs", **OPTION_FIELDS,
    },
    "sweep": {
        "profile": "--profile", "profiles": "--profile", "values": "--values",
        "mechanism": "--mechanisms", "mechanisms": "--mechanisms", "size": "--size",
        "other_threads": "--threads", "other_work": "--thread-work",
        "working_set": "--working-set", "calls": "--calls", "format": "--format",
        "plot": "--plot", "board": "--board",
        "jobs": "--jobs", "engine": "--engine", "scheduler": "--scheduler", "knob": "SWEEP",
    },
    "results": {"format": "--format"},
    "cycles": {"profile": "--profile", "iterations": "--iterations", "warmup": "--warmup",
               "board": "--board",
               "file": "FILE",
               "source": "FILE", "registers": "--reg"},
}  # fmt: skip
#: The sweep options that shape a built-in sweep (an experiment file names its own axes).
_KNOB_OPTIONS = {"values": "--values", "mechanisms": "--mechanisms", "size": "--size",
                 "threads": "--threads", "thread_work": "--thread-work",
                 "working_set": "--working-set", "calls": "--calls", "profile": "--profile",
                 "models": "--cpu-model"}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _ints(text: str) -> list[int]:
    """A comma-separated list of distinct integers, at least one."""
    items = [v.strip() for v in text.split(",")]
    if not any(items):
        raise argparse.ArgumentTypeError("needs at least one integer")
    try:
        values = [int(v, 0) for v in items if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of integers, not {text!r}")\
            from None
    twice = [v for k, v in enumerate(values) if v in values[:k]]
    if twice:
        raise argparse.ArgumentTypeError(
            f"{', '.join(map(str, dict.fromkeys(twice)))} given more than once")
    return values


def _profiles(text: str) -> list[str]:
    if text in ("both", "all"):
        return list(PROFILES)
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names or any(name not in PROFILES for name in names):
        raise argparse.ArgumentTypeError(f"profiles are {', '.join(PROFILES)} or both")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a profile named twice in {text!r}")
    return names


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _bytes(text: str) -> int:
    """A byte count: a plain integer, or one with K, M or G (KiB, MiB, GiB: powers of 2)."""
    match = re.fullmatch(r"\s*(0x[0-9a-f]+|\d+)\s*(?:([kmg])(?:ib)?)?\s*", text, re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"a byte count such as 16M, 64MiB or 16777216, not {text!r}")
    return int(match[1], 0) * _UNITS[(match[2] or "").lower()]


def _mechanism_keys(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",")]
    if not any(keys):
        raise argparse.ArgumentTypeError("needs at least one mechanism")
    return [k for k in keys if k]


class _Progress:
    """Progress on standard error: one updating line on a terminal, else nothing unless
    forced (then one line per step)."""

    def __init__(self, enabled: bool | None) -> None:
        self.tty = sys.stderr.isatty()
        self.enabled = self.tty if enabled is None else enabled

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self.enabled:
            return
        text = f"[{done}/{total}] {what}"
        if self.tty:
            end = "\n" if done >= total else ""
            sys.stderr.write(f"\r{text:<78}{end}")
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _model_file(path: str) -> CpuModel:
    """A CPU model read from a TOML model file (format: docs/timing.md, "CPU models")."""
    try:
        return load_model_file(path)
    except ModelFileError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _board(name: str) -> str:
    if name.lower() not in BOARDS and name != DEFAULT:
        raise argparse.ArgumentTypeError(f"unknown board {name!r}; known: {', '.join(BOARDS)}")
    return name.lower()


def _preset_board(name: str) -> str:
    if name.lower() not in BOARDS:
        raise argparse.ArgumentTypeError(f"unknown board {name!r}; known: {', '.join(BOARDS)}")
    return name.lower()


def boards_text() -> str:
    """What ``lavsim boards`` prints: every preset with its figures and their sources."""
    lines = []
    for board in BOARDS.values():
        default = [cpu for cpu, name in DEFAULT_BOARDS.items() if name == board.name]
        mark = f"  [default for {', '.join(default)}]" if default else ""
        lines.append(f"{board.name}{mark}")
        lines.append(f"    {board.description}")
        lines.append(f"    {board.summary()}")
        for figure, source in board.sources:
            lines.append(f"      {figure}: {source}")
        lines.append("")
    lines.append("Sources: docs/sources.md. Rules of the hierarchy: docs/timing.md.")
    return "\n".join(lines)


def _add_common(parser: argparse.ArgumentParser, default_profiles: str) -> None:
    parser.add_argument("--profile", type=_profiles, default=None,
                        help=f"i486, pentium or both (default {default_profiles}, or none "
                        "when --cpu-model is given)")
    parser.add_argument("--cpu-model", type=_model_file, action="append", default=[],
                        metavar="FILE", dest="models",
                        help="a CPU model file (TOML: a base model and the costs or TLBs it "
                        "changes; see docs/timing.md); may be given more than once")
    parser.add_argument("--calls", type=int, default=8,
                        help="calls per measurement; the first is cold (default 8)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    add_verbosity(parser)
    parser.add_argument("--board", type=_board, default=DEFAULT, metavar="NAME",
                        help="the memory system: " + ", ".join(BOARDS) + " (default: each "
                        "CPU model's default board; ideal = every access hits)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="progress on standard error (default: when it is a terminal)")
    group.add_argument("--no-progress", dest="progress", action="store_false")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lavsim",
        description="Cycle-level IA-32 + Lavender simulator: inter-process call costs.",
    )
    parser.add_argument("--version", action="version", version=f"lavsim {__version__}")
    add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)
    rpc = sub.add_parser(
        "rpc", help="cycles per call of every mechanism (migration, message RPC, remote)",
        description="Measure one call by every mechanism at several argument sizes.",
    )
    _add_common(rpc, "both")
    rpc.add_argument("--sizes", type=_ints, default=list(DEFAULT_SIZES),
                     help="argument/message bytes, distinct multiples of 4 in 0..4096 "
                     "(default 0,16,64,256,1024,4096)")
    rpc.add_argument("--tlb", type=int, default=None, metavar="ENTRIES",
                     help="entries of the data (i486: unified) TLB, 4-way, a multiple of 4 "
                     "(default: the profile's TLBs)")
    rpc.add_argument("--memory", type=_bytes, default=DEFAULT_MEMORY, metavar="BYTES",
                     help="installed memory, e.g. 16M, 64MiB or a byte count (default 16M)")
    rpc.add_argument("--timer-period", type=int, default=DEFAULT_TIMER_PERIOD,
                     metavar="CYCLES", help="interval-timer period in cycles (default 0: off)")
    rpc.add_argument("--no-remote", dest="remote", action="store_false",
                     help="leave out the two-host rows (remote call, shipped procedure)")
    rpc.add_argument("--jobs", type=int, default=None, metavar="N",
                     help=f"worker processes the measurements are spread over (default: all "
                     f"cores, here {default_jobs()}; 1: all in this process); the output is "
                     "the same for every N")
    add_observe_options(rpc)
    add_plot_option(rpc)
    sub.add_parser("boards", help="the boards (memory systems) and their sources",
                   description="List the board presets, their figures and sources.")
    # Listed for --help only: main() hands `cc` and `run` their raw arguments before parsing.
    sub.add_parser("cc", help="compile C for lavsim (gcc -m32 with the runtime): "
                   "lavsim cc [--bare] [gcc options] SOURCES -o OUT.elf", add_help=False)
    sub.add_parser("run", help="run ELF programs as Lavender processes (or --bare): "
                   "lavsim run --help", add_help=False)
    rpc.add_argument("--compare", action="store_true",
                     help="add the published figures (L4, Palladium, LRPC) beside the "
                     "simulated ones, computed from this run (table format)")
    keys = [*MECHANISMS, *VARIANTS]
    sweep = sub.add_parser(
        "sweep", help="mechanism costs against one knob, or over an experiment file's grid",
        description="Run an experiment file (a grid of axes), or sweep one knob: " + "; ".join(
            f"{s.name}: {s.title} (default {','.join(map(str, s.values))})"
            for s in SWEEPS.values()),
    )
    sweep.add_argument("knob", metavar="SWEEP",
                       help=f"a built-in sweep ({', '.join(sorted(SWEEPS))}) or an experiment "
                       "file EXPERIMENT.toml (format: docs/design.md, \"Experiments, "
                       "engines and the result store\")")
    _add_common(sweep, "i486")
    sweep.add_argument("--values", type=_ints, default=None,
                       help="the knob's values, distinct")
    sweep.add_argument("--mechanisms", type=_mechanism_keys, default=None,
                       help="comma-separated, of " + ", ".join(keys) + " (default: the first "
                       f"{len(MECHANISMS)})")
    sweep.add_argument("--size", type=int, default=None,
                       help="argument bytes (other sweeps; default 0)")
    sweep.add_argument("--threads", type=int, default=None,
                       help="other runnable threads (default 0)")
    sweep.add_argument("--thread-work", type=int, default=None,
                       help="loop iterations each other thread runs before it yields")
    sweep.add_argument("--working-set", type=int, default=None,
                       help="server pages read per call (default 0; 4 for the tlb sweep)")
    add_plot_option(sweep)
    sweep.add_argument("--jobs", type=int, default=None, metavar="N",
                       help=f"local worker processes (default: all cores, here "
                       f"{default_jobs()}; 1: serial)")
    sweep.add_argument("--engine", choices=("local", "dask"), default="local",
                       help="local processes (default) or a Dask cluster (lavsim[dist])")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="the Dask scheduler, e.g. tcp://10.0.0.1:8786 (with --engine dask)")
    sweep.add_argument("--store", default=None, metavar="FILE",
                       help="an SQLite result store: points found there are not measured "
                       "again, each measured point is added as it finishes")
    # Unset means "the experiment's own" (the built-in sweep's file, or the given file's).
    sweep.set_defaults(calls=None, format=None)
    results = sub.add_parser(
        "results", help="export a result store",
        description="Every point of a result store (lavsim sweep --store) as CSV or JSON.",
    )
    results.add_argument("store", metavar="STORE")
    results.add_argument("--format", choices=("csv", "json"), default="csv")
    cycles = sub.add_parser(
        "cycles", help="cycles of a code snippet, per instruction (pipe, issue, stalls)",
        description="Assemble an Intel-syntax snippet and measure it on a bare machine: one "
        "warm pass, or per iteration of a loop that branches back to its start.",
    )
    cycles.add_argument("file", metavar="FILE|-", help="the snippet ('-': standard input)")
    cycles.add_argument("--profile", default="pentium",
                        help="a CPU model name (default pentium)")
    cycles.add_argument("--cpu-model", type=_model_file, default=None, metavar="FILE",
                        dest="model", help="a CPU model file instead of --profile")
    cycles.add_argument("--iterations", type=int, default=10,
                        help="loop iterations measured after the warm-up (default 10)")
    cycles.add_argument("--warmup", type=int, default=1,
                        help="loop iterations run before the measured ones (default 1)")
    cycles.add_argument("--format", choices=("table", "json"), default="table")
    cycles.add_argument("--reg", type=_register, action="append", default=[],
                        metavar="NAME=VALUE", help="preset a 32-bit register, e.g. ebx=0x110040 "
                        "(may be repeated)")
    cycles.add_argument("--mem", type=_memory_bytes, action="append", default=[],
                        metavar="ADDRESS=HEX", help="preset memory bytes, e.g. "
                        "0x110000=01000000 (may be repeated)")
    cycles.add_argument("--board", type=_preset_board, default="ideal", metavar="NAME",
                        help="the memory system: " + ", ".join(BOARDS) + " (default ideal: "
                        "every access hits; a board with caches shows misses as 'memory' "
                        "stalls)")
    return parser


def _register(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    name = name.strip().lower()
    from lavsim.cpu.isa import REG32

    if not sep or name not in REG32:
        raise argparse.ArgumentTypeError(f"NAME=VALUE with a 32-bit register name, not {text!r}")
    try:
        number = int(value, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the value of {text!r} is not an integer") from None
    if not 0 <= number <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{text!r}: the value must fit in 32 bits")
    return name, number


def _memory_bytes(text: str) -> tuple[int, bytes]:
    address, sep, data = text.partition("=")
    try:
        where = int(address, 0)
        payload = bytes.fromhex(data)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ADDRESS=HEXBYTES, not {text!r}") from None
    if not sep or not payload or not 0 <= where < (4 << 20) - len(payload):
        raise argparse.ArgumentTypeError(
            f"ADDRESS=HEXBYTES inside the machine's 4 MiB, not {text!r}")
    return where, payload


def _cycles(args: argparse.Namespace) -> str:
    from lavsim.experiments.cycles import measure

    if args.file == "-":
        source = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as handle:
                source = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError("file", f"cannot read {args.file!r}: {error}") from None
    model = args.model if args.model is not None else args.profile
    report = measure(source, model, iterations=args.iterations, warmup=args.warmup,
                     registers=dict(args.reg), memory=dict(args.mem), board=args.board)
    return report.render(args.format)


def _machines(args: argparse.Namespace) -> list[str | CpuModel]:
    """What to measure: the --profile models, then the --cpu-model files' models (a board
    named alone brings its own CPU model)."""
    default = "both" if args.command == "rpc" else "i486"
    board = BOARDS.get(args.board)
    if args.profile is None and not args.models and board is not None and board.cpu:
        return [board.cpu]
    names = args.profile if args.profile is not None else (
        [] if args.models else _profiles(default))
    return [*names, *args.models]


def _sweep(args: argparse.Namespace) -> str:
    """``lavsim sweep``: everything is checked before an engine or a store is opened."""
    given = {o: opt for o, opt in _KNOB_OPTIONS.items() if getattr(args, o) not in (None, [])}
    if args.knob in SWEEPS:
        experiment = builtin_experiment(args.knob)
        args.profile = _machines(args)
        mechs = None if args.mechanisms is None else [mechanism(k) for k in args.mechanisms]
        fields = {"size": args.size, "other_threads": args.threads,
                  "other_work": args.thread_work, "working_set": args.working_set,
                  "calls": args.calls, "board": args.board}
        base = attrs.evolve(experiment.base,
                            **{k: v for k, v in fields.items() if v is not None})
        run = functools.partial(run_sweep, args.knob, profiles=args.profile,
                                values=args.values, mechanisms=mechs, base=base)
    else:
        if not args.knob.endswith(".toml") and not os.path.exists(args.knob):
            raise ConfigError("knob", f"a built-in sweep ({', '.join(sorted(SWEEPS))}) or an "
                              f"experiment file (.toml), not {args.knob!r}")
        if given:
            option = next(iter(given.values()))
            raise ConfigError(option, "only for the built-in sweeps: an experiment file "
                              "names its own axes and workload")
        experiment = load_experiment(args.knob)
        run = functools.partial(run_experiment, experiment)
    if args.engine == "dask":
        if args.jobs is not None:
            raise ConfigError("jobs", "for the local engine; a Dask cluster has its workers")
    elif args.scheduler is not None:
        raise ConfigError("scheduler", "only with --engine dask")
    engine = make_engine(args.engine, jobs=args.jobs, scheduler=args.scheduler)
    store = Store(args.store) if args.store else None
    try:
        result = run(engine=engine, store=store, progress=reporter(args.progress))
    finally:
        if store is not None:
            store.close()
    args.failed = len(result.failures)
    if args.plot is not None:
        plot_sweep(result, args.plot)
    return result.render(args.format)


def _run(args: argparse.Namespace) -> str:
    if args.command == "boards":
        return boards_text()
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "results":
        return export(read_results(args.store), args.format)
    if args.command == "cycles":
        return _cycles(args)
    progress = _Progress(args.progress)
    args.profile = _machines(args)
    check_plot(args)
    if args.command == "rpc":
        base = Workload(tlb_entries=args.tlb, memory_size=args.memory,
                        timer_period=args.timer_period, calls=args.calls, board=args.board)
        if args.compare and args.format != "table":
            raise ConfigError("compare", "prints a text section: use it with --format table")
        if wanted(args):
            observe_rpc(args, base, args.profile[0], args.sizes[0])
        jobs = default_jobs() if args.jobs is None else args.jobs
        table = rpc_table(args.profile, args.sizes, calls=args.calls, remote=args.remote,
                          base=base, progress=progress, jobs=jobs)
        if args.plot is not None:
            plot_rpc(table, args.plot)
        if args.compare:
            return table.render(args.format) + "\n\n" + published.render(table)
        return table.render(args.format)
    raise AssertionError(args.command)  # argparse allows no other command


def _program_command(argv: Sequence[str]) -> int | None:
    """``lavsim cc`` and ``lavsim run`` (C programs, :mod:`lavsim.programs.commands`) take
    gcc's options and file lists, so they are handed their arguments before argparse runs."""
    from lavsim.programs.commands import COMMANDS, run_main

    if argv and argv[0] == "run":
        from lavsim.observe.runopts import RUN_OPTIONS

        return run_main(argv[1:], RUN_OPTIONS)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    handed = _program_command(list(sys.argv[1:] if argv is None else argv))
    if handed is not None:
        return handed
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a bad argument (already reported)
        return stop.code if isinstance(stop.code, int) else 2
    setup_logging(args.verbose)
    try:
        output = _run(args)
    except StoreError as error:
        which = "STORE" if args.command == "results" else "--store"
        print(f"lavsim {args.command}: error: argument {which}: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        # Name the option the user typed, not the library's field.
        option = _OPTIONS[args.command].get(error.field)
        if option is None and error.field.startswith("--"):
            option = error.field
        message = str(error)[len(error.field) + 2:]
        if option is None:
            print(f"lavsim {args.command}: error: {error}", file=sys.stderr)
        else:
            print(f"lavsim {args.command}: error: argument {option}: {message}",
                  file=sys.stderr)
        return 2
    except LavsimError as error:
        print(f"lavsim: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(output if output.endswith("\n") else output + "\n")
    return 1 if getattr(args, "failed", 0) else 0


if __name__ == "__main__":
    raise SystemExit(main())
