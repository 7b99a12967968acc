"""The flattened far-transfer path (``cpu.far_fast``) changes no simulated result.

``lavsim.cpu.far`` runs far CALL through call gates and far RET on a flattened path when the
CPU's ``far_fast`` is on (the executor's default): the reference path's descriptor, TSS and
stack accesses in its order, made through the MMU's host fast path where it serves the page,
with the checks of descriptors that pass them written inline. Each scenario below is run with
it on and off and everything simulated is compared: cycles, instructions, registers, EFLAGS,
segment caches, LDTR and TR, memory, the fault (vector, error code, EIP, CR2), every TLB's
contents in LRU order, the MMU's statistics, the issue model's state and, with a cache board
attached as a tracer, the board's state.

The guest: ring-3 code (or ring-2 code for the inner-to-ring-0 case) calls through call gates
to rings 2, 1 and 0 with 2, 1 and 5 parameters and through an LDT gate, each procedure
returning with RETF imm to the outer ring; a gate to a DPL-3 segment, a gate to a conforming
segment, a direct far call (same privilege) and a JMP through a gate; it edits descriptors and
the TSS while it runs (a gate's offset, Accessed bits, ESPn), or has a fault injected at some
iteration (not-present gate, code or stack segment, a stack segment's DPL or limit, a gate
offset past the code limit, a corrupted return SS), or lives on tables and stacks that sit
unaligned, across page boundaries or on unmapped pages. Runs are cut into pieces (with host
edits of descriptors, GDTR, LDT descriptors and TR between them) and under several TLB
shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cpu_harness import Bare

from lavsim.boards import get_board
from lavsim.cpu import far
from lavsim.cpu.asm import assemble
from lavsim.cpu.state import CS, DS, ES, ESP, FS, GS, SS
from lavsim.faults import GP, NP, PF, TS
from lavsim.faults import SS as SS_VEC
from lavsim.mmu.descriptors import (
    CODE_EXECUTE_READ,
    CODE_EXECUTE_READ_CONFORMING,
    DATA_READ_WRITE,
    SYS_CALL_GATE32,
    SYS_TSS32_AVAILABLE,
    TSS32_SIZE,
    GateDescriptor,
    SegmentDescriptor,
    SystemDescriptor,
    Tss32,
)
from lavsim.mmu.mmu import Access, MMUConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.mmu.tlb import TLBConfig
from lavsim.timing import PENTIUM, get_profile

UCODE, PCODE = 0x100000, 0x101000
STACK3, STACK2, STACK1, STACK0 = 0x1D0000, 0x1E0000, 0x1E8000, 0x1F0000

# GDT selectors (with their RPL).
CODE0, DATA0, CODE3, DATA3, TSS_SEL = 0x08, 0x10, 0x1B, 0x23, 0x28
CODE2, DATA2, CODE1, DATA1 = 0x32, 0x3A, 0x41, 0x49
GATE2, GATE1, GATE0, GATE3, GATEC, LDT_SEL, CONF0, JGATE = (
    0x53, 0x5B, 0x63, 0x6B, 0x73, 0x78, 0x80, 0x8B,
)
#: A gate at GDT index 18: on the GDT's second page when the GDT is placed at a page end.
FAR_GATE = 0x8B + 8
#: A second ring-2 stack segment (index 19): based 4 KiB up, its limit a page shorter.
DATA2B = 0x9A
#: A DPL-1 gate to ring 0 (index 20; RPL 1).
GATE01 = 0xA1
#: LDT: a call gate, the ring-2 code segment it names, a ring-3 code segment.
LGATE, LCODE2, LCODE3 = 0x07, 0x0E, 0x17

CONFIGS = {
    "pentium": MMUConfig.pentium(),
    "i486": MMUConfig.i486(),
    # Four sets of one way, unified: descriptor, stack and code pages keep evicting each other.
    "tiny": MMUConfig(tlb=TLBConfig(4, 1)),
}

PROCS = """
proc2:                      ; ring 2, two parameters; calls itself once through GATE2
    mov eax, [esp + 8]      ; (the same gate selector at CPL 2: a same-privilege call)
    add ebx, [esp + 12]
    test ebp, 0x1000000
    jnz proc2_out
    PATCH2
    or ebp, 0x1000000
    push eax
    push ebx
    call GATE2:0
    and ebp, 0xFEFFFFFF
