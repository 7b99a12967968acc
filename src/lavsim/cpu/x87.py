"""Names of x87 floating-point instructions, for the reports of a program that reaches one.

lavsim models no FPU: the decoder turns every escape opcode D8..DF into #UD (or #NM, by CR0.EM
and CR0.TS: :func:`lavsim.cpu.decoder.x87_fault`). A C program uses x87 as soon as it uses
``double``, so the report of such a fault names the instruction (``fld qword ptr [mem]``,
``fstp st(1)``) instead of leaving the user to disassemble the bytes. The names follow the SDM
Vol. 2 x87 opcode map (appendix A.4), in GNU's mnemonics; the operand is described, not decoded.
"""

from __future__ import annotations

#: Memory forms by (escape byte, ModRM.reg): mnemonic and operand size.
_MEMORY: dict[tuple[int, int], str] = {}
for _esc, _size in ((0xD8, "dword"), (0xDC, "qword")):
    for _reg, _name in enumerate(("fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv",
                                  "fdivr")):
        _MEMORY[(_esc, _reg)] = f"{_name} {_size} ptr [mem]"
for _esc, _size in ((0xDA, "dword"), (0xDE, "word")):
    for _reg, _name in enumerate(("fiadd", "fimul", "ficom", "ficomp", "fisub", "fisubr",
                                  "fidiv", "fidivr")):
        _MEMORY[(_esc, _reg)] = f"{_name} {_size} ptr [mem]"
_MEMORY.update({
    (0xD9, 0): "fld dword ptr [mem]", (0xD9, 2): "fst dword ptr [mem]",
    (0xD9, 3): "fstp dword ptr [mem]", (0xD9, 4): "fldenv [mem]", (0xD9, 5): "fldcw [mem]",
    (0xD9, 6): "fnstenv [mem]", (0xD9, 7): "fnstcw [mem]",
    (0xDB, 0): "fild dword ptr [mem]", (0xDB, 1): "fisttp dword ptr [mem]",
    (0xDB, 2): "fist dword ptr [mem]", (0xDB, 3): "fistp dword ptr [mem]",
    (0xDB, 5): "fld tbyte ptr [mem]", (0xDB, 7): "fstp tbyte ptr [mem]",
    (0xDD, 0): "fld qword ptr [mem]", (0xDD, 1): "fisttp qword ptr [mem]",
    (0xDD, 2): "fst qword ptr [mem]", (0xDD, 3): "fstp qword ptr [mem]",
    (0xDD, 4): "frstor [mem]", (0xDD, 6): "fnsave [mem]", (0xDD, 7): "fnstsw [mem]",
    (0xDF, 0): "fild word ptr [mem]", (0xDF, 1): "fisttp word ptr [mem]",
    (0xDF, 2): "fist word ptr [mem]", (0xDF, 3): "fistp word ptr [mem]",
    (0xDF, 4): "fbld tbyte ptr [mem]", (0xDF, 5): "fild qword ptr [mem]",
    (0xDF, 6): "fbstp tbyte ptr [mem]", (0xDF, 7): "fistp qword ptr [mem]",
})  # fmt: skip

