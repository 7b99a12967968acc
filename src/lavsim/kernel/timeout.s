# Lavender kernel: timed IPC waits and the death of servers (issue 19).
#
# Timed calls. sys_call_timed, sys_receive_timed, sys_reply_wait_timed, sys_l4_call_timed and
# sys_l4_reply_wait_timed take the arguments of their untimed twins plus a timeout in EBP (in
# cycles; 0: no timeout, exactly the untimed call). The deadline is the TSC (RDTSC) at entry
# plus the timeout; the thread goes on the deadline list (k_timed_head, TCB_TIMED_NEXT links,
# unsorted) and the untimed handler runs unchanged. Whatever ends the wait, the thread takes
# itself off the list before it returns (timed_end). While the list is not empty the timer
# vector's entry of vector_table names timer_timed, which wakes every listed thread still
# blocked in its wait whose deadline has passed (timed_expire: out of every queue, woken with
# E_TIMEOUT) and then runs timer_handler; when the list empties the entry names timer_handler
# again. So a timeout fires at the first timer tick whose handler reads a TSC at or after the
# deadline, and a kernel without timed waits runs exactly the instructions it ran before.
#
# Death. thread_exit ends in thread_reap: the L4 threads waiting for the dead thread's reply
# are woken with E_DEAD, and those waiting to send to it retry and find it dead (E_INVAL, as
# l4_dest says for a dead thread). When the dead thread was its process's last, the process
# can serve no more: every port it owns is closed (queued callers woken with E_DEAD, the name
# of a named port unregistered) and every caller whose call it received is woken with E_DEAD.
# The name server's port 0 is one of them: its callers get E_DEAD, later ones E_BADPORT.
#
# This file lies after data.s, so every older path and kernel variable keeps its address.

# --- the deadline list ----------------------------------------------------------------------------

# timed_begin: put the current thread on the deadline list, due at now + [ebp+FR_EBP] (a
# timeout of 0: nothing to do). Returns EAX = 0, or E_INVAL when the system has no timer (no
# tick could ever end the wait). Keeps EBX ECX EDX ESI EDI.
timed_begin:
    xor eax, eax
    cmp dword ptr [ebp+FR_EBP], eax
    je .Lto_tb_done
    cmp dword ptr [k_timer_period], eax
    je .Lto_tb_inval
    push ecx
    push edx
    mov ecx, dword ptr [k_current]
    rdtsc
    add eax, dword ptr [ebp+FR_EBP]
    adc edx, 0
    mov dword ptr [ecx+TCB_DEADLINE_LO], eax
    mov dword ptr [ecx+TCB_DEADLINE_HI], edx
    mov dword ptr [ecx+TCB_TIMED_STATE], TIMED_WAITING
    mov eax, dword ptr [k_timed_head]
    mov dword ptr [ecx+TCB_TIMED_NEXT], eax
    mov dword ptr [k_timed_head], ecx
    test eax, eax
    jnz .Lto_tb_listed
    # The first timed wait: from now on every tick checks the deadlines.
    lea eax, [timer_timed]
    mov dword ptr [vector_table+TIMER_VECTOR*4], eax
.Lto_tb_listed:
    pop edx
    pop ecx
    xor eax, eax
.Lto_tb_done:
    ret
.Lto_tb_inval:
    mov eax, E_INVAL
    ret

# timed_unlink: take the TCB in EAX off the deadline list (it is on it); an empty list gives
# the timer vector back to timer_handler. Changes ECX EDX.
timed_unlink:
    lea ecx, [k_timed_head-TCB_TIMED_NEXT]
.Lto_tu_find:
    mov edx, dword ptr [ecx+TCB_TIMED_NEXT]
    test edx, edx
    jz .Lto_tu_done
    cmp edx, eax
    je .Lto_tu_found
    mov ecx, edx
    jmp .Lto_tu_find
.Lto_tu_found:
    mov edx, dword ptr [eax+TCB_TIMED_NEXT]
    mov dword ptr [ecx+TCB_TIMED_NEXT], edx
    mov dword ptr [eax+TCB_TIMED_NEXT], 0
.Lto_tu_done:
    cmp dword ptr [k_timed_head], 0
    jne .Lto_tu_ret
    lea ecx, [timer_handler]
    mov dword ptr [vector_table+TIMER_VECTOR*4], ecx
.Lto_tu_ret:
    ret

