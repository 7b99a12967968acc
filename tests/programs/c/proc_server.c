/* A C server exporting procedures for migration (LAV_EXPORT); it does nothing else. */
#include <lavender.h>

int calls;                   /* the server's global, counted by the procedure */
static const int table[4] = {3, 5, 7, 11};

int mix(int a, int b, int c) {
    calls++;
    return (a * table[(unsigned)c & 3] + b) ^ c;
}
LAV_EXPORT(mix, 3);

int boom(int a) {
    volatile int *p = (volatile int *)0x7FFFFFF0;   /* beyond the data segment: #GP */
    return *p + a;
}
LAV_EXPORT(boom, 1);

int main(void) { return 0; }

/* A long procedure: `inside` counts callers in it at once (the trampoline's busy word lets
   one in at a time, so `overlap` stays 0 under preemption). */
int inside, overlap;
int slow(int n) {
    if (inside++) overlap++;
    for (volatile int k = 0; k < n; k++) {}
    inside--;
    calls++;
    return n + 1;
}
LAV_EXPORT(slow, 1);

/* Prints from inside the procedure (a console write made for the calling thread). */
#include <stdio.h>
int shout(int x) { return printf("shout %d from %d\n", x, lav_process_id()); }
LAV_EXPORT(shout, 1);
