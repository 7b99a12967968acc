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

**File format** (``Snapshot.save`` / ``Snapshot.load``; :func:`write_snapshot_file` /
:func:`read_snapshot_file` for every kind), version :data:`SNAPSHOT_VERSION`: a NumPy ``.npz``
archive (zip) read with ``allow_pickle=False``. A file of kind ``"machine"`` holds four arrays:

=========== ================ ===============================================================
``meta``    uint8 [n]        UTF-8 JSON: ``{"format": "lavsim-snapshot", "version": 3,
                             "kind": "machine", "config": {...}, "state": {...},
                             "sha256": "..."}``
``pfns``    uint32 [k]       the frame numbers of the stored frames, ascending
``frames``  uint8 [k, 4096]  their contents
``console`` uint8 [m]        the console bytes
=========== ================ ===============================================================

``config`` names what a machine must match to take the snapshot (``profile``, ``board``,
``memory_size``, ``tlbs``: the geometry of each TLB). ``state`` holds the CPU, MMU, TLB and
device state as JSON numbers, booleans, strings and lists: each part is what its component's
``get_state()`` gives (``CPU``, ``MMU`` with its TLBs, the PIC, the timer, and ``memsys``: the
board's cache contents, write buffer and bus time, ``null`` on the ideal board), and each
component
checks and takes it back with ``set_state()``; this module only composes them. ``sha256`` is
the SHA-256 of the canonical JSON of config and state followed by the frames and console, so
a file whose bytes were changed is refused even where the zip checksums would not notice.

Files of kind ``"system"`` (a :class:`~lavsim.kernel.LavenderSystem`: one machine) and
``"cluster"`` (one machine per host) hold ``meta`` = ``{"format", "version", "kind",
"machines": [{"config", "state", "sha256"}, ...], "host": {...}, "sha256"}`` and, for machine
``i``, the arrays ``pfns_i``, ``frames_i``, ``console_i``. ``host`` is the host-side state the
kind adds (checked by whoever restores it: :mod:`lavsim.kernel.bookkeeping`,
:meth:`lavsim.cluster.Cluster.load_snapshot`); the top ``sha256`` covers the kind, ``host``
and every machine's digest. A file of another format, kind or version, a corrupt file or a
malformed one raises :class:`SnapshotError`, in bounded memory: each array's header is checked
before its data is decompressed (see :func:`read_snapshot_file` for the limits).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any

import attrs
import numpy as np

from lavsim.cpu import checkpoint
from lavsim.errors import LavsimError

if TYPE_CHECKING:
    from lavsim.machine import Machine

__all__ = [
    "KINDS",
    "KIND_CLUSTER",
    "KIND_MACHINE",
    "KIND_SYSTEM",
    "MACHINES_LIMIT",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "HostState",
    "Snapshot",
    "SnapshotError",
    "SnapshotFile",
    "SystemSnapshot",
    "prepare_restore",
    "read_snapshot_file",
    "restore_snapshot",
    "take_snapshot",
    "write_snapshot_file",
]

SNAPSHOT_FORMAT = "lavsim-snapshot"
#: Version of the file format and of the ``state`` layout; bumped on any incompatible change.
SNAPSHOT_VERSION = 3

_PAGE = 4096
_MASK32 = 0xFFFFFFFF


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
        :data:`SNAPSHOT_VERSION`, kind ``"machine"``). NumPy appends ``.npz`` to a name without
        it; pass the name with the suffix to keep it exact."""
        write_snapshot_file(path, KIND_MACHINE, [self])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by :meth:`save`; :class:`SnapshotError` naming what is wrong
        if the file is not a lavsim machine snapshot, has another version, or is corrupt or
        malformed (see :func:`read_snapshot_file` for the memory bounds)."""
        return read_snapshot_file(path, KIND_MACHINE).machines[0]


# --- the file container ----------------------------------------------------------------------

#: The kinds of snapshot file: one machine; a LavenderSystem (its machine and bookkeeping); a
#: cluster (every host's machine, bookkeeping and network card, and the network).
KIND_MACHINE = "machine"
KIND_SYSTEM = "system"
KIND_CLUSTER = "cluster"
KINDS = (KIND_MACHINE, KIND_SYSTEM, KIND_CLUSTER)
#: The most machines one file may hold (a cluster has at most 64 hosts).
MACHINES_LIMIT = 64


