"""Segment, system and gate descriptors, and the 32-bit TSS (Intel SDM Vol. 3).

Every descriptor is 8 bytes, stored little-endian. Seen as two 32-bit words (SDM Vol. 3,
figure 3-8)::

    low  word: bits 15..0  limit 15:0          bits 31..16 base 15:0
    high word: bits 7..0   base 23:16          bits 11..8  type
               bit 12      S (1 code/data)     bits 14..13 DPL        bit 15 P
               bits 19..16 limit 19:16         bit 20 AVL   bit 21 L   bit 22 D/B   bit 23 G
               bits 31..24 base 31:24

Gates (SDM Vol. 3, figures 5-8 and 6-2) keep the type, S, DPL and P bits at the same place and
use the rest for a selector, an offset and (call gates only) a parameter count::

    low  word: bits 15..0  offset 15:0         bits 31..16 segment selector
    high word: bits 4..0   parameter count     bits 15..8  P DPL 0 type
               bits 31..16 offset 31:16

:func:`decode_descriptor` is the entry point for guest bytes: it never raises for any 8 bytes.
Descriptor types the machine does not model (reserved types, 16-bit TSS and 16-bit gates) come
back as :class:`InvalidDescriptor`, which the CPU turns into the architectural fault (#GP, #TS
...) of the instruction at hand. The per-class ``decode`` methods are for host code that
already knows the kind and raise ``ValueError`` when the bytes are of another kind.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeAlias

import attrs

# --- type field values, code and data segments (S = 1), SDM Vol. 3, table 3-1 -------------

#: Type bits of code and data segments.
TYPE_ACCESSED = 0x1  # A
TYPE_WRITABLE = 0x2  # W (data)
TYPE_READABLE = 0x2  # R (code)
TYPE_EXPAND_DOWN = 0x4  # E (data)
TYPE_CONFORMING = 0x4  # C (code)
TYPE_CODE = 0x8  # 1 code, 0 data

DATA_READ_ONLY = 0x0
DATA_READ_ONLY_ACCESSED = 0x1
DATA_READ_WRITE = 0x2
DATA_READ_WRITE_ACCESSED = 0x3
DATA_READ_ONLY_EXPAND_DOWN = 0x4
DATA_READ_ONLY_EXPAND_DOWN_ACCESSED = 0x5
DATA_READ_WRITE_EXPAND_DOWN = 0x6
DATA_READ_WRITE_EXPAND_DOWN_ACCESSED = 0x7
CODE_EXECUTE_ONLY = 0x8
CODE_EXECUTE_ONLY_ACCESSED = 0x9
CODE_EXECUTE_READ = 0xA
CODE_EXECUTE_READ_ACCESSED = 0xB
CODE_EXECUTE_ONLY_CONFORMING = 0xC
CODE_EXECUTE_ONLY_CONFORMING_ACCESSED = 0xD
CODE_EXECUTE_READ_CONFORMING = 0xE
CODE_EXECUTE_READ_CONFORMING_ACCESSED = 0xF

# --- type field values, system segments and gates (S = 0), SDM Vol. 3, table 3-2 ----------

SYS_RESERVED_0 = 0x0
SYS_TSS16_AVAILABLE = 0x1  # not modelled: decodes to InvalidDescriptor
SYS_LDT = 0x2
SYS_TSS16_BUSY = 0x3  # not modelled
SYS_CALL_GATE16 = 0x4  # not modelled
SYS_TASK_GATE = 0x5
SYS_INTERRUPT_GATE16 = 0x6  # not modelled
SYS_TRAP_GATE16 = 0x7  # not modelled
SYS_RESERVED_8 = 0x8
SYS_TSS32_AVAILABLE = 0x9
SYS_RESERVED_A = 0xA
SYS_TSS32_BUSY = 0xB
SYS_CALL_GATE32 = 0xC
SYS_RESERVED_D = 0xD
SYS_INTERRUPT_GATE32 = 0xE
SYS_TRAP_GATE32 = 0xF

#: Busy bit of a TSS descriptor's type (available 9 <-> busy 0xB).
TYPE_TSS_BUSY = 0x2

SYSTEM_SEGMENT_TYPES = frozenset({SYS_LDT, SYS_TSS32_AVAILABLE, SYS_TSS32_BUSY})
GATE_TYPES = frozenset({SYS_TASK_GATE, SYS_CALL_GATE32, SYS_INTERRUPT_GATE32, SYS_TRAP_GATE32})

# Bit positions inside the high 32-bit word.
_S_BIT = 1 << 12
_P_BIT = 1 << 15
_AVL_BIT = 1 << 20
_L_BIT = 1 << 21
_DB_BIT = 1 << 22
_G_BIT = 1 << 23

#: Byte 5 of a descriptor (P, DPL, S, type): the byte the processor rewrites to set the
#: Accessed bit of a segment or the busy bit of a TSS.
ACCESS_BYTE_OFFSET = 5

DESCRIPTOR_SIZE = 8


def _field_range(top: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not 0 <= value <= top:
            raise ValueError(f"{attribute.name} must be in 0..{top:#x}, got {value:#x}")

    return check


def _type_in(allowed: frozenset[int]) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if value not in allowed:
            names = ", ".join(f"{t:#x}" for t in sorted(allowed))
            raise ValueError(f"{attribute.name} must be one of {names}, got {value:#x}")

    return check


def _qword(raw: bytes) -> int:
    if len(raw) != DESCRIPTOR_SIZE:
        raise ValueError(f"a descriptor is {DESCRIPTOR_SIZE} bytes, got {len(raw)}")
    return int.from_bytes(raw, "little")


def _base_of(low: int, high: int) -> int:
    return (low >> 16) | ((high & 0xFF) << 16) | (high & 0xFF000000)


def _limit_of(low: int, high: int) -> int:
    return (low & 0xFFFF) | (high & 0x000F0000)


def _pack_base_limit(base: int, limit: int) -> tuple[int, int]:
    low = ((base & 0xFFFF) << 16) | (limit & 0xFFFF)
    high = ((base >> 16) & 0xFF) | (base & 0xFF000000) | (limit & 0x000F0000)
    return low, high


def _access(type_: int, s: bool, dpl: int, present: bool) -> int:
    """The P/DPL/S/type bits in their place in the high word."""
    return (type_ << 8) | (_S_BIT if s else 0) | (dpl << 13) | (_P_BIT if present else 0)


def _to_bytes(low: int, high: int) -> bytes:
    return (low | (high << 32)).to_bytes(DESCRIPTOR_SIZE, "little")


def scale_limit(limit: int, g: bool) -> int:
    """The effective byte limit of a raw 20-bit limit (SDM Vol. 3, 3.4.5, G flag).

    With 4 KiB granularity the low 12 bits of every offset are not checked, so the limit is
    ``limit * 4096 + 4095``.
    """
    return (limit << 12) | 0xFFF if g else limit


@attrs.frozen
class SegmentDescriptor:
    """A code or data segment descriptor (S = 1), SDM Vol. 3, 3.4.5.

    ``limit`` is the raw 20-bit field; :attr:`effective_limit` scales it by G. ``type`` is the
    4-bit type field of table 3-1 (bit 3 code, bit 2 E/C, bit 1 W/R, bit 0 A). ``l`` is the
    IA-32e 64-bit code flag, kept only so that the bytes round-trip; ``avl`` is free for
    software.
    """

    base: int = attrs.field(validator=_field_range(0xFFFFFFFF))
    limit: int = attrs.field(validator=_field_range(0xFFFFF))
    type: int = attrs.field(validator=_field_range(0xF))
    dpl: int = attrs.field(default=0, validator=_field_range(3))
    present: bool = True
    db: bool = True
    g: bool = False
    avl: bool = False
    l: bool = False

    @property
    def s(self) -> bool:
        """Descriptor type flag: always 1 (code or data)."""
        return True

    @property
    def is_code(self) -> bool:
        return bool(self.type & TYPE_CODE)

    @property
    def is_data(self) -> bool:
        return not self.type & TYPE_CODE

    @property
    def expand_down(self) -> bool:
        """Data segment whose valid offsets lie *above* the limit."""
        return self.type & (TYPE_CODE | TYPE_EXPAND_DOWN) == TYPE_EXPAND_DOWN

    @property
    def conforming(self) -> bool:
        """Code segment that runs at the caller's CPL."""
        return self.type & (TYPE_CODE | TYPE_CONFORMING) == TYPE_CODE | TYPE_CONFORMING

    @property
    def readable(self) -> bool:
        """Data segments are always readable; code segments only with R set."""
        return self.is_data or bool(self.type & TYPE_READABLE)

    @property
    def writable(self) -> bool:
        """Only data segments with W set; code segments are never writable."""
        return self.type & (TYPE_CODE | TYPE_WRITABLE) == TYPE_WRITABLE

    @property
    def accessed(self) -> bool:
        return bool(self.type & TYPE_ACCESSED)

    @property
    def effective_limit(self) -> int:
        """The byte limit: the raw limit scaled by G."""
        return scale_limit(self.limit, self.g)

    def with_accessed(self) -> SegmentDescriptor:
        """The same descriptor with the Accessed bit set."""
        return attrs.evolve(self, type=self.type | TYPE_ACCESSED)

    def qword(self) -> int:
        """The descriptor as one little-endian 64-bit value."""
        low, high = _pack_base_limit(self.base, self.limit)
        high |= _access(self.type, True, self.dpl, self.present)
        high |= (
            (_AVL_BIT if self.avl else 0)
            | (_L_BIT if self.l else 0)
            | (_DB_BIT if self.db else 0)
            | (_G_BIT if self.g else 0)
        )
        return low | (high << 32)

    def encode(self) -> bytes:
        """The 8 bytes as stored in a descriptor table."""
        return self.qword().to_bytes(DESCRIPTOR_SIZE, "little")

    @classmethod
    def from_qword(cls, value: int) -> SegmentDescriptor:
        """Decode a 64-bit descriptor value; ``ValueError`` unless S = 1."""
        low, high = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
        if not high & _S_BIT:
            raise ValueError("not a code or data descriptor (S = 0)")
        return cls(
            base=_base_of(low, high),
            limit=_limit_of(low, high),
            type=(high >> 8) & 0xF,
            dpl=(high >> 13) & 3,
            present=bool(high & _P_BIT),
            db=bool(high & _DB_BIT),
            g=bool(high & _G_BIT),
            avl=bool(high & _AVL_BIT),
            l=bool(high & _L_BIT),
        )

    @classmethod
    def decode(cls, raw: bytes) -> SegmentDescriptor:
        """Decode 8 bytes; ``ValueError`` unless they hold a code or data descriptor."""
        return cls.from_qword(_qword(raw))


