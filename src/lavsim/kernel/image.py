"""The kernel image: the package's ``.s`` sources assembled by lavsim's own assembler.

The sources are concatenated in :data:`KERNEL_SOURCES` order behind the ``.equ`` prelude of
:mod:`lavsim.kernel.layout` and assembled at ``KERNEL_BASE`` (so ``kernel_start``, the first
statement of ``boot.s``, is the entry point). The image is the same for every system; it is
assembled once per process and cached.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from importlib import resources

import attrs

from lavsim.cpu.asm import Program, assemble
from lavsim.kernel.layout import KERNEL_IMAGE_LINEAR, KERNEL_IMAGE_MAX, asm_constants, asm_prelude

#: The kernel's guest sources, in image order.
KERNEL_SOURCES = (
    "boot.s", "entry.s", "sched.s", "syscall.s", "migrate.s", "net.s", "ipc.s", "threads.s",
    "data.s",
)


def kernel_source() -> str:
    """The complete kernel source as assembled: the prelude, then every file."""
    package = resources.files("lavsim.kernel")
    parts = [asm_prelude()]
    for name in KERNEL_SOURCES:
        parts.append(f"# ---- {name} ----\n")
        parts.append(package.joinpath(name).read_text(encoding="utf-8"))
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
