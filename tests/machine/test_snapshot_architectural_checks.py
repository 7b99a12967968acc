"""A snapshot that lies (its checksum recomputed, so the file is "intact") is refused when it
describes a state no run can reach: restore checks the architectural consistency of what it
installs (CPL against CS and SS, CR0/CR4, EFLAGS, segment caches against their types, TR and
LDTR, TLB entries, the triple-fault report) and changes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from letters import letters_system

from lavsim.cpu.checkpoint import SEGMENT_FIELDS
from lavsim.machine import Machine
from lavsim.snapshot import Snapshot, SnapshotError, restore_snapshot, take_snapshot

ES, CS, SS, DS = 0, 1, 2, 3
F = {name: k for k, name in enumerate(SEGMENT_FIELDS)}


def user_mode_machine() -> Machine:
    """The letters workload stopped while a user thread runs (CPL 3)."""
    system, _ = letters_system(timer_period=700)
    m = system.machine
    for _ in range(200):
        m.run(max_instructions=37)
        if m.cpu.cpl == 3:
            return m
    raise AssertionError("never at CPL 3")


def seg(state: dict[str, Any], index: int, **fields: object) -> None:
    for name, value in fields.items():
        state["cpu"]["seg"][index][F[name]] = value


def cpu(state: dict[str, Any], **fields: object) -> None:
    state["cpu"].update(fields)


LIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "CPL 3 with a ring-0 CS": lambda s: seg(s, CS, dpl=0, selector=0x08),
    "CPL 0 with a ring-3 CS": lambda s: cpu(s, cpl=0),
    "CS RPL differs from CPL": lambda s: seg(s, CS, selector=s["cpu"]["seg"][CS][0] & ~3),
    "CS is a data segment": lambda s: seg(s, CS, type=3),
    "CS is not present": lambda s: seg(s, CS, present=False),
    "CS is a system segment": lambda s: seg(s, CS, s=False, type=9),
    "SS of another ring": lambda s: seg(s, SS, dpl=0),
    "SS read-only": lambda s: seg(s, SS, type=1),
    "SS unusable": lambda s: seg(s, SS, valid=False),
    "DS more privileged than CPL": lambda s: seg(s, DS, dpl=0),
    "ES an execute-only code segment": lambda s: seg(s, ES, type=9, dpl=3),
    "limit not scaled by G": lambda s: seg(s, DS, g=True, limit=0x1000),
    "byte-granular limit above 1 MiB": lambda s: seg(s, DS, g=False, limit=0x100000),
    "paging without protected mode": lambda s: (cpu(s, cr0=s["cpu"]["cr0"] & ~1),
                                                s["mmu"].update(cr0=s["mmu"]["cr0"] & ~1)),
    "NW without CD": lambda s: (cpu(s, cr0=s["cpu"]["cr0"] | 1 << 29),
                                s["mmu"].update(cr0=s["mmu"]["cr0"] | 1 << 29)),
    "an unknown CR4 bit": lambda s: (cpu(s, cr4=s["cpu"]["cr4"] | 1 << 5),
                                     s["mmu"].update(cr4=s["mmu"]["cr4"] | 1 << 5)),
    "EFLAGS bit 1 clear": lambda s: cpu(s, eflags=s["cpu"]["eflags"] & ~2),
    "EFLAGS reserved bit 3": lambda s: cpu(s, eflags=s["cpu"]["eflags"] | 8),
    "EFLAGS VM set": lambda s: cpu(s, eflags=s["cpu"]["eflags"] | 1 << 17),
    "TR is not a TSS": lambda s: s["cpu"]["tr"].__setitem__(F["type"], 2),
    "LDTR is not an LDT": lambda s: s["cpu"].__setitem__(
        "ldtr", [0x28, 0, 0xFFF, 9, False, 0, True, False, False, False, True]),
    "CPU and MMU disagree on CR3": lambda s: cpu(s, cr3=s["cpu"]["cr3"] ^ 0x1000),
    "a TLB entry with an unaligned frame": lambda s: s["mmu"]["tlbs"]["tlb"]["sets"][0].__setitem__(
        slice(None), [[0, 0x1234, True, True, True, False, False]]),
    "a report without a shutdown": lambda s: cpu(s, shutdown=None, shutdown_report={
        "chain": [], "cs": 8, "eip": 0, "cpl": 0, "cr2": 0, "tsc": 0, "instructions": 0}),
    "a mistyped triple-fault report": lambda s: cpu(s, shutdown="triple fault", shutdown_report={
        "chain": [{"vector": 13, "error_code": "zero", "cr2": None, "kind": "exception"}],
        "cs": 8, "eip": 0, "cpl": 0, "cr2": 0, "tsc": 0, "instructions": 0}),
    "a triple-fault report of an unknown kind": lambda s: cpu(
        s, shutdown="triple fault", shutdown_report={
            "chain": [{"vector": 300, "error_code": None, "cr2": None, "kind": "sneeze"}],
            "cs": 8, "eip": 0, "cpl": 0, "cr2": 0, "tsc": 0, "instructions": 0}),
}


@pytest.fixture(scope="module")
def machine_and_snapshot() -> tuple[Machine, Snapshot]:
    m = user_mode_machine()
    return m, take_snapshot(m)


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_snapshot_of_an_impossible_state_is_refused_and_changes_nothing(
    lie: str, machine_and_snapshot: tuple[Machine, Snapshot], tmp_path: Path
) -> None:
    m, good = machine_and_snapshot
    state = copy.deepcopy(dict(good.state))
    LIES[lie](state)
    # Written to a file, so the checksum is recomputed: the file itself is intact.
    path = tmp_path / "lie.npz"
    Snapshot(good.config, state, good.frames, good.console).save(path)
    crafted = Snapshot.load(path)
    before = take_snapshot(m).digest()
    with pytest.raises(SnapshotError, match=r"malformed|inconsistent"):
        restore_snapshot(m, crafted)
    assert take_snapshot(m).digest() == before


def test_snapshots_of_real_runs_pass_the_checks(
    machine_and_snapshot: tuple[Machine, Snapshot],
) -> None:
    m, good = machine_and_snapshot
    system, _ = letters_system(timer_period=700)
    other = system.machine
    for budget in (1, 500, 7_000, 50_000, 3_000_000):
        other.run(max_cycles=budget)
        snap = take_snapshot(other)
        restore_snapshot(m, snap)
        assert take_snapshot(m).digest() == snap.digest()
    restore_snapshot(m, good)
