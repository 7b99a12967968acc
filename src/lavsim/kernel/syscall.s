# Lavender kernel: system calls. Called from syscall_entry (entry.s) with EBP = the frame and
# the caller's arguments still in EBX ECX EDX ESI EDI; the result is returned in EAX.

# exit(EBX = exit code): end the calling thread (entered at sys_exit in lrpc.s, which first
# gives a thread inside an LRPC call back to its own process).
exit_current:
    mov eax, dword ptr [k_current]
    mov dword ptr [eax+TCB_EXIT_CODE], ebx
    jmp thread_exit

# An unused system-call number.
sys_nosys:
    mov eax, E_NOSYS
    ret

# yield(): give the rest of the time slice to the next ready thread; returns 0.
sys_yield:
    jmp preempt

# thread_id(): the calling thread's id.
sys_thread_id:
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_TID]
    ret

# process_id(): the id of the process whose code made the call (inside a migrated procedure,
# the procedure's process; migrate.s).
sys_process_id:
    call frame_owner
    mov eax, dword ptr [eax+PCB_PID]
    ret

# console_write(EBX = offset, ECX = length, EDX = selector, 0 for the caller's DS): copy the
# bytes to the console port; returns the length, or E_FAULT when the caller may not read them.
sys_console_write:
    test edx, edx
    jnz .Lcw_have_selector
    mov edx, dword ptr [ebp+FR_DS]
.Lcw_have_selector:
    # The selector is used with the caller's privilege: its RPL is raised to the caller's CPL.
    mov eax, dword ptr [ebp+FR_CS]
    arpl dx, ax
    # The segment must be readable at that privilege ...
    verr dx
    jnz .Lcw_fault
    # ... not an expand-down data segment (its valid offsets lie above the limit) ...
    lar eax, edx
    jnz .Lcw_fault
    and eax, 0x0C00
    cmp eax, 0x0400
    je .Lcw_fault
    # ... and hold every byte: offset + length - 1 <= limit, without wrapping.
    lsl eax, edx
    jnz .Lcw_fault
    test ecx, ecx
    jz .Lcw_done
    mov esi, ebx
    add esi, ecx
    jc .Lcw_fault
    dec esi
    cmp esi, eax
    ja .Lcw_fault
    # Copy through the caller's segment: DS names it during the loop (no kernel data used).
    mov esi, ecx
    mov ds, dx
.Lcw_loop:
    mov al, byte ptr [ebx]
    out CONSOLE_PORT, al
    inc ebx
    dec ecx
    jnz .Lcw_loop
    mov ax, KERNEL_DS
    mov ds, ax
    mov eax, esi
    ret
.Lcw_done:
    xor eax, eax
    ret
.Lcw_fault:
    mov eax, E_FAULT
    ret

# create_thread(EBX = entry offset in the caller's code segment, ECX = argument): a new thread
# of the caller's process, ready to run; returns its id, E_INVAL (entry outside the code
# segment), E_AGAIN (no free thread slot in the process) or E_NOMEM (no free TCB).
# The thread starts at entry with EAX = argument and, on its stack, a return address that
# faults and the argument (cdecl: [ESP+4]).
sys_create_thread:
    mov esi, dword ptr [k_current]
    mov esi, dword ptr [esi+TCB_PROCESS]
    # The entry must lie inside the code segment, or IRET would fault in the kernel.
    cmp ebx, dword ptr [esi+PCB_CODE_LIMIT]
    ja .Lct_inval
    # Find a free stack slot in the process.
    xor edx, edx
.Lct_slot:
    cmp edx, dword ptr [esi+PCB_MAX_THREADS]
    jae .Lct_again
    cmp byte ptr [esi+PCB_SLOTS+edx], 0
    je .Lct_found
    inc edx
    jmp .Lct_slot
.Lct_found:
    # A TCB and its id (threads.s; ids of dead threads come back once all were used).
    call tcb_alloc
    test eax, eax
    js .Lct_nomem
    mov byte ptr [esi+PCB_SLOTS+edx], 1
    inc dword ptr [esi+PCB_THREADS]
    inc dword ptr [k_live_threads]
    mov edi, eax
    shl edi, 12
    add edi, TCB_LINEAR
    # TCB fields.
    mov dword ptr [edi+TCB_TID], eax
    mov dword ptr [edi+TCB_PROCESS], esi
    mov dword ptr [edi+TCB_SLOT], edx
    mov dword ptr [edi+TCB_NEXT], 0
    mov dword ptr [edi+TCB_EXIT_CODE], 0
    mov dword ptr [edi+TCB_FAULT_VECTOR], 0xFFFFFFFF
    mov dword ptr [edi+TCB_FAULT_ERROR], 0
    mov dword ptr [edi+TCB_FAULT_EIP], 0
    mov dword ptr [edi+TCB_FAULT_CS], 0
    mov dword ptr [edi+TCB_FAULT_CR2], 0
    # Ring-2 stack pointer: the top of the slot's part of the ring-2 stack segment.
    lea eax, [edx+1]
    imul eax, dword ptr [esi+PCB_R2_SLOT]
    mov dword ptr [edi+TCB_ESP2], eax
    # User stack: the top of the slot's part of the stack segment, holding a faulting return
    # address and the argument.
    lea eax, [edx+1]
    imul eax, dword ptr [esi+PCB_STACK_SLOT]
    sub eax, 8
    mov edx, dword ptr [esi+PCB_STACK_BASE]
    add edx, eax
    mov dword ptr [edx], THREAD_RETURN_SENTINEL
    mov dword ptr [edx+4], ecx
    # The user frame at the top of the ring-0 stack, as trap_return pops it.
    lea edx, [edi+NEW_THREAD_KESP_OFFSET+20]
    mov dword ptr [edx+FR_GS], 0
    mov dword ptr [edx+FR_FS], 0
    mov dword ptr [edx+FR_ES], USER_DS
    mov dword ptr [edx+FR_DS], USER_DS
    mov dword ptr [edx+FR_EDI], 0
    mov dword ptr [edx+FR_ESI], 0
    mov dword ptr [edx+FR_EBP], 0
    mov dword ptr [edx+FR_KESP], 0
    mov dword ptr [edx+FR_EBX], 0
    mov dword ptr [edx+FR_EDX], 0
    mov dword ptr [edx+FR_ECX], 0
    mov dword ptr [edx+FR_EAX], ecx
    mov dword ptr [edx+FR_VECTOR], 0
    mov dword ptr [edx+FR_ERROR], 0
    mov dword ptr [edx+FR_EIP], ebx
    mov dword ptr [edx+FR_CS], USER_CS
    mov dword ptr [edx+FR_EFLAGS], USER_EFLAGS
    mov dword ptr [edx+FR_ESP], eax
    mov dword ptr [edx+FR_SS], USER_SS
    # Below it what switch_to pops: EDI ESI EBX EBP, then the return into trap_return.
    lea eax, [trap_return]
    mov dword ptr [edx-4], eax
    mov dword ptr [edx-8], 0
    mov dword ptr [edx-12], 0
    mov dword ptr [edx-16], 0
    mov dword ptr [edx-20], 0
    sub edx, 20
    mov dword ptr [edi+TCB_KESP], edx
    # Queue it and return its id.
    mov eax, edi
    call ready_enqueue
    mov eax, dword ptr [edi+TCB_TID]
    ret
.Lct_inval:
    mov eax, E_INVAL
    ret
.Lct_again:
    mov eax, E_AGAIN
    ret
.Lct_nomem:
    mov eax, E_NOMEM
    ret
