"""The measurement layer (lavsim.experiments): a mechanism is one class, the harness boots the
workload's machine, and the phase observer sorts steps with the kernel observer's classifier."""

from __future__ import annotations

import pytest

from lavsim.errors import ConfigError
from lavsim.experiments import MECHANISMS, Workload, measure_call, rpc_table
from lavsim.experiments.harness import Harness
from lavsim.experiments.mechanisms import (
    InGroupMigration,
    Mechanism,
    MessageOneGroup,
    Parties,
    mechanism,
)
from lavsim.kernel import layout as L
from lavsim.kernel.observer import (
    ROW_FAR_RETURN,
    ROW_GATE_CALL,
    ROW_IDLE,
    ROW_INTERRUPT,
    ROW_TRAP,
    ROW_USER,
    StepClassifier,
)
from lavsim.kernel.system import LavenderSystem
from lavsim.machine import STEP_IDLE, STEP_INSTRUCTION, STEP_INTERRUPT


class CopiedMigration(Mechanism):
    """A new mechanism written against the interface alone: in-group migration's parties
    under another key."""

    key = "copied-migration"
    label = "in-group migration, copied"
    column = "copy"

    def build(self, system: LavenderSystem, work: Workload) -> Parties:
        return InGroupMigration().build(system, work)


def test_adding_a_mechanism_is_one_class_measured_by_the_harness() -> None:
    work = Workload(size=16, calls=4)
    copied = measure_call(CopiedMigration(), work)
    original = measure_call("migration-group", work)
    assert copied.mechanism.key == "copied-migration"
    assert copied.samples == original.samples and copied.cold == original.cold
    assert copied.warm.gate_calls == 1 and copied.warm.bytes_copied == 16


def test_the_registry_is_keyed_by_the_tables_keys() -> None:
    assert list(MECHANISMS) == ["migration-group", "migration-resident", "message-group",
                                "message-groups", "handoff-groups", "l4-groups",
                                "l4-small-spaces", "lrpc-groups"]
    assert all(m.key == k for k, m in MECHANISMS.items())
    assert mechanism("far-call-group").key == "far-call-group"
    with pytest.raises(ConfigError, match="mechanism"):
        mechanism("nope")


def test_a_bare_far_call_costs_the_gate_and_the_retf_only() -> None:
    bare = measure_call("far-call-group", Workload(calls=3))
    library = measure_call("migration-group", Workload(calls=3))
    assert bare.warm.phases["user stub"] == 0 and bare.warm.gate_calls == 1
    assert library.warm.cycles - bare.warm.cycles == library.warm.phases["user stub"]


def test_the_workload_defaults_are_the_machine_every_golden_figure_was_measured_on() -> None:
    work = Workload()
    assert (work.memory_size, work.timer_period, work.tlb_entries) == (16 << 20, 0, None)
    assert work.default_machine


def test_the_harness_boots_the_workloads_memory_and_timer() -> None:
    harness = Harness(MECHANISMS["message-group"], Workload(memory_size=32 << 20,
                                                            timer_period=7_000))
    system = harness.system
    assert system.machine.memory.size == 32 << 20
    period = system.image.symbol("k_timer_period") - L.KERNEL_BASE
    assert system.machine.memory.read32(period) == 7_000


@pytest.mark.parametrize(("field", "value"), [("memory_size", 4096), ("memory_size", 5 << 20 | 1),
                                              ("timer_period", -1), ("tlb_entries", 6)])
def test_a_bad_machine_field_is_refused_naming_it(field: str, value: int) -> None:
    with pytest.raises(ConfigError) as info:
        Workload(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field


def test_the_table_header_and_records_name_a_machine_other_than_the_default() -> None:
    migration = (MECHANISMS["migration-group"],)
    other = rpc_table(("i486",), (0,), calls=2, remote=False, mechanisms=migration,
                      base=Workload(tlb_entries=16, memory_size=64 << 20, timer_period=9_000))
    first = other.to_text().splitlines()[0]
    assert first.startswith("== i486, unified TLB 16 entries 4-way, 64 MiB memory, timer every "
                            "9,000 cycles: cycles per call (warm = mean of 1 call after")
    record = other.records()[0]
    assert (record["tlb_entries"], record["memory_size"], record["timer_period"]) == (
        16, 64 << 20, 9_000)
    default = rpc_table(("i486",), (0,), calls=2, remote=False, mechanisms=migration)
    assert "tlb_entries" not in default.records()[0]
    assert default.to_text().splitlines()[0].startswith("== i486: cycles per call (warm = mean "
                                                        "of 1 call after the first;")


def test_one_classifier_sorts_every_kind_of_step() -> None:
    system = LavenderSystem(timer_period=0)
    classify = StepClassifier(system.image)
    entry = system.image.symbol("syscall_entry")
    assert classify(STEP_INSTRUCTION, entry, 0, 0) == "syscall_entry"
    assert classify(STEP_INSTRUCTION, 0x1000, 3, 3) == ROW_USER
    assert classify(STEP_INSTRUCTION, 0x1000, 2, 2) == "<ring 2>"
    assert classify(STEP_INSTRUCTION, 0x1000, 3, 0) == ROW_TRAP
    assert classify(STEP_INSTRUCTION, 0x1000, 3, 2) == ROW_GATE_CALL
    assert classify(STEP_INSTRUCTION, 0x1000, 2, 3) == ROW_FAR_RETURN
    assert classify(STEP_INTERRUPT, 0x1000, 3, 0) == ROW_INTERRUPT
    assert classify(STEP_IDLE, 0, 0, 0) == ROW_IDLE


def test_the_kernel_and_phase_observers_share_the_classifier() -> None:
    harness = Harness(MECHANISMS["migration-group"], Workload(calls=2))
    assert harness.system.observer is not None
    assert type(harness.system.observer.classify) is StepClassifier
    assert type(harness.observer.classify) is StepClassifier


class RdtscTimedMessage(MessageOneGroup):
    """Message RPC whose client also times its call with guest RDTSC, the way the old
    ipc_cycles benchmark did: an empty RDTSC pair first, then RDTSC around the call."""

    key = "rdtsc-timed-message"

    def call(self, work: Workload) -> str:
        return ("    rdtsc\n    mov esi, eax\n    rdtsc\n    sub eax, esi\n"
                "    mov dword ptr [0x58], eax\n"
                "    rdtsc\n    mov dword ptr [0x50], eax\n" + super().call(work)
                + "    rdtsc\n    sub eax, dword ptr [0x50]\n    mov dword ptr [0x54], eax\n")


@pytest.mark.parametrize("profile", ["i486", "pentium"])
def test_guest_rdtsc_minus_an_empty_pair_is_the_harness_window_of_the_call(profile: str) -> None:
    plain = measure_call("message-group", Workload(profile=profile, calls=4))
    harness = Harness(RdtscTimedMessage(), Workload(profile=profile, calls=4))
    harness.run()
    client = harness.parties.client
    timed = harness.system.read_data32(client, 0x54) - harness.system.read_data32(client, 0x58)
    assert timed == plain.samples[-1]
