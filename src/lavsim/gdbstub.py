"""A GDB remote serial protocol stub for a :class:`~lavsim.machine.Machine`, on loopback TCP.

The stub is a step observer (:meth:`lavsim.machine.Machine.add_observer`): whoever drives the
machine (``LavenderSystem.run``, the RPC harness, a test) runs it as usual, and after every step
the stub decides whether gdb wants it stopped (a breakpoint at the next instruction, a single
step done, a watchpoint hit, Ctrl-C). While stopped it talks to gdb from inside the observer
call, so **simulated time does not advance while stopped**, and a session that only reads
changes no simulated result (breakpoints are checked host-side; nothing is written to guest
memory unless gdb writes).

What gdb sees:

- **registers**: the i386 core set (``eax``..``edi``, ``eip``, ``eflags``, ``cs``, ``ss``,
  ``ds``, ``es``, ``fs``, ``gs``; the x87 registers read as 0) from a target description, plus
  a ``org.lavsim.system`` feature: ``eip_offset`` (EIP within CS), the segment bases
  ``cs_base`` .. ``gs_base``, ``cpl``, ``cr0``, ``cr2``, ``cr3``, ``cr4`` and ``tsc``. gdb's
  ``$eip``/``$pc`` is the **linear** address of the next instruction (CS.base + EIP), so
  breakpoints, ``x/i $pc`` and symbols agree for code in segments with a non-zero base;
  writing ``$eip`` sets EIP = value - CS.base.
- **memory**: linear addresses, translated through the current page tables without touching
  the TLB or A/D bits (:meth:`~lavsim.machine.Machine.peek`); an unmapped page is an error.
  Physical memory: ``monitor phys ADDR [LEN]``, or (under Lavender) the kernel window, which
  maps physical address P at linear 0xC0000000 + P in every address space.
- **breakpoints** ``Z0``/``Z1`` (software and hardware are the same: a host-side address set),
  **watchpoints** ``Z2``/``Z3``/``Z4`` (write/read/access, on the physical bytes the linear range
  maps to when set, through the MMU's tracer seam), ``s``, ``c``, Ctrl-C, ``D``, ``k``.
- **threads**: from a :class:`Target`; the Lavender target (``lavsim.kernel.debug``) lists each
  Lavender thread with its process and state, and a thread that is not running shows its saved
  registers. Stepping or continuing runs the machine, whichever thread is current.

``k`` raises :class:`GdbKilled` out of the run (the driver reports it); a disconnect detaches.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from lavsim.cpu.state import CS, DS, ES, FS, GS, MASK32, SS
from lavsim.errors import ConfigError, LavsimError, MemoryAccessError, check_int
from lavsim.machine import Machine
from lavsim.mmu.mmu import Access
from lavsim.mmu.paging import walk

__all__ = [
    "CORE_REGISTERS",
    "EXTRA_REGISTERS",
    "GdbKilled",
    "GdbServer",
    "GdbStub",
    "MachineTarget",
    "PacketReader",
    "Target",
    "ThreadInfo",
    "checksum",
    "escape",
    "frame",
    "target_xml",
    "unescape",
]

CORE_REGISTERS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags",
                  "cs", "ss", "ds", "es", "fs", "gs")
_X87 = ("st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7")
_X87_CONTROL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")
EXTRA_REGISTERS = ("eip_offset", "cs_base", "ss_base", "ds_base", "es_base", "fs_base",
                   "gs_base", "cpl", "cr0", "cr2", "cr3", "cr4", "tsc")
#: (name, bytes) of every register, in gdb's numbering.
_LAYOUT: tuple[tuple[str, int], ...] = (
    *((n, 4) for n in CORE_REGISTERS), *((n, 10) for n in _X87),
    *((n, 4) for n in _X87_CONTROL), *((n, 8 if n == "tsc" else 4) for n in EXTRA_REGISTERS),
)
_SREGS = {"cs": CS, "ss": SS, "ds": DS, "es": ES, "fs": FS, "gs": GS}
_GENERAL = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")

SIGINT, SIGTRAP = 2, 5

#: Connections (INFO) and every packet from gdb (DEBUG, ``lavsim -vv``).
log = logging.getLogger("lavsim.gdbstub")
log.addHandler(logging.NullHandler())  # no "last resort" printing of warnings by default


class GdbKilled(LavsimError):
    """gdb asked to kill the run (``k``)."""


# --- packets ----------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """The packet checksum: the sum of the bytes modulo 256."""
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    """Escape ``$``, ``#``, ``}`` and ``*`` as ``}`` followed by the byte XOR 0x20."""
    out = bytearray()
    for b in data:
        if b in b"$#}*":
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """Undo :func:`escape` (a trailing lone ``}`` is dropped)."""
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is not None:
                out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def frame(payload: bytes) -> bytes:
    """``$payload#cc`` with the payload escaped."""
    body = escape(payload)
    return b"$" + body + b"#" + f"{checksum(body):02x}".encode()


