"""Trace the calls of the RPC benchmark: one harness per mechanism, recorded on a timeline."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from lavsim.experiments.harness import Harness
from lavsim.experiments.mechanisms import Mechanism
from lavsim.experiments.workload import Workload
from lavsim.observe.timeline import Timeline

__all__ = ["trace_calls"]


def trace_calls(
    timeline: Timeline, mechanisms: Sequence[Mechanism], work: Workload,
) -> dict[str, list[int]]:
    """Run ``work.calls`` calls of each mechanism on ``work`` with a recorder attached (one
    trace process per mechanism, labelled ``"<mechanism> <profile> <size> B"``) and return
    each mechanism's cycles per call (the same as :func:`lavsim.experiments.measure_call`'s
    windows: recording changes no cycle)."""
    out: dict[str, list[int]] = {}
    for mech in mechanisms:
        harness = Harness(mech, attrs.evolve(work))
        label = f"{mech.label} {harness.system.machine.model.name} {work.size} B"
        recorder = timeline.attach(harness.system, label)
        try:
            windows = harness.run()
        finally:
            recorder.detach()
        harness.check(windows)
        out[mech.key] = [w.stats.cycles for w in windows]
    return out
