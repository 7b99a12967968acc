"""What a run's outcome says without reading thread states one by one: faulted threads, blocked
threads and what they wait for, "idle" servers versus a real deadlock, signed exit codes, and
refused run limits."""

from __future__ import annotations

import attrs
import pytest

from lavsim.errors import ConfigError
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import user_prelude
from lavsim.kernel.system import error_name, signed32

EXIT = "mov eax, SYS_EXIT\n mov ebx, {code}\n int 0x30\n"

# A server: create a port, then receive on it for ever (replying to nothing).
SERVER = user_prelude() + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov dword ptr [0], eax
again:
    mov ebx, dword ptr [0]
    mov eax, SYS_RECEIVE
    mov ecx, 16
    mov edx, 16
    xor esi, esi
    int 0x30
    jmp again
"""

# A client: one call to the server's port (which never answers).
CALLER = user_prelude() + """
main:
    mov ebx, eax
    mov eax, SYS_CALL
    mov ecx, 0
    mov edx, 4
    mov esi, 16
    mov edi, 16
    int 0x30
""" + EXIT.format(code=0)


def _system() -> LavenderSystem:
    return LavenderSystem(memory_size=8 << 20, timer_period=0, observe=False)


def test_outcome_lists_threads_killed_by_faults_with_vector_and_cs_eip() -> None:
    system = _system()
    group = system.create_group()
    good = system.create_process(group, user_prelude() + "main:\n" + EXIT.format(code=3))
    bad = system.create_process(group, "main:\n mov eax, dword ptr [0x10000]\n", data_size=64)
    system.create_thread(good, "main")
    victim = system.create_thread(bad, "main")
    outcome = system.run(max_cycles=1_000_000)
    assert outcome.status == "done" and outcome.done  # kept for existing checks
    assert not outcome.clean
    (fault,) = outcome.faulted
    assert (fault.tid, fault.pid, fault.vector, fault.error_code) == (victim.tid, bad.pid, 13, 0)
    assert fault.cs == L.USER_CS and fault.eip == 0
    text = str(outcome)
    assert "1 thread(s) killed by faults" in text and "#GP(0x0)" in text
    assert f"thread {victim.tid} of process {bad.pid}" in text


def test_outcome_is_clean_when_every_thread_exits() -> None:
    system = _system()
    process = system.create_process(system.create_group(),
                                    user_prelude() + "main:\n" + EXIT.format(code=0))
    system.create_thread(process, "main")
    outcome = system.run(max_cycles=1_000_000)
    assert outcome.clean and outcome.faulted == () and outcome.blocked == ()
    assert "every thread exited" in outcome.describe()


def test_server_waiting_in_receive_after_its_clients_ended_is_idle_not_deadlock() -> None:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, SERVER)
    client = system.create_process(group, user_prelude() + "main:\n" + EXIT.format(code=0))
    thread = system.create_thread(server, "main")
    system.create_thread(client, "main")
    outcome = system.run(max_cycles=1_000_000)
    assert outcome.status == "idle" and outcome.clean
    (blocked,) = outcome.blocked
    port = system.read_data32(server, 0)
    assert (blocked.tid, blocked.pid, blocked.waits, blocked.port) == (
        thread.tid, server.pid, "receive", port)
    assert f"waits in receive on port {port}" in outcome.describe()


def test_caller_waiting_for_a_reply_that_cannot_come_is_a_deadlock() -> None:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, SERVER)
    client = system.create_process(group, CALLER)
    system.create_thread(server, "main")
    # The server runs first and gets the lowest free port above the name server's.
    caller = system.create_thread(client, "main", args=(L.NS_PORT + 1,))
    outcome = system.run(max_cycles=1_000_000)
    assert system.read_data32(server, 0) == L.NS_PORT + 1
    assert outcome.status == "deadlock" and not outcome.clean
    waits = {b.tid: b for b in outcome.blocked}
    assert waits[caller.tid].waits == "reply"
    assert waits[caller.tid].server_pid == server.pid
    assert f"waits for the reply of process {server.pid}" in outcome.describe()


def test_exit_code_and_error_results_are_shown_signed() -> None:
    system = _system()
    process = system.create_process(
        system.create_group(),
        user_prelude() + "main:\n mov eax, 99\n int 0x30\n mov ebx, eax\n"
        " mov eax, SYS_EXIT\n int 0x30\n",
    )
    thread = system.create_thread(process, "main")
    assert system.run(max_cycles=1_000_000).clean
    state = system.thread_state(thread)
    assert state.exit_code == L.E_NOSYS == -1
    assert state.registers is not None
    assert attrs.evolve(state.registers, eax=0xFFFFFFEF).result == L.E_MSGSIZE == -17
    assert error_name(state.exit_code) == "E_NOSYS"
    assert signed32(0xFFFFFFF0) == -16 and error_name(0xFFFFFFF0) == "E_BADPORT"
    assert signed32(5) == 5 and error_name(5) is None


@pytest.mark.parametrize("field", ["max_cycles", "max_instructions"])
@pytest.mark.parametrize("value", [-5, 1.5, "10", True])
def test_run_limits_must_be_non_negative_ints(field: str, value: object) -> None:
    system = _system()
    tsc = system.machine.cpu.tsc
    for run in (system.run, system.machine.run):
        with pytest.raises(ConfigError, match=field) as info:
            run(**{field: value})
        assert info.value.field == field
    assert system.machine.cpu.tsc == tsc and system.status == L.STATUS_BOOTING
