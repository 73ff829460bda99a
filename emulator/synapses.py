"""Connectivity of a chip flattened to (source, target, delay, weight) edges,
and the two ways the emulator propagates spikes along them.

The chip routes a spike through two tables: the source neuron's fan-out
entries name (core, axon) pairs, and each axon names a run of synapses. Both
hops are pure table look-ups, so the emulator resolves them once, at load
time, into one edge list. Modular addition makes the order of contributions
irrelevant, so per step the emulator may sum them any way it likes -- as a
(float, provably exact) matrix product for dense layers or an event-driven
integer scatter-add for sparse ones (docs/architecture.md §10.5).

Every propagator adds straight into the emulator's accumulator ring, an
int32 array ``[delay_slots, batch, neurons]`` whose values are the chip's
accumulators modulo ``2**32`` (only the low 24 bits matter, §3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from neuromesh.chip import Region

from .neuron import wrap24

__all__ = ["Edges", "expand", "count_edges", "DensePropagator", "SparsePropagator",
           "make_propagator", "ranges", "as_slice"]


@dataclass
class Edges:
    """Every synaptic edge of a chip, with global indices.

    A source is a neuron (``0 <= src < n_neurons_total``, index
    ``core * n_neurons + neuron``) or a host input channel
    (``src = n_neurons_total + channel``). ``weight`` is the contribution
    ``w_mant << w_shift`` (int32), ``delay`` its delay (uint8); ``src`` and
    ``tgt`` are int32. Edges of neuron sources come in ascending ``src``
    order, host input edges after them in port-map order.
    ``out_neuron``/``out_channel`` list the host-bound fan-out entries.
    ``synapse`` is the synapse entry behind each edge (``core * n_synapses +
    index``) and ``axon`` the input axon it was reached through (``core *
    n_axons + axon``); the learning engine uses both, and they are only
    computed when asked for (:func:`expand` ``with_synapses``).
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
        def sel(a):
            return None if a is None else a[keep]
        return Edges(self.src[keep], self.tgt[keep], self.delay[keep], self.weight[keep],
                     self.out_neuron, self.out_channel, sel(self.synapse), sel(self.axon))


def ranges(base, length, dtype=np.int64):
    """Concatenate ``arange(b, b + l)`` for every pair, without a Python loop."""
    length = np.asarray(length, dtype=np.int64)
    total = int(length.sum())
    start = np.cumsum(length) - length
    out = np.repeat((np.asarray(base, dtype=np.int64) - start).astype(dtype), length)
    out += np.arange(total, dtype=dtype)
    return out


_ranges = ranges   # the learning engine and older callers


