"""Calling by thread migration from C (``lav_proc_call``, ``lav_bind``) and procedures
written in C (``LAV_EXPORT``, :func:`lavsim.programs.procedures.export_c_procedure`): results
and status for random arguments, C and assembly on either side, one caller at a time in a C
procedure, and a C procedure's fault charged to its server; the C example doing the same RPC
by message and by migration, the name server and L4-style IPC from C."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from ckit import build, needs_gcc

from lavsim.cpu.asm import assemble
from lavsim.elf import ElfProgram, load_elf_file
from lavsim.errors import ConfigError
from lavsim.faults import GP
from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel import layout as L
from lavsim.kernel.fastipc import grant_send
from lavsim.kernel.sharing import AddressStructure, ProcedureExport, lav_call_source
from lavsim.programs.commands import run_main
from lavsim.programs.procedures import export_c_procedure
from lavsim.programs.run import run_lavender

pytestmark = needs_gcc

CALLS = 8
TABLE = (3, 5, 7, 11)

#: An assembly procedure: f(a, b, c) = (a * 3 + b) ^ c in EAX, a - c in EDX.
ASM_PROC = """
f:
    mov edx, dword ptr [esp+8]
    sub edx, dword ptr [esp+16]
    mov eax, dword ptr [esp+8]
    imul eax, eax, 3
    add eax, dword ptr [esp+12]
    xor eax, dword ptr [esp+16]
    retf PROC_ARG_BYTES
"""
IDLE = "main:\n    mov eax, 0\n    mov ebx, 0\n    int 0x30\n"


def _mix(a: int, b: int, c: int) -> int:
    """What proc_server.c's mix returns."""
    return ((a * TABLE[c & 3] + b) ^ c) & 0xFFFFFFFF


def _programs(tmp: pytest.TempPathFactory) -> tuple[ElfProgram, ElfProgram]:
    base = tmp.getbasetemp()
    return (load_elf_file(str(build(base, "proc_server", "-O2", "i486", False))),
            load_elf_file(str(build(base, "proc_client", "-O2", "i486", False))))


def _words(*values: int) -> bytes:
    return b"".join((v & 0xFFFFFFFF).to_bytes(4, "little") for v in values)


def _client(system: LavenderSystem, client: Process, program: ElfProgram,
            address: AddressStructure, args: list[int], nargs: int = 3,
            threads: int = 1) -> None:
    """Fill proc_client.c's globals, boot-loader style."""
    put = system.sharing.write_data
    system.sharing.write_address(client, program.symbol("proc"), address)
    put(client, program.symbol("args"), _words(*args))
    put(client, program.symbol("nargs"), _words(nargs))
    put(client, program.symbol("threads"), _words(threads))


def _read(system: LavenderSystem, process: Process, program: ElfProgram, name: str,
          count: int = 1) -> list[int]:
    at = program.symbol(name)
    return [system.read_data32(process, at + 4 * k) for k in range(count)]


def _signed(values: list[int]) -> list[int]:
    return [v - (1 << 32) if v & 0x80000000 else v for v in values]


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_a_c_client_calls_an_assembly_procedure_and_gets_its_result_and_status(
    tmp_path_factory: pytest.TempPathFactory, profile: str
) -> None:
    _server, client_elf = _programs(tmp_path_factory)
    rng = random.Random(f"asm-{profile}")
    args = [rng.getrandbits(32) for _ in range(3 * CALLS)]
    system = LavenderSystem(profile)
    group = system.create_group()
    server = system.create_process(group, IDLE, name="server")
    client = system.create_elf_process(group, client_elf)
    export = system.sharing.export_procedure(server, ASM_PROC, entry="f", params=3)
    system.sharing.import_procedure(client, export)
    _client(system, client, client_elf, export.address(), args)
    thread = system.create_thread(client, "_start")
    assert system.run(max_cycles=2_000_000).status == "done"
    assert system.thread_state(thread).fault is None
    want = [((a * 3 + b) ^ c) & 0xFFFFFFFF for a, b, c in zip(*[iter(args)] * 3, strict=True)]
    assert _read(system, client, client_elf, "results", CALLS) == want
    assert _read(system, client, client_elf, "statuses", CALLS) == [0] * CALLS
    assert _read(system, client, client_elf, "bound") == [0]
    a, _b, c = args[:3]
    assert _read(system, client, client_elf, "wide", 2) == [want[0], (a - c) & 0xFFFFFFFF]