@attrs.frozen
class SystemDescriptor:
    """An LDT or 32-bit TSS descriptor (S = 0), SDM Vol. 3, 3.5 and figure 7-3.

    ``type`` is :data:`SYS_LDT`, :data:`SYS_TSS32_AVAILABLE` or :data:`SYS_TSS32_BUSY`;
    ``limit`` is the raw 20-bit field (a 32-bit TSS needs at least 0x67).
    """

    base: int = attrs.field(validator=_field_range(0xFFFFFFFF))
    limit: int = attrs.field(validator=_field_range(0xFFFFF))
    type: int = attrs.field(validator=_type_in(SYSTEM_SEGMENT_TYPES))
    dpl: int = attrs.field(default=0, validator=_field_range(3))
    present: bool = True
    g: bool = False
    avl: bool = False

    @property
    def s(self) -> bool:
        """Descriptor type flag: always 0 (system)."""
        return False

    @property
    def is_ldt(self) -> bool:
        return self.type == SYS_LDT

    @property
    def is_tss(self) -> bool:
        return self.type in (SYS_TSS32_AVAILABLE, SYS_TSS32_BUSY)

    @property
    def busy(self) -> bool:
        """A busy 32-bit TSS (type 0xB)."""
        return self.type == SYS_TSS32_BUSY

    @property
    def effective_limit(self) -> int:
        """The byte limit: the raw limit scaled by G."""
        return scale_limit(self.limit, self.g)

    def qword(self) -> int:
        """The descriptor as one little-endian 64-bit value."""
        low, high = _pack_base_limit(self.base, self.limit)
        high |= _access(self.type, False, self.dpl, self.present)
        high |= (_AVL_BIT if self.avl else 0) | (_G_BIT if self.g else 0)
        return low | (high << 32)

    def encode(self) -> bytes:
        """The 8 bytes as stored in the GDT."""
        return self.qword().to_bytes(DESCRIPTOR_SIZE, "little")

    @classmethod
    def from_qword(cls, value: int) -> SystemDescriptor:
        """Decode a 64-bit value; ``ValueError`` unless it is an LDT or 32-bit TSS."""
        low, high = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
        type_ = (high >> 8) & 0xF
        if high & _S_BIT or type_ not in SYSTEM_SEGMENT_TYPES:
            raise ValueError("not an LDT or 32-bit TSS descriptor")
        return cls(
            base=_base_of(low, high),
            limit=_limit_of(low, high),
            type=type_,
            dpl=(high >> 13) & 3,
            present=bool(high & _P_BIT),
            g=bool(high & _G_BIT),
            avl=bool(high & _AVL_BIT),
        )

    @classmethod
    def decode(cls, raw: bytes) -> SystemDescriptor:
        """Decode 8 bytes; ``ValueError`` unless they hold an LDT or 32-bit TSS descriptor."""
        return cls.from_qword(_qword(raw))


