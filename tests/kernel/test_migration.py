"""Exported procedures entered by thread migration: gates, the call library, protection, fault
and cycle attribution (issue 5, lavsim.kernel.sharing, calllib.s, migrate.s)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.cpu.asm import assemble
from lavsim.errors import ConfigError
from lavsim.faults import DE, GP
from lavsim.kernel import LavenderSystem, Process, ProcessGroup
from lavsim.kernel import layout as L
from lavsim.kernel.observer import ROW_FAR_RETURN, ROW_GATE_CALL
from lavsim.kernel.sharing import AddressStructure, ProcedureExport, lav_call_source
from lavsim.kernel.tables import read_descriptor
from lavsim.mmu import descriptors as d

#: Server procedure: f(a, b, c) = (a * 3 + b) ^ c in EAX, a - c in EDX; counts its calls in its
#: private data segment (restoring the caller's DS before RETF).
PROC = """
f:
    mov eax, dword ptr [esp+8]
    imul eax, eax, 3
    add eax, dword ptr [esp+12]
    xor eax, dword ptr [esp+16]
    mov edx, dword ptr [esp+8]
    sub edx, dword ptr [esp+16]
    push ds
    push ecx
    mov cx, PROC_DATA_SEL
    mov ds, cx
    inc dword ptr [0]
    pop ecx
    pop ds
    retf PROC_ARG_BYTES
other:
    mov eax, 0xBAD
    retf PROC_ARG_BYTES
"""


def expected(a: int, b: int, c: int) -> tuple[int, int]:
    return ((a * 3 + b) ^ c) & 0xFFFFFFFF, (a - c) & 0xFFFFFFFF


#: A thread that does nothing (a process needs code).
IDLE = """
main:
    mov eax, 0
    mov ebx, 0
    int 0x30
"""

#: Client: data 0..19 = address structure, 20.. = arguments a, b, c; calls lav_call COUNT
#: times, stores EAX, EDX, ECX at 32, 36, 40 and the process_id seen at 44, then exits.
CLIENT = """
main:
    mov esi, COUNT
again:
    push dword ptr [28]
    push dword ptr [24]
    push dword ptr [20]
    push 3
    push 0
    call lav_call
    add esp, 20
    dec esi
    jnz again
    mov dword ptr [32], eax
    mov dword ptr [36], edx
    mov dword ptr [40], ecx
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def client_source(group: ProcessGroup | None, count: int = 1) -> str:
    return f".equ COUNT, {count}\n" + CLIENT + lav_call_source(group)


def _system(profile: str = "i486") -> LavenderSystem:
    return LavenderSystem(profile=profile, memory_size=4 << 20, timer_period=0)


def _server_and_client(
    count: int = 1,
) -> tuple[LavenderSystem, Process, Process, ProcedureExport]:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, IDLE, name="server")
    client = system.create_process(group, client_source(group, count), name="client")
    export = system.sharing.export_procedure(
        server, PROC, entry="f", params=3, private_data_size=4, name="f"
    )
    system.sharing.import_procedure(client, export)
    system.sharing.write_address(client, 0, export.address())
    return system, server, client, export


def _args(system: LavenderSystem, client: Process, *values: int) -> None:
    system.sharing.write_data(client, 20, b"".join(v.to_bytes(4, "little") for v in values))


def _private_counter(system: LavenderSystem, export: ProcedureExport) -> int:
    assert export.data_base is not None
    phys = system.page_tables.translate(
        export.owner.group.directory if export.owner.group else system.boot_directory,
        export.data_base, user=False, write=False,
    )  # fmt: skip
    assert phys is not None
    return system.memory.read32(phys)


words = st.integers(0, 0xFFFFFFFF)


@settings(max_examples=12)
@given(a=words, b=words, c=words)
def test_lav_call_passes_arguments_through_the_gate_and_returns_results(
    a: int, b: int, c: int
) -> None:
    system, _server, client, export = _server_and_client()
    _args(system, client, a, b, c)
    thread = system.create_thread(client, "main")
    assert system.run(max_cycles=200_000).status == "done"
    assert system.thread_state(thread).fault is None
    assert (system.read_data32(client, 32), system.read_data32(client, 36)) == expected(a, b, c)
    assert system.read_data32(client, 40) == 0
    assert _private_counter(system, export) == 1


