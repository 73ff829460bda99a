"""The learning engine in the emulator (docs/architecture.md §11), with
hand-computed values: traces, every factor, scaling, floor and stochastic
rounding, clamping, tags, dependencies, reward, epochs, batching."""

import numpy as np
import pytest

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator
from neuromesh.learning_lfsr import draw

G = Geometry(n_neurons=4, n_axons=4, n_synapses=16, n_fanout=4, n_groups=4, delay_slots=4)
# Draws from seed 1 (tests/test_learning_lfsr.py pins them): 12-bit and 7-bit values.
D12 = [0x6C3, 0xDB5, 0x3CF, 0xFA6, 0xE3E, 0xD95, 0x500, 0x2A4]
D7 = [0x43, 0x35, 0x4F, 0x26, 0x3E, 0x15, 0x00, 0x24]


def chip(rule=None, *, w=10, w_bits=8, sign="mixed", target=0, axon=0, drive=True,
         learning=None, tag=0):
    """One core. Host channel k feeds axon k. Neuron 0 is a relay (spikes when
    its input exceeds 64); neuron 1 never spikes. With ``drive``, axon 0 has a
    static synapse that makes neuron 0 spike in every step it is hit. The
    synapse under test (group 1, w_shift 0) is ``axon -> target``."""
    b = ChipBuilder(G)
    c = b.core(0, 0)
    c.profile(0, du=4096, dv=4096, vth_mant=1)
    c.profile(1, du=4096, dv=4096, vth_mant=2**17 - 1)
    c.neurons([0, 2, 3], profile=0)
    c.neurons(1, profile=1)
    c.group(0, w_shift=6)
    if drive:
        c.synapses(axon=0, target=0, w_mant=2, group=0)
    if rule is not None:
        c.group(1, w_shift=0, rule=rule, w_bits=w_bits, sign=sign)
        c.synapses(axon=axon, target=target, w_mant=w, group=1, tag=tag)
    params = dict(t_epoch=1, x1=(40, 2048), x2=(24, 0), y1=(20, 0), y2=(12, 0), y3=(100, 0),
                  reward=-3)
    params.update(learning or {})
    c.learning(**params)
    b.input(range(4), 0, 0, range(4))
    return b.build()


def plastic_index(emu):
    return int(np.flatnonzero(emu.config.regions[4]["group"][0] == 1)[0])


def inputs(steps, hits):
    """Host input: ``hits`` maps channel -> steps at which it spikes."""
    x = np.zeros((steps, 4), bool)
    for ch, at in hits.items():
        x[list(at), ch] = True
    return x


def step_by_step(emu, x, keys):
    out = {k: [] for k in keys}
    for t in range(len(x)):
        emu.run(x[t:t + 1])
        s = emu.read_state()
        for k in keys:
            out[k].append(s[k])
    return out


# --- traces -----------------------------------------------------------------------

def test_pre_trace_impulse_decay_saturation():
    # impulse 100, decay 2048 (halve, floor); hits at steps 0 and 1:
    # 100, 50 + 100 = 150 -> 127, 63 (63.5), 31, 15, 7, 3, 1, 0
    img = chip(learning=dict(x1=(100, 2048), x2=(5, 4095), t_epoch=63))
    got = step_by_step(Emulator(img), inputs(9, {0: [0, 1]}), ["x1", "x2", "x0"])
    assert [int(v[0, 0, 0]) for v in got["x1"]] == [100, 127, 63, 31, 15, 7, 3, 1, 0]
    # decay 4095 multiplies by 1/4096: 5 -> 0 at once (floor)
    assert [int(v[0, 0, 0]) for v in got["x2"]][:3] == [5, 5, 0]
    # x0 is set by the hit and stays set until an epoch (t_epoch = 63 here)
    assert [int(v[0, 0, 0]) for v in got["x0"]] == [1] * 9
    assert [int(v[0, 0, 1]) for v in got["x1"]] == [0] * 9     # axon 1 never hit


