"""CPU, MMU and TLB each own their checkpoint state (get_state / set_state): a state moved into a
fresh component makes it behave identically, and a bad state is refused without a change."""

from __future__ import annotations

import copy
import json

import pytest
from test_checkpoints import _kernel_machine

from lavsim.machine import Machine


def _pair(profile: str) -> tuple[Machine, Machine]:
    a = _kernel_machine(profile)
    a.run(max_cycles=20_000)
    b = _kernel_machine(profile)
    return a, b


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_state_moved_component_by_component_runs_on_identically(profile: str) -> None:
    a, b = _pair(profile)
    # Through JSON, as a snapshot file holds it.
    b.memory.write(0, a.memory.read(0, a.memory.size))
    b.cpu.set_state(json.loads(json.dumps(a.cpu.get_state())))
    b.mmu.set_state(json.loads(json.dumps(a.mmu.get_state())))
    for name, tlb in a.mmu.tlbs.items():
        assert b.mmu.tlbs[name].get_state() == tlb.get_state()
    b.pic.set_state(a.pic.get_state())
    b.timer.set_state(a.timer.get_state())
    b.idle_cycles = a.idle_cycles
    a.run(max_cycles=20_000)
    b.run(max_cycles=20_000)
    assert b.cpu.get_state() == a.cpu.get_state()
    assert b.mmu.get_state() == a.mmu.get_state() and b.mmu.stats == a.mmu.stats
    assert b.memory.digest() == a.memory.digest()


@pytest.mark.parametrize(
    "damage",
    ["tlb set", "tlb counter", "mmu control", "mmu tlb names", "cpu register", "cpu segment"],
)
def test_a_bad_component_state_is_refused_and_changes_nothing(damage: str) -> None:
    a, b = _pair("pentium")
    cpu_state, mmu_state = a.cpu.get_state(), a.mmu.get_state()
    bad_cpu, bad_mmu = copy.deepcopy(cpu_state), copy.deepcopy(mmu_state)
    if damage == "tlb set":
        bad_mmu["tlbs"]["dtlb"]["sets"][0] = [[1, 0, True, True, True, False, False]]
    elif damage == "tlb counter":
        bad_mmu["tlbs"]["itlb"]["hits"] = -1
    elif damage == "mmu control":
        bad_mmu["cr3"] = 1 << 32
    elif damage == "mmu tlb names":
        del bad_mmu["tlbs"]["dtlb4m"]
    elif damage == "cpu register":
        bad_cpu["regs"] = bad_cpu["regs"][:7]
    else:
        bad_cpu["seg"][2] = bad_cpu["seg"][2][:10]
    before = (b.cpu.get_state(), b.mmu.get_state())
    with pytest.raises(ValueError):
        if damage.startswith("cpu"):
            b.cpu.set_state(bad_cpu)
        else:
            b.mmu.set_state(bad_mmu)
    assert (b.cpu.get_state(), b.mmu.get_state()) == before