def test_migration_makes_no_kernel_entry_no_cr3_load_and_no_context_switch() -> None:
    system, server, client, export = _server_and_client(count=25)
    _args(system, client, 1, 2, 3)
    system.create_thread(client, "main")
    assert system.run(max_cycles=500_000).status == "done"
    stats = system.stats()
    # The only kernel entry is the exit system call; the only CR3 load the first dispatch.
    assert stats.kernel_entries == 1 and stats.syscalls == 1
    assert stats.cr3_loads == 1 and stats.context_switches == 1 and stats.ldt_loads == 1
    assert stats.rows[ROW_GATE_CALL].steps == 25 and stats.rows[ROW_FAR_RETURN].steps == 25
    assert _private_counter(system, export) == 25
    # Cycles at CPL 2 count for the server, which has no thread of its own.
    assert stats.cycles_by_process[server.pid] >= stats.cycles_by_cpl[2] > 0
    assert stats.cycles_by_process[client.pid] >= stats.cycles_by_cpl[3]
    assert sum(stats.cycles_by_process.values()) == stats.cycles - stats.idle_cycles


def test_a_far_call_through_the_gate_enters_at_the_gate_offset_whatever_offset_is_given() -> None:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, IDLE)
    export = system.sharing.export_procedure(server, PROC, entry="f", params=3,
                                             private_data_size=4)  # fmt: skip
    other = export.symbols["other"]
    source = f"""
main:
    push 4
    push 5
    push 6
    call {export.gate_selector:#x}:{other:#x}
    mov dword ptr [0], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
"""
    client = system.create_process(group, source)
    system.sharing.import_procedure(client, export)
    thread = system.create_thread(client, "main")
    assert system.run(max_cycles=100_000).status == "done"
    assert system.thread_state(thread).fault is None
    assert system.read_data32(client, 0) == expected(6, 5, 4)[0] != 0xBAD


@pytest.mark.parametrize(
    "what",
    ["call_code", "jmp_code", "jmp_gate", "load_code_ds", "load_private_ds", "call_private",
     "load_private_ss"],
)  # fmt: skip
def test_a_client_cannot_enter_or_touch_the_procedure_segments_directly(what: str) -> None:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, IDLE)
    export = system.sharing.export_procedure(server, PROC, entry="f", params=3,
                                             private_data_size=4)  # fmt: skip
    code, private, gate = export.code_selector | 3, export.data_selector, export.gate_selector
    assert private is not None
    private |= 3
    body = {
        "call_code": f"call {code:#x}:{export.entry:#x}",
        "jmp_code": f"jmp {code:#x}:{export.entry:#x}",
        "jmp_gate": f"jmp {gate:#x}:0",
        "load_code_ds": f"mov ax, {code:#x}\n    mov ds, ax",
        "load_private_ds": f"mov ax, {private:#x}\n    mov ds, ax",
        "call_private": f"call {private:#x}:0",
        "load_private_ss": f"mov ax, {private:#x}\n    mov ss, ax",
    }[what]
    client = system.create_process(group, f"main:\n    {body}\n    mov eax, 0\n    int 0x30\n")
    system.sharing.import_procedure(client, export)
    thread = system.create_thread(client, "main")
    assert system.run(max_cycles=100_000).status == "done"
    fault = system.thread_state(thread).fault
    assert fault is not None and fault.vector == GP
    target = gate if what == "jmp_gate" else (private if "private" in what else code)
    # jmp through the gate names the gate's code segment (JMP cannot raise the privilege).
    if what == "jmp_gate":
        target = code
    assert fault.error_code == target & ~3
    assert fault.pid == client.pid == fault.home_pid
    assert _private_counter(system, export) == 0


