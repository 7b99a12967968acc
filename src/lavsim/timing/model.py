"""What a timing profile is: :class:`Cost`, :class:`TimingProfile`, its errors, and the helpers
the profile modules use to write their source citations.

A :class:`TimingProfile` maps a *timing key* (a string of the vocabulary
:data:`~lavsim.timing.keys.KEYS`) to a :class:`Cost`: a cycle count and the citation it was
taken from. Figures come from *timing-reference* (the collected published 486/Pentium clock
counts, listed with full citations in ``docs/sources.md``); each source string names the
reference's source key (``[H]``, ``[AF]``, ``[MS]``, ``[MAME]``, ``[86B]``, ``[EI486]``,
``[I386]``) and section, or, for sources
found after that reference was compiled (``[PIR]``, 86Box's ``x86_ops_rep.h``, the x86 Norton
Guide; see ``docs/timing.md``), the repository path or address of the page. A figure no source
gives is an *estimate*: its source text starts with ``"estimate:"`` and says how it was
obtained.

The cycle model (what is charged statically and what dynamically) is described in
``docs/timing.md``; in short, a decoded instruction is charged the cost of its key, and the
CPU adds the dynamic parts as they happen: the taken/not-taken branch keys, ``rep.base`` plus a
``rep_*.per`` per iteration, the call-gate parameter copies (:meth:`TimingProfile.call_gate_cycles`)
and the page-walk reads and A/D writes the MMU reports on a TLB miss
(:meth:`TimingProfile.page_walk_cycles`). All figures are best case: caches hit, the TLB hits
(misses are charged separately), operands aligned, no address-generation interlocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

import attrs

from lavsim.errors import ConfigError, LavsimError
from lavsim.timing.issue import IssueModel
from lavsim.timing.keys import KEYS, REP_KINDS

__all__ = [
    "ESTIMATE_PREFIX",
    "Cost",
    "TimingProfile",
    "UnknownTimingKeyError",
    "build_profile",
    "cite_86b",
    "cite_af",
    "cite_h",
    "cite_later",
    "cite_mame",
    "cite_ms",
    "cite_pir",
    "cite_rep86",
    "estimate",
]

ESTIMATE_PREFIX: Final = "estimate:"

_KEY_SET: Final = frozenset(KEYS)

# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


class UnknownTimingKeyError(LavsimError, KeyError):
    """A timing key that the profile does not define was looked up."""

    def __init__(self, key: str, profile: str) -> None:
        super().__init__(key)
        self.key = key
        self.profile = profile

    def __str__(self) -> str:
        return f"timing profile {self.profile!r} has no cost for key {self.key!r}"


@attrs.frozen(slots=True)
class Cost:
    """One cycle figure and where it comes from.

    ``source`` is a citation (source key of ``timing-reference.md`` and its section) or a text
    starting with ``"estimate:"`` that says how the figure was obtained. Values are checked
    when a :class:`TimingProfile` is built, so that the error can name the key.
    """

    cycles: int
    source: str

    @property
    def is_estimate(self) -> bool:
        """True when the figure is not a published one."""
        return self.source.lstrip().lower().startswith(ESTIMATE_PREFIX)


def _freeze_costs(costs: Mapping[str, Cost]) -> Mapping[str, Cost]:
    if not isinstance(costs, Mapping):
        raise ConfigError("costs", f"must be a mapping of key -> Cost, not {type(costs).__name__}")
    return MappingProxyType(dict(costs))


def _names(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ConfigError("ancestry", "must be a tuple of profile names")
    return tuple(names)


@attrs.frozen(slots=True)
class TimingProfile:
    """The cycle costs of one CPU model.

    Built once and never changed; :attr:`table` is a plain ``dict`` view ``key -> cycles`` for
    the hot path (do not mutate it; derive a new profile with :meth:`with_costs`).
    Construction refuses, with :class:`~lavsim.errors.ConfigError` naming the field, a missing
    or unknown key, a cycle count that is not a non-negative ``int``, or an empty source.

    ``ancestry``: the names of the profiles this one was derived from, nearest first (empty for
    a built-in profile; :meth:`with_costs` fills it in). :func:`lavsim.models.get_model` uses it
    to find the CPU model (TLBs, CPUID) a user-made profile belongs to.
    """

    name: str
    # The repr stays one short line (a profile is often shown inside an error message or the
    # repr of a configuration): the 150-odd costs and the description are summarised.
    costs: Mapping[str, Cost] = attrs.field(
        converter=_freeze_costs, hash=False, repr=lambda c: f"<{len(c)} costs>"
    )
    description: str = attrs.field(default="", repr=False)
    ancestry: tuple[str, ...] = attrs.field(default=(), converter=_names)
    #: How instructions issue (U/V pairing, AGI, prefixes, misalignment, the BTB); None: every
    #: instruction alone, charged its table figure (see :mod:`lavsim.timing.issue`).
    issue: IssueModel | None = None
    table: dict[str, int] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("name", "a timing profile needs a non-empty name")
        if not all(isinstance(a, str) and a.strip() for a in self.ancestry):
            raise ConfigError("ancestry", "must be a tuple of profile names")
        if self.issue is not None and not isinstance(self.issue, IssueModel):
            raise ConfigError("issue", f"must be an IssueModel or None, not {self.issue!r}")
        missing = [k for k in KEYS if k not in self.costs]
        if missing:
            shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            raise ConfigError(
                f"costs[{missing[0]!r}]",
                f"profile {self.name!r} lacks {len(missing)} required key(s): {shown}",
            )
        for key, cost in self.costs.items():
            field = f"costs[{key!r}]"
            if key not in _KEY_SET:
                raise ConfigError(field, f"unknown timing key in profile {self.name!r}")
            if not isinstance(cost, Cost):
                raise ConfigError(field, f"must be a Cost, not {type(cost).__name__}")
            if isinstance(cost.cycles, bool) or not isinstance(cost.cycles, int):
                raise ConfigError(field, f"cycles must be an int, not {cost.cycles!r}")
            if cost.cycles < 0:
                raise ConfigError(field, f"cycles must be >= 0, got {cost.cycles}")
            if not isinstance(cost.source, str) or not cost.source.strip():
                raise ConfigError(field, "every cost needs a non-empty source")
        object.__setattr__(self, "table", {k: self.costs[k].cycles for k in KEYS})

    # -- lookups ---------------------------------------------------------------------------

    def cycles(self, key: str) -> int:
        """Cycles charged for ``key``; :class:`UnknownTimingKeyError` names an unknown key."""
        try:
            return self.table[key]
        except KeyError:
            raise UnknownTimingKeyError(key, self.name) from None

    def cost(self, key: str) -> Cost:
        """The :class:`Cost` (cycles and source) of ``key``."""
        try:
            return self.costs[key]
        except KeyError:
            raise UnknownTimingKeyError(key, self.name) from None

    def source(self, key: str) -> str:
        """Where the figure for ``key`` comes from."""
        return self.cost(key).source

    def estimates(self) -> tuple[str, ...]:
        """The keys whose figure is an estimate, in vocabulary order."""
        return tuple(k for k in KEYS if self.costs[k].is_estimate)

    # -- composite costs (the documented combination rules) ---------------------------------

    def call_gate_cycles(self, inner: bool, params: int = 0) -> int:
        """Far CALL through a call gate.

        Same privilege: ``call_gate.same`` (no parameters are copied). To more privilege:
        ``call_gate.inner`` with no parameters, otherwise
        ``call_gate.inner_params_base + params * call_gate.param`` (the 486's 69 and 77+4x).
        """
        if params < 0 or params > 31:
            raise ConfigError("params", f"a call gate copies 0..31 parameters, not {params}")
        t = self.table
        if not inner:
            return t["call_gate.same"]
        if params == 0:
            return t["call_gate.inner"]
        return t["call_gate.inner_params_base"] + params * t["call_gate.param"]

    def rep_cycles(self, kind: str, count: int) -> int:
        """A REP string instruction run for ``count`` iterations: base + count x per-item."""
        if kind not in REP_KINDS:
            raise ConfigError("kind", f"unknown string operation {kind!r}; known: {REP_KINDS}")
        if count < 0:
            raise ConfigError("count", f"iteration count must be >= 0, got {count}")
        return self.table["rep.base"] + count * self.table[f"rep_{kind}.per"]

    def page_walk_cycles(self, reads: int, ad_writes: int) -> int:
        """Cycles of a TLB miss that read ``reads`` entries and wrote ``ad_writes`` A/D bits."""
        t = self.table
        return reads * t["page_walk.read"] + ad_writes * t["page_walk.ad_write"]

    # -- derivation ------------------------------------------------------------------------

    def with_costs(
        self,
        changes: Mapping[str, Cost | int],
        name: str | None = None,
        *,
        description: str | None = None,
        origin: str = "with_costs",
    ) -> TimingProfile:
        """A new profile with some costs replaced (for sweeps); ``self`` is unchanged.

        A value may be a :class:`Cost` or a bare ``int``; a bare int keeps a source that says
        it was set by ``origin`` and what it replaced. Unknown keys are refused like at
        construction. The new profile's :attr:`ancestry` starts with ``self.name``, so it still
        belongs to the CPU model of ``self`` (:func:`lavsim.models.get_model`).
        """
        if not isinstance(changes, Mapping):
            raise ConfigError("changes", f"must be a mapping, not {type(changes).__name__}")
        merged = dict(self.costs)
        for key, value in changes.items():
            if key not in _KEY_SET:
                raise ConfigError(f"costs[{key!r}]", "unknown timing key")
            if isinstance(value, Cost):
                merged[key] = value
            else:
                old = self.costs[key]
                verb = "override via" if origin == "with_costs" else "set by"
                merged[key] = Cost(value, f"{verb} {origin} (was {old.cycles}: {old.source})")
        return TimingProfile(
            name=name if name is not None else f"{self.name}-modified",
            costs=merged,
            description=self.description if description is None else description,
            ancestry=(self.name, *self.ancestry),
            issue=self.issue,
        )

    def with_issue(
        self, issue: IssueModel | None, name: str | None = None, description: str | None = None
    ) -> TimingProfile:
        """A new profile with another issue model (None: sequential issue); same costs, and
        like :meth:`with_costs` it belongs to the CPU model of ``self``."""
        return TimingProfile(
            name=name if name is not None else f"{self.name}-modified",
            costs=self.costs,
            description=self.description if description is None else description,
            ancestry=(self.name, *self.ancestry),
            issue=issue,
        )


# --------------------------------------------------------------------------------------------
# Citation helpers (source keys of timing-reference; see docs/sources.md)
# --------------------------------------------------------------------------------------------


def _with(text: str, note: str) -> str:
    return f"{text}; {note}" if note else text


def cite_h(sec: int, note: str = "") -> str:
    """HelpPC's 486 column [H], timing-reference section ``sec``; ``note`` appended."""
    return _with(f"HelpPC 2.10 486 column [H] (timing-reference §{sec})", note)


def cite_af(sec: int, note: str = "") -> str:
    """Agner Fog's Pentium list [AF], timing-reference section ``sec``."""
    return _with(f"Agner Fog pentopt instruction list [AF] (timing-reference §{sec})", note)


def cite_ms(sec: int, note: str = "") -> str:
    """The MASM Pentium notes [MS], timing-reference section ``sec``."""
    return _with(f"MASM Pentium clock-cycle notes [MS] (timing-reference §{sec})", note)


def cite_mame(sec: int, note: str = "") -> str:
    """MAME's Pentium column [MAME] (an emulator), timing-reference section ``sec``."""
    return _with(f"MAME cycles.h pentium column [MAME], emulator (timing-reference §{sec})", note)


def cite_86b(sec: int, name: str, note: str = "") -> str:
    """86Box's ``cpu.c`` table entry ``name`` [86B] (an emulator), timing-reference ``sec``."""
    return _with(f"86Box cpu.c {name} [86B], emulator (timing-reference §{sec})", note)


_LATER: Final = "later source, docs/timing.md"
"""Marks a citation of a source found after timing-reference was compiled (listed in docs)."""


def cite_pir(page: str, note: str = "") -> str:
    """A page of the Pentium instruction reference [PIR] (a later source, docs/timing.md)."""
    return _with(
        f"Intel Pentium Instruction Set Reference [PIR], qb40/asm-help ASMHELP/{page}, Clocks "
        f"column ({_LATER})",
        note,
    )


def cite_rep86(expr: str, note: str = "") -> str:
    """86Box's REP loop charge ``expr`` (a later source, docs/timing.md)."""
    return _with(
        f"86Box src/cpu/x86_ops_rep.h [86B], emulator: REP loop charges `{expr}` per iteration "
        f"({_LATER})",
        note,
    )


def cite_later(text: str, note: str = "") -> str:
    """A source found after timing-reference was compiled (listed in docs/timing.md)."""
    return _with(f"{text} ({_LATER})", note)


def estimate(text: str) -> str:
    """A figure no source gives: ``text`` says how it was obtained."""
    return f"{ESTIMATE_PREFIX} {text}"


def build_profile(
    name: str,
    description: str,
    data: Mapping[str, tuple[int, str]],
    issue: IssueModel | None = None,
) -> TimingProfile:
    """A profile from a profile module's data table ``key -> (cycles, source)``."""
    return TimingProfile(
        name=name,
        costs={k: Cost(c, s) for k, (c, s) in data.items()},
        description=description,
        issue=issue,
    )
