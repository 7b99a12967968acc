# Lavender kernel: dispatch tables and kernel variables (the end of the image).
# The boot loader writes the initial values of the variables before the first run.

    .balign 4, 0
# Handler of each vector reaching trap_entry (0..SYSCALL_VECTOR); the system-call vector has
# its own entry and no slot is used for it.
vector_table:
    .long exception_handler, exception_handler, exception_handler, exception_handler
    .long exception_handler, exception_handler, exception_handler, exception_handler
    .long exception_handler, exception_handler, exception_handler, exception_handler
    .long exception_handler, exception_handler, exception_handler, exception_handler
    .long exception_handler, exception_handler, exception_handler, exception_handler
    .long unexpected_vector, unexpected_vector, unexpected_vector, unexpected_vector
    .long unexpected_vector, unexpected_vector, unexpected_vector, unexpected_vector
    .long unexpected_vector, unexpected_vector, unexpected_vector, unexpected_vector
    .long timer_handler, unexpected_vector, unexpected_vector, nic_handler
    .long unexpected_vector, unexpected_vector, unexpected_vector, unexpected_vector
    .long unexpected_vector, unexpected_vector, unexpected_vector, unexpected_vector
    .long unexpected_vector, unexpected_vector, unexpected_vector, unexpected_vector
    .long unexpected_vector

# System calls by number (layout.SYSCALL_NAMES).
syscall_table:
    .long sys_exit, sys_yield, sys_thread_id, sys_process_id, sys_console_write
    .long sys_create_thread
    .long sys_nosys, sys_nosys, sys_nosys, sys_nosys, sys_nosys                # 6..10
    .long sys_nosys, sys_nosys, sys_nosys, sys_nosys, sys_nosys                # 11..15
    # 16..31: ports and message IPC (ipc.s)
    .long sys_port_create, sys_port_destroy, sys_send, sys_receive, sys_call   # 16..20
    .long sys_reply, sys_reply_wait, sys_call_handoff, sys_reply_wait_handoff  # 21..24
    .long sys_nosys, sys_nosys, sys_nosys, sys_nosys, sys_nosys, sys_nosys     # 25..30
    .long sys_nosys                                                            # 31

# Kernel state.
k_status:           .long 0   # STATUS_*: booting, running, done, panic
k_timer_period:     .long 0   # cycles between timer ticks
k_current:          .long 0   # TCB of the running thread
k_current_process:  .long 0   # PCB whose LDT is loaded
k_current_cr3:      .long 0   # page directory loaded in CR3
k_ready_head:       .long 0   # ready queue
k_ready_tail:       .long 0
k_live_threads:     .long 0   # threads not yet dead
k_next_tid:         .long 0   # next free TCB
# Panic record: the kernel's own fault.
k_panic_vector:     .long 0
k_panic_error:      .long 0
k_panic_eip:        .long 0
k_panic_cs:         .long 0
k_panic_cr2:        .long 0
k_panic_thread:     .long 0
k_image_end:
