# Lavender kernel: ports and message IPC (issue 5), the message-RPC baselines.
#
# A port is an entry of the port table (IPC_PORTS_LINEAR, PORT_* fields) owned by one process:
# a queue of messages not yet received and a queue of threads waiting in receive. A message is
# a header (MSG_* fields, from a free list at IPC_MSG_FREE_LINEAR) and a kernel buffer of
# IPC_MAX_MESSAGE bytes. Every message is copied twice: from the sender's segment into the
# kernel buffer (ipc_copy_in, in the sender's context) and from the kernel buffer into the
# receiver's segment (ipc_copy_out, in the receiver's context, once it runs again), each with
# REP MOVSD (and REP MOVSB for the last 0..3 bytes).
#
# Two ways to hand the processor over:
# - call / reply_wait (the baseline of the Lavender paper): the woken thread is queued on the
#   ready queue and the blocked one calls schedule, so the receiver waits to be scheduled;
# - call_handoff / reply_wait_handoff (the L4-style baseline): when the other side is already
#   waiting, the blocked thread switches straight to it (switch_to), bypassing the ready queue.
#
# Handlers are called from syscall_entry with EBP = the trap frame (the caller's registers
# are also at FR_*). The caller's identity is its thread's home process (TCB_PROCESS).
# Buffers are named by (selector, offset, length) and checked with the caller's privilege
# (ARPL, VERR/VERW, LAR, LSL) before anything changes, as console_write does.

# --- argument checks ---------------------------------------------------------------------------

# ipc_port_entry: the open port numbered EBX. Returns EBX = its entry and EAX = 0, or
# EAX = E_BADPORT. Keeps ECX EDX ESI EDI.
ipc_port_entry:
    cmp ebx, IPC_MAX_PORTS
    jae .Lpe_bad
    shl ebx, PORT_SHIFT
    add ebx, IPC_PORTS_LINEAR
    cmp dword ptr [ebx+PORT_STATE], PORT_OPEN
    jne .Lpe_bad
    xor eax, eax
    ret
.Lpe_bad:
    mov eax, E_BADPORT
    ret

# ipc_port_owned: as ipc_port_entry, and the port must belong to the caller's process.
ipc_port_owned:
    call ipc_port_entry
    test eax, eax
    jnz .Lpo_done
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_PROCESS]
    cmp eax, dword ptr [ebx+PORT_OWNER]
    mov eax, 0
    je .Lpo_done
    mov eax, E_BADPORT
.Lpo_done:
    ret

# ipc_check_buffer: may the caller read (ESI = 0) or write (ESI = 1) EDX bytes at offset ECX
# through the selector in EAX (0: the caller's DS)? Returns EAX = the selector, its RPL raised
# to the caller's, or EAX = E_FAULT. Keeps EBX ECX EDX EDI; changes ESI.
ipc_check_buffer:
    test eax, eax
    jnz .Lcb_selector
    mov eax, dword ptr [ebp+FR_DS]
.Lcb_selector:
    push ecx
    # The selector is used with the caller's privilege.
    mov ecx, dword ptr [ebp+FR_CS]
    arpl ax, cx
    and eax, 0xFFFF
    # Readable to send from, writable to receive into, at that privilege ...
    test esi, esi
    jnz .Lcb_write
    verr ax
    jnz .Lcb_fault
    jmp .Lcb_type
.Lcb_write:
    verw ax
    jnz .Lcb_fault
.Lcb_type:
    # ... not expand-down (its valid offsets lie above the limit) ...
    lar ecx, eax
    jnz .Lcb_fault
    and ecx, 0x0C00
    cmp ecx, 0x0400
    je .Lcb_fault
    # ... and holding every byte: offset + length - 1 <= limit, without wrapping.
    test edx, edx
    jz .Lcb_ok
    lsl esi, eax
    jnz .Lcb_fault
    mov ecx, dword ptr [esp]
    add ecx, edx
    jc .Lcb_fault
    dec ecx
    cmp ecx, esi
    ja .Lcb_fault
.Lcb_ok:
    pop ecx
    ret
.Lcb_fault:
    pop ecx
    mov eax, E_FAULT
    ret

