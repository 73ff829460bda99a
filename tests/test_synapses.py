"""The propagators' sums against exact int64 references, path by path.

A dense block may sum a step's contributions as a float BLAS product, as a
sum of its spiking rows, or as a CSR product of its spikes: each must give
the integer sums exactly, on both sides of the switch between them.
"""

import numpy as np
import pytest

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator, synapses, wrap24
from neuromesh.emulator.synapses import DensePropagator


def dense_block(rng, n_rows, n_cols, n_delays, w_max):
    """A dense propagator of random integer edges, one per cell and delay plus
    as many random parallel ones, and its int64 reference matrix ``[rows,
    delays * cols]``. Column 0 of delay 0 holds ``w_max`` in every row once."""
    grid = np.indices((n_rows, n_cols, n_delays)).reshape(3, -1)
    extra = rng.integers(0, [[n_rows], [n_cols], [n_delays]], (3, grid.shape[1]))
    row, col, delay = np.concatenate([grid, extra], axis=1)
    delay_index = delay.astype(np.uint8)
    weight = rng.integers(-w_max // 2, w_max // 2 + 1, row.size).astype(np.int32)
    weight[(col == 0) & (delay == 0)] = 0
    weight[:grid.shape[1]][(grid[1] == 0) & (grid[2] == 0)] = w_max
    ref = np.zeros((n_rows, n_delays * n_cols), np.int64)
    np.add.at(ref, (row, delay_index.astype(np.int64) * n_cols + col), weight)
    prop = DensePropagator(row, col, delay_index, weight, n_rows, n_cols,
                           np.arange(n_delays), slice(0, n_cols))
    return prop, wrap24(ref)


def exact(product):
    """A float product as int64, checking every value is an integer."""
    out = np.asarray(product).astype(np.int64)
    np.testing.assert_array_equal(out, product)
    return out


# float32 at its bound: the largest column sum of |W| just below 2**24, so a
# subset sum carries 24 significant bits (one rounding would show); float64
# where the column sums pass 2**24 (cells up to 2**23 after the s24 wrap).
CASES = [dict(n_rows=300, n_cols=40, n_delays=1, w_max=55_924, dtype=np.float32),
         dict(n_rows=200, n_cols=24, n_delays=3, w_max=(1 << 23) - 1, dtype=np.float64)]


@pytest.mark.parametrize("case", CASES, ids=["float32", "float64"])
@pytest.mark.parametrize("batch", [2, 7, 64])
def test_csr_product_of_the_spikes_is_exact(case, batch):
    """The CSR product of a spike matrix equals the integer product, at
    densities from one spike to all, for float32 at its bound and float64."""
    rng = np.random.default_rng(batch)
    prop, ref = dense_block(rng, case["n_rows"], case["n_cols"], case["n_delays"],
                            case["w_max"])
    assert prop.dtype == case["dtype"]
    if case["dtype"] == np.float32:
        # (the bound is used: float32 would round a sum one bit wider)
        assert np.abs(ref).sum(axis=0).max() == 300 * 55_924 == (1 << 24) - 16
    for density in (0.0, 0.001, 0.02, 0.09, 0.5, 1.0):
        spikes = rng.random((batch, prop.n_rows)) < density
        spikes[0, rng.integers(prop.n_rows)] = True       # at least one spike
        want = spikes.astype(np.int64) @ ref
        np.testing.assert_array_equal(exact(prop.sparse_product(spikes)), want)
        np.testing.assert_array_equal(exact(prop.product(spikes)), want)
        # a view of a wider array, as the emulator passes its rows
        wide = np.zeros((batch, prop.n_rows + 9), bool)
        wide[:, 5:5 + prop.n_rows] = spikes
        np.testing.assert_array_equal(exact(prop.sparse_product(wide[:, 5:-4])), want)


@pytest.mark.parametrize("batch", [2, 64])
def test_the_density_switch(monkeypatch, batch):
    """Below one spike in ``SPARSE_INPUT_RATIO`` cells a big enough block takes
    the CSR product, at it and above the BLAS product (or the subset of the
    active rows); all agree with the integer product on both sides."""
    rng = np.random.default_rng(3)
    prop, ref = dense_block(rng, 400, 64, 1, 3000)
    assert prop.dtype == np.float32
    monkeypatch.setattr(synapses, "SPARSE_INPUT_MIN_PRODUCT", 0)
    calls = []
    real = DensePropagator.sparse_product
    monkeypatch.setattr(DensePropagator, "sparse_product",
                        lambda self, s: calls.append(np.count_nonzero(s)) or real(self, s))
    cells = batch * prop.n_rows
    limit = -(-cells // synapses.SPARSE_INPUT_RATIO)     # the first count not below
    for n in (1, limit - 1, limit, limit + 1, cells // 2, cells):
        spikes = np.zeros(cells, bool)
        spikes[rng.choice(cells, n, replace=False)] = True
        spikes = spikes.reshape(batch, prop.n_rows)
        calls.clear()
        got = exact(prop.product(spikes))
        np.testing.assert_array_equal(got, spikes.astype(np.int64) @ ref)
        assert calls == ([n] if n * synapses.SPARSE_INPUT_RATIO < cells else []), n
    # a small product keeps the BLAS one
    monkeypatch.setattr(synapses, "SPARSE_INPUT_MIN_PRODUCT", batch * prop.w.size + 1)
    calls.clear()
    spikes = np.zeros((batch, prop.n_rows), bool)
    spikes[:, :3] = True
    np.testing.assert_array_equal(exact(prop.product(spikes)), spikes.astype(np.int64) @ ref)
    assert calls == []


def layered_image(rng, n_in=120, n_hidden=48, n_out=8):
    """A small B1: host input -> two hidden cores -> an output core, dense."""
    g = Geometry(rows=1, cols=3, n_neurons=32, n_axons=n_in, n_synapses=n_in * 32,
                 n_fanout=64, n_groups=2, delay_slots=4)
    b = ChipBuilder(g)
    for k in range(2):
        c = b.core(k, 0)
        c.profile(0, du=410, dv=205, vth_mant=40)
        c.group(0, w_shift=6)
        c.group(1, w_shift=3)
        n = n_hidden // 2
        c.neurons(range(n), profile=0)
        axon, tgt = np.meshgrid(np.arange(n_in), np.arange(n), indexing="ij")
        c.synapses(axon=axon.ravel(), target=tgt.ravel(),
                   w_mant=rng.integers(-40, 60, axon.size),
                   delay=rng.integers(0, 2, axon.size), group=rng.integers(0, 2, axon.size))
        c.route(np.arange(n), 2, 0, n * k + np.arange(n))
        b.input(np.arange(n_in), k, 0, np.arange(n_in))
    c = b.core(2, 0)
    c.profile(0, du=410, dv=205, vth_mant=20)
    c.group(0, w_shift=6)
    c.neurons(range(n_out), profile=0)
    axon, tgt = np.meshgrid(np.arange(n_hidden), np.arange(n_out), indexing="ij")
    c.synapses(axon=axon.ravel(), target=tgt.ravel(), w_mant=rng.integers(-60, 100, axon.size))
    c.to_host(np.arange(n_out), np.arange(n_out))
    return b.build()


@pytest.mark.parametrize("batch, small_state", [(4, 4096), (16, 0)])
def test_emulator_runs_agree_with_and_without_the_csr_product(monkeypatch, batch, small_state):
    """A layered net with two delays at 5 % input density: the dense blocks
    with the CSR product (forced on at every size), with BLAS only, and the
    scatter-add give identical runs -- with an int64 ring and with an int32
    one, where the products are also written into cleared slots."""
    from neuromesh.emulator import emulator
    monkeypatch.setattr(emulator, "SMALL_STATE", small_state)
    rng = np.random.default_rng(batch)
    image = layered_image(rng)
    x = rng.random((80, batch, 120)) < 0.05
    x[30:40] = rng.random((10, batch, 120)) < 0.5           # and a dense stretch
    calls = []
    real = DensePropagator.sparse_product
    monkeypatch.setattr(DensePropagator, "sparse_product",
                        lambda self, s: calls.append(1) or real(self, s))
    runs = []
    for kind, min_product in (("dense", 0), ("dense", 1 << 62), ("sparse", 0)):
        monkeypatch.setattr(synapses, "SPARSE_INPUT_MIN_PRODUCT", min_product)
        emu = Emulator(image, batch=batch, propagation=kind)
        calls.clear()
        runs.append((emu.run(x, probe=range(96), record=("spikes", "u", "v")),
                     emu.read_state()))
        assert emu._itype == (np.int32 if small_state == 0 else np.int64)
        if kind == "dense":
            assert all(isinstance(p, DensePropagator) for _, p in emu._blocks)
            assert bool(calls) == (min_product == 0)
    (r0, s0) = runs[0]
    assert r0.outputs.any() and r0.probes["spikes"].any()
    for r, s in runs[1:]:
        np.testing.assert_array_equal(r.outputs, r0.outputs)
        for f in ("spikes", "u", "v"):
            np.testing.assert_array_equal(r.probes[f], r0.probes[f])
        np.testing.assert_array_equal(s["accum"], s0["accum"])
        np.testing.assert_array_equal(r.synaptic_events, r0.synaptic_events)


# --- the sparse propagator's padded (ELL) tables -----------------------------------------

def test_ell_width():
    """Equal fan-outs pad to nothing; a few long rows leave their tails to the
    CSR walk; fan-outs too uneven for padding to pay get no ELL table."""
    assert synapses.ell_width(np.zeros(5, np.int64)) == 0
    assert synapses.ell_width(np.full(100, 37)) == 37
    rng = np.random.default_rng(0)
    counts = rng.binomial(10_000, 0.02, 10_000)
    width = synapses.ell_width(counts)
    assert np.median(counts) <= width < counts.max()
    skewed = np.concatenate([np.full(990, 50), np.full(10, 500)])
    assert synapses.ell_width(skewed) == 50
    # (... unless the long rows hold most edges: then padding saves too little)
    assert synapses.ell_width(np.concatenate([np.full(990, 10), np.full(10, 5000)])) == 0
    assert synapses.ell_width(np.concatenate([np.ones(100, np.int64), [10_000]])) == 0


def scatter_reference(row, col, delay_index, weight, spikes, d_slots, n, delays, base):
    """The sums by int64 ``np.add.at``, wrapped to int32 (the ring's modulus)."""
    ring = np.zeros((d_slots, spikes.shape[0], n), np.int64)
    for b in range(spikes.shape[0]):
        hit = spikes[b][row]
        slot = (base + np.asarray(delays)[delay_index[hit]]) % d_slots
        np.add.at(ring, (slot, b, col[hit]), weight[hit])
    return ring.astype(np.int32)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("block", [1 << 16, 50])
def test_ell_tables_give_the_scatter_adds_sums(monkeypatch, batch, block):
    """Rows of similar fan-out and a few long ones (whose tails take the CSR
    walk), two delays, weights to the int32 wrap: the ELL tables, the plain
    CSR tables and an int64 reference give the same ring."""
    monkeypatch.setattr(synapses, "EVENT_BLOCK", block)
    monkeypatch.setattr(synapses, "ELL_BUILD_BLOCK", block)      # (built in blocks too)
    rng = np.random.default_rng(batch + block)
    n_rows, n, d_slots = 300, 700, 4
    counts = rng.binomial(60, 0.5, n_rows)
    counts[rng.choice(n_rows, 6, replace=False)] = 400          # long rows
    row = np.repeat(np.arange(n_rows), counts)
    perm = rng.permutation(row.size)                              # unsorted edges
    row = row[perm]
    col = rng.integers(0, n, row.size).astype(np.int32)
    weight = rng.integers(-(1 << 30), 1 << 30, row.size).astype(np.int32)
    delays = [1, 3]
    delay_index = rng.integers(0, 2, row.size).astype(np.uint8)
    ell = synapses.SparsePropagator(row, col, delay_index, weight, n_rows, delays)
    # (each delay's table holds about half of a row's edges)
    assert all(e is not None and 10 <= e[0] < 200 for e in ell.ell)
    monkeypatch.setattr(synapses, "ell_width", lambda counts: 0)
    csr = synapses.SparsePropagator(row, col, delay_index, weight, n_rows, delays)
    assert csr.ell == [None, None]
    for density in (0.002, 0.05, 0.5, 1.0):
        spikes = rng.random((batch, n_rows)) < density
        spikes[:, np.flatnonzero(counts == 400)[:2]] = True       # with long rows spiking
        want = scatter_reference(row, col, delay_index, weight, spikes, d_slots, n, delays, 5)
        for prop in (ell, csr):
            ring = np.zeros((d_slots, batch, n), np.int32)
            prop.add_into(spikes, ring, 5)
            np.testing.assert_array_equal(ring, want)


@pytest.mark.parametrize("batch, small_state", [(1, 4096), (3, 0)])
def test_emulator_runs_agree_with_and_without_ell_tables(monkeypatch, batch, small_state):
    """A recurrent net driven by bias with rows of similar fan-out: ELL tables,
    plain CSR tables and the dense product give identical runs (int64 and
    int32 rings)."""
    from neuromesh.emulator import emulator
    monkeypatch.setattr(emulator, "SMALL_STATE", small_state)
    rng = np.random.default_rng(7 + batch)
    g = Geometry(rows=1, cols=2, n_neurons=100, n_axons=200, n_synapses=6000,
                 n_fanout=400, n_groups=1, delay_slots=4)
    b = ChipBuilder(g)
    for k in range(2):
        c = b.core(k, 0)
        c.profile(0, du=410, dv=205, vth_mant=100)
        c.group(0, w_shift=6)
        c.neurons(range(100), profile=0, bias_mant=rng.integers(20, 80, 100), bias_exp=3)
        src = np.repeat(np.arange(200), rng.binomial(50, 0.5, 200))
        c.synapses(axon=src, target=rng.integers(0, 100, src.size),
                   w_mant=rng.integers(-14, 10, src.size), delay=rng.integers(0, 3, src.size))
        c.route(np.arange(100), 0, 0, np.arange(100) + 100 * k)
        c.route(np.arange(100), 1, 0, np.arange(100) + 100 * k)
    b.core(0, 0).to_host(np.arange(100), np.arange(100))
    image = b.build()
    runs = []
    real = synapses.ell_width
    for kind, width in (("sparse", real), ("sparse", lambda counts: 0), ("dense", real)):
        monkeypatch.setattr(synapses, "ell_width", width)
        emu = Emulator(image, batch=batch, propagation=kind)
        if kind == "sparse":
            assert any(e is not None for _, p in emu._blocks for e in p.ell) == (width is real)
        runs.append((emu.run(None, 60, probe=range(200), record=("spikes", "u", "v")),
                     emu.read_state()))
    (r0, s0) = runs[0]
    assert r0.outputs.any()
    for r, s in runs[1:]:
        np.testing.assert_array_equal(r.outputs, r0.outputs)
        for f in ("spikes", "u", "v"):
            np.testing.assert_array_equal(r.probes[f], r0.probes[f])
        np.testing.assert_array_equal(s["accum"], s0["accum"])


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("block", [1 << 16, 50])
@pytest.mark.parametrize("kind", ["int8", "int16", "int8-top", "mixed"])
def test_compact_ell_tables_give_the_scatter_adds_sums(monkeypatch, batch, block, kind):
    """Compact ELL tables (int32 columns, weights ``>> shift`` in int8 or
    int16, a CSR table of the tails only) against the plain CSR walk, the
    compact CSR walk of a big table and an int64 reference: weights at the
    extremes of their narrow type (``int8-top``: shifted by 24, up to
    ``-2**31`` and ``127 << 24``, adding past the int32 wrap; ``mixed``: one
    table's weights int16, the other's int8), rows without
    edges, rows of exactly ``width``, long rows, two delays of different
    widths, several calls with more and fewer spikes (the scratch arrays
    reused), batch 1 and 4, event and build blocks small and large."""
    monkeypatch.setattr(synapses, "EVENT_BLOCK", block)
    monkeypatch.setattr(synapses, "ELL_BUILD_BLOCK", block)
    rng = np.random.default_rng(batch + block + len(kind))
    n_rows, n, d_slots = 400, 900, 3
    counts = rng.binomial(80, 0.5, n_rows)
    counts[rng.choice(n_rows, 8, replace=False)] = 0              # rows without edges
    counts[rng.choice(n_rows, 6, replace=False)] = 500            # long rows
    row = np.repeat(np.arange(n_rows), counts)
    row = row[rng.permutation(row.size)]
    col = rng.integers(0, n, row.size).astype(np.int32)
    lo, hi, shift = {"int8": (-128, 127, 3), "int16": (-(1 << 15), (1 << 15) - 1, 5),
                     "int8-top": (-128, 127, 24), "mixed": (-(1 << 15), (1 << 15) - 1, 2)}[kind]
    mant = rng.integers(lo, hi + 1, row.size)
    mant[:4] = [lo, hi, lo, hi]                                    # both extremes
    mant[rng.random(row.size) < 0.05] = 0                          # zero weights too
    weight = (mant << shift).astype(np.int64).astype(np.int32)
    delays = [0, 2]
    # delay 1: a third of the edges -- a narrower ELL table than delay 0's
    delay_index = (rng.random(row.size) < 1 / 3).astype(np.uint8)
    if kind != "mixed":
        dtypes = [np.dtype(kind.split("-")[0])] * 2
    else:
        mant[delay_index == 1] = np.clip(mant[delay_index == 1], -128, 127)
        mant[np.flatnonzero(delay_index == 1)[:2]] = [-128, 127]
        weight = (mant << shift).astype(np.int32)
        dtypes = [np.dtype(np.int16), np.dtype(np.int8)]
    ell32 = synapses.SparsePropagator(row, col, delay_index, weight, n_rows, delays)
    monkeypatch.setattr(synapses, "WIDE_TABLE_MAX", 0)           # (a big table's types)
    ell = synapses.SparsePropagator(row, col, delay_index, weight, n_rows, delays)
    widths = [e[0] for e in ell.ell]
    assert all(10 <= w < 200 for w in widths) and widths[0] != widths[1]
    assert widths == [e[0] for e in ell32.ell]
    for prop, types, want_shift in ((ell, dtypes, shift), (ell32, [np.int32] * 2, 0)):
        for (_, indptr, c, w, s), (_, ell_col, ell_weight), dtype in zip(prop.tables, prop.ell,
                                                                        types):
            assert s == want_shift and w.dtype == ell_weight.dtype == dtype
            assert ell_col.dtype == c.dtype == np.int32
            assert 0 < indptr[-1] < ell_col.size / 2               # the tails only
    assert ell.nbytes < 7 * row.size
    monkeypatch.setattr(synapses, "ell_width", lambda counts: 0)
    big = synapses.SparsePropagator(row, col, delay_index, weight, n_rows, delays)
    assert big.tables[0][2].dtype == np.int32 and big.ell == [None, None]
    monkeypatch.setattr(synapses, "WIDE_TABLE_MAX", 1 << 22)
    csr = synapses.SparsePropagator(row, col, delay_index, weight, n_rows, delays)
    assert csr.tables[0][2].dtype == np.intp and csr.ell == [None, None]
    props = {"ell": ell, "ell32": ell32, "csr": csr, "big": big}
    rings = {p: np.zeros((d_slots, batch, n), np.int32) for p in props}
    want = np.zeros((d_slots, batch, n), np.int32)
    for base, density in enumerate((1.0, 0.002, 0.05, 0.5, 0.01)):
        spikes = rng.random((batch, n_rows)) < density
        spikes[:, np.flatnonzero(counts == 500)[:2]] = True         # long rows spiking
        spikes[:, np.flatnonzero(counts == 0)[:2]] = True           # and empty ones
        # (the ring keeps its sums across calls, as the emulator's does)
        ref = scatter_reference(row, col, delay_index, weight, spikes, d_slots, n, delays,
                                base)
        want = (want.astype(np.int64) + ref).astype(np.int32)
        for name, prop in props.items():
            prop.add_into(spikes, rings[name], base)
            np.testing.assert_array_equal(rings[name], want)


def test_csr_tables_of_ell_tables_hold_every_edge(monkeypatch):
    """``csr_tables`` (the torch backend's tables) of a propagator with ELL
    tables sums as the int64 reference: every edge once, padding of weight
    zero."""
    rng = np.random.default_rng(3)
    n_rows, n = 200, 300
    counts = rng.binomial(40, 0.5, n_rows)
    counts[:3] = [0, 300, 1]
    row = np.repeat(np.arange(n_rows), counts)
    col = rng.integers(0, n, row.size).astype(np.int32)
    weight = (rng.integers(-128, 128, row.size) << 6).astype(np.int32)
    for wide in (1 << 22, 0):                        # int32 and compact ELL weights
        monkeypatch.setattr(synapses, "WIDE_TABLE_MAX", wide)
        check_csr_tables(rng, row, col, weight, n_rows, n, counts)


def check_csr_tables(rng, row, col, weight, n_rows, n, counts):
    prop = synapses.SparsePropagator(row, col, np.zeros(row.size, np.uint8), weight, n_rows, [1])
    assert prop.ell[0] is not None
    (d, indptr, c, w, shift), = prop.csr_tables()
    assert d == 1 and indptr.size == n_rows + 1
    spikes = rng.random((1, n_rows)) < 0.3
    spikes[0, :3] = True
    got = np.zeros(n, np.int64)
    for r in np.flatnonzero(spikes[0]):
        run = slice(indptr[r], indptr[r + 1])
        np.add.at(got, c[run], w[run].astype(np.int64) << shift)
    want = scatter_reference(row, col, np.zeros(row.size, np.uint8), weight, spikes, 2, n, [1], 0)
    np.testing.assert_array_equal(got.astype(np.int32), want[1, 0])
