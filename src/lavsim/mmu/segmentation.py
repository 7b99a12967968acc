"""Segmentation: hidden segment-register caches, descriptor-table access, the protection
checks of segment loads and far transfers, and the per-access limit and type check.

References are to the Intel SDM: Vol. 3 chapter 5 (protection) and the Vol. 2 pseudo-code of
MOV, POP, LDS, far CALL/JMP, RET, IRET, LLDT and LTR.

Selectors are plain 16-bit ``int`` values here (the hot paths never build a
:class:`~lavsim.mmu.selectors.Selector`). Every fault is a :class:`~lavsim.faults.CpuFault`;
no guest value makes these functions raise a Python error.

Descriptor-table reads and the Accessed/busy-bit write-backs go through an object with the
MMU's ``read(linear, size, user)`` and ``write(linear, size, value, user)``, always with
``user=False``: the processor makes these accesses as implicit supervisor accesses whatever the
CPL (SDM Vol. 3, 4.6.1), so paging faults they raise are supervisor faults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lavsim.faults import GP, SS, TS, CpuFault, gp, np_fault, selector_error_code, ss, ts
from lavsim.mmu.descriptors import (
    ACCESS_BYTE_OFFSET,
    CODE_EXECUTE_READ_ACCESSED,
    DATA_READ_WRITE_ACCESSED,
    SYS_LDT,
    SYS_TSS32_AVAILABLE,
    TYPE_ACCESSED,
    TYPE_CODE,
    TYPE_CONFORMING,
    TYPE_EXPAND_DOWN,
    TYPE_READABLE,
    TYPE_TSS_BUSY,
    TYPE_WRITABLE,
    Descriptor,
    GateDescriptor,
    SegmentDescriptor,
    SystemDescriptor,
    decode_descriptor_qword,
    tss32_stack_offset,
)

__all__ = [
    "MEMO_LIMIT",
    "Decoded",
    "DescriptorTables",
    "LinearMemory",
    "SegmentCache",
    "check_access",
    "check_call_gate",
    "check_direct_code_segment",
    "check_fetch",
    "decode_cached",
    "descriptor_address",
    "direct_code_segment",
    "far_target_entry",
    "gate_code_segment",
    "inner_stack_from_tss",
    "invalid_after_outer_return",
    "load_data_segment",
    "load_far_target",
    "load_gate_code_segment",
    "load_inner_stack_segment",
    "load_ldtr",
    "load_return_code_segment",
    "load_stack_segment",
    "load_task_register",
    "return_code_segment",
    "stack_segment",
]


class LinearMemory(Protocol):
    """What segmentation needs from the MMU: linear reads and writes of 1, 2 or 4 bytes."""

    def read(self, linear: int, size: int, user: bool) -> int: ...

    def write(self, linear: int, size: int, value: int, user: bool) -> None: ...


#: Allocates an instance without running ``__init__`` (:meth:`SegmentCache.with_selector`).
_new = object.__new__

# --------------------------------------------------------------------------------------------
# Hidden segment-register cache
# --------------------------------------------------------------------------------------------


class SegmentCache:
    """The hidden (descriptor-cache) part of a segment register, SDM Vol. 3, 3.4.3.

    Stored fields: ``selector`` (the visible 16-bit value), ``base``, ``limit`` (the effective
    byte limit, already scaled by G), ``type`` (4-bit type field), ``s``, ``dpl``, ``present``,
    ``db``, ``g``, ``avl`` and ``valid`` (false after a null-selector load: the register is
    unusable).

    Derived fields, computed by :meth:`refresh` for the hot access check: ``readable``,
    ``writable``, ``executable``, ``conforming``, ``expand_down`` and ``min_off``/``max_off``,
    the inclusive range of valid offsets (``0..limit`` expand-up,
    ``limit+1..(0xFFFFFFFF if B else 0xFFFF)`` expand-down; empty, ``1..0``, when unusable).
    Whoever changes a stored field by hand must call :meth:`refresh`.
    """

    __slots__ = (
        "avl",
        "base",
        "conforming",
        "db",
        "dpl",
        "executable",
        "expand_down",
        "g",
        "limit",
        "max_off",
        "min_off",
        "present",
        "readable",
        "s",
        "selector",
        "type",
        "valid",
        "writable",
    )

    selector: int
    base: int
    limit: int
    type: int
    s: bool
    dpl: int
    present: bool
    db: bool
    g: bool
    avl: bool
    valid: bool
    readable: bool
    writable: bool
    executable: bool
    conforming: bool
    expand_down: bool
    min_off: int
    max_off: int

    def __init__(
        self,
        selector: int = 0,
        base: int = 0,
        limit: int = 0,
        type: int = 0,
        s: bool = True,
        dpl: int = 0,
        present: bool = False,
        db: bool = False,
        g: bool = False,
        avl: bool = False,
        valid: bool = True,
    ) -> None:
        self.selector = selector
        self.base = base
        self.limit = limit
        self.type = type
        self.s = s
        self.dpl = dpl
        self.present = present
        self.db = db
        self.g = g
        self.avl = avl
        self.valid = valid
        self.refresh()

    def refresh(self) -> None:
        """Recompute the derived fields from the stored ones."""
        t = self.type
        usable = self.valid
        code_data = usable and self.s
        code = code_data and bool(t & TYPE_CODE)
        data = code_data and not t & TYPE_CODE
        self.executable = code
        self.readable = data or (code and bool(t & TYPE_READABLE))
        self.writable = data and bool(t & TYPE_WRITABLE)
        self.conforming = code and bool(t & TYPE_CONFORMING)
        self.expand_down = data and bool(t & TYPE_EXPAND_DOWN)
        if not usable:
            # An empty range: every access fails the one-compare hot check.
            self.min_off, self.max_off = 1, 0
        elif self.expand_down:
            # Valid offsets lie above the limit, up to 4 GiB - 1 or 64 KiB - 1 by B
            # (SDM Vol. 3, 5.3).
            self.min_off = self.limit + 1
            self.max_off = 0xFFFFFFFF if self.db else 0xFFFF
        else:
            self.min_off, self.max_off = 0, self.limit

    @classmethod
    def from_descriptor(
        cls, selector: int, desc: SegmentDescriptor | SystemDescriptor
    ) -> SegmentCache:
        """The cache a load of ``selector`` leaves behind for descriptor ``desc``."""
        if isinstance(desc, SegmentDescriptor):
            return cls(
                selector, desc.base, desc.effective_limit, desc.type, True, desc.dpl,
                desc.present, desc.db, desc.g, desc.avl,
            )  # fmt: skip
        return cls(
            selector, desc.base, desc.effective_limit, desc.type, False, desc.dpl,
            desc.present, False, desc.g, desc.avl,
        )  # fmt: skip

    @classmethod
    def null(cls, selector: int = 0) -> SegmentCache:
        """The unusable cache left by loading a null selector (any RPL) into DS/ES/FS/GS."""
        return cls(selector, valid=False)

    @classmethod
    def flat(cls, selector: int, dpl: int, code: bool) -> SegmentCache:
        """A flat 4 GiB, 32-bit, present, accessed segment (setup helper).

        Code is execute/read, data is read/write.
        """
        type_ = CODE_EXECUTE_READ_ACCESSED if code else DATA_READ_WRITE_ACCESSED
        return cls(selector, 0, 0xFFFFFFFF, type_, True, dpl, True, True, True)

    @property
    def rpl(self) -> int:
        """RPL of the visible selector (for CS: the CPL)."""
        return self.selector & 3

    def copy(self) -> SegmentCache:
        """An independent copy."""
        return SegmentCache(
            self.selector, self.base, self.limit, self.type, self.s, self.dpl, self.present,
            self.db, self.g, self.avl, self.valid,
        )  # fmt: skip

    def with_selector(self, selector: int) -> SegmentCache:
        """An independent copy holding ``selector``, derived fields copied as they are (they
        do not depend on the selector): the cheap way to build a cache from a template."""
        c = _new(SegmentCache)
        c.selector = selector
        c.base = self.base
        c.limit = self.limit
        c.type = self.type
        c.s = self.s
        c.dpl = self.dpl
        c.present = self.present
        c.db = self.db
        c.g = self.g
        c.avl = self.avl
        c.valid = self.valid
        c.readable = self.readable
        c.writable = self.writable
        c.executable = self.executable
        c.conforming = self.conforming
        c.expand_down = self.expand_down
        c.min_off = self.min_off
        c.max_off = self.max_off
        return c

    def _key(self) -> tuple[int | bool, ...]:
        return (
            self.selector, self.base, self.limit, self.type, self.s, self.dpl, self.present,
            self.db, self.g, self.avl, self.valid,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SegmentCache) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        if not self.valid:
            return f"SegmentCache(selector={self.selector:#06x}, unusable)"
        kind = "code" if self.executable else ("data" if self.s else "system")
        return (
            f"SegmentCache(selector={self.selector:#06x}, base={self.base:#010x}, "
            f"limit={self.limit:#010x}, {kind} type={self.type:#x}, dpl={self.dpl}, "
            f"present={self.present}, db={self.db}, g={self.g})"
        )


# --------------------------------------------------------------------------------------------
# Per-access checks (the hot path)
# --------------------------------------------------------------------------------------------


def check_access(
    cache: SegmentCache, offset: int, size: int, write: bool, stack: bool = False
) -> int:
    """Check a data access of ``size`` bytes at ``offset`` and return its linear address.

    Raises #GP(0), or #SS(0) when ``stack`` (the access goes through SS), for an unusable
    segment, any byte outside ``min_off..max_off``, a write to a code or read-only data
    segment, or a read of an execute-only code segment (SDM Vol. 3, 5.3 and 5.5).

    An access that would wrap past offset 0xFFFFFFFF is refused; the manual leaves that case
    implementation-specific (SDM Vol. 3, 5.3).
    """
    if (
        offset < cache.min_off
        or offset + size - 1 > cache.max_off
        or not (cache.writable if write else cache.readable)
    ):
        raise ss(0) if stack else gp(0)
    return (cache.base + offset) & 0xFFFFFFFF


def check_fetch(cache: SegmentCache, offset: int, size: int) -> int:
    """Check an instruction fetch through CS and return its linear address; #GP(0) when out
    of the limit.

    Only the range is checked: CS can hold nothing but a code segment, which the CS-loading
    functions below guarantee.
    """
    if offset < cache.min_off or offset + size - 1 > cache.max_off:
        raise gp(0)
    return (cache.base + offset) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Descriptor tables
# --------------------------------------------------------------------------------------------


class Decoded:
    """A decoded descriptor with what the load checks need, precomputed (host-side only).

    ``desc`` is the :class:`~lavsim.mmu.descriptors.Descriptor`; ``seg`` is true for a code or
    data segment, and ``code``, ``conforming``, ``readable``, ``writable``, ``accessed`` are
    its type bits (all false for anything else); ``call_gate`` marks a 32-bit call gate;
    ``dpl`` and ``present`` are the descriptor's. ``template`` is the segment-register cache a
    load of a code or data segment leaves behind, Accessed bit set, with selector 0 (copy it
    with :meth:`SegmentCache.with_selector`); for any other descriptor it is an unusable
    placeholder that the load checks never return.

    Everything here is a function of the 8 descriptor bytes alone, so a record can be shared
    by every load of the same 64-bit value (see :func:`decode_cached`).
    """

    __slots__ = (
        "accessed",
        "call_gate",
        "code",
        "conforming",
        "desc",
        "dpl",
        "present",
        "readable",
        "seg",
        "template",
        "writable",
    )

    def __init__(self, desc: Descriptor) -> None:
        self.desc = desc
        self.dpl = desc.dpl
        self.present = desc.present
        self.call_gate = isinstance(desc, GateDescriptor) and desc.is_call_gate
        if isinstance(desc, SegmentDescriptor):
            self.seg = True
            self.code = desc.is_code
            self.conforming = desc.conforming
            self.readable = desc.readable
            self.writable = desc.writable
            self.accessed = bool(desc.type & TYPE_ACCESSED)
            self.template = _cache_for(0, desc)
        else:
            self.seg = self.code = self.conforming = False
            self.readable = self.writable = self.accessed = False
            self.template = _NO_TEMPLATE


#: Decoded descriptors by their 64-bit value: a host-side memo of a pure function (decoding
#: depends on nothing but the 8 bytes, and the records are never changed), so it needs no
#: invalidation. The modelled reads of the descriptor are made whether it hits or not.
_MEMO: dict[int, Decoded] = {}

#: The memo is emptied when it reaches this many values (guest code that writes random
#: descriptors cannot make it grow without bound).
MEMO_LIMIT = 4096


def decode_cached(qword: int, memo: bool = True) -> Decoded:
    """The :class:`Decoded` record of a 64-bit descriptor value, through the memo when
    ``memo`` (the same record for the same value) or freshly decoded."""
    if memo:
        d = _MEMO.get(qword)
        if d is not None:
            return d
        if len(_MEMO) >= MEMO_LIMIT:
            _MEMO.clear()
        d = _MEMO[qword] = Decoded(decode_descriptor_qword(qword))
        return d
    return Decoded(decode_descriptor_qword(qword))


class DescriptorTables:
    """GDTR, the LDTR's cache and the memory they are read through.

    The CPU keeps one of these and updates ``gdtr_base``/``gdtr_limit`` on LGDT and ``ldtr``
    on LLDT (or on a task switch); every segment load below looks descriptors up through it.
    ``memo`` lets decoding go through the host-side memo of :func:`decode_cached` (no
    simulated difference: the descriptor is read through ``mem`` either way).
    """

    __slots__ = ("_read32", "gdtr_base", "gdtr_limit", "ldtr", "mem", "memo", "written")

    def __init__(
        self,
        mem: LinearMemory,
        gdtr_base: int = 0,
        gdtr_limit: int = 0xFFFF,
        ldtr: SegmentCache | None = None,
        memo: bool = True,
    ) -> None:
        self.mem = mem
        self.gdtr_base = gdtr_base
        self.gdtr_limit = gdtr_limit
        self.ldtr = ldtr if ldtr is not None else SegmentCache.null(0)
        self.memo = memo
        # The MMU's read32(linear, user) is exactly its read(linear, 4, user): call it
        # directly when ``mem`` has it.
        self._read32: Callable[[int, bool], int] | None = getattr(mem, "read32", None)
        #: Called as ``written(linear, size)`` after each Accessed/busy-bit write-back (the
        #: CPU drops cached code there), when set.
        self.written: Callable[[int, int], None] | None = None

    def entry_address(self, selector: int) -> int | None:
        """Linear address of the descriptor ``selector`` names, or ``None`` when the whole
        8-byte entry is not inside the table (or the LDT is referenced while LDTR is null).
        """
        offset = selector & 0xFFF8
        if selector & 4:
            ldtr = self.ldtr
            if not ldtr.valid or offset + 7 > ldtr.limit:
                return None
            return (ldtr.base + offset) & 0xFFFFFFFF
        if offset + 7 > self.gdtr_limit:
            return None
        return (self.gdtr_base + offset) & 0xFFFFFFFF

    def read_at(self, address: int) -> Descriptor:
        """Read and decode the descriptor at a linear address (two doubleword reads)."""
        return self._read(address).desc

    def _read(self, address: int) -> Decoded:
        # Low doubleword first, then the high one (the order matters for faults and TLBs).
        read32 = self._read32
        if read32 is not None:
            low = read32(address, False)
            high = read32((address + 4) & 0xFFFFFFFF, False)
        else:
            read = self.mem.read
            low = read(address, 4, False)
            high = read((address + 4) & 0xFFFFFFFF, 4, False)
        qword = low | (high << 32)
        if self.memo:
            d = _MEMO.get(qword)
            if d is not None:
                return d
        return decode_cached(qword, self.memo)

    def lookup(self, selector: int, vector: int = GP, ext: bool = False) -> Descriptor:
        """Read the descriptor ``selector`` names; a fault ``vector`` (default #GP) with the
        selector error code when it lies beyond the table limit."""
        return self.entry(selector, vector, ext).desc

    def entry(self, selector: int, vector: int = GP, ext: bool = False) -> Decoded:
        """:meth:`lookup`, returning the :class:`Decoded` record."""
        return self._read(
            descriptor_address(self.gdtr_base, self.gdtr_limit, self.ldtr, selector, vector, ext)
        )

    def set_access_bits(self, selector: int, bits: int) -> None:
        """OR ``bits`` into the type field of the descriptor in memory (the Accessed bit of a
        segment, the busy bit of a TSS), as the processor does when it loads one.

        Only the access byte is rewritten, and only when a bit actually changes.
        """
        address = self.entry_address(selector)
        if address is None:
            return
        where = (address + ACCESS_BYTE_OFFSET) & 0xFFFFFFFF
        locked = getattr(self.mem, "or_locked8", None)
        if locked is not None:
            # The MMU's locked update: the same read and write, reported as locked accesses.
            changed = bool(locked(where, bits))
        else:
            byte = self.mem.read(where, 1, False)
            changed = (byte | bits) != byte
            if changed:
                self.mem.write(where, 1, byte | bits, False)
        if changed and self.written is not None:
            self.written(where, 1)


def descriptor_address(
    gdtr_base: int, gdtr_limit: int, ldtr: SegmentCache, selector: int, vector: int = GP,
    ext: bool = False,
) -> int:
    """Linear address of the descriptor ``selector`` names in the GDT (``gdtr_base``,
    ``gdtr_limit``) or the LDT (``ldtr``); ``CpuFault(vector)`` with the selector error code
    when the whole 8-byte entry is not inside the table or the LDT is referenced while LDTR is
    null (the one place the table-limit rule is written)."""
    offset = selector & 0xFFF8
    if selector & 4:
        if not ldtr.valid or offset + 7 > ldtr.limit:
            raise CpuFault(vector, selector_error_code(selector, ext))
        return (ldtr.base + offset) & 0xFFFFFFFF
    if offset + 7 > gdtr_limit:
        raise CpuFault(vector, selector_error_code(selector, ext))
    return (gdtr_base + offset) & 0xFFFFFFFF


def _cache_for(selector: int, desc: SegmentDescriptor) -> SegmentCache:
    # The cache holds the descriptor as the processor last saw it, Accessed bit included.
    cache = SegmentCache.from_descriptor(selector, desc)
    cache.type |= TYPE_ACCESSED
    cache.refresh()
    return cache


#: The template of records that are not code or data segments (never handed out).
_NO_TEMPLATE = SegmentCache.null(0)


# --------------------------------------------------------------------------------------------
# Data and stack segment loads (MOV/POP/LDS... to DS, ES, FS, GS, SS)
# --------------------------------------------------------------------------------------------


def load_data_segment(tables: DescriptorTables, selector: int, cpl: int) -> SegmentCache:
    """Load DS, ES, FS or GS (SDM Vol. 2, MOV; Vol. 3, 5.6).

    - null selector (any RPL): no fault, the register becomes unusable;
    - index beyond the GDT/LDT limit, or an LDT reference with a null LDTR: #GP(selector);
    - not a data or readable code segment: #GP(selector);
    - data or non-conforming code with RPL > DPL or CPL > DPL: #GP(selector);
    - not present: #NP(selector).

    Sets the Accessed bit in memory and returns the new cache.
    """
    if selector & 0xFFFC == 0:
        return SegmentCache.null(selector)
    d = tables.entry(selector)
    if not d.readable or (not d.conforming and (selector & 3 > d.dpl or cpl > d.dpl)):
        raise gp(selector_error_code(selector))
    if not d.present:
        raise np_fault(selector_error_code(selector))
    if not d.accessed:
        tables.set_access_bits(selector, TYPE_ACCESSED)
    return d.template.with_selector(selector)


def _load_stack(
    tables: DescriptorTables, selector: int, cpl: int, vector: int, ext: bool
) -> SegmentCache:
    if selector & 0xFFFC == 0:
        raise CpuFault(vector, selector_error_code(selector, ext))
    return stack_segment(tables, selector, tables.entry(selector, vector, ext), cpl, vector, ext)


def stack_segment(
    tables: DescriptorTables, selector: int, d: Decoded, cpl: int, vector: int = GP,
    ext: bool = False,
) -> SegmentCache:
    """The checks of an SS load on the descriptor ``d`` already read for the non-null
    ``selector`` (:func:`load_stack_segment` with ``vector`` GP,
    :func:`load_inner_stack_segment` with TS); sets the Accessed bit in memory when clear."""
    if selector & 3 != cpl or not d.writable or d.dpl != cpl:
        raise CpuFault(vector, selector_error_code(selector, ext))
    if not d.present:
        raise CpuFault(SS, selector_error_code(selector, ext))
    if not d.accessed:
        tables.set_access_bits(selector, TYPE_ACCESSED)
    return d.template.with_selector(selector)


def load_stack_segment(tables: DescriptorTables, selector: int, cpl: int) -> SegmentCache:
    """Load SS by MOV/POP/LSS, or from the stack on a far RET/IRET to an outer level
    (pass the return CS's RPL as ``cpl``) (SDM Vol. 2, MOV; Vol. 3, 5.7).

    - null selector: #GP(0);
    - index beyond the table limit: #GP(selector);
    - RPL != CPL, not a writable data segment, or DPL != CPL: #GP(selector);
    - not present: #SS(selector).
    """
    return _load_stack(tables, selector, cpl, GP, False)


def load_inner_stack_segment(
    tables: DescriptorTables, selector: int, new_cpl: int, ext: bool = False
) -> SegmentCache:
    """Load the inner-level SS taken from the TSS on a call-gate CALL or an interrupt to a
    more privileged level (SDM Vol. 2, CALL MORE-PRIVILEGE; Vol. 3, 6.12.1).

    Same rules as :func:`load_stack_segment` against the new CPL, but the faults are
    #TS(SS selector) (a null selector gives #TS(0), plus EXT when ``ext``); not present is
    #SS(SS selector).
    """
    return _load_stack(tables, selector, new_cpl, TS, ext)


def inner_stack_from_tss(
    mem: LinearMemory, tr: SegmentCache, level: int, ext: bool = False
) -> tuple[int, int]:
    """Read ``(SSn, ESPn)`` for privilege level ``level`` (0..2) from the current 32-bit TSS.

    #TS(TR selector) when the 6 bytes are beyond the TSS limit (SDM Vol. 2, CALL).
    """
    offset = tss32_stack_offset(level)
    if not tr.valid or offset + 5 > tr.limit:
        raise ts(selector_error_code(tr.selector, ext))
    esp = mem.read((tr.base + offset) & 0xFFFFFFFF, 4, False)
    ss_sel = mem.read((tr.base + offset + 4) & 0xFFFFFFFF, 2, False)
    return ss_sel, esp


def invalid_after_outer_return(cache: SegmentCache, new_cpl: int) -> bool:
    """True when a far RET/IRET to the outer level ``new_cpl`` must null this DS/ES/FS/GS:
    it holds a data or non-conforming code segment with DPL < new CPL (SDM Vol. 2, RET).

    The CPU then replaces the register with ``SegmentCache.null(0)``.
    """
    return cache.valid and not cache.conforming and cache.dpl < new_cpl


# --------------------------------------------------------------------------------------------
# CS: far CALL/JMP, call gates, interrupt gates, far RET/IRET
# --------------------------------------------------------------------------------------------


def load_far_target(tables: DescriptorTables, selector: int) -> Descriptor:
    """Fetch the descriptor named by the selector of a far CALL/JMP.

    #GP(0) for a null selector, #GP(selector) beyond the table limit. The CPU dispatches on
    the result: a :class:`SegmentDescriptor` goes to :func:`check_direct_code_segment`, a
    call :class:`GateDescriptor` to :func:`check_call_gate` then
    :func:`load_gate_code_segment`; anything else (data, LDT, TSS/task gate if task switches
    are not modelled, :class:`InvalidDescriptor`) is #GP(selector).
    """
    return far_target_entry(tables, selector).desc


def far_target_entry(tables: DescriptorTables, selector: int) -> Decoded:
    """:func:`load_far_target`, returning the :class:`Decoded` record."""
    if selector & 0xFFFC == 0:
        raise gp(0)
    return tables.entry(selector)


def check_direct_code_segment(
    tables: DescriptorTables, selector: int, desc: Descriptor, cpl: int
) -> SegmentCache:
    """Check a far CALL/JMP straight to a code segment and return the new CS cache
    (SDM Vol. 2, CALL/JMP; Vol. 3, 5.8.1).

    - not a code segment: #GP(selector);
    - conforming with DPL > CPL: #GP(selector);
    - non-conforming with RPL > CPL or DPL != CPL: #GP(selector);
    - not present: #NP(selector).

    The CPL never changes: the returned cache's selector has RPL = CPL.
    """
    return direct_code_segment(tables, selector, Decoded(desc), cpl)


def direct_code_segment(
    tables: DescriptorTables, selector: int, d: Decoded, cpl: int
) -> SegmentCache:
    """:func:`check_direct_code_segment` on a :class:`Decoded` record."""
    if not d.code:
        raise gp(selector_error_code(selector))
    if d.conforming:
        if d.dpl > cpl:
            raise gp(selector_error_code(selector))
    elif selector & 3 > cpl or d.dpl != cpl:
        raise gp(selector_error_code(selector))
    if not d.present:
        raise np_fault(selector_error_code(selector))
    if not d.accessed:
        tables.set_access_bits(selector, TYPE_ACCESSED)
    return d.template.with_selector((selector & 0xFFFC) | cpl)


def check_call_gate(gate: GateDescriptor, gate_selector: int, cpl: int) -> None:
    """Privilege and presence checks on a call gate named by a far CALL/JMP
    (SDM Vol. 3, 5.8.4).

    - not a 32-bit call gate: #GP(gate selector);
    - gate DPL < CPL or gate DPL < RPL of the gate selector: #GP(gate selector);
    - gate not present: #NP(gate selector).
    """
    if not gate.is_call_gate or gate.dpl < cpl or gate.dpl < gate_selector & 3:
        raise gp(selector_error_code(gate_selector))
    if not gate.present:
        raise np_fault(selector_error_code(gate_selector))


def load_gate_code_segment(
    tables: DescriptorTables, selector: int, cpl: int, *, jump: bool = False, ext: bool = False
) -> SegmentCache:
    """Check the code segment a call, interrupt or trap gate points to and return the new CS
    cache (SDM Vol. 2, CALL/JMP/INT; Vol. 3, 5.8.4 and 6.12.1).

    ``selector`` is the gate's selector. ``jump`` for JMP through a call gate, ``ext`` for an
    exception or external interrupt (sets EXT in the error codes).

    - null selector: #GP(0) (#GP(EXT) with ``ext``);
    - beyond the table limit, or not a code segment: #GP(selector);
    - DPL > CPL: #GP(selector) (a gate never lowers privilege);
    - JMP only: non-conforming with DPL != CPL: #GP(selector) (JMP never changes CPL);
    - not present: #NP(selector).

    The new CPL is the DPL for a non-conforming segment, the current CPL for a conforming
    one; it is the RPL of the returned cache's selector (``cache.rpl``). A new CPL below the
    current one means a privilege change: the CPU switches stacks with
    :func:`inner_stack_from_tss` and :func:`load_inner_stack_segment`.
    """
    if selector & 0xFFFC == 0:
        raise gp(selector_error_code(selector, ext))
    return gate_code_segment(tables, selector, tables.entry(selector, GP, ext), cpl, jump, ext)


def gate_code_segment(
    tables: DescriptorTables, selector: int, d: Decoded, cpl: int, jump: bool = False,
    ext: bool = False,
) -> SegmentCache:
    """The checks of :func:`load_gate_code_segment` on the descriptor ``d`` already read for
    the non-null ``selector``; sets the Accessed bit in memory when clear."""
    if not d.code or d.dpl > cpl or (jump and not d.conforming and d.dpl != cpl):
        raise gp(selector_error_code(selector, ext))
    if not d.present:
        raise np_fault(selector_error_code(selector, ext))
    if not d.accessed:
        tables.set_access_bits(selector, TYPE_ACCESSED)
    return d.template.with_selector((selector & 0xFFFC) | (cpl if d.conforming else d.dpl))


def load_return_code_segment(tables: DescriptorTables, selector: int, cpl: int) -> SegmentCache:
    """Check the CS popped by a far RET or IRET and return the new CS cache
    (SDM Vol. 2, RET and IRET; Vol. 3, 5.8.6).

    - null selector: #GP(0);
    - beyond the table limit, or not a code segment: #GP(selector);
    - RPL < CPL (a return never raises privilege): #GP(selector);
    - conforming with DPL > RPL, or non-conforming with DPL != RPL: #GP(selector);
    - not present: #NP(selector).

    The new CPL is the selector's RPL; RPL > CPL means a return to an outer level (the CPU then
    pops ESP/SS, loads SS with :func:`load_stack_segment` at the new CPL, and nulls data
    registers for which :func:`invalid_after_outer_return` is true).
    """
    if selector & 0xFFFC == 0:
        raise gp(0)
    return return_code_segment(tables, selector, tables.entry(selector), cpl)


def return_code_segment(
    tables: DescriptorTables, selector: int, d: Decoded, cpl: int
) -> SegmentCache:
    """The checks of :func:`load_return_code_segment` on the descriptor ``d`` already read for
    the non-null ``selector``; sets the Accessed bit in memory when clear."""
    rpl = selector & 3
    if not d.code or rpl < cpl or (d.dpl > rpl if d.conforming else d.dpl != rpl):
        raise gp(selector_error_code(selector))
    if not d.present:
        raise np_fault(selector_error_code(selector))
    if not d.accessed:
        tables.set_access_bits(selector, TYPE_ACCESSED)
    return d.template.with_selector(selector)


# --------------------------------------------------------------------------------------------
# LDTR and TR (LLDT, LTR)
# --------------------------------------------------------------------------------------------


def load_ldtr(tables: DescriptorTables, selector: int) -> SegmentCache:
    """Load LDTR (SDM Vol. 2, LLDT); the CPL 0 check is the CPU's.

    - null selector: no fault, LDTR becomes unusable;
    - TI = 1, beyond the GDT limit, or not an LDT descriptor: #GP(selector);
    - not present: #NP(selector).

    The caller stores the result both in its LDTR and in ``tables.ldtr``.
    """
    if selector & 0xFFFC == 0:
        return SegmentCache.null(selector)
    code = selector_error_code(selector)
    if selector & 4:
        raise gp(code)
    desc = tables.lookup(selector)
    if not isinstance(desc, SystemDescriptor) or desc.type != SYS_LDT:
        raise gp(code)
    if not desc.present:
        raise np_fault(code)
    return SegmentCache.from_descriptor(selector, desc)


def load_task_register(tables: DescriptorTables, selector: int) -> SegmentCache:
    """Load TR (SDM Vol. 2, LTR); the CPL 0 check is the CPU's.

    - null selector: #GP(0);
    - TI = 1, beyond the GDT limit, or not an available 32-bit TSS (busy included):
      #GP(selector);
    - not present: #NP(selector).

    Marks the TSS descriptor busy in memory; the returned cache has the busy type.
    """
    if selector & 0xFFFC == 0:
        raise gp(0)
    code = selector_error_code(selector)
    if selector & 4:
        raise gp(code)
    desc = tables.lookup(selector)
    if not isinstance(desc, SystemDescriptor) or desc.type != SYS_TSS32_AVAILABLE:
        raise gp(code)
    if not desc.present:
        raise np_fault(code)
    tables.set_access_bits(selector, TYPE_TSS_BUSY)
    cache = SegmentCache.from_descriptor(selector, desc)
    cache.type |= TYPE_TSS_BUSY
    return cache
