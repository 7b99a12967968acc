"""Plots of the RPC table and of sweeps (matplotlib, the optional extra ``lavsim[plot]``).

- :func:`plot_rpc`: warm cycles per call against the message size, one line per mechanism and
  one panel per profile (log scale on both axes when the sizes span more than a decade), and
  beside each a stacked bar per mechanism of one warm call of the smallest size by phase.
- :func:`plot_sweep`: warm cycles against the knob, one line per mechanism (and per PGE setting
  for the tlb sweep), one panel per profile.

The format follows the file's suffix (``.png``, ``.svg``, ``.pdf``). Without matplotlib,
:class:`PlotUnavailable` (a :class:`~lavsim.errors.LavsimError`) names the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lavsim.errors import ConfigError, LavsimError
from lavsim.experiments.phases import PHASE_ORDER
from lavsim.experiments.rpc import CallCost, RpcTable
from lavsim.experiments.sweeps import SweepResult

__all__ = ["FORMATS", "PlotUnavailable", "check_plot_path", "plot_rpc", "plot_sweep"]

FORMATS = (".png", ".svg", ".pdf")


class PlotUnavailable(LavsimError):
    """matplotlib is not installed."""


def check_plot_path(path: str | Path) -> Path:
    """The path, checked: a known suffix and an existing directory (ConfigError ``plot``)."""
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise ConfigError("plot", f"{str(path)!r} must end in {', '.join(FORMATS)}")
    if not target.resolve().parent.is_dir():
        raise ConfigError("plot", f"no directory for {str(path)!r}")
    return target


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise PlotUnavailable(
            "plots need matplotlib: pip install 'lavsim[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def _profiles(costs: Sequence[CallCost]) -> list[str]:
    return list(dict.fromkeys(c.profile for c in costs))


def plot_rpc(table: RpcTable, path: str | Path) -> Path:
    """Write the RPC table's plot to ``path`` (see the module)."""
    target = check_plot_path(path)
    plt = _pyplot()
    profiles = _profiles(table.costs)
    fig, axes = plt.subplots(len(profiles), 2, figsize=(12, 4.5 * len(profiles)),
                             squeeze=False)
    for row, profile in enumerate(profiles):
        costs = [c for c in table.costs if c.profile == profile]
        lines, bars = axes[row][0], axes[row][1]
        mechs = list(dict.fromkeys(c.mechanism.key for c in costs))
        sizes = sorted({c.size for c in costs})
        for key in mechs:
            points = sorted((c.size, c.warm.cycles) for c in costs if c.mechanism.key == key)
            label = next(c.mechanism.label for c in costs if c.mechanism.key == key)
            # Size 0 cannot sit on a log axis: plot it at 1 byte and say so in the label.
            xs = [max(s, 1) for s, _ in points]
            lines.plot(xs, [v for _, v in points], marker="o", label=label)
        positive = [s for s in sizes if s > 0]
        if positive and max(positive) / max(min(positive), 1) > 10:
            lines.set_xscale("log", base=2)
            lines.set_yscale("log")
        lines.set_xlabel("argument / message bytes (0 plotted at 1)")
        lines.set_ylabel("warm cycles per call")
        lines.set_title(f"{profile}: cycles per call")
        lines.grid(True, which="both", alpha=0.3)
        lines.legend(fontsize=7)
        smallest = sizes[0]
        first = [c for c in costs if c.size == smallest]
        bottoms = [0.0] * len(first)
        colours = plt.get_cmap("tab20")
        for k, phase in enumerate(PHASE_ORDER):
            heights = [c.warm.phases[phase] for c in first]
            if not any(heights):
                continue
            bars.bar(range(len(first)), heights, bottom=bottoms, label=phase,
                     color=colours(k % 20))
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        bars.set_xticks(range(len(first)), [c.mechanism.column for c in first], rotation=30,
                        ha="right", fontsize=8)
        bars.set_ylabel("cycles")
        bars.set_title(f"{profile}: one warm {smallest}-byte call by phase")
        bars.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target)
    plt.close(fig)
    return target


def plot_sweep(result: SweepResult, path: str | Path) -> Path:
    """Write a sweep's plot to ``path`` (see the module): warm cycles against the rows axis,
    one line per mechanism and per value of every other axis; failed points are left out."""
    target = check_plot_path(path)
    plt = _pyplot()
    e = result.experiment
    measured = [p for p in result.points if p.cost is not None]
    costs = [p.cost for p in measured if p.cost is not None]
    profiles = _profiles(costs)
    others = [a for a, _ in e.axes if a not in ("profile", "mechanism", e.rows)]
    fig, axes = plt.subplots(1, len(profiles), figsize=(7 * len(profiles), 4.5), squeeze=False)
    for col, profile in enumerate(profiles):
        ax = axes[0][col]
        series: dict[str, list[tuple[float, float]]] = {}
        for p in measured:
            assert p.cost is not None
            if p.cost.profile != profile:
                continue
            name = p.cost.mechanism.label
            for axis in others:
                value = p.coord(axis)
                if axis == "global_pages":
                    name += " (PGE on)" if value else " (PGE off)"
                else:
                    name += f" ({axis}={value})"
            x = p.value
            if isinstance(x, int | float) and not isinstance(x, bool):
                series.setdefault(name, []).append((float(x), p.cost.warm.cycles))
        for name, points in series.items():
            points.sort()
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name)
        values = sorted({x for pts in series.values() for x, _ in pts if x > 0})
        if values and values[-1] / values[0] > 10:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(e.title or e.rows)
        ax.set_ylabel("warm cycles per call")
        ax.set_title(f"{profile}: {e.name} sweep")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target)
    plt.close(fig)
    return target
