"""The Lavender layout a booted system leaves in guest memory: descriptor tables, the TSS,
page tables, and the protection invariants of DESIGN.md §4 (checked without running)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

from lavsim.cpu.state import CR0_PG, CR0_WP, CR4_PGE, IOPL
from lavsim.errors import ConfigError
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.image import kernel_image, kernel_source
from lavsim.kernel.tables import read_descriptor
from lavsim.mmu import descriptors as d

PROGRAM = """
main:
    mov eax, 0
    int 0x30
"""


def _system() -> LavenderSystem:
    system = LavenderSystem(memory_size=8 << 20)
    for _ in range(2):
        group = system.create_group()
        for _ in range(2):
            process = system.create_process(group, PROGRAM, data_size=100, stack_size=512)
            system.create_thread(process, "main")
    resident = system.create_resident_process(PROGRAM, data_size=300)
    system.create_thread(resident, "main")
    return system


def _all_descriptors(system: LavenderSystem) -> list[tuple[str, d.Descriptor]]:
    out = [(f"GDT[{i}]", read_descriptor(system.memory, L.GDT_PHYS, i))
           for i in range(L.GDT_ENTRIES)]
    for pid in system.processes:
        for i in range(L.LDT_ENTRIES):
            out.append((f"LDT{pid}[{i}]",
                        read_descriptor(system.memory, L.LDT_PHYS + pid * L.LDT_BYTES, i)))
    return out


def test_gdt_holds_flat_ring0_segments_the_tss_and_one_ldt_per_process() -> None:
    system = _system()
    code = read_descriptor(system.memory, L.GDT_PHYS, L.GDT_KERNEL_CODE)
    data = read_descriptor(system.memory, L.GDT_PHYS, L.GDT_KERNEL_DATA)
    assert isinstance(code, d.SegmentDescriptor) and code.is_code and code.dpl == 0
    assert isinstance(data, d.SegmentDescriptor) and data.writable and data.dpl == 0
    assert code.base == data.base == 0 and code.effective_limit == 0xFFFFFFFF
    tss = read_descriptor(system.memory, L.GDT_PHYS, L.GDT_TSS)
    assert isinstance(tss, d.SystemDescriptor) and tss.is_tss and tss.base == L.TSS_LINEAR
    for pid in system.processes:
        ldt = read_descriptor(system.memory, L.GDT_PHYS, L.GDT_LDT_FIRST + pid)
        assert isinstance(ldt, d.SystemDescriptor) and ldt.is_ldt and ldt.dpl == 0
        assert ldt.base == L.LDT_LINEAR + pid * L.LDT_BYTES >= L.KERNEL_BASE


def test_idt_has_exception_and_timer_gates_at_dpl0_and_the_system_call_at_dpl3() -> None:
    system = _system()
    for vector in range(256):
        gate = read_descriptor(system.memory, L.IDT_PHYS, vector)
        if vector < L.EXCEPTION_VECTORS or vector in (L.TIMER_VECTOR, L.SYSCALL_VECTOR):
            assert isinstance(gate, d.GateDescriptor) and gate.is_interrupt_gate
            assert gate.selector == L.KERNEL_CS and gate.present
            assert gate.dpl == (3 if vector == L.SYSCALL_VECTOR else 0)
            assert system.image.routine_at(gate.offset) is not None
        else:
            assert not gate.present


def test_each_process_has_code_data_stack_at_dpl3_and_a_ring2_stack_with_exact_limits() -> None:
    system = LavenderSystem(memory_size=8 << 20)
    group = system.create_group()
    process = system.create_process(group, PROGRAM, data_size=1234, stack_size=700,
                                    max_threads=3, ring2_stack_size=260)
    segments = {s.name: s for s in system.process_segments(process)}
    assert set(segments) == {"code", "data", "stack", "ring2 stack"}
    assert segments["code"].size == process.code_size and segments["code"].dpl == 3
    assert segments["code"].type & d.TYPE_CODE
    assert segments["data"].size == 1234 and segments["data"].dpl == 3
    assert segments["stack"].size == 2100 and segments["stack"].dpl == 3
    assert segments["ring2 stack"].size == 780 and segments["ring2 stack"].dpl == 2
    assert segments["ring2 stack"].selector == L.RING2_SS
    bases = sorted(s.base for s in segments.values())
    assert all(b % L.PAGE_SIZE == 0 for b in bases)
    ordered = sorted(segments.values(), key=lambda s: s.base)
    assert all(a.end <= b.base for a, b in itertools.pairwise(ordered))


def test_processes_of_a_group_get_disjoint_page_aligned_regions() -> None:
    system = _system()
    for group in system.groups:
        spans = []
        for process in group.processes:
            segs = system.process_segments(process)
            spans.append((min(s.base for s in segs), max(s.end for s in segs)))
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start
        assert all(start >= L.USER_BASE and end <= L.USER_END for start, end in spans)


def test_no_descriptor_usable_outside_ring0_covers_a_kernel_address() -> None:
    system = _system()
    checked = 0
    for where, desc in _all_descriptors(system):
        if isinstance(desc, d.SegmentDescriptor) and desc.present and desc.dpl >= 1:
            checked += 1
            assert desc.base + desc.effective_limit < L.KERNEL_BASE, where
    assert checked >= 4 * 5


def test_kernel_structures_live_in_pages_no_user_mapping_reaches() -> None:
    system = _system()
    kernel_frames = set(range(L.FRAMES_PHYS >> 12)) | system.page_tables.table_frames()
    for pd in system.page_tables.directories:
        user_frames = {pte >> 12 for pte in system.page_tables.user_mappings(pd).values()}
        assert user_frames
        assert not user_frames & kernel_frames


def test_paging_controls_and_iopl_at_the_hand_over() -> None:
    system = _system()
    cpu = system.machine.cpu
    assert cpu.cr0 & CR0_PG and cpu.cr0 & CR0_WP and cpu.cr4 & CR4_PGE
    assert cpu.get_eflags() & IOPL == 0
    for thread in system.threads.values():
        registers = system.thread_state(thread).registers
        assert registers is not None
        assert registers.eflags & IOPL == 0 and registers.eflags & 0x200
        assert registers.cs & 3 == 3 and registers.ss & 3 == 3


def test_bad_configuration_names_the_field_and_builds_nothing() -> None:
    with pytest.raises(ConfigError) as info:
        LavenderSystem(memory_size=1 << 20)
    assert info.value.field == "memory_size"
    system = LavenderSystem(memory_size=8 << 20)
    group = system.create_group()
    free = system.frames.available
    cases = [
        ({"source": "main: bogus eax"}, "source"),
        ({"source": PROGRAM, "data": b"x" * 10, "data_size": 4}, "data"),
        ({"source": PROGRAM, "max_threads": 0}, "max_threads"),
        ({"source": PROGRAM, "stack_size": 8}, "stack_size"),
        ({"source": PROGRAM, "data_size": (1 << 20) + 1}, "data_size"),
        ({"source": PROGRAM, "data_size": 64 << 20}, "memory_size"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ConfigError) as info:
            system.create_process(group, **kwargs)  # type: ignore[arg-type]
        assert info.value.field == field
        assert system.frames.available == free
        assert not system.processes
    process = system.create_process(group, PROGRAM)
    assert process.pid == 1
    with pytest.raises(ConfigError) as info:
        system.create_thread(process, "nowhere")
    assert info.value.field == "entry"
    with pytest.raises(ConfigError) as info:
        system.create_thread(process, process.code_size)
    assert info.value.field == "entry"
    assert not system.threads and system.kernel_variable("k_live_threads") == 0


@pytest.mark.skipif(shutil.which("as") is None or shutil.which("ld") is None,
                    reason="GNU binutils not installed")
def test_kernel_sources_assemble_to_the_same_bytes_with_gnu_as(tmp_path: Path) -> None:
    source = tmp_path / "kernel.s"
    source.write_text(kernel_source())
    obj, binary = tmp_path / "kernel.o", tmp_path / "kernel.bin"
    subprocess.run(["as", "--32", "-msyntax=intel", "-mnaked-reg", str(source), "-o", str(obj)],
                   check=True)
    subprocess.run(["ld", "-m", "elf_i386", f"-Ttext={L.KERNEL_BASE:#x}", "-e", "kernel_start",
                    "--oformat", "binary", str(obj), "-o", str(binary)], check=True)
    assert binary.read_bytes() == kernel_image().code
