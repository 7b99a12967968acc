"""Consistency of the kernel's structures, read back from guest memory (issue 7).

:func:`check_kernel_consistency` reads the scheduler's and the IPC service's state from kernel
memory, host-side (no TLB, no statistics, nothing written), and returns the problems it finds —
an empty list when the structures are sound. Use it in tests and tools after a run::

    outcome = system.run(max_cycles=1_000_000)
    settle(system)                      # optional: finish a kernel path cut by the limit
    assert check_kernel_consistency(system) == []

The structures are only meant to be consistent *between* kernel paths: call it when the
processor is in an outer ring, idle in the kernel's HLT, or the kernel has stopped — not when a
run limit cut a kernel path in the middle (:func:`settle` steps on to such a point).

What is checked:

- ``k_status`` is a known status; after ``DONE`` no thread is live and the ready queue is empty.
- Every thread id below ``k_next_tid`` has a TCB whose state is free/ready/running/blocked/dead,
  whose ``TCB_TID`` is its id and whose ``TCB_PROCESS`` names a PCB of a process that exists
  (``PCB_PID`` matches); ids from ``k_next_tid`` on are free.
- The ready queue (``k_ready_head`` .. ``k_ready_tail`` through ``TCB_NEXT``) has no cycle,
  holds only valid TCBs in state READY, each once, ends at ``k_ready_tail`` (whose link is 0),
  and holds *every* READY thread.
- At most one thread is RUNNING, and it is ``k_current``; when the processor is in an outer ring,
  ``k_current`` is RUNNING and the loaded LDT is its process's.
- ``k_live_threads`` is the number of ready, running and blocked threads; per process,
  ``PCB_THREADS`` is the number of its live threads, their slots are distinct, below
  ``PCB_MAX_THREADS`` and marked in use in ``PCB_SLOTS``, and no other slot is marked.
- A blocked thread waits for something that can wake it: in receive (it is in exactly one open
  port's waiter queue), for a reply (its call is queued at a port, handed to a receiver, or
  received by a server process), or for the network (``k_net_waiter``, when present).
- Timed waits (issue 19): the deadline list (``k_timed_head`` through ``TCB_TIMED_NEXT``) has
  no cycle and holds exactly the threads whose ``TCB_TIMED_STATE`` is ``TIMED_WAITING``, each a
  live thread; the timer vector's dispatch entry is ``timer_timed`` exactly while the list is
  not empty; a thread expired by a tick (``TIMED_EXPIRED``) is ready and waits in no queue
  (no port's receivers, no queued call, no L4 send queue, no IPC or L4 wait state); a dead
  thread, and the thread running user code, are in no timed wait.
- Everything :func:`lavsim.kernel.ipc.check_ipc` checks (message headers, port queues).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lavsim.kernel import layout as L
from lavsim.kernel.ipc import check_ipc

if TYPE_CHECKING:
    from lavsim.kernel.system import LavenderSystem

__all__ = ["check_kernel_consistency", "quiescent", "settle"]

_STATES = (L.THREAD_FREE, L.THREAD_READY, L.THREAD_RUNNING, L.THREAD_BLOCKED, L.THREAD_DEAD)
_LIVE = (L.THREAD_READY, L.THREAD_RUNNING, L.THREAD_BLOCKED)
_STATUSES = (L.STATUS_BOOTING, L.STATUS_RUNNING, L.STATUS_DONE, L.STATUS_PANIC)


def quiescent(system: LavenderSystem) -> bool:
    """True when no kernel path is half done: the processor is in an outer ring, halted
    (idle, or the kernel has stopped), or the kernel has not started."""
    cpu = system.machine.cpu
    return cpu.cpl != 0 or cpu.halted or system.status == L.STATUS_BOOTING


def settle(system: LavenderSystem, max_instructions: int = 100_000) -> bool:
    """Step the machine on (at most ``max_instructions`` steps) until :func:`quiescent`;
    returns whether it got there. A run cut by a limit inside a kernel path needs this before
    :func:`check_kernel_consistency`.

    Each step is one instruction with a cycle limit of one cycle: a step that executes the
    kernel's idle HLT then stops with the processor halted. (``Machine.step()`` would go on
    in the same call to idle up to the next timer event and deliver the tick, so an idle
    kernel whose timer runs would never be seen halted between steps.) Stopping there changes
    no simulated result: the next run idles and takes the tick exactly as one run would."""
    machine = system.machine
    for _ in range(max_instructions):
        if quiescent(system) or machine.cpu.shutdown:
            break
        if machine.run(max_instructions=1, max_cycles=1).reason == "bus_error":
            break
    return quiescent(system)


def _tid_of(tcb: int) -> int | None:
    """The thread id of a TCB's linear address, or None when it is not one."""
    offset = tcb - L.TCB_LINEAR
    if offset < 0 or offset % L.TCB_SIZE or offset // L.TCB_SIZE >= L.MAX_THREADS:
        return None
    return offset // L.TCB_SIZE