@attrs.frozen(eq=False)
class SnapshotFile:
    """What a snapshot file holds: its ``kind``, its machines' snapshots (one for the
    ``machine`` and ``system`` kinds, one per host for a cluster, in host order) and ``host``:
    the JSON-like host-side state the kind adds (None for a machine), checked by whoever
    restores it."""

    kind: str
    machines: tuple[Snapshot, ...]
    host: Any

    def digest(self) -> str:
        """SHA-256 (hex) of everything the file holds."""
        return _file_digest(self.kind, self.machines, self.host)


def _file_digest(kind: str, machines: Iterable[Snapshot], host: object) -> str:
    return hashlib.sha256(_canonical(
        {"kind": kind, "host": host, "machines": [m.digest() for m in machines]}
    )).hexdigest()


def _suffix(kind: str, index: int) -> str:
    # A machine file keeps its members' plain names (meta, pfns, frames, console).
    return "" if kind == KIND_MACHINE else f"_{index}"


def write_snapshot_file(path: str | os.PathLike[str], kind: str,
                        machines: Iterable[Snapshot], host: object = None) -> None:
    """Write ``machines`` and the JSON-like ``host`` state as a snapshot file of ``kind``
    (see the module docstring for the layout); :class:`SnapshotError` if it cannot."""
    machines = list(machines)
    if kind not in KINDS or not 1 <= len(machines) <= MACHINES_LIMIT or (
        kind != KIND_CLUSTER and len(machines) != 1
    ):
        raise SnapshotError(f"cannot write a {kind!r} snapshot of {len(machines)} machines")
    arrays: dict[str, Any] = {}
    entries = []
    for index, snapshot in enumerate(machines):
        if len(snapshot.console) > CONSOLE_LIMIT:
            raise SnapshotError(f"the console holds {len(snapshot.console)} bytes; a snapshot "
                                f"file holds at most {CONSOLE_LIMIT}")
        pfns = sorted(snapshot.frames)
        frames = np.zeros((len(pfns), _PAGE), dtype=np.uint8)
        for row, pfn in enumerate(pfns):
            frames[row] = np.frombuffer(snapshot.frames[pfn], dtype=np.uint8)
        suffix = _suffix(kind, index)
        arrays["pfns" + suffix] = np.asarray(pfns, dtype=np.uint32)
        arrays["frames" + suffix] = frames
        arrays["console" + suffix] = np.frombuffer(snapshot.console, dtype=np.uint8)
        entries.append({"config": snapshot.config, "state": snapshot.state,
                        "sha256": snapshot.digest()})
    meta: dict[str, Any] = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "kind": kind}
    if kind == KIND_MACHINE:
        meta.update(entries[0])
    else:
        meta.update(machines=entries, host=host, sha256=_file_digest(kind, machines, host))
    try:
        encoded = _canonical(meta)
    except (TypeError, ValueError) as error:
        raise SnapshotError(f"the {kind} state is not JSON data: {error}") from error
    if len(encoded) > META_LIMIT:
        raise SnapshotError(f"the metadata is {len(encoded)} bytes; a snapshot file holds at "
                            f"most {META_LIMIT}")
    try:
        with open(path, "wb") as f:
            np.savez_compressed(f, meta=np.frombuffer(encoded, dtype=np.uint8), **arrays)
    except OSError as error:
        raise SnapshotError(f"cannot write snapshot {os.fspath(path)!r}: {error}") from error


