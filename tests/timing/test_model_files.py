"""CPU-model files (TOML, format in docs/timing.md): a good file gives the model it describes
and round-trips; every bad file is refused naming the file, the key and, where known, the
line, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lavsim.errors import ConfigError, LavsimError
from lavsim.machine import MachineConfig
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.tlb import TLBConfig
from lavsim.models import (
    MODELS,
    ModelFileError,
    dump_model_text,
    get_model,
    load_model_file,
    parse_model_text,
)
from lavsim.timing import I486, PENTIUM

GOOD = """\
[model]
name = "i486-slowgate"      # required
base = "i486"               # a registered model
description = "what if the call gate cost 100 cycles"

[costs]
"call_gate.inner" = 100                                 # source: "set by <file> (was ...)"
"iret.outer" = { cycles = 40, source = "my estimate" }

[tlb]
entries = 64
ways = 4
"""


def _doc_example() -> str:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "timing.md").read_text("utf-8")
    start = doc.index("```toml\n") + len("```toml\n")
    return doc[start : doc.index("```", start)]


def test_a_good_file_gives_the_model_it_describes(tmp_path: Path) -> None:
    path = tmp_path / "slowgate.toml"
    path.write_text(GOOD, encoding="utf-8")
    model = load_model_file(path)
    assert model.name == "i486-slowgate"
    assert model.description == "what if the call gate cost 100 cycles"
    assert model.profile.cycles("call_gate.inner") == 100
    assert model.profile.source("call_gate.inner").startswith(f"set by {path} (was 69:")
    assert model.profile.cost("iret.outer").source == "my estimate"
    assert model.profile.cycles("iret.outer") == 40
    changed = {k for k in I486.costs if model.profile.cost(k) != I486.cost(k)}
    assert changed == {"call_gate.inner", "iret.outer"}
    assert model.mmu == MMUConfig(tlb=TLBConfig(64, 4))
    assert model.cpuid_signature == MODELS["i486"].cpuid_signature
    assert model.profile.ancestry == ("i486",)
    assert "i486-slowgate" not in MODELS, "loading registers nothing"
    assert MachineConfig(profile=model).model is model


def test_the_example_in_the_docs_is_a_good_file() -> None:
    model = parse_model_text(_doc_example(), "docs example")
    assert model.profile.cycles("call_gate.inner") == 100


def test_bare_dotted_keys_and_tlb_tables_are_accepted() -> None:
    model = parse_model_text(
        '[model]\nname = "p5x"\nbase = "pentium"\ncpuid_signature = 0x52c\n'
        "[costs]\ncall_gate.inner = 50\nrep_movs.per = { cycles = 2 }\n"
        "[tlb]\nitlb = false\nlarge_dtlb = { ways = 8 }\n",
        "t.toml",
    )
    assert model.profile.cycles("call_gate.inner") == 50
    assert model.profile.cycles("rep_movs.per") == 2
    assert model.cpuid_signature == 0x52C
    assert model.mmu == MMUConfig(tlb=TLBConfig(64, 4), itlb=None, large_dtlb=TLBConfig(8, 8))


@pytest.mark.parametrize("base", ["i486", "pentium"])
def test_a_model_round_trips_through_its_text(base: str) -> None:
    model = parse_model_text(GOOD.replace('"i486"', f'"{base}"'), "a.toml")
    text = dump_model_text(model)
    again = parse_model_text(text, "b.toml")
    assert again == model
    assert dump_model_text(again) == text


def test_a_with_costs_model_dumps_and_loads_back() -> None:
    model = get_model(PENTIUM.with_costs({"nop": 3}, name="p5-nop3"))
    assert parse_model_text(dump_model_text(model), "x") == model


BAD = [
    ("syntax error", '[model]\nname = "x\nbase = "i486"\n', "(syntax)", 2),
    ("unknown section", '[model]\nname = "x"\nbase = "i486"\n[cost]\nnop = 1\n', "cost", 4),
    ("unknown top-level key", 'name = "x"\n[model]\nbase = "i486"\n', "name", 1),
    ("unknown model key", '[model]\nname = "x"\nbase = "i486"\nbsae = 1\n', "model.bsae", 4),
    ("missing name", '[model]\nbase = "i486"\n', "model.name", 1),
    ("missing model", '[costs]\nnop = 1\n', "model", None),
    ("unknown base", '[model]\nname = "x"\nbase = "z80"\n', "model.base", 3),
    ("built-in name", '[model]\nname = "Pentium"\nbase = "i486"\n', "model.name", 2),
    ("unknown cost key", '[model]\nname = "x"\nbase = "i486"\n[costs]\n"call_gate.iner" = 1\n',
     "costs.call_gate.iner", 5),
    ("float cycles", '[model]\nname = "x"\nbase = "i486"\n[costs]\nnop = 1.5\n',
     "costs.nop", 5),
    ("string cycles", '[model]\nname = "x"\nbase = "i486"\n[costs]\nnop = "3"\n',
     "costs.nop", 5),
    ("negative cycles", '[model]\nname = "x"\nbase = "i486"\n[costs]\n\n"nop" = -1\n',
     "costs.nop", 6),
    ("bool cycles", '[model]\nname = "x"\nbase = "i486"\n[costs]\nnop = true\n',
     "costs.nop", 5),
    ("cost table without cycles", '[model]\nname = "x"\nbase = "i486"\n[costs]\n'
     'nop = { source = "s" }\n', "costs.nop", 5),
    ("cost table with an unknown field", '[model]\nname = "x"\nbase = "i486"\n[costs]\n'
     "nop = { cycles = 1, cylces = 2 }\n", "costs.nop", 5),
    ("empty source", '[model]\nname = "x"\nbase = "i486"\n[costs]\n'
     'nop = { cycles = 1, source = " " }\n', "costs.nop", 5),
    ("entries not a multiple of ways", '[model]\nname = "x"\nbase = "i486"\n[tlb]\n'
     "entries = 30\nways = 4\n", "tlb.entries", 5),
    ("zero ways", '[model]\nname = "x"\nbase = "i486"\n[tlb]\nways = 0\n', "tlb.ways", 5),
    ("huge TLB", '[model]\nname = "x"\nbase = "i486"\n[tlb]\nentries = 1000000\n',
     "tlb.entries", 5),
    ("unknown TLB key", '[model]\nname = "x"\nbase = "i486"\n[tlb]\nsize = 8\n', "tlb.size", 5),
    ("half an ITLB on a model without one", '[model]\nname = "x"\nbase = "i486"\n[tlb]\n'
     "itlb = { entries = 32 }\n", "tlb.itlb", 5),
    ("bad ITLB geometry", '[model]\nname = "x"\nbase = "pentium"\n[tlb]\n'
     "itlb = { entries = 33, ways = 4 }\n", "tlb.itlb.entries", 5),
    ("bad signature", '[model]\nname = "x"\nbase = "i486"\ncpuid_signature = -1\n',
     "model.cpuid_signature", 4),
    ("unknown issue key", '[model]\nname = "x"\nbase = "pentium"\n[issue]\npairs = 1\n',
     "issue.pairs", 5),
    ("issue flag not a bool", '[model]\nname = "x"\nbase = "pentium"\n[issue]\n'
     "pairing = 1\n", "issue.pairing", 5),
    ("negative AGI", '[model]\nname = "x"\nbase = "pentium"\n[issue]\nagi = -1\n',
     "issue.agi", 5),
    ("BTB ways not dividing", '[model]\nname = "x"\nbase = "pentium"\n[issue]\n'
     "btb_ways = 3\n", "issue.btb_ways", 5),
    ("fields with enabled = false", '[model]\nname = "x"\nbase = "pentium"\n[issue]\n'
     "enabled = false\nagi = 2\n", "issue.agi", 6),
]


@pytest.mark.parametrize(("text", "key", "line"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_file_is_refused_naming_the_file_the_key_and_the_line(
    text: str, key: str, line: int | None
) -> None:
    before = dict(MODELS)
    with pytest.raises(ModelFileError) as info:
        parse_model_text(text, "bad.toml")
    err = info.value
    assert isinstance(err, ConfigError) and isinstance(err, LavsimError)
    assert (err.origin, err.key, err.line) == ("bad.toml", key, line), str(err)
    assert str(err).startswith("bad.toml") and key in str(err)
    if line is not None:
        assert f"line {line}" in str(err)
    assert len(str(err)) < 300, str(err)
    assert dict(MODELS) == before


def test_issue_sections_switch_the_model_off_or_change_fields() -> None:
    off = load_model_file(Path(__file__).resolve().parents[2] / "examples" /
                          "pentium-sequential.toml")
    assert off.profile.issue is None and off.profile.costs == PENTIUM.costs
    assert off.profile.ancestry == ("pentium",)
    tuned = parse_model_text('[model]\nname = "p0f"\nbase = "pentium"\n[issue]\n'
                             "zero_f_prefix = false\nmispredict_jmp = 3\n", "t.toml")
    assert tuned.profile.issue is not None and PENTIUM.issue is not None
    assert not tuned.profile.issue.zero_f_prefix and tuned.profile.issue.mispredict_jmp == 3
    assert tuned.profile.issue.agi == PENTIUM.issue.agi
    agi = load_model_file(Path(__file__).resolve().parents[2] / "examples" / "i486-agi.toml")
    assert agi.profile.issue is not None and agi.profile.issue.agi == 1
    assert not agi.profile.issue.pairing and agi.profile.issue.btb_entries == 0
    for model in (off, tuned, agi):
        again = parse_model_text(dump_model_text(model), "again.toml")
        assert again.profile.issue == model.profile.issue


def test_an_unknown_cost_key_suggests_the_close_ones() -> None:
    with pytest.raises(ModelFileError) as info:
        parse_model_text('[model]\nname = "x"\nbase = "i486"\n[costs]\n"iret.outr" = 1\n', "f")
    assert "'iret.outer'" in str(info.value)


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        load_model_file(tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value)
