"""Fuzzing at scale (issue 19): seeded, resumable runs of many random systems, counted in guest
instructions.

Two kinds of case, alternated so that each gets about half the instructions:

- **bare**: a bare machine at CPL 0 or 3 (``fuzzkit.bare_machine``) whose code mixes the ISA
  table's instructions, random bytes and system snippets -- MOV to CR0/CR3/CR4 with random
  values, LGDT/LIDT of random tables, loads of random selectors into the segment registers,
  LLDT/LTR, far JMP/CALL, INT n, INVLPG -- over random descriptors in the live GDT (code, data,
  system, call gates), a random alternative GDT and IDT, random page tables (identity mapped
  with random holes, read-only and supervisor pages, frames beyond memory, 4 MiB pages) and
  random IDT gates. Every run must stop with a machine stop reason; one case in eight is run
  again on the per-step path (a step observer) and must give the same instructions and state
  digest; every final state must survive ``take_snapshot``/``restore_snapshot`` (the restore's
  architectural checks must accept every state a run reaches).
- **kernel**: a Lavender system with a well-behaved thread and one to three user processes whose
  code mixes system calls (every number 0..63 in turn, and random ones, with random arguments:
  small, pointers into the process's data, huge), the ISA table's instructions and random
  bytes, run in random slices (so kernel paths are cut at random points); after every slice the
  kernel is settled and ``check_kernel_consistency`` must find nothing, and the kernel must
  never panic. The well-behaved thread must finish with its result.

Every case is a pure function of ``(seed, kind, index)``, and the totals are saved after each
case to a JSON state file, so a run stopped at any point resumes where it was
(:func:`fuzz`). Run it from the command line::

    PYTHONPATH=src:tests/kits python tests/kits/deepfuzz.py --instructions 1000000 \\
        --seed 1 --state /tmp/deepfuzz.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from fuzzkit import CODE, bare_machine, encodings

from lavsim.errors import ConfigError
from lavsim.kernel import LavenderSystem
from lavsim.kernel.invariants import check_kernel_consistency, settle
from lavsim.machine import Machine
from lavsim.mmu.descriptors import GateDescriptor, SegmentDescriptor, SystemDescriptor
from lavsim.snapshot import restore_snapshot, take_snapshot

REASONS = {"halted", "instruction_limit", "cycle_limit", "triple_fault", "bus_error"}
STATUSES = {"done", "cycle_limit", "idle", "deadlock"}

GDT, GDT_SLOTS = 0x1000, 64       # fuzzkit's live GDT (setup_flat_protected_mode's)
GDT2, IDT2, PSEUDO = 0x5000, 0x6000, 0x7000
PAGE_DIR, PAGE_TABLE = 0x8000, 0x9000
BARE_BUDGET = 20_000              # instructions per bare run
KERNEL_CYCLES = (100_000, 500_000)

#: The well-behaved thread: 40 rounds of 500 additions, yielding between rounds; exits with
#: the sum, GOOD_RESULT.
GOOD = """
main:
    xor eax, eax
    mov edi, 40
outer:
    mov ecx, 500
again:
    add eax, ecx
    loop again
    push eax
    mov eax, 1                   # yield
    int 0x30
    pop eax
    dec edi
    jnz outer
    mov dword ptr [0], eax
    mov ebx, eax
    mov eax, 0                   # exit(the sum)
    int 0x30
