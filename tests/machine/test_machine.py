"""The Machine: building, stop reasons, breakpoints, tracing, the timer through the IDT, the
console, HLT idling and determinism."""

from __future__ import annotations

import pytest
from bare_machines import COUNTER, ENTRY, HANDLER, machine, timer_machine

from lavsim.errors import ConfigError
from lavsim.faults import DF, GP
from lavsim.machine import Machine, MachineConfig, RunResult
from lavsim.mmu.descriptors import SYS_INTERRUPT_GATE32, GateDescriptor


def test_config_refuses_bad_fields_naming_them() -> None:
    for field, kwargs in (
        ("profile", {"profile": "z80"}),
        ("memory_size", {"memory_size": 1000}),
        ("timer_period", {"timer_period": -1}),
        ("pic_base", {"pic_base": 0x21}),
    ):
        with pytest.raises(ConfigError) as info:
            MachineConfig(**kwargs)  # type: ignore[arg-type]
        assert info.value.field == field


def test_hlt_with_interrupts_disabled_stops_as_halted() -> None:
    m = machine(bytes([0xFA, 0xF4]))  # cli; hlt
    result = m.run(max_cycles=10_000)
    assert result.reason == "halted" and result.instructions == 2


def test_instruction_and_cycle_limits() -> None:
    m = machine(bytes([0xEB, 0xFE]))  # jmp $
    assert m.run(max_instructions=5) == RunResult("instruction_limit", m.cpu.tsc, 5)
    result = m.run(max_cycles=100)
    assert result.reason == "cycle_limit" and result.cycles >= 100


def test_console_port_collects_text() -> None:
    code = b"".join(bytes([0xB0, ch, 0xE6, 0xE9]) for ch in b"ok\n") + bytes([0xFA, 0xF4])
    m = machine(code)
    assert m.run(max_instructions=100).reason == "halted"
    assert m.console == "ok\n"


def test_breakpoint_stops_before_the_instruction_and_run_continues_past_it() -> None:
    m = machine(bytes([0x90, 0x90, 0x90, 0xFA, 0xF4]))
    m.add_breakpoint(ENTRY + 2)
    first = m.run()
    assert (first.reason, first.breakpoint, m.cpu.eip) == ("breakpoint", ENTRY + 2, ENTRY + 2)
    assert m.run().reason == "halted"


def test_trace_hook_sees_every_instruction() -> None:
    lines: list[str] = []
    m = machine(bytes([0x90, 0x90, 0xFA, 0xF4]))
    m.trace = lines.append
    m.run()
    assert len(lines) == 4
    assert "0008:00010000" in lines[0]


def test_triple_fault_stops_the_machine_with_a_report() -> None:
    m = machine(bytes([0xCD, 0x30]))  # int 0x30 through an empty IDT
    result = m.run(max_instructions=10)
    assert result.reason == "triple_fault"
    assert result.report.vectors == (GP, GP, DF, GP)
    assert result.report.eip == ENTRY
    assert "triple fault" in result.detail
    assert m.run().reason == "triple_fault", "a shut-down machine stays down"


def test_timer_interrupts_every_n_cycles_while_idle_in_hlt() -> None:
    m = timer_machine(1000)
    result = m.run(max_cycles=10_500)
    assert result.reason == "cycle_limit"
    assert m.memory.read32(COUNTER) == 10
    stats = m.stats()
    assert stats.timer_ticks == 10 and stats.interrupts == 10
    assert stats.idle_cycles > 5_000, "the CPU slept in HLT between ticks"


def test_masked_timer_line_delivers_nothing() -> None:
    m = timer_machine(1000)
    m.pic.imr = 0x01
    m.run(max_cycles=5_000)
    assert m.memory.read32(COUNTER) == 0


def test_two_identical_runs_are_identical() -> None:
    digests = []
    for _ in range(2):
        m = timer_machine(777, profile="pentium")
        result = m.run(max_cycles=20_000)
        digests.append((result, m.state_digest(), m.stats().tlb))
    assert digests[0] == digests[1]


def test_step_executes_one_instruction() -> None:
    m = machine(bytes([0x90, 0x90]))
    result = m.step()
    assert result.instructions == 1 and m.cpu.eip == ENTRY + 1


def test_stats_table_is_readable() -> None:
    m = machine(bytes([0xFA, 0xF4]))
    m.run()
    assert "instructions" in m.stats().table()


