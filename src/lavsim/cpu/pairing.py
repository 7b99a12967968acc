"""Pentium dual issue: pairing classes as data, the pairing rules, and the branch target buffer.

**Classes** (:data:`PAIRING`, one table): every form of :data:`lavsim.cpu.isa.FORMS` has one of
``UV`` (pairs in either pipe), ``PU`` (pairs only in the U pipe), ``PV`` (only in V) or ``NP``
(never pairs: issues alone in U), from AP-500 appendix A as transcribed in [VEN]
``docs/ap500-pairing-table.md`` and [AF]'s pairing column. A key is a handler name, or a handler
name and the form's operands (``"push r/mv"``), which wins; a value ``"UV/NP"`` gives the
register and the memory variant of an r/m form. The decoder refuses to build
(:class:`~lavsim.cpu.decoder.DecoderBuildError`) when a form has no class.

**The rules** (:func:`pairs`), between an instruction issued in U and the next one
([PUM] §3.1.2, [AF] ch. 10, [GPBB] ch. 20):

1. the first is UV or PU, the second UV or PV;
2. the second neither reads nor writes a register the first writes (a partial register is the
   whole register); the flags are not a dependency (two flag-writing ALU instructions pair, and
   CMP/ALU + Jcc pair); ESP is not one between PUSH+PUSH, POP+POP and PUSH+CALL;
3. an instruction with both a displacement and an immediate does not pair (it is NP);
4. a prefixed instruction pairs only in U (PU; PV becomes NP) -- the 0F of near Jcc excepted,
   and 0F counts as a prefix only with ``IssueModel.zero_f_prefix``.

A pair whose two data accesses fall in the same bank of the data cache (linear address bits
2..4 equal, which includes the same dword) costs the V instruction ``bank_conflict`` more
([AF] ch. 10, [VT]); the addresses are computed from the registers when each issues
(:func:`data_linear`: V cannot depend on U's writes, so its address is its own).

A :class:`Issue` descriptor is computed once per decoded instruction (it depends only on the
instruction bytes) and cached with it; see :mod:`lavsim.cpu.core` for how the executor charges a
pair, the AGI and the BTB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from lavsim.cpu.insn import Issue
from lavsim.cpu.isa import Form

if TYPE_CHECKING:
    from lavsim.cpu.insn import Insn
    from lavsim.timing.issue import IssueModel

__all__ = [
    "BTB", "NP", "PAIRING", "PU", "PV", "UV", "Issue", "class_of", "data_linear", "describe",
    "missing_classes", "pairs",
]  # fmt: skip

NP, UV, PU, PV = 0, 1, 2, 3
CLASS_NAMES: Final = ("NP", "UV", "PU", "PV")
_BY_NAME: Final = {n: k for k, n in enumerate(CLASS_NAMES)}


def _table() -> dict[str, str]:
    return {
    "mov": "UV", "lea": "UV", "nop": "UV",
    "add": "UV", "or": "UV", "and": "UV", "sub": "UV", "xor": "UV", "cmp": "UV",
    "inc": "UV", "dec": "UV",
    "adc": "PU", "sbb": "PU",
    "test": "UV", "test r/m8, imm8": "NP", "test r/mv, immv": "NP",
    "push +rv": "UV", "push simm8": "UV", "push immv": "UV", "push r/mv": "UV/NP",
    "pop +rv": "UV", "pop r/mv": "UV/NP",
    "jcc": "PV", "jmp_rel": "PV", "call_rel": "PV",
    # ENDBR32 (F3 0F 1E FB) does not exist on the P5; lavsim decodes it as a no-op, classed as
    # NOP is (an estimate: no P5 source can give it).
    "endbr32": "UV",
    }  # fmt: skip


_PAIRING = _table()
for _name in ("rol", "ror", "shl", "shr", "sar"):
    for _ops in ("r/m8, 1", "r/mv, 1", "r/m8, imm8", "r/mv, imm8"):
        _PAIRING[f"{_name} {_ops}"] = "PU"
    for _ops in ("r/m8, CL", "r/mv, CL"):
        _PAIRING[f"{_name} {_ops}"] = "NP"
for _name in ("rcl", "rcr"):
    for _ops in ("r/m8, 1", "r/mv, 1"):
        _PAIRING[f"{_name} {_ops}"] = "PU"
# Handlers that never pair (AP-500 appendix A: everything not listed above).
for _name in (
    "arpl", "bswap", "call_far", "call_near_indirect", "cdq", "clc", "cld", "cli", "cmc",
    "cmovcc", "cmps", "cpuid", "cwde", "div", "enter", "hlt", "idiv", "imul", "imul2", "imul3",
    "in_", "int3", "int_n", "into", "invd", "invlpg", "iret", "jecxz", "jmp_far",
    "jmp_near_indirect",
    "lahf", "lar", "leave", "lgdt", "lidt", "lldt", "lods", "loop", "loope", "loopne", "lsl",
    "ltr", "mov_from_cr", "mov_from_sreg", "mov_to_cr", "mov_to_sreg", "movs", "movsx", "movzx",
    "mul", "neg", "not", "out", "pop_sreg", "popad", "popfd", "push_sreg", "pushad", "pushfd",
    "rdtsc", "ret_far", "ret_near", "sahf", "scas", "setcc", "sgdt", "sidt", "sldt", "stc",
    "std", "sti", "stos", "str_", "ud2", "verr", "verw", "wbinvd", "xchg",
    "rcl", "rcr", "rol", "ror", "shl", "shr", "sar",  # by CL or imm8 unless listed above
    # The instructions compiled C needs (issue 16): NP in the Pentium Instruction Set Reference
    # [PIR] for BTS/BTR/BTC, BSF, SHLD/SHRD, CMPXCHG, CMPXCHG8B; BT, BSR and XADD are not in
    # AP-500's pairable lists either, so they take NP by the rule above.
    "bt", "bts", "btr", "btc", "bsf", "bsr", "shld", "shrd", "xadd", "cmpxchg", "cmpxchg8b",
):
    _PAIRING.setdefault(_name, "NP")

#: Pairing classes by handler, or ``"handler operands"`` (module docstring). Forms another part
#: of lavsim adds get their entry in ``_table`` above.
PAIRING: Final[Mapping[str, str]] = MappingProxyType(_PAIRING)


def _entry(form: Form) -> str | None:
    return PAIRING.get(f"{form.handler} {', '.join(form.operands)}", PAIRING.get(form.handler))


def class_of(form: Form, mem: bool) -> int:
    """The pairing class of ``form`` (its memory variant when ``mem``), as NP/UV/PU/PV."""
    entry = _entry(form)
    if entry is None:
        raise KeyError(f"no pairing class for {form.mnemonic} {', '.join(form.operands)}")
    reg, _, memory = entry.partition("/")
    return _BY_NAME[memory if mem and memory else reg]


def missing_classes(forms: Iterable[Form]) -> list[str]:
    """Problems for the decoder's build check: forms without a valid pairing class."""
    problems = []
    for f in forms:
        entry = _entry(f)
        names = entry.split("/") if entry is not None else []
        if entry is None or not 1 <= len(names) <= 2 or any(n not in _BY_NAME for n in names):
            problems.append(
                f"no pairing class (UV/PU/PV/NP) for {f.mnemonic} {', '.join(f.operands)} "
                f"({f.opcode.hex()}, {f.handler}): add it to lavsim.cpu.pairing.PAIRING"
            )
    return problems


