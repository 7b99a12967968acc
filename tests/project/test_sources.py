"""Sources are findable from the project itself: no file points into a ``shared/`` folder a
clone does not have, and every short source key a timing figure cites (``[H]``, ``[PIR]`` ...)
and every "timing-reference §n" has an entry in docs/sources.md."""

from __future__ import annotations

import re
from pathlib import Path

from lavsim.timing import PROFILES

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "docs" / "sources.md"
SHARED_PATH = re.compile(r"\bshared/[\w.-]+")
KEY = re.compile(r"\[([A-Z][A-Z0-9]*)\]")
SECTION = re.compile(r"timing-reference §(\d+)")


def _checked_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for path in sorted((ROOT / "src").rglob("*")):
        if path.suffix not in (".py", ".s", ".md"):
            continue
        files.append(path)
    return files


def shared_references(files: list[Path]) -> list[str]:
    """``path:line: text`` for every mention of a ``shared/...`` path."""
    found = []
    for path in files:
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SHARED_PATH.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    return found


def missing_entries(cited: str, sources: str) -> set[str]:
    """Keys and timing-reference sections cited in ``cited`` that ``sources`` has no entry for:
    a key needs a heading ``### [KEY] ...`` or a list item ``- **[KEY]** ...``; a section a
    table row ``| §n | ...``."""
    keys = set(KEY.findall(cited))
    have = set(re.findall(r"^#{2,4} \[([A-Z][A-Z0-9]*)\]", sources, re.M))
    have |= set(re.findall(r"^- \*\*\[([A-Z][A-Z0-9]*)\]\*\*", sources, re.M))
    missing = {f"[{k}]" for k in keys - have}
    sections = set(SECTION.findall(cited))
    have_sections = set(re.findall(r"^\| §(\d+) \|", sources, re.M))
    missing |= {f"timing-reference §{n}" for n in sections - have_sections}
    return missing


def _timing_citations() -> str:
    return "\n".join(cost.source for p in PROFILES.values() for cost in p.costs.values())


def test_no_file_points_into_a_shared_folder() -> None:
    assert shared_references(_checked_files()) == []


def test_shared_reference_check_finds_a_reference(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("see `../shared/DESIGN.md` §4\n", encoding="utf-8")
    assert len(shared_references([page])) == 1


def test_every_timing_source_key_and_section_has_an_entry() -> None:
    cited = _timing_citations()
    assert "[H]" in cited and "timing-reference §6" in cited  # the citations were read
    timing_doc = (ROOT / "docs" / "timing.md").read_text(encoding="utf-8")
    sources = SOURCES.read_text(encoding="utf-8")
    assert missing_entries(cited + "\n" + timing_doc, sources) == set()


def test_missing_entry_check_finds_an_unlisted_key_and_section() -> None:
    sources = "### [H] HelpPC\n- **[GPBB]** Abrash\n| §1 | data movement | [H] |\n"
    assert missing_entries("[H] (timing-reference §1) [GPBB]", sources) == set()
    assert missing_entries("[H] [ZZ] (timing-reference §7)", sources) == {
        "[ZZ]", "timing-reference §7"}


def test_every_board_figure_cites_a_source_with_an_entry_or_says_it_is_an_estimate() -> None:
    from lavsim.boards import BOARDS

    sources = SOURCES.read_text(encoding="utf-8")
    for board in BOARDS.values():
        if board.ideal:
            continue
        figures = [figure for figure, _ in board.sources]
        assert {"L1 organisation", "DRAM 5-3-3-3", "DRAM 5-2-2-2"} & set(figures), board.name
        for figure, text in board.sources:
            assert KEY.search(text) or text.startswith("estimate"), (board.name, figure)
            assert missing_entries(text, sources) == set(), (board.name, figure)
