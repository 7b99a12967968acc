"""System instructions: segment-register moves, descriptor-table registers, LDTR and TR,
access-rights queries, control registers, INVLPG, INVD/WBINVD, CPUID, RDTSC, port I/O,
CLI/STI, HLT.

References are the Intel SDM Vol. 2 instruction pages of the same names (protected mode).

Privileged instructions (LGDT, LIDT, LLDT, LTR, MOV to/from CRn, INVLPG, INVD, WBINVD,
HLT) raise #GP(0) at CPL > 0. The instruction table marks them ``priv``; the handlers check
the CPL themselves as well so that the rule holds whoever calls them.

Not modelled, and what happens instead:

- The one-instruction interrupt shadow after MOV SS / POP SS and after STI: an interrupt can
  be taken right after them. Guest code should load SS:ESP with LSS-free sequences only with
  interrupts disabled, and should not rely on ``STI; HLT`` being atomic.
- The I/O permission bitmap of the TSS: IN/OUT at CPL > IOPL are #GP(0) whatever the bitmap.
- Real mode: clearing CR0.PE is refused with #GP(0) (the machine is protected mode only).
- CR4 holds only the bits the machine models: TSD, DE, PSE, MCE, PGE; setting any other bit
  (VME, PVI, PAE, ...) is #GP(0). CR1, CR5..CR7 are #UD.

CPUID identity (documented, made up for lavsim): vendor string ``"Lavsim IA-32"``; leaf 1 gives
the signature of the CPU model the machine was built with (``CpuState.cpuid_signature``, from
``lavsim.models``: family 4 model 8 for ``i486``, family 5 model 2 stepping 1 for ``pentium``),
and the feature bits of what is modelled: DE, PSE, TSC, PGE, and CX8 from family 5 on (no FPU,
no VME).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lavsim.cpu.far import charge_path, read_stack_block, tables_of
from lavsim.cpu.handlers import Semantics
from lavsim.cpu.operands import ea, read_rm, write_rm
from lavsim.cpu.state import (
    CR0_CD,
    CR0_ET,
    CR0_NW,
    CR0_PE,
    CR0_PG,
    CR4_PGE,
    CR4_PSE,
    CS,
    EAX,
    EBX,
    ECX,
    EDX,
    ESP,
    IF,
    MASK32,
    SREG_NAMES,
    SS,
    ZF,
    CpuState,
)
from lavsim.faults import gp, ud
from lavsim.mmu.descriptors import (
    SYS_CALL_GATE16,
    SYS_CALL_GATE32,
    SYS_LDT,
    SYS_TASK_GATE,
    SYS_TSS16_AVAILABLE,
    SYS_TSS16_BUSY,
    SYS_TSS32_AVAILABLE,
    SYS_TSS32_BUSY,
    TYPE_CODE,
    TYPE_CONFORMING,
    TYPE_READABLE,
    TYPE_WRITABLE,
    scale_limit,
)
from lavsim.mmu.segmentation import (
    load_data_segment,
    load_ldtr,
    load_stack_segment,
    load_task_register,
)

if TYPE_CHECKING:
    from lavsim.cpu.insn import Insn


#: This module's semantics (merged into the decoder's table by :mod:`lavsim.cpu.decoder`).
SEMANTICS = Semantics(__name__)
handler = SEMANTICS.handler

__all__ = [
    "CPUID_CX8",
    "CPUID_FEATURES",
    "CPUID_VENDOR",
    "arpl",
    "cli",
    "cpuid",
    "hlt",
    "in_",
    "invd",
    "invlpg",
    "lar",
    "lgdt",
    "lldt",
    "lsl",
    "ltr",
    "mov_from_cr",
    "mov_from_sreg",
    "mov_to_cr",
    "mov_to_sreg",
    "out",
    "pop_sreg",
    "push_sreg",
    "rdtsc",
    "sgdt",
    "sldt",
    "str_",
    "verr",
    "verw",
    "wbinvd",
]

CR4_TSD = 1 << 2
CR4_DE = 1 << 3
CR4_MCE = 1 << 6
#: The CR4 bits this machine models; any other set bit is #GP(0).
CR4_SUPPORTED = CR4_TSD | CR4_DE | CR4_PSE | CR4_MCE | CR4_PGE

#: CPUID vendor string (12 bytes, returned in EBX, EDX, ECX).
CPUID_VENDOR = b"Lavsim IA-32"
#: CPUID leaf 1 EDX feature bits: DE (2), PSE (3), TSC (4), PGE (13).
CPUID_FEATURES = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 13)
#: CPUID leaf 1 EDX bit CX8 (CMPXCHG8B), reported from family 5 (the Pentium) on.
CPUID_CX8 = 1 << 8

#: System-descriptor types LAR reports (SDM Vol. 2, LAR): TSSes, LDT, call and task gates.
_LAR_SYSTEM_TYPES = frozenset({
    SYS_TSS16_AVAILABLE, SYS_LDT, SYS_TSS16_BUSY, SYS_CALL_GATE16, SYS_TASK_GATE,
    SYS_TSS32_AVAILABLE, SYS_TSS32_BUSY, SYS_CALL_GATE32,
})
#: System-descriptor types LSL reports: segments with a limit (TSSes and the LDT).
_LSL_SYSTEM_TYPES = frozenset({
    SYS_TSS16_AVAILABLE, SYS_LDT, SYS_TSS16_BUSY, SYS_TSS32_AVAILABLE, SYS_TSS32_BUSY,
})


def _require_cpl0(cpu: CpuState) -> None:
    if cpu.cpl != 0:
        raise gp(0)


def _store_selector(cpu: CpuState, insn: Insn, value: int) -> None:
    """Store a 16-bit selector to r/m: 16 bits to memory, zero-extended to the operand size
    in a register (as the P6 and later do; earlier processors left the high bytes undefined)."""
    if insn.mem:
        write_rm(cpu, insn, value, 2)
    else:
        write_rm(cpu, insn, value & 0xFFFF)


# --------------------------------------------------------------------------------------------
# Segment registers
# --------------------------------------------------------------------------------------------


def _load_sreg(cpu: CpuState, sreg: int, selector: int) -> None:
    """Check and load a data segment register or SS (SDM Vol. 2, MOV/POP); CS is #UD."""
    tables = tables_of(cpu)
    if sreg == SS:
        cpu.seg[SS] = load_stack_segment(tables, selector, cpu.cpl)
    else:
        cpu.seg[sreg] = load_data_segment(tables, selector, cpu.cpl)