# --- descriptors --------------------------------------------------------------------------------

_ESP_BIT = 1 << 4
#: Stack kinds for the ESP exception and the AGI exemption.
STACK_NONE, STACK_PUSH, STACK_POP, STACK_CALL, STACK_RET = range(5)
_STACK = {
    "push": STACK_PUSH, "push_sreg": STACK_PUSH, "pushad": STACK_PUSH, "pushfd": STACK_PUSH,
    "pop": STACK_POP, "pop_sreg": STACK_POP, "popad": STACK_POP, "popfd": STACK_POP,
    "call_rel": STACK_CALL, "call_near_indirect": STACK_CALL, "ret_near": STACK_RET,
    "enter": STACK_PUSH, "leave": STACK_POP,
}  # fmt: skip
#: Registers read and written implicitly (bit n = register n; EAX=0 .. EDI=7).
_IMPLICIT: dict[str, tuple[int, int]] = {
    "mul": (0b101, 0b101), "imul": (0b101, 0b101), "div": (0b101, 0b101),
    "idiv": (0b101, 0b101), "cdq": (0b1, 0b100), "cwde": (0b1, 0b1),
    "movs": (0b11000010, 0b11000010), "stos": (0b10000011, 0b10000010),
    "lods": (0b01000010, 0b01000011), "cmps": (0b11000010, 0b11000010),
    "scas": (0b10000011, 0b10000010), "loop": (0b10, 0b10), "loope": (0b10, 0b10),
    "loopne": (0b10, 0b10), "jecxz": (0b10, 0), "pushad": (0xFF, 0), "popad": (0, 0xEF),
    "leave": (0b100000, 0b100000), "enter": (0b100000, 0b100000), "lahf": (0, 1),
    "sahf": (1, 0), "in_": (0b101, 0b1), "out": (0b101, 0), "cpuid": (0b1111, 0b1111),
    "rdtsc": (0, 0b101), "xchg": (0, 0),
}  # fmt: skip
#: Destinations that are only written (the others are read, then written).
_WRITE_ONLY = {"mov", "lea", "pop", "movzx", "movsx", "setcc", "mov_from_sreg", "mov_from_cr",
               "lar", "lsl", "sldt", "str_", "cmovcc", "imul3"}
