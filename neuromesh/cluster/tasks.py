"""Running a list of independent tasks on Dask workers, or in this process.

Every distributed command is a list of :class:`Task`\\ s -- a chunk of
samples, a chunk of co-simulation cases -- each a pure function of its
arguments, so Dask may run one again on another worker when a worker dies
and the result does not change. :func:`run_tasks` submits them, shows a
progress bar (tqdm, on stderr) in the tasks' unit, collects the results in
task order whatever order they finish in, and turns a task's exception into
one line naming the task (e.g. its sample ids) and the error. On Ctrl-C it
cancels every task before the ``KeyboardInterrupt`` goes on.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from .connection import ClusterError

__all__ = ["Task", "TaskFailed", "RunStats", "run_tasks", "one_line"]


@dataclass
class Task:
    """One unit of work.

    ``label`` names it in errors ("samples 256..383"); ``weight`` is what it
    adds to the progress bar (samples, cases); ``fn(*args)`` computes it and
    must depend on nothing but its arguments. Arguments may be Dask futures
    (e.g. a chip image scattered once to every worker).
    """

    label: str
    weight: int
    fn: Callable
    args: tuple = ()


class TaskFailed(ClusterError):
    """A task raised; the message names the task and the error."""

    def __init__(self, task: Task, error: BaseException):
        self.task = task
        self.error = error
        super().__init__(f"{task.label}: {type(error).__name__}: {one_line(str(error))}")


@dataclass
class RunStats:
    """How a :func:`run_tasks` call went."""

    tasks: int = 0
    weight: int = 0
    seconds: float = 0.0
    workers: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Units (samples, cases) per second."""
        return self.weight / max(self.seconds, 1e-9)


def one_line(text: str, limit: int = 400) -> str:
    """``text`` on one line (whitespace runs become one space), at most
    ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _bar(total: int, unit: str, desc: str | None, progress: bool):
    from tqdm import tqdm
    # disable=None: shown only when stderr is a terminal, as the emulator's bar.
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, leave=False,
                disable=None if progress else True, smoothing=0.1)


def run_tasks(tasks: list[Task], client=None, *, name: str = "neuromesh", unit: str = "sample",
              progress: bool = False, on_result: Callable | None = None,
              stats: RunStats | None = None) -> list:
    """Run ``tasks`` and return their results in task order.

    ``client``: a :class:`distributed.Client` (tasks run on its workers, as
    many at once as they have threads), or ``None`` to run them one after the
    other in this process. ``on_result(index, result)`` is called in this
    process as each task completes (in completion order). ``stats``: filled
    in with the task count, total weight and wall time.

    Raises :class:`TaskFailed` for the first task that raises (the others
    are cancelled). On ``KeyboardInterrupt`` every task still pending is
    cancelled and the interrupt is re-raised.
    """
    stats = stats if stats is not None else RunStats()
    stats.tasks, stats.weight = len(tasks), sum(t.weight for t in tasks)
    results = [None] * len(tasks)
    t0 = time.perf_counter()
    with _bar(stats.weight, unit, name, progress) as bar:
        if client is None:
            stats.workers = 1
            for i, task in enumerate(tasks):
                try:
                    results[i] = task.fn(*task.args)
                except Exception as e:
                    raise TaskFailed(task, e) from e
                bar.update(task.weight)
                if on_result is not None:
                    on_result(i, results[i])
        else:
            stats.workers = len(client.nthreads())
            _run_on(client, tasks, results, name, bar, on_result)
    stats.seconds = time.perf_counter() - t0
    return results


@contextmanager
def _interrupt_flag():
    """A flag that Ctrl-C sets while a distributed run waits; the waiting
    loop checks it every few milliseconds and raises ``KeyboardInterrupt``
    itself. Python's own handler raises wherever the main thread happens to
    be, which can be inside a callback Python runs for itself (a
    garbage-collector hook or ``__del__``; Dask installs some), where the
    exception is printed and dropped and the Ctrl-C lost."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _completed_batches(futures, interrupted):
    """Lists of futures as they complete, polled so that ``interrupted`` is
    seen within a fraction of a second."""
    from distributed import as_completed
    pending = as_completed(futures)
    while True:
        if interrupted.is_set():
            raise KeyboardInterrupt
        batch = pending.next_batch(block=False)
        if batch:
            yield batch
        elif pending.is_empty():
            return
        else:
            time.sleep(0.02)


def _run_on(client, tasks, results, name, bar, on_result):
    run = f"{name}-{uuid.uuid4().hex[:8]}"
    done = False
    with _interrupt_flag() as interrupted:
        # Tuple keys (prefix, index): Dask groups them by prefix on its dashboard.
        futures = [client.submit(t.fn, *t.args, key=(run, i), pure=False)
                   for i, t in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            # Completed futures in batches, each gathered by one synchronous
            # call: no two gathers overlap (as_completed(with_results=True)
            # gathers concurrently, and releasing results meanwhile can stall
            # it). A result lost with its worker before the gather is
            # recomputed by Dask inside client.gather.
            for batch in _completed_batches(futures, interrupted):
                for future in batch:
                    if future.status == "error":
                        raise TaskFailed(tasks[index[future.key]],
                                         future.exception()) from None
                    if future.status == "cancelled":
                        raise TaskFailed(tasks[index[future.key]], ClusterError(
                            "Dask cancelled the task (its inputs were lost with every "
                            "worker holding them)"))
                values = client.gather(batch)
                for future, value in zip(batch, values):
                    i = index[future.key]
                    results[i] = value
                    future.release()            # its memory on the worker is not needed
                    bar.update(tasks[i].weight)
                    if on_result is not None:
                        on_result(i, value)
            if interrupted.is_set():
                raise KeyboardInterrupt
            done = True
        finally:
            if not done:                         # an error or Ctrl-C: stop the rest
                client.cancel(futures, force=True)
