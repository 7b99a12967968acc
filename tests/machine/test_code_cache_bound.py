"""The CPU's host-side code caches (decoded instructions and blocks) are bounded: guest code
entered at every byte offset of its pages cannot make them grow past ``code_cache_limit``,
and the eviction changes no simulated result (a tiny bound and the default give the same
cycles, registers, memory, statistics and console)."""

from __future__ import annotations

import pytest
from test_machine_blocks import everything, kernel

from lavsim.cpu import core
from lavsim.cpu.asm import assemble
from lavsim.cpu.core import CODE_CACHE_LIMIT, CPU
from lavsim.machine import Machine, MachineConfig

ENTRY, SLED, CELL = 0x10000, 0x20000, 69


def nop_sleds(cells: int) -> Machine:
    """Cells of 64 NOPs and a JMP back to a dispatcher that enters each cell at every one of
    its first 64 byte offsets in turn: every entry decodes a new block."""
    src = f"""
        mov ebx, {SLED}
        mov ecx, 0
    again:
        lea eax, [ebx + ecx]
        inc ecx
        cmp ecx, 64
        jb go
        mov ecx, 0
        add ebx, {CELL}
        cmp ebx, {SLED + CELL * cells}
        jb go
        mov ebx, {SLED}
    go:
        jmp eax
    """
    back = ENTRY + 10  # 'again', after the two 5-byte MOVs
    sled = bytearray()
    for c in range(cells):
        end = SLED + (c + 1) * CELL
        sled += b"\x90" * 64 + b"\xe9" + ((back - end) & 0xFFFFFFFF).to_bytes(4, "little")
    m = Machine(MachineConfig(memory_size=1 << 20))
    m.load(ENTRY, assemble(src, origin=ENTRY).code)
    m.load(SLED, bytes(sled))
    m.setup_flat_protected_mode(entry=ENTRY)
    return m


def held(cpu: CPU) -> int:
    """Decoded instructions the caches hold now."""
    return len(cpu._icache) + sum(max(1, len(b.entries)) for b in cpu._blocks.values())


def test_nop_sleds_entered_at_every_offset_stay_within_the_cache_bound() -> None:
    m = nop_sleds(cells=3_000)
    cpu = m.cpu
    most = 0
    for _ in range(15):
        m.run(max_cycles=10_000)
        most = max(most, held(cpu))
        assert sum(map(len, cpu._code_pages.values())) <= CODE_CACHE_LIMIT
    assert cpu.instructions > CODE_CACHE_LIMIT  # the run decoded more than the bound holds
    assert CODE_CACHE_LIMIT // 2 < most <= CODE_CACHE_LIMIT


def test_a_tiny_cache_bound_changes_no_simulated_result_on_nop_sleds() -> None:
    out = []
    for limit in (CODE_CACHE_LIMIT, 16):
        m = nop_sleds(cells=40)
        m.cpu.code_cache_limit = limit
        results = [m.run(max_cycles=c) for c in (777, 20_000, 60_000)]
        assert held(m.cpu) <= limit
        out.append(everything(m, results))
    assert out[0] == out[1]


def test_a_tiny_cache_bound_changes_no_simulated_result_under_the_kernel() -> None:
    out = []
    for limit in (CODE_CACHE_LIMIT, 16):
        system = kernel("pentium", 1_300)
        system.machine.cpu.code_cache_limit = limit
        outcomes = [system.run(max_cycles=c) for c in (7_777, 120_000, 3_000_000)]
        assert held(system.machine.cpu) <= limit
        out.append((outcomes, everything(system.machine, []), system.console))
    assert out[0] == out[1]
    assert out[0][0][-1].status == "done"


def test_the_base_cost_memo_holds_a_bounded_number_of_profiles() -> None:
    from lavsim.cpu import decoder
    from lavsim.timing import get_profile

    base = get_profile("i486")
    for k in range(3 * decoder.KEY_CACHE_PROFILES):
        profile = base.with_costs({"nop": 1 + k % 3}, name=f"nop-{k}")
        m = Machine(MachineConfig(memory_size=1 << 20, profile=profile))
        m.load(ENTRY, b"\x90\xf4")
        m.setup_flat_protected_mode(entry=ENTRY)
        assert m.run().reason == "halted"
        assert len(decoder._key_caches) <= decoder.KEY_CACHE_PROFILES


def test_translated_nop_sleds_stay_within_the_bound_with_identical_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With every block translated at its first entry (translations count
    ``TRANSLATION_WEIGHT`` per instruction against the bound), the sled attack stays under
    the bound, tiny or default, and gives the results of the untranslated run."""
    monkeypatch.setattr(core, "TRANSLATE_AFTER", 0)
    out = []
    for limit, translate in ((CODE_CACHE_LIMIT, True), (1024, True), (CODE_CACHE_LIMIT, False)):
        m = nop_sleds(cells=40)
        m.cpu.code_cache_limit = limit
        m.cpu.translate = translate
        results = []
        for c in (777, 20_000, 60_000):
            results.append(m.run(max_cycles=c))
            assert m.cpu._cached <= limit
        if translate:
            assert any(b.xl for b in m.cpu._blocks.values())
        out.append(everything(m, results))
    assert out[0] == out[1] == out[2]
