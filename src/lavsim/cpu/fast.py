"""Fast specialisations of the hottest instruction forms (a simulator-speed cache).

The semantics of every instruction are the readable functions of ``ops_int``, ``ops_control``
and ``ops_string``. This module adds, for a handful of forms that dominate ordinary guest code,
a second function chosen at decode time that does the same thing with fewer host operations:
the operand address, the segment check and the MMU's host page map are inlined into one body,
so a load such as ``mov eax, [esi+8]`` is one Python call instead of four.

The rule every function here keeps: **it is the generic handler, or it calls it.** Each body
handles only the common case it can prove identical to the generic path -- a 32-bit operand,
an access inside the segment limit, dword aligned (so it cannot cross a page), whose page is in
the MMU's fast dict with the permission needed (a modelled TLB hit on the MRU entry of its set,
which changes no TLB state but its hit counter: credited exactly as ``MMU.read32`` and
``MMU.write32`` credit it). In every other case it does nothing yet and calls the generic
path (``CPU.read_mem``, ``CPU.write_mem``, ``CpuState.push``/``pop``, the generic handler),
which repeats the (side-effect-free) checks and raises the architectural fault. Data writes
tell the executor's decoded-instruction cache about writes to code pages as ``CPU.write_mem``
does.

:func:`specialise` is called by the executor (:class:`lavsim.cpu.core.CPU` with ``fast=True``)
on every freshly decoded instruction; it returns the function to run instead of
``insn.handler``, or None. ``tests/cpu/test_fast_paths.py`` runs programs with the fast paths on and
off and compares cycles, registers, memory, faults and the TLBs (contents, LRU order,
statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lavsim.cpu.flags import ADD, DEC, INC, LOGIC, SUB, carry
from lavsim.cpu.insn import Insn
from lavsim.cpu.state import CF, CS, ESP, SS
from lavsim.faults import gp

MASK32 = 0xFFFFFFFF
#: The handler signature; ``cpu`` is a :class:`lavsim.cpu.core.CPU` (typed loosely to keep
#: this module below the executor in the import order).
Fn = Callable[[Any, Insn], None]


# --- shared fast accessors ------------------------------------------------------------------
# Each returns None / False when the fast case does not apply; the caller then takes the
# generic path, which makes the same checks again and does the access (or raises).


def load32(cpu: Any, sreg: int, off: int) -> int | None:
    """A dword read at ``sreg:off`` served from the host page map, or None."""
    s = cpu.seg[sreg]
    if off < s.min_off or off + 3 > s.max_off or not s.readable:
        return None
    lin = (s.base + off) & MASK32
    if lin & 3:
        return None
    e = cpu.mmu.data_page(lin >> 12)
    if e is None or not e.mask & (1 << cpu.user):
        return None
    e.owner.hits += 1
    return int(e.dwords[(lin & 0xFFF) >> 2])


def store32(cpu: Any, sreg: int, off: int, value: int) -> bool:
    """A dword write at ``sreg:off`` through the host page map; False if not applicable."""
    s = cpu.seg[sreg]
    if off < s.min_off or off + 3 > s.max_off or not s.writable:
        return False
    lin = (s.base + off) & MASK32
    if lin & 3:
        return False
    e = cpu.mmu.data_page(lin >> 12)
    if e is None or not e.mask & (4 << cpu.user):
        return False
    e.owner.hits += 1
    e.dwords[(lin & 0xFFF) >> 2] = value & MASK32
    pages = cpu._code_pages
    if pages and (e.base >> 12) in pages:
        cpu.physical_written(e.base | (lin & 0xFFF), 4)
    return True


def _carry(cpu: Any) -> int:
    """CF as 0/1: the common lazy kinds inline, else :func:`lavsim.cpu.flags.carry`."""
    lazy = cpu.lazy_flags
    if lazy is None:
        return int(cpu.eflags & CF)
    kind = lazy[0]
    if kind == SUB:
        return 1 if lazy[3] < lazy[4] else 0
    if kind == ADD:
        return 1 if lazy[2] < lazy[3] else 0
    if kind in (INC, DEC):
        return int(lazy[4])
    if kind == LOGIC:
        return 0
    return carry(cpu)


# --- MOV r32, m32 and MOV m32, r32 ----------------------------------------------------------


def _simple_ea(i: Insn) -> tuple[int, int] | None:
    """(base register or -1, displacement) of a memory operand without an index."""
    if not i.mem or i.index >= 0:
        return None
    return i.base, i.disp


def _mov(i: Insn) -> Fn | None:
    if i.size != 4 or not i.mem:
        return None
    ops = i.form.operands
    shape = _simple_ea(i)
    if shape is None or ops[0] not in ("rv", "r/mv") or ops[1] not in ("rv", "r/mv"):
        return None
    base, disp = shape
    sg = i.seg
    generic = i.handler
    if ops[0] == "rv":  # MOV r32, m32 (8B /r)
        d = i.reg
        if base < 0:
            absolute = disp & MASK32

            def mov_load_abs(cpu: Any, ins: Insn) -> None:
                v = load32(cpu, sg, absolute)
                if v is None:
                    generic(cpu, ins)
                else:
                    cpu.regs[d] = v

            return mov_load_abs

        def mov_load(cpu: Any, ins: Insn) -> None:
            # load32 inlined: this is the most frequent memory instruction.
            off = (cpu.regs[base] + disp) & MASK32
            s = cpu.seg[sg]
            if s.min_off <= off and off + 3 <= s.max_off and s.readable:
                lin = (s.base + off) & MASK32
                if not lin & 3:
                    e = cpu.mmu.data_page(lin >> 12)
                    if e is not None and e.mask & (1 << cpu.user):
                        e.owner.hits += 1
                        cpu.regs[d] = e.dwords[(lin & 0xFFF) >> 2]
                        return
            generic(cpu, ins)

        return mov_load

    r = i.reg  # MOV m32, r32 (89 /r)
    if base < 0:
        absolute = disp & MASK32

        def mov_store_abs(cpu: Any, ins: Insn) -> None:
            if not store32(cpu, sg, absolute, cpu.regs[r]):
                generic(cpu, ins)

        return mov_store_abs

    def mov_store(cpu: Any, ins: Insn) -> None:
        # store32 inlined, as mov_load.
        regs = cpu.regs
        off = (regs[base] + disp) & MASK32
        s = cpu.seg[sg]
        if s.min_off <= off and off + 3 <= s.max_off and s.writable:
            lin = (s.base + off) & MASK32
            if not lin & 3:
                e = cpu.mmu.data_page(lin >> 12)
                if e is not None and e.mask & (4 << cpu.user):
                    e.owner.hits += 1
                    e.dwords[(lin & 0xFFF) >> 2] = regs[r]
                    pages = cpu._code_pages
                    if pages and (e.base >> 12) in pages:
                        cpu.physical_written(e.base | (lin & 0xFFF), 4)
                    return
        generic(cpu, ins)

    return mov_store


# --- ALU r32, r32 / r32, m32 ----------------------------------------------------------------

_ARITH = {"add": ADD, "sub": SUB, "cmp": SUB}
_LOGIC = {"and", "or", "xor", "test"}
_WRITES = {"add", "sub", "and", "or", "xor"}


def _alu(i: Insn) -> Fn | None:
    """ADD/SUB/CMP/AND/OR/XOR/TEST with a 32-bit register destination and a register source,
    or a register destination and a memory source without index."""
    name = i.form.handler
    if i.size != 4 or (name not in _ARITH and name not in _LOGIC):
        return None
    ops = i.form.operands
    if len(ops) != 2:
        return None
    write = name in _WRITES
    if i.mem:
        # Only ``op r32, m32`` (the r/m is the source): the destination is i.reg.
        if ops[0] != "rv" or ops[1] != "r/mv" or _simple_ea(i) is None:
            return None
        return _alu_load(i, name, write)
    # Register, register: which side is the destination depends on the form's direction.
    if ops == ("r/mv", "rv"):
        d, s = i.rm, i.reg
    elif ops == ("rv", "r/mv"):
        d, s = i.reg, i.rm
    else:
        return None
    if name in _ARITH:
        kind = _ARITH[name]
        if kind == ADD:

            def add_rr(cpu: Any, _: Insn) -> None:
                regs = cpu.regs
                a = regs[d]
                b = regs[s]
                r = (a + b) & MASK32
                regs[d] = r
                cpu.lazy_flags = (ADD, 4, r, a, b)

            return add_rr
        if write:

            def sub_rr(cpu: Any, _: Insn) -> None:
                regs = cpu.regs
                a = regs[d]
                b = regs[s]
                r = (a - b) & MASK32
                regs[d] = r
                cpu.lazy_flags = (SUB, 4, r, a, b)

            return sub_rr

        def cmp_rr(cpu: Any, _: Insn) -> None:
            regs = cpu.regs
            a = regs[d]
            b = regs[s]
            cpu.lazy_flags = (SUB, 4, (a - b) & MASK32, a, b)

        return cmp_rr
    if name == "xor":

        def xor_rr(cpu: Any, _: Insn) -> None:
            regs = cpu.regs
            r = regs[d] ^ regs[s]
            regs[d] = r
            cpu.lazy_flags = (LOGIC, 4, r)

        return xor_rr
    if name == "or":

        def or_rr(cpu: Any, _: Insn) -> None:
            regs = cpu.regs
            r = regs[d] | regs[s]
            regs[d] = r
            cpu.lazy_flags = (LOGIC, 4, r)

        return or_rr

    def and_rr(cpu: Any, _: Insn) -> None:  # AND, TEST
        regs = cpu.regs
        r = regs[d] & regs[s]
        if write:
            regs[d] = r
        cpu.lazy_flags = (LOGIC, 4, r)

    return and_rr


def _alu_load(i: Insn, name: str, write: bool) -> Fn:
    base, disp = i.base, i.disp
    sg = i.seg
    d = i.reg
    generic = i.handler
    kind = _ARITH.get(name, LOGIC)

    def alu_load(cpu: Any, ins: Insn) -> None:
        off = ((cpu.regs[base] if base >= 0 else 0) + disp) & MASK32
        b = load32(cpu, sg, off)
        if b is None:
            generic(cpu, ins)
            return
        regs = cpu.regs
        a = regs[d]
        if kind == ADD:
            r = (a + b) & MASK32
            cpu.lazy_flags = (ADD, 4, r, a, b)
        elif kind == SUB:
            r = (a - b) & MASK32
            cpu.lazy_flags = (SUB, 4, r, a, b)
        else:
            r = a & b if name in ("and", "test") else (a | b if name == "or" else a ^ b)
            cpu.lazy_flags = (LOGIC, 4, r)
        if write:
            regs[d] = r

    return alu_load


# --- INC/DEC r32 ----------------------------------------------------------------------------


def _incdec(i: Insn) -> Fn | None:
    if i.size != 4 or i.mem:
        return None
    r = i.reg if i.form.operands[0] == "+rv" else i.rm
    if i.form.handler == "inc":

        def inc_r(cpu: Any, _: Insn) -> None:
            regs = cpu.regs
            a = regs[r]
            v = (a + 1) & MASK32
            regs[r] = v
            cpu.lazy_flags = (INC, 4, v, a, _carry(cpu))

        return inc_r

    def dec_r(cpu: Any, _: Insn) -> None:
        regs = cpu.regs
        a = regs[r]
        v = (a - 1) & MASK32
        regs[r] = v
        cpu.lazy_flags = (DEC, 4, v, a, _carry(cpu))

    return dec_r


# --- PUSH r32 / POP r32, CALL rel32 / RET ---------------------------------------------------


def _push(i: Insn) -> Fn | None:
    if i.size != 4 or i.mem or i.form.operands[0] != "+rv":
        return None
    r = i.reg
    generic = i.handler

    def push_r(cpu: Any, ins: Insn) -> None:
        regs = cpu.regs
        if cpu.seg[SS].db:
            esp = (regs[ESP] - 4) & MASK32
            if store32(cpu, SS, esp, regs[r]):
                regs[ESP] = esp
                return
        generic(cpu, ins)

    return push_r


def _pop(i: Insn) -> Fn | None:
    if i.size != 4 or i.mem or i.form.operands[0] != "+rv":
        return None
    r = i.reg
    generic = i.handler

    def pop_r(cpu: Any, ins: Insn) -> None:
        regs = cpu.regs
        if cpu.seg[SS].db:
            esp = regs[ESP]
            v = load32(cpu, SS, esp)
            if v is not None:
                # ESP first, then the register: POP ESP loads the value popped.
                regs[ESP] = (esp + 4) & MASK32
                regs[r] = v
                return
        generic(cpu, ins)

    return pop_r


def _call_rel(i: Insn) -> Fn | None:
    if i.size != 4:
        return None
    target = i.imm
    ret = i.next_eip
    generic = i.handler

    def call_rel(cpu: Any, ins: Insn) -> None:
        cs = cpu.seg[CS]
        if cs.min_off <= target <= cs.max_off and cpu.seg[SS].db:
            regs = cpu.regs
            esp = (regs[ESP] - 4) & MASK32
            if store32(cpu, SS, esp, ret):
                regs[ESP] = esp
                cpu.eip = target
                return
        generic(cpu, ins)

    return call_rel


def _ret_near(i: Insn) -> Fn | None:
    if i.size != 4 or i.form.operands:
        return None
    generic = i.handler

    def ret_near(cpu: Any, ins: Insn) -> None:
        if cpu.seg[SS].db:
            regs = cpu.regs
            esp = regs[ESP]
            target = load32(cpu, SS, esp)
            if target is not None:
                cs = cpu.seg[CS]
                if target < cs.min_off or target > cs.max_off:
                    raise gp(0)
                regs[ESP] = (esp + 4) & MASK32
                cpu.eip = target
                return
        generic(cpu, ins)

    return ret_near


_SPECIALISERS: dict[str, Callable[[Insn], Fn | None]] = {
    "mov": _mov,
    "add": _alu, "sub": _alu, "cmp": _alu, "and": _alu, "or": _alu, "xor": _alu, "test": _alu,
    "inc": _incdec, "dec": _incdec,
    "push": _push, "pop": _pop,
    "call_rel": _call_rel, "ret_near": _ret_near,
}


def specialise(i: Insn) -> Fn | None:
    """A faster function with the same effect as ``i.handler`` for this instruction, or None.

    ``i.handler`` must already be the generic (bound) handler: the specialisations fall back
    to it.
    """
    make = _SPECIALISERS.get(i.form.handler)
    return make(i) if make is not None else None
