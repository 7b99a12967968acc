"""The ``lavsim cc`` and ``lavsim run`` commands (dispatched by :mod:`lavsim.cli`).

``lavsim cc [--bare] [gcc options] SOURCES... [-o OUTPUT]``: every argument but ``--bare`` and
``-o OUTPUT`` goes to gcc; the runtime, the flags and the linker script are added
(:mod:`lavsim.programs.cc`). ``lavsim run [options] PROGRAM.elf...``: the programs' console
output on standard output, a statistics summary on standard error, and the first program's
status as the exit status (its low 8 bits, as a shell sees it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from lavsim.boards import BOARDS
from lavsim.elf import ElfError, load_elf_file
from lavsim.errors import ConfigError, LavsimError
from lavsim.programs.cc import CcError, compile_program
from lavsim.programs.run import RunObserver, run_bare, run_lavender

_RUN_OPTIONS = {
    "profile": "--profile", "groups": "--groups", "max_threads": "--threads",
    "heap_size": "--heap", "program": "PROGRAM", "programs": "PROGRAM", "board": "--board",
}  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """One-line errors, exit status 2 (as :mod:`lavsim.cli`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def cc_main(argv: Sequence[str]) -> int:
    """``lavsim cc``: see the module docstring."""
    args = list(argv)
    bare = "--bare" in args
    args = [a for a in args if a != "--bare"]
    output = "a.elf"
    if "-o" in args:
        k = args.index("-o")
        if k + 1 >= len(args):
            print("lavsim cc: error: argument -o: expected a file name", file=sys.stderr)
            return 2
        output = args[k + 1]
        del args[k : k + 2]
    sources = [a for a in args if not a.startswith("-") and a.endswith((".c", ".S", ".s", ".o"))]
    options = [a for a in args if a not in sources]
    if not sources:
        print("lavsim cc: error: no C source files given", file=sys.stderr)
        return 2
    try:
        compile_program(sources, output, options, bare=bare)
    except CcError as error:
        print(f"lavsim cc: {error}", file=sys.stderr)
        return 1
    return 0


def _groups(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a comma-separated list of group numbers (0: resident), not {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("group numbers are >= 0 (0: the resident space)")
    return values


def run_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lavsim run", description="Run ELF programs built by lavsim cc.")
    parser.add_argument("programs", nargs="+", metavar="PROGRAM", help="ELF files")
    parser.add_argument("--profile", choices=("i486", "pentium"), default="i486")
    parser.add_argument("--board", choices=tuple(BOARDS), default="ideal", metavar="NAME",
                        help=f"the memory system ({', '.join(BOARDS)}; default ideal: every "
                        "access hits; lavsim boards describes them)")
    parser.add_argument("--bare", action="store_true",
                        help="one program linked with lavsim cc --bare, on a bare CPL-0 "
                        "machine without the kernel (console port 0xE9)")
    parser.add_argument("--groups", type=_groups, default=None,
                        help="the group of each program, in order (0: resident); default "
                        "all in group 1")
    parser.add_argument("--threads", type=int, default=4, dest="max_threads",
                        help="thread slots per process (default 4; the stacks share the "
                        "linked stack area)")
    parser.add_argument("--heap", type=int, default=0x10000, dest="heap_size",
                        help="heap bytes per process (default 65536)")
    parser.add_argument("--max-cycles", type=int, default=None)
    parser.add_argument("--name-server", action="store_true",
                        help="start the name server (port 0) before the programs")
    return parser


#: Options added by a layer above (``lavsim.observe.runopts``: ``--gdb``, ``--trace-out`` ...)
#: and the observer they make from the parsed arguments (None: nothing asked).
RunOptions = tuple[Callable[[argparse.ArgumentParser], None],
                   Callable[[argparse.Namespace], RunObserver | None], dict[str, str]]


def run_main(argv: Sequence[str], observe: RunOptions | None = None) -> int:
    """``lavsim run``: see the module docstring."""
    parser = run_parser()
    if observe is not None:
        observe[0](parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    fields = _RUN_OPTIONS | (observe[2] if observe is not None else {})
    try:
        observer = observe[1](args) if observe is not None else None
        if observer is not None and args.bare:
            print("lavsim run: error: --bare runs without the kernel: no --gdb, --trace-out, "
                  "--stats-out or --trace-instructions", file=sys.stderr)
            return 2
        programs = [load_elf_file(p, flat=args.bare) for p in args.programs]
        if args.bare:
            if len(programs) != 1:
                print("lavsim run: error: --bare runs exactly one program", file=sys.stderr)
                return 2
            result = run_bare(programs[0], profile=args.profile, board=args.board,
                              max_cycles=args.max_cycles)
        else:
            result = run_lavender(
                programs, profile=args.profile, board=args.board, groups=args.groups,
                max_threads=args.max_threads, heap_size=args.heap_size,
                max_cycles=args.max_cycles, name_server=args.name_server, observer=observer,
            )  # fmt: skip
    except ElfError as error:
        print(f"lavsim run: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        option = fields.get(error.field)
        message = str(error)[len(error.field) + 2:]
        where = f"argument {option}: {message}" if option else str(error)
        print(f"lavsim run: error: {where}", file=sys.stderr)
        return 2
    except LavsimError as error:
        print(f"lavsim run: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(result.console)
    sys.stdout.flush()
    print(result.summary(), file=sys.stderr)
    return result.status & 0xFF


#: The commands :func:`lavsim.cli.main` hands over before its own parser runs.
COMMANDS = {"cc": cc_main, "run": run_main}