def test_post_traces_follow_the_neuron_spikes():
    img = chip(learning=dict(y1=(100, 2048), y2=(127, 0), y3=(90, 4095), t_epoch=63))
    got = step_by_step(Emulator(img), inputs(5, {0: [0, 1]}), ["y1", "y2", "y3", "y0"])
    assert [int(v[0, 0, 0]) for v in got["y1"]] == [100, 127, 63, 31, 15]
    assert [int(v[0, 0, 0]) for v in got["y2"]] == [127] * 5          # no decay, saturated
    assert [int(v[0, 0, 0]) for v in got["y3"]] == [90, 90, 0, 0, 0]
    assert [int(v[0, 0, 1]) for v in got["y1"]] == [0] * 5             # neuron 1 silent
    assert [int(v[0, 0, 0]) for v in got["y0"]] == [1] * 5


def test_stochastic_trace_decay_consumes_the_lfsr_in_order():
    # impulse 100, decay 1000 (factor 3096), seed 1, one hit at step 0:
    # step 1: 100*3096 = 309600 = 75*4096 + 2400 -> (309600 + 0x6C3) >> 12 = 76 (floor 75)
    # step 2: 76*3096 = 235296 (frac 1824)  -> + 0xDB5 -> 58 (floor 57)
    # step 3: 58*3096 = 179568 (frac 3440)  -> + 0x3CF -> 44 (floor 43)
    # step 4: 44*3096 = 136224 (frac 1056)  -> + 0xFA6 -> 34 (floor 33)
    img = chip(drive=False, learning=dict(x1=(100, 1000), x2=(0, 0), y1=(0, 0), y2=(0, 0),
                                          y3=(0, 0), stochastic=("trace",), seed=1))
    got = step_by_step(Emulator(img), inputs(5, {0: [0]}), ["x1", "lfsr"])
    assert [int(v[0, 0, 0]) for v in got["x1"]] == [100, 76, 58, 44, 34]
    # a trace of 100 at step 0 needed no draw (0 * f has no fraction)
    s, states = 1, []
    for _ in range(4):
        s, _ = draw(s, 12)
        states.append(s)
    assert [int(v[0, 0]) for v in got["lfsr"]] == [1] + states


def test_stochastic_rounding_is_unbiased_on_average():
    # 100 traces decaying by 1/2 from 127: the mean after one step is 63.5
    b = ChipBuilder(Geometry(n_neurons=4, n_axons=128, n_synapses=4, n_fanout=4))
    c = b.core(0, 0)
    c.learning(x1=(0, 2048), stochastic=("trace",), seed=12345)
    c.pre_traces(range(128), x1=127)
    e = Emulator(b.build())
    e.run(steps=1)
    x1 = e.read_state()["x1"][0, 0]
    assert set(x1.tolist()) == {63, 64}
    assert 0.3 < (x1 == 64).mean() < 0.7


# --- factors, scale, floor rounding ------------------------------------------------
# At the epoch ending step 0: x0 = y0 = 1, x1 = 40, x2 = 24, y1 = 20, y2 = 12,
# y3 = 100, r = -3, w = 10, t = 0.

@pytest.mark.parametrize("rule, w_after", [
    ("dw = 2^-3*x1", 10 + 5),                  # 40/8
    ("dw = 2^-3*x2", 10 + 3),                  # 24/8
    ("dw = 2^-2*y1", 10 + 5),                  # 20/4
    ("dw = 2^-2*y2", 10 + 3),                  # 12/4
    ("dw = 2^-4*y3", 10 + 6),                  # 6.25 -> 6 (floor)
    ("dw = -2^-4*y3", 10 - 7),                 # -6.25 -> -7 (floor, not toward zero)
    ("dw = r", 10 - 3),
    ("dw = 2^-1*w", 10 + 5),
    ("dw = -w", 0),
    ("dw = t + 2", 10 + 2),
    ("dw = (x1 - 30)*(y1 + 2)*2^-4", 10 + 13),   # 10 * 22 / 16 = 13.75 -> 13
    ("dw = 3*2^-1*x2", 10 + 36),
    ("dw = 5*2^-7*x1*y1*(r + 4)", 10 + 31),      # 5 * 800 / 128 = 31.25 -> 31
    ("dw = x1*y0 - y1*x0", 10 + 40 - 20),
    ("dw = 2^-2*x1*y0 - 2^-2*y1*x0", 10 + 10 - 5),
    ("dw = 2^8*x1", 127),                        # clamps to the 8-bit range
    ("dw = -2^8*x1*y1*y3", -128),
    ("dw = 2^-7*x1*x2*y1*y2", 127),              # 230400 / 128 = 1800: clamps
    ("dw = 2^-7*x1*x2*(y1 - 19)*(y2 - 11)", 10 + 7),   # 960 / 128 = 7.5 -> 7
])
def test_each_factor_and_scale(rule, w_after):
    e = Emulator(chip(rule))
    e.run(inputs(1, {0: [0]}))
    assert e.read_state()["w_mant"][0, 0, plastic_index(e)] == w_after


def test_no_hidden_scaling_by_the_number_of_factors():
    # A product with four factors of value 40, 1, 1, 1 changes w exactly as
    # much as the single factor x1 = 40: 2^-3 * 40 = 5 both times.
    results = []
    for rule in ("dw = 2^-3*x1", "dw = 2^-3*x1*(y1 - 19)*(y2 - 11)*(y3 - 99)"):
        e = Emulator(chip(rule))
        e.run(inputs(1, {0: [0]}))
        results.append(int(e.read_state()["w_mant"][0, 0, plastic_index(e)]))
    assert results == [15, 15]


def dependency_chip():
    """One core, four plastic synapses under ``dw = x0 + 2*y0 + 4*u0 +
    8*2^-1*x0*y0``: A axon 0 -> neuron 0 (pre hit, post spikes), B axon 1 ->
    neuron 0 (pre silent), C axon 0 -> neuron 1 (post silent), D axon 1 ->
    neuron 1; a static synapse on axon 0 makes neuron 0 fire."""
    b = ChipBuilder(G)
    c = b.core(0, 0)
    c.profile(0, du=4096, dv=4096, vth_mant=1)
    c.profile(1, du=4096, dv=4096, vth_mant=2**17 - 1)
    c.neurons(0, profile=0)
    c.neurons(1, profile=1)
    c.group(0, w_shift=6)
    c.group(1, rule="dw = x0 + 2*y0 + 4*u0 + 8*2^-1*x0*y0")
    c.synapses(axon=0, target=0, w_mant=2, group=0)
    c.synapses(axon=[0, 1, 0, 1], target=[0, 0, 1, 1], w_mant=0, group=1)
    c.learning(t_epoch=1)
    b.input([0, 1], 0, 0, [0, 1])
    return b.build()


def test_dependencies_x0_y0_u0():
    e = Emulator(dependency_chip())
    e.run(inputs(1, {0: [0]})[:, :2])
    w = e.read_state()["w_mant"][0, 0]
    # memory order: axon 0 (static, A, C), axon 1 (B, D)
    assert w[[1, 3, 2, 4]].tolist() == [1 + 2 + 4 + 4, 2 + 4, 1 + 4, 4]


# --- clamping, sign modes ------------------------------------------------------------

@pytest.mark.parametrize("w_bits, sign, up, down", [
    (8, "mixed", 127, -128),
    (4, "mixed", 7, -8),
    (1, "mixed", 0, -1),
    (4, "excitatory", 7, 0),
    (8, "excitatory", 127, 0),
    (4, "inhibitory", 0, -8),
    (8, "inhibitory", 0, -128),
])
def test_clamp_by_precision_and_sign(w_bits, sign, up, down):
    for rule, expect in (("dw = 2^8*u0", up), ("dw = -2^8*u0", down)):
        e = Emulator(chip(rule, w=0, w_bits=w_bits, sign=sign, drive=False))
        e.run(steps=1)
        assert e.read_state()["w_mant"][0, 0, plastic_index(e)] == expect


def test_initial_weight_outside_the_group_range_is_rejected():
    from neuromesh.image import ImageError
    with pytest.raises(ImageError, match=r"core 0 SYNAPSE word 0: w_mant = 10 is outside the "
                                         r"clamp range of its plastic group"):
        chip("dw = u0", w=10, w_bits=4, drive=False)
    with pytest.raises(ImageError, match=r"w_mant = -1 is outside the clamp range"):
        chip("dw = u0", w=-1, sign="excitatory", drive=False)


# --- tags -------------------------------------------------------------------------------

def test_tag_update_uses_values_from_before_the_epoch():
    # dt = 2^-1*x1 (x1: 40 at step 0, 20 at step 1, 10 at step 2); dw = t
    e = Emulator(chip("dw = t; dt = 2^-1*x1"))
    got = step_by_step(e, inputs(3, {0: [0]}), ["w_mant", "tag"])
    i = plastic_index(e)
    assert [int(v[0, 0, i]) for v in got["tag"]] == [20, 30, 35]
    # the weight sees the tag before each epoch's update: 0, 20, 30
    assert [int(v[0, 0, i]) for v in got["w_mant"]] == [10, 30, 60]


def test_tag_saturates_and_starts_from_the_image():
    e = Emulator(chip("dt = 2^8*x1", tag=-100))
    assert e.read_state()["tag"][0, 0, plastic_index(e)] == -100
    e.run(inputs(1, {0: [0]}))
    assert e.read_state()["tag"][0, 0, plastic_index(e)] == 127
    e2 = Emulator(chip("dt = -2^8*x1 + t"))
    e2.run(inputs(1, {0: [0]}))
    assert e2.read_state()["tag"][0, 0, plastic_index(e2)] == -128


# --- stochastic rounding of updates ------------------------------------------------------

def test_stochastic_weight_and_tag_updates_in_order():
    # dw = 2^-1: accumulator 64/128 -> +1 iff the 7-bit draw >= 64;
    # dt = 3*2^-2: 96/128 -> +1 iff the draw >= 32. Per epoch: w first, then t.
    e = Emulator(chip("dw = 2^-1*u0; dt = 3*2^-2*u0", w=0, drive=False,
                      learning=dict(stochastic=("w", "t"), seed=1)))
    got = step_by_step(e, np.zeros((4, 4), bool), ["w_mant", "tag", "lfsr"])
    i = plastic_index(e)
    w_draws, t_draws = D7[0::2], D7[1::2]        # 67, 79, 62, 0 | 53, 38, 21, 36
    assert [int(v[0, 0, i]) for v in got["w_mant"]] == \
        np.cumsum([d >= 64 for d in w_draws]).tolist() == [1, 2, 2, 2]
    assert [int(v[0, 0, i]) for v in got["tag"]] == \
        np.cumsum([d >= 32 for d in t_draws]).tolist() == [1, 2, 2, 3]
    s = 1
    for _ in range(8):
        s, _ = draw(s, 7)
    assert int(got["lfsr"][-1][0, 0]) == s


def test_floor_rounding_without_stochastic_flag():
    e = Emulator(chip("dw = 2^-1*u0; dt = 3*2^-2*u0", w=0, drive=False))
    e.run(steps=4)
    s = e.read_state()
    assert s["w_mant"][0, 0, plastic_index(e)] == 0 and s["tag"][0, 0, plastic_index(e)] == 0
    assert s["lfsr"][0, 0] == 0x9E3779B9          # the default seed, never consumed


def test_updates_with_an_integer_result_draw_nothing():
    e = Emulator(chip("dw = 2^-1*x1", w=0, learning=dict(stochastic=("w",), seed=1)))
    e.run(inputs(1, {0: [0]}))                  # 40/2 = 20 exactly: no draw
    s = e.read_state()
    assert s["w_mant"][0, 0, plastic_index(e)] == 20 and s["lfsr"][0, 0] == 1


def test_synapses_draw_in_memory_order():
    # two plastic synapses (axon 0 and axon 1 -> neuron 1), dw = 2^-1 each epoch
    b = ChipBuilder(G)
    c = b.core(0, 0)
    c.group(1, rule="dw = 2^-1*u0")
    c.synapses(axon=[1, 0], target=1, w_mant=0, group=1)    # laid out axon 0 first
    c.learning(stochastic=("w",), seed=1)
    e = Emulator(b.build())
    e.run(steps=4)
    w = e.read_state()["w_mant"][0, 0]
    # axon 0's synapse (word 0) takes draws 1, 3, 5, 7; axon 1's (word 1) 2, 4, 6, 8
    assert w[0] == sum(d >= 64 for d in D7[0::2]) == 2
    assert w[1] == sum(d >= 64 for d in D7[1::2]) == 0


# --- epochs --------------------------------------------------------------------------------

def test_epoch_every_t_epoch_steps_and_x0_over_the_epoch():
    # t_epoch = 3: epochs end steps 2, 5, 8. dw = x0 + 2*u0; input at step 1 only.
    e = Emulator(chip("dw = x0 + 2*u0", w=0, drive=False, learning=dict(t_epoch=3)))
    got = step_by_step(e, inputs(9, {0: [1]}), ["w_mant", "epoch_phase", "x0"])
    i = plastic_index(e)
    assert [int(v[0, 0, i]) for v in got["w_mant"]] == [0, 0, 3, 3, 3, 5, 5, 5, 7]
    assert [int(v[0, 0]) for v in got["epoch_phase"]] == [1, 2, 0] * 3
    assert [int(v[0, 0, 0]) for v in got["x0"]] == [0, 1, 0, 0, 0, 0, 0, 0, 0]


def test_engine_off_with_t_epoch_zero():
    e = Emulator(chip("dw = 2^3*u0", w=0, learning=dict(t_epoch=0)))
    e.run(inputs(3, {0: [0, 1]}))
    s = e.read_state()
    assert s["w_mant"][0, 0, plastic_index(e)] == 0
    assert not s["x1"].any() and not s["y1"].any()


# --- reward --------------------------------------------------------------------------------

def test_reward_axon_impulses_and_decay_toward_zero():
    for impulse, expect in ((10, [10, 5, 2, 1, 0]), (-10, [-10, -5, -2, -1, 0]),
                            (100, [100, 127, 63, 31, 15])):
        hits = [0, 1] if impulse == 100 else [0]
        e = Emulator(chip(learning=dict(reward=0, reward_axon=2, reward_impulse=impulse,
                                        reward_decay=2048, t_epoch=63)))
        got = step_by_step(e, inputs(5, {2: hits}), ["reward"])
        assert [int(v[0, 0]) for v in got["reward"]] == expect


def test_host_reward_per_batch_row():
    e = Emulator(chip("dw = r*u0", w=0, drive=False), batch=3)
    e.set_reward(np.array([[5], [-2], [0]]))
    e.run(steps=2)
    assert e.read_state()["w_mant"][:, 0, plastic_index(e)].tolist() == [10, -4, 0]
    with pytest.raises(ValueError, match=r"reward must be integers in \[-128, 127\]"):
        e.set_reward(200)
    assert e.read_state()["reward"][:, 0].tolist() == [5, -2, 0]   # unchanged


# --- propagation and batching --------------------------------------------------------------

def test_learned_weights_are_what_spikes_deliver():
    # dw = u0 each epoch; a host spike every step through the plastic synapse
    # (w_shift 0) into neuron 1 (du = 4096: u = q). The host input of step t is
    # injected after the epoch of step t - 1: it delivers w = t.
    e = Emulator(chip("dw = u0", w=0, target=1, drive=False))
    r = e.run(np.ones((5, 4), bool), probe=[1], record=("u",))
    assert r.probes["u"][:, 0, 0].tolist() == [0, 1, 2, 3, 4]
    assert r.synaptic_events.tolist() == [5]


def test_neuron_spikes_travel_with_the_weights_of_their_step():
    # relay neuron 0 (hit by the host every step) -> axon 3 -> plastic synapse
    # (w_shift 0) -> neuron 1. Its spike of step t carries w = t (epochs 0..t-1
    # are done, the epoch of step t is not) and lands at step t + 1.
    b = ChipBuilder(G)
    c = b.core(0, 0)
    c.profile(0, du=4096, dv=4096, vth_mant=1)
    c.profile(1, du=4096, dv=4096, vth_mant=2**17 - 1)
    c.neurons(0, profile=0)
    c.neurons(1, profile=1)
    c.group(0, w_shift=6)
    c.group(1, rule="dw = u0")
    c.synapses(axon=0, target=0, w_mant=2, group=0)
    c.synapses(axon=3, target=1, w_mant=0, group=1)
    c.route(0, 0, 0, 3)
    c.learning()
    b.input(0, 0, 0, 0)
    e = Emulator(b.build())
    r = e.run(np.ones((5, 1), bool), probe=[1], record=("u",))
    assert r.probes["u"][:, 0, 0].tolist() == [0, 0, 1, 2, 3]


def test_batch_rows_are_independent_chips():
    rng = np.random.default_rng(7)
    img = chip("dw = 2^-2*x1*y0 - 2^-3*y1*x0 + 2^-7*r*u0; dt = 2^-1*x2*y0",
               learning=dict(stochastic=("trace", "w", "t"), seed=99, t_epoch=2))
    x = rng.random((30, 3, 4)) < 0.4
    both = Emulator(img, batch=3)
    both.set_reward(np.array([[3], [-7], [0]]))
    rb = both.run(x, probe=[0, 1], record=("spikes", "u"))
    sb = both.read_state()
    for row, reward in enumerate((3, -7, 0)):
        one = Emulator(img)
        one.set_reward(reward)
        r1 = one.run(x[:, row])
        s1 = one.read_state()
        for k in ("w_mant", "tag", "x1", "x2", "y1", "y2", "y3", "lfsr", "reward", "u", "v"):
            np.testing.assert_array_equal(sb[k][row], s1[k][0], err_msg=k)
        np.testing.assert_array_equal(rb.outputs[:, row], r1.outputs[:, 0])
    assert len({int(v) for v in sb["lfsr"][:, 0]}) == 3      # the rows did diverge


def test_reset_restores_the_learning_state():
    img = chip("dw = 2^-1*u0", w=0, learning=dict(stochastic=("w",), seed=5))
    e = Emulator(img)
    x = inputs(6, {0: [0, 2]})
    e.run(x)
    first = e.read_state()
    e.reset()
    assert e.read_state()["w_mant"][0, 0, plastic_index(e)] == 0
    e.run(x)
    for k, v in first.items():
        np.testing.assert_array_equal(e.read_state()[k], v, err_msg=k)


def test_split_runs_equal_one_run():
    img = chip("dw = 2^-2*x1*y0 - 2^-2*y1*x0", learning=dict(stochastic=("trace", "w")))
    x = np.random.default_rng(1).random((20, 4)) < 0.5
    a, b = Emulator(img), Emulator(img)
    ra = a.run(x)
    rb1, rb2 = b.run(x[:7]), b.run(x[7:])
    np.testing.assert_array_equal(ra.outputs, np.concatenate([rb1.outputs, rb2.outputs]))
    for k, v in a.read_state().items():
        np.testing.assert_array_equal(b.read_state()[k], v, err_msg=k)
