# Lavender kernel: L4-style IPC (issue 14), after Liedtke's L3/L4 design.
#
# Synchronous IPC addressed to a thread id, with no ports and no kernel buffers:
# - call(thread, message): send and wait for that thread's reply; reply_and_wait(caller, reply):
#   reply to the thread whose call this one received, then wait for a message from any thread;
# - a message is L4_REGISTER_WORDS words in registers (ESI, EDI: the 8-byte short message of
#   L3/L4) and an optional long part: bytes in the sender's DS, copied once, directly from the
#   sender's segment to the receiver's receive buffer through the kernel's window on physical
#   memory (the receiver's page tables are read in guest code to find its frames);
# - the fast path, when the partner already waits: the register words go straight into the
#   partner's saved user frame and the sender switches to it (switch_to), no scheduler, no queue,
#   no checks of register messages. A partner that does not wait yet makes the sender wait in
#   its send queue (the slow path); the partner's next wait wakes the first sender, which tries
#   again.
#
# The right to send: a thread may call thread D only if its process holds a send right to D's
# process (PCB_L4_RIGHTS, granted by the boot loader: fastipc.grant_send), and may reply only to
# the thread whose call it received, while that thread waits for the reply (TCB_L4_PARTNER).
# This file lies after ipc.s and threads.s, so the older IPC paths keep their addresses.

# l4_dest: the thread numbered EBX the caller may send to. Returns EBX = its TCB and EAX = 0,
# or EAX = E_INVAL (no live thread of that id, or the caller itself) or E_PERM (no send right
# to its process). Keeps ECX EDX ESI EDI.
l4_dest:
    test ebx, ebx
    jz .Ld_inval
    cmp ebx, MAX_THREADS
    jae .Ld_inval
    shl ebx, 12
    add ebx, TCB_LINEAR
    cmp ebx, dword ptr [k_current]
    je .Ld_inval
    mov eax, dword ptr [ebx+TCB_STATE]
    cmp eax, THREAD_FREE
    je .Ld_inval
    cmp eax, THREAD_DEAD
    je .Ld_inval
    # The right: bit (pid & 7) of byte (pid >> 3) of the caller's PCB_L4_RIGHTS.
    push ecx
    push edx
    mov eax, dword ptr [ebx+TCB_PROCESS]
    mov eax, dword ptr [eax+PCB_PID]
    mov ecx, eax
    and ecx, 7
    shr eax, 3
    mov edx, dword ptr [k_current]
    mov edx, dword ptr [edx+TCB_PROCESS]
    movzx eax, byte ptr [edx+eax+PCB_L4_RIGHTS]
    shr eax, cl
    pop edx
    pop ecx
    test eax, 1
    jz .Ld_perm
    xor eax, eax
    ret
.Ld_inval:
    mov eax, E_INVAL
    ret
.Ld_perm:
    mov eax, E_PERM
    ret

# l4_check_long: the long part of the caller's message for the receiver EBX: EDX bytes at
# offset ECX of the caller's DS (EDX = 0: none). It must fit the receiver's receive buffer and
# be readable by the caller. Returns EAX = the selector (0 when there is no long part), or
# E_MSGSIZE, E_FAULT. Keeps EBX ECX EDX EDI; changes ESI.
l4_check_long:
    xor eax, eax
    test edx, edx
    jz .Lck_done
    cmp edx, dword ptr [ebx+TCB_L4_RCAP]
    ja .Lck_msgsize
    xor esi, esi
    call ipc_check_buffer
.Lck_done:
    ret
.Lck_msgsize:
    mov eax, E_MSGSIZE
    ret

