"""Sweeps behind ``lavsim sweep`` (issue 6): how each mechanism's cost moves with one knob.

- ``size``: argument/message bytes 0..4096 (migration switches from gate parameters to a
  shared segment above 124 bytes);
- ``threads``: 0..8 other runnable threads (each yields when it runs): the wait for
  scheduling that message RPC pays on both hand-overs and migration and handoff avoid;
- ``working-set``: the server reads 1..64 pages of its own data per call: the TLB refill after
  a CR3 load (message RPC between groups), against TLB hits inside one address space;
- ``tlb``: data-TLB entries (4-way) with global pages (CR4.PGE) on and off, at a fixed
  working set.

Every point is a full :func:`~lavsim.experiments.rpc.measure_call` (its own boot), so every
figure is measured in the run. Every point's workload is built before the first runs, so a bad
value is refused (:class:`~lavsim.errors.ConfigError` naming ``values``) before anything runs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from lavsim.errors import ConfigError
from lavsim.experiments.mechanisms import MECHANISMS, Mechanism
from lavsim.experiments.rpc import CallCost, measure_call, plural
from lavsim.experiments.workload import Workload, check_distinct, check_profile
from lavsim.models import ModelSpec

__all__ = ["SWEEPS", "Sweep", "SweepPoint", "SweepResult", "run_sweep"]

Progress = Callable[[int, int, str], None]


@attrs.frozen
class Sweep:
    """One knob: its default values, how a value shapes the workload, and the second figure
    printed beside the cycles."""

    name: str
    title: str
    values: tuple[int, ...]
    metric: str
    metric_label: str


SWEEPS: dict[str, Sweep] = {
    s.name: s
    for s in (
        Sweep("size", "argument / message bytes", tuple(range(0, 4097, 512)),
              "bytes_copied", "bytes copied per call"),
        Sweep("threads", "other runnable threads", tuple(range(9)), "context_switches",
              "context switches per call"),
        Sweep("working-set", "server working set (pages)", (1, 2, 4, 8, 16, 32, 64),
              "tlb_misses", "TLB misses per call"),
        Sweep("tlb", "data-TLB entries", (8, 16, 32, 64, 128), "tlb_misses",
              "TLB misses per call"),
    )
}  # fmt: skip


@attrs.frozen
class SweepPoint:
    """One mechanism at one value of the knob (``pge``: global pages, for the tlb sweep)."""

    value: int
    pge: bool
    cost: CallCost


@attrs.frozen
class SweepResult:
    """The points of one sweep, with its base workload."""

    sweep: Sweep
    base: Workload
    points: tuple[SweepPoint, ...]

    def _key(self, p: SweepPoint) -> str:
        if self.sweep.name == "tlb":
            return f"{p.value} {'PGE on' if p.pge else 'PGE off'}"
        return str(p.value)

    def records(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for p in self.points:
            w, c = p.cost.warm, p.cost
            record: dict[str, object] = {
                "sweep": self.sweep.name, "profile": c.profile, "value": p.value,
            }
            if self.sweep.name == "tlb":
                record["global_pages"] = p.pge
            record.update({
                "mechanism": c.mechanism.key, "warm_cycles": round(w.cycles, 2),
                "cold_cycles": c.cold.cycles, "instructions": w.instructions,
                "kernel_entries": w.kernel_entries, "context_switches": w.context_switches,
                "cr3_loads": w.cr3_loads, "tlb_misses": w.tlb_misses,
                "bytes_copied": w.bytes_copied,
                "tlb_refill_cycles": round(w.phases["TLB refill"], 2),
                "other_threads_cycles": round(w.phases["other threads"], 2),
            })  # fmt: skip
            board = c.workload.board_spec
            if not board.ideal:
                record["board"] = board.name
                record["memory_stall_cycles"] = round(w.phases["memory stalls"], 2)
                record["cold_memory_stall_cycles"] = round(c.cold.phases["memory stalls"], 2)
            out.append(record)
        return out

    def to_json(self) -> str:
        return json.dumps(self.records(), indent=1)

    def to_csv(self) -> str:
        records = self.records()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()

    def to_text(self) -> str:
        lines: list[str] = []
        mechs = list(dict.fromkeys(p.cost.mechanism for p in self.points))
        width = max(14, *(len(m.key) + 2 for m in mechs))
        keyw = 16
        for profile in dict.fromkeys(p.cost.profile for p in self.points):
            pts = [p for p in self.points if p.cost.profile == profile]
            keys = list(dict.fromkeys(self._key(p) for p in pts))
            cell = {(self._key(p), p.cost.mechanism.key): p.cost for p in pts}
            w = self.base
            fixed = {"size": f"size {w.size} B", "threads": f"{w.other_threads} other threads",
                     "working-set": f"working set {w.working_set} pages"}
            context = ", ".join(v for k, v in fixed.items() if k != self.sweep.name)
            board = pts[0].cost.workload.board_spec
            on = "" if board.ideal else f" on board {board.name}"
            lines.append(
                f"== sweep {self.sweep.name} on {profile}{on}: {self.sweep.title} "
                f"({context}, {plural(w.calls - 1, 'warm call')}) =="
            )
            def cycles(c: CallCost) -> float:
                return c.warm.cycles

            def second(c: CallCost, metric: str = self.sweep.metric) -> float:
                return float(getattr(c.warm, metric))

            blocks: tuple[tuple[str, Callable[[CallCost], float], str], ...] = (
                ("warm cycles per call", cycles, ",.1f"),
                (self.sweep.metric_label, second, ",.1f"),
            )
            for label, get, fmt in blocks:
                lines.append(f"-- {label} --")
                lines.append(f"{self.sweep.name:>{keyw}}" + "".join(
                    f"{m.key:>{width}}" for m in mechs))
                for key in keys:
                    lines.append(f"{key:>{keyw}}" + "".join(
                        f"{format(get(cell[key, m.key]), fmt):>{width}}" for m in mechs))
            lines.append("")
        return "\n".join(lines)

    def render(self, fmt: str) -> str:
        if fmt == "table":
            return self.to_text()
        if fmt == "csv":
            return self.to_csv()
        if fmt == "json":
            return self.to_json()
        raise ConfigError("format", f"one of table, csv, json, not {fmt!r}")


#: The workload field each sweep sets.
_FIELDS = {"size": "size", "threads": "other_threads", "working-set": "working_set",
           "tlb": "tlb_entries"}


def _knob(name: str, value: int) -> dict[str, Any]:
    """The Workload field the sweep ``name`` sets, as keyword arguments."""
    return {_FIELDS[name]: value}


def run_sweep(
    name: str,
    *,
    profiles: Sequence[ModelSpec] = ("i486",),
    values: Sequence[int] | None = None,
    mechanisms: Sequence[Mechanism] = tuple(MECHANISMS.values()),
    base: Workload | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Run the sweep ``name`` (see :data:`SWEEPS`) over ``values`` (default: the sweep's)
    for each profile and mechanism, around the workload ``base``."""
    if name not in SWEEPS:
        raise ConfigError("sweep", f"one of {sorted(SWEEPS)}, not {name!r}")
    sweep = SWEEPS[name]
    base = base or Workload(working_set=4 if name == "tlb" else 0)
    values = tuple(values) if values is not None else sweep.values
    check_distinct("values", values)
    try:
        models = {check_profile(p).name: check_profile(p) for p in profiles}
    except ConfigError as error:
        raise ConfigError("profiles", str(error)[len(error.field) + 2:]) from None
    check_distinct("profiles", [check_profile(p).name for p in profiles])
    check_distinct("mechanisms", tuple(m.key for m in mechanisms))
    pges = (True, False) if name == "tlb" else (base.global_pages,)
    works = {}
    for profile in models:
        for value in values:
            for pge in pges:
                try:
                    works[profile, value, pge] = attrs.evolve(
                        base, profile=models[profile], global_pages=pge,
                        **_knob(name, value))
                except ConfigError as error:
                    if error.field != _FIELDS[name]:
                        raise
                    raise ConfigError("values", f"{value}: {str(error)[len(error.field) + 2:]}")\
                        from None
    jobs = [(p, v, g, m) for p in models for v in values for g in pges for m in mechanisms]
    points = []
    for k, (profile, value, pge, mech) in enumerate(jobs):
        if progress is not None:
            progress(k, len(jobs), f"{profile} {name}={value} {mech.key}")
        points.append(SweepPoint(value, pge, measure_call(mech, works[profile, value, pge])))
    if progress is not None:
        progress(len(jobs), len(jobs), "done")
    return SweepResult(sweep, base, tuple(points))