@handler("mov_to_sreg")
def mov_to_sreg(cpu: CpuState, insn: Insn) -> None:
    """MOV Sreg, r/m16: #UD for CS or a register number above 5, else the load checks."""
    sreg = insn.reg
    if sreg == CS or sreg > 5:
        raise ud()
    _load_sreg(cpu, sreg, read_rm(cpu, insn, 2))


@handler("mov_from_sreg")
def mov_from_sreg(cpu: CpuState, insn: Insn) -> None:
    """MOV r/m16, Sreg (the visible selector)."""
    if insn.reg > 5:
        raise ud()
    _store_selector(cpu, insn, cpu.seg[insn.reg].selector)


def _fixed_sreg(insn: Insn) -> int:
    """The segment register named by the form's operand (PUSH ES, POP DS...)."""
    return SREG_NAMES.index(insn.form.operands[0])


@handler("push_sreg")
def push_sreg(cpu: CpuState, insn: Insn) -> None:
    """PUSH Sreg: the selector, zero-extended to the operand size."""
    cpu.push(cpu.seg[_fixed_sreg(insn)].selector, insn.size)


@handler("pop_sreg")
def pop_sreg(cpu: CpuState, insn: Insn) -> None:
    """POP Sreg: the loaded selector is checked before ESP moves, so a refused load leaves
    the stack as it was."""
    sreg = _fixed_sreg(insn)
    stack = cpu.seg[SS]
    mask = MASK32 if stack.db else 0xFFFF
    esp = cpu.regs[ESP] & mask
    (value,) = read_stack_block(cpu, stack, esp, 1, insn.size, cpu.user)
    _load_sreg(cpu, sreg, value & 0xFFFF)
    # The increment uses the stack-size attribute of the SS in force when the pop began.
    cpu.regs[ESP] = (cpu.regs[ESP] & ~mask & MASK32) | ((esp + insn.size) & mask)


# --------------------------------------------------------------------------------------------
# Descriptor-table registers, LDTR, TR
# --------------------------------------------------------------------------------------------


def _memory_operand(insn: Insn) -> None:
    if not insn.mem:
        raise ud()


@handler("lgdt", "lidt")
def lgdt(cpu: CpuState, insn: Insn) -> None:
    """LGDT/LIDT m: a 16-bit limit then a 32-bit base (24 bits with a 16-bit operand size)."""
    _memory_operand(insn)
    _require_cpl0(cpu)
    offset = ea(cpu, insn)
    limit = cpu.read_mem(insn.seg, offset, 2)
    base = cpu.read_mem(insn.seg, (offset + 2) & MASK32, 4)
    if insn.size == 2:
        base &= 0x00FFFFFF
    if insn.form.mnemonic == "lgdt":
        cpu.gdtr_base, cpu.gdtr_limit = base, limit
    else:
        cpu.idtr_base, cpu.idtr_limit = base, limit


