# Lavender kernel: waiting for a frame with a timeout (issue 19).
#
# It is the last of the kernel's sources, after data.s (net.s is followed by the IPC code and
# the kernel's variables): adding it moved no routine and no variable that was there before,
# so every figure measured before stays what it was. (On the Pentium the page a routine lies
# in shows in a first call's cycles, through its split instruction TLB, and a variable's
# address in the cycles of every pair that touches it, through the cache banks.)

# net_recv_timed(EBX = queue, ECX = offset, EDX = room, ESI = timeout): net_recv (net.s) waiting
# at most ESI cycles (1..NET_TIMEOUT_MAX): the interface's receive timer of the queue is armed
# when the wait begins; it expires unless a frame comes first (which disarms it) and interrupts
# like a frame. Returns the frame's length; E_NET_TIMEOUT (the time ran out, or a wake-up found
# the queue still empty); E_INVAL (bad queue or timeout, frame longer than the room, which
# drops it); E_FAULT (buffer, frame dropped); E_NET_PERM (not the network server).
sys_net_recv_timed:
    call net_is_server
    jne net_e_perm
    cmp ebx, 1
    ja net_e_inval
    lea eax, [esi-1]
    cmp eax, NET_TIMEOUT_MAX-1
    ja net_e_inval
    # This wait has not armed the timer yet.
    mov dword ptr [k_net_armed+ebx*4], 0
    mov edi, ecx
    mov esi, edx
.Lnrt_look:
    # The queue's next slot: the same instructions as net_recv's, so that a frame waited for
    # costs the same with a timeout as without.
    mov eax, ebx
    imul eax, eax, NET_RING_BYTES
    add eax, dword ptr [k_net_area]
    mov ecx, dword ptr [k_net_tail+ebx*4]
    shl ecx, RX_SLOT_SHIFT
    add eax, ecx
    mov ecx, dword ptr [eax]
    test ecx, ecx
    jnz net_recv_copy
    # Still empty after a wake-up: the time is up.
    cmp dword ptr [k_net_armed+ebx*4], 0
    jne .Lnrt_timed_out
    mov dword ptr [k_net_armed+ebx*4], 1
    mov eax, dword ptr [ebp+FR_ESI]
    lea edx, [ebx*4+NIC_RX0_TIMER]
    out dx, eax
    # Block until the interface interrupts (switch_to keeps EBX ESI EDI).
    mov edx, dword ptr [k_current]
    mov dword ptr [k_net_waiter+ebx*4], edx
    mov dword ptr [edx+TCB_STATE], THREAD_BLOCKED
    call schedule
    jmp .Lnrt_look
.Lnrt_timed_out:
    # Disarm the timer (it has expired, unless something else woke the thread).
    mov dword ptr [k_net_armed+ebx*4], 0
    xor eax, eax
    lea edx, [ebx*4+NIC_RX0_TIMER]
    out dx, eax
    mov eax, E_NET_TIMEOUT
    ret

    .balign 4, 0
k_net_armed:      .long 0, 0   # per queue: 1 once net_recv_timed has armed the timer
# Written by the boot loader: the PCB it designated as the network server, 0: none (net.s's
# net_attach). It lives here so that net.s kept its size when net_syscall_table grew by an
# entry (net_recv_timed).
k_net_designated: .long 0
