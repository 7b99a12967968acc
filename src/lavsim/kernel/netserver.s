# The network server: a resident user process on every host of a cluster (lavsim.cluster).
#
# Thread "serve" answers requests from other hosts' network servers (receive queue 0):
#   NET_OP_CALL    make the call locally, by migration through the named call gate (a
#                  resident export of this host), and reply with its EAX and EDX;
#   NET_OP_FETCH   reply with a shippable procedure's code (net_fetch);
#   NET_OP_LOOKUP  look a procedure name up in this host's name server (a message call to
#                  port NS_PORT as a resident process: resident procedures only) and reply
#                  with the address structure, host 0 ("this host") replaced by this host's id.
# Thread "forward" takes call messages of local clients (port NET_PORT) and sends them on.
#
# Name resolution across hosts: the name server never blocks on anything (it answers from its
# table), "serve" blocks only on its own host's name server, "forward" only on other hosts'
# "serve": the wait-for graph has no cycle, so lookups crossing between hosts cannot deadlock.
# The call library asks the local name server first and only on a miss "forward", which asks
# the other hosts one at a time in ascending host id (1..NX_HOSTS, itself skipped): the first
# one that finds the name answers; hosts that are down or do not know it are passed over.
#
# Frames (lavsim.network): +0 destination host, +4 queue, +8 source host, then the payload:
#   request  +12 op, +16 request id, +20 op's operands (CALL: gate selector, nargs, args;
#            FETCH: gate selector; LOOKUP: name length, name (<= NS_NAME_MAX bytes))
#   reply    +12 op | NET_OP_REPLY, +16 request id, +20 status (0 or an error), +24 results
#            (CALL: EAX, EDX; FETCH: entry, parameter count, code; LOOKUP: address structure)
#
# Faults (issue 19): "forward" waits for each reply at most NX_TIMEOUT cycles, then sends the
# same request (same id) again, at most NX_RETRIES times, then answers E_NET_TIMEOUT; a host
# that goes down meanwhile gives E_HOST_UNREACHABLE. "serve" runs each CALL at most once: per
# requester host it keeps the id of the last call it ran and that call's EAX and EDX
# (NX_DONE_ID, NX_DONE_RESULT; every forward thread has one request outstanding at a time and
# numbers them upwards, so the last one is all a retransmission can ask for). A CALL whose id
# is that id is answered from the table without running the procedure again; an older id was
# abandoned by its sender and is dropped. FETCH and LOOKUP only read, and simply run again.
#
# Data segment: NX_RQ request buffer, NX_RP reply buffer, NX_FAR a far pointer, NX_HOST the
# host id, NX_HOSTS the number of hosts, NX_TIMEOUT and NX_RETRIES (written by the boot
# loader), NX_NS_RQ/NX_NS_RP the serve thread's name-server request and reply, the
# at-most-once table, counters; the forward thread's buffers follow (NX_FW*).

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
    # {at-most-once
    # A call this requester numbered no higher than the last one run for it is not run.
    mov edx, dword ptr [NX_RQ+8]
    mov eax, dword ptr [NX_RQ+16]
    cmp eax, dword ptr [NX_DONE_ID+edx*4]
    jbe .Lserve_done_before
    # at-most-once}
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
    # {at-most-once
    # A call that ran: its id and results go into the table (after the reply has left, off
    # the caller's critical path; this thread serves one request at a time).
    cmp dword ptr [NX_RP+12], NET_OP_CALL|NET_OP_REPLY
    jne .Lserve_next
    cmp dword ptr [NX_RP+20], 0
    jne .Lserve_next
    mov edx, dword ptr [NX_RQ+8]
    mov eax, dword ptr [NX_RQ+16]
    mov dword ptr [NX_DONE_ID+edx*4], eax
    mov eax, dword ptr [NX_RP+24]
    mov dword ptr [NX_DONE_RESULT+edx*8], eax
    mov eax, dword ptr [NX_RP+28]
    mov dword ptr [NX_DONE_RESULT+edx*8+4], eax
    # at-most-once}
    jmp .Lserve_next

    # {at-most-once