def expand(config, *, with_synapses: bool = False, release: bool = False) -> Edges:
    """Resolve fan-out and axon tables of a decoded chip into an edge list.

    Works with compact per-edge arrays (int32 indices and weights, uint8
    delays) so that a chip of 10^8 synapses expands in a few GB.
    ``release``: drop each of the FANOUT, AXON and SYNAPSE fields from
    ``config`` as soon as it has been read (the emulator's own decode).
    """
    g = config.geometry

    def done(region):
        if release:
            config.regions[region] = None
    neur = config[Region.NEURON]
    fan = config[Region.FANOUT]
    axon = config[Region.AXON]
    syn = config[Region.SYNAPSE]
    shift = config[Region.GROUP]["w_shift"]

    # Hop 1: neuron -> fan-out entries (neurons in ascending global index).
    flen = neur["fanout_len"]
    core, neuron = np.nonzero(flen > 0)
    lens = flen[core, neuron].astype(np.int64)
    entry = core.astype(np.int64) * g.n_fanout
    entry = ranges(entry + neur["fanout_base"][core, neuron], lens)
    esrc = np.repeat((core * g.n_neurons + neuron).astype(np.int32), lens)
    del core, neuron
    host = fan["to_host"].reshape(-1)[entry] == 1
    out_neuron = esrc[host].astype(np.int64)
    out_channel = fan["channel"].reshape(-1)[entry[host]].astype(np.int64)
    keep = ~host
    entry, esrc = entry[keep], esrc[keep]
    del keep, host
    dest = (fan["y"].reshape(-1)[entry].astype(np.int32) * g.cols
            + fan["x"].reshape(-1)[entry])
    dest_axon = fan["axon"].reshape(-1)[entry].astype(np.int32)
    del entry, fan
    done(Region.FANOUT)

    # Host input channels join as extra sources.
    n_total = g.n_cores * g.n_neurons
    ports = np.array([(p.channel, p.core, p.axon) for p in config.image.inputs],
                     dtype=np.int64).reshape(-1, 3)
    src = np.concatenate([esrc, (n_total + ports[:, 0]).astype(np.int32)])
    dest = np.concatenate([dest, ((ports[:, 1] >> 4) * g.cols + (ports[:, 1] & 0xF))
                           .astype(np.int32)])
    dest_axon = np.concatenate([dest_axon, ports[:, 2].astype(np.int32)])
    del esrc

    # Hop 2: (core, axon) -> synapse run.
    flat_axon = dest.astype(np.int64) * g.n_axons + dest_axon
    del dest_axon
    slen = axon["syn_len"].reshape(-1)[flat_axon].astype(np.int64)
    sbase = axon["syn_base"].reshape(-1)[flat_axon] + dest.astype(np.int64) * g.n_synapses
    # (every synapse slot of a chip, at most 256 * 2**19, has an int32 index)
    synapse = ranges(sbase, slen, np.int32)
    del sbase, axon
    done(Region.AXON)
    src = np.repeat(src, slen)
    score = np.repeat(dest.astype(np.int32), slen)
    del dest
    axons = np.repeat(flat_axon, slen) if with_synapses else None
    del flat_axon, slen
    group = syn["group"].reshape(-1)[synapse]
    w_shift = shift.astype(np.int8).reshape(-1)[score * np.int32(g.n_groups) + group]
    del group
    weight = syn["w_mant"].reshape(-1)[synapse].astype(np.int32)
    weight <<= w_shift.astype(np.int32)
    del w_shift
    tgt = score * np.int32(g.n_neurons)
    del score
    tgt += syn["target"].reshape(-1)[synapse].astype(np.int32)
    delay = syn["delay"].reshape(-1)[synapse].astype(np.uint8)
    del syn
    done(Region.SYNAPSE)
    return Edges(src=src, tgt=tgt, delay=delay, weight=weight,
                 out_neuron=out_neuron, out_channel=out_channel,
                 synapse=synapse if with_synapses else None, axon=axons)


#: Fan-out entries :func:`count_edges` works on at a time.
COUNT_BLOCK = 1 << 20


