/* A C client calling a procedure by migration: the loader fills proc, nargs, args (and
   threads: 2 runs the second half of the calls on a second thread); results[k] and
   statuses[k] receive what call k returned. */
#include <lavender.h>

#define CALLS 8
struct lav_address proc;
int nargs = 3, threads = 1;
int args[3 * CALLS];
int results[CALLS], statuses[CALLS], bound;
long long wide;             /* the first call again, as lav_proc_call64: EDX:EAX */

static int work(int first) {
    int last = threads == 2 ? first + CALLS / 2 : CALLS;
    for (int k = first; k < last; k++)
        results[k] = nargs == 3 ? lav_proc_call(&proc, &statuses[k], 3, args[3 * k],
                                                args[3 * k + 1], args[3 * k + 2])
                                : lav_proc_call(&proc, &statuses[k], 1, args[k]);
    return 0;
}

int main(void) {
    bound = lav_bind(&proc, nargs);
    if (nargs == 3) wide = lav_proc_call64(&proc, 0, 3, args[0], args[1], args[2]);
    if (threads == 2) lav_thread_create(work, CALLS / 2);
    return work(0);
}
