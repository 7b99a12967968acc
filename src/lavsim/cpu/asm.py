"""An Intel-syntax assembler for lavsim's IA-32 subset, driven by :data:`lavsim.cpu.isa.FORMS`.

The syntax is that of GNU ``as --32 -msyntax=intel -mnaked-reg`` for instructions and operands,
plus a few NASM conveniences for data and layout. Every encoding choice equals GNU's, and the
test suite checks that instruction by instruction against the real GNU assembler.

Source
  One statement per line; ``;`` or ``#`` starts a comment (GNU reads ``;`` as a statement
  separator: here it is a comment). Mnemonics, registers and keywords are case-insensitive,
  symbols are case-sensitive.

Labels and symbols
  ``name:`` defines a label (several may share a line). A label starting with ``.`` is local
  to the last label that does not (NASM style): ``.loop`` after ``memcpy:`` is ``memcpy.loop``
  and can be named in full from elsewhere. GNU numeric labels: ``1:`` with ``1b`` (the nearest
  before) and ``1f`` (the nearest after). Constants: ``name equ expr``, ``name = expr``,
  ``.equ name, expr``, ``.set name, expr``; a symbol is defined once.

Expressions
  C operators and precedence: ``| ^ & << >> + - * / %`` (``/`` and ``%`` truncate toward zero as
  in C), unary ``- ~ +``, parentheses; numbers ``1234``, ``0x1f``, ``1fh``, ``0b101``; a
  leading ``0`` on a decimal number is refused (GNU would read it as octal); character
  constants ``'a'``; ``$`` (or ``.``) is the address of the current statement, ``$$`` the
  start of its section.

Operands (as GNU reads them)
  Registers; memory ``[base + index*scale + disp]`` in any order, with an optional size
  ``byte|word|dword|fword ptr`` (``ptr`` may be left out, NASM style), a segment override
  ``es:[...]`` (or NASM's ``[es:...]``), or ``fs:0x30`` for an absolute address. A bare label
  (``mov eax, msg``) is a memory operand in GNU's reading but an address in NASM's: this
  assembler refuses it and asks for ``offset msg`` (the address) or ``[msg]`` (the memory).
  ``dword ptr label`` is memory, ``word ptr 5`` an immediate of that size (as in GNU). Far
  pointers: ``jmp 0x08:0x1000``, ``jmp far ptr 0x08:0x1000``, ``call 0x08, 0x1000``; far
  indirect: ``call fword ptr [eax]``, ``call far ptr [eax]``, ``call far [eax]`` (the last is
  NASM's: GNU would read ``far`` as a symbol). ``jmp short label`` insists on rel8.

Prefixes
  ``lock`` (only on forms the table marks ``lock`` and with a memory destination), ``rep``
  ``repe`` ``repz`` ``repne`` ``repnz`` (only on string forms), and the segment prefixes ``es``
  ``cs`` ``ss`` ``ds`` ``fs`` ``gs`` written before a mnemonic (``es movsb``), emitted as given.
  Prefix bytes come out in GNU's order: segment, 66, F2/F3, F0.

Directives
  ``db dw dd`` (and GNU's ``.byte .word .short .value .long .int``) take numbers, expressions
  and strings (``"..."`` or ``'...'`` with C escapes; in ``dw``/``dd`` a string is padded to
  whole units); ``.ascii``, ``.asciz``/``.string``; ``times N <statement>``;
  ``align N[, fill]`` (also ``.align``/``.balign``, byte counts), padding with NOP (0x90) in a
  section named ``.text*`` and with zero bytes elsewhere; ``.space``/``.skip N[, fill]`` and
  ``resb/resw/resd N`` (zero bytes); ``org ADDR`` sets the origin and must come before any
  byte is emitted; ``.org OFFSET[, fill]`` advances to that offset in the section (GNU);
  ``section NAME``, ``segment NAME``, ``.section NAME``, ``.text``, ``.data``, ``.rodata``,
  ``.bss``: sections are laid out in the order they first appear, each one starting at the
  next multiple of 4 after the previous one (the gap is zero-filled); ``.intel_syntax``,
  ``.code32``, ``bits 32``, ``use32``, ``.globl``/``.global``/``global`` are accepted and
  ignored.

Encoding choices (all as GNU's)
  The shortest form: ``83 /digit ib``, ``6B``, ``6A`` when the immediate fits a sign-extended
  byte (after reduction to the operand size, so ``add eax, 0xffffffff`` is ``83 C0 FF``); the
  AL/eAX short forms, ``moffs`` MOVs, ``40+r``, ``50+r``, ``B8+r``, ``xchg eax, reg`` (either
  operand order); ``D1 /digit`` for a shift by 1; ``int 3`` is ``CC``. Between equally long
  forms the table order decides, so reg-to-reg MOV/ALU use the store form (``89``, ``01``...).
  A value that depends on a label's address always gets a full 32-bit field (GNU leaves room
  for the relocation): ``[ebx+label]`` is disp32 and ``push offset label`` is ``68``. Jumps
  start short and grow to near only where the target is out of reach (GNU's relaxation;
  iterated to a fixpoint in which no instruction ever shrinks). Known departure: a constant
  defined *after* its use may get a shorter immediate than GNU gives it (GNU must reserve 32
  bits for a value it does not know yet).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from attrs import field, frozen

from lavsim.cpu import asmcache
from lavsim.cpu.isa import (
    CONDITION_ALIASES,
    CONDITIONS,
    CREG,
    FORMS,
    PREFIX_LOCK,
    PREFIX_OPSIZE,
    PREFIX_REP,
    PREFIX_REPNE,
    REG8,
    REG16,
    REG32,
    SREG,
    Form,
)
from lavsim.errors import AssemblyError

__all__ = ["Program", "assemble", "assemble_bytes"]

MASK32 = 0xFFFFFFFF
_MAX_PASSES = 64

# Limits on hostile source (docs/design.md, "Assembler"): each one is an AssemblyError at the
# line and column where it is passed, so time and memory stay bounded whatever the text.
#: Deepest nesting of parentheses and unary operators in one expression.
MAX_NESTING = 32
#: Deepest expression tree (a chain ``1+1+...`` of n terms is n - 1 deep).
MAX_EXPR_DEPTH = 128
#: Most digits in a number (a 32-bit value needs at most 32 binary digits).
MAX_NUMBER_DIGITS = 64
#: Most bytes of an image, all sections together (``.space``, ``.org``, ``align``, ``times``
#: are refused before they allocate more).
MAX_IMAGE_SIZE = 16 << 20
#: Most statements one layout pass executes, ``times`` repetitions included.
MAX_STATEMENTS = 1 << 17
#: Most statements all layout passes together execute.
MAX_TOTAL_STATEMENTS = 1 << 19


# ==============================================================================================
# The program
# ==============================================================================================


@frozen
class Program:
    """The result of :func:`assemble`.

    ``code`` is the image, whose first byte sits at address ``origin``; ``symbols`` maps every
    label and constant to its value; ``line_map`` maps the address of each statement that
    emitted bytes to its 1-based source line (see :meth:`line_at`).
    """

    code: bytes
    symbols: Mapping[str, int]
    origin: int
    line_map: Mapping[int, int]
    _starts: tuple[int, ...] = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(sorted(self.line_map)))

    @property
    def end(self) -> int:
        """The address just past the image."""
        return self.origin + len(self.code)

    def line_at(self, address: int) -> int | None:
        """The source line of the statement whose bytes cover ``address`` (None outside)."""
        if not self.origin <= address < self.end:
            return None
        k = bisect_right(self._starts, address) - 1
        return self.line_map[self._starts[k]] if k >= 0 else None


# ==============================================================================================
# Names from the table
# ==============================================================================================

_REGISTERS: dict[str, tuple[str, int]] = {}
for _names, _kind in ((REG8, "r8"), (REG16, "r16"), (REG32, "r32"), (SREG, "sreg"), (CREG, "cr")):
    for _n, _name in enumerate(_names):
        _REGISTERS[_name] = (_kind, _n)
_REG_SIZE = {"r8": 1, "r16": 2, "r32": 4, "sreg": 2, "cr": 4}
_ESP, _EBP = 4, 5
_DS, _SS = 3, 2
#: Segment register number -> its override prefix byte.
SEGMENT_PREFIX = {0: 0x26, 1: 0x2E, 2: 0x36, 3: 0x3E, 4: 0x64, 5: 0x65}

_SIZE_WORDS = {"byte": 1, "word": 2, "dword": 4, "fword": 6, "qword": 8, "tbyte": 10}
_KEYWORDS = {"ptr", "offset", "far", "short", "near"} | set(_SIZE_WORDS)
_REP_WORDS = {"rep": PREFIX_REP, "repe": PREFIX_REP, "repz": PREFIX_REP,
              "repne": PREFIX_REPNE, "repnz": PREFIX_REPNE}


def _fixed_size(form: Form) -> int | None:
    """The operand size a form fixes, or None for a ``v`` form (16 with 66, else 32)."""
    for attr, size in (("size8", 1), ("size16", 2), ("size32", 4)):
        if attr in form.attrs:
            return size
    return None


def _twins(size_attr: str) -> frozenset[Form]:
    """Fixed-size forms that share opcode and /digit with a form of another operand size:
    the operand-size prefix is what tells them apart (PUSHAW/PUSHAD, CBW/CWDE, MOVSW/MOVSD)."""
    out = set()
    for form in FORMS:
        if size_attr in form.attrs and any(
            other is not form and other.opcode == form.opcode and other.modrm == form.modrm
            and size_attr not in other.attrs and "size8" not in other.attrs
            for other in FORMS
        ):
            out.add(form)
    return frozenset(out)


#: 16-bit forms selected by the 66 prefix, and their 32-bit twins selected by its absence.
TWIN16 = _twins("size16")
TWIN32 = _twins("size32")


def needs_opsize_prefix(form: Form, size: int) -> bool:
    """Whether an instruction of this form and operand size carries the 66 prefix."""
    if form in TWIN16:
        return True
    return _fixed_size(form) is None and size == 2


def _condition_aliases() -> dict[str, str]:
    """``jz`` -> ``je``, ``setnae`` -> ``setb``...: every alias of every ``cc`` form's stem."""
    out: dict[str, str] = {}
    for form in FORMS:
        if "cc" in form.attrs:
            code = form.opcode[-1] & 0xF
            stem = form.mnemonic[: len(form.mnemonic) - len(CONDITIONS[code])]
            for alias, alias_code in CONDITION_ALIASES.items():
                out[stem + alias] = stem + CONDITIONS[alias_code]
    return out


