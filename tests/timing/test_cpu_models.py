"""CPU models as data (lavsim.models): one registry gives every part of the simulator its
timing profile, TLB organisation and CPUID identity; a user-made profile works wherever a CPU
is named and changes exactly the cycles its changed costs say."""

from __future__ import annotations

import pytest

import lavsim.timing as timing
from lavsim.cluster import Cluster
from lavsim.cpu.asm import assemble_bytes
from lavsim.cpu.state import EAX
from lavsim.errors import ConfigError, show_value
from lavsim.experiments import Workload, measure_call
from lavsim.kernel.system import LavenderSystem
from lavsim.machine import Machine, MachineConfig
from lavsim.mmu.descriptors import SYS_CALL_GATE32, GateDescriptor
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.tlb import TLBConfig
from lavsim.models import (
    MODELS,
    CpuModel,
    get_model,
    register_model,
    signature,
    unregister_model,
)
from lavsim.timing import I486, PENTIUM, Cost, TimingProfile

ENTRY = 0x10000
TARGET = 0x10400
GATE = 0x30  # GDT slot 6 of setup_flat_protected_mode's table at 0x1000


def _gate_program(profile: object, calls: int) -> Machine:
    """``calls`` far CALLs through a same-privilege call gate to a RETF, then HLT."""
    m = Machine(MachineConfig(profile=profile, memory_size=1 << 20))  # type: ignore[arg-type]
    body = "\n".join(f"    call {GATE:#x}:0" for _ in range(calls))
    m.load(ENTRY, assemble_bytes(f"main:\n{body}\n    hlt\n", ENTRY))
    m.load(TARGET, assemble_bytes("retf\n", TARGET))
    m.setup_flat_protected_mode(entry=ENTRY)
    m.load(0x1000 + GATE, GateDescriptor(SYS_CALL_GATE32, 0x08, TARGET, 0, 0).encode())
    return m


def _cycles(m: Machine) -> int:
    result = m.run(max_cycles=100_000)
    assert result.reason == "halted", result
    return m.cpu.tsc


# --- the registry ----------------------------------------------------------------------------


def test_the_registry_holds_one_model_per_builtin_profile() -> None:
    assert {"i486", "pentium"} <= set(MODELS)
    for name, profile in timing.PROFILES.items():
        assert MODELS[name].profile is profile


def test_the_builtin_models_carry_their_tlbs_and_signatures() -> None:
    assert MODELS["i486"].mmu == MMUConfig.i486()
    assert MODELS["pentium"].mmu == MMUConfig.pentium()
    assert MODELS["i486"].cpuid_signature == signature(4, 8, 0) == 0x480
    assert MODELS["pentium"].cpuid_signature == signature(5, 2, 1) == 0x521


def test_get_model_accepts_names_models_and_profiles() -> None:
    assert get_model(" PenTium ") is MODELS["pentium"]
    assert get_model(MODELS["i486"]) is MODELS["i486"]
    assert get_model(PENTIUM) is MODELS["pentium"]
    slow = PENTIUM.with_costs({"nop": 9})
    model = get_model(slow)
    assert model.profile is slow and model.mmu == MMUConfig.pentium()
    assert model.cpuid_signature == MODELS["pentium"].cpuid_signature
    # derived twice: still the Pentium's TLBs
    assert get_model(slow.with_costs({"nop": 8})).mmu == MMUConfig.pentium()


def test_an_unknown_name_is_refused_listing_the_known_models() -> None:
    with pytest.raises(ConfigError) as info:
        get_model("z80")
    assert info.value.field == "profile"
    assert "z80" in str(info.value) and "i486, pentium" in str(info.value)


def test_a_profile_of_no_registered_model_is_refused() -> None:
    orphan = TimingProfile("orphan", I486.costs)
    with pytest.raises(ConfigError) as info:
        get_model(orphan, "cpu")
    assert info.value.field == "cpu" and "orphan" in str(info.value)
    assert len(str(info.value)) < 200


def test_register_model_refuses_another_model_under_a_taken_name() -> None:
    with pytest.raises(ConfigError):
        register_model(MODELS["i486"].with_profile(I486.with_costs({"nop": 5}), name="pentium"))
    assert MODELS["pentium"].profile is PENTIUM
    with pytest.raises(ConfigError):
        register_model("i486")  # type: ignore[arg-type]


