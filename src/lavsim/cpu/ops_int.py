"""Integer instructions: data movement, arithmetic and logic, shifts, multiply/divide, stack,
flag instructions (Intel SDM Vol. 2, one instruction page each).

Every instruction is entered twice in this module's table :data:`SEMANTICS`, under its
``isa.py`` handler name (:class:`lavsim.cpu.handlers.Semantics`):

* a **binder**: called once by the decoder with the decoded instruction, it returns a function
  specialised for that instruction's operand forms (register or memory, register number,
  immediate, size) so the hot path makes no decisions;
* a generic **handler** that binds on every call, for code that builds an
  :class:`~lavsim.cpu.insn.Insn` by hand.

Conventions every function keeps: all checks and every memory access that can fault come before
the first register is changed, so a :class:`~lavsim.faults.CpuFault` leaves the registers as
they were (the executor restores EIP and the flags it snapshot before the instruction); status
flags are recorded lazily (:mod:`lavsim.cpu.flags`).
"""

from __future__ import annotations

from collections.abc import Callable

from lavsim.cpu.flags import ADC, ADD, DEC, INC, LOGIC, SBB, SUB, SZP, carry, condition
from lavsim.cpu.handlers import Semantics
from lavsim.cpu.insn import Insn
from lavsim.cpu.state import (
    AF,
    CF,
    DF,
    EAX,
    EBP,
    EDX,
    EFLAGS_WRITABLE,
    ESP,
    IF,
    IOPL,
    OF,
    PF,
    RF,
    SF,
    SS,
    VM,
    ZF,
    CpuState,
)
from lavsim.faults import de, ud

MASK32 = 0xFFFFFFFF
MASK = {1: 0xFF, 2: 0xFFFF, 4: MASK32}
SIGN = {1: 0x80, 2: 0x8000, 4: 0x80000000}
BITS = {1: 8, 2: 16, 4: 32}

Fn = Callable[[CpuState, Insn], None]
Get = Callable[[CpuState], int]
Put = Callable[[CpuState, int], None]

# Operand kinds of a form's operand list.
RM, REG, IMM, ONE, CL = range(5)


def _kind(op: str) -> int:
    if op.startswith("r/m") or op.startswith("moffs") or op == "m":
        return RM
    if op in ("imm8", "simm8", "imm16", "immv"):
        return IMM
    if op == "1":
        return ONE
    if op == "CL":
        return CL
    return REG  # r8/r16/r32/rv, +r, AL, eAX (the decoder sets reg = rm = 0 for AL/eAX)


def _signed(value: int, size: int) -> int:
    sign = SIGN[size]
    return value - (sign << 1) if value & sign else value


# --- operand accessors built at decode time ------------------------------------------------


def ea_fn(i: Insn) -> Get:
    """A function computing the effective offset of ``i``'s memory operand."""
    base, index, scale, disp = i.base, i.index, i.scale, i.disp
    if index < 0:
        if base < 0:
            offset = disp & MASK32
            return lambda cpu: offset
        if disp == 0:
            return lambda cpu: cpu.regs[base]
        return lambda cpu: (cpu.regs[base] + disp) & MASK32
    if base < 0:
        return lambda cpu: (cpu.regs[index] * scale + disp) & MASK32
    return lambda cpu: (cpu.regs[base] + cpu.regs[index] * scale + disp) & MASK32


def reg_get(r: int, size: int) -> Get:
    """Reader of general register ``r`` (ModRM numbering) as an operand of ``size`` bytes."""
    if size == 4:
        return lambda cpu: cpu.regs[r]
    if size == 2:
        return lambda cpu: cpu.regs[r] & 0xFFFF
    if r < 4:
        return lambda cpu: cpu.regs[r] & 0xFF
    hi = r - 4
    return lambda cpu: (cpu.regs[hi] >> 8) & 0xFF


def reg_put(r: int, size: int) -> Put:
    """Writer of general register ``r`` as an operand of ``size`` bytes."""
    if size == 4:

        def put4(cpu: CpuState, v: int) -> None:
            cpu.regs[r] = v & MASK32

        return put4

    def put(cpu: CpuState, v: int) -> None:
        cpu.set_reg(r, size, v)

    return put


def rm_get(i: Insn, size: int) -> Get:
    """Reader of the r/m operand of ``i`` (register, or memory through ``i.seg``)."""
    if not i.mem:
        return reg_get(i.rm, size)
    ea = ea_fn(i)
    seg = i.seg
    return lambda cpu: cpu.read_mem(seg, ea(cpu), size)


