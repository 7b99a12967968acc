"""Figures on a board with caches, asserted as properties (the integrator regenerates tables):
cold calls dearer than warm ones, a nonzero memory-stall phase, phases that still add up, and
the same architectural results as on the ideal board; plus the table header naming the board."""

from __future__ import annotations

import contextlib
import hashlib
import io

import pytest

from lavsim.cli import main
from lavsim.experiments.harness import Harness
from lavsim.experiments.mechanisms import MECHANISMS
from lavsim.experiments.rpc import measure_call
from lavsim.experiments.workload import Workload


@pytest.mark.parametrize("profile", ["i486", "pentium"])
@pytest.mark.parametrize("mech", ["migration-group", "message-groups"])
def test_on_the_default_board_cold_costs_more_than_warm_and_memory_stalls_show(
    profile: str, mech: str,
) -> None:
    cost = measure_call(mech, Workload(profile=profile, board="default", size=64, calls=3))
    assert cost.cold.cycles > cost.warm.cycles
    assert cost.cold.phases["memory stalls"] > 0
    if mech.startswith("message"):
        assert cost.warm.phases["memory stalls"] > 0
    ideal = measure_call(mech, Workload(profile=profile, size=64, calls=3))
    assert ideal.warm.phases["memory stalls"] == 0
    # The same instructions run; the board only adds stall cycles.
    assert cost.warm.instructions == ideal.warm.instructions
    assert cost.warm.cycles >= ideal.warm.cycles


def _run_digest(mech: str, board: str, profile: str) -> tuple[str, list[int]]:
    harness = Harness(MECHANISMS[mech], Workload(profile=profile, board=board, size=16, calls=3))
    windows = harness.run()
    harness.check(windows)
    m = harness.system.machine
    cpu = m.cpu
    state = [*cpu.regs, cpu.eip, cpu.get_eflags(), cpu.cr3, cpu.instructions]
    digest = hashlib.sha256(repr(state).encode() + m.memory.digest().encode()).hexdigest()
    return digest, [w.stats.instructions for w in windows]


@pytest.mark.parametrize(("profile", "board"), [("i486", "486dx2-66"), ("pentium", "p100")])
@pytest.mark.parametrize("mech", sorted(MECHANISMS))
def test_kernel_workloads_end_in_the_ideal_architectural_state_on_a_board(
    mech: str, profile: str, board: str,
) -> None:
    assert _run_digest(mech, board, profile) == _run_digest(mech, "ideal", profile)


def test_the_rpc_header_names_the_board_and_the_cold_definition() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["rpc", "--no-progress", "--no-remote", "--sizes", "0", "--calls", "2",
                     "--profile", "i486"]) == 0
    text = out.getvalue()
    assert "== i486 on board 486dx2-66 (" in text and "cold = the first call, caches empty" in text
    assert "memory stalls" in text


def test_a_board_named_alone_runs_its_own_cpu_model() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["rpc", "--no-progress", "--no-remote", "--sizes", "0", "--calls", "2",
                     "--board", "p100", "--format", "json"]) == 0
    text = out.getvalue()
    assert '"profile": "pentium"' in text and '"board": "p100"' in text
    assert '"profile": "i486"' not in text


def test_lavsim_boards_lists_every_preset_with_its_sources() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["boards"]) == 0
    text = out.getvalue()
    for name in ("ideal", "486dx2-66", "486dx-50", "p100"):
        assert f"\n{name}" in f"\n{text}"
    assert "[PCG]" in text and "[EMIS]" in text and "estimate" in text


def test_an_unknown_board_is_refused_naming_the_option() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["rpc", "--board", "vax"]) == 2
    assert "--board" in err.getvalue() and "486dx2-66" in err.getvalue()


def test_the_kernel_observer_attributes_every_stall_cycle_to_a_row_and_a_process() -> None:
    harness = Harness(MECHANISMS["message-groups"],
                      Workload(profile="i486", board="486dx2-66", size=64, calls=2))
    windows = harness.run()
    for w in windows:
        stats = w.stats
        assert stats.memory_stalls > 0
        assert sum(stats.stalls_by_row.values()) == stats.memory_stalls
        assert sum(stats.stalls_by_process.values()) == stats.memory_stalls
        assert stats.memory_stalls == w.phases.phases["memory stalls"]
        assert all(stats.rows[r].cycles >= c for r, c in stats.stalls_by_row.items()
                   if r in stats.rows)
        assert "stalled on memory" in stats.table()


def test_a_workload_refuses_an_unknown_board_naming_the_field() -> None:
    from lavsim.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        Workload(board="486sx-16")
    assert info.value.field == "board" and "p100" in str(info.value)


def test_sweeps_take_a_board_and_report_its_stall_cycles() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sweep", "size", "--no-progress", "--values", "0,256", "--calls", "2",
                     "--mechanisms", "migration-group", "--board", "486dx-50",
                     "--format", "csv"]) == 0
    head, *rows = out.getvalue().splitlines()
    assert "board" in head.split(",") and "memory_stall_cycles" in head.split(",")
    assert len(rows) == 2 and all(",486dx-50," in r for r in rows)
