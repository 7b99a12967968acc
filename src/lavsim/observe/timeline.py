"""Timeline traces: a run of a Lavender system as Chrome trace-event JSON (Perfetto, chrome://tracing).

A :class:`Timeline` collects events; :meth:`Timeline.attach` adds a step observer to a
:class:`~lavsim.kernel.LavenderSystem` that records, until :meth:`TimelineRecorder.detach`:

- **a track per Lavender thread** (the trace's ``tid`` is the thread id; the trace's ``pid`` is
  one per attached system, named by its label), plus track 0 for steps with no current thread;
- **process slices**: the outer slice of a thread's track names the process whose code the
  thread is executing (read from CS and the kernel's slot-owner tables, as the kernel's own
  observer does), so a thread migrating into a server procedure visibly leaves its process for
  the server's and comes back; kernel code keeps the slice of the process it runs on behalf of;
- **nested slices** for the IPC phase (:data:`lavsim.kernel.ipc.PHASES`) and, inside it, the
  kernel routine (category ``kernel``);
- **flow arrows** (``s`` → ``f``) from the copy of a message into a kernel buffer
  (``ipc_copy_in``) to its copy out of the same buffer (``ipc_copy_out``), i.e. from the sender's
  thread to the receiver's;
- **instants** for faults (entry of ``exception_handler``, with the vector), hardware interrupts
  and TLB flushes (the MMU's flush counter moved);
- **counter tracks** sampled every ``sample_cycles``: TLB misses, page walks, TLB flushes.

Time: the trace format counts in microseconds; here **one trace microsecond is one simulated
cycle** (stated in the file's ``otherData.time_unit``). The size is bounded: after ``max_events``
events nothing new is recorded except the ends of the slices still open, and ``otherData``
says the trace was truncated; ``window=(start, end)`` records only steps whose cycle count
(the TSC) falls in ``[start, end)``.

The recorder reads state only: a run traced gives the same cycles, registers and memory as one
not traced (``tests/observe/test_timeline.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lavsim.cpu.state import EBP, EDI, ESI
from lavsim.errors import ConfigError, check_int
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import PHASES
from lavsim.kernel.observer import (
    ROW_FAR_RETURN,
    ROW_GATE_CALL,
    ROW_USER,
    CodeOwners,
    StepClassifier,
)
from lavsim.kernel.system import LavenderSystem
from lavsim.machine import STEP_INSTRUCTION, STEP_INTERRUPT

__all__ = ["TIME_UNIT", "Timeline", "TimelineRecorder"]

#: What one ``ts`` unit of the trace is.
TIME_UNIT = "1 trace microsecond = 1 simulated cycle (TSC)"

#: Kernel-observer rows -> IPC phase ("kernel" for rows no phase lists).
_PHASE_OF: dict[str, str] = {row: phase for phase, rows in PHASES.items() for row in rows}
_PHASE_OF.update({ROW_GATE_CALL: "gate call", ROW_FAR_RETURN: "far return"})


class Timeline:
    """Trace events from one or more systems, written as one JSON file (:meth:`write`)."""

    def __init__(self, *, max_events: int = 500_000, sample_cycles: int = 1_000) -> None:
        check_int("max_events", max_events, 1)
        check_int("sample_cycles", sample_cycles, 1)
        self.max_events = max_events
        self.sample_cycles = sample_cycles
        self.events: list[dict[str, Any]] = []
        self.truncated = False
        self._next_pid = 1
        self._next_flow = 1

    def attach(
        self, system: LavenderSystem, label: str = "lavender",
        window: tuple[int, int] | None = None,
    ) -> TimelineRecorder:
        """Start recording ``system`` (its own trace process, named ``label``)."""
        pid = self._next_pid
        self._next_pid += 1
        return TimelineRecorder(self, system, pid, label, window)

    def full(self) -> bool:
        """True once ``max_events`` events are recorded (then only slice ends are added)."""
        if len(self.events) >= self.max_events:
            self.truncated = True
            return True
        return False

    def flow_id(self) -> int:
        """A fresh id for a flow arrow."""
        self._next_flow += 1
        return self._next_flow - 1

    def to_json(self) -> dict[str, Any]:
        """The trace as a JSON object (``traceEvents`` and ``otherData``)."""
        return {
            "traceEvents": self.events,
            "otherData": {
                "generator": "lavsim",
                "time_unit": TIME_UNIT,
                "truncated": self.truncated,
                "max_events": self.max_events,
            },
        }

    def write(self, path: str | Path) -> None:
        """Write the trace file (JSON, compact)."""
        Path(path).write_text(json.dumps(self.to_json(), separators=(",", ":")))

    def counts(self) -> dict[str, int]:
        """Events by phase letter (B, E, i, s, f, C, M), for reports."""
        out: dict[str, int] = {}
        for event in self.events:
            out[event["ph"]] = out.get(event["ph"], 0) + 1
        return out


class TimelineRecorder:
    """The step observer :meth:`Timeline.attach` returns (see the module docstring)."""

    def __init__(
        self, timeline: Timeline, system: LavenderSystem, pid: int, label: str,
        window: tuple[int, int] | None,
    ) -> None:
        if window is not None:
            start, end = window
            check_int("window start", start, 0)
            check_int("window end", end, 0)
            if end <= start:
                raise ConfigError("window", f"end {end} is not after start {start}")
        self.timeline = timeline
        self.system = system
        self.pid = pid
        self.window = window
        machine = system.machine
        self.machine = machine
        image = system.image
        self.classify = StepClassifier(image)
        self._k_current = image.symbol("k_current") - L.KERNEL_BASE
        self._copy_in = image.symbol("ipc_copy_in")
        self._copy_out = image.symbol("ipc_copy_out")
        self._exception = image.symbol("exception_handler")
        #: Open slice names per track, outermost first: process, phase, routine.
        self._open: dict[int, list[str]] = {}
        #: The process each thread was last in (kernel code keeps it).
        self._process: dict[int, str] = {}
        self._named: set[int] = set()
        self._flows: dict[int, int] = {}
        self._current = self._thread()
        self._flushes = machine.mmu.flushes
        self._next_sample = machine.cpu.tsc
        self._owner = CodeOwners(self.machine)
        self._emit({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                    "args": {"name": label}}, force=True)
        self._name_track(0, "no thread")
        machine.add_observer(self)

    # --- reading the system -------------------------------------------------------------------
    def _thread(self) -> int:
        tcb = self.machine.memory.read32(self._k_current)
        if tcb < L.TCB_LINEAR:
            return 0
        return (tcb - L.TCB_LINEAR) // L.TCB_SIZE

    def _process_name(self, pid: int) -> str:
        process = self.system.processes.get(pid)
        return f"{process.name} (pid {pid})" if process is not None else f"pid {pid}"


    def _home(self, tid: int) -> str:
        thread = self.system.threads.get(tid)
        if thread is not None:
            return self._process_name(thread.process.pid)
        return "kernel"

    # --- emitting ---------------------------------------------------------------------------
    def _emit(self, event: dict[str, Any], force: bool = False) -> bool:
        if not force and self.timeline.full():
            return False
        self.timeline.events.append(event)
        return True

    def _name_track(self, tid: int, name: str) -> None:
        self._named.add(tid)
        self._emit({"ph": "M", "name": "thread_name", "pid": self.pid, "tid": tid,
                    "args": {"name": name}}, force=True)

    def _set(self, tid: int, names: list[str], ts: int) -> None:
        """Make the open slices of track ``tid`` be ``names`` (outermost first) at ``ts``."""
        if tid not in self._named:
            self._name_track(tid, f"thread {tid} of {self._home(tid)}")
        stack = self._open.setdefault(tid, [])
        keep = 0
        while keep < len(stack) and keep < len(names) and stack[keep] == names[keep]:
            keep += 1
        while len(stack) > keep:
            stack.pop()
            self._emit({"ph": "E", "pid": self.pid, "tid": tid, "ts": ts}, force=True)
        for depth, name in enumerate(names[keep:], start=keep):
            cat = ("process", "phase", "kernel")[depth]
            if not self._emit({"ph": "B", "name": name, "cat": cat, "pid": self.pid,
                               "tid": tid, "ts": ts}):
                break
            stack.append(name)

    def _instant(self, tid: int, name: str, ts: int, args: dict[str, Any]) -> None:
        self._emit({"ph": "i", "s": "t", "name": name, "cat": "event", "pid": self.pid,
                    "tid": tid, "ts": ts, "args": args})

    def _sample(self, ts: int) -> None:
        stats = self.machine.mmu.stats
        self._emit({"ph": "C", "name": "TLB", "pid": self.pid, "ts": ts,
                    "args": {"misses": stats.misses, "walks": stats.walks,
                             "flushes": stats.flushes}})

    # --- the step observer ---------------------------------------------------------------------
    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, cycles_before: int,
        cycles_after: int, /,
    ) -> None:
        tid = self._current
        after_tid = self._thread()
        self._current = after_tid
        window = self.window
        if window is not None and not window[0] <= cycles_before < window[1]:
            if window is not None and cycles_before >= window[1]:
                self.close(cycles_before)
            return
        ts = cycles_before
        cpu = self.machine.cpu
        if kind == STEP_INSTRUCTION:
            if cpl:
                process = self._process_name(self._owner(cs))
                self._process[tid] = process
            else:
                process = self._process.get(tid) or self._home(tid)
            row = self.classify(kind, pc, cpl, cpu.cpl)
            if row == ROW_USER or row.startswith("<ring"):
                names = [process]
            elif cpl:
                names = [process, _PHASE_OF.get(row, row)]
            else:
                names = [process, _PHASE_OF.get(row, "kernel"), row]
            self._set(tid, names, ts)
            if not cpl:
                if pc == self._copy_in:
                    flow = self.timeline.flow_id()
                    self._flows[cpu.regs[EDI]] = flow
                    self._emit({"ph": "s", "name": "message", "cat": "ipc", "id": flow,
                                "pid": self.pid, "tid": tid, "ts": ts})
                elif pc == self._copy_out:
                    flow_id = self._flows.pop(cpu.regs[ESI], None)
                    if flow_id is not None:
                        self._emit({"ph": "f", "bp": "e", "name": "message", "cat": "ipc",
                                    "id": flow_id, "pid": self.pid, "tid": tid, "ts": ts})
                elif pc == self._exception:
                    frame = cpu.regs[EBP] + L.FR_VECTOR - L.KERNEL_BASE
                    vector = self.machine.memory.read32(frame) if frame >= 0 else -1
                    self._instant(tid, "fault", ts, {"vector": vector})
        elif kind == STEP_INTERRUPT:
            self._set(tid, [self._process.get(tid) or self._home(tid), "idle and interrupts",
                            "<interrupt>"], ts)
            self._instant(tid, "interrupt", ts, {"cpl": cpl})
        else:
            self._set(tid, [], ts)
        flushes = self.machine.mmu.flushes
        if flushes != self._flushes:
            self._flushes = flushes
            self._instant(tid, "TLB flush", cycles_after, {"flushes": flushes})
        if cycles_after >= self._next_sample:
            self._sample(cycles_after)
            self._next_sample = cycles_after + self.timeline.sample_cycles
        if after_tid != tid:
            # Switched away: the old thread's track shows a gap while it does not run.
            self._set(tid, [], cycles_after)

    def close(self, ts: int | None = None) -> None:
        """End every open slice (at ``ts``, default now)."""
        end = self.machine.cpu.tsc if ts is None else ts
        for tid in list(self._open):
            self._set(tid, [], end)

    def detach(self) -> None:
        """Stop recording: close the open slices and remove the observer."""
        self.close()
        self.machine.remove_observer(self)