# ipc_reply_target: the thread whose call the caller's process received, named by its reply
# token (thread id) in EBX. Returns EBX = its TCB and EAX = 0, or EAX = E_INVAL when no such
# thread waits for a reply from this process. Keeps ECX EDX ESI EDI.
ipc_reply_target:
    test ebx, ebx
    jz .Lrt_bad
    cmp ebx, MAX_THREADS
    jae .Lrt_bad
    shl ebx, 12
    add ebx, TCB_LINEAR
    cmp dword ptr [ebx+TCB_STATE], THREAD_BLOCKED
    jne .Lrt_bad
    cmp dword ptr [ebx+TCB_IPC_STATE], IPC_WAIT_REPLY
    jne .Lrt_bad
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_PROCESS]
    cmp eax, dword ptr [ebx+TCB_IPC_SERVER]
    jne .Lrt_bad
    xor eax, eax
    ret
.Lrt_bad:
    mov eax, E_INVAL
    ret

# --- messages ----------------------------------------------------------------------------------

# ipc_msg_alloc: EAX = a free message header, or 0 when none is left. Keeps the others.
ipc_msg_alloc:
    mov eax, dword ptr [IPC_MSG_FREE_LINEAR]
    test eax, eax
    jz .Lma_done
    push edx
    mov edx, dword ptr [eax+MSG_NEXT]
    mov dword ptr [IPC_MSG_FREE_LINEAR], edx
    pop edx
.Lma_done:
    ret

# ipc_msg_free: give the message header in EAX back. Changes EDX.
ipc_msg_free:
    mov edx, dword ptr [IPC_MSG_FREE_LINEAR]
    mov dword ptr [eax+MSG_NEXT], edx
    mov dword ptr [IPC_MSG_FREE_LINEAR], eax
    ret

# ipc_message_in: a new message from the caller: EDX bytes at offset ECX through the selector
# in EAX (0: DS). Checks the length and the buffer, takes a header, copies the bytes into its
# kernel buffer and records the sender. Returns EAX = the header (MSG_CALLER 0), or E_MSGSIZE,
# E_FAULT, E_AGAIN (no free kernel buffer), with nothing changed. Headers are kernel addresses,
# negative as signed numbers: an error is told apart as EAX >= IPC_ERROR_MIN (unsigned).
# Keeps EBX EBP.
ipc_message_in:
    cmp edx, IPC_MAX_MESSAGE
    ja .Lmi_msgsize
    xor esi, esi
    call ipc_check_buffer
    test eax, eax
    js .Lmi_done
    mov esi, eax
    call ipc_msg_alloc
    test eax, eax
    jz .Lmi_again
    # The header: length, no caller, the sender's pid and group.
    mov dword ptr [eax+MSG_LEN], edx
    mov dword ptr [eax+MSG_CALLER], 0
    mov edi, dword ptr [k_current]
    mov edi, dword ptr [edi+TCB_PROCESS]
    push dword ptr [edi+PCB_GROUP]
    pop dword ptr [eax+MSG_GROUP]
    push dword ptr [edi+PCB_PID]
    pop dword ptr [eax+MSG_PID]
    # Copy the message into the kernel buffer.
    push eax
    mov edi, dword ptr [eax+MSG_BUF]
    mov eax, esi
    mov esi, ecx
    mov ecx, edx
    call ipc_copy_in
    pop eax
.Lmi_done:
    ret
.Lmi_msgsize:
    mov eax, E_MSGSIZE
    ret
.Lmi_again:
    mov eax, E_AGAIN
    ret

# ipc_copy_in: copy ECX bytes from offset ESI of the caller's segment (selector in AX, already
# checked) into the kernel buffer at EDI. The first instruction keeps ECX (the observer reads
# the byte count there). Changes EAX ECX EDX ESI EDI.
ipc_copy_in:
    mov ds, ax
    cld
    mov edx, ecx
    shr ecx, 2
    rep movsd
    mov ecx, edx
    and ecx, 3
    rep movsb
    mov ax, KERNEL_DS
    mov ds, ax
    ret

# ipc_copy_out: copy ECX bytes from the kernel buffer at ESI to offset EDI of the caller's
# segment (selector in AX, already checked). The first instruction keeps ECX. Changes EAX ECX
# EDX ESI EDI.
ipc_copy_out:
    mov es, ax
    cld
    mov edx, ecx
    shr ecx, 2
    rep movsd
    mov ecx, edx
    and ecx, 3
    rep movsb
    mov ax, KERNEL_DS
    mov es, ax
    ret

