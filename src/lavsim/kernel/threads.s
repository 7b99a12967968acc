# Lavender kernel: thread control blocks for new threads (issue 19).
#
# TCBs are handed out in order (k_next_tid) while never-used ones remain, so dead threads stay
# inspectable until then; after that a dead thread's TCB is reused, id and all. TCB_GENERATION
# counts the reuses of a TCB: the host's handle of the dead thread (lavsim.kernel.system.Thread)
# carries the generation it was made with and is refused once they differ, so an old id never
# reads or names the new thread. Inside the kernel an id is only a reply token, which reaches
# a thread only while that thread waits for a reply to a call the replier's process received
# (ipc_reply_target; call clears TCB_IPC_SERVER), so a token kept from a dead thread's call
# cannot reach the thread that took its TCB over. This file comes after ipc.s so that the code
# on the measured IPC paths keeps its addresses (and its pages).

# tcb_alloc: a TCB for a new thread. Returns EAX = its id, or E_NOMEM when every TCB but the
# boot pseudo-thread's (TCB 0, never reused) belongs to a live thread. The caller is running,
# so no dead TCB is any thread's stack. Changes EDI.
tcb_alloc:
    mov eax, dword ptr [k_next_tid]
    cmp eax, MAX_THREADS
    jae .Lta_reuse
    inc dword ptr [k_next_tid]
    ret
.Lta_reuse:
    mov eax, 1
.Lta_scan:
    mov edi, eax
    shl edi, 12
    add edi, TCB_LINEAR
    cmp dword ptr [edi+TCB_STATE], THREAD_DEAD
    je .Lta_found
    inc eax
    cmp eax, MAX_THREADS
    jb .Lta_scan
    mov eax, E_NOMEM
    ret
.Lta_found:
    # The next generation; nothing of the dead thread's IPC or fault owner stays (the rest
    # of the TCB is written by sys_create_thread).
    inc dword ptr [edi+TCB_GENERATION]
    mov dword ptr [edi+TCB_FAULT_PID], 0
    mov dword ptr [edi+TCB_IPC_STATE], IPC_NONE
    mov dword ptr [edi+TCB_IPC_NEXT], 0
    mov dword ptr [edi+TCB_IPC_MSG], 0
    mov dword ptr [edi+TCB_IPC_STATUS], 0
    mov dword ptr [edi+TCB_IPC_SERVER], 0
    mov dword ptr [edi+TCB_L4_STATE], L4_NONE
    mov dword ptr [edi+TCB_L4_PARTNER], 0
    mov dword ptr [edi+TCB_L4_SENDQ], 0
    mov dword ptr [edi+TCB_L4_NEXT], 0
    mov dword ptr [edi+TCB_L4_RCAP], 0
    mov dword ptr [edi+TCB_L4_RDIR], 0
    mov dword ptr [edi+TCB_LRPC_BINDING], 0
    mov dword ptr [edi+TCB_LRPC_HOME], 0
    ret