.Lserve_done_before:
    # The same id: the reply was lost or the request duplicated; answer again from the table.
    # (Ids start at 1: 0 is the table's "no call run yet", never answered.)
    jne .Lserve_stale
    test eax, eax
    jz .Lserve_stale
    inc dword ptr [NX_REPLAYED]
    # (Written compactly, XOR/PUSH/POP, so that the code after this block stays where it was
    # before the id 0 check: on the Pentium a branch's address decides what it shares of the
    # branch target buffer, and the fault-free path's figures with it.)
    xor ecx, ecx
    mov dword ptr [NX_RP+20], ecx
    mov eax, dword ptr [NX_DONE_RESULT+edx*8]
    mov dword ptr [NX_RP+24], eax
    mov eax, dword ptr [NX_DONE_RESULT+edx*8+4]
    mov dword ptr [NX_RP+28], eax
    push 32
    pop ecx
    jmp .Lserve_send
.Lserve_stale:
    # An older id: its sender has given up on it (or had its answer); no reply.
    inc dword ptr [NX_STALE]
    jmp .Lserve_next
    # at-most-once}

# ns_lookup_local: the LOOKUP request in NX_RQ, asked of this host's name server; on success
# the address structure is at NX_RP+24 and EAX = 0, else EAX = the error (E_NOENT: no such
# name; E_BADPORT: no name server on this host; E_INVAL: a malformed request).
ns_lookup_local:
    mov ecx, dword ptr [NX_RQ+20]
    cmp ecx, NS_NAME_MAX
    ja .Lnl_inval
    lea eax, [ecx+24]
    cmp eax, dword ptr [NX_RQ_LENGTH]
    ja .Lnl_inval
    mov dword ptr [NX_NS_RQ+NS_REQ_OP], NS_OP_PROC_LOOKUP
    mov dword ptr [NX_NS_RQ+NS_REQ_NAME_LEN], ecx
    cld
    mov esi, NX_RQ+24
    mov edi, NX_NS_RQ+NS_REQ_NAME
    rep movsb
    mov eax, SYS_CALL
    mov ebx, NS_PORT
    mov ecx, NX_NS_RQ
    mov edx, NS_REQ_SIZE
    mov esi, NX_NS_RP
    mov edi, NS_REPLY_SIZE
    int 0x30
    test eax, eax
    js .Lnl_done
    mov eax, dword ptr [NX_NS_RP+NS_REPLY_STATUS]
    test eax, eax
    jnz .Lnl_done
    mov esi, NX_NS_RP+NS_REPLY_VALUE
    mov edi, NX_RP+24
    mov ecx, ADDR_SIZE/4
    rep movsd
    # Host ids are global; 0 meant "this host" to the name server.
    cmp dword ptr [NX_RP+24+ADDR_HOST], 0
    jne .Lnl_done
    mov eax, dword ptr [NX_HOST]
    mov dword ptr [NX_RP+24+ADDR_HOST], eax
    xor eax, eax
.Lnl_done:
    ret
.Lnl_inval:
    mov eax, E_INVAL
    ret

