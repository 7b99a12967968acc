"""The ``lavsim`` command (also ``python -m lavsim``).

    lavsim rpc   [--profile i486|pentium|both] [--sizes 0,16,64,...] [--calls N]
                 [--no-remote] [--format table|csv|json]
    lavsim sweep size|threads|working-set|tlb [--profile ...] [--values ...]
                 [--mechanisms ...] [--size B] [--working-set P] [--threads K]
                 [--calls N] [--format table|csv|json] [--progress|--no-progress]

Tables go to standard output; progress (on long runs, or when asked) to standard error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lavsim.errors import ConfigError, LavsimError
from lavsim.experiments.rpc import (
    DEFAULT_SIZES,
    MECHANISMS,
    PROFILES,
    Workload,
    mechanism,
    rpc_table,
)
from lavsim.experiments.sweeps import SWEEPS, run_sweep


def _ints(text: str) -> list[int]:
    try:
        return [int(v, 0) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of integers, not {text!r}")\
            from None


def _profiles(text: str) -> list[str]:
    if text in ("both", "all"):
        return list(PROFILES)
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if name not in PROFILES:
            raise argparse.ArgumentTypeError(f"profiles are {', '.join(PROFILES)} or both")
    return names


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


def _add_common(parser: argparse.ArgumentParser, default_profiles: str) -> None:
    parser.add_argument("--profile", type=_profiles, default=_profiles(default_profiles),
                        help=f"i486, pentium or both (default {default_profiles})")
    parser.add_argument("--calls", type=int, default=8,
                        help="calls per measurement; the first is cold (default 8)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="progress on standard error (default: when it is a terminal)")
    group.add_argument("--no-progress", dest="progress", action="store_false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lavsim",
        description="Cycle-level IA-32 + Lavender simulator: inter-process call costs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rpc = sub.add_parser(
        "rpc", help="cycles per call of every mechanism (migration, message RPC, remote)",
        description="Measure one call by every mechanism at several argument sizes.",
    )
    _add_common(rpc, "both")
    rpc.add_argument("--sizes", type=_ints, default=list(DEFAULT_SIZES),
                     help="argument/message bytes, multiples of 4 in 0..4096 "
                     "(default 0,16,64,256,1024,4096)")
    rpc.add_argument("--no-remote", dest="remote", action="store_false",
                     help="leave out the two-host rows (remote call, shipped procedure)")
    sweep = sub.add_parser(
        "sweep", help="one mechanism cost against one knob",
        description="Sweep one knob: " + "; ".join(
            f"{s.name}: {s.title} (default {','.join(map(str, s.values))})"
            for s in SWEEPS.values()),
    )
    sweep.add_argument("knob", choices=sorted(SWEEPS))
    _add_common(sweep, "i486")
    sweep.add_argument("--values", type=_ints, default=None, help="the knob's values")
    sweep.add_argument("--mechanisms", default=",".join(m.key for m in MECHANISMS),
                       help="comma-separated: " + ", ".join(m.key for m in MECHANISMS))
    sweep.add_argument("--size", type=int, default=0, help="argument bytes (other sweeps)")
    sweep.add_argument("--threads", type=int, default=0, help="other runnable threads")
    sweep.add_argument("--thread-work", type=int, default=0,
                       help="loop iterations each other thread runs before it yields")
    sweep.add_argument("--working-set", type=int, default=None,
                       help="server pages read per call (default 0; 4 for the tlb sweep)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = _Progress(args.progress)
    try:
        if args.command == "rpc":
            table = rpc_table(args.profile, args.sizes, calls=args.calls, remote=args.remote,
                              progress=progress)
            output = table.render(args.format)
        else:
            mechs = [mechanism(k.strip()) for k in args.mechanisms.split(",") if k.strip()]
            working_set = args.working_set
            if working_set is None:
                working_set = 4 if args.knob == "tlb" else 0
            base = Workload(
                size=args.size, other_threads=args.threads, other_work=args.thread_work,
                working_set=working_set, calls=args.calls,
            )  # fmt: skip
            result = run_sweep(args.knob, profiles=args.profile, values=args.values,
                               mechanisms=mechs, base=base, progress=progress)
            output = result.render(args.format)
    except ConfigError as error:
        parser.error(str(error))
    except LavsimError as error:
        print(f"lavsim: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(output if output.endswith("\n") else output + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
