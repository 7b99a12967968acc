"""Timing profiles: vocabulary, sources, published 486 figures, validation, derivation."""

from __future__ import annotations

import re

import pytest

from lavsim.errors import ConfigError, LavsimError
from lavsim.timing import (
    I486,
    KEY_MEANINGS,
    KEYS,
    PENTIUM,
    PROFILES,
    REP_KINDS,
    Cost,
    TimingProfile,
    UnknownTimingKeyError,
    get_profile,
)

ALL = pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))

SOURCE_KEY = re.compile(r"\[(H|AF|MS|MAME|86B|EI486|I386|VEN|OS2|PIR|NG)\]")


def test_vocabulary_is_unique_and_described() -> None:
    assert len(KEYS) == len(set(KEYS))
    assert all(KEY_MEANINGS[k].strip() for k in KEYS)
    assert "call_gate.inner_params_base" in KEYS
    for kind in REP_KINDS:
        assert kind in KEYS
        assert f"rep_{kind}.per" in KEYS


def test_profiles_registry() -> None:
    assert PROFILES == {"i486": I486, "pentium": PENTIUM}
    assert get_profile("i486") is I486
    assert get_profile("Pentium") is PENTIUM


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        get_profile("k6")
    assert info.value.field == "profile"
    assert "k6" in str(info.value)


@ALL
def test_every_key_present_with_source(profile: TimingProfile) -> None:
    assert set(profile.costs) == set(KEYS)
    assert list(profile.table) == list(KEYS)
    for key in KEYS:
        cost = profile.cost(key)
        assert isinstance(cost.cycles, int) and cost.cycles >= 0, key
        assert cost.source.strip(), key
        assert profile.cycles(key) == cost.cycles
        assert profile.source(key) == cost.source


@ALL
def test_sources_cite_or_are_estimates(profile: TimingProfile) -> None:
    for key in KEYS:
        cost = profile.cost(key)
        # Every figure names a source key of the reference, estimates included (they say
        # which figure they were derived from); sources found after the reference was compiled
        # ([PIR], [NG], further [H]/[86B] entries) are listed in docs/timing.md instead.
        assert SOURCE_KEY.search(cost.source), (key, cost.source)
        if not cost.is_estimate:
            assert "estimate" not in cost.source.lower(), key
            assert ("timing-reference §" in cost.source
                    or "later source, docs/timing.md" in cost.source), key


@pytest.mark.parametrize(
    ("profile", "key"),
    [
        (I486, "rep.base"),
        (I486, "page_walk.read"),
        (I486, "page_walk.ad_write"),
        (I486, "exception.same"),
        (I486, "exception.inner"),
        (I486, "cmov.rr"),
        (I486, "cpuid"),
        (I486, "rdtsc"),
        (I486, "mov_to_cr4"),
        (PENTIUM, "rep_lods.per"),
        (PENTIUM, "page_walk.read"),
        (PENTIUM, "exception.inner"),
        (PENTIUM, "call_gate.inner_params_base"),
        (PENTIUM, "call_gate.param"),
        (PENTIUM, "cmov.rm"),
        (PENTIUM, "int3.inner"),
        (PENTIUM, "retf_imm.outer"),
    ],
)
def test_estimates_are_marked(profile: TimingProfile, key: str) -> None:
    assert profile.cost(key).is_estimate
    assert profile.source(key).startswith("estimate:")
    assert key in profile.estimates()


def test_published_figures_are_not_marked_as_estimates() -> None:
    for key in ("call_gate.same", "call_gate.inner", "call_gate.inner_params_base",
                "call_gate.param", "int.same", "int.inner", "mov.rr", "iret.outer"):
        assert not I486.cost(key).is_estimate, key
    for key in ("call_gate.same", "call_gate.inner", "int.same", "int.inner", "mov.rr"):
        assert not PENTIUM.cost(key).is_estimate, key


def test_published_486_gate_and_interrupt_figures() -> None:
    assert I486.cycles("call_gate.same") == 35
    assert I486.cycles("call_gate.inner") == 69
    assert I486.call_gate_cycles(False) == 35
    assert I486.call_gate_cycles(True, 0) == 69
    for x in range(1, 32):
        assert I486.call_gate_cycles(True, x) == 77 + 4 * x
    assert I486.cycles("int.same") == 44
    assert I486.cycles("int.inner") == 71
    assert I486.cycles("int3.same") == 44
    assert I486.cycles("int3.inner") == 71
    assert I486.cycles("iret.same") == 15
    assert I486.cycles("iret.outer") == 36
    assert I486.cycles("retf.outer") == 33


def test_published_pentium_gate_and_interrupt_figures() -> None:
    assert PENTIUM.call_gate_cycles(False) == 22
    assert PENTIUM.call_gate_cycles(True, 0) == 44
    assert PENTIUM.cycles("int.same") == 25
    assert PENTIUM.cycles("int.inner") == 42
    assert PENTIUM.cycles("iret.outer") == 27
    assert PENTIUM.cycles("retf.outer") == 23


@ALL
def test_call_gate_params_grow_and_same_privilege_ignores_them(profile: TimingProfile) -> None:
    values = [profile.call_gate_cycles(True, x) for x in range(0, 32)]
    assert values == sorted(values)
    assert profile.call_gate_cycles(False, 3) == profile.cycles("call_gate.same")
    with pytest.raises(ConfigError):
        profile.call_gate_cycles(True, 32)
    with pytest.raises(ConfigError):
        profile.call_gate_cycles(True, -1)