# timed_end: the current thread's timed system call returns EAX. Takes the thread off the
# deadline list if it is still on it. Returns EAX (E_TIMEOUT when the tick expired the wait)
# and ECX = 1 when it did, else 0. Changes EDX.
timed_end:
    mov ecx, dword ptr [k_current]
    mov edx, dword ptr [ecx+TCB_TIMED_STATE]
    mov dword ptr [ecx+TCB_TIMED_STATE], TIMED_NONE
    cmp edx, TIMED_WAITING
    jne .Lto_te_off
    push eax
    mov eax, ecx
    call timed_unlink
    pop eax
    xor ecx, ecx
    ret
.Lto_te_off:
    xor ecx, ecx
    cmp edx, TIMED_EXPIRED
    jne .Lto_te_done
    mov eax, E_TIMEOUT
    inc ecx
.Lto_te_done:
    ret

# --- the timed system calls (arguments as the untimed ones, the timeout in EBP) ----------------

# call_timed: call (ipc.s) with a timeout. E_TIMEOUT: the call was withdrawn from its port's
# queue (not received yet), or the server that received it may no longer reply; a call
# already handed to a receiver that has not run yet stays with it as a plain send (token 0).
sys_call_timed:
    call timed_begin
    test eax, eax
    jnz .Lto_ct_done
    call sys_call
    call timed_end
.Lto_ct_done:
    ret

# receive_timed: receive (ipc.s) with a timeout; E_TIMEOUT: no message came in time.
sys_receive_timed:
    call timed_begin
    test eax, eax
    jnz .Lto_rt_done
    call sys_receive
    call timed_end
.Lto_rt_done:
    ret

# reply_wait_timed: reply_wait (ipc.s); the timeout bounds its receive.
sys_reply_wait_timed:
    call timed_begin
    test eax, eax
    jnz .Lto_rwt_done
    call sys_reply_wait
    call timed_end
.Lto_rwt_done:
    ret

# l4_call_timed: l4_call (l4ipc.s) with a timeout on both of its waits (to send, and for the
# reply); E_TIMEOUT with EBX as given.
sys_l4_call_timed:
    call timed_begin
    test eax, eax
    jnz .Lto_lct_done
    # An expired wait to send retries with destination 0 (E_INVAL): EBX is given back.
    push dword ptr [ebp+FR_EBX]
    call sys_l4_call
    call timed_end
    pop edx
    test ecx, ecx
    jz .Lto_lct_done
    mov dword ptr [ebp+FR_EBX], edx
.Lto_lct_done:
    ret

# l4_reply_wait_timed: l4_reply_wait (l4ipc.s); the timeout bounds its wait for a message.
sys_l4_reply_wait_timed:
    call timed_begin
    test eax, eax
    jnz .Lto_lrt_done
    call sys_l4_reply_wait
    call timed_end
.Lto_lrt_done:
    ret

# --- the tick with timed waits -------------------------------------------------------------

# timer_timed: the timer vector's handler while the deadline list is not empty: expire the
# due waits, then the usual tick (timer_handler).
timer_timed:
    rdtsc
    mov esi, eax
    mov edi, edx
    mov ebx, dword ptr [k_timed_head]
.Lto_tt_next:
    test ebx, ebx
    jz .Lto_tt_done
    push dword ptr [ebx+TCB_TIMED_NEXT]
    # Due when now - deadline does not borrow; only a thread still blocked is woken (one
    # woken by its reply in the meantime takes itself off the list when it runs).
    mov eax, esi
    mov edx, edi
    sub eax, dword ptr [ebx+TCB_DEADLINE_LO]
    sbb edx, dword ptr [ebx+TCB_DEADLINE_HI]
    jb .Lto_tt_skip
    cmp dword ptr [ebx+TCB_STATE], THREAD_BLOCKED
    jne .Lto_tt_skip
    mov eax, ebx
    call timed_expire
.Lto_tt_skip:
    pop ebx
    jmp .Lto_tt_next
.Lto_tt_done:
    jmp timer_handler

# timed_expire: wake the blocked thread EAX with E_TIMEOUT, out of the queue it waits in:
# a port's receivers, a port's messages (its call), a partner's L4 send queue. A thread
# blocked in anything else is left waiting. Keeps ESI EDI; changes EAX EBX ECX EDX.
timed_expire:
    mov ebx, eax
    mov eax, dword ptr [ebx+TCB_IPC_STATE]
    cmp eax, IPC_WAIT_RECEIVE
    je .Lto_x_receive
    cmp eax, IPC_WAIT_REPLY
    je .Lto_x_call
    mov eax, dword ptr [ebx+TCB_L4_STATE]
    cmp eax, L4_WAIT_SEND
    je .Lto_x_l4_send
    cmp eax, L4_WAIT_REPLY
    je .Lto_x_l4
    cmp eax, L4_WAIT_ANY
    je .Lto_x_l4
    ret