@handler("sgdt", "sidt")
def sgdt(cpu: CpuState, insn: Insn) -> None:
    """SGDT/SIDT m: store the limit and the 32-bit base (not privileged; no UMIP)."""
    _memory_operand(insn)
    if insn.form.mnemonic == "sgdt":
        base, limit = cpu.gdtr_base, cpu.gdtr_limit
    else:
        base, limit = cpu.idtr_base, cpu.idtr_limit
    offset = ea(cpu, insn)
    # Check both parts before writing either (a fault must leave memory unchanged).
    cpu.linear(insn.seg, offset, 6, True)
    cpu.write_mem(insn.seg, offset, 2, limit)
    cpu.write_mem(insn.seg, (offset + 2) & MASK32, 4, base)


@handler("lldt")
def lldt(cpu: CpuState, insn: Insn) -> None:
    """LLDT r/m16: a null selector leaves LDTR unusable; else an LDT descriptor in the GDT."""
    _require_cpl0(cpu)
    cpu.ldtr = load_ldtr(tables_of(cpu), read_rm(cpu, insn, 2))


@handler("sldt")
def sldt(cpu: CpuState, insn: Insn) -> None:
    """SLDT r/m16: the LDTR selector."""
    _store_selector(cpu, insn, cpu.ldtr.selector)


@handler("ltr")
def ltr(cpu: CpuState, insn: Insn) -> None:
    """LTR r/m16: an available 32-bit TSS in the GDT, marked busy in memory."""
    _require_cpl0(cpu)
    cpu.tr = load_task_register(tables_of(cpu), read_rm(cpu, insn, 2))


@handler("str_")
def str_(cpu: CpuState, insn: Insn) -> None:
    """STR r/m16: the TR selector."""
    _store_selector(cpu, insn, cpu.tr.selector)


# --------------------------------------------------------------------------------------------
# LAR, LSL, VERR, VERW, ARPL
# --------------------------------------------------------------------------------------------


def _raw_descriptor(cpu: CpuState, selector: int) -> int | None:
    """The descriptor a selector names as a 64-bit value, or None when the selector is null
    or beyond its table (the queries report that with ZF = 0 instead of faulting)."""
    if selector & 0xFFFC == 0:
        return None
    address = tables_of(cpu).entry_address(selector)
    if address is None:
        return None
    low = cpu.mmu.read(address, 4, False)
    high = cpu.mmu.read((address + 4) & MASK32, 4, False)
    return low | (high << 32)


def _visible(cpu: CpuState, selector: int, high: int) -> bool:
    """The privilege rule of LAR/LSL/VERR/VERW: a conforming code segment is always visible;
    anything else needs DPL >= CPL and DPL >= RPL."""
    s = bool(high & (1 << 12))
    type_ = (high >> 8) & 0xF
    if s and type_ & (TYPE_CODE | TYPE_CONFORMING) == TYPE_CODE | TYPE_CONFORMING:
        return True
    dpl = (high >> 13) & 3
    return dpl >= cpu.cpl and dpl >= selector & 3


def _set_zf(cpu: CpuState, value: bool) -> None:
    cpu.set_eflags(ZF if value else 0, ZF)


def _query(cpu: CpuState, insn: Insn, system_types: frozenset[int]) -> int | None:
    """The high descriptor word for LAR/LSL when the selector passes the checks, else None."""
    selector = read_rm(cpu, insn, 2)
    raw = _raw_descriptor(cpu, selector)
    if raw is None:
        return None
    high = raw >> 32
    if not high & (1 << 12) and (high >> 8) & 0xF not in system_types:
        return None
    if not _visible(cpu, selector, high):
        return None
    return raw


@handler("lar")
def lar(cpu: CpuState, insn: Insn) -> None:
    """LAR r, r/m: the access-rights bytes (high word & 0x00F0FF00, 0xFF00 for 16 bits) and
    ZF = 1, or ZF = 0 and the destination unchanged."""
    raw = _query(cpu, insn, _LAR_SYSTEM_TYPES)
    if raw is None:
        _set_zf(cpu, False)
        return
    rights = (raw >> 32) & (0x00F0FF00 if insn.size == 4 else 0xFF00)
    cpu.set_reg(insn.reg, insn.size, rights)
    _set_zf(cpu, True)


@handler("lsl")
def lsl(cpu: CpuState, insn: Insn) -> None:
    """LSL r, r/m: the byte-granular segment limit and ZF = 1, or ZF = 0."""
    raw = _query(cpu, insn, _LSL_SYSTEM_TYPES)
    if raw is None:
        _set_zf(cpu, False)
        return
    high = raw >> 32
    limit = scale_limit((raw & 0xFFFF) | (high & 0x000F0000), bool(high & (1 << 23)))
    cpu.set_reg(insn.reg, insn.size, limit)
    _set_zf(cpu, True)


def _verify(cpu: CpuState, insn: Insn, write: bool) -> None:
    selector = read_rm(cpu, insn, 2)
    raw = _raw_descriptor(cpu, selector)
    ok = False
    if raw is not None:
        high = raw >> 32
        type_ = (high >> 8) & 0xF
        if high & (1 << 12) and _visible(cpu, selector, high):
            if write:
                ok = not type_ & TYPE_CODE and bool(type_ & TYPE_WRITABLE)
            else:
                ok = not type_ & TYPE_CODE or bool(type_ & TYPE_READABLE)
    _set_zf(cpu, ok)


@handler("verr")
def verr(cpu: CpuState, insn: Insn) -> None:
    """VERR r/m16: ZF = 1 when the segment is readable at the current CPL and the RPL."""
    _verify(cpu, insn, False)


@handler("verw")
def verw(cpu: CpuState, insn: Insn) -> None:
    """VERW r/m16: ZF = 1 when the segment is a writable data segment visible at CPL/RPL."""
    _verify(cpu, insn, True)


@handler("arpl")
def arpl(cpu: CpuState, insn: Insn) -> None:
    """ARPL r/m16, r16: raise the destination's RPL to the source's (ZF = 1), else ZF = 0."""
    dest = read_rm(cpu, insn, 2)
    src_rpl = cpu.get_reg(insn.reg, 2) & 3
    if dest & 3 < src_rpl:
        write_rm(cpu, insn, (dest & ~3) | src_rpl, 2)
        _set_zf(cpu, True)
    else:
        _set_zf(cpu, False)


# --------------------------------------------------------------------------------------------
# Control registers, INVLPG
# --------------------------------------------------------------------------------------------


@handler("mov_to_cr")
def mov_to_cr(cpu: CpuState, insn: Insn) -> None:
    """MOV CRn, r32 (n = 0, 2, 3, 4), telling the MMU about CR0/CR3/CR4 changes.

    CR0: PG without PE, or NW without CD, is #GP(0); clearing PE is #GP(0) (no real mode); ET
    reads as 1. CR4: bits the machine does not model are #GP(0). Costs ``mov_to_crN``.
    """
    _require_cpl0(cpu)
    n = insn.reg
    value = cpu.regs[insn.rm]
    if n == 0:
        if (value & CR0_PG and not value & CR0_PE) or (value & CR0_NW and not value & CR0_CD):
            raise gp(0)
        if not value & CR0_PE:
            raise gp(0)
        cpu.cr0 = value | CR0_ET
        cpu.mmu.set_controls(cpu.cr0, cpu.cr4)
    elif n == 2:
        cpu.cr2 = value
    elif n == 3:
        cpu.cr3 = value
        cpu.mmu.load_cr3(value)
    elif n == 4:
        if value & ~CR4_SUPPORTED:
            raise gp(0)
        cpu.cr4 = value
        cpu.mmu.set_controls(cpu.cr0, cpu.cr4)
    else:
        raise ud()
    charge_path(cpu, insn, cpu.profile.table[f"mov_to_cr{n}"])


@handler("mov_from_cr")
def mov_from_cr(cpu: CpuState, insn: Insn) -> None:
    """MOV r32, CRn (n = 0, 2, 3, 4); other n are #UD. Costs ``mov_from_crN``."""
    _require_cpl0(cpu)
    n = insn.reg
    if n == 0:
        value = cpu.cr0
    elif n == 2:
        value = cpu.cr2
    elif n == 3:
        value = cpu.cr3
    elif n == 4:
        value = cpu.cr4
    else:
        raise ud()
    cpu.regs[insn.rm] = value & MASK32
    charge_path(cpu, insn, cpu.profile.table[f"mov_from_cr{n}"])


