"""The block translator (``cpu/translate.py``) is a simulator-speed cache: a run with it gives
exactly the run of the block loop (``CPU.translate = False``) and of the straightforward path
(``fast=False``): cycles, registers, EFLAGS, EIP, instructions, memory, faults, every TLB's
contents in LRU order with statistics, the issue model's state and the BTB.

Every test here translates each block at its first entry (``TRANSLATE_AFTER = 0``), so short
programs run translated; a spy checks that translations were made. Then: generated programs
(the unicorn differential generator) on every TLB shape, with and without the Pentium issue
model; placed across a page; patching their own code; faulting in the middle of a block; cut
at every instruction and cycle budget; and code changed under translated blocks in every way
the issue lists (rewritten between and within runs, through an aliasing segment, by the
network card's DMA, by a page-table remap) is never run stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from cpu_harness import CODE, DATA, PAGE_DIR, PAGE_TABLES, STACK_TOP, Bare
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fast_paths import CONFIGS, LOOP, fixing_faults, generated, run_program

from lavsim.cpu import core
from lavsim.cpu.state import DS, SS
from lavsim.errors import MemoryAccessError
from lavsim.faults import PF
from lavsim.faults import SS as SS_VECTOR
from lavsim.machine import Machine, MachineConfig
from lavsim.mmu.descriptors import DATA_READ_WRITE_ACCESSED, DATA_READ_WRITE_EXPAND_DOWN_ACCESSED
from lavsim.mmu.segmentation import SegmentCache
from lavsim.network import Frame, Network, NetworkInterface, NetworkModel
from lavsim.timing import I486, PENTIUM
from lavsim.timing.pentium import PENTIUM_SEQUENTIAL

MASK = 0xFFFFFFFF

PROFILES = {"pentium": PENTIUM, "sequential": PENTIUM_SEQUENTIAL, "i486": I486}


@pytest.fixture(autouse=True)
def translations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Translate every block at its first entry; yields the addresses translated."""
    made: list[int] = []
    real = core.translate_block

    def spy(cpu: Any, block: Any, *args: Any) -> Any:
        made.append(block.addr)
        return real(cpu, block, *args)

    monkeypatch.setattr(core, "TRANSLATE_AFTER", 0)
    monkeypatch.setattr(core, "translate_block", spy)
    yield made


def same3(code: bytes, **kw: Any) -> tuple[object, ...]:
    """Translated, block loop and straightforward path agree; returns the translated run."""
    on = run_program(code, True, **kw)
    assert on == run_program(code, True, translate=False, **kw)
    assert on == run_program(code, False, **kw)
    return on


# --- generated programs ---------------------------------------------------------------------


@given(st.data(), st.integers(0, 2**32 - 1), st.sampled_from(sorted(CONFIGS)),
       st.sampled_from(sorted(PROFILES)))
@settings(max_examples=60)
def test_generated_programs_run_identically_translated(
    d: st.DataObject, seed: int, config: str, profile: str
) -> None:
    same3(generated(d), seed=seed, config=config, profile=PROFILES[profile])


@given(st.data(), st.integers(0, 2**32 - 1), st.integers(0x1000 - 24, 0x1000 - 1))
@settings(max_examples=30)
def test_translated_programs_across_a_page_run_identically(
    d: st.DataObject, seed: int, start: int
) -> None:
    same3(generated(d), seed=seed, at=CODE + start,
          config=d.draw(st.sampled_from(sorted(CONFIGS))))


