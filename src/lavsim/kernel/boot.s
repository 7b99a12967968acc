# Lavender kernel: boot entry.
#
# The boot loader (lavsim.kernel.system) has built the GDT, IDT, TSS, page tables, process
# control blocks, LDTs and the first threads, turned paging on (CR0.PG, CR0.WP, CR4.PGE) and
# entered here at CPL 0 with flat kernel segments and ESP on the ring-0 stack of TCB 0 (the
# boot pseudo-thread, which never runs again once the first thread is dispatched).
#
# This file comes first in the image, so kernel_start is at KERNEL_BASE.

kernel_start:
    # Load the task register: the TSS holds SS0:ESP0 and SS2:ESP2 for privilege changes.
    mov ax, TSS_SEL
    ltr ax
    # Interrupt controller: edge triggered, single, ICW4 follows; vectors from
    # PIC_BASE_VECTOR; 8086 mode; only the timer line (IRQ 0) unmasked.
    mov al, 0x13
    out PIC_COMMAND, al
    mov al, PIC_BASE_VECTOR
    out PIC_DATA, al
    mov al, 0x01
    out PIC_DATA, al
    mov al, 0xFE
    out PIC_DATA, al
    # Interval timer: one tick (IRQ 0) every k_timer_period cycles, set by the boot loader.
    mov eax, dword ptr [k_timer_period]
    out TIMER_PERIOD_PORT, eax
    mov dword ptr [k_status], STATUS_RUNNING
    # Dispatch the first ready thread; the boot stack is abandoned.
    jmp schedule
