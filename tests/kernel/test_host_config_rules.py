"""Host-facing configuration the kernel API must refuse (issue 19, finding 8): a boolean
parameter given anything but a bool (``writable="no"`` is truthy and used to give a writable
descriptor), and a timer period shorter than the kernel's tick path (the next tick arrives
before the interrupted thread runs again: the system livelocks without an error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lavsim.cluster import Cluster
from lavsim.errors import ConfigError
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.leakage import random_objects
from lavsim.kernel.system import TIMER_PERIOD_MIN
from lavsim.kernel.tables import read_descriptor
from lavsim.mmu import descriptors as d

IDLE = """
main:
    mov eax, 0
    mov ebx, 0
    int 0x30
"""

NOT_BOOLS = ["no", 1, 0, None, [], 1.0]


def _system() -> LavenderSystem:
    return LavenderSystem(memory_size=4 << 20, timer_period=0)


def test_export_data_writable_no_is_refused_not_a_writable_segment() -> None:
    system = _system()
    owner = system.create_process(system.create_group(), IDLE, data_size=256)
    with pytest.raises(ConfigError, match="writable"):
        system.sharing.export_data(owner, 64, writable="no")  # type: ignore[arg-type]
    assert system.sharing.data_exports == []
    # A real False still gives a read-only segment.
    export = system.sharing.export_data(owner, 64, writable=False)
    desc = read_descriptor(system.memory, L.LDT_PHYS + owner.pid * L.LDT_BYTES, export.slot)
    assert isinstance(desc, d.SegmentDescriptor) and desc.type == d.DATA_READ_ONLY


def _calls() -> dict[str, Callable[[Any], object]]:
    def export_data(value: Any) -> object:
        system = _system()
        owner = system.create_process(system.create_group(), IDLE, data_size=256)
        return system.sharing.export_data(owner, 64, writable=value)

    def import_data(value: Any) -> object:
        system = _system()
        group = system.create_group()
        owner = system.create_process(group, IDLE, data_size=256)
        importer = system.create_process(group, IDLE)
        export = system.sharing.export_data(owner, 64, writable=True)
        return system.sharing.import_data(importer, export, writable=value)

    def share_pages(value: Any) -> object:
        system = _system()
        group = system.create_group()
        owner = system.create_process(group, IDLE, data_size=8192)
        importer = system.create_process(group, IDLE)
        return system.sharing.share_pages(owner, 0, 64, importer, writable=value)

    def cluster_down(value: Any) -> object:
        cluster = Cluster(1, network_servers=False, name_servers=False, timer_period=0)
        cluster.down(1, value)
        return cluster

    return {
        "export_data.writable": export_data,
        "import_data.writable": import_data,
        "share_pages.writable": share_pages,
        "LavenderSystem.observe": lambda v: LavenderSystem(memory_size=4 << 20, observe=v),
        "LavenderSystem.global_pages": lambda v: LavenderSystem(memory_size=4 << 20,
                                                                global_pages=v),
        "Cluster.observe": lambda v: Cluster(1, observe=v),
        "Cluster.network_servers": lambda v: Cluster(1, network_servers=v),
        "Cluster.name_servers": lambda v: Cluster(1, name_servers=v),
        "Cluster.down.is_down": cluster_down,
        "random_objects.page_aligned": lambda v: random_objects(3, 1, page_aligned=v),
    }


@pytest.mark.parametrize("call", sorted(_calls()))
@pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
def test_every_boolean_parameter_refuses_anything_but_a_bool(call: str, value: object) -> None:
    field = call.rsplit(".", 1)[1]
    if call == "import_data.writable" and value is None:
        _calls()[call](value)  # None: the export's own writability (the documented default)
        return
    with pytest.raises(ConfigError, match=field):
        _calls()[call](value)


@pytest.mark.parametrize("call", sorted(_calls()))
@pytest.mark.parametrize("value", [True, False])
def test_every_boolean_parameter_takes_a_bool(call: str, value: bool) -> None:
    _calls()[call](value)


# --- the timer period ---------------------------------------------------------------------

WORK = """
main:
    mov ecx, 200
.Lloop:
    inc dword ptr [0]
    dec ecx
    jnz .Lloop
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


@pytest.mark.parametrize("period", [1, 100, 200, TIMER_PERIOD_MIN - 1])
def test_a_timer_period_shorter_than_the_tick_path_is_refused(period: int) -> None:
    with pytest.raises(ConfigError, match=f"timer_period.*{TIMER_PERIOD_MIN}"):
        LavenderSystem(memory_size=4 << 20, timer_period=period)
    with pytest.raises(ConfigError, match="timer_period"):
        Cluster(1, timer_period=period)


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_at_the_minimum_timer_period_threads_switching_address_spaces_make_progress(
    profile: str,
) -> None:
    # The longest tick path measured: a switch to another group (LLDT, CR3 load) without
    # global pages, so the kernel's own TLB entries go too.
    system = LavenderSystem(profile=profile, memory_size=8 << 20,
                            timer_period=TIMER_PERIOD_MIN, global_pages=False, observe=False)
    for _ in range(3):
        system.create_thread(system.create_process(system.create_group(), WORK, data_size=16))
    outcome = system.run(max_cycles=2_000_000)
    assert outcome.status == "done", outcome
