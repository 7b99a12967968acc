"""Disassembler for lavsim's IA-32 subset, generated from :data:`lavsim.cpu.isa.FORMS`.

Each :class:`Line` has the text in the syntax :mod:`lavsim.cpu.asm` reads, so that assembling
the lines of :func:`disassemble` (at the same address) gives back the same bytes for every
encoding the assembler emits. Other encodings of the same instruction (``8B C3`` for
``mov eax, ebx``, a disp32 that would fit a byte, ``CD 03``...) get the text of the
instruction, which the assembler then writes in its own, shorter way.

Prefixes follow the same rule: one the text can express is part of the instruction (``lock``,
``rep``/``repe``/``repne``, 66 through the operand size, a segment override in the memory
operand or as a prefix word such as ``es movsb``); one it cannot (67, which lavsim's CPU
refuses; LOCK where it would raise #UD; 66 where the size cannot be written; REP on a form that
does not repeat; a prefix overridden by a later one of its kind) becomes a ``db`` line of its
own, together with the prefixes before it. Bytes that decode to nothing in the table become
``db 0x..`` lines of one byte; the disassembler never raises on any input.
"""

from __future__ import annotations

import builtins

from attrs import frozen

from lavsim.cpu.asm import TWIN16, TWIN32, _fixed_size, needs_opsize_prefix
from lavsim.cpu.isa import (
    CREG,
    FORMS,
    PREFIX_ADDRSIZE,
    PREFIX_LOCK,
    PREFIX_OPSIZE,
    PREFIX_REP,
    PREFIX_REPNE,
    REG8,
    REG16,
    REG32,
    SEGMENT_PREFIXES,
    SREG,
    Form,
)

__all__ = ["Line", "disassemble", "disassemble_one"]

MASK32 = 0xFFFFFFFF
_MAX_LENGTH = 15
_PREFIXES = frozenset(
    {PREFIX_LOCK, PREFIX_REP, PREFIX_REPNE, PREFIX_OPSIZE, PREFIX_ADDRSIZE, *SEGMENT_PREFIXES}
)
_SIZE_NAMES = {1: "byte ptr ", 2: "word ptr ", 4: "dword ptr ", 6: "fword ptr "}
_DS, _SS = 3, 2


@frozen
class Line:
    """One disassembled instruction (or ``db`` line).

    ``address`` of the first byte, ``length`` bytes (``bytes``), ``text`` in the assembler's
    syntax, ``form`` the table entry it decoded to (None for a ``db`` line).
    """

    address: int
    length: int
    bytes: builtins.bytes
    text: str
    form: Form | None = None

    def __str__(self) -> str:
        return f"{self.address:08x}  {self.bytes.hex(' '):<24} {self.text}"


# --- tables -----------------------------------------------------------------------------------

_Entry = tuple[Form, int]  # the form and the register in the opcode's low bits (-1: none)


def _build() -> tuple[dict[int, list[_Entry]], dict[int, list[_Entry]]]:
    one: dict[int, list[_Entry]] = {}
    two: dict[int, list[_Entry]] = {}
    for form in FORMS:
        table = two if len(form.opcode) == 2 else one
        last = form.opcode[-1]
        if form.reg_in_opcode:
            for r in range(8):
                table.setdefault(last + r, []).append((form, r))
        else:
            table.setdefault(last, []).append((form, -1))
    return one, two


_ONE_BYTE, _TWO_BYTE = _build()


class _Bad(Exception):
    """Not an instruction of the table (or cut short by the end of the code)."""


class _Cursor:
    def __init__(self, code: bytes, pos: int) -> None:
        self.code = code
        self.pos = pos

    def take(self, n: int) -> int:
        if self.pos + n > len(self.code) or self.pos + n > _MAX_LENGTH:
            raise _Bad
        value = int.from_bytes(self.code[self.pos:self.pos + n], "little")
        self.pos += n
        return value


