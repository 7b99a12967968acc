"""Cluster snapshot files (issue 19): every host (machine, bookkeeping, network card), the
network (frames in flight, hosts down, a fault model's state) and the lock-step position saved
to a file; a fresh cluster of the same configuration restored from it runs on with identical
cycles, digests and frames on every host. Bad files are refused naming why, changing nothing."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lavsim.cluster import Cluster
from lavsim.kernel import layout as L
from lavsim.kernel.bookkeeping import get_state
from lavsim.kernel.nameserver import name_entries
from lavsim.kernel.sharing import AddressStructure, lav_call_source
from lavsim.network import NetworkModel
from lavsim.remote import PROCEDURE
from lavsim.snapshot import KIND_CLUSTER, SnapshotError, read_snapshot_file, write_snapshot_file

#: A remote call, a shipping of the procedure, the same call run locally (the results at
#: 0x40, 0x48, 0x4C of the client's data).
CLIENT = """
main:
    push dword ptr [0x2C]
    push dword ptr [0x28]
    push dword ptr [0x24]
    push 3
    push 0
    call lav_call
    add esp, 20
    mov dword ptr [0x40], eax
    push 0
    call lav_ship
    add esp, 4
    mov dword ptr [0x48], eax
    push dword ptr [0x2C]
    push dword ptr [0x28]
    push dword ptr [0x24]
    push 3
    push 0
    call lav_call
    add esp, 20
    mov dword ptr [0x4C], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def _cluster(hosts: int = 2, latency: int = 1_000, client: bool = True,
             profile: str = "i486") -> Cluster:
    cluster = Cluster(hosts, network=NetworkModel(latency=latency, per_byte=1), profile=profile)
    server = cluster.host(2)
    owner = server.system.create_resident_process("nop\n", name="library")
    export = server.system.sharing.export_procedure(owner, PROCEDURE.format(pad=0), params=3)
    cluster.make_shippable(server, export)
    if client:
        h1 = cluster.host(1)
        group = h1.system.create_group()
        process = h1.system.create_process(
            group, CLIENT + lav_call_source(group, net_buffer=0x200), data_size=4096)
        h1.system.sharing.write_address(
            process, 0, AddressStructure(2, L.ADDR_GROUP_RESIDENT, export.gate_selector, 0, 1))
        h1.system.sharing.write_data(process, 0x24, struct.pack("<3I", 5, 6, 7))
        h1.system.create_thread(process, "main")
    return cluster


def _client(cluster: Cluster) -> Any:
    system = cluster.host(1).system
    return next(p for p in system.processes.values() if p.group is not None)


def _finish(cluster: Cluster) -> tuple[Any, ...]:
    """Run until the client has ended; everything the run could show, per host."""
    system = cluster.host(1).system
    client = _client(cluster)
    thread = client.threads[0]
    outcome = cluster.run(until=lambda: system.thread_state(thread).state == "dead",
                          max_cycles=3_000_000)
    return (
        outcome, cluster.digests(), cluster.frames_sent(),
        [h.nic.get_state() for h in cluster.hosts], cluster.network.get_state(),
        [system.read_data32(client, offset) for offset in (0x40, 0x48, 0x4C)],
        [get_state(h.system) for h in cluster.hosts], cluster.host(1).shipped(),
        [name_entries(h.system) for h in cluster.hosts],
    )  # fmt: skip


def _cut_and_compare(tmp_path: Path, cut: Callable[[Cluster], bool],
                     profile: str = "i486") -> tuple[Any, ...]:
    cluster = _cluster(profile=profile)
    outcome = cluster.run(until=lambda: cut(cluster), max_cycles=3_000_000)
    assert outcome.reason == "until" and cluster.network.in_flight > 0, "frames in flight"
    path = tmp_path / "cluster.npz"
    cluster.save_snapshot(path)
    first = _finish(cluster)
    assert first[0].reason == "until"
    assert first[5] == [37, 0, 37], "the remote call, the shipping, the shipped call"

    fresh = _cluster(client=False, profile=profile)  # same configuration, without the client
    fresh.run(max_cycles=3_000)
    fresh.load_snapshot(path)
    assert fresh.time == outcome.time and fresh.network.in_flight == cluster_in_flight(path)
    assert _finish(fresh) == first
    return first


def cluster_in_flight(path: Path) -> int:
    return len(read_snapshot_file(path, KIND_CLUSTER).host["network"]["in_flight"])


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_a_cluster_cut_mid_remote_call_restores_from_a_file_to_identical_later_cycles(
    tmp_path: Path, profile: str,
) -> None:
    # The first frame (the CALL request from host 1) is on the wire.
    _cut_and_compare(tmp_path, lambda c: c.frames_sent()[1] == 1 and c.network.in_flight > 0,
                     profile)


def test_a_cluster_cut_mid_shipping_restores_from_a_file_to_identical_later_cycles(
    tmp_path: Path,
) -> None:
    # The FETCH request (host 1's second frame) or its reply with the code is on the wire.
    _cut_and_compare(tmp_path, lambda c: c.frames_sent()[1] == 2 and c.network.in_flight > 0)