def rm_put(i: Insn, size: int) -> Put:
    """Writer of the r/m operand of ``i``."""
    if not i.mem:
        return reg_put(i.rm, size)
    ea = ea_fn(i)
    seg = i.seg

    def put(cpu: CpuState, v: int) -> None:
        cpu.write_mem(seg, ea(cpu), size, v)

    return put


def operand_get(i: Insn, kind: int, size: int) -> Get:
    """Reader of an operand of the given kind."""
    if kind == RM:
        return rm_get(i, size)
    if kind == REG:
        return reg_get(i.reg, size)
    if kind == IMM:
        value = i.imm & MASK[size]
        return lambda cpu: value
    if kind == ONE:
        return lambda cpu: 1
    return lambda cpu: cpu.regs[1] & 0xFF  # CL


def operand_put(i: Insn, kind: int, size: int) -> Put:
    """Writer of an operand of the given kind (r/m or reg)."""
    return rm_put(i, size) if kind == RM else reg_put(i.reg, size)


def _shape(i: Insn) -> tuple[int, int]:
    ops = i.form.operands
    return _kind(ops[0]), (_kind(ops[1]) if len(ops) > 1 else -1)


#: This module's semantics (merged into the decoder's table by :mod:`lavsim.cpu.decoder`).
SEMANTICS = Semantics(__name__)
#: Register a binder and its generic handler for each name.
bind = SEMANTICS.bind
#: Register a handler that needs no specialisation (its binder returns it unchanged).
simple = SEMANTICS.simple


# --- MOV, MOVZX, MOVSX, LEA, XCHG ----------------------------------------------------------


@bind("mov")
def bind_mov(i: Insn) -> Fn:
    """MOV: DEST <- SRC (no flags). Register/immediate forms get a direct store."""
    size = i.size
    dk, sk = _shape(i)
    if (size == 4 and dk == REG) or (dk == RM and not i.mem and size == 4):
        d = i.reg if dk == REG else i.rm
        if sk == IMM:
            value = i.imm & MASK32

            def mov_ri(cpu: CpuState, _: Insn) -> None:
                cpu.regs[d] = value

            return mov_ri
        if sk == REG or (sk == RM and not i.mem):
            s = i.reg if sk == REG else i.rm

            def mov_rr(cpu: CpuState, _: Insn) -> None:
                cpu.regs[d] = cpu.regs[s]

            return mov_rr
        if sk == RM:
            ea = ea_fn(i)
            seg = i.seg

            def mov_rm(cpu: CpuState, _: Insn) -> None:
                cpu.regs[d] = cpu.read_mem(seg, ea(cpu), 4)

            return mov_rm
    get = operand_get(i, sk, size)
    put = operand_put(i, dk, size)

    def mov(cpu: CpuState, _: Insn) -> None:
        put(cpu, get(cpu))

    return mov


@bind("movzx", "movsx")
def bind_movx(i: Insn) -> Fn:
    """MOVZX/MOVSX: DEST <- zero/sign-extended SRC of 8 or 16 bits."""
    src_size = 1 if i.form.operands[1] == "r/m8" else 2
    get = rm_get(i, src_size)
    put = reg_put(i.reg, i.size)
    if i.form.handler == "movzx":

        def movzx(cpu: CpuState, _: Insn) -> None:
            put(cpu, get(cpu))

        return movzx

    def movsx(cpu: CpuState, _: Insn) -> None:
        put(cpu, _signed(get(cpu), src_size))

    return movsx


@bind("lea")
def bind_lea(i: Insn) -> Fn:
    """LEA: DEST <- effective address (truncated to a 16-bit operand size)."""
    ea = ea_fn(i)
    put = reg_put(i.reg, i.size)

    def lea(cpu: CpuState, _: Insn) -> None:
        put(cpu, ea(cpu))

    return lea


@bind("xchg")
def bind_xchg(i: Insn) -> Fn:
    """XCHG: swap the r/m and reg operands (the memory write comes before the register's)."""
    size = i.size
    get_rm, put_rm = rm_get(i, size), rm_put(i, size)
    get_r, put_r = reg_get(i.reg, size), reg_put(i.reg, size)

    def xchg(cpu: CpuState, _: Insn) -> None:
        a = get_rm(cpu)
        b = get_r(cpu)
        put_rm(cpu, b)
        put_r(cpu, a)

    return xchg


# --- the stack ------------------------------------------------------------------------------


