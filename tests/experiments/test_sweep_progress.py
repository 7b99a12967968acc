"""Progress of a sweep (issue 18): a bar with done/total, rate, time left and failures on a
terminal, one plain line per point elsewhere, failures always."""

from __future__ import annotations

import io

from lavsim.experiments.progress import FailuresOnly, ProgressBar, ProgressLines, reporter


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_shows_done_total_rate_eta_and_failures_in_place() -> None:
    out = _Terminal()
    bar = reporter(None, out)
    assert isinstance(bar, ProgressBar)
    bar.start(4, 1)
    bar.point("size=0", None)
    bar.point("size=4", "RuntimeError: boom")
    bar.finish()
    text = out.getvalue()
    frames = text.split("\r")
    assert "] 3/4 " in frames[-1] and "points/s" in frames[-1] and "ETA" in frames[-1]
    assert "1 failed" in frames[-1]
    assert "point failed: size=4: RuntimeError: boom\n" in text
    assert text.endswith("1 of 4 points failed\n")


def test_plain_lines_when_forced_off_a_terminal() -> None:
    out = io.StringIO()
    lines = reporter(True, out)
    assert isinstance(lines, ProgressLines)
    lines.start(2, 0)
    lines.point("a", None)
    lines.point("b", "E: x")
    lines.finish()
    got = out.getvalue().splitlines()
    assert got[:3] == ["2 points, 0 from the store, 2 to measure", "[1/2] a",
                       "[2/2] b FAILED: E: x"]
    assert got[3].startswith("done: 1 measured, 0 from the store, 1 failed, ")
    assert "\r" not in out.getvalue()


def test_without_progress_only_failures_are_written() -> None:
    out = _Terminal()
    quiet = reporter(False, out)
    assert type(quiet) is FailuresOnly
    quiet.start(2, 0)
    quiet.point("a", None)
    quiet.finish()
    assert out.getvalue() == ""
    quiet.point("b", "E: x")
    quiet.finish()
    assert out.getvalue() == "point failed: b: E: x\n1 of 2 points failed\n"
