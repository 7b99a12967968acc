"""Fuzzed instruction mixes: the Pentium issue model changes no architectural result (RDTSC,
which reads the cycle count, left out), and blocks and single steps give identical cycles."""

from __future__ import annotations

from fuzzkit import bare_machine, encodings
from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.machine import Machine
from lavsim.timing import PENTIUM
from lavsim.timing.pentium import PENTIUM_SEQUENTIAL

REGS = st.lists(st.one_of(st.integers(0, 0x3FFFF), st.integers(0, 2**32 - 1)),
                min_size=8, max_size=8)


def _table() -> tuple[bytes, ...]:
    return tuple(e for e in encodings() if b"\x0f\x31" not in e)


def _run(code: bytes, cpl: int, regs: list[int], profile: object, observe: bool) -> Machine:
    m = bare_machine(code, cpl, regs)
    m.cpu.profile = profile  # type: ignore[assignment]
    m.cpu.flush_decode_cache()
    if observe:
        m.add_observer(lambda *_: None)
    m.run(max_instructions=300)
    return m


def _arch(m: Machine) -> tuple[object, ...]:
    cpu = m.cpu
    return (list(cpu.regs), cpu.eip, cpu.get_eflags(), cpu.cpl, cpu.cr2, cpu.instructions,
            m.memory.digest())


@settings(max_examples=30, deadline=None)
@given(picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=40),
       cpl=st.sampled_from([0, 3]), regs=REGS)
def test_fuzzed_mixes_end_the_same_paired_or_not_and_in_blocks_or_steps(
    picks: list[int], cpl: int, regs: list[int]
) -> None:
    table = _table()
    code = b"".join(table[p % len(table)] for p in picks)
    paired = _run(code, cpl, regs, PENTIUM, False)
    stepped = _run(code, cpl, regs, PENTIUM, True)
    sequential = _run(code, cpl, regs, PENTIUM_SEQUENTIAL, False)
    assert _arch(paired) == _arch(sequential)
    assert _arch(paired) == _arch(stepped) and paired.cpu.tsc == stepped.cpu.tsc
