"""Bad input from the host side: invalid configurations, bad assembly, bad images, impossible
sizes. Each is refused with an error naming the field (or the line and column), and nothing
half-built is left behind."""

from __future__ import annotations

from typing import Any

import pytest

from lavsim.cpu.asm import assemble
from lavsim.errors import AssemblyError, ConfigError, LavsimError, MemoryAccessError
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.machine import Machine, MachineConfig
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.tlb import TLBConfig
from lavsim.timing import get_profile

GOOD = "main:\n    mov eax, 0\n    int 0x30\n"


@pytest.mark.parametrize(("field", "kwargs"), [
    ("profile", {"profile": "z80"}),
    ("profile", {"profile": 486}),
    ("memory_size", {"memory_size": 0}),
    ("memory_size", {"memory_size": 4097}),
    ("memory_size", {"memory_size": (1 << 32) + 4096}),
    ("memory_size", {"memory_size": 1.5}),
    ("memory_size", {"memory_size": True}),
    ("mmu", {"mmu": "pentium"}),
    ("timer_period", {"timer_period": -5}),
    ("timer_period", {"timer_period": "fast"}),
    ("pic_base", {"pic_base": 0x100}),
    ("pic_base", {"pic_base": 0x24}),
])
def test_machine_config_names_the_bad_field(field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        MachineConfig(**kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(("field", "build"), [
    ("ways", lambda: TLBConfig(32, 0)),
    ("entries", lambda: TLBConfig(30, 4)),
    ("entries", lambda: TLBConfig(0, 4)),
    ("entries", lambda: TLBConfig("32", 4)),
    ("tlb", lambda: MMUConfig(tlb=None)),
    ("itlb", lambda: MMUConfig(tlb=TLBConfig(32, 4), itlb=(32, 4))),
    ("large_dtlb", lambda: MMUConfig(tlb=TLBConfig(32, 4), large_dtlb=8)),
    ("fast_path", lambda: MMUConfig(tlb=TLBConfig(32, 4), fast_path=1)),
    ("profile", lambda: get_profile("pentium-pro")),
    ("size", lambda: PhysicalMemory(1000)),
])
def test_mmu_tlb_memory_and_profile_configs_name_the_bad_field(field: str, build: Any) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


@pytest.mark.parametrize(("field", "kwargs"), [
    ("memory_size", {"memory_size": 1 << 20}),
    ("memory_size", {"memory_size": (8 << 20) + 1}),
    ("memory_size", {"memory_size": 2 << 30}),
    ("timer_period", {"timer_period": -1}),
    ("timer_period", {"timer_period": 1 << 33}),
    ("profile", {"profile": "i386"}),
])
def test_lavender_system_sizes_name_the_bad_field(field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        LavenderSystem(**kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(("source", "line", "column"), [
    ("nop\nmov eax,\n", 2, None),
    ("nop\nnop\n  frobnicate eax\n", 3, 3),
    ("jmp nowhere\n", 1, None),
    ("x:\nx:\n", 2, None),
    ("mov al, 0x1234\n", 1, None),
])
def test_bad_assembly_names_line_and_column(source: str, line: int, column: int | None) -> None:
    with pytest.raises(AssemblyError) as info:
        assemble(source)
    assert info.value.line == line
    assert info.value.column >= 1
    if column is not None:
        assert info.value.column == column
    assert f"line {line}" in str(info.value)


def _bookkeeping(system: LavenderSystem) -> tuple[Any, ...]:
    return (
        system.frames.available, system.frames.in_use, sorted(system.processes),
        [len(g.processes) for g in system.groups], system._next_pid,
        [g.next_linear for g in system.groups], system._resident_next,
        system.memory.read(L.GDT_PHYS, 8 * L.GDT_ENTRIES), system.memory.digest(),
    )


def test_refused_processes_leave_nothing_half_built() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    system.create_process(group, GOOD)
    before = _bookkeeping(system)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("source", {"source": "main:\n    mov eax,\n"}),
        ("source", {"source": ""}),
        ("image", {"image": b""}),
        ("source", {"source": GOOD, "image": b"\x90"}),
        ("image", {"image": "nop"}),
        ("data", {"source": GOOD, "data": b"x" * 20, "data_size": 16}),
        ("data_size", {"source": GOOD, "data_size": 0}),
        ("stack_size", {"source": GOOD, "stack_size": 30}),
        ("stack_size", {"source": GOOD, "stack_size": 66}),
        ("max_threads", {"source": GOOD, "max_threads": 0}),
        ("max_threads", {"source": GOOD, "max_threads": 10_000}),
        ("ring2_stack_size", {"source": GOOD, "ring2_stack_size": 2}),
        ("memory_size", {"image": b"\x90" * (16 << 20)}),
        ("memory_size", {"source": GOOD, "data_size": 64 << 20}),
        ("memory", {"source": GOOD, "data_size": 0x7FC0_0000}),
    ]
    for field, kwargs in cases:
        with pytest.raises(ConfigError) as info:
            system.create_process(group, **kwargs)
        assert info.value.field == field, (kwargs.keys(), str(info.value))
        assert _bookkeeping(system) == before, field
    with pytest.raises(ConfigError) as info:
        system.create_process("group", GOOD)  # type: ignore[arg-type]
    assert info.value.field == "group"
    assert _bookkeeping(system) == before
    # The system still works after all the refusals.
    process = system.create_process(group, GOOD)
    system.create_thread(process, "main")
    assert system.run(max_cycles=200_000).status == "done"


def test_refused_threads_leave_nothing_half_built() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    process = system.create_process(system.create_group(), GOOD, max_threads=1)
    before = (_bookkeeping(system), sorted(system.threads))
    for field, kwargs in (
        ("entry", {"entry": "nowhere"}),
        ("entry", {"entry": 10_000}),
        ("args", {"args": (-1,)}),
        ("args", {"args": tuple(range(2000))}),
        ("registers", {"registers": {"esp": 0}}),
        ("registers", {"registers": {"eax": 1 << 32}}),
    ):
        with pytest.raises(ConfigError) as info:
            system.create_thread(process, **kwargs)
        assert info.value.field == field
        assert (_bookkeeping(system), sorted(system.threads)) == before
    system.create_thread(process, "main")
    with pytest.raises(ConfigError) as info:
        system.create_thread(process, "main")
    assert info.value.field == "process", "one slot, already taken"


def test_bad_images_for_the_bare_machine_are_refused_whole() -> None:
    m = Machine(MachineConfig(memory_size=1 << 20))
    digest = m.memory.digest()
    with pytest.raises(MemoryAccessError):
        m.load((1 << 20) - 2, b"\x90" * 4)  # runs past the end of memory
    with pytest.raises(MemoryAccessError):
        m.load(-1, b"\x90")
    assert m.memory.digest() == digest, "nothing written by a refused load"
    m.load(0x1000, b"")  # an empty load is allowed and does nothing
    assert m.memory.digest() == digest


def test_a_stopped_kernel_refuses_new_work() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    process = system.create_process(system.create_group(), GOOD)
    system.create_thread(process, "main")
    assert system.run(max_cycles=200_000).status == "done"
    with pytest.raises(LavsimError):
        system.create_group()
