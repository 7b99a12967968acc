"""Architectural state of the IA-32 core and the memory accessors every instruction uses.

This module is the contract between the pieces of :mod:`lavsim.cpu`: the decoder and the
executor (``core``), the integer and string semantics, far transfers and interrupts, and the
system instructions all read and change a :class:`CpuState` through the names defined here.

The register numbers and the EFLAGS/CR0/CR4 bits live in the leaf :mod:`lavsim.cpu.regs` and
are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lavsim.cpu.flags import settle
from lavsim.cpu.regs import *  # noqa: F403  (re-exported: code imports EAX, IF... from here)
from lavsim.cpu.regs import CR0_ET, CR0_PE, EFLAGS_FIXED, EFLAGS_WRITABLE, ESP, IOPL_SHIFT, SS
from lavsim.faults import SS as SS_VECTOR
from lavsim.faults import CpuFault, gp
from lavsim.mmu.segmentation import SegmentCache

if TYPE_CHECKING:
    from lavsim.mmu.mmu import MMU
    from lavsim.timing import TimingProfile

MASK32 = 0xFFFFFFFF
#: A TSC no run reaches: "no bound".
NEVER = 1 << 62
SIZE_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}


class CpuState:
    """Registers, segment registers with their hidden caches, control registers, the TSC.

    Arithmetic status flags may be kept *lazily* by the executor (``lazy_flags`` not None);
    always read and write the whole of EFLAGS through :meth:`get_eflags` and
    :meth:`set_eflags`, which settle them.
    """

    def __init__(self, mmu: MMU, profile: TimingProfile) -> None:
        self.mmu = mmu
        self.profile = profile
        #: EAX..EDI as unsigned 32-bit ints.
        self.regs: list[int] = [0] * 8
        self.eip = 0
        #: EFLAGS with the status flags valid only when ``lazy_flags`` is None.
        self.eflags = EFLAGS_FIXED
        #: Executor-private record of the last flag-setting operation (see ``cpu.flags``).
        self.lazy_flags: tuple[int, ...] | None = None
        #: ES CS SS DS FS GS hidden descriptor caches.
        self.seg: list[SegmentCache] = [SegmentCache.null(0) for _ in range(6)]
        self.cpl = 0
        #: True when CPL == 3: the U/S bit of ordinary (non-implicit) memory accesses.
        self.user = False
        self.cr0 = CR0_PE | CR0_ET
        self.cr2 = 0
        self.cr3 = 0
        self.cr4 = 0
        self.gdtr_base = 0
        self.gdtr_limit = 0xFFFF
        self.idtr_base = 0
        self.idtr_limit = 0xFFFF
        self.ldtr: SegmentCache = SegmentCache.null(0)
        self.tr: SegmentCache = SegmentCache.null(0)
        #: Time-stamp counter: the simulated cycle count (read by RDTSC).
        self.tsc = 0
        #: EAX of CPUID leaf 1 (family, model, stepping): set by whoever builds the machine,
        #: from its CPU model (``lavsim.models``); 0, "no identity", for a bare CPU.
        self.cpuid_signature = 0
        #: Instructions retired.
        self.instructions = 0
        #: Set by HLT; cleared when an interrupt is delivered.
        self.halted = False
        #: Set by devices (through the machine) when an external interrupt is requested.
        self.irq_pending = False
        #: Port I/O: called as io_read(port, size) -> int and io_write(port, size, value).
        self.io_read: Callable[[int, int], int] = lambda port, size: SIZE_MASK[size]
        self.io_write: Callable[[int, int, int], None] = lambda port, size, value: None
        #: Host-side, not simulated state: the TSC at which an interruptible instruction (a
        #: REP string instruction) stops between iterations, so that the run loop can stop
        #: at its cycle limit or advance the devices at their next event. Set by whoever runs
        #: the CPU (``CPU.run``, ``Machine.run``) for the length of the run; :data:`NEVER`
        #: otherwise. See ``lavsim.cpu.ops_string``.
        self._rep_until = NEVER
        #: Host-side: far CALL and RET take the flattened path of ``lavsim.cpu.far`` (the
        #: same accesses, checks and results as the reference path it replaces; the executor
        #: turns it on with its fast paths).
        self.far_fast = False
        #: Host-side: far transfers that passed their checks (``lavsim.cpu.far``'s memo,
        #: used with ``far_fast``; every access is still made and compared).
        self._far_memo: dict[int, Any] = {}

    # --- registers -------------------------------------------------------------------------
    def get_reg(self, index: int, size: int) -> int:
        """Register ``index`` in the ModRM numbering for an operand of ``size`` bytes."""
        if size == 4:
            return self.regs[index]
        if size == 2:
            return self.regs[index] & 0xFFFF
        if index < 4:
            return self.regs[index] & 0xFF
        return (self.regs[index - 4] >> 8) & 0xFF

    def set_reg(self, index: int, size: int, value: int) -> None:
        """Write a register, leaving the bits outside the operand untouched."""
        regs = self.regs
        if size == 4:
            regs[index] = value & MASK32
        elif size == 2:
            regs[index] = (regs[index] & 0xFFFF0000) | (value & 0xFFFF)
        elif index < 4:
            regs[index] = (regs[index] & 0xFFFFFF00) | (value & 0xFF)
        else:
            regs[index - 4] = (regs[index - 4] & 0xFFFF00FF) | ((value & 0xFF) << 8)

    # --- EFLAGS ----------------------------------------------------------------------------
    def get_eflags(self) -> int:
        """The whole of EFLAGS, status flags settled."""
        if self.lazy_flags is not None:
            settle(self)
        return self.eflags

    def set_eflags(self, value: int, mask: int = EFLAGS_WRITABLE) -> None:
        """Replace the bits of EFLAGS selected by ``mask`` (callers narrow the mask for the
        CPL/IOPL rules of POPF and IRET)."""
        current = self.get_eflags()
        reserved_zero = 1 << 3 | 1 << 5 | 1 << 15
        self.eflags = ((current & ~mask) | (value & mask) | EFLAGS_FIXED) & ~reserved_zero
        self.lazy_flags = None

    @property
    def iopl(self) -> int:
        return (self.eflags >> IOPL_SHIFT) & 3

    def set_cpl(self, cpl: int) -> None:
        self.cpl = cpl
        self.user = cpl == 3

    # --- memory through segmentation -------------------------------------------------------
    def _segment_fault(self, sreg: int) -> CpuFault:
        return CpuFault(SS_VECTOR, 0) if sreg == SS else gp(0)

    def linear(self, sreg: int, offset: int, size: int, write: bool) -> int:
        """Check an access of ``size`` bytes at ``offset`` in segment ``sreg`` and return its
        linear address; #GP(0), or #SS(0) for SS, when the hidden cache refuses it."""
        s = self.seg[sreg]
        if offset < s.min_off or offset + size - 1 > s.max_off:
            raise self._segment_fault(sreg)
        if write:
            if not s.writable:
                raise self._segment_fault(sreg)
        elif not s.readable:
            raise self._segment_fault(sreg)
        return (s.base + offset) & MASK32

    def read_mem(self, sreg: int, offset: int, size: int) -> int:
        """Read 1, 2 or 4 bytes at ``sreg:offset`` with the current privilege."""
        return self.mmu.read(self.linear(sreg, offset, size, False), size, self.user)

    def write_mem(self, sreg: int, offset: int, size: int, value: int) -> None:
        """Write 1, 2 or 4 bytes at ``sreg:offset`` with the current privilege."""
        linear = self.linear(sreg, offset, size, True)
        self.mmu.write(linear, size, value & SIZE_MASK[size], self.user)

    # --- the stack -------------------------------------------------------------------------
    def stack_offset_mask(self) -> int:
        """ESP or SP, by the B bit of the SS descriptor."""
        return MASK32 if self.seg[SS].db else 0xFFFF

    def issue_break(self) -> None:
        """The pipes empty (an exception or interrupt is delivered): the executor's issue
        model forgets the pending pair and interlock (nothing to do without one)."""

    def push(self, value: int, size: int = 4) -> None:
        """Push ``size`` bytes; ESP changes only if the write succeeds (faults are restartable)."""
        mask = self.stack_offset_mask()
        esp = (self.regs[ESP] - size) & mask
        self.write_mem(SS, esp, size, value)
        self.regs[ESP] = (self.regs[ESP] & ~mask & MASK32) | esp

    def pop(self, size: int = 4) -> int:
        """Pop ``size`` bytes; ESP changes only if the read succeeds."""
        mask = self.stack_offset_mask()
        esp = self.regs[ESP] & mask
        value = self.read_mem(SS, esp, size)
        self.regs[ESP] = (self.regs[ESP] & ~mask & MASK32) | ((esp + size) & mask)
        return value
