"""A :class:`~lavsim.kernel.system.LavenderSystem`'s host-side bookkeeping as JSON data, and
back: what a system snapshot file holds besides the machine (issue 19).

The bookkeeping is everything Python keeps that later host calls depend on: the frame
allocator, the page-table records (directories, their user tables, the shared PDEs), groups,
processes (placement, limits, symbols), thread handles (every one a process still lists, and
the live one of each id), the next pid, the resident space's next free address, whether the
kernel has started, the name server, the sharing manager (slot tables, data and procedure
exports, page shares) and the observer's counters. :func:`get_state` gives it as plain JSON
data (processes and threads are named by pid and by (tid, generation), never by object);
:func:`prepare` checks every field of such data against a system of the same configuration
(``ValueError`` naming the field by its path, e.g. ``processes[2].code_base``), builds new
handles, and returns what installs them, so that a refused state changes nothing.

A restore builds new handle objects (:class:`Process`, :class:`Thread`, exports): handles the
caller held on the target system before the restore belong to its old state; find the new
ones in ``system.processes``, ``system.threads`` and ``system.sharing``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from lavsim.kernel import layout as L
from lavsim.kernel.addrspace import PageDirectory
from lavsim.kernel.sharing import DataExport, PageShare, ProcedureExport, Sharing
from lavsim.snapshot import Snapshot, SnapshotError, prepare_restore

if TYPE_CHECKING:
    from lavsim.kernel.system import LavenderSystem, Process, ProcessGroup, Thread

__all__ = ["Handles", "RestorePlan", "get_state", "prepare", "prepare_system"]

_MASK32 = 0xFFFFFFFF
_ThreadKey = tuple[int, int]


def _config(system: LavenderSystem) -> dict[str, Any]:
    """What a system must match besides its machine's configuration (which the machine
    snapshot checks): the observer switch, global pages, and the kernel image itself."""
    return {
        "observe": system.observer is not None,
        "global_pages": system.global_pages,
        "kernel": hashlib.sha256(system.image.code).hexdigest(),
    }


# --- to JSON ---------------------------------------------------------------------------------


def _pairs(mapping: Mapping[Any, Any]) -> list[list[Any]]:
    # Pairs, not an object: keys keep their type (JSON object keys are strings) and their order.
    return [[k, v] for k, v in mapping.items()]


def _process_state(process: Process) -> dict[str, Any]:
    return {
        "pid": process.pid, "name": process.name,
        "group": None if process.group is None else process.group.gid,
        "symbols": _pairs(process.symbols),
        "code_base": process.code_base, "code_size": process.code_size,
        "data_base": process.data_base, "data_size": process.data_size,
        "stack_base": process.stack_base, "stack_size": process.stack_size,
        "ring2_base": process.ring2_base, "ring2_stack_size": process.ring2_stack_size,
        "max_threads": process.max_threads,
        "threads": [[t.tid, t.generation] for t in process.threads],
    }  # fmt: skip


def _sharing_state(sharing: Sharing) -> dict[str, Any]:
    index = {id(export): k for k, export in enumerate(sharing.data_exports)}
    data_slots: list[list[Any]] = [[] for _ in sharing.data_exports]
    for key, slots in sharing._data_slots.items():
        data_slots[index[key]] = [[kind, n, slot] for (kind, n), slot in slots.items()]
    return {
        "slots": [[kind, n, _pairs(used)] for (kind, n), used in sharing._slots.items()],
        "gdt": _pairs(sharing._gdt),
        "data_exports": [
            {"owner": e.owner.pid, "name": e.name, "base": e.base, "size": e.size,
             "writable": e.writable, "slot": e.slot, "slots": data_slots[k]}
            for k, e in enumerate(sharing.data_exports)
        ],
        "procedures": [
            {"owner": p.owner.pid, "name": p.name, "code_base": p.code_base,
             "code_size": p.code_size, "entry": p.entry, "params": p.params,
             "symbols": _pairs(p.symbols), "code_slot": p.code_slot, "gate_slot": p.gate_slot,
             "data_slot": p.data_slot, "data_base": p.data_base, "data_size": p.data_size}
            for p in sharing.procedures
        ],
        "page_shares": [
            {"exporter": s.exporter.pid, "importer": s.importer.pid, "selector": s.selector,
             "base": s.base, "size": s.size, "object_offset": s.object_offset,
             "object_size": s.object_size}
            for s in sharing.page_shares
        ],
    }  # fmt: skip


def get_state(system: LavenderSystem) -> dict[str, Any]:
    """The system's bookkeeping as JSON data (see the module docstring)."""
    frames = system.frames
    tables = system.page_tables
    directories = {id(pd): k for k, pd in enumerate(tables.directories)}
    return {
        "config": _config(system),
        "started": system._started,
        "next_pid": system._next_pid,
        "next_tid": system._next_tid,
        "resident_next": system._resident_next,
        "faults_logged": sorted([tid, gen] for tid, gen in system._faults_logged),
        "frames": {"next": frames._next, "freed": list(frames._freed),
                   "in_use": sorted(frames._in_use)},
        "page_tables": {
            "shared_pdes": _pairs(tables.shared_pdes),
            "directories": [{"name": pd.name, "pfn": pd.pfn, "user_tables": _pairs(pd.user_tables)}
                            for pd in tables.directories],
        },
        "groups": [
            {"gid": g.gid, "name": g.name, "directory": directories[id(g.directory)],
             "next_linear": g.next_linear, "processes": [p.pid for p in g.processes]}
            for g in system.groups
        ],
        "processes": [_process_state(p) for p in system.processes.values()],
        "live_threads": [[t.tid, t.generation] for t in system.threads.values()],
        "name_server": None if system.name_server is None else system.name_server.pid,
        "sharing": None if system._sharing is None else _sharing_state(system._sharing),
        "observer": None if system.observer is None else system.observer.get_state(),
    }  # fmt: skip


