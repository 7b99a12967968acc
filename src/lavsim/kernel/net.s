# Lavender kernel: the network interface driver and procedure shipping (issue 8).
#
# The interface (lavsim.network) receives frames by DMA into two rings in kernel memory
# (queue 0: requests, queue 1: replies; k_net_area, set up by the boot loader) and raises
# NIC_IRQ. Only the network server process may send and receive frames, install shipped
# procedures and fetch shippable ones: the process the boot loader designated
# (k_net_designated), once it has called net_attach. System calls
# NET_SYSCALL_FIRST.. are dispatched from syscall_entry through net_syscall_table. The wait with
# a timeout (net_recv_timed) is in netwait.s, at the end of the kernel's code.

# --- the interface's interrupt ----------------------------------------------------------------
isr_nic:
    push 0
    push NIC_VECTOR
    jmp trap_entry

# nic_handler: acknowledge the controller and the interface, wake the thread waiting on each
# queue that received a frame; a wake-up that interrupted a user thread ends its time slice,
# so the network server runs next.
nic_handler:
    mov al, PIC_EOI
    out PIC_COMMAND, al
    # STATUS: one bit per queue that received; writing the bits back clears them.
    mov dx, NIC_STATUS
    in eax, dx
    out dx, eax
    mov ebx, eax
    xor esi, esi
    test ebx, 1
    jz .Lnic_queue1
    mov eax, dword ptr [k_net_waiter]
    test eax, eax
    jz .Lnic_queue1
    mov dword ptr [k_net_waiter], 0
    call ready_enqueue
    inc esi
.Lnic_queue1:
    test ebx, 2
    jz .Lnic_woken
    mov eax, dword ptr [k_net_waiter+4]
    test eax, eax
    jz .Lnic_woken
    mov dword ptr [k_net_waiter+4], 0
    call ready_enqueue
    inc esi
.Lnic_woken:
    test esi, esi
    jz .Lnic_return
    test byte ptr [ebp+FR_CS], 3
    jnz preempt
.Lnic_return:
    ret

# --- helpers -------------------------------------------------------------------------------------
# net_is_server: ZF = 1 when the calling thread belongs to the network server. Changes EAX.
net_is_server:
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_PROCESS]
    cmp eax, dword ptr [k_net_server]
    ret

# net_user_buffer: may the caller read and write the ECX bytes at EBX of its DS? CF = 0 and
# DX = the selector (its RPL raised to the caller's CPL), or CF = 1. Changes EAX EDX.
net_user_buffer:
    mov edx, dword ptr [ebp+FR_DS]
    mov eax, dword ptr [ebp+FR_CS]
    arpl dx, ax
    verw dx
    jnz .Lnub_bad
    # Not expand-down (its valid offsets lie above the limit) ...
    lar eax, edx
    jnz .Lnub_bad
    and eax, 0x0C00
    cmp eax, 0x0400
    je .Lnub_bad
    # ... and offset + length - 1 <= limit, without wrapping.
    lsl eax, edx
    jnz .Lnub_bad
    test ecx, ecx
    jz .Lnub_ok
    push ebx
    add ebx, ecx
    jc .Lnub_bad_pop
    dec ebx
    cmp ebx, eax
    pop ebx
    ja .Lnub_bad
.Lnub_ok:
    clc
    ret
.Lnub_bad_pop:
    pop ebx
.Lnub_bad:
    stc
    ret

# --- system calls ------------------------------------------------------------------------------
# net_attach(): the caller's process becomes the network server: empty both receive rings,
# give them to the interface, unmask its interrupt line. Returns this host's id; E_NOSYS on a
# host without a network interface (no rings: k_net_area = 0); E_NET_PERM when the caller is
# not the process the boot loader designated (k_net_designated; none: nobody may), or the
# network server is attached already. The role is never taken first come, first served.
sys_net_attach:
    cmp dword ptr [k_net_area], 0
    je .Lna_nosys
    mov eax, dword ptr [k_current]
    mov eax, dword ptr [eax+TCB_PROCESS]
    cmp eax, dword ptr [k_net_designated]
    jne .Lna_taken
    cmp dword ptr [k_net_server], 0
    jne .Lna_taken
    mov dword ptr [k_net_server], eax
    # Every slot of both rings belongs to the interface (length 0).
    mov edi, dword ptr [k_net_area]
    mov ecx, NET_RX_SLOTS_ALL
