"""System snapshot files (issue 19): a LavenderSystem's machine and bookkeeping saved to a file
and restored into another system of the same configuration give identical later cycles,
registers, digests and host calls; every bad file is refused naming what is wrong, and a
refused file changes nothing."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ipc_kit import CLIENT, ECHO_SERVER, client_data, define
from letters import WORKER, letters_system

from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.bookkeeping import get_state
from lavsim.snapshot import (
    KIND_SYSTEM,
    SNAPSHOT_VERSION,
    Snapshot,
    SnapshotError,
    read_snapshot_file,
    take_snapshot,
    write_snapshot_file,
)

PROCEDURE = """
entry:
    mov eax, dword ptr [esp+4]
    add eax, dword ptr [esp+8]
    retf 8
"""


def everything(system: LavenderSystem) -> tuple[Any, ...]:
    """What a later run or host call could see: machine digest, registers, bookkeeping,
    observer statistics, console, every thread's kernel view."""
    cpu = system.machine.cpu
    return (
        system.machine.state_digest(), list(cpu.regs), cpu.eip, cpu.tsc, cpu.instructions,
        get_state(system), system.stats(), system.console,
        [system.thread_state(t) for t in sorted(system.threads)],
    )  # fmt: skip


def _quiescent(system: LavenderSystem) -> None:
    while system.machine.cpu.cpl == 0 and not system.machine.cpu.halted:
        system.run(max_instructions=1)


def _later_host_calls(system: LavenderSystem) -> tuple[Any, ...]:
    """Host calls after a restore: a group, a process, a thread, a resident export."""
    group = system.create_group()
    process = system.create_process(group, WORKER, data_size=16)
    thread = system.create_thread(process, "main", args=(ord("z"),))
    owner = system.create_resident_process("nop\n", name="library")
    export = system.sharing.export_procedure(owner, PROCEDURE, params=2)
    return (group.gid, group.cr3, process.pid, process.code_base, thread.tid,
            thread.generation, owner.pid, export.gate_selector, export.code_base,
            system.frames.available)


def _letters(profile: str, board: str) -> LavenderSystem:
    system = LavenderSystem(profile, memory_size=8 << 20, timer_period=700, board=board)
    for letter in "abcd":
        process = system.create_process(system.create_group(), WORKER, data_size=16)
        system.create_thread(process, "main", args=(ord(letter),))
    return system


@pytest.mark.parametrize(("profile", "board"),
                         [("i486", "ideal"), ("pentium", "ideal"), ("pentium", "p100")])
def test_a_preempted_system_restored_from_a_file_runs_on_identically(
    tmp_path: Path, profile: str, board: str,
) -> None:
    path = tmp_path / "system.npz"
    system = _letters(profile, board)
    assert system.run(max_cycles=5_000).status == "cycle_limit"
    _quiescent(system)
    system.save_snapshot(path)
    calls = _later_host_calls(system)
    first = system.run(max_cycles=3_000_000)
    after = everything(system)
    assert first.status == "done" and "z" in system.console

    # A system of the same configuration that has run something else entirely.
    other = LavenderSystem(profile, memory_size=8 << 20, timer_period=700, board=board)
    other.create_process(other.create_group(), WORKER, data_size=64)
    other.run(max_cycles=2_000)
    other.load_snapshot(path)
    assert _later_host_calls(other) == calls
    assert other.run(max_cycles=3_000_000) == first
    assert everything(other) == after


def _ipc_system() -> tuple[LavenderSystem, Any, Any]:
    system = LavenderSystem(memory_size=8 << 20, timer_period=900)
    group = system.create_group()
    server = system.create_process(group, define(ECHO_SERVER, REPLY_WAIT=L.SYS_REPLY_WAIT),
                                   data=bytes([4]), data_size=0x2000)
    client = system.create_process(
        system.create_group(), define(CLIENT, CALL=L.SYS_CALL),
        data=client_data(4, 1, [40, 300, 7, 1000], bytes(range(256)) * 8),
        data_size=0x2000 + 0x4000,
    )  # fmt: skip
    system.create_thread(server, "main")
    system.create_thread(client, "main")
    return system, server, client