# ipc_copy_name: copy ECX bytes of a port name from offset ESI of the caller's segment
# (selector in AX, checked) to the kernel buffer at EDI (a registration, not a message copy).
ipc_copy_name:
    mov ds, ax
    cld
    rep movsb
    mov ax, KERNEL_DS
    mov ds, ax
    ret

# ipc_take_message: copy the message ESI (at most ECX bytes) to offset EDI of the caller's
# segment (selector EAX, checked writable for ECX bytes), then free it. Returns EAX = the
# message's full length.
ipc_take_message:
    mov edx, dword ptr [esi+MSG_LEN]
    cmp ecx, edx
    jbe .Ltm_count
    mov ecx, edx
.Ltm_count:
    push edx
    push esi
    mov esi, dword ptr [esi+MSG_BUF]
    call ipc_copy_out
    pop eax
    call ipc_msg_free
    pop eax
    ret

# ipc_deliver: hand the message EAX to the port entry EBX: to the first thread waiting there
# in receive (its TCB_IPC_MSG set, no longer waiting, returned in EAX; the caller decides how
# it runs), or onto the port's queue (EAX = 0). Changes EDX.
ipc_deliver:
    mov edx, dword ptr [ebx+PORT_WHEAD]
    test edx, edx
    jz .Ldl_queue
    # Unlink the waiter and give it the message.
    push ecx
    mov ecx, dword ptr [edx+TCB_IPC_NEXT]
    mov dword ptr [ebx+PORT_WHEAD], ecx
    test ecx, ecx
    jnz .Ldl_unlinked
    mov dword ptr [ebx+PORT_WTAIL], ecx
.Ldl_unlinked:
    pop ecx
    mov dword ptr [edx+TCB_IPC_MSG], eax
    mov dword ptr [edx+TCB_IPC_STATE], IPC_NONE
    mov eax, edx
    ret
.Ldl_queue:
    # Nobody waits: append the message to the port's queue.
    mov dword ptr [eax+MSG_NEXT], 0
    mov edx, dword ptr [ebx+PORT_TAIL]
    test edx, edx
    jz .Ldl_empty
    mov dword ptr [edx+MSG_NEXT], eax
    jmp .Ldl_tail
.Ldl_empty:
    mov dword ptr [ebx+PORT_HEAD], eax
.Ldl_tail:
    mov dword ptr [ebx+PORT_TAIL], eax
    inc dword ptr [ebx+PORT_QUEUED]
    xor eax, eax
    ret

# ipc_wake_error: wake the waiting thread EAX with E_BADPORT (its port was destroyed).
ipc_wake_error:
    mov dword ptr [eax+TCB_IPC_MSG], 0
    mov dword ptr [eax+TCB_IPC_STATUS], E_BADPORT
    mov dword ptr [eax+TCB_IPC_STATE], IPC_NONE
    jmp ready_enqueue

# ipc_post_kernel: send the kernel's message EAX (a name-server request, MSG_LEN set) to the
# name server's port, if it is open (else the message is dropped). Changes EAX EBX EDX.
ipc_post_kernel:
    mov dword ptr [eax+MSG_CALLER], 0
    mov dword ptr [eax+MSG_PID], 0
    mov dword ptr [eax+MSG_GROUP], 0
    mov ebx, IPC_PORTS_LINEAR+NS_PORT*PORT_SIZE
    cmp dword ptr [ebx+PORT_STATE], PORT_OPEN
    jne .Lpk_drop
    call ipc_deliver
    test eax, eax
    jz .Lpk_done
    call ready_enqueue
.Lpk_done:
    ret
.Lpk_drop:
    jmp ipc_msg_free

# --- ports ---------------------------------------------------------------------------------------