def check_kernel_consistency(system: LavenderSystem) -> list[str]:
    """The inconsistencies of the kernel's scheduler, thread, process and IPC structures (see
    the module docstring); empty when they are sound. Reads guest memory only."""
    memory = system.memory
    problems: list[str] = []

    def k32(linear: int) -> int:
        return memory.read32(linear - L.KERNEL_BASE)

    def var(name: str) -> int:
        return k32(system.image.symbol(name))

    status = var("k_status")
    if status not in _STATUSES:
        problems.append(f"k_status is {status}, not a known status")
    next_tid = var("k_next_tid")
    if not 1 <= next_tid <= L.MAX_THREADS:
        problems.append(f"k_next_tid is {next_tid}")
        next_tid = min(max(next_tid, 1), L.MAX_THREADS)

    # --- thread control blocks ---------------------------------------------------------------
    states: dict[int, int] = {}
    homes: dict[int, int] = {}
    for tid in range(1, L.MAX_THREADS):
        tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
        state = k32(tcb + L.TCB_STATE)
        if tid >= next_tid:
            if state != L.THREAD_FREE:
                problems.append(f"thread {tid} (not yet created) has state {state}")
            continue
        states[tid] = state
        if state not in _STATES:
            problems.append(f"thread {tid} has state {state}, not a thread state")
        if k32(tcb + L.TCB_TID) != tid:
            problems.append(f"thread {tid}: TCB_TID is {k32(tcb + L.TCB_TID)}")
        pcb = k32(tcb + L.TCB_PROCESS)
        pid, rest = divmod(pcb - L.PCB_LINEAR, L.PCB_SIZE)
        if rest or not 1 <= pid < L.MAX_PROCESSES or pid not in system.processes:
            problems.append(f"thread {tid}: TCB_PROCESS {pcb:#x} is not a process's PCB")
            continue
        if k32(pcb + L.PCB_PID) != pid:
            problems.append(f"thread {tid}: its PCB says pid {k32(pcb + L.PCB_PID)}, not {pid}")
        homes[tid] = pid

    # --- the ready queue ------------------------------------------------------------------------
    head, tail = var("k_ready_head"), var("k_ready_tail")
    queued: list[int] = []
    if (head == 0) != (tail == 0):
        problems.append(f"ready queue head {head:#x} and tail {tail:#x} disagree on emptiness")
    node = head
    while node:
        member = _tid_of(node)
        if member is None or member == 0 or member >= next_tid:
            problems.append(f"ready queue holds {node:#x}, not a created thread's TCB")
            break
        if member in queued:
            problems.append(f"ready queue has a cycle (thread {member} twice)")
            break
        queued.append(member)
        if states.get(member) != L.THREAD_READY:
            problems.append(f"thread {member} is in the ready queue in state {states.get(member)}")
        following = k32(node + L.TCB_NEXT)
        if not following and node != tail:
            problems.append(f"ready queue ends at thread {member}, not at the tail {tail:#x}")
        node = following
    ready = [tid for tid, state in states.items() if state == L.THREAD_READY]
    missing = sorted(set(ready) - set(queued))
    if missing:
        problems.append(f"ready threads {missing} are not in the ready queue")

    # --- running thread, live counts, slots ------------------------------------------------------
    running = [tid for tid, state in states.items() if state == L.THREAD_RUNNING]
    current = _tid_of(var("k_current"))
    if len(running) > 1:
        problems.append(f"threads {running} are all running")
    if running and running != [current]:
        problems.append(f"thread {running[0]} is running but k_current is {current}")
    cpu = system.machine.cpu
    if cpu.cpl != 0 and status == L.STATUS_RUNNING:
        if current is None or states.get(current) != L.THREAD_RUNNING:
            problems.append(
                f"the processor runs user code but k_current ({current}) is not running"
            )
        elif current in homes:
            expected = L.ldt_selector(homes[current])
            if cpu.ldtr.selector & ~3 != expected:
                problems.append(
                    f"thread {current} runs with LDT {cpu.ldtr.selector:#x}, not its "
                    f"process's {expected:#x}"
                )
    live = [tid for tid, state in states.items() if state in _LIVE]
    if var("k_live_threads") != len(live):
        problems.append(f"k_live_threads is {var('k_live_threads')}, {len(live)} threads live")
    if status == L.STATUS_DONE and (live or head):
        problems.append("the kernel is done but threads are live or queued")
    for pid in sorted(system.processes):
        pcb = L.PCB_LINEAR + pid * L.PCB_SIZE
        mine = [tid for tid in live if homes.get(tid) == pid]
        if k32(pcb + L.PCB_THREADS) != len(mine):
            problems.append(
                f"process {pid}: PCB_THREADS is {k32(pcb + L.PCB_THREADS)}, "
                f"{len(mine)} live threads"
            )
        max_threads = k32(pcb + L.PCB_MAX_THREADS)
        if not 1 <= max_threads <= L.MAX_THREADS_PER_PROCESS:
            problems.append(f"process {pid}: PCB_MAX_THREADS is {max_threads}")
            continue
        slots = [k32(L.TCB_LINEAR + tid * L.TCB_SIZE + L.TCB_SLOT) for tid in mine]
        if len(set(slots)) != len(slots) or any(s >= max_threads for s in slots):
            problems.append(f"process {pid}: live threads use slots {slots}")
        marks = memory.read(pcb + L.PCB_SLOTS - L.KERNEL_BASE, max_threads)
        marked = {k for k, b in enumerate(marks) if b}
        if marked != set(slots):
            problems.append(f"process {pid}: slots marked {sorted(marked)}, used {sorted(slots)}")

    # --- what blocked threads wait for -----------------------------------------------------------
    waiting_receive: dict[int, int] = {}
    calls: set[int] = set()
    for port in range(L.IPC_MAX_PORTS):
        entry = L.IPC_PORTS_PHYS + port * L.PORT_SIZE
        node, seen = memory.read32(entry + L.PORT_WHEAD), 0
        while node and seen <= L.MAX_THREADS:
            waiter = _tid_of(node)
            if waiter is None:
                break  # check_ipc reports it
            if waiter in waiting_receive:
                problems.append(
                    f"thread {waiter} waits at ports {waiting_receive[waiter]} and {port}"
                )
            waiting_receive[waiter] = port
            node, seen = k32(node + L.TCB_IPC_NEXT), seen + 1
        node, seen = memory.read32(entry + L.PORT_HEAD), 0
        while node and seen <= L.IPC_MAX_MESSAGES:
            caller = k32(node + L.MSG_CALLER)
            if caller:
                calls.add(caller)
            node, seen = k32(node + L.MSG_NEXT), seen + 1
    for tid, state in states.items():
        handed = k32(L.TCB_LINEAR + tid * L.TCB_SIZE + L.TCB_IPC_MSG)
        if handed and state in (L.THREAD_READY, L.THREAD_BLOCKED):
            caller = k32(handed + L.MSG_CALLER)
            if caller:
                calls.add(caller)
    net_waiters: set[int] = set()
    if "k_net_waiter" in system.image.program.symbols:
        at = system.image.symbol("k_net_waiter")
        net_waiters = {k32(at), k32(at + 4)} - {0}
    for tid, state in states.items():
        tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
        ipc = k32(tcb + L.TCB_IPC_STATE)
        if state != L.THREAD_BLOCKED:
            if tid in waiting_receive:
                problems.append(
                    f"thread {tid} is in port {waiting_receive[tid]}'s waiter queue "
                    f"in state {state}"
                )
            continue
        if ipc == L.IPC_WAIT_RECEIVE:
            if tid not in waiting_receive:
                problems.append(f"thread {tid} waits in receive but is in no port's queue")
        elif ipc == L.IPC_WAIT_REPLY:
            if tcb not in calls and not k32(tcb + L.TCB_IPC_SERVER):
                problems.append(f"thread {tid} waits for a reply to a call nobody holds")
        elif (l4 := k32(tcb + L.TCB_L4_STATE)) != L.L4_NONE:
            problems.extend(_l4_wait_problems(k32, tid, tcb, l4, states))
        elif tcb not in net_waiters:
            problems.append(f"thread {tid} is blocked waiting for nothing (IPC state {ipc})")

    problems.extend(_timed_problems(system, k32, states, waiting_receive, calls))
    problems.extend(f"ipc: {p}" for p in check_ipc(memory))
    return problems


