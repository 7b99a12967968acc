"""Ports and message IPC as guest-code kernel paths (issue 5): messages arrive intact, receivers
and callers block, bad arguments return error codes and leave the kernel consistent, and every
message is copied exactly twice."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from ipc_kit import (
    CLIENT,
    ECHO_SERVER,
    PRELUDE,
    RECEIVER,
    U32,
    client_data,
    define,
    u32,
    words,
)

from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import free_messages, ipc_state

sizes_st = st.lists(st.integers(0, L.IPC_MAX_MESSAGE), min_size=1, max_size=3)


def _payload(seed: int) -> bytes:
    return random.Random(seed).randbytes(L.IPC_MAX_MESSAGE + 8)


def _rpc_system(sizes: list[int], call: int, reply_wait: int, seed: int, *,
                cross_group: bool = False):  # type: ignore[no-untyped-def]
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    server = system.create_process(
        group, define(ECHO_SERVER, REPLY_WAIT=reply_wait),
        data=bytes([len(sizes)]), data_size=0x2000,
    )  # fmt: skip
    payload = _payload(seed)
    client_group = system.create_group() if cross_group else group
    client = system.create_process(
        client_group, define(CLIENT, CALL=call), data=client_data(len(sizes), 1, sizes, payload),
        data_size=0x2000 + 0x1000 * len(sizes),
    )  # fmt: skip
    system.create_thread(server, "main")
    system.create_thread(client, "main")
    return system, server, client, payload


@given(sizes=sizes_st, seed=st.integers(0, 1 << 16), handoff=st.booleans())
def test_call_and_reply_messages_of_random_sizes_arrive_intact_and_are_copied_twice(
    sizes: list[int], seed: int, handoff: bool
) -> None:
    call, reply_wait = (
        (L.SYS_CALL_HANDOFF, L.SYS_REPLY_WAIT_HANDOFF)
        if handoff
        else (L.SYS_CALL, L.SYS_REPLY_WAIT)
    )
    system, server, client, payload = _rpc_system(sizes, call, reply_wait, seed)
    outcome = system.run(max_cycles=3_000_000)
    assert outcome.status == "done", outcome
    n = len(sizes)
    assert words(system, client, 0x60, n) == sizes  # each call returns the reply's length
    assert words(system, server, 0x20, n) == sizes  # each request arrived with its length
    for k, size in enumerate(sizes):
        reply = system.read_process(client, "data", 0x2000 + 0x1000 * k, size)
        assert reply == payload[k : k + size]
    stats = system.stats()
    # Twice per direction: request in and out, reply in and out.
    assert stats.copies_in == stats.copies_out == 2 * n
    assert stats.bytes_copied_in == stats.bytes_copied_out == 2 * sum(sizes)
    assert system.check_ipc() == []
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES


@given(sizes=sizes_st, seed=st.integers(0, 1 << 16))
def test_sent_messages_of_random_sizes_arrive_intact_with_the_senders_identity(
    sizes: list[int], seed: int
) -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    receiver = system.create_process(group, RECEIVER, data=bytes([len(sizes)]),
                                     data_size=0x1000 * (len(sizes) + 1))
    payload = _payload(seed)
    sender = system.create_process(
        system.create_group(), define(CLIENT, CALL=L.SYS_SEND),
        data=client_data(len(sizes), 1, sizes, payload), data_size=0x2000,
    )  # fmt: skip
    system.create_thread(receiver, "main")
    system.create_thread(sender, "main")
    assert system.run(max_cycles=3_000_000).status == "done"
    assert words(system, sender, 0x60, len(sizes)) == [0] * len(sizes)
    for k, size in enumerate(sizes):
        length, token, pid, gid = words(system, receiver, 0x20 + 16 * k, 4)
        assert (length, token, pid, gid) == (size, 0, sender.pid, 2)
        got = system.read_process(receiver, "data", 0x1000 + 0x1000 * k, size)
        assert got == payload[k : k + size]
    stats = system.stats()
    assert stats.copies_in == stats.copies_out == len(sizes)
    assert stats.bytes_copied_in == stats.bytes_copied_out == sum(sizes)


def test_cross_group_calls_work_and_load_cr3_each_way() -> None:
    sizes = [0, 4096, 13]
    system, _, client, payload = _rpc_system(sizes, L.SYS_CALL, L.SYS_REPLY_WAIT, 7,
                                                  cross_group=True)
    assert system.run(max_cycles=3_000_000).status == "done"
    for k, size in enumerate(sizes):
        assert system.read_process(client, "data", 0x2000 + 0x1000 * k, size) == payload[
            k : k + size
        ]
    assert system.stats().cr3_loads >= 2 * len(sizes)


SLOW_SENDER = PRELUDE + """
main:
    mov ecx, 3000
