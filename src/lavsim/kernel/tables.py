"""Descriptor tables of the Lavender layout: GDT, IDT, TSS and the per-process LDTs.

All of them live in kernel pages (physical memory below ``FRAMES_PHYS``, reached by the
kernel at ``KERNEL_BASE + physical``). Descriptors are written with the value types of
:mod:`lavsim.mmu.descriptors`, so their bytes are exactly the architecture's.
"""

from __future__ import annotations

from lavsim.errors import ConfigError
from lavsim.kernel import layout as L
from lavsim.memory import PhysicalMemory
from lavsim.mmu import descriptors as d
from lavsim.mmu.descriptors import GateDescriptor, SegmentDescriptor, SystemDescriptor, Tss32

AnyDescriptor = SegmentDescriptor | SystemDescriptor | GateDescriptor

#: Largest segment whose limit can be exact to the byte (G = 0, 20-bit limit).
BYTE_GRANULAR_MAX = 1 << 20

#: IDT vectors the processor pushes an error code for, among 0..19.
_ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17})


def limit_fields(field: str, size: int) -> tuple[int, bool]:
    """The raw limit and G flag of a segment of exactly ``size`` bytes.

    Up to 1 MiB the limit is byte granular; above, the size must be a multiple of 4 KiB (the
    page-granular limit then is still exact). ConfigError(``field``) otherwise.
    """
    if size <= 0:
        raise ConfigError(field, f"a segment needs at least one byte, got {size}")
    if size <= BYTE_GRANULAR_MAX:
        return size - 1, False
    if size % L.PAGE_SIZE:
        raise ConfigError(
            field, f"{size} bytes: above 1 MiB a segment's size must be a multiple of 4096"
        )
    if size > 1 << 32:
        raise ConfigError(field, f"{size} bytes is more than 4 GiB")
    return (size >> 12) - 1, True


def segment(base: int, size: int, type_: int, dpl: int, field: str) -> SegmentDescriptor:
    """A present, 32-bit code or data segment of exactly ``size`` bytes at ``base``."""
    limit, g = limit_fields(field, size)
    return SegmentDescriptor(base=base, limit=limit, type=type_, dpl=dpl, db=True, g=g)


def write_descriptor(
    memory: PhysicalMemory, table_phys: int, index: int, desc: AnyDescriptor
) -> None:
    """Store ``desc`` as entry ``index`` of the table at physical ``table_phys``."""
    memory.write(table_phys + 8 * index, desc.encode())


def read_descriptor(memory: PhysicalMemory, table_phys: int, index: int) -> d.Descriptor:
    """Entry ``index`` of the table at physical ``table_phys``, decoded."""
    return d.decode_descriptor(memory.read(table_phys + 8 * index, 8))


def kernel_code_descriptor() -> SegmentDescriptor:
    """Flat ring-0 code: the kernel reaches every linear address (DPL 0 only)."""
    return SegmentDescriptor(0, 0xFFFFF, d.CODE_EXECUTE_READ_ACCESSED, 0, db=True, g=True)


def kernel_data_descriptor() -> SegmentDescriptor:
    """Flat ring-0 data."""
    return SegmentDescriptor(0, 0xFFFFF, d.DATA_READ_WRITE_ACCESSED, 0, db=True, g=True)


def tss_descriptor() -> SystemDescriptor:
    """The one 32-bit TSS (available until the kernel's LTR marks it busy)."""
    return SystemDescriptor(L.TSS_LINEAR, d.TSS32_SIZE - 1, d.SYS_TSS32_AVAILABLE)


def ldt_descriptor(pid: int) -> SystemDescriptor:
    """The GDT descriptor of process ``pid``'s LDT."""
    return SystemDescriptor(L.LDT_LINEAR + pid * L.LDT_BYTES, L.LDT_BYTES - 1, d.SYS_LDT)


def build_gdt(memory: PhysicalMemory) -> None:
    """Null, kernel code and data, the TSS; every other slot empty (not present)."""
    memory.fill(L.GDT_PHYS, 8 * L.GDT_ENTRIES, 0)
    write_descriptor(memory, L.GDT_PHYS, L.GDT_KERNEL_CODE, kernel_code_descriptor())
    write_descriptor(memory, L.GDT_PHYS, L.GDT_KERNEL_DATA, kernel_data_descriptor())
    write_descriptor(memory, L.GDT_PHYS, L.GDT_TSS, tss_descriptor())


def build_idt(memory: PhysicalMemory, symbol: dict[str, int]) -> None:
    """Exceptions 0..19 and the timer through DPL 0 interrupt gates, ``int 0x30`` through a
    DPL 3 interrupt gate (IF = 0 in the kernel: it is never preempted); the rest not present.
    """
    memory.fill(L.IDT_PHYS, 8 * L.IDT_ENTRIES, 0)

    def gate(vector: int, target: str, dpl: int) -> None:
        write_descriptor(
            memory,
            L.IDT_PHYS,
            vector,
            GateDescriptor(d.SYS_INTERRUPT_GATE32, L.KERNEL_CS, symbol[target], dpl=dpl),
        )

    for vector in range(L.EXCEPTION_VECTORS):
        gate(vector, f"isr_{vector}", 0)
    gate(L.TIMER_VECTOR, "isr_timer", 0)
    gate(L.SYSCALL_VECTOR, "syscall_entry", 3)


def build_tss(memory: PhysicalMemory) -> None:
    """SS0 = kernel data and SS2 = the ring-2 stack slot of every LDT; ESP0/ESP2 are set by
    switch_to. The I/O map base lies beyond the limit: no I/O permission bitmap."""
    tss = Tss32(ss0=L.KERNEL_DS, ss2=L.RING2_SS, io_map_base=d.TSS32_SIZE)
    memory.write(L.TSS_PHYS, tss.encode())


def expects_error_code(vector: int) -> bool:
    """True when the processor pushes an error code for exception ``vector``."""
    return vector in _ERROR_CODE_VECTORS