# l4_transfer: deliver the caller's message to the waiting thread EBX: the long part (EDX bytes
# at offset ECX through the checked selector EAX; EDX = 0: none) copied into its receive
# buffer, the register words (the caller's ESI EDI) and the sender's id (EBX) into its saved
# user frame, the long part's length as what its system call returns. Returns EAX = 0, or
# E_FAULT when a page of the receive buffer is not mapped user-writable (nothing delivered).
# Keeps EBX.
l4_transfer:
    push edx
    test edx, edx
    jz .Ltr_words
    push ebx
    mov esi, ecx
    mov ecx, edx
    mov edi, dword ptr [ebx+TCB_L4_RBUF]
    mov ebx, dword ptr [ebx+TCB_L4_RDIR]
    call l4_copy_long
    pop ebx
    test eax, eax
    jnz .Ltr_fault
.Ltr_words:
    lea esi, [ebx+TCB_SIZE-FRAME_SIZE]
    mov eax, dword ptr [ebp+FR_ESI]
    mov dword ptr [esi+FR_ESI], eax
    mov eax, dword ptr [ebp+FR_EDI]
    mov dword ptr [esi+FR_EDI], eax
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_TID]
    mov dword ptr [esi+FR_EBX], eax
    pop dword ptr [ebx+TCB_L4_RESULT]
    xor eax, eax
    ret
.Ltr_fault:
    pop edx
    ret

# l4_copy_long: copy ECX bytes (1..4096) from offset ESI of the sender's segment (selector AX,
# checked) to linear EDI of the receiver's address space (page directory at physical EBX; 0
# for a resident receiver: the one loaded), once, through the kernel's window on physical
# memory, with REP MOVSD and REP MOVSB for the last 0..3 bytes of each page's part. The part
# spans at most two pages; both are looked up before a byte is written. The first instruction
# keeps ECX (the observer reads the byte count there). Returns EAX = 0 or E_FAULT. Changes EBX
# ECX EDX ESI EDI.
l4_copy_long:
    push eax
    test ebx, ebx
    jnz .Lcp_directory
    mov ebx, dword ptr [k_current_cr3]
.Lcp_directory:
    # The first part runs to the end of EDI's page, the second (0 bytes or more) past it.
    mov eax, edi
    or eax, 0xFFFFF000
    neg eax
    cmp eax, ecx
    jbe .Lcp_split
    mov eax, ecx
.Lcp_split:
    sub ecx, eax
    push eax
    push ecx
    mov edx, edi
    or edx, 0xFFF
    inc edx
    test ecx, ecx
    jz .Lcp_second
    call l4_window
    test eax, eax
    jnz .Lcp_fault
.Lcp_second:
    push edx
    mov edx, edi
    call l4_window
    test eax, eax
    jnz .Lcp_fault_second
    mov edi, edx
    # [esp] the second part's window address, [esp+4] its length, [esp+8] the first's length,
    # [esp+12] the sender's selector (ESP-based operands use SS, the kernel's stack).
    mov eax, dword ptr [esp+12]
    mov ds, ax
    cld
    mov ecx, dword ptr [esp+8]
    mov edx, ecx
    shr ecx, 2
    rep movsd
    mov ecx, edx
    and ecx, 3
    rep movsb
    mov edi, dword ptr [esp]
    mov ecx, dword ptr [esp+4]
    mov edx, ecx
    shr ecx, 2
    rep movsd
    mov ecx, edx
    and ecx, 3
    rep movsb
    mov ax, KERNEL_DS
    mov ds, ax
    add esp, 16
    xor eax, eax
    ret
.Lcp_fault_second:
    add esp, 4
.Lcp_fault:
    add esp, 12
    mov eax, E_FAULT
    ret

