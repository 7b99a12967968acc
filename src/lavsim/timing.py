"""Cycle costs of the simulated CPUs: one data table per profile, every figure with its source.

A :class:`TimingProfile` maps a *timing key* (a string of the vocabulary :data:`KEYS`) to a
:class:`Cost`: a cycle count and the citation it was taken from. Figures come from
``shared/timing-reference.md`` (the collected published 486/Pentium clock counts); each source
string names the reference's source key (``[H]``, ``[AF]``, ``[MS]``, ``[MAME]``, ``[86B]``,
``[EI486]``, ``[I386]``) and section, or, for sources found after that reference was compiled
(``[PIR]``, 86Box's ``x86_ops_rep.h``, the x86 Norton Guide; see ``docs/timing.md``), the
repository path or address of the page. A figure no source gives is an *estimate*: its source
text starts with ``"estimate:"`` and says how it was obtained.

The cycle model (what is charged statically and what dynamically) is described in
``docs/timing.md``; in short, a decoded instruction is charged the cost of its key, and the
CPU adds the dynamic parts as they happen: the taken/not-taken branch keys, ``rep.base`` plus a
``rep_*.per`` per iteration, the call-gate parameter copies (:meth:`TimingProfile.call_gate_cycles`)
and the page-walk reads and A/D writes the MMU reports on a TLB miss
(:meth:`TimingProfile.page_walk_cycles`). All figures are best case: caches hit, the TLB hits
(misses are charged separately), operands aligned, no address-generation interlocks.

Form letters in the keys: ``r`` register, ``m`` memory, ``i`` immediate; the first letter is the
destination (``alu.mr`` is ``ADD m32, r32``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from lavsim.errors import ConfigError, LavsimError

__all__ = [
    "I486",
    "KEYS",
    "KEY_MEANINGS",
    "PENTIUM",
    "PROFILES",
    "REP_KINDS",
    "Cost",
    "TimingProfile",
    "UnknownTimingKeyError",
    "get_profile",
]

ESTIMATE_PREFIX: Final = "estimate:"

# --------------------------------------------------------------------------------------------
# The key vocabulary
# --------------------------------------------------------------------------------------------

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

_KEY_SET: Final = frozenset(KEYS)

# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


class UnknownTimingKeyError(LavsimError, KeyError):
    """A timing key that the profile does not define was looked up."""

    def __init__(self, key: str, profile: str) -> None:
        super().__init__(key)
        self.key = key
        self.profile = profile

    def __str__(self) -> str:
        return f"timing profile {self.profile!r} has no cost for key {self.key!r}"


@attrs.frozen(slots=True)
class Cost:
    """One cycle figure and where it comes from.

    ``source`` is a citation (source key of ``timing-reference.md`` and its section) or a text
    starting with ``"estimate:"`` that says how the figure was obtained. Values are checked
    when a :class:`TimingProfile` is built, so that the error can name the key.
    """

    cycles: int
    source: str

    @property
    def is_estimate(self) -> bool:
        """True when the figure is not a published one."""
        return self.source.lstrip().lower().startswith(ESTIMATE_PREFIX)


def _freeze_costs(costs: Mapping[str, Cost]) -> Mapping[str, Cost]:
    if not isinstance(costs, Mapping):
        raise ConfigError("costs", f"must be a mapping of key -> Cost, not {type(costs).__name__}")
    return MappingProxyType(dict(costs))


@attrs.frozen(slots=True)
class TimingProfile:
    """The cycle costs of one CPU model.

    Built once and never changed; :attr:`table` is a plain ``dict`` view ``key -> cycles`` for
    the hot path (do not mutate it; derive a new profile with :meth:`with_costs`).
    Construction refuses, with :class:`~lavsim.errors.ConfigError` naming the field, a missing
    or unknown key, a cycle count that is not a non-negative ``int``, or an empty source.
    """

    name: str
    costs: Mapping[str, Cost] = attrs.field(converter=_freeze_costs, hash=False)
    description: str = ""
    table: dict[str, int] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("name", "a timing profile needs a non-empty name")
        missing = [k for k in KEYS if k not in self.costs]
        if missing:
            shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            raise ConfigError(
                f"costs[{missing[0]!r}]",
                f"profile {self.name!r} lacks {len(missing)} required key(s): {shown}",
            )
        for key, cost in self.costs.items():
            field = f"costs[{key!r}]"
            if key not in _KEY_SET:
                raise ConfigError(field, f"unknown timing key in profile {self.name!r}")
            if not isinstance(cost, Cost):
                raise ConfigError(field, f"must be a Cost, not {type(cost).__name__}")
            if isinstance(cost.cycles, bool) or not isinstance(cost.cycles, int):
                raise ConfigError(field, f"cycles must be an int, not {cost.cycles!r}")
            if cost.cycles < 0:
                raise ConfigError(field, f"cycles must be >= 0, got {cost.cycles}")
            if not isinstance(cost.source, str) or not cost.source.strip():
                raise ConfigError(field, "every cost needs a non-empty source")
        object.__setattr__(self, "table", {k: self.costs[k].cycles for k in KEYS})

    # -- lookups ---------------------------------------------------------------------------

    def cycles(self, key: str) -> int:
        """Cycles charged for ``key``; :class:`UnknownTimingKeyError` names an unknown key."""
        try:
            return self.table[key]
        except KeyError:
            raise UnknownTimingKeyError(key, self.name) from None

    def cost(self, key: str) -> Cost:
        """The :class:`Cost` (cycles and source) of ``key``."""
        try:
            return self.costs[key]
        except KeyError:
            raise UnknownTimingKeyError(key, self.name) from None

    def source(self, key: str) -> str:
        """Where the figure for ``key`` comes from."""
        return self.cost(key).source

    def estimates(self) -> tuple[str, ...]:
        """The keys whose figure is an estimate, in vocabulary order."""
        return tuple(k for k in KEYS if self.costs[k].is_estimate)

    # -- composite costs (the documented combination rules) ---------------------------------

    def call_gate_cycles(self, inner: bool, params: int = 0) -> int:
        """Far CALL through a call gate.

        Same privilege: ``call_gate.same`` (no parameters are copied). To more privilege:
        ``call_gate.inner`` with no parameters, otherwise
        ``call_gate.inner_params_base + params * call_gate.param`` (the 486's 69 and 77+4x).
        """
        if params < 0 or params > 31:
            raise ConfigError("params", f"a call gate copies 0..31 parameters, not {params}")
        t = self.table
        if not inner:
            return t["call_gate.same"]
        if params == 0:
            return t["call_gate.inner"]
        return t["call_gate.inner_params_base"] + params * t["call_gate.param"]

    def rep_cycles(self, kind: str, count: int) -> int:
        """A REP string instruction run for ``count`` iterations: base + count x per-item."""
        if kind not in REP_KINDS:
            raise ConfigError("kind", f"unknown string operation {kind!r}; known: {REP_KINDS}")
        if count < 0:
            raise ConfigError("count", f"iteration count must be >= 0, got {count}")
        return self.table["rep.base"] + count * self.table[f"rep_{kind}.per"]

    def page_walk_cycles(self, reads: int, ad_writes: int) -> int:
        """Cycles of a TLB miss that read ``reads`` entries and wrote ``ad_writes`` A/D bits."""
        t = self.table
        return reads * t["page_walk.read"] + ad_writes * t["page_walk.ad_write"]

    # -- derivation ------------------------------------------------------------------------

    def with_costs(
        self, changes: Mapping[str, Cost | int], name: str | None = None
    ) -> TimingProfile:
        """A new profile with some costs replaced (for sweeps); ``self`` is unchanged.

        A value may be a :class:`Cost` or a bare ``int``; a bare int keeps a source that says
        it was overridden and what it replaced. Unknown keys are refused like at construction.
        """
        merged = dict(self.costs)
        for key, value in changes.items():
            if key not in _KEY_SET:
                raise ConfigError(f"costs[{key!r}]", "unknown timing key")
            if isinstance(value, Cost):
                merged[key] = value
            else:
                old = self.costs[key]
                merged[key] = Cost(
                    value, f"override via with_costs (was {old.cycles}: {old.source})"
                )
        return TimingProfile(
            name=name if name is not None else f"{self.name}-modified",
            costs=merged,
            description=self.description,
        )


# --------------------------------------------------------------------------------------------
# Citation helpers (source keys of shared/timing-reference.md)
# --------------------------------------------------------------------------------------------


def _with(text: str, note: str) -> str:
    return f"{text}; {note}" if note else text


def _h(sec: int, note: str = "") -> str:
    return _with(f"HelpPC 2.10 486 column [H] (timing-reference §{sec})", note)


def _af(sec: int, note: str = "") -> str:
    return _with(f"Agner Fog pentopt instruction list [AF] (timing-reference §{sec})", note)


def _ms(sec: int, note: str = "") -> str:
    return _with(f"MASM Pentium clock-cycle notes [MS] (timing-reference §{sec})", note)


def _mame(sec: int, note: str = "") -> str:
    return _with(f"MAME cycles.h pentium column [MAME], emulator (timing-reference §{sec})", note)


def _b86(sec: int, name: str, note: str = "") -> str:
    return _with(f"86Box cpu.c {name} [86B], emulator (timing-reference §{sec})", note)


_LATER: Final = "later source, docs/timing.md"
"""Marks a citation of a source found after timing-reference was compiled (listed in docs)."""


def _pir(page: str, note: str = "") -> str:
    return _with(
        f"Intel Pentium Instruction Set Reference [PIR], qb40/asm-help ASMHELP/{page}, Clocks "
        f"column ({_LATER})",
        note,
    )


def _rep86(expr: str, note: str = "") -> str:
    return _with(
        f"86Box src/cpu/x86_ops_rep.h [86B], emulator: REP loop charges `{expr}` per iteration "
        f"({_LATER})",
        note,
    )


def _later(text: str, note: str = "") -> str:
    return _with(f"{text} ({_LATER})", note)


def _est(text: str) -> str:
    return f"{ESTIMATE_PREFIX} {text}"


def _build(name: str, description: str, data: Mapping[str, tuple[int, str]]) -> TimingProfile:
    return TimingProfile(
        name=name,
        costs={k: Cost(c, s) for k, (c, s) in data.items()},
        description=description,
    )


# --------------------------------------------------------------------------------------------
# Intel 486
# --------------------------------------------------------------------------------------------

_MUL_RULE = (
    "range 13-42 (early-out multiply); the lower bound is taken, following the best-case "
    "convention of every figure here: it is reached when the multiplier is small, as in "
    "index and size scaling"
)

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

# --------------------------------------------------------------------------------------------
# Pentium (P5)
# --------------------------------------------------------------------------------------------

# Pentium gate figures are about 0.64 of the 486 ones (call gate same 22/35, inner 44/69,
# INT 25/44 and 42/71); the parameter-copy figures the Pentium sources lack are scaled with the
# published inner-call ratio 44/69.
_P5_GATE_SCALE = (
    "no Pentium figure for call gates with parameters ([86B] models none, timing-reference §6); "
    "the 486 figure ([H] 77+4x) scaled by the published inner-call ratio 44/69"
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

I486: Final = _build(
    "i486",
    "Intel 486: HelpPC's 486 column [H] wherever it gives a figure, else the emulator table "
    "[86B] (REP per-item figures); best case (cache and TLB hits, aligned operands). Figures "
    "no source gives are marked as estimates.",
    _I486_DATA,
)
"""The Intel 486 profile."""

PENTIUM: Final = _build(
    "pentium",
    "Intel Pentium (P5): single-issue figures of Agner Fog [AF] and the MASM notes [MS], else "
    "the Pentium instruction reference [PIR] or the emulator tables [86B]/[MAME]; best case "
    "(cache and TLB hits, correctly predicted "
    "branches). U/V pairing is ignored: every instruction is charged as if issued alone in "
    "the U pipe, so throughput of sequences of simple pairable instructions is pessimistic "
    "by up to about 2x.",
    _PENTIUM_DATA,
)
"""The Intel Pentium (P5) profile. U/V pairing is ignored (each instruction issues alone), so
throughput of simple pairable sequences is up to ~2x pessimistic; branches are assumed to be
predicted correctly."""

PROFILES: Final[Mapping[str, TimingProfile]] = MappingProxyType(
    {"i486": I486, "pentium": PENTIUM}
)
"""The built-in profiles by name."""


def get_profile(name: str) -> TimingProfile:
    """The built-in profile called ``name`` (``"i486"`` or ``"pentium"``, any case)."""
    key = name.strip().lower() if isinstance(name, str) else name
    try:
        return PROFILES[key]
    except (KeyError, TypeError):
        known = ", ".join(sorted(PROFILES))
        raise ConfigError(
            "profile", f"unknown timing profile {name!r}; known: {known}"
        ) from None
