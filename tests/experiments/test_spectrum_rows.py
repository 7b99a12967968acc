"""The rows of the whole IPC spectrum (issue 14) in the measured table: each design's
counters say what it does by construction, per warm call."""

from __future__ import annotations

import pytest

from lavsim.experiments.rpc import measure_call
from lavsim.experiments.workload import Workload


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_l4_register_ipc_copies_nothing_and_long_ipc_copies_each_byte_once(
    profile: str,
) -> None:
    short = measure_call("l4-groups", Workload(profile=profile, size=8)).warm
    assert short.message_copies == 0 and short.bytes_copied == 0
    assert short.context_switches == 2 and short.cr3_loads == 2
    assert short.phases["scheduling"] == 0
    long = measure_call("l4-groups", Workload(profile=profile, size=4096)).warm
    assert long.message_copies == 1 and long.bytes_copied == 4096


@pytest.mark.parametrize("size", [0, 64, 4096])
def test_l4_between_small_spaces_loads_no_cr3_and_refills_less_of_the_tlb(size: int) -> None:
    small = measure_call("l4-small-spaces", Workload(size=size)).warm
    groups = measure_call("l4-groups", Workload(size=size)).warm
    assert small.cr3_loads == 0 and groups.cr3_loads == 2
    assert small.tlb_misses < groups.tlb_misses
    assert small.cycles < groups.cycles
    if size == 0:  # a register message touches no page the CR3 load flushed
        assert small.phases["TLB refill"] == 0 < groups.phases["TLB refill"]


@pytest.mark.parametrize("key", ["lrpc-groups", "lrpc-group", "lrpc-resident"])
def test_lrpc_copies_the_arguments_once_and_schedules_nothing(key: str) -> None:
    warm = measure_call(key, Workload(size=256)).warm
    assert warm.bytes_copied == 256 and warm.message_copies == 0
    assert warm.context_switches == 0 and warm.phases["scheduling"] == 0
    assert warm.cr3_loads == (2 if key == "lrpc-groups" else 0)


def test_every_new_row_returns_its_result_with_other_runnable_threads() -> None:
    """measure_call checks each call's result; with filler threads the calls still work."""
    for key in ("l4-groups", "l4-small-spaces", "lrpc-groups"):
        cost = measure_call(key, Workload(size=1024, other_threads=2))
        assert cost.warm.phases["other threads"] >= 0
        assert len(cost.samples) == 7
