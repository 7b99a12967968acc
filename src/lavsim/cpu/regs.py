"""Register numbers and the bits of EFLAGS, CR0 and CR4: the leaf of :mod:`lavsim.cpu`.

Pure constants, imported by :mod:`lavsim.cpu.flags` and :mod:`lavsim.cpu.state` alike (and
re-exported by ``state``, so ``from lavsim.cpu.state import EAX, IF`` keeps working).

Register numbering follows the ModRM encoding (SDM Vol. 2, table 2-2): EAX ECX EDX EBX ESP EBP
ESI EDI = 0..7; segment registers ES CS SS DS FS GS = 0..5 (SDM Vol. 2, 3.1.1.1 "Sreg").
"""

from __future__ import annotations

__all__ = [
    "AC", "AF", "CF", "CR0_AM", "CR0_CD", "CR0_EM", "CR0_ET", "CR0_MP", "CR0_NE", "CR0_NW",
    "CR0_PE", "CR0_PG", "CR0_TS", "CR0_WP", "CR4_PGE", "CR4_PSE", "CS", "DF", "DS", "EAX", "EBP",
    "EBX", "ECX", "EDI", "EDX", "EFLAGS_FIXED", "EFLAGS_WRITABLE", "ES", "ESI", "ESP", "FS", "GS",
    "ID", "IF", "IOPL", "IOPL_SHIFT", "NT", "OF", "PF", "RF", "SF", "SREG_NAMES", "SS",
    "STATUS_FLAGS", "TF", "VM", "ZF",
]  # fmt: skip

# General registers.
EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI = range(8)
# Segment registers.
ES, CS, SS, DS, FS, GS = range(6)
SREG_NAMES = ("ES", "CS", "SS", "DS", "FS", "GS")

# EFLAGS bits (SDM Vol. 1, 3.4.3).
CF = 1 << 0
PF = 1 << 2
AF = 1 << 4
ZF = 1 << 6
SF = 1 << 7
TF = 1 << 8
IF = 1 << 9
DF = 1 << 10
OF = 1 << 11
IOPL_SHIFT = 12
IOPL = 3 << IOPL_SHIFT
NT = 1 << 14
RF = 1 << 16
VM = 1 << 17
AC = 1 << 18
ID = 1 << 21
#: The six status flags that arithmetic computes.
STATUS_FLAGS = CF | PF | AF | ZF | SF | OF
#: Bit 1 always reads as 1.
EFLAGS_FIXED = 1 << 1
#: Bits software can ever change on this model (a Pentium without VME/VIF/VIP).
EFLAGS_WRITABLE = STATUS_FLAGS | TF | IF | DF | IOPL | NT | RF | AC | ID

# CR0 / CR4 bits (SDM Vol. 3, 2.5).
CR0_PE = 1 << 0
CR0_MP = 1 << 1
CR0_EM = 1 << 2
CR0_TS = 1 << 3
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_WP = 1 << 16
CR0_AM = 1 << 18
CR0_NW = 1 << 29
CR0_CD = 1 << 30
CR0_PG = 1 << 31
CR4_PSE = 1 << 4
CR4_PGE = 1 << 7
