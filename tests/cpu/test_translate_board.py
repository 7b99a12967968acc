"""Translations under a board's memory hierarchy (the filtered variant of
``cpu/translate.py``: the hierarchy's ``AccessFilter`` tested inline, the rest reported to it,
fetches that provably change nothing skipped and paid as counts) give exactly the run of the
traced variant without the filter, of the block loop and of the straightforward path: cycles,
registers, EFLAGS, EIP, instructions, memory, faults, every TLB's contents in LRU order with
statistics, the issue model's state and BTB, and the hierarchy's state (every cache's tags,
dirty bits and replacement state, entry by entry, its write buffer, bus time and counters).

The cases are the ones the fast state must survive: cold and evicted lines (misses, dirty
victims, the L2), code lines crossed by an instruction, PCD and PWT pages, CR0.CD and NW, the
write-through i486 board with its write buffer and unified cache (on its own unified TLB and
on split TLBs), stores beside and over the loop's own code, budgets cut at every instruction
and cycle boundary, and generated programs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from cpu_harness import CODE, DATA, PAGE_TABLES, STACK_TOP, Bare
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fast_paths import _run, fixing_faults, generated
from test_unicorn_diff import random_state

from lavsim.boards import get_board
from lavsim.cpu import core
from lavsim.cpu.state import CR0_PG
from lavsim.errors import MemoryAccessError
from lavsim.memsys.hierarchy import MemoryHierarchy
from lavsim.mmu.mmu import AccessFilter, MMUConfig
from lavsim.timing import I486, PENTIUM

#: How each way runs: (fast paths, translator, the MMU's filter kept).
MODES = {
    "filtered": (True, True, True),
    "traced": (True, True, False),
    "blocks": (True, False, False),
    "interpreted": (False, False, False),
}

#: Board -> its processor's profile.
PROFILE = {"p100": PENTIUM, "486dx2-66": I486, "486dx-50": I486}

CD, NW = 1 << 30, 1 << 29
PCD, PWT = 1 << 4, 1 << 3


@pytest.fixture(autouse=True)
def translations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Translate every block at its first entry; yields the variant of each translation."""
    made: list[object] = []
    real = core.translate_block

    def spy(cpu: Any, block: Any, key: Any, straight: Any, traced: Any = False,
            phys: int = 0) -> Any:
        made.append(traced)
        return real(cpu, block, key, straight, traced, phys)

    monkeypatch.setattr(core, "TRANSLATE_AFTER", 0)
    monkeypatch.setattr(core, "translate_block", spy)
    yield made


