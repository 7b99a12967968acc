"""The ELF loader's refusals, one test each (truncated, wrong class, wrong byte order, wrong
machine, not ET_EXEC, dynamic, overlapping or out-of-range segments, entry outside the code),
each naming the field; and what a good file gives: segments at their offsets, .bss zeroed,
the entry point and the symbols; a refused program changes no system."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from ckit import build, needs_gcc

from lavsim.elf import MAX_OFFSET, ElfError, load_elf
from lavsim.errors import ConfigError
from lavsim.kernel.system import LavenderSystem

pytestmark = needs_gcc

BSS_PROGRAM = """
int filled = 7;
char zeros[5000];
int main(void) { int s = filled; for (int k = 0; k < 5000; k++) s += zeros[k]; return s; }
"""


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.getbasetemp()
    source = tmp / "bss.c"
    source.write_text(BSS_PROGRAM)
    return build(tmp, "bss", "-O2", "i486", False, source=source).read_bytes()


def _phdr(data: bytes, k: int) -> int:
    phoff = struct.unpack_from("<I", data, 28)[0]
    return phoff + 32 * k


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _refused(data: bytes, field: str) -> str:
    with pytest.raises(ElfError) as info:
        load_elf(data, "prog.elf")
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith("prog.elf: ")
    return str(info.value)


def test_a_good_program_gives_its_segments_entry_and_symbols(good: bytes) -> None:
    p = load_elf(good, "prog.elf")
    assert p.code_offset == 0 and p.entry == p.symbols["_start"]
    assert {"main", "zeros", "filled", "__lav_mark_hit", "printf"} <= set(p.symbols)
    image = p.data_image()
    at = p.symbols["zeros"] - p.data_offset
    assert image[at : at + 5000] == bytes(5000)  # .bss zeroed
    assert p.data_size > len(p.data)  # the .bss is not in the file
    f = p.symbols["filled"] - p.data_offset
    assert struct.unpack_from("<i", image, f)[0] == 7


def test_a_truncated_file_is_refused(good: bytes) -> None:
    assert "too short" in _refused(good[:40], "e_ident")
    assert "truncated" in _refused(good[: _phdr(good, 1) + 40], "PT_LOAD[0]")


def test_a_64_bit_file_is_refused(good: bytes) -> None:
    _refused(good[:4] + b"\x02" + good[5:], "EI_CLASS")


def test_a_big_endian_file_is_refused(good: bytes) -> None:
    _refused(good[:5] + b"\x02" + good[6:], "EI_DATA")


def test_another_machine_is_refused(good: bytes) -> None:
    assert "EM_X86_64" in _refused(_patch(good, 18, "<H", 62), "e_machine")


def test_an_object_file_is_refused(good: bytes) -> None:
    _refused(_patch(good, 16, "<H", 1), "e_type")  # ET_REL


def test_a_dynamic_program_is_refused(good: bytes) -> None:
    _refused(_patch(good, _phdr(good, 1), "<I", 3), "PT_INTERP")


def test_overlapping_code_segments_are_refused(good: bytes) -> None:
    # make the data segment executable too: two code segments
    _refused(_patch(good, _phdr(good, 1) + 24, "<I", 5), "PT_LOAD[1]")


def test_a_segment_out_of_range_is_refused(good: bytes) -> None:
    assert "beyond" in _refused(_patch(good, _phdr(good, 1) + 8, "<I", MAX_OFFSET - 16),
                                "PT_LOAD[1]")


def test_an_entry_outside_the_code_is_refused(good: bytes) -> None:
    _refused(_patch(good, 24, "<I", 0x100000), "e_entry")


def test_code_not_at_offset_zero_is_refused_unless_flat(good: bytes) -> None:
    moved = _patch(good, _phdr(good, 0) + 8, "<I", 0x1000)
    _refused(moved, "PT_LOAD")


def test_a_refused_program_changes_no_system(good: bytes) -> None:
    system = LavenderSystem("i486", observe=False)
    group = system.create_group()
    before = (dict(system.processes), system.frames.available, group.next_linear)
    with pytest.raises(ConfigError):
        system.create_elf_process(group, load_elf(good), max_threads=3)  # 64 KiB / 3 slots
    assert (dict(system.processes), system.frames.available, group.next_linear) == before
    process = system.create_elf_process(group, load_elf(good), max_threads=4)
    assert process.stack_base == process.data_base  # DS and SS: one segment


def test_bss_and_data_reach_the_program(good: bytes, tmp_path: Path) -> None:
    from lavsim.programs.run import run_lavender

    result = run_lavender([load_elf(good)])
    assert result.status == 7 and result.reason == "done"
