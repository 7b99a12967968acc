"""Checkpoints: take_snapshot/restore_snapshot, Snapshot files, LavenderSystem.snapshot/restore.

The rule checked everywhere: run A, snapshot, run B; restore, run B again; everything a run can
change (cycles, registers, memory, TLB contents in LRU order and statistics, devices, console)
comes out identical, in memory, through a file, and in a freshly built machine.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bare_machines import ENTRY, machine, timer_machine
from letters import WORKER, letters_system

from lavsim.cpu.asm import assemble
from lavsim.kernel import LavenderSystem
from lavsim.machine import Machine, MachineConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.snapshot import (
    SNAPSHOT_VERSION,
    Snapshot,
    SnapshotError,
    restore_snapshot,
    take_snapshot,
)


def full_state(m: Machine) -> tuple[Any, ...]:
    """Everything simulated that a run can change, in comparable form."""
    cpu = m.cpu

    def seg(s: SegmentCache) -> tuple[Any, ...]:
        return (s.selector, s.base, s.limit, s.type, s.dpl, s.present, s.db, s.g, s.valid,
                s.min_off, s.max_off)

    tlbs = {name: (tlb.contents(), tlb.stats()) for name, tlb in m.mmu.tlbs.items()}
    return (
        list(cpu.regs), cpu.eip, cpu.get_eflags(), cpu.cpl, [seg(s) for s in cpu.seg],
        seg(cpu.ldtr), seg(cpu.tr), cpu.gdtr_base, cpu.gdtr_limit, cpu.idtr_base,
        cpu.idtr_limit, cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4, cpu.tsc, cpu.instructions,
        cpu.halted, cpu.irq_pending, cpu.shutdown, m.memory.digest(), m.mmu.stats, tlbs,
        (m.mmu.cr0, m.mmu.cr3, m.mmu.cr4), m.console, m.pic.get_state(), m.timer.get_state(),
        m.idle_cycles, m.stats(),
    )  # fmt: skip


def _kernel_machine(profile: str = "i486") -> Machine:
    system, _ = letters_system(timer_period=700)
    if profile != "i486":
        system = LavenderSystem(profile=profile, memory_size=8 << 20, timer_period=600)
        for letter in "ab":
            group = system.create_group()
            process = system.create_process(group, WORKER, data_size=16, max_threads=2)
            system.create_thread(process, "main", args=(ord(letter),))
    return system.machine


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_run_a_snapshot_run_b_restore_run_b_again_is_identical(profile: str) -> None:
    m = _kernel_machine(profile)
    m.run(max_cycles=12_345)
    snap = take_snapshot(m)
    first = m.run(max_cycles=25_000)
    after_b = full_state(m)
    restore_snapshot(m, snap)
    assert take_snapshot(m).digest() == snap.digest(), "restore gives back exactly the snapshot"
    second = m.run(max_cycles=25_000)
    assert first == second
    assert full_state(m) == after_b
    # A snapshot can be restored again and again.
    restore_snapshot(m, snap)
    assert m.run(max_cycles=25_000) == first and full_state(m) == after_b


def test_a_snapshot_file_restores_into_a_freshly_built_machine(tmp_path: Path) -> None:
    m = _kernel_machine("pentium")
    m.run(max_cycles=9_000)
    snap = take_snapshot(m)
    path = tmp_path / "cp.npz"
    snap.save(path)
    expected = m.run(max_cycles=30_000)
    after_b = full_state(m)
    loaded = Snapshot.load(path)
    assert loaded.digest() == snap.digest()
    assert loaded.state == snap.state and loaded.frames == snap.frames
    fresh = Machine(m.config)
    restore_snapshot(fresh, loaded)
    assert fresh.run(max_cycles=30_000) == expected
    assert full_state(fresh) == after_b
    # ... and into the original machine too.
    restore_snapshot(m, loaded)
    assert m.run(max_cycles=30_000) == expected and full_state(m) == after_b


def test_snapshot_settles_lazy_flags_and_keeps_the_timer_phase() -> None:
    code = assemble("mov eax, 0xffffffff\nadd eax, 1\nsti\nidle: hlt\njmp idle\n",
                    origin=ENTRY).code
    m = timer_machine(1000)
    m.load(ENTRY, code)
    m.run(max_instructions=2)
    assert m.cpu.lazy_flags is not None, "the add left its flags lazy"
    snap = take_snapshot(m)
    assert snap.state["cpu"]["eflags"] & 0x41 == 0x41  # CF and ZF, settled
    fresh = Machine(m.config)
    restore_snapshot(fresh, snap)
    assert fresh.cpu.get_eflags() == m.cpu.get_eflags()
    assert fresh.run(max_cycles=5_500) == m.run(max_cycles=5_500)
    assert full_state(fresh) == full_state(m)


def test_restore_drops_decoded_instructions_and_the_mmu_fast_path() -> None:
    old = assemble("mov eax, 1\ncli\nhlt\n", origin=ENTRY).code
    new = assemble("mov eax, 2\ncli\nhlt\n", origin=ENTRY).code
    m = machine(old)
    snap = take_snapshot(m)
    m.load(ENTRY, new)
    m.run()
    assert m.cpu.regs[0] == 2
    restore_snapshot(m, snap)
    m.run()
    assert m.cpu.regs[0] == 1, "a decoded instruction of the newer code survived the restore"
    restore_snapshot(m, snap)
    assert not m.cpu._icache
    assert not m.mmu._identity and not m.mmu._dfast_paged and not m.mmu._ifast_paged


def test_a_triple_fault_and_its_report_survive_a_file(tmp_path: Path) -> None:
    m = machine(bytes([0xCD, 0x30]))  # int 0x30 through an empty IDT
    result = m.run(max_instructions=10)
    assert result.reason == "triple_fault"
    take_snapshot(m).save(tmp_path / "tf.npz")
    fresh = Machine(m.config)
    restore_snapshot(fresh, Snapshot.load(tmp_path / "tf.npz"))
    again = fresh.run()
    assert again.reason == "triple_fault" and again.report == result.report
    assert fresh.cpu.shutdown == m.cpu.shutdown


def test_the_snapshot_knows_every_attribute_of_the_simulated_parts() -> None:
    """A new piece of simulated state must be added to the snapshot: this fails until it is."""
    m = _kernel_machine("pentium")
    m.run(max_cycles=5_000)
    # Private attributes are host-side speed caches by convention; public ones are simulated
    # state unless listed here as host settings (or derived: lazy_flags, user).
    cpu_host = {"mmu", "profile", "cpuid_signature", "io_read", "io_write", "ack_interrupt",
                "decode_cache", "fast", "far_fast", "translate", "lazy_flags", "user",
                "issue_log",
                "code_cache_limit",
                "block_stops", "unretired"}  # Machine.run's block-observer hook
    cpu_saved = set(take_snapshot(m).state["cpu"]) | {"gdtr_base", "gdtr_limit", "idtr_base",
                                                  "idtr_limit"}
    assert "btb" in take_snapshot(m).state["cpu"]["issue"]
    cpu_saved |= {"btb"}  # saved inside "issue" with the pending pair and the interlock
    public = {name for name in vars(m.cpu) if not name.startswith("_")}
    assert public - cpu_host <= cpu_saved
    assert public <= cpu_saved | cpu_host
    tlb_slots = {"_large_pieces", "_nsets", "_sets", "config", "evictions", "flushes", "hits",
                 "invlpgs", "misses", "name", "on_demote", "on_drop", "page_shift"}
    assert set(type(m.mmu.tlbs["dtlb"]).__slots__) == tlb_slots
    mmu_slots = set(type(m.mmu).__slots__)
    # data_page / code_page: the host fast path's public lookups (host-side, not saved);
    # traces_fetch: derived from the attached tracers (host-side); fetch_page: code_page's
    # lookup kept with tracers (host-side); emit_insn / emit_read / emit_write: the tracers'
    # INSN, READ and WRITE reports (host-side);
    # hot_filter: the only tracer's AccessFilter (derived from the attached tracers, host-side).
    known = {"ad_writes", "code_page", "config", "cr0", "cr3", "cr4", "data_page", "traces_fetch",
             "fetch_page", "frame_page", "tracing", "emit_insn", "emit_read", "emit_write",
             "hot_filter",
             "dirty_walks", "flushes", "invlpgs", "memory", "page_faults", "walk_reads", "walks",
             # PCD/PWT records: saved in the MMU state once a page has the bits
             "page_cache", "large_page_cache"}
    assert {s for s in mmu_slots if not s.startswith("_")} == known
    assert set(vars(m.pic)) == {"base", "irr", "isr", "imr", "lost", "acknowledged",
                                "_read_isr", "_icw", "_need_icw3", "_need_icw4"}
    assert set(vars(m.timer)) == {"pic", "clock", "line", "period", "next_event", "ticks"}
    machine_host = {"config", "model", "profile", "memory", "mmu", "cpu", "pic", "timer",
                    "console_device", "bus", "breakpoints", "trace", "_observers",
                    "_block_observers", "_plan"}
    # hierarchy: the board's caches, saved as the "memsys" part.
    assert set(vars(m)) == machine_host | {"idle_cycles", "hierarchy"}


# --- refusals ---------------------------------------------------------------------------------


def test_a_snapshot_of_another_configuration_is_refused_and_changes_nothing() -> None:
    m = machine(bytes([0x90, 0xFA, 0xF4]))
    snap = take_snapshot(m)
    for config in (MachineConfig(memory_size=2 << 20), MachineConfig(profile="pentium",
                                                                     memory_size=1 << 20)):
        other = Machine(config)
        before = full_state(other)
        with pytest.raises(SnapshotError, match=r"memory_size|profile"):
            restore_snapshot(other, snap)
        assert full_state(other) == before


def test_a_malformed_snapshot_is_refused_and_changes_nothing() -> None:
    m = _kernel_machine()
    m.run(max_cycles=3_000)
    snap = take_snapshot(m)
    m.run(max_cycles=1_000)
    before = full_state(m)
    bad_state = json.loads(json.dumps(snap.state))
    bad_state["mmu"]["tlbs"]["tlb"]["sets"][0].append([1, 0, True, True, True, False, False])
    bad_state["mmu"]["tlbs"]["tlb"]["sets"][0] *= 5  # more entries than ways
    for state in (bad_state, {**snap.state, "cpu": {**snap.state["cpu"], "regs": [0] * 7}},
                  {**snap.state, "pic": {}}):
        broken = Snapshot(snap.config, state, snap.frames, snap.console)
        with pytest.raises(SnapshotError, match="malformed"):
            restore_snapshot(m, broken)
        assert full_state(m) == before
    with pytest.raises(SnapshotError):
        restore_snapshot(m, "not a snapshot")  # type: ignore[arg-type]


def _rewrite(src: Path, dst: Path, **changes: Any) -> None:
    with np.load(src, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(changes)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


def test_corrupt_truncated_foreign_and_other_version_files_are_refused(tmp_path: Path) -> None:
    m = machine(bytes([0x90, 0xFA, 0xF4]))
    m.run()
    good = tmp_path / "good.npz"
    take_snapshot(m).save(good)
    raw = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    text = tmp_path / "text.npz"
    text.write_text("hello")
    flipped = tmp_path / "flipped.npz"
    with np.load(good) as archive:
        frames = archive["frames"].copy()
        meta = json.loads(archive["meta"].tobytes())
    frames[0, 7] ^= 0xFF
    _rewrite(good, flipped, frames=frames)
    version = tmp_path / "version.npz"
    meta["version"] = SNAPSHOT_VERSION + 1
    _rewrite(good, version, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    pickled = tmp_path / "pickled.npz"
    _rewrite(good, pickled, meta=np.array([{"format": "lavsim-snapshot"}], dtype=object))
    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as z:
        z.writestr("meta.npy", b"not an array")

    cases = {
        truncated: "cannot read", text: "cannot read", flipped: "corrupt",
        version: "version", foreign: "not a lavsim snapshot", pickled: "meta: must be a",
        tmp_path / "zip.npz": "not a lavsim snapshot|cannot read",
        tmp_path / "missing.npz": "cannot read",
    }  # fmt: skip
    for path, message in cases.items():
        with pytest.raises(SnapshotError, match=message):
            Snapshot.load(path)
    assert Snapshot.load(good).digest() == take_snapshot(m).digest()


# --- LavenderSystem ---------------------------------------------------------------------------


def _quiescent(system: LavenderSystem) -> None:
    while system.machine.cpu.cpl == 0 and not system.machine.cpu.halted:
        system.run(max_instructions=1)


def _add_work(system: LavenderSystem, letter: str) -> None:
    group = system.create_group()
    process = system.create_process(group, WORKER, data_size=16)
    system.create_thread(process, "main", args=(ord(letter),))


def test_system_snapshot_restores_bookkeeping_and_handles_stay_valid() -> None:
    system, _ = letters_system(timer_period=700)
    system.run(max_cycles=15_000)
    _quiescent(system)
    snap = system.snapshot()
    bookkeeping = (len(system.groups), sorted(system.processes), sorted(system.threads),
                   system.frames.available, system.frames.in_use, system._next_pid)
    some_process = next(iter(system.processes.values()))
    stats_at_snapshot = system.stats()

    _add_work(system, "z")
    first = system.run(max_cycles=3_000_000)
    after = (full_state(system.machine), system.stats(), system.console,
             [system.thread_state(t) for t in sorted(system.threads)])
    assert first.status == "done" and "z" in system.console

    system.restore(snap)
    assert (len(system.groups), sorted(system.processes), sorted(system.threads),
            system.frames.available, system.frames.in_use, system._next_pid) == bookkeeping
    assert system.stats() == stats_at_snapshot
    assert system.processes[some_process.pid] is some_process, "handles are restored in place"
    _add_work(system, "z")
    assert system.run(max_cycles=3_000_000) == first
    assert (full_state(system.machine), system.stats(), system.console,
            [system.thread_state(t) for t in sorted(system.threads)]) == after


@pytest.mark.parametrize("board", ["486dx2-66"])
def test_a_kernel_snapshot_with_warm_caches_restores_to_identical_later_cycles(board: str) -> None:
    # Preemptive scheduling on a board: the timer ticks depend on the stall cycles, so a
    # restored hierarchy that differed in any line would show in the schedule and the cycles.
    system, _ = letters_system(timer_period=700, board=board)
    system.run(max_cycles=15_000)
    hierarchy = system.machine.hierarchy
    assert hierarchy is not None and hierarchy.stall_cycles > 0
    snap = system.snapshot()
    first = system.run(max_cycles=400_000)
    after = (full_state(system.machine), hierarchy.counters(), system.console)
    system.restore(snap)
    assert system.run(max_cycles=400_000) == first
    assert (full_state(system.machine), hierarchy.counters(), system.console) == after


def test_a_system_snapshot_belongs_to_its_system() -> None:
    a, _ = letters_system(timer_period=0)
    b, _ = letters_system(timer_period=0)
    snap = a.snapshot()
    before = full_state(b.machine)
    with pytest.raises(SnapshotError, match="another system"):
        b.restore(snap)
    assert full_state(b.machine) == before


def test_a_snapshot_keeps_the_btb_and_the_pending_pair() -> None:
    from lavsim.cpu.asm import assemble

    code = assemble("top: mov eax,1\nxor edx,1\njz top\ninc ebx\nmov esi,2\njmp top\n",
                    0x10000).code
    m = Machine(MachineConfig(profile="pentium", memory_size=1 << 20))
    m.load(0x10000, code)
    m.setup_flat_protected_mode(entry=0x10000)
    m.run(max_instructions=40)
    while m.cpu.issue_state()["pair_u"] is None:  # stop between a U instruction and its V
        m.step()
    snap = take_snapshot(m)
    assert snap.state["cpu"]["issue"]["btb"]["lookups"] > 0
    assert snap.state["cpu"]["issue"]["pair_u"] is not None
    fresh = Machine(MachineConfig(profile="pentium", memory_size=1 << 20))
    restore_snapshot(fresh, snap)
    assert fresh.cpu.btb is not None and m.cpu.btb is not None
    assert fresh.cpu.btb.get_state() == m.cpu.btb.get_state()
    m.run(max_instructions=100)
    fresh.run(max_instructions=100)
    assert fresh.cpu.tsc == m.cpu.tsc and fresh.state_digest() == m.state_digest()


def test_a_malformed_issue_state_is_refused_and_changes_nothing() -> None:
    import copy

    m = _kernel_machine("pentium")
    m.run(max_cycles=3_000)
    snap = take_snapshot(m)
    other = _kernel_machine("pentium")
    before = other.state_digest()
    for field, value in (("agi", [1]), ("pair_u", [1, 2]), ("btb", {"sets": [[[1, 9]]],
                                                                     "lookups": 0,
                                                                     "mispredicts": 0})):
        bad = copy.deepcopy(snap)
        bad.state["cpu"]["issue"][field] = value
        with pytest.raises(SnapshotError):
            restore_snapshot(other, bad)
        assert other.state_digest() == before
