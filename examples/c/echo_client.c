/* The echo server's client: CALLS calls by message RPC (lav_call: send, wait for the reply),
   the last one measured between lav_mark(1) and lav_mark(2) (lavsim run prints the region's
   instructions and cycles), then prints the replies. */
#include <lavender.h>
#include <stdio.h>
#include <string.h>

#define SERVER_PORT 1
#define CALLS 4

int main(void) {
    static const char *words[CALLS] = {"hello", "lavender", "from c", "measured"};
    char reply[64];
    for (int k = 0; k < CALLS; k++) {
        int n;
        if (k == CALLS - 1) lav_mark(1);
        /* the server may not have opened its port yet: give it the processor and retry */
        while ((n = lav_call(SERVER_PORT, words[k], (int)strlen(words[k]), reply,
                             sizeof reply)) == -16)
            lav_yield();
        if (k == CALLS - 1) lav_mark(2);
        if (n < 0) {
            printf("call failed: %d\n", n);
            return 1;
        }
        printf("%s -> %.*s\n", words[k], n, reply);
    }
    return 0;
}
