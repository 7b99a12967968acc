"""The pairing rules, both directions, on decoded instructions; the build check of the class
table; the BTB; block execution against single-stepping under the issue model."""

from __future__ import annotations

import pytest
from cpu_harness import Bare

from lavsim.cpu import pairing
from lavsim.cpu.asm import assemble
from lavsim.cpu.decoder import DecoderBuildError, check_tables
from lavsim.cpu.isa import FORMS, Form
from lavsim.cpu.pairing import BTB, NP, PU, PV, UV, pairs
from lavsim.experiments.cycles import measure
from lavsim.timing import PENTIUM
from lavsim.timing.pentium import PENTIUM_SEQUENTIAL


def _issues(source: str) -> list[pairing.Issue]:
    b = Bare(profile=PENTIUM)
    code = assemble(source, 0x100000).code
    b.load(code)
    out = []
    eip = 0x100000
    while eip < 0x100000 + len(code):
        insn = b.cpu.fetch_decode(eip)
        assert insn.issue is not None
        out.append(insn.issue)
        eip = insn.next_eip
    return out


def _pair(source: str) -> bool:
    u, v = _issues(source)
    return pairs(u, v)


@pytest.mark.parametrize(
    ("source", "paired"),
    [
        ("mov eax,1\nmov ebx,2", True),
        ("mov eax,1\nmov ebx,eax", False),  # read after write
        ("mov eax,1\nmov eax,2", False),  # write after write
        ("mov eax,ebx\nmov ebx,1", True),  # write after read is fine
        ("mov al,1\nmov ah,0", False),  # a partial register is the whole register
        ("mov al,1\nmov bh,0", True),
        ("cmp eax,1\njne $", True),  # flags: CMP + Jcc
        ("add eax,1\nadd ebx,1", True),  # two flag writers
        ("push eax\npush ebx", True),  # ESP exception
        ("pop eax\npop ebx", True),
        ("push eax\ncall $+5", True),
        ("push eax\npop ebx", False),  # not an excepted ESP pair
        ("add esp,4\npush eax", False),  # an explicit ESP write
        ("mov dword ptr [ebx+4],1\nmov eax,1", False),  # displacement + immediate
        ("mov dword ptr [ebx],1\nmov eax,1", True),  # immediate, no displacement
        ("mov eax,1\nmov dword ptr [ebx+4],1", False),
        ("mov ax,1\nmov ebx,1", True),  # a prefixed instruction pairs in U...
        ("mov ebx,1\nmov ax,1", False),  # ...not in V
        ("adc eax,1\nmov ebx,1", True),  # PU
        ("mov ebx,1\nadc eax,1", False),
        ("mov ebx,1\njmp $", True),  # PV
        ("jmp $+2\nmov ebx,1", False),
        ("shl eax,1\nmov ebx,1", True),
        ("shl eax,cl\nmov ebx,1", False),  # shift by CL is NP
        ("mul ebx\nmov ecx,1", False),
        ("mov ecx,1\nmovzx eax,bl", False),
        ("test eax,ebx\njz $", True),
        ("test ebx,1\nmov eax,1", False),  # TEST r,imm other than eAX is NP
        ("test eax,1\nmov ebx,1", True),
    ],
)
def test_each_pairing_rule_in_both_directions(source: str, paired: bool) -> None:
    assert _pair(source) is paired


def test_classes_of_the_table() -> None:
    mov = next(f for f in FORMS if f.handler == "mov")
    push_rm = next(f for f in FORMS if f.handler == "push" and f.operands == ("r/mv",))
    assert pairing.class_of(mov, False) == UV
    assert pairing.class_of(push_rm, False) == UV and pairing.class_of(push_rm, True) == NP
    jcc = next(f for f in FORMS if f.handler == "jcc")
    adc = next(f for f in FORMS if f.handler == "adc")
    assert pairing.class_of(jcc, False) == PV and pairing.class_of(adc, False) == PU


def test_a_form_without_a_pairing_class_fails_the_build_naming_it() -> None:
    new = Form("frob", b"\x0f\xff", None, (), "frobnicate", "nop")
    handlers = {f.handler: object() for f in FORMS}
    with pytest.raises(DecoderBuildError, match=r"no pairing class .*frob") as refused:
        check_tables((*FORMS, new), handlers, {}, {}, frozenset())
    assert "nop" not in str(refused.value).replace("frob", "")  # only the new form is named


def test_agi_stalls_an_address_register_written_by_the_previous_clock_not_esp_by_push() -> None:
    assert measure("add ebx,4\nmov eax,[ebx]").cycles_per_iteration == 3  # 1 + AGI + 1
    assert measure("add ebx,4\nnop\nmov eax,[ebx]").cycles_per_iteration == 3  # paired, then AGI
    assert measure("push eax\nmov eax,[esp]").cycles_per_iteration == 2  # no AGI after PUSH
    assert measure("add esp,0\nnop\nmov eax,[esp]").cycles_per_iteration == 3  # AGI


