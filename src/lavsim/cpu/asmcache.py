"""A cache on disk of assembled programs, so a new process does not assemble again what an
earlier one did (the kernel image alone takes a quarter of a second).

An entry is keyed by a SHA-256 over the cache format, the assembler's version (a digest of
``asm.py`` and ``isa.py``, the two files its output depends on), the origin and the source; it
is one file ``<key>.json`` in ``$LAVSIM_CACHE_DIR`` (default ``~/.cache/lavsim/asm``; set
``LAVSIM_CACHE=0`` to turn the cache off). The file's first line names the format, the key and
a SHA-256 of the rest, a JSON record of the image, the symbols and the line map, each checked
for its type. Anything that does not match (a damaged file, another key's file under this
name, a record of the wrong shape, an unreadable file) is ignored: the caller assembles again
and writes a good entry in its place. Nothing read is ever executed (no pickle), and a cache
directory writable by other users is not used at all.

Writes go to a temporary file renamed into place, so processes assembling the same source at
once leave one whole entry. The directory is kept to :data:`MAX_ENTRIES` files (the oldest
removed first).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["FORMAT", "MAX_ENTRIES", "cache_dir", "entry_key", "load", "save"]

#: The first word of every entry; a change of layout changes it (and so every key).
FORMAT = "lavsim-asm-cache-1"
#: Most entries kept; a write past it removes the oldest quarter.
MAX_ENTRIES = 1024
#: Largest entry read (a larger file is not one of ours).
_MAX_FILE = 64 << 20

_log = logging.getLogger("lavsim.cpu.asmcache")

#: What one entry holds: image, symbols (in the assembler's order), line map (in order).
Entry = tuple[bytes, dict[str, int], dict[int, int]]


@functools.cache
def assembler_version() -> str:
    """A digest of the assembler's sources: an entry made by another assembler never matches."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in ("asm.py", "isa.py"):
        digest.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return digest.hexdigest()


def cache_dir() -> Path | None:
    """Where entries live, or None when ``LAVSIM_CACHE=0`` turns the cache off (or there is no
    home directory to put it in)."""
    if os.environ.get("LAVSIM_CACHE", "1").strip() == "0":
        return None
    configured = os.environ.get("LAVSIM_CACHE_DIR")
    if configured:
        return Path(configured)
    try:
        return Path.home() / ".cache" / "lavsim" / "asm"
    except (RuntimeError, KeyError, OSError):  # no HOME and no password entry: no cache
        return None


def entry_key(source: str, origin: int) -> str:
    """The key of ``source`` assembled at ``origin``."""
    digest = hashlib.sha256()
    digest.update(f"{FORMAT}\0{assembler_version()}\0{origin}\0".encode())
    digest.update(source.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _usable(directory: Path) -> bool:
    # Another user's entries would be trusted as our assembler's output: refuse such a place.
    try:
        info = directory.stat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return False
    return not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(data: bytes, key: str, origin: int) -> Entry | None:
    head, newline, body = data.partition(b"\n")
    if not newline or head.split(b" ") != [FORMAT.encode(), key.encode(),
                                           hashlib.sha256(body).hexdigest().encode()]:
        return None
    try:
        record = json.loads(body)
        if not isinstance(record, dict) or record.get("origin") != origin:
            return None
        code_text, symbols, lines = record["code"], record["symbols"], record["lines"]
        if not (isinstance(code_text, str) and isinstance(symbols, dict)
                and isinstance(lines, list)):
            return None
        code = base64.b64decode(code_text, validate=True)
    except (ValueError, KeyError, RecursionError):
        return None
    if not all(isinstance(k, str) and _is_int(v) for k, v in symbols.items()):
        return None
    if not all(isinstance(p, list) and len(p) == 2 and _is_int(p[0]) and _is_int(p[1])
               for p in lines):
        return None
    line_map = {a: n for a, n in lines}
    if len(line_map) != len(lines):
        return None
    return code, symbols, line_map


def load(source: str, origin: int) -> Entry | None:
    """The cached program of ``source`` at ``origin``, or None (no cache, no entry, or an entry
    that does not check out)."""
    directory = cache_dir()
    if directory is None or not _usable(directory):
        return None
    key = entry_key(source, origin)
    path = directory / f"{key}.json"
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except OSError:
        return None
    entry = _parse(data, key, origin) if len(data) <= _MAX_FILE else None
    if entry is None:
        _log.debug("ignoring the damaged or foreign cache entry %s", path)
    return entry


def save(source: str, origin: int, entry: Entry) -> None:
    """Store a program assembled from ``source`` at ``origin`` (quietly nothing if the cache is
    off or its directory cannot be made or written)."""
    directory = cache_dir()
    if directory is None:
        return
    code, symbols, line_map = entry
    key = entry_key(source, origin)
    body = json.dumps({"origin": origin, "code": base64.b64encode(code).decode("ascii"),
                       "symbols": symbols, "lines": [[a, n] for a, n in line_map.items()]},
                      separators=(",", ":")).encode()
    data = f"{FORMAT} {key} {hashlib.sha256(body).hexdigest()}\n".encode() + body
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _usable(directory):
            return
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, directory / f"{key}.json")
        except BaseException:
            os.unlink(temp)
            raise
        _prune(directory)
    except OSError as error:
        _log.debug("cannot write the assembler cache in %s: %s", directory, error)


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process
        return 0.0


def _prune(directory: Path) -> None:
    entries = [p for p in directory.iterdir() if p.suffix == ".json"]
    if len(entries) <= MAX_ENTRIES:
        return
    for old in sorted(entries, key=_age)[: len(entries) - MAX_ENTRIES * 3 // 4]:
        with contextlib.suppress(OSError):
            old.unlink()
