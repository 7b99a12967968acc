"""The assembler on hostile text: deep nesting, long chains, huge numbers, huge layout
operands, nested repetition, circular constants and non-text input each give an
AssemblyError with line and column, in bounded time and memory (the limits are documented in
docs/design.md), and the kernel's create_process refuses such source the same way."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from lavsim.cpu import asm
from lavsim.cpu.asm import assemble
from lavsim.errors import AssemblyError, ConfigError

HOSTILE = {
    "110 nested parentheses": "mov eax, " + "(" * 110 + "1" + ")" * 110,
    "1,000 unary minus signs": "mov eax, " + "-" * 1_000 + "1",
    "a 1,000-term sum": "mov eax, " + "+".join(["1"] * 1_000),
    "a 1,000-term product in a data directive": "dd " + "*".join(["1"] * 1_000),
    "a 5,000-digit number": "mov eax, " + "9" * 5_000,
    "a 5,000-digit hex number": "dd 0x" + "f" * 5_000,
    ".org 0xFFFFFFFF": "nop\n.org 0xFFFFFFFF",
    ".space of 4 GB": ".space 0xFFFFFFFF",
    ".skip of 1 TB with a fill": ".skip 1 << 40, 0x90",
    "resd of 1 G dwords": "resd 0x40000000",
    ".balign to 2^40": "nop\n.balign 1 << 40",
    "align to 2^31": "nop\nalign 0x80000000",
    "times 3000 times 3000 nop": "times 3000 times 3000 nop",
    "times 2^40 nop": "times 1 << 40 nop",
    "times of a huge .space": "times 100 .space 0x1000000",
    "circular .equ": ".equ a, b\n.equ b, a\nmov eax, a",
    "circular =": "x = y + 1\ny = x * 2\ndd x",
    "self-reference": "z equ z + 1\ndd z",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_source_gives_an_assembly_error_quickly_in_bounded_memory(name: str) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(AssemblyError) as info:
            assemble(HOSTILE[name])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 20
    assert peak < 64 << 20
    assert info.value.line >= 1 and info.value.column >= 1
    assert "line" in str(info.value)


def test_the_error_names_the_line_and_column_of_the_problem() -> None:
    with pytest.raises(AssemblyError) as info:
        assemble("nop\nnop\n  mov eax, " + "(" * 200 + "1" + ")" * 200)
    assert info.value.line == 3
    assert 12 <= info.value.column <= 12 + asm.MAX_NESTING + 1
    with pytest.raises(AssemblyError, match=r"circular|depends on itself") as info:
        assemble("nop\n.equ a, b\n.equ b, a\ndd a")
    assert info.value.line in (2, 3, 4)


@pytest.mark.parametrize("source", [None, b"nop", 42, ["nop"]])
def test_source_that_is_not_text_is_refused(source: object) -> None:
    with pytest.raises(AssemblyError, match="str") as info:
        assemble(source)  # type: ignore[arg-type]
    assert (info.value.line, info.value.column) == (1, 1)


def test_sources_within_the_limits_still_assemble() -> None:
    depth = asm.MAX_NESTING - 2
    assert assemble("mov eax, " + "(" * depth + "7" + ")" * depth).code == b"\xb8\x07\0\0\0"
    terms = asm.MAX_EXPR_DEPTH // 2
    assert assemble("dd " + "+".join(["1"] * terms)).code == terms.to_bytes(4, "little")
    assert assemble("dd 1" + "0" * 9).code == (10**9).to_bytes(4, "little")
    assert len(assemble(".space 0x10000\nnop").code) == 0x10001
    assert len(assemble("times 1000 nop").code) == 1000
    assert assemble(".equ a, b + 1\n.equ b, 2\ndd a").code == b"\3\0\0\0"


def test_create_process_refuses_hostile_source_with_the_assembly_error() -> None:
    from lavsim.kernel import LavenderSystem

    system = LavenderSystem(memory_size=8 << 20, timer_period=2_000, observe=False)
    group = system.create_group()
    for name in ("110 nested parentheses", "circular .equ", ".space of 4 GB"):
        with pytest.raises((AssemblyError, ConfigError), match=r"line [0-9]+, column"):
            system.create_process(group, "main:\n" + HOSTILE[name])
    assert system.run(max_cycles=50_000).status in ("done", "idle", "running", "limit")
