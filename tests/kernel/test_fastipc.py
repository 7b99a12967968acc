"""L4-style IPC and LRPC-style calls as guest kernel paths (issue 14): messages and arguments
arrive intact at random sizes, across groups and with other runnable threads; the counters
show the designs' copies and switches by construction; the rights hold."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ipc_kit import PRELUDE, define, u32

from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.fastipc import bind_lrpc, binding_caller, grant_send, l4_state
from lavsim.kernel.invariants import check_kernel_consistency

#: Echo server: registers 0x1000 (capacity 0x1000) as its receive buffer and waits; replies
#: to each message with its long part back (from the buffer), ESI + 1 and NOT EDI; records
#: each long length at 0x20+4k. Serves for ever.
L4_ECHO = PRELUDE + """
main:
    mov eax, SYS_L4_RECEIVE_BUFFER
    mov ecx, 0x1000
    mov edx, 0x1000
    int 0x30
    mov eax, SYS_L4_REPLY_WAIT
    xor ebx, ebx
    xor edx, edx
    int 0x30
serve:
    mov ecx, dword ptr [4]
    mov dword ptr [0x20+ecx*4], eax
    inc dword ptr [4]
    mov edx, eax
    mov ecx, 0x1000
    inc esi
    not edi
    mov eax, SYS_L4_REPLY_WAIT
    int 0x30
    jmp serve
"""

#: Client: receive buffer at 0x3000 (0x1000); for k < [0]: l4_call to thread [8] with the
#: long part 0x100+k (length at 0x10+4k), words k*3+1 and k*7+2; results (EAX ESI EDI) at
#: 0x60+12k; each reply's long part is moved to 0x4000+k*0x1000 by REP MOVSB. Then exit.
L4_CLIENT = PRELUDE + """
main:
    mov eax, SYS_L4_RECEIVE_BUFFER
    mov ecx, 0x3000
    mov edx, 0x1000
    int 0x30
    xor ebp, ebp
next:
    cmp ebp, dword ptr [0]
    jae done
    mov eax, SYS_L4_CALL
    mov ebx, dword ptr [8]
    lea ecx, [ebp+0x100]
    mov edx, dword ptr [0x10+ebp*4]
    lea esi, [ebp+ebp*2+1]
    lea edi, [ebp*8+2]
    sub edi, ebp
    int 0x30
    lea ebx, [ebp+ebp*2]
    mov dword ptr [0x60+ebx*4], eax
    mov dword ptr [0x64+ebx*4], esi
    mov dword ptr [0x68+ebx*4], edi
    test eax, eax
    js skip
    mov ecx, eax
    mov esi, 0x3000
    mov edi, ebp
    shl edi, 12
    add edi, 0x4000
    cld
    rep movsb
skip:
    inc ebp
    jmp next
done:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

_YIELDER = PRELUDE + "main:\n    mov eax, SYS_YIELD\n    int 0x30\n    jmp main\n"


def _l4_system(sizes: list[int], payload: bytes, *, cross_group: bool, others: int = 0,
               grant: bool = True):  # type: ignore[no-untyped-def]
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    server = system.create_process(group, L4_ECHO, data_size=0x2000)
    server_thread = system.create_thread(server, "main")
    head = struct.pack("<III", len(sizes), 0, server_thread.tid).ljust(0x10, b"\0")
    head += struct.pack(f"<{len(sizes)}I", *sizes)
    data = head.ljust(0x100, b"\0") + payload
    client = system.create_process(system.create_group() if cross_group else group, L4_CLIENT,
                                   data=data, data_size=0x4000 + 0x1000 * len(sizes))
    if grant:
        grant_send(system, client, server)
    if others:
        filler = system.create_process(system.create_group(), _YIELDER, max_threads=others)
        for _ in range(others):
            system.create_thread(filler, "main")
    client_thread = system.create_thread(client, "main")
    return system, server, client, server_thread, client_thread


def _results(system: LavenderSystem, client, count: int) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    raw = system.read_process(client, "data", 0x60, 12 * count)
    return [struct.unpack_from("<III", raw, 12 * k) for k in range(count)]


def _run_until_client_ends(system: LavenderSystem, client_thread) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        system.run(max_cycles=200_000)
        if system.thread_state(client_thread).state == "dead":
            return
    raise AssertionError("the client never finished")


