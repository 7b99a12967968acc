"""``LavenderSystem``: boot a Machine into the Lavender layout and drive it from Python.

Python plays the boot loader: it builds the GDT, IDT, TSS, page tables, process control blocks,
LDTs and thread control blocks in guest memory, loads the kernel image and process images, sets
the processor's paging and segment state, and enters ``kernel_start`` at CPL 0. From then on
every kernel path (traps, system calls, scheduling, context switches, thread exit) is guest code;
Python only reads state back (and may add processes and threads while the kernel is not in the
middle of a path).

Example::

    system = LavenderSystem(profile="pentium", memory_size=16 << 20, timer_period=5_000)
    group = system.create_group("g1")
    hello = system.create_process(group, HELLO_SOURCE, data_size=4096)
    system.create_thread(hello, "main", args=(7,))
    outcome = system.run(max_cycles=2_000_000)
    print(outcome.status, system.console)
    print(system.stats().table())
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from lavsim.boards import Board
from lavsim.cpu import x87
from lavsim.cpu.asm import assemble
from lavsim.cpu.state import (
    AF,
    CF,
    CR0_ET,
    CR0_PE,
    CR0_PG,
    CR0_WP,
    CR4_PGE,
    CS,
    DF,
    DS,
    EFLAGS_FIXED,
    ES,
    ESP,
    FS,
    GS,
    MASK32,
    OF,
    PF,
    SF,
    SS,
    ZF,
)
from lavsim.elf import ElfProgram
from lavsim.errors import AssemblyError, ConfigError, LavsimError, UnknownNameError
from lavsim.errors import check_bool as _check_bool
from lavsim.errors import check_int as _check_int
from lavsim.errors import check_limit as _check_limit
from lavsim.faults import MNEMONIC, NM, UD
from lavsim.kernel import layout as L
from lavsim.kernel.addrspace import PageDirectory, PageTables
from lavsim.kernel.frames import FrameAllocator
from lavsim.kernel.image import KernelImage, kernel_image
from lavsim.kernel.ipc import PortInfo, check_ipc, init_ipc, port_info, port_open
from lavsim.kernel.observer import KernelObserver, KernelStats
from lavsim.kernel.sharing import Sharing
from lavsim.kernel.tables import (
    build_gdt,
    build_idt,
    build_tss,
    kernel_code_descriptor,
    kernel_data_descriptor,
    ldt_descriptor,
    limit_fields,
    read_descriptor,
    segment,
    write_descriptor,
)
from lavsim.machine import Machine, MachineConfig
from lavsim.mmu import descriptors as d
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.segmentation import SegmentCache
from lavsim.models import ModelSpec

if TYPE_CHECKING:
    from lavsim.gdbstub import GdbServer
    from lavsim.snapshot import SystemSnapshot

MiB = 1 << 20

#: Boot, process and thread creation (INFO), faults and panics of a run (WARNING); silent
#: unless the application configures logging (``lavsim -v``).
log = logging.getLogger("lavsim.kernel")
log.addHandler(logging.NullHandler())  # no "last resort" printing of warnings by default

#: The shortest time slice (cycles) besides 0 (no timer). A timer tick that preempts a thread
#: costs the kernel up to 286 cycles on the i486 profile and 224 on the Pentium (measured:
#: interrupt delivery, trap entry, timer_handler, a switch to another group with LLDT and CR3,
#: IRETD), and without global pages the TLB refills that follow push the i486 to livelock at
#: 300: with a period that short, the next tick is pending before the thread runs again.
TIMER_PERIOD_MIN = 400

#: EFLAGS bits a host-created thread may start with (IF is always set, IOPL always 0).
USER_SETTABLE_FLAGS = CF | PF | AF | ZF | SF | OF | DF
#: General registers a host-created thread may be given initial values for.
GENERAL_REGISTERS = ("eax", "ecx", "edx", "ebx", "ebp", "esi", "edi")

_FRAME = struct.Struct("<19I")
_FRAME_FIELDS = (
    "gs", "fs", "es", "ds", "edi", "esi", "ebp", "kesp", "ebx", "edx", "ecx", "eax",
    "vector", "error", "eip", "cs", "eflags", "esp", "ss",
)  # fmt: skip
assert _FRAME.size == L.FRAME_SIZE


# --- values read back ------------------------------------------------------------------------


@attrs.frozen
class SegmentInfo:
    """One descriptor of a process's LDT, as the processor would read it."""

    name: str
    selector: int
    base: int
    limit: int
    dpl: int
    type: int
    present: bool

    @property
    def size(self) -> int:
        """Bytes the segment covers (limit + 1; expand-up segments only)."""
        return self.limit + 1

    @property
    def end(self) -> int:
        """Linear address just past the segment."""
        return self.base + self.limit + 1


@attrs.frozen
class FaultRecord:
    """Why a thread was killed: the exception its user code raised.

    ``pid`` is the process whose code faulted (for a thread inside a migrated procedure, the
    procedure's process, which the kernel finds from CS); ``home_pid`` the thread's own.
    """

    pid: int
    tid: int
    vector: int
    error_code: int
    eip: int
    cs: int
    cr2: int
    home_pid: int | None = None
    #: For #UD/#NM at an x87 instruction, that instruction in words (no FPU is modelled).
    instruction: str | None = None

    @property
    def name(self) -> str:
        """The exception's mnemonic (``#GP``, ``#PF`` ...)."""
        return MNEMONIC.get(self.vector, f"vector {self.vector}")

    def describe(self) -> str:
        text = (
            f"thread {self.tid} of process {self.pid} killed by {self.name}"
            f"({self.error_code:#x}) at {self.cs:#06x}:{self.eip:#010x}"
        )
        if self.home_pid is not None and self.home_pid != self.pid:
            text += f" (in a procedure migrated into from process {self.home_pid})"
        if self.vector == 14:
            text += f", linear {self.cr2:#010x}"
        if self.instruction is not None:
            text += f": {self.instruction} (lavsim models no FPU)"
        return text


@attrs.frozen
class UserRegisters:
    """The user-level registers of a thread that is not running, from its trap frame."""

    eax: int
    ecx: int
    edx: int
    ebx: int
    esp: int
    ebp: int
    esi: int
    edi: int
    eip: int
    eflags: int
    cs: int
    ss: int
    ds: int
    es: int
    fs: int
    gs: int

    @property
    def result(self) -> int:
        """EAX read as a system-call result: signed, so an ``E_*`` error is negative
        (:func:`error_name` names it)."""
        return signed32(self.eax)


@attrs.frozen
class ThreadState:
    """A thread as the kernel sees it: ``state`` is ready, running, blocked or dead.

    ``registers`` are the saved user registers (None while the thread is running: they are in
    the processor then); ``fault`` is set when a user-mode exception killed the thread;
    ``exit_code`` is signed (``exit(-16)`` reads -16, not 4294967280).
    """

    tid: int
    pid: int
    state: str
    exit_code: int
    fault: FaultRecord | None
    registers: UserRegisters | None


@attrs.frozen
class PanicReport:
    """The kernel's own fault that stopped the machine."""

    vector: int
    error_code: int
    eip: int
    cs: int
    cr2: int
    tid: int | None

    def describe(self) -> str:
        name = MNEMONIC.get(self.vector, f"vector {self.vector}")
        return (
            f"kernel panic: {name}({self.error_code:#x}) at {self.cs:#06x}:{self.eip:#010x}"
            f" (thread {self.tid}, CR2 {self.cr2:#010x})"
        )


