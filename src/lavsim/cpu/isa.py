"""The instruction table: lavsim's IA-32 subset as data.

One :class:`Form` per encoding, in the notation of the Intel SDM Vol. 2 opcode tables. The
decoder, the assembler and the disassembler are all generated from :data:`FORMS`; the meaning of
each instruction lives in one small function named by :attr:`Form.handler` in the CPU's
semantics modules.

Operand notation (``Form.operands``, destination first, as in Intel syntax):

========== =================================================================================
``r/m8``   ModRM r/m, byte register or memory (``r/m16``, ``r/m32`` likewise)
``r/mv``   ModRM r/m of the operand size (16 with a 66 prefix, else 32)
``r8``     ModRM reg, byte register (``r16``, ``r32``, ``rv`` likewise)
``+r8``    register in the low three bits of the last opcode byte (``+rv`` likewise)
``m``      ModRM memory operand whose size the instruction defines (LEA, INVLPG, LGDT)
``m16:v``  ModRM memory far pointer (offset of the operand size, then a 16-bit selector)
``imm8``   immediate byte (``imm16``, ``immv``); ``simm8``: byte sign-extended to the size
``rel8``   8-bit displacement from the next instruction (``relv`` likewise)
``moffs8`` absolute offset of the address size (32) naming a byte (``moffsv`` likewise)
``ptr16:v`` immediate far pointer: offset of the operand size, then a 16-bit selector
``Sreg``   ModRM reg names a segment register (ES CS SS DS FS GS = 0..5)
``CRn``    ModRM reg names a control register (ModRM r/m is always a 32-bit register)
``AL`` ``eAX`` ``CL`` ``DX`` ``1``   fixed operands (``eAX`` is AX or EAX by operand size)
========== =================================================================================

``Form.modrm`` is ``None`` (no ModRM byte), ``"r"`` (ModRM.reg is an operand) or a digit 0..7
(``/digit``: ModRM.reg extends the opcode). ``Form.timing`` is the timing-class prefix of the
key in :mod:`lavsim.timing` (the decoder appends the form letters ``r``/``m``/``i``).
``Form.attrs`` holds flags: ``lock`` (LOCK prefix legal when the destination is memory),
``priv`` (CPL 0 only, else #GP(0)), ``rep`` (accepts REP/REPE/REPNE), ``cc`` (condition code in
the low nibble of the last opcode byte), ``noasm`` (decode only: the assembler picks another
form), ``size8`` (fixed byte operand size), ``size16``/``size32`` (operand size fixed
regardless of a 66 prefix), ``f3`` (a mandatory F3 prefix and the ModRM byte ``/digit`` with
r/m 3 and mod 3: ENDBR32).
"""

from __future__ import annotations

from attrs import frozen

#: Condition-code suffixes by tttn encoding (SDM Vol. 2, appendix B.1.4.7).
CONDITIONS = (
    "o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g",
)
#: Aliases the assembler accepts for the same tttn code.
CONDITION_ALIASES = {
    "c": 2, "nae": 2, "nb": 3, "nc": 3, "z": 4, "nz": 5, "na": 6, "nbe": 7,
    "pe": 10, "po": 11, "nge": 12, "nl": 13, "ng": 14, "nle": 15,
}

REG32 = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
REG16 = ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di")
REG8 = ("al", "cl", "dl", "bl", "ah", "ch", "dh", "bh")
SREG = ("es", "cs", "ss", "ds", "fs", "gs")
CREG = ("cr0", "cr1", "cr2", "cr3", "cr4", "cr5", "cr6", "cr7")

# Prefix bytes (SDM Vol. 2, 2.1.1).
PREFIX_LOCK = 0xF0
PREFIX_REPNE = 0xF2
PREFIX_REP = 0xF3
PREFIX_OPSIZE = 0x66
PREFIX_ADDRSIZE = 0x67
SEGMENT_PREFIXES = {0x26: 0, 0x2E: 1, 0x36: 2, 0x3E: 3, 0x64: 4, 0x65: 5}


