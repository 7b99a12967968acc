"""The figures must not move by accident: `lavsim rpc` and the sweeps print byte-identical
output to tests/experiments/golden/.

The files in golden/ were captured before issues 12 and 13 changed the model on purpose: they
are checked on ideal memory (``--board ideal``, issue 12's caches off) with the built-in
"pentium" model replaced by its sequential twin (PENTIUM_SEQUENTIAL under the name "pentium",
issue 13's dual issue off), which must reproduce them bit for bit; i486 rows are unchanged by
issue 13 either way. golden/pairing/ holds the same runs with the issue model on, still on ideal
memory. A later issue that changes the model on purpose replaces the files in the same commit
and says why."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import attrs
import pytest

from lavsim import models
from lavsim.cli import main
from lavsim.timing.pentium import PENTIUM_SEQUENTIAL

GOLDEN = Path(__file__).parent / "golden"
PAIRED = GOLDEN / "pairing"


@pytest.fixture
def sequential_pentium(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "pentium" model with its issue model off (the figures before issue 13)."""
    old = models.MODELS["pentium"]
    profile = attrs.evolve(PENTIUM_SEQUENTIAL, name="pentium", description=old.description)
    monkeypatch.setitem(models._REGISTRY, "pentium", attrs.evolve(old, profile=profile))


def _run(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


@pytest.mark.usefixtures("sequential_pentium")
def test_the_rpc_table_with_sequential_issue_is_byte_identical_to_the_golden_table() -> None:
    got = _run(["rpc", "--no-progress", "--board", "ideal"])
    assert got == (GOLDEN / "rpc_table.txt").read_text()


@pytest.mark.usefixtures("sequential_pentium")
def test_the_rpc_json_records_with_sequential_issue_are_byte_identical() -> None:
    got = _run(["rpc", "--no-progress", "--board", "ideal", "--format", "json", "--no-remote",
                "--sizes", "0,64"])
    assert got == (GOLDEN / "rpc_0_64.json").read_text()


def test_the_rpc_table_with_the_issue_model_is_byte_identical_to_its_golden_table() -> None:
    got = _run(["rpc", "--no-progress", "--board", "ideal"])
    assert got == (PAIRED / "rpc_table.txt").read_text()
    i486 = got.split("== pentium")[0]
    assert i486 == (GOLDEN / "rpc_table.txt").read_text().split("== pentium")[0]


def test_the_rpc_json_records_with_the_issue_model_are_byte_identical() -> None:
    got = _run(["rpc", "--no-progress", "--board", "ideal", "--format", "json", "--no-remote",
                "--sizes", "0,64"])
    assert got == (PAIRED / "rpc_0_64.json").read_text()


@pytest.mark.parametrize("knob", ["size", "threads", "tlb", "working-set"])
def test_every_sweep_is_byte_identical(knob: str) -> None:
    got = _run(["sweep", knob, "--no-progress", "--board", "ideal", "--format", "csv"])
    assert got == (GOLDEN / f"sweep_{knob}.csv").read_text()
