"""Thread ids and TCBs are reused once all have been handed out (issue 19, finding 10), a stale
host handle never reads the thread that took its TCB over (generation numbers), and the
observer's context-switch log stays bounded."""

from __future__ import annotations

import pytest

from lavsim.errors import ConfigError
from lavsim.kernel import LavenderSystem, Process, ProcessGroup
from lavsim.kernel import layout as L
from lavsim.kernel.invariants import check_kernel_consistency
from lavsim.kernel.observer import SWITCH_LOG_MAX

#: main: ROUNDS times create a child (which exits with its argument) and yield so it runs;
#: count the creations that succeeded at [0], store the first error at [4]; exit.
SPAWNER = """
main:
    mov esi, 0
.Lround:
    mov eax, 5
    mov ebx, offset child
    mov ecx, esi
    int 0x30
    test eax, eax
    js .Lfailed
    inc dword ptr [0]
    mov eax, 1
    int 0x30
    inc esi
    cmp esi, ROUNDS
    jb .Lround
    jmp .Lend
.Lfailed:
    mov dword ptr [4], eax
.Lend:
    mov eax, 0
    mov ebx, 0
    int 0x30
child:
    mov ebx, eax
    mov eax, 0
    int 0x30
"""

IDLE = """
main:
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def test_create_thread_keeps_working_after_more_threads_than_tcbs_have_come_and_gone() -> None:
    rounds = L.MAX_THREADS + 60
    system = LavenderSystem(memory_size=8 << 20, timer_period=0, observe=False)
    process = system.create_process(system.create_group(), f".equ ROUNDS, {rounds}\n" + SPAWNER,
                                    data_size=16, max_threads=2)
    system.create_thread(process, "main")
    outcome = system.run(max_cycles=20_000_000)
    assert outcome.status == "done", outcome
    assert system.read_data32(process, 4) == 0  # no error
    assert system.read_data32(process, 0) == rounds
    assert check_kernel_consistency(system) == []


#: Waits on a port of its own for a message that never comes (keeps the kernel running).
KEEPER = """
main:
    mov eax, 16
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov ebx, eax
    mov eax, 19
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    int 0x30
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def _settle(system: LavenderSystem) -> None:
    """Run until every thread but the keeper has ended, stopping outside a kernel path."""
    system.run(max_cycles=3_000_000)
    cpu = system.machine.cpu
    while cpu.cpl == 0 and not cpu.halted:
        system.run(max_instructions=1)


