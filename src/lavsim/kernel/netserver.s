# The network server: a resident user process on every host of a cluster (lavsim.cluster).
#
# Thread "serve" answers requests from other hosts' network servers (receive queue 0):
#   NET_OP_CALL    make the call locally, by migration through the named call gate (a
#                  resident export of this host), and reply with its EAX and EDX;
#   NET_OP_FETCH   reply with a shippable procedure's code (net_fetch);
#   NET_OP_LOOKUP  look a procedure name up in this host's name server (when one is running).
# Thread "forward" (netforward.s, when message IPC is present) takes call messages of local
# clients and sends them on.
#
# Frames (lavsim.network): +0 destination host, +4 queue, +8 source host, then the payload:
#   request  +12 op, +16 request id, +20 op's operands (CALL: gate selector, nargs, args;
#            FETCH: gate selector; LOOKUP: name length, name)
#   reply    +12 op | NET_OP_REPLY, +16 request id, +20 status (0 or an error), +24 results
#            (CALL: EAX, EDX; FETCH: entry, parameter count, code; LOOKUP: address structure)
#
# Data segment: NX_RQ request buffer, NX_RP reply buffer, NX_FAR a far pointer, NX_HOST the
# host id; the forward thread's buffers follow (NS_FW_*).

serve:
    mov eax, SYS_NET_ATTACH
    int 0x30
    mov dword ptr [NX_HOST], eax
.Lserve_next:
    mov eax, SYS_NET_RECV
    mov ebx, 0
    mov ecx, NX_RQ
    mov edx, NX_BUFFER
    int 0x30
    test eax, eax
    js .Lserve_next
    mov dword ptr [NX_RQ_LENGTH], eax
    # The reply's header: back to the requester, on its reply queue, same request id.
    mov eax, dword ptr [NX_RQ+8]
    mov dword ptr [NX_RP], eax
    mov dword ptr [NX_RP+4], 1
    mov dword ptr [NX_RP+8], 0
    mov eax, dword ptr [NX_RQ+12]
    or eax, NET_OP_REPLY
    mov dword ptr [NX_RP+12], eax
    mov eax, dword ptr [NX_RQ+16]
    mov dword ptr [NX_RP+16], eax
    mov eax, dword ptr [NX_RQ+12]
    cmp eax, NET_OP_CALL
    je .Lserve_call
    cmp eax, NET_OP_FETCH
    je .Lserve_fetch
    cmp eax, NET_OP_LOOKUP
    je .Lserve_lookup
    mov eax, E_INVAL
    jmp .Lserve_status

.Lserve_call:
    # Only a present call gate this process can name (LAR: P, S = 0, type 0xC) is called.
    mov ebx, dword ptr [NX_RQ+20]
    lar eax, ebx
    jnz .Lserve_noproc
    and eax, 0x9F00
    cmp eax, 0x8C00
    jne .Lserve_noproc
    mov ecx, dword ptr [NX_RQ+24]
    cmp ecx, 31
    ja .Lserve_inval
    mov dword ptr [NX_FAR], 0
    mov dword ptr [NX_FAR+4], ebx
    # The arguments, last first, then migrate into the procedure; EBP restores ESP whatever
    # the gate's parameter count.
    mov ebp, esp
    test ecx, ecx
    jz .Lserve_migrate
.Lserve_push:
    push dword ptr [NX_RQ+24+ecx*4]
    dec ecx
    jnz .Lserve_push
.Lserve_migrate:
    call fword ptr [NX_FAR]
    mov esp, ebp
    mov dword ptr [NX_RP+20], 0
    mov dword ptr [NX_RP+24], eax
    mov dword ptr [NX_RP+28], edx
    mov ecx, 32
    jmp .Lserve_send

.Lserve_fetch:
    mov eax, SYS_NET_FETCH
    mov ebx, dword ptr [NX_RQ+20]
    mov ecx, NX_RP+24
    mov edx, NX_BUFFER-24
    int 0x30
    test eax, eax
    js .Lserve_status
    mov dword ptr [NX_RP+20], 0
    lea ecx, [eax+32]
    jmp .Lserve_send

.Lserve_lookup:
    call ns_lookup_local
    test eax, eax
    js .Lserve_status
    mov dword ptr [NX_RP+20], 0
    mov ecx, 24+ADDR_SIZE
    jmp .Lserve_send

.Lserve_noproc:
    mov eax, E_NO_PROCEDURE
    jmp .Lserve_status
.Lserve_inval:
    mov eax, E_INVAL
.Lserve_status:
    mov dword ptr [NX_RP+20], eax
    mov ecx, 24
.Lserve_send:
    mov eax, SYS_NET_SEND
    mov ebx, NX_RP
    int 0x30
    jmp .Lserve_next

# --- thread "forward": call messages of local clients, by message IPC -------------------------
# Its port (NX_PORT, created first, so it is port NET_PORT) takes one message per request, in
# the NX_FW buffer, answered by reply_wait into the same buffer:
#   NET_OP_CALL  +4 host, +8 gate selector, +12 nargs, +16 args   -> +0 status, +4 EAX, +8 EDX
#   NET_OP_SHIP  +4 host, +8 gate selector                        -> +0 status, +4 address
#                (the procedure's code fetched, installed here; the address is the local one)
# One request at a time: the next message waits in the port's queue meanwhile.
forward:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov dword ptr [NX_PORT], eax
    xor ebx, ebx
    xor edx, edx
