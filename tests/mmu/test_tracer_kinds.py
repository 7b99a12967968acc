"""The tracer protocol's ``access_kinds`` (lavsim.mmu.mmu.MemoryTracer): a tracer that names the
kinds it consumes is called for those only, no fetch window is reported while no tracer wants
``FETCH``, and none of this changes a simulated result."""

from __future__ import annotations

from typing import Any

import pytest

from lavsim.boards import get_board
from lavsim.cpu.asm import assemble
from lavsim.errors import ConfigError
from lavsim.machine import Machine
from lavsim.mmu.mmu import Access

Event = tuple[Access, int, int, bool]

#: A loop with a load, a store and a branch (run long enough to be translated).
LOOP = """
    mov esi, 0x20000
    mov ecx, 200
again:
    mov eax, dword ptr [esi]
    add eax, ecx
    mov dword ptr [esi+4], eax
    dec ecx
    jnz again
    hlt
"""


class _Recorder:
    """Every event it is given, in order; ``kinds``: its ``access_kinds`` (None: no attribute)."""

    def __init__(self, kinds: frozenset[Access] | None = None) -> None:
        self.events: list[Event] = []
        if kinds is not None:
            self.access_kinds = kinds

    def on_access(self, kind: Access, phys: int, size: int, user: bool) -> None:
        self.events.append((kind, phys, size, user))


def _run(*tracers: Any, translate: bool = True) -> tuple[object, ...]:
    """Run LOOP with ``tracers`` attached (``translate``: the CPU's translator on); the run's
    outcome."""
    m = Machine()
    m.cpu.translate = translate
    m.load(0x10000, assemble(LOOP, origin=0x10000).code)
    m.setup_flat_protected_mode(entry=0x10000)
    for tracer in tracers:
        m.mmu.add_tracer(tracer)
    m.cpu.run(max_instructions=5_000)  # the CPU's loop: traced translations on
    cpu = m.cpu
    return (cpu.tsc, cpu.instructions, tuple(cpu.regs), cpu.eip, m.memory.digest(),
            m.mmu.stats, [t.contents() for t in m.mmu.tlbs.values()])


@pytest.mark.parametrize("translate", [True, False])
def test_a_tracer_is_called_only_for_the_kinds_it_names(translate: bool) -> None:
    everything = _Recorder()
    data = _Recorder(frozenset({Access.READ, Access.WRITE}))
    outcome = _run(everything, data, translate=translate)
    assert {k for k, *_ in everything.events} >= {Access.FETCH, Access.INSN, Access.READ}
    assert data.events == [e for e in everything.events if e[0] in data.access_kinds]
    assert outcome == _run(translate=translate)


@pytest.mark.parametrize("translate", [True, False])
def test_no_fetch_window_is_reported_while_no_tracer_wants_fetch(translate: bool) -> None:
    everything = _Recorder()
    _run(everything, translate=translate)
    no_fetch = _Recorder(frozenset(Access) - {Access.FETCH})
    m_outcome = _run(no_fetch, translate=translate)
    assert no_fetch.events == [e for e in everything.events if e[0] is not Access.FETCH]
    assert m_outcome == _run(translate=translate)


def test_fetch_reporting_follows_the_attached_tracers() -> None:
    m = Machine()
    mmu = m.mmu
    no_fetch = _Recorder(frozenset({Access.INSN}))
    everything = _Recorder()
    mmu.add_tracer(no_fetch)
    assert mmu.tracing and not mmu.traces_fetch
    mmu.add_tracer(everything)
    assert mmu.traces_fetch
    mmu.remove_tracer(everything)
    assert not mmu.traces_fetch
    mmu.remove_tracer(no_fetch)
    assert not mmu.tracing and not mmu.traces_fetch


@pytest.mark.parametrize("kinds", [["READ"], 3, frozenset({1})])
def test_access_kinds_that_are_not_access_kinds_are_refused_and_nothing_attached(
    kinds: object,
) -> None:
    m = Machine()
    bad = _Recorder()
    bad.access_kinds = kinds  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="access_kinds"):
        m.mmu.add_tracer(bad)
    assert m.mmu.tracers == () and not m.mmu.tracing


def test_a_board_hierarchy_consumes_every_kind_but_the_fetch_window() -> None:
    m = Machine()
    hierarchy = get_board("p100").build(m.cpu, m.mmu)
    assert hierarchy is not None
    assert hierarchy.access_kinds == frozenset(Access) - {Access.FETCH}
    m.mmu.add_tracer(hierarchy)
    assert not m.mmu.traces_fetch