sizes_st = st.lists(st.integers(0, L.IPC_MAX_MESSAGE), min_size=1, max_size=3)


@settings(max_examples=12, deadline=None)
@given(sizes=sizes_st, seed=st.integers(0, 1 << 16), cross=st.booleans(),
       others=st.integers(0, 2))
def test_l4_messages_of_random_sizes_and_words_arrive_intact_and_come_back(
    sizes: list[int], seed: int, cross: bool, others: int
) -> None:
    payload = random.Random(seed).randbytes(L.IPC_MAX_MESSAGE + 4)
    system, server, client, _, thread = _l4_system(sizes, payload, cross_group=cross,
                                                   others=others)
    _run_until_client_ends(system, thread)
    assert system.thread_state(thread).fault is None
    for k, (eax, esi, edi) in enumerate(_results(system, client, len(sizes))):
        assert eax == sizes[k]
        assert esi == 3 * k + 2 and edi == u32(~(7 * k + 2))
        echoed = system.read_process(client, "data", 0x4000 + k * 0x1000, sizes[k])
        assert echoed == payload[k : k + sizes[k]]
    lengths = struct.unpack("<3I", system.read_process(server, "data", 0x20, 12))
    assert list(lengths[: len(sizes)]) == sizes


def _window_stats(sizes: list[int], cross: bool):  # type: ignore[no-untyped-def]
    """Kernel statistics of the whole run from boot (a call per size)."""
    payload = bytes(range(256)) * 17
    system, _, _, _, thread = _l4_system(sizes, payload, cross_group=cross)
    system.reset_stats()
    _run_until_client_ends(system, thread)
    return system.stats()


def test_l4_register_messages_copy_nothing_and_long_ones_copy_each_byte_once() -> None:
    short = _window_stats([0, 0, 0], cross=True)
    assert short.messages_copied == 0 and short.bytes_copied == 0
    assert short.cr3_loads >= 2 * 3  # each way of each call
    long = _window_stats([4096, 100, 3], cross=True)
    # The requests and the echoed replies: one direct copy each, each byte once.
    assert long.copies_direct == 6 and long.copies_in == long.copies_out == 0
    assert long.bytes_copied == 2 * (4096 + 100 + 3)


def test_l4_between_small_spaces_loads_no_cr3() -> None:
    stats = _window_stats([0, 64, 4096], cross=False)
    assert stats.cr3_loads == 1  # from the boot directory to the group's, at the first switch
    assert stats.context_switches >= 2 * 3


def test_l4_call_without_a_send_right_is_refused_and_changes_nothing() -> None:
    system, server, client, server_thread, thread = _l4_system([0, 8], bytes(16),
                                                               cross_group=True, grant=False)
    _run_until_client_ends(system, thread)
    assert [r[0] for r in _results(system, client, 2)] == [u32(L.E_PERM)] * 2
    assert l4_state(system, server_thread.tid) == "wait"
    assert struct.unpack("<I", system.read_process(server, "data", 4, 4)) == (0,)


#: A client making one l4_call with EBX, ECX, EDX from [0], [4], [8]; EAX to [12].
ONE_CALL = PRELUDE + """
main:
    mov eax, SYS_L4_RECEIVE_BUFFER
    mov ecx, 0x100
    mov edx, 16
    int 0x30
    mov eax, SYS_L4_CALL
    mov ebx, dword ptr [0]
    mov ecx, dword ptr [4]
    mov edx, dword ptr [8]
    int 0x30
    mov dword ptr [12], eax
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


@pytest.mark.parametrize(
    ("target", "offset", "length", "error"),
    [
        (0, 0, 0, L.E_INVAL),  # no thread 0 to send to
        (L.MAX_THREADS, 0, 0, L.E_INVAL),
        ("self", 0, 0, L.E_INVAL),
        ("server", 0xFF0, 0x20, L.E_FAULT),  # past the end of the caller's data segment
        ("server", 0xFFFFFFF0, 0x20, L.E_FAULT),  # wrapping
        ("server", 0, 0x1001, L.E_MSGSIZE),  # more than the receive buffer holds
    ],
)
def test_l4_call_refuses_bad_targets_and_buffers_outside_the_callers_segments(
    target: object, offset: int, length: int, error: int
) -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    server = system.create_process(system.create_group(), L4_ECHO, data_size=0x2000)
    server_thread = system.create_thread(server, "main")
    client = system.create_process(system.create_group(), ONE_CALL, data_size=0x1000)
    tid = {"self": 2, "server": server_thread.tid}.get(target, target)  # type: ignore[call-overload]
    system.sharing.write_data(client, 0, struct.pack("<III", tid, u32(offset), length))
    grant_send(system, client, server)
    thread = system.create_thread(client, "main")
    assert thread.tid == 2
    _run_until_client_ends(system, thread)
    assert struct.unpack("<I", system.read_process(client, "data", 12, 4)) == (u32(error),)
    assert struct.unpack("<I", system.read_process(server, "data", 4, 4)) == (0,)


def test_l4_reply_only_to_the_thread_whose_call_was_received() -> None:
    """reply_and_wait naming a thread that is not waiting for this thread's reply is
    refused with E_INVAL and does not wait."""
    source = PRELUDE + """
