"""Experiments above the kernel: the RPC cycle table and the sweeps behind ``lavsim rpc`` and
``lavsim sweep`` (issue 6).

Nothing below this package imports it. Every figure it reports is measured from guest
execution in the run that prints it: a workload is booted, its client's calls are cut into
windows at two labels of the client (machine breakpoints), and the kernel's step observer
(:class:`~lavsim.kernel.observer.KernelObserver`) plus a small companion observer count what
happened in each window.
"""

from lavsim.experiments.rpc import (
    MECHANISMS,
    CallCost,
    Mechanism,
    RpcTable,
    Workload,
    measure_call,
    rpc_table,
)
from lavsim.experiments.sweeps import SWEEPS, SweepResult, run_sweep

__all__ = [
    "MECHANISMS",
    "SWEEPS",
    "CallCost",
    "Mechanism",
    "RpcTable",
    "SweepResult",
    "Workload",
    "measure_call",
    "rpc_table",
    "run_sweep",
]
