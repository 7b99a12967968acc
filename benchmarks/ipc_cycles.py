"""Cycles of a null message RPC (call + reply round trip) through the kernel's ports (issue 5):
two processes of one group, two groups (CR3 load and TLB refill each way), and the L4-style
direct handoff, on both CPU profiles.

The client reads the TSC (RDTSC) around every ``int 0x30`` of its call and stores the difference;
the empty RDTSC pair it measured first is subtracted. The server is an echo loop with
``reply_wait`` (the baseline: the woken thread waits on the ready queue to be scheduled) or
``reply_wait_handoff`` with ``call_handoff`` (the caller's time slice goes straight to the other
side). No timer runs, so nothing else is scheduled. Cold = the first call; warm = the mean of the
others. The per-phase breakdown of one warm call comes from the host-side observer over the warm
window (machine breakpoints bound the windows), divided by the number of calls; it includes the
client's loop (a few user instructions) under "user".

Run: python benchmarks/ipc_cycles.py [--calls N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import struct

from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import PHASES, phase_breakdown, user_prelude
from lavsim.kernel.observer import KernelStats

SERVER = """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov ebp, eax
    mov eax, SYS_RECEIVE
    mov ebx, ebp
    mov ecx, 0x100
    mov edx, 0x1000
    xor esi, esi
    int 0x30
serve:
    # Echo: reply with what arrived, then wait for the next request.
    mov edx, eax
    mov eax, REPLY_WAIT
    mov ecx, 0x100
    mov esi, ebp
    mov edi, 0x1000
    int 0x30
    jmp serve
"""

CLIENT = """
main:
    # The cost of an empty RDTSC pair, subtracted from every measurement.
    rdtsc
    mov esi, eax
    rdtsc
    sub eax, esi
    mov dword ptr [0x0C], eax
    xor ebp, ebp
next:
    rdtsc
    mov dword ptr [0x10], eax
    mov eax, CALL
    mov ebx, dword ptr [8]
    mov ecx, 0x100
    mov edx, dword ptr [4]
    mov esi, 0x2000
    mov edi, 0x1000
    int 0x30
    rdtsc
    sub eax, dword ptr [0x10]
    mov dword ptr [0x40+ebp*4], eax
    inc ebp
mark:
    cmp ebp, dword ptr [0]
    jb next
finish:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

FILLER = """
main:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

MECHANISMS = {
    "message RPC, one group": (L.SYS_CALL, L.SYS_REPLY_WAIT, False),
    "message RPC, two groups": (L.SYS_CALL, L.SYS_REPLY_WAIT, True),
    "handoff RPC, one group": (L.SYS_CALL_HANDOFF, L.SYS_REPLY_WAIT_HANDOFF, False),
    "handoff RPC, two groups": (L.SYS_CALL_HANDOFF, L.SYS_REPLY_WAIT_HANDOFF, True),
}


def _equ(**values: int) -> str:
    return "".join(f".equ {k}, {v:#x}\n" for k, v in values.items())


def measure(
    profile: str, call: int, reply_wait: int, cross_group: bool, calls: int, size: int
) -> dict[str, object]:
    """One mechanism on one profile: RDTSC cycles per call and the observer's windows."""
    system = LavenderSystem(profile=profile, memory_size=16 << 20, timer_period=0)
    prelude = user_prelude()
    server_group = system.create_group("server")
    server = system.create_process(
        server_group, prelude + _equ(REPLY_WAIT=reply_wait) + SERVER, data_size=0x2000
    )
    client_group = system.create_group("client") if cross_group else server_group
    if cross_group:  # keep the client's code at other linear addresses than the server's
        system.create_process(client_group, prelude + FILLER)
    data = struct.pack("<III", calls, size, 1).ljust(0x100, b"\0") + bytes(size)
    client: Process = system.create_process(
        client_group, prelude + _equ(CALL=call) + CLIENT, data=data, data_size=0x3000
    )
    system.create_thread(server, "main")
    system.create_thread(client, "main")
    machine = system.machine
    windows: list[KernelStats] = []
    for label in ("next", "mark", "finish"):
        address = client.code_base + client.symbol(label)
        machine.add_breakpoint(address)
        outcome = system.run(max_cycles=50_000_000)
        machine.remove_breakpoint(address)
        if outcome.status != "breakpoint":
            raise RuntimeError(f"{profile}: run ended with {outcome.status} {outcome.detail}")
        windows.append(system.stats())
        system.reset_stats()
    overhead = system.read_data32(client, 0x0C)
    deltas = [system.read_data32(client, 0x40 + 4 * k) - overhead for k in range(calls)]
    return {
        "cold": deltas[0],
        "warm": sum(deltas[1:]) / (calls - 1),
        "cold_stats": windows[1],
        "warm_stats": windows[2],
    }


def _per_call(stats: KernelStats, calls: int) -> dict[str, float]:
    return {
        "instructions": stats.instructions / calls,
        "kernel entries": stats.kernel_entries / calls,
        "context switches": stats.context_switches / calls,
        "CR3 loads": stats.cr3_loads / calls,
        "TLB misses": stats.tlb_misses / calls,
        "message copies": stats.messages_copied / calls,
        "bytes copied": stats.bytes_copied / calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=12, help="calls per run (first is cold)")
    parser.add_argument("--size", type=int, default=0, help="message size in bytes (0..4096)")
    args = parser.parse_args()
    if args.calls < 2 or not 0 <= args.size <= L.IPC_MAX_MESSAGE:
        parser.error("--calls must be >= 2 and --size in 0..4096")
    warm_calls = args.calls - 1
    for profile in ("i486", "pentium"):
        print(f"\n== {profile}: {args.size}-byte message RPC, cycles per call (RDTSC) ==")
        results = {
            name: measure(profile, c, r, x, args.calls, args.size)
            for name, (c, r, x) in MECHANISMS.items()
        }
        names = list(results)
        width = 26
        print(f"{'':26}" + "".join(f"{n:>{width}}" for n in names))
        print(f"{'cold (first call)':26}" + "".join(f"{results[n]['cold']:>{width},}"
                                                    for n in names))
        print(f"{'warm (mean)':26}" + "".join(f"{results[n]['warm']:>{width},.1f}"
                                              for n in names))
        per_call = {n: _per_call(results[n]["warm_stats"], warm_calls)  # type: ignore[arg-type]
                    for n in names}
        for row in next(iter(per_call.values())):
            print(f"{row + ' / warm call':26}" + "".join(f"{per_call[n][row]:>{width},.1f}"
                                                         for n in names))
        print(f"-- per-phase cycles of one warm call (observer; {warm_calls} calls) --")
        phases = {n: phase_breakdown(results[n]["warm_stats"])  # type: ignore[arg-type]
                  for n in names}
        for phase in [*PHASES, "other", "total"]:
            print(f"{phase:26}" + "".join(f"{phases[n][phase] / warm_calls:>{width},.1f}"
                                          for n in names))
        print("-- per-phase cycles of the cold call --")
        cold = {n: phase_breakdown(results[n]["cold_stats"]) for n in names}  # type: ignore[arg-type]
        for phase in [*PHASES, "other", "total"]:
            print(f"{phase:26}" + "".join(f"{cold[n][phase]:>{width},}" for n in names))


if __name__ == "__main__":
    main()