@ALL
def test_rep_and_page_walk_helpers(profile: TimingProfile) -> None:
    base = profile.cycles("rep.base")
    assert profile.rep_cycles("movs", 0) == base
    assert profile.rep_cycles("stos", 10) == base + 10 * profile.cycles("rep_stos.per")
    with pytest.raises(ConfigError):
        profile.rep_cycles("outs", 1)
    with pytest.raises(ConfigError):
        profile.rep_cycles("movs", -1)
    assert profile.page_walk_cycles(2, 1) == (
        2 * profile.cycles("page_walk.read") + profile.cycles("page_walk.ad_write")
    )


def test_unknown_key_lookup_names_the_key() -> None:
    with pytest.raises(UnknownTimingKeyError) as info:
        I486.cycles("mov.xx")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, LavsimError)
    assert err.key == "mov.xx"
    assert "mov.xx" in str(err) and "i486" in str(err)
    with pytest.raises(UnknownTimingKeyError):
        PENTIUM.source("nope")


def _costs(profile: TimingProfile) -> dict[str, Cost]:
    return dict(profile.costs)


def test_missing_key_is_refused() -> None:
    costs = _costs(I486)
    del costs["int.inner"]
    with pytest.raises(ConfigError) as info:
        TimingProfile(name="broken", costs=costs)
    assert "int.inner" in info.value.field


def test_negative_cost_is_refused() -> None:
    costs = _costs(PENTIUM)
    costs["mov.rr"] = Cost(-1, "test")
    with pytest.raises(ConfigError) as info:
        TimingProfile(name="broken", costs=costs)
    assert "mov.rr" in info.value.field


@pytest.mark.parametrize("source", ["", "   "])
def test_empty_source_is_refused(source: str) -> None:
    costs = _costs(I486)
    costs["nop"] = Cost(1, source)
    with pytest.raises(ConfigError) as info:
        TimingProfile(name="broken", costs=costs)
    assert "nop" in info.value.field


def test_non_int_cycles_and_unknown_keys_are_refused() -> None:
    costs = _costs(I486)
    costs["nop"] = Cost(True, "bool is not a cycle count")
    with pytest.raises(ConfigError, match="nop"):
        TimingProfile(name="broken", costs=costs)
    costs = _costs(I486)
    costs["mov.typo"] = Cost(1, "x")
    with pytest.raises(ConfigError) as info:
        TimingProfile(name="broken", costs=costs)
    assert "mov.typo" in info.value.field


def test_costs_are_frozen_after_construction() -> None:
    costs = _costs(I486)
    profile = TimingProfile(name="copy", costs=costs)
    costs["nop"] = Cost(99, "later edit")
    assert profile.cycles("nop") == 1
    with pytest.raises(TypeError):
        profile.costs["nop"] = Cost(99, "x")  # type: ignore[index]
    assert profile == TimingProfile(name="copy", costs=dict(I486.costs))


def test_with_costs() -> None:
    swept = I486.with_costs({"page_walk.read": 10, "nop": Cost(2, "estimate: test")})
    assert swept.cycles("page_walk.read") == 10
    assert "override" in swept.source("page_walk.read")
    assert swept.cycles("nop") == 2 and swept.cost("nop").is_estimate
    assert swept.name == "i486-modified"
    assert swept.cycles("mov.rr") == I486.cycles("mov.rr")
    # the original is untouched
    assert I486.cycles("page_walk.read") == 1
    assert I486.cycles("nop") == 1
    assert I486.with_costs({}, name="same").table == I486.table
    assert I486.with_costs({"call_gate.param": 8}).call_gate_cycles(True, 2) == 77 + 16


def test_with_costs_refuses_bad_values() -> None:
    with pytest.raises(ConfigError) as info:
        I486.with_costs({"mov.rr": -3})
    assert "mov.rr" in info.value.field
    with pytest.raises(ConfigError) as info:
        PENTIUM.with_costs({"no.such.key": 1})
    assert "no.such.key" in info.value.field


def test_pentium_description_states_dual_issue_and_the_sequential_one_its_absence() -> None:
    from lavsim.timing.pentium import PENTIUM_SEQUENTIAL

    assert "dual issue" in PENTIUM.description.lower() and PENTIUM.issue is not None
    assert "alone" in PENTIUM_SEQUENTIAL.description and PENTIUM_SEQUENTIAL.issue is None


def test_table_script_renders_every_key() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "timing_table.py"
    spec = importlib.util.spec_from_file_location("timing_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.tables_markdown(["i486", "pentium"])
    for key in KEYS:
        assert text.count(f"| `{key}` |") == 2, key


def test_docs_tables_are_current() -> None:
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "timing_table", root / "benchmarks" / "timing_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (root / "docs" / "timing.md").read_text(encoding="utf-8")
    block = doc[doc.index(module.BEGIN) + len(module.BEGIN) : doc.index(module.END)]
    expected = module.tables_markdown(list(PROFILES))
    assert block.strip() == expected.strip(), (
        "docs/timing.md is stale: run python benchmarks/timing_table.py --write docs/timing.md"
    )