.Lna_clear:
    mov dword ptr [edi], 0
    add edi, RX_SLOT_SIZE
    dec ecx
    jnz .Lna_clear
    mov dword ptr [k_net_tail], 0
    mov dword ptr [k_net_tail+4], 0
    # The rings' physical addresses, then the slot count (which resets the interface's side).
    mov eax, dword ptr [k_net_area]
    sub eax, KERNEL_BASE
    mov dx, NIC_RX0_RING
    out dx, eax
    add eax, NET_RING_BYTES
    mov dx, NIC_RX1_RING
    out dx, eax
    mov eax, NET_RX_SLOTS
    mov dx, NIC_RX_SLOTS
    out dx, eax
    # Unmask the interface's line at the interrupt controller.
    in al, PIC_DATA
    and al, NIC_IRQ_UNMASK
    out PIC_DATA, al
    mov dx, NIC_ID
    in eax, dx
    ret
.Lna_taken:
    mov eax, E_NET_PERM
    ret
.Lna_nosys:
    mov eax, E_NOSYS
    ret

# net_send(EBX = offset, ECX = length) of a frame in the caller's DS: copy it to the transmit
# buffer and transmit. Returns 0, E_HOST_UNREACHABLE (no such host, or it is down), E_INVAL
# (length), E_FAULT (buffer) or E_NET_PERM (not the network server).
sys_net_send:
    call net_is_server
    jne net_e_perm
    cmp ecx, NET_FRAME_HEADER
    jb net_e_inval
    cmp ecx, NET_FRAME_MAX
    ja net_e_inval
    call net_user_buffer
    jc net_e_fault
    # Copy in: DS = the caller's segment for the copy, ES:EDI = the transmit buffer.
    cld
    mov esi, ebx
    mov edi, dword ptr [k_net_area]
    add edi, NET_TX_OFFSET
    mov ebx, ecx
    mov ds, dx
    shr ecx, 2
    rep movsd
    mov ecx, ebx
    and ecx, 3
    rep movsb
    mov ax, KERNEL_DS
    mov ds, ax
    # Transmit: the buffer's physical address, then the length.
    mov eax, dword ptr [k_net_area]
    add eax, NET_TX_OFFSET
    sub eax, KERNEL_BASE
    mov dx, NIC_TX_ADDR
    out dx, eax
    mov eax, ebx
    mov dx, NIC_TX_LEN
    out dx, eax
    mov dx, NIC_TX_STATUS
    in eax, dx
    test eax, eax
    jnz .Lns_failed
    ret
.Lns_failed:
    cmp eax, 1
    jne net_e_inval
    mov eax, E_HOST_UNREACHABLE
    ret

# Common error exits of the network system calls.
net_e_perm:
    mov eax, E_NET_PERM
    ret
net_e_inval:
    mov eax, E_INVAL
    ret
net_e_fault:
    mov eax, E_FAULT
    ret

# net_recv(EBX = queue, ECX = offset, EDX = room) : wait for the next frame of the queue and
# copy it to the caller's DS. Returns its length; E_INVAL (frame longer than the room, or bad
# queue) or E_FAULT (buffer) drop the frame; E_NET_PERM (not the network server). The same
# with a timeout: net_recv_timed (netwait.s).
sys_net_recv:
    call net_is_server
    jne net_e_perm
    cmp ebx, 1
    ja net_e_inval
    mov edi, ecx
    mov esi, edx
.Lnr_look:
    # The queue's ring, and the slot the driver takes next.
    mov eax, ebx
    imul eax, eax, NET_RING_BYTES
    add eax, dword ptr [k_net_area]
    mov ecx, dword ptr [k_net_tail+ebx*4]
    shl ecx, RX_SLOT_SHIFT
    add eax, ecx
    mov ecx, dword ptr [eax]
    test ecx, ecx
    jnz net_recv_copy
    # Empty: block until the interface interrupts (switch_to keeps EBX ESI EDI).
    mov edx, dword ptr [k_current]
    mov dword ptr [k_net_waiter+ebx*4], edx
    mov dword ptr [edx+TCB_STATE], THREAD_BLOCKED
    call schedule
    jmp .Lnr_look
