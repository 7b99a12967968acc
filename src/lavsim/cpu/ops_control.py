"""Near control transfers: Jcc, JMP, CALL, RET, LOOP/LOOPE/LOOPNE, JECXZ (SDM Vol. 2).

The executor has already set ``cpu.eip`` to the next instruction; a transfer assigns
``cpu.eip``. A near target outside the CS limit raises #GP(0) before anything changes
(stack, ECX), so the instruction can be restarted.

Timing: branches whose cost depends on the outcome have no base key of their own; the decoder
charges their ``.not_taken`` key (``jcc.not_taken``, ``loop.not_taken``, ``jecxz.not_taken``)
and a taken branch adds ``<key>.taken - <key>.not_taken``, so the total is exactly the
profile's figure for the outcome. LOOPE and LOOPNE use the ``loop.*`` keys.
"""

from __future__ import annotations

from collections.abc import Callable

from lavsim.cpu.flags import SUB, condition
from lavsim.cpu.handlers import Semantics
from lavsim.cpu.insn import Insn
from lavsim.cpu.ops_int import rm_get
from lavsim.cpu.state import CS, ECX, ZF, CpuState
from lavsim.faults import gp

MASK32 = 0xFFFFFFFF
Fn = Callable[[CpuState, Insn], None]

#: This module's semantics (merged into the decoder's table by :mod:`lavsim.cpu.decoder`).
SEMANTICS = Semantics(__name__)
bind = SEMANTICS.bind


class TakenCost:
    """The extra cycles of a taken branch in the CPU's profile (memoised per profile)."""

    __slots__ = ("extra", "key", "profile")

    def __init__(self, key: str) -> None:
        self.key = key
        self.profile: object = None
        self.extra = 0

    def get(self, cpu: CpuState) -> int:
        table = cpu.profile.table
        self.profile = cpu.profile
        self.extra = table[self.key + ".taken"] - table[self.key + ".not_taken"]
        return self.extra


def check_target(cpu: CpuState, target: int) -> None:
    """#GP(0) when a near branch target lies outside the CS limit."""
    cs = cpu.seg[CS]
    if target < cs.min_off or target > cs.max_off:
        raise gp(0)


@bind("jcc")
def bind_jcc(i: Insn) -> Fn:
    """Jcc rel8/rel32: jump when the condition holds."""
    target = i.imm
    cc = i.cc
    cost = TakenCost("jcc")
    if cc in (4, 5):
        want = cc == 4

        def jz_jnz(cpu: CpuState, _: Insn) -> None:
            lazy = cpu.lazy_flags
            if lazy is not None and lazy[0] == SUB:
                taken = (lazy[3] == lazy[4]) == want
            else:
                taken = condition(cpu, cc)
            if taken:
                cs = cpu.seg[CS]
                if target > cs.max_off or target < cs.min_off:
                    raise gp(0)
                cpu.eip = target
                cpu.tsc += cost.extra if cpu.profile is cost.profile else cost.get(cpu)

        return jz_jnz

    def jcc(cpu: CpuState, _: Insn) -> None:
        if condition(cpu, cc):
            cs = cpu.seg[CS]
            if target > cs.max_off or target < cs.min_off:
                raise gp(0)
            cpu.eip = target
            cpu.tsc += cost.extra if cpu.profile is cost.profile else cost.get(cpu)

    return jcc


@bind("jmp_rel")
def bind_jmp_rel(i: Insn) -> Fn:
    """JMP rel8/rel32."""
    target = i.imm

    def jmp_rel(cpu: CpuState, _: Insn) -> None:
        check_target(cpu, target)
        cpu.eip = target

    return jmp_rel


@bind("jmp_near_indirect")
def bind_jmp_indirect(i: Insn) -> Fn:
    """JMP r/m32 (r/m16 with a 16-bit operand size: the upper half of EIP is cleared)."""
    get = rm_get(i, i.size)

    def jmp_near_indirect(cpu: CpuState, _: Insn) -> None:
        target = get(cpu)
        check_target(cpu, target)
        cpu.eip = target

    return jmp_near_indirect


@bind("call_rel")
def bind_call_rel(i: Insn) -> Fn:
    """CALL rel32: push the return offset, jump."""
    target = i.imm
    size = i.size

    def call_rel(cpu: CpuState, ins: Insn) -> None:
        check_target(cpu, target)
        cpu.push(ins.next_eip, size)
        cpu.eip = target

    return call_rel


@bind("call_near_indirect")
def bind_call_indirect(i: Insn) -> Fn:
    """CALL r/m32: the target is read (CALL ESP/[ESP] uses the old ESP) before the push."""
    get = rm_get(i, i.size)
    size = i.size

    def call_near_indirect(cpu: CpuState, ins: Insn) -> None:
        target = get(cpu)
        check_target(cpu, target)
        cpu.push(ins.next_eip, size)
        cpu.eip = target

    return call_near_indirect


@bind("ret_near")
def bind_ret_near(i: Insn) -> Fn:
    """RET / RET imm16: pop EIP (checked against CS before ESP changes), release imm16 bytes."""
    size = i.size
    release = i.imm & 0xFFFF if i.form.operands else 0

    def ret_near(cpu: CpuState, _: Insn) -> None:
        mask = cpu.stack_offset_mask()
        regs = cpu.regs
        esp = regs[4] & mask
        target = cpu.read_mem(2, esp, size)
        check_target(cpu, target)
        regs[4] = (regs[4] & ~mask & MASK32) | ((esp + size + release) & mask)
        cpu.eip = target

    return ret_near


def _bind_loop(i: Insn, kind: str) -> Fn:
    target = i.imm
    cost = TakenCost("loop")

    def loop(cpu: CpuState, _: Insn) -> None:
        regs = cpu.regs
        count = (regs[ECX] - 1) & MASK32
        taken = count != 0
        if taken and kind != "loop":
            zf = bool(cpu.get_eflags() & ZF)
            taken = zf if kind == "loope" else not zf
        if taken:
            check_target(cpu, target)
            cpu.eip = target
            cpu.tsc += cost.extra if cpu.profile is cost.profile else cost.get(cpu)
        regs[ECX] = count

    return loop


@bind("loop")
def bind_loop(i: Insn) -> Fn:
    """LOOP rel8: ECX <- ECX - 1; jump if ECX != 0 (32-bit address size: always ECX)."""
    return _bind_loop(i, "loop")


@bind("loope")
def bind_loope(i: Insn) -> Fn:
    """LOOPE rel8: ECX <- ECX - 1; jump if ECX != 0 and ZF = 1."""
    return _bind_loop(i, "loope")


@bind("loopne")
def bind_loopne(i: Insn) -> Fn:
    """LOOPNE rel8: ECX <- ECX - 1; jump if ECX != 0 and ZF = 0."""
    return _bind_loop(i, "loopne")


@bind("jecxz")
def bind_jecxz(i: Insn) -> Fn:
    """JECXZ rel8: jump if ECX = 0."""
    target = i.imm
    cost = TakenCost("jecxz")

    def jecxz(cpu: CpuState, _: Insn) -> None:
        if cpu.regs[ECX] == 0:
            check_target(cpu, target)
            cpu.eip = target
            cpu.tsc += cost.extra if cpu.profile is cost.profile else cost.get(cpu)

    return jecxz
