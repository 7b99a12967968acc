"""The instruction decoder, generated from the instruction table :data:`lavsim.cpu.isa.FORMS`.

At import time every :class:`~lavsim.cpu.isa.Form` is compiled into a *plan* (which bytes follow
the opcode, which operands are memory-only, the operand size rule, the timing-key letters) and
entered into two 256-entry opcode maps (one-byte opcodes and ``0F xx``), indexed further by the
ModRM ``/digit`` where the form has one. Decoding an instruction is then: prefixes, opcode
bytes, map lookup, ModRM/SIB/displacement, immediates -- with no instruction-specific code.

What the decoder implements (SDM Vol. 2, chapter 2):

* Prefixes 66 (operand size), F2/F3 (REPNE/REP), F0 (LOCK), the six segment overrides (the last
  one wins), in any order and number, within the 15-byte limit.
* **67 (address size) raises #UD**: lavsim's subset uses 32-bit addressing only (documented
  departure from the manual, which would switch to 16-bit ModRM addressing).
* **Code segments must be 32-bit** (CS.D = 1); fetching from a 16-bit code segment raises #UD.
* ModRM with SIB, disp8/disp32; the default segment is SS for an EBP or ESP base, else DS.
* 8, 16 and 32-bit operand sizes; ``size16``/``size32`` forms sharing an opcode (PUSHA/PUSHAD,
  CWD/CDQ, MOVSW/MOVSD...) are chosen by the operand size.
* 0x90 is NOP (not XCHG EAX, EAX), with or without prefixes.
* x87 escape opcodes D8..DF (no FPU is modelled) raise #NM when CR0.EM or CR0.TS is set, else
  #UD (:func:`x87_fault`); reports name the instruction (:mod:`lavsim.cpu.x87`).
* #UD for: undefined opcodes and ``/digit`` extensions; LOCK on a form without the ``lock``
  attribute or with a register destination; a register where only memory is allowed (``m``,
  ``m16:v``); Sreg numbers 6 and 7, MOV to CS; CR1, CR5, CR6, CR7.
* Instruction fetch goes through CS (every byte must lie within the limit, else #GP(0)) and
  through paging as an instruction fetch: one translation for the page of the first byte and,
  only if the instruction continues into it, one for the next page -- so a page fault
  mid-instruction reports, in CR2, the first byte of the page that is missing. An instruction
  longer than 15 bytes raises #GP(0).
* The CPL check of ``priv`` forms is made by their semantics (system instructions), since a
  decoded instruction is cached independently of the CPL.

Semantics: :data:`SEMANTICS` names every semantics module's table
(:class:`lavsim.cpu.handlers.Semantics`); :data:`HANDLERS` and :data:`BINDERS` are their union.
Each decoded :class:`~lavsim.cpu.insn.Insn` gets its semantics resolved once: the name's
decode-time *binder*, if it has one, returns a function specialised for this instruction; else
the generic handler.

**The tables are checked when this module is imported** (:func:`check_tables`): every form of
:data:`~lavsim.cpu.isa.FORMS` must have a handler, a pairing class, and a base-cost key in
every built-in profile
unless its timing class is in :data:`DYNAMIC_COST`; otherwise the import fails with a
:class:`DecoderBuildError` naming the forms. Every :class:`~lavsim.timing.TimingProfile` holds
the same key vocabulary (its construction refuses a missing key), so checking the built-in
profiles covers every profile.

Base cycles: ``insn.cycles`` is ``profile.table[key]`` where the key is the first of
``timing``, ``timing.<letters>``, ``timing_<letters>``, ``timing.<letters reversed>``,
``timing.not_taken`` that the profile defines (letters: ``r``/``m``/``i`` for destination then
source, ``1`` and ``cl`` for shift counts; LOOPE/LOOPNE use the ``loop`` keys). So Jcc, LOOP and
JECXZ are charged their not-taken cost and add the difference when taken. Forms for which no
key exists -- exactly the timing classes of :data:`DYNAMIC_COST`: far transfers, INT, IRET,
MOV CRn -- get a base of 0 and their semantics charge the path taken. REP-prefixed string
instructions get
``rep.base`` and their semantics add the per-iteration cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lavsim.cpu import far, interrupts, ops_bits, ops_control, ops_int, ops_string, system
from lavsim.cpu.handlers import Binder, Handler, Semantics, merge
from lavsim.cpu.insn import Insn
from lavsim.cpu.isa import FORMS, SEGMENT_PREFIXES, Form
from lavsim.cpu.pairing import describe, missing_classes
from lavsim.errors import LavsimError
from lavsim.faults import NM, CpuFault, gp, ud
from lavsim.timing import PROFILES

if TYPE_CHECKING:
    from lavsim.cpu.state import CpuState
    from lavsim.timing import TimingProfile

MASK32 = 0xFFFFFFFF
MAX_LENGTH = 15
_CS = 1
_DS = 3
_SS = 2
_ESP = 4
_EBP = 5
_CR0_EM = 1 << 2
_CR0_TS = 1 << 3

# Immediate kinds, in the order their bytes follow the ModRM/SIB/displacement.
_IMM8, _SIMM8, _IMM16, _IMMV, _REL8, _RELV, _MOFFS, _PTR = range(8)
_IMM_KINDS = {
    "imm8": _IMM8, "simm8": _SIMM8, "imm16": _IMM16, "immv": _IMMV,
    "rel8": _REL8, "relv": _RELV, "moffs8": _MOFFS, "moffsv": _MOFFS, "ptr16:v": _PTR,
}
_SREG_OPERANDS = {"ES": 0, "CS": 1, "SS": 2, "DS": 3, "FS": 4, "GS": 5}
_REG_OPERANDS = ("r8", "r16", "r32", "rv")


class Plan:
    """What the decoder must do for one form (computed once from the table)."""

    __slots__ = (
        "acc", "cc", "cr", "fixed_size", "form", "imms", "letters", "lock", "mem_only",
        "modrm", "moffs", "plus_r", "rep", "sreg", "sreg_fixed",
    )

    def __init__(self, form: Form) -> None:
        self.form = form
        ops = form.operands
        attrs = form.attrs
        self.modrm = form.modrm is not None
        self.plus_r = form.reg_in_opcode
        self.cc = "cc" in attrs
        self.lock = "lock" in attrs
        self.rep = "rep" in attrs
        self.mem_only = any(op in ("m", "m16:v") for op in ops)
        self.cr = "CRn" in ops
        self.sreg = "Sreg" in ops
        self.moffs = any(op.startswith("moffs") for op in ops)
        self.acc = bool(ops) and ops[0] in ("AL", "eAX") and not self.moffs
        fixed = [_SREG_OPERANDS[op] for op in ops if op in _SREG_OPERANDS]
        self.sreg_fixed = fixed[0] if fixed else -1
        if "size8" in attrs:
            self.fixed_size = 1
        elif "size16" in attrs:
            self.fixed_size = 2
        elif "size32" in attrs:
            self.fixed_size = 4
        else:
            self.fixed_size = 0
        self.imms = tuple(_IMM_KINDS[op] for op in ops if op in _IMM_KINDS)
        self.letters = tuple(_letter(op) for op in ops[:2])


def _letter(op: str) -> str:
    """Timing-key letter of one operand; ``"m?"`` stands for the r/m operand (r or m)."""
    if op.startswith("r/m") or op == "m":
        return "m?"
    if op in _REG_OPERANDS or op.startswith("+") or op in ("AL", "eAX"):
        return "r"
    if op in ("imm8", "simm8", "imm16", "immv"):
        return "i"
    if op == "1":
        return "1"
    if op == "CL":
        return "cl"
    return ""


#: The semantics modules whose tables make up the decoder's (see the module docstring).
SEMANTICS: tuple[Semantics, ...] = (
    ops_int.SEMANTICS, ops_bits.SEMANTICS, ops_control.SEMANTICS, ops_string.SEMANTICS,
    far.SEMANTICS, interrupts.SEMANTICS, system.SEMANTICS,
)  # fmt: skip
HANDLERS: dict[str, Handler]
BINDERS: dict[str, Binder]
HANDLERS, BINDERS = merge(SEMANTICS)

#: Timing classes with no base key: the decoder charges 0 and the semantics charge the whole
#: figure of the path taken (:func:`lavsim.cpu.far.charge_path`): far JMP/CALL/RET (direct,
#: through a gate, to another privilege level: ``far.py``), INT n/INT3 and IRET (same or
#: other privilege level: ``interrupts.py``), MOV to/from CRn (by register: ``system.py``).
DYNAMIC_COST: frozenset[str] = frozenset({
    "call_far", "jmp_far", "retf", "retf_imm", "int", "int3", "iret", "mov_to_cr", "mov_from_cr",
})  # fmt: skip


class DecoderBuildError(LavsimError):
    """The instruction table, the semantics and the timing profiles do not agree."""


def _mem_variants(form: Form) -> tuple[bool, ...]:
    """The values of ``insn.mem`` a form decodes with (they choose r/m timing letters)."""
    ops = form.operands
    if "CRn" in ops:
        return (False,)
    if any(op in ("m", "m16:v") for op in ops):
        return (True,)
    if any(op.startswith("r/m") for op in ops):
        return (False, True)
    return (False,)


def _form_name(form: Form) -> str:
    return f"{form.mnemonic} {', '.join(form.operands)} ({form.opcode.hex()}, {form.handler})"


def check_tables(
    forms: Iterable[Form],
    handlers: Mapping[str, object],
    binders: Mapping[str, object],
    profiles: Mapping[str, Mapping[str, int]],
    dynamic: frozenset[str] = DYNAMIC_COST,
) -> None:
    """Refuse, with a :class:`DecoderBuildError` naming every offending form, a form without
    semantics, a form whose base-cost key a profile (name -> key table) lacks while its timing
    class is not ``dynamic``, a REP form when a profile lacks ``rep.base``, and a ``dynamic``
    class that no form uses or that has a base key after all (a stale entry)."""
    forms = tuple(forms)
    problems = [
        f"no handler for {_form_name(f)}"
        for f in forms
        if f.handler not in handlers and f.handler not in binders
    ]
    problems += missing_classes(forms)
    used = {f.timing for f in forms}
    problems += [f"DYNAMIC_COST names {t!r}, which no form uses" for t in sorted(dynamic - used)]
    for name, table in profiles.items():
        for f in forms:
            if "rep" in f.attrs and "rep.base" not in table:
                problems.append(f"profile {name!r} lacks 'rep.base' for {_form_name(f)}")
            for mem in _mem_variants(f):
                key = timing_key(f, mem, table)
                where = "memory" if mem else "register"
                if key is None and f.timing not in dynamic:
                    problems.append(
                        f"profile {name!r} has no timing key for {_form_name(f)} "
                        f"({where} form, class {f.timing!r})"
                    )
                elif key is not None and f.timing in dynamic:
                    problems.append(
                        f"{_form_name(f)} is in DYNAMIC_COST but profile {name!r} has its "
                        f"base key {key!r}"
                    )
    if problems:
        shown = sorted(set(problems))
        raise DecoderBuildError(
            f"decoder tables refused ({len(shown)} problems):\n  " + "\n  ".join(shown)
        )


# --- the opcode maps ----------------------------------------------------------------------
# Each slot is None (undefined) or a tuple of 8 candidate lists (by /digit, or all eight the
# same for forms without a digit). A list holds the plans sharing that encoding.

Slot = tuple[bool, tuple[tuple["Plan", ...], ...]]


def _build_maps() -> tuple[list[Slot | None], list[Slot | None]]:
    pending: dict[tuple[int, int], list[list[Plan]]] = {}
    for form in FORMS:
        code = form.opcode
        two = len(code) == 2
        last = code[-1]
        opcodes = [last + k for k in range(8)] if form.reg_in_opcode else [last]
        digits = [form.modrm] if isinstance(form.modrm, int) else list(range(8))
        plan = Plan(form)
        for op in opcodes:
            if op == 0x90 and form.mnemonic == "xchg":
                continue  # 0x90 is NOP
            slots = pending.setdefault((int(two), op), [[] for _ in range(8)])
            for d in digits:
                slots[d].append(plan)
    one: list[Slot | None] = [None] * 256
    two_map: list[Slot | None] = [None] * 256
    for (is_two, op), slots in pending.items():
        plans = [p for s in slots for p in s]
        has_modrm = plans[0].modrm
        if any(p.modrm != has_modrm for p in plans):
            raise RuntimeError(f"opcode {op:#x}: forms disagree on ModRM")
        (two_map if is_two else one)[op] = (has_modrm, tuple(tuple(s) for s in slots))
    return one, two_map


ONE_BYTE, TWO_BYTE = _build_maps()


def _choose(cands: tuple[Plan, ...], size: int) -> Plan:
    """Pick among plans sharing an encoding: by operand size, then the assembler's form."""
    if len(cands) == 1:
        return cands[0]
    for p in cands:
        if p.fixed_size in (2, 4) and p.fixed_size == size:
            return p
    for p in cands:
        if "noasm" not in p.form.attrs:
            return p
    return cands[0]


