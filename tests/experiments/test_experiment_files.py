"""Experiment files (issue 18): the built-in sweeps are shipped files, and every kind of bad
input is refused before anything runs, naming the file, the key and its line."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from lavsim.cli import main
from lavsim.experiments.experiment import (
    BUILTIN_DIR,
    ExperimentFileError,
    axis_names,
    builtin_experiment,
    load_experiment,
    parse_experiment_text,
)
from lavsim.experiments.mechanisms import MECHANISMS
from lavsim.experiments.sweeps import SWEEPS
from lavsim.experiments.workload import Workload

EXAMPLE_MODEL = Path(__file__).resolve().parents[2] / "examples" / "i486-slowgate.toml"

GOOD = """\
[experiment]
name = "grid"

[workload]
calls = 3

[axes]
size = [0, 64]
mechanism = ["migration-group", "message-group"]
"""


def test_every_built_in_sweep_is_a_shipped_experiment_file() -> None:
    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.toml")) == sorted(SWEEPS)
    tlb = builtin_experiment("tlb")
    assert [a for a, _ in tlb.axes] == ["profile", "tlb_entries", "global_pages", "mechanism"]
    # TLB sizes x PGE on/off x the table's mechanisms (every mechanism, as before).
    assert len(tlb.points) == 5 * 2 * len(MECHANISMS)
    assert tlb.base.working_set == 4


def test_the_axes_are_every_workload_field_so_a_new_field_is_an_axis_at_once() -> None:
    assert axis_names() == (*(f.name for f in attrs.fields(Workload)), "mechanism")


def test_the_points_are_the_grid_in_axis_order_last_axis_fastest() -> None:
    e = parse_experiment_text(GOOD)
    assert [(p.workload.size, p.mechanism) for p in e.points] == [
        (0, "migration-group"), (0, "message-group"), (64, "migration-group"),
        (64, "message-group")]  # fmt: skip
    assert all(p.workload.calls == 3 for p in e.points)
    assert e.rows == "size"


def test_a_profile_axis_takes_model_files_relative_to_the_experiment(tmp_path: Path) -> None:
    (tmp_path / "cpu.toml").write_text(EXAMPLE_MODEL.read_text())
    path = tmp_path / "e.toml"
    path.write_text(GOOD.replace("[axes]", '[axes]\nprofile = ["i486", "cpu.toml"]'))
    e = load_experiment(path)
    assert [p.workload.profile_name for p in e.points][::4] == ["i486", "i486-slowgate"]


def test_a_costs_axis_replaces_one_timing_cost_of_the_model_and_keeps_its_name() -> None:
    e = parse_experiment_text(_axes('costs.call_gate.inner = [50, 100]\n'
                                    'profile = ["i486", "pentium"]'))
    assert e.rows == "costs.call_gate.inner"
    models = [p.workload.model for p in e.points[::len(MECHANISMS)]]
    assert [(m.name, m.profile.cost("call_gate.inner").cycles) for m in models] == [
        ("i486", 50), ("pentium", 50), ("i486", 100), ("pentium", 100)]
    assert models[0].mmu == builtin_experiment("size").points[0].workload.model.mmu


def _axes(body: str) -> str:
    return f'[experiment]\nname = "x"\n\n[axes]\n{body}\n'


BAD = [
    # (text, the key named, its line, a phrase of the message)
    ('[experiment]\nname = "x"\n[axis]\nsize = [0]\n', "axis", 3, "did you mean 'axes'"),
    ('[experiment]\nname = "x"\ntitel = "t"\n[axes]\nsize = [0]\n', "experiment.titel", 3,
     "did you mean 'title'"),
    ('[experiment]\ntitle = "t"\n[axes]\nsize = [0]\n', "experiment.name", 1, "required"),
    (_axes("sizes = [0, 4]"), "axes.sizes", 5, "did you mean 'size'"),
    (_axes("size = []"), "axes.size", 5, "empty"),
    (_axes("size = 4"), "axes.size", 5, "must be a list"),
    (_axes("size = [0, 4, 0]"), "axes.size", 5, "0 given more than once"),
    (_axes("size = [0, 3]"), "axes.size", 5, "3: must be a multiple of 4"),
    (_axes('size = ["big"]'), "axes.size", 5, "must be an integer"),
    (_axes("size = [0]\nglobal_pages = [1]"), "axes.global_pages", 6, "must be a bool"),
    (_axes('size = [0]\nmechanism = ["carrier-pigeon"]'), "axes.mechanism", 6,
     "not 'carrier-pigeon'"),
    (_axes('size = [0]\nprofile = ["z80"]'), "axes.profile", 6, "unknown CPU model"),
    (_axes('size = [0]\nprofile = ["missing.toml"]'), "axes.profile", 6, "cannot be read"),
    (_axes('profile = ["i486"]'), "output.rows", None, "an axis besides profile"),
    ('[experiment]\nname = "x"\n[workload]\ncalls = 1\n[axes]\nsize = [0]\n',
     "workload.calls", 4, "calls"),
    ('[experiment]\nname = "x"\n[workload]\nsizes = 1\n[axes]\nsize = [0]\n',
     "workload.sizes", 4, "not a Workload field"),
    ('[experiment]\nname = "x"\n[workload]\nsize = 4\n[axes]\nsize = [0]\n',
     "axes.size", 6, "also fixed"),
    (_axes("size = [0]") + '[output]\nmeasurements = ["warm_cycle"]\n', "output.measurements",
     7, "did you mean 'warm_cycles'"),
    (_axes("size = [0]") + '[output]\nmetric = "speed"\n', "output.metric", 7, "one of"),
    (_axes("size = [0]") + '[output]\nformat = "xml"\n', "output.format", 7, "one of"),
    (_axes("size = [0]\ncalls = [3]") + '[output]\nrows = "mechanism"\n', "output.rows", 8,
     "must be one of the axes size, calls"),
    (_axes("size = = [0]"), "(syntax)", 5, "not valid TOML"),
    (_axes("costs.call_gate.innr = [50]"), "axes.costs.call_gate.innr", 5,
     "did you mean 'call_gate.inner'"),
    (_axes("size = [0]\ncosts.call_gate.inner = [50, -1]"), "axes.costs.call_gate.inner", 6,
     "must be an integer >= 0"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "key", "line", "phrase"), BAD)
def test_each_kind_of_bad_input_is_refused_naming_the_key_and_line(
    text: str, key: str, line: int | None, phrase: str
) -> None:
    with pytest.raises(ExperimentFileError) as caught:
        parse_experiment_text(text, "bad.toml")
    error = caught.value
    assert (error.key, error.line) == (key, line), str(error)
    assert phrase in str(error)
    assert str(error).startswith("bad.toml" + ("" if line is None else f", line {line}"))


def test_the_command_refuses_a_bad_file_in_one_line_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(_axes("size = [0, 4]\nother_threads = [0, 99]"))
    assert main(["sweep", str(path), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"lavsim sweep: error: {path}, line 6: axes.other_threads: 99: must be an "
                   "integer in 0..30, got 99\n")


@pytest.mark.parametrize(("argv", "option"), [
    (["--values", "0,4"], "--values"),
    (["--mechanisms", "message-group"], "--mechanisms"),
    (["--calls", "3"], "--calls"),
    (["--profile", "pentium"], "--profile"),
])  # fmt: skip
def test_a_built_in_sweeps_option_is_refused_with_an_experiment_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], option: str
) -> None:
    path = tmp_path / "e.toml"
    path.write_text(GOOD)
    assert main(["sweep", str(path), *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lavsim sweep: error: argument {option}: only for the built-in")


def test_a_sweep_that_is_neither_built_in_nor_a_file_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sweep", "sizes", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lavsim sweep: error: argument SWEEP: a built-in sweep (size, ")


def test_a_costs_axis_moves_the_measured_cycles_by_the_cost_it_changes() -> None:
    from lavsim.experiments.engines import run_experiment

    e = parse_experiment_text(_axes('costs.call_gate.inner = [50, 100]\n'
                                    'mechanism = ["migration-group"]\n') +
                              "[workload]\ncalls = 3\n")
    cheap, dear = run_experiment(e).points
    assert cheap.cost is not None and dear.cost is not None
    # One call through the gate to the inner ring per migration call.
    assert dear.cost.warm.cycles - cheap.cost.warm.cycles == 50


def test_the_example_grid_reads_with_its_model_file() -> None:
    e = load_experiment(EXAMPLE_MODEL.parent / "grid.toml")
    assert len(e.points) == 2 * 4 * 2 * 2
    assert {p.workload.profile_name for p in e.points} == {"i486", "i486-slowgate"}


def test_records_keep_json_types_of_the_axes_a_model_by_its_name() -> None:
    from lavsim.experiments.engines import run_experiment

    e = parse_experiment_text(
        _axes(f'size = [0]\nglobal_pages = [true]\nprofile = ["{EXAMPLE_MODEL}"]\n'
              'mechanism = ["migration-group"]') + "[workload]\ncalls = 2\n")
    (record,) = run_experiment(e).records()
    assert record["global_pages"] is True and record["profile"] == "i486-slowgate"
