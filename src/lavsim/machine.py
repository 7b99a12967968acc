"""A Machine: physical memory + MMU + CPU + devices + the cycle counter.

Build one from a :class:`MachineConfig`, put code in memory with :meth:`Machine.load`, give the
CPU a start state (for example :meth:`Machine.setup_flat_protected_mode`, which does what a boot
loader would), and :meth:`Machine.run` it for a bounded number of cycles or instructions::

    m = Machine(MachineConfig(profile="pentium", timer_period=10_000))
    m.load(0x10000, code)
    m.setup_flat_protected_mode(entry=0x10000)
    result = m.run(max_cycles=1_000_000)
    print(result.reason, result.cycles, m.console)

Stop reasons (:attr:`RunResult.reason`):

- ``"halted"``: HLT with IF = 0 (nothing can wake the CPU), or HLT with IF = 1 when no timer
  event will ever come;
- ``"triple_fault"``: a fault while delivering #DF; :attr:`RunResult.report` tells the chain;
- ``"cycle_limit"`` / ``"instruction_limit"``: the run's budget is spent;
- ``"breakpoint"``: the next instruction starts at a linear address given to
  :meth:`Machine.add_breakpoint` (a run never stops at the instruction it starts at, so running
  again continues past the breakpoint);
- ``"bus_error"``: the guest reached a physical address outside installed memory (a page
  table or a mapping beyond the memory size); :attr:`RunResult.detail` says where.

HLT with IF = 1 idles: the cycle counter jumps to the next timer event (deterministically) and
the interrupt is delivered. Everything is deterministic: the same configuration and the same
guest give the same cycles, registers and memory.

**Step observers** (:meth:`Machine.add_observer`): a callable
``observer(kind, cs, eip, pc, cpl, cycles_before, cycles_after)`` is called after every step of a
run, where ``kind`` is ``"instruction"`` (one instruction executed, or faulted and had its
exception delivered), ``"interrupt"`` (a hardware interrupt delivered, no instruction executed)
or ``"idle"`` (cycles skipped in HLT); ``cs``/``eip``/``pc``/``cpl`` are the CS selector, EIP,
linear address (CS.base + EIP) and CPL *before* the step, and the two cycle counts the TSC
before and after it. The observer reads whatever else it needs from the machine after the step.
Observers must not change guest state.

**Block observers** (:class:`BlockObserver`) need per-run facts only: when every observer is
one and there is no trace hook, ring-0 code is reported once per *run*, consecutive steps of one
CS that no split point of :meth:`BlockObserver.block_splits` separates, with its step count
(``observe_run``), and the CPU runs its blocks meanwhile: one block per :meth:`CPU.run` call,
cut at the splits (:meth:`~lavsim.cpu.core.CPU.set_block_stops`). A run is told before the next
one starts, so the observer reads the state its last step left. Interrupts, idle time,
outer-ring code (an instruction that changes CPL is sorted by where it lands), code outside the
splits' range and each of the splits' single addresses are told one step at a time. A run and
its steps told one by one must count the same (tests/machine/test_block_runs.py); when any
other observer or a trace hook is present, block observers are called step by step like the
others.

**Block execution.** A run with no observer, no breakpoint and no trace hook lets the CPU run
its cached straight-line blocks (:meth:`CPU.run`), each call bounded by the run's remaining
budget and by the timer's next event, and steps the devices between calls exactly as the
per-step loop does: interrupts arrive at the same instruction boundary, and every simulated
result is the same (``tests/machine/test_machine_blocks.py``). With breakpoints (and block
observers) the CPU runs one block per call, cut at the breakpoints, so a breakpoint inside a
block is still where the run stops. A REP string instruction stops
between iterations at the same bound (see :mod:`lavsim.cpu.ops_string`), so a run overshoots its
cycle budget by at most one iteration and a timer interrupt is taken inside a long copy.

**Checkpoints** live in :mod:`lavsim.snapshot`, which depends on this module (it knows the
machine; the machine knows nothing of it): ``take_snapshot(machine)`` returns a
:class:`~lavsim.snapshot.Snapshot` of every simulated state (memory, CPU, MMU and TLB contents
with LRU order and statistics, devices); ``restore_snapshot(machine, snapshot)`` puts it back
and drops every host-side speed cache.
"""

from __future__ import annotations

import importlib
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeGuard, runtime_checkable

import attrs

