"""Ways of making an inter-process call: each builds a client, a server and the client's
labels on a booted :class:`~lavsim.kernel.LavenderSystem` (see :class:`Mechanism`).

The client's calls lie between its labels ``call_start`` and ``call_end`` (the harness cuts the
run there); it makes ``calls`` of them in a loop and exits. A call carries ``size`` bytes of
arguments (a multiple of 4, 0..4096) and a one-word result:

- thread migration passes up to 31 doublewords (124 bytes) as gate parameters (pushed by the
  client, copied once more by ``lav_call`` and once by the gate onto the ring-2 stack); a larger
  payload is written by the client into a data segment the server exported to it (one REP
  MOVSD) and the procedure gets its offset and length as two gate parameters;
- message RPC sends them as the request message (copied user -> kernel -> user); the reply is
  empty (the result is the reply length in EAX);
- L4-style IPC sends up to 8 bytes in the two register words (ESI, EDI), more as a long
  message copied once by the kernel into the server's receive buffer; the reply is the two
  words (the result is the reply's long length in EAX, 0);
- an LRPC-style call has the client's stub copy the arguments once onto the binding's
  argument stack (one REP MOVSD) before it traps; the procedure's result comes back in EAX.

The procedure and the message server do no work on the payload (``working_set`` pages of
their own data are read each call, 0 by default).

Adding a mechanism is one subclass: give it a ``key``, a ``label``, a ``column`` and a
:meth:`Mechanism.build` (or override a hook of an existing one), and list an instance in
:data:`MECHANISMS` (the RPC table's) or :data:`VARIANTS`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

import attrs

from lavsim.errors import ConfigError
from lavsim.experiments.workload import Workload
from lavsim.kernel import layout as L
from lavsim.kernel.fastipc import bind_lrpc, grant_send
from lavsim.kernel.ipc import user_prelude
from lavsim.kernel.sharing import ProcedureExport, lav_call_source
from lavsim.kernel.system import LavenderSystem, Process, ProcessGroup

__all__ = [
    "GATE_MAX_BYTES",
    "MECHANISMS",
    "RESULT",
    "VARIANTS",
    "FarCallGroup",
    "FarCallResident",
    "HandoffOneGroup",
    "HandoffTwoGroups",
    "InGroupMigration",
    "L4SmallSpaces",
    "L4TwoGroups",
    "LrpcOneGroup",
    "LrpcResident",
    "LrpcTwoGroups",
    "Mechanism",
    "MessageOneGroup",
    "MessageTwoGroups",
    "Parties",
    "ResidentMigration",
    "mechanism",
]

#: Most argument bytes a call gate copies (31 doublewords).
GATE_MAX_BYTES = 4 * 31
#: What the procedure returns (checked after every call).
RESULT = 0x600D

# Client data segment layout.
_ADDRESS = 0x000  # lav_call's address structure (20 bytes)
_COUNTER = 0x030  # calls left
_PORT = 0x034  # the server's port
_SHARED_SEL = 0x038  # the arguments' shared segment (migration above 124 bytes)
_PARTNER = 0x03C  # the server's thread id (L4) or the binding (LRPC)
_FAR_POINTER = 0x040  # offset and gate selector for a bare far CALL (6 bytes)
_PAYLOAD = 0x1000  # the arguments (up to 4096 bytes)
_REPLY = 0x2000  # the reply buffer
_CLIENT_DATA = 0x3000
# Server data segment layout (message servers): the receive buffer, then the working set.
_SERVER_BUFFER = 0x1000
_SERVER_WORKING_SET = 0x2000


@attrs.frozen
class Parties:
    """What a mechanism built: the client (its code has the labels ``main``, ``call_start`` and
    ``call_end``; no thread yet) and the server, what the client must hold at ``call_end``
    (``result`` in EAX; ``status`` in ECX unless None), the linear address of the client's copy
    into a shared segment (None: none), and the port the server must have opened (None)."""

    client: Process
    server: Process
    result: int
    status: int | None = None
    copy_label: int | None = None
    port: int | None = None


class Mechanism(abc.ABC):
    """One way of making an inter-process call.

    ``key`` names it on the command line and in records, ``label`` in table rows, ``column``
    (at most 12 characters) heads its column of the phase table.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    column: ClassVar[str]

    @abc.abstractmethod
    def build(self, system: LavenderSystem, work: Workload) -> Parties:
        """Create the client and the server (and the server's threads) on ``system``, which
        has just booted, for the calls of ``work``."""

    def __repr__(self) -> str:
        return f"<mechanism {self.key}>"


