"""Faults on the network (issue 19): the fault model (drop, duplicate, delay, reorder, host
crash; deterministic from a seed), the interface's receive timers, and the network servers'
answer to them: remote calls time out and are sent again with the same request id, the serving
side runs each call at most once, and nothing hangs (calls, shipping and name lookups end with
a result or an error within a bounded number of cycles)."""

from __future__ import annotations

import json
import struct

import pytest
from faultkit import (
    LATENCY,
    MASK,
    TIMEOUT,
    counter_cluster,
    lookup_run,
    procedure_log,
    run_calls,
    ship_run,
)

from lavsim.cluster import NET_OP_CALL, NET_OP_REPLY, Cluster
from lavsim.errors import ConfigError
from lavsim.kernel import layout as L
from lavsim.kernel.netproto import NX_GAVE_UP, NX_REPLAYED, NX_RETRANSMITS, NX_STALE
from lavsim.network import (
    NIC_RX1_TIMER,
    NIC_STATUS,
    FaultState,
    Network,
    NetworkFaults,
    NetworkInterface,
    NetworkModel,
)

TIMED_OUT = L.E_NET_TIMEOUT & MASK
UNREACHABLE = L.E_HOST_UNREACHABLE & MASK
#: One kind of fault at a time, strong enough to hit most calls of a short run.
FAULT_KINDS = {
    "drop": {"drop": 0.3},
    "duplicate": {"duplicate": 0.6},
    "delay": {"delay": 0.5, "delay_cycles": (1, 2 * TIMEOUT)},
    "reorder": {"reorder": 0.6, "reorder_hold": 3 * TIMEOUT},
}
#: The same, on every frame (or every other one for drops): shipping and lookups send few.
ALWAYS = {
    "drop": {"drop": 0.7},
    "duplicate": {"duplicate": 1.0},
    "delay": {"delay": 1.0, "delay_cycles": (1, 2 * TIMEOUT)},
    "reorder": {"reorder": 1.0, "reorder_hold": 3 * TIMEOUT},
}
COUNTER_OF = {"drop": "dropped", "duplicate": "duplicated", "delay": "delayed",
              "reorder": "reordered"}
SEEDS = (1, 2, 3)
#: Six calls, each at most 1 + 3 retransmissions of TIMEOUT cycles, plus the fault-free work.
CALL_BOUND = 6 * 4 * TIMEOUT + 200_000


def _counter(cluster: Cluster, host: int, offset: int) -> int:
    """A counter of the fault paths in a network server's data (netproto.NX_*)."""
    return int.from_bytes(cluster.host(host).read_netserver(offset, 4), "little")


# --- the configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"drop": 1.5}, "drop"), ({"drop": "0.1"}, "drop"), ({"duplicate": True}, "duplicate"),
     ({"delay": float("nan")}, "delay"), ({"reorder": -0.1}, "reorder"),
     ({"delay_cycles": (5, 2)}, "delay_cycles"), ({"delay_cycles": (1,)}, "delay_cycles"),
     ({"delay_cycles": [1, 2]}, "delay_cycles"), ({"reorder_hold": 0}, "reorder_hold"),
     ({"crashes": ((0, 5),)}, "crashes"), ({"crashes": ((2, -1),)}, "crashes"),
     ({"crashes": ((2, 1), (2, 3))}, "crashes"), ({"crashes": [(2, 1)]}, "crashes"),
     ({"seed": -1}, "seed"), ({"seed": 1.0}, "seed")],
)
def test_bad_fault_config_is_refused_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        NetworkFaults(**kwargs)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"faults": "drop"}, "faults"), ({"faults": NetworkFaults(crashes=((3, 0),))},
                                       "faults.crashes"),
     ({"call_timeout": 0}, "call_timeout"), ({"call_timeout": 1 << 31}, "call_timeout"),
     ({"call_retries": -1}, "call_retries"), ({"call_retries": 1.5}, "call_retries"),
     ({"at_most_once": "yes"}, "at_most_once")],
)
def test_bad_cluster_fault_options_are_refused_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        Cluster(2, **kwargs)
    assert error.value.field == field


