"""Architectural exceptions of IA-32 (Intel SDM Vol. 3, chapter 6, table 6-1).

A :class:`CpuFault` is raised inside the simulator by the MMU or the CPU when the guest does
something the architecture refuses; the CPU catches it and delivers it through the IDT. It is
never allowed to escape to the host as a Python error: that is the job of
:class:`lavsim.errors.LavsimError`.
"""

from __future__ import annotations

DE = 0  # divide error
DB = 1  # debug
NMI = 2
BP = 3  # breakpoint (INT3)
OF = 4  # overflow (INTO)
BR = 5  # BOUND range exceeded
UD = 6  # invalid opcode
NM = 7  # device not available
DF = 8  # double fault
TS = 10  # invalid TSS
NP = 11  # segment not present
SS = 12  # stack-segment fault
GP = 13  # general protection
PF = 14  # page fault
MF = 16  # x87 floating-point error
AC = 17  # alignment check

MNEMONIC = {
    DE: "#DE", DB: "#DB", NMI: "NMI", BP: "#BP", OF: "#OF", BR: "#BR", UD: "#UD",
    NM: "#NM", DF: "#DF", TS: "#TS", NP: "#NP", SS: "#SS", GP: "#GP", PF: "#PF",
    MF: "#MF", AC: "#AC",
}

#: Vectors whose delivery pushes an error code (SDM Vol. 3, table 6-1).
HAS_ERROR_CODE = frozenset({DF, TS, NP, SS, GP, PF, AC})
#: Contributory exceptions for the double-fault rules (SDM Vol. 3, table 6-4/6-5).
CONTRIBUTORY = frozenset({DE, TS, NP, SS, GP})

# Page-fault error code bits (SDM Vol. 3, 4.7).
PF_P = 1  # 0: not-present page; 1: protection violation
PF_W = 2  # 0: read; 1: write
PF_U = 4  # 0: supervisor-mode access; 1: user-mode access
PF_I = 16  # instruction fetch (only with NX, kept for completeness)

# Selector error code bits (SDM Vol. 3, 6.13).
EC_EXT = 1  # external event
EC_IDT = 2  # index refers to the IDT
EC_TI = 4  # index refers to the LDT (when EC_IDT is clear)


class CpuFault(Exception):
    """An IA-32 exception raised while executing guest code.

    ``error_code`` is ``None`` for vectors that push none; ``cr2`` is the faulting linear
    address of a page fault.
    """

    __slots__ = ("cr2", "error_code", "vector")

    def __init__(self, vector: int, error_code: int | None = None, cr2: int | None = None):
        self.vector = vector
        self.error_code = error_code
        self.cr2 = cr2
        super().__init__(self.describe())

    def describe(self) -> str:
        name = MNEMONIC.get(self.vector, f"vector {self.vector}")
        if self.error_code is None:
            text = name
        else:
            text = f"{name}({self.error_code:#x})"
        if self.cr2 is not None:
            text += f" at linear {self.cr2:#010x}"
        return text

    def __repr__(self) -> str:
        return f"CpuFault({self.describe()})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CpuFault)
            and (self.vector, self.error_code, self.cr2)
            == (other.vector, other.error_code, other.cr2)
        )

    def __hash__(self) -> int:
        return hash((self.vector, self.error_code, self.cr2))


def gp(error_code: int = 0) -> CpuFault:
    """#GP(error_code)."""
    return CpuFault(GP, error_code)


def ss(error_code: int = 0) -> CpuFault:
    """#SS(error_code)."""
    return CpuFault(SS, error_code)


def np_fault(error_code: int) -> CpuFault:
    """#NP(error_code)."""
    return CpuFault(NP, error_code)


def ts(error_code: int) -> CpuFault:
    """#TS(error_code)."""
    return CpuFault(TS, error_code)


def pf(error_code: int, linear: int) -> CpuFault:
    """#PF(error_code) with CR2 = linear."""
    return CpuFault(PF, error_code, linear)


def ud() -> CpuFault:
    """#UD."""
    return CpuFault(UD)


def de() -> CpuFault:
    """#DE."""
    return CpuFault(DE)


def selector_error_code(selector: int, ext: bool = False) -> int:
    """Error code naming a segment selector: index and TI kept, RPL bits replaced by EXT."""
    return (selector & 0xFFFC) | (EC_EXT if ext else 0)


def idt_error_code(vector: int, ext: bool = False) -> int:
    """Error code naming an IDT entry (IDT bit set)."""
    return (vector << 3) | EC_IDT | (EC_EXT if ext else 0)