proc2_out:
    retf 8
proc2b:
    sub eax, [esp + 12]
    retf 8
proc1:                      ; ring 1, one parameter; ES left with a ring-1 segment;
    add esi, [esp + 8]      ; calls ring 0 through a DPL-1 gate
    mov ax, DATA1
    mov es, ax
    call GATE01:0
    retf 4
proc01:
    inc edx
    retf
proc0:                      ; ring 0, five parameters; FS left with a ring-0 segment
    add edi, [esp + 24]
    mov ax, DATA0
    mov fs, ax
    retf 20
proc3:                      ; same privilege through a gate
    inc ebp
    retf
procc:                      ; conforming ring-0 code, entered at CPL 3
    add ebp, 2
    retf
procl:                      ; ring 2 through the LDT gate
    add edx, 3
    retf
"""

USER = """
uentry:
    mov ecx, ITERATIONS
L:
    push eax
    push ebx
    call GATE2:0
    push ecx
    call GATE1:0
    push 1
    push 2
    push 3
    push 4
    push 5
    call GATE0:0
    call GATE3:0
    call GATEC:0
    call LGATE:0
    call CODE3:far3
    jmp JGATE:0
back:
    jmp LCODE3:lpart        ; a gate call from an LDT code segment (returns to it)
lpart:
    push ecx
    call GATE1:0
    jmp CODE3:back2
back2:
    EDITS
    dec ecx
    jnz L
    push eax                ; the last far transfer before the end is a RETF to ring 3
    push ebx
    call GATE2:0
    ud2

far3:
    add esi, 7
    retf
jtarget:
    inc edi
    jmp CODE3:back
"""

#: Guest edits made every iteration (ring 3 writes the tables: their pages are user-writable
#: and DS is flat).
EDITS = {
    "none": "",
    # GATE2's offset alternates between proc2 and proc2b.
    "gate_offset": "xor word ptr [GDT + (GATE2 & ~7)], PROC2_XOR",
    # CODE2 and DATA2 lose their Accessed bits: the next loads write them back.
    "accessed": "and byte ptr [GDT + (CODE2 & ~7) + 5], 0xFE\n"
                "    and byte ptr [GDT + (DATA2 & ~7) + 5], 0xFE",
    # ESP2 in the TSS moves down by 16 each iteration.
    "tss_esp": "sub dword ptr [TSS + 0x14], 16",
    # SS2 in the TSS alternates between two ring-2 data segments (different bases).
    "tss_ss": "xor word ptr [TSS + 0x18], DATA2 ^ DATA2B",
    # CODE3's or DATA3's limit changes every iteration: the segment RETF returns to.
    "cs_limit": "add byte ptr [GDT + (CODE3 & ~7)], 1",
    "ss_limit": "add byte ptr [GDT + (DATA3 & ~7)], 1",
}

#: A fault injected at iteration 3 (ECX == ITERATIONS - 3): what the guest writes, and the
#: fault (vector, error code) the next use must raise.
INJECT = {
    "gate_not_present": ("and byte ptr [GDT + (GATE1 & ~7) + 5], 0x7F", (NP, GATE1 & ~3)),
    "code_not_present": ("and byte ptr [GDT + (CODE1 & ~7) + 5], 0x7F", (NP, CODE1 & ~3)),
    "stack_dpl": ("and byte ptr [GDT + (DATA2 & ~7) + 5], 0x9F", (TS, DATA2 & ~3)),
    "stack_not_present": ("and byte ptr [GDT + (DATA2 & ~7) + 5], 0x7F", (SS_VEC, DATA2 & ~3)),
    # DATA2's limit (G = 1) cut to below ESP2: no room for the frame.
    "stack_limit": ("and byte ptr [GDT + (DATA2 & ~7) + 6], 0xF0\n"
                    "    mov word ptr [GDT + (DATA2 & ~7)], 0x0100", (SS_VEC, DATA2 & ~3)),
    # GATE0's offset past CODE0's limit cut to 4 KiB (G = 0).
    "gate_offset_limit": ("and byte ptr [GDT + (CODE0 & ~7) + 6], 0x70\n"
                          "    mov word ptr [GDT + (CODE0 & ~7)], 0x0FFF", (GP, 0)),
    # proc2 overwrites the SS it will return to with a ring-2 selector.
    "return_ss": ("", (GP, DATA2 & ~3)),
    # Ring 3 calls the DPL-1 gate ring 1 uses.
    "gate_dpl": ("call GATE01:0", (GP, GATE01 & ~3)),
    # The conforming segment becomes data: the gate names a non-code segment.
    "gate_to_data": ("mov byte ptr [GDT + (CONF0 & ~7) + 5], 0x92", (GP, CONF0 & ~3)),
}


def flat(dpl: int, code: bool, conforming: bool = False, limit: int = 0xFFFFF) -> Any:
    kind = CODE_EXECUTE_READ_CONFORMING if conforming else CODE_EXECUTE_READ
    return SegmentDescriptor(0, limit, kind if code else DATA_READ_WRITE, dpl, g=True)


def _equ(values: dict[str, int], source: str) -> str:
    return "".join(f".equ {k}, {v:#x}\n" for k, v in values.items()) + source


class Scenario:
    """One guest configuration (see the module docstring)."""

    def __init__(
        self, *, config: str = "pentium", edits: str = "none", inject: str | None = None,
        iterations: int = 12, gdt: int = 0x10000, tss: int = 0x12000, ldt: int = 0x16000,
        stack2: int = STACK2, stack3: int = STACK3, unmapped: tuple[int, ...] = (),
        board: bool = False, ring: int = 3, far_gate: bool = False, trace: bool = False,
    ) -> None:
        self.config = config
        self.edits = edits
        self.inject = inject
        self.iterations = iterations
        self.gdt, self.tss, self.ldt = gdt, tss, ldt
        self.stack2, self.stack3 = stack2, stack3
        self.unmapped = unmapped
        self.board = board
        self.ring = ring
        self.far_gate = far_gate
        self.trace = trace

    def build(self, fast: bool) -> Bare:
        b = Bare(profile=PENTIUM, config=CONFIGS[self.config], unmapped=self.unmapped)
        cpu = b.cpu
        cpu.far_fast = fast
        if self.board:
            hierarchy = get_board("p100").build(cpu, b.mmu)
            assert hierarchy is not None
            b.mmu.add_tracer(hierarchy)
            b.hierarchy = hierarchy  # type: ignore[attr-defined]
        if self.trace:
            b.recorder = Recorder()  # type: ignore[attr-defined]
            b.mmu.add_tracer(b.recorder)  # type: ignore[attr-defined]
        mem = b.mem
        patch2 = ""
        if self.inject == "return_ss":
            patch2 = (f"cmp ecx, {self.iterations - 3}\n    jne p2_skip\n"
                      f"    mov dword ptr [esp + 20], {DATA2}\np2_skip:")
        procs = assemble(_equ({"DATA1": DATA1, "DATA0": DATA0, "GATE2": GATE2,
                               "GATE01": GATE01},
                              PROCS.replace("PATCH2", patch2)), PCODE)
        sym = procs.symbols
        consts = {
            "GDT": self.gdt, "TSS": self.tss, "GATE2": GATE2, "GATE1": GATE1, "GATE0": GATE0,
            "GATE3": GATE3, "GATEC": GATEC, "LGATE": LGATE, "CODE3": CODE3, "JGATE": JGATE,
            "LCODE3": LCODE3, "DATA3": DATA3, "DATA2B": DATA2B, "GATE01": GATE01,
            "CODE2": CODE2, "DATA2": DATA2, "CODE1": CODE1, "CODE0": CODE0, "CONF0": CONF0,
            "PROC2_XOR": (sym["proc2"] ^ sym["proc2b"]) & 0xFFFF,
            "ITERATIONS": self.iterations,
        }
        edits = EDITS[self.edits]
        if self.inject is not None:
            poke = INJECT[self.inject][0]
            at = self.iterations - 3
            edits += f"\n    cmp ecx, {at}\n    jne inj_skip\n    {poke}\ninj_skip:"
        if self.far_gate:
            edits += f"\n    call {FAR_GATE}:0"
        b.proc2_xor = consts["PROC2_XOR"]  # type: ignore[attr-defined]
        user = assemble(_equ(consts, USER.replace("EDITS", edits)), UCODE)
        for image in (user, procs):
            mem.write(image.origin, image.code)
        gdt: dict[int, Any] = {
            CODE0: flat(0, True), DATA0: flat(0, False), CODE3: flat(3, True),
            DATA3: flat(3, False), CODE2: flat(2, True), DATA2: flat(2, False),
            CODE1: flat(1, True), DATA1: flat(1, False), CONF0: flat(0, True, True),
            TSS_SEL: SystemDescriptor(self.tss, TSS32_SIZE - 1, SYS_TSS32_AVAILABLE | 2),
            LDT_SEL: SystemDescriptor(self.ldt, 0xFF, 0x2),
            GATE2: GateDescriptor(SYS_CALL_GATE32, CODE2, sym["proc2"], 2, 3),
            GATE1: GateDescriptor(SYS_CALL_GATE32, CODE1, sym["proc1"], 1, 3),
            GATE0: GateDescriptor(SYS_CALL_GATE32, CODE0, sym["proc0"], 5, 3),
            GATE3: GateDescriptor(SYS_CALL_GATE32, CODE3, sym["proc3"], 3, 3),
            GATEC: GateDescriptor(SYS_CALL_GATE32, CONF0, sym["procc"], 0, 3),
            JGATE: GateDescriptor(SYS_CALL_GATE32, CODE3, user.symbols["jtarget"], 0, 3),
            FAR_GATE: GateDescriptor(SYS_CALL_GATE32, CODE3, sym["proc3"], 0, 3),
            DATA2B: SegmentDescriptor(0x1000, 0xFFFFE, DATA_READ_WRITE, 2, g=True),
            GATE01: GateDescriptor(SYS_CALL_GATE32, CODE0, sym["proc01"], 0, 1),
        }
        for selector, desc in gdt.items():
            mem.write(self.gdt + (selector & ~7), desc.encode())
        mem.write(self.ldt + (LGATE & ~7),
                  GateDescriptor(SYS_CALL_GATE32, LCODE2, sym["procl"], 0, 3).encode())
        mem.write(self.ldt + (LCODE2 & ~7), flat(2, True).encode())
        mem.write(self.ldt + (LCODE3 & ~7), flat(3, True).encode())
        mem.write(self.tss, Tss32(esp0=STACK0, ss0=DATA0, esp1=STACK1, ss1=DATA1,
                                  esp2=self.stack2, ss2=DATA2).encode())
        cpu.gdtr_base, cpu.gdtr_limit = self.gdt, 0xFF
        cpu.tr = SegmentCache.from_descriptor(TSS_SEL, gdt[TSS_SEL])
        cpu.ldtr = SegmentCache.from_descriptor(LDT_SEL, gdt[LDT_SEL])
        # The outer ring: 3 (or 2: then the gates to rings 3 and 2 are same-privilege or
        # refused, as the fault comparison records).
        code, data = (CODE3, DATA3) if self.ring == 3 else (CODE2, DATA2)
        cpu.seg[CS] = SegmentCache.from_descriptor(code, gdt[code])
        for s in (DS, ES, SS, FS, GS):
            cpu.seg[s] = SegmentCache.from_descriptor(data, gdt[data])
        cpu.set_cpl(self.ring)
        cpu.regs[ESP] = self.stack3
        cpu.eip = user.origin
        return b


class Recorder:
    """A tracer that records every physical access the processor makes, in order."""

    def __init__(self) -> None:
        self.accesses: list[tuple[Access, int, int, bool]] = []

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None:
        self.accesses.append((kind, phys, size, user))


def observe(b: Bare) -> tuple[object, ...]:
    """Everything simulated of a run."""
    cpu = b.cpu
    tlbs = tuple((n, t.contents()) for n, t in b.mmu.tlbs.items())
    board = getattr(b, "hierarchy", None)
    return (
        list(cpu.regs), cpu.get_eflags(), cpu.eip, cpu.cpl, cpu.tsc, cpu.instructions,
        [s.copy() for s in cpu.seg], cpu.ldtr.copy(), cpu.tr.copy(), cpu.cr2,
        b.mem.digest(), b.mmu.stats, tlbs, cpu.issue_state(),
        [(f.vector, f.error_code, eip, f.cr2) for f, eip in b.faults],
        None if board is None else board.get_state(),
        getattr(getattr(b, "recorder", None), "accesses", None),
    )


Edit = Callable[[Bare, int], None]


def run(scenario: Scenario, fast: bool, pieces: tuple[int, ...] = (),
        edit: Edit | None = None) -> tuple[object, ...]:
    """Run to the first fault (the harness halts there), cut into ``pieces`` instructions
    each (then the rest) with ``edit(b, k)`` between pieces, and observe."""
    b = scenario.build(fast)
    for k, n in enumerate(pieces):
        b.run(max_instructions=n)
        if b.faults:
            break
        if edit is not None:
            edit(b, k)
    if not b.faults:
        b.run(max_instructions=20_000)
    return observe(b)


def both(scenario: Scenario, pieces: tuple[int, ...] = (), edit: Edit | None = None
         ) -> tuple[object, ...]:
    fast = run(scenario, True, pieces, edit)
    assert fast == run(scenario, False, pieces, edit)
    return fast


def fault_of(result: tuple[object, ...]) -> tuple[int, int | None]:
    faults = result[14]
    assert isinstance(faults, list) and len(faults) == 1
    return faults[0][0], faults[0][1]


def cr2_of(result: tuple[object, ...]) -> int | None:
    faults = result[14]
    assert isinstance(faults, list)
    cr2: int | None = faults[0][3]
    return cr2


UD = 6


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("edits", sorted(EDITS))
def test_gate_loops_run_identically_on_the_fast_path(config: str, edits: str) -> None:
    result = both(Scenario(config=config, edits=edits))
    assert fault_of(result) == (UD, None)  # the loop ran to its end
    regs = result[0]
    assert isinstance(regs, list) and regs[1] == 0


@pytest.mark.parametrize("edits", sorted(EDITS))
def test_every_physical_access_is_the_same_on_the_fast_path(edits: str) -> None:
    # A tracer sees each access (kind, physical address, size, user) in order.
    result = both(Scenario(config="tiny", edits=edits, trace=True))
    accesses = result[-1]
    assert isinstance(accesses, list) and len(accesses) > 1000
    assert fault_of(result) == (UD, None)  # the loop ran to its end
    regs = result[0]
    assert isinstance(regs, list) and regs[1] == 0


@pytest.mark.parametrize("inject", sorted(INJECT))
def test_injected_faults_are_the_same_on_the_fast_path(inject: str) -> None:
    result = both(Scenario(inject=inject))
    assert fault_of(result) == INJECT[inject][1]


def test_with_a_cache_board_as_tracer() -> None:
    for edits in ("none", "accessed"):
        result = both(Scenario(board=True, edits=edits, iterations=6))
        assert fault_of(result) == (UD, None)
    assert fault_of(both(Scenario(board=True, inject="stack_dpl"))) == (TS, DATA2 & ~3)


def test_from_ring_2_the_ring_0_and_1_gates_are_inner_and_the_others_refused() -> None:
    # At CPL 2 the first call (to ring 2) stays at the same privilege, the ring-1 and ring-0
    # gates go inward; the DPL-3 gate's code is less privileged: #GP(CODE3).
    result = both(Scenario(ring=2, iterations=4))
    assert fault_of(result) == (GP, CODE3 & ~3)


def test_tables_and_stacks_unaligned_or_across_pages() -> None:
    # The GDT at a page end, unaligned (descriptors across the page boundary and at offsets
    # that are not multiples of 4); the TSS with SS2 on the next page; both stacks at odd
    # addresses, the ring-2 frame across a page boundary.
    for gdt, tss, stack2, stack3 in (
        (0x10FF4, 0x12FEA, STACK2 + 6, STACK3 - 1),
        (0x10F82, 0x12FE8, STACK2 - 0xFF4, STACK3 + 2),
        (0x10FA0, 0x12000, STACK2 - 0xFF8, STACK3),
    ):
        result = both(Scenario(gdt=gdt, tss=tss, stack2=stack2, stack3=stack3, iterations=5,
                               far_gate=True))
        assert fault_of(result) == (UD, None)


def test_unmapped_descriptor_tss_and_stack_pages_fault_alike() -> None:
    # The GDT's second page unmapped (from index 16): ring 1's call through GATE01 (index
    # 20) reads its gate there, a #PF (supervisor read, not present) with CR2 at the
    # descriptor, after the first page's gates ran.
    result = both(Scenario(gdt=0x10F80, unmapped=(0x11,), iterations=4))
    assert fault_of(result) == (PF, 0)
    assert cr2_of(result) == 0x10F80 + (GATE01 & ~7)
    # The ring-2 stack's page unmapped: the frame write faults (supervisor write).
    result = both(Scenario(unmapped=((STACK2 - 1) >> 12,)))
    assert fault_of(result)[0] == PF
    # The TSS page unmapped: reading SS2:ESP2.
    result = both(Scenario(unmapped=(0x12,)))
    assert fault_of(result) == (PF, 0)
    assert cr2_of(result) == 0x12000 + 0x14


def _host_edits(b: Bare, k: int) -> None:
    """Between pieces, what a host tool or debugger might change."""
    cpu, mem = b.cpu, b.mem
    gdt = cpu.gdtr_base
    if k % 3 == 0:
        # GATE2's offset: proc2 <-> proc2b; DATA1's AVL bit (the ring-1 stack's bytes).
        at = gdt + (GATE2 & ~7)
        mem.write(at, (int.from_bytes(mem.read(at, 2), "little") ^ b.proc2_xor  # type: ignore[attr-defined]
                       ).to_bytes(2, "little"))
        mem.write8(gdt + (DATA1 & ~7) + 6, mem.read8(gdt + (DATA1 & ~7) + 6) ^ 0x10)
    if k % 4 == 1:
        # A new TSS image with another ESP1.
        mem.write32(0x12000 + 0x0C, STACK1 - 0x40 * k)
    if k % 5 == 2:
        # The GDT moved: a copy one page up, GDTR reloaded.
        image = mem.read(gdt, 0x100)
        mem.write(0x14000 if gdt == 0x10000 else 0x10000, image)
        cpu.gdtr_base = 0x14000 if gdt == 0x10000 else 0x10000
    if k % 6 == 3:
        # TR's cache replaced by an equal one (a new object, same values), and LDTR too.
        cpu.tr = cpu.tr.copy()
        cpu.ldtr = cpu.ldtr.copy()
    if k % 7 == 4:
        # The LDT moved: a copy one page up, LDTR's cache pointed at it (the old copy stays:
        # a record that read there would read equal bytes, on another page).
        ldtr = cpu.ldtr
        base = 0x17000 if ldtr.base == 0x16000 else 0x16000
        mem.write(base, mem.read(ldtr.base, 0x100))
        cpu.ldtr = SegmentCache(ldtr.selector, base, ldtr.limit, ldtr.type, False, ldtr.dpl,
                                True)
    if k % 8 == 5:
        # Another timing profile (other call-gate figures), then the Pentium's again.
        cpu.profile = get_profile("i486" if cpu.profile is PENTIUM else "pentium")
    cpu.flush_decode_cache()


def test_runs_cut_into_pieces_with_host_edits_between() -> None:
    for config, trace in (("pentium", False), ("tiny", False), ("i486", True)):
        for piece in (1, 7, 23, 61):
            for edits in ("gate_offset", "tss_ss"):
                result = both(Scenario(config=config, edits=edits, iterations=10, trace=trace),
                              (piece,) * 40, _host_edits)
                assert fault_of(result) == (UD, None)  # the loop ran to its end


def test_a_tr_limit_cut_by_the_host_is_ts_on_both_paths() -> None:
    def cut(b: Bare, k: int) -> None:
        if k == 2:
            tr = b.cpu.tr
            b.cpu.tr = SegmentCache(tr.selector, tr.base, 0x13, tr.type, False, tr.dpl, True)

    result = both(Scenario(), (50, 50, 50, 50), cut)
    assert fault_of(result) == (TS, TSS_SEL & ~3)


def test_a_gdt_limit_cut_by_the_host_is_gp_on_both_paths() -> None:
    def cut(b: Bare, k: int) -> None:
        if k == 1:
            b.cpu.gdtr_limit = (GATE1 & ~7) + 6  # GATE1's last byte outside

    result = both(Scenario(), (40, 40, 40), cut)
    vector, code = fault_of(result)
    assert vector == GP and code is not None and code >= GATE1 & ~3


def test_the_fast_path_is_taken_by_default_and_can_be_turned_off() -> None:
    b = Bare()
    assert b.cpu.far_fast is True
    assert Bare().cpu.far_fast == Bare().cpu.fast


def _frame_over_code(fast: bool) -> tuple[object, ...]:
    """Ring 3 calls a ring-2 procedure through a gate three times (it runs and is cached as
    a block), points ESP2 just above the procedure and calls again: the frame is written over
    the cached code, which must be dropped, so the last entry runs the frame's bytes. (The
    page is written beside the code first: a page whose Dirty bit is set takes the host fast
    path.)"""
    b = Bare(profile=PENTIUM)
    cpu, mem = b.cpu, b.mem
    cpu.far_fast = fast
    gdt, tss, procz = 0x5000, 0x6000, PCODE + 0x800
    entries: dict[int, Any] = {
        CODE3: flat(3, True), DATA3: flat(3, False), CODE2: flat(2, True),
        DATA2: flat(2, False),
        TSS_SEL: SystemDescriptor(tss, TSS32_SIZE - 1, SYS_TSS32_AVAILABLE | 2),
        0x43: GateDescriptor(SYS_CALL_GATE32, CODE2, procz, 0, 3),
    }
    for selector, desc in entries.items():
        mem.write(gdt + (selector & ~7), desc.encode())
    mem.write(tss, Tss32(esp2=STACK2, ss2=DATA2).encode())
    user = assemble(_equ({"TSS": tss, "PROCZ": procz}, """
        call 0x43:0
        call 0x43:0
        call 0x43:0
        mov dword ptr [TSS + 0x14], PROCZ + 16
        mov dword ptr [PROCZ + 0x100], eax    ; beside the code: the page is now dirty
        call 0x43:0
        ud2
    """), UCODE)
    mem.write(UCODE, user.code)
    mem.write(procz, b"\x43\xcb")  # inc ebx ; retf
    cpu.gdtr_base, cpu.gdtr_limit = gdt, 0xFF
    cpu.tr = SegmentCache.from_descriptor(TSS_SEL, entries[TSS_SEL])
    cpu.seg[CS] = SegmentCache.from_descriptor(CODE3, entries[CODE3])
    for s in (DS, ES, SS, FS, GS):
        cpu.seg[s] = SegmentCache.from_descriptor(DATA3, entries[DATA3])
    cpu.set_cpl(3)
    cpu.regs[ESP] = STACK3
    cpu.eip = UCODE
    b.run(max_instructions=200)
    return observe(b)


def test_a_gate_frame_written_over_cached_code_drops_it() -> None:
    fast = _frame_over_code(True)
    assert fast == _frame_over_code(False)
    regs = fast[0]
    assert isinstance(regs, list) and regs[3] == 3  # procz's INC EBX ran three times only


def test_a_tiny_memo_bound_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The memo is emptied whenever it is full: with room for one record, the gates and
    # returns of the loop keep evicting each other.
    scenario = Scenario(edits="gate_offset", iterations=6)
    reference = run(scenario, False)
    monkeypatch.setattr(far, "FAR_MEMO_LIMIT", 1)
    b = scenario.build(True)
    b.run(max_instructions=20_000)
    assert observe(b) == reference
    assert len(b.cpu._far_memo) <= 1
