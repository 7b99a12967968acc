"""Error messages that read as the rule they enforce: integer ranges, unknown kernel
variables."""

from __future__ import annotations

import pytest

from lavsim.errors import ConfigError, LavsimError, UnknownNameError, check_int
from lavsim.kernel import LavenderSystem


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1), "f: must be at least 1, got 0"),
        ((0, 1, 4096), "f: must be an integer in 1..4096, got 0"),
        ((5, 4, 4), "f: must be exactly 4, got 5"),
        (("x", 1, 3), "f: must be an integer in 1..3, not str"),
        ((True, 0), "f: must be an integer, at least 0, not bool"),
    ],
)
def test_check_int_states_the_whole_rule(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_int("f", *args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_data_size_zero_reads_as_at_least_one() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0, observe=False)
    with pytest.raises(ConfigError, match=r"^data_size: must be at least 1, got 0$"):
        system.create_process(
            system.create_group(), "nop\n", data_size=0)


def test_unknown_kernel_variable_names_it_and_suggests_close_names() -> None:
    system = LavenderSystem(memory_size=8 << 20, timer_period=0, observe=False)
    with pytest.raises(UnknownNameError) as info:
        system.kernel_variable("k_stauts")
    assert isinstance(info.value, KeyError) and isinstance(info.value, LavsimError)
    assert "k_stauts" in str(info.value) and "k_status" in info.value.close
    assert str(info.value) == "no kernel variable 'k_stauts'; did you mean k_status?"
    with pytest.raises(KeyError, match=r"no kernel variable 'nope' .*k_\* labels"):
        system.kernel_variable("nope")