.Lto_x_receive:
    call ipc_unwait
    jmp .Lto_x_ipc
.Lto_x_call:
    cmp dword ptr [ebx+TCB_IPC_SERVER], 0
    jne .Lto_x_ipc
    call ipc_withdraw
.Lto_x_ipc:
    mov ecx, E_TIMEOUT
    mov eax, ebx
    call ipc_wake_status
    jmp .Lto_x_woken
.Lto_x_l4_send:
    call l4_unsend
    # Its retry of l4_call must fail: destination 0 (timed_end gives EBX back).
    mov dword ptr [ebx+TCB_SIZE-FRAME_SIZE+FR_EBX], 0
.Lto_x_l4:
    mov dword ptr [ebx+TCB_L4_RESULT], E_TIMEOUT
    mov dword ptr [ebx+TCB_L4_STATE], L4_NONE
    mov dword ptr [ebx+TCB_L4_PARTNER], 0
    mov eax, ebx
    call ready_enqueue
.Lto_x_woken:
    mov dword ptr [ebx+TCB_TIMED_STATE], TIMED_EXPIRED
    mov eax, ebx
    jmp timed_unlink

# --- taking a waiting thread out of its queue -----------------------------------------------

# ipc_wake_status: wake the thread EAX waiting in message IPC with the error ECX (no message;
# it may no longer be replied to). Changes EDX.
ipc_wake_status:
    mov dword ptr [eax+TCB_IPC_MSG], 0
    mov dword ptr [eax+TCB_IPC_STATUS], ecx
    mov dword ptr [eax+TCB_IPC_STATE], IPC_NONE
    mov dword ptr [eax+TCB_IPC_SERVER], 0
    jmp ready_enqueue

# ipc_unwait: take the thread EBX out of the receiver queue of the port it waits at. Keeps
# EBX ESI EDI; changes EAX ECX EDX.
ipc_unwait:
    mov eax, IPC_PORTS_LINEAR
.Lto_uw_port:
    # ECX walks the queue as a node whose TCB_IPC_NEXT is the next waiter; the head
    # PORT_WHEAD is the TCB_IPC_NEXT of a node before the first.
    lea ecx, [eax+PORT_WHEAD-TCB_IPC_NEXT]
    xor edx, edx
.Lto_uw_walk:
    cmp dword ptr [ecx+TCB_IPC_NEXT], ebx
    je .Lto_uw_found
    mov edx, dword ptr [ecx+TCB_IPC_NEXT]
    mov ecx, edx
    test ecx, ecx
    jnz .Lto_uw_walk
    add eax, PORT_SIZE
    cmp eax, IPC_PORTS_END
    jb .Lto_uw_port
    ret
.Lto_uw_found:
    # Unlink; the tail moves back to the previous waiter (EDX, 0 when it was the head).
    push edx
    mov edx, dword ptr [ebx+TCB_IPC_NEXT]
    mov dword ptr [ecx+TCB_IPC_NEXT], edx
    mov dword ptr [ebx+TCB_IPC_NEXT], 0
    pop edx
    cmp dword ptr [eax+PORT_WTAIL], ebx
    jne .Lto_uw_done
    mov dword ptr [eax+PORT_WTAIL], edx
.Lto_uw_done:
    ret

# ipc_withdraw: the thread EBX waits for the reply to a call not received yet: take its
# message out of the port queue holding it and free it; a message already handed to a
# receiver (in its TCB_IPC_MSG, not yet taken) loses its caller and is received as a send.
# Keeps EBX ESI EDI; changes EAX ECX EDX.
ipc_withdraw:
    mov eax, IPC_PORTS_LINEAR
.Lto_wd_port:
    cmp dword ptr [eax+PORT_STATE], PORT_OPEN
    jne .Lto_wd_next_port
    # ECX: the previous message (0: none, the head is PORT_HEAD), EDX: the message.
    xor ecx, ecx
    mov edx, dword ptr [eax+PORT_HEAD]
