"""Timed IPC waits and the death of servers (issue 19, timeout.s).

A timed call or receive returns E_TIMEOUT at the first timer tick at or after its deadline and
leaves no trace in any queue; a server process that dies (exit or fault of its last thread)
wakes its callers with E_DEAD and closes its ports; an L4 partner's death wakes the threads
waiting for it. Every run ends with the kernel invariant check."""

from __future__ import annotations

import pytest
from ipc_kit import SCRIPT, SCRIPT_DATA_SIZE, STEP_CREATE, script_data, script_results

from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel import layout as L
from lavsim.kernel.fastipc import grant_send
from lavsim.kernel.invariants import check_kernel_consistency, settle
from lavsim.kernel.ipc import free_messages, user_prelude
from lavsim.kernel.nameserver import name_entries, request, server_counters

PRELUDE = user_prelude()
U32 = 0xFFFFFFFF
PERIOD = 5_000
TIMEOUT = 20_000
#: What the kernel spends around a timed wait besides the tick period: the system call's
#: entry and exit, the tick's delivery and handler, the switch back (generous).
SLACK = 2_500


def u32(value: int) -> int:
    return value & U32


#: Caller: the call NUMBER (EBP = TIMEOUT) to port/thread EAX with a LENGTH-byte message at 0x100
#: (4; 0 for an L4 call: register words only),
#: the reply area at 0x200. [0] = result, [4] [8] = TSC before, [12] [16] = TSC after,
#: [20] = EBX after, then it calls again ([0x40] = AGAIN: 0 for no second call) untimed to the
#: port in [0x44], result at [24], the reply's first dword at [28].
CALLER = """
main:
    mov dword ptr [0x48], eax
    rdtsc
    mov dword ptr [4], eax
    mov dword ptr [8], edx
    mov eax, NUMBER
    mov ebx, dword ptr [0x48]
    mov ecx, 0x100
    mov edx, LENGTH
    mov esi, 0x200
    mov edi, 0x100
    mov ebp, TIMEOUT
    int 0x30
    mov dword ptr [0], eax
    mov dword ptr [20], ebx
    rdtsc
    mov dword ptr [12], eax
    mov dword ptr [16], edx
    cmp dword ptr [0x40], 0
    je done
    mov eax, SYS_CALL
    mov ebx, dword ptr [0x44]
    mov ecx, 0x100
    mov edx, 4
    mov esi, 0x200
    mov edi, 0x100
    int 0x30
    mov dword ptr [24], eax
    mov eax, dword ptr [0x200]
    mov dword ptr [28], eax
done:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

#: Server: a port (its number at [0x40]), BEFORE, one receive (length [0x44], token [0x48]),
#: then AFTER.
SERVER = """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov dword ptr [0x40], eax
{before}
    mov eax, SYS_RECEIVE
    mov ebx, dword ptr [0x40]
    mov ecx, 0x100
    mov edx, 0x100
    xor esi, esi
    int 0x30
    mov dword ptr [0x44], eax
    mov dword ptr [0x48], ebx
{after}
"""
SPIN = "spin:\n    jmp spin\n"
EXIT = "    mov eax, SYS_EXIT\n    xor ebx, ebx\n    int 0x30\n"
FAULT = "    ud2\n"
YIELDS = "    mov ecx, 20\nagain:\n    push ecx\n    mov eax, SYS_YIELD\n    int 0x30\n" \
         "    pop ecx\n    loop again\n"
#: Reply to the token with the dword 0x5EED, the reply's result at [0x4C].
REPLY = """
    mov dword ptr [0x100], 0x5EED
    mov eax, SYS_REPLY
    mov ebx, dword ptr [0x48]
    mov ecx, 0x100
    mov edx, 4
    xor esi, esi
    int 0x30
    mov dword ptr [0x4C], eax
