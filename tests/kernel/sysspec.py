"""Random Lavender systems for the protection properties (issue 7): :class:`SystemSpec`, drawn by
:func:`system_specs` (groups, processes, data and procedure exports and imports, an optional
IPC server, threads running random programs of well-behaved and hostile operations), and the
guest code of those programs (:func:`program_source`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
from hypothesis import strategies as st

from lavsim.kernel import layout as L
from lavsim.kernel.ipc import user_prelude
from lavsim.kernel.sharing import ProcedureExport

PRELUDE = user_prelude()
SERVER_PORT = 5
MSG_OFFSET = 0x100
REPLY_OFFSET = 0x180
L4_TID_OFFSET = 0x30  # the IPC server's L4-style echo thread's id (issue 14)
ADDR_AREA = 0x40  # address structures of imported procedures, 20 bytes each (at most 8)
DATA_SIZES = (512, 4096, 6000)

# --- specifications ------------------------------------------------------------

Op = tuple[Any, ...]


@attrs.frozen
class ProcSpec:
    owner: int  # process index
    body: str  # "sum", "count", "write_caller", "hostile", "spin"
    params: int
    private: int  # private data bytes (0: none)
    importers: tuple[int, ...]
    hostile: tuple[int, int] = (0, 0)  # selector, offset for the "hostile" body


@attrs.frozen
class DataSpec:
    owner: int
    size: int
    offset: int | None  # None: fresh pages
    writable: bool
    importers: tuple[tuple[int, bool], ...]  # (process index, writable)


@attrs.frozen
class PageShareSpec:
    exporter: int
    offset: int
    size: int
    importer: int
    writable: bool


@attrs.frozen
class ProcessSpec:
    group: int | None  # group index, None = resident
    data_size: int
    max_threads: int


@attrs.frozen
class SystemSpec:
    profile: str
    timer_period: int
    groups: int
    processes: tuple[ProcessSpec, ...]
    data: tuple[DataSpec, ...]
    pages: tuple[PageShareSpec, ...]
    procs: tuple[ProcSpec, ...]
    server: int | None  # process index running the IPC server thread
    threads: tuple[tuple[int, tuple[Op, ...]], ...]  # (process index, program)


U32 = st.integers(0, 2**32 - 1)
#: Selectors worth trying: every LDT slot and the interesting GDT ones, any RPL; or anything.
SELECTORS = st.one_of(
    st.builds(lambda i, r: (i << 3) | 4 | r, st.integers(0, 15), st.integers(0, 3)),
    st.builds(
        lambda i, r: (i << 3) | r,
        st.sampled_from(
            [
                0,
                1,
                2,
                3,
                16,
                17,
                18,
                19,
                L.GDT_EXPORT_FIRST,
                L.GDT_EXPORT_FIRST + 1,
                L.GDT_EXPORT_FIRST + 2,
                L.GDT_EXPORT_FIRST + 3,
            ]
        ),
        st.integers(0, 3),
    ),
    st.integers(0, 0xFFFF),
)
OFFSETS = st.one_of(st.integers(0, 0x2000), U32, st.sampled_from([0xFFC, 0xFFF, 0x1000, 0x17FE]))
PRIVILEGED = (
    "hlt",
    "cli",
    "sti",
    "mov cr0, eax",
    "mov cr3, eax",
    "mov eax, cr0",
    "lgdt [0]",
    "lidt [0]",
    "lldt ax",
    "ltr ax",
    "invlpg [0]",
    "in al, dx",
    "out dx, al",
    "push 0x3202\n    popfd\n    in al, dx",  # POPFD cannot raise IOPL at CPL 3
)


#: Timeouts of the timed calls (issue 19): none, shorter than a tick, a few ticks.
TIMEOUTS = st.sampled_from([0, 1, 300, 2_000, 6_000, 20_000])


def hostile_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.tuples(st.just("store_sel"), SELECTORS, OFFSETS, U32),
        st.tuples(st.just("load_sel"), SELECTORS, OFFSETS),
        st.tuples(st.just("rep_stos"), SELECTORS, OFFSETS, st.integers(0, 48)),
        st.tuples(st.just("far"), st.sampled_from(["call", "jmp"]), SELECTORS, OFFSETS),
        st.tuples(st.just("int"), st.integers(0, 255), st.integers(0, 40), U32, U32, U32),
        st.tuples(st.just("priv"), st.sampled_from(PRIVILEGED)),
        st.tuples(st.just("store_own"), OFFSETS, U32),
        # The timed system calls (issue 19) with random arguments and timeout (EBP).
        st.tuples(st.just("int_timed"), st.integers(L.SYS_CALL_TIMED, L.SYS_L4_REPLY_WAIT_TIMED),
                  U32, U32, U32, U32, U32, st.one_of(TIMEOUTS, U32)),
    )


#: Where a well-behaved thread stores into its own data: never over the address structures of
#: its imports (``ADDR_AREA``: a clobbered selector there makes the next ``lav_call`` load it,
#: a #GP the thread earned) nor over the message and reply buffers; the smallest data segment
#: is 512 bytes.
GOOD_STORE_OFFSETS = st.one_of(
    st.integers(0, ADDR_AREA - 4),
    st.integers(ADDR_AREA + 20 * 8, MSG_OFFSET - 4),
    st.integers(REPLY_OFFSET + 64, min(DATA_SIZES) - 4),
)


def good_ops(nprocs: int, server: bool) -> st.SearchStrategy[Op]:
    options: list[st.SearchStrategy[Op]] = [
        st.tuples(st.just("store_own"), GOOD_STORE_OFFSETS, U32),
        st.tuples(st.just("spin"), st.integers(1, 300)),
        st.tuples(st.just("yield")),
        st.tuples(st.just("receive_timed"), TIMEOUTS),
    ]
    if nprocs:
        options.append(
            st.tuples(
                st.just("lav_call"),
                st.integers(0, nprocs - 1),
                st.lists(U32, min_size=4, max_size=4).map(tuple),
            )
        )
        options.append(
            st.tuples(
                st.just("lav_call"),
                st.integers(0, nprocs - 1),
                st.lists(U32, min_size=4, max_size=4).map(tuple),
            )
        )
        options.append(st.tuples(st.just("gate"), st.integers(0, nprocs - 1), U32))
    if server:
        options.append(st.tuples(st.just("ipc_call"), st.integers(0, 100)))
        options.append(st.tuples(st.just("ipc_call"), st.integers(0, 100)))
        options.append(st.tuples(st.just("l4_call"), st.integers(0, 100)))
        options.append(st.tuples(st.just("ipc_call_timed"), st.integers(0, 100), TIMEOUTS))
        options.append(st.tuples(st.just("l4_call_timed"), st.integers(0, 100), TIMEOUTS))
    return st.one_of(*options)


@st.composite
def system_specs(draw: st.DrawFn, hostile: bool = True) -> SystemSpec:
    groups = draw(st.integers(1, 2))
    nproc = draw(st.integers(2, 4))
    processes = []
    for k in range(nproc):
        group = None if k == 0 and draw(st.booleans()) else draw(st.integers(0, groups - 1))
        processes.append(
            ProcessSpec(group, draw(st.sampled_from(DATA_SIZES)), draw(st.integers(2, 3)))
        )
    members = {g: [k for k, p in enumerate(processes) if p.group == g] for g in range(groups)}
    group_procs = [k for k, p in enumerate(processes) if p.group is not None]

    procs = []
    for _ in range(draw(st.integers(0, 4))):
        owner = draw(st.integers(0, nproc - 1))
        group = processes[owner].group
        importers = (
            tuple(k for k in members[group] if k != owner and draw(st.booleans()))
            if group is not None
            else ()
        )
        body = draw(st.sampled_from(["sum", "count", "write_caller", "hostile", "spin"]))
        private = draw(st.sampled_from([0, 16, 100])) if body != "count" else 16
        procs.append(
            ProcSpec(
                owner,
                body,
                draw(st.integers(0, 3)),
                private,
                importers,
                (draw(SELECTORS), draw(OFFSETS)),
            )
        )

    data = []
    for _ in range(draw(st.integers(0, 3))):
        owner = draw(st.integers(0, nproc - 1))
        size = draw(st.integers(1, 300))
        fresh = draw(st.booleans())
        offset = None if fresh else draw(st.integers(0, processes[owner].data_size - size))
        writable = draw(st.booleans())
        group = processes[owner].group
        candidates = members[group] if group is not None else group_procs
        importers = tuple(
            (k, writable and draw(st.booleans()))
            for k in candidates
            if k != owner and draw(st.booleans())
        )
        data.append(DataSpec(owner, size, offset, writable, importers))

    pages = []
    for _ in range(draw(st.integers(0, 2))):
        exporter = draw(st.integers(0, nproc - 1))
        importer = draw(st.integers(0, nproc - 1))
        if exporter == importer:
            continue
        size = draw(st.integers(1, 200))
        offset = draw(st.integers(0, processes[exporter].data_size - size))
        pages.append(PageShareSpec(exporter, offset, size, importer, draw(st.booleans())))

    server = draw(st.one_of(st.none(), st.integers(0, nproc - 1)))
    threads = []
    for k in range(nproc):
        for _ in range(draw(st.integers(0 if k != nproc - 1 else 1, 2))):
            ops_strategy = good_ops(_callable_count(procs, processes, k), server is not None)
            if hostile:
                ops_strategy = st.one_of(ops_strategy, hostile_ops())
            threads.append((k, tuple(draw(st.lists(ops_strategy, min_size=2, max_size=14)))))
    return SystemSpec(
        profile=draw(st.sampled_from(["i486", "pentium"])),
        timer_period=draw(st.sampled_from([700, 1500, 4000])),
        groups=groups, processes=tuple(processes), data=tuple(data), pages=tuple(pages),
        procs=tuple(procs), server=server, threads=tuple(threads),
    )  # fmt: skip


def _callable(
    procs: Iterable[ProcSpec], processes: tuple[ProcessSpec, ...] | list[ProcessSpec], k: int
) -> list[int]:
    """Indices of the procedures process ``k`` can call: resident ones, its own group's that it
    imported (or exported)."""
    out = []
    for index, proc in enumerate(procs):
        if processes[proc.owner].group is None:
            if processes[k].group is not None or proc.owner == k:
                out.append(index)
        elif proc.owner == k or k in proc.importers:
            out.append(index)
    return out


def _callable_count(procs: list[ProcSpec], processes: list[ProcessSpec], k: int) -> int:
    return len(_callable(procs, processes, k))


# --- guest code ------------------------------------------------------------

PROC_BODIES = {
    "sum": """
entry:
    xor eax, eax
    mov ecx, PROC_ARG_BYTES
sum_next:
    test ecx, ecx
    jz sum_done
    add eax, dword ptr [esp+4+ecx]
    sub ecx, 4
    jmp sum_next
sum_done:
    retf PROC_ARG_BYTES
""",
    "count": """
entry:
    push ds
    mov ax, PROC_DATA_SEL
    mov ds, ax
    inc dword ptr [0]
    mov eax, dword ptr [0]
    pop ds
    retf PROC_ARG_BYTES
""",
    "write_caller": """
entry:
    mov dword ptr [0x20], 0x5A5A5A5A
    mov eax, 7
    retf PROC_ARG_BYTES
""",
    "hostile": """
entry:
    push es
    mov ax, HOSTILE_SEL
    mov es, ax
    mov dword ptr es:[HOSTILE_OFF], 0xDEADBEEF
    pop es
    retf PROC_ARG_BYTES
""",
    "spin": """
entry:
    mov ecx, 400
spin_loop:
    loop spin_loop
    retf PROC_ARG_BYTES
""",
}

SERVER_LOOP = f"""
server_main:
    mov eax, SYS_RECEIVE
    mov ebx, {SERVER_PORT}
    mov ecx, 0x200
    mov edx, 64
    xor esi, esi
    int 0x30
