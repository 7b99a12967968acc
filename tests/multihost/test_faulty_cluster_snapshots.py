"""A cluster whose network has faults, saved to a file mid run (frames held back for
reordering, duplicates and delayed frames in flight, receive timers armed by the network
server's retries) and restored into a fresh cluster of the same configuration, runs on to
identical cycles, digests, fault counters and procedure executions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faultkit import CLIENT, RESULTS, counter_cluster, procedure_log

from lavsim.cluster import Cluster
from lavsim.kernel import layout as L
from lavsim.kernel.sharing import AddressStructure, lav_call_source
from lavsim.network import NetworkFaults

FAULTS = NetworkFaults(seed=5, drop=0.2, duplicate=0.2, delay=0.2, reorder=0.2,
                       delay_cycles=(100, 3_000))
CALLS = 8


def _setup(client: bool) -> tuple[Cluster, object]:
    cluster, export = counter_cluster(FAULTS)
    if client:
        h1 = cluster.host(1)
        group = h1.system.create_group()
        process = h1.system.create_process(
            group, f".equ RESULTS, {RESULTS}\n" + CLIENT.format(calls=CALLS)
            + lav_call_source(group, net_buffer=0x200), data_size=4096)
        h1.system.sharing.write_address(process, 0, AddressStructure(
            2, L.ADDR_GROUP_RESIDENT, export.gate_selector, export.entry, 0))  # type: ignore[attr-defined]
        h1.system.create_thread(process, "main")
    return cluster, export


def _finish(cluster: Cluster, export: object) -> tuple[Any, ...]:
    system = cluster.host(1).system
    client = next(p for p in system.processes.values() if p.group is not None)
    thread = client.threads[0]
    outcome = cluster.run(until=lambda: system.thread_state(thread).state == "dead",
                          max_cycles=6_000_000)
    calls = [(system.read_data32(client, RESULTS + 4 + 8 * k),
              system.read_data32(client, RESULTS + 8 * k)) for k in range(1, CALLS + 1)]
    return (outcome, cluster.digests(), cluster.frames_sent(), cluster.network.get_state(),
            [h.nic.get_state() for h in cluster.hosts], calls, procedure_log(cluster, export))


@pytest.mark.parametrize("frames", [3, 7, 11])
def test_a_faulty_cluster_restored_from_a_file_runs_on_to_identical_results(
    tmp_path: Path, frames: int,
) -> None:
    cluster, export = _setup(True)
    nic = cluster.host(1).nic

    def cut() -> bool:  # the client's network server waits for a reply, its timer armed
        return (sum(cluster.frames_sent().values()) >= frames
                and any(d is not None for d in nic.rx_deadline))

    outcome = cluster.run(until=cut, max_cycles=6_000_000)
    assert outcome.reason == "until"
    path = tmp_path / "faulty.npz"
    cluster.save_snapshot(path)
    first = _finish(cluster, export)
    assert first[0].reason == "until", "the client ended"
    log = first[6]
    assert len(log) == len(set(log)), "at most once"
    counters = first[3]["faults"]["counters"]
    assert sum(counters.values()) > 0, "the faults did something"

    fresh, fresh_export = _setup(False)
    fresh.load_snapshot(path)
    assert _finish(fresh, fresh_export) == first
