"""Guards added by the audit: guest-controlled addresses outside installed memory stop a run
with a clear reason instead of raising out of it, and the kernel observer changes nothing."""

from __future__ import annotations

from lavsim.cpu.asm import assemble_bytes
from lavsim.kernel import LavenderSystem
from lavsim.machine import Machine, MachineConfig
from lavsim.network import (
    NIC_PORTS,
    NIC_RX0_RING,
    NIC_RX_SLOTS,
    NIC_TX_ADDR,
    NIC_TX_LEN,
    Frame,
    Network,
    NetworkInterface,
    NetworkModel,
)

ENTRY = 0x10000
MEMORY = 1 << 20


def _machine(source: str) -> Machine:
    m = Machine(MachineConfig(memory_size=MEMORY))
    m.load(ENTRY, assemble_bytes(source, ENTRY))
    m.setup_flat_protected_mode(entry=ENTRY)
    return m


def _nic(m: Machine, network: Network, host_id: int = 1) -> NetworkInterface:
    nic = NetworkInterface(host_id, network, clock=lambda: m.cpu.tsc,
                           read_memory=m.memory.read, write_memory=m.load,
                           raise_irq=lambda: None)
    m.bus.attach(nic, *NIC_PORTS)
    return nic


def test_a_page_directory_outside_memory_stops_the_run_as_a_bus_error() -> None:
    m = _machine("""
    mov eax, 0x7FFFF000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    nop
    hlt
""")
    result = m.run(max_instructions=100)
    assert result.reason == "bus_error"
    assert "0x7ffff000" in result.detail


def test_a_transmit_dma_outside_memory_stops_the_run_as_a_bus_error() -> None:
    m = _machine(f"""
    mov dx, {NIC_TX_ADDR:#x}
    mov eax, {MEMORY - 8:#x}
    out dx, eax
    mov dx, {NIC_TX_LEN:#x}
    mov eax, 64
    out dx, eax
    hlt
""")
    network = Network(NetworkModel())
    nic = _nic(m, network)
    _nic(Machine(MachineConfig(memory_size=MEMORY)), network, host_id=2)
    result = m.run(max_instructions=100)
    assert result.reason == "bus_error"
    assert nic.stats.frames_sent == 0 and network.in_flight == 0


def test_a_receive_ring_outside_memory_drops_the_frame() -> None:
    m = Machine(MachineConfig(memory_size=MEMORY))
    nic = _nic(m, Network(NetworkModel()))
    nic.io_write(NIC_RX0_RING, 4, MEMORY + 0x1000)  # a guest OUT: the ring is not installed
    nic.io_write(NIC_RX_SLOTS, 4, 4)
    frame = Frame(10, 1, source=2, destination=1, data=bytes(16))
    assert nic.deliver(frame) is False
    assert nic.stats.frames_dropped == 1
    assert nic.stats.frames_received == 0


def test_a_receive_slot_running_past_memory_drops_the_frame_and_writes_nothing() -> None:
    m = Machine(MachineConfig(memory_size=MEMORY))
    nic = _nic(m, Network(NetworkModel()))
    ring = MEMORY - 8  # the length word fits, the payload would not
    nic.io_write(NIC_RX0_RING, 4, ring)
    nic.io_write(NIC_RX_SLOTS, 4, 1)
    before = m.memory.digest()
    assert nic.deliver(Frame(10, 1, source=2, destination=1, data=bytes(64))) is False
    assert nic.stats.frames_dropped == 1
    assert m.memory.digest() == before


WORKER = """
main:
    mov ecx, 200
work:
    inc dword ptr [4]
    dec ecx
    jnz work
    mov eax, 0
    mov ebx, 7
    int 0x30
"""


def test_the_kernel_observer_changes_no_simulated_result() -> None:
    digests = []
    for observe in (False, True):
        system = LavenderSystem(profile="pentium", memory_size=8 << 20, timer_period=700,
                                observe=observe)
        for _ in range(2):
            group = system.create_group()
            process = system.create_process(group, WORKER, data_size=16)
            system.create_thread(process, "main")
        outcome = system.run(max_cycles=2_000_000)
        assert outcome.status == "done", outcome
        if observe:  # the observer did run: it saw both threads' user code and the traps
            stats = system.stats()
            assert stats.cycles_in("<user>") > 0 and stats.kernel_entries >= 2
        digests.append((outcome.cycles, outcome.instructions, system.machine.state_digest(),
                        system.machine.mmu.stats))
    assert digests[0] == digests[1]
