"""The Lavender kernel running as guest code: scheduling, system calls, faults, panics,
context switches (tests of issue 4)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from letters import WORKER, letters_system

from lavsim.faults import GP, PF, SS, UD
from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L


def test_two_groups_of_processes_and_threads_run_to_completion_interleaved_by_the_timer() -> None:
    system, letters = letters_system(timer_period=700)
    outcome = system.run(max_cycles=5_000_000)
    assert outcome.status == "done", outcome
    text = system.console
    assert sorted(text) == sorted(list(letters) * 4)
    # Interleaved: no thread prints all its letters in one run of the console.
    runs = sum(1 for a, b in itertools.pairwise(text) if a != b) + 1
    assert runs > len(letters) * 2
    stats = system.stats()
    assert stats.interrupts > 10 and stats.context_switches > len(letters)
    for tid in letters.values():
        state = system.thread_state(tid)
        assert state.state == "dead" and state.exit_code == 4 and state.fault is None
    for process in system.processes.values():
        assert system.read_data32(process, 4) == 2 * 4 * 60
    assert system.kernel_variable("k_live_threads") == 0


def test_without_a_timer_threads_run_one_after_the_other() -> None:
    system, letters = letters_system(timer_period=0)
    assert system.run(max_cycles=5_000_000).status == "done"
    assert system.console == "".join(ch * 4 for ch in sorted(letters))


OTHER_PROCESS = """
main:
    mov eax, dword ptr [0x1000]   # the data segment is 16 bytes: the neighbour lies beyond
"""
KERNEL_SELECTOR = f"""
main:
    mov ax, {L.KERNEL_DS}
    mov ds, ax                    # a DPL 0 segment at CPL 3
"""
STACK_OVERRUN = """
main:
    mov esp, 0
    push eax                      # below the stack segment
"""
INVALID = """
main:
    nop
    ud2
"""
GDT_LDT_SELECTOR = f"""
main:
    mov ax, {L.ldt_selector(1) | 3}
    mov es, ax                    # an LDT descriptor is no data segment
"""


def test_faulting_threads_are_killed_with_a_reason_and_the_others_finish() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=900)
    group_a, group_b = system.create_group(), system.create_group()
    good = []
    for group, letter in ((group_a, "x"), (group_b, "y")):
        process = system.create_process(group, WORKER, data_size=16)
        good.append(system.create_thread(process, "main", args=(ord(letter),)))
    bad = {}
    for name, source in (("other", OTHER_PROCESS), ("kernel", KERNEL_SELECTOR),
                         ("stack", STACK_OVERRUN), ("ud", INVALID), ("ldt", GDT_LDT_SELECTOR)):
        process = system.create_process(group_a, source, data_size=16)
        bad[name] = system.create_thread(process, "main")
    outcome = system.run(max_cycles=5_000_000)
    assert outcome.status == "done", outcome
    assert sorted(system.console) == sorted("xxxxyyyy")
    for thread in good:
        assert system.thread_state(thread).exit_code == 4
    expected = {
        "other": (GP, 0), "kernel": (GP, L.KERNEL_DS), "stack": (SS, 0), "ud": (UD, None),
        "ldt": (GP, L.ldt_selector(1)),
    }
    for name, (vector, error) in expected.items():
        state = system.thread_state(bad[name])
        assert state.state == "dead"
        assert state.fault is not None, name
        assert state.fault.vector == vector, (name, state.fault.describe())
        assert state.fault.pid == bad[name].process.pid
        assert state.fault.cs == L.USER_CS
        if error is not None:
            assert state.fault.error_code == error, name
    assert system.thread_state(bad["ud"]).fault.eip == 1  # type: ignore[union-attr]


def test_a_user_thread_cannot_reach_kernel_pages_even_through_its_own_segment() -> None:
    # A ring-3 page fault: the thread's own segment covers an unmapped page of its region gap.
    system = LavenderSystem(memory_size=8 << 20)
    group = system.create_group()
    victim = system.create_process(group, WORKER, data_size=16)
    system.create_thread(victim, "main", args=(ord("v"),))
    # Rewrite the attacker's data descriptor to cover the kernel: the check that must stop it
    # is paging (supervisor pages), not the segment.
    attacker = system.create_process(group, f"""