"""


def _system(timer_period: int = PERIOD) -> LavenderSystem:
    return LavenderSystem(memory_size=8 << 20, timer_period=timer_period, observe=False)


def _caller(system: LavenderSystem, number: int, timeout: int = TIMEOUT, again: int = 0,
            again_port: int = 0) -> Process:
    length = 0 if number in (L.SYS_L4_CALL, L.SYS_L4_CALL_TIMED) else 4
    source = (PRELUDE + f".equ NUMBER, {number}\n.equ TIMEOUT, {timeout}\n"
              f".equ LENGTH, {length}\n" + CALLER)
    data = bytes(0x40) + again.to_bytes(4, "little") + again_port.to_bytes(4, "little")
    return system.create_process(system.create_group(), source, data=data)


def _server(system: LavenderSystem, before: str = "", after: str = SPIN) -> Process:
    return system.create_process(system.create_group(),
                                 PRELUDE + SERVER.format(before=before, after=after))


def _word(system: LavenderSystem, process: Process, offset: int) -> int:
    return system.read_data32(process, offset)


def _elapsed(system: LavenderSystem, caller: Process) -> int:
    before = _word(system, caller, 4) | _word(system, caller, 8) << 32
    after = _word(system, caller, 12) | _word(system, caller, 16) << 32
    return after - before


def _checked(system: LavenderSystem) -> None:
    assert settle(system)
    assert check_kernel_consistency(system) == []


# --- timeouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [L.SYS_CALL_TIMED, L.SYS_L4_CALL_TIMED])
def test_call_to_a_server_that_never_replies_times_out_within_one_tick(number: int) -> None:
    system = _system()
    if number == L.SYS_CALL_TIMED:
        server = _server(system)
        system.create_thread(server, "main")
        target = 1  # the server's port: the first port created
    else:
        # An L4 server that receives the call and never replies.
        server = system.create_process(system.create_group(), PRELUDE + """
main:
    mov eax, SYS_L4_REPLY_WAIT
    xor ebx, ebx
    int 0x30
spin:
    jmp spin
""")
        target = system.create_thread(server, "main").tid
    caller = _caller(system, number)
    if number == L.SYS_L4_CALL_TIMED:
        grant_send(system, caller, server)
    thread = system.create_thread(caller, "main", args=(target,))
    system.run(max_cycles=200_000)
    assert system.thread_state(thread).state == "dead"
    assert _word(system, caller, 0) == u32(L.E_TIMEOUT)
    elapsed = _elapsed(system, caller)
    assert TIMEOUT <= elapsed < TIMEOUT + PERIOD + SLACK, elapsed
    if number == L.SYS_CALL_TIMED:
        # The server received the call, and holds a token no longer good for anything.
        assert _word(system, server, 0x48) == thread.tid
        assert free_messages(system.memory) == L.IPC_MAX_MESSAGES
    _checked(system)


def test_timed_call_not_yet_received_is_withdrawn_from_the_port() -> None:
    # The server opens its port and never receives: the call stays queued until it times out.
    system = _system()
    server = system.create_process(system.create_group(), PRELUDE + SERVER.format(
        before=SPIN, after=""))
    system.create_thread(server, "main")
    caller = _caller(system, L.SYS_CALL_TIMED)
    system.create_thread(caller, "main", args=(1,))
    system.run(max_cycles=TIMEOUT // 2)
    assert len(system.port_info(1).messages) == 1
    system.run(max_cycles=100_000)
    assert _word(system, caller, 0) == u32(L.E_TIMEOUT)
    assert system.port_info(1).messages == ()
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES
    _checked(system)


@pytest.mark.parametrize("number", [L.SYS_RECEIVE_TIMED, L.SYS_REPLY_WAIT_TIMED,
                                    L.SYS_L4_REPLY_WAIT_TIMED])
def test_receive_with_nothing_sent_times_out_and_leaves_the_port(number: int) -> None:
    # receive(port, 0x100, capacity 0x100, DS); reply_wait(no token, 0x100, 0, port, 0x100);
    # l4_reply_wait(no caller): each with the timeout in EBP.
    args = {
        L.SYS_RECEIVE_TIMED: "mov ebx, dword ptr [0x40]\n    mov ecx, 0x100\n"
                             "    mov edx, 0x100\n    xor esi, esi\n",
        L.SYS_REPLY_WAIT_TIMED: "xor ebx, ebx\n    mov ecx, 0x100\n    xor edx, edx\n"
                                "    mov esi, dword ptr [0x40]\n    mov edi, 0x100\n",
        L.SYS_L4_REPLY_WAIT_TIMED: "xor ebx, ebx\n    xor ecx, ecx\n    xor edx, edx\n",
    }[number]
    system = _system()
    receiver = system.create_process(system.create_group(), PRELUDE + f"""
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov dword ptr [0x40], eax
    rdtsc
    mov dword ptr [4], eax
    mov dword ptr [8], edx
    mov eax, {number}
    {args}
    mov ebp, {TIMEOUT}
    int 0x30
    mov dword ptr [0], eax
    rdtsc
    mov dword ptr [12], eax
    mov dword ptr [16], edx
