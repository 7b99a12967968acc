"""The name server as a guest user process reached by message IPC (issue 5): port names
registered on create and removed on destroy, procedure registration with collision checks,
lookups by the caller's group."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ipc_kit import (
    SCRIPT,
    SCRIPT_DATA_SIZE,
    STEP_CREATE,
    STEP_DESTROY,
    STEP_NS,
    STEP_WAIT,
    script_data,
    script_reply,
    script_results,
    u32,
)

from lavsim.cpu.asm import assemble
from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel import layout as L
from lavsim.kernel.nameserver import (
    name_entries,
    name_server_source,
    request,
    server_counters,
)

RES = L.ADDR_GROUP_RESIDENT


def _boot() -> LavenderSystem:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    system.start_name_server()
    return system


def _run(system: LavenderSystem) -> None:
    # Clients end; the name server stays blocked in receive: nothing more can run.
    outcome = system.run(max_cycles=3_000_000)
    assert outcome.status == "idle", outcome
    assert system.check_ipc() == []


def _address(system: LavenderSystem, process: Process, k: int) -> tuple[int, ...]:
    raw = script_reply(system, process, k)
    return struct.unpack("<6I", raw[: 4 + L.ADDR_SIZE])


def test_port_names_are_registered_on_create_and_removed_on_destroy() -> None:
    system = _boot()
    group = system.create_group()
    owner = system.create_process(group, SCRIPT, data=script_data([
        (STEP_CREATE, request(L.NS_OP_PORT_LOOKUP, "printer")),
        (STEP_NS, request(L.NS_OP_PORT_LOOKUP, "printer")),
        (STEP_DESTROY, b""),
        (STEP_NS, request(L.NS_OP_PORT_LOOKUP, "printer")),
        (STEP_CREATE, request(L.NS_OP_PORT_LOOKUP, "")),  # anonymous: not registered
    ]), data_size=SCRIPT_DATA_SIZE, name="owner")  # fmt: skip
    system.create_thread(owner, "main")
    _run(system)
    created, looked_up, destroyed, _, anonymous = script_results(system, owner, 5)
    assert created == 1 and destroyed == 0 and anonymous == 1  # port 1 reused
    assert looked_up == 8  # the reply's length: status and port
    assert script_reply(system, owner, 1)[:8] == struct.pack("<iI", 0, 1)
    assert struct.unpack("<i", script_reply(system, owner, 3)[:4])[0] == L.E_NOENT
    assert name_entries(system, system.name_server) == []  # type: ignore[arg-type]


def test_a_port_registered_by_one_process_is_found_by_name_from_another_group() -> None:
    system = _boot()
    owner = system.create_process(system.create_group(), SCRIPT, data=script_data([
        (STEP_CREATE, b""), (STEP_CREATE, request(L.NS_OP_PORT_LOOKUP, "mail")),
        (STEP_WAIT, b""),  # alive: a dead process's ports and names go with it (issue 19)
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    client = system.create_process(system.create_group(), SCRIPT, data=script_data([
        (STEP_NS, request(L.NS_OP_PORT_LOOKUP, "mail")),
        (STEP_NS, request(L.NS_OP_PORT_LOOKUP, "mai")),
        # Only the kernel may register port names.
        (STEP_NS, request(L.NS_OP_PORT_REGISTER, "fake", value=9)),
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    system.create_thread(owner, "main")
    system.create_thread(client, "main")
    _run(system)
    assert script_results(system, owner, 2) == [1, 2]
    assert script_reply(system, client, 0)[:8] == struct.pack("<iI", 0, 2)
    assert struct.unpack("<i", script_reply(system, client, 1)[:4])[0] == L.E_NOENT
    assert struct.unpack("<i", script_reply(system, client, 2)[:4])[0] == L.E_PERM
    entries = name_entries(system, system.name_server)  # type: ignore[arg-type]
    assert [(e.kind, e.name, e.value, e.owner_pid) for e in entries] == [
        ("port", b"mail", 2, 0)
    ]


def _status(system: LavenderSystem, process: Process, k: int) -> int:
    return struct.unpack("<i", script_reply(system, process, k)[:4])[0]


def test_procedure_name_collisions_are_refused_in_the_group_and_against_the_resident_space(
) -> None:
    system = _boot()
    g1, g2 = system.create_group(), system.create_group()
    reg = L.NS_OP_PROC_REGISTER
    a = system.create_process(g1, SCRIPT, data=script_data([
        (STEP_NS, request(reg, "f", value=0x47, offset=0x10, group=g1.gid)),
        (STEP_NS, request(reg, "f", value=0x4F, group=g1.gid)),  # same group: taken
        (STEP_NS, request(reg, "g", value=0x4F, group=g2.gid)),  # another group's: denied
        (STEP_NS, request(reg, "shared", value=0x57, group=g1.gid)),  # resident has it
        (STEP_NS, request(reg, "h", value=0x5F, group=RES)),  # only resident processes
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    b = system.create_process(g2, SCRIPT, data=script_data([
        (STEP_NS, request(reg, "f", value=0x47, group=g2.gid)),  # another group: fine
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    r = system.create_resident_process(SCRIPT, data=script_data([
        (STEP_NS, request(reg, "shared", value=0x4A3, group=RES, flags=1)),
        (STEP_NS, request(reg, "f", value=0x4AB, group=RES)),  # a group has it
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    for process in (r, a, b):
        system.create_thread(process, "main")
    _run(system)
    assert [_status(system, r, k) for k in range(2)] == [0, L.E_EXIST]
    assert [_status(system, a, k) for k in range(5)] == [
        0, L.E_EXIST, L.E_PERM, L.E_EXIST, L.E_PERM,
    ]
    assert _status(system, b, 0) == 0
    entries = name_entries(system, system.name_server)  # type: ignore[arg-type]
    assert sorted((e.name, e.group) for e in entries if e.kind == "procedure") == [
        (b"f", g1.gid), (b"f", g2.gid), (b"shared", RES),
    ]
    served, refused = server_counters(system, system.name_server)  # type: ignore[arg-type]
    assert (served, refused) == (8, 5)


def test_a_lookup_from_another_group_finds_resident_procedures_but_not_group_local_ones(
) -> None:
    system = _boot()
    g1, g2 = system.create_group(), system.create_group()
    reg, look = L.NS_OP_PROC_REGISTER, L.NS_OP_PROC_LOOKUP
    r = system.create_resident_process(SCRIPT, data=script_data([
        (STEP_NS, request(reg, "clock", value=0x4A3, offset=0x20, group=RES, flags=1)),
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    a = system.create_process(g1, SCRIPT, data=script_data([
        (STEP_NS, request(reg, "local", value=0x47, offset=0x10, group=g1.gid)),
        (STEP_NS, request(look, "local")),
        (STEP_NS, request(look, "clock")),
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    b = system.create_process(g2, SCRIPT, data=script_data([
        (STEP_NS, request(look, "local")),
        (STEP_NS, request(look, "clock")),
        # A group claimed in the request changes nothing: the kernel tells the caller's.
        (STEP_NS, request(look, "local", group=g1.gid)),
        (STEP_NS, request(L.NS_OP_PROC_UNREGISTER, "local", group=g1.gid)),
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    for process in (r, a, b):
        system.create_thread(process, "main")
    _run(system)
    assert _address(system, a, 1) == (0, 0, g1.gid, 0x47, 0x10, 0)
    assert _address(system, a, 2) == (0, 0, RES, 0x4A3, 0x20, 1)
    assert script_results(system, a, 3)[1:] == [4 + L.ADDR_SIZE] * 2
    assert _status(system, b, 0) == L.E_NOENT
    assert _address(system, b, 1) == (0, 0, RES, 0x4A3, 0x20, 1)
    assert _status(system, b, 2) == L.E_NOENT
    assert _status(system, b, 3) == L.E_PERM


@given(names=st.lists(st.sampled_from(["a", "b", "ab", "x" * L.NS_NAME_MAX]), min_size=1,
                      max_size=6),
       groups=st.lists(st.sampled_from([1, 2, RES]), min_size=6, max_size=6))
def test_registration_refuses_exactly_the_colliding_names(names: list[str],
                                                          groups: list[int]) -> None:
    system = _boot()
    system.create_group()
    system.create_group()
    steps = [(STEP_NS, request(L.NS_OP_PROC_REGISTER, n, value=8 * k + 0x47, group=g))
             for k, (n, g) in enumerate(zip(names, groups, strict=False))]
    registrar = system.create_resident_process(SCRIPT, data=script_data(steps),
                                               data_size=SCRIPT_DATA_SIZE)
    system.create_thread(registrar, "main")
    _run(system)
    taken: list[tuple[str, int]] = []
    expected = []
    for name, group in zip(names, groups, strict=False):
        clash = any(n == name and (g == group or RES in (g, group)) for n, g in taken)
        expected.append(L.E_EXIST if clash else 0)
        if not clash:
            taken.append((name, group))
    assert [_status(system, registrar, k) for k in range(len(steps))] == expected
    entries = name_entries(system, system.name_server)  # type: ignore[arg-type]
    assert sorted((e.name.decode(), e.group) for e in entries) == sorted(taken)


def test_a_malformed_request_is_refused_and_the_server_serves_on() -> None:
    system = _boot()
    client = system.create_process(system.create_group(), SCRIPT, data=script_data([
        (STEP_NS, request(L.NS_OP_PORT_LOOKUP, "q")[:4] + struct.pack("<I", 99)),  # long name
        (STEP_NS, struct.pack("<I", 77)),  # unknown operation
        (STEP_NS, request(L.NS_OP_PORT_LOOKUP, "q")),
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    system.create_thread(client, "main")
    _run(system)
    assert [_status(system, client, k) for k in range(3)] == [L.E_PROTO, L.E_PROTO, L.E_NOENT]
    assert u32(script_results(system, client, 3)[0]) == 4


@pytest.mark.skipif(shutil.which("as") is None or shutil.which("ld") is None,
                    reason="GNU binutils not installed")
def test_the_name_server_assembles_to_the_same_bytes_with_gnu_as(tmp_path: Path) -> None:
    source = tmp_path / "ns.s"
    source.write_text(name_server_source())
    obj, binary = tmp_path / "ns.o", tmp_path / "ns.bin"
    subprocess.run(["as", "--32", "-msyntax=intel", "-mnaked-reg", str(source), "-o", str(obj)],
                   check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext=0", "-e", "main", "--oformat", "binary",
                    str(obj), "-o", str(binary)], check=True)
    assert binary.read_bytes() == assemble(name_server_source(), origin=0).code