# --- timing keys ----------------------------------------------------------------------------

#: Timing classes charged with another class's keys.
_TIMING_ALIAS = {"loope": "loop", "loopne": "loop"}

_KeyCache = dict[tuple[int, str, bool, bool], tuple[str, int]]
_key_caches: dict[int, tuple[Any, _KeyCache]] = {}
#: Profiles whose base-cost keys are memoised at once (each memo is bounded by the form
#: table); past it the memos are dropped and rebuilt on demand (no simulated difference).
KEY_CACHE_PROFILES = 16


def timing_key(form: Form, mem: bool, table: Mapping[str, int]) -> str | None:
    """The profile key of a form's base cost (see the module docstring), or None."""
    letters = "".join(
        ("m" if mem else "r") if c == "m?" else c for c in map(_letter, form.operands[:2])
    )
    t = _TIMING_ALIAS.get(form.timing, form.timing)
    for key in (t, f"{t}.{letters}", f"{t}_{letters}", f"{t}.{letters[::-1]}", f"{t}.not_taken"):
        if key in table:
            return key
    return None


def _base_cost(profile: TimingProfile, plan: Plan, mem: bool, rep: bool) -> tuple[str, int]:
    cached = _key_caches.get(id(profile))
    if cached is None or cached[0] is not profile:
        if len(_key_caches) >= KEY_CACHE_PROFILES:
            _key_caches.clear()  # a host that builds profile after profile: bounded
        cached = (profile, {})
        _key_caches[id(profile)] = cached
    cache = cached[1]
    k = (id(plan), plan.form.timing, mem, rep)
    hit = cache.get(k)
    if hit is not None:
        return hit
    table = profile.table
    if rep:
        result = ("rep.base", table["rep.base"])
    else:
        key = timing_key(plan.form, mem, table)
        result = (key, table[key]) if key is not None else (plan.form.timing, 0)
    cache[k] = result
    return result