.Lto_wd_walk:
    test edx, edx
    jz .Lto_wd_next_port
    cmp dword ptr [edx+MSG_CALLER], ebx
    je .Lto_wd_found
    mov ecx, edx
    mov edx, dword ptr [edx+MSG_NEXT]
    jmp .Lto_wd_walk
.Lto_wd_next_port:
    add eax, PORT_SIZE
    cmp eax, IPC_PORTS_END
    jb .Lto_wd_port
    jmp .Lto_wd_handed
.Lto_wd_found:
    push esi
    mov esi, dword ptr [edx+MSG_NEXT]
    test ecx, ecx
    jz .Lto_wd_head
    mov dword ptr [ecx+MSG_NEXT], esi
    jmp .Lto_wd_linked
.Lto_wd_head:
    mov dword ptr [eax+PORT_HEAD], esi
.Lto_wd_linked:
    cmp dword ptr [eax+PORT_TAIL], edx
    jne .Lto_wd_counted
    mov dword ptr [eax+PORT_TAIL], ecx
.Lto_wd_counted:
    pop esi
    dec dword ptr [eax+PORT_QUEUED]
    mov eax, edx
    call ipc_msg_free
.Lto_wd_handed:
    # No header names it as its caller any more (free headers included: harmless).
    mov eax, IPC_MSGS_LINEAR
.Lto_wd_header:
    cmp dword ptr [eax+MSG_CALLER], ebx
    jne .Lto_wd_header_next
    mov dword ptr [eax+MSG_CALLER], 0
.Lto_wd_header_next:
    add eax, MSG_SIZE
    cmp eax, IPC_MSGS_LINEAR+IPC_MAX_MESSAGES*MSG_SIZE
    jb .Lto_wd_header
    ret

# l4_unsend: take the thread EBX out of its L4 partner's send queue. Keeps EBX ESI EDI;
# changes EAX ECX EDX.
l4_unsend:
    mov eax, dword ptr [ebx+TCB_L4_PARTNER]
    lea eax, [eax+TCB_L4_SENDQ-TCB_L4_NEXT]
.Lto_us_walk:
    mov ecx, dword ptr [eax+TCB_L4_NEXT]
    test ecx, ecx
    jz .Lto_us_done
    cmp ecx, ebx
    je .Lto_us_found
    mov eax, ecx
    jmp .Lto_us_walk
.Lto_us_found:
    mov ecx, dword ptr [ebx+TCB_L4_NEXT]
    mov dword ptr [eax+TCB_L4_NEXT], ecx
    mov dword ptr [ebx+TCB_L4_NEXT], 0
.Lto_us_done:
    ret

# --- death ----------------------------------------------------------------------------------------

# thread_reap: the end of thread_exit (sched.s): the thread EAX is dead and its process's
# counts are updated. Wakes what waited for it (see the head of this file), then schedules.
thread_reap:
    mov ebx, eax
    # L4: threads waiting to send to it retry and find it dead.
.Lto_rp_sender:
    mov eax, dword ptr [ebx+TCB_L4_SENDQ]
    test eax, eax
    jz .Lto_rp_senders_done
    mov ecx, dword ptr [eax+TCB_L4_NEXT]
    mov dword ptr [ebx+TCB_L4_SENDQ], ecx
    mov dword ptr [eax+TCB_L4_NEXT], 0
    mov dword ptr [eax+TCB_L4_STATE], L4_NONE
    mov dword ptr [eax+TCB_L4_PARTNER], 0
    call ready_enqueue
    jmp .Lto_rp_sender
.Lto_rp_senders_done:
    mov dword ptr [ebx+TCB_L4_STATE], L4_NONE
    mov dword ptr [ebx+TCB_L4_PARTNER], 0
    # The process is dead when this was its last thread.
    mov esi, dword ptr [ebx+TCB_PROCESS]
    cmp dword ptr [esi+PCB_THREADS], 0
    jne .Lto_rp_threads
    push ebx
    call process_ports_close
    pop ebx
.Lto_rp_threads:
    # Every blocked thread waiting for it: an L4 reply from this thread, or (the process
    # dead) a reply from this process to a call it received.
    mov eax, TCB_LINEAR+TCB_SIZE
    mov edi, dword ptr [k_next_tid]
    shl edi, 12
    add edi, TCB_LINEAR
