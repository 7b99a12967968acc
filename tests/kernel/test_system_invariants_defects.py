"""Minimal reproducers of defects the system-invariant and fuzz properties found (issue 7)."""

from __future__ import annotations

import pytest

from lavsim.faults import GP
from lavsim.kernel import LavenderSystem
from lavsim.kernel.invariants import check_kernel_consistency
from lavsim.kernel.ipc import user_prelude

BYSTANDER = """
main:
    mov ecx, 300
spin:
    loop spin
    mov eax, 0
    mov ebx, 5
    int 0x30
"""


@pytest.mark.parametrize("timer_period", [0, 700])
def test_a_system_call_as_the_last_instruction_kills_only_its_thread(timer_period: int) -> None:
    """Found by test_random_bytes_as_user_code_only_kill_their_threads (deep, seed 6: random
    bytes ending in ``cd 30`` with a harmless call number). A thread whose code ends with
    ``int 0x30`` returns to EIP = code limit + 1; IRETD refuses that context with #GP(0) at
    CPL 0, and the kernel used to panic. Now the thread is killed with that fault, recorded at
    its own CS:EIP, and the kernel runs on. A timer tick right after a thread's last instruction
    did the same, which is why the failure looked flaky."""
    system = LavenderSystem(memory_size=4 << 20, timer_period=timer_period)
    group = system.create_group()
    victim = system.create_process(group, "main:\n    mov eax, 1\n    int 0x30\n", data_size=64)
    thread = system.create_thread(victim, "main")
    other = system.create_process(group, BYSTANDER, data_size=64)
    bystander = system.create_thread(other, "main")
    outcome = system.run(max_cycles=200_000)
    assert outcome.status == "done", outcome
    fault = system.thread_state(thread).fault
    assert fault is not None
    assert (fault.vector, fault.error_code, fault.cs, fault.eip) == (GP, 0, 0x07, 7)
    assert fault.pid == victim.pid
    assert system.thread_state(bystander).exit_code == 5
    assert check_kernel_consistency(system) == []


def test_a_procedure_ending_in_a_system_call_kills_the_thread_as_the_servers_fault() -> None:
    """The same at CPL 2: a procedure whose last instruction is ``int 0x30`` (a DPL 3 gate, so
    ring 2 may use it) is resumed at its segment's limit + 1; the fault is the server's."""
    system = LavenderSystem(memory_size=4 << 20, timer_period=0)
    group = system.create_group()
    server = system.create_process(
        group, "main:\n    mov eax, 0\n    xor ebx, ebx\n    int 0x30\n", data_size=64
    )
    export = system.sharing.export_procedure(
        server, "entry:\n    mov eax, 1\n    int 0x30\n", entry="entry"
    )
    client = system.create_process(
        group,
        user_prelude()
        + f"""
main:
    .byte 0x9a
    .long 0
    .word {export.gate_selector:#x}
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
""",
        data_size=64,
    )
    system.sharing.import_procedure(client, export)
    thread = system.create_thread(client, "main")
    outcome = system.run(max_cycles=200_000)
    assert outcome.status == "done", outcome
    fault = system.thread_state(thread).fault
    assert fault is not None
    assert (fault.vector, fault.error_code, fault.eip) == (GP, 0, export.code_size)
    assert fault.cs == export.code_selector
    assert (fault.pid, fault.home_pid) == (server.pid, client.pid)
    assert check_kernel_consistency(system) == []


def test_the_fuzz_example_of_the_flaky_deep_failure() -> None:
    """The falsifying example of the reported deep-profile failure (seed 6 here): the third
    thread's last instruction (PUSHAD, ``60``) is followed by a timer tick, so the thread is
    interrupted at EIP = code limit + 1 and the kernel's IRETD back to it faulted."""
    from test_fuzz_kernel import _run

    images = [b"\x00", b"\x00\x00\x00\x00`", b"\x00\x00\x00\x00`"]
    _run(images, [[0] * 7 for _ in images], "bytes")