# l4_window: the kernel-window address of the user byte at linear EDX in the page directory at
# physical EBX, when its page is mapped present, writable and user at both levels. Returns
# EDX and EAX = 0, or EAX = E_FAULT. Keeps EBX ECX ESI EDI.
l4_window:
    cmp edx, KERNEL_BASE
    jae .Lw_fault
    push ecx
    mov ecx, edx
    shr ecx, 22
    mov eax, dword ptr [ebx+ecx*4+KERNEL_BASE]
    mov ecx, eax
    and ecx, 7
    cmp ecx, 7
    jne .Lw_fault_pop
    and eax, 0xFFFFF000
    mov ecx, edx
    shr ecx, 12
    and ecx, 0x3FF
    mov eax, dword ptr [eax+ecx*4+KERNEL_BASE]
    mov ecx, eax
    and ecx, 7
    cmp ecx, 7
    jne .Lw_fault_pop
    pop ecx
    and eax, 0xFFFFF000
    and edx, 0xFFF
    lea edx, [eax+edx+KERNEL_BASE]
    xor eax, eax
    ret
.Lw_fault_pop:
    pop ecx
.Lw_fault:
    mov eax, E_FAULT
    ret

# l4_call(EBX = destination thread id, ECX = the long part's offset, EDX = its length, 0 for
# none (in DS), ESI EDI = the register words): send the message to the thread and wait for its
# reply. Returns EAX = the reply's long length (its bytes in the caller's receive buffer),
# ESI EDI = the reply's words, EBX = the replier's id; or E_INVAL, E_PERM, E_MSGSIZE, E_FAULT
# with nothing sent.
sys_l4_call:
    call l4_dest
    test eax, eax
    jnz .Lc_done
    cmp dword ptr [ebx+TCB_L4_STATE], L4_WAIT_ANY
    jne .Lc_wait_send
    call l4_check_long
    test eax, eax
    js .Lc_done
    call l4_transfer
    test eax, eax
    jnz .Lc_done
    # The receiver may now reply to this thread, which waits for that reply.
    mov eax, ebx
    mov edx, dword ptr [k_current]
    mov dword ptr [eax+TCB_L4_STATE], L4_NONE
    mov dword ptr [eax+TCB_L4_PARTNER], edx
    mov dword ptr [edx+TCB_L4_STATE], L4_WAIT_REPLY
    mov dword ptr [edx+TCB_L4_PARTNER], eax
    mov dword ptr [edx+TCB_STATE], THREAD_BLOCKED
    # Direct switch to the receiver: no scheduler, no ready queue.
    call switch_to
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_L4_RESULT]
.Lc_done:
    ret
.Lc_wait_send:
    # The receiver does not wait: join the end of its send queue until it does, then try again
    # from the start (the receiver may be gone by then).
    mov edx, dword ptr [k_current]
    mov dword ptr [edx+TCB_L4_STATE], L4_WAIT_SEND
    mov dword ptr [edx+TCB_L4_PARTNER], ebx
    mov dword ptr [edx+TCB_L4_NEXT], 0
    mov dword ptr [edx+TCB_STATE], THREAD_BLOCKED
    # The queue's head is TCB_L4_SENDQ: treat it as the TCB_L4_NEXT of a node before the first.
    lea eax, [ebx+TCB_L4_SENDQ-TCB_L4_NEXT]
.Lc_tail:
    mov ecx, dword ptr [eax+TCB_L4_NEXT]
    test ecx, ecx
    jz .Lc_append
    mov eax, ecx
    jmp .Lc_tail
.Lc_append:
    mov dword ptr [eax+TCB_L4_NEXT], edx
    call schedule
    mov ebx, dword ptr [ebp+FR_EBX]
    mov ecx, dword ptr [ebp+FR_ECX]
    mov edx, dword ptr [ebp+FR_EDX]
    jmp sys_l4_call

