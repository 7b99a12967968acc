"""The RPC cycle table: what one inter-process call costs by each mechanism (issue 6).

:func:`measure_call` boots a workload for one mechanism (:mod:`~lavsim.experiments.mechanisms`)
on the shared harness (:mod:`~lavsim.experiments.harness`), which cuts the run into one window
per call; over each window the kernel's step observer counts cycles (the TSC advance),
instructions, kernel entries, context switches, CR3 loads, TLB misses and the kernel's message
copies, and the phase observer (:mod:`~lavsim.experiments.phases`) sorts the same cycles into
phases. The first call is *cold*; *warm* is the mean of the others. Nothing is a constant:
every figure comes from the guest's instructions and the MMU's events in the run.

:func:`rpc_table` measures every mechanism of :data:`MECHANISMS` at every size on every profile,
plus the two-host rows of :mod:`lavsim.remote`, and :class:`RpcTable` renders them (``lavsim
rpc``).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import statistics
import textwrap
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from lavsim.errors import ConfigError, LavsimError
from lavsim.experiments.forked import can_fork, check_jobs, run_forked
from lavsim.experiments.harness import CallWindow, Harness
from lavsim.experiments.mechanisms import (
    GATE_MAX_BYTES,
    MECHANISMS,
    Mechanism,
    mechanism,
)
from lavsim.experiments.phases import PHASE_ORDER
from lavsim.experiments.workload import PROFILES, Workload, check_distinct, check_profile
from lavsim.kernel.image import kernel_image
from lavsim.models import CpuModel, ModelSpec

__all__ = [
    "DEFAULT_SIZES",
    "GATE_MAX_BYTES",
    "MECHANISMS",
    "PHASE_ORDER",
    "PROFILES",
    "CallCost",
    "Figures",
    "Mechanism",
    "RemoteRow",
    "RpcTable",
    "Workload",
    "measure_call",
    "mechanism",
    "plural",
    "rpc_table",
]

DEFAULT_SIZES = (0, 16, 64, 256, 1024, 4096)


def plural(count: int, noun: str) -> str:
    """``"1 call"``, ``"7 calls"``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@attrs.frozen
class Figures:
    """The counts of one call (cold) or the mean over the warm calls."""

    cycles: float
    instructions: float
    kernel_entries: float
    context_switches: float
    cr3_loads: float
    tlb_misses: float
    message_copies: float
    bytes_copied: float
    gate_calls: float
    phases: dict[str, float]

    @classmethod
    def mean(cls, samples: Sequence[Figures]) -> Figures:
        def avg(get: Callable[[Figures], float]) -> float:
            return statistics.fmean(get(s) for s in samples)

        return cls(
            cycles=avg(lambda s: s.cycles), instructions=avg(lambda s: s.instructions),
            kernel_entries=avg(lambda s: s.kernel_entries),
            context_switches=avg(lambda s: s.context_switches),
            cr3_loads=avg(lambda s: s.cr3_loads), tlb_misses=avg(lambda s: s.tlb_misses),
            message_copies=avg(lambda s: s.message_copies),
            bytes_copied=avg(lambda s: s.bytes_copied), gate_calls=avg(lambda s: s.gate_calls),
            phases={p: statistics.fmean(s.phases[p] for s in samples) for p in PHASE_ORDER},
        )  # fmt: skip


@attrs.frozen
class CallCost:
    """One mechanism under one workload: the cold call and the warm mean, plus each warm
    call's cycles (``samples``)."""

    mechanism: Mechanism
    workload: Workload
    cold: Figures
    warm: Figures
    samples: tuple[int, ...]

    @property
    def profile(self) -> str:
        """The CPU model's name."""
        return self.workload.profile_name

    @property
    def size(self) -> int:
        return self.workload.size