def test_the_default_call_timeout_follows_the_network_and_stays_in_range() -> None:
    from lavsim.cluster import CALL_TIMEOUT_WORK, MAX_CALL_TIMEOUT

    model = NetworkModel(latency=2_000)
    assert Cluster(1, network=model, name_servers=False).call_timeout == (
        4 * model.frame_cycles(model.mtu) + CALL_TIMEOUT_WORK)
    huge = Cluster(1, network=NetworkModel(latency=1 << 35), network_servers=False,
                   name_servers=False)
    assert huge.call_timeout == MAX_CALL_TIMEOUT


# --- the wire ---------------------------------------------------------------------------------


def _wire(**faults: object) -> Network:
    network = Network(NetworkModel(latency=100, per_byte=0), NetworkFaults(**faults))
    for host in (1, 2):
        network.interfaces[host] = None  # type: ignore[assignment]
    return network


def _arrivals(network: Network) -> list[tuple[int, bytes]]:
    return [(f.arrival, f.data) for f in network.take_arrived(2, 1 << 40)]


def test_a_dropped_frame_never_arrives_and_is_counted() -> None:
    network = _wire(drop=1.0)
    assert network.send(1, 2, b"x" * 12, 0) is None
    assert network.in_flight == 0 and network.faults.counters.dropped == 1


def test_a_duplicated_frame_arrives_twice_the_copy_later() -> None:
    network = _wire(duplicate=1.0, delay_cycles=(5, 9))
    assert network.send(1, 2, b"a" * 12, 0) == 100
    (first, data1), (second, data2) = _arrivals(network)
    assert first == 100 and 105 <= second <= 109 and data1 == data2
    assert network.faults.counters.duplicated == 1


def test_a_delayed_frame_arrives_within_the_extra_range() -> None:
    network = _wire(delay=1.0, delay_cycles=(50, 60))
    arrival = network.send(1, 2, b"a" * 12, 0)
    assert arrival is not None and 150 <= arrival <= 160
    assert network.faults.counters.delayed == 1


def test_a_held_frame_is_overtaken_by_the_next_frame_on_its_link() -> None:
    network = _wire(reorder=1.0, reorder_hold=1_000)
    network.send(1, 2, b"first".ljust(12), 0)
    # Held back: the second frame (also held, so it waits for a third) releases the first
    # one cycle after its own arrival.
    network.send(1, 2, b"second".ljust(12), 10)
    order = _arrivals(network)
    assert order == [(111, b"first".ljust(12)), (1_110, b"second".ljust(12))]
    assert network.faults.counters.reordered == 2


def test_a_released_frame_never_arrives_before_its_own_fault_free_arrival() -> None:
    network = Network(NetworkModel(latency=100, per_byte=1),
                      NetworkFaults(reorder=1.0, reorder_hold=1_000))
    network.send(1, 2, b"L" * 1_000, 0)  # 1,100 without the hold
    network.send(1, 2, b"s" * 12, 1)  # overtakes: 113 (then held itself)
    assert [f.arrival for f in network.take_arrived(2, 1 << 40)] == [1_100, 1_113]


def test_a_held_frame_with_no_follower_arrives_hold_cycles_late() -> None:
    network = _wire(reorder=1.0, reorder_hold=1_000)
    network.send(1, 2, b"alone".ljust(12), 0)
    assert _arrivals(network) == [(1_100, b"alone".ljust(12))]


def test_frames_to_a_crashed_host_are_lost_and_it_is_unreachable() -> None:
    network = _wire()
    network.send(1, 2, b"a" * 12, 0)
    network.crash(2)
    assert network.in_flight == 0 and not network.reachable(2)
    assert network.send(1, 2, b"b" * 12, 5) is None
    assert network.faults.counters.lost == 2


def test_no_random_number_is_drawn_without_frame_faults() -> None:
    network = _wire()
    before = network.faults.rng.getstate()
    network.send(1, 2, b"a" * 12, 0)
    assert network.faults.rng.getstate() == before


def test_the_fault_state_round_trips_through_json_and_continues_identically() -> None:
    network = _wire(drop=0.3, duplicate=0.3, delay=0.3, reorder=0.3)
    for k in range(20):
        network.send(1, 2, bytes([k]) * 12, 10 * k)
    saved = json.loads(json.dumps(network.faults.get_state()))
    FaultState.check_state(saved)
    other = FaultState(network.faults.config)
    other.set_state(saved)
    assert other.get_state() == network.faults.get_state()
    assert [other.rng.random() for _ in range(5)] == [network.faults.rng.random()
                                                      for _ in range(5)]


