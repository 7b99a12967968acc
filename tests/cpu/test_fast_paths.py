"""The executor's fast paths (decode-time specialisations in ``cpu/fast.py`` and block
execution in ``cpu/core.py``) are simulator-speed caches: a run with them on gives exactly the
run of the straightforward path (``CPU(fast=False, decode_cache=False)``): cycles, registers,
EFLAGS, EIP, instructions retired, memory, the sequence of faults, every TLB's contents in LRU
order and the MMU's statistics.

The programs are generated (the unicorn differential test's generator: ALU, shifts, multiply
and divide, moves, stack, REP strings, branches, loops, calls) and then stressed: placed so
instructions cross a page, patched by their own stores (self-modifying code inside a block),
run with data and stack segment limits or unmapped pages that fault in the middle of a block
(the fault is "handled" by widening the limit or mapping the page, and the instruction
restarts), on TLBs small enough that data accesses evict the code page, and cut into pieces by
cycle limits with host-side "interrupts" changing state between pieces. A kernel run with the
real timer compares the same way through ``Machine.run``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cpu_harness import CODE, DATA, PAGE_TABLES, Bare
from hypothesis import given, settings
from hypothesis import strategies as st
from test_unicorn_diff import Program, gen_block, random_state

from lavsim.cpu import interrupts
from lavsim.cpu.decoder import decode
from lavsim.cpu.fast import specialise
from lavsim.cpu.state import CS, DS, ES, SS
from lavsim.errors import MemoryAccessError
from lavsim.faults import GP, PF
from lavsim.faults import SS as SS_VECTOR
from lavsim.mmu.descriptors import DATA_READ_WRITE_ACCESSED
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.mmu.tlb import TLBConfig
from lavsim.timing import PENTIUM, TimingProfile

CONFIGS = {
    "pentium": MMUConfig.pentium(),
    "i486": MMUConfig.i486(),
    # Four sets of one way, unified: data accesses keep evicting the code page mid-block.
    "tiny": MMUConfig(tlb=TLBConfig(4, 1)),
}

Fault = tuple[int, int | None, int, int | None, int]


@contextmanager
def fixing_faults(out: list[Fault], limit: int = 8) -> Iterator[None]:
    """Record every fault (vector, error code, EIP, CR2, TSC) and "handle" it so the
    instruction can restart: #GP/#SS widen every data segment back to flat, #PF maps the page
    present; anything else (or too many faults) halts the CPU."""
    original = interrupts.handle_fault

    def handle(cpu: Any, fault: Any) -> None:
        out.append((fault.vector, fault.error_code, cpu.eip, fault.cr2, cpu.tsc))
        if len(out) >= limit:
            cpu.halted = True
        elif fault.vector in (GP, SS_VECTOR):
            for s in (DS, ES, SS):
                cpu.seg[s] = SegmentCache.flat(0x10, 0, False)
        elif fault.vector == PF and fault.cr2 is not None:
            page = fault.cr2 >> 12
            cpu.mmu.memory.write32(PAGE_TABLES + 4 * page, (page << 12) | 7)
        else:
            cpu.halted = True

    interrupts.handle_fault = handle  # type: ignore[assignment]
    try:
        yield
    finally:
        interrupts.handle_fault = original  # type: ignore[assignment]


def limited(limit: int) -> SegmentCache:
    """A flat read/write data segment whose last valid offset is ``limit``."""
    return SegmentCache(0x10, 0, limit, DATA_READ_WRITE_ACCESSED, True, 0, True, True, False)


def run_program(
    code: bytes,
    fast: bool,
    seed: int = 1,
    config: str = "pentium",
    at: int = CODE,
    ds_limit: int | None = None,
    ss_limit: int | None = None,
    cs_limit: int | None = None,
    unmapped: tuple[int, ...] = (),
    chunk: int | None = None,
    max_instructions: int = 5_000,
    translate: bool = True,
    profile: TimingProfile = PENTIUM,
    trace: bool = False,
) -> tuple[object, ...]:
    """Run ``code`` (then UD2) at ``at`` and return everything simulated (``translate``:
    the block translator, on by default with ``fast``; see tests/cpu/test_translate.py;
    ``trace``: with a tracer on the MMU, whose events are returned too)."""
    regs, eflags, data, _stack = random_state(seed)
    # The Pentium with its issue model: blocks and cuts must not change a pair either.
    b = Bare(decode_cache=fast, config=CONFIGS[config], unmapped=unmapped, profile=profile)
    b.cpu.fast = fast
    b.cpu.translate = translate
    events: list[tuple[int, int, int, bool]] = []
    if trace:
        b.mmu.add_tracer(Recorder(events))
    b.mem.write(at, code + b"\x0f\x0b")
    b.mem.write(DATA, data)
    b.cpu.regs[:] = regs
    b.cpu.set_eflags(eflags)
    b.cpu.eip = at
    if ds_limit is not None:
        b.cpu.seg[DS] = b.cpu.seg[ES] = limited(ds_limit)
    if ss_limit is not None:
        b.cpu.seg[SS] = limited(ss_limit)
    if cs_limit is not None:
        cs = b.cpu.seg[CS]
        cs.limit = cs_limit
        cs.refresh()
    faults: list[Fault] = []
    stops: list[str] = []
    with fixing_faults(faults):
        try:
            _run(b, code, at, chunk, max_instructions, stops)
        except MemoryAccessError as error:  # a wild pointer left installed memory
            stops.append(f"bus_error {error}")
    cpu = b.cpu
    tlbs = tuple((n, t.contents()) for n, t in b.mmu.tlbs.items())
    btb = None if cpu.btb is None else cpu.btb.get_state()
    return (list(cpu.regs), cpu.get_eflags(), cpu.eip, cpu.tsc, cpu.instructions,
            b.mem.digest(), b.mmu.stats, tlbs, faults, stops, cpu.issue_state(), btb, events)


class Recorder:
    """A memory tracer that records every access the MMU reports."""

    def __init__(self, events: list[tuple[int, int, int, bool]]) -> None:
        self.events = events

    def on_access(self, kind: Any, phys: int, size: int, user: bool) -> None:
        self.events.append((int(kind), phys, size, user))


def _run(b: Bare, code: bytes, at: int, chunk: int | None, max_instructions: int,
         stops: list[str]) -> None:
    if chunk is None:
        stops.append(b.cpu.run(max_instructions=max_instructions))
        return
    # A timer every ``chunk`` cycles: each piece ends at the first instruction boundary past
    # the deadline, and the "interrupt" changes state the next piece reads (a register, a
    # data word and, through the decode cache's hook, a byte of code rewritten in place).
    patch = at + len(code) // 2
    for k in range(40):
        stops.append(b.cpu.run(max_cycles=chunk, max_instructions=max_instructions))
        if stops[-1] != "cycle_limit":
            break
        b.cpu.regs[0 if k % 2 else 2] ^= 0x5A5A5A5A  # EAX or EDX, never a pointer
        b.mem.write32(DATA + 4 * (k % 64), k)
        b.mem.write8(patch, b.mem.read8(patch))
        b.cpu.physical_written(patch, 1)


def generated(d: st.DataObject, n: int = 8) -> bytes:
    p = Program()
    gen_block(p, d, d.draw(st.integers(2, n)))
    return bytes(p.code)


def same(code: bytes, **kw: Any) -> None:
    assert run_program(code, True, **kw) == run_program(code, False, **kw)


# --- generated programs ---------------------------------------------------------------------


@given(st.data(), st.integers(0, 2**32 - 1), st.sampled_from(sorted(CONFIGS)))
def test_generated_programs_run_identically_with_fast_paths_on_and_off(
    d: st.DataObject, seed: int, config: str
) -> None:
    same(generated(d), seed=seed, config=config)


@given(st.data(), st.integers(0, 2**32 - 1), st.integers(0x1000 - 24, 0x1000 - 1))
def test_programs_whose_instructions_cross_a_page_run_identically(
    d: st.DataObject, seed: int, start: int
) -> None:
    same(generated(d), seed=seed, at=CODE + start, config=d.draw(st.sampled_from(sorted(CONFIGS))))


@given(st.data(), st.integers(0, 2**32 - 1))
def test_self_modifying_code_inside_a_block_runs_identically(d: st.DataObject, seed: int
                                                             ) -> None:
    body = generated(d)
    # mov byte [CODE + 10 + k], v: patches a later instruction of the same block (or the
    # store itself on a later pass through a loop).
    k = d.draw(st.integers(0, max(0, len(body) - 1)))
    value = d.draw(st.integers(0, 255))
    store = b"\xc6\x05" + (CODE + 10 + k).to_bytes(4, "little") + bytes([value])
    code = store + b"\x90" * 3 + body  # the body starts at CODE + 10
    same(code, seed=seed, config=d.draw(st.sampled_from(sorted(CONFIGS))))


@given(st.data(), st.integers(0, 2**32 - 1))
def test_segment_limit_and_page_faults_in_the_middle_of_a_block_run_identically(
    d: st.DataObject, seed: int
) -> None:
    code = generated(d)
    kw: dict[str, Any] = {"seed": seed, "config": d.draw(st.sampled_from(sorted(CONFIGS)))}
    which = d.draw(st.sampled_from(["ds", "ss", "cs", "page"]))
    if which == "ds":
        kw["ds_limit"] = DATA + d.draw(st.integers(0, 0xFFF))
    elif which == "ss":
        kw["ss_limit"] = d.draw(st.sampled_from([0x2FF000, 0x2FFF00, 0x2FFFE0]))
    elif which == "cs":
        kw["cs_limit"] = CODE + d.draw(st.integers(0, max(0, len(code) + 2)))
    else:
        kw["unmapped"] = (DATA >> 12,)
    same(code, **kw)


@given(st.data(), st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_runs_cut_by_cycle_limits_with_interrupts_between_pieces_run_identically(
    d: st.DataObject, seed: int, chunk: int
) -> None:
    same(generated(d), seed=seed, chunk=chunk, config=d.draw(st.sampled_from(sorted(CONFIGS))))


@given(st.data(), st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_instruction_limits_stop_inside_a_block_as_step_by_step(
    d: st.DataObject, seed: int, n: int
) -> None:
    same(generated(d), seed=seed, max_instructions=n)


# --- hand-written cases -----------------------------------------------------------------------

#: The benchmark's loop: load, add, store, inc, cmp, jne (ECX counts up to EDX).
LOOP = bytes([0x8B, 0x06, 0x01, 0xD8, 0x89, 0x06, 0x41, 0x39, 0xD1, 0x75, 0xF5])


def test_the_benchmark_loop_runs_identically() -> None:
    setup = b"\xbe" + DATA.to_bytes(4, "little") + b"\xb9\x00\x00\x00\x00" + b"\xba\x40\x00\x00\x00"
    for config in CONFIGS:
        same(setup + LOOP, config=config)


def test_rep_strings_over_the_running_block_are_seen() -> None:
    # rep stosd overwrites the rest of its own block with NOPs (EAX = 0x90909090) the first
    # time through; the 'inc ebx' after it must not run from the stale block.
    code = (b"\xbf" + (CODE + 0x20).to_bytes(4, "little")   # mov edi, CODE+0x20
            + b"\xb9\x02\x00\x00\x00"                        # mov ecx, 2
            + b"\xb8\x90\x90\x90\x90"                        # mov eax, nop x4
            + b"\x90" * (0x1E - 15) + b"\xf3\xab"            # rep stosd at CODE+0x1E
            + b"\x43" * 8)                                   # inc ebx x8 at CODE+0x20
    for config in CONFIGS:
        same(code, config=config)
        on = run_program(code, True, config=config)
        regs = on[0]
        assert isinstance(regs, list) and regs[3] == random_state(1)[0][3]


def test_code_written_through_a_linear_alias_inside_a_block_is_seen() -> None:
    alias = 0x700000

    def run(fast: bool) -> tuple[object, ...]:
        b = Bare(decode_cache=fast)
        b.cpu.fast = fast
        b.mem.write32(PAGE_TABLES + 4 * (alias >> 12), CODE | 7)
        # mov byte [alias+11], 0x43 turns the following nop into inc ebx
        b.mem.write(CODE, b"\xc6\x05" + (alias + 11).to_bytes(4, "little") + b"\x43"
                    + b"\x90" * 4 + b"\x90" + b"\x0f\x0b")
        b.cpu.regs[3] = 0
        b.run(max_instructions=20)
        return (list(b.cpu.regs), b.cpu.tsc, b.mmu.stats, [(f.vector, e) for f, e in b.faults])

    assert run(True) == run(False)
    assert run(True)[0][3] == 1  # type: ignore[index]


# --- the specialisations against the generic handlers ---------------------------------------


@given(st.data(), st.integers(0, 2**32 - 1))
@settings(max_examples=50)
def test_every_specialisation_matches_its_generic_handler_one_instruction_at_a_time(
    d: st.DataObject, seed: int
) -> None:
    """Step through a generated program twice in lock step: one CPU runs each instruction's
    fast specialisation, the other its generic handler; the states must agree after every
    instruction."""
    code = generated(d)
    machines = []
    for _ in range(2):
        regs, eflags, data, _stack = random_state(seed)
        b = Bare(decode_cache=False)
        b.cpu.fast = False
        b.mem.write(CODE, code + b"\x0f\x0b")
        b.mem.write(DATA, data)
        b.cpu.regs[:] = regs
        b.cpu.set_eflags(eflags)
        machines.append(b)
    fast_b, slow_b = machines
    specialised = 0
    for _ in range(300):
        states = []
        for b, use_fast in ((fast_b, True), (slow_b, False)):
            cpu = b.cpu
            if cpu.halted:
                break
            eip, lazy, eflags0 = cpu.eip, cpu.lazy_flags, cpu.eflags
            outcome: object = None
            try:
                insn = decode(cpu, eip)
                fn = specialise(insn) if use_fast else None
                if fn is not None:
                    specialised += 1
                cpu.tsc += insn.cycles
                cpu.eip = insn.next_eip
                (fn or insn.handler)(cpu, insn)
            except Exception as fault:  # compared below, not swallowed
                cpu.eip, cpu.lazy_flags, cpu.eflags = eip, lazy, eflags0
                outcome = repr(fault)
                cpu.halted = True
            states.append((list(cpu.regs), cpu.get_eflags(), cpu.eip, cpu.tsc,
                           b.mem.digest(), b.mmu.stats, outcome))
        if len(states) < 2:
            break
        assert states[0] == states[1]


@given(st.data(), st.integers(0, 2**32 - 1), st.integers(1, 400),
       st.sampled_from([b"\xf3\xa5", b"\xf3\xab", b"\xf3\xa4", b"\xf3\xa6", b"\xf2\xaf"]))
@settings(max_examples=40)
def test_long_rep_strings_stopped_by_cycle_limits_run_identically(
    d: st.DataObject, seed: int, chunk: int, rep: bytes
) -> None:
    # mov esi/edi into the data area, a long count, the REP in the middle of a block: the
    # pieces stop it between iterations (bulk path with fast on, items with it off).
    count = d.draw(st.integers(0, 3_000))
    setup = (b"\xbe" + (DATA + d.draw(st.integers(0, 0x800))).to_bytes(4, "little")
             + b"\xbf" + (DATA + d.draw(st.integers(0, 0x800))).to_bytes(4, "little")
             + b"\xb9" + count.to_bytes(4, "little") + b"\xfc")
    same(setup + rep + generated(d, 4), seed=seed, chunk=chunk,
         config=d.draw(st.sampled_from(sorted(CONFIGS))))
