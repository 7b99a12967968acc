"""Cycles of one inter-process procedure call by thread migration, phase by phase.

A client thread makes ``calls`` calls of an exported procedure, in its own group or in the
resident space, either through the call library (``lav_call``) or as a bare far CALL through
the gate. A host-side step observer (:meth:`lavsim.machine.Machine.add_observer`) cuts the run
into calls at two labels of the client (``call_start``, ``call_end``) and sorts every step's
cycles into phases; it reads state only, so every cycle is one the guest spent:

- ``user stub``: CPL 3 instructions of the call (argument pushes, lav_call's body, stack
  clean-up);
- ``gate call``: the far CALL that moved CPL 3 -> 2 (gate, stack switch, parameter copy);
- ``procedure``: CPL 2 instructions of the procedure before its return;
- ``return``: the RETF that moved CPL 2 -> 3;
- ``kernel``: anything at CPL 0 (must be 0: migration never enters the kernel).

The first call is *cold* (its pages and descriptors meet the TLB for the first time since the
thread's dispatch loaded CR3); the warm figure is the mean of the others.
"""

from __future__ import annotations

import statistics

import attrs

from lavsim.errors import ConfigError
from lavsim.kernel import layout as L
from lavsim.kernel.sharing import lav_call_source
from lavsim.kernel.system import LavenderSystem, Process
from lavsim.machine import STEP_INSTRUCTION

PHASES = ("user stub", "gate call", "procedure", "return", "kernel")
MECHANISMS = ("lav_call", "far call")
TARGETS = ("group", "resident")

_CLIENT_LAV = """
main:
    mov esi, {calls}
again:
call_start:
{pushes}
    push {nargs}
    push 0
    call lav_call
    add esp, {drop}
call_end:
    dec esi
    jnz again
    mov eax, 0
    mov ebx, 0
    int 0x30
"""

_CLIENT_FAR = """
main:
    mov esi, {calls}
again:
call_start:
{pushes}
    call fword ptr [20]
call_end:
    dec esi
    jnz again
    mov eax, 0
    mov ebx, 0
    int 0x30
"""

#: The procedure: returns 0 (a null call; its arguments are only copied by the gate).
_PROCEDURE = """
proc:
    xor eax, eax
    retf PROC_ARG_BYTES
"""

_IDLE = "main:\n    mov eax, 0\n    int 0x30\n"


@attrs.frozen
class CallCost:
    """Cycles per call by phase: ``cold`` (the first call) and ``warm`` (mean of the rest),
    plus TLB misses and kernel entries over the calls."""

    profile: str
    mechanism: str
    target: str
    args: int
    calls: int
    cold: dict[str, float]
    warm: dict[str, float]
    cold_tlb_misses: int
    warm_tlb_misses: float
    kernel_entries: int
    cr3_loads_in_calls: int

    @property
    def cold_total(self) -> float:
        return sum(self.cold.values())

    @property
    def warm_total(self) -> float:
        return sum(self.warm.values())


class _PhaseObserver:
    """Sorts the steps between ``call_start`` and ``call_end`` into :data:`PHASES`."""

    def __init__(self, system: LavenderSystem, client: Process) -> None:
        self.system = system
        self.start = client.code_base + client.symbol("call_start")
        self.end = client.code_base + client.symbol("call_end")
        self.current: dict[str, int] | None = None
        self.calls: list[dict[str, int]] = []
        self.misses: list[int] = []
        self.kernel_entries = 0
        self.cr3_loads = 0
        self._misses_at_start = 0
        self._load_cr3 = system.image.symbol("switch_to.Lload_cr3")

    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, before: int, after: int, /
    ) -> None:
        cycles = after - before
        if cpl == 3 and pc == self.start and kind == STEP_INSTRUCTION:
            self.current = dict.fromkeys(PHASES, 0)
            self._misses_at_start = self.system.machine.mmu.stats.misses
        elif cpl == 3 and pc == self.end and self.current is not None:
            self.calls.append(self.current)
            self.misses.append(self.system.machine.mmu.stats.misses - self._misses_at_start)
            self.current = None
        current = self.current
        if current is None:
            return
        new_cpl = self.system.machine.cpu.cpl
        if cpl == 0 or kind != STEP_INSTRUCTION:
            current["kernel"] += cycles
            self.cr3_loads += pc == self._load_cr3
        elif new_cpl == 0:
            self.kernel_entries += 1
            current["kernel"] += cycles
        elif new_cpl < cpl:
            current["gate call"] += cycles
        elif new_cpl > cpl:
            current["return"] += cycles
        elif cpl == 3:
            current["user stub"] += cycles
        else:
            current["procedure"] += cycles


