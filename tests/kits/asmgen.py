"""Instruction instances generated from the operand specs of :data:`lavsim.cpu.isa.FORMS`.

For every form the assembler may pick (not ``noasm``) and every operand size it can take, a
few instances are built by walking representative operands of each spec in step: registers
(low and high byte registers, 16- and 32-bit), memory in the addressing modes that need care
(``[ebp]``, ``[esp]``, SIB without base, disp8/disp32 edges, segment overrides), immediates at
the edges of their fields, near and far branch targets. LOCK, REP and segment-prefix variants
are added where the table allows them. The instances go into one source file that both GNU as
and lavsim's assembler read, with a label before each instance so that the two can be lined up.
"""

from __future__ import annotations

from dataclasses import dataclass

from lavsim.cpu.isa import FORMS, Form

# Branch targets: `1b` is a numeric label on the instance's own line (a short jump); the two
# far labels sit 160 bytes beyond the first and last instance (near jumps).
HEADER = ".intel_syntax noprefix\nfar_back:\n.space 160\n"
FOOTER = ".space 160\nfar_fwd:\nnop\n"

_SIZE = {1: "byte", 2: "word", 4: "dword"}


def _memory(size: int | None) -> list[str]:
    p = f"{_SIZE[size]} ptr " if size else ""
    return [
        f"{p}[ebx]",
        f"{p}[ebp]",
        f"{p}[esp]",
        f"{p}[esi+ecx*4+0x10]",
        f"{p}es:[edi-0x80]",
        f"{p}[eax*4+0x100]",
        f"{p}[esp+ebx*8+0x12345]",
        f"{p}fs:[0x1234]",
        f"{p}[ebp+0x7f]",
        f"{p}ss:[ebx+0x80]",
        f"{p}[ebp+edx]",
    ]


def samples(spec: str, size: int, form: Form) -> list[str]:
    """Representative operand texts for one spec at operand size ``size``."""
    reg = {1: ["bl", "ah"], 2: ["cx", "di"], 4: ["ecx", "esi"]}
    fixed = next((a for a in form.attrs if a.startswith("size")), None)
    table: dict[str, list[str]] = {
        "AL": ["al"], "CL": ["cl"], "DX": ["dx"], "1": ["1"],
        "eAX": ["ax" if size == 2 else "eax"],
        "r8": ["dl", "bh"], "+r8": ["ch", "bl"],
        "r16": ["dx"], "r32": ["edx", "esi"], "+r32": ["edx", "edi"],
        "rv": ["dx", "bp"] if size == 2 else ["edx", "ebp"],
        "+rv": ["dx", "di"] if size == 2 else ["edx", "edi"],
        "r/m8": reg[1] + _memory(1),
        "r/mv": reg[size] + _memory(size),
        "r/m16": (
            ["cx", *_memory(2)[:4]] if fixed is not None
            else ["cx"] if size == 2 else ["ecx", *_memory(2)[:4], *_memory(None)[:1]]
        ),
        "m": _memory(None)[:8],
        "m16:v": ["fword ptr [ebx]", "fword ptr [esi+0x4]", "far ptr [eax]", "fword ptr gs:[ebp]"],
        "Sreg": ["ds", "es", "ss", "fs", "gs"],
        "CRn": ["cr0", "cr3", "cr4", "cr2"],
        "imm8": ["0x12", "0x7f", "0xfe", "0x80"],
        "imm16": ["0x1234", "0x8", "0xffff"],
        "immv": ["0x1234", "0x80", "0xff80"] if size == 2 else ["0x12345678", "-0x1000", "0x80"],
        "simm8": ["-0x2", "0x7f", "-0x80", "0x0"],
        "rel8": ["1b"],
        "relv": ["far_back", "far_fwd"],
        "moffs8": ["[0x1234]", "fs:[0x12345678]"],
        "moffsv": ["[0x1234]", "fs:[0x12345678]"],
        "ptr16:v": ["0x8:0x1000", "far ptr 0x10:0x12345678"],
    }
    if spec in ("ES", "CS", "SS", "DS", "FS", "GS"):
        return [spec.lower()]
    return table[spec]


_SIZE_CARRIERS = ("r/mv", "rv", "+rv", "eAX", "moffsv", "r/m16")


def sizes(form: Form) -> list[int]:
    """The operand sizes an instance of the form can be written in."""
    for attr, s in (("size8", 1), ("size16", 2), ("size32", 4)):
        if attr in form.attrs:
            return [s]
    carriers = [op for op in form.operands if op in (*_SIZE_CARRIERS, "immv", "simm8")]
    if not carriers:
        return [4]
    return [4, 2]


@dataclass(frozen=True)
class Instance:
    form: Form
    text: str
    prefix: str = ""  # a label definition that must precede the instruction on its line


def instances(form: Form) -> list[Instance]:
    """A few instances of one form, operands chosen from :func:`samples` in step."""
    out: list[Instance] = []
    for size in sizes(form):
        lists = [samples(spec, size, form) for spec in form.operands]
        if size == 2 and "size16" not in form.attrs and not any(
            op in _SIZE_CARRIERS for op in form.operands
        ):
            # only an immediate carries the size (push imm): GNU's `word ptr 5`
            lists = [
                [f"word ptr {x}" for x in lst] if spec in ("immv", "simm8") else lst
                for spec, lst in zip(form.operands, lists, strict=True)
            ]
        count = max((len(lst) for lst in lists), default=1)
        for k in range(count):
            ops = [lst[k % len(lst)] for lst in lists]
            text = form.mnemonic + (" " + ", ".join(ops) if ops else "")
            out.append(Instance(form, text, "1: " if "1b" in ops else ""))
        if "lock" in form.attrs and lists and any("[" in x for x in lists[0]):
            mems = [x for x in lists[0] if "[" in x]
            ops = [mems[0]] + [lst[1 % len(lst)] for lst in lists[1:]]
            out.append(Instance(form, "lock " + form.mnemonic + " " + ", ".join(ops)))
    if "rep" in form.attrs:
        words = ["rep", "repne"] if form.handler in ("cmps", "scas") else ["rep"]
        if form.handler in ("cmps", "scas"):
            words.append("repe")
        out += [Instance(form, f"{w} {form.mnemonic}") for w in words]
        out += [Instance(form, f"es {form.mnemonic}"), Instance(form, f"fs rep {form.mnemonic}")]
    return out


def all_instances() -> list[Instance]:
    return [inst for form in FORMS if "noasm" not in form.attrs for inst in instances(form)]


def source(insts: list[Instance]) -> str:
    """One file: header, ``L<n>: <instance>`` per instance, footer."""
    body = "".join(f"L{n}: {inst.prefix}{inst.text}\n" for n, inst in enumerate(insts))
    return HEADER + body + FOOTER
