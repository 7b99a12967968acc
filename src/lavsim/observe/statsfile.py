"""Statistics files: every counter of a run, gem5-like text or JSON, each with its description.

:func:`collect` reads a :class:`~lavsim.kernel.LavenderSystem`: the machine's counters, the
MMU's (:data:`lavsim.mmu.mmu.MMU_COUNTERS`) and each TLB's (:data:`lavsim.mmu.tlb.TLB_COUNTERS`),
declared once in their counter groups and taken from there with their descriptions, and the
kernel observer's window (:class:`~lavsim.kernel.observer.KernelStats`: kernel events, cycles by
CPL, by process and by routine). Names are dotted (``system.mmu.walks``,
``system.dtlb.misses``, ``system.kernel.rows.switch_to.cycles``) under a prefix.

:func:`render_text` gives one line per counter, ``name  value  # description`` between
``Begin``/``End`` markers as gem5's ``stats.txt`` does; :func:`render_json` an object of
``{"value": ..., "description": ...}`` by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import attrs

from lavsim.kernel.system import LavenderSystem
from lavsim.mmu.mmu import MMU_COUNTERS
from lavsim.mmu.tlb import TLB_COUNTERS

__all__ = ["Stat", "collect", "render_json", "render_text", "write_stats"]

#: KernelStats fields that are plain counts, with what they count.
KERNEL_COUNTERS: tuple[tuple[str, str], ...] = (
    ("cycles", "cycles (TSC advance) of the window"),
    ("instructions", "instructions retired in the window"),
    ("idle_cycles", "cycles skipped halted, waiting for an interrupt"),
    ("kernel_entries", "entries into ring 0 from an outer ring (traps, interrupts)"),
    ("syscalls", "system calls (entries of syscall_entry)"),
    ("interrupts", "hardware interrupts delivered"),
    ("context_switches", "switch_to calls that changed the thread"),
    ("ldt_loads", "LLDT executions in switch_to"),
    ("cr3_loads", "CR3 loads in switch_to"),
    ("tlb_misses", "TLB misses in the window"),
    ("tlb_flushes", "TLB flush events in the window"),
    ("page_walk_reads", "paging-entry reads by page walks in the window"),
    ("copies_in", "message copies into kernel buffers (ipc_copy_in)"),
    ("copies_out", "message copies out of kernel buffers (ipc_copy_out)"),
    ("bytes_copied_in", "bytes moved by ipc_copy_in"),
    ("bytes_copied_out", "bytes moved by ipc_copy_out"),
)

MACHINE_COUNTERS: tuple[tuple[str, str], ...] = (
    ("cycles", "cycles since boot (the TSC)"),
    ("instructions", "instructions retired since boot"),
    ("idle_cycles", "cycles skipped in HLT since boot"),
    ("timer_ticks", "interval-timer events"),
    ("interrupts", "interrupts acknowledged at the PIC"),
)


@attrs.frozen
class Stat:
    """One counter: dotted name, value, description."""

    name: str
    value: int
    description: str


def collect(system: LavenderSystem, prefix: str = "system") -> list[Stat]:
    """Every counter of ``system`` now (the kernel rows need ``observe=True``)."""
    machine = system.machine
    out: list[Stat] = []
    mstats = machine.stats()
    for name, text in MACHINE_COUNTERS:
        out.append(Stat(f"{prefix}.machine.{name}", int(getattr(mstats, name)), text))
    mmu = machine.mmu
    for counter in MMU_COUNTERS:
        out.append(Stat(f"{prefix}.mmu.{counter.name}", int(getattr(mmu, counter.name)),
                        counter.description))
    for tlb_name, tstats in mmu.stats.tlbs:
        for counter in TLB_COUNTERS:
            out.append(Stat(f"{prefix}.{tlb_name}.{counter.name}",
                            int(getattr(tstats, counter.name)), counter.description))
    if system.observer is None:
        return out
    kstats = system.stats()
    base = f"{prefix}.kernel"
    for name, text in KERNEL_COUNTERS:
        out.append(Stat(f"{base}.{name}", int(getattr(kstats, name)), text))
    for cpl, cycles in sorted(kstats.cycles_by_cpl.items()):
        out.append(Stat(f"{base}.cycles_by_cpl.{cpl}", cycles,
                        f"non-idle cycles of steps that started at CPL {cpl}"))
    for pid, cycles in sorted(kstats.cycles_by_process.items()):
        what = "the kernel" if pid == 0 else f"process {pid}"
        name = "kernel" if pid == 0 else f"pid{pid}"
        out.append(Stat(f"{base}.cycles_by_process.{name}", cycles,
                        f"cycles of code of {what}"))
    for row, figures in sorted(kstats.rows.items()):
        key = row.strip("<>").replace(" ", "_")
        out.append(Stat(f"{base}.rows.{key}.cycles", figures.cycles,
                        f"cycles attributed to {row}"))
        out.append(Stat(f"{base}.rows.{key}.steps", figures.steps,
                        f"steps attributed to {row}"))
    return out


def render_text(stats: Iterable[Stat]) -> str:
    """gem5-like text: ``name value # description``, one per line."""
    items = list(stats)
    width = max((len(s.name) for s in items), default=10) + 2
    lines = ["", "---------- Begin Simulation Statistics ----------"]
    lines += [f"{s.name:<{width}}{s.value:>16}  # {s.description}" for s in items]
    lines += ["---------- End Simulation Statistics   ----------", ""]
    return "\n".join(lines)


def render_json(stats: Iterable[Stat]) -> str:
    """JSON: ``{name: {"value": v, "description": d}}``."""
    return json.dumps({s.name: {"value": s.value, "description": s.description}
                       for s in stats}, indent=1)


def write_stats(path: str | Path, stats: Iterable[Stat]) -> None:
    """Write ``stats`` as JSON when ``path`` ends in ``.json``, else as text."""
    target = Path(path)
    text = render_json(stats) if target.suffix.lower() == ".json" else render_text(stats)
    target.write_text(text)
