"""The "Looking inside a run" example of docs/inspecting.md runs as written and prints what the
page says it prints, so the documentation of the inspection API cannot rot."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "inspecting.md"


def test_inspecting_example_runs_and_prints_what_the_page_says() -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, "docs/inspecting.md has one python example"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], str(PAGE), "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[:5] == ["breakpoint", "EAX=42 EIP=0xd CPL=3", "42", "2a000000", "1"]
    assert lines[5].startswith("done after ") and lines[5].endswith("every thread exited")
    assert lines[6] == "42"
    assert lines[7].startswith("instruction <CPL 3> ") and " ... instruction " in lines[7]
    rows = {line.split()[0] for line in lines[8:-1]}
    assert {"<trap>", "syscall_entry", "thread_exit", "<user>"} <= rows
    assert lines[-1] == "True"


def test_readme_links_the_inspection_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Looking inside a run" in readme
    assert "(docs/inspecting.md)" in readme