_NO_WRITE = {"cmp", "test", "push", "jcc", "jmp_rel", "call_rel", "jmp_near_indirect",
             "call_near_indirect", "verr", "verw", "jmp_far", "call_far", "out"}
_REG_OPS = ("r8", "r16", "r32", "rv")
BRANCH_NONE, BRANCH_JCC, BRANCH_DIRECT = 0, 1, 2
#: Where an instruction's data access lies: none, its memory operand, below ESP (a push),
#: at ESP (a pop).
DATA_NONE, DATA_OPERAND, DATA_PUSH, DATA_POP = 0, 1, 2, 3
_NO_ACCESS = {"lea", "nop", "invlpg", "lgdt", "lidt", "sgdt", "sidt"}
_STRINGS = {"movs", "stos", "lods", "cmps", "scas"}


def _reg_bit(reg: int, size: int) -> int:
    # AH..BH (4..7 in byte operations) are parts of EAX..EBX.
    return 1 << (reg & 3 if size == 1 else reg)


def describe(i: Insn, prefixes: int, zero_f: bool) -> Issue:
    """The :class:`Issue` of decoded instruction ``i`` with ``prefixes`` prefix bytes before
    its opcode; ``zero_f``: count the 0F byte of a two-byte opcode as a prefix."""
    form = i.form
    handler = form.handler
    cls = class_of(form, i.mem)
    size = i.size
    reads = writes = addr = 0
    if i.mem:
        if i.base >= 0:
            addr |= 1 << i.base
        if i.index >= 0:
            addr |= 1 << i.index
    ops = form.operands
    for k, op in enumerate(ops):
        bit = 0
        if op.startswith("r/m") and not i.mem:
            bit = _reg_bit(i.rm, size if op != "r/m16" else 2)
        elif op in _REG_OPS or op.startswith("+"):
            bit = _reg_bit(i.reg, 1 if op.endswith("8") else size)
        elif op in ("AL", "eAX"):
            bit = 1
        elif op == "CL":
            bit = 2
        elif op == "DX":
            bit = 4
        if not bit:
            continue
        if k == 0 and handler not in _NO_WRITE:
            writes |= bit
            if handler not in _WRITE_ONLY:
                reads |= bit
        else:
            reads |= bit
    if handler == "xchg":
        writes |= reads
    if handler == "lea":
        reads |= addr
    imp = _IMPLICIT.get(handler)
    if imp is not None:
        reads |= imp[0]
        writes |= imp[1]
    stack = _STACK.get(handler, STACK_NONE)
    if handler == "ret_near" and ops:
        stack = STACK_NONE  # RET imm16 writes ESP explicitly ([AF] ch. 9)
        reads |= _ESP_BIT
        writes |= _ESP_BIT
        addr |= _ESP_BIT
    agi_writes = writes
    if stack != STACK_NONE:
        reads |= _ESP_BIT
        writes |= _ESP_BIT
        addr |= _ESP_BIT
    if handler in ("movs", "stos", "lods", "cmps", "scas"):
        addr |= 0b11000000
    # Displacement and immediate in one instruction: not pairable ([VEN] AP-500 §5.6).
    has_imm = any(op in ("imm8", "simm8", "imm16", "immv") for op in ops)
    if cls != NP and has_imm and i.mem and i.disp and form.modrm is not None:
        cls = NP
    two_byte = len(form.opcode) == 2
    counted = prefixes
    if i.rep and "rep" in form.attrs:
        counted -= 1  # the REP string figures include their prefix
    if zero_f and two_byte and handler != "jcc":
        counted += 1
    if prefixes and cls != NP:
        cls = PU if cls in (UV, PU) else NP
    branch = BRANCH_NONE
    if handler == "jcc":
        branch = BRANCH_JCC
    elif handler in ("jmp_rel", "call_rel"):
        branch = BRANCH_DIRECT
    rmw = i.mem and handler not in _WRITE_ONLY and handler not in _NO_WRITE and bool(
        ops and ops[0].startswith("r/m")
    )
    data = DATA_NONE
    if i.mem and handler not in _NO_ACCESS and handler not in _STRINGS:
        data = DATA_OPERAND
    elif stack in (STACK_PUSH, STACK_CALL):
        data = DATA_PUSH
    elif stack in (STACK_POP, STACK_RET):
        data = DATA_POP
    return Issue(cls, reads & 0xFF, writes & 0xFF, addr & 0xFF, agi_writes & 0xFF, stack,
                 rmw, max(0, counted), branch, data)


