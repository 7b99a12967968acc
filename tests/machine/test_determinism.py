"""Determinism: the same system and inputs give identical cycles, registers, memory hash, TLB
statistics and console, in one process and across processes with different hash seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import lavsim

# A kernel workload with every source of nondeterminism a host could bring in: two groups
# (CR3 switches), timer preemption, console output, a faulting thread, the Pentium TLBs, dicts
# and sets of host bookkeeping. It prints one JSON line of everything a run determines.
WORKLOAD = r'''
import json, sys
from lavsim.kernel import LavenderSystem
from lavsim.snapshot import take_snapshot
WORKER = """
main:
    mov esi, eax
    mov edi, 0
round:
    mov ecx, 40
work:
    inc dword ptr [4]
    dec ecx
    jnz work
    push esi
    mov eax, 4
    mov ebx, esp
    mov ecx, 1
    mov edx, 0x17
    int 0x30
    pop eax
    inc edi
    cmp edi, 3
    jne round
    mov eax, 0
    mov ebx, edi
    int 0x30
"""
system = LavenderSystem(profile=sys.argv[1], memory_size=8 << 20, timer_period=650)
for letter in "abcd":
    group = system.create_group()
    process = system.create_process(group, WORKER, data_size=16, max_threads=2)
    system.create_thread(process, "main", args=(ord(letter),))
bad = system.create_process(system.groups[0], image=bytes([0x0F, 0x0B]))
system.create_thread(bad, 0)
outcome = system.run(max_cycles=3_000_000)
cpu = system.machine.cpu
print(json.dumps({
    "status": outcome.status, "cycles": outcome.cycles, "instructions": outcome.instructions,
    "regs": cpu.regs, "eip": cpu.eip, "eflags": cpu.get_eflags(), "tsc": cpu.tsc,
    "memory": system.machine.memory.digest(), "state": system.machine.state_digest(),
    "tlb": repr(system.machine.mmu.stats), "console": system.console,
    "stats": system.stats().table(), "snapshot": take_snapshot(system.machine).digest(),
}))
'''


def _run_in_subprocess(profile: str, hash_seed: str) -> dict[str, object]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = hash_seed
    # The child imports the same lavsim sources as this process.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(lavsim.__file__).parents[2]), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run([sys.executable, "-c", WORKLOAD, profile], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_same_workload_gives_the_same_digests_in_processes_with_other_hash_seeds() -> None:
    for profile in ("i486", "pentium"):
        first = _run_in_subprocess(profile, "0")
        second = _run_in_subprocess(profile, "4242")
        assert first["status"] == "done", first
        assert first == second


def test_the_same_workload_twice_in_one_process_is_identical() -> None:
    outputs = []
    for _ in range(2):
        namespace: dict[str, object] = {}
        argv = sys.argv
        sys.argv = ["workload", "pentium"]
        try:
            buffer = StringIO()
            with redirect_stdout(buffer):
                exec(WORKLOAD, namespace)
        finally:
            sys.argv = argv
        outputs.append(json.loads(buffer.getvalue()))
    assert outputs[0] == outputs[1]
    assert outputs[0]["status"] == "done"
