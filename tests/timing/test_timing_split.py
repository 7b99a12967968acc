"""The move of ``lavsim.timing`` into a package (one module per profile) moved no figure and no
source text: every (key, cycles, source) triple and the description of the built-in profiles
equal those of the single-module version, captured from it into tests/timing/golden/ before the
split (``timing_profiles.json``). A change to a figure on purpose updates that file in the same
commit."""

from __future__ import annotations

import json
from pathlib import Path

import lavsim.timing as timing
from lavsim.timing import KEYS, PROFILES

GOLDEN = json.loads(
    (Path(__file__).parent / "golden" / "timing_profiles.json").read_text(encoding="utf-8")
)


def _triples(name: str) -> list[tuple[str, int, str]]:
    profile = PROFILES[name]
    return [(k, profile.costs[k].cycles, profile.costs[k].source) for k in KEYS]


def test_the_captured_profiles_are_all_still_built_in() -> None:
    assert list(GOLDEN) == ["i486", "pentium"]
    assert list(PROFILES)[: len(GOLDEN)] == list(GOLDEN)


def test_every_key_cycles_and_source_triple_is_unchanged() -> None:
    for name, data in GOLDEN.items():
        want = [(k, c, s) for k, (c, s) in data["costs"].items()]
        assert _triples(name) == want, name


def test_profile_descriptions_are_unchanged() -> None:
    for name, data in GOLDEN.items():
        assert PROFILES[name].description == data["description"], name


def test_every_name_the_old_module_exported_is_still_importable() -> None:
    for name in ("I486", "KEYS", "KEY_MEANINGS", "PENTIUM", "PROFILES", "REP_KINDS", "Cost",
                 "TimingProfile", "UnknownTimingKeyError", "get_profile", "ESTIMATE_PREFIX"):
        assert hasattr(timing, name), name
    assert timing.get_profile("i486") is timing.I486
