"""Per-access segment checks (Intel SDM Vol. 3, 5.3 limit checking and 5.5 type checking):
limit, granularity, expand-down with B, read/write/execute types, unusable segments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lavsim.faults import GP, SS, CpuFault
from lavsim.mmu import descriptors as d
from lavsim.mmu.descriptors import SegmentDescriptor
from lavsim.mmu.segmentation import SegmentCache, check_access, check_fetch


def cache(
    type_: int, limit: int, *, base: int = 0, g: bool = False, db: bool = True
) -> SegmentCache:
    return SegmentCache.from_descriptor(0x10, SegmentDescriptor(base, limit, type_, g=g, db=db))


RW = d.DATA_READ_WRITE
RO = d.DATA_READ_ONLY
RW_DOWN = d.DATA_READ_WRITE_EXPAND_DOWN
XR = d.CODE_EXECUTE_READ
XO = d.CODE_EXECUTE_ONLY

# name, cache, offset, size, write, accepted
CASES = [
    ("expand-up last byte inside byte limit", cache(RW, 0xFF), 0xFF, 1, False, True),
    ("expand-up word straddling the limit", cache(RW, 0xFF), 0xFF, 2, False, False),
    ("expand-up first byte past the limit", cache(RW, 0xFF), 0x100, 1, True, False),
    ("expand-up dword ending exactly at the limit", cache(RW, 0xFF), 0xFC, 4, True, True),
    ("limit 0 byte-granular allows offset 0 only", cache(RW, 0), 0, 1, False, True),
    ("limit 0 byte-granular refuses offset 1", cache(RW, 0), 1, 1, False, False),
    ("G=1 limit 0 covers the first 4 KiB", cache(RW, 0, g=True), 0xFFC, 4, False, True),
    ("G=1 limit 0 stops at 4 KiB", cache(RW, 0, g=True), 0xFFD, 4, False, False),
    ("G=1 limit 0xFFFFF covers 4 GiB", cache(RW, 0xFFFFF, g=True), 0xFFFFFFFC, 4, True, True),
    ("access wrapping past 4 GiB is refused", cache(RW, 0xFFFFF, g=True), 0xFFFFFFFE, 4,
     False, False),
    ("expand-down refuses the limit itself", cache(RW_DOWN, 0xFFF), 0xFFF, 1, False, False),
    ("expand-down accepts limit + 1", cache(RW_DOWN, 0xFFF), 0x1000, 4, True, True),
    ("expand-down refuses a word straddling limit", cache(RW_DOWN, 0xFFF), 0xFFF, 2, False,
     False),
    ("expand-down B=1 reaches 0xFFFFFFFF", cache(RW_DOWN, 0xFFF), 0xFFFFFFFC, 4, False, True),
    ("expand-down B=0 reaches 0xFFFF", cache(RW_DOWN, 0xFFF, db=False), 0xFFFE, 2, False, True),
    ("expand-down B=0 stops at 0xFFFF", cache(RW_DOWN, 0xFFF, db=False), 0xFFFF, 2, False,
     False),
    ("expand-down B=0 refuses 0x10000", cache(RW_DOWN, 0xFFF, db=False), 0x10000, 1, False,
     False),
    ("expand-down G=1 lower bound is scaled limit + 1",
     cache(RW_DOWN, 0xFFFFE, g=True), 0xFFFFF000, 1, False, True),
    ("expand-down G=1 refuses the scaled limit", cache(RW_DOWN, 0xFFFFE, g=True), 0xFFFFEFFF,
     1, False, False),
    ("expand-down with limit 0xFFFFFFFF is empty", cache(RW_DOWN, 0xFFFFF, g=True),
     0xFFFFFFFF, 1, False, False),
    ("read of read-only data", cache(RO, 0xFF), 0, 4, False, True),
    ("write to read-only data", cache(RO, 0xFF), 0, 4, True, False),
    ("read of readable code", cache(XR, 0xFF), 0, 4, False, True),
    ("write to readable code", cache(XR, 0xFF), 0, 4, True, False),
    ("read of execute-only code", cache(XO, 0xFF), 0, 1, False, False),
    ("write to execute-only code", cache(XO, 0xFF), 0, 1, True, False),
    ("read through a null-loaded register", SegmentCache.null(0), 0, 1, False, False),
    ("write through a null-loaded register", SegmentCache.null(3), 0, 1, True, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "seg", "offset", "size", "write", "accepted"), CASES, ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("stack", [False, True], ids=["via DS", "via SS"])
def test_access_rule(
    name: str,
    seg: SegmentCache,
    offset: int,
    size: int,
    write: bool,
    accepted: bool,
    stack: bool,
) -> None:
    if accepted:
        assert check_access(seg, offset, size, write, stack) == seg.base + offset
    else:
        with pytest.raises(CpuFault) as info:
            check_access(seg, offset, size, write, stack)
        # Faults through SS are #SS(0), every other segment #GP(0) (SDM Vol. 3, 5.3).
        assert info.value == CpuFault(SS if stack else GP, 0)


def test_linear_address_wraps_modulo_4_gib() -> None:
    seg = cache(RW, 0xFFFFF, base=0xFFFFF000, g=True)
    assert check_access(seg, 0x2000, 4, False) == 0x1000


def test_flat_helper_covers_4_gib_with_the_requested_dpl() -> None:
    code = SegmentCache.flat(0x1B, 3, code=True)
    data = SegmentCache.flat(0x23, 3, code=False)
    assert (code.min_off, code.max_off, code.dpl) == (0, 0xFFFFFFFF, 3)
    assert code.executable and code.readable and not code.writable
    assert data.writable and not data.executable
    assert check_access(data, 0xFFFFFFFC, 4, True) == 0xFFFFFFFC


def test_null_cache_has_an_empty_offset_range() -> None:
    seg = SegmentCache.null(0)
    assert not seg.valid and seg.min_off > seg.max_off
    assert not (seg.readable or seg.writable or seg.executable)


def test_fetch_inside_execute_only_code_is_accepted() -> None:
    assert check_fetch(cache(XO, 0xFF, base=0x4000), 0xFC, 4) == 0x40FC


@pytest.mark.parametrize(("offset", "size"), [(0x100, 1), (0xFF, 2), (0xFFFFFFFF, 1)])
def test_fetch_beyond_cs_limit_is_gp0(offset: int, size: int) -> None:
    with pytest.raises(CpuFault) as info:
        check_fetch(cache(XO, 0xFF), offset, size)
    assert info.value == CpuFault(GP, 0)


def test_refresh_recomputes_the_hot_range_after_an_edit() -> None:
    seg = cache(RW, 0xFF)
    seg.limit = 0x1FF
    seg.refresh()
    assert check_access(seg, 0x1FF, 1, True) == 0x1FF


# --- property: nothing outside a segment's range, or against its type, is accepted -------

code_data_descriptors = st.builds(
    SegmentDescriptor,
    base=st.integers(0, 0xFFFFFFFF),
    limit=st.integers(0, 0xFFFFF),
    type=st.integers(0, 15),
    g=st.booleans(),
    db=st.booleans(),
)


def manual_allows(desc: SegmentDescriptor, offset: int, size: int, write: bool) -> bool:
    """The rule restated from SDM Vol. 3, 5.3 and table 3-1, independently of the cache."""
    code = bool(desc.type & 8)
    if write and (code or not desc.type & 2):
        return False
    if not write and code and not desc.type & 2:
        return False
    limit = (desc.limit << 12) | 0xFFF if desc.g else desc.limit
    if not code and desc.type & 4:
        low, high = limit + 1, 0xFFFFFFFF if desc.db else 0xFFFF
    else:
        low, high = 0, limit
    return all(low <= b <= high for b in range(offset, offset + size))


@given(
    code_data_descriptors,
    st.data(),
    st.sampled_from([1, 2, 4]),
    st.booleans(),
    st.booleans(),
)
def test_no_access_outside_the_segment_is_accepted(
    desc: SegmentDescriptor, data: st.DataObject, size: int, write: bool, stack: bool
) -> None:
    limit = desc.effective_limit
    # Draw offsets around the interesting edges as well as anywhere.
    near = st.integers(max(0, limit - 4), min(0xFFFFFFFF, limit + 4))
    top16 = st.integers(0xFFF8, 0x10004)
    top32 = st.integers(0xFFFFFFF8, 0xFFFFFFFF)
    offset = data.draw(st.one_of(st.integers(0, 0xFFFFFFFF), near, top16, top32))
    seg = SegmentCache.from_descriptor(0x10, desc)
    allowed = manual_allows(desc, offset, size, write)
    try:
        linear = check_access(seg, offset, size, write, stack)
    except CpuFault as fault:
        assert not allowed, f"refused a legal access: {fault}"
        assert fault == CpuFault(SS if stack else GP, 0)
    else:
        assert allowed, "accepted an access the manual refuses"
        assert linear == (desc.base + offset) & 0xFFFFFFFF