@bind("push")
def bind_push(i: Insn) -> Fn:
    """PUSH r/m, reg, imm: the operand is read before ESP is decremented (PUSH ESP pushes the
    old value)."""
    size = i.size
    k = _kind(i.form.operands[0])
    get = operand_get(i, IMM if k == IMM else k, size)

    def push(cpu: CpuState, _: Insn) -> None:
        cpu.push(get(cpu), size)

    return push


@bind("pop")
def bind_pop(i: Insn) -> Fn:
    """POP reg / r/m. For a memory destination the address is computed with the incremented
    ESP (SDM Vol. 2, POP); ESP is committed only after the store succeeds."""
    size = i.size
    if not i.mem:
        put = reg_put(i.reg if _kind(i.form.operands[0]) == REG else i.rm, size)

        def pop_r(cpu: CpuState, _: Insn) -> None:
            put(cpu, cpu.pop(size))

        return pop_r
    ea = ea_fn(i)
    seg = i.seg

    def pop_m(cpu: CpuState, _: Insn) -> None:
        regs = cpu.regs
        old = regs[ESP]
        value = cpu.pop(size)
        new = regs[ESP]
        offset = ea(cpu)
        regs[ESP] = old
        cpu.write_mem(seg, offset, size, value)
        regs[ESP] = new

    return pop_m


def _stack_block_write(cpu: CpuState, values: list[int], size: int) -> None:
    """Push ``values`` in order, all or nothing: memory first, ESP committed last."""
    mask = cpu.stack_offset_mask()
    esp = cpu.regs[ESP]
    for k, v in enumerate(values):
        cpu.write_mem(SS, (esp - size * (k + 1)) & mask, size, v)
    cpu.regs[ESP] = (esp & ~mask & MASK32) | ((esp - size * len(values)) & mask)


def _stack_block_read(cpu: CpuState, count: int, size: int) -> list[int]:
    """Pop ``count`` values (first popped first), ESP committed only when all are read."""
    mask = cpu.stack_offset_mask()
    esp = cpu.regs[ESP]
    values = [cpu.read_mem(SS, (esp + size * k) & mask, size) for k in range(count)]
    cpu.regs[ESP] = (esp & ~mask & MASK32) | ((esp + size * count) & mask)
    return values


@simple("pushad")
def pushad(cpu: CpuState, i: Insn) -> None:
    """PUSHAD/PUSHA: EAX ECX EDX EBX, the original ESP, EBP ESI EDI."""
    size = i.size
    m = MASK[size]
    _stack_block_write(cpu, [r & m for r in cpu.regs], size)


@simple("popad")
def popad(cpu: CpuState, i: Insn) -> None:
    """POPAD/POPA: EDI ESI EBP, (ESP skipped), EBX EDX ECX EAX."""
    size = i.size
    values = _stack_block_read(cpu, 8, size)
    for k, v in enumerate(values):
        r = 7 - k
        if r != ESP:
            cpu.set_reg(r, size, v)


@simple("pushfd")
def pushfd(cpu: CpuState, i: Insn) -> None:
    """PUSHFD/PUSHF: EFLAGS with VM and RF cleared in the image pushed."""
    cpu.push(cpu.get_eflags() & ~(VM | RF) & MASK[i.size], i.size)


@simple("popfd")
def popfd(cpu: CpuState, i: Insn) -> None:
    """POPFD/POPF in protected mode: IOPL changes only at CPL 0, IF only when CPL <= IOPL;
    VM (and VIF/VIP, not modelled) are never changed; RF is cleared."""
    value = cpu.pop(i.size)
    mask = EFLAGS_WRITABLE & ~VM
    if cpu.cpl > 0:
        mask &= ~IOPL
        if cpu.cpl > cpu.iopl:
            mask &= ~IF
    if i.size == 2:
        mask &= 0xFFFF
        value &= 0xFFFF
    cpu.set_eflags(value & ~RF, mask | RF)


@simple("cdq")
def cdq(cpu: CpuState, i: Insn) -> None:
    """CDQ/CWD: EDX:EAX <- sign-extend(EAX) (DX:AX for CWD)."""
    size = i.size
    negative = cpu.regs[EAX] & SIGN[size]
    cpu.set_reg(EDX, size, MASK[size] if negative else 0)


@simple("cwde")
def cwde(cpu: CpuState, i: Insn) -> None:
    """CWDE/CBW: EAX <- sign-extend(AX) (AX <- sign-extend(AL) for CBW)."""
    half = i.size // 2
    cpu.set_reg(EAX, i.size, _signed(cpu.regs[EAX] & MASK[half], half))


