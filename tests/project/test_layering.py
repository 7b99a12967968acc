"""Imports run downward only, as the layer diagram of docs/design.md ("Layers and modules") says.

The diagram is parsed from the document, so the two cannot drift: each unindented line of its
first code block is a layer (top first), named by the comma-separated names before the first
double space; a package name covers every submodule (so new modules fall into their package's
layer). Every import of every module under ``src/lavsim`` is read with ``ast``: module level,
inside functions, under ``TYPE_CHECKING``, relative, and ``importlib.import_module("...")``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DESIGN = ROOT / "docs" / "design.md"


@attrs.frozen
class Import:
    """One import statement's target as seen from ``source``."""

    source: str
    target: str
    path: Path
    line: int
    type_only: bool

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


# --- the modules and their imports ------------------------------------------------------------


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "lavsim").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    nodes.update(id(n) for n in ast.walk(child))
    return nodes


def _resolve(base: str, names: list[str]) -> list[str]:
    """``from base import a, b``: the submodule ``base.a`` where there is one, else ``base``."""
    return [f"{base}.{n}" if f"{base}.{n}" in MODULES else base for n in names]


def imports_of(module: str) -> Iterator[Import]:
    """Every lavsim import ``module`` makes (see the module docstring)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    type_only = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            targets = _resolve(base, [alias.name for alias in node.names])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        for target in targets:
            if target == "lavsim" or target.startswith("lavsim."):
                yield Import(module, target, path, node.lineno, id(node) in type_only)


ALL_IMPORTS = [imp for module in MODULES for imp in imports_of(module)]


# --- the diagram ------------------------------------------------------------------------------


def _layers_section() -> str:
    text = DESIGN.read_text(encoding="utf-8")
    start = text.index("\n## Layers and modules\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def _blocks() -> list[list[str]]:
    return [b.splitlines() for b in re.findall(r"```\n(.*?)```", _layers_section(), re.S)]


def diagram() -> list[list[str]]:
    """The layers of the first block, top first: the lavsim names of each row."""
    rows = []
    for line in _blocks()[0]:
        if not line.strip() or line[0].isspace():
            continue  # a description's continuation
        names = re.split(r"\s{2,}", line.strip())[0]
        rows.append([n.strip() for n in names.split(",") if n.strip().startswith("lavsim")])
    return rows


LAYERS = diagram()
#: Name in the diagram -> rank (0 = the bottom layer).
RANK = {name: len(LAYERS) - 1 - k for k, row in enumerate(LAYERS) for name in row}


def unit_of(module: str) -> str:
    """The diagram name covering ``module``: itself, or its longest package prefix."""
    if module == "lavsim":
        return "lavsim"
    best = ""
    for name in RANK:
        if (module == name or module.startswith(name + ".")) and len(name) > len(best):
            best = name
    if not best:
        raise LookupError(module)
    return best


def rank_of(module: str) -> int:
    # The top package holds only __version__ (tested below): a leaf.
    return 0 if module == "lavsim" else RANK[unit_of(module)]


def package_orders() -> list[tuple[str, list[list[str]]]]:
    """The second block: ``package   a | b, c | d`` (top first) per line."""
    orders = []
    for line in _blocks()[1]:
        if not line.strip():
            continue
        package, chain = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        groups = [[f"{package}.{m.strip()}" for m in g.split(",")] for g in chain.split("|")]
        orders.append((package, groups))
    return orders


# --- the rules --------------------------------------------------------------------------------


def test_the_diagram_names_every_module_and_only_modules_that_exist() -> None:
    assert len(LAYERS) >= 8, LAYERS
    unplaced = []
    for module in MODULES:
        try:
            rank_of(module)
        except LookupError:
            unplaced.append(module)
    assert unplaced == [], f"modules the diagram of docs/design.md does not place: {unplaced}"
    named = [n for n in RANK if not any(m == n or m.startswith(n + ".") for m in MODULES)]
    # Modules other branches add (issue 11); a stale name elsewhere is an error.
    expected_later = {"lavsim.models", "lavsim.stats"}
    assert set(named) <= expected_later, f"the diagram names modules that do not exist: {named}"
    for module in ("lavsim.cpu.core", "lavsim.kernel.netproto", "lavsim.network"):
        assert rank_of(module) < rank_of("lavsim.cluster")
    assert rank_of("lavsim.network") == rank_of("lavsim.devices") == rank_of("lavsim.machine")
    assert rank_of("lavsim.stats") == rank_of("lavsim.mmu") < rank_of("lavsim.cpu")
    assert rank_of("lavsim.cpu") < rank_of("lavsim.models") < rank_of("lavsim.kernel")


def test_no_import_points_upward() -> None:
    upward = [
        f"{imp.where()}: {imp.source} imports {imp.target}, a layer above it"
        for imp in ALL_IMPORTS
        if rank_of(imp.target) > rank_of(imp.source)
    ]
    assert upward == [], "\n".join(upward)


def test_every_import_names_a_module_that_exists() -> None:
    unknown = [
        f"{imp.where()}: {imp.source} imports {imp.target}"
        for imp in ALL_IMPORTS
        if imp.target not in MODULES
    ]
    assert unknown == [], "\n".join(unknown)


def test_the_mmu_knows_nothing_of_instructions_and_only_the_top_reaches_the_kernel() -> None:
    bad = [
        f"{imp.where()}: {imp.source} imports {imp.target}"
        for imp in ALL_IMPORTS
        if (imp.source.startswith("lavsim.mmu") and imp.target.startswith("lavsim.cpu"))
        or (
            imp.target.startswith("lavsim.kernel")
            and rank_of(imp.source) < rank_of("lavsim.kernel")
        )
    ]
    assert bad == [], "\n".join(bad)
    assert [i.target for i in imports_of("lavsim")] == [], "the top package imports nothing"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(cycle: list[str], edges: list[Import]) -> str:
    inside = set(cycle)
    lines = [f"{e.where()}: {e.source} -> {e.target}" for e in edges
             if e.source in inside and e.target in inside and e.source != e.target]  # fmt: skip
    return " <-> ".join(cycle) + "\n    " + "\n    ".join(sorted(set(lines)))


def test_imports_that_run_form_no_cycle() -> None:
    """Module-level and function-level imports (everything but TYPE_CHECKING blocks)."""
    runtime = [i for i in ALL_IMPORTS if not i.type_only and i.source != i.target]
    graph: dict[str, set[str]] = {}
    for imp in runtime:
        graph.setdefault(imp.source, set()).add(imp.target)
    cycles = _cycles(graph)
    assert cycles == [], "\n".join(_describe(c, runtime) for c in cycles)


def test_no_two_units_of_the_diagram_refer_to_each_other() -> None:
    """Between units (``lavsim.machine``, ``lavsim.snapshot``, ``lavsim.kernel`` ...) even a
    type-only reference counts: machine -> snapshot -> machine is a cycle."""
    edges = [attrs.evolve(i, source=unit_of(i.source), target=unit_of(i.target))
             for i in ALL_IMPORTS if i.target != "lavsim"]  # fmt: skip
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.source != e.target:
            graph.setdefault(e.source, set()).add(e.target)
    cycles = _cycles(graph)
    assert cycles == [], "\n".join(_describe(c, edges) for c in cycles)


def test_inside_a_package_the_documented_order_holds() -> None:
    """The second block: within ``lavsim.cpu`` and ``lavsim.mmu`` a module uses only modules of
    the groups after its own. A module the order does not list is held only to the rules
    above (no cycle), so a new module does not break this test before it is placed."""
    orders = package_orders()
    assert {p for p, _ in orders} >= {"lavsim.cpu", "lavsim.mmu"}
    wrong = []
    for package, groups in orders:
        rank = {m: len(groups) - k for k, group in enumerate(groups) for m in group}
        missing = sorted(m for m in rank if m not in MODULES)
        assert missing == [], f"the order of {package} names missing modules: {missing}"
        for imp in ALL_IMPORTS:
            if imp.source in rank and imp.target in rank and rank[imp.target] >= rank[imp.source]:
                wrong.append(f"{imp.where()}: {imp.source} imports {imp.target} ({package})")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from lavsim.kernel import layout as L\n", ["lavsim.kernel.layout"]),
        ("from lavsim import devices, network\n", ["lavsim.devices", "lavsim.network"]),
        ("from . import state\nfrom .isa import FORMS\n", ["lavsim.cpu.state", "lavsim.cpu.isa"]),
        ("def f():\n    import lavsim.cluster\n", ["lavsim.cluster"]),
        ("import importlib\nimportlib.import_module('lavsim.remote')\n", ["lavsim.remote"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lavsim.machine import M\n",
         ["lavsim.machine"]),
    ],
)
def test_the_reader_sees_every_kind_of_import(
    source: str, expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    monkeypatch.setitem(MODULES, "lavsim.cpu.probe", path)
    monkeypatch.setattr("test_layering.ROOT", tmp_path)
    found = [i.target for i in imports_of("lavsim.cpu.probe")]
    assert found == expected
    assert all(rank_of(t) >= 0 for t in found)
