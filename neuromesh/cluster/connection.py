"""Where the work runs: a Dask distributed client, local or remote.

Every distributed command gets its :class:`~distributed.Client` from
:func:`connect`: a ``LocalCluster`` of worker *processes* on this machine
(``workers=N``), or an existing scheduler (``scheduler="tcp://host:8786"``,
else the ``DASK_SCHEDULER_ADDRESS`` environment variable). Dask lives in the
``cluster`` extra; without it every entry point fails with one line saying
how to install it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from neuromesh.chip import ChipError

__all__ = ["ClusterError", "require_dask", "connect", "ClusterInfo", "default_workers",
           "SCHEDULER_ENV"]

#: The environment variable Dask itself reads for the scheduler's address.
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"

#: How long to wait for a remote scheduler's first worker before giving up.
WORKER_WAIT_S = 60.0


class ClusterError(ChipError):
    """A distributed run could not start or lost work it cannot redo."""


def require_dask():
    """Import ``distributed`` or fail with the one line that says how to get it."""
    try:
        import distributed
    except ImportError:
        raise ClusterError("Dask distributed is not installed: pip install "
                           "'neuromesh[cluster]' (or run in one process with "
                           "`neuromesh run`)") from None
    return distributed


def default_workers() -> int:
    """Worker processes of a local cluster when none are asked for: one per
    CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                       # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ClusterInfo:
    """What :func:`connect` connected to, for the commands' first line."""

    address: str
    local: bool
    workers: int
    threads: int

    def __str__(self) -> str:
        where = "local cluster" if self.local else f"scheduler {self.address}"
        return (f"{where}: {self.workers} worker{'s' if self.workers != 1 else ''} "
                f"({self.threads} thread{'s' if self.threads != 1 else ''})")


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None, *,
            threads_per_worker: int = 1, quiet_logs: bool = True,
            wait: float = WORKER_WAIT_S):
    """A Dask client for the duration of a ``with`` block; yields ``(client,
    info)`` and closes the client (and the local cluster it started) on the
    way out, also on an error or Ctrl-C.

    ``scheduler`` (or, when neither argument is given, the
    ``DASK_SCHEDULER_ADDRESS`` variable): connect to that running scheduler
    and wait up to ``wait`` seconds for a worker. Otherwise start a
    ``LocalCluster`` of ``workers`` processes (default: one per CPU) with
    ``threads_per_worker`` threads each; Dask sets ``OMP_NUM_THREADS`` and
    the other BLAS thread variables to 1 in its worker processes.
    """
    distributed = require_dask()
    if workers is not None and scheduler is not None:
        raise ClusterError("give --workers or --scheduler, not both")
    if workers is not None and workers < 1:
        raise ClusterError(f"--workers {workers}: need at least 1 worker process")
    if workers is None and scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV) or None
    # Quiet: task errors and lost workers reach the caller as exceptions; the
    # scheduler's log lines about them (e.g. "Couldn't gather keys" after a worker
    # died) would only repeat them.
    level = logging.CRITICAL if quiet_logs else logging.WARNING
    logger = logging.getLogger("distributed")
    saved_level = logger.level
    try:
        with contextlib.ExitStack() as stack:
            if scheduler is None:
                n = workers or default_workers()
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                    dashboard_address=":0", silence_logs=level,
                    preload=["neuromesh.cluster.worker"]))
                client = stack.enter_context(distributed.Client(cluster))
                local = True
            else:
                logger.setLevel(level)
                client = stack.enter_context(_remote_client(distributed, scheduler))
                local = False
                try:
                    client.wait_for_workers(1, timeout=wait)
                except TimeoutError:
                    raise ClusterError(f"no worker joined the scheduler at {scheduler} "
                                       f"within {wait:g} s; start one with `dask worker "
                                       f"{scheduler}`") from None
            info = _describe(client, local)
            _check_workers(client)
            try:
                yield client, info
            except BaseException:
                # Closing with tasks still cancelling (Ctrl-C, a failed task):
                # the scheduler's complaints about comms that closed first are
                # noise.
                logger.setLevel(logging.CRITICAL + 1)
                raise
    finally:
        logger.setLevel(saved_level)


def _remote_client(distributed, scheduler: str):
    try:
        return distributed.Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None


def _describe(client, local: bool) -> ClusterInfo:
    threads = client.nthreads()            # {worker address: threads}, every worker
    return ClusterInfo(address=client.scheduler.address, local=local, workers=len(threads),
                       threads=sum(threads.values()))


def _neuromesh_version():
    import neuromesh
    return neuromesh.__version__


def _check_workers(client):
    """Every worker must run the same neuromesh: the emulator's arithmetic is
    the promise, and an older worker would break it silently."""
    import neuromesh
    try:
        versions = client.run(_neuromesh_version)
    except ImportError as e:
        raise ClusterError(f"a Dask worker cannot import neuromesh ({e}); install it on "
                           f"every worker machine") from None
    wrong = {w: v for w, v in versions.items() if v != neuromesh.__version__}
    if wrong:
        w, v = next(iter(wrong.items()))
        raise ClusterError(f"worker {w} runs neuromesh {v}, this machine "
                           f"{neuromesh.__version__} ({len(wrong)} of {len(versions)} workers "
                           f"differ); install the same version everywhere")