spin:
    dec ecx
    jnz spin
    mov eax, SYS_SEND
    mov ebx, 1
    mov ecx, 0x100
    mov edx, 8
    xor esi, esi
    int 0x30
    mov dword ptr [0x60], eax
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


def test_a_receiver_blocks_until_a_message_arrives() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    receiver = system.create_process(group, RECEIVER, data=b"\1", data_size=0x2000)
    sender = system.create_process(group, SLOW_SENDER, data=bytes(0x100) + b"ABCDEFGH")
    rt = system.create_thread(receiver, "main")
    system.create_thread(sender, "main")
    outcome = system.run(max_cycles=4_000)
    assert outcome.status == "cycle_limit"
    # The receiver waits on its port, blocked; the sender is still spinning.
    assert system.thread_state(rt).state == "blocked"
    assert ipc_state(system.memory, rt.tid) == "receive"
    assert system.port_info(1).waiting_tids == (rt.tid,)
    assert system.read_data32(receiver, 0x20) == 0
    assert system.run(max_cycles=1_000_000).status == "done"
    assert system.read_process(receiver, "data", 0x1000, 8) == b"ABCDEFGH"
    assert system.port_info(1).waiting_tids == ()


SLOW_REPLIER = PRELUDE + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov eax, SYS_RECEIVE
    mov ebx, 1
    mov ecx, 0x100
    mov edx, 64
    xor esi, esi
    int 0x30
    mov edi, ebx
    mov ecx, 3000
spin:
    dec ecx
    jnz spin
    mov eax, SYS_REPLY
    mov ebx, edi
    mov ecx, 0x100
    mov edx, 5
    xor esi, esi
    int 0x30
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


def test_a_caller_blocks_until_its_reply_arrives() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    server = system.create_process(group, SLOW_REPLIER)
    client = system.create_process(
        group, define(CLIENT, CALL=L.SYS_CALL), data=client_data(1, 1, [5], b"hello"),
        data_size=0x3000,
    )  # fmt: skip
    system.create_thread(server, "main")
    ct = system.create_thread(client, "main")
    assert system.run(max_cycles=4_000).status == "cycle_limit"
    assert system.thread_state(ct).state == "blocked"
    assert ipc_state(system.memory, ct.tid) == "reply"
    assert system.port_info(1).messages == ()  # received, not yet replied to
    assert system.run(max_cycles=1_000_000).status == "done"
    assert system.read_process(client, "data", 0x2000, 5) == b"hello"
    assert words(system, client, 0x60, 1) == [5]


#: Makes the bad calls listed in BAD_CALLS (each: EAX EBX ECX EDX ESI EDI at 0x100 + 32k),
#: storing EAX after each at 0x40 + 4k; [0] = count. Owns port 1 (created first; its own)
#: and tries port 2 (another process's, created while this one yields).
BAD_CALLER = PRELUDE + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov eax, SYS_YIELD
    int 0x30
    xor ebp, ebp
next:
    cmp ebp, dword ptr [0]
    jae done
    mov edi, ebp
    shl edi, 5
    add edi, 0x100
    mov eax, dword ptr [edi]
    mov ebx, dword ptr [edi+4]
    mov ecx, dword ptr [edi+8]
    mov edx, dword ptr [edi+12]
    mov esi, dword ptr [edi+16]
    mov edi, dword ptr [edi+20]
    int 0x30
    mov dword ptr [0x40+ebp*4], eax
    inc ebp
    jmp next
done:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

OTHER_OWNER = PRELUDE + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

DATA_SIZE = 0x1000
BAD_CALLS = [
    # (EAX, EBX, ECX, EDX, ESI, EDI), expected
    ((L.SYS_SEND, 5, 0x200, 4, 0, 0), L.E_BADPORT),  # never opened
    ((L.SYS_SEND, L.IPC_MAX_PORTS, 0x200, 4, 0, 0), L.E_BADPORT),
    ((L.SYS_SEND, U32, 0x200, 4, 0, 0), L.E_BADPORT),
    ((L.SYS_SEND, 1, 0x200, L.IPC_MAX_MESSAGE + 1, 0, 0), L.E_MSGSIZE),
    ((L.SYS_SEND, 1, DATA_SIZE - 3, 4, 0, 0), L.E_FAULT),  # one byte past the limit
    ((L.SYS_SEND, 1, 0xFFFFFFF0, 0x20, 0, 0), L.E_FAULT),  # wraps
    ((L.SYS_SEND, 1, 0, 4, L.KERNEL_DS, 0), L.E_FAULT),  # the kernel's segment
    ((L.SYS_SEND, 1, 0, 4, 0x1234, 0), L.E_FAULT),  # no such descriptor
    ((L.SYS_RECEIVE, 2, 0x200, 4, 0, 0), L.E_BADPORT),  # not this process's port
    ((L.SYS_RECEIVE, 1, 0, 4, L.USER_CS, 0), L.E_FAULT),  # code is not writable
    ((L.SYS_RECEIVE, 1, DATA_SIZE - 2, 4, 0, 0), L.E_FAULT),
    ((L.SYS_REPLY, 0, 0x200, 4, 0, 0), L.E_INVAL),  # no token
    ((L.SYS_REPLY, 1, 0x200, 4, 0, 0), L.E_INVAL),  # a thread not waiting for this process
    ((L.SYS_REPLY, 250, 0x200, 4, 0, 0), L.E_INVAL),
    ((L.SYS_REPLY, U32, 0x200, 4, 0, 0), L.E_INVAL),
    ((L.SYS_CALL, 1, 0x200, 4, DATA_SIZE - 1, 8), L.E_FAULT),  # reply buffer outside
    ((L.SYS_CALL, 1, 0x200, 5000, 0x200, 8), L.E_MSGSIZE),
    ((L.SYS_CALL_HANDOFF, 9, 0x200, 4, 0x200, 8), L.E_BADPORT),
    ((L.SYS_REPLY_WAIT, 0, 0x200, 4, 2, 8), L.E_BADPORT),
    ((L.SYS_REPLY_WAIT_HANDOFF, 0, DATA_SIZE, 4, 1, 8), L.E_FAULT),
    ((L.SYS_REPLY_WAIT, 3, 0x200, 4, 1, 8), L.E_INVAL),  # token of a thread not calling
    ((L.SYS_PORT_CREATE, 0x200, L.NS_NAME_MAX + 1, 0, 0, 0), L.E_INVAL),
    ((L.SYS_PORT_CREATE, DATA_SIZE - 2, 4, 0, 0, 0), L.E_FAULT),
    ((L.SYS_PORT_DESTROY, 2, 0, 0, 0, 0), L.E_BADPORT),  # another process's
    ((L.SYS_PORT_DESTROY, 40, 0, 0, 0, 0), L.E_BADPORT),
    ((L.SYS_L4_CALL, 0, 0, 0, 0, 0), L.E_INVAL),  # no thread 0 (issue 14)
    ((L.SYS_LRPC_CALL, 0, 0, 0, 0, 0), L.E_PERM),  # a free binding is nobody's
    ((30, 0, 0, 0, 0, 0), L.E_NOSYS),
    ((31, 0, 0, 0, 0, 0), L.E_NOSYS),
]


def test_bad_arguments_return_error_codes_and_leave_the_kernel_consistent() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    table = bytearray(0x100 + 32 * len(BAD_CALLS))
    table[0:4] = len(BAD_CALLS).to_bytes(4, "little")
    for k, (regs, _) in enumerate(BAD_CALLS):
        for j, value in enumerate(regs):
            table[0x100 + 32 * k + 4 * j : 0x100 + 32 * k + 4 * j + 4] = u32(value).to_bytes(
                4, "little"
            )
    caller = system.create_process(group, BAD_CALLER, data=bytes(table), data_size=DATA_SIZE)
    other = system.create_process(system.create_group(), OTHER_OWNER)
    ct = system.create_thread(caller, "main")
    system.create_thread(other, "main")
    assert system.run(max_cycles=2_000_000).status == "done"
    results = words(system, caller, 0x40, len(BAD_CALLS))
    expected = [u32(e) for _, e in BAD_CALLS]
    assert results == expected
    # Nothing leaked or queued; both owners have ended, so both ports were closed with
    # them (issue 19: a process with no thread left serves no port).
    assert system.check_ipc() == []
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES
    for port in range(L.IPC_MAX_PORTS):
        info = system.port_info(port)
        assert not info.open
        assert info.messages == () and info.waiting_tids == ()
    assert system.thread_state(ct).fault is None
    assert ipc_state(system.memory, ct.tid) == "none"


SENDS = PRELUDE + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    xor ebp, ebp
next:
    cmp ebp, dword ptr [0]
    jae done
    mov eax, SYS_SEND
    mov ebx, dword ptr [0x100+ebp*8]
    mov ecx, dword ptr [0x200+ebp*8]
    mov edx, dword ptr [0x204+ebp*8]
    mov esi, dword ptr [0x104+ebp*8]
    int 0x30
    mov dword ptr [0x40+ebp*4], eax
    inc ebp
    jmp next
done:
    # Stay alive (an L4 wait nobody ends): a dead process's ports close (issue 19).
    mov eax, SYS_L4_REPLY_WAIT
    xor ebx, ebx
    int 0x30