@pytest.mark.parametrize("where", ["other group", "other host"])
def test_lav_proc_call_answers_unreachable_for_another_group_or_host_without_a_fault(
    tmp_path_factory: pytest.TempPathFactory, where: str
) -> None:
    _server, client_elf = _programs(tmp_path_factory)
    system = LavenderSystem("i486")
    group = system.create_group()
    client = system.create_elf_process(group, client_elf)
    address = AddressStructure(host=1 if where == "other host" else 0,
                               group=group.gid + (where == "other group"), selector=0x4F,
                               offset=0)
    _client(system, client, client_elf, address, [1] * (3 * CALLS))
    thread = system.create_thread(client, "_start")
    assert system.run(max_cycles=1_000_000).status == "done"
    assert system.thread_state(thread).fault is None
    unreachable = [L.E_UNREACHABLE] * CALLS
    assert _signed(_read(system, client, client_elf, "statuses", CALLS)) == unreachable
    assert _signed(_read(system, client, client_elf, "results", CALLS)) == unreachable


def test_lav_bind_refuses_a_call_site_whose_argument_count_is_not_the_gates(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _server, client_elf = _programs(tmp_path_factory)
    system = LavenderSystem("i486")
    group = system.create_group()
    server = system.create_process(group, IDLE, name="server")
    client = system.create_elf_process(group, client_elf)
    export = system.sharing.export_procedure(server, ASM_PROC, entry="f", params=3)
    system.sharing.import_procedure(client, export)
    _client(system, client, client_elf, export.address(), [0] * (3 * CALLS), nargs=1)
    system.create_thread(client, "_start")
    system.run(max_cycles=1_000_000)
    assert _signed(_read(system, client, client_elf, "bound")) == [L.E_NARGS]


def _c_export(system: LavenderSystem, server_elf: ElfProgram, function: str,
              resident: bool = False) -> tuple[Process, ProcedureExport]:
    group = None if resident else system.groups[0]
    server = system.create_elf_process(group, server_elf, name="server")
    return server, export_c_procedure(system, server, server_elf, function)


@pytest.mark.parametrize(("profile", "resident"),
                         [("i486", False), ("pentium", False), ("i486", True)])
def test_a_c_client_calls_a_c_procedure_by_migration_with_random_arguments(
    tmp_path_factory: pytest.TempPathFactory, profile: str, resident: bool
) -> None:
    server_elf, client_elf = _programs(tmp_path_factory)
    rng = random.Random(f"c-{profile}-{resident}")
    args = [rng.getrandbits(32) for _ in range(3 * CALLS)]
    system = LavenderSystem(profile)
    group = system.create_group()
    server, export = _c_export(system, server_elf, "mix", resident)
    assert export.params == 3 and export.data_size == server.data_size
    client = system.create_elf_process(group, client_elf)
    system.sharing.import_procedure(client, export)
    _client(system, client, client_elf, export.address(), args)
    thread = system.create_thread(client, "_start")
    assert system.run(max_cycles=2_000_000).status == "done"
    assert system.thread_state(thread).fault is None
    want = [_mix(a, b, c) for a, b, c in zip(*[iter(args)] * 3, strict=True)]
    assert _read(system, client, client_elf, "results", CALLS) == want
    assert _read(system, client, client_elf, "statuses", CALLS) == [0] * CALLS
    # the procedure counted its calls (and the client's lav_proc_call64) in its own global
    assert _read(system, server, server_elf, "calls") == [CALLS + 1]


def test_an_assembly_client_calls_a_c_procedure_through_lav_call(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server_elf, _client_elf = _programs(tmp_path_factory)
    system = LavenderSystem("i486")
    group = system.create_group()
    _server, export = _c_export(system, server_elf, "mix")
    source = """
main:
    push dword ptr [28]
    push dword ptr [24]
    push dword ptr [20]
    push 3
    push 0
    call lav_call
    add esp, 20
    mov dword ptr [32], eax
    mov dword ptr [40], ecx
    mov eax, 0
    mov ebx, 0
    int 0x30
""" + lav_call_source(group)
    assemble(source, origin=0)  # the client's source is valid on its own
    client = system.create_process(group, source, name="asm client")
    system.sharing.import_procedure(client, export)
    system.sharing.write_address(client, 0, export.address())
    system.sharing.write_data(client, 20, _words(123456789, -7, 0x5A5A5A5B))
    thread = system.create_thread(client, "main")
    assert system.run(max_cycles=1_000_000).status == "done"
    assert system.thread_state(thread).fault is None
    assert system.read_data32(client, 32) == _mix(123456789, -7 & 0xFFFFFFFF, 0x5A5A5A5B)
    assert system.read_data32(client, 40) == 0


def test_a_c_procedure_lets_one_caller_in_at_a_time_under_preemption(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server_elf, client_elf = _programs(tmp_path_factory)
    system = LavenderSystem("i486", timer_period=5000)
    group = system.create_group()
    server, export = _c_export(system, server_elf, "slow")
    client = system.create_elf_process(group, client_elf)
    system.sharing.import_procedure(client, export)
    args = [3000 + k for k in range(CALLS)]
    _client(system, client, client_elf, export.address(), args, nargs=1, threads=2)
    system.create_thread(client, "_start")
    outcome = system.run(max_cycles=20_000_000)
    assert outcome.status == "done" and not outcome.faulted
    assert _read(system, client, client_elf, "results", CALLS) == [a + 1 for a in args]
    assert _read(system, server, server_elf, "calls") == [CALLS]
    assert _read(system, server, server_elf, "overlap") == [0]
    # thread_create and two exits are the client's own system calls; the rest are the
    # trampoline's yields while the other thread held the procedure
    assert system.stats().syscalls > 3


def test_a_fault_in_a_c_procedure_is_attributed_to_its_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server_elf, client_elf = _programs(tmp_path_factory)
    system = LavenderSystem("i486")
    group = system.create_group()
    server, export = _c_export(system, server_elf, "boom")
    client = system.create_elf_process(group, client_elf)
    system.sharing.import_procedure(client, export)
    _client(system, client, client_elf, export.address(), [1] * CALLS, nargs=1)
    thread = system.create_thread(client, "_start")
    outcome = system.run(max_cycles=1_000_000)
    assert [f.tid for f in outcome.faulted] == [thread.tid]
    fault = system.thread_state(thread).fault
    assert fault is not None and fault.vector == GP
    assert fault.pid == server.pid and fault.home_pid == client.pid
    assert fault.cs == export.code_selector
    # the faulting instruction is in boom: the nearest code label at or below EIP
    labels = [(v, n) for n, v in server_elf.symbols.items()
              if v <= fault.eip and not n.endswith("__lav_nargs")]
    assert max(labels)[1] == "boom"


def test_export_c_procedure_refuses_a_function_without_lav_export(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server_elf, client_elf = _programs(tmp_path_factory)
    system = LavenderSystem("i486")
    group = system.create_group()
    server = system.create_elf_process(group, server_elf)
    with pytest.raises(ConfigError, match="LAV_EXPORT") as error:
        export_c_procedure(system, server, server_elf, "main")
    assert error.value.field == "function"
    with pytest.raises(ConfigError) as error:
        export_c_procedure(system, server, client_elf, "mix")
    assert error.value.field in ("function", "process")
    assert system.sharing.procedures == []


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "c"


def _example(tmp: pytest.TempPathFactory, name: str) -> Path:
    return build(tmp.getbasetemp(), name, "-O2", "i486", False, EXAMPLES / f"{name}.c")


@pytest.mark.parametrize(("profile", "board"), [("i486", "ideal"), ("pentium", "p100")])
def test_the_c_example_makes_the_same_rpc_by_message_and_by_migration(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
    profile: str, board: str,
) -> None:
    client, server = (str(_example(tmp_path_factory, n)) for n in ("rpc_client", "rpc_server"))
    assert run_main(["--profile", profile, "--board", board, client, server]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.endswith("(status 0)") for line in lines)
    for line in lines:  # message and migration agree
        message, migration = (part.split()[1] for part in line.split(": ", 1)[1].split(", ")[:2])
        assert message == migration
    regions = re.findall(r"marked region(?: (\d))?: (\d+) instructions, (\d+) cycles", err)
    assert [r[0] for r in regions] == ["", "2"], err
    message_cycles, migration_cycles = int(regions[0][2]), int(regions[1][2])
    assert 0 < migration_cycles < message_cycles  # no kernel entry on the migrating call


def test_lavsim_run_answers_unreachable_for_a_procedure_of_another_group(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    client, server = (str(_example(tmp_path_factory, n)) for n in ("rpc_client", "rpc_server"))
    assert run_main(["--groups", "1,2", client, server]) == 1
    out = capsys.readouterr().out
    assert out.count(f"(status {L.E_UNREACHABLE})") == 3


def test_the_board_changes_the_cycles_of_a_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    programs = [load_elf_file(str(_example(tmp_path_factory, n)))
                for n in ("rpc_client", "rpc_server")]
    ideal = run_lavender(programs, profile="pentium")
    p100 = run_lavender(programs, profile="pentium", board="p100")
    assert ideal.console == p100.console and ideal.status == p100.status == 0
    assert ideal.regions[1] != p100.regions[1]


def test_lavsim_run_refuses_an_unknown_board_and_an_import_nobody_exports(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
) -> None:
    client = str(_example(tmp_path_factory, "rpc_client"))
    assert run_main(["--board", "nosuch", client]) == 2
    assert "--board" in capsys.readouterr().err
    assert run_main([client]) == 2
    err = capsys.readouterr().err
    assert "imports 'checksum', which no program exports" in err


def test_a_c_procedure_prints_and_is_inside_its_server_for_process_id(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server_elf, client_elf = _programs(tmp_path_factory)
    system = LavenderSystem("i486")
    group = system.create_group()
    server, export = _c_export(system, server_elf, "shout")
    client = system.create_elf_process(group, client_elf)
    system.sharing.import_procedure(client, export)
    _client(system, client, client_elf, export.address(), list(range(CALLS)), nargs=1)
    system.create_thread(client, "_start")
    assert system.run(max_cycles=2_000_000).status == "done"
    want = "".join(f"shout {k} from {server.pid}\n" for k in range(CALLS))
    assert system.console == want
    assert _read(system, client, client_elf, "results", CALLS) == [
        len(f"shout {k} from {server.pid}\n") for k in range(CALLS)]


NAMED = """lookup cube 0 bind 0, port square 1
2: square 4 (4 bytes), cube 8 (status 0)
3: square 9 (4 bytes), cube 27 (status 0)
4: square 16 (4 bytes), cube 64 (status 0)
unknown {noent}, taken {exist}
"""


@pytest.mark.parametrize("groups", [[1, 1], [1, 0]])
def test_c_programs_register_and_look_up_ports_and_procedures_by_name(
    tmp_path_factory: pytest.TempPathFactory, groups: list[int]
) -> None:
    base = tmp_path_factory.getbasetemp()
    programs = [load_elf_file(str(build(base, n, "-O2", "i486", False)))
                for n in ("named_client", "named_server")]
    result = run_lavender(programs, groups=groups, name_server=True)
    assert result.status == 0 and not result.faults, result.summary()
    # registering the found address again: taken in the group, or (a resident address) not
    # the client's to register
    taken = L.E_EXIST if groups[1] else L.E_PERM
    assert result.console == NAMED.format(noent=L.E_NOENT, exist=taken)


def test_without_a_name_server_lookups_answer_bad_port_at_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.getbasetemp()
    programs = [load_elf_file(str(build(base, n, "-O2", "i486", False)))
                for n in ("named_client", "named_server")]
    result = run_lavender(programs)
    assert result.console.startswith(f"lookup cube {L.E_BADPORT} bind 0, port square "
                                     f"{L.E_BADPORT}\n")


@pytest.mark.parametrize("groups", ["one", "two"])
def test_a_c_client_calls_a_c_server_l4_style_with_words_and_a_long_part(
    tmp_path_factory: pytest.TempPathFactory, groups: str
) -> None:
    base = tmp_path_factory.getbasetemp()
    server_elf, client_elf = (load_elf_file(str(build(base, n, "-O2", "i486", False)))
                              for n in ("l4_server", "l4_client"))
    system = LavenderSystem("i486")
    group = system.create_group()
    server = system.create_elf_process(group, server_elf)
    client = system.create_elf_process(group if groups == "one" else system.create_group(),
                                       client_elf)
    grant_send(system, client, server)
    server_thread = system.create_thread(server, "_start")
    system.sharing.write_data(client, client_elf.symbol("server"), _words(server_thread.tid))
    thread = system.create_thread(client, "_start")
    system.run(max_cycles=2_000_000)
    assert system.thread_state(thread).exit_code == 0
    assert system.console == ('0: 5 6 from 1, ""\n2: 16 39 from 1, "L4"\n'
                              f'6: 27 92 from 1, "FROM C"\nself {L.E_INVAL}\n')


def test_an_l4_call_without_a_send_right_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.getbasetemp()
    server_elf, client_elf = (load_elf_file(str(build(base, n, "-O2", "i486", False)))
                              for n in ("l4_server", "l4_client"))
    system = LavenderSystem("i486")
    group = system.create_group()
    server = system.create_elf_process(group, server_elf)
    client = system.create_elf_process(group, client_elf)
    server_thread = system.create_thread(server, "_start")
    system.sharing.write_data(client, client_elf.symbol("server"), _words(server_thread.tid))
    system.create_thread(client, "_start")
    system.run(max_cycles=2_000_000)
    assert system.console.startswith(f"{L.E_PERM}: 2 3 from 0")