from lavsim.boards import Board, get_board
from lavsim.cpu.core import CPU
from lavsim.cpu.state import (
    CR0_ET,
    CR0_PE,
    CS,
    DS,
    EFLAGS_FIXED,
    ES,
    ESP,
    FS,
    GS,
    IF,
    MASK32,
    NEVER,
    SS,
)
from lavsim.devices import (
    CONSOLE_PORT,
    PIC_COMMAND,
    PIC_DATA,
    TIMER_COUNT,
    TIMER_PERIOD,
    Bus,
    Console,
    IntervalTimer,
    ProgrammableInterruptController,
)
from lavsim.errors import ConfigError, MemoryAccessError, check_int
from lavsim.memory import PhysicalMemory
from lavsim.memsys import MemoryHierarchy
from lavsim.mmu.descriptors import (
    CODE_EXECUTE_READ_ACCESSED,
    DATA_READ_WRITE_ACCESSED,
    SYS_TSS32_BUSY,
    TSS32_SIZE,
    SegmentDescriptor,
    SystemDescriptor,
    Tss32,
)
from lavsim.mmu.mmu import MMU, MMUConfig, MMUStats
from lavsim.mmu.paging import walk
from lavsim.mmu.segmentation import SegmentCache
from lavsim.models import CpuModel, get_model
from lavsim.timing import TimingProfile

__all__ = [
    "BlockObserver",
    "BlockSplits",
    "FlatLayout",
    "Machine",
    "MachineConfig",
    "MachineStats",
    "RunResult",
    "StepObserver",
    "TraceHook",
]

MiB = 1 << 20

#: Called with one formatted line per instruction when tracing.
TraceHook = Callable[[str], None]

#: Step kinds reported to a :class:`StepObserver`.
STEP_INSTRUCTION = "instruction"
STEP_INTERRUPT = "interrupt"
STEP_IDLE = "idle"


class StepObserver(Protocol):
    """Called after every step of :meth:`Machine.run` (see the module docstring).

    ``kind`` is ``"instruction"``, ``"interrupt"`` or ``"idle"``; ``cs``, ``eip``, ``pc`` (the
    linear address) and ``cpl`` are as they were before the step; ``cycles_before`` and
    ``cycles_after`` are the TSC around it. Positional arguments keep the call cheap.
    """

    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, cycles_before: int,
        cycles_after: int, /,
    ) -> None: ...


@attrs.frozen
class BlockSplits:
    """Where a :class:`BlockObserver` needs its runs cut (linear addresses).

    ``starts``: a run never holds an instruction at one of these other than as its first (the
    edges of whatever the observer sorts by, e.g. routine starts); ``singles``: the instruction
    at one of these is a run of its own (the observer reads state right after it); only CPL-0
    code in ``low <= pc < high`` is reported in runs of more than one step.
    """

    starts: frozenset[int] = frozenset()
    singles: frozenset[int] = frozenset()
    low: int = 0
    high: int = 1 << 32


@runtime_checkable
class BlockObserver(StepObserver, Protocol):
    """A step observer that needs only per-run facts (see the module docstring).

    Called as a :class:`StepObserver` for one step (when something else makes the run go step
    by step), else :meth:`observe_run` once per run of consecutive steps of one kind, CS and
    CPL between the splits of :meth:`block_splits`; a run and its steps reported one by one
    must count the same.
    """

    def block_splits(self) -> BlockSplits:
        """Where runs must be cut (asked at every :meth:`Machine.run`; keep it cheap)."""
        ...

    def observe_run(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, steps: int,
        cycles_before: int, cycles_after: int, /,
    ) -> None:
        """``steps`` steps from CS:EIP (linear ``pc``) at ``cpl``, the TSC around them."""
        ...


#: The members of :class:`BlockObserver` (its own and :class:`StepObserver`'s).
_BLOCK_MEMBERS = ("__call__", "block_splits", "observe_run")


def _is_block_observer(observer: StepObserver) -> TypeGuard[BlockObserver]:
    """``isinstance(observer, BlockObserver)`` as typing decides it for a protocol of methods
    (each member defined, not as None, by the class, else each present and not None on the
    instance), without its cost: the kernel observer adds and removes itself at every run."""
    mro = type(observer).__mro__

    def in_class(name: str) -> bool:
        for base in mro:
            if name in base.__dict__:
                return base.__dict__[name] is not None
        return False

    if all(in_class(name) for name in _BLOCK_MEMBERS):
        return True
    return all(getattr(observer, name, None) is not None for name in _BLOCK_MEMBERS)


