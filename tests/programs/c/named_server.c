/* A C server that names its port and its procedure with the name server: port "square" answers
   n*n by message, procedure "cube" (LAV_EXPORT) n*n*n by migration. */
#include <lavender.h>

int cube(int n) { return n * n * n; }
LAV_EXPORT(cube, 1);

int main(void) {
    int msg;
    struct lav_msg_info info;
    int port = lav_port_create("square", 6);
    if (port < 0) return 1;
    if (lav_proc_register("cube", &cube__lav_address) != 0) return 2;
    int n = lav_receive(port, &msg, sizeof msg, &info);
    for (;;) {
        if (n != sizeof msg) return 3;
        msg *= msg;
        n = lav_reply_wait(info.token, &msg, sizeof msg, port, sizeof msg, &info);
    }
}