def test_threads_blocked_in_ipc_restored_from_a_file_run_on_identically(tmp_path: Path) -> None:
    system, _, client = _ipc_system()
    waits = set()
    for _ in range(200):  # stop where a caller waits for its reply
        outcome = system.run(max_cycles=250)
        waits = {b.waits for b in outcome.blocked}
        if "reply" in waits:
            break
    assert "reply" in waits, "the cut point must have a caller blocked in IPC"
    path = tmp_path / "ipc.npz"
    system.save_snapshot(path)
    port = system.port_info(1)
    first = system.run(max_cycles=2_000_000)
    after = everything(system), system.read_process(client, "data", 0x60, 16)
    assert first.status == "done"

    fresh, _, _ = _ipc_system()
    fresh.load_snapshot(path)
    assert fresh.port_info(1) == port
    assert fresh.run(max_cycles=2_000_000) == first
    assert (everything(fresh), fresh.read_process(fresh.processes[client.pid], "data", 0x60,
                                                  16)) == after


def _file(tmp_path: Path, name: str, system: LavenderSystem) -> Path:
    path = tmp_path / name
    system.save_snapshot(path)
    return path


def _crafted(tmp_path: Path, good: Path, name: str, edit: Any) -> Path:
    """A copy of ``good`` whose bookkeeping ``edit`` changed, checksums recomputed (what a
    careful forger writes)."""
    loaded = read_snapshot_file(good, KIND_SYSTEM)
    host = json.loads(json.dumps(loaded.host))
    edit(host)
    path = tmp_path / name
    write_snapshot_file(path, KIND_SYSTEM, loaded.machines, host)
    return path


def _set(path: str, value: Any) -> Any:
    def edit(host: dict[str, Any]) -> None:
        *head, last = path.split("/")
        node: Any = host
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def test_bad_system_files_are_refused_naming_why_and_change_nothing(tmp_path: Path) -> None:
    source, _ = letters_system(timer_period=700)
    source.run(max_cycles=9_000)
    good = _file(tmp_path, "good.npz", source)
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) * 2 // 3])
    flipped = tmp_path / "flipped.npz"
    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = bytearray(members["meta.npy"])
    meta[len(meta) // 2] ^= 0x04  # a bit of the bookkeeping JSON: the checksum notices
    with zipfile.ZipFile(flipped, "w") as z:
        for name, data in {**members, "meta.npy": bytes(meta)}.items():
            z.writestr(name, data)
    cases = {
        truncated: "cannot read",
        flipped: "corrupt|not JSON|cannot read",
        _crafted(tmp_path, good, "pid.npz", _set("processes/0/code_size", "big")):
            r"processes\[0\]\.code_size: must be an int",
        _crafted(tmp_path, good, "thread.npz", _set("live_threads/0", [3, 99])):
            r"live_threads\[0\]",
        # Well typed but not what the process control block in memory says.
        _crafted(tmp_path, good, "stack.npz", _set("processes/1/stack_size", 8192)):
            "process 2: stack_size 0x2000 is not what its process control block",
        _crafted(tmp_path, good, "frames.npz", _set("frames/next", 10 ** 9)):
            r"frames\.next",
        _crafted(tmp_path, good, "group.npz", _set("groups/0/directory", 0)):
            r"groups\[0\]\.directory",
        _crafted(tmp_path, good, "kernel.npz", _set("config/kernel", "0" * 64)):
            r"config\.kernel",
        _crafted(tmp_path, good, "extra.npz", _set("surprise", 1)): "exactly the keys",
        _crafted(tmp_path, good, "observer.npz", _set("observer/syscalls", -1.5)):
            r"observer\.syscalls",
    }  # fmt: skip
    target, _ = letters_system(timer_period=700)
    target.run(max_cycles=4_000)
    before = everything(target)
    for path, message in cases.items():
        with pytest.raises(SnapshotError, match=message):
            target.load_snapshot(path)
        assert everything(target) == before, f"{path.name} changed the system"
    # Another board, another observer switch: the configuration is named.
    for other, field in ((LavenderSystem(memory_size=8 << 20, board="486dx2-66"), "board"),
                         (LavenderSystem(memory_size=8 << 20, observe=False), "observe"),
                         (LavenderSystem(memory_size=16 << 20), "memory_size")):
        state = (other.machine.state_digest(), get_state(other))
        with pytest.raises(SnapshotError, match=field):
            other.load_snapshot(good)
        assert (other.machine.state_digest(), get_state(other)) == state
    target.load_snapshot(good)  # the good file still restores
    assert target.machine.state_digest() == source.machine.state_digest()


def test_a_system_file_says_its_kind_and_version_and_other_kinds_are_refused(
    tmp_path: Path,
) -> None:
    system, _ = letters_system(timer_period=0)
    good = _file(tmp_path, "system.npz", system)
    with np.load(good, allow_pickle=False) as archive:
        meta = json.loads(archive["meta"].tobytes())
        arrays = {k: archive[k] for k in archive.files}
    assert meta["version"] == SNAPSHOT_VERSION and meta["kind"] == KIND_SYSTEM
    with pytest.raises(SnapshotError, match="'system' snapshot, not a 'machine'"):
        Snapshot.load(good)
    meta["version"] = SNAPSHOT_VERSION - 1
    old = tmp_path / "old.npz"
    with open(old, "wb") as f:
        np.savez(f, **{**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)})
    with pytest.raises(SnapshotError, match="version"):
        system.load_snapshot(old)
    machine_file = tmp_path / "machine.npz"
    take_snapshot(system.machine).save(machine_file)
    with pytest.raises(SnapshotError, match="'machine' snapshot, not a 'system'"):
        system.load_snapshot(machine_file)


