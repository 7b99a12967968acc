/* An L4-style client: server is the server thread's id (written by the loader). */
#include <lavender.h>
#include <stdio.h>
#include <string.h>

int server;
static char reply[64];

int main(void) {
    static const char *words[3] = {"", "l4", "from c"};
    if (lav_l4_receive_buffer(reply, sizeof reply) != 0) return 1;
    for (int k = 0; k < 3; k++) {
        struct lav_l4_msg m = {k + 2, 10 * k + 3, 0};
        int n = lav_l4_call(server, words[k], (int)strlen(words[k]), &m);
        printf("%d: %d %d from %d, \"%.*s\"\n", n, m.w0, m.w1, m.partner == server, n < 0 ? 0 : n,
               reply);
    }
    struct lav_l4_msg m = {0, 0, 0};
    printf("self %d\n", lav_l4_call(lav_thread_id(), 0, 0, &m));
    return 0;
}
