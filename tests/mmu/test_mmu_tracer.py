"""The MMU's tracer seam (lavsim.mmu.mmu): a tracer sees every physical access of a kernel
workload, exactly as a watcher at the lowest level (PhysicalMemory) sees it with every fast path
off, and attaching it changes no simulated result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from ipc_kit import CLIENT, ECHO_SERVER, client_data, define

from lavsim.errors import ConfigError
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.sharing import lav_call_source
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import Access, MMUConfig
from lavsim.mmu.tlb import TLBConfig

Event = tuple[bool, int, int]  # (is a write, physical address, size)

#: A procedure entered by thread migration (tests/kernel/test_migration.py's, shortened).
PROC = """
f:
    mov eax, dword ptr [esp+8]
    add eax, dword ptr [esp+12]
    push ds
    push ecx
    mov cx, PROC_DATA_SEL
    mov ds, cx
    inc dword ptr [0]
    pop ecx
    pop ds
    retf PROC_ARG_BYTES
"""
IDLE = "main:\n    mov eax, 0\n    mov ebx, 0\n    int 0x30\n"
MIGRATING_CLIENT = """
main:
    mov esi, 6
again:
    push dword ptr [28]
    push dword ptr [24]
    push dword ptr [20]
    push 3
    push 0
    call lav_call
    add esp, 20
    dec esi
    jnz again
    mov dword ptr [32], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def _rpc(mmu: MMUConfig | None) -> LavenderSystem:
    """An echo server and a client making three message RPCs of different sizes."""
    system = LavenderSystem(memory_size=8 << 20, timer_period=0, mmu=mmu, observe=False)
    group = system.create_group()
    sizes = [5, 300, 4000]
    server = system.create_process(
        group, define(ECHO_SERVER, REPLY_WAIT=L.SYS_REPLY_WAIT),
        data=bytes([len(sizes)]), data_size=0x2000,
    )  # fmt: skip
    payload = bytes((7 * k + 3) & 0xFF for k in range(8192))
    client = system.create_process(
        system.create_group(), define(CLIENT, CALL=L.SYS_CALL),
        data=client_data(len(sizes), 1, sizes, payload), data_size=0x2000 + 0x1000 * len(sizes),
    )  # fmt: skip
    system.create_thread(server, "main")
    system.create_thread(client, "main")
    return system


def _migration(mmu: MMUConfig | None) -> LavenderSystem:
    """A client calling an exported procedure through a call gate six times."""
    system = LavenderSystem(
        profile="pentium", memory_size=4 << 20, timer_period=5_000, mmu=mmu, observe=False
    )
    group = system.create_group()
    server = system.create_process(group, IDLE, name="server")
    client = system.create_process(group, MIGRATING_CLIENT + lav_call_source(group))
    export = system.sharing.export_procedure(
        server, PROC, entry="f", params=3, private_data_size=4, name="f"
    )
    system.sharing.import_procedure(client, export)
    system.sharing.write_address(client, 0, export.address())
    system.sharing.write_data(client, 20, b"".join(v.to_bytes(4, "little") for v in (1, 2, 3)))
    system.create_thread(client, "main")
    return system


WORKLOADS: dict[str, tuple[Callable[[MMUConfig | None], LavenderSystem], MMUConfig, int]] = {
    "rpc": (_rpc, MMUConfig(TLBConfig(32, 4), fast_path=False), 400_000),
    "migration": (
        _migration,
        MMUConfig(TLBConfig(64, 4), TLBConfig(32, 4), TLBConfig(8, 4), fast_path=False),
        300_000,
    ),
}


