# Lavender kernel: ready queue, round-robin scheduler, context switch, thread exit.
#
# The ready queue is a singly linked FIFO of TCBs (TCB_NEXT), k_ready_head .. k_ready_tail.
# k_current is the running thread's TCB. A thread that is not running keeps its registers on
# its own ring-0 stack: the user frame at the top (entry.s), and below it the callee-saved
# registers and return address pushed by switch_to; TCB_KESP points at them.

# ready_enqueue: append the TCB in EAX to the ready queue. Changes EDX.
ready_enqueue:
    mov dword ptr [eax+TCB_STATE], THREAD_READY
    mov dword ptr [eax+TCB_NEXT], 0
    mov edx, dword ptr [k_ready_tail]
    test edx, edx
    jz .Lenqueue_empty
    mov dword ptr [edx+TCB_NEXT], eax
    mov dword ptr [k_ready_tail], eax
    ret
.Lenqueue_empty:
    mov dword ptr [k_ready_head], eax
    mov dword ptr [k_ready_tail], eax
    ret

# preempt: end the current thread's time slice (timer tick, yield). If another thread is
# ready, queue the current one at the tail and run the head; returns 0 in EAX when this
# thread runs again.
preempt:
    cmp dword ptr [k_ready_head], 0
    je .Lpreempt_alone
    mov eax, dword ptr [k_current]
    call ready_enqueue
    call schedule
.Lpreempt_alone:
    xor eax, eax
    ret

# schedule: run the thread at the head of the ready queue. The caller has already put the
# current thread where it belongs (ready queue, blocked, dead). Returns, in the current
# thread, only when that thread is switched back to. With nothing ready, waits for an
# interrupt; with no live thread left, the system is done.
schedule:
    mov eax, dword ptr [k_ready_head]
    test eax, eax
    jz schedule_idle
    # Unlink the head.
    mov edx, dword ptr [eax+TCB_NEXT]
    mov dword ptr [k_ready_head], edx
    test edx, edx
    jnz switch_to
    mov dword ptr [k_ready_tail], edx
    # Falls through into switch_to with EAX = the next thread.

# switch_to: save the current thread's kernel context, resume the thread in EAX.
switch_to:
    # Save callee-saved registers on the current ring-0 stack, and the stack pointer.
    push ebp
    push ebx
    push esi
    push edi
    mov edx, dword ptr [k_current]
    mov dword ptr [edx+TCB_KESP], esp
    # The new thread becomes current; continue on its ring-0 stack.
.Lcurrent:
    mov dword ptr [k_current], eax
    mov dword ptr [eax+TCB_STATE], THREAD_RUNNING
    mov esp, dword ptr [eax+TCB_KESP]
    # Privilege-change stacks of the new thread: ring 0 is the top of its TCB page, ring 2
    # its slot in its process's ring-2 stack segment (SS0 and SS2 never change: every
    # process's LDT has its ring-2 stack segment in the same slot).
    lea ecx, [eax+TCB_SIZE]
    mov dword ptr [TSS_LINEAR+TSS_ESP0], ecx
    mov ecx, dword ptr [eax+TCB_ESP2]
    mov dword ptr [TSS_LINEAR+TSS_ESP2], ecx
    # Another process: load its LDT, and its group's page directory if that differs.
    mov ecx, dword ptr [eax+TCB_PROCESS]
    cmp ecx, dword ptr [k_current_process]
    je .Lswitch_done
    mov dword ptr [k_current_process], ecx
.Lload_ldt:
    lldt word ptr [ecx+PCB_LDT_SEL]
    mov edx, dword ptr [ecx+PCB_CR3]
    # A resident process (CR3 field 0) runs in whichever address space is loaded.
    test edx, edx
    jz .Lswitch_done
    cmp edx, dword ptr [k_current_cr3]
    je .Lswitch_done
    mov dword ptr [k_current_cr3], edx
.Lload_cr3:
    mov cr3, edx
.Lswitch_done:
    # Restore the new thread's callee-saved registers and return into its kernel path.
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret

# Nothing is ready: wait for an interrupt with interrupts enabled, then look again.
schedule_idle:
    cmp dword ptr [k_live_threads], 0
    je all_done
    sti
    hlt
    cli
    jmp schedule

# Every thread has ended: record it and stop.
all_done:
    mov dword ptr [k_status], STATUS_DONE
    jmp halt_forever

# thread_exit: end the thread in EAX (the current one); never returns.
thread_exit:
    mov dword ptr [eax+TCB_STATE], THREAD_DEAD
    dec dword ptr [k_live_threads]
    # Give the thread's stack slots back to its process.
    mov ecx, dword ptr [eax+TCB_PROCESS]
    dec dword ptr [ecx+PCB_THREADS]
    mov edx, dword ptr [eax+TCB_SLOT]
    mov byte ptr [ecx+PCB_SLOTS+edx], 0
    # What waited for it is woken there (timeout.s; the jump keeps its size and every address).
    jmp thread_reap
