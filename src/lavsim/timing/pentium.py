"""The Intel Pentium (P5) profile: :data:`PENTIUM`, one data table of (cycles, source) per
timing key.

Single-issue figures of Agner Fog [AF] and the MASM notes [MS], else the Pentium instruction
reference [PIR] or the emulator tables [86B]/[MAME]; the sources are listed in
``docs/timing.md``.
"""

from __future__ import annotations

from typing import Final

from lavsim.timing.issue import PENTIUM_ISSUE
from lavsim.timing.model import build_profile as _build
from lavsim.timing.model import cite_86b as _b86
from lavsim.timing.model import cite_af as _af
from lavsim.timing.model import cite_later as _later
from lavsim.timing.model import cite_mame as _mame
from lavsim.timing.model import cite_ms as _ms
from lavsim.timing.model import cite_pir as _pir
from lavsim.timing.model import estimate as _est

__all__ = ["PENTIUM", "PENTIUM_SEQUENTIAL"]

# Pentium gate figures are about 0.64 of the 486 ones (call gate same 22/35, inner 44/69,
# INT 25/44 and 42/71); the parameter-copy figures the Pentium sources lack are scaled with the
# published inner-call ratio 44/69.
_P5_GATE_SCALE = (
    "no Pentium figure for call gates with parameters ([86B] models none, timing-reference §6); "
    "the 486 figure ([H] 77+4x) scaled by the published inner-call ratio 44/69"
)

PIR_PAGE = (
    "Intel Pentium Instruction Set Reference [PIR], Clocks column, "
    "eun.github.io/Intel-Pentium-Instruction-Set-Reference/data/"
)