def test_server_segments_are_unreachable_from_every_process_that_did_not_import_them() -> None:
    system = _system()
    g1, g2 = system.create_group(), system.create_group()
    server = system.create_process(g1, IDLE)
    importer = system.create_process(g1, IDLE)
    bystander = system.create_process(g1, IDLE)
    far = system.create_process(g2, IDLE)
    export = system.sharing.export_procedure(server, PROC, entry="f", params=3,
                                             private_data_size=4)  # fmt: skip
    system.sharing.import_procedure(importer, export)
    slots = [export.gate_slot, export.code_slot, export.data_slot]
    for process in (bystander, far):
        for slot in slots:
            assert slot is not None
            desc = read_descriptor(system.memory, L.LDT_PHYS + process.pid * L.LDT_BYTES, slot)
            assert not getattr(desc, "present", False)
    for process in (server, importer):
        table = L.LDT_PHYS + process.pid * L.LDT_BYTES
        gate = read_descriptor(system.memory, table, export.gate_slot)
        code = read_descriptor(system.memory, table, export.code_slot)
        assert isinstance(gate, d.GateDescriptor) and gate.dpl == 3
        assert gate.offset == export.entry and gate.param_count == 3
        assert isinstance(code, d.SegmentDescriptor) and code.dpl == 2
        assert code.base == export.code_base and code.effective_limit == export.code_size - 1
    # Running: the bystander loading the private selector faults even though the slot number
    # is the same; a thread of another group can neither.
    private = export.data_selector
    assert private is not None
    probe = f"main:\n    mov ax, {private | 3:#x}\n    mov ds, ax\n    mov eax, 0\n    int 0x30\n"
    threads = []
    for group in (g1, g2):
        process = system.create_process(group, probe)
        threads.append(system.create_thread(process, "main"))
    assert system.run(max_cycles=100_000).status == "done"
    for thread in threads:
        fault = system.thread_state(thread).fault
        assert fault is not None and fault.vector == GP


@settings(max_examples=15)
@given(offset=st.integers(0, 0x7FFFFFFF))
def test_a_client_reaches_no_byte_beyond_its_own_data_segment(offset: int) -> None:
    """The procedure's pages lie right after the client in the same address space; the
    client's exact segment limits keep every offset past its data segment out."""
    system = _system()
    group = system.create_group()
    client = system.create_process(group, "main:\n    mov eax, dword ptr [ebx]\n    int 0x30\n",
                                   data_size=100)  # fmt: skip
    server = system.create_process(group, IDLE)
    system.sharing.export_procedure(server, PROC, entry="f", params=3, private_data_size=4)
    thread = system.create_thread(client, "main", registers={"ebx": 100 + offset})
    system.run(max_cycles=100_000)
    fault = system.thread_state(thread).fault
    assert fault is not None and fault.vector == GP and fault.error_code == 0


def test_a_fault_inside_a_migrated_procedure_is_attributed_to_the_server() -> None:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, IDLE, name="server")
    export = system.sharing.export_procedure(
        server, "boom:\n    xor ecx, ecx\n    div ecx\n    retf 0\n", entry="boom", params=0
    )
    source = "main:\n    push 0\n    push 0\n    call lav_call\n    mov eax, 0\n    int 0x30\n"
    client = system.create_process(group, source + lav_call_source(group), name="client")
    system.sharing.import_procedure(client, export)
    system.sharing.write_address(client, 0, export.address())
    bystander = system.create_process(group, IDLE)
    victim = system.create_thread(client, "main")
    other = system.create_thread(bystander, "main")
    assert system.run(max_cycles=100_000).status == "done"
    fault = system.thread_state(victim).fault
    assert fault is not None and fault.vector == DE
    assert fault.pid == server.pid and fault.home_pid == client.pid
    assert fault.cs == export.code_selector and fault.eip == 2
    assert "migrated into from process" in fault.describe()
    assert system.thread_state(other).fault is None
    assert system.thread_state(other).state == "dead"


