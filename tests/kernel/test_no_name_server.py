"""Port NS_PORT without a name server: the guest gets an error at once instead of blocking, the
host gets an exception naming start_name_server, and a call to a port whose owner has no
thread left returns an error (the port closed with its process, issue 19)."""

from __future__ import annotations

import pytest
from ipc_kit import SCRIPT, SCRIPT_DATA_SIZE, STEP_CREATE, STEP_NS, script_data, script_results

from lavsim.cluster import Cluster
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import user_prelude
from lavsim.kernel.nameserver import (
    NoNameServerError,
    name_entries,
    request,
    require_name_server,
    server_counters,
)


def _system() -> LavenderSystem:
    return LavenderSystem(memory_size=8 << 20, timer_period=0, observe=False)


def test_host_helpers_without_a_name_server_name_start_name_server() -> None:
    system = _system()
    for call in (lambda: name_entries(system), lambda: server_counters(system),
                 lambda: require_name_server(system)):
        with pytest.raises(NoNameServerError, match=r"system\.start_name_server\(\)"):
            call()
    system.start_name_server()
    assert require_name_server(system) is system.name_server
    assert name_entries(system) == [] and server_counters(system) == (0, 0)


def test_registering_a_procedure_on_a_host_without_name_server_is_refused() -> None:
    cluster = Cluster(hosts=1, network_servers=False, name_servers=False, timer_period=0)
    with pytest.raises(NoNameServerError, match=r"register_procedure.*start_name_server"):
        cluster.host(1).register_procedure("add", object())


def test_guest_lookup_without_name_server_returns_e_badport_at_once() -> None:
    system = _system()
    client = system.create_process(system.create_group(), SCRIPT, data=script_data([
        (STEP_NS, request(L.NS_OP_PROC_LOOKUP, "add")),
        (STEP_NS, request(L.NS_OP_PORT_LOOKUP, "printer")),
        (STEP_CREATE, request(L.NS_OP_PORT_LOOKUP, "printer")),  # named: nobody to tell
    ]), data_size=SCRIPT_DATA_SIZE)  # fmt: skip
    system.create_thread(client, "main")
    outcome = system.run(max_cycles=1_000_000)
    assert outcome.status == "done" and outcome.clean, outcome
    proc, port, created = script_results(system, client, 3)
    assert proc == port == L.E_BADPORT & 0xFFFFFFFF
    assert created == L.NS_PORT + 1  # port_create never hands out NS_PORT
    assert not system.port_info(L.NS_PORT).open


@pytest.mark.parametrize("owner_first", [True, False], ids=["closed", "queued"])
def test_call_to_a_port_whose_owner_has_no_thread_left_returns_an_error(owner_first: bool) -> None:
    # The owner opens a port and exits (after a few yields when the caller comes first): the
    # port closes with its process (issue 19), so the call fails at once (E_BADPORT) or, when
    # it was queued there, is woken with E_DEAD. It no longer waits for ever.
    system = _system()
    group = system.create_group()
    owner = system.create_process(group, user_prelude() + f"""
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov ecx, {0 if owner_first else 8}
    jecxz gone
again:
    push ecx
    mov eax, SYS_YIELD
    int 0x30
    pop ecx
    loop again
gone:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
""")
    caller = system.create_process(group, user_prelude() + """
main:
    mov ebx, eax
    mov eax, SYS_CALL
    xor ecx, ecx
    mov edx, 4
    mov esi, 16
    mov edi, 16
    int 0x30
    mov ebx, eax
    mov eax, SYS_EXIT
    int 0x30
""")
    system.create_thread(owner, "main")
    thread = system.create_thread(caller, "main", args=(L.NS_PORT + 1,))
    outcome = system.run(max_cycles=1_000_000)
    assert outcome.status == "done" and outcome.clean, outcome
    expected = L.E_BADPORT if owner_first else L.E_DEAD
    assert system.thread_state(thread).exit_code == expected
    assert not system.port_info(L.NS_PORT + 1).open
