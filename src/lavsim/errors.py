"""Host-side errors: things the *user of the simulator* did wrong.

Guest misbehaviour is never reported with these; it becomes an architectural exception
(:class:`lavsim.faults.CpuFault`) inside the simulated machine.
"""

from __future__ import annotations


class LavsimError(Exception):
    """Base class of every error lavsim raises to its host-side caller."""


class ConfigError(LavsimError, ValueError):
    """A configuration value was refused when the object was built.

    ``field`` names the offending field so that the caller can fix exactly that.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class MemoryAccessError(LavsimError):
    """A physical access fell outside installed memory (never a silent 0)."""

    def __init__(self, address: int, size: int, installed: int) -> None:
        super().__init__(
            f"physical access of {size} byte(s) at {address:#010x} is outside installed "
            f"memory (0..{installed:#x})"
        )
        self.address = address
        self.size = size
        self.installed = installed


class AssemblyError(LavsimError):
    """Bad assembly source; names the line and column (both 1-based)."""

    def __init__(self, message: str, line: int, column: int, text: str = "") -> None:
        where = f"line {line}, column {column}"
        super().__init__(f"{where}: {message}" + (f"\n    {text}" if text else ""))
        self.line = line
        self.column = column
        self.text = text


def check_bool(field: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool``; otherwise raise :class:`ConfigError` naming
    ``field`` (a truthy string such as ``"no"`` must not pass for True)."""
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be a bool (True or False), not {type(value).__name__}")
    return value


def check_int(
    field: str, value: object, low: int, high: int | None = None, *, hexadecimal: bool = False
) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) in ``low..high``; otherwise raise
    :class:`ConfigError` naming ``field``. Configuration objects call this when they are built."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an int, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        show = (lambda n: f"{n:#x}") if hexadecimal else str
        top = "" if high is None else f"..{show(high)}"
        raise ConfigError(field, f"must be in {show(low)}{top}, got {show(value)}")
    return value
