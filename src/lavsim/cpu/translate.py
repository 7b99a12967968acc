"""Block translation: a cached block of straight-line guest code compiled into one Python
function (a simulator-speed cache; it changes no simulated result).

:func:`translate` takes a :class:`~lavsim.cpu.core.Block` (the decoded instructions of a
straight-line run inside one page) and the issue model's state at its entry, generates the
source of a function that does what the executor's block loop does for those instructions, and
compiles it. What the function saves over the loop:

* no per-instruction dispatch: the instructions are unrolled, each with its handler, decoded
  instruction and constants bound as globals of the function;
* the Pentium issue model (:meth:`lavsim.cpu.core.CPU._issue_run`) is resolved at translation
  time for everything that depends only on the instruction sequence and the entry state (which
  pipe, pairing, AGI stalls, prefix clocks, the pair's charge); what depends on run-time values
  stays in the generated code: bank conflicts (data addresses), misalignment penalties (the
  accessors charge them) and the BTB (a branch whose BTB entry is the most recently used of its
  set and strongly predicts the outcome is updated inline; any other case calls the executor's
  ``_predict``);
* the hottest forms (32-bit register ALU, INC/DEC, aligned MOV loads and stores through the
  MMU's host page map, PUSH/POP of a 32-bit register (:func:`_stack_access`), Jcc) are
  inlined, with the same fast-case conditions as :mod:`lavsim.cpu.fast` and the instruction's
  own handler as the fall-back;
* the TSC, the instruction-fetch TLB hits and the lazy flags are kept in locals and written
  back before every call that could read them and at every exit (the carry and zero flags a
  following INC/DEC or Jcc reads come from the previous instruction's locals);
* a block whose last instruction is a direct branch back to its own first instruction, and
  whose issue state at the branch is its entry state again, loops inside the function; a pass
  that cannot reach the cycle limit without calling out (its static cycles, bank conflicts and
  taken-branch extras are below what is left) runs unchecked: its static cycles are added
  once, and the limit is tested only after a call, against what the rest of the pass may add
  (stopping early at an instruction boundary, where the executor resumes exactly);
* in such a *looped* block (untraced) nothing but the block's own code runs between calls
  out, so more lives in locals (:func:`_loop_locals`): the general registers (written back
  before every call and at every exit, read again after every call); per access kind and
  segment, the last host page whose hit is only a count (its entry is the MRU of its set, so
  the hit changes no LRU order), tested on the offset before the segment check, its hits
  credited before calls and at exits, forgotten after every call and after any hit through a
  :class:`~lavsim.mmu.mmu.FastWay` (which makes its entry MRU and may demote the memoised
  one); the closing branch's BTB lookups; the lazy flags across unchecked passes (the first
  pass of a call is a checked one; the next starts from its flags in locals); and, in
  unchecked passes, the pending U's data address, stored only where something reads it.

Every check the executor makes is made before the instruction commits: the fetch's host
page-map entry is still the one the block started from (re-tested after every call and after
an inline data hit through a FastWay, the only things that can touch the TLBs: in a unified TLB
such a hit may demote the code page's entry, whose next fetch the executor then makes; an entry
that is not the MRU at the function's entry is made so by its first fetch), the cycle limit
after every instruction (or as above), the instruction limit before every pass, and the
executor's self-modifying-code counter after every store into a code page and every call.
Interrupt and stop requests are raised only by
instructions that end a block without looping, so a loop does not test them. An instruction
whose fast case does not apply runs its handler, which repeats the checks and raises the
architectural fault; the function then puts back the lazy flags, EFLAGS and the issue state
exactly as the block loop leaves them and hands the fault to the executor
(``CPU._fault_counted``). With tracers attached the traced variant (see :func:`translate`)
fetches every instruction as the per-instruction path does and inlines no memory access; with
a board's hierarchy as the only tracer the filtered variant (:class:`_Filtered`) tests the
hierarchy's counted cases inline (the MMU's :class:`~lavsim.mmu.mmu.AccessFilter`), inlines
the MOVs through the data page map as reported accesses, and skips fetches that provably
change nothing but counters.

The executor runs translations back to back without its general lookup where the successor
is the one it found last time and nothing that lookup reads has changed
(:meth:`lavsim.cpu.core.CPU._run_chained` says exactly what is checked).

The generated function is called as ``fn(cpu, e, vpn, left, c_limit, smc, done)`` (``e``: the
code page's host page-map entry, ``vpn`` its linear page number, ``left`` instructions the run
may still retire, at least the block's length; ``c_limit`` the run's cycle limit; ``smc`` the
executor's counter of dropped code; ``done`` instructions the run retired before) and returns
the instructions it retired. On a bus error (or any host exception) it sets ``cpu._xl_ran`` to
the instructions retired before it and re-raises.

A translation depends on the block (so on the bytes it was decoded from, its EIP, a 32-bit CS
and the timing profile: the executor drops blocks when any of them changes) and on the issue
state it is entered with (its key, see :func:`entry_key`); it does not depend on CR0, CR3, CR4,
the CS base or limit, or CPL, which it reads at run time. Compiled code objects are memoised
by their source (:data:`CODE_MEMO_LIMIT`), so machines running the same code compile it once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Any

from lavsim.cpu.fast import _carry
from lavsim.cpu.flags import ADD, DEC, INC, LOGIC, SUB, condition
from lavsim.cpu.ops_string import RepStopped
from lavsim.cpu.pairing import DATA_NONE, DATA_OPERAND, DATA_PUSH, PU, UV, pairs
from lavsim.faults import CpuFault
from lavsim.mmu.mmu import FastWay

if TYPE_CHECKING:
    from lavsim.cpu.insn import Insn, Issue

#: The executor (:class:`lavsim.cpu.core.CPU`) and its blocks (:class:`lavsim.cpu.core.Block`),
#: typed loosely to keep this module below the executor in the import order.
CPU = Any
Block = Any

MASK32 = 0xFFFFFFFF

#: Which variant a translation is: False (no tracer), True (traced), or the ``key`` of the
#: MMU's :class:`~lavsim.mmu.mmu.AccessFilter` (traced, with the filter's cases inline).
Traced = bool | tuple[Any, ...]

#: A translated block (see the module docstring for its arguments).
Translated = Callable[[Any, Any, int, int, int, int, int], int]

#: The issue state a translation is specialised for: (pending U descriptor, its cycles or None,
#: its AGI stall or None, AGI registers of the previous and current issue group); cycles and
#: stall are None when no U is pending (they are then carried through unchanged at run time).
Key = tuple[Any, int | None, int | None, int, int] | None

#: Most compiled code objects kept by their source (machines running the same code at the
#: same addresses generate the same source; compiling is most of a translation's cost).
CODE_MEMO_LIMIT = 4096
_CODE: dict[str, CodeType] = {}

_STRING = frozenset({"movs", "stos", "lods", "cmps", "scas"})
_ALU_RR = {"add_rr": "+", "sub_rr": "-", "cmp_rr": "-", "xor_rr": "^", "or_rr": "|",
           "and_rr": "&"}
_BRANCH_FORMS = frozenset({"jcc", "jmp_rel"})

#: Placeholders in a looped block's source for what is known only once the whole block is
#: generated (:func:`_loop_locals` fills them in): the statements before a call out (followed
#: by ``; ``) and after it (preceded by ``; ``).
SYNC_OUT = "\x00out\x00"
SYNC_IN = "\x00in\x00"
#: And a statement (preceded by `` ``) forgetting every memo.
FORGET = "\x00forget\x00"


class _Sink:
    """Takes the counts of a memo that holds nothing yet (``hits``) or of a machine without a
    BTB (``lookups``), so the generated code credits them without a test."""

    __slots__ = ("hits", "lookups")

    def __init__(self) -> None:
        self.hits = self.lookups = 0


#: The one sink (what it is credited is never read).
SINK = _Sink()


def entry_key(cpu: CPU) -> Key:
    """The key of the translation to use for the CPU's current issue state."""
    if cpu._issue is None:
        return None
    u = cpu._pair_u
    if u is None:
        return (None, None, None, cpu._agi_prev, cpu._agi_cur)
    return (u, cpu._pair_u_cycles, cpu._pair_u_stall, cpu._agi_prev, cpu._agi_cur)


class _Gen:
    """Source being generated, with the globals it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "CpuFault": CpuFault, "RepStopped": RepStopped, "condition": condition,
            "ADD": ADD, "SUB": SUB, "LOGIC": LOGIC, "INC": INC, "DEC": DEC,
            "FW": FastWay, "SINK": SINK,
        }
        self.segs = set()
        self.hoisted = []
        self.pending = self.cf = self.zf = None
        #: Added to every line's depth (a pass emitted inside a branch).
        self.base = 0
        #: In an unchecked pass: static cycles charged so far but not yet added to ``t``
        #: (the machine's TSC is ``t + dt`` wherever it is read).
        self.dt = 0
        #: A self-looping untraced block (see :func:`_loop_locals`): registers live in locals
        #: ``R<n>`` (``used``: read or written, ``written``: written), data pages and BTB
        #: lookups are memoised between calls out.
        self.looped = False
        self.used: set[int] = set()
        self.written: set[int] = set()
        self.memos: set[str] = set()
        self.btb_memo = False
        #: Emitting the closing branch of a looped block's unchecked pass.
        self.loop_branch = False
        #: In a looped block: the registers no inline code of the block writes.
        self.invariant: set[int] = set()

    # In a looped block's unchecked pass the pending U's data address is not stored in
    # ``ud`` when the U issues but kept as an expression (``ud_expr``, over the registers
    # ``ud_regs``) and stored before anything reads ``ud``: a call out, an exit, a bank
    # conflict test, an instruction that writes one of those registers, the end of the pass.
    defer_ud = False
    ud_expr: str | None = None
    ud_regs: set[int] = set()

    def ud_now(self) -> str:
        """Source (followed by ``; ``) that stores a deferred ``ud`` on an exit path."""
        return f"ud = {self.ud_expr}; " if self.ud_expr is not None else ""

    def ud_flush(self) -> None:
        """Store a deferred ``ud`` (at the pass's depth)."""
        if self.ud_expr is not None:
            self.w(3, f"ud = {self.ud_expr}")
            self.ud_expr = None

    def ud_set(self, expr: str, insn: Insn, regs: set[int]) -> None:
        """A U instruction with data address ``expr`` (over ``regs``) issues."""
        self.ud_expr = None
        if not self.defer_ud:
            self.w(3, f"ud = {expr}")
            return
        self.ud_expr, self.ud_regs = expr, regs
        self.ud_before(insn)  # the U itself may write one of them

    def ud_before(self, insn: Insn) -> None:
        """Before instruction ``insn``: store a deferred ``ud`` it could change."""
        if self.ud_expr is None:
            return
        writes = _inline_writes(insn)
        if writes is None or writes & self.ud_regs:
            self.ud_flush()

    def reg(self, n: int) -> str:
        """Source naming general register ``n`` (read)."""
        if not self.looped:
            return f"regs[{n}]"
        self.used.add(n)
        return f"R{n}"

    def reg_w(self, n: int) -> str:
        """Source naming general register ``n`` as an assignment target."""
        if self.looped:
            self.written.add(n)
        return self.reg(n)

    def sync_out(self) -> str:
        """Before a call out of a looped block: the register locals written back, the
        memoised hit counts credited (filled in by :func:`_loop_locals`)."""
        return SYNC_OUT if self.looped else ""

    def sync_in(self) -> str:
        """After a call out of a looped block: the register locals read again, the memos
        forgotten (filled in by :func:`_loop_locals`)."""
        return SYNC_IN if self.looped else ""

    def tsc_out(self) -> str:
        return f"cpu.tsc = t + {self.dt}" if self.dt else "cpu.tsc = t"

    def tsc_in(self) -> str:
        return f"t = cpu.tsc - {self.dt}" if self.dt else "t = cpu.tsc"

    def t_exit(self) -> str:
        """Source that makes ``t`` the TSC before leaving the pass (or nothing)."""
        return f" t += {self.dt};" if self.dt else ""

    def w(self, depth: int, text: str) -> None:
        self.lines.append("    " * (depth + self.base) + text)

    def const(self, name: str, value: Any) -> str:
        self.env[name] = value
        return name

    # Segment registers whose cache the function reads once at entry (no instruction that
    # may sit before a block's end loads a segment register).
    segs: set[int]
    #: Lines run once at the function's entry (facts that cannot change inside a block).
    hoisted: list[str]

    def hoist(self, line: str) -> None:
        if line not in self.hoisted:
            self.hoisted.append(line)

    def seg_base(self, sg: int) -> str:
        self.segs.add(sg)
        return f"s{sg}b"

    # The lazy flags the last inlined instruction produced, not yet stored in
    # ``cpu.lazy_flags`` (``pending``), with its CF and ZF as expressions over the locals.
    pending: str | None
    cf: str | None
    zf: str | None

    def set_flags(self, lazy: str, cf: str | None, zf: str | None) -> None:
        self.pending, self.cf, self.zf = lazy, cf, zf

    def flags_now(self) -> str:
        """Source that stores the pending flags before an exit (or nothing)."""
        return f" cpu.lazy_flags = {self.pending};" if self.pending else ""

    def flush_flags(self, depth: int) -> None:
        """Store the pending flags (before a call, or at the end of a pass)."""
        if self.pending:
            self.w(depth, f"cpu.lazy_flags = {self.pending}")

    def snapshot_flags(self) -> tuple[str | None, str | None, str | None]:
        return self.pending, self.cf, self.zf

    def restore_flags(self, keep: tuple[str | None, str | None, str | None]) -> None:
        self.pending, self.cf, self.zf = keep

    def forget_flags(self) -> None:
        self.pending = self.cf = self.zf = None


def _data_linear(g: _Gen, insn: Insn, d: Issue) -> str:
    """Source of :func:`lavsim.cpu.pairing.data_linear` for this instruction."""
    if d.data == DATA_OPERAND:
        parts = [g.seg_base(insn.seg)]
        if insn.disp:
            parts.append(str(insn.disp))
        if insn.base >= 0:
            parts.append(g.reg(insn.base))
        if insn.index >= 0:
            parts.append(f"{g.reg(insn.index)} * {insn.scale}")
        return f"({' + '.join(parts)}) & {MASK32}"
    if d.data == DATA_PUSH:
        return f"({g.seg_base(2)} + {g.reg(4)} - {insn.size}) & {MASK32}"
    return f"({g.seg_base(2)} + {g.reg(4)}) & {MASK32}"


State = tuple[Any, int | None, int | None, int, int]


def translate(
    cpu: CPU, block: Block, key: Key, straight: frozenset[str], traced: Traced = False,
    phys: int = 0,
) -> Translated:
    """Compile ``block`` for entry issue state ``key`` (see the module docstring);
    ``straight``: the handler names that may sit inside a block
    (:data:`lavsim.cpu.core.STRAIGHT`), which leave CS, the issue state and the TLBs alone.

    ``traced``: for a run with tracers on the MMU, the translation of the block at physical
    ``phys``: each instruction is fetched as the per-instruction path fetches it (a modelled
    ITLB lookup, then ``report_fetch`` (when a tracer wants ``FETCH``) and ``report_insn``; the
    caller has made the first instruction's lookup) and every data access goes through the
    handler (the MMU's accessors report it). Called with ``e`` None. When an instruction's page
    now translates elsewhere the function stops before running it and leaves
    ``cpu._xl_fetched`` = ``(eip, linear, physical)`` of that fetch, for the executor to run the
    instruction from.

    ``traced`` the key of the MMU's ``hot_filter``: the filtered variant, as the traced one
    but with the filter's counted cases inline (see :class:`_Filtered`).
    """
    g = _Gen()
    b = g.w
    entries = block.entries
    n = len(entries)
    model = cpu._issue
    insns = [ent[1] for ent in entries]
    last = insns[-1]
    g.const("ADDRS", (*(i.addr for i in insns), last.next_eip))

    issue = model is not None
    taken_extra = cpu.profile.table["jcc.taken"] - cpu.profile.table["jcc.not_taken"]
    # The last instruction may be anything (a far transfer, an interrupt, a system
    # instruction): everything is written back before it runs and nothing after.
    final_sync = last.form.handler not in straight and last.form.handler not in _BRANCH_FORMS
    loops = last.form.handler in _BRANCH_FORMS and last.imm == block.addr
    g.looped = loops and not traced
    if g.looped:
        written = [_inline_writes(i) for i in insns]
        g.invariant = set(range(8)).difference(*(w for w in written if w is not None))
    flt = None
    if isinstance(traced, tuple):
        assert cpu.mmu.hot_filter is not None and cpu.mmu.hot_filter.key == traced
        flt = _Filtered(cpu, block, phys, loops)
    #: The most cycles each instruction can add without calling out (filled by a pass).
    most: list[int] = [0] * n

    #: The lazy flags pending at the end of the last pass emitted (see ``carry``).
    end_flags: list[tuple[str | None, str | None, str | None]] = []

    def emit_pass(checked: bool, carry: tuple[str | None, str | None, str | None] | None = None
                  ) -> list[State]:
        """Emit one pass through the block; returns the issue states ST[0..n]. ``checked``:
        test the cycle limit after every instruction; else only after calls out, and then
        against what the rest of the pass can add (the caller runs an unchecked pass only
        when the whole pass cannot reach the limit without calling out, so stopping early
        at an instruction boundary is the only difference, and the executor resumes there).
        ``carry``: the pass follows a pass of this call, whose flags (these, over its locals)
        it starts from and leaves pending at its end (they are stored at an exit or a call)."""
        # The issue model's static state through the block: ST[j] is the state after j
        # instructions (the one a fault in instruction j leaves is ST[j + 1]).
        u, cu, ust, agp, agc = key if key is not None else (None, None, None, 0, 0)
        ud_none = False  # is the pending U's data address (``ud``) known to be -1?
        states: list[State] = [(u, cu, ust, agp, agc)]
        if carry is None:
            g.forget_flags()
        else:
            g.restore_flags(carry)
        for j, insn in enumerate(insns):
            final = j == n - 1
            rest = sum(most[j + 1:])
            I = g.const(f"I{j}", insn)
            H = g.const(f"H{j}", insn.handler)
            if flt is not None:
                flt.fetch(g, j, insn, checked, sum(most[j:]))
            elif traced:
                _traced_fetch(g, j, insn, phys + insn.addr - block.addr)
            g.ud_before(insn)
            d = insn.issue
            mis = 0
            in_v = False
            bank = 0
            if d is not None and model is not None:
                c = insn.cycles
                if u is not None and pairs(u, d):
                    assert cu is not None
                    in_v = True
                    both_rmw = u.rmw and d.rmw
                    total = cu + c - 1 if both_rmw else max(cu, c)
                    stall = model.agi if not ust and d.addr & agp else 0
                    if d.data and not both_rmw and not ud_none and model.bank_conflict:
                        bank = model.bank_conflict
                        g.ud_flush()
                        b(3, f"if ud >= 0 and not (({_data_linear(g, insn, d)}) ^ ud) & 0x1C: "
                             f"t += {bank}")
                    agc |= d.agi_writes
                    u = None
                    add = total - cu + stall
                    mis = model.misaligned
                else:
                    agp = agc
                    agc = d.agi_writes
                    stall = model.agi if d.addr & agp else 0
                    prefix = d.prefixes * model.prefix
                    if model.pairing and (d.cls == UV or d.cls == PU):
                        u, cu, ust = d, c, stall
                        ud_none = d.data == DATA_NONE
                        if ud_none:
                            g.ud_set("-1", insn, set())
                        else:
                            g.ud_set(_data_linear(g, insn, d), insn, _address_regs(insn, d))
                    else:
                        u = None
                    add = c + stall + prefix
                    mis = 0 if insn.form.handler in _STRING else model.misaligned
                states.append((u, cu, ust, agp, agc))
            else:
                add = insn.cycles
                states.append(states[-1])
            if not checked:
                g.dt += add  # added once, at the end of the pass
            elif add:
                b(3, f"t += {add}")
            most[j] = add + bank + (taken_extra if insn.form.handler == "jcc" else 0)

            def call(depth: int, final: bool = final, j: int = j, mis: int = mis,
                     I: str = I, H: str = H, insn: Insn = insn, rest: int = rest) -> None:
                """The handler, with everything it may read written back first, then the
                checks that only a call can make fail."""
                g.flush_flags(depth)
                if flt is not None:
                    flt.flush(g, depth, j + 1)
                b(depth, f"{g.sync_out()}{g.ud_now()}i = {j}; si = {j + 1}; "
                         "lz = cpu.lazy_flags; ef = cpu.eflags")
                b(depth, f"{g.tsc_out()}; cpu.eip = {insn.next_eip}")
                if final and final_sync:
                    if not traced:
                        b(depth, f"o.hits += {n}")
                    _write_state(g, depth, j + 1, issue)
                if mis:
                    b(depth, f"cpu._mis_cur = {mis}")
                b(depth, f"{H}(cpu, {I})")
                if mis:
                    b(depth, "cpu._mis_cur = 0")
                b(depth, g.tsc_in() + g.sync_in())
                if final:
                    b(depth, "ip = cpu.eip")
                if not (final and final_sync):
                    # Only a call can have demoted the fetch's page-map entry, dropped code
                    # or (in an unchecked pass) added cycles beyond the pass's static bound.
                    check = "cpu._smc != smc"
                    if not traced:
                        check = "cp(vpn) is not e or " + check
                    if not checked:
                        check = f"t + {g.dt + rest} >= c_limit or " + check
                    b(depth, f"if {check}:{g.t_exit()} k = {j + 1}; break")

            g.loop_branch = g.looped and loops and final and not checked
            if flt is None or not flt.mov(g, j, insn, call):
                _body(g, j, insn, call, taken_extra, inline_memory=not traced)
            g.loop_branch = False
            if d is not None and model is not None and d.branch:
                D = g.const(f"D{j}", d)
                if final and final_sync:
                    # A far transfer may change CS (whose base the BTB index reads).
                    b(3, "cpu.tsc = t; cpu.eip = ip")
                    b(3, f"cpu._predict({I}, {D}, {in_v})")
                    b(3, "t = cpu.tsc")
                else:
                    _predict(g, insn, I, D, in_v, None if checked else j + 1)
            if final and final_sync:
                b(3, f"k = {n}; break")
            elif checked:
                b(3, f"if t >= c_limit:{g.flags_now()} k = {j + 1}; break")
        end_flags[:] = [g.snapshot_flags()]
        g.ud_flush()
        if carry is None:
            g.flush_flags(3)
        if g.dt:
            b(3, f"t += {g.dt}")
            g.dt = 0
        return states

    body_start = len(g.lines)
    states = emit_pass(True)
    # End of a pass.
    if loops and _same_entry(states[-1], states[0]):
        checked_pass = g.lines[body_start:]
        del g.lines[body_start:]
        # Only instructions that end blocks without looping can raise an interrupt request
        # or a stop request, so neither is tested here.
        carry: tuple[str | None, str | None, str | None] | None = None
        if traced and flt is None:
            g.lines.extend(checked_pass)
        else:
            # A looped block's unchecked pass follows a pass of this call: it starts from
            # that pass's flags in locals and leaves its own there (the same expressions, or
            # it stores them as the checked pass does). So the first pass is a checked one,
            # which sets the bound the unchecked passes test.
            last_flags = end_flags[0]
            carry = last_flags if g.looped and last_flags[0] is not None else None
            bound = f"c_limit - {sum(most)}"
            mark = len(g.lines)
            b(3, "if t < unchecked:")
            g.base = 1
            g.defer_ud = g.looped
            emit_pass(False, carry)
            # The carried flags are a fixed point (the root of a carry chain is the first
            # INC/DEC's own local in both passes); should a pass ever end otherwise, it is
            # emitted again without carrying.
            if carry is not None and end_flags[0] != carry:
                del g.lines[mark:]
                carry = None
                g.base = 0
                b(3, "if t < unchecked:")
                g.base = 1
                emit_pass(False)
            g.base = 0
            g.defer_ud = False
            b(3, "else:")
            if carry is not None:
                b(4, f"if ran: cpu.lazy_flags = {carry[0]}")  # after an unchecked pass
            g.lines.extend("    " + line for line in checked_pass)
            if carry is not None:
                g.hoist("unchecked = -1")
                g.hoist(f"unch = {bound}")
                b(4, "unchecked = unch")
            else:
                g.hoist(f"unchecked = {bound}")
            if g.looped and last.form.handler == "jcc":
                g.hoist(f"if not cs{n - 1}: unchecked = unch = -1")  # see _body's Jcc
        g.hoist(f"last_pass = left - {2 * n}")
        store = f" cpu.lazy_flags = {carry[0]};" if carry is not None else ""
        b(3, f"if ip != {block.addr} or ran > last_pass:{store} k = {n}; break")
        b(3, f"ran += {n}")
        if issue:
            b(3, "stt = ST2")
    elif not final_sync:
        b(3, f"k = {n}; break")
    body = g.lines[body_start:]
    del g.lines[body_start:]

    b(0, "def xl(cpu, e, vpn, left, c_limit, smc, done):")
    # Traced: the fetch lookup kept with tracers (each fetch is reported after it).
    code_page = "fetch_page" if traced else "code_page"
    for line in (f"cp = cpu.mmu.{code_page}", "dp = cpu.mmu.data_page",
                 "regs = cpu.regs", "seg = cpu.seg", "pages = cpu._code_pages",
                 "ur = 1 << cpu.user", "uw = 4 << cpu.user", "t = cpu.tsc", "ran = 0",
                 "k = 0", "i = si = 0", "lz = ef = None",
                 f"ip = {block.addr if g.looped else last.next_eip}"):
        b(1, line)
    if traced:
        b(1, "mmu = cpu.mmu; tr = mmu.translate; ri = mmu.report_insn")
        b(1, "rf = mmu.report_fetch if mmu.traces_fetch else None")
        b(1, f"us = cpu.user; csmax = seg[1].max_off; l0 = (vpn << 12) | {phys & 0xFFF}")
        if flt is not None:
            flt.prologue(g)
    else:
        # The first fetch of an entry that is not the MRU of its set makes it so (a count
        # and an LRU update); the fetches after it are counts, credited in bulk.
        b(1, "o = e.owner")
        b(1, "if o.__class__ is FW: o.hits += 1; e = cp(vpn); o = e.owner; o.hits -= 1")
    for sg in sorted(g.segs):
        b(1, f"s{sg} = seg[{sg}]; s{sg}b = s{sg}.base; s{sg}lo = s{sg}.min_off; "
             f"s{sg}hi = s{sg}.max_off - 3; s{sg}r = s{sg}.readable; s{sg}w = s{sg}.writable")
    for line in g.hoisted:
        b(1, line)
    if issue:
        b(1, "ud = cpu._pair_u_data")
        b(1, "stt = ST")
    if issue and last.issue is not None and last.issue.branch and not final_sync:
        b(1, "bt = cpu.btb")
        b(1, f"bl = (seg[1].base + {last.addr}) & {MASK32}")
        b(1, "bw = bt._table[bl & (bt.sets - 1)] if bt is not None else None")
    sync_out, sync_in = _loop_locals(g)
    b(1, "try:")
    b(2, "while True:")
    g.lines.extend(body)
    # Exits. A fault, a stopped REP or a host exception in instruction i: i instructions of
    # this pass retired, i + 1 fetched.
    for exc in ("CpuFault as f", "RepStopped", "BaseException"):
        b(1, f"except {exc}:")
        b(2, "cpu._mis_cur = 0")
        if flt is not None:
            flt.pay_data(g, 2)
        depth = 2
        if final_sync and (issue or not traced):
            # The last instruction's fetch and state were written before it ran.
            b(2, f"if i < {n - 1}:")
            depth = 3
        if not traced:
            b(depth, "o.hits += ran + i + 1")
        _write_state(g, depth, "si", issue)
        b(2, "ran += i")
        if exc.startswith("CpuFault"):
            b(2, "cpu._xl_ran = ran")  # if the delivery itself ends in a bus error
            b(2, "cpu._fault_counted(f, ADDRS[i], lz, ef, done + ran)")
            b(2, "return ran")
        elif exc == "RepStopped":
            b(2, "cpu.unretired += 1")  # a step that retired nothing (CPU.unretired)
            b(2, "return ran")
        else:
            b(2, "cpu._xl_ran = ran")
            b(2, "raise")
    if flt is not None:
        flt.pay_data(g, 1)
    if final_sync:
        b(1, f"if k == {n}:")
        b(2, f"return {n}")
    if flt is not None:
        flt.flush(g, 1, "k", end=True)
    b(1, f"{g.sync_out()}ran += k")
    b(1, "cpu.tsc = t")
    b(1, f"cpu.eip = ip if k == {n} else ADDRS[k]")
    if not traced:
        b(1, "o.hits += ran")
    _write_state(g, 1, "k", issue)
    b(1, "return ran")

    g.const("ST", tuple(states))
    end = states[-1]
    g.const("ST2", tuple(st if st[1] is not None else (st[0], end[1], end[2], *st[3:])
                         for st in states))
    source = "\n".join(g.lines) + "\n"
    if g.looped:
        forget = (" " + " = ".join(f"{m}x" for m in sorted(g.memos)) + " = -1"
                  if g.memos else " pass")
        source = (source.replace(SYNC_OUT, sync_out).replace(SYNC_IN, sync_in)
                  .replace(FORGET, forget))
    code = _CODE.get(source)
    if code is None:
        if len(_CODE) >= CODE_MEMO_LIMIT:
            _CODE.clear()
        code = _CODE[source] = compile(source, f"<lavsim block {block.addr:#x}>", "exec")
    exec(code, g.env)
    fn: Translated = g.env["xl"]
    return fn


def _same_entry(a: State, b: State) -> bool:
    """Whether issue state ``a`` at a block's end selects the translation entered with ``b``
    (without a pending U, its cycles and stall do not matter to any decision)."""
    if a[0] is not b[0] or a[3:] != b[3:]:
        return False
    return a[0] is None or a[1:3] == b[1:3]


def _address_regs(insn: Insn, d: Issue) -> set[int]:
    """The registers :func:`_data_linear` reads."""
    if d.data == DATA_OPERAND:
        return {r for r in (insn.base, insn.index) if r >= 0}
    return {4}


def _inline_writes(insn: Insn) -> set[int] | None:
    """The general registers the inline code of ``insn`` (see :func:`_body`) may write; None
    when the instruction is always a call out."""
    name = insn.handler.__name__
    ops = insn.form.operands
    if name in _ALU_RR:
        d = insn.rm if ops == ("r/mv", "rv") else insn.reg
        if name == "cmp_rr" or insn.form.handler == "test":
            return set()
        return {d}
    if name in ("inc_r", "dec_r"):
        return {insn.reg if ops[0] == "+rv" else insn.rm}
    if name in ("mov_load", "mov_load_abs"):
        return {insn.reg}
    if name in ("mov_store", "mov_store_abs") or (
            name in ("jz_jnz", "jcc") and insn.form.handler == "jcc"):
        return set()
    stack = _stack_form(insn)
    if stack is not None:
        return {4} if stack == "push" else {4, insn.reg}
    return None


def _stack_form(insn: Insn) -> str | None:
    """``"push"`` / ``"pop"`` for a PUSH r32 / POP r32 that :mod:`lavsim.cpu.fast`
    specialises (its handler is then ``push_r`` / ``pop_r``: the translation inlines it with
    the same fast-case conditions), else None."""
    form = insn.form
    if (form.handler not in ("push", "pop") or insn.size != 4 or insn.mem
            or form.operands[:1] != ("+rv",)):
        return None
    qualname = insn.handler.__qualname__
    if insn.form.handler == "push" and qualname == "_push.<locals>.push_r":
        return "push"
    if insn.form.handler == "pop" and qualname == "_pop.<locals>.pop_r":
        return "pop"
    return None


def _stack_access(g: _Gen, j: int, insn: Insn, push: bool, call: Callable[[int], None]) -> None:
    """PUSH r32 / POP r32 inline (untraced), as :func:`lavsim.cpu.fast.store32` /
    :func:`~lavsim.cpu.fast.load32` do it: a 32-bit stack segment (B set; else the handler),
    the new (PUSH) or current (POP) ESP inside SS's valid offsets (expand-down segments and
    ESP wrapping included: they are a range test on the wrapped offset), writable (PUSH) or
    readable, an aligned linear address whose page is in the MMU's host page map with the
    access allowed; then the dword, ESP and (POP) the register, in the handler's order (POP
    ESP loads the value popped). A push into a code page reaches the executor
    (``physical_written``, then the self-modifying-code counter is tested); a hit through a
    :class:`~lavsim.mmu.mmu.FastWay` re-tests the code page's entry (and in a looped block
    forgets the data-page memos, as :func:`_memo_access` does). Any other case runs the
    handler, which repeats the checks and raises the fault (#SS, #PF with CR2)."""
    b = g.w
    g.seg_base(2)
    g.hoist("s2d = s2.db")
    stop = f"{g.flags_now()}{g.t_exit()} {g.ud_now()}k = {j + 1}; break"
    esp = g.reg(4)
    b(3, f"of = ({esp} - 4) & {MASK32}" if push else f"of = {esp}")
    b(3, f"if s2d and s2{'w' if push else 'r'} and s2lo <= of <= s2hi:")
    b(4, f"ln = (s2b + of) & {MASK32}")
    b(4, "pe = None if ln & 3 else dp(ln >> 12)")
    b(4, f"if pe is not None and pe.mask & {'uw' if push else 'ur'}:")
    b(5, "po = pe.owner; po.hits += 1")
    if push:
        b(5, f"pe.dwords[(ln & 0xFFF) >> 2] = {g.reg(insn.reg)}; {g.reg_w(4)} = of")
        b(5, "if pages and (pe.base >> 12) in pages:")
        b(6, f"{g.sync_out()}cpu.physical_written(pe.base | (ln & 0xFFF), 4)")
        b(6, f"if cpu._smc != smc:{stop}")
    else:
        b(5, f"{g.reg_w(4)} = (of + 4) & {MASK32}; "
             f"{g.reg_w(insn.reg)} = pe.dwords[(ln & 0xFFF) >> 2]")
    # A hit through a FastWay makes its entry the MRU of its set: in a unified TLB that may
    # demote the code page's entry (and a memoised data page), see _memo_access.
    if g.looped:
        b(5, "if po.__class__ is FW:")
        b(6, f"pass;{FORGET}")
        b(6, f"if cp(vpn) is not e:{stop}")
    else:
        b(5, f"if po.__class__ is FW and cp(vpn) is not e:{stop}")
    b(4, "else:")
    keep = g.snapshot_flags()
    call(5)
    g.restore_flags(keep)  # PUSH and POP leave the flags alone on either path
    b(3, "else:")
    call(4)
    g.restore_flags(keep)


def _loop_locals(g: _Gen) -> tuple[str, str]:
    """A looped block's locals, initialised at the function's entry, and the statements
    that replace :data:`SYNC_OUT` and :data:`SYNC_IN`.

    Between calls out nothing but the block's own code runs, so: its general registers live
    in locals ``R<n>`` (written back to ``cpu.regs`` before every call and at every exit, read
    again after every call); each memo ``m<kind><segment>`` (kind ``r`` loads, ``w`` stores;
    see :func:`_memo_access`) holds the offset of the last page its accesses used whose hit is
    only a count (owner not a :class:`~lavsim.mmu.mmu.FastWay`: the entry is the MRU of its
    set, so the hit changes no LRU order; for stores also not a code page) in ``x`` (-1 for
    none), its dword view ``d``, owner ``o`` and the hits not yet credited to it ``h``; and the
    BTB lookups of the closing branch count in ``bh``. A call out may fill, evict or demote TLB
    entries (or change the BTB): the memos are forgotten after it; so they are after a hit
    through a FastWay (its entry becomes the MRU, which may demote a memoised entry).
    """
    lines = [f"R{n} = regs[{n}]" for n in sorted(g.used)]
    out = [f"regs[{n}] = R{n}" for n in sorted(g.written)]
    back = [f"R{n} = regs[{n}]" for n in sorted(g.used)]
    memos = sorted(g.memos)
    if memos:
        lines.append(" = ".join(f"{m}x" for m in memos) + " = -1")
        lines.append(" = ".join(f"{m}h" for m in memos) + " = 0")
        lines.append(" = ".join(f"{m}o" for m in memos) + " = SINK")
        out.append("; ".join(f"{m}o.hits += {m}h" for m in memos))
        out.append(" = ".join(f"{m}h" for m in memos) + " = 0")
        back.append(" = ".join(f"{m}x" for m in memos) + " = -1")
    if g.btb_memo:
        lines.append("bok = False; bh = 0; bq = bt if bt is not None else SINK")
        out.append("bq.lookups += bh; bh = 0")
        back.append("bok = False")
    for line in lines:
        g.w(1, line)
    return "".join(f"{x}; " for x in out), "".join(f"; {x}" for x in back)


def _write_state(g: _Gen, depth: int, index: int | str, issue: bool) -> None:
    """Write the issue state ``stt[index]`` (and the pending U's data address) back."""
    if not issue:
        return
    g.w(depth, f"st = stt[{index}]")
    g.w(depth, "cpu._pair_u = st[0]; cpu._agi_prev = st[3]; cpu._agi_cur = st[4]")
    g.w(depth, "if st[1] is not None: cpu._pair_u_cycles = st[1]; cpu._pair_u_stall = st[2]")
    g.w(depth, "cpu._pair_u_data = ud")


def _traced_fetch(g: _Gen, j: int, insn: Insn, phys: int) -> None:
    """Emit instruction ``j``'s fetch as the per-instruction path makes it under tracing:
    the ITLB lookup through the host page map or ``MMU.translate`` (which may fault or
    charge a page walk), then the fetch and instruction reports."""
    b = g.w
    depth = 3
    if j == 0:
        b(3, "if ran:")  # from the second pass on (the caller fetched the first)
        depth = 4
    g.flush_flags(depth)
    delta = insn.addr - g.env["ADDRS"][0]
    off = phys & 0xFFF
    b(depth, f"i = {j}; si = {j}; lz = cpu.lazy_flags; ef = cpu.eflags")
    b(depth, "ce = cp(vpn)")
    b(depth, f"if ce is not None and ce.mask & ur: ce.owner.hits += 1; ph = ce.base | {off}")
    b(depth, f"else: cpu.tsc = t; cpu.eip = {insn.addr}; ph = tr(l0 + {delta}, False, us, True); "
             "t = cpu.tsc")
    b(depth, f"if ph != {phys}: cpu._xl_fetched = ({insn.addr}, l0 + {delta}, ph); k = {j}; break")
    # A tracer may read and charge the clock (a board's hierarchy stalls the CPU).
    b(3, "cpu.tsc = t")
    window = f"min({min(15, 0x1000 - off)}, csmax - {insn.addr} + 1)"
    b(3, f"if rf is not None: rf({phys}, {window}, us)")  # None: no tracer wants FETCH
    b(3, f"ri({phys}, {insn.length}, us); t = cpu.tsc")


def _body(g: _Gen, j: int, insn: Insn, call: Callable[[int], None], taken_extra: int,
          inline_memory: bool = True) -> None:
    """Emit the instruction's semantics: inline for the forms :mod:`lavsim.cpu.fast`
    specialises (same fast-case conditions, the handler as the fall-back), else a call;
    memory accesses only with ``inline_memory``."""
    b = g.w
    name = insn.handler.__name__
    ops = insn.form.operands
    if name in _ALU_RR:
        d, s = (insn.rm, insn.reg) if ops == ("r/mv", "rv") else (insn.reg, insn.rm)
        op = _ALU_RR[name]
        a, c, r = f"a{j}", f"c{j}", f"r{j}"
        if s in g.invariant and s != d:
            # A looped block's register that its inline code never writes: its local is the
            # operand for as long as the flags made from it can be read (a call out that may
            # change it stores and forgets them first).
            c = g.reg(s)
            b(3, f"{a} = {g.reg(d)}")
        else:
            b(3, f"{a} = {g.reg(d)}; {c} = {g.reg(s)}")
        if op in "+-":
            b(3, f"{r} = ({a} {op} {c}) & {MASK32}")
            if name != "cmp_rr":
                b(3, f"{g.reg_w(d)} = {r}")
            kind = "ADD" if op == "+" else "SUB"
            g.set_flags(f"({kind}, 4, {r}, {a}, {c})",
                        f"(1 if {r} < {a} else 0)" if op == "+" else f"(1 if {a} < {c} else 0)",
                        f"({a} == {c})" if op == "-" else None)
        else:
            b(3, f"{r} = {a} {op} {c}")
            if insn.form.handler != "test":
                b(3, f"{g.reg_w(d)} = {r}")
            g.set_flags(f"(LOGIC, 4, {r})", "0", f"({r} == 0)")
        return
    if name in ("inc_r", "dec_r"):
        reg = insn.reg if ops[0] == "+rv" else insn.rm
        cf = f"f{j}"
        if g.cf is not None:
            cf = g.cf  # an expression over the previous instruction's locals
        else:
            b(3, "lf = cpu.lazy_flags")
            b(3, f"if lf is None: {cf} = cpu.eflags & 1")
            b(3, f"elif lf[0] == SUB: {cf} = 1 if lf[3] < lf[4] else 0")
            b(3, f"elif lf[0] == ADD: {cf} = 1 if lf[2] < lf[3] else 0")
            b(3, f"elif lf[0] == INC or lf[0] == DEC: {cf} = int(lf[4])")
            b(3, f"elif lf[0] == LOGIC: {cf} = 0")
            b(3, f"else: {cf} = {g.const('carry', _carry)}(cpu)")
        inc = name == "inc_r"
        a, v = f"a{j}", f"r{j}"
        b(3, f"{a} = {g.reg(reg)}; {v} = ({a} {'+' if inc else '-'} 1) & {MASK32}; "
             f"{g.reg_w(reg)} = {v}")
        g.set_flags(f"({'INC' if inc else 'DEC'}, 4, {v}, {a}, {cf})", cf, f"({v} == 0)")
        return
    if inline_memory and name in ("mov_load", "mov_load_abs", "mov_store", "mov_store_abs"):
        if g.looped:
            _memo_access(g, j, insn, name.startswith("mov_load"), call)
            return
        load = name.startswith("mov_load")
        sg = insn.seg
        g.seg_base(sg)
        if insn.base < 0:
            off = str(insn.disp & MASK32)
        elif insn.disp:
            off = f"(regs[{insn.base}] + {insn.disp}) & {MASK32}"
        else:
            off = f"regs[{insn.base}]"  # registers always hold 32-bit values
        b(3, f"of = {off}")
        b(3, f"if s{sg}{'r' if load else 'w'} and s{sg}lo <= of <= s{sg}hi:")
        b(4, f"ln = (s{sg}b + of) & {MASK32}")
        b(4, "pe = None if ln & 3 else dp(ln >> 12)")
        b(4, f"if pe is not None and pe.mask & {'ur' if load else 'uw'}:")
        b(5, "po = pe.owner; po.hits += 1")
        if load:
            b(5, f"regs[{insn.reg}] = pe.dwords[(ln & 0xFFF) >> 2]")
        else:
            b(5, f"pe.dwords[(ln & 0xFFF) >> 2] = regs[{insn.reg}]")
            b(5, "if pages and (pe.base >> 12) in pages:")
            b(6, "cpu.physical_written(pe.base | (ln & 0xFFF), 4)")
            b(6, f"if cpu._smc != smc:{g.flags_now()}{g.t_exit()} k = {j + 1}; break")
        # A hit through a FastWay makes its entry the MRU of its set: in a unified TLB that
        # may demote the code page's entry, whose next fetch must then update the LRU order.
        b(5, f"if po.__class__ is FW and cp(vpn) is not e:{g.flags_now()}{g.t_exit()} "
             f"k = {j + 1}; break")
        b(4, "else:")
        keep = g.snapshot_flags()
        call(5)
        g.restore_flags(keep)  # MOV leaves the flags alone on either path
        b(3, "else:")
        call(4)
        g.restore_flags(keep)
        return
    stack = _stack_form(insn) if inline_memory else None
    if stack is not None:
        _stack_access(g, j, insn, stack == "push", call)
        return
    if name in ("jz_jnz", "jcc") and insn.form.handler == "jcc":
        cc = insn.cc
        if cc in (4, 5) and g.zf is not None and g.looped:
            taken = g.zf if cc == 4 else f"not {g.zf}"  # nothing reads tk after
        elif cc in (4, 5) and g.zf is not None:
            b(3, f"tk = {g.zf}" if cc == 4 else f"tk = not {g.zf}")
            taken = "tk"
        elif name == "jz_jnz":
            g.flush_flags(3)
            b(3, "lf = cpu.lazy_flags")
            b(3, f"if lf is not None and lf[0] == SUB: tk = (lf[3] == lf[4]) == {cc == 4}")
            b(3, f"else: tk = condition(cpu, {cc})")
            taken = "tk"
        else:
            g.flush_flags(3)
            b(3, f"tk = condition(cpu, {cc})")
            taken = "tk"
        if g.loop_branch:
            # The closing branch of a looped block's unchecked pass, which runs only when
            # the target is inside CS (``cs`` is hoisted into the bound) and starts with ``ip``
            # at the loop's start: only falling through changes it.
            if taken_extra:
                b(3, f"if {taken}: t += {taken_extra}")
                b(3, f"else: ip = {insn.next_eip}")
            else:
                falls = taken[4:] if taken.startswith("not ") else f"not {taken}"
                b(3, f"if {falls}: ip = {insn.next_eip}")
            g.hoist(f"cs{j} = seg[1].min_off <= {insn.imm} <= seg[1].max_off")
            return
        b(3, f"if {taken}:")
        b(4, f"if not cs{j}:")
        g.hoist(f"cs{j} = seg[1].min_off <= {insn.imm} <= seg[1].max_off")
        keep = g.snapshot_flags()
        call(5)  # raises #GP(0)
        g.restore_flags(keep)
        b(4, "else:")
        b(5, f"ip = {insn.imm}" + (f"; t += {taken_extra}" if taken_extra else ""))
        b(3, "else:")
        b(4, f"ip = {insn.next_eip}")
        return
    call(3)
    g.forget_flags()


def _predict(g: _Gen, insn: Insn, I: str, D: str, in_v: bool, stop: int | None) -> None:
    """The BTB lookup after a branch (``CPU._predict``): inline when the branch's entry is the
    most recently used of its set and already saturated in the outcome's direction (the lookup
    then changes nothing but the lookup count), else the executor's method."""
    b = g.w
    depth = 3
    if g.looped:
        g.btb_memo = True
        # ``bok``: the last lookup found the branch's entry MRU and saturated taken; only a
        # call out (``_predict`` among them) can change that. The lookups count in ``bh``.
        b(3, f"if bok and ip != {insn.next_eip}:")
        b(4, "bh += 1")
        b(3, "else:")
        depth = 4
        b(4, f"tk = ip != {insn.next_eip}")
        b(4, "if bw and bw[-1][0] == bl and bw[-1][1] == (3 if tk else 0):")
        b(5, "bh += 1; bok = tk")
    else:
        b(3, f"tk = ip != {insn.next_eip}")
        b(3, "if bw and bw[-1][0] == bl and bw[-1][1] == (3 if tk else 0):")
        b(4, "bt.lookups += 1")
    b(depth, "else:")
    g.flush_flags(depth + 1)
    b(depth + 1, f"{g.tsc_out()}; cpu.eip = ip")
    b(depth + 1, f"cpu._predict({I}, {D}, {in_v})")
    b(depth + 1, g.tsc_in() + ("; bok = False" if g.looped else ""))
    if stop is not None:  # an unchecked pass: a mispredict penalty may reach the limit
        b(depth + 1, f"if t + {g.dt} >= c_limit:{g.t_exit()} {g.ud_now()}k = {stop}; break")


def _memo_access(g: _Gen, j: int, insn: Insn, load: bool, call: Callable[[int], None]) -> None:
    """An aligned MOV load or store in a looped block (see :func:`_loop_locals`): through the
    memo of its kind and segment when the offset falls in the memoised page, else through the
    segment check and the host page map, whose page becomes the memo when a hit on it is only
    a count and the whole page lies inside the segment's limits."""
    b = g.w
    sg = insn.seg
    g.seg_base(sg)
    if insn.base < 0:
        off = str(insn.disp & MASK32)
    elif insn.disp:
        off = f"({g.reg(insn.base)} + {insn.disp}) & {MASK32}"
    else:
        off = g.reg(insn.base)  # registers always hold 32-bit values
    # The memo: offset of the page (-1: none), its dword view, owner and uncredited hits.
    m = f"m{'r' if load else 'w'}{sg}"
    g.memos.add(m)
    ok = "r" if load else "w"
    lo, hi = f"s{sg}{ok}lo", f"s{sg}{ok}hi"
    g.hoist(f"{lo}, {hi} = (s{sg}lo, s{sg}hi) if s{sg}{ok} else (1, 0)")
    # Offsets map page by page onto linear pages only when the base is page-aligned.
    g.hoist(f"s{sg}pa = not s{sg}b & 0xFFF")
    reg = insn.reg
    stop = f"{g.flags_now()}{g.t_exit()} {g.ud_now()}k = {j + 1}; break"

    def access(view: str, item: str) -> str:
        if load:
            return f"{g.reg_w(reg)} = {view}[{item}]"
        return f"{view}[{item}] = {g.reg(reg)}"

    b(3, f"of = {off}")
    b(3, f"if of & 0xFFFFF003 == {m}x:")
    b(4, f"{access(m + 'd', '(of & 0xFFF) >> 2')}; {m}h += 1")
    b(3, f"elif {lo} <= of <= {hi}:")
    b(4, f"ln = (s{sg}b + of) & {MASK32}")
    b(4, "pe = None if ln & 3 else dp(ln >> 12)")
    b(4, f"if pe is not None and pe.mask & {'ur' if load else 'uw'}:")
    b(5, "po = pe.owner")
    # A hit through a FastWay makes its entry MRU, which may demote a memoised page or (in a
    # unified TLB) the code page's entry; a store into a code page must reach the executor.
    memo = f"po.__class__ is not FW and s{sg}pa and {lo} <= of & 0xFFFFF000 and of | 0xFFC <= {hi}"
    if not load:
        memo += " and not (pages and (pe.base >> 12) in pages)"
    b(5, f"if {memo}:")
    b(6, f"{m}o.hits += {m}h; {m}o = po; {m}h = 1; {m}x = of & 0xFFFFF000; {m}d = pe.dwords")
    b(6, access(m + "d", "(of & 0xFFF) >> 2"))
    b(5, "else:")
    b(6, "po.hits += 1")
    b(6, access("pe.dwords", "(ln & 0xFFF) >> 2"))
    b(6, f"if po.__class__ is FW:{FORGET}")
    if not load:
        b(6, "if pages and (pe.base >> 12) in pages:")
        b(7, f"{g.sync_out()}cpu.physical_written(pe.base | (ln & 0xFFF), 4)")
        b(7, f"if cpu._smc != smc:{stop}")
    b(6, f"if cp(vpn) is not e:{stop}")
    b(4, "else:")
    keep = g.snapshot_flags()
    call(5)
    g.restore_flags(keep)  # MOV leaves the flags alone on either path
    b(3, "else:")
    call(4)
    g.restore_flags(keep)


_MOVS = ("mov_load", "mov_load_abs", "mov_store", "mov_store_abs")


def _inline_form(insn: Insn) -> bool:
    """Does :func:`_body` (or :meth:`_Filtered.mov`) inline ``insn``'s usual case (no call)?"""
    name = insn.handler.__name__
    return (name in _ALU_RR or name in ("inc_r", "dec_r") or name in _MOVS
            or (name in ("jz_jnz", "jcc") and insn.form.handler == "jcc"))


class _Filtered:
    """The filtered variant's fetches, data accesses and counters (the MMU's
    :class:`~lavsim.mmu.mmu.AccessFilter` of the only tracer, a board's hierarchy).

    Every instruction's ``INSN`` and every inlined MOV's ``READ``/``WRITE`` is tested against
    the filter inline (the counted case) and reported to the filter's handler otherwise (with
    the TSC the per-instruction path has there), in the per-instruction path's order. On top
    of that, the generated function keeps a flag ``chk``: False while two facts hold that make
    a fetch change nothing but counters -- the code page's fetch entry is ``fe`` (its frame,
    its permission, and the modelled ITLB entry the MRU of its set after the hit credited at
    the check) and every code line of the block is hot in the filter. While ``chk`` is False a
    fetch does nothing: its ITLB hit and its hot-line hits are owed and paid, as counts, before
    the next call of any kind and at the exit (``flush``), from positions: ``p0`` the number
    of fetches made at the check (this call's instructions, ``ran + j``) and ``q0`` the
    code-line hits made by then. Why the facts last: only a call changes the TLBs or the
    caches (an inlined access is a counted case, or a hit on a data page, whose credit touches
    only the data TLB when the TLBs are split: with one TLB for both, the facts are never
    taken and every fetch is checked); every call sets ``chk`` and the next fetch checks again
    (and retakes the facts when its instruction is inlined). In a pass that tests the cycle
    limit only after calls (the unchecked pass of a looping block), a checked fetch first tests
    the limit at its boundary, and the facts are retaken only while the rest of the pass
    cannot reach the limit, so the limit is met at the same boundary as on the
    per-instruction path.
    """

    def __init__(self, cpu: CPU, block: Block, phys: int, loops: bool) -> None:
        f = cpu.mmu.hot_filter
        self.dsh = f.data_shift
        self.addr = block.addr
        self.phys = phys
        self.loops = loops
        #: Does a data access leave the fetch side's TLB alone?
        self.split = cpu.mmu.config.itlb is not None
        self.n = len(block.entries)
        csh = f.code_shift
        self.lines: list[tuple[int, ...]] = []
        for ent in block.entries:
            p = phys + ent[1].addr - block.addr
            self.lines.append(tuple(range(p >> csh, ((p + ent[1].length - 1) >> csh) + 1)))
        #: Code-line hits of the first j instructions of a pass.
        self.pre = [0]
        for lines in self.lines:
            self.pre.append(self.pre[-1] + len(lines))
        self.all_lines = sorted({line for lines in self.lines for line in lines})
        # Known before any source is emitted: a call before a store in the block resets the
        # store's memo too.
        names = [ent[1].handler.__name__ for ent in block.entries]
        self.loads = any(name.startswith("mov_load") for name in names)
        self.stores = any(name.startswith("mov_store") for name in names)

    @property
    def forget(self) -> str:
        """Source appended to a call in a fetch: what the call may have changed."""
        return "; wl = ll = -1; wok = False" if self.loads or self.stores else ""

    def flush(self, g: _Gen, depth: int, fetched: int | str, end: bool = False) -> None:
        """Pay what is owed for ``fetched`` fetches of this pass and check again from the next
        fetch on (``end``: the exit, where nothing follows)."""
        if self.loads or self.stores:
            g.w(depth, "wl = ll = -1; wok = False")  # a call may clean, evict or fill lines
        if not self.split:
            return
        n, tot = self.n, self.pre[-1]
        pre = f"PRE[{fetched}]" if isinstance(fetched, str) else str(self.pre[fetched])
        g.w(depth, f"if not chk: fe.owner.hits += ran + {fetched} - p0; "
                   f"cc.read_hits += ran // {n} * {tot} + {pre} - q0"
                   + ("" if end else "; chk = True"))

    def pay_data(self, g: _Gen, depth: int) -> None:
        """Add the data-line hits counted in locals (at every exit)."""
        if self.loads:
            g.w(depth, "dc.read_hits += nr")
        if self.stores:
            g.w(depth, "dc.write_hits += nw")

    def prologue(self, g: _Gen) -> None:
        b = g.w
        g.const("PRE", tuple(self.pre))
        b(1, "flt = mmu.hot_filter; chot = flt.code_hot; cc = flt.code_counts; hin = flt.insn")
        b(1, "chk = True; fe = None; p0 = q0 = 0")
        if self.loads or self.stores:
            b(1, "fp = mmu.frame_page; dhot = flt.data_hot; dc = flt.data_counts")
        if self.loads:
            b(1, "hr = flt.read; nr = 0")
        if self.loads or self.stores:
            b(1, "wl = ll = -1; wok = False")
        if self.stores:
            b(1, "hw = flt.write; dwb = flt.write_back; dmsk = flt.set_mask; "
                 "dways = flt.ways; wg0, wg1 = flt.write_guards; nw = 0")

    def fetch(self, g: _Gen, j: int, insn: Insn, checked: bool, rest: int) -> None:
        """Emit instruction ``j``'s fetch: nothing while ``chk`` is False; else the traced
        variant's ITLB lookup (the caller made the first pass's first), the ``INSN`` test
        or report, and the facts taken again (``rest``: the most cycles the pass may add from
        this boundary on without a call)."""
        b = g.w
        ph = self.phys + insn.addr - self.addr
        delta = insn.addr - self.addr
        b(3, "if chk:")
        depth = 4
        if j == 0:
            b(4, "if ran:")  # from the second pass on
            depth = 5
        if checked == (j == 0):
            # The boundary's limit test: made by the instruction before, except in an
            # unchecked pass, and at the start of a checked pass after an unchecked one.
            now = f"t + {g.dt}" if g.dt else "t"
            b(depth, f"if {now} >= c_limit:{g.flags_now()}{g.t_exit()} k = {j}; break")
        b(depth, f"i = {j}; si = {j}; ce = cp(vpn)")
        b(depth, f"if ce is not None and ce.mask & ur: ce.owner.hits += 1; ph = ce.base | "
                 f"{ph & 0xFFF}")
        b(depth, f"else:{g.flags_now()} lz = cpu.lazy_flags; ef = cpu.eflags; {g.tsc_out()}; "
                 f"cpu.eip = {insn.addr}; ph = tr(l0 + {delta}, False, us, True); {g.tsc_in()}"
                 + self.forget)
        b(depth, f"if ph != {ph}: cpu._xl_fetched = ({insn.addr}, l0 + {delta}, ph);"
                 f"{g.flags_now()}{g.t_exit()} k = {j}; break")
        lines = self.lines[j]
        b(4, f"if {' and '.join(f'{line} in chot' for line in lines)}: "
             f"cc.read_hits += {len(lines)}")
        b(4, f"else: {g.tsc_out()}; hin({ph}, {insn.length}); {g.tsc_in()}{self.forget}")
        if self.split and _inline_form(insn) and (j < self.n - 1 or self.loops):
            hot = " and ".join(f"{line} in chot" for line in self.all_lines)
            room = "" if checked else f" and t + {g.dt + rest} < c_limit"
            b(4, "fe = cp(vpn)")
            b(4, f"if fe is not None and fe.mask & ur and fe.base == {ph & ~0xFFF} and {hot}"
                 f"{room}: chk = False; p0 = ran + {j + 1}; "
                 f"q0 = ran // {self.n} * {self.pre[-1]} + {self.pre[j + 1]}"
                 + ("; wok = dwb and not wg0 and not wg1" if self.stores else ""))

    def mov(self, g: _Gen, j: int, insn: Insn, call: Callable[[int], None]) -> bool:
        """Emit an aligned 32-bit MOV load or store through the data page map with its
        report to the filter inline (as the tracing MMU makes it: the TLB credit, the
        report, the access); False if ``insn`` is not one."""
        name = insn.handler.__name__
        if name not in _MOVS:
            return False
        b = g.w
        load = name.startswith("mov_load")
        sg = insn.seg
        g.seg_base(sg)
        if insn.base < 0:
            off = str(insn.disp & MASK32)
        elif insn.disp:
            off = f"(regs[{insn.base}] + {insn.disp}) & {MASK32}"
        else:
            off = f"regs[{insn.base}]"
        b(3, f"of = {off}")
        b(3, f"if s{sg}{'r' if load else 'w'} and s{sg}lo <= of <= s{sg}hi:")
        b(4, f"ln = (s{sg}b + of) & {MASK32}")
        b(4, "pe = None if ln & 3 else fp(ln >> 12)")
        b(4, f"if pe is not None and pe.mask & {'ur' if load else 'uw'}:")
        # Memos by linear line (``ln >> shift``: the same physical line while no call can
        # have changed the TLBs), forgotten at every call: ll, a line found hot since; wl, a
        # line made dirty since with the guards empty (still the hot dirty line of its set:
        # only a call evicts or cleans a line or records a PCD/PWT page). wok: the guards
        # were empty at the last check of the facts.
        dsh = self.dsh
        b(5, "pe.owner.hits += 1")
        if load:
            b(5, f"if ln >> {dsh} == ll: nr += 1")
            b(5, f"elif (pe.base | (ln & 0xFFF)) >> {dsh} in dhot: nr += 1; ll = ln >> {dsh}")
        else:
            b(5, f"if ln >> {dsh} == wl: nw += 1")
            b(5, f"elif (wok or (dwb and not wg0 and not wg1)) and "
                 f"(pe.base | (ln & 0xFFF)) >> {dsh} in dhot:")
            b(6, f"dl = (pe.base | (ln & 0xFFF)) >> {dsh}; nw += 1; "
                 f"dc.dirty[(dl & dmsk) * dways + dhot[dl]] = True; wl = ll = ln >> {dsh}")
        b(5, "else:")
        self.flush(g, 6, j + 1)
        b(6, f"i = {j}; si = {j + 1}; {g.tsc_out()}; "
             f"{'hr' if load else 'hw'}(pe.base | (ln & 0xFFF), 4); {g.tsc_in()}")
        if load:
            b(5, f"regs[{insn.reg}] = pe.dwords[(ln & 0xFFF) >> 2]")
        else:
            b(5, f"pe.dwords[(ln & 0xFFF) >> 2] = regs[{insn.reg}]")
            b(5, "if pages and (pe.base >> 12) in pages:")
            b(6, "cpu.physical_written(pe.base | (ln & 0xFFF), 4)")
            b(6, f"if cpu._smc != smc:{g.flags_now()}{g.t_exit()} k = {j + 1}; break")
        b(4, "else:")
        keep = g.snapshot_flags()
        call(5)
        g.restore_flags(keep)  # MOV leaves the flags alone on either path
        b(3, "else:")
        call(4)
        g.restore_flags(keep)
        return True
