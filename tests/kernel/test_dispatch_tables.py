"""The kernel's positional tables are generated from one Python table each (kernel/layout.py).

``vector_table``, ``syscall_table`` and ``net_syscall_table`` used to be lists of ``.long``s in
the ``.s`` files kept in step with layout.py by comments; now ``kernel/image.py`` writes them
from ``layout.VECTOR_HANDLERS``, ``layout.SYSCALLS`` and ``layout.NET_SYSCALLS``.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

from lavsim.cluster import Cluster
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.image import KERNEL_SOURCES, expand_tables, kernel_image
from lavsim.kernel.tables import read_descriptor
from lavsim.mmu import descriptors as d

EXIT = "main:\n    mov eax, 0\n    xor ebx, ebx\n    int 0x30\n"


def _booted() -> LavenderSystem:
    system = LavenderSystem("i486", 8 << 20, timer_period=0)
    process = system.create_process(system.create_group(), EXIT, data_size=16)
    system.create_thread(process, "main")
    assert system.run(max_cycles=1_000_000).status == "done"
    return system


def _slots(system: LavenderSystem, label: str, count: int) -> list[int]:
    base = system.image.symbol(label)
    return [system.read_kernel32(base + 4 * k) for k in range(count)]


def test_the_syscall_table_in_memory_after_boot_maps_every_number_to_its_routine() -> None:
    system = _booted()
    symbol = system.image.symbol
    slots = _slots(system, "syscall_table", L.SYSCALL_COUNT)
    for number, address in enumerate(slots):
        routine = L.SYSCALLS.get(number, "sys_nosys")
        assert address == symbol(routine), f"system call {number} must dispatch to {routine}"
    assert slots[L.SYS_CALL] == symbol("sys_call") != symbol("sys_nosys")
    net = _slots(system, "net_syscall_table", L.NET_SYSCALL_COUNT)
    for k, address in enumerate(net):
        assert address == symbol(L.NET_SYSCALLS[L.NET_SYSCALL_FIRST + k])


def test_the_vector_table_in_memory_sends_each_vector_to_its_handler() -> None:
    system = _booted()
    symbol = system.image.symbol
    slots = _slots(system, "vector_table", L.VECTOR_TABLE_ENTRIES)
    for vector, address in enumerate(slots):
        routine = L.VECTOR_HANDLERS.get(vector, "unexpected_vector")
        assert address == symbol(routine), f"vector {vector:#x} must go to {routine}"
    assert slots[L.TIMER_VECTOR] == symbol("timer_handler")
    assert slots[L.NIC_VECTOR] == symbol("nic_handler")


def _present_gates(system: LavenderSystem) -> set[int]:
    present = set()
    for vector in range(L.IDT_ENTRIES):
        gate = read_descriptor(system.memory, L.IDT_PHYS, vector)
        if isinstance(gate, d.GateDescriptor) and gate.present:
            present.add(vector)
    return present


def test_every_idt_gate_reaches_a_handler_and_every_handler_has_a_gate() -> None:
    """The IDT (built by Python) and the vector table (guest data) agree: a vector the IDT
    delivers to trap_entry never lands on unexpected_vector, and no handler is unreachable."""
    handled = set(L.VECTOR_HANDLERS) | {L.SYSCALL_VECTOR}
    alone = _present_gates(_booted())
    assert alone == handled - {L.NIC_VECTOR}, "one host has no network interface gate"
    host = Cluster(1, network_servers=False, name_servers=False, timer_period=0).host(1)
    assert _present_gates(host.system) == handled


def test_no_kernel_source_spells_out_a_generated_table() -> None:
    """The tables exist only as markers in the .s files: a hand-written copy would drift."""
    package = resources.files("lavsim.kernel")
    routines = {r for _, table in L.dispatch_tables().values() for r in table} - {
        "exception_handler", "unexpected_vector", "timer_handler", "nic_handler"}
    for name in KERNEL_SOURCES:
        text = package.joinpath(name).read_text(encoding="utf-8")
        for line in text.splitlines():
            if re.match(r"\s*\.long\s", line):
                named = {w.strip() for w in line.split("#")[0].split(".long")[1].split(",")}
                assert not named & routines, f"{name}: {line.strip()!r} lists system calls"
    assert kernel_image().symbol("syscall_table") < kernel_image().symbol("k_status")


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("bogus_table:  # generated from layout.SYSCALLS\n", "not a table"),
        ("syscall_table:  # generated from layout.NET_SYSCALLS\n", "from layout.SYSCALLS, not"),
        ("syscall_table:  # generated from layout.SYSCALLS\n" * 2, "placed twice"),
    ],
)
def test_a_table_marker_the_layout_does_not_match_stops_the_build(source: str, match: str) -> None:
    with pytest.raises(RuntimeError, match=match):
        expand_tables(source, "x.s", set())


def test_a_misnumbered_layout_table_is_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.31"):
        L._table({40: "sys_exit"}, 0, L.SYSCALL_COUNT, "sys_nosys")
    with pytest.raises(ValueError, match="needs a routine"):
        L._table({48: "sys_net_attach"}, 48, 2, None)
