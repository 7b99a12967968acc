"""Ports and message IPC (issue 5): the boot loader's part and host-side inspection.

Every runtime path (create and destroy a port, send, receive, call, reply, the two handoff
variants) is guest code in ``ipc.s``; this module only

- lays out the IPC service's kernel memory at boot (:func:`init_ipc`: an empty port table and
  the free list of message headers, each with its kernel buffer);
- reads it back for tests and tools (:func:`port_info`, :func:`free_messages`,
  :func:`ipc_state`, :func:`check_ipc`), never writing guest state;
- gives user programs the numbers they need (:func:`user_prelude`);
- names the per-phase breakdown of a message RPC from the observer's routine rows
  (:data:`PHASES`, :func:`phase_breakdown`).

System-call ABI (``int 0x30``, number in EAX, arguments in EBX ECX EDX ESI EDI, result in EAX;
errors are negative, see ``layout``; "sel" is a selector, 0 for the caller's DS)::

    16 port_create(name offset, name length, sel)  -> port     E_INVAL E_FAULT E_NOSPC E_AGAIN
    17 port_destroy(port)                          -> 0        E_BADPORT E_AGAIN
    18 send(port, offset, length, sel)             -> 0        E_BADPORT E_MSGSIZE E_FAULT E_AGAIN
    19 receive(port, offset, capacity, sel)        -> length, EBX token, ECX pid, EDX group
                                                               E_BADPORT E_FAULT
    20 call(port, offset, length, reply offset, reply capacity; buffers in DS)
                                                   -> reply length   E_BADPORT E_MSGSIZE ...
    21 reply(token, offset, length, sel)           -> 0        E_INVAL E_MSGSIZE E_FAULT E_AGAIN
    22 reply_wait(token or 0, offset, length, port, capacity; buffer in DS)
                                                   -> as receive
    23 call_handoff(as call)                       -> as call; switches straight to the receiver
    24 reply_wait_handoff(as reply_wait)           -> as receive; switches straight to the caller

Timed variants (issue 19, ``timeout.s``): 6 call_timed, 7 receive_timed, 8 reply_wait_timed
take the same arguments and a timeout in EBP (cycles, 0: none) and may also return E_TIMEOUT;
a call whose server process dies (or whose port closes with it) returns E_DEAD, timed or not.
"""

from __future__ import annotations

import attrs

from lavsim.errors import ConfigError, LavsimError
from lavsim.kernel import layout as L
from lavsim.kernel.observer import KernelStats
from lavsim.memory import PhysicalMemory

MASK32 = 0xFFFFFFFF

#: Rows of :class:`~lavsim.kernel.observer.KernelStats` (routine names and special rows)
#: summed into each phase of a message RPC. Everything not listed counts as ``"other"``.
#: The L4-style and LRPC-style paths (issue 14) share the phases: their checks of the
#: destination, the long part and the receiver's pages are argument checks; their state
#: changes, register-word transfer and LRPC linkage count with the queues and headers; the one
#: long-message copy is "copy in"; LRPC's change of domain (LDT, CR3) is a context switch.
PHASES: dict[str, tuple[str, ...]] = {
    "user": ("<user>",),
    "trap entry": ("<trap>", "syscall_entry"),
    "argument checks": (
        "ipc_check_buffer", "ipc_port_entry", "ipc_port_owned", "ipc_reply_target",
        "l4_dest", "l4_check_long", "l4_window",
    ),
    "ipc queues and headers": (
        "sys_send", "sys_receive", "sys_call", "sys_call_handoff", "ipc_call_common",
        "sys_reply", "sys_reply_wait", "sys_reply_wait_handoff", "ipc_reply_wait_common",
        "ipc_receive_common", "ipc_msg_alloc", "ipc_msg_free", "ipc_message_in",
        "ipc_take_message", "ipc_deliver", "ipc_wake_error", "ipc_post_kernel",
        "sys_port_create", "sys_port_destroy", "ipc_copy_name",
        "sys_l4_call", "sys_l4_reply_wait", "l4_transfer", "sys_l4_receive_buffer",
        "sys_lrpc_call", "sys_lrpc_return", "lrpc_leave",
    ),
    "copy in": ("ipc_copy_in", "l4_copy_long"),
    "scheduling": ("schedule", "ready_enqueue", "preempt"),
    "context switch and CR3": ("switch_to", "lrpc_domain"),
    "copy out": ("ipc_copy_out",),
    "return": ("trap_return",),
    "idle and interrupts": ("<idle>", "<interrupt>", "schedule_idle", "timer_handler"),
}  # fmt: skip


