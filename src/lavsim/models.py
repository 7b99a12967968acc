"""CPU models as data: what distinguishes one simulated processor from another.

A :class:`CpuModel` bundles a timing profile (:mod:`lavsim.timing`), a TLB organisation
(:class:`~lavsim.mmu.mmu.MMUConfig`) and the CPUID identity the processor reports. Every part of
lavsim that depends on "which CPU" reads it from here: :class:`~lavsim.machine.MachineConfig`
takes its timing, TLBs and CPUID signature from the model; nothing compares model names.

One registry, :data:`MODELS`, holds the built-in models ``i486`` and ``pentium``;
:func:`register_model` adds more. :func:`get_model` turns whatever a caller was given (a name, a
model, or a user-made :class:`~lavsim.timing.TimingProfile`) into a model. Models can also be
written as TOML files (:func:`load_model_file`, format in ``docs/timing.md``).

Layering: above :mod:`lavsim.timing` and :mod:`lavsim.mmu`, below :mod:`lavsim.machine`. The CPU
layer does not import this module; the machine hands the CPU plain values (the profile, the
CPUID signature).
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import attrs

from lavsim.errors import ConfigError, FileEntryError, check_int, show_value
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.tlb import TLBConfig
from lavsim.timing import I486, KEYS, PENTIUM, Cost, TimingProfile
from lavsim.timing.issue import ISSUE_FIELDS, NOTHING, IssueModel

__all__ = [
    "MODELS",
    "CpuModel",
    "ModelFileError",
    "ModelSpec",
    "dump_model_text",
    "get_model",
    "load_model_file",
    "parse_model_text",
    "register_model",
    "signature",
    "unregister_model",
]


def signature(family: int, model: int, stepping: int = 0) -> int:
    """The EAX of CPUID leaf 1: ``family << 8 | model << 4 | stepping`` (4 bits each)."""
    for name, value in (("family", family), ("model", model), ("stepping", stepping)):
        check_int(name, value, 0, 15)
    return (family << 8) | (model << 4) | stepping


@attrs.frozen
class CpuModel:
    """One simulated processor: ``name``, a ``description``, its timing ``profile``, its TLB
    organisation ``mmu`` and ``cpuid_signature``, the EAX of CPUID leaf 1 (family, model,
    stepping; see :func:`signature`). Checked when built (:class:`ConfigError` names the field).
    """

    name: str
    profile: TimingProfile
    mmu: MMUConfig
    cpuid_signature: int
    description: str = attrs.field(default="", repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("name", f"must be a non-empty string, not {show_value(self.name)}")
        if not isinstance(self.profile, TimingProfile):
            raise ConfigError("profile", f"must be a TimingProfile, not {_type(self.profile)}")
        if not isinstance(self.mmu, MMUConfig):
            raise ConfigError("mmu", f"must be an MMUConfig, not {_type(self.mmu)}")
        check_int("cpuid_signature", self.cpuid_signature, 0, 0xFFFF_FFFF, hexadecimal=True)
        if not isinstance(self.description, str):
            raise ConfigError("description", "must be a str")

    @property
    def key(self) -> str:
        """The registry key: the name without surrounding space, lower case."""
        return _key(self.name)

    def with_profile(
        self, profile: TimingProfile, name: str | None = None, description: str | None = None
    ) -> CpuModel:
        """This model with another timing profile (same TLBs and CPUID); named after the
        profile unless ``name`` is given."""
        if not isinstance(profile, TimingProfile):
            raise ConfigError("profile", f"must be a TimingProfile, not {_type(profile)}")
        return attrs.evolve(
            self,
            name=profile.name if name is None else name,
            profile=profile,
            description=self.description if description is None else description,
        )


#: What :func:`get_model` accepts: a model name, a model, or a profile derived from one.
ModelSpec: TypeAlias = str | CpuModel | TimingProfile


def _key(name: str) -> str:
    return name.strip().lower()


def _type(value: object) -> str:
    return type(value).__name__


_BUILTIN: Final[tuple[CpuModel, ...]] = (
    CpuModel("i486", I486, MMUConfig.i486(), signature(4, 8, 0), I486.description),
    CpuModel("pentium", PENTIUM, MMUConfig.pentium(), signature(5, 2, 1), PENTIUM.description),
)
"""The built-in models (the signatures are lavsim's documented, made-up identity: an Intel486
DX4-like family 4 model 8, a P54C-like family 5 model 2 stepping 1)."""

_REGISTRY: dict[str, CpuModel] = {m.key: m for m in _BUILTIN}

MODELS: Final[Mapping[str, CpuModel]] = MappingProxyType(_REGISTRY)
"""Every registered model by registry key (lower-case name); read-only, see
:func:`register_model`."""


def register_model(model: CpuModel) -> CpuModel:
    """Add ``model`` to :data:`MODELS` (so that its name works wherever a CPU is named) and
    return it. Registering an equal model again does nothing; another model under a name that
    is taken is refused (:class:`ConfigError`, registry unchanged)."""
    if not isinstance(model, CpuModel):
        raise ConfigError("model", f"must be a CpuModel, not {_type(model)}")
    old = _REGISTRY.get(model.key)
    if old is not None and old != model:
        raise ConfigError("model", f"another CPU model is registered as {model.key!r}")
    _REGISTRY[model.key] = model
    return model


def unregister_model(name: str) -> None:
    """Remove the model registered as ``name``; the built-in models cannot be removed."""
    key = _key(name) if isinstance(name, str) else ""
    if key in (m.key for m in _BUILTIN):
        raise ConfigError("model", f"{key!r} is a built-in model")
    if key not in _REGISTRY:
        raise ConfigError("model", f"no model is registered as {show_value(name)}")
    del _REGISTRY[key]


def _known() -> str:
    return ", ".join(sorted(_REGISTRY))


def get_model(spec: object, field: str = "profile") -> CpuModel:
    """The CPU model ``spec`` stands for.

    - a name (``"i486"``, ``" Pentium "``: case and surrounding space ignored): the registered
      model of that name;
    - a :class:`CpuModel`: itself;
    - a :class:`TimingProfile`: the registered model whose profile it is, else the nearest
      registered model in its :attr:`~lavsim.timing.TimingProfile.ancestry` (a profile made
      with ``with_costs`` keeps the TLBs and CPUID of the model it was derived from) with
      this profile (:meth:`CpuModel.with_profile`).

    Anything else is refused with a short :class:`ConfigError` naming ``field``.
    """
    if isinstance(spec, CpuModel):
        return spec
    if isinstance(spec, str):
        model = _REGISTRY.get(_key(spec))
        if model is None:
            raise ConfigError(field, f"unknown CPU model {show_value(spec)}; known: {_known()}")
        return model
    if isinstance(spec, TimingProfile):
        for model in _REGISTRY.values():
            if model.profile == spec:
                return model
        for name in (spec.name, *spec.ancestry):
            model = _REGISTRY.get(_key(name))
            if model is not None:
                return model.with_profile(spec)
        raise ConfigError(
            field,
            f"timing profile {show_value(spec.name, 40)} derives from no registered CPU model "
            f"(ancestry {show_value(list(spec.ancestry), 40)}; known: {_known()}); derive it "
            "from one with with_costs, or pass CpuModel.with_profile(...)",
        )
    raise ConfigError(
        field,
        f"must be a CPU model name, a CpuModel or a TimingProfile, not {type(spec).__name__} "
        f"{show_value(spec, 40)}",
    )


# --------------------------------------------------------------------------------------------
# Model files (TOML); the format is documented in docs/timing.md
# --------------------------------------------------------------------------------------------


class ModelFileError(FileEntryError):
    """A CPU-model file was refused: names the file (``origin``), the offending ``key``
    (dotted, e.g. ``costs.iret.outer``) and, where known, the 1-based ``line``."""


_SECTIONS: Final = ("model", "costs", "tlb", "issue")
_MODEL_KEYS: Final = ("name", "base", "description", "cpuid_signature")
_TLB_KEYS: Final = ("entries", "ways", "itlb", "large_dtlb")
_MAX_TLB_ENTRIES: Final = 4096


def _close(word: str, choices: Iterable[str]) -> str:
    near = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""


def _list(names: tuple[str, ...]) -> str:
    return ", ".join(names)


class _Reader:
    """Checks one parsed file; every refusal names the file, the key and its line."""

    def __init__(self, text: str, origin: str) -> None:
        self.lines = text.splitlines()
        self.origin = origin

    def line_of(self, section: str, key: str | None) -> int | None:
        """The line defining ``key`` in ``[section]`` (or the section header), best effort:
        tomllib reports positions only for syntax errors."""
        current = ""
        header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
        forms = () if key is None else (f'"{key}"', f"'{key}'", key, key.split(".")[0])
        for number, raw in enumerate(self.lines, 1):
            m = header.match(raw)
            if m:
                current = m.group(1).strip().strip('"')
                if key is None and current == section:
                    return number
                continue
            if current != section:
                continue
            stripped = raw.lstrip()
            for form in forms:
                if stripped.startswith(form) and stripped[len(form):].lstrip()[:1] in ("=", "."):
                    return number
        return None

    def fail(self, section: str, key: str | None, message: str) -> ModelFileError:
        dotted = section if key is None else f"{section}.{key}"
        line = self.line_of(section, key)
        if line is None:  # a missing key: point at its section
            line = self.line_of(section, None)
        return ModelFileError(self.origin, dotted, message, line)

    def integer(self, section: str, key: str, value: object, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(section, key, f"must be an integer, not {show_value(value, 30)}")
        if not low <= value <= high:
            raise self.fail(section, key, f"must be in {low}..{high}, got {value}")
        return value


def _flatten(costs: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    # A bare dotted key (call_gate.inner = 100) is a nested table in TOML; the cost keys have
    # dots, so join them back. A table that is a known key is a {cycles, source} cost.
    for key, value in costs.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and full not in KEYS:
            yield from _flatten(value, f"{full}.")
        else:
            yield full, value


def _cost(r: _Reader, key: str, value: object, old: Cost) -> Cost | int:
    if isinstance(value, dict):
        extra = [k for k in value if k not in ("cycles", "source")]
        if extra:
            raise r.fail("costs", key, f"unknown field {extra[0]!r}; a cost has cycles, source")
        if "cycles" not in value:
            raise r.fail("costs", key, "a cost table needs cycles")
        cycles = r.integer("costs", key, value["cycles"], 0, 1_000_000)
        source = value.get("source", f"set by {r.origin} (was {old.cycles}: {old.source})")
        if not isinstance(source, str) or not source.strip():
            raise r.fail("costs", key, "source must be a non-empty string")
        return Cost(cycles, source)
    return r.integer("costs", key, value, 0, 1_000_000)


def _tlb(r: _Reader, key: str, value: object, old: TLBConfig | None) -> TLBConfig | None:
    if value is False:
        return None
    if not isinstance(value, dict):
        raise r.fail("tlb", key, "must be a table {entries = n, ways = w} or false (none)")
    extra = [k for k in value if k not in ("entries", "ways")]
    if extra:
        raise r.fail("tlb", key, f"unknown field {extra[0]!r}; a TLB has entries, ways")
    if old is None and not ("entries" in value and "ways" in value):
        raise r.fail("tlb", key, "the base model has no such TLB: give both entries and ways")
    return _geometry(r, key, value, old)


def _geometry(
    r: _Reader, key: str, value: Mapping[str, Any], old: TLBConfig | None
) -> TLBConfig:
    where = "" if key == "" else f"{key}."
    entries = value.get("entries", old.entries if old else None)
    ways = value.get("ways", old.ways if old else None)
    entries = r.integer("tlb", f"{where}entries", entries, 1, _MAX_TLB_ENTRIES)
    ways = r.integer("tlb", f"{where}ways", ways, 1, entries)
    if entries % ways:
        raise r.fail("tlb", f"{where}entries", f"must be a multiple of ways ({ways})")
    return TLBConfig(entries, ways)


def _mmu(r: _Reader, table: Mapping[str, Any], base: MMUConfig) -> MMUConfig:
    for key in table:
        if key not in _TLB_KEYS:
            raise r.fail("tlb", key, f"unknown key; known: {_list(_TLB_KEYS)}")
    main = {k: table[k] for k in ("entries", "ways") if k in table}
    tlb = _geometry(r, "", main, base.tlb) if main else base.tlb
    itlb = _tlb(r, "itlb", table["itlb"], base.itlb) if "itlb" in table else base.itlb
    large = (
        _tlb(r, "large_dtlb", table["large_dtlb"], base.large_dtlb)
        if "large_dtlb" in table
        else base.large_dtlb
    )
    return MMUConfig(tlb=tlb, itlb=itlb, large_dtlb=large, fast_path=base.fast_path)


_ISSUE_KEYS: Final = ("enabled", *ISSUE_FIELDS)


def _issue(r: _Reader, table: Mapping[str, Any], old: IssueModel | None) -> IssueModel | None:
    """The ``[issue]`` section: ``enabled = false`` (sequential issue) or fields to change in
    the base's issue model (in :data:`~lavsim.timing.issue.NOTHING`, everything off, if the
    base has none)."""
    for key in table:
        if key not in _ISSUE_KEYS:
            raise r.fail("issue", key, f"unknown key; known: {_list(_ISSUE_KEYS)}")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise r.fail("issue", "enabled", "must be true or false")
    if not enabled:
        others = [k for k in table if k != "enabled"]
        if others:
            raise r.fail("issue", others[0], "has no meaning with enabled = false")
        return None
    values = {k: v for k, v in table.items() if k != "enabled"}
    try:
        return attrs.evolve(old if old is not None else NOTHING, **values)
    except ConfigError as error:
        key = error.field.split(".", 1)[-1]
        raise r.fail("issue", key, str(error)[len(error.field) + 2:]) from None


def parse_model_text(text: str, origin: str = "<text>") -> CpuModel:
    """The CPU model described by the TOML ``text`` (format: ``docs/timing.md``); ``origin``
    names it in errors and in the sources of bare-integer costs. Every refusal is a
    :class:`ModelFileError` naming ``origin``, the key and, where known, the line. Nothing is
    registered (see :func:`register_model`)."""
    r = _Reader(text, origin)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        line = int(m.group(1)) if m else None
        raise ModelFileError(origin, "(syntax)", f"not valid TOML: {exc}", line) from None
    for name, value in data.items():
        if name not in _SECTIONS:
            kind = "section" if isinstance(value, dict) else "top-level key"
            raise ModelFileError(
                origin,
                name,
                f"unknown {kind}; the sections are [model], [costs], [tlb], [issue]"
                + _close(name, _SECTIONS),
                r.line_of(name, None) if isinstance(value, dict) else r.line_of("", name),
            )
        if not isinstance(value, dict):
            raise ModelFileError(origin, name, "must be a [section]", r.line_of("", name))
    if "model" not in data:
        raise ModelFileError(origin, "model", "the [model] section (name, base) is required")
    head = data["model"]
    for key in head:
        if key not in _MODEL_KEYS:
            raise r.fail("model", key, f"unknown key; known: {_list(_MODEL_KEYS)}")
    for key in ("name", "base"):
        if key not in head:
            raise r.fail("model", key, "is required")
        if not isinstance(head[key], str) or not head[key].strip():
            raise r.fail("model", key, "must be a non-empty string")
    name, description = head["name"].strip(), head.get("description", "")
    if not isinstance(description, str):
        raise r.fail("model", "description", "must be a string")
    if _key(name) in (m.key for m in _BUILTIN):
        raise r.fail("model", "name", f"{name!r} is a built-in model; choose another name")
    try:
        base = get_model(head["base"], "base")
    except ConfigError:
        known = _known()
        raise r.fail("model", "base", f"unknown model {head['base']!r}; known: {known}") from None
    sig = base.cpuid_signature
    if "cpuid_signature" in head:
        sig = r.integer("model", "cpuid_signature", head["cpuid_signature"], 0, 0xFFFF_FFFF)
    costs = data.get("costs", {})
    changes: dict[str, Cost | int] = {}
    for key, value in _flatten(costs):
        if key not in KEYS:
            near = _close(key, KEYS)
            raise r.fail("costs", key, f"unknown cost key{near} (keys: docs/timing.md)")
        changes[key] = _cost(r, key, value, base.profile.cost(key))
    mmu = _mmu(r, data.get("tlb", {}), base.mmu)
    profile = base.profile.with_costs(changes, name=name, origin=origin)
    if "issue" in data:
        profile = profile.with_issue(_issue(r, data["issue"], base.profile.issue), name=name)
        profile = attrs.evolve(profile, ancestry=profile.ancestry[1:])
    description = description or f"{base.name} with the changes of {origin}"
    return CpuModel(name, profile, mmu, sig, description)


def load_model_file(path: str | Path) -> CpuModel:
    """The CPU model described by the TOML file at ``path`` (see :func:`parse_model_text`);
    an unreadable file is a :class:`ModelFileError` too. Nothing is registered."""
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(origin, "(file)", f"cannot be read: {exc}") from None
    return parse_model_text(text, origin)


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def _toml_tlb(tlb: TLBConfig | None) -> str:
    return "false" if tlb is None else f"{{ entries = {tlb.entries}, ways = {tlb.ways} }}"


def dump_model_text(model: CpuModel, base: str | CpuModel | None = None) -> str:
    """``model`` as the text of a model file relative to ``base`` (by default the nearest
    registered model in its profile's ancestry): the costs that differ, its TLBs and CPUID
    signature. :func:`parse_model_text` of the result gives back an equal model."""
    if base is None:
        names = [n for n in model.profile.ancestry if _key(n) in _REGISTRY]
        if not names:
            raise ConfigError("base", f"model {model.name!r} derives from no registered model")
        base = names[0]
    parent = get_model(base, "base")
    lines = [
        "[model]",
        f"name = {_toml(model.name)}",
        f"base = {_toml(parent.name)}",
        f"description = {_toml(model.description)}",
        f"cpuid_signature = {model.cpuid_signature:#x}",
        "",
        "[costs]",
    ]
    for key in KEYS:
        cost = model.profile.cost(key)
        if cost != parent.profile.cost(key):
            value = f"{{ cycles = {cost.cycles}, source = {_toml(cost.source)} }}"
            lines.append(f"{_toml(key)} = {value}")
    mmu = model.mmu
    lines += [
        "",
        "[tlb]",
        f"entries = {mmu.tlb.entries}",
        f"ways = {mmu.tlb.ways}",
        f"itlb = {_toml_tlb(mmu.itlb)}",
        f"large_dtlb = {_toml_tlb(mmu.large_dtlb)}",
    ]
    issue = model.profile.issue
    if issue != parent.profile.issue:
        lines += ["", "[issue]"]
        if issue is None:
            lines.append("enabled = false")
        else:
            for field in ISSUE_FIELDS:
                value = getattr(issue, field)
                text = ("true" if value else "false") if isinstance(value, bool) else str(value)
                lines.append(f"{field} = {text}")
    return "\n".join(lines) + "\n"
