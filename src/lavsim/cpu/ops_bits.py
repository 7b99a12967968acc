"""Bit tests and scans, double-precision shifts, and the atomic exchanges: the instructions
compiled C needs beyond the base subset (Intel SDM Vol. 2: BT, BTS, BTR, BTC, BSF, BSR, SHLD,
SHRD, XADD, CMPXCHG, CMPXCHG8B, ENDBR32).

Flags follow the manual's pages; where a flag is *undefined* this module leaves it as it was
(what the differential test masks), except that SHLD/SHRD compute OF for every count the way
a one-bit shift defines it. Conventions of :mod:`lavsim.cpu.ops_int` hold: every access that
can fault comes before the first register is changed, and LOCK needs no modelling beyond the
decoder's check (one processor, no bus).
"""

from __future__ import annotations

from lavsim.cpu.flags import ADD, SUB, SZP
from lavsim.cpu.handlers import Semantics
from lavsim.cpu.insn import Insn
from lavsim.cpu.ops_int import (
    BITS,
    MASK,
    SIGN,
    Fn,
    ea_fn,
    reg_get,
    reg_put,
    rm_get,
    rm_put,
)
from lavsim.cpu.state import CF, EAX, EBX, ECX, EDX, OF, ZF, CpuState
from lavsim.faults import ud

SEMANTICS = Semantics(__name__)
bind = SEMANTICS.bind
simple = SEMANTICS.simple

#: CPUID family from which CMPXCHG8B exists (the Pentium; CPUID.1:EDX.CX8).
CX8_FAMILY = 5


def _set_flag_bits(cpu: CpuState, mask: int, bits: int) -> None:
    """Change only the status flags in ``mask`` (the others keep their values)."""
    flags = cpu.get_eflags()
    cpu.eflags = (flags & ~mask) | (bits & mask)


def _signed(value: int, size: int) -> int:
    return value - (SIGN[size] << 1) if value & SIGN[size] else value


# --- BT BTS BTR BTC ----------------------------------------------------------------------


_BIT_OPS = {"bt": 0, "bts": 1, "btr": 2, "btc": 3}


def _bit_apply(op: int, value: int, bit: int) -> int:
    mask = 1 << bit
    if op == 1:
        return value | mask
    if op == 2:
        return value & ~mask
    return value ^ mask


@bind("bt", "bts", "btr", "btc")
def bind_bt(i: Insn) -> Fn:
    """BT/BTS/BTR/BTC r/m, r or imm8: CF <- the selected bit, which BTS sets, BTR clears and
    BTC complements. A register base or an immediate offset takes the offset modulo the operand
    width; a memory base with a register offset addresses the bit string: the signed offset
    selects the operand-sized word ``ea + (offset >> log2 width) * size``. ZF is unaffected;
    OF SF AF PF are undefined (left unchanged)."""
    size = i.size
    bits = BITS[size]
    op = _BIT_OPS[i.form.handler]
    imm_form = i.form.operands[1] == "imm8"
    offset_get = (lambda cpu: i.imm) if imm_form else reg_get(i.reg, size)
    if not i.mem:
        get = reg_get(i.rm, size)
        put = reg_put(i.rm, size)

        def bt_r(cpu: CpuState, _: Insn) -> None:
            bit = offset_get(cpu) % bits
            value = get(cpu)
            if op:
                put(cpu, _bit_apply(op, value, bit))
            _set_flag_bits(cpu, CF, CF if value >> bit & 1 else 0)

        return bt_r
    ea = ea_fn(i)
    seg = i.seg
    shift = bits.bit_length() - 1

    def bt_m(cpu: CpuState, _: Insn) -> None:
        offset = offset_get(cpu)
        if imm_form:
            where = ea(cpu)
            bit = offset % bits
        else:
            signed = _signed(offset, size)
            where = (ea(cpu) + (signed >> shift) * size) & 0xFFFFFFFF
            bit = signed & (bits - 1)
        value = cpu.read_mem(seg, where, size)
        if op:
            cpu.write_mem(seg, where, size, _bit_apply(op, value, bit))
        _set_flag_bits(cpu, CF, CF if value >> bit & 1 else 0)

    return bt_m