main:
    mov eax, SYS_L4_REPLY_WAIT
    mov ebx, dword ptr [0]
    xor edx, edx
    int 0x30
    mov dword ptr [4], eax
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    other = system.create_process(system.create_group(), _YIELDER)
    victim = system.create_thread(other, "main")
    replier = system.create_process(system.create_group(), source,
                                    data=struct.pack("<I", victim.tid))
    thread = system.create_thread(replier, "main")
    _run_until_client_ends(system, thread)
    assert struct.unpack("<I", system.read_process(replier, "data", 4, 4)) == (u32(L.E_INVAL),)


# --- LRPC ---------------------------------------------------------------------------------------

#: The procedure: sums the A-stack's ECX/4 words (ES:0..) into EBX, adds the call count, and
#: returns it. Its E-stack ends at 0x1000 of its data; it pushes on it to prove it is there.
LRPC_SERVER = PRELUDE + """
main:
    nop
proc:
    push ebp
    xor ebx, ebx
    shr ecx, 2
    jz .Lsum_done
.Lsum:
    add ebx, dword ptr es:[ecx*4-4]
    dec ecx
    jnz .Lsum
.Lsum_done:
    inc dword ptr [0x1000]
    add ebx, dword ptr [0x1000]
    pop ebp
    mov eax, SYS_LRPC_RETURN
    int 0x30
"""

