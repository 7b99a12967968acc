"""The decoded instruction: what the decoder hands to an instruction's semantics function.

A decoded instruction is immutable once built and is cached by the executor (a host-side
speed cache keyed by linear EIP and invalidated on writes to code pages); it must never hold
state that depends on anything but the instruction bytes and the decode-time configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lavsim.cpu.isa import Form


class Insn:
    """One decoded instruction.

    Fields:
      ``form``      the :class:`~lavsim.cpu.isa.Form` it matched
      ``addr``      offset (EIP) of its first byte; ``length`` bytes; ``next_eip`` = addr+length
      ``size``      operand size in bytes (1, 2 or 4)
      ``reg``       ModRM.reg operand, the ``+r`` register, or the Sreg/CRn number
      ``mem``       True when the ModRM r/m operand is memory
      ``rm``        register number of a register r/m operand
      ``seg``       segment register of the memory operand (default DS, SS for EBP/ESP base,
                    or the override prefix); also the source segment of string instructions
      ``base``, ``index`` register numbers or -1; ``scale`` 1/2/4/8; ``disp`` displacement
      ``imm``       first immediate (sign-extended and masked to the operand size for simm8),
                    the branch target offset for rel8/relv, the offset of ptr16:v, the port
      ``imm2``      second immediate: the selector of ptr16:v, the imm8 of ENTER
      ``cc``        condition code (0..15) of Jcc/SETcc/CMOVcc
      ``rep``       0, 0xF2 (REPNE) or 0xF3 (REP/REPE)
      ``lock``      LOCK prefix present
      ``timing``    timing key of the base cost; ``cycles`` that cost in the current profile
      ``handler``   the semantics function, called as ``handler(cpu, insn)``
      ``issue``     its :class:`~lavsim.cpu.pairing.Issue` when the profile has an issue model
      ``vprev``, ``vok``  memo of :func:`lavsim.cpu.pairing.pairs` (U descriptor, result): a
                    pure function of the two descriptors, so the cache changes no result
    """

    __slots__ = (
        "addr", "base", "cc", "cycles", "disp", "form", "handler", "imm", "imm2", "index",
        "issue", "length", "lock", "mem", "next_eip", "reg", "rep", "rm", "scale", "seg",
        "size", "timing", "vok", "vprev",
    )

    form: Form
    addr: int
    length: int
    next_eip: int
    size: int
    reg: int
    mem: bool
    rm: int
    seg: int
    base: int
    index: int
    scale: int
    disp: int
    imm: int
    imm2: int
    cc: int
    rep: int
    lock: bool
    timing: str
    cycles: int
    handler: Callable[[Any, Insn], None]
    issue: Issue | None
    vprev: Issue | None
    vok: bool


class Issue:
    """What the issue model (:mod:`lavsim.cpu.pairing`) needs of one decoded instruction;
    computed once, at decode, from the instruction alone.

    ``cls``: NP/UV/PU/PV (0..3) after the prefix and displacement+immediate rules.
    ``reads``, ``writes``: general registers (bit n = register n; a partial register is the
    whole). ``addr``: registers its address generation reads (base, index, ESP of a stack
    access, ESI/EDI of a string instruction). ``agi_writes``: the writes that stall a
    following address generation (an implicit ESP update by PUSH/POP/CALL/RET does not,
    [AF] ch. 9). ``stack``: ``pairing.STACK_*`` kind. ``rmw``: a memory destination other than
    MOV (two such pair but overlap one clock only, [GPBB] ch. 20). ``prefixes``: prefix bytes
    that cost decode clocks (the 0F byte included where the model counts it). ``branch``:
    ``pairing.BRANCH_*`` kind for the BTB. ``data``: ``pairing.DATA_*``, where its data
    access lies (for bank conflicts).
    """

    __slots__ = ("addr", "agi_writes", "branch", "cls", "data", "prefixes", "reads", "rmw",
                 "stack", "writes")

    def __init__(self, cls: int, reads: int, writes: int, addr: int, agi_writes: int,
                 stack: int, rmw: bool, prefixes: int, branch: int, data: int) -> None:
        self.cls = cls
        self.reads = reads
        self.writes = writes
        self.addr = addr
        self.agi_writes = agi_writes
        self.stack = stack
        self.rmw = rmw
        self.prefixes = prefixes
        self.branch = branch
        self.data = data

    def to_list(self) -> list[Any]:
        """JSON-ready fields (for checkpoints)."""
        return [self.cls, self.reads, self.writes, self.addr, self.agi_writes, self.stack,
                self.rmw, self.prefixes, self.branch, self.data]

    @classmethod
    def from_list(cls, v: list[Any]) -> Issue:
        """The inverse of :meth:`to_list` (``ValueError`` on a malformed list)."""
        if not isinstance(v, list) or len(v) != 10:
            raise ValueError(f"an issue descriptor is a list of 10 fields, not {v!r}")
        for x in v:
            if not isinstance(x, int) or not 0 <= int(x) <= 0xFFFF:
                raise ValueError(f"bad issue descriptor field {x!r}")
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], bool(v[6]), v[7], v[8], v[9])