# port_create(EBX = name offset, ECX = name length, 0 for none, EDX = selector, 0 for DS): a
# new port owned by the caller's process. A named port is registered with the name server on
# the IPC service's behalf: the kernel posts an NS_OP_PORT_REGISTER request to port NS_PORT
# (when it is open). Returns the port number, or E_INVAL (name longer than NS_NAME_MAX),
# E_FAULT, E_NOSPC (no free port), E_AGAIN (no kernel buffer for the registration).
sys_port_create:
    cmp ecx, NS_NAME_MAX
    ja .Lpc_inval
    # The name must be readable by the caller.
    mov eax, edx
    mov edx, ecx
    mov ecx, ebx
    xor esi, esi
    call ipc_check_buffer
    test eax, eax
    js .Lpc_done
    mov edi, eax
    # A free port (port NS_PORT is the name server's, opened at its start).
    mov ebx, IPC_PORTS_LINEAR+PORT_SIZE
.Lpc_find:
    cmp dword ptr [ebx+PORT_STATE], PORT_FREE
    je .Lpc_found
    add ebx, PORT_SIZE
    cmp ebx, IPC_PORTS_END
    jb .Lpc_find
    mov eax, E_NOSPC
    ret
.Lpc_found:
    # Take the registration's message before changing anything.
    xor esi, esi
    cmp dword ptr [ebp+FR_ECX], 0
    je .Lpc_open
    cmp dword ptr [IPC_PORTS_LINEAR+NS_PORT*PORT_SIZE+PORT_STATE], PORT_OPEN
    jne .Lpc_open
    call ipc_msg_alloc
    test eax, eax
    jz .Lpc_again
    mov esi, eax
.Lpc_open:
    # Open the port for the caller's process, with empty queues.
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_PROCESS]
    mov dword ptr [ebx+PORT_OWNER], eax
    mov dword ptr [ebx+PORT_STATE], PORT_OPEN
    xor eax, eax
    mov dword ptr [ebx+PORT_HEAD], eax
    mov dword ptr [ebx+PORT_TAIL], eax
    mov dword ptr [ebx+PORT_WHEAD], eax
    mov dword ptr [ebx+PORT_WTAIL], eax
    mov dword ptr [ebx+PORT_QUEUED], eax
    mov dword ptr [ebx+PORT_NAMED], eax
    test esi, esi
    jz .Lpc_number
    mov dword ptr [ebx+PORT_NAMED], 1
    # The registration request: operation, name, port number.
    mov edx, dword ptr [esi+MSG_BUF]
    mov dword ptr [edx+NS_REQ_OP], NS_OP_PORT_REGISTER
    mov ecx, dword ptr [ebp+FR_ECX]
    mov dword ptr [edx+NS_REQ_NAME_LEN], ecx
    mov eax, ebx
    sub eax, IPC_PORTS_LINEAR
    shr eax, PORT_SHIFT
    mov dword ptr [edx+NS_REQ_VALUE], eax
    mov dword ptr [esi+MSG_LEN], NS_REQ_SIZE
    push ebx
    push esi
    mov eax, edi
    lea edi, [edx+NS_REQ_NAME]
    mov esi, dword ptr [ebp+FR_EBX]
    call ipc_copy_name
    pop eax
    call ipc_post_kernel
    pop ebx
.Lpc_number:
    mov eax, ebx
    sub eax, IPC_PORTS_LINEAR
    shr eax, PORT_SHIFT
.Lpc_done:
    ret
.Lpc_inval:
    mov eax, E_INVAL
    ret
.Lpc_again:
    mov eax, E_AGAIN
    ret

# port_destroy(EBX = port): close a port of the caller's process. Queued messages are
# dropped (a thread waiting in call on one of them gets E_BADPORT), threads waiting in receive
# get E_BADPORT, and a named port's name is removed: the kernel posts NS_OP_PORT_UNREGISTER.
# Returns 0, or E_BADPORT (no such port, or not the caller's), E_AGAIN (no kernel buffer).
sys_port_destroy:
    mov edi, ebx
    call ipc_port_owned
    test eax, eax
    jnz .Lpd_done
    # Take the unregistration's message before changing anything.
    xor esi, esi
    cmp dword ptr [ebx+PORT_NAMED], 0
    je .Lpd_close
    call ipc_msg_alloc
    test eax, eax
    jz .Lpd_again
    mov esi, eax
.Lpd_close:
    mov dword ptr [ebx+PORT_STATE], PORT_FREE