.Lforward_reply_wait:
    # Reply to the last client (none the first time), then wait for the next request.
    mov eax, SYS_REPLY_WAIT
    mov ecx, NX_FW
    mov esi, dword ptr [NX_PORT]
    mov edi, NX_FW_SIZE
    int 0x30
    xor edx, edx
    test eax, eax
    js .Lforward_reply_wait
    mov dword ptr [NX_TOKEN], ebx
    # The request frame's header and id.
    mov eax, dword ptr [NX_FW+4]
    mov dword ptr [NX_FW_RQ], eax
    mov dword ptr [NX_FW_RQ+4], 0
    mov dword ptr [NX_FW_RQ+8], 0
    inc dword ptr [NX_SEQ]
    mov eax, dword ptr [NX_SEQ]
    mov dword ptr [NX_FW_RQ+16], eax
    mov eax, dword ptr [NX_FW+8]
    mov dword ptr [NX_FW_RQ+20], eax
    mov eax, dword ptr [NX_FW]
    cmp eax, NET_OP_CALL
    je .Lforward_call
    cmp eax, NET_OP_SHIP
    je .Lforward_ship
    mov eax, E_INVAL
    jmp .Lforward_status

.Lforward_call:
    mov dword ptr [NX_FW_RQ+12], NET_OP_CALL
    mov ecx, dword ptr [NX_FW+12]
    cmp ecx, 31
    ja .Lforward_inval
    mov dword ptr [NX_FW_RQ+24], ecx
    # Marshal the arguments into the frame.
    cld
    mov esi, NX_FW+16
    mov edi, NX_FW_RQ+28
    push ecx
    rep movsd
    pop ecx
    lea ecx, [ecx*4+28]
    call forward_exchange
    test eax, eax
    jnz .Lforward_status
    mov dword ptr [NX_FW], 0
    mov eax, dword ptr [NX_FW_RP+24]
    mov dword ptr [NX_FW+4], eax
    mov eax, dword ptr [NX_FW_RP+28]
    mov dword ptr [NX_FW+8], eax
    mov edx, 12
    mov ebx, dword ptr [NX_TOKEN]
    jmp .Lforward_reply_wait

.Lforward_ship:
    # Fetch the code from its host ...
    mov dword ptr [NX_FW_RQ+12], NET_OP_FETCH
    mov ecx, 24
    call forward_exchange
    test eax, eax
    jnz .Lforward_status
    # ... install it here: a code segment in the resident space and a gate in the GDT ...
    mov eax, SYS_NET_INSTALL
    mov ebx, NX_FW_RP+32
    mov ecx, dword ptr [NX_FW_RPLEN]
    sub ecx, 32
    mov edx, dword ptr [NX_FW_RP+24]
    mov esi, dword ptr [NX_FW_RP+28]
    int 0x30
    test eax, eax
    js .Lforward_status
    # ... and answer with its local address structure.
    mov dword ptr [NX_FW], 0
    mov dword ptr [NX_FW+4+ADDR_HOST], 0
    mov dword ptr [NX_FW+4+ADDR_GROUP], ADDR_GROUP_RESIDENT
    mov dword ptr [NX_FW+4+ADDR_SELECTOR], eax
    mov eax, dword ptr [NX_FW_RP+24]
    mov dword ptr [NX_FW+4+ADDR_OFFSET], eax
    mov dword ptr [NX_FW+4+ADDR_FLAGS], ADDR_FLAG_SHIPPABLE
    mov edx, 4+ADDR_SIZE
    mov ebx, dword ptr [NX_TOKEN]
    jmp .Lforward_reply_wait

.Lforward_inval:
    mov eax, E_INVAL
.Lforward_status:
    mov dword ptr [NX_FW], eax
    mov edx, 4
    mov ebx, dword ptr [NX_TOKEN]
    jmp .Lforward_reply_wait

# forward_exchange: send the request frame NX_FW_RQ (ECX bytes) and wait for its reply in
# NX_FW_RP (replies to earlier requests are dropped). Returns EAX = the reply's status, or the
# transmission's error (E_HOST_UNREACHABLE).
forward_exchange:
    mov eax, SYS_NET_SEND
    mov ebx, NX_FW_RQ
    int 0x30
    test eax, eax
    jnz .Lexchange_done
.Lexchange_wait:
    mov eax, SYS_NET_RECV
    mov ebx, 1
    mov ecx, NX_FW_RP
    mov edx, NX_BUFFER
    int 0x30
    test eax, eax
    js .Lexchange_wait
    mov dword ptr [NX_FW_RPLEN], eax
    mov eax, dword ptr [NX_FW_RP+16]
    cmp eax, dword ptr [NX_FW_RQ+16]
    jne .Lexchange_wait
    mov eax, dword ptr [NX_FW_RP+20]
.Lexchange_done:
    ret
