"""The Intel 486 profile: :data:`I486`, one data table of (cycles, source) per timing key.

HelpPC's 486 column [H] wherever it gives a figure, else the emulator table [86B]; the sources
are listed in ``docs/timing.md``.
"""

from __future__ import annotations

from typing import Final

from lavsim.timing.model import build_profile as _build
from lavsim.timing.model import cite_h as _h
from lavsim.timing.model import cite_later as _later
from lavsim.timing.model import cite_rep86 as _rep86
from lavsim.timing.model import estimate as _est

__all__ = ["I486"]

_MUL_RULE = (
    "range 13-42 (early-out multiply); the lower bound is taken, following the best-case "
    "convention of every figure here: it is reached when the multiplier is small, as in "
    "index and size scaling"
)

HELPPC = "HelpPC 2.10 486 column [H], page "
NG_SHLD = "x86 Norton Guide [NG], SHLD/SHRD 'Length and timing', 486 column"

_I486_DATA: dict[str, tuple[int, str]] = {
    # §1 data movement
    "mov.rr": (1, _h(1)),
    "mov.rm": (1, _h(1)),
    "mov.mr": (1, _h(1)),
    "mov.ri": (1, _h(1)),
    "mov.mi": (1, _h(1)),
    "mov.moffs_load": (1, _h(1, "the MOV r,m figure; the moffs form is not listed apart")),
    "mov.moffs_store": (1, _h(1, "the MOV m,r figure; the moffs form is not listed apart")),
    "sreg.load_r": (
        3,
        _h(1, "no protected-mode figure is given (386 pm: 18 [I386]); may be low for pm"),
    ),
    "sreg.load_m": (
        9,
        _h(1, "no protected-mode figure is given (386 pm: 19 [I386]); may be low for pm"),
    ),
    "sreg.store_r": (3, _h(1)),
    "sreg.store_m": (3, _h(1)),
    "movx.rr": (3, _h(1)),
    "movx.rm": (3, _h(1)),
    "lea": (1, _h(1)),
    "xchg.rr": (3, _h(1)),
    "xchg.rm": (
        5,
        _h(1, "printed 3 for r,m and 5 for m,r; the larger is taken for both, the memory "
           "exchange being implicitly locked"),
    ),
    "push.r": (1, _h(1)),
    "push.m": (4, _h(1)),
    "push.i": (1, _h(1)),
    "push.sreg": (3, _h(1)),
    "pop.r": (4, _h(1, "same as HelpPC's 386 figure, treat with care; [MAME] 486 also 4")),
    "pop.m": (6, _h(1)),
    "pop.sreg": (3, _h(1, "no protected-mode figure is given (386 pm: 21 [I386])")),
    "pushad": (11, _h(1)),
    "popad": (9, _h(1)),
    "pushfd": (3, _h(1, "protected-mode figure (real mode 4)")),
    "popfd": (6, _h(1, "protected-mode figure (real mode 9)")),
    "leave": (
        5,
        _later("HelpPC 2.10 [H] LEAVE entry, 486 column", "[MAME] 486 also 5"),
    ),
    "enter": (
        14,
        _later("HelpPC 2.10 [H] ENTER entry, 'immed16,0' row, 486 column",
               "level 1: 17, level n: 17+3n; [MAME] 486 also 14"),
    ),
    # §2 integer ALU
    "alu.rr": (1, _h(2)),
    "alu.rm": (2, _h(2, "AND is printed as 1; the family figure 2 is taken")),
    "alu.mr": (3, _h(2)),
    "alu.ri": (1, _h(2)),
    "alu.mi": (3, _h(2)),
    "cmp.rr": (1, _h(2)),
    "cmp.rm": (2, _h(2)),
    "cmp.mr": (2, _h(2)),
    "cmp.ri": (1, _h(2)),
    "cmp.mi": (2, _h(2)),
    "test.rr": (1, _h(2)),
    "test.ri": (1, _h(2)),
    "test.mr": (2, _h(2)),
    "test.mi": (2, _h(2)),
    "incdec.r": (1, _h(2)),
    "incdec.m": (3, _h(2)),
    "negnot.r": (1, _h(2)),
    "negnot.m": (3, _h(2)),
    # §3 shifts
    "shift.r1": (3, _h(3, "SAL/SHL, SAR, ROL, ROR rows; [MAME] agrees")),
    "shift.m1": (4, _h(3, "[MAME] agrees")),
    "shift.rcl": (3, _h(3, "[MAME] agrees")),
    "shift.mcl": (4, _h(3, "[MAME] agrees")),
    "shift.ri": (2, _h(3, "[MAME] agrees")),
    "shift.mi": (4, _h(3, "[MAME] agrees")),
    # §4 multiply / divide
    "mul.r": (13, _h(4, _MUL_RULE)),
    "mul.m": (13, _h(4, _MUL_RULE)),
    "imul.r": (12, _h(4, _MUL_RULE.replace("13-42", "12-42"))),
    "imul.m": (13, _h(4, _MUL_RULE)),
    "imul2.rr": (13, _h(4, _MUL_RULE)),
    "imul2.rm": (13, _h(4, _MUL_RULE)),
    "imul3.rr": (13, _h(4, _MUL_RULE)),
    "imul3.rm": (13, _h(4, _MUL_RULE)),
    "div.r": (40, _h(4)),
    "div.m": (40, _h(4)),
    "idiv.r": (43, _h(4)),
    "idiv.m": (44, _h(4)),
    "cdq": (3, _h(4)),
    "cwde": (3, _h(4)),
    "cmov.rr": (
        2,
        _est("CMOVcc does not exist on the 486 (P6 and later); charged as the not-taken Jcc "
             "plus the MOV r,r it replaces (1 + 1, [H] §1, §5)"),
    ),
    "cmov.rm": (
        2,
        _est("CMOVcc does not exist on the 486 (P6 and later); charged as the not-taken Jcc "
             "plus the MOV r,m it replaces (1 + 1, [H] §1, §5)"),
    ),
    "bswap": (
        1,
        _later("x86 Norton Guide [NG], BSWAP 'Length and timing', 486 column",
               "[MAME] 486 also 1"),
    ),
    # bit instructions, double shifts, atomics (issue 16; pages not in timing-reference)
    "bt.rr": (3, _later(HELPPC + "BT")),
    "bt.mr": (12, _later(HELPPC + "BT")),
    "bt.ri": (3, _later(HELPPC + "BT")),
    "bt.mi": (6, _later(HELPPC + "BT")),
    "btx.rr": (6, _later(HELPPC + "BTS (BTR, BTC alike)")),
    "btx.mr": (13, _later(HELPPC + "BTS (BTR, BTC alike)")),
    "btx.ri": (6, _later(HELPPC + "BTS (BTR, BTC alike)")),
    "btx.mi": (8, _later(HELPPC + "BTS (BTR, BTC alike)")),
    "bsf.rr": (6, _later(HELPPC + "BSF/BSR", "range 6-42, the fastest case taken")),
    "bsf.rm": (7, _later(HELPPC + "BSF/BSR", "range 7-43, the fastest case taken")),
    "bsr.rr": (6, _later(HELPPC + "BSF/BSR", "range 6-103, the fastest case taken")),
    "bsr.rm": (7, _later(HELPPC + "BSF/BSR", "range 7-104, the fastest case taken")),
    "shd_imm.rr": (2, _later(NG_SHLD)),
    "shd_imm.mr": (3, _later(NG_SHLD)),
    "shd_cl.rr": (3, _later(NG_SHLD)),
    "shd_cl.mr": (4, _later(NG_SHLD)),
    "xadd.rr": (3, _est("no stored source lists XADD; 3 as XCHG r,r ([H] §1), the figure the "
                        "Intel486 manual is remembered to print")),
    "xadd.mr": (4, _est("no stored source lists XADD; XCHG r,m [H] §1 less the implicit lock, "
                        "the figure the Intel486 manual is remembered to print")),
    "cmpxchg.rr": (6, _later(HELPPC + "CMPXCHG")),
    "cmpxchg.mr": (
        7,
        _later(HELPPC + "CMPXCHG", "3 more when the comparison fails, not charged: the "
               "best-case convention"),
    ),
    "cmpxchg8b": (
        0,
        _est("CMPXCHG8B is a Pentium instruction ([PIR] cmpxchg8b.html): on the 486 it "
             "raises #UD (CPUID family 4 reports no CX8); the #UD delivery is charged as an "
             "exception"),
    ),
    "endbr32": (1, _est("ENDBR32 decodes as a NOP here; the NOP figure ([H] §1)")),
    # §5 near control transfer
    "jcc.taken": (3, _h(5)),
    "jcc.not_taken": (1, _h(5)),
    "jmp.rel": (3, _h(5)),
    "jmp.r": (5, _h(5)),
    "jmp.m": (5, _h(5)),
    "call.rel": (3, _h(5)),
    "call.r": (5, _h(5)),
    "call.m": (5, _h(5)),
    "ret": (5, _h(5)),
    "ret.imm": (5, _h(5)),
    "loop.taken": (6, _h(5)),
    "loop.not_taken": (2, _h(5)),
    "jecxz.taken": (8, _h(5, "[MAME] 486 gives 1, contradicting [H]")),
    "jecxz.not_taken": (5, _h(5, "[MAME] 486 gives 1, contradicting [H]")),
    "setcc.r": (3, _h(5)),
    "setcc.m": (4, _h(5)),
    # §6 far transfers
    "jmp_far.direct": (18, _h(6, "ptr16:32 form (ptr16:16: 19)")),
    "jmp_far.m": (18, _h(6)),
    "jmp_gate.same": (31, _h(6, "ptr16:32 and m forms (ptr16:16: 32)")),
    "call_far.direct": (20, _h(6)),
    "call_far.m": (20, _h(6)),
    "call_gate.same": (35, _h(6, "[86B] timing_call_pm_gate agrees")),
    "call_gate.inner": (
        69,
        _h(6, "more privilege, no parameters; [86B] timing_call_pm_gate_inner agrees"),
    ),
    "call_gate.inner_params_base": (
        77,
        _h(6, "the 77 of 77+4x, more privilege with x >= 1 parameters"),
    ),
    "call_gate.param": (4, _h(6, "the 4x of 77+4x; [86B] models no per-parameter cost")),
    "retf.same": (18, _h(6, "[86B] timing_retf_pm gives 17")),
    "retf.outer": (33, _h(6, "[86B] timing_retf_pm_outer gives 35")),
    "retf_imm.same": (17, _h(6)),
    "retf_imm.outer": (33, _h(6)),
    "int.same": (44, _h(6, "[86B] timing_int_pm agrees")),
    "int.inner": (71, _h(6, "[86B] timing_int_pm_outer agrees")),
    "int3.same": (44, _h(6)),
    "int3.inner": (71, _h(6)),
    "into.taken_same": (46, _h(6)),
    "into.taken_inner": (73, _h(6)),
    "into.not_taken": (3, _h(6)),
    "iret.same": (15, _h(6, "[86B] timing_iret_pm gives 20")),
    "iret.outer": (36, _h(6)),
    "exception.same": (
        44,
        _est("delivery of exceptions and hardware interrupts is not listed separately; the "
             "INT n protected-mode same-privilege figure is used ([H] §6)"),
    ),
    "exception.inner": (
        71,
        _est("delivery of exceptions and hardware interrupts is not listed separately; the "
             "INT n protected-mode more-privilege figure is used ([H] §6)"),
    ),
    # §7 strings
    "movs": (7, _h(7, "[MAME] agrees")),
    "stos": (5, _h(7, "[MAME] agrees")),
    "lods": (5, _h(7, "[MAME] agrees")),
    "cmps": (8, _h(7, "[MAME] agrees")),
    "scas": (6, _h(7, "[MAME] agrees")),
    "rep.base": (
        5,
        _est("no documented 486 REP formula was found ([H]'s REP column is blank; Intel's i486 "
             "manual not reachable); [86B] charges only its generic 2-clock prefix decode, not a "
             "REP start-up; the 386 base 5 of 5+4n etc. ([I386], timing-reference §7) is used"),
    ),
    "rep_movs.per": (
        3,
        _rep86("is486 ? 3 : 4", "no documented 486 formula was found"),
    ),
    "rep_stos.per": (
        4,
        _rep86("is486 ? 4 : 5", "no documented 486 formula was found"),
    ),
    "rep_lods.per": (
        4,
        _rep86("is486 ? 4 : 5", "no documented 486 formula was found"),
    ),
    "rep_cmps.per": (
        7,
        _rep86("is486 ? 7 : 9", "no documented 486 formula was found"),
    ),
    "rep_scas.per": (
        5,
        _rep86("is486 ? 5 : 8", "no documented 486 formula was found"),
    ),
    # §8 flags, misc
    "clc": (2, _h(8)),
    "stc": (2, _h(8)),
    "cmc": (2, _h(8)),
    "cld": (2, _h(8)),
    "std": (2, _h(8)),
    "cli": (5, _h(8)),
    "sti": (5, _h(8)),
    "hlt": (4, _h(8)),
    "nop": (1, _h(8)),
    "lahf": (3, _h(8)),
    "sahf": (2, _h(8)),
    # §9 system
    "lgdt": (11, _h(9)),
    "lidt": (11, _h(9)),
    "sgdt": (10, _h(9)),
    "sidt": (10, _h(9)),
    "lldt.r": (11, _h(9)),
    "lldt.m": (11, _h(9)),
    "sldt.r": (2, _h(9)),
    "sldt.m": (3, _h(9)),
    "ltr.r": (20, _h(9)),
    "ltr.m": (20, _h(9)),
    "str.r": (2, _h(9)),
    "str.m": (3, _h(9)),
    "lar": (11, _h(9)),
    "lsl": (10, _h(9)),
    "verr": (11, _h(9)),
    "verw": (11, _h(9)),
    "arpl": (9, _h(9)),
    "mov_from_cr0": (4, _h(9)),
    "mov_from_cr2": (4, _h(9)),
    "mov_from_cr3": (4, _h(9)),
    "mov_from_cr4": (
        4,
        _est("CR4 does not exist on the 486 (the simulator offers it on both profiles); "
             "charged like MOV r32,CR0/CR2/CR3 (4, [H] §9)"),
    ),
    "mov_to_cr0": (16, _h(9)),
    "mov_to_cr2": (4, _h(9)),
    "mov_to_cr3": (4, _h(9)),
    "mov_to_cr4": (
        4,
        _est("CR4 does not exist on the 486 (the simulator offers it on both profiles); "
             "charged like MOV CR3,r32 (4, [H] §9)"),
    ),
    "invlpg": (12, _h(9, "figure for a TLB entry hit")),
    "invd": (4, _later("MAME cycles.h [MAME] CYCLES_INVD, i486 column, emulator")),
    "wbinvd": (
        5,
        _est("no stored source gives the 486 figure (the x86 Norton Guide [NG] prints '??'; "
             "[MAME] charges nothing); INVD's 4 ([MAME]) plus one clock for the write-back "
             "special cycle the instruction adds; the write-backs are the board's"),
    ),
    "cpuid": (
        14,
        _est("CPUID is not on the original 486; the Pentium figure 14 ([MAME] §9) is used"),
    ),
    "rdtsc": (
        20,
        _est("RDTSC is not on the 486 (the simulator offers it on both profiles to read the "
             "cycle counter); the Pentium figure 20 ([MAME] §9) is used"),
    ),
    "in": (8, _h(9, "CPL <= IOPL (CPL > IOPL: 28)")),
    "out": (11, _h(9, "imm8 form, CPL <= IOPL (DX form 10; CPL > IOPL: 31/30)")),
    "ud2": (
        1,
        _est("UD2 appears with the Pentium Pro; it only raises #UD, charged as "
             "exception.same/inner; the instruction itself is charged one clock like NOP "
             "([H] §8)"),
    ),
    # §10 TLB miss
    "page_walk.read": (
        1,
        _est("no published TLB-miss figure ([OS2], [EI486], timing-reference §10); each PDE/PTE "
             "read is charged as a cache-hit memory read, MOV r,m (1, [H] §1)"),
    ),
    "page_walk.ad_write": (
        3,
        _est("no published figure (timing-reference §10); setting A/D is a read-modify-write "
             "of the entry, charged as ALU m,r (3, [H] §2)"),
    ),
}

I486: Final = _build(
    "i486",
    "Intel 486: HelpPC's 486 column [H] wherever it gives a figure, else the emulator table "
    "[86B] (REP per-item figures); best case (cache and TLB hits, aligned operands). Figures "
    "no source gives are marked as estimates.",
    _I486_DATA,
)
"""The Intel 486 profile."""