# --- checked reading -------------------------------------------------------------------------


class _Field:
    """A value of the state at a path (``processes[2].symbols``), read with checks that raise
    ``ValueError`` naming the path."""

    def __init__(self, value: object, path: str) -> None:
        self.value = value
        self.path = path

    def fail(self, why: str) -> ValueError:
        return ValueError(f"{self.path}: {why}")

    def __getitem__(self, key: str | int) -> _Field:
        value = self.value
        path = f"{self.path}.{key}" if isinstance(key, str) else f"{self.path}[{key}]"
        if isinstance(key, str):
            if not isinstance(value, dict) or key not in value:
                raise ValueError(f"{path}: missing")
            return _Field(value[key], path)
        if not isinstance(value, list) or not 0 <= key < len(value):
            raise ValueError(f"{path}: missing")
        return _Field(value[key], path)

    def integer(self, low: int = 0, high: int = _MASK32) -> int:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"must be an int, not {type(value).__name__}")
        if not low <= value <= high:
            raise self.fail(f"{value} is outside {low:#x}..{high:#x}")
        return value

    def opt_int(self, low: int = 0, high: int = _MASK32) -> int | None:
        return None if self.value is None else self.integer(low, high)

    def flag(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"must be a bool, not {type(self.value).__name__}")
        return self.value

    def text(self) -> str:
        if not isinstance(self.value, str):
            raise self.fail(f"must be a str, not {type(self.value).__name__}")
        return self.value

    def items(self, length: int | None = None) -> list[_Field]:
        value = self.value
        if not isinstance(value, list):
            raise self.fail(f"must be a list, not {type(value).__name__}")
        if length is not None and len(value) != length:
            raise self.fail(f"must have {length} items, not {len(value)}")
        return [_Field(item, f"{self.path}[{k}]") for k, item in enumerate(value)]

    def keys(self, *names: str) -> None:
        """The value is an object with exactly these keys."""
        if not isinstance(self.value, dict):
            raise self.fail(f"must be an object, not {type(self.value).__name__}")
        if set(self.value) != set(names):
            raise self.fail(f"must have exactly the keys {sorted(names)}, not "
                            f"{sorted(map(str, self.value))}")

    def aligned(self, low: int, high: int) -> int:
        value = self.integer(low, high)
        if value % L.PAGE_SIZE:
            raise self.fail(f"{value:#x} is not page aligned")
        return value