def data_linear(cpu: Any, i: Insn, d: Issue) -> int:
    """The linear address of ``i``'s data access with the registers as they are now (its
    first byte; for a push, where it will write)."""
    regs = cpu.regs
    if d.data == DATA_OPERAND:
        off = i.disp
        if i.base >= 0:
            off += regs[i.base]
        if i.index >= 0:
            off += regs[i.index] * i.scale
        return int(cpu.seg[i.seg].base + off) & 0xFFFFFFFF
    esp = regs[4] - i.size if d.data == DATA_PUSH else regs[4]
    return int(cpu.seg[2].base + esp) & 0xFFFFFFFF


def pairs(u: Issue, v: Issue) -> bool:
    """Whether ``v`` issues in the V pipe beside ``u`` in U (the rules of the module
    docstring); a pure function of the two descriptors."""
    if u.cls not in (UV, PU) or v.cls not in (UV, PV):
        return False
    dep = u.writes & (v.reads | v.writes | v.addr)
    if dep == _ESP_BIT and (
        (u.stack == STACK_PUSH and v.stack in (STACK_PUSH, STACK_CALL))
        or (u.stack == STACK_POP and v.stack == STACK_POP)
    ):
        dep = 0
    return dep == 0


# --- the branch target buffer -------------------------------------------------------------------