def board_run(
    code: bytes,
    mode: str,
    board: str = "p100",
    config: str = "pentium",
    at: int = CODE,
    regs: dict[int, int] | None = None,
    seed: int = 1,
    max_instructions: int = 3_000,
    chunk: int | None = None,
    pte: dict[int, int] | None = None,
    cr0: int = 0,
    warm: bool = False,
    pieces: int | None = None,
) -> tuple[object, ...]:
    """Run ``code`` (then UD2) at ``at`` on ``board`` the ``mode`` way; returns everything
    simulated. ``regs``: registers set over the seed's random state; ``pte``: page number ->
    PCD/PWT bits of its entry; ``cr0``: CD/NW bits; ``warm``: run the program once before
    (caches and TLBs then hold its lines when the measured run starts); ``pieces``: run
    ``max_instructions`` as runs of that many instructions (the TSC and EIP after each are
    returned too)."""
    fast, translate, keep = MODES[mode]
    mmu_config = MMUConfig.pentium() if config == "pentium" else MMUConfig.i486()
    b = Bare(decode_cache=fast, config=mmu_config, profile=PROFILE[board])
    b.cpu.fast, b.cpu.translate = fast, translate
    hierarchy = get_board(board).build(b.cpu, b.mmu)
    assert isinstance(hierarchy, MemoryHierarchy)
    b.mmu.add_tracer(hierarchy)
    assert isinstance(b.mmu.hot_filter, AccessFilter)
    if not keep:
        b.mmu.hot_filter = None  # the traced variant without the filter
    for page, bits in (pte or {}).items():
        b.mem.write32(PAGE_TABLES + 4 * page, (page << 12) | 7 | bits)
    if cr0:
        b.cpu.cr0 |= cr0
        b.mmu.set_controls(b.cpu.cr0, 0)
    state, eflags, data, _stack = random_state(seed)
    for reg, value in (regs or {}).items():
        state[reg] = value
    b.mem.write(at, code + b"\x0f\x0b")
    b.mem.write(DATA, data)
    faults: list[tuple[int, int | None, int, int | None, int]] = []
    stops: list[str] = []
    with fixing_faults(faults):
        for _ in range(2 if warm else 1):
            b.cpu.regs[:] = state
            b.cpu.set_eflags(eflags)
            b.cpu.eip = at
            b.cpu.halted = False
            try:
                if pieces is None:
                    _run(b, code, at, chunk, max_instructions, stops)
                else:
                    while b.cpu.instructions < max_instructions and len(stops) < 1000:
                        stops.append(b.cpu.run(max_instructions=pieces))
                        stops.append(f"{b.cpu.tsc} {b.cpu.eip:#x}")
            except MemoryAccessError as error:
                stops.append(f"bus_error {error}")
    cpu = b.cpu
    tlbs = tuple((n, t.contents()) for n, t in b.mmu.tlbs.items())
    caches = {name: c.contents() for name, c in hierarchy.caches().items()}
    return (list(cpu.regs), cpu.get_eflags(), cpu.eip, cpu.tsc, cpu.instructions,
            b.mem.digest(), b.mmu.stats, tlbs, faults, stops, cpu.issue_state(), caches,
            hierarchy.counters(), hierarchy.get_state())


def same4(code: bytes, translations: list[object], expect: bool = True, **kw: Any
          ) -> tuple[object, ...]:
    """Every way agrees, field by field; the filtered way made filtered translations (if
    ``expect``: a short budget may leave no whole block to translate)."""
    del translations[:]
    ref = board_run(code, "interpreted", **kw)
    for mode in ("filtered", "traced", "blocks"):
        got = board_run(code, mode, **kw)
        for i, (a, b) in enumerate(zip(got, ref, strict=True)):
            assert a == b, f"{mode}: field {i} differs"
        if mode == "filtered" and expect:
            assert any(isinstance(t, tuple) for t in translations), "nothing filtered"
    return ref


#: SETUP: ESI = DATA, ECX = 0, EDX = 64; LOOP: load, add, store, inc, cmp, jne (the benchmark).
SETUP = b"\xbe" + DATA.to_bytes(4, "little") + b"\xb9\x00\x00\x00\x00" + b"\xba\x40\x00\x00\x00"
LOOP = bytes([0x8B, 0x06, 0x01, 0xD8, 0x89, 0x06, 0x41, 0x39, 0xD1, 0x75, 0xF5])


def stride_loop(stride: int) -> bytes:
    """The loop with ``add esi, stride`` after the store: a new data line (or set, or page)
    every pass."""
    body = bytes([0x8B, 0x06, 0x01, 0xD8, 0x89, 0x06]) + b"\x81\xc6" + stride.to_bytes(4, "little")
    body += bytes([0x41, 0x39, 0xD1])
    return body + bytes([0x75, (-(len(body) + 2)) & 0xFF])


# --- the benchmark loop and its neighbours ----------------------------------------------------


@pytest.mark.parametrize("board", ["p100", "486dx2-66", "486dx-50"])
@pytest.mark.parametrize("config", ["pentium", "i486"])
@pytest.mark.parametrize("warm", [False, True])
def test_the_benchmark_loop_runs_identically_filtered(
    board: str, config: str, warm: bool, translations: list[object]
) -> None:
    same4(SETUP + LOOP, translations, board=board, config=config, warm=warm)