def test_prefix_and_0f_cost_a_clock_and_misalignment_three() -> None:
    assert measure("mov ax,1").cycles_per_iteration == 2
    assert measure("movzx eax,bl").cycles_per_iteration == 4  # 3 + the 0F byte
    base = measure("mov eax,[ebx]").cycles_per_iteration
    assert measure("mov eax,[ebx+1]").cycles_per_iteration == base + 3


def test_a_loop_branch_is_predicted_after_warm_up_and_an_alternating_one_mispredicts() -> None:
    btb = BTB(256, 4)
    outcomes = [btb.predict_and_update(0x1234, True) for _ in range(5)]
    assert outcomes == [True, False, False, False, False]
    btb = BTB(256, 4)
    alternating = [btb.predict_and_update(0x40, k % 2 == 0) for k in range(8)]
    # T (miss: allocated strongly taken), N (3 -> 2: wrong), T (right), N (wrong)...
    assert alternating == [True, True, False, True, False, True, False, True]


def test_the_btb_state_round_trips_and_refuses_bad_entries() -> None:
    btb = BTB(256, 4)
    for a in (1, 65, 129, 193, 257):
        btb.predict_and_update(a, True)
    state = btb.get_state()
    other = BTB(256, 4)
    other.set_state(state)
    assert other.get_state() == state
    assert len(state["sets"][1]) == 4  # five in one set: the least recently used went
    bad = {**state, "sets": [[[2, 3]], *state["sets"][1:]]}
    with pytest.raises(ValueError):
        other.set_state(bad)
    assert other.get_state() == state


_PROGRAM = """
    mov ecx, 300
top:
    mov eax, [esi]
    add esi, 4
    add ebx, eax
    mov [edi+8], ebx
    push eax
    push ebx
    pop edx
    pop edx
    test ecx, 3
    jz skip
    add edi, 4
    mov ax, [esi+1]
skip:
    dec ecx
    jnz top
    ud2
"""


@pytest.mark.parametrize("fast", [True, False])
def test_blocks_and_single_steps_give_identical_cycles_and_results(fast: bool) -> None:
    results = []
    for step in (False, True):
        b = Bare(profile=PENTIUM)
        b.cpu.fast = fast
        code = assemble(_PROGRAM, 0x100000).code
        b.load(code)
        b.cpu.regs[6] = 0x200000
        b.cpu.regs[7] = 0x210000
        if step:
            for _ in range(5000):
                b.step()
                if b.faults:
                    break
        else:
            while not b.faults:
                b.run(max_instructions=7)  # cut anywhere, also inside pairs
        results.append((b.cpu.tsc, list(b.cpu.regs), b.cpu.btb.get_state() if b.cpu.btb else 0))
    assert results[0] == results[1]


def test_the_issue_model_changes_no_architectural_result() -> None:
    regs = []
    cycles = []
    for profile in (PENTIUM, PENTIUM_SEQUENTIAL):
        b = Bare(profile=profile)
        b.load(assemble(_PROGRAM, 0x100000).code)
        b.cpu.regs[6] = 0x200000
        b.cpu.regs[7] = 0x210000
        while not b.faults:
            b.run(max_instructions=1000)
        regs.append((list(b.cpu.regs), b.cpu.eip, bytes(b.mem.read(0x210000, 2048))))
        cycles.append(b.cpu.tsc)
    assert regs[0] == regs[1]
    assert cycles[0] < cycles[1]


def test_a_predicted_loop_branch_costs_nothing_after_warm_up() -> None:
    report = measure("top: dec ecx\njnz top", iterations=20)
    assert report.cycles_per_iteration == 1  # DEC in U, JNZ in V, predicted


def test_an_alternating_branch_mispredicts_every_not_taken_by_pipe() -> None:
    # JZ in V: taken iterations 2 cycles, not-taken ones 1 + 4 (V penalty) + 1 + 1 = 7.
    v = measure("top: xor eax,1\njz skip\nnop\nskip: dec ecx\njnz top", iterations=10, warmup=3)
    assert v.cycles_per_iteration == (2 + 7) / 2 and v.mispredicts == 5
    # JZ alone in U: taken 1 + 1 + 1 = 3, not taken 1 + (1 + 3) + 1 + 1 = 7.
    u = measure("top: xor eax,1\nnop\njz skip\nnop\nskip: dec ecx\njnz top", iterations=10,
                warmup=3)
    assert u.cycles_per_iteration == (3 + 7) / 2


def test_a_missed_unconditional_jump_costs_its_penalty_once() -> None:
    # Measured after the warm pass: the JMP (alone: nothing before it in the snippet) is in
    # the BTB, 1 clock, then the NOP at its target 1; the warm pass paid the miss.
    report = measure("jmp next\nnop\nnext: nop")
    assert report.cycles_per_iteration == 2 and report.mispredicts == 0
    assert PENTIUM.issue is not None and PENTIUM.issue.mispredict_jmp == 2
