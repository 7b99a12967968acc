"""Far CALL, JMP and RET in protected mode, directly and through call gates.

The rules are those of the Intel SDM Vol. 2 pages CALL, JMP and RET (protected-mode
pseudo-code) and Vol. 3 chapter 5.8 (privilege-level checks on control transfers). The
descriptor-table lookups and the per-descriptor checks live in :mod:`lavsim.mmu.segmentation`;
this module strings them together in the manual's order, switches stacks, copies call-gate
parameters and commits the new CS:EIP, SS:ESP and CPL.

Every handler first performs all the checks and all the stack writes that can fault, then
commits registers. A :class:`~lavsim.faults.CpuFault` raised on the way therefore leaves the
architectural registers as they were (only memory below the stack pointer, and Accessed bits
of descriptors the processor had already loaded, may have changed, as on real hardware).

**Task switches are not modelled.** A far CALL or JMP that names a TSS descriptor or a task
gate raises #GP(selector) instead of switching tasks (SDM would switch tasks); Lavender's
kernel switches tasks in software.

**Timing.** A far transfer costs the published figure of the path actually taken
(``call_far.direct``, ``call_gate.same``, ``call_gate.inner`` / ``inner_params_base +
x * param``, ``retf_imm.outer``...). The decoder charges ``insn.cycles`` for the form before the
handler runs, so the handler adds ``figure - insn.cycles`` (see :func:`charge_path`): the total
is the path's figure whatever base the decoder chose for the form. A transfer that faults keeps
only the decoder's base charge; its exception delivery is charged by
:mod:`lavsim.cpu.interrupts`.

**Operand size.** With a 16-bit operand size (66 prefix) the far pointer's offset and the
pushed/popped CS and EIP are 16 bits wide, as in the manual. Through a 32-bit call gate the
pushes are 32 bits wide whatever the operand size (the gate's size rules). A 16-bit CS value is
pushed zero-extended in a 32-bit slot.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from lavsim.cpu.handlers import Semantics
from lavsim.cpu.state import CS, DS, ES, ESP, FS, GS, MASK32, SS, CpuState
from lavsim.faults import GP, TS, CpuFault, gp, np_fault, selector_error_code, ss, ts
from lavsim.faults import SS as SS_VECTOR
from lavsim.mmu.descriptors import TSS32_ESP0, GateDescriptor
from lavsim.mmu.segmentation import (
    Decoded,
    DescriptorTables,
    SegmentCache,
    decode_cached,
    descriptor_address,
    direct_code_segment,
    far_target_entry,
    gate_code_segment,
    inner_stack_from_tss,
    invalid_after_outer_return,
    load_gate_code_segment,
    load_inner_stack_segment,
    load_return_code_segment,
    load_stack_segment,
    return_code_segment,
    stack_segment,
)

if TYPE_CHECKING:
    from lavsim.cpu.insn import Insn
    from lavsim.mmu.mmu import MMU

#: This module's semantics (merged into the decoder's table by :mod:`lavsim.cpu.decoder`).
SEMANTICS = Semantics(__name__)
handler = SEMANTICS.handler

__all__ = [
    "FAR_MEMO_LIMIT",
    "StackSlot",
    "call_far",
    "charge_path",
    "check_stack_room",
    "jmp_far",
    "null_outer_data_segments",
    "read_descriptor",
    "read_stack_block",
    "ret_far",
    "tables_of",
    "write_stack_block",
]

#: The data segment registers a return to an outer level re-checks (SDM Vol. 2, RET).
DATA_SREGS = (ES, DS, FS, GS)


# --------------------------------------------------------------------------------------------
# Helpers shared with lavsim.cpu.interrupts and lavsim.cpu.system
# --------------------------------------------------------------------------------------------


def tables_of(cpu: CpuState) -> DescriptorTables:
    """The GDTR/LDTR view segmentation looks descriptors up through.

    Built from the CPU's own registers each time, so there is one source of truth for GDTR
    and LDTR (the CPU state); building it costs one small object. Descriptors are decoded
    through the host-side memo (:func:`lavsim.mmu.segmentation.decode_cached`) unless the
    CPU's ``decode_cache`` is off; the modelled descriptor reads are the same either way.
    """
    tables = DescriptorTables(
        cpu.mmu, cpu.gdtr_base, cpu.gdtr_limit, cpu.ldtr, getattr(cpu, "decode_cache", True)
    )
    if getattr(cpu, "_code_pages", None):
        # Accessed/busy-bit write-backs drop cached code of the page written, as data
        # writes do (the executor's decoded-instruction cache must see every write).
        tables.written = cpu._linear_written  # type: ignore[attr-defined]
    return tables


def charge_path(cpu: CpuState, insn: Insn, cycles: int) -> None:
    """Make the instruction cost exactly ``cycles`` in total: the decoder already charged
    ``insn.cycles`` for the form, so only the difference is added."""
    cpu.tsc += cycles - insn.cycles


class StackSlot:
    """Where a block of stack slots lives: a stack segment's cache and the offset of the
    lowest slot (the new stack pointer), checked against the segment's limits."""

    __slots__ = ("cache", "esp", "linear")

    def __init__(self, cache: SegmentCache, esp: int, linear: int) -> None:
        self.cache = cache
        self.esp = esp
        self.linear = linear


def check_stack_room(
    cache: SegmentCache,
    esp: int,
    nbytes: int,
    vector: int = SS_VECTOR,
    error_code: int = 0,
    *,
    below: bool = True,
) -> StackSlot:
    """Check that ``nbytes`` of stack fit below (``below``) or at (not ``below``) the stack
    pointer ``esp`` of the stack segment ``cache``; raise ``CpuFault(vector, error_code)``
    (default #SS(0)) otherwise.

    The stack pointer wraps at 64 KiB or 4 GiB by the segment's B bit; a block that would wrap
    around the end of the offset space is refused (the manual leaves that case undefined).
    """
    mask = MASK32 if cache.db else 0xFFFF
    start = (esp - nbytes) & mask if below else esp & mask
    end = start + nbytes - 1
    if not cache.writable or start < cache.min_off or end > cache.max_off or end > mask:
        raise CpuFault(vector, error_code)
    return StackSlot(cache, start, (cache.base + start) & MASK32)


def write_stack_block(
    cpu: CpuState, slot: StackSlot, values: list[int], size: int, user: bool
) -> None:
    """Write ``values`` (lowest address first) as ``size``-byte slots starting at ``slot``.

    Page faults propagate; the caller has not committed any register yet. Like every data
    write, the block drops the executor's cached code of the page(s) written.
    """
    mmu = cpu.mmu
    code_pages = getattr(cpu, "_code_pages", None)
    mask = 0xFFFF if size == 2 else MASK32
    linear = slot.linear
    if size == 4:
        n = len(values)
        if not linear & 3 and (linear & 0xFFF) + 4 * n <= 0x1000:
            # All slots aligned in one page: when the MMU's host fast path serves that page
            # for writes, each write32 would be a fast hit on the same entry (nothing else
            # can change the fast dict in between), so do the n of them at once: the same
            # stores and the same n hits credited to the owning TLB.
            e = mmu.data_page(linear >> 12)
            if e is not None and e.mask & (4 << user):
                e.owner.hits += n
                view = e.dwords
                off = (linear & 0xFFF) >> 2
                for value in values:
                    view[off] = value & MASK32
                    off += 1
                if code_pages and (e.base >> 12) in code_pages:
                    cpu.physical_written(  # type: ignore[attr-defined]
                        e.base | (linear & 0xFFF), 4 * n)
                return
        # MMU.write of 4 bytes is exactly write32.
        write32 = mmu.write32
        for value in values:
            write32(linear, value & mask, user)
            linear = (linear + 4) & MASK32
    else:
        for value in values:
            mmu.write(linear, size, value & mask, user)
            linear = (linear + size) & MASK32
    if code_pages:
        cpu._linear_written(slot.linear, len(values) * size)  # type: ignore[attr-defined]


def read_stack_block(
    cpu: CpuState, cache: SegmentCache, esp: int, count: int, size: int, user: bool
) -> list[int]:
    """Read ``count`` slots of ``size`` bytes at ``esp`` (lowest address first) from the stack
    segment ``cache``; #SS(0) when they are not all inside the segment's limits."""
    mask = MASK32 if cache.db else 0xFFFF
    start = esp & mask
    end = start + count * size - 1
    if not cache.readable or start < cache.min_off or end > cache.max_off or end > mask:
        raise ss(0)
    mmu = cpu.mmu
    linear = (cache.base + start) & MASK32
    out: list[int] = []
    if size == 4:
        if not linear & 3 and (linear & 0xFFF) + 4 * count <= 0x1000:
            # As in write_stack_block: n fast hits on one host fast-path entry at once.
            e = mmu.data_page(linear >> 12)
            if e is not None and e.mask & (1 << user):
                e.owner.hits += count
                off = (linear & 0xFFF) >> 2
                if count == 2:
                    return [e.dwords[off], e.dwords[off + 1]]
                return e.dwords[off : off + count].tolist()
        # MMU.read of 4 bytes is exactly read32.
        read32 = mmu.read32
        for _ in range(count):
            out.append(read32(linear, user))
            linear = (linear + 4) & MASK32
        return out
    for _ in range(count):
        out.append(mmu.read(linear, size, user))
        linear = (linear + size) & MASK32
    return out


def _set_esp(cpu: CpuState, cache: SegmentCache, esp: int) -> None:
    """Store a stack pointer: the whole of ESP for a 32-bit stack, SP only for a 16-bit one."""
    if cache.db:
        cpu.regs[ESP] = esp & MASK32
    else:
        cpu.regs[ESP] = (cpu.regs[ESP] & 0xFFFF0000) | (esp & 0xFFFF)


def _check_eip(cs: SegmentCache, eip: int) -> None:
    """#GP(0) when the new instruction pointer is outside the new code segment."""
    if eip < cs.min_off or eip > cs.max_off:
        raise gp(0)


def null_outer_data_segments(cpu: CpuState, new_cpl: int) -> None:
    """After a return to the outer level ``new_cpl``: load a null selector into each of
    ES, DS, FS, GS that holds a data or non-conforming code segment more privileged than
    ``new_cpl`` (SDM Vol. 2, RET and IRET), so the outer ring cannot use it."""
    for sreg in DATA_SREGS:
        if invalid_after_outer_return(cpu.seg[sreg], new_cpl):
            cpu.seg[sreg] = SegmentCache.null(0)


def _far_operand(cpu: CpuState, insn: Insn) -> tuple[int, int]:
    """(offset, selector) of a ``ptr16:v`` immediate or an ``m16:v`` memory operand."""
    if insn.mem:
        from lavsim.cpu.operands import read_far_pointer

        offset, selector = read_far_pointer(cpu, insn)
    else:
        offset, selector = insn.imm, insn.imm2
    mask = 0xFFFF if insn.size == 2 else MASK32
    return offset & mask, selector & 0xFFFF


# --------------------------------------------------------------------------------------------
# JMP far
# --------------------------------------------------------------------------------------------


