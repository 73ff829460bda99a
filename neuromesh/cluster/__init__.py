"""Beyond one machine: evaluations, sweeps and co-simulation campaigns on Dask.

Users outgrow one process in two ways -- a compiled network over a large
data set or a grid of compile options, and randomized RTL-vs-emulator
campaigns -- and both are parallel over samples or cases. This package runs
them on Dask distributed (the ``cluster`` extra): a local cluster of worker
processes by default, or any scheduler (``tcp://host:8786``). Results are
merged by sample or case and are identical to the single-process ones.

- :func:`connect` -- the Dask client (:mod:`.connection`);
- :func:`run_tasks` -- independent tasks, progress, faults (:mod:`.tasks`);
- :func:`evaluate` -- a chip image over a batch (:mod:`.evaluate`);
- :func:`sweep` -- compile options x a data set (:mod:`.sweep`);
- :func:`run_campaign` -- co-simulation cases (:mod:`.campaign`).

docs/cluster.md shows the commands (``neuromesh eval``, ``neuromesh sweep``,
``neuromesh cosim-campaign --workers``) and a multi-machine setup.
"""

from .connection import ClusterError, ClusterInfo, connect, require_dask
from .evaluate import DEFAULT_CHUNK, Evaluation, evaluate, run_arrays
from .tasks import RunStats, Task, TaskFailed, run_tasks

__all__ = ["ClusterError", "ClusterInfo", "connect", "require_dask", "DEFAULT_CHUNK",
           "Evaluation", "evaluate", "run_arrays", "RunStats", "Task", "TaskFailed",
           "run_tasks"]
