"""Several hosts in lock-step: each a booted Lavender system with a network interface and a
network server, joined by a :class:`~lavsim.network.NetworkModel`.

Example::

    cluster = Cluster(hosts=2, network=NetworkModel(latency=2_000, per_byte=1))
    server = cluster.host(2)            # host ids are 1..n; 0 means "this host"
    export = server.system.sharing.export_procedure(resident_process, SOURCE, params=2)
    cluster.make_shippable(server, export)
    ...                                 # processes and threads on any host
    outcome = cluster.run(until=lambda: client_done(), max_cycles=5_000_000)

**Lock-step.** Global time advances in quanta of ``network.step`` cycles (at most the
latency). In each quantum every host runs, in host-id order, until its cycle counter reaches
the end of the quantum; frames sent in the quantum arrive no sooner than ``latency`` cycles
later, hence in a later quantum, so no host ever receives a frame "in its past" and the order
in which hosts are run changes nothing. A frame is put into its receiver's ring at the first
instruction boundary at or after its arrival cycle (a run is split there). A host whose CPU
is halted with interrupts enabled and no timer waits for the network: its cycle counter
advances to the next arrival or the quantum's end, counted as idle cycles like any HLT.

**What Python does** (the boot loader's part, untimed): attaches the interface to the bus,
writes its IDT gate, reserves the receive rings and the shipping area (physical frames mapped
read-only into the resident space) and tells the kernel where they are; creates the network
server process and its threads. Everything at run time is guest code: the driver and the
install/fetch calls (``kernel/net.s``), the network server (``kernel/netserver.s``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import attrs

from lavsim.cpu.state import IF
from lavsim.errors import ConfigError, LavsimError
from lavsim.errors import check_bool as _check_bool
from lavsim.errors import check_int as _check_int
from lavsim.kernel import layout as L
from lavsim.kernel.netproto import (
    NET_OP_CALL,
    NET_OP_FETCH,
    NET_OP_LOOKUP,
    NET_OP_REPLY,
    NET_OP_SHIP,
    NET_PORT,
    NX_DATA_SIZE,
    NX_HOSTS,
    NX_MAX_HOSTS,
    NX_RETRIES,
    NX_TIMEOUT,
    netserver_source,
    remote_stub_source,
)
from lavsim.kernel.system import LavenderSystem, Process, ProcessGroup, Thread
from lavsim.kernel.tables import read_descriptor, write_descriptor
from lavsim.mmu import descriptors as d
from lavsim.models import ModelSpec
from lavsim.network import (
    NIC_IRQ,
    NIC_PORTS,
    Network,
    NetworkFaults,
    NetworkInterface,
    NetworkModel,
)

__all__ = [
    "NET_OP_CALL", "NET_OP_FETCH", "NET_OP_LOOKUP", "NET_OP_REPLY", "NET_OP_SHIP", "NET_PORT",
    "Cluster", "ClusterOutcome", "Host", "netserver_source", "remote_stub_source",
]  # fmt: skip

MiB = 1 << 20

#: Pages of the shipping area (resident space) on each host.
SHIP_PAGES = 16

#: Cycles the default call timeout allows the remote side for its work (the procedure
#: included), on top of two round trips of the largest frame.
CALL_TIMEOUT_WORK = 100_000
#: Bounds of Cluster(call_timeout=, call_retries=): the guest compares TSC low dwords.
MAX_CALL_TIMEOUT = 1 << 30
MAX_CALL_RETRIES = 255


#: A one-shot registrar (Host.register_procedure): the request at DS:0, the reply at DS:64,
#: the status at DS:REGISTRAR_STATUS.
REGISTRAR_STATUS = 128
_REGISTRAR = """
main:
    mov eax, {sys_call}
    mov ebx, {port}
    xor ecx, ecx
    mov edx, {size}
    mov esi, 64
    mov edi, {reply_size}
    int 0x30
    test eax, eax
    js .Lstore
    mov eax, dword ptr [64]
.Lstore:
    mov dword ptr [128], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


@attrs.frozen
class ClusterOutcome:
    """How :meth:`Cluster.run` ended: ``reason`` is ``"until"`` (the condition held),
    ``"cycle_limit"``, ``"stopped"`` (every host's kernel is done or has panicked) or
    ``"panic"`` (a host's kernel panicked; ``detail`` says which); ``time`` is the global
    cycle reached, ``cycles`` each host's cycle counter by host id."""

    reason: str
    time: int
    cycles: dict[int, int]
    detail: str = ""


