"""`lavsim cycles` and the worked examples of the Pentium pairing sources (docs/timing.md,
"Pentium issue model"): each snippet is measured through the command and must give the cycles
its source states ([GPBB] = Abrash, Black Book ch. 19-21; [AF] = Agner Fog ch. 10)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from lavsim.cli import main


def _cycles(source: str, *options: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        stdin = io.StringIO(source)
        import sys

        old, sys.stdin = sys.stdin, stdin
        try:
            assert main(["cycles", *options, "-"]) == 0
        finally:
            sys.stdin = old
    return out.getvalue()


def _per_iteration(source: str, *options: str) -> float:
    last = _cycles(source, *options).splitlines()[-1]
    assert last.startswith("cycles per iteration: ")
    return float(last.split(": ")[1])


@pytest.mark.parametrize(
    ("source", "cycles"),
    [
        # [GPBB] 19: the AGI stall of the V-pipe store on EDX.
        ("add edx,4\nmov ecx,[ebx]\nadd ebx,4\nmov [edx],ecx", 3),
        # [GPBB] 19: reordered, no AGI.
        ("mov ecx,[ebx]\nadd ebx,4\nmov [edx+4],ecx\nadd edx,4", 2),
        # [GPBB] 21: a loop of two pairs.
        ("top: mov [esi],eax\nadd esi,4\ndec ecx\njnz top", 2),
        # [GPBB] 21: INC EDX first pushes JNZ into the U pipe, alone.
        ("top: inc edx\nmov [esi],eax\nadd esi,4\ndec ecx\njnz top", 3),
        # [GPBB] 20: two memory-destination instructions pair but overlap one clock only.
        ("and [ebx],al\nand [ebp],dl", 5),
        # [GPBB] 20: two register-destination two-clock instructions pair in 2.
        ("add esi,[ebx]\nadd edi,[edx]", 2),
        # [AF] ch. 10: different dwords, different banks: one clock.
        ("mov al,[esi+3]\nmov bl,[esi+4]", 1),
    ],
)
def test_the_worked_examples_give_the_cycles_their_sources_state(source: str, cycles: int) -> None:
    assert _per_iteration(source) == cycles


def test_the_per_instruction_view_names_pipes_issue_cycles_and_stall_reasons() -> None:
    out = _cycles("add edx,4\nmov ecx,[ebx]\nadd ebx,4\nmov [edx],ecx")
    rows = [line.split() for line in out.splitlines()[2:6]]
    assert [r[1] for r in rows] == ["U", "V", "U", "V"]
    assert [int(r[2]) for r in rows] == [0, 0, 1, 2]
    assert "agi +1" in out.splitlines()[5]


def test_json_output_has_rows_and_the_figure() -> None:
    data = json.loads(_cycles("mov eax,1\nmov ebx,2", "--format", "json"))
    assert data["cycles_per_iteration"] == 1
    assert [r["pipe"] for r in data["rows"]] == ["U", "V"]


def test_the_sequential_model_file_and_the_i486_issue_alone() -> None:
    assert _per_iteration("mov eax,1\nmov ebx,2", "--cpu-model",
                          "examples/pentium-sequential.toml") == 2
    assert _per_iteration("mov eax,1\nmov ebx,2", "--profile", "i486") == 2


def test_bad_iterations_are_refused_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    old, sys.stdin = sys.stdin, io.StringIO("nop")
    try:
        assert main(["cycles", "--iterations", "0", "-"]) == 2
    finally:
        sys.stdin = old
    assert "--iterations" in capsys.readouterr().err
