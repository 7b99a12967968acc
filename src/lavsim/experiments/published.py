"""Published IPC figures set against the same designs measured on the simulated machine
(issue 14; ``lavsim rpc --compare``).

Every simulated figure is computed from an :class:`~lavsim.experiments.rpc.RpcTable` (the
warm null call of a mechanism, or phases of its breakdown), never written in; the published
figures are the sources' (``docs/sources.md``). A figure within 25% of the published one is a
match; for a larger gap the explanation names the phases of the breakdown where the designs or
the machines differ.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from lavsim.experiments.rpc import CallCost, RpcTable

__all__ = ["MATCH_TOLERANCE", "PUBLISHED", "Comparison", "Published", "compare", "render"]

#: A simulated figure within this fraction of the published one is a match.
MATCH_TOLERANCE = 0.25


@attrs.frozen
class Published:
    """One published result: who, on what, what was measured, the figure, and how the same
    quantity is taken from a run (``simulate`` returns the figure and an explanation, or None
    when the table lacks the rows it needs)."""

    key: str
    source: str
    hardware: str
    measured: str
    figure: float
    unit: str
    profile: str
    simulate: Callable[[RpcTable, str], tuple[float, str] | None]


@attrs.frozen
class Comparison:
    """A published figure beside the simulated one."""

    published: Published
    simulated: float
    explanation: str

    @property
    def ratio(self) -> float:
        """Simulated / published."""
        return self.simulated / self.published.figure

    @property
    def match(self) -> bool:
        return abs(self.ratio - 1) <= MATCH_TOLERANCE


def _null(table: RpcTable, key: str, profile: str) -> CallCost | None:
    """The smallest-size call of mechanism ``key`` on ``profile`` (0 bytes by default)."""
    costs = [c for c in table.costs if c.mechanism.key == key and c.profile == profile]
    return min(costs, key=lambda c: c.size) if costs else None


def _ph(cost: CallCost, *phases: str) -> float:
    return sum(cost.warm.phases[p] for p in phases)


_KERNEL_ENTRY_EXIT = ("trap entry", "return")
_PATH = ("argument checks", "ipc queues and headers", "scheduling", "copy in", "copy out")


def _l4_one_way(key: str) -> Callable[[RpcTable, str], tuple[float, str] | None]:
    def simulate(table: RpcTable, profile: str) -> tuple[float, str] | None:
        cost = _null(table, key, profile)
        if cost is None:
            return None
        half = cost.warm.cycles / 2
        entry = _ph(cost, *_KERNEL_ENTRY_EXIT) / 2
        switch = _ph(cost, "context switch and CR3", "TLB refill") / 2
        path = _ph(cost, *_PATH) / 2
        stalls = cost.warm.phases.get("memory stalls", 0.0) / 2
        rest = half - entry
        text = (
            f"{cost.mechanism.label}, {cost.size}-byte round trip / 2. Per IPC: kernel entry "
            f"and exit {entry:,.0f} cycles (INT 0x30, IRETD, and Lavender's entry stub, which "
            "saves all general registers and saves and reloads DS ES FS GS because user code "
            "runs on per-process LDT segments; L4 kept flat segments and saved only what its "
            f"path needs), thread switch {switch:,.0f} (kernel stack, TSS, LDT"
            f"{', CR3' if cost.warm.cr3_loads else ''}), the IPC path {path:,.0f}, user stub "
            f"and server {_ph(cost, 'user stub', 'server') / 2:,.0f}"
            + (f", memory stalls {stalls:,.0f}." if stalls else ".")
        )
        if profile == "i486":
            l4_rest = 250 - 107
            core = rest - stalls
            verdict = ("within 25%: what is left of the gap is the design of the kernel entry "
                       "and exit" if core / l4_rest <= 1.25 else "beyond 25%: Lavender's full "
                       "thread switch and IPC path are longer than L4's")
            text += (
                f" Without kernel entry and exit (L4's own 107, Liedtke 1995) L4 spends "
                f"{l4_rest} cycles; the rest here is {rest:,.0f} (ratio {rest / l4_rest:.2f})"
                + (f", {core:,.0f} without this board's memory stalls (ratio "
                   f"{core / l4_rest:.2f})" if stalls else "")
                + f", {verdict}."
            )
        else:
            text += (
                f" The entry and exit alone are {entry / 121:.0%} of L4's whole Pentium IPC; "
                f"the rest here ({rest:,.0f}) is the path and the switch: the gap is the "
                "kernel entry and exit's design and Lavender's full thread switch (L4 "
                "switched only the kernel stack pointer and, between small spaces, segment "
                "registers)."
            )
        return half, text

    return simulate


def _entry_exit(table: RpcTable, profile: str) -> tuple[float, str] | None:
    cost = _null(table, "l4-groups", profile)
    if cost is None:
        return None
    entry = _ph(cost, "trap entry") / 2
    exit_ = _ph(cost, "return") / 2
    return entry + exit_, (
        f"one kernel entry ({entry:,.0f}: INT 0x30 through an interrupt gate, PUSHAD, four "
        f"segment-register pushes, two data-segment loads) and exit ({exit_:,.0f}: four "
        "segment-register pops, each a descriptor load, POPAD, IRETD) of the L4-style call. "
        "The eight segment-register moves are Lavender's design (per-process LDT segments); "
        "L4 kept flat segments loaded and saved only what the path needs."
    )


def _palladium(table: RpcTable, profile: str) -> tuple[float, str] | None:
    cost = _null(table, "migration-group", profile)
    if cost is None:
        return None
    gate = _ph(cost, "gate call", "far return")
    board = cost.workload.board_spec
    stalls = cost.warm.phases.get("memory stalls", 0.0)
    # What the memory system adds to the warm call depends on the board this table ran on.
    memory = ("on ideal memory (no cache misses, no memory stalls)" if board.ideal else
              f"on board {board.name}, where the warm call stalls {stalls:,.1f} cycles on "
              "memory (its code and data stay in the L1 caches between calls)")
    return cost.warm.cycles, (
        f"{cost.mechanism.label}: a call through a call gate and RETF within one address "
        f"space, segments keeping the parties apart, as in Palladium. The gate call and far "
        f"return are {gate:,.0f} cycles, lav_call's stub {_ph(cost, 'user stub'):,.0f}, "
        f"{memory}. Palladium's call and return also switch the stack and data segments in "
        "its stubs, and its figure was measured on a 200 MHz Pentium, whose 66 MHz bus is a "
        "core/bus ratio of 3 against the P100 board's 3/2, so each miss costs about twice the "
        "core cycles: the design difference is the stub work, the machine difference the "
        "memory system."
    )


def _lrpc_factor(table: RpcTable, profile: str) -> tuple[float, str] | None:
    message = _null(table, "message-groups", profile)
    lrpc = _null(table, "lrpc-groups", profile)
    if message is None or lrpc is None:
        return None
    saved = {p: message.warm.phases[p] - lrpc.warm.phases[p] for p in
             ("argument checks", "ipc queues and headers", "scheduling", "copy in", "copy out")}
    return message.warm.cycles / lrpc.warm.cycles, (
        f"{message.mechanism.label} ({message.warm.cycles:,.0f} cycles) over "
        f"{lrpc.mechanism.label} ({lrpc.warm.cycles:,.0f}). LRPC saves the message path: "
        + ", ".join(f"{p} {v:,.0f}" for p, v in saved.items())
        + "; both pay two kernel entries and exits and two CR3 loads. Bershad et al. compared "
        "with Taos's message RPC on a Firefly (C-VAX), whose message path was longer than "
        "this kernel's."
    )


#: The published results compared (sources in docs/sources.md).
PUBLISHED: tuple[Published, ...] = (
    Published("l4-486", "Liedtke 1993 (SOSP '93)", "486, 50 MHz",
              "short-message IPC, one way (5 us)", 250, "cycles", "i486",
              _l4_one_way("l4-groups")),
    Published("l4-486-entry", "Liedtke 1995 (SOSP '95)", "486",
              "bare kernel entry + exit", 107, "cycles", "i486", _entry_exit),
    Published("l4-pentium", "Liedtke et al. 1997 (HotOS '97)", "Pentium",
              "short IPC, one way", 121, "cycles", "pentium", _l4_one_way("l4-small-spaces")),
    Published("l4-pentium-groups", "Liedtke et al. 1997 (HotOS '97)", "Pentium",
              "short IPC, one way (across page directories)", 121, "cycles", "pentium",
              _l4_one_way("l4-groups")),
    Published("palladium", "Chiueh et al. 1999 (SOSP '99)", "Pentium, 200 MHz",
              "protected call + return", 142, "cycles", "pentium", _palladium),
    Published("lrpc-i486", "Bershad et al. 1990 (TOCS 8(1))", "Firefly (C-VAX)",
              "message RPC / LRPC, null call", 3, "x", "i486", _lrpc_factor),
    Published("lrpc-pentium", "Bershad et al. 1990 (TOCS 8(1))", "Firefly (C-VAX)",
              "message RPC / LRPC, null call", 3, "x", "pentium", _lrpc_factor),
)


def compare(table: RpcTable) -> list[Comparison]:
    """Every published result whose rows ``table`` measured, beside the simulated figure."""
    out = []
    for pub in PUBLISHED:
        got = pub.simulate(table, pub.profile)
        if got is not None:
            out.append(Comparison(pub, got[0], got[1]))
    return out


def render(table: RpcTable, width: int = 100) -> str:
    """The ``--compare`` section: one block per published result."""
    import textwrap

    comparisons = compare(table)
    lines = ["== published figures beside the simulated ones (warm null calls, the profile's "
             "default machine) =="]
    if not comparisons:
        lines.append("(the table holds none of the rows the comparison needs: measure size 0 "
                     "on both profiles)")
    for c in comparisons:
        p = c.published
        unit = " cycles" if p.unit == "cycles" else "x"
        verdict = "match" if c.match else "gap"
        lines.append(
            f"{p.source}, {p.hardware}: {p.measured}: published {p.figure:,g}{unit}; "
            f"simulated ({p.profile}) {c.simulated:,.1f}{unit}; ratio {c.ratio:.2f} ({verdict})"
        )
        lines.extend(textwrap.wrap(c.explanation, width=width, initial_indent="    ",
                                   subsequent_indent="    "))
    skipped = [p for p in PUBLISHED if all(c.published is not p for c in comparisons)]
    if skipped and comparisons:
        lines.append("not compared (rows not measured): " + ", ".join(p.key for p in skipped))
    return "\n".join(lines)
