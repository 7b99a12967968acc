"""A board changes cycles and statistics only: on fuzzed programs and on kernel workloads every
architectural result (registers, flags, memory, faults, instructions retired) equals the ideal
run's; the stalls it adds are the same whether the machine steps or runs; and a snapshot taken
with warm caches restores to identical later cycles."""

from __future__ import annotations

import hashlib

from fuzzkit import bare_machine, encodings
from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.machine import Machine
from lavsim.snapshot import Snapshot, restore_snapshot, take_snapshot

BOARD_OF = {"i486": ("486dx2-66", "486dx-50"), "pentium": ("p100",)}
SMALL_REGS = st.lists(st.one_of(st.integers(0, 0x3FFFF), st.integers(0, 2**32 - 1)),
                      min_size=8, max_size=8)


def _architecture(m: Machine) -> str:
    """Everything but the TSC (and what reads it)."""
    cpu = m.cpu
    parts = [*cpu.regs, cpu.eip, cpu.get_eflags(), cpu.cpl, cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4,
             cpu.instructions, *(s.selector for s in cpu.seg)]
    return hashlib.sha256(repr(parts).encode() + m.memory.digest().encode()).hexdigest()


def _no_tsc_reads(table: tuple[bytes, ...]) -> tuple[bytes, ...]:
    # RDTSC reads the cycle counter: its result differs between boards by design.
    return tuple(e for e in table if b"\x0f\x31" not in e)


@settings(max_examples=25, deadline=None)
@given(picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=40),
       cpl=st.sampled_from([0, 3]), regs=SMALL_REGS,
       machine=st.sampled_from([("i486", b) for b in BOARD_OF["i486"]] + [("pentium", "p100")]))
def test_fuzzed_programs_give_the_ideal_architectural_results_on_every_board(
    picks: list[int], cpl: int, regs: list[int], machine: tuple[str, str],
) -> None:
    table = _no_tsc_reads(encodings())
    code = b"".join(table[p % len(table)] for p in picks)
    profile, board = machine
    ideal = bare_machine(code, cpl, regs, profile)
    real = bare_machine(code, cpl, regs, profile, board)
    a = ideal.run(max_instructions=300)
    b = real.run(max_instructions=300)
    assert a.reason == b.reason
    assert _architecture(ideal) == _architecture(real)
    # Stalls only add cycles.
    assert real.cpu.tsc >= ideal.cpu.tsc
    assert real.hierarchy is not None
    assert real.cpu.tsc - ideal.cpu.tsc == real.hierarchy.stall_cycles


def _loop_machine(board: str) -> Machine:
    # A loop that reads, writes and copies a few KiB: misses, write-buffer stalls, REP runs.
    from lavsim.cpu.asm import assemble
    from lavsim.machine import MachineConfig

    src = """
        mov ebx, 0x20000
        mov edx, 40
    top:
        mov esi, ebx
        mov edi, 0x40000
        mov ecx, 512
        rep movsd
        mov eax, [ebx + 0x2000]
        add [ebx + 0x3000], eax
        add ebx, 0x1010
        and ebx, 0x3FFFF
        or ebx, 0x20000
        dec edx
        jnz top
        hlt
    """
    m = Machine(MachineConfig(profile="i486", memory_size=1 << 20, board=board))
    m.load(0x10000, assemble(src, origin=0x10000).code)
    m.setup_flat_protected_mode(entry=0x10000)
    return m


def test_stalls_are_the_same_whether_the_machine_steps_or_runs() -> None:
    run = _loop_machine("486dx2-66")
    run.run(max_cycles=10_000_000)
    step = _loop_machine("486dx2-66")
    step.add_observer(lambda *args: None)  # forces the per-step loop
    step.run(max_cycles=10_000_000)
    assert run.cpu.tsc == step.cpu.tsc and _architecture(run) == _architecture(step)
    assert run.hierarchy is not None and run.hierarchy.stall_cycles > 0
    ideal = _loop_machine("ideal")
    ideal.run(max_cycles=10_000_000)
    assert _architecture(ideal) == _architecture(run) and ideal.cpu.tsc < run.cpu.tsc


