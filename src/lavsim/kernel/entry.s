# Lavender kernel: interrupt and trap entry and exit.
#
# Every entry runs through an interrupt gate, so the kernel is entered with IF = 0 and is
# never preempted. From a user ring the processor has switched to the thread's ring-0 stack
# (TSS.SS0:ESP0) and pushed SS, ESP, EFLAGS, CS, EIP (and an error code for some exceptions).
# The stubs make every frame look the same: error code (or 0), vector, the general registers
# (PUSHAD), then DS, ES, FS, GS. A frame from a user ring therefore always sits at the top of
# the thread's ring-0 stack, FRAME_SIZE bytes below TCB + TCB_SIZE. Offsets are FR_* (layout.py).
#
# Handlers are called with EBP = the frame; they may change EAX EBX ECX EDX ESI EDI and must
# keep EBP.

# --- exception stubs: vectors 0..19 -------------------------------------------------------
isr_0:  # divide error
    push 0
    push 0
    jmp trap_entry
isr_1:  # debug
    push 0
    push 1
    jmp trap_entry
isr_2:  # NMI
    push 0
    push 2
    jmp trap_entry
isr_3:  # breakpoint
    push 0
    push 3
    jmp trap_entry
isr_4:  # overflow
    push 0
    push 4
    jmp trap_entry
isr_5:  # BOUND range exceeded
    push 0
    push 5
    jmp trap_entry
isr_6:  # invalid opcode
    push 0
    push 6
    jmp trap_entry
isr_7:  # device not available
    push 0
    push 7
    jmp trap_entry
isr_8:  # double fault (the processor pushed an error code)
    push 8
    jmp trap_entry
isr_9:  # coprocessor segment overrun
    push 0
    push 9
    jmp trap_entry
isr_10:  # invalid TSS (error code)
    push 10
    jmp trap_entry
isr_11:  # segment not present (error code)
    push 11
    jmp trap_entry
isr_12:  # stack-segment fault (error code)
    push 12
    jmp trap_entry
isr_13:  # general protection (error code)
    push 13
    jmp trap_entry
isr_14:  # page fault (error code; CR2 holds the linear address)
    push 14
    jmp trap_entry
isr_15:  # reserved
    push 0
    push 15
    jmp trap_entry
isr_16:  # x87 floating-point error
    push 0
    push 16
    jmp trap_entry
isr_17:  # alignment check (error code)
    push 17
    jmp trap_entry
isr_18:  # machine check
    push 0
    push 18
    jmp trap_entry
isr_19:  # SIMD floating-point
    push 0
    push 19
    jmp trap_entry

# --- hardware interrupts ---------------------------------------------------------------------
isr_timer:
    push 0
    push TIMER_VECTOR
    jmp trap_entry

# --- common path for exceptions and interrupts -----------------------------------------------
trap_entry:
    # Save the interrupted context's general and segment registers.
    pushad
    push ds
    push es
    push fs
    push gs
    # Kernel data segments (flat).
    mov ax, KERNEL_DS
    mov ds, ax
    mov es, ax
    # Dispatch on the vector.
    mov ebp, esp
    mov eax, dword ptr [ebp+FR_VECTOR]
    call dword ptr [vector_table+eax*4]
# Return to the interrupted context; also where a new thread's first switch_to returns.
trap_return:
    pop gs
    pop fs
    pop es
    pop ds
    popad
    # Drop the vector and the error code.
    add esp, 8
    iretd

# --- system call: int 0x30 (DPL 3 interrupt gate) ------------------------------------------
# EAX = number, arguments in EBX ECX EDX ESI EDI; the result goes back in EAX.
syscall_entry:
    push 0
    push SYSCALL_VECTOR
    pushad
    push ds
    push es
    push fs
    push gs
    # Kernel data segments; EBP is free (saved in the frame), EAX still holds the number.
    mov bp, KERNEL_DS
    mov ds, bp
    mov es, bp
    mov ebp, esp
    cmp eax, SYSCALL_COUNT
    jae .Lsyscall_bad
    call dword ptr [syscall_table+eax*4]
    mov dword ptr [ebp+FR_EAX], eax
    jmp trap_return
.Lsyscall_bad:
    # The network server's calls (net.s) have a table of their own.
    sub eax, NET_SYSCALL_FIRST
    cmp eax, NET_SYSCALL_COUNT
    jae .Lsyscall_nosys
    call dword ptr [net_syscall_table+eax*4]
    mov dword ptr [ebp+FR_EAX], eax
    jmp trap_return