#: Mnemonics read as another entry of the table. In 32-bit code GNU reads the size-less
#: PUSHA/POPA/PUSHF/POPF/IRET as the 32-bit forms.
ALIASES: dict[str, str] = {
    "pusha": "pushad", "popa": "popad", "pushf": "pushfd", "popf": "popfd", "iret": "iretd",
    "loopz": "loope", "loopnz": "loopne",
    **_condition_aliases(),
}


def _candidates() -> dict[str, list[Form]]:
    """Forms by mnemonic: forms the assembler prefers first, ``noasm`` forms after (they are
    reached only when nothing else fits, e.g. ``mov eax, [ebx]`` needs ``8B``)."""
    table: dict[str, list[Form]] = {}
    for form in FORMS:
        table.setdefault(form.mnemonic, [])
    for form in sorted(FORMS, key=lambda f: "noasm" in f.attrs):
        table[form.mnemonic].append(form)
    return table


CANDIDATES = _candidates()
MNEMONICS = frozenset(CANDIDATES) | frozenset(ALIASES)


# ==============================================================================================
# Tokens
# ==============================================================================================

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
   |(?P<num>0[xX][0-9a-fA-F]+|0[bB][01]+(?![0-9A-Za-z_])|[0-9][0-9a-fA-F]*[hH](?![0-9A-Za-z_])
           |[0-9]+[bf](?![0-9A-Za-z_])|[0-9]+)
   |(?P<name>[A-Za-z_.?@][A-Za-z0-9_.?@$]*)
   |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
   |(?P<op><<|>>|\$\$|[-+*/%&|^~()\[\],:=$])
   |(?P<comment>[;\#].*)
    """,
    re.X,
)


@frozen
class _Tok:
    kind: str  # num name str op end
    text: str
    col: int


class _Line:
    """A source line and the position of the statement being parsed, for error reports."""

    def __init__(self, number: int, text: str) -> None:
        self.number = number
        self.text = text

    def error(self, message: str, col: int) -> AssemblyError:
        return AssemblyError(message, self.number, col, self.text)


def _tokenize(line: _Line) -> list[_Tok]:
    text = line.text
    pos = 0
    toks: list[_Tok] = []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "'\"":
                raise line.error("unterminated string", pos + 1)
            raise line.error(f"unexpected character {text[pos]!r}", pos + 1)
        kind = m.lastgroup or ""
        if kind == "comment":
            break
        if kind != "ws":
            after = text[m.end():m.end() + 1]
            if kind == "num" and (after.isalnum() or after == "_"):
                raise line.error(f"malformed number {text[pos:m.end() + 1]!r}...", pos + 1)
            toks.append(_Tok(kind, m.group(), pos + 1))
        pos = m.end()
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, '"': 34, "'": 39, "a": 7, "b": 8,
            "f": 12, "v": 11, "e": 27}


def _string_bytes(tok: _Tok, line: _Line) -> bytes:
    body = tok.text[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            e = body[i + 1]
            if e == "x":
                m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
                if m is None:
                    raise line.error("bad \\x escape", tok.col + i + 1)
                out.append(int(m.group(), 16))
                i += 2 + len(m.group())
                continue
            if e not in _ESCAPES:
                raise line.error(f"unknown escape \\{e}", tok.col + i + 1)
            out.append(_ESCAPES[e])
            i += 2
            continue
        code = ord(c)
        if code > 255:
            out += c.encode("utf-8")
        else:
            out.append(code)
        i += 1
    return bytes(out)


def _number(tok: _Tok, line: _Line) -> int:
    t = tok.text.lower()
    if len(t) > MAX_NUMBER_DIGITS + 2:
        raise line.error(f"number has more than {MAX_NUMBER_DIGITS} digits", tok.col)
    if t.startswith("0x"):
        return int(t[2:], 16)
    if t.startswith("0b") and len(t) > 2:
        return int(t[2:], 2)
    if t.endswith("h"):
        return int(t[:-1], 16)
    if len(t) > 1 and t[0] == "0":
        raise line.error(f"number {tok.text!r} has a leading 0 (GNU would read octal)", tok.col)
    return int(t)


# ==============================================================================================
# Expressions
# ==============================================================================================


@frozen
class _Num:
    value: int


@frozen
class _Sym:
    name: str
    shown: str
    col: int


@frozen
class _Here:
    section_start: bool


@frozen
class _Unary:
    op: str
    arg: _Expr


@frozen
class _Binary:
    op: str
    left: _Expr
    right: _Expr
    col: int


@frozen
class _RegLeaf:
    name: str
    col: int


_Expr = _Num | _Sym | _Here | _Unary | _Binary | _RegLeaf


@frozen
class _Val:
    """A value: the number, how many times it counts a label's address (0: absolute, a pure
    number or a difference of labels; 1: an address), and whether every symbol is known yet."""

    value: int
    rel: int = 0
    known: bool = True


_LEVELS: tuple[tuple[str, ...], ...] = (
    ("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%"),
)


class _Parser:
    """Recursive descent over one line's tokens."""

    def __init__(self, toks: list[_Tok], line: _Line, ctx: _ParseContext) -> None:
        self.toks = toks
        self.i = 0
        self.line = line
        self.ctx = ctx
        #: Parentheses and unary operators open at this point (bounded by MAX_NESTING).
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind != "end":
            self.i += 1
        return t

    def at(self, *texts: str) -> bool:
        t = self.tok
        return t.kind in ("op", "name") and t.text.lower() in texts

    def expect(self, text: str) -> _Tok:
        if not self.at(text):
            raise self.error(f"expected {text!r}", self.tok)
        return self.next()

    def error(self, message: str, tok: _Tok | None = None) -> AssemblyError:
        return self.line.error(message, (tok or self.tok).col)

    def at_end(self) -> bool:
        return self.tok.kind == "end"

    def expr(self, regs: bool = False) -> _Expr:
        """One expression; refused when its tree is deeper than :data:`MAX_EXPR_DEPTH`
        (everything that walks an expression recurses over that depth)."""
        start = self.tok
        e = self._level(regs, 0)
        if _depth(e) > MAX_EXPR_DEPTH:
            raise self.error(f"expression nested more than {MAX_EXPR_DEPTH} deep", start)
        return e

    def _level(self, regs: bool, level: int) -> _Expr:
        if level == len(_LEVELS):
            return self.unary(regs)
        left = self._level(regs, level + 1)
        while self.tok.kind == "op" and self.tok.text in _LEVELS[level]:
            op = self.next()
            right = self._level(regs, level + 1)
            left = _Binary(op.text, left, right, op.col)
        return left

    def _open(self, t: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"expression nested more than {MAX_NESTING} deep", t)

    def unary(self, regs: bool) -> _Expr:
        t = self.tok
        if t.kind == "op" and t.text in ("-", "~", "+"):
            self.next()
            self._open(t)
            arg = self.unary(regs)
            self.depth -= 1
            return arg if t.text == "+" else _Unary(t.text, arg)
        return self.primary(regs)

    def primary(self, regs: bool) -> _Expr:
        t = self.next()
        if t.kind == "num":
            m = re.fullmatch(r"([0-9]+)([bf])", t.text)
            if m:
                return self.ctx.numeric_ref(m.group(1), m.group(2), t.col)
            return _Num(_number(t, self.line))
        if t.kind == "str":
            data = _string_bytes(t, self.line)
            if len(data) != 1:
                raise self.line.error("a character constant holds one character", t.col)
            return _Num(data[0])
        if t.kind == "op" and t.text in ("$", "$$"):
            return _Here(t.text == "$$")
        if t.kind == "op" and t.text == "(":
            self._open(t)
            inner = self._level(regs, 0)
            self.expect(")")
            self.depth -= 1
            return inner
        if t.kind == "name":
            low = t.text.lower()
            if low in _REGISTERS:
                if regs:
                    return _RegLeaf(low, t.col)
                raise self.line.error(f"register {t.text!r} is not allowed in an expression", t.col)
            if t.text == ".":
                return _Here(False)
            if low in _KEYWORDS:
                raise self.line.error(f"unexpected {t.text!r}", t.col)
            return _Sym(self.ctx.qualify(t.text), t.text, t.col)
        what = "expected an expression" if t.kind == "end" else f"unexpected {t.text!r}"
        raise self.line.error(what, t.col)


def _depth(e: _Expr) -> int:
    """How deep an expression tree is (iteratively: any depth can be measured)."""
    deepest = 0
    stack: list[tuple[_Expr, int]] = [(e, 1)]
    while stack:
        x, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(x, _Unary):
            stack.append((x.arg, d + 1))
        elif isinstance(x, _Binary):
            stack.append((x.left, d + 1))
            stack.append((x.right, d + 1))
    return deepest


def _div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


class _Env:
    """What evaluating an expression needs: the symbol values of this pass."""

    def __init__(self, labels: set[str]) -> None:
        self.labels = labels
        self.values: dict[str, _Val] = {}
        self.here = 0
        self.section_start = 0
        self.strict = False
        self.line: _Line = _Line(0, "")

    def eval(self, e: _Expr) -> _Val:
        if isinstance(e, _Num):
            return _Val(e.value)
        if isinstance(e, _Here):
            return _Val(self.section_start if e.section_start else self.here, 1)
        if isinstance(e, _Sym):
            v = self.values.get(e.name)
            if v is not None:
                if self.strict and not v.known:
                    # Every pass before the final one left it unknown: its definition
                    # depends on itself (directly or through other constants).
                    raise self.line.error(
                        f"{e.shown!r} has no value: its definition is circular", e.col)
                return v
            if self.strict:
                raise self.line.error(f"undefined symbol {e.shown!r}", e.col)
            return _Val(0, 1 if e.name in self.labels else 0, False)
        if isinstance(e, _Unary):
            a = self.eval(e.arg)
            if e.op == "-":
                return _Val(-a.value, -a.rel, a.known)
            return _Val(~a.value, 0, a.known)
        if isinstance(e, _Binary):
            a, b = self.eval(e.left), self.eval(e.right)
            known = a.known and b.known
            if e.op == "+":
                return _Val(a.value + b.value, a.rel + b.rel, known)
            if e.op == "-":
                return _Val(a.value - b.value, a.rel - b.rel, known)
            x, y = a.value, b.value
            if e.op in ("/", "%") and y == 0:
                if known:
                    raise self.line.error("division by zero", e.col)
                return _Val(0, 0, False)
            if e.op in ("<<", ">>") and y < 0:
                if known:
                    raise self.line.error("negative shift count", e.col)
                return _Val(0, 0, False)
            if e.op == "<<" and y > 64:
                y = 64
            result = {
                "*": lambda: x * y, "/": lambda: _div(x, y), "%": lambda: x - _div(x, y) * y,
                "<<": lambda: x << y, ">>": lambda: x >> y, "&": lambda: x & y,
                "|": lambda: x | y, "^": lambda: x ^ y,
            }[e.op]()
            return _Val(result, 0, known)
        raise self.line.error(f"register {e.name!r} is not allowed here", e.col)


# ==============================================================================================
# Operands
# ==============================================================================================


@frozen
class _Reg:
    kind: str  # r8 r16 r32 sreg cr
    num: int
    col: int

    @property
    def size(self) -> int:
        return _REG_SIZE[self.kind]


@frozen
class _Mem:
    size: int | None
    far: bool
    seg: int | None
    base: int | None
    index: int | None
    scale: int
    disp: _Expr | None
    col: int


@frozen
class _Imm:
    expr: _Expr
    col: int
    size: int | None = None
    short: bool = False
    offset: bool = False


@frozen
class _Far:
    sel: _Expr
    off: _Expr
    col: int


_Operand = _Reg | _Mem | _Imm | _Far


def _contains_label(e: _Expr, labels: set[str]) -> bool:
    """Whether an expression adds (not subtracts out) a label's address: GNU's relocatable."""

    def rel(x: _Expr) -> int:
        if isinstance(x, _Sym):
            return 1 if x.name in labels or x.name.startswith("\x00") else 0
        if isinstance(x, _Here):
            return 1
        if isinstance(x, _Unary):
            return -rel(x.arg) if x.op == "-" else 0
        if isinstance(x, _Binary):
            if x.op == "+":
                return rel(x.left) + rel(x.right)
            if x.op == "-":
                return rel(x.left) - rel(x.right)
        return 0

    return rel(e) != 0


def _parse_operand(p: _Parser, labels_hint: set[str]) -> _Operand:
    """One operand: everything up to the next top-level comma."""
    start = p.tok
    size: int | None = None
    far = short = offset = False
    while p.tok.kind == "name" and p.tok.text.lower() in _KEYWORDS:
        word = p.next().text.lower()
        if word in _SIZE_WORDS:
            size = _SIZE_WORDS[word]
        elif word == "far":
            far = True
        elif word == "short":
            short = True
        elif word == "offset":
            offset = True
        elif word == "near":
            pass  # GNU accepts and ignores it: jumps relax to short anyway
        if p.at("ptr"):
            p.next()
    if size is not None and size not in (1, 2, 4, 6):
        raise p.error("only byte, word, dword and fword operands exist in this subset", start)
    t = p.tok
    if t.kind == "name" and t.text.lower() in _REGISTERS and not (
        _REGISTERS[t.text.lower()][0] == "sreg" and p.peek().text == ":"
    ):
        p.next()
        if size is not None or far or offset or short:
            raise p.error("a size or far/offset keyword cannot qualify a register", start)
        kind, num = _REGISTERS[t.text.lower()]
        return _Reg(kind, num, t.col)
    seg: int | None = None
    if t.kind == "name" and p.peek().text == ":" and t.text.lower() in _REGISTERS:
        seg = _REGISTERS[t.text.lower()][1]
        p.next()
        p.next()
    if p.at("["):
        if offset or short:
            raise p.error("offset/short cannot qualify a memory operand", start)
        return _parse_memory(p, size, far, seg, start.col)
    expr = p.expr()
    if seg is not None:
        # fs:0x30 -- an absolute memory address with a segment override
        return _Mem(size, far, seg, None, None, 1, expr, start.col)
    if p.at(":"):
        p.next()
        off = p.expr()
        return _Far(expr, off, start.col)
    if offset:
        return _Imm(expr, start.col, size, short, offset=True)
    if (size is not None or far) and _contains_label(expr, labels_hint):
        # GNU: `dword ptr label` names memory; `word ptr 5` is a 16-bit immediate
        return _Mem(size, far, None, None, None, 1, expr, start.col)
    if far:
        raise p.error("far needs a memory operand or sel:offset", start)
    return _Imm(expr, start.col, size, short)


def _parse_memory(p: _Parser, size: int | None, far: bool, seg: int | None, col: int) -> _Mem:
    open_tok = p.expect("[")
    if p.tok.kind == "name" and p.peek().text == ":" and p.tok.text.lower() in SREG:
        if seg is not None:
            raise p.error("two segment overrides")
        seg = SREG.index(p.next().text.lower())
        p.next()
    tree = p.expr(regs=True)
    p.expect("]")
    regs: list[tuple[int, int, bool, int]] = []  # (register, scale, scaled, column)
    disp: list[tuple[int, _Expr]] = []

    def walk(e: _Expr, sign: int) -> None:
        if isinstance(e, _Binary) and e.op in ("+", "-"):
            walk(e.left, sign)
            walk(e.right, sign if e.op == "+" else -sign)
            return
        if isinstance(e, _RegLeaf):
            regs.append((_register32(p, e), 1, False, e.col))
            if sign < 0:
                raise p.line.error("a register cannot be subtracted", e.col)
            return
        if isinstance(e, _Binary) and e.op == "*":
            reg, other = (e.left, e.right) if isinstance(e.left, _RegLeaf) else (e.right, e.left)
            if isinstance(reg, _RegLeaf):
                if sign < 0 or _has_reg(other):
                    raise p.line.error("bad index expression", reg.col)
                scale = _constant(other, p.line, e.col)
                if scale not in (1, 2, 4, 8):
                    raise p.line.error(f"scale must be 1, 2, 4 or 8, not {scale}", e.col)
                regs.append((_register32(p, reg), scale, True, reg.col))
                return
        if _has_reg(e):
            raise p.line.error("registers may only be added, or scaled by 1, 2, 4, 8", open_tok.col)
        disp.append((sign, e))

    walk(tree, 1)
    base: int | None = None
    index: int | None = None
    scale = 1
    scaled = [r for r in regs if r[2]]
    plain = [r for r in regs if not r[2]]
    if len(scaled) > 1 or len(regs) > 2:
        raise p.line.error("too many registers in a memory operand", open_tok.col)
    if scaled:
        index, scale = scaled[0][0], scaled[0][1]
        if plain:
            base = plain[0][0]
    elif plain:
        base = plain[0][0]
        if len(plain) == 2:
            index = plain[1][0]
            if index == _ESP and base != _ESP:
                base, index = index, base  # [ebx+esp]: ESP can only be the base
    if index == _ESP:
        raise p.line.error("esp cannot be an index register", open_tok.col)
    expr: _Expr | None = None
    for sign, e in disp:
        term: _Expr = e if sign > 0 else _Unary("-", e)
        expr = term if expr is None else _Binary("+", expr, term, open_tok.col)
    return _Mem(size, far, seg, base, index, scale, expr, col)


def _has_reg(e: _Expr) -> bool:
    if isinstance(e, _RegLeaf):
        return True
    if isinstance(e, _Unary):
        return _has_reg(e.arg)
    if isinstance(e, _Binary):
        return _has_reg(e.left) or _has_reg(e.right)
    return False


def _register32(p: _Parser, leaf: _RegLeaf) -> int:
    kind, num = _REGISTERS[leaf.name]
    if kind != "r32":
        raise p.line.error(f"{leaf.name} cannot address memory (32-bit addressing only)", leaf.col)
    return num


def _constant(e: _Expr, line: _Line, col: int) -> int:
    env = _Env(set())
    env.strict = True
    env.line = line
    v = env.eval(e)
    if v.rel:
        raise line.error("expected a constant", col)
    return v.value


# ==============================================================================================
# Matching operands to forms (static: types and sizes, not values)
# ==============================================================================================

_V_SPECS = ("r/mv", "rv", "+rv", "eAX", "moffsv")
_FIXED_REG = {"AL": ("r8", 0), "CL": ("r8", 1), "DX": ("r16", 2)}
_FIXED_SREG = {name.upper(): n for n, name in enumerate(SREG)}


@frozen
class _Plan:
    """A form with operand size and operands bound; values are looked at per pass."""

    form: Form
    size: int
    ops: tuple[_Operand, ...]

    @property
    def mem(self) -> _Mem | None:
        for op in self.ops:
            if isinstance(op, _Mem):
                return op
        return None


def _accept(spec: str, op: _Operand, form: Form, s: int) -> tuple[bool, bool]:
    """(does the operand fit the spec at operand size s, does it pin the size)."""
    fixed = _fixed_size(form)
    if isinstance(op, _Reg):
        if spec in _FIXED_REG:
            return (op.kind, op.num) == _FIXED_REG[spec], False
        if spec in _FIXED_SREG:
            return op.kind == "sreg" and op.num == _FIXED_SREG[spec], False
        if spec == "eAX":
            return op.num == 0 and op.kind in ("r16", "r32") and op.size == s, True
        if spec == "Sreg":
            return op.kind == "sreg", False
        if spec == "CRn":
            return op.kind == "cr", False
        if spec in ("r8", "+r8", "r/m8"):
            return op.kind == "r8", False
        if spec in ("r16", "+r16"):
            return op.kind == "r16", False
        if spec in ("r32", "+r32"):
            return op.kind == "r32", False
        if spec in ("rv", "+rv", "r/mv"):
            return op.kind in ("r16", "r32") and op.size == s, True
        if spec == "r/m16":
            if fixed is None:  # MOV r/m16, Sreg; SLDT; STR; LAR: the register has the operand size
                return op.kind in ("r16", "r32") and op.size == s, True
            if "Sreg" in form.operands:  # GNU takes `mov ds, eax` too
                return op.kind in ("r16", "r32"), False
            return op.kind == "r16", False
        return False, False
    if isinstance(op, _Mem):
        if spec == "m16:v":
            return (op.far or op.size == 6) and s == 4, True
        if op.far or op.size == 6:
            return False, False
        if spec in ("r/m8", "moffs8"):
            if spec == "moffs8" and (op.base is not None or op.index is not None):
                return False, False
            return op.size in (None, 1), False
        if spec in ("r/mv", "moffsv"):
            if spec == "moffsv" and (op.base is not None or op.index is not None):
                return False, False
            return op.size in (None, s), op.size is not None
        if spec == "r/m16":
            return op.size in (None, 2), False
        if spec == "m":
            return True, False
        return False, False
    if isinstance(op, _Imm):
        if op.short and spec != "rel8":
            return False, False
        if spec in ("immv", "simm8"):
            return op.size in (None, s), op.size is not None
        if spec in ("imm8", "1"):
            return op.size in (None, 1), False
        if spec == "imm16":
            return op.size in (None, 2), False
        if spec in ("rel8", "relv"):
            return op.size is None, False
        return False, False
    return spec == "ptr16:v" and s == 4, False


def _mem_access_size(spec: str, s: int) -> int | None:
    return {"r/m8": 1, "moffs8": 1, "r/mv": s, "moffsv": s, "r/m16": 2}.get(spec)


def _plans(mnemonic: str, ops: Sequence[_Operand], line: _Line, col: int) -> list[_Plan]:
    """Every (form, operand size) that can encode these operands, in preference order."""
    orders: list[tuple[_Operand, ...]] = [tuple(ops)]
    if mnemonic in ("xchg", "test") and len(ops) == 2:
        orders.append((ops[1], ops[0]))  # both operand orders are the same instruction
    if mnemonic == "imul" and len(ops) == 2 and isinstance(ops[1], _Imm):
        orders = [(ops[0], ops[0], ops[1])]  # imul eax, 5 is imul eax, eax, 5
    plans: list[tuple[_Plan, bool]] = []
    forms = CANDIDATES[mnemonic]
    for order in orders:
        for form in forms:
            if len(form.operands) != len(order):
                continue
            fixed = _fixed_size(form)
            for s in (fixed,) if fixed else (4, 2):
                pinned = False
                for spec, op in zip(form.operands, order, strict=True):
                    ok, pins = _accept(spec, op, form, s)
                    if not ok:
                        break
                    pinned = pinned or pins
                else:
                    if fixed is None and not pinned and s == 2:
                        continue  # nothing asks for 16 bits: the default operand size is 32
                    plans.append((_Plan(form, s, order), pinned))
    unsized = [
        _mem_access_size(spec, plan.size)
        for plan, _ in plans
        for spec, op in zip(plan.form.operands, plan.ops, strict=True)
        if isinstance(op, _Mem) and op.size is None
    ]
    sizes = {u for u in unsized if u is not None}
    if len(sizes) > 1:
        mem = next(op for op in ops if isinstance(op, _Mem))
        raise line.error(
            "operand size is ambiguous: write byte, word or dword ptr before the memory operand",
            mem.col,
        )
    return [plan for plan, _ in plans]


def _describe(op: _Operand) -> str:
    if isinstance(op, _Reg):
        return {"sreg": "Sreg", "cr": "CRn"}.get(op.kind, op.kind)
    if isinstance(op, _Mem):
        return "m" + (str(8 * op.size) if op.size else "")
    if isinstance(op, _Imm):
        return "imm"
    return "ptr16:32"


def _forms_text(mnemonic: str) -> str:
    return "; ".join(
        f"{mnemonic} {', '.join(f.operands)}".strip()
        for f in CANDIDATES[mnemonic] if "noasm" not in f.attrs
    )


# ==============================================================================================
# Statements
# ==============================================================================================


@frozen
class _Insn:
    line: _Line
    col: int
    mnemonic: str
    plans: tuple[_Plan, ...]
    seg_prefix: int | None  # raw segment prefix byte written as a word (`es movsb`)
    rep: int | None
    lock: bool


@frozen
class _Data:
    line: _Line
    col: int
    width: int
    items: tuple[_Expr | bytes, ...]


@frozen
class _Times:
    line: _Line
    col: int
    count: _Expr
    body: _Stmt


@frozen
class _Align:
    line: _Line
    col: int
    boundary: _Expr
    fill: _Expr | None


@frozen
class _Space:
    line: _Line
    col: int
    count: _Expr
    fill: _Expr | None


@frozen
class _Org:
    line: _Line
    col: int
    address: _Expr
    gnu: bool  # .org: advance within the section; org: set the origin
    fill: _Expr | None


@frozen
class _Section:
    line: _Line
    col: int
    name: str


@frozen
class _Label:
    line: _Line
    col: int
    name: str


@frozen
class _Assign:
    line: _Line
    col: int
    name: str
    expr: _Expr


_Stmt = _Insn | _Data | _Times | _Align | _Space | _Org | _Section | _Label | _Assign

_DATA_WIDTH = {"db": 1, ".byte": 1, "dw": 2, ".word": 2, ".short": 2, ".value": 2,
               "dd": 4, ".long": 4, ".int": 4}
_IGNORED = {".intel_syntax", ".code32", "bits", "use32", ".globl", ".global", "global"}
_SECTION_WORDS = {".text", ".data", ".rodata", ".bss"}


class _ParseContext:
    """Parse-time state: the scope of dotted labels, numeric label instances, names."""

    def __init__(self) -> None:
        self.scope = ""
        self.numeric: dict[str, int] = {}
        self.defined: dict[str, int] = {}  # name -> line
        self.labels: set[str] = set()
        #: every label the source defines, forward ones included (found by a pre-scan), so
        #: that a bare label can be told from a constant where it is used
        self.known_labels: set[str] = set()

    def qualify(self, name: str) -> str:
        return self.scope + name if name.startswith(".") and self.scope else name

    def numeric_ref(self, digits: str, direction: str, col: int) -> _Sym:
        n = self.numeric.get(digits, 0)
        k = n if direction == "b" else n + 1
        return _Sym(f"\x00{digits}#{k}", digits + direction, col)


def _parse(source: str) -> tuple[list[_Stmt], set[str]]:
    ctx = _ParseContext()
    ctx.known_labels = _prescan_labels(source)
    stmts: list[_Stmt] = []
    for number, text in enumerate(source.splitlines(), 1):
        line = _Line(number, text)
        p = _Parser(_tokenize(line), line, ctx)
        # labels
        while True:
            t = p.tok
            if t.kind == "name" and p.peek().text == ":" and t.text.lower() not in _REGISTERS:
                p.next()
                p.next()
                name = ctx.qualify(t.text)
                if not t.text.startswith("."):
                    ctx.scope = t.text
                _define(ctx, name, t.text, line, t.col)
                ctx.labels.add(name)
                ctx.known_labels.add(name)
                stmts.append(_Label(line, t.col, name))
            elif t.kind == "num" and t.text.isdigit() and p.peek().text == ":":
                p.next()
                p.next()
                k = ctx.numeric.get(t.text, 0) + 1
                ctx.numeric[t.text] = k
                name = f"\x00{t.text}#{k}"
                ctx.labels.add(name)
                ctx.known_labels.add(name)
                stmts.append(_Label(line, t.col, name))
            else:
                break
        if p.at_end():
            continue
        stmt = _parse_statement(p, ctx, top=True)
        if stmt is not None:
            stmts.append(stmt)
    return stmts, ctx.labels


def _define(ctx: _ParseContext, name: str, shown: str, line: _Line, col: int) -> None:
    if name in ctx.defined:
        raise line.error(f"{shown!r} is already defined (line {ctx.defined[name]})", col)
    if name.lower() in _REGISTERS or name.lower() in _KEYWORDS:
        raise line.error(f"{shown!r} is a reserved word", col)
    ctx.defined[name] = line.number


def _parse_statement(p: _Parser, ctx: _ParseContext, top: bool) -> _Stmt | None:
    line = p.line
    t = p.tok
    if t.kind != "name":
        raise p.error("expected a label, directive or mnemonic")
    word = t.text.lower()
    # constants
    nxt = p.peek()
    if top and (nxt.text == "=" or (nxt.kind == "name" and nxt.text.lower() == "equ")):
        p.next()
        p.next()
        expr = p.expr()
        _end(p)
        name = ctx.qualify(t.text)
        _define(ctx, name, t.text, line, t.col)
        return _Assign(line, t.col, name, expr)
    if top and word in (".equ", ".set"):
        p.next()
        nt = p.next()
        if nt.kind != "name":
            raise line.error("expected a symbol name", nt.col)
        p.expect(",")
        expr = p.expr()
        _end(p)
        name = ctx.qualify(nt.text)
        _define(ctx, name, nt.text, line, nt.col)
        return _Assign(line, nt.col, name, expr)
    if word in _IGNORED:
        if word == "bits":
            p.next()
            bits = p.next()
            if bits.text != "32":
                raise line.error("only 32-bit code is supported", bits.col)
        return None
    p.next()
    if word == "times":
        count = p.expr()
        if p.at_end():
            raise p.error("times needs a statement to repeat")
        body = _parse_statement(p, ctx, top=False)
        if body is None:
            raise line.error("nothing to repeat", t.col)
        return _Times(line, t.col, count, body)
    if word in _DATA_WIDTH or word in (".ascii", ".asciz", ".string"):
        return _parse_data(p, word, t.col)
    if word in ("align", ".align", ".balign"):
        boundary = p.expr()
        fill = _optional_fill(p)
        _end(p)
        return _Align(line, t.col, boundary, fill)
    if word in (".space", ".skip", "resb", "resw", "resd"):
        count = p.expr()
        fill = _optional_fill(p) if word.startswith(".") else None
        _end(p)
        unit = {"resw": 2, "resd": 4}.get(word, 1)
        if unit != 1:
            count = _Binary("*", count, _Num(unit), t.col)
        return _Space(line, t.col, count, fill)
    if word in ("org", ".org"):
        address = p.expr()
        fill = _optional_fill(p) if word == ".org" else None
        _end(p)
        return _Org(line, t.col, address, word == ".org", fill)
    if word in ("section", "segment", ".section") or word in _SECTION_WORDS:
        if word in _SECTION_WORDS:
            name = word
        else:
            nt = p.next()
            if nt.kind != "name":
                raise line.error("expected a section name", nt.col)
            name = nt.text
            while not p.at_end():  # GNU flags ("ax", @progbits) do not matter here
                p.next()
        _end(p)
        return _Section(line, t.col, name)
    return _parse_insn(p, t, ctx)


def _optional_fill(p: _Parser) -> _Expr | None:
    if p.at(","):
        p.next()
        return p.expr()
    return None


def _end(p: _Parser) -> None:
    if not p.at_end():
        raise p.error(f"unexpected {p.tok.text!r}")


def _parse_data(p: _Parser, word: str, col: int) -> _Data:
    width = _DATA_WIDTH.get(word, 1)
    items: list[_Expr | bytes] = []
    while True:
        if p.tok.kind == "str" and (p.peek().text in (",", "") or word.startswith(".as")):
            data = _string_bytes(p.next(), p.line)
            if word in (".asciz", ".string"):
                data += b"\x00"
            items.append(data + bytes(-len(data) % width))
        elif word.startswith(".as") or word == ".string":
            raise p.error("expected a string")
        else:
            items.append(p.expr())
        if not p.at(","):
            break
        p.next()
    _end(p)
    return _Data(p.line, col, width, tuple(items))


def _split_operands(p: _Parser) -> list[_Parser]:
    """Sub-parsers for each comma-separated operand."""
    parts: list[list[_Tok]] = [[]]
    depth = 0
    while not p.at_end():
        t = p.next()
        if t.kind == "op" and t.text in "([":
            depth += 1
        elif t.kind == "op" and t.text in ")]":
            depth -= 1
        if t.kind == "op" and t.text == "," and depth == 0:
            parts.append([])
            continue
        parts[-1].append(t)
    if parts == [[]]:
        return []
    subs = []
    for toks in parts:
        if not toks:
            raise p.error("empty operand")
        sub = _Parser([*toks, _Tok("end", "", p.tok.col)], p.line, p.ctx)
        subs.append(sub)
    return subs


_BARE_LABEL = (
    "a bare label is memory to GNU and an address to NASM: write 'offset NAME' for the address "
    "or '[NAME]' for the memory"
)


def _parse_insn(p: _Parser, first: _Tok, ctx: _ParseContext) -> _Insn:
    line = p.line
    seg_prefix: int | None = None
    rep: int | None = None
    lock = False
    t = first
    while True:
        word = t.text.lower()
        if word == "lock":
            lock = True
        elif word in _REP_WORDS:
            rep = _REP_WORDS[word]
        elif word in SREG and p.tok.kind == "name":
            seg_prefix = SEGMENT_PREFIX[SREG.index(word)]
        else:
            break
        if p.tok.kind != "name":
            raise line.error(f"{t.text!r} must be followed by an instruction", t.col)
        t = p.next()
    mnemonic = t.text.lower()
    mnemonic = ALIASES.get(mnemonic, mnemonic)
    if mnemonic not in CANDIDATES:
        raise line.error(f"unknown mnemonic {t.text!r}", t.col)
    subs = _split_operands(p)
    ops: list[_Operand] = []
    for sub in subs:
        op = _parse_operand(sub, ctx.known_labels)
        _end(sub)
        ops.append(op)
    # `call 0x08, 0x1000`: GNU's two-operand spelling of a far pointer
    if mnemonic in ("jmp", "call") and len(ops) == 2 and all(isinstance(o, _Imm) for o in ops):
        a, b = ops
        assert isinstance(a, _Imm) and isinstance(b, _Imm)
        ops = [_Far(a.expr, b.expr, a.col)]
    plans = _plans(mnemonic, ops, line, t.col)
    if not plans:
        got = ", ".join(_describe(o) for o in ops) or "no operands"
        raise line.error(
            f"no form of {mnemonic!r} takes ({got}); the forms are: {_forms_text(mnemonic)}", t.col
        )
    branchy = any(
        spec in ("rel8", "relv", "ptr16:v") for plan in plans for spec in plan.form.operands
    )
    labels = ctx.known_labels
    for op in ops:
        bare = isinstance(op, _Imm) and not op.offset and _contains_label(op.expr, labels)
        if bare and not branchy:
            raise line.error(_BARE_LABEL, op.col)
    if rep is not None and not all("rep" in plan.form.attrs for plan in plans):
        raise line.error(f"{mnemonic!r} does not take a rep prefix", first.col)
    if lock and not any(
        "lock" in plan.form.attrs and isinstance(plan.ops[0], _Mem) for plan in plans
    ):
        raise line.error("lock needs a lockable instruction with a memory destination", first.col)
    if lock:
        plans = [pl for pl in plans if "lock" in pl.form.attrs and isinstance(pl.ops[0], _Mem)]
    for plan in plans:
        mem = plan.mem
        if (seg_prefix is not None and mem is not None and mem.seg is not None
                and SEGMENT_PREFIX[mem.seg] != seg_prefix):
            raise line.error("two different segment overrides", mem.col)
    return _Insn(line, t.col, mnemonic, tuple(plans), seg_prefix, rep, lock)


_LABEL_DEF = re.compile(r"^\s*((?:[A-Za-z_.?@][A-Za-z0-9_.?@$]*\s*:\s*)+)")


def _prescan_labels(source: str) -> set[str]:
    """Names defined as labels (dotted ones qualified), found before the real parse."""
    names: set[str] = set()
    scope = ""
    for text in source.splitlines():
        m = _LABEL_DEF.match(text)
        if not m:
            continue
        for raw in re.findall(r"([A-Za-z_.?@][A-Za-z0-9_.?@$]*)\s*:", m.group(1)):
            if raw.lower() in _REGISTERS:
                continue
            if raw.startswith("."):
                names.add(scope + raw)
            else:
                scope = raw
                names.add(raw)
    return names


# ==============================================================================================
# Encoding one instruction with values
# ==============================================================================================


class _Range(Exception):
    """A value does not fit the field of one candidate form."""

    def __init__(self, message: str, col: int, soft: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.col = col
        self.soft = soft  # only says a shorter form does not apply: not worth reporting


def _check(v: _Val, lo: int, hi: int, what: str, col: int, check: bool) -> None:
    if check and v.known and not lo <= v.value <= hi:
        raise _Range(f"value {v.value:#x} out of range for {what}", col)


def _le(value: int, size: int) -> bytes:
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _modrm_memory(reg: int, mem: _Mem, env: _Env, check: bool) -> bytes:
    """ModRM, SIB and displacement of a 32-bit memory operand (SDM Vol. 2, tables 2-2, 2-3)."""
    v = env.eval(mem.disp) if mem.disp is not None else _Val(0)
    _check(v, -(1 << 31), MASK32, "a displacement", mem.col, check)
    d = _signed(v.value, 32)
    base, index = mem.base, mem.index
    if v.rel:
        size = 4  # an address: GNU leaves 32 bits for the relocation
    elif mem.disp is None or (v.known and d == 0) or not v.known:
        size = 0
    else:
        size = 1 if -128 <= d <= 127 else 4
    if base is None:
        disp = _le(d, 4)
        if index is None:
            return bytes([(reg << 3) | 5]) + disp
        sib = (_log2(mem.scale) << 6) | (index << 3) | 5
        return bytes([(reg << 3) | 4, sib]) + disp
    if size == 0 and base == _EBP:
        size = 1  # [ebp] has no mod-00 encoding: disp8 of 0
    mod = {0: 0, 1: 1, 4: 2}[size]
    disp = _le(d, size) if size else b""
    if index is None and base != _ESP:
        return bytes([(mod << 6) | (reg << 3) | base]) + disp
    idx = 4 if index is None else index  # 100: no index ([esp] needs a SIB)
    sib = (_log2(mem.scale) << 6) | (idx << 3) | base
    return bytes([(mod << 6) | (reg << 3) | 4, sib]) + disp


def _log2(scale: int) -> int:
    return {1: 0, 2: 1, 4: 2, 8: 3}[scale]


def _default_segment(mem: _Mem) -> int:
    return _SS if mem.base in (_ESP, _EBP) else _DS


def _encode(plan: _Plan, insn: _Insn, env: _Env, address: int, check: bool) -> bytes:
    """The bytes of one instruction; raises :class:`_Range` when a value does not fit."""
    form, s, ops = plan.form, plan.size, plan.ops
    specs = form.operands
    prefix = bytearray()
    mem = plan.mem
    if insn.seg_prefix is not None:
        prefix.append(insn.seg_prefix)
    elif mem is not None and mem.seg is not None and mem.seg != _default_segment(mem):
        prefix.append(SEGMENT_PREFIX[mem.seg])
    if needs_opsize_prefix(form, s):
        prefix.append(PREFIX_OPSIZE)
    if insn.rep is not None:
        prefix.append(insn.rep)
    if "f3" in form.attrs:
        prefix.append(PREFIX_REP)
    if insn.lock:
        prefix.append(PREFIX_LOCK)
    opcode = bytearray(form.opcode)
    for spec, op in zip(specs, ops, strict=True):
        if spec.startswith("+") and isinstance(op, _Reg):
            opcode[-1] += op.num
    body = bytearray()
    if form.modrm is not None:
        reg_field = form.modrm if isinstance(form.modrm, int) else 0
        rm_op: _Operand | None = None
        special = any(spec in ("Sreg", "CRn") for spec in specs)
        for spec, op in zip(specs, ops, strict=True):
            if spec in ("Sreg", "CRn") or (not special and spec in ("r8", "r16", "r32", "rv")):
                assert isinstance(op, _Reg)
                reg_field = op.num
            elif spec.startswith("r/m") or spec in ("m", "m16:v", "r32"):
                rm_op = op
        if isinstance(rm_op, _Reg):
            body.append(0xC0 | (reg_field << 3) | rm_op.num)
        elif "f3" in form.attrs:
            body.append(0xC0 | (reg_field << 3) | 3)  # ENDBR32: F3 0F 1E FB
        else:
            assert isinstance(rm_op, _Mem)
            body += _modrm_memory(reg_field, rm_op, env, check)
    rel_at: tuple[int, int, _Val, int] | None = None
    for spec, op in zip(specs, ops, strict=True):
        if isinstance(op, _Mem) and spec.startswith("moffs"):
            v = env.eval(op.disp) if op.disp is not None else _Val(0)
            _check(v, -(1 << 31), MASK32, "an address", op.col, check)
            body += _le(v.value, 4)
        elif isinstance(op, _Far):
            sel, off = env.eval(op.sel), env.eval(op.off)
            _check(sel, 0, 0xFFFF, "a selector", op.col, check)
            _check(off, -(1 << 31), MASK32, "an offset", op.col, check)
            body += _le(off.value, 4) + _le(sel.value, 2)
        elif isinstance(op, _Imm):
            v = env.eval(op.expr)
            if check and v.rel and not op.offset and spec not in ("rel8", "relv"):
                raise env.line.error(_BARE_LABEL, op.col)
            if spec == "1":
                if not (v.known and v.value == 1 and v.rel == 0):
                    raise _Range("not 1", op.col, soft=True)
            elif spec == "imm8":
                _check(v, -128, 255, "imm8", op.col, check)
                body += _le(v.value, 1)
            elif spec == "imm16":
                _check(v, -(1 << 15), 0xFFFF, "imm16", op.col, check)
                body += _le(v.value, 2)
            elif spec == "immv":
                bits = 8 * s
                _check(v, -(1 << (bits - 1)), (1 << bits) - 1, f"imm{bits}", op.col, check)
                body += _le(v.value, s)
            elif spec == "simm8":
                bits = 8 * s
                fits = -(1 << (bits - 1)) <= v.value < (1 << bits) and (
                    -128 <= _signed(v.value, bits) <= 127
                )
                if v.rel or (v.known and not fits):
                    raise _Range("does not fit a sign-extended byte", op.col, soft=True)
                body += _le(v.value, 1)
            elif spec in ("rel8", "relv"):
                size = 1 if spec == "rel8" else s
                rel_at = (len(body), size, v, op.col)
                body += bytes(size)
    code = bytes(prefix + opcode + body)
    if rel_at is not None:
        pos, size, v, col = rel_at
        start = len(prefix) + len(opcode) + pos
        disp = (v.value - (address + len(code))) if v.known else 0
        if size == 1 and not -128 <= _signed(disp, 32) <= 127:
            raise _Range(f"branch target out of reach of rel8 ({_signed(disp, 32)} bytes)", col)
        code = code[:start] + _le(disp, size) + code[start + size:]
    return code


def _choose(insn: _Insn, env: _Env, address: int, previous: int | None, strict: bool) -> bytes:
    """The encoding of an instruction: the shortest form whose values fit, never shorter than
    the one chosen in the previous pass (so the layout converges)."""
    if insn.mnemonic == "int":
        v = env.eval(_imm_expr(insn.plans[0]))
        if v.known and v.value == 3 and v.rel == 0:
            return b"\xcc"  # GNU assembles `int 3` as INT3
    done: list[bytes] = []
    first_error: _Range | None = None
    # Between equally long encodings GNU takes the smaller immediate: `add ax, -128` is
    # 66 83 C0 80, not 66 05 80 FF. Otherwise the table order decides (min() is stable).
    for plan in sorted(insn.plans, key=lambda pl: "simm8" not in pl.form.operands):
        try:
            done.append(_encode(plan, insn, env, address, True))
        except _Range as e:
            if first_error is None or (first_error.soft and not e.soft):
                first_error = e
    if not done:
        assert first_error is not None
        if strict:
            raise insn.line.error(first_error.message, first_error.col)
        # keep the layout going: encode the longest candidate with the values masked
        lenient: list[bytes] = []
        for plan in insn.plans:
            try:
                lenient.append(_encode(plan, insn, env, address, False))
            except _Range:
                continue
        if not lenient:
            return bytes(previous or 1)
        return max(lenient, key=len)
    best = min(done, key=len)
    if previous is not None and len(best) < previous:
        longer = [c for c in done if len(c) >= previous]
        if longer:
            best = min(longer, key=len)
    return best


def _imm_expr(plan: _Plan) -> _Expr:
    op = plan.ops[0]
    assert isinstance(op, _Imm)
    return op.expr


# ==============================================================================================
# Passes
# ==============================================================================================


class _Layout:
    """One pass over the statements: bytes of each section, symbol values, line map."""

    def __init__(self, env: _Env, origin: int, bases: dict[str, int],
                 lengths: dict[tuple[int, int], int], strict: bool) -> None:
        self.env = env
        self.origin = origin
        self.origin_set = False
        self.bases = bases
        self.lengths_prev = lengths
        self.lengths: dict[tuple[int, int], int] = {}
        self.strict = strict
        self.sections: dict[str, bytearray] = {".text": bytearray()}
        self.current = ".text"
        self.lines: dict[int, int] = {}
        self.emitted = False
        #: Bytes in all sections, and statements executed (bounded: see MAX_IMAGE_SIZE and
        #: MAX_STATEMENTS).
        self.size = 0
        self.count = 0

    @property
    def address(self) -> int:
        return self.bases.get(self.current, self.origin) + len(self.sections[self.current])

    def room(self, n: int, line: _Line, col: int) -> None:
        """Refuse, before anything is allocated, to grow the image past MAX_IMAGE_SIZE."""
        if self.size + n > MAX_IMAGE_SIZE:
            raise line.error(f"the image would pass {MAX_IMAGE_SIZE:#x} bytes "
                             f"({n:#x} more at {self.size:#x})", col)

    def emit(self, data: bytes, line: _Line) -> None:
        if data:
            self.room(len(data), line, 1)
            self.size += len(data)
            self.lines.setdefault(self.address, line.number)
            self.sections[self.current] += data
            self.emitted = True

    def value(self, e: _Expr, line: _Line, what: str, col: int) -> int | None:
        """A value that must be known now (counts, alignments); None while still unknown."""
        self.env.line = line
        self.env.here = self.address
        v = self.env.eval(e)
        if not v.known:
            if self.strict:
                raise line.error(f"{what} is not known", col)
            return None
        return v.value

    def run(self, stmts: Sequence[_Stmt]) -> None:
        for k, stmt in enumerate(stmts):
            self.statement(stmt, k, 0)

    def statement(self, stmt: _Stmt, key: int, rep: int) -> None:
        self.count += 1
        if self.count > MAX_STATEMENTS:
            raise stmt.line.error(f"more than {MAX_STATEMENTS} statements in one pass "
                                  "(times repetitions included)", stmt.col)
        env = self.env
        env.line = stmt.line
        env.here = self.address
        env.section_start = self.bases.get(self.current, self.origin)
        if isinstance(stmt, _Label):
            env.values[stmt.name] = _Val(self.address, 1)
        elif isinstance(stmt, _Assign):
            env.values[stmt.name] = env.eval(stmt.expr)
        elif isinstance(stmt, _Insn):
            code = _choose(stmt, env, self.address, self.lengths_prev.get((key, rep)), self.strict)
            self.lengths[(key, rep)] = len(code)
            self.emit(code, stmt.line)
        elif isinstance(stmt, _Data):
            self.emit(self.data(stmt), stmt.line)
        elif isinstance(stmt, _Times):
            n = self.value(stmt.count, stmt.line, "the repeat count", stmt.col) or 0
            if n < 0:
                raise stmt.line.error(f"negative repeat count {n}", stmt.col)
            total, body = n, stmt.body
            while isinstance(body, _Times) and total:  # nested: refused before any runs
                total *= max(1, self.value(body.count, body.line, "the repeat count",
                                           body.col) or 0)
                body = body.body
            if self.count + total > MAX_STATEMENTS:
                raise stmt.line.error(f"times {n} would pass {MAX_STATEMENTS} statements "
                                      "in one pass", stmt.col)
            for r in range(n):
                self.statement(stmt.body, key, r)
        elif isinstance(stmt, _Align):
            self.align(stmt)
        elif isinstance(stmt, _Space):
            n = self.value(stmt.count, stmt.line, "the size", stmt.col) or 0
            if n < 0:
                raise stmt.line.error(f"negative size {n}", stmt.col)
            self.room(n, stmt.line, stmt.col)
            self.emit(bytes([self.fill(stmt.fill, stmt.line, 0, stmt.col)]) * n, stmt.line)
        elif isinstance(stmt, _Org):
            self.org(stmt)
        elif isinstance(stmt, _Section):
            self.sections.setdefault(stmt.name, bytearray())
            self.current = stmt.name

    def fill(self, e: _Expr | None, line: _Line, default: int, col: int) -> int:
        if e is None:
            return default
        v = self.value(e, line, "the fill byte", col)
        if v is None:
            return default
        if not -128 <= v <= 255:
            raise line.error(f"fill byte {v:#x} out of range", col)
        return v & 0xFF

    def data(self, stmt: _Data) -> bytes:
        out = bytearray()
        bits = 8 * stmt.width
        for item in stmt.items:
            if isinstance(item, bytes):
                out += item
                continue
            self.env.here = self.address + len(out)
            v = self.env.eval(item)
            if self.strict and not -(1 << (bits - 1)) <= v.value < (1 << bits):
                raise stmt.line.error(
                    f"value {v.value:#x} does not fit {stmt.width} byte(s)", stmt.col
                )
            out += _le(v.value, stmt.width)
        return bytes(out)

    def align(self, stmt: _Align) -> None:
        n = self.value(stmt.boundary, stmt.line, "the alignment", stmt.col)
        if n is None:
            return
        if n <= 0 or n & (n - 1):
            raise stmt.line.error(f"alignment {n} is not a power of two", stmt.col)
        default = 0x90 if self.current.startswith(".text") else 0
        pad = -self.address % n
        self.room(pad, stmt.line, stmt.col)
        self.emit(bytes([self.fill(stmt.fill, stmt.line, default, stmt.col)]) * pad, stmt.line)

    def org(self, stmt: _Org) -> None:
        target = self.value(stmt.address, stmt.line, "the address", stmt.col)
        if target is None:
            return
        if not stmt.gnu:
            if self.emitted or self.origin_set:
                raise stmt.line.error("org must come before any code or data", stmt.col)
            if not 0 <= target <= MASK32:
                raise stmt.line.error(f"origin {target:#x} out of range", stmt.col)
            if target != self.origin:
                self.origin = target
                self.bases = {}  # laid out again from the new origin in the next pass
            self.origin_set = True
            return
        here = len(self.sections[self.current])
        if target < here:
            raise stmt.line.error(
                f".org {target:#x} would move backwards (already at {here:#x})", stmt.col
            )
        self.room(target - here, stmt.line, stmt.col)
        fill = self.fill(stmt.fill, stmt.line, 0, stmt.col)
        self.emit(bytes([fill]) * (target - here), stmt.line)

    def layout(self) -> dict[str, int]:
        """Where each section starts, from this pass's sizes (used by the next pass)."""
        bases: dict[str, int] = {}
        at = self.origin
        for name, data in self.sections.items():
            if not data and name != ".text":
                bases[name] = at
                continue
            bases[name] = at
            at = (at + len(data) + 3) & ~3
        return bases

    def image(self) -> bytes:
        bases = self.layout()
        out = bytearray()
        for name, data in self.sections.items():
            if data:
                out += bytes(bases[name] - self.origin - len(out))  # gap between sections
                out += data
        return bytes(out)


#: Programs assembled before, by (source, origin), most recent last: a host-side speed cache
#: (booting a system assembles the same library and server sources again and again). It holds
#: at most ``MEMO_ENTRIES`` programs and ``MEMO_SOURCE_CHARS`` characters of source; a program
#: is a frozen value with read-only mappings, so handing the same one out twice changes nothing.
MEMO_ENTRIES = 256
MEMO_SOURCE_CHARS = 8 << 20
_memo: OrderedDict[tuple[str, int], Program] = OrderedDict()
_memo_chars = 0


def clear_memo() -> None:
    """Forget every memoised program (tests run both ways to show the memo changes nothing)."""
    global _memo_chars
    _memo.clear()
    _memo_chars = 0


#: Shortest source looked up in (and written to) the cache on disk (:mod:`lavsim.cpu.asmcache`):
#: a shorter one assembles in about the time a file takes to read.
DISK_MIN_CHARS = 1024


def _from_disk(source: str, origin: int) -> Program | None:
    entry = asmcache.load(source, origin)
    if entry is None:
        return None
    code, symbols, line_map = entry
    return Program(code, MappingProxyType(symbols), origin, MappingProxyType(line_map))


def assemble(source: str, origin: int = 0) -> Program:
    """Assemble Intel-syntax ``source`` whose first byte sits at ``origin``.

    Raises :class:`~lavsim.errors.AssemblyError` naming the line and column of the first
    problem: unknown mnemonic, an operand combination no form takes (the message lists the
    forms), an undefined symbol, a value out of range, a duplicate label, a syntax error.
    The result is memoised by ``(source, origin)`` (see :data:`MEMO_ENTRIES`), and kept on disk
    for later processes (:mod:`lavsim.cpu.asmcache`; ``LAVSIM_CACHE=0`` turns that off); errors
    are not.
    """
    global _memo_chars
    if isinstance(source, str) and isinstance(origin, int) and not isinstance(origin, bool):
        key = (source, origin)
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
            return hit
        program = _from_disk(source, origin) if len(source) >= DISK_MIN_CHARS else None
        if program is None:
            program = _assemble(source, origin)
            if len(source) >= DISK_MIN_CHARS:
                asmcache.save(source, origin, (program.code, dict(program.symbols),
                                               dict(program.line_map)))
        if len(source) <= MEMO_SOURCE_CHARS:
            _memo[key] = program
            _memo_chars += len(source)
            while len(_memo) > MEMO_ENTRIES or _memo_chars > MEMO_SOURCE_CHARS:
                (old, _), _ = _memo.popitem(last=False)
                _memo_chars -= len(old)
        return program
    return _assemble(source, origin)


def _assemble(source: str, origin: int) -> Program:
    if not isinstance(source, str):
        raise AssemblyError(f"the source must be text (a str), not {type(source).__name__}",
                            1, 1)
    if isinstance(origin, bool) or not isinstance(origin, int) or not 0 <= origin <= MASK32:
        raise ValueError(f"origin {origin!r} is not a 32-bit address")
    stmts, labels = _parse(source)
    env = _Env(labels)
    bases: dict[str, int] = {}
    lengths: dict[tuple[int, int], int] = {}
    previous: dict[str, _Val] = {}
    start = origin
    executed = 0
    for _ in range(_MAX_PASSES):
        env.values = dict(previous)
        env.strict = False
        run = _Layout(env, start, bases, lengths, strict=False)
        run.run(stmts)
        executed += run.count
        if executed > MAX_TOTAL_STATEMENTS:
            raise AssemblyError(f"the layout passes executed more than {MAX_TOTAL_STATEMENTS}"
                                " statements without settling", 1, 1)
        new_bases = run.layout()
        stable = (
            env.values == previous and new_bases == bases and run.lengths == lengths
            and run.origin == start
        )
        previous, bases, lengths, start = dict(env.values), new_bases, run.lengths, run.origin
        if stable:
            break
    else:
        raise AssemblyError("the layout does not settle (sizes keep changing)", 1, 1)
    env.values = dict(previous)
    env.strict = True
    final = _Layout(env, start, bases, lengths, strict=True)
    final.run(stmts)
    symbols = {name: v.value for name, v in env.values.items() if not name.startswith("\x00")}
    return Program(final.image(), MappingProxyType(symbols), final.origin,
                   MappingProxyType(dict(final.lines)))


def assemble_bytes(source: str, origin: int = 0) -> bytes:
    """Just the image of :func:`assemble`."""
    return assemble(source, origin).code