def test_hosts_down_and_the_lock_step_position_are_restored(tmp_path: Path) -> None:
    cluster = _cluster(hosts=3, client=False)
    cluster.run(max_cycles=5_000)
    cluster.down(3)
    path = tmp_path / "down.npz"
    cluster.save_snapshot(path)
    fresh = _cluster(hosts=3, client=False)
    fresh.load_snapshot(path)
    assert fresh.network.down == {3} and fresh.time == cluster.time == 5_000
    assert fresh.digests() == cluster.digests()


class Faults:
    """A stand-in for the network fault model's mutable state (branch netfault)."""

    def __init__(self, drawn: int = 0) -> None:
        self.drawn = drawn

    def get_state(self) -> dict[str, int]:
        return {"drawn": self.drawn}

    def check_state(self, state: object) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("drawn"), int):
            raise ValueError("faults.drawn: must be an int")

    def set_state(self, state: dict[str, int]) -> None:
        self.drawn = state["drawn"]


def test_a_fault_models_state_is_saved_and_restored_through_its_accessors(
    tmp_path: Path,
) -> None:
    cluster = _cluster(client=False)
    cluster.network.faults = Faults(41)  # type: ignore[attr-defined]
    path = tmp_path / "faults.npz"
    cluster.save_snapshot(path)
    fresh = _cluster(client=False)
    fresh.network.faults = Faults()  # type: ignore[attr-defined]
    fresh.load_snapshot(path)
    assert fresh.network.faults.drawn == 41  # type: ignore[attr-defined]
    plain = _cluster(client=False)
    with pytest.raises(SnapshotError, match="faults"):
        plain.load_snapshot(path)  # a network without a fault model cannot take the state


def _state(cluster: Cluster) -> tuple[Any, ...]:
    return (cluster.time, cluster.digests(), cluster.network.get_state(),
            [h.nic.get_state() for h in cluster.hosts], [get_state(h.system) for h in
                                                         cluster.hosts])


def _crafted(tmp_path: Path, good: Path, name: str, edit: Callable[[Any], None]) -> Path:
    loaded = read_snapshot_file(good, KIND_CLUSTER)
    host = json.loads(json.dumps(loaded.host))
    edit(host)
    path = tmp_path / name
    write_snapshot_file(path, KIND_CLUSTER, loaded.machines, host)
    return path


def test_bad_cluster_files_are_refused_naming_why_and_change_nothing(tmp_path: Path) -> None:
    source = _cluster()
    source.run(until=lambda: source.network.in_flight > 0, max_cycles=3_000_000)
    good = tmp_path / "good.npz"
    source.save_snapshot(good)
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    flipped = tmp_path / "flipped.npz"
    data = bytearray(raw)
    data[len(data) // 3] ^= 0x10
    flipped.write_bytes(bytes(data))
    memory = source.host(1).system.memory.size

    def frame_to(host: int) -> Callable[[Any], None]:
        def edit(state: Any) -> None:
            state["network"]["in_flight"][0][3] = host
        return edit

    def ring(state: Any) -> None:
        state["hosts"][0]["nic"]["rx_rings"][0] = memory - 4096

    def next_slot(state: Any) -> None:
        state["hosts"][1]["nic"]["rx_next"][1] = state["hosts"][1]["nic"]["rx_slots"]

    def netserver(state: Any) -> None:
        state["hosts"][1]["netserver"] = 99

    def late_thread(state: Any) -> None:
        state["hosts"][0]["netserver_threads"][0] = [2, 7]

    def process(state: Any) -> None:
        state["hosts"][1]["system"]["processes"][0]["max_threads"] = 1000

    cases = {
        truncated: "cannot read",
        flipped: "corrupt|cannot read|not JSON",
        _crafted(tmp_path, good, "frame.npz", frame_to(9)):
            r"in_flight\[0\]\.destination: 9 is not a host",
        _crafted(tmp_path, good, "ring.npz", ring): r"rx_rings\[0\].*not inside installed memory",
        _crafted(tmp_path, good, "slot.npz", next_slot): r"host 2: nic\.rx_next\[1\]",
        _crafted(tmp_path, good, "netserver.npz", netserver): "host 2: netserver: 99",
        _crafted(tmp_path, good, "thread.npz", late_thread): r"host 1: netserver_threads\[0\]",
        _crafted(tmp_path, good, "process.npz", process):
            r"host 2: .*processes\[0\]\.max_threads",
    }  # fmt: skip
    target = _cluster()
    target.run(max_cycles=2_000)
    before = _state(target)
    for path, message in cases.items():
        with pytest.raises(SnapshotError, match=message):
            target.load_snapshot(path)
        assert _state(target) == before, f"{path.name} changed the cluster"
    for other, message in ((_cluster(hosts=3), "hosts = 2"),
                           (_cluster(latency=700), "latency=1000")):
        state = _state(other)
        with pytest.raises(SnapshotError, match=message):
            other.load_snapshot(good)
        assert _state(other) == state
    target.load_snapshot(good)
    assert target.digests() == source.digests()


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] + [path]
    if isinstance(value, list):
        return [p for k, v in enumerate(value) for p in _leaves(v, (*path, k))] + [path]
    return [path]


