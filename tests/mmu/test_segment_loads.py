"""Segment-register loads and far-transfer checks (Intel SDM Vol. 3, 5.5-5.10; Vol. 2 MOV,
POP, CALL, JMP, RET, IRET, INT, LLDT, LTR): each case is named for the manual's rule and
checks the exact exception vector and error code."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lavsim.faults import GP, NP, SS, TS, CpuFault
from lavsim.mmu import descriptors as d
from lavsim.mmu.descriptors import GateDescriptor, SegmentDescriptor, SystemDescriptor, Tss32
from lavsim.mmu.segmentation import (
    DescriptorTables,
    SegmentCache,
    check_call_gate,
    check_direct_code_segment,
    inner_stack_from_tss,
    invalid_after_outer_return,
    load_data_segment,
    load_far_target,
    load_gate_code_segment,
    load_inner_stack_segment,
    load_ldtr,
    load_return_code_segment,
    load_stack_segment,
    load_task_register,
)


class FlatMemory:
    """Linear == physical memory backed by a bytearray; records every access."""

    def __init__(self, size: int = 0x10000) -> None:
        self.data = bytearray(size)
        self.writes: list[tuple[int, int, int]] = []
        self.user_accesses = 0

    def read(self, linear: int, size: int, user: bool) -> int:
        self.user_accesses += user
        return int.from_bytes(self.data[linear : linear + size], "little")

    def write(self, linear: int, size: int, value: int, user: bool) -> None:
        self.user_accesses += user
        self.writes.append((linear, size, value))
        self.data[linear : linear + size] = value.to_bytes(size, "little")


GDT_BASE = 0x1000
LDT_BASE = 0x3000
TSS_BASE = 0x4000


def seg(type_: int, dpl: int, present: bool = True) -> SegmentDescriptor:
    return SegmentDescriptor(0, 0xFFFFF, type_, dpl=dpl, present=present, g=True, db=True)


def gate(target: int, dpl: int, present: bool = True, params: int = 0) -> GateDescriptor:
    return GateDescriptor(d.SYS_CALL_GATE32, target, 0x1234, params, dpl, present)


XR, XO, RW, RO = d.CODE_EXECUTE_READ, d.CODE_EXECUTE_ONLY, d.DATA_READ_WRITE, d.DATA_READ_ONLY
XRC, XOC = d.CODE_EXECUTE_READ_CONFORMING, d.CODE_EXECUTE_ONLY_CONFORMING

INVALID = (0x0000_8000_0000_0000).to_bytes(8, "little")  # S = 0, type 0 (reserved), present

Entry = bytes | SegmentDescriptor | SystemDescriptor | GateDescriptor

#: GDT: selector -> descriptor.
GDT: dict[int, Entry] = {
    0x08: seg(XR, 0),  # ring-0 code
    0x10: seg(RW, 0),  # ring-0 data
    0x18: seg(XR, 3),  # ring-3 code
    0x20: seg(RW, 3),  # ring-3 data
    0x28: seg(XRC, 0),  # conforming readable code, DPL 0
    0x30: seg(XO, 3),  # execute-only code
    0x38: seg(RO, 3),  # read-only data
    0x40: seg(RW, 3, present=False),
    0x48: SystemDescriptor(LDT_BASE, 0x1F, d.SYS_LDT),  # 4 entries
    0x50: SystemDescriptor(TSS_BASE, 0x67, d.SYS_TSS32_AVAILABLE),
    0x58: gate(0x60, 3, params=2),  # DPL 3 gate to ring-2 code
    0x60: seg(XR, 2),  # ring-2 code (an exported procedure)
    0x68: seg(RW, 2),  # ring-2 stack
    0x70: INVALID,
    0x78: seg(XR, 0, present=False),
    0x80: gate(0x08, 0),  # DPL 0 gate
    0x88: gate(0x60, 3, present=False),
    0x90: seg(RW, 2, present=False),
    0x98: seg(RW, 1),
    0xA0: SystemDescriptor(TSS_BASE, 0x67, d.SYS_TSS32_BUSY),
    0xA8: SystemDescriptor(LDT_BASE, 0x1F, d.SYS_LDT, present=False),
    0xB0: SystemDescriptor(TSS_BASE, 0x67, d.SYS_TSS32_AVAILABLE, present=False),
    0xB8: seg(XOC, 0),  # conforming execute-only code
    0xC0: seg(XRC, 3),  # conforming readable code, DPL 3
    0xC8: gate(0x00, 3),  # gate to the null selector
    0xD0: gate(0x70, 3),  # gate to a reserved descriptor
    0xD8: gate(0x20, 3),  # gate to a data segment
    0xE0: gate(0x1F8, 3),  # gate beyond the GDT limit
    0xE8: gate(0x78, 3),  # gate to a not-present code segment
    0xF0: GateDescriptor(d.SYS_INTERRUPT_GATE32, 0x08, 0x1000),
    0xF8: gate(0x28, 3),  # gate to conforming DPL 0 code
}
GDT_LIMIT = 0x100 - 1
BEYOND_GDT = 0x100

#: LDT (selectors with TI = 1, shown here with RPL 3).
LDT: dict[int, Entry] = {
    0x07: seg(RW, 3),
    0x0F: seg(XR, 3),
    0x17: gate(0x60, 3),
    0x1F: seg(RW, 3, present=False),
}


def _raw(entry: Entry) -> bytes:
    return entry if isinstance(entry, bytes) else entry.encode()


def make_tables() -> DescriptorTables:
    mem = FlatMemory()
    for sel, entry in GDT.items():
        mem.data[GDT_BASE + sel : GDT_BASE + sel + 8] = _raw(entry)
    for sel, entry in LDT.items():
        off = sel & 0xFFF8
        mem.data[LDT_BASE + off : LDT_BASE + off + 8] = _raw(entry)
    tables = DescriptorTables(mem, GDT_BASE, GDT_LIMIT)
    tables.ldtr = load_ldtr(tables, 0x48)
    mem.writes.clear()
    return tables


def memory(tables: DescriptorTables) -> FlatMemory:
    mem = tables.mem
    assert isinstance(mem, FlatMemory)
    return mem


def access_byte(tables: DescriptorTables, linear: int) -> int:
    return memory(tables).data[linear + 5]


Load = Callable[[DescriptorTables, int, int], SegmentCache]

# rule, load, selector, CPL, expected fault (None: the load succeeds)
CASES: list[tuple[str, Load, int, int, CpuFault | None]] = [
    # --- DS/ES/FS/GS (MOV/POP) ---
    ("data: null selector RPL 0 makes the register unusable", load_data_segment, 0x00, 3, None),
    ("data: null selector RPL 3 makes the register unusable", load_data_segment, 0x03, 3, None),
    ("data: index beyond GDT limit is #GP(sel)", load_data_segment, BEYOND_GDT | 3, 3,
     CpuFault(GP, BEYOND_GDT)),
    ("data: index beyond LDT limit is #GP(sel) with TI", load_data_segment, 0x27, 3,
     CpuFault(GP, 0x24)),
    ("data: LDT descriptor is not a data segment", load_data_segment, 0x48, 0, CpuFault(GP, 0x48)),
    ("data: TSS descriptor is not a data segment", load_data_segment, 0x50, 0, CpuFault(GP, 0x50)),
    ("data: call gate is not a data segment", load_data_segment, 0x5B, 3, CpuFault(GP, 0x58)),
    ("data: reserved type is #GP(sel)", load_data_segment, 0x70, 0, CpuFault(GP, 0x70)),
    ("data: execute-only code is not readable", load_data_segment, 0x33, 3, CpuFault(GP, 0x30)),
    ("data: conforming execute-only code is not readable", load_data_segment, 0xB8, 0,
     CpuFault(GP, 0xB8)),
    ("data: non-conforming readable code needs CPL <= DPL", load_data_segment, 0x0B, 3,
     CpuFault(GP, 0x08)),
    ("data: conforming readable code skips the privilege check", load_data_segment, 0x2B, 3,
     None),
    ("data: readable ring-3 code at CPL 3", load_data_segment, 0x1B, 3, None),
    ("data: DPL 0 data at CPL 3 is #GP(sel)", load_data_segment, 0x13, 3, CpuFault(GP, 0x10)),
    ("data: RPL > DPL is #GP(sel) even at CPL 0", load_data_segment, 0x13, 0,
     CpuFault(GP, 0x10)),
    ("data: RPL 2 > DPL 1 is #GP(sel)", load_data_segment, 0x9A, 1, CpuFault(GP, 0x98)),
    ("data: CPL 2 > DPL 1 is #GP(sel)", load_data_segment, 0x99, 2, CpuFault(GP, 0x98)),
    ("data: ring-0 may load DPL 3 data with RPL 0", load_data_segment, 0x20, 0, None),
    ("data: DPL 3 data at CPL 3 RPL 3", load_data_segment, 0x23, 3, None),
    ("data: read-only data is loadable", load_data_segment, 0x3B, 3, None),
    ("data: not present is #NP(sel)", load_data_segment, 0x43, 3, CpuFault(NP, 0x40)),
    ("data: privilege is checked before presence", load_data_segment, 0x93, 3,
     CpuFault(GP, 0x90)),
    ("data: LDT data segment", load_data_segment, 0x07, 3, None),
    ("data: LDT not present is #NP(sel) with TI", load_data_segment, 0x1F, 3,
     CpuFault(NP, 0x1C)),
    # --- SS (MOV/POP/LSS, and the outer SS of a far RET) ---
    ("stack: null selector is #GP(0)", load_stack_segment, 0x00, 0, CpuFault(GP, 0)),
    ("stack: null selector with RPL 3 is #GP(0)", load_stack_segment, 0x03, 3, CpuFault(GP, 0)),
    ("stack: index beyond GDT limit is #GP(sel)", load_stack_segment, BEYOND_GDT | 3, 3,
     CpuFault(GP, BEYOND_GDT)),
    ("stack: RPL != CPL is #GP(sel)", load_stack_segment, 0x20, 3, CpuFault(GP, 0x20)),
    ("stack: read-only data is #GP(sel)", load_stack_segment, 0x3B, 3, CpuFault(GP, 0x38)),
    ("stack: code segment is #GP(sel)", load_stack_segment, 0x1B, 3, CpuFault(GP, 0x18)),
    ("stack: system descriptor is #GP(sel)", load_stack_segment, 0x48, 0, CpuFault(GP, 0x48)),
    ("stack: DPL != CPL is #GP(sel)", load_stack_segment, 0x6B, 3, CpuFault(GP, 0x68)),
    ("stack: writable data with DPL = RPL = CPL", load_stack_segment, 0x6A, 2, None),
    ("stack: not present is #SS(sel)", load_stack_segment, 0x92, 2, CpuFault(SS, 0x90)),
    ("stack: LDT stack at CPL 3", load_stack_segment, 0x07, 3, None),
    ("stack: LDT not present is #SS(sel) with TI", load_stack_segment, 0x1F, 3,
     CpuFault(SS, 0x1C)),
    # --- inner SS from the TSS on a gate CALL / interrupt (faults are #TS) ---
    ("inner stack: null selector is #TS(0)", load_inner_stack_segment, 0x00, 2,
     CpuFault(TS, 0)),
    ("inner stack: RPL != new CPL is #TS(sel)", load_inner_stack_segment, 0x6B, 2,
     CpuFault(TS, 0x68)),
    ("inner stack: DPL != new CPL is #TS(sel)", load_inner_stack_segment, 0x12, 2,
     CpuFault(TS, 0x10)),
    ("inner stack: read-only data is #TS(sel)", load_inner_stack_segment, 0x3B, 3,
     CpuFault(TS, 0x38)),
    ("inner stack: beyond GDT limit is #TS(sel)", load_inner_stack_segment, BEYOND_GDT | 2, 2,
     CpuFault(TS, BEYOND_GDT)),
    ("inner stack: not present is #SS(sel)", load_inner_stack_segment, 0x92, 2,
     CpuFault(SS, 0x90)),
    ("inner stack: ring-2 stack for a ring-2 procedure", load_inner_stack_segment, 0x6A, 2,
     None),
    # --- far RET / IRET: the popped CS ---
    ("return: null CS is #GP(0)", load_return_code_segment, 0x00, 0, CpuFault(GP, 0)),
    ("return: beyond GDT limit is #GP(sel)", load_return_code_segment, BEYOND_GDT | 3, 3,
     CpuFault(GP, BEYOND_GDT)),
    ("return: RPL < CPL never raises privilege", load_return_code_segment, 0x08, 3,
     CpuFault(GP, 0x08)),
    ("return: data segment is #GP(sel)", load_return_code_segment, 0x23, 3, CpuFault(GP, 0x20)),
    ("return: non-conforming needs DPL = RPL", load_return_code_segment, 0x0B, 0,
     CpuFault(GP, 0x08)),
    ("return: conforming needs DPL <= RPL", load_return_code_segment, 0xC2, 2,
     CpuFault(GP, 0xC0)),
    ("return: conforming DPL 0 to RPL 3", load_return_code_segment, 0x2B, 0, None),
    ("return: same level", load_return_code_segment, 0x1B, 3, None),
    ("return: to an outer level", load_return_code_segment, 0x1B, 2, None),
    ("return: not present is #NP(sel)", load_return_code_segment, 0x78, 0, CpuFault(NP, 0x78)),
    # --- LLDT / LTR (CPL checked by the CPU; passed as 0) ---
    ("lldt: null selector leaves LDTR unusable", lambda t, s, c: load_ldtr(t, s), 0x00, 0, None),
    ("lldt: TI = 1 is #GP(sel)", lambda t, s, c: load_ldtr(t, s), 0x4C, 0, CpuFault(GP, 0x4C)),
    ("lldt: not an LDT is #GP(sel)", lambda t, s, c: load_ldtr(t, s), 0x20, 0,
     CpuFault(GP, 0x20)),
    ("lldt: beyond GDT limit is #GP(sel)", lambda t, s, c: load_ldtr(t, s), BEYOND_GDT, 0,
     CpuFault(GP, BEYOND_GDT)),
    ("lldt: not present is #NP(sel)", lambda t, s, c: load_ldtr(t, s), 0xA8, 0,
     CpuFault(NP, 0xA8)),
    ("ltr: null selector is #GP(0)", lambda t, s, c: load_task_register(t, s), 0x00, 0,
     CpuFault(GP, 0)),
    ("ltr: TI = 1 is #GP(sel)", lambda t, s, c: load_task_register(t, s), 0x54, 0,
     CpuFault(GP, 0x54)),
    ("ltr: busy TSS is #GP(sel)", lambda t, s, c: load_task_register(t, s), 0xA0, 0,
     CpuFault(GP, 0xA0)),
    ("ltr: LDT descriptor is #GP(sel)", lambda t, s, c: load_task_register(t, s), 0x48, 0,
     CpuFault(GP, 0x48)),
    ("ltr: not present is #NP(sel)", lambda t, s, c: load_task_register(t, s), 0xB0, 0,
     CpuFault(NP, 0xB0)),
    ("ltr: available 32-bit TSS", lambda t, s, c: load_task_register(t, s), 0x50, 0, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "load", "selector", "cpl", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_load_rule(
    rule: str, load: Load, selector: int, cpl: int, expected: CpuFault | None
) -> None:
    tables = make_tables()
    before = bytes(memory(tables).data)
    if expected is None:
        cache = load(tables, selector, cpl)
        assert isinstance(cache, SegmentCache)
    else:
        with pytest.raises(CpuFault) as info:
            load(tables, selector, cpl)
        assert info.value == expected
        # A refused load leaves the descriptor tables untouched (no Accessed/busy bit).
        assert bytes(memory(tables).data) == before
    assert memory(tables).user_accesses == 0  # descriptor accesses are supervisor accesses


# --- what a successful load leaves behind ------------------------------------------------


def test_null_data_load_keeps_the_selector_and_is_unusable() -> None:
    cache = load_data_segment(make_tables(), 0x0003, 3)
    assert cache.selector == 0x0003 and not cache.valid


def test_data_load_fills_the_cache_from_the_descriptor() -> None:
    tables = make_tables()
    cache = load_data_segment(tables, 0x23, 3)
    assert (cache.selector, cache.base, cache.limit, cache.dpl) == (0x23, 0, 0xFFFFFFFF, 3)
    assert cache.valid and cache.present and cache.writable and cache.db and cache.g
    assert cache.type == d.DATA_READ_WRITE_ACCESSED


def test_segment_load_sets_the_accessed_bit_in_memory() -> None:
    tables = make_tables()
    assert access_byte(tables, GDT_BASE + 0x20) == 0xF2
    load_data_segment(tables, 0x23, 3)
    assert access_byte(tables, GDT_BASE + 0x20) == 0xF3
    assert memory(tables).writes == [(GDT_BASE + 0x20 + 5, 1, 0xF3)]


def test_accessed_bit_already_set_is_not_rewritten() -> None:
    tables = make_tables()
    load_data_segment(tables, 0x23, 3)
    memory(tables).writes.clear()
    load_data_segment(tables, 0x23, 3)
    assert memory(tables).writes == []


def test_ldt_segment_load_sets_the_accessed_bit_in_the_ldt() -> None:
    tables = make_tables()
    load_stack_segment(tables, 0x07, 3)
    assert access_byte(tables, LDT_BASE) == 0xF3


def test_ldt_reference_with_null_ldtr_is_gp_selector() -> None:
    tables = make_tables()
    tables.ldtr = load_ldtr(tables, 0)
    with pytest.raises(CpuFault) as info:
        load_data_segment(tables, 0x07, 3)
    assert info.value == CpuFault(GP, 0x04)


def test_descriptor_partly_beyond_the_gdt_limit_is_gp_selector() -> None:
    tables = make_tables()
    tables.gdtr_limit = 0x24  # entry 0x20 needs bytes 0x20..0x27
    with pytest.raises(CpuFault) as info:
        load_data_segment(tables, 0x23, 3)
    assert info.value == CpuFault(GP, 0x20)


def test_lldt_loads_base_and_limit_of_the_ldt() -> None:
    cache = load_ldtr(make_tables(), 0x48)
    assert (cache.base, cache.limit, cache.s, cache.valid) == (LDT_BASE, 0x1F, False, True)


def test_ltr_marks_the_tss_busy_in_memory() -> None:
    tables = make_tables()
    cache = load_task_register(tables, 0x50)
    assert access_byte(tables, GDT_BASE + 0x50) == 0x8B
    assert cache.type == d.SYS_TSS32_BUSY and cache.base == TSS_BASE and cache.limit == 0x67
    with pytest.raises(CpuFault) as info:  # a second LTR finds it busy
        load_task_register(tables, 0x50)
    assert info.value == CpuFault(GP, 0x50)


def test_inner_stack_is_read_from_the_tss_for_the_new_level() -> None:
    tables = make_tables()
    tss = Tss32(esp0=0xC0008000, ss0=0x10, esp2=0x00027000, ss2=0x6A)
    memory(tables).data[TSS_BASE : TSS_BASE + 104] = tss.encode()
    tr = load_task_register(tables, 0x50)
    assert inner_stack_from_tss(tables.mem, tr, 2) == (0x6A, 0x00027000)
    assert inner_stack_from_tss(tables.mem, tr, 0) == (0x10, 0xC0008000)


def test_inner_stack_beyond_the_tss_limit_is_ts_tr_selector() -> None:
    tr = SegmentCache.from_descriptor(
        0x50, SystemDescriptor(TSS_BASE, 0x18, d.SYS_TSS32_BUSY)
    )  # ESP2/SS2 need bytes 0x14..0x19
    with pytest.raises(CpuFault) as info:
        inner_stack_from_tss(make_tables().mem, tr, 2)
    assert info.value == CpuFault(TS, 0x50)


def test_inner_stack_null_selector_for_an_interrupt_is_ts_ext() -> None:
    with pytest.raises(CpuFault) as info:
        load_inner_stack_segment(make_tables(), 0, 0, ext=True)
    assert info.value == CpuFault(TS, 1)


# --- far CALL/JMP straight to a code segment ---------------------------------------------

DIRECT = [
    ("null selector is #GP(0)", 0x00, 3, CpuFault(GP, 0), None),
    ("beyond GDT limit is #GP(sel)", BEYOND_GDT, 0, CpuFault(GP, BEYOND_GDT), None),
    ("non-conforming with DPL = CPL", 0x1B, 3, None, 0x1B),
    ("non-conforming RPL < CPL: CS.RPL becomes CPL", 0x18, 3, None, 0x1B),
    ("non-conforming RPL > CPL is #GP(sel)", 0x0B, 0, CpuFault(GP, 0x08), None),
    ("non-conforming DPL < CPL is #GP(sel)", 0x08, 3, CpuFault(GP, 0x08), None),
    ("non-conforming DPL > CPL is #GP(sel)", 0x18, 0, CpuFault(GP, 0x18), None),
    ("conforming DPL < CPL runs at the caller's CPL", 0x28, 3, None, 0x2B),
    ("conforming DPL > CPL is #GP(sel)", 0xC0, 0, CpuFault(GP, 0xC0), None),
    ("not present is #NP(sel)", 0x78, 0, CpuFault(NP, 0x78), None),
    ("data segment is #GP(sel)", 0x23, 3, CpuFault(GP, 0x20), None),
    ("LDT descriptor is #GP(sel)", 0x48, 0, CpuFault(GP, 0x48), None),
    ("reserved type is #GP(sel)", 0x70, 0, CpuFault(GP, 0x70), None),
    ("LDT code segment", 0x0F, 3, None, 0x0F),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "selector", "cpl", "fault", "new_cs"), DIRECT, ids=[c[0] for c in DIRECT]
)
def test_direct_far_transfer_rule(
    rule: str, selector: int, cpl: int, fault: CpuFault | None, new_cs: int | None
) -> None:
    tables = make_tables()

    def transfer() -> SegmentCache:
        desc = load_far_target(tables, selector)
        return check_direct_code_segment(tables, selector, desc, cpl)

    if fault is not None:
        with pytest.raises(CpuFault) as info:
            transfer()
        assert info.value == fault
    else:
        cache = transfer()
        assert cache.selector == new_cs and cache.rpl == cpl and cache.executable


# --- far CALL/JMP through a call gate ----------------------------------------------------

GATES = [
    # rule, gate selector, CPL, jump, fault, new CS selector
    ("call gate to inner ring raises CPL to the code DPL", 0x5B, 3, False, None, 0x62),
    ("jmp through a gate never changes CPL", 0x5B, 3, True, CpuFault(GP, 0x60), None),
    ("jmp through a gate to conforming code keeps CPL", 0xFB, 3, True, None, 0x2B),
    ("call gate DPL < CPL is #GP(gate)", 0x80, 3, False, CpuFault(GP, 0x80), None),
    ("call gate DPL < RPL is #GP(gate)", 0x83, 0, False, CpuFault(GP, 0x80), None),
    ("call gate not present is #NP(gate)", 0x8B, 3, False, CpuFault(NP, 0x88), None),
    ("gate to a null selector is #GP(0)", 0xCB, 3, False, CpuFault(GP, 0), None),
    ("gate to a reserved descriptor is #GP(code sel)", 0xD3, 3, False, CpuFault(GP, 0x70),
     None),
    ("gate to a data segment is #GP(code sel)", 0xDB, 3, False, CpuFault(GP, 0x20), None),
    ("gate beyond the GDT limit is #GP(code sel)", 0xE3, 3, False, CpuFault(GP, 0x1F8), None),
    ("gate to a not-present segment is #NP(code sel)", 0xEB, 3, False, CpuFault(NP, 0x78),
     None),
    ("gate to code with DPL > CPL is #GP(code sel)", 0x59, 1, False, CpuFault(GP, 0x60), None),
    ("gate to same-level code", 0x5A, 2, False, None, 0x62),
    ("LDT call gate to a ring-2 procedure", 0x17, 3, False, None, 0x62),
    ("interrupt gate is not a far CALL target", 0xF3, 3, False, CpuFault(GP, 0xF0), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "gate_selector", "cpl", "jump", "fault", "new_cs"), GATES, ids=[c[0] for c in GATES]
)
def test_call_gate_rule(
    rule: str,
    gate_selector: int,
    cpl: int,
    jump: bool,
    fault: CpuFault | None,
    new_cs: int | None,
) -> None:
    tables = make_tables()

    def transfer() -> SegmentCache:
        desc = load_far_target(tables, gate_selector)
        assert isinstance(desc, GateDescriptor)
        check_call_gate(desc, gate_selector, cpl)
        return load_gate_code_segment(tables, desc.selector, cpl, jump=jump)

    if fault is not None:
        with pytest.raises(CpuFault) as info:
            transfer()
        assert info.value == fault
    else:
        cache = transfer()
        assert cache.selector == new_cs and cache.executable and cache.present


def test_call_gate_carries_its_parameter_count() -> None:
    desc = load_far_target(make_tables(), 0x5B)
    assert isinstance(desc, GateDescriptor)
    assert (desc.param_count, desc.selector, desc.offset) == (2, 0x60, 0x1234)


@pytest.mark.parametrize(
    ("rule", "selector", "fault", "new_cs"),
    [
        ("interrupt to ring-0 code from ring 3", 0x08, None, 0x08),
        ("interrupt gate to a null selector is #GP(EXT)", 0x00, CpuFault(GP, 1), None),
        ("interrupt gate to a not-present segment is #NP(sel+EXT)", 0x78, CpuFault(NP, 0x79),
         None),
        ("interrupt gate to a data segment is #GP(sel+EXT)", 0x10, CpuFault(GP, 0x11), None),
        ("interrupt gate beyond the GDT limit is #GP(sel+EXT)", BEYOND_GDT,
         CpuFault(GP, BEYOND_GDT | 1), None),
    ],
)  # fmt: skip
def test_external_interrupt_code_segment_rule(
    rule: str, selector: int, fault: CpuFault | None, new_cs: int | None
) -> None:
    tables = make_tables()
    if fault is not None:
        with pytest.raises(CpuFault) as info:
            load_gate_code_segment(tables, selector, 3, ext=True)
        assert info.value == fault
    else:
        assert load_gate_code_segment(tables, selector, 3, ext=True).selector == new_cs


# --- far RET/IRET to an outer level nulls data registers the caller may not hold --------


@pytest.mark.parametrize(
    ("rule", "cache", "new_cpl", "nulled"),
    [
        ("ring-0 data is nulled on return to ring 3", SegmentCache.flat(0x10, 0, False), 3, True),
        ("ring-2 data is nulled on return to ring 3", SegmentCache.flat(0x68, 2, False), 3, True),
        ("ring-3 data survives", SegmentCache.flat(0x23, 3, False), 3, False),
        ("ring-2 data survives a return to ring 2", SegmentCache.flat(0x68, 2, False), 2, False),
        ("non-conforming ring-2 code is nulled", SegmentCache.flat(0x60, 2, True), 3, True),
        ("a null register stays as it is", SegmentCache.null(0), 3, False),
    ],
)  # fmt: skip
def test_outer_return_clearing_rule(
    rule: str, cache: SegmentCache, new_cpl: int, nulled: bool
) -> None:
    assert invalid_after_outer_return(cache, new_cpl) == nulled


def test_conforming_code_in_ds_survives_an_outer_return() -> None:
    cache = load_data_segment(make_tables(), 0x28, 0)
    assert cache.conforming and not invalid_after_outer_return(cache, 3)
