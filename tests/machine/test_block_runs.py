"""Block observers (lavsim.machine.BlockObserver) and the CPU's block stops.

A block observer told once per run counts what it counts told step by step (forced by a no-op
per-instruction observer): the same steps and cycles per (kind, region, CPL), the same state
read after each single, the same machine at the end, on ring-0 code with calls, REP copies
stopped by timer interrupts, faults delivered in the middle of a block, HLT idling and
breakpoints. And the CPU hook: one dispatch unit per run() call, blocks cut at the offsets,
steps that retire nothing counted."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from typing import Any

import pytest

from lavsim.cpu.asm import assemble
from lavsim.cpu.state import EAX
from lavsim.machine import BlockObserver, BlockSplits, Machine, MachineConfig
from lavsim.mmu.descriptors import SYS_INTERRUPT_GATE32, GateDescriptor

ENTRY, TICK_AT, UD_AT = 0x10000, 0x10800, 0x10900

MAIN = """
    mov ebp, 0
    sti
again:
    call work
    mov esi, 0x40000
    mov edi, 0x60000
    mov ecx, ebp
    imul ecx, ecx, 37
    and ecx, 0x3FF
    rep movsd
    mov eax, ebp
marked:
    add eax, 3
    ud2
    inc ebp
    cmp ebp, 30
    jne again
    hlt
    hlt
    cli
    hlt
work:
    mov ecx, 20
spin:
    add dword ptr [0x30000], ecx
    dec ecx
    jnz spin
    mov edx, ecx
tail:
    add dword ptr [0x30000], 1
    ret
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


def machine(profile: str, period: int) -> tuple[Machine, dict[str, int]]:
    m = Machine(MachineConfig(profile=profile, memory_size=1 << 20, timer_period=period))
    program = assemble(MAIN, origin=ENTRY)
    m.load(ENTRY, program.code)
    m.load(TICK_AT, assemble(TICK, origin=TICK_AT).code)
    m.load(UD_AT, assemble(UD, origin=UD_AT).code)
    m.setup_flat_protected_mode(entry=ENTRY)
    m.load(0x2000 + 8 * 0x20, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, TICK_AT, 0, 0).encode())
    m.load(0x2000 + 8 * 6, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, UD_AT, 0, 0).encode())
    m.load(0x40000, bytes(k & 0xFF for k in range(0x1000)))
    return m, dict(program.symbols)


class Recorder:
    """Steps, cycles and the counter's growth by (kind, region, CPL); EAX right after each
    single."""

    def __init__(self, m: Machine, splits: BlockSplits) -> None:
        self.machine = m
        self.splits = splits
        self.edges = sorted(splits.starts)
        self.steps: Counter[tuple[str, int, int]] = Counter()
        self.cycles: Counter[tuple[str, int, int]] = Counter()
        self.after_singles: list[tuple[int, int, int]] = []
        self.long_runs = 0
        # State read when told (what the step or run left): the counter ``work`` adds to.
        self.added: Counter[tuple[str, int, int]] = Counter()
        self._counter = 0

    def block_splits(self) -> BlockSplits:
        return self.splits

    def __call__(self, kind: str, cs: int, eip: int, pc: int, cpl: int, before: int,
                 after: int, /) -> None:
        self.observe_run(kind, cs, eip, pc, cpl, 1, before, after)

    def observe_run(self, kind: str, cs: int, eip: int, pc: int, cpl: int, steps: int,
                    before: int, after: int, /) -> None:
        region = bisect_right(self.edges, pc) if self.splits.low <= pc < self.splits.high else pc
        key = (kind, region, cpl)
        self.steps[key] += steps
        self.cycles[key] += after - before
        self.long_runs += steps > 1
        counter = self.machine.memory.read32(0x30000)
        self.added[key] += counter - self._counter
        self._counter = counter
        if pc in self.splits.singles:
            assert steps == 1
            self.after_singles.append((pc, after, self.machine.cpu.regs[EAX]))


def observed(profile: str, period: int, per_step: bool, breakpoint: bool) -> tuple[Any, ...]:
    m, sym = machine(profile, period)
    splits = BlockSplits(frozenset({ENTRY, sym["work"], sym["tail"], TICK_AT}),
                         frozenset({sym["marked"]}), ENTRY, UD_AT + 0x100)
    rec = Recorder(m, splits)
    assert isinstance(rec, BlockObserver)
    m.add_observer(rec)
    if per_step:
        m.add_observer(lambda *step: None)
    if breakpoint:
        m.add_breakpoint(sym["tail"])
    results = []
    for _ in range(200):
        result = m.run(max_cycles=7_919)
        results.append(result)
        if result.reason == "halted":
            break
    cpu = m.cpu
    state = (list(cpu.regs), cpu.eip, cpu.tsc, cpu.instructions, m.state_digest(), m.stats(),
             m.idle_cycles, m.pic.get_state(), cpu.unretired)
    return (results, state, dict(rec.steps), dict(rec.cycles), dict(rec.added),
            rec.after_singles, rec.long_runs)


