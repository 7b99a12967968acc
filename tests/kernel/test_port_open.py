"""ipc.port_open answers what port_info's ``open`` says, for every port of a running system."""

from __future__ import annotations

from ipc_kit import CLIENT, ECHO_SERVER, client_data, define

from lavsim.kernel import LavenderSystem
from lavsim.kernel import layout as L
from lavsim.kernel.ipc import port_info, port_open


def test_port_open_agrees_with_port_info_on_every_port() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0, observe=False)
    server = system.create_process(
        system.create_group(), define(ECHO_SERVER, REPLY_WAIT=L.SYS_REPLY_WAIT),
        data=bytes([1]), data_size=0x2000,
    )  # fmt: skip
    client = system.create_process(
        system.create_group(), define(CLIENT, CALL=L.SYS_CALL),
        data=client_data(1, 1, [5], bytes(8192)), data_size=0x3000,
    )  # fmt: skip
    system.create_thread(server, "main")
    system.create_thread(client, "main")
    memory = system.machine.memory
    seen_open = False
    for _ in range(20):
        system.run(max_cycles=2_000)
        opened = [p for p in range(L.IPC_MAX_PORTS) if port_info(memory, p).open]
        assert [p for p in range(L.IPC_MAX_PORTS) if port_open(memory, p)] == opened
        seen_open |= bool(opened)
    assert seen_open