def signed32(value: int) -> int:
    """A guest dword read as a two's-complement int32: exit codes and system-call results
    (the kernel's ``E_*`` errors are negative) are shown this way host-side."""
    value &= MASK32
    return value - (1 << 32) if value & 0x80000000 else value


def error_name(value: int) -> str | None:
    """The ``E_*`` name of a (signed or unsigned) system-call result, or None."""
    code = signed32(value)
    if code >= 0:
        return None
    for name in dir(L):
        if name.startswith("E_") and getattr(L, name) == code:
            return name
    return None


@attrs.frozen
class BlockedThread:
    """A thread that cannot run when the run ended, and what it waits for.

    ``waits``: ``"receive"`` (on ``port``; None: an L4-style wait), ``"reply"`` (its call on
    ``port`` not received yet, or received by process ``server_pid`` that has not replied),
    ``"network"`` (a receive on network queue ``port``), or ``"other"``. For a call not
    received yet, ``server_pid`` is the port's owner and ``server_alive`` says whether it has
    a thread left to receive it (False: the call waits for ever). ``deadline``: the TSC value
    from which a timed wait (issue 19) times out, at the next timer tick; None when untimed.
    """

    tid: int
    pid: int
    waits: str
    port: int | None = None
    server_pid: int | None = None
    server_alive: bool = True
    deadline: int | None = None

    def describe(self) -> str:
        text = self._what()
        if self.deadline is not None:
            text += f" (timed: times out at the first tick from TSC {self.deadline:,})"
        return text

    def _what(self) -> str:
        text = f"thread {self.tid} of process {self.pid}"
        if self.waits == "receive" and self.port is None:
            return f"{text} waits for an L4-style message from any thread"
        if self.waits == "receive":
            return f"{text} waits in receive on port {self.port}"
        if self.waits == "network":
            return f"{text} waits for a frame on network queue {self.port}"
        if self.waits == "reply":
            if self.port is None:
                return f"{text} waits for the reply of process {self.server_pid} to its call"
            where = " (the name server's port)" if self.port == L.NS_PORT else ""
            text = f"{text} waits in call on port {self.port}{where}, not yet received"
            if not self.server_alive:
                text += f"; its owner, process {self.server_pid}, has no thread left"
            return text
        return f"{text} is blocked"


@attrs.frozen
class RunOutcome:
    """How :meth:`LavenderSystem.run` ended, and what the threads did.

    ``status``:

    - ``"done"``: every thread has ended. They may have ended by exit *or* by a fault:
      ``faulted`` lists those killed by an exception (``clean`` is True when it is empty).
    - ``"idle"``: nothing can run, and every thread left waits for a request (in receive on a
      port, or for a network frame) while no thread waits for a reply: the clients are
      finished and the servers wait for more work. That is a normal end for a system with
      servers, not a deadlock.
    - ``"deadlock"``: nothing can run and some thread waits for something no one will do
      (a reply to its call, typically): ``blocked`` says who waits for what.
    - ``"panic"`` (the kernel faulted; see ``panic``), ``"triple_fault"``, ``"bus_error"``,
      ``"breakpoint"``, ``"cycle_limit"`` or ``"instruction_limit"``.

    ``faulted``: the threads killed by a fault so far (the kernel's record of each: vector,
    error code, CS:EIP, CR2); ``blocked``: the threads blocked when the run stopped.
    ``describe()`` (and ``str()``) says all of it in a few lines.
    """

    status: str
    cycles: int
    instructions: int
    detail: str = ""
    panic: PanicReport | None = None
    faulted: tuple[FaultRecord, ...] = ()
    blocked: tuple[BlockedThread, ...] = ()

    @property
    def done(self) -> bool:
        """Every thread has ended (normally or by a fault)."""
        return self.status == "done"

    @property
    def clean(self) -> bool:
        """The run ended with nothing left to do (``done`` or ``idle``) and no thread was
        killed by a fault."""
        return self.status in ("done", "idle") and not self.faulted

    def describe(self) -> str:
        """The outcome in words: status, cycles, faults and blocked threads, one per line."""
        head = f"{self.status} after {self.cycles:,} cycles, {self.instructions:,} instructions"
        if self.status == "done":
            head += (f": {len(self.faulted)} thread(s) killed by faults" if self.faulted
                     else ": every thread exited")
        lines = [head + (f" ({self.detail})" if self.detail else "")]
        lines += [f"  {fault.describe()}" for fault in self.faulted]
        lines += [f"  {thread.describe()}" for thread in self.blocked]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


# --- handles -----------------------------------------------------------------------------


@attrs.define(eq=False)
class ProcessGroup:
    """Processes sharing one user address space (one page directory)."""

    gid: int
    name: str
    directory: PageDirectory
    next_linear: int = L.USER_BASE
    processes: list[Process] = attrs.field(factory=list)

    @property
    def cr3(self) -> int:
        return self.directory.cr3


@attrs.define(eq=False)
class Process:
    """A process: its segments' linear placement, its image's symbols, its limits."""

    pid: int
    name: str
    group: ProcessGroup | None
    symbols: Mapping[str, int]
    code_base: int
    code_size: int
    data_base: int
    data_size: int
    stack_base: int
    stack_size: int
    ring2_base: int
    ring2_stack_size: int
    max_threads: int
    threads: list[Thread] = attrs.field(factory=list)

    @property
    def resident(self) -> bool:
        """True for a process of the resident space (present in every address space)."""
        return self.group is None

    @property
    def pcb_linear(self) -> int:
        return L.PCB_LINEAR + self.pid * L.PCB_SIZE

    @property
    def ldt_selector(self) -> int:
        return L.ldt_selector(self.pid)

    def symbol(self, name: str) -> int:
        """The offset of a label of the process's image (in its code segment)."""
        try:
            return self.symbols[name]
        except KeyError:
            raise ConfigError("entry", f"process {self.name!r} has no label {name!r}") from None


@attrs.define(eq=False)
class Thread:
    """A thread handle: its id, home process and ``generation`` (how many threads had its id
    and TCB before; ids of dead threads are reused once every TCB has been handed out, and a
    handle whose generation is not the TCB's is stale)."""

    tid: int
    process: Process
    generation: int = 0

    @property
    def tcb_linear(self) -> int:
        return L.TCB_LINEAR + self.tid * L.TCB_SIZE


# --- the system ------------------------------------------------------------------------------


