"""The neuron datapath gateware against the emulator's neuron_step, exactly."""

import numpy as np
from amaranth.sim import Simulator

from neuromesh.emulator import NeuronParams, NeuronState, neuron_step
from neuromesh.rtl.neuron import NeuronDatapath

VMAX = 2**23 - 1


def random_vectors(n, seed):
    """Random updates over the full field ranges, with the extremes that hit
    wrap, clamp, rounding and refractory edges at the front."""
    rng = np.random.default_rng(seed)
    f = {
        "u": rng.integers(-2**23, 2**23, n), "v": rng.integers(-VMAX, VMAX + 1, n),
        "refractory": rng.integers(0, 256, n) * (rng.random(n) < 0.3),
        "q": rng.integers(-2**23, 2**23, n),
        "du": rng.integers(0, 4097, n), "dv": rng.integers(0, 4097, n),
        "vth_mant": rng.integers(0, 2**17, n), "refractory_delay": rng.integers(0, 256, n),
        "reset_subtract": rng.integers(0, 2, n),
        "reset_timing": rng.integers(0, 4, n) * (rng.random(n) < 0.6),
        "threshold_ge": (rng.random(n) < 0.3).astype(np.int64),
        "floor_mant": rng.integers(0, 512, n) * (rng.random(n) < 0.3),
        "bias_mant": rng.integers(-4096, 4096, n), "bias_exp": rng.integers(0, 8, n),
    }
    edges = {
        "u": [2**23 - 1, -2**23, -2**23, 2**23 - 1, -1, 1, -5, 5, 0, -4096, 4095, -4097],
        "q": [1, -1, -2**23, 2**23 - 1, 0, 0, 0, 0, 0, 0, 0, 0],
        "du": [0, 0, 0, 0, 2048, 2048, 2048, 2048, 4096, 1, 1, 1],
        "v": [VMAX, -VMAX, -VMAX, VMAX, -5, 5, -1, 1, 0, -2**23, 2**23 - 1, -3],
        "dv": [0, 0, 4096, 0, 2048, 2048, 2048, 1, 0, 0, 0, 4095],
        "refractory": [0, 0, 1, 0, 0, 255, 0, 0, 0, 0, 0, 0],
    }
    for k, vals in edges.items():
        f[k][:len(vals)] = vals
    f["vth_mant"][:4] = [2**17 - 1, 0, 2**17 - 1, 0]
    # v >= 0 with a zero threshold; the deepest floor; a pending delayed
    # reset (both modes, on the sum and on the stored v) and a re-test next to
    # the clamp.
    f["vth_mant"][12:14], f["threshold_ge"][12:14] = 0, 1
    f["floor_mant"][14] = 511
    f["v"][15:21], f["vth_mant"][15:21] = VMAX, 2**17 - 1
    f["reset_subtract"][15:21], f["refractory"][15:21] = [0, 1, 0, 1, 0, 1], 0
    f["reset_timing"][15:21] = [1, 1, 2, 2, 3, 3]
    return f


def reference(f):
    p = NeuronParams(u_factor=4096 - f["du"], v_factor=4096 - f["dv"],
                     bias=f["bias_mant"] << f["bias_exp"], vth=f["vth_mant"] << 6,
                     refractory=f["refractory_delay"], subtract=f["reset_subtract"].astype(bool),
                     fire_above=(f["vth_mant"] << 6) - f["threshold_ge"],
                     floor=np.where(f["floor_mant"] != 0, -(f["floor_mant"] << 14), -VMAX),
                     delayed=np.isin(f["reset_timing"], (1, 2)), stored=f["reset_timing"] == 2,
                     retest=f["reset_timing"] == 3)
    s = NeuronState(f["u"].copy(), f["v"].copy(), f["refractory"].copy())
    spikes = neuron_step(s, f["q"], p)
    return s.u, s.v, s.refractory, spikes


def test_datapath_matches_emulator_on_random_vectors():
    n = 10_000
    f = random_vectors(n, seed=11)
    eu, ev, eref, espk = reference(f)
    dut = NeuronDatapath(tag_width=16)
    got = {"u": [], "v": [], "refractory": [], "spike": [], "tag": []}

    async def testbench(ctx):
        for k in range(n + dut.LATENCY):
            if k < n:
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.tag_in, k)
                for name in f:
                    ctx.set(getattr(dut.i, name), int(f[name][k]))
            else:
                ctx.set(dut.i_valid, 0)
            await ctx.tick()
            if ctx.get(dut.o_valid):
                got["tag"].append(ctx.get(dut.tag_out))
                for name in ("u", "v", "refractory", "spike"):
                    got[name].append(ctx.get(getattr(dut.o, name)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got["tag"] == list(range(n))
    np.testing.assert_array_equal(got["u"], eu)
    np.testing.assert_array_equal(got["v"], ev)
    np.testing.assert_array_equal(got["refractory"], eref)
    np.testing.assert_array_equal(np.array(got["spike"], bool), espk)
    # The vectors really exercise every branch.
    assert 500 < espk.sum() < n - 500
    assert (ev == VMAX).any() or (np.abs(ev) == VMAX).any()
