"""Bare machines for tests of several folders: flat protected mode at ENTRY, and a machine
idling in HLT whose timer interrupt increments the dword at COUNTER."""

from __future__ import annotations

from lavsim.machine import Machine, MachineConfig
from lavsim.mmu.descriptors import SYS_INTERRUPT_GATE32, GateDescriptor

ENTRY = 0x10000
HANDLER = 0x10100
COUNTER = 0x20000

# sti; hlt; jmp short back to hlt
IDLE_LOOP = bytes([0xFB, 0xF4, 0xEB, 0xFD])
# inc dword [COUNTER]; mov al, 0x20; out 0x20, al (EOI); iretd
TICK_HANDLER = bytes([0xFF, 0x05, *COUNTER.to_bytes(4, "little"), 0xB0, 0x20, 0xE6, 0x20, 0xCF])


def machine(code: bytes, **config: object) -> Machine:
    m = Machine(MachineConfig(memory_size=1 << 20, **config))  # type: ignore[arg-type]
    m.load(ENTRY, code)
    m.setup_flat_protected_mode(entry=ENTRY)
    return m


def timer_machine(period: int = 1000, profile: str = "i486") -> Machine:
    m = machine(IDLE_LOOP, timer_period=period, profile=profile)
    m.load(HANDLER, TICK_HANDLER)
    gate = GateDescriptor(SYS_INTERRUPT_GATE32, 0x08, HANDLER, 0, 0)
    m.load(0x2000 + 8 * 0x20, gate.encode())
    return m
