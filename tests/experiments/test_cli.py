"""The ``lavsim`` command's handling of its arguments: every bad one is refused with one line
naming the option (never a library field), exit status 2 and no traceback, before anything
is measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lavsim
from lavsim.cli import _bytes, main

SRC = Path(__file__).resolve().parents[2] / "src"


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the command, check it refused its arguments, return the one line it printed."""
    assert main([*argv, "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("knob", ["tlb", "size", "threads", "working-set"])
def test_an_empty_value_list_is_refused_naming_values(
    capsys: pytest.CaptureFixture[str], knob: str
) -> None:
    line = _refused(capsys, ["sweep", knob, "--values", ""])
    assert line == "lavsim sweep: error: argument --values: needs at least one integer"


def test_an_empty_mechanism_list_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    line = _refused(capsys, ["sweep", "size", "--mechanisms", ""])
    assert line == "lavsim sweep: error: argument --mechanisms: needs at least one mechanism"


def test_an_unknown_mechanism_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _refused(capsys, ["sweep", "size", "--mechanisms", "migration-group,nope"])
    assert line.startswith("lavsim sweep: error: argument --mechanisms: one of migration-group")
    assert line.endswith("not 'nope'")


def test_an_empty_size_list_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    line = _refused(capsys, ["rpc", "--sizes", "", "--no-remote"])
    assert line == "lavsim rpc: error: argument --sizes: needs at least one integer"


@pytest.mark.parametrize(("argv", "option"), [
    (["rpc", "--sizes", "0,16,0"], "--sizes"),
    (["sweep", "tlb", "--values", "8,8"], "--values"),
    (["sweep", "size", "--mechanisms", "message-group,message-group"], "--mechanisms"),
    (["rpc", "--profile", "i486,i486"], "--profile"),
])  # fmt: skip
def test_a_value_given_twice_is_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], option: str
) -> None:
    line = _refused(capsys, argv)
    assert line.startswith(f"lavsim {argv[0]}: error: argument {option}: ")


@pytest.mark.parametrize(("argv", "option", "field"), [
    (["sweep", "tlb", "--values", "6"], "--values", "tlb_entries"),
    (["sweep", "size", "--values", "0,3"], "--values", "size"),
    (["sweep", "threads", "--values", "99"], "--values", "other_threads"),
    (["sweep", "working-set", "--values", "999"], "--values", "working_set"),
    (["sweep", "size", "--size", "3"], "--size", "size"),
    (["sweep", "threads", "--threads", "99"], "--threads", "other_threads"),
    (["sweep", "size", "--calls", "1"], "--calls", "calls"),
    (["rpc", "--sizes", "3"], "--sizes", "size"),
    (["rpc", "--tlb", "6"], "--tlb", "tlb_entries"),
    (["rpc", "--memory", "1K"], "--memory", "memory_size"),
    (["rpc", "--memory", "16M", "--timer-period", "-1"], "--timer-period", "timer_period"),
    (["rpc", "--calls", "1"], "--calls", "calls"),
])  # fmt: skip
def test_a_value_the_library_refuses_names_the_option_not_the_field(
    capsys: pytest.CaptureFixture[str], argv: list[str], option: str, field: str
) -> None:
    line = _refused(capsys, argv)
    assert line.startswith(f"lavsim {argv[0]}: error: argument {option}: ")
    assert f" {field}:" not in line  # the library field, as ConfigError prints it


def test_a_bad_byte_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    line = _refused(capsys, ["rpc", "--memory", "16X"])
    assert line.startswith("lavsim rpc: error: argument --memory: a byte count")


@pytest.mark.parametrize(("text", "value"), [
    ("16M", 16 << 20), ("64MiB", 64 << 20), ("16777216", 16 << 20), ("0x1000000", 16 << 20),
    ("2048k", 2 << 20), ("1GiB", 1 << 30),
])  # fmt: skip
def test_memory_sizes_take_binary_suffixes(text: str, value: int) -> None:
    assert _bytes(text) == value


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"lavsim {lavsim.__version__}\n"


def test_one_warm_call_is_not_called_calls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rpc", "--profile", "i486", "--sizes", "0", "--calls", "2", "--no-remote",
                 "--no-progress"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "(warm = mean of 1 call after the first;" in first
    assert main(["sweep", "size", "--values", "0", "--mechanisms", "migration-group",
                 "--calls", "2", "--no-progress"]) == 0
    assert ", 1 warm call) ==" in capsys.readouterr().out


def test_machine_options_reach_the_measurement(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rpc", "--profile", "i486", "--sizes", "0", "--calls", "2", "--no-remote",
                 "--tlb", "8", "--memory", "32MiB", "--timer-period", "0",
                 "--no-progress"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("== i486, unified TLB 8 entries 4-way, 32 MiB memory, timer off, "
                            "board 486dx2-66 (")


def test_a_refused_argument_prints_no_traceback() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-m", "lavsim", "sweep", "tlb", "--values", ""],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr == "lavsim sweep: error: argument --values: needs at least one integer\n"


# --- CPU model files on the command line (issue 11: "what if the call gate cost 100 cycles") --

_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "i486-slowgate.toml"


def _table(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_a_cpu_model_file_changes_the_table_by_exactly_its_changed_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lavsim.timing import I486

    args = ["rpc", "--no-progress", "--no-remote", "--sizes", "0", "--format", "json"]
    plain = json.loads(_table([*args, "--profile", "i486"], capsys))
    slow = json.loads(_table([*args, "--cpu-model", str(_EXAMPLE)], capsys))
    added = 100 - I486.cycles("call_gate.inner")
    by_key = {r["mechanism"]: r for r in plain}
    assert {r["profile"] for r in slow} == {"i486-slowgate"}
    for row in slow:
        before = by_key[row["mechanism"]]
        # Migration crosses one inner-ring gate per call; message RPC crosses none.
        crossed = 1 if row["mechanism"].startswith("migration") else 0
        assert row["warm_cycles"] - before["warm_cycles"] == crossed * added


def test_the_table_header_names_a_user_model_and_what_it_derives_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _table(["rpc", "--no-progress", "--no-remote", "--sizes", "0",
                  "--cpu-model", str(_EXAMPLE)], capsys)
    assert out.startswith("== i486-slowgate (derived from i486: ")


def test_a_bad_cpu_model_file_is_one_line_naming_the_option_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nname = "x"\nbase = "i486"\n[costs]\n"call_gate.iner" = 3\n')
    assert main(["rpc", "--cpu-model", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--cpu-model" in err[0] and "bad.toml, line 5" in err[0]
    assert "call_gate.iner" in err[0]
