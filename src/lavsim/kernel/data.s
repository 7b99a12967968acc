# Lavender kernel: dispatch tables and kernel variables (the end of the image).
# The boot loader writes the initial values of the variables before the first run.
# A label marked "generated from layout.X" gets its .long lines from the table X of layout.py
# (kernel/image.py): the order of a table is written in one place only.

    .balign 4, 0
# Handler of each vector reaching trap_entry (0..SYSCALL_VECTOR); the system-call vector has
# its own entry and no slot is used for it.
vector_table:  # generated from layout.VECTOR_HANDLERS

# System calls by number.
syscall_table:  # generated from layout.SYSCALLS

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
