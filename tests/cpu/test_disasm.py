"""The disassembler: round trips through the assembler, robustness on any bytes, and
instruction boundaries against objdump."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from asmgen import all_instances, source
from hypothesis import given
from hypothesis import strategies as st

from lavsim.cpu.asm import Program, assemble
from lavsim.cpu.disasm import disassemble, disassemble_one
from lavsim.errors import AssemblyError


@pytest.fixture(scope="module")
def generated() -> tuple[Program, int]:
    insts = all_instances()
    return assemble(source(insts), origin=0x1000), len(insts)


def test_disassembly_of_every_generated_instruction_assembles_to_the_same_bytes(
    generated: tuple[Program, int],
) -> None:
    program, count = generated
    lines = disassemble(program.code, program.origin)
    assert sum(line.length for line in lines) == len(program.code)
    again = assemble("\n".join(line.text for line in lines), origin=program.origin)
    assert again.code == program.code
    # each instance starts a line and is exactly one line
    starts = {line.address: line for line in lines}
    for n in range(count):
        here, nxt = program.symbols[f"L{n}"], program.symbols.get(f"L{n + 1}")
        line = starts[here]
        assert line.form is not None, line.text
        if nxt is not None:
            assert here + line.length == nxt, line.text


def test_each_line_alone_reassembles_to_its_bytes(generated: tuple[Program, int]) -> None:
    program, _ = generated
    for line in disassemble(program.code, program.origin)[:: 7]:
        assert assemble(line.text, origin=line.address).code == line.bytes, line.text


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("90", "nop"),
        ("66 90", "xchg ax, ax"),
        ("8b c3", "mov eax, ebx"),  # the noasm load form, same meaning
        ("3e 8b 03", "ds mov eax, dword ptr [ebx]"),  # a redundant override as a prefix word
        ("64 8b 03", "mov eax, dword ptr fs:[ebx]"),
        ("26 a4", "es movsb"),
        ("f3 a6", "repe cmpsb"),
        ("f2 ae", "repne scasb"),
        ("f0 01 03", "lock add dword ptr [ebx], eax"),
        ("66 6a ff", "push word ptr 0xffff"),
        ("83 c0 ff", "add eax, 0xffffffff"),
        ("8b 44 24 fc", "mov eax, dword ptr [esp-0x4]"),
        ("8b 04 8d 10 00 00 00", "mov eax, dword ptr [ecx*4+0x10]"),
        ("ea 00 10 00 00 08 00", "jmp 0x8:0x1000"),
        ("ff 18", "call fword ptr [eax]"),
        ("0f 20 d8", "mov eax, cr3"),
        ("cd 03", "int 0x3"),
        ("eb fe", "jmp 0x100"),
        ("60", "pushad"),
        ("66 cf", "iretw"),
    ],
)
def test_text(code: str, text: str) -> None:
    raw = bytes.fromhex(code)
    line = disassemble_one(raw, 0x100)
    assert (line.text, line.length) == (text, len(raw))


@pytest.mark.parametrize(
    ("code", "first"),
    [
        ("0f ff", "db 0x0f"),  # not in the table
        ("8d c0", "db 0x8d"),  # LEA with a register operand is #UD
        ("67 8b 03", "db 0x67"),  # 16-bit addressing is not in the subset
        ("f0 01 c3", "db 0xf0"),  # LOCK with a register destination is #UD
        ("f3 90", "db 0xf3"),  # REP on a form that does not repeat
        ("66 0f 00 d0", "db 0x66"),  # lldt has no 16-bit form to ask for
        ("26 64 8b 03", "db 0x26"),  # overridden by the later segment prefix
        ("8b", "db 0x8b"),  # cut short
        ("66", "db 0x66"),
        ("8e f8", "db 0x8e"),  # Sreg 7 does not exist
    ],
)
def test_what_the_table_cannot_say_becomes_db(code: str, first: str) -> None:
    raw = bytes.fromhex(code)
    lines = disassemble(raw)
    assert lines[0].text == first and lines[0].form is None
    assert sum(line.length for line in lines) == len(raw)
    assert assemble("\n".join(line.text for line in lines)).code == raw


@given(st.binary(min_size=1, max_size=64), st.integers(0, 0xFFFFFFFF))
def test_random_bytes_never_raise_and_every_line_assembles_to_the_same_instruction(
    data: bytes, address: int
) -> None:
    lines = disassemble(data, address)
    assert sum(line.length for line in lines) == len(data)
    assert b"".join(line.bytes for line in lines) == data
    for line in lines:
        assert 1 <= line.length <= 15
        try:
            code = assemble(line.text, origin=line.address).code
        except AssemblyError as e:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"{line.bytes.hex(' ')} -> {line.text!r}: {e}") from e
        if line.form is None:
            assert code == line.bytes  # db lines are byte-exact
            continue
        # the assembler may pick another encoding, but it must mean the same thing (XCHG's
        # operands commute: 87 C4 is `xchg esp, eax`, written back as 94 `xchg eax, esp`)...
        again = disassemble_one(code, line.address)
        if line.form.mnemonic != "xchg":
            assert again.text == _canonical(line.text)
        # ...and what the assembler wrote is a fixed point of disassembly and assembly
        assert assemble(again.text, origin=line.address).code == code


def _canonical(text: str) -> str:
    """The text the assembler's own choice reads back as: it writes a shift by an immediate 1
    with the D0-D3 forms and `int 3` as INT3 (both as GNU does)."""
    if text == "int 0x3":
        return "int3"
    return re.sub(r", 0x1$", ", 1", text) if text.split()[0] in _SHIFTS else text


_SHIFTS = {"rol", "ror", "rcl", "rcr", "shl", "shr", "sar"}


# --- objdump: instruction boundaries -----------------------------------------------------------

_OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)\s*(.*)$")


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump not installed")
def test_instruction_boundaries_agree_with_objdump(
    generated: tuple[Program, int], tmp_path: Path
) -> None:
    program, _ = generated
    blob = tmp_path / "code.bin"
    blob.write_bytes(program.code)
    out = subprocess.run(
        ["objdump", "-D", "-b", "binary", "-mi386", "-Mintel", f"--adjust-vma={program.origin}",
         "-w", "-z", str(blob)],
        capture_output=True, text=True, check=True,
    ).stdout
    theirs: dict[int, tuple[int, str]] = {}
    for row in out.splitlines():
        m = _OBJDUMP_LINE.match(row)
        if m:
            theirs[int(m.group(1), 16)] = (len(m.group(2).split()), m.group(3).split(" ")[0])
    ours = {line.address: line for line in disassemble(program.code, program.origin)}
    disagree = [
        f"{a:#x}: objdump {theirs.get(a)} / lavsim {line.length} {line.text}"
        for a, line in ours.items()
        if line.form is not None and not line.text.startswith(("es ", "fs ", "ds "))
        and theirs.get(a, (0, ""))[0] != line.length
    ]
    assert not disagree, "\n".join(disagree[:40])
    assert len(theirs) >= len(ours) * 0.9
