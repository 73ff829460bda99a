"""Energy and latency from the activity counters (docs/architecture.md §13)
of any backend, with a documented, replaceable energy table.

The counters say what the chip did -- spikes, neuron updates, synaptic
operations, packets, hops, plastic-synapse updates, busy clocks -- exactly
and the same on the emulator, the RTL and a board. An energy table gives a
price in picojoules per counted operation; the default, :data:`LOIHI_TABLE`,
holds Loihi's published figures, so the result reads "what a Loihi-class
chip would spend on this activity": a guide, not a measurement of this
design on an FPGA. Replace it with a dict of your own (``neuromesh run
--energy-table FILE.json``) to price another technology.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .chip import ChipError, Counter

__all__ = ["LOIHI_TABLE", "TABLE_KEYS", "load_table", "energy_pj", "energy_report"]

#: Loihi's published energy per operation, in picojoules (Davies et al.,
#: "Loihi: a neuromorphic manycore processor with on-chip learning", IEEE
#: Micro 38(1), 2018, the table of energy and performance figures), as
#: prices of the counters:
#:
#: - ``neuron_update``: 52 pJ, an inactive neuron update (every UPDATES);
#: - ``spike``: 29 pJ more for an update that fires (81 pJ active - 52 pJ);
#: - ``synaptic_op``: 23.6 pJ per synaptic spike operation (SYNOPS);
#: - ``packet``: 1.7 pJ, the within-tile spike energy, per packet sent;
#: - ``hop``: 3.5 pJ per router-to-router link, the mean of Loihi's 3.0 pJ
#:   (east-west) and 4.0 pJ (north-south) tile hops (HOPS does not
#:   separate the axes);
#: - ``learn``: 120 pJ per synaptic update (pairwise STDP) (LEARN).
LOIHI_TABLE = {"neuron_update": 52.0, "spike": 29.0, "synaptic_op": 23.6, "packet": 1.7,
               "hop": 3.5, "learn": 120.0}

#: The counter each key of an energy table prices.
TABLE_KEYS = {"neuron_update": Counter.UPDATES, "spike": Counter.SPIKES,
              "synaptic_op": Counter.SYNOPS, "packet": Counter.PACKETS, "hop": Counter.HOPS,
              "learn": Counter.LEARN}


def load_table(path) -> dict:
    """An energy table from a JSON file: an object with some of the keys of
    :data:`TABLE_KEYS` (pJ per operation, numbers >= 0); keys it leaves out
    keep :data:`LOIHI_TABLE`'s price. Bad files raise :class:`ChipError`
    in one line."""
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ChipError(f"--energy-table {path}: not a readable JSON file ({e})") from None
    if not isinstance(table, dict):
        raise ChipError(f"--energy-table {path}: expected a JSON object of pJ per operation, "
                        f"keys {', '.join(TABLE_KEYS)}")
    for key, value in table.items():
        if key not in TABLE_KEYS:
            raise ChipError(f"--energy-table {path}: unknown operation {key!r}; "
                            f"known: {', '.join(TABLE_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not np.isfinite(value) or value < 0:
            raise ChipError(f"--energy-table {path}: {key} = {value!r} is not a number >= 0 "
                            f"(picojoules per operation)")
    return {**LOIHI_TABLE, **{k: float(v) for k, v in table.items()}}


def energy_pj(counts, table: dict | None = None) -> dict:
    """Picojoules per priced operation for ``counts`` (``[..., 7]`` counter
    values, summed over every leading axis), and ``"total"``."""
    table = LOIHI_TABLE if table is None else table
    c = np.asarray(counts, dtype=np.int64).reshape(-1, len(Counter)).sum(axis=0)
    out = {key: float(c[counter]) * table[key] for key, counter in TABLE_KEYS.items()}
    out["total"] = sum(out.values())
    return out


def energy_report(counts, steps: int, *, table: dict | None = None, per: str = "run",
                  n: int = 1, learning: bool = False) -> str:
    """Lines for ``counts`` (uint32 ``[batch, n_cores, 7]``) of ``steps``
    steps: the energy from ``table`` (default :data:`LOIHI_TABLE`) per
    ``per`` (the counts cover ``n`` of them: batch rows, inferences), its
    breakdown, the busy clocks per step of the busiest core and what that
    means at each board's clock (``learning``: the clock of the board's
    build with learning engines)."""
    from .boards.catalog import BOARDS
    table = LOIHI_TABLE if table is None else table
    e = energy_pj(counts, table)
    name = "Loihi's published figures" if table == LOIHI_TABLE else "the given table"
    parts = ", ".join(f"{key} {e[key] / n / 1e6:.3g}" for key in TABLE_KEYS if e[key])
    lines = [f"energy from the counters: {e['total'] / n / 1e6:.3g} uJ per {per} "
             f"({name}, pJ per operation: "
             + ", ".join(f"{k} {v:g}" for k, v in table.items()) + ")",
             f"  by operation (uJ): {parts or 'none'}"]
    c = np.asarray(counts, dtype=np.int64)
    if steps and c.size:
        busy = c[..., Counter.CLOCKS].max(axis=-1).mean() / steps
        # A core whose synapse unit runs beside its pass (docs/architecture.md
        # §6.7) needs at best the longer of the two: the pass's clocks are
        # CLOCKS - SYNOPS.
        synops = c[..., Counter.SYNOPS]
        best = np.maximum(c[..., Counter.CLOCKS] - synops, synops).max(axis=-1).mean() / steps

        def at_board(name_, b):
            text = f"{busy / b.clk_hz * 1e6:.3g} us at {b.clk_hz / 1e6:g} MHz ({name_}"
            if b.chip_args.get("core_args", {}).get("overlap", True) and best < busy:
                text += f"; at best {best / b.clk_hz * 1e6:.3g} us overlapped"
            return text + ")"
        at = ", ".join(at_board(name_, b.for_build(learning=learning))
                       for name_, b in BOARDS.items())
        lines.append(f"busy clocks per step: {busy:.1f} (busiest core) -> {at}; the mesh and "
                     f"the barrier add a few clocks per step")
    return "\n".join(lines)
