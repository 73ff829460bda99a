"""The quantization pass: decays, scale, weights, threshold, bias, report.

Hand-computed values first, then properties (hypothesis), then one LIF
neuron simulated in float and on the emulator after quantization.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuromesh import ChipBuilder, Geometry
from neuromesh.chip import V_MAX
from neuromesh.compiler.quantize import (
    DEFAULT_HEADROOM,
    QuantizationError,
    QuantizationReport,
    WeightStats,
    choose_scale,
    decay_from_factor,
    decay_from_tau,
    quantize_bias,
    quantize_layer,
    quantize_threshold,
    quantize_weights,
)
from neuromesh.emulator import Emulator

SETTINGS = dict(deadline=None, database=None)


# --- decays ---------------------------------------------------------------------------

def test_euler_decay_tau_10():
    d, err = decay_from_tau(10.0, 1.0)          # retention 0.9 -> 3686.4/4096
    assert d == 410 and 4096 - d == 3686
    assert err == pytest.approx(abs(3686 / 4096 - 0.9))
    assert err <= 1 / 8192


def test_exact_decay_tau_10():
    d, err = decay_from_tau(10.0, 1.0, method="exact")   # e^-0.1 = 0.904837 -> 3706.2
    assert d == 390
    assert err == pytest.approx(abs(3706 / 4096 - math.exp(-0.1)))


def test_decay_from_snntorch_factor():
    # snnTorch stores beta in float32: 0.75 exactly -> d = 1024, no error
    assert decay_from_factor(np.float32(0.75)) == (1024, 0.0)
    # the float64 route (1 - 1e-4 / 4e-4 via NIR) lands on the same d
    d, err = decay_from_factor(0.7499999937)
    assert d == 1024 and err < 1e-8


def test_decay_limits():
    assert decay_from_tau(math.inf, 1.0).d == 0
    assert decay_from_tau(math.inf, 1.0, method="exact") == (0, 0.0)
    assert decay_from_tau(1.0, 1.0).d == 4096     # Euler, dt >= tau: forget at once
    assert decay_from_tau(0.5, 1.0).d == 4096
    assert decay_from_factor(0.0) == (4096, 0.0)
    assert decay_from_factor(1.0) == (0, 0.0)


def test_decay_is_vectorized():
    d, err = decay_from_tau(np.array([10.0, math.inf, 0.5, 5.0]), 1.0)
    assert d.dtype == np.int64
    assert d.tolist() == [410, 0, 4096, 819]
    assert err.shape == (4,) and (err <= 1 / 8192).all()


@pytest.mark.parametrize("call, match", [
    (lambda: decay_from_tau(0.0, 1.0, name="hid"), r"^layer 'hid': tau = 0 must be > 0"),
    (lambda: decay_from_tau([5.0, -1.0], 1.0), r"^tau\[1\] = -1 must be > 0"),
    (lambda: decay_from_tau([5.0, np.nan], 1.0), r"tau\[1\] is NaN"),
    (lambda: decay_from_tau(5.0, 0.0), r"dt = 0 must be finite and > 0"),
    (lambda: decay_from_tau(5.0, 1.0, method="rk4"), r"'euler' or 'exact', got 'rk4'"),
    (lambda: decay_from_factor(1.2, name="out"),
     r"layer 'out': retention factor = 1.2 is outside \[0, 1\]"),
    (lambda: decay_from_factor([0.5, -0.1]), r"retention factor\[1\] = -0.1"),
])
def test_decay_errors(call, match):
    with pytest.raises(QuantizationError, match=match):
        call()


# --- weights --------------------------------------------------------------------------

def test_weights_that_fit_exactly():
    p = quantize_weights([127.0, -128.0], 1.0)
    assert p.w_shift == 0
    assert p.w_mant.tolist() == [127, -128]
    assert p.max_abs_error == 0.0 and p.rms_rel_error == 0.0 and p.n_flushed == 0


def test_weight_needing_a_shift():
    p = quantize_weights([1000.0], 1.0)       # 1000 / 4 = 250 > 127; 1000 / 8 = 125
    assert (p.w_shift, p.w_mant.tolist()) == (3, [125])
    assert p.contribution.tolist() == [1000]


def test_weights_scaled_and_rounded():
    # 0.3 * 1000 = 300 -> shift 2 (75); 0.01 * 1000 = 10 -> 10/4 = 2.5 -> 2 (ties to even)
    p = quantize_weights(np.array([[0.3, 0.01], [-0.3, 0.0]]), 1000.0, name="in->h")
    assert p.w_shift == 2
    assert p.w_mant.tolist() == [[75, 2], [-75, 0]]
    assert p.max_abs_error == pytest.approx(0.002)          # 0.01 - 8/1000
    assert p.dequantized() == pytest.approx(np.array([[0.3, 0.008], [-0.3, 0.0]]))
    assert p.name == "in->h"


def test_weight_shift_boundaries():
    assert quantize_weights([127 << 15], 1.0).w_mant.tolist() == [127]
    assert quantize_weights([-128 << 15], 1.0).w_shift == 15
    # 127.5 rounds to 128 (ties to even) at shift 0, so it takes shift 1 -> 64
    p = quantize_weights([127.5], 1.0)
    assert (p.w_shift, p.w_mant.tolist()) == (1, [64])
    # -128.5 rounds to -128 (even): still shift 0
    assert quantize_weights([-128.5], 1.0).w_mant.tolist() == [-128]


def test_all_zero_projection():
    p = quantize_weights(np.zeros((3, 4)), 123.0)
    assert p.w_shift == 0 and p.w_mant.shape == (3, 4) and not p.w_mant.any()
    assert p.max_abs_error == p.rms_rel_error == 0.0
    assert quantize_weights(np.zeros(0), 1.0).w_mant.size == 0


def test_weight_overflow_names_projection_and_limit():
    with pytest.raises(QuantizationError,
                       match=r"projection 'in->h': weight\[1\] = 5e\+06 .* overflows "
                             r"w_mant << w_shift .*4161536.*scale must be <= 0.832307"):
        quantize_weights([1.0, 5e6], 1.0, name="in->h")


def test_weight_underflow_names_projection():
    with pytest.raises(QuantizationError,
                       match=r"projection 'rec': all 2 nonzero weights round to w_mant = 0 "
                             r".*would vanish.*must be > 2\.5"):
        quantize_weights([0.1, -0.2, 0.0], 1.0, name="rec")


def test_partial_flush_is_counted_not_an_error():
    p = quantize_weights([1000.0, 0.5, 1.0], 1.0)   # shift 3: 0.5/8 and 1/8 round to 0
    assert p.w_mant.tolist() == [125, 0, 0]
    assert p.n_flushed == 2


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_bad_scale(scale):
    with pytest.raises(QuantizationError, match="scale must be finite and > 0"):
        quantize_weights([1.0], scale)


@settings(max_examples=60, **SETTINGS)
@given(w=arrays(np.float64, st.integers(1, 12),
                elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)),
       scale=st.floats(1e-2, 4e3))
def test_weight_reconstruction_property(w, scale):
    x = w * scale
    try:
        p = quantize_weights(w, scale)
    except QuantizationError as e:
        # only underflow is possible here (|x| <= 4e6 < 127 << 15)
        assert "would vanish" in str(e) and np.abs(x).max() <= 0.5
        return
    assert p.w_mant.min() >= -128 and p.w_mant.max() <= 127
    assert 0 <= p.w_shift <= 15
    # within half a step of the shift
    assert np.all(np.abs((p.w_mant << p.w_shift) - x) <= 2.0 ** (p.w_shift - 1))
    # the smallest shift: one less would not fit
    if p.w_shift > 0:
        finer = np.rint(x / 2.0 ** (p.w_shift - 1))
        assert finer.max() > 127 or finer.min() < -128
    assert p.max_abs_error == pytest.approx(np.abs(w - p.dequantized()).max(), abs=1e-12)


# --- threshold and bias ---------------------------------------------------------------

def test_threshold_values():
    assert quantize_threshold(1.0, 6400.0) == (100, 0.0)
    vth, err = quantize_threshold(1.0, 1000.0)               # 1000 / 64 = 15.625 -> 16
    assert vth == 16 and err == pytest.approx(1024 / 1000 - 1)
    assert quantize_threshold(0.0, 5.0) == (0, 0.0)
    vth, err = quantize_threshold(np.array([1.0, 2.0]), 6400.0)
    assert vth.tolist() == [100, 200] and err.tolist() == [0.0, 0.0]
    assert quantize_threshold((2**17 - 1) * 64, 1.0).vth_mant == 2**17 - 1


@pytest.mark.parametrize("threshold, scale, match", [
    (-1.0, 1.0, r"layer 'L1': threshold = -1; the chip threshold .* >= 0"),
    (2.0**23, 1.0, r"layer 'L1': threshold = 8.38861e\+06 .* vth_mant = 131072 > 131071 "
                   r"\(u17\); the scale must be <= 0.999992"),
    ([1.0, 0.4], 64.0, r"layer 'L1': threshold\[1\] = 0.4 .* rounds to vth_mant = 0 .*"
                       r"must be > 80"),
])
def test_threshold_errors(threshold, scale, match):
    with pytest.raises(QuantizationError, match=match):
        quantize_threshold(threshold, scale, name="L1")


def test_bias_values():
    assert quantize_bias(1.0, 1.0) == (1, 0, 0.0)
    assert quantize_bias(0.0, 1.0) == (0, 0, 0.0)
    assert quantize_bias(5000.0, 1.0) == (2500, 1, 0.0)
    assert quantize_bias(-4096 * 128, 1.0) == (-4096, 7, 0.0)
    # 8191: exp 1 gives 4095 << 1 = 8190, exp 2 gives 2048 << 2 = 8192; tie -> smaller exp
    assert quantize_bias(8191.0, 1.0) == (4095, 1, 1.0)
    mant, exp, err = quantize_bias(np.array([0.02, -0.3, 0.0]), 1e6)
    assert mant.tolist() == [2500, -2344, 0] and exp.tolist() == [3, 7, 0]
    assert err == pytest.approx([0.0, abs(-0.3 + 2344 * 128 / 1e6), 0.0])


@pytest.mark.parametrize("bias, match", [
    (4095.5 * 128 + 1, r"layer 'L2': bias = 524225 .* overflows bias_mant << bias_exp .*"
                       r"\[-524288, 524160\]\); the scale must be <= 0.999876"),
    ([1.0, -524352.5], r"bias\[1\] = -524352 .*overflows"),
    ([0.3, 0.0, -0.2], r"layer 'L2': all 2 nonzero biases round to 0 .* must be > 1\.66667"),
    (math.inf, r"bias = inf is not finite"),
])
def test_bias_errors(bias, match):
    with pytest.raises(QuantizationError, match=match):
        quantize_bias(bias, 1.0, name="L2")


@settings(max_examples=60, **SETTINGS)
@given(x=st.floats(-(4095 << 7), 4095 << 7, allow_nan=False).filter(lambda v: abs(v) >= 0.75))
def test_bias_is_the_best_representation(x):
    mant, exp, err = quantize_bias(x, 1.0)
    assert -4096 <= mant <= 4095 and 0 <= exp <= 7
    assert err == abs((mant << exp) - x)
    # no (mantissa, exponent) pair is closer ...
    best = min(abs(x - min(max(round(x / 2**e), -4096), 4095) * 2**e) for e in range(8))
    assert err <= best
    # ... so within half a step of the finest exponent at which x fits
    fit = next(e for e in range(8) if -4096 <= round(x / 2**e) <= 4095)
    assert err <= 2.0 ** (fit - 1)


# --- scale ----------------------------------------------------------------------------

def test_scale_set_by_state_range_then_aligned_to_the_weight():
    c = choose_scale(1.0, [np.array([[0.6]])])
    assert DEFAULT_HEADROOM == 4.0
    assert c.binding == "state"
    assert c.max_scale == pytest.approx(V_MAX / (4.0 * 1.6))
    assert c.limits["threshold"] == pytest.approx(((2**17 - 1) << 6) / 1.0)
    assert c.limits["bias"] == math.inf
    assert "set by state" in str(c) and "aligned to the weights" in str(c)
    # at max_scale 0.6 would be 786432 = 96 << 13; aligned it is exactly 127 << 12
    assert c.scale == pytest.approx(127 * 2**12 / 0.6)
    p = quantize_weights([0.6, 0.3], c.scale)
    assert (p.w_shift, p.w_mant.tolist()) == (12, [127, 64])
    assert quantize_weights([0.6], c.max_scale).w_mant.tolist() == [96]
    unaligned = choose_scale(1.0, [np.array([[0.6]])], align_weights=False)
    assert unaligned.scale == unaligned.max_scale == c.max_scale


def test_scale_alignment_maximises_the_least_filled_projection():
    # max_scale = V_MAX / (4 * (1 + 0.7)); projection a (0.6) and b (0.1):
    # aligning a leaves b at 2/3 of its range, aligning b leaves a at 3/4.
    c = choose_scale(1.0, {"a": [[0.6, -0.3]], "b": [[0.1]]})
    assert c.scale == pytest.approx(127 * 2**9 / 0.1)
    a, b = quantize_weights([[0.6, -0.3]], c.scale), quantize_weights([[0.1]], c.scale)
    assert a.w_mant.tolist() == [[95, -48]] and b.w_mant.tolist() == [[127]]
    assert c.max_scale / 2 < c.scale <= c.max_scale
    # the most negative weight may use -128
    c = choose_scale(1.0, [np.array([[-0.5, 0.25]])])
    assert quantize_weights([-0.5, 0.25], c.scale).w_mant.tolist() == [-128, 64]


def test_scale_one_step_input_sums_sources_and_projections():
    # per target: excitatory 0.5 + 0.25 + 0.75 (second projection) = 1.5; inhibitory 1.0
    w1 = np.array([[0.5, 0.25, -1.0], [0.1, 0.1, 0.1]])
    w2 = np.array([[0.75], [0.0]])
    c = choose_scale(2.0, {"a": w1, "b": w2}, bias=[0.5, -0.25], headroom=2.0)
    assert c.limits["state"] == pytest.approx(V_MAX / (2.0 * (2.0 + 1.5 + 0.5)))
    # one-to-one (1-d) weights: a single source per target
    c = choose_scale(1.0, [np.array([0.5, -3.0, 0.25])], headroom=1.0)
    assert c.limits["state"] == pytest.approx(V_MAX / 4.0)


@pytest.mark.parametrize("threshold, weights, bias, binding", [
    (1.0, [], None, "threshold"),          # V_MAX vs (2**17 - 1) << 6
    (0.0, [np.array([[1.0]])], None, "weights"),
    (0.0, [], 1.0, "bias"),
])
def test_scale_binding_constraints(threshold, weights, bias, binding):
    c = choose_scale(threshold, weights, bias, headroom=1.0)
    assert c.binding == binding
    layer = quantize_layer("x", threshold, weights, bias=bias, headroom=1.0,
                           u_decay=decay_from_factor(0.0), v_decay=decay_from_factor(1.0))
    # at the largest scale every field is full and nothing overflowed
    if binding == "weights":
        assert (layer.projections["0"].w_shift, layer.projections["0"].w_mant.tolist()) \
            == (15, [[127]])
    if binding == "threshold":
        assert layer.threshold.vth_mant == 2**17 - 1
    if binding == "bias":
        assert (layer.bias.bias_mant, layer.bias.bias_exp) == (4095, 7)


def test_scale_power_of_two_and_nothing_to_scale():
    c = choose_scale(1.0, power_of_two=True)
    assert c.scale == 2.0**20                # V_MAX / 4 = 2**21 - 0.25 rounds down to 2**20
    assert choose_scale(0.0).scale == 1.0 and choose_scale(0.0).binding == "none"


@pytest.mark.parametrize("kwargs, match", [
    (dict(threshold=-0.5), r"layer 'h': threshold = -0.5; the chip threshold"),
    (dict(threshold=1.0, headroom=0.5), r"layer 'h': headroom must be finite and >= 1"),
    (dict(threshold=1.0, weights_in={"in": [[np.inf]]}),
     r"projection 'in' weight\[0, 0\] = inf is not finite"),
    (dict(threshold=1.0, bias=[0.0, np.nan]), r"layer 'h': bias\[1\] is NaN"),
])
def test_scale_errors(kwargs, match):
    with pytest.raises(QuantizationError, match=match):
        choose_scale(name="h", **kwargs)


@settings(max_examples=40, **SETTINGS)
@given(threshold=st.floats(0.05, 20.0),
       w=arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)),
                elements=st.one_of(st.just(0.0), st.floats(0.01, 5.0), st.floats(-5.0, -0.01))),
       bias=st.one_of(st.just(0.0), st.floats(0.01, 3.0), st.floats(-3.0, -0.01)),
       headroom=st.floats(1.0, 64.0), power_of_two=st.booleans())
def test_chosen_scale_always_fits(threshold, w, bias, headroom, power_of_two):
    # whatever binds, quantizing at the chosen scale never overflows a field
    layer = quantize_layer("p", threshold, {"in": w}, bias=bias, headroom=headroom,
                           power_of_two=power_of_two,
                           u_decay=decay_from_factor(0.5), v_decay=decay_from_factor(0.9))
    s = layer.scale.scale
    reach = s * headroom * (threshold + max(np.clip(w, 0, None).sum(1).max(),
                                            np.clip(-w, 0, None).sum(1).max()) + abs(bias))
    assert reach <= V_MAX * (1 + 1e-12)
    assert layer.threshold.vth_mant <= 2**17 - 1


# --- report ---------------------------------------------------------------------------

def test_report_table():
    report = QuantizationReport()
    report.add(quantize_layer(
        "hidden", 1.0, {"in": np.array([[0.6, -0.2], [0.3, 0.1]]), "rec": np.array([0.1, 0.1])},
        bias=0.02, u_decay=decay_from_tau(5.0, 1.0), v_decay=decay_from_tau([10.0, 20.0], 1.0)))
    report.add(quantize_layer("out", 0.5, {"hidden": np.array([[1.0, -1.0]])},
                              power_of_two=True,    # s = 2**20: +-1.0 -> 64 << 14 exactly
                              u_decay=decay_from_factor(0.0), v_decay=decay_from_factor(1.0)))
    text = report.table()
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].split()[:3] == ["layer", "scale", "w_shift"] and "v decay err" in lines[0]
    assert lines[2].startswith("hidden") and lines[3].startswith("out")
    assert "819" in lines[2] and "205,410" in lines[2]
    rows = report.rows()
    hidden = report.layers[0]
    assert rows[0]["w_max_err"] == max(p.max_abs_error for p in hidden.projections.values())
    assert rows[0]["u_decay_err"] == pytest.approx(abs(3277 / 4096 - 0.8))
    assert rows[1]["scale"] == 2.0**20 and rows[1]["w_shift"] == "14"
    assert rows[1]["bias_err"] == 0.0 and rows[1]["w_max_err"] == 0.0
    long = report.table(projections=True).splitlines()
    assert len(long) == 7 and long[3].strip().startswith("<- in")
    assert str(report) == text


# --- end to end: one LIF neuron, float vs the chip ---------------------------------

GEOM = Geometry(n_neurons=8, n_axons=8, n_synapses=64, n_fanout=8, delay_slots=8)
TAU_SYN, TAU_MEM, DT, THRESHOLD, WEIGHT, BIAS = 5.0, 10.0, 1.0, 1.0, 0.5, 0.02
# 200 steps of 15 % input: ~45 output spikes, no float step within 5e-3 of the
# threshold (the 12-bit decays move v near threshold by ~1e-3).
INPUT = np.random.default_rng(1).random(200) < 0.15


def float_lif(x, w, alpha, beta, threshold, bias):
    """CUBA LIF in the chip's form: input of step t counts at t, reset to zero."""
    u = v = 0.0
    vs, spikes = [], []
    for xt in x:
        u = alpha * u + w * xt
        v = beta * v + u + bias
        spike = v > threshold
        vs.append(v)
        spikes.append(spike)
        if spike:
            v = 0.0
    return np.array(vs), np.array(spikes)


def chip_lif(x, method):
    """Quantize the LIF neuron for ``method`` and run it on a 1-core emulator."""
    layer = quantize_layer(
        "lif", THRESHOLD, {"in": np.array([[WEIGHT]])}, bias=BIAS,
        u_decay=decay_from_tau(TAU_SYN, DT, method), v_decay=decay_from_tau(TAU_MEM, DT, method))
    proj = layer.projections["in"]
    b = ChipBuilder(GEOM)
    c = b.core(0, 0)
    c.profile(0, du=layer.u_decay.d, dv=layer.v_decay.d, vth_mant=layer.threshold.vth_mant)
    c.neurons(0, profile=0, bias_mant=layer.bias.bias_mant, bias_exp=layer.bias.bias_exp)
    c.group(0, w_shift=proj.w_shift)
    c.synapses(axon=0, target=0, w_mant=int(proj.w_mant[0, 0]), group=0)
    c.to_host(0, channel=0)
    b.input(0, 0, 0, 0)
    r = Emulator(b.build()).run(x[:, None], probe=[0], record=("spikes", "v"))
    return r.probes["v"][:, 0, 0] / layer.scale.scale, r.probes["spikes"][:, 0, 0]


def float_reference(method):
    alpha, beta = [(1 - DT / t) if method == "euler" else math.exp(-DT / t)
                   for t in (TAU_SYN, TAU_MEM)]
    return float_lif(INPUT, WEIGHT, alpha, beta, THRESHOLD, BIAS)


@pytest.mark.parametrize("method", ["euler", "exact"])
def test_lif_neuron_spike_times_match_float(method):
    v_ref, s_ref = float_reference(method)
    assert 20 < s_ref.sum() < 100
    assert np.abs(v_ref - THRESHOLD).min() > 5e-3        # well conditioned
    v_chip, s_chip = chip_lif(INPUT, method)
    np.testing.assert_array_equal(np.flatnonzero(s_chip), np.flatnonzero(s_ref))
    # v tracks the float membrane (both reset to 0)
    np.testing.assert_allclose(v_chip, np.where(s_ref, 0.0, v_ref), atol=2e-3)


def test_lif_neuron_wrong_discretisation_disagrees():
    # Euler-trained parameters mapped with exp(-dt/tau): retention 0.9048 instead
    # of 0.9 and 0.8187 instead of 0.8 -- the spike train changes.
    _, s_ref = float_reference("euler")
    _, s_chip = chip_lif(INPUT, "exact")
    assert not np.array_equal(s_chip, s_ref)


def test_weight_stats_of_synapse_lists_count_each_synapse():
    """Per target the positive and the negative weights are summed, each
    synapse counted (a repeated (source, target) pair too: the chip holds
    both, each with its own mantissa); extremes include 0."""
    pre = np.array([0, 0, 1, 2, 0])
    post = np.array([0, 0, 0, 1, 1])
    w = np.array([0.5, -0.25, 0.125, -1.0, 0.75])
    s = WeightStats.of_synapses(post, w, 3)
    assert s == WeightStats(exc=0.75, inh=1.0, w_max=0.75, w_min=-1.0)
    # the same as the dense matrix when no pair repeats
    dense = np.zeros((3, 3))
    dense[post[2:], pre[2:]] = w[2:]
    s2 = WeightStats.of_synapses(post[2:], w[2:], 3)
    assert choose_scale(1.0, [dense]) == choose_scale(1.0, [s2])
    assert WeightStats.of_synapses(np.zeros(0, int), np.zeros(0), 4) == WeightStats(0, 0, 0, 0)
    assert WeightStats.of_synapses([1], [0.5], 2) == WeightStats(0.5, 0.0, 0.5, 0.0)
    with pytest.raises(QuantizationError, match=r"layer 'p': weight\[1\] = nan \(synapse into 0\)"):
        WeightStats.of_synapses([1, 0], [0.5, np.nan], 2, name="p")
