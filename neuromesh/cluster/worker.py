"""Set-up of the local cluster's worker processes (a Dask preload module).

Ctrl-C in a terminal reaches every process of the foreground group, worker
processes included. The client cancels the tasks and closes the cluster on
Ctrl-C, so the workers ignore it: otherwise each would print its own
``KeyboardInterrupt`` traceback while the client shuts them down cleanly.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["dask_setup"]


def dask_setup(worker):
    """Called by Dask in each new worker process (also one the nanny
    restarts after a crash)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