@handler("jmp_far")
def jmp_far(cpu: CpuState, insn: Insn) -> None:
    """JMP ptr16:v / JMP m16:v in protected mode (SDM Vol. 2, JMP).

    To a code segment: conforming needs DPL <= CPL, non-conforming RPL <= CPL and DPL = CPL
    (#GP(selector)); not present #NP(selector); offset beyond the limit #GP(0). Through a call
    gate: the gate's DPL must be >= CPL and >= RPL (#GP(gate selector)), the gate present
    (#NP(gate selector)), its code segment non-conforming with DPL = CPL or conforming with
    DPL <= CPL (JMP never changes privilege); the gate's offset replaces the instruction's.
    TSS and task gates: #GP(selector), task switching is not modelled.
    """
    offset, selector = _far_operand(cpu, insn)
    tables = tables_of(cpu)
    d = far_target_entry(tables, selector)
    desc = d.desc
    cpl = cpu.cpl
    if d.call_gate and isinstance(desc, GateDescriptor):
        _check_call_gate(d, selector, cpl)
        new_cs = load_gate_code_segment(tables, desc.selector, cpl, jump=True)
        eip = desc.offset
        key = "jmp_gate.same"
    elif d.seg:
        new_cs = direct_code_segment(tables, selector, d, cpl)
        eip = offset
        key = "jmp_far.m" if insn.mem else "jmp_far.direct"
    else:
        # Data/system segment, or a TSS / task gate (a task switch, not modelled).
        raise gp(selector_error_code(selector))
    _check_eip(new_cs, eip)
    cpu.seg[CS] = new_cs
    cpu.eip = eip
    charge_path(cpu, insn, cpu.profile.table[key])


# --------------------------------------------------------------------------------------------
# CALL far
# --------------------------------------------------------------------------------------------


@handler("call_far")
def call_far(cpu: CpuState, insn: Insn) -> None:
    """CALL ptr16:v / CALL m16:v in protected mode (SDM Vol. 2, CALL).

    Direct to a code segment: as JMP, plus the return address (CS, EIP of the operand size)
    must fit on the stack (#SS(0)). Through a 32-bit call gate (gate DPL >= CPL and >= RPL,
    else #GP(gate selector); not present #NP(gate selector)): to a non-conforming code segment
    with DPL < CPL the CPL becomes the DPL and the stack switches to SSn:ESPn of the current
    TSS (#TS(TR selector) if they are beyond the TSS limit; the new SS must be a present,
    writable data segment with RPL = DPL = new CPL, else #TS(SS selector), not present
    #SS(SS selector)); the caller's SS and ESP, the gate's parameter count of doublewords
    copied from the caller's stack, and the caller's CS and EIP are pushed on the new stack
    (room: #SS(SS selector)). Otherwise (conforming, or DPL = CPL) the call stays at the same
    privilege and pushes CS and EIP (#SS(0)). The gate's offset beyond the code segment limit
    is #GP(0). TSS and task gates: #GP(selector), task switching is not modelled.
    """
    if cpu.far_fast:
        if insn.mem:
            offset, selector = _far_operand(cpu, insn)
        else:  # _far_operand's immediate case
            offset = insn.imm & (0xFFFF if insn.size == 2 else MASK32)
            selector = insn.imm2 & 0xFFFF
        rec = cpu._far_memo.get(selector | cpu.cpl << 16)
        if rec is not None and rec.profile is cpu.profile:
            ldtr, tr = cpu.ldtr, cpu.tr
            if rec.tables == (cpu.gdtr_base, cpu.gdtr_limit, ldtr.valid, ldtr.base, ldtr.limit,
                              tr.valid, tr.base, tr.limit):  # _tables_key
                _call_gate_memo(cpu, insn, offset, selector, rec)
                return
        _call_far_fast(cpu, insn, offset, selector)
        return
    offset, selector = _far_operand(cpu, insn)
    tables = tables_of(cpu)
    _call_after_target(cpu, insn, offset, selector, tables, far_target_entry(tables, selector))


def _call_after_target(
    cpu: CpuState, insn: Insn, offset: int, selector: int, tables: DescriptorTables, d: Decoded
) -> None:
    """The reference path of :func:`call_far` once the target descriptor ``d`` is read."""
    desc = d.desc
    cpl = cpu.cpl
    old_cs = cpu.seg[CS].selector
    return_eip = cpu.eip
    stack = cpu.seg[SS]
    if d.seg:
        new_cs = direct_code_segment(tables, selector, d, cpl)
        size = insn.size
        slot = check_stack_room(stack, cpu.regs[ESP], 2 * size)
        _check_eip(new_cs, offset)
        write_stack_block(cpu, slot, [return_eip, old_cs], size, cpu.user)
        _set_esp(cpu, stack, slot.esp)
        cpu.seg[CS] = new_cs
        cpu.eip = offset
        charge_path(cpu, insn, cpu.profile.table["call_far.m" if insn.mem else "call_far.direct"])
        return
    if not (d.call_gate and isinstance(desc, GateDescriptor)):
        # Data/system segment, or a TSS / task gate (a task switch, not modelled).
        raise gp(selector_error_code(selector))
    _check_call_gate(d, selector, cpl)
    new_cs = load_gate_code_segment(tables, desc.selector, cpl)
    new_cpl = new_cs.selector & 3
    if new_cpl < cpl:
        _call_gate_inner(cpu, tables, desc, new_cs, old_cs, return_eip)
    else:
        slot = check_stack_room(stack, cpu.regs[ESP], 8)
        _check_eip(new_cs, desc.offset)
        write_stack_block(cpu, slot, [return_eip, old_cs], 4, cpu.user)
        _set_esp(cpu, stack, slot.esp)
        cpu.seg[CS] = new_cs
        cpu.eip = desc.offset
    charge_path(cpu, insn, cpu.profile.call_gate_cycles(new_cpl < cpl, desc.param_count))


class _InnerCall:
    """A far CALL through a call gate to an inner level that passed every check (host-side,
    see :func:`_call_gate_memo`): the tables it was checked under, the linear address (page
    and doubleword index) and 8 bytes of each descriptor read, the SSn selector read from the
    TSS, and what the checks produced."""

    __slots__ = (
        "count", "cpl", "cs", "cs_at", "cs_q", "cycles", "eip", "gate_at", "gate_q", "profile",
        "ss", "ss_at", "ss_q", "ss_sel", "tables", "tss_at",
    )

    tables: tuple[int | bool, ...]
    profile: object
    gate_at: int
    gate_q: int
    cs_at: int
    cs_q: int
    cs: SegmentCache
    cpl: int
    eip: int
    count: int
    cycles: int
    tss_at: int
    ss_sel: int
    ss_at: int
    ss_q: int
    ss: SegmentCache


#: Most records a CPU's far-transfer memo holds (it is emptied when full).
FAR_MEMO_LIMIT = 256


def _tables_key(cpu: CpuState) -> tuple[int | bool, ...]:
    """What a memo record of a far transfer was checked under, besides the selector, the CPL
    and the descriptors' bytes: where the tables are (GDTR, LDTR) and the TSS (TR)."""
    ldtr, tr = cpu.ldtr, cpu.tr
    return (cpu.gdtr_base, cpu.gdtr_limit, ldtr.valid, ldtr.base, ldtr.limit, tr.valid,
            tr.base, tr.limit)


def _aligned(at: int) -> bool:
    """A doubleword pair at linear ``at`` lies aligned in one page (the memo's inline read)."""
    return not at & 3 and (at & 0xFFF) <= 0xFF8


def _call_gate_memo(
    cpu: CpuState, insn: Insn, offset: int, selector: int, rec: _InnerCall
) -> None:
    """A far CALL matching a memo record: the record's reads are made again, in order, and
    compared; at the first value that differs the flattened path goes on from there with the
    values read so far, so every access is made once and in the reference order. When all
    match, the checks are those the record passed (they depend on nothing else); what depends
    on the stacks (room, the parameters, the frame) is done as on the flattened path."""
    mmu = cpu.mmu
    q = _read_pair(mmu, rec.gate_at)
    if q != rec.gate_q:
        _call_far_fast(cpu, insn, offset, selector, (q,))
        return
    q2 = _read_pair(mmu, rec.cs_at)
    if q2 != rec.cs_q:
        _call_far_fast(cpu, insn, offset, selector, (q, q2))
        return
    new_esp, ss_sel = _read_tss_stack(mmu, rec.tss_at)
    if ss_sel != rec.ss_sel:
        _call_far_fast(cpu, insn, offset, selector, (q, q2, new_esp, ss_sel))
        return
    q3 = _read_pair(mmu, rec.ss_at)
    if q3 != rec.ss_q:
        _call_far_fast(cpu, insn, offset, selector, (q, q2, new_esp, ss_sel, q3))
        return
    cs, ss_ = rec.cs, rec.ss
    _enter_inner(cpu, insn, mmu, cs.with_selector(cs.selector), ss_.with_selector(ss_sel),
                 new_esp, rec.cpl, rec.eip, rec.count, rec.cycles)


