"""Arithmetic corners of the neuron update, with hand-computed values.

Each case runs a one-neuron chip image through the full emulator (image ->
decode -> run), so the word layouts and the timing are exercised too.
"""

import numpy as np
import pytest

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator, NeuronParams, NeuronState, decay, neuron_step, wrap24

GEOM = Geometry(n_neurons=8, n_axons=8, n_synapses=64, n_fanout=8, delay_slots=8)
VMAX = 2**23 - 1


def one_neuron(*, du=0, dv=0, vth_mant=2**17 - 1, refractory=0, reset="zero",
               bias_mant=0, bias_exp=0, u=0, v=0, ref=0, w_mant=0, w_shift=0, **profile):
    """Neuron 0 of a 1x1 chip; host input channel 0 adds ``w_mant << w_shift``;
    ``profile``: the optional profile fields (``reset_delay``, ...)."""
    b = ChipBuilder(GEOM)
    c = b.core(0, 0)
    c.profile(0, du=du, dv=dv, vth_mant=vth_mant, refractory=refractory, reset=reset,
              **profile)
    c.neurons(0, profile=0, bias_mant=bias_mant, bias_exp=bias_exp)
    c.state(0, u=u, v=v, refractory=ref)
    c.group(0, w_shift=w_shift)
    c.synapses(axon=0, target=0, w_mant=w_mant)
    c.to_host(0, channel=0)
    b.input(0, 0, 0, 0)
    return b.build()


def trace(image, steps, inputs_at=()):
    x = np.zeros((steps, 1), dtype=bool)
    x[list(inputs_at), 0] = True
    r = Emulator(image).run(x, probe=[0], record=("spikes", "u", "v", "refractory"))
    np.testing.assert_array_equal(r.outputs[:, 0, 0], r.probes["spikes"][:, 0, 0])
    return {k: v[:, 0, 0].tolist() for k, v in r.probes.items()}


# --- the primitive functions --------------------------------------------------

def test_decay_rounds_toward_zero():
    x = np.array([5, -5, 7, -7, 4095, -4095, 2**23 - 1, -2**23])
    # 5 * 2048 / 4096 = 2.5 -> 2 and -2.5 -> -2 (floor would give -3)
    assert decay(x, 2048).tolist() == [2, -2, 3, -3, 2047, -2047, 2**22 - 1, -2**22]
    # factor 1: everything below 4096 in magnitude vanishes, on both sides
    assert decay(x, 1).tolist() == [0, 0, 0, 0, 0, 0, 2047, -2048]
    assert decay(x, 4096).tolist() == x.tolist()
    assert decay(x, 0).tolist() == [0] * 8


def test_int32_decay_equals_int64_on_every_extreme():
    """The int32 decay (one float64 product, truncated by the cast back to
    int32): exact for every s24 x and factor, including the signs, the
    extremes and the rounding edges; also in place (``out=x``, as
    neuron_step uses it) and with a 0-d factor (NeuronParams.astype's)."""
    x = np.concatenate([np.arange(-2**23, -2**23 + 5000), np.arange(-5000, 5000),
                        np.arange(2**23 - 5000, 2**23),
                        np.random.default_rng(3).integers(-2**23, 2**23, 20000)])
    for f in (0, 1, 2, 2047, 2048, 2049, 3686, 4095, 4096):
        np.testing.assert_array_equal(decay(x.astype(np.int32), np.int32(f)), decay(x, f))
    f = np.random.default_rng(4).integers(0, 4097, x.size)
    got = decay(x.astype(np.int32), f.astype(np.int32))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, decay(x, f))
    for f in (1, 2049, 3686):
        x32 = x.astype(np.int32)
        assert decay(x32, np.asarray(np.int32(f)), out=x32) is x32
        np.testing.assert_array_equal(x32, decay(x, f))


def test_wrap24_both_ways():
    assert wrap24(np.array([2**23, 2**23 + 5, -2**23 - 1, 2**24, -1, 2**23 - 1])).tolist() \
        == [-2**23, -2**23 + 5, 2**23 - 1, 0, -1, 2**23 - 1]


# --- corners through the whole emulator ---------------------------------------

def test_u_wraps_upward():
    # du = 0 keeps u; 2**23 - 100 + 200 wraps to -2**23 + 100
    t = trace(one_neuron(u=2**23 - 100, w_mant=100, w_shift=1), 2, inputs_at=[0])
    assert t["u"] == [-2**23 + 100, -2**23 + 100]


def test_u_wraps_downward():
    t = trace(one_neuron(u=-2**23 + 50, w_mant=-100, w_shift=0, vth_mant=0), 1,
              inputs_at=[0])
    assert t["u"] == [2**23 - 50]


