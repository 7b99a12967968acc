"""PhysicalMemory: sparse frames, little-endian access, bounds, bulk operations, digest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lavsim.errors import ConfigError, MemoryAccessError
from lavsim.memory import PAGE_SIZE, PhysicalMemory

MiB = 1 << 20


@pytest.mark.parametrize("size", [0, 100, 4095, 4097, (4 << 30) + 4096, -4096])
def test_bad_installed_size_is_refused_naming_the_field(size: int) -> None:
    with pytest.raises(ConfigError) as info:
        PhysicalMemory(size)
    assert info.value.field == "size"


def test_non_int_size_is_refused() -> None:
    with pytest.raises(ConfigError):
        PhysicalMemory(4096.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        PhysicalMemory(True)  # type: ignore[arg-type]


def test_four_gib_installs_without_allocating() -> None:
    mem = PhysicalMemory(4 << 30)
    assert mem.pages_touched == 0
    assert mem.read32(0xFFFFFFFC) == 0
    assert mem.pages_touched == 0  # reading never-written memory allocates nothing
    mem.write8(0xFFFFFFFF, 0xAB)
    assert mem.read8(0xFFFFFFFF) == 0xAB
    assert mem.allocated_frames() == [0xFFFFF]


def test_scalar_access_is_little_endian() -> None:
    mem = PhysicalMemory(MiB)
    mem.write32(0x100, 0x11223344)
    assert mem.read(0x100, 4) == bytes([0x44, 0x33, 0x22, 0x11])
    assert mem.read16(0x101) == 0x2233
    assert mem.read8(0x103) == 0x11
    mem.write16(0x200, 0xBEEF)
    assert mem.read(0x200, 2) == b"\xef\xbe"


@pytest.mark.parametrize("addr", [0xFFD, 0xFFE, 0xFFF, 0x1FFF])
def test_page_crossing_scalars_round_trip(addr: int) -> None:
    mem = PhysicalMemory(MiB)
    mem.write32(addr, 0xCAFEBABE)
    assert mem.read32(addr) == 0xCAFEBABE
    assert mem.read(addr, 4) == (0xCAFEBABE).to_bytes(4, "little")
    mem.write16(addr, 0x1234)
    assert mem.read16(addr) == 0x1234


def test_values_are_truncated_to_the_access_size() -> None:
    mem = PhysicalMemory(MiB)
    mem.write8(0, 0x1FF)
    mem.write16(2, 0x12345)
    mem.write32(4, 0x1_0000_0002)
    assert mem.read8(0) == 0xFF
    assert mem.read16(2) == 0x2345
    assert mem.read32(4) == 2


@pytest.mark.parametrize(
    ("addr", "n"), [(-1, 1), (MiB, 1), (MiB - 3, 4), (MiB - 1, 2), (MiB + 4096, 4)]
)
def test_access_outside_installed_memory_raises_and_writes_nothing(addr: int, n: int) -> None:
    mem = PhysicalMemory(MiB)
    before = mem.digest()
    with pytest.raises(MemoryAccessError):
        mem.write(addr, b"\x55" * n)
    with pytest.raises(MemoryAccessError):
        mem.read(addr, n)
    if n == 4:
        with pytest.raises(MemoryAccessError):
            mem.write32(addr, 0x55555555)
        with pytest.raises(MemoryAccessError):
            mem.read32(addr)
    if n == 1:
        with pytest.raises(MemoryAccessError):
            mem.read8(addr)
    assert mem.digest() == before
    assert mem.pages_touched == 0


def test_refused_bulk_write_straddling_the_end_leaves_the_last_frame_untouched() -> None:
    mem = PhysicalMemory(2 * PAGE_SIZE)
    with pytest.raises(MemoryAccessError):
        mem.write(2 * PAGE_SIZE - 2, b"\x01\x02\x03\x04")
    with pytest.raises(MemoryAccessError):
        mem.fill(PAGE_SIZE, PAGE_SIZE + 1, 0xFF)
    with pytest.raises(MemoryAccessError):
        mem.copy(PAGE_SIZE + 10, 0, PAGE_SIZE)
    assert mem.read(0, 2 * PAGE_SIZE) == bytes(2 * PAGE_SIZE)


def test_frame_view_aliases_the_frame() -> None:
    mem = PhysicalMemory(MiB)
    view = mem.frame_view(3)
    assert len(view) == PAGE_SIZE and view.format == "B"
    view[8] = 0x7E
    assert mem.read8(3 * PAGE_SIZE + 8) == 0x7E
    mem.write32(3 * PAGE_SIZE + 16, 0x01020304)
    assert bytes(view[16:20]) == b"\x04\x03\x02\x01"
    with pytest.raises(MemoryAccessError):
        mem.frame_view(MiB // PAGE_SIZE)


def test_bulk_copy_behaves_like_memmove() -> None:
    mem = PhysicalMemory(MiB)
    data = bytes(range(256)) * 40  # 10240 bytes: crosses frames
    mem.write(0x0FF0, data)
    mem.copy(0x1000, 0x0FF0, len(data))  # overlapping, dst above src
    assert mem.read(0x1000, len(data)) == data
    mem.copy(0x0F00, 0x1000, len(data))  # overlapping, dst below src
    assert mem.read(0x0F00, len(data)) == data


def test_fill_sets_bytes_across_pages_and_zero_fill_stays_sparse() -> None:
    mem = PhysicalMemory(MiB)
    mem.fill(0x0FFE, 5, 0x1AA)
    assert mem.read(0x0FFD, 7) == b"\x00\xaa\xaa\xaa\xaa\xaa\x00"
    touched = mem.pages_touched
    mem.fill(0x10000, 3 * PAGE_SIZE, 0)
    assert mem.pages_touched == touched


def test_digest_depends_on_contents_only() -> None:
    a = PhysicalMemory(MiB)
    b = PhysicalMemory(MiB)
    b.frame_view(7)  # allocated, all zero
    assert a.digest() == b.digest()
    a.write8(0x5000, 1)
    assert a.digest() != b.digest()
    b.write8(0x5000, 1)
    assert a.digest() == b.digest()


@given(
    addr=st.integers(0, 3 * PAGE_SIZE),
    data=st.binary(min_size=0, max_size=2 * PAGE_SIZE + 3),
)
def test_bulk_write_then_read_round_trips(addr: int, data: bytes) -> None:
    mem = PhysicalMemory(8 * PAGE_SIZE)
    mem.write(addr, data)
    assert mem.read(addr, len(data)) == data
    for i in range(0, len(data) - 3, 997):
        assert mem.read32(addr + i) == int.from_bytes(data[i : i + 4], "little")
