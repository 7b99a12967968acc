"""Block observers on a cache board: the CPU runs each dispatch unit as a traced block (every
instruction's fetch looked up and reported as the per-instruction path reports it), and that
changes nothing against the same machine told step by step (a no-op per-instruction observer
forces single steps): the same run results, observer records, registers, memory, TLB contents
in LRU order with statistics, cache and write-buffer state, hierarchy counters and, with a
recording tracer beside the hierarchy, the same stream of physical accesses in order.

The program runs with paging (identity mapped; on the i486 its code, four counters and its copy
share a set of the unified TLB: data accesses demote the code page's entry mid-block, and the
set's LRU order decides the evictions) and has
calls, REP MOVSD copies stopped by timer interrupts, a fault in the middle of a
block, stores beside its code and over its own code, and HLT idling."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from typing import Any

import pytest

from lavsim.cpu.asm import assemble
from lavsim.cpu.core import CPU
from lavsim.machine import BlockObserver, BlockSplits, Machine, MachineConfig
from lavsim.mmu.descriptors import SYS_INTERRUPT_GATE32, GateDescriptor
from lavsim.mmu.mmu import Access

ENTRY, TICK_AT, UD_AT = 0x10000, 0x10800, 0x10900

MAIN = """
    mov eax, 0x80000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov ebp, 0
    sti
again:
    call work
    mov esi, 0x40000
    mov edi, 0x68000
    mov ecx, ebp
    imul ecx, ecx, 53
    and ecx, 0x3FF
    rep movsd
    mov eax, ebp
marked:
    add eax, 3
    ud2
    mov byte ptr [patch + 1], 7
    inc ebp
    cmp ebp, 24
    jne again
    hlt
    hlt
    cli
    hlt
work:
    mov ecx, 12
spin:
    add dword ptr [0x30000], ecx
    sub dword ptr [0x38000], ecx
    add dword ptr [0x48000], ecx
    xor dword ptr [0x50000], ecx
    dec ecx
    jnz spin
patch:
    mov edx, 5
tail:
    add dword ptr [beside], edx
    ret
beside:
    dd 0
"""
TICK = """
    push eax
    mov al, 0x20
    out 0x20, al
    pop eax
    iretd
"""
UD = """
    add dword ptr [esp], 2
    iretd
"""


class Recorder:
    """Steps and cycles by (kind, region, CPL), and the runs of several steps."""

    def __init__(self, splits: BlockSplits) -> None:
        self.splits = splits
        self.edges = sorted(splits.starts)
        self.steps: Counter[tuple[str, int, int]] = Counter()
        self.cycles: Counter[tuple[str, int, int]] = Counter()
        self.long_runs = 0

    def block_splits(self) -> BlockSplits:
        return self.splits

    def __call__(self, kind: str, cs: int, eip: int, pc: int, cpl: int, before: int,
                 after: int, /) -> None:
        self.observe_run(kind, cs, eip, pc, cpl, 1, before, after)

    def observe_run(self, kind: str, cs: int, eip: int, pc: int, cpl: int, steps: int,
                    before: int, after: int, /) -> None:
        region = bisect_right(self.edges, pc)
        self.steps[(kind, region, cpl)] += steps
        self.cycles[(kind, region, cpl)] += after - before
        self.long_runs += steps > 1


class Events:
    """Every physical access reported, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[Access, int, int, bool]] = []

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None:
        self.seen.append((kind, phys, size, user))


def observed(profile: str, board: str, per_step: bool, record: bool) -> tuple[Any, ...]:
    m = Machine(MachineConfig(profile=profile, board=board, memory_size=1 << 20,
                              timer_period=1_300))
    program = assemble(MAIN, origin=ENTRY)
    sym = dict(program.symbols)
    m.load(ENTRY, program.code)
    m.load(TICK_AT, assemble(TICK, origin=TICK_AT).code)
    m.load(UD_AT, assemble(UD, origin=UD_AT).code)
    m.setup_flat_protected_mode(entry=ENTRY)
    m.load(0x2000 + 8 * 0x20, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, TICK_AT, 0, 0).encode())
    m.load(0x2000 + 8 * 6, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, UD_AT, 0, 0).encode())
    m.load(0x40000, bytes(k & 0xFF for k in range(0x1000)))
    # Page tables at 0x80000: the first MiB identity mapped, user and writable.
    m.load(0x80000, (0x81000 | 7).to_bytes(4, "little"))
    m.load(0x81000, b"".join(((k << 12) | 7).to_bytes(4, "little") for k in range(256)))
    splits = BlockSplits(frozenset({ENTRY, sym["work"], sym["tail"], TICK_AT}),
                         frozenset({sym["marked"]}), ENTRY, UD_AT + 0x100)
    rec = Recorder(splits)
    assert isinstance(rec, BlockObserver)
    m.add_observer(rec)
    if per_step:
        m.add_observer(lambda *step: None)
    events = Events()
    if record:
        m.mmu.add_tracer(events)
    results = []
    for _ in range(300):
        result = m.run(max_cycles=4_999)
        results.append(result)
        if result.reason == "halted":
            break
    cpu = m.cpu
    assert m.hierarchy is not None
    state = (list(cpu.regs), cpu.eip, cpu.tsc, cpu.instructions, m.state_digest(), m.stats(),
             m.idle_cycles, cpu.unretired, m.mmu.get_state(), m.hierarchy.get_state(),
             cpu.issue_state())
    return results, state, dict(rec.steps), dict(rec.cycles), events.seen, rec.long_runs


@pytest.mark.parametrize("record", [False, True])
@pytest.mark.parametrize(("profile", "board"), [
    ("i486", "486dx2-66"), ("i486", "486dx-50"), ("pentium", "p100")])
def test_traced_units_run_as_blocks_leave_what_single_steps_leave(
    profile: str, board: str, record: bool,
) -> None:
    *by_unit, long_runs = observed(profile, board, per_step=False, record=record)
    *by_step, none = observed(profile, board, per_step=True, record=record)
    assert by_unit == by_step
    assert long_runs > 0 and none == 0
    results, state, steps, _, seen = by_unit
    assert results[-1].reason == "halted"
    assert {kind for kind, _, _ in steps} == {"instruction", "interrupt", "idle"}
    assert state[7] > 10  # faults delivered and REP copies stopped by the timer
    if record:
        assert sum(1 for e in seen if e[0] is Access.INSN) == state[3] + state[7]


@pytest.mark.parametrize("record", [False, True])
@pytest.mark.parametrize(("profile", "board"), [("i486", "486dx2-66"), ("pentium", "p100")])
def test_units_that_go_on_into_the_next_blocks_leave_what_one_block_per_unit_leaves(
    monkeypatch: pytest.MonkeyPatch, profile: str, board: str, record: bool,
) -> None:
    """A unit going on into the blocks that follow in its region (``run_unit``'s ``within``)
    against one block per unit: the same results, observer records, state and accesses, in
    fewer calls."""
    calls: list[int] = []
    real = CPU.run_unit

    def counted(chain: bool) -> Any:
        def run_unit(cpu: CPU, n: int | None, c: int | None,
                     within: tuple[int, int] | None = None) -> None:
            calls[-1] += 1
            real(cpu, n, c, within if chain else None)
        return run_unit

    out = []
    for chain in (True, False):
        calls.append(0)
        monkeypatch.setattr(CPU, "run_unit", counted(chain))
        out.append(observed(profile, board, per_step=False, record=record))
    assert out[0] == out[1]
    assert 0 < calls[0] < calls[1]
