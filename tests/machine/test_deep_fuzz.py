"""Fuzzing at scale (tests/kits/deepfuzz.py): the opt-in deep profile runs at least 10^7 guest
instructions across bare machines at CPL 0 and 3 and user code under the kernel, and finds no
Python exception, no kernel panic, no failed invariant check; the default suite checks that a
run stopped part way resumes to exactly the run made in one go.

Run the deep profile with ``python -m pytest -m deep tests/machine/test_deep_fuzz.py -s``;
``LAVSIM_DEEP_INSTRUCTIONS`` (default 10,000,000), ``LAVSIM_DEEP_SEED`` (default 1) and
``LAVSIM_DEEP_STATE`` (a JSON file to save to and resume from) change it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from deepfuzz import fuzz


def _totals(state: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in state.items() if k != "seconds"}


def test_a_fuzz_run_stopped_part_way_resumes_to_the_same_totals(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    part = fuzz(45_000, seed=3, state_path=path)
    assert part["instructions"] >= 45_000 and part["bare_systems"] and part["kernel_systems"]
    resumed = fuzz(150_000, seed=3, state_path=path)
    whole = fuzz(150_000, seed=3)
    assert _totals(resumed) == _totals(whole)
    assert json.loads(Path(path).read_text())["instructions"] == whole["instructions"]
    assert whole["exceptions"] == whole["panics"] == whole["problems"] == 0, whole["failures"]
    with pytest.raises(ValueError, match="seed"):
        fuzz(1, seed=4, state_path=path)


@pytest.mark.deep
def test_ten_million_fuzzed_instructions_raise_nothing_and_panic_nothing() -> None:
    target = int(os.environ.get("LAVSIM_DEEP_INSTRUCTIONS", 10_000_000))
    seed = int(os.environ.get("LAVSIM_DEEP_SEED", 1))
    state = fuzz(target, seed, os.environ.get("LAVSIM_DEEP_STATE"))
    print(json.dumps({k: v for k, v in state.items() if k != "failures"}))
    assert state["exceptions"] == 0, state["failures"]
    assert state["panics"] == 0, state["failures"]
    assert state["problems"] == 0, state["failures"]
    assert state["instructions"] >= target
    assert min(state["bare_instructions"], state["kernel_instructions"]) >= 0.4 * target
