"""The network server's protocol and the guest sources built on it (issue 8).

Frame payloads exchanged by the network servers (``netserver.s``), the network server's data
segment layout, and the two guest-source builders: :func:`netserver_source` (the network
server) and :func:`remote_stub_source` (the remote half of the call library, ``netcall.s``,
which :func:`lavsim.kernel.sharing.lav_call_source` appends). They live in the kernel layer,
beside the ``.s`` files they configure, so that the call library never reaches up into
:mod:`lavsim.cluster` (which boots several hosts and imports these from here).
"""

from __future__ import annotations

from importlib import resources

from lavsim.errors import check_bool as _check_bool
from lavsim.errors import check_int as _check_int
from lavsim.kernel import layout as L

__all__ = [
    "NET_OP_CALL", "NET_OP_FETCH", "NET_OP_LOOKUP", "NET_OP_REPLY", "NET_OP_SHIP", "NET_PORT",
    "NX_DATA_SIZE", "NX_HOSTS", "NX_MAX_HOSTS", "netserver_constants", "netserver_source",
    "remote_stub_source",
]  # fmt: skip

#: Network-server protocol (payload of frames, see netserver.s).
NET_OP_CALL = 1
NET_OP_FETCH = 2
NET_OP_LOOKUP = 3
NET_OP_REPLY = 0x80

#: Client -> network server message: ship a procedure here (netserver.s, forward thread).
NET_OP_SHIP = 4
#: The network server's port (created first on every host, after the name server's port 0).
NET_PORT = 1

#: The network server's data segment.
NX_RQ = 0x0000
NX_RP = 0x1000
NX_FAR = 0x2000
NX_HOST = 0x2008
NX_RQ_LENGTH = 0x200C
NX_PORT = 0x2010
NX_TOKEN = 0x2014
NX_SEQ = 0x2018
NX_FW_RPLEN = 0x201C
NX_HOSTS = 0x2020  # number of hosts of the cluster (ids 1..NX_HOSTS), written at boot
NX_LOOKUP_HOST = 0x2024  # the host the forward thread's lookup is asking
NX_FW_LEN = 0x2028  # length of the forward thread's current request message
NX_TIMEOUT = 0x202C  # cycles forward waits for a reply before sending again, written at boot
NX_RETRIES = 0x2030  # how many times forward sends a request again, written at boot
NX_FW_TRIES = 0x2034  # retransmissions left for the current request
NX_FW_DEADLINE = 0x2038  # low TSC dword at which the current attempt times out
NX_FW_RQ_LEN = 0x203C  # length of the current request frame (for retransmission)
NX_NS_RQ = 0x2040  # serve: request to this host's name server (NS_REQ_SIZE bytes)
NX_NS_RP = 0x2080  # serve: its reply (NS_REPLY_SIZE bytes)
NX_FW = 0x2100
NX_FW_SIZE = 0x100
NX_FW_NS = 0x2200  # forward: registration request to this host's name server
NX_FW_NS_RP = 0x2240  # forward: its reply
#: Counters of the fault paths (only they change them): serve's calls answered from the
#: at-most-once table and requests dropped as stale; forward's retransmissions and requests
#: given up (E_NET_TIMEOUT).
NX_REPLAYED = 0x2300
NX_STALE = 0x2304
NX_RETRANSMITS = 0x2308
NX_GAVE_UP = 0x230C
#: serve's at-most-once table, by requester host id (1..NX_MAX_HOSTS): the id of the last call
#: it ran (a dword each), and that call's EAX and EDX (two dwords each).
NX_MAX_HOSTS = 64
NX_DONE_ID = 0x2400
NX_DONE_RESULT = 0x2600
NX_FW_RQ = 0x3000
NX_FW_RP = 0x4000
NX_BUFFER = 0x1000
NX_DATA_SIZE = 0x5000
assert NX_DONE_ID + 4 * (NX_MAX_HOSTS + 1) <= NX_DONE_RESULT
assert NX_DONE_RESULT + 8 * (NX_MAX_HOSTS + 1) <= NX_FW_RQ


def _read_source(name: str) -> str:
    return resources.files("lavsim.kernel").joinpath(name).read_text(encoding="utf-8")


