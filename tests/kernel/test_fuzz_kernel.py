"""Fuzzing user code under the kernel: random bytes and random mixes of the ISA table's
instructions, with random registers, as the code of user threads. Only architectural faults
follow: a faulting thread is killed with a recorded reason, the kernel never panics, the
machine never stops abnormally, no Python exception escapes, runs are bounded, and a
well-behaved thread in the same address space finishes with the right result."""

from __future__ import annotations

import os

import pytest
from fuzzkit import FUZZED, encodings
from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.kernel import LavenderSystem

GOOD = """
main:
    xor eax, eax
    mov ecx, 50
again:
    add eax, ecx
    loop again
    mov dword ptr [0], eax
    mov ebx, eax
    mov eax, 0                   # exit(1275)
    int 0x30
"""
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
CYCLES = 1_500_000 if DEEP else 300_000
REGISTERS = ("eax", "ecx", "edx", "ebx", "ebp", "esi", "edi")
FAULT_VECTORS = set(range(20))

regs = st.lists(st.integers(0, 2**32 - 1), min_size=7, max_size=7)


@pytest.fixture(scope="module", autouse=True)
def _report() -> object:
    yield
    print(f"\nkernel fuzz, user-mode instructions fuzzed: {dict(FUZZED)}")


def _run(images: list[bytes], registers: list[list[int]], family: str) -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=1_500)
    group = system.create_group()
    good_process = system.create_process(group, GOOD, data_size=64)
    good = system.create_thread(good_process, "main")
    fuzzed = []
    for image, values in zip(images, registers, strict=True):
        process = system.create_process(group, image=image, data_size=4096, stack_size=1024,
                                        max_threads=2)
        fuzzed.append(system.create_thread(process, 0,
                                           registers=dict(zip(REGISTERS, values, strict=True))))
    outcome = system.run(max_cycles=CYCLES)
    FUZZED[family] += system.stats().rows.get("<user>", _NO_ROW).steps
    assert outcome.status in ("done", "cycle_limit", "idle", "deadlock"), outcome
    assert system.panic_report() is None
    state = system.thread_state(good)
    assert (state.state, state.exit_code, state.fault) == ("dead", 1275, None)
    assert system.read_data32(good_process, 0) == 1275
    for thread in fuzzed:
        state = system.thread_state(thread)
        if state.fault is not None:
            assert state.state == "dead"
            assert state.fault.vector in FAULT_VECTORS
            assert state.fault.pid == thread.process.pid
            assert state.fault.cs & 3 == 3, "a user thread faults in user mode"


class _NoRow:
    steps = 0


_NO_ROW = _NoRow()


@given(images=st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=3),
       data=st.data())
def test_random_bytes_as_user_code_only_kill_their_threads(images: list[bytes],
                                                           data: st.DataObject) -> None:
    registers = [data.draw(regs) for _ in images]
    _run(images, registers, "bytes")


@given(picks=st.lists(st.lists(st.integers(0, 10**6), min_size=1, max_size=60),
                      min_size=1, max_size=3),
       data=st.data())
def test_random_instruction_mixes_as_user_code_only_kill_their_threads(
    picks: list[list[int]], data: st.DataObject
) -> None:
    table = encodings()
    images = [b"".join(table[p % len(table)] for p in chosen) for chosen in picks]
    registers = [data.draw(regs) for _ in images]
    _run(images, registers, "mix")


@pytest.mark.slow
@settings(max_examples=2_000)
@given(images=st.lists(st.binary(min_size=1, max_size=400), min_size=1, max_size=4),
       data=st.data())
def test_random_bytes_as_user_code_long(images: list[bytes], data: st.DataObject) -> None:
    _run(images, [data.draw(regs) for _ in images], "bytes")
