"""The assembler's memo (a host-side speed cache keyed by source and origin) hands out the
same frozen program again, stays within its bounds, and changes no simulated result."""

from __future__ import annotations

import pytest

from lavsim.cpu import asm
from lavsim.errors import AssemblyError
from lavsim.experiments import Workload, measure_call


def test_the_same_source_and_origin_give_the_same_program_and_another_origin_another() -> None:
    asm.clear_memo()
    first = asm.assemble("start:\n    jmp start\n", 0x1000)
    assert asm.assemble("start:\n    jmp start\n", 0x1000) is first
    other = asm.assemble("start:\n    jmp start\n", 0x2000)
    assert other is not first and other.symbols["start"] == 0x2000


def test_a_memoised_program_cannot_be_changed_by_its_user() -> None:
    program = asm.assemble("x:\n    nop\n", 0)
    with pytest.raises(TypeError):
        program.symbols["x"] = 5  # type: ignore[index]
    with pytest.raises(TypeError):
        program.line_map[0] = 9  # type: ignore[index]


def test_errors_are_raised_every_time_and_not_kept() -> None:
    asm.clear_memo()
    for _ in range(2):
        with pytest.raises(AssemblyError):
            asm.assemble("    bogus eax\n", 0)
    assert not asm._memo


def test_the_memo_keeps_within_its_entry_and_size_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    asm.clear_memo()
    monkeypatch.setattr(asm, "MEMO_ENTRIES", 4)
    for k in range(10):
        asm.assemble(f"    mov eax, {k}\n", 0)
    assert len(asm._memo) == 4
    monkeypatch.setattr(asm, "MEMO_SOURCE_CHARS", 40)
    for k in range(10):
        asm.assemble(f"    mov ebx, {k}\n", 0)
    assert asm._memo_chars <= 40
    asm.clear_memo()


def test_measurements_are_identical_with_a_cold_and_a_warm_memo() -> None:
    work = Workload(profile="pentium", size=16, calls=3)
    results = []
    for _ in range(2):
        asm.clear_memo()
        cold = measure_call("message-groups", work)
        warm = measure_call("message-groups", work)  # every source now comes from the memo
        results.append((cold, warm))
    for cold, warm in results:
        assert cold.samples == warm.samples and cold.cold == warm.cold
    assert results[0][0] == results[1][1]