def _gate_fields_ok(instance: GateDescriptor, _attribute: object, _value: object) -> None:
    # Reserved fields must stay zero so that a gate round-trips through its 8 bytes: only a
    # call gate has a parameter count, and a task gate has no offset.
    if instance.param_count and instance.type != SYS_CALL_GATE32:
        raise ValueError("param_count is meaningful only for a call gate")
    if instance.offset and instance.type == SYS_TASK_GATE:
        raise ValueError("a task gate has no offset")


@attrs.frozen
class GateDescriptor:
    """A call, interrupt, trap or task gate (S = 0), SDM Vol. 3, 5.8.3 and 6.11.

    ``selector`` is the target code segment (the TSS for a task gate), ``offset`` the entry
    point (0 for a task gate), ``param_count`` the number of doublewords a 32-bit call gate
    copies to the new stack on a privilege change (0 for the other gates).
    """

    type: int = attrs.field(validator=_type_in(GATE_TYPES))
    selector: int = attrs.field(validator=_field_range(0xFFFF))
    offset: int = attrs.field(default=0, validator=_field_range(0xFFFFFFFF))
    param_count: int = attrs.field(default=0, validator=[_field_range(31), _gate_fields_ok])
    dpl: int = attrs.field(default=0, validator=_field_range(3))
    present: bool = True

    @property
    def s(self) -> bool:
        """Descriptor type flag: always 0 (system)."""
        return False

    @property
    def is_call_gate(self) -> bool:
        return self.type == SYS_CALL_GATE32

    @property
    def is_interrupt_gate(self) -> bool:
        """Interrupt gate: delivery clears EFLAGS.IF."""
        return self.type == SYS_INTERRUPT_GATE32

    @property
    def is_trap_gate(self) -> bool:
        """Trap gate: delivery leaves EFLAGS.IF alone."""
        return self.type == SYS_TRAP_GATE32

    @property
    def is_task_gate(self) -> bool:
        return self.type == SYS_TASK_GATE

    def qword(self) -> int:
        """The gate as one little-endian 64-bit value."""
        low = (self.selector << 16) | (self.offset & 0xFFFF)
        high = (self.offset & 0xFFFF0000) | self.param_count
        high |= _access(self.type, False, self.dpl, self.present)
        return low | (high << 32)

    def encode(self) -> bytes:
        """The 8 bytes as stored in a descriptor table or the IDT."""
        return self.qword().to_bytes(DESCRIPTOR_SIZE, "little")

    @classmethod
    def from_qword(cls, value: int) -> GateDescriptor:
        """Decode a 64-bit value; ``ValueError`` unless it is a modelled gate.

        Reserved bits (the parameter-count field of interrupt and trap gates, the offset of a
        task gate, bits 7..5 of the high word) are ignored, as the processor ignores them.
        """
        low, high = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
        type_ = (high >> 8) & 0xF
        if high & _S_BIT or type_ not in GATE_TYPES:
            raise ValueError("not a 32-bit call/interrupt/trap gate or a task gate")
        task = type_ == SYS_TASK_GATE
        return cls(
            type=type_,
            selector=low >> 16,
            offset=0 if task else (high & 0xFFFF0000) | (low & 0xFFFF),
            param_count=high & 0x1F if type_ == SYS_CALL_GATE32 else 0,
            dpl=(high >> 13) & 3,
            present=bool(high & _P_BIT),
        )

    @classmethod
    def decode(cls, raw: bytes) -> GateDescriptor:
        """Decode 8 bytes; ``ValueError`` unless they hold a modelled gate."""
        return cls.from_qword(_qword(raw))