# --- BSF BSR -----------------------------------------------------------------------------


@bind("bsf", "bsr")
def bind_bsf(i: Insn) -> Fn:
    """BSF/BSR r, r/m: the index of the lowest/highest set bit of the source; ZF = (source is
    0), and then the destination is undefined: it is left unchanged (as the processors of the
    period and QEMU do). CF OF SF AF PF are undefined (left unchanged)."""
    size = i.size
    get = rm_get(i, size)
    put = reg_put(i.reg, size)
    forward = i.form.handler == "bsf"

    def bsf(cpu: CpuState, _: Insn) -> None:
        value = get(cpu)
        if value == 0:
            _set_flag_bits(cpu, ZF, ZF)
            return
        index = (value & -value).bit_length() - 1 if forward else value.bit_length() - 1
        put(cpu, index)
        _set_flag_bits(cpu, ZF, 0)

    return bsf


# --- SHLD SHRD ---------------------------------------------------------------------------


@bind("shld", "shrd")
def bind_shd(i: Insn) -> Fn:
    """SHLD/SHRD r/m, r, imm8 or CL: shift the destination left/right by count mod 32, filling
    from the source register. A count of 0 changes nothing; CF = the last bit shifted out;
    SF ZF PF from the result; OF = (sign changed), defined for a count of 1; AF undefined (0).
    A count above the operand width (16-bit forms only) leaves result and flags undefined:
    lavsim shifts the 32-bit concatenation as the processors of the period do."""
    size = i.size
    bits = BITS[size]
    mask = MASK[size]
    left = i.form.handler == "shld"
    count_get = (lambda cpu: i.imm & 0xFF) if i.form.operands[2] == "imm8" else (
        lambda cpu: cpu.regs[ECX] & 0xFF
    )
    src_get = reg_get(i.reg, size)
    get = rm_get(i, size)
    put = rm_put(i, size)
    ea = ea_fn(i) if i.mem else None
    seg = i.seg

    def compute(cpu: CpuState, d: int, s: int, count: int) -> int:
        if left:
            wide = (d << bits | s) << count
            r = (wide >> bits) & mask
            cf = (wide >> (2 * bits)) & 1
        else:
            wide = (s << bits | d) >> (count - 1)
            cf = wide & 1
            r = (wide >> 1) & mask
        of = OF if (r ^ d) & SIGN[size] else 0
        cpu.lazy_flags = (SZP, size, r, (CF if cf else 0) | of)
        return r

    if ea is not None:

        def shd_m(cpu: CpuState, _: Insn) -> None:
            count = count_get(cpu) & 0x1F
            offset = ea(cpu)
            d = cpu.read_mem(seg, offset, size)
            if count:
                cpu.write_mem(seg, offset, size, compute(cpu, d, src_get(cpu), count))

        return shd_m

    def shd_r(cpu: CpuState, _: Insn) -> None:
        count = count_get(cpu) & 0x1F
        if count:
            put(cpu, compute(cpu, get(cpu), src_get(cpu), count))

    return shd_r


# --- XADD CMPXCHG CMPXCHG8B --------------------------------------------------------------


