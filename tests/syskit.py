"""Random Lavender systems and host-side protection checkers (issue 7, system properties).

- :class:`SystemSpec` (drawn by :func:`system_specs`): groups, processes, data exports and
  imports (segment and page sharing), procedure exports and imports (in-group and resident), an
  optional IPC server, and threads running random programs (:func:`program_ops`): well-behaved
  calls through ``lav_call``, message calls, and hostile operations (loads, stores and REP STOSD
  through random selectors and offsets, far calls and jumps to random selectors and offsets,
  INT n with random vectors and registers, privileged instructions, IOPL games).
- :func:`build` boots it and records, *from the configuration*, what every process is granted:
  the physical bytes it may write at CPL 3, what a procedure may write at CPL 2, the procedure
  entry points and the IDT's handlers. Nothing of this is read from the descriptor tables under
  test.
- :class:`WriteWatcher` sees every write to physical memory during a run as a tracer of the MMU
  (``MMU.add_tracer``: the MMU turns its host fast path off while a tracer is attached, so no
  write is missed) and attributes it to the CPL at the time of the write, the access's ``user``
  flag (explicit CPL 3 access or implicit supervisor access by the processor) and the running
  thread's home process; the processor's A/D and descriptor access-byte updates are known by
  their access kind.
- :class:`TransferChecker` is a step observer (``Machine.add_observer``): CS changes at CPL > 0
  must be gate entries at a registered entry point or far returns to the matching call site;
  CPL decreases must be far calls through a registered gate, or IDT deliveries landing on a
  handler the boot loader installed; a thread at CPL > 0 runs with its own process's LDT.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import attrs
from hypothesis import strategies as st

from lavsim.cpu.state import CS, ESP, SS
from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel import layout as L
from lavsim.kernel.invariants import check_kernel_consistency, settle
from lavsim.kernel.ipc import open_port_for, user_prelude
from lavsim.kernel.sharing import ProcedureExport, lav_call_source
from lavsim.kernel.system import RunOutcome
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import Access

PRELUDE = user_prelude()
SERVER_PORT = 5
MSG_OFFSET = 0x100
REPLY_OFFSET = 0x180
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


def hostile_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.tuples(st.just("store_sel"), SELECTORS, OFFSETS, U32),
        st.tuples(st.just("load_sel"), SELECTORS, OFFSETS),
        st.tuples(st.just("rep_stos"), SELECTORS, OFFSETS, st.integers(0, 48)),
        st.tuples(st.just("far"), st.sampled_from(["call", "jmp"]), SELECTORS, OFFSETS),
        st.tuples(st.just("int"), st.integers(0, 255), st.integers(0, 40), U32, U32, U32),
        st.tuples(st.just("priv"), st.sampled_from(PRIVILEGED)),
        st.tuples(st.just("store_own"), OFFSETS, U32),
    )


def good_ops(nprocs: int, server: bool) -> st.SearchStrategy[Op]:
    options: list[st.SearchStrategy[Op]] = [
        st.tuples(st.just("store_own"), st.integers(0, 500), U32),
        st.tuples(st.just("spin"), st.integers(1, 300)),
        st.tuples(st.just("yield")),
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


# --- grants ------------------------------------------------------------

Ranges = dict[int, list[tuple[int, int]]]  # pfn -> [lo, hi) offsets in the frame


def _add(ranges: Ranges, phys: int, n: int) -> None:
    while n > 0:
        pfn, off = phys >> 12, phys & 0xFFF
        chunk = min(n, 0x1000 - off)
        ranges.setdefault(pfn, []).append((off, off + chunk))
        phys += chunk
        n -= chunk


def covered(ranges: Ranges, phys: int, n: int) -> bool:
    """Every byte of ``phys .. phys+n-1`` lies in one of ``ranges``."""
    while n > 0:
        pfn, off = phys >> 12, phys & 0xFFF
        chunk = min(n, 0x1000 - off)
        pos = off
        spans = ranges.get(pfn, ())
        while pos < off + chunk:
            for lo, hi in spans:
                if lo <= pos < hi:
                    pos = hi
                    break
            else:
                return False
        phys += chunk
        n -= chunk
    return True


@attrs.define
class Grants:
    """What the configuration lets each process write (physical bytes)."""

    #: pid -> bytes its CPL 3 code may write (own data and stack, exports, writable imports).
    user: dict[int, Ranges] = attrs.field(factory=dict)
    #: pid -> bytes the processor writes on behalf of its threads (ring-2 stack).
    ring2: dict[int, Ranges] = attrs.field(factory=dict)
    #: pid -> private data of the procedures whose DPL 2 segments its LDT (or the GDT) holds.
    procedure_data: dict[int, Ranges] = attrs.field(factory=dict)
    #: pid -> process name, and physical frame -> pid owning it (for messages).
    owners: dict[int, int] = attrs.field(factory=dict)


@attrs.define
class Built:
    system: LavenderSystem
    spec: SystemSpec
    processes: list[Process]
    procedures: list[ProcedureExport]
    grants: Grants
    #: (pid, code selector without RPL) -> the procedure whose code it is, for each process.
    entries: dict[tuple[int, int], ProcedureExport]
    #: gate selector without RPL, per pid -> the procedure.
    gates: dict[tuple[int, int], ProcedureExport]
    idt_targets: frozenset[int]
    table_frames: frozenset[int]


def _phys_of(system: LavenderSystem, process: Process, linear: int) -> int:
    directory = process.group.directory if process.group is not None else system.boot_directory
    phys = system.page_tables.translate(directory, linear, user=False, write=False)
    assert phys is not None, (process.name, hex(linear))
    return phys


def _grant(ranges: Ranges, system: LavenderSystem, process: Process, base: int, n: int) -> None:
    for k in range(0, n):
        linear = base + k
        if k == 0 or linear & 0xFFF == 0:
            phys = _phys_of(system, process, linear)
            chunk = min(n - k, 0x1000 - (linear & 0xFFF))
            _add(ranges, phys, chunk)


def build(spec: SystemSpec, memory_size: int = 8 << 20) -> Built:
    system = LavenderSystem(
        profile=spec.profile,
        memory_size=memory_size,
        timer_period=spec.timer_period,
        observe=False,
    )
    groups = [system.create_group(f"g{g}") for g in range(spec.groups)]
    sharing = system.sharing
    # Processes are created in index order; each one's programs may call the procedures
    # exported by processes created before it (resident ones, and its own group's that it
    # imports); a process's procedures are exported right after it is created.
    processes: list[Process] = []
    order = list(range(len(spec.processes)))
    created: dict[int, Process] = {}
    exports: dict[int, ProcedureExport] = {}

    def group_of(k: int) -> Any:
        g = spec.processes[k].group
        return None if g is None else groups[g]

    def export_for(owner_k: int) -> None:
        for index, proc in enumerate(spec.procs):
            if proc.owner != owner_k:
                continue
            source = PROC_BODIES[proc.body]
            if proc.body == "hostile":
                source = (
                    f".equ HOSTILE_SEL, {proc.hostile[0]:#x}\n"
                    f".equ HOSTILE_OFF, {proc.hostile[1]:#x}\n" + source
                )
            exports[index] = sharing.export_procedure(
                created[owner_k], source, entry="entry", params=proc.params,
                private_data_size=proc.private, name=f"proc{index}",
            )  # fmt: skip

    uid = 0
    thread_labels: dict[int, list[str]] = {}
    calls_of: dict[int, list[ProcedureExport]] = {}
    for k in order:
        spec_p = spec.processes[k]
        group = group_of(k)
        # Procedures this process may call: those already exported (owners created before).
        callable_idx = [i for i in _callable(spec.procs, list(spec.processes), k) if i in exports]
        calls = [exports[i] for i in callable_idx]
        calls_of[k] = calls
        source = PRELUDE + "main_stub:\n    mov eax, SYS_EXIT\n    xor ebx, ebx\n    int 0x30\n"
        labels = []
        for n, (owner, ops) in enumerate(spec.threads):
            if owner != k:
                continue
            usable = [op for op in ops if op[0] not in ("lav_call", "gate") or calls]
            if spec.server is None:
                usable = [op for op in usable if op[0] != "ipc_call"]
            label = f"thread_{n}"
            source += f"{label}:\n" + program_source(usable, k, uid, calls)
            uid += len(ops)
            labels.append(label)
        thread_labels[k] = labels
        source += SERVER_LOOP + lav_call_source(group)
        if group is not None:
            process = system.create_process(
                group,
                source,
                data_size=spec_p.data_size,
                max_threads=spec_p.max_threads + 1,
                name=f"p{k}",
            )
        else:
            process = system.create_resident_process(
                source, data_size=spec_p.data_size, max_threads=spec_p.max_threads + 1, name=f"p{k}"
            )
        created[k] = process
        processes.append(process)
        export_for(k)
    # Imports of procedures (in-group) and address structures of every callable procedure.
    for index, proc in enumerate(spec.procs):
        for k in proc.importers:
            if spec.processes[k].group == spec.processes[proc.owner].group:
                sharing.import_procedure(created[k], exports[index])
    for k, calls in calls_of.items():
        for n, export in enumerate(calls[:8]):
            sharing.write_address(created[k], ADDR_AREA + 20 * n, export.address())
    # Data exports and imports; page shares.
    grants = Grants()
    for process in created.values():
        grants.user[process.pid] = {}
        grants.ring2[process.pid] = {}
        grants.procedure_data[process.pid] = {}
        user = grants.user[process.pid]
        _grant(user, system, process, process.data_base, process.data_size)
        _grant(user, system, process, process.stack_base, process.stack_size * process.max_threads)
        _grant(
            grants.ring2[process.pid],
            system,
            process,
            process.ring2_base,
            process.ring2_stack_size * process.max_threads,
        )
        for base, size in (
            (process.code_base, process.code_size),
            (process.data_base, process.data_size),
            (process.stack_base, process.stack_size * process.max_threads),
            (process.ring2_base, process.ring2_stack_size * process.max_threads),
        ):
            for page in range(base & ~0xFFF, base + size, 0x1000):
                grants.owners[_phys_of(system, process, page) >> 12] = process.pid
    for ds in spec.data:
        owner = created[ds.owner]
        try:
            export = sharing.export_data(owner, ds.size, offset=ds.offset, writable=ds.writable)
        except Exception as error:
            if type(error).__name__ != "ConfigError":
                raise
            continue
        if ds.writable:
            _grant(grants.user[owner.pid], system, owner, export.base, export.size)
        for page in range(export.base & ~0xFFF, export.base + export.size, 0x1000):
            grants.owners.setdefault(_phys_of(system, owner, page) >> 12, owner.pid)
        for k, writable in ds.importers:
            importer = created[k]
            try:
                sharing.import_data(importer, export, writable=writable)
            except Exception as error:
                if type(error).__name__ != "ConfigError":
                    raise
                continue
            if writable:
                _grant(grants.user[importer.pid], system, owner, export.base, export.size)
    for ps in spec.pages:
        exporter, importer = created[ps.exporter], created[ps.importer]
        try:
            share = sharing.share_pages(
                exporter, ps.offset, ps.size, importer, writable=ps.writable
            )
        except Exception as error:
            if type(error).__name__ != "ConfigError":
                raise
            continue
        if ps.writable:
            _grant(grants.user[importer.pid], system, importer, share.base, share.size)
    # Procedures: private data grants at CPL 2, entries and gates per process that holds them.
    entries: dict[tuple[int, int], ProcedureExport] = {}
    gates: dict[tuple[int, int], ProcedureExport] = {}
    for index, export in exports.items():
        proc = spec.procs[index]
        owner = export.owner
        if export.resident:
            holders = list(created.values())
        else:
            holders = [owner] + [
                created[k]
                for k in proc.importers
                if spec.processes[k].group == spec.processes[proc.owner].group
            ]
        for holder in holders:
            entries[(holder.pid, export.code_selector & ~3)] = export
            gates[(holder.pid, export.gate_selector & ~3)] = export
            if export.data_base is not None:
                _grant(
                    grants.procedure_data[holder.pid],
                    system,
                    owner,
                    export.data_base,
                    export.data_size,
                )
        for page in range(export.code_base & ~0xFFF, export.code_base + export.code_size, 0x1000):
            grants.owners[_phys_of(system, owner, page) >> 12] = owner.pid
        if export.data_base is not None:
            for page in range(
                export.data_base & ~0xFFF, export.data_base + export.data_size, 0x1000
            ):
                grants.owners[_phys_of(system, owner, page) >> 12] = owner.pid
    # The IPC server and the threads.
    if spec.server is not None:
        server = created[spec.server]
        open_port_for(system.memory, SERVER_PORT, server.pid)
        system.create_thread(server, "server_main")
    for k, labels in thread_labels.items():
        for label in labels:
            system.create_thread(created[k], label)
    idt = set()
    for vector in range(L.IDT_ENTRIES):
        raw = system.memory.read(L.IDT_PHYS + 8 * vector, 8)
        low, high = struct.unpack("<II", raw)
        if high & 0x8000:
            idt.add((low & 0xFFFF) | (high & 0xFFFF0000))
    return Built(
        system,
        spec,
        processes,
        list(exports.values()),
        grants,
        entries,
        gates,
        frozenset(idt),
        frozenset(system.page_tables.table_frames()),
    )


# --- watching writes ------------------------------------------------------------


@attrs.frozen
class Violation:
    what: str
    cpl: int
    pid: int | None
    cs: int
    eip: int
    phys: int
    size: int

    def __str__(self) -> str:
        return (
            f"{self.what}: CPL {self.cpl} in process {self.pid} at {self.cs:#06x}:"
            f"{self.eip:#010x} wrote {self.size} bytes at physical {self.phys:#x}"
        )


class WriteWatcher:
    """Checks every physical write made while :attr:`active` against :class:`Grants`.

    Writes at CPL 0 are the kernel's (trusted). At CPL 1..3:

    - a processor update of Accessed/Dirty bits in a page-table frame, or of the Accessed bit
      of a GDT/LDT descriptor, is allowed (it changes only those bits);
    - an explicit CPL 3 write (the MMU's ``user`` flag, or a bulk string write at CPL 3) must
      fall in the process's own writable segments, its exports and its writable imports;
    - an implicit write while at CPL 3 (the processor pushing a gate or interrupt frame) may
      also go to the running thread's ring-0 stack page and its process's ring-2 stack;
    - a CPL 2 (procedure) write may go where the calling thread's CPL 3 code may, to the
      process's ring-2 stack, to the running thread's ring-0 stack page (the processor's
      interrupt frames), and to the private data of procedures whose DPL 2 segments the
      process's LDT or the GDT holds (the documented weakness: one ring for all imported
      procedures).
    """

    def __init__(self, built: Built) -> None:
        self.built = built
        self.system = built.system
        self.cpu = built.system.machine.cpu
        self.mmu = built.system.machine.mmu
        self.active = False
        self.writes_checked = 0
        self.violations: list[Violation] = []
        self._k_current = built.system.image.symbol("k_current") - L.KERNEL_BASE
        self._gdt = (L.GDT_PHYS, L.GDT_PHYS + 8 * L.GDT_ENTRIES)
        self._ldt = (L.LDT_PHYS, L.LDT_PHYS + L.MAX_PROCESSES * L.LDT_BYTES)

    def start(self) -> None:
        """Attach to the MMU as a tracer (the fast path is off while attached) and check."""
        self.mmu.add_tracer(self)
        self.active = True

    def stop(self) -> None:
        self.active = False
        self.mmu.remove_tracer(self)

    def current(self, memory: PhysicalMemory) -> tuple[int | None, int | None]:
        """(thread id, home pid) of the running thread, from k_current."""
        tcb = memory.read32(self._k_current)
        tid = (tcb - L.TCB_LINEAR) // L.TCB_SIZE
        if not 0 < tid < L.MAX_THREADS:
            return None, None
        pcb = memory.read32(tcb - L.KERNEL_BASE + L.TCB_PROCESS)
        return tid, (pcb - L.PCB_LINEAR) // L.PCB_SIZE

    def _hardware_bits(self, kind: Access, addr: int, n: int) -> bool:
        """Whether the write is the processor's own update of A/D bits in a page-table frame
        or of a descriptor's access byte in the GDT or an LDT."""
        if kind is Access.AD_WRITE:
            return all(((addr + k) >> 12) in self.built.table_frames for k in range(n))
        if kind is Access.LOCKED_WRITE:
            return all(
                self._gdt[0] <= addr + k < self._gdt[1] or self._ldt[0] <= addr + k < self._ldt[1]
                for k in range(n)
            )
        return False

    def on_access(self, kind: Access, addr: int, n: int, user: bool) -> None:
        """The MMU's tracer callback: check each write made at CPL 1..3."""
        if not self.active or not kind.is_write or not n:
            return
        cpl = self.cpu.cpl
        if cpl == 0:
            return
        self.writes_checked += 1
        if self._hardware_bits(kind, addr, n):
            return
        memory = self.system.memory
        tid, pid = self.current(memory)
        grants = self.built.grants
        allowed = pid is not None and covered(grants.user.get(pid, {}), addr, n)
        if not allowed and pid is not None and (cpl < 3 or not user):
            extra: Ranges = {}
            for source in (
                grants.ring2.get(pid, {}),
                grants.procedure_data.get(pid, {}) if cpl < 3 else {},
            ):
                for pfn, spans in source.items():
                    extra.setdefault(pfn, []).extend(spans)
            if tid is not None:
                _add(extra, L.TCB_PHYS + tid * L.TCB_SIZE, L.TCB_SIZE)
            for pfn, spans in grants.user.get(pid, {}).items():
                extra.setdefault(pfn, []).extend(spans)
            allowed = covered(extra, addr, n)
        if not allowed:
            owner = grants.owners.get(addr >> 12)
            if addr < L.FRAMES_PHYS or (addr >> 12) in self.built.table_frames:
                what = "kernel memory"
            elif owner is not None and owner != pid:
                what = f"memory of process {owner} not shared with it"
            else:
                what = "memory not granted to it"
            cs = self.cpu.seg[CS]
            self.violations.append(Violation(what, cpl, pid, cs.selector, self.cpu.eip, addr, n))


