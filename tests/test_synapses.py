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


@pytest.mark.parametrize("batch", [4, 16])
def test_emulator_runs_agree_with_and_without_the_csr_product(monkeypatch, batch):
    """A layered net with two delays at 5 % input density: the dense blocks
    with the CSR product (forced on at every size), with BLAS only, and the
    scatter-add give identical runs."""
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
