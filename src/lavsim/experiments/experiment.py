"""Experiment files (issue 18): a grid of measurements written as TOML.

An experiment names *axes* (a :class:`~lavsim.experiments.workload.Workload` field, or
``mechanism``) and their values; its points are every combination, the last axis varying
fastest. Each point is one :func:`~lavsim.experiments.rpc.measure_call`. The format::

    [experiment]
    name = "size"                      # the table's name (required)
    title = "argument / message bytes" # what the rows axis is, in words

    [workload]                         # fixed Workload fields around every point
    working_set = 4

    [axes]                             # in this order; the last varies fastest
    profile = ["i486", "my-cpu.toml"]  # a model name or a model file (relative to this file)
    size = [0, 512, 1024]
    costs.call_gate.inner = [50, 100]  # one timing cost of the CPU model, in cycles
    mechanism = ["migration-group", "message-group"]   # default: the RPC table's five

    [output]
    rows = "size"                      # the axis the table's rows (and `value`) show
    metric = "bytes_copied"            # the figure printed beside the warm cycles
    metric_label = "bytes copied per call"
    measurements = ["warm_cycles", "tlb_misses"]       # the records' columns (default: all)
    format = "table"                   # table, csv or json

Every axis is derived from ``attrs.fields(Workload)``, so a field added to the workload is an
axis at once; ``costs.KEY`` axes replace one cost of the CPU model (keeping its name, TLBs and
CPUID). Everything is checked when the file is read, before anything runs: an unknown
section, key, axis or measurement, an empty axis, a value given twice, and every point's
workload (a bad value is refused by :class:`Workload` itself); the error
(:class:`ExperimentFileError`) names the file, the key and its line.

The built-in sweeps (``lavsim sweep size|threads|working-set|tlb``) are experiment files shipped
in ``lavsim/experiments/builtin/``.
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from lavsim.errors import ConfigError, FileEntryError, show_value
from lavsim.experiments.mechanisms import MECHANISMS, VARIANTS
from lavsim.experiments.rpc import CallCost, plural, render_as
from lavsim.experiments.workload import Workload, check_profile
from lavsim.models import CpuModel, ModelFileError, load_model_file
from lavsim.timing import KEYS, TimingProfile

__all__ = [
    "BUILTIN_DIR",
    "MEASUREMENTS",
    "Experiment",
    "ExperimentFileError",
    "ExperimentResult",
    "Point",
    "PointResult",
    "axis_names",
    "builtin_experiment",
    "load_experiment",
    "parse_experiment_text",
]

#: Where the built-in sweeps' experiment files are (package data).
BUILTIN_DIR: Final = Path(__file__).parent / "builtin"

MECHANISM: Final = "mechanism"


def _round(value: float) -> float:
    return round(value, 2)


#: Every figure a record can hold, by column name, in the default order.
MEASUREMENTS: Final[Mapping[str, Callable[[CallCost], object]]] = {
    "warm_cycles": lambda c: _round(c.warm.cycles),
    "cold_cycles": lambda c: c.cold.cycles,
    "instructions": lambda c: c.warm.instructions,
    "kernel_entries": lambda c: c.warm.kernel_entries,
    "context_switches": lambda c: c.warm.context_switches,
    "cr3_loads": lambda c: c.warm.cr3_loads,
    "tlb_misses": lambda c: c.warm.tlb_misses,
    "bytes_copied": lambda c: c.warm.bytes_copied,
    "tlb_refill_cycles": lambda c: _round(c.warm.phases["TLB refill"]),
    "other_threads_cycles": lambda c: _round(c.warm.phases["other threads"]),
    "message_copies": lambda c: c.warm.message_copies,
    "gate_calls": lambda c: c.warm.gate_calls,
}
#: The columns of a record unless the file names its own (the sweeps' historical columns).
DEFAULT_MEASUREMENTS: Final = tuple(MEASUREMENTS)[:10]
#: Figures of :class:`~lavsim.experiments.rpc.Figures` the table's second block can show.
_METRICS: Final = ("cycles", "instructions", "kernel_entries", "context_switches", "cr3_loads",
                   "tlb_misses", "message_copies", "bytes_copied", "gate_calls")  # fmt: skip
_FORMATS: Final = ("table", "csv", "json")

_SECTIONS: Final = ("experiment", "workload", "axes", "output")
_KEYS: Final = {
    "experiment": ("name", "title", "description"),
    "output": ("rows", "metric", "metric_label", "measurements", "format"),
}


#: The prefix of an axis over one timing cost of the CPU model (``costs.call_gate.inner``).
COSTS: Final = "costs."


def axis_names() -> tuple[str, ...]:
    """The names an axis may have: every :class:`Workload` field, then ``mechanism``; besides
    these, ``costs.KEY`` for every timing key (:data:`lavsim.timing.KEYS`)."""
    return (*(f.name for f in attrs.fields(Workload)), MECHANISM)


def _is_axis(name: str) -> bool:
    return name in axis_names() or (name.startswith(COSTS) and name[len(COSTS):] in KEYS)


def _with_costs(work: Workload, costs: Mapping[str, object]) -> Workload:
    """``work`` on its CPU model with some timing costs replaced (same name, TLBs, CPUID)."""
    model = work.model
    for key, value in costs.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(COSTS + key, f"cycles must be an integer >= 0, not "
                              f"{show_value(value)}")
    changes = {key: int(cycles) for key, cycles in costs.items()}  # type: ignore[call-overload]
    profile = model.profile.with_costs(changes, name=model.name, origin="an experiment axis")
    return attrs.evolve(work, profile=model.with_profile(profile, name=model.name))


class ExperimentFileError(FileEntryError):
    """An experiment file was refused: names the file (``origin``), the dotted ``key``
    (``axes.size``) and, where known, the 1-based ``line``."""


def _close(word: str, choices: Iterable[str]) -> str:
    near = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""


def _message(error: ConfigError) -> str:
    return str(error)[len(error.field) + 2:]


def _shown(value: object) -> str:
    # A CPU model or timing profile by its name (its repr runs long).
    return value.name if isinstance(value, (CpuModel, TimingProfile)) else str(value)


def _plain(value: object) -> object:
    # A record keeps JSON's own types (true stays true); a model goes by its name.
    return value if isinstance(value, (str, int, float, bool)) else _shown(value)


@attrs.frozen
class Point:
    """One combination of the axes: its place in the grid, its coordinates (axis, value) in
    axis order, the mechanism's key and the workload it runs."""

    index: int
    coords: tuple[tuple[str, object], ...]
    mechanism: str
    workload: Workload

    def label(self) -> str:
        """The point in words, for progress lines and failures."""
        return " ".join(f"{a}={_shown(v)}" for a, v in self.coords)


