"""Interrupts and exceptions through the IDT; INT n, INT3, INTO, IRET; double and triple fault.

References: Intel SDM Vol. 3 chapter 6 (6.12 exception- and interrupt-handling procedures,
6.13 error codes, 6.15 exception reference, table 6-5 double-fault conditions) and the Vol. 2
pages INT n/INTO/INT3 and IRET/IRETD.

What is modelled:

- 32-bit interrupt and trap gates; the IDT limit check #GP(vector*8+2+EXT), the gate type and
  present checks, the gate DPL check for software interrupts (INT n, INT3, INTO) #GP(vector*8+2),
  the target code segment checks, the stack switch to SSn:ESPn of the current TSS when the
  handler is more privileged, the pushes (SS, ESP on a privilege change, then EFLAGS, CS, EIP
  and the error code), TF/NT/RF/VM cleared, IF cleared by interrupt gates.
- The EXT bit of error codes raised while delivering an exception or an external interrupt.
- The double-fault rules of table 6-5 (benign / contributory / page fault) giving #DF with
  error code 0, and the triple fault: a fault while delivering #DF stops the machine. The CPU
  gets ``cpu.shutdown`` (a one-line report) and ``cpu.shutdown_report`` (a
  :class:`TripleFaultReport`).

What is not modelled, and what happens instead:

- Task gates in the IDT (and IRET with NT = 1, a task return): #GP(vector*8+2+EXT) and #GP(0)
  respectively; Lavender switches tasks in software, so the machine has no task switch.
- Virtual-8086 mode: EFLAGS.VM is never set; an IRET at CPL 0 that would return to V86 mode
  (VM = 1 in the popped EFLAGS) raises #GP(0). At CPL > 0 the popped VM bit is ignored, as the
  manual ignores it.
- 16-bit interrupt/trap gates decode as invalid descriptors: #GP(vector*8+2+EXT).

Timing: a software interrupt costs the published figure of its path (``int.same``/``int.inner``,
``int3.*``, ``into.taken_*``), the decoder's base for the form included (see
:func:`lavsim.cpu.far.charge_path`); an exception or external interrupt costs
``exception.same``/``exception.inner`` on top of whatever the faulting instruction was charged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from lavsim.cpu.far import (
    charge_path,
    check_stack_room,
    null_outer_data_segments,
    read_stack_block,
    tables_of,
    write_stack_block,
)
from lavsim.cpu.handlers import Semantics
from lavsim.cpu.state import (
    CS,
    EFLAGS_WRITABLE,
    ESP,
    IF,
    IOPL,
    MASK32,
    NT,
    OF,
    RF,
    SS,
    TF,
    VM,
    CpuState,
)
from lavsim.faults import (
    BP,
    CONTRIBUTORY,
    DF,
    HAS_ERROR_CODE,
    MNEMONIC,
    PF,
    CpuFault,
    gp,
    idt_error_code,
    np_fault,
    selector_error_code,
)
from lavsim.faults import OF as OF_VECTOR
from lavsim.faults import SS as SS_VECTOR
from lavsim.mmu.descriptors import GateDescriptor
from lavsim.mmu.segmentation import (
    decode_cached,
    inner_stack_from_tss,
    load_gate_code_segment,
    load_inner_stack_segment,
    load_return_code_segment,
    load_stack_segment,
)

if TYPE_CHECKING:
    from lavsim.cpu.insn import Insn

#: This module's semantics (merged into the decoder's table by :mod:`lavsim.cpu.decoder`).
SEMANTICS = Semantics(__name__)
handler = SEMANTICS.handler

__all__ = [
    "EventRecord",
    "TripleFaultReport",
    "deliver",
    "deliver_external",
    "handle_fault",
    "int3",
    "int_n",
    "into",
    "iret",
]

#: Timing keys of an exception or hardware interrupt: (same privilege, more privilege).
EXCEPTION_KEYS = ("exception.same", "exception.inner")

#: At most this many nested delivery attempts before the machine gives up with a triple
#: fault. Table 6-5 already bounds the chain (benign -> contributory/#PF -> #DF -> shutdown,
#: at most 4 links); the guard only makes termination obvious.
_MAX_CHAIN = 6


@attrs.frozen
class EventRecord:
    """One event of a delivery chain: its vector, error code (None if it pushes none), the
    faulting linear address of a page fault, and its kind: ``"exception"``, ``"external"``
    (a hardware interrupt) or ``"double fault"``."""

    vector: int
    error_code: int | None
    cr2: int | None
    kind: str

    def describe(self) -> str:
        name = MNEMONIC.get(self.vector, f"vector {self.vector}")
        if self.kind == "external":
            name = f"IRQ vector {self.vector}"
        text = name if self.error_code is None else f"{name}({self.error_code:#x})"
        if self.cr2 is not None:
            text += f" at {self.cr2:#010x}"
        return text


@attrs.frozen
class TripleFaultReport:
    """Why the machine shut down: the events whose delivery failed one after the other
    (``chain``, first event first, ending with the #DF and the fault that struck while
    delivering it), where the CPU was (``cs``:``eip`` of the instruction, ``cpl``), ``cr2``,
    the time-stamp counter and the instructions retired."""

    chain: tuple[EventRecord, ...]
    cs: int
    eip: int
    cpl: int
    cr2: int
    tsc: int
    instructions: int

    @property
    def error_codes(self) -> tuple[int | None, ...]:
        """The error code of each event of the chain."""
        return tuple(e.error_code for e in self.chain)

    @property
    def vectors(self) -> tuple[int, ...]:
        """The vector of each event of the chain."""
        return tuple(e.vector for e in self.chain)

    def describe(self) -> str:
        """One line a person can read."""
        chain = " -> ".join(e.describe() for e in self.chain)
        return (
            f"triple fault at {self.cs:#06x}:{self.eip:#010x} (CPL {self.cpl}, "
            f"CR2 {self.cr2:#010x}, cycle {self.tsc}, after {self.instructions} "
            f"instructions): {chain}"
        )


# --------------------------------------------------------------------------------------------
# Delivery through the IDT
# --------------------------------------------------------------------------------------------


def _read_idt_gate(cpu: CpuState, vector: int, ext: bool) -> GateDescriptor:
    """Fetch the gate of ``vector``: #GP(vector*8+2+EXT) beyond the IDT limit or when it is
    not an interrupt, trap or task gate."""
    code = idt_error_code(vector, ext)
    offset = vector * 8
    if offset + 7 > cpu.idtr_limit:
        raise gp(code)
    address = (cpu.idtr_base + offset) & MASK32
    # Implicit supervisor accesses whatever the CPL (SDM Vol. 3, 4.6.1).
    low = cpu.mmu.read(address, 4, False)
    high = cpu.mmu.read((address + 4) & MASK32, 4, False)
    # Decoded through the host-side memo (the reads above are made either way).
    desc = decode_cached(low | (high << 32), getattr(cpu, "decode_cache", True)).desc
    if not isinstance(desc, GateDescriptor) or desc.is_call_gate:
        raise gp(code)
    return desc


def deliver(
    cpu: CpuState,
    vector: int,
    error_code: int | None = None,
    *,
    software: bool = False,
    ext: bool = False,
    timing: tuple[str, str] = EXCEPTION_KEYS,
    already_charged: int = 0,
) -> None:
    """Deliver interrupt ``vector`` through the IDT (SDM Vol. 3, 6.12.1).

    ``error_code`` is pushed when not None. ``software`` applies the gate DPL check of INT n,
    INT3 and INTO. ``ext`` sets the EXT bit in the error code of any fault raised on the way
    (an exception or a hardware interrupt is being delivered). The saved EIP is ``cpu.eip``:
    the faulting instruction for a fault, the next instruction for a trap or INT n.

    ``timing`` names the (same privilege, more privilege) cost keys; ``already_charged`` is
    subtracted so that a software interrupt costs exactly its published figure. On a fault
    nothing is committed: registers are as before and the fault propagates.
    """
    gate = _read_idt_gate(cpu, vector, ext)
    if software and gate.dpl < cpu.cpl:
        # Software may only use gates it is allowed to: no EXT, it is the program's fault.
        raise gp(idt_error_code(vector))
    if not gate.present:
        raise np_fault(idt_error_code(vector, ext))
    if gate.is_task_gate:
        # Task switching is not modelled (see the module docstring).
        raise gp(idt_error_code(vector, ext))
    tables = tables_of(cpu)
    cpl = cpu.cpl
    new_cs = load_gate_code_segment(tables, gate.selector, cpl, ext=ext)
    new_cpl = new_cs.rpl
    eflags = cpu.get_eflags()
    old_cs = cpu.seg[CS].selector
    frame = [cpu.eip, old_cs, eflags]
    if error_code is not None:
        frame.insert(0, error_code)
    ext_bit = 1 if ext else 0
    if new_cpl < cpl:
        ss_sel, new_esp = inner_stack_from_tss(cpu.mmu, cpu.tr, new_cpl, ext)
        new_ss = load_inner_stack_segment(tables, ss_sel, new_cpl, ext)
        old_ss = cpu.seg[SS]
        frame += [cpu.regs[ESP] & (MASK32 if old_ss.db else 0xFFFF), old_ss.selector]
        slot = check_stack_room(
            new_ss, new_esp, 4 * len(frame), SS_VECTOR, selector_error_code(ss_sel, ext)
        )
        if gate.offset > new_cs.max_off or gate.offset < new_cs.min_off:
            raise gp(ext_bit)
        write_stack_block(cpu, slot, frame, 4, False)
        cpu.set_cpl(new_cpl)
        cpu.seg[SS] = new_ss
    else:
        stack = cpu.seg[SS]
        slot = check_stack_room(stack, cpu.regs[ESP], 4 * len(frame), SS_VECTOR, ext_bit)
        if gate.offset > new_cs.max_off or gate.offset < new_cs.min_off:
            raise gp(ext_bit)
        write_stack_block(cpu, slot, frame, 4, cpu.user)
    if slot.cache.db:
        cpu.regs[ESP] = slot.esp
    else:
        cpu.regs[ESP] = (cpu.regs[ESP] & 0xFFFF0000) | slot.esp
    cpu.seg[CS] = new_cs
    cpu.eip = gate.offset
    cleared = TF | NT | RF | VM | (IF if gate.is_interrupt_gate else 0)
    cpu.set_eflags(eflags & ~cleared, EFLAGS_WRITABLE | VM)
    cpu.halted = False
    cpu.tsc += cpu.profile.table[timing[1] if new_cpl < cpl else timing[0]] - already_charged


def _class_of(vector: int, external: bool) -> str:
    """Table 6-4 class: ``"pf"``, ``"contributory"`` or ``"benign"`` (hardware interrupts
    are benign whatever their vector)."""
    if external:
        return "benign"
    if vector == PF:
        return "pf"
    if vector in CONTRIBUTORY:
        return "contributory"
    return "benign"


def _is_double_fault(first: str, second: str) -> bool:
    """Table 6-5: contributory then contributory, or #PF then contributory or #PF."""
    if first == "contributory":
        return second == "contributory"
    if first == "pf":
        return second in ("contributory", "pf")
    return False


