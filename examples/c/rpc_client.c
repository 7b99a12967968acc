/* The client of rpc_server.c: the same call by message (lav_call to port 1) and by migration
   (lav_proc_call through checksum's gate), each made CALLS times; the last of each is measured
   (marks 1-2: message, 3-4: migration; lavsim run prints both regions on stderr). */
#include <lavender.h>
#include <stdio.h>

#define SERVER_PORT 1
#define CALLS 3

LAV_IMPORT(checksum);

int main(void) {
    int failed = 0;
    for (int k = 0; k < CALLS; k++) {
        int req[3] = {k, 1000 * k + 7, -k}, reply = 0, n, status;
        if (k == CALLS - 1) lav_mark(1);
        /* the server may not have opened its port yet: give it the processor and retry */
        while ((n = lav_call(SERVER_PORT, req, sizeof req, &reply, sizeof reply)) == -16)
            lav_yield();
        if (k == CALLS - 1) lav_mark(2);
        if (k == CALLS - 1) lav_mark(3);
        int direct = lav_proc_call(&checksum__lav_import, &status, 3, req[0], req[1], req[2]);
        if (k == CALLS - 1) lav_mark(4);
        printf("checksum(%d, %d, %d): message %08x, migration %08x (status %d)\n", req[0],
               req[1], req[2], (unsigned)reply, (unsigned)direct, status);
        failed |= n != sizeof reply || status != 0 || direct != reply;
    }
    return failed;
}