def test_process_id_inside_a_procedure_names_the_procedure_process() -> None:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, IDLE)
    export = system.sharing.export_procedure(
        server, "who:\n    mov eax, 3\n    int 0x30\n    retf 0\n", entry="who"
    )
    source = """
main:
    push 0
    push 0
    call lav_call
    mov dword ptr [20], eax
    mov eax, 3
    int 0x30
    mov dword ptr [24], eax
    mov eax, 0
    int 0x30
"""
    client = system.create_process(group, source + lav_call_source(group))
    system.sharing.import_procedure(client, export)
    system.sharing.write_address(client, 0, export.address())
    system.create_thread(client, "main")
    assert system.run(max_cycles=100_000).status == "done"
    assert system.read_data32(client, 20) == server.pid
    assert system.read_data32(client, 24) == client.pid


def test_resident_exports_are_callable_from_every_group_without_an_import() -> None:
    system = _system()
    resident = system.create_resident_process(IDLE, name="resident server")
    export = system.sharing.export_procedure(resident, PROC, entry="f", params=3,
                                             private_data_size=4)  # fmt: skip
    assert export.resident and not export.gate_selector & 4
    assert L.RESIDENT_BASE <= export.code_base < L.RESIDENT_END
    gate = read_descriptor(system.memory, L.GDT_PHYS, export.gate_slot)
    assert isinstance(gate, d.GateDescriptor) and gate.dpl == 3
    assert export.gate_slot >= L.GDT_EXPORT_FIRST
    clients = []
    for k in range(3):
        group = system.create_group()
        client = system.create_process(group, client_source(group))
        assert system.sharing.import_procedure(client, export) == export.gate_selector
        system.sharing.write_address(client, 0, export.address())
        _args(system, client, k, 10 * k, 100 + k)
        system.create_thread(client, "main")
        clients.append(client)
    assert system.run(max_cycles=500_000).status == "done"
    for k, client in enumerate(clients):
        assert (system.read_data32(client, 32), system.read_data32(client, 36)) == expected(
            k, 10 * k, 100 + k
        )
    stats = system.stats()
    assert stats.cycles_by_process[resident.pid] > 0
    assert stats.kernel_entries == 3  # the three exits
    assert _private_counter(system, export) == 3


def test_lav_call_refuses_other_hosts_and_other_groups_cleanly() -> None:
    system = _system()
    g1, g2 = system.create_group(), system.create_group()
    server = system.create_process(g1, IDLE)
    export = system.sharing.export_procedure(server, PROC, entry="f", params=3,
                                             private_data_size=4)  # fmt: skip
    remote = AddressStructure(7, g1.gid, export.gate_selector, export.entry)
    elsewhere = export.address()  # group g1, called from g2
    cases = []
    for group, address in ((g1, remote), (g2, elsewhere)):
        client = system.create_process(group, client_source(group))
        system.sharing.write_address(client, 0, address)
        cases.append((client, system.create_thread(client, "main")))
    assert system.run(max_cycles=200_000).status == "done"
    for client, thread in cases:
        assert system.thread_state(thread).fault is None
        status = system.read_data32(client, 40)
        assert status == system.read_data32(client, 32) == L.E_UNREACHABLE & 0xFFFFFFFF
    assert _private_counter(system, export) == 0