@handler("invlpg")
def invlpg(cpu: CpuState, insn: Insn) -> None:
    """INVLPG m: drop the modelled TLB entry of the page holding the linear address
    seg.base + offset (no limit check, as in the manual)."""
    _memory_operand(insn)
    _require_cpl0(cpu)
    cpu.mmu.invlpg((cpu.seg[insn.seg].base + ea(cpu, insn)) & MASK32)


@handler("invd")
def invd(cpu: CpuState, insn: Insn) -> None:
    """INVD: invalidate the internal caches without writing back, and signal the external
    cache to do the same. The caches are a timing model holding no data (memory is always up
    to date), so no data is lost: only the cache model's contents and statistics change."""
    _require_cpl0(cpu)
    cpu.mmu.invalidate_caches(False)


@handler("wbinvd")
def wbinvd(cpu: CpuState, insn: Insn) -> None:
    """WBINVD: write the dirty lines back, invalidate the internal caches, and signal the
    external cache to write back and invalidate; the board charges the write-backs."""
    _require_cpl0(cpu)
    cpu.mmu.invalidate_caches(True)


# --------------------------------------------------------------------------------------------
# CPUID, RDTSC
# --------------------------------------------------------------------------------------------


@handler("cpuid")
def cpuid(cpu: CpuState, insn: Insn) -> None:
    """CPUID: leaf 0 (highest leaf 1, vendor "Lavsim IA-32") and leaf 1 (signature, features);
    a higher leaf returns leaf 1, as Intel processors return their highest basic leaf."""
    regs = cpu.regs
    if regs[EAX] == 0:
        vendor = CPUID_VENDOR
        regs[EAX] = 1
        regs[EBX] = int.from_bytes(vendor[0:4], "little")
        regs[EDX] = int.from_bytes(vendor[4:8], "little")
        regs[ECX] = int.from_bytes(vendor[8:12], "little")
        return
    regs[EAX] = cpu.cpuid_signature
    regs[EBX] = 0
    regs[ECX] = 0
    family = (cpu.cpuid_signature >> 8) & 0xF
    regs[EDX] = CPUID_FEATURES | (CPUID_CX8 if family >= 5 else 0)


@handler("rdtsc")
def rdtsc(cpu: CpuState, insn: Insn) -> None:
    """RDTSC: EDX:EAX = the cycle counter; #GP(0) at CPL > 0 when CR4.TSD is set."""
    if cpu.cr4 & CR4_TSD and cpu.cpl != 0:
        raise gp(0)
    tsc = cpu.tsc
    cpu.regs[EAX] = tsc & MASK32
    cpu.regs[EDX] = (tsc >> 32) & MASK32


# --------------------------------------------------------------------------------------------
# Port I/O, CLI, STI, HLT
# --------------------------------------------------------------------------------------------


def _io_allowed(cpu: CpuState) -> None:
    # The I/O permission bitmap is not modelled: CPL > IOPL is always refused.
    if cpu.cpl > cpu.iopl:
        raise gp(0)


def _port(cpu: CpuState, insn: Insn) -> int:
    return cpu.regs[EDX] & 0xFFFF if "DX" in insn.form.operands else insn.imm & 0xFF


@handler("in_")
def in_(cpu: CpuState, insn: Insn) -> None:
    """IN AL/AX/EAX, imm8 or DX: read a port through the machine's bus."""
    _io_allowed(cpu)
    size = insn.size
    value = cpu.io_read(_port(cpu, insn), size)
    cpu.set_reg(EAX, size, value)


@handler("out")
def out(cpu: CpuState, insn: Insn) -> None:
    """OUT imm8 or DX, AL/AX/EAX: write a port through the machine's bus."""
    _io_allowed(cpu)
    size = insn.size
    cpu.io_write(_port(cpu, insn), size, cpu.get_reg(EAX, size))


@handler("cli")
def cli(cpu: CpuState, insn: Insn) -> None:
    """CLI: IF = 0 when CPL <= IOPL, else #GP(0) (no VME/PVI)."""
    if cpu.cpl > cpu.iopl:
        raise gp(0)
    cpu.set_eflags(0, IF)


@handler("sti")
def sti(cpu: CpuState, insn: Insn) -> None:
    """STI: IF = 1 when CPL <= IOPL, else #GP(0). The interrupt shadow is not modelled."""
    if cpu.cpl > cpu.iopl:
        raise gp(0)
    cpu.set_eflags(IF, IF)


@handler("hlt")
def hlt(cpu: CpuState, insn: Insn) -> None:
    """HLT: stop fetching until an interrupt (the machine decides what halted means)."""
    _require_cpl0(cpu)
    cpu.halted = True

