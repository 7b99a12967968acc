"""Remote calls, shipping and lookups on a two- or three-host cluster whose network has faults
(tests/multihost/test_netfaults.py): a client on host 1 makes numbered calls of a procedure of
host 2 that logs every execution in its private data."""

from __future__ import annotations

import attrs

from lavsim.cluster import Cluster
from lavsim.kernel import layout as L
from lavsim.kernel.sharing import AddressStructure, lav_call_source
from lavsim.network import NetworkFaults, NetworkModel

MASK = 0xFFFFFFFF
LATENCY = 1_000
#: A short timeout, so that faulty runs stay short (a round trip here is about 4,000 cycles).
TIMEOUT = 20_000

#: proc(k): executions += 1; log[executions] = k; returns the execution's number, and spins
#: ``spin`` iterations after logging (a slow procedure: the caller times out meanwhile).
COUNTER = """
proc:
    push ds
    push ebx
    push ecx
    mov ax, PROC_DATA_SEL
    mov ds, ax
    inc dword ptr [0]
    mov ebx, dword ptr [0]
    mov eax, dword ptr [esp+20]
    mov dword ptr [ebx*4], eax
    mov ecx, {spin}
.Lspin:
    dec ecx
    jnz .Lspin
    mov eax, ebx
    pop ecx
    pop ebx
    pop ds
    mov edx, 7
    retf PROC_ARG_BYTES
"""

#: Calls k = 1..calls: status (ECX) and result (EAX) at RESULTS + 8k.
CLIENT = """
main:
    mov esi, 1
.Lloop:
    push esi
    push 1
    push 0
    call lav_call
    add esp, 12
    mov dword ptr [RESULTS+esi*8], eax
    mov dword ptr [RESULTS+4+esi*8], ecx
    inc esi
    cmp esi, {calls}+1
    jne .Lloop
    mov eax, 0
    mov ebx, 0
    int 0x30
"""
RESULTS = 0x400


@attrs.frozen
class CallRun:
    """What a run of numbered calls gave: each call's (status, result), the procedure's log of
    the arguments it ran with (in execution order), the cluster, the run's outcome."""

    calls: list[tuple[int, int]]
    log: list[int]
    cluster: Cluster
    reason: str

    def check_at_most_once(self) -> None:
        """No call ran twice; a call that succeeded got the answer of its own execution; a call
        that failed failed with a network error."""
        assert len(self.log) == len(set(self.log)), f"a call ran twice: {self.log}"
        assert all(1 <= k <= len(self.calls) for k in self.log)
        for k, (status, result) in enumerate(self.calls, start=1):
            if status == 0:
                assert 1 <= result <= len(self.log) and self.log[result - 1] == k, (k, result)
            else:
                assert status in (L.E_NET_TIMEOUT & MASK, L.E_HOST_UNREACHABLE & MASK), status


def counter_cluster(
    faults: NetworkFaults | None, *, hosts: int = 2, spin: int = 1, **options: object
) -> tuple[Cluster, object]:
    options.setdefault("call_timeout", TIMEOUT)
    cluster = Cluster(hosts, network=NetworkModel(latency=LATENCY), faults=faults,
                      **options)  # type: ignore[arg-type]
    h2 = cluster.host(2)
    owner = h2.system.create_resident_process("nop\n", name="library")
    export = h2.system.sharing.export_procedure(
        owner, COUNTER.format(spin=spin), params=1, private_data_size=4096)
    return cluster, export


def procedure_log(cluster: Cluster, export: object) -> list[int]:
    system = cluster.host(2).system
    base = system._user_phys(export.owner, export.data_base)  # type: ignore[attr-defined]
    count = system.memory.read32(base)
    return [system.memory.read32(base + 4 * k) for k in range(1, count + 1)]


def run_calls(
    faults: NetworkFaults | None, calls: int = 6, *, max_cycles: int = 3_000_000,
    until: object = None, **options: object,
) -> CallRun:
    cluster, export = counter_cluster(faults, **options)
    h1 = cluster.host(1)
    group = h1.system.create_group()
    client = h1.system.create_process(
        group, f".equ RESULTS, {RESULTS}\n" + CLIENT.format(calls=calls)
        + lav_call_source(group, net_buffer=0x200), data_size=4096)
    h1.system.sharing.write_address(client, 0, AddressStructure(
        2, L.ADDR_GROUP_RESIDENT, export.gate_selector, export.entry, 0))  # type: ignore[attr-defined]
    thread = h1.system.create_thread(client, "main")

    def done() -> bool:
        if callable(until):
            until(cluster, export)
        return h1.system.thread_state(thread).state == "dead"

    outcome = cluster.run(until=done, max_cycles=max_cycles)
    assert h1.system.thread_state(thread).fault is None
    results = [(h1.system.read_data32(client, RESULTS + 4 + 8 * k),
                h1.system.read_data32(client, RESULTS + 8 * k)) for k in range(1, calls + 1)]
    return CallRun(results, procedure_log(cluster, export), cluster, outcome.reason)


