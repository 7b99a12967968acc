"""The issue model of a profile: how instructions enter the pipes, beyond their table figures.

An :class:`IssueModel` says whether a profile dual-issues (the Pentium's U/V pairing) and what
the events around issue cost: the address-generation interlock (AGI), prefix decoding,
misaligned data accesses and branch mispredictions with the branch target buffer (BTB) that
predicts them. A profile without one (``TimingProfile.issue is None``, the 486 and the
"pentium-sequential" model) charges every instruction its table figure alone, as before.

Where the sources disagree, the choice is a field (``zero_f_prefix``): docs/timing.md,
"Pentium issue model", gives each figure's source and the rules the CPU applies
(:mod:`lavsim.cpu.pairing`).
"""

from __future__ import annotations

from typing import Final

import attrs

from lavsim.errors import ConfigError

__all__ = ["I486_INTERLOCK", "ISSUE_FIELDS", "NOTHING", "PENTIUM_ISSUE", "IssueModel"]


def _count(name: str, value: object, high: int = 1000) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ConfigError(f"issue.{name}", f"must be an integer in 0..{high}, not {value!r}")


@attrs.frozen(slots=True)
class IssueModel:
    """Dual issue and issue-time penalties (every field in clocks unless said otherwise).

    ``pairing``: pair a U-pipe instruction with the next one in the V pipe by the rules of
    :mod:`lavsim.cpu.pairing`. ``agi``: stall when an address register was written by the
    previous issue group. ``prefix``: extra decode clocks per prefix byte (66, F0, segment
    overrides; REP string instructions excepted: their figures include it); a prefixed
    instruction pairs only in U. ``zero_f_prefix``: whether the 0F byte of a two-byte opcode
    counts as a prefix (except for the near Jcc). ``misaligned``: extra clocks of a data
    access that crosses a dword boundary. ``bank_conflict``: extra clocks of a pair whose two
    data accesses lie in the same bank of the data cache (address bits 2..4).
    ``btb_entries``/``btb_ways``: the branch target buffer (0 entries: no BTB, every branch
    predicted correctly). ``mispredict_u`` / ``mispredict_v``: extra clocks of a mispredicted
    conditional branch by pipe; ``mispredict_jmp``: of an unconditional direct JMP/CALL that
    missed in the BTB.
    """

    pairing: bool = True
    agi: int = 1
    prefix: int = 1
    zero_f_prefix: bool = True
    misaligned: int = 3
    bank_conflict: int = 1
    btb_entries: int = 256
    btb_ways: int = 4
    mispredict_u: int = 3
    mispredict_v: int = 4
    mispredict_jmp: int = 2

    def __attrs_post_init__(self) -> None:
        for name in ("pairing", "zero_f_prefix"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"issue.{name}", "must be true or false")
        for name in ("agi", "prefix", "misaligned", "bank_conflict", "mispredict_u",
                     "mispredict_v", "mispredict_jmp"):
            _count(name, getattr(self, name))
        _count("btb_entries", self.btb_entries, 1 << 16)
        _count("btb_ways", self.btb_ways, 64)
        if self.btb_entries:
            if self.btb_ways == 0 or self.btb_entries % self.btb_ways:
                raise ConfigError(
                    "issue.btb_ways", f"must divide btb_entries ({self.btb_entries}) and be >= 1"
                )
            sets = self.btb_entries // self.btb_ways
            if sets & (sets - 1):
                raise ConfigError("issue.btb_entries", "entries / ways must be a power of two")


#: An issue model that changes nothing: sequential issue, no penalties, no BTB (the start of
#: a model file's ``[issue]`` section on a base model without one).
NOTHING: Final = IssueModel(
    pairing=False, agi=0, prefix=0, zero_f_prefix=False, misaligned=0, bank_conflict=0,
    btb_entries=0, mispredict_u=0, mispredict_v=0, mispredict_jmp=0,
)

#: The 486's documented address-generation interlock alone ([EI486] p. 3-7: a load whose
#: address register the previous instruction wrote "takes three clocks rather than two"). Not
#: part of the built-in i486 profile, whose figures stay as published: examples/i486-agi.toml.
I486_INTERLOCK: Final = IssueModel(
    pairing=False, agi=1, prefix=0, zero_f_prefix=False, misaligned=0, bank_conflict=0,
    btb_entries=0, mispredict_u=0, mispredict_v=0, mispredict_jmp=0,
)

#: The fields a model file's ``[issue]`` section may set (``docs/timing.md``).
ISSUE_FIELDS: Final = tuple(a.name for a in attrs.fields(IssueModel))

PENTIUM_ISSUE: Final = IssueModel()
"""The Pentium's issue model. Sources (docs/sources.md): pairing classes and rules AP-500 §5.6
and appendix A as transcribed in [VEN] ``docs/ap500-pairing-table.md``, [PUM] §3.1.2, [AF]
ch. 10, [GPBB] ch. 20-21; AGI 1 clock [GPBB] ch. 21, [AF] ch. 9; prefix 1 clock and the 0F
byte counted as a prefix [GPBB] ch. 19 (the VTune page [VT] says 0F costs nothing, but it is
filed under the Pentium 4: ``zero_f_prefix = false`` follows it); misaligned access 3 clocks
[GPBB] ch. 19 and AP-500 via [VEN] ``docs/m5-cycle-spec.md``; bank conflict 1 clock [AF] ch. 10,
[VT]; BTB 256 entries 4-way, 2-bit
counters, not-taken on a miss [VEN] ``docs/m4-pipeline-spec.md``; a mispredicted Jcc takes 4
clocks in U and 5 in V, a mispredicted CALL or JMP 3 in either pipe [GPBB] ch. 21 (so +3, +4
and +2; [VEN] gives +3 for the unconditional ones: ``mispredict_jmp = 3`` follows it)."""
