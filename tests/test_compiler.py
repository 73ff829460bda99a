"""The Network API compiled onto chips: placement-independent results, close
agreement with the float reference, clear errors."""

import numpy as np
import pytest

from neuromesh.chip import ChipError, Geometry
from neuromesh.compiler import Network, NetworkError, compile_network
from neuromesh.compiler.drc import DesignRuleError, design_rule_check
from neuromesh.compiler.reference import simulate
from neuromesh.compiler.report import compile_report
from neuromesh.emulator import Emulator


def make_net(seed=0, recurrent=True):
    rng = np.random.default_rng(seed)
    net = Network(dt=1.0, method="euler")
    net.input("x", 40)
    net.population("h", 60, tau_mem=20.0, tau_syn=5.0, threshold=1.0)
    net.population("o", 10, kind="lif", tau_mem=10.0, threshold=0.5, reset="subtract",
                   refractory=1)
    net.connect("x", "h", rng.normal(0.15, 0.2, (40, 60)) * (rng.random((40, 60)) < 0.5))
    net.connect("h", "o", rng.normal(0.1, 0.3, (60, 10)), delay=1)
    if recurrent:
        net.connect("h", "h", -0.2 * (rng.random((60, 60)) < 0.1))
    net.output("o")
    net.output("h")
    return net


def run_chip(compiled, x, steps):
    r = Emulator(compiled.image, batch=x.shape[1]).run(compiled.chip_inputs({"x": x}, steps))
    return compiled.outputs(r)


def test_results_do_not_depend_on_partition_and_placement():
    net = make_net(1)
    x = np.random.default_rng(5).random((80, 3, 40)) < 0.15
    small = Geometry(rows=3, cols=3, n_neurons=16, n_axons=128, n_synapses=2048,
                     n_fanout=256, n_groups=2, delay_slots=4)
    big = Geometry(rows=1, cols=2, n_neurons=64, n_axons=128, n_synapses=4096,
                   n_fanout=256, n_groups=2, delay_slots=4)
    a, b = compile_network(net, small), compile_network(net, big)
    assert len(a.clusters) > len(b.clusters) >= 2
    ra, rb = run_chip(a, x, 80), run_chip(b, x, 80)
    for pop in ("h", "o"):
        np.testing.assert_array_equal(ra[pop], rb[pop])
    assert ra["h"].sum() > 100 and ra["o"].sum() > 10


def test_small_populations_share_a_core_when_cores_run_out():
    """h (60) and o (10) on one core: o's neurons start at 60, its profile and
    weight group follow h's; spikes and potentials equal the two-core chip."""
    net = make_net(1)
    x = np.random.default_rng(7).random((60, 2, 40)) < 0.15
    one = Geometry(rows=1, cols=1, n_neurons=128, n_axons=256, n_synapses=4096,
                   n_fanout=256, n_groups=3, delay_slots=4)
    two = Geometry(rows=1, cols=2, n_neurons=64, n_axons=128, n_synapses=4096,
                   n_fanout=256, n_groups=2, delay_slots=4)
    a, b = compile_network(net, one), compile_network(net, two)
    assert a.offsets == {"h[0]": 0, "o[0]": 60} and set(b.offsets.values()) == {0}
    np.testing.assert_array_equal(a.neurons("o"), 60 + np.arange(10))
    runs = []
    for c in (a, b):
        probe = np.concatenate([c.neurons("h"), c.neurons("o")])
        r = Emulator(c.image, batch=2).run(c.chip_inputs({"x": x}), probe=probe,
                                           record=("spikes", "u", "v"))
        runs.append((c.outputs(r), r.probes))
    for pop in ("h", "o"):
        np.testing.assert_array_equal(runs[0][0][pop], runs[1][0][pop])
    for k in ("spikes", "u", "v"):
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])
    assert runs[0][0]["o"].sum() > 10
    # (had o taken h's profile or weight group, its potentials would differ)
    assert "0,0: 10 at neuron 60" in compile_report(a.image)


