"""Sharing by segment and by page, and procedures entered by thread migration (issue 5).

The boot loader's side of "Protection inside a group" in the founding design's §4
(``docs/sources.md``): this module builds descriptors and page mappings in guest memory,
untimed, as a boot loader would. Nothing here runs on a measured path; what it sets up is used
by guest code (far CALL through a call gate, RETF, the kernel's fault attribution in
``migrate.s``).

- **Data export**: a segment of exactly ``size`` bytes (its own pages, or a byte range of the
  exporter's data segment), DPL 3, installed in the exporter's LDT and in each importer's LDT
  at a slot allocated **group-wide**: the same selector in every member of the group, and no
  other use of that slot anywhere in the group.
- **Procedure export**: a code segment holding only the procedure (DPL 2, execute/read,
  its pages read-only), optionally one private data segment (DPL 2), and a DPL 3 call gate
  with the procedure's parameter count. An importer gets all three in its LDT at the export's
  group-wide slots: the gate is the only thing a CPL 3 caller can use (DPL 2 < CPL 3 keeps the
  segments themselves out of its reach), and the gate fixes the entry offset.
- **Resident exports** (an exporter in the resident space): the procedure segment lies in the
  resident range and its descriptors and gate sit in the GDT (gate DPL 3), so every process of
  every group reaches it without an import. Resident data is imported into a group-wide LDT
  slot of the importer's group.
- **Page sharing** (the comparison): the frames under a byte range of the exporter's data are
  mapped again into the importer's region, and the importer gets a page-aligned segment over
  whole pages; everything else on those pages leaks (see :mod:`lavsim.kernel.leakage`).

Every slot's owner is written to the kernel's ``LDT_OWNER``/``GDT_OWNER`` tables, so the kernel
knows from CS which process a migrated thread is running in (faults, ``process_id``, the
observer's per-process cycles). Invariants kept and tested: no descriptor usable at CPL >= 1
covers a kernel address; a caller cannot choose the entry offset; a caller cannot load the
procedure's segments.

Every operation checks all of its input before it builds anything; a refused request raises
:class:`~lavsim.errors.ConfigError` naming the field and changes nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING

import attrs

from lavsim.cpu.asm import assemble
from lavsim.errors import AssemblyError, ConfigError
from lavsim.errors import check_bool as _check_bool
from lavsim.errors import check_int as _check_int
from lavsim.kernel import layout as L
from lavsim.kernel.netproto import remote_stub_source
from lavsim.kernel.tables import limit_fields, read_descriptor, segment, write_descriptor
from lavsim.mmu import descriptors as d

if TYPE_CHECKING:
    from lavsim.kernel.system import LavenderSystem, Process, ProcessGroup

_ADDR = struct.Struct("<5I")
assert _ADDR.size == L.ADDR_SIZE

#: Slots of an LDT that imports may use.
LDT_SHARED_SLOTS = range(L.LDT_FIRST_SHARED, L.LDT_ENTRIES)
#: Slots of the GDT that resident exports may use.
GDT_EXPORT_SLOTS = range(L.GDT_EXPORT_FIRST, L.GDT_ENTRIES)
#: Most doublewords a 32-bit call gate copies.
MAX_PARAMS = 31


def _process_repr(process: Process) -> str:
    return f"<process {process.pid} {process.name!r}>"


# --- values ------------------------------------------------------------------------------------


@attrs.frozen
class AddressStructure:
    """Where an exported procedure lives (20 bytes, little-endian dwords; layout ``ADDR_*``).

    ``host`` 0 = this host; ``group`` a group id or ``ADDR_GROUP_RESIDENT``; ``selector`` the
    call gate's selector; ``offset`` the entry offset in the procedure segment (the gate decides
    the entry, the field is informational); ``flags`` bit 0 = shippable (issue 8), bit 1 = bits
    8..12 hold the procedure's parameter count (:attr:`params`; set by
    :meth:`ProcedureExport.address`, checked by ``lav_bind`` and :meth:`check_nargs`).
    """

    host: int
    group: int
    selector: int
    offset: int
    flags: int = 0

    def __attrs_post_init__(self) -> None:
        for field in ("host", "group", "selector", "offset", "flags"):
            _check_int(field, getattr(self, field), 0, 0xFFFFFFFF)

    @property
    def resident(self) -> bool:
        return self.group == L.ADDR_GROUP_RESIDENT

    @property
    def shippable(self) -> bool:
        return bool(self.flags & L.ADDR_FLAG_SHIPPABLE)

    @property
    def params(self) -> int | None:
        """The parameter count recorded at export, or None when the structure records none."""
        if not self.flags & L.ADDR_FLAG_PARAMS:
            return None
        return (self.flags >> L.ADDR_PARAMS_SHIFT) & L.ADDR_PARAMS_MASK

    def check_nargs(self, nargs: int) -> None:
        """Host-side ``lav_bind``: ConfigError when a call with ``nargs`` arguments would not
        match the recorded parameter count (a structure without one passes)."""
        _check_int("nargs", nargs, 0, MAX_PARAMS)
        if self.params is not None and nargs != self.params:
            raise ConfigError(
                "nargs", f"the procedure takes {self.params} parameters, not {nargs}"
            )

    def encode(self) -> bytes:
        return _ADDR.pack(self.host, self.group, self.selector, self.offset, self.flags)

    @classmethod
    def decode(cls, raw: bytes) -> AddressStructure:
        if len(raw) != L.ADDR_SIZE:
            raise ConfigError("raw", f"an address structure is {L.ADDR_SIZE} bytes, not {len(raw)}")
        return cls(*_ADDR.unpack(raw))


@attrs.frozen
class DataExport:
    """A data segment a process shares: ``size`` bytes at linear ``base``.

    ``slot``: the LDT slot it occupies in the exporter's group (for a resident exporter, in
    its own LDT; each importing group then allocates a slot of its own).
    """

    owner: Process = attrs.field(repr=_process_repr)
    name: str
    base: int
    size: int
    writable: bool
    slot: int

    @property
    def selector(self) -> int:
        """The selector members of the exporter's group use."""
        return L.ldt_sel(self.slot, 3)


