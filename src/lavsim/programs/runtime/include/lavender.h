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
   and mark 2 (stop), and likewise between marks 3 and 4, 5 and 6 ... (more regions). Under the kernel user code may not use port I/O, so the mark is a
   console write of a reserved string; bare it is an OUT to LAV_MARK_PORT. */
void lav_mark(int which);

/* ---- L4-style IPC (issue 14: kernel/l4ipc.s; docs/design.md "The rest of the spectrum") ----
   Addressed to a thread id, two register words and an optional long part (bytes of DS,
   copied once into the receiver's receive buffer). A thread may call only threads of the
   processes its own holds a send right to (granted by the boot loader:
   lavsim.kernel.fastipc.grant_send). */
#define LAV_SYS_L4_CALL 25
#define LAV_SYS_L4_REPLY_WAIT 26
#define LAV_SYS_L4_RECEIVE_BUFFER 27
/* w0, w1: the words sent, then those received; partner: for reply_wait the thread to reply
   to (0: none), then (both calls) the thread the message came from. */
struct lav_l4_msg { int w0, w1, partner; };

static inline int lav_l4_ipc(int n, int tid, const void *buf, int len, struct lav_l4_msg *m) {
    int r, who, w0, w1;
    __asm__ volatile("int $0x30" : "=a"(r), "=b"(who), "=S"(w0), "=D"(w1)
                     : "a"(n), "b"(tid), "c"(buf), "d"(len), "S"(m->w0), "D"(m->w1)
                     : "memory", "cc");
    if (r >= 0) { m->w0 = w0; m->w1 = w1; m->partner = who; }
    return r;
}
/* Send m->w0, m->w1 and buf[0..len) to thread tid and wait for its reply: returns the
   reply's long length (in the receive buffer) or a negative error; m gets the reply. */
static inline int lav_l4_call(int tid, const void *buf, int len, struct lav_l4_msg *m) {
    return lav_l4_ipc(LAV_SYS_L4_CALL, tid, buf, len, m);
}
/* Reply to m->partner (0: none) with m's words and buf[0..len), then wait for a message from
   any thread: returns its long length; m gets its words and its sender (reply to it). */
static inline int lav_l4_reply_wait(const void *buf, int len, struct lav_l4_msg *m) {
    return lav_l4_ipc(LAV_SYS_L4_REPLY_WAIT, m->partner, buf, len, m);
}
/* Where this thread's incoming long parts go from now on (cap bytes). */
static inline int lav_l4_receive_buffer(void *buf, int cap) {
    return lav_syscall(LAV_SYS_L4_RECEIVE_BUFFER, 0, (int)buf, cap, 0, 0); /* ECX, EDX */
}

/* ---- Calling by thread migration (docs/design.md, "Sharing and migration") ----
   Where an exported procedure lives: the 20-byte address structure of kernel/sharing.py
   (host 0 = this host; group, or LAV_GROUP_RESIDENT; the call gate's selector; the entry
   offset, informational; flags: bit 1 = bits 8..12 hold the parameter count). The boot loader
   (lavsim.kernel.sharing: export_procedure, import_procedure, address) or a name-server
   lookup fills one in. */
struct lav_address { unsigned int host, group, selector, offset, flags; };
#define LAV_GROUP_RESIDENT 0xFFFFFFFFu
#define LAV_ADDR_FLAG_SHIPPABLE 1u
#define LAV_ADDR_FLAG_PARAMS 2u
#define LAV_E_UNREACHABLE (-32)
#define LAV_E_NARGS (-33)

/* Migrate into the procedure: one far CALL through its gate with nargs int arguments (they
   must be as many as the gate copies; check a call site once with lav_bind), back by its
   RETF. Returns the procedure's EAX (lav_proc_call64: EDX:EAX) and stores the status in
   *status if status is not 0: 0, or LAV_E_UNREACHABLE (another host, or another group of
   this host: no fault, nothing called). This is calllib.s's lav_call, whose status is ECX. */
int lav_proc_call(const struct lav_address *a, int *status, int nargs, ...);
long long lav_proc_call64(const struct lav_address *a, int *status, int nargs, ...)
    __asm__("lav_proc_call");
/* 0 when the procedure takes nargs parameters (or a records no count), LAV_E_NARGS else. */
int lav_bind(const struct lav_address *a, int nargs);

/* ---- The name server (port 0; lavsim run --name-server starts it) ----
   Names are at most LAV_NS_NAME_MAX bytes. Ports are named by lav_port_create(name, len) (the
   kernel registers them); procedures by lav_proc_register, for the caller's own group (a
   resident caller: any group). A lookup finds the caller's group's entry or a resident one.
   Results: the port / 0, or LAV_E_NOENT, LAV_E_EXIST, LAV_E_PERM, LAV_E_NOSPC, LAV_E_INVAL,
   LAV_E_BADPORT (no name server). */
#define LAV_NS_PORT 0
#define LAV_NS_NAME_MAX 32
#define LAV_E_INVAL (-5)
#define LAV_E_BADPORT (-16)
#define LAV_E_EXIST (-18)
#define LAV_E_NOENT (-19)
#define LAV_E_PERM (-20)
#define LAV_E_NOSPC (-21)
int lav_port_lookup(const char *name);
int lav_proc_register(const char *name, const struct lav_address *a);
int lav_proc_lookup(const char *name, struct lav_address *out);
int lav_proc_unregister(const char *name, unsigned int group);

/* ---- Exporting a procedure written in C ----
   LAV_EXPORT(fn, nargs); at file scope after the definition of an external function
   `int fn(int, ...)` of nargs int parameters (long long results come back in EDX:EAX too),
   generates the trampoline fn__lav_entry that the call gate enters, a private stack of
   LAV_PROC_STACK bytes and a busy word in the program's .bss, the word fn__lav_sel the
   exporter fills with the procedure's data selector, and fn__lav_address, where the exporter
   (lavsim.programs.procedures.export_c_procedure) writes the export's address structure for
   the program to register (lav_proc_register(name, &fn__lav_address)). Entered at CPL 2 on
   the caller's ring-2 stack with the caller's DS, the trampoline loads DS = ES = the procedure's DPL 2 alias of its program's data segment,
   takes the busy word (one caller at a time: a second one yields until it is free), switches
   SS:ESP to the private stack (the caller's SS:ESP saved on it), copies the nargs arguments
   across (reading the caller's stack through FS), calls fn, switches back, frees the word,
   restores FS, ES, DS and returns by RETF 4*nargs. fn runs at CPL 2 with DS = ES = SS (C's
   layout) over its program's globals and heap, shared with the program's own threads. */
/* LAV_IMPORT(fn); at file scope: fn__lav_import, the address of procedure fn exported by
   another program of the run, which lavsim run fills in (lav_proc_call(&fn__lav_import, ...)).
   Under Python, write it with system.sharing.write_address. */
#define LAV_IMPORT(fn) struct lav_address fn##__lav_import

#ifndef LAV_PROC_STACK
#define LAV_PROC_STACK 4096
#endif
#define LAV_STR_(x) #x
#define LAV_STR(x) LAV_STR_(x)
#define LAV_EXPORT(fn, nargs)                                                               \
    char fn##__lav_stack[LAV_PROC_STACK] __attribute__((aligned(16)));                      \
    volatile int fn##__lav_busy;                                                            \
    struct lav_address fn##__lav_address;                                                   \
    __asm__(".pushsection .text\n.intel_syntax noprefix\n"                                  \
            ".globl " #fn "__lav_entry\n.type " #fn "__lav_entry, @function\n"              \
            ".globl " #fn "__lav_sel\n.globl " #fn "__lav_nargs\n"                          \
            ".set " #fn "__lav_nargs, " #nargs "\n"                                         \
            #fn "__lav_entry:\n"                                                            \
            "    push ebp\n    mov ebp, esp\n    push ds\n    push es\n    push fs\n"       \
            "    push ebx\n    mov ebx, ss\n    mov fs, ebx\n"                              \
            ".L" #fn "__lav_lock:\n"                                                        \
            "    movzx ebx, word ptr cs:[" #fn "__lav_sel]\n"                               \
            "    mov ds, ebx\n    mov es, ebx\n    mov eax, 1\n"                            \
            "    xchg eax, dword ptr [" #fn "__lav_busy]\n    test eax, eax\n"              \
            "    jz .L" #fn "__lav_got\n"                                                   \
            "    mov eax, 1\n    int 0x30\n    jmp .L" #fn "__lav_lock\n"                   \
            ".L" #fn "__lav_got:\n"                                                         \
            "    mov ecx, esp\n    mov edx, ss\n    mov ss, ebx\n"                          \
            "    mov esp, offset " #fn "__lav_stack + " LAV_STR(LAV_PROC_STACK) "\n"         \
            "    push edx\n    push ecx\n"                                                  \
            ".if " #nargs "\n    mov ecx, " #nargs "\n"                                     \
            ".L" #fn "__lav_copy:\n    push dword ptr fs:[ebp+8+ecx*4]\n"                   \
            "    dec ecx\n    jnz .L" #fn "__lav_copy\n.endif\n"                            \
            "    call " #fn "\n"                                                            \
            "    add esp, 4*" #nargs "\n"                                                   \
            "    pop ecx\n    pop ebx\n    mov ss, ebx\n    mov esp, ecx\n"                 \
            "    mov dword ptr [" #fn "__lav_busy], 0\n"                                    \
            "    pop ebx\n    pop fs\n    pop es\n    pop ds\n    pop ebp\n"                \
            "    retf 4*" #nargs "\n"                                                       \
            "    .p2align 1\n" #fn "__lav_sel:\n    .word 0\n"                              \
            ".size " #fn "__lav_entry, .-" #fn "__lav_entry\n"                              \
            ".att_syntax prefix\n.popsection\n")

#endif