@bind("xadd")
def bind_xadd(i: Insn) -> Fn:
    """XADD r/m, r: TEMP <- SRC + DEST; SRC <- DEST; DEST <- TEMP; flags as ADD."""
    size = i.size
    mask = MASK[size]
    src_get, src_put = reg_get(i.reg, size), reg_put(i.reg, size)
    get, put = rm_get(i, size), rm_put(i, size)
    if i.mem:
        ea = ea_fn(i)
        seg = i.seg

        def xadd_m(cpu: CpuState, _: Insn) -> None:
            offset = ea(cpu)
            d = cpu.read_mem(seg, offset, size)
            s = src_get(cpu)
            r = (d + s) & mask
            cpu.write_mem(seg, offset, size, r)
            src_put(cpu, d)
            cpu.lazy_flags = (ADD, size, r, d, s)

        return xadd_m

    def xadd_r(cpu: CpuState, _: Insn) -> None:
        d = get(cpu)
        s = src_get(cpu)
        r = (d + s) & mask
        src_put(cpu, d)
        put(cpu, r)
        cpu.lazy_flags = (ADD, size, r, d, s)

    return xadd_r


@bind("cmpxchg")
def bind_cmpxchg(i: Insn) -> Fn:
    """CMPXCHG r/m, r: compare the accumulator with DEST (flags as CMP accumulator, DEST); if
    equal DEST <- SRC, else the accumulator <- DEST. A memory destination is written in both
    cases (the manual: the processor never makes a locked read without a write), so a
    read-only page faults even when the comparison fails."""
    size = i.size
    acc_get, acc_put = reg_get(EAX, size), reg_put(EAX, size)
    src_get = reg_get(i.reg, size)
    get, put = rm_get(i, size), rm_put(i, size)
    if i.mem:
        ea = ea_fn(i)
        seg = i.seg

        def cmpxchg_m(cpu: CpuState, _: Insn) -> None:
            offset = ea(cpu)
            d = cpu.read_mem(seg, offset, size)
            a = acc_get(cpu)
            if a == d:
                cpu.write_mem(seg, offset, size, src_get(cpu))
            else:
                cpu.write_mem(seg, offset, size, d)
                acc_put(cpu, d)
            cpu.lazy_flags = (SUB, size, (a - d) & MASK[size], a, d)

        return cmpxchg_m

    def cmpxchg_r(cpu: CpuState, _: Insn) -> None:
        d = get(cpu)
        a = acc_get(cpu)
        if a == d:
            put(cpu, src_get(cpu))
        else:
            acc_put(cpu, d)
        cpu.lazy_flags = (SUB, size, (a - d) & MASK[size], a, d)

    return cmpxchg_r


@simple("cmpxchg8b")
def cmpxchg8b(cpu: CpuState, i: Insn) -> None:
    """CMPXCHG8B m64: if EDX:EAX = m64 then ZF <- 1, m64 <- ECX:EBX, else ZF <- 0, EDX:EAX <-
    m64 (m64 is written back in both cases). Only ZF changes. #UD where CPUID does not report
    CX8 (family below 5: the 486)."""
    if (cpu.cpuid_signature >> 8) & 0xF < CX8_FAMILY:
        raise ud()
    offset = ea_fn(i)(cpu)
    seg = i.seg
    low = cpu.read_mem(seg, offset, 4)
    high = cpu.read_mem(seg, (offset + 4) & 0xFFFFFFFF, 4)
    regs = cpu.regs
    if low == regs[EAX] and high == regs[EDX]:
        new_low, new_high, zf = regs[EBX], regs[ECX], ZF
    else:
        new_low, new_high, zf = low, high, 0
    cpu.write_mem(seg, offset, 4, new_low)
    cpu.write_mem(seg, (offset + 4) & 0xFFFFFFFF, 4, new_high)
    if not zf:
        regs[EAX] = low
        regs[EDX] = high
    _set_flag_bits(cpu, ZF, zf)


@simple("endbr32")
def endbr32(cpu: CpuState, i: Insn) -> None:
    """ENDBR32 (F3 0F 1E FB): a no-op (CET is not modelled). Any other byte after 0F 1E, or no
    F3 prefix, is #UD: the processors modelled have no hint-NOP space there."""
    if i.rep != 0xF3 or i.mem or i.rm != 3:
        raise ud()