main:
    mov eax, dword ptr [{L.KERNEL_BASE - 0x400000:#x}]
""", data_size=16)
    from lavsim.kernel.tables import segment, write_descriptor
    from lavsim.mmu import descriptors as d
    write_descriptor(system.memory, L.LDT_PHYS + attacker.pid * L.LDT_BYTES, L.LDT_DATA,
                     segment(0x400000, 0xFFC00000, d.DATA_READ_WRITE, 3, "data"))
    thread = system.create_thread(attacker, "main")
    assert system.run(max_cycles=2_000_000).status == "done"
    fault = system.thread_state(thread).fault
    assert fault is not None and fault.vector == PF and fault.cr2 == L.KERNEL_BASE
    assert fault.error_code & 4  # a user-mode access
    assert system.thread_state(victim.threads[0]).exit_code == 4


YIELDER = """
main:
    mov edi, 6
again:
    mov eax, 1                    # yield
    int 0x30
    dec edi
    jnz again
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def test_cr3_is_reloaded_only_when_the_group_changes() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    g1, g2 = system.create_group(), system.create_group()
    group_of: dict[int, int] = {L.TCB_LINEAR: 0}
    for group, count in ((g1, 3), (g2, 2)):
        for _ in range(count):
            process = system.create_process(group, YIELDER, data_size=16)
            thread = system.create_thread(process, "main")
            group_of[thread.tcb_linear] = group.gid
    resident = system.create_resident_process(YIELDER, data_size=16)
    group_of[system.create_thread(resident, "main").tcb_linear] = -1
    assert system.run(max_cycles=5_000_000).status == "done"
    observer = system.observer
    assert observer is not None
    expected = 0
    loaded = 0  # the boot directory
    for _, to in observer.switch_log:
        target = group_of[to]
        if target != -1 and target != loaded:  # resident threads keep the loaded CR3
            expected += 1
            loaded = target
    stats = system.stats()
    assert stats.cr3_loads == expected
    assert 0 < stats.cr3_loads < stats.context_switches
    assert stats.ldt_loads == stats.context_switches  # every switch here changes process


REGISTER_KEEPER = """
main:
    times 1500 nop                # the timer preempts the thread somewhere in here
    ud2                           # the kernel saves every register in the fault frame
"""
SPINNER = """
main:
    mov eax, 0x11111111
    mov ebx, 0x22222222
    mov ecx, 0x33333333
    mov edx, 0x44444444
    mov esi, 0x55555555
    mov edi, 0x66666666
    mov ebp, 0x77777777
    std
spin:
    add eax, 1
    jmp spin
"""

word = st.integers(0, 0xFFFFFFFF)


@given(
    values=st.fixed_dictionaries({r: word for r in ("eax", "ebx", "ecx", "edx", "esi", "edi",
                                                      "ebp")}),
    flags=st.integers(0, 0xFFF),
    same_group=st.booleans(),
)
def test_a_context_switch_preserves_every_register(
    values: dict[str, int], flags: int, same_group: bool
) -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=450)
    g1 = system.create_group()
    g2 = g1 if same_group else system.create_group()
    keeper = system.create_process(g1, REGISTER_KEEPER, data_size=16)
    spinner = system.create_process(g2, SPINNER, data_size=16)
    thread = system.create_thread(keeper, "main", registers={**values, "eflags": flags})
    system.create_thread(spinner, "main")
    outcome = system.run(max_cycles=20_000)
    assert outcome.status == "cycle_limit"
    state = system.thread_state(thread)
    assert state.fault is not None and state.fault.vector == UD
    assert system.stats().context_switches >= 4  # the keeper was preempted and resumed
    regs = state.registers
    assert regs is not None
    for name, value in values.items():
        assert getattr(regs, name) == value, name
    mask = 0x8D5 | 0x400  # CF PF AF ZF SF OF, DF
    assert regs.eflags & mask == flags & mask
    assert regs.esp == keeper.stack_size - 4
    assert regs.eip == 1500
    assert (regs.cs, regs.ss, regs.ds, regs.es) == (L.USER_CS, L.USER_SS, L.USER_DS, L.USER_DS)


IDS = """
main:
    mov eax, 2                    # thread_id
    int 0x30
    mov dword ptr [0], eax
    mov eax, 3                    # process_id
    int 0x30
    mov dword ptr [4], eax
    mov eax, 5                    # create_thread(child, 0x41)
    lea ebx, [child]
    mov ecx, 0x41
    int 0x30
    mov dword ptr [8], eax
    mov eax, 5                    # an entry outside the code segment
    mov ebx, 0x100000
    int 0x30
    mov dword ptr [12], eax
    mov eax, 4                    # console_write beyond the data segment
    mov ebx, 30
    mov ecx, 8
    mov edx, 0
    int 0x30
    mov dword ptr [16], eax
    mov eax, 4                    # console_write through a kernel selector
    mov ebx, 0
    mov ecx, 1
    mov edx, 0x10
    int 0x30
    mov dword ptr [20], eax
    mov eax, 77                   # no such system call
    int 0x30
    mov dword ptr [24], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
child:
    mov dword ptr [28], eax       # the argument arrives in EAX ...
    mov ebx, dword ptr [esp+4]    # ... and on the stack
    mov byte ptr [32], bl
    mov eax, 4
    mov ebx, 32
    mov ecx, 1
    mov edx, 0
    int 0x30
    mov eax, 0
    mov ebx, 9
    int 0x30
"""


def test_system_calls_thread_and_process_ids_create_thread_and_checked_console_writes() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    filler = system.create_process(group, YIELDER, data_size=16)
    system.create_thread(filler, "main")
    process = system.create_process(group, IDS, data_size=36)
    thread = system.create_thread(process, "main")
    assert system.run(max_cycles=2_000_000).status == "done"
    data = [system.read_data32(process, 4 * k) for k in range(8)]
    assert data[0] == thread.tid
    assert data[1] == process.pid
    child_tid = data[2]
    assert child_tid == thread.tid + 1
    assert data[3] == L.E_INVAL & 0xFFFFFFFF
    assert data[4] == L.E_FAULT & 0xFFFFFFFF
    assert data[5] == L.E_FAULT & 0xFFFFFFFF
    assert data[6] == L.E_NOSYS & 0xFFFFFFFF
    assert data[7] == 0x41
    assert system.console == "A"
    # The kernel made the child; the host learns about it through the TCB.
    system.threads.setdefault(child_tid, type(thread)(child_tid, process))
    assert system.thread_state(child_tid).exit_code == 9


def test_a_fault_in_the_kernel_stops_the_machine_with_a_panic_report() -> None:
    system = LavenderSystem(memory_size=8 << 20)
    group = system.create_group()
    process = system.create_process(group, YIELDER, data_size=16)
    thread = system.create_thread(process, "main")
    # Corrupt the saved user CS: the kernel's IRET faults at CPL 0.
    frame = thread.tcb_linear + L.TCB_SIZE - L.FRAME_SIZE
    system.write_kernel32(frame + L.FR_CS, 0x1234 | 3)
    outcome = system.run(max_cycles=1_000_000)
    assert outcome.status == "panic"
    assert outcome.panic is not None
    assert outcome.panic.vector == GP and outcome.panic.error_code == 0x1234 & ~7 | 4
    assert system.image.routine_at(outcome.panic.eip) == "trap_return"
    assert outcome.panic.tid == thread.tid
    assert "kernel panic: #GP" in outcome.detail
    assert system.run(max_cycles=1000).status == "panic"


def test_resident_threads_run_in_any_address_space_without_a_cr3_load() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    group = system.create_group()
    process = system.create_process(group, YIELDER, data_size=16)
    system.create_thread(process, "main")
    resident = system.create_resident_process(WORKER, data_size=16)
    system.create_thread(resident, "main", args=(ord("r"),))
    assert system.run(max_cycles=2_000_000).status == "done"
    assert system.console == "rrrr"
    assert system.stats().cr3_loads == 1  # boot directory -> the group's, once
    segments = system.process_segments(resident)
    assert all(s.base >= L.RESIDENT_BASE and s.end <= L.RESIDENT_END for s in segments)


def test_the_resident_space_is_mapped_identically_in_every_address_space() -> None:
    system = LavenderSystem(memory_size=8 << 20)
    groups = [system.create_group() for _ in range(3)]
    system.create_resident_process(WORKER, data_size=5000)
    for group in groups:
        system.create_process(group, WORKER)
    system.create_resident_process(WORKER, data_size=100)
    tables = system.page_tables
    directories = tables.directories
    assert len(directories) == 4
    resident = [
        {k: v for k, v in tables.user_mappings(pd).items() if k >= L.RESIDENT_BASE}
        for pd in directories
    ]
    assert resident[0] and all(r == resident[0] for r in resident)
    for pd in directories:
        for index in range(L.PDE_RESIDENT_FIRST, 1024):
            assert tables.pde(pd, index << 22) == tables.pde(directories[0], index << 22)
    group_pages = [
        {k for k in tables.user_mappings(pd) if k < L.RESIDENT_BASE} for pd in directories[1:]
    ]
    assert all(group_pages)


def test_runs_are_deterministic_and_observation_changes_nothing() -> None:
    digests = []
    for observe in (True, True, False):
        system = LavenderSystem(memory_size=8 << 20, timer_period=800, observe=observe)
        group = system.create_group()
        for letter in "pq":
            process = system.create_process(group, WORKER, data_size=16)
            system.create_thread(process, "main", args=(ord(letter),))
        outcome = system.run(max_cycles=3_000_000)
        digests.append((outcome.status, outcome.cycles, system.machine.state_digest()))
    assert digests[0] == digests[1] == digests[2]
