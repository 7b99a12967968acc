"""The decoder is built complete or not at all.

Handlers used to be registered as a side effect of importing the semantics modules, so
``import lavsim.cpu.core`` alone left 34 of 102 handlers out and their forms decoded as #UD. Now
each semantics module fills its own table and the decoder merges all of them; building refuses a
form without a handler, and a form whose timing key a profile lacks (unless its cost is charged
by its semantics: ``DYNAMIC_COST``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lavsim.cpu.decoder import (
    BINDERS,
    DYNAMIC_COST,
    HANDLERS,
    DecoderBuildError,
    check_tables,
    timing_key,
)
from lavsim.cpu.handlers import Semantics, merge
from lavsim.cpu.isa import FORMS, Form
from lavsim.timing import I486, PROFILES

SRC = Path(__file__).resolve().parents[2] / "src"

#: Decodes one encoding of every form after importing lavsim.cpu.core and nothing else of the
#: CPU; prints the forms whose handler is missing (none expected) and the number decoded.
ALONE = textwrap.dedent(
    """
    import sys
    import lavsim.cpu.core as core
    from lavsim.cpu import decoder
    from lavsim.cpu.isa import FORMS
    from lavsim.memory import PhysicalMemory
    from lavsim.mmu.mmu import MMU
    from lavsim.mmu.segmentation import SegmentCache
    from lavsim.timing import I486

    loaded = sorted(m for m in sys.modules if m.startswith("lavsim.cpu."))
    cpu = core.CPU(MMU(PhysicalMemory(1 << 20)), I486)
    cpu.seg[1] = SegmentCache.flat(0x08, 0, True)
    cpu.seg[3] = SegmentCache.flat(0x10, 0, False)

    def encoding(form):
        code = bytearray(b"\\x66" if "size16" in form.attrs else b"")
        code += form.opcode
        if form.reg_in_opcode:
            code[-1] += 1  # not 0x90 (NOP)
        if form.modrm is not None:
            reg = form.modrm if isinstance(form.modrm, int) else 0
            if "Sreg" in form.operands:
                reg = 3  # DS: CS is refused as a destination
            memory = any(op in ("m", "m16:v") for op in form.operands)
            code.append((0x00 if memory else 0xC0) | reg << 3)
        return bytes(code)

    missing, decoded = [], 0
    for form in FORMS:
        cpu.mmu.memory.write(0x1000, encoding(form) + bytes(16))
        insn = decoder.decode(cpu, 0x1000)
        name = insn.form.handler
        if insn.form.opcode != form.opcode or name not in decoder.HANDLERS:
            missing.append(f"{form.mnemonic}:{name}")
        elif not callable(insn.handler):
            missing.append(f"{form.mnemonic}:not callable")
        else:
            decoded += 1
    print(decoded, len(FORMS), ",".join(missing) or "-", " ".join(loaded))
    """
)


def test_importing_lavsim_cpu_core_alone_decodes_every_form_with_a_real_handler() -> None:
    out = subprocess.run(
        [sys.executable, "-c", ALONE], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    ).stdout.split(" ", 3)  # fmt: skip
    decoded, total, missing = int(out[0]), int(out[1]), out[2]
    assert missing == "-", f"forms without semantics after `import lavsim.cpu.core`: {missing}"
    assert decoded == total == len(FORMS)


def test_every_form_of_the_table_has_semantics_in_the_merged_tables() -> None:
    lacking = [f.mnemonic for f in FORMS if f.handler not in HANDLERS and f.handler not in BINDERS]
    assert lacking == []
    assert len({f.handler for f in FORMS}) == 116


def _fake_form(name: str = "frobnicate") -> Form:
    return Form(name, b"\x0f\xff", None, (), name, "nop")


def _tables() -> dict[str, dict[str, int]]:
    return {name: dict(p.table) for name, p in PROFILES.items()}


def test_the_real_tables_pass_the_build_check() -> None:
    check_tables(FORMS, HANDLERS, BINDERS, _tables())


def test_a_form_without_a_handler_is_refused_at_build_time_naming_it() -> None:
    forms = (*FORMS, _fake_form("frobnicate"))
    with pytest.raises(DecoderBuildError, match=r"no handler for frobnicate .*0fff, frobnicate"):
        check_tables(forms, HANDLERS, BINDERS, _tables())
    partial = {k: v for k, v in HANDLERS.items() if k != "iret"}
    with pytest.raises(DecoderBuildError, match=r"no handler for iretd"):
        check_tables(FORMS, partial, BINDERS, _tables())


def test_a_profile_lacking_a_forms_timing_key_is_refused_at_build_time_naming_both() -> None:
    add = next(f for f in FORMS if f.handler == "add" and f.operands[0].startswith("r/m"))
    assert timing_key(add, True, I486.table) is not None
    tables = _tables()
    family = [k for k in tables["i486"] if k.split(".")[0].split("_")[0] == add.timing]
    assert family, add.timing
    for key in family:  # the key and every fallback the decoder would try
        del tables["i486"][key]
    with pytest.raises(DecoderBuildError) as info:
        check_tables(FORMS, HANDLERS, BINDERS, tables)
    text = str(info.value)
    assert "profile 'i486' has no timing key for add" in text
    assert "memory form" in text and "'pentium'" not in text
    del tables["pentium"]["rep.base"]
    with pytest.raises(DecoderBuildError, match=r"'pentium' lacks 'rep\.base' for movs"):
        check_tables(FORMS, HANDLERS, BINDERS, tables)


def test_the_dynamic_cost_set_is_exact() -> None:
    """Every class in DYNAMIC_COST is used by a form and has no base key (its semantics charge
    the path taken); a stale or over-wide entry is refused."""
    with pytest.raises(DecoderBuildError, match="'nonesuch', which no form uses"):
        check_tables(FORMS, HANDLERS, BINDERS, _tables(), DYNAMIC_COST | {"nonesuch"})
    add = next(f for f in FORMS if f.handler == "add")
    with pytest.raises(DecoderBuildError, match="is in DYNAMIC_COST but profile"):
        check_tables(FORMS, HANDLERS, BINDERS, _tables(), DYNAMIC_COST | {add.timing})
    keyless = {f.timing for f in FORMS if timing_key(f, False, I486.table) is None
               and timing_key(f, True, I486.table) is None}  # fmt: skip
    assert keyless == DYNAMIC_COST


def test_a_handler_defined_by_two_semantics_modules_is_refused_naming_both() -> None:
    a, b = Semantics("mod_a"), Semantics("mod_b")
    a.handler("nop")(lambda cpu, insn: None)
    b.simple("nop")(lambda cpu, insn: None)
    with pytest.raises(RuntimeError, match="'nop' is defined by both mod_a and mod_b"):
        merge((a, b))
    with pytest.raises(RuntimeError, match="registered twice"):
        a.handler("nop")(lambda cpu, insn: None)