.Lto_rp_scan:
    cmp eax, edi
    jae .Lto_rp_done
    cmp dword ptr [eax+TCB_STATE], THREAD_BLOCKED
    jne .Lto_rp_scan_next
    cmp dword ptr [eax+TCB_L4_STATE], L4_WAIT_REPLY
    jne .Lto_rp_ipc
    cmp dword ptr [eax+TCB_L4_PARTNER], ebx
    jne .Lto_rp_scan_next
    mov dword ptr [eax+TCB_L4_RESULT], E_DEAD
    mov dword ptr [eax+TCB_L4_STATE], L4_NONE
    mov dword ptr [eax+TCB_L4_PARTNER], 0
    push eax
    call ready_enqueue
    pop eax
    jmp .Lto_rp_scan_next
.Lto_rp_ipc:
    cmp dword ptr [esi+PCB_THREADS], 0
    jne .Lto_rp_scan_next
    cmp dword ptr [eax+TCB_IPC_STATE], IPC_WAIT_REPLY
    jne .Lto_rp_scan_next
    cmp dword ptr [eax+TCB_IPC_SERVER], esi
    jne .Lto_rp_scan_next
    push eax
    mov ecx, E_DEAD
    call ipc_wake_status
    pop eax
.Lto_rp_scan_next:
    add eax, TCB_SIZE
    jmp .Lto_rp_scan
.Lto_rp_done:
    jmp schedule

# process_ports_close: the process ESI has no thread left: close every port it owns. Queued
# messages are dropped (their callers woken with E_DEAD), threads waiting there in receive
# are woken with E_DEAD, and a named port's name is unregistered when a message header is
# free for the request (else the name server keeps a stale name; lookups then name a closed
# port). Keeps ESI; changes EAX EBX ECX EDX EDI.
process_ports_close:
    mov ebx, IPC_PORTS_LINEAR
.Lto_cl_port:
    cmp dword ptr [ebx+PORT_STATE], PORT_OPEN
    jne .Lto_cl_next
    cmp dword ptr [ebx+PORT_OWNER], esi
    jne .Lto_cl_next
    mov dword ptr [ebx+PORT_STATE], PORT_FREE
.Lto_cl_message:
    mov eax, dword ptr [ebx+PORT_HEAD]
    test eax, eax
    jz .Lto_cl_waiter
    mov edx, dword ptr [eax+MSG_NEXT]
    mov dword ptr [ebx+PORT_HEAD], edx
    mov edi, dword ptr [eax+MSG_CALLER]
    call ipc_msg_free
    test edi, edi
    jz .Lto_cl_message
    mov eax, edi
    mov ecx, E_DEAD
    call ipc_wake_status
    jmp .Lto_cl_message
.Lto_cl_waiter:
    mov eax, dword ptr [ebx+PORT_WHEAD]
    test eax, eax
    jz .Lto_cl_cleared
    mov edx, dword ptr [eax+TCB_IPC_NEXT]
    mov dword ptr [ebx+PORT_WHEAD], edx
    mov dword ptr [eax+TCB_IPC_NEXT], 0
    mov ecx, E_DEAD
    call ipc_wake_status
    jmp .Lto_cl_waiter
.Lto_cl_cleared:
    xor eax, eax
    mov dword ptr [ebx+PORT_TAIL], eax
    mov dword ptr [ebx+PORT_WTAIL], eax
    mov dword ptr [ebx+PORT_QUEUED], eax
    mov dword ptr [ebx+PORT_OWNER], eax
    cmp dword ptr [ebx+PORT_NAMED], eax
    mov dword ptr [ebx+PORT_NAMED], eax
    je .Lto_cl_next
    # Tell the name server (when it is still open) to forget the name.
    call ipc_msg_alloc
    test eax, eax
    jz .Lto_cl_next
    mov edx, dword ptr [eax+MSG_BUF]
    mov dword ptr [edx+NS_REQ_OP], NS_OP_PORT_UNREGISTER
    mov dword ptr [edx+NS_REQ_NAME_LEN], 0
    mov ecx, ebx
    sub ecx, IPC_PORTS_LINEAR
    shr ecx, PORT_SHIFT
    mov dword ptr [edx+NS_REQ_VALUE], ecx
    mov dword ptr [eax+MSG_LEN], NS_REQ_SIZE
    push ebx
    call ipc_post_kernel
    pop ebx
.Lto_cl_next:
    add ebx, PORT_SIZE
    cmp ebx, IPC_PORTS_END
    jb .Lto_cl_port
    ret

# The deadline list (TCBs in timed waits, TCB_TIMED_NEXT links).
    .balign 4, 0
k_timed_head:       .long 0
k_image_end:
