"""The far-transfer and interrupt-delivery speed work changes no simulated result.

Descriptors are decoded through a host-side memo keyed by their 64-bit value
(``lavsim.mmu.segmentation.decode_cached``), segment-register caches are copied from a
template, and the stack blocks of far transfers use the MMU's host fast path in one go. The
memo is on with the CPU's ``decode_cache`` (the default) and off without it.

A guest system runs call gates from ring 3 to ring 2 (GDT and LDT gates, two parameters,
RETF 8), direct far CALL/RETF and JMP through a gate at the same privilege, INT n to ring 0
and IRETD, LLDT, exceptions delivered through the IDT (#NP from a not-present LDT code
segment, #GP from a data segment whose DPL the kernel toggles) and timer interrupts taken at
rings 3 and 2, while the guest kernel rewrites GDT and LDT entries between calls (a gate's
offset, a segment's present bit, a segment's DPL, with the Accessed bit cleared) and the host
rewrites descriptors through ``Machine.load`` between pieces of the run (a gate's offset, an
IDT gate's type, a present bit). With every cache on and every cache off the runs are
identical: cycles, instructions, registers, segment caches, memory, the faults delivered, the
stop reasons, every TLB's contents in LRU order and the MMU's statistics.
"""

from __future__ import annotations

from typing import Any

import pytest
from cpu_harness import CODE as BARE_CODE
from cpu_harness import PAGE_DIR, STACK_TOP, Bare, identity_tables

from lavsim.cpu import interrupts
from lavsim.cpu.asm import assemble
from lavsim.cpu.state import CR0_PE, CR0_PG, CS, DS, ES, ESP, FS, GS, SS
from lavsim.machine import Machine, MachineConfig
from lavsim.mmu import segmentation
from lavsim.mmu.descriptors import (
    CODE_EXECUTE_READ,
    DATA_READ_WRITE,
    SYS_CALL_GATE32,
    SYS_INTERRUPT_GATE32,
    SYS_LDT,
    SYS_TRAP_GATE32,
    SYS_TSS32_AVAILABLE,
    TSS32_SIZE,
    GateDescriptor,
    SegmentDescriptor,
    SystemDescriptor,
    Tss32,
    decode_descriptor_qword,
)
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.mmu.tlb import TLBConfig

MEM = 8 << 20
GDT, IDT, TSS, LDT = 0x10000, 0x11000, 0x12000, 0x13000
KCODE, UCODE, PCODE, KDATA = 0x100000, 0x101000, 0x102000, 0x180000
STACK0, STACK2, STACK3 = 0x1F0000, 0x1E0000, 0x1D0000

CODE0, DATA0, CODE3, DATA3, TSS_SEL, CODE2, DATA2 = 0x08, 0x10, 0x1B, 0x23, 0x28, 0x32, 0x3A
GATE_A, LDT_SEL, VIS, CODE3B, JGATE = 0x43, 0x48, 0x53, 0x5B, 0x63
LGATE, CODE2L = 0x07, 0x0E  # LDT: a call gate and the ring-2 code segment it names

CONFIGS = {
    "pentium": MMUConfig.pentium(),
    "i486": MMUConfig.i486(),
    # Four sets of one way, unified: descriptor, stack and code pages keep evicting each other.
    "tiny": MMUConfig(tlb=TLBConfig(4, 1)),
}


def flat(dpl: int, code: bool) -> SegmentDescriptor:
    return SegmentDescriptor(0, 0xFFFFF, CODE_EXECUTE_READ if code else DATA_READ_WRITE, dpl,
                             g=True)


def gate(selector: int, offset: int, params: int = 0) -> GateDescriptor:
    return GateDescriptor(SYS_CALL_GATE32, selector, offset, params, 3)


def high_dword(desc: SegmentDescriptor) -> int:
    return desc.qword() >> 32


KERNEL = """
kstart:
    mov ax, LDT_SEL
    lldt ax
    push DATA3
    push STACK3
    push 0x202
    push CODE3
    push UENTRY
    iretd

k40:                                  ; INT 0x40 from ring 3: edit the tables
    push eax
    inc dword ptr [KDATA]
    mov eax, [KDATA]
    test eax, 1
    jz k40_even
    mov word ptr [GDT + 8 * 8], PROCB & 0xFFFF
    jmp k40_b
k40_even:
    mov word ptr [GDT + 8 * 8], PROCA & 0xFFFF
k40_b:
    test eax, 2
    jz k40_c
    and byte ptr [LDT + 8 + 5], 0x7F  ; the LDT's ring-2 code segment: not present
k40_c:
    mov dword ptr [GDT + 10 * 8 + 4], VIS_DPL0
    pop eax
    iretd

knp:                                  ; #NP: make the LDT code segment present again
    or byte ptr [LDT + 8 + 5], 0x80
    inc dword ptr [KDATA + 4]
    add esp, 4
    iretd

kgp:                                  ; #GP: give the data segment DPL 3 (not accessed)
    mov dword ptr [GDT + 10 * 8 + 4], VIS_DPL3
    inc dword ptr [KDATA + 8]
    add esp, 4
    iretd

ktimer:
    push eax
    mov al, 0x20
    out 0x20, al
    inc dword ptr [KDATA + 12]
    pop eax
    iretd

kend:
    hlt
    jmp kend
"""

USER = """
uentry:
    mov ax, DATA3                     ; the IRETD to ring 3 nulled DS and ES
    mov ds, ax
    mov es, ax
    mov ecx, ITERATIONS
L:
    push eax
    push ebx
    call GATE_A:0
    call LGATE:0
    int 0x40
    mov ax, VIS
    mov ds, ax
    mov ax, DATA3
    mov ds, ax
    call CODE3B:far3
    jmp JGATE:0
back:
    dec ecx
    jnz L
    int 0x41

far3:
    add esi, 7
    retf
jtarget:
    inc edi
    jmp CODE3:back
"""

PROCS = """
procA:
    mov eax, [esp + 8]
    add eax, [esp + 12]
    inc ebx
    retf 8
    times 16 - ($ - procA) nop
procB:
    sub eax, [esp + 8]
    add ebx, 3
    retf 8
    times 32 - ($ - procA) nop
procL:
    add edx, 3
    retf
"""


def _equ(values: dict[str, int], source: str) -> str:
    return "".join(f".equ {k}, {v:#x}\n" for k, v in values.items()) + source


def build(config: str, caches: bool, iterations: int, timer: int) -> Machine:
    """The guest system on a Machine, at ring 0 before LLDT; all caches on or all off."""
    m = Machine(MachineConfig(profile="pentium", memory_size=MEM, mmu=CONFIGS[config],
                              timer_period=timer))
    cpu = m.cpu
    cpu.decode_cache = caches
    cpu.fast = caches
    cpu.far_fast = caches
    mem = m.memory
    identity_tables(mem, MEM)
    cr0 = CR0_PE | (1 << 4) | CR0_PG
    cpu.cr0 = cr0
    cpu.cr3 = PAGE_DIR
    m.mmu.load_cr3(PAGE_DIR)
    m.mmu.set_controls(cr0, 0)

    procs = assemble(PROCS, PCODE)
    proc_a, proc_b, proc_l = (procs.symbols[k] for k in ("procA", "procB", "procL"))
    consts = {
        "LDT_SEL": LDT_SEL, "DATA3": DATA3, "CODE3": CODE3, "STACK3": STACK3, "GDT": GDT,
        "LDT": LDT, "KDATA": KDATA, "PROCA": proc_a, "PROCB": proc_b,
        "VIS_DPL0": high_dword(flat(0, False)), "VIS_DPL3": high_dword(flat(3, False)),
        "GATE_A": GATE_A, "LGATE": LGATE, "VIS": VIS, "CODE3B": CODE3B, "JGATE": JGATE,
        "ITERATIONS": iterations,
    }
    user = assemble(_equ(consts, USER), UCODE)
    consts["UENTRY"] = user.symbols["uentry"]
    kernel = assemble(_equ(consts, KERNEL), KCODE)
    for image in (kernel, user, procs):
        m.load(image.origin, image.code)

    gdt: dict[int, Any] = {
        CODE0: flat(0, True), DATA0: flat(0, False), CODE3: flat(3, True),
        DATA3: flat(3, False), TSS_SEL: SystemDescriptor(TSS, TSS32_SIZE - 1,
                                                         SYS_TSS32_AVAILABLE | 2),
        CODE2: flat(2, True), DATA2: flat(2, False), GATE_A: gate(CODE2, proc_a, 2),
        LDT_SEL: SystemDescriptor(LDT, 0xFF, SYS_LDT), VIS: flat(3, False),
        CODE3B: flat(3, True), JGATE: gate(CODE3, user.symbols["jtarget"]),
    }
    for selector, desc in gdt.items():
        m.load(GDT + (selector & ~7), desc.encode())
    m.load(LDT + (LGATE & ~7), gate(CODE2L, proc_l).encode())
    m.load(LDT + (CODE2L & ~7), flat(2, True).encode())
    idt = {
        0x0B: GateDescriptor(SYS_INTERRUPT_GATE32, CODE0, kernel.symbols["knp"]),
        0x0D: GateDescriptor(SYS_INTERRUPT_GATE32, CODE0, kernel.symbols["kgp"]),
        0x20: GateDescriptor(SYS_INTERRUPT_GATE32, CODE0, kernel.symbols["ktimer"]),
        0x40: GateDescriptor(SYS_INTERRUPT_GATE32, CODE0, kernel.symbols["k40"], dpl=3),
        0x41: GateDescriptor(SYS_INTERRUPT_GATE32, CODE0, kernel.symbols["kend"], dpl=3),
    }
    for vector, desc in idt.items():
        m.load(IDT + 8 * vector, desc.encode())
    m.load(TSS, Tss32(esp0=STACK0, ss0=DATA0, esp2=STACK2, ss2=DATA2).encode())

    cpu.gdtr_base, cpu.gdtr_limit = GDT, 0x7FF
    cpu.idtr_base, cpu.idtr_limit = IDT, 0x7FF
    cpu.tr = SegmentCache.from_descriptor(TSS_SEL, gdt[TSS_SEL])
    cpu.seg[CS] = SegmentCache.from_descriptor(CODE0, gdt[CODE0])
    for s in (DS, ES, SS, FS, GS):
        cpu.seg[s] = SegmentCache.from_descriptor(DATA0, gdt[DATA0])
    cpu.set_cpl(0)
    cpu.regs[ESP] = STACK0
    cpu.eip = kernel.origin
    return m