def test_group_wide_slots_are_the_same_in_every_member_and_collisions_are_refused() -> None:
    system = _system()
    g1, g2 = system.create_group(), system.create_group()
    a, b, c = (system.create_process(g1, IDLE) for _ in range(3))
    other = system.create_process(g2, IDLE)
    data = system.sharing.export_data(a, 10, data=b"0123456789", slot=20)
    assert data.selector == L.ldt_sel(20, 3)
    assert system.sharing.import_data(b, data) == system.sharing.import_data(c, data)
    proc = system.sharing.export_procedure(b, PROC, entry="f", params=3, private_data_size=4)
    used = {data.slot, proc.gate_slot, proc.code_slot, proc.data_slot}
    assert len(used) == 4 and set(system.sharing.slots_in_use(g1)) == used
    frames = system.frames.available
    next_linear = g1.next_linear
    for slot in used:
        assert slot is not None
        with pytest.raises(ConfigError) as info:
            system.sharing.export_data(c, 4, slot=slot)
        assert info.value.field == "slot"
        with pytest.raises(ConfigError) as info:
            system.sharing.export_procedure(c, PROC, entry="f", params=3, slot=slot,
                                            private_data_size=4)  # fmt: skip
        assert info.value.field == "slot"
    # The other group has its own slot space: slot 20 is free there.
    assert system.sharing.export_data(other, 4, slot=20).slot == 20
    for field, call in (
        ("importer", lambda: system.sharing.import_data(other, data)),
        ("importer", lambda: system.sharing.import_procedure(other, proc)),
        ("importer", lambda: system.sharing.import_data(b, data)),
        ("params", lambda: system.sharing.export_procedure(c, PROC, entry="f", params=32)),
        ("entry", lambda: system.sharing.export_procedure(c, PROC, entry="nowhere",
                                                          private_data_size=4)),
        ("source", lambda: system.sharing.export_procedure(c, "f: bogus", entry="f")),
        ("size", lambda: system.sharing.export_data(c, 0)),
        ("offset", lambda: system.sharing.export_data(c, 8, offset=4090)),
        ("writable", lambda: system.sharing.import_data(
            c, system.sharing.export_data(a, 4, writable=False), writable=True)),
    ):  # fmt: skip
        before = (system.sharing.slots_in_use(g1), len(system.sharing.procedures))
        with pytest.raises(ConfigError) as info:
            call()
        assert info.value.field == field
        if field != "writable":
            assert (system.sharing.slots_in_use(g1), len(system.sharing.procedures)) == before
    assert g1.next_linear > next_linear  # only the read-only export above placed pages
    assert system.frames.available <= frames


def test_no_descriptor_usable_outside_ring0_covers_a_kernel_address_after_sharing() -> None:
    system, _server, _client, _export = _server_and_client()
    resident = system.create_resident_process(IDLE)
    system.sharing.export_procedure(resident, PROC, entry="f", params=3, private_data_size=4)
    group = system.groups[0]
    p = system.create_process(group, IDLE, data_size=3 * 4096)
    system.sharing.export_data(p, 4096)
    system.sharing.share_pages(p, 5, 5000, _client)
    checked = 0
    tables = [(L.GDT_PHYS, L.GDT_ENTRIES)] + [
        (L.LDT_PHYS + pid * L.LDT_BYTES, L.LDT_ENTRIES) for pid in system.processes
    ]
    for table, entries in tables:
        for index in range(entries):
            desc = read_descriptor(system.memory, table, index)
            if isinstance(desc, d.SegmentDescriptor) and desc.present and desc.dpl >= 1:
                checked += 1
                assert desc.base + desc.effective_limit < L.KERNEL_BASE
            if isinstance(desc, d.GateDescriptor) and desc.present and desc.dpl == 3:
                # A gate a user may call leads to DPL 2 code, never to ring 0.
                target = read_descriptor(
                    system.memory,
                    L.LDT_PHYS + (table - L.LDT_PHYS) // L.LDT_BYTES * L.LDT_BYTES
                    if desc.selector & 4 else L.GDT_PHYS,
                    desc.selector >> 3,
                )  # fmt: skip
                assert isinstance(target, d.SegmentDescriptor) and target.dpl == 2
    assert checked > 20


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))  # fmt: skip
def test_address_structure_round_trips(h: int, g: int, s: int, o: int, f: int) -> None:
    address = AddressStructure(h, g, s, o, f)
    raw = address.encode()
    assert len(raw) == L.ADDR_SIZE == 20
    assert int.from_bytes(raw[L.ADDR_SELECTOR : L.ADDR_SELECTOR + 4], "little") == s
    assert AddressStructure.decode(raw) == address


def test_address_structure_refuses_bad_fields() -> None:
    with pytest.raises(ConfigError) as info:
        AddressStructure(0, -1, 0, 0)
    assert info.value.field == "group"
    with pytest.raises(ConfigError) as info:
        AddressStructure.decode(b"\0" * 19)
    assert info.value.field == "raw"


