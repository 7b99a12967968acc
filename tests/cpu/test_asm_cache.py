"""The assembler's cache on disk (:mod:`lavsim.cpu.asmcache`): a program read back is the program
assembled (image, symbols and line map, in order); a damaged or foreign entry is ignored and
rebuilt, never trusted; ``LAVSIM_CACHE=0`` turns it off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lavsim.cpu import asm, asmcache
from lavsim.cpu.asm import Program, assemble
from lavsim.experiments.rpc import rpc_table
from lavsim.kernel.image import kernel_source
from lavsim.kernel.layout import KERNEL_IMAGE_LINEAR

SOURCE = "start:\n" + "".join(f"    mov eax, {k}\n    add ebx, eax\n" for k in range(60)) + \
    "zed = 5\nalpha:\n    jmp start\n"


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "asm"
    monkeypatch.setenv("LAVSIM_CACHE_DIR", str(directory))
    monkeypatch.delenv("LAVSIM_CACHE", raising=False)
    asm.clear_memo()
    yield directory
    asm.clear_memo()


def _same(a: Program, b: Program) -> None:
    assert a.code == b.code and a.origin == b.origin
    assert list(a.symbols.items()) == list(b.symbols.items())
    assert list(a.line_map.items()) == list(b.line_map.items())


def _assembled_from_disk(monkeypatch: pytest.MonkeyPatch, source: str, origin: int) -> Program:
    """``source`` through :func:`assemble` with the memo empty and the assembler proper
    disabled: only the disk can answer."""
    asm.clear_memo()

    def refuse(source: str, origin: int) -> Program:
        raise AssertionError("assembled again")

    with monkeypatch.context() as patch:
        patch.setattr(asm, "_assemble", refuse)
        return assemble(source, origin)


def test_a_program_read_back_is_the_program_assembled(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = asm._assemble(SOURCE, 0x1000)
    first = assemble(SOURCE, 0x1000)
    _same(first, fresh)
    assert len(list(cache.glob("*.json"))) == 1
    _same(_assembled_from_disk(monkeypatch, SOURCE, 0x1000), fresh)


def test_the_kernel_image_read_back_is_byte_for_byte_the_assembled_one(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = kernel_source()
    fresh = assemble(source, KERNEL_IMAGE_LINEAR)
    _same(_assembled_from_disk(monkeypatch, source, KERNEL_IMAGE_LINEAR), fresh)


def test_every_program_of_an_rpc_table_reads_back_as_assembled(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stubs and kernel a table boots, assembled afresh and read back from disk, are the same
    programs (so a run from the cache is the run without it)."""
    rpc_table(("i486",), (0, 256), calls=2, remote=True)
    keys = list(asm._memo)
    assert len(keys) > 10
    checked = 0
    for source, origin in keys:
        if len(source) < asm.DISK_MIN_CHARS:
            continue
        fresh = asm._assemble(source, origin)
        _same(_assembled_from_disk(monkeypatch, source, origin), fresh)
        checked += 1
    assert checked > 10


def _entry(cache: Path) -> Path:
    (path,) = cache.glob("*.json")
    return path


def _rewrite_body(path: Path, record: object) -> None:
    """A self-consistent entry (its checksum matches) holding ``record``."""
    import hashlib

    head = path.read_bytes().split(b"\n", 1)[0].split(b" ")
    body = json.dumps(record).encode()
    path.write_bytes(b" ".join([head[0], head[1], hashlib.sha256(body).hexdigest().encode()])
                     + b"\n" + body)


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-40]),
    "a flipped byte": lambda p: p.write_bytes(p.read_bytes()[:-30] + b"A" + p.read_bytes()[-29:]),
    "not text": lambda p: p.write_bytes(b"\xff\xfe\x00garbage"),
    "empty": lambda p: p.write_bytes(b""),
    "another key's entry": lambda p: p.write_bytes(
        p.read_bytes().replace(p.stem.encode(), b"0" * 64, 1)),
    "wrong types": lambda p: _rewrite_body(
        p, {"origin": 0x1000, "code": "kA==", "symbols": {"start": "x"}, "lines": []}),
    "a list, not a record": lambda p: _rewrite_body(p, [1, 2, 3]),
    "another origin": lambda p: _rewrite_body(
        p, {"origin": 0, "code": "kA==", "symbols": {}, "lines": []}),
    "bad base64": lambda p: _rewrite_body(
        p, {"origin": 0x1000, "code": "!!", "symbols": {}, "lines": []}),
    "a directory": lambda p: (p.unlink(), p.mkdir()),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_foreign_entry_is_ignored_and_rebuilt(cache: Path, damage: str) -> None:
    fresh = assemble(SOURCE, 0x1000)
    path = _entry(cache)
    DAMAGE[damage](path)
    assert asmcache.load(SOURCE, 0x1000) is None
    asm.clear_memo()
    _same(assemble(SOURCE, 0x1000), fresh)
    if path.is_file():
        assert asmcache.load(SOURCE, 0x1000) is not None  # the good entry took its place


def test_off_with_lavsim_cache_0(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAVSIM_CACHE", "0")
    assemble(SOURCE, 0x1000)
    assert not cache.exists()


def test_an_entry_of_another_assembler_version_never_matches(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = asmcache.entry_key(SOURCE, 0x1000)
    assert key != asmcache.entry_key(SOURCE, 0x1004)
    assert key != asmcache.entry_key(SOURCE + "\n", 0x1000)
    monkeypatch.setattr(asmcache, "assembler_version", lambda: "another")
    assert asmcache.entry_key(SOURCE, 0x1000) != key


def test_a_cache_directory_that_cannot_be_made_changes_nothing(
        cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LAVSIM_CACHE_DIR", str(blocker / "asm"))  # even root cannot mkdir here
    _same(assemble(SOURCE, 0x1000), asm._assemble(SOURCE, 0x1000))
    assert blocker.read_text() == "not a directory"


def test_a_directory_other_users_may_write_is_not_used(cache: Path) -> None:
    cache.mkdir(mode=0o700)
    assemble(SOURCE, 0x1000)
    cache.chmod(0o777)
    try:
        assert asmcache.load(SOURCE, 0x1000) is None
    finally:
        cache.chmod(0o700)


def test_the_directory_is_kept_to_its_bound(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asmcache, "MAX_ENTRIES", 8)
    for k in range(12):
        assemble(SOURCE + f"extra{k}:\n", 0x1000)
    assert 6 <= len(list(cache.glob("*.json"))) <= 8


def test_without_a_home_directory_there_is_no_cache_and_no_error(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAVSIM_CACHE_DIR")

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", no_home)
    assert asmcache.cache_dir() is None
    _same(assemble(SOURCE, 0x1000), asm._assemble(SOURCE, 0x1000))


def test_the_default_place_is_under_the_home_cache(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv("LAVSIM_CACHE_DIR", raising=False)
    monkeypatch.delenv("LAVSIM_CACHE", raising=False)
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    assert asmcache.cache_dir() == tmp_path / ".cache" / "lavsim" / "asm"
