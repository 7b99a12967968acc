"""Checkpoints: every simulated state of a :class:`~lavsim.machine.Machine`, in memory or in a file.

:func:`take_snapshot` (machine) returns a :class:`Snapshot`; :func:`restore_snapshot`
(machine, snapshot) puts it back, into the same machine or
into a freshly built one of the same profile, memory size and TLB geometry. A snapshot holds:

- physical memory (every frame that is not all zeros);
- the CPU: general registers, EIP, EFLAGS (settled: lazy status flags are computed first), CPL,
  the six segment registers with their hidden caches, LDTR and TR with theirs, GDTR and IDTR,
  CR0/CR2/CR3/CR4, the TSC, instructions retired, the halted / interrupt-pending / shutdown state
  and the triple-fault report;
- the MMU: its paging controls, its event counters, and every modelled TLB's entries **in LRU
  order** with its statistics;
- the devices: the interrupt controller's registers and initialisation state, the interval
  timer's period, next event and tick count, the console text; and the machine's idle-cycle count.

Host-side settings are not part of a snapshot and are left alone by a restore: breakpoints, the
trace hook, step observers, the decoded-instruction cache switch and the MMU fast-path switch.
Host-side speed caches (decoded instructions, the MMU's fast path) are dropped by a restore, so
they are rebuilt from the restored state; they never change a simulated result.

**File format** (``Snapshot.save`` / ``Snapshot.load``), version :data:`SNAPSHOT_VERSION`: a
NumPy ``.npz`` archive (zip) read with ``allow_pickle=False``, holding four arrays:

=========== ================ ===============================================================
``meta``    uint8 [n]        UTF-8 JSON: ``{"format": "lavsim-snapshot", "version": 1,
                             "config": {...}, "state": {...}, "sha256": "..."}``
``pfns``    uint32 [k]       the frame numbers of the stored frames, ascending
``frames``  uint8 [k, 4096]  their contents
``console`` uint8 [m]        the console bytes
=========== ================ ===============================================================

``config`` names what a machine must match to take the snapshot (``profile``,
``memory_size``, ``tlbs``: the geometry of each TLB). ``state`` holds the CPU, MMU, TLB and
device state as JSON numbers, booleans, strings and lists (its layout is what
:meth:`Snapshot.state` shows). ``sha256`` is the SHA-256 of the canonical JSON of config and
state followed by the frames and console, so a file whose bytes were changed is refused even
where the zip checksums would not notice. A file of another format or version, a corrupt file
or a malformed one raises :class:`SnapshotError`.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from lavsim.errors import LavsimError
from lavsim.mmu.segmentation import SegmentCache
from lavsim.mmu.tlb import TLB, TLBEntry

if TYPE_CHECKING:
    from lavsim.machine import Machine

__all__ = [
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "HostState",
    "Snapshot",
    "SnapshotError",
    "SystemSnapshot",
    "restore_snapshot",
    "take_snapshot",
]

SNAPSHOT_FORMAT = "lavsim-snapshot"
#: Version of the file format and of the ``state`` layout; bumped on any incompatible change.
SNAPSHOT_VERSION = 1

_PAGE = 4096
_MASK32 = 0xFFFFFFFF
_SEGMENT_FIELDS = ("selector", "base", "limit", "type", "s", "dpl", "present", "db", "g",
                   "avl", "valid")
_MMU_COUNTERS = ("walks", "dirty_walks", "walk_reads", "ad_writes", "page_faults", "flushes",
                 "invlpgs")
_TLB_COUNTERS = ("hits", "misses", "flushes", "evictions", "invlpgs")


class SnapshotError(LavsimError):
    """A snapshot cannot be saved, read or restored: the message says why."""


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@attrs.frozen(eq=False)
class Snapshot:
    """Every simulated state of a machine at one moment (see the module docstring).

    Treat it as read-only: ``config`` and ``state`` are plain JSON-like data, ``frames`` maps
    frame numbers to their 4096 bytes (frames not listed are all zeros), ``console`` is the
    console text as bytes. Restoring never changes a snapshot, so one snapshot can be restored
    any number of times.
    """

    config: Mapping[str, Any]
    state: Mapping[str, Any]
    frames: Mapping[int, bytes]
    console: bytes

    @property
    def cycles(self) -> int:
        """The TSC at the moment of the snapshot."""
        return int(self.state["cpu"]["tsc"])

    @property
    def instructions(self) -> int:
        """Instructions retired at the moment of the snapshot."""
        return int(self.state["cpu"]["instructions"])

    def digest(self) -> str:
        """SHA-256 (hex) of everything the snapshot holds: equal exactly when two snapshots
        describe the same simulated state."""
        h = hashlib.sha256()
        h.update(_canonical({"config": self.config, "state": self.state}))
        for pfn in sorted(self.frames):
            h.update(pfn.to_bytes(4, "little"))
            h.update(self.frames[pfn])
        h.update(len(self.console).to_bytes(8, "little"))
        h.update(self.console)
        return h.hexdigest()

    # --- files ------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the snapshot to ``path`` in the documented ``.npz`` format (version
        :data:`SNAPSHOT_VERSION`). NumPy appends ``.npz`` to a name without it; pass the name
        with the suffix to keep it exact."""
        pfns = sorted(self.frames)
        frames = np.zeros((len(pfns), _PAGE), dtype=np.uint8)
        for row, pfn in enumerate(pfns):
            frames[row] = np.frombuffer(self.frames[pfn], dtype=np.uint8)
        meta = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "config": self.config,
            "state": self.state,
            "sha256": self.digest(),
        }
        try:
            with open(path, "wb") as f:
                np.savez_compressed(
                    f,
                    meta=np.frombuffer(_canonical(meta), dtype=np.uint8),
                    pfns=np.asarray(pfns, dtype=np.uint32),
                    frames=frames,
                    console=np.frombuffer(self.console, dtype=np.uint8),
                )
        except OSError as error:
            raise SnapshotError(f"cannot write snapshot {os.fspath(path)!r}: {error}") from error

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by :meth:`save`; :class:`SnapshotError` if the file is not a
        lavsim snapshot, has another version, or is corrupt."""
        name = os.fspath(path)
        try:
            with np.load(name, allow_pickle=False) as archive:
                missing = {"meta", "pfns", "frames", "console"} - set(archive.files)
                if missing:
                    raise SnapshotError(f"{name!r} is not a lavsim snapshot "
                                        f"(missing {sorted(missing)})")
                meta_raw = archive["meta"]
                pfns = archive["pfns"]
                frames = archive["frames"]
                console = archive["console"]
        except SnapshotError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
            raise SnapshotError(f"cannot read snapshot {name!r}: {error}") from error
        if meta_raw.dtype != np.uint8 or meta_raw.ndim != 1:
            raise SnapshotError(f"{name!r}: malformed metadata")
        try:
            meta = json.loads(meta_raw.tobytes().decode())
        except (UnicodeDecodeError, ValueError) as error:
            raise SnapshotError(f"{name!r}: metadata is not JSON ({error})") from error
        if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"{name!r} is not a lavsim snapshot")
        if meta.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(
                f"{name!r} is snapshot format version {meta.get('version')!r}; this lavsim "
                f"reads version {SNAPSHOT_VERSION}"
            )
        if (pfns.dtype != np.uint32 or pfns.ndim != 1 or frames.dtype != np.uint8
                or frames.shape != (len(pfns), _PAGE) or console.dtype != np.uint8
                or console.ndim != 1):
            raise SnapshotError(f"{name!r}: malformed frame or console arrays")
        if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("state"), dict):
            raise SnapshotError(f"{name!r}: malformed metadata")
        snapshot = cls(
            config=meta["config"],
            state=meta["state"],
            frames={int(p): frames[row].tobytes() for row, p in enumerate(pfns)},
            console=console.tobytes(),
        )
        if len(snapshot.frames) != len(pfns) or snapshot.digest() != meta.get("sha256"):
            raise SnapshotError(f"{name!r} is corrupt: its checksum does not match its contents")
        return snapshot


# --- taking a snapshot -----------------------------------------------------------------------


def _segment_state(cache: SegmentCache) -> list[Any]:
    return [getattr(cache, name) for name in _SEGMENT_FIELDS]


def _machine_config(machine: Machine) -> dict[str, Any]:
    return {
        "profile": machine.profile.name,
        "memory_size": machine.memory.size,
        "tlbs": {
            name: [tlb.config.entries, tlb.config.ways, tlb.page_shift]
            for name, tlb in machine.mmu.tlbs.items()
        },
    }


def _tlb_state(tlb: TLB) -> dict[str, Any]:
    state: dict[str, Any] = {name: getattr(tlb, name) for name in _TLB_COUNTERS}
    state["sets"] = [
        [[key, e.base, e.us, e.rw, e.d, e.g, e.large] for key, e in entries]
        for entries in tlb.contents()
    ]
    return state


def take_snapshot(machine: Machine) -> Snapshot:
    """The snapshot of ``machine`` now: every simulated state (memory, CPU, MMU, TLB contents
    in LRU order with statistics, devices, counters)."""
    cpu = machine.cpu
    mmu = machine.mmu
    report = cpu.shutdown_report
    cpu_state = {
        "regs": list(cpu.regs),
        "eip": cpu.eip,
        "eflags": cpu.get_eflags(),
        "cpl": cpu.cpl,
        "seg": [_segment_state(s) for s in cpu.seg],
        "ldtr": _segment_state(cpu.ldtr),
        "tr": _segment_state(cpu.tr),
        "gdtr": [cpu.gdtr_base, cpu.gdtr_limit],
        "idtr": [cpu.idtr_base, cpu.idtr_limit],
        "cr0": cpu.cr0,
        "cr2": cpu.cr2,
        "cr3": cpu.cr3,
        "cr4": cpu.cr4,
        "tsc": cpu.tsc,
        "instructions": cpu.instructions,
        "halted": cpu.halted,
        "irq_pending": cpu.irq_pending,
        "shutdown": cpu.shutdown,
        "shutdown_report": None if report is None else attrs.asdict(report),
    }
    mmu_state: dict[str, Any] = {"cr0": mmu.cr0, "cr3": mmu.cr3, "cr4": mmu.cr4}
    mmu_state.update({name: getattr(mmu, name) for name in _MMU_COUNTERS})
    mmu_state["tlbs"] = {name: _tlb_state(tlb) for name, tlb in mmu.tlbs.items()}
    memory = machine.memory
    frames: dict[int, bytes] = {}
    for pfn in memory.allocated_frames():
        array = memory.frame_array(pfn)
        if array.any():
            frames[pfn] = array.tobytes()
    state = {
        "cpu": cpu_state,
        "mmu": mmu_state,
        "pic": machine.pic.get_state(),
        "timer": machine.timer.get_state(),
        "machine": {"idle_cycles": machine.idle_cycles},
    }
    # A JSON round trip makes the in-memory snapshot exactly what a file holds (tuples become
    # lists), so a snapshot restores the same way whether or not it went through a file.
    return Snapshot(
        config=json.loads(_canonical(_machine_config(machine))),
        state=json.loads(_canonical(state)),
        frames=frames,
        console=machine.console_device.data,
    )


# --- restoring -------------------------------------------------------------------------------


def _int(value: object, low: int = 0, high: int = _MASK32) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{value!r} is not an int in {low}..{high}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not a bool")
    return value


def _segment_cache(fields: object) -> SegmentCache:
    if not isinstance(fields, list) or len(fields) != len(_SEGMENT_FIELDS):
        raise ValueError("a segment register needs 11 fields")
    selector, base, limit, type_, s, dpl, present, db, g, avl, valid = fields
    return SegmentCache(
        _int(selector, 0, 0xFFFF), _int(base), _int(limit), _int(type_, 0, 15), _bool(s),
        _int(dpl, 0, 3), _bool(present), _bool(db), _bool(g), _bool(avl), _bool(valid),
    )  # fmt: skip


def _tlb_sets(tlb: TLB, state: Mapping[str, Any]) -> list[dict[int, TLBEntry]]:
    sets = state["sets"]
    nsets = tlb.config.sets
    if not isinstance(sets, list) or len(sets) != nsets:
        raise ValueError(f"TLB {tlb.name} needs {nsets} sets")
    out: list[dict[int, TLBEntry]] = []
    for index, entries in enumerate(sets):
        if not isinstance(entries, list) or len(entries) > tlb.config.ways:
            raise ValueError(f"TLB {tlb.name} set {index} holds more than its ways")
        held: dict[int, TLBEntry] = {}
        for item in entries:
            if not isinstance(item, list) or len(item) != 7:
                raise ValueError(f"TLB {tlb.name}: malformed entry")
            key, base, us, rw, d, g, large = item
            key = _int(key, 0, _MASK32 >> tlb.page_shift)
            if key % nsets != index or key in held:
                raise ValueError(f"TLB {tlb.name}: page {key:#x} in the wrong set")
            held[key] = TLBEntry(_int(base), _bool(us), _bool(rw), _bool(d), _bool(g),
                                 _bool(large))
        out.append(held)
    return out


def _check_config(machine: Machine, config: Mapping[str, Any]) -> None:
    mine = json.loads(_canonical(_machine_config(machine)))
    for field in ("profile", "memory_size", "tlbs"):
        if config.get(field) != mine[field]:
            raise SnapshotError(
                f"snapshot was taken on a machine with {field} = {config.get(field)!r}; this "
                f"machine has {mine[field]!r}"
            )


def restore_snapshot(machine: Machine, snapshot: Snapshot) -> None:
    """Put ``snapshot`` back into ``machine`` (taken from it or from one of the same profile,
    memory size and TLB geometry; ``SnapshotError`` otherwise, nothing changed).

    Everything is checked and built first; the machine is changed only when the whole snapshot
    is usable, so a refused snapshot (:class:`SnapshotError`) leaves the machine as it was.
    """
    if not isinstance(snapshot, Snapshot):
        raise SnapshotError(f"not a Snapshot: {type(snapshot).__name__}")
    _check_config(machine, snapshot.config)
    cpu = machine.cpu
    mmu = machine.mmu
    memory = machine.memory
    try:
        c = snapshot.state["cpu"]
        m = snapshot.state["mmu"]
        regs = [_int(v) for v in c["regs"]]
        if len(regs) != 8:
            raise ValueError("eight general registers")
        seg = [_segment_cache(f) for f in c["seg"]]
        if len(seg) != 6:
            raise ValueError("six segment registers")
        ldtr, tr = _segment_cache(c["ldtr"]), _segment_cache(c["tr"])
        gdtr = [_int(c["gdtr"][0]), _int(c["gdtr"][1], 0, 0xFFFF)]
        idtr = [_int(c["idtr"][0]), _int(c["idtr"][1], 0, 0xFFFF)]
        scalars = {name: _int(c[name]) for name in ("eip", "eflags", "cr0", "cr2", "cr3", "cr4")}
        cpl = _int(c["cpl"], 0, 3)
        tsc = _int(c["tsc"], 0, 1 << 64)
        instructions = _int(c["instructions"], 0, 1 << 64)
        halted, irq_pending = _bool(c["halted"]), _bool(c["irq_pending"])
        shutdown = c["shutdown"]
        if shutdown is not None and not isinstance(shutdown, str):
            raise ValueError("shutdown must be text or null")
        report = _triple_fault_report(c["shutdown_report"])
        mmu_controls = [_int(m[name]) for name in ("cr0", "cr3", "cr4")]
        mmu_counters = {name: _int(m[name], 0, 1 << 64) for name in _MMU_COUNTERS}
        tlbs = mmu.tlbs
        if set(m["tlbs"]) != set(tlbs):
            raise ValueError(f"TLBs {sorted(m['tlbs'])} != {sorted(tlbs)}")
        tlb_sets = {name: _tlb_sets(tlb, m["tlbs"][name]) for name, tlb in tlbs.items()}
        tlb_counters = {
            name: {k: _int(m["tlbs"][name][k], 0, 1 << 64) for k in _TLB_COUNTERS}
            for name in tlbs
        }
        idle_cycles = _int(snapshot.state["machine"]["idle_cycles"], 0, 1 << 64)
        frames = dict(snapshot.frames)
        for pfn, data in frames.items():
            _int(pfn, 0, memory.frame_count - 1)
            if not isinstance(data, bytes) or len(data) != _PAGE:
                raise ValueError(f"frame {pfn:#x} is not 4096 bytes")
        # Devices check their own state; try them on scratch copies first.
        _try_device_state(machine, snapshot.state)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise SnapshotError(f"malformed snapshot: {error!r}") from error

    # --- apply: nothing below can fail ---------------------------------------------------------
    for pfn in memory.allocated_frames():
        if pfn not in frames:
            # Zeroed in place, not dropped: the MMU's fast path and other holders of frame
            # views rely on a frame never being replaced.
            memory.frame_array(pfn)[:] = 0
    for pfn, data in frames.items():
        memory.frame_array(pfn)[:] = np.frombuffer(data, dtype=np.uint8)

    cpu.regs[:] = regs
    cpu.eip = scalars["eip"]
    cpu.eflags = scalars["eflags"]
    cpu.lazy_flags = None
    cpu.set_cpl(cpl)
    cpu.seg[:] = seg
    cpu.ldtr, cpu.tr = ldtr, tr
    cpu.gdtr_base, cpu.gdtr_limit = gdtr
    cpu.idtr_base, cpu.idtr_limit = idtr
    cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4 = (scalars[n] for n in ("cr0", "cr2", "cr3", "cr4"))
    cpu.tsc = tsc
    cpu.instructions = instructions
    cpu.halted = halted
    cpu.irq_pending = irq_pending
    cpu.shutdown = shutdown
    cpu.shutdown_report = report
    cpu.flush_decode_cache()

    # The MMU: controls without the flush a change would cause (the TLB contents are restored
    # below), then the modelled TLBs, then an empty host fast path.
    mmu_cr0, mmu_cr3, mmu_cr4 = mmu_controls
    mmu.cr0, mmu.cr4 = mmu_cr0, mmu_cr4
    mmu.set_controls(mmu_cr0, mmu_cr4)  # nothing changed: selects the fast dicts, no flush
    mmu.cr3 = mmu_cr3
    for name, value in mmu_counters.items():
        setattr(mmu, name, value)
    for name, tlb in tlbs.items():
        _restore_tlb(tlb, tlb_sets[name], tlb_counters[name])
    _drop_fast_path(mmu)

    machine.pic.set_state(snapshot.state["pic"])
    machine.timer.set_state(snapshot.state["timer"])
    machine.console_device.set_data(snapshot.console)
    machine.idle_cycles = idle_cycles


def _try_device_state(machine: Machine, state: Mapping[str, Any]) -> None:
    from lavsim.devices import IntervalTimer, ProgrammableInterruptController

    pic = ProgrammableInterruptController()
    pic.set_state(state["pic"])
    IntervalTimer(pic, lambda: 0).set_state(state["timer"])


def _triple_fault_report(value: object) -> Any:
    if value is None:
        return None
    from lavsim.cpu.interrupts import EventRecord, TripleFaultReport

    if not isinstance(value, dict):
        raise ValueError("shutdown_report must be an object or null")
    chain = tuple(EventRecord(**event) for event in value["chain"])
    fields = {k: v for k, v in value.items() if k != "chain"}
    return TripleFaultReport(chain=chain, **fields)


def _restore_tlb(tlb: TLB, sets: list[dict[int, TLBEntry]], counters: Mapping[str, int]) -> None:
    # The TLB keeps no copy of its sets anywhere else: refill them in place, in LRU order.
    for held, saved in zip(tlb._sets, sets, strict=True):
        held.clear()
        held.update(saved)
    tlb._large_pieces = sum(
        1 for s in sets for e in s.values() if e.large and tlb.page_shift == 12
    )
    for name, value in counters.items():
        setattr(tlb, name, value)


def _drop_fast_path(mmu: Any) -> None:
    """Empty the MMU's host-side fast path (it refills from the modelled TLBs as pages are
    touched). Reaches into the MMU: the fast path has no public reset."""
    mmu._clear_fast()
    mmu._identity.clear()


# --- host-side bookkeeping -------------------------------------------------------------------

_ATOMS = (type(None), bool, int, float, complex, str, bytes, range, type)
_UNSET = object()


def _attribute_names(obj: object) -> list[str]:
    names: list[str] = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    return names


class HostState:
    """A record, restorable in place, of a graph of host-side Python objects.

    Starting at ``root`` it walks lists, dicts, sets, deques, bytearrays, NumPy arrays, tuples
    and instances of lavsim classes (their ``__dict__`` and ``__slots__``), and records each
    mutable object's contents. :meth:`restore` puts every recorded object back to its recorded
    contents *in place*, so handles a caller holds (a process, a thread) stay the same objects
    and stay valid. Objects in ``skip`` (for example the machine, restored from its own
    snapshot) are neither walked nor changed; other objects (functions, foreign classes) are
    kept by reference. Objects created after the record are simply no longer reachable from
    the restored ones. A record can be restored any number of times.
    """

    def __init__(self, root: object, skip: Iterable[object] = ()) -> None:
        self.root = root
        self._skip = list(skip)
        skip_ids = {id(o) for o in self._skip}
        seen: set[int] = set()
        self._records: list[tuple[object, str, Any]] = []
        stack: list[object] = [root]
        while stack:
            obj = stack.pop()
            if id(obj) in seen or id(obj) in skip_ids or isinstance(obj, _ATOMS):
                continue
            seen.add(id(obj))
            kind, saved, children = self._record(obj)
            if kind:
                self._records.append((obj, kind, saved))
            stack.extend(children)

    @staticmethod
    def _record(obj: object) -> tuple[str, Any, list[object]]:
        if isinstance(obj, list | collections.deque):
            return "sequence", list(obj), list(obj)
        if isinstance(obj, dict):
            items = list(obj.items())
            return "dict", items, [x for kv in items for x in kv]
        if isinstance(obj, set):
            return "set", set(obj), list(obj)
        if isinstance(obj, tuple | frozenset):
            return "", None, list(obj)
        if isinstance(obj, bytearray):
            return "bytearray", bytes(obj), []
        if isinstance(obj, np.ndarray):
            return "array", obj.copy(), []
        if type(obj).__module__.split(".")[0] == "lavsim":
            values = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
            for name in _attribute_names(obj):
                values[name] = getattr(obj, name, _UNSET)
            return "object", values, list(values.values())
        return "", None, []

    def restore(self) -> None:
        """Put every recorded object back to its recorded contents, in place."""
        for obj, kind, saved in self._records:
            if kind == "sequence":
                seq: Any = obj
                seq.clear()
                seq.extend(saved)
            elif kind in ("dict", "set"):
                container: Any = obj
                container.clear()
                container.update(saved)
            elif kind == "bytearray":
                buffer: Any = obj
                buffer[:] = saved
            elif kind == "array":
                array: Any = obj
                array[...] = saved
            else:
                _restore_attributes(obj, saved)


def _restore_attributes(obj: object, saved: Mapping[str, object]) -> None:
    current = vars(obj) if hasattr(obj, "__dict__") else {}
    for name in [n for n in current if n not in saved]:
        object.__delattr__(obj, name)  # an attribute added after the record
    for name, value in saved.items():
        now = getattr(obj, name, _UNSET)
        if now is value:
            continue
        if value is _UNSET:
            object.__delattr__(obj, name)
        else:
            # object.__setattr__ also reaches frozen attrs classes (whose values rarely differ).
            object.__setattr__(obj, name, value)


@attrs.frozen(eq=False)
class SystemSnapshot:
    """A checkpoint of a machine and of the host-side bookkeeping of what runs on it (for
    example a :class:`~lavsim.kernel.LavenderSystem`'s groups, processes, threads, frame
    allocator and observer counters). The bookkeeping part refers to live objects: it is
    restored in place into the same owner, and lives in memory only; the ``machine`` part can
    be saved to a file like any :class:`Snapshot`.
    """

    machine: Snapshot
    host: HostState

    @classmethod
    def take(cls, owner: object, machine: Machine, keep: Iterable[object] = ()) -> SystemSnapshot:
        """Snapshot ``machine`` and record ``owner``'s bookkeeping; the machine, its parts and
        the objects in ``keep`` (immutable data such as a kernel image) are not recorded."""
        parts = [machine, machine.memory, machine.mmu, machine.cpu, machine.pic, machine.timer,
                 machine.console_device, machine.bus, machine.config, machine.profile]
        return cls(take_snapshot(machine), HostState(owner, [*parts, *keep]))

    def restore_into(self, owner: object, machine: Machine) -> None:
        """Restore the machine, then the bookkeeping; refused (``SnapshotError``, nothing
        changed) for another owner or an unusable machine snapshot."""
        if owner is not self.host.root:
            raise SnapshotError("this snapshot belongs to another system")
        restore_snapshot(machine, self.machine)
        self.host.restore()