@simple("leave")
def leave(cpu: CpuState, i: Insn) -> None:
    """LEAVE: ESP <- EBP; EBP <- POP (EBP read before anything changes)."""
    mask = cpu.stack_offset_mask()
    regs = cpu.regs
    frame = regs[EBP] & mask
    value = cpu.read_mem(SS, frame, i.size)
    regs[ESP] = (regs[ESP] & ~mask & MASK32) | ((frame + i.size) & mask)
    cpu.set_reg(EBP, i.size, value)


@simple("enter")
def enter(cpu: CpuState, i: Insn) -> None:
    """ENTER imm16, imm8: make a stack frame with nesting level imm8 mod 32 (SDM Vol. 2, ENTER).

    All stack writes are made before ESP and EBP are committed, so a fault leaves them as
    they were.
    """
    size = i.size
    alloc = i.imm & 0xFFFF
    level = i.imm2 & 0x1F
    mask = cpu.stack_offset_mask()
    regs = cpu.regs
    esp = regs[ESP] & mask
    ebp = regs[EBP]
    esp = (esp - size) & mask
    cpu.write_mem(SS, esp, size, ebp)
    frame_temp = esp
    if level > 0:
        for _ in range(1, level):
            ebp = (ebp - size) & mask
            value = cpu.read_mem(SS, ebp & mask, size)
            esp = (esp - size) & mask
            cpu.write_mem(SS, esp, size, value)
        esp = (esp - size) & mask
        cpu.write_mem(SS, esp, size, frame_temp)
    esp = (esp - alloc) & mask
    cpu.set_reg(EBP, size, frame_temp)
    regs[ESP] = (regs[ESP] & ~mask & MASK32) | esp


# --- flags instructions -----------------------------------------------------------------


@simple("lahf")
def lahf(cpu: CpuState, i: Insn) -> None:
    """LAHF: AH <- SF:ZF:0:AF:0:PF:1:CF."""
    cpu.set_reg(4, 1, cpu.get_eflags() & 0xD7 | 0x02)


@simple("sahf")
def sahf(cpu: CpuState, i: Insn) -> None:
    """SAHF: SF ZF AF PF CF <- AH."""
    cpu.set_eflags((cpu.regs[EAX] >> 8) & 0xFF, SF | ZF | AF | PF | CF)


@simple("clc")
def clc(cpu: CpuState, i: Insn) -> None:
    """CLC: CF <- 0."""
    cpu.set_eflags(0, CF)


@simple("stc")
def stc(cpu: CpuState, i: Insn) -> None:
    """STC: CF <- 1."""
    cpu.set_eflags(CF, CF)


@simple("cmc")
def cmc(cpu: CpuState, i: Insn) -> None:
    """CMC: CF <- NOT CF."""
    cpu.set_eflags(carry(cpu) ^ 1, CF)


@simple("cld")
def cld(cpu: CpuState, i: Insn) -> None:
    """CLD: DF <- 0 (the status flags stay lazy)."""
    cpu.eflags &= ~DF


@simple("std")
def std(cpu: CpuState, i: Insn) -> None:
    """STD: DF <- 1."""
    cpu.eflags |= DF


@simple("nop")
def nop(cpu: CpuState, i: Insn) -> None:
    """NOP."""


@simple("ud2")
def ud2(cpu: CpuState, i: Insn) -> None:
    """UD2: raise #UD."""
    raise ud()


@simple("bswap")
def bswap(cpu: CpuState, i: Insn) -> None:
    """BSWAP r32: reverse the byte order."""
    cpu.regs[i.reg] = int.from_bytes(cpu.regs[i.reg].to_bytes(4, "little"), "big")


# --- arithmetic and logic ------------------------------------------------------------------
# Each operation takes (cpu, dst, src, size), records its flags and returns the result.


def op_add(cpu: CpuState, d: int, s: int, size: int) -> int:
    r = (d + s) & MASK[size]
    cpu.lazy_flags = (ADD, size, r, d, s)
    return r


def op_adc(cpu: CpuState, d: int, s: int, size: int) -> int:
    c = carry(cpu)
    r = (d + s + c) & MASK[size]
    cpu.lazy_flags = (ADC, size, r, d, s, c)
    return r


def op_sub(cpu: CpuState, d: int, s: int, size: int) -> int:
    r = (d - s) & MASK[size]
    cpu.lazy_flags = (SUB, size, r, d, s)
    return r


def op_sbb(cpu: CpuState, d: int, s: int, size: int) -> int:
    c = carry(cpu)
    r = (d - s - c) & MASK[size]
    cpu.lazy_flags = (SBB, size, r, d, s, c)
    return r


