"""Encoding of selectors, descriptors, gates and the 32-bit TSS (Intel SDM Vol. 3, 3.4 and
5.8.3, 6.11, 7.2): round trips, and fixed vectors worked out by hand from the bit layouts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lavsim.mmu import descriptors as d
from lavsim.mmu.descriptors import (
    GateDescriptor,
    InvalidDescriptor,
    SegmentDescriptor,
    SystemDescriptor,
    Tss32,
    decode_descriptor,
)
from lavsim.mmu.selectors import Selector, is_null_selector

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)
dpls = st.integers(0, 3)

segment_descriptors = st.builds(
    SegmentDescriptor,
    base=u32,
    limit=st.integers(0, 0xFFFFF),
    type=st.integers(0, 15),
    dpl=dpls,
    present=st.booleans(),
    db=st.booleans(),
    g=st.booleans(),
    avl=st.booleans(),
    l=st.booleans(),
)
system_descriptors = st.builds(
    SystemDescriptor,
    base=u32,
    limit=st.integers(0, 0xFFFFF),
    type=st.sampled_from([d.SYS_LDT, d.SYS_TSS32_AVAILABLE, d.SYS_TSS32_BUSY]),
    dpl=dpls,
    present=st.booleans(),
    g=st.booleans(),
    avl=st.booleans(),
)
call_gates = st.builds(
    GateDescriptor,
    type=st.just(d.SYS_CALL_GATE32),
    selector=u16,
    offset=u32,
    param_count=st.integers(0, 31),
    dpl=dpls,
    present=st.booleans(),
)
idt_gates = st.builds(
    GateDescriptor,
    type=st.sampled_from([d.SYS_INTERRUPT_GATE32, d.SYS_TRAP_GATE32]),
    selector=u16,
    offset=u32,
    dpl=dpls,
    present=st.booleans(),
)
task_gates = st.builds(
    GateDescriptor,
    type=st.just(d.SYS_TASK_GATE),
    selector=u16,
    dpl=dpls,
    present=st.booleans(),
)


# --- round trips -----------------------------------------------------------------------------


@given(st.integers(0, 0x1FFF), st.integers(0, 1), st.integers(0, 3))
def test_selector_round_trips(index: int, ti: int, rpl: int) -> None:
    sel = Selector(index, ti, rpl)
    assert Selector.decode(sel.encode()) == sel
    assert 0 <= sel.encode() <= 0xFFFF


@given(u16)
def test_selector_decode_encode_is_identity_on_16_bit_values(value: int) -> None:
    assert Selector.decode(value).encode() == value


@given(segment_descriptors)
def test_segment_descriptor_round_trips(desc: SegmentDescriptor) -> None:
    raw = desc.encode()
    assert len(raw) == 8
    assert SegmentDescriptor.decode(raw) == desc
    assert decode_descriptor(raw) == desc


@given(system_descriptors)
def test_system_descriptor_round_trips(desc: SystemDescriptor) -> None:
    raw = desc.encode()
    assert SystemDescriptor.decode(raw) == desc
    assert decode_descriptor(raw) == desc


@given(st.one_of(call_gates, idt_gates, task_gates))
def test_gate_descriptor_round_trips(gate: GateDescriptor) -> None:
    raw = gate.encode()
    assert GateDescriptor.decode(raw) == gate
    assert decode_descriptor(raw) == gate


tss_values = st.builds(
    Tss32,
    **{name: u16 for name in ("link", "ss0", "ss1", "ss2", "es", "cs", "ss", "ds", "fs", "gs",
                              "ldt", "io_map_base")},
    **{name: u32 for name in ("esp0", "esp1", "esp2", "cr3", "eip", "eflags", "eax", "ecx",
                              "edx", "ebx", "esp", "ebp", "esi", "edi")},
    t=st.booleans(),
)  # fmt: skip


@given(tss_values)
def test_tss32_round_trips(tss: Tss32) -> None:
    raw = tss.encode()
    assert len(raw) == d.TSS32_SIZE == 104
    assert Tss32.decode(raw) == tss


# --- decode never raises for guest bytes -----------------------------------------------------


@given(st.binary(min_size=8, max_size=8))
def test_decode_descriptor_accepts_any_8_bytes(raw: bytes) -> None:
    desc = decode_descriptor(raw)
    assert isinstance(desc, SegmentDescriptor | SystemDescriptor | GateDescriptor |
                      InvalidDescriptor)  # fmt: skip
    # Access-rights byte fields are read from the same bits whatever the kind.
    assert desc.dpl == (raw[5] >> 5) & 3
    assert desc.present == bool(raw[5] & 0x80)
    assert desc.type == raw[5] & 0xF
    assert desc.s == bool(raw[5] & 0x10)


@given(st.binary(min_size=8, max_size=8))
def test_decoded_descriptor_reencodes_to_the_same_value(raw: bytes) -> None:
    desc = decode_descriptor(raw)
    assert decode_descriptor(desc.encode()) == desc


@pytest.mark.parametrize(
    ("type_", "reason"),
    [
        (0x0, "reserved"),
        (0x8, "reserved"),
        (0xA, "reserved"),
        (0xD, "reserved"),
        (0x1, "16-bit TSS"),
        (0x3, "16-bit TSS"),
        (0x4, "16-bit call gate"),
        (0x6, "16-bit interrupt gate"),
        (0x7, "16-bit trap gate"),
    ],
)
def test_reserved_and_unmodelled_system_types_decode_to_invalid(type_: int, reason: str) -> None:
    raw = (0x0000_8000_0000_0000 | (type_ << 40) | 0x1234).to_bytes(8, "little")
    desc = decode_descriptor(raw)
    assert isinstance(desc, InvalidDescriptor)
    assert reason in desc.reason
    assert desc.encode() == raw
    assert desc.type == type_ and desc.present and not desc.s


def test_decode_descriptor_refuses_wrong_length_as_host_error() -> None:
    with pytest.raises(ValueError):
        decode_descriptor(bytes(7))


def test_class_decode_refuses_the_wrong_kind() -> None:
    gate = GateDescriptor(d.SYS_CALL_GATE32, 0x08, 0x1000).encode()
    with pytest.raises(ValueError):
        SegmentDescriptor.decode(gate)
    with pytest.raises(ValueError):
        SystemDescriptor.decode(gate)
    with pytest.raises(ValueError):
        GateDescriptor.decode(SegmentDescriptor(0, 0, d.DATA_READ_WRITE).encode())


# --- fixed vectors from the manual's bit layouts ---------------------------------------------

FIXED = [
    # name, descriptor, 64-bit value worked out by hand
    (
        "flat 4 GiB ring-0 code, execute/read, G=1 D=1",
        SegmentDescriptor(0, 0xFFFFF, d.CODE_EXECUTE_READ, dpl=0, g=True, db=True),
        0x00CF9A000000FFFF,
    ),
    (
        "flat 4 GiB ring-0 data, read/write",
        SegmentDescriptor(0, 0xFFFFF, d.DATA_READ_WRITE, dpl=0, g=True, db=True),
        0x00CF92000000FFFF,
    ),
    (
        "flat 4 GiB ring-3 code",
        SegmentDescriptor(0, 0xFFFFF, d.CODE_EXECUTE_READ, dpl=3, g=True, db=True),
        0x00CFFA000000FFFF,
    ),
    (
        "flat 4 GiB ring-3 data",
        SegmentDescriptor(0, 0xFFFFF, d.DATA_READ_WRITE, dpl=3, g=True, db=True),
        0x00CFF2000000FFFF,
    ),
    (
        # low = base[15:0]<<16 | limit[15:0] = 0x5678ABCD;
        # high = base[31:24]<<24 | G0 D1 L0 AVL0 <<20 | limit[19:16]<<16 | P DPL3 S type3 <<8
        #        | base[23:16] = 0x12 40 F3 34
        "byte-granular ring-3 accessed data at 0x12345678, limit 0xABCD",
        SegmentDescriptor(0x12345678, 0xABCD, d.DATA_READ_WRITE_ACCESSED, dpl=3, db=True),
        0x1240F3345678ABCD,
    ),
    (
        "16-bit expand-down read/write data, not present, AVL set",
        SegmentDescriptor(
            0x00020000, 0x00FFF, d.DATA_READ_WRITE_EXPAND_DOWN, present=False, db=False, avl=True
        ),
        0x0010160200000FFF,
    ),
    (
        "32-bit TSS available at 0x00101000, limit 0x67",
        SystemDescriptor(0x00101000, 0x67, d.SYS_TSS32_AVAILABLE),
        0x0000891010000067,
    ),
    (
        "LDT at 0xC0200000, limit 0xFFF",
        SystemDescriptor(0xC0200000, 0xFFF, d.SYS_LDT),
        0xC000822000000FFF,
    ),
    (
        "32-bit call gate DPL 3 to 0x0008:0x00401234, 2 parameters",
        GateDescriptor(d.SYS_CALL_GATE32, 0x0008, 0x00401234, param_count=2, dpl=3),
        0x0040EC0200081234,
    ),
    (
        "32-bit interrupt gate DPL 0 to 0x0008:0xC0001000",
        GateDescriptor(d.SYS_INTERRUPT_GATE32, 0x0008, 0xC0001000),
        0xC0008E0000081000,
    ),
    (
        "32-bit trap gate DPL 3 to 0x0008:0xC0002000",
        GateDescriptor(d.SYS_TRAP_GATE32, 0x0008, 0xC0002000, dpl=3),
        0xC000EF0000082000,
    ),
    (
        "task gate to TSS selector 0x0028",
        GateDescriptor(d.SYS_TASK_GATE, 0x0028),
        0x0000850000280000,
    ),
]


@pytest.mark.parametrize(("name", "desc", "value"), FIXED, ids=[f[0] for f in FIXED])
def test_fixed_vector_encodes_as_worked_out_by_hand(
    name: str, desc: SegmentDescriptor | SystemDescriptor | GateDescriptor, value: int
) -> None:
    assert desc.encode() == value.to_bytes(8, "little")
    assert decode_descriptor(value.to_bytes(8, "little")) == desc


def test_interrupt_gate_ignores_reserved_parameter_count_bits() -> None:
    raw = (0xC0008E0000081000 | (0x1F << 32)).to_bytes(8, "little")
    gate = decode_descriptor(raw)
    assert isinstance(gate, GateDescriptor)
    assert gate.param_count == 0 and gate.offset == 0xC0001000 and gate.is_interrupt_gate


def test_task_gate_ignores_the_offset_fields() -> None:
    raw = (0xFFFF85000028FFFF).to_bytes(8, "little")
    gate = decode_descriptor(raw)
    assert isinstance(gate, GateDescriptor)
    assert gate.is_task_gate and gate.selector == 0x28 and gate.offset == 0


def test_gate_refuses_parameter_count_outside_call_gate() -> None:
    with pytest.raises(ValueError):
        GateDescriptor(d.SYS_TRAP_GATE32, 8, 0, param_count=1)
    with pytest.raises(ValueError):
        GateDescriptor(d.SYS_CALL_GATE32, 8, 0, param_count=32)


@pytest.mark.parametrize(
    ("limit", "g", "effective"),
    [
        (0xFFFFF, True, 0xFFFFFFFF),
        (0x00000, True, 0x00000FFF),
        (0x00001, True, 0x00001FFF),
        (0x12345, False, 0x12345),
        (0x00000, False, 0),
    ],
)
def test_effective_limit_scales_by_4k_when_g_is_set(limit: int, g: bool, effective: int) -> None:
    assert SegmentDescriptor(0, limit, d.DATA_READ_WRITE, g=g).effective_limit == effective


@pytest.mark.parametrize(
    ("type_", "code", "expand_down", "conforming", "readable", "writable", "accessed"),
    [
        (d.DATA_READ_ONLY, False, False, False, True, False, False),
        (d.DATA_READ_WRITE_ACCESSED, False, False, False, True, True, True),
        (d.DATA_READ_ONLY_EXPAND_DOWN, False, True, False, True, False, False),
        (d.DATA_READ_WRITE_EXPAND_DOWN, False, True, False, True, True, False),
        (d.CODE_EXECUTE_ONLY, True, False, False, False, False, False),
        (d.CODE_EXECUTE_READ_ACCESSED, True, False, False, True, False, True),
        (d.CODE_EXECUTE_ONLY_CONFORMING, True, False, True, False, False, False),
        (d.CODE_EXECUTE_READ_CONFORMING, True, False, True, True, False, False),
    ],
)
def test_type_field_helpers_follow_table_3_1(
    type_: int,
    code: bool,
    expand_down: bool,
    conforming: bool,
    readable: bool,
    writable: bool,
    accessed: bool,
) -> None:
    desc = SegmentDescriptor(0, 0, type_)
    assert (desc.is_code, desc.is_data) == (code, not code)
    assert desc.expand_down == expand_down
    assert desc.conforming == conforming
    assert desc.readable == readable
    assert desc.writable == writable
    assert desc.accessed == accessed
    assert desc.with_accessed().accessed


@pytest.mark.parametrize(
    ("value", "index", "ti", "rpl", "null"),
    [
        (0x0000, 0, 0, 0, True),
        (0x0003, 0, 0, 3, True),
        (0x0004, 0, 1, 0, False),  # LDT entry 0 is a real segment, not null
        (0x0008, 1, 0, 0, False),
        (0x001B, 3, 0, 3, False),
        (0x000F, 1, 1, 3, False),
        (0xFFFF, 0x1FFF, 1, 3, False),
    ],
)
def test_selector_fields_follow_figure_3_6(
    value: int, index: int, ti: int, rpl: int, null: bool
) -> None:
    sel = Selector.decode(value)
    assert (sel.index, sel.ti, sel.rpl) == (index, ti, rpl)
    assert sel.is_null == null == is_null_selector(value)
    assert sel.table_offset == index * 8


def test_selector_refuses_out_of_range_fields() -> None:
    with pytest.raises(ValueError):
        Selector(0x2000)
    with pytest.raises(ValueError):
        Selector(1, rpl=4)
    with pytest.raises(ValueError):
        Selector.decode(0x10000)


def test_tss32_fields_sit_at_the_offsets_of_figure_7_2() -> None:
    tss = Tss32(
        link=0x1111, esp0=0xAAAA0000, ss0=0x10, esp2=0xBBBB0000, ss2=0x2A, cr3=0x00123000,
        eip=0xC0001234, edi=0xD1D1D1D1, gs=0x33, ldt=0x48, t=True, io_map_base=0x68,
    )  # fmt: skip
    raw = tss.encode()

    def word(offset: int) -> int:
        return int.from_bytes(raw[offset : offset + 4], "little")

    assert word(d.TSS32_LINK) == 0x1111
    assert word(0x04) == word(d.TSS32_ESP0) == 0xAAAA0000
    assert word(0x08) == word(d.TSS32_SS0) == 0x10
    assert word(0x14) == word(d.TSS32_ESP2) == 0xBBBB0000
    assert word(0x18) == word(d.TSS32_SS2) == 0x2A
    assert word(0x1C) == word(d.TSS32_CR3) == 0x00123000
    assert word(0x20) == word(d.TSS32_EIP) == 0xC0001234
    assert word(0x44) == word(d.TSS32_EDI) == 0xD1D1D1D1
    assert word(0x5C) == word(d.TSS32_GS) == 0x33
    assert word(0x60) == word(d.TSS32_LDT) == 0x48
    assert raw[d.TSS32_T] == 1
    assert int.from_bytes(raw[0x66:0x68], "little") == 0x68
    assert d.tss32_stack_offset(0) == 4 and d.tss32_stack_offset(2) == 0x14


def test_tss32_decode_ignores_reserved_upper_halves_of_selector_fields() -> None:
    raw = bytearray(Tss32(ss0=0x10).encode())
    raw[d.TSS32_SS0 + 2 : d.TSS32_SS0 + 4] = b"\xff\xff"
    raw[d.TSS32_T] |= 0xFE  # only bit 0 is T
    tss = Tss32.decode(bytes(raw))
    assert tss.ss0 == 0x10 and not tss.t
