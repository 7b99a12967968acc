"""``lavsim cycles``: a cycle calculator for code snippets (in the spirit of llvm-mca, uiCA).

:func:`measure` assembles an Intel-syntax snippet at :data:`CODE`, runs it on a bare machine
(flat 32-bit protected mode, ring 0, paging on with an identity map of the first 4 MiB) and
reports, per instruction, the pipe it issued in (U, V, or alone), the cycle it issued in and
its stalls with their reasons, then the cycles per iteration.

What is counted:

- a snippet that never comes back to its first instruction is run twice; the first pass warms
  the TLBs and the BTB and is not counted. Before each pass the registers are set again and
  the pipes are emptied (:meth:`~lavsim.cpu.core.CPU.issue_break`), so no instruction of
  lavsim's own pairs with the snippet or stalls it; a pass ends when EIP leaves the snippet;
- a snippet that branches back to its first instruction is a loop: it runs ``warmup``
  iterations, then ``iterations`` more whose mean is reported (steady state); the
  per-instruction view shows the last iteration.

Registers at the start (:data:`START_REGISTERS`): EBX, ESI, EDI, EDX and EBP point at zeroed,
mapped data pages 64 KiB apart, ESP at the top of a stack page, ECX = 1,000,000 (a counted
loop keeps running), EAX = 0; ``registers`` overrides them and ``memory`` presets bytes.
Cycles are the TSC: what the profile charges (figures, issue model, page walks) and, on a
``board`` with caches (:mod:`lavsim.boards`; default ``ideal``, every access hits), what its
memory hierarchy adds: an instruction that waited for memory (a cache miss, a full write
buffer, a locked cycle) shows the stall ``memory +N``. The warm-up pass (or iterations) fills
the caches too, so a measured miss is one the snippet's working set causes in steady state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

from lavsim.cpu.asm import assemble
from lavsim.cpu.disasm import disassemble_one
from lavsim.cpu.isa import REG32
from lavsim.errors import ConfigError
from lavsim.machine import Machine, MachineConfig
from lavsim.models import ModelSpec, get_model

__all__ = ["CODE", "START_REGISTERS", "CyclesReport", "Row", "measure"]

#: Where the snippet is assembled.
CODE = 0x100000
#: The registers at the start of every pass (module docstring).
START_REGISTERS: Mapping[str, int] = {
    "eax": 0, "ecx": 1_000_000, "edx": 0x140000, "ebx": 0x110000, "esp": 0x1A0000,
    "ebp": 0x150000, "esi": 0x120000, "edi": 0x130000,
}  # fmt: skip
_PD = 0x3000
_PT = 0x4000
_MAX_STEPS = 1_000_000


@attrs.frozen
class Row:
    """One instruction of the measured pass: ``address``, ``text``, ``pipe`` (U, V, alone or
    ``-`` without an issue model), ``issue`` (cycle it issued in, from the pass start),
    ``cycles`` it added to the TSC, ``stalls`` (reason, cycles)."""

    address: int
    text: str
    pipe: str
    issue: int
    cycles: int
    stalls: tuple[tuple[str, int], ...]


@attrs.frozen
class CyclesReport:
    """The result of :func:`measure`: ``loop`` (measured per iteration) or one pass,
    ``iterations`` measured, the ``rows`` of the last one, ``cycles_per_iteration`` and the
    branches mispredicted in the measured part (``mispredicts``)."""

    profile: str
    loop: bool
    iterations: int
    rows: tuple[Row, ...]
    cycles_per_iteration: float
    mispredicts: int
    board: str = "ideal"
    memory_stalls: float = 0.0
    """Cycles per iteration the measured part waited for memory (0 on the ideal board)."""

    def render(self, fmt: str = "table") -> str:
        """``table`` (last line ``cycles per iteration: X``) or ``json``."""
        if fmt == "json":
            return json.dumps(attrs.asdict(self), indent=1) + "\n"
        if fmt != "table":
            raise ConfigError("format", f"must be table or json, not {fmt!r}")
        lines = [
            f"profile {self.profile}; "
            + (f"board {self.board}; " if self.board != "ideal" else "")
            + (f"loop, {self.iterations} iterations measured after the warm-up"
               if self.loop else "one pass measured after a warm-up pass"),
            f"{'address':>8}  {'pipe':<5} {'issue':>5} {'cycles':>6}  {'instruction':<32} stalls",
        ]
        for r in self.rows:
            stalls = ", ".join(f"{why} +{n}" if n else why for why, n in r.stalls)
            lines.append(
                f"{r.address:08x}  {r.pipe:<5} {r.issue:>5} {r.cycles:>6}  {r.text:<32} {stalls}"
            )
        paired = sum(1 for r in self.rows if r.pipe == "V")
        lines.append(f"instructions: {len(self.rows)}, in the V pipe: {paired}, "
                     f"mispredicted branches: {self.mispredicts}")
        if self.board != "ideal":
            mem = self.memory_stalls
            shown_mem = f"{mem:.0f}" if mem == int(mem) else f"{mem:.2f}"
            lines.append(f"memory stalls per iteration: {shown_mem} cycles")
        value = self.cycles_per_iteration
        shown = f"{value:.0f}" if value == int(value) else f"{value:.2f}"
        lines.append(f"cycles per iteration: {shown}")
        return "\n".join(lines) + "\n"


def _machine(model: ModelSpec, code: bytes, board: str) -> Machine:
    m = Machine(MachineConfig(memory_size=4 << 20, profile=model, board=board))
    m.setup_flat_protected_mode(entry=CODE, stack_top=START_REGISTERS["esp"])
    mem = m.memory
    for k in range(1024):  # identity map of the first 4 MiB, present, writable, supervisor
        mem.write(_PT + 4 * k, ((k << 12) | 3).to_bytes(4, "little"))
    mem.write(_PD, (_PT | 3).to_bytes(4, "little"))
    m.load(CODE, code)
    cpu = m.cpu
    cpu.cr3 = _PD
    cpu.mmu.load_cr3(_PD)
    cpu.cr0 |= 1 << 31
    cpu.mmu.set_controls(cpu.cr0, cpu.cr4)
    cpu.flush_decode_cache()
    return m


def _set_registers(m: Machine, regs: Mapping[str, int]) -> None:
    cpu = m.cpu
    for name, value in regs.items():
        cpu.regs[REG32.index(name)] = value & 0xFFFFFFFF
    cpu.eip = CODE
    cpu.issue_break()


def measure(
    source: str,
    profile: ModelSpec = "pentium",
    iterations: int = 10,
    warmup: int = 1,
    registers: Mapping[str, int] | None = None,
    memory: Mapping[int, bytes] | None = None,
    board: str = "ideal",
) -> CyclesReport:
    """Measure ``source`` (module docstring). Bad input raises :class:`ConfigError` or
    :class:`~lavsim.errors.AssemblyError` naming the problem."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError("iterations", f"must be an integer >= 1, not {iterations!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 1 <= warmup <= 1000:
        raise ConfigError("warmup", f"must be an integer in 1..1000, not {warmup!r}")
    model = get_model(profile)
    regs = dict(START_REGISTERS)
    for name, value in (registers or {}).items():
        if name not in REG32:
            raise ConfigError("registers", f"unknown register {name!r}; known: {REG32}")
        regs[name] = value
    program = assemble(source + "\n", CODE)
    if not program.code:
        raise ConfigError("source", "the snippet assembles to no instructions")
    end = program.end
    m = _machine(model, program.code + b"\xf4", board)  # HLT after the snippet
    hierarchy = m.hierarchy
    for address, data in (memory or {}).items():
        m.load(address, data)
    cpu = m.cpu
    marks: list[int] = [0]  # the step index at which each iteration starts
    missed: list[int] = [0]  # the BTB's mispredictions when each iteration starts

    def mispredicts() -> int:
        return 0 if cpu.btb is None else cpu.btb.mispredicts

    def stalled() -> int:
        return 0 if hierarchy is None else hierarchy.stall_cycles

    def run_pass() -> tuple[list[tuple[int, int, int, int]], list[int], bool]:
        """Step until EIP leaves the snippet or enough loop iterations ran."""
        steps: list[tuple[int, int, int, int]] = []
        starts = [cpu.tsc]
        marks[:] = [0]
        missed[:] = [mispredicts()]
        want = warmup + iterations
        for _ in range(_MAX_STEPS):
            eip = cpu.eip
            if not CODE <= eip < end or cpu.halted or cpu.shutdown is not None:
                return steps, starts, len(starts) > 1
            before = cpu.tsc
            waited = stalled()
            m.step()
            steps.append((eip, before, cpu.tsc, stalled() - waited))
            if cpu.eip == CODE:
                starts.append(cpu.tsc)
                marks.append(len(steps))
                missed.append(mispredicts())
                if len(starts) > want:
                    return steps, starts, True
        raise ConfigError("source", f"the snippet did not finish in {_MAX_STEPS} instructions")

    _set_registers(m, regs)
    cpu.issue_log = []
    steps, starts, loop = run_pass()
    if cpu.shutdown is not None:
        raise ConfigError("source", f"the snippet shut the processor down: {cpu.shutdown}")
    if loop:
        if len(starts) <= warmup + 1:
            raise ConfigError("source", "the loop ended before the warm-up was over")
        first = warmup
        done = len(starts) - 1 - first
        per = (starts[-1] - starts[first]) / done
        mem = sum(step[3] for step in steps[marks[first]:]) / done
        wrong = missed[-1] - missed[first]
        last_start = starts[-2]
        log = cpu.issue_log
    else:
        _set_registers(m, regs)
        cpu.issue_log = []
        steps, starts, _ = run_pass()
        wrong = mispredicts() - missed[0]
        done = 1
        per = float(steps[-1][2] - steps[0][1]) if steps else 0.0
        mem = float(sum(step[3] for step in steps))
        last_start = steps[0][1] if steps else cpu.tsc
        log = cpu.issue_log
    # The rows of the last measured pass (iteration); the issue log has one entry per step.
    lo, hi = (marks[-2], marks[-1]) if loop else (0, len(steps))
    window = steps[lo:hi]
    entries = log[lo:hi] if log is not None and len(log) == len(steps) else []
    rows = []
    for k, (eip, before, after, waited) in enumerate(window):
        entry = entries[k] if k < len(entries) else None
        text = _text(m, eip)
        if entry is not None and entry[0] == eip:
            pipe, at, stalls = entry[1], entry[2] - last_start, entry[3]
        else:
            pipe, at, stalls = "-", before - last_start, ()
        if waited:
            stalls = (*stalls, ("memory", waited))
        rows.append(Row(eip, text, pipe, at, after - before, stalls))
    return CyclesReport(
        profile=model.name, loop=loop, iterations=done, rows=tuple(rows),
        cycles_per_iteration=per, mispredicts=wrong, board=m.config.board_spec.name,
        memory_stalls=mem,
    )


def _text(m: Machine, eip: int) -> str:
    return disassemble_one(bytes(m.memory.read(eip, 15)), eip).text
