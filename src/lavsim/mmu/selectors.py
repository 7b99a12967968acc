"""Segment selectors (Intel SDM Vol. 3, 3.4.2, figure 3-6).

A selector is the 16-bit value held in the visible part of a segment register::

    15                      3   2   1  0
    +-----------------------+-----+-----+
    |         index         | TI  | RPL |
    +-----------------------+-----+-----+

``TI`` chooses the table (0: GDT, 1: LDT) and ``RPL`` is the requested privilege level.
The hot paths of the simulator pass selectors around as plain ``int``; :class:`Selector` is the
value type for setup code, tests and printing.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

#: Table indicator values.
TI_GDT = 0
TI_LDT = 1

#: Bit masks of the selector fields.
SELECTOR_RPL_MASK = 0x0003
SELECTOR_TI_MASK = 0x0004
SELECTOR_INDEX_MASK = 0xFFF8


def _field_range(top: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not 0 <= value <= top:
            raise ValueError(f"{attribute.name} must be in 0..{top}, got {value}")

    return check


def is_null_selector(value: int) -> bool:
    """True for a null selector (index 0 in the GDT), whatever its RPL.

    A selector with TI = 1 and index 0 is *not* null: it names the first LDT entry
    (SDM Vol. 3, 3.4.2).
    """
    return value & 0xFFFC == 0


@attrs.frozen
class Selector:
    """A segment selector: ``index`` (0..8191), ``ti`` (0 GDT, 1 LDT), ``rpl`` (0..3)."""

    index: int = attrs.field(validator=_field_range(0x1FFF))
    ti: int = attrs.field(default=TI_GDT, validator=_field_range(1))
    rpl: int = attrs.field(default=0, validator=_field_range(3))

    def encode(self) -> int:
        """The 16-bit selector value."""
        return (self.index << 3) | (self.ti << 2) | self.rpl

    @classmethod
    def decode(cls, value: int) -> Selector:
        """Split a 16-bit selector value into its fields.

        Raises ``ValueError`` if ``value`` is not a 16-bit quantity (a host-side mistake; the
        guest can only ever hand over 16 bits).
        """
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"a selector is 16 bits, got {value:#x}")
        return cls(value >> 3, (value >> 2) & 1, value & 3)

    @property
    def is_null(self) -> bool:
        """True for index 0 in the GDT (any RPL); such a selector names no segment."""
        return self.index == 0 and self.ti == TI_GDT

    @property
    def table_offset(self) -> int:
        """Byte offset of the selected descriptor inside its table (index * 8)."""
        return self.index << 3

    def with_rpl(self, rpl: int) -> Selector:
        """The same selector with a different RPL."""
        return attrs.evolve(self, rpl=rpl)

    def __str__(self) -> str:
        table = "LDT" if self.ti else "GDT"
        return f"{self.encode():#06x} ({table}[{self.index}], RPL {self.rpl})"