def _timed_problems(
    system: LavenderSystem, k32: Callable[[int], int], states: dict[int, int],
    waiting_receive: dict[int, int], calls: set[int],
) -> list[str]:
    """The deadline list and the timed-wait states of the threads (issue 19, timeout.s)."""
    problems: list[str] = []
    symbols = system.image.program.symbols
    listed: list[int] = []
    node = k32(symbols["k_timed_head"])
    while node:
        member = _tid_of(node)
        if member is None or member not in states:
            problems.append(f"the deadline list holds {node:#x}, not a created thread's TCB")
            break
        if member in listed:
            problems.append(f"the deadline list has a cycle (thread {member} twice)")
            break
        listed.append(member)
        node = k32(node + L.TCB_TIMED_NEXT)
    timer = k32(symbols["vector_table"] + 4 * L.TIMER_VECTOR)
    expected = symbols["timer_timed"] if listed else symbols["timer_handler"]
    if timer != expected:
        problems.append(f"the timer vector's handler is {timer:#x} with {len(listed)} timed "
                        f"waits listed, not {expected:#x}")
    senders: set[int] = set()
    for tid, state in states.items():
        if state in _LIVE:
            tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
            node, seen = k32(tcb + L.TCB_L4_SENDQ), 0
            while node and seen <= L.MAX_THREADS:
                senders.add(node)
                node, seen = k32(node + L.TCB_L4_NEXT), seen + 1
    current = _tid_of(k32(symbols["k_current"]))
    in_user = system.machine.cpu.cpl != 0 and k32(symbols["k_status"]) == L.STATUS_RUNNING
    for tid, state in states.items():
        tcb = L.TCB_LINEAR + tid * L.TCB_SIZE
        timed = k32(tcb + L.TCB_TIMED_STATE)
        if timed not in (L.TIMED_NONE, L.TIMED_WAITING, L.TIMED_EXPIRED):
            problems.append(f"thread {tid} has timed state {timed}")
            continue
        if (timed == L.TIMED_WAITING) != (tid in listed):
            where = "on" if tid in listed else "off"
            problems.append(f"thread {tid} in timed state {timed} is {where} the deadline list")
        if timed != L.TIMED_NONE and state not in _LIVE:
            problems.append(f"thread {tid} in state {state} is in a timed wait")
        if timed != L.TIMED_NONE and in_user and tid == current:
            problems.append(f"thread {tid} runs user code in a timed wait")
        if timed != L.TIMED_EXPIRED:
            continue
        queues = [name for name, held in (
            ("a port's receivers", tid in waiting_receive), ("a queued call", tcb in calls),
            ("an L4 send queue", tcb in senders),
            ("an IPC wait", k32(tcb + L.TCB_IPC_STATE) != L.IPC_NONE),
            ("an L4 wait", k32(tcb + L.TCB_L4_STATE) != L.L4_NONE)) if held]  # fmt: skip
        if state != L.THREAD_READY or queues:
            problems.append(f"thread {tid} timed out but is in state {state}"
                            + (f" and in {', '.join(queues)}" if queues else ""))
    return problems


def _l4_wait_problems(
    k32: Callable[[int], int], tid: int, tcb: int, l4: int, states: dict[int, int]
) -> list[str]:
    """An L4-style wait (issue 14) of the blocked thread ``tid``: waiting for a reply or to
    send, its partner is a thread that exists; a sender is in its partner's send queue."""
    if l4 == L.L4_WAIT_ANY:
        return []
    if l4 not in (L.L4_WAIT_REPLY, L.L4_WAIT_SEND):
        return [f"thread {tid} is in L4 state {l4}"]
    partner = k32(tcb + L.TCB_L4_PARTNER)
    ptid, rest = divmod(partner - L.TCB_LINEAR, L.TCB_SIZE)
    if rest or ptid not in states:
        return [f"thread {tid} waits in L4 IPC for a partner {partner:#x} that is no thread"]
    if l4 == L.L4_WAIT_SEND:
        node, seen = k32(partner + L.TCB_L4_SENDQ), 0
        while node and node != tcb and seen <= L.MAX_THREADS:
            node, seen = k32(node + L.TCB_L4_NEXT), seen + 1
        if node != tcb:
            return [f"thread {tid} waits to send but is not in thread {ptid}'s send queue"]
    return []