@attrs.frozen
class ProcedureExport:
    """An exported procedure: its code segment, optional private data segment and call gate.

    Slots are LDT slots of the exporter's group, or GDT slots for a resident export.
    """

    owner: Process = attrs.field(repr=_process_repr)
    name: str
    code_base: int
    code_size: int
    entry: int
    params: int
    symbols: Mapping[str, int] = attrs.field(repr=False)
    code_slot: int
    gate_slot: int
    data_slot: int | None
    data_base: int | None
    data_size: int

    @property
    def resident(self) -> bool:
        return self.owner.group is None

    def _sel(self, slot: int, rpl: int) -> int:
        return (slot << 3) | rpl if self.resident else L.ldt_sel(slot, rpl)

    @property
    def gate_selector(self) -> int:
        """The selector callers far-call (RPL 3)."""
        return self._sel(self.gate_slot, 3)

    @property
    def code_selector(self) -> int:
        """The procedure's code segment (DPL 2: unusable at CPL 3)."""
        return self._sel(self.code_slot, 2)

    @property
    def data_selector(self) -> int | None:
        """The procedure's private data segment (DPL 2), if it has one."""
        return None if self.data_slot is None else self._sel(self.data_slot, 2)

    @property
    def group_id(self) -> int:
        """The address structure's group field: the exporter's group, or resident."""
        return L.ADDR_GROUP_RESIDENT if self.owner.group is None else self.owner.group.gid

    def address(self, host: int = 0, flags: int = 0) -> AddressStructure:
        """The address structure a lookup of this procedure returns, recording its parameter
        count (``flags`` gets ``ADDR_FLAG_PARAMS`` and the count; register it with these
        flags so that lookups return it too)."""
        flags = (flags & ~(L.ADDR_PARAMS_MASK << L.ADDR_PARAMS_SHIFT)) | L.ADDR_FLAG_PARAMS
        flags |= self.params << L.ADDR_PARAMS_SHIFT
        return AddressStructure(host, self.group_id, self.gate_selector, self.entry, flags)


@attrs.frozen
class PageShare:
    """A byte range of ``exporter``'s data shared by pages with ``importer``.

    ``selector`` names a page-aligned segment of ``size`` bytes (whole pages) at linear
    ``base``; the shared object is at ``object_offset`` inside it, ``object_size`` bytes long.
    """

    exporter: Process = attrs.field(repr=_process_repr)
    importer: Process = attrs.field(repr=_process_repr)
    selector: int
    base: int
    size: int
    object_offset: int
    object_size: int


# --- the library source -------------------------------------------------------------------------


