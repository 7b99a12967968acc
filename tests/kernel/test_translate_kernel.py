"""The block translator under migration: a client calling an exported procedure through its
call gate (``lav_call``, ring 3 -> 2 and RETF back) many times, with every block translated at
its first entry, ends exactly as with the translator off and as one step at a time."""

from __future__ import annotations

import pytest
import test_migration
from test_migration import _args, _server_and_client

from lavsim.cpu import core
from lavsim.kernel import LavenderSystem


def test_migrating_calls_run_identically_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "TRANSLATE_AFTER", 0)
    # Without the kernel observer, so that Machine.run takes the block path.
    monkeypatch.setattr(test_migration, "_system", lambda profile="i486": LavenderSystem(
        profile=profile, memory_size=4 << 20, timer_period=0, observe=False))
    out = []
    for mode in ("translated", "blocks", "steps"):
        system, _server, client, _export = _server_and_client(count=25)
        system.machine.cpu.translate = mode == "translated"
        if mode == "steps":
            system.machine.add_observer(lambda *step: None)
        _args(system, client, 7, 11, 13)
        system.create_thread(client, "main")
        outcome = system.run(max_cycles=2_000_000)
        m = system.machine
        if mode == "translated":
            assert any(block.xl for block in m.cpu._blocks.values())
        out.append((outcome.status, m.cpu.tsc, m.cpu.instructions, list(m.cpu.regs),
                    m.state_digest(), m.stats(), [system.read_data32(client, k)
                                                  for k in (32, 36, 40)]))
    assert out[0] == out[1] == out[2]
    assert out[0][0] == "done"


@pytest.mark.parametrize(("profile", "board"), [("i486", "486dx2-66"), ("pentium", "p100")])
def test_migrating_calls_on_a_board_run_identically_filtered(
    monkeypatch: pytest.MonkeyPatch, profile: str, board: str
) -> None:
    """The same on a board's hierarchy: translations with its filter inline, without it
    (every access reported), the block loop and steps end with the same caches too."""
    monkeypatch.setattr(core, "TRANSLATE_AFTER", 0)
    monkeypatch.setattr(test_migration, "_system", lambda profile=profile: LavenderSystem(
        profile=profile, memory_size=4 << 20, timer_period=0, observe=False, board=board))
    made: list[object] = []
    real = core.translate_block

    def spy(cpu: object, block: object, key: object, straight: object, traced: object = False,
            phys: int = 0) -> object:
        made.append(traced)
        return real(cpu, block, key, straight, traced, phys)

    monkeypatch.setattr(core, "translate_block", spy)
    out = []
    for mode in ("filtered", "traced", "blocks", "steps"):
        system, _server, client, _export = _server_and_client(count=25)
        m = system.machine
        m.cpu.translate = mode in ("filtered", "traced")
        assert m.hierarchy is not None and m.mmu.hot_filter is not None
        if mode == "traced":
            m.mmu.hot_filter = None
        if mode == "steps":
            m.add_observer(lambda *step: None)
        _args(system, client, 7, 11, 13)
        system.create_thread(client, "main")
        outcome = system.run(max_cycles=2_000_000)
        if mode == "filtered":
            assert any(isinstance(t, tuple) for t in made)
        out.append((outcome.status, m.cpu.tsc, m.cpu.instructions, list(m.cpu.regs),
                    m.state_digest(), m.stats(), m.hierarchy.get_state(),
                    [system.read_data32(client, k) for k in (32, 36, 40)]))
    assert out[0] == out[1] == out[2] == out[3]
    assert out[0][0] == "done"