""" + EXIT)
    thread = system.create_thread(receiver, "main")
    outcome = system.run(max_cycles=200_000)
    assert outcome.status == "done", outcome
    assert system.thread_state(thread).state == "dead"
    assert _word(system, receiver, 0) == u32(L.E_TIMEOUT)
    elapsed = _elapsed(system, receiver)
    assert TIMEOUT <= elapsed < TIMEOUT + PERIOD + SLACK, elapsed
    assert system.port_info(1).waiting_tids == ()
    _checked(system)


def test_a_timed_call_replied_in_time_gets_the_reply_and_leaves_the_deadline_list() -> None:
    system = _system()
    # The server's receive is untimed; the caller's call is timed and replied to in time.
    server = system.create_process(system.create_group(), PRELUDE + SERVER.format(
        before="", after=REPLY + EXIT))
    system.create_thread(server, "main")
    caller = _caller(system, L.SYS_CALL_TIMED)
    system.create_thread(caller, "main", args=(1,))
    outcome = system.run(max_cycles=200_000)
    assert outcome.status == "done", outcome
    assert _word(system, caller, 0) == 4 and _word(system, server, 0x4C) == 0
    assert system.kernel_variable("k_timed_head") == 0
    # Back to the untimed tick path.
    timer = system.image.symbol("vector_table") + 4 * L.TIMER_VECTOR
    assert system.read_kernel32(timer) == system.image.symbol("timer_handler")
    _checked(system)


def test_a_timed_receive_gets_a_message_sent_before_the_deadline() -> None:
    system = _system()
    receiver = system.create_process(system.create_group(), PRELUDE + f"""
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov ebx, eax
    mov eax, SYS_RECEIVE_TIMED
    mov ecx, 0x100
    mov edx, 0x100
    xor esi, esi
    mov ebp, {TIMEOUT}
    int 0x30
    mov dword ptr [0], eax
    mov eax, dword ptr [0x100]
    mov dword ptr [4], eax
""" + EXIT)
    system.create_thread(receiver, "main")
    sender = system.create_process(system.create_group(), PRELUDE + """
main:
    mov eax, SYS_YIELD
    int 0x30
    mov dword ptr [0x100], 0xFEED
    mov eax, SYS_SEND
    mov ebx, 1
    mov ecx, 0x100
    mov edx, 4
    xor esi, esi
    int 0x30
""" + EXIT)
    system.create_thread(sender, "main")
    outcome = system.run(max_cycles=200_000)
    assert outcome.status == "done", outcome
    assert (_word(system, receiver, 0), _word(system, receiver, 4)) == (4, 0xFEED)
    assert outcome.cycles < TIMEOUT  # it did not wait for the deadline
    _checked(system)


def test_timeout_zero_waits_like_the_untimed_call() -> None:
    # A server that never receives: the call stays queued long past any timeout.
    system = _system()
    server = system.create_process(system.create_group(), PRELUDE + SERVER.format(
        before=SPIN, after=""))
    system.create_thread(server, "main")
    caller = _caller(system, L.SYS_CALL_TIMED, timeout=0)
    thread = system.create_thread(caller, "main", args=(1,))
    system.run(max_cycles=20 * TIMEOUT)
    assert system.thread_state(thread).state == "blocked"
    assert len(system.port_info(1).messages) == 1
    assert system.kernel_variable("k_timed_head") == 0
    _checked(system)


def test_timed_call_without_a_timer_is_refused() -> None:
    system = _system(timer_period=0)
    server = _server(system)
    system.create_thread(server, "main")
    caller = _caller(system, L.SYS_CALL_TIMED)
    system.create_thread(caller, "main", args=(1,))
    system.run(max_cycles=100_000)
    assert _word(system, caller, 0) == u32(L.E_INVAL)
    assert system.port_info(1).messages == ()
    assert system.kernel_variable("k_timed_head") == 0


def test_l4_timed_call_waiting_to_send_times_out_and_leaves_the_send_queue() -> None:
    system = _system()
    busy = system.create_process(system.create_group(), PRELUDE + SPIN.replace("spin", "main"))
    target = system.create_thread(busy, "main")
    caller = _caller(system, L.SYS_L4_CALL_TIMED)
    grant_send(system, caller, busy)
    system.create_thread(caller, "main", args=(target.tid,))
    system.run(max_cycles=200_000)
    assert _word(system, caller, 0) == u32(L.E_TIMEOUT)
    assert _word(system, caller, 20) == target.tid  # EBX as given
    tcb = L.TCB_LINEAR + target.tid * L.TCB_SIZE
    assert system.read_kernel32(tcb + L.TCB_L4_SENDQ) == 0
    _checked(system)


# --- the race of a timeout and a reply -----------------------------------------------------------

#: One process, two threads: the server thread (port, receive, spins until the TSC passes the
#: caller's start + DELAY, replies) and the caller (timed call). Shared data: [4] [8] the
#: caller's TSC before its call.
RACE_SERVER = SERVER.format(before="", after="""
    mov ebx, dword ptr [4]
    add ebx, DELAY