def _figures(call: CallWindow) -> Figures:
    stats, obs = call.stats, call.phases
    return Figures(
        cycles=stats.cycles, instructions=stats.instructions,
        kernel_entries=stats.kernel_entries, context_switches=stats.context_switches,
        cr3_loads=stats.cr3_loads, tlb_misses=stats.tlb_misses,
        message_copies=stats.messages_copied,
        bytes_copied=stats.bytes_copied + obs.gate_bytes + obs.user_copy_bytes,
        gate_calls=obs.gate_calls, phases={p: float(obs.phases[p]) for p in PHASE_ORDER},
    )  # fmt: skip


def measure_call(mech: Mechanism | str, work: Workload | None = None) -> CallCost:
    """Boot the workload for ``mech``, make ``work.calls`` calls and return their cost.

    Raises :class:`~lavsim.errors.LavsimError` if a call returns a wrong result, a window's
    phases do not add up to its cycles, or the client does not run cleanly."""
    mech = mechanism(mech) if isinstance(mech, str) else mech
    work = work or Workload()
    harness = Harness(mech, work)
    windows = harness.run()
    harness.check(windows)
    samples = [_figures(w) for w in windows]
    return CallCost(
        mechanism=mech, workload=work, cold=samples[0], warm=Figures.mean(samples[1:]),
        samples=tuple(int(s.cycles) for s in samples[1:]),
    )


# --- the table -----------------------------------------------------------------------------------


@attrs.frozen
class RemoteRow:
    """A row from the several-hosts benchmark (:func:`lavsim.remote.measure_remote`): a call of
    a 3-argument procedure, its cycles per call, and the same procedure called by local
    migration in that benchmark (the ratio's base)."""

    profile: str
    label: str
    cycles: float
    local_migration: float
    note: str

    @property
    def ratio(self) -> float:
        return self.cycles / self.local_migration


def remote_rows(profile: ModelSpec, latency: int = 2_000, per_byte: int = 1) -> list[RemoteRow]:
    """The rows of :func:`lavsim.remote.rpc_rows`, with the local migration of the same
    benchmark kept for the ratio."""
    from lavsim.remote import measure_remote

    model = check_profile(profile)
    cost = measure_remote(model, latency, per_byte)
    profile = model.name
    note = f"2 hosts, latency {latency}, {per_byte} cycle/byte; 12 argument bytes"
    return [
        RemoteRow(profile, "remote call (network)", cost.remote, cost.local_migration, note),
        RemoteRow(profile, "shipped procedure", cost.shipped, cost.local_migration,
                  f"after one lav_ship of {cost.shipping} cycles; break-even "
                  f"{cost.break_even} calls"),
    ]


_COLUMNS = (
    ("warm", "cycles"), ("cold", None), ("ratio", None), ("instr", "instructions"),
    ("k.entries", "kernel_entries"), ("ctx sw", "context_switches"), ("CR3", "cr3_loads"),
    ("TLB miss", "tlb_misses"), ("copies", "message_copies"), ("bytes copied", "bytes_copied"),
)  # fmt: skip



class Renderable(Protocol):
    """A result that prints as a table, CSV or JSON."""

    def to_text(self) -> str: ...
    def to_csv(self) -> str: ...
    def to_json(self) -> str: ...


def render_as(result: Renderable, fmt: str) -> str:
    """``result`` as ``table``, ``csv`` or ``json`` (:class:`ConfigError` naming ``format``
    for anything else)."""
    formats = {"table": result.to_text, "csv": result.to_csv, "json": result.to_json}
    if fmt not in formats:
        raise ConfigError("format", f"one of table, csv, json, not {fmt!r}")
    return formats[fmt]()

