"""Timeline traces: the trace-event format, a migration's thread in the server's process, a
message RPC's flow between two threads, bounded size, and no simulated result changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lavsim.errors import ConfigError
from lavsim.experiments.mechanisms import mechanism
from lavsim.experiments.rpc import measure_call
from lavsim.experiments.workload import Workload
from lavsim.observe.calls import trace_calls
from lavsim.observe.timeline import TIME_UNIT, Timeline

WORK = Workload(profile="pentium", size=16, calls=3)


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, list[int]]]:
    timeline = Timeline()
    cycles = trace_calls(timeline, [mechanism("migration-group"),
                                    mechanism("message-groups")], WORK)
    path = tmp_path_factory.mktemp("trace") / "trace.json"
    timeline.write(path)
    return json.loads(Path(path).read_text()), cycles


def _tracks(events: list[dict[str, Any]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    tracks: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for e in events:
        if e["ph"] in ("B", "E", "i", "s", "f"):
            tracks.setdefault((e["pid"], e["tid"]), []).append(e)
    return tracks


def _names(events: list[dict[str, Any]], what: str) -> dict[int, str]:
    return {e["pid"]: e["args"]["name"] for e in events
            if e["ph"] == "M" and e["name"] == what}


def test_trace_is_trace_event_json_with_balanced_slices_and_monotonic_time(
    trace: tuple[dict[str, Any], dict[str, list[int]]],
) -> None:
    data, _ = trace
    assert data["otherData"]["time_unit"] == TIME_UNIT
    events = data["traceEvents"]
    for e in events:
        assert {"ph", "pid"} <= set(e)
        if e["ph"] != "M":
            assert isinstance(e["ts"], int)
        if e["ph"] == "B":
            assert e["name"] and "tid" in e
    for key, track in _tracks(events).items():
        depth = 0
        times = [e["ts"] for e in track]
        assert times == sorted(times), key
        for e in track:
            depth += {"B": 1, "E": -1}.get(e["ph"], 0)
            assert depth >= 0, key
        assert depth == 0, key


def test_migrating_thread_enters_the_server_process_and_leaves_it(
    trace: tuple[dict[str, Any], dict[str, list[int]]],
) -> None:
    data, _ = trace
    events = data["traceEvents"]
    pid = next(p for p, n in _names(events, "process_name").items() if "migration" in n)
    process_slices = [e for e in events if e["ph"] == "B" and e["pid"] == pid
                      and e["cat"] == "process" and e["tid"] != 0]
    threads = {e["tid"] for e in process_slices}
    assert len(threads) == 1  # one thread, the client's: no server thread runs
    order = [e["name"].split(" ")[0] for e in process_slices]
    assert "server" in order
    first = order.index("server")
    assert order[first - 1] == "client" and order[first + 1] == "client"


def test_message_rpc_shows_a_flow_from_one_thread_to_another(
    trace: tuple[dict[str, Any], dict[str, list[int]]],
) -> None:
    data, _ = trace
    events = data["traceEvents"]
    pid = next(p for p, n in _names(events, "process_name").items() if "message" in n)
    starts = {e["id"]: e for e in events if e["ph"] == "s" and e["pid"] == pid}
    ends = [e for e in events if e["ph"] == "f" and e["pid"] == pid]
    assert ends
    for end in ends:
        start = starts[end["id"]]
        assert start["tid"] != end["tid"]
        assert start["ts"] <= end["ts"]


def test_traced_calls_cost_the_same_cycles_as_untraced_ones(
    trace: tuple[dict[str, Any], dict[str, list[int]]],
) -> None:
    _, cycles = trace
    for key, traced in cycles.items():
        cost = measure_call(key, WORK)
        assert list(cost.samples) == traced[1:]


def test_trace_stops_growing_at_max_events_and_says_so() -> None:
    timeline = Timeline(max_events=50)
    trace_calls(timeline, [mechanism("message-groups")], WORK)
    data = timeline.to_json()
    assert data["otherData"]["truncated"] is True
    begins = sum(e["ph"] == "B" for e in data["traceEvents"])
    ends = sum(e["ph"] == "E" for e in data["traceEvents"])
    assert begins == ends
    assert len(data["traceEvents"]) <= 50 + begins + 8


def test_timeline_refuses_a_bad_bound() -> None:
    with pytest.raises(ConfigError, match="max_events"):
        Timeline(max_events=0)


def test_timer_interrupts_are_instants_and_a_window_bounds_the_slices() -> None:
    from lavsim.kernel import LavenderSystem
    from lavsim.kernel.ipc import user_prelude

    system = LavenderSystem(profile="pentium", timer_period=2_000)
    spin = user_prelude() + "main:\n    mov ecx, 3000\n.Ls:\n    dec ecx\n    jnz .Ls\n" \
        "    mov ebx, 0\n    mov eax, SYS_EXIT\n    int 0x30\n"
    for name in ("a", "b"):
        system.create_thread(system.create_process(system.create_group(name), spin, name=name),
                             "main")
    timeline = Timeline()
    recorder = timeline.attach(system, "spinners", window=(3_000, 9_000))
    outcome = system.run(max_cycles=200_000)
    recorder.detach()
    assert outcome.status == "done"
    events = timeline.events
    interrupts = [e for e in events if e["ph"] == "i" and e["name"] == "interrupt"]
    assert interrupts
    stamps = [e["ts"] for e in events if e["ph"] in ("B", "i")]
    assert stamps and all(3_000 <= t < 9_000 for t in stamps)
    tracks = {e["tid"] for e in events if e["ph"] == "B" and e["cat"] == "process"}
    assert {1, 2} <= tracks  # both threads ran inside the window (time slices)