def count_edges(image, words) -> tuple[int, int]:
    """``(fan-out entries, synaptic edges)`` that :func:`expand` would list,
    counted without listing them, from the words
    :func:`neuromesh.config.check` returns (a few array passes over the
    writes, so fan-out lists that overlap cost nothing extra here)."""
    g = image.geometry
    neur, fan, axon = words[Region.NEURON], words[Region.FANOUT], words[Region.AXON]
    akey = axon.key(g.n_axons)
    alen = axon["syn_len"]

    def syn_len(core_index, ax):
        key = np.asarray(core_index, np.int64) * g.n_axons + ax
        if not akey.size:
            return np.zeros(key.shape, np.int64)
        i = np.minimum(np.searchsorted(akey, key), akey.size - 1)
        return np.where(akey[i] == key, alen[i], 0)

    # Synapses reached through each written fan-out entry (less those of an
    # entry never written: a zero word, core-bound to core (0, 0), axon 0),
    # summed a block of entries at a time: the int64 temporaries of a block
    # only, next to 10^7 entries at Loihi scale.
    unwritten = int(syn_len(0, 0))
    prefix = np.zeros(fan.core.size + 1, np.int64)
    block = COUNT_BLOCK
    for i in range(0, fan.core.size, block):
        part = slice(i, i + block)
        reach = np.where(fan["to_host"][part] == 1, 0,
                         syn_len(fan["y"][part].astype(np.int64) * g.cols + fan["x"][part],
                                 fan["axon"][part])).astype(np.int64)
        reach -= unwritten
        np.cumsum(reach, out=prefix[i + 1:i + 1 + reach.size])
        prefix[i + 1:i + 1 + reach.size] += prefix[i]
        del reach
    fkey = fan.key(g.n_fanout)
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
# accumulator wraps), so a dense matrix holds parallel edges merged and
# wrapped to 24 bits: then every cell is below 2**23 and a column of fewer
# than 2**29 cells sums below 2**52 -- float64 is always exact, float32 when
# the largest column sum of |W| says so.
_F32_EXACT = 1 << 24
#: Products below this convert to int32 directly; larger ones go through int64.
_I32_EXACT = 1 << 31
#: A dense block at batch > 1 multiplies a CSR matrix of its spikes when fewer
#: than one in this many spike cells is set. (One thread, B1's 64 x 784 @
#: 784 x 512 float32: the CSR product, SSE2 code, breaks even with
#: OpenBLAS's AVX-512 product at 8-15 % density, depending on the machine's
#: load, and takes 0.4-0.7x its time at 5 %; docs/performance.md.)
SPARSE_INPUT_RATIO = 12
#: ... and when the dense product has at least this many terms (B x rows x
#: delays x cols): below, its ~60 µs of fixed cost are not worth it.
SPARSE_INPUT_MIN_PRODUCT = 1 << 21


def _add_columns(target, cols, values):
    """``target[:, cols] += values`` (cols: a slice or distinct indices), int32."""
    if isinstance(cols, slice):
        view = target[:, cols]
        view += values
    else:
        target[:, cols] += values


def _set_columns(target, cols, values):
    """``target[:, cols] = values`` (cols: a slice or distinct indices), cast to
    int32 (``values``: integers of int32 range)."""
    if isinstance(cols, slice):
        np.copyto(target[:, cols], values, casting="unsafe")
    else:
        target[:, cols] = values


