"""Blocks shared between CPUs (lavsim.cpu.core._shared_block_table): a machine that finds the
blocks of the code it runs already built by another gives exactly the run it gives building
them itself (cycles, registers, memory, TLB statistics, cache counters, block observers'
records), with and without a cache board and block stops; and it never takes a block built
from other bytes (also past the block's end, where an instruction that did not decode ended
it), with other cut offsets or under a CS limit inside the page."""

from __future__ import annotations

from typing import Any

import pytest

from lavsim.cpu import core
from lavsim.cpu.asm import assemble
from lavsim.machine import BlockSplits, Machine, MachineConfig
from lavsim.mmu.descriptors import SYS_INTERRUPT_GATE32, GateDescriptor

ENTRY, UD_AT = 0x10000, 0x10F00
LOOP = """
    mov ecx, 60
    mov esi, 0x30000
again:
    mov eax, dword ptr [esi]
    add eax, ecx
    mov dword ptr [esi+4], eax
    call work
    push eax
    pop edx
    dec ecx
    jnz again
    hlt
work:
    imul eax, eax, 3
    add dword ptr [0x30010], eax
    ret
"""
# Skip the two bytes that did not decode.
UD = """
    add dword ptr [esp], 2
    iretd
"""


class Runs:
    """A block observer's record: every run as told."""

    def __init__(self, splits: BlockSplits) -> None:
        self.splits = splits
        self.seen: list[tuple[Any, ...]] = []

    def block_splits(self) -> BlockSplits:
        return self.splits

    def __call__(self, *step: Any) -> None:
        self.seen.append(("step", *step))

    def observe_run(self, *run: Any) -> None:
        self.seen.append(("run", *run))


def run(code: bytes, board: str, split: int | None, limit: int | None = None) -> tuple:
    m = Machine(MachineConfig(profile="pentium", board=board, memory_size=1 << 20))
    m.load(ENTRY, code)
    m.load(UD_AT, assemble(UD, origin=UD_AT).code)
    m.setup_flat_protected_mode(entry=ENTRY)
    m.load(0x2000 + 8 * 6, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, UD_AT, 0, 0).encode())
    if limit is not None:
        m.cpu.seg[1].max_off = limit  # the CS limit (host-side, as a loader would set it)
    runs = None
    if split is not None:
        runs = Runs(BlockSplits(frozenset({ENTRY, split}), frozenset(), ENTRY, ENTRY + 0x1000))
        m.add_observer(runs)
    result = m.run(max_cycles=200_000)
    counters = m.hierarchy.counters() if m.hierarchy is not None else None
    return (result, m.state_digest(), m.stats(), counters,
            None if runs is None else runs.seen)


def shared_hits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    hits: list[int] = []
    original = core.CPU._shared_block

    def counting(cpu: Any, eip: int, phys: int, cut: Any) -> Any:
        block = original(cpu, eip, phys, cut)
        if block is not None:
            hits.append(eip)
        return block

    monkeypatch.setattr(core.CPU, "_shared_block", counting)
    return hits


def unshared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_shared_block_table", lambda profile, fast: core._BlockTable())


@pytest.mark.parametrize("board", ["ideal", "p100"])
@pytest.mark.parametrize("split", [None, 0x10010])
def test_a_machine_running_shared_blocks_runs_as_if_it_built_them_alone(
    monkeypatch: pytest.MonkeyPatch, board: str, split: int | None,
) -> None:
    code = assemble(LOOP, origin=ENTRY).code
    core._shared_blocks.clear()
    hits = shared_hits(monkeypatch)
    run(code, board, split)
    assert not hits
    second = run(code, board, split)
    assert hits  # the second machine took the first one's blocks
    with monkeypatch.context() as alone:
        unshared(alone)
        assert run(code, board, split) == second


@pytest.mark.parametrize("board", ["ideal", "p100"])
def test_other_bytes_past_the_end_other_cuts_and_a_cs_limit_in_the_page_build_afresh(
    monkeypatch: pytest.MonkeyPatch, board: str,
) -> None:
    # The block after the first instruction (which runs alone: its fetch fills the host page
    # map) ends before two bytes that do not decode; in the second program they are an
    # instruction, which a fresh build puts in the block.
    head = assemble("nop\n    mov eax, 1\n    inc eax\n", origin=ENTRY).code
    tail = assemble(LOOP, origin=ENTRY + len(head) + 2).code
    before = head + b"\x0f\x04" + tail
    after = head + assemble("inc eax", origin=ENTRY).code + b"\x90" + tail
    assert len(after) == len(before)
    hits = shared_hits(monkeypatch)
    core._shared_blocks.clear()
    run(before, board, None)
    assert run(before, board, None) and ENTRY + 1 in hits  # (the same bytes: shared)
    for code, split, limit in [(after, None, None), (before, 0x10020, None),
                               (before, None, 0x10800)]:
        with monkeypatch.context() as alone:
            unshared(alone)
            expected = run(code, board, split, limit)
        core._shared_blocks.clear()
        run(before, board, None)  # the blocks of ``before``, uncut, CS limit 4 GiB
        hits.clear()
        assert run(code, board, split, limit) == expected
        assert ENTRY + 1 not in hits  # other bytes past the end, other cuts, a limit


def test_the_shared_blocks_hold_at_most_the_bound_with_the_same_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = assemble(LOOP, origin=ENTRY).code
    with monkeypatch.context() as alone:
        unshared(alone)
        expected = run(code, "p100", 0x10010)
    monkeypatch.setattr(core, "SHARED_DECODES_LIMIT", 8)
    core._shared_blocks.clear()
    assert [run(code, "p100", 0x10010) for _ in range(3)] == [expected] * 3
    tables = [table for _, table in core._shared_blocks.values()]
    assert tables and all(0 < t.held <= 8 for t in tables)
    assert sum(sum(len(e) for _, e, _ in t.values()) for t in tables) <= 8 * len(tables)
