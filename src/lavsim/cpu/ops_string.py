"""String instructions MOVS, CMPS, STOS, LODS, SCAS with REP/REPE/REPNE (SDM Vol. 2).

Addressing is 32-bit: the source is ``seg:ESI`` (DS unless overridden), the destination always
``ES:EDI`` (no override), the count ECX; each item moves ESI/EDI by the operand size, down when
DF = 1. REP (F3) repeats MOVS/STOS/LODS while ECX != 0 (F2 acts the same on them, as on real
processors); REPE (F3) and REPNE (F2) repeat CMPS/SCAS while ECX != 0 and ZF is 1 or 0.

**Restartable per item.** Each item is done whole (reads, then the write, then ESI/EDI/ECX) before
the next one starts; a fault leaves the registers describing the items completed, and the
executor points EIP back at the instruction, so the restarted instruction continues where it
stopped.

**Interruptible between iterations** (SDM Vol. 2, "REP/REPE/REPZ/REPNE/REPNZ": the processor
may stop after any iteration to service an interrupt, with EIP still at the instruction and
ECX/ESI/EDI reflecting the iterations done). The stop rule: once the TSC, counting the
iterations done but *not* the base cost, reaches ``cpu._rep_until`` (set by the run loop to the
run's cycle limit or the next device event, whichever is first) and items remain, the
instruction stops after that iteration: registers and flags describe the items done, EIP points
back at the REP instruction, and :class:`RepStopped` tells the executor that the instruction
did not retire (``instructions`` is not counted). The run loop then stops or advances the
devices and takes the interrupt; executing the instruction again continues it. A REP therefore
makes progress (at least one item) every time it runs, and with no bound (``_rep_until`` at
``NEVER``, as for a bare :meth:`CPU.step`) it runs to completion as before.

**Timing.** Without REP the decoder charges the form's key (``movs``...). With REP the decoder
charges ``rep.base`` and the items add ``rep_<kind>.per`` each as they complete (also when a
later item faults). A stop between iterations gives the base back: the base is kept only by the
execution that completes the instruction. So a REP of *n* items costs exactly ``rep.base +
n * rep_<kind>.per`` however often it is stopped, and where the stops fall (the run's
cycle limit chosen by the host, a timer tick) changes no cycle count. What a stop does change,
as on hardware, is that the instruction is fetched again when it resumes (one more modelled
ITLB lookup). The restart cost of a real processor after an interrupt is not modelled; a
*fault* still aborts the instruction, whose base stays charged as for any faulting
instruction, and the restart pays it again.

**Bulk path.** REP MOVSD and REP STOSD with DF = 0 move whole runs of items at once when the
source and destination runs each lie inside one page and inside their segment limits: one
translation per run (through the modelled TLB, as the first item would make), the remaining
items' TLB hits credited to the same TLB, and one host copy. It is taken only when that is
indistinguishable from the item-by-item path: both pages still cached as the most recently used
entries of their sets after the two translations, and no forward overlap of the physical ranges
(a MOVSD with the destination just above the source replicates, item by item). A run that must
go item by item (two pages of one TLB set: the i486's unified TLB) still moves its items in one
call of the bulk path, each as one call per item would (see :func:`bulk_movsd`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lavsim.cpu.flags import SUB
from lavsim.cpu.handlers import Semantics
from lavsim.cpu.insn import Insn
from lavsim.cpu.state import DF, ECX, EDI, ES, ESI, NEVER, ZF, CpuState
from lavsim.mmu.mmu import FastWay

if TYPE_CHECKING:
    from lavsim.mmu.tlb import TLB

MASK32 = 0xFFFFFFFF
MASK = {1: 0xFF, 2: 0xFFFF, 4: MASK32}
Fn = Callable[[CpuState, Insn], None]


class RepStopped(Exception):
    """A REP string instruction stopped between iterations (see the module docstring): its
    registers describe the items done and EIP points at it again. Caught by the executor,
    which does not count the instruction as retired; never a guest-visible event."""


def _delta(cpu: CpuState, size: int) -> int:
    return -size if cpu.eflags & DF else size


# --- one item of each instruction ----------------------------------------------------------


def movs_item(cpu: CpuState, seg: int, size: int, delta: int) -> None:
    """MOVS: ES:[EDI] <- seg:[ESI]."""
    regs = cpu.regs
    cpu.write_mem(ES, regs[EDI], size, cpu.read_mem(seg, regs[ESI], size))
    regs[ESI] = (regs[ESI] + delta) & MASK32
    regs[EDI] = (regs[EDI] + delta) & MASK32


def cmps_item(cpu: CpuState, seg: int, size: int, delta: int) -> None:
    """CMPS: compare seg:[ESI] with ES:[EDI] (flags of [ESI] - [EDI])."""
    regs = cpu.regs
    a = cpu.read_mem(seg, regs[ESI], size)
    b = cpu.read_mem(ES, regs[EDI], size)
    cpu.lazy_flags = (SUB, size, (a - b) & MASK[size], a, b)
    regs[ESI] = (regs[ESI] + delta) & MASK32
    regs[EDI] = (regs[EDI] + delta) & MASK32


def stos_item(cpu: CpuState, seg: int, size: int, delta: int) -> None:
    """STOS: ES:[EDI] <- AL/AX/EAX."""
    regs = cpu.regs
    cpu.write_mem(ES, regs[EDI], size, regs[0] & MASK[size])
    regs[EDI] = (regs[EDI] + delta) & MASK32


def lods_item(cpu: CpuState, seg: int, size: int, delta: int) -> None:
    """LODS: AL/AX/EAX <- seg:[ESI]."""
    regs = cpu.regs
    cpu.set_reg(0, size, cpu.read_mem(seg, regs[ESI], size))
    regs[ESI] = (regs[ESI] + delta) & MASK32


def scas_item(cpu: CpuState, seg: int, size: int, delta: int) -> None:
    """SCAS: compare AL/AX/EAX with ES:[EDI]."""
    regs = cpu.regs
    a = regs[0] & MASK[size]
    b = cpu.read_mem(ES, regs[EDI], size)
    cpu.lazy_flags = (SUB, size, (a - b) & MASK[size], a, b)
    regs[EDI] = (regs[EDI] + delta) & MASK32


Item = Callable[[CpuState, int, int, int], None]
ITEMS: dict[str, Item] = {
    "movs": movs_item, "cmps": cmps_item, "stos": stos_item, "lods": lods_item,
    "scas": scas_item,
}


# --- the bulk path -------------------------------------------------------------------------


def _translate_owned(cpu: CpuState, linear: int, write: bool) -> tuple[int, TLB | None]:
    """Translate one data access and say which modelled TLB served it (None: paging off)."""
    return cpu.mmu.translate_owned(linear, write, cpu.user)


def _run_length(cpu: CpuState, sreg: int, offset: int, count: int, write: bool) -> int:
    """How many dword items from ``sreg:offset`` up lie inside the segment and one page."""
    s = cpu.seg[sreg]
    if offset < s.min_off or not (s.writable if write else s.readable):
        return 0
    by_limit = (s.max_off - offset + 1) // 4
    linear = (s.base + offset) & MASK32
    by_page = (0x1000 - (linear & 0xFFF)) // 4
    return max(0, min(count, by_limit, by_page))


def _items_until(cpu: CpuState, n: int, until: int, per: int) -> int:
    """At most ``n`` items, cut after the item that brings the TSC (plus ``per`` for each
    item) to ``until``: the item path's stop test, applied to a run whose page-walk cycles
    (those of its first item) are already charged."""
    if per <= 0 or until >= NEVER:
        return n
    return min(n, max(1, -((cpu.tsc - until) // per)))


def bulk_movsd(cpu: CpuState, seg: int, until: int = NEVER, per: int = 0) -> int:
    """Move a run of REP MOVSD items at once; returns how many (0: take the item path).
    The run is cut where the item path would stop (``until``, ``per``: see
    :func:`_items_until`).

    When the run must go item by item (the destination's translation took the source's page
    out of the MRU place of its set, as two pages of one set of the i486's unified TLB do, or
    the ranges overlap forwards), the items follow each other here, each exactly as one call
    per item would do it (both translations, the same tests, one ``READ`` and one ``WRITE``),
    for as long as both pages are in the MMU's host page map (so no translation can miss or
    fault) and the caller's stop test (``cpu.tsc + items * per >= until``) is not met."""
    regs = cpu.regs
    n = min(
        _run_length(cpu, seg, regs[ESI], regs[ECX], False),
        _run_length(cpu, ES, regs[EDI], regs[ECX], True),
    )
    if n < 2:
        return 0
    mmu = cpu.mmu
    user = cpu.user
    src_base = cpu.seg[seg].base
    dst_base = cpu.seg[ES].base
    src_lin = (src_base + regs[ESI]) & MASK32
    dst_lin = (dst_base + regs[EDI]) & MASK32
    p_src, t_src = mmu.translate_owned(src_lin, False, user)
    p_dst, t_dst = mmu.translate_owned(dst_lin, True, user)
    page = mmu.frame_page
    read_ok = 1 << user
    write_ok = 4 << user
    items = 0  # items moved one at a time so far; n: the run length at the next item
    while True:
        if not ((t_src is not None and not t_src.is_mru(src_lin))
                or p_src < p_dst < p_src + 4 * n):
            # A run: cut where the item path would stop (counting the items before it).
            n = _items_until(cpu, n, until - items * per, per)
            if t_src is not None:
                t_src.hits += n - 1
            if t_dst is not None:
                t_dst.hits += n - 1
            mmu.copy_physical(p_dst, p_src, 4 * n, user)
            _note_write(cpu, p_dst, 4 * n)
            regs[ESI] = (regs[ESI] + 4 * n) & MASK32
            regs[EDI] = (regs[EDI] + 4 * n) & MASK32
            regs[ECX] = (regs[ECX] - n) & MASK32
            return items + n
        # Evicted by the destination, or a forward overlap: this item only.
        mmu.copy_physical(p_dst, p_src, 4, user)
        _note_write(cpu, p_dst, 4)
        regs[ESI] = (regs[ESI] + 4) & MASK32
        regs[EDI] = (regs[EDI] + 4) & MASK32
        regs[ECX] = (regs[ECX] - 1) & MASK32
        items += 1
        n -= 1
        if n < 2 or cpu.tsc + items * per >= until:
            return items  # the next call takes the item path, or the caller stops
        src_lin = (src_base + regs[ESI]) & MASK32
        dst_lin = (dst_base + regs[EDI]) & MASK32
        es = page(src_lin >> 12)
        ed = page(dst_lin >> 12)
        if es is None or not es.mask & read_ok or ed is None or not ed.mask & write_ok:
            return items  # the next call translates the slow way
        way = es.owner
        if (t_src is not None and t_src is t_dst and ed.owner is t_dst
                and type(way) is FastWay and way.tlb is t_src):
            # Both pages in one set of one TLB, the destination MRU and the source (held, as
            # its page's owner, the way, says) just below it, as the last item's two hits
            # left them: this item's two hits touch the source then the destination, which
            # puts the set and the host page map back as they are. So it only counts them.
            t_src.hits += 2
            p_src = es.base | (src_lin & 0xFFF)
            p_dst = ed.base | (dst_lin & 0xFFF)
            continue
        p_src, t_src = mmu.translate_owned(src_lin, False, user)
        p_dst, t_dst = mmu.translate_owned(dst_lin, True, user)


