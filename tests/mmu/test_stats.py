"""Counter groups (lavsim.stats): each counter declared once, read, reset, delta, checkpoint."""

from __future__ import annotations

import attrs
import pytest

from lavsim.errors import ConfigError
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import MMU, MMU_COUNTERS, MMUConfig, MMUStats
from lavsim.mmu.tlb import TLB_COUNTERS, TLBStats
from lavsim.stats import CounterGroup, delta


class _Owner:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0


GROUP = CounterGroup(("hits", "lookups that hit"), ("misses", "lookups that missed"))


def test_a_group_reads_resets_and_diffs_its_owners_counters() -> None:
    owner = _Owner()
    before = GROUP.read(owner)
    owner.hits += 3
    owner.misses += 1
    after = GROUP.read(owner)
    assert before == {"hits": 0, "misses": 0}  # a copy, not a live view
    assert delta(after, before) == {"hits": 3, "misses": 1}
    assert GROUP.describe("misses") == "lookups that missed"
    GROUP.reset(owner)
    assert GROUP.read(owner) == before


def test_checkpoint_state_round_trips_and_a_bad_value_changes_nothing() -> None:
    owner = _Owner()
    owner.hits = 7
    state = GROUP.get_state(owner)
    fresh = _Owner()
    GROUP.set_state(fresh, state)
    assert GROUP.read(fresh) == {"hits": 7, "misses": 0}
    for bad in ({"hits": -1, "misses": 0}, {"hits": True, "misses": 0}, {"hits": 1}):
        with pytest.raises(ValueError):
            GROUP.set_state(fresh, bad)
        assert GROUP.read(fresh) == {"hits": 7, "misses": 0}


def test_a_counter_declared_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="twice"):
        CounterGroup(("hits", "a"), ("hits", "b"))
    with pytest.raises(ConfigError):
        delta({"hits": 1}, {"misses": 1})


def test_the_public_stats_classes_have_exactly_the_declared_counters() -> None:
    # A counter added to a group but not to its stats class (or the reverse) fails here.
    assert {f.name for f in attrs.fields(TLBStats)} == set(TLB_COUNTERS.names)
    derived = {"hits", "misses", "evictions", "tlbs"}  # sums over the TLBs, and the per-TLB
    assert {f.name for f in attrs.fields(MMUStats)} == set(MMU_COUNTERS.names) | derived
    mmu = MMU(PhysicalMemory(1 << 20), MMUConfig.pentium())
    assert set(mmu.get_state()) == {"cr0", "cr3", "cr4", "tlbs", *MMU_COUNTERS.names}
