"""The RPC cycle table: what one inter-process call costs by each mechanism (issue 6).

A *workload* boots a :class:`~lavsim.kernel.LavenderSystem`, builds a client and a server for
one mechanism, and lets the client make ``calls`` calls in a loop. Every call lies between two
labels of the client, ``call_start`` and ``call_end``; machine breakpoints on them cut the run
into one window per call. Over each window

- the kernel's step observer (:class:`~lavsim.kernel.observer.KernelObserver`) counts cycles
  (the TSC advance), instructions, kernel entries, context switches, CR3 loads, TLB misses and
  the kernel's message copies (``ipc_copy_in`` / ``ipc_copy_out`` and their byte counts);
- a companion step observer (:class:`PhaseObserver`) attributes every step's cycles to a
  phase, using the same rows as the kernel observer (kernel routine by EIP, ``<user>``,
  ``<trap>``, ``<gate call>`` ...) mapped through :data:`lavsim.kernel.ipc.PHASES`; it moves the
  page-walk cycles of each step (the MMU's walk reads and A/D writes, charged by the profile's
  ``page_walk.*`` costs) into ``TLB refill``, tells the client's user code from the server's,
  gives every step taken while another (filler) thread is current to ``other threads``, and
  counts the bytes a call gate copied (from the ring-2 stack depth after the gate) and the
  bytes the client copied into a shared segment (ECX at its ``copy_args`` label).

The first call is *cold*; *warm* is the mean of the others. Nothing is a constant: every
figure comes from the guest's instructions and the MMU's events in the run.

Mechanisms (:data:`MECHANISMS`):

1. ``migration-group``: ``lav_call`` through a call gate into a procedure exported by another
   process of the client's group (the thread migrates: gate, ring-2 procedure, RETF).
2. ``migration-resident``: the same into a procedure of a resident-space server (GDT gate).
3. ``message-group``: message RPC (``call`` / ``reply_wait``) to a server of the same group.
4. ``message-groups``: the same to a server in another group (CR3 load each way).
5. ``handoff-groups``: message RPC with direct handoff (``call_handoff`` /
   ``reply_wait_handoff``) to a server in another group: the L4-style baseline.

Argument size: a call carries ``size`` bytes of arguments (a multiple of 4, 0..4096) and a
one-word result. Message RPC sends them as the request message (copied user -> kernel ->
user); the reply is empty (the result is the reply length in EAX). Migration passes up to
31 doublewords (124 bytes) as gate parameters, pushed by the client, copied once more by
``lav_call`` and once by the gate onto the ring-2 stack; a larger payload is written by the
client into a data segment the server exported to it (one REP MOVSD) and the procedure gets
its offset and length as two gate parameters. The procedure and the message server do no
work on the payload (``working_set`` pages of their own data are read each call, 0 by
default).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import textwrap
from collections.abc import Callable, Sequence

import attrs

from lavsim.cpu.state import EAX, ECX, ESP
from lavsim.errors import ConfigError, LavsimError
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import PHASES as IPC_PHASES
from lavsim.kernel.ipc import user_prelude
from lavsim.kernel.observer import (
    ROW_FAR_RETURN,
    ROW_GATE_CALL,
    ROW_INTERRUPT,
    ROW_TRAP,
    ROW_USER,
    KernelStats,
)
from lavsim.kernel.sharing import lav_call_source
from lavsim.kernel.system import LavenderSystem, Process
from lavsim.machine import STEP_INSTRUCTION, STEP_INTERRUPT
from lavsim.mmu import descriptors as d
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.tlb import TLBConfig

__all__ = [
    "MECHANISMS",
    "PHASE_ORDER",
    "CallCost",
    "Figures",
    "Mechanism",
    "PhaseObserver",
    "RemoteRow",
    "RpcTable",
    "Workload",
    "measure_call",
    "rpc_table",
]

PROFILES = ("i486", "pentium")
DEFAULT_SIZES = (0, 16, 64, 256, 1024, 4096)
#: Most argument bytes a call gate copies (31 doublewords).
GATE_MAX_BYTES = 4 * 31
#: What the procedure returns (checked after every call).
RESULT = 0x600D

# Client data segment layout.
_ADDRESS = 0x000  # lav_call's address structure (20 bytes)
_COUNTER = 0x030  # calls left
_SHARED_SEL = 0x038  # the arguments' shared segment (migration above 124 bytes)
_PORT = 0x034  # the server's port
_PAYLOAD = 0x1000  # the arguments (up to 4096 bytes)
_REPLY = 0x2000  # the reply buffer
_CLIENT_DATA = 0x3000
# Server data segment layout (message servers): the receive buffer, then the working set.
_SERVER_BUFFER = 0x1000
_SERVER_WORKING_SET = 0x2000


@attrs.frozen
class Mechanism:
    """One way of making an inter-process call."""

    key: str
    label: str
    migration: bool
    resident: bool = False
    cross_group: bool = False
    handoff: bool = False


MECHANISMS: tuple[Mechanism, ...] = (
    Mechanism("migration-group", "in-group migration", migration=True),
    Mechanism("migration-resident", "migration into resident server", migration=True,
              resident=True),
    Mechanism("message-group", "message RPC, one group", migration=False),
    Mechanism("message-groups", "message RPC, two groups", migration=False, cross_group=True),
    Mechanism("handoff-groups", "message RPC, handoff, two groups", migration=False,
              cross_group=True, handoff=True),
)  # fmt: skip
_BY_KEY = {m.key: m for m in MECHANISMS}


def mechanism(key: str) -> Mechanism:
    """The mechanism named ``key`` (see :data:`MECHANISMS`)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ConfigError("mechanism", f"one of {sorted(_BY_KEY)}, not {key!r}") from None