@pytest.mark.parametrize(
    ("change", "key"),
    [(lambda s: s.pop("held"), "faults"),
     (lambda s: s["rng"].__setitem__(0, 2), "faults.rng"),
     (lambda s: s["rng"][1].__setitem__(0, -1), "faults.rng"),
     (lambda s: s["counters"].__setitem__("dropped", -1), "faults.counters.dropped"),
     (lambda s: s["counters"].pop("lost"), "faults.counters"),
     (lambda s: s.__setitem__("held", [[1, 2, 3], [1, 2, 4]]), "faults.held"),
     (lambda s: s.__setitem__("crashed", [0]), "faults.crashed")],
)
def test_a_bad_fault_state_is_refused_naming_the_key_and_changes_nothing(
    change: object, key: str
) -> None:
    state = FaultState(NetworkFaults(seed=4, drop=0.5))
    state.rng.random()
    before = state.get_state()
    bad = json.loads(json.dumps(before))
    change(bad)  # type: ignore[operator]
    with pytest.raises(ConfigError) as error:
        state.set_state(bad)
    assert error.value.field == key
    assert state.get_state() == before


# --- the interface's receive timer --------------------------------------------------------------


def test_a_receive_timer_expires_with_status_and_interrupt_unless_a_frame_comes() -> None:
    now = [0]
    irqs: list[int] = []
    memory = bytearray(1 << 16)

    def write(address: int, data: bytes) -> None:
        memory[address:address + len(data)] = data

    network = Network(NetworkModel(latency=100))
    nic = NetworkInterface(1, network, lambda: now[0], lambda a, n: bytes(memory[a:a + n]),
                           write, lambda: irqs.append(now[0]))
    nic.io_write(0x314, 4, 0x1000)
    nic.io_write(0x318, 4, 0x2000)
    nic.io_write(0x31C, 4, 4)
    nic.io_write(NIC_RX1_TIMER, 4, 500)
    now[0] = 200
    assert nic.io_read(NIC_RX1_TIMER, 4) == 300 and nic.next_timer() == 500
    nic.expire_timers(499)
    assert not irqs
    nic.expire_timers(500)
    assert irqs == [200] and nic.io_read(NIC_STATUS, 4) == 2 and nic.next_timer() is None
    assert nic.io_read(NIC_RX1_TIMER, 4) == 0 and nic.stats.timeouts == 1
    # A frame put in the queue disarms it.
    nic.io_write(NIC_RX1_TIMER, 4, 500)
    network.send(2, 1, struct.pack("<4I", 1, 1, 2, 0), 0)
    (frame,) = network.take_arrived(1, 1 << 20)
    assert nic.deliver(frame) and nic.next_timer() is None


# --- remote calls: at most once, errors instead of hangs ---------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_remote_calls_under_faults_run_at_most_once_and_end(kind: str, seed: int) -> None:
    run = run_calls(NetworkFaults(seed=seed, **FAULT_KINDS[kind]), max_cycles=CALL_BOUND)
    assert run.reason == "until", f"the client did not finish within {CALL_BOUND} cycles"
    run.check_at_most_once()
    assert getattr(run.cluster.network.faults.counters, COUNTER_OF[kind]) > 0


def test_without_faults_every_call_runs_once_and_nothing_is_sent_again() -> None:
    run = run_calls(None)
    assert run.calls == [(0, k) for k in range(1, 7)] and run.log == [1, 2, 3, 4, 5, 6]
    for host in (1, 2):
        for offset in (NX_REPLAYED, NX_STALE, NX_RETRANSMITS, NX_GAVE_UP):
            assert _counter(run.cluster, host, offset) == 0


def test_duplicated_requests_are_answered_from_the_table_not_run_again() -> None:
    run = run_calls(NetworkFaults(seed=5, duplicate=1.0, delay_cycles=(1, 500)))
    assert run.log == [1, 2, 3, 4, 5, 6] and all(status == 0 for status, _ in run.calls)
    assert _counter(run.cluster, 2, NX_REPLAYED) >= 6


