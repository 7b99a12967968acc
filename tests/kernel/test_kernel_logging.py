"""The kernel logs boot, process and thread creation (INFO) and each fault that killed a
thread, with its decoded reason, once (WARNING); nothing is printed unless logging is set up."""

from __future__ import annotations

import logging

import pytest

from lavsim.kernel import LavenderSystem
from lavsim.kernel.ipc import user_prelude


def test_boot_creation_and_a_fault_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lavsim")
    system = LavenderSystem(profile="pentium", timer_period=0)
    process = system.create_process(system.create_group("g"), user_prelude() + """
main:
    mov eax, dword ptr [0x7ffff0]    # past the data segment's limit: #GP
""", name="faulty")
    system.create_thread(process, "main")
    system.run(max_cycles=100_000)
    system.run(max_cycles=100_000)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("booted Lavender: pentium")
    assert any(m.startswith("process 1 'faulty'") for m in messages)
    assert any(m.startswith("thread 1 of process 1 'faulty'") for m in messages)
    faults = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(faults) == 1 and "killed by #GP" in faults[0].getMessage()


def test_nothing_reaches_standard_error_by_default_not_even_a_fault(
    capsys: pytest.CaptureFixture[str],
) -> None:
    system = LavenderSystem(profile="i486", timer_period=0)
    process = system.create_process(system.create_group("g"), user_prelude() + """
main:
    mov eax, dword ptr [0x7ffff0]
""", name="faulty")
    system.create_thread(process, "main")
    outcome = system.run(max_cycles=100_000)
    assert outcome.faulted
    assert capsys.readouterr().err == ""
