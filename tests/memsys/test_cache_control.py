"""INVD and WBINVD on a board with caches: WBINVD writes the dirty lines back (and the CPU
waits for them), INVD drops them without a write-back; both empty L1 and L2; neither changes
memory (lavsim's caches hold tags only, so INVD cannot lose data: the departure documented in
lavsim.memsys.hierarchy). On the ideal board they cost their profile cycles and nothing else."""

from __future__ import annotations

import pytest
from bare_machines import ENTRY, machine

from lavsim.cpu.asm import assemble
from lavsim.machine import Machine

DATA = 0x30000
# Dirty 8 lines of the Pentium's write-back data cache (32-byte lines: a read allocates the
# line, a write miss would not), then flush.
_DIRTY = "".join(f"mov eax, dword ptr [{DATA + 32 * k:#x}]\n"
                 f"mov dword ptr [{DATA + 32 * k:#x}], {k + 1}\n" for k in range(8))


def _run(flush: str, board: str, profile: str = "pentium") -> Machine:
    code = assemble(f"{_DIRTY}{flush}\nhlt\n", ENTRY).code
    m = machine(code, board=board, profile=profile)
    m.run(max_instructions=100)
    assert m.cpu.halted
    return m


def _flush_cycles(flush: str, board: str, profile: str = "pentium") -> int:
    """TSC of the program with ``flush`` minus the same program without it (the flush's own
    cycles, with whatever the hierarchy charged)."""
    return _run(flush, board, profile).cpu.tsc - _run("", board, profile).cpu.tsc


def test_wbinvd_writes_the_dirty_lines_back_and_invd_does_not() -> None:
    wb = _run("wbinvd", "p100").hierarchy
    inv = _run("invd", "p100").hierarchy
    assert wb is not None and inv is not None
    assert wb.data.writebacks == 8 and inv.data.writebacks == 0
    for h in (wb, inv):
        # Only the line of the HLT after the flush came back into the code cache.
        assert h.data.contents() == [] and len(h.code.contents()) == 1
        assert h.data.invalidations == h.code.invalidations == 1
        assert h.l2 is not None and h.l2.invalidations == 1 and len(h.l2.contents()) == 1


def test_wbinvd_costs_its_base_plus_the_write_back_bus_time_and_invd_its_base() -> None:
    m = _run("", "p100")
    base_wb = m.cpu.profile.table["wbinvd"]
    base_inv = m.cpu.profile.table["invd"]
    # Eight line bursts go out before WBINVD completes; INVD waits only for the buffers.
    assert _flush_cycles("wbinvd", "p100") > base_wb + 8
    assert _flush_cycles("invd", "p100") < _flush_cycles("wbinvd", "p100") - base_wb + base_inv


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_on_the_ideal_board_invd_and_wbinvd_cost_their_profile_cycles_only(profile: str) -> None:
    m = _run("", "ideal", profile)
    assert m.hierarchy is None
    issue = m.cpu.profile.issue
    # The Pentium issue model counts the 0F byte as a prefix (a decode clock).
    extra = 1 if issue is not None and issue.zero_f_prefix else 0
    for name in ("invd", "wbinvd"):
        assert _flush_cycles(name, "ideal", profile) == m.cpu.profile.table[name] + extra


@pytest.mark.parametrize("flush", ["invd", "wbinvd"])
def test_invd_and_wbinvd_change_no_memory(flush: str) -> None:
    m = _run(flush, "p100")
    assert [m.memory.read32(DATA + 32 * k) for k in range(8)] == list(range(1, 9))
