"""Boards: a CPU model with its caches, clock ratio, external cache and DRAM timing.

A :class:`Board` says what a memory access costs on one machine: the processor's L1
organisation and write buffers (:class:`~lavsim.memsys.hierarchy.HierarchyConfig`), the
core/bus clock ratio, the external (L2) cache if any with its burst timing, and the DRAM
timing. Miss and write costs in core cycles derive from these (bus clocks x ratio, see
:class:`~lavsim.memsys.hierarchy.BusTiming`); nothing in the caches is a constant.

:data:`BOARDS` holds the presets, named after real machines; every figure names its source
key (``docs/sources.md``) or says it is an estimate and why. The board ``ideal`` is the memory
of lavsim before boards existed: every access hits, no hierarchy is built and no tracer is
attached, so it reproduces those cycles bit for bit. :func:`get_board` turns a name or a
:class:`Board` into a board (``ConfigError`` naming the field and the known names).

What a board costs, in words: an L1 read miss is one line fill (burst), from the L2 at its
timing if the line is there, else from DRAM; a write that reaches the bus is one single
transfer per bus word taken by the write buffer; a locked cycle drains the buffers and waits
for its transfers. See :mod:`lavsim.memsys.hierarchy` for the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

from lavsim.errors import ConfigError
from lavsim.memsys import BusTiming, CacheConfig, Clock, HierarchyConfig, MemoryHierarchy

if TYPE_CHECKING:
    from lavsim.mmu.mmu import MMU

__all__ = [
    "BOARDS",
    "DEFAULT_BOARD",
    "DEFAULT_BOARDS",
    "I486_L1",
    "IDEAL",
    "P54C_L1",
    "Board",
    "default_board",
    "get_board",
]

#: i486 DX/DX2 L1: 8 KiB unified, 4-way, 16-byte lines, pseudo-LRU, write-through, no
#: allocation on write misses (Embedded Intel486 HRM p. 3-10..3-12); 4 write buffers ([JUF]).
I486_L1 = HierarchyConfig(
    unified=CacheConfig("l1", 8192, 4, 16, "plru", write_back=False, write_allocate=False),
    write_buffers=4,
    locked_writeback=False,
)

#: P54C L1: 8 KiB code + 8 KiB data, 2-way, 32-byte lines, LRU; data cache write-back, 8 banks
#: of 4 bytes (Pentium Developer's Manual 241428 §2.5 via [VEN]); 2 write buffers, one per
#: pipe, drained in order (SDM 253668 p. 19-41; [GPBB] ch. 20); no allocation on write misses
#: ([VEN]); a locked cycle writes a modified line back first (SDM §22.34).
P54C_L1 = HierarchyConfig(
    code=CacheConfig("l1i", 8192, 2, 32, "lru"),
    data=CacheConfig("l1d", 8192, 2, 32, "lru", write_back=True, write_allocate=False,
                     banks=8, bank_width=4),
    write_buffers=2,
    locked_writeback=True,
)


def _l2(size: int, line: int) -> CacheConfig:
    # Direct-mapped, write-back, no allocation on writes: an estimate (the sources give the
    # size and burst timing of these boards' caches, not their organisation); the line is the
    # L1 line the board's bursts fill.
    return CacheConfig("l2", size, 1, line, "lru", write_back=True, write_allocate=False)


@attrs.frozen
class Board:
    """One machine's memory system (see the module docstring). ``cpu``: the name of the
    CPU model the board carries (the experiments run on it unless told otherwise;
    ``""`` for ideal memory, which goes with any model); ``sources``: what each figure rests
    on, in words with source keys."""

    name: str
    description: str
    cpu: str
    l1: HierarchyConfig | None = None
    timing: BusTiming | None = None
    sources: tuple[tuple[str, str], ...] = ()

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("name", "must be a non-empty string")
        if (self.l1 is None) != (self.timing is None):
            raise ConfigError("timing", "give both l1 and timing, or neither (ideal memory)")

    @property
    def ideal(self) -> bool:
        """Does every access hit (no hierarchy is built)?"""
        return self.l1 is None

    def build(self, clock: Clock, mmu: MMU) -> MemoryHierarchy | None:
        """A fresh hierarchy for this board charging ``clock``, not yet attached (None for
        ideal memory); ``mmu`` supplies CR0 (CD/NW)."""
        if self.l1 is None or self.timing is None:
            return None
        return MemoryHierarchy(self.l1, self.timing, clock, mmu)

    def summary(self) -> str:
        """One line: CPU, ratio, L2, DRAM."""
        t = self.timing
        if t is None:
            return "ideal memory: every access hits"
        beats = "-".join
        l2 = (f"L2 {t.l2.size >> 10} KiB {beats(map(str, t.l2_burst))}" if t.l2 is not None
              else "no L2")
        return (f"{self.cpu}, core/bus {t.ratio}, {l2}, DRAM "
                f"{beats(map(str, t.dram_burst))} (write {t.dram_write})")


IDEAL = Board(
    "ideal", "today's ideal memory: every access hits in one cycle, page walks at the "
    "profile's estimate", "",
)

_B486_66 = Board(
    "486dx2-66",
    "i486DX2-66 (66 MHz core, 33 MHz bus) with 256 KiB write-back L2, FPM DRAM",
    "i486",
    I486_L1,
    BusTiming(ratio=Fraction(2), bus_width=4, dram_burst=(5, 3, 3, 3), dram_write=5,
              l2=_l2(256 << 10, 16), l2_burst=(2, 1, 1, 1), l2_write=2),
    (
        ("L1 organisation", "i486 cache [EI486] pp. 3-10..3-12; 4 write buffers [JUF]"),
        ("clock ratio 2", "the DX2 core runs at twice the bus clock; [EMIS] groups the "
         "DX2-66 with the 33 MHz-bus DX-33"),
        ("L2 256 KiB, 2-1-1-1", "boards at <= 33 MHz bus with two SRAM banks of 64 or 256 KB "
         "reach 2-1-1-1 [EMIS]; synchronous burst SRAM 2-1-1-1 [PCG]"),
        ("L2 single write 2", "a zero-wait-state bus cycle takes 2 clocks [EMIS], [JUF]"),
        ("DRAM 5-3-3-3", "FPM DRAM at best 5-3-3-3 [PCG]"),
        ("DRAM write 5", "estimate: the first-beat time of the DRAM burst"),
        ("L2 organisation", "estimate: direct-mapped, write-back, 16-byte lines"),
    ),
)

_B486_50 = Board(
    "486dx-50",
    "i486DX-50 (50 MHz core and bus), no L2, FPM DRAM",
    "i486",
    I486_L1,
    BusTiming(ratio=Fraction(1), bus_width=4, dram_burst=(5, 3, 3, 3), dram_write=5),
    (
        ("clock ratio 1", "the DX-50 runs its bus at the core clock: 160 MB/s at 50 MHz "
         "is one 4-byte beat per clock [DS486]"),
        ("L1 organisation", "i486 cache [EI486] pp. 3-10..3-12; 4 write buffers [JUF]"),
        ("no L2", "few 50 MHz boards reach 2-1-1-1 from an L2 [EMIS]: the board without one"),
        ("DRAM 5-3-3-3", "FPM DRAM at best 5-3-3-3 [PCG]"),
        ("DRAM write 5", "estimate: the first-beat time of the DRAM burst"),
    ),
)

_P100 = Board(
    "p100",
    "Pentium 100 (P54C, 100 MHz core, 66 MHz bus) with 256 KiB pipelined-burst L2, EDO DRAM",
    "pentium",
    P54C_L1,
    BusTiming(ratio=Fraction(3, 2), bus_width=8, dram_burst=(5, 2, 2, 2), dram_write=5,
              l2=_l2(256 << 10, 32), l2_burst=(3, 1, 1, 1), l2_write=3),
    (
        ("clock ratio 3/2", "100 MHz core on a 66 MHz bus [86B]; the 66 MHz 64-bit bus "
         "[GPBB] ch. 19"),
        ("L1 organisation", "P54C caches [VEN]; write buffers [SDM] p. 19-41, [GPBB] ch. 20"),
        ("L2 256 KiB, 3-1-1-1", "pipelined-burst SRAM 3-1-1-1 on Socket 7 [PCG]"),
        ("L2 single write 3", "estimate: the first-beat time of the L2 burst"),
        ("DRAM 5-2-2-2", "EDO DRAM 5-2-2-2 [PCG]"),
        ("DRAM write 5", "estimate: the first-beat time of the DRAM burst"),
        ("L2 organisation", "estimate: direct-mapped, write-back, 32-byte lines"),
    ),
)

#: The presets by name.
BOARDS: Mapping[str, Board] = MappingProxyType(
    {b.name: b for b in (IDEAL, _B486_66, _B486_50, _P100)}
)

#: The board ``lavsim rpc`` measures each built-in CPU model on unless told otherwise (named
#: in the table header): the commonest machine of each generation in the sources.
DEFAULT_BOARDS: Mapping[str, str] = MappingProxyType({"i486": "486dx2-66", "pentium": "p100"})
#: The i486's default board.
DEFAULT_BOARD = DEFAULT_BOARDS["i486"]


def default_board(names: Sequence[str]) -> Board:
    """The default board of the first of ``names`` (a CPU model's name, then the models it
    derives from) that has one; the ideal board if none has."""
    for name in names:
        key = DEFAULT_BOARDS.get(name.lower())
        if key is not None:
            return BOARDS[key]
    return IDEAL


def get_board(spec: object, field: str = "board") -> Board:
    """The board ``spec`` names (a preset name or a :class:`Board`); ``ConfigError`` naming
    ``field`` and the known names otherwise."""
    if isinstance(spec, Board):
        return spec
    if isinstance(spec, str):
        board = BOARDS.get(spec.lower())
        if board is not None:
            return board
        raise ConfigError(field, f"unknown board {spec!r}; known: {', '.join(BOARDS)}")
    raise ConfigError(field, f"must be a board name or a Board, not {type(spec).__name__}")
