"""Experiments above the kernel: the RPC cycle table and the sweeps behind ``lavsim rpc`` and
``lavsim sweep`` (issue 6).

Nothing below this package imports it. Every figure it reports is measured from guest
execution in the run that prints it, by one measurement layer:

- :mod:`~lavsim.experiments.workload`: :class:`Workload`, the machine and the load around the
  calls;
- :mod:`~lavsim.experiments.mechanisms`: :class:`Mechanism`, one class per way of calling,
  which builds its client and server; :data:`MECHANISMS` (the table's) and :data:`VARIANTS`;
- :mod:`~lavsim.experiments.harness`: boots a workload and cuts its run into one window per
  call at two labels of the client (machine breakpoints);
- :mod:`~lavsim.experiments.phases`: the phase observer, beside the kernel's step observer
  (:class:`~lavsim.kernel.observer.KernelObserver`), sorting with the same classifier;
- :mod:`~lavsim.experiments.rpc`: :func:`measure_call`, :func:`rpc_table` and the table;
- :mod:`~lavsim.experiments.sweeps`: one knob at a time (the built-in experiment files);
- :mod:`~lavsim.experiments.experiment`: experiment files, grids over any workload field
  (issue 18); :mod:`~lavsim.experiments.engines`: serial, a local process pool or a Dask
  cluster; :mod:`~lavsim.experiments.store`: the SQLite result store that resumes;
  :mod:`~lavsim.experiments.progress`: the progress bar.
"""

from lavsim.experiments.engines import DaskEngine, PoolEngine, SerialEngine, run_experiment
from lavsim.experiments.experiment import (
    Experiment,
    ExperimentFileError,
    ExperimentResult,
    load_experiment,
)
from lavsim.experiments.mechanisms import MECHANISMS, VARIANTS, Mechanism, mechanism
from lavsim.experiments.rpc import CallCost, RpcTable, measure_call, rpc_table
from lavsim.experiments.store import Store, StoreError, read_results
from lavsim.experiments.sweeps import SWEEPS, SweepResult, run_sweep
from lavsim.experiments.workload import Workload

__all__ = [
    "MECHANISMS",
    "SWEEPS",
    "VARIANTS",
    "CallCost",
    "DaskEngine",
    "Experiment",
    "ExperimentFileError",
    "ExperimentResult",
    "Mechanism",
    "PoolEngine",
    "RpcTable",
    "SerialEngine",
    "Store",
    "StoreError",
    "SweepResult",
    "Workload",
    "load_experiment",
    "measure_call",
    "mechanism",
    "read_results",
    "rpc_table",
    "run_experiment",
    "run_sweep",
]