# --- thread "forward": call messages of local clients, by message IPC -------------------------
# Its port (NX_PORT, created first, so it is port NET_PORT) takes one message per request, in
# the NX_FW buffer, answered by reply_wait into the same buffer:
#   NET_OP_CALL  +4 host, +8 gate selector, +12 nargs, +16 args   -> +0 status, +4 EAX, +8 EDX
#   NET_OP_SHIP  +4 host, +8 gate selector, +12 name length, +16 name
#                -> +0 status, +4 address, +24 registration status
#                (the procedure's code fetched, installed here; the address is the local one;
#                with a name (length 1..NS_NAME_MAX), the copy is registered with this host's
#                name server as a resident procedure: +24 is 0 or the name server's error)
#   NET_OP_LOOKUP  +4 name length, +8 name                         -> +0 status, +4 address
#                (asked of the other hosts in ascending id; E_NOENT when none knows it)
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
    mov dword ptr [NX_FW_LEN], eax
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
    cmp eax, NET_OP_LOOKUP
    je .Lforward_lookup
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
    mov dword ptr [NX_FW_NS+NS_REQ_VALUE], eax
    # ... register it by name with this host's name server, if asked ...
    xor eax, eax
    cmp dword ptr [NX_FW_LEN], 16
    jb .Lforward_shipped
    mov ecx, dword ptr [NX_FW+12]
    test ecx, ecx
    jz .Lforward_shipped
    mov eax, E_INVAL
    cmp ecx, NS_NAME_MAX
    ja .Lforward_shipped
    lea eax, [ecx+16]
    cmp eax, dword ptr [NX_FW_LEN]
    mov eax, E_INVAL
    ja .Lforward_shipped
    mov dword ptr [NX_FW_NS+NS_REQ_OP], NS_OP_PROC_REGISTER
    mov dword ptr [NX_FW_NS+NS_REQ_NAME_LEN], ecx
    cld
    mov esi, NX_FW+16
    mov edi, NX_FW_NS+NS_REQ_NAME
    rep movsb
    mov eax, dword ptr [NX_FW_RP+24]
    mov dword ptr [NX_FW_NS+NS_REQ_OFFSET], eax
    mov dword ptr [NX_FW_NS+NS_REQ_GROUP], ADDR_GROUP_RESIDENT
    mov dword ptr [NX_FW_NS+NS_REQ_HOST], 0
    mov dword ptr [NX_FW_NS+NS_REQ_FLAGS], ADDR_FLAG_SHIPPABLE
    mov eax, SYS_CALL
    mov ebx, NS_PORT
    mov ecx, NX_FW_NS
    mov edx, NS_REQ_SIZE
    mov esi, NX_FW_NS_RP
    mov edi, NS_REPLY_SIZE
    int 0x30
    test eax, eax
    js .Lforward_shipped
    mov eax, dword ptr [NX_FW_NS_RP+NS_REPLY_STATUS]
.Lforward_shipped:
    mov dword ptr [NX_FW+24], eax
    # ... and answer with its local address structure.
    mov eax, dword ptr [NX_FW_NS+NS_REQ_VALUE]
    mov dword ptr [NX_FW], 0
    mov dword ptr [NX_FW+4+ADDR_HOST], 0
    mov dword ptr [NX_FW+4+ADDR_GROUP], ADDR_GROUP_RESIDENT
    mov dword ptr [NX_FW+4+ADDR_SELECTOR], eax
    mov eax, dword ptr [NX_FW_RP+24]
    mov dword ptr [NX_FW+4+ADDR_OFFSET], eax
    mov dword ptr [NX_FW+4+ADDR_FLAGS], ADDR_FLAG_SHIPPABLE
    mov edx, 8+ADDR_SIZE
    mov ebx, dword ptr [NX_TOKEN]
    jmp .Lforward_reply_wait

.Lforward_lookup:
    # The name, into a LOOKUP frame; then each other host in ascending id until one knows it.
    mov ecx, dword ptr [NX_FW+4]
    cmp ecx, NS_NAME_MAX
    ja .Lforward_inval
    lea eax, [ecx+8]
    cmp eax, dword ptr [NX_FW_LEN]
    ja .Lforward_inval
    mov dword ptr [NX_FW_RQ+12], NET_OP_LOOKUP
    mov dword ptr [NX_FW_RQ+20], ecx
    cld
    mov esi, NX_FW+8
    mov edi, NX_FW_RQ+24
    rep movsb
    mov dword ptr [NX_LOOKUP_HOST], 0