def _call_far_fast(
    cpu: CpuState, insn: Insn, offset: int, selector: int, pre: tuple[int, ...] = ()
) -> None:
    """:func:`call_far` through a call gate, flattened (``cpu.far_fast``): the reference
    path's reads, checks and writes in its order, the descriptor and TSS reads made through
    the MMU's host fast path (:func:`read_descriptor`), and the checks of a descriptor that
    passes them all with its Accessed bit set written out inline; any other descriptor goes
    to the reference check on the record already read. A target that is not a call gate takes
    the reference path from the target's record on.

    ``pre``: the values :func:`_call_gate_memo` already read, in order (the gate's and the
    code segment's 8 bytes, ESPn, SSn, the stack segment's 8 bytes): those reads are not made
    again. A transfer to an inner level that passed every check inline is remembered in the
    CPU's ``_far_memo``."""
    if selector & 0xFFFC == 0:
        raise gp(0)
    mmu = cpu.mmu
    gdtr_base, gdtr_limit, ldtr = cpu.gdtr_base, cpu.gdtr_limit, cpu.ldtr
    memo = getattr(cpu, "decode_cache", True)
    gate_at = descriptor_address(gdtr_base, gdtr_limit, ldtr, selector)
    gate_q = pre[0] if pre else read_descriptor(mmu, gate_at)
    d = decode_cached(gate_q, memo)
    gate = d.desc
    if not (d.call_gate and isinstance(gate, GateDescriptor)):
        _call_after_target(cpu, insn, offset, selector, tables_of(cpu), d)
        return
    cpl = cpu.cpl
    if d.dpl < cpl or d.dpl < selector & 3:
        raise gp(selector_error_code(selector))
    if not d.present:
        raise np_fault(selector_error_code(selector))
    cs_sel = gate.selector
    if cs_sel & 0xFFFC == 0:
        raise gp(selector_error_code(cs_sel))
    cs_at = descriptor_address(gdtr_base, gdtr_limit, ldtr, cs_sel)
    cs_q = pre[1] if len(pre) > 1 else read_descriptor(mmu, cs_at)
    c = decode_cached(cs_q, memo)
    inline = True
    if c.code and c.dpl <= cpl and c.present and c.accessed:
        new_cpl = cpl if c.conforming else c.dpl
        new_cs = c.template.with_selector((cs_sel & 0xFFFC) | new_cpl)
    else:
        new_cs = gate_code_segment(tables_of(cpu), cs_sel, c, cpl)
        new_cpl = new_cs.selector & 3
        inline = False
    eip = gate.offset
    count = gate.param_count
    if new_cpl >= cpl:
        stack = cpu.seg[SS]
        slot = check_stack_room(stack, cpu.regs[ESP], 8)
        _check_eip(new_cs, eip)
        write_stack_block(cpu, slot, [cpu.eip, cpu.seg[CS].selector], 4, cpu.user)
        _set_esp(cpu, stack, slot.esp)
        cpu.seg[CS] = new_cs
        cpu.eip = eip
        charge_path(cpu, insn, cpu.profile.call_gate_cycles(False, count))
        return
    # MORE-PRIVILEGE: SSn:ESPn from the TSS (inner_stack_from_tss's two reads).
    tr = cpu.tr
    tss_at = TSS32_ESP0 + 8 * new_cpl  # tss32_stack_offset
    if not tr.valid or tss_at + 5 > tr.limit:
        raise ts(selector_error_code(tr.selector))
    tss_at = (tr.base + tss_at) & MASK32
    if len(pre) > 3:
        new_esp, ss_sel = pre[2], pre[3]
    else:
        new_esp, ss_sel = _read_tss_stack(mmu, tss_at)
    if ss_sel & 0xFFFC == 0:
        raise CpuFault(TS, selector_error_code(ss_sel))
    ss_at = descriptor_address(gdtr_base, gdtr_limit, ldtr, ss_sel, TS)
    ss_q = pre[4] if len(pre) > 4 else read_descriptor(mmu, ss_at)
    v = decode_cached(ss_q, memo)
    if ss_sel & 3 == new_cpl and v.writable and v.dpl == new_cpl and v.present and v.accessed:
        new_ss = v.template.with_selector(ss_sel)
    else:
        new_ss = stack_segment(tables_of(cpu), ss_sel, v, new_cpl, TS)
        inline = False
    cycles = cpu.profile.call_gate_cycles(True, count)
    if (inline and _aligned(gate_at) and _aligned(cs_at)
            and _aligned(tss_at) and _aligned(ss_at)):
        # Remembered before the stack work: what follows depends on the stacks, not on it.
        rec = _InnerCall()
        rec.tables = _tables_key(cpu)
        rec.profile = cpu.profile
        rec.gate_at, rec.gate_q, rec.cs_at, rec.cs_q = gate_at, gate_q, cs_at, cs_q
        rec.cs, rec.cpl, rec.eip, rec.count, rec.cycles = new_cs.copy(), new_cpl, eip, count, cycles
        rec.tss_at, rec.ss_sel, rec.ss_at, rec.ss_q, rec.ss = (
            tss_at, ss_sel, ss_at, ss_q, new_ss.copy())
        far_memo = cpu._far_memo
        if len(far_memo) >= FAR_MEMO_LIMIT:
            far_memo.clear()
        far_memo[selector | cpl << 16] = rec
    _enter_inner(cpu, insn, mmu, new_cs, new_ss, new_esp, new_cpl, eip, count, cycles)


def _enter_inner(
    cpu: CpuState, insn: Insn, mmu: MMU, new_cs: SegmentCache, new_ss: SegmentCache,
    new_esp: int, new_cpl: int, eip: int, count: int, cycles: int,
) -> None:
    """The rest of a call through a gate to an inner level once CS and SS are checked: room
    on the new stack (#SS(SS selector)), EIP inside the new CS (#GP(0)), the parameters read
    with the caller's privilege, the frame written, then the commit."""
    # check_stack_room and _check_eip, inline.
    n = 16 + 4 * count
    room = MASK32 if new_ss.db else 0xFFFF
    start = (new_esp - n) & room
    end = start + n - 1
    if not new_ss.writable or start < new_ss.min_off or end > new_ss.max_off or end > room:
        raise CpuFault(SS_VECTOR, new_ss.selector & 0xFFFC)
    if eip < new_cs.min_off or eip > new_cs.max_off:
        raise gp(0)
    seg = cpu.seg
    stack = seg[SS]
    regs = cpu.regs
    smask = MASK32 if stack.db else 0xFFFF
    old_esp = regs[ESP] & smask
    params: list[int] = []
    if count:
        # read_stack_block's aligned one-page case, inline.
        last = old_esp + 4 * count - 1
        page = None
        if stack.readable and stack.min_off <= old_esp and last <= stack.max_off and last <= smask:
            at = (stack.base + old_esp) & MASK32
            if not at & 3 and (at & 0xFFF) + 4 * count <= 0x1000:
                page = mmu.data_page(at >> 12)
        if page is not None and page.mask & (1 << cpu.user):
            page.owner.hits += count
            i = (at & 0xFFF) >> 2
            params = page.dwords[i : i + count].tolist()
        else:
            params = read_stack_block(cpu, stack, old_esp, count, 4, cpu.user)
    # Every slot already below 2**32 (the parameters come from doublewords, ESP is masked).
    frame = [cpu.eip & MASK32, seg[CS].selector & MASK32, *params, old_esp,
             stack.selector & MASK32]
    # write_stack_block's one-page case, inline (the new stack is never a user access).
    linear = (new_ss.base + start) & MASK32
    off = linear & 0xFFF
    page = None if linear & 3 or off + n > 0x1000 else mmu.data_page(linear >> 12)
    if page is not None and page.mask & (4 << (new_cpl == 3)):
        page.owner.hits += len(frame)
        i = off >> 2
        page.dwords[i : i + len(frame)] = array("I", frame)
        code_pages = getattr(cpu, "_code_pages", None)
        if code_pages and (page.base >> 12) in code_pages:
            cpu.physical_written(page.base | off, n)  # type: ignore[attr-defined]
    else:
        write_stack_block(cpu, StackSlot(new_ss, start, linear), frame, 4, new_cpl == 3)
    cpu.set_cpl(new_cpl)
    seg[SS] = new_ss
    regs[ESP] = start if new_ss.db else (regs[ESP] & 0xFFFF0000) | start  # _set_esp
    seg[CS] = new_cs
    cpu.eip = eip
    cpu.tsc += cycles - insn.cycles  # charge_path


