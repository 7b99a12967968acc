"""REP MOVSD whose items must go one by one (the destination's translation takes the source's
page out of the MRU place of its TLB set, or the ranges overlap forwards) moves them in one call
of the bulk path (``ops_string.bulk_movsd``), each item exactly as one call per item moved it
before: this compares the two on every cache board (write-through and write-back L1, with and
without L2, the write buffer full under long copies) and the ideal one, for copies of many
lengths and alignments inside and across pages, in one TLB set and in two, overlapping, onto a
page that is not mapped (a fault after some items), stopped by timer interrupts and by cycle
budgets: registers, cycles, memory, TLB contents in LRU order with statistics, cache and
write-buffer state, and every physical access in order are identical."""

from __future__ import annotations

from typing import Any

import pytest

import lavsim.cpu.ops_string as ops_string
from lavsim.cpu.asm import assemble
from lavsim.cpu.ops_string import ECX, EDI, ES, ESI, MASK32, NEVER, _items_until, _run_length
from lavsim.cpu.state import CpuState
from lavsim.machine import Machine, MachineConfig
from lavsim.mmu.descriptors import SYS_INTERRUPT_GATE32, GateDescriptor
from lavsim.mmu.mmu import Access

ENTRY, TICK_AT, PF_AT = 0x10000, 0x1F000, 0x1F100
UNMAPPED = 0x5C000  # its page-table entry is not present


def one_item_per_call(cpu: CpuState, seg: int, until: int = NEVER, per: int = 0) -> int:
    """The bulk path as it was: a run that must go item by item moves one item per call."""
    regs = cpu.regs
    n = min(_run_length(cpu, seg, regs[ESI], regs[ECX], False),
            _run_length(cpu, ES, regs[EDI], regs[ECX], True))
    if n < 2:
        return 0
    src_lin = (cpu.seg[seg].base + regs[ESI]) & MASK32
    dst_lin = (cpu.seg[ES].base + regs[EDI]) & MASK32
    p_src, t_src = cpu.mmu.translate_owned(src_lin, False, cpu.user)
    p_dst, t_dst = cpu.mmu.translate_owned(dst_lin, True, cpu.user)
    if (t_src is not None and not t_src.is_mru(src_lin)) or p_src < p_dst < p_src + 4 * n:
        n = 1
    else:
        n = _items_until(cpu, n, until, per)
        if t_src is not None:
            t_src.hits += n - 1
        if t_dst is not None:
            t_dst.hits += n - 1
    cpu.mmu.copy_physical(p_dst, p_src, 4 * n, cpu.user)
    ops_string._note_write(cpu, p_dst, 4 * n)
    regs[ESI] = (regs[ESI] + 4 * n) & MASK32
    regs[EDI] = (regs[EDI] + 4 * n) & MASK32
    regs[ECX] = (regs[ECX] - n) & MASK32
    return n


def _copies() -> list[tuple[int, int, int]]:
    """(source, destination, items): i486 TLB set 0 holds pages 0x40, 0x48 (and the code's
    0x10), set 1 holds 0x61; starts near a page end cross into the next page."""
    out = []
    lengths = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1025]
    for n in lengths:
        out.append((0x40000, 0x48000, n))  # one TLB set
        out.append((0x40000, 0x61000, n))  # two sets
    for src_off, dst_off in [(4, 8), (1, 2), (3, 0), (0xFF0, 0x10), (0x10, 0xFE4), (0xFFD, 6)]:
        out.append((0x40000 + src_off, 0x48000 + dst_off, 37))
        out.append((0x41000 + src_off, 0x49000 + dst_off, 300))
    out.append((0x40000, 0x40004, 40))  # forward overlap: replicates
    out.append((0x40010, 0x40000, 40))  # backward overlap
    out.append((0x40800, 0x40000, 300))  # one page
    out.append((0x40000, UNMAPPED - 0x40, 50))  # runs into an unmapped page: #PF
    return out


