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

from lavsim.cpu.regs import CR0_CD, CR0_ET, CR0_NW, CR0_PE, CR0_PG, EFLAGS_FIXED, EFLAGS_WRITABLE
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


_EVENT_KINDS = ("exception", "external", "double fault")
_REPORT_FIELDS = {"cs": 0xFFFF, "eip": _MASK32, "cpl": 3, "cr2": _MASK32, "tsc": 1 << 64,
                  "instructions": 1 << 64}


def _fields(value: object, names: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != names:
        raise ValueError(f"{what} must be an object with exactly {sorted(names)}")
    return value


def _optional(value: object) -> int | None:
    return None if value is None else _int(value)


def _triple_fault_report(value: object) -> Any:
    """The :class:`~lavsim.cpu.interrupts.TripleFaultReport` a saved report describes, every
    field checked for type and range (``describe()`` must work on whatever is restored)."""
    if value is None:
        return None
    from lavsim.cpu.interrupts import EventRecord, TripleFaultReport

    report = _fields(value, {"chain", *_REPORT_FIELDS}, "shutdown_report")
    if not isinstance(report["chain"], list):
        raise ValueError("shutdown_report chain must be a list")
    chain = []
    for event in report["chain"]:
        e = _fields(event, {"vector", "error_code", "cr2", "kind"}, "a shutdown_report event")
        if e["kind"] not in _EVENT_KINDS:
            raise ValueError(f"event kind {e['kind']!r} is not one of {_EVENT_KINDS}")
        chain.append(EventRecord(_int(e["vector"], 0, 255), _optional(e["error_code"]),
                                 _optional(e["cr2"]), e["kind"]))
    numbers = {name: _int(report[name], 0, high) for name, high in _REPORT_FIELDS.items()}
    return TripleFaultReport(chain=tuple(chain), **numbers)


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
    check_architecture(out)
    return out


def _inconsistent(what: str) -> ValueError:
    return ValueError(f"inconsistent state: {what}")


def _check_segment_fields(name: str, cache: SegmentCache) -> None:
    """A usable cache holds what a descriptor load leaves: a byte limit scaled by G."""
    if not cache.valid:
        return
    if cache.g and cache.limit & 0xFFF != 0xFFF:
        raise _inconsistent(f"{name} limit {cache.limit:#x} is not a G = 1 limit")
    if not cache.g and cache.limit > 0xFFFFF:
        raise _inconsistent(f"{name} limit {cache.limit:#x} is beyond a G = 0 limit")


def check_architecture(v: Mapping[str, Any]) -> None:
    """The consistency rules of a state the processor can be in between instructions
    (``ValueError`` naming the first one broken), on the decoded values of
    :func:`check_state`:

    - CR0: PE and ET set (the machine has no real mode), PG only with PE, NW only with CD;
      CR4: only the bits MOV to CR4 accepts; EFLAGS: bit 1 set, and no bit software cannot
      set (reserved bits, VM, VIF, VIP);
    - CS: a present code segment, its RPL the CPL, its DPL the CPL (non-conforming) or at most
      the CPL (conforming); SS: a present writable data segment with RPL = DPL = CPL. Only the
      reset state (CS and SS unusable, CPL 0) has no CS;
    - DS, ES, FS, GS: unusable, or a present data or readable code segment, with DPL >= CPL
      unless conforming code (what a return to an outer ring leaves);
    - every usable cache has a limit a descriptor can give (scaled by G), a non-null selector
      (CS, SS); LDTR is unusable or a present LDT; TR is unusable or a present TSS;
    - a triple-fault report only with a shutdown."""
    from lavsim.cpu.system import CR4_SUPPORTED

    cr0, cr4, eflags, cpl = v["cr0"], v["cr4"], v["eflags"], v["cpl"]
    if not cr0 & CR0_PE or not cr0 & CR0_ET:
        raise _inconsistent(f"CR0 {cr0:#x} without PE or ET (no real mode)")
    if cr0 & CR0_NW and not cr0 & CR0_CD:
        raise _inconsistent(f"CR0 {cr0:#x} has NW without CD")
    if cr0 & CR0_PG and not cr0 & CR0_PE:
        raise _inconsistent(f"CR0 {cr0:#x} has PG without PE")
    if cr4 & ~CR4_SUPPORTED:
        raise _inconsistent(f"CR4 {cr4:#x} has bits the machine does not model")
    if not eflags & EFLAGS_FIXED or eflags & ~(EFLAGS_WRITABLE | EFLAGS_FIXED):
        raise _inconsistent(f"EFLAGS {eflags:#x} has a reserved bit wrong")
    seg = v["seg"]
    names = ("ES", "CS", "SS", "DS", "FS", "GS")
    for name, cache in (*zip(names, seg, strict=True), ("LDTR", v["ldtr"]), ("TR", v["tr"])):
        _check_segment_fields(name, cache)
    cs, ss = seg[1], seg[2]
    if not cs.valid:
        if ss.valid or cpl != 0:
            raise _inconsistent("CS is unusable outside the reset state")
    else:
        if not (cs.s and cs.executable and cs.present) or not cs.selector & 0xFFFC:
            raise _inconsistent("CS does not hold a present code segment")
        if cs.selector & 3 != cpl:
            raise _inconsistent(f"CS RPL {cs.selector & 3} is not the CPL {cpl}")
        if cs.dpl > cpl if cs.conforming else cs.dpl != cpl:
            raise _inconsistent(f"CS DPL {cs.dpl} does not fit CPL {cpl}")
        if not (ss.valid and ss.s and ss.writable and ss.present) or not ss.selector & 0xFFFC:
            raise _inconsistent("SS does not hold a present writable data segment")
        if ss.dpl != cpl or ss.selector & 3 != cpl:
            raise _inconsistent(f"SS DPL {ss.dpl} / RPL {ss.selector & 3} is not the CPL {cpl}")
    for index in (0, 3, 4, 5):
        d = seg[index]
        if not d.valid:
            continue
        if not (d.s and d.readable and d.present):
            raise _inconsistent(f"{names[index]} does not hold a present readable segment")
        if not d.conforming and d.dpl < cpl:
            raise _inconsistent(f"{names[index]} DPL {d.dpl} is more privileged than CPL {cpl}")
    ldtr, tr = v["ldtr"], v["tr"]
    if ldtr.valid and (ldtr.s or ldtr.type != 2 or not ldtr.present):
        raise _inconsistent("LDTR does not hold a present LDT")
    if tr.valid and (tr.s or tr.type not in (1, 3, 9, 11) or not tr.present):
        raise _inconsistent("TR does not hold a present TSS")
    if v["shutdown_report"] is not None and v["shutdown"] is None:
        raise _inconsistent("a triple-fault report without a shutdown")


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