class Host:
    """One machine of the cluster: its Lavender ``system``, its interface ``nic``, its network
    server process ``netserver``."""

    def __init__(self, host_id: int, system: LavenderSystem, network: Network) -> None:
        self.id = host_id
        self.system = system
        self._network = network
        machine = system.machine

        def raise_irq() -> None:
            machine.pic.raise_irq(NIC_IRQ)
            machine.cpu.irq_pending = machine.pic.output

        self.nic = NetworkInterface(
            host_id, network, clock=lambda: machine.cpu.tsc,
            read_memory=machine.memory.read, write_memory=machine.load, raise_irq=raise_irq,
        )  # fmt: skip
        machine.bus.attach(self.nic, *NIC_PORTS)
        self._boot_network()
        self.netserver: Process | None = None
        self.netserver_threads: list[Thread] = []
        self.registrars: list[Process] = []

    def _boot_network(self) -> None:
        """The boot loader's part: the IDT gate of the interface's interrupt, the rings and
        the shipping area, and the kernel variables that say where they are."""
        system = self.system
        image = system.image
        write_descriptor(
            system.memory, L.IDT_PHYS, L.NIC_VECTOR,
            d.GateDescriptor(d.SYS_INTERRUPT_GATE32, L.KERNEL_CS, image.symbol("isr_nic"), dpl=0),
        )  # fmt: skip
        # Message IPC's kernel memory, if the system's boot did not lay it out already.
        if system.memory.read32(L.IPC_MSG_FREE) == 0:
            from lavsim.kernel.ipc import init_ipc

            init_ipc(system.memory)
        pages = L.NET_AREA_BYTES // L.PAGE_SIZE
        area = self._contiguous(pages)
        system.memory.fill(area, L.NET_AREA_BYTES, 0)
        system.write_kernel32(image.symbol("k_net_area"), L.KERNEL_BASE + area)
        # The shipping area: frames mapped read-only, user, global in the resident space; the
        # kernel writes code through its window (CR0.WP binds ring 0 too).
        ship = self._contiguous(SHIP_PAGES)
        system.memory.fill(ship, SHIP_PAGES * L.PAGE_SIZE, 0)
        linear = system._resident_next
        for k in range(SHIP_PAGES):
            system.page_tables.map_page(
                None, linear + k * L.PAGE_SIZE, (ship >> L.PAGE_SHIFT) + k, writable=False
            )
        system._resident_next = linear + (SHIP_PAGES + 1) * L.PAGE_SIZE
        self.ship_linear = linear
        for name, value in (
            ("k_ship_next", L.KERNEL_BASE + ship),
            ("k_ship_end", L.KERNEL_BASE + ship + SHIP_PAGES * L.PAGE_SIZE),
            ("k_ship_delta", (linear - (L.KERNEL_BASE + ship)) & 0xFFFFFFFF),
            ("k_ship_slot", L.GDT_SHIP_FIRST), ("k_ship_slot_end", L.GDT_ENTRIES),
        ):  # fmt: skip
            system.write_kernel32(image.symbol(name), value)
        # Keep the shipping slots out of the sharing manager's hands.
        reserved = system.sharing._gdt
        for slot in range(L.GDT_SHIP_FIRST, L.GDT_ENTRIES):
            reserved.setdefault(slot, "shipped procedures (issue 8)")

    def _contiguous(self, pages: int) -> int:
        frames = self.system.frames.allocate(pages, "memory_size")
        if frames != list(range(frames[0], frames[0] + pages)):
            raise LavsimError("the boot loader could not find contiguous frames")
        return frames[0] << L.PAGE_SHIFT

    # --- state read back ------------------------------------------------------------------
    @property
    def cycles(self) -> int:
        return self.system.machine.cpu.tsc

    @property
    def crashed(self) -> bool:
        """The host has crashed (:meth:`Cluster.crash`): its machine no longer runs. Read from
        the network's fault state, the one place a snapshot finds it."""
        return self.id in self._network.faults.crashed

    @property
    def stopped(self) -> bool:
        return self.crashed or self.system.status in (L.STATUS_DONE, L.STATUS_PANIC)

    def shipped(self) -> list[int]:
        """Gate selectors of the procedures installed by shipping on this host."""
        next_slot = self.system.kernel_variable("k_ship_slot")
        return [(s + 1) << 3 | 3 for s in range(L.GDT_SHIP_FIRST, next_slot, 2)]

    def register_procedure(self, name: str | bytes, export: object, *, flags: int = 0) -> Thread:
        """Register a resident procedure export with this host's name server under ``name``,
        by guest code: a one-shot resident process makes the ``NS_OP_PROC_REGISTER`` message
        call (setup, before any measured run; run the cluster for it to happen). Its status
        is at offset ``REGISTRAR_STATUS`` of the registrar's data (:meth:`registrar_status`)."""
        from lavsim.kernel.nameserver import request, require_name_server

        require_name_server(self.system, "register_procedure")
        selector = getattr(export, "gate_selector", None)
        entry = getattr(export, "entry", None)
        if getattr(export, "resident", False) is not True or not isinstance(selector, int):
            raise ConfigError("export", "must be a resident procedure export")
        assert isinstance(entry, int)
        data = request(L.NS_OP_PROC_REGISTER, name, value=selector, offset=entry,
                       group=L.ADDR_GROUP_RESIDENT, flags=flags)
        source = _REGISTRAR.format(sys_call=L.SYS_CALL, port=L.NS_PORT, size=L.NS_REQ_SIZE,
                                   reply_size=L.NS_REPLY_SIZE)
        process = self.system.create_resident_process(
            source, data=data + bytes(REGISTRAR_STATUS - len(data)) + b"\x01\x00\x00\x80",
            data_size=256, max_threads=1, name="registrar",
        )  # fmt: skip
        self.registrars.append(process)
        return self.system.create_thread(process, "main")

    def registrar_status(self, index: int = -1) -> int:
        """The name server's answer to a :meth:`register_procedure` (signed; ``0x80000001``
        while it has not answered yet)."""
        value = self.system.read_data32(self.registrars[index], REGISTRAR_STATUS)
        return value - (1 << 32) if value & 0x80000000 and value != 0x80000001 else value

    def read_netserver(self, offset: int, size: int) -> bytes:
        assert self.netserver is not None
        return self.system.read_process(self.netserver, "data", offset, size)