def test_fetch_page_keeps_the_fast_fetch_lookup_while_a_tracer_is_attached() -> None:
    m = Machine()
    m.load(0x10000, assemble(LOOP, origin=0x10000).code)
    m.setup_flat_protected_mode(entry=0x10000)
    m.mmu.add_tracer(_Recorder())
    m.cpu.run(max_instructions=100)
    assert m.mmu.code_page(0x10) is None  # inlined fast paths would report nothing
    page = m.mmu.fetch_page(0x10)
    assert page is not None and page.base == 0x10000


#: Code that rewrites the immediate of an instruction it then runs (through the data side).
SMC = """
    mov ecx, 50
again:
    mov byte ptr [patch+1], cl
patch:
    mov eax, 0
    add ebx, eax
    dec ecx
    jnz again
    hlt
"""


@pytest.mark.parametrize("translate", [True, False])
def test_code_rewritten_under_tracing_is_never_run_stale(translate: bool) -> None:
    outcomes = []
    for tracers in ((), (_Recorder(frozenset({Access.INSN, Access.WRITE})),)):
        m = Machine()
        m.cpu.translate = translate
        m.load(0x10000, assemble(SMC, origin=0x10000).code)
        m.setup_flat_protected_mode(entry=0x10000)
        for tracer in tracers:
            m.mmu.add_tracer(tracer)
        m.cpu.run(max_instructions=1_000)
        assert m.cpu.halted and m.cpu.regs[3] == sum(range(1, 51))  # EBX
        outcomes.append((m.cpu.tsc, m.cpu.instructions, m.memory.digest(), m.mmu.stats))
    assert outcomes[0] == outcomes[1]


def test_frame_page_keeps_the_data_page_map_while_a_tracer_is_attached() -> None:
    m = Machine()
    m.load(0x10000, assemble(LOOP, origin=0x10000).code)
    m.setup_flat_protected_mode(entry=0x10000)
    m.mmu.add_tracer(_Recorder())
    m.cpu.run(max_instructions=100)
    assert m.mmu.data_page(0x20) is None
    page = m.mmu.frame_page(0x20)
    assert page is not None and page.base == 0x20000


class _InsnRecorder(_Recorder):
    """A recorder with the ``on_insn`` shortcut, which records through a counter of its own."""

    def __init__(self, kinds: frozenset[Access] | None = None) -> None:
        super().__init__(kinds)
        self.shortcuts = 0

    def on_insn(self, phys: int, size: int, user: bool) -> None:
        self.shortcuts += 1
        self.on_access(Access.INSN, phys, size, user)


@pytest.mark.parametrize("translate", [True, False])
def test_a_lone_tracer_with_on_insn_gets_the_instruction_bytes_through_it(
    translate: bool,
) -> None:
    plain = _Recorder(frozenset(Access) - {Access.FETCH})
    outcome = _run(plain, translate=translate)
    alone = _InsnRecorder(frozenset(Access) - {Access.FETCH})
    assert _run(alone, translate=translate) == outcome
    assert alone.events == plain.events
    assert alone.shortcuts == sum(1 for e in plain.events if e[0] is Access.INSN) > 0
    # Beside another tracer, or not taking every kind it is called for, it is not used.
    for tracers in ([_InsnRecorder(), _Recorder()], [_InsnRecorder(frozenset({Access.INSN}))]):
        assert _run(*tracers, translate=translate) == outcome
        assert tracers[0].shortcuts == 0 and tracers[0].events  # type: ignore[attr-defined]


class _DataRecorder(_Recorder):
    """A recorder with the ``on_read`` / ``on_write`` shortcuts, counted."""

    def __init__(self, kinds: frozenset[Access] | None = None) -> None:
        super().__init__(kinds)
        self.shortcuts = 0

    def on_read(self, phys: int, size: int, user: bool) -> None:
        self.shortcuts += 1
        self.on_access(Access.READ, phys, size, user)

    def on_write(self, phys: int, size: int, user: bool) -> None:
        self.shortcuts += 1
        self.on_access(Access.WRITE, phys, size, user)


def test_a_lone_tracer_with_on_read_and_on_write_gets_the_data_hits_through_them() -> None:
    plain = _Recorder(frozenset(Access) - {Access.FETCH})
    outcome = _run(plain, translate=False)
    alone = _DataRecorder(frozenset(Access) - {Access.FETCH})
    assert _run(alone, translate=False) == outcome
    assert alone.events == plain.events
    data = sum(1 for e in plain.events if e[0] in (Access.READ, Access.WRITE))
    assert 0 < alone.shortcuts <= data
    # Beside another tracer, or not taking every kind it is called for, it is not used.
    for tracers in ([_DataRecorder(), _Recorder()],
                    [_DataRecorder(frozenset({Access.READ, Access.WRITE}))]):
        assert _run(*tracers, translate=False) == outcome
        assert tracers[0].shortcuts == 0 and tracers[0].events  # type: ignore[attr-defined]
