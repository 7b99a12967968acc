/* Finds named_server.c's port and procedure by name, calls each, and tries the name server's
   refusals: an unknown name, and registering a name that is taken. */
#include <lavender.h>
#include <stdio.h>

int main(void) {
    struct lav_address cube;
    int port, status, reply = 0;
    while ((status = lav_proc_lookup("cube", &cube)) == LAV_E_NOENT) lav_yield();
    port = lav_port_lookup("square");
    printf("lookup cube %d bind %d, port square %d\n", status, lav_bind(&cube, 1), port);
    for (int n = 2; n < 5; n++) {
        int r = lav_call(port, &n, sizeof n, &reply, sizeof reply);
        int c = lav_proc_call(&cube, &status, 1, n);
        printf("%d: square %d (%d bytes), cube %d (status %d)\n", n, reply, r, c, status);
    }
    printf("unknown %d, taken %d\n", lav_port_lookup("nosuch"), lav_proc_register("cube", &cube));
    return 0;
}
