"""The timing-key vocabulary: every key a profile must define, with its meaning.

A *timing key* names a form of an instruction (``alu.mr`` is ``ADD m32, r32``) or a
memory-system event (``page_walk.read``). The decoder attaches a key to every decoded
instruction (see ``lavsim.cpu.isa``); the CPU charges that key's cycles and adds the dynamic
parts described in ``docs/timing.md``. Form letters: ``r`` register, ``m`` memory, ``i``
immediate; the first letter is the destination.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["KEYS", "KEY_MEANINGS", "REP_KINDS"]

KEY_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # data movement
        "mov.rr": "MOV r32, r32",
        "mov.rm": "MOV r32, m32 (load)",
        "mov.mr": "MOV m32, r32 (store)",
        "mov.ri": "MOV r32, imm32",
        "mov.mi": "MOV m32, imm32",
        "mov.moffs_load": "MOV EAX, moffs32 (A1 form)",
        "mov.moffs_store": "MOV moffs32, EAX (A3 form)",
        "sreg.load_r": "MOV Sreg, r16 in protected mode (descriptor load included)",
        "sreg.load_m": "MOV Sreg, m16 in protected mode (descriptor load included)",
        "sreg.store_r": "MOV r, Sreg",
        "sreg.store_m": "MOV m16, Sreg",
        "movx.rr": "MOVZX/MOVSX r32, r8/r16",
        "movx.rm": "MOVZX/MOVSX r32, m8/m16",
        "lea": "LEA r32, m",
        "xchg.rr": "XCHG r32, r32 (including XCHG EAX, r32)",
        "xchg.rm": "XCHG r32, m32 / m32, r32 (implicitly locked)",
        "push.r": "PUSH r32",
        "push.m": "PUSH m32",
        "push.i": "PUSH imm8/imm32",
        "push.sreg": "PUSH Sreg",
        "pop.r": "POP r32",
        "pop.m": "POP m32",
        "pop.sreg": "POP Sreg in protected mode (descriptor load included)",
        "pushad": "PUSHAD",
        "popad": "POPAD",
        "pushfd": "PUSHFD (protected mode)",
        "popfd": "POPFD (protected mode)",
        "leave": "LEAVE",
        "enter": "ENTER imm16, 0 (nesting level 0)",
        # integer ALU
        "alu.rr": "ADD/ADC/SUB/SBB/AND/OR/XOR r32, r32",
        "alu.rm": "ADD-family r32, m32",
        "alu.mr": "ADD-family m32, r32 (read-modify-write)",
        "alu.ri": "ADD-family r32, imm",
        "alu.mi": "ADD-family m32, imm (read-modify-write)",
        "cmp.rr": "CMP r32, r32",
        "cmp.rm": "CMP r32, m32",
        "cmp.mr": "CMP m32, r32",
        "cmp.ri": "CMP r32, imm",
        "cmp.mi": "CMP m32, imm",
        "test.rr": "TEST r32, r32",
        "test.ri": "TEST r32, imm32",
        "test.mr": "TEST m32, r32",
        "test.mi": "TEST m32, imm32",
        "incdec.r": "INC/DEC r32",
        "incdec.m": "INC/DEC m32",
        "negnot.r": "NEG/NOT r32",
        "negnot.m": "NEG/NOT m32",
        # shifts and rotates
        "shift.r1": "SHL/SHR/SAR/ROL/ROR r32, 1",
        "shift.m1": "SHL/SHR/SAR/ROL/ROR m32, 1",
        "shift.rcl": "SHL/SHR/SAR/ROL/ROR r32, CL",
        "shift.mcl": "SHL/SHR/SAR/ROL/ROR m32, CL",
        "shift.ri": "SHL/SHR/SAR/ROL/ROR r32, imm8",
        "shift.mi": "SHL/SHR/SAR/ROL/ROR m32, imm8",
        # multiply, divide, conversions
        "mul.r": "MUL r32",
        "mul.m": "MUL m32",
        "imul.r": "IMUL r32 (one operand)",
        "imul.m": "IMUL m32 (one operand)",
        "imul2.rr": "IMUL r32, r32",
        "imul2.rm": "IMUL r32, m32",
        "imul3.rr": "IMUL r32, r32, imm",
        "imul3.rm": "IMUL r32, m32, imm",
        "div.r": "DIV r32",
        "div.m": "DIV m32",
        "idiv.r": "IDIV r32",
        "idiv.m": "IDIV m32",
        "cdq": "CDQ",
        "cwde": "CWDE",
        "cmov.rr": "CMOVcc r32, r32",
        "cmov.rm": "CMOVcc r32, m32",
        "bswap": "BSWAP r32",
        # bit instructions, double shifts, atomics (compiled C)
        "bt.rr": "BT r32, r32",
        "bt.mr": "BT m32, r32 (bit string)",
        "bt.ri": "BT r32, imm8",
        "bt.mi": "BT m32, imm8",
        "btx.rr": "BTS/BTR/BTC r32, r32",
        "btx.mr": "BTS/BTR/BTC m32, r32 (bit string)",
        "btx.ri": "BTS/BTR/BTC r32, imm8",
        "btx.mi": "BTS/BTR/BTC m32, imm8",
        "bsf.rr": "BSF r32, r32 (fastest case)",
        "bsf.rm": "BSF r32, m32 (fastest case)",
        "bsr.rr": "BSR r32, r32 (fastest case)",
        "bsr.rm": "BSR r32, m32 (fastest case)",
        "shd_imm.rr": "SHLD/SHRD r32, r32, imm8",
        "shd_imm.mr": "SHLD/SHRD m32, r32, imm8",
        "shd_cl.rr": "SHLD/SHRD r32, r32, CL",
        "shd_cl.mr": "SHLD/SHRD m32, r32, CL",
        "xadd.rr": "XADD r32, r32",
        "xadd.mr": "XADD m32, r32",
        "cmpxchg.rr": "CMPXCHG r32, r32",
        "cmpxchg.mr": "CMPXCHG m32, r32",
        "cmpxchg8b": "CMPXCHG8B m64 (Pentium; #UD on the 486)",
        "endbr32": "ENDBR32 (a no-op on the modelled processors)",
        # near control transfer
        "jcc.taken": "Jcc, branch taken",
        "jcc.not_taken": "Jcc, branch not taken",
        "jmp.rel": "JMP rel8/rel32",
        "jmp.r": "JMP r32 (near indirect)",
        "jmp.m": "JMP m32 (near indirect)",
        "call.rel": "CALL rel32",
        "call.r": "CALL r32 (near indirect)",
        "call.m": "CALL m32 (near indirect)",
        "ret": "RET (near)",
        "ret.imm": "RET imm16 (near)",
        "loop.taken": "LOOP, branch taken",
        "loop.not_taken": "LOOP, falls through (ECX became 0)",
        "jecxz.taken": "JECXZ, branch taken",
        "jecxz.not_taken": "JECXZ, not taken",
        "setcc.r": "SETcc r8",
        "setcc.m": "SETcc m8",
        # far transfers, gates, interrupts (protected mode)
        "jmp_far.direct": "JMP ptr16:32 to a code segment",
        "jmp_far.m": "JMP m16:32 to a code segment",
        "jmp_gate.same": "JMP through a call gate (no privilege change is possible)",
        "call_far.direct": "CALL ptr16:32 to a code segment, same privilege",
        "call_far.m": "CALL m16:32 to a code segment, same privilege",
        "call_gate.same": "CALL far through a call gate, same privilege",
        "call_gate.inner": "CALL far through a call gate to more privilege, no parameters",
        "call_gate.inner_params_base": (
            "CALL far through a call gate to more privilege with x >= 1 parameters: the part "
            "independent of x (used instead of call_gate.inner)"
        ),
        "call_gate.param": "extra per parameter copied by a call gate to more privilege",
        "retf.same": "RETF to the same privilege",
        "retf.outer": "RETF to outer (less) privilege, with stack switch",
        "retf_imm.same": "RETF imm16 to the same privilege",
        "retf_imm.outer": "RETF imm16 to outer privilege, with stack switch",
        "int.same": "INT n through an interrupt/trap gate, same privilege",
        "int.inner": "INT n through an interrupt/trap gate to more privilege (stack switch)",
        "int3.same": "INT3, same privilege",
        "int3.inner": "INT3 to more privilege",
        "into.taken_same": "INTO with OF=1, same privilege",
        "into.taken_inner": "INTO with OF=1, to more privilege",
        "into.not_taken": "INTO with OF=0",
        "iret.same": "IRETD to the same privilege",
        "iret.outer": "IRETD to outer privilege, with stack switch",
        "exception.same": (
            "hardware exception/interrupt delivery through an interrupt/trap gate, "
            "same privilege"
        ),
        "exception.inner": (
            "hardware exception/interrupt delivery through an interrupt/trap gate to "
            "more privilege"
        ),
        # strings
        "movs": "MOVSB/MOVSD without REP",
        "stos": "STOSB/STOSD without REP",
        "lods": "LODSB/LODSD without REP",
        "cmps": "CMPSB/CMPSD without REP",
        "scas": "SCASB/SCASD without REP",
        "rep.base": "REP-prefixed string instruction: fixed part (charged also for ECX=0)",
        "rep_movs.per": "REP MOVS: per iteration",
        "rep_stos.per": "REP STOS: per iteration",
        "rep_lods.per": "REP LODS: per iteration",
        "rep_cmps.per": "REPE/REPNE CMPS: per iteration",
        "rep_scas.per": "REPE/REPNE SCAS: per iteration",
        # flags, misc
        "clc": "CLC",
        "stc": "STC",
        "cmc": "CMC",
        "cld": "CLD",
        "std": "STD",
        "cli": "CLI",
        "sti": "STI",
        "hlt": "HLT (the instruction; idle time is not included)",
        "nop": "NOP",
        "lahf": "LAHF",
        "sahf": "SAHF",
        # system
        "lgdt": "LGDT m",
        "lidt": "LIDT m",
        "sgdt": "SGDT m",
        "sidt": "SIDT m",
        "lldt.r": "LLDT r16",
        "lldt.m": "LLDT m16",
        "sldt.r": "SLDT r",
        "sldt.m": "SLDT m16",
        "ltr.r": "LTR r16",
        "ltr.m": "LTR m16",
        "str.r": "STR r",
        "str.m": "STR m16",
        "lar": "LAR r32, r/m16",
        "lsl": "LSL r32, r/m16",
        "verr": "VERR r/m16",
        "verw": "VERW r/m16",
        "arpl": "ARPL r/m16, r16",
        "mov_from_cr0": "MOV r32, CR0",
        "mov_from_cr2": "MOV r32, CR2",
        "mov_from_cr3": "MOV r32, CR3",
        "mov_from_cr4": "MOV r32, CR4",
        "mov_to_cr0": "MOV CR0, r32",
        "mov_to_cr2": "MOV CR2, r32",
        "mov_to_cr3": "MOV CR3, r32 (the TLB flush itself; later refills are charged as misses)",
        "mov_to_cr4": "MOV CR4, r32",
        "invlpg": "INVLPG m",
        "invd": "INVD (the board's caches add nothing: no line is written back)",
        "wbinvd": "WBINVD without write-backs (a board's hierarchy adds the bus time of each "
                  "dirty line it writes back)",
        "cpuid": "CPUID",
        "rdtsc": "RDTSC",
        "in": "IN AL/EAX, imm8 or DX (protected mode, CPL <= IOPL)",
        "out": "OUT imm8 or DX, AL/EAX (protected mode, CPL <= IOPL)",
        "ud2": "UD2: the instruction only; the #UD delivery is charged as exception.*",
        # memory system events
        "page_walk.read": "one page-directory or page-table entry read on a TLB miss",
        "page_walk.ad_write": "one Accessed/Dirty bit write-back to a PDE/PTE on a TLB miss",
    }
)
"""Every timing key with a one-line meaning."""

KEYS: Final[tuple[str, ...]] = tuple(KEY_MEANINGS)
"""The required key vocabulary: every profile defines exactly these keys."""

REP_KINDS: Final[tuple[str, ...]] = ("movs", "stos", "lods", "cmps", "scas")
"""String operations that take a REP prefix; ``rep_<kind>.per`` is their per-iteration key."""
