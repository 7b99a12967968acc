"""The remote protocol without gdb: framing, checksums, escapes, malformed packets (an error
reply, never an exception), registers and memory through the stub, and a socket session."""

from __future__ import annotations

import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lavsim.gdbstub import (
    GdbKilled,
    GdbServer,
    GdbStub,
    MachineTarget,
    PacketReader,
    checksum,
    escape,
    frame,
    target_xml,
    unescape,
)
from lavsim.machine import Machine, MachineConfig


def _machine() -> Machine:
    machine = Machine(MachineConfig(profile="pentium"))
    # mov eax, 7; add eax, 1; hlt
    machine.load(0x10000, bytes.fromhex("b807000000 83c001 f4".replace(" ", "")))
    machine.setup_flat_protected_mode(entry=0x10000)
    return machine


def test_frame_has_the_escaped_payload_and_its_checksum() -> None:
    assert frame(b"OK") == b"$OK#9a"
    assert frame(b"a#b") == b"$a}\x03b#" + f"{checksum(b'a}' + bytes([3]) + b'b'):02x}".encode()


@given(st.binary(max_size=200))
def test_escape_round_trips_and_leaves_no_special_byte(data: bytes) -> None:
    escaped = escape(data)
    assert unescape(escaped) == data
    assert not set(escaped) & set(b"$#*")


@given(st.lists(st.binary(max_size=40), max_size=5), st.integers(1, 7))
def test_reader_gives_back_every_packet_however_the_stream_is_cut(
    payloads: list[bytes], cut: int,
) -> None:
    stream = b"+".join(frame(p) for p in payloads)
    reader = PacketReader()
    events = []
    for k in range(0, len(stream), cut):
        events += reader.feed(stream[k:k + cut])
    assert [unescape(e[1]) for e in events if e[0] == "packet"] == payloads


def test_reader_reports_a_bad_checksum_and_ctrl_c() -> None:
    events = PacketReader().feed(b"$g#00\x03$g#67")
    assert events == [("bad", b"g"), ("interrupt", b""), ("packet", b"g")]
    assert PacketReader().feed(b"$g#zz") == [("bad", b"g")]


@pytest.mark.parametrize("packet", [
    b"m", b"mzz,4", b"m10", b"M10,2:zz", b"M10,4:00", b"X10", b"Z0", b"Zq,1,1", b"pzz",
    b"P1", b"Hgzz", b"qThreadExtraInfo,zz", b"qRcmd,zz", b"G00",
    b"qXfer:features:read:target.xml:zz",
])
def test_malformed_packets_get_an_error_reply(packet: bytes) -> None:
    reply = GdbStub(MachineTarget(_machine())).handle(packet)
    assert reply is not None and reply.startswith(b"E")


def test_registers_and_memory_through_the_stub() -> None:
    machine = _machine()
    stub = GdbStub(MachineTarget(machine))
    regs = bytes.fromhex(stub.handle(b"g").decode())
    assert int.from_bytes(regs[8 * 4:9 * 4], "little") == 0x10000  # eip, linear
    assert int.from_bytes(regs[10 * 4:11 * 4], "little") == 0x08  # cs
    assert stub.handle(b"m10000,5") == b"b807000000"
    assert stub.handle(b"M20000,2:abcd") == b"OK"
    assert machine.memory.read(0x20000, 2) == b"\xab\xcd"
    assert stub.handle(b"P0=11223344") == b"OK" and machine.cpu.regs[0] == 0x44332211
    assert stub.handle(b"qXfer:features:read:target.xml:0,8") == b"m" + target_xml()[:8].encode()
    assert stub.handle(b"vMustReplyEmpty") == b""
    assert bytes.fromhex(stub.handle(b"qRcmd," + b"cycles".hex().encode()).decode()) \
        .startswith(b"tsc 0")


def _client(port: int, script: list[bytes], replies: list[bytes]) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    reader = PacketReader()
    try:
        for packet in script:
            sock.sendall(frame(packet))
            while True:
                events = [e for e in reader.feed(sock.recv(4096)) if e[0] == "packet"]
                if events:
                    replies.append(events[0][1])
                    break
    finally:
        sock.close()


def test_socket_session_steps_and_continues_to_a_breakpoint_without_moving_cycles() -> None:
    plain = _machine()
    plain.run(max_instructions=10)
    machine = _machine()
    server = GdbServer(MachineTarget(machine), 0, timeout=10)
    replies: list[bytes] = []
    client = threading.Thread(target=_client, args=(server.port, [
        b"?", b"s", b"Z0,10008,1", b"c", b"z0,10008,1", b"c"], replies))
    client.start()
    server.wait_for_gdb()
    machine.run(max_instructions=10)
    server.finish(0)
    client.join(10)
    assert replies[0].startswith(b"T05")
    assert replies[1].startswith(b"T05") and replies[2] == b"OK"
    assert replies[3].startswith(b"T05")
    assert replies[5] == b"W00"
    assert machine.cpu.tsc == plain.cpu.tsc and machine.cpu.regs[0] == plain.cpu.regs[0] == 8


def _loop_machine() -> Machine:
    machine = Machine(MachineConfig(profile="pentium"))
    machine.load(0x10000, bytes.fromhex("40ebfd"))  # inc eax; jmp back
    machine.setup_flat_protected_mode(entry=0x10000)
    return machine


def _raw_client(port: int, steps: list[bytes], replies: list[bytes]) -> None:
    """Send each item (a packet, or raw bytes when it starts with 0x03) and keep the packets
    received, until the server closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    reader = PacketReader()
    try:
        for item in steps:
            sock.sendall(item if item.startswith(b"\x03") else frame(item))
            if item in (b"c",):
                continue  # no reply until the machine stops
            while True:
                data = sock.recv(4096)
                if not data:
                    return
                events = [e for e in reader.feed(data) if e[0] == "packet"]
                if events:
                    replies.extend(e[1] for e in events)
                    break
    finally:
        sock.close()


def test_ctrl_c_stops_a_running_machine_and_detach_lets_it_finish() -> None:
    machine = _loop_machine()
    server = GdbServer(MachineTarget(machine), 0, timeout=10)
    server.POLL_STEPS = 64
    replies: list[bytes] = []
    client = threading.Thread(target=_raw_client, args=(server.port, [
        b"?", b"c", b"\x03", b"D"], replies))
    client.start()
    server.wait_for_gdb()
    result = machine.run(max_instructions=200_000)
    server.finish(0)
    client.join(10)
    assert replies[0].startswith(b"T05")
    assert replies[1].startswith(b"T02")  # stopped by the interrupt
    assert replies[2] == b"OK"  # detached
    assert result.reason == "instruction_limit" and result.instructions == 200_000


def test_kill_raises_out_of_the_run() -> None:
    machine = _loop_machine()
    server = GdbServer(MachineTarget(machine), 0, timeout=10)
    client = threading.Thread(target=_raw_client, args=(server.port, [
        b"?", b"s", b"k"], []))
    client.start()
    server.wait_for_gdb()
    with pytest.raises(GdbKilled):
        machine.run(max_instructions=1000)
    server.close()
    client.join(10)
    assert machine.cpu.instructions == 1
