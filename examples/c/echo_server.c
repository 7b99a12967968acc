/* An echo server in C for Lavender (lavsim run client.elf server.elf): it opens the first
   port (number 1 on a system without a name server), then answers every request with the
   request's bytes upper-cased, by reply_wait (reply and wait for the next in one call). */
#include <ctype.h>
#include <lavender.h>

static char buf[256];

int main(void) {
    struct lav_msg_info info;
    int port = lav_port_create(0, 0);
    if (port < 0) return 1;
    int n = lav_receive(port, buf, sizeof buf, &info);
    for (;;) {
        if (n < 0) return 2;
        for (int k = 0; k < n; k++) buf[k] = (char)toupper((unsigned char)buf[k]);
        n = lav_reply_wait(info.token, buf, n, port, sizeof buf, &info);
    }
}
