"""``lavsim run --gdb/--trace-out/--stats-out/--trace-instructions`` on C programs: a real gdb
drives a run by the program's function names, and no option changes the run's cycles."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ckit import build, needs_gcc

from lavsim.cli import main

pytestmark = needs_gcc

PROGRAM = """
#include <lavender.h>
#include <stdio.h>
int total = 5;
volatile int done[3];
static int add(int a, int b) { int s = a + b; total += s; return s; }
static int worker(int k) { done[k] = add(k, 100); return k; }
int main(void) {
    int x = 0;
    for (int i = 0; i < 3; i++) x = add(x, i + 40);
    for (int k = 1; k < 3; k++) lav_thread_create(worker, k);
    while (!done[1] || !done[2]) lav_yield();
    printf("x=%d total=%d\\n", x, total);
    return x & 0x7f;
}
"""


def _program(tmp: Path, debug: bool = False) -> Path:
    source = tmp / "obs.c"
    source.write_text(PROGRAM)
    # The process is named after the file: its symbols are obs.main, obs.add ...
    out = tmp / ("g" if debug else "plain") / "obs.elf"
    if not out.exists():
        out.parent.mkdir()
        if debug:
            from lavsim.programs import cc

            cc.compile_program([str(source)], str(out), ["-O0", "-g", "-w"], bare=False)
        else:
            shutil.copy(build(tmp, "obs", "-O0", "i486", False, source), out)
    return out


def _cycles(err: str) -> int:
    found = re.search(r"lavsim run: done, status \d+, \d+ instructions, (\d+) cycles", err)
    assert found, err
    return int(found.group(1))


def test_observation_options_leave_the_runs_cycles_and_output_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elf = str(_program(tmp_path))
    assert main(["run", elf]) == 123 & 0x7F
    plain = capsys.readouterr()
    trace, stats, itrace = tmp_path / "t.json", tmp_path / "s.txt", tmp_path / "i.txt"
    assert main(["run", "--trace-out", str(trace), "--stats-out", str(stats),
                 "--trace-instructions", str(itrace), elf]) == 123 & 0x7F
    seen = capsys.readouterr()
    assert seen.out == plain.out == "x=123 total=452\n"
    assert _cycles(seen.err) == _cycles(plain.err)
    # The timeline: trace-event JSON, a named track per Lavender thread (3 threads).
    events = json.loads(trace.read_text())["traceEvents"]
    tracks = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {1, 2, 3} <= tracks
    for tid in (1, 2, 3):
        mine = [e for e in events if e.get("tid") == tid and e["ph"] in ("B", "E")]
        assert sum(e["ph"] == "B" for e in mine) == sum(e["ph"] == "E" for e in mine) > 0
        assert [e["ts"] for e in mine] == sorted(e["ts"] for e in mine)
    # The statistics: the machine's counters, and the kernel's (the run needs its observer).
    text = stats.read_text()
    assert f"run.machine.cycles {_cycles(seen.err)}" in " ".join(text.split())
    assert "run.kernel.cycles_by_process.pid1" in text
    # The instruction trace names the C functions from the ELF symbols.
    lines = itrace.read_text().splitlines()
    assert any(" obs.add+0x0 " in line and "push ebp" in line for line in lines)
    assert any(" obs.worker+" in line for line in lines)


def test_run_observation_options_are_refused_with_bare_and_bad_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elf = str(_program(tmp_path))
    assert main(["run", "--trace-out", str(tmp_path / "no" / "t.json"), elf]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --trace-out" in err
    assert main(["run", "--gdb", "0", elf]) == 2
    assert "--gdb" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed (.ci/run "
                    "installs it)")
def test_gdb_breaks_on_a_c_function_steps_reads_variables_and_keeps_the_cycles(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elf = str(_program(tmp_path, debug=True))
    assert main(["run", elf]) == 123 & 0x7F
    cycles = _cycles(capsys.readouterr().err)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    run = subprocess.Popen([sys.executable, "-m", "lavsim", "run", "--gdb", str(port), elf],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert run.stderr is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = run.stderr.readline()
            lines.append(line)
            if "debug info:" in line:
                break
        load = re.search(r"debug info: (add-symbol-file .*)$", lines[-1])
        assert load, lines
        gdb = subprocess.run(
            ["gdb", "-nx", "-batch", "-ex", "set pagination off",
             "-ex", f"target remote 127.0.0.1:{port}",
             "-ex", load.group(1).strip(),
             "-ex", "break add", "-ex", "continue",
             "-ex", "info symbol $pc",
             "-ex", "stepi 3", "-ex", "x/i $pc",
             # the stack is an offset in SS: the 2nd argument of the first call is 40
             "-ex", "print *(int *)($ss_base + $ebp + 12)",
             "-ex", "print total", "-ex", "info threads",
             "-ex", "delete", "-ex", "continue"],
            capture_output=True, text=True, timeout=120, check=False)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    transcript = gdb.stdout + gdb.stderr
    assert "hit Breakpoint 1, add (" in transcript, transcript
    assert "in section .text.obs.1" in transcript  # the label of the served symbol file
    assert "=> 0x" in transcript
    assert "$1 = 40" in transcript, transcript
    assert "$2 = 5" in transcript, transcript  # the global, by name, before the first add
    assert "thread 1 of obs (pid 1), running" in transcript
    assert "exited with code 0173" in transcript, transcript  # gdb prints it in octal
    assert out == "x=123 total=452\n"
    assert _cycles(err) == cycles