def test_a_snapshot_with_warm_caches_restores_to_identical_later_cycles(tmp_path: object) -> None:
    m = _loop_machine("486dx2-66")
    m.run(max_instructions=2_000)
    assert m.hierarchy is not None and m.hierarchy.code.contents()
    snap = take_snapshot(m)
    m.run(max_instructions=3_000)
    later = (m.cpu.tsc, m.hierarchy.counters(), _architecture(m))
    restore_snapshot(m, snap)
    m.run(max_instructions=3_000)
    assert (m.cpu.tsc, m.hierarchy.counters(), _architecture(m)) == later
    # Through a file, into a fresh machine of the same board.
    from pathlib import Path

    path = Path(str(tmp_path)) / "warm.npz"
    snap.save(path)
    fresh = _loop_machine("486dx2-66")
    restore_snapshot(fresh, Snapshot.load(path))
    fresh.run(max_instructions=3_000)
    assert fresh.hierarchy is not None
    assert (fresh.cpu.tsc, fresh.hierarchy.counters(), _architecture(fresh)) == later


def test_a_snapshot_taken_on_one_board_is_refused_by_a_machine_on_another() -> None:
    import pytest

    from lavsim.snapshot import SnapshotError

    m = _loop_machine("486dx2-66")
    m.run(max_instructions=100)
    other = _loop_machine("ideal")
    with pytest.raises(SnapshotError, match="board"):
        restore_snapshot(other, take_snapshot(m))


def _paged(board: str, src: str) -> Machine:
    from lavsim.cpu.asm import assemble
    from lavsim.cpu.state import CR0_PG
    from lavsim.machine import MachineConfig

    m = Machine(MachineConfig(profile="i486", memory_size=4 << 20, board=board))
    m.load(0x100000, assemble(src, origin=0x100000).code)
    m.setup_flat_protected_mode(entry=0x100000)
    pd, pt = 0x10000, 0x11000
    m.memory.write32(pd, pt | 7)
    for page in range(1024):
        m.memory.write32(pt + 4 * page, (page << 12) | 0x67)  # accessed and dirty already
    m.cpu.cr3 = pd
    m.mmu.load_cr3(pd)
    m.cpu.cr0 |= CR0_PG
    m.mmu.set_controls(m.cpu.cr0, m.cpu.cr4)
    return m


def test_on_a_machine_a_page_walk_whose_pte_hits_in_the_cache_is_cheaper() -> None:
    # Touch a page, drop its TLB entry, touch it again: the second walk reads the same PDE
    # and PTE, now in the data cache. The PTE line is then thrown out of the L1 (and there is
    # no L2 on this board) by reading 8 KiB elsewhere, and the third walk misses again.
    src = """
        mov eax, [0x200000]
        invlpg [0x200000]
        mov eax, [0x200000]
        invlpg [0x200000]
        mov esi, 0x300000
        mov ecx, 2048
    scan:
        mov eax, [esi]
        add esi, 4
        dec ecx
        jnz scan
        mov eax, [0x200000]
        hlt
    """
    m = _paged("486dx-50", src)
    h = m.hierarchy
    assert h is not None
    touches = []  # walk stall of each `mov eax, [0x200000]`
    while not m.cpu.halted:
        insn = m.memory.read8(m.cpu.eip)
        before, walked = h.walk_stall, m.mmu.walks
        m.run(max_instructions=1)
        if insn == 0xA1:  # mov eax, moffs32
            assert m.mmu.walks > walked  # each touch walks (the first also for its code)
            touches.append(h.walk_stall - before)
    assert len(touches) == 3
    assert touches[0] > 0 and touches[1] == 0 and touches[2] > 0