# net_recv_copy: EAX = the slot, ECX = its frame's length, EBX = the queue, EDI = the caller's
# offset, ESI = the room (also entered from net_recv_timed, netwait.s).
net_recv_copy:
    push ebx
    push eax
    cmp ecx, esi
    ja .Lnr_drop
    mov ebx, edi
    call net_user_buffer
    jc .Lnr_fault
    # Copy out: DS:ESI = the slot's frame, ES = the caller's segment.
    mov esi, dword ptr [esp]
    add esi, 4
    mov edi, ebx
    mov ebx, ecx
    mov es, dx
    cld
    shr ecx, 2
    rep movsd
    mov ecx, ebx
    and ecx, 3
    rep movsb
    mov ax, KERNEL_DS
    mov es, ax
    mov eax, ebx
    jmp .Lnr_release
.Lnr_drop:
    mov eax, E_INVAL
    jmp .Lnr_release
.Lnr_fault:
    mov eax, E_FAULT
.Lnr_release:
    # Give the slot back to the interface and move to the next one.
    pop edx
    pop ebx
    mov dword ptr [edx], 0
    mov ecx, dword ptr [k_net_tail+ebx*4]
    inc ecx
    and ecx, NET_RX_SLOTS_MASK
    mov dword ptr [k_net_tail+ebx*4], ecx
    ret

# net_install(EBX = offset, ECX = length of a procedure's code in the caller's DS, EDX = entry
# offset, ESI = parameter count): place the code in the shipping area of the resident space and
# install a code segment (DPL 2, byte-exact limit, AVL = shippable) and a DPL 3 call gate in
# the GDT. Returns the gate's selector (RPL 3); E_NOMEM (no room or no GDT slot), E_INVAL,
# E_FAULT, E_NET_PERM.
sys_net_install:
    call net_is_server
    jne net_e_perm
    test ecx, ecx
    jz net_e_inval
    cmp ecx, NET_FRAME_MAX
    ja net_e_inval
    cmp edx, ecx
    jae net_e_inval
    cmp esi, 31
    ja net_e_inval
    mov eax, dword ptr [k_ship_slot]
    add eax, 2
    cmp eax, dword ptr [k_ship_slot_end]
    ja .Lni_nomem
    mov eax, dword ptr [k_ship_next]
    add eax, ecx
    cmp eax, dword ptr [k_ship_end]
    ja .Lni_nomem
    push edx
    push esi
    call net_user_buffer
    jc .Lni_fault
    # Copy the code through the kernel window: its resident mapping is read-only (CR0.WP).
    mov edi, dword ptr [k_ship_next]
    push edi
    push ecx
    mov esi, ebx
    mov ds, dx
    cld
    rep movsb
    mov ax, KERNEL_DS
    mov ds, ax
    pop ecx
    pop edi
    lea eax, [edi+ecx+15]
    and eax, 0xFFFFFFF0
    mov dword ptr [k_ship_next], eax
    # The code segment: base = the resident address of the copy, limit = length - 1.
    add edi, dword ptr [k_ship_delta]
    dec ecx
    mov ebx, dword ptr [k_ship_slot]
    lea esi, [GDT_LINEAR+ebx*8]
    mov eax, edi
    shl eax, 16
    mov ax, cx
    mov dword ptr [esi], eax
    # High dword: base 31..24, flags D and AVL (shippable), limit 19..16, P DPL=2 S code
    # execute/read (0xDA), base 23..16.
    mov eax, edi
    and eax, 0xFF000000
    mov edx, edi
    shr edx, 16
    and edx, 0xFF
    or eax, edx
    or eax, 0x0050DA00
    and ecx, 0x000F0000
    or eax, ecx
    mov dword ptr [esi+4], eax
    # The gate: the code segment (RPL 0), the entry, the parameter count; P DPL=3 (0xEC).
    pop eax
    pop edx
    mov ecx, ebx
    shl ecx, 19
    mov cx, dx
    mov dword ptr [esi+8], ecx
    and edx, 0xFFFF0000
    or edx, eax
    or edx, 0xEC00
    mov dword ptr [esi+12], edx
    # Both slots belong to the network server (fault attribution, migrate.s).
    mov eax, dword ptr [k_net_server]
    mov eax, dword ptr [eax+PCB_PID]
    mov byte ptr [GDT_OWNER_LINEAR+ebx], al
    mov byte ptr [GDT_OWNER_LINEAR+ebx+1], al
    add dword ptr [k_ship_slot], 2
    lea eax, [ebx*8+11]
    ret
.Lni_fault:
    add esp, 8
    mov eax, E_FAULT
    ret
.Lni_nomem:
    mov eax, E_NOMEM
    ret

