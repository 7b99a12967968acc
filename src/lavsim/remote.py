"""Cycles of a remote call, of shipping a procedure, and when shipping pays off (issue 8).

Every figure is read by the guest itself with RDTSC around its calls, so it holds only guest
instructions and modelled costs: the network's latency and per-byte cost (modelled, no
instruction runs for them) and the idle cycles a host spends in HLT waiting for a frame.

- ``remote call``: ``lav_call`` on host 1 of a resident procedure of host 2: the stub, a
  message call to the local network server, a frame, the remote network server's migration
  into the procedure, the reply frame, the reply message.
- ``shipping``: one ``lav_ship``: a FETCH round trip carrying the code, ``net_install``.
- ``shipped call``: ``lav_call`` of the shipped copy: a local migration (no frame).
- ``local migration``: ``lav_call`` of the procedure on its own host.
- ``local message RPC``: a message call to a server process of another group on one host.

``break_even`` = the smallest n with n * remote >= shipping + n * shipped.

:func:`measure_lookup` times ``lav_lookup`` by name: local, on another host, known nowhere.
:func:`measure_faulty_calls` times remote calls one by one on a network with faults (issue 19).
"""

from __future__ import annotations

import math

import attrs

from lavsim.cluster import Cluster
from lavsim.errors import check_int
from lavsim.kernel import layout as L
from lavsim.kernel.sharing import AddressStructure, lav_call_source
from lavsim.kernel.system import ThreadState
from lavsim.models import ModelSpec, get_model
from lavsim.network import NetworkFaults, NetworkModel

__all__ = [
    "FaultyCallCost", "LookupCost", "RemoteCost", "measure_faulty_calls", "measure_lookup",
    "measure_remote", "rpc_rows",
]  # fmt: skip

#: The procedure: a * b + c, padded with ``pad`` bytes of code that never runs.
PROCEDURE = """
proc:
    mov eax, dword ptr [esp+8]
    imul eax, dword ptr [esp+12]
    add eax, dword ptr [esp+16]
    mov edx, 7
    retf PROC_ARG_BYTES
    times {pad} int3
"""

#: Client: one warm-up call, N timed calls, a timed lav_ship, a warm-up, N timed calls.
CLIENT = """
main:
    call one_call
    rdtsc
    mov dword ptr [0x40], eax
    mov esi, {calls}
.Lfirst:
    call one_call
    dec esi
    jnz .Lfirst
    rdtsc
    mov dword ptr [0x44], eax
    mov eax, dword ptr [0x64]
    mov dword ptr [0x6C], eax
    rdtsc
    mov dword ptr [0x48], eax
    push 0
    call lav_ship
    add esp, 4
    mov dword ptr [0x60], eax
    rdtsc
    mov dword ptr [0x4C], eax
    call one_call
    rdtsc
    mov dword ptr [0x50], eax
    mov esi, {calls}
.Lsecond:
    call one_call
    dec esi
    jnz .Lsecond
    rdtsc
    mov dword ptr [0x54], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
one_call:
    push 3
    push 2
    push 1
    push 3
    push 0
    call lav_call
    add esp, 20
    mov dword ptr [0x64], eax
    mov dword ptr [0x68], ecx
    ret
"""

#: Message RPC baseline: the server replies to every call; the client times N calls.
RPC_SERVER = """
main:
    mov eax, {sys_port_create}
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov dword ptr [0x100], eax
    xor ebx, ebx
    xor edx, edx
.Lserve:
    mov eax, {sys_reply_wait}
    xor ecx, ecx
    mov esi, dword ptr [0x100]
    mov edi, 64
    int 0x30
    mov edx, 12
    jmp .Lserve
"""
RPC_CLIENT = """
main:
    call one_call
    rdtsc
    mov dword ptr [0x40], eax
    mov esi, {calls}
.Lloop:
    call one_call
    dec esi
    jnz .Lloop
    rdtsc
    mov dword ptr [0x44], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
one_call:
    push esi
    mov eax, {sys_call}
    mov ebx, {port}
    xor ecx, ecx
    mov edx, 28
    mov esi, 0x80
    mov edi, 12
    int 0x30
    pop esi
    ret
"""


@attrs.frozen
class RemoteCost:
    """Cycles per call of each mechanism, and shipping's one-off cost and break-even."""

    profile: str
    latency: int
    per_byte: int
    code_size: int
    remote: float
    shipping: int
    shipped: float
    local_migration: float
    local_rpc: float
    remote_frames: int
    frames_after_shipping: int
    result_remote: int
    result_shipped: int

    @property
    def break_even(self) -> int | None:
        """Calls after which shipping has paid for itself (n * remote >= shipping + n * shipped);
        None when it never does."""
        saving = self.remote - self.shipped
        return None if saving <= 0 else math.ceil(self.shipping / saving)