_PENTIUM_DATA: dict[str, tuple[int, str]] = {
    # §1 data movement
    "mov.rr": (1, _af(1, "[MS] agrees")),
    "mov.rm": (1, _af(1, "[MS] agrees")),
    "mov.mr": (1, _af(1, "[MS] agrees")),
    "mov.ri": (1, _af(1, "[MS] agrees")),
    "mov.mi": (1, _af(1, "[MS] agrees")),
    "mov.moffs_load": (1, _af(1, "the MOV r,m figure; the moffs form is not listed apart")),
    "mov.moffs_store": (1, _af(1, "the MOV m,r figure; the moffs form is not listed apart")),
    "sreg.load_r": (
        3,
        _ms(1, "printed '2, 3', the second taken as the protected-mode figure; "
               "[AF] '>= 2', [MAME] 2"),
    ),
    "sreg.load_m": (
        3,
        _ms(1, "printed '2, 3', the second taken as the protected-mode figure; "
               "[AF] '>= 2', [MAME] 3"),
    ),
    "sreg.store_r": (1, _af(1, "[MS] agrees")),
    "sreg.store_m": (1, _af(1, "[MS] agrees")),
    "movx.rr": (3, _af(1, "[MS] agrees")),
    "movx.rm": (3, _af(1, "[MS] agrees")),
    "lea": (1, _af(1, "[MS] agrees")),
    "xchg.rr": (3, _af(1, "XCHG EAX,r is 2; [MS] agrees")),
    "xchg.rm": (
        3,
        _ms(1, "[AF] gives '>15', counting the implicit LOCK; [MS] is taken as it follows the "
               "cache-hit, best-case convention of the other figures"),
    ),
    "push.r": (1, _af(1, "[MS] agrees")),
    "push.m": (2, _af(1, "[MS] agrees")),
    "push.i": (1, _af(1, "[MS] agrees")),
    "push.sreg": (1, _af(1, "[MS] agrees")),
    "pop.r": (1, _af(1)),
    "pop.m": (3, _af(1)),
    "pop.sreg": (3, _af(1, "printed '>= 3'; [MAME] 3")),
    "pushad": (5, _af(1, "[MS] agrees")),
    "popad": (5, _af(1)),
    "pushfd": (3, _af(1, "range 3-5; the lower bound is taken (best-case convention)")),
    "popfd": (4, _af(1, "range 4-6; the lower bound is taken (best-case convention)")),
    "leave": (3, _pir("CW1BO.html (LEAVE)", "[MAME] pentium also 3")),
    "enter": (
        11,
        _pir("CVZAO.html (ENTER)", "'imm16, 0' row (level 1: 15, level i: 15+2i); [MAME] "
             "pentium also 11"),
    ),
    # §2 integer ALU
    "alu.rr": (1, _af(2)),
    "alu.rm": (2, _af(2)),
    "alu.mr": (3, _af(2)),
    "alu.ri": (1, _af(2)),
    "alu.mi": (3, _af(2)),
    "cmp.rr": (1, _af(2)),
    "cmp.rm": (2, _mame(2, "[AF] lists no CMP r,m")),
    "cmp.mr": (2, _af(2)),
    "cmp.ri": (1, _af(2)),
    "cmp.mi": (2, _af(2)),
    "test.rr": (1, _af(2)),
    "test.ri": (1, _af(2)),
    "test.mr": (2, _af(2)),
    "test.mi": (2, _af(2)),
    "incdec.r": (1, _af(2)),
    "incdec.m": (3, _af(2)),
    "negnot.r": (1, _af(2)),
    "negnot.m": (3, _af(2)),
    # §3 shifts ([AF]'s shift rows were not reachable)
    "shift.r1": (1, _mame(3, "[AF] shift rows not reachable")),
    "shift.m1": (3, _mame(3, "[AF] shift rows not reachable")),
    "shift.rcl": (1, _mame(3, "[AF] shift rows not reachable")),
    "shift.mcl": (3, _mame(3, "[AF] shift rows not reachable")),
    "shift.ri": (1, _mame(3, "[AF] shift rows not reachable")),
    "shift.mi": (3, _mame(3, "[AF] shift rows not reachable")),
    # §4 multiply / divide
    "mul.r": (9, _af(4, "[MAME] gives 10")),
    "mul.m": (9, _af(4, "[MAME] gives 10")),
    "imul.r": (9, _af(4, "[MAME] gives 10")),
    "imul.m": (9, _af(4, "[MAME] gives 10")),
    "imul2.rr": (9, _af(4, "[MAME] gives 10")),
    "imul2.rm": (9, _af(4, "[MAME] gives 10")),
    "imul3.rr": (9, _af(4, "[MAME] gives 10")),
    "imul3.rm": (9, _af(4, "[MAME] gives 10")),
    "div.r": (41, _af(4, "[MAME] agrees")),
    "div.m": (41, _af(4, "[MAME] agrees")),
    "idiv.r": (46, _mame(4, "[AF]'s IDIV row was not reachable")),
    "idiv.m": (46, _mame(4, "[AF]'s IDIV row was not reachable")),
    "cdq": (2, _mame(4)),
    "cwde": (3, _mame(4)),
    "cmov.rr": (
        2,
        _est("CMOVcc does not exist on the Pentium (P6 and later); charged as the not-taken "
             "Jcc plus the MOV r,r it replaces (1 + 1, [AF] §1, [MAME] §5)"),
    ),
    "cmov.rm": (
        2,
        _est("CMOVcc does not exist on the Pentium (P6 and later); charged as the not-taken "
             "Jcc plus the MOV r,m it replaces (1 + 1, [AF] §1, [MAME] §5)"),
    ),
    "bswap": (
        1,
        _pir("CVXO.html (BSWAP)", "[NG] and [MAME] agree"),
    ),
    # bit instructions, double shifts, atomics (issue 16; not in timing-reference). All NP.
    "bt.rr": (4, _est("no stored source; 4, the [PIR] BT figure as remembered (BTS is 7)")),
    "bt.mr": (9, _est("no stored source; 9, the [PIR] BT figure as remembered (BTS is 13)")),
    "bt.ri": (4, _est("no stored source; 4, the [PIR] BT figure as remembered")),
    "bt.mi": (4, _est("no stored source; 4, the [PIR] BT figure as remembered")),
    "btx.rr": (7, _later(PIR_PAGE + "bts.html")),
    "btx.mr": (13, _later(PIR_PAGE + "bts.html")),
    "btx.ri": (7, _later(PIR_PAGE + "bts.html")),
    "btx.mi": (8, _later(PIR_PAGE + "bts.html")),
    "bsf.rr": (6, _later(PIR_PAGE + "bsf.html", "range 6-42, the fastest case taken")),
    "bsf.rm": (6, _later(PIR_PAGE + "bsf.html", "range 6-43, the fastest case taken")),
    "bsr.rr": (7, _est("no stored source; 7, the fastest case of the [PIR] BSR range as "
                       "remembered (7-71)")),
    "bsr.rm": (7, _est("no stored source; 7, the fastest case of the [PIR] BSR range as "
                       "remembered (7-72)")),
    "shd_imm.rr": (4, _later(PIR_PAGE + "shld.html", "[NG] agrees")),
    "shd_imm.mr": (4, _later(PIR_PAGE + "shld.html", "[NG] agrees")),
    "shd_cl.rr": (4, _later(PIR_PAGE + "shld.html", "[NG] agrees")),
    "shd_cl.mr": (5, _later(PIR_PAGE + "shld.html", "[NG] agrees")),
    "xadd.rr": (3, _est("no stored source; 3, the [PIR] XADD figure as remembered")),
    "xadd.mr": (4, _est("no stored source; 4, the [PIR] XADD figure as remembered")),
    "cmpxchg.rr": (5, _later(PIR_PAGE + "cmpxchg.html")),
    "cmpxchg.mr": (6, _later(PIR_PAGE + "cmpxchg.html")),
    "cmpxchg8b": (10, _later(PIR_PAGE + "cmpxchg8b.html")),
    "endbr32": (1, _est("ENDBR32 decodes as a NOP here; the NOP figure ([AF] §1)")),
    # §5 near control transfer (branches assumed correctly predicted)
    "jcc.taken": (
        1,
        _mame(5, "[VEN] AP-500: 1 if correctly predicted; misprediction (+3/+4) not modelled"),
    ),
    "jcc.not_taken": (
        1,
        _mame(5, "[VEN] AP-500: 1 if correctly predicted; misprediction (+3/+4) not modelled"),
    ),
    "jmp.rel": (1, _mame(5)),
    "jmp.r": (2, _mame(5)),
    "jmp.m": (2, _mame(5)),
    "call.rel": (1, _mame(5)),
    "call.r": (2, _mame(5)),
    "call.m": (2, _mame(5)),
    "ret": (2, _mame(5)),
    "ret.imm": (2, _mame(5)),
    "loop.taken": (5, _mame(5, "one value for taken and not taken")),
    "loop.not_taken": (5, _mame(5, "one value for taken and not taken")),
    "jecxz.taken": (
        1,
        _mame(5, "the only figure; doubtful (MAME's 486 value contradicts [H])"),
    ),
    "jecxz.not_taken": (
        1,
        _mame(5, "the only figure; doubtful (MAME's 486 value contradicts [H])"),
    ),
    "setcc.r": (2, _mame(5)),
    "setcc.m": (2, _mame(5)),
    # §6 far transfers
    "jmp_far.direct": (3, _b86(6, "timing_jmp_pm", "[MAME] agrees")),
    "jmp_far.m": (4, _mame(6)),
    "jmp_gate.same": (18, _b86(6, "timing_jmp_pm_gate")),
    "call_far.direct": (
        4,
        _b86(6, "timing_call_pm", "[MAME] gives 13; [PIR] CVXAO.html prints the protected-mode "
                "range 4-13, so [86B] is its lower bound (best-case convention) and [MAME] its "
                "upper"),
    ),
    "call_far.m": (
        5,
        _pir("CVXAO.html (CALL)", "protected-mode 'mem32' printed as the range 5-14; the lower "
             "bound is taken (best-case convention); [MAME] 14 is the upper"),
    ),
    "call_gate.same": (22, _b86(6, "timing_call_pm_gate")),
    "call_gate.inner": (44, _b86(6, "timing_call_pm_gate_inner, no parameters")),
    "call_gate.inner_params_base": (49, _est(f"{_P5_GATE_SCALE}: 77 x 44/69 = 49.1 -> 49")),
    "call_gate.param": (3, _est(f"{_P5_GATE_SCALE}: 4 x 44/69 = 2.55 -> 3")),
    "retf.same": (4, _b86(6, "timing_retf_pm", "[MAME] agrees")),
    "retf.outer": (23, _b86(6, "timing_retf_pm_outer")),
    "retf_imm.same": (4, _mame(6)),
    "retf_imm.outer": (
        23,
        _est("no Pentium figure; RETF imm16 to outer privilege charged as RETF outer (23, "
             "[86B] §6), as on the 486 where both are 33 ([H])"),
    ),
    "int.same": (25, _b86(6, "timing_int_pm")),
    "int.inner": (42, _b86(6, "timing_int_pm_outer")),
    "int3.same": (
        25,
        _est("[MAME]'s INT3 13 has no protected-mode split; charged as INT n same privilege "
             "(25, [86B] §6), as on the 486 where INT3 and INT n are equal ([H])"),
    ),
    "int3.inner": (
        42,
        _est("no protected-mode figure; charged as INT n to more privilege (42, [86B] §6), as "
             "on the 486 where INT3 and INT n are equal ([H])"),
    ),
    "into.taken_same": (
        25,
        _est("[MAME]'s INTO 13 has no protected-mode split; charged as INT n same privilege "
             "(25, [86B] §6)"),
    ),
    "into.taken_inner": (
        42,
        _est("no figure; charged as INT n to more privilege (42, [86B] §6)"),
    ),
    "into.not_taken": (4, _mame(6)),
    "iret.same": (10, _b86(6, "timing_iret_pm")),
    "iret.outer": (27, _b86(6, "timing_iret_pm_outer")),
    "exception.same": (
        25,
        _est("delivery of exceptions and hardware interrupts is not listed separately; the "
             "INT n protected-mode same-privilege figure is used ([86B] timing_int_pm §6)"),
    ),
    "exception.inner": (
        42,
        _est("delivery of exceptions and hardware interrupts is not listed separately; the "
             "INT n protected-mode more-privilege figure is used ([86B] timing_int_pm_outer §6)"),
    ),
    # §7 strings
    "movs": (4, _mame(7)),
    "stos": (3, _mame(7)),
    "lods": (2, _mame(7)),
    "cmps": (5, _mame(7)),
    "scas": (4, _mame(7)),
    "rep.base": (
        3,
        _pir("MM82V4.html (MOVS) and CVX0O0.html (STOS)", "the 3 of 'rep movs 3+n' and "
             "'rep stos 3+n'; one base for all kinds, so REPx CMPS (9+4n) and REPx SCAS (8+4n) "
             "are charged 6 and 5 clocks too little (docs/timing.md, known simplifications)"),
    ),
    "rep_movs.per": (1, _pir("MM82V4.html (MOVS)", "the n of 'rep movs 3+n'")),
    "rep_stos.per": (1, _pir("CVX0O0.html (STOS)", "the n of 'rep stos 3+n'")),
    "rep_lods.per": (
        2,
        _est("no Pentium REP LODS figure was found ([PIR] MM81V4.html lists only LODS 2); per "
             "item the single LODS figure (2, [MAME] §7)"),
    ),
    "rep_cmps.per": (4, _pir("CVYBO.html (CMPS)", "the 4n of 'repX cmps 9+4n'")),
    "rep_scas.per": (4, _pir("CW5BO.html (SCAS)", "the 4n of 'repX scas 8+4n'")),
    # §8 flags, misc
    "clc": (2, _mame(8)),
    "stc": (2, _mame(8)),
    "cmc": (2, _mame(8)),
    "cld": (2, _mame(8)),
    "std": (2, _mame(8)),
    "cli": (7, _mame(8)),
    "sti": (7, _mame(8)),
    "hlt": (4, _mame(8)),
    "nop": (1, _af(8)),
    "lahf": (2, _af(8)),
    "sahf": (2, _af(8)),
    # §9 system
    "lgdt": (6, _mame(9)),
    "lidt": (6, _mame(9)),
    "sgdt": (4, _mame(9)),
    "sidt": (4, _mame(9)),
    "lldt.r": (9, _mame(9)),
    "lldt.m": (9, _mame(9)),
    "sldt.r": (2, _mame(9)),
    "sldt.m": (2, _mame(9)),
    "ltr.r": (10, _mame(9)),
    "ltr.m": (10, _mame(9)),
    "str.r": (2, _mame(9)),
    "str.m": (2, _mame(9)),
    "lar": (8, _mame(9)),
    "lsl": (8, _mame(9)),
    "verr": (7, _mame(9)),
    "verw": (7, _mame(9)),
    "arpl": (7, _mame(9)),
    "mov_from_cr0": (
        4,
        _ms(9, "printed 4 under the 'MOV controlreg,reg32' heading, read as swapped (on the "
               "486 the load is the expensive direction); [MAME] 4"),
    ),
    "mov_from_cr2": (4, _ms(9, "as MOV r32,CR0 (headings read as swapped); [MAME] 4")),
    "mov_from_cr3": (4, _ms(9, "as MOV r32,CR0 (headings read as swapped); [MAME] 4")),
    "mov_from_cr4": (4, _ms(9, "as MOV r32,CR0 (headings read as swapped); [MAME] 4")),
    "mov_to_cr0": (
        22,
        _ms(9, "printed 22 as 'mov eax,cr0' under 'MOV reg32,controlreg', read as the load "
               "(headings swapped, as the 486 suggests); [MAME] 16"),
    ),
    "mov_to_cr2": (12, _ms(9, "headings read as swapped; [MAME] 4")),
    "mov_to_cr3": (
        21,
        _ms(9, "printed '21, 46', the first taken; headings read as swapped; [MAME] 4"),
    ),
    "mov_to_cr4": (14, _ms(9, "headings read as swapped")),
    "invlpg": (25, _pir("MM7ZX4.html (INVLPG)", "'mem32' row")),
    "invd": (
        15,
        _later("MAME cycles.h [MAME] CYCLES_INVD, Pentium column, emulator",
               "a copy of the Pentium reference's INVD page (faydoc.tripod.com/cpu/invd.htm) "
               "also prints 15, NP"),
    ),
    "wbinvd": (
        2000,
        _pir("CVX0K0.html (WBINVD)", "printed '2000+': the base is charged, and a board's "
             "hierarchy adds the bus time of each dirty line written back"),
    ),
    "cpuid": (14, _mame(9)),
    "rdtsc": (20, _mame(9)),
    "in": (19, _mame(9, "protected mode, no CPL split (real mode 7)")),
    "out": (24, _mame(9, "protected mode, no CPL split (real mode 12)")),
    "ud2": (
        1,
        _est("UD2 appears with the Pentium Pro; it only raises #UD, charged as "
             "exception.same/inner; the instruction itself is charged one clock like NOP "
             "([AF] §8)"),
    ),
    # §10 TLB miss
    "page_walk.read": (
        1,
        _est("no published TLB-miss figure (timing-reference §10); each PDE/PTE read is "
             "charged as a cache-hit memory read, MOV r,m (1, [AF] §1)"),
    ),
    "page_walk.ad_write": (
        3,
        _est("no published figure (timing-reference §10); setting A/D is a read-modify-write "
             "of the entry, charged as ALU m,r (3, [AF] §2)"),
    ),
}

PENTIUM: Final = _build(
    "pentium",
    "Intel Pentium (P5): single-issue figures of Agner Fog [AF] and the MASM notes [MS], else "
    "the Pentium instruction reference [PIR] or the emulator tables [86B]/[MAME]; best case "
    "(cache and TLB hits); dual issue in the U and V pipes, address-generation interlocks, "
    "prefix and misalignment penalties and a 256-entry branch target buffer "
    "(lavsim.timing.issue, docs/timing.md)",
    _PENTIUM_DATA,
    PENTIUM_ISSUE,
)
"""The Intel Pentium (P5) profile, with its issue model (:data:`~lavsim.timing.issue.
PENTIUM_ISSUE`): U/V pairing, AGI, prefixes, misalignment, branch prediction."""

PENTIUM_SEQUENTIAL: Final = PENTIUM.with_issue(
    None,
    name="pentium-sequential",
    description="Intel Pentium (P5) figures with every instruction issued alone in the U pipe "
    "and branches predicted correctly: the Pentium model before dual issue was modelled",
)
"""The Pentium's figures without its issue model (each instruction alone, no BTB): the figures
lavsim gave before dual issue was modelled."""
