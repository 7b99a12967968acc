"""The Lavender layout on the simulated machine: one table of numbers shared by Python and guest.

Every address, selector, structure offset and system-call number the kernel's guest code uses is
defined here once. :func:`asm_prelude` turns them into ``.equ`` lines that are prepended to the
kernel's ``.s`` sources, so the boot loader (Python) and the kernel (guest code) can never
disagree about where a field lives.

Linear layout of every address space (the founding design §4, see ``docs/sources.md``)::

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

# The device layer's port map and interrupt lines (devices and the network card sit below the
# kernel); nothing else of the top package is needed here.
import lavsim.devices as devices
import lavsim.network as network
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


def round_up(value: int, unit: int = PAGE_SIZE) -> int:
    """``value`` rounded up to a multiple of ``unit`` (a page by default)."""
    return -(-value // unit) * unit


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
#: The largest frame a call gate from CPL 3 writes on a thread's ring-2 slot: SS, ESP, 31
#: parameters (the gate's 5-bit count), CS, EIP.
RING2_GATE_FRAME_MAX = 16 + 4 * 31
#: What an exported procedure may push below that frame (nested calls included): every slot
#: holds both, so no caller can write into its neighbour's slot (issue 19).
RING2_PROCEDURE_STACK = 116
RING2_STACK_MIN = RING2_GATE_FRAME_MAX + RING2_PROCEDURE_STACK

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
#: Words 52..95: message IPC (issue 5, lavsim.kernel.ipc; ipc.s).
TCB_IPC_STATE = 52  # IPC_NONE, IPC_WAIT_RECEIVE or IPC_WAIT_REPLY
TCB_IPC_NEXT = 56  # link in a port's queue of waiting receivers
TCB_IPC_MSG = 60  # the message handed to this waiting thread (0: woken with TCB_IPC_STATUS)
TCB_IPC_STATUS = 64  # the error a waiting thread is woken with when its port is destroyed
TCB_IPC_SERVER = 68  # a caller: PCB of the process that received its call (may reply), or 0
#: L4-style IPC (issue 14, lavsim.kernel.fastipc; l4ipc.s).
TCB_L4_STATE = 72  # L4_NONE, L4_WAIT_ANY, L4_WAIT_REPLY or L4_WAIT_SEND
TCB_L4_PARTNER = 76  # waiting for a reply or to send: that thread's TCB; a receiver: its caller
TCB_L4_SENDQ = 80  # threads waiting to send to this one (TCB_L4_NEXT links)
TCB_L4_NEXT = 84
TCB_L4_RBUF = 88  # linear address of the receive buffer for long messages
TCB_L4_RCAP = 92  # its capacity (0: register messages only)
#: Words 96..127: sharing and migration (issue 5, lavsim.kernel.sharing).
TCB_FAULT_PID = 96  # pid of the process whose code faulted (the server for a migrated call)
TCB_L4_RESULT = 100  # what the L4 system call returns when this waiting thread is woken
#: LRPC-style calls (issue 14, lavsim.kernel.fastipc; lrpc.s).
TCB_LRPC_BINDING = 104  # the binding of the call in progress (its entry), 0: none
TCB_LRPC_HOME = 108  # the thread's own process during such a call (TCB_PROCESS is the server's)
TCB_L4_RDIR = 112  # the page directory (physical; 0: any) the receive buffer's address is in
TCB_GENERATION = 120  # how many threads had this TCB (and id) before (issue 19: ids are reused)
#: Timed waits (issue 19; timeout.s): a thread in a timed call or receive is on the kernel's
#: list k_timed_head (TCB_TIMED_NEXT links) until its wait ends.
TCB_TIMED_STATE = 128  # TIMED_NONE, TIMED_WAITING (on the list) or TIMED_EXPIRED
TCB_TIMED_NEXT = 132
TCB_DEADLINE_LO = 136  # the TSC value (64 bits) from which the wait times out
TCB_DEADLINE_HI = 140
TCB_FIELDS_END = 144

#: TCB_TIMED_STATE values.
TIMED_NONE = 0
TIMED_WAITING = 1  # in a timed system call, on the deadline list
TIMED_EXPIRED = 2  # woken by the tick handler with E_TIMEOUT, off the list (until it runs)

THREAD_FREE = 0
THREAD_READY = 1
THREAD_RUNNING = 2
THREAD_BLOCKED = 3
THREAD_DEAD = 4
THREAD_STATE_NAMES = {
    THREAD_FREE: "free", THREAD_READY: "ready", THREAD_RUNNING: "running",
    THREAD_BLOCKED: "blocked", THREAD_DEAD: "dead",
}  # fmt: skip

# --- sharing and migration (issue 5, lavsim.kernel.sharing) -----------------------------------
#: Owner of each LDT slot, one byte (a pid) per slot of every process's LDT: slot ``i`` of
#: process ``p``'s LDT belongs to process ``SLOT_OWNER[p * LDT_ENTRIES + i]``. Slots below
#: LDT_FIRST_SHARED always belong to the LDT's own process (0 is written there: "own").
LDT_OWNER_PHYS = 0x00038000
#: Owner of each GDT slot (one byte, a pid; 0 = the kernel), for resident exports.
GDT_OWNER_PHYS = LDT_OWNER_PHYS + MAX_PROCESSES * LDT_ENTRIES
LDT_OWNER_LINEAR = kernel_linear(LDT_OWNER_PHYS)
GDT_OWNER_LINEAR = kernel_linear(GDT_OWNER_PHYS)
assert LDT_PHYS + MAX_PROCESSES * LDT_BYTES <= LDT_OWNER_PHYS
assert GDT_OWNER_PHYS + GDT_ENTRIES <= TCB_PHYS

#: The address structure (20 bytes, little-endian dwords) the name server returns and
#: lav_call takes: where an exported procedure lives.
ADDR_HOST = 0  # host id, 0 = this host
ADDR_GROUP = 4  # group id, ADDR_GROUP_RESIDENT for the resident space
ADDR_SELECTOR = 8  # the call gate's selector the caller uses
ADDR_OFFSET = 12  # entry offset inside the procedure segment (informational for gates)
ADDR_FLAGS = 16  # bit 0: shippable (issue 8); bit 1: bits 8..12 hold the parameter count
ADDR_SIZE = 20
ADDR_GROUP_RESIDENT = 0xFFFFFFFF
ADDR_FLAG_SHIPPABLE = 1
#: The structure records the gate's parameter count (set at export), in ADDR_PARAMS_* bits.
ADDR_FLAG_PARAMS = 2
ADDR_PARAMS_SHIFT = 8
ADDR_PARAMS_MASK = 0x1F  # after the shift: a 32-bit gate copies at most 31 doublewords
#: lav_call's status (ECX, and EAX on failure): the procedure is not reachable by migration
#: from here (another host, or another group of this host).
E_UNREACHABLE = -32
#: lav_bind's result: nargs differs from the parameter count the procedure was exported with.
E_NARGS = -33

# --- several hosts (issue 8, lavsim.cluster and net.s) ------------------------------------------
#: System calls of the network server (net.s), dispatched apart from syscall_table.
NET_SYSCALL_FIRST = 48
SYS_NET_ATTACH = 48
SYS_NET_SEND = 49
SYS_NET_RECV = 50
SYS_NET_INSTALL = 51
SYS_NET_FETCH = 52
SYS_NET_RECV_TIMED = 53
#: net_recv_timed's longest wait, in cycles (the network server compares TSC low dwords).
NET_TIMEOUT_MAX = 1 << 30
#: The kernel routine of each network-server call, by number: the one place the order of
#: ``net_syscall_table`` (net.s) is written (kernel/image.py generates the table from it).
NET_SYSCALLS: dict[int, str] = {
    SYS_NET_ATTACH: "sys_net_attach", SYS_NET_SEND: "sys_net_send",
    SYS_NET_RECV: "sys_net_recv", SYS_NET_INSTALL: "sys_net_install",
    SYS_NET_FETCH: "sys_net_fetch", SYS_NET_RECV_TIMED: "sys_net_recv_timed",
}  # fmt: skip
NET_SYSCALL_COUNT = len(NET_SYSCALLS)
NET_SYSCALL_NAMES = tuple(
    NET_SYSCALLS[NET_SYSCALL_FIRST + k].removeprefix("sys_") for k in range(NET_SYSCALL_COUNT)
)
#: The network interface's interrupt (lavsim.network: IRQ 3) and the PIC mask bits clearing it.
NIC_VECTOR = PIC_BASE_VECTOR + network.NIC_IRQ
NIC_IRQ_UNMASK = 0xFF & ~(1 << network.NIC_IRQ)
#: Receive rings in kernel memory (allocated by the boot loader): two queues of NET_RX_SLOTS
#: slots of RX_SLOT_SIZE bytes, then a transmit buffer of one page.
NET_RX_SLOTS = 4
NET_RX_SLOTS_ALL = network.RX_QUEUES * NET_RX_SLOTS
NET_RX_SLOTS_MASK = NET_RX_SLOTS - 1
RX_SLOT_SIZE = network.RX_SLOT_SIZE
RX_SLOT_SHIFT = 12
NET_RING_BYTES = NET_RX_SLOTS * RX_SLOT_SIZE
NET_TX_OFFSET = network.RX_QUEUES * NET_RING_BYTES
NET_AREA_BYTES = NET_TX_OFFSET + PAGE_SIZE
NET_FRAME_HEADER = network.FRAME_HEADER
NET_FRAME_MAX = RX_SLOT_SIZE - 4
assert RX_SLOT_SIZE == 1 << RX_SLOT_SHIFT and NET_RX_SLOTS & NET_RX_SLOTS_MASK == 0
#: GDT slots kept for procedures shipped in from other hosts (net_install takes them in pairs:
#: code segment, gate).
GDT_SHIP_FIRST = 960
#: Errors of the remote path (negative, in EAX).
E_HOST_UNREACHABLE = -48
E_NO_PROCEDURE = -49
E_NET_PERM = -50  # a network call from a process that is not the network server
E_NET_TIMEOUT = -51  # net_recv's wait ran out; a remote request got no reply (issue 19)


def net_asm_constants() -> dict[str, int]:
    """The constants net.s uses (also the network interface's ports)."""
    out = {name: value & 0xFFFFFFFF for name, value in globals().items()
           if name.startswith(("NET_", "NIC_", "SYS_NET_", "RX_SLOT_"))
           and isinstance(value, int)}  # fmt: skip
    out.update({name: getattr(network, name) for name in dir(network) if name.startswith("NIC_")
                and isinstance(getattr(network, name), int)})
    for name in ("E_HOST_UNREACHABLE", "E_NO_PROCEDURE", "E_NET_PERM", "E_NET_TIMEOUT"):
        out[name] = globals()[name] & 0xFFFFFFFF
    out.update(GDT_EXPORT_FIRST=GDT_EXPORT_FIRST, GDT_ENTRIES=GDT_ENTRIES,
               GDT_SHIP_FIRST=GDT_SHIP_FIRST)
    return out


# --- ports and message IPC (issue 5, lavsim.kernel.ipc; ipc.s) --------------------------------
#: Kernel memory of the IPC service: variables, the port table and the message headers in one
#: page at IPC_PHYS; the message buffers (one page each) from IPC_BUFFERS_PHYS up to the TCBs.
IPC_PHYS = 0x0003E000
IPC_MSG_FREE = IPC_PHYS + 0  # kernel variable: head of the free list of message headers
IPC_MAX_PORTS = 64
PORT_SHIFT = 5
PORT_SIZE = 1 << PORT_SHIFT
IPC_PORTS_PHYS = IPC_PHYS + 0x40
IPC_MAX_MESSAGES = 32
MSG_SIZE = 32
IPC_MSGS_PHYS = IPC_PORTS_PHYS + IPC_MAX_PORTS * PORT_SIZE
IPC_BUFFERS_PHYS = 0x00040000
#: The largest message (bytes): one kernel buffer.
IPC_MAX_MESSAGE = 4096
IPC_BUFFER_SIZE = IPC_MAX_MESSAGE
assert IPC_MSGS_PHYS + IPC_MAX_MESSAGES * MSG_SIZE <= IPC_PHYS + PAGE_SIZE
assert GDT_OWNER_PHYS + GDT_ENTRIES <= IPC_PHYS
assert IPC_BUFFERS_PHYS + IPC_MAX_MESSAGES * IPC_BUFFER_SIZE <= TCB_PHYS
IPC_MSG_FREE_LINEAR = kernel_linear(IPC_MSG_FREE)
IPC_PORTS_LINEAR = kernel_linear(IPC_PORTS_PHYS)
IPC_PORTS_END = IPC_PORTS_LINEAR + IPC_MAX_PORTS * PORT_SIZE
IPC_MSGS_LINEAR = kernel_linear(IPC_MSGS_PHYS)
#: A port table entry.
PORT_STATE = 0  # PORT_FREE or PORT_OPEN
PORT_OWNER = 4  # PCB of the owning process (only its threads receive and destroy)
PORT_HEAD = 8  # queue of messages not yet received (message headers, MSG_NEXT links)
PORT_TAIL = 12
PORT_WHEAD = 16  # queue of threads waiting in receive (TCBs, TCB_IPC_NEXT links)
PORT_WTAIL = 20
PORT_QUEUED = 24  # messages in the queue
PORT_NAMED = 28  # 1: a name was registered with the name server for it
PORT_FREE = 0
PORT_OPEN = 1
#: A message header (the bytes are in the kernel buffer at MSG_BUF).
MSG_NEXT = 0  # free-list or port-queue link
MSG_LEN = 4
MSG_CALLER = 8  # TCB of the thread waiting in call for the reply, 0 for a plain send
MSG_BUF = 12  # linear address of its kernel buffer (fixed at boot)
MSG_PID = 16  # sender's pid (0: the kernel)
MSG_GROUP = 20  # sender's group id (0: the resident space or the kernel)
#: TCB_L4_STATE values.
L4_NONE = 0
L4_WAIT_ANY = 1  # in reply_and_wait: waiting for a message from any thread
L4_WAIT_REPLY = 2  # in call: waiting for the partner's reply
L4_WAIT_SEND = 3  # in call: waiting for the partner to wait for a message
#: Words of an L4-style register message (ESI, EDI): the 8-byte short message of L3/L4.
L4_REGISTER_WORDS = 2
#: LRPC bindings (one page of kernel memory): the binding table, LRPC_MAX_BINDINGS entries.
LRPC_PHYS = 0x0003F000
LRPC_MAX_BINDINGS = 32
LB_SHIFT = 6
LB_SIZE = 1 << LB_SHIFT
LRPC_BINDINGS_LINEAR = kernel_linear(LRPC_PHYS)
assert IPC_PHYS + PAGE_SIZE <= LRPC_PHYS and LRPC_PHYS + PAGE_SIZE <= IPC_BUFFERS_PHYS
assert LRPC_MAX_BINDINGS * LB_SIZE <= PAGE_SIZE
#: A binding: made by the boot loader (fastipc.bind_lrpc), the linkage written by each call.
LB_CLIENT = 0  # PCB of the process that holds the binding (0: a free entry)
LB_SERVER = 4  # PCB of the server
LB_ENTRY = 8  # the procedure's offset in the server's code segment
LB_ESTACK = 12  # top of the execution stack (offset in the server's data segment)
LB_ASTACK = 16  # the argument stack's selector in the server
LB_CALLER = 20  # TCB of the thread in a call through the binding (0: none)
LB_EIP = 24  # the linkage: the caller's return state
LB_CS = 28
LB_EFLAGS = 32
LB_ESP = 36
LB_SS = 40
LB_DS = 44
LB_ES = 48
LB_FS = 52
LB_GS = 56
LB_EBP = 60
#: TCB_IPC_STATE values.
IPC_NONE = 0
IPC_WAIT_RECEIVE = 1
IPC_WAIT_REPLY = 2
#: IPC error results (the kernel's other errors are below).
E_BADPORT = -16  # no such open port, or not the caller's
E_MSGSIZE = -17  # message longer than IPC_MAX_MESSAGE
E_EXIST = -18  # name server: the name is taken
E_NOENT = -19  # name server: no such name
E_PERM = -20  # not allowed: name server (another group), L4 send right, LRPC binding
E_NOSPC = -21  # no free port / name-server entry
E_PROTO = -22  # name server: malformed request
E_TIMEOUT = -23  # a timed call or receive: the deadline passed first (issue 19)
E_DEAD = -24  # the server (process, or L4 partner thread) died while the caller waited
#: Every error code is at least this (unsigned): how ipc.s tells an error from a kernel address.
IPC_ERROR_MIN = 0xFFFFFF00

# --- the name server (issue 5, lavsim.kernel.nameserver; nameserver.s) -----------------------
#: The name server's well-known port (opened for it by LavenderSystem.start_name_server).
NS_PORT = 0
NS_NAME_MAX = 32
#: Requests (one message): the operation, then the fields of an entry.
NS_REQ_OP = 0
NS_REQ_NAME_LEN = 4
NS_REQ_NAME = 8  # NS_NAME_MAX bytes
NS_REQ_VALUE = 40  # port number, or the call gate's selector
NS_REQ_OFFSET = 44
NS_REQ_GROUP = 48  # ADDR_GROUP_RESIDENT for the resident space
NS_REQ_HOST = 52
NS_REQ_FLAGS = 56
NS_REQ_SIZE = 60
NS_OP_PORT_REGISTER = 1  # from the kernel only (port_create)
NS_OP_PORT_UNREGISTER = 2  # from the kernel only (port_destroy); NS_REQ_VALUE = port
NS_OP_PORT_LOOKUP = 3
NS_OP_PROC_REGISTER = 4
NS_OP_PROC_LOOKUP = 5
NS_OP_PROC_UNREGISTER = 6
#: Replies: a status (0 or E_*), then the port number or the address structure (ADDR_*).
NS_REPLY_STATUS = 0
NS_REPLY_VALUE = 4
NS_REPLY_SIZE = 4 + ADDR_SIZE
#: The name server's data segment: the request/reply buffer (it receives at most NS_BUF_SIZE
#: bytes), its variables, then the table.
NS_BUF = 0
NS_BUF_SIZE = 128
NS_SENDER_PID = 192  # the current request's sender (pid 0: the kernel)
NS_SENDER_GROUP = 196  # its group (ADDR_GROUP_RESIDENT: the resident space or the kernel)
NS_REFUSED = 200  # requests refused (collision, permission, full, malformed)
NS_SERVED = 204  # requests served
NS_TABLE = 256
NS_ENTRIES = 64
NS_ENTRY_SIZE = 64
NS_ENTRY_KIND = 0  # NS_KIND_FREE, NS_KIND_PORT or NS_KIND_PROC; then the request's fields
NS_ENTRY_OWNER = 60  # pid of the registering process (0: the kernel)
NS_KIND_FREE = 0
NS_KIND_PORT = 1
NS_KIND_PROC = 2
NS_DATA_SIZE = NS_TABLE + NS_ENTRIES * NS_ENTRY_SIZE

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
#: L4-style IPC's send rights (issue 14): bit (pid & 7) of byte (pid >> 3) set = threads of
#: this process may send to threads of process pid (granted by the boot loader).
PCB_L4_RIGHTS = 96
MAX_THREADS_PER_PROCESS = 32
assert PCB_SLOTS + MAX_THREADS_PER_PROCESS <= PCB_L4_RIGHTS
assert PCB_L4_RIGHTS + MAX_PROCESSES // 8 <= PCB_SIZE

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
#: Timed IPC (issue 19; timeout.s): the untimed call with a timeout in EBP (cycles, 0: none).
SYS_CALL_TIMED = 6
SYS_RECEIVE_TIMED = 7
SYS_REPLY_WAIT_TIMED = 8
SYS_L4_CALL_TIMED = 9
SYS_L4_REPLY_WAIT_TIMED = 10
#: Message IPC (lavsim.kernel.ipc; ipc.s). Numbers 11..15 are unused (E_NOSYS).
SYS_PORT_CREATE = 16
SYS_PORT_DESTROY = 17
SYS_SEND = 18
SYS_RECEIVE = 19
SYS_CALL = 20
SYS_REPLY = 21
SYS_REPLY_WAIT = 22
SYS_CALL_HANDOFF = 23
SYS_REPLY_WAIT_HANDOFF = 24
#: L4-style IPC and LRPC-style calls (issue 14, lavsim.kernel.fastipc; l4ipc.s, lrpc.s).
SYS_L4_CALL = 25
SYS_L4_REPLY_WAIT = 26
SYS_L4_RECEIVE_BUFFER = 27
SYS_LRPC_CALL = 28
SYS_LRPC_RETURN = 29
SYSCALL_COUNT = 32
#: The kernel routine of each system call, by number: the one place the order of
#: ``syscall_table`` (data.s) is written (kernel/image.py generates the table from it). The
#: numbers below SYSCALL_COUNT not named here dispatch to ``sys_nosys`` (E_NOSYS).
SYSCALLS: dict[int, str] = {
    SYS_EXIT: "sys_exit", SYS_YIELD: "sys_yield", SYS_THREAD_ID: "sys_thread_id",
    SYS_PROCESS_ID: "sys_process_id", SYS_CONSOLE_WRITE: "sys_console_write",
    SYS_CREATE_THREAD: "sys_create_thread",
    SYS_PORT_CREATE: "sys_port_create", SYS_PORT_DESTROY: "sys_port_destroy",
    SYS_SEND: "sys_send", SYS_RECEIVE: "sys_receive", SYS_CALL: "sys_call",
    SYS_REPLY: "sys_reply", SYS_REPLY_WAIT: "sys_reply_wait",
    SYS_CALL_HANDOFF: "sys_call_handoff", SYS_REPLY_WAIT_HANDOFF: "sys_reply_wait_handoff",
    SYS_L4_CALL: "sys_l4_call", SYS_L4_REPLY_WAIT: "sys_l4_reply_wait",
    SYS_L4_RECEIVE_BUFFER: "sys_l4_receive_buffer", SYS_LRPC_CALL: "sys_lrpc_call",
    SYS_LRPC_RETURN: "sys_lrpc_return",
    SYS_CALL_TIMED: "sys_call_timed", SYS_RECEIVE_TIMED: "sys_receive_timed",
    SYS_REPLY_WAIT_TIMED: "sys_reply_wait_timed", SYS_L4_CALL_TIMED: "sys_l4_call_timed",
    SYS_L4_REPLY_WAIT_TIMED: "sys_l4_reply_wait_timed",
}  # fmt: skip
SYSCALL_NOSYS = "sys_nosys"
#: System-call names by number ("" for an unused number).
SYSCALL_NAMES = tuple(
    SYSCALLS[n].removeprefix("sys_") if n in SYSCALLS else "" for n in range(SYSCALL_COUNT)
)
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


# --- the kernel's dispatch tables (generated into its sources by kernel/image.py) ------------
#: The routine ``trap_entry`` calls for each vector 0..SYSCALL_VECTOR (``vector_table``,
#: data.s); vectors not named here go to ``unexpected_vector``. The system-call vector has its
#: own entry (``syscall_entry``) and its slot is never used.
VECTOR_HANDLERS: dict[int, str] = {
    # lrpc_exception gives a thread inside an LRPC call back to its own process first.
    **{vector: "lrpc_exception" for vector in range(EXCEPTION_VECTORS)},
    TIMER_VECTOR: "timer_handler",
    NIC_VECTOR: "nic_handler",
}
VECTOR_UNEXPECTED = "unexpected_vector"


def _table(entries: dict[int, str], first: int, count: int, default: str | None) -> tuple[str, ...]:
    stray = sorted(n for n in entries if not first <= n < first + count)
    if stray:
        raise ValueError(f"numbers {stray} lie outside {first}..{first + count - 1}")
    if default is None and len(entries) != count:
        raise ValueError(f"every number {first}..{first + count - 1} needs a routine")
    return tuple(entries.get(first + k, default or "") for k in range(count))


def dispatch_tables() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every positional table of the kernel image: label -> (the layout name it is generated
    from, the routine label of each slot in order)."""
    return {
        "vector_table": ("VECTOR_HANDLERS", _table(
            VECTOR_HANDLERS, 0, VECTOR_TABLE_ENTRIES, VECTOR_UNEXPECTED)),
        "syscall_table": ("SYSCALLS", _table(SYSCALLS, 0, SYSCALL_COUNT, SYSCALL_NOSYS)),
        "net_syscall_table": ("NET_SYSCALLS", _table(
            NET_SYSCALLS, NET_SYSCALL_FIRST, NET_SYSCALL_COUNT, None)),
    }  # fmt: skip


dispatch_tables()  # refuse a misnumbered table when the layout is imported
assert SYSCALL_VECTOR not in VECTOR_HANDLERS
assert SYSCALL_COUNT <= NET_SYSCALL_FIRST


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
        **{name: globals()[name] & 0xFFFFFFFF for name in (
            "E_BADPORT", "E_MSGSIZE", "E_EXIST", "E_NOENT", "E_PERM", "E_NOSPC", "E_PROTO",
            "E_TIMEOUT", "E_DEAD")},
        "STATUS_RUNNING": STATUS_RUNNING, "STATUS_DONE": STATUS_DONE,
        "STATUS_PANIC": STATUS_PANIC,
        "LDT_OWNER_LINEAR": LDT_OWNER_LINEAR, "GDT_OWNER_LINEAR": GDT_OWNER_LINEAR,
        "LDT_ENTRIES": LDT_ENTRIES, "LDT_FIRST_SHARED": LDT_FIRST_SHARED,
        "GDT_LDT_FIRST": GDT_LDT_FIRST, "LDT_LINEAR": LDT_LINEAR, "LDT_BYTES": LDT_BYTES,
    }  # fmt: skip
    names.update(net_asm_constants())
    prefixes = ("FR_", "TCB_", "PCB_", "THREAD_", "ADDR_", "IPC_", "PORT_", "MSG_", "NS_",
                "SYS_", "L4_", "LRPC_", "LB_", "TIMED_")
    for name, value in globals().items():
        if name.startswith(prefixes) and isinstance(value, int) and not isinstance(value, bool):
            names[name] = value
    return names


def asm_prelude() -> str:
    """``.equ`` lines defining :func:`asm_constants` for the kernel sources."""
    return "".join(f".equ {name}, {value:#x}\n" for name, value in sorted(asm_constants().items()))