class LavenderSystem:
    """A booted Lavender kernel on a simulated machine.

    ``profile``: the CPU model, as :class:`~lavsim.machine.MachineConfig` takes it (a name such
    as ``"i486"`` or ``"pentium"``, a ``CpuModel``, or a ``TimingProfile`` derived from a
    registered model, see :func:`lavsim.models.get_model`); ``memory_size``: installed bytes
    (at least ``layout.MIN_MEMORY``, at most 1 GiB so that the kernel window maps all of it);
    ``timer_period``: cycles between timer ticks (the time slice), 0 for no preemption;
    ``mmu``: a TLB organisation other than the profile's; ``observe``: attribute cycles and
    count kernel events host-side (see :mod:`lavsim.kernel.observer`; slower, changes no
    simulated result); ``global_pages``: set CR4.PGE at boot (default), so the kernel's and the
    resident space's global TLB entries survive CR3 loads; False flushes them on every one.
    ``board``: the memory system (:mod:`lavsim.boards`; default ``"ideal"``, every access hits).
    """

    def __init__(
        self,
        profile: ModelSpec = "i486",
        memory_size: int = 16 * MiB,
        timer_period: int = 20_000,
        *,
        mmu: MMUConfig | None = None,
        observe: bool = True,
        global_pages: bool = True,
        board: str | Board = "ideal",
    ) -> None:
        _check_int("memory_size", memory_size, L.MIN_MEMORY, L.KERNEL_WINDOW)
        if memory_size % L.PAGE_SIZE:
            raise ConfigError("memory_size", "must be a multiple of 4096")
        _check_int("timer_period", timer_period, 0, MASK32)
        if 0 < timer_period < TIMER_PERIOD_MIN:
            raise ConfigError(
                "timer_period",
                f"must be 0 (no timer) or at least {TIMER_PERIOD_MIN} cycles, got "
                f"{timer_period}: a preempting tick costs the kernel 199-286 cycles on the "
                "i486 profile and 144-224 on the Pentium, plus TLB refills, and with a "
                "shorter period the next tick is due before the thread runs again (livelock)",
            )
        _check_bool("observe", observe)
        _check_bool("global_pages", global_pages)
        config = MachineConfig(
            profile=profile, memory_size=memory_size, mmu=mmu, timer_period=0,
            pic_base=L.PIC_BASE_VECTOR, board=board,
        )  # fmt: skip
        self.machine = Machine(config)
        self.memory = self.machine.memory
        self.image: KernelImage = kernel_image()
        self.frames = FrameAllocator(L.FRAMES_PHYS, memory_size)
        self.page_tables = PageTables(self.memory, self.frames)
        self.page_tables.build_kernel_window(memory_size)
        self.boot_directory = self.page_tables.new_directory("boot")
        self.groups: list[ProcessGroup] = []
        self.processes: dict[int, Process] = {}
        self.threads: dict[int, Thread] = {}
        self._resident_next = L.RESIDENT_BASE
        self._sharing: Sharing | None = None
        self._next_pid = 1
        self._next_tid = 1
        self._started = False
        #: The name server's process once :meth:`start_name_server` has run.
        self.name_server: Process | None = None
        #: CR4.PGE at the hand-over: global kernel and resident pages survive CR3 loads.
        self.global_pages = global_pages
        self._load_kernel(timer_period)
        self.observer: KernelObserver | None = (
            KernelObserver(self.machine, self.image, self.image.symbol("k_current"))
            if observe
            else None
        )
        self._faults_logged: set[tuple[int, int]] = set()
        log.info("booted Lavender: %s, %d MiB, timer period %d, global pages %s",
                 self.machine.model.name, memory_size >> 20, timer_period, global_pages)

    # --- guest memory helpers ---------------------------------------------------------------

    def _kphys(self, linear: int) -> int:
        return linear - L.KERNEL_BASE

    def read_kernel32(self, linear: int) -> int:
        """A dword of kernel space (no TLB, no statistics)."""
        return self.memory.read32(self._kphys(linear))

    def write_kernel32(self, linear: int, value: int) -> None:
        """Store a dword in kernel space (boot-loader style, untimed)."""
        self.memory.write32(self._kphys(linear), value & MASK32)

    def kernel_variable(self, name: str) -> int:
        """The value of the kernel variable ``name`` (``k_status``, ``k_live_threads`` ...).

        An unknown name raises :class:`~lavsim.errors.UnknownNameError` (a ``KeyError``)
        listing the kernel variables that look like it."""
        symbols = self.image.program.symbols
        if name not in symbols:
            known = (s for s in symbols if s.startswith("k_") and "." not in s)
            raise UnknownNameError(
                "kernel variable", name, known, "kernel variables are the k_* labels of data.s"
            )
        return self.read_kernel32(symbols[name])

    def _set_kernel_variable(self, name: str, value: int) -> None:
        self.write_kernel32(self.image.symbol(name), value)

    # --- boot ---------------------------------------------------------------------------------

    def _load_kernel(self, timer_period: int) -> None:
        mem = self.memory
        image = self.image
        symbols = dict(image.program.symbols)
        mem.write(L.KERNEL_IMAGE_PHYS, image.code)
        build_gdt(mem)
        build_idt(mem, symbols)
        build_tss(mem)
        init_ipc(mem)
        mem.fill(L.PCB_PHYS, L.MAX_PROCESSES * L.PCB_SIZE, 0)
        mem.fill(L.LDT_PHYS, L.MAX_PROCESSES * L.LDT_BYTES, 0)
        # Process 0 is the kernel itself (no LDT, the boot address space); thread 0 is the
        # boot pseudo-thread whose ring-0 stack the kernel boots on.
        pcb0 = L.PCB_LINEAR
        self.write_kernel32(pcb0 + L.PCB_PID, 0)
        self.write_kernel32(pcb0 + L.PCB_LDT_SEL, 0)
        self.write_kernel32(pcb0 + L.PCB_CR3, self.boot_directory.cr3)
        tcb0 = L.TCB_LINEAR
        mem.fill(self._kphys(tcb0), L.TCB_FIELDS_END, 0)
        self.write_kernel32(tcb0 + L.TCB_STATE, L.THREAD_DEAD)
        self.write_kernel32(tcb0 + L.TCB_PROCESS, pcb0)
        self.write_kernel32(tcb0 + L.TCB_FAULT_VECTOR, MASK32)
        for name, value in (
            ("k_status", L.STATUS_BOOTING), ("k_timer_period", timer_period),
            ("k_current", tcb0), ("k_current_process", pcb0),
            ("k_current_cr3", self.boot_directory.cr3), ("k_ready_head", 0),
            ("k_ready_tail", 0), ("k_live_threads", 0), ("k_next_tid", 1),
        ):  # fmt: skip
            self._set_kernel_variable(name, value)
        self._enter_kernel(symbols["kernel_start"], tcb0 + L.TCB_SIZE)

    def _enter_kernel(self, entry: int, stack_top: int) -> None:
        """Processor state at the hand-over from the boot loader: protected mode with paging
        (CR0.PG, CR0.WP, CR4.PGE unless ``global_pages`` is off), GDTR/IDTR loaded, flat
        ring-0 segments, IF = 0."""
        cpu = self.machine.cpu
        mmu = self.machine.mmu
        cpu.gdtr_base, cpu.gdtr_limit = L.GDT_LINEAR, 8 * L.GDT_ENTRIES - 1
        cpu.idtr_base, cpu.idtr_limit = L.IDT_LINEAR, 8 * L.IDT_ENTRIES - 1
        cpu.ldtr = SegmentCache.null(0)
        cpu.tr = SegmentCache.null(0)
        cpu.seg[CS] = SegmentCache.from_descriptor(L.KERNEL_CS, kernel_code_descriptor())
        for sreg in (SS, DS, ES):
            cpu.seg[sreg] = SegmentCache.from_descriptor(L.KERNEL_DS, kernel_data_descriptor())
        cpu.seg[FS] = SegmentCache.null(0)
        cpu.seg[GS] = SegmentCache.null(0)
        cpu.set_cpl(0)
        cpu.regs[ESP] = stack_top & MASK32
        cpu.eip = entry
        cpu.set_eflags(EFLAGS_FIXED, MASK32)
        cpu.cr3 = self.boot_directory.cr3
        mmu.load_cr3(cpu.cr3)
        cpu.cr0 = CR0_PE | CR0_ET | CR0_WP | CR0_PG
        cpu.cr4 = CR4_PGE if self.global_pages else 0
        mmu.set_controls(cpu.cr0, cpu.cr4)

    @property
    def sharing(self) -> Sharing:
        """Exports and imports of segments and procedures (:mod:`lavsim.kernel.sharing`)."""
        if self._sharing is None:
            self._sharing = Sharing(self)
        return self._sharing

    # --- state of the kernel --------------------------------------------------------------------

    @property
    def status(self) -> int:
        """``k_status``: layout.STATUS_BOOTING, RUNNING, DONE or PANIC."""
        return self.kernel_variable("k_status")

    @property
    def console(self) -> str:
        """Everything guest code has written to the console port."""
        return self.machine.console

    def _check_quiescent(self) -> None:
        """Host-side creation must not race a kernel path: allowed before the first run, or
        while the processor is in an outer ring or idling in the kernel's HLT."""
        if self.status in (L.STATUS_DONE, L.STATUS_PANIC):
            raise LavsimError("the kernel has stopped; nothing more can be created")
        cpu = self.machine.cpu
        if self._started and cpu.cpl == 0 and not cpu.halted:
            raise LavsimError(
                "the kernel is in the middle of a path (CPL 0); run a little further first"
            )

    # --- groups and processes -------------------------------------------------------------------

    def create_group(self, name: str | None = None) -> ProcessGroup:
        """A new process group: a page directory holding the kernel and resident space."""
        self._check_quiescent()
        gid = len(self.groups) + 1
        directory = self.page_tables.new_directory(name or f"group {gid}")
        group = ProcessGroup(gid, name or f"group{gid}", directory)
        self.groups.append(group)
        return group

    def create_process(
        self,
        group: ProcessGroup,
        source: str | None = None,
        *,
        image: bytes | None = None,
        symbols: Mapping[str, int] | None = None,
        data: bytes = b"",
        data_size: int = 4096,
        stack_size: int = 4096,
        max_threads: int = 4,
        ring2_stack_size: int = 1024,
        name: str | None = None,
    ) -> Process:
        """A process in ``group`` from assembly ``source`` (assembled at offset 0 of its code
        segment) or a ready ``image`` (with optional ``symbols``).

        Segments (each page aligned, each with an exact byte limit): code = the image
        (execute/read, DPL 3, its pages read-only), data = ``data_size`` bytes starting with
        ``data`` (DPL 3), stack = ``max_threads`` slots of ``stack_size`` bytes (DPL 3), and
        the ring-2 stack = ``max_threads`` slots of ``ring2_stack_size`` bytes (DPL 2) that
        migrated calls use (at least ``layout.RING2_STACK_MIN``: the largest call-gate frame
        plus what a procedure may push, so no slot overflows into its neighbour). Nothing is
        built when any argument is refused.
        """
        if not isinstance(group, ProcessGroup) or group not in self.groups:
            raise ConfigError("group", "must be a group of this system")
        return self._create_process(
            group, source, image, symbols, data, data_size, stack_size, max_threads,
            ring2_stack_size, name,
        )  # fmt: skip

    def create_resident_process(
        self,
        source: str | None = None,
        *,
        image: bytes | None = None,
        symbols: Mapping[str, int] | None = None,
        data: bytes = b"",
        data_size: int = 4096,
        stack_size: int = 4096,
        max_threads: int = 4,
        ring2_stack_size: int = 1024,
        name: str | None = None,
    ) -> Process:
        """A process in the resident space (``0x80000000..``): mapped by the page tables every
        address space shares, so its threads run without a CR3 load in any group."""
        return self._create_process(
            None, source, image, symbols, data, data_size, stack_size, max_threads,
            ring2_stack_size, name,
        )  # fmt: skip

    def create_elf_process(
        self,
        group: ProcessGroup | None,
        program: ElfProgram,
        *,
        max_threads: int = 4,
        heap_size: int = 0x10000,
        ring2_stack_size: int = 1024,
        name: str | None = None,
    ) -> Process:
        """A process from a static ELF executable linked by ``lavsim cc`` (C's layout), in
        ``group`` or, for None, the resident space.

        C assumes DS, ES and SS address the same bytes, so the process has one data segment
        that DS, ES and SS all describe: the thread stacks first (``program.data_offset``
        bytes, ``max_threads`` slots; a slot's top is its ESP, as for every process), then the
        program's data and ``.bss`` at their link offsets, then ``heap_size`` bytes of heap.
        The code is a segment of its own. The word ``__lav_heap_end`` (if the program has
        it) is set to the heap's end offset, ``__lav_group`` to the group's id (for
        ``lav_proc_call``). Thread stacks lie inside that one segment; docs/design.md says what
        this layout gives up. Nothing is built when refused."""
        if not isinstance(program, ElfProgram):
            raise ConfigError("program", "must be an ElfProgram (lavsim.elf.load_elf)")
        _check_int("max_threads", max_threads, 1, L.MAX_THREADS_PER_PROCESS)
        _check_int("heap_size", heap_size, 0)
        stacks = program.data_offset
        if stacks == 0 or stacks % (4 * max_threads):
            raise ConfigError(
                "program", f"the data segment's offset {stacks:#x} must hold {max_threads} "
                "stack slots of a multiple of 4 bytes (link with lavsim cc)")
        image = bytearray(program.data_image())
        if heap_size % 4:
            raise ConfigError("heap_size", "must be a multiple of 4")
        total = stacks + len(image) + heap_size
        if "__lav_heap_end" in program.symbols:
            at = program.symbols["__lav_heap_end"] - stacks
            if not 0 <= at <= len(image) - 4:
                raise ConfigError("program", "__lav_heap_end is not a word of the data")
            image[at : at + 4] = struct.pack("<I", total)
        if group is not None and (not isinstance(group, ProcessGroup) or group not in self.groups):
            raise ConfigError("group", "must be a group of this system")
        if "__lav_group" in program.symbols:
            # lav_proc_call's local test (calllib.s has it as an .equ): the process's group
            at = program.symbols["__lav_group"] - stacks
            if not 0 <= at <= len(image) - 4:
                raise ConfigError("program", "__lav_group is not a word of the data")
            gid = L.ADDR_GROUP_RESIDENT if group is None else group.gid
            image[at : at + 4] = struct.pack("<I", gid)
        return self._create_process(
            group, None, program.code, dict(program.symbols), bytes(image), total,
            stacks // max_threads, max_threads, ring2_stack_size, name or program.name,
            shared_stack=True,
        )  # fmt: skip

    def _create_process(
        self,
        group: ProcessGroup | None,
        source: str | None,
        image: bytes | None,
        symbols: Mapping[str, int] | None,
        data: bytes,
        data_size: int,
        stack_size: int,
        max_threads: int,
        ring2_stack_size: int,
        name: str | None,
        shared_stack: bool = False,
    ) -> Process:
        self._check_quiescent()
        # --- check everything before building anything --------------------------------------
        if (source is None) == (image is None):
            raise ConfigError("source", "give exactly one of source and image")
        if source is not None:
            if not isinstance(source, str):
                raise ConfigError("source", "must be a str of assembly")
            try:
                program = assemble(source, origin=0)
            except AssemblyError as error:
                raise ConfigError("source", str(error)) from error
            code = program.code
            syms: Mapping[str, int] = dict(program.symbols)
        else:
            if not isinstance(image, bytes | bytearray):
                raise ConfigError("image", "must be bytes")
            code = bytes(image)
            syms = dict(symbols or {})
        if not code:
            raise ConfigError("source" if source is not None else "image", "the image is empty")
        if not isinstance(data, bytes | bytearray):
            raise ConfigError("data", "must be bytes")
        _check_int("data_size", data_size, 1)
        if len(data) > data_size:
            raise ConfigError("data", f"{len(data)} bytes do not fit data_size {data_size}")
        _check_int("max_threads", max_threads, 1, L.MAX_THREADS_PER_PROCESS)
        _check_int("stack_size", stack_size, 64)
        if stack_size % 4:
            raise ConfigError("stack_size", "must be a multiple of 4")
        # Each thread's slot must hold the largest gate frame plus what a procedure may push:
        # the slots share one segment, so a smaller one lets a caller overwrite its neighbour's
        # return frame (issue 19).
        _check_int("ring2_stack_size", ring2_stack_size, 0)
        if ring2_stack_size < L.RING2_STACK_MIN:
            raise ConfigError(
                "ring2_stack_size",
                f"must be at least {L.RING2_STACK_MIN}: a call gate's frame (up to "
                f"{L.RING2_GATE_FRAME_MAX} bytes) plus the {L.RING2_PROCEDURE_STACK} bytes a "
                f"procedure may push, got {ring2_stack_size}",
            )
        if ring2_stack_size % 4:
            raise ConfigError("ring2_stack_size", "must be a multiple of 4")
        sizes = {
            "code": len(code),
            "data_size": data_size,
            "stack_size": stack_size * max_threads,
            "ring2_stack_size": ring2_stack_size * max_threads,
        }
        if shared_stack:
            # C's layout: the stacks are the first bytes of the data segment (data holds the
            # bytes after them), one region and one descriptor for DS, ES and SS.
            del sizes["stack_size"]
        for field, size in sizes.items():
            limit_fields(field, size)
        if self._next_pid >= L.MAX_PROCESSES:
            raise ConfigError("processes", f"at most {L.MAX_PROCESSES - 1} processes")
        spans = [L.round_up(s) for s in sizes.values()]
        region = sum(spans)
        start = group.next_linear if group is not None else self._resident_next
        end = L.USER_END if group is not None else L.RESIDENT_END
        if start + region + L.PAGE_SIZE > end:
            where = f"group {group.name!r}" if group is not None else "the resident space"
            raise ConfigError("memory", f"{where} has no room for {region:#x} more bytes")
        directory = group.directory if group is not None else None
        pages = region // L.PAGE_SIZE
        tables = self.page_tables.tables_needed(directory, start, region)
        if pages + tables > self.frames.available:
            raise ConfigError(
                "memory_size",
                f"the process needs {pages + tables} frames, {self.frames.available} are free",
            )
        # --- build ------------------------------------------------------------------------------
        pid = self._next_pid
        self._next_pid += 1
        bases = []
        linear = start
        for span in spans:
            bases.append(linear)
            linear += span
        # One unmapped guard page between neighbouring processes.
        if group is not None:
            group.next_linear = linear + L.PAGE_SIZE
        else:
            self._resident_next = linear + L.PAGE_SIZE
        if shared_stack:
            contents: tuple[bytes, ...] = (code, bytes(stack_size * max_threads) + data, b"")
        else:
            contents = (code, bytes(data), b"", b"")
        for index, (base, span, content) in enumerate(zip(bases, spans, contents, strict=True)):
            for page in range(0, span, L.PAGE_SIZE):
                pfn = self.frames.allocate_one("memory_size")
                phys = pfn << L.PAGE_SHIFT
                chunk = content[page : page + L.PAGE_SIZE]
                self.memory.fill(phys, L.PAGE_SIZE, 0)
                if chunk:
                    self.memory.write(phys, chunk)
                # Code pages are read-only: with CR0.WP even ring 2 cannot write them.
                self.page_tables.map_page(directory, base + page, pfn, writable=index != 0)
        if shared_stack:
            code_base, data_base, ring2_base = bases
            stack_base = data_base
            stack_desc = segment(data_base, data_size, d.DATA_READ_WRITE, 3, "data_size")
        else:
            code_base, data_base, stack_base, ring2_base = bases
            stack_desc = segment(stack_base, stack_size * max_threads, d.DATA_READ_WRITE, 3,
                                 "stack_size")
        # LDT: code, data, stack at DPL 3, the ring-2 stack at DPL 2; the rest empty.
        ldt_phys = L.LDT_PHYS + pid * L.LDT_BYTES
        self.memory.fill(ldt_phys, L.LDT_BYTES, 0)
        for index, desc in (
            (L.LDT_CODE, segment(code_base, len(code), d.CODE_EXECUTE_READ, 3, "code")),
            (L.LDT_DATA, segment(data_base, data_size, d.DATA_READ_WRITE, 3, "data_size")),
            (L.LDT_STACK, stack_desc),
            (L.LDT_RING2_STACK, segment(ring2_base, ring2_stack_size * max_threads,
                                        d.DATA_READ_WRITE, 2, "ring2_stack_size")),
        ):  # fmt: skip
            write_descriptor(self.memory, ldt_phys, index, desc)
        write_descriptor(self.memory, L.GDT_PHYS, L.GDT_LDT_FIRST + pid, ldt_descriptor(pid))
        # Process control block.
        pcb = L.PCB_LINEAR + pid * L.PCB_SIZE
        self.memory.fill(self._kphys(pcb), L.PCB_SIZE, 0)
        for offset, value in (
            (L.PCB_PID, pid), (L.PCB_GROUP, group.gid if group is not None else 0),
            (L.PCB_LDT_SEL, L.ldt_selector(pid)),
            (L.PCB_CR3, group.cr3 if group is not None else 0),
            (L.PCB_CODE_LIMIT, len(code) - 1), (L.PCB_STACK_BASE, stack_base),
            (L.PCB_STACK_SLOT, stack_size), (L.PCB_R2_SLOT, ring2_stack_size),
            (L.PCB_MAX_THREADS, max_threads), (L.PCB_THREADS, 0),
        ):  # fmt: skip
            self.write_kernel32(pcb + offset, value)
        process = Process(
            pid=pid, name=name or f"p{pid}", group=group, symbols=syms,
            code_base=code_base, code_size=len(code), data_base=data_base, data_size=data_size,
            stack_base=stack_base, stack_size=stack_size, ring2_base=ring2_base,
            ring2_stack_size=ring2_stack_size, max_threads=max_threads,
        )  # fmt: skip
        self.processes[pid] = process
        if group is not None:
            group.processes.append(process)
        # New code in memory behind the processor's back: drop decoded instructions.
        self.machine.cpu.flush_decode_cache()
        log.info("process %d %r: code %#x+%#x, data %#x+%#x, %s", pid, process.name, code_base,
                 len(code), data_base, data_size,
                 f"group {group.name!r}" if group is not None else "resident")
        return process

    # --- threads --------------------------------------------------------------------------------

    def create_thread(
        self,
        process: Process,
        entry: int | str = 0,
        args: Sequence[int] = (),
        registers: Mapping[str, int] | None = None,
    ) -> Thread:
        """A new ready thread of ``process``, built exactly as the create_thread system call
        builds one: it starts at ``entry`` (an offset or a label of the process's image) with
        EAX = ``args[0]`` and, on its stack, a return address that faults followed by
        ``args`` (cdecl). ``registers`` gives other initial values (``eax`` ... ``edi``,
        ``ebp``, and the status flags and DF of ``eflags``)."""
        self._check_quiescent()
        if not isinstance(process, Process) or self.processes.get(process.pid) is not process:
            raise ConfigError("process", "must be a process of this system")
        offset = process.symbol(entry) if isinstance(entry, str) else entry
        _check_int("entry", offset, 0, process.code_size - 1)
        args = tuple(args)
        for a in args:
            _check_int("args", a, 0, MASK32)
        if 4 * (len(args) + 1) > process.stack_size - 16:
            raise ConfigError("args", "too many arguments for the thread's stack")
        values = {r: 0 for r in GENERAL_REGISTERS}
        values["eax"] = args[0] if args else 0
        eflags = L.USER_EFLAGS
        for reg, value in (registers or {}).items():
            if reg == "eflags":
                _check_int("registers", value, 0, MASK32)
                eflags = L.USER_EFLAGS | (value & USER_SETTABLE_FLAGS)
            elif reg in values:
                values[reg] = _check_int("registers", value, 0, MASK32)
            else:
                raise ConfigError("registers", f"cannot set {reg!r}; use {GENERAL_REGISTERS}")
        pcb = process.pcb_linear
        slots = self.memory.read(self._kphys(pcb + L.PCB_SLOTS), process.max_threads)
        if 0 not in slots:
            raise ConfigError("process", f"all {process.max_threads} thread slots are in use")
        slot = slots.index(0)
        tid, generation = self._free_tcb()
        # --- build (the steps of sys_create_thread in syscall.s) ---------------------------------
        if tid == self.kernel_variable("k_next_tid"):  # a never-used TCB
            self._set_kernel_variable("k_next_tid", tid + 1)
        self.memory.write8(self._kphys(pcb + L.PCB_SLOTS + slot), 1)
        self.write_kernel32(pcb + L.PCB_THREADS, self.read_kernel32(pcb + L.PCB_THREADS) + 1)
        live = self.kernel_variable("k_live_threads")
        self._set_kernel_variable("k_live_threads", live + 1)
        tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
        self.memory.fill(self._kphys(tcb), L.TCB_SIZE, 0)
        for field, value in (
            (L.TCB_TID, tid), (L.TCB_PROCESS, pcb), (L.TCB_SLOT, slot),
            (L.TCB_ESP2, (slot + 1) * process.ring2_stack_size),
            (L.TCB_FAULT_VECTOR, MASK32), (L.TCB_GENERATION, generation),
        ):  # fmt: skip
            self.write_kernel32(tcb + field, value)
        user_esp = (slot + 1) * process.stack_size - 4 * (len(args) + 1)
        words = (L.THREAD_RETURN_SENTINEL, *args)
        self._write_user(process.stack_base + user_esp, struct.pack(f"<{len(words)}I", *words))
        frame = {
            "gs": 0, "fs": 0, "es": L.USER_DS, "ds": L.USER_DS, "kesp": 0, "vector": 0,
            "error": 0, "eip": offset, "cs": L.USER_CS, "eflags": eflags, "esp": user_esp,
            "ss": L.USER_SS, **values,
        }  # fmt: skip
        frame_at = tcb + L.TCB_SIZE - L.FRAME_SIZE
        self.memory.write(
            self._kphys(frame_at), _FRAME.pack(*(frame[f] for f in _FRAME_FIELDS))
        )
        # What switch_to pops (EDI ESI EBX EBP) and its return into trap_return.
        kesp = frame_at - 4 * L.SWITCH_FRAME_WORDS
        self.memory.write(
            self._kphys(kesp),
            struct.pack("<5I", 0, 0, 0, 0, self.image.symbol("trap_return")),
        )
        self.write_kernel32(tcb + L.TCB_KESP, kesp)
        self._enqueue(tcb)
        thread = Thread(tid, process, generation)
        self.threads[tid] = thread
        process.threads.append(thread)
        log.info("thread %d of process %d %r at %#x", tid, process.pid, process.name, offset)
        return thread

    def _free_tcb(self) -> tuple[int, int]:
        """The id and generation of the TCB a new thread gets (tcb_alloc in threads.s): the
        next never-used one, else a dead thread's, one generation on. Not the current TCB:
        the idle loop may still run on a dead thread's stack."""
        tid = self.kernel_variable("k_next_tid")
        if tid < L.MAX_THREADS:
            return tid, 0
        current = self.kernel_variable("k_current")
        for tid in range(1, L.MAX_THREADS):
            tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
            if self.read_kernel32(tcb + L.TCB_STATE) == L.THREAD_DEAD and tcb != current:
                return tid, (self.read_kernel32(tcb + L.TCB_GENERATION) + 1) & MASK32
        raise ConfigError("threads", f"at most {L.MAX_THREADS - 1} live threads")

    def _enqueue(self, tcb: int) -> None:
        """ready_enqueue (sched.s), done by the boot loader."""
        self.write_kernel32(tcb + L.TCB_STATE, L.THREAD_READY)
        self.write_kernel32(tcb + L.TCB_NEXT, 0)
        tail = self.kernel_variable("k_ready_tail")
        if tail:
            self.write_kernel32(tail + L.TCB_NEXT, tcb)
        else:
            self._set_kernel_variable("k_ready_head", tcb)
        self._set_kernel_variable("k_ready_tail", tcb)

    def _user_phys(self, process: Process, linear: int) -> int:
        directory = process.group.directory if process.group else self.boot_directory
        phys = self.page_tables.translate(directory, linear, user=False, write=False)
        if phys is None:
            raise LavsimError(f"{linear:#x} is not mapped in process {process.name!r}")
        return phys

    def _write_user(self, linear: int, data: bytes) -> None:
        process = next(
            p for p in self.processes.values()
            if p.stack_base <= linear < p.stack_base + p.stack_size * p.max_threads
        )  # fmt: skip
        for k, byte in enumerate(data):
            self.memory.write8(self._user_phys(process, linear + k), byte)

    def read_process(self, process: Process, segment_name: str, offset: int, size: int) -> bytes:
        """Bytes of a process's ``"code"``, ``"data"``, ``"stack"`` or ``"ring2"`` segment
        (no TLB, no statistics)."""
        bases = {
            "code": (process.code_base, process.code_size),
            "data": (process.data_base, process.data_size),
            "stack": (process.stack_base, process.stack_size * process.max_threads),
            "ring2": (process.ring2_base, process.ring2_stack_size * process.max_threads),
        }
        if segment_name not in bases:
            raise ConfigError("segment", f"one of {sorted(bases)}, not {segment_name!r}")
        base, seg_size = bases[segment_name]
        if offset < 0 or size < 0 or offset + size > seg_size:
            raise ConfigError("offset", f"{offset:#x}+{size} is outside the {segment_name} segment")
        return bytes(self.memory.read8(self._user_phys(process, base + offset + k))
                     for k in range(size))

    def read_data32(self, process: Process, offset: int) -> int:
        """A dword of the process's data segment."""
        return int.from_bytes(self.read_process(process, "data", offset, 4), "little")

    # --- running --------------------------------------------------------------------------------

    def run(self, max_cycles: int | None = None, max_instructions: int | None = None) -> RunOutcome:
        """Run the kernel until every thread has ended (``"done"``), the kernel panics, the
        machine stops, or a limit is spent. Limits are relative to this call; each must be
        None or an int >= 0 (ConfigError naming it otherwise, before anything runs)."""
        _check_limit("max_cycles", max_cycles)
        _check_limit("max_instructions", max_instructions)
        status = self.status
        if status in (L.STATUS_DONE, L.STATUS_PANIC):
            return self._outcome("", 0, 0, "")
        self._started = True
        if self.observer is not None:
            result = self.observer.run(max_cycles, max_instructions)
        else:
            result = self.machine.run(max_cycles, max_instructions)
        return self._outcome(result.reason, result.cycles, result.instructions, result.detail)

    def _outcome(self, reason: str, cycles: int, instructions: int, detail: str) -> RunOutcome:
        status = self.status
        faulted, blocked = self._thread_report()
        if log.isEnabledFor(logging.WARNING):
            for record in faulted:
                key = (record.tid, self.read_kernel32(
                    L.TCB_LINEAR + record.tid * L.TCB_SIZE + L.TCB_GENERATION))
                if key not in self._faults_logged:
                    self._faults_logged.add(key)
                    log.warning("%s", record.describe())
            if status == L.STATUS_PANIC:
                panic = self.panic_report()
                log.warning("kernel panic: %s", panic.describe() if panic else detail)
        if status == L.STATUS_DONE:
            return RunOutcome("done", cycles, instructions, detail, None, faulted, blocked)
        if status == L.STATUS_PANIC:
            panic = self.panic_report()
            return RunOutcome(
                "panic", cycles, instructions, panic.describe() if panic else detail, panic,
                faulted, blocked,
            )  # fmt: skip
        if reason == "halted":
            waiting = all(b.waits in ("receive", "network") for b in blocked)
            if blocked and waiting:
                return RunOutcome("idle", cycles, instructions,
                                  detail or "every thread left waits for a request",
                                  None, faulted, blocked)  # fmt: skip
            return RunOutcome("deadlock", cycles, instructions, detail or "no thread can run",
                              None, faulted, blocked)  # fmt: skip
        return RunOutcome(reason, cycles, instructions, detail, None, faulted, blocked)

    def _tids(self) -> range:
        """Every thread id handed out so far (host- or guest-created)."""
        return range(1, min(self.kernel_variable("k_next_tid"), L.MAX_THREADS))

    def _fault_record(self, tid: int) -> FaultRecord | None:
        tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
        vector = self.read_kernel32(tcb + L.TCB_FAULT_VECTOR)
        if vector == MASK32:
            return None
        pcb = self.read_kernel32(tcb + L.TCB_PROCESS)
        pid = self.read_kernel32(tcb + L.TCB_FAULT_PID)
        eip = self.read_kernel32(tcb + L.TCB_FAULT_EIP)
        return FaultRecord(
            pid=pid, tid=tid, vector=vector,
            home_pid=self.read_kernel32(pcb + L.PCB_PID),
            error_code=self.read_kernel32(tcb + L.TCB_FAULT_ERROR),
            eip=eip,
            cs=self.read_kernel32(tcb + L.TCB_FAULT_CS),
            cr2=self.read_kernel32(tcb + L.TCB_FAULT_CR2),
            instruction=self._x87_at(pid, eip) if vector in (UD, NM) else None,
        )  # fmt: skip

    def _x87_at(self, pid: int, eip: int) -> str | None:
        """The x87 instruction at ``eip`` of process ``pid``'s code, in words, if it is one
        (lavsim has no FPU: a program using ``double`` stops there with #UD or #NM)."""
        process = self.processes.get(pid)
        if process is None or eip >= process.code_size:
            return None
        size = min(4, process.code_size - eip)
        return x87.describe(self.read_process(process, "code", eip, size))

    def _thread_report(self) -> tuple[tuple[FaultRecord, ...], tuple[BlockedThread, ...]]:
        """Threads killed by faults, and blocked threads with what each waits for (read from
        the TCBs, the port table and the network driver's waiters; host-side only)."""
        faulted: list[FaultRecord] = []
        blocked_tids: list[int] = []
        for tid in self._tids():
            tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
            state = self.read_kernel32(tcb + L.TCB_STATE)
            if state == L.THREAD_DEAD:
                record = self._fault_record(tid)
                if record is not None:
                    faulted.append(record)
            elif state == L.THREAD_BLOCKED:
                blocked_tids.append(tid)
        if not blocked_tids:
            return tuple(faulted), ()
        receivers: dict[int, int] = {}
        callers: dict[int, PortInfo] = {}
        for port in range(L.IPC_MAX_PORTS):
            if not port_open(self.memory, port):
                continue  # (most are closed: this runs at the end of every run)
            info = port_info(self.memory, port)
            for tid in info.waiting_tids:
                receivers[tid] = port
            for message in info.messages:
                if message.caller_tid is not None:
                    callers[message.caller_tid] = info
        network: dict[int, int] = {}
        symbols = self.image.program.symbols
        if "k_net_waiter" in symbols:
            for queue in (0, 1):
                tcb = self.read_kernel32(symbols["k_net_waiter"] + 4 * queue)
                if tcb:
                    network[(tcb - L.TCB_LINEAR) // L.TCB_SIZE] = queue
        blocked = []
        for tid in blocked_tids:
            tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
            pid = self.read_kernel32(self.read_kernel32(tcb + L.TCB_PROCESS) + L.PCB_PID)
            ipc = self.read_kernel32(tcb + L.TCB_IPC_STATE)
            if ipc == L.IPC_WAIT_RECEIVE:
                blocked.append(BlockedThread(tid, pid, "receive", receivers.get(tid)))
            elif ipc == L.IPC_WAIT_REPLY and tid in callers:
                # Queued, not received: whoever owns the port has to receive it first.
                info = callers[tid]
                owner = info.owner_pid
                alive = owner is not None and self.read_kernel32(
                    L.PCB_LINEAR + owner * L.PCB_SIZE + L.PCB_THREADS) > 0
                blocked.append(BlockedThread(tid, pid, "reply", info.number, owner, alive))
            elif ipc == L.IPC_WAIT_REPLY:
                server = self.read_kernel32(tcb + L.TCB_IPC_SERVER)
                server_pid = self.read_kernel32(server + L.PCB_PID) if server else None
                blocked.append(BlockedThread(tid, pid, "reply", None, server_pid))
            elif tid in network:
                blocked.append(BlockedThread(tid, pid, "network", network[tid]))
            elif self.read_kernel32(tcb + L.TCB_L4_STATE) == L.L4_WAIT_ANY:
                blocked.append(BlockedThread(tid, pid, "receive"))
            elif self.read_kernel32(tcb + L.TCB_L4_STATE) == L.L4_WAIT_REPLY:
                partner = self.read_kernel32(tcb + L.TCB_L4_PARTNER)
                server = self.read_kernel32(partner + L.TCB_PROCESS)
                blocked.append(BlockedThread(tid, pid, "reply", None,
                                             self.read_kernel32(server + L.PCB_PID)))
            else:
                blocked.append(BlockedThread(tid, pid, "other"))
            if self.read_kernel32(tcb + L.TCB_TIMED_STATE) == L.TIMED_WAITING:
                deadline = (self.read_kernel32(tcb + L.TCB_DEADLINE_LO)
                            | self.read_kernel32(tcb + L.TCB_DEADLINE_HI) << 32)
                blocked[-1] = attrs.evolve(blocked[-1], deadline=deadline)
        return tuple(faulted), tuple(blocked)

    def panic_report(self) -> PanicReport | None:
        """The kernel's panic record, or None when it has not panicked."""
        if self.status != L.STATUS_PANIC:
            return None
        tcb = self.kernel_variable("k_panic_thread")
        return PanicReport(
            vector=self.kernel_variable("k_panic_vector"),
            error_code=self.kernel_variable("k_panic_error"),
            eip=self.kernel_variable("k_panic_eip"),
            cs=self.kernel_variable("k_panic_cs"),
            cr2=self.kernel_variable("k_panic_cr2"),
            tid=(tcb - L.TCB_LINEAR) // L.TCB_SIZE if tcb else None,
        )

    # --- reading state back ---------------------------------------------------------------------

    def thread_state(self, thread: Thread | int) -> ThreadState:
        """The kernel's view of a thread (from its TCB and its saved trap frame). An id names
        the latest thread that had it; a handle of a thread whose TCB was reused is refused."""
        tid = thread.tid if isinstance(thread, Thread) else thread
        if tid not in self.threads:
            raise ConfigError("thread", f"no thread {tid}")
        tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
        if isinstance(thread, Thread):
            generation = self.read_kernel32(tcb + L.TCB_GENERATION)
            if thread.generation != generation:
                raise ConfigError(
                    "thread", f"thread {tid} (generation {thread.generation}) has ended and its "
                    f"id was reused (generation {generation})",
                )  # fmt: skip
        state = self.read_kernel32(tcb + L.TCB_STATE)
        pcb = self.read_kernel32(tcb + L.TCB_PROCESS)
        pid = self.read_kernel32(pcb + L.PCB_PID)
        fault = self._fault_record(tid)
        registers = None
        running = state == L.THREAD_RUNNING and self.machine.cpu.cpl != 0
        if not running:
            raw = _FRAME.unpack(self.memory.read(self._kphys(tcb + L.TCB_SIZE - L.FRAME_SIZE),
                                                 L.FRAME_SIZE))
            f = dict(zip(_FRAME_FIELDS, raw, strict=True))
            registers = UserRegisters(
                eax=f["eax"], ecx=f["ecx"], edx=f["edx"], ebx=f["ebx"], esp=f["esp"],
                ebp=f["ebp"], esi=f["esi"], edi=f["edi"], eip=f["eip"], eflags=f["eflags"],
                cs=f["cs"] & 0xFFFF, ss=f["ss"] & 0xFFFF, ds=f["ds"] & 0xFFFF,
                es=f["es"] & 0xFFFF, fs=f["fs"] & 0xFFFF, gs=f["gs"] & 0xFFFF,
            )  # fmt: skip
        return ThreadState(
            tid=tid,
            pid=pid,
            state=L.THREAD_STATE_NAMES.get(state, f"state {state}"),
            exit_code=signed32(self.read_kernel32(tcb + L.TCB_EXIT_CODE)),
            fault=fault,
            registers=registers,
        )

    def process_segments(self, process: Process) -> list[SegmentInfo]:
        """The present descriptors of the process's LDT."""
        out = []
        names = {L.LDT_CODE: "code", L.LDT_DATA: "data", L.LDT_STACK: "stack",
                 L.LDT_RING2_STACK: "ring2 stack"}  # fmt: skip
        ldt_phys = L.LDT_PHYS + process.pid * L.LDT_BYTES
        for index in range(L.LDT_ENTRIES):
            desc = read_descriptor(self.memory, ldt_phys, index)
            if not isinstance(desc, d.SegmentDescriptor) or not desc.present:
                continue
            out.append(
                SegmentInfo(
                    name=names.get(index, f"slot {index}"),
                    selector=L.ldt_sel(index, desc.dpl),
                    base=desc.base,
                    limit=desc.effective_limit,
                    dpl=desc.dpl,
                    type=desc.type,
                    present=desc.present,
                )
            )
        return out

    def gdb_server(self, port: int = 0, *, wait: bool = True,
                   timeout: float | None = 60.0) -> GdbServer:
        """A GDB remote stub for this system on ``127.0.0.1:port`` (0: a free port, see
        ``.port``); with ``wait`` it blocks until gdb connects and resumes. Run the system as
        usual, then call ``.finish(exit_code)``. See :mod:`lavsim.kernel.debug`."""
        from lavsim.kernel.debug import gdb_server

        return gdb_server(self, port, wait=wait, timeout=timeout)

    def stats(self) -> KernelStats:
        """Cycles by CPL and routine, kernel events and TLB counts since boot or the last
        :meth:`reset_stats` (needs ``observe=True``)."""
        if self.observer is None:
            raise LavsimError("statistics need a system built with observe=True")
        return self.observer.stats()

    def reset_stats(self) -> None:
        """Start a new statistics window."""
        if self.observer is not None:
            self.observer.reset()

    # --- ports, messages and the name server (lavsim.kernel.ipc, lavsim.kernel.nameserver) -----

    def start_name_server(self) -> Process:
        """Start the name server (a resident process serving port ``NS_PORT``); call it
        before creating the ports whose names should be registered."""
        from lavsim.kernel.nameserver import start_name_server

        self.name_server = start_name_server(self)
        return self.name_server

    def port_info(self, port: int) -> PortInfo:
        """A port's state in kernel memory: open, owner, queued messages, waiting receivers."""
        return port_info(self.memory, port)

    def check_ipc(self) -> list[str]:
        """Inconsistencies of the IPC service's kernel state (empty when sound)."""
        return check_ipc(self.memory)

    # --- checkpoints ----------------------------------------------------------------------------

    def snapshot(self) -> SystemSnapshot:
        """A checkpoint of the machine (every simulated state) and of this system's host-side
        bookkeeping (groups, processes, threads, page tables, frame allocator, observer
        counters, and whatever else the system object holds), restorable with
        :meth:`restore`. The bookkeeping is kept in memory; :meth:`save_snapshot` writes
        machine and bookkeeping to a file."""
        from lavsim.snapshot import SystemSnapshot

        return SystemSnapshot.take(self, self.machine, keep=(self.image,))

    def restore(self, snapshot: SystemSnapshot) -> None:
        """Go back to ``snapshot`` (taken from this system): machine state and bookkeeping are
        restored in place, so handles of processes and threads that existed then stay valid."""
        snapshot.restore_into(self, self.machine)

    def save_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Write the machine (every simulated state) and this system's bookkeeping (see
        :mod:`lavsim.kernel.bookkeeping`) to a snapshot file of kind ``"system"``."""
        from lavsim.kernel.bookkeeping import get_state
        from lavsim.snapshot import KIND_SYSTEM, take_snapshot, write_snapshot_file

        write_snapshot_file(path, KIND_SYSTEM, [take_snapshot(self.machine)], get_state(self))

    def load_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Restore a file written by :meth:`save_snapshot` into this system, which must have
        the same configuration (profile, board, memory size, TLBs, ``observe``,
        ``global_pages``; what it ran before does not matter: everything is replaced).
        Every field is checked first: a refused file (:class:`~lavsim.snapshot.SnapshotError`
        naming what is wrong) changes nothing. Handles are rebuilt: find processes and threads
        in :attr:`processes` and :attr:`threads`, exports in :attr:`sharing`."""
        from lavsim.kernel.bookkeeping import prepare_system
        from lavsim.snapshot import KIND_SYSTEM, read_snapshot_file

        loaded = read_snapshot_file(path, KIND_SYSTEM)
        handles = (ProcessGroup, Process, Thread)
        prepare_system(self, loaded.machines[0], loaded.host, handles).apply()
