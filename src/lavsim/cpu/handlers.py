"""Registry of instruction semantics: ``Form.handler`` name -> function(cpu, insn).

Semantics modules register their functions with :func:`handler`; the decoder resolves every
form's handler name through :data:`HANDLERS` once, when it builds its tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

HANDLERS: dict[str, Callable[..., None]] = {}


def handler(*names: str) -> Callable[[F], F]:
    """Register the decorated function as the semantics of the given handler names."""

    def register(fn: F) -> F:
        for name in names:
            if name in HANDLERS:
                raise RuntimeError(f"handler {name!r} registered twice")
            HANDLERS[name] = fn
        return fn

    return register