@frozen
class Form:
    """One encoding of one instruction."""

    mnemonic: str
    opcode: bytes
    modrm: int | str | None
    operands: tuple[str, ...]
    handler: str
    timing: str
    attrs: frozenset[str] = frozenset()

    @property
    def reg_in_opcode(self) -> bool:
        return any(op.startswith("+") for op in self.operands)


def _f(
    mnemonic: str,
    opcode: bytes | int,
    modrm: int | str | None,
    operands: str,
    handler: str,
    timing: str,
    attrs: str = "",
) -> Form:
    code = bytes([opcode]) if isinstance(opcode, int) else opcode
    ops = tuple(o.strip() for o in operands.split(",")) if operands else ()
    return Form(mnemonic, code, modrm, ops, handler, timing, frozenset(attrs.split()))


def _build() -> tuple[Form, ...]:
    t: list[Form] = []
    add = t.append

    # --- data movement -------------------------------------------------------------------
    add(_f("mov", 0x88, "r", "r/m8, r8", "mov", "mov", "size8"))
    add(_f("mov", 0x89, "r", "r/mv, rv", "mov", "mov"))
    add(_f("mov", 0x8A, "r", "r8, r/m8", "mov", "mov", "size8 noasm"))
    add(_f("mov", 0x8B, "r", "rv, r/mv", "mov", "mov", "noasm"))
    add(_f("mov", 0x8C, "r", "r/m16, Sreg", "mov_from_sreg", "sreg.store"))
    add(_f("mov", 0x8E, "r", "Sreg, r/m16", "mov_to_sreg", "sreg.load", "size16"))
    add(_f("mov", 0xA0, None, "AL, moffs8", "mov", "mov.moffs_load", "size8"))
    add(_f("mov", 0xA1, None, "eAX, moffsv", "mov", "mov.moffs_load"))
    add(_f("mov", 0xA2, None, "moffs8, AL", "mov", "mov.moffs_store", "size8"))
    add(_f("mov", 0xA3, None, "moffsv, eAX", "mov", "mov.moffs_store"))
    add(_f("mov", 0xB0, None, "+r8, imm8", "mov", "mov", "size8"))
    add(_f("mov", 0xB8, None, "+rv, immv", "mov", "mov"))
    add(_f("mov", 0xC6, 0, "r/m8, imm8", "mov", "mov", "size8"))
    add(_f("mov", 0xC7, 0, "r/mv, immv", "mov", "mov"))
    add(_f("mov", b"\x0f\x20", "r", "r32, CRn", "mov_from_cr", "mov_from_cr", "priv size32"))
    add(_f("mov", b"\x0f\x22", "r", "CRn, r32", "mov_to_cr", "mov_to_cr", "priv size32"))
    add(_f("movzx", b"\x0f\xb6", "r", "rv, r/m8", "movzx", "movx"))
    add(_f("movzx", b"\x0f\xb7", "r", "r32, r/m16", "movzx", "movx", "size32"))
    add(_f("movsx", b"\x0f\xbe", "r", "rv, r/m8", "movsx", "movx"))
    add(_f("movsx", b"\x0f\xbf", "r", "r32, r/m16", "movsx", "movx", "size32"))
    add(_f("lea", 0x8D, "r", "rv, m", "lea", "lea"))
    add(_f("xchg", 0x90, None, "eAX, +rv", "xchg", "xchg"))
    add(_f("xchg", 0x86, "r", "r/m8, r8", "xchg", "xchg", "size8 lock"))
    add(_f("xchg", 0x87, "r", "r/mv, rv", "xchg", "xchg", "lock"))
    add(_f("push", 0x50, None, "+rv", "push", "push"))
    add(_f("push", 0xFF, 6, "r/mv", "push", "push"))
    add(_f("push", 0x6A, None, "simm8", "push", "push"))
    add(_f("push", 0x68, None, "immv", "push", "push"))
    add(_f("pop", 0x58, None, "+rv", "pop", "pop"))
    add(_f("pop", 0x8F, 0, "r/mv", "pop", "pop"))
    for name, push_op, pop_op in (
        ("es", b"\x06", b"\x07"), ("cs", b"\x0e", None), ("ss", b"\x16", b"\x17"),
        ("ds", b"\x1e", b"\x1f"), ("fs", b"\x0f\xa0", b"\x0f\xa1"),
        ("gs", b"\x0f\xa8", b"\x0f\xa9"),
    ):
        add(_f("push", push_op, None, name.upper(), "push_sreg", "push.sreg"))
        if pop_op is not None:
            add(_f("pop", pop_op, None, name.upper(), "pop_sreg", "pop.sreg"))
    # The 16-bit twins carry GNU's names (pushaw, popaw, pushfw, popfw, iretw): in 32-bit code
    # GNU reads plain PUSHA/POPA/PUSHF/POPF/IRET as the 32-bit forms.
    add(_f("pushad", 0x60, None, "", "pushad", "pushad", "size32"))
    add(_f("pushaw", 0x60, None, "", "pushad", "pushad", "size16"))
    add(_f("popad", 0x61, None, "", "popad", "popad", "size32"))
    add(_f("popaw", 0x61, None, "", "popad", "popad", "size16"))
    add(_f("pushfd", 0x9C, None, "", "pushfd", "pushfd", "size32"))
    add(_f("pushfw", 0x9C, None, "", "pushfd", "pushfd", "size16"))
    add(_f("popfd", 0x9D, None, "", "popfd", "popfd", "size32"))
    add(_f("popfw", 0x9D, None, "", "popfd", "popfd", "size16"))
    add(_f("cdq", 0x99, None, "", "cdq", "cdq", "size32"))
    add(_f("cwd", 0x99, None, "", "cdq", "cdq", "size16"))
    add(_f("cwde", 0x98, None, "", "cwde", "cwde", "size32"))
    add(_f("cbw", 0x98, None, "", "cwde", "cwde", "size16"))
    add(_f("leave", 0xC9, None, "", "leave", "leave"))
    add(_f("enter", 0xC8, None, "imm16, imm8", "enter", "enter"))
    add(_f("lahf", 0x9F, None, "", "lahf", "lahf"))
    add(_f("sahf", 0x9E, None, "", "sahf", "sahf"))
    add(_f("bswap", b"\x0f\xc8", None, "+r32", "bswap", "bswap", "size32"))
    for cc, suffix in enumerate(CONDITIONS):
        add(_f("cmov" + suffix, bytes([0x0F, 0x40 + cc]), "r", "rv, r/mv", "cmovcc", "cmov", "cc"))
        add(_f("set" + suffix, bytes([0x0F, 0x90 + cc]), 0, "r/m8", "setcc", "setcc", "cc size8"))

    # --- integer arithmetic and logic (SDM Vol. 2, ADD/OR/ADC/SBB/AND/SUB/XOR/CMP) ---------
    for digit, name in enumerate(("add", "or", "adc", "sbb", "and", "sub", "xor", "cmp")):
        base = digit * 8
        timing = "cmp" if name == "cmp" else "alu"
        lock = "" if name == "cmp" else " lock"
        add(_f(name, base + 0, "r", "r/m8, r8", name, timing, "size8" + lock))
        add(_f(name, base + 1, "r", "r/mv, rv", name, timing, lock))
        add(_f(name, base + 2, "r", "r8, r/m8", name, timing, "size8 noasm"))
        add(_f(name, base + 3, "r", "rv, r/mv", name, timing, "noasm"))
        add(_f(name, base + 4, None, "AL, imm8", name, timing, "size8"))
        add(_f(name, base + 5, None, "eAX, immv", name, timing))
        add(_f(name, 0x80, digit, "r/m8, imm8", name, timing, "size8" + lock))
        add(_f(name, 0x81, digit, "r/mv, immv", name, timing, lock))
        add(_f(name, 0x83, digit, "r/mv, simm8", name, timing, lock))
    add(_f("test", 0x84, "r", "r/m8, r8", "test", "test", "size8"))
    add(_f("test", 0x85, "r", "r/mv, rv", "test", "test"))
    add(_f("test", 0xA8, None, "AL, imm8", "test", "test", "size8"))
    add(_f("test", 0xA9, None, "eAX, immv", "test", "test"))
    add(_f("test", 0xF6, 0, "r/m8, imm8", "test", "test", "size8"))
    add(_f("test", 0xF7, 0, "r/mv, immv", "test", "test"))
    add(_f("inc", 0x40, None, "+rv", "inc", "incdec"))
    add(_f("dec", 0x48, None, "+rv", "dec", "incdec"))
    add(_f("inc", 0xFE, 0, "r/m8", "inc", "incdec", "size8 lock"))
    add(_f("dec", 0xFE, 1, "r/m8", "dec", "incdec", "size8 lock"))
    add(_f("inc", 0xFF, 0, "r/mv", "inc", "incdec", "lock"))
    add(_f("dec", 0xFF, 1, "r/mv", "dec", "incdec", "lock"))
    for digit, name, timing in (
        (2, "not", "negnot"), (3, "neg", "negnot"), (4, "mul", "mul"), (5, "imul", "imul"),
        (6, "div", "div"), (7, "idiv", "idiv"),
    ):
        lock = " lock" if name in ("not", "neg") else ""
        add(_f(name, 0xF6, digit, "r/m8", name, timing, "size8" + lock))
        add(_f(name, 0xF7, digit, "r/mv", name, timing, lock))
    add(_f("imul", b"\x0f\xaf", "r", "rv, r/mv", "imul2", "imul2"))
    add(_f("imul", 0x6B, "r", "rv, r/mv, simm8", "imul3", "imul3"))
    add(_f("imul", 0x69, "r", "rv, r/mv, immv", "imul3", "imul3"))
    for digit, name in enumerate(("rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar")):
        if name == "sal":
            continue  # SAL is SHL (/4); /6 is undefined in the manual's table
        add(_f(name, 0xD0, digit, "r/m8, 1", name, "shift", "size8"))
        add(_f(name, 0xD1, digit, "r/mv, 1", name, "shift"))
        add(_f(name, 0xD2, digit, "r/m8, CL", name, "shift", "size8"))
        add(_f(name, 0xD3, digit, "r/mv, CL", name, "shift"))
        add(_f(name, 0xC0, digit, "r/m8, imm8", name, "shift", "size8"))
        add(_f(name, 0xC1, digit, "r/mv, imm8", name, "shift"))
    for opcode, modrm, ops in (
        (0xD0, 4, "r/m8, 1"), (0xD1, 4, "r/mv, 1"), (0xD2, 4, "r/m8, CL"),
        (0xD3, 4, "r/mv, CL"), (0xC0, 4, "r/m8, imm8"), (0xC1, 4, "r/mv, imm8"),
    ):
        size8 = " size8" if "8," in ops else ""
        add(_f("sal", opcode, modrm, ops, "shl", "shift", "noasm" + size8))

    # --- bit instructions, double shifts, atomics (SDM Vol. 2: BT/BTS/BTR/BTC, BSF/BSR,
    # SHLD/SHRD, XADD, CMPXCHG, CMPXCHG8B, ENDBR32): what compiled C needs -------------------
    for digit, name, code in ((4, "bt", 0xA3), (5, "bts", 0xAB), (6, "btr", 0xB3),
                              (7, "btc", 0xBB)):
        timing = "bt" if name == "bt" else "btx"
        lock = "" if name == "bt" else "lock"
        add(_f(name, bytes([0x0F, code]), "r", "r/mv, rv", name, timing, lock))
        add(_f(name, b"\x0f\xba", digit, "r/mv, imm8", name, timing, lock))
    add(_f("bsf", b"\x0f\xbc", "r", "rv, r/mv", "bsf", "bsf"))
    add(_f("bsr", b"\x0f\xbd", "r", "rv, r/mv", "bsr", "bsr"))
    add(_f("shld", b"\x0f\xa4", "r", "r/mv, rv, imm8", "shld", "shd_imm"))
    add(_f("shld", b"\x0f\xa5", "r", "r/mv, rv, CL", "shld", "shd_cl"))
    add(_f("shrd", b"\x0f\xac", "r", "r/mv, rv, imm8", "shrd", "shd_imm"))
    add(_f("shrd", b"\x0f\xad", "r", "r/mv, rv, CL", "shrd", "shd_cl"))
    add(_f("xadd", b"\x0f\xc0", "r", "r/m8, r8", "xadd", "xadd", "size8 lock"))
    add(_f("xadd", b"\x0f\xc1", "r", "r/mv, rv", "xadd", "xadd", "lock"))
    add(_f("cmpxchg", b"\x0f\xb0", "r", "r/m8, r8", "cmpxchg", "cmpxchg", "size8 lock"))
    add(_f("cmpxchg", b"\x0f\xb1", "r", "r/mv, rv", "cmpxchg", "cmpxchg", "lock"))
    add(_f("cmpxchg8b", b"\x0f\xc7", 1, "m", "cmpxchg8b", "cmpxchg8b", "lock size32"))
    # ENDBR32 is F3 0F 1E FB exactly: the mandatory F3 and the whole ModRM are the attribute
    # ``f3`` and ``/7`` with r/m 3 (the semantics refuse any other byte with #UD).
    add(_f("endbr32", b"\x0f\x1e", 7, "", "endbr32", "endbr32", "f3 size32"))

    # --- near control transfer -----------------------------------------------------------
    for cc, suffix in enumerate(CONDITIONS):
        add(_f("j" + suffix, 0x70 + cc, None, "rel8", "jcc", "jcc", "cc"))
        add(_f("j" + suffix, bytes([0x0F, 0x80 + cc]), None, "relv", "jcc", "jcc", "cc"))
    add(_f("jmp", 0xEB, None, "rel8", "jmp_rel", "jmp.rel"))
    add(_f("jmp", 0xE9, None, "relv", "jmp_rel", "jmp.rel"))
    add(_f("jmp", 0xFF, 4, "r/mv", "jmp_near_indirect", "jmp"))
    add(_f("call", 0xE8, None, "relv", "call_rel", "call.rel"))
    add(_f("call", 0xFF, 2, "r/mv", "call_near_indirect", "call"))
    add(_f("ret", 0xC3, None, "", "ret_near", "ret"))
    add(_f("ret", 0xC2, None, "imm16", "ret_near", "ret.imm"))
    add(_f("loop", 0xE2, None, "rel8", "loop", "loop"))
    add(_f("loope", 0xE1, None, "rel8", "loope", "loope"))
    add(_f("loopne", 0xE0, None, "rel8", "loopne", "loopne"))
    add(_f("jecxz", 0xE3, None, "rel8", "jecxz", "jecxz"))

    # --- far control transfer, interrupts ------------------------------------------------
    add(_f("jmp", 0xEA, None, "ptr16:v", "jmp_far", "jmp_far"))
    add(_f("jmp", 0xFF, 5, "m16:v", "jmp_far", "jmp_far"))
    add(_f("call", 0x9A, None, "ptr16:v", "call_far", "call_far"))
    add(_f("call", 0xFF, 3, "m16:v", "call_far", "call_far"))
    add(_f("retf", 0xCB, None, "", "ret_far", "retf"))
    add(_f("retf", 0xCA, None, "imm16", "ret_far", "retf_imm"))
    add(_f("int3", 0xCC, None, "", "int3", "int3"))
    add(_f("int", 0xCD, None, "imm8", "int_n", "int"))
    add(_f("into", 0xCE, None, "", "into", "into"))
    add(_f("iretd", 0xCF, None, "", "iret", "iret", "size32"))
    add(_f("iretw", 0xCF, None, "", "iret", "iret", "size16"))

    # --- string instructions -------------------------------------------------------------
    for name, byte_op, timing in (
        ("movs", 0xA4, "movs"), ("cmps", 0xA6, "cmps"), ("stos", 0xAA, "stos"),
        ("lods", 0xAC, "lods"), ("scas", 0xAE, "scas"),
    ):
        add(_f(name + "b", byte_op, None, "", name, timing, "rep size8"))
        add(_f(name + "d", byte_op + 1, None, "", name, timing, "rep size32"))
        add(_f(name + "w", byte_op + 1, None, "", name, timing, "rep size16"))

    # --- flags, misc ---------------------------------------------------------------------
    for name, opcode in (
        ("nop", 0x90), ("hlt", 0xF4), ("cmc", 0xF5), ("clc", 0xF8), ("stc", 0xF9),
        ("cli", 0xFA), ("sti", 0xFB), ("cld", 0xFC), ("std", 0xFD),
    ):
        add(_f(name, opcode, None, "", name, name, "priv" if name == "hlt" else ""))
    add(_f("ud2", b"\x0f\x0b", None, "", "ud2", "ud2"))
    add(_f("cpuid", b"\x0f\xa2", None, "", "cpuid", "cpuid"))
    add(_f("rdtsc", b"\x0f\x31", None, "", "rdtsc", "rdtsc"))
    add(_f("in", 0xE4, None, "AL, imm8", "in_", "in", "size8"))
    add(_f("in", 0xE5, None, "eAX, imm8", "in_", "in"))
    add(_f("in", 0xEC, None, "AL, DX", "in_", "in", "size8"))
    add(_f("in", 0xED, None, "eAX, DX", "in_", "in"))
    add(_f("out", 0xE6, None, "imm8, AL", "out", "out", "size8"))
    add(_f("out", 0xE7, None, "imm8, eAX", "out", "out"))
    add(_f("out", 0xEE, None, "DX, AL", "out", "out", "size8"))
    add(_f("out", 0xEF, None, "DX, eAX", "out", "out"))

    # --- system (SDM Vol. 2: LGDT/LIDT/SGDT/SIDT, LLDT/SLDT, LTR/STR, LAR/LSL, VERR/VERW) -
    add(_f("sgdt", b"\x0f\x01", 0, "m", "sgdt", "sgdt"))
    add(_f("sidt", b"\x0f\x01", 1, "m", "sidt", "sidt"))
    add(_f("lgdt", b"\x0f\x01", 2, "m", "lgdt", "lgdt", "priv"))
    add(_f("lidt", b"\x0f\x01", 3, "m", "lidt", "lidt", "priv"))
    add(_f("invlpg", b"\x0f\x01", 7, "m", "invlpg", "invlpg", "priv"))
    # INVD/WBINVD (SDM Vol. 2 pages of the same names; 486 and later)
    add(_f("invd", b"\x0f\x08", None, "", "invd", "invd", "priv"))
    add(_f("wbinvd", b"\x0f\x09", None, "", "wbinvd", "wbinvd", "priv"))
    # SLDT/STR store like MOV r/m16, Sreg: a register destination has the operand size (GNU
    # encodes `sldt ax` with 66), memory is always 16 bits.
    add(_f("sldt", b"\x0f\x00", 0, "r/m16", "sldt", "sldt"))
    add(_f("str", b"\x0f\x00", 1, "r/m16", "str_", "str"))
    add(_f("lldt", b"\x0f\x00", 2, "r/m16", "lldt", "lldt", "priv size16"))
    add(_f("ltr", b"\x0f\x00", 3, "r/m16", "ltr", "ltr", "priv size16"))
    add(_f("verr", b"\x0f\x00", 4, "r/m16", "verr", "verr", "size16"))
    add(_f("verw", b"\x0f\x00", 5, "r/m16", "verw", "verw", "size16"))
    # LAR/LSL read a 16-bit selector (SDM: LAR r32, r32/m16): GNU refuses `dword ptr [..]`.
    add(_f("lar", b"\x0f\x02", "r", "rv, r/m16", "lar", "lar"))
    add(_f("lsl", b"\x0f\x03", "r", "rv, r/m16", "lsl", "lsl"))
    add(_f("arpl", 0x63, "r", "r/m16, r16", "arpl", "arpl", "size16"))
    return tuple(t)


#: Every encoding lavsim decodes, assembles and disassembles.
FORMS: tuple[Form, ...] = _build()


def forms_by_mnemonic() -> dict[str, list[Form]]:
    """Forms grouped by mnemonic, in table order (the assembler's candidate lists)."""
    table: dict[str, list[Form]] = {}
    for form in FORMS:
        table.setdefault(form.mnemonic, []).append(form)
    return table
