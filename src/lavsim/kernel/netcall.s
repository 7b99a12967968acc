# Lavender call library, remote half (issue 8): appended to calllib.s by
# lavsim.kernel.sharing.lav_call_source when the process has a network buffer.
#
# lav_remote: lav_call jumps here for an address structure of another host, with its frame
# (EBP; [EBP+8] the address structure, [EBP+12] nargs, [EBP+16..] the arguments) and EAX = the
# address structure. The stub marshals op, host, gate selector, nargs and the arguments into
# LAV_NET_BUF (in DS) and makes a message call to the local network server's port; the
# network server forwards it and the remote one migrates into the procedure. Returns as
# lav_call: ECX = 0, EAX and EDX the results; or ECX = EAX = an error (E_HOST_UNREACHABLE,
# E_NO_PROCEDURE, an IPC error). Keeps EBX ESI EDI EBP.
lav_remote:
    push ebx
    push esi
    push edi
    mov edx, LAV_NET_BUF
    mov dword ptr [edx], LAV_NET_OP_CALL
    mov ecx, dword ptr [eax+LAV_ADDR_HOST]
    mov dword ptr [edx+4], ecx
    mov ecx, dword ptr [eax+LAV_ADDR_SELECTOR]
    mov dword ptr [edx+8], ecx
    mov ecx, dword ptr [ebp+12]
    cmp ecx, 31
    ja .Lremote_inval
    mov dword ptr [edx+12], ecx
    xor esi, esi
.Lremote_copy:
    cmp esi, ecx
    jae .Lremote_call
    mov edi, dword ptr [ebp+16+esi*4]
    mov dword ptr [edx+16+esi*4], edi
    inc esi
    jmp .Lremote_copy
.Lremote_call:
    # call(port, message, length, reply buffer, reply capacity): both in DS.
    lea edx, [ecx*4+16]
    mov eax, LAV_SYS_CALL
    mov ebx, LAV_NET_PORT
    mov ecx, LAV_NET_BUF
    mov esi, LAV_NET_BUF
    mov edi, 12
    int 0x30
    test eax, eax
    js .Lremote_error
    mov ecx, dword ptr [LAV_NET_BUF]
    mov eax, ecx
    test ecx, ecx
    jnz .Lremote_return
    mov eax, dword ptr [LAV_NET_BUF+4]
    mov edx, dword ptr [LAV_NET_BUF+8]
    jmp .Lremote_return
.Lremote_inval:
    mov eax, LAV_E_INVAL
.Lremote_error:
    mov ecx, eax
.Lremote_return:
    pop edi
    pop esi
    pop ebx
    mov esp, ebp
    pop ebp
    ret

# lav_ship(address): cdecl. For an address structure (in DS) of another host marked
# shippable, ask the local network server to fetch the procedure's code, install it in this
# host's resident space and give back its local address structure, which replaces the
# argument's contents: later lav_calls through it migrate locally. Returns EAX = 0 (shipped,
# or nothing to do: already local or not shippable) or an error. Keeps EBX ESI EDI EBP.
lav_ship:
    push ebp
    mov ebp, esp
    push ebx
    push esi
    push edi
    mov eax, dword ptr [ebp+8]
    xor ecx, ecx
    cmp dword ptr [eax+LAV_ADDR_HOST], 0
    je .Lship_done
    test dword ptr [eax+LAV_ADDR_FLAGS], 1
    jz .Lship_done
    mov edx, LAV_NET_BUF
    mov dword ptr [edx], LAV_NET_OP_SHIP
    mov ecx, dword ptr [eax+LAV_ADDR_HOST]
    mov dword ptr [edx+4], ecx
    mov ecx, dword ptr [eax+LAV_ADDR_SELECTOR]
    mov dword ptr [edx+8], ecx
    mov eax, LAV_SYS_CALL
    mov ebx, LAV_NET_PORT
    mov ecx, LAV_NET_BUF
    mov edx, 12
    mov esi, LAV_NET_BUF
    mov edi, 24
    int 0x30
    mov ecx, eax
    test eax, eax
    js .Lship_done
    mov ecx, dword ptr [LAV_NET_BUF]
    test ecx, ecx
    jnz .Lship_done
    # The local address structure replaces the remote one.
    cld
    mov esi, LAV_NET_BUF+4
    mov edi, dword ptr [ebp+8]
    mov ecx, 5
    rep movsd
    xor ecx, ecx
.Lship_done:
    mov eax, ecx
    pop edi
    pop esi
    pop ebx
    mov esp, ebp
    pop ebp
    ret