@given(st.data(), st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_translated_self_modifying_code_runs_identically(d: st.DataObject, seed: int) -> None:
    body = generated(d)
    k = d.draw(st.integers(0, max(0, len(body) - 1)))
    value = bytes([d.draw(st.integers(0, 255))])
    store = b"\xc6\x05" + (CODE + 10 + k).to_bytes(4, "little") + value
    same3(store + b"\x90" * 3 + body, seed=seed, config=d.draw(st.sampled_from(sorted(CONFIGS))))


@given(st.data(), st.integers(0, 2**32 - 1))
@settings(max_examples=40)
def test_faults_in_the_middle_of_a_translated_block_run_identically(
    d: st.DataObject, seed: int
) -> None:
    code = generated(d)
    kw: dict[str, Any] = {"seed": seed, "config": d.draw(st.sampled_from(sorted(CONFIGS))),
                          "profile": PROFILES[d.draw(st.sampled_from(sorted(PROFILES)))]}
    which = d.draw(st.sampled_from(["ds", "ss", "cs", "page"]))
    if which == "ds":
        kw["ds_limit"] = DATA + d.draw(st.integers(0, 0xFFF))
    elif which == "ss":
        kw["ss_limit"] = d.draw(st.sampled_from([0x2FF000, 0x2FFF00, 0x2FFFE0]))
    elif which == "cs":
        kw["cs_limit"] = CODE + d.draw(st.integers(0, max(0, len(code) + 2)))
    else:
        kw["unmapped"] = (DATA >> 12,)
    same3(code, **kw)


@given(st.data(), st.integers(0, 2**32 - 1), st.integers(1, 60))
@settings(max_examples=30)
def test_translated_runs_cut_by_cycle_limits_with_interrupts_run_identically(
    d: st.DataObject, seed: int, chunk: int
) -> None:
    same3(generated(d), seed=seed, chunk=chunk, config=d.draw(st.sampled_from(sorted(CONFIGS))))


# --- with a tracer on the MMU ---------------------------------------------------------------


@given(st.data(), st.integers(0, 2**32 - 1), st.sampled_from(sorted(CONFIGS)),
       st.sampled_from([None, 7, 40]), st.sampled_from(sorted(PROFILES)))
@settings(max_examples=40)
def test_traced_runs_report_the_same_accesses_translated(
    d: st.DataObject, seed: int, config: str, chunk: int | None, profile: str
) -> None:
    """Every fetch, instruction and data access reaches the tracer exactly as on the
    per-instruction path, in the same order, and nothing else changes."""
    same3(generated(d), seed=seed, config=config, chunk=chunk, trace=True,
          profile=PROFILES[profile])


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("trace", [False, True])
def test_blocks_ending_in_a_system_instruction_translate_with_every_profile(
    profile: str, trace: bool, translations: list[int]
) -> None:
    # L: inc ebx ; dec ecx ; jnz next ; next: add eax, ebx ; cpuid-free system end: cli ;
    # ... sti ; dec edx ; jnz L ; ud2 (blocks that end in CLI/STI, not in a branch).
    code = (b"\xb9\x03\x00\x00\x00\xba\x20\x00\x00\x00"  # mov ecx, 3 ; mov edx, 32
            + b"\x43\x01\xd8\xfa\x43\xfb\x4a\x75\xf7")   # L: inc ebx; add eax, ebx; cli;
    #                                                      inc ebx; sti; dec edx; jnz L
    same3(code, trace=trace, profile=PROFILES[profile])
    assert translations


def test_the_looping_block_is_translated_under_tracing(translations: list[int]) -> None:
    on = same3(SETUP + LOOP, trace=True)
    assert translations.count(CODE + len(SETUP)) == 1
    events = on[-1]
    assert isinstance(events, list) and len(events) > 5 * 64  # fetch, insn, data per pass


def test_a_board_hierarchy_sees_the_same_run_translated() -> None:
    """The p100 board's caches (a tracer charging the TSC) end in the same state."""
    from lavsim.boards import get_board

    out = []
    for fast, translate in ((True, True), (True, False), (False, False)):
        b = Bare(profile=PENTIUM, decode_cache=fast)
        b.cpu.fast, b.cpu.translate = fast, translate
        hierarchy = get_board("p100").build(b.cpu, b.mmu)
        assert hierarchy is not None
        b.mmu.add_tracer(hierarchy)
        b.load(SETUP + LOOP + b"\x0f\x0b")
        b.run(max_instructions=2_000)
        out.append((_state(b), hierarchy.get_state()))
    assert out[0] == out[1] == out[2]


# --- every budget inside a looping block ----------------------------------------------------

#: The benchmark's loop, 64 times round (ECX counts up to EDX), then UD2.
SETUP = b"\xbe" + DATA.to_bytes(4, "little") + b"\xb9\x00\x00\x00\x00" + b"\xba\x40\x00\x00\x00"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_looping_block_cut_at_every_instruction_budget_runs_identically(
    profile: str, translations: list[int]
) -> None:
    for n in range(1, 60):
        same3(SETUP + LOOP, max_instructions=n, profile=PROFILES[profile])
    assert translations


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_looping_block_cut_at_every_cycle_budget_runs_identically(profile: str) -> None:
    for chunk in range(1, 40):
        same3(SETUP + LOOP, chunk=chunk, profile=PROFILES[profile])


def test_the_looping_block_runs_whole_passes_inside_its_translation(
    translations: list[int]
) -> None:
    on = same3(SETUP + LOOP, config="pentium")
    assert on[4] == 3 + 6 * 64  # setup, 64 passes (UD2 faults: not retired)
    assert translations.count(CODE + len(SETUP)) == 1  # one translation ran every pass


# --- invalidation ---------------------------------------------------------------------------


def _loop_machine(translate: bool) -> Bare:
    b = Bare(profile=PENTIUM)
    b.cpu.translate = translate
    # L: inc ebx ; dec ecx ; jnz L ; ud2
    b.load(b"\x43\x49\x75\xfc\x0f\x0b")
    return b


def _state(b: Bare) -> tuple[object, ...]:
    cpu = b.cpu
    return (list(cpu.regs), cpu.tsc, cpu.eip, cpu.instructions, b.mem.digest(), b.mmu.stats,
            [(f.vector, e) for f, e in b.faults], cpu.issue_state())


def test_code_rewritten_between_runs_is_never_run_stale() -> None:
    out = []
    for translate in (True, False):
        b = _loop_machine(translate)
        b.cpu.regs[1] = 1000
        b.run(max_instructions=300)
        b.mem.write8(CODE, 0x42)  # inc ebx -> inc edx, written by a loader
        b.cpu.physical_written(CODE, 1)
        b.run(max_instructions=300)
        out.append(_state(b))
    assert out[0] == out[1]
    regs = out[0][0]
    assert isinstance(regs, list) and regs[2] == 100 and regs[3] == 100


def test_code_rewritten_by_its_own_loop_within_a_run_is_never_run_stale() -> None:
    # L: mov byte [CODE+13], 0x42 (the second pass turns 'inc ebx' into 'inc edx')
    #    ... inc ebx ; dec ecx ; jnz L
    code = (b"\xc6\x05" + (CODE + 7).to_bytes(4, "little") + b"\x42"
            + b"\x43\x49\x75\xf5\x0f\x0b")
    out = []
    for translate in (True, False):
        b = Bare(profile=PENTIUM)
        b.cpu.translate = translate
        b.load(code)
        b.cpu.regs[1] = 10
        b.run()
        out.append(_state(b))
    assert out[0] == out[1]
    regs = out[0][0]
    assert isinstance(regs, list) and regs[3] == 0 and regs[2] == 10


def test_code_rewritten_through_an_aliasing_segment_is_never_run_stale() -> None:
    # DS based at CODE - 0x1000: [0x1000 + k] is code byte k. The loop stores 0x42 over its
    # own 'inc ebx' through that alias on the first pass.
    alias = SegmentCache(0x10, CODE - 0x1000, 0xFFFFFFFF - (CODE - 0x1000),
                         DATA_READ_WRITE_ACCESSED, True, 0, True, True, False)
    code = (b"\xc6\x05" + (0x1000 + 7).to_bytes(4, "little") + b"\x42"
            + b"\x43\x49\x75\xf5\x0f\x0b")
    out = []
    for translate in (True, False):
        b = Bare(profile=PENTIUM)
        b.cpu.translate = translate
        b.load(code)
        b.cpu.seg[DS] = alias
        b.cpu.regs[1] = 10
        b.run()
        out.append(_state(b))
    assert out[0] == out[1]
    regs = out[0][0]
    assert isinstance(regs, list) and regs[3] == 0 and regs[2] == 10


def test_code_rewritten_by_the_network_cards_dma_is_never_run_stale() -> None:
    src_loop = b"\x43\x49\x75\xfc\xf4"  # L: inc ebx ; dec ecx ; jnz L ; hlt
    out = []
    for translate in (True, False):
        m = Machine(MachineConfig(memory_size=1 << 20))
        m.cpu.translate = translate
        ring = 0x20000
        m.setup_flat_protected_mode(entry=ring + 4 + 12)
        m.load(ring + 4 + 12, src_loop)  # the code lies inside the receive slot's data
        m.cpu.regs[1] = 200
        m.run(max_cycles=300)
        nic = NetworkInterface(1, Network(NetworkModel()), partial(getattr, m.cpu, "tsc"),
                               m.memory.read, m.load, lambda: None)
        nic.rx_rings[0], nic.rx_slots = ring, 1
        # The frame's bytes 12.. land on the loop: 'inc ebx' becomes 'inc edx'.
        frame = bytes(12) + b"\x42\x49\x75\xfc\xf4"
        assert nic.deliver(Frame(0, 0, 2, 1, frame))
        m.run(max_cycles=100_000)
        out.append((list(m.cpu.regs), m.cpu.tsc, m.cpu.instructions, m.memory.digest()))
    assert out[0] == out[1]
    assert out[0][0][2] > 0 and out[0][0][3] > 0  # both versions of the loop ran


def test_a_page_table_remap_of_translated_code_is_never_run_stale() -> None:
    other = 0x180000
    out = []
    for translate in (True, False):
        b = _loop_machine(translate)
        b.mem.write(other, b"\x42\x49\x75\xfc\x0f\x0b")  # the same loop with inc edx
        b.cpu.regs[1] = 1000
        b.run(max_instructions=300)
        b.mem.write32(PAGE_TABLES + 4 * (CODE >> 12), other | 7)
        b.mmu.invlpg(CODE)
        b.run(max_instructions=300)
        out.append(_state(b))
    assert out[0] == out[1]
    regs = out[0][0]
    assert isinstance(regs, list) and regs[2] == 100 and regs[3] == 100


def test_stores_to_data_beside_translated_code_keep_its_translation(
    translations: list[int]
) -> None:
    # L: mov [CODE+0x800], ecx ; dec ecx ; jnz L: the data word shares the code's page.
    code = b"\x89\x0d" + (CODE + 0x800).to_bytes(4, "little") + b"\x49\x75\xf7\x0f\x0b"
    out = []
    for translate in (True, False):
        b = Bare(profile=PENTIUM)
        b.cpu.translate = translate
        b.load(code)
        b.cpu.regs[1] = 500
        b.run()
        out.append(_state(b))
    assert out[0] == out[1]
    assert translations.count(CODE) == 1  # translated once, never dropped by the stores


def test_a_store_over_one_instruction_drops_only_the_code_it_overlaps() -> None:
    b = Bare(profile=PENTIUM)
    b.load(b"\x90" * 32 + b"\x0f\x0b")
    b.run(max_instructions=5)
    cpu = b.cpu
    keys = dict(cpu._code_pages[CODE >> 12])
    assert keys[CODE] == CODE + 1 and any(k < CODE + 20 < end for k, end in keys.items())
    cpu.physical_written(CODE + 0x100, 4)  # beside the code: nothing dropped
    assert cpu._code_pages[CODE >> 12] == keys
    cpu.physical_written(CODE + 20, 1)  # inside the block after the first NOP
    left = cpu._code_pages[CODE >> 12]
    assert left == {k: end for k, end in keys.items() if not k <= CODE + 20 < end}
    assert CODE in left and CODE in cpu._icache


# --- a looped block's locals: registers, data-page memos, flags carried across passes ------


def _mov(reg: int, value: int) -> bytes:
    """mov reg32, imm32."""
    return bytes([0xB8 + reg]) + (value & 0xFFFFFFFF).to_bytes(4, "little")


@pytest.mark.parametrize("config", ["i486", "tiny"])
def test_the_looping_block_on_a_unified_tlb_cut_at_every_budget_runs_identically(
    config: str, translations: list[int]
) -> None:
    """Code and data pages share a set of the unified TLB (i486: 4 ways; tiny: 1), so every
    data hit through a non-MRU way demotes the code page's entry, whose next fetch must make
    it MRU again: the LRU order at every instruction and cycle budget is the interpreter's."""
    for n in range(1, 60):
        same3(SETUP + LOOP, max_instructions=n, config=config, profile=PENTIUM_SEQUENTIAL)
    for chunk in range(1, 25):
        same3(SETUP + LOOP, chunk=chunk, config=config)
    assert translations


#: Setup, then L: mov eax,[esi]; add eax,ebx; mov [esi],eax; add esi,edi; inc ecx;
#: cmp ecx,edx; jne L -- the benchmark's loop walking through memory by EDI.
def _walk(start: int, stride: int, passes: int = 64) -> bytes:
    return (_mov(6, start) + _mov(7, stride) + _mov(1, 0) + _mov(2, passes)
            + b"\x8b\x06\x01\xd8\x89\x06\x01\xfe\x41\x39\xd1\x75\xf3")


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("stride", [0x40, 0x41, 0xFFC])
@pytest.mark.parametrize("fault", ["none", "page", "ds"])
def test_a_looped_block_walking_into_faults_keeps_registers_and_memos_exact(
    config: str, stride: int, fault: str, translations: list[int]
) -> None:
    """The loop's registers live in locals and its data pages are memoised: a walk across
    pages (the memo replaced), misaligned accesses (handed to the handler: registers written
    back and read again around the call) and a #PF or #GP in the middle of a pass (restarted
    by the handler) end exactly as interpreted."""
    kw: dict[str, Any] = {"config": config}
    if fault == "page":
        kw["unmapped"] = ((DATA >> 12) + 1, (DATA >> 12) + 3)
    elif fault == "ds":
        kw["ds_limit"] = DATA + 0x1000 + 0x80
    on = same3(_walk(DATA + 0xF00, stride), **kw)
    regs = on[0]
    assert isinstance(regs, list) and regs[1] == 64  # every pass ran
    faults = on[8]
    assert isinstance(faults, list)
    assert any(f[0] != 6 for f in faults) == (fault != "none")  # vector 6: the final UD2
    assert translations


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("flush", [b"", b"\x0f\x01\x3e", b"\x0f\x20\xd8\x0f\x22\xd8"])
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_data_page_remapped_and_evicted_by_called_out_instructions_is_not_used_stale(
    config: str, flush: bytes, profile: str
) -> None:
    """Each pass loads and stores through ESI's page D (inline, memoised), touches four pages
    of D's TLB set with called-out ``add [ebp+disp], eax`` (so D's entry is evicted every
    pass: five pages cycling through four ways, or one) and moves D's page-table entry to
    the next frame with a called-out ``add [ebx], edx`` (optionally also INVLPG [esi] or a
    CR3 reload): after each call the memo is forgotten and D is reached through whatever the
    TLB now holds, the new frame after a refill, exactly as interpreted."""
    d_vpn = (DATA >> 12) + 1
    setup = (_mov(6, DATA + 0x1000) + _mov(3, PAGE_TABLES + 4 * d_vpn) + _mov(2, 0x1000)
             + _mov(5, DATA + 0x1000) + _mov(1, 20))
    touch = b"".join(b"\x01\x85" + (k << 16).to_bytes(4, "little") for k in range(1, 5))

    def loop(remap: bytes) -> bytes:
        body = b"\x8b\x06\x89\x0e" + touch + remap + flush + b"\x49"
        return setup + body + b"\x75" + bytes([(-(len(body) + 2)) & 0xFF])

    kw: dict[str, Any] = {"config": config, "profile": PROFILES[profile]}
    on = same3(loop(b"\x01\x13"), **kw)
    regs, memory_digest, stats = on[0], on[5], on[6]
    assert isinstance(regs, list) and regs[1] == 0  # every pass ran
    assert memory_digest != same3(loop(b"\x90\x90"), **kw)[5]  # the remap mattered
    assert stats.walks > 20 * 5  # type: ignore[attr-defined]  # D and the four missed every pass


def test_a_looped_store_into_its_own_code_page_is_seen_every_pass(
    translations: list[int]
) -> None:
    """The loop increments the immediate of its own ``add edi, imm32`` through an inline
    load and store: the write memo never holds a code page, so every store reaches the
    executor, which drops the block; no pass runs the stale immediate."""
    setup = _mov(6, 0) + _mov(1, 0) + _mov(2, 16) + _mov(3, 1) + _mov(7, 0)
    loop = CODE + len(setup)
    head = b"\x8b\x06\x01\xd8\x89\x06"  # mov eax,[esi]; add eax,ebx; mov [esi],eax
    pad = (-(loop + len(head) + 2)) % 4
    imm = loop + len(head) + pad + 2  # the aligned immediate of add edi, imm32
    body = head + b"\x90" * pad + b"\x81\xc7\x00\x00\x00\x00" + b"\x41\x39\xd1"
    code = (_mov(6, imm) + setup[5:] + body + b"\x75" + bytes([(-(len(body) + 2)) & 0xFF]))
    on = same3(code)
    regs = on[0]
    assert isinstance(regs, list) and regs[1] == 16 and regs[7] == sum(range(1, 17))
    assert translations.count(loop) > 1  # translated again after each store over it


def test_a_looped_store_beside_its_code_keeps_the_translation(
    translations: list[int]
) -> None:
    """The benchmark's loop with its data word in its own code page (beside the code): every
    store goes to the executor's code-page check, which drops nothing; one translation runs
    every pass."""
    setup = _mov(6, CODE + 0x800) + _mov(1, 0) + _mov(2, 64)
    on = same3(setup + LOOP)
    assert on[0][1] == 64  # type: ignore[index]
    assert translations.count(CODE + len(setup)) == 1


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_flags_carried_into_the_next_pass_of_a_looped_block_are_exact(profile: str) -> None:
    """L: inc ebx; sbb eax, eax; add edx, esi; dec ecx; jnz L: the INC at the top of each
    pass reads the carry the previous pass's ADD left (kept in its locals, not stored; it
    varies from pass to pass), and the called-out SBB reads the flags the INC made from it;
    cut at every budget."""
    code = _mov(1, 30) + _mov(6, 0x9E3779B9) + b"\x43\x19\xc0\x01\xf2\x49\x75\xf8"
    for n in range(1, 40):
        same3(code, max_instructions=n, profile=PROFILES[profile])
    for chunk in range(1, 30):
        same3(code, chunk=chunk, profile=PROFILES[profile])


@pytest.mark.parametrize("misaligned", [False, True])
def test_the_pending_u_data_address_of_a_looped_pass_is_exact_at_every_budget(
    misaligned: bool,
) -> None:
    """L: mov eax,[esi] (U) ; mov ebx,[esi+32] (V: same bank, a conflict) ; dec ecx ; jnz L
    with the Pentium issue model: the U's data address, kept as an expression in the unchecked
    pass, decides the V's bank conflict inside the pass and, after an exit that leaves the U
    pending (a misaligned load calls its handler, whose cycles may reach the limit), the
    conflict the executor charges next."""
    code = (_mov(6, DATA + (1 if misaligned else 0)) + _mov(1, 40)
            + b"\x8b\x06\x8b\x5e\x20\x49\x75\xf8")
    for chunk in range(1, 40):
        same3(code, chunk=chunk)
    for n in range(1, 30):
        same3(code, max_instructions=n)


def test_a_u_that_writes_its_own_address_register_keeps_its_data_address() -> None:
    """L: mov esi,[esi] (U, following a two-node ring) ; mov ebx,[edi] (V) ; dec ecx ; jnz L:
    the V's bank conflict is decided by the address the U loaded from, not by the ESI it
    loaded (they differ in bank every pass)."""
    ring = (b"\xc7\x05" + DATA.to_bytes(4, "little") + (DATA + 4).to_bytes(4, "little")
            + b"\xc7\x05" + (DATA + 4).to_bytes(4, "little") + DATA.to_bytes(4, "little"))
    code = (ring + _mov(6, DATA) + _mov(7, DATA + 32) + _mov(1, 40)
            + b"\x8b\x36\x8b\x1f\x49\x75\xf9")
    for chunk in (7, 13, 50):
        same3(code, chunk=chunk)
    same3(code)


@pytest.mark.parametrize("where", ["large page", "paging off"])
@pytest.mark.parametrize("stride", [0x40, 0xFFC])
def test_a_looped_block_walking_a_large_page_or_unpaged_memory_runs_identically(
    where: str, stride: int, translations: list[int]
) -> None:
    """The walking loop through the 4 KiB pieces of one 4 MiB page (CR4.PSE: the memo's owner
    is the large-page DTLB, its pieces replace each other in the memo) or with paging off (no
    TLB: nothing to credit): translated, block loop and straightforward runs agree in every
    register, cycle, memory byte and TLB entry."""
    from lavsim.mmu.paging import CR4_PSE

    out = []
    for fast, translate in ((True, True), (True, False), (False, False)):
        b = Bare(profile=PENTIUM, decode_cache=fast, paging=where != "paging off")
        b.cpu.fast, b.cpu.translate = fast, translate
        start = DATA + 0xF00
        if where == "large page":
            b.mem.write32(PAGE_DIR + 4 * 2, 0x400000 | 0x87)  # linear 8 MiB -> 4 MiB, PS
            b.cpu.cr4 = CR4_PSE
            b.mmu.set_controls(b.cpu.cr0, CR4_PSE)
            start = 0x800F00
        b.load(_walk(start, stride, passes=200))
        b.run(max_instructions=5_000)
        tlbs = [(name, t.contents()) for name, t in b.mmu.tlbs.items()]
        out.append((_state(b), tlbs, b.cpu.get_eflags()))
    assert out[0] == out[1] == out[2]
    regs = out[0][0][0]
    assert isinstance(regs, list) and regs[1] == 200
    if where == "large page":
        assert b.mmu.stats.tlbs[-1][1].hits > 0  # the large-page DTLB served the data
    assert translations


def test_flags_made_from_a_register_the_loop_then_writes_keep_the_old_value() -> None:
    """L: cmp eax, ebx ; mov ebx, [esi] ; inc ecx ; adc edx, eax ; xor esi, ebp ; dec edi ;
    jnz L, ESI alternating between words holding 0 and 10: the CF the INC keeps (and the
    called-out ADC reads) is the CMP's, made from the EBX before the load replaced it (the
    two differ in carry on every pass but the first)."""
    a = DATA + 0x100
    code = (b"\xc7\x05" + a.to_bytes(4, "little") + bytes(4)
            + b"\xc7\x05" + (a + 4).to_bytes(4, "little") + (10).to_bytes(4, "little")
            + _mov(0, 5) + _mov(3, 10) + _mov(6, a + 4) + _mov(5, 4) + _mov(2, 0) + _mov(7, 20)
            + b"\x39\xd8\x8b\x1e\x41\x11\xc2\x31\xee\x4f\x75\xf4")
    for profile in PROFILES.values():
        on = same3(code, profile=profile)
        regs = on[0]
        assert isinstance(regs, list) and regs[2] == 20 * 5 + 11  # carries: 10 > 5 before


# --- chained blocks and inline PUSH/POP -----------------------------------------------------

#: The three executors: translated (chained), the block loop, the straightforward path.
MODES3 = ((True, True), (True, False), (False, False))


def _run3(code: bytes, fast: bool, translate: bool, *, setup: Any = None,
          budget: int | None = None, chunk: int | None = None, config: str = "pentium",
          unmapped: tuple[int, ...] = (), profile: Any = PENTIUM) -> tuple[object, ...]:
    """Run ``code`` (then UD2) at CODE from a fixed state with faults fixed up and restarted
    (``fixing_faults``), first ``budget`` instructions or in ``chunk``-cycle pieces, then to
    the end; everything simulated."""
    b = Bare(decode_cache=fast, config=CONFIGS[config], unmapped=unmapped, profile=profile)
    cpu = b.cpu
    cpu.fast, cpu.translate = fast, translate
    b.mem.write(CODE, code + b"\x0f\x0b")
    cpu.regs[:] = [0x11111111, 0, 0x33333333, 0x44444444, STACK_TOP - 0x100, 0, 0, 0]
    if setup is not None:
        setup(b)
    faults: list[Any] = []
    stops: list[object] = []  # each piece's stop reason and where it stopped

    def piece(**limits: int) -> str:
        reason = cpu.run(**limits)
        stops.append((reason, cpu.eip, cpu.tsc, cpu.instructions, list(cpu.regs)))
        return reason

    with fixing_faults(faults):
        try:
            if budget is not None:
                piece(max_instructions=budget)
            if chunk is not None:
                for _ in range(400):
                    if piece(max_cycles=chunk, max_instructions=20_000) != "cycle_limit":
                        break
            piece(max_instructions=20_000)
        except MemoryAccessError as error:  # (a fixed-up stack left installed memory)
            stops.append(f"bus_error {error}")
    tlbs = tuple((n, t.contents()) for n, t in b.mmu.tlbs.items())
    btb = None if cpu.btb is None else cpu.btb.get_state()
    return (list(cpu.regs), cpu.get_eflags(), cpu.eip, cpu.tsc, cpu.instructions,
            [s.copy() for s in cpu.seg], cpu.cr2, cpu.cr3, b.mem.digest(), b.mmu.stats, tlbs,
            faults, stops, cpu.issue_state(), btb)


def same_modes(code: bytes, **kw: Any) -> tuple[object, ...]:
    """The three executors agree (see :data:`MODES3`); returns the translated run."""
    runs = [_run3(code, fast, translate, **kw) for fast, translate in MODES3]
    assert runs[0] == runs[1]
    assert runs[0] == runs[2]
    return runs[0]


#: mov ecx, 40 ; L: push eax ; push ebx ; add eax, ecx ; jmp M ; M: pop ebx ; pop edx ;
#: inc esi ; dec ecx ; jnz L -- two blocks chained to each other (A ends in the JMP, B in the
#: JNZ back to A), PUSH and POP inline.
CHAIN = (b"\xb9\x28\x00\x00\x00" + b"\x50\x53\x01\xc8\xeb\x00"
         + b"\x5b\x5a\x46\x49\x75\xf4")


@pytest.fixture
def entries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the general lookups of a translation (``CPU._translation`` calls)."""
    calls: list[int] = []
    real = core.CPU._translation

    def spy(cpu: Any, block: Any, phys: int, traced: bool = False) -> Any:
        calls.append(block.addr)
        return real(cpu, block, phys, traced)

    monkeypatch.setattr(core.CPU, "_translation", spy)
    return calls


def test_chained_blocks_skip_the_general_lookup_and_run_identically(
    translations: list[int], entries: list[int]
) -> None:
    on = same_modes(CHAIN, config="pentium")
    regs = on[0]
    assert isinstance(regs, list) and regs[1] == 0 and regs[6] == 40  # every pass ran
    # (Only the translated run looks translations up.) A and B: until each is chained.
    assert 0 < len(entries) < 10
    assert CODE + 5 in translations and CODE + 11 in translations


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_chained_blocks_cut_at_every_instruction_budget_run_identically(
    config: str, profile: str
) -> None:
    for n in range(1, 40):
        same_modes(CHAIN, budget=n, config=config, profile=PROFILES[profile])


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_chained_blocks_cut_at_every_cycle_budget_run_identically(config: str) -> None:
    for chunk in range(1, 30):
        same_modes(CHAIN, chunk=chunk, config=config)


def test_code_rewritten_while_its_chain_is_cached_is_never_run_stale() -> None:
    # L: xor byte [M], 1 ; jmp M ; M: inc ebx (0x43 <-> inc edx 0x42) ; dec ecx ; jnz L.
    # A (the XOR, called out) rewrites B every pass after B's chain from A is cached.
    at_m = CODE + 5 + 9
    code = (b"\xb9\x28\x00\x00\x00" + b"\x80\x35" + at_m.to_bytes(4, "little") + b"\x01"
            + b"\xeb\x00" + b"\x43\x49\x75\xf3")
    regs = same_modes(code)[0]
    assert isinstance(regs, list) and regs[1] == 0
    assert regs[3] == 0x44444444 + 20 and regs[2] == 0x33333333 + 20  # both versions ran


def test_code_rewritten_by_the_host_between_chained_runs_is_never_run_stale() -> None:
    def patch(b: Bare) -> None:
        # Runs of 100 instructions; between them the host turns B's 'inc esi' into 'inc edi'.
        b.cpu.run(max_instructions=100)
        b.mem.write8(CODE + 13, 0x47)
        b.cpu.physical_written(CODE + 13, 1)

    regs = same_modes(CHAIN, setup=patch)[0]
    assert isinstance(regs, list) and regs[1] == 0 and regs[6] > 0 and regs[7] > 0


def _second_directory(b: Bare) -> int:
    """A copy of the page directory and first table whose page CODE + 0x1000 maps the frame
    0x180000 (holding B's variant); returns its physical address."""
    pd2, pt2 = 0x3F0000, 0x3F1000
    for k in range(1024):
        b.mem.write32(pd2 + 4 * k, b.mem.read32(PAGE_DIR + 4 * k))
        b.mem.write32(pt2 + 4 * k, b.mem.read32(PAGE_TABLES + 4 * k))
    b.mem.write32(pd2, pt2 | 7)
    b.mem.write32(pt2 + 4 * ((CODE >> 12) + 1), 0x180000 | 7)
    return pd2


def test_a_cr3_switch_between_chained_blocks_never_runs_the_old_page() -> None:
    # A (page CODE): xor eax, edi ; mov cr3, eax ; jmp B. B (page CODE + 0x1000): inc ebx ;
    # dec ecx ; jnz A. Under the second directory B's page holds 'inc edx' instead.
    b_at = CODE + 0x1000

    def setup(b: Bare) -> None:
        pd2 = _second_directory(b)
        back = ((CODE + 5) - (b_at + 8) & MASK).to_bytes(4, "little")  # jnz A (rel32)
        b.mem.write(b_at, b"\x43\x49\x0f\x85" + back + b"\x0f\x0b")
        b.mem.write(0x180000, b"\x42\x49\x0f\x85" + back + b"\x0f\x0b")
        b.cpu.regs[0] = PAGE_DIR
        b.cpu.regs[7] = PAGE_DIR ^ pd2

    jmp = (b_at - (CODE + 15)) & MASK
    code = (b"\xb9\x28\x00\x00\x00" + b"\x31\xf8\x0f\x22\xd8\xe9" + jmp.to_bytes(4, "little"))
    for config in sorted(CONFIGS):
        regs = same_modes(code, setup=setup, config=config)[0]
        assert isinstance(regs, list) and regs[1] == 0
        assert regs[3] == 0x44444444 + 20 and regs[2] == 0x33333333 + 20


def test_a_tlb_flush_between_chained_blocks_runs_identically() -> None:
    # CHAIN with INVLPG of B's page and a CR3 reload in A: the chained page-map entries go.
    code = (b"\xb9\x28\x00\x00\x00" + b"\x50\x53\x0f\x01\x3d" + (CODE + 20).to_bytes(4, "little")
            + b"\x0f\x20\xd8\x0f\x22\xd8\xeb\x00" + b"\x5b\x5a\x46\x49\x75\xe9")
    for config in sorted(CONFIGS):
        regs = same_modes(code, config=config)[0]
        assert isinstance(regs, list) and regs[1] == 0 and regs[6] == 40


def test_a_remapped_successor_page_refilled_by_a_data_access_is_not_chained_stale() -> None:
    # A: xor [PTE of B's page], edi (its frame alternates between B and B') ; invlpg [B].
    # C: mov eax, [B] (on a unified TLB this refills B's entry: a new host page-map entry) ;
    # jmp B. B: inc ebx ; dec ecx ; jnz A -- B' (frame 0x180000): inc edx instead.
    b_at = CODE + 0x1000
    pte = PAGE_TABLES + 4 * (b_at >> 12)

    def setup(b: Bare) -> None:
        back = ((CODE + 10) - (b_at + 8) & MASK).to_bytes(4, "little")  # jnz A (rel32)
        b.mem.write(b_at, b"\x43\x49\x0f\x85" + back + b"\x0f\x0b")
        b.mem.write(0x180000, b"\x42\x49\x0f\x85" + back + b"\x0f\x0b")

    code = (b"\xb9\x28\x00\x00\x00" + _mov(7, b_at ^ 0x180000)
            + b"\x31\x3d" + pte.to_bytes(4, "little") + b"\x0f\x01\x3d" + b_at.to_bytes(4, "little")
            + b"\xa1" + b_at.to_bytes(4, "little")
            + b"\xe9" + ((b_at - (CODE + 33)) & MASK).to_bytes(4, "little"))
    for config in sorted(CONFIGS):
        regs = same_modes(code, setup=setup, config=config)[0]
        assert isinstance(regs, list) and regs[1] == 0
        assert regs[3] == 0x44444444 + 20 and regs[2] == 0x33333333 + 20


def test_a_successor_entered_with_another_issue_state_is_not_chained_to_the_old_one(
    translations: list[int]
) -> None:
    # L: dec ecx ; jz END ; test cl, 1 ; jz Q2. Q1: cld + 63 INCs of EAX and EDX in turn (a
    # 64-instruction block that leaves a U pending), falling into P: 64 INCs (EDX first,
    # pairing with that U), then S: inc ebx ; inc esi ; jmp L. Q2: jmp P. P leaves a U
    # pending for S only when entered from Q1, so S's entry issue state (and how it pairs)
    # alternates and P's remembered successor fits every other pass.
    incs = b"\x40\x42" * 32
    code = (b"\xb9\x28\x00\x00\x00" + b"\x49\x0f\x84" + (149).to_bytes(4, "little")
            + b"\xf6\xc1\x01\x0f\x84" + (135).to_bytes(4, "little")
            + b"\xfc" + incs[:63] + incs[1:] + b"\x40"
            + b"\x43\x46\xe9" + (-151 & MASK).to_bytes(4, "little")
            + b"\xe9" + (-76 & MASK).to_bytes(4, "little"))
    assert len(code) == 161
    for chunk in (None, 7, 30):
        regs = same_modes(code, chunk=chunk)[0]
        assert isinstance(regs, list) and regs[1] == 0 and regs[3] == 0x44444444 + 39
        if chunk is None:
            assert translations.count(CODE + 149) == 2  # S under both issue states


def test_a_far_jump_to_a_code_segment_based_elsewhere_in_the_page_is_not_chained_stale(
) -> None:
    # L: xor word [DATA + 4], 0x10 ; jmp far [DATA] -- to 0x08:X (flat) and 0x18:X (based
    # 0x10) in turn. At X: inc ebx ; dec ecx ; jz END ; jmp far [DATA + 8] (back to 0x08:L);
    # at X + 0x10 the same with inc edx. Same EIP, same page, another physical address.
    gdt, x = 0x3E0000, CODE + 0x40

    def setup(b: Bare) -> None:
        from lavsim.mmu.descriptors import CODE_EXECUTE_READ, DATA_READ_WRITE, SegmentDescriptor

        for sel, base, code_seg in ((0x08, 0, True), (0x10, 0, False), (0x18, 0x10, True)):
            kind = CODE_EXECUTE_READ if code_seg else DATA_READ_WRITE
            desc = SegmentDescriptor(base, 0xFFFFF, kind, 0, g=True)
            b.mem.write(gdt + sel, desc.encode())
        b.cpu.gdtr_base, b.cpu.gdtr_limit = gdt, 0x1F
        b.mem.write(DATA, x.to_bytes(4, "little") + b"\x08\x00\x00\x00"
                    + (CODE + 5).to_bytes(4, "little") + b"\x08\x00")
        jz = (0x20 - 8).to_bytes(4, "little")  # to X + 0x20 (linear X + 0x30 when based)
        back = b"\xff\x2d" + (DATA + 8).to_bytes(4, "little")
        b.mem.write(x, b"\x43\x49\x0f\x84" + jz + back)
        b.mem.write(x + 0x10, b"\x42\x49\x0f\x84" + jz + back)
        b.mem.write(x + 0x20, b"\x0f\x0b")
        b.mem.write(x + 0x30, b"\x0f\x0b")

    code = (b"\xb9\x28\x00\x00\x00" + b"\x66\x81\x35" + (DATA + 4).to_bytes(4, "little")
            + b"\x10\x00" + b"\xff\x2d" + DATA.to_bytes(4, "little"))
    for config in sorted(CONFIGS):
        regs = same_modes(code, setup=setup, config=config)[0]
        assert isinstance(regs, list) and regs[1] == 0
        assert regs[3] == 0x44444444 + 20 and regs[2] == 0x33333333 + 20


#: Stack segments for the PUSH/POP walks: (base, limit, type, B), see _stack_walk.
STACKS = {
    "flat": (0, 0xFFFFFFFF, DATA_READ_WRITE_ACCESSED, True),
    "limit": (0, 0x2FF0A0, DATA_READ_WRITE_ACCESSED, True),  # expand-up, cut above
    "expand_down": (0, 0x2FF000, DATA_READ_WRITE_EXPAND_DOWN_ACCESSED, True),  # cut below
    "wrap": (0x300000, 0xFFFFFFFF, DATA_READ_WRITE_ACCESSED, True),  # ESP wraps past 0
    # 16-bit (B = 0; the handler): SP wraps inside 64 KiB, ESP's upper half stays.
    "small": (0x2F0000, 0xFFFFF, DATA_READ_WRITE_ACCESSED, False),
}


def _stack_walk(up: bool, chained: bool, esp: int) -> bytes:
    """mov esp, ``esp`` ; mov ecx, 40 ; L: push eax ; push ebx ; pop edx (walking down 4
    bytes a pass) or pop edx ; pop eax ; push ebx (up) ; [jmp M ; M:] dec ecx ; jnz L."""
    body = b"\x5a\x58\x53" if up else b"\x50\x53\x5a"
    if chained:
        body += b"\xeb\x00"
    body += b"\x49\x75" + bytes([-(len(body) + 3) & 0xFF])
    return _mov(4, esp) + b"\xb9\x28\x00\x00\x00" + body


@pytest.mark.parametrize("stack", sorted(STACKS))
@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("chained", [False, True])
def test_push_and_pop_walking_into_stack_limits_fault_and_wrap_identically(
    stack: str, up: bool, chained: bool, translations: list[int]
) -> None:
    """PUSH/POP inline (a self-looping block: registers in locals; or two chained blocks)
    walking ESP across SS's upper limit, an expand-down segment's lower limit (#SS, restarted
    with a flat SS), past offset 0 or 0xFFFFFFFF (ESP wraps: linear base + offset wraps
    too) and on a 16-bit stack (the handler's SP arithmetic), every budget, as interpreted."""
    base, limit, kind, big = STACKS[stack]
    esp = {"limit": 0x2FF040, "expand_down": 0x2FF060, "wrap": 0x10 if not up else 0xFFFFFFF0,
           "small": 0x10008, "flat": 0x2FF040}[stack]
    code = _stack_walk(up, chained, esp)

    def setup(b: Bare) -> None:
        b.cpu.seg[SS] = SegmentCache(0x10, base, limit, kind, True, 0, True, big, False)

    for budget in (None, *range(3, 40, 3)):
        on = same_modes(code, setup=setup, budget=budget)
        faults = on[11]
        assert isinstance(faults, list)
        hit = [f for f in faults if f[0] == SS_VECTOR]
        assert bool(hit) == ((stack, up) in (("limit", True), ("expand_down", False)))
    assert translations


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("chained", [False, True])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_push_and_pop_onto_an_unmapped_stack_page_fault_with_cr2(
    up: bool, chained: bool, config: str
) -> None:
    """The walk crosses into an unmapped page: #PF with CR2 at the first byte PUSH writes or
    POP reads there (the harness then maps the page and the instruction restarts)."""
    esp = 0x2FEFC0 if up else 0x2FF040
    page = 0x2FF if up else 0x2FE
    for chunk in (None, 5, 23):
        on = same_modes(_stack_walk(up, chained, esp), config=config, unmapped=(page,),
                        chunk=chunk)
        faults = on[11]
        assert isinstance(faults, list)
        pf = [f for f in faults if f[0] == PF]
        assert len(pf) == 1 and pf[0][3] == (0x2FF000 if up else 0x2FEFFC)
        regs = on[0]
        assert isinstance(regs, list) and regs[1] == 0


def _gate3(scenario: Any, pieces: tuple[int, ...] = (), cycles: int | None = None
           ) -> tuple[object, ...]:
    """The call-gate scenario of tests/cpu/test_far_fast_path.py run by the three executors
    (the straightforward one with the reference far-transfer path), cut into ``pieces``
    instructions or ``cycles``-cycle pieces; everything simulated, where each piece ended."""
    from test_far_fast_path import observe

    out = []
    for fast, translate in MODES3:
        b = scenario.build(fast)
        b.cpu.fast, b.cpu.translate = fast, translate
        ends: list[object] = []
        for n in pieces:
            ends.append((b.run(max_instructions=n), b.cpu.tsc, b.cpu.eip, list(b.cpu.regs)))
            if b.faults:
                break
        for _ in range(400 if cycles is not None and not b.faults else 0):
            ends.append((b.run(max_cycles=cycles), b.cpu.tsc, b.cpu.eip, list(b.cpu.regs)))
            if b.faults:
                break
        if not b.faults:
            b.run(max_instructions=20_000)
        out.append((observe(b), ends))
    assert out[0] == out[1]
    assert out[0] == out[2]
    return out[0][0]


@pytest.mark.parametrize("config", ["pentium", "tiny"])
@pytest.mark.parametrize("edits", ["none", "gate_offset", "tss_esp", "tss_ss", "cs_limit",
                                   "ss_limit"])
def test_chained_blocks_through_call_gates_and_far_returns_run_identically(
    config: str, edits: str, translations: list[int]
) -> None:
    """Blocks chained across far CALLs through gates to rings 2, 1 and 0, far RETs, far JMPs
    and LDT gates, while the guest edits gates, the TSS and segment limits."""
    from test_far_fast_path import Scenario, fault_of

    result = _gate3(Scenario(config=config, edits=edits, iterations=16))
    assert fault_of(result) == (6, None)  # the loop ran to its final UD2
    assert translations


def test_chained_call_gate_loops_cut_at_instruction_and_cycle_budgets_run_identically(
) -> None:
    from test_far_fast_path import Scenario

    scenario = Scenario(iterations=6)
    for n in range(1, 90, 4):
        _gate3(scenario, pieces=(n, 3, 1))
    for cycles in (1, 5, 17, 60):
        _gate3(scenario, cycles=cycles)


@pytest.mark.parametrize("inject", ["gate_not_present", "stack_limit", "return_ss",
                                    "gate_offset_limit"])
def test_faults_between_chained_gate_blocks_are_exact(inject: str) -> None:
    from test_far_fast_path import INJECT, Scenario, fault_of

    result = _gate3(Scenario(inject=inject, iterations=8))
    assert fault_of(result) == INJECT[inject][1]
