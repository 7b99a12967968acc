"""Protection invariants at system level over randomly built systems (issue 7).

Random groups, processes, data exports and imports (segments and pages), procedure exports and
imports (in-group and resident), an IPC server and threads running random programs (calls
through ``lav_call`` and straight through gates, message calls, and hostile operations). After
every run (``sysspec.py``, ``sysbuild.py`` and ``syscheck.py`` beside this file have the machinery):

(a) no write at CPL 3, and no write by a CPL 2 procedure, landed outside what the configuration
    grants the running thread's process (kernel memory, another process's unshared memory, its
    own code) — every write to physical memory is watched;
(b) every entry into a procedure's code segment was a gate entry at its registered entry point,
    and every other code-segment change at CPL > 0 a far return to the matching call site;
(c) CPL went down only by a far call through a registered gate (to ring 2) or by an IDT
    delivery onto a handler the boot loader installed (to ring 0), and a thread at CPL > 0
    always runs with its own process's LDT;
(d) the kernel's structures are consistent
    (:func:`lavsim.kernel.invariants.check_kernel_consistency`).

The tests at the end prove each check has teeth: a deliberately bad descriptor, gate or kernel
structure makes the check fail.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import given, settings
from sysbuild import Built, build
from syscheck import run_checked
from sysspec import (
    ADDR_AREA,
    DATA_SIZES,
    GOOD_STORE_OFFSETS,
    MSG_OFFSET,
    REPLY_OFFSET,
    DataSpec,
    PageShareSpec,
    ProcessSpec,
    ProcSpec,
    SystemSpec,
    system_specs,
)

from lavsim.kernel import layout as L
from lavsim.kernel.invariants import check_kernel_consistency
from lavsim.kernel.tables import segment, write_descriptor
from lavsim.mmu import descriptors as d

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
CYCLES = 400_000 if DEEP else 120_000
EXAMPLES = 600 if DEEP else 100
TOTALS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report() -> object:
    yield
    print(f"\nsystem invariants: {dict(TOTALS)}")


def _check(built: Built, cycles: int = CYCLES) -> None:
    result = run_checked(built, cycles)
    TOTALS["examples"] += 1
    TOTALS["instructions"] += result.instructions
    TOTALS["writes checked"] += result.writes_checked
    TOTALS["gate entries"] += result.gate_entries
    TOTALS["far returns"] += result.returns
    TOTALS["kernel entries"] += result.idt_entries
    assert result.outcome.status in ("done", "idle", "deadlock", "cycle_limit"), result.outcome
    assert built.system.panic_report() is None
    assert [str(v) for v in result.writes] == []
    assert result.transfers == []
    assert result.kernel == []


@settings(max_examples=EXAMPLES)
@given(spec=system_specs())
def test_random_systems_keep_the_protection_invariants(spec: SystemSpec) -> None:
    _check(build(spec))


@settings(max_examples=EXAMPLES // 3)
@given(spec=system_specs(hostile=False))
def test_well_behaved_systems_keep_the_invariants_and_finish(spec: SystemSpec) -> None:
    built = build(spec)
    _check(built)
    for thread in built.system.threads.values():
        fault = built.system.thread_state(thread).fault
        # Well-behaved programs fault only in procedures built to be hostile.
        if fault is not None:
            assert fault.cs & 3 == 2, fault.describe()


@settings(max_examples=200)
@given(offset=GOOD_STORE_OFFSETS)
def test_well_behaved_stores_never_touch_the_address_structures_or_the_buffers(
    offset: int,
) -> None:
    # A store at offset 0x48 once overwrote an import's selector and the thread's next lav_call
    # died of #GP(selector): the thread, not the kernel, was at fault.
    assert not ADDR_AREA - 4 < offset < ADDR_AREA + 20 * 8
    assert not MSG_OFFSET - 4 < offset < REPLY_OFFSET + 64
    assert 0 <= offset <= min(DATA_SIZES) - 4


# --- a fixed system exercising every path the checkers look at ---------------------------

FIXED = SystemSpec(
    profile="i486", timer_period=1500, groups=1,
    processes=(ProcessSpec(None, 4096, 2), ProcessSpec(0, 4096, 2), ProcessSpec(0, 4096, 2)),
    data=(DataSpec(1, 64, None, True, ((2, True),)),),
    pages=(PageShareSpec(1, 100, 8, 2, True),),
    procs=(ProcSpec(0, "count", 2, 16, ()), ProcSpec(1, "sum", 3, 0, (2,))),
    server=0,
    threads=((2, (("lav_call", 0, (1, 2, 3, 4)), ("lav_call", 1, (5, 6, 7, 8)),
                  ("gate", 1, 0x1234), ("ipc_call", 16), ("spin", 200),
                  ("store_own", 0x20, 7))),
             (2, (("store_sel", L.ldt_sel(L.LDT_FIRST_SHARED + 2, 3), 0, 5),
                  ("store_sel", L.USER_DS, 0x10, 1))),),
)  # fmt: skip


def test_fixed_system_exercises_every_checked_path() -> None:
    built = build(FIXED)
    result = run_checked(built, 300_000)
    assert result.outcome.status in ("idle", "deadlock", "cycle_limit")  # the IPC server waits on
    assert result.writes == [] and result.transfers == [] and result.kernel == []
    assert result.gate_entries >= 3 and result.returns >= 3
    assert result.writes_checked > 50 and result.idt_entries > 3


# --- teeth: each check fails on a deliberate violation -------------------------------------

ONE_GROUP = SystemSpec(
    profile="i486", timer_period=0, groups=1,
    processes=(ProcessSpec(0, 4096, 2), ProcessSpec(0, 4096, 2)),
    data=(), pages=(), procs=(), server=None, threads=(),
)  # fmt: skip
BAD_SLOT = 20


def _with_program(
    spec: SystemSpec, ops: tuple[tuple[object, ...], ...], procs: tuple[ProcSpec, ...] = ()
) -> SystemSpec:
    import attrs

    return attrs.evolve(spec, threads=((1, ops),), procs=procs)


def _install(built: Built, pid: int, slot: int, desc: d.Descriptor) -> None:
    write_descriptor(built.system.memory, L.LDT_PHYS + pid * L.LDT_BYTES, slot, desc)  # type: ignore[arg-type]


def test_teeth_a_bad_data_descriptor_is_caught_writing_another_process() -> None:
    sel = L.ldt_sel(BAD_SLOT, 3)
    built = build(_with_program(ONE_GROUP, (("store_sel", sel, 8, 0xAB),)))
    victim, attacker = built.processes
    _install(
        built, attacker.pid, BAD_SLOT, segment(victim.data_base, 4096, d.DATA_READ_WRITE, 3, "size")
    )
    result = run_checked(built, 100_000)
    assert [v.what for v in result.writes] == [f"memory of process {victim.pid} not shared with it"]
    assert result.writes[0].cpl == 3


def test_teeth_a_ring2_descriptor_over_kernel_space_is_caught() -> None:
    # A hostile procedure of process 0 writes through LDT slot BAD_SLOT (RPL 2): a DPL 2
    # descriptor over the kernel window that should never exist. Ring 2 is supervisor for
    # paging, so only segmentation kept it out.
    sel = L.ldt_sel(BAD_SLOT, 2)
    proc = ProcSpec(0, "hostile", 0, 0, (1,), (sel, L.TCB_PHYS))
    built = build(_with_program(ONE_GROUP, (("lav_call", 0, (0, 0, 0, 0)),), (proc,)))
    for process in built.processes:
        _install(
            built,
            process.pid,
            BAD_SLOT,
            segment(L.KERNEL_BASE, 0x100000, d.DATA_READ_WRITE, 2, "size"),
        )
    result = run_checked(built, 100_000)
    assert any(v.what == "kernel memory" and v.cpl == 2 for v in result.writes), result.writes


def test_teeth_an_unregistered_entry_offset_is_caught() -> None:
    proc = ProcSpec(0, "spin", 0, 0, (1,))
    built = build(_with_program(ONE_GROUP, (("gate", 0, 0),), (proc,)))
    export = built.procedures[0]
    attacker = built.processes[1]
    # Re-point the importer's copy of the gate two bytes into the procedure.
    _install(
        built,
        attacker.pid,
        export.gate_slot,
        d.GateDescriptor(
            d.SYS_CALL_GATE32,
            L.ldt_sel(export.code_slot, 0),
            export.entry + 2,
            param_count=0,
            dpl=3,
        ),
    )
    result = run_checked(built, 100_000)
    assert any("not at its entry" in v for v in result.transfers), result.transfers


def test_teeth_a_call_gate_into_the_kernel_is_caught() -> None:
    built = build(_with_program(ONE_GROUP, (("far", "call", L.ldt_sel(BAD_SLOT, 3), 0),)))
    attacker = built.processes[1]
    target = built.system.image.symbol("halt_forever")
    _install(
        built,
        attacker.pid,
        BAD_SLOT,
        d.GateDescriptor(d.SYS_CALL_GATE32, L.KERNEL_CS, target, param_count=0, dpl=3),
    )
    result = run_checked(built, 100_000)
    assert any("CPL 0 entered outside the IDT" in v for v in result.transfers), result.transfers


def test_teeth_a_far_jump_into_unshared_code_is_caught() -> None:
    built = build(_with_program(ONE_GROUP, (("far", "jmp", L.ldt_sel(BAD_SLOT, 3), 0),)))
    victim, attacker = built.processes
    _install(
        built,
        attacker.pid,
        BAD_SLOT,
        segment(victim.code_base, victim.code_size, d.CODE_EXECUTE_READ, 3, "size"),
    )
    result = run_checked(built, 100_000)
    assert any("code segment changed" in v for v in result.transfers), result.transfers


def test_teeth_a_wrong_ldt_is_caught() -> None:
    built = build(_with_program(ONE_GROUP, (("spin", 50),)))
    victim, attacker = built.processes
    # The kernel would load the victim's LDT for the attacker's threads.
    built.system.write_kernel32(attacker.pcb_linear + L.PCB_LDT_SEL, victim.ldt_selector)
    built.system.create_thread(victim, "main_stub")
    result = run_checked(built, 100_000)
    assert any("runs with LDT" in v for v in result.transfers), result.transfers


def _booted(spec: SystemSpec) -> Built:
    built = build(spec)
    assert check_kernel_consistency(built.system) == []
    return built


KERNEL_TEETH = {
    "queue cycle": lambda s, a, b: s.write_kernel32(b + L.TCB_NEXT, a),
    "blocked in queue": lambda s, a, b: s.write_kernel32(a + L.TCB_STATE, L.THREAD_BLOCKED),
    "ready not queued": lambda s, a, b: (
        s.write_kernel32(a + L.TCB_NEXT, 0),
        s._set_kernel_variable("k_ready_tail", a),
    ),
    "bad state": lambda s, a, b: s.write_kernel32(b + L.TCB_STATE, 9),
    "live count": lambda s, a, b: s._set_kernel_variable("k_live_threads", 5),
    "process threads": lambda s, a, b: s.write_kernel32(
        s.read_kernel32(a + L.TCB_PROCESS) + L.PCB_THREADS, 7
    ),
    "slot mark": lambda s, a, b: s.memory.write8(
        s.read_kernel32(a + L.TCB_PROCESS) - L.KERNEL_BASE + L.PCB_SLOTS + 2, 1
    ),
    "bad process": lambda s, a, b: s.write_kernel32(a + L.TCB_PROCESS, L.PCB_LINEAR + 100 * 128),
    "port queue": lambda s, a, b: s.memory.write32(
        L.IPC_PORTS_PHYS + 3 * L.PORT_SIZE + L.PORT_QUEUED, 2
    ),
}


@pytest.mark.parametrize("damage", sorted(KERNEL_TEETH))
def test_teeth_kernel_consistency_catches_damage(damage: str) -> None:
    built = _booted(_with_program(ONE_GROUP, (("spin", 5),)))
    system = built.system
    system.create_thread(built.processes[0], "main_stub")
    a = L.TCB_LINEAR + 1 * L.TCB_SIZE
    b = L.TCB_LINEAR + 2 * L.TCB_SIZE
    assert check_kernel_consistency(system) == []
    KERNEL_TEETH[damage](system, a, b)
    assert check_kernel_consistency(system) != []


def test_teeth_blocked_thread_waiting_for_nothing() -> None:
    built = _booted(_with_program(ONE_GROUP, (("spin", 5),)))
    system = built.system
    tcb = L.TCB_LINEAR + 1 * L.TCB_SIZE
    # Unlink it from the ready queue properly, then call it blocked in receive on no port.
    system._set_kernel_variable("k_ready_head", 0)
    system._set_kernel_variable("k_ready_tail", 0)
    system.write_kernel32(tcb + L.TCB_STATE, L.THREAD_BLOCKED)
    system.write_kernel32(tcb + L.TCB_IPC_STATE, L.IPC_WAIT_RECEIVE)
    problems = check_kernel_consistency(system)
    assert any("in no port's queue" in p for p in problems), problems


def test_consistency_holds_after_a_completed_message_workload() -> None:
    built = build(FIXED)
    result = run_checked(built, 300_000)
    assert result.kernel == []
    assert check_kernel_consistency(built.system) == []
