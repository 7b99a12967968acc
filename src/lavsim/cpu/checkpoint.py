"""The CPU's checkpoint state: every architectural register of :class:`~lavsim.cpu.core.CPU`
as JSON-ready data, and its checked restore (what ``CPU.get_state`` / ``CPU.set_state`` do).

The layout is the ``cpu`` part of a :mod:`lavsim.snapshot` file: general registers, EIP,
EFLAGS (settled: the lazy status flags are computed first), CPL, the six segment registers,
LDTR and TR with their hidden caches (11 fields each, :data:`SEGMENT_FIELDS`), GDTR, IDTR,
CR0/CR2/CR3/CR4, the TSC, instructions retired, the halted / interrupt-pending / shutdown
state and the triple-fault report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from lavsim.mmu.segmentation import SegmentCache

if TYPE_CHECKING:
    from lavsim.cpu.core import CPU

_MASK32 = 0xFFFFFFFF
#: The hidden-cache fields of a segment register, in their saved order.
SEGMENT_FIELDS = ("selector", "base", "limit", "type", "s", "dpl", "present", "db", "g",
                  "avl", "valid")


def _int(value: object, low: int = 0, high: int = _MASK32) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{value!r} is not an int in {low}..{high}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not a bool")
    return value


def segment_state(cache: SegmentCache) -> list[Any]:
    """A segment register's cache as a list of :data:`SEGMENT_FIELDS`."""
    return [getattr(cache, name) for name in SEGMENT_FIELDS]


def segment_cache(fields: object) -> SegmentCache:
    """The cache a :func:`segment_state` list describes (``ValueError`` if malformed)."""
    if not isinstance(fields, list) or len(fields) != len(SEGMENT_FIELDS):
        raise ValueError("a segment register needs 11 fields")
    selector, base, limit, type_, s, dpl, present, db, g, avl, valid = fields
    return SegmentCache(
        _int(selector, 0, 0xFFFF), _int(base), _int(limit), _int(type_, 0, 15), _bool(s),
        _int(dpl, 0, 3), _bool(present), _bool(db), _bool(g), _bool(avl), _bool(valid),
    )  # fmt: skip


def get_state(cpu: CPU) -> dict[str, Any]:
    """The CPU's architectural state (see the module docstring)."""
    report = cpu.shutdown_report
    return {
        "regs": list(cpu.regs),
        "eip": cpu.eip,
        "eflags": cpu.get_eflags(),
        "cpl": cpu.cpl,
        "seg": [segment_state(s) for s in cpu.seg],
        "ldtr": segment_state(cpu.ldtr),
        "tr": segment_state(cpu.tr),
        "gdtr": [cpu.gdtr_base, cpu.gdtr_limit],
        "idtr": [cpu.idtr_base, cpu.idtr_limit],
        "cr0": cpu.cr0,
        "cr2": cpu.cr2,
        "cr3": cpu.cr3,
        "cr4": cpu.cr4,
        "tsc": cpu.tsc,
        "instructions": cpu.instructions,
        "halted": cpu.halted,
        "irq_pending": cpu.irq_pending,
        "shutdown": cpu.shutdown,
        "shutdown_report": None if report is None else attrs.asdict(report),
        "issue": cpu.issue_state(),
    }


def _triple_fault_report(value: object) -> Any:
    if value is None:
        return None
    from lavsim.cpu.interrupts import EventRecord, TripleFaultReport

    if not isinstance(value, dict):
        raise ValueError("shutdown_report must be an object or null")
    chain = tuple(EventRecord(**event) for event in value["chain"])
    fields = {k: v for k, v in value.items() if k != "chain"}
    return TripleFaultReport(chain=chain, **fields)


def check_state(c: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a :func:`get_state` mapping; the decoded values by name. Raises
    ``KeyError``/``TypeError``/``ValueError`` naming what is wrong."""
    regs = [_int(v) for v in c["regs"]]
    if len(regs) != 8:
        raise ValueError("eight general registers")
    seg = [segment_cache(f) for f in c["seg"]]
    if len(seg) != 6:
        raise ValueError("six segment registers")
    shutdown = c["shutdown"]
    if shutdown is not None and not isinstance(shutdown, str):
        raise ValueError("shutdown must be text or null")
    out: dict[str, Any] = {
        "regs": regs,
        "seg": seg,
        "ldtr": segment_cache(c["ldtr"]),
        "tr": segment_cache(c["tr"]),
        "gdtr": [_int(c["gdtr"][0]), _int(c["gdtr"][1], 0, 0xFFFF)],
        "idtr": [_int(c["idtr"][0]), _int(c["idtr"][1], 0, 0xFFFF)],
        "cpl": _int(c["cpl"], 0, 3),
        "tsc": _int(c["tsc"], 0, 1 << 64),
        "instructions": _int(c["instructions"], 0, 1 << 64),
        "halted": _bool(c["halted"]),
        "irq_pending": _bool(c["irq_pending"]),
        "shutdown": shutdown,
        "shutdown_report": _triple_fault_report(c["shutdown_report"]),
    }
    for name in ("eip", "eflags", "cr0", "cr2", "cr3", "cr4"):
        out[name] = _int(c[name])
    from lavsim.cpu.pairing import check_issue_state

    check_issue_state(c.get("issue"))  # absent in snapshots older than the issue model
    return out


def set_state(cpu: CPU, state: Mapping[str, Any]) -> None:
    """Put a :func:`get_state` mapping back (checked first: nothing changes if refused), then
    drop the CPU's host-side caches."""
    v = check_state(state)
    cpu.regs[:] = v["regs"]
    cpu.eip = v["eip"]
    cpu.eflags = v["eflags"]
    cpu.lazy_flags = None
    cpu.set_cpl(v["cpl"])
    cpu.seg[:] = v["seg"]
    cpu.ldtr, cpu.tr = v["ldtr"], v["tr"]
    cpu.gdtr_base, cpu.gdtr_limit = v["gdtr"]
    cpu.idtr_base, cpu.idtr_limit = v["idtr"]
    cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4 = (v[n] for n in ("cr0", "cr2", "cr3", "cr4"))
    cpu.tsc = v["tsc"]
    cpu.instructions = v["instructions"]
    cpu.halted = v["halted"]
    cpu.irq_pending = v["irq_pending"]
    cpu.shutdown = v["shutdown"]
    cpu.shutdown_report = v["shutdown_report"]
    cpu.set_issue_state(state.get("issue"))
    cpu.flush_decode_cache()
