# Lavender call library, remote half (issue 8): appended to calllib.s by
# lavsim.kernel.sharing.lav_call_source when the process has a network buffer.
#
# lav_remote: lav_call jumps here for an address structure of another host, with its frame
# (EBP; [EBP+8] the address structure, [EBP+12] nargs, [EBP+16..] the arguments) and EAX = the
# address structure. The stub marshals op, host, gate selector, nargs and the arguments into
# LAV_NET_BUF (in DS) and makes a message call to the local network server's port; the
# network server forwards it and the remote one migrates into the procedure. Returns as
# lav_call: ECX = 0, EAX and EDX the results; or ECX = EAX = an error (E_HOST_UNREACHABLE,
# E_NO_PROCEDURE, E_NET_TIMEOUT: no reply to any attempt, an IPC error). The procedure ran
# exactly once when ECX = 0, at most once otherwise. Keeps EBX ESI EDI EBP.
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
# or nothing to do: already local or not shippable) or an error (E_HOST_UNREACHABLE,
# E_NET_TIMEOUT, E_NO_PROCEDURE...; nothing installed). Keeps EBX ESI EDI EBP.
#
# lav_ship_as(address, name, length): the same, and the shipped copy is registered with this
# host's name server under the name (length 1..NS_NAME_MAX bytes at DS:name) as a resident
# procedure, so a later lav_lookup of that name here finds the local copy. Returns 0; an error
# of shipping (nothing changed); or, shipped but not registered, the name server's error (for
# instance E_EXIST) with the address replaced all the same (the copy is installed and usable).
lav_ship:
    push ebp
    mov ebp, esp
    push ebx
    push esi
    push edi
    xor ecx, ecx
    jmp lav_ship_common
lav_ship_as:
    push ebp
    mov ebp, esp
    push ebx
    push esi
    push edi
    mov ecx, dword ptr [ebp+16]
    cmp ecx, LAV_NS_NAME_MAX
    ja lav_ship_inval
    cld
    mov esi, dword ptr [ebp+12]
    mov edi, LAV_NET_BUF+16
    rep movsb
    mov ecx, dword ptr [ebp+16]
lav_ship_common:
    mov dword ptr [LAV_NET_BUF+12], ecx
    mov eax, dword ptr [ebp+8]
    xor ecx, ecx
    cmp dword ptr [eax+LAV_ADDR_HOST], 0
    je lav_ship_return
    test dword ptr [eax+LAV_ADDR_FLAGS], 1
    jz lav_ship_return
    mov edx, LAV_NET_BUF
    mov dword ptr [edx], LAV_NET_OP_SHIP
    mov ecx, dword ptr [eax+LAV_ADDR_HOST]
    mov dword ptr [edx+4], ecx
    mov ecx, dword ptr [eax+LAV_ADDR_SELECTOR]
    mov dword ptr [edx+8], ecx
    mov edx, dword ptr [LAV_NET_BUF+12]
    add edx, 16
    mov eax, LAV_SYS_CALL
    mov ebx, LAV_NET_PORT
    mov ecx, LAV_NET_BUF
    mov esi, LAV_NET_BUF
    mov edi, 28
    int 0x30
    mov ecx, eax
    test eax, eax
    js lav_ship_return
    mov ecx, dword ptr [LAV_NET_BUF]
    test ecx, ecx
    jnz lav_ship_return
    # The local address structure replaces the remote one.
    cld
    mov esi, LAV_NET_BUF+4
    mov edi, dword ptr [ebp+8]
    mov ecx, 5
    rep movsd
    mov ecx, dword ptr [LAV_NET_BUF+24]
lav_ship_return:
    mov eax, ecx
    pop edi
    pop esi
    pop ebx
    mov esp, ebp
    pop ebp
    ret
lav_ship_inval:
    mov ecx, LAV_E_INVAL
    jmp lav_ship_return

# lav_lookup(name, length, address): cdecl. Resolve a procedure name (length bytes at DS:name,
# at most NS_NAME_MAX) into the 20-byte address structure at DS:address. First this host's
# name server (a message call to port NS_PORT: the caller's group or the resident space);
# on a miss, the local network server, which asks the other hosts' name servers through their
# network servers, in ascending host id, the first that knows the name answering (resident
# procedures only; the address carries that host's id). Returns EAX = 0, or E_NOENT (known
# by no host that answered: one that is down or does not answer within the network server's
# retries is passed over), E_INVAL (name too long) or an IPC error; the address is written
# only on success.
# Keeps EBX ESI EDI EBP.
lav_lookup:
    push ebp
    mov ebp, esp
    push ebx
    push esi
    push edi
    mov ecx, dword ptr [ebp+12]
    cmp ecx, LAV_NS_NAME_MAX
    ja .Llookup_inval
    # A name-server request (op, name length, name, the rest unused) ...
    mov dword ptr [LAV_NET_BUF], LAV_NS_OP_PROC_LOOKUP
    mov dword ptr [LAV_NET_BUF+4], ecx
    cld
    mov esi, dword ptr [ebp+8]
    mov edi, LAV_NET_BUF+8
    rep movsb
    mov eax, LAV_SYS_CALL
    mov ebx, LAV_NS_PORT
    mov ecx, LAV_NET_BUF
    mov edx, LAV_NS_REQ_SIZE
    mov esi, LAV_NET_BUF+64
    mov edi, 4+20
    int 0x30
    test eax, eax
    js .Llookup_network
    cmp dword ptr [LAV_NET_BUF+64], 0
    je .Llookup_found
.Llookup_network:
    # ... and on a miss the same name, as a LOOKUP message, to the network server.
    mov dword ptr [LAV_NET_BUF], LAV_NET_OP_LOOKUP
    mov edx, dword ptr [LAV_NET_BUF+4]
    add edx, 8
    mov eax, LAV_SYS_CALL
    mov ebx, LAV_NET_PORT
    mov ecx, LAV_NET_BUF
    mov esi, LAV_NET_BUF+64
    mov edi, 4+20
    int 0x30
    test eax, eax
    js .Llookup_done
    mov eax, dword ptr [LAV_NET_BUF+64]
    test eax, eax
    jnz .Llookup_done
.Llookup_found:
    cld
    mov esi, LAV_NET_BUF+68
    mov edi, dword ptr [ebp+16]
    mov ecx, 5
    rep movsd
    xor eax, eax
.Llookup_done:
    pop edi
    pop esi
    pop ebx
    mov esp, ebp
    pop ebp
    ret
.Llookup_inval:
    mov eax, LAV_E_INVAL
    jmp .Llookup_done
