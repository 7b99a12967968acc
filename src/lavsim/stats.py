"""Counter groups: each event counter of a component declared once, with its description.

A component keeps its counters as plain ``int`` attributes (so a hot path counts with one
``self.hits += 1`` and nothing else) and declares them once in a :class:`CounterGroup`. The group
reads and writes those attributes by the declared names: a snapshot of the values
(:meth:`CounterGroup.read`), the difference of two snapshots (:func:`delta`), a reset, and the
checkpoint state (:meth:`CounterGroup.get_state` / :meth:`CounterGroup.set_state`). A leaf
module: it imports nothing of lavsim but the error type.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from lavsim.errors import ConfigError

__all__ = ["Counter", "CounterGroup", "delta"]


@attrs.frozen(slots=True)
class Counter:
    """One counter: the attribute ``name`` on its owner, and what it counts."""

    name: str
    description: str


class CounterGroup:
    """The counters of one component class, each declared once (name and description).

    ``counters`` are ``(name, description)`` pairs, in the order tables and checkpoints list
    them. The owner must have an ``int`` attribute of each name.
    """

    __slots__ = ("_by_name", "counters")

    def __init__(self, *counters: tuple[str, str]) -> None:
        items = tuple(Counter(name, text) for name, text in counters)
        names = [c.name for c in items]
        if len(set(names)) != len(names):
            raise ConfigError("counters", f"a counter is declared twice in {names}")
        self.counters = items
        self._by_name = {c.name: c for c in items}

    @property
    def names(self) -> tuple[str, ...]:
        """The declared names, in order."""
        return tuple(c.name for c in self.counters)

    def __iter__(self) -> Iterator[Counter]:
        return iter(self.counters)

    def describe(self, name: str) -> str:
        """The description of counter ``name``."""
        return self._by_name[name].description

    def read(self, owner: object) -> dict[str, int]:
        """The current values on ``owner``, by name (a copy: later counting does not change it)."""
        return {name: int(getattr(owner, name)) for name in self._by_name}

    def reset(self, owner: object) -> None:
        """Set every counter of ``owner`` to 0."""
        for name in self._by_name:
            setattr(owner, name, 0)

    def get_state(self, owner: object) -> dict[str, int]:
        """The counters as checkpoint state (JSON numbers by name)."""
        return self.read(owner)

    def check_state(self, state: Mapping[str, Any]) -> dict[str, int]:
        """Validate checkpoint ``state``: every declared counter, a non-negative int below
        2**64. Returns the values; raises ``ValueError`` naming the first bad counter."""
        out: dict[str, int] = {}
        for name in self._by_name:
            if name not in state:
                raise ValueError(f"counter {name!r} missing")
            value = state[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
                raise ValueError(f"counter {name!r} = {value!r} is not an int in 0..2**64-1")
            out[name] = value
        return out

    def set_state(self, owner: object, state: Mapping[str, Any]) -> None:
        """Put checkpoint ``state`` back on ``owner`` (checked first: nothing set if refused)."""
        for name, value in self.check_state(state).items():
            setattr(owner, name, value)


def delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    """``after - before`` counter by counter (the events between two :meth:`CounterGroup.read`
    snapshots); both must hold the same names."""
    if set(after) != set(before):
        raise ConfigError("before", f"counters {sorted(before)} differ from {sorted(after)}")
    return {name: after[name] - before[name] for name in after}
