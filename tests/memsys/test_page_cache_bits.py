"""PCD and PWT in a PTE reach the board's hierarchy (SDM Vol. 3 §11.5.1): a read from a PCD
page allocates no line, a write to a PWT page goes to memory through the write buffer even in
the Pentium's write-back data cache, and the MMU's record of the bits is saved with its state.
Architectural results do not change (memory is the backing store)."""

from __future__ import annotations

import pytest

from lavsim.cpu.asm import assemble
from lavsim.machine import Machine, MachineConfig
from lavsim.memsys import MemoryHierarchy
from lavsim.mmu.paging import PCD, PWT

CODE = 0x10000
DATA = 0x30000
_PD = 0x100000
_PT = 0x101000


def _run(source: str, bits: int, board: str = "p100") -> Machine:
    m = Machine(MachineConfig(memory_size=4 << 20, profile="pentium", board=board))
    m.setup_flat_protected_mode(entry=CODE, stack_top=0x80000)
    for k in range(1024):  # identity map of the first 4 MiB
        flags = 3 | (bits if k == DATA >> 12 else 0)
        m.memory.write(_PT + 4 * k, ((k << 12) | flags).to_bytes(4, "little"))
    m.memory.write(_PD, (_PT | 3).to_bytes(4, "little"))
    m.load(CODE, assemble(source + "\nhlt\n", CODE).code)
    cpu = m.cpu
    cpu.cr3 = _PD
    cpu.mmu.load_cr3(_PD)
    cpu.cr0 |= 1 << 31
    cpu.mmu.set_controls(cpu.cr0, cpu.cr4)
    cpu.flush_decode_cache()
    m.run(max_instructions=100)
    assert cpu.halted
    return m


def _h(m: Machine) -> MemoryHierarchy:
    assert m.hierarchy is not None
    return m.hierarchy


_READS = f"mov eax, dword ptr [{DATA:#x}]\nmov ebx, dword ptr [{DATA + 4:#x}]"
_READ_WRITE = f"mov eax, dword ptr [{DATA:#x}]\nmov dword ptr [{DATA:#x}], 7"


def test_reads_from_a_pcd_page_allocate_no_line_and_miss_every_time() -> None:
    cached, uncached = _h(_run(_READS, 0)), _h(_run(_READS, PCD))
    line = DATA - DATA % cached.data.config.line
    assert (line, False) in cached.data.contents()
    assert all(addr != line for addr, _ in uncached.data.contents())
    assert uncached.data.read_misses == cached.data.read_misses + 1


def test_reading_one_line_of_a_pcd_page_four_times_costs_more_than_one_fill() -> None:
    # Each uncached read is a single transfer (two cost about one burst fill on the P100).
    reads = "\n".join(f"mov eax, dword ptr [{DATA + 4 * k:#x}]" for k in range(4))
    assert _run(reads, PCD).cpu.tsc > _run(reads, 0).cpu.tsc


def test_a_write_hit_to_a_pwt_page_writes_through_and_leaves_the_line_clean() -> None:
    back, through = _h(_run(_READ_WRITE, 0)), _h(_run(_READ_WRITE, PWT))
    line = DATA - DATA % back.data.config.line
    assert (line, True) in back.data.contents() and back.buffered_writes == 0
    assert (line, False) in through.data.contents() and through.buffered_writes >= 1


def test_a_write_to_a_pcd_page_goes_to_memory() -> None:
    h = _h(_run(f"mov eax, dword ptr [{DATA:#x}]\nmov dword ptr [{DATA:#x}], 7", PCD))
    assert h.buffered_writes >= 1
    assert all(addr >> 12 != DATA >> 12 for addr, _ in h.data.contents())


@pytest.mark.parametrize("bits", [PCD, PWT, PCD | PWT])
def test_page_cache_bits_change_no_architectural_result(bits: int) -> None:
    m, ref = _run(_READ_WRITE, bits), _run(_READ_WRITE, 0)
    assert m.cpu.regs == ref.cpu.regs and m.memory.read32(DATA) == ref.memory.read32(DATA) == 7


def test_the_mmu_records_the_bits_at_the_tlb_fill_and_saves_them_with_its_state() -> None:
    m = _run(_READS, PCD | PWT)
    assert m.mmu.page_cache == {DATA >> 12: PCD | PWT}
    state = m.mmu.get_state()
    assert state["page_cache"] == [[DATA >> 12, PCD | PWT]]
    other = _run("nop", 0)
    assert "page_cache" not in other.mmu.get_state()  # absent while no page has the bits
    other.mmu.set_state(state)
    assert other.mmu.page_cache == {DATA >> 12: PCD | PWT}
    bad = dict(state, page_cache=[[DATA >> 12, 1]])
    with pytest.raises(ValueError, match="page_cache"):
        other.mmu.check_state(bad)


def test_on_the_ideal_board_pcd_pages_cost_what_cacheable_pages_cost() -> None:
    assert _run(_READS, PCD, "ideal").cpu.tsc == _run(_READS, 0, "ideal").cpu.tsc