def host_edit(m: Machine, k: int) -> None:
    """What a host tool might do between two pieces of a run, through ``Machine.load``."""
    procs = assemble(PROCS, PCODE)
    # GATE_A's offset (its low word: both procedures sit in one 64 KiB block).
    target = procs.symbols["procB" if k % 2 else "procA"]
    m.load(GDT + (GATE_A & ~7), target.to_bytes(4, "little")[:2])
    # IDT 0x40: an interrupt gate or a trap gate (IF stays set in the handler).
    raw = m.memory.read(IDT + 8 * 0x40, 8)
    high = int.from_bytes(raw[4:], "little") & ~0xF00
    high |= (SYS_TRAP_GATE32 if k % 3 == 1 else SYS_INTERRUPT_GATE32) << 8
    m.load(IDT + 8 * 0x40 + 4, high.to_bytes(4, "little"))
    # The LDT code segment not present (its #NP handler brings it back).
    if k % 4 == 2:
        m.load(LDT + (CODE2L & ~7) + 5, bytes([m.memory.read8(LDT + (CODE2L & ~7) + 5) & 0x7F]))


def run_system(config: str, caches: bool, iterations: int = 40, timer: int = 0,
               piece: int | None = None, clear_memo: bool = False) -> tuple[object, ...]:
    """Run the system to its end (or a bound) and return everything simulated."""
    if clear_memo:
        segmentation._MEMO.clear()
    m = build(config, caches, iterations, timer)
    faults: list[tuple[int, int | None, int, int, int]] = []
    original = interrupts.handle_fault

    def record(cpu: Any, fault: Any) -> None:
        faults.append((fault.vector, fault.error_code, cpu.eip, cpu.cpl, cpu.tsc))
        original(cpu, fault)

    stops: list[tuple[str, int, int]] = []
    interrupts.handle_fault = record  # type: ignore[assignment]
    try:
        if piece is None:
            r = m.run(max_instructions=200_000)
            stops.append((r.reason, r.cycles, r.instructions))
        else:
            for k in range(100_000 // piece):
                r = m.run(max_instructions=piece)
                stops.append((r.reason, r.cycles, r.instructions))
                if r.reason != "instruction_limit":
                    break
                host_edit(m, k)
    finally:
        interrupts.handle_fault = original  # type: ignore[assignment]
    cpu = m.cpu
    tlbs = tuple((n, t.contents()) for n, t in m.mmu.tlbs.items())
    return (list(cpu.regs), cpu.get_eflags(), cpu.eip, cpu.cpl, cpu.tsc, cpu.instructions,
            [s.copy() for s in cpu.seg], cpu.ldtr.copy(), cpu.tr.copy(), m.memory.digest(),
            m.mmu.stats, tlbs, faults, stops, m.pic.acknowledged, cpu.halted)



@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_the_system_runs_identically_with_caches_on_and_off(config: str) -> None:
    on = run_system(config, True)
    off = run_system(config, False)
    assert on == off
    # It ran to its end, and through every path it was written for.
    faults = on[12]
    assert isinstance(faults, list)
    vectors = {f[0] for f in faults}
    assert vectors == {0x0B, 0x0D}, vectors
    assert on[-1] is True  # halted in kend
    regs = on[0]
    assert isinstance(regs, list) and regs[1] == 0  # ECX counted down


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_with_timer_interrupts_at_rings_3_and_2(config: str) -> None:
    for period in (397, 1201):
        on = run_system(config, True, timer=period)
        off = run_system(config, False, timer=period)
        assert on == off
        assert isinstance(on[14], int) and on[14] > 10  # timer interrupts were taken


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_with_host_side_descriptor_edits_between_pieces(config: str) -> None:
    for piece in (37, 101):
        on = run_system(config, True, iterations=60, piece=piece)
        off = run_system(config, False, iterations=60, piece=piece)
        assert on == off
        # The memo starting empty or full makes no difference either.
        assert run_system(config, True, iterations=60, piece=piece, clear_memo=True) == on


def test_a_tiny_memo_limit_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = run_system("tiny", False, timer=1499)
    monkeypatch.setattr(segmentation, "MEMO_LIMIT", 2)
    segmentation._MEMO.clear()
    assert run_system("tiny", True, timer=1499) == reference
    assert len(segmentation._MEMO) <= 2


def test_decoded_records_agree_with_the_descriptors() -> None:
    """For many 64-bit values (every type, S, DPL, P, G, D/B, A combination over a few bases
    and limits): the record's fields are the descriptor's, and its template is exactly the
    cache the straightforward construction gives."""
    values = []
    for type_ in range(16):
        for s in (0, 1):
            for dpl in range(4):
                for p in (0, 1):
                    for flags in (0x0, 0x4, 0x8, 0xC, 0x1, 0x2):
                        for base, limit in ((0, 0xFFFFF), (0x12345678, 0x00ABC), (0xFFFF0000, 0)):
                            low = ((base & 0xFFFF) << 16) | (limit & 0xFFFF)
                            high = (((base >> 16) & 0xFF) | (base & 0xFF000000)
                                    | (limit & 0xF0000) | (flags << 20) | (type_ << 8)
                                    | (s << 12) | (dpl << 13) | (p << 15))
                            values.append(low | (high << 32))
    for value in values:
        desc = decode_descriptor_qword(value)
        for d in (segmentation.decode_cached(value), segmentation.decode_cached(value, False)):
            assert d.desc == desc
            assert d.dpl == desc.dpl and d.present == desc.present
            assert d.call_gate == (isinstance(desc, GateDescriptor) and desc.is_call_gate)
            if isinstance(desc, SegmentDescriptor):
                assert d.seg and d.code == desc.is_code and d.conforming == desc.conforming
                assert d.readable == desc.readable and d.writable == desc.writable
                assert d.accessed == desc.accessed
                expected = SegmentCache.from_descriptor(0x1234, desc)
                expected.type |= 1
                expected.refresh()
                got = d.template.with_selector(0x1234)
                assert got == expected
                assert [getattr(got, f) for f in SegmentCache.__slots__] == [
                    getattr(expected, f) for f in SegmentCache.__slots__]
                assert got is not d.template
            else:
                assert not (d.seg or d.code or d.conforming or d.readable or d.writable
                            or d.accessed)
    assert segmentation.decode_cached(values[7]) is segmentation.decode_cached(values[7])


# --- writes made by far transfers and descriptor loads are seen by the decoded-code cache ---


def _bare_run(code: bytes, caches: bool, gdt: tuple[int, bytes] | None = None,
              gdtr: tuple[int, int] | None = None) -> tuple[object, ...]:
    b = Bare(decode_cache=caches, config=MMUConfig.i486())
    b.cpu.fast = caches
    b.cpu.far_fast = caches
    b.mem.write(BARE_CODE, code)
    if gdt is not None:
        b.mem.write(*gdt)
    if gdtr is not None:
        b.cpu.gdtr_base, b.cpu.gdtr_limit = gdtr
    b.run(max_instructions=100)
    cpu = b.cpu
    tlbs = tuple((n, t.contents()) for n, t in b.mmu.tlbs.items())
    return (list(cpu.regs), cpu.get_eflags(), cpu.eip, cpu.tsc, cpu.instructions,
            b.mem.digest(), b.mmu.stats, tlbs, [(f.vector, f.error_code, e) for f, e in b.faults])


def test_a_far_call_frame_written_over_cached_code_is_seen() -> None:
    # sub (at +0x38: inc ebx; nop x3; ret) runs once and is cached; a far CALL with ESP at
    # +0x3C pushes CS (zero-extended: 08 00 00 00) over its first four bytes, so the second
    # call runs "or [eax], al; add [eax], al; ret" and EBX stays 1.
    code = bytearray(b"\x0f\x0b" * 0x40)
    def put(at: int, data: bytes) -> None:
        code[at:at + len(data)] = data
    put(0x00, b"\xbc" + STACK_TOP.to_bytes(4, "little"))                  # mov esp, STACK_TOP
    put(0x05, b"\xe8" + (0x38 - 0x0A).to_bytes(4, "little"))              # call sub
    put(0x0A, b"\xbc" + (BARE_CODE + 0x3C).to_bytes(4, "little"))         # mov esp, CODE+0x3C
    put(0x0F, b"\x9a" + (BARE_CODE + 0x24).to_bytes(4, "little") + b"\x08\x00")  # call 08:ft
    put(0x16, b"\xbc" + STACK_TOP.to_bytes(4, "little"))                  # mov esp, STACK_TOP
    put(0x1B, b"\xe8" + (0x38 - 0x20).to_bytes(4, "little"))              # call sub
    put(0x20, b"\x0f\x0b")                                                # ud2
    put(0x24, b"\xcb")                                                    # ft: retf
    put(0x38, b"\x43\x90\x90\x90\xc3")                                    # sub
    gdt = (0x5008, flat(0, True).encode())
    on = _bare_run(bytes(code), True, gdt, (0x5000, 0xF))
    off = _bare_run(bytes(code), False, gdt, (0x5000, 0xF))
    assert on == off
    regs = on[0]
    assert isinstance(regs, list) and regs[3] == 1
    assert on[-1] == [(6, None, BARE_CODE + 0x20)]  # the UD2, nothing else


def test_an_accessed_bit_written_into_cached_code_is_seen() -> None:
    # A data descriptor whose bytes are also code: 90 90 90 90 90 92 40 90 is
    # "nop x5; xchg edx, eax; inc eax; nop"; loading it into DS sets its Accessed bit, which
    # turns the 92 into 93 "xchg ebx, eax" -- for code already run, and cached, once.
    desc = bytes.fromhex("9090909090924090")
    code = bytearray(b"\x0f\x0b" * 0x90)
    def put(at: int, data: bytes) -> None:
        code[at:at + len(data)] = data
    put(0x00, b"\xb8\x01\x00\x00\x00\xba\x02\x00\x00\x00\xbb\x03\x00\x00\x00")  # eax,edx,ebx
    put(0x0F, b"\xe8" + (0x100 - 0x14).to_bytes(4, "little"))   # call CODE+0x100
    put(0x14, b"\x66\xb8\x10\x00\x8e\xd8")                        # mov ax, 0x10 ; mov ds, ax
    put(0x1A, b"\xe8" + (0x100 - 0x1F).to_bytes(4, "little"))   # call CODE+0x100
    put(0x1F, b"\x0f\x0b")                                        # ud2
    put(0x100, desc + b"\xc3")                                    # the descriptor, then ret
    gdtr = (BARE_CODE + 0x100 - 0x10, 0x17)
    on = _bare_run(bytes(code), True, None, gdtr)
    off = _bare_run(bytes(code), False, None, gdtr)
    assert on == off
    regs = on[0]
    assert isinstance(regs, list) and (regs[0], regs[2], regs[3]) == (4, 1, 0x10)


def test_exception_frames_running_down_over_cached_code_are_seen() -> None:
    # Without DS and ES reloaded at ring 3 the #GP handler faults on itself: every delivery
    # pushes another frame, the ring-0 stack runs down over the kernel's (cached) code, and
    # the machine ends in a triple fault -- at the same cycle with every cache on or off.
    user = USER
    try:
        globals()["USER"] = USER.replace("    mov ds, ax\n    mov es, ax\n", "", 1)
        on = run_system("i486", True)
        off = run_system("i486", False)
    finally:
        globals()["USER"] = user
    assert on == off
    stops = on[13]
    assert isinstance(stops, list) and stops[0][0] == "triple_fault"