@pytest.mark.parametrize("profile", ["i486", "pentium"])
@pytest.mark.parametrize("breakpoint", [False, True])
def test_a_block_observer_counts_what_it_counts_step_by_step(
    profile: str, breakpoint: bool,
) -> None:
    *by_run, long_runs = observed(profile, 900, per_step=False, breakpoint=breakpoint)
    *by_step, none = observed(profile, 900, per_step=True, breakpoint=breakpoint)
    assert by_run == by_step
    assert long_runs > 0 and none == 0
    results, state, steps, *_ = by_run
    kinds = {kind for kind, _, _ in steps}
    assert kinds == {"instruction", "interrupt", "idle"}
    assert state[-1] > 30  # faults delivered and REP copies stopped by the timer
    assert any(r.reason == "breakpoint" for r in results) == breakpoint


def test_breakpoints_alone_keep_blocks_and_stop_where_steps_stop() -> None:
    def run(per_step: bool) -> tuple[Any, ...]:
        m, sym = machine("i486", 700)
        m.add_breakpoint(sym["tail"])
        m.add_breakpoint(sym["spin"])
        if per_step:
            m.add_observer(lambda *step: None)
        calls = 0
        original = m.cpu.run

        def counting(*args: Any) -> str:
            nonlocal calls
            calls += 1
            return original(*args)

        m.cpu.run = counting  # type: ignore[method-assign]
        results = [m.run(max_cycles=50_000) for _ in range(150)]
        return results, m.state_digest(), m.stats(), calls

    *blocks, calls = run(False)
    *steps, none = run(True)
    assert blocks == steps
    assert calls > 0 and none == 0
    assert sum(r.reason == "breakpoint" for r in blocks[0]) > 100


def test_block_stops_make_run_return_after_one_unit_cut_at_the_offsets() -> None:
    m, sym = machine("i486", 0)
    cpu = m.cpu
    cpu.run(max_instructions=3)  # mov ebp; sti; call work -> at work
    assert cpu.eip == sym["work"]
    cpu.set_block_stops(frozenset())
    before = cpu.instructions
    assert cpu.run() == "stopped"
    assert cpu.instructions - before == 4  # the block mov ecx / add / dec / jnz
    cpu.set_block_stops(frozenset({sym["spin"] & 0xFFF}))  # cut the loop body's block
    before = cpu.instructions
    assert cpu.run() == "stopped"
    assert cpu.instructions - before == 3  # add / dec / jnz (spin starts the block)
    cpu.set_block_stops(frozenset({(sym["spin"] + 6) & 0xFFF}))  # cut before dec: rebuilt
    before = cpu.instructions
    assert cpu.run() == "stopped"
    assert cpu.instructions - before == 1
    cpu.set_block_stops(None)
    assert cpu.run(max_instructions=50) == "instruction_limit"


def test_a_fault_in_a_block_counts_one_step_that_did_not_retire() -> None:
    m, sym = machine("i486", 0)
    cpu = m.cpu
    while cpu.eip != sym["marked"]:
        cpu.run(max_instructions=1)
    cpu.set_block_stops(frozenset())
    before, unretired = cpu.instructions, cpu.unretired
    assert cpu.run() == "stopped"  # add eax, 3 retires; ud2 faults and is delivered
    assert (cpu.instructions - before, cpu.unretired - unretired) == (1, 1)
    assert cpu.eip == UD_AT


def test_after_a_bus_error_the_block_observer_has_every_step_that_retired() -> None:
    # The run at ``next`` is one block: two instructions retire, the third reaches beyond
    # installed memory.
    def run(per_step: bool) -> tuple[Any, ...]:
        m = Machine(MachineConfig(memory_size=1 << 20))
        code = assemble("""
            mov ecx, 50
            jmp next
        next:
            add eax, ecx
            add eax, ecx
            mov eax, dword ptr [0x200000]
            hlt
        """, origin=ENTRY)
        m.load(ENTRY, code.code)
        m.setup_flat_protected_mode(entry=ENTRY)
        rec = Recorder(m, BlockSplits(frozenset({ENTRY, code.symbols["next"]}), frozenset(),
                                      ENTRY, ENTRY + 0x100))
        m.add_observer(rec)
        if per_step:
            m.add_observer(lambda *step: None)
        result = m.run()
        return result.reason, result.instructions, dict(rec.steps), rec.long_runs

    reason, retired, steps, long_runs = run(False)
    assert (reason, retired, steps) == run(True)[:3]
    assert (reason, retired, sorted(steps.values())) == ("bus_error", 4, [2, 2])
    assert long_runs == 2  # mov ecx + jmp, then add + add
