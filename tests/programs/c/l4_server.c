/* An L4-style server: replies to each call with (w0 + w1, w0 * w1) and the long part it got,
   upper-cased. */
#include <ctype.h>
#include <lavender.h>

static char buf[64];

int main(void) {
    struct lav_l4_msg m = {0, 0, 0};
    if (lav_l4_receive_buffer(buf, sizeof buf) != 0) return 1;
    int n = lav_l4_reply_wait(0, 0, &m);
    for (;;) {
        if (n < 0) return 2;
        for (int k = 0; k < n; k++) buf[k] = (char)toupper((unsigned char)buf[k]);
        int a = m.w0, b = m.w1;
        m.w0 = a + b;
        m.w1 = a * b;
        n = lav_l4_reply_wait(buf, n, &m);
    }
}
