"""The structure work (issue 11) must not move a single figure: `lavsim rpc` and the sweeps
print byte-identical output to what main printed before it (tests/experiments/golden/, captured
from the commit before the restructuring). A later issue that changes the model on purpose
replaces the golden files in the same commit and says why.

Issue 14 added rows (L4-style IPC, small spaces, LRPC-style calls) and columns of the phase
table: the golden files were replaced, and the files before it (``*_before_issue14*``) are
kept so that the rows of the five older mechanisms are still checked byte for byte."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from lavsim.cli import main

GOLDEN = Path(__file__).parent / "golden"


def _run(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def test_the_rpc_table_is_byte_identical_to_the_golden_table() -> None:
    assert _run(["rpc", "--no-progress"]) == (GOLDEN / "rpc_table.txt").read_text()


def test_the_rpc_json_records_are_byte_identical() -> None:
    got = _run(["rpc", "--no-progress", "--format", "json", "--no-remote", "--sizes", "0,64"])
    assert got == (GOLDEN / "rpc_0_64.json").read_text()


@pytest.mark.parametrize("knob", ["size", "threads", "tlb", "working-set"])
def test_every_sweep_is_byte_identical(knob: str) -> None:
    got = _run(["sweep", knob, "--no-progress", "--format", "csv"])
    assert got == (GOLDEN / f"sweep_{knob}.csv").read_text()


#: The mechanisms (and their table labels) measured before issue 14.
OLD_KEYS = ("migration-group", "migration-resident", "message-group", "message-groups",
            "handoff-groups")
#: Width of the phase table's name column and of each mechanism's column.
PHASE_NAME, PHASE_COLUMN = 24, 13


def _before(name: str) -> str:
    stem, ext = name.rsplit(".", 1)
    return (GOLDEN / f"{stem}_before_issue14.{ext}").read_text()


def _old_table_lines(text: str) -> list[str]:
    """The table's lines as they were before issue 14: every line but the new mechanisms'
    rows, and the phase table cut to its first five columns (phases zero in all five
    dropped, as the old table did)."""
    from lavsim.experiments.mechanisms import MECHANISMS

    new_labels = [m.label for k, m in MECHANISMS.items() if k not in OLD_KEYS]
    out = []
    in_phases = False
    for line in text.splitlines():
        if line.startswith("phase "):
            in_phases = True
        elif not line:
            in_phases = False
        if any(line.startswith(label) for label in new_labels):
            continue
        if in_phases:
            line = line[: PHASE_NAME + PHASE_COLUMN * len(OLD_KEYS)]
            cells = line[PHASE_NAME:].split()
            if line[:PHASE_NAME].strip() not in ("phase", "total") and all(
                float(c.replace(",", "")) == 0 for c in cells
            ):
                continue
        out.append(line)
    return out


def test_the_older_mechanisms_rows_of_the_table_did_not_move() -> None:
    """Every row (and phase column) of the five mechanisms measured before issue 14 is the
    same as before it, byte for byte."""
    got = (GOLDEN / "rpc_table.txt").read_text()
    assert _old_table_lines(got) == _before("rpc_table.txt").splitlines()


def test_the_older_mechanisms_json_records_did_not_move() -> None:
    got = [r for r in json.loads((GOLDEN / "rpc_0_64.json").read_text())
           if r["mechanism"] in OLD_KEYS]
    assert got == json.loads(_before("rpc_0_64.json"))


@pytest.mark.parametrize("knob", ["size", "threads", "tlb", "working-set"])
def test_the_older_mechanisms_sweep_rows_did_not_move(knob: str) -> None:
    name = f"sweep_{knob}.csv"
    rows = list(csv.reader(io.StringIO((GOLDEN / name).read_text())))
    old = list(csv.reader(io.StringIO(_before(name))))
    column = rows[0].index("mechanism")
    assert [r for r in rows if r[column] in OLD_KEYS or r is rows[0]] == old
