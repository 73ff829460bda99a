"""Partitioning into cores and placement on the mesh (neuromesh.compiler.placement).

Costs are packet-hops per step: a packet between cores (xa, ya) and (xb, yb)
travels |xa - xb| + |ya - yb| hops, host traffic of core (x, y) travels
x + y + 1 hops. The small cases below have costs computed by hand.
"""

from itertools import permutations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuromesh import ChipError, Geometry
from neuromesh.compiler.placement import (
    HOST,
    Cluster,
    NeuronNeeds,
    Placement,
    PlacementError,
    PopulationNeeds,
    Traffic,
    cut,
    group_traffic,
    hops,
    host_hops,
    max_neurons_per_core,
    naive_placement,
    pack,
    partition,
    place,
    placement_cost,
)


def unit_clusters(n):
    """n one-neuron clusters named c0, c1, ..."""
    return [Cluster(f"c{i}", f"p{i}", 0, 1, 1) for i in range(n)]


def brute_force_optimum(clusters, traffic, geometry):
    cores = [(k % geometry.cols, k // geometry.cols) for k in range(geometry.n_cores)]
    return min(placement_cost({c.name: xy for c, xy in zip(clusters, perm)}, traffic)
               for perm in permutations(cores, len(clusters)))


# --- Cost ---------------------------------------------------------------------------

def test_hops_and_host_hops():
    assert hops((0, 0), (2, 1)) == 3
    assert hops((3, 1), (1, 2)) == 3
    assert host_hops((0, 0)) == 1
    assert host_hops((2, 3)) == 6


def test_chain_on_1x3_costs_by_hand():
    # a -> b (2/step), b -> c (3/step), host -> a (2/step), c -> host (1/step)
    g = Geometry(rows=1, cols=3)
    cl = unit_clusters(3)
    a, b, c = (x.name for x in cl)
    t = Traffic.from_edges(cl, [(a, b, 2), (b, c, 3), (HOST, a, 2), (c, HOST, 1)])
    # row-major a,b,c: 2*1 + 3*1 + 2*(0+0+1) + 1*(2+0+1) = 10
    assert placement_cost(naive_placement(cl, g), t) == 10
    # c,b,a: 2*1 + 3*1 + 2*3 + 1*1 = 12;  a,c,b: 2*2 + 3*1 + 2*1 + 1*2 = 11
    assert placement_cost({c: (0, 0), b: (1, 0), a: (2, 0)}, t) == 12
    assert placement_cost({a: (0, 0), c: (1, 0), b: (2, 0)}, t) == 11
    p = place(cl, t, g)
    assert p.positions == {a: (0, 0), b: (1, 0), c: (2, 0)}     # the unique optimum
    assert p.cost == p.naive_cost == 10
    assert brute_force_optimum(cl, t, g) == 10


def test_heavy_first_last_pair_beats_row_major_on_3x3():
    # only traffic: cluster 0 -> cluster 2, 10/step. Row-major puts them 2 hops apart.
    g = Geometry(rows=3, cols=3)
    cl = unit_clusters(3)
    t = Traffic.from_edges(cl, [("c0", "c2", 10)])
    p = place(cl, t, g)
    assert p.naive_cost == 20
    assert p.cost == 10 < p.naive_cost
    assert hops(p.core_of("c0"), p.core_of(cl[2])) == 1


def test_heavy_diagonal_pair_on_2x2_reaches_optimum():
    # 0-3: 10/step, chain 0-1, 1-2, 2-3: 1/step each. On a 2x2 mesh each core has
    # one diagonal partner (2 hops); the cost is 13 + the weights of the two
    # diagonal pairs. Row-major makes {0,3} and {1,2} diagonal: 13 + 10 + 1 = 24;
    # the optimum makes {0,2} and {1,3} diagonal: 13.
    g = Geometry(rows=2, cols=2)
    cl = unit_clusters(4)
    t = Traffic.from_edges(cl, [("c0", "c3", 10), ("c0", "c1", 1), ("c1", "c2", 1),
                                ("c2", "c3", 1)])
    p = place(cl, t, g)
    assert p.naive_cost == 24
    assert p.cost == 13 == brute_force_optimum(cl, t, g)
    assert hops(p.core_of("c0"), p.core_of("c3")) == 1
    assert 0.45 < p.saving < 0.46


def test_host_heavy_clusters_end_near_host_port():
    g = Geometry(rows=3, cols=3)
    cl = unit_clusters(4)
    # the last cluster talks only to the host, 5 in + 5 out per step
    t = Traffic.from_edges(cl, [(HOST, "c3", 5), ("c3", HOST, 5), ("c0", "c1", 1)])
    p = place(cl, t, g)
    assert p.core_of("c3") == (0, 0)
    assert p.naive_cost == 10 * 2 + 1       # row-major: c3 on (0,1), 2 host hops
    assert p.cost == 10 * 1 + 1
    # two host clusters: the heavier one on (0,0), the other next to it
    t = Traffic.from_edges(cl, [(HOST, "c2", 4), ("c3", HOST, 10)])
    p = place(cl, t, g)
    assert p.core_of("c3") == (0, 0)
    assert p.core_of("c2") in {(1, 0), (0, 1)}
    assert p.cost == 10 * 1 + 4 * 2


def test_self_traffic_costs_nothing_and_placement_cost_checks():
    g = Geometry(rows=1, cols=2)
    cl = unit_clusters(2)
    t = Traffic.from_edges(cl, [("c0", "c0", 7), ("c1", "c0", 1)])
    assert placement_cost({"c0": (0, 0), "c1": (1, 0)}, t, g) == 1
    with pytest.raises(PlacementError, match=r"'c0' and 'c1' share core \(0,0\)"):
        placement_cost({"c0": (0, 0), "c1": (0, 0)}, t, g)
    with pytest.raises(PlacementError, match=r"'c1' is on core \(2,0\), outside the 1x2"):
        placement_cost({"c0": (0, 0), "c1": (2, 0)}, t, g)
    with pytest.raises(PlacementError, match="no core for cluster.*c1"):
        placement_cost({"c0": (0, 0)}, t, g)


# --- Traffic ------------------------------------------------------------------------

def test_traffic_from_rates_sums_neuron_rates_per_cluster():
    g = Geometry(rows=2, cols=2, n_neurons=2, n_axons=16, n_synapses=64)
    cl = partition([PopulationNeeds("a", 4, fan_in=1, n_sources=8),
                    PopulationNeeds("b", 2, fan_in=4)], g)
    assert [c.name for c in cl] == ["a[0]", "a[1]", "b[0]"]
    t = Traffic.from_rates(cl, {"a": [0.1, 0.2, 0.3, 0.4], "b": 0.25, HOST: 1.5},
                           [(HOST, "a"), ("a", "b"), ("b", HOST)])
    np.testing.assert_allclose(t.matrix, [[0, 0, 0.3], [0, 0, 0.7], [0, 0, 0]])
    np.testing.assert_allclose(t.from_host, [1.5, 1.5, 0])
    np.testing.assert_allclose(t.to_host, [0, 0, 0.5])
    assert t.total == pytest.approx(1.5 * 2 + 1.0 + 0.5)


def test_traffic_errors():
    cl = unit_clusters(2)
    with pytest.raises(PlacementError, match="no cluster named 'zz'"):
        Traffic.from_edges(cl, [("c0", "zz", 1)])
    with pytest.raises(PlacementError, match="host to host"):
        Traffic.from_edges(cl, [(HOST, HOST, 1)])
    with pytest.raises(PlacementError, match=r"matrix\[0, 1\] = -1.0 is not a finite"):
        Traffic(cl, [[0, -1], [0, 0]])
    with pytest.raises(PlacementError, match=r"from_host has shape \(3,\), expected \(2,\)"):
        Traffic(cl, from_host=[1, 2, 3])
    with pytest.raises(PlacementError, match="'c0' appears twice"):
        Traffic(["c0", "c0"])
    with pytest.raises(PlacementError, match="no population 'q'"):
        Traffic.from_rates(cl, {"p0": 1.0}, [("p0", "q")])
    with pytest.raises(PlacementError, match="no rate given for 'p1'"):
        Traffic.from_rates(cl, {"p0": 1.0}, [("p1", "p0")])
    with pytest.raises(PlacementError, match=r"rates\['p0'\] has shape \(3,\)"):
        Traffic.from_rates(cl, {"p0": [1, 2, 3]}, [("p0", "p1")])


# --- Partition ----------------------------------------------------------------------

def test_partition_1000_neurons_300_inputs_each():
    # 256 neurons/core alone would give 4 clusters; 300 synapses each limit a
    # core to 65536 // 300 = 218 neurons, so 5 clusters of 200.
    g = Geometry(rows=4, cols=4, n_neurons=256, n_axons=512, n_synapses=65536)
    pop = PopulationNeeds("hidden", 1000, fan_in=300)
    assert max_neurons_per_core(pop, g) == (218, "synapses")
    cl = partition([pop], g)
    assert len(cl) == 5
    assert [(c.start, c.stop) for c in cl] == [(0, 200), (200, 400), (400, 600),
                                              (600, 800), (800, 1000)]
    for c in cl:
        c.check(g)
        assert (c.neurons, c.synapses, c.axons, c.fanout, c.profiles) == \
            (200, 60000, 300, 200, 1)
        assert c.synapses <= g.n_synapses and c.neurons <= g.n_neurons
    # 200 inputs each: 65536 // 200 = 327 > 256, the neuron limit binds: 4 x 250
    cl = partition([PopulationNeeds("hidden", 1000, fan_in=200)], g)
    assert [c.neurons for c in cl] == [250] * 4


def test_partition_every_limit_and_order():
    g = Geometry(rows=4, cols=4, n_neurons=100, n_axons=64, n_synapses=1000,
                 n_fanout=50, n_profiles=4)
    pops = [
        PopulationNeeds("n", 250, fanout=0),                    # neurons: 100/core
        PopulationNeeds("ax", 10, fan_in=16, n_sources=200),    # axons: 64 // 16 = 4
        PopulationNeeds("fo", 12, fanout=10),                   # fanout: 50 // 10 = 5
        PopulationNeeds("pr", 9, profiles=6),                   # profiles: 4
    ]
    assert [max_neurons_per_core(p, g) for p in pops] == \
        [(100, "neurons"), (4, "axons"), (5, "fanout"), (4, "profiles")]
    cl = partition(pops, g)
    assert [c.name for c in cl] == [
        "n[0]", "n[1]", "n[2]", "ax[0]", "ax[1]", "ax[2]", "fo[0]", "fo[1]", "fo[2]",
        "pr[0]", "pr[1]", "pr[2]"]
    assert [c.neurons for c in cl] == [84, 83, 83, 4, 3, 3, 4, 4, 4, 3, 3, 3]
    for c in cl:
        c.check(g)
    # a cluster never spans two populations; each population is covered exactly
    for p in pops:
        mine = [c for c in cl if c.population == p.name]
        assert mine[0].start == 0 and mine[-1].stop == p.size
        assert all(x.stop == y.start for x, y in zip(mine, mine[1:]))


@pytest.mark.parametrize("needs, resource, limit, need", [
    (dict(fan_in=5000, n_sources=200), "n_synapses", 4096, 5000),
    (dict(fan_in=300), "n_axons", 256, 300),
    (dict(fan_in=10, fanout=600), "n_fanout", 512, 600),
])
def test_partition_error_when_one_neuron_does_not_fit(needs, resource, limit, need):
    g = Geometry(rows=2, cols=2)
    name = resource.removeprefix("n_")
    with pytest.raises(PlacementError,
                       match=rf"population 'big' cannot be placed even one neuron per "
                             rf"core: {name}: one neuron needs {need}, a core has "
                             rf"{resource} = {limit}"):
        partition([PopulationNeeds("ok", 10), PopulationNeeds("big", 10, **needs)], g)


def test_partition_error_names_every_exceeded_resource():
    with pytest.raises(PlacementError,
                       match=r"'big' .*axons: one neuron needs 5000, a core has n_axons = 256; "
                             r"synapses: one neuron needs 5000, a core has n_synapses = 4096"):
        partition([PopulationNeeds("big", 10, fan_in=5000)], Geometry())


def test_partition_error_when_clusters_outnumber_cores():
    g = Geometry(rows=2, cols=2, n_neurons=256, n_axons=512, n_synapses=65536)
    with pytest.raises(PlacementError,
                       match=r"partition needs 5 cores, the mesh has 4 \(2x2\).*'hidden': 5 "
                             r"\(at most 218 neurons/core, limited by n_synapses\)"):
        partition([PopulationNeeds("hidden", 1000, fan_in=300)], g)
    # one population per cluster: two tiny populations make two clusters
    with pytest.raises(PlacementError, match="needs 2 cores, the mesh has 1"):
        partition([PopulationNeeds("a", 1), PopulationNeeds("b", 1)], Geometry())
    assert len(partition([PopulationNeeds("a", 1), PopulationNeeds("b", 1)], Geometry(),
                         check_cores=False)) == 2


def hand_needs(fanout=(1, 1, 1, 1, 1, 1)):
    """Six neurons hearing sources a..g: {a,b,c}, {a,b,c}, {d,e,f}, {d,e,f},
    {a,d,g}, {a,d,g}; first_seen by hand (the target of each synapse's
    source's previous synapse, in target order)."""
    first_seen = [-1, -1, -1, 0, 0, 0,          # n0: a b c    n1: a b c
                  -1, -1, -1, 2, 2, 2,          # n2: d e f    n3: d e f
                  1, 3, -1, 4, 4, 4]            # n4: a d g    n5: a d g
    return NeuronNeeds("p", [3] * 6, list(fanout), first_seen)


def test_cut_charges_each_cluster_its_distinct_sources():
    needs = hand_needs()
    np.testing.assert_array_equal(needs.axons(), [3] * 6)
    assert needs.range_needs(0, 3)["axons"] == 6 and needs.range_needs(2, 6)["axons"] == 5
    g = Geometry(rows=1, cols=4, n_neurons=8, n_axons=4, n_synapses=64, n_fanout=64)
    cl, binding = cut(needs, g)
    assert [(c.start, c.stop, c.axons) for c in cl] == [(0, 2, 3), (2, 4, 3), (4, 6, 3)]
    assert binding == "axons"
    # five axons: {d,e,f} and {a,d,g} share d, so neurons 2..5 fit one core
    cl, _ = cut(needs, Geometry(rows=1, cols=4, n_neurons=8, n_axons=5, n_synapses=64))
    assert [(c.start, c.stop, c.axons, c.synapses) for c in cl] == [(0, 2, 3, 6),
                                                                   (2, 6, 5, 12)]
    # (the per-population bound charged min(7 sources, k x 3 synapses) axons:
    # a core of 5 axons took one neuron, six clusters)
    assert len(partition([PopulationNeeds("p", 6, fan_in=3, n_sources=7)],
                         Geometry(rows=1, cols=8, n_neurons=8, n_axons=5),
                         check_cores=False)) == 6


def test_cut_by_synapses_and_fan_out_prefix_sums_then_balanced():
    needs = NeuronNeeds("q", [5, 1, 1, 1, 1, 5, 5, 1], [2, 2, 2, 9, 2, 2, 2, 2],
                        np.full(20, -1))
    g = Geometry(rows=1, cols=4, n_neurons=8, n_axons=64, n_synapses=10, n_fanout=16)
    cl, binding = cut(needs, g)
    # greedy: 0..3 (fan-out 2+2+2+9 = 15, +2 > 16), 4..5 (synapses 1+5, +5 > 10),
    # 6..7: three clusters, one ended by fan-out, one by synapses (the first
    # in RESOURCES order is reported); then at most three neurons each still
    # makes three clusters
    assert [(c.start, c.stop) for c in cl] == [(0, 3), (3, 6), (6, 8)]
    assert [c.synapses for c in cl] == [7, 7, 6]
    assert [c.fanout for c in cl] == [6, 13, 4]
    assert binding == "synapses"
    # balanced: four neurons at most per cluster keeps three clusters; three would not
    even = cut(NeuronNeeds("e", [1] * 10, [0] * 10, np.full(10, -1)),
               Geometry(n_neurons=4))[0]
    assert [c.stop - c.start for c in even] == [4, 3, 3]
    # shares of 2 would need a fourth cluster (9 + 9 > 10): the smallest cap
    # that keeps three is 3
    lumpy = cut(NeuronNeeds("l", [1, 1, 1, 1, 9, 9], [0] * 6, np.full(22, -1)),
                Geometry(n_neurons=8, n_synapses=10))[0]
    assert [(c.start, c.stop) for c in lumpy] == [(0, 3), (3, 5), (5, 6)]


def test_cut_errors():
    with pytest.raises(PlacementError, match=r"population 'p' cannot be placed even one "
                                             r"neuron per core: axons: one neuron needs 3, "
                                             r"a core has n_axons = 2"):
        cut(hand_needs(), Geometry(n_axons=2))
    with pytest.raises(PlacementError, match=r"fanout: one neuron needs 9, a core has "
                                             r"n_fanout = 8"):
        cut(hand_needs(fanout=(1, 1, 9, 1, 1, 1)), Geometry(n_fanout=8))
    with pytest.raises(PlacementError, match="first_seen has 2 entries for 18 synapses"):
        NeuronNeeds("p", [3] * 6, [1] * 6, [-1, -1])
    with pytest.raises(PlacementError, match="one entry per neuron"):
        NeuronNeeds("p", [3] * 6, [1] * 5, [-1] * 18)


def test_pack_shares_cores_first_fit_decreasing():
    g = Geometry(rows=1, cols=2, n_neurons=10, n_axons=64, n_synapses=100, n_fanout=64,
                 n_profiles=4, n_groups=3)
    cl = partition([PopulationNeeds("a", 4, fan_in=10), PopulationNeeds("b", 6, fan_in=5),
                    PopulationNeeds("c", 5, fan_in=2), PopulationNeeds("d", 3)], g,
                   check_cores=False)
    # largest share of a core first: c (2/3 groups), b (6/10 neurons), a (0.4), d (0.3);
    # c opens core 0, b does not fit next to it (11 neurons), a does, d joins b
    cores = pack(cl, g, groups={"a": 1, "b": 1, "c": 2, "d": 0})
    assert [[m.name for m in k.members] for k in cores] == [["a[0]", "c[0]"],
                                                            ["b[0]", "d[0]"]]
    assert [k.offsets for k in cores] == [(0, 4), (0, 6)]
    assert [k.groups for k in cores] == [3, 1]
    assert cores[0].needs() == {"neurons": 9, "axons": 12, "synapses": 50, "fanout": 9,
                                "profiles": 2}
    whole = cores[0].as_cluster()
    assert (whole.name, whole.population, whole.neurons) == ("a[0]+c[0]", "a+c", 9)
    # n_groups binds: c's two groups do not fit next to b's and a's
    tight = Geometry(rows=1, cols=3, n_neurons=10, n_axons=64, n_synapses=100,
                     n_fanout=64, n_profiles=4, n_groups=2)
    cores = pack(cl, tight, groups={"a": 1, "b": 1, "c": 2, "d": 1})
    assert all(k.groups <= 2 for k in cores) and len(cores) == 3
    # an exclusive (plastic) population shares with nobody
    cores = pack(cl, g, groups={}, exclusive={"c"}, check_cores=False)
    assert ["c[0]"] in [[m.name for m in k.members] for k in cores]
    with pytest.raises(PlacementError, match=r"needs 3 cores even with small clusters sharing "
                                             r"cores, the mesh has 2 \(1x2\); 4 clusters need "
                                             r"in total 18 neurons \(per core 10\)"):
        pack(cl, g, exclusive={"c", "d"})
    assert len(pack(cl, g, exclusive={"c", "d"}, check_cores=False)) == 3


def test_pack_counts_a_shared_source_once():
    """Two clusters hearing the same 40 sources need 40 axons on one core,
    not 80; a third source set makes the union too big."""
    g = Geometry(rows=1, cols=2, n_neurons=16, n_axons=48, n_synapses=1024, n_fanout=64)
    cl = [Cluster("a", "a", 0, 4, 4, axons=40, synapses=160),
          Cluster("b", "b", 0, 4, 4, axons=40, synapses=160)]
    assert len(pack(cl, g, check_cores=False)) == 2              # 80 > 48 as a sum
    shared = {"a": np.arange(40), "b": np.arange(5, 45)}          # union: 45 sources
    (core,) = pack(cl, g, sources=shared)
    assert core.axons == 45 and core.needs()["axons"] == 45
    assert core.as_cluster().axons == 45
    apart = {"a": np.arange(40), "b": np.arange(30, 70)}          # union: 70 > 48
    assert len(pack(cl, g, sources=apart)) == 2


def test_group_traffic_sums_clusters_on_one_core():
    g = Geometry(rows=1, cols=2, n_neurons=10)
    cl = [Cluster("a", "a", 0, 4, 4), Cluster("b", "b", 0, 6, 6), Cluster("c", "c", 0, 5, 5)]
    t = Traffic.from_edges(cl, [(HOST, "a", 2.0), ("a", "b", 3.0), ("b", "c", 1.0),
                                ("c", HOST, 0.5), ("c", "a", 4.0)])
    cores = pack(cl, g)
    assert [k.name for k in cores] == ["a+b", "c"]
    m = group_traffic(t, cores)
    np.testing.assert_array_equal(m.matrix, [[3.0, 1.0], [4.0, 0.0]])
    np.testing.assert_array_equal(m.from_host, [2.0, 0.0])
    np.testing.assert_array_equal(m.to_host, [0.0, 0.5])
    p = place([k.as_cluster() for k in cores], m, g)
    # a+b next to the host port: host 2*1 + 0.5*2, mesh (1 + 4)*1
    assert p.cost == 8.0


def test_bad_needs_and_clusters():
    assert issubclass(PlacementError, ChipError)
    with pytest.raises(PlacementError, match="population 'x': size = 0 is below"):
        PopulationNeeds("x", 0)
    with pytest.raises(PlacementError, match="fan_in = 0 and n_sources = 3 disagree"):
        PopulationNeeds("x", 1, n_sources=3)
    with pytest.raises(PlacementError, match="other than 'host'"):
        PopulationNeeds(HOST, 1)
    with pytest.raises(PlacementError, match="'x' appears twice"):
        partition([PopulationNeeds("x", 1), PopulationNeeds("x", 2)], Geometry(cols=2))
    with pytest.raises(PlacementError, match="neurons = 3 but the index range 0..4 holds 5"):
        Cluster("c", "p", 0, 5, 3)


# --- Placement errors, determinism, report ------------------------------------------

def test_place_errors():
    g = Geometry(rows=1, cols=2)
    cl = unit_clusters(3)
    with pytest.raises(PlacementError, match=r"needs 3 cores, the mesh has 2 \(1x2\)"):
        place(cl, Traffic(cl), g)
    big = Cluster("big[0]", "big", 0, 10, 10, synapses=5000, axons=300)
    with pytest.raises(PlacementError,
                       match=r"cluster 'big\[0\]' does not fit a core: it needs 300 axons but "
                             r"a core has n_axons = 256; 5000 synapses but a core has "
                             r"n_synapses = 4096"):
        place([big], Traffic([big]), g)
    with pytest.raises(PlacementError, match="not in traffic: c1; not among the clusters: zz"):
        place(cl[:2], Traffic(["c0", "zz"]), g)


def random_case(seed, rows, cols, n, density=0.4):
    rng = np.random.default_rng(seed)
    g = Geometry(rows=rows, cols=cols)
    cl = unit_clusters(n)
    m = rng.integers(0, 10, (n, n)) * (rng.random((n, n)) < density)
    t = Traffic(cl, m, rng.integers(0, 5, n), rng.integers(0, 5, n))
    return cl, t, g


def test_deterministic_for_a_seed_and_traffic_order_free():
    cl, t, g = random_case(7, 4, 4, 14)
    p1, p2 = place(cl, t, g, seed=3), place(cl, t, g, seed=3)
    assert p1.positions == p2.positions and p1.cost == p2.cost
    assert p1.cost < p1.naive_cost
    for seed in (0, 1):
        assert place(cl, t, g, seed=seed).cost <= p1.naive_cost
    # the same traffic listed in another order gives the same placement
    order = list(range(len(cl)))[::-1]
    shuffled = Traffic([t.names[i] for i in order], t.matrix[np.ix_(order, order)],
                       t.from_host[order], t.to_host[order])
    assert place(cl, shuffled, g, seed=3).positions == p1.positions


def test_report_and_trivial_cases():
    cl, t, g = random_case(1, 2, 3, 5)
    p = place(cl, t, g)
    text = p.report()
    assert "5 of 6 cores used" in text
    assert "naive row-major" in text and "y=1" in text
    assert all(c.name in text for c in cl)
    assert isinstance(p, Placement)
    empty = place([], Traffic([]), g)
    assert empty.positions == {} and empty.cost == 0
    one = place(cl[:1], Traffic.from_edges(cl[:1], [(HOST, "c0", 2)]), Geometry())
    assert one.positions == {"c0": (0, 0)} and one.cost == 2


@settings(max_examples=40, deadline=None, database=None)
@given(rows=st.integers(1, 3), cols=st.integers(1, 3), data=st.data())
def test_place_never_worse_than_naive_and_cores_distinct(rows, cols, data):
    n = data.draw(st.integers(1, rows * cols))
    seed = data.draw(st.integers(0, 2**32 - 1))
    cl, t, g = random_case(seed, rows, cols, n, density=data.draw(st.floats(0, 1)))
    p = place(cl, t, g, seed=seed % 5, kicks=4)
    cores = list(p.positions.values())
    assert len(cores) == n == len(set(cores))
    assert all(0 <= x < cols and 0 <= y < rows for x, y in cores)
    assert p.cost == placement_cost(p.positions, t, g)
    assert p.naive_cost == placement_cost(naive_placement(cl, g), t)
    assert p.cost <= p.naive_cost