def _sext(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _hex(value: int) -> str:
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


# --- memory operands --------------------------------------------------------------------------


@frozen
class _MemRef:
    base: int  # -1: none
    index: int  # -1: none
    scale: int
    disp: int

    @property
    def default_segment(self) -> int:
        return _SS if self.base in (4, 5) else _DS

    def text(self, size: int | None, seg: int | None) -> str:
        parts: list[str] = []
        if self.base >= 0:
            parts.append(REG32[self.base])
        if self.index >= 0:
            parts.append(f"{REG32[self.index]}*{self.scale}")
        inner = "+".join(parts)
        if not parts:
            inner = f"{self.disp & MASK32:#x}"
        elif self.disp:
            d = _sext(self.disp & MASK32, 32)
            inner += f"+{d:#x}" if d > 0 else f"-{-d:#x}"
        prefix = _SIZE_NAMES[size] if size else ""
        override = f"{SREG[seg]}:" if seg is not None else ""
        return f"{prefix}{override}[{inner}]"


def _modrm_memory(cur: _Cursor, mod: int, rm: int) -> _MemRef:
    base, index, scale = rm, -1, 1
    if rm == 4:
        sib = cur.take(1)
        scale = 1 << (sib >> 6)
        index = (sib >> 3) & 7
        base = sib & 7
        if index == 4:
            index, scale = -1, 1
        if base == 5 and mod == 0:
            return _MemRef(-1, index, scale, cur.take(4))
    elif rm == 5 and mod == 0:
        return _MemRef(-1, -1, 1, cur.take(4))
    disp = 0
    if mod == 1:
        disp = _sext(cur.take(1), 8)
    elif mod == 2:
        disp = cur.take(4)
    return _MemRef(base, index, scale, disp)


# --- choosing among forms that share an opcode ------------------------------------------------

_SIZE_CARRIERS = ("r/mv", "rv", "+rv", "eAX", "moffsv", "immv", "simm8")


def _opsize_expressible(form: Form, rm_is_reg: bool) -> bool:
    """Whether the assembler's text can ask for a 16-bit operand size in this form."""
    if form in TWIN16:
        return True
    if _fixed_size(form) is not None:
        return False
    return any(
        spec in _SIZE_CARRIERS or (spec == "r/m16" and rm_is_reg) for spec in form.operands
    )


def _select(entries: list[_Entry], modrm: int | None, has66: bool) -> _Entry:
    fits: list[tuple[tuple[bool, bool, bool], int, _Entry]] = []
    for n, (form, r) in enumerate(entries):
        if isinstance(form.modrm, int) and modrm is not None and (modrm >> 3) & 7 != form.modrm:
            continue
        if modrm is not None and modrm >> 6 == 3 and any(
            spec in ("m", "m16:v") for spec in form.operands
        ):
            continue  # memory-only operand given a register: #UD
        if form in TWIN16 and not has66:
            continue
        if form in TWIN32 and has66:
            continue
        rm_is_reg = modrm is not None and modrm >> 6 == 3
        wasted = has66 and not _opsize_expressible(form, rm_is_reg)
        rank = (wasted, "noasm" in form.attrs, r >= 0)
        fits.append((rank, n, (form, r)))
    if not fits:
        raise _Bad
    return min(fits)[2]


# --- decoding ---------------------------------------------------------------------------------


#: The one ModRM byte of an ``f3`` form (ENDBR32: mod 3, /7, r/m 3).
_F3_MODRM = 0xFB


def _decode(code: bytes, address: int) -> Line:
    cur = _Cursor(code, 0)
    prefixes: list[int] = []
    while cur.pos < len(code) and code[cur.pos] in _PREFIXES:
        prefixes.append(code[cur.pos])
        cur.take(1)
    op = cur.take(1)
    table = _ONE_BYTE
    if op == 0x0F:
        op = cur.take(1)
        table = _TWO_BYTE
    entries = table.get(op)
    if not entries:
        raise _Bad
    modrm: int | None = None
    if entries[0][0].modrm is not None:
        modrm = cur.take(1)
    has66 = PREFIX_OPSIZE in prefixes
    form, opreg = _select(entries, modrm, has66)
    if "f3" in form.attrs and (modrm != _F3_MODRM or PREFIX_REP not in prefixes):
        raise _Bad  # only F3 0F 1E FB is ENDBR32
    fixed = _fixed_size(form)
    size = fixed if fixed is not None else (2 if has66 else 4)
    segs = [p for p in prefixes if p in SEGMENT_PREFIXES]
    seg = SEGMENT_PREFIXES[segs[-1]] if segs else None

    mem: _MemRef | None = None
    mod = reg = rm = 0
    if modrm is not None:
        mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
        if mod != 3 and "CRn" not in form.operands:
            mem = _modrm_memory(cur, mod, rm)
    specs = form.operands
    special = any(spec in ("Sreg", "CRn") for spec in specs)
    texts: list[str] = []
    seg_in_operand = False
    rel_index = -1
    rel_value = 0
    imm_slots: list[int] = []

    def reg_name(kind_size: int, num: int) -> str:
        return {1: REG8, 2: REG16, 4: REG32}[kind_size][num]

    def memory_text(msize: int | None, m: _MemRef) -> str:
        nonlocal seg_in_operand
        use = seg if seg is not None and seg != m.default_segment else None
        seg_in_operand = seg_in_operand or use is not None
        return m.text(msize, use)

    for spec in specs:
        if spec in ("AL", "CL"):
            texts.append(spec.lower())
        elif spec == "DX":
            texts.append("dx")
        elif spec == "eAX":
            texts.append(reg_name(size, 0))
        elif spec == "1":
            texts.append("1")
        elif spec in ("ES", "CS", "SS", "DS", "FS", "GS"):
            texts.append(spec.lower())
        elif spec.startswith("+"):
            texts.append(reg_name({"+r8": 1, "+r32": 4}.get(spec, size), opreg))
        elif spec == "Sreg":
            if reg >= len(SREG):
                raise _Bad
            texts.append(SREG[reg])
        elif spec == "CRn":
            texts.append(CREG[reg])
        elif spec in ("r8", "r16", "r32", "rv"):
            width = {"r8": 1, "r16": 2, "r32": 4}.get(spec, size)
            texts.append(reg_name(width, rm if (special and spec == "r32") else reg))
        elif spec in ("r/m8", "r/mv", "r/m16", "m", "m16:v"):
            width = {"r/m8": 1, "r/m16": 2 if fixed is not None else size}.get(spec, size)
            if mem is None:
                texts.append(reg_name(width, rm))
            else:
                msize = {"r/m16": 2, "m": None, "m16:v": 6 if size == 4 else 4}.get(spec, width)
                texts.append(memory_text(msize, mem))
        elif spec in ("moffs8", "moffsv"):
            m = _MemRef(-1, -1, 1, cur.take(4))
            texts.append(memory_text(1 if spec == "moffs8" else size, m))
            mem = m
        elif spec == "imm8":
            texts.append(_hex(cur.take(1)))
        elif spec == "imm16":
            texts.append(_hex(cur.take(2)))
        elif spec == "immv":
            imm_slots.append(len(texts))
            texts.append(_hex(cur.take(size)))
        elif spec == "simm8":
            imm_slots.append(len(texts))
            texts.append(_hex(_sext(cur.take(1), 8) & ((1 << (8 * size)) - 1)))
        elif spec in ("rel8", "relv"):
            n = 1 if spec == "rel8" else size
            rel_value = _sext(cur.take(n), 8 * n)
            rel_index = len(texts)
            texts.append("")
        elif spec == "ptr16:v":
            off = cur.take(size)
            sel = cur.take(2)
            texts.append(f"{sel:#x}:{off:#x}")
        else:  # pragma: no cover - every spec of the table is handled above
            raise _Bad
    length = cur.pos
    if rel_index >= 0:
        texts[rel_index] = f"{(address + length + rel_value) & MASK32:#x}"

    # Which prefixes the text can carry; the rest go to a db line of their own.
    rm_is_reg = modrm is not None and mod == 3
    bad = -1
    last_of: dict[str, int] = {}
    for n, p in enumerate(prefixes):
        kind = str(p)
        if p in SEGMENT_PREFIXES:
            kind = "seg"
        elif p in (PREFIX_REP, PREFIX_REPNE):
            kind = "rep"
        if kind in last_of:
            bad = last_of[kind]  # overridden by this later one of the same kind
        last_of[kind] = n
        usable = (
            kind == "seg"
            or (p == PREFIX_OPSIZE and (_opsize_expressible(form, rm_is_reg)))
            or (kind == "rep" and "rep" in form.attrs)
            or (p == PREFIX_REP and "f3" in form.attrs)
            or (p == PREFIX_LOCK and "lock" in form.attrs and mem is not None and not special)
        )
        if not usable:
            bad = n
    if bad >= 0:
        raise _PrefixLine(bad + 1)

    words: list[str] = []
    if seg is not None and not seg_in_operand:
        words.append(SREG[seg])
    reps = [p for p in prefixes if p in (PREFIX_REP, PREFIX_REPNE)]
    if reps and "f3" not in form.attrs:
        compare = form.handler in ("cmps", "scas")
        words.append("repne" if reps[-1] == PREFIX_REPNE else "repe" if compare else "rep")
    if PREFIX_LOCK in prefixes:
        words.append("lock")
    if has66 and needs_opsize_prefix(form, size) and imm_slots and not any(
        spec in _SIZE_CARRIERS[:5] or spec == "r/m16" for spec in specs
    ):
        texts[imm_slots[0]] = "word ptr " + texts[imm_slots[0]]  # push word ptr 0x1234
    text = " ".join([*words, form.mnemonic])
    if texts:
        text += " " + ", ".join(texts)
    return Line(address, length, bytes(code[:length]), text, form)


class _PrefixLine(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _db(code: bytes, address: int, n: int) -> Line:
    data = bytes(code[:n])
    return Line(address, n, data, "db " + ", ".join(f"{b:#04x}" for b in data))


def disassemble_one(code: bytes, address: int = 0) -> Line:
    """The first instruction of ``code`` (which sits at ``address``), or a ``db`` line.

    Never raises for any bytes; empty ``code`` is the only error (ValueError).
    """
    if not code:
        raise ValueError("nothing to disassemble")
    window = bytes(code[:_MAX_LENGTH])
    try:
        return _decode(window, address & MASK32)
    except _PrefixLine as p:
        return _db(window, address, p.count)
    except _Bad:
        return _db(window, address, 1)


def disassemble(code: bytes, address: int = 0) -> list[Line]:
    """Every instruction of ``code``, which sits at ``address``, in order."""
    lines: list[Line] = []
    pos = 0
    while pos < len(code):
        line = disassemble_one(code[pos:pos + _MAX_LENGTH], (address + pos) & MASK32)
        lines.append(line)
        pos += line.length
    return lines