@pytest.mark.skipif(shutil.which("as") is None or shutil.which("ld") is None,
                    reason="GNU binutils not installed")
def test_call_library_assembles_to_the_same_bytes_with_gnu_as(tmp_path: Path) -> None:
    source = tmp_path / "calllib.s"
    text = lav_call_source(None)
    source.write_text(text)
    obj, binary = tmp_path / "calllib.o", tmp_path / "calllib.bin"
    subprocess.run(["as", "--32", "-msyntax=intel", "-mnaked-reg", str(source), "-o", str(obj)],
                   check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext=0", "-e", "lav_call", "--oformat", "binary",
                    str(obj), "-o", str(binary)], check=True)
    assert binary.read_bytes() == assemble(text, origin=0).code


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_migrating_call_costs_by_phase_with_no_kernel_cycles(profile: str) -> None:
    from lavsim.experiments import Workload, measure_call

    kernel = ("trap entry", "argument checks", "ipc queues and headers", "copy in",
              "scheduling", "context switch and CR3", "copy out", "return")
    bare = measure_call("far-call-group", Workload(profile=profile, calls=4))
    library = measure_call("migration-resident", Workload(profile=profile, size=8, calls=4))
    for cost in (bare, library):
        for figures in (cost.cold, cost.warm):
            assert figures.kernel_entries == 0 and figures.cr3_loads == 0
            assert all(figures.phases[p] == 0 for p in kernel)
        assert cost.warm.phases["gate call"] > 0 and cost.warm.phases["far return"] > 0
        assert cost.cold.cycles >= cost.warm.cycles
    assert bare.warm.phases["user stub"] == 0
    assert library.warm.phases["user stub"] > 0 and library.warm.cycles > bare.warm.cycles
    # Two parameters make the gate copy two doublewords: it costs more than none.
    assert library.warm.phases["gate call"] > bare.warm.phases["gate call"]


def test_export_procedure_refuses_a_shared_data_segment_with_private_data_and_a_bad_word(
) -> None:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, IDLE, name="server")
    image = assemble("f:\n    retf 0\nsel:\n    .word 0\n", origin=0)
    with pytest.raises(ConfigError) as error:
        system.sharing.export_procedure(server, image=image.code, share_data_segment=True,
                                        private_data_size=4)
    assert error.value.field == "share_data_segment"
    with pytest.raises(ConfigError) as error:
        system.sharing.export_procedure(server, PROC, entry="f", params=3,
                                        data_selector_at="sel", share_data_segment=True)
    assert error.value.field == "data_selector_at"
    with pytest.raises(ConfigError) as error:
        system.sharing.export_procedure(server, image=image.code, symbols=image.symbols,
                                        share_data_segment=True, data_selector_at="nosuch")
    assert error.value.field == "data_selector_at"
    assert system.sharing.procedures == [] and system.sharing.slots_in_use(group) == {}


def test_a_shared_data_segment_export_aliases_the_exporters_data_and_gets_its_selector() -> None:
    system = _system()
    group = system.create_group()
    server = system.create_process(group, IDLE, name="server", data_size=8192)
    image = assemble("f:\n    retf 0\nsel:\n    .word 0\n", origin=0)
    export = system.sharing.export_procedure(
        server, image=image.code, symbols=image.symbols, entry="f",
        share_data_segment=True, data_selector_at="sel")
    assert (export.data_base, export.data_size) == (server.data_base, server.data_size)
    desc = read_descriptor(system.memory, L.LDT_PHYS + server.pid * L.LDT_BYTES,
                           export.data_slot)
    assert isinstance(desc, d.SegmentDescriptor) and desc.dpl == 2
    assert desc.base == server.data_base
    phys = system.page_tables.translate(group.directory, export.code_base + image.symbols["sel"],
                                        user=False, write=False)
    assert phys is not None and system.memory.read16(phys) == export.data_selector
