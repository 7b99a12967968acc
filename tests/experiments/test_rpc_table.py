"""The RPC cycle table and sweeps (issue 6): deterministic, and what must hold by construction
holds in every measured call."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from lavsim.cli import main
from lavsim.experiments.mechanisms import MessageOneGroup
from lavsim.experiments.rpc import (
    GATE_MAX_BYTES,
    PHASE_ORDER,
    CallCost,
    RpcTable,
    Workload,
    measure_call,
    rpc_table,
)
from lavsim.experiments.sweeps import run_sweep

README = Path(__file__).resolve().parents[2] / "README.md"
SIZES = (0, 64, 256)


@pytest.fixture(scope="module")
def table() -> RpcTable:
    return rpc_table(("i486",), SIZES, calls=4, remote=False)


def _costs(table: RpcTable, key: str) -> list[CallCost]:
    found = [c for c in table.costs if c.mechanism.key == key]
    assert len(found) == len(SIZES)
    return found


def test_two_runs_give_identical_tables(table: RpcTable) -> None:
    again = rpc_table(("i486",), SIZES, calls=4, remote=False)
    assert again.to_json() == table.to_json()
    assert again.to_text() == table.to_text()


@pytest.mark.parametrize("key", ["migration-group", "migration-resident"])
def test_migration_makes_no_kernel_entry_no_cr3_load_no_switch(table: RpcTable, key: str) -> None:
    for cost in _costs(table, key):
        for figures in (cost.cold, cost.warm):
            assert figures.kernel_entries == 0
            assert figures.cr3_loads == 0
            assert figures.context_switches == 0
            assert figures.message_copies == 0
            assert figures.gate_calls == 1  # exactly one far call through a gate per call
            assert figures.phases["trap entry"] == 0


@pytest.mark.parametrize("key", ["message-groups", "handoff-groups"])
def test_cross_group_message_rpc_loads_cr3_at_least_twice_per_call(
    table: RpcTable, key: str
) -> None:
    for cost in _costs(table, key):
        assert cost.cold.cr3_loads >= 2
        assert cost.warm.cr3_loads >= 2
        assert cost.warm.kernel_entries >= 2


def test_one_group_message_rpc_loads_no_cr3(table: RpcTable) -> None:
    for cost in _costs(table, "message-group"):
        assert cost.warm.cr3_loads == 0 and cost.warm.context_switches == 2


@pytest.mark.parametrize("key", ["message-group", "message-groups", "handoff-groups"])
def test_a_message_is_copied_twice_per_direction(table: RpcTable, key: str) -> None:
    for cost in _costs(table, key):
        # request: user -> kernel -> server; reply (empty): server -> kernel -> client.
        assert cost.warm.message_copies == 4
        assert cost.cold.message_copies == 4
        assert cost.warm.bytes_copied == 2 * cost.size


def test_migration_copies_the_arguments_once_through_the_gate_or_a_shared_segment(
    table: RpcTable,
) -> None:
    for cost in _costs(table, "migration-group"):
        if cost.size <= GATE_MAX_BYTES:
            assert cost.warm.bytes_copied == cost.size  # the gate's parameter copy
        else:
            assert cost.warm.bytes_copied == cost.size + 8  # client's copy + (offset, length)


def test_ratios_are_consistent_with_the_cycles(table: RpcTable) -> None:
    records = table.records()
    base = {(r["profile"], r["bytes"]): r["warm_cycles"] for r in records
            if r["mechanism"] == "migration-group"}
    for record in records:
        expected = float(record["warm_cycles"]) / float(base[record["profile"], record["bytes"]])
        assert record["ratio"] == pytest.approx(expected, abs=1e-3)
    for cost in table.costs:
        if cost.mechanism.key == "migration-group":
            assert table.ratio(cost) == 1.0
        elif isinstance(cost.mechanism, MessageOneGroup):
            assert table.ratio(cost) > 2  # message RPC is several times dearer at these sizes


def test_phases_add_up_and_warm_is_the_mean_of_the_samples(table: RpcTable) -> None:
    for cost in table.costs:
        assert sum(cost.warm.phases[p] for p in PHASE_ORDER) == pytest.approx(cost.warm.cycles)
        assert cost.warm.cycles == pytest.approx(sum(cost.samples) / len(cost.samples))
        assert len(cost.samples) == cost.workload.calls - 1


def test_handoff_skips_the_ready_queue(table: RpcTable) -> None:
    for cost in _costs(table, "handoff-groups"):
        assert cost.warm.phases["scheduling"] == 0
    for cost in _costs(table, "message-groups"):
        assert cost.warm.phases["scheduling"] > 0


def test_other_runnable_threads_delay_message_rpc_but_not_migration_or_handoff() -> None:
    def warm(key: str, others: int) -> CallCost:
        return measure_call(key, Workload(other_threads=others, calls=3))

    for key in ("migration-group", "handoff-groups"):
        assert warm(key, 2).warm.cycles == warm(key, 0).warm.cycles
    busy, idle = warm("message-group", 2), warm("message-group", 0)
    assert busy.warm.context_switches == idle.warm.context_switches + 4  # 2 threads x 2 waits
    assert busy.warm.phases["other threads"] > 0
    assert busy.warm.cycles > idle.warm.cycles + busy.warm.phases["other threads"] / 2


def test_cr3_load_makes_the_server_refill_its_working_set() -> None:
    work = Workload(working_set=8, calls=3)
    two = measure_call("message-groups", work)
    one = measure_call("message-group", work)
    migration = measure_call("migration-group", work)
    assert two.warm.tlb_misses >= 8 and two.warm.phases["TLB refill"] > 0
    # Inside one address space the pages stay in the TLB (a set conflict or two aside).
    assert one.warm.tlb_misses <= 2 and migration.warm.tlb_misses <= 2
    assert two.warm.tlb_misses >= one.warm.tlb_misses + 6


def test_without_global_pages_every_cr3_load_flushes_the_kernel_too() -> None:
    on = measure_call("handoff-groups", Workload(calls=3))
    off = measure_call("handoff-groups", Workload(calls=3, global_pages=False))
    assert off.warm.tlb_misses > on.warm.tlb_misses
    assert off.warm.cycles > on.warm.cycles


def test_sweep_records_one_point_per_value_and_mechanism() -> None:
    from lavsim.experiments.rpc import mechanism

    result = run_sweep("size", values=(0, 128), mechanisms=(mechanism("migration-group"),),
                       base=Workload(calls=3))
    assert [p.value for p in result.points] == [0, 128]
    assert "128" in result.to_text()


def _run_cli(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0
    return out.getvalue()


def test_cli_rpc_json_on_a_reduced_configuration() -> None:
    text = _run_cli("rpc", "--profile", "i486", "--sizes", "0", "--calls", "3",
                    "--no-remote", "--format", "json", "--no-progress")
    records = json.loads(text)
    assert {r["mechanism"] for r in records} == {
        "migration-group", "migration-resident", "message-group", "message-groups",
        "handoff-groups", "l4-groups", "l4-small-spaces", "lrpc-groups",
    }
    for r in records:
        assert r["warm_cycles"] > 0 and r["bytes"] == 0 and r["profile"] == "i486"


def test_cli_sweep_csv() -> None:
    text = _run_cli("sweep", "threads", "--values", "0,1", "--mechanisms",
                    "migration-group,message-group", "--calls", "3", "--format", "csv")
    lines = text.strip().splitlines()
    assert lines[0].startswith("sweep,profile,value,mechanism,warm_cycles")
    assert len(lines) == 1 + 4


def test_cli_refuses_a_size_that_is_not_a_multiple_of_4() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["rpc", "--sizes", "3", "--no-remote", "--calls", "2"]) == 2
    assert err.getvalue().startswith("lavsim rpc: error: argument --sizes: ")


def test_readme_library_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has a python example"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README example", "exec"), {})
    first, second = out.getvalue().splitlines()[:2]
    assert first == "done 42"
    # gate call + ring-2 procedure + RETF: a positive cycle count from the step observer
    assert int(second) > 0
