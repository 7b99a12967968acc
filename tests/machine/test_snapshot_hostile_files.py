"""Hostile snapshot files: every bad file is refused with a SnapshotError that names what is
wrong, in bounded memory (nothing is decompressed beyond what the header admits), and
nothing is changed; bit flips anywhere in a good file never let another exception out."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bare_machines import machine

from lavsim.snapshot import Snapshot, SnapshotError, take_snapshot


def good_file(tmp_path: Path) -> tuple[Path, Snapshot]:
    m = machine(bytes([0x90, 0xB0, 0x41, 0xE6, 0xE9, 0xFA, 0xF4]))
    m.run()
    path = tmp_path / "good.npz"
    snap = take_snapshot(m)
    snap.save(path)
    return path, snap


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_members(path: Path, items: dict[str, bytes], deflate: bool = True) -> None:
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in items.items():
            z.writestr(name, data)


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def test_bit_flips_anywhere_in_a_file_give_a_snapshot_error_or_the_same_snapshot(
    tmp_path: Path,
) -> None:
    path, snap = good_file(tmp_path)
    raw = path.read_bytes()
    bad = tmp_path / "flipped.npz"
    refused = 0
    for k in range(0, len(raw), 3):
        for bit in (0, 5):
            flipped = bytearray(raw)
            flipped[k] ^= 1 << bit
            bad.write_bytes(bytes(flipped))
            try:
                loaded = Snapshot.load(bad)
            except SnapshotError:
                refused += 1
            else:
                assert loaded.digest() == snap.digest()
    assert refused > len(raw) // 3


def test_a_flipped_bit_in_compressed_data_names_the_member(tmp_path: Path) -> None:
    path, _ = good_file(tmp_path)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("frames.npy")
    raw = bytearray(path.read_bytes())
    # The first byte of frames.npy's deflate stream (after its local header, name and extra
    # field): the block header, whose type 3 is invalid.
    local = info.header_offset
    start = local + 30 + int.from_bytes(raw[local + 26:local + 28], "little") + int.from_bytes(
        raw[local + 28:local + 30], "little")
    raw[start] |= 0x06
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(SnapshotError, match="frames"):
        Snapshot.load(bad)


def test_deeply_nested_metadata_is_refused(tmp_path: Path) -> None:
    path, _ = good_file(tmp_path)
    items = members(path)
    for depth in (100, 100_000):
        text = (b'{"format": "lavsim-snapshot", "version": 1, "config": {}, "state": {"x": '
                + b"[" * depth + b"]" * depth + b"}}")
        bad = tmp_path / f"nested{depth}.npz"
        write_members(bad, {**items, "meta.npy": npy(np.frombuffer(text, dtype=np.uint8))})
        with pytest.raises(SnapshotError, match=r"metadata.*nested"):
            Snapshot.load(bad)


def bomb(path: Path, items: dict[str, bytes], name: str, shape: tuple[int, ...],
         fill: int) -> None:
    """A member whose header claims ``shape`` (uint8) and whose deflated data is ``fill``
    zero bytes (a few hundred kB on disk for hundreds of MB decompressed)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for other, data in items.items():
            if other != name:
                z.writestr(other, data)
        with z.open(name, "w", force_zip64=True) as f:
            f.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(fill >> 20):
                f.write(chunk)


@pytest.mark.parametrize(("name", "shape", "fill"), [
    ("frames.npy", (1 << 16, 4096), 128 << 20),   # more frames than the machine has
    ("frames.npy", (1, 4096), 128 << 20),          # a small header, then 128 MB of data
    ("meta.npy", (1 << 30,), 64 << 20),            # a metadata array of a gigabyte
    ("console.npy", (1 << 31,), 64 << 20),         # a console of 2 GB
])
def test_a_small_file_that_decompresses_to_a_huge_array_is_refused_in_bounded_memory(
    tmp_path: Path, name: str, shape: tuple[int, ...], fill: int
) -> None:
    path, _ = good_file(tmp_path)
    bad = tmp_path / "bomb.npz"
    bomb(bad, members(path), name, shape, fill)
    assert bad.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(SnapshotError, match=name.split(".")[0]):
            Snapshot.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
