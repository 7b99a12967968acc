# Lavender name server (issue 5): a user process of the resident space serving port NS_PORT.
#
# Its data segment (layout NS_*): the request/reply buffer at NS_BUF, a few variables, and a
# table of NS_ENTRIES entries at NS_TABLE. An entry is a stored request: kind (port or
# procedure) in place of the operation, the name, the value (port number or call gate
# selector), offset, group, host, flags, and the registering pid at NS_ENTRY_OWNER.
#
# Every request is one message of NS_REQ_SIZE bytes; the kernel tells the server who sent it
# (pid, group). Port names come from the kernel itself (pid 0) on port_create/port_destroy,
# as plain sends that get no reply; the other requests are calls and get a reply: a status,
# then the port number or the 20-byte address structure.

main:
    # Wait for the first request.
    mov eax, SYS_RECEIVE
    mov ebx, NS_PORT
    mov ecx, NS_BUF
    mov edx, NS_BUF_SIZE
    xor esi, esi
    int 0x30
serve:
    # EAX = the request's length (or an error), EBX = the reply token (0: no reply wanted),
    # ECX = the sender's pid, EDX = the sender's group (0: resident space or kernel).
    test eax, eax
    js receive_again
    mov ebp, ebx
    mov dword ptr [NS_SENDER_PID], ecx
    test edx, edx
    jnz .Lsv_group
    mov edx, ADDR_GROUP_RESIDENT
.Lsv_group:
    mov dword ptr [NS_SENDER_GROUP], edx
    inc dword ptr [NS_SERVED]
    # A well-formed request: the right size, a name that fits.
    cmp eax, NS_REQ_SIZE
    jne refuse_proto
    cmp dword ptr [NS_BUF+NS_REQ_NAME_LEN], NS_NAME_MAX
    ja refuse_proto
    # Dispatch on the operation.
    mov eax, dword ptr [NS_BUF+NS_REQ_OP]
    cmp eax, NS_OP_PORT_REGISTER
    je op_port_register
    cmp eax, NS_OP_PORT_UNREGISTER
    je op_port_unregister
    cmp eax, NS_OP_PORT_LOOKUP
    je op_port_lookup
    cmp eax, NS_OP_PROC_REGISTER
    je op_proc_register
    cmp eax, NS_OP_PROC_LOOKUP
    je op_proc_lookup
    cmp eax, NS_OP_PROC_UNREGISTER
    je op_proc_unregister
    jmp refuse_proto

# A reply could not be sent, or the receive failed: receive again (give up if the port is
# gone).
receive_again:
    mov eax, SYS_RECEIVE
    mov ebx, NS_PORT
    mov ecx, NS_BUF
    mov edx, NS_BUF_SIZE
    xor esi, esi
    int 0x30
    cmp eax, E_BADPORT
    jne serve
    mov eax, SYS_EXIT
    mov ebx, 1
    int 0x30

# --- answers ------------------------------------------------------------------------------------

refuse_proto:
    mov eax, E_PROTO
    jmp refuse
refuse_exists:
    mov eax, E_EXIST
    jmp refuse
refuse_denied:
    mov eax, E_PERM
    jmp refuse
refuse_full:
    mov eax, E_NOSPC
refuse:
    inc dword ptr [NS_REFUSED]
    jmp answer_status
not_found:
    mov eax, E_NOENT
    jmp answer_status
answer_ok:
    xor eax, eax
# Reply with the status in EAX alone ...
answer_status:
    mov edx, 4
# ... or with EDX bytes of reply (status first); then wait for the next request.
answer:
    mov dword ptr [NS_BUF+NS_REPLY_STATUS], eax
    mov eax, SYS_REPLY_WAIT
    mov ebx, ebp
    mov ecx, NS_BUF
    mov esi, NS_PORT
    mov edi, NS_BUF_SIZE
    int 0x30
    jmp serve

# --- port names (from the kernel only) ----------------------------------------------------------

op_port_register:
    cmp dword ptr [NS_SENDER_PID], 0
    jne refuse_denied
    # A port name is registered once.
    mov eax, NS_KIND_PORT
    xor ecx, ecx
    call find_entry
    test edi, edi
    jnz refuse_exists
    jmp store_entry

op_port_unregister:
    cmp dword ptr [NS_SENDER_PID], 0
    jne refuse_denied
    # Forget the entry holding that port number.
    mov eax, dword ptr [NS_BUF+NS_REQ_VALUE]
    mov edi, NS_TABLE
.Lpu_next:
    cmp dword ptr [edi+NS_ENTRY_KIND], NS_KIND_PORT
    jne .Lpu_skip
    cmp dword ptr [edi+NS_REQ_VALUE], eax
    jne .Lpu_skip
    mov dword ptr [edi+NS_ENTRY_KIND], NS_KIND_FREE
    jmp answer_ok
.Lpu_skip:
    add edi, NS_ENTRY_SIZE
    cmp edi, NS_TABLE+NS_ENTRIES*NS_ENTRY_SIZE
    jb .Lpu_next
    jmp not_found

op_port_lookup:
    mov eax, NS_KIND_PORT
    xor ecx, ecx
    call find_entry
    test edi, edi
    jz not_found
    mov eax, dword ptr [edi+NS_REQ_VALUE]
    mov dword ptr [NS_BUF+NS_REPLY_VALUE], eax
    xor eax, eax
    mov edx, 8
    jmp answer