late:
    rdtsc
    cmp eax, ebx
    js late
    mov dword ptr [0x50], eax
""" + REPLY + EXIT)


@pytest.mark.parametrize("delay", range(TIMEOUT - 2 * PERIOD, TIMEOUT + 2 * PERIOD, 1_000))
def test_a_reply_racing_the_timeout_is_delivered_exactly_once(delay: int) -> None:
    system = _system()
    source = (PRELUDE + f".equ NUMBER, {L.SYS_CALL_TIMED}\n.equ TIMEOUT, {TIMEOUT}\n"
              f".equ DELAY, {delay}\n.equ LENGTH, 4\n" + RACE_SERVER.replace("main:", "server:")
              + CALLER.replace("main:", "client:").replace("done:", "client_done:")
              .replace("je done", "je client_done"))
    process = system.create_process(system.create_group(), source)
    system.create_thread(process, "server")
    caller = system.create_thread(process, "client", args=(1,))
    outcome = system.run(max_cycles=300_000)
    assert outcome.status == "done", outcome
    result, replied = _word(system, process, 0), _word(system, process, 0x4C)
    # Exactly one of: the caller got the reply (and the reply was accepted), or the caller
    # timed out (and the late reply was refused).
    assert (result, replied) in ((4, 0), (u32(L.E_TIMEOUT), u32(L.E_INVAL))), (result, replied)
    if result == 4:
        assert _word(system, process, 0x200) == 0x5EED
    tcb = L.TCB_LINEAR + caller.tid * L.TCB_SIZE
    deadline = (system.read_kernel32(tcb + L.TCB_DEADLINE_LO)
                | system.read_kernel32(tcb + L.TCB_DEADLINE_HI) << 32)
    start = _word(system, process, 4)
    if delay < TIMEOUT - PERIOD - SLACK:
        assert result == 4  # well before the deadline
    if start + delay > deadline + PERIOD + SLACK:
        assert result == u32(L.E_TIMEOUT)  # a tick came between deadline and reply
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES
    _checked(system)


def test_a_reply_after_the_deadline_but_before_the_tick_is_delivered() -> None:
    # Among the racing delays, one replies after the deadline and still reaches the caller:
    # the timeout fires at a tick, not at the deadline.
    seen = []
    for delay in range(TIMEOUT, TIMEOUT + PERIOD, 500):
        system = _system()
        source = (PRELUDE + f".equ NUMBER, {L.SYS_CALL_TIMED}\n.equ TIMEOUT, {TIMEOUT}\n"
                  f".equ DELAY, {delay}\n.equ LENGTH, 4\n" + RACE_SERVER.replace("main:", "server:")
                  + CALLER.replace("main:", "client:").replace("done:", "client_done:")
                  .replace("je done", "je client_done"))
        process = system.create_process(system.create_group(), source)
        system.create_thread(process, "server")
        caller = system.create_thread(process, "client", args=(1,))
        system.run(max_cycles=300_000)
        tcb = L.TCB_LINEAR + caller.tid * L.TCB_SIZE
        deadline = system.read_kernel32(tcb + L.TCB_DEADLINE_LO)
        replied_at = _word(system, process, 0x50)
        if _word(system, process, 0) == 4 and replied_at >= deadline:
            seen.append(delay)
    assert seen


def test_a_late_reply_does_not_reach_the_callers_next_call() -> None:
    # The caller times out on server A (which replies late), then calls server B: it gets B's
    # reply, and A's late reply is refused.
    system = _system()
    slow = system.create_process(system.create_group(), PRELUDE + SERVER.format(
        before="", after="""
    mov ecx, 30
pause:
    push ecx
    mov eax, SYS_YIELD
    int 0x30
    pop ecx
    loop pause
    rdtsc
    mov ebx, eax
    add ebx, 60000
late:
    rdtsc
    cmp eax, ebx
    js late
