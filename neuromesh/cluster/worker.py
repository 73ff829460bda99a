"""Set-up and tear-down of the local cluster's worker processes (a Dask
preload module; remote workers can load it with ``dask worker --preload
neuromesh.cluster.worker``).

Ctrl-C in a terminal reaches every process of the foreground group, worker
processes included. The client cancels the tasks and closes the cluster on
Ctrl-C, so the workers ignore it: otherwise each would print its own
``KeyboardInterrupt`` traceback while the client shuts them down cleanly.

A co-simulation task runs Verilator in a child process that Dask does not
know about; a worker closing in the middle of such a task (Ctrl-C, the
cluster shutting down) ends those children, so no simulation outlives its
worker.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["dask_setup", "dask_teardown"]


def dask_setup(worker):
    """Called by Dask in each new worker process (also one the nanny
    restarts after a crash)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def dask_teardown(worker):
    """Called by Dask when the worker closes: end this process's children
    (simulations of tasks that were still running)."""
    try:
        import psutil
    except ImportError:
        return
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=3)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
