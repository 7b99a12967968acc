"""The assembler: every form of the table, expressions, labels, directives, errors."""

from __future__ import annotations

import pytest
from asmgen import all_instances, instances

from lavsim.cpu.asm import assemble, assemble_bytes
from lavsim.cpu.disasm import disassemble_one
from lavsim.cpu.isa import FORMS, Form
from lavsim.errors import AssemblyError

ASSEMBLABLE = [f for f in FORMS if "noasm" not in f.attrs]


def _same_encoding(a: Form, b: Form) -> bool:
    return a.opcode == b.opcode and a.modrm == b.modrm and a.operands == b.operands


def _form_id(f: Form) -> str:
    return f"{f.mnemonic}:{f.opcode.hex()}:{f.modrm}:{','.join(f.operands)}"


@pytest.mark.parametrize("form", ASSEMBLABLE, ids=_form_id)
def test_every_form_is_chosen_for_one_of_its_generated_instances(form: Form) -> None:
    chosen = []
    for inst in instances(form):
        p = assemble(f"far_back: .space 200\nL: {inst.prefix}{inst.text}\nE: .space 200\nfar_fwd:")
        code = p.code[p.symbols["L"]:p.symbols["E"]]
        line = disassemble_one(code, p.symbols["L"])
        assert line.length == len(code), f"{inst.text}: {code.hex(' ')} decodes as {line.text}"
        assert line.form is not None
        chosen.append(line.form)
    assert any(_same_encoding(f, form) for f in chosen), [f.operands for f in chosen]


def test_generator_makes_several_instances_per_form() -> None:
    assert len(all_instances()) > 3000


# --- encodings that need care -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mov eax, ebx", "89 d8"),  # store form for reg-reg, as GNU
        ("mov eax, [ebx]", "8b 03"),  # a noasm form used when nothing else fits
        ("mov eax, [ebp]", "8b 45 00"),  # [ebp] needs a disp8 of 0
        ("mov eax, [esp]", "8b 04 24"),  # [esp] needs a SIB
        ("mov eax, [ebx+esp]", "8b 04 1c"),  # esp cannot be an index: swapped
        ("mov eax, [eax*4]", "8b 04 85 00 00 00 00"),
        ("mov eax, [ebx-128]", "8b 43 80"),
        ("mov eax, [ebx+128]", "8b 83 80 00 00 00"),
        ("mov eax, [0x1000]", "a1 00 10 00 00"),
        ("mov eax, fs:[0x1000]", "64 a1 00 10 00 00"),
        ("mov eax, ss:[ebp]", "8b 45 00"),  # the default segment is not written
        ("mov eax, ds:[ebp]", "3e 8b 45 00"),
        ("add eax, 5", "83 c0 05"),
        ("add eax, 0x100", "05 00 01 00 00"),
        ("add eax, 0xffffffff", "83 c0 ff"),
        ("add al, 5", "04 05"),
        ("push 5", "6a 05"),
        ("push 0x80", "68 80 00 00 00"),
        ("xchg ebx, eax", "93"),
        ("xchg ecx, [ebx]", "87 0b"),
        ("test eax, [ebx]", "85 03"),
        ("shl eax, 1", "d1 e0"),
        ("sal eax, 1", "d1 e0"),
        ("imul eax, 5", "6b c0 05"),
        ("int 3", "cc"),
        ("pusha", "60"),
        ("pushaw", "66 60"),
        ("iret", "cf"),
        ("jmp 0x08:0x1000", "ea 00 10 00 00 08 00"),
        ("call fword ptr [eax]", "ff 18"),
        ("call far [eax]", "ff 18"),
        ("lock add word ptr es:[ebx], ax", "26 66 f0 01 03"),
        ("es rep movsw", "26 66 f3 a5"),
        ("repne scasb", "f2 ae"),
        ("mov ds, ax", "8e d8"),
        ("mov eax, ds", "8c d8"),
        ("sldt ax", "66 0f 00 c0"),
        ("push word ptr 5", "66 6a 05"),
        ("jz 1f\n1: nop", "74 00 90"),
    ],
)
def test_encoding(text: str, expected: str) -> None:
    assert assemble_bytes(text).hex(" ") == expected


def test_jump_is_short_exactly_while_the_target_is_in_reach() -> None:
    near = assemble("jmp t\ntimes 127 nop\nt: nop")
    assert near.code[:2] == bytes([0xEB, 127])
    far = assemble("jmp t\ntimes 128 nop\nt: nop")
    assert far.code[:5] == bytes([0xE9, 128, 0, 0, 0])
    back = assemble("t: times 126 nop\njmp t")
    assert back.code[-2:] == bytes([0xEB, 0x80])


def test_relaxation_settles_when_one_jump_growing_pushes_another_out_of_reach() -> None:
    # a's target is 127 bytes away only while b stays short; b is 128 bytes from its target.
    src = "a: jmp x\nb: jmp y\ntimes 125 nop\nx: nop\ntimes 0 nop\ny: nop"
    p = assemble(src)
    assert p.code[0] == 0xEB  # a: 2 + 2 + 125 = 127 bytes... b's size decides
    lengths = {0xEB: 2, 0xE9: 5}
    b_len = lengths[p.code[2]]
    assert p.symbols["x"] == 2 + b_len + 125


def test_label_address_operands_get_full_size_fields_like_gnu() -> None:
    p = assemble("x: push offset x\nadd eax, offset x\nmov eax, [ebx+x]", origin=0)
    assert p.code == bytes.fromhex("6800000000 0500000000 8b8300000000")


