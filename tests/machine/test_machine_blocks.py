"""Machine.run's block path (CPU.run, bounded by the next device event and the budget) gives
exactly the run of its per-step path (forced here by a no-op step observer): cycles, stop
reasons, registers, memory, TLB statistics, console, timer ticks and interrupts taken, on a
bare machine with an IDT and a timer handler and on the Lavender kernel."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.cpu.asm import assemble
from lavsim.kernel import LavenderSystem
from lavsim.machine import Machine, MachineConfig
from lavsim.mmu.descriptors import SYS_INTERRUPT_GATE32, GateDescriptor

ENTRY, HANDLER, COUNTER = 0x10000, 0x10800, 0x20000

# Work with REP copies of random lengths, console output, and now and then a new timer
# period (a device event moved by an I/O instruction in the middle of a block run).
MAIN = """
    mov ebp, 0
    sti
again:
    mov esi, 0x40000
    mov edi, 0x60000
    mov ecx, ebp
    imul ecx, ecx, 37
    and ecx, 0x1FF
    rep movsd
    mov ecx, 20
spin:
    add dword ptr [0x30000], ecx
    dec ecx
    jnz spin
    mov eax, ebp
    and eax, 15
    add eax, 0x61
    out 0xE9, al
    test ebp, 7
    jnz same
    mov eax, ebp
    and eax, 0x1F0
    add eax, PERIOD
    out 0x40, eax
same:
    inc ebp
    cmp ebp, 60
    jne again
    cli
    hlt
"""
TICK = f"""
    push eax
    inc dword ptr [{COUNTER}]
    mov al, 0x21
    out 0xE9, al
    mov al, 0x20
    out 0x20, al
    pop eax
    iretd
"""


def bare(period: int, profile: str) -> Machine:
    m = Machine(MachineConfig(profile=profile, memory_size=1 << 20, timer_period=period))
    m.load(ENTRY, assemble(f".equ PERIOD, {period}\n" + MAIN, origin=ENTRY).code)
    m.load(HANDLER, assemble(TICK, origin=HANDLER).code)
    m.setup_flat_protected_mode(entry=ENTRY)
    m.load(0x2000 + 8 * 0x20, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, HANDLER, 0, 0).encode())
    m.load(0x40000, bytes(k & 0xFF for k in range(0x1000)))
    return m


def everything(m: Machine, results: list[Any]) -> tuple[object, ...]:
    cpu = m.cpu
    return (results, list(cpu.regs), cpu.eip, cpu.get_eflags(), cpu.tsc, cpu.instructions,
            m.state_digest(), m.stats(), m.console, m.pic.get_state(), m.timer.get_state(),
            m.idle_cycles)


def run_both_ways(make: Any, budgets: list[tuple[int | None, int | None]]
                  ) -> tuple[tuple[object, ...], tuple[object, ...]]:
    out = []
    for observed in (False, True):
        m = make()
        if observed:
            m.add_observer(lambda *step: None)  # forces the per-step path
        results = [m.run(max_cycles=c, max_instructions=n) for c, n in budgets]
        out.append(everything(m, results))
    return out[0], out[1]


@settings(max_examples=12, deadline=None)
@given(period=st.integers(300, 3_000), profile=st.sampled_from(["i486", "pentium"]),
       budgets=st.lists(st.tuples(st.one_of(st.none(), st.integers(1, 20_000)),
                                  st.one_of(st.none(), st.integers(1, 3_000))),
                        min_size=1, max_size=6))
def test_a_bare_machine_with_timer_interrupts_runs_identically_both_ways(
    period: int, profile: str, budgets: list[tuple[int | None, int | None]]
) -> None:
    budgets = [(c if c is not None or n is not None else 50_000, n) for c, n in budgets]
    blocks, steps = run_both_ways(lambda: bare(period, profile), [*budgets, (2_000_000, None)])
    assert blocks == steps
    assert blocks[0][-1].reason == "halted"  # type: ignore[index]
    assert "!" in str(blocks[8]) and "a" in str(blocks[8])


WORKER = """
main:
    mov esi, eax
    mov edi, 0
round:
    mov ecx, 40
work:
    inc dword ptr [4]
    dec ecx
    jnz work
    push esi
    mov eax, 4
    mov ebx, esp
    mov ecx, 1
    mov edx, 0x17
    int 0x30
    pop eax
    inc edi
    cmp edi, 6
    jne round
    mov eax, 0
    mov ebx, edi
    int 0x30
"""


def kernel(profile: str, period: int) -> LavenderSystem:
    """Four groups printing letters under timer preemption (CR3 switches, TLB refills), a
    faulting thread, and an echo server with a client copying messages with REP MOVSD."""
    from ipc_kit import CLIENT, ECHO_SERVER, client_data, define

    from lavsim.kernel import layout as L

    system = LavenderSystem(profile=profile, memory_size=8 << 20, timer_period=period,
                            observe=False)
    sizes = [L.IPC_MAX_MESSAGE, 64, L.IPC_MAX_MESSAGE // 2]
    rpc = system.create_group()
    server = system.create_process(rpc, define(ECHO_SERVER, REPLY_WAIT=L.SYS_REPLY_WAIT),
                                   data=bytes([len(sizes)]), data_size=0x2000)
    payload = bytes((k * 13) & 0xFF for k in range(L.IPC_MAX_MESSAGE + 8))
    client = system.create_process(rpc, define(CLIENT, CALL=L.SYS_CALL),
                                   data=client_data(len(sizes), 1, sizes, payload),
                                   data_size=0x2000 + 0x1000 * len(sizes))
    system.create_thread(server, "main")
    system.create_thread(client, "main")
    for letter in "abcd":
        group = system.create_group()
        process = system.create_process(group, WORKER, data_size=16, max_threads=2)
        system.create_thread(process, "main", args=(ord(letter),))
    bad = system.create_process(system.groups[0], image=bytes([0x0F, 0x0B]))
    system.create_thread(bad, 0)
    return system


def test_the_lavender_kernel_runs_identically_both_ways() -> None:
    for profile, period in (("i486", 650), ("pentium", 1_300)):
        out = []
        for observed in (False, True):
            system = kernel(profile, period)
            if observed:
                system.machine.add_observer(lambda *step: None)
            outcomes = [system.run(max_cycles=c) for c in (7_777, 120_000, 3_000_000)]
            out.append((outcomes, everything(system.machine, []), system.console))
        assert out[0] == out[1]
        outcomes, state, console = out[0]
        assert outcomes[-1].status == "done", outcomes
        assert all(ch * 6 in console.replace("\n", "") or console.count(ch) == 6
                   for ch in "abcd")
        stats = state[7]
        assert stats.interrupts > 5 and stats.tlb.misses > 0  # type: ignore[attr-defined]
