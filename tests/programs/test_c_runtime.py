"""The C runtime and the two commands: x87 code stops with the instruction named, measured
regions between lav_mark(1) and lav_mark(2), lavsim cc's errors, lavsim run's output, status
and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from ckit import build, needs_gcc

from lavsim.cli import main
from lavsim.elf import load_elf_file
from lavsim.programs import cc
from lavsim.programs.run import run_bare, run_lavender

pytestmark = needs_gcc

DOUBLE = """
#include <stdio.h>
volatile double x = 1.5;
int main(void) { printf("before\\n"); x = x * 3.0; return (int)x; }
"""

MARKED = """
#include <lavender.h>
volatile int sink;
int main(void) {
    lav_mark(1);
    for (int k = 0; k < 25; k++) sink += k;
    lav_mark(2);
    return sink & 0x7f;
}
"""


THREADS = """
#include <lavender.h>
#include <stdio.h>
volatile int done[3];
static int worker(int k) {
    int local[64];
    for (int i = 0; i < 64; i++) local[i] = i * k;
    int *p = &local[10];  /* a pointer to a local, dereferenced through DS */
    printf("thread %d sum %d\\n", k, *p + local[63]);
    done[k] = 1;
    return k;
}
int main(void) {
    for (int k = 1; k < 3; k++) printf("created %d\\n", lav_thread_create(worker, k) > 0);
    while (!done[1] || !done[2]) lav_yield();
    return 0;
}
"""


def _source(tmp: Path, name: str, text: str) -> Path:
    path = tmp / f"{name}.c"
    path.write_text(text)
    return path


def test_an_x87_instruction_stops_the_program_and_is_named(tmp_path: Path) -> None:
    src = _source(tmp_path, "double", DOUBLE)
    kernel = run_lavender([load_elf_file(str(build(tmp_path, "double", "-O0", "i486", False,
                                                   src)))])
    assert kernel.console == "before\n" and kernel.status == 128 + 6  # #UD
    assert len(kernel.faults) == 1 and "x87 instruction fld" in kernel.faults[0]
    bare = run_bare(load_elf_file(str(build(tmp_path, "double", "-O0", "i486", True, src)),
                                  flat=True))
    assert bare.console == "before\n" and "x87 instruction fld" in bare.faults[0]


def test_marks_count_the_region_exactly_bare_and_under_the_kernel(tmp_path: Path) -> None:
    src = _source(tmp_path, "marked", MARKED)
    kernel = run_lavender([load_elf_file(str(build(tmp_path, "marked", "-O2", "i486", False,
                                                   src)))])
    bare = run_bare(load_elf_file(str(build(tmp_path, "marked", "-O2", "i486", True, src)),
                                  flat=True))
    assert kernel.status == bare.status == sum(range(25)) & 0x7F
    assert kernel.marked is not None and bare.marked is not None
    # the same user instructions between the marks (no timer tick falls in so short a region)
    assert kernel.marked[0] == bare.marked[0] > 25 * 3
    assert kernel.marked[1] > 0 and "marked region" in kernel.summary()


def test_lavsim_cc_names_the_missing_multilib_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path, "m", "int main(void) { return 0; }")
    monkeypatch.setattr(cc, "multilib_ok", lambda gcc=None: False)
    with pytest.raises(cc.CcError, match="gcc-multilib"):
        cc.compile_program([str(src)], str(tmp_path / "m.elf"))


def test_lavsim_cc_reports_compile_errors_and_missing_sources(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    bad = _source(tmp_path, "bad", "int main(void) { return undeclared; }")
    assert main(["cc", str(bad), "-o", str(tmp_path / "bad.elf")]) == 1
    assert "undeclared" in capsys.readouterr().err
    assert main(["cc", str(tmp_path / "none.c")]) == 1
    assert "no such source file" in capsys.readouterr().err


def test_lavsim_cc_and_run_print_the_output_and_exit_with_the_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _source(tmp_path, "hello", '#include <stdio.h>\nint main(void) { printf("hi %d\\n", '
                                     '6 * 7); return 5; }\n')
    elf = tmp_path / "hello.elf"
    assert main(["cc", "-Os", str(src), "-o", str(elf)]) == 0
    assert main(["run", "--profile", "pentium", str(elf)]) == 5
    out = capsys.readouterr()
    assert out.out == "hi 42\n"
    assert "status 5" in out.err and "instructions" in out.err and "cycles" in out.err


def test_lavsim_run_refuses_bad_arguments_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.elf"
    junk.write_bytes(b"not an elf at all, not an elf at all, not an elf at all!")
    assert main(["run", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "e_ident" in err
    assert main(["run", "--threads", "x", str(junk)]) == 2
    assert "--threads" in capsys.readouterr().err
    assert main(["run", "--heap", "6", str(build(tmp_path, "sorting", "-O2", "i486",
                                                   False))]) == 2
    assert "argument --heap" in capsys.readouterr().err


def test_threads_of_a_c_process_get_stacks_in_the_shared_segment(tmp_path: Path) -> None:
    src = _source(tmp_path, "threads", THREADS)
    result = run_lavender([load_elf_file(str(build(tmp_path, "threads", "-O2", "i486", False,
                                                   src)))])
    assert result.console == ("created 1\ncreated 1\nthread 1 sum 73\nthread 2 sum 146\n")
    assert result.status == 0 and not result.faults