class _RunPlan:
    """The splits of a machine's block observers and breakpoints, merged: the page offsets the
    CPU cuts its blocks at, and a memo of the region (run edges) each address lies in."""

    def __init__(self, splits: Iterable[BlockSplits], breakpoints: frozenset[int]) -> None:
        starts: set[int] = set()
        singles: set[int] = set()
        self.low, self.high = 0, 1 << 32
        for split in splits:
            starts |= split.starts
            singles |= split.singles
            self.low = max(self.low, split.low)
            self.high = min(self.high, split.high)
        self.singles = frozenset(singles)
        self.bounds = sorted(starts | {self.low, self.high})
        self.offsets = frozenset(
            a & 0xFFF for a in (*starts, *singles, *breakpoints, self.high) if a < 1 << 32)
        self._regions: dict[int, int] = {}
        edges = [0, *self.bounds, 1 << 32]
        #: The linear ``[start, end)`` of each region, by index.
        self.spans = [(edges[k], edges[k + 1]) for k in range(len(self.bounds) + 1)]

    def region(self, pc: int) -> int:
        """The index of the run region holding ``pc`` (same index: no split between)."""
        r = self._regions.get(pc)
        if r is None:
            r = self._regions[pc] = bisect_right(self.bounds, pc)
        return r


def _check_int(field: str, value: object, low: int, high: int | None = None) -> None:
    check_int(field, value, low, high, hexadecimal=True)


@attrs.frozen
class MachineConfig:
    """What a machine is built from; every field is checked when the config is built
    (:class:`~lavsim.errors.ConfigError` names the field).

    ``profile``: the CPU model (:mod:`lavsim.models`): a registered name (``"i486"``,
    ``"pentium"``), a :class:`~lavsim.models.CpuModel`, or a :class:`TimingProfile` derived
    from a registered model (e.g. by ``with_costs``); :attr:`model` is the model it stands for.
    ``memory_size``: installed bytes (a multiple of 4096, up to 4 GiB); ``mmu``: TLB
    organisation, by default the model's; ``timer_period``: cycles
    between timer interrupts (IRQ 0) at reset, 0 = stopped until the guest programs it;
    ``pic_base``: the vector of IRQ 0 at reset (a multiple of 8); ``board``: the memory
    system (:mod:`lavsim.boards`), a preset name or a :class:`~lavsim.boards.Board`; the
    default ``"ideal"`` (every access hits) gives the cycles of a machine without caches.
    The board's caches and bus timing apply to whatever CPU model ``profile`` names.
    """

    profile: str | TimingProfile | CpuModel = "i486"
    memory_size: int = 16 * MiB
    mmu: MMUConfig | None = None
    timer_period: int = 0
    pic_base: int = 0x20
    board: str | Board = "ideal"
    _model: CpuModel = attrs.field(init=False, repr=False, eq=False)
    _board: Board = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_model", get_model(self.profile, "profile"))
        object.__setattr__(self, "_board", get_board(self.board, "board"))
        _check_int("memory_size", self.memory_size, 4096, 1 << 32)
        if self.memory_size % 4096:
            raise ConfigError("memory_size", "must be a multiple of 4096")
        if self.mmu is not None and not isinstance(self.mmu, MMUConfig):
            raise ConfigError("mmu", "must be an MMUConfig or None")
        _check_int("timer_period", self.timer_period, 0)
        _check_int("pic_base", self.pic_base, 0, 0xF8)
        if self.pic_base % 8:
            raise ConfigError("pic_base", "must be a multiple of 8")

    @property
    def model(self) -> CpuModel:
        """The CPU model ``profile`` stands for (timing, TLBs, CPUID identity)."""
        return self._model

    @property
    def board_spec(self) -> Board:
        """The board ``board`` names."""
        return self._board

    @property
    def mmu_config(self) -> MMUConfig:
        """The MMU configuration in force: the override, else the model's."""
        return self.mmu if self.mmu is not None else self._model.mmu


@attrs.frozen
class RunResult:
    """How a :meth:`Machine.run` ended: ``reason`` (see the module docstring), the ``cycles``
    and ``instructions`` of this run, the triple-fault ``report`` (or None), the
    ``breakpoint`` address hit (or None) and a ``detail`` text."""

    reason: str
    cycles: int
    instructions: int
    report: Any = None
    breakpoint: int | None = None
    detail: str = ""