.Lpd_messages:
    # Drop the queued messages; wake their callers with the error.
    mov eax, dword ptr [ebx+PORT_HEAD]
    test eax, eax
    jz .Lpd_waiters
    mov edx, dword ptr [eax+MSG_NEXT]
    mov dword ptr [ebx+PORT_HEAD], edx
    mov ecx, dword ptr [eax+MSG_CALLER]
    call ipc_msg_free
    test ecx, ecx
    jz .Lpd_messages
    mov eax, ecx
    call ipc_wake_error
    jmp .Lpd_messages
.Lpd_waiters:
    # Wake the threads waiting in receive with the error.
    mov eax, dword ptr [ebx+PORT_WHEAD]
    test eax, eax
    jz .Lpd_cleared
    mov edx, dword ptr [eax+TCB_IPC_NEXT]
    mov dword ptr [ebx+PORT_WHEAD], edx
    call ipc_wake_error
    jmp .Lpd_waiters
.Lpd_cleared:
    xor eax, eax
    mov dword ptr [ebx+PORT_TAIL], eax
    mov dword ptr [ebx+PORT_WTAIL], eax
    mov dword ptr [ebx+PORT_QUEUED], eax
    mov dword ptr [ebx+PORT_OWNER], eax
    mov dword ptr [ebx+PORT_NAMED], eax
    test esi, esi
    jz .Lpd_done
    # Tell the name server to forget the name.
    mov edx, dword ptr [esi+MSG_BUF]
    mov dword ptr [edx+NS_REQ_OP], NS_OP_PORT_UNREGISTER
    mov dword ptr [edx+NS_REQ_NAME_LEN], 0
    mov dword ptr [edx+NS_REQ_VALUE], edi
    mov dword ptr [esi+MSG_LEN], NS_REQ_SIZE
    mov eax, esi
    call ipc_post_kernel
    xor eax, eax
.Lpd_done:
    ret
.Lpd_again:
    mov eax, E_AGAIN
    ret

# --- send and receive -----------------------------------------------------------------------------

# send(EBX = port, ECX = offset, EDX = length, ESI = selector, 0 for DS): queue a copy of the
# message on the port, or hand it to a thread waiting there in receive, which becomes ready.
# The sender runs on. Returns 0, or E_BADPORT, E_MSGSIZE, E_FAULT, E_AGAIN.
sys_send:
    call ipc_port_entry
    test eax, eax
    jnz .Lsd_done
    mov eax, esi
    call ipc_message_in
    cmp eax, IPC_ERROR_MIN
    jae .Lsd_done
    call ipc_deliver
    test eax, eax
    jz .Lsd_done
    call ready_enqueue
    xor eax, eax
.Lsd_done:
    ret

# receive(EBX = port, ECX = offset, EDX = capacity, ESI = selector, 0 for DS): wait for a
# message on a port of the caller's process and copy it (at most capacity bytes) into the
# buffer. Returns EAX = the message's length (more than the capacity: truncated), EBX = the
# reply token (the calling thread's id for a call, 0 for a send), ECX = the sender's pid (0:
# the kernel), EDX = the sender's group (0: resident or the kernel); or EAX = E_BADPORT (no
# such port, not the caller's, or destroyed while waiting), E_FAULT.
sys_receive:
    call ipc_port_owned
    test eax, eax
    jnz .Lrc_done
    mov eax, esi
    mov esi, 1
    call ipc_check_buffer
    test eax, eax
    js .Lrc_done
    xor edi, edi
    jmp ipc_receive_common
.Lrc_done:
    ret

# ipc_receive_common: the receive of receive and reply_wait. EBX = the port entry (owned),
# EAX = the buffer's selector, ECX = offset, EDX = capacity (checked writable), EDI = a thread
# to hand the processor to when this one must wait (0: let the scheduler pick).
ipc_receive_common:
    push eax
    push ecx
    push edx
    mov eax, dword ptr [ebx+PORT_HEAD]
    test eax, eax
    jnz .Lrv_dequeue
    # Nothing queued: wait on the port.
    mov eax, dword ptr [k_current]
    mov dword ptr [eax+TCB_STATE], THREAD_BLOCKED
    mov dword ptr [eax+TCB_IPC_STATE], IPC_WAIT_RECEIVE
    mov dword ptr [eax+TCB_IPC_MSG], 0
    mov dword ptr [eax+TCB_IPC_NEXT], 0
    mov edx, dword ptr [ebx+PORT_WTAIL]
    test edx, edx
    jz .Lrv_first_waiter
    mov dword ptr [edx+TCB_IPC_NEXT], eax
    jmp .Lrv_waiting
.Lrv_first_waiter:
    mov dword ptr [ebx+PORT_WHEAD], eax
.Lrv_waiting:
    mov dword ptr [ebx+PORT_WTAIL], eax
    test edi, edi
    jz .Lrv_schedule
    # Direct handoff: the rest of the time slice goes to EDI.
    mov eax, edi
    call switch_to
    jmp .Lrv_woken
.Lrv_schedule:
    call schedule
.Lrv_woken:
    # Back with a message, or with an error when the port was destroyed.
    mov edx, dword ptr [k_current]
    mov eax, dword ptr [edx+TCB_IPC_STATUS]
    mov esi, dword ptr [edx+TCB_IPC_MSG]
    mov dword ptr [edx+TCB_IPC_MSG], 0
    test esi, esi
    jnz .Lrv_take
    add esp, 12
    ret
.Lrv_dequeue:
    # A message is queued: take the first; the thread to hand off to just becomes ready.
    mov edx, dword ptr [eax+MSG_NEXT]
    mov dword ptr [ebx+PORT_HEAD], edx
    test edx, edx
    jnz .Lrv_unlinked
    mov dword ptr [ebx+PORT_TAIL], edx
.Lrv_unlinked:
    dec dword ptr [ebx+PORT_QUEUED]
    mov esi, eax
    test edi, edi
    jz .Lrv_take
    mov eax, edi
    call ready_enqueue
.Lrv_take:
    # Who sent it: the reply token (a caller may now be replied to by this process), pid
    # and group, returned in the frame's EBX ECX EDX.
    mov edx, dword ptr [esi+MSG_CALLER]
    test edx, edx
    jz .Lrv_no_caller
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_PROCESS]
    mov dword ptr [edx+TCB_IPC_SERVER], eax
    mov edx, dword ptr [edx+TCB_TID]
.Lrv_no_caller:
    mov dword ptr [ebp+FR_EBX], edx
    mov edx, dword ptr [esi+MSG_PID]
    mov dword ptr [ebp+FR_ECX], edx
    mov edx, dword ptr [esi+MSG_GROUP]
    mov dword ptr [ebp+FR_EDX], edx
    # Copy it out to the buffer.
    pop ecx
    pop edi
    pop eax
    jmp ipc_take_message

# --- call and reply --------------------------------------------------------------------------------

# call(EBX = port, ECX = offset, EDX = length, ESI = reply offset, EDI = reply capacity; both
# buffers in DS): send the message as a call and wait for the reply, which is copied (at most
# capacity bytes) into the reply buffer. A receiver waiting on the port becomes ready and runs
# when the scheduler picks it. Returns the reply's length, or E_BADPORT, E_MSGSIZE, E_FAULT,
# E_AGAIN.
sys_call:
    xor eax, eax
    jmp ipc_call_common

# call_handoff(same arguments): as call, but when a receiver waits on the port the caller's
# time slice goes straight to it (switch_to, not the ready queue).
sys_call_handoff:
    mov eax, 1

# ipc_call_common: call with EAX = 1 for a direct handoff.
ipc_call_common:
    push eax
    call ipc_port_entry
    test eax, eax
    jnz .Lcl_fail
    # The reply buffer must be writable.
    push ecx
    push edx
    xor eax, eax
    mov ecx, esi
    mov edx, edi
    mov esi, 1
    call ipc_check_buffer
    pop edx
    pop ecx
    test eax, eax
    js .Lcl_fail
    push eax
    # The message, into a kernel buffer.
    xor eax, eax
    call ipc_message_in
    cmp eax, IPC_ERROR_MIN
    jae .Lcl_fail_message
    # A call: this thread waits for the reply.
    mov edx, dword ptr [k_current]
    mov dword ptr [eax+MSG_CALLER], edx
    mov dword ptr [edx+TCB_STATE], THREAD_BLOCKED
    mov dword ptr [edx+TCB_IPC_STATE], IPC_WAIT_REPLY
    mov dword ptr [edx+TCB_IPC_SERVER], 0
    mov dword ptr [edx+TCB_IPC_MSG], 0
    call ipc_deliver
    test eax, eax
    jz .Lcl_schedule
    cmp dword ptr [esp+4], 0
    je .Lcl_ready
    # Direct handoff to the receiver.
    call switch_to
    jmp .Lcl_woken