def _normalise_error_code(vector: int, error_code: int | None) -> int | None:
    if vector in HAS_ERROR_CODE:
        return error_code if error_code is not None else 0
    return None


def _shutdown(cpu: CpuState, chain: list[EventRecord]) -> None:
    report = TripleFaultReport(
        chain=tuple(chain),
        cs=cpu.seg[CS].selector,
        eip=cpu.eip,
        cpl=cpu.cpl,
        cr2=cpu.cr2,
        tsc=cpu.tsc,
        instructions=cpu.instructions,
    )
    machine: Any = cpu  # the CPU core declares these two attributes
    machine.shutdown_report = report
    machine.shutdown = report.describe()


def _dispatch(
    cpu: CpuState, vector: int, error_code: int | None, cr2: int | None, external: bool
) -> None:
    """Deliver an exception or hardware interrupt, applying the double-fault rules to any
    fault raised while delivering it (SDM Vol. 3, 6.15 interrupt 8, table 6-5)."""
    kind = "external" if external else "exception"
    current = EventRecord(vector, _normalise_error_code(vector, error_code) if not external
                          else None, cr2, kind)
    chain: list[EventRecord] = []
    for _ in range(_MAX_CHAIN):
        chain.append(current)
        if current.vector == PF and current.cr2 is not None and current.kind != "external":
            cpu.cr2 = current.cr2
        try:
            deliver(cpu, current.vector, current.error_code, ext=True)
            return
        except CpuFault as nested:
            if current.kind == "double fault":
                chain.append(EventRecord(nested.vector, nested.error_code, nested.cr2,
                                         "exception"))
                _shutdown(cpu, chain)
                return
            first = _class_of(current.vector, current.kind == "external")
            second = _class_of(nested.vector, False)
            if _is_double_fault(first, second):
                chain.append(EventRecord(nested.vector, nested.error_code, nested.cr2,
                                         "exception"))
                if nested.vector == PF and nested.cr2 is not None:
                    cpu.cr2 = nested.cr2
                current = EventRecord(DF, 0, None, "double fault")
            else:
                # Benign first event: the second is handled serially, in its place.
                current = EventRecord(
                    nested.vector,
                    _normalise_error_code(nested.vector, nested.error_code),
                    nested.cr2,
                    "exception",
                )
    _shutdown(cpu, chain)


def handle_fault(cpu: CpuState, fault: CpuFault) -> None:
    """Deliver ``fault`` raised by the instruction at ``cpu.eip`` (the core has restored EIP
    to it for faults). #PF loads CR2. A fault during delivery follows table 6-5 (#DF, then
    shutdown with a :class:`TripleFaultReport`). Empties the pipes (``issue_break``)."""
    cpu.issue_break()
    _dispatch(cpu, fault.vector, fault.error_code, fault.cr2, False)


def deliver_external(cpu: CpuState) -> None:
    """Acknowledge and deliver a pending hardware interrupt (the core calls this between
    instructions when ``cpu.irq_pending`` and IF = 1).

    The vector comes from ``cpu.ack_interrupt()``, a callable the Machine installs (the
    interrupt controller's INTA cycle); ``None`` means nothing is pending any more. Delivery
    wakes a halted CPU.
    """
    if not cpu.get_eflags() & IF:
        return
    ack = getattr(cpu, "ack_interrupt", None)
    vector = ack() if ack is not None else None
    if vector is None:
        return
    cpu.halted = False
    cpu.issue_break()
    _dispatch(cpu, vector & 0xFF, None, None, True)


# --------------------------------------------------------------------------------------------
# INT n, INT3, INTO
# --------------------------------------------------------------------------------------------