def test_v_clamps_negative():
    # u = -2**23 + 10 each step, dv = 0: v saturates at -(2**23 - 1), never wraps
    t = trace(one_neuron(u=-2**23 + 10), 3)
    assert t["v"] == [-2**23 + 10, -VMAX, -VMAX]


def test_v_clamps_positive_then_subtracts():
    # v would be 2**23 + 90; clamped to 2**23 - 1, spikes (vth = 2**23 - 64),
    # subtract reset leaves 63
    t = trace(one_neuron(v=2**23 - 10, u=100, reset="subtract"), 1)
    assert t["spikes"] == [True]
    assert t["v"] == [VMAX - ((2**17 - 1) << 6)] == [63]


def test_decay_of_negative_u_and_v_rounds_toward_zero():
    t = trace(one_neuron(u=-5, v=-5, du=2048, dv=2048), 3)
    # u: -5 -> -2 (-2.5) -> -1 -> 0;  v: -5 -> trunc(-2.5) + u = -2 - 2 = -4
    #    -> trunc(-2) + -1 = -3 -> trunc(-1.5) + 0 = -1
    assert t["u"] == [-2, -1, 0]
    assert t["v"] == [-4, -3, -1]


def test_threshold_is_strict():
    # vth = 3 << 6 = 192; bias 64 per step, no decay: v = 64, 128, 192 (no spike), 256 (spike)
    t = trace(one_neuron(vth_mant=3, bias_mant=1, bias_exp=6), 5)
    assert t["v"] == [64, 128, 192, 0, 64]
    assert t["spikes"] == [False, False, False, True, False]


def test_refractory_holds_v_while_u_integrates():
    # Input 1000 at step 0 then u stays 1000 (du = 0); vth = 64: spike every
    # step it is allowed to. refractory = 3: v is 0 for exactly 3 steps.
    t = trace(one_neuron(vth_mant=1, refractory=3, w_mant=125, w_shift=3), 10,
              inputs_at=[0, 2])
    assert t["u"] == [1000, 1000, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000]
    assert t["spikes"] == [True, False, False, False, True, False, False, False, True, False]
    assert t["v"] == [0] * 10
    assert t["refractory"] == [3, 2, 1, 0, 3, 2, 1, 0, 3, 2]


def test_refractory_from_initial_counter():
    # A counter loaded from the image runs down even if no profile has one.
    t = trace(one_neuron(vth_mant=0, ref=2, bias_mant=1), 4)
    assert t["refractory"] == [1, 0, 0, 0]
    assert t["spikes"] == [False, False, True, True]


def test_subtract_reset_keeps_the_excess():
    # vth = 128; bias 100/step, no decay: 100; 200 -> 72; 172 -> 44; 144 -> 16;
    # 116 (no spike); 216 -> 88
    t = trace(one_neuron(vth_mant=2, bias_mant=100, reset="subtract"), 6)
    assert t["v"] == [100, 72, 44, 16, 116, 88]
    assert t["spikes"] == [False, True, True, True, False, True]


def test_zero_reset():
    t = trace(one_neuron(vth_mant=2, bias_mant=100), 4)
    assert t["v"] == [100, 0, 100, 0]


@pytest.mark.parametrize("mant,exp,expected", [
    (1, 0, 1), (-1, 0, -1), (4095, 7, 4095 << 7), (-4096, 7, -4096 << 7), (-3, 5, -96)])
def test_bias_mantissa_exponent(mant, exp, expected):
    t = trace(one_neuron(bias_mant=mant, bias_exp=exp, vth_mant=2**17 - 1), 2)
    assert t["v"] == [expected, 2 * expected]


# --- Lava's bit-accurate LIF expectations (du = du_lava + 1, dv = dv_lava) ---

def test_lava_current_decay():
    # du_lava = 2047, one input of 128 (<< 6) at the first step
    t = trace(one_neuron(du=2048, w_mant=64, w_shift=7), 8, inputs_at=[0])
    assert t["u"] == [8192, 4096, 2048, 1024, 512, 256, 128, 64]


def test_lava_voltage_decay():
    # du_lava = 0, dv = 2048, one input of 128 at the first step
    t = trace(one_neuron(du=1, dv=2048, w_mant=64, w_shift=7), 8, inputs_at=[0])
    assert t["v"] == [8192, 12286, 14331, 15351, 15859, 16111, 16235, 16295]


def test_lava_bias_spikes():
    # bias 2 * 2**6, vth 8: spikes at the 5th and 10th step
    t = trace(one_neuron(du=1, bias_mant=2, bias_exp=6, vth_mant=8), 10)
    assert [i + 1 for i, s in enumerate(t["spikes"]) if s] == [5, 10]