def test_a_registered_model_is_found_by_name_and_its_derived_profiles_keep_its_tlbs() -> None:
    big = CpuModel("test-bigtlb", I486.with_costs({}, name="test-bigtlb"),
                   MMUConfig(tlb=TLBConfig(128, 4)), 0x485)
    assert register_model(big) is big
    try:
        assert register_model(big) is big  # again: nothing happens
        assert get_model("Test-BigTLB") is big
        derived = big.profile.with_costs({"nop": 3})
        assert get_model(derived).mmu == MMUConfig(tlb=TLBConfig(128, 4))
        m = Machine(MachineConfig(profile="test-bigtlb"))
        assert m.mmu.tlbs["tlb"].config.entries == 128 and m.cpu.cpuid_signature == 0x485
    finally:
        unregister_model("test-bigtlb")
    assert "test-bigtlb" not in MODELS
    with pytest.raises(ConfigError):
        unregister_model("i486")


def test_timing_profiles_repr_in_one_short_line() -> None:
    assert len(repr(I486)) < 100 and len(repr(I486.with_costs({"nop": 2}))) < 120
    assert len(repr(MachineConfig(profile=PENTIUM))) < 400


def test_show_value_cuts_a_long_repr() -> None:
    assert show_value("abc") == "'abc'"
    assert len(show_value(list(range(10_000)))) <= 63


# --- everyone reads the model ----------------------------------------------------------------


def test_machine_config_takes_a_name_a_model_or_a_profile() -> None:
    for spec in ("pentium", MODELS["pentium"], PENTIUM):
        config = MachineConfig(profile=spec)
        assert config.model is MODELS["pentium"]
        assert config.mmu_config == MMUConfig.pentium()
    override = MMUConfig(tlb=TLBConfig(16, 4))
    assert MachineConfig(profile=PENTIUM, mmu=override).mmu_config is override


def test_a_bad_profile_object_gets_a_short_error_naming_the_field() -> None:
    for bad in (42, ["i486"], I486.costs, TimingProfile("orphan", I486.costs)):
        with pytest.raises(ConfigError) as info:
            LavenderSystem(profile=bad)  # type: ignore[arg-type]
        assert info.value.field == "profile"
        assert len(str(info.value)) < 200, str(info.value)


@pytest.mark.parametrize("name", ["i486", "pentium"])
def test_cpuid_reports_the_signature_of_the_model(name: str) -> None:
    m = Machine(MachineConfig(profile=name, memory_size=1 << 20))
    m.load(ENTRY, assemble_bytes("mov eax, 1\ncpuid\nhlt\n", ENTRY))
    m.setup_flat_protected_mode(entry=ENTRY)
    m.run(max_cycles=10_000)
    assert m.cpu.regs[EAX] == MODELS[name].cpuid_signature
    assert (m.cpu.regs[EAX] >> 8) & 0xF == {"i486": 4, "pentium": 5}[name]


def test_a_derived_profile_reports_the_signature_of_its_model() -> None:
    m = Machine(MachineConfig(profile=PENTIUM.with_costs({"cpuid": 99}), memory_size=1 << 20))
    m.load(ENTRY, assemble_bytes("mov eax, 1\ncpuid\nhlt\n", ENTRY))
    m.setup_flat_protected_mode(entry=ENTRY)
    m.run(max_cycles=10_000)
    assert m.cpu.regs[EAX] == MODELS["pentium"].cpuid_signature


@pytest.mark.parametrize("base", [I486, PENTIUM], ids=["i486", "pentium"])
def test_a_with_costs_profile_changes_a_gate_call_by_exactly_the_added_cycles(
    base: TimingProfile,
) -> None:
    calls = 3
    slower = base.with_costs({"call_gate.same": base.cycles("call_gate.same") + 100})
    assert _cycles(_gate_program(slower, calls)) - _cycles(_gate_program(base, calls)) == 300


def test_a_with_costs_profile_changes_a_lavender_gate_call_by_exactly_the_added_cycles() -> None:
    added = I486.with_costs({"call_gate.inner": Cost(169, "estimate: test, +100")})
    plain = measure_call("far-call-group", Workload(profile="i486", calls=3))
    slow = measure_call("far-call-group", Workload(profile=added, calls=3))
    assert slow.warm.phases["gate call"] - plain.warm.phases["gate call"] == 100
    assert slow.cold.phases["gate call"] - plain.cold.phases["gate call"] == 100
    assert slow.warm.cycles - plain.warm.cycles == 100
    for phase in ("user stub", "server", "far return", "trap entry"):
        assert slow.warm.phases[phase] == plain.warm.phases[phase]


def test_lavender_system_and_cluster_run_a_derived_profile() -> None:
    profile = PENTIUM.with_costs({"nop": 2})
    system = LavenderSystem(profile=profile, timer_period=0)
    assert system.machine.profile is profile
    assert system.machine.mmu.config == MMUConfig.pentium()
    cluster = Cluster(1, profile=profile, timer_period=0, network_servers=False,
                      name_servers=False)
    assert cluster.hosts[0].system.machine.profile is profile
