"""The result store (issue 18): a killed sweep resumes without measuring again what it
finished and ends with the uninterrupted table; another version's store and a file that is no
store are refused by name and left as they were; keys follow the content, not names."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from lavsim.cli import main
from lavsim.experiments.engines import SerialEngine, run_experiment
from lavsim.experiments.experiment import load_experiment
from lavsim.experiments.store import Store, StoreError, point_key, read_results
from lavsim.experiments.workload import Workload
from lavsim.models import parse_model_text

SRC = Path(__file__).resolve().parents[2] / "src"

GRID = """\
[experiment]
name = "resume"
[workload]
calls = 3
[axes]
size = [0, 64, 128, 256, 512, 1024]
other_threads = [0, 1, 2]
mechanism = ["migration-group", "message-group"]
"""
POINTS = 6 * 3 * 2


def _rows(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM points").fetchone()[0])
    except sqlite3.Error:  # not created yet, or being written
        return 0


def test_a_killed_sweep_resumes_measuring_only_what_it_had_not_finished(tmp_path: Path) -> None:
    experiment_file = tmp_path / "grid.toml"
    experiment_file.write_text(GRID)
    store_file = tmp_path / "store.db"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    child = subprocess.Popen(
        [sys.executable, "-m", "lavsim", "sweep", str(experiment_file), "--jobs", "1",
         "--store", str(store_file), "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _rows(store_file) < 5 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = _rows(store_file)
    assert 5 <= finished < POINTS, "the sweep was not interrupted part way"

    experiment = load_experiment(experiment_file)
    with Store(store_file) as store:
        resumed = run_experiment(experiment, SerialEngine(), store=store)
        assert len(store) == POINTS
    assert (resumed.reused, resumed.computed) == (finished, POINTS - finished)
    whole = run_experiment(experiment, SerialEngine())
    assert resumed.to_csv() == whole.to_csv()
    with Store(store_file) as store:
        again = run_experiment(experiment, SerialEngine(), store=store)
    assert (again.reused, again.computed) == (POINTS, 0)


def test_a_store_from_another_version_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'lavsim 0.0.1+0123456789ab' WHERE key = 'lavsim'")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"old.db: written by lavsim 0.0.1\+0123456789ab, "
                       "incompatible with this lavsim"):
        Store(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b""])
def test_a_corrupted_store_is_refused_by_name_and_not_overwritten(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"broken.db: not a lavsim result store"):
        Store(path)
    assert path.read_bytes() == content


def test_an_sqlite_file_of_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not a lavsim result store"):
        Store(path)


def test_the_command_refuses_a_bad_store_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"garbage" * 200)
    assert main(["sweep", "size", "--values", "0", "--store", str(path), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("lavsim sweep: error: argument --store: ")
    assert "not a lavsim result store" in err


def test_the_key_follows_the_model_content_and_every_workload_field() -> None:
    text = '[model]\nname = "m"\nbase = "i486"\n[costs]\n"call_gate.inner" = {}\n'
    slow = parse_model_text(text.replace("{}", "100"))
    slow_again = parse_model_text(text.replace("{}", "100"), "elsewhere.toml")
    slower = parse_model_text(text.replace("{}", "101"))
    key = point_key("message-group", Workload(profile=slow))
    assert key == point_key("message-group", Workload(profile=slow_again))
    assert key != point_key("message-group", Workload(profile=slower))
    assert key != point_key("migration-group", Workload(profile=slow))
    base = Workload()
    for field in attrs.fields(Workload):
        if field.name == "profile":
            continue
        changed = {"size": 4, "other_threads": 1, "other_work": 1, "working_set": 1,
                   "tlb_entries": 8, "global_pages": False, "calls": 3,
                   "memory_size": 32 << 20, "timer_period": 1000}.get(field.name)
        if changed is None:  # a field added since: its default differs from nothing here
            continue
        assert point_key("m", attrs.evolve(base, **{field.name: changed})) != \
            point_key("m", base), field.name


def test_results_read_back_from_a_store_in_grid_order(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.db"
    argv = ["sweep", "size", "--values", "0,64", "--mechanisms", "migration-group",
            "--calls", "3", "--store", str(path), "--no-progress", "--format", "json",
            "--jobs", "1"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    records = read_results(path)
    assert [(r["experiment"], r["index"], r["size"]) for r in records] == [
        ("size", 0, 0), ("size", 1, 64)]
    assert [r["warm_cycles"] for r in records] == [p["warm_cycles"] for p in printed]
    assert [r["warm_bytes_copied"] for r in records] == [p["bytes_copied"] for p in printed]
    assert main(["results", str(path), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("experiment,index,mechanism,")
    assert len(lines) == 3