def _check_int(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field, f"must be an int in {low}..{high}, got {value!r}")
    return value


@attrs.frozen
class Workload:
    """What surrounds the calls: CPU profile, argument size, other runnable threads, the
    server's working set, the TLB, global pages, and how many calls (the first is cold)."""

    profile: str = "i486"
    size: int = 0
    other_threads: int = 0
    #: Loop iterations each other thread runs before it yields (0: it only yields).
    other_work: int = 0
    working_set: int = 0
    #: Entries of the data (i486: unified) TLB, 4-way; None: the profile's TLBs.
    tlb_entries: int | None = None
    global_pages: bool = True
    calls: int = 8

    def __attrs_post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError("profile", f"one of {PROFILES}, not {self.profile!r}")
        _check_int("size", self.size, 0, L.IPC_MAX_MESSAGE)
        if self.size % 4:
            raise ConfigError("size", f"must be a multiple of 4, got {self.size}")
        _check_int("other_threads", self.other_threads, 0, 30)
        _check_int("other_work", self.other_work, 0, 1_000_000)
        _check_int("working_set", self.working_set, 0, 256)
        if self.tlb_entries is not None:
            _check_int("tlb_entries", self.tlb_entries, 4, 4096)
            if self.tlb_entries % 4:
                raise ConfigError("tlb_entries", "must be a multiple of 4 (4-way sets)")
        _check_int("calls", self.calls, 2, 10_000)

    def mmu(self) -> MMUConfig | None:
        """The MMU organisation: the profile's, or its data TLB resized."""
        if self.tlb_entries is None:
            return None
        tlb = TLBConfig(self.tlb_entries, 4)
        if self.profile == "pentium":
            base = MMUConfig.pentium()
            return MMUConfig(tlb=tlb, itlb=base.itlb, large_dtlb=base.large_dtlb)
        return MMUConfig(tlb=tlb)


#: Phases of one call, in the order they are printed.
PHASE_ORDER: tuple[str, ...] = (
    "user stub", "trap entry", "argument checks", "ipc queues and headers", "copy in",
    "scheduling", "context switch and CR3", "copy out", "return", "gate call", "server",
    "far return", "other threads", "idle and interrupts", "TLB refill", "other",
)  # fmt: skip

#: Kernel observer rows -> phase (the client's and server's user rows are told apart by
#: the LDT loaded; see PhaseObserver).
_ROW_PHASE: dict[str, str] = {
    row: phase
    for phase, rows in IPC_PHASES.items()
    if phase not in ("user", "return", "idle and interrupts")
    for row in rows
}
_ROW_PHASE.update({
    "trap_return": "return", ROW_GATE_CALL: "gate call", ROW_FAR_RETURN: "far return",
    "<ring 1>": "server", "<ring 2>": "server", ROW_INTERRUPT: "idle and interrupts",
    "schedule_idle": "idle and interrupts", "timer_handler": "idle and interrupts",
})  # fmt: skip