@attrs.frozen
class RpcTable:
    """The table of ``lavsim rpc``: every mechanism at every size on every profile."""

    costs: tuple[CallCost, ...]
    remote: tuple[RemoteRow, ...]

    def base(self, cost: CallCost) -> CallCost:
        """In-group migration under the same workload (the ratio's base)."""
        for c in self.costs:
            if c.mechanism.key == "migration-group" and c.workload == cost.workload:
                return c
        raise LavsimError("no in-group migration under that workload")

    def ratio(self, cost: CallCost) -> float:
        return cost.warm.cycles / self.base(cost).warm.cycles

    def records(self) -> list[dict[str, object]]:
        """One flat record per row (the CSV and JSON forms)."""
        out: list[dict[str, object]] = []
        for c in self.costs:
            record: dict[str, object] = {
                "profile": c.profile, "mechanism": c.mechanism.key, "label": c.mechanism.label,
                "bytes": c.size, "warm_cycles": round(c.warm.cycles, 2),
                "cold_cycles": c.cold.cycles, "ratio": round(self.ratio(c), 3),
                "instructions": c.warm.instructions, "kernel_entries": c.warm.kernel_entries,
                "context_switches": c.warm.context_switches, "cr3_loads": c.warm.cr3_loads,
                "tlb_misses": c.warm.tlb_misses, "message_copies": c.warm.message_copies,
                "bytes_copied": c.warm.bytes_copied, "calls": c.workload.calls,
            }  # fmt: skip
            if not c.workload.default_machine:
                w = c.workload
                record.update({"tlb_entries": w.tlb_entries, "memory_size": w.memory_size,
                               "timer_period": w.timer_period})  # fmt: skip
            board = c.workload.board_spec
            if not board.ideal:
                record["board"] = board.name
            record.update({f"phase {p}": round(c.warm.phases[p], 2) for p in PHASE_ORDER
                           if not (board.ideal and p == "memory stalls")})
            out.append(record)
        for r in self.remote:
            out.append({
                "profile": r.profile, "mechanism": r.label.split(" (")[0].replace(" ", "-"),
                "label": r.label, "bytes": 12, "warm_cycles": round(r.cycles, 2),
                "ratio": round(r.ratio, 3), "note": r.note,
            })  # fmt: skip
        return out

    def to_json(self) -> str:
        return json.dumps(self.records(), indent=1, sort_keys=False)

    def to_csv(self) -> str:
        records = self.records()
        fields: list[str] = []
        for r in records:
            fields.extend(k for k in r if k not in fields)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()

    def _cell(self, c: CallCost, name: str, attr: str | None) -> str:
        if name == "cold":
            return f"{c.cold.cycles:,.0f}"
        if name == "ratio":
            return f"{self.ratio(c):.2f}"
        assert attr is not None
        number = getattr(c.warm, attr)
        if name == "warm":
            return f"{number:,.1f}"
        return f"{number:,.0f}" if name in ("instr", "bytes copied") else f"{number:.1f}"

    def to_text(self) -> str:
        lines: list[str] = []
        profiles = list(dict.fromkeys(c.profile for c in self.costs))
        for profile in profiles:
            costs = [c for c in self.costs if c.profile == profile]
            work = costs[0].workload
            # The profile alone names the default machine; any other is named in full.
            machine = profile if work.default_machine else work.machine()
            board = work.board_spec
            cold = "the first call"
            if not board.ideal:
                if work.default_machine:
                    machine = f"{profile} on board {board.name} ({board.summary()})"
                cold = "the first call, caches empty"
            lines.append(
                f"== {machine}: cycles per call (warm = mean of {plural(work.calls - 1, 'call')}"
                f" after the first; cold = {cold}) =="
            )
            sizes = list(dict.fromkeys(c.size for c in costs))
            ordered = [c for size in sizes for c in costs if c.size == size]
            cells = [[self._cell(c, name, attr) for name, attr in _COLUMNS] for c in ordered]
            # A column is as wide as its name + 2 (at least 8) or its widest value + 1.
            widths = [max(len(name) + 2, 8, *(len(row[k]) + 1 for row in cells))
                      for k, (name, _) in enumerate(_COLUMNS)]
            head = f"{'mechanism':34}{'bytes':>6}" + "".join(
                f"{name:>{w}}" for (name, _), w in zip(_COLUMNS, widths, strict=True)
            )
            lines.append(head)
            lines.append("-" * len(head))
            for c, row in zip(ordered, cells, strict=True):
                lines.append(f"{c.mechanism.label:34}{c.size:>6}" + "".join(
                    f"{v:>{w}}" for v, w in zip(row, widths, strict=True)))
            for r in (r for r in self.remote if r.profile == profile):
                lines.append(
                    f"{r.label:34}{12:>6}{r.cycles:>{widths[0]},.1f}{'':>{widths[1]}}"
                    f"{r.ratio:>{widths[2]}.2f}"
                    f"   ({r.note}; ratio taken to a local migration of "
                    f"{r.local_migration:,.1f} cycles)"
                )
            lines.append("")
            null = [c for c in costs if c.size == min(sizes)]
            lines.append(f"-- {profile}: one warm {min(sizes)}-byte call by phase (cycles, "
                         "from the step observers) --")
            width = 13
            lines.append(f"{'phase':24}" + "".join(f"{c.mechanism.column:>{width}}"
                                                   for c in null))
            for phase in PHASE_ORDER:
                values = [c.warm.phases[phase] for c in null]
                if not any(values):
                    continue
                lines.append(f"{phase:24}" + "".join(f"{v:>{width},.1f}" for v in values))
            lines.append(f"{'total':24}" + "".join(f"{c.warm.cycles:>{width},.1f}"
                                                   for c in null))
            lines.append("")
        lines.extend(textwrap.wrap(
            "ratio: warm cycles / in-group migration's at the same size. bytes copied: kernel "
            "message copies (user -> kernel -> user, both directions), call-gate parameter "
            "copies, and the client's copy into a shared segment (migration above "
            f"{GATE_MAX_BYTES} bytes). copies: kernel message copies.", width=100,
        ))
        return "\n".join(lines)

    def render(self, fmt: str) -> str:
        return render_as(self, fmt)