@attrs.frozen
class MachineStats:
    """Counters of a machine since it was built: cycles (the TSC), instructions retired,
    cycles spent idle in HLT, timer ticks, interrupts acknowledged, and the MMU's statistics."""

    cycles: int
    instructions: int
    idle_cycles: int
    timer_ticks: int
    interrupts: int
    tlb: MMUStats

    def table(self) -> str:
        """The counters as text a person can read."""
        rows = [
            ("cycles", self.cycles),
            ("instructions", self.instructions),
            ("idle cycles (HLT)", self.idle_cycles),
            ("timer ticks", self.timer_ticks),
            ("interrupts taken", self.interrupts),
        ]
        lines = [f"{name:20} {value:>14,}" for name, value in rows]
        return "\n".join(lines) + "\n" + self.tlb.table()


@attrs.frozen
class FlatLayout:
    """Where :meth:`Machine.setup_flat_protected_mode` put things (physical = linear)."""

    gdt_base: int
    gdt_limit: int
    idt_base: int
    idt_limit: int
    tss_base: int
    stack_top: int
    kernel_code: int = 0x08
    kernel_data: int = 0x10
    user_code: int = 0x1B
    user_data: int = 0x23
    tss: int = 0x28
    #: First GDT index free for the caller's own descriptors.
    first_free_index: int = 6


class _ReadOnly:
    """Physical memory seen by a debugger walk: reads only, A/D write-backs dropped."""

    def __init__(self, memory: PhysicalMemory) -> None:
        self.memory = memory

    def read32(self, addr: int, /) -> int:
        return self.memory.read32(addr)

    def write32(self, addr: int, value: int, /) -> None:
        pass