def _symbols(field: _Field) -> dict[str, int]:
    out: dict[str, int] = {}
    for pair in field.items():
        name, value = pair.items(2)
        key = name.text()
        if key in out:
            raise name.fail(f"symbol {key!r} twice")
        # Symbols are label offsets and .equ values: any value the assembler accepts.
        out[key] = value.integer(-(1 << 64), 1 << 64)
    return out


# --- back from JSON --------------------------------------------------------------------------


@attrs.frozen(eq=False)
class RestorePlan:
    """Checked bookkeeping, ready to install: the new handles (``processes`` by pid,
    ``threads`` by (tid, generation)) and :meth:`apply`, which installs them (and cannot
    fail). Other code restoring references to handles (a cluster's hosts) resolves them here."""

    processes: Mapping[int, Process]
    threads: Mapping[_ThreadKey, Thread]
    apply: Callable[[], None]

    def process(self, field: str, pid: object) -> Process:
        """The process ``pid`` of the plan (``ValueError`` naming ``field`` if there is none)."""
        found = self.processes.get(pid) if isinstance(pid, int) else None
        if found is None or isinstance(pid, bool):
            raise ValueError(f"{field}: {pid!r} is not a process of the snapshot")
        return found

    def thread(self, field: str, key: object) -> Thread:
        """The thread ``[tid, generation]`` of the plan (``ValueError`` naming ``field``)."""
        found = None
        if isinstance(key, list) and len(key) == 2 and all(
            isinstance(k, int) and not isinstance(k, bool) for k in key
        ):
            found = self.threads.get((key[0], key[1]))
        if found is None:
            raise ValueError(f"{field}: {key!r} is not a thread of the snapshot")
        return found


#: The handle classes of :mod:`lavsim.kernel.system` (group, process, thread), passed in by
#: the caller: this module sits below ``kernel.system`` in the import graph (system.py calls it).
Handles = tuple["type[ProcessGroup]", "type[Process]", "type[Thread]"]