def op_and(cpu: CpuState, d: int, s: int, size: int) -> int:
    r = d & s
    cpu.lazy_flags = (LOGIC, size, r)
    return r


def op_or(cpu: CpuState, d: int, s: int, size: int) -> int:
    r = d | s
    cpu.lazy_flags = (LOGIC, size, r)
    return r


def op_xor(cpu: CpuState, d: int, s: int, size: int) -> int:
    r = d ^ s
    cpu.lazy_flags = (LOGIC, size, r)
    return r


ALU_OPS: dict[str, Callable[[CpuState, int, int, int], int]] = {
    "add": op_add, "or": op_or, "adc": op_adc, "sbb": op_sbb, "and": op_and, "sub": op_sub,
    "xor": op_xor, "cmp": op_sub, "test": op_and,
}
#: Operations that only set flags (no result is written).
COMPARE_ONLY = frozenset({"cmp", "test"})
#: Lazy kinds of the operations that need no carry-in, for the specialised 32-bit forms.
_FAST_KIND = {"add": ADD, "sub": SUB, "cmp": SUB}
_FAST_LOGIC = {"and", "or", "xor", "test"}


def _alu_fast(name: str, i: Insn, dk: int, sk: int) -> Fn | None:
    """Specialised 32-bit register-destination forms of the hottest ALU instructions."""
    if i.size != 4 or (dk == RM and i.mem):
        return None
    d = i.reg if dk == REG else i.rm
    write = name not in COMPARE_ONLY
    if name in _FAST_KIND:
        kind = _FAST_KIND[name]
        sub = kind == SUB
        if sk == IMM:
            s = i.imm & MASK32
            if sub:
                if write:

                    def sub_ri(cpu: CpuState, _: Insn) -> None:
                        regs = cpu.regs
                        a = regs[d]
                        r = (a - s) & MASK32
                        regs[d] = r
                        cpu.lazy_flags = (SUB, 4, r, a, s)

                    return sub_ri

                def cmp_ri(cpu: CpuState, _: Insn) -> None:
                    a = cpu.regs[d]
                    cpu.lazy_flags = (SUB, 4, (a - s) & MASK32, a, s)

                return cmp_ri

            def add_ri(cpu: CpuState, _: Insn) -> None:
                regs = cpu.regs
                a = regs[d]
                r = (a + s) & MASK32
                regs[d] = r
                cpu.lazy_flags = (ADD, 4, r, a, s)

            return add_ri
        src = operand_get(i, sk, 4)
        if sub and not write:

            def cmp_rx(cpu: CpuState, _: Insn) -> None:
                a = cpu.regs[d]
                b = src(cpu)
                cpu.lazy_flags = (SUB, 4, (a - b) & MASK32, a, b)

            return cmp_rx

        def arith_rx(cpu: CpuState, _: Insn) -> None:
            b = src(cpu)
            regs = cpu.regs
            a = regs[d]
            r = (a - b if sub else a + b) & MASK32
            regs[d] = r
            cpu.lazy_flags = (kind, 4, r, a, b)

        return arith_rx
    if name in _FAST_LOGIC:
        src = operand_get(i, sk, 4)
        op = ALU_OPS[name]

        def logic_rx(cpu: CpuState, _: Insn) -> None:
            r = op(cpu, cpu.regs[d], src(cpu), 4)
            if write:
                cpu.regs[d] = r

        return logic_rx
    return None


@bind("add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test")
def bind_alu(i: Insn) -> Fn:
    """ADD OR ADC SBB AND SUB XOR CMP TEST: DEST <- DEST op SRC, flags per the manual
    (logic ops clear CF and OF; CMP and TEST write nothing)."""
    name = i.form.handler
    dk, sk = _shape(i)
    fast = _alu_fast(name, i, dk, sk)
    if fast is not None:
        return fast
    size = i.size
    op = ALU_OPS[name]
    src = operand_get(i, sk, size)
    if name in COMPARE_ONLY:
        dst = operand_get(i, dk, size)

        def compare(cpu: CpuState, _: Insn) -> None:
            op(cpu, dst(cpu), src(cpu), size)

        return compare
    if dk == RM and i.mem:
        ea = ea_fn(i)
        seg = i.seg

        def alu_m(cpu: CpuState, _: Insn) -> None:
            offset = ea(cpu)
            r = op(cpu, cpu.read_mem(seg, offset, size), src(cpu), size)
            cpu.write_mem(seg, offset, size, r)

        return alu_m
    dst = operand_get(i, dk, size)
    put = operand_put(i, dk, size)

    def alu_r(cpu: CpuState, _: Insn) -> None:
        put(cpu, op(cpu, dst(cpu), src(cpu), size))

    return alu_r