def read_snapshot_file(path: str | os.PathLike[str], kind: str) -> SnapshotFile:
    """Read a snapshot file that must be of ``kind``; :class:`SnapshotError` naming what is
    wrong if it is not a lavsim snapshot, is of another kind or version, or is corrupt or
    malformed. Nothing is restored here: the caller checks ``host`` and the machines' states.

    Memory stays bounded by what the file may legitimately hold: every array's header is
    checked before its data is decompressed, and no more than the header admits is ever
    decompressed (metadata at most :data:`META_LIMIT` bytes nested at most
    :data:`META_DEPTH` deep, at most :data:`MACHINES_LIMIT` machines, each console at most
    :data:`CONSOLE_LIMIT` bytes, each machine's frames at most its own ``memory_size``)."""
    name = os.fspath(path)
    try:
        with zipfile.ZipFile(name) as z:
            present = {n.removesuffix(".npy") for n in z.namelist()}
            if "meta" not in present:
                raise SnapshotError(f"{name!r} is not a lavsim snapshot (missing ['meta'])")
            meta = _parse_meta(name, _read_array(z, name, "meta", 1, META_LIMIT))
            found = meta.get("kind")
            if found != kind:
                raise SnapshotError(f"{name!r} is a {found!r} snapshot, not a {kind!r} one")
            if kind == KIND_MACHINE:
                entries: Any = [meta]
            else:
                entries = meta.get("machines")
                if not isinstance(entries, list) or not 1 <= len(entries) <= MACHINES_LIMIT:
                    raise SnapshotError(f"{name!r}: machines must be a list of 1.."
                                        f"{MACHINES_LIMIT} machine states")
            machines = []
            for index, entry in enumerate(entries):
                suffix = _suffix(kind, index)
                missing = {m + suffix for m in ("pfns", "frames", "console")} - present
                if missing:
                    raise SnapshotError(f"{name!r} is not a lavsim snapshot "
                                        f"(missing {sorted(missing)})")
                machines.append(_read_machine(z, name, entry, suffix))
    except SnapshotError:
        raise
    except _READ_ERRORS as error:
        raise SnapshotError(f"cannot read snapshot {name!r}: {error}") from error
    host = meta.get("host")
    if kind != KIND_MACHINE and _file_digest(kind, machines, host) != meta.get("sha256"):
        raise SnapshotError(f"{name!r} is corrupt: its checksum does not match its contents")
    return SnapshotFile(kind, tuple(machines), host)