class PhaseObserver:
    """A step observer that sorts each step's cycles into :data:`PHASE_ORDER` and counts the
    bytes a call gate or the client's argument copy moved (it reads state only)."""

    def __init__(
        self, system: LavenderSystem, client: Process, others: frozenset[int],
        copy_label: int | None,
    ) -> None:
        self.system = system
        self.machine = system.machine
        self.mmu = system.machine.mmu
        profile = system.machine.cpu.profile
        self._walk_read = profile.table["page_walk.read"]
        self._walk_ad = profile.table["page_walk.ad_write"]
        self._client_ldt = client.ldt_selector
        #: TCB addresses of the other (filler) threads.
        self._others = others
        self._copy_label = copy_label
        self._k_current = system.image.symbol("k_current") - L.KERNEL_BASE
        self._esp2 = L.TSS_PHYS + d.TSS32_ESP2
        self._routines: dict[int, str] = {}
        self.reset()

    def reset(self) -> None:
        """Start a new window."""
        self.phases: dict[str, int] = dict.fromkeys(PHASE_ORDER, 0)
        #: Cycles by kernel-observer row (page walks included), to check against KernelStats.
        self.rows: dict[str, int] = {}
        self.idle = 0
        self.gate_bytes = 0
        self.gate_calls = 0
        self.user_copy_bytes = 0
        self._reads = self.mmu.walk_reads
        self._ads = self.mmu.ad_writes

    def _row(self, kind: str, pc: int, cpl: int) -> str:
        if kind == STEP_INTERRUPT:
            return ROW_INTERRUPT
        new_cpl = self.machine.cpu.cpl
        if cpl and not new_cpl:
            return ROW_TRAP
        if cpl and new_cpl != cpl:
            return ROW_GATE_CALL if new_cpl < cpl else ROW_FAR_RETURN
        if cpl == 3:
            return ROW_USER
        if cpl:
            return f"<ring {cpl}>"
        row = self._routines.get(pc)
        if row is None:
            row = self.system.image.routine_at(pc) or f"<kernel {pc:#010x}>"
            self._routines[pc] = row
        return row

    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, before: int, after: int, /
    ) -> None:
        cycles = after - before
        mmu = self.mmu
        walk = (mmu.walk_reads - self._reads) * self._walk_read + (
            mmu.ad_writes - self._ads
        ) * self._walk_ad
        self._reads = mmu.walk_reads
        self._ads = mmu.ad_writes
        if kind != STEP_INSTRUCTION and kind != STEP_INTERRUPT:
            self.idle += cycles
            self.phases["idle and interrupts"] += cycles - walk
            self.phases["TLB refill"] += walk
            return
        row = self._row(kind, pc, cpl)
        self.rows[row] = self.rows.get(row, 0) + cycles
        cpu = self.machine.cpu
        if row == ROW_GATE_CALL:
            self.gate_calls += 1
            esp2 = self.machine.memory.read32(self._esp2)
            # Inner-ring stack after the gate: SS, ESP, the parameters, CS, EIP.
            self.gate_bytes += esp2 - cpu.regs[ESP] - 16
        elif cpl == 3 and pc == self._copy_label:
            self.user_copy_bytes += 4 * cpu.regs[ECX]
        if self.machine.memory.read32(self._k_current) in self._others:
            phase = "other threads"
        elif row == ROW_USER:
            phase = "user stub" if cpu.ldtr.selector == self._client_ldt else "server"
        else:
            phase = _ROW_PHASE.get(row, "other")
        self.phases[phase] += cycles - walk
        self.phases["TLB refill"] += walk

    def window(self) -> _Window:
        """What was counted since :meth:`reset`."""
        return _Window(dict(self.phases), dict(self.rows), self.idle, self.gate_calls,
                       self.gate_bytes, self.user_copy_bytes)


@attrs.frozen
class _Window:
    phases: dict[str, int]
    rows: dict[str, int]
    idle: int
    gate_calls: int
    gate_bytes: int
    user_copy_bytes: int


