"""Sharing by segment exposes exactly the shared bytes; sharing by pages exposes the rest of
the pages too (issue 5's leakage experiment, measured by guest probes in the importer)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lavsim.errors import ConfigError
from lavsim.kernel import layout as L
from lavsim.kernel.leakage import (
    MAX_OBJECT,
    architectural_leak,
    probe_batch,
    random_objects,
    summarize,
)

objects = st.lists(
    st.tuples(st.integers(1, MAX_OBJECT), st.integers(0, 12), st.integers(0, L.PAGE_SIZE - 1)),
    min_size=1, max_size=6,
)  # fmt: skip


@settings(max_examples=6)
@given(objects)
def test_a_segment_share_exposes_exactly_the_object_and_a_page_share_its_pages(
    raw: list[tuple[int, int, int]],
) -> None:
    batch = [(size, 1 << k, offset & ~((1 << k) - 1)) for size, k, offset in raw]
    results = probe_batch(batch)
    assert len(results) == 2 * len(batch)
    for r in results:
        # The probe read every byte up to the limit, saw the whole object, and the next
        # byte faulted.
        assert r.boundary_faulted and r.object_seen == r.size
        assert r.leaked == architectural_leak(r.method, r.size, r.offset_in_page)
        if r.method == "segment":
            assert r.readable == r.size and r.leaked == 0
        else:
            assert r.readable % L.PAGE_SIZE == 0 and r.leaked == r.readable - r.size


def test_by_pages_objects_leak_on_average_by_segments_nothing_does() -> None:
    results = probe_batch(random_objects(40, seed=5))
    by_method = {s.method: s for s in summarize(results)}
    assert by_method["segment"].mean == 0 and by_method["segment"].zero == 40
    # Random alignment: about a page (half a page on each side of the object).
    assert L.PAGE_SIZE * 0.6 < by_method["pages"].mean < L.PAGE_SIZE * 1.4
    aligned = summarize(probe_batch(random_objects(40, seed=6, page_aligned=True)))
    pages = next(s for s in aligned if s.method == "pages")
    # Page-aligned starts: the paper's half a page.
    assert L.PAGE_SIZE * 0.3 < pages.mean < L.PAGE_SIZE * 0.7


def test_page_share_refuses_bytes_outside_the_data_segment() -> None:
    import pytest

    from lavsim.kernel import LavenderSystem

    system = LavenderSystem(memory_size=4 << 20, timer_period=0)
    group = system.create_group()
    a = system.create_process(group, "main:\n    int 0x30\n", data_size=100)
    b = system.create_process(group, "main:\n    int 0x30\n")
    frames = system.frames.available
    with pytest.raises(ConfigError) as info:
        system.sharing.share_pages(a, 90, 20, b)
    assert info.value.field == "offset"
    assert system.frames.available == frames and not system.sharing.page_shares
