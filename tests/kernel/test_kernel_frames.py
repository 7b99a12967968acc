"""The boot loader's physical frame allocator (lavsim.kernel.frames)."""

from __future__ import annotations

import pytest

from lavsim.errors import ConfigError
from lavsim.kernel.frames import FrameAllocator


def test_frames_are_handed_out_lowest_first() -> None:
    frames = FrameAllocator(0x10000, 0x20000)
    assert frames.total == 16
    assert frames.allocate(3) == [0x10, 0x11, 0x12]
    assert frames.allocate_one() == 0x13
    assert frames.available == 12
    assert frames.in_use == 4


def test_a_request_that_cannot_be_met_allocates_nothing() -> None:
    frames = FrameAllocator(0, 0x4000)
    frames.allocate(1)
    with pytest.raises(ConfigError) as info:
        frames.allocate(4, "memory_size")
    assert info.value.field == "memory_size"
    assert frames.available == 3
    assert frames.allocate(3) == [1, 2, 3]


def test_freed_frames_are_reused_lowest_first() -> None:
    frames = FrameAllocator(0, 0x10000)
    got = frames.allocate(6)
    frames.free([got[4], got[1]])
    assert not frames.is_allocated(got[1])
    assert frames.allocate(3) == [1, 4, 6]


def test_freeing_a_frame_not_allocated_is_refused_and_changes_nothing() -> None:
    frames = FrameAllocator(0, 0x10000)
    a = frames.allocate(2)
    with pytest.raises(ValueError):
        frames.free([a[0], 9])
    assert frames.is_allocated(a[0])


def test_misaligned_range_is_refused() -> None:
    with pytest.raises(ConfigError):
        FrameAllocator(0x800, 0x10000)
