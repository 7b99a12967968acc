"""Who may use the network system calls (issue 19, findings 1 and 2): a host without a network
interface refuses them without faulting in the kernel, and only the process the boot loader
designated may become the network server (net_attach) and then use net_send .. net_fetch."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.cluster import Cluster
from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel import layout as L
from lavsim.network import NetworkModel

MASK = 0xFFFFFFFF
NET_CALLS = range(L.NET_SYSCALL_FIRST, L.NET_SYSCALL_FIRST + L.NET_SYSCALL_COUNT)

#: Make system call EAX = [0] (arguments: a 16-byte buffer at DS:0x40) and store the result in
#: [4], then exit with it.
CALLER = """
main:
    mov eax, dword ptr [0]
    mov ebx, 0x40
    mov ecx, 16
    mov edx, 0
    mov esi, 0
    int 0x30
    mov dword ptr [4], eax
    mov ebx, eax
    mov eax, 0
    int 0x30
"""


def _caller(system: LavenderSystem, number: int, *, resident: bool = False) -> Process:
    data = number.to_bytes(4, "little") + b"\xaa" * 4
    if resident:
        return system.create_resident_process(CALLER, data=data, data_size=256, name="rogue")
    return system.create_process(system.create_group(), CALLER, data=data, data_size=256)


def _result(system: LavenderSystem, process: Process) -> int:
    value = system.read_data32(process, 4)
    return value - (1 << 32) if value & 0x80000000 else value


@pytest.mark.parametrize("number", NET_CALLS)
def test_network_calls_on_a_host_without_an_interface_return_an_error_not_a_panic(
    number: int,
) -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    process = _caller(system, number)
    system.create_thread(process, "main")
    outcome = system.run(max_cycles=2_000_000)
    assert outcome.status == "done", outcome
    expected = L.E_NOSYS if number == L.SYS_NET_ATTACH else L.E_NET_PERM
    assert _result(system, process) == expected


def test_net_attach_from_a_process_nobody_designated_is_refused() -> None:
    # network_servers=False: no process holds (or may take) the network-server role.
    cluster = Cluster(1, network=NetworkModel(latency=1_000), network_servers=False,
                      name_servers=False, timer_period=0)
    host = cluster.host(1)
    rogue = _caller(host.system, L.SYS_NET_ATTACH, resident=True)
    host.system.create_thread(rogue, "main")
    outcome = cluster.run(max_cycles=1_000_000)
    assert outcome.reason == "stopped", outcome
    assert _result(host.system, rogue) == L.E_NET_PERM
    assert host.system.kernel_variable("k_net_server") == 0


#: Try net_attach, then net_install of 16 bytes of its own data as code (a DPL 2 segment and a
#: DPL 3 gate, were it allowed): results in [4] and [8].
ESCALATE = """
main:
    mov eax, {attach}
    int 0x30
    mov dword ptr [4], eax
    mov eax, {install}
    mov ebx, 0x40
    mov ecx, 16
    mov edx, 0
    mov esi, 0
    int 0x30
    mov dword ptr [8], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


@pytest.mark.parametrize("network_servers", [False, True])
def test_only_the_designated_process_may_install_gates_through_the_network_calls(
    network_servers: bool,
) -> None:
    cluster = Cluster(1, network=NetworkModel(latency=1_000), network_servers=network_servers,
                      name_servers=False, timer_period=0)
    host = cluster.host(1)
    source = ESCALATE.format(attach=L.SYS_NET_ATTACH, install=L.SYS_NET_INSTALL)
    rogue = host.system.create_resident_process(source, data_size=256, name="rogue")
    thread = host.system.create_thread(rogue, "main")
    slot = host.system.kernel_variable("k_ship_slot")

    def rogue_done() -> bool:
        return host.system.thread_state(thread).state == "dead"

    outcome = cluster.run(until=rogue_done, max_cycles=2_000_000)
    assert outcome.reason in ("until", "stopped"), outcome
    assert _result(host.system, rogue) == L.E_NET_PERM
    install = host.system.read_data32(rogue, 8)
    assert install == L.E_NET_PERM & MASK
    # No shipped procedure slot was taken: the GDT is as the boot loader left it.
    assert host.system.kernel_variable("k_ship_slot") == slot
    designated = host.netserver.pcb_linear if host.netserver is not None else 0
    assert host.system.kernel_variable("k_net_designated") == designated


#: System call [0] with EBX ECX EDX ESI EDI from [8..28), then exit.
ANY_CALL = """
main:
    mov eax, dword ptr [0]
    mov ebx, dword ptr [8]
    mov ecx, dword ptr [12]
    mov edx, dword ptr [16]
    mov esi, dword ptr [20]
    mov edi, dword ptr [24]
    int 0x30
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


@pytest.mark.parametrize("number", range(L.NET_SYSCALL_FIRST + L.NET_SYSCALL_COUNT + 2))
@settings(max_examples=6, deadline=None)
@given(args=st.lists(st.integers(0, MASK), min_size=5, max_size=5), cluster=st.booleans())
def test_no_system_call_with_any_arguments_faults_in_the_kernel(
    number: int, args: list[int], cluster: bool
) -> None:
    if cluster:
        system = Cluster(1, network_servers=False, name_servers=False,
                         timer_period=2_000).host(1).system
    else:
        system = LavenderSystem(memory_size=8 << 20, timer_period=2_000, observe=False)
    data = struct.pack("<7I", number, 0, *args)
    process = system.create_process(system.create_group(), ANY_CALL, data=data, data_size=4096)
    system.create_thread(process, "main")
    outcome = system.run(max_cycles=300_000)
    assert outcome.status in ("done", "deadlock", "cycle_limit"), outcome
    assert system.panic_report() is None
