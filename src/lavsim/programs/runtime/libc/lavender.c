/* The system-call side of lavsim's C runtime: console output, exit, threads and marks, under
   the Lavender kernel (int 0x30) or, compiled with LAV_BARE, on a bare CPL-0 machine (console
   port 0xE9; exit is HLT with the status in EAX). */
#include <lavender.h>

void __lav_write(const char *buf, int len) {
#ifdef LAV_BARE
    for (int k = 0; k < len; k++)
        __asm__ volatile("outb %0, $0xe9" : : "a"(buf[k]));
#else
    lav_console_write(buf, len);
#endif
}

void lav_exit(int status) {
#ifdef LAV_BARE
    __asm__ volatile("cli; 1: hlt; jmp 1b" : : "a"(status));
#else
    lav_syscall(LAV_SYS_EXIT, status, 0, 0, 0, 0);
#endif
    for (;;) {}
}

void lav_thread_exit(int status) { lav_exit(status); }

/* lav_mark's body: lavsim run puts a breakpoint on __lav_mark_hit and reads the mark number
   from EAX there, so marking costs the same few instructions bare and under the kernel. */
__attribute__((noinline)) void __lav_mark_hit(int which) {
    __asm__ volatile("" : : "a"(which) : "memory");
}

void lav_mark(int which) { __lav_mark_hit(which); }

#ifndef LAV_BARE
extern void __lav_thread_start(void);
struct lav_thread_args { int (*fn)(int); int arg; };
static struct lav_thread_args thread_args[32];

int lav_thread_create(int (*fn)(int), int arg) {
    /* one argument block per slot index in use; the block is read by the new thread first */
    static unsigned int next;
    struct lav_thread_args *a = &thread_args[next++ & 31];
    a->fn = fn;
    a->arg = arg;
    return lav_syscall(LAV_SYS_CREATE_THREAD, (int)__lav_thread_start, (int)a, 0, 0, 0);
}
#endif
