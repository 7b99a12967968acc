/* lavender.h: Lavender's system calls for C programs run by lavsim (lavsim cc / lavsim run).
   Numbers and conventions: docs/design.md, "System calls" (int 0x30; number in EAX, arguments
   in EBX ECX EDX ESI EDI, result in EAX; errors are negative). Buffers are offsets in the
   data segment (DS = ES = SS in a C process); selector 0 means DS. */
#ifndef LAVENDER_H
#define LAVENDER_H

#define LAV_SYS_EXIT 0
#define LAV_SYS_YIELD 1
#define LAV_SYS_THREAD_ID 2
#define LAV_SYS_PROCESS_ID 3
#define LAV_SYS_CONSOLE_WRITE 4
#define LAV_SYS_CREATE_THREAD 5
#define LAV_SYS_PORT_CREATE 16
#define LAV_SYS_PORT_DESTROY 17
#define LAV_SYS_SEND 18
#define LAV_SYS_RECEIVE 19
#define LAV_SYS_CALL 20
#define LAV_SYS_REPLY 21
#define LAV_SYS_REPLY_WAIT 22
#define LAV_SYS_CALL_HANDOFF 23
#define LAV_SYS_REPLY_WAIT_HANDOFF 24

/* The port lavsim's measurement marks are written to (lavsim run --bare and under the kernel
   alike: see lav_mark). */
#define LAV_MARK_PORT 0xEA

static inline int lav_syscall(int n, int b, int c, int d, int s, int di) {
    int r;
    __asm__ volatile("int $0x30" : "=a"(r) : "a"(n), "b"(b), "c"(c), "d"(d), "S"(s), "D"(di)
                     : "memory", "cc");
    return r;
}

/* What receive and reply_wait return besides the length. */
struct lav_msg_info { int length; int token; int sender_pid; int sender_group; };

static inline int lav_receive_info(int n, int a, int b, int c, int d, int e,
                                   struct lav_msg_info *info) {
    int r, tok, pid, grp;
    __asm__ volatile("int $0x30" : "=a"(r), "=b"(tok), "=c"(pid), "=d"(grp)
                     : "a"(n), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e) : "memory", "cc");
    info->length = r; info->token = tok; info->sender_pid = pid; info->sender_group = grp;
    return r;
}

void lav_exit(int status) __attribute__((noreturn));
static inline int lav_yield(void) { return lav_syscall(LAV_SYS_YIELD, 0, 0, 0, 0, 0); }
static inline int lav_thread_id(void) { return lav_syscall(LAV_SYS_THREAD_ID, 0, 0, 0, 0, 0); }
static inline int lav_process_id(void) {
    return lav_syscall(LAV_SYS_PROCESS_ID, 0, 0, 0, 0, 0);
}
static inline int lav_console_write(const void *buf, int len) {
    return lav_syscall(LAV_SYS_CONSOLE_WRITE, (int)buf, len, 0, 0, 0);
}
/* A new thread of this process running fn(arg); when fn returns, the thread exits with its
   value. At most max_threads (lavsim run --threads) threads live at once. */
int lav_thread_create(int (*fn)(int), int arg);
void lav_thread_exit(int status) __attribute__((noreturn));

/* Ports and message IPC. */
static inline int lav_port_create(const char *name, int len) {
    return lav_syscall(LAV_SYS_PORT_CREATE, (int)name, len, 0, 0, 0);
}
static inline int lav_port_destroy(int port) {
    return lav_syscall(LAV_SYS_PORT_DESTROY, port, 0, 0, 0, 0);
}
static inline int lav_send(int port, const void *buf, int len) {
    return lav_syscall(LAV_SYS_SEND, port, (int)buf, len, 0, 0);
}
static inline int lav_receive(int port, void *buf, int cap, struct lav_msg_info *info) {
    return lav_receive_info(LAV_SYS_RECEIVE, port, (int)buf, cap, 0, 0, info);
}
static inline int lav_call(int port, const void *req, int len, void *reply, int cap) {
    return lav_syscall(LAV_SYS_CALL, port, (int)req, len, (int)reply, cap);
}
static inline int lav_reply(int token, const void *buf, int len) {
    return lav_syscall(LAV_SYS_REPLY, token, (int)buf, len, 0, 0);
}
/* Reply to token (0: none) from buf[0..len) and wait on port for the next request into the
   same buffer (capacity cap). */
static inline int lav_reply_wait(int token, void *buf, int len, int port, int cap,
                                 struct lav_msg_info *info) {
    return lav_receive_info(LAV_SYS_REPLY_WAIT, token, (int)buf, len, port, cap, info);
}

/* A measurement mark: lavsim run reports the instructions and cycles between mark 1 (start)
   and mark 2 (stop). Under the kernel user code may not use port I/O, so the mark is a
   console write of a reserved string; bare it is an OUT to LAV_MARK_PORT. */
void lav_mark(int which);

#endif