Progress = Callable[[int, int, str], None]


def _measured(mech: Mechanism, work: Workload) -> tuple[Figures, Figures, tuple[int, ...]]:
    # What a worker sends back: the figures alone (the parent holds the mechanism and the
    # workload, whose CPU model need not be picklable).
    cost = measure_call(mech, work)
    return cost.cold, cost.warm, cost.samples


def _warm(points: Sequence[tuple[Workload, Mechanism]]) -> None:
    # Assemble what the workers share before they fork: the kernel, and the sources of each
    # mechanism that do not depend on the size (servers, call libraries, the filler; migration
    # above the gate's 124 bytes links a library of its own, hence the largest size too),
    # built here on the first point's workload (the systems are thrown away).
    kernel_image()
    first = points[0][0]
    for size in sorted({first.size, max(w.size for w, _ in points)}):
        work = attrs.evolve(first, size=size)
        for mech in dict.fromkeys(m for _, m in points):
            Harness(mech, work)


def _measure_all(
    points: Sequence[tuple[Workload, Mechanism]], remote: Sequence[CpuModel], workers: int,
    progress: Progress | None,
) -> tuple[list[CallCost], list[RemoteRow]]:
    """Every point's cost and every model's remote rows, in the order given, measured on
    ``workers`` forked processes (:func:`~lavsim.experiments.forked.run_forked`).

    Before the fork this process assembles the kernel, which every system boots, and the
    sources every size shares (:func:`_warm`), so no worker assembles them again; a client's
    source depends on the size but not on the CPU model, so the points of one mechanism and
    size form one chunk. The remote rows go first (one chunk: they share their cluster's
    sources), then the largest sizes, so the last chunks handed out are short ones and the
    workers finish together."""
    jobs: list[Callable[[], object]] = [functools.partial(_measured, m, w) for w, m in points]
    labels = [f"{w.profile_name} {m.label} {w.size} B" for w, m in points]
    steps = [1] * len(points)
    if remote:
        jobs.extend(functools.partial(remote_rows, model) for model in remote)
        labels.extend(f"{model.name} remote call and shipping" for model in remote)
        steps.extend(2 for _ in remote)
    groups: dict[tuple[str, int], list[int]] = {}
    for k, (w, m) in enumerate(points):
        groups.setdefault((m.key, w.size), []).append(k)
    chunks = [list(range(len(points), len(jobs)))] if remote else []
    chunks.extend(sorted(groups.values(), key=lambda c: -points[c[0]][0].size))
    total, count = sum(steps), 0
    serial = workers == 1 or len(chunks) <= 1 or not can_fork()  # as run_forked decides

    def done(index: int) -> None:
        nonlocal count
        count += steps[index]
        if progress is not None:
            if serial and index + 1 < len(jobs):
                progress(count, total, labels[index + 1])  # as before: the job about to run
            elif not serial:
                progress(count, total, labels[index])

    if not serial:
        _warm(points)
    if progress is not None and serial and jobs:
        progress(0, total, labels[0])
    results = run_forked(jobs, workers, chunks=chunks, labels=labels, done=done)
    if progress is not None:
        progress(total, total, "done")
    costs = [CallCost(mechanism=m, workload=w, cold=r[0], warm=r[1], samples=r[2])
             for (w, m), r in zip(points, results[:len(points)], strict=True)]
    rows = [row for r in results[len(points):] for row in r]
    return costs, rows