def calllib_text() -> str:
    """``calllib.s`` as stored in the package (without the constants it needs)."""
    return resources.files("lavsim.kernel").joinpath("calllib.s").read_text(encoding="utf-8")


def lav_call_source(group: ProcessGroup | None, net_buffer: int | None = None) -> str:
    """The call library for a process of ``group`` (None: a resident process): the ``LAV_*``
    constants, then ``calllib.s``. Append it to the process's source; call ``lav_call``.

    ``net_buffer``: offset of 144 bytes of the process's data segment for the remote stub
    (``netcall.s``, issue 8: remote calls and ``lav_ship`` through the network server); without
    one, calls to another host return ``E_UNREACHABLE``.

    ``lav_bind(address, nargs)`` (``calllib_bind.s``, appended last) checks a call site once:
    0 when the procedure takes ``nargs`` parameters, ``E_NARGS`` when the count recorded in
    the address structure differs. ``lav_call`` does not check (see ``calllib_bind.s``)."""
    gid = L.ADDR_GROUP_RESIDENT if group is None else group.gid
    constants = {
        "LAV_ADDR_HOST": L.ADDR_HOST, "LAV_ADDR_GROUP": L.ADDR_GROUP,
        "LAV_ADDR_SELECTOR": L.ADDR_SELECTOR, "LAV_ADDR_OFFSET": L.ADDR_OFFSET,
        "LAV_ADDR_FLAGS": L.ADDR_FLAGS, "LAV_GROUP_RESIDENT": L.ADDR_GROUP_RESIDENT,
        "LAV_E_UNREACHABLE": L.E_UNREACHABLE & 0xFFFFFFFF, "LAV_GROUP": gid,
    }  # fmt: skip
    prelude = "".join(f".equ {name}, {value:#x}\n" for name, value in constants.items())
    bind = {
        "LAV_ADDR_FLAG_PARAMS": L.ADDR_FLAG_PARAMS, "LAV_ADDR_PARAMS_SHIFT": L.ADDR_PARAMS_SHIFT,
        "LAV_ADDR_PARAMS_MASK": L.ADDR_PARAMS_MASK, "LAV_E_NARGS": L.E_NARGS & 0xFFFFFFFF,
    }  # fmt: skip
    # lav_bind goes last: the code before it (the measured lav_call) stays where it was.
    bind_text = resources.files("lavsim.kernel").joinpath("calllib_bind.s").read_text("utf-8")
    return ("\n# ---- lavsim call library ----\n" + prelude + calllib_text()
            + remote_stub_source(net_buffer) + "\n# ---- lav_bind ----\n"
            + "".join(f".equ {name}, {value:#x}\n" for name, value in bind.items())
            + bind_text)


# --- the manager ---------------------------------------------------------------------------------


_Domain = tuple[str, int]


