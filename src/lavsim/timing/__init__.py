"""Cycle costs of the simulated CPUs: one data table per profile, every figure with its source.

The package holds the key vocabulary (:mod:`lavsim.timing.keys`), what a profile is
(:mod:`lavsim.timing.model`: :class:`Cost`, :class:`TimingProfile`) and one module per
built-in profile with its data table and sources (:mod:`lavsim.timing.i486`,
:mod:`lavsim.timing.pentium`). The CPU *models* built on these profiles (TLB organisation,
CPUID identity) are in :mod:`lavsim.models`. A profile's issue model (Pentium dual issue, AGI,
prefixes, the BTB) is :mod:`lavsim.timing.issue`. See ``docs/timing.md``.

Form letters in the keys: ``r`` register, ``m`` memory, ``i`` immediate; the first letter is the
destination (``alu.mr`` is ``ADD m32, r32``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from lavsim.errors import ConfigError, show_value
from lavsim.timing.i486 import I486
from lavsim.timing.issue import PENTIUM_ISSUE, IssueModel
from lavsim.timing.keys import KEY_MEANINGS, KEYS, REP_KINDS
from lavsim.timing.model import ESTIMATE_PREFIX, Cost, TimingProfile, UnknownTimingKeyError
from lavsim.timing.pentium import PENTIUM, PENTIUM_SEQUENTIAL

__all__ = [
    "ESTIMATE_PREFIX",
    "I486",
    "KEYS",
    "KEY_MEANINGS",
    "PENTIUM",
    "PENTIUM_ISSUE",
    "PENTIUM_SEQUENTIAL",
    "PROFILES",
    "REP_KINDS",
    "Cost",
    "IssueModel",
    "TimingProfile",
    "UnknownTimingKeyError",
    "get_profile",
]

PROFILES: Final[Mapping[str, TimingProfile]] = MappingProxyType(
    {p.name: p for p in (I486, PENTIUM)}
)
"""The built-in profiles by name: the one list of profile tables (a new profile module adds
its profile here; :mod:`lavsim.models` gives each one its CPU model)."""


def get_profile(name: str) -> TimingProfile:
    """The built-in profile called ``name`` (``"i486"`` or ``"pentium"``, any case)."""
    key = name.strip().lower() if isinstance(name, str) else name
    try:
        return PROFILES[key]
    except (KeyError, TypeError):
        known = ", ".join(sorted(PROFILES))
        raise ConfigError(
            "profile", f"unknown timing profile {show_value(name)}; known: {known}"
        ) from None
