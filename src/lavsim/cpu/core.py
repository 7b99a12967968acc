"""The executor: fetch, decode (through a decoded-instruction cache) and execute.

:class:`CPU` is the :class:`~lavsim.cpu.state.CpuState` that runs guest code. One instruction:

1. Fetch and decode at CS:EIP. The instruction's first page is translated as an instruction
   fetch through the MMU (one modelled TLB lookup per instruction, plus one for the next page
   if the instruction continues into it); see :mod:`lavsim.cpu.decoder`.
2. ``cpu.tsc += insn.cycles`` (the form's base cost), ``cpu.eip = insn.next_eip``, then
   ``insn.handler(cpu, insn)``. Handlers that transfer control assign ``cpu.eip``; handlers add
   dynamic cycles to ``cpu.tsc`` themselves (taken branches, REP items, gate paths).
3. On a :class:`~lavsim.faults.CpuFault` (from fetch, decode or the handler) the executor puts
   back EIP (the faulting instruction's offset) and the status flags as they were before the
   instruction, then calls :func:`lavsim.cpu.interrupts.handle_fault`. Handlers keep every other
   register unchanged until nothing can fault any more, so every fault is restartable. The
   base cycles of a faulting instruction stay charged; the delivery is charged by
   ``handle_fault``.
4. A physical access outside installed memory (:class:`~lavsim.errors.MemoryAccessError`, a
   bus error, also while a fault is being delivered) leaves the CPU as it is: the instruction
   is not counted, every instruction retired before it is (once), on every path.

Between instructions: a pending external interrupt (``irq_pending``) is delivered through
:func:`lavsim.cpu.interrupts.deliver_external` when IF = 1; a halted CPU (HLT sets ``halted``)
stops the run unless an interrupt wakes it; ``shutdown`` (set by a triple fault) stops it.

**Interruptible REP.** A REP string instruction may stop between iterations when the TSC
reaches ``_rep_until`` (set by :meth:`CPU.run` to its cycle limit, by ``Machine.run`` to the
earlier of its budget and the next device event): it leaves EIP at itself and raises
:class:`~lavsim.cpu.ops_string.RepStopped`, which the executor catches without counting the
instruction as retired and without touching EIP or the flags (they describe the items done).

**The decoded-instruction cache** is a host-side speed cache (it changes no simulated result):
decoded instructions keyed by the *physical* address of their first byte, valid only for the
same EIP, a CS limit that still covers the whole instruction and a 32-bit CS, and dropped when
the profile changes. It never holds an instruction that crosses a page. The fetch translation
is made on every instruction, hit or miss, so the modelled TLB sees exactly what it sees
without the cache. Guest writes made through :meth:`CPU.write_mem` (every instruction's data
writes), the REP bulk path, far-transfer and interrupt stack frames and the processor's
Accessed/busy-bit write-backs drop the cached instructions, blocks and translations decoded
from any byte written (only those: data may share a page with code), so self-modifying code
is seen at the next fetch. Writes made around the CPU (host-side loaders
writing :class:`~lavsim.memory.PhysicalMemory`, page-table A/D updates) must be followed by
:meth:`CPU.flush_decode_cache` if they can change code that has already run. While a tracer
is attached to the MMU (:meth:`lavsim.mmu.mmu.MMU.add_tracer`) only traced translations run
blocks (and, in units, the traced block loop: :meth:`CPU._traced_block`, each instruction's
fetch made and reported as below), and each cache hit is reported to it as the fetch window a
fresh decode would read
(the cache holds no instruction that crosses a page, so that is one window on one page), so
the tracer sees every instruction's fetch (tested at each :meth:`CPU.run` call).

**Fast paths** (``CPU(fast=True)``, the default; ``fast=False`` turns them off, with the same
simulated results -- tests/cpu/test_fast_paths.py compares cycles, registers, memory, faults, TLB
contents in LRU order and statistics):

* *decode-time specialisations* (:mod:`lavsim.cpu.fast`): the hottest forms (MOV r32/m32,
  ALU r32 with r32/m32, INC/DEC r32, PUSH/POP r32, CALL rel32, RET) get a body with the
  segment check and the MMU's host page map inlined, falling back to the generic handler for
  anything else;
* *blocks* (``run`` only, with the decoded-instruction cache on): a straight-line run of
  instructions in one page, ending after the first instruction that is not in
  :data:`STRAIGHT` (control transfers, segment and system instructions, I/O, HLT, STI...),
  cached by the physical address of its first byte. ``run`` executes a block's instructions
  back to back, skipping the between-instruction tests that only a block's last instruction
  (or a fault) can make true. The modelled fetch is unchanged: every instruction still makes
  its one ITLB lookup, served by the same host page-map entry and credited to the same TLB as
  in the per-instruction path; when that entry is gone (a data access demoted it in a unified
  TLB), the block stops and the per-instruction path fetches the slow way. The instruction
  and cycle limits are tested after every instruction; a write that drops cached code
  (self-modifying code, also through an alias, the REP bulk path or ``physical_written``)
  stops the running block at once. :meth:`CPU.step` runs one instruction as before
  (specialisations included), so a caller stepping one instruction at a time sees no blocks.
* *translations* (``translate=True``, the default, with ``fast``): a block entered more than
  :data:`TRANSLATE_AFTER` times runs as one compiled Python function
  (:mod:`lavsim.cpu.translate`, which says what it checks and what invalidates it); under
  tracing a traced variant starts from the per-instruction path's fetch. The single place
  deciding how a block runs is marked in :meth:`CPU.run`.

**Block stops** (:meth:`CPU.set_block_stops`, for ``Machine.run``'s block observers and
breakpoints): :meth:`CPU.run` executes one block (or one instruction) per call, blocks cut at
given page offsets; :attr:`CPU.unretired` counts the steps that retired nothing (a fault
delivered, a REP stopped), so the caller knows each call's steps.

**Shared decodes**: a decoded instruction lying in one page is shared with every CPU of the
process with the same profile and ``fast`` setting, taken only when memory holds the bytes it
was decoded from (see :func:`_shared_table` for why that is exact).

:meth:`CPU.flush_decode_cache` drops every host-side cache of the CPU (instructions and
blocks); call it after writing code around the CPU or restoring saved state. The two caches
together hold at most ``code_cache_limit`` decoded instructions (:data:`CODE_CACHE_LIMIT`):
a new entry past it drops them all first, so guest code entered at every byte offset cannot
grow host memory without bound.

**Page-walk cost.** The CPU is the MMU's listener: every modelled TLB miss (and every walk made
to set a Dirty flag) adds ``walk_reads * page_walk.read + ad_writes * page_walk.ad_write`` to
the TSC.
"""

from __future__ import annotations

from collections.abc import Mapping
from threading import get_ident
from typing import TYPE_CHECKING, Any, cast

from lavsim.cpu.decoder import Fetch, decode, decode_fetched
from lavsim.cpu.fast import specialise
from lavsim.cpu.insn import Insn, Issue
from lavsim.cpu.operands import Handler
from lavsim.cpu.ops_string import RepStopped
from lavsim.cpu.pairing import (
    BRANCH_DIRECT,
    BTB,
    PU,
    PV,
    UV,
    check_issue_state,
    data_linear,
    new_btb,
    pairs,
)
from lavsim.cpu.state import IF, MASK32, NEVER, SS, CpuState
from lavsim.cpu.translate import Key, Traced, Translated, entry_key
from lavsim.cpu.translate import translate as translate_block
from lavsim.errors import MemoryAccessError
from lavsim.faults import SS as SS_VECTOR
from lavsim.faults import CpuFault, gp

if TYPE_CHECKING:
    from lavsim.mmu.mmu import MMU
    from lavsim.mmu.segmentation import SegmentCache
    from lavsim.timing import TimingProfile

_CS = 1
_PG = 1 << 31

#: Most instructions in one block (bounds the work of decoding ahead).
MAX_BLOCK = 64

#: Most decoded instructions the CPU's host-side caches hold (the decoded-instruction cache
#: and the blocks together, each block counting its instructions): when a new entry would
#: pass it, every cached instruction and block is dropped (as by
#: :meth:`CPU.flush_decode_cache`) and the cache fills again. Guest code entered at every byte
#: offset of its pages cannot grow host memory beyond about 20 MB this way (~300 bytes per
#: decoded instruction); the kernel's working set is a small fraction of it.
CODE_CACHE_LIMIT = 1 << 16

#: Handlers that may sit in the middle of a block: they change only general registers, the
#: status flags, DF and memory, never EIP (other than falling through), CS, CPL, IF, the
#: paging controls, the TLBs (except through ordinary data accesses), the TSC (other than
#: through page walks) or device state, and never read the TSC. Any other instruction ends
#: its block, so everything the run loop tests between instructions (a pending interrupt,
#: HLT, shutdown, the CS limit, CPL) can change only at a block's end or through a fault.
STRAIGHT = frozenset({
    "mov", "movzx", "movsx", "lea", "xchg", "push", "pop", "pushad", "popad", "pushfd",
    "cdq", "cwde", "add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test", "inc", "dec",
    "not", "neg", "mul", "imul", "div", "idiv", "imul2", "imul3", "rol", "ror", "rcl", "rcr",
    "shl", "shr", "sar", "setcc", "cmovcc", "nop", "cld", "std", "clc", "stc", "cmc", "lahf",
    "sahf", "bswap", "leave", "enter", "movs", "stos", "lods", "cmps", "scas",
})


_STRING = frozenset({"movs", "stos", "lods", "cmps", "scas"})

#: Most entries of one shared decode table, and most tables (see :func:`_shared_table`).
SHARED_DECODES_LIMIT = 1 << 16
_SHARED_TABLES_MAX = 8

#: Decoded instructions shared by the CPUs of this process: (id(profile), fast, thread) ->
#: (the profile, held so that its id is not reused; (phys << 32 | EIP) -> (insn, its bytes)).
_shared: dict[tuple[int, bool, int], tuple[Any, dict[int, tuple[Insn, bytes]]]] = {}


def _shared_table(profile: TimingProfile, fast: bool) -> dict[int, tuple[Insn, bytes]]:
    """The shared decodes of ``profile`` with specialisations on or off.

    Why sharing is exact: a decoded instruction that lies in one page is a pure function of
    its bytes, its EIP, the profile (base cycles, issue descriptor) and ``fast`` (the handler
    specialisation); the decoder reads no other state for it (faults are never cached). A
    hit is taken only when the bytes in memory now equal the bytes it was decoded from. Its
    one field written after decode, the pairing memo ``vprev``/``vok``, caches
    :func:`~lavsim.cpu.pairing.pairs`, a pure function of two descriptors, so whichever CPU
    wrote it, it holds the value every CPU would compute; the table is per thread, so the memo's
    two fields are never written by one CPU while another reads them. Bounded: a full table is
    emptied.
    """
    key = (id(profile), fast, get_ident())
    entry = _shared.get(key)
    if entry is None or entry[0] is not profile:
        if len(_shared) >= _SHARED_TABLES_MAX:
            _shared.clear()
        entry = _shared[key] = (profile, {})
    return entry[1]


class _BlockTable(dict[tuple[int, frozenset[int] | None], tuple[int, tuple[Any, ...], bytes]]):
    """Shared blocks: (phys << 32 | EIP, cut offsets) -> (end, entries, the bytes they and the
    window after them were decoded from); ``held``: the instructions stored (an upper bound),
    at most :data:`SHARED_DECODES_LIMIT` (a full table is emptied), so that hostile code
    cannot grow host memory through it."""

    held = 0


#: Blocks shared by the CPUs of this process, as the decodes are: (id(profile), fast, thread)
#: -> (the profile, its table); see :meth:`CPU._shared_block`.
_shared_blocks: dict[tuple[int, bool, int], tuple[Any, _BlockTable]] = {}


def _shared_block_table(profile: TimingProfile, fast: bool) -> _BlockTable:
    """The shared blocks of ``profile`` with specialisations on or off (at most
    ``_SHARED_TABLES_MAX`` tables, as for :func:`_shared_table`)."""
    key = (id(profile), fast, get_ident())
    entry = _shared_blocks.get(key)
    if entry is None or entry[0] is not profile:
        if len(_shared_blocks) >= _SHARED_TABLES_MAX:
            _shared_blocks.clear()
        entry = _shared_blocks[key] = (profile, _BlockTable())
    return entry[1]


#: A block is translated on its entry after this many (compiling costs about as much as
#: running a short block a few hundred times; code run once or twice stays in the block loop).
TRANSLATE_AFTER = 16

#: Most translations of one block (one per issue state it is entered with).
TRANSLATIONS_PER_BLOCK = 4

#: What one translated instruction counts for against ``code_cache_limit`` (a compiled
#: function holds several times the host memory of a decoded instruction).
TRANSLATION_WEIGHT = 4


class CPU(CpuState):
    """An IA-32 core that executes guest code (see the module docstring).

    ``decode_cache`` turns the decoded-instruction cache on (default) or off; both give the
    same simulated results.
    """

    def __init__(
        self,
        mmu: MMU,
        profile: TimingProfile,
        decode_cache: bool = True,
        fast: bool = True,
        translate: bool = True,
    ) -> None:
        super().__init__(mmu, profile)
        #: One-line report once a triple fault has shut the processor down (else None).
        self.shutdown: str | None = None
        #: The structured report of that triple fault (set by ``lavsim.cpu.interrupts``).
        self.shutdown_report: Any = None
        self.decode_cache = decode_cache
        #: Decode-time fast specialisations and block execution (see the module docstring).
        self.fast = fast
        self.far_fast = fast
        #: Hot blocks compiled into Python functions (:mod:`lavsim.cpu.translate`; needs
        #: ``fast``); False runs them through the block loop, with the same results.
        self.translate = translate
        #: Instructions a translated block retired before a host exception left it.
        self._xl_ran = 0
        #: (EIP, linear, physical) of a fetch a traced translation made and left to run.
        self._xl_fetched: tuple[int, int, int] | None = None
        self._icache: dict[int, Insn] = {}
        self._blocks: dict[int, Block] = {}
        #: Physical page -> {key of ``_icache``/``_blocks`` decoded from it: physical end
        #: (exclusive) of the bytes that entry was decoded from} (see :meth:`physical_written`).
        self._code_pages: dict[int, dict[int, int]] = {}
        #: Physical page -> a byte map of the page, 1 where some cached entry was decoded
        #: from (a superset: bytes stay marked until the page holds no entry), so a write
        #: beside code is told from a write over code without scanning the entries.
        self._code_cover: dict[int, bytearray] = {}
        #: Decoded instructions held by ``_icache`` and ``_blocks`` (and keys recorded in
        #: ``_code_pages``), at most ``code_cache_limit`` (see :data:`CODE_CACHE_LIMIT`).
        self._cached = 0
        self.code_cache_limit = CODE_CACHE_LIMIT
        #: Bumped whenever cached code is dropped, so a running block stops at once.
        self._smc = 0
        self._cache_profile = profile
        self._walk_read = profile.table["page_walk.read"]
        self._walk_ad = profile.table["page_walk.ad_write"]
        #: Set by :meth:`request_stop`: the running :meth:`run` returns ``"stopped"`` at the
        #: next instruction boundary it tests (host-side, not simulated state).
        self._stop_run = False
        #: Host-side: steps that ended without retiring an instruction (a fault delivered,
        #: a REP stopped between iterations); see set_block_stops.
        self.unretired = 0
        #: See :meth:`set_block_stops` (None: run() as usual).
        self.block_stops: frozenset[int] | None = None
        #: Page offsets every cached block is cut at (see set_block_stops).
        self._blocks_cut: frozenset[int] = frozenset()
        mmu.listener = self
        # The issue model (simulated state: checkpointed; see _issue_run).
        self._issue = profile.issue
        self._misaligned = 0 if profile.issue is None else profile.issue.misaligned
        #: The misalignment penalty while the current instruction runs (0 outside
        #: _issue_run and for string instructions, whose bulk path cannot see alignment).
        self._mis_cur = 0
        #: The branch target buffer of the issue model (None without one).
        self.btb: BTB | None = new_btb(profile.issue)
        self._pair_u: Issue | None = None
        self._pair_u_cycles = 0
        self._pair_u_stall = 0
        self._pair_u_data = -1
        self._agi_prev = 0
        self._agi_cur = 0
        #: Host-side: when a list, every instruction issued under the issue model appends
        #: ``(eip, pipe, issue tsc, stalls)`` (``lavsim cycles``); None: nothing recorded.
        self.issue_log: list[tuple[int, str, int, tuple[tuple[str, int], ...]]] | None = None

    # --- MMU events -------------------------------------------------------------------------

    def on_tlb_miss(self, fetch: bool, linear: int, walk_reads: int, ad_writes: int) -> None:
        """A modelled TLB miss: charge the page walk's entry reads and A/D write-backs."""
        self._charge_walk(walk_reads, ad_writes)

    def on_dirty_walk(self, linear: int, walk_reads: int, ad_writes: int) -> None:
        """A write hit a TLB entry with D = 0 and the tables were walked to set D."""
        self._charge_walk(walk_reads, ad_writes)

    def _charge_walk(self, walk_reads: int, ad_writes: int) -> None:
        if self._cache_profile is not self.profile:
            self._profile_changed()
        self.tsc += walk_reads * self._walk_read + ad_writes * self._walk_ad

    def _profile_changed(self) -> None:
        old = self._cache_profile.issue
        self._cache_profile = self.profile
        issue = self.profile.issue
        self._issue = issue
        self._misaligned = 0 if issue is None else issue.misaligned
        if issue != old:
            self.btb = new_btb(issue)
            self.issue_break()
        self._walk_read = self.profile.table["page_walk.read"]
        self._walk_ad = self.profile.table["page_walk.ad_write"]
        self.flush_decode_cache()

    # --- memory accessors (fast paths of the CpuState contract) --------------------------------

    def read_mem(self, sreg: int, offset: int, size: int) -> int:
        """Read 1, 2 or 4 bytes at ``sreg:offset``: the segment check, then paging."""
        s = self.seg[sreg]
        if offset < s.min_off or offset + size - 1 > s.max_off or not s.readable:
            raise CpuFault(SS_VECTOR, 0) if sreg == SS else gp(0)
        linear = (s.base + offset) & MASK32
        if self._mis_cur and (linear & 3) + size > 4:
            self.tsc += self._mis_cur
            self._note("misaligned", self._mis_cur)
        mmu = self.mmu
        if size == 4:
            return mmu.read32(linear, self.user)
        if size == 1:
            return mmu.read8(linear, self.user)
        return mmu.read16(linear, self.user)

    def write_mem(self, sreg: int, offset: int, size: int, value: int) -> None:
        """Write 1, 2 or 4 bytes at ``sreg:offset``; drops cached code of the page written."""
        s = self.seg[sreg]
        if offset < s.min_off or offset + size - 1 > s.max_off or not s.writable:
            raise CpuFault(SS_VECTOR, 0) if sreg == SS else gp(0)
        linear = (s.base + offset) & MASK32
        mmu = self.mmu
        if size == 4:
            mmu.write32(linear, value, self.user)
        elif size == 1:
            mmu.write8(linear, value, self.user)
        else:
            mmu.write16(linear, value, self.user)
        if self._mis_cur and (linear & 3) + size > 4:
            self.tsc += self._mis_cur
            self._note("misaligned", self._mis_cur)
        if self._code_pages:
            # Inline fast case of _linear_written: the MMU's host page map knows the frame
            # (frame_page: also while tracers are attached, the write is made and reported).
            e = mmu.frame_page(linear >> 12)
            if e is not None and (linear & 0xFFF) <= 0x1000 - size:
                if (e.base >> 12) in self._code_pages:
                    self.physical_written(e.base | (linear & 0xFFF), size)
            else:
                self._linear_written(linear, size)

    # --- the issue model (lavsim.cpu.pairing, docs/timing.md "Pentium issue model") ----------

    def issue_break(self) -> None:
        """An event that empties the pipes (exception or interrupt delivery, a profile change,
        a restored snapshot): the next instruction issues in U with no interlock pending."""
        self._pair_u = None
        self._agi_prev = 0
        self._agi_cur = 0

    def _note(self, reason: str, cycles: int) -> None:
        log = self.issue_log
        if log is not None and log:
            eip, pipe, at, stalls = log[-1]
            log[-1] = (eip, pipe, at, (*stalls, (reason, cycles)))

    def _issue_run(self, insn: Insn) -> None:
        """Charge ``insn`` under the issue model, run its handler, then consult the BTB.

        A pair is decided when its V instruction issues: it goes to V beside the pending U
        instruction if :func:`~lavsim.cpu.pairing.pairs` allows it, and the pair costs the
        longer of the two (U was charged its figure, V adds the difference), two memory
        read-modify-write instructions one clock less than both. The pending U survives
        any host cut (the end of a block, a run limit), so where a run stops never changes
        a charge; an exception or interrupt (:meth:`issue_break`) ends it.
        """
        d = insn.issue
        assert d is not None
        model = self._issue
        assert model is not None
        c = insn.cycles
        u = self._pair_u
        log = self.issue_log
        if u is not None:
            if insn.vprev is u:
                ok = insn.vok
            else:
                ok = pairs(u, d)
                insn.vprev = u
                insn.vok = ok
            if ok:
                cu = self._pair_u_cycles
                total = cu + c - 1 if (u.rmw and d.rmw) else max(cu, c)
                stall = model.agi if not self._pair_u_stall and d.addr & self._agi_prev else 0
                bank = 0
                if (d.data and self._pair_u_data >= 0 and not (u.rmw and d.rmw)
                        and not (data_linear(self, insn, d) ^ self._pair_u_data) & 0x1C):
                    bank = model.bank_conflict
                self._agi_cur |= d.agi_writes
                self._pair_u = None
                if log is not None:
                    why: list[tuple[str, int]] = [("agi", stall)] if stall else []
                    if bank:
                        why.append(("bank conflict", bank))
                    log.append((insn.addr, "V", self.tsc - cu + stall, tuple(why)))
                self.tsc += total - cu + stall + bank
                self.eip = insn.next_eip
                self._mis_cur = self._misaligned
                try:
                    insn.handler(self, insn)
                finally:
                    self._mis_cur = 0
                if d.branch:
                    self._predict(insn, d, True)
                return
        self._agi_prev = self._agi_cur
        self._agi_cur = d.agi_writes
        stall = model.agi if d.addr & self._agi_prev else 0
        prefix = d.prefixes * model.prefix
        if model.pairing and (d.cls == UV or d.cls == PU):
            self._pair_u = d
            self._pair_u_cycles = c
            self._pair_u_stall = stall
            self._pair_u_data = data_linear(self, insn, d) if d.data else -1
            pipe = "U"
        else:
            self._pair_u = None
            pipe = "alone"
        if log is not None:
            why = []
            if u is not None:  # the pending U instruction issued alone
                why.append(("dependency" if d.cls in (UV, PV) else "not pairable", 0))
            if stall:
                why.append(("agi", stall))
            if prefix:
                why.append(("prefix", prefix))
            log.append((insn.addr, pipe, self.tsc + stall + prefix, tuple(why)))
        self.tsc += c + stall + prefix
        self.eip = insn.next_eip
        self._mis_cur = 0 if insn.form.handler in _STRING else self._misaligned
        try:
            insn.handler(self, insn)
        finally:
            self._mis_cur = 0
        if d.branch:
            self._predict(insn, d, False)

    def _predict(self, insn: Insn, d: Issue, in_v: bool) -> None:
        btb = self.btb
        if btb is None:
            return
        taken = self.eip != insn.next_eip
        linear = (self.seg[_CS].base + insn.addr) & MASK32
        if btb.predict_and_update(linear, taken):
            model = self._issue
            assert model is not None
            if d.branch == BRANCH_DIRECT:
                penalty = model.mispredict_jmp
            else:
                penalty = model.mispredict_v if in_v else model.mispredict_u
            self.tsc += penalty
            self._note("mispredict", penalty)

    def issue_state(self) -> dict[str, Any]:
        """The issue model's simulated state (pending U instruction, interlock, BTB)."""
        u = self._pair_u
        return {
            "pair_u": None if u is None else u.to_list(),
            "pair_u_cycles": self._pair_u_cycles,
            "pair_u_stall": self._pair_u_stall,
            "pair_u_data": self._pair_u_data,
            "agi": [self._agi_prev, self._agi_cur],
            "btb": None if self.btb is None else self.btb.get_state(),
        }

    def set_issue_state(self, state: Mapping[str, Any] | None) -> None:
        """Put back :meth:`issue_state` (None: empty pipes and BTB). ``ValueError`` or
        ``KeyError`` if refused (then nothing changed)."""
        if state is None:
            self.issue_break()
            self.btb = new_btb(self.profile.issue)
            return
        check_issue_state(state)
        raw = state["pair_u"]
        u = None if raw is None else Issue.from_list(raw)
        cycles, stall = state["pair_u_cycles"], state["pair_u_stall"]
        agi, data = state["agi"], state["pair_u_data"]
        if not all(isinstance(x, int) and 0 <= x <= 1 << 20 for x in (cycles, stall, *agi)):
            raise ValueError("issue state: bad counts")
        if not isinstance(data, int) or not -1 <= data <= MASK32 or len(agi) != 2:
            raise ValueError("issue state: bad data address or interlock")
        btb = new_btb(self.profile.issue)
        if (btb is None) != (state["btb"] is None):
            raise ValueError("issue state: the BTB does not match this profile")
        if btb is not None:
            btb.set_state(state["btb"])
        self._pair_u, self._pair_u_cycles, self._pair_u_stall = u, cycles, stall
        self._pair_u_data = data
        self._agi_prev, self._agi_cur = agi
        self.btb = btb

    # --- checkpoint state ---------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The architectural state as JSON-ready data (:mod:`lavsim.cpu.checkpoint`)."""
        from lavsim.cpu import checkpoint

        return checkpoint.get_state(self)

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Put back a :meth:`get_state` mapping (checked first: ``ValueError``, ``KeyError`` or
        ``TypeError`` and nothing changed if refused); drops the host-side caches."""
        from lavsim.cpu import checkpoint

        checkpoint.set_state(self, state)

    # --- the decoded-instruction cache ------------------------------------------------------

    def flush_decode_cache(self) -> None:
        """Drop every decoded instruction and block: after writes to code made around the CPU
        (host-side loaders, page-table edits that remap code), after restoring a snapshot, or
        whenever host-side state must be rebuilt from the simulated state. Changes no
        simulated result."""
        self._icache.clear()
        self._blocks.clear()
        self._code_pages.clear()
        self._code_cover.clear()
        self._cached = 0
        self._smc += 1

    def _translation(self, block: Block, phys: int, traced: Traced = False
                     ) -> Translated | None:
        """The translation of ``block`` (cached at ``phys``) for the current issue state
        (``traced``: the variant for a run with tracers, or the key of the MMU's
        ``hot_filter`` for the filtered one, see :func:`lavsim.cpu.translate.translate`),
        compiled on first use; None when the block
        already has :data:`TRANSLATIONS_PER_BLOCK` translations for other states (it then
        runs in the block loop, or one instruction at a time under tracing)."""
        key = (traced, entry_key(self))
        xl = block.xl.get(key)
        if xl is None:
            weight = TRANSLATION_WEIGHT * len(block.entries)
            if len(block.xl) >= TRANSLATIONS_PER_BLOCK or weight > self.code_cache_limit:
                return None
            self._make_room(weight)
            if self._blocks.get(phys) is not block:
                return None  # making room dropped it: decoded again at the next entry
            xl = block.xl[key] = translate_block(self, block, key[1], STRAIGHT, traced, phys)
        return xl

    def _run_chained(self, block: Block, xl: Translated, e: Any, vpn: int, left: int,
                     n_limit: int, c_limit: int, done: int) -> int:
        """Run translation ``xl`` of ``block`` (entered as :meth:`run` enters it: ``e`` its
        code page's host page-map entry, ``vpn`` that page, ``left`` the instructions it may
        retire), then the translations of its successors for as long as :meth:`run` would
        itself pick a translation next; returns the instructions retired (on an exception,
        ``_xl_ran`` holds them, as for one translation).

        Between two translations the checks of :meth:`run`'s loop are made in its order (no
        interrupt, stop, HLT or shutdown request, the instruction and cycle limits, the issue
        log off). Each block remembers (:attr:`Block.next`) the successor the general lookup
        last found after it; a chained jump takes it only when all of these hold: EIP is its
        EIP; CS has its base, the D bit set, its lower limit at or below EIP and its upper
        limit at or beyond the block's last byte (far transfers load a new segment cache
        each time, so CS is compared by value: these are all the general lookup reads of
        it); the MMU's code-page lookup of the page answers the same host page-map entry
        (entries are immutable: the same physical page, and the same modelled rank) and its
        mask admits the current privilege; the block cache holds the same :class:`Block` at
        its physical address (a write over its bytes, a flush, a profile change or new block
        stops drop it, and a block's translations are never replaced); the issue state has
        the same key (:func:`~lavsim.cpu.translate.entry_key`: the translation
        :meth:`_translation` picks); and the run may retire the whole block. That is
        everything :meth:`run`'s lookup of a translated block depends on, so a chained jump
        runs exactly the translation it would run. Anything else (a block to build or not
        yet hot, the block loop's cases, one instruction at a time) returns to :meth:`run`."""
        total = 0
        inside = False  # in a translation (which sets _xl_ran itself on an exception)
        blocks = self._blocks
        seg = self.seg
        mmu = self.mmu
        try:
            while True:
                self._xl_ran = 0
                inside = True
                total += xl(self, e, vpn, left, c_limit, self._smc, done + total)
                inside = False
                if (self.irq_pending or self.halted or self.shutdown is not None
                        or self._stop_run or done + total >= n_limit or self.tsc >= c_limit
                        or self.issue_log is not None):
                    return total
                left = n_limit - done - total
                eip = self.eip
                cs = seg[_CS]
                nxt = block.next
                if (nxt is not None and nxt[0] == eip and cs.base == nxt[1] and cs.db
                        and cs.min_off <= eip and nxt[2] <= cs.max_off
                        and nxt[3].mask & (1 << self.user) and mmu.code_page(nxt[4]) is nxt[3]
                        and blocks.get(nxt[5]) is nxt[6] and nxt[7] == entry_key(self)
                        and left >= nxt[8]):
                    _, _, _, e, vpn, _, block, _, _, xl = nxt
                    continue
                # The general lookup, as run() makes it for a translated block.
                if not (cs.min_off <= eip <= cs.max_off and cs.db):
                    return total
                linear = (cs.base + eip) & MASK32
                vpn2 = linear >> 12
                e2 = mmu.code_page(vpn2)
                if e2 is None or not e2.mask & (1 << self.user):
                    return total
                phys = e2.base | (linear & 0xFFF)
                block2 = blocks.get(phys)
                if (block2 is None or block2.addr != eip
                        or not self._runs_as_block(block2, cs)
                        or left < len(block2.entries) or block2.runs < TRANSLATE_AFTER):
                    return total
                block2.runs += 1
                key = entry_key(self)
                xl2 = self._translation(block2, phys)
                if xl2 is None:
                    block2.runs -= 1  # run() counts this entry itself
                    return total
                block.next = (eip, cs.base, block2.end, e2, vpn2, phys, block2, key,
                              len(block2.entries), xl2)
                block, xl, e, vpn = block2, xl2, e2, vpn2
        except BaseException:
            self._xl_ran = (self._xl_ran if inside else 0) + total
            raise

    def _runs_as_block(self, block: Block, cs: SegmentCache) -> bool:
        """May ``block`` run as a block now (in the block loop or translated)? The one place
        this is decided, for both the untraced and the traced path: it has instructions and
        CS still covers all of them (whatever else must end a block before an instruction
        belongs here too)."""
        return bool(block.entries) and block.end <= cs.max_off

    def _traced_translation(self, eip: int, linear: int, phys: int, left: int
                            ) -> Translated | None:
        """Under tracing, the translation to run from CS:``eip``, whose fetch (``linear`` ->
        ``phys``) the per-instruction path has just made; None: run one instruction."""
        block = self._blocks.get(phys)
        if block is None or block.addr != eip:
            block = self._build_block(eip, linear, phys)
        if not self._runs_as_block(block, self.seg[_CS]) or left < len(block.entries):
            return None
        block.runs += 1
        if block.runs <= TRANSLATE_AFTER:
            return None
        flt = self.mmu.hot_filter
        return self._translation(block, phys, traced=True if flt is None else flt.key)

    def _make_room(self, n: int) -> None:
        """Before caching ``n`` more decoded instructions: drop everything if they would pass
        ``code_cache_limit`` (a host-side bound; every dropped entry is decoded again on
        demand, so no simulated result changes)."""
        if self._cached + n > self.code_cache_limit:
            self.flush_decode_cache()
        self._cached += n

    def _note_code(self, phys: int, length: int) -> None:
        """Record that a cached entry keyed by ``phys`` was decoded from the ``length`` bytes
        there (inside one page), so that a write over any of them drops it."""
        page = phys >> 12
        keys = self._code_pages.get(page)
        if keys is None:
            keys = self._code_pages[page] = {}
            cover = self._code_cover[page] = bytearray(0x1000)
        else:
            cover = self._code_cover[page]
        end = phys + max(1, length)
        if keys.get(phys, 0) < end:
            keys[phys] = end
        lo = phys & 0xFFF
        cover[lo : lo + (end - phys)] = b"\x01" * (end - phys)

    def physical_written(self, phys: int, n: int) -> None:
        """Physical bytes ``phys .. phys+n-1`` were written: drop the cached instructions and
        blocks decoded from any of those bytes (only those: code and data may share a page),
        and stop a running block if one was dropped."""
        pages = self._code_pages
        if not pages or n <= 0:
            return
        end = phys + n
        for page in range(phys >> 12, ((end - 1) >> 12) + 1):
            keys = pages.get(page)
            if keys is None:
                continue
            lo = max(phys, page << 12)
            hi = min(end, (page + 1) << 12)
            if 1 not in self._code_cover[page][lo & 0xFFF : ((hi - 1) & 0xFFF) + 1]:
                continue  # beside the code: nothing decoded from these bytes
            hit = [k for k, kend in keys.items() if k < hi and kend > lo]
            if not hit:
                continue
            self._smc += 1
            cache = self._icache
            blocks = self._blocks
            for k in hit:
                del keys[k]
                cache.pop(k, None)
                blocks.pop(k, None)
            if not keys:
                del pages[page]
                del self._code_cover[page]

    def _linear_written(self, linear: int, size: int) -> None:
        """A data write of ``size`` bytes at ``linear`` succeeded: find its frame(s) without
        touching the modelled TLB and drop cached code decoded from the bytes written."""
        first = min(size, 0x1000 - (linear & 0xFFF))
        pieces = [(linear, first)]
        if first < size:
            pieces.append(((linear + first) & MASK32, size - first))
        for lin, k in pieces:
            phys = self._physical_of_written(lin)
            if phys is None:
                self.flush_decode_cache()
                return
            if (phys >> 12) in self._code_pages:
                self.physical_written(phys, k)

    def _physical_of_written(self, linear: int) -> int | None:
        """The frame a just-written linear address maps to, read from the MMU's host-side
        page map, else from the data TLB's entry (it is the MRU entry of its set after the
        write, so probing it changes nothing); None if neither knows."""
        mmu = self.mmu
        e = mmu.frame_page(linear >> 12)
        if e is not None:
            return e.base | (linear & 0xFFF)
        if not mmu.cr0 & _PG:
            return linear
        for name, tlb in mmu.tlbs.items():
            if name == "itlb" or not tlb.is_mru(linear):
                continue
            entry = tlb.probe(linear)
            if entry is not None:
                if tlb.page_shift == 22:
                    return entry.base | (linear & 0x3FFFFF)
                return entry.base | (linear & 0xFFF)
        return None

    def fetch_decode(self, eip: int) -> Insn:
        """The decoded instruction at CS:``eip`` (through the cache when it is on)."""
        if not self.decode_cache:
            return self._specialised(decode(self, eip))
        cs = self.seg[_CS]
        if eip < cs.min_off or eip > cs.max_off or not cs.db:
            return decode(self, eip)  # raises the architectural fault
        linear = (cs.base + eip) & MASK32
        mmu = self.mmu
        # translate()'s fast hit, inlined (fetch_page: the fetches are reported below).
        e = mmu.fetch_page(linear >> 12)
        if e is not None and e.mask & (1 << self.user):
            e.owner.hits += 1
            phys = e.base | (linear & 0xFFF)
        else:
            phys = mmu.translate(linear, False, self.user, True)
        insn = self._icache.get(phys)
        if insn is not None and insn.addr == eip and eip + insn.length - 1 <= cs.max_off:
            if mmu.tracing:
                if mmu.traces_fetch:
                    mmu.report_fetch(phys, _window(eip, linear, cs.max_off), self.user)
                mmu.report_insn(phys, insn.length, self.user)
            return insn
        return self._decode_miss(eip, linear, phys, min(15, cs.max_off - eip + 1))

    def _specialised(self, insn: Insn) -> Insn:
        """With ``fast`` on, swap in the decode-time fast specialisation of the handler."""
        if self.fast:
            fn = specialise(insn)
            if fn is not None:
                insn.handler = fn
        return insn

    def _decode_miss(self, eip: int, linear: int, phys: int, avail: int) -> Insn:
        insn = self._shared_decode(eip, linear, phys, avail)
        if insn is not None:
            mmu = self.mmu
            if mmu.tracing:  # what a fresh decode reports: its fetch, then the insn
                if mmu.traces_fetch:
                    mmu.report_fetch(phys, min(avail, 0x1000 - (linear & 0xFFF)), self.user)
                mmu.report_insn(phys, insn.length, self.user)
        else:
            f = Fetch(self, eip, linear, phys, avail)
            insn = self._specialised(decode_fetched(self, eip, f))
            if f.phys2 >= 0 or (linear & 0xFFF) + insn.length > 0x1000:
                return insn
            self._share(eip, phys, insn, f.buf)
        self._make_room(1)
        self._icache[phys] = insn
        self._note_code(phys, insn.length)
        return insn

    # --- decodes shared between CPUs (see _shared_table) -------------------------------------

    def _shared_decode(self, eip: int, linear: int, phys: int, avail: int) -> Insn | None:
        """The shared decode of the instruction at CS:``eip`` (``linear`` -> ``phys``, at
        most ``avail`` bytes by the CS limit), or None: decode it afresh."""
        if not self.decode_cache:
            return None
        hit = _shared_table(self.profile, self.fast).get((phys << 32) | eip)
        if hit is None:
            return None
        insn, code = hit
        first = min(avail, 0x1000 - (linear & 0xFFF))
        if insn.length > first:
            return None
        try:
            # The bytes a fresh fetch reads (so a bus error comes from the fresh decode).
            now = self.mmu.memory.read(phys, first)
        except MemoryAccessError:
            return None
        return insn if now[: insn.length] == code else None

    def _share(self, eip: int, phys: int, insn: Insn, buf: bytes) -> None:
        """Offer a fresh decode that lies in one page to the other CPUs."""
        table = _shared_table(self.profile, self.fast)
        if len(table) >= SHARED_DECODES_LIMIT:
            table.clear()
        table[(phys << 32) | eip] = (insn, bytes(buf[: insn.length]))

    def _build_block(self, eip: int, linear: int, phys: int) -> Block:
        """Decode the straight-line run of instructions at CS:``eip`` whose first byte's page
        (``linear`` -> ``phys``) was found in the MMU's host page map; cache it by ``phys``.

        Decoding ahead reads physical memory only (no translation, no modelled TLB lookup):
        an instruction that would need the next page, lies beyond the CS limit or does not
        decode ends the block before it (the per-instruction path then fetches it and raises
        whatever the processor would). The block ends after its first instruction that is not
        in :data:`STRAIGHT` or after :data:`MAX_BLOCK` instructions.
        """
        cs = self.seg[_CS]
        start_phys = phys
        entries: list[tuple[Handler, Insn, int, int]] = []
        end = eip - 1
        cut = self.block_stops  # [observe] see set_block_stops
        if cut is None and self._blocks_cut:
            self._blocks_cut = frozenset()  # this block is not cut
        # Shared only where the CS limit lies beyond this page (it then ends no block).
        page_rest = 0x1000 - (linear & 0xFFF)
        shareable = self.decode_cache and cs.max_off - eip >= page_rest - 1
        if shareable:
            reuse = self._shared_block(eip, phys, cut)
            if reuse is not None:
                return reuse
        # Decoding ahead is not a fetch: with tracers attached it reads memory unreported
        # (each instruction reports its fetch when it runs).
        view = cast(CpuState, _Untraced(self)) if self.mmu.tracing else self
        while len(entries) < MAX_BLOCK:
            if cut is not None and entries and (linear & 0xFFF) in cut:
                break
            avail = min(15, cs.max_off - eip + 1, 0x1000 - (linear & 0xFFF))
            if avail <= 0:
                break
            shared = self._shared_decode(eip, linear, phys, avail)
            if shared is not None:
                insn = shared
            else:
                f = Fetch(view, eip, linear, phys, avail)
                try:
                    insn = self._specialised(decode_fetched(view, eip, f))
                except CpuFault:
                    break
                if f.phys2 < 0:  # (avail ends at the page: a decode never needs the next)
                    self._share(eip, phys, insn, f.buf)
            entries.append((insn.handler, insn, insn.cycles, insn.next_eip))
            end = eip + insn.length - 1
            if insn.form.handler not in STRAIGHT:
                break
            eip += insn.length
            linear += insn.length
            phys += insn.length
            if not linear & 0xFFF:
                break  # the next instruction starts on another page
        block = Block(entries[0][1].addr if entries else eip, end, tuple(entries))
        if shareable and entries:
            table = _shared_block_table(self.profile, self.fast)
            if table.held + len(entries) > SHARED_DECODES_LIMIT:
                table.clear()
                table.held = 0
            table.held += len(entries)
            # The bytes decoded, and the window after them (an instruction that did not
            # decode there may have ended the block), up to the page's end.
            code = self.mmu.memory.read(start_phys, min(page_rest, end - block.addr + 1 + 15))
            table[((start_phys << 32) | block.addr, cut)] = (end, block.entries, code)
        self._make_room(max(1, len(entries)))
        # The bytes its instructions were decoded from (an empty block: its first byte).
        self._note_code(start_phys, end - block.addr + 1)
        self._blocks[start_phys] = block
        return block

    def _shared_block(self, eip: int, phys: int, cut: frozenset[int] | None) -> Block | None:
        """The block at CS:``eip`` (``phys``) another CPU of this profile built with the same
        cut offsets, when memory holds the bytes it was built from (a new :class:`Block` of
        its entries, cached as :meth:`_build_block` caches one), or None.

        Why that is exact: with the CS limit beyond the page (the caller's test), the block a
        build finds is a pure function of the bytes from ``phys`` to the end of the last
        instruction's fetch window (each decode is, see :func:`_shared_table`; where it ends
        depends on those, on the page offset and on the cut offsets), and decoding ahead
        reports nothing and changes no simulated state."""
        hit = _shared_block_table(self.profile, self.fast).get(((phys << 32) | eip, cut))
        if hit is None:
            return None
        end, entries, code = hit
        try:
            if self.mmu.memory.read(phys, len(code)) != code:
                return None
        except MemoryAccessError:
            return None  # (the build's own fetch reports the bus error)
        block = Block(eip, end, entries)
        self._make_room(len(entries))
        self._note_code(phys, end - eip + 1)
        self._blocks[phys] = block
        return block

    # --- [observe] block stops: Machine.run's hook for block observers and breakpoints -----

    def set_block_stops(self, offsets: frozenset[int] | None) -> None:
        """None (the default): :meth:`run` as documented. A set of page offsets (0..4095):
        each :meth:`run` call executes one dispatch unit -- one block, or one instruction
        (retired, faulted or a REP stopped between iterations) -- and returns ``"stopped"``
        (an interrupt pending at the call is still delivered first), and no block holds an
        instruction whose linear address has its page offset in ``offsets`` other than as its
        first. Cutting by page offset, not by address, keeps a block valid wherever its page
        is mapped. Cached blocks not cut so are dropped. Changes no simulated result; with
        :attr:`unretired` the caller knows how many steps each call made."""
        if offsets is not None:
            if not offsets <= self._blocks_cut:
                self._blocks.clear()  # rebuilt cut on demand (their _code_pages keys may stay)
            self._blocks_cut = offsets  # what blocks built from now on are cut at
        self.block_stops = offsets

    # --- execution --------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Make a running :meth:`run` return ``"stopped"`` at the next instruction boundary:
        for a device whose next event moved during an I/O instruction, so the caller can
        bound the run again (I/O instructions end blocks, so the boundary is the one right
        after the instruction). Changes no simulated state."""
        self._stop_run = True

    def step(self) -> None:
        """Deliver a pending interrupt if IF = 1, else execute one instruction (a halted or
        shut-down CPU does nothing)."""
        if self.shutdown is not None:
            return
        if self.irq_pending and self.get_eflags() & IF:
            from lavsim.cpu.interrupts import deliver_external

            deliver_external(self)
            return
        if self.halted:
            return
        if self._cache_profile is not self.profile:
            self._profile_changed()
        self._execute()

    def _execute(self) -> None:
        eip = self.eip
        lazy = self.lazy_flags
        eflags = self.eflags
        try:
            insn = self.fetch_decode(eip)
            if insn.issue is not None:
                self._issue_run(insn)
            else:
                self.tsc += insn.cycles
                self.eip = insn.next_eip
                insn.handler(self, insn)
            self.instructions += 1
        except CpuFault as fault:
            self._fault(fault, eip, lazy, eflags)
        except RepStopped:
            self.unretired += 1  # stopped between iterations, EIP at it again: not retired

    def _fault(self, fault: CpuFault, eip: int, lazy: tuple[int, ...] | None, eflags: int) -> None:
        self.unretired += 1
        self.eip = eip
        self.lazy_flags = lazy
        self.eflags = eflags
        self.issue_break()  # the delivery (or whatever stands in for it) empties the pipes
        from lavsim.cpu.interrupts import handle_fault

        handle_fault(self, fault)

    def _fault_counted(
        self, fault: CpuFault, eip: int, lazy: tuple[int, ...] | None, eflags: int, done: int
    ) -> None:
        """:meth:`_fault` inside :meth:`run`, whose ``done`` instructions are added to
        ``instructions`` only on the way out: the delivery (a triple-fault report) sees them
        counted, and they are taken back even when the delivery ends in a bus error, so the
        run's ``finally`` counts them once."""
        self.instructions += done
        try:
            self._fault(fault, eip, lazy, eflags)
        finally:
            self.instructions -= done

    def _traced_block(self, block: Block, e: Any, vpn: int, delta: int, left: int,
                      c_limit: int, done: int) -> int:
        """One pass of the block loop with tracers attached (units only: see :meth:`run`);
        returns the instructions it retired. Each instruction is fetched and reported
        exactly as the per-instruction path does on a decoded-instruction-cache hit: the
        fetch lookup served by the same host page-map entry ``e`` of page ``vpn`` (else the
        block stops and the per-instruction path fetches), the hit credited to its owner,
        ``report_fetch`` when a tracer wants ``FETCH``, then ``report_insn`` (the physical
        address of an instruction is its EIP + ``delta``: the block lies in one page; under
        the MMU's ``hot_filter`` a one-line hit is counted inline, as the filtered
        translations do, and anything else goes to the filter's ``insn``). The
        limits and the self-modifying-code counter are tested after each instruction, as in
        the untraced block loop."""
        mmu = self.mmu
        fetch_page = mmu.fetch_page
        report_insn = mmu.emit_insn  # (report_insn: a tracer is attached)
        report_fetch = mmu.report_fetch if mmu.traces_fetch else None
        flt = mmu.hot_filter
        if flt is not None:
            code_hot = flt.code_hot
            code_counts = flt.code_counts
            shift = flt.code_shift
            insn_miss = flt.insn
        owner = e.owner
        user = self.user
        cs_max = self.seg[_CS].max_off
        base = self.seg[_CS].base
        smc = self._smc
        issue_run = self._issue_run
        ran = 0
        insn = block.entries[0][1]
        lazy = self.lazy_flags
        eflags = self.eflags
        try:
            for handler, insn, cycles, next_eip in block.entries:
                if fetch_page(vpn) is not e:
                    break  # the entry was demoted: fetch the slow way
                owner.hits += 1
                addr = insn.addr
                phys = addr + delta
                if report_fetch is not None:
                    report_fetch(phys, _window(addr, base + addr, cs_max), user)
                if flt is None:
                    report_insn(phys, insn.length, user)
                else:
                    line = phys >> shift
                    if line in code_hot and (phys + insn.length - 1) >> shift == line:
                        code_counts.read_hits += 1  # (the filter's promise: nothing else)
                    else:
                        insn_miss(phys, insn.length)
                lazy = self.lazy_flags
                eflags = self.eflags
                if insn.issue is not None:
                    issue_run(insn)
                else:
                    self.tsc += cycles
                    self.eip = next_eip
                    handler(self, insn)
                ran += 1
                if ran >= left or self.tsc >= c_limit or self._smc != smc:
                    break
        except CpuFault as fault:
            self._xl_ran = ran  # (the delivery may end in a bus error)
            self._fault_counted(fault, insn.addr, lazy, eflags, done + ran)
        except RepStopped:
            self.unretired += 1  # a REP stopped: the block ends
        except BaseException:
            self._xl_ran = ran
            raise
        return ran

    def run_unit(self, max_instructions: int | None, max_cycles: int | None,
                 within: tuple[int, int] | None = None) -> None:
        """[observe] One dispatch unit with tracers attached and block stops set
        (``Machine._run_unit``): exactly what :meth:`run` does then, with less setup for its
        common case, a traced block (see :meth:`_traced_block`); anything else is run by
        :meth:`run` itself.

        ``within`` (linear ``(low, high)``): the unit may go on into the blocks that follow,
        one traced block after another, while each next block is what a new call would run as
        a traced block, starts inside ``[low, high)`` at no block stop, with CS (so CPL) as
        the unit found it, no interrupt pending, no stop requested and the limits not reached:
        the caller would have made exactly those calls (nothing it does between two units
        happens then), so the result is the same with fewer calls."""
        mmu = self.mmu
        eip = self.eip
        cs = self.seg[_CS]
        c_limit = NEVER if max_cycles is None else self.tsc + max_cycles
        n_limit = NEVER if max_instructions is None else max_instructions
        e = None
        if (self.block_stops is not None and mmu.tracing and self.decode_cache and self.fast
                and self._cache_profile is self.profile and not self.irq_pending
                and not self.halted and self.shutdown is None and n_limit > 0
                and self.tsc < c_limit and cs.min_off <= eip <= cs.max_off and cs.db):
            linear = (cs.base + eip) & MASK32
            vpn = linear >> 12
            e = mmu.fetch_page(vpn)
        if e is None or not e.mask & (1 << self.user):
            self.run(max_instructions, max_cycles)
            return
        phys = e.base | (linear & 0xFFF)
        block = self._blocks.get(phys)
        if block is None or block.addr != eip:
            block = self._build_block(eip, linear, phys)
        if not self._runs_as_block(block, cs):
            self.run(max_instructions, max_cycles)  # (finds the block cached)
            return
        rep_until = self._rep_until
        self._rep_until = c_limit
        self._xl_ran = 0
        done = 0
        stops = self.block_stops
        assert stops is not None  # (tested above)
        selector = cs.selector
        try:
            while True:
                smc = self._smc
                ran = self._traced_block(block, e, vpn, phys - eip, n_limit - done, c_limit,
                                         done)
                done += ran
                self._xl_ran = 0
                # Go on only where the next call would run the next block as a traced
                # block of this unit (the conditions above, and the caller's).
                if (within is None or ran != len(block.entries) or done >= n_limit
                        or self.tsc >= c_limit or self._smc != smc or self._stop_run
                        or self.irq_pending or self.halted or self.shutdown is not None
                        or self._cache_profile is not self.profile):
                    break
                cs = self.seg[_CS]
                eip = self.eip
                if cs.selector != selector or not cs.min_off <= eip <= cs.max_off:
                    break
                linear = (cs.base + eip) & MASK32
                if (linear & 0xFFF) in stops or not within[0] <= linear < within[1]:
                    break
                vpn = linear >> 12
                e = mmu.fetch_page(vpn)
                if e is None or not e.mask & (1 << self.user):
                    break
                phys = e.base | (linear & 0xFFF)
                block = self._blocks.get(phys)
                if block is None or block.addr != eip:
                    block = self._build_block(eip, linear, phys)
                if not self._runs_as_block(block, cs):
                    break
        except BaseException:
            done += self._xl_ran  # retired before a bus error
            raise
        finally:
            self.instructions += done
            self._rep_until = rep_until
            self._stop_run = False  # (as run() leaves it after a unit)

    def run(self, max_instructions: int | None = None, max_cycles: int | None = None) -> str:
        """Execute until a stop condition; returns why: ``"halted"``, ``"instruction_limit"``
        (``max_instructions`` executed), ``"cycle_limit"`` (the TSC advanced by at least
        ``max_cycles`` since the call), ``"shutdown"`` (triple fault), or ``"stopped"``
        (:meth:`request_stop` was called during the run).

        A REP string instruction stops between iterations once the TSC reaches the cycle
        limit (see :mod:`lavsim.cpu.ops_string`), so a run overshoots its cycle limit by at
        most one iteration, not by a whole REP.

        The limits are checked before every instruction, exactly as a loop of :meth:`step`
        would check them; with ``fast`` on, straight-line blocks run without going back to
        the top of the loop between their instructions (see the module docstring).
        """
        if self._cache_profile is not self.profile:
            self._profile_changed()
        mmu = self.mmu
        n_limit = max_instructions if max_instructions is not None else NEVER
        c_limit = self.tsc + max_cycles if max_cycles is not None else NEVER
        # A REP string instruction stops between iterations at the cycle limit (restored on
        # the way out: the bound belongs to this run).
        rep_until = self._rep_until
        self._rep_until = c_limit
        self._stop_run = False
        unit = self.block_stops is not None  # [observe] see set_block_stops
        done = 0
        # A tracer must see every instruction's fetch: no blocks, and each hit of the
        # decoded-instruction cache is reported as the fetch a fresh decode would make
        # (tested once per call; a tracer attached during a run counts from the next call).
        tracing = mmu.tracing
        cached = self.decode_cache
        # Under tracing, blocks run in units only (block stops; see _traced_block): the
        # traced translations below serve other runs.
        blocks_on = cached and self.fast and (unit or not tracing)
        translate_on = self.translate
        # Under tracing, translated blocks start from the per-instruction path's fetch. Not
        # in units (block stops): a traced translation may end having made the next
        # instruction's fetch, which then runs in the same call, past a stop.
        traced_on = cached and self.fast and tracing and translate_on and not unit
        #: A fetch a traced translation made but did not run (see _traced_translation).
        pre: tuple[int, int, int] | None = None
        cache = self._icache
        blocks = self._blocks
        seg = self.seg
        translate = mmu.translate
        try:
            while True:
                if pre is not None:
                    pass  # the fetch of the next instruction is made: it runs now
                elif (self.irq_pending or self.halted or self.shutdown is not None
                      or self._stop_run):
                    if self.shutdown is not None:
                        return "shutdown"
                    if self._stop_run:
                        self._stop_run = False
                        return "stopped"
                    if self.irq_pending and self.get_eflags() & IF:
                        # Machine.run's order: the cycle limit (which Machine.run sets at
                        # the next device event, whose tick may outrank this request) and,
                        # for a running CPU, the instruction limit come before the delivery.
                        if self.tsc >= c_limit:
                            return "cycle_limit"
                        if not self.halted and done >= n_limit:
                            return "instruction_limit"
                        from lavsim.cpu.interrupts import deliver_external

                        deliver_external(self)
                        continue
                    if self.halted:
                        return "halted"
                if pre is None and done >= n_limit:
                    return "instruction_limit"
                if pre is None and self.tsc >= c_limit:
                    return "cycle_limit"
                eip = self.eip
                cs = seg[_CS]
                if unit:
                    self._stop_run = True  # [observe] one dispatch unit per call
                if blocks_on and cs.min_off <= eip <= cs.max_off and cs.db:
                    linear = (cs.base + eip) & MASK32
                    vpn = linear >> 12
                    # (Under tracing code_page answers None: fetch_page is the same lookup.)
                    code_page = mmu.fetch_page if tracing else mmu.code_page
                    e = code_page(vpn)
                    if e is not None and e.mask & (1 << self.user):
                        phys = e.base | (linear & 0xFFF)
                        block = blocks.get(phys)
                        if block is None or block.addr != eip:
                            block = self._build_block(eip, linear, phys)
                        if tracing and self._runs_as_block(block, cs):
                            self._xl_ran = 0
                            try:
                                done += self._traced_block(block, e, vpn, phys - eip,
                                                           n_limit - done, c_limit, done)
                            except BaseException:
                                done += self._xl_ran  # retired before a bus error
                                raise
                            continue
                        if self._runs_as_block(block, cs):
                            # Translated when it is hot, the issue log is off and the run
                            # may retire the whole block; else the block loop below.
                            left = n_limit - done
                            if unit:  # one pass of a self-looping block: a unit ends at a stop
                                left = min(left, len(block.entries))
                            if (translate_on and left >= len(block.entries)
                                    and self.issue_log is None):
                                block.runs += 1
                                xl = (self._translation(block, phys)
                                      if block.runs > TRANSLATE_AFTER else None)
                                if xl is not None:
                                    self._xl_ran = 0
                                    try:
                                        done += self._run_chained(block, xl, e, vpn, left,
                                                                  n_limit, c_limit, done)
                                    except BaseException:
                                        done += self._xl_ran
                                        raise
                                    continue
                            # The block: each instruction is fetched as the per-instruction
                            # path below fetches it -- one ITLB lookup, served by the same
                            # host page-map entry (so credited to the same TLB) as long as
                            # that entry is still there; the limits are tested after each.
                            owner = e.owner
                            smc = self._smc
                            ran = 0
                            insn = block.entries[0][1]
                            lazy = self.lazy_flags
                            eflags = self.eflags
                            try:
                                for handler, insn, cycles, next_eip in block.entries:
                                    if code_page(vpn) is not e:
                                        break  # the entry was demoted: fetch the slow way
                                    owner.hits += 1
                                    lazy = self.lazy_flags
                                    eflags = self.eflags
                                    if insn.issue is not None:
                                        self._issue_run(insn)
                                    else:
                                        self.tsc += cycles
                                        self.eip = next_eip
                                        handler(self, insn)
                                    ran += 1
                                    if ran >= left or self.tsc >= c_limit or self._smc != smc:
                                        break
                            except CpuFault as fault:
                                done += ran
                                self._fault_counted(fault, insn.addr, lazy, eflags, done)
                                continue
                            except RepStopped:
                                self.unretired += 1  # a REP stopped: the block ends
                            except BaseException:
                                # A bus error (or a host interrupt) in the block: the
                                # instructions before it retired, as on the per-step path.
                                done += ran
                                raise
                            done += ran
                            continue
                # One instruction at a time.
                lazy = self.lazy_flags
                eflags = self.eflags
                try:
                    if pre is not None:
                        _, linear, phys = pre
                        pre = None
                    elif cached and cs.min_off <= eip <= cs.max_off and cs.db:
                        linear = (cs.base + eip) & MASK32
                        # The MMU's translate() fast path, inlined: a hit on the host page
                        # map credits the owning TLB one hit, exactly as translate() does
                        # (fetch_page: with tracers too, the fetch is reported below).
                        e = mmu.fetch_page(linear >> 12)
                        if e is not None and e.mask & (1 << self.user):
                            e.owner.hits += 1
                            phys = e.base | (linear & 0xFFF)
                        else:
                            phys = translate(linear, False, self.user, True)
                        if traced_on and self.issue_log is None:
                            xl = self._traced_translation(eip, linear, phys, n_limit - done)
                            if xl is not None:
                                self._xl_ran = 0
                                try:
                                    done += xl(self, None, linear >> 12, n_limit - done,
                                               c_limit, self._smc, done)
                                except BaseException:
                                    done += self._xl_ran
                                    raise
                                pre, self._xl_fetched = self._xl_fetched, None
                                continue
                    if cached and cs.min_off <= eip <= cs.max_off and cs.db:
                        hit = cache.get(phys)
                        if (hit is None or hit.addr != eip
                                or eip + hit.length - 1 > cs.max_off):
                            insn = self._decode_miss(
                                eip, linear, phys, min(15, cs.max_off - eip + 1)
                            )
                        else:
                            insn = hit
                            if tracing:
                                if mmu.traces_fetch:
                                    mmu.report_fetch(
                                        phys, _window(eip, linear, cs.max_off), self.user
                                    )
                                mmu.report_insn(phys, hit.length, self.user)
                    else:
                        insn = self._specialised(decode(self, eip))
                    if insn.issue is not None:
                        self._issue_run(insn)
                    else:
                        self.tsc += insn.cycles
                        self.eip = insn.next_eip
                        insn.handler(self, insn)
                    done += 1
                except CpuFault as fault:
                    self._fault_counted(fault, eip, lazy, eflags, done)
                except RepStopped:
                    self.unretired += 1  # stopped between iterations: not retired
        finally:
            self.instructions += done
            self._rep_until = rep_until


def _window(eip: int, linear: int, cs_max: int) -> int:
    """The decoder's fetch window at ``eip`` for an instruction inside one page: what
    :class:`~lavsim.cpu.decoder.Fetch` reads (15 bytes, cut at the CS limit and the page)."""
    return min(15, cs_max - eip + 1, 0x1000 - (linear & 0xFFF))


class Block:
    """A cached straight-line run of decoded instructions inside one page (host-side only).

    ``addr`` is the EIP of its first instruction, ``end`` the offset of its last byte, and
    ``entries`` holds ``(handler, insn, base cycles, next EIP)`` per instruction (unpacked
    in the run loop without attribute lookups). An empty ``entries`` means "no block can
    start here" (the first instruction needs the next page or does not decode).
    """

    __slots__ = ("addr", "end", "entries", "next", "runs", "xl")

    def __init__(
        self, addr: int, end: int, entries: tuple[tuple[Handler, Insn, int, int], ...]
    ) -> None:
        self.addr = addr
        self.end = end
        self.entries = entries
        #: Entries into the block while translation could have run it (see
        #: :data:`TRANSLATE_AFTER`).
        self.runs = 0
        #: Its translations (:mod:`lavsim.cpu.translate`) by (traced, entry issue state).
        self.xl: dict[tuple[Traced, Key], Translated] = {}
        #: The successor :meth:`CPU._run_chained` last found after this block's translation
        #: (its EIP, CS base, last byte, host page-map entry, page, physical address, block,
        #: issue key, length, translation), or None.
        self.next: tuple[Any, ...] | None = None


class _Untraced:
    """The CPU as the decoder sees it while a block is decoded ahead under tracing: the same
    CPU, whose MMU reads the instruction bytes from memory without reporting them."""

    __slots__ = ("cpu", "mmu")

    def __init__(self, cpu: CPU) -> None:
        self.cpu = cpu
        self.mmu = _UntracedFetches(cpu.mmu)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cpu, name)


class _UntracedFetches:
    """The MMU's decoder-facing side without reports (see :class:`_Untraced`)."""

    __slots__ = ("mmu",)

    tracing = False

    def __init__(self, mmu: MMU) -> None:
        self.mmu = mmu

    def fetch_physical(self, phys: int, n: int, user: bool) -> bytes:
        return self.mmu.memory.read(phys, n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.mmu, name)
