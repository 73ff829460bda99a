"""Connectivity of a chip flattened to (source, target, delay, weight) edges,
and the two ways the emulator propagates spikes along them.

The chip routes a spike through two tables: the source neuron's fan-out
entries name (core, axon) pairs, and each axon names a run of synapses. Both
hops are pure table look-ups, so the emulator resolves them once, at load
time, into one edge list. Modular addition makes the order of contributions
irrelevant, so per step the emulator may sum them any way it likes -- as a
(float, provably exact) matrix product for dense layers or an event-driven
scatter-add for sparse ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuromesh.chip import Region

from .neuron import wrap24

__all__ = ["Edges", "expand", "count_edges", "DensePropagator", "SparsePropagator",
           "make_propagator"]


@dataclass
class Edges:
    """Every synaptic edge of a chip, with global indices.

    A source is a neuron (``0 <= src < n_neurons_total``, index
    ``core * n_neurons + neuron``) or a host input channel
    (``src = n_neurons_total + channel``). ``weight`` is the contribution
    ``w_mant << w_shift``. ``out_neuron``/``out_channel`` list the host-bound
    fan-out entries. ``synapse`` is the synapse entry behind each edge
    (``core * n_synapses + index``) and ``axon`` the input axon it was
    reached through (``core * n_axons + axon``); the learning engine uses both.
    """

    src: np.ndarray
    tgt: np.ndarray
    delay: np.ndarray
    weight: np.ndarray
    out_neuron: np.ndarray
    out_channel: np.ndarray
    synapse: np.ndarray = None
    axon: np.ndarray = None

    def subset(self, keep) -> Edges:
        """The edges selected by the boolean mask ``keep`` (host outputs unchanged)."""
        return Edges(self.src[keep], self.tgt[keep], self.delay[keep], self.weight[keep],
                     self.out_neuron, self.out_channel, self.synapse[keep], self.axon[keep])


def _ranges(base, length):
    """Concatenate ``arange(b, b + l)`` for every pair, without a Python loop."""
    length = np.asarray(length, dtype=np.int64)
    total = int(length.sum())
    start = np.cumsum(length) - length
    return np.repeat(np.asarray(base, dtype=np.int64) - start, length) + np.arange(total)


def expand(config) -> Edges:
    """Resolve fan-out and axon tables of a decoded chip into an edge list."""
    g = config.geometry
    neur = config[Region.NEURON]
    fan = config[Region.FANOUT]
    axon = config[Region.AXON]
    syn = config[Region.SYNAPSE]
    shift = config[Region.GROUP]["w_shift"]

    # Hop 1: neuron -> fan-out entries.
    core, neuron = np.nonzero(neur["fanout_len"] > 0)
    lens = neur["fanout_len"][core, neuron]
    entry = _ranges(neur["fanout_base"][core, neuron], lens)
    ecore = np.repeat(core, lens)
    esrc = np.repeat(core * g.n_neurons + neuron, lens)
    host = fan["to_host"][ecore, entry] == 1
    out_neuron = esrc[host]
    out_channel = fan["channel"][ecore[host], entry[host]]
    keep = ~host
    dest = fan["y"][ecore[keep], entry[keep]] * g.cols + fan["x"][ecore[keep], entry[keep]]
    dest_axon = fan["axon"][ecore[keep], entry[keep]]

    # Host input channels join as extra sources.
    n_total = g.n_cores * g.n_neurons
    ports = np.array([(p.channel, p.core, p.axon) for p in config.image.inputs],
                     dtype=np.int64).reshape(-1, 3)
    src = np.concatenate([esrc[keep], n_total + ports[:, 0]])
    dest = np.concatenate([dest, (ports[:, 1] >> 4) * g.cols + (ports[:, 1] & 0xF)])
    dest_axon = np.concatenate([dest_axon, ports[:, 2]])

    # Hop 2: (core, axon) -> synapse run.
    slen = axon["syn_len"][dest, dest_axon]
    sidx = _ranges(axon["syn_base"][dest, dest_axon], slen)
    score = np.repeat(dest, slen)
    weight = syn["w_mant"][score, sidx] << shift[score, syn["group"][score, sidx]]
    return Edges(
        src=np.repeat(src, slen),
        tgt=score * g.n_neurons + syn["target"][score, sidx],
        delay=syn["delay"][score, sidx],
        weight=weight,
        out_neuron=out_neuron,
        out_channel=out_channel,
        synapse=score * g.n_synapses + sidx,
        axon=np.repeat(dest * g.n_axons + dest_axon, slen))


def count_edges(image, words) -> tuple[int, int]:
    """``(fan-out entries, synaptic edges)`` that :func:`expand` would list,
    counted without listing them, from the words
    :func:`neuromesh.config.check` returns (a few array passes over the
    writes, so fan-out lists that overlap cost nothing extra here)."""
    g = image.geometry
    neur, fan, axon = words[Region.NEURON], words[Region.FANOUT], words[Region.AXON]
    akey = axon.core * g.n_axons + axon.offset
    alen = axon["syn_len"]

    def syn_len(core_index, ax):
        key = np.asarray(core_index, np.int64) * g.n_axons + ax
        if not akey.size:
            return np.zeros(key.shape, np.int64)
        i = np.minimum(np.searchsorted(akey, key), akey.size - 1)
        return np.where(akey[i] == key, alen[i], 0)

    # Synapses reached through each written fan-out entry; an entry never
    # written is a zero word: core-bound to core (0, 0), axon 0.
    reach = np.where(fan["to_host"] == 1, 0,
                     syn_len(fan["y"] * g.cols + fan["x"], fan["axon"]))
    unwritten = int(syn_len(0, 0))
    fkey = fan.core * g.n_fanout + fan.offset
    prefix = np.concatenate([[0], np.cumsum(reach - unwritten)])
    has = neur["fanout_len"] > 0
    length = neur["fanout_len"][has]
    lo = neur.core[has] * g.n_fanout + neur["fanout_base"][has]
    hi = lo + length
    per_neuron = (unwritten * length + prefix[np.searchsorted(fkey, hi)]
                  - prefix[np.searchsorted(fkey, lo)])
    ports = np.array([(p.core, p.axon) for p in image.inputs], np.int64).reshape(-1, 2)
    from_host = syn_len((ports[:, 0] >> 4) * g.cols + (ports[:, 0] & 0xF), ports[:, 1])
    return int(length.sum()), int(per_neuron.sum()) + int(from_host.sum())


# A float32 product is exact while every partial sum stays below 2**24 in
# magnitude, float64 below 2**53. Only the low 24 bits of a sum matter (the
# accumulator wraps), so parallel edges are merged and wrapped to 24 bits
# first: then every cell is below 2**23 and a column of fewer than 2**29
# cells sums below 2**52 -- float64 is always exact, float32 when the largest
# column sum of |W| says so.
_F32_EXACT = 1 << 24


def merge_edges(row, col, weight, n_cols):
    """Sum parallel edges (same row and column) exactly, wrapped to 24 bits.

    Returns ``(row, col, weight)`` with one entry per distinct cell, sorted by
    row then column, weights in ``[-2**23, 2**23)``.
    """
    key = np.asarray(row, np.int64) * n_cols + col
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if key.size \
        else np.zeros(0, np.int64)
    summed = np.add.reduceat(np.asarray(weight, np.int64)[order], starts) if key.size \
        else np.zeros(0, np.int64)
    cells = key[starts]
    return cells // n_cols, cells % n_cols, wrap24(summed)


class DensePropagator:
    """Sum contributions as ``spikes @ W`` with an exact float matrix.

    ``W`` is ``[rows, delays * cols]``; float32 is used when the largest
    column sum of ``|W|`` proves every partial sum exact, float64 otherwise.
    When few rows spike, only those rows are multiplied.
    """

    def __init__(self, row, col, weight, n_rows, n_cols):
        w = np.zeros((n_rows, n_cols), dtype=np.float64)
        w[row, col] = weight
        exact32 = np.abs(w).sum(axis=0).max(initial=0) < _F32_EXACT
        self.dtype = np.float32 if exact32 else np.float64
        self.w = w.astype(self.dtype)
        self.n_rows = n_rows

    def __call__(self, spikes):
        """``spikes``: bool ``[B, rows]``. Returns ``[B, cols]`` float, or None."""
        if spikes.shape[0] == 1:
            active = np.flatnonzero(spikes[0])
            if active.size == 0:
                return None
            if active.size * 2 < self.n_rows:
                return self.w[active].sum(axis=0, keepdims=True)
        else:
            active = np.flatnonzero(spikes.any(axis=0))
            if active.size == 0:
                return None
            if active.size * 2 < self.n_rows:
                return spikes[:, active].astype(self.dtype) @ self.w[active]
        return spikes.astype(self.dtype) @ self.w


class SparsePropagator:
    """Event-driven: gather the out-edges of spiking rows, scatter-add them.

    Costs time in proportion to the synaptic events, not the matrix size.
    ``bincount`` sums in float64, exact for merged edges (see above).
    """

    def __init__(self, row, col, weight, n_rows, n_cols):
        self.col = col
        self.weight = weight.astype(np.float64)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n_rows))])
        self.n_cols = n_cols

    def __call__(self, spikes):
        batch, rows = np.nonzero(spikes)
        if rows.size == 0:
            return None
        start = self.indptr[rows]
        lens = self.indptr[rows + 1] - start
        pos = _ranges(start, lens)
        flat = self.col[pos]
        b = spikes.shape[0]
        if b > 1:
            flat = flat + np.repeat(batch * self.n_cols, lens)
        return np.bincount(flat, weights=self.weight[pos],
                           minlength=b * self.n_cols).reshape(b, self.n_cols)


# Above this density (edges per matrix cell) a dense product beats scatter-add.
DENSE_MIN_DENSITY = 0.1
DENSE_MAX_BYTES = 512 << 20


def make_propagator(row, col, weight, n_rows, n_cols, kind="auto"):
    """Pick the dense or the sparse propagator for this edge set.

    ``kind`` may force ``"dense"`` or ``"sparse"`` (tests use this to check
    both give identical results).
    """
    row, col, weight = merge_edges(row, col, weight, n_cols)
    if kind == "auto":
        cells = max(n_rows * n_cols, 1)
        small = cells * 4 <= DENSE_MAX_BYTES
        kind = "dense" if small and row.size / cells >= DENSE_MIN_DENSITY else "sparse"
    cls = {"dense": DensePropagator, "sparse": SparsePropagator}[kind]
    return cls(row, col, weight, n_rows, n_cols)