#: Client: for k < [0]: copy [0x10+4k] bytes from 0x200 onto the A-stack (selector [4]) and
#: call binding [8]; EAX to 0x100+4k. EBP holds k across calls.
LRPC_CLIENT = PRELUDE + """
main:
    xor ebp, ebp
next:
    cmp ebp, dword ptr [0]
    jae done
    push es
    mov eax, dword ptr [4]
    mov es, ax
    mov ecx, dword ptr [0x10+ebp*4]
    push ecx
    shr ecx, 2
    mov esi, 0x200
    xor edi, edi
    cld
    rep movsd
    pop ecx
    pop es
    mov eax, SYS_LRPC_CALL
    mov ebx, dword ptr [8]
    int 0x30
    mov dword ptr [0x100+ebp*4], eax
    inc ebp
    jmp next
done:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


def _lrpc_system(sizes: list[int], words: list[int], where: str, *, others: int = 0,
                 hold: bool = True):  # type: ignore[no-untyped-def]
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    if where == "resident":
        server = system.create_resident_process(LRPC_SERVER, data_size=0x2000)
    else:
        server = system.create_process(group if where == "group" else system.create_group(),
                                       LRPC_SERVER, data_size=0x2000)
    head = struct.pack("<III", len(sizes), 0, 0).ljust(0x10, b"\0")
    head += struct.pack(f"<{len(sizes)}I", *sizes)
    data = head.ljust(0x200, b"\0") + struct.pack(f"<{len(words)}I", *words)
    client = system.create_process(group, LRPC_CLIENT, data=data, data_size=0x2000)
    # hold=False: another process of the client's group holds the binding; the client knows
    # its number but has neither the right nor the A-stack (a null selector in its place).
    holder = client if hold else system.create_process(group, "nop\n")
    binding = bind_lrpc(system, holder, server, "proc", estack_top=0x1000)
    system.sharing.write_data(client, 4, struct.pack(
        "<II", binding.client_selector if hold else 0, binding.number))
    if others:
        filler = system.create_process(system.create_group(), _YIELDER, max_threads=others)
        for _ in range(others):
            system.create_thread(filler, "main")
    thread = system.create_thread(client, "main")
    return system, server, client, binding, thread


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.integers(0, 1024).map(lambda n: 4 * n), min_size=1, max_size=3),
       seed=st.integers(0, 1 << 16), where=st.sampled_from(["group", "groups", "resident"]),
       others=st.integers(0, 2))
def test_lrpc_calls_return_the_procedures_result_over_random_arguments(
    sizes: list[int], seed: int, where: str, others: int
) -> None:
    rng = random.Random(seed)
    words = [rng.getrandbits(32) for _ in range(1024)]
    system, _, client, binding, thread = _lrpc_system(sizes, words, where, others=others)
    _run_until_client_ends(system, thread)
    assert system.thread_state(thread).fault is None
    got = struct.unpack(f"<{len(sizes)}I", system.read_process(client, "data", 0x100,
                                                                4 * len(sizes)))
    expected = [u32(sum(words[: s // 4]) + k + 1) for k, s in enumerate(sizes)]
    assert list(got) == expected
    assert binding_caller(system, binding.number) is None


def test_lrpc_schedules_nothing_copies_nothing_in_the_kernel_and_loads_cr3_across_groups() -> None:
    system, _, _, _, thread = _lrpc_system([64, 64, 64], list(range(16)), "groups")
    system.reset_stats()
    _run_until_client_ends(system, thread)
    stats = system.stats()
    # From boot: one switch to the client; the exit's schedule finds nothing to run.
    assert stats.context_switches == 1  # the client's thread runs the procedure itself
    assert stats.messages_copied == 0
    assert stats.cr3_loads == 1 + 2 * 3  # the first switch, then each way of each call


def test_lrpc_through_a_binding_the_caller_does_not_hold_is_refused() -> None:
    system, server, client, _, thread = _lrpc_system([0], [], "groups", hold=False)
    _run_until_client_ends(system, thread)
    assert system.thread_state(thread).fault is None
    got = struct.unpack("<I", system.read_process(client, "data", 0x100, 4))
    assert got == (u32(L.E_PERM),)
    assert struct.unpack("<I", system.read_process(server, "data", 0x1000, 4)) == (0,)


def test_lrpc_return_outside_a_call_is_refused() -> None:
    source = PRELUDE + """
main:
    mov eax, SYS_LRPC_RETURN
    mov ebx, 5
    int 0x30
    mov dword ptr [0], eax
    mov eax, SYS_LRPC_CALL
    mov ebx, LRPC_MAX_BINDINGS
    int 0x30
    mov dword ptr [4], eax
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    process = system.create_process(system.create_group(),
                                    define(source, LRPC_MAX_BINDINGS=L.LRPC_MAX_BINDINGS))
    thread = system.create_thread(process, "main")
    _run_until_client_ends(system, thread)
    got = struct.unpack("<II", system.read_process(process, "data", 0, 8))
    assert got == (u32(L.E_INVAL), u32(L.E_INVAL))


def test_a_fault_inside_an_lrpc_procedure_kills_the_thread_as_its_own_processes() -> None:
    """The thread dies in the server's code (the fault's owner) but its slot is given back
    to its own process, and the binding is free again."""
    bad = PRELUDE + "main:\n    nop\nproc:\n    mov eax, dword ptr [0xFFFFFF0]\n"
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    server = system.create_process(system.create_group(), bad, data_size=0x2000)
    data = struct.pack("<III", 1, 0, 0).ljust(0x10, b"\0") + struct.pack("<I", 0)
    client = system.create_process(group, LRPC_CLIENT, data=data, data_size=0x2000)
    binding = bind_lrpc(system, client, server, "proc", estack_top=0x1000)
    system.sharing.write_data(client, 4, struct.pack("<II", binding.client_selector,
                                                     binding.number))
    thread = system.create_thread(client, "main")
    outcome = system.run(max_cycles=200_000)
    assert outcome.status == "done"
    fault = system.thread_state(thread).fault
    assert fault is not None and fault.pid == server.pid
    assert system.read_kernel32(client.pcb_linear + L.PCB_THREADS) == 0
    assert binding_caller(system, binding.number) is None