def test_a_shared_input_takes_one_axon_on_a_shared_core():
    """x feeds both h and o: on one core its 40 channels take 40 axons, not 80
    (h also hears h and o hears h: 100 axons in all, the limit); the design
    rule check and the compiler agree, and the chip equals the two-core one."""
    net = make_net(2)
    net.connect("x", "o", np.random.default_rng(3).normal(0.1, 0.2, (40, 10)), name="skip")
    one = Geometry(rows=1, cols=1, n_neurons=128, n_axons=100, n_synapses=8192,
                   n_fanout=256, n_groups=4, delay_slots=4)
    assert design_rule_check(net, one) == []
    a = compile_network(net, one)
    assert set(a.positions.values()) == {(0, 0)}
    b = compile_network(net, Geometry(rows=1, cols=2, n_neurons=64, n_axons=128,
                                      n_synapses=8192, n_fanout=256, n_groups=3,
                                      delay_slots=4))
    x = np.random.default_rng(8).random((40, 2, 40)) < 0.15
    ra, rb = run_chip(a, x, 40), run_chip(b, x, 40)
    for pop in ("h", "o"):
        np.testing.assert_array_equal(ra[pop], rb[pop])
    # counting each cluster's sources separately (h 100, o 100) needs two cores
    from neuromesh.compiler.placement import pack
    assert [c.axons for c in a.clusters] == [100, 100]
    assert len(pack(a.clusters, one, check_cores=False)) == 2


def test_cores_violation_counts_cores_after_sharing():
    net = make_net(1)
    one = Geometry(rows=1, cols=1, n_neurons=64, n_axons=256, n_synapses=4096,
                   n_fanout=256, n_groups=3, delay_slots=4)     # 70 neurons: two cores
    assert [(v.resource, v.limit, v.value) for v in design_rule_check(net, one)] == [
        ("cores", 1, 2)]
    with pytest.raises(DesignRuleError, match="cores = 2 exceeds the limit 1"):
        compile_network(net, one)


def test_chip_tracks_the_float_reference():
    net = make_net(2, recurrent=False)
    x = np.random.default_rng(6).random((100, 4, 40)) < 0.15
    c = compile_network(net, Geometry(rows=2, cols=2, n_neurons=32, n_axons=64,
                                      n_synapses=2048, n_fanout=256, n_groups=2))
    chip = run_chip(c, x, 100)
    ref = simulate(net, {"x": x}, 100)
    for pop in ("h", "o"):
        n_chip, n_ref = chip[pop].sum(), ref[pop].sum()
        assert n_ref > 50
        assert abs(int(n_chip) - int(n_ref)) <= 0.05 * n_ref, (pop, n_chip, n_ref)
        # most spikes at the same step
        agree = (chip[pop] & ref[pop]).sum() / max(n_ref, 1)
        assert agree > 0.8, (pop, agree)


def test_quantization_and_placement_are_reported():
    c = compile_network(make_net(3), Geometry(rows=2, cols=2, n_neurons=32, n_axons=128,
                                              n_synapses=4096, n_fanout=256, n_groups=2))
    assert set(c.quantization) == {"x->h", "h->o", "h->h"}
    assert all(0 <= q[0] <= 15 for q in c.quantization.values())
    assert c.placement_cost <= c.naive_cost
    assert c.image.n_inputs == 40 and c.image.n_outputs == 70


def test_design_rule_check_lists_every_violation():
    net = make_net(4)
    net.connect("x", "o", np.full((40, 10), 0.1), delay=9, name="late")
    g = Geometry(rows=1, cols=1, n_neurons=16, n_axons=128, n_synapses=4096, n_fanout=256,
                 n_groups=1, delay_slots=4)
    with pytest.raises(DesignRuleError) as err:
        compile_network(net, g)
    found = {(v.layer, v.resource, v.limit, v.value) for v in err.value.violations}
    assert ("projection 'late'", "delay", 2, 9) in found
    assert ("population 'h'", "incoming projections (n_groups)", 1, 2) in found
    assert ("population 'o'", "incoming projections (n_groups)", 1, 2) in found
    assert any(v[1] == "cores" and v[2] == 1 and v[3] > 1 for v in found)
    assert "exceeds the limit 2 by 7" in str(err.value)
    assert design_rule_check(make_net(4), Geometry(rows=3, cols=3, n_neurons=16, n_axons=128,
                                                    n_synapses=2048, n_fanout=256,
                                                    n_groups=2)) == []


def test_network_errors_name_the_problem():
    net = make_net(4)
    assert isinstance(NetworkError("x"), ChipError)
    with pytest.raises(NetworkError, match="unknown source 'y'"):
        net.connect("y", "h", np.zeros((1, 60)))
    with pytest.raises(NetworkError, match=r"weights have shape \(3, 3\)"):
        net.connect("x", "h", np.zeros((3, 3)))


def test_rates_from_a_short_float_run_guide_placement():
    from neuromesh.compiler.lower import estimate_rates
    net = make_net(5, recurrent=False)
    x = np.random.default_rng(7).random((40, 2, 40)) < 0.2
    rates = estimate_rates(net, {"x": x})
    assert rates["h"].shape == (60,) and 0 < rates["h"].mean() < 1
    assert rates["host"] == pytest.approx(x.sum() / 40 / 2)
    g = Geometry(rows=3, cols=3, n_neurons=16, n_axons=128, n_synapses=2048, n_fanout=256,
                 n_groups=2)
    c = compile_network(net, g, sample_inputs={"x": x})
    assert c.placement_cost <= c.naive_cost


# -- the small things of issue 11: padding, the latency window, initial state, scale --

def test_simulate_pads_short_inputs_with_silence():
    net = Network(dt=1.0)
    net.input("x", 2)
    net.population("p", 2, kind="if", threshold=0.5)
    net.connect("x", "p", np.eye(2))
    out = simulate(net, {"x": np.ones((2, 2))}, 5)["p"]
    assert out.shape == (5, 1, 2)
    assert out[:, 0, 0].tolist() == [True, True, False, False, False]


def test_compiled_pads_and_reads_the_latency_window():
    net = Network(dt=1.0)
    net.input("x", 1)
    net.population("a", 1, kind="if", threshold=0.5)
    net.population("b", 1, kind="if", threshold=0.5)
    net.connect("x", "a", [[1.0]])
    net.connect("a", "b", [[1.0]])
    net.output("b")
    net.latency = {"a": 0, "b": 1}
    c = compile_network(net, Geometry(rows=1, cols=1, n_neurons=4, n_axons=4,
                                      n_synapses=8, n_fanout=4))
    assert c.lag == 1
    x = np.array([[1], [0], [1]], dtype=bool)
    padded = c.padded({"x": x})["x"]
    assert padded.tolist() == [[True], [False], [True], [False]]
    out = c.outputs(Emulator(c.image).run(c.chip_inputs({"x": padded})))["b"]
    np.testing.assert_array_equal(c.read_window(out, "b", 3)[:, 0], x)
    with pytest.raises(ValueError, match="need a run of 4, got 3"):
        c.read_window(out[:3], "b", 3)


def test_initial_state_and_a_fixed_scale_are_compiled():
    net = Network(dt=1.0)
    net.input("x", 2)
    net.population("p", 2, kind="cuba", du=2048, dv=2048, threshold=1.0, scale=2.0 ** 16,
                   u0=[0.5, -0.25], v0=[0.75, 0.0])
    net.connect("x", "p", np.eye(2) * 0.5)
    net.output("p")
    c = compile_network(net, Geometry(rows=1, cols=1, n_neurons=4, n_axons=4,
                                      n_synapses=8, n_fanout=4))
    assert c.scales["p"] == 2.0 ** 16
    e = Emulator(c.image)
    state = e.read_state()
    idx = c.neurons("p")
    assert state["u"].reshape(-1)[idx].tolist() == [2 ** 15, -(2 ** 14)]
    assert state["v"].reshape(-1)[idx].tolist() == [3 * 2 ** 14, 0]
    x = np.random.default_rng(0).random((8, 2)) < 0.5
    r = e.run(c.chip_inputs({"x": x}), probe=idx, record=("spikes", "v"))
    ref = simulate(net, {"x": x}, 8, record_v=True)
    np.testing.assert_array_equal(r.probes["spikes"][:, 0], ref["p"][:, 0])
    np.testing.assert_array_equal(r.probes["v"][:, 0] / 2.0 ** 16, ref["p.v"][:, 0])
    with pytest.raises(NetworkError, match="v0\\[0\\] x scale"):
        bad = Network(dt=1.0)
        bad.input("x", 1)
        bad.population("p", 1, kind="if", scale=2.0 ** 16, v0=200.0)
        bad.connect("x", "p", [[1.0]])
        compile_network(bad, Geometry(rows=1, cols=1, n_neurons=4, n_axons=4,
                                      n_synapses=8, n_fanout=4))