class PacketReader:
    """Splits the byte stream from gdb into events: ``("packet", payload)`` (escapes still in
    the payload: binary packets unescape their data), ``("bad", raw)`` for a packet whose
    checksum is wrong or not hex, ``("interrupt", b"")`` for Ctrl-C (0x03 outside a packet),
    and ``("ack"|"nak", b"")``. Bytes outside packets that mean nothing are dropped."""

    MAX_PACKET = 1 << 20

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self._buffer += data
        out: list[tuple[str, bytes]] = []
        buf = self._buffer
        while buf:
            b = buf[0]
            if b == 0x03:
                out.append(("interrupt", b""))
                del buf[0]
            elif b in b"+-":
                out.append(("ack" if b == 0x2B else "nak", b""))
                del buf[0]
            elif b == 0x24:  # $
                end = buf.find(b"#")
                if end < 0:
                    if len(buf) > self.MAX_PACKET:
                        out.append(("bad", bytes(buf[:64])))
                        buf.clear()
                    break
                if len(buf) < end + 3:
                    break
                body = bytes(buf[1:end])
                digits = bytes(buf[end + 1:end + 3])
                del buf[:end + 3]
                try:
                    good = int(digits, 16) == checksum(body)
                except ValueError:
                    good = False
                out.append(("packet", body) if good else ("bad", body))
            else:
                del buf[0]
        return out


# --- targets ---------------------------------------------------------------------------------


@attrs.frozen
class ThreadInfo:
    """One thread as gdb lists it: its id (> 0) and a description (``info threads``)."""

    id: int
    description: str


class Target(Protocol):
    """What the stub needs besides the machine: threads, their saved registers, symbols."""

    machine: Machine

    def threads(self) -> Sequence[ThreadInfo]:
        """Every thread to list, the current one included."""
        ...

    def current_thread(self) -> int:
        """The id of the thread the processor is running."""
        ...

    def saved_registers(self, thread: int) -> dict[str, int] | None:
        """Registers of a thread that is not running (names of :data:`CORE_REGISTERS`,
        ``eip`` linear), or None for the running thread (read from the processor)."""
        ...

    def symbol_file(self) -> str | None:
        """The path of an ELF file with the symbols, or None."""
        ...

    def monitor(self, command: str) -> str | None:
        """Output of a target-specific ``monitor`` command, or None if unknown."""
        ...


class MachineTarget:
    """A bare machine: one thread (id 1), no symbols."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def threads(self) -> Sequence[ThreadInfo]:
        return [ThreadInfo(1, "the processor")]

    def current_thread(self) -> int:
        return 1

    def saved_registers(self, thread: int) -> dict[str, int] | None:
        return None

    def symbol_file(self) -> str | None:
        return None

    def monitor(self, command: str) -> str | None:
        return None


def target_xml() -> str:
    """The target description: gdb's i386 core feature and the lavsim system registers."""
    flags = "".join(
        f'<field name="{n}" start="{b}" end="{b}"/>'
        for n, b in (("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7),
                     ("TF", 8), ("IF", 9), ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16),
                     ("VM", 17), ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21)))
    types = {"esp": "data_ptr", "ebp": "data_ptr", "eip": "code_ptr", "eflags": "i386_eflags"}
    core = "".join(f'<reg name="{n}" bitsize="32" type="{types.get(n, "int32")}"/>'
                   for n in CORE_REGISTERS)
    core += "".join(f'<reg name="{n}" bitsize="80" type="i387_ext"/>' for n in _X87)
    core += "".join(f'<reg name="{n}" bitsize="32" type="int" group="float"/>'
                    for n in _X87_CONTROL)
    extra = "".join(
        f'<reg name="{n}" bitsize="{64 if n == "tsc" else 32}" type="'
        f'{"uint64" if n == "tsc" else "uint32"}" group="system"/>' for n in EXTRA_REGISTERS)
    return (
        '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
        "<target><architecture>i386</architecture>"
        '<feature name="org.gnu.gdb.i386.core">'
        f'<flags id="i386_eflags" size="4">{flags}</flags>{core}</feature>'
        f'<feature name="org.lavsim.system">{extra}</feature></target>'
    )


# --- the protocol, independent of the socket -----------------------------------------------


class GdbStub:
    """Answers gdb's packets for ``target`` (no socket: :meth:`handle` takes a payload and
    returns the reply payload). Resume commands set :attr:`resume` (``"continue"`` or
    ``"step"``) and return None; the caller replies with a stop reply later."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.machine = target.machine
        self.breakpoints: set[int] = set()
        #: Watched linear ranges: (linear, length, kind 2 write / 3 read / 4 access).
        self.watchpoints: list[tuple[int, int, int]] = []
        #: The physical bytes they map to under CR3 ``_watch_cr3`` (see :meth:`watched`).
        self._watched: list[tuple[int, int, int]] = []
        self._watch_cr3: int | None = None
        self.resume: str | None = None
        self.detached = False
        self.killed = False
        self.register_thread = 0
        self._xml = target_xml().encode()

    # --- replies -----------------------------------------------------------------------------
    def stop_reply(self, signal: int = SIGTRAP, watch: tuple[int, int] | None = None) -> bytes:
        """A ``T`` stop reply naming the current thread (and the watchpoint hit)."""
        tid = self.target.current_thread()
        self.register_thread = 0
        extra = ""
        if watch is not None:
            kind, linear = watch
            extra = f"{ {2: 'watch', 3: 'rwatch', 4: 'awatch'}[kind]}:{linear:x};"
        return f"T{signal:02x}{extra}thread:{tid:x};".encode()

    def handle(self, packet: bytes) -> bytes | None:
        """The reply to one packet (``b""`` = not supported; ``E..`` = refused). Never raises
        for a bad packet."""
        try:
            return self._dispatch(packet)
        except (ValueError, IndexError, KeyError, UnicodeDecodeError, struct.error):
            return b"E01"

    def _dispatch(self, p: bytes) -> bytes | None:
        if not p:
            return b""
        c = p[:1]
        if c == b"?":
            return self.stop_reply()
        if c == b"g":
            return self._read_all().hex().encode()
        if c == b"G":
            return self._write_all(bytes.fromhex(p[1:].decode()))
        if c == b"p":
            return self._read_register(int(p[1:], 16))
        if c == b"P":
            number, value = p[1:].split(b"=")
            return self._write_register(int(number, 16), bytes.fromhex(value.decode()))
        if c == b"m":
            address, length = (int(x, 16) for x in p[1:].split(b","))
            data = self.read_memory(address, length)
            return b"E14" if data is None else data.hex().encode()
        if c == b"M":
            where, hexdata = p[1:].split(b":")
            address, length = (int(x, 16) for x in where.split(b","))
            data = bytes.fromhex(hexdata.decode())
            if len(data) != length:
                return b"E01"
            return b"OK" if self.write_memory(address, data) else b"E14"
        if c == b"X":
            head, _, raw = p[1:].partition(b":")
            address, length = (int(x, 16) for x in head.split(b","))
            data = unescape(raw)
            if len(data) != length:
                return b"E01"
            return b"OK" if self.write_memory(address, data) else b"E14"
        if c in (b"Z", b"z"):
            return self._breakpoint(c == b"Z", p[1:])
        if c in (b"c", b"s"):
            if len(p) > 1:
                self._set_pc(int(p[1:], 16))
            self.resume = "continue" if c == b"c" else "step"
            return None
        if c == b"H":
            if p[1:2] == b"g":
                self.register_thread = self._thread_id(p[2:])
            return b"OK"
        if c == b"T":
            tid = self._thread_id(p[1:])
            return b"OK" if any(t.id == tid for t in self.target.threads()) else b"E01"
        if c == b"D":
            self.detached = True
            return b"OK"
        if c == b"k":
            self.killed = True
            return None
        if c == b"q":
            return self._query(p)
        return b""

    def _query(self, p: bytes) -> bytes:
        if p.startswith(b"qSupported"):
            features = "PacketSize=4000;qXfer:features:read+;swbreak+;hwbreak+"
            if self.target.symbol_file() is not None:
                features += ";qXfer:exec-file:read+"
            return features.encode()
        if p.startswith(b"qXfer:features:read:target.xml:"):
            return self._xfer(self._xml, p.rsplit(b":", 1)[1])
        if p.startswith(b"qXfer:exec-file:read:"):
            path = self.target.symbol_file()
            if path is None:
                return b"E01"
            return self._xfer(path.encode(), p.rsplit(b":", 1)[1])
        if p == b"qAttached" or p.startswith(b"qAttached:"):
            return b"1"
        if p == b"qC":
            return f"QC{self.target.current_thread():x}".encode()
        if p == b"qfThreadInfo":
            return ("m" + ",".join(f"{t.id:x}" for t in self.target.threads())).encode()
        if p == b"qsThreadInfo":
            return b"l"
        if p.startswith(b"qThreadExtraInfo,"):
            tid = int(p.split(b",")[1], 16)
            for t in self.target.threads():
                if t.id == tid:
                    return t.description.encode().hex().encode()
            return b"E01"
        if p.startswith(b"qSymbol"):
            return b"OK"
        if p.startswith(b"qRcmd,"):
            command = bytes.fromhex(p[6:].decode()).decode().strip()
            return self.monitor(command).encode().hex().encode()
        return b""

    @staticmethod
    def _xfer(data: bytes, window: bytes) -> bytes:
        offset, length = (int(x, 16) for x in window.split(b","))
        chunk = data[offset:offset + length]
        return (b"l" if offset + length >= len(data) else b"m") + chunk

    @staticmethod
    def _thread_id(text: bytes) -> int:
        value = int(text, 16) if text not in (b"", b"-1") else 0
        check_int("thread", value, 0)
        return value

    # --- registers --------------------------------------------------------------------------
    def registers(self) -> dict[str, int]:
        """The selected thread's registers by name (every name of the layout)."""
        tid = self.register_thread
        saved = None
        if tid and tid != self.target.current_thread():
            saved = self.target.saved_registers(tid)
        out = {name: 0 for name, _ in _LAYOUT}
        if saved is not None:
            out.update(saved)
            return out
        cpu = self.machine.cpu
        for k, name in enumerate(_GENERAL):
            out[name] = cpu.regs[k]
        out["eflags"] = cpu.get_eflags()
        for name, index in _SREGS.items():
            out[name] = cpu.seg[index].selector
            out[f"{name}_base"] = cpu.seg[index].base
        out["eip"] = (cpu.seg[CS].base + cpu.eip) & MASK32
        out["eip_offset"] = cpu.eip
        out.update(cpl=cpu.cpl, cr0=cpu.cr0, cr2=cpu.cr2, cr3=cpu.cr3, cr4=cpu.cr4, tsc=cpu.tsc)
        out["fctrl"] = 0x37F
        return out

    def _read_all(self) -> bytes:
        values = self.registers()
        return b"".join(values[name].to_bytes(size, "little") for name, size in _LAYOUT)

    def _read_register(self, number: int) -> bytes:
        if not 0 <= number < len(_LAYOUT):
            return b"E45"
        name, size = _LAYOUT[number]
        return self.registers()[name].to_bytes(size, "little").hex().encode()

    def _write_all(self, data: bytes) -> bytes:
        if len(data) < 16 * 4:
            return b"E01"
        for number in range(16):
            reply = self._write_register(number, data[4 * number:4 * number + 4], check=False)
            if reply != b"OK":
                return reply
        return b"OK"

    def _write_register(self, number: int, value: bytes, check: bool = True) -> bytes:
        tid = self.register_thread
        if tid and tid != self.target.current_thread():
            return b"E01"  # a saved thread's registers are read-only
        if not 0 <= number < len(_LAYOUT):
            return b"E45"
        name, size = _LAYOUT[number]
        if len(value) != size:
            return b"E01"
        v = int.from_bytes(value, "little")
        cpu = self.machine.cpu
        if name in _GENERAL:
            cpu.regs[_GENERAL.index(name)] = v
        elif name == "eip":
            self._set_pc(v)
        elif name == "eip_offset":
            cpu.eip = v & MASK32
        elif name == "eflags":
            cpu.set_eflags(v)
        elif name in _SREGS and check and v != cpu.seg[_SREGS[name]].selector:
            return b"E01"  # a segment load would need the descriptor tables
        return b"OK"

    def _set_pc(self, linear: int) -> None:
        cpu = self.machine.cpu
        cpu.eip = (linear - cpu.seg[CS].base) & MASK32

    # --- memory -----------------------------------------------------------------------------
    def physical(self, linear: int) -> int | None:
        """The physical address of a linear one under the current page tables (no TLB, no A/D
        write-back), or None when unmapped."""
        cpu = self.machine.cpu
        if not cpu.cr0 & (1 << 31):
            return linear & MASK32
        result = walk(_Reader(self.machine), cpu.cr3, linear & MASK32, False, False, False,
                      bool(cpu.cr4 & (1 << 4)))
        return None if result.fault is not None else result.physical

    def read_memory(self, linear: int, length: int) -> bytes | None:
        """Bytes at a linear address, or None when a page is not mapped."""
        if not 0 <= length <= 0x10000:
            return None
        return self.machine.peek(linear, length)

    def write_memory(self, linear: int, data: bytes) -> bool:
        """Store bytes at a linear address (all pages checked first); False when unmapped."""
        places = [self.physical(linear + k) for k in range(len(data))]
        if any(p is None for p in places):
            return False
        try:
            for phys, byte in zip(places, data, strict=True):
                assert phys is not None
                self.machine.memory.write8(phys, byte)
                self.machine.cpu.physical_written(phys, 1)
        except MemoryAccessError:
            return False
        return True

    def _breakpoint(self, insert: bool, body: bytes) -> bytes:
        kind_text, address_text, length_text = body.split(b",")[:3]
        kind = int(kind_text)
        address = int(address_text, 16) & MASK32
        length = int(length_text.split(b";")[0], 16)
        if kind in (0, 1):
            (self.breakpoints.add if insert else self.breakpoints.discard)(address)
            return b"OK"
        if kind in (2, 3, 4):
            if not 1 <= length <= 4096:
                return b"E01"
            watch = (address, length, kind)
            if insert:
                self.watchpoints.append(watch)
            elif watch in self.watchpoints:
                self.watchpoints.remove(watch)
            self._watch_cr3 = None
            return b"OK"
        return b""

    def watched(self) -> list[tuple[int, int, int]]:
        """(physical byte, kind, linear) of every watched byte mapped in the current address
        space (recomputed when CR3 changes: a watchpoint is on a linear address)."""
        cr3 = self.machine.cpu.cr3
        if cr3 != self._watch_cr3:
            self._watch_cr3 = cr3
            self._watched = []
            for linear, length, kind in self.watchpoints:
                for k in range(length):
                    phys = self.physical(linear + k)
                    if phys is not None:
                        self._watched.append((phys, kind, linear))
        return self._watched

    # --- monitor ----------------------------------------------------------------------------
    def monitor(self, command: str) -> str:
        """``monitor`` commands: help, cycles, phys ADDR [LEN], linear ADDR, and the
        target's own."""
        words = command.split()
        if not words or words[0] == "help":
            return ("lavsim monitor commands:\n"
                    "  cycles              the cycle counter (TSC) and instructions retired\n"
                    "  phys ADDR [LEN]     hex dump of physical memory (default 16 bytes)\n"
                    "  linear ADDR         the physical address a linear one maps to\n"
                    "  threads             every thread with its process and state\n")
        cpu = self.machine.cpu
        if words[0] == "cycles":
            return f"tsc {cpu.tsc} instructions {cpu.instructions}\n"
        if words[0] == "phys" and len(words) in (2, 3):
            address = int(words[1], 0)
            length = int(words[2], 0) if len(words) == 3 else 16
            if not 0 < length <= 4096:
                return "error: LEN must be 1..4096\n"
            try:
                data = self.machine.memory.read(address, length)
            except MemoryAccessError as error:
                return f"error: {error}\n"
            return "".join(f"{address + k:08x}: {data[k:k + 16].hex(' ')}\n"
                           for k in range(0, length, 16))
        if words[0] == "linear" and len(words) == 2:
            linear = int(words[1], 0)
            phys = self.physical(linear)
            return (f"{linear:#010x} -> not mapped\n" if phys is None
                    else f"{linear:#010x} -> physical {phys:#010x}\n")
        if words[0] == "threads":
            return "".join(f"{t.id:4} {t.description}\n" for t in self.target.threads())
        out = self.target.monitor(command)
        return out if out is not None else f"unknown monitor command {words[0]!r}; try help\n"


