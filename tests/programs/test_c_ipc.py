"""A C client and a C server (examples/c) exchange messages under the kernel, in one group, in
two, and with the server resident: every reply comes back upper-cased, and the measured call
is reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from ckit import build, needs_gcc

from lavsim.elf import load_elf_file
from lavsim.programs.run import run_lavender

pytestmark = needs_gcc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "c"
WANT = "hello -> HELLO\nlavender -> LAVENDER\nfrom c -> FROM C\nmeasured -> MEASURED\n"


@pytest.mark.parametrize(
    ("profile", "groups"), [("i486", [1, 1]), ("pentium", [1, 2]), ("i486", [1, 0])]
)
def test_a_c_client_calls_a_c_server_by_message(
    tmp_path_factory: pytest.TempPathFactory, profile: str, groups: list[int]
) -> None:
    tmp = tmp_path_factory.getbasetemp()
    client, server = (
        load_elf_file(str(build(tmp, name, "-O2", "i486", False, EXAMPLES / f"{name}.c")))
        for name in ("echo_client", "echo_server")
    )
    result = run_lavender([client, server], profile=profile, groups=groups)
    assert result.console == WANT and result.status == 0, result.summary()
    assert result.reason == "done" and not result.faults
    assert result.marked is not None and result.marked[0] > 100  # a call is kernel work