def bulk_stosd(cpu: CpuState, until: int = NEVER, per: int = 0) -> int:
    """Store a run of REP STOSD items at once; returns how many (0: take the item path).
    The run is cut where the item path would stop (see :func:`bulk_movsd`)."""
    regs = cpu.regs
    n = _run_length(cpu, ES, regs[EDI], regs[ECX], True)
    if n < 2:
        return 0
    dst_lin = (cpu.seg[ES].base + regs[EDI]) & MASK32
    p_dst, t_dst = _translate_owned(cpu, dst_lin, True)
    n = _items_until(cpu, n, until, per)
    if t_dst is not None:
        t_dst.hits += n - 1
    cpu.mmu.write_physical(p_dst, regs[0].to_bytes(4, "little") * n, cpu.user)
    _note_write(cpu, p_dst, 4 * n)
    regs[EDI] = (regs[EDI] + 4 * n) & MASK32
    regs[ECX] = (regs[ECX] - n) & MASK32
    return n


def _note_write(cpu: CpuState, phys: int, n: int) -> None:
    """Tell the executor's decoded-instruction cache about a write made around it."""
    note = getattr(cpu, "physical_written", None)
    if note is not None:
        note(phys, n)


# --- the instructions ----------------------------------------------------------------------


def _bind_string(i: Insn) -> Fn:
    kind = i.form.handler
    size = i.size
    item = ITEMS[kind]
    seg = i.seg
    if not i.rep:

        def once(cpu: CpuState, _: Insn) -> None:
            item(cpu, seg, size, _delta(cpu, size))

        return once
    compare = kind in ("cmps", "scas")
    until_zf = 0 if i.rep == 0xF3 else ZF  # REPE stops when ZF = 0, REPNE when ZF = 1
    per_key = f"rep_{kind}.per"
    bulk = size == 4 and kind in ("movs", "stos")

    def rep(cpu: CpuState, insn: Insn) -> None:
        regs = cpu.regs
        delta = _delta(cpu, size)
        per = cpu.profile.table[per_key]
        # Stop once tsc - base + done * per >= _rep_until: the base charged up front by the
        # executor is not earned until the instruction completes (module docstring).
        bound = cpu._rep_until + insn.cycles
        done = 0
        stopped = False
        try:
            while regs[ECX]:
                if bulk and delta > 0:
                    until = bound - done * per
                    n = (bulk_movsd(cpu, seg, until, per) if kind == "movs"
                         else bulk_stosd(cpu, until, per))
                    if n:
                        done += n
                        if regs[ECX] and cpu.tsc + done * per >= bound:
                            stopped = True
                            break
                        continue
                item(cpu, seg, size, delta)
                regs[ECX] = (regs[ECX] - 1) & MASK32
                done += 1
                if compare and (cpu.get_eflags() & ZF) == until_zf:
                    break
                if regs[ECX] and cpu.tsc + done * per >= bound:
                    stopped = True
                    break
        finally:
            cpu.tsc += done * per
        if stopped:
            # Interrupted between iterations: give the base back, point EIP at the
            # instruction again, and tell the executor it did not retire.
            cpu.tsc -= insn.cycles
            cpu.eip = insn.addr
            raise RepStopped

    return rep


def _generic(name: str) -> Fn:
    def run(cpu: CpuState, i: Insn) -> None:
        _bind_string(i)(cpu, i)

    run.__name__ = name
    return run


#: This module's semantics (merged into the decoder's table by :mod:`lavsim.cpu.decoder`).
SEMANTICS = Semantics(__name__)
for _name in ITEMS:
    SEMANTICS.add_binder(_name, _bind_string)
    SEMANTICS.add_handler(_name, _generic(_name))
