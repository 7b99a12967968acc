"""The Lavender layout on the simulated machine: one table of numbers shared by Python and guest.

Every address, selector, structure offset and system-call number the kernel's guest code uses is
defined here once. :func:`asm_prelude` turns them into ``.equ`` lines that are prepended to the
kernel's ``.s`` sources, so the boot loader (Python) and the kernel (guest code) can never
disagree about where a field lives.

Linear layout of every address space (``../shared/DESIGN.md`` §4)::

    0xC0000000-0xFFFFFFFF  kernel space: all of physical memory at KERNEL_BASE + physical,
                           supervisor, global
    0x80000000-0xBFFFFFFF  resident space: the same page tables in every page directory,
                           user, global
    0x00000000-0x7FFFFFFF  user space of one process group

Physical memory (the kernel reaches a physical address ``p`` at linear ``KERNEL_BASE + p``)::

    0x00000000  kernel image (code and kernel variables), at most KERNEL_IMAGE_MAX bytes
    0x00011000  GDT, GDT_ENTRIES descriptors
    0x00013000  IDT, 256 gates
    0x00013800  the one 32-bit TSS
    0x00014000  process control blocks, MAX_PROCESSES x PCB_SIZE
    0x00018000  LDTs, one per process, MAX_PROCESSES x LDT_BYTES
    0x00060000  thread control blocks, MAX_THREADS x TCB_SIZE (TCB fields + ring-0 stack)
    0x00160000  frames handed out by the frame allocator (page tables, process segments)
"""

from __future__ import annotations

from lavsim import devices
from lavsim.mmu import descriptors as d

PAGE_SIZE = 4096
PAGE_SHIFT = 12

# --- linear layout ----------------------------------------------------------------------
KERNEL_BASE = 0xC0000000
RESIDENT_BASE = 0x80000000
RESIDENT_END = KERNEL_BASE
USER_END = RESIDENT_BASE
#: The lowest linear address a group's processes are placed at (the first 4 MiB stay unmapped,
#: so that a stray flat pointer of the kernel into low user space faults).
USER_BASE = 0x00400000
#: Page-directory indices where the resident and kernel ranges start.
PDE_RESIDENT_FIRST = RESIDENT_BASE >> 22
PDE_KERNEL_FIRST = KERNEL_BASE >> 22
#: At most this much physical memory is reachable through the kernel window.
KERNEL_WINDOW = 1 << 30

# --- physical layout of the kernel's fixed structures -------------------------------------
KERNEL_IMAGE_PHYS = 0x00000000
KERNEL_IMAGE_MAX = 0x00010000
BOOT_STACK_PHYS = 0x00010000  # one page; the boot pseudo-thread uses TCB 0 instead (see below)
GDT_PHYS = 0x00011000
GDT_ENTRIES = 1024
IDT_PHYS = 0x00013000
IDT_ENTRIES = 256
TSS_PHYS = 0x00013800
PCB_PHYS = 0x00014000
PCB_SIZE = 128
MAX_PROCESSES = 128
LDT_PHYS = 0x00018000
LDT_ENTRIES = 128
LDT_BYTES = LDT_ENTRIES * 8
TCB_PHYS = 0x00060000
TCB_SIZE = 4096  # one page: the fields at the bottom, the ring-0 stack above them
MAX_THREADS = 256
#: First physical address the frame allocator may hand out.
FRAMES_PHYS = TCB_PHYS + MAX_THREADS * TCB_SIZE
#: The smallest memory the kernel boots in: its fixed structures plus 1 MiB of frames.
MIN_MEMORY = FRAMES_PHYS + 0x100000

assert GDT_PHYS + GDT_ENTRIES * 8 <= IDT_PHYS
assert IDT_PHYS + IDT_ENTRIES * 8 <= TSS_PHYS
assert TSS_PHYS + d.TSS32_SIZE <= PCB_PHYS
assert PCB_PHYS + MAX_PROCESSES * PCB_SIZE <= LDT_PHYS
assert LDT_PHYS + MAX_PROCESSES * LDT_BYTES <= TCB_PHYS


def kernel_linear(phys: int) -> int:
    """The linear address at which the kernel reaches physical address ``phys``."""
    return KERNEL_BASE + phys


GDT_LINEAR = kernel_linear(GDT_PHYS)
IDT_LINEAR = kernel_linear(IDT_PHYS)
TSS_LINEAR = kernel_linear(TSS_PHYS)
PCB_LINEAR = kernel_linear(PCB_PHYS)
LDT_LINEAR = kernel_linear(LDT_PHYS)
TCB_LINEAR = kernel_linear(TCB_PHYS)
KERNEL_IMAGE_LINEAR = kernel_linear(KERNEL_IMAGE_PHYS)