@pytest.mark.parametrize("stride", [4, 32, 36, 2048, 4096, 8192 + 32, 0x40000])
@pytest.mark.parametrize("board", ["p100", "486dx2-66"])
def test_loops_that_miss_and_evict_run_identically_filtered(
    stride: int, board: str, translations: list[object]
) -> None:
    # Data lines missing every pass, dirty victims written back, L2 misses, lines in the
    # code's set (2 KiB and 4 KiB strides), DTLB misses every pass (4 KiB and more).
    same4(SETUP + stride_loop(stride), translations, board=board)


@pytest.mark.parametrize("offset", range(0, 40, 3))
def test_loops_crossing_code_lines_run_identically_filtered(
    offset: int, translations: list[object]
) -> None:
    # The loop at every few bytes of a 32-byte line (and of two 16-byte ones): some of its
    # instructions cross a line, one fetch then touches two lines.
    code = SETUP + b"\x90" * offset + LOOP
    same4(code, translations)
    same4(code, translations, board="486dx2-66", config="pentium")


@pytest.mark.parametrize("bits", [PCD, PWT, PCD | PWT])
@pytest.mark.parametrize("where", ["code", "data", "both"])
@pytest.mark.parametrize("warm", [False, True])
def test_pcd_and_pwt_pages_run_identically_filtered(
    bits: int, where: str, warm: bool, translations: list[object]
) -> None:
    pages = {"code": [CODE >> 12], "data": [DATA >> 12], "both": [CODE >> 12, DATA >> 12]}
    same4(SETUP + LOOP, translations, pte={p: bits for p in pages[where]}, warm=warm)


@pytest.mark.parametrize("bits", [PCD, PWT])
def test_a_pcd_or_pwt_page_met_mid_loop_runs_identically_filtered(
    bits: int, translations: list[object]
) -> None:
    # Two stores a pass (a line kept dirty by inline hits), a page a pass: the third page's
    # fill records PCD/PWT, after which every store goes through the hierarchy's handler.
    body = bytes([0x8B, 0x06, 0x89, 0x06, 0x01, 0xD8, 0x89, 0x06]) + b"\x81\xc6\x00\x10\x00\x00"
    body += bytes([0x41, 0x39, 0xD1])
    loop = SETUP[:10] + b"\xba\x08\x00\x00\x00" + body + bytes([0x75, (-(len(body) + 2)) & 0xFF])
    same4(loop, translations, pte={(DATA >> 12) + 2: bits, (DATA >> 12) + 5: bits})


@pytest.mark.parametrize("cr0", [CD, NW, CD | NW])
@pytest.mark.parametrize("board", ["p100", "486dx2-66"])
@pytest.mark.parametrize("warm", [False, True])
def test_cr0_cd_and_nw_run_identically_filtered(
    cr0: int, board: str, warm: bool, translations: list[object]
) -> None:
    same4(SETUP + LOOP, translations, cr0=cr0, board=board, warm=warm)


@pytest.mark.parametrize("board", ["p100", "486dx2-66"])
def test_stores_beside_and_over_the_loops_code_run_identically_filtered(
    board: str, translations: list[object]
) -> None:
    # ESI in the loop's own code line, after the code (data next to code: the store's page is
    # a code page, nothing decoded is overwritten), then at the loop's INC (EBX = 0: the
    # bytes stay, the translation is dropped every pass).
    code = SETUP + LOOP
    beside = CODE + len(code) + 4
    same4(code, translations, board=board, regs={6: beside})
    # SETUP sets ESI itself: point it at the code instead.
    over = b"\xbe" + (CODE + 20 + 6).to_bytes(4, "little") + SETUP[5:]
    same4(over + LOOP, translations, board=board, regs={3: 0})
    beside_setup = b"\xbe" + beside.to_bytes(4, "little") + SETUP[5:]
    same4(beside_setup + LOOP, translations, board=board)