#: Why a descriptor was refused, by system type.
_INVALID_REASONS = {
    SYS_RESERVED_0: "reserved system type 0",
    SYS_TSS16_AVAILABLE: "16-bit TSS (not modelled)",
    SYS_TSS16_BUSY: "16-bit TSS (not modelled)",
    SYS_CALL_GATE16: "16-bit call gate (not modelled)",
    SYS_INTERRUPT_GATE16: "16-bit interrupt gate (not modelled)",
    SYS_TRAP_GATE16: "16-bit trap gate (not modelled)",
    SYS_RESERVED_8: "reserved system type 8",
    SYS_RESERVED_A: "reserved system type 0xA",
    SYS_RESERVED_D: "reserved system type 0xD",
}


@attrs.frozen
class InvalidDescriptor:
    """8 guest bytes that hold no descriptor the machine models.

    The access-rights fields are still readable (``s``, ``type``, ``dpl``, ``present``) so that
    LAR and fault reports can look at them; any load through it is an architectural fault.
    """

    raw: int = attrs.field(validator=_field_range(0xFFFFFFFFFFFFFFFF))
    reason: str = ""

    @property
    def s(self) -> bool:
        return bool((self.raw >> 32) & _S_BIT)

    @property
    def type(self) -> int:
        return (self.raw >> 40) & 0xF

    @property
    def dpl(self) -> int:
        return (self.raw >> 45) & 3

    @property
    def present(self) -> bool:
        return bool((self.raw >> 32) & _P_BIT)

    def qword(self) -> int:
        return self.raw

    def encode(self) -> bytes:
        """The original 8 bytes."""
        return self.raw.to_bytes(DESCRIPTOR_SIZE, "little")