# --- GDT ------------------------------------------------------------------------------------
GDT_KERNEL_CODE = 1
GDT_KERNEL_DATA = 2
GDT_TSS = 3
#: LDT descriptor of process ``pid`` is at GDT index GDT_LDT_FIRST + pid.
GDT_LDT_FIRST = 16
#: Resident-space exports (issue 5) are allocated from here to the end of the GDT.
GDT_EXPORT_FIRST = GDT_LDT_FIRST + MAX_PROCESSES
KERNEL_CS = GDT_KERNEL_CODE << 3
KERNEL_DS = GDT_KERNEL_DATA << 3
TSS_SEL = GDT_TSS << 3


def ldt_selector(pid: int) -> int:
    """The GDT selector of process ``pid``'s LDT descriptor."""
    return (GDT_LDT_FIRST + pid) << 3


# --- every process's LDT --------------------------------------------------------------------
LDT_CODE = 0
LDT_DATA = 1
LDT_STACK = 2
LDT_RING2_STACK = 3
#: Slots 4..7 are kept for the kernel; imports (issue 5) are allocated from here, group-wide.
LDT_FIRST_SHARED = 8


def ldt_sel(index: int, rpl: int) -> int:
    """A selector naming LDT entry ``index`` (TI = 1) with the given RPL."""
    return (index << 3) | 4 | rpl


USER_CS = ldt_sel(LDT_CODE, 3)
USER_DS = ldt_sel(LDT_DATA, 3)
USER_SS = ldt_sel(LDT_STACK, 3)
RING2_SS = ldt_sel(LDT_RING2_STACK, 2)

# --- interrupt vectors ------------------------------------------------------------------------
EXCEPTION_VECTORS = 20
PIC_BASE_VECTOR = 0x20
TIMER_VECTOR = PIC_BASE_VECTOR + 0
SYSCALL_VECTOR = 0x30
#: Entries of the kernel's vector dispatch table (0 .. SYSCALL_VECTOR).
VECTOR_TABLE_ENTRIES = SYSCALL_VECTOR + 1

# --- the trap frame on a thread's ring-0 stack (offsets from the lowest saved word) ----------
FR_GS = 0
FR_FS = 4
FR_ES = 8
FR_DS = 12
FR_EDI = 16
FR_ESI = 20
FR_EBP = 24
FR_KESP = 28  # the ESP PUSHAD saved: meaningless, skipped by POPAD
FR_EBX = 32
FR_EDX = 36
FR_ECX = 40
FR_EAX = 44
FR_VECTOR = 48
FR_ERROR = 52
FR_EIP = 56
FR_CS = 60
FR_EFLAGS = 64
FR_ESP = 68  # only when the trap came from an outer ring
FR_SS = 72
#: Size of the frame of a trap from CPL 1..3 (from CPL 0 the last two words are absent).
FRAME_SIZE = 76
#: The initial kernel stack of a new thread: the user frame, the return address of
#: switch_to (trap_return) and the four registers switch_to pops.
SWITCH_FRAME_WORDS = 5
NEW_THREAD_KESP_OFFSET = TCB_SIZE - FRAME_SIZE - 4 * SWITCH_FRAME_WORDS

# --- thread control block (at the bottom of the thread's page) -------------------------------
TCB_TID = 0
TCB_STATE = 4
TCB_KESP = 8  # saved ring-0 ESP while the thread is not running
TCB_PROCESS = 12  # linear address of the home process's PCB
TCB_NEXT = 16  # ready-queue link (linear address of the next TCB, 0 at the tail)
TCB_ESP2 = 20  # ring-2 stack pointer for TSS.ESP2
TCB_SLOT = 24  # index of the thread's stack slots in its process
TCB_EXIT_CODE = 28
TCB_FAULT_VECTOR = 32  # -1: not killed by a fault
TCB_FAULT_ERROR = 36
TCB_FAULT_EIP = 40
TCB_FAULT_CS = 44
TCB_FAULT_CR2 = 48
#: Words 52..127 are reserved for IPC state (issue 5).
TCB_FIELDS_END = 128

THREAD_FREE = 0
THREAD_READY = 1
THREAD_RUNNING = 2
THREAD_BLOCKED = 3
THREAD_DEAD = 4
THREAD_STATE_NAMES = {
    THREAD_FREE: "free", THREAD_READY: "ready", THREAD_RUNNING: "running",
    THREAD_BLOCKED: "blocked", THREAD_DEAD: "dead",
}  # fmt: skip

# --- process control block --------------------------------------------------------------------
PCB_PID = 0
PCB_GROUP = 4
PCB_LDT_SEL = 8
PCB_CR3 = 12  # 0 for resident processes: they run in whatever address space is loaded
PCB_CODE_LIMIT = 16
PCB_STACK_BASE = 20  # linear base of the stack segment
PCB_STACK_SLOT = 24  # bytes of user stack per thread
PCB_R2_SLOT = 28  # bytes of ring-2 stack per thread
PCB_MAX_THREADS = 32
PCB_THREADS = 36  # live threads
PCB_SLOTS = 64  # one byte per thread slot: 1 in use
MAX_THREADS_PER_PROCESS = 32
assert PCB_SLOTS + MAX_THREADS_PER_PROCESS <= PCB_SIZE

