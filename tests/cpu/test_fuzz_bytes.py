"""No guest input raises a Python exception out of the CPU: random bytes as code, from random
registers, with part of memory unmapped, only ever run, halt, or fault architecturally
(every fault is a CpuFault handed to the fault handler)."""

from __future__ import annotations

import pytest
from cpu_harness import CODE, DATA, Bare
from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.cpu.state import CS, DS
from lavsim.faults import CpuFault
from lavsim.mmu.segmentation import SegmentCache

# Pages left unmapped so that random addresses fault instead of touching memory that is not
# installed (that is a host error by design, not a guest one).
MAPPED_PAGES = 0x800


def _bare(cache: bool, regs: list[int], limited: bool) -> Bare:
    b = Bare(decode_cache=cache, mem_size=16 << 20)
    if limited:
        b.cpu.seg[CS] = SegmentCache(0x08, 0, CODE + 0x40, 0xB, True, 0, True, True)
        b.cpu.seg[DS] = SegmentCache(0x10, DATA, 0xFFF, 0x3, True, 0, True, True)
    for k, v in enumerate(regs):
        if k != 4:
            b.cpu.regs[k] = v
    return b


@given(code=st.binary(min_size=1, max_size=64),
       regs=st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=8),
       limited=st.booleans())
def test_random_bytes_never_raise_python_errors(code: bytes, regs: list[int],
                                                limited: bool) -> None:
    results = []
    for cache in (True, False):
        b = _bare(cache, regs, limited)
        b.mem.write(CODE, code)
        reason = b.run(max_instructions=200, max_cycles=20_000)
        assert reason in ("halted", "instruction_limit", "cycle_limit")
        for fault, _ in b.faults:
            assert isinstance(fault, CpuFault)
        results.append((list(b.cpu.regs), b.cpu.eip, b.cpu.tsc, b.faults, b.mem.digest()))
    assert results[0] == results[1]


@pytest.mark.slow
@settings(max_examples=5000)
@given(code=st.binary(min_size=1, max_size=64),
       regs=st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=8))
def test_random_bytes_never_raise_python_errors_long(code: bytes, regs: list[int]) -> None:
    b = _bare(True, regs, False)
    b.mem.write(CODE, code)
    b.run(max_instructions=500)
