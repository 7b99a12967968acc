"""Building the C test programs with ``lavsim cc`` (runtime objects built once per setting)
and natively with ``gcc -m32``; results cached in the session's temporary directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lavsim.programs import cc

SOURCES = Path(__file__).parent / "c"
PROGRAMS = ("sorting", "hashing", "strings")


def _can_link() -> bool:
    return shutil.which("gcc") is not None and cc.multilib_ok()


needs_gcc = pytest.mark.skipif(
    not _can_link(),
    reason=f"gcc -m32 cannot link 32-bit programs here: install {cc.MULTILIB_PACKAGE} "
    "(.ci/run does)",
)


def runtime(tmp: Path, opt: str, march: str, bare: bool) -> list[str]:
    where = tmp / f"rt{opt}{march}{'bare' if bare else ''}"
    if not where.exists():
        where.mkdir()
        cc.build_runtime(str(where), [opt, f"-march={march}"], bare)
    return sorted(str(p) for p in where.glob("*.o"))


def build(tmp: Path, name: str, opt: str, march: str, bare: bool,
          source: Path | None = None) -> Path:
    out = tmp / f"{name}{opt}{march}{'-bare' if bare else ''}.elf"
    if not out.exists():
        objects = runtime(tmp, opt, march, bare)
        crt0 = [o for o in objects if o.endswith("crt0.o")]
        rest = [o for o in objects if not o.endswith("crt0.o")]
        cc.compile_program([str(source or SOURCES / f"{name}.c")], str(out),
                           [opt, f"-march={march}", "-w"], bare, runtime=crt0 + rest)
    return out


def native(tmp: Path, name: str, opt: str, march: str) -> tuple[str, int]:
    exe = tmp / f"{name}{opt}{march}.native"
    if not exe.exists():
        subprocess.run(["gcc", "-m32", opt, f"-march={march}", "-w", "-o", str(exe),
                        str(SOURCES / f"{name}.c")], check=True, capture_output=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    return done.stdout, done.returncode