# The build-time check (see the module docstring): an incomplete table fails the import.
check_tables(FORMS, HANDLERS, BINDERS, {name: p.table for name, p in PROFILES.items()})


# --- fetching -------------------------------------------------------------------------------


class Fetch:
    """The bytes of one instruction as the processor fetches them.

    ``avail`` bytes may be fetched (the CS limit and the 15-byte rule); the page of the first
    byte is already translated; the next page is translated only when a byte of it is needed.
    """

    __slots__ = ("avail", "buf", "cpu", "lin", "phys", "phys2")

    def __init__(self, cpu: CpuState, eip: int, lin: int, phys: int, avail: int) -> None:
        self.cpu = cpu
        self.lin = lin
        self.phys = phys
        self.avail = avail
        first = min(avail, 0x1000 - (lin & 0xFFF))
        # Through the MMU so that its tracers see the fetch (lavsim.mmu.mmu, the tracer seam).
        self.buf = cpu.mmu.fetch_physical(phys, first, cpu.user)
        self.phys2 = -1

    def more(self, need: int) -> None:
        """Make ``need`` bytes available or raise the fault the processor would."""
        if need > self.avail:
            raise gp(0)  # beyond the CS limit or longer than 15 bytes
        have = len(self.buf)
        if need <= have:
            return
        lin2 = (self.lin + have) & MASK32
        cpu = self.cpu
        phys2 = cpu.mmu.translate(lin2, False, cpu.user, True)
        self.phys2 = phys2
        self.buf += cpu.mmu.fetch_physical(phys2, self.avail - have, cpu.user)


