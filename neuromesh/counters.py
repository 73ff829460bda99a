"""Reading and printing the activity counters (docs/architecture.md §13)
of any backend: the emulator predicts them, a board built with counters
reads them from its chip; both give uint32 ``[batch, n_cores, 7]``."""

from __future__ import annotations

import numpy as np

from .chip import Counter, Geometry

__all__ = ["NO_COUNTERS", "backend_counters", "counter_table"]

#: What ``neuromesh run`` prints for a board whose bitstream has no counters.
NO_COUNTERS = ("activity counters: not available (the board's bitstream was built "
               "without them; `neuromesh build --counters` adds them)")

#: Column headings of :func:`counter_table`, by counter.
HEADINGS = {Counter.SPIKES: "spikes", Counter.UPDATES: "updates", Counter.SYNOPS: "syn. ops",
            Counter.PACKETS: "packets", Counter.HOPS: "hops", Counter.LEARN: "learn ops",
            Counter.CLOCKS: "busy clocks"}

#: Cores listed one by one in a table; bigger chips get the total only.
MAX_ROWS = 16


def backend_counters(backend) -> np.ndarray | None:
    """``backend.counters()`` (uint32 ``[batch, n_cores, 7]``), or ``None``
    for a board built without counters."""
    from .host import CountersUnavailableError
    try:
        return backend.counters()
    except CountersUnavailableError:
        return None


def counter_table(counts, geometry: Geometry, steps: int, source: str) -> str:
    """The counters ``counts`` (``[batch, n_cores, 7]``, summed over batch
    rows; a wrapped u32 counter stays wrapped) as a table per core (up to
    16 cores) and a total row. ``source`` names the backend that counted
    (``"emulator"``, ``"board"``); ``steps``: the steps they cover."""
    g = geometry
    c = np.asarray(counts, dtype=np.int64).sum(axis=0)          # [n_cores, 7]
    rows = c.shape[0]
    lines = [f"activity counters from the {source} (docs/architecture.md §13), "
             f"{steps} steps" + (f", summed over {np.shape(counts)[0]} batch rows"
                                 if np.shape(counts)[0] > 1 else "")]
    head = f"{'core':>6} {'x,y':>5} " + " ".join(f"{h:>11}" for h in HEADINGS.values())
    lines.append(head)
    if rows <= MAX_ROWS:
        for k in range(rows):
            lines.append(f"{k:>6} {k % g.cols},{k // g.cols:<3} "
                         + " ".join(f"{int(v):>11}" for v in c[k]))
    lines.append(f"{'total':>6} {'':>5} " + " ".join(f"{int(v):>11}" for v in c.sum(axis=0)))
    return "\n".join(lines)
