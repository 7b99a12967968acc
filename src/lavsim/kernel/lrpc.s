# Lavender kernel: LRPC-style calls (issue 14), after Bershad et al.'s lightweight RPC.
#
# A binding (LB_* entry of the table at LRPC_BINDINGS_LINEAR, made by the boot loader:
# fastipc.bind_lrpc) joins a client process to a procedure of a server process: the entry
# point, an execution stack in the server (E-stack) and an argument stack (A-stack), a data
# segment both processes have imported. The client's stub copies the arguments once onto the
# A-stack and traps (lrpc_call); the kernel checks that the caller's process holds the binding
# and that no call is in progress through it, keeps the caller's return state in the binding
# (the linkage), and runs the caller's own thread in the server: the server's LDT (and page
# directory, when in another group), its code at the entry, the E-stack, the A-stack in ES.
# No scheduler runs, no message is buffered, no thread is switched. The procedure traps back
# (lrpc_return) with its result, and the kernel restores the linkage and the client's domain.
#
# During a call the thread's TCB_PROCESS is the server (so a switch away and back reloads the
# server's domain) and TCB_LRPC_HOME its own process; exit and faults give it back first.
# This file lies after ipc.s and threads.s, so the older IPC paths keep their addresses.

# lrpc_call(EBX = binding, ECX = argument bytes on the A-stack, passed on in ECX): call the
# binding's procedure on the caller's thread. Returns (from lrpc_return) EAX = the procedure's
# result; the other general registers are the procedure's, except EBP. Errors, nothing done:
# E_INVAL (no such binding), E_PERM (the caller's process does not hold it), E_AGAIN (a call
# through it is in progress, or the caller is inside an LRPC call).
sys_lrpc_call:
    cmp ebx, LRPC_MAX_BINDINGS
    jae .Llc_inval
    shl ebx, LB_SHIFT
    add ebx, LRPC_BINDINGS_LINEAR
    mov edx, dword ptr [k_current]
    mov eax, dword ptr [edx+TCB_PROCESS]
    cmp eax, dword ptr [ebx+LB_CLIENT]
    jne .Llc_perm
    cmp dword ptr [edx+TCB_LRPC_BINDING], 0
    jne .Llc_again
    cmp dword ptr [ebx+LB_CALLER], 0
    jne .Llc_again
    # The linkage: the caller's return state, kept in the binding.
    mov dword ptr [ebx+LB_CALLER], edx
    mov dword ptr [edx+TCB_LRPC_BINDING], ebx
    mov dword ptr [edx+TCB_LRPC_HOME], eax
    mov eax, dword ptr [ebp+FR_EIP]
    mov dword ptr [ebx+LB_EIP], eax
    mov eax, dword ptr [ebp+FR_CS]
    mov dword ptr [ebx+LB_CS], eax
    mov eax, dword ptr [ebp+FR_EFLAGS]
    mov dword ptr [ebx+LB_EFLAGS], eax
    mov eax, dword ptr [ebp+FR_ESP]
    mov dword ptr [ebx+LB_ESP], eax
    mov eax, dword ptr [ebp+FR_SS]
    mov dword ptr [ebx+LB_SS], eax
    mov eax, dword ptr [ebp+FR_DS]
    mov dword ptr [ebx+LB_DS], eax
    mov eax, dword ptr [ebp+FR_ES]
    mov dword ptr [ebx+LB_ES], eax
    mov eax, dword ptr [ebp+FR_FS]
    mov dword ptr [ebx+LB_FS], eax
    mov eax, dword ptr [ebp+FR_GS]
    mov dword ptr [ebx+LB_GS], eax
    mov eax, dword ptr [ebp+FR_EBP]
    mov dword ptr [ebx+LB_EBP], eax
    # Into the server: its entry on the binding's E-stack, the A-stack in ES.
    mov eax, dword ptr [ebx+LB_ENTRY]
    mov dword ptr [ebp+FR_EIP], eax
    mov dword ptr [ebp+FR_CS], USER_CS
    mov eax, dword ptr [ebx+LB_ESTACK]
    mov dword ptr [ebp+FR_ESP], eax
    mov dword ptr [ebp+FR_SS], USER_DS
    mov dword ptr [ebp+FR_DS], USER_DS
    mov eax, dword ptr [ebx+LB_ASTACK]
    mov dword ptr [ebp+FR_ES], eax
    xor eax, eax
    mov dword ptr [ebp+FR_FS], eax
    mov dword ptr [ebp+FR_GS], eax
    # The server's domain.
    mov ecx, dword ptr [ebx+LB_SERVER]
    mov dword ptr [edx+TCB_PROCESS], ecx
    call lrpc_domain
    mov eax, dword ptr [ebp+FR_ECX]
    ret
