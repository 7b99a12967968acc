"""Print the timing profiles as markdown tables (key, cycles, source), from the data itself.

    python benchmarks/timing_table.py                      # all profiles to stdout
    python benchmarks/timing_table.py pentium              # one profile
    python benchmarks/timing_table.py --write docs/timing.md

``--write`` replaces the text between the ``BEGIN``/``END GENERATED TIMING TABLES`` markers
of the given file, so ``docs/timing.md`` is regenerated without touching its prose.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lavsim.timing import KEY_MEANINGS, KEYS, PROFILES, TimingProfile, get_profile

BEGIN = "<!-- BEGIN GENERATED TIMING TABLES (benchmarks/timing_table.py) -->"
END = "<!-- END GENERATED TIMING TABLES -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def composite_rows(profile: TimingProfile) -> list[tuple[str, int]]:
    """A few derived figures worth seeing next to the table."""
    rows = [
        ("far CALL through a call gate, same privilege", profile.call_gate_cycles(False)),
        ("far CALL through a call gate, more privilege, 0 parameters",
         profile.call_gate_cycles(True, 0)),
    ]
    rows += [
        (f"far CALL through a call gate, more privilege, {x} parameter(s)",
         profile.call_gate_cycles(True, x))
        for x in (1, 2, 4)
    ]
    rows += [
        ("REP MOVSD of 16 dwords (64 bytes)", profile.rep_cycles("movs", 16)),
        ("TLB miss: 2 entry reads, no A/D write", profile.page_walk_cycles(2, 0)),
        ("TLB miss: 2 entry reads, 2 A/D writes", profile.page_walk_cycles(2, 2)),
    ]
    return rows


def profile_markdown(profile: TimingProfile) -> str:
    """The markdown section for one profile."""
    est = profile.estimates()
    lines = [
        f"### Profile `{profile.name}`",
        "",
        _cell(profile.description),
        "",
        f"{len(KEYS)} keys, {len(est)} estimates.",
        "",
        "| derived figure | cycles |",
        "|---|---:|",
    ]
    lines += [f"| {_cell(what)} | {n} |" for what, n in composite_rows(profile)]
    lines += ["", "| key | meaning | cycles | source |", "|---|---|---:|---|"]
    for key in KEYS:
        cost = profile.cost(key)
        lines.append(
            f"| `{key}` | {_cell(KEY_MEANINGS[key])} | {cost.cycles} | {_cell(cost.source)} |"
        )
    return "\n".join(lines) + "\n"


def tables_markdown(names: Sequence[str]) -> str:
    """The markdown of the named profiles, one section each."""
    return "\n".join(profile_markdown(get_profile(n)) for n in names)


def write_into(path: Path, text: str) -> None:
    """Replace the generated block of ``path`` (between the markers) with ``text``."""
    doc = path.read_text(encoding="utf-8")
    start = doc.find(BEGIN)
    stop = doc.find(END)
    if start < 0 or stop < start:
        raise SystemExit(f"{path}: markers {BEGIN!r} / {END!r} not found")
    new = doc[: start + len(BEGIN)] + "\n\n" + text + "\n" + doc[stop:]
    path.write_text(new, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profiles", nargs="*", default=list(PROFILES),
                        help=f"profiles to print (default: {', '.join(PROFILES)})")
    parser.add_argument("--write", type=Path, metavar="FILE",
                        help="rewrite the generated block of FILE instead of printing")
    args = parser.parse_args(argv)
    text = tables_markdown(args.profiles)
    if args.write is not None:
        write_into(args.write, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
