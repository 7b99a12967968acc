/* One service, two ways in (lavsim run rpc_client.elf rpc_server.elf): checksum(a, b, c) by
   message RPC on the first port (number 1 on a system without a name server), and the same C
   function exported for thread migration (LAV_EXPORT: lavsim run exports it and hands its
   address to every program that declares LAV_IMPORT(checksum)). */
#include <lavender.h>

int served;                       /* calls by either way: the function's own global */

int checksum(int a, int b, int c) {
    unsigned int h = 2166136261u;
    int words[3] = {a, b, c};
    for (int k = 0; k < 3; k++) h = (h ^ (unsigned int)words[k]) * 16777619u;
    served++;
    return (int)h;
}
LAV_EXPORT(checksum, 3);

int main(void) {
    int msg[3];
    struct lav_msg_info info;
    int port = lav_port_create(0, 0);
    if (port < 0) return 1;
    int n = lav_receive(port, msg, sizeof msg, &info);
    for (;;) {
        if (n != sizeof msg) return 2;
        msg[0] = checksum(msg[0], msg[1], msg[2]);
        n = lav_reply_wait(info.token, msg, sizeof msg[0], port, sizeof msg, &info);
    }
}
