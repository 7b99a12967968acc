"""C programs of our own (tests/programs/c: sorting, structs by value, function pointers,
recursion, CRC-32, FNV hashing, 64-bit arithmetic through libgcc, switch tables, varargs,
string functions, printf formats, strtol, ctype, the heap) built by ``lavsim cc`` and run on
lavsim, bare and under the kernel, against the same source compiled by the host's
``gcc -m32`` and run natively: the console output and the exit status must be identical.

The default suite runs every program once under the kernel, one bare, and the 64-bit program
at the corners of the settings; ``-m slow`` runs every program at -O0/-O2/-Os for i486 and
pentium, bare and under the kernel.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from ckit import PROGRAMS, build, native, needs_gcc

from lavsim.elf import load_elf_file
from lavsim.programs.run import run_bare, run_lavender

pytestmark = needs_gcc


def _lavsim(tmp: Path, name: str, opt: str, march: str, bare: bool) -> tuple[str, int]:
    elf = build(tmp, name, opt, march, bare)
    program = load_elf_file(str(elf), flat=bare)
    if bare:
        result = run_bare(program, profile=march)
    else:
        result = run_lavender([program], profile=march)
    assert result.reason in ("done", "halted"), result.summary()
    return result.console, result.status


def _check(tmp: Path, name: str, opt: str, march: str, bare: bool) -> None:
    want = native(tmp, name, opt, march)
    got = _lavsim(tmp, name, opt, march, bare)
    assert got == want, f"{name} {opt} {march} bare={bare}"


@pytest.mark.parametrize("name", PROGRAMS)
def test_c_program_under_the_kernel_prints_what_native_prints(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    _check(tmp_path_factory.getbasetemp(), name, "-O2", "i486", False)


def test_c_program_bare_prints_what_native_prints(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _check(tmp_path_factory.getbasetemp(), "hashing", "-O2", "pentium", True)


@pytest.mark.parametrize(("opt", "march"), [("-O0", "i486"), ("-Os", "pentium")])
def test_64_bit_arithmetic_matches_native_at_other_settings(
    tmp_path_factory: pytest.TempPathFactory, opt: str, march: str
) -> None:
    _check(tmp_path_factory.getbasetemp(), "hashing", opt, march, False)


@pytest.mark.slow
@pytest.mark.parametrize("bare", [False, True])
@pytest.mark.parametrize("march", ["i486", "pentium"])
@pytest.mark.parametrize("opt", ["-O0", "-O2", "-Os"])
@pytest.mark.parametrize("name", PROGRAMS)
def test_every_program_at_every_setting_matches_native(
    tmp_path_factory: pytest.TempPathFactory, name: str, opt: str, march: str, bare: bool
) -> None:
    _check(tmp_path_factory.getbasetemp(), name, opt, march, bare)


def test_compiled_code_uses_the_new_instructions(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The programs exercise what issue 16 added: 64-bit shifts (SHLD/SHRD) in the program,
    BSR and ENDBR32 in libgcc's division helpers."""
    elf = build(tmp_path_factory.getbasetemp(), "hashing", "-O2", "i486", False)
    text = subprocess.run(["objdump", "-d", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    for mnemonic in ("shld", "shrd", "bsr", "endbr32"):
        assert re.search(rf"\t{mnemonic}\b", text), mnemonic
