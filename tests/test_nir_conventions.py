"""Biases and every spike/reset convention, from NIR to the chip, exactly.

Random small NIR graphs -- Affine layers with biases into IF, LIF and
CubaLIF populations, skip and recurrent connections -- under every reset
policy (zero or subtract, immediate or delayed a step), both threshold tests
(``>`` and Sinabs' ``>=``) and with or without a floor on ``v``:

* the importer's network run by the float reference equals the independent
  NIR evaluator (``nir_semantics.py``), spikes exactly and potentials to
  float precision, each population shifted by its latency;
* the compiled chip equals the evaluator too, spikes *and* potentials
  exactly. The graphs are drawn from a family the chip represents without
  rounding: weights and biases on a grid of 1/4, thresholds and floors on
  the chip's grids at the fixed scale 2**17 (``Population.scale``),
  retentions 0, 1/2 or 1, and 12 steps, so every decay is an exact halving
  in both. Equality is then a property of the whole pipeline (bias neurons,
  accumulator preload, latency delays, profile fields), not luck.
"""

import dataclasses

import nir
import numpy as np
import pytest
from nir_semantics import Evaluator

from neuromesh.chip import Geometry
from neuromesh.compiler import compile_network
from neuromesh.compiler.network import NetworkError
from neuromesh.compiler.nir_import import FRAMEWORKS, NIROptions, from_nir
from neuromesh.compiler.reference import simulate
from neuromesh.emulator import Emulator

STEPS = 12
SCALE = 2.0 ** 17
GEOM = Geometry(rows=2, cols=2, n_neurons=32, n_axons=64, n_synapses=1024, n_fanout=64,
                n_profiles=4, n_groups=8, delay_slots=8)

#: (reset, reset_delay, delayed_zero or "retest", threshold_ge, v_floor)
POLICIES = [(reset, delay, on, ge, floor) for reset in ("zero", "subtract")
            for delay, on in ((False, "sum"), (True, "sum"), (True, "stored"), (False, "retest"))
            if not (reset == "subtract" and on == "stored") and not (reset == "zero"
                                                                     and on == "retest")
            for ge in (False, True) for floor in (None, -0.5)]


def grid(rng, shape, lo, hi, step=0.25, density=0.7):
    """Random values on ``step`` in ``[lo, hi]``, ``density`` of them nonzero."""
    v = rng.integers(round(lo / step), round(hi / step) + 1, shape) * step
    return v * (rng.random(shape) < density)


def neuron(rng, kind, n):
    one = np.ones(n)
    th = one * float(rng.choice([0.75, 1.0, 1.5]))
    if kind == "IF":
        return nir.IF(r=one * float(rng.choice([0.5, 1.0])), v_threshold=th, v_reset=0 * one)
    if kind == "LIF":
        return nir.LIF(tau=one * float(rng.choice([1.0, 2.0])), r=one, v_leak=0 * one,
                       v_threshold=th, v_reset=0 * one)
    return nir.CubaLIF(tau_syn=one * float(rng.choice([1.0, 2.0])),
                       tau_mem=one * float(rng.choice([1.0, 2.0])), r=one * 2.0,
                       v_leak=0 * one, v_threshold=th, v_reset=0 * one, w_in=one)


