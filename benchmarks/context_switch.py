"""Cycles of a yield between two threads: same group (no CR3 load) and two groups (CR3 load,
TLB refill), on both CPU profiles.

Two threads ping-pong with the yield system call (no timer: nothing else preempts them). The
first thread reads the TSC (RDTSC) after a warm-up and again after ROUNDS round trips; one
yield (one one-way switch: trap, system call, scheduler, context switch, return to the other
thread) costs (t1 - t0) / (2 * ROUNDS) cycles. The breakdown per yield comes from the
host-side observer over the same window (lavsim.kernel.observer).

Run: python benchmarks/context_switch.py [--rounds N]
"""

from __future__ import annotations

import argparse

from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel.observer import KernelStats

WARMUP = 4

TIMED = """
main:
    mov edi, {warmup}
warm:
    mov eax, 1                    # yield
    int 0x30
    dec edi
    jnz warm
    rdtsc
    mov dword ptr [0], eax        # t0
    mov dword ptr [8], 1          # start mark for the host
    mov edi, {rounds}
timed:
    mov eax, 1                    # yield
    int 0x30
    dec edi
    jnz timed
    rdtsc
    mov dword ptr [4], eax        # t1
    mov dword ptr [12], 1         # end mark
    mov eax, 0
    mov ebx, 0
    int 0x30
"""

PARTNER = """
main:
    mov edi, {count}
again:
    mov eax, 1                    # yield
    int 0x30
    dec edi
    jnz again
    mov eax, 0
    mov ebx, 0
    int 0x30
"""

PHASES = (
    ("trap (INT, IDT)", ("<trap>",)),
    ("entry: save, dispatch", ("syscall_entry",)),
    ("scheduler", ("sys_yield", "preempt", "ready_enqueue", "schedule")),
    ("switch_to (LDT, CR3)", ("switch_to",)),
    ("return: restore, IRET", ("trap_return",)),
    ("user loop", ("<user>",)),
)


def _run_until(system: LavenderSystem, process: Process, offset: int) -> None:
    while system.read_data32(process, offset) == 0:
        outcome = system.run(max_instructions=50)
        if outcome.status not in ("instruction_limit", "done"):
            raise RuntimeError(f"benchmark stopped: {outcome}")


def measure(profile: str, two_groups: bool, rounds: int) -> tuple[float, KernelStats]:
    """Cycles per yield (from the guest's RDTSC) and the observer's statistics of the window."""
    system = LavenderSystem(profile=profile, memory_size=8 << 20, timer_period=0)
    g1 = system.create_group("a")
    g2 = system.create_group("b") if two_groups else g1
    timed = system.create_process(g1, TIMED.format(warmup=WARMUP, rounds=rounds), data_size=16)
    partner = system.create_process(g2, PARTNER.format(count=WARMUP + rounds + 1), data_size=16)
    system.create_thread(timed, "main")
    system.create_thread(partner, "main")
    _run_until(system, timed, 8)
    system.reset_stats()
    _run_until(system, timed, 12)
    stats = system.stats()
    outcome = system.run(max_cycles=10_000_000)
    assert outcome.status == "done", outcome
    t0, t1 = system.read_data32(timed, 0), system.read_data32(timed, 4)
    return ((t1 - t0) & 0xFFFFFFFF) / (2 * rounds), stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed round trips")
    args = parser.parse_args()
    for profile in ("i486", "pentium"):
        print(f"\n== profile {profile}: one yield = one one-way context switch ==")
        header = f"{'':28}{'same group':>14}{'two groups':>14}"
        print(header)
        results = [measure(profile, two, args.rounds) for two in (False, True)]
        yields = [2 * args.rounds for _ in results]
        print(f"{'cycles per yield (RDTSC)':28}" +
              "".join(f"{c:>14.1f}" for c, _ in results))
        for label, rows in PHASES:
            print(f"{'  ' + label:28}" + "".join(
                f"{s.cycles_in(*rows) / n:>14.1f}" for (_, s), n in zip(results, yields,
                                                                      strict=True)))
        for label, attr in (("CR3 loads per yield", "cr3_loads"),
                            ("LDT loads per yield", "ldt_loads"),
                            ("TLB misses per yield", "tlb_misses"),
                            ("page-walk reads per yield", "page_walk_reads"),
                            ("kernel entries per yield", "kernel_entries")):
            print(f"{label:28}" + "".join(
                f"{getattr(s, attr) / n:>14.2f}" for (_, s), n in zip(results, yields,
                                                                    strict=True)))


if __name__ == "__main__":
    main()