# l4_reply_wait(EBX = the caller to reply to, 0 for none, ECX = the reply's long part's
# offset, EDX = its length (in DS), ESI EDI = the reply's words): reply to the thread whose
# call this thread received (it must still wait for this reply), then wait for a message from
# any thread; the replied caller runs next (direct switch). Returns EAX = the message's long
# length (its bytes in the receive buffer), EBX = the sender's id (the token to reply to),
# ESI EDI = its words; or E_INVAL (EBX names no thread waiting for this thread's reply),
# E_MSGSIZE, E_FAULT, with nothing done.
sys_l4_reply_wait:
    test ebx, ebx
    jz .Lrw_wait
    cmp ebx, MAX_THREADS
    jae .Lrw_inval
    shl ebx, 12
    add ebx, TCB_LINEAR
    mov eax, dword ptr [k_current]
    cmp dword ptr [ebx+TCB_L4_STATE], L4_WAIT_REPLY
    jne .Lrw_inval
    cmp dword ptr [ebx+TCB_L4_PARTNER], eax
    jne .Lrw_inval
    call l4_check_long
    test eax, eax
    js .Lrw_done
    call l4_transfer
    test eax, eax
    jnz .Lrw_done
    mov dword ptr [ebx+TCB_L4_STATE], L4_NONE
    mov dword ptr [ebx+TCB_L4_PARTNER], 0
.Lrw_wait:
    # Wait for a message from any thread; the first thread waiting to send here tries again.
    mov edx, dword ptr [k_current]
    mov dword ptr [edx+TCB_L4_STATE], L4_WAIT_ANY
    mov dword ptr [edx+TCB_L4_PARTNER], 0
    mov dword ptr [edx+TCB_STATE], THREAD_BLOCKED
    mov eax, dword ptr [edx+TCB_L4_SENDQ]
    test eax, eax
    jz .Lrw_switch
    mov ecx, dword ptr [eax+TCB_L4_NEXT]
    mov dword ptr [edx+TCB_L4_SENDQ], ecx
    mov dword ptr [eax+TCB_L4_STATE], L4_NONE
    mov dword ptr [eax+TCB_L4_PARTNER], 0
    call ready_enqueue
.Lrw_switch:
    test ebx, ebx
    jz .Lrw_schedule
    mov eax, ebx
    call switch_to
    jmp .Lrw_woken
.Lrw_schedule:
    call schedule
.Lrw_woken:
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_L4_RESULT]
.Lrw_done:
    ret
.Lrw_inval:
    mov eax, E_INVAL
    ret

# l4_receive_buffer(ECX = offset, EDX = capacity, 0 for none; in DS): where long messages to
# this thread are copied from now on (it stays set, as the buffer registers of later L4
# versions do). Checked writable by the caller now; the kernel keeps its linear address and
# the page directory that address is in.
# Returns 0, or E_MSGSIZE (capacity over IPC_MAX_MESSAGE), E_FAULT.
sys_l4_receive_buffer:
    cmp edx, IPC_MAX_MESSAGE
    ja .Lrb_msgsize
    xor eax, eax
    mov esi, 1
    call ipc_check_buffer
    test eax, eax
    js .Lrb_done
    # The segment's base, from its descriptor in the caller's LDT (TI = 1) or the GDT.
    mov esi, eax
    and esi, 0xFFF8
    mov edi, GDT_LINEAR
    test eax, 4
    jz .Lrb_table
    mov edi, dword ptr [k_current]
    mov edi, dword ptr [edi+TCB_PROCESS]
    mov edi, dword ptr [edi+PCB_PID]
    imul edi, edi, LDT_BYTES
    add edi, LDT_LINEAR
.Lrb_table:
    add esi, edi
    mov eax, dword ptr [esi+2]
    and eax, 0x00FFFFFF
    movzx edi, byte ptr [esi+7]
    shl edi, 24
    or eax, edi
    add eax, ecx
    # With the page directory it lies in (the process's now, even inside an LRPC call).
    mov esi, dword ptr [k_current]
    mov dword ptr [esi+TCB_L4_RBUF], eax
    mov dword ptr [esi+TCB_L4_RCAP], edx
    mov eax, dword ptr [esi+TCB_PROCESS]
    mov eax, dword ptr [eax+PCB_CR3]
    mov dword ptr [esi+TCB_L4_RDIR], eax
    xor eax, eax
.Lrb_done:
    ret
.Lrb_msgsize:
    mov eax, E_MSGSIZE
    ret