def client_data(work: Workload) -> bytearray:
    """The client's data segment: the call counter and the payload (the rest is zero)."""
    data = bytearray(_CLIENT_DATA)
    data[_COUNTER : _COUNTER + 4] = work.calls.to_bytes(4, "little")
    data[_PAYLOAD : _PAYLOAD + work.size] = bytes((7 * k + 3) & 0xFF for k in range(work.size))
    return data


def client_source(call: str) -> str:
    """The client: ``call`` (one call's instructions) between ``call_start`` and ``call_end``,
    repeated until the counter runs out, then exit."""
    return f"""
main:
call_start:
{call}
call_end:
    dec dword ptr [{_COUNTER:#x}]
    jnz call_start
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


def _touch(pages: int, base: str) -> str:
    """Read one dword of each of ``pages`` pages from ``base`` (an expression)."""
    if not pages:
        return ""
    return (
        f"    mov ecx, {pages}\n    mov eax, {base}\n.Ltouch:\n    mov edx, dword ptr [eax]\n"
        "    add eax, 4096\n    dec ecx\n    jnz .Ltouch\n"
    )


# --- thread migration ----------------------------------------------------------------------------


def _procedure(working_set: int) -> str:
    body = ""
    if working_set:
        body = "    push ds\n    mov eax, PROC_DATA_SEL\n    mov ds, ax\n"
        body += _touch(working_set, "0") + "    pop ds\n"
    return f"proc:\n{body}    mov eax, {RESULT:#x}\n    retf PROC_ARG_BYTES\n"


def _copy_to_shared(size: int) -> str:
    """The client's copy of the payload into the shared segment (labelled for the observer)."""
    return (
        "    push es\n"
        f"    mov eax, dword ptr [{_SHARED_SEL:#x}]\n    mov es, ax\n"
        f"    mov esi, {_PAYLOAD:#x}\n    xor edi, edi\n"
        "copy_args:\n"
        f"    mov ecx, {size // 4}\n    rep movsd\n    pop es\n"
    )