def rpc_table(
    profiles: Sequence[ModelSpec] = PROFILES,
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    calls: int = 8,
    mechanisms: Sequence[Mechanism] = tuple(MECHANISMS.values()),
    remote: bool = True,
    base: Workload | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> RpcTable:
    """Measure every mechanism at every size on every profile (and the remote rows).

    Each measurement runs the workload ``base`` (default :class:`Workload`: its machine, load
    and working set) with the profile, size and ``calls`` replaced. Every workload is built
    before the first measurement, so a bad size or profile is refused (:class:`ConfigError`
    naming ``sizes`` or ``profiles``) before anything runs.

    ``jobs`` > 1 spreads the measurements over that many forked worker processes (see
    :func:`_measure_all`); the table is the same, byte for byte, for every ``jobs``."""
    workers = check_jobs(jobs)
    base = base or Workload()
    sizes = list(sizes)
    try:
        models = [check_profile(p) for p in profiles]
    except ConfigError as error:
        raise ConfigError("profiles", str(error)[len(error.field) + 2:]) from None
    check_distinct("profiles", [m.name for m in models])
    check_distinct("sizes", sizes)
    if not any(m.key == "migration-group" for m in mechanisms):
        mechanisms = (MECHANISMS["migration-group"], *mechanisms)
    works = {}
    for model in models:
        for size in sizes:
            try:
                works[model.name, size] = attrs.evolve(base, profile=model, size=size,
                                                       calls=calls)
            except ConfigError as error:
                if error.field not in ("profile", "size"):
                    raise
                raise ConfigError(f"{error.field}s", str(error)[len(error.field) + 2:]) from None
    costs, rows = _measure_all(
        [(works[model.name, size], mech) for model in models for size in sizes
         for mech in mechanisms],
        models if remote else [], workers, progress,
    )
    if not base.default_settings:
        # The two-host rows run on their own cluster (the model's own TLBs, default memory, no
        # timer): say so beside the other machine's rows.
        rows = [attrs.evolve(r, note=f"{r.note}; on the default {r.profile} machine")
                for r in rows]
    if any(not w.board_spec.ideal for w in works.values()):
        # The two-host rows run on ideal memory (the cluster has no boards): say so.
        rows = [attrs.evolve(r, note=f"{r.note}; ideal memory") for r in rows]
    return RpcTable(tuple(costs), tuple(rows))