@bind("inc", "dec")
def bind_incdec(i: Insn) -> Fn:
    """INC/DEC: DEST +/- 1; CF is not affected (SDM Vol. 2, INC, DEC)."""
    size = i.size
    mask = MASK[size]
    kind = INC if i.form.handler == "inc" else DEC
    step = 1 if kind == INC else -1
    if size == 4 and not i.mem:
        r = i.reg if _kind(i.form.operands[0]) == REG else i.rm

        def incdec_r32(cpu: CpuState, _: Insn) -> None:
            regs = cpu.regs
            a = regs[r]
            v = (a + step) & MASK32
            regs[r] = v
            cpu.lazy_flags = (kind, 4, v, a, carry(cpu))

        return incdec_r32
    k = _kind(i.form.operands[0])
    get = operand_get(i, k, size)
    put = operand_put(i, k, size)
    if i.mem:
        ea = ea_fn(i)
        seg = i.seg

        def incdec_m(cpu: CpuState, _: Insn) -> None:
            offset = ea(cpu)
            a = cpu.read_mem(seg, offset, size)
            v = (a + step) & mask
            cpu.write_mem(seg, offset, size, v)
            cpu.lazy_flags = (kind, size, v, a, carry(cpu))

        return incdec_m

    def incdec(cpu: CpuState, _: Insn) -> None:
        a = get(cpu)
        v = (a + step) & mask
        put(cpu, v)
        cpu.lazy_flags = (kind, size, v, a, carry(cpu))

    return incdec


def _rmw(i: Insn, body: Callable[[CpuState, int], int]) -> Fn:
    """A read-modify-write of the r/m operand (the address computed once)."""
    size = i.size
    if i.mem:
        ea = ea_fn(i)
        seg = i.seg

        def rmw_m(cpu: CpuState, _: Insn) -> None:
            offset = ea(cpu)
            cpu.write_mem(seg, offset, size, body(cpu, cpu.read_mem(seg, offset, size)))

        return rmw_m
    get = reg_get(i.rm, size)
    put = reg_put(i.rm, size)

    def rmw_r(cpu: CpuState, _: Insn) -> None:
        put(cpu, body(cpu, get(cpu)))

    return rmw_r


@bind("not")
def bind_not(i: Insn) -> Fn:
    """NOT: DEST <- NOT DEST (no flags)."""
    mask = MASK[i.size]
    return _rmw(i, lambda cpu, v: ~v & mask)


@bind("neg")
def bind_neg(i: Insn) -> Fn:
    """NEG: DEST <- 0 - DEST; CF = (DEST != 0), the others as SUB."""
    size = i.size
    return _rmw(i, lambda cpu, v: op_sub(cpu, 0, v, size))


# --- multiply and divide -----------------------------------------------------------------


def _mul_flags(cpu: CpuState, size: int, low: int, overflow: bool) -> None:
    """CF = OF = overflow; SF ZF PF from the low half, AF 0 (undefined in the manual; this is
    what QEMU-based engines report)."""
    cpu.lazy_flags = (SZP, size, low, (CF | OF) if overflow else 0)


def _acc_get(cpu: CpuState, size: int) -> int:
    """The double-size dividend: AX, DX:AX or EDX:EAX."""
    regs = cpu.regs
    if size == 1:
        return regs[EAX] & 0xFFFF
    if size == 2:
        return ((regs[EDX] & 0xFFFF) << 16) | (regs[EAX] & 0xFFFF)
    return (regs[EDX] << 32) | regs[EAX]


def _acc_put(cpu: CpuState, size: int, low: int, high: int) -> None:
    """Store a result pair: AL/AH, AX/DX or EAX/EDX."""
    if size == 1:
        cpu.set_reg(EAX, 2, ((high & 0xFF) << 8) | (low & 0xFF))
    else:
        cpu.set_reg(EAX, size, low)
        cpu.set_reg(EDX, size, high)


@bind("mul", "imul", "div", "idiv")
def bind_muldiv(i: Insn) -> Fn:
    """One-operand MUL, IMUL, DIV, IDIV with the accumulator (SDM Vol. 2)."""
    size = i.size
    get = rm_get(i, size)
    body = _MULDIV[i.form.handler]

    def muldiv(cpu: CpuState, _: Insn) -> None:
        body(cpu, get(cpu), size)

    return muldiv