class _Recorder:
    """The tracer under test: every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Access, int, int, bool]] = []

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None:
        self.events.append((kind, phys, size, user))


class _Lowest(PhysicalMemory):
    """The reference watcher: records each outermost call on physical memory while active
    (inner calls, e.g. ``read32`` falling back to ``read``, are part of the outer one)."""

    __slots__ = ()
    log: list[Event]
    state: list[int]  # [active, depth]

    def _rec(self, write: bool, addr: int, n: int, call: Callable[[], Any]) -> Any:
        state = self.state
        if state[0] and not state[1]:
            self.log.append((write, addr, n))
        state[1] += 1
        try:
            return call()
        finally:
            state[1] -= 1

    def read8(self, addr: int) -> int:
        return int(self._rec(False, addr, 1, lambda: PhysicalMemory.read8(self, addr)))

    def read16(self, addr: int) -> int:
        return int(self._rec(False, addr, 2, lambda: PhysicalMemory.read16(self, addr)))

    def read32(self, addr: int) -> int:
        return int(self._rec(False, addr, 4, lambda: PhysicalMemory.read32(self, addr)))

    def read(self, addr: int, n: int) -> bytes:
        out = self._rec(False, addr, n, lambda: PhysicalMemory.read(self, addr, n))
        assert isinstance(out, bytes)
        return out

    def write8(self, addr: int, value: int) -> None:
        self._rec(True, addr, 1, lambda: PhysicalMemory.write8(self, addr, value))

    def write16(self, addr: int, value: int) -> None:
        self._rec(True, addr, 2, lambda: PhysicalMemory.write16(self, addr, value))

    def write32(self, addr: int, value: int) -> None:
        self._rec(True, addr, 4, lambda: PhysicalMemory.write32(self, addr, value))

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        n = len(memoryview(data).cast("B"))
        self._rec(True, addr, n, lambda: PhysicalMemory.write(self, addr, data))

    def copy(self, dst: int, src: int, n: int) -> None:
        # A copy is a read of the source run and a write of the destination run.
        if self.state[0] and not self.state[1]:
            self.log.append((False, src, n))
        self._rec(True, dst, n, lambda: PhysicalMemory.copy(self, dst, src, n))

    def fill(self, addr: int, n: int, byte: int) -> None:
        self._rec(True, addr, n, lambda: PhysicalMemory.fill(self, addr, n, byte))


def _reference_run(name: str) -> tuple[list[Event], LavenderSystem]:
    """Every fast path off (MMU fast dicts, CPU specialisations and blocks, the decoded-
    instruction cache); the lowest-level watcher records the run."""
    make, slow_mmu, cycles = WORKLOADS[name]
    system = make(slow_mmu)
    cpu = system.machine.cpu
    cpu.fast = False
    cpu.decode_cache = False
    log: list[Event] = []
    state = [0, 0]
    memory = system.memory
    memory.__class__ = type("Lowest", (_Lowest,), {"__slots__": (), "log": log, "state": state})
    # Only what the simulated processor does is recorded: the host's own reads between runs
    # (the kernel driver reading k_status...) are not accesses of the machine.
    for name in ("run", "step"):
        setattr(cpu, name, _while_active(getattr(cpu, name), state))
    try:
        assert system.run(max_cycles=cycles).status == "done"
    finally:
        memory.__class__ = PhysicalMemory
        del cpu.run, cpu.step
    return log, system


def _while_active(method: Callable[..., object], state: list[int]) -> Callable[..., object]:
    def active(*args: object, **kwargs: object) -> object:
        state[0] = 1
        try:
            return method(*args, **kwargs)
        finally:
            state[0] = 0

    return active


def _traced_run(name: str, trace: bool = True) -> tuple[_Recorder, LavenderSystem]:
    """The default machine (every fast path on), with the tracer attached for the run."""
    make, _, cycles = WORKLOADS[name]
    system = make(None)
    recorder = _Recorder()
    mmu = system.machine.mmu
    if trace:
        mmu.add_tracer(recorder)
    try:
        assert system.run(max_cycles=cycles).status == "done"
    finally:
        if trace:
            mmu.remove_tracer(recorder)
    return recorder, system


def _outcome(system: LavenderSystem) -> tuple[object, ...]:
    m = system.machine
    cpu = m.cpu
    return (cpu.tsc, cpu.instructions, tuple(cpu.regs), cpu.eip, cpu.get_eflags(),
            m.memory.digest(), m.mmu.stats, [t.contents() for t in m.mmu.tlbs.values()])


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_a_tracer_sees_every_physical_access_the_lowest_level_sees_with_fast_paths_off(
    name: str,
) -> None:
    reference, slow = _reference_run(name)
    recorder, fast = _traced_run(name)
    # INSN events read nothing (they name the bytes of a fetch already reported).
    traced = [(kind.is_write, phys, size) for kind, phys, size, _ in recorder.events
              if kind is not Access.INSN]
    writes = Counter(e for e in traced if e[0])
    assert writes and writes == Counter(e for e in reference if e[0])
    # Reads match exactly too (fetches are the decoder's fetch windows, as documented), and
    # the two runs make them in the same order.
    assert Counter(e for e in traced if not e[0]) == Counter(e for e in reference if not e[0])
    assert traced == reference
    assert _outcome(fast) == _outcome(slow)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_a_tracer_changes_no_cycle_register_memory_byte_or_tlb_statistic(name: str) -> None:
    recorder, traced = _traced_run(name)
    _, plain = _traced_run(name, trace=False)
    assert recorder.events
    assert _outcome(traced) == _outcome(plain)


def test_tracer_events_carry_their_kinds_as_the_mmu_counts_them() -> None:
    recorder, system = _traced_run("migration")
    kinds = Counter(kind for kind, *_ in recorder.events)
    stats = system.machine.mmu.stats
    # Every event kind the workload makes is there; walk reads and A/D write-backs are the
    # ones the MMU counted (the tracer was attached from the start of the run).
    assert kinds[Access.WALK_READ] == stats.walk_reads > 0
    assert kinds[Access.AD_WRITE] == stats.ad_writes > 0
    assert kinds[Access.FETCH] >= system.machine.cpu.instructions > 0
    assert kinds[Access.INSN] >= system.machine.cpu.instructions
    assert kinds[Access.READ] and kinds[Access.WRITE] and kinds[Access.LOCKED_READ]
    # Explicit CPL 3 accesses are flagged user; walk and descriptor accesses never are.
    assert any(user for kind, _, _, user in recorder.events if kind is Access.WRITE)
    assert not any(user for kind, _, _, user in recorder.events
                   if kind in (Access.WALK_READ, Access.AD_WRITE, Access.LOCKED_READ))


def test_the_page_lookups_answer_none_while_a_tracer_is_attached_and_refill_after() -> None:
    system = _rpc(None)
    machine = system.machine
    mmu = machine.mmu
    machine.run(max_cycles=4_000)
    assert any(mmu.code_page(p) is not None for p in range(1 << 20))
    recorder = _Recorder()
    mmu.add_tracer(recorder)
    assert mmu.tracing and mmu.tracers == (recorder,)
    assert all(mmu.data_page(p) is None and mmu.code_page(p) is None for p in range(1 << 20))
    machine.run(max_cycles=4_000)
    assert recorder.events
    assert all(mmu.data_page(p) is None and mmu.code_page(p) is None for p in range(1 << 20))
    mmu.remove_tracer(recorder)
    seen = len(recorder.events)
    machine.run(max_cycles=4_000)
    assert len(recorder.events) == seen and not mmu.tracing
    assert any(mmu.code_page(p) is not None for p in range(1 << 20))


def test_attaching_a_tracer_twice_or_removing_a_stranger_is_refused() -> None:
    mmu = _rpc(None).machine.mmu
    recorder = _Recorder()
    mmu.add_tracer(recorder)
    with pytest.raises(ConfigError, match="already attached"):
        mmu.add_tracer(recorder)
    with pytest.raises(ConfigError, match="not attached"):
        mmu.remove_tracer(_Recorder())
    with pytest.raises(ConfigError, match="on_access"):
        mmu.add_tracer(object())  # type: ignore[arg-type]
    assert mmu.tracers == (recorder,)


def test_insn_events_give_each_executed_instruction_its_exact_bytes() -> None:
    from lavsim.cpu.asm import assemble
    from lavsim.machine import Machine

    # A 5-byte MOV, a 1-byte INC, a 2-byte JNZ looping twice, then HLT: run twice (decode, then
    # the decoded-instruction cache) and with the cache off.
    code = assemble("mov ecx, 2\nagain:\ninc eax\ndec ecx\njnz again\nhlt\n", origin=0x10000).code
    for decode_cache in (True, False):
        m = Machine()
        m.cpu.decode_cache = decode_cache
        m.load(0x10000, code)
        m.setup_flat_protected_mode(entry=0x10000)
        recorder = _Recorder()
        m.mmu.add_tracer(recorder)
        m.run(max_instructions=100)
        insns = [(phys - 0x10000, size) for kind, phys, size, _ in recorder.events
                 if kind is Access.INSN]
        assert insns == [(0, 5), (5, 1), (6, 1), (7, 2), (5, 1), (6, 1), (7, 2), (9, 1)]