# --- expressions, labels, directives ---------------------------------------------------------


def test_expressions_use_c_precedence_and_truncating_division() -> None:
    p = assemble(
        "a = 1 + 2 * 3\nb = (1 + 2) * 3\nc = -7 / 2\nd = -7 % 2\ne = 1 << 4 | 1\n"
        "f = ~0 & 0xff\ng = 0ffh + 0b101 + 'A'\nh = 6 ^ 3"
    )
    assert [p.symbols[k] for k in "abcdefgh"] == [7, 9, -3, -1, 17, 255, 255 + 5 + 65, 5]


def test_dollar_is_the_current_address_and_double_dollar_the_section_start() -> None:
    p = assemble("nop\nhere: dd $\ndd $$\nsize = $ - here", origin=0x1000)
    assert p.code[1:5] == (0x1001).to_bytes(4, "little")
    assert p.code[5:9] == (0x1000).to_bytes(4, "little")
    assert p.symbols["size"] == 8


def test_labels_forward_and_backward_numeric_and_dotted() -> None:
    src = """
    f1:
    .loop: jmp .loop
    jmp f2.loop
    f2:
    .loop: nop
    1: jmp 1f
    1: jmp 1b
    """
    p = assemble(src, origin=0x100)
    assert p.symbols["f1.loop"] == 0x100
    assert p.symbols["f2.loop"] == 0x104
    assert p.code == bytes.fromhex("ebfe eb00 90 eb00 ebfe")


def test_data_directives_and_times() -> None:
    p = assemble('db 1, -1, "ab", \'c\'\ndw 0x1234, "x"\ndd 0xdeadbeef\ntimes 3 db 7\n.asciz "hi"')
    assert p.code == bytes.fromhex("01ff616263 3412 7800 efbeadde 070707 686900")


def test_align_pads_code_with_nop_and_data_with_zero() -> None:
    p = assemble("ret\nalign 4\nsection .data\ndb 1\nalign 4\ndb 2")
    assert p.code == bytes.fromhex("c3909090 01000000 02")


def test_sections_are_laid_out_in_order_of_first_appearance_on_4_byte_boundaries() -> None:
    p = assemble(
        "section .text\nmov eax, [v]\nsection .data\nv: dd 5\nsection .text\nret",
        origin=0x2000,
    )
    # .text: a1 <v> c3 = 6 bytes, .data at 0x2008
    assert p.symbols["v"] == 0x2008
    assert p.code == bytes.fromhex("a108200000 c3 0000 05000000")


def test_org_sets_the_origin_and_dot_org_pads() -> None:
    p = assemble("org 0x7c00\nstart: jmp start\n.org 0x10, 0xcc\ndb 1")
    assert p.origin == 0x7C00
    assert p.symbols["start"] == 0x7C00
    assert p.code == bytes.fromhex("ebfe") + b"\xcc" * 14 + b"\x01"


def test_constants_by_equ_equals_and_set() -> None:
    p = assemble("A equ 5\nB = A * 2\n.equ C, B + 1\n.set D, 7\nmov eax, C")
    assert p.symbols == {"A": 5, "B": 10, "C": 11, "D": 7}
    assert p.code == bytes.fromhex("b80b000000")


def test_line_map_names_the_source_line_of_every_address() -> None:
    p = assemble("; comment\nnop\n\nmov eax, 1\ndb 1, 2", origin=0x10)
    assert dict(p.line_map) == {0x10: 2, 0x11: 4, 0x16: 5}
    assert [p.line_at(a) for a in (0x10, 0x11, 0x15, 0x16, 0x17, 0x18)] == [2, 4, 4, 5, 5, None]


def test_comments_and_case() -> None:
    assert assemble_bytes("MOV EAX, EBX ; load\n# a GNU comment\nNop") == bytes.fromhex("89d890")


# --- errors: each names the line and column ---------------------------------------------------


@pytest.mark.parametrize(
    ("src", "line", "column", "words"),
    [
        ("nop\n  frob eax", 2, 3, "unknown mnemonic"),
        ("mov eax, cr0\nmov cr0, 5", 2, 1, "no form of 'mov'"),
        ("jmp nowhere", 1, 5, "undefined symbol 'nowhere'"),
        ("nop\nadd bl, 300", 2, 9, "out of range"),
        ("x:\nnop\nx: nop", 3, 1, "already defined"),
        ("l: loop t\ntimes 200 nop\nt: nop", 1, 9, "out of reach"),
        ("msg: db 1\nmov eax, msg", 2, 10, "offset"),
        ("inc [ebx]", 1, 5, "ambiguous"),
        ("mov eax, 010", 1, 10, "leading 0"),
        ("lock add eax, ebx", 1, 1, "lock"),
        ("rep nop", 1, 1, "rep"),
        ("mov eax, [esp*2]", 1, 10, "esp cannot be an index"),
        ("mov eax, [bx]", 1, 11, "32-bit addressing"),
        ("db 256", 1, 1, "does not fit"),
        ("mov eax, 1 +", 1, 13, "expected an expression"),
        ('db "abc', 1, 4, "unterminated string"),
        ("push 0x100000000", 1, 6, "out of range"),
    ],
)
def test_errors_name_line_and_column(src: str, line: int, column: int, words: str) -> None:
    with pytest.raises(AssemblyError) as info:
        assemble(src)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert words in str(err)


def test_bad_operand_combination_lists_the_forms() -> None:
    with pytest.raises(AssemblyError) as info:
        assemble("lgdt eax")
    assert "lgdt m" in str(info.value)
    assert "(r32)" in str(info.value)