""" + REPLY + EXIT))
    system.create_thread(slow, "main")
    fast = system.create_process(system.create_group(), PRELUDE + SERVER.format(
        before="", after=REPLY.replace("0x5EED", "0xB0B") + EXIT))
    system.create_thread(fast, "main")
    caller = _caller(system, L.SYS_CALL_TIMED, again=1, again_port=2)
    system.create_thread(caller, "main", args=(1,))
    outcome = system.run(max_cycles=1_000_000)
    assert outcome.status == "done", outcome
    assert _word(system, caller, 0) == u32(L.E_TIMEOUT)
    assert (_word(system, caller, 24), _word(system, caller, 28)) == (4, 0xB0B)
    assert _word(system, slow, 0x4C) == u32(L.E_INVAL)
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES
    _checked(system)


# --- death ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("end", [EXIT, FAULT], ids=["exit", "fault"])
def test_a_server_that_dies_holding_the_call_wakes_the_caller_with_e_dead(end: str) -> None:
    system = _system()
    server = _server(system, after=end)
    system.create_thread(server, "main")
    caller = _caller(system, L.SYS_CALL)
    system.create_thread(caller, "main", args=(1,))
    outcome = system.run(max_cycles=200_000)
    assert outcome.status == "done", outcome
    assert _word(system, server, 0x48) != 0  # it had received the call
    assert _word(system, caller, 0) == u32(L.E_DEAD)
    assert not system.port_info(1).open
    _checked(system)


def test_callers_queued_on_a_dead_process_port_are_woken_and_the_port_closed() -> None:
    system = _system(timer_period=0)
    server = system.create_process(system.create_group(), PRELUDE + SERVER.format(
        before=YIELDS + EXIT, after=""))
    system.create_thread(server, "main")
    callers = [_caller(system, L.SYS_CALL) for _ in range(2)]
    for caller in callers:
        system.create_thread(caller, "main", args=(1,))
    outcome = system.run(max_cycles=500_000)
    assert outcome.status == "done", outcome
    assert [_word(system, c, 0) for c in callers] == [u32(L.E_DEAD)] * 2
    assert not system.port_info(1).open
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES
    _checked(system)


def test_a_process_with_a_thread_left_keeps_serving() -> None:
    # Two server threads; the one that received the call exits, the other replies with the
    # token it was handed: the caller gets the reply, not E_DEAD.
    system = _system(timer_period=0)
    server = system.create_process(system.create_group(), PRELUDE + """
first:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov dword ptr [0x40], eax
    mov eax, SYS_RECEIVE
    mov ebx, dword ptr [0x40]
    mov ecx, 0x100
    mov edx, 0x100
    xor esi, esi
    int 0x30
    mov dword ptr [0x48], ebx
""" + EXIT + """
second:
    cmp dword ptr [0x48], 0
    jne answer
    mov eax, SYS_YIELD
    int 0x30
    jmp second
answer:
""" + REPLY + EXIT)
    system.create_thread(server, "first")
    system.create_thread(server, "second")
    caller = _caller(system, L.SYS_CALL)
    system.create_thread(caller, "main", args=(1,))
    outcome = system.run(max_cycles=500_000)
    assert outcome.status == "done", outcome
    assert _word(system, caller, 0) == 4 and _word(system, server, 0x4C) == 0
    _checked(system)


def test_an_l4_partner_that_dies_wakes_its_caller_and_senders() -> None:
    system = _system(timer_period=0)
    # The L4 server receives one call and dies without replying.
    server = system.create_process(system.create_group(), PRELUDE + """
main:
    mov eax, SYS_L4_REPLY_WAIT
    xor ebx, ebx
    int 0x30
    mov ecx, 20
again:
    push ecx
    mov eax, SYS_YIELD
    int 0x30
    pop ecx
    loop again
""" + EXIT)
    target = system.create_thread(server, "main")
    callers = [_caller(system, L.SYS_L4_CALL) for _ in range(3)]
    for caller in callers:
        grant_send(system, caller, server)
        system.create_thread(caller, "main", args=(target.tid,))
    outcome = system.run(max_cycles=500_000)
    assert outcome.status == "done", outcome
    # The first waited for the reply (E_DEAD); the others waited to send and found the
    # destination dead when they tried again.
    assert [_word(system, c, 0) for c in callers] == [u32(L.E_DEAD)] + [u32(L.E_INVAL)] * 2
    _checked(system)


def test_a_dead_process_named_port_loses_its_name() -> None:
    system = _system(timer_period=0)
    system.start_name_server()
    owner = system.create_process(system.create_group(), SCRIPT, data=script_data([
        (STEP_CREATE, request(L.NS_OP_PORT_LOOKUP, "mail")),
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    system.create_thread(owner, "main")
    system.run(max_cycles=500_000)
    assert script_results(system, owner, 1) == [1]
    assert not system.port_info(1).open
    # Registered at creation, unregistered at the owner's death: two requests served.
    assert name_entries(system) == [] and server_counters(system) == (2, 0)
    _checked(system)


def _patch_code(system: LavenderSystem, process: Process, label: str, code: bytes) -> None:
    """Overwrite the process's code at ``label`` (host-side, as a corrupted image would be)."""
    (segment,) = [s for s in system.process_segments(process) if s.name == "code"]
    directory = process.group.directory if process.group else system.boot_directory
    linear = segment.base + process.symbol(label)
    phys = system.page_tables.translate(directory, linear, user=False, write=False)
    assert phys is not None
    system.memory.write(phys, code)