def test_without_the_at_most_once_table_duplicated_requests_run_twice() -> None:
    """The same faults as the test above: only the table keeps the calls from running twice."""
    run = run_calls(NetworkFaults(seed=5, duplicate=1.0, delay_cycles=(1, 500)),
                    at_most_once=False)
    assert sorted(run.log) == sorted([1, 2, 3, 4, 5, 6] * 2)


def test_a_slow_procedure_is_sent_again_but_runs_once() -> None:
    # Each execution spins about 3 timeouts: forward retransmits while it runs.
    run = run_calls(None, calls=3, spin=TIMEOUT, call_timeout=TIMEOUT // 2, call_retries=8)
    assert run.calls == [(0, 1), (0, 2), (0, 3)] and run.log == [1, 2, 3]
    assert _counter(run.cluster, 1, NX_RETRANSMITS) > 0
    assert _counter(run.cluster, 2, NX_REPLAYED) + _counter(run.cluster, 2, NX_STALE) > 0
    again = run_calls(None, calls=3, spin=TIMEOUT, call_timeout=TIMEOUT // 2, call_retries=8,
                      at_most_once=False)
    assert len(again.log) > 3


def test_a_request_that_never_gets_a_reply_ends_in_a_timeout_after_the_retries() -> None:
    run = run_calls(NetworkFaults(drop=1.0), calls=2, call_retries=2)
    assert run.calls == [(TIMED_OUT, TIMED_OUT)] * 2 and run.log == []
    assert _counter(run.cluster, 1, NX_RETRANSMITS) == 4
    assert _counter(run.cluster, 1, NX_GAVE_UP) == 2
    # Each call: three attempts of TIMEOUT cycles each (and the guest's own work).
    assert 6 * TIMEOUT <= run.cluster.time <= 6 * TIMEOUT + 100_000


def test_an_old_request_id_is_dropped_without_running_or_replying() -> None:
    cluster, export = counter_cluster(None)
    cluster.run(max_cycles=20_000)
    gate = export.gate_selector  # type: ignore[attr-defined]
    # Id 0 first: the table's "nothing run yet" is no id a call may have.
    for when, request_id in ((0, 0), (3_000, 5), (6_000, 5), (9_000, 4), (12_000, 6)):
        frame = struct.pack("<8I", 2, 0, 1, NET_OP_CALL, request_id, gate, 1, request_id)
        cluster.network.send(1, 2, frame, cluster.time + when)
    cluster.run(max_cycles=80_000)
    assert procedure_log(cluster, export) == [5, 6]
    assert _counter(cluster, 2, NX_REPLAYED) == 1 and _counter(cluster, 2, NX_STALE) == 2
    h1 = cluster.host(1)
    ring = h1.system.kernel_variable("k_net_area") - L.KERNEL_BASE + L.NET_RING_BYTES
    replies = [struct.unpack("<8I", h1.system.memory.read(ring + k * L.RX_SLOT_SIZE + 4, 32))
               for k in range(3)]
    assert [(r[3], r[4], r[5], r[6]) for r in replies] == [
        (NET_OP_CALL | NET_OP_REPLY, 5, 0, 1), (NET_OP_CALL | NET_OP_REPLY, 5, 0, 1),
        (NET_OP_CALL | NET_OP_REPLY, 6, 0, 2)]


def test_same_seed_same_cycles_bit_for_bit() -> None:
    faults = NetworkFaults(seed=11, drop=0.2, duplicate=0.2, delay=0.2, reorder=0.2,
                           delay_cycles=(1, TIMEOUT))
    first, second = run_calls(faults), run_calls(faults)
    first.check_at_most_once()
    assert first.calls == second.calls and first.log == second.log
    assert first.cluster.digests() == second.cluster.digests()
    assert first.cluster.network.faults.get_state() == second.cluster.network.faults.get_state()
    other = run_calls(NetworkFaults(seed=12, drop=0.2, duplicate=0.2, delay=0.2, reorder=0.2,
                                    delay_cycles=(1, TIMEOUT)))
    assert other.cluster.digests() != first.cluster.digests()


# --- crashes ------------------------------------------------------------------------------------


def test_calls_to_a_crashed_server_host_fail_at_once_as_unreachable() -> None:
    run = run_calls(NetworkFaults(crashes=((2, 0),)), calls=3)
    assert run.reason == "until" and run.calls == [(UNREACHABLE, UNREACHABLE)] * 3
    assert run.log == [] and run.cluster.host(2).crashed and run.cluster.host(2).cycles == 0


def test_a_server_host_crashing_mid_call_gives_an_error_and_the_call_ran_at_most_once() -> None:
    def crash_once_running(cluster: Cluster, export: object) -> None:
        if procedure_log(cluster, export) and not cluster.host(2).crashed:
            cluster.crash(2)

    run = run_calls(None, calls=3, spin=TIMEOUT, until=crash_once_running)
    assert run.reason == "until"
    assert run.calls == [(UNREACHABLE, UNREACHABLE)] * 3 and run.log == [1]


def test_a_crash_at_a_cycle_stops_the_host_there_and_the_others_carry_on() -> None:
    # Host 3 crashes early; host 1's calls to host 2 are not affected.
    run = run_calls(NetworkFaults(crashes=((3, 12_345),)), hosts=3)
    assert run.calls == [(0, k) for k in range(1, 7)]
    host3 = run.cluster.host(3)
    assert host3.crashed and 12_345 <= host3.cycles < 12_345 + 2_000
    with pytest.raises(ConfigError) as error:
        run.cluster.down(3, False)
    assert error.value.field == "host_id"


# --- shipping and lookups -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", (1, 3))
@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_shipping_under_faults_installs_at_most_one_working_copy_or_fails(
    kind: str, seed: int
) -> None:
    run = ship_run(NetworkFaults(seed=seed, **ALWAYS[kind]), max_cycles=CALL_BOUND)
    assert run.reason == "until"
    assert getattr(run.cluster.network.faults.counters, COUNTER_OF[kind]) > 0
    shipped = run.cluster.host(1).shipped()
    if run.values["ship"] == 0:
        assert len(shipped) == 1 and run.address.host == 0
        assert (run.values["status"], run.values["result"]) == (0, 3 * 4 + 5)
    else:
        assert run.values["ship"] in (TIMED_OUT, UNREACHABLE) and shipped == []


def test_shipping_from_a_crashed_host_fails_as_unreachable() -> None:
    run = ship_run(NetworkFaults(crashes=((2, 0),)))
    assert run.values["ship"] == UNREACHABLE and run.cluster.host(1).shipped() == []


@pytest.mark.parametrize("seed", (1, 3))
@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_lookup_under_faults_finds_the_name_or_reports_it_unknown(kind: str, seed: int) -> None:
    run, gate = lookup_run(NetworkFaults(seed=seed, **ALWAYS[kind]), max_cycles=CALL_BOUND)
    assert run.reason == "until"
    assert getattr(run.cluster.network.faults.counters, COUNTER_OF[kind]) > 0
    if run.values["status"] == 0:
        assert (run.address.host, run.address.selector) == (2, gate)
    else:
        assert run.values["status"] == L.E_NOENT & MASK


def test_a_lookup_passes_over_a_host_that_never_answers() -> None:
    # Host 2 (which knows the name) loses every frame sent to it: asked, timed out, passed
    # over; host 3 answers that it does not know the name.
    run, _ = lookup_run(NetworkFaults(crashes=((2, 0),)), hosts=3)
    assert run.reason == "until" and run.values["status"] == L.E_NOENT & MASK
    dropped, _ = lookup_run(NetworkFaults(drop=1.0), call_retries=1)
    assert dropped.reason == "until" and dropped.values["status"] == L.E_NOENT & MASK
    assert _counter(dropped.cluster, 1, NX_GAVE_UP) == 1


# --- the figures' harness (lavsim.remote.measure_faulty_calls) -----------------------------------


def test_the_faulty_call_figures_count_what_happened() -> None:
    from lavsim.remote import measure_faulty_calls

    clean = measure_faulty_calls(None, latency=LATENCY, calls=4, call_timeout=TIMEOUT)
    assert clean.ok == 4 and clean.errors == {} and clean.retransmissions == 0
    assert 2 * LATENCY < clean.mean <= clean.worst < TIMEOUT
    lost = measure_faulty_calls(NetworkFaults(drop=1.0), latency=LATENCY, calls=2,
                                call_timeout=TIMEOUT)
    assert lost.ok == 0 and lost.errors == {L.E_NET_TIMEOUT: 2}
    # The warm-up call and the two timed ones: four attempts each.
    assert lost.retransmissions == 9 and lost.gave_up == 3
    assert 4 * TIMEOUT < lost.failed_mean < 4 * TIMEOUT + 10_000


# --- net_recv_timed, called by a thread of the network server -----------------------------------

#: A probe thread in host 1's network server: net_recv_timed with a bad timeout (0, then
#: NET_TIMEOUT_MAX + 1), then timed waits of 5,000 cycles on the reply queue: the status and the
#: cycles each took at PROBE + 8k.
PROBE = f"""
probe:
    mov esi, 0
    call probe_once
    mov dword ptr [PROBE], eax
    mov esi, {L.NET_TIMEOUT_MAX + 1}
    call probe_once
    mov dword ptr [PROBE+4], eax
    mov edi, PROBE+8
.Lprobe_again:
    rdtsc
    push eax
    mov esi, 5000
    call probe_once
    mov dword ptr [edi], eax
    rdtsc
    pop ecx
    sub eax, ecx
    mov dword ptr [edi+4], eax
    add edi, 8
    cmp edi, PROBE+24
    jne .Lprobe_again
    mov eax, 0
    mov ebx, 0
    int 0x30
probe_once:
    mov eax, {L.SYS_NET_RECV_TIMED}
    mov ebx, 1
    mov ecx, PROBE+64
    mov edx, 64
    int 0x30
    ret
"""
PROBE_AT = 0x2A00


def test_net_recv_timed_refuses_a_bad_timeout_and_waits_about_the_timeout() -> None:
    cluster = Cluster(2, network=NetworkModel(latency=LATENCY),
                      netserver_extra=f".equ PROBE, {PROBE_AT}\n" + PROBE)
    h1 = cluster.host(1)
    assert h1.netserver is not None
    thread = h1.system.create_thread(h1.netserver, "probe")

    def second_wait_begun() -> bool:
        return h1.read_netserver(PROBE_AT + 8, 4) != b"\x00" * 4

    # The first wait times out; during the second a reply-queue frame arrives after ~1,000.
    cluster.run(until=second_wait_begun, max_cycles=200_000)
    cluster.network.send(2, 1, struct.pack("<5I", 1, 1, 2, 0, 0), cluster.time)
    outcome = cluster.run(until=lambda: h1.system.thread_state(thread).state == "dead",
                          max_cycles=200_000)
    assert outcome.reason == "until"
    words = struct.unpack("<6I", h1.read_netserver(PROBE_AT, 24))
    assert words[0] == words[1] == L.E_INVAL & MASK
    assert words[2] == TIMED_OUT and 5_000 <= words[3] <= 6_000
    assert words[4] == 20 and words[5] < 5_000
    assert h1.nic.next_timer() is None and h1.nic.stats.timeouts == 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 140))
def test_many_seeds_of_mixed_faults_never_run_a_call_twice_nor_hang(seed: int) -> None:
    faults = NetworkFaults(seed=seed, drop=0.15, duplicate=0.15, delay=0.15, reorder=0.15,
                           delay_cycles=(1, 2 * TIMEOUT), reorder_hold=3 * TIMEOUT)
    run = run_calls(faults, calls=10, max_cycles=10 * 4 * TIMEOUT + 400_000)
    assert run.reason == "until"
    run.check_at_most_once()
    ship = ship_run(faults, max_cycles=CALL_BOUND)
    assert ship.reason == "until" and len(ship.cluster.host(1).shipped()) <= 1


def test_timeouts_need_no_timer_tick() -> None:
    """With timer_period=0 a waiting host idles in HLT with no tick to come: only the
    interface's receive timer ends the wait."""
    run = run_calls(NetworkFaults(drop=1.0), calls=1, call_retries=1, timer_period=0)
    assert run.reason == "until" and run.calls == [(TIMED_OUT, TIMED_OUT)]
    assert 2 * TIMEOUT <= run.cluster.time <= 2 * TIMEOUT + 10_000
