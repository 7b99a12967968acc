"""How a sweep goes, on standard error (issue 18): a bar on a terminal, plain lines otherwise.

The bar shows points done of the total, the rate, the estimated time left and the failures,
rewritten in place; :class:`ProgressLines` writes one line per finished point (for logs and
pipes). A failed point's reason is always written, whichever is chosen, and so is the closing
count of failures (:class:`FailuresOnly` does nothing else).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["FailuresOnly", "ProgressBar", "ProgressLines", "reporter"]


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class FailuresOnly:
    """Writes only failed points and the closing count of failures."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = self.done = self.reused = self.failed = 0
        self.started = time.monotonic()

    def start(self, total: int, reused: int) -> None:
        self.total, self.reused, self.done = total, reused, reused
        self.started = time.monotonic()

    def point(self, label: str, error: str | None) -> None:
        self.done += 1
        if error is not None:
            self.failed += 1
            self.write_failure(label, error)

    def write_failure(self, label: str, error: str) -> None:
        self.stream.write(f"point failed: {label}: {error}\n")
        self.stream.flush()

    def rate(self) -> float:
        """Points measured per second so far (those read from a store not counted)."""
        elapsed = time.monotonic() - self.started
        return (self.done - self.reused) / elapsed if elapsed > 0 else 0.0

    def finish(self) -> None:
        if self.failed:
            self.stream.write(f"{self.failed} of {self.total} points failed\n")
            self.stream.flush()


class ProgressLines(FailuresOnly):
    """One line per finished point: ``[12/50] label`` (``FAILED: reason`` when it failed)."""

    def start(self, total: int, reused: int) -> None:
        super().start(total, reused)
        self.stream.write(f"{total} points, {reused} from the store, {total - reused} to "
                          "measure\n")
        self.stream.flush()

    def point(self, label: str, error: str | None) -> None:
        self.done += 1
        status = "" if error is None else f" FAILED: {error}"
        self.failed += error is not None
        self.stream.write(f"[{self.done}/{self.total}] {label}{status}\n")
        self.stream.flush()

    def finish(self) -> None:
        measured = self.done - self.reused - self.failed
        self.stream.write(f"done: {measured} measured, {self.reused} from the store, "
                          f"{self.failed} failed, {self.rate():.1f} points/s\n")
        self.stream.flush()


class ProgressBar(FailuresOnly):
    """A bar rewritten in place: ``[#####-----] 25/50  3.1 points/s  ETA 0:00:08  0 failed``;
    a failure is written on a line of its own above it."""

    WIDTH = 24

    def start(self, total: int, reused: int) -> None:
        super().start(total, reused)
        self.draw()

    def draw(self) -> None:
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        rate = self.rate()
        left = self.total - self.done
        eta = _clock(left / rate) if rate > 0 else "?"
        text = (f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {self.done}/{self.total}  "
                f"{rate:.1f} points/s  ETA {eta}  {self.failed} failed")
        self.stream.write(f"\r{text:<79}")
        self.stream.flush()

    def write_failure(self, label: str, error: str) -> None:
        self.stream.write(f"\r{'':<79}\r")
        super().write_failure(label, error)

    def point(self, label: str, error: str | None) -> None:
        super().point(label, error)
        self.draw()

    def finish(self) -> None:
        self.draw()
        self.stream.write("\n")
        super().finish()


def reporter(enabled: bool | None, stream: TextIO | None = None) -> FailuresOnly:
    """The reporter for ``--progress`` (True), ``--no-progress`` (False) or neither (None):
    a bar on a terminal, plain lines when forced elsewhere, else failures only."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    if enabled is None:
        enabled = tty
    if not enabled:
        return FailuresOnly(stream)
    return ProgressBar(stream) if tty else ProgressLines(stream)
