"""Machine sorts its observers into block observers as ``isinstance(o, BlockObserver)`` does
(each member of the protocol present and not None), without the protocol check's cost."""

from __future__ import annotations

from typing import Any

from lavsim.machine import BlockObserver, BlockSplits, Machine


class Full:
    def block_splits(self) -> BlockSplits:
        return BlockSplits(frozenset(), frozenset(), 0, 0)

    def observe_run(self, *run: Any) -> None:
        pass

    def __call__(self, *step: Any) -> None:
        pass


class NoCall:
    block_splits = Full.block_splits
    observe_run = Full.observe_run


class Partial:
    block_splits = Full.block_splits
    __call__ = Full.__call__


class Blocked(Full):
    observe_run = None  # type: ignore[assignment]


def test_observers_are_sorted_as_the_protocol_check_sorts_them() -> None:
    per_instance = Full()
    per_instance.observe_run = None  # type: ignore[method-assign]
    given = Full()
    given.extra = lambda: None  # type: ignore[attr-defined]
    completed = Partial()
    completed.observe_run = lambda *run: None  # type: ignore[attr-defined]
    candidates: list[Any] = [Full(), NoCall(), Blocked(), per_instance, given, Partial(),
                             completed, lambda *step: None, print]
    for observer in candidates:
        m = Machine()
        m.add_observer(Full())
        if callable(observer):
            m.add_observer(observer)
        expected = isinstance(observer, BlockObserver) or not callable(observer)
        # Block observers keep blocks only when every observer is one.
        assert bool(m._block_observers) == expected, observer
