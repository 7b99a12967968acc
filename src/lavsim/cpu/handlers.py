"""Instruction semantics tables: ``Form.handler`` name -> function(cpu, insn).

Each semantics module (``ops_int``, ``ops_control``, ``ops_string``, ``far``, ``interrupts``,
``system``) fills a :class:`Semantics` table of its own, ``SEMANTICS``, with the decorators
below. Nothing is registered anywhere else: the decoder (:mod:`lavsim.cpu.decoder`) imports
every semantics module, merges their tables with :func:`merge` and refuses to build when a form
of the instruction table has no handler. So the decoder is complete however it is imported.

A table holds two kinds of entries for a handler name:

* a **handler** ``fn(cpu, insn)``, the generic semantics;
* optionally a decode-time **binder** ``bind(insn) -> fn``: called once by the decoder with
  the decoded instruction, it returns a function specialised for that instruction (register
  vs memory form, operand size), which must behave exactly as the generic handler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from lavsim.cpu.insn import Insn

Handler = Callable[[Any, "Insn"], None]
Binder = Callable[["Insn"], Handler]
F = TypeVar("F", bound=Callable[..., Any])
B = TypeVar("B", bound=Binder)


class Semantics:
    """The handlers and binders one semantics module defines (see the module docstring)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.handlers: dict[str, Handler] = {}
        self.binders: dict[str, Binder] = {}

    def __repr__(self) -> str:
        return f"Semantics({self.module!r}, {len(self.handlers)} handlers)"

    def add_handler(self, name: str, fn: Handler) -> None:
        """Enter ``fn`` as the generic semantics of ``name`` (twice is an error)."""
        if name in self.handlers:
            raise RuntimeError(f"{self.module}: handler {name!r} registered twice")
        self.handlers[name] = fn

    def add_binder(self, name: str, bind: Binder) -> None:
        """Enter ``bind`` as the decode-time binder of ``name`` (twice is an error)."""
        if name in self.binders:
            raise RuntimeError(f"{self.module}: binder {name!r} registered twice")
        self.binders[name] = bind

    def handler(self, *names: str) -> Callable[[F], F]:
        """Decorator: the function is the semantics of the given handler names."""

        def register(fn: F) -> F:
            for name in names:
                self.add_handler(name, fn)
            return fn

        return register

    def binder(self, *names: str) -> Callable[[B], B]:
        """Decorator: the function is the decode-time binder of the given handler names."""

        def register(fn: B) -> B:
            for name in names:
                self.add_binder(name, fn)
            return fn

        return register

    def bind(self, *names: str) -> Callable[[B], B]:
        """Decorator: a binder, plus a generic handler for each name that binds on every call
        (for code that builds an :class:`~lavsim.cpu.insn.Insn` by hand)."""

        def register(fn: B) -> B:
            for name in names:
                self.add_binder(name, fn)
                self.add_handler(name, bound_handler(name, fn))
            return fn

        return register

    def simple(self, *names: str) -> Callable[[F], F]:
        """Decorator: a handler that needs no specialisation (its binder returns it as is)."""

        def register(fn: F) -> F:
            for name in names:
                self.add_handler(name, fn)
                self.add_binder(name, _constant_binder(fn))
            return fn

        return register


def bound_handler(name: str, bind: Binder) -> Handler:
    """A generic handler that binds ``insn`` on every call (for callers that skip the
    decoder's binding step; the decoder itself binds once)."""

    def run(cpu: Any, i: Insn) -> None:
        bind(i)(cpu, i)

    run.__name__ = name
    return run


def _constant_binder(fn: Handler) -> Binder:
    def bind_constant(i: Insn) -> Handler:
        return fn

    return bind_constant


def merge(tables: Iterable[Semantics]) -> tuple[dict[str, Handler], dict[str, Binder]]:
    """The handlers and binders of all ``tables``; a name defined by two modules is refused,
    naming both."""
    handlers: dict[str, Handler] = {}
    binders: dict[str, Binder] = {}
    owner: dict[str, str] = {}
    for table in tables:
        for name in (*table.handlers, *table.binders):
            first = owner.setdefault(name, table.module)
            if first != table.module:
                raise RuntimeError(
                    f"handler {name!r} is defined by both {first} and {table.module}"
                )
        handlers.update(table.handlers)
        binders.update(table.binders)
    return handlers, binders
