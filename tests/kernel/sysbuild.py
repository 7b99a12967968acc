"""Boot a :class:`~sysspec.SystemSpec` (:func:`build`) and record, *from the configuration*, what
every process is granted: the physical bytes it may write at CPL 3, what a procedure may write at
CPL 2, the procedure entry points and the IDT's handlers. Nothing of this is read from the
descriptor tables under test."""

from __future__ import annotations

import struct
from typing import Any

import attrs
from sysspec import (
    ADDR_AREA,
    L4_SERVER_LOOP,
    L4_TID_OFFSET,
    PRELUDE,
    PROC_BODIES,
    SERVER_LOOP,
    SERVER_PORT,
    SystemSpec,
    _callable,
    program_source,
)

from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel import layout as L
from lavsim.kernel.fastipc import grant_send
from lavsim.kernel.ipc import open_port_for
from lavsim.kernel.sharing import ProcedureExport, lav_call_source

# --- grants ------------------------------------------------------------

Ranges = dict[int, list[tuple[int, int]]]  # pfn -> [lo, hi) offsets in the frame


def _add(ranges: Ranges, phys: int, n: int) -> None:
    while n > 0:
        pfn, off = phys >> 12, phys & 0xFFF
        chunk = min(n, 0x1000 - off)
        ranges.setdefault(pfn, []).append((off, off + chunk))
        phys += chunk
        n -= chunk


def covered(ranges: Ranges, phys: int, n: int) -> bool:
    """Every byte of ``phys .. phys+n-1`` lies in one of ``ranges``."""
    while n > 0:
        pfn, off = phys >> 12, phys & 0xFFF
        chunk = min(n, 0x1000 - off)
        pos = off
        spans = ranges.get(pfn, ())
        while pos < off + chunk:
            for lo, hi in spans:
                if lo <= pos < hi:
                    pos = hi
                    break
            else:
                return False
        phys += chunk
        n -= chunk
    return True


@attrs.define
class Grants:
    """What the configuration lets each process write (physical bytes)."""

    #: pid -> bytes its CPL 3 code may write (own data and stack, exports, writable imports).
    user: dict[int, Ranges] = attrs.field(factory=dict)
    #: pid -> bytes the processor writes on behalf of its threads (ring-2 stack).
    ring2: dict[int, Ranges] = attrs.field(factory=dict)
    #: pid -> private data of the procedures whose DPL 2 segments its LDT (or the GDT) holds.
    procedure_data: dict[int, Ranges] = attrs.field(factory=dict)
    #: pid -> process name, and physical frame -> pid owning it (for messages).
    owners: dict[int, int] = attrs.field(factory=dict)


@attrs.define
class Built:
    system: LavenderSystem
    spec: SystemSpec
    processes: list[Process]
    procedures: list[ProcedureExport]
    grants: Grants
    #: (pid, code selector without RPL) -> the procedure whose code it is, for each process.
    entries: dict[tuple[int, int], ProcedureExport]
    #: gate selector without RPL, per pid -> the procedure.
    gates: dict[tuple[int, int], ProcedureExport]
    idt_targets: frozenset[int]
    table_frames: frozenset[int]


def _phys_of(system: LavenderSystem, process: Process, linear: int) -> int:
    directory = process.group.directory if process.group is not None else system.boot_directory
    phys = system.page_tables.translate(directory, linear, user=False, write=False)
    assert phys is not None, (process.name, hex(linear))
    return phys


def _grant(ranges: Ranges, system: LavenderSystem, process: Process, base: int, n: int) -> None:
    for k in range(0, n):
        linear = base + k
        if k == 0 or linear & 0xFFF == 0:
            phys = _phys_of(system, process, linear)
            chunk = min(n - k, 0x1000 - (linear & 0xFFF))
            _add(ranges, phys, chunk)


