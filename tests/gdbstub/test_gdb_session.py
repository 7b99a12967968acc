"""The stub against the real gdb, in batch mode on 127.0.0.1: symbols of the kernel and of a
program, breakpoints, stepping, registers (CS, SS, EFLAGS), memory, Lavender threads, a thread
switch showing saved registers, a watchpoint, and a run to the end with the same cycles as
without gdb."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lavsim.experiments.rpc import measure_call
from lavsim.experiments.workload import Workload
from lavsim.kernel import LavenderSystem
from lavsim.kernel.ipc import user_prelude
from lavsim.kernel.system import Process

GDB = shutil.which("gdb")
SRC = Path(__file__).resolve().parents[2] / "src"
pytestmark = pytest.mark.skipif(GDB is None, reason="the gdb binary is not installed "
                                "(.ci/run installs Debian's gdb)")

FIRST = user_prelude() + """
main:
    mov eax, 6
    imul eax, eax, 7
    mov dword ptr [0x10], eax
checked:
    mov ebx, eax
    mov eax, SYS_EXIT
    int 0x30
"""
SECOND = user_prelude() + """
main:
    mov ebx, 5
    mov eax, SYS_EXIT
    int 0x30
"""


def _system() -> tuple[LavenderSystem, Process, Process]:
    system = LavenderSystem(profile="pentium", timer_period=0)
    group = system.create_group("demo")
    first = system.create_process(group, FIRST, name="first")
    second = system.create_process(system.create_group("other"), SECOND, name="second")
    system.create_thread(first, "main")
    system.create_thread(second, "main")
    return system, first, second


def _session(commands: list[str]) -> tuple[str, LavenderSystem, int]:
    system, _, _ = _system()
    server = system.gdb_server(0, wait=False, timeout=30)
    args = [str(GDB), "-nx", "-batch", "-ex", "set pagination off",
            "-ex", f"target remote 127.0.0.1:{server.port}"]
    for command in commands:
        args += ["-ex", command]
    gdb = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        server.wait_for_gdb()
        outcome = system.run(max_cycles=200_000)
        server.finish(0)
        out, _ = gdb.communicate(timeout=60)
    finally:
        if gdb.poll() is None:
            gdb.kill()
        server.close()
    return out, system, outcome.cycles


def _undebugged_cycles() -> int:
    system, _, _ = _system()
    return system.run(max_cycles=200_000).cycles


def test_gdb_session_breaks_steps_reads_lists_threads_and_runs_to_the_end() -> None:
    _, first, second = _system()
    data = first.data_base + 0x10
    second_main = second.code_base + second.symbol("main")
    out, traced, cycles = _session([
        "break *'first.checked'",
        "continue",
        "info registers cs ss eflags eax",
        "x/2i $pc",
        "stepi",
        "print/x $eip",
        f"x/wx {data:#x}",
        "info threads",
        "thread 2",
        "print/x $pc",
        "thread 1",
        "delete",
        "break *syscall_entry",
        "continue",
        "print $cpl",
        "delete",
        "continue",
    ])
    assert "Reading symbols from" in out
    assert re.search(r"hit Breakpoint 1, 0x[0-9a-f]+ in first", out), out
    assert re.search(r"^cs\s+0x[0-9a-f]+", out, re.M) and re.search(r"^ss\s+0x", out, re.M)
    assert re.search(r"^eflags\s+0x[0-9a-f]+\s+\[.*IF.*\]", out, re.M), out
    assert re.search(r"^eax\s+0x2a\s+42", out, re.M), out
    assert "<first.checked>:\tmov    %eax,%ebx" in out
    checked = first.code_base + first.symbol("checked")
    assert f"$1 = {checked + 2:#x}" in out  # one instruction (2 bytes) later
    assert re.search(rf"{data:#x}.*:\s+0x0000002a", out), out
    assert "thread 1 of first (pid 1), running" in out
    assert "thread 2 of second (pid 2), ready" in out
    assert f"$2 = {second_main:#x}" in out  # thread 2's saved EIP, linear
    assert "hit Breakpoint 2, " in out and "in syscall_entry ()" in out
    assert "$3 = 0" in out  # CPL 0 in the kernel
    assert "exited normally" in out or "exited with code" in out
    assert traced.thread_state(1).exit_code == 42
    assert cycles == _undebugged_cycles()


def test_gdb_watchpoint_stops_at_the_write_and_monitor_reads_physical_memory() -> None:
    _, first, _ = _system()
    data = first.data_base + 0x10
    out, _, cycles = _session([
        f"watch *(int *){data:#x}",
        "continue",
        "print/x $eax",
        "monitor cycles",
        "monitor linear 0xc0000000",
        "monitor phys 0x0 16",
        "delete",
        "continue",
    ])
    assert "atchpoint 1: *(int *)" in out
    assert "New value = 42" in out, out
    assert "$1 = 0x2a" in out
    assert re.search(r"tsc \d+ instructions \d+", out)
    assert "0xc0000000 -> physical 0x00000000" in out
    assert re.search(r"^00000000: ([0-9a-f]{2} ){15}[0-9a-f]{2}$", out, re.M), out
    assert cycles == _undebugged_cycles()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_gdb_attaches_to_lavsim_rpc_and_the_calls_cost_what_they_cost_without_it(
    tmp_path: Path,
) -> None:
    port = _free_port()
    stats = tmp_path / "stats.json"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    rpc = subprocess.Popen(
        [sys.executable, "-m", "lavsim", "rpc", "--profile", "pentium", "--sizes", "16",
         "--calls", "2", "--no-remote", "--no-progress", "--observe", "migration-group",
         "--gdb", str(port), "--stats-out", str(stats)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert rpc.stderr is not None
        waiting = rpc.stderr.readline()  # the stub listens once this line is written
        gdb = subprocess.run(
            [str(GDB), "-nx", "-batch", "-ex", f"target remote 127.0.0.1:{port}",
             "-ex", "break *'client.call_start'", "-ex", "continue",
             "-ex", "info threads", "-ex", "print $cpl",
             "-ex", "break *'server.proc'", "-ex", "continue",
             "-ex", "print $cpl", "-ex", "info threads",
             "-ex", "delete", "-ex", "continue"],
            capture_output=True, text=True, timeout=120)
        _, err = rpc.communicate(timeout=120)
    finally:
        if rpc.poll() is None:
            rpc.kill()
    assert rpc.returncode == 0, err
    assert "waiting for gdb on 127.0.0.1" in waiting, waiting + err
    assert "hit Breakpoint 1, " in gdb.stdout and "client" in gdb.stdout, gdb.stdout
    assert "thread 1 of client (pid 2), running" in gdb.stdout
    assert "$1 = 3" in gdb.stdout
    # The client's thread migrated: it runs the server's procedure, in ring 2.
    assert "hit Breakpoint 2, " in gdb.stdout and "in server" in gdb.stdout, gdb.stdout
    assert "$2 = 2" in gdb.stdout
    data = json.loads(stats.read_text())
    # The command runs on the CPU model's default board (issue 12): measure the same machine.
    warm = measure_call("migration-group",
                        Workload(profile="pentium", size=16, calls=2, board="default"))
    assert data["migration_group.call1.cycles"]["value"] == warm.samples[0]