def _delta(start: int, end: int) -> int:
    return (end - start) & 0xFFFFFFFF


def measure_remote(
    profile: ModelSpec = "i486", latency: int = 2_000, per_byte: int = 1, pad: int = 0,
    calls: int = 8, timer_period: int = 200_000,
) -> RemoteCost:
    """Run the remote, shipping, shipped and local figures on a two-host cluster."""
    model = NetworkModel(latency=latency, per_byte=per_byte)
    cluster = Cluster(2, network=model, profile=profile, timer_period=timer_period)
    h1, h2 = cluster.host(1), cluster.host(2)
    owner = h2.system.create_resident_process("nop\n", name="library")
    export = h2.system.sharing.export_procedure(owner, PROCEDURE.format(pad=pad), params=3)
    cluster.make_shippable(h2, export)
    group = h1.system.create_group()
    client = h1.system.create_process(
        group, CLIENT.format(calls=calls) + lav_call_source(group, net_buffer=0x200),
        data_size=4096,
    )  # fmt: skip
    address = AddressStructure(2, L.ADDR_GROUP_RESIDENT, export.gate_selector, export.entry,
                               L.ADDR_FLAG_SHIPPABLE)
    h1.system.sharing.write_address(client, 0, address)
    thread = h1.system.create_thread(client, "main")
    marks: dict[str, int] = {}

    def done() -> bool:
        if "frames" not in marks and h1.system.read_data32(client, 0x4C):
            marks["frames"] = h1.nic.stats.frames_sent
        return h1.system.thread_state(thread).state == "dead"

    outcome = cluster.run(until=done, max_cycles=200_000_000)
    if outcome.reason != "until":
        raise RuntimeError(f"remote benchmark did not finish: {outcome}")
    state = h1.system.thread_state(thread)
    if state.fault is not None:
        raise RuntimeError(state.fault.describe())
    def read(offset: int) -> int:
        return h1.system.read_data32(client, offset)

    if read(0x60) != 0:
        raise RuntimeError(f"lav_ship failed: {read(0x60) - (1 << 32)}")
    remote = _delta(read(0x40), read(0x44)) / calls
    shipping = _delta(read(0x48), read(0x4C))
    shipped = _delta(read(0x50), read(0x54)) / calls
    local = _local_migration(profile, pad, calls, timer_period)
    rpc = _local_rpc(profile, calls, timer_period)
    code_size = export.code_size
    return RemoteCost(
        get_model(profile).name, latency, per_byte, code_size, remote, shipping, shipped, local,
        rpc,
        remote_frames=marks.get("frames", -1),
        frames_after_shipping=h1.nic.stats.frames_sent - marks.get("frames", 0),
        result_remote=read(0x6C), result_shipped=read(0x64),
    )  # fmt: skip


def _check_finished(what: str, outcome: object, state: ThreadState) -> None:
    """A figure is read only from a client that ran to its exit without a fault."""
    if getattr(outcome, "reason", None) != "until" or state.state != "dead" or state.fault:
        fault = state.fault.describe() if state.fault else "no fault"
        raise RuntimeError(f"{what} benchmark did not finish: {outcome} ({fault})")


def _local_migration(profile: ModelSpec, pad: int, calls: int, timer_period: int) -> float:
    cluster = Cluster(1, profile=profile, timer_period=timer_period)
    host = cluster.host(1)
    owner = host.system.create_resident_process("nop\n", name="library")
    export = host.system.sharing.export_procedure(owner, PROCEDURE.format(pad=pad), params=3)
    group = host.system.create_group()
    client = host.system.create_process(
        group, CLIENT.format(calls=calls) + lav_call_source(group, net_buffer=0x200),
        data_size=4096,
    )  # fmt: skip
    host.system.sharing.write_address(client, 0, AddressStructure(
        0, L.ADDR_GROUP_RESIDENT, export.gate_selector, export.entry, 0))
    thread = host.system.create_thread(client, "main")
    outcome = cluster.run(until=lambda: host.system.thread_state(thread).state == "dead",
                          max_cycles=50_000_000)
    _check_finished("local migration", outcome, host.system.thread_state(thread))
    if host.system.read_data32(client, 0x64) != 5 or host.system.read_data32(client, 0x68) != 0:
        raise RuntimeError("local migration benchmark: lav_call did not return 2*1+3 = 5 with "
                           "status 0")
    return _delta(host.system.read_data32(client, 0x40),
                  host.system.read_data32(client, 0x44)) / calls