"""
GOOD_RESULT = 40 * sum(range(1, 501))


def _u32(rng: random.Random) -> int:
    """A 32-bit value biased towards the interesting ones."""
    pick = rng.random()
    if pick < 0.3:
        return rng.randrange(0x100)
    if pick < 0.5:
        return rng.randrange(0x40000)
    if pick < 0.6:
        return rng.choice([0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0xFFFFF000, 0x1000])
    return rng.getrandbits(32)


def _imm32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "little")


def _selector(rng: random.Random) -> int:
    return (rng.randrange(GDT_SLOTS + 8) << 3) | rng.randrange(8)


# --- bare machines ------------------------------------------------------------------------------


def _descriptor(rng: random.Random) -> bytes:
    """A random descriptor: code/data, system (TSS, LDT), a call gate, or random bits."""
    pick = rng.random()
    limit = rng.choice([0xFFFFF, 0x3F, 0x3FFFF, rng.randrange(1 << 20)])
    dpl = rng.randrange(4)
    if pick < 0.5:
        return SegmentDescriptor(
            rng.choice([0, 0, 0x1000, rng.getrandbits(32)]), limit, rng.randrange(16), dpl,
            present=rng.random() < 0.9, db=rng.random() < 0.8, g=rng.random() < 0.5,
        ).encode()
    if pick < 0.65:
        return SystemDescriptor(rng.choice([0x2800, rng.getrandbits(20)]), limit,
                                rng.choice([2, 9, 11]), dpl=dpl,
                                present=rng.random() < 0.9).encode()
    if pick < 0.85:
        kind = rng.choice([0xC, 0xC, 0x5, 0xE, 0xF])
        params = rng.randrange(32) if kind == 0xC and rng.random() < 0.5 else 0
        offset = 0 if kind == 0x5 else rng.choice([CODE, rng.getrandbits(32)])
        return GateDescriptor(kind, _selector(rng), offset, params, dpl,
                              present=rng.random() < 0.9).encode()
    return rng.getrandbits(64).to_bytes(8, "little")


def _page_tables(rng: random.Random) -> tuple[bytes, bytes]:
    """A page directory and one page table: the first 4 MiB identity mapped (random holes,
    read-only, supervisor, remapped and beyond-memory frames), sometimes 4 MiB pages."""
    directory = bytearray(4096)
    table = bytearray(4096)
    for k in range(1024):
        flags = 0x7
        r = rng.random()
        if r < 0.03:
            flags &= ~1
        elif r < 0.06:
            flags &= ~2
        elif r < 0.09:
            flags &= ~4
        frame = k << 12
        if rng.random() < 0.02:
            frame = rng.getrandbits(20) << 12
        table[4 * k:4 * k + 4] = _imm32(frame | flags | (0x60 if rng.random() < 0.3 else 0))
    directory[0:4] = _imm32(PAGE_TABLE | 0x7)
    for k in range(1, rng.randrange(1, 6)):
        entry = (rng.getrandbits(10) << 22) | 0x87 if rng.random() < 0.5 else _u32(rng)
        directory[4 * rng.randrange(1024):][:4] = _imm32(entry)
        del k
    return bytes(directory), bytes(table)


def _system_snippet(rng: random.Random) -> bytes:
    """One system-level action with random operands."""
    pick = rng.randrange(12)
    if pick == 0:  # mov cr0, eax: PE|ET with random PG/WP/CD/NW/TS/other bits
        value = 0x11 | rng.choice([0, 0, 1 << 31, 1 << 16, 1 << 30, 1 << 29, 8, _u32(rng)])
        if rng.random() < 0.5:
            value |= 1 << 31
        return b"\xb8" + _imm32(value) + b"\x0f\x22\xc0"
    if pick == 1:  # mov cr3, eax
        return b"\xb8" + _imm32(rng.choice([PAGE_DIR, PAGE_DIR, _u32(rng)])) + b"\x0f\x22\xd8"
    if pick == 2:  # mov cr4, eax: PSE/PGE/TSD/DE/MCE, now and then an unknown bit
        value = rng.choice([0x10, 0x80, 0x90, 0x4, 0x8, 0x40, 0, 1 << rng.randrange(32)])
        return b"\xb8" + _imm32(value) + b"\x0f\x22\xe0"
    if pick == 3:  # lgdt / lidt of the alternative tables or of random pseudo-descriptors
        return rng.choice([b"\x0f\x01\x15", b"\x0f\x01\x1d"]) + _imm32(
            PSEUDO + 8 * rng.randrange(4))
    if pick in (4, 5):  # mov sreg, ax
        sreg = rng.choice([b"\x8e\xd8", b"\x8e\xc0", b"\x8e\xe0", b"\x8e\xe8", b"\x8e\xd0"])
        return b"\x66\xb8" + _selector(rng).to_bytes(2, "little") + sreg
    if pick == 6:  # lldt ax / ltr ax
        return (b"\x66\xb8" + _selector(rng).to_bytes(2, "little")
                + rng.choice([b"\x0f\x00\xd0", b"\x0f\x00\xd8"]))
    if pick == 7:  # far jmp / call
        return (rng.choice([b"\xea", b"\x9a"]) + _imm32(rng.choice([CODE, _u32(rng)]))
                + _selector(rng).to_bytes(2, "little"))
    if pick == 8:
        return b"\xcd" + bytes([rng.randrange(256)])
    if pick == 9:  # invlpg [eax]
        return b"\xb8" + _imm32(_u32(rng)) + b"\x0f\x01\x38"
    if pick == 10:  # iretd / retf with random frames on the stack
        return (b"\x68" + _imm32(_u32(rng)) + b"\x68" + _imm32(_selector(rng))
                + b"\x68" + _imm32(_u32(rng)) + rng.choice([b"\xcf", b"\xcb"]))
    return b"\xfb" if rng.random() < 0.5 else b"\xfa"  # sti / cli


def bare_case(seed: int, index: int) -> tuple[Machine, int, bool]:
    """The machine of bare case ``index``, its budget and whether to compare the paths."""
    rng = random.Random(f"{seed}:bare:{index}")
    table = encodings()
    pieces = []
    for _ in range(rng.randrange(10, 80)):
        r = rng.random()
        if r < 0.55:
            pieces.append(table[rng.randrange(len(table))])
        elif r < 0.85:
            pieces.append(_system_snippet(rng))
        else:
            pieces.append(rng.randbytes(rng.randrange(1, 9)))
    if rng.random() < 0.5:
        pieces.append(b"\xe9" + _imm32(-(sum(map(len, pieces)) + 5)))  # loop back to the start
    # Then HLTs (at CPL 3 each is #GP, whose stub returns one byte further), not the zeros of
    # fresh memory: ADD [EAX], AL entered at every offset after faults would make every
    # instruction a new 64-instruction block to decode (a speed pathology, not a finding).
    cpl = rng.choice([0, 3])
    regs = [_u32(rng) for _ in range(8)]
    code = b"".join(pieces)
    m = bare_machine(code, cpl, regs, rng.choice(["i486", "pentium"]))
    # Free memory holds HLT, not zeros (see above): wherever a far transfer lands.
    hlt = b"\xf4"
    for start, end in ((0, GDT), (GDT + 8 * GDT_SLOTS, 0x2000), (0x2868, 0x4000),
                       (0xA000, CODE)):
        m.load(start, hlt * (end - start))
    for vector in range(256):  # after each 16-byte IDT stub of fuzzkit's
        stub = m.peek(0x4000 + 16 * vector, 16) or b""
        used = len(stub.rstrip(b"\0")) if stub.rstrip(b"\0").endswith(b"\xcf") else 16
        m.load(0x4000 + 16 * vector + used, hlt * (16 - used))
    m.load(CODE + len(code), b"\xf4" * (m.memory.size - CODE - len(code)))
    for slot in range(6, GDT_SLOTS):
        if rng.random() < 0.5:
            m.load(GDT + 8 * slot, _descriptor(rng))
    m.load(GDT2, b"".join(_descriptor(rng) for _ in range(32)))
    m.load(IDT2, b"".join(_descriptor(rng) for _ in range(256)))
    for vector in rng.sample(range(256), rng.randrange(4)):  # broken gates in the live IDT
        m.load(0x2000 + 8 * vector, _descriptor(rng))
    pseudo = [(GDT_SLOTS * 8 - 1, GDT), (32 * 8 - 1, GDT2), (256 * 8 - 1, IDT2),
              (rng.getrandbits(16), rng.getrandbits(32))]
    m.load(PSEUDO, b"".join(limit.to_bytes(2, "little") + _imm32(base) + bytes(2)
                            for limit, base in pseudo))
    directory, page_table = _page_tables(rng)
    m.load(PAGE_DIR, directory)
    m.load(PAGE_TABLE, page_table)
    return m, BARE_BUDGET, rng.random() < 0.125


def run_bare_case(seed: int, index: int, counts: Counter[str]) -> tuple[int, list[str]]:
    """Run one bare case; the instructions it retired and what went wrong (nothing, we hope)."""
    problems: list[str] = []
    m, budget, compare = bare_case(seed, index)
    result = m.run(max_instructions=budget, max_cycles=budget * 60)
    if result.reason not in REASONS:
        problems.append(f"stop reason {result.reason!r}")
    if compare:
        counts["path_comparisons"] += 1
        stepped, _, _ = bare_case(seed, index)
        stepped.add_observer(lambda *step: None)
        again = stepped.run(max_instructions=budget, max_cycles=budget * 60)
        if (again.reason, again.instructions, stepped.state_digest()) != (
            result.reason, result.instructions, m.state_digest()
        ):
            problems.append(f"block and step paths differ: {result} / {again}")
    snapshot = take_snapshot(m)
    restore_snapshot(m, snapshot)
    counts["snapshot_restores"] += 1
    if take_snapshot(m).digest() != snapshot.digest():
        problems.append("a snapshot does not restore to itself")
    return m.cpu.instructions, problems


# --- user code under the kernel -----------------------------------------------------------------

_ARG_REGS = (b"\xbb", b"\xb9", b"\xba", b"\xbe", b"\xbf")  # mov ebx/ecx/edx/esi/edi, imm32


def _syscall(rng: random.Random, number: int) -> bytes:
    out = b"\xb8" + _imm32(number)
    for op in _ARG_REGS:
        out += op + _imm32(rng.choice([_u32(rng), rng.randrange(0, 4096, 4), 0x17, 0, 1]))
    return out + b"\xcd\x30"


def _user_image(rng: random.Random, first_call: int) -> bytes:
    table = encodings()
    pieces = []
    call = first_call
    for _ in range(rng.randrange(5, 60)):
        r = rng.random()
        if r < 0.6:
            pieces.append(_syscall(rng, call % 64 if rng.random() < 0.8 else _u32(rng)))
            call += 1
        elif r < 0.95:
            pieces.append(table[rng.randrange(len(table))])
        else:
            pieces.append(rng.randbytes(rng.randrange(1, 9)))
    if rng.random() < 0.8:  # loop back to the start: live on until a fault
        pieces.append(b"\xe9" + _imm32(-(sum(map(len, pieces)) + 5)))
    return b"".join(pieces)


def run_kernel_case(seed: int, index: int, counts: Counter[str]
                    ) -> tuple[int, list[str], bool]:
    """Run one kernel case: the instructions retired, the problems found, and whether the
    kernel panicked."""
    rng = random.Random(f"{seed}:kernel:{index}")
    problems: list[str] = []
    system = LavenderSystem(profile=rng.choice(["i486", "pentium"]), memory_size=8 << 20,
                            timer_period=rng.randrange(1_500, 8_000), observe=False)
    group = system.create_group()
    good_process = system.create_process(group, GOOD, data_size=64)
    good = system.create_thread(good_process, "main")
    for k in range(rng.randrange(1, 4)):
        process = system.create_process(
            rng.choice([group, system.create_group()]), image=_user_image(rng, 64 * index + k),
            data_size=4096, stack_size=1024, max_threads=2)
        registers = {r: _u32(rng) for r in ("eax", "ecx", "edx", "ebx", "ebp", "esi", "edi")}
        system.create_thread(process, 0, registers=registers)
    total = rng.randrange(*KERNEL_CYCLES)
    spent = 0
    panicked = False
    good_alive = True
    while spent < total:
        budget = rng.choice([rng.randrange(1, 500), rng.randrange(500, 20_000),
                             rng.randrange(20_000, 200_000)])
        before = system.machine.cpu.tsc
        outcome = system.run(max_cycles=budget)
        spent += max(1, system.machine.cpu.tsc - before)
        if system.panic_report() is not None or outcome.status == "panic":
            problems.append(f"kernel panic: {system.panic_report()}")
            panicked = True
            break
        if outcome.status not in STATUSES:
            problems.append(f"run status {outcome.status!r}")
            break
        if settle(system):
            found = check_kernel_consistency(system)
            counts["invariant_checks"] += 1
            if found:
                problems.append(f"invariants after a slice of {budget} cycles: {found[:3]}")
                break
        elif not system.machine.cpu.shutdown:
            problems.append(f"did not settle after a slice of {budget} cycles")
        if good_alive:
            good_alive = _check_good(system, good, problems)
        if outcome.status != "cycle_limit":
            break
    return system.machine.cpu.instructions, problems, panicked


def _check_good(system: LavenderSystem, good: Any, problems: list[str]) -> bool:
    """Whether the well-behaved thread still runs; once it has ended, that it exited with its
    result. (Its id may be reused by a thread created in the same slice: then it has ended
    and its result cannot be read back any more.)"""
    try:
        state = system.thread_state(good)
    except ConfigError:
        return False
    if state.state != "dead":
        return True
    if (state.exit_code, state.fault) != (GOOD_RESULT, None):
        problems.append(f"the well-behaved thread ended as {state}")
    return False


# --- the driver ---------------------------------------------------------------------------------

_FRESH: dict[str, Any] = {
    "instructions": 0, "bare_instructions": 0, "kernel_instructions": 0, "bare_systems": 0,
    "kernel_systems": 0, "exceptions": 0, "panics": 0, "problems": 0, "failures": [],
    "seconds": 0.0, "invariant_checks": 0, "path_comparisons": 0, "snapshot_restores": 0,
}


def load_state(path: str | None, seed: int) -> dict[str, Any]:
    """The saved totals of an earlier run with ``seed`` (to resume), or fresh ones."""
    if path and os.path.exists(path):
        with open(path) as f:
            state: dict[str, Any] = json.load(f)
        if state.get("seed") != seed:
            raise ValueError(f"{path} holds a run with seed {state.get('seed')}, not {seed}")
        return state
    return {"seed": seed, **json.loads(json.dumps(_FRESH))}


def _save(path: str | None, state: dict[str, Any]) -> None:
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, path)


def fuzz(instructions: int, seed: int = 1, state_path: str | None = None,
         progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run cases until ``instructions`` guest instructions have been executed in all (counting
    those of an earlier run resumed from ``state_path``); returns the totals. A Python exception
    from a case is caught, counted and recorded with the case's id (it is what must not
    happen)."""
    state = load_state(state_path, seed)
    while state["instructions"] < instructions:
        kernel = state["kernel_instructions"] < state["bare_instructions"]
        kind = "kernel" if kernel else "bare"
        index = state[f"{kind}_systems"]
        started = time.perf_counter()
        counts: Counter[str] = Counter()
        problems: list[str] = []
        done = 0
        try:
            if kernel:
                done, problems, panicked = run_kernel_case(seed, index, counts)
                state["panics"] += panicked
            else:
                done, problems = run_bare_case(seed, index, counts)
        except Exception as error:  # the thing the fuzz hunts: record it and go on
            state["exceptions"] += 1
            where = traceback.extract_tb(error.__traceback__)[-1]
            problems = [f"{type(error).__name__}: {error} ({where.filename}:{where.lineno})"]
            done = max(done, 1)
        for name, n in counts.items():
            state[name] = state.get(name, 0) + n
        state[f"{kind}_systems"] += 1
        state[f"{kind}_instructions"] += done
        state["instructions"] += done
        state["problems"] += len(problems)
        if problems and len(state["failures"]) < 50:
            state["failures"].append({"kind": kind, "index": index, "problems": problems})
        state["seconds"] += time.perf_counter() - started
        _save(state_path, state)
        if progress is not None:
            progress(state)
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instructions", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--state", default=None, help="JSON file to save to and resume from")
    args = parser.parse_args()
    last = [0.0]

    def show(state: dict[str, Any]) -> None:
        if time.monotonic() - last[0] > 30:
            last[0] = time.monotonic()
            print({k: v for k, v in state.items() if k != "failures"}, flush=True)

    state = fuzz(args.instructions, args.seed, args.state, show)
    print(json.dumps(state, indent=1))


if __name__ == "__main__":
    main()
