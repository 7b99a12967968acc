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

from lavsim.errors import check_int as _check_int
from lavsim.kernel import layout as L

__all__ = [
    "NET_OP_CALL", "NET_OP_FETCH", "NET_OP_LOOKUP", "NET_OP_REPLY", "NET_OP_SHIP", "NET_PORT",
    "NX_DATA_SIZE", "NX_HOSTS", "netserver_constants", "netserver_source", "remote_stub_source",
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
NX_NS_RQ = 0x2040  # serve: request to this host's name server (NS_REQ_SIZE bytes)
NX_NS_RP = 0x2080  # serve: its reply (NS_REPLY_SIZE bytes)
NX_FW = 0x2100
NX_FW_SIZE = 0x100
NX_FW_NS = 0x2200  # forward: registration request to this host's name server
NX_FW_NS_RP = 0x2240  # forward: its reply
NX_FW_RQ = 0x3000
NX_FW_RP = 0x4000
NX_BUFFER = 0x1000
NX_DATA_SIZE = 0x5000


def _read_source(name: str) -> str:
    return resources.files("lavsim.kernel").joinpath(name).read_text(encoding="utf-8")


def netserver_constants() -> dict[str, int]:
    """The ``.equ`` names netserver.s (and the remote call library) use."""
    names = {
        "NET_OP_CALL": NET_OP_CALL, "NET_OP_FETCH": NET_OP_FETCH, "NET_OP_LOOKUP": NET_OP_LOOKUP,
        "NET_OP_REPLY": NET_OP_REPLY, "NET_OP_SHIP": NET_OP_SHIP,
        "SYS_NET_ATTACH": L.SYS_NET_ATTACH, "SYS_NET_SEND": L.SYS_NET_SEND,
        "SYS_NET_RECV": L.SYS_NET_RECV, "SYS_NET_INSTALL": L.SYS_NET_INSTALL,
        "SYS_NET_FETCH": L.SYS_NET_FETCH, "SYS_PORT_CREATE": L.SYS_PORT_CREATE,
        "SYS_REPLY_WAIT": L.SYS_REPLY_WAIT, "SYS_CALL": L.SYS_CALL,
        "E_INVAL": L.E_INVAL & 0xFFFFFFFF, "E_NO_PROCEDURE": L.E_NO_PROCEDURE & 0xFFFFFFFF,
        "E_HOST_UNREACHABLE": L.E_HOST_UNREACHABLE & 0xFFFFFFFF,
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


def netserver_source(extra: str = "") -> str:
    """The network server's source: constants, ``netserver.s``, then ``extra`` (more guest
    code, e.g. for tests)."""
    prelude = "".join(f".equ {k}, {v:#x}\n" for k, v in netserver_constants().items())
    return prelude + _read_source("netserver.s") + extra


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