def test_a_long_message_lands_in_the_receivers_own_space_even_inside_an_lrpc_call() -> None:
    """The receive buffer's address is kept with the page directory it was registered in: a
    thread that waits for a message inside an LRPC call (its TCB_PROCESS is the server, in
    another group) still gets the bytes in its own buffer, never at that linear address of
    the server's address space."""
    procedure = PRELUDE + """
main:
    nop
proc:
    mov eax, SYS_L4_REPLY_WAIT
    xor ebx, ebx
    xor edx, edx
    int 0x30
    mov ebx, eax
    mov eax, SYS_LRPC_RETURN
    int 0x30
"""
    client_source = PRELUDE + """
main:
    mov eax, SYS_L4_RECEIVE_BUFFER
    mov ecx, 0x800
    mov edx, 64
    int 0x30
    mov eax, SYS_LRPC_CALL
    mov ebx, dword ptr [0]
    xor ecx, ecx
    int 0x30
    mov dword ptr [4], eax
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""
    sender_source = PRELUDE + """
main:
    mov eax, SYS_YIELD
    int 0x30
    mov eax, SYS_L4_CALL
    mov ebx, dword ptr [0]
    mov ecx, 0x100
    mov edx, 16
    int 0x30
    jmp main
"""
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    server_group = system.create_group()
    server = system.create_process(server_group, procedure, data_size=0x2000)
    client = system.create_process(system.create_group(), client_source, data_size=0x1000)
    message = bytes(range(0xA0, 0xB0))
    sender = system.create_process(server_group, sender_source,
                                   data=bytes(0x100) + message, data_size=0x1000)
    binding = bind_lrpc(system, client, server, "proc", estack_top=0x1000)
    system.sharing.write_data(client, 0, struct.pack("<I", binding.number))
    grant_send(system, sender, server)
    thread = system.create_thread(client, "main")
    system.sharing.write_data(sender, 0, struct.pack("<I", thread.tid))
    system.create_thread(sender, "main")
    _run_until_client_ends(system, thread)
    assert struct.unpack("<I", system.read_process(client, "data", 4, 4)) == (16,)
    assert system.read_process(client, "data", 0x800, 16) == message
    assert message not in system.read_process(server, "data", 0, 0x2000)
    assert system.read_process(sender, "data", 0, 0x1000).count(message) == 1  # its own


def test_callers_that_find_the_server_busy_wait_in_its_send_queue_and_are_served() -> None:
    """The slow path: two clients call before the server first waits (they run first); both
    join its send queue, the server's waits wake them in turn, and every call is answered."""
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    server = system.create_process(system.create_group(), L4_ECHO, data_size=0x2000)
    payload = bytes(range(200))
    sizes = [0, 40, 120]
    clients, threads = [], []
    server_tid = 1 + 2  # created after the two clients
    for _ in range(2):
        head = struct.pack("<III", len(sizes), 0, server_tid).ljust(0x10, b"\0")
        head += struct.pack(f"<{len(sizes)}I", *sizes)
        client = system.create_process(system.create_group(), L4_CLIENT,
                                       data=head.ljust(0x100, b"\0") + payload,
                                       data_size=0x4000 + 0x1000 * len(sizes))
        grant_send(system, client, server)
        clients.append(client)
        threads.append(system.create_thread(client, "main"))
    assert system.create_thread(server, "main").tid == server_tid
    queued = False
    for _ in range(200):
        system.run(max_cycles=100)
        if {l4_state(system, t.tid) for t in threads} == {"send"}:
            queued = True
            break
    assert queued, "both clients should wait in the server's send queue at once"
    for thread in threads:
        _run_until_client_ends(system, thread)
    for client in clients:
        for k, (eax, esi, _) in enumerate(_results(system, client, len(sizes))):
            assert (eax, esi) == (sizes[k], 3 * k + 2)
            echoed = system.read_process(client, "data", 0x4000 + k * 0x1000, sizes[k])
            assert echoed == payload[k : k + sizes[k]]
    assert check_kernel_consistency(system) == []