@attrs.frozen
class Figures:
    """The counts of one call (cold) or the mean over the warm calls."""

    cycles: float
    instructions: float
    kernel_entries: float
    context_switches: float
    cr3_loads: float
    tlb_misses: float
    message_copies: float
    bytes_copied: float
    gate_calls: float
    phases: dict[str, float]

    @classmethod
    def mean(cls, samples: Sequence[Figures]) -> Figures:
        def avg(get: Callable[[Figures], float]) -> float:
            return statistics.fmean(get(s) for s in samples)

        return cls(
            cycles=avg(lambda s: s.cycles), instructions=avg(lambda s: s.instructions),
            kernel_entries=avg(lambda s: s.kernel_entries),
            context_switches=avg(lambda s: s.context_switches),
            cr3_loads=avg(lambda s: s.cr3_loads), tlb_misses=avg(lambda s: s.tlb_misses),
            message_copies=avg(lambda s: s.message_copies),
            bytes_copied=avg(lambda s: s.bytes_copied), gate_calls=avg(lambda s: s.gate_calls),
            phases={p: statistics.fmean(s.phases[p] for s in samples) for p in PHASE_ORDER},
        )  # fmt: skip


@attrs.frozen
class CallCost:
    """One mechanism under one workload: the cold call and the warm mean, plus each warm
    call's cycles (``samples``)."""

    mechanism: Mechanism
    workload: Workload
    cold: Figures
    warm: Figures
    samples: tuple[int, ...]

    @property
    def profile(self) -> str:
        return self.workload.profile

    @property
    def size(self) -> int:
        return self.workload.size


# --- guest sources -------------------------------------------------------------------------------


def _touch(pages: int, base: str) -> str:
    """Read one dword of each of ``pages`` pages from ``base`` (an expression)."""
    if not pages:
        return ""
    return (
        f"    mov ecx, {pages}\n    mov eax, {base}\n.Ltouch:\n    mov edx, dword ptr [eax]\n"
        "    add eax, 4096\n    dec ecx\n    jnz .Ltouch\n"
    )


def _procedure(working_set: int) -> str:
    body = ""
    if working_set:
        body = "    push ds\n    mov eax, PROC_DATA_SEL\n    mov ds, ax\n"
        body += _touch(working_set, "0") + "    pop ds\n"
    return f"proc:\n{body}    mov eax, {RESULT:#x}\n    retf PROC_ARG_BYTES\n"


