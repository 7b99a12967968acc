    .intel_syntax noprefix
/* Start-up code of a lavsim C program (lavsim cc). Under the kernel the first thread starts
   here with DS = ES = SS = the data segment and ESP at its stack slot's top; bare (LAV_BARE)
   the loader has set a flat CPL-0 machine and ESP. main's value is the exit status. */
    .section .text.start, "ax"
    .globl _start
_start:
    cld
    call main
    push eax
    call exit
1:  jmp 1b

/* A thread made by lav_thread_create starts here: EAX holds the argument, [ESP+4] too;
   the function is in __lav_thread_fn's slot passed as the argument block {fn, arg}. */
    .text
    .globl __lav_thread_start
__lav_thread_start:
    cld
    push dword ptr [eax+4]
    call dword ptr [eax]
    push eax
    call lav_thread_exit
2:  jmp 2b