def _program() -> bytes:
    lines = ["    sti"]
    for src, dst, n in _copies():
        lines += [f"    mov esi, {src:#x}", f"    mov edi, {dst:#x}", f"    mov ecx, {n}",
                  "    rep movsd", "    add dword ptr [0x30000], ecx"]
    lines += ["    cli", "    hlt"]
    return assemble("\n".join(lines), origin=ENTRY).code


TICK = """
    push eax
    mov al, 0x20
    out 0x20, al
    pop eax
    iretd
"""
# The #PF handler: skip the REP (ECX items are left), drop the error code.
PAGE_FAULT = """
    mov ecx, 0
    add esp, 4
    iretd
"""


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[Access, int, int, bool]] = []

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None:
        self.seen.append((kind, phys, size, user))


def run(profile: str, board: str, budget: int, period: int) -> tuple[Any, ...]:
    m = Machine(MachineConfig(profile=profile, board=board, memory_size=1 << 20,
                              timer_period=period))
    m.load(ENTRY, _program())
    m.load(TICK_AT, assemble(TICK, origin=TICK_AT).code)
    m.load(PF_AT, assemble(PAGE_FAULT, origin=PF_AT).code)
    m.setup_flat_protected_mode(entry=ENTRY)
    m.load(0x2000 + 8 * 0x20, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, TICK_AT, 0, 0).encode())
    m.load(0x2000 + 8 * 14, GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, PF_AT, 0, 0).encode())
    m.load(0x40000, bytes((k * 7) & 0xFF for k in range(0x2000)))
    m.load(0x80000, (0x81000 | 7).to_bytes(4, "little"))
    m.load(0x81000, b"".join((0 if k == UNMAPPED >> 12 else (k << 12) | 7).to_bytes(4, "little")
                             for k in range(256)))
    # Paging on: CR3, then CR0.PG (the MMU follows the CPU's control registers).
    cpu = m.cpu
    cpu.cr3 = 0x80000
    m.mmu.load_cr3(0x80000)
    cpu.cr0 |= 1 << 31
    m.mmu.set_controls(cpu.cr0, cpu.cr4)
    events = Events()
    m.mmu.add_tracer(events)
    results = []
    for _ in range(100_000):
        result = m.run(max_cycles=budget)
        results.append(result.reason)
        if result.reason == "halted":
            break
    hierarchy = None if m.hierarchy is None else m.hierarchy.get_state()
    return (results, list(cpu.regs), cpu.eip, cpu.tsc, cpu.instructions, m.state_digest(),
            m.mmu.get_state(), m.mmu.stats, hierarchy, events.seen)


@pytest.mark.parametrize(("profile", "board"), [
    ("i486", "486dx2-66"), ("i486", "486dx-50"), ("i486", "ideal"), ("pentium", "p100")])
@pytest.mark.parametrize(("budget", "period"), [(1_000_000, 0), (2_003, 0), (50_000, 331)])
def test_item_by_item_runs_in_one_call_equal_one_call_per_item(
    profile: str, board: str, budget: int, period: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = run(profile, board, budget, period)
    calls: list[int] = []
    original = ops_string.bulk_movsd

    def counted(cpu: CpuState, seg: int, until: int = NEVER, per: int = 0) -> int:
        calls.append(1)
        return original(cpu, seg, until, per)

    monkeypatch.setattr(ops_string, "bulk_movsd", counted)
    fast_calls = run(profile, board, budget, period)
    assert fast_calls == fast
    monkeypatch.setattr(ops_string, "bulk_movsd", one_item_per_call)
    slow = run(profile, board, budget, period)
    assert fast == slow
    assert fast[0][-1] == "halted"
    assert fast[1][ECX] == 0 and fast[3] > 0
    if profile == "i486":
        # The one-set copies really went item by item in few calls.
        assert len(calls) < sum(n for _, _, n in _copies()) // 4
