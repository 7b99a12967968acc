"""Two-level 32-bit paging: entry value types and the page walk (Intel SDM Vol. 3, ch. 4).

The walk is a plain function of physical memory and the paging controls. It reads the
page-directory entry (PDE) and, for a 4 KiB page, the page-table entry (PTE); applies the
combined directory/table protection rules of SDM Vol. 3 §4.6; and, when the access is allowed,
writes the Accessed flag back into the PDE and the PTE and, for a write, the Dirty flag into the
entry that maps the page (the PTE, or the PDE of a 4 MiB page), as the processor does
(SDM Vol. 3 §4.8). A refused access writes nothing back.

Not modelled: PAE, PSE-36 (bits 20:13 of a 4 MiB PDE are ignored, never a reserved-bit fault),
NX, SMEP/SMAP. PCD/PWT have no effect on the walk; it returns those of the mapping entry
(``WalkResult.cache``) for a board's caches (see ``lavsim.mmu.mmu``).
"""

from __future__ import annotations

from typing import Protocol

import attrs

from lavsim.faults import PF, PF_P, PF_U, PF_W, CpuFault

# Control-register bits the MMU looks at (SDM Vol. 3 §2.5).
CR0_PE = 1 << 0
CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PSE = 1 << 4
CR4_PGE = 1 << 7
#: CR3 bits 31:12: physical base of the page directory.
CR3_PDB_MASK = 0xFFFFF000

# Entry bits common to PDEs and PTEs (SDM Vol. 3, tables 4-5 and 4-6).
P = 1 << 0
RW = 1 << 1
US = 1 << 2
PWT = 1 << 3
PCD = 1 << 4
A = 1 << 5
D = 1 << 6
PS = 1 << 7  # PDE: page size (4 MiB when CR4.PSE=1); PTE: PAT
G = 1 << 8
AVAIL_SHIFT = 9
AVAIL_MASK = 0x7 << AVAIL_SHIFT
ADDRESS_MASK = 0xFFFFF000
LARGE_PAGE_MASK = 0xFFC00000

PAGE_SHIFT = 12
LARGE_PAGE_SHIFT = 22


def _flag(value: int, bit: int) -> bool:
    return bool(value & bit)


def _encode_entry(entry: PDE | PTE, flags: tuple[tuple[str, int], ...]) -> int:
    value = (entry.address & ADDRESS_MASK) | ((entry.avail & 7) << AVAIL_SHIFT)
    for name, bit in flags:
        if getattr(entry, name):
            value |= bit
    return value


def _decode_fields(value: int, flags: tuple[tuple[str, int], ...]) -> dict[str, int | bool]:
    fields: dict[str, int | bool] = {name: _flag(value, bit) for name, bit in flags}
    fields["address"] = value & ADDRESS_MASK
    fields["avail"] = (value & AVAIL_MASK) >> AVAIL_SHIFT
    return fields


# Field name -> bit, per entry type: the two differ only in bit 7 (PS in a PDE, PAT in a PTE).
_COMMON_FLAGS = (("p", P), ("rw", RW), ("us", US), ("pwt", PWT), ("pcd", PCD), ("a", A),
                 ("d", D), ("g", G))  # fmt: skip
_PDE_FLAGS = (*_COMMON_FLAGS, ("ps", PS))
_PTE_FLAGS = (*_COMMON_FLAGS, ("pat", PS))


@attrs.frozen(slots=True)
class PDE:
    """A page-directory entry.

    ``address`` is bits 31:12 of the entry in place (low 12 bits zero): the physical base of the
    page table, or with ``ps`` (and CR4.PSE) the base of a 4 MiB page in bits 31:22.
    ``d`` and ``g`` mean something only for a 4 MiB page. ``avail`` is bits 11:9 (free for
    software).
    """

    address: int = 0
    p: bool = False
    rw: bool = False
    us: bool = False
    pwt: bool = False
    pcd: bool = False
    a: bool = False
    d: bool = False
    ps: bool = False
    g: bool = False
    avail: int = 0

    def encode(self) -> int:
        """The 32-bit entry."""
        return _encode_entry(self, _PDE_FLAGS)

    @classmethod
    def decode(cls, value: int) -> PDE:
        """The entry held in the 32-bit ``value`` (every bit pattern decodes)."""
        return cls(**_decode_fields(value, _PDE_FLAGS))  # type: ignore[arg-type]


@attrs.frozen(slots=True)
class PTE:
    """A page-table entry mapping one 4 KiB page.

    ``address`` is the physical base of the page (bits 31:12 in place). ``pat`` is bit 7
    (reserved on the 486 and Pentium; kept so every bit pattern round-trips).
    """

    address: int = 0
    p: bool = False
    rw: bool = False
    us: bool = False
    pwt: bool = False
    pcd: bool = False
    a: bool = False
    d: bool = False
    pat: bool = False
    g: bool = False
    avail: int = 0

    def encode(self) -> int:
        """The 32-bit entry."""
        return _encode_entry(self, _PTE_FLAGS)

    @classmethod
    def decode(cls, value: int) -> PTE:
        """The entry held in the 32-bit ``value`` (every bit pattern decodes)."""
        return cls(**_decode_fields(value, _PTE_FLAGS))  # type: ignore[arg-type]


