"""Host-side errors: things the *user of the simulator* did wrong.

Guest misbehaviour is never reported with these; it becomes an architectural exception
(:class:`lavsim.faults.CpuFault`) inside the simulated machine.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


class LavsimError(Exception):
    """Base class of every error lavsim raises to its host-side caller."""


class ConfigError(LavsimError, ValueError):
    """A configuration value was refused when the object was built.

    ``field`` names the offending field so that the caller can fix exactly that.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class FileEntryError(ConfigError):
    """A file of settings (a CPU-model file, an experiment file) was refused: names the file
    (``origin``), the dotted ``key`` (``costs.iret.outer``, ``axes.size``) and, where known,
    the 1-based ``line``; ``field`` is the key, as for any :class:`ConfigError`."""

    def __init__(self, origin: str, key: str, message: str, line: int | None = None) -> None:
        LavsimError.__init__(
            self, f"{origin}{'' if line is None else f', line {line}'}: {key}: {message}"
        )
        self.field = key
        self.origin = origin
        self.key = key
        self.line = line


def show_value(value: object, limit: int = 60) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters and ``...``: a refused
    value is named, never dumped (the repr of a configuration object can run to thousands of
    characters)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


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


class UnknownNameError(LavsimError, KeyError):
    """A name (a kernel variable, a label ...) that does not exist; ``close`` lists the
    existing names that look like it. A ``KeyError`` too, for callers that caught that."""

    def __init__(self, what: str, name: str, known: Iterable[str], where: str = "") -> None:
        self.what = what
        self.name = name
        self.close = tuple(difflib.get_close_matches(name, list(known), n=5, cutoff=0.6))
        if self.close:
            hint = f"; did you mean {', '.join(self.close)}?"
        else:
            hint = f" ({where})" if where else ""
        self.message = f"no {what} {name!r}{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        # KeyError's own __str__ shows the repr of its argument; this reads as a sentence.
        return self.message


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
    :class:`ConfigError` naming ``field``. Configuration objects call this when they are built.

    The message states the whole rule: "must be an integer in 1..4096, got 0", "must be at
    least 1, got 0", or "must be 4, got 5" for a one-value range."""
    show = (lambda n: f"{n:#x}") if hexadecimal else str
    if isinstance(value, bool) or not isinstance(value, int):
        rule = _rule(low, high, show)
        rule = rule if rule.startswith("an integer") else f"an integer, {rule}"
        raise ConfigError(field, f"must be {rule}, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        raise ConfigError(field, f"must be {_rule(low, high, show)}, got {show(value)}")
    return value


def check_limit(field: str, value: object) -> int | None:
    """A run limit (``max_cycles``, ``max_instructions``): None (no limit) or an int >= 0."""
    if value is None:
        return None
    return check_int(field, value, 0)


def _rule(low: int, high: int | None, show: Callable[[int], str]) -> str:
    if high is None:
        return f"at least {show(low)}"
    if high == low:
        return f"exactly {show(low)}"
    return f"an integer in {show(low)}..{show(high)}"