def measure(
    profile: str = "pentium", mechanism: str = "lav_call", target: str = "group",
    *, args: int = 0, calls: int = 20,
) -> CallCost:
    """Boot a system, make ``calls`` migrating calls and return their cost by phase."""
    if mechanism not in MECHANISMS:
        raise ConfigError("mechanism", f"one of {MECHANISMS}, not {mechanism!r}")
    if target not in TARGETS:
        raise ConfigError("target", f"one of {TARGETS}, not {target!r}")
    if not 0 <= args <= 31:
        raise ConfigError("args", f"0..31 arguments, not {args}")
    if calls < 2:
        raise ConfigError("calls", "at least 2 calls (one cold, one warm)")
    system = LavenderSystem(profile=profile, memory_size=8 << 20, timer_period=0, observe=False)
    group = system.create_group("clients")
    pushes = "\n".join(f"    push {k + 1}" for k in reversed(range(args)))
    if mechanism == "lav_call":
        source = _CLIENT_LAV.format(calls=calls, pushes=pushes, nargs=args, drop=4 * (args + 2))
        source += lav_call_source(group)
    else:
        source = _CLIENT_FAR.format(calls=calls, pushes=pushes)
    if target == "group":
        server = system.create_process(group, _IDLE, name="server")
    else:
        server = system.create_resident_process(_IDLE, name="resident server")
    client = system.create_process(group, source, name="client")
    export = system.sharing.export_procedure(server, _PROCEDURE, entry="proc", params=args)
    selector = system.sharing.import_procedure(client, export)
    system.sharing.write_address(client, 0, export.address())
    system.sharing.write_data(
        client, 20, export.entry.to_bytes(4, "little") + selector.to_bytes(4, "little")
    )
    thread = system.create_thread(client, "main")
    observer = _PhaseObserver(system, client)
    system.machine.add_observer(observer)
    try:
        outcome = system.run(max_cycles=50_000 + 2_000 * calls)
    finally:
        system.machine.remove_observer(observer)
    state = system.thread_state(thread)
    if outcome.status != "done" or state.fault is not None or len(observer.calls) != calls:
        raise RuntimeError(f"the benchmark client did not finish cleanly: {outcome} {state}")
    cold, warm = observer.calls[0], observer.calls[1:]
    return CallCost(
        profile=profile, mechanism=mechanism, target=target, args=args, calls=calls,
        cold={p: float(cold[p]) for p in PHASES},
        warm={p: statistics.fmean(c[p] for c in warm) for p in PHASES},
        cold_tlb_misses=observer.misses[0],
        warm_tlb_misses=statistics.fmean(observer.misses[1:]),
        kernel_entries=observer.kernel_entries, cr3_loads_in_calls=observer.cr3_loads,
    )  # fmt: skip


def table(costs: list[CallCost]) -> str:
    """The costs as text: one line per (profile, target, mechanism), warm and cold."""
    head = (
        f"{'profile':8} {'target':9} {'mechanism':9} {'args':>4} {'':5} "
        + " ".join(f"{p:>10}" for p in PHASES)
        + f" {'total':>8} {'TLB miss':>8}"
    )
    lines = [head, "-" * len(head)]
    for c in costs:
        for label, phases, misses in (("warm", c.warm, c.warm_tlb_misses),
                                      ("cold", c.cold, float(c.cold_tlb_misses))):
            lines.append(
                f"{c.profile:8} {c.target:9} {c.mechanism:9} {c.args:>4} {label:5} "
                + " ".join(f"{phases[p]:>10.1f}" for p in PHASES)
                + f" {sum(phases.values()):>8.1f} {misses:>8.1f}"
            )
    return "\n".join(lines)


assert L.ADDR_SIZE == 20  # the client's data: address structure at 0, far pointer at 20