def _local_rpc(profile: ModelSpec, calls: int, timer_period: int) -> float:
    cluster = Cluster(1, profile=profile, timer_period=timer_period)
    host = cluster.host(1)
    system = host.system
    server_group, client_group = system.create_group(), system.create_group()
    server = system.create_process(server_group, RPC_SERVER.format(
        sys_port_create=L.SYS_PORT_CREATE, sys_reply_wait=L.SYS_REPLY_WAIT), data_size=4096)
    port = 2  # port 0: name server, port 1: network server, then this server's
    client = system.create_process(client_group, RPC_CLIENT.format(
        calls=calls, sys_call=L.SYS_CALL, port=port), data_size=4096)
    system.create_thread(server, "main")
    thread = system.create_thread(client, "main")
    outcome = cluster.run(until=lambda: system.thread_state(thread).state == "dead",
                          max_cycles=50_000_000)
    _check_finished("local message RPC", outcome, system.thread_state(thread))
    if system.read_data32(server, 0x100) != port:
        raise RuntimeError("the RPC server did not get the expected port")
    return _delta(system.read_data32(client, 0x40), system.read_data32(client, 0x44)) / calls


#: Lookups by name (lav_lookup), each timed with RDTSC: one warm-up of the local name, then the
#: local name, the remote name, a name known nowhere.
LOOKUP_CLIENT = """
main:
    mov ebx, 0x20
    call one_lookup
    rdtsc
    mov dword ptr [0x80], eax
    mov ebx, 0x20
    call one_lookup
    mov dword ptr [0x90], eax
    rdtsc
    mov dword ptr [0x84], eax
    mov ebx, 0x40
    call one_lookup
    mov dword ptr [0x94], eax
    rdtsc
    mov dword ptr [0x88], eax
    mov ebx, 0x60
    call one_lookup
    mov dword ptr [0x98], eax
    rdtsc
    mov dword ptr [0x8C], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
one_lookup:
    push 0x100
    push dword ptr [ebx]
    lea eax, [ebx+4]
    push eax
    call lav_lookup
    add esp, 12
    ret
"""


@attrs.frozen
class LookupCost:
    """Cycles of one ``lav_lookup`` by name from host 1 of ``hosts``: a name registered on
    host 1 (the local name server only), a name registered on host 2 (local miss, then one
    LOOKUP round trip), a name known nowhere (local miss, then every other host asked)."""

    profile: str
    latency: int
    hosts: int
    local: int
    remote: int
    missing: int
    statuses: tuple[int, int, int]


def measure_lookup(
    profile: ModelSpec = "i486", latency: int = 2_000, per_byte: int = 1, hosts: int = 2,
    timer_period: int = 200_000,
) -> LookupCost:
    """Time lav_lookup of a local, a remote (host 2) and an unknown name from host 1."""
    model = NetworkModel(latency=latency, per_byte=per_byte)
    cluster = Cluster(hosts, network=model, profile=profile, timer_period=timer_period)
    for host_id, name in ((1, "here"), (2, "there")):
        host = cluster.host(host_id)
        owner = host.system.create_resident_process("nop\n", name="library")
        export = host.system.sharing.export_procedure(owner, PROCEDURE.format(pad=0), params=3)
        host.register_procedure(name, export)
    h1 = cluster.host(1)
    group = h1.system.create_group()
    client = h1.system.create_process(
        group, LOOKUP_CLIENT + lav_call_source(group, net_buffer=0x200), data_size=4096)
    for offset, raw in ((0x20, b"here"), (0x40, b"there"), (0x60, b"nowhere")):
        h1.system.sharing.write_data(client, offset, len(raw).to_bytes(4, "little") + raw)
    # The registrars' threads were created first: they run (and register) before the client.
    thread = h1.system.create_thread(client, "main")
    outcome = cluster.run(until=lambda: h1.system.thread_state(thread).state == "dead",
                          max_cycles=50_000_000)
    if outcome.reason != "until":
        raise RuntimeError(f"lookup benchmark did not finish: {outcome}")

    def read(offset: int) -> int:
        return h1.system.read_data32(client, offset)

    if any(cluster.host(k).registrar_status() != 0 for k in (1, 2)):
        raise RuntimeError("a registration failed")
    statuses = (read(0x90), read(0x94), read(0x98))
    if statuses[:2] != (0, 0) or statuses[2] != L.E_NOENT & 0xFFFFFFFF:
        raise RuntimeError(f"unexpected lookup statuses {statuses}")
    return LookupCost(get_model(profile).name, latency, hosts, _delta(read(0x80), read(0x84)),
                      _delta(read(0x84), read(0x88)), _delta(read(0x88), read(0x8C)), statuses)