class _Reader:
    """Physical memory for a debugger's walk: reads only, A/D write-backs dropped."""

    def __init__(self, machine: Machine) -> None:
        self.memory = machine.memory

    def read32(self, addr: int, /) -> int:
        return self.memory.read32(addr)

    def write32(self, addr: int, value: int, /) -> None:
        pass


# --- the server: a socket and the step observer ------------------------------------------------


class GdbServer:
    """The stub on ``127.0.0.1:port`` (0 picks a free port: see :attr:`port`), driving
    ``target.machine`` as a step observer.

    ``timeout``: seconds :meth:`wait_for_gdb` waits for a connection (None: for ever); once
    connected, the stub waits for gdb as long as gdb stays connected.

    Use: ``server = GdbServer(target, port)``; ``server.wait_for_gdb()`` (blocks until gdb
    connects and resumes); run the machine however you like; ``server.finish(code)`` tells gdb
    the program exited and closes. Also a context manager (``finish(0)`` on exit).
    """

    POLL_STEPS = 2048

    def __init__(self, target: Target, port: int = 0, *, timeout: float | None = 60.0,
                 log: Callable[[str], None] | None = None) -> None:
        check_int("port", port, 0, 65535)
        self.stub = GdbStub(target)
        self.machine = target.machine
        self.timeout = timeout
        self.log = log
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind(("127.0.0.1", port))
        except OSError as error:
            self._listener.close()
            raise ConfigError("port", f"cannot listen on 127.0.0.1:{port}: {error}") from None
        self._listener.listen(1)
        self.port: int = self._listener.getsockname()[1]
        self._conn: socket.socket | None = None
        self._reader = PacketReader()
        self._pending: list[tuple[str, bytes]] = []
        self._countdown = self.POLL_STEPS
        self._watch_hit: tuple[int, int] | None = None
        self._tracer: _WatchTracer | None = None
        self._attached = False

    # --- connection -------------------------------------------------------------------------
    def wait_for_gdb(self) -> None:
        """Accept gdb's connection and serve it until it resumes the machine; then the stub
        observes every step."""
        self._listener.settimeout(self.timeout)
        try:
            conn, _ = self._listener.accept()
        except TimeoutError:
            raise LavsimError(f"no gdb connected to 127.0.0.1:{self.port} within "
                              f"{self.timeout} s") from None
        log.info("gdb connected to 127.0.0.1:%d", self.port)
        # The timeout bounds the wait for a connection only: a person may sit at gdb's prompt.
        conn.settimeout(None)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        self.machine.add_observer(self)
        self._attached = True
        self._serve(initial=True)

    def _send(self, payload: bytes) -> None:
        if self._conn is None:
            return
        try:
            self._conn.sendall(frame(payload))
        except OSError:
            self._disconnect()

    def _events(self, block: bool) -> list[tuple[str, bytes]]:
        if self._pending:
            out, self._pending = self._pending, []
            return out
        conn = self._conn
        if conn is None:
            return []
        if not block:
            ready, _, _ = select.select([conn], [], [], 0)
            if not ready:
                return []
        try:
            data = conn.recv(65536)
        except (TimeoutError, OSError):
            data = b""
        if not data:
            self._disconnect()
            return []
        return self._reader.feed(data)

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        self._conn = None
        self.stub.detached = True
        self._drop_tracer()

    def _serve(self, initial: bool = False, reply: bytes | None = None) -> None:
        """Answer packets until gdb resumes, detaches or goes away."""
        stub = self.stub
        if reply is not None:
            self._send(reply)
        stub.resume = None
        while self._conn is not None and not stub.detached:
            for kind, payload in self._events(block=True):
                if kind == "packet":
                    if self.log is not None:
                        self.log(f"gdb> {payload[:80]!r}")
                    log.debug("gdb> %r", payload[:80])
                    self._conn.sendall(b"+") if self._conn else None
                    answer = stub.handle(payload)
                    if stub.killed:
                        self._send(b"OK")
                        self._disconnect()
                        raise GdbKilled("the run was killed from gdb")
                    if answer is not None:
                        self._send(answer)
                    if stub.detached:
                        self._disconnect()
                        return
                    if stub.resume is not None:
                        self._update_tracer()
                        return
                elif kind == "bad":
                    if self._conn is not None:
                        self._conn.sendall(b"-")
                elif kind == "interrupt" and not initial:
                    self._send(stub.stop_reply(SIGINT))
        return

    # --- watchpoints through the MMU tracer seam ------------------------------------------------
    def _update_tracer(self) -> None:
        if self.stub.watchpoints and self._tracer is None:
            self._tracer = _WatchTracer(self)
            self.machine.mmu.add_tracer(self._tracer)
        elif not self.stub.watchpoints:
            self._drop_tracer()

    def _drop_tracer(self) -> None:
        if self._tracer is not None:
            self.machine.mmu.remove_tracer(self._tracer)
            self._tracer = None

    def on_watch(self, kind: int, linear: int) -> None:
        if self._watch_hit is None:
            self._watch_hit = (kind, linear)

    # --- the step observer --------------------------------------------------------------------
    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, cycles_before: int,
        cycles_after: int, /,
    ) -> None:
        stub = self.stub
        if stub.detached:
            return
        if self._watch_hit is not None:
            watch, self._watch_hit = self._watch_hit, None
            self._serve(reply=stub.stop_reply(SIGTRAP, watch))
        elif stub.resume == "step" or self.machine.pc in stub.breakpoints:
            self._serve(reply=stub.stop_reply(SIGTRAP))
        else:
            self._countdown -= 1
            if self._countdown <= 0:
                self._countdown = self.POLL_STEPS
                events = self._events(block=False)
                if any(k == "interrupt" for k, _ in events):
                    self._serve(reply=stub.stop_reply(SIGINT))
                else:
                    self._pending.extend(e for e in events if e[0] != "interrupt")

    def finish(self, exit_code: int = 0) -> None:
        """The run is over: tell gdb the program exited (``W``), answer it until it hangs up
        (gdb does after an exit, or on ``kill``/``detach``), and close."""
        if self._conn is not None and not self.stub.detached:
            self._send(f"W{exit_code & 0xFF:02x}".encode())
            stub = self.stub
            try:
                while self._conn is not None and not stub.detached:
                    for kind, payload in self._events(block=True):
                        if kind == "packet":
                            if self._conn:
                                self._conn.sendall(b"+")
                            if payload[:1] in (b"k", b"D"):
                                self._send(b"OK")
                                self._disconnect()
                                break
                            answer = stub.handle(payload)
                            self._send(b"W00" if answer is None else answer)
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        """Close the connection and the listening socket; stop observing; let the target
        clean up (its ``close()``, if it has one: the Lavender target's temporary ELF)."""
        self._disconnect()
        closer = getattr(self.stub.target, "close", None)
        if callable(closer):
            closer()
        if self._attached:
            self.machine.remove_observer(self)
            self._attached = False
        self._listener.close()

    def __enter__(self) -> GdbServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish(0) if exc[0] is None else self.close()


class _WatchTracer:
    """An MMU tracer that reports accesses to watched physical bytes."""

    def __init__(self, server: GdbServer) -> None:
        self.server = server

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None:
        if kind in (Access.FETCH, Access.WALK_READ, Access.AD_WRITE):
            return
        write = kind in (Access.WRITE, Access.LOCKED_WRITE)
        for byte, watch, linear in self.server.stub.watched():
            if phys <= byte < phys + size and (watch == 4 or (watch == 2) == write):
                self.server.on_watch(watch, linear)
                return