def build(spec: SystemSpec, memory_size: int = 8 << 20) -> Built:
    system = LavenderSystem(
        profile=spec.profile,
        memory_size=memory_size,
        timer_period=spec.timer_period,
        observe=False,
    )
    groups = [system.create_group(f"g{g}") for g in range(spec.groups)]
    sharing = system.sharing
    # Processes are created in index order; each one's programs may call the procedures
    # exported by processes created before it (resident ones, and its own group's that it
    # imports); a process's procedures are exported right after it is created.
    processes: list[Process] = []
    order = list(range(len(spec.processes)))
    created: dict[int, Process] = {}
    exports: dict[int, ProcedureExport] = {}

    def group_of(k: int) -> Any:
        g = spec.processes[k].group
        return None if g is None else groups[g]

    def export_for(owner_k: int) -> None:
        for index, proc in enumerate(spec.procs):
            if proc.owner != owner_k:
                continue
            source = PROC_BODIES[proc.body]
            if proc.body == "hostile":
                source = (
                    f".equ HOSTILE_SEL, {proc.hostile[0]:#x}\n"
                    f".equ HOSTILE_OFF, {proc.hostile[1]:#x}\n" + source
                )
            exports[index] = sharing.export_procedure(
                created[owner_k], source, entry="entry", params=proc.params,
                private_data_size=proc.private, name=f"proc{index}",
            )  # fmt: skip

    uid = 0
    thread_labels: dict[int, list[str]] = {}
    calls_of: dict[int, list[ProcedureExport]] = {}
    for k in order:
        spec_p = spec.processes[k]
        group = group_of(k)
        # Procedures this process may call: those already exported (owners created before).
        callable_idx = [i for i in _callable(spec.procs, list(spec.processes), k) if i in exports]
        calls = [exports[i] for i in callable_idx]
        calls_of[k] = calls
        source = PRELUDE + "main_stub:\n    mov eax, SYS_EXIT\n    xor ebx, ebx\n    int 0x30\n"
        labels = []
        for n, (owner, ops) in enumerate(spec.threads):
            if owner != k:
                continue
            usable = [op for op in ops if op[0] not in ("lav_call", "gate") or calls]
            if spec.server is None:
                usable = [op for op in usable if op[0] not in (
                    "ipc_call", "l4_call", "ipc_call_timed", "l4_call_timed")]
            label = f"thread_{n}"
            source += f"{label}:\n" + program_source(usable, k, uid, calls)
            uid += len(ops)
            labels.append(label)
        thread_labels[k] = labels
        source += SERVER_LOOP + L4_SERVER_LOOP + lav_call_source(group)
        if group is not None:
            process = system.create_process(
                group,
                source,
                data_size=spec_p.data_size,
                max_threads=spec_p.max_threads + 2,
                name=f"p{k}",
            )
        else:
            process = system.create_resident_process(
                source, data_size=spec_p.data_size, max_threads=spec_p.max_threads + 2, name=f"p{k}"
            )
        created[k] = process
        processes.append(process)
        export_for(k)
    # Imports of procedures (in-group) and address structures of every callable procedure.
    for index, proc in enumerate(spec.procs):
        for k in proc.importers:
            if spec.processes[k].group == spec.processes[proc.owner].group:
                sharing.import_procedure(created[k], exports[index])
    for k, calls in calls_of.items():
        for n, export in enumerate(calls[:8]):
            sharing.write_address(created[k], ADDR_AREA + 20 * n, export.address())
    # Data exports and imports; page shares.
    grants = Grants()
    for process in created.values():
        grants.user[process.pid] = {}
        grants.ring2[process.pid] = {}
        grants.procedure_data[process.pid] = {}
        user = grants.user[process.pid]
        _grant(user, system, process, process.data_base, process.data_size)
        _grant(user, system, process, process.stack_base, process.stack_size * process.max_threads)
        _grant(
            grants.ring2[process.pid],
            system,
            process,
            process.ring2_base,
            process.ring2_stack_size * process.max_threads,
        )
        for base, size in (
            (process.code_base, process.code_size),
            (process.data_base, process.data_size),
            (process.stack_base, process.stack_size * process.max_threads),
            (process.ring2_base, process.ring2_stack_size * process.max_threads),
        ):
            for page in range(base & ~0xFFF, base + size, 0x1000):
                grants.owners[_phys_of(system, process, page) >> 12] = process.pid
    for ds in spec.data:
        owner = created[ds.owner]
        try:
            export = sharing.export_data(owner, ds.size, offset=ds.offset, writable=ds.writable)
        except Exception as error:
            if type(error).__name__ != "ConfigError":
                raise
            continue
        if ds.writable:
            _grant(grants.user[owner.pid], system, owner, export.base, export.size)
        for page in range(export.base & ~0xFFF, export.base + export.size, 0x1000):
            grants.owners.setdefault(_phys_of(system, owner, page) >> 12, owner.pid)
        for k, writable in ds.importers:
            importer = created[k]
            try:
                sharing.import_data(importer, export, writable=writable)
            except Exception as error:
                if type(error).__name__ != "ConfigError":
                    raise
                continue
            if writable:
                _grant(grants.user[importer.pid], system, owner, export.base, export.size)
    for ps in spec.pages:
        exporter, importer = created[ps.exporter], created[ps.importer]
        try:
            share = sharing.share_pages(
                exporter, ps.offset, ps.size, importer, writable=ps.writable
            )
        except Exception as error:
            if type(error).__name__ != "ConfigError":
                raise
            continue
        if ps.writable:
            _grant(grants.user[importer.pid], system, importer, share.base, share.size)
    # Procedures: private data grants at CPL 2, entries and gates per process that holds them.
    entries: dict[tuple[int, int], ProcedureExport] = {}
    gates: dict[tuple[int, int], ProcedureExport] = {}
    for index, export in exports.items():
        proc = spec.procs[index]
        owner = export.owner
        if export.resident:
            holders = list(created.values())
        else:
            holders = [owner] + [
                created[k]
                for k in proc.importers
                if spec.processes[k].group == spec.processes[proc.owner].group
            ]
        for holder in holders:
            entries[(holder.pid, export.code_selector & ~3)] = export
            gates[(holder.pid, export.gate_selector & ~3)] = export
            if export.data_base is not None:
                _grant(
                    grants.procedure_data[holder.pid],
                    system,
                    owner,
                    export.data_base,
                    export.data_size,
                )
        for page in range(export.code_base & ~0xFFF, export.code_base + export.code_size, 0x1000):
            grants.owners[_phys_of(system, owner, page) >> 12] = owner.pid
        if export.data_base is not None:
            for page in range(
                export.data_base & ~0xFFF, export.data_base + export.data_size, 0x1000
            ):
                grants.owners[_phys_of(system, owner, page) >> 12] = owner.pid
    # The IPC server and the threads.
    if spec.server is not None:
        server = created[spec.server]
        open_port_for(system.memory, SERVER_PORT, server.pid)
        system.create_thread(server, "server_main")
        # Its L4-style echo thread: every process may send to it (issue 14).
        echo = system.create_thread(server, "l4_server_main")
        for process in created.values():
            grant_send(system, process, server)
            system.sharing.write_data(process, L4_TID_OFFSET, struct.pack("<I", echo.tid))
    for k, labels in thread_labels.items():
        for label in labels:
            system.create_thread(created[k], label)
    idt = set()
    for vector in range(L.IDT_ENTRIES):
        raw = system.memory.read(L.IDT_PHYS + 8 * vector, 8)
        low, high = struct.unpack("<II", raw)
        if high & 0x8000:
            idt.add((low & 0xFFFF) | (high & 0xFFFF0000))
    return Built(
        system,
        spec,
        processes,
        list(exports.values()),
        grants,
        entries,
        gates,
        frozenset(idt),
        frozenset(system.page_tables.table_frames()),
    )