def _read_machine(z: zipfile.ZipFile, name: str, entry: Any, suffix: str) -> Snapshot:
    """One machine's snapshot: its metadata entry and its arrays, checked."""
    where = f"{name!r}" + (f" (machine {suffix[1:]})" if suffix else "")
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict) or (
        not isinstance(entry.get("state"), dict)
    ):
        raise SnapshotError(f"{where}: malformed metadata (config and state must be objects)")
    size = entry["config"].get("memory_size")
    if isinstance(size, bool) or not isinstance(size, int) or not _PAGE <= size <= 1 << 32:
        raise SnapshotError(f"{where}: config.memory_size {size!r} is not a memory size")
    pfns = _read_array(z, name, "pfns" + suffix, 1, 4 * (size // _PAGE), np.uint32)
    frames = _read_array(z, name, "frames" + suffix, 2, size, rows=len(pfns))
    console = _read_array(z, name, "console" + suffix, 1, CONSOLE_LIMIT)
    if pfns.size and (int(pfns.max()) >= size // _PAGE or bool((np.diff(pfns) <= 0).any())):
        raise SnapshotError(f"{where}: pfns must be ascending frame numbers below "
                            f"{size // _PAGE:#x}")
    snapshot = Snapshot(
        config=entry["config"],
        state=entry["state"],
        frames={int(p): frames[row].tobytes() for row, p in enumerate(pfns)},
        console=console.tobytes(),
    )
    if len(snapshot.frames) != len(pfns) or snapshot.digest() != entry.get("sha256"):
        raise SnapshotError(f"{where} is corrupt: its checksum does not match its contents")
    return snapshot


#: The largest metadata array :meth:`Snapshot.load` reads (a machine's state is a few kB).
META_LIMIT = 16 << 20
#: The deepest nesting of lists and objects the metadata may have (the state needs 8).
META_DEPTH = 32
#: The longest console a snapshot file may hold (:meth:`Snapshot.save` refuses longer).
CONSOLE_LIMIT = 64 << 20

# Everything reading a damaged zip member can raise: OSError (I/O), BadZipFile (headers,
# CRC), zlib.error (a damaged deflate stream), EOFError (a truncated one), ValueError and
# SyntaxError (a bad .npy header), NotImplementedError (an unknown compression method),
# RuntimeError (an encrypted member; RecursionError from a hostile header), OverflowError
# and struct.error (absurd header fields), KeyError (a member listed but absent).
_READ_ERRORS = (OSError, zipfile.BadZipFile, zlib.error, EOFError, ValueError, SyntaxError,
                NotImplementedError, RuntimeError, OverflowError, struct.error, KeyError)


def _read_array(z: zipfile.ZipFile, name: str, member: str, ndim: int, limit: int,
                dtype: type[np.generic] = np.uint8, rows: int | None = None) -> np.ndarray:
    """The ``member`` array of the archive, checked before its data is decompressed: C order,
    ``dtype``, ``ndim`` dimensions (``(rows, 4096)`` for the frames), at most ``limit``
    bytes; then exactly that many bytes are decompressed (a stream that holds more is
    refused without reading the rest)."""
    where = f"{name!r}: {member}"
    try:
        with z.open(member + ".npy") as f:
            shape, fortran, found = _read_header(f, where)
            if found != np.dtype(dtype) or fortran or len(shape) != ndim:
                raise SnapshotError(f"{where}: must be a {ndim}-dimensional "
                                    f"{np.dtype(dtype).name} array, not {found} {shape}")
            if rows is not None and tuple(shape) != (rows, _PAGE):
                raise SnapshotError(f"{where}: shape {shape} does not match {rows} frames "
                                    f"of {_PAGE} bytes")
            n = int(np.prod(shape, dtype=object)) * found.itemsize
            if n > limit:
                raise SnapshotError(f"{where}: {n} bytes is more than the {limit} allowed")
            data = f.read(n)
            if len(data) != n:
                raise SnapshotError(f"{where}: truncated ({len(data)} of {n} bytes)")
            if f.read(1):
                raise SnapshotError(f"{where}: more data than its header says")
    except SnapshotError:
        raise
    except _READ_ERRORS as error:
        raise SnapshotError(f"cannot read snapshot {where}: {error}") from error
    return np.frombuffer(data, dtype=found).reshape(shape)


def _read_header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """A .npy member's header (shape, Fortran order, dtype), at most NumPy's header limit
    (10 kB) read. NumPy parses it with Python's tokenizer and ``ast.literal_eval``, which
    raise a variety of exceptions on hostile text: each one means a bad header."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(f)
        else:
            raise SnapshotError(f"{where}: .npy version {version} is not supported")
    except SnapshotError:
        raise
    except Exception as error:  # see above: any failure of the parser is a bad header
        raise SnapshotError(f"cannot read snapshot {where}: bad .npy header ({error})") from error
    shape, fortran, found = header
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise SnapshotError(f"cannot read snapshot {where}: bad shape {shape}")
    return tuple(shape), bool(fortran), found


def _parse_meta(name: str, raw: np.ndarray) -> dict[str, Any]:
    """The metadata JSON, checked for format, version, nesting and the types of its parts."""
    try:
        meta = json.loads(raw.tobytes().decode())
    except RecursionError:
        raise SnapshotError(f"{name!r}: metadata nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise SnapshotError(f"{name!r}: metadata is not JSON ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{name!r} is not a lavsim snapshot")
    if meta.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(
            f"{name!r} is snapshot format version {meta.get('version')!r}; this lavsim "
            f"reads version {SNAPSHOT_VERSION}"
        )
    if _depth(meta) > META_DEPTH:
        raise SnapshotError(f"{name!r}: metadata nested more than {META_DEPTH} levels deep")
    return meta


def _depth(value: object) -> int:
    """How deeply lists and dicts nest in ``value`` (iteratively: no recursion limit)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > META_DEPTH:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


# --- taking a snapshot -----------------------------------------------------------------------


def _machine_config(machine: Machine) -> dict[str, Any]:
    return {
        "profile": machine.profile.name,
        "board": machine.config.board_spec.name,
        "memory_size": machine.memory.size,
        "tlbs": {
            name: [tlb.config.entries, tlb.config.ways, tlb.page_shift]
            for name, tlb in machine.mmu.tlbs.items()
        },
    }


def take_snapshot(machine: Machine) -> Snapshot:
    """The snapshot of ``machine`` now: every simulated state (memory, CPU, MMU, TLB contents
    in LRU order with statistics, devices, counters), each component giving its own part."""
    memory = machine.memory
    frames: dict[int, bytes] = {}
    for pfn in memory.allocated_frames():
        array = memory.frame_array(pfn)
        if array.any():
            frames[pfn] = array.tobytes()
    state = {
        "cpu": machine.cpu.get_state(),
        "mmu": machine.mmu.get_state(),
        "pic": machine.pic.get_state(),
        "timer": machine.timer.get_state(),
        "machine": {"idle_cycles": machine.idle_cycles},
        # The board's caches and write buffers (None on the ideal board).
        "memsys": machine.hierarchy.get_state() if machine.hierarchy is not None else None,
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


def _check_config(machine: Machine, config: Mapping[str, Any]) -> None:
    mine = json.loads(_canonical(_machine_config(machine)))
    for field in ("profile", "board", "memory_size", "tlbs"):
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
    prepare_restore(machine, snapshot)()


def prepare_restore(machine: Machine, snapshot: Snapshot) -> Callable[[], None]:
    """Check ``snapshot`` against ``machine`` as :func:`restore_snapshot` does, changing
    nothing, and return the function that then restores it (and cannot fail). Lets a caller
    restoring several parts (a system's bookkeeping, a cluster's hosts) check every part
    before it changes any."""
    if not isinstance(snapshot, Snapshot):
        raise SnapshotError(f"not a Snapshot: {type(snapshot).__name__}")
    _check_config(machine, snapshot.config)
    cpu = machine.cpu
    mmu = machine.mmu
    memory = machine.memory
    try:
        cpu_state = snapshot.state["cpu"]
        mmu_state = snapshot.state["mmu"]
        # Each component checks its own state (nothing is changed yet).
        checkpoint.check_state(cpu_state)
        mmu.check_state(mmu_state)
        memsys_state = snapshot.state["memsys"]
        if machine.hierarchy is not None:
            machine.hierarchy.check_state(memsys_state)
        elif memsys_state is not None:
            raise ValueError("memsys state given for a machine on the ideal board")
        for name in ("cr0", "cr3", "cr4"):
            # MOV to CRn tells the MMU at once: the two copies never differ.
            if cpu_state[name] != mmu_state[name]:
                raise ValueError(f"inconsistent state: CPU {name} {cpu_state[name]:#x} is "
                                 f"not the MMU's {mmu_state[name]:#x}")
        idle = snapshot.state["machine"]["idle_cycles"]
        if isinstance(idle, bool) or not isinstance(idle, int) or not 0 <= idle <= 1 << 64:
            raise ValueError(f"idle_cycles {idle!r} is not a non-negative int")
        frames = dict(snapshot.frames)
        for pfn, data in frames.items():
            if isinstance(pfn, bool) or not isinstance(pfn, int) or not (
                0 <= pfn < memory.frame_count
            ):
                raise ValueError(f"frame number {pfn!r} is not an installed frame")
            if not isinstance(data, bytes) or len(data) != _PAGE:
                raise ValueError(f"frame {pfn:#x} is not 4096 bytes")
        # Devices check their own state; try them on scratch copies first.
        _try_device_state(machine, snapshot.state)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise SnapshotError(f"malformed snapshot: {error!r}") from error

    def apply() -> None:
        # Nothing here can fail: everything was checked above.
        for pfn in memory.allocated_frames():
            if pfn not in frames:
                # Zeroed in place, not dropped: the MMU's fast path and other holders of frame
                # views rely on a frame never being replaced.
                memory.frame_array(pfn)[:] = 0
        for pfn, data in frames.items():
            memory.frame_array(pfn)[:] = np.frombuffer(data, dtype=np.uint8)
        cpu.set_state(cpu_state)
        mmu.set_state(mmu_state)
        if machine.hierarchy is not None:
            machine.hierarchy.set_state(memsys_state)
        machine.pic.set_state(snapshot.state["pic"])
        machine.timer.set_state(snapshot.state["timer"])
        machine.console_device.set_data(snapshot.console)
        machine.idle_cycles = idle

    return apply


def _try_device_state(machine: Machine, state: Mapping[str, Any]) -> None:
    from lavsim.devices import IntervalTimer, ProgrammableInterruptController

    pic = ProgrammableInterruptController()
    pic.set_state(state["pic"])
    IntervalTimer(pic, lambda: 0).set_state(state["timer"])


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
    restored in place into the same owner, and lives in memory only (a system's file form is
    :meth:`LavenderSystem.save_snapshot <lavsim.kernel.LavenderSystem.save_snapshot>`).
    """

    machine: Snapshot
    host: HostState

    @classmethod
    def take(cls, owner: object, machine: Machine, keep: Iterable[object] = ()) -> SystemSnapshot:
        """Snapshot ``machine`` and record ``owner``'s bookkeeping; the machine, its parts and
        the objects in ``keep`` (immutable data such as a kernel image) are not recorded."""
        parts = [machine, machine.memory, machine.mmu, machine.cpu, machine.pic, machine.timer,
                 machine.console_device, machine.bus, machine.config, machine.profile]
        if machine.hierarchy is not None:
            parts.append(machine.hierarchy)
        return cls(take_snapshot(machine), HostState(owner, [*parts, *keep]))

    def restore_into(self, owner: object, machine: Machine) -> None:
        """Restore the machine, then the bookkeeping; refused (``SnapshotError``, nothing
        changed) for another owner or an unusable machine snapshot."""
        if owner is not self.host.root:
            raise SnapshotError("this snapshot belongs to another system")
        restore_snapshot(machine, self.machine)
        self.host.restore()