class BTB:
    """The Pentium's branch target buffer: ``entries`` in sets of ``ways``, indexed by the
    linear address of the branch; each entry a 2-bit saturating counter (0, 1: predict not
    taken; 2, 3: taken). A branch not in the BTB is predicted not taken; a taken one is
    allocated (state 3, strongly taken) in its set's least recently used way ([VEN]
    ``docs/m4-pipeline-spec.md``; the allocation state and LRU replacement are lavsim's
    choice, docs/timing.md). Simulated state: :meth:`get_state` / :meth:`set_state`.
    """

    def __init__(self, entries: int, ways: int) -> None:
        self.entries = entries
        self.ways = ways
        self.sets = entries // ways if ways else 0
        #: Per set: [address, counter] pairs, most recently used last.
        self._table: list[list[list[int]]] = [[] for _ in range(self.sets)]
        self.lookups = 0
        self.mispredicts = 0

    def predict_and_update(self, address: int, taken: bool) -> bool:
        """Predict the branch at ``address``, learn its outcome; True if mispredicted."""
        self.lookups += 1
        ways = self._table[address & (self.sets - 1)]
        hit = None
        for entry in ways:
            if entry[0] == address:
                hit = entry
                break
        if hit is None:
            wrong = taken
            if taken:
                if len(ways) >= self.ways:
                    ways.pop(0)
                ways.append([address, 3])
        else:
            wrong = (hit[1] >= 2) != taken
            hit[1] = min(3, hit[1] + 1) if taken else max(0, hit[1] - 1)
            ways.remove(hit)
            ways.append(hit)
        if wrong:
            self.mispredicts += 1
        return wrong

    def get_state(self) -> dict[str, Any]:
        """JSON-ready contents (per set, LRU first) and statistics."""
        return {
            "sets": [[list(e) for e in ways] for ways in self._table],
            "lookups": self.lookups, "mispredicts": self.mispredicts,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Put back :meth:`get_state` (checked first; ``ValueError`` and nothing changed)."""
        sets = state["sets"]
        if not isinstance(sets, list) or len(sets) != self.sets:
            raise ValueError(f"the BTB has {self.sets} sets, the state {len(sets)}")
        table: list[list[list[int]]] = []
        for k, ways in enumerate(sets):
            if not isinstance(ways, list) or len(ways) > self.ways:
                raise ValueError(f"BTB set {k}: at most {self.ways} entries")
            row = []
            for e in ways:
                ok = isinstance(e, list) and len(e) == 2 and all(isinstance(x, int) for x in e)
                if not ok or not 0 <= e[1] <= 3 or e[0] & (self.sets - 1) != k:
                    raise ValueError(f"BTB set {k}: bad entry {e!r}")
                row.append([int(e[0]), int(e[1])])
            table.append(row)
        lookups, wrong = state["lookups"], state["mispredicts"]
        if not all(isinstance(x, int) and x >= 0 for x in (lookups, wrong)):
            raise ValueError("BTB statistics must be non-negative integers")
        self._table = table
        self.lookups = lookups
        self.mispredicts = wrong


def check_issue_state(state: object) -> None:
    """Refuse (``ValueError``/``KeyError``/``TypeError``) a malformed issue state of a checkpoint
    (``CPU.issue_state``) before anything is restored; the BTB geometry is checked against the
    profile when it is put back."""
    if state is None:
        return
    if not isinstance(state, Mapping):
        raise TypeError("the issue state must be an object or null")
    raw = state["pair_u"]
    if raw is not None:
        Issue.from_list(raw)
    for name in ("pair_u_cycles", "pair_u_stall", "pair_u_data"):
        value = state[name]
        if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= 1 << 32:
            raise ValueError(f"issue state: {name} {value!r}")
    agi = state["agi"]
    if not isinstance(agi, list) or len(agi) != 2 or not all(
        isinstance(x, int) and 0 <= x <= 0xFF for x in agi
    ):
        raise ValueError(f"issue state: agi {agi!r}")
    btb = state["btb"]
    if btb is not None:
        sets = btb["sets"]
        if not isinstance(sets, list) or not all(
            isinstance(ways, list) and all(
                isinstance(e, list) and len(e) == 2 and all(isinstance(x, int) for x in e)
                and 0 <= e[1] <= 3 for e in ways
            ) for ways in sets
        ):
            raise ValueError("issue state: malformed BTB sets")
        if not all(isinstance(btb[k], int) and btb[k] >= 0 for k in ("lookups", "mispredicts")):
            raise ValueError("issue state: BTB statistics must be non-negative integers")


def new_btb(issue: IssueModel | None) -> BTB | None:
    """The BTB of an issue model (None without one or with 0 entries)."""
    if issue is None or not issue.btb_entries:
        return None
    return BTB(issue.btb_entries, issue.btb_ways)

