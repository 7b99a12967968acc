"""The README's snapshot example runs as written and prints what it says (True)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_snapshot_example_restores_to_identical_later_cycles(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "save_snapshot" in b]
    assert len(blocks) == 1, "README has one snapshot example"
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the example writes checkpoint.npz where it runs
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(blocks[0], "README snapshot example", "exec"), {})
    finally:
        os.chdir(cwd)
    assert out.getvalue() == "True\n"
    assert (tmp_path / "checkpoint.npz").is_file()