#: Calls 1..n of the address at DS:0, each timed: (cycles, status) at 0x400 + 8k.
FAULTY_CLIENT = """
main:
    call one_call
    mov esi, 1
.Lloop:
    rdtsc
    mov edi, eax
    call one_call
    rdtsc
    sub eax, edi
    mov dword ptr [0x400+esi*8], eax
    mov dword ptr [0x404+esi*8], ecx
    inc esi
    cmp esi, {calls}+1
    jne .Lloop
    mov eax, 0
    mov ebx, 0
    int 0x30
one_call:
    push 3
    push 2
    push 1
    push 3
    push 0
    call lav_call
    add esp, 20
    ret
"""


@attrs.frozen
class FaultyCallCost:
    """Remote calls timed one by one (after one warm-up call) on a network with ``faults``:
    ``ok`` of ``calls`` returned the procedure's result (the others an error: ``errors`` by
    code); ``mean``/``worst``: cycles per successful call, ``failed_mean`` per failed one
    (NaN when none); ``retransmissions`` and
    ``replayed`` (answered from the at-most-once table), ``stale`` (old ids dropped) and
    ``gave_up`` (E_NET_TIMEOUT) from the network servers' counters; ``timeout`` the
    cluster's call timeout."""

    profile: str
    latency: int
    timeout: int
    calls: int
    ok: int
    mean: float
    worst: int
    failed_mean: float
    errors: dict[int, int]
    retransmissions: int
    replayed: int
    stale: int
    gave_up: int


def measure_faulty_calls(
    faults: NetworkFaults | None, profile: ModelSpec = "i486", latency: int = 2_000,
    calls: int = 50, call_timeout: int | None = None, timer_period: int = 200_000,
) -> FaultyCallCost:
    """Time ``calls`` remote calls of the 3-argument procedure from host 1 to host 2."""
    from lavsim.kernel import netproto as P

    check_int("calls", calls, 1, 400)
    model = NetworkModel(latency=latency, per_byte=1)
    cluster = Cluster(2, network=model, profile=profile, timer_period=timer_period,
                      faults=faults, call_timeout=call_timeout)
    h1, h2 = cluster.host(1), cluster.host(2)
    owner = h2.system.create_resident_process("nop\n", name="library")
    export = h2.system.sharing.export_procedure(owner, PROCEDURE.format(pad=0), params=3)
    group = h1.system.create_group()
    client = h1.system.create_process(
        group, FAULTY_CLIENT.format(calls=calls) + lav_call_source(group, net_buffer=0x200),
        data_size=8192,
    )  # fmt: skip
    h1.system.sharing.write_address(client, 0, AddressStructure(
        2, L.ADDR_GROUP_RESIDENT, export.gate_selector, export.entry, 0))
    thread = h1.system.create_thread(client, "main")
    outcome = cluster.run(until=lambda: h1.system.thread_state(thread).state == "dead",
                          max_cycles=2_000_000_000)
    _check_finished("faulty remote call", outcome, h1.system.thread_state(thread))
    cycles: list[int] = []
    failed: list[int] = []
    errors: dict[int, int] = {}
    for k in range(1, calls + 1):
        status = h1.system.read_data32(client, 0x404 + 8 * k)
        spent = h1.system.read_data32(client, 0x400 + 8 * k)
        if status == 0:
            cycles.append(spent)
        else:
            failed.append(spent)
            code = status - (1 << 32) if status & 0x80000000 else status
            errors[code] = errors.get(code, 0) + 1

    def counter(host: int, offset: int) -> int:
        return int.from_bytes(cluster.host(host).read_netserver(offset, 4), "little")

    return FaultyCallCost(
        get_model(profile).name, latency, cluster.call_timeout, calls, len(cycles),
        sum(cycles) / len(cycles) if cycles else math.nan, max(cycles, default=0),
        sum(failed) / len(failed) if failed else math.nan, errors,
        counter(1, P.NX_RETRANSMITS), counter(2, P.NX_REPLAYED), counter(2, P.NX_STALE),
        counter(1, P.NX_GAVE_UP),
    )  # fmt: skip


def rpc_rows(profile: ModelSpec = "i486", latency: int = 2_000, per_byte: int = 1) -> list[
        tuple[str, float, str]]:
    """Rows for the ``lavsim rpc`` table (issue 6): (mechanism, cycles per null-ish call of a
    3-argument procedure, note)."""
    cost = measure_remote(profile, latency, per_byte)
    note = (f"2 hosts, latency {latency}, {per_byte} cycle/byte (modelled network cycles "
            "included)")
    return [
        ("remote call (network)", cost.remote, note),
        ("shipped procedure", cost.shipped,
         f"after one lav_ship of {cost.shipping} cycles; break-even {cost.break_even} calls"),
    ]