# net_fetch(EBX = gate selector, ECX = offset, EDX = room): copy a shippable procedure to the
# caller's DS as entry offset, parameter count, then the code segment's bytes. The selector
# must name a present DPL 3 call gate of the GDT's export range whose code segment is present,
# byte granular and marked shippable (AVL). Returns the code's length; E_NO_PROCEDURE,
# E_INVAL (no room), E_FAULT, E_NET_PERM.
sys_net_fetch:
    call net_is_server
    jne net_e_perm
    mov esi, edx
    mov edi, ecx
    test ebx, 4
    jnz .Lnf_none
    shr ebx, 3
    cmp ebx, GDT_EXPORT_FIRST
    jb .Lnf_none
    cmp ebx, GDT_ENTRIES
    jae .Lnf_none
    mov eax, dword ptr [GDT_LINEAR+ebx*8+4]
    mov ecx, eax
    and ecx, 0xFF00
    cmp ecx, 0xEC00
    jne .Lnf_none
    # Entry offset and parameter count from the gate.
    mov ecx, eax
    and ecx, 0x1F
    mov dword ptr [k_nf_params], ecx
    and eax, 0xFFFF0000
    movzx ecx, word ptr [GDT_LINEAR+ebx*8]
    or eax, ecx
    mov dword ptr [k_nf_entry], eax
    # The gate's code segment, in the GDT's export range.
    movzx ebx, word ptr [GDT_LINEAR+ebx*8+2]
    test ebx, 4
    jnz .Lnf_none
    shr ebx, 3
    cmp ebx, GDT_EXPORT_FIRST
    jb .Lnf_none
    cmp ebx, GDT_ENTRIES
    jae .Lnf_none
    mov eax, dword ptr [GDT_LINEAR+ebx*8+4]
    # Present, code, AVL (shippable), G = 0.
    mov ecx, eax
    and ecx, 0x00909800
    cmp ecx, 0x00109800
    jne .Lnf_none
    # Base and length.
    mov ecx, eax
    and ecx, 0xFF000000
    mov edx, eax
    and edx, 0xFF
    shl edx, 16
    or ecx, edx
    movzx edx, word ptr [GDT_LINEAR+ebx*8+2]
    or ecx, edx
    mov dword ptr [k_nf_base], ecx
    and eax, 0x000F0000
    movzx edx, word ptr [GDT_LINEAR+ebx*8]
    or eax, edx
    inc eax
    mov dword ptr [k_nf_length], eax
    # Room for the two header dwords and the code.
    lea ecx, [eax+8]
    cmp ecx, esi
    ja net_e_inval
    mov ebx, edi
    call net_user_buffer
    jc net_e_fault
    # Copy out: ES = the caller's segment.
    mov es, dx
    mov edi, ebx
    cld
    mov eax, dword ptr [k_nf_entry]
    stosd
    mov eax, dword ptr [k_nf_params]
    stosd
    mov esi, dword ptr [k_nf_base]
    mov ecx, dword ptr [k_nf_length]
    rep movsb
    mov ax, KERNEL_DS
    mov es, ax
    mov eax, dword ptr [k_nf_length]
    ret
.Lnf_none:
    mov eax, E_NO_PROCEDURE
    ret

# --- tables and state ----------------------------------------------------------------------------
    .balign 4, 0
# System calls NET_SYSCALL_FIRST .. NET_SYSCALL_FIRST + NET_SYSCALL_COUNT - 1.
net_syscall_table:  # generated from layout.NET_SYSCALLS

# Written by the boot loader (lavsim.cluster) before the first run (also k_net_designated, in
# netwait.s).
k_net_area:       .long 0      # kernel address of ring 0; ring 1 and the transmit buffer follow
k_net_server:     .long 0      # PCB of the network server, 0 before net_attach
k_net_tail:       .long 0, 0   # per queue: the slot the driver takes next
k_net_waiter:     .long 0, 0   # per queue: the TCB blocked in net_recv, 0 for none
k_ship_next:      .long 0      # kernel-window address of the next free byte of the shipping area
k_ship_end:       .long 0      # its end
k_ship_delta:     .long 0      # resident address - kernel-window address of the shipping area
k_ship_slot:      .long 0      # next free GDT slot for shipped procedures
k_ship_slot_end:  .long 0      # end of those slots
# net_fetch's scratch (the kernel is not preemptible).
k_nf_entry:       .long 0
k_nf_params:      .long 0
k_nf_base:        .long 0
k_nf_length:      .long 0