def fetch_window(cpu: CpuState, eip: int) -> tuple[int, int, int]:
    """Check CS for the first byte at ``eip`` and translate its page as an instruction fetch.

    Returns ``(linear, physical, avail)``; raises #GP(0), #UD (16-bit CS) or #PF.
    """
    cs = cpu.seg[_CS]
    if eip < cs.min_off or eip > cs.max_off:
        raise gp(0)
    if not cs.db:
        raise ud()
    lin = (cs.base + eip) & MASK32
    phys = cpu.mmu.translate(lin, False, cpu.user, True)
    return lin, phys, min(MAX_LENGTH, cs.max_off - eip + 1)


def decode(cpu: CpuState, eip: int) -> Insn:
    """Decode the instruction at CS:``eip`` (fetching it through segmentation and paging)."""
    lin, phys, avail = fetch_window(cpu, eip)
    return decode_fetched(cpu, eip, Fetch(cpu, eip, lin, phys, avail))


def decode_fetched(cpu: CpuState, eip: int, f: Fetch) -> Insn:
    """Decode from a :class:`Fetch` whose first page is translated."""
    buf = f.buf
    pos = 0
    opsize = False
    lock = False
    rep = 0
    seg = -1
    # Prefixes (SDM Vol. 2, 2.1.1).
    while True:
        if pos >= len(buf):
            f.more(pos + 1)
            buf = f.buf
        b = buf[pos]
        if b == 0x66:
            opsize = True
        elif b == 0xF0:
            lock = True
        elif b == 0xF2 or b == 0xF3:
            rep = b
        elif b in SEGMENT_PREFIXES:
            seg = SEGMENT_PREFIXES[b]
        elif b == 0x67:
            raise ud()
        else:
            break
        pos += 1
    prefixes = pos
    pos += 1
    table = ONE_BYTE
    if b == 0x0F:
        if pos >= len(buf):
            f.more(pos + 1)
            buf = f.buf
        b = buf[pos]
        pos += 1
        table = TWO_BYTE
    slot = table[b]
    if slot is None:
        if table is ONE_BYTE and 0xD8 <= b <= 0xDF:
            raise x87_fault(cpu)
        raise ud()
    size = 2 if opsize else 4
    i = Insn()
    i.addr = eip
    i.reg = b & 7
    i.rm = 0
    i.mem = False
    i.base = -1
    i.index = -1
    i.scale = 1
    i.disp = 0
    i.imm = 0
    i.imm2 = 0
    i.cc = b & 0xF
    i.rep = rep
    i.lock = lock
    has_modrm, by_digit = slot
    if has_modrm:
        if pos >= len(buf):
            f.more(pos + 1)
            buf = f.buf
        modrm = buf[pos]
        pos += 1
        cands = by_digit[(modrm >> 3) & 7]
        if not cands:
            raise ud()
        plan = _choose(cands, size)
        mod = modrm >> 6
        rm = modrm & 7
        i.reg = (modrm >> 3) & 7
        if mod == 3 or plan.cr:
            if plan.mem_only:
                raise ud()
            i.rm = rm
        else:
            i.mem = True
            default_seg = _DS
            if rm == 4:
                if pos >= len(buf):
                    f.more(pos + 1)
                    buf = f.buf
                sib = buf[pos]
                pos += 1
                base = sib & 7
                index = (sib >> 3) & 7
                if index != 4:
                    i.index = index
                    i.scale = 1 << (sib >> 6)
                if base == 5 and mod == 0:
                    disp_len = 4
                else:
                    i.base = base
                    if base in (_ESP, _EBP):
                        default_seg = _SS
                    disp_len = 1 if mod == 1 else (4 if mod == 2 else 0)
            elif rm == 5 and mod == 0:
                disp_len = 4
            else:
                i.base = rm
                if rm == _EBP:
                    default_seg = _SS
                disp_len = 1 if mod == 1 else (4 if mod == 2 else 0)
            if disp_len:
                end = pos + disp_len
                if end > len(buf):
                    f.more(end)
                    buf = f.buf
                if disp_len == 1:
                    d = buf[pos]
                    i.disp = d - 0x100 if d & 0x80 else d
                else:
                    i.disp = int.from_bytes(buf[pos:end], "little")
                pos = end
            i.seg = default_seg if seg < 0 else seg
    else:
        plan = _choose(by_digit[0], size)
    if not i.mem:
        i.seg = _DS if seg < 0 else seg
    if plan.fixed_size:
        size = plan.fixed_size
    i.size = size
    if plan.plus_r:
        i.reg = b & 7
        if plan.form.operands[0] == "eAX":  # XCHG eAX, +rv: accumulator as the r/m side
            i.rm = 0
    elif plan.acc:
        i.reg = 0
        i.rm = 0
    elif plan.sreg_fixed >= 0:
        i.reg = plan.sreg_fixed
    if plan.sreg and (i.reg > 5 or (i.reg == _CS and plan.form.operands[0] == "Sreg")):
        raise ud()
    if plan.cr and i.reg in (1, 5, 6, 7):
        raise ud()
    if lock and not (plan.lock and i.mem):
        raise ud()
    # Immediates.
    first = True
    rel: int | None = None
    for kind in plan.imms:
        if kind in (_IMM8, _SIMM8, _REL8):
            n = 1
        elif kind == _IMM16:
            n = 2
        elif kind == _PTR:
            n = size + 2
        elif kind == _MOFFS:
            n = 4
        else:
            n = size
        end = pos + n
        if end > len(buf):
            f.more(end)
            buf = f.buf
        raw = buf[pos:end]
        pos = end
        if kind == _PTR:
            i.imm = int.from_bytes(raw[:size], "little")
            i.imm2 = int.from_bytes(raw[size:], "little")
            continue
        value = int.from_bytes(raw, "little")
        if kind == _SIMM8:
            value = (value - 0x100 if value & 0x80 else value) & (0xFFFF if size == 2 else MASK32)
            if size == 1:
                value &= 0xFF
        elif kind == _REL8:
            rel = value - 0x100 if value & 0x80 else value
            continue
        elif kind == _RELV:
            rel = _sext(value, size)
            continue
        elif kind == _MOFFS:
            i.mem = True
            i.disp = value
            i.seg = _DS if seg < 0 else seg
            i.reg = 0
            continue
        if first:
            i.imm = value
            first = False
        else:
            i.imm2 = value
    i.length = pos
    i.next_eip = (eip + pos) & MASK32
    if rel is not None:
        # A near branch target is an offset of the operand size (SDM Vol. 2, JMP/Jcc/CALL).
        i.imm = (i.next_eip + rel) & (0xFFFF if size == 2 else MASK32)
    i.form = plan.form
    timing, cycles = _base_cost(cpu.profile, plan, i.mem, bool(rep) and plan.rep)
    i.timing = timing
    i.cycles = cycles
    i.handler = resolve(i)
    issue = cpu.profile.issue
    i.issue = None if issue is None else describe(i, prefixes, issue.zero_f_prefix)
    i.vprev = None
    i.vok = False
    mmu = cpu.mmu
    if mmu.tracing:
        # The instruction's exact bytes, per page (the tracer seam's INSN event).
        here = min(pos, 0x1000 - (f.lin & 0xFFF))
        mmu.report_insn(f.phys, here, cpu.user)
        if pos > here:
            mmu.report_insn(f.phys2, pos - here, cpu.user)
    return i