.Llc_inval:
    mov eax, E_INVAL
    ret
.Llc_perm:
    mov eax, E_PERM
    ret
.Llc_again:
    mov eax, E_AGAIN
    ret

# lrpc_return(EBX = result): end the LRPC call the caller's thread is in: back to the caller's
# return state and domain, with EAX = the result. E_INVAL outside a call.
sys_lrpc_return:
    mov edx, dword ptr [k_current]
    mov ecx, dword ptr [edx+TCB_LRPC_BINDING]
    test ecx, ecx
    jz .Llr_inval
    mov eax, dword ptr [ecx+LB_EIP]
    mov dword ptr [ebp+FR_EIP], eax
    mov eax, dword ptr [ecx+LB_CS]
    mov dword ptr [ebp+FR_CS], eax
    mov eax, dword ptr [ecx+LB_EFLAGS]
    mov dword ptr [ebp+FR_EFLAGS], eax
    mov eax, dword ptr [ecx+LB_ESP]
    mov dword ptr [ebp+FR_ESP], eax
    mov eax, dword ptr [ecx+LB_SS]
    mov dword ptr [ebp+FR_SS], eax
    mov eax, dword ptr [ecx+LB_DS]
    mov dword ptr [ebp+FR_DS], eax
    mov eax, dword ptr [ecx+LB_ES]
    mov dword ptr [ebp+FR_ES], eax
    mov eax, dword ptr [ecx+LB_FS]
    mov dword ptr [ebp+FR_FS], eax
    mov eax, dword ptr [ecx+LB_GS]
    mov dword ptr [ebp+FR_GS], eax
    mov eax, dword ptr [ecx+LB_EBP]
    mov dword ptr [ebp+FR_EBP], eax
    call lrpc_leave
    mov eax, dword ptr [ebp+FR_EBX]
    ret
.Llr_inval:
    mov eax, E_INVAL
    ret

# lrpc_leave: the current thread (EDX) leaves its LRPC call: the binding is free again and the
# thread back in its own process and domain. Changes ECX EDX.
lrpc_leave:
    mov ecx, dword ptr [edx+TCB_LRPC_BINDING]
    mov dword ptr [ecx+LB_CALLER], 0
    mov dword ptr [edx+TCB_LRPC_BINDING], 0
    mov ecx, dword ptr [edx+TCB_LRPC_HOME]
    mov dword ptr [edx+TCB_PROCESS], ecx
    mov dword ptr [edx+TCB_LRPC_HOME], 0

# lrpc_domain: load the domain of the process ECX (its LDT, and its page directory when it
# has one and another is loaded), as switch_to does for another thread. Changes EDX.
lrpc_domain:
    cmp ecx, dword ptr [k_current_process]
    je .Ldm_done
    mov dword ptr [k_current_process], ecx
.Ldm_ldt:
    lldt word ptr [ecx+PCB_LDT_SEL]
    mov edx, dword ptr [ecx+PCB_CR3]
    test edx, edx
    jz .Ldm_done
    cmp edx, dword ptr [k_current_cr3]
    je .Ldm_done
    mov dword ptr [k_current_cr3], edx
.Ldm_cr3:
    mov cr3, edx
.Ldm_done:
    ret

# exit(EBX = exit code): end the calling thread; inside an LRPC call, give it back to its own
# process first (its stack slots are released there).
sys_exit:
    mov edx, dword ptr [k_current]
    cmp dword ptr [edx+TCB_LRPC_BINDING], 0
    je exit_current
    call lrpc_leave
    jmp exit_current

# lrpc_exception: an exception; a thread faulting inside an LRPC call is killed as a thread of
# its own process (the fault's owner, read from CS and the loaded LDT, is still the server).
lrpc_exception:
    mov edx, dword ptr [k_current]
    test byte ptr [ebp+FR_CS], 3
    jz exception_handler
    cmp dword ptr [edx+TCB_LRPC_BINDING], 0
    je exception_handler
    # Keep the server's LDT loaded for exception_handler's owner lookup: only the fields change.
    mov ecx, dword ptr [edx+TCB_LRPC_BINDING]
    mov dword ptr [ecx+LB_CALLER], 0
    mov dword ptr [edx+TCB_LRPC_BINDING], 0
    mov ecx, dword ptr [edx+TCB_LRPC_HOME]
    mov dword ptr [edx+TCB_PROCESS], ecx
    mov dword ptr [edx+TCB_LRPC_HOME], 0
    jmp exception_handler