Descriptor: TypeAlias = SegmentDescriptor | SystemDescriptor | GateDescriptor | InvalidDescriptor


def decode_descriptor_qword(value: int) -> Descriptor:
    """Decode a 64-bit descriptor value read from guest memory; never raises for 64-bit input.

    Dispatches on S and type (SDM Vol. 3, tables 3-1 and 3-2).
    """
    high = (value >> 32) & 0xFFFFFFFF
    if high & _S_BIT:
        return SegmentDescriptor.from_qword(value)
    type_ = (high >> 8) & 0xF
    if type_ in SYSTEM_SEGMENT_TYPES:
        return SystemDescriptor.from_qword(value)
    if type_ in GATE_TYPES:
        return GateDescriptor.from_qword(value)
    return InvalidDescriptor(value & 0xFFFFFFFFFFFFFFFF, _INVALID_REASONS[type_])


def decode_descriptor(raw: bytes) -> Descriptor:
    """Decode 8 bytes of a descriptor table or the IDT.

    Never raises for guest bytes: unmodelled and reserved types give :class:`InvalidDescriptor`.
    Only a host mistake (not exactly 8 bytes) raises ``ValueError``.
    """
    return decode_descriptor_qword(_qword(raw))


# --- 32-bit task-state segment, SDM Vol. 3, 7.2.1, figure 7-2 ------------------------------

TSS32_LINK = 0x00  # previous task link (16 bits)
TSS32_ESP0 = 0x04
TSS32_SS0 = 0x08
TSS32_ESP1 = 0x0C
TSS32_SS1 = 0x10
TSS32_ESP2 = 0x14
TSS32_SS2 = 0x18
TSS32_CR3 = 0x1C
TSS32_EIP = 0x20
TSS32_EFLAGS = 0x24
TSS32_EAX = 0x28
TSS32_ECX = 0x2C
TSS32_EDX = 0x30
TSS32_EBX = 0x34
TSS32_ESP = 0x38
TSS32_EBP = 0x3C
TSS32_ESI = 0x40
TSS32_EDI = 0x44
TSS32_ES = 0x48
TSS32_CS = 0x4C
TSS32_SS = 0x50
TSS32_DS = 0x54
TSS32_FS = 0x58
TSS32_GS = 0x5C
TSS32_LDT = 0x60  # LDT segment selector
TSS32_T = 0x64  # debug trap flag, bit 0
TSS32_IO_MAP_BASE = 0x66  # 16 bits
TSS32_SIZE = 0x68  # 104 bytes; the smallest valid limit is TSS32_SIZE - 1