server_next:
    test eax, eax
    js server_out
    mov edx, eax
    cmp edx, 64
    jbe server_len_ok
    mov edx, 64
server_len_ok:
    mov eax, SYS_REPLY_WAIT
    mov ecx, 0x200
    mov esi, {SERVER_PORT}
    mov edi, 64
    int 0x30
    jmp server_next
server_out:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


#: The IPC server's second thread: an L4-style echo server (issue 14), its receive buffer at
#: 0x240 (64 bytes); it replies with the long part it received.
L4_SERVER_LOOP = """
l4_server_main:
    mov eax, SYS_L4_RECEIVE_BUFFER
    mov ecx, 0x240
    mov edx, 64
    int 0x30
l4_server_idle:
    xor ebx, ebx
    xor edx, edx
l4_server_next:
    mov eax, SYS_L4_REPLY_WAIT
    mov ecx, 0x240
    int 0x30
    test eax, eax
    js l4_server_idle
    mov edx, eax
    jmp l4_server_next
"""


def _op_source(op: Op, k: int, uid: int, calls: list[ProcedureExport]) -> str:
    kind = op[0]
    if kind == "store_own":
        return f"    mov dword ptr [{op[1]:#x}], {op[2]:#x}\n"
    if kind == "store_sel":
        return (
            f"    mov ax, {op[1]:#x}\n    mov es, ax\n"
            f"    mov dword ptr es:[{op[2]:#x}], {op[3]:#x}\n"
        )
    if kind == "load_sel":
        return f"    mov ax, {op[1]:#x}\n    mov fs, ax\n    mov eax, dword ptr fs:[{op[2]:#x}]\n"
    if kind == "rep_stos":
        return (
            f"    mov ax, {op[1]:#x}\n    mov es, ax\n    mov edi, {op[2]:#x}\n"
            f"    mov ecx, {op[3]}\n    mov eax, 0xC3C3C3C3\n    cld\n    rep stosd\n"
        )
    if kind == "far":
        opcode = 0x9A if op[1] == "call" else 0xEA
        return f"    .byte {opcode:#x}\n    .long {op[3]:#x}\n    .word {op[2]:#x}\n"
    if kind == "int":
        return (
            f"    mov eax, {op[2]}\n    mov ebx, {op[3]:#x}\n    mov ecx, {op[4]:#x}\n"
            f"    mov edx, {op[5]:#x}\n    int {op[1]:#x}\n"
        )
    if kind == "priv":
        return f"    {op[1]}\n"
    if kind == "spin":
        return f"    mov ecx, {op[1]}\nspin_{uid}:\n    loop spin_{uid}\n"
    if kind == "yield":
        return "    mov eax, SYS_YIELD\n    int 0x30\n"
    if kind == "ipc_call":
        return (
            f"    mov eax, SYS_CALL\n    mov ebx, {SERVER_PORT}\n    mov ecx, {MSG_OFFSET}\n"
            f"    mov edx, {op[1]}\n    mov esi, {REPLY_OFFSET}\n    mov edi, 64\n"
            "    int 0x30\n"
        )
    if kind == "l4_call":
        return (
            f"    mov eax, SYS_L4_RECEIVE_BUFFER\n    mov ecx, {REPLY_OFFSET}\n    mov edx, 64\n"
            f"    int 0x30\n    mov eax, SYS_L4_CALL\n    mov ebx, dword ptr [{L4_TID_OFFSET}]\n"
            f"    mov ecx, {MSG_OFFSET}\n    mov edx, {op[1]}\n    mov esi, 1\n    mov edi, 2\n"
            "    int 0x30\n"
        )
    if kind == "int_timed":
        regs = zip(("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp"), op[1:], strict=True)
        moves = "".join(f"    mov {reg}, {value:#x}\n" for reg, value in regs)
        return f"    push ebp\n{moves}    int 0x30\n    pop ebp\n"
    if kind == "receive_timed":
        # A port of its own that nobody sends to: the receive times out (or, with timeout 0,
        # would wait for ever: then it is not made).
        if not op[1]:
            return ""
        return (
            "    mov eax, SYS_PORT_CREATE\n    xor ebx, ebx\n    xor ecx, ecx\n"
            "    xor edx, edx\n    int 0x30\n    push eax\n    push ebp\n"
            f"    mov ebx, eax\n    mov eax, SYS_RECEIVE_TIMED\n    mov ecx, {MSG_OFFSET}\n"
            f"    mov edx, 64\n    xor esi, esi\n    mov ebp, {op[1]}\n    int 0x30\n"
            "    pop ebp\n    pop ebx\n    mov eax, SYS_PORT_DESTROY\n    int 0x30\n"
        )
    if kind in ("ipc_call_timed", "l4_call_timed"):
        untimed = _op_source((kind.removesuffix("_timed"), op[1]), k, uid, calls)
        number = "SYS_CALL" if kind == "ipc_call_timed" else "SYS_L4_CALL"
        timed = untimed.replace(f"mov eax, {number}\n", f"mov eax, {number}_TIMED\n")
        return f"    push ebp\n    mov ebp, {op[2]}\n{timed}    pop ebp\n"
    if kind == "lav_call":
        export = calls[op[1] % len(calls)]
        pushes = "".join(f"    push {v:#x}\n" for v in reversed(op[2][: export.params]))
        index = op[1] % len(calls)
        return (
            pushes + f"    push {export.params}\n    push {ADDR_AREA + 20 * index}\n"
            f"    call lav_call\n    add esp, {4 * (export.params + 2)}\n"
        )
    if kind == "gate":
        export = calls[op[1] % len(calls)]
        pushes = "".join(f"    push {k + 1}\n" for k in range(export.params))
        return (
            pushes + f"    .byte 0x9a\n    .long {op[2]:#x}\n    .word {export.gate_selector:#x}\n"
        )
    raise AssertionError(op)


def program_source(ops: Iterable[Op], k: int, first_uid: int, calls: list[ProcedureExport]) -> str:
    body = "".join(_op_source(op, k, first_uid + n, calls) for n, op in enumerate(ops))
    return body + "    mov eax, SYS_EXIT\n    mov ebx, 0\n    int 0x30\n"


