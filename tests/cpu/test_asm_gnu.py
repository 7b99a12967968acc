"""lavsim's assembler against GNU as, instruction by instruction.

Every generated instance of every form the assembler may pick (see ``asmgen``) goes into one
source file. GNU ``as --32 -msyntax=intel -mnaked-reg`` and :func:`lavsim.cpu.asm.assemble`
both read it; a label before each instance gives each side's offsets (``nm`` for GNU), so each
instance is compared on its own bytes and a length difference cannot hide behind another.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from asmgen import Instance, all_instances, source

from lavsim.cpu.asm import assemble

pytestmark = pytest.mark.skipif(
    shutil.which("as") is None or shutil.which("objcopy") is None or shutil.which("nm") is None,
    reason="GNU binutils (as, objcopy, nm) not installed: cannot cross-check against GNU as",
)


def gnu_assemble(text: str, workdir: Path) -> tuple[bytes, dict[str, int]]:
    """GNU's .text bytes and symbol offsets for a source file."""
    src = workdir / "gen.s"
    obj = workdir / "gen.o"
    out = workdir / "gen.bin"
    src.write_text(text)
    run = subprocess.run(
        ["as", "--32", "-msyntax=intel", "-mnaked-reg", str(src), "-o", str(obj)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, f"GNU as refused the generated source:\n{run.stderr[:3000]}"
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(out)], check=True)
    nm = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    symbols = {}
    for row in nm.splitlines():
        parts = row.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16)
    return out.read_bytes(), symbols


def slices(code: bytes, symbols: dict[str, int], count: int) -> list[bytes]:
    """The bytes of instance n: from label Ln to label Ln+1 (the last up to far_fwd's pad)."""
    ends = [symbols[f"L{n}"] for n in range(count)] + [symbols["far_fwd"] - 160]
    return [code[ends[n]:ends[n + 1]] for n in range(count)]


@pytest.fixture(scope="module")
def generated() -> list[Instance]:
    return all_instances()


def test_every_generated_instruction_encodes_as_gnu_as_does(
    generated: list[Instance], tmp_path_factory: pytest.TempPathFactory
) -> None:
    text = source(generated)
    gnu_code, gnu_symbols = gnu_assemble(text, tmp_path_factory.mktemp("gnu"))
    ours = assemble(text)
    n = len(generated)
    theirs = slices(gnu_code, gnu_symbols, n)
    mine = slices(ours.code, dict(ours.symbols), n)
    diffs = [
        f"{inst.text}: gnu {theirs[k].hex(' ')} / lavsim {mine[k].hex(' ')}"
        for k, inst in enumerate(generated)
        if theirs[k] != mine[k]
    ]
    assert not diffs, f"{len(diffs)} of {n} instructions differ:\n" + "\n".join(diffs[:60])
    assert ours.code == gnu_code


def test_generated_file_covers_every_assemblable_form(generated: list[Instance]) -> None:
    from lavsim.cpu.isa import FORMS

    covered = {id(inst.form) for inst in generated}
    missing = [f for f in FORMS if "noasm" not in f.attrs and id(f) not in covered]
    assert not missing
    assert len(generated) > 3 * len(covered)


@pytest.mark.parametrize(
    "text",
    [
        "mov eax, offset fwd\nmov eax, [fwd]\nlea esi, [ebx+fwd]\npush offset fwd\nfwd: ret",
        "a: jmp b\n.space 120\nb: jmp a\njmp c\n.space 126\nc: nop",
        "x = 0x80\ny = 3\nadd eax, x\nadd ecx, y\nmov eax, [ebp+y*4]\nshl eax, y-2",
        "mov eax, 'a'\nmov ax, -1\nmov al, 255\nadd eax, 0xffffffff\nadd ax, 0xffff",
        "start: call start\ncall dword ptr [start]\njmp far ptr 0x8:0x1000\ncall 0x10, 0x20",
    ],
)
def test_hand_written_snippets_encode_as_gnu_as_does(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    gnu, _ = gnu_assemble(".intel_syntax noprefix\n" + text + "\n", tmp_path_factory.mktemp("s"))
    assert assemble(text).code == gnu
