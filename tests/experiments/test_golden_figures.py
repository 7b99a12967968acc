"""The figures must not move by accident.

``golden/original/`` holds `lavsim rpc` (table and JSON) and the four sweeps as main printed
them before issues 11 to 14 (captured on 2026-12-03 from the commit before the restructuring).
Three later issues changed the model on purpose, each behind a switch, so the original figures
are still checked byte for byte with all three switched off: ideal memory (``--board ideal``,
issue 12's caches off), the built-in "pentium" model replaced by its sequential twin
(``PENTIUM_SEQUENTIAL`` under the name "pentium", issue 13's dual issue off), and only the five
mechanisms measured before issue 14 (its new rows and phase-table columns filtered out).

``golden/current/`` holds the same runs as the command prints them now (default boards, dual
issue, every mechanism). A change that moves a figure on purpose regenerates those files in the
same commit and says why (``python tests/experiments/test_golden_figures.py`` rewrites them).

Issue 19's at-most-once table (the remote server checks each call's request id before running
it: a few instructions on the remote call's critical path) is the fourth switch: the original
figures are checked with ``Cluster(at_most_once=False)`` as the default."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from lavsim import cluster, models
from lavsim.cli import main
from lavsim.timing.pentium import PENTIUM_SEQUENTIAL

GOLDEN = Path(__file__).parent / "golden"
ORIGINAL = GOLDEN / "original"
CURRENT = GOLDEN / "current"

#: The mechanisms measured before issue 14.
OLD_KEYS = ("migration-group", "migration-resident", "message-group", "message-groups",
            "handoff-groups")
#: Width of the phase table's name column and of each mechanism's column.
PHASE_NAME, PHASE_COLUMN = 24, 13
KNOBS = ("size", "threads", "tlb", "working-set")

#: Every run the golden files hold: file name -> the command's arguments.
RUNS: dict[str, list[str]] = {
    "rpc_table.txt": ["rpc", "--no-progress"],
    "rpc_0_64.json": ["rpc", "--no-progress", "--format", "json", "--no-remote",
                      "--sizes", "0,64"],
    **{f"sweep_{k}.csv": ["sweep", k, "--no-progress", "--format", "csv", "--jobs", "1"]
       for k in KNOBS},
}  # fmt: skip


@contextlib.contextmanager
def _sequential_pentium() -> Iterator[None]:
    """The "pentium" model with its issue model off (the figures before issue 13)."""
    old = models.MODELS["pentium"]
    profile = attrs.evolve(PENTIUM_SEQUENTIAL, name="pentium", description=old.description)
    models._REGISTRY["pentium"] = attrs.evolve(old, profile=profile)
    try:
        yield
    finally:
        models._REGISTRY["pentium"] = old


@contextlib.contextmanager
def _without_at_most_once() -> Iterator[None]:
    """Clusters built with the network server of before issue 19 (no table of calls run)."""
    defaults = cluster.Cluster.__init__.__kwdefaults__
    assert defaults is not None and defaults["at_most_once"] is True
    defaults["at_most_once"] = False
    try:
        yield
    finally:
        defaults["at_most_once"] = True


def _run(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def _old_table_lines(text: str) -> list[str]:
    """The table's lines as they were before issue 14: every line but the new mechanisms'
    rows, and the phase table cut to its first five columns (phases zero in all five dropped,
    as the old table did)."""
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


def _old_rows(name: str, text: str) -> object:
    """What of ``text`` (the output kept in golden file ``name``) existed before issue 14."""
    if name.endswith(".txt"):
        return _old_table_lines(text)
    if name.endswith(".json"):
        return [r for r in json.loads(text) if r["mechanism"] in OLD_KEYS]
    rows = list(csv.reader(io.StringIO(text)))
    column = rows[0].index("mechanism")
    return [rows[0], *(r for r in rows[1:] if r[column] in OLD_KEYS)]


def _parse(name: str, text: str) -> object:
    if name.endswith(".txt"):
        return text.splitlines()
    if name.endswith(".json"):
        return json.loads(text)
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("name", list(RUNS))
def test_the_original_figures_hold_with_the_four_model_changes_switched_off(name: str) -> None:
    with _sequential_pentium(), _without_at_most_once():
        got = _run([*RUNS[name], "--board", "ideal"])
    assert _old_rows(name, got) == _parse(name, (ORIGINAL / name).read_text())


@pytest.mark.parametrize("name", list(RUNS))
def test_the_command_prints_the_current_golden_figures(name: str) -> None:
    assert _run(RUNS[name]) == (CURRENT / name).read_text()


def test_the_i486_rows_do_not_depend_on_the_pentium_issue_model() -> None:
    argv = ["rpc", "--no-progress", "--profile", "i486", "--board", "ideal", "--no-remote",
            "--sizes", "0"]
    paired = _run(argv)
    with _sequential_pentium():
        assert _run(argv) == paired


if __name__ == "__main__":
    # Regenerate golden/current/ (only after a change that moves figures on purpose).
    CURRENT.mkdir(exist_ok=True)
    for file, args in RUNS.items():
        (CURRENT / file).write_text(_run(args))
        print(f"wrote {CURRENT / file}", file=sys.stderr)