def mul(cpu: CpuState, src: int, size: int) -> None:
    """MUL: AX/DX:AX/EDX:EAX <- accumulator * SRC (unsigned); CF = OF = (high half != 0)."""
    product = (cpu.regs[EAX] & MASK[size]) * src
    bits = BITS[size]
    low = product & MASK[size]
    high = product >> bits
    _acc_put(cpu, size, low, high)
    _mul_flags(cpu, size, low, high != 0)


def imul1(cpu: CpuState, src: int, size: int) -> None:
    """IMUL r/m: signed product; CF = OF = (product != sign-extended low half)."""
    product = _signed(cpu.regs[EAX] & MASK[size], size) * _signed(src, size)
    bits = BITS[size]
    low = product & MASK[size]
    _acc_put(cpu, size, low, (product >> bits) & MASK[size])
    _mul_flags(cpu, size, low, _signed(low, size) != product)


def div(cpu: CpuState, src: int, size: int) -> None:
    """DIV: unsigned divide of the double-size accumulator; #DE on a zero divisor or a
    quotient that does not fit. Flags are undefined; they are left unchanged."""
    if src == 0:
        raise de()
    dividend = _acc_get(cpu, size)
    q, r = divmod(dividend, src)
    if q > MASK[size]:
        raise de()
    _acc_put(cpu, size, q, r)


def idiv(cpu: CpuState, src: int, size: int) -> None:
    """IDIV: signed divide, quotient truncated toward zero, remainder with the dividend's
    sign; #DE on a zero divisor or a quotient outside the signed range."""
    if src == 0:
        raise de()
    bits = BITS[size]
    dividend = _acc_get(cpu, size)
    if dividend >> (2 * bits - 1):
        dividend -= 1 << (2 * bits)
    divisor = _signed(src, size)
    q = abs(dividend) // abs(divisor)
    if (dividend < 0) != (divisor < 0):
        q = -q
    r = dividend - q * divisor
    if q < -SIGN[size] or q > SIGN[size] - 1:
        raise de()
    _acc_put(cpu, size, q & MASK[size], r & MASK[size])


_MULDIV: dict[str, Callable[[CpuState, int, int], None]] = {
    "mul": mul, "imul": imul1, "div": div, "idiv": idiv,
}


@bind("imul2", "imul3")
def bind_imul_n(i: Insn) -> Fn:
    """IMUL r, r/m and IMUL r, r/m, imm: truncated signed product; CF = OF = truncation
    changed the value."""
    size = i.size
    get = rm_get(i, size)
    put = reg_put(i.reg, size)
    three = i.form.handler == "imul3"
    other = reg_get(i.reg, size)
    imm = i.imm & MASK[size]

    def imul_n(cpu: CpuState, _: Insn) -> None:
        a = get(cpu)
        b = imm if three else other(cpu)
        product = _signed(a, size) * _signed(b, size)
        low = product & MASK[size]
        put(cpu, low)
        _mul_flags(cpu, size, low, _signed(low, size) != product)

    return imul_n


# --- shifts and rotates --------------------------------------------------------------------


@bind("rol", "ror", "rcl", "rcr", "shl", "shr", "sar")
def bind_shift(i: Insn) -> Fn:
    """Shifts and rotates by 1, CL or imm8; the count is masked to 5 bits, and a masked count
    of 0 changes neither the operand nor the flags (SDM Vol. 2, SAL/SAR/SHL/SHR, RCL/RCR/ROL/
    ROR)."""
    size = i.size
    _, ck = _shape(i)
    count_get = operand_get(i, ck, 1)
    body = _SHIFTS[i.form.handler]
    if i.mem:
        ea = ea_fn(i)
        seg = i.seg

        def shift_m(cpu: CpuState, _: Insn) -> None:
            offset = ea(cpu)
            value = cpu.read_mem(seg, offset, size)
            count = count_get(cpu) & 0x1F
            if count:
                cpu.write_mem(seg, offset, size, body(cpu, value, count, size))

        return shift_m
    get = reg_get(i.rm, size)
    put = reg_put(i.rm, size)

    def shift_r(cpu: CpuState, _: Insn) -> None:
        count = count_get(cpu) & 0x1F
        if count:
            put(cpu, body(cpu, get(cpu), count, size))

    return shift_r


def shl(cpu: CpuState, d: int, count: int, size: int) -> int:
    """SHL/SAL: CF = last bit shifted out; OF (count 1) = MSB(result) XOR CF."""
    bits = BITS[size]
    r = (d << count) & MASK[size]
    cf = (d << count) >> bits & 1
    of = ((d << (count - 1)) ^ r) & SIGN[size]
    cpu.lazy_flags = (SZP, size, r, (CF if cf else 0) | (OF if of else 0))
    return r