def test_a_dead_name_server_closes_port_0_and_its_callers_get_errors() -> None:
    system = _system(timer_period=0)
    name_server = system.start_name_server()
    # Its first request kills it (#UD where it would serve the request).
    _patch_code(system, name_server, "serve", b"\x0f\x0b")
    # The last caller calls port 0 again once it has its answer.
    callers = [_caller(system, L.SYS_CALL, again=k == 2, again_port=L.NS_PORT)
               for k in range(3)]
    for caller in callers:
        system.create_thread(caller, "main", args=(L.NS_PORT,))
    outcome = system.run(max_cycles=500_000)
    assert outcome.status == "done", outcome
    assert [f.pid for f in outcome.faulted] == [name_server.pid]
    # The first request was received (then the server died), the others were queued; the
    # call after its death finds port 0 closed.
    assert [_word(system, c, 0) for c in callers] == [u32(L.E_DEAD)] * 3
    assert _word(system, callers[2], 24) == u32(L.E_BADPORT)
    assert not system.port_info(L.NS_PORT).open
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES
    _checked(system)


# --- the invariants of timed waits ---------------------------------------------------------------


def _mid_wait() -> tuple[LavenderSystem, int]:
    """A system whose one thread waits in a timed receive (the deadline far ahead)."""
    system = _system()
    receiver = system.create_process(system.create_group(), PRELUDE + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov ebx, eax
    mov eax, SYS_RECEIVE_TIMED
    mov ecx, 0x100
    mov edx, 0x100
    xor esi, esi
    mov ebp, 10000000
    int 0x30
""" + EXIT)
    thread = system.create_thread(receiver, "main")
    system.run(max_cycles=3 * PERIOD)
    _checked(system)
    tcb = thread.tcb_linear
    assert system.kernel_variable("k_timed_head") == tcb
    return system, tcb


def test_a_run_outcome_shows_when_a_blocked_thread_times_out() -> None:
    system, tcb = _mid_wait()
    (blocked,) = system.run(max_cycles=1).blocked
    deadline = (system.read_kernel32(tcb + L.TCB_DEADLINE_LO)
                | system.read_kernel32(tcb + L.TCB_DEADLINE_HI) << 32)
    assert blocked.waits == "receive" and blocked.deadline == deadline
    assert deadline > system.machine.cpu.tsc
    assert f"times out at the first tick from TSC {deadline:,}" in blocked.describe()


def _timer_entry(system: LavenderSystem) -> int:
    return system.image.symbol("vector_table") + 4 * L.TIMER_VECTOR


TIMED_DAMAGE = {
    "expired yet queued": (
        lambda s, t: s.write_kernel32(t + L.TCB_TIMED_STATE, L.TIMED_EXPIRED),
        "timed out but is in state 3 and in a port's receivers"),
    "off the list": (
        lambda s, t: s.write_kernel32(s.image.symbol("k_timed_head"), 0),
        "is off the deadline list"),
    "untimed tick": (
        lambda s, t: s.write_kernel32(_timer_entry(s), s.image.symbol("timer_handler")),
        "the timer vector's handler"),
    "list cycle": (
        lambda s, t: s.write_kernel32(t + L.TCB_TIMED_NEXT, t),
        "the deadline list has a cycle"),
}


@pytest.mark.parametrize("damage", sorted(TIMED_DAMAGE))
def test_teeth_the_invariant_check_catches_a_broken_deadline_list(damage: str) -> None:
    system, tcb = _mid_wait()
    harm, expected = TIMED_DAMAGE[damage]
    harm(system, tcb)
    problems = check_kernel_consistency(system)
    assert any(expected in p for p in problems), problems