@attrs.frozen
class Experiment:
    """A grid of measurements (see the module's docstring for the file format).

    ``axes``: (name, values) in order; ``base``: the workload around every point; ``rows``:
    the axis whose value each record calls ``value``. Building one checks the axes and every
    point's workload (:class:`~lavsim.errors.ConfigError` naming the axis or field)."""

    name: str
    axes: tuple[tuple[str, tuple[object, ...]], ...]
    base: Workload = attrs.field(factory=Workload)
    title: str = ""
    rows: str = ""
    metric: str = "instructions"
    metric_label: str = "instructions per call"
    measurements: tuple[str, ...] = DEFAULT_MEASUREMENTS
    format: str = "table"
    points: tuple[Point, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        names = axis_names()
        seen = [a for a, _ in self.axes]
        for axis, values in self.axes:
            if not _is_axis(axis):
                raise ConfigError(axis, f"not an axis{_close(axis, names)}; axes: "
                                  f"{', '.join(names)}")
            if seen.count(axis) > 1:
                raise ConfigError(axis, "named twice")
            if not values:
                raise ConfigError(axis, "must name at least one value")
            shown = [_shown(v) for v in values]
            twice = [v for k, v in enumerate(shown) if v in shown[:k]]
            if twice:
                raise ConfigError(axis, f"{', '.join(dict.fromkeys(twice))} given more than once")
        if MECHANISM not in seen:
            object.__setattr__(self, "axes", (*self.axes, (MECHANISM, tuple(MECHANISMS))))
        for key in dict(self.axes)[MECHANISM]:
            if not isinstance(key, str) or key not in {**MECHANISMS, **VARIANTS}:
                known = ", ".join([*MECHANISMS, *VARIANTS])
                raise ConfigError(MECHANISM, f"one of {known}, not {show_value(key)}")
        others = [a for a, _ in self.axes if a not in ("profile", MECHANISM)]
        if not self.rows:
            if not others:
                raise ConfigError("rows", "the experiment needs an axis besides profile and "
                                  "mechanism to label its rows")
            object.__setattr__(self, "rows", others[0])
        elif self.rows not in others:
            raise ConfigError("rows", f"must be one of the axes {', '.join(others) or '(none)'}"
                              f" (not profile or mechanism), not {show_value(self.rows)}")
        for m in self.measurements:
            if m not in MEASUREMENTS:
                raise ConfigError("measurements", f"unknown measurement {show_value(m)}"
                                  f"{_close(str(m), MEASUREMENTS)}; known: "
                                  f"{', '.join(MEASUREMENTS)}")
        if not self.measurements:
            raise ConfigError("measurements", "must name at least one")
        if self.metric not in _METRICS:
            raise ConfigError("metric", f"one of {', '.join(_METRICS)}, not "
                              f"{show_value(self.metric)}")
        if self.format not in _FORMATS:
            raise ConfigError("format", f"one of {', '.join(_FORMATS)}, not "
                              f"{show_value(self.format)}")
        object.__setattr__(self, "points", self._grid())

    def _grid(self) -> tuple[Point, ...]:
        names = [a for a, _ in self.axes]
        points = []
        for index, combo in enumerate(itertools.product(*(v for _, v in self.axes))):
            fields: dict[str, Any] = {a: v for a, v in zip(names, combo, strict=True)
                                      if a != MECHANISM}
            costs = {a[len(COSTS):]: fields.pop(a) for a in list(fields) if a.startswith(COSTS)}
            try:
                work = attrs.evolve(self.base, **fields)
                if costs:
                    work = _with_costs(work, costs)
            except ConfigError as error:
                if error.field in fields:
                    raise ConfigError(error.field, f"{_shown(fields[error.field])}: "
                                      f"{_message(error)}") from None
                if error.field.startswith(COSTS):
                    raise ConfigError(error.field, _message(error)) from None
                raise
            except TypeError as error:  # a value of a type the field's converter rejects
                raise ConfigError(names[0], str(error)) from None
            points.append(Point(index, tuple(zip(names, combo, strict=True)),
                                str(dict(zip(names, combo, strict=True))[MECHANISM]), work))
        return tuple(points)

    def values(self, axis: str) -> tuple[object, ...]:
        """The values of ``axis`` (empty if it is not one)."""
        return dict(self.axes).get(axis, ())


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@attrs.frozen
class PointResult:
    """A point and what measuring it gave: its cost, or the reason it failed; ``rows``: the
    experiment's rows axis (whose coordinate :attr:`value` is)."""

    point: Point
    cost: CallCost | None
    error: str | None = None
    rows: str = ""

    @property
    def value(self) -> object:
        return self.coord(self.rows)

    def coord(self, axis: str) -> object:
        """This point's value on ``axis`` (None if it is not an axis)."""
        return dict(self.point.coords).get(axis)


@attrs.frozen
class ExperimentResult:
    """Every point of an experiment in grid order (whichever engine ran them), with how many
    were measured in this run (``computed``) and read back from a store (``reused``)."""

    experiment: Experiment
    points: tuple[PointResult, ...]
    computed: int = 0
    reused: int = 0

    @property
    def failures(self) -> tuple[PointResult, ...]:
        return tuple(p for p in self.points if p.cost is None)

    @property
    def base(self) -> Workload:
        return self.experiment.base

    def _extras(self) -> list[str]:
        return [a for a, _ in self.experiment.axes
                if a not in ("profile", MECHANISM, self.experiment.rows)]  # fmt: skip

    def records(self) -> list[dict[str, object]]:
        """One record per point: ``sweep`` (the experiment's name), ``profile``, ``value``
        (the rows axis), the other axes, ``mechanism``, the measurements; a failed point has
        ``error`` instead of measurements."""
        e = self.experiment
        extras = self._extras()
        out: list[dict[str, object]] = []
        for p in self.points:
            work = p.point.workload
            record: dict[str, object] = {"sweep": e.name, "profile": work.profile_name,
                                         "value": p.coord(e.rows)}
            record.update({a: _plain(p.coord(a)) for a in extras})
            record["mechanism"] = p.point.mechanism
            if p.cost is None:
                record["error"] = p.error
            else:
                record.update({m: MEASUREMENTS[m](p.cost) for m in e.measurements})
                board = work.board_spec
                if not board.ideal:
                    # A cache board: name it, and the memory stalls it adds.
                    record.setdefault("board", board.name)
                    record["memory_stall_cycles"] = _round(p.cost.warm.phases["memory stalls"])
                    record["cold_memory_stall_cycles"] = _round(
                        p.cost.cold.phases["memory stalls"])
            out.append(record)
        return out

    def to_json(self) -> str:
        return json.dumps(self.records(), indent=1)

    def to_csv(self) -> str:
        records = self.records()
        fields = list(dict.fromkeys(k for r in records for k in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()

    def _key(self, p: PointResult) -> str:
        parts = [str(p.coord(self.experiment.rows))]
        for axis in self._extras():
            value = p.coord(axis)
            if axis == "global_pages":
                parts.append("PGE on" if value else "PGE off")
            else:
                parts.append(f"{axis}={_shown(value)}")
        return " ".join(parts)

    def to_text(self) -> str:
        e = self.experiment
        lines: list[str] = []
        mechs = list(dict.fromkeys(p.point.mechanism for p in self.points))
        width = max(14, *(len(m) + 2 for m in mechs))
        keyw = max(16, len(e.name), *(len(self._key(p)) + 1 for p in self.points))
        for profile in dict.fromkeys(p.point.workload.profile_name for p in self.points):
            pts = [p for p in self.points if p.point.workload.profile_name == profile]
            keys = list(dict.fromkeys(self._key(p) for p in pts))
            cell = {(self._key(p), p.point.mechanism): p.cost for p in pts}
            w = e.base
            fixed = {"size": f"size {w.size} B", "other_threads": f"{w.other_threads} other "
                     "threads", "working_set": f"working set {w.working_set} pages"}
            context = ", ".join(v for k, v in fixed.items() if not e.values(k))
            boards = {p.point.workload.board_spec.name: p.point.workload.board_spec for p in pts}
            only = next(iter(boards.values())) if len(boards) == 1 else None
            on = "" if only is None or only.ideal else f" on board {only.name}"
            lines.append(
                f"== sweep {e.name} on {profile}{on}: {e.title or e.rows} "
                f"({context}, {plural(w.calls - 1, 'warm call')}) =="
            )

            def cycles(c: CallCost) -> float:
                return c.warm.cycles

            def second(c: CallCost, metric: str = e.metric) -> float:
                return float(getattr(c.warm, metric))

            blocks: tuple[tuple[str, Callable[[CallCost], float], str], ...] = (
                ("warm cycles per call", cycles, ",.1f"),
                (e.metric_label, second, ",.1f"),
            )
            for label, get, fmt in blocks:
                lines.append(f"-- {label} --")
                lines.append(f"{e.name:>{keyw}}" + "".join(f"{m:>{width}}" for m in mechs))
                for key in keys:
                    row = []
                    for m in mechs:
                        cost = cell.get((key, m))
                        row.append("failed" if cost is None else format(get(cost), fmt))
                    lines.append(f"{key:>{keyw}}" + "".join(f"{c:>{width}}" for c in row))
            lines.append("")
        return "\n".join(lines)

    def render(self, fmt: str | None = None) -> str:
        """The result as ``table``, ``csv`` or ``json`` (default: the experiment's format)."""
        return render_as(self, fmt or self.experiment.format)


# --------------------------------------------------------------------------------------------
# The file format
# --------------------------------------------------------------------------------------------


class _Lines:
    """Where a key is defined in the text (tomllib reports positions only for syntax
    errors): the first line ``key =`` inside ``[section]``, else the section's header."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def find(self, section: str, key: str | None = None) -> int | None:
        current = ""
        header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
        forms = () if key is None else (f'"{key}"', f"'{key}'", key)
        head = None
        for number, raw in enumerate(self.lines, 1):
            m = header.match(raw)
            if m:
                current = m.group(1).strip().strip('"')
                if current == section and head is None:
                    head = number
                continue
            if current != section:
                continue
            stripped = raw.lstrip()
            for form in forms:
                if stripped.startswith(form) and stripped[len(form):].lstrip()[:1] == "=":
                    return number
        return head


def _profile(value: object, base_dir: Path | None, origin: str) -> str | CpuModel:
    """A profile axis value: a registered model's name, or a model file's path."""
    if not isinstance(value, str):
        raise ConfigError("profile", f"a CPU model name or model file, not {show_value(value)}")
    if value.endswith(".toml"):
        path = Path(value)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            return load_model_file(path)
        except ModelFileError as error:
            raise ConfigError("profile", f"model file {value}: {error}") from None
    check_profile(value)
    return value


def parse_experiment_text(
    text: str, origin: str = "<text>", base_dir: Path | None = None
) -> Experiment:
    """The experiment described by the TOML ``text``; ``origin`` names it in errors, model
    files named in it are found relative to ``base_dir``. Every refusal is an
    :class:`ExperimentFileError` naming ``origin``, the key and its line."""
    where = _Lines(text)

    def fail(section: str, key: str | None, message: str) -> ExperimentFileError:
        dotted = section if key is None else f"{section}.{key}"
        return ExperimentFileError(origin, dotted, message, where.find(section, key))

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise ExperimentFileError(origin, "(syntax)", f"not valid TOML: {exc}",
                                  int(m.group(1)) if m else None) from None
    for name, value in data.items():
        if name not in _SECTIONS or not isinstance(value, dict):
            raise ExperimentFileError(
                origin, name, "unknown section; the sections are [experiment], [workload], "
                f"[axes], [output]{_close(name, _SECTIONS)}", where.find(name))
    for section, keys in _KEYS.items():
        for key in data.get(section, {}):
            if key not in keys:
                raise fail(section, key, f"unknown key{_close(key, keys)}; known: "
                           f"{', '.join(keys)}")
    head = data.get("experiment", {})
    if "name" not in head:
        raise fail("experiment", "name", "is required")
    for key in _KEYS["experiment"]:
        if key in head and (not isinstance(head[key], str) or not head[key].strip()):
            raise fail("experiment", key, "must be a non-empty string")
    names = axis_names()
    fixed = dict(data.get("workload", {}))
    for key in fixed:
        if key not in names or key == MECHANISM:
            raise fail("workload", key, f"not a Workload field{_close(key, names)}")
    axes_table = dict(_flatten_costs(data.get("axes", {})))
    if not axes_table:
        raise fail("axes", None, "the [axes] section naming at least one axis is required")
    axes: list[tuple[str, tuple[object, ...]]] = []
    for axis, values in axes_table.items():
        if axis.startswith(COSTS) and not _is_axis(axis):
            raise fail("axes", axis, f"unknown timing key{_close(axis[len(COSTS):], KEYS)} "
                       "(the keys: docs/timing.md)")
        if not _is_axis(axis):
            raise fail("axes", axis, f"unknown axis{_close(axis, names)}; axes: "
                       f"{', '.join(names)}")
        if axis in fixed:
            raise fail("axes", axis, "is also fixed in [workload]")
        if not isinstance(values, list):
            raise fail("axes", axis, f"must be a list of values, not {show_value(values)}")
        if not values:
            raise fail("axes", axis, "is empty: an axis needs at least one value")
        if axis == "profile":
            try:
                values = [_profile(v, base_dir, origin) for v in values]
            except ConfigError as error:
                raise fail("axes", axis, _message(error)) from None
        axes.append((axis, tuple(values)))
    try:
        if "profile" in fixed:
            fixed["profile"] = _profile(fixed["profile"], base_dir, origin)
        base = Workload(**fixed)
    except ConfigError as error:
        raise fail("workload", error.field, _message(error)) from None
    except TypeError as error:
        raise fail("workload", None, str(error)) from None
    out: dict[str, Any] = dict(data.get("output", {}))
    if "measurements" in out:
        if not isinstance(out["measurements"], list):
            raise fail("output", "measurements", "must be a list of measurement names")
        out["measurements"] = tuple(out["measurements"])
    for key in ("rows", "metric", "metric_label", "format"):
        if key in out and not isinstance(out[key], str):
            raise fail("output", key, "must be a string")
    try:
        return Experiment(name=head["name"].strip(), title=head.get("title", ""),
                          axes=tuple(axes), base=base, **out)
    except ConfigError as error:
        if error.field in out or error.field in ("rows", "measurements", "metric", "format"):
            raise fail("output", error.field, _message(error)) from None
        raise fail("axes", error.field, _message(error)) from None


def _flatten_costs(axes: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    # A bare dotted key (costs.call_gate.inner = [...]) is a nested table in TOML; the timing
    # keys have dots, so join them back.
    for key, value in axes.items():
        if key == "costs" and isinstance(value, dict):
            yield from _join(value, COSTS)
        else:
            yield key, value


def _join(table: Mapping[str, Any], prefix: str) -> Iterable[tuple[str, Any]]:
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _join(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def load_experiment(path: str | Path) -> Experiment:
    """The experiment described by the TOML file at ``path`` (see
    :func:`parse_experiment_text`); an unreadable file is an :class:`ExperimentFileError`."""
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentFileError(origin, "(file)", f"cannot be read: {exc}") from None
    return parse_experiment_text(text, origin, Path(path).parent)


def builtin_names() -> tuple[str, ...]:
    """The built-in sweeps, by name (the shipped files' stems)."""
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.toml")))


def builtin_experiment(name: str) -> Experiment:
    """The built-in sweep ``name`` (``size``, ``threads``, ``working-set``, ``tlb``)."""
    if name not in builtin_names():
        raise ConfigError("sweep", f"one of {list(builtin_names())}, not {name!r}")
    return load_experiment(BUILTIN_DIR / f"{name}.toml")


def with_axes(experiment: Experiment, changes: Sequence[tuple[str, tuple[object, ...]]],
              **fields: Any) -> Experiment:
    """``experiment`` with some axes' values replaced (in place, keeping the order) and other
    fields (``base``, ...) changed; checked like a new one."""
    replaced = dict(changes)
    axes = tuple((a, replaced.get(a, v)) for a, v in experiment.axes)
    kept = {f.name: getattr(experiment, f.name) for f in attrs.fields(Experiment) if f.init}
    kept.update(axes=axes, **fields)
    return Experiment(**kept)