def x87_fault(cpu: CpuState) -> CpuFault:
    """The fault of an x87 escape opcode (D8..DF): no FPU is modelled, so #NM when CR0.EM
    or CR0.TS is set (SDM Vol. 3, 2.5: EM means no FPU, TS a task switch since the last FPU
    use), else #UD. :func:`lavsim.cpu.x87.describe` names the instruction for reports."""
    if cpu.cr0 & (_CR0_EM | _CR0_TS):
        return CpuFault(NM)
    return ud()


def _sext(value: int, size: int) -> int:
    sign = 1 << (8 * size - 1)
    return value - (sign << 1) if value & sign else value


def resolve(i: Insn) -> Callable[[Any, Insn], None]:
    """The semantics of a decoded instruction: a decode-time binder's specialised function,
    else the generic handler (:func:`check_tables` has made sure one of them exists)."""
    name = i.form.handler
    bind = BINDERS.get(name)
    if bind is not None:
        return bind(i)
    return HANDLERS[name]


__all__ = [
    "BINDERS", "DYNAMIC_COST", "HANDLERS", "SEMANTICS", "CpuFault", "DecoderBuildError", "Fetch",
    "Plan", "check_tables", "decode", "decode_fetched", "fetch_window", "resolve", "x87_fault",
]  # fmt: skip