def tss32_stack_offset(level: int) -> int:
    """Offset of ESPn in a 32-bit TSS (SSn follows 4 bytes later), for n in 0..2."""
    return TSS32_ESP0 + 8 * level


# Layout as a struct: each 16-bit selector field is followed by 16 reserved bits.
_TSS32 = struct.Struct("<HxxIHxxIHxxIHxx" + "I" * 11 + "Hxx" * 7 + "HH")
assert _TSS32.size == TSS32_SIZE

_u32 = _field_range(0xFFFFFFFF)
_u16 = _field_range(0xFFFF)


@attrs.frozen
class Tss32:
    """The 104-byte 32-bit task-state segment (SDM Vol. 3, figure 7-2).

    Selector fields are 16 bits; the 16 reserved bits above each are written as zero and
    ignored on decode. ``t`` is the debug trap bit at offset 0x64.
    """

    link: int = attrs.field(default=0, validator=_u16)
    esp0: int = attrs.field(default=0, validator=_u32)
    ss0: int = attrs.field(default=0, validator=_u16)
    esp1: int = attrs.field(default=0, validator=_u32)
    ss1: int = attrs.field(default=0, validator=_u16)
    esp2: int = attrs.field(default=0, validator=_u32)
    ss2: int = attrs.field(default=0, validator=_u16)
    cr3: int = attrs.field(default=0, validator=_u32)
    eip: int = attrs.field(default=0, validator=_u32)
    eflags: int = attrs.field(default=0, validator=_u32)
    eax: int = attrs.field(default=0, validator=_u32)
    ecx: int = attrs.field(default=0, validator=_u32)
    edx: int = attrs.field(default=0, validator=_u32)
    ebx: int = attrs.field(default=0, validator=_u32)
    esp: int = attrs.field(default=0, validator=_u32)
    ebp: int = attrs.field(default=0, validator=_u32)
    esi: int = attrs.field(default=0, validator=_u32)
    edi: int = attrs.field(default=0, validator=_u32)
    es: int = attrs.field(default=0, validator=_u16)
    cs: int = attrs.field(default=0, validator=_u16)
    ss: int = attrs.field(default=0, validator=_u16)
    ds: int = attrs.field(default=0, validator=_u16)
    fs: int = attrs.field(default=0, validator=_u16)
    gs: int = attrs.field(default=0, validator=_u16)
    ldt: int = attrs.field(default=0, validator=_u16)
    t: bool = False
    io_map_base: int = attrs.field(default=TSS32_SIZE, validator=_u16)

    def encode(self) -> bytes:
        """The 104 bytes of the TSS."""
        return _TSS32.pack(
            self.link, self.esp0, self.ss0, self.esp1, self.ss1, self.esp2, self.ss2,
            self.cr3, self.eip, self.eflags,
            self.eax, self.ecx, self.edx, self.ebx, self.esp, self.ebp, self.esi, self.edi,
            self.es, self.cs, self.ss, self.ds, self.fs, self.gs, self.ldt,
            1 if self.t else 0, self.io_map_base,
        )  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes) -> Tss32:
        """Decode exactly 104 bytes (``ValueError`` otherwise); reserved bits are ignored."""
        if len(raw) != TSS32_SIZE:
            raise ValueError(f"a 32-bit TSS is {TSS32_SIZE} bytes, got {len(raw)}")
        f = _TSS32.unpack(raw)
        return cls(
            link=f[0], esp0=f[1], ss0=f[2], esp1=f[3], ss1=f[4], esp2=f[5], ss2=f[6],
            cr3=f[7], eip=f[8], eflags=f[9],
            eax=f[10], ecx=f[11], edx=f[12], ebx=f[13], esp=f[14], ebp=f[15], esi=f[16],
            edi=f[17],
            es=f[18], cs=f[19], ss=f[20], ds=f[21], fs=f[22], gs=f[23], ldt=f[24],
            t=bool(f[25] & 1), io_map_base=f[26],
        )  # fmt: skip
