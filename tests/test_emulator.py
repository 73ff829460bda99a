"""Timing, delays, routing and the emulator's API, with hand-computed values."""

import numpy as np
import pytest

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator

# A neuron with vth = 64 and no decay of v (dv = 4096 forgets at once) spikes
# in exactly the step its input exceeds 64: a clean "relay" for timing tests.
RELAY = dict(du=4096, dv=4096, vth_mant=1)


def relay_core(b, x, y, n):
    c = b.core(x, y)
    c.profile(0, **RELAY)
    c.group(0, w_shift=6)
    c.neurons(range(n), profile=0)
    return c


def spike_steps(result, channel, row=0):
    return np.flatnonzero(result.outputs[:, row, channel]).tolist()


def test_host_input_lands_in_the_same_step_and_output_leaves_in_it():
    b = ChipBuilder(Geometry(n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4))
    c = relay_core(b, 0, 0, 1)
    c.synapses(axon=0, target=0, w_mant=2)
    c.to_host(0, channel=0)
    b.input(0, 0, 0, 0)
    x = np.zeros((6, 1), bool)
    x[[1, 4]] = True
    r = Emulator(b.build()).run(x)
    assert spike_steps(r, 0) == [1, 4]


@pytest.mark.parametrize("delay_slots", [2, 8, 64])
def test_every_delay_from_host_and_from_a_neuron(delay_slots):
    g = Geometry(n_neurons=128, n_axons=4, n_synapses=256, n_fanout=128,
                 delay_slots=delay_slots)
    n = g.max_delay + 1
    b = ChipBuilder(g)
    c = relay_core(b, 0, 0, 2 * n + 1)
    # host axon 0 -> neurons 0..n-1 with delay d = neuron index
    c.synapses(axon=0, target=np.arange(n), w_mant=2, delay=np.arange(n))
    # host axon 1 -> relay neuron 2n (delay 0); its spike -> axon 2 ->
    # neurons n..2n-1 with delay d
    c.synapses(axon=1, target=2 * n, w_mant=2)
    c.route(2 * n, 0, 0, 2)
    c.synapses(axon=2, target=n + np.arange(n), w_mant=2, delay=np.arange(n))
    c.to_host(np.arange(2 * n + 1), np.arange(2 * n + 1))
    b.input([0, 1], 0, 0, [0, 1])
    x = np.zeros((8 + 2 * delay_slots, 2), bool)
    x[3, 0] = True    # host input at step 3
    x[5, 1] = True    # relay spikes at step 5
    r = Emulator(b.build()).run(x)
    assert spike_steps(r, 2 * n) == [5]
    for d in range(n):
        assert spike_steps(r, d) == [3 + d], d                 # host: t + delay
        assert spike_steps(r, n + d) == [5 + 1 + d], d         # neuron: t + 1 + delay


def test_multicore_routing_over_a_2x2_mesh():
    """A chain (0,0) -> (1,1) -> (1,0) -> (0,1) -> host; one step per hop."""
    g = Geometry(rows=2, cols=2, n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4)
    b = ChipBuilder(g)
    hops = [(0, 0), (1, 1), (1, 0), (0, 1)]
    for i, (x, y) in enumerate(hops):
        c = relay_core(b, x, y, 4)
        c.synapses(axon=3, target=i, w_mant=2, delay=i % 2)    # neuron i of each core
        if i + 1 < len(hops):
            c.route(i, *hops[i + 1], 3)
        else:
            c.to_host(i, channel=0)
    b.input(0, 0, 0, 3)
    x = np.zeros((10, 1), bool)
    x[0] = True
    e = Emulator(b.build())
    r = e.run(x, probe=[0, 1 * 4 + 2, 3 * 4 + 1, 2 * 4 + 3], record=("spikes",))
    # core index = y * cols + x: (0,0)=0, (1,1)=3, (1,0)=1, (0,1)=2
    # hop 0 at step 0, hop 1 (core 3): +1+1 = 2, hop 2 (core 1): +1+0 = 3,
    # hop 3 (core 2): +1+1 = 5
    assert [np.flatnonzero(r.probes["spikes"][:, 0, i]).tolist() for i in range(4)] \
        == [[0], [3], [2], [5]]
    assert spike_steps(r, 0) == [5]
    assert r.neuron_spikes.tolist() == [4]
    assert r.synaptic_events.tolist() == [4]


def test_contributions_sum_and_wrap_in_the_accumulator():
    # Three synapses of +127 << 15 = 4161536 on one neuron: 12484608 wraps to
    # 12484608 - 2**24 = -4292608 (du = 4096 so u = q).
    b = ChipBuilder(Geometry(n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4))
    c = b.core(0, 0)
    c.profile(0, du=4096, dv=4096, vth_mant=2**17 - 1)
    c.group(0, w_shift=15)
    c.neurons(0, profile=0)
    c.synapses(axon=0, target=[0, 0, 0], w_mant=127)
    b.input(0, 0, 0, 0)
    r = Emulator(b.build()).run(np.ones((1, 1)), probe=[0])
    assert r.probes["u"][0, 0, 0] == 3 * (127 << 15) - 2**24


def test_preloaded_accumulator_and_read_state():
    g = Geometry(n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4, delay_slots=4)
    b = ChipBuilder(g)
    c = b.core(0, 0)
    c.profile(0, du=4096, dv=0, vth_mant=2**17 - 1)
    c.neurons(range(4), profile=0)
    c.accum(2, 1, 500)          # input of step 2 for neuron 1
    c.accum(3, 1, -7)
    e = Emulator(b.build())
    s = e.read_state()
    assert s["accum"][0, 0, 2, 1] == 500 and s["accum"][0, 0, 3, 1] == -7
    r = e.run(steps=4, probe=[1])
    assert r.probes["u"][:, 0, 0].tolist() == [0, 0, 500, -7]
    assert r.probes["v"][:, 0, 0].tolist() == [0, 0, 500, 493]
    s = e.read_state()
    assert s["step"] == 4
    assert s["u"][0, 0].tolist() == [0, -7, 0, 0]
    assert not s["accum"].any()


def test_runs_continue_and_reset_restarts():
    b = ChipBuilder(Geometry(n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4))
    c = relay_core(b, 0, 0, 2)
    c.profile(1, du=0, dv=0, vth_mant=10)
    c.neurons(1, profile=1, bias_mant=100)
    c.synapses(axon=0, target=0, w_mant=2, delay=3)
    c.to_host([0, 1], [0, 1])
    b.input(0, 0, 0, 0)
    e = Emulator(b.build())
    x = np.zeros((10, 1), bool)
    x[0] = True
    whole = e.run(x)
    e.reset()
    first = e.run(x[:2])
    second = e.run(x[2:])
    np.testing.assert_array_equal(whole.outputs, np.concatenate([first.outputs, second.outputs]))
    assert second.first_step == 2
    assert spike_steps(whole, 0) == [3]


def test_dead_neurons_read_back_as_zero_and_cost_nothing():
    g = Geometry(n_neurons=1024, n_axons=4, n_synapses=8, n_fanout=4)
    b = ChipBuilder(g)
    c = relay_core(b, 0, 0, 1)
    c.synapses(axon=0, target=0, w_mant=2)
    b.input(0, 0, 0, 0)
    e = Emulator(b.build())
    assert e.active.tolist() == [0]
    r = e.run(np.ones((3, 1)), probe=[0, 5])
    assert r.probes["spikes"][:, 0].tolist() == [[True, False]] * 3
    assert not e.read_state()["v"][0, 0, 1:].any()


def test_bad_inputs_are_rejected():
    b = ChipBuilder(Geometry(n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4))
    relay_core(b, 0, 0, 1).synapses(axon=0, target=0, w_mant=2)
    b.input([0, 1], 0, 0, 0)
    e = Emulator(b.build(), batch=2)
    with pytest.raises(ValueError, match=r"expected \[steps, batch=2, n_inputs=2\]"):
        e.run(np.zeros((5, 3, 2)))
    with pytest.raises(ValueError, match=r"inputs\[1, 0, 1\] = 2"):
        x = np.zeros((3, 2, 2), int)
        x[1, 0, 1] = 2
        e.run(x)
    with pytest.raises(ValueError, match="probe neuron 4 is outside"):
        e.run(steps=1, probe=[4])
    with pytest.raises(ValueError, match="cannot record 'w'"):
        e.run(steps=1, probe=[0], record=("w",))
    with pytest.raises(ValueError, match="steps = 2 but inputs cover 3"):
        e.run(np.zeros((3, 2, 2)), steps=2)
    assert e.step == 0   # nothing ran


@pytest.mark.parametrize("batch", [1, 3])
def test_sparse_propagation_in_event_blocks_is_exact(monkeypatch, batch):
    """The sparse tables are walked a block of events at a time (and compact
    tables shift int8 weights back): tiny blocks, compact tables and the
    dense product give identical runs."""
    from neuromesh.emulator import synapses
    rng = np.random.default_rng(11)
    g = Geometry(rows=1, cols=2, n_neurons=40, n_axons=80, n_synapses=2000, n_fanout=200,
                 n_groups=2, delay_slots=4)
    b = ChipBuilder(g)
    for x in (0, 1):
        c = b.core(x, 0)
        c.profile(0, du=500, dv=300, vth_mant=20, reset="subtract")
        c.group(0, w_shift=4)
        c.group(1, w_shift=9)
        c.neurons(range(40), profile=0, bias_mant=rng.integers(0, 40, 40), bias_exp=3)
        c.synapses(axon=rng.integers(0, 80, 1500), target=rng.integers(0, 40, 1500),
                   w_mant=rng.integers(-100, 100, 1500), delay=rng.integers(0, 3, 1500),
                   group=rng.integers(0, 2, 1500))
        c.route(np.arange(40), 0, 0, np.arange(40) + 40 * x)
        c.route(np.arange(40), 1, 0, np.arange(40) + 40 * x)
    b.core(0, 0).to_host(np.arange(40), np.arange(40))
    image = b.build()
    x = None
    runs = []
    for block, wide, kind in ((1 << 16, 1 << 22, "dense"), (1 << 16, 1 << 22, "sparse"),
                              (7, 0, "sparse"), (200, 1 << 22, "sparse")):
        monkeypatch.setattr(synapses, "EVENT_BLOCK", block)
        monkeypatch.setattr(synapses, "WIDE_TABLE_MAX", wide)
        emu = Emulator(image, batch=batch, propagation=kind)
        runs.append((emu.run(x, 40, probe=range(80), record=("spikes", "v")), emu.read_state()))
    (r0, s0) = runs[0]
    assert r0.outputs.any()
    for r, s in runs[1:]:
        np.testing.assert_array_equal(r.outputs, r0.outputs)
        np.testing.assert_array_equal(r.probes["v"], r0.probes["v"])
        np.testing.assert_array_equal(r.synaptic_events, r0.synaptic_events)
        np.testing.assert_array_equal(s["accum"], s0["accum"])


def test_dense_blocks_write_cleared_slots_and_add_to_written_ones(monkeypatch):
    """A dense block writes its sums into a ring slot whose columns are known
    to be zero and adds them where another block reaching the same cores
    wrote first: overlapping blocks, several delays, a preloaded ring and a
    run split in two give the scatter-add's results exactly. (The emulator
    tracks the slots of an int32 state: this small one is made int32.)"""
    from neuromesh.emulator import emulator, synapses
    monkeypatch.setattr(emulator, "SMALL_STATE", 0)
    rng = np.random.default_rng(5)
    g = Geometry(rows=1, cols=2, n_neurons=32, n_axons=96, n_synapses=3000, n_fanout=96,
                 delay_slots=4)
    b = ChipBuilder(g)
    for x in (0, 1):
        c = b.core(x, 0)
        c.profile(0, du=400, dv=200, vth_mant=12, reset="subtract")
        c.group(0, w_shift=5)
        c.neurons(range(32), profile=0, bias_mant=rng.integers(0, 20, 32), bias_exp=2)
        c.synapses(axon=rng.integers(0, 96, 2000), target=rng.integers(0, 32, 2000),
                   w_mant=rng.integers(-60, 90, 2000), delay=rng.integers(0, 3, 2000))
        for slot in range(4):
            c.accum(slot, rng.choice(32, 5, replace=False), rng.integers(-500, 500, 5))
        b.input(np.arange(16) + 16 * x, x, 0, 64 + np.arange(16))
    b.core(0, 0).route(np.arange(32), 1, 0, np.arange(32))          # core 0 -> core 1
    b.core(1, 0).route(np.arange(32), 0, 0, 32 + np.arange(32))     # core 1 -> both
    b.core(1, 0).route(np.arange(32), 1, 0, 32 + np.arange(32))
    b.core(1, 0).to_host(np.arange(32), np.arange(32))
    image = b.build()
    x = rng.random((60, 3, 32)) < 0.3
    calls = {"set": 0, "add": 0}

    def counting(name, key):
        f = getattr(synapses, name)

        def counted(*a):
            calls[key] += 1
            return f(*a)
        monkeypatch.setattr(synapses, name, counted)
    counting("_set_columns", "set")
    counting("_add_columns", "add")
    runs = []
    for kind in ("dense", "sparse"):
        emu = Emulator(image, batch=3, propagation=kind)
        r1 = emu.run(x[:41], probe=range(64), record=("spikes", "u", "v"))
        r2 = emu.run(x[41:], probe=range(64), record=("spikes", "u", "v"))
        runs.append((r1, r2, emu.read_state()))
        if kind == "dense":
            assert len(emu._blocks) == 3 and calls["set"] > 0 and calls["add"] > 0
    (a1, a2, sa), (b1, b2, sb) = runs
    for ra, rb in ((a1, b1), (a2, b2)):
        np.testing.assert_array_equal(ra.outputs, rb.outputs)
        for f in ("spikes", "u", "v"):
            np.testing.assert_array_equal(ra.probes[f], rb.probes[f])
    np.testing.assert_array_equal(sa["accum"], sb["accum"])
    assert a1.outputs.any() and a2.outputs.any()


def test_spike_counts_of_long_runs():
    """A neuron driven above its threshold by its bias fires every step: the
    per-run counts (kept in uint8 between flushes every 255 steps) count all
    of them, in a run of several flushes and across runs."""
    b = ChipBuilder(Geometry(n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4))
    c = relay_core(b, 0, 0, 2)
    c.neurons(0, profile=0, bias_mant=100)
    c.synapses(axon=0, target=1, w_mant=2)
    c.route(0, 0, 0, 0)
    emu = Emulator(b.build(), batch=2)
    r = emu.run(None, 600)
    assert r.neuron_spikes.tolist() == [1199, 1199]     # neuron 0, its relay one step later
    assert r.synaptic_events.tolist() == [600, 600]
    assert emu.run(None, 255).neuron_spikes.tolist() == [510, 510]
