"""Plastic projections through the compiler: rules and traces reach the
right cores and groups, learned weights map back to their synapses, the
reward reaches only its population, and bad settings are refused."""

import numpy as np
import pytest

from neuromesh.chip import Geometry
from neuromesh.compiler import Network, NetworkError, compile_network
from neuromesh.compiler.network import Plasticity
from neuromesh.compiler.quantize import quantize_weights
from neuromesh.emulator import Emulator
from neuromesh.learning import RuleError

G = Geometry(rows=2, cols=2, n_neurons=8, n_axons=16, n_synapses=256, n_fanout=32)
STDP = "dw = 2^-2*x1*y0 - 2^-2*y1*x0"


def mantissas(compiled, state, name, dst):
    """Learned weights back in mantissa units (exact integers)."""
    w = compiled.weights(state, name) * compiled.scales[dst] / 2 ** compiled.w_shifts[name]
    return np.rint(w).astype(np.int64)


def test_learned_weights_map_back_to_their_synapses_across_cores():
    rng = np.random.default_rng(0)
    net = Network()
    net.input("x", 6)
    net.population("h", 20, kind="lif", tau_mem=10, threshold=1.0)     # 3 cores of 8
    pre, post = np.nonzero(rng.random((6, 20)) < 0.5)
    w = rng.uniform(0.05, 0.5, pre.size)
    w[:3] = [0.99, 0.0, 0.97]            # near the top, and a zero that may grow
    net.connect("x", "h", (pre, post, w), name="xh",
                plastic=Plasticity("dw = u0", w_max=1.0, t_epoch=1))
    c = compile_network(net, G)
    assert c.image.learning and len(c.cores("h")) == 3
    q = quantize_weights(w, c.scales["h"], w_max=1.0)
    assert c.w_shifts["xh"] == q.w_shift and q.w_mant[0] > 120
    emu = Emulator(c.image, batch=2)
    # before any epoch: exactly the quantized initial weights, zero included
    np.testing.assert_array_equal(mantissas(c, emu.read_state(), "xh", "h"),
                                  np.tile(q.w_mant, (2, 1)))
    emu.run(steps=5)
    # "dw = u0": +1 per epoch on every synapse, clamped to the 8-bit range
    np.testing.assert_array_equal(mantissas(c, emu.read_state(), "xh", "h"),
                                  np.tile(np.minimum(q.w_mant + 5, 127), (2, 1)))


@pytest.mark.parametrize("order,sign,change", [("pre-post", 1, 9), ("post-pre", -1, -10)])
def test_stdp_through_the_compiler_follows_spike_order(order, sign, change):
    net = Network()
    net.input("pre", 1)
    net.input("drive", 1)
    net.population("h", 1, kind="lif", tau_mem=2, threshold=1.0)
    net.connect("pre", "h", ([0], [0], [0.2]), name="w",
                plastic=Plasticity(STDP, w_max=1.0, x1=(64, 4.0), y1=(64, 4.0)))
    net.connect("drive", "h", np.array([[5.0]]))          # makes h fire when driven
    x = np.zeros((8, 2), bool)
    x[0 if order == "pre-post" else 2, 0] = True
    x[2 if order == "pre-post" else 0, 1] = True
    c = compile_network(net, Geometry(rows=1, cols=2, n_neurons=8, n_axons=16))
    emu = Emulator(c.image)
    before = mantissas(c, emu.read_state(), "w", "h")
    r = emu.run(c.chip_inputs({"pre": x[:, :1], "drive": x[:, 1:]}), probe=c.neurons("h"),
                record=("spikes",))
    assert np.flatnonzero(r.probes["spikes"][:, 0, 0]).tolist() == [2 if sign > 0 else 0]
    # The earlier spike's trace has decayed twice by tau = 4 steps (decay
    # round(4096 (1 - e^-1/4)) = 906): 64 -> 49 -> 38; 2^-2 * 38 = 9.5 floors
    # to 9 for potentiation and to -10 for depression.
    assert (mantissas(c, emu.read_state(), "w", "h") - before).tolist() == [[change]]


def test_reward_reaches_only_its_population():
    net = Network()
    net.input("x", 2)
    for pop in ("h", "k"):
        net.population(pop, 3, kind="lif", tau_mem=2, threshold=1.0)
        net.connect("x", pop, np.full((2, 3), 0.25), name=f"x{pop}",
                    plastic=Plasticity("dw = u0*r", w_max=1.0))
    c = compile_network(net, Geometry(rows=1, cols=2, n_neurons=8, n_axons=16))
    emu = Emulator(c.image, batch=2)
    start = {p: mantissas(c, emu.read_state(), f"x{p}", p) for p in ("h", "k")}
    c.set_reward(emu, "h", [5, -3])
    emu.run(steps=2)
    st = emu.read_state()
    np.testing.assert_array_equal(mantissas(c, st, "xh", "h") - start["h"],
                                  [[10] * 6, [-6] * 6])
    np.testing.assert_array_equal(mantissas(c, st, "xk", "k") - start["k"], 0)


def test_bad_plasticity_is_refused_before_compiling():
    net = Network()
    net.input("x", 2)
    net.population("h", 2)
    with pytest.raises(RuleError, match="\\^"):
        net.connect("x", "h", np.ones((2, 2)), name="a",
                    plastic=Plasticity("dw = 2^-2*x1*q0"))
    net.connect("x", "h", np.ones((2, 2)), name="a", plastic=Plasticity(STDP, t_epoch=2))
    with pytest.raises(NetworkError, match="'b'.*differ from plastic projection 'a' into the "
                                           "same population 'h'"):
        net.connect("x", "h", np.ones((2, 2)), name="b", plastic=Plasticity(STDP, t_epoch=3))
    with pytest.raises(NetworkError, match="unique name"):
        net.connect("x", "h", np.ones((2, 2)), name="a", plastic=Plasticity(STDP, t_epoch=2))
    with pytest.raises(NetworkError, match="x1 tau = 0 must be > 0"):
        Plasticity(STDP, x1=(10, 0)).engine()