# --- watching control transfers ------------------------------------------------------------

_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0xF0, 0xF2, 0xF3})


class TransferChecker:
    """A step observer checking entries, returns and privilege changes (see the module
    docstring). ``gate_entries`` and ``returns`` count what it saw."""

    def __init__(self, built: Built, watcher: WriteWatcher) -> None:
        self.built = built
        self.system = built.system
        self.cpu = built.system.machine.cpu
        self.watcher = watcher
        self.calls: dict[int, list[tuple[int, int]]] = {}
        self.violations: list[str] = []
        self.gate_entries = 0
        self.returns = 0
        self.idt_entries = 0

    def _bytes(self, pid: int, linear: int, n: int) -> bytes:
        system = self.system
        process = system.processes[pid]
        directory = process.group.directory if process.group is not None else system.boot_directory
        out = bytearray()
        for k in range(n):
            phys = system.page_tables.translate(
                directory, (linear + k) & 0xFFFFFFFF, user=False, write=False
            )
            if phys is None:
                break
            out.append(PhysicalMemory.read8(system.memory, phys))
        return bytes(out)

    def _is_far_call(self, pid: int, pc: int) -> bool:
        code = self._bytes(pid, pc, 15)
        k = 0
        while k < len(code) and code[k] in _PREFIXES:
            k += 1
        if k >= len(code):
            return False
        if code[k] == 0x9A:
            return True
        return code[k] == 0xFF and k + 1 < len(code) and (code[k + 1] >> 3) & 7 == 3

    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, before: int, after: int
    ) -> None:
        cpu = self.cpu
        new_cpl = cpu.cpl
        new_cs = cpu.seg[CS].selector
        if kind == "idle" or (new_cpl == cpl and new_cs == cs):
            return
        tid, pid = self.watcher.current(self.system.memory)
        where = f"{cs:#06x}:{eip:#x} (CPL {cpl}) -> {new_cs:#06x}:{cpu.eip:#x} (CPL {new_cpl})"
        if new_cpl > 0 and pid is not None and cpu.ldtr.selector & ~3 != L.ldt_selector(pid):
            self.violations.append(
                f"thread {tid} of process {pid} runs with LDT {cpu.ldtr.selector:#x}: {where}"
            )
        if new_cpl == 0 and cpl > 0:
            # Into the kernel: only through the IDT, onto a handler the boot loader installed.
            self.idt_entries += 1
            if new_cs & ~3 != L.KERNEL_CS or cpu.eip not in self.built.idt_targets:
                self.violations.append(f"CPL 0 entered outside the IDT's handlers: {where}")
            return
        if cpl == 0 or pid is None or tid is None:
            return  # the kernel's own transfers (IRET to a thread, switches) are trusted
        export = self.built.entries.get((pid, new_cs & ~3))
        if export is not None and (
            new_cpl < cpl
            or (kind == "instruction" and new_cpl == cpl and self._is_far_call(pid, pc))
        ):
            # A gate entry (3 -> 2, or a nested 2 -> 2 call).
            self.gate_entries += 1
            if kind != "instruction" or not self._is_far_call(pid, pc):
                self.violations.append(f"CPL lowered without a far call through a gate: {where}")
            if cpu.eip != export.entry:
                self.violations.append(
                    f"{export.name} entered at {cpu.eip:#x}, not at its entry "
                    f"{export.entry:#x}: {where}"
                )
            ss = cpu.seg[SS]
            raw = self._bytes(pid, ss.base + cpu.regs[ESP], 8)
            if len(raw) == 8:
                ret_eip, ret_cs = struct.unpack("<II", raw)
                self.calls.setdefault(tid, []).append((ret_cs & 0xFFFF, ret_eip))
            return
        if new_cpl < cpl:
            self.violations.append(
                f"CPL lowered to {new_cpl} not through a registered gate: {where}"
            )
            return
        stack = self.calls.get(tid)
        if stack and stack[-1] == (new_cs, cpu.eip):
            stack.pop()
            self.returns += 1
            return
        self.violations.append(
            f"code segment changed to {new_cs:#06x} at {cpu.eip:#x} neither "
            f"through a registered gate nor back to a call site: {where}"
        )


# --- running ------------------------------------------------------------


@attrs.define
class Checked:
    outcome: RunOutcome
    writes: list[Violation]
    transfers: list[str]
    kernel: list[str]
    writes_checked: int
    gate_entries: int
    returns: int
    idt_entries: int
    instructions: int


def run_checked(built: Built, max_cycles: int, watcher: WriteWatcher | None = None) -> Checked:
    """Run with the write watcher and the transfer checker, settle, and check the kernel."""
    system = built.system
    watcher = watcher or WriteWatcher(built)
    checker = TransferChecker(built, watcher)
    system.machine.add_observer(checker)
    watcher.start()
    try:
        outcome = system.run(max_cycles=max_cycles)
        settled = settle(system)
    finally:
        watcher.stop()
        system.machine.remove_observer(checker)
    kernel = check_kernel_consistency(system) if settled else ["did not settle"]
    return Checked(
        outcome,
        watcher.violations,
        checker.violations,
        kernel,
        watcher.writes_checked,
        checker.gate_entries,
        checker.returns,
        checker.idt_entries,
        system.machine.cpu.instructions,
    )
