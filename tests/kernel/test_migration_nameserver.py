"""End to end: a server registers an exported procedure with the name server, a client looks
it up by message IPC and calls it through lav_call by thread migration (issue 5)."""

from __future__ import annotations

from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.nameserver import request
from lavsim.kernel.sharing import AddressStructure, lav_call_source

PROC = """
triple:
    mov eax, dword ptr [esp+8]
    imul eax, eax, 3
    add eax, dword ptr [esp+12]
    retf PROC_ARG_BYTES
"""

#: Request at DS:0, reply at DS:64; the status of the name-server call goes to DS:128.
NS_CALL = f"""
    mov eax, {L.SYS_CALL}
    mov ebx, {L.NS_PORT}
    mov ecx, 0
    mov edx, {L.NS_REQ_SIZE}
    mov esi, 64
    mov edi, {L.NS_REPLY_SIZE}
    int 0x30
    mov eax, dword ptr [64]
    mov dword ptr [128], eax
"""

REGISTER = "main:\n" + NS_CALL + "    mov eax, 0\n    mov ebx, 0\n    int 0x30\n"

#: Look the procedure up, then lav_call(address at DS:68, 2, 14, 5); result at DS:132.
LOOKUP_AND_CALL = "main:\n" + NS_CALL + """
    cmp dword ptr [128], 0
    jne done
    push 5
    push 14
    push 2
    push 68
    call lav_call
    add esp, 16
    mov dword ptr [132], eax
    mov dword ptr [136], ecx
done:
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def test_a_registered_procedure_is_looked_up_and_called_by_migration() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0)
    system.start_name_server()
    group = system.create_group()
    server = system.create_process(group, REGISTER, name="server")
    client = system.create_process(group, LOOKUP_AND_CALL + lav_call_source(group),
                                   name="client")  # fmt: skip
    export = system.sharing.export_procedure(server, PROC, entry="triple", params=2)
    system.sharing.import_procedure(client, export)
    system.sharing.write_data(server, 0, request(
        L.NS_OP_PROC_REGISTER, "triple", value=export.gate_selector, offset=export.entry,
        group=group.gid, flags=export.address().flags,  # the parameter count, for lav_bind
    ))  # fmt: skip
    system.sharing.write_data(client, 0, request(L.NS_OP_PROC_LOOKUP, "triple"))
    system.create_thread(server, "main")
    system.create_thread(client, "main")
    outcome = system.run(max_cycles=3_000_000)
    # The name server stays blocked in receive once the others have ended.
    assert outcome.status == "idle", outcome
    assert system.read_data32(server, 128) == 0
    assert system.read_data32(client, 128) == 0
    address = AddressStructure.decode(system.read_process(client, "data", 68, L.ADDR_SIZE))
    assert address == export.address()
    assert system.read_data32(client, 136) == 0
    assert system.read_data32(client, 132) == 14 * 3 + 5
