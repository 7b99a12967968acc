"""L4-style IPC and LRPC-style calls (issue 14): the boot loader's part and inspection.

Every runtime path is guest code: ``l4ipc.s`` (call, reply_and_wait, receive buffers) and
``lrpc.s`` (call and return through a binding). This module only grants what those paths
check, as the boot loader grants imports:

- :func:`grant_send`: the right of a process's threads to send L4-style messages to the
  threads of another process (a bit of the sender's ``PCB_L4_RIGHTS``);
- :func:`bind_lrpc`: an LRPC binding (an entry of the kernel's binding table) joining a client
  process to a procedure of a server: entry point, execution stack and argument stack, a data
  segment both have imported;

and reads the state back for tests (:func:`l4_state`, :func:`binding_caller`).

System-call ABI (``int 0x30``; see also :mod:`lavsim.kernel.ipc`)::

    25 l4_call(thread id, long offset, long length, word0, word1; long part in DS)
                                      -> reply's long length; ESI EDI reply words, EBX replier
                                         E_INVAL E_PERM E_MSGSIZE E_FAULT
    26 l4_reply_wait(caller id or 0, long offset, long length, word0, word1)
                                      -> message's long length; EBX sender, ESI EDI words
                                         E_INVAL E_MSGSIZE E_FAULT
    27 l4_receive_buffer(-, offset, capacity; in DS)    -> 0   E_MSGSIZE E_FAULT
    28 lrpc_call(binding, argument bytes)                -> the procedure's result
                                                            E_INVAL E_PERM E_AGAIN
    29 lrpc_return(result)               (from the procedure) -> back in the caller; E_INVAL
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from lavsim.errors import ConfigError, check_int
from lavsim.kernel import layout as L

if TYPE_CHECKING:
    from lavsim.kernel.system import LavenderSystem, Process

__all__ = ["LrpcBinding", "bind_lrpc", "binding_caller", "grant_send", "l4_state"]

L4_STATE_NAMES = {
    L.L4_NONE: "none", L.L4_WAIT_ANY: "wait", L.L4_WAIT_REPLY: "reply",
    L.L4_WAIT_SEND: "send",
}  # fmt: skip


def _process(system: LavenderSystem, field: str, process: object) -> Process:
    from lavsim.kernel.system import Process

    if not isinstance(process, Process) or system.processes.get(process.pid) is not process:
        raise ConfigError(field, "must be a process of this system")
    return process


def grant_send(system: LavenderSystem, sender: Process, receiver: Process) -> None:
    """Let the threads of ``sender`` call (L4-style) the threads of ``receiver``. Replies need
    no right: a thread may reply to the thread whose call it received, while it waits."""
    system._check_quiescent()
    sender = _process(system, "sender", sender)
    receiver = _process(system, "receiver", receiver)
    byte = sender.pcb_linear + L.PCB_L4_RIGHTS + receiver.pid // 8 - L.KERNEL_BASE
    memory = system.memory
    memory.write8(byte, memory.read8(byte) | 1 << (receiver.pid % 8))


@attrs.frozen
class LrpcBinding:
    """An LRPC binding: its number (the client passes it in EBX), the argument stack's selector
    in the client and in the server, and its size."""

    number: int
    client_selector: int
    server_selector: int
    astack_size: int


def bind_lrpc(
    system: LavenderSystem,
    client: Process,
    server: Process,
    entry: str,
    *,
    estack_top: int,
    astack_size: int = L.IPC_MAX_MESSAGE,
) -> LrpcBinding:
    """Bind ``client`` to the procedure at label ``entry`` of ``server`` (which needs no
    thread: the client's thread runs it). The execution stack ends at offset ``estack_top`` of
    the server's data segment; the argument stack is a fresh shared segment of
    ``astack_size`` bytes: exported by the server when both are in one group or the server is
    resident, else by a resident holder process both import from (only resident data crosses
    groups)."""
    system._check_quiescent()
    client = _process(system, "client", client)
    server = _process(system, "server", server)
    if client.resident:
        raise ConfigError("client", "must be a process of a group")
    offset = server.symbol(entry)
    check_int("estack_top", estack_top, 64, server.data_size)
    if estack_top % 4:
        raise ConfigError("estack_top", f"must be a multiple of 4, got {estack_top}")
    check_int("astack_size", astack_size, 4, L.IPC_MAX_MESSAGE)
    number = next((n for n in range(L.LRPC_MAX_BINDINGS)
                   if not system.read_kernel32(_entry(n) + L.LB_CLIENT)), None)  # fmt: skip
    if number is None:
        raise ConfigError("client", f"all {L.LRPC_MAX_BINDINGS} LRPC bindings are in use")
    sharing = system.sharing
    if server.resident or server.group is client.group:
        export = sharing.export_data(server, astack_size, name=f"A-stack {number}")
        server_selector = export.selector
    else:
        holder = system.create_resident_process("nop\n", name=f"A-stack {number} holder")
        export = sharing.export_data(holder, astack_size, name=f"A-stack {number}")
        server_selector = sharing.import_data(server, export)
    client_selector = sharing.import_data(client, export)
    base = _entry(number)
    for field, value in (
        (L.LB_SERVER, server.pcb_linear), (L.LB_ENTRY, offset), (L.LB_ESTACK, estack_top),
        (L.LB_ASTACK, server_selector), (L.LB_CALLER, 0), (L.LB_CLIENT, client.pcb_linear),
    ):  # fmt: skip
        system.write_kernel32(base + field, value)
    return LrpcBinding(number, client_selector, server_selector, astack_size)


def _entry(number: int) -> int:
    return L.LRPC_BINDINGS_LINEAR + number * L.LB_SIZE


def binding_caller(system: LavenderSystem, number: int) -> int | None:
    """The id of the thread in a call through binding ``number``, or None."""
    check_int("number", number, 0, L.LRPC_MAX_BINDINGS - 1)
    tcb = system.read_kernel32(_entry(number) + L.LB_CALLER)
    return (tcb - L.TCB_LINEAR) // L.TCB_SIZE if tcb else None


def l4_state(system: LavenderSystem, tid: int) -> str:
    """What thread ``tid`` waits for in L4-style IPC: ``"none"``, ``"wait"`` (a message from
    any thread), ``"reply"`` or ``"send"``."""
    check_int("tid", tid, 0, L.MAX_THREADS - 1)
    value = system.read_kernel32(L.TCB_LINEAR + tid * L.TCB_SIZE + L.TCB_L4_STATE)
    return L4_STATE_NAMES.get(value, f"state {value}")
