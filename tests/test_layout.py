"""The design-rule check and the compiler share one exact counting
(compiler.drc.layout): what the check accepts compiles, the clusters' needs
are what the image uses, the cores it counts are the cores the compiler
uses, and the cut is the fewest contiguous clusters."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuromesh.chip import Geometry
from neuromesh.compiler import Network, compile_network
from neuromesh.compiler.drc import DesignRuleError, NetworkNeeds, design_rule_check, layout
from neuromesh.compiler.placement import (
    NeuronNeeds,
    PopulationNeeds,
    cut,
    max_neurons_per_core,
    partition,
)
from neuromesh.compiler.report import utilization


def weights(rng, n):
    """Magnitudes within a factor 5 (none rounds to zero), either sign."""
    return rng.uniform(0.2, 1.0, n) * rng.choice([-1.0, 1.0], n)


def random_network(seed, n_pops, bias, recurrent):
    rng = np.random.default_rng(seed)
    net = Network()
    net.input("x", int(rng.integers(1, 30)))
    if bias:
        net.input("one", 1, always_on=True)
    names = []
    for i in range(n_pops):
        name = f"p{i}"
        net.population(name, int(rng.integers(1, 40)), kind=["cuba", "lif"][i % 2],
                       threshold=1.0)
        names.append(name)
    sources = ["x"]
    for name in names:
        n = net.populations[name].size
        candidates = sources + ([name] if recurrent else [])
        for src in candidates:
            if src != "x" and rng.random() < 0.4:
                continue
            n_src = (net.inputs.get(src) or net.populations[src]).size
            k = int(rng.integers(1, 4 * n + 1))
            net.connect(src, name, (rng.integers(0, n_src, k), rng.integers(0, n, k),
                                    weights(rng, k)), delay=int(rng.integers(0, 2)),
                        name=f"{src}->{name}")
        if bias and rng.random() < 0.5:
            net.connect("one", name, (np.zeros(n, int), np.arange(n), weights(rng, n)),
                        name=f"bias->{name}")
        sources.append(name)
    for name in names:
        if rng.random() < 0.5 or name == names[-1]:
            net.output(name)
    return net


geometries = st.builds(
    Geometry, rows=st.integers(1, 3), cols=st.integers(1, 4), n_neurons=st.integers(4, 64),
    n_axons=st.integers(8, 128), n_synapses=st.integers(32, 2048), n_fanout=st.integers(8, 128),
    n_profiles=st.integers(1, 4), n_groups=st.integers(2, 4), delay_slots=st.just(4))


def core_index(compiled, cluster):
    x, y = compiled.positions[cluster.name]
    return y * compiled.image.geometry.cols + x


def check_image_against_counts(net, g, compiled):
    """The image uses what the clusters were charged: exactly on cores of
    their own (no weight rounds to zero here), within it on shared ones."""
    use = {k: v[0] for k, v in utilization(compiled.image).items()}
    by_core = {}
    for c in compiled.clusters:
        by_core.setdefault(core_index(compiled, c), []).append(c)
    # (a fan-out entry is per target core: where targets share a core, fewer)
    packed = any(len(members) > 1 for members in by_core.values())
    for core, members in by_core.items():
        if len(members) == 1:
            (c,) = members
            assert (use["neurons"][core], use["axons"][core], use["synapses"][core]) == \
                (c.neurons, c.axons, c.synapses)
            if packed:
                assert use["fan-out"][core] <= c.fanout
            else:
                assert use["fan-out"][core] == c.fanout
        else:
            bias = max(c.bias for c in members)
            assert use["neurons"][core] == sum(c.neurons - c.bias for c in members) + bias
            assert use["synapses"][core] == sum(c.synapses for c in members)
            assert use["fan-out"][core] <= sum(c.fanout - c.bias for c in members) + bias
            assert use["axons"][core] <= g.n_axons


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n_pops=st.integers(1, 3), bias=st.booleans(),
       recurrent=st.booleans(), g=geometries)
def test_what_the_check_accepts_compiles_and_uses_what_it_counted(seed, n_pops, bias,
                                                                   recurrent, g):
    net = random_network(seed, n_pops, bias, recurrent)
    violations = design_rule_check(net, g)
    if violations:
        with pytest.raises(DesignRuleError):
            compile_network(net, g)
        # the cores it counts are the cores the compiler needs
        cores = [v for v in violations if v.resource == "cores"]
        if len(violations) == 1 and cores and not cores[0].note.startswith("at least") \
                and cores[0].value <= 16:
            wider = Geometry(**{**g.as_dict(), "rows": 1, "cols": cores[0].value})
            assert design_rule_check(net, wider) == []
            compiled = compile_network(net, wider)
            assert len(set(compiled.positions.values())) == cores[0].value
        return
    compiled = compile_network(net, g)
    lay = layout(net, g)
    assert [c.name for c in compiled.clusters] == [c.name for c in lay.clusters]
    assert len(set(compiled.positions.values())) == len(lay.cores) <= g.n_cores
    check_image_against_counts(net, g, compiled)


small_meshes = st.builds(
    Geometry, rows=st.just(1), cols=st.integers(1, 2), n_neurons=st.integers(40, 128),
    n_axons=st.integers(32, 256), n_synapses=st.just(2048), n_fanout=st.integers(64, 256),
    n_profiles=st.integers(3, 8), n_groups=st.integers(4, 8), delay_slots=st.just(4))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n_pops=st.integers(2, 4), bias=st.booleans(),
       recurrent=st.booleans(), g=small_meshes)
def test_clusters_the_check_packs_onto_shared_cores_compile(seed, n_pops, bias, recurrent, g):
    """Several populations on one or two cores: the check packs them as the
    compiler does; what it accepts compiles into those cores."""
    net = random_network(seed, n_pops, bias, recurrent)
    lay = layout(net, g)
    if lay.violations:
        assert all(v.resource == "cores" for v in lay.violations) or \
            any("one neuron" in v.layer or "n_groups" in v.resource for v in lay.violations)
        return
    compiled = compile_network(net, g)
    assert len(set(compiled.positions.values())) == len(lay.cores)
    check_image_against_counts(net, g, compiled)


def test_a_recurrent_population_is_charged_its_exact_fan_out():
    """Each neuron of a recurrent population takes one fan-out entry per
    cluster of its own population it reaches (found by iterating the cut);
    every core's image has exactly the counted entries, axons and synapses."""
    net = random_network(11, 2, bias=True, recurrent=True)
    rng = np.random.default_rng(2)
    net.population("r", 120, threshold=1.0)
    post = np.repeat(np.arange(120), 12)
    net.connect("r", "r", (rng.integers(0, 120, post.size), post, weights(rng, post.size)))
    net.connect("x", "r", (rng.integers(0, net.inputs["x"].size, 120), np.arange(120),
                           weights(rng, 120)))
    net.output("r")
    g = Geometry(rows=4, cols=4, n_neurons=64, n_axons=128, n_synapses=1024, n_fanout=160,
                 n_profiles=4, n_groups=4, delay_slots=4)
    lay = layout(net, g)
    assert lay.violations == []
    mine = [c for c in lay.clusters if c.population == "r"]
    assert len(mine) > 1
    # neuron i reaches one entry per distinct cluster of r among its targets, + host
    bounds = [c.start for c in mine[1:]]
    f = np.zeros(120, int)
    p = next(p for p in net.projections if p.name == "r->r")
    for i in range(120):
        f[i] = len(set(np.searchsorted(bounds, p.post[p.pre == i], side="right"))) + 1
    np.testing.assert_array_equal(lay.fanout["r"], f)
    assert [c.fanout for c in mine] == [int(f[c.start:c.stop].sum()) for c in mine]
    compiled = compile_network(net, g)
    check_image_against_counts(net, g, compiled)


