# Lavender call library: lav_call, linked into a user process (appended to its source by
# lavsim.kernel.sharing.lav_call_source, which defines the LAV_* constants in front of it).
#
# lav_call(address, nargs, arg1 .. argN), cdecl: the caller pushes argN .. arg1, nargs and the
# offset (in DS) of a 20-byte address structure, calls lav_call and drops the 4*(nargs+2)
# bytes afterwards. The address structure says where the procedure lives: host (0 = this
# host), group (LAV_GROUP_RESIDENT = the resident space), the call gate's selector, the entry
# offset (the gate decides the entry; the field is informational) and flags.
#
# Local (this host, and the caller's own group or the resident space): one far CALL through
# the gate. The thread migrates into the procedure at CPL 2 on its ring-2 stack, the gate
# copies its parameter count of doublewords (which must be nargs: lav_call does not check,
# lav_bind in calllib_bind.s does, once per call site), and the procedure's RETF 4*nargs comes
# straight back here. No kernel entry, no address-space switch.
# Remote (another host, or another group of this host): returns LAV_E_UNREACHABLE (the
# message stub toward another host is issue 8's).
#
# Returns: ECX = 0 and EAX, EDX = the procedure's results; or ECX = EAX = LAV_E_UNREACHABLE.
# Keeps EBX ESI EDI EBP and the segment registers (the procedure must keep them too).
lav_call:
    push ebp
    mov ebp, esp
    # The address structure: [EBP+8]; nargs: [EBP+12]; arg k: [EBP+12+4k].
    mov eax, dword ptr [ebp+8]
    cmp dword ptr [eax+LAV_ADDR_HOST], 0
    # Another host: the message stub (netcall.s, or a stub answering LAV_E_UNREACHABLE).
    jne lav_remote
    mov edx, dword ptr [eax+LAV_ADDR_GROUP]
    cmp edx, LAV_GROUP_RESIDENT
    je .Llav_local
    cmp edx, LAV_GROUP
    jne .Llav_unreachable
.Llav_local:
    # A far pointer (offset, then selector) to the gate, just below the frame: [EBP-8].
    push dword ptr [eax+LAV_ADDR_SELECTOR]
    push dword ptr [eax+LAV_ADDR_OFFSET]
    # Copy the arguments below it, argN first, so that arg1 is on top for the gate to copy.
    mov ecx, dword ptr [ebp+12]
    test ecx, ecx
    jz .Llav_call
.Llav_copy:
    push dword ptr [ebp+12+ecx*4]
    dec ecx
    jnz .Llav_copy
.Llav_call:
    # Migrate: through the gate into the procedure, and back by its RETF.
    call fword ptr [ebp-8]
    xor ecx, ecx
    # RETF imm16 dropped the copied arguments; the frame pointer restores ESP in any case.
    mov esp, ebp
    pop ebp
    ret
.Llav_unreachable:
    mov eax, LAV_E_UNREACHABLE
    mov ecx, eax
    mov esp, ebp
    pop ebp
    ret
lav_call_end:
