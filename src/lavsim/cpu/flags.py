"""Lazy EFLAGS: the status flags of the last arithmetic instruction, computed on demand.

Most instructions that set CF PF AF ZF SF OF are followed by another that overwrites them
before anyone reads them, so the executor records *what was computed* instead of the flags
themselves: ``cpu.lazy_flags`` is a short tuple whose first two items are the kind and the
operand size in bytes (1, 2, 4):

=============  ==========================================  ====================================
kind           tuple                                       flags (SDM Vol. 2 instruction pages)
=============  ==========================================  ====================================
``ADD``        (ADD, size, result, dst, src)               all six from the addition
``ADC``        (ADC, size, result, dst, src, carry_in)     all six, carry-in included
``SUB``        (SUB, size, result, dst, src)               all six from dst - src (CMP, NEG)
``SBB``        (SBB, size, result, dst, src, borrow_in)    all six, borrow-in included
``LOGIC``      (LOGIC, size, result)                       CF = OF = 0, SF ZF PF from result,
                                                           AF undefined (0, as hardware does)
``INC``        (INC, size, result, dst, cf)                as ADD dst+1, but CF is the old CF
``DEC``        (DEC, size, result, dst, cf)                as SUB dst-1, but CF is the old CF
``SZP``        (SZP, size, result, bits)                   SF ZF PF from result; CF OF AF are
                                                           the ``bits`` given (shifts, MUL)
=============  ==========================================  ====================================

``result``, ``dst`` and ``src`` are unsigned and already masked to the operand size. While
``lazy_flags`` is not None the status bits held in ``cpu.eflags`` are stale; :func:`settle`
writes them and clears the record. :func:`condition` evaluates a tttn condition code, straight
from the record for the common kinds (CMP/SUB then Jcc needs no settling at all).
"""

from __future__ import annotations

from typing import Protocol

from lavsim.cpu.regs import AF, CF, OF, PF, SF, STATUS_FLAGS, ZF


class HasFlags(Protocol):
    """What this module reads and settles of a :class:`lavsim.cpu.state.CpuState` (a protocol,
    so that ``flags`` sits below ``state``: the state imports :func:`settle`)."""

    eflags: int
    lazy_flags: tuple[int, ...] | None

ADD = 0
ADC = 1
SUB = 2
SBB = 3
LOGIC = 4
INC = 5
DEC = 6
SZP = 7

#: Sign bit by operand size.
SIGN = {1: 0x80, 2: 0x8000, 4: 0x80000000}
#: Bits in an operand.
BITS = {1: 8, 2: 16, 4: 32}
#: Operand mask by size.
MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}

#: PF for every low byte: set when the byte has an even number of 1 bits (SDM Vol. 1, 3.4.3.1).
PARITY: tuple[int, ...] = tuple(PF if bin(b).count("1") % 2 == 0 else 0 for b in range(256))

_NOT_STATUS = ~STATUS_FLAGS


def szp(result: int, size: int) -> int:
    """SF, ZF and PF of a result of ``size`` bytes."""
    bits = PARITY[result & 0xFF]
    if result == 0:
        bits |= ZF
    if result & SIGN[size]:
        bits |= SF
    return bits


def compute(lazy: tuple[int, ...]) -> int:
    """The six status flags (as EFLAGS bits) that the record ``lazy`` describes."""
    kind = lazy[0]
    size = lazy[1]
    result = lazy[2]
    sign = SIGN[size]
    bits = PARITY[result & 0xFF]
    if result == 0:
        bits |= ZF
    if result & sign:
        bits |= SF
    if kind == LOGIC:
        return bits
    if kind == SZP:
        return bits | lazy[3]
    dst = lazy[3]
    if kind in (ADD, ADC, INC):
        src = 1 if kind == INC else lazy[4]
        if (dst ^ result) & (src ^ result) & sign:
            bits |= OF
        if kind == INC:
            cf = lazy[4]
        elif kind == ADD:
            cf = result < dst
        else:
            cf = dst + src + lazy[5] > MASK[size]
    else:  # SUB, SBB, DEC
        src = 1 if kind == DEC else lazy[4]
        if (dst ^ src) & (dst ^ result) & sign:
            bits |= OF
        if kind == DEC:
            cf = lazy[4]
        elif kind == SUB:
            cf = dst < src
        else:
            cf = dst < src + lazy[5]
    if cf:
        bits |= CF
    if (dst ^ src ^ result) & 0x10:
        bits |= AF
    return bits


def settle(cpu: HasFlags) -> None:
    """Write the lazily kept status flags into ``cpu.eflags`` and clear the record."""
    lazy = cpu.lazy_flags
    if lazy is not None:
        cpu.eflags = (cpu.eflags & _NOT_STATUS) | compute(lazy)
        cpu.lazy_flags = None


def carry(cpu: HasFlags) -> int:
    """The current CF as 0 or 1 (without settling the other flags)."""
    lazy = cpu.lazy_flags
    if lazy is None:
        return cpu.eflags & CF
    kind = lazy[0]
    if kind == SUB:
        return 1 if lazy[3] < lazy[4] else 0
    if kind == ADD:
        return 1 if lazy[2] < lazy[3] else 0
    if kind == LOGIC:
        return 0
    if kind in (INC, DEC):
        return lazy[4]
    return compute(lazy) & CF


def status(cpu: HasFlags) -> int:
    """The six status flags as EFLAGS bits (settling nothing)."""
    lazy = cpu.lazy_flags
    if lazy is None:
        return cpu.eflags & STATUS_FLAGS
    return compute(lazy)


def _signed(value: int, sign: int) -> int:
    return value - (sign << 1) if value & sign else value


def condition(cpu: HasFlags, cc: int) -> bool:
    """Evaluate the tttn condition ``cc`` (0..15, SDM Vol. 2, appendix B.1.4.7)."""
    lazy = cpu.lazy_flags
    if lazy is not None:
        kind = lazy[0]
        if kind == SUB:
            # Straight from the comparison: no flag needs to be materialised.
            dst = lazy[3]
            src = lazy[4]
            if cc == 4:
                return dst == src
            if cc == 5:
                return dst != src
            if cc == 2:
                return dst < src
            if cc == 3:
                return dst >= src
            if cc == 6:
                return dst <= src
            if cc == 7:
                return dst > src
            if cc >= 12:
                sign = SIGN[lazy[1]]
                sd = _signed(dst, sign)
                ss = _signed(src, sign)
                if cc == 12:
                    return sd < ss
                if cc == 13:
                    return sd >= ss
                if cc == 14:
                    return sd <= ss
                return sd > ss
        elif kind == LOGIC:
            result = lazy[2]
            if cc == 4:
                return result == 0
            if cc == 5:
                return result != 0
        elif kind in (DEC, INC):
            if cc == 4:
                return lazy[2] == 0
            if cc == 5:
                return lazy[2] != 0
        flags = compute(lazy)
    else:
        flags = cpu.eflags
    return evaluate(flags, cc)


def evaluate(flags: int, cc: int) -> bool:
    """Evaluate condition ``cc`` against settled EFLAGS bits."""
    base = cc >> 1
    if base == 0:
        t = flags & OF
    elif base == 1:
        t = flags & CF
    elif base == 2:
        t = flags & ZF
    elif base == 3:
        t = flags & (CF | ZF)
    elif base == 4:
        t = flags & SF
    elif base == 5:
        t = flags & PF
    elif base == 6:
        t = (flags & SF != 0) != (flags & OF != 0)
    else:
        t = (flags & ZF != 0) or ((flags & SF != 0) != (flags & OF != 0))
    return bool(t) != bool(cc & 1)
