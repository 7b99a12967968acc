"""The published-figure comparison (issue 14, ``lavsim rpc --compare``) is computed from the
measured table, not written in."""

from __future__ import annotations

import contextlib
import io

import attrs
import pytest

from lavsim.cli import main
from lavsim.experiments import published
from lavsim.experiments.rpc import RpcTable, rpc_table


@pytest.fixture(scope="module")
def table() -> RpcTable:
    return rpc_table(sizes=[0], remote=False, calls=3)


def test_every_published_result_is_compared_when_the_null_calls_were_measured(
    table: RpcTable,
) -> None:
    got = published.compare(table)
    assert [c.published.key for c in got] == [p.key for p in published.PUBLISHED]
    by_key = {c.published.key: c for c in got}
    l4 = next(c for c in table.costs if c.mechanism.key == "l4-groups" and c.profile == "i486")
    assert by_key["l4-486"].simulated == l4.warm.cycles / 2
    message = next(c for c in table.costs
                   if c.mechanism.key == "message-groups" and c.profile == "pentium")
    lrpc = next(c for c in table.costs
                if c.mechanism.key == "lrpc-groups" and c.profile == "pentium")
    assert by_key["lrpc-pentium"].simulated == message.warm.cycles / lrpc.warm.cycles


def test_the_simulated_figures_follow_the_table(table: RpcTable) -> None:
    """Halve the L4 row's cycles and the comparison follows: nothing is a constant."""
    costs = tuple(
        attrs.evolve(c, warm=attrs.evolve(c.warm, cycles=c.warm.cycles / 2))
        if c.mechanism.key == "l4-groups" else c for c in table.costs
    )
    before = {c.published.key: c.simulated for c in published.compare(table)}
    after = {c.published.key: c.simulated for c in published.compare(attrs.evolve(
        table, costs=costs))}
    assert after["l4-486"] == before["l4-486"] / 2
    assert after["palladium"] == before["palladium"]


def test_a_comparison_is_a_match_within_a_quarter_and_says_so(table: RpcTable) -> None:
    text = published.render(table)
    for c in published.compare(table):
        assert c.match == (abs(c.simulated / c.published.figure - 1) <= 0.25)
        assert c.published.source in text
        assert ("(match)" if c.match else "(gap)") in text


def test_a_table_without_the_rows_names_what_is_missing(table: RpcTable) -> None:
    only = attrs.evolve(table, costs=tuple(c for c in table.costs if c.profile == "i486"))
    text = published.render(only)
    assert "not compared (rows not measured): l4-pentium" in text


def test_compare_needs_the_table_format() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["rpc", "--compare", "--format", "json", "--no-progress"]) == 2
    assert "argument --compare" in err.getvalue()
