"""Sweeps behind ``lavsim sweep`` (issue 6): how each mechanism's cost moves with one knob.

- ``size``: argument/message bytes 0..4096 (migration switches from gate parameters to a
  shared segment above 124 bytes);
- ``threads``: 0..8 other runnable threads (each yields when it runs): the wait for
  scheduling that message RPC pays on both hand-overs and migration and handoff avoid;
- ``working-set``: the server reads 1..64 pages of its own data per call: the TLB refill after
  a CR3 load (message RPC between groups), against TLB hits inside one address space;
- ``tlb``: data-TLB entries (4-way) with global pages (CR4.PGE) on and off, at a fixed
  working set.

Each is an experiment file shipped in ``experiments/builtin/`` (:mod:`.experiment`); the
command-line options replace its axes and workload. Every point is a full
:func:`~lavsim.experiments.rpc.measure_call` (its own boot), so every figure is measured in the
run. Every point's workload is built before the first runs, so a bad value is refused
(:class:`~lavsim.errors.ConfigError` naming ``values``) before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from lavsim.errors import ConfigError
from lavsim.experiments.engines import Engine, Reporter, run_experiment
from lavsim.experiments.experiment import (
    ExperimentResult,
    PointResult,
    builtin_experiment,
    builtin_names,
    with_axes,
)
from lavsim.experiments.mechanisms import Mechanism
from lavsim.experiments.store import Store
from lavsim.experiments.workload import Workload, check_distinct, check_profile
from lavsim.models import ModelSpec

__all__ = ["SWEEPS", "Sweep", "SweepPoint", "SweepResult", "run_sweep"]

#: A sweep's result and its points are an experiment's (the names of issue 6).
SweepResult = ExperimentResult
SweepPoint = PointResult


@attrs.frozen
class Sweep:
    """One knob, as its shipped experiment file describes it: the axis it moves, its default
    values, and the second figure printed beside the cycles."""

    name: str
    title: str
    field: str
    values: tuple[int, ...]
    metric: str
    metric_label: str


def _sweeps() -> dict[str, Sweep]:
    out = {}
    for name in builtin_names():
        e = builtin_experiment(name)
        values = tuple(int(v) for v in e.values(e.rows))  # type: ignore[call-overload]
        out[name] = Sweep(name, e.title, e.rows, values, e.metric, e.metric_label)
    return out


#: The built-in sweeps by name, read from their experiment files (``experiments/builtin/``).
SWEEPS: dict[str, Sweep] = _sweeps()


def run_sweep(
    name: str,
    *,
    profiles: Sequence[ModelSpec] = ("i486",),
    values: Sequence[int] | None = None,
    mechanisms: Sequence[Mechanism] | None = None,
    base: Workload | None = None,
    progress: Reporter | None = None,
    engine: Engine | None = None,
    store: Store | None = None,
) -> ExperimentResult:
    """Run the built-in sweep ``name`` (see :data:`SWEEPS`) over ``values`` (default: the
    file's) for each profile and mechanism (default: the file's), around the workload ``base``
    (default: the file's), on ``engine`` (default: serial) with an optional ``store``."""
    if name not in SWEEPS:
        raise ConfigError("sweep", f"one of {sorted(SWEEPS)}, not {name!r}")
    sweep = SWEEPS[name]
    experiment = builtin_experiment(name)
    changes: list[tuple[str, tuple[object, ...]]] = []
    if values is not None:
        check_distinct("values", tuple(values))
        changes.append((sweep.field, tuple(values)))
    try:
        models = [check_profile(p) for p in profiles]
    except ConfigError as error:
        raise ConfigError("profiles", str(error)[len(error.field) + 2:]) from None
    check_distinct("profiles", [m.name for m in models])
    changes.append(("profile", tuple(profiles)))
    if mechanisms is not None:
        check_distinct("mechanisms", tuple(m.key for m in mechanisms))
        changes.append(("mechanism", tuple(m.key for m in mechanisms)))
    try:
        experiment = with_axes(experiment, changes, base=base or experiment.base)
    except ConfigError as error:
        if error.field != sweep.field:
            raise
        raise ConfigError("values", str(error)[len(error.field) + 2:]) from None
    return run_experiment(experiment, engine, store=store, progress=progress)