class PhysicalAccess(Protocol):
    """What the walk needs of physical memory (``PhysicalMemory`` provides it)."""

    def read32(self, addr: int, /) -> int: ...

    def write32(self, addr: int, value: int, /) -> None: ...


@attrs.frozen(slots=True)
class WalkResult:
    """The outcome of one page walk.

    On success ``fault`` is ``None`` and ``physical`` is the translated address. ``frame`` is
    the physical base of the 4 KiB piece holding ``physical``; ``large`` says the translation
    came from a 4 MiB page (``large_base`` is then its physical base). ``us`` and ``rw`` are the
    *combined* permissions of the directory and table levels (SDM Vol. 3 §4.6), ``d`` the Dirty
    flag of the mapping entry after the walk, ``g`` its Global flag (as stored; CR4.PGE decides
    whether it matters).

    On a page fault ``fault`` holds the ``CpuFault`` (vector 14, error code, CR2) and the other
    translation fields are meaningless except ``large`` (the PDE was present and mapped a
    4 MiB page). ``reads`` and ``ad_writes`` count the memory reads of paging entries and the
    Accessed/Dirty write-backs the walk made, in both cases.
    """

    fault: CpuFault | None
    physical: int = 0
    frame: int = 0
    large: bool = False
    large_base: int = 0
    us: bool = False
    rw: bool = False
    d: bool = False
    g: bool = False
    reads: int = 0
    ad_writes: int = 0
    cache: int = 0
    """The PCD and PWT bits (``PCD | PWT`` as in the entry) of the entry that maps the page:
    the PTE of a 4 KiB page, the PDE of a 4 MiB page."""


def allowed(us: bool, rw: bool, write: bool, user: bool, wp: bool) -> bool:
    """May an access go through a translation whose combined flags are ``us``/``rw``?

    SDM Vol. 3 §4.6 (32-bit paging, no SMEP/SMAP): a user-mode access needs U/S=1; a user-mode
    write also needs R/W=1; a supervisor-mode read is always allowed; a supervisor-mode write
    needs R/W=1 only when CR0.WP=1 (then for user and supervisor pages alike).
    """
    if user:
        return us and (rw or not write)
    return rw or not write or not wp


def walk(
    memory: PhysicalAccess,
    cr3: int,
    linear: int,
    write: bool,
    user: bool,
    wp: bool,
    pse: bool,
) -> WalkResult:
    """Translate ``linear`` through the page tables at ``cr3`` for one access.

    ``write``: the access writes; ``user``: it is a user-mode access (CPL 3, not an implicit
    supervisor access); ``wp``: CR0.WP; ``pse``: CR4.PSE. Returns a :class:`WalkResult`;
    never raises for any guest-controlled value (a paging entry outside installed memory is a
    host-side ``MemoryAccessError`` from ``memory``).
    """
    linear &= 0xFFFFFFFF
    code = (PF_W if write else 0) | (PF_U if user else 0)
    pde_addr = (cr3 & CR3_PDB_MASK) | ((linear >> 20) & 0xFFC)
    pde = memory.read32(pde_addr)
    if not pde & P:
        return WalkResult(CpuFault(PF, code, linear), reads=1)

    if pse and pde & PS:
        # A 4 MiB page: the PDE maps the page itself and carries its own A, D and G.
        us = bool(pde & US)
        rw = bool(pde & RW)
        if not allowed(us, rw, write, user, wp):
            return WalkResult(CpuFault(PF, code | PF_P, linear), large=True, reads=1)
        new = pde | A | (D if write else 0)
        writes = 0
        if new != pde:
            memory.write32(pde_addr, new)
            writes = 1
        base = pde & LARGE_PAGE_MASK
        physical = base | (linear & 0x3FFFFF)
        return WalkResult(
            None,
            physical=physical,
            frame=physical & ADDRESS_MASK,
            large=True,
            large_base=base,
            us=us,
            rw=rw,
            d=bool(new & D),
            g=bool(pde & G),
            reads=1,
            ad_writes=writes,
            cache=pde & (PCD | PWT),
        )

    pte_addr = (pde & ADDRESS_MASK) | ((linear >> 10) & 0xFFC)
    pte = memory.read32(pte_addr)
    if not pte & P:
        return WalkResult(CpuFault(PF, code, linear), reads=2)
    # Combined protection: the more restrictive of the two levels wins (SDM Vol. 3 §4.6).
    us = bool(pde & pte & US)
    rw = bool(pde & pte & RW)
    if not allowed(us, rw, write, user, wp):
        return WalkResult(CpuFault(PF, code | PF_P, linear), reads=2)
    writes = 0
    if not pde & A:
        memory.write32(pde_addr, pde | A)
        writes += 1
    new = pte | A | (D if write else 0)
    if new != pte:
        memory.write32(pte_addr, new)
        writes += 1
    frame = pte & ADDRESS_MASK
    return WalkResult(
        None,
        physical=frame | (linear & 0xFFF),
        frame=frame,
        us=us,
        rw=rw,
        d=bool(new & D),
        g=bool(pte & G),
        reads=2,
        ad_writes=writes,
        cache=pte & (PCD | PWT),
    )