.Lcl_ready:
    call ready_enqueue
.Lcl_schedule:
    call schedule
.Lcl_woken:
    # Back with the reply, or with an error when the port was destroyed first.
    mov edx, dword ptr [k_current]
    mov eax, dword ptr [edx+TCB_IPC_STATUS]
    mov esi, dword ptr [edx+TCB_IPC_MSG]
    mov dword ptr [edx+TCB_IPC_MSG], 0
    test esi, esi
    jz .Lcl_fail_message
    pop eax
    add esp, 4
    mov edi, dword ptr [ebp+FR_ESI]
    mov ecx, dword ptr [ebp+FR_EDI]
    jmp ipc_take_message
.Lcl_fail_message:
    add esp, 4
.Lcl_fail:
    add esp, 4
    ret

# reply(EBX = reply token, ECX = offset, EDX = length, ESI = selector, 0 for DS): send the
# reply to the thread waiting in call whose message this process received; it becomes ready
# and the replier runs on. Returns 0, or E_INVAL (no such caller), E_MSGSIZE, E_FAULT, E_AGAIN.
sys_reply:
    call ipc_reply_target
    test eax, eax
    jnz .Lrp_done
    mov eax, esi
    call ipc_message_in
    cmp eax, IPC_ERROR_MIN
    jae .Lrp_done
    mov dword ptr [ebx+TCB_IPC_MSG], eax
    mov dword ptr [ebx+TCB_IPC_STATE], IPC_NONE
    mov eax, ebx
    call ready_enqueue
    xor eax, eax
.Lrp_done:
    ret

# reply_wait(EBX = reply token, 0 for none, ECX = buffer offset, EDX = reply length,
# ESI = port, EDI = capacity; the buffer in DS): reply from the buffer as reply does, then
# receive on the port into the same buffer, returning what receive returns. The caller
# becomes ready; this thread, when it must wait, lets the scheduler pick. Errors (nothing
# done): E_BADPORT, E_FAULT, E_INVAL, E_MSGSIZE, E_AGAIN.
sys_reply_wait:
    xor eax, eax
    jmp ipc_reply_wait_common

# reply_wait_handoff(same arguments): as reply_wait, but when this thread must wait the rest
# of its time slice goes straight to the caller it replied to.
sys_reply_wait_handoff:
    mov eax, 1

# ipc_reply_wait_common: reply_wait with EAX = 1 for a direct handoff.
ipc_reply_wait_common:
    push eax
    # The port to receive on: open and the caller's.
    mov ebx, esi
    call ipc_port_owned
    test eax, eax
    jnz .Lrw_fail
    push ebx
    # The buffer, writable for the capacity.
    xor eax, eax
    mov ecx, dword ptr [ebp+FR_ECX]
    mov edx, edi
    mov esi, 1
    call ipc_check_buffer
    test eax, eax
    js .Lrw_fail_port
    push eax
    # The reply, if a token is given.
    xor edi, edi
    mov ebx, dword ptr [ebp+FR_EBX]
    test ebx, ebx
    jz .Lrw_receive
    call ipc_reply_target
    test eax, eax
    jnz .Lrw_fail_buffer
    mov ecx, dword ptr [ebp+FR_ECX]
    mov edx, dword ptr [ebp+FR_EDX]
    call ipc_message_in
    cmp eax, IPC_ERROR_MIN
    jae .Lrw_fail_buffer
    mov dword ptr [ebx+TCB_IPC_MSG], eax
    mov dword ptr [ebx+TCB_IPC_STATE], IPC_NONE
    mov edi, ebx
    cmp dword ptr [esp+8], 0
    jne .Lrw_receive
    mov eax, ebx
    call ready_enqueue
    xor edi, edi
.Lrw_receive:
    pop eax
    pop ebx
    add esp, 4
    mov ecx, dword ptr [ebp+FR_ECX]
    mov edx, dword ptr [ebp+FR_EDI]
    jmp ipc_receive_common
.Lrw_fail_buffer:
    add esp, 4
.Lrw_fail_port:
    add esp, 4
.Lrw_fail:
    add esp, 4
    ret