def test_calls_that_evict_the_stored_line_before_the_store_run_identically_filtered(
    translations: list[object]
) -> None:
    # L: add [edi], ebx ; add [ebp+0], ebx ; mov eax, [esi] ; mov [esi], eax ;
    # imul eax, eax, 1 (x4) ; inc ecx ; cmp ecx, edx ; jne L -- three lines of one set of the
    # 2-way L1D: the handlers' accesses (calls, before the store) write the stored line back
    # and evict it every pass, the load fills it again clean, and the store must make it
    # dirty again each time; the IMULs make the pass long, so that a pass that tests every
    # limit (near a cycle limit) gets past the store.
    body = bytes([0x01, 0x1F, 0x01, 0x5D, 0x00, 0x8B, 0x06, 0x89, 0x06]) + b"\x6b\xc0\x01" * 4
    body += bytes([0x41, 0x39, 0xD1])
    loop = body + bytes([0x75, (-(len(body) + 2)) & 0xFF])
    regs = {7: DATA, 5: DATA + 0x1000, 6: DATA + 0x2000, 3: 1, 1: 0, 2: 40}
    for chunk in (None, 97, 300):  # with cycle limits near: passes that test every limit
        same4(loop, translations, regs=regs, chunk=chunk)
        same4(loop, translations, regs=regs, board="486dx2-66", config="pentium", chunk=chunk)