.Lforward_lookup_next:
    inc dword ptr [NX_LOOKUP_HOST]
    mov eax, dword ptr [NX_LOOKUP_HOST]
    cmp eax, dword ptr [NX_HOSTS]
    ja .Lforward_lookup_none
    cmp eax, dword ptr [NX_HOST]
    je .Lforward_lookup_next
    mov dword ptr [NX_FW_RQ], eax
    inc dword ptr [NX_SEQ]
    mov eax, dword ptr [NX_SEQ]
    mov dword ptr [NX_FW_RQ+16], eax
    mov ecx, dword ptr [NX_FW_RQ+20]
    add ecx, 24
    call forward_exchange
    test eax, eax
    jnz .Lforward_lookup_next
    # Found: the address structure (carrying that host's id) goes back to the client.
    cld
    mov esi, NX_FW_RP+24
    mov edi, NX_FW+4
    mov ecx, ADDR_SIZE/4
    rep movsd
    mov dword ptr [NX_FW], 0
    mov edx, 4+ADDR_SIZE
    mov ebx, dword ptr [NX_TOKEN]
    jmp .Lforward_reply_wait
.Lforward_lookup_none:
    mov eax, E_NOENT
    jmp .Lforward_status

.Lforward_inval:
    mov eax, E_INVAL
.Lforward_status:
    mov dword ptr [NX_FW], eax
    mov edx, 4
    mov ebx, dword ptr [NX_TOKEN]
    jmp .Lforward_reply_wait

# forward_exchange: send the request frame NX_FW_RQ (ECX bytes) and wait for its reply in
# NX_FW_RP (replies to earlier requests are dropped). No reply within NX_TIMEOUT cycles: the
# same frame again, at most NX_RETRIES times. Returns EAX = the reply's status, or an error:
# E_HOST_UNREACHABLE (the transmission's, also when the host goes down between attempts),
# E_NET_TIMEOUT (no reply to any attempt). Everything between a transmission and the wait runs
# while the frame is on the wire.
forward_exchange:
    mov eax, SYS_NET_SEND
    mov ebx, NX_FW_RQ
    int 0x30
    test eax, eax
    jnz .Lexchange_done
    mov dword ptr [NX_FW_RQ_LEN], ecx
    mov eax, dword ptr [NX_RETRIES]
    mov dword ptr [NX_FW_TRIES], eax
.Lexchange_arm:
    rdtsc
    add eax, dword ptr [NX_TIMEOUT]
    mov dword ptr [NX_FW_DEADLINE], eax
.Lexchange_wait:
    # The cycles left until the deadline (low TSC halves: the timeout is below 2^31).
    rdtsc
    mov esi, dword ptr [NX_FW_DEADLINE]
    sub esi, eax
    jle .Lexchange_timeout
    mov eax, SYS_NET_RECV_TIMED
    mov ebx, 1
    mov ecx, NX_FW_RP
    mov edx, NX_BUFFER
    int 0x30
    test eax, eax
    js .Lexchange_error
    mov dword ptr [NX_FW_RPLEN], eax
    mov eax, dword ptr [NX_FW_RP+16]
    cmp eax, dword ptr [NX_FW_RQ+16]
    jne .Lexchange_wait
    mov eax, dword ptr [NX_FW_RP+20]
.Lexchange_done:
    ret
.Lexchange_error:
    # A frame too long for the buffer was dropped: keep waiting; the time is up: retransmit.
    cmp eax, E_NET_TIMEOUT
    jne .Lexchange_wait
.Lexchange_timeout:
    dec dword ptr [NX_FW_TRIES]
    js .Lexchange_give_up
    inc dword ptr [NX_RETRANSMITS]
    mov eax, SYS_NET_SEND
    mov ebx, NX_FW_RQ
    mov ecx, dword ptr [NX_FW_RQ_LEN]
    int 0x30
    test eax, eax
    jz .Lexchange_arm
    ret
.Lexchange_give_up:
    inc dword ptr [NX_GAVE_UP]
    mov eax, E_NET_TIMEOUT
    ret