def _check_call_gate(d: Decoded, gate_selector: int, cpl: int) -> None:
    """:func:`lavsim.mmu.segmentation.check_call_gate` on the gate's :class:`Decoded` record
    (the caller has seen that it is a 32-bit call gate)."""
    if d.dpl < cpl or d.dpl < gate_selector & 3:
        raise gp(selector_error_code(gate_selector))
    if not d.present:
        raise np_fault(selector_error_code(gate_selector))


def _call_gate_inner(
    cpu: CpuState,
    tables: DescriptorTables,
    gate: GateDescriptor,
    new_cs: SegmentCache,
    old_cs: int,
    return_eip: int,
) -> None:
    """The MORE-PRIVILEGE part of CALL through a 32-bit call gate (SDM Vol. 2, CALL)."""
    new_cpl = new_cs.selector & 3
    ss_sel, new_esp = inner_stack_from_tss(cpu.mmu, cpu.tr, new_cpl)
    new_ss = load_inner_stack_segment(tables, ss_sel, new_cpl)
    count = gate.param_count
    slot = check_stack_room(new_ss, new_esp, 16 + 4 * count, SS_VECTOR, ss_sel & 0xFFFC)
    _check_eip(new_cs, gate.offset)
    old_ss = cpu.seg[SS]
    old_esp = cpu.regs[ESP] & (MASK32 if old_ss.db else 0xFFFF)
    # The parameters are read from the caller's stack with the caller's privilege: a caller
    # cannot make the gate copy bytes it could not read itself.
    params = read_stack_block(cpu, old_ss, old_esp, count, 4, cpu.user) if count else []
    frame = [return_eip, old_cs, *params, old_esp, old_ss.selector]
    # The new stack is more privileged than the caller, so never a user-mode access.
    write_stack_block(cpu, slot, frame, 4, new_cpl == 3)
    cpu.set_cpl(new_cpl)
    cpu.seg[SS] = new_ss
    _set_esp(cpu, new_ss, slot.esp)
    cpu.seg[CS] = new_cs
    cpu.eip = gate.offset


# --------------------------------------------------------------------------------------------
# RET far
# --------------------------------------------------------------------------------------------


@handler("ret_far")
def ret_far(cpu: CpuState, insn: Insn) -> None:
    """RETF / RETF imm16 in protected mode (SDM Vol. 2, RET).

    Pops EIP and CS (#SS(0) if not inside the stack limits). The return CS must be a present
    code segment with RPL >= CPL, DPL = RPL (non-conforming) or DPL <= RPL (conforming), else
    #GP(selector) (#GP(0) for null), #NP(selector) when not present. Same privilege: EIP must
    be inside the limit (#GP(0)) and ESP moves past the return address plus imm16. Outer
    privilege (RPL > CPL): ESP and SS are popped from above the imm16 bytes of parameters, SS
    is checked at the new CPL (#GP(0) null, #GP(selector) type/RPL/DPL, #SS(selector) not
    present), CPL becomes RPL, ESP = popped ESP + imm16, and ES, DS, FS, GS that hold a
    segment more privileged than the new CPL are nulled.
    """
    if cpu.far_fast:
        _ret_far_fast(cpu, insn)
        return
    has_imm = bool(insn.form.operands)
    imm = insn.imm & 0xFFFF if has_imm else 0
    size = insn.size
    cpl = cpu.cpl
    stack = cpu.seg[SS]
    mask = MASK32 if stack.db else 0xFFFF
    esp = cpu.regs[ESP] & mask
    ret_eip, cs_sel = read_stack_block(cpu, stack, esp, 2, size, cpu.user)
    cs_sel &= 0xFFFF
    tables = tables_of(cpu)
    new_cs = load_return_code_segment(tables, cs_sel, cpl)
    new_cpl = cs_sel & 3
    table = cpu.profile.table
    if new_cpl > cpl:
        outer = (esp + 2 * size + imm) & mask
        new_esp, ss_sel = read_stack_block(cpu, stack, outer, 2, size, cpu.user)
        ss_sel &= 0xFFFF
        new_ss = load_stack_segment(tables, ss_sel, new_cpl)
        _check_eip(new_cs, ret_eip)
        cpu.set_cpl(new_cpl)
        cpu.seg[CS] = new_cs
        cpu.eip = ret_eip
        cpu.seg[SS] = new_ss
        if size == 2:
            new_esp = (cpu.regs[ESP] & 0xFFFF0000) | new_esp
        _set_esp(cpu, new_ss, new_esp + imm)
        null_outer_data_segments(cpu, new_cpl)
        charge_path(cpu, insn, table["retf_imm.outer" if has_imm else "retf.outer"])
        return
    _check_eip(new_cs, ret_eip)
    cpu.seg[CS] = new_cs
    cpu.eip = ret_eip
    _set_esp(cpu, stack, (esp + 2 * size + imm) & mask)
    charge_path(cpu, insn, table["retf_imm.same" if has_imm else "retf.same"])


class _OuterReturn:
    """A far RET to an outer level that passed every check (host-side, see
    :func:`_ret_far_fast`): the tables it was checked under, the address and 8 bytes of the
    return CS's and SS's descriptors, the SS selector popped, and the caches they gave."""

    __slots__ = ("cs", "cs_at", "cs_q", "ss", "ss_at", "ss_q", "ss_sel", "tables")

    tables: tuple[int | bool, ...]
    cs_at: int
    cs_q: int
    cs: SegmentCache
    ss_sel: int
    ss_at: int
    ss_q: int
    ss: SegmentCache


#: Marks the far-transfer memo's keys of returns (calls are keyed by selector | CPL << 16).
_RETURN_KEY = 1 << 18


def _gdt_ldt_key(cpu: CpuState) -> tuple[int | bool, ...]:
    """:func:`_tables_key` without TR (a return reads no TSS)."""
    ldtr = cpu.ldtr
    return (cpu.gdtr_base, cpu.gdtr_limit, ldtr.valid, ldtr.base, ldtr.limit)


def _read_tss_stack(mmu: MMU, at: int) -> tuple[int, int]:
    """The inner stack's ESPn and SSn at linear ``at`` in the TSS, read as the reference path
    reads them (a supervisor doubleword, then a word): two fast hits on one page when the
    MMU's host fast path serves it and the doubleword is aligned in it."""
    page = mmu.data_page(at >> 12)
    off = at & 0xFFF
    if page is not None and page.mask & 1 and not off & 3 and off <= 0xFF8:
        page.owner.hits += 2
        return page.dwords[off >> 2], page.words[(off >> 1) + 2]
    return mmu.read32(at, False), mmu.read16((at + 4) & MASK32, False)


def _read_pair(mmu: MMU, at: int) -> int:
    """:func:`read_descriptor` at an address a memo record has seen aligned in one page."""
    page = mmu.data_page(at >> 12)
    if page is not None and page.mask & 1:
        page.owner.hits += 2
        i = (at & 0xFFF) >> 2
        dwords = page.dwords
        return dwords[i] | dwords[i + 1] << 32
    return read_descriptor(mmu, at)


def _ret_far_fast(cpu: CpuState, insn: Insn) -> None:
    """:func:`ret_far` flattened (``cpu.far_fast``), as :func:`_call_far_fast` is: the same
    reads, checks and writes in the same order; descriptors that pass every check with their
    Accessed bit set are checked inline, any other goes to the reference check.

    A 32-bit return to an outer level that passed every check inline is remembered (by the
    CS selector popped and the CPL); the next such return makes the same reads and compares
    their values with the record's, going on the flattened way from the first that differs."""
    has_imm = bool(insn.form.operands)
    imm = insn.imm & 0xFFFF if has_imm else 0
    size = insn.size
    cpl = cpu.cpl
    stack = cpu.seg[SS]
    mask = MASK32 if stack.db else 0xFFFF
    esp = cpu.regs[ESP] & mask
    user = cpu.user
    mmu = cpu.mmu
    ret_eip, cs_sel = _pop_pair(cpu, mmu, stack, esp, mask, size, user)
    cs_sel &= 0xFFFF
    if cs_sel & 0xFFFC == 0:
        raise gp(0)
    pre: tuple[int, ...] = ()
    rec = cpu._far_memo.get(cs_sel | cpl << 16 | _RETURN_KEY)
    ldtr = cpu.ldtr
    if rec is not None and size == 4 and rec.tables == (
            cpu.gdtr_base, cpu.gdtr_limit, ldtr.valid, ldtr.base, ldtr.limit):  # _gdt_ldt_key
        at = rec.cs_at
        page = mmu.data_page(at >> 12)
        if page is not None and page.mask & 1:  # _read_pair, inline
            page.owner.hits += 2
            i = (at & 0xFFF) >> 2
            cs_q = page.dwords[i] | page.dwords[i + 1] << 32
        else:
            cs_q = read_descriptor(mmu, at)
        if cs_q == rec.cs_q:
            new_esp, ss_sel = _pop_pair(cpu, mmu, stack, (esp + 8 + imm) & mask, mask, 4, user)
            if ss_sel & 0xFFFF == rec.ss_sel:
                ss_q = _read_pair(mmu, rec.ss_at)
                if ss_q == rec.ss_q:
                    cs, ss_ = rec.cs, rec.ss
                    _return_outer(cpu, insn, cs.with_selector(cs_sel),
                                  ss_.with_selector(rec.ss_sel), ret_eip, new_esp, cs_sel & 3,
                                  4, imm)
                    return
                pre = (cs_q, new_esp, ss_sel, ss_q)
            else:
                pre = (cs_q, new_esp, ss_sel)
        else:
            pre = (cs_q,)
    gdtr_base, gdtr_limit, ldtr = cpu.gdtr_base, cpu.gdtr_limit, cpu.ldtr
    memo = getattr(cpu, "decode_cache", True)
    cs_at = descriptor_address(gdtr_base, gdtr_limit, ldtr, cs_sel)
    cs_q = pre[0] if pre else read_descriptor(mmu, cs_at)
    c = decode_cached(cs_q, memo)
    new_cpl = cs_sel & 3
    inline = True
    if (c.code and new_cpl >= cpl and (c.dpl <= new_cpl if c.conforming else c.dpl == new_cpl)
            and c.present and c.accessed):
        new_cs = c.template.with_selector(cs_sel)
    else:
        new_cs = return_code_segment(tables_of(cpu), cs_sel, c, cpl)
        inline = False
    if new_cpl > cpl:
        if len(pre) > 1:
            new_esp, ss_sel = pre[1], pre[2]
        else:
            outer = (esp + 2 * size + imm) & mask
            new_esp, ss_sel = _pop_pair(cpu, mmu, stack, outer, mask, size, user)
        ss_sel &= 0xFFFF
        if ss_sel & 0xFFFC == 0:
            raise CpuFault(GP, selector_error_code(ss_sel))
        ss_at = descriptor_address(gdtr_base, gdtr_limit, ldtr, ss_sel)
        ss_q = pre[3] if len(pre) > 3 else read_descriptor(mmu, ss_at)
        v = decode_cached(ss_q, memo)
        if ss_sel & 3 == new_cpl and v.writable and v.dpl == new_cpl and v.present and v.accessed:
            new_ss = v.template.with_selector(ss_sel)
        else:
            new_ss = stack_segment(tables_of(cpu), ss_sel, v, new_cpl)
            inline = False
        if inline and size == 4 and _aligned(cs_at) and _aligned(ss_at):
            back = _OuterReturn()
            back.tables = _gdt_ldt_key(cpu)
            back.cs_at, back.cs_q, back.cs = cs_at, cs_q, new_cs.copy()
            back.ss_sel, back.ss_at, back.ss_q, back.ss = ss_sel, ss_at, ss_q, new_ss.copy()
            far_memo = cpu._far_memo
            if len(far_memo) >= FAR_MEMO_LIMIT:
                far_memo.clear()
            far_memo[cs_sel | cpl << 16 | _RETURN_KEY] = back
        _return_outer(cpu, insn, new_cs, new_ss, ret_eip, new_esp, new_cpl, size, imm)
        return
    _check_eip(new_cs, ret_eip)
    cpu.seg[CS] = new_cs
    cpu.eip = ret_eip
    _set_esp(cpu, stack, (esp + 2 * size + imm) & mask)
    charge_path(cpu, insn, cpu.profile.table["retf_imm.same" if has_imm else "retf.same"])


def _return_outer(
    cpu: CpuState, insn: Insn, new_cs: SegmentCache, new_ss: SegmentCache, ret_eip: int,
    new_esp: int, new_cpl: int, size: int, imm: int,
) -> None:
    """The rest of a far RET to an outer level once CS and SS are checked: EIP inside the new
    CS (#GP(0)), then the commit, data registers the outer level may not hold nulled."""
    if ret_eip < new_cs.min_off or ret_eip > new_cs.max_off:  # _check_eip
        raise gp(0)
    cpu.set_cpl(new_cpl)
    seg = cpu.seg
    seg[CS] = new_cs
    cpu.eip = ret_eip
    seg[SS] = new_ss
    regs = cpu.regs
    if size == 2:
        new_esp = (regs[ESP] & 0xFFFF0000) | new_esp
    new_esp += imm
    # _set_esp
    regs[ESP] = new_esp & MASK32 if new_ss.db else (regs[ESP] & 0xFFFF0000) | (new_esp & 0xFFFF)
    for sreg in DATA_SREGS:
        # invalid_after_outer_return, inline
        held = seg[sreg]
        if held.valid and not held.conforming and held.dpl < new_cpl:
            seg[sreg] = SegmentCache.null(0)
    # charge_path
    key = "retf_imm.outer" if insn.form.operands else "retf.outer"
    cpu.tsc += cpu.profile.table[key] - insn.cycles


def _pop_pair(
    cpu: CpuState, mmu: MMU, stack: SegmentCache, esp: int, mask: int, size: int, user: bool
) -> tuple[int, int]:
    """``read_stack_block(cpu, stack, esp, 2, size, user)`` (``esp`` already masked by the
    stack's B bit, ``mask``), with its aligned one-page doubleword case inline."""
    if size == 4 and stack.readable and stack.min_off <= esp and esp + 7 <= stack.max_off:
        linear = (stack.base + esp) & MASK32
        off = linear & 0xFFF
        if esp + 7 <= mask and not linear & 3 and off <= 0xFF8:
            page = mmu.data_page(linear >> 12)
            if page is not None and page.mask & (1 << user):
                page.owner.hits += 2
                i = off >> 2
                dwords = page.dwords
                return dwords[i], dwords[i + 1]
    first, second = read_stack_block(cpu, stack, esp, 2, size, user)
    return first, second


def read_descriptor(mmu: MMU, address: int) -> int:
    """The 8 bytes at linear ``address`` as one integer, read as
    :class:`~lavsim.mmu.segmentation.DescriptorTables` reads a descriptor: two supervisor
    doubleword reads, the low one first. When the MMU's host fast path serves the page for
    supervisor reads and both doublewords are aligned in it, they are two fast hits on that
    one page, credited at once; otherwise the MMU's ``read32`` makes each."""
    page = mmu.data_page(address >> 12)
    off = address & 0xFFF
    if page is not None and page.mask & 1 and not off & 3 and off <= 0xFF8:
        page.owner.hits += 2
        dwords = page.dwords
        i = off >> 2
        return dwords[i] | dwords[i + 1] << 32
    low = mmu.read32(address, False)
    return low | mmu.read32((address + 4) & MASK32, False) << 32
