"""Guest programs and helpers for the IPC and name-server tests (issue 5)."""

from __future__ import annotations

import struct

from lavsim.kernel import LavenderSystem, Process
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import user_prelude

PRELUDE = user_prelude()
U32 = 0xFFFFFFFF


def u32(value: int) -> int:
    return value & U32


#: Echo server: creates an anonymous port (its number at [8]), receives into 0x1000, and
#: replies with what it received, [0] times; the last reply is a plain reply, then exit.
#: REPLY_WAIT is SYS_REPLY_WAIT or SYS_REPLY_WAIT_HANDOFF. Lengths received go to 0x20+4k.
ECHO_SERVER = PRELUDE + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov dword ptr [8], eax
    mov ebp, eax
    mov eax, SYS_RECEIVE
    mov ebx, ebp
    mov ecx, 0x1000
    mov edx, 0x1000
    xor esi, esi
    int 0x30
serve:
    mov ecx, dword ptr [4]
    mov dword ptr [0x20+ecx*4], eax
    inc dword ptr [4]
    mov edx, eax
    mov eax, dword ptr [4]
    cmp eax, dword ptr [0]
    jae last
    mov eax, REPLY_WAIT
    mov ecx, 0x1000
    mov esi, ebp
    mov edi, 0x1000
    int 0x30
    jmp serve
last:
    mov eax, SYS_REPLY
    mov ecx, 0x1000
    xor esi, esi
    int 0x30
    mov dword ptr [12], eax
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

#: Client: for k < [0]: CALL (SYS_CALL, SYS_CALL_HANDOFF or SYS_SEND) to port [8] with
#: [4+... sizes at 0x10+4k, message at 0x100+k, reply area 0x2000+k*0x1000 (capacity
#: 0x1000); result to 0x60+4k. For SYS_SEND the selector argument (ESI) is 0.
CLIENT = PRELUDE + """
main:
    xor ebp, ebp
next:
    cmp ebp, dword ptr [0]
    jae done
    mov eax, CALL
    mov ebx, dword ptr [8]
    lea ecx, [ebp+0x100]
    mov edx, dword ptr [0x10+ebp*4]
    mov esi, ebp
    shl esi, 12
    add esi, 0x2000
    mov edi, 0x1000
    cmp eax, SYS_SEND
    jne go
    xor esi, esi
go:
    int 0x30
    mov dword ptr [0x60+ebp*4], eax
    inc ebp
    jmp next
done:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

#: Receiver for sends: creates a port, receives [0] messages into 0x1000+k*0x1000
#: (capacity 0x1000), recording length, token, pid, group at 0x20+16k.. then exits.
RECEIVER = PRELUDE + """
main:
    mov eax, SYS_PORT_CREATE
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    int 0x30
    mov dword ptr [8], eax
    xor ebp, ebp
next:
    cmp ebp, dword ptr [0]
    jae done
    mov eax, SYS_RECEIVE
    mov ebx, dword ptr [8]
    mov ecx, ebp
    shl ecx, 12
    add ecx, 0x1000
    mov edx, 0x1000
    xor esi, esi
    int 0x30
    mov edi, ebp
    shl edi, 4
    mov dword ptr [0x20+edi], eax
    mov dword ptr [0x24+edi], ebx
    mov dword ptr [0x28+edi], ecx
    mov dword ptr [0x2C+edi], edx
    inc ebp
    jmp next
done:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""


def client_data(count: int, port: int, sizes: list[int], payload: bytes) -> bytes:
    head = struct.pack("<III", count, 0, port).ljust(0x10, b"\0")
    head += struct.pack(f"<{len(sizes)}I", *sizes)
    return head.ljust(0x100, b"\0") + payload


def define(source: str, **values: int) -> str:
    """``source`` with ``.equ`` lines for ``values`` in front."""
    return "".join(f".equ {k}, {v:#x}\n" for k, v in values.items()) + source


def words(system: LavenderSystem, process: Process, offset: int, count: int) -> list[int]:
    raw = system.read_process(process, "data", offset, 4 * count)
    return list(struct.unpack(f"<{count}I", raw))


#: Runs a script of steps, one 64-byte slot each at 0x100 + 64k ([0] = number of steps):
#: +0 kind, +4 a name-server request (NS_REQ_SIZE bytes). Kinds: 1 call the name server with
#: the request (reply at 0x1000 + 32k, capacity 32); 2 port_create with the request's name;
#: 3 port_destroy of the port the last kind-2 step created; 4 receive on that port (into 0x1800,
#: capacity 32: waits while nobody sends, so the process stays alive and its ports open).
#: Result of step k at 0x40 + 4k.
SCRIPT = PRELUDE + """
main:
    xor ebp, ebp
next:
    cmp ebp, dword ptr [0]
    jae done
    mov edi, ebp
    shl edi, 6
    add edi, 0x100
    mov eax, dword ptr [edi]
    cmp eax, 1
    je ns_call
    cmp eax, 2
    je create
    cmp eax, 4
    je wait
    # kind 3: destroy
    mov eax, SYS_PORT_DESTROY
    mov ebx, dword ptr [4]
    int 0x30
    jmp record
create:
    mov eax, SYS_PORT_CREATE
    lea ebx, [edi+4+NS_REQ_NAME]
    mov ecx, dword ptr [edi+4+NS_REQ_NAME_LEN]
    xor edx, edx
    int 0x30
    mov dword ptr [4], eax
    jmp record
wait:
    mov eax, SYS_RECEIVE
    mov ebx, dword ptr [4]
    mov ecx, 0x1800
    mov edx, 32
    xor esi, esi
    int 0x30
    jmp record
ns_call:
    mov eax, SYS_CALL
    mov ebx, NS_PORT
    lea ecx, [edi+4]
    mov edx, NS_REQ_SIZE
    mov esi, ebp
    shl esi, 5
    add esi, 0x1000
    mov edi, 32
    int 0x30
record:
    mov dword ptr [0x40+ebp*4], eax
    inc ebp
    jmp next
done:
    mov eax, SYS_EXIT
    xor ebx, ebx
    int 0x30
"""

STEP_NS, STEP_CREATE, STEP_DESTROY, STEP_WAIT = 1, 2, 3, 4


def script_data(steps: list[tuple[int, bytes]]) -> bytes:
    """Data for SCRIPT: ``steps`` = (kind, request bytes)."""
    assert len(steps) <= 16
    head = struct.pack("<I", len(steps)).ljust(0x100, b"\0")
    body = b"".join(struct.pack("<I", kind) + req.ljust(60, b"\0") for kind, req in steps)
    return head + body


def script_results(system: LavenderSystem, process: Process, n: int) -> list[int]:
    return words(system, process, 0x40, n)


def script_reply(system: LavenderSystem, process: Process, k: int) -> bytes:
    return system.read_process(process, "data", 0x1000 + 32 * k, 32)


SCRIPT_DATA_SIZE = 0x2000
#: The port number SCRIPT's last create returned.
SCRIPT_PORT = 4

__all__ = ["L"]