def random_graph(seed):
    """Input -> (Affine -> neurons) x 1..3, a skip from the input to the last
    layer sometimes, a recurrent Affine on the first layer sometimes."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(3, 7))
    sizes = [int(rng.integers(3, 8)) for _ in range(int(rng.integers(1, 4)))]
    nodes = {"in": nir.Input(input_type={"input": np.array([n_in])})}
    edges, prev, width = [], "in", n_in
    for i, n in enumerate(sizes):
        nodes[f"fc{i}"] = nir.Affine(weight=grid(rng, (n, width), -1.0, 1.5),
                                     bias=grid(rng, (n,), -0.25, 0.5))
        nodes[f"n{i}"] = neuron(rng, str(rng.choice(["IF", "LIF", "CubaLIF"])), n)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"n{i}")]
        prev, width = f"n{i}", n
    if len(sizes) > 1 and rng.random() < 0.5:
        nodes["skip"] = nir.Affine(weight=grid(rng, (sizes[-1], n_in), -0.5, 1.0),
                                   bias=grid(rng, (sizes[-1],), 0.0, 0.25))
        edges += [("in", "skip"), ("skip", f"n{len(sizes) - 1}")]
    if rng.random() < 0.5:
        nodes["rec"] = nir.Affine(weight=grid(rng, (sizes[0], sizes[0]), -0.5, 0.5),
                                  bias=grid(rng, (sizes[0],), 0.0, 0.25))
        edges += [("n0", "rec"), ("rec", "n0")]
    nodes["out"] = nir.Output(output_type={"output": np.array([width])})
    edges.append((prev, "out"))
    x = rng.random((STEPS, n_in)) < 0.4
    return nir.NIRGraph(nodes=nodes, edges=edges), {"in": x.astype(np.float64)}


def evaluate(graph, x, options):
    ev = Evaluator(graph, options.dt, reset=options.reset, reset_delay=options.reset_delay,
                   delayed_zero=options.delayed_zero, subtract_retest=options.subtract_retest,
                   threshold_ge=options.threshold_ge, v_floor=options.v_floor)
    return ev.run(x, STEPS)


def in_range(result):
    """Whether the evaluated potentials stay where the fixed scale keeps the
    chip exact (|v| < 60 of 64 float units of the 24-bit state)."""
    return all(np.abs(v).max() < 60 for k, v in result.items() if k.endswith(".v"))


def cases(n):
    """``n`` random graphs per policy whose potentials stay in range."""
    out = []
    for p, policy in enumerate(POLICIES):
        seed, found = 1000 * p, 0
        while found < n:
            graph, x = random_graph(seed)
            retest = policy[2] == "retest"
            options = NIROptions(dt=1.0, reset=policy[0], reset_delay=policy[1],
                                 delayed_zero="sum" if retest else policy[2],
                                 subtract_retest=retest, threshold_ge=policy[3],
                                 v_floor=policy[4])
            ev = evaluate(graph, x, options)
            spikes = sum(int(v.sum()) for k, v in ev.items() if k.startswith("n")
                         and "." not in k)
            if in_range(ev) and spikes > 0:
                out.append(pytest.param(graph, x, options, ev, id=f"{'-'.join(map(str, policy))}"
                                                                   f"-{seed}"))
                found += 1
            seed += 1
    return out


@pytest.mark.parametrize("graph, x, options, ev", cases(3))
def test_random_graph_reference_and_chip_equal_the_evaluator(graph, x, options, ev):
    net = from_nir(graph, options)
    for name, pop in list(net.populations.items()):
        net.populations[name] = dataclasses.replace(pop, scale=SCALE)
    lag = max(net.latency.values())
    padded = {"in": np.concatenate([x["in"], np.zeros((lag, x["in"].shape[1]))])}
    ref = simulate(net, padded, STEPS + lag, record_v=True)
    compiled = compile_network(net, GEOM)
    probe = np.concatenate([compiled.neurons(p) for p in net.populations])
    r = Emulator(compiled.image).run(compiled.chip_inputs(padded), probe=probe,
                                     record=("spikes", "v"))
    first = 0
    spikes = 0
    for name, pop in net.populations.items():
        lat = net.latency[name]
        want_s = ev[name].reshape(STEPS, -1) > 0
        want_v = ev[name + ".v"].reshape(STEPS, -1)
        np.testing.assert_array_equal(ref[name][lat:lat + STEPS, 0], want_s, err_msg=name)
        np.testing.assert_allclose(ref[name + ".v"][lat:lat + STEPS, 0], want_v, rtol=0,
                                   atol=1e-9, err_msg=name)
        chip = slice(first, first + pop.size)
        np.testing.assert_array_equal(r.probes["spikes"][lat:lat + STEPS, 0, chip], want_s,
                                      err_msg=f"chip {name}")
        np.testing.assert_array_equal(r.probes["v"][lat:lat + STEPS, 0, chip] / SCALE, want_v,
                                      err_msg=f"chip {name}")
        first += pop.size
        spikes += int(want_s.sum())
    assert spikes > 0


def test_the_random_family_exercises_what_it_claims():
    """Always-on biases into every kind, bias neurons on several cores, the
    ``>=`` test deciding spikes, the floor reached, delayed resets firing."""
    kinds, ge_decides, floor_hit, delayed_spikes, bias_cores = set(), 0, 0, 0, 0
    for param in cases(3):
        graph, x, options, ev = param.values
        net = from_nir(graph, options)
        kinds |= {net.populations[p.dst].kind for p in net.projections if p.src == "bias"}
        spikes = sum(int(ev[n].sum()) for n in net.populations)
        if options.threshold_ge:
            strict = evaluate(graph, x, dataclasses.replace(options, threshold_ge=False))
            ge_decides += int(spikes != sum(int(strict[n].sum()) for n in net.populations))
        if options.v_floor is not None:
            floor_hit += sum(int((ev[n + ".v"] == options.v_floor).sum())
                             for n in net.populations)
        if options.reset_delay:
            delayed_spikes += spikes
        for name, pop in list(net.populations.items()):
            net.populations[name] = dataclasses.replace(pop, scale=SCALE)
        bias_cores += len(compile_network(net, GEOM).bias_neurons)
    assert kinds == {"cuba", "lif", "if"}
    assert ge_decides > 3 and floor_hit > 0 and delayed_spikes > 0
    assert bias_cores > len(POLICIES)


# -- biases ------------------------------------------------------------------------

def two_layer(kind, bias=0.25):
    rng = np.random.default_rng(5)
    n = {"in": nir.Input(input_type={"input": np.array([6])}),
         "fc1": nir.Affine(weight=grid(rng, (5, 6), -0.5, 1.0), bias=np.full(5, bias)),
         "n1": neuron(rng, kind, 5),
         "fc2": nir.Affine(weight=grid(rng, (4, 5), -0.5, 1.0), bias=np.full(4, bias)),
         "n2": neuron(rng, kind, 4),
         "out": nir.Output(output_type={"output": np.array([4])})}
    e = [("in", "fc1"), ("fc1", "n1"), ("n1", "fc2"), ("fc2", "n2"), ("n2", "out")]
    return nir.NIRGraph(nodes=n, edges=e)


def test_bias_into_cubalif_is_an_always_on_projection_gated_by_latency():
    net = from_nir(two_layer("CubaLIF"), NIROptions(dt=1.0))
    assert net.inputs["bias"].always_on and list(net.host_inputs()) == ["in"]
    for pop, lat in (("n1", 0), ("n2", 1)):
        (p,) = [p for p in net.projections if p.src == "bias" and p.dst == pop]
        assert set(p.delay) == {lat}               # starts when the population does
        assert not net.populations[pop].bias_array().any()
    # a LIF bias at latency 0 stays the v bias; at latency 1 it is gated too
    net = from_nir(two_layer("LIF"), NIROptions(dt=1.0))
    assert net.populations["n1"].bias_array().any()
    assert [p.dst for p in net.projections if p.src == "bias"] == ["n2"]


def test_bias_neuron_per_core_fires_every_step_and_is_counted():
    net = from_nir(two_layer("CubaLIF"), NIROptions(dt=1.0))
    compiled = compile_network(net, GEOM)
    bias = compiled.bias_neurons
    assert len(bias) == 2                          # n1 and n2 sit on two cores
    assert len(compiled.image.meta["compiler"]["bias_neurons"]) == 2     # reported
    probe = [(y * GEOM.cols + x) * GEOM.n_neurons + k for (x, y), k in bias.items()]
    r = Emulator(compiled.image).run(np.zeros((5, 1, 6), bool), probe=probe)
    assert r.probes["spikes"].all()               # from step 0, every step
    # One core only: both populations and one bias neuron share it.
    one = compile_network(net, Geometry(rows=1, cols=1, n_neurons=32, n_axons=64,
                                        n_synapses=1024, n_fanout=64, n_profiles=4,
                                        n_groups=8, delay_slots=8))
    assert len(one.bias_neurons) == 1
    x = np.random.default_rng(0).random((10, 1, 6)) < 0.5
    a = compiled.outputs(Emulator(compiled.image).run(compiled.chip_inputs({"in": x})))
    b = one.outputs(Emulator(one.image).run(one.chip_inputs({"in": x})))
    np.testing.assert_array_equal(a["n2"], b["n2"])


def test_bias_source_can_be_refused_naming_every_node():
    with pytest.raises(NetworkError, match=r"'fc1', 'fc2'.*bias_source=False"):
        from_nir(two_layer("CubaLIF"), NIROptions(dt=1.0, bias_source=False))
    # LIF: fc1's bias is the v bias (latency 0); only fc2's needs the source
    with pytest.raises(NetworkError, match=r"bias of 'fc2' must"):
        from_nir(two_layer("LIF"), NIROptions(dt=1.0, bias_source=False))


def test_design_rule_check_counts_the_bias_neuron():
    from neuromesh.compiler.drc import design_rule_check
    net = from_nir(two_layer("CubaLIF"), NIROptions(dt=1.0))
    # n1 (5) + n2 (4) + the bias neuron = 10 neurons on one core
    tight = Geometry(rows=1, cols=1, n_neurons=10, n_axons=64, n_synapses=1024, n_fanout=64,
                     n_profiles=4, n_groups=8, delay_slots=8)
    assert design_rule_check(net, tight) == []
    compile_network(net, tight)
    small = dataclasses.replace(tight, n_neurons=9)
    assert [v.resource for v in design_rule_check(net, small)] == ["cores"]


# -- Sinabs: >=, floor, several spikes per step ----------------------------------------

def if_graph(seed=3, n_in=5, n=6):
    rng = np.random.default_rng(seed)
    one = np.ones(n)
    nodes = {"in": nir.Input(input_type={"input": np.array([n_in])}),
             "fc": nir.Linear(weight=grid(rng, (n, n_in), 0.0, 2.5, density=1.0)),
             "iaf": nir.IF(r=one, v_threshold=one, v_reset=0 * one),
             "out": nir.Output(output_type={"output": np.array([n])})}
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "iaf"), ("iaf", "out")])


def test_sinabs_multi_spike_is_refused_unless_approximated():
    with pytest.raises(NetworkError, match="several spikes in one step"):
        from_nir(if_graph(), FRAMEWORKS["sinabs"])
    net = from_nir(if_graph(), dataclasses.replace(FRAMEWORKS["sinabs"],
                                                   approximate_multi_spike=True))
    pop = net.populations["iaf"]
    assert pop.threshold_ge and pop.reset == "subtract" and not pop.reset_delay


def test_multi_spike_approximation_keeps_spike_counts_of_if_neurons():
    """The documented approximation: with subtract reset and no leak, the
    chip fires once per step and keeps the rest of the charge, so after
    enough silent steps every neuron has fired exactly as often as the
    multi-spike source (which fires floor(v / th) times in one step)."""
    graph = if_graph()
    options = dataclasses.replace(FRAMEWORKS["sinabs"], approximate_multi_spike=True)
    x = np.zeros((80, 5))
    x[:6] = np.random.default_rng(1).random((6, 5)) < 0.8
    multi = Evaluator(graph, 1.0, reset="subtract", threshold_ge=True,
                      multi_spike=True).run({"in": x}, 80)["iaf"]
    assert multi.max() > 1                         # several spikes in one step happen
    net = from_nir(graph, options)
    compiled = compile_network(net, GEOM)
    chip = compiled.outputs(Emulator(compiled.image).run(compiled.chip_inputs({"in": x})))
    np.testing.assert_array_equal(chip["iaf"][:, 0].sum(axis=0), multi.sum(axis=0))
    assert (chip["iaf"][:, 0] != (multi > 0)).any()     # ... but spread over time


def test_floor_is_exact_at_minus_threshold():
    """Sinabs' usual ``min_v_mem = -threshold``: the compiler picks a scale at
    which the floor is on the chip's grid, so it is exactly -vth."""
    opts = NIROptions(dt=1.0, reset="subtract", threshold_ge=True, v_floor=-1.0)
    net = from_nir(if_graph(), opts)
    compiled = compile_network(net, GEOM)
    from neuromesh.chip import Region
    from neuromesh.config import decode
    prof = decode(compiled.image)[Region.PROFILE]
    (k,) = {int(c) for c in np.flatnonzero(prof["floor_mant"].any(axis=1))}
    row = prof["floor_mant"][k].argmax()
    assert prof["floor_mant"][k, row] << 14 == prof["vth_mant"][k, row] << 6