# --- the optional profile fields: reset timing, threshold test, floor (§3.6 e) --

@pytest.mark.parametrize("profile, v, spikes", [
    (dict(reset="subtract"),
     [640, 1120, 200, 790, 1232, 284, 853, 1279, 319, 879, 19, 654], [2, 5, 8, 10]),
    (dict(reset="subtract", reset_delay=True),
     [640, 1120, 1480, 470, 992, 1384, 398, 938, 1343, 367, 915, 1326], [2, 5, 8, 11]),
    (dict(reset="zero", reset_delay=True),
     [640, 1120, 1480, 0, 640, 1120, 1480, 0, 640, 1120, 1480, 0], [2, 6, 10]),
    (dict(reset="subtract", reset_delay=True, reset_stored=True),
     [640, 1120, 1480, 790, 1232, 1564, 853, 1279, 1599, 879, 1299, 654], [2, 5, 8, 10]),
    (dict(reset="zero", reset_delay=True, reset_stored=True),
     [640, 1120, 1480] * 4, [2, 5, 8, 11]),
])
def test_delayed_reset_known_values(profile, v, spikes):
    t = trace(one_neuron(du=1, dv=1024, bias_mant=5, bias_exp=7, vth_mant=20, **profile), 12)
    assert t["v"] == v
    assert [i for i, s in enumerate(t["spikes"]) if s] == spikes


def test_retest_counts_the_threshold_twice_after_a_big_spike():
    # One input of 3200 at step 0, no decay, vth = 1280. The subtract reset
    # leaves 1920 > vth: the immediate form fires again at step 1; RETEST
    # (snnTorch 1.0 with reset_delay=False) tests 1920 against 2 vth and
    # keeps it (and then snnTorch adds the threshold back: v stays 1920).
    kw = dict(du=4096, vth_mant=20, reset="subtract", w_mant=100, w_shift=5)
    t = trace(one_neuron(**kw), 4, inputs_at=[0])
    assert t["v"] == [1920, 640, 640, 640] and t["spikes"] == [True, True, False, False]
    t = trace(one_neuron(reset_retest=True, **kw), 4, inputs_at=[0])
    assert t["v"] == [1920] * 4 and t["spikes"] == [True, False, False, False]
    # a second input of 3200 at step 2: 5120 > 2 vth fires, then 3840 > 2 vth again
    t = trace(one_neuron(reset_retest=True, **kw), 5, inputs_at=[0, 2])
    assert t["v"] == [1920, 1920, 3840, 2560, 2560]
    assert t["spikes"] == [True, False, True, True, False]


def test_threshold_ge_fires_at_equality():
    t = trace(one_neuron(du=1, bias_mant=2, bias_exp=6, vth_mant=8, threshold_ge=True), 12)
    assert t["v"] == [128, 256, 384, 0] * 3
    assert [i for i, s in enumerate(t["spikes"]) if s] == [3, 7, 11]


def test_threshold_ge_with_zero_threshold_fires_at_rest():
    # The only profile that fires with zero state; the emulator must not
    # drop such a neuron as inactive.
    t = trace(one_neuron(vth_mant=0, threshold_ge=True), 3)
    assert t["spikes"] == [True, True, True] and t["v"] == [0, 0, 0]
    assert trace(one_neuron(vth_mant=0), 3)["spikes"] == [False] * 3


def test_floor_clamps_v_from_below():
    assert trace(one_neuron(u=-20000, v_floor=-16384), 4)["v"] == [-16384] * 4
    assert trace(one_neuron(u=-20000), 4)["v"] == [-20000, -40000, -60000, -80000]
    # the deepest floor and a floor at 0
    assert trace(one_neuron(u=-2**23, v_floor=-(511 << 14)), 2)["v"] == [-(511 << 14)] * 2
    assert trace(one_neuron(u=-5, v_floor=-16384), 2)["v"] == [-5, -10]


def test_delayed_reset_from_a_loaded_state_and_after_refractory():
    # A stored v above the threshold is reset by the next update.
    t = trace(one_neuron(vth_mant=20, v=2000, reset="subtract", reset_delay=True), 2)
    assert t["v"] == [2000 - 1280, 2000 - 1280]
    # A refractory step holds v at 0, so nothing is pending after it.
    t = trace(one_neuron(vth_mant=1, bias_mant=100, refractory=1, reset="subtract",
                         reset_delay=True), 5)
    assert t["spikes"] == [True, False, True, False, True]
    assert t["v"] == [100, 0, 100, 0, 100]


@pytest.mark.parametrize("v_floor", [0, 1, -1, 16384, -(512 << 14)])
def test_bad_floor_is_refused(v_floor):
    with pytest.raises(ValueError, match="v_floor"):
        one_neuron(v_floor=v_floor)


# --- the raw step function against a scalar reference -------------------------

def scalar_reference(u, v, ref, q, du, dv, bias, vth, rdelay, subtract, delay=False, ge=False,
                     floor=-VMAX, stored=False, retest=False):
    """The spec's pseudo-code (§3.2), one neuron, Python ints."""
    def trunc0(x, f):
        return (1 if x >= 0 else -1) * ((abs(x) * f) >> 12)

    def w24(x):
        return ((x + 2**23) % 2**24) - 2**23

    def fires(x):
        return x >= vth if ge else x > vth

    u = w24(trunc0(u, 4096 - du) + q)
    if ref > 0:
        return u, 0, ref - 1, False
    twice = retest and fires(v)                  # RETEST: this test counts vth twice
    pending = delay and fires(v)                 # last step's reset, applied now:
    if pending and stored:                       # to the stored v, before the decay
        v = v - vth if subtract else 0
    x = trunc0(v, 4096 - dv) + u + bias
    if pending and not stored:                   # or to the new sum
        x = x - vth if subtract else 0
    v = max(floor, min(VMAX, x))
    if fires(v - vth if twice else v):
        if not delay:
            v = v - vth if subtract else 0
        return u, v, rdelay, True
    return u, v, ref, False


@pytest.mark.parametrize("n", [20000, 3000])     # np.clip, and maximum/minimum
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_neuron_step_matches_scalar_reference_on_random_vectors(dtype, n):
    """int64 and the emulator's int32 arithmetic (float64 decay products)
    alike, on arrays that clamp with np.clip and on small ones that do not."""
    rng = np.random.default_rng(7)
    u = rng.integers(-2**23, 2**23, n)
    v = rng.integers(-VMAX, VMAX + 1, n)
    ref = rng.integers(0, 4, n) * (rng.random(n) < 0.3)
    q = rng.integers(-2**23, 2**23, n)
    du = rng.integers(0, 4097, n)
    dv = rng.integers(0, 4097, n)
    bias = rng.integers(-4096, 4096, n) << rng.integers(0, 8, n)
    vth = rng.integers(0, 2**17, n) << 6
    rdelay = rng.integers(0, 256, n)
    subtract = rng.random(n) < 0.5
    # Extremes that hit wrap, clamp and rounding edges.
    u[:8] = [2**23 - 1, -2**23, 2**23 - 1, -2**23, -1, 1, 0, -4096]
    q[:8] = [1, -1, 2**23 - 1, -2**23, -1, 1, 0, 0]
    # The optional profile fields: delayed reset, v >= vth, a floor (each in
    # about a third of the neurons, independently).
    timing = rng.integers(0, 4, n) * (rng.random(n) < 0.6)
    delay, stored, retest = np.isin(timing, (1, 2)), timing == 2, timing == 3
    ge = rng.random(n) < 0.3
    floor = np.where(rng.random(n) < 0.3, -(rng.integers(1, 512, n) << 14), -VMAX)
    vth[8:12] = 0
    ge[8:12] = True
    params = NeuronParams(4096 - du, 4096 - dv, bias, vth, rdelay, subtract,
                          fire_above=vth - ge, floor=floor, delayed=delay, stored=stored,
                          retest=retest).astype(dtype)
    state = NeuronState(u.astype(dtype), v.astype(dtype), ref.astype(dtype))
    # q is any value whose low 24 bits are the input (the int32 ring holds it
    # modulo 2**32): add multiples of 2**24 that leave the 24-bit range.
    q_any = q + (rng.integers(-100, 100, n) << 24) * (dtype == np.int32)
    spikes = neuron_step(state, q_any.astype(dtype), params)
    assert state.u.dtype == state.v.dtype == dtype
    expected = [scalar_reference(*map(int, a), bool(s), bool(d), bool(g), int(f), bool(st),
                                 bool(rt))
                for *a, s, d, g, f, st, rt in zip(u, v, ref, q, du, dv, bias, vth, rdelay,
                                                  subtract, delay, ge, floor, stored, retest)]
    eu, ev, eref, es = map(np.array, zip(*expected))
    np.testing.assert_array_equal(state.u, eu)
    np.testing.assert_array_equal(state.v, ev)
    np.testing.assert_array_equal(state.refractory, eref)
    np.testing.assert_array_equal(spikes, es)
    assert es.sum() > 10 and (~es).sum() > 10
