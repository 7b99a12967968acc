"""Lavender on the simulated machine: address spaces, the resident space, process groups,
processes, threads, a round-robin scheduler and traps, with every runtime path as guest code.

Start with :class:`LavenderSystem` (:mod:`lavsim.kernel.system`); :mod:`lavsim.kernel.layout`
holds every number the boot loader and the guest kernel share.
"""

from __future__ import annotations

from lavsim.kernel.ipc import PortInfo, QueuedMessage
from lavsim.kernel.observer import KernelStats, RowStats
from lavsim.kernel.sharing import (
    AddressStructure,
    DataExport,
    PageShare,
    ProcedureExport,
    Sharing,
    lav_call_source,
)
from lavsim.kernel.system import (
    BlockedThread,
    FaultRecord,
    LavenderSystem,
    PanicReport,
    Process,
    ProcessGroup,
    RunOutcome,
    SegmentInfo,
    Thread,
    ThreadState,
    UserRegisters,
)

__all__ = [
    "AddressStructure",
    "BlockedThread",
    "DataExport",
    "FaultRecord",
    "KernelStats",
    "LavenderSystem",
    "PageShare",
    "PanicReport",
    "PortInfo",
    "ProcedureExport",
    "Process",
    "ProcessGroup",
    "QueuedMessage",
    "RowStats",
    "RunOutcome",
    "SegmentInfo",
    "Sharing",
    "Thread",
    "ThreadState",
    "UserRegisters",
    "lav_call_source",
]
