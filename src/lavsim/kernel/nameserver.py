"""The name server (issue 5): a user process of the resident space, reached by message IPC.

The server is guest code (``nameserver.s``) serving the well-known port ``NS_PORT``; this
module assembles it, starts it (:func:`start_name_server`, the boot loader's part: a resident
process, its port opened for it, one thread), builds request messages for clients
(:func:`request`) and reads its table back (:func:`name_entries`). Nothing here is on a
measured path.

Protocol (one message of ``NS_REQ_SIZE`` bytes per request; layout ``NS_REQ_*``)::

    +0 operation  +4 name length (<= NS_NAME_MAX)  +8 name  +40 value (port | gate selector)
    +44 offset  +48 group (ADDR_GROUP_RESIDENT = resident space)  +52 host  +56 flags

- ``NS_OP_PORT_REGISTER`` / ``NS_OP_PORT_UNREGISTER``: sent by the kernel itself (pid 0) from
  ``port_create`` / ``port_destroy`` (no reply); from anyone else refused.
- ``NS_OP_PORT_LOOKUP`` (call): reply status, port number.
- ``NS_OP_PROC_REGISTER`` (call): refused with ``E_PERM`` unless the group is the sender's own
  (or the sender is resident), with ``E_EXIST`` if the name is taken in that group or in the
  resident space (a resident name: taken anywhere), ``E_NOSPC`` when the table is full.
- ``NS_OP_PROC_LOOKUP`` (call): by name and the *caller's* group (which the kernel reports,
  not the request): a procedure of that group or of the resident space; reply status and the
  20-byte address structure (``ADDR_*``: host, group, selector, offset, flags).
- ``NS_OP_PROC_UNREGISTER`` (call): the entry of that name and exactly that group.

Replies: ``+0`` status (0 or a negative ``E_*``), ``+4`` port number or address structure.

**Without a name server** nothing answers at ``NS_PORT``, and nothing pretends to: the port stays
closed (``port_create`` never hands out ``NS_PORT``; it starts at ``NS_PORT + 1``), so a guest's
lookup or registration (a call to ``NS_PORT``) returns ``E_BADPORT`` at once instead of
blocking, and the kernel drops its own port-name registrations. Host side, every helper that
needs the server (:func:`require_name_server`, :func:`name_entries`, :func:`server_counters`,
``Host.register_procedure``) raises :class:`NoNameServerError`, which names
``start_name_server``. A name server whose thread has died leaves ``NS_PORT`` open with no
receiver: a call then waits for ever, and the run ends as a ``"deadlock"`` whose outcome names
the thread waiting on ``NS_PORT`` and says its owner has no thread left.
"""

from __future__ import annotations

import struct
from importlib import resources
from typing import TYPE_CHECKING

import attrs

from lavsim.errors import ConfigError, LavsimError
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import open_port_for, port_info, user_prelude

if TYPE_CHECKING:
    from lavsim.kernel.system import LavenderSystem, Process

_REQUEST = struct.Struct("<II32sIIIII")
assert _REQUEST.size == L.NS_REQ_SIZE
_ENTRY = struct.Struct("<II32sIIIIII")
assert _ENTRY.size == L.NS_ENTRY_SIZE

KIND_NAMES = {L.NS_KIND_PORT: "port", L.NS_KIND_PROC: "procedure"}


def name_server_source() -> str:
    """The name server's assembly: the user prelude, then ``nameserver.s``."""
    text = resources.files("lavsim.kernel").joinpath("nameserver.s").read_text("utf-8")
    return user_prelude() + text


