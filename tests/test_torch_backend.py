"""The torch backend (``Emulator(image, backend="torch")``) against the numpy
emulator, exactly: random networks (the property tests' generator), the
benchmark-like dense and sparse layers with batches, every neuron-update
option, split runs and reset. Runs on CPU; skipped without torch (the
``[torch]`` extra)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator

torch = pytest.importorskip("torch")

from test_properties import (  # noqa: E402
    MESHES,
    RECORD,
    SETTINGS,
    assert_results_equal,
    assert_states_equal,
    build_image,
    nets,
    random_inputs,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: these are small tensors, and on a busy machine
    torch's thread pool only waits for cores (results do not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def both(image, batch, x=None, steps=None, probe=None, **kw):
    out = []
    for backend in ("numpy", "torch"):
        emu = Emulator(image, batch=batch, backend=backend, **kw)
        r = emu.run(x, steps, probe=probe, record=RECORD)
        out.append((emu, r))
    return out


@settings(max_examples=60, **SETTINGS)
@given(net=nets(min_inputs=1), mesh=st.sampled_from(MESHES), batch=st.integers(1, 3),
       steps=st.integers(1, 20), seed=st.integers(0, 2**32 - 1),
       propagation=st.sampled_from(["auto", "dense", "sparse"]))
def test_random_networks_match_numpy(net, mesh, batch, steps, seed, propagation):
    rng = np.random.default_rng(seed)
    layout = build_image(net, *mesh, rng=rng)
    x = random_inputs(rng, steps, batch, net.n_inputs)
    (ea, ra), (eb, rb) = both(layout.image, batch, x, probe=layout.probe,
                              propagation=propagation)
    assert_results_equal(ra, rb)
    assert_states_equal(ea.read_state(), eb.read_state())


def layered_chip(delay_slots=4):
    """Input -> 40 hidden (dense, two delays) -> 8 recurrent (sparse), every
    profile option in use, a preloaded accumulator and a refractory counter."""
    rng = np.random.default_rng(5)
    g = Geometry(rows=1, cols=2, n_neurons=48, n_axons=64, n_synapses=2048, n_fanout=256,
                 n_profiles=4, n_groups=2, delay_slots=delay_slots)
    b = ChipBuilder(g)
    c = b.core(0, 0)
    c.profile(0, du=410, dv=205, vth_mant=60, refractory=2, reset="subtract")
    c.profile(1, du=100, dv=3000, vth_mant=40, reset_delay=True, threshold_ge=True,
              v_floor=-(3 << 14))
    c.profile(2, du=0, dv=4096, vth_mant=0, threshold_ge=True)
    c.group(0, w_shift=6)
    c.group(1, w_shift=3)
    c.neurons(range(40), profile=rng.integers(0, 3, 40), bias_mant=rng.integers(-50, 50, 40),
              bias_exp=2)
    axon, tgt = np.meshgrid(np.arange(30), np.arange(40), indexing="ij")
    c.synapses(axon=axon.ravel(), target=tgt.ravel(), w_mant=rng.integers(-60, 100, 1200),
               delay=rng.integers(0, 2, 1200), group=rng.integers(0, 2, 1200))
    c.state(3, u=-5000, v=1 << 20, refractory=3)
    c.accum(1, 7, -(1 << 23))
    b.input(np.arange(30), 0, 0, np.arange(30))
    c.route(np.arange(40), 1, 0, np.arange(40))
    d = b.core(1, 0)
    d.profile(0, du=300, dv=300, vth_mant=30, reset="zero")
    d.group(0, w_shift=5)
    d.neurons(range(8), profile=0)
    src = rng.integers(0, 40, 120)
    d.synapses(axon=src, target=rng.integers(0, 8, 120), w_mant=rng.integers(-128, 128, 120),
               delay=rng.integers(0, delay_slots - 1, 120))
    d.synapses(axon=40 + rng.integers(0, 8, 20), target=rng.integers(0, 8, 20), w_mant=-90)
    d.route(np.arange(8), 1, 0, 40 + np.arange(8))
    d.to_host(np.arange(8), np.arange(8))
    return b.build()


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("propagation", ["auto", "dense", "sparse"])
def test_layers_with_every_option_match_numpy(batch, propagation):
    image = layered_chip()
    x = np.random.default_rng(2).random((60, batch, 30)) < 0.2
    probe = list(range(40)) + list(range(48, 56))
    (ea, ra), (eb, rb) = both(image, batch, x, probe=probe, propagation=propagation)
    assert ra.outputs.any() and ra.probes["refractory"].any()
    assert_results_equal(ra, rb)
    assert_states_equal(ea.read_state(), eb.read_state())


def test_split_runs_and_reset_match_numpy():
    image = layered_chip()
    x = np.random.default_rng(3).random((40, 2, 30)) < 0.3
    a = Emulator(image, batch=2)
    b = Emulator(image, batch=2, backend="torch", device="cpu")
    for part in (x[:13], x[13:14], x[14:]):
        assert_results_equal(a.run(part, probe=range(48), record=RECORD),
                             b.run(part, probe=range(48), record=RECORD))
        assert_states_equal(a.read_state(), b.read_state())
    a.reset()
    b.reset()
    assert_results_equal(a.run(x, probe=range(48), record=RECORD),
                         b.run(x, probe=range(48), record=RECORD))
    r = b.run(None, 5)
    assert r.outputs.shape == (5, 2, 8)


def test_bad_backend_arguments_are_refused():
    image = layered_chip()
    with pytest.raises(ValueError, match="backend must be 'numpy' or 'torch', got 'jax'"):
        Emulator(image, backend="jax")
    with pytest.raises(ValueError, match="device is a torch backend option"):
        Emulator(image, device="cpu")


@pytest.mark.parametrize("wide", [1 << 22, 0])
def test_ell_tables_match_numpy(monkeypatch, wide):
    """A recurrent net of similar fan-outs: the numpy loop propagates through
    ELL tables (int32 weights, and compact ones when ``WIDE_TABLE_MAX`` is
    0), the torch backend through their ``csr_tables``; the runs agree."""
    from neuromesh.emulator import synapses
    monkeypatch.setattr(synapses, "WIDE_TABLE_MAX", wide)
    rng = np.random.default_rng(11)
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
    (ea, ra), (eb, rb) = both(image, 2, None, 60, probe=range(200), propagation="sparse")
    assert any(e is not None for _, p in ea._blocks for e in p.ell)
    assert ra.outputs.any()
    assert_results_equal(ra, rb)
    assert_states_equal(ea.read_state(), eb.read_state())
