"""Ring-2 stack slots cannot overflow into each other (issue 19, finding 3).

All threads of a process share its ring-2 stack segment, cut into ``ring2_stack_size`` slots;
a call gate from CPL 3 writes 16 + 4 x params bytes below the thread's slot top. Every size
the kernel accepts must hold the largest gate frame, so a caller with a 31-parameter gate
cannot reach its neighbour's slot and forge the return frame of a procedure it is running."""

from __future__ import annotations

import pytest

from lavsim.errors import ConfigError
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L

#: Procedure "pause": give the processor away while at CPL 2 (its return frame stays on the
#: thread's ring-2 slot), then return.
PAUSE = """
pause:
    mov eax, 1
    int 0x30
    retf
"""

#: Procedure "wide": 31 parameters, does nothing with them.
WIDE = """
wide:
    retf 124
"""

FILLER = """
main:
    mov eax, 0
    mov ebx, 0
    int 0x30
"""

#: Slot k-1: call "pause", then exit with 7. Slot k: push 31 forged words (a return frame
#: pointing at "wide"'s code, were it to land on the victim's), call "wide", exit with 9.
THREADS = """
victim:
    call far ptr {pause}:0
    mov eax, 0
    mov ebx, 7
    int 0x30
attacker:
    mov ecx, 31
.Lpush:
    push {forged}
    dec ecx
    jnz .Lpush
    call far ptr {wide}:0
    mov eax, 0
    mov ebx, 9
    int 0x30
"""

GATE_FRAME_MAX = 16 + 4 * 31


def _system() -> LavenderSystem:
    return LavenderSystem(memory_size=8 << 20, timer_period=0)


def _smallest_accepted_size() -> int:
    system = _system()
    group = system.create_group()
    for size in range(4, 4096, 4):
        try:
            system.create_process(group, FILLER, ring2_stack_size=size)
        except ConfigError:
            continue
        return size
    raise AssertionError("no ring2_stack_size accepted")


def test_every_accepted_ring2_slot_holds_the_largest_gate_frame() -> None:
    assert _smallest_accepted_size() >= GATE_FRAME_MAX + L.RING2_PROCEDURE_STACK


@pytest.mark.parametrize("size", [64, 100, 136])
def test_a_ring2_slot_smaller_than_the_largest_gate_frame_is_refused(size: int) -> None:
    system = _system()
    with pytest.raises(ConfigError, match="ring2_stack_size"):
        system.create_process(system.create_group(), FILLER, ring2_stack_size=size)
    assert not system.processes


def test_a_31_parameter_gate_call_cannot_forge_the_neighbour_slots_return_frame() -> None:
    size = _smallest_accepted_size()
    # The attacker in slot k, the victim in slot k - 1: the attacker's frame would reach the
    # victim's frame (at the top of slot k - 1) when the slot were smaller than the frame.
    k = max(1, -(-GATE_FRAME_MAX // size) - 1)
    system = _system()
    library = system.create_resident_process(FILLER, name="library")
    pause = system.sharing.export_procedure(library, PAUSE, entry="pause", params=0)
    wide = system.sharing.export_procedure(library, WIDE, entry="wide", params=31)
    source = THREADS.format(pause=pause.gate_selector, wide=wide.gate_selector,
                            forged=wide.gate_selector)
    process = system.create_process(system.create_group(), source + FILLER,
                                    max_threads=k + 1, ring2_stack_size=size)
    for _ in range(k - 1):
        system.create_thread(process, "main")
    victim = system.create_thread(process, "victim")
    attacker = system.create_thread(process, "attacker")
    outcome = system.run(max_cycles=2_000_000)
    assert outcome.status == "done", outcome
    v, a = system.thread_state(victim), system.thread_state(attacker)
    assert (v.fault, v.exit_code) == (None, 7)
    assert (a.fault, a.exit_code) == (None, 9)