class Sharing:
    """Exports, imports and group-wide slot allocation of one :class:`LavenderSystem`
    (reach it as ``system.sharing``)."""

    def __init__(self, system: LavenderSystem) -> None:
        self.system = system
        #: Slot domain ("group", gid) or ("resident", pid) -> LDT slot -> what uses it.
        self._slots: dict[_Domain, dict[int, str]] = {}
        #: GDT slot -> what uses it (resident exports).
        self._gdt: dict[int, str] = {}
        #: Data export -> domain -> the slot it has there.
        self._data_slots: dict[int, dict[_Domain, int]] = {}
        self.data_exports: list[DataExport] = []
        self.procedures: list[ProcedureExport] = []
        self.page_shares: list[PageShare] = []

    # --- slots ---------------------------------------------------------------------------------

    @staticmethod
    def _domain(process: Process) -> _Domain:
        if process.group is not None:
            return ("group", process.group.gid)
        return ("resident", process.pid)

    def slots_in_use(self, group: ProcessGroup) -> dict[int, str]:
        """The group-wide LDT slots of ``group``: slot -> what uses it."""
        return dict(self._slots.get(("group", group.gid), {}))

    def _free_slots(
        self, used: Mapping[int, str], candidates: range, count: int, explicit: int | None,
        where: str,
    ) -> list[int]:
        """``count`` free slots, the first of them ``explicit`` when given (refused when it is
        out of range or taken: a collision)."""
        out: list[int] = []
        if explicit is not None:
            _check_int("slot", explicit, candidates.start, candidates.stop - 1)
            if explicit in used:
                raise ConfigError(
                    "slot", f"slot {explicit} is already used in {where} by {used[explicit]}"
                )
            out.append(explicit)
        for slot in candidates:
            if len(out) == count:
                break
            if slot not in used and slot not in out:
                out.append(slot)
        if len(out) < count:
            raise ConfigError("slot", f"no {count} free slots left in {where}")
        return out

    # --- guest structures --------------------------------------------------------------------

    def _install_ldt(self, process: Process, slot: int, desc: d.Descriptor, owner: Process) -> None:
        system = self.system
        current = read_descriptor(system.memory, L.LDT_PHYS + process.pid * L.LDT_BYTES, slot)
        assert not getattr(current, "present", False), (process.pid, slot)
        write_descriptor(
            system.memory, L.LDT_PHYS + process.pid * L.LDT_BYTES, slot, desc  # type: ignore[arg-type]
        )
        system.memory.write8(L.LDT_OWNER_PHYS + process.pid * L.LDT_ENTRIES + slot, owner.pid)

    def _install_gdt(self, slot: int, desc: d.Descriptor, owner: Process) -> None:
        system = self.system
        write_descriptor(system.memory, L.GDT_PHYS, slot, desc)  # type: ignore[arg-type]
        system.memory.write8(L.GDT_OWNER_PHYS + slot, owner.pid)

    def _check_room(self, group: ProcessGroup | None, sizes: list[int], field: str) -> None:
        """Refuse unless regions of ``sizes`` bytes (each page aligned, then a guard page) fit
        in ``group``'s user range (or the resident range) and in free frames."""
        system = self.system
        region = sum(L.round_up(s) + L.PAGE_SIZE for s in sizes)
        start = group.next_linear if group is not None else system._resident_next
        end = L.USER_END if group is not None else L.RESIDENT_END
        if start + region > end:
            where = f"group {group.name!r}" if group is not None else "the resident space"
            raise ConfigError(field, f"{where} has no room for {region:#x} more bytes")
        directory = group.directory if group is not None else None
        pages = sum(L.round_up(s) for s in sizes) // L.PAGE_SIZE
        tables = system.page_tables.tables_needed(directory, start, region)
        if pages + tables > system.frames.available:
            raise ConfigError(
                "memory_size", f"needs {pages + tables} frames, {system.frames.available} free"
            )

    def _next_region(self, group: ProcessGroup | None, span: int) -> int:
        """Take ``span`` bytes (page multiple) plus a guard page of the group's or the resident
        range; returns the base."""
        system = self.system
        if group is not None:
            base = group.next_linear
            group.next_linear = base + span + L.PAGE_SIZE
        else:
            base = system._resident_next
            system._resident_next = base + span + L.PAGE_SIZE
        return base

    def _place(
        self, group: ProcessGroup | None, size: int, content: bytes, *, writable: bool
    ) -> int:
        """New zeroed pages holding ``content``, mapped user-accessible (read-only unless
        ``writable``) at a fresh region of ``group`` (or the resident space)."""
        system = self.system
        span = L.round_up(size)
        base = self._next_region(group, span)
        directory = group.directory if group is not None else None
        for page in range(0, span, L.PAGE_SIZE):
            pfn = system.frames.allocate_one("memory_size")
            phys = pfn << L.PAGE_SHIFT
            system.memory.fill(phys, L.PAGE_SIZE, 0)
            chunk = content[page : page + L.PAGE_SIZE]
            if chunk:
                system.memory.write(phys, chunk)
            system.page_tables.map_page(directory, base + page, pfn, writable=writable)
        return base

    def _check_process(self, field: str, process: object) -> Process:
        # Identity with the system's own record (no import of the Process class: system.py
        # imports this module).
        pid = getattr(process, "pid", None)
        known = self.system.processes.get(pid) if isinstance(pid, int) else None
        if known is None or known is not process:
            raise ConfigError(field, "must be a process of this system")
        return known

    # --- data ------------------------------------------------------------------------------------

    def export_data(
        self,
        process: Process,
        size: int,
        *,
        offset: int | None = None,
        data: bytes = b"",
        writable: bool = True,
        slot: int | None = None,
        name: str | None = None,
    ) -> DataExport:
        """Share ``size`` bytes of ``process`` as a segment of exactly that size.

        With ``offset`` None the segment gets its own fresh pages (starting with ``data``);
        otherwise it covers bytes ``offset .. offset+size-1`` of the process's data segment
        (``data`` must be empty). A group process gets the segment in its own LDT at a
        group-wide slot (``slot``, or the lowest free one); a resident process exports for
        other groups to import (each importing group allocates a slot).
        """
        self.system._check_quiescent()
        process = self._check_process("process", process)
        _check_bool("writable", writable)
        _check_int("size", size, 1)
        limit_fields("size", size)
        if not isinstance(data, bytes | bytearray):
            raise ConfigError("data", "must be bytes")
        if len(data) > size:
            raise ConfigError("data", f"{len(data)} bytes do not fit size {size}")
        group = process.group
        if offset is not None:
            _check_int("offset", offset, 0)
            if data:
                raise ConfigError("data", "an export of existing bytes takes no data")
            if offset + size > process.data_size:
                raise ConfigError(
                    "offset", f"{offset:#x}+{size} is outside the data segment "
                    f"({process.data_size} bytes)"
                )
        else:
            self._check_room(group, [size], "size")
        domain = self._domain(process)
        used = self._slots.get(domain, {})
        label = name or f"data of {process.name}"
        where = f"group {group.name!r}" if group is not None else f"process {process.name!r}"
        taken = self._free_slots(used, LDT_SHARED_SLOTS, 1, slot, where)
        # --- build ---------------------------------------------------------------------------
        if offset is None:
            base = self._place(group, size, bytes(data), writable=True)
        else:
            base = process.data_base + offset
        assert base + size <= L.KERNEL_BASE
        export = DataExport(process, label, base, size, writable, taken[0])
        self._data_slots[id(export)] = {domain: taken[0]}
        self._slots.setdefault(domain, {})[taken[0]] = f"data export {label!r}"
        self._install_ldt(process, taken[0], self._data_descriptor(export, writable), process)
        self.data_exports.append(export)
        return export

    @staticmethod
    def _data_descriptor(export: DataExport, writable: bool) -> d.SegmentDescriptor:
        type_ = d.DATA_READ_WRITE if writable else d.DATA_READ_ONLY
        return segment(export.base, export.size, type_, 3, "size")

    def import_data(
        self, importer: Process, export: DataExport, *, writable: bool | None = None
    ) -> int:
        """Install ``export``'s segment (DPL 3, exact limit) in ``importer``'s LDT; returns
        the selector, the same for every member of the importer's group. ``writable``
        defaults to the export's (an importer can never get more than the export allows).
        Data of another group cannot be imported (only resident data crosses groups)."""
        self.system._check_quiescent()
        importer = self._check_process("importer", importer)
        if export not in self.data_exports:
            raise ConfigError("export", "must be a data export of this system")
        if writable is None:
            writable = export.writable
        _check_bool("writable", writable)
        if writable and not export.writable:
            raise ConfigError("writable", "the export is read-only")
        owner_group = export.owner.group
        if owner_group is not None and importer.group is not owner_group:
            raise ConfigError(
                "importer", f"{importer.name!r} is not in group {owner_group.name!r}; "
                "group-local data is shared only inside its group"
            )
        if owner_group is None and importer.group is None and importer is not export.owner:
            raise ConfigError("importer", "resident data is imported by group processes")
        domain = self._domain(importer)
        slots = self._data_slots[id(export)]
        slot = slots.get(domain)
        ldt_phys = L.LDT_PHYS + importer.pid * L.LDT_BYTES
        if slot is not None:
            current = read_descriptor(self.system.memory, ldt_phys, slot)
            if getattr(current, "present", False):
                raise ConfigError("importer", f"{importer.name!r} has imported it already")
        else:
            where = f"group {importer.group.name!r}" if importer.group else importer.name
            slot = self._free_slots(self._slots.get(domain, {}), LDT_SHARED_SLOTS, 1, None,
                                    where)[0]
            self._slots.setdefault(domain, {})[slot] = f"data import {export.name!r}"
            slots[domain] = slot
        self._install_ldt(importer, slot, self._data_descriptor(export, writable), export.owner)
        return L.ldt_sel(slot, 3)

    def share_pages(
        self, exporter: Process, offset: int, size: int, importer: Process,
        *, writable: bool = False,
    ) -> PageShare:
        """Share bytes ``offset .. offset+size-1`` of ``exporter``'s data segment by pages:
        map the frames holding them into a fresh region of ``importer``'s group (or the
        resident space) and give ``importer`` a page-aligned DPL 3 segment over those whole
        pages, at a group-wide slot. The comparison for :mod:`lavsim.kernel.leakage`."""
        self.system._check_quiescent()
        exporter = self._check_process("exporter", exporter)
        importer = self._check_process("importer", importer)
        _check_bool("writable", writable)
        _check_int("offset", offset, 0)
        _check_int("size", size, 1)
        if offset + size > exporter.data_size:
            raise ConfigError(
                "offset", f"{offset:#x}+{size} is outside the data segment "
                f"({exporter.data_size} bytes)"
            )
        first = (exporter.data_base + offset) & ~(L.PAGE_SIZE - 1)
        last = (exporter.data_base + offset + size - 1) & ~(L.PAGE_SIZE - 1)
        span = last + L.PAGE_SIZE - first
        limit_fields("size", span)
        group = importer.group
        system = self.system
        start = group.next_linear if group is not None else system._resident_next
        end = L.USER_END if group is not None else L.RESIDENT_END
        if start + span + L.PAGE_SIZE > end:
            raise ConfigError("size", "no room left in the importer's range")
        directory = group.directory if group is not None else None
        if system.page_tables.tables_needed(directory, start, span) > system.frames.available:
            raise ConfigError("memory_size", "no frames left for page tables")
        domain = self._domain(importer)
        where = f"group {group.name!r}" if group else importer.name
        slot = self._free_slots(self._slots.get(domain, {}), LDT_SHARED_SLOTS, 1, None, where)[0]
        frames = [system._user_phys(exporter, page) >> L.PAGE_SHIFT
                  for page in range(first, first + span, L.PAGE_SIZE)]  # fmt: skip
        # --- build ---------------------------------------------------------------------------
        base = self._next_region(group, span)
        for k, pfn in enumerate(frames):
            system.page_tables.map_page(directory, base + k * L.PAGE_SIZE, pfn, writable=writable)
        type_ = d.DATA_READ_WRITE if writable else d.DATA_READ_ONLY
        self._slots.setdefault(domain, {})[slot] = f"page share from {exporter.name!r}"
        self._install_ldt(importer, slot, segment(base, span, type_, 3, "size"), exporter)
        share = PageShare(
            exporter, importer, L.ldt_sel(slot, 3), base, span,
            exporter.data_base + offset - first, size,
        )  # fmt: skip
        self.page_shares.append(share)
        return share

    # --- procedures ------------------------------------------------------------------------------

    def export_procedure(
        self,
        process: Process,
        source: str | None = None,
        *,
        image: bytes | None = None,
        symbols: Mapping[str, int] | None = None,
        entry: int | str = 0,
        params: int = 0,
        private_data: bytes = b"",
        private_data_size: int = 0,
        slot: int | None = None,
        name: str | None = None,
        share_data_segment: bool = False,
        data_selector_at: str | None = None,
    ) -> ProcedureExport:
        """Export a procedure of ``process``: ``source`` (assembled at offset 0 of its own
        code segment) or a ready position-independent ``image``.

        The source is assembled behind ``.equ`` lines it may use: ``PROC_DATA_SEL`` (the
        private data segment's selector, RPL 2, when ``private_data_size`` > 0) and
        ``PROC_ARG_BYTES`` (4 * ``params``, for its ``retf PROC_ARG_BYTES``).

        The procedure runs at CPL 2 on the calling thread's ring-2 stack: ``[ESP]`` return
        EIP, ``[ESP+4]`` return CS, ``[ESP+8 ..]`` the ``params`` copied arguments; it returns
        results in EAX (and EDX) with ``retf 4*params``, keeping EBX ESI EDI EBP, DS and ES
        (if it loads its private segment into DS it must restore the caller's DS first: RETF
        to ring 3 nulls a DPL 2 DS). It may push at most ``layout.RING2_PROCEDURE_STACK``
        bytes (nested calls included): that is all every thread's ring-2 slot is guaranteed
        to hold below the largest gate frame, and more would reach the neighbour's slot.

        ``share_data_segment``: the private data segment is a DPL 2 descriptor over the
        exporter's own data segment (the bytes its DS names, the same base and limit) instead
        of fresh pages: a procedure compiled with its program (C, ``lavsim.programs``) reaches
        the program's globals at their link offsets. ``data_selector_at``: a label of the
        ``image`` where the private data selector (RPL 2) is written as a word before the image
        is placed (what ``PROC_DATA_SEL`` gives a source).

        ``slot`` fixes the gate's slot (refused if taken: a collision); the code segment and
        the private data segment take the lowest free slots. A group process installs all
        three in its own LDT; a resident process installs them in the GDT (gate DPL 3), where
        every process of every group reaches the gate.
        """
        system = self.system
        system._check_quiescent()
        process = self._check_process("process", process)
        _check_int("params", params, 0, MAX_PARAMS)
        _check_int("private_data_size", private_data_size, 0)
        if not isinstance(private_data, bytes | bytearray):
            raise ConfigError("private_data", "must be bytes")
        if len(private_data) > private_data_size:
            raise ConfigError(
                "private_data", f"{len(private_data)} bytes do not fit private_data_size "
                f"{private_data_size}"
            )
        if private_data_size:
            limit_fields("private_data_size", private_data_size)
        _check_bool("share_data_segment", share_data_segment)
        if share_data_segment:
            if private_data or private_data_size:
                raise ConfigError("share_data_segment",
                                  "a shared data segment takes no private_data(_size)")
            private_data_size = process.data_size
        if data_selector_at is not None and (image is None or (not share_data_segment
                                             and not private_data_size)):
            raise ConfigError("data_selector_at", "needs an image and a private data segment")
        group = process.group
        resident = group is None
        # Slots first: the source may name its private data selector.
        if resident:
            used: Mapping[int, str] = self._gdt
            candidates = GDT_EXPORT_SLOTS
            where = "the GDT"
        else:
            assert group is not None
            used = self._slots.get(("group", group.gid), {})
            candidates = LDT_SHARED_SLOTS
            where = f"group {group.name!r}"
        count = 3 if private_data_size else 2
        gate_slot, code_slot, *rest = self._free_slots(used, candidates, count, slot, where)
        data_slot = rest[0] if rest else None

        def sel(s: int, rpl: int) -> int:
            return (s << 3) | rpl if resident else L.ldt_sel(s, rpl)

        if (source is None) == (image is None):
            raise ConfigError("source", "give exactly one of source and image")
        if source is not None:
            if not isinstance(source, str):
                raise ConfigError("source", "must be a str of assembly")
            prelude = f".equ PROC_ARG_BYTES, {4 * params}\n"
            if data_slot is not None:
                prelude += f".equ PROC_DATA_SEL, {sel(data_slot, 2):#x}\n"
            try:
                program = assemble(prelude + source, origin=0)
            except AssemblyError as error:
                raise ConfigError("source", str(error)) from error
            code = program.code
            syms: Mapping[str, int] = {
                k: v for k, v in program.symbols.items()
                if k not in ("PROC_ARG_BYTES", "PROC_DATA_SEL")
            }  # fmt: skip
        else:
            if not isinstance(image, bytes | bytearray):
                raise ConfigError("image", "must be bytes")
            code = bytes(image)
            syms = dict(symbols or {})
            if data_selector_at is not None:
                at = syms.get(data_selector_at)
                if at is None or not 0 <= at <= len(code) - 2:
                    raise ConfigError("data_selector_at",
                                      f"{data_selector_at!r} is not a word of the image")
                assert data_slot is not None
                code = code[:at] + struct.pack("<H", sel(data_slot, 2)) + code[at + 2 :]
        if not code:
            raise ConfigError("source" if source is not None else "image", "the code is empty")
        limit_fields("source" if source is not None else "image", len(code))
        if isinstance(entry, str):
            if entry not in syms:
                raise ConfigError("entry", f"the procedure has no label {entry!r}")
            offset = syms[entry]
        else:
            offset = entry
        _check_int("entry", offset, 0, len(code) - 1)
        fresh_data = private_data_size and not share_data_segment
        sizes = [len(code)] + ([private_data_size] if fresh_data else [])
        self._check_room(group, sizes, "source")
        # --- build ---------------------------------------------------------------------------
        code_base = self._place(group, len(code), code, writable=False)
        data_base = None
        if share_data_segment:
            data_base = process.data_base
        elif private_data_size:
            data_base = self._place(group, private_data_size, bytes(private_data), writable=True)
        label = name or f"procedure of {process.name}"
        export = ProcedureExport(
            owner=process, name=label, code_base=code_base, code_size=len(code), entry=offset,
            params=params, symbols=syms, code_slot=code_slot, gate_slot=gate_slot,
            data_slot=data_slot, data_base=data_base, data_size=private_data_size,
        )  # fmt: skip
        uses = {gate_slot: f"gate of {label!r}", code_slot: f"code of {label!r}"}
        if data_slot is not None:
            uses[data_slot] = f"private data of {label!r}"
        if resident:
            self._gdt.update(uses)
            for s, desc in self._procedure_descriptors(export):
                self._install_gdt(s, desc, process)
        else:
            assert group is not None
            self._slots.setdefault(("group", group.gid), {}).update(uses)
            for s, desc in self._procedure_descriptors(export):
                self._install_ldt(process, s, desc, process)
        self.procedures.append(export)
        system.machine.cpu.flush_decode_cache()
        return export

    @staticmethod
    def _procedure_descriptors(export: ProcedureExport) -> list[tuple[int, d.Descriptor]]:
        """The code segment (DPL 2), the private data segment (DPL 2) and the gate (DPL 3)."""
        out: list[tuple[int, d.Descriptor]] = [
            (export.code_slot,
             segment(export.code_base, export.code_size, d.CODE_EXECUTE_READ, 2, "source")),
        ]  # fmt: skip
        if export.data_slot is not None:
            assert export.data_base is not None
            out.append((export.data_slot, segment(export.data_base, export.data_size,
                                                  d.DATA_READ_WRITE, 2, "private_data_size")))
        # The gate names the code segment with RPL 0: the new CPL is the segment's DPL.
        code = (export.code_slot << 3) | (0 if export.resident else 4)
        out.append((export.gate_slot, d.GateDescriptor(
            d.SYS_CALL_GATE32, code, export.entry, param_count=export.params, dpl=3)))
        return out

    def import_procedure(self, importer: Process, export: ProcedureExport) -> int:
        """Let ``importer`` call ``export``: install its gate, code segment and private data
        segment in the importer's LDT at the export's group-wide slots; returns the gate
        selector. A resident export needs no import (its gate is in the GDT): its selector is
        returned and nothing changes. A procedure of another group cannot be imported (it is
        not in the importer's address space; call it by message RPC)."""
        self.system._check_quiescent()
        importer = self._check_process("importer", importer)
        if export not in self.procedures:
            raise ConfigError("export", "must be a procedure export of this system")
        if export.resident:
            return export.gate_selector
        if importer.group is not export.owner.group:
            assert export.owner.group is not None
            raise ConfigError(
                "importer", f"{importer.name!r} is not in group {export.owner.group.name!r}; "
                "only members of the exporter's group can migrate into its procedures"
            )
        ldt_phys = L.LDT_PHYS + importer.pid * L.LDT_BYTES
        current = read_descriptor(self.system.memory, ldt_phys, export.gate_slot)
        if getattr(current, "present", False):
            raise ConfigError("importer", f"{importer.name!r} has imported it already")
        for s, desc in self._procedure_descriptors(export):
            self._install_ldt(importer, s, desc, export.owner)
        return export.gate_selector

    # --- helpers for tests and benchmarks -------------------------------------------------------

    def write_data(self, process: Process, offset: int, data: bytes) -> None:
        """Store ``data`` at ``offset`` of ``process``'s data segment (boot-loader style)."""
        process = self._check_process("process", process)
        if not isinstance(data, bytes | bytearray):
            raise ConfigError("data", "must be bytes")
        _check_int("offset", offset, 0)
        if offset + len(data) > process.data_size:
            raise ConfigError("offset", f"{offset:#x}+{len(data)} is outside the data segment")
        system = self.system
        for k, byte in enumerate(data):
            system.memory.write8(system._user_phys(process, process.data_base + offset + k), byte)

    def write_address(self, process: Process, offset: int, address: AddressStructure) -> None:
        """Store an address structure in ``process``'s data segment (for lav_call)."""
        self.write_data(process, offset, address.encode())

    def owner_of(self, process: Process, selector: int) -> int:
        """The pid the kernel attributes code of ``selector`` to, in ``process``'s LDT (read
        from the kernel's slot-owner tables, as migrate.s does)."""
        index = selector >> 3
        if selector & 4:
            if index < L.LDT_FIRST_SHARED:
                return process.pid
            owner = self.system.memory.read8(L.LDT_OWNER_PHYS + process.pid * L.LDT_ENTRIES + index)
        else:
            owner = self.system.memory.read8(L.GDT_OWNER_PHYS + index)
        return owner or process.pid
