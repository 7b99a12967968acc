"""The decoded-instruction cache is a simulator-speed cache: runs with it on and off give the
same registers, cycles, memory, TLB statistics and contents; self-modifying code (also written
through another linear alias, and by REP STOSD's bulk path) is seen at the next fetch."""

from __future__ import annotations

from cpu_harness import CODE, DATA, PAGE_TABLES, Bare
from hypothesis import given
from hypothesis import strategies as st
from test_unicorn_diff import Program, gen_block, random_state

from lavsim.mmu.mmu import MMUConfig

EAX = 0


def outcome(code: bytes, decode_cache: bool, seed: int = 1,
            config: MMUConfig | None = None) -> tuple[object, ...]:
    regs, eflags, data, _stack = random_state(seed)
    b = Bare(decode_cache=decode_cache, config=config)
    b.mem.write(CODE, code + b"\x0f\x0b")
    b.mem.write(DATA, data)
    b.cpu.regs[:] = regs
    b.cpu.set_eflags(eflags)
    b.run(max_instructions=20_000)
    tlbs = tuple((n, t.contents()) for n, t in b.mmu.tlbs.items())
    return (list(b.cpu.regs), b.cpu.get_eflags(), b.cpu.eip, b.cpu.tsc, b.cpu.instructions,
            b.mem.digest(), b.mmu.stats, tlbs, [(f, e) for f, e in b.faults])


@given(st.data(), st.integers(0, 2**32 - 1))
def test_programs_run_identically_with_and_without_the_cache(d: st.DataObject, seed: int
                                                             ) -> None:
    p = Program()
    gen_block(p, d, d.draw(st.integers(2, 10)))
    code = bytes(p.code)
    assert outcome(code, True, seed) == outcome(code, False, seed)


def smc_program() -> bytes:
    """A loop that rewrites the immediate of its own ``add eax, imm32`` each iteration."""
    target = CODE + 5 + 1  # the imm32 of the add below (after the 5-byte mov ecx)
    return (b"\xb9\x05\x00\x00\x00"           # mov ecx, 5
            + b"\x05\x01\x00\x00\x00"         # L: add eax, imm32   (imm at CODE+6)
            + b"\x83\x05" + target.to_bytes(4, "little") + b"\x01"  # add dword [imm], 1
            + b"\xe2\xf2")                    # loop L


def test_self_modifying_code_is_seen_at_next_fetch() -> None:
    on = outcome(smc_program(), True)
    off = outcome(smc_program(), False)
    assert on == off
    regs = on[0]
    assert isinstance(regs, list) and regs[EAX] == (1 + 2 + 3 + 4 + 5 + _eax0())


def _eax0() -> int:
    return random_state(1)[0][EAX]


def test_code_written_through_another_linear_alias_is_seen() -> None:
    alias = 0x700000
    code = (b"\xb8\x01\x00\x00\x00"          # mov eax, 1       (CODE)
            + b"\xc6\x05" + (alias + 1).to_bytes(4, "little") + b"\x07"  # mov byte [alias+1], 7
            + b"\xe9" + (-(5 + 7 + 5) & 0xFFFFFFFF).to_bytes(4, "little"))  # jmp CODE
    for cache in (True, False):
        b = Bare(decode_cache=cache)
        # map the alias page onto the code page
        b.mem.write32(PAGE_TABLES + 4 * (alias >> 12), CODE | 7)
        b.mem.write(CODE, code)
        b.run(max_instructions=4)  # mov, mov-to-alias, jmp, mov again
        assert b.cpu.regs[EAX] == 7, cache


def test_bulk_rep_stosd_over_cached_code_is_seen() -> None:
    # rep stosd overwrites the following (already executed once) bytes with NOPs... via a
    # second pass: first pass runs 'inc ebx', second pass finds NOPs.
    body = b"\x43" * 8  # inc ebx x8 at CODE+0x20
    setup = (b"\xbf" + (CODE + 0x20).to_bytes(4, "little")   # mov edi, CODE+0x20
             + b"\xb9\x02\x00\x00\x00"                        # mov ecx, 2
             + b"\xb8\x90\x90\x90\x90")                       # mov eax, nop x4
    for cache in (True, False):
        b = Bare(decode_cache=cache)
        b.mem.write(CODE + 0x20, body + b"\xc3")             # ret
        b.mem.write(CODE, b"\xe8\x1b\x00\x00\x00"              # call CODE+0x20
                    + setup + b"\xf3\xab"                      # rep stosd
                    + b"\xe8\x05\x00\x00\x00" + b"\x0f\x0b")  # call CODE+0x20 (again)
        b.cpu.regs[3] = 0
        b.run(max_instructions=100)
        assert b.cpu.regs[3] == 8, cache  # the second call ran the NOPs stored over the incs
        assert b.faults[0][1] == CODE + 0x1B


def test_cache_on_and_off_identical_on_split_tlbs() -> None:
    code = smc_program()
    cfg = MMUConfig.pentium()
    assert outcome(code, True, config=cfg) == outcome(code, False, config=cfg)