class Machine:
    """Memory, MMU, CPU, interrupt controller, interval timer, console and cycle counter."""

    def __init__(self, config: MachineConfig | None = None) -> None:
        self.config = config if config is not None else MachineConfig()
        #: The CPU model: the source of the timing profile, the TLBs and the CPUID identity.
        self.model: CpuModel = self.config.model
        self.profile: TimingProfile = self.model.profile
        self.memory = PhysicalMemory(self.config.memory_size)
        self.mmu = MMU(self.memory, self.config.mmu_config)
        self.cpu = CPU(self.mmu, self.profile)
        self.cpu.cpuid_signature = self.model.cpuid_signature
        #: The board's caches and write buffers, attached to the MMU as a tracer (None on
        #: the ideal board: no tracer, the fast paths stay on).
        self.hierarchy: MemoryHierarchy | None = self.config.board_spec.build(self.cpu, self.mmu)
        if self.hierarchy is not None:
            self.mmu.add_tracer(self.hierarchy)
        self.pic = ProgrammableInterruptController(self.config.pic_base)
        self.timer = IntervalTimer(self.pic, self._now, self.config.timer_period)
        self.console_device = Console()
        self.bus = Bus()
        self.bus.attach(self.pic, PIC_COMMAND, PIC_DATA)
        self.bus.attach(self.timer, TIMER_PERIOD, TIMER_COUNT)
        self.bus.attach(self.console_device, CONSOLE_PORT)
        cpu: Any = self.cpu
        cpu.io_read = self._io_read
        cpu.io_write = self._io_write
        cpu.ack_interrupt = self._acknowledge
        self.breakpoints: set[int] = set()
        #: Called with one line per instruction when set (see :meth:`trace_line`).
        self.trace: TraceHook | None = None
        self.idle_cycles = 0
        self._observers: tuple[StepObserver, ...] = ()
        #: The observers that are all BlockObservers (else ()), and the plan they gave.
        self._block_observers: tuple[BlockObserver, ...] = ()
        self._plan: tuple[Any, _RunPlan] | None = None

    # --- devices ---------------------------------------------------------------------------
    def _now(self) -> int:
        return self.cpu.tsc

    def _update_irq(self) -> None:
        self.cpu.irq_pending = self.pic.output

    def _io_read(self, port: int, size: int) -> int:
        value = self.bus.read(port, size)
        self._update_irq()
        return value

    def _io_write(self, port: int, size: int, value: int) -> None:
        event = self.timer.next_event
        self.bus.write(port, size, value)
        self._update_irq()
        if self.timer.next_event != event:
            # The timer was reprogrammed: a block run bounded by the old event must stop at
            # this instruction boundary so that run() bounds it again by the new one.
            self.cpu.request_stop()

    def _acknowledge(self) -> int | None:
        vector = self.pic.acknowledge()
        self._update_irq()
        return vector

    def _advance_devices(self) -> None:
        if self.timer.advance(self.cpu.tsc):
            self._update_irq()

    @property
    def console(self) -> str:
        """Everything the guest wrote to the console port, as text."""
        return self.console_device.text

    # --- loading and setup -----------------------------------------------------------------
    def load(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` into physical memory at ``address`` (untimed, like a boot loader).

        Decoded instructions cached for the frames written are dropped, so new code is seen at
        the next fetch. Refused (``MemoryAccessError``, nothing written) outside memory.
        """
        n = memoryview(data).nbytes
        self.memory.write(address, data)
        if n:
            self.cpu.physical_written(address, n)

    def setup_flat_protected_mode(
        self,
        entry: int,
        *,
        stack_top: int = 0x90000,
        gdt_base: int = 0x1000,
        gdt_entries: int = 64,
        idt_base: int = 0x2000,
        tss_base: int = 0x2800,
    ) -> FlatLayout:
        """Do what a boot loader does before jumping to a 32-bit kernel, without timing it.

        Builds a GDT (null; ring-0 flat code 0x08 and data 0x10; ring-3 flat code 0x1B and
        data 0x23; a 32-bit TSS 0x28 with SS0:ESP0 = 0x10:``stack_top``; the other
        ``gdt_entries`` slots empty), an IDT of 256 empty (not present) gates, loads GDTR,
        IDTR and TR (TSS marked busy), CS = 0x08, DS = ES = FS = GS = SS = 0x10, ESP =
        ``stack_top``, EIP = ``entry``, CPL 0, EFLAGS = 2 (IF = 0), CR0 = PE | ET, paging off.
        """
        mem = self.memory
        code0 = SegmentDescriptor(0, 0xFFFFF, CODE_EXECUTE_READ_ACCESSED, 0, g=True, db=True)
        data0 = SegmentDescriptor(0, 0xFFFFF, DATA_READ_WRITE_ACCESSED, 0, g=True, db=True)
        code3 = attrs.evolve(code0, dpl=3)
        data3 = attrs.evolve(data0, dpl=3)
        tss = SystemDescriptor(tss_base, TSS32_SIZE - 1, SYS_TSS32_BUSY)
        gdt_limit = 8 * gdt_entries - 1
        mem.fill(gdt_base, 8 * gdt_entries, 0)
        descriptors: tuple[SegmentDescriptor | SystemDescriptor, ...] = (
            code0, data0, code3, data3, tss)
        for index, desc in enumerate(descriptors, start=1):
            mem.write(gdt_base + 8 * index, desc.encode())
        mem.fill(idt_base, 8 * 256, 0)
        mem.write(tss_base, Tss32(esp0=stack_top, ss0=0x10).encode())
        cpu = self.cpu
        # The tables were written around the CPU: no decoded instruction may survive them.
        cpu.flush_decode_cache()
        cpu.gdtr_base, cpu.gdtr_limit = gdt_base, gdt_limit
        cpu.idtr_base, cpu.idtr_limit = idt_base, 8 * 256 - 1
        cpu.tr = SegmentCache.from_descriptor(0x28, tss)
        cpu.ldtr = SegmentCache.null(0)
        cpu.seg[CS] = SegmentCache.from_descriptor(0x08, code0)
        for sreg in (SS, DS, ES, FS, GS):
            cpu.seg[sreg] = SegmentCache.from_descriptor(0x10, data0)
        cpu.set_cpl(0)
        cpu.regs[ESP] = stack_top & MASK32
        cpu.eip = entry & MASK32
        cpu.set_eflags(EFLAGS_FIXED, MASK32)
        cpu.cr0 = CR0_PE | CR0_ET
        cpu.cr4 = 0
        self.mmu.set_controls(cpu.cr0, cpu.cr4)
        return FlatLayout(gdt_base, gdt_limit, idt_base, 8 * 256 - 1, tss_base, stack_top)

    # --- breakpoints, tracing --------------------------------------------------------------
    def add_breakpoint(self, linear: int) -> None:
        """Stop a run before executing the instruction that starts at ``linear``."""
        self.breakpoints.add(linear & MASK32)

    def remove_breakpoint(self, linear: int) -> None:
        """Forget a breakpoint (no error if there was none)."""
        self.breakpoints.discard(linear & MASK32)

    @property
    def pc(self) -> int:
        """Linear address of the next instruction (CS.base + EIP)."""
        return (self.cpu.seg[CS].base + self.cpu.eip) & MASK32

    def peek(self, linear: int, n: int) -> bytes | None:
        """Read guest bytes at a linear address without touching the modelled TLB, A/D
        bits or statistics (a debugger's view); None when a page is not mapped."""
        cpu = self.cpu
        out = bytearray()
        try:
            for k in range(n):
                address = (linear + k) & MASK32
                if cpu.cr0 & (1 << 31):
                    result = walk(_ReadOnly(self.memory), cpu.cr3, address, False, False,
                                  False, bool(cpu.cr4 & (1 << 4)))
                    if result.fault is not None:
                        return None
                    address = result.physical
                out += self.memory.read(address, 1)
        except MemoryAccessError:
            return None
        return bytes(out)

    def trace_line(self) -> str:
        """``cycle CS:EIP disassembly`` of the next instruction (hex bytes when the
        disassembler is not available or refuses the bytes)."""
        cpu = self.cpu
        code = self.peek(self.pc, 15)
        text = "<unmapped>"
        if code is not None:
            text = code[:8].hex(" ")
            try:
                # Imported lazily: the disassembler is optional for tracing.
                disasm = importlib.import_module("lavsim.cpu.disasm")
                line: Any = disasm.disassemble_one(code, cpu.eip)
                text = f"{line.bytes.hex(' '):<24} {line.text}"
            except Exception:  # the disassembler is optional for tracing
                pass
        return f"{cpu.tsc:>12} {cpu.seg[CS].selector:04x}:{cpu.eip:08x}  {text}"

    # --- step observers --------------------------------------------------------------------
    def add_observer(self, observer: StepObserver) -> None:
        """Call ``observer`` after every step of every later run (see :class:`StepObserver`).

        Adding or removing observers takes effect at the next :meth:`run`.
        """
        if not callable(observer):
            raise ConfigError("observer", "must be callable")
        self._set_observers((*self._observers, observer))

    def remove_observer(self, observer: StepObserver) -> None:
        """Stop calling ``observer`` (no error if it was not added)."""
        self._set_observers(tuple(o for o in self._observers if o is not observer))

    def _set_observers(self, observers: tuple[StepObserver, ...]) -> None:
        self._observers = observers
        blocks = tuple(o for o in observers if _is_block_observer(o))
        self._block_observers = blocks if len(blocks) == len(observers) else ()

    def _run_plan(self) -> _RunPlan:
        """The merged splits of the block observers and breakpoints (rebuilt when they
        change)."""
        splits = tuple(o.block_splits() for o in self._block_observers)
        key = (splits, frozenset(self.breakpoints))
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, _RunPlan(splits, key[1]))
        return self._plan[1]

    @property
    def observers(self) -> tuple[StepObserver, ...]:
        """The step observers, in the order they are called."""
        return self._observers

    # --- running ---------------------------------------------------------------------------
    def step(self) -> RunResult:
        """Execute one instruction (or take one pending interrupt, or idle once)."""
        return self.run(max_instructions=1)

    def run(
        self, max_cycles: int | None = None, max_instructions: int | None = None
    ) -> RunResult:
        """Run until a stop reason (see the module docstring); both limits are relative to the
        start of this run. Without limits the run ends only by halt, triple fault, breakpoint
        or bus error. A limit must be None or an int >= 0 (ConfigError otherwise)."""
        for field, limit in (("max_cycles", max_cycles), ("max_instructions", max_instructions)):
            if limit is not None:
                check_int(field, limit, 0)
        cpu: Any = self.cpu
        start_cycles = cpu.tsc
        start_instructions = cpu.instructions
        cycle_limit = None if max_cycles is None else start_cycles + max_cycles
        insn_limit = None if max_instructions is None else start_instructions + max_instructions
        timer = self.timer
        observers = self._observers
        block_observers = self._block_observers
        # Nothing needs control between instructions: run the CPU's blocks (CPU.run), each
        # call bounded by the next device event and the budget. Block observers and
        # breakpoints: the CPU runs one block per call, cut at their splits (see _run_unit).
        plan: _RunPlan | None = None
        if self.trace is None and (block_observers or (not observers and self.breakpoints)):
            plan = self._run_plan()
        blocks = plan is None and not observers and self.trace is None
        cpu.set_block_stops(None if plan is None else plan.offsets)
        # The run being gathered for the block observers: [region, CS, EIP, pc, steps,
        # cycles before, cycles after] (CPL 0), or empty.
        pending: list[int] = []
        first = True
        reason = ""
        detail = ""
        hit: int | None = None
        try:
            while True:
                if cpu.shutdown:
                    reason = "triple_fault"
                    break
                event = timer.next_event
                if event is not None and cpu.tsc >= event:
                    self._advance_devices()
                    event = timer.next_event
                if cpu.halted:
                    if pending:
                        self._report_run(pending, block_observers)
                    if observers:
                        woke = self._idle_observed(cycle_limit, observers)
                    else:
                        woke = self._idle(cycle_limit)
                    if woke is not None:
                        reason = woke
                        break
                    continue
                if insn_limit is not None and cpu.instructions >= insn_limit:
                    reason = "instruction_limit"
                    break
                if cycle_limit is not None and cpu.tsc >= cycle_limit:
                    reason = "cycle_limit"
                    break
                # A REP string instruction stops between iterations at the budget or at the
                # next device event, so the devices advance (and an interrupt is taken) at
                # the same iteration as on real hardware, not after the whole instruction.
                until = NEVER if cycle_limit is None else cycle_limit
                if event is not None and event < until:
                    until = event
                if blocks:
                    cpu.run(
                        None if insn_limit is None else insn_limit - cpu.instructions,
                        None if until >= NEVER else until - cpu.tsc,
                    )
                    continue
                if self.breakpoints and not first and self.pc in self.breakpoints:
                    reason = "breakpoint"
                    hit = self.pc
                    break
                first = False
                if plan is not None:
                    self._run_unit(plan, pending, insn_limit, until)
                    continue
                if self.trace is not None:
                    self.trace(self.trace_line())
                cpu._rep_until = until
                if observers:
                    self._step_observed(observers)
                else:
                    cpu.step()
        except MemoryAccessError as error:
            reason = "bus_error"
            detail = str(error)
        finally:
            # The bound belongs to this run: a CPU stepped later on its own is not bounded.
            cpu._rep_until = NEVER
            cpu.set_block_stops(None)
            if pending:
                self._report_run(pending, block_observers)
        report = getattr(cpu, "shutdown_report", None) if reason == "triple_fault" else None
        if reason == "triple_fault" and not detail:
            detail = str(cpu.shutdown)
        return RunResult(
            reason,
            cpu.tsc - start_cycles,
            cpu.instructions - start_instructions,
            report,
            hit,
            detail,
        )

    def _run_unit(
        self, plan: _RunPlan, pending: list[int], insn_limit: int | None, until: int
    ) -> None:
        """One CPU dispatch unit (a block cut at the plan's splits, or one instruction) or,
        where the block observers need it, one step; ``pending`` (the run being gathered) is
        updated in place, so a bus error leaves in it the steps that retired."""
        cpu: Any = self.cpu
        observers = self._block_observers
        cs = cpu.seg[CS]
        eip = cpu.eip
        pc = (cs.base + eip) & MASK32
        deliver = cpu.irq_pending and cpu.eflags & IF
        if observers and (deliver or cpu.cpl or not plan.low <= pc < plan.high
                          or pc in plan.singles):
            # An interrupt, outer-ring code (where an instruction that changes CPL is sorted
            # by where it lands), code outside the observers' ranges, or a single: one step.
            if pending:
                self._report_run(pending, observers)
            cpu._rep_until = until
            self._step_observed(observers)
            return
        if deliver:
            cpu.step()  # the interrupt alone: a breakpoint at the handler is tested next
            return
        region = plan.region(pc) if observers else 0
        if pending and (pending[0] != region or pending[1] != cs.selector):
            # Told before the next unit runs: observers read the state the run left.
            self._report_run(pending, observers)
        before = cpu.tsc
        counted = cpu.instructions + cpu.unretired
        try:
            if not (cpu.fast and cpu.decode_cache):
                # The CPU runs no blocks (see CPU.run): a unit is one step, and step() costs
                # less than a run() call. (With tracers the CPU runs traced blocks in units.)
                cpu._rep_until = until
                cpu.step()
            else:
                # (With tracers, run_unit: what run() does, with less setup per unit; it
                # goes on into the next blocks while they stay in this region.)
                n = None if insn_limit is None else insn_limit - cpu.instructions
                c = None if until >= NEVER else until - before
                if self.mmu.tracing:
                    cpu.run_unit(n, c, plan.spans[region if observers else plan.region(pc)])
                else:
                    cpu.run(n, c)
        finally:
            # (After a bus error the run's last cycles include the failing instruction's.)
            steps = cpu.instructions + cpu.unretired - counted
            if observers and steps:
                if pending:
                    pending[4] += steps
                    pending[6] = cpu.tsc
                else:
                    pending[:] = [region, cs.selector, eip, pc, steps, before, cpu.tsc]

    @staticmethod
    def _report_run(run: list[int], observers: tuple[BlockObserver, ...]) -> None:
        """Tell the block observers a gathered CPL-0 run; ``run`` is emptied."""
        _, selector, eip, pc, steps, before, after = run
        run.clear()
        for observer in observers:
            observer.observe_run(STEP_INSTRUCTION, selector, eip, pc, 0, steps, before, after)

    def _step_observed(self, observers: tuple[StepObserver, ...]) -> None:
        """One ``cpu.step()`` reported to the observers."""
        cpu = self.cpu
        cs = cpu.seg[CS]
        eip = cpu.eip
        cpl = cpu.cpl
        before = cpu.tsc
        # cpu.step() delivers a pending interrupt instead of executing when IF = 1 (IF is
        # never held in the lazy flags, so eflags can be read directly).
        kind = STEP_INTERRUPT if cpu.irq_pending and cpu.eflags & IF else STEP_INSTRUCTION
        selector = cs.selector
        pc = (cs.base + eip) & MASK32
        cpu.step()
        after = cpu.tsc
        for observer in observers:
            observer(kind, selector, eip, pc, cpl, before, after)

    def _idle_observed(
        self, cycle_limit: int | None, observers: tuple[StepObserver, ...]
    ) -> str | None:
        """:meth:`_idle` reported to the observers (nothing is reported when no time passed
        and no interrupt was delivered)."""
        cpu = self.cpu
        cs = cpu.seg[CS]
        eip = cpu.eip
        cpl = cpu.cpl
        before = cpu.tsc
        delivers = bool(cpu.eflags & IF) and cpu.irq_pending
        woke = self._idle(cycle_limit)
        after = cpu.tsc
        if delivers or after != before:
            kind = STEP_INTERRUPT if delivers else STEP_IDLE
            pc = (cs.base + eip) & MASK32
            for observer in observers:
                observer(kind, cs.selector, eip, pc, cpl, before, after)
        return woke

    def _idle(self, cycle_limit: int | None) -> str | None:
        """The CPU is halted: take a pending interrupt, or skip to the next timer event.
        Returns a stop reason, or None when the CPU can go on."""
        cpu: Any = self.cpu
        if not cpu.get_eflags() & IF:
            return "halted"
        if cpu.irq_pending:
            from lavsim.cpu.interrupts import deliver_external

            deliver_external(cpu)
            return None
        event = self.timer.next_event
        if event is None:
            return "halted"
        if cycle_limit is not None and event > cycle_limit:
            if cpu.tsc < cycle_limit:
                self.idle_cycles += cycle_limit - cpu.tsc
                cpu.tsc = cycle_limit
            return "cycle_limit"
        if event > cpu.tsc:
            self.idle_cycles += event - cpu.tsc
            cpu.tsc = event
        self._advance_devices()
        return None

    # --- inspection ------------------------------------------------------------------------
    def stats(self) -> MachineStats:
        """The machine's counters now."""
        return MachineStats(
            cycles=self.cpu.tsc,
            instructions=self.cpu.instructions,
            idle_cycles=self.idle_cycles,
            timer_ticks=self.timer.ticks,
            interrupts=self.pic.acknowledged,
            tlb=self.mmu.stats,
        )

    def state_digest(self) -> str:
        """A digest of registers, segment selectors, control registers, the TSC and memory:
        two runs are identical exactly when their digests are."""
        import hashlib

        cpu = self.cpu
        h = hashlib.sha256()
        parts = [*cpu.regs, cpu.eip, cpu.get_eflags(), cpu.cpl, cpu.cr0, cpu.cr2, cpu.cr3,
                 cpu.cr4, cpu.tsc, cpu.instructions, *(s.selector for s in cpu.seg)]
        h.update(repr(parts).encode())
        h.update(self.memory.digest().encode())
        h.update(self.console_device.data)
        return h.hexdigest()