#: Register forms with ST(i) by (escape byte, ModRM.reg).
_STACK: dict[tuple[int, int], str] = {
    (0xD8, 0): "fadd st, st({i})", (0xD8, 1): "fmul st, st({i})", (0xD8, 2): "fcom st({i})",
    (0xD8, 3): "fcomp st({i})", (0xD8, 4): "fsub st, st({i})", (0xD8, 5): "fsubr st, st({i})",
    (0xD8, 6): "fdiv st, st({i})", (0xD8, 7): "fdivr st, st({i})",
    (0xD9, 0): "fld st({i})", (0xD9, 1): "fxch st({i})",
    (0xDA, 0): "fcmovb st, st({i})", (0xDA, 1): "fcmove st, st({i})",
    (0xDA, 2): "fcmovbe st, st({i})", (0xDA, 3): "fcmovu st, st({i})",
    (0xDB, 0): "fcmovnb st, st({i})", (0xDB, 1): "fcmovne st, st({i})",
    (0xDB, 2): "fcmovnbe st, st({i})", (0xDB, 3): "fcmovnu st, st({i})",
    (0xDB, 5): "fucomi st, st({i})", (0xDB, 6): "fcomi st, st({i})",
    (0xDC, 0): "fadd st({i}), st", (0xDC, 1): "fmul st({i}), st",
    (0xDC, 4): "fsubr st({i}), st", (0xDC, 5): "fsub st({i}), st",
    (0xDC, 6): "fdivr st({i}), st", (0xDC, 7): "fdiv st({i}), st",
    (0xDD, 0): "ffree st({i})", (0xDD, 2): "fst st({i})", (0xDD, 3): "fstp st({i})",
    (0xDD, 4): "fucom st({i})", (0xDD, 5): "fucomp st({i})",
    (0xDE, 0): "faddp st({i}), st", (0xDE, 1): "fmulp st({i}), st",
    (0xDE, 4): "fsubrp st({i}), st", (0xDE, 5): "fsubp st({i}), st",
    (0xDE, 6): "fdivrp st({i}), st", (0xDE, 7): "fdivp st({i}), st",
    (0xDF, 5): "fucomip st, st({i})", (0xDF, 6): "fcomip st, st({i})",
}  # fmt: skip

#: Register forms that are one whole ModRM byte.
_FIXED: dict[tuple[int, int], str] = {
    (0xD9, 0xD0): "fnop", (0xD9, 0xE0): "fchs", (0xD9, 0xE1): "fabs", (0xD9, 0xE4): "ftst",
    (0xD9, 0xE5): "fxam", (0xD9, 0xE8): "fld1", (0xD9, 0xE9): "fldl2t", (0xD9, 0xEA): "fldl2e",
    (0xD9, 0xEB): "fldpi", (0xD9, 0xEC): "fldlg2", (0xD9, 0xED): "fldln2", (0xD9, 0xEE): "fldz",
    (0xD9, 0xF0): "f2xm1", (0xD9, 0xF1): "fyl2x", (0xD9, 0xF2): "fptan", (0xD9, 0xF3): "fpatan",
    (0xD9, 0xF4): "fxtract", (0xD9, 0xF5): "fprem1", (0xD9, 0xF6): "fdecstp",
    (0xD9, 0xF7): "fincstp", (0xD9, 0xF8): "fprem", (0xD9, 0xF9): "fyl2xp1",
    (0xD9, 0xFA): "fsqrt", (0xD9, 0xFB): "fsincos", (0xD9, 0xFC): "frndint",
    (0xD9, 0xFD): "fscale", (0xD9, 0xFE): "fsin", (0xD9, 0xFF): "fcos",
    (0xDA, 0xE9): "fucompp", (0xDB, 0xE2): "fnclex", (0xDB, 0xE3): "fninit",
    (0xDE, 0xD9): "fcompp", (0xDF, 0xE0): "fnstsw ax",
}  # fmt: skip


def is_x87(code: bytes) -> bool:
    """Whether ``code`` starts (after prefixes) with an x87 escape opcode D8..DF."""
    rest = _strip_prefixes(code)
    return bool(rest) and 0xD8 <= rest[0] <= 0xDF


def _strip_prefixes(code: bytes) -> bytes:
    pos = 0
    while pos < len(code) and code[pos] in (0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67,
                                            0xF0, 0xF2, 0xF3):
        pos += 1
    return code[pos:]


def describe(code: bytes) -> str | None:
    """The x87 instruction at the start of ``code`` in words (``"x87 instruction fld1 (d9
    e8)"``), or None when ``code`` does not start with an escape opcode."""
    rest = _strip_prefixes(code)
    if not rest or not 0xD8 <= rest[0] <= 0xDF:
        return None
    esc = rest[0]
    if len(rest) < 2:
        return f"x87 instruction (escape {esc:02x})"
    modrm = rest[1]
    reg = (modrm >> 3) & 7
    if modrm < 0xC0:
        name = _MEMORY.get((esc, reg))
    else:
        name = _FIXED.get((esc, modrm))
        if name is None and (esc, reg) in _STACK:
            name = _STACK[(esc, reg)].format(i=modrm & 7)
    shown = f"{esc:02x} {modrm:02x}"
    if name is None:
        return f"x87 instruction (escape {shown})"
    return f"x87 instruction {name} ({shown})"
