"""``lavsim rpc`` with --trace-out, --stats-out and --trace-instructions: the files are
written, the table is the same as without them, statistics list every declared counter with
the Python API's values, instruction traces carry names and obey their filters, and bad
options are refused naming the option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lavsim.cli import main
from lavsim.kernel import LavenderSystem
from lavsim.kernel.ipc import user_prelude
from lavsim.mmu.mmu import MMU_COUNTERS
from lavsim.mmu.tlb import TLB_COUNTERS
from lavsim.observe.itrace import InstructionTrace, TraceFilter
from lavsim.observe.statsfile import KERNEL_COUNTERS, collect, render_text

RPC = ["rpc", "--profile", "pentium", "--sizes", "16", "--calls", "2", "--no-remote",
       "--no-progress", "--format", "json"]
OBSERVED = ["message-groups", "migration-group"]


def test_rpc_observation_files_are_written_and_the_table_does_not_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(RPC) == 0
    plain = capsys.readouterr().out
    trace, stats, itrace = tmp_path / "t.json", tmp_path / "s.json", tmp_path / "i.txt"
    assert main([*RPC, "--observe", ",".join(OBSERVED), "--trace-out", str(trace),
                 "--stats-out", str(stats), "--trace-instructions", str(itrace)]) == 0
    out, err = capsys.readouterr()
    assert out == plain
    assert "events (" in err and "counters in" in err
    events = json.loads(trace.read_text())["traceEvents"]
    labels = [e["args"]["name"] for e in events if e.get("name") == "process_name"]
    assert len(labels) == 2
    data = json.loads(stats.read_text())
    for key in OBSERVED:
        prefix = key.replace("-", "_")
        for counter in MMU_COUNTERS:
            assert data[f"{prefix}.mmu.{counter.name}"]["description"] == counter.description
        for counter in TLB_COUNTERS:
            assert f"{prefix}.dtlb.{counter.name}" in data
        for name, _ in KERNEL_COUNTERS:
            assert f"{prefix}.kernel.{name}" in data
        assert f"{prefix}.call1.cycles" in data
    lines = itrace.read_text().splitlines()
    assert lines[0].split()[:3] == ["cycle", "cpl", "process"]
    assert any(" syscall_entry+0x0 " in line for line in lines)
    assert any(" client.main+0x" in line for line in lines)


def _demo() -> LavenderSystem:
    system = LavenderSystem(profile="pentium", timer_period=0)
    process = system.create_process(system.create_group("demo"), user_prelude() + """
main:
    mov eax, 6
    imul eax, eax, 7
    mov ebx, eax
    mov eax, SYS_EXIT
    int 0x30
""", name="demo")
    system.create_thread(process, "main")
    return system


def test_statistics_equal_the_python_api() -> None:
    system = _demo()
    system.run(max_cycles=100_000)
    values = {s.name: s.value for s in collect(system)}
    mmu = system.machine.mmu.stats
    assert values["system.mmu.walks"] == mmu.walks
    for name, tlb in mmu.tlbs:
        for counter in TLB_COUNTERS:
            assert values[f"system.{name}.{counter.name}"] == getattr(tlb, counter.name)
    kernel = system.stats()
    assert values["system.kernel.syscalls"] == kernel.syscalls == 1
    assert values["system.machine.cycles"] == system.machine.cpu.tsc
    assert values["system.kernel.rows.syscall_entry.cycles"] == kernel.rows["syscall_entry"].cycles
    assert "system.mmu.walks" in render_text(collect(system))


def test_instruction_trace_names_routines_and_obeys_its_cpl_filter() -> None:
    system = _demo()
    lines: list[str] = []
    trace = InstructionTrace(system, lines.append, TraceFilter(cpls=(3,))).attach()
    system.run(max_cycles=100_000)
    trace.detach()
    body = lines[1:]
    assert body and all(line.split()[1] == "3" for line in body)
    assert "demo.main+0x0" in body[0] and "mov eax, 0x6" in body[0]
    assert "trap" in body[-1]  # int 0x30: delivered into ring 0
    everything: list[str] = []
    other = _demo()
    trace = InstructionTrace(other, everything.append).attach()
    other.run(max_cycles=100_000)
    trace.detach()
    assert any(" syscall_entry+0x0 " in line for line in everything)
    assert other.machine.cpu.tsc == system.machine.cpu.tsc


@pytest.mark.parametrize(("argv", "option"), [
    (["--gdb", "0"], "--gdb"),
    (["--observe", "nope", "--stats-out", "x.txt"], "--observe"),
    (["--trace-out", "/nonexistent/dir/t.json"], "--trace-out"),
    (["--trace-cpl", "5"], "--trace-cpl"),
])
def test_bad_observation_options_are_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], option: str,
) -> None:
    assert main([*RPC, *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and f"argument {option}:" in err, err


def test_verbose_logs_creation_to_standard_error_and_quiet_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["rpc", "--profile", "pentium", "--sizes", "0", "--calls", "2", "--no-remote",
            "--no-progress", "--format", "csv"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    assert main([*argv, "-v"]) == 0
    err = capsys.readouterr().err
    assert "lavsim.kernel: booted Lavender: pentium" in err
    assert "lavsim.kernel: thread 1 of process 2 'client'" in err
    assert main(argv) == 0
    assert capsys.readouterr().err == ""


def test_trace_call_keeps_exactly_one_calls_steps_and_checks_its_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    both, warm = tmp_path / "both.txt", tmp_path / "warm.txt"
    base = [*RPC, "--observe", "migration-group", "--trace-instructions"]
    assert main([*base, str(both)]) == 0
    assert main([*base, str(warm), "--trace-call", "1"]) == 0
    capsys.readouterr()
    calls = [line for line in both.read_text().splitlines() if " client.main+0x0 " in line]
    one = warm.read_text().splitlines()[1:]
    assert len(calls) == 2 and one[0] == calls[1]  # the warm call starts at the 2nd start
    assert sum(" client.main+0x0 " in line for line in one) == 1
    assert one[-1] in both.read_text().splitlines()
    assert main([*base, str(warm), "--trace-call", "2"]) == 2
    assert "argument --trace-call" in capsys.readouterr().err