# --- exported procedures -------------------------------------------------------------------------

# Registering or removing a procedure of a group: allowed to a process of that group, and
# to a resident process (or the kernel) for any group.
op_proc_register:
    mov ebx, dword ptr [NS_BUF+NS_REQ_GROUP]
    mov eax, dword ptr [NS_SENDER_GROUP]
    cmp eax, ADDR_GROUP_RESIDENT
    je .Lpr_allowed
    cmp eax, ebx
    jne refuse_denied
.Lpr_allowed:
    # Refuse a name already taken in that group or in the resident space (or, for a
    # resident procedure, anywhere).
    mov eax, NS_KIND_PROC
    mov ecx, 2
    call find_entry
    test edi, edi
    jnz refuse_exists
    jmp store_entry

op_proc_lookup:
    # The caller's own group, or the resident space.
    mov ebx, dword ptr [NS_SENDER_GROUP]
    mov eax, NS_KIND_PROC
    mov ecx, 1
    call find_entry
    test edi, edi
    jz not_found
    # The address structure: host, group, gate selector, offset, flags.
    mov eax, dword ptr [edi+NS_REQ_HOST]
    mov dword ptr [NS_BUF+NS_REPLY_VALUE+ADDR_HOST], eax
    mov eax, dword ptr [edi+NS_REQ_GROUP]
    mov dword ptr [NS_BUF+NS_REPLY_VALUE+ADDR_GROUP], eax
    mov eax, dword ptr [edi+NS_REQ_VALUE]
    mov dword ptr [NS_BUF+NS_REPLY_VALUE+ADDR_SELECTOR], eax
    mov eax, dword ptr [edi+NS_REQ_OFFSET]
    mov dword ptr [NS_BUF+NS_REPLY_VALUE+ADDR_OFFSET], eax
    mov eax, dword ptr [edi+NS_REQ_FLAGS]
    mov dword ptr [NS_BUF+NS_REPLY_VALUE+ADDR_FLAGS], eax
    xor eax, eax
    mov edx, NS_REPLY_SIZE
    jmp answer

op_proc_unregister:
    mov ebx, dword ptr [NS_BUF+NS_REQ_GROUP]
    mov eax, dword ptr [NS_SENDER_GROUP]
    cmp eax, ADDR_GROUP_RESIDENT
    je .Lpx_allowed
    cmp eax, ebx
    jne refuse_denied
.Lpx_allowed:
    mov eax, NS_KIND_PROC
    mov ecx, 3
    call find_entry
    test edi, edi
    jz not_found
    mov dword ptr [edi+NS_ENTRY_KIND], NS_KIND_FREE
    jmp answer_ok

# --- the table -----------------------------------------------------------------------------------

# store_entry: keep the request as a new entry of kind EAX, stamped with the sender's pid.
store_entry:
    mov edi, NS_TABLE
.Lse_next:
    cmp dword ptr [edi+NS_ENTRY_KIND], NS_KIND_FREE
    je .Lse_found
    add edi, NS_ENTRY_SIZE
    cmp edi, NS_TABLE+NS_ENTRIES*NS_ENTRY_SIZE
    jb .Lse_next
    jmp refuse_full
.Lse_found:
    mov dword ptr [NS_BUF+NS_ENTRY_KIND], eax
    mov eax, dword ptr [NS_SENDER_PID]
    mov dword ptr [NS_BUF+NS_ENTRY_OWNER], eax
    mov esi, NS_BUF
    mov ecx, NS_ENTRY_SIZE/4
    cld
    rep movsd
    jmp answer_ok

# find_entry: the first entry of kind EAX named as in the request whose group passes test ECX
# against the group EBX: 0 any group; 1 EBX or the resident space (lookup); 2 EBX, the
# resident space, or any group when EBX is the resident space (collision); 3 exactly EBX.
# Returns EDI = the entry's offset, or 0. Keeps EAX EBX ECX EDX EBP.
find_entry:
    push esi
    push edx
    mov edx, NS_TABLE
.Lfe_next:
    cmp dword ptr [edx+NS_ENTRY_KIND], eax
    jne .Lfe_skip
    # The group test.
    test ecx, ecx
    jz .Lfe_name
    mov esi, dword ptr [edx+NS_REQ_GROUP]
    cmp esi, ebx
    je .Lfe_name
    cmp ecx, 3
    je .Lfe_skip
    cmp esi, ADDR_GROUP_RESIDENT
    je .Lfe_name
    cmp ecx, 2
    jne .Lfe_skip
    cmp ebx, ADDR_GROUP_RESIDENT
    jne .Lfe_skip
.Lfe_name:
    # The same name: the same length and the same bytes.
    mov esi, dword ptr [edx+NS_REQ_NAME_LEN]
    cmp esi, dword ptr [NS_BUF+NS_REQ_NAME_LEN]
    jne .Lfe_skip
    push ecx
    mov ecx, esi
    mov esi, NS_BUF+NS_REQ_NAME
    lea edi, [edx+NS_REQ_NAME]
    cld
    repe cmpsb
    pop ecx
    jne .Lfe_skip
    mov edi, edx
    jmp .Lfe_done
.Lfe_skip:
    add edx, NS_ENTRY_SIZE
    cmp edx, NS_TABLE+NS_ENTRIES*NS_ENTRY_SIZE
    jb .Lfe_next
    xor edi, edi
.Lfe_done:
    pop edx
    pop esi
    ret
