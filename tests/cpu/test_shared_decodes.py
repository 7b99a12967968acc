"""Decoded instructions shared between CPUs (lavsim.cpu.core._shared_table): a machine that
finds the code it runs already decoded by another gives exactly the run it gives decoding
everything itself (cycles, registers, memory, TLB and cache statistics as its tracer saw
them), and never takes another machine's decode for other bytes or another profile."""

from __future__ import annotations

from typing import Any

import pytest

from lavsim.cpu import core
from lavsim.cpu.asm import assemble
from lavsim.machine import Machine, MachineConfig

ENTRY = 0x10000
LOOP = """
    mov ecx, 200
    mov esi, 0x30000
again:
    mov eax, dword ptr [esi]
    add eax, ecx
    mov dword ptr [esi+4], eax
    imul eax, eax, 3
    push eax
    pop edx
    dec ecx
    jnz again
    hlt
"""
OTHER = LOOP.replace("add eax, ecx", "sub eax, ecx").replace("imul eax, eax, 3", "xor eax, edx")


def run(source: str, profile: str = "pentium", board: str = "ideal", **cpu: Any) -> tuple:
    m = Machine(MachineConfig(profile=profile, board=board, memory_size=1 << 20))
    for name, value in cpu.items():
        setattr(m.cpu, name, value)
    m.load(ENTRY, assemble(source, origin=ENTRY).code)
    m.setup_flat_protected_mode(entry=ENTRY)
    result = m.run(max_cycles=100_000)
    counters = m.hierarchy.counters() if m.hierarchy is not None else None
    return result, m.state_digest(), m.stats(), counters


def fresh_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    decodes: list[int] = []
    original = core.decode_fetched

    def counting(cpu: Any, eip: int, f: Any) -> Any:
        decodes.append(eip)
        return original(cpu, eip, f)

    monkeypatch.setattr(core, "decode_fetched", counting)
    return decodes


@pytest.mark.parametrize(("profile", "board"), [("i486", "ideal"), ("pentium", "ideal"),
                                                ("i486", "486dx2-66"), ("pentium", "p100")])
def test_a_machine_running_shared_decodes_runs_as_if_it_decoded_alone(
    monkeypatch: pytest.MonkeyPatch, profile: str, board: str,
) -> None:
    decodes = fresh_decodes(monkeypatch)
    core._shared.clear()
    alone = run(LOOP, profile, board)
    assert decodes
    decodes.clear()
    shared = run(LOOP, profile, board)
    assert not decodes  # everything came from the first machine's decodes
    assert shared == alone


def test_other_bytes_at_the_same_address_are_decoded_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core._shared.clear()
    expected = run(OTHER)
    core._shared.clear()
    run(LOOP)
    decodes = fresh_decodes(monkeypatch)
    assert run(OTHER) == expected
    assert decodes  # the two changed instructions (at least) were decoded again


def test_decodes_are_not_shared_across_profiles_or_specialisation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core._shared.clear()
    run(LOOP, "pentium")
    decodes = fresh_decodes(monkeypatch)
    run(LOOP, "i486")
    assert decodes
    decodes.clear()
    slow = run(LOOP, "pentium", fast=False)
    assert decodes
    core._shared.clear()
    assert run(LOOP, "pentium", fast=False) == slow


def test_the_shared_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    core._shared.clear()
    monkeypatch.setattr(core, "SHARED_DECODES_LIMIT", 4)
    expected = run(LOOP)
    assert all(len(table) <= 4 for _, table in core._shared.values())
    assert run(LOOP) == expected
