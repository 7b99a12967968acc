"""A call site's argument count checked against the procedure's parameter count: the address
structure records the count at export, lav_bind (guest) and AddressStructure.check_nargs (host)
refuse a mismatch that lav_call would otherwise turn into a wrong result."""

from __future__ import annotations

import pytest

from lavsim.errors import ConfigError
from lavsim.kernel import AddressStructure, LavenderSystem, lav_call_source
from lavsim.kernel import layout as L

ADD = "proc:\n mov eax, dword ptr [esp+8]\n add eax, dword ptr [esp+12]\n retf PROC_ARG_BYTES\n"
MASK = 0xFFFFFFFF

# lav_bind(addr at 0, n) for n = 1, 2, 3 into [0x40..]; lav_bind of the hand-made structure
# at 0x20 with n = 1 into [0x4C]; then lav_call(addr, 2, 40, 2) into [0x50].
CLIENT = """
main:
    mov esi, 1
.Lnext:
    push esi
    push 0
    call lav_bind
    add esp, 8
    mov dword ptr [0x3C+esi*4], eax
    inc esi
    cmp esi, 4
    jne .Lnext
    push 1
    push 0x20
    call lav_bind
    add esp, 8
    mov dword ptr [0x4C], eax
    push 2
    push 40
    push 2
    push 0
    call lav_call
    add esp, 16
    mov dword ptr [0x50], eax
    mov eax, 0
    mov ebx, 0
    int 0x30
"""


def _run() -> tuple[LavenderSystem, list[int], AddressStructure]:
    system = LavenderSystem(profile="i486", timer_period=0, observe=False)
    group = system.create_group()
    server = system.create_process(group, "nop\n", name="server")
    export = system.sharing.export_procedure(server, ADD, entry="proc", params=2)
    client = system.create_process(group, CLIENT + lav_call_source(group), name="client")
    system.sharing.import_procedure(client, export)
    address = export.address()
    system.sharing.write_address(client, 0, address)
    system.sharing.write_address(client, 0x20, AddressStructure(
        0, group.gid, export.gate_selector, export.entry))  # no count recorded
    system.create_thread(client, "main")
    assert system.run(max_cycles=500_000).clean
    return system, [system.read_data32(client, 0x40 + 4 * k) for k in range(5)], address


def test_export_address_records_the_parameter_count() -> None:
    _, _, address = _run()
    assert address.params == 2
    assert address.flags & L.ADDR_FLAG_PARAMS
    assert AddressStructure.decode(address.encode()).params == 2
    assert AddressStructure(0, 1, 0x0F, 0).params is None
    shippable = AddressStructure(0, 1, 0x0F, 0, L.ADDR_FLAG_SHIPPABLE)
    assert shippable.shippable and shippable.params is None


def test_lav_bind_refuses_a_call_site_whose_nargs_differs() -> None:
    _, results, _ = _run()
    one, two, three, unrecorded, called = results
    assert (one, two, three) == (L.E_NARGS & MASK, 0, L.E_NARGS & MASK)
    assert unrecorded == 0  # nothing to check against
    assert called == 42  # the bound call site's lav_call works as before


def test_host_check_nargs_names_the_counts() -> None:
    _, _, address = _run()
    address.check_nargs(2)
    with pytest.raises(ConfigError, match="takes 2 parameters, not 3") as info:
        address.check_nargs(3)
    assert info.value.field == "nargs"
    AddressStructure(0, 1, 0x0F, 0).check_nargs(5)  # no count recorded: nothing to refuse