def fewest_contiguous(needs: NeuronNeeds, g: Geometry) -> int:
    """Brute force: the fewest contiguous ranges that each fit ``g``."""
    n = needs.size
    best = [0] + [n + 1] * n
    limits = {r: getattr(g, a) for r, a in (("neurons", "n_neurons"), ("axons", "n_axons"),
                                            ("synapses", "n_synapses"),
                                            ("fanout", "n_fanout"))}
    for e in range(1, n + 1):
        for s in range(e):
            d = needs.range_needs(s, e)
            if all(d[r] <= v for r, v in limits.items()):
                best[e] = min(best[e], best[s] + 1)
    return best[n]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 30), n_src=st.integers(1, 25),
       g=geometries)
def test_the_cut_is_the_fewest_contiguous_clusters(seed, n, n_src, g):
    rng = np.random.default_rng(seed)
    net = Network()
    net.input("x", n_src)
    net.population("p", n)
    k = int(rng.integers(1, 6 * n))
    net.connect("x", "p", (rng.integers(0, n_src, k), rng.integers(0, n, k), weights(rng, k)))
    net.output("p")
    needs = NetworkNeeds(net).neuron_needs("p", np.ones(n, int))
    one = needs.one_neuron()
    if one["axons"] > g.n_axons or one["synapses"] > g.n_synapses:
        return
    clusters, _ = cut(needs, g)
    assert len(clusters) == fewest_contiguous(needs, g)
    assert clusters[0].start == 0 and clusters[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(clusters, clusters[1:]))
    for c in clusters:
        c.check(g)
        assert c.axons == len(set(net.projections[0].pre[
            (net.projections[0].post >= c.start) & (net.projections[0].post < c.stop)]))


def conservative_cores(net, g):
    """The clusters the per-population bounds the check used before counted:
    the largest in-degree for every neuron, axons = min(sources, k x fan_in),
    fan-out = every cluster of every target population."""
    def needs(name, fanout):
        pop = net.populations[name]
        count = np.zeros(pop.size, int)
        sources = 0
        for p in net.projections:
            if p.dst == name:
                np.add.at(count, p.post, 1)
                sources += np.unique(p.pre).size
        fan_in = int(count.max())
        return PopulationNeeds(name, pop.size, fan_in=fan_in, n_sources=sources, fanout=fanout)
    k = {n: max_neurons_per_core(needs(n, 1), g)[0] for n in net.populations}
    fanout = {n: sum(-(-net.populations[p.dst].size // k[p.dst])
                     for p in net.projections if p.src == n) + (n in net.outputs)
              for n in net.populations}
    return len(partition([needs(n, max(f, 1)) for n, f in fanout.items()], g,
                         check_cores=False))


def test_a_recurrent_net_the_bounds_refused_fits():
    """2,000 neurons, 50 random recurrent inputs each: a core of 26 neurons
    hears at most 1,024 distinct sources, so 78 clusters (+1 for the
    readout) fit a 9x9 mesh; the old per-population bounds (every 26
    neurons charged min(2,100 sources, 26 x 54 synapses) axons, every neuron
    one fan-out entry per cluster of the population) claimed 224 cores."""
    rng = np.random.default_rng(0)
    n, fan_in = 2000, 50
    net = Network()
    net.input("x", 100)
    net.population("h", n, threshold=1.0)
    net.population("o", 10, threshold=1.0)
    post = np.repeat(np.arange(n), 4)
    net.connect("x", "h", (rng.integers(0, 100, post.size), post, weights(rng, post.size)))
    post = np.repeat(np.arange(n), fan_in)
    pre = rng.integers(0, n - 1, post.size)
    pre += pre >= post
    net.connect("h", "h", (pre, post, 0.1 * weights(rng, post.size)))
    post = np.repeat(np.arange(10), 100)
    net.connect("h", "o", (rng.integers(0, n, post.size), post, weights(rng, post.size)))
    net.output("o")
    g = Geometry(rows=9, cols=9, n_neurons=256, n_axons=1024, n_synapses=8192, n_fanout=1024,
                 n_profiles=2, n_groups=2, delay_slots=4)
    assert conservative_cores(net, g) == 224
    assert design_rule_check(net, g) == []
    compiled = compile_network(net, g)
    assert len(compiled.clusters) == 79
    check_image_against_counts(net, g, compiled)
    # and one core fewer is refused, with the count
    small = Geometry(**{**g.as_dict(), "rows": 6, "cols": 13})
    (v,) = design_rule_check(net, small)
    assert (v.resource, v.limit, v.value) == ("cores", 78, 79)


def test_a_network_far_too_big_is_refused_with_numbers_without_packing():
    """When the clusters' summed needs already fill more cores than the
    mesh has, the check says so (a lower bound) instead of packing."""
    rng = np.random.default_rng(1)
    net = Network()
    net.input("x", 10)
    net.population("h", 3000, threshold=1.0)
    post = np.repeat(np.arange(3000), 20)
    net.connect("x", "h", (rng.integers(0, 10, post.size), post, weights(rng, post.size)))
    g = Geometry(rows=2, cols=2, n_neurons=100, n_axons=64, n_synapses=4096, n_fanout=64)
    (v,) = design_rule_check(net, g)
    assert (v.layer, v.resource, v.limit, v.value) == ("network", "cores", 4, 30)
    assert "at least: the 30 clusters need 3000 neurons in all, 100 per core" in str(v)
    assert "h 30 (<= 100 neurons/core, n_neurons)" in str(v)


def test_one_neuron_over_a_core_names_the_resource():
    net = Network()
    net.input("x", 50)
    net.population("h", 3)
    net.connect("x", "h", np.full((50, 3), 0.5))
    g = Geometry(n_axons=40, n_synapses=45)
    found = {(v.layer, v.resource, v.limit, v.value) for v in design_rule_check(net, g)}
    assert found == {("population 'h' (one neuron)", "n_axons", 40, 50),
                     ("population 'h' (one neuron)", "n_synapses", 45, 50)}
