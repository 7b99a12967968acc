"""Protection and coherence invariants of the MMU, for random sequences of page-table edits,
invalidations and accesses (hypothesis).

* CPL 3 (``user=True``) never reaches a page whose directory or table entry has U/S=0, when
  every edit is followed by the invalidation the architecture requires.
* Under that discipline, translation through the TLB equals a fresh page walk.
* Without it (stale entries allowed), the TLB never grants more than the tables granted when the
  entry was filled.
* The host fast path changes nothing: same outcomes, statistics, TLB contents (LRU order
  included) and memory, with it on and off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from lavsim.faults import CpuFault
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import MMU, MMUConfig
from lavsim.mmu.paging import (
    CR0_PE,
    CR0_PG,
    CR0_WP,
    CR4_PGE,
    CR4_PSE,
    PS,
    RW,
    US,
    D,
    G,
    P,
    walk,
)
from lavsim.mmu.tlb import TLBConfig

PD = 0x1000
PTS = (0x2000, 0x3000, 0x4000)  # page tables for PDE 0, 1, 2
PDE_INDEX = (0, 1, 2)
# The linear pages the sequences touch: (PDE slot, PTE index).
PAGES = [(0, 0x10 + i) for i in range(6)] + [(1, i) for i in range(3)] + [(2, i) for i in range(3)]
FRAMES = [0x0010_0000 + 0x1000 * k for k in range(8)]
LARGE_FRAMES = [0x00C0_0000, 0x0100_0000]
MEM_SIZE = 32 << 20


def linear_of(page: int, offset: int = 0) -> int:
    slot, idx = PAGES[page]
    return (PDE_INDEX[slot] << 22) | (idx << 12) | offset


CONFIGS = [
    MMUConfig.i486(),
    MMUConfig.pentium(),
    MMUConfig(tlb=TLBConfig(4, 2)),
    MMUConfig(tlb=TLBConfig(2, 1), itlb=TLBConfig(2, 2), large_dtlb=TLBConfig(2, 1)),
]

bits = st.integers(0, 15).map(
    lambda b: (P if b & 1 else 0) | (RW if b & 2 else 0) | (US if b & 4 else 0)
    | (G if b & 8 else 0)
)

edit_pte = st.tuples(
    st.just("pte"), st.integers(0, len(PAGES) - 1), bits, st.integers(0, len(FRAMES) - 1)
)
edit_pde = st.tuples(
    st.just("pde"), st.integers(0, 2), bits, st.booleans(), st.integers(0, len(LARGE_FRAMES) - 1)
)
access = st.tuples(
    st.just("access"),
    st.integers(0, len(PAGES) - 1),
    st.sampled_from([0, 4, 0x800, 0xFFC, 0xFFE, 0xFFF]),
    st.sampled_from(["translate", "read32", "write32", "read8", "write8", "read16", "write16",
                     "fetch8", "fetch32", "read"]),
    st.booleans(),
    st.integers(0, 0xFFFFFFFF),
)
invlpg = st.tuples(st.just("invlpg"), st.integers(0, len(PAGES) - 1))
other = st.sampled_from([("cr3",), ("wp",), ("pge",)])
op = st.one_of(access, access, access, edit_pte, edit_pde, invlpg, other)


@dataclass
class World:
    mem: PhysicalMemory
    mmu: MMU


def build(config: MMUConfig, pge: bool, wp: bool) -> World:
    mem = PhysicalMemory(MEM_SIZE)
    for slot, pt in enumerate(PTS):
        mem.write32(PD + 4 * PDE_INDEX[slot], pt | P | RW | US)
    for page, (slot, idx) in enumerate(PAGES):
        mem.write32(PTS[slot] + 4 * idx, FRAMES[page % len(FRAMES)] | P | RW | US)
    mmu = MMU(mem, config)
    mmu.load_cr3(PD)
    mmu.set_controls(CR0_PE | CR0_PG | (CR0_WP if wp else 0), CR4_PSE | (CR4_PGE if pge else 0))
    return World(mem, mmu)


class ReadOnly:
    """Physical memory for a reference walk: reads pass through, A/D write-backs are dropped."""

    def __init__(self, mem: PhysicalMemory) -> None:
        self.mem = mem

    def read32(self, addr: int, /) -> int:
        return self.mem.read32(addr)

    def write32(self, addr: int, value: int, /) -> None:
        pass


def reference(w: World, linear: int, write: bool, user: bool) -> Any:
    mmu = w.mmu
    return walk(ReadOnly(w.mem), mmu.cr3, linear, write, user, bool(mmu.cr0 & CR0_WP),
                bool(mmu.cr4 & CR4_PSE))


def pages_under(slot: int) -> list[int]:
    return [page for page, (s, _) in enumerate(PAGES) if s == slot]


def apply(w: World, operation: tuple[Any, ...], invalidate: bool) -> Any:
    """Apply one operation; return its observable outcome (for on/off comparison)."""
    mmu, mem = w.mmu, w.mem
    kind = operation[0]
    if kind == "pte":
        _, page, b, frame = operation
        slot, idx = PAGES[page]
        mem.write32(PTS[slot] + 4 * idx, FRAMES[frame] | b)
        if invalidate:
            mmu.invlpg(linear_of(page))
        return None
    if kind == "pde":
        _, slot, b, ps, frame = operation
        value = (LARGE_FRAMES[frame] | PS | b) if ps and slot == 2 else (PTS[slot] | b)
        mem.write32(PD + 4 * PDE_INDEX[slot], value)
        if invalidate:
            for page in pages_under(slot):
                mmu.invlpg(linear_of(page))
        return None
    if kind == "invlpg":
        mmu.invlpg(linear_of(operation[1]))
        return None
    if kind == "cr3":
        mmu.load_cr3(PD)
        return None
    if kind == "wp":
        mmu.set_controls(mmu.cr0 ^ CR0_WP, mmu.cr4)
        return None
    if kind == "pge":
        mmu.set_controls(mmu.cr0, mmu.cr4 ^ CR4_PGE)
        return None
    _, page, offset, how, user, value = operation
    linear = linear_of(page, offset)
    try:
        if how == "translate":
            return mmu.translate(linear, bool(value & 1), user, fetch=bool(value & 2))
        if how == "read":
            return mmu.read(linear, 4, user)
        method = getattr(mmu, how)
        if how.startswith("write"):
            method(linear, value, user)
            return None
        return method(linear, user)
    except CpuFault as fault:
        return fault


def access_kind(operation: tuple[Any, ...]) -> tuple[int, bool, bool, bool, int]:
    """(linear, write, user, fetch, size) of an access operation."""
    _, page, offset, how, user, value = operation
    if how == "translate":
        return linear_of(page, offset), bool(value & 1), user, bool(value & 2), 1
    size = {"8": 1, "16": 2, "32": 4}.get(how.removeprefix("read").removeprefix("write")
                                          .removeprefix("fetch"), 4)
    return linear_of(page, offset), how.startswith("write"), user, how.startswith("fetch"), size


def touched_linears(linear: int, size: int) -> list[int]:
    last = (linear + size - 1) & 0xFFFFFFFF
    return [linear] if last >> 12 == linear >> 12 else [linear, last & ~0xFFF]


scenario = st.tuples(
    st.sampled_from(CONFIGS),
    st.booleans(),
    st.booleans(),
    st.lists(op, min_size=30, max_size=100),
)


@given(scenario)
def test_user_access_never_reaches_a_supervisor_page(case: Any) -> None:
    config, pge, wp, ops = case
    w = build(config, pge, wp)
    for operation in ops:
        outcome = apply(w, operation, invalidate=True)
        if operation[0] != "access" or isinstance(outcome, CpuFault):
            continue
        linear, _, user, _, size = access_kind(operation)
        if not user:
            continue
        for lin in touched_linears(linear, size):
            pde = w.mem.read32(PD + 4 * (lin >> 22))
            assert pde & US, f"user access at {lin:#x} through a supervisor PDE"
            if not pde & PS:
                pte = w.mem.read32((pde & ~0xFFF) + 4 * ((lin >> 12) & 0x3FF))
                assert pte & US, f"user access at {lin:#x} through a supervisor PTE"


@given(scenario)
def test_tlb_translation_equals_a_fresh_walk_after_required_invalidation(case: Any) -> None:
    config, pge, wp, ops = case
    w = build(config, pge, wp)
    for operation in ops:
        if operation[0] != "access":
            apply(w, operation, invalidate=True)
            continue
        linear, write, user, _, size = access_kind(operation)
        pieces = touched_linears(linear, size)
        expected = [reference(w, lin, write, user) for lin in pieces]
        outcome = apply(w, operation, invalidate=True)
        first_fault = next((r.fault for r in expected if r.fault is not None), None)
        if first_fault is not None:
            assert outcome == first_fault
        else:
            assert not isinstance(outcome, CpuFault), outcome
            if operation[3] == "translate":
                assert outcome == expected[0].physical
            elif write:
                for lin in pieces:  # the write left D set in the entry that maps the page
                    pde = w.mem.read32(PD + 4 * (lin >> 22))
                    if pde & PS:
                        assert pde & D
                    else:
                        assert w.mem.read32((pde & ~0xFFF) + 4 * ((lin >> 12) & 0x3FF)) & D
            else:
                first = min(size, 0x1000 - (linear & 0xFFF))
                data = w.mem.read(expected[0].physical, first)
                if len(pieces) == 2:
                    data += w.mem.read(expected[1].physical, size - first)
                assert outcome == int.from_bytes(data, "little")


@given(scenario)
def test_tlb_never_grants_more_than_the_tables_did_at_fill_time(case: Any) -> None:
    config, pge, wp, ops = case
    w = build(config, pge, wp)
    before = {name: tlb.contents() for name, tlb in w.mmu.tlbs.items()}
    for operation in ops:
        # Edits are NOT invalidated here: stale entries are expected, over-granting is not.
        outcome = apply(w, operation, invalidate=False)
        after = {name: tlb.contents() for name, tlb in w.mmu.tlbs.items()}
        if operation[0] == "access":
            old = {(name, key, e) for name, sets in before.items() for s in sets for key, e in s}
            for name, sets in after.items():
                shift = w.mmu.tlbs[name].page_shift
                for s in sets:
                    for key, e in s:
                        if (name, key, e) in old:
                            continue
                        # Filled (or refilled) by this access: must equal the tables right now.
                        ref = reference(w, key << shift, False, False)
                        assert ref.fault is None
                        base = ref.large_base if shift == 22 else ref.frame
                        assert (e.base, e.us, e.rw, e.g) == (base, ref.us, ref.rw, ref.g)
                        assert ref.d or not e.d  # D is cached as 1 only once the tables hold it
            if not isinstance(outcome, CpuFault):
                linear, write, user, fetch, size = access_kind(operation)
                for lin in touched_linears(linear, size):
                    held = entry_for(w.mmu, lin, fetch)
                    assert held is not None
                    if user:
                        assert held.us
                        assert held.rw or not write
                    elif write and w.mmu.cr0 & CR0_WP:
                        assert held.rw
        before = after


def entry_for(mmu: MMU, linear: int, fetch: bool) -> Any:
    tlbs = mmu.tlbs
    names = ["itlb"] if fetch and "itlb" in tlbs else [n for n in tlbs if n != "itlb"]
    for name in names:
        tlb = tlbs[name]
        key = linear >> tlb.page_shift
        for s in tlb.contents():
            for k, e in s:
                if k == key:
                    return e
    return None


@given(scenario, st.booleans())
def test_fast_path_on_and_off_give_identical_results_and_stats(case: Any, invalidate: bool
                                                               ) -> None:
    config, pge, wp, ops = case
    worlds = [build(attr_replace(config, fast_path=flag), pge, wp) for flag in (True, False)]
    for operation in ops:
        outcomes = [apply(w, operation, invalidate) for w in worlds]
        assert outcomes[0] == outcomes[1], operation
    fast, slow = worlds
    assert fast.mmu.stats == slow.mmu.stats
    for name, tlb in fast.mmu.tlbs.items():
        assert tlb.contents() == slow.mmu.tlbs[name].contents()
    assert fast.mem.digest() == slow.mem.digest()


def attr_replace(config: MMUConfig, **changes: Any) -> MMUConfig:
    return attrs.evolve(config, **changes)


def test_fast_path_is_actually_used_and_counts_hits() -> None:
    w = build(MMUConfig.pentium(), pge=False, wp=True)
    lin = linear_of(0)
    w.mmu.write32(lin, 1, True)
    hits = w.mmu.stats.hits
    for _ in range(100):
        w.mmu.read32(lin, True)
    assert w.mmu.stats.hits == hits + 100
    assert lin >> 12 in w.mmu._dfast  # the MRU entry is on the fast path
