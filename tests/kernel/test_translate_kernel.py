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