def test_every_call_in_a_filtered_translation_forgets_the_stores_memo(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load or store skips the line test (a store the re-marking of its line) for a line
    found hot (made dirty) since only while nothing was called since: every call site, those
    before the block's first access included (they run again before it on the next pass),
    resets the memos."""
    from lavsim.cpu import translate

    sources: list[str] = []
    real = compile

    def spy(source: str, *args: Any) -> Any:
        sources.append(source)
        return real(source, *args)

    monkeypatch.setattr(translate, "compile", spy, raising=False)
    # L: add [edi], ebx ; mov eax, [esi] ; mov [esi], eax ; inc ecx ; cmp ecx, edx ; jne L
    body = bytes([0x01, 0x1F, 0x8B, 0x06, 0x89, 0x06, 0x41, 0x39, 0xD1])
    board_run(body + bytes([0x75, (-(len(body) + 2)) & 0xFF]), "filtered",
              regs={7: DATA + 0x1000, 6: DATA, 1: 0, 2: 40})
    loops = [src for src in sources if "unchecked" in src and "wl = ll = ln" in src]
    assert loops
    for src in loops:
        lines = src.splitlines()
        calls = [i for i, line in enumerate(lines)
                 if re.fullmatch(r"\s*H\d+\(cpu, I\d+\)", line)
                 or re.search(r"\b(hr|hw|hin|tr)\(", line)]
        assert len(calls) > 6
        for i in calls:
            assert any("wl = ll = -1" in line for line in lines[max(0, i - 6):i + 1]), lines[i]


# --- every budget boundary --------------------------------------------------------------------


@pytest.mark.parametrize("board", ["p100", "486dx2-66"])
def test_the_loop_cut_at_every_instruction_budget_runs_identically_filtered(
    board: str, translations: list[object]
) -> None:
    # Runs of k instructions, one after the other: for each k from 6 on (a whole pass may
    # run translated) the cuts fall at every instruction boundary of the loop in turn.
    for k in range(1, 14):
        same4(SETUP + stride_loop(32), translations, k >= 7, board=board, pieces=k,
              max_instructions=300)
    for n in (9, 10, 17, 40):
        same4(SETUP + LOOP, translations, board=board, max_instructions=n)


@pytest.mark.parametrize("board", ["p100", "486dx2-66"])
def test_the_loop_cut_at_pass_ends_on_one_tlb_runs_identically_filtered(
    board: str, translations: list[object]
) -> None:
    # One TLB for code and data (the i486's), its code and data pages in one set: every
    # data hit makes the data page the set's MRU, every fetch the code page again, and a run
    # that stops right after a pass must leave the code page MRU (every fetch is checked).
    for n in (9, 12, 15, 16, 21, 27):
        same4(SETUP + LOOP, translations, board=board, config="i486", max_instructions=n)


@pytest.mark.parametrize("board", ["p100", "486dx2-66"])
@pytest.mark.parametrize("warm", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_loop_cut_at_every_cycle_budget_runs_identically_filtered(
    board: str, warm: bool, translations: list[object]
) -> None:
    # Cold, the first passes stall on misses (calls inside the unchecked pass); warm, they
    # hit. Between pieces the harness changes a register, a data word and a code byte.
    for chunk in range(1, 48 if warm else 24 if board == "p100" else 16):
        same4(SETUP + stride_loop(32), translations, board=board, chunk=chunk, warm=warm)


# --- generated programs -----------------------------------------------------------------------


@given(st.data(), st.integers(0, 2**32 - 1), st.sampled_from(["p100", "486dx2-66"]),
       st.sampled_from(["pentium", "i486"]), st.sampled_from([None, 5, 23]),
       st.sampled_from([0, 0, CD, NW]), st.sampled_from([0, 0, PCD, PWT]))
@settings(max_examples=30, deadline=None)
def test_generated_programs_run_identically_filtered(
    d: st.DataObject, seed: int, board: str, config: str, chunk: int | None, cr0: int,
    bits: int
) -> None:
    code = generated(d)
    # PCD/PWT on the data page or the stack's page (the programs use both).
    page = d.draw(st.sampled_from([DATA >> 12, (STACK_TOP - 1) >> 12]))
    kw: dict[str, Any] = {"board": board, "config": config, "seed": seed, "chunk": chunk,
                          "cr0": cr0, "pte": {page: bits} if bits else None}
    ways = [board_run(code, mode, **kw) for mode in MODES]
    assert ways[0] == ways[1] == ways[2] == ways[3]


# --- the filter and the MMU -------------------------------------------------------------------


def test_the_mmu_offers_the_filter_only_for_its_only_tracer() -> None:
    b = Bare(profile=PENTIUM)
    hierarchy = get_board("p100").build(b.cpu, b.mmu)
    assert hierarchy is not None
    b.mmu.add_tracer(hierarchy)
    assert isinstance(b.mmu.hot_filter, AccessFilter)

    class Watcher:
        def on_access(self, kind: Any, phys: int, size: int, user: bool) -> None:
            pass

    watcher = Watcher()
    b.mmu.add_tracer(watcher)
    assert b.mmu.hot_filter is None  # two tracers: every access through the reports
    b.mmu.remove_tracer(watcher)
    assert b.mmu.hot_filter is not None
    b.mmu.remove_tracer(hierarchy)
    assert b.mmu.hot_filter is None
    assert b.cpu.cr0 & CR0_PG  # (paging on throughout)


def test_a_second_tracer_turns_the_filtered_translation_off(
    translations: list[object]
) -> None:
    """With a recorder beside the hierarchy every access is reported (the traced variant)."""
    events: list[tuple[int, int, int]] = []

    class Recorder:
        def on_access(self, kind: Any, phys: int, size: int, user: bool) -> None:
            events.append((int(kind), phys, size))

    b = Bare(profile=PENTIUM)
    hierarchy = get_board("p100").build(b.cpu, b.mmu)
    assert hierarchy is not None
    b.mmu.add_tracer(hierarchy)
    b.mmu.add_tracer(Recorder())
    b.load(SETUP + LOOP + b"\x0f\x0b")
    b.run(max_instructions=200)
    assert translations and not any(isinstance(t, tuple) for t in translations)
    assert sum(1 for kind, _, _ in events if kind == 7) == 200  # one INSN per instruction