_CLIENT_HEAD = """
main:
call_start:
"""
_CLIENT_TAIL = f"""
call_end:
    dec dword ptr [{_COUNTER:#x}]
    jnz call_start
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


def _migration_client(size: int, shared: bool) -> tuple[str, int]:
    """The client's call sequence and the gate's parameter count."""
    if not shared:
        n = size // 4
        pushes = "".join(
            f"    push dword ptr [{_PAYLOAD + 4 * k:#x}]\n" for k in reversed(range(n))
        )
        body = f"{pushes}    push {n}\n    push {_ADDRESS}\n    call lav_call\n"
        body += f"    add esp, {4 * (n + 2)}\n"
        return body, n
    body = (
        "    push es\n"
        f"    mov eax, dword ptr [{_SHARED_SEL:#x}]\n    mov es, ax\n"
        f"    mov esi, {_PAYLOAD:#x}\n    xor edi, edi\n"
        "copy_args:\n"
        f"    mov ecx, {size // 4}\n    rep movsd\n    pop es\n"
        f"    push {size}\n    push 0\n    push 2\n    push {_ADDRESS}\n    call lav_call\n"
        "    add esp, 16\n"
    )
    return body, 2


def _message_client(size: int, handoff: bool) -> str:
    number = "SYS_CALL_HANDOFF" if handoff else "SYS_CALL"
    return (
        f"    mov eax, {number}\n    mov ebx, dword ptr [{_PORT:#x}]\n"
        f"    mov ecx, {_PAYLOAD:#x}\n    mov edx, {size}\n"
        f"    mov esi, {_REPLY:#x}\n    mov edi, 0x1000\n    int 0x30\n"
    )


def _message_server(handoff: bool, working_set: int) -> str:
    reply_wait = "SYS_REPLY_WAIT_HANDOFF" if handoff else "SYS_REPLY_WAIT"
    return f"""
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov ebp, eax
    mov eax, SYS_RECEIVE
    mov ebx, ebp
    mov ecx, {_SERVER_BUFFER:#x}
    mov edx, 0x1000
    xor esi, esi
    int 0x30
serve:
    # Touch the working set, then reply (empty) and wait for the next request.
{_touch(working_set, hex(_SERVER_WORKING_SET))}    mov eax, {reply_wait}
    mov ecx, {_SERVER_BUFFER:#x}
    xor edx, edx
    mov esi, ebp
    mov edi, 0x1000
    int 0x30
    jmp serve
"""


def _filler(work: int) -> str:
    spin = f"    mov ecx, {work}\n.Lspin:\n    dec ecx\n    jnz .Lspin\n" if work else ""
    return f"main:\n{spin}    mov eax, SYS_YIELD\n    int 0x30\n    jmp main\n"


# --- one measurement -----------------------------------------------------------------------------


class _Harness:
    """A booted workload for one mechanism, ready to be run call by call."""

    def __init__(self, mech: Mechanism, work: Workload) -> None:
        self.mech = mech
        self.work = work
        system = LavenderSystem(
            profile=work.profile, memory_size=16 << 20, timer_period=0, mmu=work.mmu(),
            global_pages=work.global_pages,
        )  # fmt: skip
        self.system = system
        prelude = user_prelude()
        client_group = system.create_group("client")
        payload = bytes((7 * k + 3) & 0xFF for k in range(work.size))
        data = bytearray(_CLIENT_DATA)
        data[_COUNTER : _COUNTER + 4] = work.calls.to_bytes(4, "little")
        data[_PAYLOAD : _PAYLOAD + work.size] = payload
        self.server: Process
        self.expected_port: int | None = None
        copy_label: int | None = None
        if mech.migration:
            if mech.resident:
                server = system.create_resident_process("nop\n", name="resident server")
            else:
                server = system.create_process(client_group, "nop\n", name="server")
            self.server = server
            shared = work.size > GATE_MAX_BYTES
            body, params = _migration_client(work.size, shared)
            export = system.sharing.export_procedure(
                server, _procedure(work.working_set), entry="proc", params=params,
                private_data_size=4096 * work.working_set,
            )  # fmt: skip
            source = (prelude + _CLIENT_HEAD + body + _CLIENT_TAIL
                      + lav_call_source(client_group))
            self.client = system.create_process(
                client_group, source, data=bytes(data), data_size=_CLIENT_DATA, name="client"
            )  # fmt: skip
            if not mech.resident:
                system.sharing.import_procedure(self.client, export)
            system.sharing.write_address(self.client, _ADDRESS, export.address())
            if shared:
                # The arguments' segment: exported by the server, imported by the client,
                # its selector left in the client's data like any other boot-time constant.
                args = system.sharing.export_data(server, L.IPC_MAX_MESSAGE, name="args")
                selector = system.sharing.import_data(self.client, args)
                system.sharing.write_data(
                    self.client, _SHARED_SEL, selector.to_bytes(4, "little")
                )
                copy_label = self.client.code_base + self.client.symbol("copy_args")
        else:
            server_group = system.create_group("server") if mech.cross_group else client_group
            server = system.create_process(
                server_group, prelude + _message_server(mech.handoff, work.working_set),
                data_size=_SERVER_WORKING_SET + 4096 * work.working_set, name="server",
            )  # fmt: skip
            self.server = server
            # port_create takes the lowest free port above the name server's NS_PORT.
            self.expected_port = next(
                p for p in range(L.NS_PORT + 1, L.IPC_MAX_PORTS)
                if not system.port_info(p).open
            )
            data[_PORT : _PORT + 4] = self.expected_port.to_bytes(4, "little")
            source = (prelude + _CLIENT_HEAD + _message_client(work.size, mech.handoff)
                      + _CLIENT_TAIL)
            system.create_thread(server, "main")
            self.client = system.create_process(
                client_group, source, data=bytes(data), data_size=_CLIENT_DATA, name="client"
            )  # fmt: skip
        self.thread = system.create_thread(self.client, "main")
        others: set[int] = set()
        if work.other_threads:
            group = system.create_group("others")
            filler = system.create_process(
                group, prelude + _filler(work.other_work), max_threads=work.other_threads,
                stack_size=256, name="others",
            )  # fmt: skip
            for _ in range(work.other_threads):
                others.add(system.create_thread(filler, "main").tcb_linear)
        self.observer = PhaseObserver(system, self.client, frozenset(others), copy_label)
        self.start = self.client.code_base + self.client.symbol("call_start")
        self.end = self.client.code_base + self.client.symbol("call_end")

    def _run_to(self, address: int) -> None:
        system = self.system
        cpu = system.machine.cpu
        for _ in range(1_000):
            outcome = system.run(max_cycles=20_000_000)
            if outcome.status != "breakpoint":
                state = system.thread_state(self.thread)
                raise LavsimError(
                    f"{self.mech.key} on {self.work}: the run ended with {outcome.status} "
                    f"{outcome.detail} (client: {state.state}, "
                    f"{state.fault.describe() if state.fault else 'no fault'})"
                )
            if (system.machine.pc == address and cpu.cpl == 3
                    and cpu.ldtr.selector == self.client.ldt_selector):
                return
        raise LavsimError("the client never reached its breakpoint")

    def run(self) -> list[tuple[KernelStats, _Window, int, int]]:
        """Run the calls; per call the kernel statistics, the phase observer's window, and
        the client's EAX and ECX at ``call_end``."""
        system = self.system
        machine = system.machine
        machine.add_breakpoint(self.start)
        machine.add_breakpoint(self.end)
        machine.add_observer(self.observer)
        out = []
        try:
            self._run_to(self.start)
            for k in range(self.work.calls):
                if k:
                    self._run_to(self.start)
                system.reset_stats()
                self.observer.reset()
                self._run_to(self.end)
                regs = machine.cpu.regs
                out.append((system.stats(), self.observer.window(), regs[EAX], regs[ECX]))
        finally:
            machine.remove_observer(self.observer)
            machine.remove_breakpoint(self.start)
            machine.remove_breakpoint(self.end)
        return out


def _figures(stats: KernelStats, obs: _Window) -> Figures:
    return Figures(
        cycles=stats.cycles, instructions=stats.instructions,
        kernel_entries=stats.kernel_entries, context_switches=stats.context_switches,
        cr3_loads=stats.cr3_loads, tlb_misses=stats.tlb_misses,
        message_copies=stats.messages_copied,
        bytes_copied=stats.bytes_copied + obs.gate_bytes + obs.user_copy_bytes,
        gate_calls=obs.gate_calls, phases={p: float(obs.phases[p]) for p in PHASE_ORDER},
    )  # fmt: skip


def measure_call(mech: Mechanism | str, work: Workload | None = None) -> CallCost:
    """Boot the workload for ``mech``, make ``work.calls`` calls and return their cost.

    Raises :class:`~lavsim.errors.LavsimError` if a call returns a wrong result, a window's
    phases do not add up to its cycles, or the client does not run cleanly."""
    mech = mechanism(mech) if isinstance(mech, str) else mech
    work = work or Workload()
    harness = _Harness(mech, work)
    results = harness.run()
    expected = RESULT if mech.migration else 0
    samples = []
    for stats, obs, eax, ecx in results:
        if eax != expected or (mech.migration and ecx != 0):
            raise LavsimError(f"{mech.key}: call returned EAX={eax:#x} ECX={ecx:#x}")
        if sum(obs.phases.values()) != stats.cycles:
            raise LavsimError(f"{mech.key}: phases add up to {sum(obs.phases.values())}, "
                              f"not {stats.cycles}")
        kernel_rows = {name: row.cycles for name, row in stats.rows.items() if row.cycles}
        if {k: v for k, v in obs.rows.items() if v} != kernel_rows or obs.idle != stats.idle_cycles:
            raise LavsimError(f"{mech.key}: the phase observer's rows differ from the kernel "
                              "observer's")
        samples.append(_figures(stats, obs))
    if harness.expected_port is not None:
        info = harness.system.port_info(harness.expected_port)
        if info.owner_pid != harness.server.pid:
            raise LavsimError("the message server did not open the expected port")
    return CallCost(
        mechanism=mech, workload=work, cold=samples[0], warm=Figures.mean(samples[1:]),
        samples=tuple(int(s.cycles) for s in samples[1:]),
    )


# --- the table -----------------------------------------------------------------------------------


@attrs.frozen
class RemoteRow:
    """A row from the several-hosts benchmark (:func:`lavsim.remote.measure_remote`): a call of
    a 3-argument procedure, its cycles per call, and the same procedure called by local
    migration in that benchmark (the ratio's base)."""

    profile: str
    label: str
    cycles: float
    local_migration: float
    note: str

    @property
    def ratio(self) -> float:
        return self.cycles / self.local_migration


def remote_rows(profile: str, latency: int = 2_000, per_byte: int = 1) -> list[RemoteRow]:
    """The rows of :func:`lavsim.remote.rpc_rows`, with the local migration of the same
    benchmark kept for the ratio."""
    from lavsim.remote import measure_remote

    cost = measure_remote(profile, latency, per_byte)
    note = f"2 hosts, latency {latency}, {per_byte} cycle/byte; 12 argument bytes"
    return [
        RemoteRow(profile, "remote call (network)", cost.remote, cost.local_migration, note),
        RemoteRow(profile, "shipped procedure", cost.shipped, cost.local_migration,
                  f"after one lav_ship of {cost.shipping} cycles; break-even "
                  f"{cost.break_even} calls"),
    ]


_COLUMNS = (
    ("warm", "cycles"), ("cold", None), ("ratio", None), ("instr", "instructions"),
    ("k.entries", "kernel_entries"), ("ctx sw", "context_switches"), ("CR3", "cr3_loads"),
    ("TLB miss", "tlb_misses"), ("copies", "message_copies"), ("bytes copied", "bytes_copied"),
)  # fmt: skip


@attrs.frozen
class RpcTable:
    """The table of ``lavsim rpc``: every mechanism at every size on every profile."""

    costs: tuple[CallCost, ...]
    remote: tuple[RemoteRow, ...]

    def base(self, cost: CallCost) -> CallCost:
        """In-group migration under the same workload (the ratio's base)."""
        for c in self.costs:
            if c.mechanism.key == "migration-group" and c.workload == cost.workload:
                return c
        raise LavsimError("no in-group migration under that workload")

    def ratio(self, cost: CallCost) -> float:
        return cost.warm.cycles / self.base(cost).warm.cycles

    def records(self) -> list[dict[str, object]]:
        """One flat record per row (the CSV and JSON forms)."""
        out: list[dict[str, object]] = []
        for c in self.costs:
            record: dict[str, object] = {
                "profile": c.profile, "mechanism": c.mechanism.key, "label": c.mechanism.label,
                "bytes": c.size, "warm_cycles": round(c.warm.cycles, 2),
                "cold_cycles": c.cold.cycles, "ratio": round(self.ratio(c), 3),
                "instructions": c.warm.instructions, "kernel_entries": c.warm.kernel_entries,
                "context_switches": c.warm.context_switches, "cr3_loads": c.warm.cr3_loads,
                "tlb_misses": c.warm.tlb_misses, "message_copies": c.warm.message_copies,
                "bytes_copied": c.warm.bytes_copied, "calls": c.workload.calls,
            }  # fmt: skip
            record.update({f"phase {p}": round(c.warm.phases[p], 2) for p in PHASE_ORDER})
            out.append(record)
        for r in self.remote:
            out.append({
                "profile": r.profile, "mechanism": r.label.split(" (")[0].replace(" ", "-"),
                "label": r.label, "bytes": 12, "warm_cycles": round(r.cycles, 2),
                "ratio": round(r.ratio, 3), "note": r.note,
            })  # fmt: skip
        return out

    def to_json(self) -> str:
        return json.dumps(self.records(), indent=1, sort_keys=False)

    def to_csv(self) -> str:
        records = self.records()
        fields: list[str] = []
        for r in records:
            fields.extend(k for k in r if k not in fields)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()

    def to_text(self) -> str:
        lines: list[str] = []
        profiles = list(dict.fromkeys(c.profile for c in self.costs))
        for profile in profiles:
            costs = [c for c in self.costs if c.profile == profile]
            calls = costs[0].workload.calls
            lines.append(
                f"== {profile}: cycles per call (warm = mean of {calls - 1} calls after the "
                "first; cold = the first call) =="
            )
            head = f"{'mechanism':34}{'bytes':>6}" + "".join(
                f"{name:>{max(len(name) + 2, 8)}}" for name, _ in _COLUMNS
            )
            lines.append(head)
            lines.append("-" * len(head))
            sizes = list(dict.fromkeys(c.size for c in costs))
            for size in sizes:
                for c in (c for c in costs if c.size == size):
                    cells = []
                    for name, attr in _COLUMNS:
                        width = max(len(name) + 2, 8)
                        if name == "cold":
                            value = f"{c.cold.cycles:,.0f}"
                        elif name == "ratio":
                            value = f"{self.ratio(c):.2f}"
                        else:
                            assert attr is not None
                            number = getattr(c.warm, attr)
                            value = f"{number:,.0f}" if name in ("warm", "instr", "bytes copied")\
                                else f"{number:.1f}"
                            if name == "warm":
                                value = f"{number:,.1f}"
                        cells.append(f"{value:>{width}}")
                    lines.append(f"{c.mechanism.label:34}{size:>6}" + "".join(cells))
            for r in (r for r in self.remote if r.profile == profile):
                lines.append(
                    f"{r.label:34}{12:>6}{r.cycles:>8,.1f}{'':>8}{r.ratio:>8.2f}"
                    f"   ({r.note}; ratio taken to a local migration of "
                    f"{r.local_migration:,.1f} cycles)"
                )
            lines.append("")
            null = [c for c in costs if c.size == min(sizes)]
            lines.append(f"-- {profile}: one warm {min(sizes)}-byte call by phase (cycles, "
                         "from the step observers) --")
            width = 13
            labels = {
                "migration-group": "migr. group", "migration-resident": "migr. resid.",
                "message-group": "msg 1 group", "message-groups": "msg 2 groups",
                "handoff-groups": "handoff 2 gr",
            }  # fmt: skip
            lines.append(f"{'phase':24}" + "".join(
                f"{labels.get(c.mechanism.key, c.mechanism.key):>{width}}" for c in null))
            for phase in PHASE_ORDER:
                values = [c.warm.phases[phase] for c in null]
                if not any(values):
                    continue
                lines.append(f"{phase:24}" + "".join(f"{v:>{width},.1f}" for v in values))
            lines.append(f"{'total':24}" + "".join(f"{c.warm.cycles:>{width},.1f}"
                                                   for c in null))
            lines.append("")
        lines.extend(textwrap.wrap(
            "ratio: warm cycles / in-group migration's at the same size. bytes copied: kernel "
            "message copies (user -> kernel -> user, both directions), call-gate parameter "
            "copies, and the client's copy into a shared segment (migration above "
            f"{GATE_MAX_BYTES} bytes). copies: kernel message copies.", width=100,
        ))
        return "\n".join(lines)

    def render(self, fmt: str) -> str:
        if fmt == "table":
            return self.to_text()
        if fmt == "csv":
            return self.to_csv()
        if fmt == "json":
            return self.to_json()
        raise ConfigError("format", f"one of table, csv, json, not {fmt!r}")


Progress = Callable[[int, int, str], None]


def rpc_table(
    profiles: Sequence[str] = PROFILES,
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    calls: int = 8,
    mechanisms: Sequence[Mechanism] = MECHANISMS,
    remote: bool = True,
    progress: Progress | None = None,
) -> RpcTable:
    """Measure every mechanism at every size on every profile (and the remote rows)."""
    if not any(m.key == "migration-group" for m in mechanisms):
        mechanisms = (_BY_KEY["migration-group"], *mechanisms)
    jobs = [(p, s, m) for p in profiles for s in sizes for m in mechanisms]
    total = len(jobs) + (2 * len(profiles) if remote else 0)
    costs = []
    for k, (profile, size, mech) in enumerate(jobs):
        if progress is not None:
            progress(k, total, f"{profile} {mech.label} {size} B")
        costs.append(measure_call(mech, Workload(profile=profile, size=size, calls=calls)))
    rows: list[RemoteRow] = []
    if remote:
        for j, profile in enumerate(profiles):
            if progress is not None:
                progress(len(jobs) + 2 * j, total, f"{profile} remote call and shipping")
            rows.extend(remote_rows(profile))
    if progress is not None:
        progress(total, total, "done")
    return RpcTable(tuple(costs), tuple(rows))