def test_random_damage_to_a_cluster_files_state_is_refused_or_harmless(tmp_path: Path) -> None:
    """Every field of the host-side state replaced by a value of another shape: the load
    raises SnapshotError (and changes nothing) or accepts a value that is as good as the
    original; never another exception."""
    import random

    source = _cluster()
    source.run(until=lambda: source.network.in_flight > 0, max_cycles=3_000_000)
    good = tmp_path / "good.npz"
    source.save_snapshot(good)
    loaded = read_snapshot_file(good, KIND_CLUSTER)
    paths = [p for p in _leaves(loaded.host) if p]
    rng = random.Random(19)
    target = _cluster()
    before = _state(target)
    refused = 0
    for k, path in enumerate(rng.sample(paths, 60)):
        host = json.loads(json.dumps(loaded.host))
        node = host
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = rng.choice([None, -1, 1 << 70, "x", [], {}, True, [1, 2], 3])
        damaged = tmp_path / f"damaged{k}.npz"
        write_snapshot_file(damaged, KIND_CLUSTER, loaded.machines, host)
        try:
            target.load_snapshot(damaged)
        except SnapshotError:
            refused += 1
            assert _state(target) == before, f"a refused file ({path}) changed the cluster"
        else:
            target = _cluster()  # accepted: start the next case from a fresh cluster again
            before = _state(target)
    assert refused >= 40


def test_bit_flips_in_a_cluster_file_give_a_snapshot_error_or_the_same_contents(
    tmp_path: Path,
) -> None:
    cluster = _cluster(client=False)
    cluster.run(max_cycles=3_000)
    good = tmp_path / "good.npz"
    cluster.save_snapshot(good)
    digest = read_snapshot_file(good, KIND_CLUSTER).digest()
    raw = good.read_bytes()
    bad = tmp_path / "flipped.npz"
    refused = 0
    for k in range(0, len(raw), 127):
        flipped = bytearray(raw)
        flipped[k] ^= 1 << (k % 8)
        bad.write_bytes(bytes(flipped))
        try:
            loaded = read_snapshot_file(bad, KIND_CLUSTER)
        except SnapshotError:
            refused += 1
        else:  # a flip in a zip field nothing reads (a timestamp, say) changes nothing
            assert loaded.digest() == digest
    assert refused > len(raw) // 127 // 2


#: lav_lookup of the name at 0x104 (length, bytes) into the address at 0x20, then lav_call of
#: it with the arguments at 0x80: results at 0x40 (lookup) and 0x48 (call).
LOOKUP_CLIENT = """
main:
    push 0x20
    push dword ptr [0x104]
    push 0x108
    call lav_lookup
    add esp, 12
    mov dword ptr [0x40], eax
    push dword ptr [0x88]
    push dword ptr [0x84]
    push dword ptr [0x80]
    push 3
    push 0x20
    call lav_call
    add esp, 20
    mov dword ptr [0x48], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def _lookup_cluster(client: bool = True) -> Cluster:
    """Three hosts; host 3 exports the procedure under the name "mac" (registered by guest
    code, a registrar process); host 1's client looks it up (host 2 misses) and calls it."""
    cluster = Cluster(3, network=NetworkModel(latency=800, per_byte=1))
    host = cluster.host(3)
    owner = host.system.create_resident_process("nop\n", name="library")
    export = host.system.sharing.export_procedure(owner, PROCEDURE.format(pad=0), params=3)
    host.register_procedure("mac", export)
    if client:
        h1 = cluster.host(1)
        group = h1.system.create_group()
        process = h1.system.create_process(
            group, LOOKUP_CLIENT + lav_call_source(group, net_buffer=0x200), data_size=4096)
        h1.system.sharing.write_data(process, 0x80, struct.pack("<3I", 2, 3, 4))
        h1.system.sharing.write_data(process, 0x104, struct.pack("<I", 3) + b"mac")
        h1.system.create_thread(process, "main")
    return cluster


def test_a_cluster_cut_mid_lookup_across_hosts_restores_to_identical_later_cycles(
    tmp_path: Path,
) -> None:
    cluster = _lookup_cluster()
    # The LOOKUP request to host 3 (host 1's second frame: host 2 missed) is on the wire.
    cluster.run(until=lambda: cluster.frames_sent()[1] == 2 and cluster.network.in_flight > 0,
                max_cycles=3_000_000)
    assert cluster.network.in_flight > 0
    path = tmp_path / "lookup.npz"
    cluster.save_snapshot(path)
    first = _finish(cluster)
    client = _client(cluster)
    system = cluster.host(1).system
    assert [system.read_data32(client, k) for k in (0x40, 0x48)] == [0, 10]
    assert cluster.host(3).registrar_status() == 0

    fresh = _lookup_cluster(client=False)
    fresh.load_snapshot(path)
    assert [p.pid for p in fresh.host(3).registrars] == [p.pid for p in cluster.host(3).registrars]
    assert _finish(fresh) == first
    assert fresh.host(3).registrar_status() == 0
