"""The result store (issue 18): every measured point kept in an SQLite file as it finishes.

One row per point, keyed by :func:`point_key`, a hash of everything that determines the
point's figures: the lavsim version (:func:`code_version`: the release and a digest of the
package's code and guest sources), the mechanism and every workload field, the CPU model by
its content (costs, TLBs, CPUID), not by its name. A sweep run again with the same store
(``lavsim sweep ... --store FILE``) reads back the points it finds and measures only the
others, so an interrupted sweep resumes where it stopped.

A store records the version that wrote it and is refused (:class:`StoreError`) by any other,
as is a file that is not a lavsim store; a refused file is never written to.
:func:`read_results` reads a store back (for export and plotting).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from lavsim import __version__
from lavsim.errors import LavsimError
from lavsim.experiments.rpc import Figures
from lavsim.experiments.workload import Workload
from lavsim.models import CpuModel
from lavsim.timing import KEYS

__all__ = [
    "SCHEMA",
    "Store",
    "StoreError",
    "code_version",
    "decode_figures",
    "encode_figures",
    "model_content",
    "point_key",
    "read_results",
]

#: The layout of the tables; a store of another layout is refused.
SCHEMA: Final = "1"
_PACKAGE: Final = Path(__file__).resolve().parents[1]


@functools.cache
def code_version() -> str:
    """``lavsim <release>+<digest>``: the release and the first 12 hex digits of a SHA-256
    over the package's Python and guest-assembly sources, so that two copies of lavsim agree
    only if every line that could move a cycle is the same."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*")):
        if path.suffix in (".py", ".s") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return f"lavsim {__version__}+{digest.hexdigest()[:12]}"


def model_content(model: CpuModel) -> dict[str, object]:
    """What a CPU model is made of, for hashing: its name (tables print it), every cost's
    cycles, its TLB organisation and CPUID signature."""
    return {
        "name": model.name,
        "costs": {k: model.profile.cost(k).cycles for k in KEYS},
        "mmu": repr(model.mmu),
        "cpuid": model.cpuid_signature,
    }


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def workload_content(work: Workload) -> dict[str, object]:
    """Every field of ``work`` (the profile as :func:`model_content`) as JSON values; a field
    added to :class:`Workload` is included without a change here."""
    out: dict[str, object] = {}
    for field in attrs.fields(Workload):
        value = getattr(work, field.name)
        out[field.name] = model_content(work.model) if field.name == "profile" else \
            _jsonable(value)
    return out


def point_key(mechanism: str, work: Workload) -> str:
    """The store's key for ``mechanism`` measured under ``work`` with this lavsim."""
    text = json.dumps({"version": code_version(), "mechanism": mechanism,
                       "workload": workload_content(work)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def encode_figures(cold: Figures, warm: Figures, samples: Iterable[int]) -> str:
    """A point's figures as JSON (floats round-trip exactly)."""
    return json.dumps({"cold": attrs.asdict(cold), "warm": attrs.asdict(warm),
                       "samples": list(samples)})


def decode_figures(text: str) -> tuple[Figures, Figures, tuple[int, ...]]:
    """The inverse of :func:`encode_figures`."""
    data = json.loads(text)
    return Figures(**data["cold"]), Figures(**data["warm"]), tuple(data["samples"])


class StoreError(LavsimError):
    """A result store was refused (another version's, or not a store); names the file."""


_TABLES: Final = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE points (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    idx INTEGER NOT NULL,
    mechanism TEXT NOT NULL,
    label TEXT NOT NULL,
    workload TEXT NOT NULL,
    result TEXT NOT NULL,
    seconds REAL NOT NULL,
    worker TEXT NOT NULL
);
"""


class Store:
    """An open result store (see the module's docstring). ``Store(path)`` creates the file if
    it does not exist; an existing one must have been written by this lavsim."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.version = code_version()
        existed = self.path.exists()
        try:
            if existed:
                # Read-write but never create: a refused file stays as it was.
                self.db = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True)
                self._check()
            else:
                self.db = sqlite3.connect(self.path)
                with self.db:
                    self.db.executescript(_TABLES)
                    self.db.executemany("INSERT INTO meta VALUES (?, ?)",
                                        [("schema", SCHEMA), ("lavsim", self.version)])
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: not a lavsim result store ({exc})") from None

    def _check(self) -> None:
        try:
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            self.db.close()
            raise StoreError(f"{self.path}: not a lavsim result store ({exc})") from None
        if meta.get("schema") != SCHEMA or "lavsim" not in meta:
            self.db.close()
            raise StoreError(f"{self.path}: not a lavsim result store of schema {SCHEMA}")
        if meta["lavsim"] != self.version:
            self.db.close()
            raise StoreError(
                f"{self.path}: written by {meta['lavsim']}, incompatible with this "
                f"{self.version} (its figures may differ); use another store file")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM points").fetchone()[0])

    def lookup(self, keys: Iterable[str]) -> dict[str, str]:
        """The stored result of each of ``keys`` that has one."""
        found: dict[str, str] = {}
        wanted = list(keys)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(
                f"SELECT key, result FROM points WHERE key IN ({marks})", chunk).fetchall())
        return found

    def put(self, key: str, *, experiment: str, index: int, mechanism: str, label: str,
            workload: Workload, result: str, seconds: float, worker: str) -> None:
        """Record one finished point (committed at once, so a killed sweep keeps it)."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, experiment, index, mechanism, label,
                 json.dumps(workload_content(workload), sort_keys=True), result, seconds,
                 worker))

    def rows(self) -> list[dict[str, Any]]:
        """Every point, by experiment then grid index."""
        cursor = self.db.execute("SELECT key, experiment, idx, mechanism, label, workload, "
                                 "result, seconds, worker FROM points "
                                 "ORDER BY experiment, idx, key")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


_FIGURES: Final = ("cycles", "instructions", "kernel_entries", "context_switches",
                   "cr3_loads", "tlb_misses", "message_copies", "bytes_copied", "gate_calls")


def read_results(path: str | Path) -> list[dict[str, object]]:
    """Every point of the store at ``path`` as a flat record (experiment, index, mechanism,
    the workload's fields, then ``warm_*``/``cold_*`` figures and each phase's warm cycles),
    in a deterministic order: for export and plotting."""
    with Store(path) as store:
        rows = store.rows()
    out: list[dict[str, object]] = []
    for row in rows:
        cold, warm, _ = decode_figures(row["result"])
        work: Mapping[str, object] = json.loads(row["workload"])
        record: dict[str, object] = {"experiment": row["experiment"], "index": row["idx"],
                                     "mechanism": row["mechanism"]}
        for name, value in work.items():
            record[name] = value["name"] if isinstance(value, dict) else value  # the model
        for prefix, figures in (("warm", warm), ("cold", cold)):
            record.update({f"{prefix}_{f}": getattr(figures, f) for f in _FIGURES})
        record.update({f"phase {p}": c for p, c in warm.phases.items()})
        out.append(record)
    return out


def export(records: list[dict[str, object]], fmt: str) -> str:
    """``records`` (from :func:`read_results`) as ``csv`` or ``json`` text."""
    if fmt == "json":
        return json.dumps(records, indent=1)
    buffer = io.StringIO()
    fields = list(dict.fromkeys(k for r in records for k in r)) or ["experiment"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()
