"""A run that ends in a bus error (a physical access outside installed memory) counts the same
instructions on the block path (CPU.run) as on the per-step path (forced by a step observer):
the instructions retired before the access, not the one that failed, and nothing twice."""

from __future__ import annotations

from lavsim.cpu.asm import assemble
from lavsim.machine import Machine, MachineConfig

ENTRY = 0x10000
MEMORY = 1 << 20


def run_both_ways(source: str, idt_base: int | None = None, fast: bool = True
                  ) -> list[tuple[object, ...]]:
    out = []
    for observed in (False, True):
        m = Machine(MachineConfig(memory_size=MEMORY))
        m.load(ENTRY, assemble(source, origin=ENTRY).code)
        m.setup_flat_protected_mode(entry=ENTRY)
        m.cpu.fast = fast  # off: CPU.run takes one instruction at a time, no blocks
        if idt_base is not None:
            m.cpu.idtr_base = idt_base
        if observed:
            m.add_observer(lambda *step: None)
        m.run(max_instructions=3)  # an earlier run's instructions must not be counted again
        result = m.run(max_cycles=100_000)
        cpu = m.cpu
        out.append((result.reason, result.instructions, cpu.instructions, cpu.tsc, cpu.eip,
                    list(cpu.regs), m.state_digest()))
    return out


def test_a_bus_error_in_the_middle_of_a_block_keeps_the_block_s_retired_instructions() -> None:
    blocks, steps = run_both_ways(f"""
        mov eax, 1
        mov ebx, 2
        mov ecx, 3
        mov edx, 4
        inc eax
        mov dword ptr [{MEMORY + 0x100:#x}], eax
        hlt
    """)
    assert blocks[0] == "bus_error"
    assert blocks == steps
    assert blocks[2] == 5


def test_a_bus_error_while_delivering_a_fault_counts_the_run_s_instructions_once() -> None:
    blocks, steps = run_both_ways("""
        mov eax, 1
        mov ebx, 2
        mov ecx, 3
        mov edx, 4
        inc eax
        ud2
    """, idt_base=MEMORY + 0x1000)
    assert blocks[0] == "bus_error"
    assert blocks == steps
    assert blocks[2] == 5


def test_a_bus_error_while_delivering_a_fault_one_instruction_at_a_time() -> None:
    blocks, steps = run_both_ways("""
        mov eax, 1
        jmp next
    next:
        inc eax
        jmp last
    last:
        ud2
    """, idt_base=MEMORY + 0x1000, fast=False)
    assert blocks[0] == "bus_error"
    assert blocks == steps
    assert blocks[2] == 4
