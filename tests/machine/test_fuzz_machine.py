"""Bare-machine fuzzing (no kernel): any bytes, and any mix of the ISA table's instructions with
random registers, run at CPL 0 or CPL 3, stop with a RunResult reason and never raise a Python
exception; the same input gives the same run."""

from __future__ import annotations

import os
import time

import pytest
from fuzzkit import FUZZED, encodings, run_bare
from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.cpu.asm import assemble
from lavsim.machine import Machine, MachineConfig

#: Instructions per run: modest under the ``ci`` profile, longer under ``deep``.
BUDGET = 1_500 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else 400
REASONS = {"halted", "instruction_limit", "cycle_limit", "triple_fault", "bus_error"}
REGS = st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=8)
# Registers are often small so that memory operands land inside the segments.
SMALL_REGS = st.lists(st.one_of(st.integers(0, 0x3FFFF), st.integers(0, 2**32 - 1)),
                      min_size=8, max_size=8)


@pytest.fixture(scope="module", autouse=True)
def _report() -> object:
    yield
    print(f"\nbare-machine instructions fuzzed: {dict(FUZZED)}")


@given(code=st.binary(min_size=1, max_size=96), cpl=st.sampled_from([0, 3]), regs=REGS)
def test_random_bytes_at_cpl0_and_cpl3_stop_with_a_reason(code: bytes, cpl: int,
                                                          regs: list[int]) -> None:
    first = run_bare(code, cpl, regs, f"bytes cpl{cpl}", BUDGET)
    assert first.reason in REASONS
    assert run_bare(code, cpl, regs, f"bytes cpl{cpl}", BUDGET) == first


@given(picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=40),
       cpl=st.sampled_from([0, 3]), regs=SMALL_REGS)
def test_random_instruction_mixes_at_cpl0_and_cpl3_stop_with_a_reason(
    picks: list[int], cpl: int, regs: list[int]
) -> None:
    table = encodings()
    code = b"".join(table[p % len(table)] for p in picks)
    first = run_bare(code, cpl, regs, f"mix cpl{cpl}", BUDGET)
    assert first.reason in REASONS
    assert run_bare(code, cpl, regs, f"mix cpl{cpl}", BUDGET) == first


@pytest.mark.slow
@settings(max_examples=20_000)
@given(code=st.binary(min_size=1, max_size=128), cpl=st.sampled_from([0, 3]), regs=SMALL_REGS)
def test_random_bytes_long(code: bytes, cpl: int, regs: list[int]) -> None:
    assert run_bare(code, cpl, regs, f"bytes cpl{cpl}", 2_000).reason in REASONS


def test_a_rep_string_instruction_does_not_overrun_the_run_budget_by_far() -> None:
    # CPL 0, flat 4 GiB segments: `rep lodsd` with ECX = 200_000 stops between iterations at
    # the budget (cpu/ops_string.py), with EIP still at it and ECX counting what is left.
    code = assemble("mov ecx, 200000\nxor esi, esi\nrep lodsd\ncli\nhlt\n", origin=0x10000).code
    m = Machine(MachineConfig(memory_size=16 << 20))
    m.load(0x10000, code)
    m.setup_flat_protected_mode(entry=0x10000)
    started = time.perf_counter()
    result = m.run(max_cycles=1_000)
    elapsed = time.perf_counter() - started
    # A budget of 1,000 cycles; real processors take interrupts between REP iterations.
    assert result.cycles < 10_000, (result, elapsed)
    assert result.reason == "cycle_limit" and 0 < m.cpu.regs[1] < 200_000
    assert m.cpu.eip == 0x10000 + code.index(b"\xf3\xad")
    # Continued to the end, the instruction costs what it costs uninterrupted.
    rest = m.run(max_cycles=10_000_000)
    whole = Machine(MachineConfig(memory_size=16 << 20))
    whole.load(0x10000, code)
    whole.setup_flat_protected_mode(entry=0x10000)
    once = whole.run(max_cycles=10_000_000)
    assert rest.reason == once.reason == "halted"
    assert m.cpu.tsc == whole.cpu.tsc and m.cpu.regs == whole.cpu.regs
    assert m.cpu.instructions == whole.cpu.instructions