class Cluster:
    """``hosts`` machines (ids 1..n) of one CPU model ``profile`` (anything
    :class:`~lavsim.kernel.system.LavenderSystem` takes), each booted into Lavender, with a
    network interface and (``network_servers``) a network server, joined by ``network``.
    ``name_servers`` starts each host's name server first (port ``NS_PORT``), so that
    procedure names resolve locally and, through the network servers, across hosts.

    The boot loader designates each host's network server (kernel variable
    ``k_net_designated``): only that process may call ``net_attach`` and then the other
    network system calls; with ``network_servers=False`` no process may.

    ``timer_period`` is each kernel's time slice (0: no preemption; hosts then idle without a
    timer while they wait for the network). ``observe`` attributes cycles per host (slower).

    ``faults`` (:class:`~lavsim.network.NetworkFaults`) makes the network lose, delay, reorder
    and duplicate frames and crash hosts, from a seed. The network servers survive it: each
    remote request waits ``call_timeout`` cycles for its reply (None: two round trips of the
    largest frame plus ``CALL_TIMEOUT_WORK`` cycles for the remote side, at most
    ``MAX_CALL_TIMEOUT``), is sent again with the same request id up to ``call_retries``
    times, and then fails with ``E_NET_TIMEOUT``; with ``at_most_once`` (the default) the
    serving side runs each call at most once, answering a repeated request id from its table
    (False: the server of before issue 19, which runs every CALL frame it receives).
    """

    def __init__(
        self,
        hosts: int = 2,
        *,
        network: NetworkModel | None = None,
        profile: ModelSpec = "i486",
        memory_size: int = 16 * MiB,
        timer_period: int = 20_000,
        observe: bool = False,
        network_servers: bool = True,
        name_servers: bool = True,
        netserver_extra: str | Callable[[Host], str] = "",
        faults: NetworkFaults | None = None,
        call_timeout: int | None = None,
        call_retries: int = 3,
        at_most_once: bool = True,
    ) -> None:
        _check_int("hosts", hosts, 1, NX_MAX_HOSTS)
        for field, flag in (("observe", observe), ("network_servers", network_servers),
                            ("name_servers", name_servers), ("at_most_once", at_most_once)):
            _check_bool(field, flag)
        if network is None:
            network = NetworkModel()
        if not isinstance(network, NetworkModel):
            raise ConfigError("network", "must be a NetworkModel")
        if faults is not None and not isinstance(faults, NetworkFaults):
            raise ConfigError("faults", "must be a NetworkFaults")
        for host_id, _ in faults.crashes if faults is not None else ():
            if host_id > hosts:
                raise ConfigError("faults.crashes", f"host {host_id} is not in a cluster of "
                                                    f"{hosts}")
        if call_timeout is None:
            call_timeout = min(2 * 2 * network.frame_cycles(network.mtu) + CALL_TIMEOUT_WORK,
                               MAX_CALL_TIMEOUT)
        _check_int("call_timeout", call_timeout, 1, MAX_CALL_TIMEOUT)
        _check_int("call_retries", call_retries, 0, MAX_CALL_RETRIES)
        self.call_timeout = call_timeout
        self.call_retries = call_retries
        self.at_most_once = at_most_once
        self.model = network
        self.network = Network(network, faults)
        self.hosts: list[Host] = []
        for host_id in range(1, hosts + 1):
            system = LavenderSystem(profile, memory_size, timer_period, observe=observe)
            self.hosts.append(Host(host_id, system, self.network))
        self.time = 0
        if name_servers:
            for host in self.hosts:
                host.system.start_name_server()
        if network_servers:
            for host in self.hosts:
                extra = netserver_extra(host) if callable(netserver_extra) else netserver_extra
                self._start_netserver(host, extra)

    def _start_netserver(self, host: Host, extra: str) -> None:
        process = host.system.create_resident_process(
            netserver_source(extra, at_most_once=self.at_most_once), data_size=NX_DATA_SIZE,
            max_threads=4, name="netserver",
        )  # fmt: skip
        host.netserver = process
        # Boot-loader setup: this process, and no other, may become the network server
        # (net_attach refuses every other caller; without this write, nobody may).
        host.system.write_kernel32(host.system.image.symbol("k_net_designated"),
                                   process.pcb_linear)
        # How many hosts a lookup may ask.
        host.system.sharing.write_data(process, NX_HOSTS, len(self.hosts).to_bytes(4, "little"))
        host.system.sharing.write_data(process, NX_TIMEOUT, self.call_timeout.to_bytes(4, "little"))
        host.system.sharing.write_data(process, NX_RETRIES, self.call_retries.to_bytes(4, "little"))
        host.netserver_threads.append(host.system.create_thread(process, "serve"))
        host.netserver_threads.append(host.system.create_thread(process, "forward"))

    def host(self, host_id: int) -> Host:
        """The host with id ``host_id`` (1..n)."""
        _check_int("host_id", host_id, 1, len(self.hosts))
        return self.hosts[host_id - 1]

    def make_shippable(self, host: Host, export: object) -> None:
        """Mark a resident procedure export shippable: the AVL bit of its code segment's
        descriptor (the exporter's declaration that its code is position independent and uses
        no private data; net_fetch refuses any other). Boot-loader style, untimed."""
        code_slot = getattr(export, "code_slot", None)
        if getattr(export, "resident", False) is not True or not isinstance(code_slot, int):
            raise ConfigError("export", "must be a resident procedure export")
        if getattr(export, "data_slot", None) is not None:
            raise ConfigError("export", "a procedure with private data cannot be shipped")
        desc = read_descriptor(host.system.memory, L.GDT_PHYS, code_slot)
        assert isinstance(desc, d.SegmentDescriptor)
        write_descriptor(host.system.memory, L.GDT_PHYS, code_slot, attrs.evolve(desc, avl=True))

    def down(self, host_id: int, is_down: bool = True) -> None:
        """Take a host off the network (frames to it are refused as unreachable) or back."""
        _check_int("host_id", host_id, 1, len(self.hosts))
        _check_bool("is_down", is_down)
        if not is_down and self.host(host_id).crashed:
            raise ConfigError("host_id", f"host {host_id} has crashed; it cannot come back")
        if is_down:
            self.network.down.add(host_id)
        else:
            self.network.down.discard(host_id)

    def crash(self, host_id: int) -> None:
        """Crash a host now: its machine stops for good (its state stays readable), frames in
        flight to it are lost and sending to it reports "host down". Crashing it again does
        nothing."""
        _check_int("host_id", host_id, 1, len(self.hosts))
        self.network.crash(host_id)

    def _next_crash(self) -> tuple[int, int] | None:
        """(global cycle, host id) of the earliest scheduled crash still to come, or None."""
        state = self.network.faults
        pending = [(cycle, host) for host, cycle in state.config.crashes
                   if host not in state.crashed]
        return min(pending) if pending else None

    # --- running ----------------------------------------------------------------------------
    def run(
        self, until: Callable[[], bool] | None = None, max_cycles: int = 10_000_000
    ) -> ClusterOutcome:
        """Advance every host in lock-step quanta until ``until()`` holds (checked after each
        quantum), every kernel has stopped, or ``max_cycles`` more cycles of global time."""
        _check_int("max_cycles", max_cycles, 1)
        end = self.time + max_cycles
        step = self.model.step
        while True:
            crash = self._next_crash()
            while crash is not None and crash[0] <= self.time:
                self.crash(crash[1])
                crash = self._next_crash()
            if until is not None and until():
                return self._outcome("until")
            for host in self.hosts:
                if host.system.status == L.STATUS_PANIC:
                    report = host.system.panic_report()
                    text = report.describe() if report else ""
                    return self._outcome("panic", f"host {host.id}: {text}")
            if all(h.stopped for h in self.hosts):
                return self._outcome("stopped")
            if self.time >= end:
                return self._outcome("cycle_limit")
            target = min(self.time + step, end)
            if crash is not None:
                target = min(target, crash[0])
            for host in self.hosts:
                self._advance(host, target)
            self.time = target

    def _advance(self, host: Host, target: int) -> None:
        """Run ``host`` until its cycle counter reaches ``target``, handing it every frame at
        its arrival cycle and firing its interface's receive timers at their expiry."""
        system = host.system
        cpu = system.machine.cpu
        nic = host.nic
        while not host.stopped:
            for frame in self.network.take_arrived(host.id, cpu.tsc):
                nic.deliver(frame)
            # After the frames: one arriving in the same cycle disarms its queue's timer.
            nic.expire_timers(cpu.tsc)
            if cpu.tsc >= target:
                return
            stop = target
            for event in (self.network.next_arrival(host.id), nic.next_timer()):
                if event is not None and event < stop:
                    stop = event
            if stop > cpu.tsc:
                system.run(max_cycles=stop - cpu.tsc)
            if cpu.tsc < stop and cpu.halted and cpu.eflags & IF and not cpu.irq_pending:
                # Waiting in HLT for the network (no timer event will come first).
                system.machine.idle_cycles += stop - cpu.tsc
                cpu.tsc = stop
            if host.stopped or system.machine.cpu.shutdown:
                return

    def _outcome(self, reason: str, detail: str = "") -> ClusterOutcome:
        return ClusterOutcome(reason, self.time, {h.id: h.cycles for h in self.hosts}, detail)

    # --- snapshot files ---------------------------------------------------------------------
    def save_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Write the whole cluster to a snapshot file of kind ``"cluster"``: every host's
        machine, system bookkeeping, network card and network-server handles, the network
        (frames in flight with their arrival cycles, hosts down, a fault model's state) and the
        lock-step position. Take it between :meth:`run` calls (any cut point of a run)."""
        from lavsim.kernel.bookkeeping import get_state
        from lavsim.snapshot import KIND_CLUSTER, take_snapshot, write_snapshot_file

        hosts = [
            {
                "system": get_state(h.system),
                "nic": h.nic.get_state(),
                "netserver": None if h.netserver is None else h.netserver.pid,
                "netserver_threads": [[t.tid, t.generation] for t in h.netserver_threads],
                "registrars": [p.pid for p in h.registrars],
                "ship_linear": h.ship_linear,
            }
            for h in self.hosts
        ]
        state = {"config": self._snapshot_config(), "time": self.time,
                 "network": self.network.get_state(), "hosts": hosts}
        machines = [take_snapshot(h.system.machine) for h in self.hosts]
        write_snapshot_file(path, KIND_CLUSTER, machines, state)

    def _snapshot_config(self) -> dict[str, object]:
        # The model's repr names every field of the frozen value (and of whatever it holds).
        return {"hosts": len(self.hosts), "network": repr(self.model)}

    def load_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Restore a file written by :meth:`save_snapshot` into this cluster, which must have
        the same configuration (host count, network model, and for each host what
        :meth:`LavenderSystem.load_snapshot <lavsim.kernel.system.LavenderSystem.load_snapshot>`
        requires). Every host and the network are checked before anything changes: a refused
        file (:class:`~lavsim.snapshot.SnapshotError` naming the host and field) changes
        nothing. Later runs then give the cycles the saved cluster would have given."""
        from lavsim.kernel.bookkeeping import prepare_system
        from lavsim.snapshot import KIND_CLUSTER, SnapshotError, read_snapshot_file

        loaded = read_snapshot_file(path, KIND_CLUSTER)
        state = loaded.host
        if not isinstance(state, dict) or set(state) != {"config", "time", "network", "hosts"}:
            raise SnapshotError("malformed cluster snapshot: it must hold config, time, "
                                "network and hosts")
        config, mine = state["config"], self._snapshot_config()
        for key, value in mine.items():
            found = config.get(key) if isinstance(config, dict) else None
            if found != value:
                raise SnapshotError(f"the snapshot's cluster has {key} = {found!r}; this "
                                    f"cluster has {value!r}")
        hosts = state["hosts"]
        if not isinstance(hosts, list) or len(hosts) != len(self.hosts) or len(
            loaded.machines) != len(self.hosts):
            raise SnapshotError(f"malformed cluster snapshot: it must hold {len(self.hosts)} "
                                "hosts")
        applies: list[Callable[[], None]] = []
        for host, saved, machine in zip(self.hosts, hosts, loaded.machines, strict=True):
            where = f"host {host.id}: "
            keys = {"system", "nic", "netserver", "netserver_threads", "registrars",
                    "ship_linear"}
            if not isinstance(saved, dict) or set(saved) != keys:
                raise SnapshotError(f"{where}must have exactly the keys {sorted(keys)}")
            plan = prepare_system(host.system, machine, saved["system"],
                                  (ProcessGroup, Process, Thread), where)
            try:
                host.nic.check_state(saved["nic"], host.system.memory.size)
                netserver = (None if saved["netserver"] is None
                             else plan.process("netserver", saved["netserver"]))
                threads = saved["netserver_threads"]
                registrars = saved["registrars"]
                if not isinstance(threads, list) or not isinstance(registrars, list):
                    raise ValueError("netserver_threads and registrars must be lists")
                server_threads = [plan.thread(f"netserver_threads[{k}]", t)
                                  for k, t in enumerate(threads)]
                registrar_processes = [plan.process(f"registrars[{k}]", p)
                                       for k, p in enumerate(registrars)]
                ship = saved["ship_linear"]
                if isinstance(ship, bool) or not isinstance(ship, int) or not (
                    L.RESIDENT_BASE <= ship < L.RESIDENT_END
                ):
                    raise ValueError(f"ship_linear: {ship!r} is not a resident address")
            except ValueError as error:
                raise SnapshotError(f"{where}{error}") from error
            applies.append(functools.partial(
                _restore_host, host, plan.apply, saved["nic"], netserver, server_threads,
                registrar_processes, ship))
        try:
            self.network.check_state(state["network"])
            time = state["time"]
            if isinstance(time, bool) or not isinstance(time, int) or not 0 <= time < 1 << 64:
                raise ValueError(f"time: {time!r} is not a cycle count")
        except ValueError as error:
            raise SnapshotError(f"malformed cluster snapshot: {error}") from error
        # --- apply: everything was checked -------------------------------------------------
        for apply in applies:
            apply()
        self.network.set_state(state["network"])
        self.time = time

    # --- statistics -------------------------------------------------------------------------
    def frames_sent(self) -> dict[int, int]:
        """Frames each host's interface has transmitted so far."""
        return {h.id: h.nic.stats.frames_sent for h in self.hosts}

    def digests(self) -> dict[int, str]:
        """Each host's state digest (registers, memory, TSC)."""
        return {h.id: h.system.machine.state_digest() for h in self.hosts}


def _restore_host(host: Host, restore_system: Callable[[], None], nic: dict[str, object],
                  netserver: Process | None, threads: list[Thread], registrars: list[Process],
                  ship_linear: int) -> None:
    restore_system()
    host.nic.set_state(nic)
    host.netserver = netserver
    host.netserver_threads = threads
    host.registrars = registrars
    host.ship_linear = ship_linear