def _sharing_system() -> LavenderSystem:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    system.start_name_server()
    group = system.create_group()
    a = system.create_process(group, WORKER, data_size=0x3000)
    b = system.create_process(group, WORKER, data_size=64)
    resident = system.create_resident_process("nop\n", data_size=0x2000, name="library")
    shared = system.sharing.export_data(a, 100, data=b"shared", name="table")
    system.sharing.import_data(b, shared, writable=False)
    system.sharing.export_data(resident, 64, offset=0x100, name="resident table")
    system.sharing.share_pages(a, 0x10, 0x1800, b)
    local = system.sharing.export_procedure(a, PROCEDURE, params=2, private_data_size=32)
    system.sharing.import_procedure(b, local)
    system.sharing.export_procedure(resident, PROCEDURE, params=2)
    return system


def _more_sharing(system: LavenderSystem) -> tuple[Any, ...]:
    """Host calls whose slots and addresses depend on the sharing manager's records."""
    group = system.groups[0]
    c = system.create_process(group, WORKER, data_size=64)
    data = system.sharing.data_exports
    selectors = (system.sharing.import_data(c, data[0]), system.sharing.import_data(c, data[1]),
                 system.sharing.import_procedure(c, system.sharing.procedures[0]))
    again = system.sharing.export_data(c, 32, name="another")
    return (c.pid, selectors, again.slot, again.base, system.sharing.slots_in_use(group),
            [system.sharing.owner_of(c, s) for s in selectors])


def test_sharing_records_restored_from_a_file_give_the_same_later_exports_and_imports(
    tmp_path: Path,
) -> None:
    system = _sharing_system()
    path = tmp_path / "sharing.npz"
    system.save_snapshot(path)
    fresh = LavenderSystem(memory_size=8 << 20, timer_period=0)
    fresh.load_snapshot(path)
    assert get_state(fresh) == get_state(system)
    assert fresh.name_server is not None and fresh.name_server.pid == 1
    assert _more_sharing(fresh) == _more_sharing(system)
    assert fresh.machine.state_digest() == system.machine.state_digest()