def netserver_constants() -> dict[str, int]:
    """The ``.equ`` names netserver.s (and the remote call library) use."""
    names = {
        "NET_OP_CALL": NET_OP_CALL, "NET_OP_FETCH": NET_OP_FETCH, "NET_OP_LOOKUP": NET_OP_LOOKUP,
        "NET_OP_REPLY": NET_OP_REPLY, "NET_OP_SHIP": NET_OP_SHIP,
        "SYS_NET_ATTACH": L.SYS_NET_ATTACH, "SYS_NET_SEND": L.SYS_NET_SEND,
        "SYS_NET_RECV": L.SYS_NET_RECV, "SYS_NET_INSTALL": L.SYS_NET_INSTALL,
        "SYS_NET_FETCH": L.SYS_NET_FETCH, "SYS_NET_RECV_TIMED": L.SYS_NET_RECV_TIMED,
        "SYS_PORT_CREATE": L.SYS_PORT_CREATE,
        "SYS_REPLY_WAIT": L.SYS_REPLY_WAIT, "SYS_CALL": L.SYS_CALL,
        "E_INVAL": L.E_INVAL & 0xFFFFFFFF, "E_NO_PROCEDURE": L.E_NO_PROCEDURE & 0xFFFFFFFF,
        "E_HOST_UNREACHABLE": L.E_HOST_UNREACHABLE & 0xFFFFFFFF,
        "E_NET_TIMEOUT": L.E_NET_TIMEOUT & 0xFFFFFFFF,
        "ADDR_HOST": L.ADDR_HOST, "ADDR_GROUP": L.ADDR_GROUP, "ADDR_SELECTOR": L.ADDR_SELECTOR,
        "ADDR_OFFSET": L.ADDR_OFFSET, "ADDR_FLAGS": L.ADDR_FLAGS, "ADDR_SIZE": L.ADDR_SIZE,
        "ADDR_GROUP_RESIDENT": L.ADDR_GROUP_RESIDENT,
        "ADDR_FLAG_SHIPPABLE": L.ADDR_FLAG_SHIPPABLE,
        "E_NOENT": L.E_NOENT & 0xFFFFFFFF, "NS_PORT": L.NS_PORT, "NS_NAME_MAX": L.NS_NAME_MAX,
        "NS_REQ_OP": L.NS_REQ_OP, "NS_REQ_NAME_LEN": L.NS_REQ_NAME_LEN,
        "NS_REQ_NAME": L.NS_REQ_NAME, "NS_REQ_VALUE": L.NS_REQ_VALUE,
        "NS_REQ_OFFSET": L.NS_REQ_OFFSET, "NS_REQ_GROUP": L.NS_REQ_GROUP,
        "NS_REQ_HOST": L.NS_REQ_HOST, "NS_REQ_FLAGS": L.NS_REQ_FLAGS,
        "NS_REQ_SIZE": L.NS_REQ_SIZE, "NS_REPLY_STATUS": L.NS_REPLY_STATUS,
        "NS_REPLY_VALUE": L.NS_REPLY_VALUE, "NS_REPLY_SIZE": L.NS_REPLY_SIZE,
        "NS_OP_PROC_LOOKUP": L.NS_OP_PROC_LOOKUP, "NS_OP_PROC_REGISTER": L.NS_OP_PROC_REGISTER,
    }  # fmt: skip
    names.update({k: v for k, v in globals().items() if k.startswith("NX_")})
    return names


def netserver_source(extra: str = "", *, at_most_once: bool = True) -> str:
    """The network server's source: constants, ``netserver.s``, then ``extra`` (more guest
    code, e.g. for tests). ``at_most_once=False`` leaves out serve's table of calls run (the
    lines between ``# {at-most-once`` and ``# at-most-once}``): every CALL frame that arrives
    runs the procedure, duplicates and retransmissions included (the network server as it was
    before issue 19)."""
    _check_bool("at_most_once", at_most_once)
    prelude = "".join(f".equ {k}, {v:#x}\n" for k, v in netserver_constants().items())
    body = _read_source("netserver.s")
    if not at_most_once:
        body = _without_blocks(body, "# {at-most-once", "# at-most-once}")
    return prelude + body + extra


def _without_blocks(text: str, begin: str, end: str) -> str:
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        mark = line.strip()
        if mark == begin:
            skipping = True
        elif mark == end:
            skipping = False
        elif not skipping:
            out.append(line)
    return "".join(out)


#: Without a network buffer the remote half of lav_call only reports "unreachable".
_NO_REMOTE = """
lav_remote:
    mov eax, LAV_E_UNREACHABLE
    mov ecx, eax
    mov esp, ebp
    pop ebp
    ret
lav_ship:
lav_ship_as:
lav_lookup:
    mov eax, LAV_E_UNREACHABLE
    ret
"""


def remote_stub_source(net_buffer: int | None) -> str:
    """The remote half of the call library (``netcall.s``: ``lav_remote``, ``lav_ship``,
    ``lav_ship_as``, ``lav_lookup``) using 144 bytes at ``net_buffer`` of the process's data
    segment, or (None) stubs answering ``E_UNREACHABLE``."""
    if net_buffer is None:
        return _NO_REMOTE
    _check_int("net_buffer", net_buffer, 0, 0xFFFFFFFF - 144)
    constants = {
        "LAV_NET_BUF": net_buffer, "LAV_NET_PORT": NET_PORT, "LAV_NET_OP_CALL": NET_OP_CALL,
        "LAV_NET_OP_SHIP": NET_OP_SHIP, "LAV_SYS_CALL": L.SYS_CALL,
        "LAV_E_INVAL": L.E_INVAL & 0xFFFFFFFF, "LAV_NET_OP_LOOKUP": NET_OP_LOOKUP,
        "LAV_NS_PORT": L.NS_PORT, "LAV_NS_NAME_MAX": L.NS_NAME_MAX,
        "LAV_NS_REQ_SIZE": L.NS_REQ_SIZE, "LAV_NS_OP_PROC_LOOKUP": L.NS_OP_PROC_LOOKUP,
    }  # fmt: skip
    prelude = "".join(f".equ {k}, {v:#x}\n" for k, v in constants.items())
    return "\n# ---- remote calls (issue 8) ----\n" + prelude + _read_source("netcall.s")