class DensePropagator:
    """Sum contributions as ``spikes @ W`` with an exact float matrix.

    ``W`` is ``[rows, delays * cols]``, one column block per delay the block
    uses; float32 when the largest column sum of ``|W|`` proves every partial
    sum exact, float64 otherwise. When few rows spike, only those rows are
    multiplied: at batch 1 as a sum of the spiking rows; at a larger batch,
    when fewer than one in ``SPARSE_INPUT_RATIO`` of the ``[B, rows]`` spike
    cells is set, as a CSR matrix of the spikes times ``W`` (scipy, the
    same dtype: every sum is one of a subset of a column's entries, exact
    under the same bound).
    """

    def __init__(self, row, col, delay_index, weight, n_rows, n_cols, delays, cols):
        n_delays = len(delays)
        w = np.zeros((n_rows, n_delays * n_cols), dtype=np.int64)
        np.add.at(w, (row, delay_index.astype(np.int64) * n_cols + col), weight)
        w = wrap24(w)
        colsum = np.abs(w).sum(axis=0).max(initial=0)
        self.dtype = np.float32 if colsum < _F32_EXACT else np.float64
        self._via64 = colsum >= _I32_EXACT
        self.w = w.astype(self.dtype)
        self.n_rows, self.n_cols = n_rows, n_cols
        self.delays = [int(d) for d in delays]
        self.cols = cols
        self._buffers = {}

    @property
    def nbytes(self) -> int:
        return self.w.nbytes

    def _buffer(self, name, shape):
        """A scratch array of ``shape`` in the matrix's dtype, kept across steps."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, self.dtype)
        return buf

    def product(self, spikes):
        """``spikes``: bool ``[B, rows]``. Returns ``[B, delays * cols]`` float, or
        None (a full product lands in a scratch array the next call reuses)."""
        b = spikes.shape[0]
        if b == 1:
            # (the ufuncs and methods themselves, not np.flatnonzero's and
            # ndarray.sum's Python wrappers: a few µs of a ~90 µs step)
            active = spikes[0].nonzero()[0]
            if active.size == 0:
                return None
            if active.size * 2 < self.n_rows:
                return np.add.reduce(self.w[active], axis=0, keepdims=True)
            return spikes.astype(self.dtype) @ self.w
        else:
            n = np.count_nonzero(spikes)
            if n == 0:
                return None
            if n * SPARSE_INPUT_RATIO < self.n_rows * b and \
                    b * self.w.size >= SPARSE_INPUT_MIN_PRODUCT:
                return self.sparse_product(spikes)
            # Fewer than half the rows can spike only with fewer than
            # b * rows / 2 spikes: above that, the rows need not be looked at.
            if n * 2 < self.n_rows * b:
                active = np.flatnonzero(spikes.any(axis=0))
                if active.size * 2 < self.n_rows:
                    return spikes[:, active].astype(self.dtype) @ self.w[active]
        a = self._buffer("spikes", spikes.shape)
        np.copyto(a, spikes)
        return np.matmul(a, self.w, out=self._buffer("product", (b, self.w.shape[1])))

    def sparse_product(self, spikes):
        """``spikes @ W`` as the product of a CSR matrix of the spikes (bool
        ``[B, rows]``) with ``W``: time in proportion to the spikes, not to
        ``B * rows``. Returns ``[B, delays * cols]`` in the matrix's dtype,
        identical to the dense product (every sum is exact, see the class)."""
        b, rows = spikes.shape
        flat = np.flatnonzero(spikes)
        itype = np.int32 if b * rows < _I32_EXACT else np.int64
        # flat is ascending (C order): each batch row's spikes are a run of it.
        indptr = np.searchsorted(flat, np.arange(b + 1, dtype=np.int64) * rows).astype(itype)
        indices = (flat % rows).astype(itype)
        ones = self._buffers.get("ones")
        if ones is None or ones.size < flat.size:
            ones = self._buffers["ones"] = np.ones(b * rows, self.dtype)
        m = scipy.sparse.csr_array((ones[:flat.size], indices, indptr), shape=(b, rows))
        return m @ self.w

    def add_into(self, spikes, ring, base, fresh=()):
        """Add the contributions of ``spikes`` into ``ring`` (int32 ``[D, B,
        neurons]``) at slot ``(base + delay) % D``. ``fresh``: slots whose
        columns of this block hold zero: the sums are written there (cast to
        int32 on the way), not added."""
        c = self.product(spikes)
        if c is None:
            return
        d_slots, n = ring.shape[0], self.n_cols
        if not fresh and len(self.delays) == 1:
            c = c.astype(np.int64).astype(np.int32) if self._via64 else c.astype(np.int32)
            _add_columns(ring[(base + self.delays[0]) % d_slots], self.cols, c)
            return
        if self._via64:
            c, fresh = c.astype(np.int64).astype(np.int32), ()
        for i, d in enumerate(self.delays):
            slot = (base + d) % d_slots
            part = c if len(self.delays) == 1 else c[:, i * n:(i + 1) * n]
            if slot in fresh:
                # (every sum is an integer below 2**31 in magnitude: exact in int32)
                _set_columns(ring[slot], self.cols, part)
            else:
                _add_columns(ring[slot], self.cols,
                             part if part.dtype == np.int32 else part.astype(np.int32))


class SparsePropagator:
    """Event-driven: gather the out-edges of spiking rows, scatter-add them.

    Costs time in proportion to the synaptic events, not the matrix size, and
    at scale the time goes into reading the tables: so they are as small as
    exactness allows. One CSR table per delay the block uses. A table of more
    than ``WIDE_TABLE_MAX`` synapses keeps ring columns in int32 and weights
    as ``weight >> shift`` in int8 or int16 where every weight of the table
    shares ``shift`` trailing zero bits (one synapse group per projection
    makes that the rule: 5 bytes per synapse), else int32; a smaller one
    keeps intp columns and int32 weights (12 bytes, two passes fewer).
    ``np.add.at`` adds them into the integer ring, exact modulo ``2**32``.

    A table whose rows have similar fan-outs (any size) instead gets a
    padded ("ELL") table of each row's first ``width`` edges: ring columns
    in int32 and weights in ``[rows, width]`` arrays, a row's unused cells
    of weight zero (adding zero changes no sum); its CSR table then holds
    only the edges past ``width`` (few, by the choice of ``width``:
    :func:`ell_width`). Up to ``WIDE_TABLE_MAX`` synapses the weights are
    int32 (8 bytes a cell, nothing to widen per step); above, compact as a
    big CSR table's (``weight >> shift``: 5 bytes a cell, so the ELL table
    and its tails take about what the compact CSR table would). Spiking
    rows are gathered whole into scratch arrays kept across steps -- row
    copies, not the CSR walk's per-event index arithmetic and its
    temporaries -- and scatter-added from there.
    """

    def __init__(self, row, col, delay_index, weight, n_rows, delays):
        self.tables = []
        self.ell = []
        for i, d in enumerate(delays):
            sel = (delay_index == i) if len(delays) > 1 else slice(None)
            r = row[sel]
            order = None
            if r.size > 1 and (r[1:] < r[:-1]).any():
                order = np.argsort(r, kind="stable")
            counts = np.bincount(r, minlength=n_rows)
            del r
            indptr = np.zeros(n_rows + 1, np.int64)
            np.cumsum(counts, out=indptr[1:])
            c, w = col[sel], weight[sel]
            if order is not None:
                c, w = c[order], w[order]
            del order
            width, ell = ell_width(counts), None
            small = indptr[-1] <= WIDE_TABLE_MAX
            if small and not width:
                # Small tables: ready-to-use index and weight types (12 bytes
                # per synapse) save two conversion passes per step.
                shift, w, c = 0, np.ascontiguousarray(w, np.int32), c.astype(np.intp)
            else:
                # A small table's ELL weights stay int32 (no widening and
                # shifting per step: 8 bytes a cell); a big one's are compact
                # (5 bytes a cell: at 25k-100k neurons the narrower table
                # reads faster, and memory is near its limits there). They
                # are compressed before the ELL copy is made, so the build's
                # weight temporaries are the narrow ones.
                shift, w = (0, np.ascontiguousarray(w, np.int32)) if small \
                    else _compress_weights(w)
                if width:
                    ell, indptr, c, w = _ell_table(indptr, counts, c, w, width)
                c = np.ascontiguousarray(c, np.int32)
            self.tables.append((int(d), indptr, c, w, shift))
            self.ell.append(ell)
        self.n_rows = n_rows
        self._scratch = {}

    @property
    def nbytes(self) -> int:
        return (sum(p.nbytes + c.nbytes + w.nbytes for _, p, c, w, _ in self.tables)
                + sum(c.nbytes + w.nbytes for _, c, w in filter(None, self.ell)))

    def csr_tables(self):
        """Every table as ``(delay, indptr, col, weight, shift)`` holding all
        of its edges (an ELL table's padding cells as edges of weight zero),
        for backends that walk CSR tables only (built anew on each call)."""
        out = []
        for (d, indptr, col, w, shift), ell in zip(self.tables, self.ell):
            if ell is None:
                out.append((d, indptr, col, w, shift))
                continue
            width, ell_col, ell_weight = ell
            tail = np.diff(indptr)
            full = np.zeros(indptr.size, np.int64)
            np.cumsum(tail + width, out=full[1:])
            # a row's ELL cells first, then its tail (positions by ranges)
            head = ranges(full[:-1], np.full(tail.size, width))
            rest = ranges(full[:-1] + width, tail)
            fc = np.empty(int(full[-1]), np.int32)
            fw = np.empty(int(full[-1]), w.dtype)
            fc[head], fw[head] = ell_col.reshape(-1), ell_weight.reshape(-1)
            fc[rest], fw[rest] = col, w
            out.append((d, full, fc, fw, shift))
        return out

    def _buffer(self, name, shape, dtype):
        """A scratch array of ``shape`` kept across steps (grown when needed):
        per-step temporaries cost page faults once they pass the allocator's
        mmap threshold (a fixed 128 KiB in the benchmark's sweep)."""
        key = (name, np.dtype(dtype))
        buf = self._scratch.get(key)
        size = int(np.prod(shape))
        if buf is None or buf.size < size:
            buf = self._scratch[key] = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def add_into(self, spikes, ring, base, fresh=()):
        """Add the contributions of ``spikes`` (bool ``[B, rows]``) into
        ``ring`` (int32 ``[D, B, neurons]``) at slot ``(base + delay) % D``
        (``fresh`` as :meth:`DensePropagator.add_into`'s; a scatter-add
        always adds)."""
        batch = spikes.shape[0]
        if batch == 1:
            rows = np.flatnonzero(spikes[0])
            brow = None
        else:
            brow, rows = np.nonzero(spikes)
        if rows.size == 0:
            return
        d_slots, _, n = ring.shape
        for (d, indptr, col, weight, shift), ell in zip(self.tables, self.ell):
            target = ring[(base + d) % d_slots].reshape(-1)
            if ell is not None:
                self._add_ell(target, rows, brow, n, ell, shift)
            # (with an ELL table: its tail, the edges past the padded width)
            start = indptr[rows]
            lens = indptr[rows + 1] - start
            if ell is not None:
                over = np.flatnonzero(lens)
                if over.size == 0:
                    continue
                start, lens = start[over], lens[over]
                row_of = None if brow is None else brow[over]
            else:
                row_of = brow
            _add_csr(target, start, lens, row_of, n, col, weight, shift)

    def _add_ell(self, target, rows, brow, n, ell, shift):
        """Scatter-add the padded rows ``rows`` of an ELL table into the flat
        ring slot ``target``, ``EVENT_BLOCK`` cells at a time: gathered into
        scratch arrays (int32 columns, and weights widened to int32 and
        shifted), then ``np.add.at``."""
        width, ell_col, ell_weight = ell
        step = max(1, EVENT_BLOCK // width)
        m = min(step, rows.size)
        cbuf = self._buffer("col", (m, width), np.int32)
        wbuf = self._buffer("weight", (m, width), np.int32)
        narrow = ell_weight.dtype != np.int32
        if narrow:
            nbuf = self._buffer("narrow", (m, width), ell_weight.dtype)
        if brow is not None:
            ibuf = self._buffer("index", (m, width), np.intp)
        for a in range(0, rows.size, step):
            r = rows[a:a + step]
            k = r.size
            # (the method, not np.take's Python wrapper: ~3 % of a 100k step)
            idx = ell_col.take(r, axis=0, out=cbuf[:k])
            if narrow:
                w = wbuf[:k]
                np.copyto(w, ell_weight.take(r, axis=0, out=nbuf[:k]))
            else:
                w = ell_weight.take(r, axis=0, out=wbuf[:k])
            if shift:
                w <<= shift
            if brow is not None:
                # (batch row b's ring columns start at b * n in the flat slot)
                np.copyto(ibuf[:k], idx)
                idx = ibuf[:k]
                idx += (brow[a:a + step] * n)[:, None]
            np.add.at(target, idx.reshape(-1), w.reshape(-1))


def _add_csr(target, start, lens, brow, n, col, weight, shift):
    """Scatter-add the CSR runs ``[start, start + lens)`` of ``col``/``weight``
    into the flat ring slot ``target`` (batch row ``brow * n`` offsets)."""
    # A block of spiking rows at a time: the per-event temporaries
    # (positions, columns, weights: ~30 bytes per event) stay in the
    # cache, so the cost per event does not grow with the activity.
    ends = np.cumsum(lens)
    cuts = np.searchsorted(ends, np.arange(EVENT_BLOCK, int(ends[-1]), EVENT_BLOCK),
                           side="right") if ends[-1] > EVENT_BLOCK else ()
    for a, b in zip((0, *cuts), (*cuts, lens.size)):
        if a == b:
            continue
        pos = ranges(start[a:b], lens[a:b])
        if pos.size == 0:
            continue
        idx = col[pos]
        if idx.dtype != np.intp:
            idx = idx.astype(np.intp)
        if brow is not None:
            idx += np.repeat(brow[a:b] * n, lens[a:b])
        w = weight[pos]
        if shift or w.dtype != np.int32:
            w = w.astype(np.int32)
            w <<= shift
        np.add.at(target, idx, w)


#: Relative cost of an event of the CSR walk to a cell of an ELL table (one
#: thread, B2's table: ~10 ns against ~4 ns; docs/performance.md).
CSR_EVENT_COST = 2.5
#: An ELL table holds at most this many cells per synapse of its table.
ELL_MAX_CELLS = 2.0


def ell_width(counts) -> int:
    """The padded width of an ELL table for rows of fan-out ``counts`` (0: no
    ELL table): the width that minimizes ``rows * width + CSR_EVENT_COST *
    (the edges past it)`` -- every row as likely to spike --, if its table
    has at most ``ELL_MAX_CELLS`` cells per synapse and it saves a fifth
    of the CSR walk's cost."""
    counts = np.sort(np.asarray(counts, np.int64))
    total = int(counts.sum())
    if total == 0:
        return 0
    rows = counts.size
    # width = counts[i]: rows i.. hold counts[i] cells each, rows ..i-1 their
    # own; the edges past it are those of rows i.. beyond counts[i].
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    kept = below + counts * (rows - np.arange(rows))
    cost = rows * counts + CSR_EVENT_COST * (total - kept)
    cost[rows * counts > ELL_MAX_CELLS * total] = np.inf
    i = int(np.argmin(cost))
    if not cost[i] < 0.8 * CSR_EVENT_COST * total:
        return 0
    return int(counts[i])


def _ell_table(indptr, counts, col, weight, width):
    """Split a CSR table into its padded ELL part and its tail.

    Returns ``((width, columns, weights), tail_indptr, tail_col,
    tail_weight)``: the first ``width`` edges of every row in ``[rows,
    width]`` arrays (columns int32, weights in ``weight``'s dtype), a row's
    unused cells of weight zero, and the CSR table of the edges past
    ``width``. (The unused cells' columns run 0, 1, 2, ... so that the
    zeros of a row do not all add into one address, a chain of dependent
    read-modify-writes.)"""
    rows = counts.size
    n_cols = int(col.max()) + 1 if col.size else 1
    ell_col = np.empty((rows, width), np.int32)
    ell_col[:] = np.arange(width, dtype=np.int64) % n_cols
    ell_weight = np.zeros((rows, width), weight.dtype)
    flat_col, flat_weight = ell_col.reshape(-1), ell_weight.reshape(-1)
    tail_len = np.maximum(counts - width, 0)
    tail_indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(tail_len, out=tail_indptr[1:])
    tail_col = np.empty(int(tail_indptr[-1]), np.int32)
    tail_weight = np.empty(int(tail_indptr[-1]), weight.dtype)
    # A block of ~ELL_BUILD_BLOCK edges (whole rows) at a time: the per-edge
    # temporaries (~40 bytes an edge) stay small next to the tables.
    cuts = np.searchsorted(indptr, np.arange(ELL_BUILD_BLOCK, int(indptr[-1]), ELL_BUILD_BLOCK))
    for a, b in zip((0, *cuts), (*cuts, rows)):
        lo, hi = int(indptr[a]), int(indptr[b])
        if lo == hi:
            continue
        slot = np.arange(hi - lo) - np.repeat(indptr[a:b] - lo, counts[a:b])
        keep = slot < width
        cell = np.repeat(np.arange(a, b, dtype=np.int64) * width, counts[a:b])
        cell += slot
        del slot
        flat_col[cell[keep]] = col[lo:hi][keep]
        flat_weight[cell[keep]] = weight[lo:hi][keep]
        del cell
        # (the tail edges keep their order: rows ascending, each row's in turn)
        t0, t1 = int(tail_indptr[a]), int(tail_indptr[b])
        keep = ~keep
        tail_col[t0:t1] = col[lo:hi][keep]
        tail_weight[t0:t1] = weight[lo:hi][keep]
    return (width, ell_col, ell_weight), tail_indptr, tail_col, tail_weight


#: Edges an ELL table is filled with at a time.
ELL_BUILD_BLOCK = 1 << 20


#: Synaptic events per block of a sparse propagation (see add_into).
EVENT_BLOCK = 1 << 16

#: Tables up to this many synapses keep intp columns and int32 weights.
WIDE_TABLE_MAX = 1 << 22


def _compress_weights(weight):
    """``(shift, weight >> shift)`` in the narrowest of int8/int16/int32 that
    holds it exactly; ``shift``: the trailing zero bits all weights share."""
    weight = np.asarray(weight, np.int32)
    nonzero = weight[weight != 0]
    if nonzero.size == 0:
        return 0, weight.astype(np.int8)
    bits = int(np.bitwise_or.reduce(nonzero))
    shift = (bits & -bits).bit_length() - 1             # the lowest bit any weight sets
    scaled = weight >> shift
    lo, hi = int(scaled.min()), int(scaled.max())
    for dtype in (np.int8, np.int16):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return shift, scaled.astype(dtype)
    return shift, scaled


# Above this density (edges per matrix cell) a dense product beats scatter-add.
DENSE_MIN_DENSITY = 0.1
DENSE_MAX_BYTES = 512 << 20


def make_propagator(row, ring_col, delay, weight, n_rows, cols, kind="auto"):
    """Pick the dense or the sparse propagator for one block of edges.

    ``row``: block-local source rows; ``ring_col``: each edge's target column
    in the ring; ``cols``: the ring columns the block reaches (ascending
    distinct indices); ``delay``: each edge's delay. Only the delays the
    block's edges use get slots in its tables. ``kind`` may force
    ``"dense"`` or ``"sparse"`` (tests use this to check both give identical
    results).
    """
    used = np.flatnonzero(np.bincount(delay, minlength=1))
    delay_index = np.searchsorted(used, delay).astype(np.uint8) if used.size > 1 \
        else np.zeros(row.size, np.uint8)
    n_cols = cols.size
    if kind == "auto":
        cells = max(n_rows * n_cols * used.size, 1)
        small = cells * 4 <= DENSE_MAX_BYTES
        kind = "dense" if small and row.size / cells >= DENSE_MIN_DENSITY else "sparse"
    if kind == "dense":
        local = np.searchsorted(cols, ring_col)
        return DensePropagator(row, local, delay_index, weight, n_rows, n_cols, used,
                               as_slice(cols))
    return SparsePropagator(row, ring_col, delay_index, weight, n_rows, used)


def as_slice(index):
    """``index`` as a slice when it is an ascending run of consecutive integers
    (a view is cheaper than a gather), else ``index`` itself."""
    if index.size and index[-1] - index[0] + 1 == index.size and (np.diff(index) == 1).all():
        return slice(int(index[0]), int(index[-1]) + 1)
    return index
