"""The kernel image: the package's ``.s`` sources assembled by lavsim's own assembler.

The sources are concatenated in :data:`KERNEL_SOURCES` order behind the ``.equ`` prelude of
:mod:`lavsim.kernel.layout` and assembled at ``KERNEL_BASE`` (so ``kernel_start``, the first
statement of ``boot.s``, is the entry point). The image is the same for every system; it is
assembled once per process and cached.

The kernel's positional tables (the vector dispatch table, the two system-call tables) are not
written in the ``.s`` files: a line ``label:  # generated from layout.NAME`` is replaced by the
label and ``.long`` lines listing the routines of :func:`lavsim.kernel.layout.dispatch_tables`,
so the order of each table lives in one Python table. A marker naming an unknown table, the
wrong layout name, or a table placed twice or never, stops the build.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from importlib import resources

import attrs

from lavsim.cpu.asm import Program, assemble
from lavsim.kernel.layout import (
    KERNEL_IMAGE_LINEAR,
    KERNEL_IMAGE_MAX,
    asm_constants,
    asm_prelude,
    dispatch_tables,
)

#: The kernel's guest sources, in image order.
KERNEL_SOURCES = (
    "boot.s", "entry.s", "sched.s", "syscall.s", "migrate.s", "net.s", "ipc.s", "threads.s",
    "l4ipc.s", "lrpc.s", "data.s", "netwait.s", "timeout.s",
)


#: A table's place in a source: its label, then the layout table it is generated from.
_GENERATED = re.compile(r"^(\w+):[ \t]*# generated from layout\.(\w+)[ \t]*$", re.MULTILINE)
#: Routines per generated ``.long`` line.
_PER_LINE = 4


def _table_lines(label: str, routines: tuple[str, ...]) -> str:
    rows = [routines[k : k + _PER_LINE] for k in range(0, len(routines), _PER_LINE)]
    body = "".join(f"    .long {', '.join(row)}\n" for row in rows)
    return f"{label}:\n{body}"


def expand_tables(source: str, name: str, placed: set[str]) -> str:
    """``source`` (the file ``name``) with every generated-table marker replaced by its table;
    adds the labels placed to ``placed``. RuntimeError for a marker the layout does not match."""
    tables = dispatch_tables()

    def place(match: re.Match[str]) -> str:
        label, origin = match.group(1), match.group(2)
        if label not in tables:
            raise RuntimeError(f"{name}: {label!r} is not a table of layout.dispatch_tables()")
        expected, routines = tables[label]
        if origin != expected:
            raise RuntimeError(f"{name}: {label} is generated from layout.{expected}, not {origin}")
        if label in placed:
            raise RuntimeError(f"{name}: table {label} placed twice")
        placed.add(label)
        return _table_lines(label, routines)

    return _GENERATED.sub(place, source)


def kernel_source() -> str:
    """The complete kernel source as assembled: the prelude, then every file (with the
    dispatch tables generated from the layout)."""
    package = resources.files("lavsim.kernel")
    parts = [asm_prelude()]
    placed: set[str] = set()
    for name in KERNEL_SOURCES:
        parts.append(f"# ---- {name} ----\n")
        text = package.joinpath(name).read_text(encoding="utf-8")
        parts.append(expand_tables(text, name, placed))
    missing = sorted(set(dispatch_tables()) - placed)
    if missing:
        raise RuntimeError(f"no kernel source places the tables {missing}")
    return "".join(parts)


@attrs.frozen
class KernelImage:
    """The assembled kernel: bytes, symbols, and the routine each address belongs to.

    A *routine* is a label without a dot in the image (``switch_to``, ``trap_entry`` ...);
    labels with a dot (``switch_to.Lload_cr3``) are places inside a routine.
    """

    program: Program
    routine_starts: tuple[int, ...]
    routine_names: tuple[str, ...]

    @property
    def code(self) -> bytes:
        return self.program.code

    @property
    def base(self) -> int:
        return self.program.origin

    @property
    def end(self) -> int:
        return self.program.end

    def symbol(self, name: str) -> int:
        """The address of a kernel label (KeyError if there is none)."""
        return self.program.symbols[name]

    def routine_at(self, linear: int) -> str | None:
        """The routine whose code holds ``linear``, or None outside the image."""
        if not self.base <= linear < self.end:
            return None
        k = bisect_right(self.routine_starts, linear) - 1
        return self.routine_names[k] if k >= 0 else None


@functools.cache
def kernel_image() -> KernelImage:
    """Assemble (once) and return the kernel image."""
    program = assemble(kernel_source(), origin=KERNEL_IMAGE_LINEAR)
    if len(program.code) > KERNEL_IMAGE_MAX:
        raise RuntimeError(f"kernel image is {len(program.code)} bytes, over {KERNEL_IMAGE_MAX}")
    constants = asm_constants()
    routines = sorted(
        (value, name)
        for name, value in program.symbols.items()
        if "." not in name
        and name not in constants
        and program.origin <= value < program.end
    )
    return KernelImage(
        program,
        tuple(v for v, _ in routines),
        tuple(n for _, n in routines),
    )