def phase_breakdown(stats: KernelStats) -> dict[str, int]:
    """Cycles of ``stats`` by RPC phase (:data:`PHASES`), plus ``"other"`` for the rest and
    ``"total"``; idle cycles are included under ``"idle and interrupts"``."""
    out: dict[str, int] = {}
    seen: set[str] = set()
    for phase, rows in PHASES.items():
        out[phase] = stats.cycles_in(*rows)
        seen.update(rows)
    out["idle and interrupts"] += stats.idle_cycles
    out["other"] = sum(r.cycles for name, r in stats.rows.items() if name not in seen)
    out["total"] = stats.cycles
    return out


def user_prelude() -> str:
    """``.equ`` lines giving user programs the system-call numbers, error codes, name-server
    protocol and address-structure offsets."""
    names: dict[str, int] = {}
    for name in dir(L):
        value = getattr(L, name)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if name.startswith(("SYS_", "NS_", "ADDR_", "E_")) or name in (
            "IPC_MAX_MESSAGE", "USER_DS", "USER_SS", "USER_CS",
        ):  # fmt: skip
            names[name] = value & MASK32
    return "".join(f".equ {name}, {value:#x}\n" for name, value in sorted(names.items()))


# --- boot ------------------------------------------------------------------------------------


def init_ipc(memory: PhysicalMemory) -> None:
    """Boot-loader setup of the IPC service: every port free, every message header on the free
    list with its kernel buffer (untimed, like the rest of the boot loader)."""
    memory.fill(L.IPC_PHYS, L.PAGE_SIZE, 0)
    for k in range(L.IPC_MAX_MESSAGES):
        header = L.IPC_MSGS_PHYS + k * L.MSG_SIZE
        following = (
            L.kernel_linear(header + L.MSG_SIZE) if k + 1 < L.IPC_MAX_MESSAGES else 0
        )
        memory.write32(header + L.MSG_NEXT, following)
        memory.write32(header + L.MSG_BUF, L.kernel_linear(_buffer_phys(k)))
    memory.write32(L.IPC_MSG_FREE, L.kernel_linear(L.IPC_MSGS_PHYS))


def _buffer_phys(k: int) -> int:
    return L.IPC_BUFFERS_PHYS + k * L.IPC_BUFFER_SIZE


def open_port_for(memory: PhysicalMemory, port: int, owner_pid: int) -> None:
    """Boot-loader setup: open ``port`` for process ``owner_pid`` (the name server's
    well-known port). The port must be free."""
    entry = _port_phys(port)
    if memory.read32(entry + L.PORT_STATE) != L.PORT_FREE:
        raise ConfigError("port", f"port {port} is already open")
    memory.fill(entry, L.PORT_SIZE, 0)
    memory.write32(entry + L.PORT_OWNER, L.PCB_LINEAR + owner_pid * L.PCB_SIZE)
    memory.write32(entry + L.PORT_STATE, L.PORT_OPEN)


def _port_phys(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < L.IPC_MAX_PORTS:
        raise ConfigError("port", f"must be an int in 0..{L.IPC_MAX_PORTS - 1}, got {port!r}")
    return L.IPC_PORTS_PHYS + port * L.PORT_SIZE


# --- reading state back -------------------------------------------------------------------------


@attrs.frozen
class QueuedMessage:
    """A message in a port's queue: its length, sender and (for a call) the waiting caller."""

    length: int
    sender_pid: int
    sender_group: int
    caller_tid: int | None
    data: bytes


@attrs.frozen
class PortInfo:
    """One port as the kernel holds it."""

    number: int
    open: bool
    owner_pid: int | None
    named: bool
    messages: tuple[QueuedMessage, ...]
    waiting_tids: tuple[int, ...]


def _kphys(linear: int) -> int:
    return linear - L.KERNEL_BASE


def _tid(tcb_linear: int) -> int:
    return (tcb_linear - L.TCB_LINEAR) // L.TCB_SIZE


def _walk(memory: PhysicalMemory, head: int, link: int, what: str) -> list[int]:
    """The linear addresses of a kernel linked list (refusing a cycle)."""
    out: list[int] = []
    seen: set[int] = set()
    node = head
    while node:
        if node in seen or len(out) > L.MAX_THREADS + L.IPC_MAX_MESSAGES:
            raise LavsimError(f"the {what} list loops at {node:#x}")
        seen.add(node)
        out.append(node)
        node = memory.read32(_kphys(node) + link)
    return out


def port_open(memory: PhysicalMemory, port: int) -> bool:
    """Is ``port`` open (``port_info(memory, port).open``, without reading the rest)?"""
    return memory.read32(_port_phys(port) + L.PORT_STATE) == L.PORT_OPEN


def port_info(memory: PhysicalMemory, port: int) -> PortInfo:
    """The state of ``port``: open or not, owner, queued messages, waiting receivers."""
    entry = _port_phys(port)
    is_open = memory.read32(entry + L.PORT_STATE) == L.PORT_OPEN
    owner = memory.read32(entry + L.PORT_OWNER)
    messages = []
    for header in _walk(memory, memory.read32(entry + L.PORT_HEAD), L.MSG_NEXT, "message"):
        h = _kphys(header)
        length = memory.read32(h + L.MSG_LEN)
        caller = memory.read32(h + L.MSG_CALLER)
        messages.append(QueuedMessage(
            length=length, sender_pid=memory.read32(h + L.MSG_PID),
            sender_group=memory.read32(h + L.MSG_GROUP),
            caller_tid=_tid(caller) if caller else None,
            data=memory.read(_kphys(memory.read32(h + L.MSG_BUF)), min(length, 4096)),
        ))  # fmt: skip
    waiting = _walk(memory, memory.read32(entry + L.PORT_WHEAD), L.TCB_IPC_NEXT, "waiter")
    return PortInfo(
        number=port, open=is_open,
        owner_pid=(owner - L.PCB_LINEAR) // L.PCB_SIZE if is_open else None,
        named=bool(memory.read32(entry + L.PORT_NAMED)),
        messages=tuple(messages), waiting_tids=tuple(_tid(t) for t in waiting),
    )  # fmt: skip


def free_messages(memory: PhysicalMemory) -> int:
    """Message headers (kernel buffers) on the free list."""
    head = memory.read32(L.IPC_MSG_FREE)
    return len(_walk(memory, head, L.MSG_NEXT, "free message"))


IPC_STATE_NAMES = {
    L.IPC_NONE: "none", L.IPC_WAIT_RECEIVE: "receive", L.IPC_WAIT_REPLY: "reply",
}  # fmt: skip


def ipc_state(memory: PhysicalMemory, tid: int) -> str:
    """What thread ``tid`` waits for in IPC: ``"none"``, ``"receive"`` or ``"reply"``."""
    tcb = _kphys(L.TCB_LINEAR + tid * L.TCB_SIZE)
    value = memory.read32(tcb + L.TCB_IPC_STATE)
    return IPC_STATE_NAMES.get(value, f"state {value}")


def check_ipc(memory: PhysicalMemory) -> list[str]:
    """Consistency of the IPC service's kernel state; the problems found (empty when sound).

    Every message header is in exactly one place (the free list, one port's queue, or handed
    to a waiting thread); queue lengths match PORT_QUEUED; closed ports hold nothing; every
    waiting receiver is blocked in receive on an open port; a queued call's caller is blocked
    waiting for a reply.
    """
    problems: list[str] = []
    places: dict[int, str] = {}

    def place(header: int, where: str) -> None:
        if header in places:
            problems.append(f"message {header:#x} is in {places[header]} and in {where}")
        places[header] = where

    try:
        for header in _walk(memory, memory.read32(L.IPC_MSG_FREE), L.MSG_NEXT, "free"):
            place(header, "the free list")
        for port in range(L.IPC_MAX_PORTS):
            info = port_info(memory, port)
            entry = _port_phys(port)
            heads = _walk(memory, memory.read32(entry + L.PORT_HEAD), L.MSG_NEXT, "queue")
            for header in heads:
                place(header, f"port {port}")
            if memory.read32(entry + L.PORT_QUEUED) != len(heads):
                problems.append(f"port {port}: PORT_QUEUED does not match its queue")
            if not info.open and (heads or info.waiting_tids):
                problems.append(f"port {port} is closed but holds messages or waiters")
            for tid in info.waiting_tids:
                tcb = _kphys(L.TCB_LINEAR + tid * L.TCB_SIZE)
                if (memory.read32(tcb + L.TCB_STATE) != L.THREAD_BLOCKED
                        or memory.read32(tcb + L.TCB_IPC_STATE) != L.IPC_WAIT_RECEIVE):
                    problems.append(f"port {port}: waiter {tid} is not blocked in receive")
            for message in info.messages:
                if message.caller_tid is not None and ipc_state(
                    memory, message.caller_tid
                ) != "reply":
                    problems.append(f"port {port}: caller {message.caller_tid} is not waiting")
        for tid in range(1, L.MAX_THREADS):
            tcb = _kphys(L.TCB_LINEAR + tid * L.TCB_SIZE)
            handed = memory.read32(tcb + L.TCB_IPC_MSG)
            if handed and memory.read32(tcb + L.TCB_STATE) in (L.THREAD_READY,
                                                                 L.THREAD_BLOCKED):
                place(handed, f"thread {tid}")
    except LavsimError as error:
        problems.append(str(error))
    if len(places) != L.IPC_MAX_MESSAGES and not problems:
        problems.append(f"{L.IPC_MAX_MESSAGES - len(places)} message headers are lost")
    return problems