# -- snnTorch preset --------------------------------------------------------------------

def test_snntorch_preset_is_snntorch_defaults():
    p = FRAMEWORKS["snntorch"]
    assert (p.reset, p.reset_delay, p.threshold_ge, p.method) == ("subtract", True, False,
                                                                   "euler")
    net = from_nir(two_layer("LIF"), p)
    assert all(q.reset_delay and q.reset == "subtract" and q.refractory == 0
               for q in net.populations.values())
    assert "subtract reset delayed a step" in p.describe()


def test_compile_command_says_which_conventions_it_applied(tmp_path, capsys):
    from neuromesh.cli import main
    model, image = tmp_path / "m.nir", tmp_path / "m.nmi"
    nir.write(model, two_layer("CubaLIF"))
    geometry = ["--geometry", "2x2,n_neurons=32,n_axons=64,n_synapses=1024"]
    assert main(["compile", str(model), "-o", str(image), "--framework", "snntorch",
                 "--dt", "1", *geometry]) == 0
    out = capsys.readouterr().out
    assert ("conventions: dt = 1, euler decays, subtract reset delayed a step, "
            "v > threshold (snntorch preset with --dt)") in out
    assert "bias neurons (always-on source" in out
    assert "subtract reset, delayed a step, v > threshold" in out      # per population
    assert main(["compile", str(model), "-o", str(image), "--framework", "snntorch",
                 "--no-reset-delay", "--dt", "1", *geometry]) == 0
    assert ("conventions: dt = 1, euler decays, subtract reset (re-tested as snnTorch 1.0), "
            "v > threshold (snntorch preset with --dt, --no-reset-delay)"
            ) in capsys.readouterr().out
    nir.write(model, if_graph())
    assert main(["compile", str(model), "-o", str(image), "--framework", "sinabs",
                 *geometry]) == 2
    assert "several spikes in one step" in capsys.readouterr().err
    assert main(["compile", str(model), "-o", str(image), "--framework", "sinabs",
                 "--multi-spike", "approximate", "--v-floor", "-1", *geometry]) == 0
    assert ("conventions: dt = 1, exact decays, subtract reset, v >= threshold, v floor -1, "
            "multi-spike approximated by one spike per step (sinabs preset with "
            "--v-floor, --approximate-multi-spike)") in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        main(["compile", str(model), "-o", str(image), "--framework", "snntorch", "--dt", "0"])
    assert stop.value.code == 2
    assert "--dt: '0' must be a finite number > 0" in capsys.readouterr().err