# --- kernel status word (k_status) -----------------------------------------------------------
STATUS_BOOTING = 0
STATUS_RUNNING = 1
STATUS_DONE = 2
STATUS_PANIC = 3

# --- system calls: number in EAX, arguments in EBX ECX EDX ESI EDI, result in EAX ------------
SYS_EXIT = 0
SYS_YIELD = 1
SYS_THREAD_ID = 2
SYS_PROCESS_ID = 3
SYS_CONSOLE_WRITE = 4
SYS_CREATE_THREAD = 5
SYSCALL_COUNT = 6
SYSCALL_NAMES = ("exit", "yield", "thread_id", "process_id", "console_write", "create_thread")
#: Error results (negative, in EAX).
E_NOSYS = -1
E_FAULT = -2
E_NOMEM = -3
E_AGAIN = -4
E_INVAL = -5

#: Word pushed as the return address of a thread's entry: returning from the entry procedure
#: jumps beyond every code-segment limit and the thread is killed with #GP(0).
THREAD_RETURN_SENTINEL = 0xFFFFFFF0

#: EFLAGS of a new thread: IF set, IOPL 0, bit 1 (always one).
USER_EFLAGS = 0x202

# --- devices (lavsim.devices' port map) ------------------------------------------------------
PIC_COMMAND = devices.PIC_COMMAND
PIC_DATA = devices.PIC_DATA
TIMER_PERIOD_PORT = devices.TIMER_PERIOD
CONSOLE_PORT = devices.CONSOLE_PORT
PIC_EOI = 0x20


def asm_constants() -> dict[str, int]:
    """Every constant the guest kernel sources use, by the name they use."""
    names = {
        "KERNEL_BASE": KERNEL_BASE, "GDT_LINEAR": GDT_LINEAR, "IDT_LINEAR": IDT_LINEAR,
        "TSS_LINEAR": TSS_LINEAR, "PCB_LINEAR": PCB_LINEAR, "TCB_LINEAR": TCB_LINEAR,
        "TCB_SIZE": TCB_SIZE, "MAX_THREADS": MAX_THREADS,
        "KERNEL_CS": KERNEL_CS, "KERNEL_DS": KERNEL_DS, "TSS_SEL": TSS_SEL,
        "USER_CS": USER_CS, "USER_DS": USER_DS, "USER_SS": USER_SS,
        "TSS_ESP0": d.TSS32_ESP0, "TSS_SS0": d.TSS32_SS0, "TSS_ESP2": d.TSS32_ESP2,
        "TSS_SS2": d.TSS32_SS2,
        "TIMER_VECTOR": TIMER_VECTOR, "SYSCALL_VECTOR": SYSCALL_VECTOR,
        "PIC_BASE_VECTOR": PIC_BASE_VECTOR,
        "FRAME_SIZE": FRAME_SIZE, "NEW_THREAD_KESP_OFFSET": NEW_THREAD_KESP_OFFSET,
        "PIC_COMMAND": PIC_COMMAND, "PIC_DATA": PIC_DATA, "PIC_EOI": PIC_EOI,
        "TIMER_PERIOD_PORT": TIMER_PERIOD_PORT, "CONSOLE_PORT": CONSOLE_PORT,
        "SYSCALL_COUNT": SYSCALL_COUNT, "USER_EFLAGS": USER_EFLAGS,
        "THREAD_RETURN_SENTINEL": THREAD_RETURN_SENTINEL,
        "MAX_THREADS_PER_PROCESS": MAX_THREADS_PER_PROCESS,
        "E_NOSYS": E_NOSYS & 0xFFFFFFFF, "E_FAULT": E_FAULT & 0xFFFFFFFF,
        "E_NOMEM": E_NOMEM & 0xFFFFFFFF, "E_AGAIN": E_AGAIN & 0xFFFFFFFF,
        "E_INVAL": E_INVAL & 0xFFFFFFFF,
        "STATUS_RUNNING": STATUS_RUNNING, "STATUS_DONE": STATUS_DONE,
        "STATUS_PANIC": STATUS_PANIC,
    }  # fmt: skip
    prefixes = ("FR_", "TCB_", "PCB_", "THREAD_")
    for name, value in globals().items():
        if name.startswith(prefixes) and isinstance(value, int) and not isinstance(value, bool):
            names[name] = value
    return names


def asm_prelude() -> str:
    """``.equ`` lines defining :func:`asm_constants` for the kernel sources."""
    return "".join(f".equ {name}, {value:#x}\n" for name, value in sorted(asm_constants().items()))