def _pushes(size: int) -> str:
    """Push the payload's doublewords, the first one last (so it lies lowest)."""
    words = reversed(range(size // 4))
    return "".join(f"    push dword ptr [{_PAYLOAD + 4 * k:#x}]\n" for k in words)


class InGroupMigration(Mechanism):
    """``lav_call`` through a call gate into a procedure exported by another process of the
    client's group (the thread migrates: gate, ring-2 procedure, RETF)."""

    key = "migration-group"
    label = "in-group migration"
    column = "migr. group"
    #: ECX at ``call_end`` (lav_call's status); None: not checked.
    status: ClassVar[int | None] = 0

    def server(self, system: LavenderSystem, group: ProcessGroup) -> Process:
        """The process that exports the procedure."""
        return system.create_process(group, "nop\n", name="server")

    def call(self, size: int, shared: bool) -> tuple[str, int]:
        """One call's instructions and the gate's parameter count."""
        if not shared:
            n = size // 4
            return (f"{_pushes(size)}    push {n}\n    push {_ADDRESS}\n    call lav_call\n"
                    f"    add esp, {4 * (n + 2)}\n", n)  # fmt: skip
        return (_copy_to_shared(size) + f"    push {size}\n    push 0\n    push 2\n"
                f"    push {_ADDRESS}\n    call lav_call\n    add esp, 16\n", 2)  # fmt: skip

    def library(self, group: ProcessGroup) -> str:
        """Code linked after the client's (the call library)."""
        return lav_call_source(group)

    def link(self, system: LavenderSystem, client: Process, export: ProcedureExport) -> None:
        """Let the client call ``export`` (import it; a resident export needs no import) and
        leave its address where the call sequence reads it."""
        system.sharing.import_procedure(client, export)
        system.sharing.write_address(client, _ADDRESS, export.address())

    def build(self, system: LavenderSystem, work: Workload) -> Parties:
        group = system.create_group("client")
        server = self.server(system, group)
        shared = work.size > GATE_MAX_BYTES
        body, params = self.call(work.size, shared)
        export = system.sharing.export_procedure(
            server, _procedure(work.working_set), entry="proc", params=params,
            private_data_size=4096 * work.working_set,
        )  # fmt: skip
        source = user_prelude() + client_source(body) + self.library(group)
        client = system.create_process(
            group, source, data=bytes(client_data(work)), data_size=_CLIENT_DATA, name="client"
        )  # fmt: skip
        self.link(system, client, export)
        copy_label = None
        if shared:
            # The arguments' segment: exported by the server, imported by the client, its
            # selector left in the client's data like any other boot-time constant.
            args = system.sharing.export_data(server, L.IPC_MAX_MESSAGE, name="args")
            selector = system.sharing.import_data(client, args)
            system.sharing.write_data(client, _SHARED_SEL, selector.to_bytes(4, "little"))
            copy_label = client.code_base + client.symbol("copy_args")
        return Parties(client, server, RESULT, self.status, copy_label)


class ResidentMigration(InGroupMigration):
    """The same into a procedure of a resident-space server (a GDT gate)."""

    key = "migration-resident"
    label = "migration into resident server"
    column = "migr. resid."

    def server(self, system: LavenderSystem, group: ProcessGroup) -> Process:
        return system.create_resident_process("nop\n", name="resident server")


class FarCallGroup(InGroupMigration):
    """A bare far CALL through the gate of an in-group procedure (no call library): the floor
    of a migrating call. The RETF pops the parameters off the caller's stack as well."""

    key = "far-call-group"
    label = "bare far call, in-group"
    column = "far call gr."
    status = None

    def call(self, size: int, shared: bool) -> tuple[str, int]:
        if not shared:
            return f"{_pushes(size)}    call fword ptr [{_FAR_POINTER:#x}]\n", size // 4
        return (_copy_to_shared(size) + f"    push {size}\n    push 0\n"
                f"    call fword ptr [{_FAR_POINTER:#x}]\n", 2)  # fmt: skip

    def library(self, group: ProcessGroup) -> str:
        return ""

    def link(self, system: LavenderSystem, client: Process, export: ProcedureExport) -> None:
        selector = system.sharing.import_procedure(client, export)
        pointer = export.entry.to_bytes(4, "little") + selector.to_bytes(2, "little")
        system.sharing.write_data(client, _FAR_POINTER, pointer)


class FarCallResident(FarCallGroup):
    """A bare far CALL through the GDT gate of a resident-space procedure."""

    key = "far-call-resident"
    label = "bare far call, resident"
    column = "far call res."

    def server(self, system: LavenderSystem, group: ProcessGroup) -> Process:
        return system.create_resident_process("nop\n", name="resident server")


# --- message RPC ---------------------------------------------------------------------------------


def _message_server(reply_wait: str, working_set: int) -> str:
    return f"""
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov ebp, eax
    mov eax, SYS_RECEIVE
    mov ebx, ebp
    mov ecx, {_SERVER_BUFFER:#x}
    mov edx, 0x1000
    xor esi, esi
    int 0x30
serve:
    # Touch the working set, then reply (empty) and wait for the next request.
{_touch(working_set, hex(_SERVER_WORKING_SET))}    mov eax, {reply_wait}
    mov ecx, {_SERVER_BUFFER:#x}
    xor edx, edx
    mov esi, ebp
    mov edi, 0x1000
    int 0x30
    jmp serve
"""


class MessageOneGroup(Mechanism):
    """Message RPC (``call`` / ``reply_wait``) to a server of the client's group."""

    key = "message-group"
    label = "message RPC, one group"
    column = "msg 1 group"
    call_number: ClassVar[str] = "SYS_CALL"
    reply_wait_number: ClassVar[str] = "SYS_REPLY_WAIT"

    def server_group(self, system: LavenderSystem, client_group: ProcessGroup) -> ProcessGroup:
        """The group the server runs in."""
        return client_group

    def call(self, work: Workload) -> str:
        """One call's instructions: the request is the payload, the reply buffer 4 KiB."""
        return (f"    mov eax, {self.call_number}\n    mov ebx, dword ptr [{_PORT:#x}]\n"
                f"    mov ecx, {_PAYLOAD:#x}\n    mov edx, {work.size}\n"
                f"    mov esi, {_REPLY:#x}\n    mov edi, 0x1000\n    int 0x30\n")  # fmt: skip

    def build(self, system: LavenderSystem, work: Workload) -> Parties:
        prelude = user_prelude()
        client_group = system.create_group("client")
        server = system.create_process(
            self.server_group(system, client_group),
            prelude + _message_server(self.reply_wait_number, work.working_set),
            data_size=_SERVER_WORKING_SET + 4096 * work.working_set, name="server",
        )  # fmt: skip
        # port_create takes the lowest free port above the name server's NS_PORT.
        port = next(p for p in range(L.NS_PORT + 1, L.IPC_MAX_PORTS)
                    if not system.port_info(p).open)  # fmt: skip
        data = client_data(work)
        data[_PORT : _PORT + 4] = port.to_bytes(4, "little")
        system.create_thread(server, "main")
        client = system.create_process(
            client_group, prelude + client_source(self.call(work)), data=bytes(data),
            data_size=_CLIENT_DATA, name="client",
        )  # fmt: skip
        return Parties(client, server, result=0, port=port)


class MessageTwoGroups(MessageOneGroup):
    """The same to a server in another group (a CR3 load each way)."""

    key = "message-groups"
    label = "message RPC, two groups"
    column = "msg 2 groups"

    def server_group(self, system: LavenderSystem, client_group: ProcessGroup) -> ProcessGroup:
        return system.create_group("server")


class HandoffTwoGroups(MessageTwoGroups):
    """Message RPC with direct handoff (``call_handoff`` / ``reply_wait_handoff``) to a server
    in another group: the L4-style baseline."""

    key = "handoff-groups"
    label = "message RPC, handoff, two groups"
    column = "handoff 2 gr"
    call_number = "SYS_CALL_HANDOFF"
    reply_wait_number = "SYS_REPLY_WAIT_HANDOFF"


class HandoffOneGroup(MessageOneGroup):
    """Message RPC with direct handoff to a server of the client's group."""

    key = "handoff-group"
    label = "message RPC, handoff, one group"
    column = "handoff 1 gr"
    call_number = "SYS_CALL_HANDOFF"
    reply_wait_number = "SYS_REPLY_WAIT_HANDOFF"


# --- L4-style IPC ----------------------------------------------------------------------------

#: Bytes an L4-style message carries in registers (two words).
L4_REGISTER_BYTES = 4 * L.L4_REGISTER_WORDS


def _l4_server(working_set: int) -> str:
    """Register the receive buffer, wait; then reply (the words back, one added to the first)
    and wait, forever."""
    return f"""
main:
    mov eax, SYS_L4_RECEIVE_BUFFER
    mov ecx, {_SERVER_BUFFER:#x}
    mov edx, 0x1000
    int 0x30
    mov eax, SYS_L4_REPLY_WAIT
    xor ebx, ebx
    xor edx, edx
    int 0x30
serve:
{_touch(working_set, hex(_SERVER_WORKING_SET))}    inc esi
    mov eax, SYS_L4_REPLY_WAIT
    xor edx, edx
    int 0x30
    jmp serve
"""


class L4TwoGroups(Mechanism):
    """L4-style IPC (``l4_call`` / ``l4_reply_wait`` to a thread id, register words, direct
    switch, long messages copied once) to a server in another group: a CR3 load each way."""

    key = "l4-groups"
    label = "L4-style IPC, two groups"
    column = "L4 2 groups"

    def server_group(self, system: LavenderSystem, client_group: ProcessGroup) -> ProcessGroup:
        """The group the server runs in."""
        return system.create_group("server")

    def call(self, work: Workload) -> str:
        """One call: the payload in the register words, or as a long message above 8 bytes."""
        if work.size <= L4_REGISTER_BYTES:
            words = [f"dword ptr [{_PAYLOAD + 4 * k:#x}]" if 4 * k < work.size else "0"
                     for k in range(2)]  # fmt: skip
            long = "    xor edx, edx\n"
        else:
            words = ["0", "0"]
            long = f"    mov ecx, {_PAYLOAD:#x}\n    mov edx, {work.size}\n"
        return (f"    mov eax, SYS_L4_CALL\n    mov ebx, dword ptr [{_PARTNER:#x}]\n{long}"
                f"    mov esi, {words[0]}\n    mov edi, {words[1]}\n    int 0x30\n")  # fmt: skip

    def build(self, system: LavenderSystem, work: Workload) -> Parties:
        prelude = user_prelude()
        client_group = system.create_group("client")
        server = system.create_process(
            self.server_group(system, client_group), prelude + _l4_server(work.working_set),
            data_size=_SERVER_WORKING_SET + 4096 * work.working_set, name="server",
        )  # fmt: skip
        thread = system.create_thread(server, "main")
        data = client_data(work)
        data[_PARTNER : _PARTNER + 4] = thread.tid.to_bytes(4, "little")
        client = system.create_process(
            client_group, prelude + client_source(self.call(work)), data=bytes(data),
            data_size=_CLIENT_DATA, name="client",
        )  # fmt: skip
        grant_send(system, client, server)
        return Parties(client, server, result=0)


class L4SmallSpaces(L4TwoGroups):
    """The same between two processes of one group: one page directory, the partners kept
    apart by their segments (Liedtke's small spaces), so no CR3 load and no TLB refill."""

    key = "l4-small-spaces"
    label = "L4-style IPC, small spaces"
    column = "L4 small sp."

    def server_group(self, system: LavenderSystem, client_group: ProcessGroup) -> ProcessGroup:
        return client_group


# --- LRPC-style calls ------------------------------------------------------------------------

#: The LRPC server's data segment: the execution stack below _SERVER_BUFFER, then the working
#: set at _SERVER_WORKING_SET.
_ESTACK_TOP = _SERVER_BUFFER


def _lrpc_server(working_set: int) -> str:
    """The procedure (no thread of its own): the working set, then return the result."""
    return (f"main:\n    nop\nproc:\n{_touch(working_set, hex(_SERVER_WORKING_SET))}"
            f"    mov ebx, {RESULT:#x}\n    mov eax, SYS_LRPC_RETURN\n    int 0x30\n")  # fmt: skip


class LrpcTwoGroups(Mechanism):
    """LRPC-style call (Bershad et al.): the client's stub copies the arguments once onto the
    argument stack shared at bind time and traps; the kernel checks the binding and runs the
    client's thread in a server of another group (a CR3 load each way): no scheduling, no
    message buffer, no thread switch."""

    key = "lrpc-groups"
    label = "LRPC-style call, two groups"
    column = "LRPC 2 gr."

    def server(self, system: LavenderSystem, client_group: ProcessGroup, source: str,
               data_size: int) -> Process:
        """The process that holds the procedure."""
        group = system.create_group("server")
        return system.create_process(group, source, data_size=data_size, name="server")

    def call(self, size: int) -> str:
        """One call: the arguments onto the A-stack (labelled for the observer), then trap."""
        copy = (f"    push es\n    mov eax, dword ptr [{_SHARED_SEL:#x}]\n    mov es, ax\n"
                f"    mov esi, {_PAYLOAD:#x}\n    xor edi, edi\ncopy_args:\n"
                f"    mov ecx, {size // 4}\n    rep movsd\n    pop es\n")  # fmt: skip
        return (f"{copy}    mov eax, SYS_LRPC_CALL\n    mov ebx, dword ptr [{_PARTNER:#x}]\n"
                f"    mov ecx, {size}\n    int 0x30\n")  # fmt: skip

    def build(self, system: LavenderSystem, work: Workload) -> Parties:
        prelude = user_prelude()
        group = system.create_group("client")
        server = self.server(system, group, prelude + _lrpc_server(work.working_set),
                             _SERVER_WORKING_SET + 4096 * work.working_set)
        client = system.create_process(
            group, prelude + client_source(self.call(work.size)), data=bytes(client_data(work)),
            data_size=_CLIENT_DATA, name="client",
        )  # fmt: skip
        binding = bind_lrpc(system, client, server, "proc", estack_top=_ESTACK_TOP)
        system.sharing.write_data(client, _SHARED_SEL,
                                  binding.client_selector.to_bytes(4, "little"))
        system.sharing.write_data(client, _PARTNER, binding.number.to_bytes(4, "little"))
        copy_label = client.code_base + client.symbol("copy_args")
        return Parties(client, server, RESULT, copy_label=copy_label)


class LrpcOneGroup(LrpcTwoGroups):
    """The same into a server of the client's group (no CR3 load)."""

    key = "lrpc-group"
    label = "LRPC-style call, one group"
    column = "LRPC 1 gr."

    def server(self, system: LavenderSystem, client_group: ProcessGroup, source: str,
               data_size: int) -> Process:
        return system.create_process(client_group, source, data_size=data_size, name="server")


class LrpcResident(LrpcTwoGroups):
    """The same into a resident-space server (in every address space: no CR3 load)."""

    key = "lrpc-resident"
    label = "LRPC-style call, resident"
    column = "LRPC resid."

    def server(self, system: LavenderSystem, client_group: ProcessGroup, source: str,
               data_size: int) -> Process:
        return system.create_resident_process(source, data_size=data_size,
                                              name="resident server")


def _registry(*mechanisms: Mechanism) -> Mapping[str, Mechanism]:
    return {m.key: m for m in mechanisms}


#: The mechanisms of the RPC table (``lavsim rpc``) and the sweeps' default, by key.
MECHANISMS: Mapping[str, Mechanism] = _registry(
    InGroupMigration(), ResidentMigration(), MessageOneGroup(), MessageTwoGroups(),
    HandoffTwoGroups(), L4TwoGroups(), L4SmallSpaces(), LrpcTwoGroups(),
)
#: Further mechanisms the benchmarks measure (and ``lavsim sweep --mechanisms`` accepts).
VARIANTS: Mapping[str, Mechanism] = _registry(
    FarCallGroup(), FarCallResident(), HandoffOneGroup(), LrpcOneGroup(), LrpcResident()
)


def mechanism(key: str) -> Mechanism:
    """The mechanism named ``key`` (see :data:`MECHANISMS` and :data:`VARIANTS`)."""
    found = MECHANISMS.get(key) or VARIANTS.get(key)
    if found is None:
        known = [*MECHANISMS, *VARIANTS]
        raise ConfigError("mechanism", f"one of {', '.join(known)}, not {key!r}")
    return found