def shr(cpu: CpuState, d: int, count: int, size: int) -> int:
    """SHR: CF = last bit shifted out; OF (count 1) = MSB of the original operand."""
    r = d >> count
    cf = (d >> (count - 1)) & 1
    of = d & SIGN[size] if count == 1 else ((d >> (count - 1)) ^ r) & SIGN[size]
    cpu.lazy_flags = (SZP, size, r, (CF if cf else 0) | (OF if of else 0))
    return r


def sar(cpu: CpuState, d: int, count: int, size: int) -> int:
    """SAR: signed shift; CF = last bit shifted out; OF (count 1) = 0."""
    sd = _signed(d, size)
    r = (sd >> count) & MASK[size]
    cf = (sd >> (count - 1)) & 1
    cpu.lazy_flags = (SZP, size, r, CF if cf else 0)
    return r


def _set_cf_of(cpu: CpuState, cf: int, of: int) -> None:
    """Rotates change CF and OF only."""
    flags = cpu.get_eflags() & ~(CF | OF)
    cpu.eflags = flags | (CF if cf else 0) | (OF if of else 0)


def rol(cpu: CpuState, d: int, count: int, size: int) -> int:
    """ROL: rotate by count mod size; CF = LSB(result); OF (count 1) = MSB(result) XOR CF."""
    bits = BITS[size]
    n = count % bits
    r = ((d << n) | (d >> (bits - n))) & MASK[size] if n else d
    cf = r & 1
    _set_cf_of(cpu, cf, bool(r & SIGN[size]) ^ cf)
    return r


def ror(cpu: CpuState, d: int, count: int, size: int) -> int:
    """ROR: CF = MSB(result); OF (count 1) = MSB(result) XOR the bit below it."""
    bits = BITS[size]
    n = count % bits
    r = ((d >> n) | (d << (bits - n))) & MASK[size] if n else d
    msb = bool(r & SIGN[size])
    _set_cf_of(cpu, msb, msb ^ bool(r & (SIGN[size] >> 1)))
    return r


def rcl(cpu: CpuState, d: int, count: int, size: int) -> int:
    """RCL: rotate (size+1)-bit CF:DEST left by count mod (size+1); OF (count 1) =
    MSB(result) XOR CF."""
    bits = BITS[size]
    n = count % (bits + 1)
    wide = (carry(cpu) << bits) | d
    wide = ((wide << n) | (wide >> (bits + 1 - n))) & ((2 << bits) - 1)
    r = wide & MASK[size]
    cf = wide >> bits
    _set_cf_of(cpu, cf, bool(r & SIGN[size]) ^ cf)
    return r


def rcr(cpu: CpuState, d: int, count: int, size: int) -> int:
    """RCR: rotate CF:DEST right by count mod (size+1); OF (count 1) = MSB(DEST) XOR CF,
    taken before the rotation."""
    bits = BITS[size]
    n = count % (bits + 1)
    old_cf = carry(cpu)
    of = bool(d & SIGN[size]) ^ old_cf
    wide = (old_cf << bits) | d
    wide = ((wide >> n) | (wide << (bits + 1 - n))) & ((2 << bits) - 1)
    _set_cf_of(cpu, wide >> bits, of)
    return wide & MASK[size]


_SHIFTS: dict[str, Callable[[CpuState, int, int, int], int]] = {
    "shl": shl, "shr": shr, "sar": sar, "rol": rol, "ror": ror, "rcl": rcl, "rcr": rcr,
}


# --- conditional moves and sets -------------------------------------------------------------


@bind("setcc")
def bind_setcc(i: Insn) -> Fn:
    """SETcc r/m8: 1 if the condition holds, else 0."""
    put = rm_put(i, 1)
    cc = i.cc

    def setcc(cpu: CpuState, _: Insn) -> None:
        put(cpu, 1 if condition(cpu, cc) else 0)

    return setcc


@bind("cmovcc")
def bind_cmovcc(i: Insn) -> Fn:
    """CMOVcc r, r/m: the source is read (and may fault) whatever the condition."""
    get = rm_get(i, i.size)
    put = reg_put(i.reg, i.size)
    cc = i.cc

    def cmovcc(cpu: CpuState, _: Insn) -> None:
        value = get(cpu)
        if condition(cpu, cc):
            put(cpu, value)

    return cmovcc

