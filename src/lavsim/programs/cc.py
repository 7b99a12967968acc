"""``lavsim cc``: compile and link C for lavsim with the system's ``gcc -m32`` and ``ld``.

The wrapper adds the runtime (``runtime/crt0.S``, ``runtime/libc/*.c``, the headers of
``runtime/include`` instead of the host's), the flags a freestanding 32-bit program needs and
the linker script (``lavender.ld`` for a Lavender process, ``bare.ld`` with ``bare=True``), and
links libgcc for the 64-bit division helpers. What it runs, for a Lavender process::

    gcc -m32 -march=i486 -ffreestanding -nostdinc -isystem <runtime>/include
        -isystem <gcc's own include> -fno-pic -fno-pie -fno-stack-protector
        -fno-asynchronous-unwind-tables -fcf-protection=none -static -nostdlib
        -Wl,-T,<runtime>/lavender.ld -Wl,--no-check-sections -Wl,--build-id=none
        <user flags and sources> <runtime>/crt0.S <runtime>/libc/*.c -lgcc

(``--no-check-sections``: the code and the data are two segments whose offsets overlap on
purpose.) A missing ``gcc`` or a ``gcc -m32`` that cannot link (Debian: the ``gcc-multilib``
package) is a :class:`CcError` saying what to install.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from lavsim.errors import LavsimError

#: The runtime shipped in the package.
RUNTIME = Path(__file__).resolve().parent / "runtime"
#: The Debian package that gives ``gcc -m32`` its 32-bit libgcc and start files.
MULTILIB_PACKAGE = "gcc-multilib"

_FLAGS = (
    "-m32", "-ffreestanding", "-fno-pic", "-fno-pie", "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables", "-fcf-protection=none", "-fno-builtin-printf",
    "-static", "-nostdlib", "-no-pie", "-Wl,--build-id=none",
)  # fmt: skip


class CcError(LavsimError):
    """The C compiler could not build the program (the message says why and what to do)."""


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise CcError("gcc not found: lavsim cc needs the system's gcc (Debian: apt-get install "
                      f"gcc {MULTILIB_PACKAGE})")
    return gcc


@lru_cache(maxsize=4)
def gcc_include_dir(gcc: str | None = None) -> str:
    """GCC's own header directory (stdarg.h, stdint.h, limits.h for freestanding code)."""
    out = subprocess.run([gcc or _gcc(), "-m32", "-print-file-name=include"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip()


@lru_cache(maxsize=4)
def multilib_ok(gcc: str | None = None) -> bool:
    """Whether ``gcc -m32`` finds its 32-bit libgcc (the multilib package is installed)."""
    out = subprocess.run([gcc or _gcc(), "-m32", "-print-libgcc-file-name"],
                         capture_output=True, text=True, check=False)
    path = out.stdout.strip()
    return out.returncode == 0 and "/32/" in path and Path(path).is_file()


def runtime_sources() -> list[str]:
    """crt0 and the libc sources, in link order."""
    return [str(RUNTIME / "crt0.S"), *sorted(str(p) for p in (RUNTIME / "libc").glob("*.c"))]


def command(sources: Sequence[str], output: str, options: Sequence[str] = (),
            bare: bool = False, runtime: Sequence[str] | None = None) -> list[str]:
    """The gcc command line ``lavsim cc`` runs (see the module docstring); ``runtime``: the
    runtime's objects already built by :func:`build_runtime` instead of its sources."""
    gcc = _gcc()
    script = RUNTIME / ("bare.ld" if bare else "lavender.ld")
    march = [] if any(o.startswith("-march=") for o in options) else ["-march=i486"]
    return [
        gcc, *_FLAGS, *march, "-nostdinc", "-isystem", str(RUNTIME / "include"),
        "-isystem", gcc_include_dir(gcc), *(["-DLAV_BARE"] if bare else []),
        f"-Wl,-T,{script}", "-Wl,--no-check-sections", *options, *sources,
        *(runtime_sources() if runtime is None else runtime), "-o", output, "-lgcc",
    ]  # fmt: skip


def build_runtime(directory: str, options: Sequence[str] = (), bare: bool = False
                  ) -> list[str]:
    """Compile crt0 and the libc once into ``directory`` (``-c``) for programs built with the
    same ``options``; returns the object files for :func:`compile_program`'s ``runtime``."""
    gcc = _gcc()
    march = [] if any(o.startswith("-march=") for o in options) else ["-march=i486"]
    objects = []
    for source in runtime_sources():
        obj = str(Path(directory) / (Path(source).stem + ".o"))
        cmd = [gcc, *_FLAGS, *march, "-nostdinc", "-isystem", str(RUNTIME / "include"),
               "-isystem", gcc_include_dir(gcc), *(["-DLAV_BARE"] if bare else []),
               *options, "-c", source, "-o", obj]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CcError(f"gcc failed on {source} (exit {done.returncode}):\n"
                          f"{done.stderr.strip()}")
        objects.append(obj)
    return objects


def compile_program(sources: Sequence[str], output: str, options: Sequence[str] = (),
                    bare: bool = False, runtime: Sequence[str] | None = None) -> None:
    """Build ``output`` from C ``sources``; :class:`CcError` with gcc's messages on failure."""
    if not sources:
        raise CcError("no source files given")
    for s in sources:
        if not Path(s).is_file():
            raise CcError(f"{s}: no such source file")
    gcc = _gcc()
    if not multilib_ok(gcc):
        raise CcError(f"gcc -m32 cannot link 32-bit programs: install the {MULTILIB_PACKAGE} "
                      f"package (Debian: apt-get install {MULTILIB_PACKAGE})")
    cmd = command(sources, output, options, bare, runtime)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CcError(f"gcc failed (exit {done.returncode}):\n{done.stderr.strip()}")
