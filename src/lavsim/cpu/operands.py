"""Operand access for instruction semantics: effective addresses, r/m and reg operands.

These are the functions every semantics module (integer, control, string, far transfers,
system) uses to reach the operands the decoder described in an :class:`~lavsim.cpu.insn.Insn`:

* :func:`ea` -- the effective *offset* of the ModRM memory operand (base + index*scale + disp,
  32-bit address size), to be used with ``insn.seg``;
* :func:`read_rm` / :func:`write_rm` -- the ModRM r/m operand (register or memory through
  ``insn.seg`` with the current privilege), of ``insn.size`` bytes unless ``size`` is given;
* :func:`read_reg` / :func:`write_reg` -- the ModRM reg (or ``+r``) register operand;
* :func:`read_far_pointer` -- the ``m16:v`` memory operand: ``(offset, selector)``.

Memory accesses go through :meth:`CpuState.read_mem` / :meth:`CpuState.write_mem`, so
segmentation and paging faults (#GP(0), #SS(0) for SS-based operands, #PF) are raised here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lavsim.faults import ud

if TYPE_CHECKING:
    from lavsim.cpu.insn import Insn
    from lavsim.cpu.state import CpuState

MASK32 = 0xFFFFFFFF

Handler = Callable[[Any, "Insn"], None]


def ea(cpu: CpuState, i: Insn) -> int:
    """Effective offset of the ModRM memory operand (SDM Vol. 2, 2.1.5; 32-bit addressing)."""
    regs = cpu.regs
    offset = i.disp
    if i.base >= 0:
        offset += regs[i.base]
    if i.index >= 0:
        offset += regs[i.index] * i.scale
    return offset & MASK32


def read_rm(cpu: CpuState, i: Insn, size: int | None = None) -> int:
    """The r/m operand: register ``i.rm`` or memory at ``i.seg:ea``."""
    n = i.size if size is None else size
    if i.mem:
        return cpu.read_mem(i.seg, ea(cpu, i), n)
    return cpu.get_reg(i.rm, n)


def write_rm(cpu: CpuState, i: Insn, value: int, size: int | None = None) -> None:
    """Write the r/m operand (a register write keeps the bits outside the operand)."""
    n = i.size if size is None else size
    if i.mem:
        cpu.write_mem(i.seg, ea(cpu, i), n, value)
    else:
        cpu.set_reg(i.rm, n, value)


def read_reg(cpu: CpuState, i: Insn) -> int:
    """The ModRM reg (or ``+r``) register operand of ``i.size`` bytes."""
    return cpu.get_reg(i.reg, i.size)


def write_reg(cpu: CpuState, i: Insn, value: int) -> None:
    """Write the ModRM reg (or ``+r``) register operand of ``i.size`` bytes."""
    cpu.set_reg(i.reg, i.size, value)


def read_far_pointer(cpu: CpuState, i: Insn) -> tuple[int, int]:
    """The ``m16:v`` operand: offset (``i.size`` bytes) then a 16-bit selector.

    #UD if the operand is a register (the decoder already refuses that encoding).
    """
    if not i.mem:
        raise ud()
    offset_ea = ea(cpu, i)
    offset = cpu.read_mem(i.seg, offset_ea, i.size)
    selector = cpu.read_mem(i.seg, (offset_ea + i.size) & MASK32, 2)
    return offset, selector