def test_the_boot_loader_reuses_dead_threads_tcbs_and_a_stale_handle_is_refused() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=2_000, observe=False)
    group = system.create_group()
    system.create_thread(system.create_process(group, KEEPER), "main")
    per = L.MAX_THREADS_PER_PROCESS
    processes = [system.create_process(group, IDLE, max_threads=per)
                 for _ in range(-(-(L.MAX_THREADS - 2) // per))]
    old = [system.create_thread(processes[k // per], "main") for k in range(L.MAX_THREADS - 2)]
    with pytest.raises(ConfigError, match="threads"):
        system.create_thread(processes[-1], "main")  # every TCB is live
    _settle(system)
    assert all(system.thread_state(t).state == "dead" for t in old)
    new = system.create_thread(processes[0], "main")
    stale = next(t for t in old if t.tid == new.tid)
    assert new.generation == stale.generation + 1
    with pytest.raises(ConfigError, match="reused"):
        system.thread_state(stale)
    assert system.thread_state(new).state == "ready"
    assert system.thread_state(new.tid).state == "ready"
    _settle(system)
    assert system.thread_state(new).state == "dead"
    assert system.thread_state(new).exit_code == 0
    assert check_kernel_consistency(system) == []


#: Two of these yield to each other ROUNDS times.
YIELDER = """
main:
    mov esi, ROUNDS
.Lagain:
    mov eax, 1
    int 0x30
    dec esi
    jnz .Lagain
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def test_the_observers_switch_log_is_bounded_and_keeps_the_latest_switches() -> None:
    rounds = SWITCH_LOG_MAX // 2 + 200
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    process = system.create_process(system.create_group(),
                                    f".equ ROUNDS, {rounds}\n" + YIELDER, max_threads=2)
    a, b = (system.create_thread(process, "main") for _ in range(2))
    assert system.run(max_cycles=20_000_000).status == "done"
    observer = system.observer
    assert observer is not None
    assert observer.context_switches > SWITCH_LOG_MAX
    log = list(observer.switch_log)
    assert len(log) == SWITCH_LOG_MAX
    # The latest switches: a and b alternate up to the end.
    assert set(log[-10:]) == {(a.tcb_linear, b.tcb_linear), (b.tcb_linear, a.tcb_linear)}


#: Server: ports 1 and 2; receive a call on 1 (its reply token at [0]) and reply; wait for a
#: plain message on 1, then reply again with the kept token (the result at [4]); wait on 1.
STALE_SERVER = """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    call wait_on_1
    mov dword ptr [0], ebx
    call reply_kept
    call wait_on_1
    call reply_kept
    mov dword ptr [4], eax
    # Stay alive: a dead process's ports close and wake their callers (issue 19).
    call wait_on_1
wait_on_1:
    mov eax, SYS_RECEIVE
    mov ebx, 1
    mov ecx, 64
    mov edx, 16
    xor esi, esi
    int 0x30
    ret
reply_kept:
    mov eax, SYS_REPLY
    mov ebx, dword ptr [0]
    mov ecx, 64
    mov edx, 4
    xor esi, esi
    int 0x30
    ret
"""

#: System call OP (call or send) to port PORT with 4 bytes at DS:64 (a call's reply to DS:0;
#: for send, ESI = 0 is the caller's DS), then exit.
CALLER = """
main:
    mov eax, OP
    mov ebx, PORT
    mov ecx, 64
    mov edx, 4
    xor esi, esi
    mov edi, 16
    int 0x30
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def _caller(system: LavenderSystem, group: ProcessGroup, op: int, port: int) -> Process:
    source = f".equ OP, {op}\n.equ PORT, {port}\n" + CALLER
    return system.create_process(group, source, data_size=256)


def test_a_reply_token_kept_from_a_dead_thread_does_not_reach_the_thread_reusing_its_tcb() -> None:
    system = LavenderSystem(memory_size=16 << 20, timer_period=2_000, observe=False)
    group = system.create_group()
    consts = f".equ SYS_PORT_CREATE, {L.SYS_PORT_CREATE}\n.equ SYS_RECEIVE, {L.SYS_RECEIVE}\n"
    consts += f".equ SYS_REPLY, {L.SYS_REPLY}\n"
    server = system.create_process(group, consts + STALE_SERVER, data_size=256)
    system.create_thread(server, "main")
    first = system.create_thread(_caller(system, group, L.SYS_CALL, 1), "main")
    filler = system.create_process(group, IDLE, max_threads=L.MAX_THREADS_PER_PROCESS)
    while system.kernel_variable("k_next_tid") < L.MAX_THREADS:
        if len([t for t in filler.threads
                if system.thread_state(t).state != "dead"]) == L.MAX_THREADS_PER_PROCESS:
            _settle(system)
        system.create_thread(filler, "main")
    _settle(system)
    assert system.thread_state(first).state == "dead"
    assert system.read_data32(server, 0) == first.tid
    # The lowest dead TCB is the first caller's: its successor calls port 2 (never received),
    # then a plain message on port 1 makes the server reply with the kept token.
    successor = system.create_thread(_caller(system, group, L.SYS_CALL, 2), "main")
    assert successor.tid == first.tid and successor.generation == 1
    system.create_thread(_caller(system, group, L.SYS_SEND, 1), "main")
    _settle(system)
    assert system.read_data32(server, 4) == L.E_INVAL & 0xFFFFFFFF
    state = system.thread_state(successor)
    assert state.state == "blocked" and state.fault is None
