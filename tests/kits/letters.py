"""A small Lavender workload used by tests of several folders: four processes in two groups,
each with two threads that count, print their letter and exit (timer-driven preemption)."""

from __future__ import annotations

from lavsim.kernel import LavenderSystem

#: Each thread: ROUNDS times, count up a chunk of work into its data segment slot, print its
#: letter (the argument); then exit with the count.
WORKER = """
main:
    mov esi, eax                 # esi = the letter
    mov edi, 0                   # edi = rounds done
round:
    mov ecx, 60
work:
    inc dword ptr [4]            # busy work the timer interrupts
    dec ecx
    jnz work
    push esi                     # the letter, on this thread's own stack
    mov eax, 4                   # console_write(ESP, 1, SS)
    mov ebx, esp
    mov ecx, 1
    mov edx, 0x17
    int 0x30
    pop eax
    inc edi
    cmp edi, 4
    jne round
    mov eax, 0                   # exit(rounds)
    mov ebx, edi
    int 0x30
"""


def letters_system(timer_period: int, board: str = "ideal",
                   ) -> tuple[LavenderSystem, dict[str, int]]:
    system = LavenderSystem(memory_size=8 << 20, timer_period=timer_period, board=board)
    letters: dict[str, int] = {}
    letter = ord("a")
    for _ in range(2):
        group = system.create_group()
        for _ in range(2):
            process = system.create_process(group, WORKER, data_size=16, max_threads=2)
            for _ in range(2):
                thread = system.create_thread(process, "main", args=(letter,))
                letters[chr(letter)] = thread.tid
                letter += 1
    return system, letters