#: lav_ship of the address at DS:0, then one call through it: ship status, result, status.
SHIP_CLIENT = """
main:
    push 0
    call lav_ship
    add esp, 4
    mov dword ptr [0x40], eax
    push 5
    push 4
    push 3
    push 3
    push 0
    call lav_call
    add esp, 20
    mov dword ptr [0x44], eax
    mov dword ptr [0x48], ecx
    mov eax, 0
    mov ebx, 0
    int 0x30
"""

#: lav_lookup of the name at DS:0x104 (length dword, bytes) into DS:0x20: status at 0x40.
LOOKUP_CLIENT = """
main:
    push 0x20
    push dword ptr [0x104]
    push 0x108
    call lav_lookup
    add esp, 12
    mov dword ptr [0x40], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


@attrs.frozen
class ClientRun:
    cluster: Cluster
    reason: str
    values: dict[str, int]
    address: AddressStructure


def _run_client(cluster: Cluster, source: str, data: dict[int, bytes], names: dict[str, int],
                max_cycles: int) -> ClientRun:
    h1 = cluster.host(1)
    group = h1.system.create_group()
    client = h1.system.create_process(
        group, source + lav_call_source(group, net_buffer=0x200), data_size=4096)
    for offset, raw in data.items():
        h1.system.sharing.write_data(client, offset, raw)
    thread = h1.system.create_thread(client, "main")
    outcome = cluster.run(until=lambda: h1.system.thread_state(thread).state == "dead",
                          max_cycles=max_cycles)
    assert h1.system.thread_state(thread).fault is None
    values = {name: h1.system.read_data32(client, offset) for name, offset in names.items()}
    address = AddressStructure.decode(h1.system.read_process(client, "data", 0x20, 20))
    return ClientRun(cluster, outcome.reason, values, address)


def ship_run(faults: NetworkFaults | None, *, max_cycles: int = 3_000_000,
             **options: object) -> ClientRun:
    """host 1 ships host 2's procedure (a * b + c) and calls the copy with (3, 4, 5)."""
    from lavsim.remote import PROCEDURE

    options.setdefault("call_timeout", TIMEOUT)
    cluster = Cluster(2, network=NetworkModel(latency=LATENCY), faults=faults,
                      **options)  # type: ignore[arg-type]
    h2 = cluster.host(2)
    owner = h2.system.create_resident_process("nop\n", name="library")
    export = h2.system.sharing.export_procedure(owner, PROCEDURE.format(pad=200), params=3)
    cluster.make_shippable(h2, export)
    address = AddressStructure(2, L.ADDR_GROUP_RESIDENT, export.gate_selector, export.entry,
                               L.ADDR_FLAG_SHIPPABLE)
    return _run_client(cluster, SHIP_CLIENT, {0: address.encode()},
                       {"ship": 0x40, "result": 0x44, "status": 0x48}, max_cycles)


def lookup_run(faults: NetworkFaults | None, *, hosts: int = 2, max_cycles: int = 3_000_000,
               **options: object) -> tuple[ClientRun, int]:
    """host 1 looks up "mac", registered on host 2 (the gate selector is returned too)."""
    from lavsim.remote import PROCEDURE

    options.setdefault("call_timeout", TIMEOUT)
    cluster = Cluster(hosts, network=NetworkModel(latency=LATENCY), faults=faults,
                      **options)  # type: ignore[arg-type]
    h2 = cluster.host(2)
    owner = h2.system.create_resident_process("nop\n", name="library")
    export = h2.system.sharing.export_procedure(owner, PROCEDURE.format(pad=0), params=3)
    h2.register_procedure("mac", export)
    run = _run_client(cluster, LOOKUP_CLIENT,
                      {0x20: b"\xAA" * L.ADDR_SIZE, 0x104: b"\x03\x00\x00\x00mac"},
                      {"status": 0x40}, max_cycles)
    return run, export.gate_selector
