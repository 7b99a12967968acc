"""The ``lavsim`` command (also ``python -m lavsim``).

    lavsim rpc   [--profile i486|pentium|both] [--cpu-model FILE.toml] [--sizes 0,16,64,...]
                 [--calls N] [--tlb ENTRIES] [--memory BYTES] [--timer-period CYCLES]
                 [--no-remote] [--compare] [--format table|csv|json]
    lavsim sweep size|threads|working-set|tlb [--profile ...] [--cpu-model FILE] [--values ...]
                 [--mechanisms ...] [--size B] [--working-set P] [--threads K]
                 [--calls N] [--format table|csv|json] [--progress|--no-progress]
    lavsim --version

Tables go to standard output; progress (on long runs, or when asked) to standard error. A bad
argument gets one line on standard error naming the option, and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from lavsim import __version__
from lavsim.errors import ConfigError, LavsimError
from lavsim.experiments import published
from lavsim.experiments.mechanisms import MECHANISMS, VARIANTS, mechanism
from lavsim.experiments.rpc import DEFAULT_SIZES, rpc_table
from lavsim.experiments.sweeps import SWEEPS, run_sweep
from lavsim.experiments.workload import DEFAULT_MEMORY, DEFAULT_TIMER_PERIOD, PROFILES, Workload
from lavsim.models import CpuModel, ModelFileError, load_model_file

#: The option behind each field a ConfigError may name, by command (library names -> ours).
_OPTIONS = {
    "rpc": {
        "profile": "--profile", "profiles": "--profile", "size": "--sizes", "sizes": "--sizes",
        "calls": "--calls", "tlb_entries": "--tlb", "memory_size": "--memory",
        "timer_period": "--timer-period", "format": "--format", "compare": "--compare",
    },
    "sweep": {
        "profile": "--profile", "profiles": "--profile", "values": "--values",
        "mechanism": "--mechanisms", "mechanisms": "--mechanisms", "size": "--size",
        "other_threads": "--threads", "other_work": "--thread-work",
        "working_set": "--working-set", "calls": "--calls", "format": "--format",
    },
}  # fmt: skip


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
    rpc.add_argument("--compare", action="store_true",
                     help="add the published figures (L4, Palladium, LRPC) beside the "
                     "simulated ones, computed from this run (table format)")
    keys = [*MECHANISMS, *VARIANTS]
    sweep = sub.add_parser(
        "sweep", help="one mechanism cost against one knob",
        description="Sweep one knob: " + "; ".join(
            f"{s.name}: {s.title} (default {','.join(map(str, s.values))})"
            for s in SWEEPS.values()),
    )
    sweep.add_argument("knob", choices=sorted(SWEEPS))
    _add_common(sweep, "i486")
    sweep.add_argument("--values", type=_ints, default=None,
                       help="the knob's values, distinct")
    sweep.add_argument("--mechanisms", type=_mechanism_keys, default=list(MECHANISMS),
                       help="comma-separated, of " + ", ".join(keys) + " (default: the first "
                       f"{len(MECHANISMS)})")
    sweep.add_argument("--size", type=int, default=0, help="argument bytes (other sweeps)")
    sweep.add_argument("--threads", type=int, default=0, help="other runnable threads")
    sweep.add_argument("--thread-work", type=int, default=0,
                       help="loop iterations each other thread runs before it yields")
    sweep.add_argument("--working-set", type=int, default=None,
                       help="server pages read per call (default 0; 4 for the tlb sweep)")
    return parser


def _machines(args: argparse.Namespace) -> list[str | CpuModel]:
    """What to measure: the --profile models, then the --cpu-model files' models."""
    default = "both" if args.command == "rpc" else "i486"
    names = args.profile if args.profile is not None else (
        [] if args.models else _profiles(default))
    return [*names, *args.models]


def _run(args: argparse.Namespace) -> str:
    progress = _Progress(args.progress)
    args.profile = _machines(args)
    if args.command == "rpc":
        base = Workload(tlb_entries=args.tlb, memory_size=args.memory,
                        timer_period=args.timer_period, calls=args.calls)
        if args.compare and args.format != "table":
            raise ConfigError("compare", "prints a text section: use it with --format table")
        table = rpc_table(args.profile, args.sizes, calls=args.calls, remote=args.remote,
                          base=base, progress=progress)
        if args.compare:
            return table.render(args.format) + "\n\n" + published.render(table)
        return table.render(args.format)
    mechs = [mechanism(k) for k in args.mechanisms]
    working_set = args.working_set
    if working_set is None:
        working_set = 4 if args.knob == "tlb" else 0
    base = Workload(
        size=args.size, other_threads=args.threads, other_work=args.thread_work,
        working_set=working_set, calls=args.calls,
    )  # fmt: skip
    result = run_sweep(args.knob, profiles=args.profile, values=args.values,
                       mechanisms=mechs, base=base, progress=progress)
    return result.render(args.format)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a bad argument (already reported)
        return stop.code if isinstance(stop.code, int) else 2
    try:
        output = _run(args)
    except ConfigError as error:
        # Name the option the user typed, not the library's field.
        option = _OPTIONS[args.command].get(error.field)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