def _check_u32(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise ConfigError(field, f"must be an int in 0..0xFFFFFFFF, got {value!r}")
    return value


def encode_name(name: str | bytes) -> bytes:
    """A name as the server stores it (ASCII/bytes, at most ``NS_NAME_MAX`` bytes)."""
    raw = name.encode("ascii") if isinstance(name, str) else bytes(name)
    if len(raw) > L.NS_NAME_MAX:
        raise ConfigError("name", f"at most {L.NS_NAME_MAX} bytes, got {len(raw)}")
    return raw


def request(
    op: int,
    name: str | bytes = b"",
    *,
    value: int = 0,
    offset: int = 0,
    group: int = 0,
    host: int = 0,
    flags: int = 0,
) -> bytes:
    """The ``NS_REQ_SIZE`` bytes of a request (for a client's data segment)."""
    if op not in (L.NS_OP_PORT_REGISTER, L.NS_OP_PORT_UNREGISTER, L.NS_OP_PORT_LOOKUP,
                  L.NS_OP_PROC_REGISTER, L.NS_OP_PROC_LOOKUP, L.NS_OP_PROC_UNREGISTER):
        raise ConfigError("op", f"not a name-server operation: {op!r}")
    raw = encode_name(name)
    fields = {"value": value, "offset": offset, "group": group, "host": host, "flags": flags}
    for field, v in fields.items():
        _check_u32(field, v)
    return _REQUEST.pack(op, len(raw), raw, value, offset, group, host, flags)


@attrs.frozen
class NameEntry:
    """One entry of the name server's table."""

    kind: str  # "port" or "procedure"
    name: bytes
    value: int  # port number, or the call gate's selector
    offset: int
    group: int
    host: int
    flags: int
    owner_pid: int


class NoNameServerError(LavsimError):
    """The system has no name server: start one with ``system.start_name_server()`` (before
    creating the ports whose names it should hold)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} needs the name server, and none runs on this system: call "
            "system.start_name_server() first (port NS_PORT is served by nobody until then)"
        )


def require_name_server(system: LavenderSystem, what: str = "this") -> Process:
    """The system's name server process; :class:`NoNameServerError` when none was started."""
    process = system.name_server
    if process is None:
        raise NoNameServerError(what)
    return process


def start_name_server(system: LavenderSystem) -> Process:
    """Boot-loader setup: the name server as a resident process with one thread, and its
    well-known port ``NS_PORT`` opened for it. Ports created before it starts are not named."""
    if getattr(system, "name_server", None) is not None:
        raise ConfigError("name_server", "the name server is already started")
    if port_info(system.memory, L.NS_PORT).open:
        raise ConfigError("port", f"port {L.NS_PORT} is already open")
    process = system.create_resident_process(
        name_server_source(), data_size=L.NS_DATA_SIZE, max_threads=1, name="nameserver"
    )
    open_port_for(system.memory, L.NS_PORT, process.pid)
    system.create_thread(process, "main")
    return process


def name_entries(system: LavenderSystem, process: Process | None = None) -> list[NameEntry]:
    """The name server's table, in slot order (host-side read, no statistics). ``process``
    defaults to the system's name server (:class:`NoNameServerError` when none runs)."""
    if process is None:
        process = require_name_server(system, "name_entries")
    raw = system.read_process(process, "data", L.NS_TABLE, L.NS_ENTRIES * L.NS_ENTRY_SIZE)
    out = []
    for k in range(L.NS_ENTRIES):
        kind, length, name, value, offset, group, host, flags, owner = _ENTRY.unpack_from(
            raw, k * L.NS_ENTRY_SIZE
        )
        if kind == L.NS_KIND_FREE:
            continue
        out.append(NameEntry(
            kind=KIND_NAMES.get(kind, f"kind {kind}"), name=name[: min(length, L.NS_NAME_MAX)],
            value=value, offset=offset, group=group, host=host, flags=flags, owner_pid=owner,
        ))  # fmt: skip
    return out


def server_counters(system: LavenderSystem, process: Process | None = None) -> tuple[int, int]:
    """(requests served, requests refused) so far, of ``process`` or the system's name
    server (:class:`NoNameServerError` when none runs)."""
    if process is None:
        process = require_name_server(system, "server_counters")
    return (system.read_data32(process, L.NS_SERVED), system.read_data32(process, L.NS_REFUSED))