"""

send_st = st.tuples(
    st.sampled_from([0, 1, 2, 63, 64, 0x80000001]),  # port
    st.sampled_from([0, L.USER_DS, L.USER_CS, L.USER_SS, L.KERNEL_DS]),  # selector
    st.one_of(st.integers(0, 0x1400), st.integers(0xFFFFF000, 0xFFFFFFFF)),  # offset
    st.one_of(st.integers(0, 0x1200), st.just(L.IPC_MAX_MESSAGE + 1)),  # length
)


@given(sends=st.lists(send_st, min_size=1, max_size=6))
def test_random_send_arguments_give_the_predicted_result_and_queue_exactly_the_good_ones(
    sends: list[tuple[int, int, int, int]],
) -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    data_size = 0x1200
    table = bytearray(data_size)
    table[0:4] = len(sends).to_bytes(4, "little")
    for k, (port, sel, offset, length) in enumerate(sends):
        table[0x100 + 8 * k : 0x108 + 8 * k] = port.to_bytes(4, "little") + sel.to_bytes(
            4, "little"
        )
        table[0x200 + 8 * k : 0x208 + 8 * k] = offset.to_bytes(4, "little") + length.to_bytes(
            4, "little"
        )
    pattern = bytes((7 * i + 3) & 0xFF for i in range(0x300, data_size))
    table[0x300:] = pattern
    process = system.create_process(group, SENDS, data=bytes(table), data_size=data_size)
    system.create_thread(process, "main")
    assert system.run(max_cycles=2_000_000).status == "idle"
    limits = {0: data_size - 1, L.USER_DS: data_size - 1, L.USER_CS: process.code_size - 1,
              L.USER_SS: process.stack_size * process.max_threads - 1}  # fmt: skip
    expected: list[int] = []
    queued: list[tuple[int, int, int, bytes]] = []
    data = bytearray(table)  # the data segment as it was at each send
    for port, sel, offset, length in sends:
        if port != 1:
            expected.append(L.E_BADPORT)
        elif length > L.IPC_MAX_MESSAGE:
            expected.append(L.E_MSGSIZE)
        elif sel not in limits or (length and offset + length - 1 > limits[sel]):
            expected.append(L.E_FAULT)
        else:
            expected.append(0)
            if sel in (0, L.USER_DS):
                content = bytes(data[offset : offset + length])
            elif sel == L.USER_CS:
                content = system.read_process(process, "code", offset, length)
            else:
                content = b""  # the stack holds whatever the thread left there
            queued.append((sel, offset, length, content))
        k = len(expected) - 1
        data[0x40 + 4 * k : 0x44 + 4 * k] = u32(expected[-1]).to_bytes(4, "little")
    assert words(system, process, 0x40, len(sends)) == [u32(e) for e in expected]
    info = system.port_info(1)
    assert [m.length for m in info.messages] == [q[2] for q in queued]
    for message, (sel, _, length, content) in zip(info.messages, queued, strict=True):
        if sel != L.USER_SS:
            assert message.data == content
        assert len(message.data) == length
        assert message.sender_pid == process.pid and message.caller_tid is None
    assert system.check_ipc() == []
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES - len(queued)


DESTROYER = PRELUDE + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov eax, SYS_CREATE_THREAD
    lea ebx, [waiter]
    xor ecx, ecx
    int 0x30
    # Let the waiter block, queue a message on the port, then destroy it.
    mov eax, SYS_YIELD
    int 0x30
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov ebp, eax
    mov eax, SYS_SEND
    mov ebx, ebp
    mov ecx, 0
    mov edx, 16
    xor esi, esi
    int 0x30
    mov eax, SYS_PORT_DESTROY
    mov ebx, 1
    int 0x30
    mov dword ptr [0x10], eax
    mov eax, SYS_PORT_DESTROY
    mov ebx, ebp
    int 0x30
    mov dword ptr [0x14], eax
    mov eax, SYS_PORT_DESTROY
    mov ebx, ebp
    int 0x30
    mov dword ptr [0x18], eax
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
waiter:
    mov eax, SYS_RECEIVE
    mov ebx, 1
    mov ecx, 0x100
    mov edx, 16
    xor esi, esi
    int 0x30
    mov dword ptr [0x20], eax
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


def test_destroying_a_port_wakes_its_receivers_with_an_error_and_frees_its_messages() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    process = system.create_process(system.create_group(), DESTROYER, data_size=0x200)
    system.create_thread(process, "main")
    assert system.run(max_cycles=1_000_000).status == "done"
    assert words(system, process, 0x10, 3) == [0, 0, u32(L.E_BADPORT)]
    assert system.read_data32(process, 0x20) == u32(L.E_BADPORT)
    assert not system.port_info(1).open and not system.port_info(2).open
    assert system.check_ipc() == []
    assert free_messages(system.memory) == L.IPC_MAX_MESSAGES