def test_guest_page_table_outside_memory_is_a_bus_error_not_a_python_error() -> None:
    # mov eax, 0x0FFFF000; mov cr3, eax; mov eax, 0x80000011; mov cr0, eax; nop
    code = bytes([0xB8, 0x00, 0xF0, 0xFF, 0x0F, 0x0F, 0x22, 0xD8,
                  0xB8, 0x11, 0x00, 0x00, 0x80, 0x0F, 0x22, 0xC0, 0x90])
    m = machine(code)
    result = m.run(max_instructions=10)
    assert result.reason == "bus_error" and "outside installed memory" in result.detail


# --- REP string instructions are interruptible ---------------------------------------------

SRC, DST, ITEMS = 0x40000, 0x60000, 4096
REP_MAIN = f"""
    mov esi, {SRC}
    mov edi, {DST}
    mov ecx, {ITEMS}
    cld
    sti
copy:
    rep movsd
    cli
    hlt
"""
# Records ECX at every tick (the items left when the interrupt was taken), then EOI.
REP_TICK = f"""
    push eax
    push ebx
    mov ebx, dword ptr [{COUNTER}]
    mov dword ptr [{COUNTER + 4}+ebx*4], ecx
    inc dword ptr [{COUNTER}]
    mov al, 0x20
    out 0x20, al
    pop ebx
    pop eax
    iretd
"""


def rep_machine(period: int) -> tuple[Machine, int, bytes]:
    from lavsim.cpu.asm import assemble

    main = assemble(REP_MAIN, origin=ENTRY)
    m = machine(main.code, timer_period=period)
    m.load(HANDLER, assemble(REP_TICK, origin=HANDLER).code)
    m.load(0x2000 + 8 * 0x20, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, HANDLER, 0, 0).encode())
    data = bytes((k * 7 + k // 251) & 0xFF for k in range(4 * ITEMS))
    m.load(SRC, data)
    return m, main.symbols["copy"], data


def test_a_timer_interrupt_in_a_long_rep_movsd_is_taken_between_iterations() -> None:
    m, rep_at, data = rep_machine(period=3_000)
    taken: list[tuple[int, int]] = []

    def watch(kind: str, cs: int, eip: int, pc: int, cpl: int, before: int, after: int) -> None:
        if kind == "interrupt":
            taken.append((eip, before))

    m.add_observer(watch)
    result = m.run(max_cycles=1_000_000)
    assert result.reason == "halted"
    per = m.cpu.profile.table["rep_movs.per"]
    # Every tick fell inside the copy and was taken at the REP, within one item of the tick.
    ticks = m.memory.read32(COUNTER)
    assert ticks == m.timer.ticks >= 4 and len(taken) == ticks
    for eip, before in taken:
        assert eip == rep_at and 0 <= before % 3_000 < per
    left = [m.memory.read32(COUNTER + 4 + 4 * k) for k in range(ticks)]
    assert left == sorted(left, reverse=True) and left[-1] > 0 and left[0] < ITEMS
    # The copy completed correctly after the interruptions.
    assert m.memory.read(DST, 4 * ITEMS) == data and m.cpu.regs[1] == 0
    # The block path (no observer) takes the same interrupts at the same items.
    plain, _, _ = rep_machine(period=3_000)
    assert plain.run(max_cycles=1_000_000) == result
    assert plain.state_digest() == m.state_digest() and plain.stats() == m.stats()


def test_an_uninterrupted_rep_costs_base_plus_items_and_budget_cuts_change_nothing() -> None:
    whole, _, data = rep_machine(period=0)
    whole.run(max_cycles=1_000_000)
    empty, _, _ = rep_machine(period=0)
    empty.load(ENTRY + 11, (0).to_bytes(4, "little"))  # mov ecx, 0
    empty.run(max_cycles=1_000_000)
    t = whole.cpu.profile.table
    assert whole.cpu.tsc - empty.cpu.tsc == ITEMS * t["rep_movs.per"]
    assert whole.memory.read(DST, 4 * ITEMS) == data
    # The same run cut by the host into pieces of 100 cycles: same cycles, state, retired.
    cut, _, _ = rep_machine(period=0)
    pieces = 0
    while cut.run(max_cycles=100).reason == "cycle_limit":
        pieces += 1
    # A piece stops at the first item boundary at or past its budget, so it may run up to
    # per - 1 cycles over the 100.
    assert pieces > ITEMS * t["rep_movs.per"] // (100 + t["rep_movs.per"] - 1) - 2
    assert cut.state_digest() == whole.state_digest()
    assert cut.cpu.instructions == whole.cpu.instructions