@handler("int_n")
def int_n(cpu: CpuState, insn: Insn) -> None:
    """INT imm8 (SDM Vol. 2, INT n): a software interrupt through the IDT with the gate DPL
    check; the saved EIP is the next instruction's."""
    deliver(cpu, insn.imm & 0xFF, software=True, timing=("int.same", "int.inner"),
            already_charged=insn.cycles)


@handler("int3")
def int3(cpu: CpuState, insn: Insn) -> None:
    """INT3: the breakpoint trap, vector 3, with the gate DPL check."""
    deliver(cpu, BP, software=True, timing=("int3.same", "int3.inner"),
            already_charged=insn.cycles)


@handler("into")
def into(cpu: CpuState, insn: Insn) -> None:
    """INTO: vector 4 (#OF) when EFLAGS.OF = 1, with the gate DPL check; else nothing."""
    if cpu.get_eflags() & OF:
        deliver(cpu, OF_VECTOR, software=True,
                timing=("into.taken_same", "into.taken_inner"), already_charged=insn.cycles)
    else:
        charge_path(cpu, insn, cpu.profile.table["into.not_taken"])


# --------------------------------------------------------------------------------------------
# IRET
# --------------------------------------------------------------------------------------------


@handler("iret")
def iret(cpu: CpuState, insn: Insn) -> None:
    """IRET/IRETD in protected mode (SDM Vol. 2, IRET).

    NT = 1 (a task return) is #GP(0): tasks are not modelled. Pops EIP, CS, EFLAGS (#SS(0)
    when outside the stack). The return CS is checked as for RETF (#GP(selector), #NP). A
    popped VM = 1 at CPL 0 (return to virtual-8086 mode) is #GP(0), V86 is not modelled.
    Same privilege: EIP within the limit (#GP(0)). Outer privilege: ESP and SS are popped
    too, SS is checked at the new CPL, and data segment registers more privileged than the
    new CPL are nulled. EFLAGS: IOPL changes only at CPL 0, IF only when CPL <= IOPL (the CPL
    before the return); VIF/VIP do not exist on this model.
    """
    if cpu.get_eflags() & NT:
        raise gp(0)
    size = insn.size
    cpl = cpu.cpl
    stack = cpu.seg[SS]
    mask = MASK32 if stack.db else 0xFFFF
    esp = cpu.regs[ESP] & mask
    ret_eip, cs_sel, new_flags = read_stack_block(cpu, stack, esp, 3, size, cpu.user)
    cs_sel &= 0xFFFF
    if size == 4 and new_flags & VM and cpl == 0:
        raise gp(0)
    tables = tables_of(cpu)
    new_cs = load_return_code_segment(tables, cs_sel, cpl)
    new_cpl = cs_sel & 3
    # Which EFLAGS bits the popped image may change (judged at the CPL before the return).
    writable = EFLAGS_WRITABLE & ~(IOPL | IF)
    if cpl == 0:
        writable |= IOPL
    if cpl <= cpu.iopl:
        writable |= IF
    if size == 2:
        writable &= 0xFFFF
    if new_cpl > cpl:
        outer = (esp + 3 * size) & mask
        new_esp, ss_sel = read_stack_block(cpu, stack, outer, 2, size, cpu.user)
        ss_sel &= 0xFFFF
        new_ss = load_stack_segment(tables, ss_sel, new_cpl)
        if ret_eip > new_cs.max_off or ret_eip < new_cs.min_off:
            raise gp(0)
        cpu.set_eflags(new_flags, writable)
        cpu.set_cpl(new_cpl)
        cpu.seg[CS] = new_cs
        cpu.eip = ret_eip
        cpu.seg[SS] = new_ss
        if new_ss.db and size == 4:
            cpu.regs[ESP] = new_esp & MASK32
        else:
            cpu.regs[ESP] = (cpu.regs[ESP] & 0xFFFF0000) | (new_esp & 0xFFFF)
        null_outer_data_segments(cpu, new_cpl)
        charge_path(cpu, insn, cpu.profile.table["iret.outer"])
        return
    if ret_eip > new_cs.max_off or ret_eip < new_cs.min_off:
        raise gp(0)
    cpu.set_eflags(new_flags, writable)
    cpu.seg[CS] = new_cs
    cpu.eip = ret_eip
    new_sp = (esp + 3 * size) & mask
    if stack.db:
        cpu.regs[ESP] = new_sp
    else:
        cpu.regs[ESP] = (cpu.regs[ESP] & 0xFFFF0000) | new_sp
    charge_path(cpu, insn, cpu.profile.table["iret.same"])