.Lsyscall_nosys:
    mov dword ptr [ebp+FR_EAX], E_NOSYS
    jmp trap_return

# --- exceptions --------------------------------------------------------------------------------
# A fault in user code (any ring but 0) kills the faulting thread and records why in its TCB;
# a fault in the kernel stops the machine.
exception_handler:
    test byte ptr [ebp+FR_CS], 3
    jnz .Lexception_user
    # One kernel fault is the thread's own: the kernel's IRETD returning to an outer ring
    # raises #GP(0) when the return EIP is past the code segment's limit, which is where a
    # thread stands when it was interrupted right after the last instruction of its code (an
    # INT 0x30 at the very end, or a timer tick). The IRET frame is just above this frame
    # ([ebp+FR_ESP] = its EIP, [ebp+FR_SS] = its CS), at the top of the thread's stack where
    # the thread's own frame still holds EIP..SS: kill the thread with this fault, recorded at
    # its CS:EIP. Any other fault of the IRETD (a corrupted frame) is the kernel's.
    mov eax, dword ptr [ebp+FR_EIP]
    cmp byte ptr [eax], 0xCF
    jne kernel_panic
    cmp dword ptr [ebp+FR_ERROR], 0
    jne kernel_panic
    test byte ptr [ebp+FR_SS], 3
    jz kernel_panic
    lsl ecx, word ptr [ebp+FR_SS]
    jnz kernel_panic
    cmp dword ptr [ebp+FR_ESP], ecx
    jbe kernel_panic
    mov eax, dword ptr [ebp+FR_VECTOR]
    mov ecx, dword ptr [ebp+FR_ERROR]
    add ebp, FR_ESP - FR_EIP
    mov dword ptr [ebp+FR_VECTOR], eax
    mov dword ptr [ebp+FR_ERROR], ecx
.Lexception_user:
    mov ebx, dword ptr [k_current]
    # Record the reason: vector, error code, CS:EIP, and CR2 for a page fault.
    mov eax, dword ptr [ebp+FR_VECTOR]
    mov dword ptr [ebx+TCB_FAULT_VECTOR], eax
    mov ecx, dword ptr [ebp+FR_ERROR]
    mov dword ptr [ebx+TCB_FAULT_ERROR], ecx
    mov ecx, dword ptr [ebp+FR_EIP]
    mov dword ptr [ebx+TCB_FAULT_EIP], ecx
    mov ecx, dword ptr [ebp+FR_CS]
    mov dword ptr [ebx+TCB_FAULT_CS], ecx
    # The process whose code faulted: the server, for a thread inside a migrated call.
    call frame_owner
    mov eax, dword ptr [eax+PCB_PID]
    mov dword ptr [ebx+TCB_FAULT_PID], eax
    mov eax, dword ptr [ebp+FR_VECTOR]
    cmp eax, 14
    jne .Lexception_kill
    mov ecx, cr2
    mov dword ptr [ebx+TCB_FAULT_CR2], ecx
.Lexception_kill:
    mov dword ptr [ebx+TCB_EXIT_CODE], 0xFFFFFFFF
    mov eax, ebx
    jmp thread_exit

# A vector the kernel has no handler for (cannot happen: only installed gates reach here).
unexpected_vector:
    jmp kernel_panic

# The kernel itself faulted: record the frame, then stop with interrupts off.
kernel_panic:
    mov eax, dword ptr [ebp+FR_VECTOR]
    mov dword ptr [k_panic_vector], eax
    mov eax, dword ptr [ebp+FR_ERROR]
    mov dword ptr [k_panic_error], eax
    mov eax, dword ptr [ebp+FR_EIP]
    mov dword ptr [k_panic_eip], eax
    mov eax, dword ptr [ebp+FR_CS]
    mov dword ptr [k_panic_cs], eax
    mov eax, cr2
    mov dword ptr [k_panic_cr2], eax
    mov eax, dword ptr [k_current]
    mov dword ptr [k_panic_thread], eax
    mov dword ptr [k_status], STATUS_PANIC
halt_forever:
    cli
    hlt
    jmp halt_forever

# --- the timer --------------------------------------------------------------------------------
timer_handler:
    # End of interrupt first, so the next tick is not lost while another thread runs.
    mov al, PIC_EOI
    out PIC_COMMAND, al
    # A tick that interrupted the kernel's idle loop only wakes it; one that interrupted a
    # user thread ends its time slice.
    test byte ptr [ebp+FR_CS], 3
    jnz preempt
    ret