def prepare(system: LavenderSystem, state: object, handles: Handles) -> RestorePlan:
    """Check ``state`` (from :func:`get_state`) against ``system`` and build what it describes
    with the ``handles`` classes, changing nothing; ``ValueError`` naming the field if anything
    is wrong. The machine is not restored here (the caller restores it from the same
    snapshot)."""
    group_cls, process_cls, thread_cls = handles

    root = _Field(state, "system")
    root.keys("config", "started", "next_pid", "next_tid", "resident_next", "faults_logged",
              "frames", "page_tables", "groups", "processes", "live_threads", "name_server",
              "sharing", "observer")
    config = root["config"].value
    mine = _config(system)
    if not isinstance(config, dict) or set(config) != set(mine):
        raise root["config"].fail(f"must have exactly the keys {sorted(mine)}")
    for name, value in mine.items():
        if config[name] != value:
            raise root["config"][name].fail(
                f"the snapshot's system has {config[name]!r}, this system {value!r}")
    started = root["started"].flag()
    next_pid = root["next_pid"].integer(1, L.MAX_PROCESSES)
    next_tid = root["next_tid"].integer(1, _MASK32)
    resident_next = root["resident_next"].aligned(L.RESIDENT_BASE, L.RESIDENT_END)
    faults_logged: set[tuple[int, int]] = set()
    for pair in root["faults_logged"].items():
        tid, gen = pair.items(2)
        faults_logged.add((tid.integer(1, L.MAX_THREADS - 1), gen.integer()))

    # --- frames ------------------------------------------------------------------------------
    allocator = system.frames
    frames = root["frames"]
    frames.keys("next", "freed", "in_use")
    first, end = allocator.first_pfn, allocator.end_pfn
    frame_next = frames["next"].integer(first, end)
    freed = [f.integer(first, frame_next - 1) for f in frames["freed"].items()]
    in_use = {f.integer(first, frame_next - 1) for f in frames["in_use"].items()}
    if len(set(freed)) != len(freed) or set(freed) & in_use or (
        len(freed) + len(in_use) != frame_next - first
    ):
        raise frames.fail("freed and in_use must split the frames handed out so far")
    if any(freed[k] < freed[(k - 1) // 2] for k in range(1, len(freed))):
        raise frames["freed"].fail("must be a heap (heapq order)")

    # --- page tables ---------------------------------------------------------------------------
    tables = root["page_tables"]
    tables.keys("shared_pdes", "directories")
    shared_pdes: dict[int, int] = {}
    for pair in tables["shared_pdes"].items():
        index, value = pair.items(2)
        key = index.integer(L.PDE_RESIDENT_FIRST, 1023)
        pde = value.integer()
        if key in shared_pdes or not pde & 1 or (pde >> L.PAGE_SHIFT) not in in_use:
            raise value.fail("a shared PDE must be present, once, and its table allocated")
        shared_pdes[key] = pde
    directories: list[PageDirectory] = []
    for entry in tables["directories"].items():
        entry.keys("name", "pfn", "user_tables")
        pfn = entry["pfn"].integer()
        if pfn not in in_use:
            raise entry["pfn"].fail(f"frame {pfn:#x} is not allocated")
        user: dict[int, int] = {}
        for pair in entry["user_tables"].items():
            index, table = pair.items(2)
            key = index.integer(0, L.PDE_RESIDENT_FIRST - 1)
            value = table.integer()
            if key in user or value not in in_use:
                raise table.fail("a user table must be listed once and its frame allocated")
            user[key] = value
        directories.append(PageDirectory(entry["name"].text(), pfn, user))
    if not directories:
        raise tables["directories"].fail("the boot directory is missing")

    # --- groups, processes, threads -------------------------------------------------------------
    groups: list[ProcessGroup] = []
    group_pids: list[list[int]] = []
    for k, entry in enumerate(root["groups"].items()):
        entry.keys("gid", "name", "directory", "next_linear", "processes")
        entry["gid"].integer(k + 1, k + 1)
        directory = entry["directory"].integer(1, len(directories) - 1)
        if any(g.directory is directories[directory] for g in groups):
            raise entry["directory"].fail("another group has this page directory")
        groups.append(group_cls(k + 1, entry["name"].text(), directories[directory],
                                entry["next_linear"].aligned(L.USER_BASE, L.USER_END)))
        group_pids.append([p.integer(1, next_pid - 1) for p in entry["processes"].items()])
    processes: dict[int, Process] = {}
    threads: dict[_ThreadKey, Thread] = {}
    for entry in root["processes"].items():
        entry.keys("pid", "name", "group", "symbols", "code_base", "code_size", "data_base",
                   "data_size", "stack_base", "stack_size", "ring2_base", "ring2_stack_size",
                   "max_threads", "threads")
        pid = entry["pid"].integer(1, next_pid - 1)
        if pid in processes:
            raise entry["pid"].fail(f"process {pid} twice")
        gid = entry["group"].opt_int(1, len(groups))
        process = process_cls(
            pid=pid, name=entry["name"].text(),
            group=None if gid is None else groups[gid - 1],
            symbols=_symbols(entry["symbols"]),
            code_base=entry["code_base"].integer(), code_size=entry["code_size"].integer(1),
            data_base=entry["data_base"].integer(), data_size=entry["data_size"].integer(1),
            stack_base=entry["stack_base"].integer(), stack_size=entry["stack_size"].integer(4),
            ring2_base=entry["ring2_base"].integer(),
            ring2_stack_size=entry["ring2_stack_size"].integer(L.RING2_STACK_MIN),
            max_threads=entry["max_threads"].integer(1, L.MAX_THREADS_PER_PROCESS),
        )  # fmt: skip
        for pair in entry["threads"].items():
            tid, gen = pair.items(2)
            tkey = (tid.integer(1, L.MAX_THREADS - 1), gen.integer())
            if tkey in threads:
                raise pair.fail(f"thread {list(tkey)} twice")
            thread = thread_cls(tkey[0], process, tkey[1])
            threads[tkey] = thread
            process.threads.append(thread)
        processes[pid] = process
    for k, pids in enumerate(group_pids):
        members = [p for p in processes.values() if p.group is groups[k]]
        if sorted(pids) != sorted(p.pid for p in members) or len(set(pids)) != len(pids):
            raise root["groups"][k]["processes"].fail("must list exactly the group's processes")
        groups[k].processes.extend(processes[p] for p in pids)
    live: dict[int, Thread] = {}
    for pair in root["live_threads"].items():
        tid, gen = pair.items(2)
        tkey = (tid.integer(1, L.MAX_THREADS - 1), gen.integer())
        if tkey not in threads or tkey[0] in live:
            raise pair.fail(f"thread {list(tkey)} is not a thread of a process, or twice")
        live[tkey[0]] = threads[tkey]
    ns = root["name_server"].opt_int(1, next_pid - 1)
    if ns is not None and ns not in processes:
        raise root["name_server"].fail(f"{ns} is not a process")
    name_server = None if ns is None else processes[ns]

    sharing_state = root["sharing"]
    sharing = None if sharing_state.value is None else _sharing(
        system, sharing_state, processes, groups)
    observer = system.observer
    observer_state = root["observer"]
    if observer is None:
        if observer_state.value is not None:
            raise observer_state.fail("this system has no observer")
    else:
        observer.check_state(observer_state.value)
    observer_saved: Any = observer_state.value

    def apply() -> None:
        allocator._next = frame_next
        allocator._freed = list(freed)
        allocator._in_use = set(in_use)
        pt = system.page_tables
        pt.shared_pdes = dict(shared_pdes)
        pt.directories = directories
        system.boot_directory = directories[0]
        system.groups = groups
        system.processes = processes
        system.threads = live
        system._resident_next = resident_next
        system._sharing = sharing
        system._next_pid = next_pid
        system._next_tid = next_tid
        system._started = started
        system.name_server = name_server
        system._faults_logged = faults_logged
        if observer is not None:
            observer.set_state(observer_saved)

    return RestorePlan(processes, threads, apply)


def _domain(field: _Field, kind: _Field, number: _Field, processes: Mapping[int, Process],
            groups: list[ProcessGroup]) -> tuple[str, int]:
    name = kind.text()
    n = number.integer()
    if name == "group" and 1 <= n <= len(groups):
        return name, n
    if name == "resident" and n in processes and processes[n].group is None:
        return name, n
    raise field.fail(f"{[name, n]} is not a group or a resident process")


def _sharing(system: LavenderSystem, field: _Field, processes: Mapping[int, Process],
             groups: list[ProcessGroup]) -> Sharing:
    field.keys("slots", "gdt", "data_exports", "procedures", "page_shares")
    sharing = Sharing(system)
    for entry in field["slots"].items():
        kind, number, used = entry.items(3)
        domain = _domain(entry, kind, number, processes, groups)
        if domain in sharing._slots:
            raise entry.fail(f"domain {list(domain)} twice")
        table: dict[int, str] = {}
        for pair in used.items():
            slot, what = pair.items(2)
            table[slot.integer(0, L.LDT_ENTRIES - 1)] = what.text()
        sharing._slots[domain] = table
    for pair in field["gdt"].items():
        slot, what = pair.items(2)
        sharing._gdt[slot.integer(0, L.GDT_ENTRIES - 1)] = what.text()

    def owner(f: _Field) -> Process:
        pid = f.integer()
        if pid not in processes:
            raise f.fail(f"{pid} is not a process")
        return processes[pid]

    for entry in field["data_exports"].items():
        entry.keys("owner", "name", "base", "size", "writable", "slot", "slots")
        export = DataExport(owner(entry["owner"]), entry["name"].text(), entry["base"].integer(),
                            entry["size"].integer(1), entry["writable"].flag(),
                            entry["slot"].integer(0, L.LDT_ENTRIES - 1))
        slots: dict[tuple[str, int], int] = {}
        for item in entry["slots"].items():
            kind, number, slot = item.items(3)
            slots[_domain(item, kind, number, processes, groups)] = slot.integer(
                0, L.LDT_ENTRIES - 1)
        sharing.data_exports.append(export)
        sharing._data_slots[id(export)] = slots
    for entry in field["procedures"].items():
        entry.keys("owner", "name", "code_base", "code_size", "entry", "params", "symbols",
                   "code_slot", "gate_slot", "data_slot", "data_base", "data_size")
        sharing.procedures.append(ProcedureExport(
            owner=owner(entry["owner"]), name=entry["name"].text(),
            code_base=entry["code_base"].integer(), code_size=entry["code_size"].integer(1),
            entry=entry["entry"].integer(), params=entry["params"].integer(0, 31),
            symbols=_symbols(entry["symbols"]),
            code_slot=entry["code_slot"].integer(0, L.GDT_ENTRIES - 1),
            gate_slot=entry["gate_slot"].integer(0, L.GDT_ENTRIES - 1),
            data_slot=entry["data_slot"].opt_int(0, L.GDT_ENTRIES - 1),
            data_base=entry["data_base"].opt_int(), data_size=entry["data_size"].integer(),
        ))  # fmt: skip
    for entry in field["page_shares"].items():
        entry.keys("exporter", "importer", "selector", "base", "size", "object_offset",
                   "object_size")
        sharing.page_shares.append(PageShare(
            owner(entry["exporter"]), owner(entry["importer"]),
            entry["selector"].integer(0, 0xFFFF),
            entry["base"].integer(), entry["size"].integer(1), entry["object_offset"].integer(),
            entry["object_size"].integer(1),
        ))  # fmt: skip
    return sharing


def prepare_system(system: LavenderSystem, machine: Snapshot, state: object,
                   handles: Handles, where: str = "") -> RestorePlan:
    """Check a system snapshot (the machine's ``Snapshot`` and the bookkeeping ``state``)
    against ``system``, changing nothing (:class:`SnapshotError` naming what is wrong, prefixed
    with ``where``); the plan's ``apply`` restores the machine, then the bookkeeping."""
    try:
        apply_machine = prepare_restore(system.machine, machine)
    except SnapshotError as error:
        if not where:
            raise
        raise SnapshotError(f"{where}{error}") from error
    try:
        plan = prepare(system, state, handles)
        _check_pcbs(plan, machine)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise SnapshotError(f"{where}malformed system bookkeeping: {error}") from error

    def apply() -> None:
        apply_machine()
        plan.apply()

    return RestorePlan(plan.processes, plan.threads, apply)


def _check_pcbs(plan: RestorePlan, machine: Snapshot) -> None:
    """The bookkeeping must describe the processes the snapshot's memory holds: each one's
    process control block (written by the boot loader at creation, never changed by the
    kernel) agrees with its record."""

    def dword(phys: int) -> int:
        frame = machine.frames.get(phys >> L.PAGE_SHIFT)
        offset = phys & (L.PAGE_SIZE - 1)
        return 0 if frame is None else int.from_bytes(frame[offset : offset + 4], "little")

    for pid, process in plan.processes.items():
        pcb = L.PCB_PHYS + pid * L.PCB_SIZE
        group = process.group
        expected = {
            "pid": (L.PCB_PID, pid),
            "group": (L.PCB_GROUP, 0 if group is None else group.gid),
            "cr3": (L.PCB_CR3, 0 if group is None else group.cr3),
            "code_size": (L.PCB_CODE_LIMIT, process.code_size - 1),
            "stack_base": (L.PCB_STACK_BASE, process.stack_base),
            "stack_size": (L.PCB_STACK_SLOT, process.stack_size),
            "ring2_stack_size": (L.PCB_R2_SLOT, process.ring2_stack_size),
            "max_threads": (L.PCB_MAX_THREADS, process.max_threads),
        }
        for name, (offset, value) in expected.items():
            if dword(pcb + offset) != value & _MASK32:
                raise ValueError(f"process {pid}: {name} {value:#x} is not what its process "
                                 f"control block in memory says ({dword(pcb + offset):#x})")
