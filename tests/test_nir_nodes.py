"""Every supported NIR node type, compiled and run: the importer's network
(float reference, chip timing) must equal an independent NIR evaluator with
the frameworks' zero-latency timing, shifted by the importer's latency --
then the compiled chip must track it."""

import nir
import numpy as np
import pytest
from nir_semantics import Evaluator, _conv2d

from neuromesh.chip import Geometry
from neuromesh.compiler import compile_network
from neuromesh.compiler.convolution import conv2d_synapses, pool2d_synapses
from neuromesh.compiler.network import Network, NetworkError
from neuromesh.compiler.nir_import import NIROptions, from_nir
from neuromesh.compiler.reference import simulate
from neuromesh.emulator import Emulator

DT = 1e-3
GEOM = Geometry(rows=2, cols=2, n_neurons=128, n_axons=512, n_synapses=8192, n_fanout=1024,
                n_groups=4, delay_slots=8)


def cuba(n, shape=None, tau_syn=3e-3, tau_mem=5e-3, th=1.0):
    shape = shape or (n,)
    f = np.ones(shape)
    return nir.CubaLIF(tau_syn=tau_syn * f, tau_mem=tau_mem * f, r=f * 1.0, v_leak=0 * f,
                       v_threshold=th * f, v_reset=0 * f, w_in=f * 1.0)


def lif(shape, tau=4e-3, th=1.0):
    f = np.ones(shape)
    return nir.LIF(tau=tau * f, r=f, v_leak=0 * f, v_threshold=th * f, v_reset=0 * f)


def inp(shape):
    return nir.Input(input_type={"input": np.array(shape)})


def out(shape):
    return nir.Output(output_type={"output": np.array(shape)})


def compare(graph, x, *, reset="subtract", steps=None, options=None):
    """Importer + float reference vs the evaluator; returns the network."""
    options = options or NIROptions(dt=DT, reset=reset)
    net = from_nir(graph, options)
    t = steps or next(iter(x.values())).shape[0]
    ev = Evaluator(graph, DT, reset=options.reset).run(x, t)
    extra = max(net.latency.values(), default=0)
    padded = {k: np.concatenate([v.reshape(t, -1), np.zeros((extra, v[0].size))])
              for k, v in x.items()}
    ref = simulate(net, padded, t + extra, record_v=True)
    checked = 0
    for name, pop in net.populations.items():
        lat = net.latency[name]
        if pop.spiking:
            np.testing.assert_array_equal(ref[name][lat:lat + t, 0],
                                          ev[name].reshape(t, -1) > 0, err_msg=name)
            checked += int(ev[name].sum())
        else:
            np.testing.assert_allclose(ref[name + ".v"][lat:lat + t, 0],
                                       ev[name + ".v"].reshape(t, -1), rtol=1e-9, atol=1e-9)
    assert checked > 0 or not any(p.spiking for p in net.populations.values())
    return net


def chip_tracks(net, x, min_agree=0.8):
    """Compile, run on the emulator, compare spike counts with the reference."""
    compiled = compile_network(net, GEOM)
    t = next(iter(x.values())).shape[0]
    flat = {k: v.reshape(t, -1) for k, v in x.items()}
    r = Emulator(compiled.image).run(compiled.chip_inputs(flat), probe=compiled.readout_probe(),
                                     record=("v",))
    ref = simulate(net, flat, t, record_v=True)
    for p, chip in compiled.outputs(r).items():
        total = int(ref[p].sum())
        assert total > 0
        assert abs(int(chip.sum()) - total) <= 0.1 * total + 2, p
        assert (chip & ref[p]).sum() >= min_agree * total, p
    for p, v in compiled.readouts(r).items():
        # A spike that quantization moves upstream shifts the readout for a
        # few steps; on average it tracks within 2 % of its range.
        span = np.abs(ref[p + ".v"]).max()
        assert span > 0 and np.abs(v - ref[p + ".v"]).mean() <= 0.02 * span, p
    return compiled


# -- convolution expansion ---------------------------------------------------------

@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), ((2, 1), (1, 0), 1, 2), (1, "same", 1, 2)])
def test_conv2d_synapses_equal_a_direct_convolution(stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 7, 6))
    w = rng.normal(size=(6, 4 // groups, 3, 3))
    pre, post, tap, shape = conv2d_synapses(x.shape, w, stride=stride, padding=padding,
                                            dilation=dilation, groups=groups)
    y = np.bincount(post, weights=tap * x.reshape(-1)[pre], minlength=int(np.prod(shape)))
    s = np.broadcast_to(stride, 2)
    p = (1, 1) if padding == "same" else np.broadcast_to(padding, 2)
    want = _conv2d(x, w, tuple(s), ((p[0], p[0]), (p[1], p[1])), (dilation, dilation), groups)
    np.testing.assert_allclose(y.reshape(shape), want, rtol=1e-12, atol=1e-12)


def test_pooling_synapses_known_values():
    x = np.arange(16.0).reshape(1, 4, 4)
    pre, post, tap, shape = pool2d_synapses(x.shape, 2)
    assert shape == (1, 2, 2)
    y = np.bincount(post, weights=tap * x.reshape(-1)[pre])
    np.testing.assert_array_equal(y, [0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13,
                                      10 + 11 + 14 + 15])
    pre, post, tap, shape = pool2d_synapses(x.shape, 2, mode="avg")
    np.testing.assert_array_equal(np.bincount(post, weights=tap * x.reshape(-1)[pre]),
                                  [2.5, 4.5, 10.5, 12.5])


def test_conv_errors_name_the_layer():
    with pytest.raises(NetworkError, match="'c1'.*do not split into 3 groups"):
        conv2d_synapses((4, 5, 5), np.ones((6, 2, 3, 3)), groups=3, name="c1")
    with pytest.raises(NetworkError, match="'c1'.*3x3 kernel does not fit the 2x2 input"):
        conv2d_synapses((1, 2, 2), np.ones((1, 1, 3, 3)), name="c1")
    net = Network()
    net.input("x", 16)
    net.population("p", 10)
    with pytest.raises(NetworkError, match="output shape \\(1, 2, 2\\) has 4 elements, 'p' "
                                           "has 10"):
        net.conv("x", "p", np.ones((1, 1, 3, 3)), (1, 4, 4))


# -- whole graphs -------------------------------------------------------------------

def spikes(shape, steps=40, p=0.3, seed=0):
    return (np.random.default_rng(seed).random((steps, *shape)) < p).astype(np.float64)


@pytest.mark.parametrize("pool", ["SumPool2d", "AvgPool2d"])
def test_conv2d_pool_flatten_affine_network(pool):
    rng = np.random.default_rng(2)
    n = {"x": inp((2, 8, 8)),
         "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0.3, 0.5, (4, 2, 3, 3)),
                            stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(4)),
         "l1": lif((4, 8, 8), th=0.8),
         "pool": getattr(nir, pool)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                    padding=np.array([0, 0])),
         "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0),
         "fc": nir.Linear(weight=rng.normal(0.2, 0.4, (10, 64))),
         "l2": cuba(10, th=1.0 if pool == "SumPool2d" else 0.25), "y": out((10,))}
    g = nir.NIRGraph(nodes=n, edges=[("x", "conv"), ("conv", "l1"), ("l1", "pool"),
                                     ("pool", "flat"), ("flat", "fc"), ("fc", "l2"),
                                     ("l2", "y")])
    x = {"x": spikes((2, 8, 8))}
    net = compare(g, x)
    assert net.latency == {"l1": 0, "l2": 1} and net.outputs == ["l2"]
    assert {p.name for p in net.projections} == {"conv", "pool+fc"}
    chip_tracks(net, x)


def test_conv1d_with_bias_into_lif():
    rng = np.random.default_rng(3)
    n = {"x": inp((3, 12)),
         "conv": nir.Conv1d(input_shape=12, weight=rng.normal(0.4, 0.5, (4, 3, 3)), stride=1,
                            padding=1, dilation=1, groups=1, bias=np.full(4, 0.05)),
         "l1": lif((4, 12)),
         "flat": nir.Flatten(input_type={"input": np.array([4, 12])}, start_dim=0),
         "fc": nir.Linear(weight=rng.normal(0.3, 0.3, (5, 48))),
         "l2": lif((5,), th=0.5), "y": out((5,))}
    g = nir.NIRGraph(nodes=n, edges=[("x", "conv"), ("conv", "l1"), ("l1", "flat"),
                                     ("flat", "fc"), ("fc", "l2"), ("l2", "y")])
    x = {"x": spikes((3, 12), steps=50)}
    net = compare(g, x, reset="zero")
    # the conv bias becomes the v bias, times the LIF's input gain dt/tau
    np.testing.assert_allclose(net.populations["l1"].bias_array(), 0.05 * 0.25)
    chip_tracks(net, x)


def test_delay_node_in_steps():
    w = np.eye(4) * 4.0
    n = {"x": inp((4,)), "fc": nir.Linear(weight=w),
         "d": nir.Delay(delay=np.array([0, 1, 2, 5]) * DT), "l": lif((4,), th=0.5),
         "y": out((4,))}
    g = nir.NIRGraph(nodes=n, edges=[("x", "fc"), ("fc", "d"), ("d", "l"), ("l", "y")])
    x = np.zeros((12, 4))
    x[1] = 1
    net = compare(g, {"x": x})
    assert sorted(net.projections[0].delay.tolist()) == [0, 1, 2, 5]
    ref = simulate(net, {"x": x}, 12)["l"][:, 0]
    assert [int(np.argmax(ref[:, i])) for i in range(4)] == [1, 2, 3, 6]
    compiled = chip_tracks(net, {"x": x})
    r = Emulator(compiled.image).run(compiled.chip_inputs({"x": x}))
    np.testing.assert_array_equal(compiled.outputs(r)["l"][:, 0], ref)
    n["d"] = nir.Delay(delay=np.full(4, 1.5 * DT))
    with pytest.raises(NetworkError, match="'d': delay 0.0015 is not a whole"):
        from_nir(g, NIROptions(dt=DT))


@pytest.mark.parametrize("kind", ["LI", "CubaLI"])
def test_li_readouts_are_probed_potentials(kind):
    rng = np.random.default_rng(4)
    f = np.ones(6)
    ro = (nir.LI(tau=8e-3 * f, r=f, v_leak=0 * f) if kind == "LI" else
          nir.CubaLI(tau_syn=3e-3 * f, tau_mem=8e-3 * f, r=f, v_leak=0 * f, w_in=f))
    n = {"x": inp((8,)), "fc1": nir.Linear(weight=rng.normal(0.4, 0.4, (16, 8))),
         "l1": cuba(16), "fc2": nir.Linear(weight=rng.normal(0, 1, (6, 16))), "ro": ro,
         "y": out((6,))}
    g = nir.NIRGraph(nodes=n, edges=[("x", "fc1"), ("fc1", "l1"), ("l1", "fc2"),
                                     ("fc2", "ro"), ("ro", "y")])
    x = {"x": spikes((8,), steps=60)}
    net = compare(g, x)
    assert net.readouts == ["ro"] and net.outputs == [] and not net.populations["ro"].spiking
    compiled = chip_tracks(net, x)
    assert compiled.readout_probe().size == 6


def test_recurrent_subgraph_as_snntorch_exports_it():
    rng = np.random.default_rng(5)
    sub = nir.NIRGraph(nodes={"input": inp((12,)), "lif": cuba(12),
                              "w_rec": nir.Linear(weight=rng.normal(0, 0.5, (12, 12))),
                              "output": out((12,))},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
                              ("lif", "output")])
    n = {"x": inp((6,)), "fc": nir.Linear(weight=rng.normal(2.0, 0.5, (12, 6))), "rsyn": sub,
         "fc2": nir.Linear(weight=rng.normal(2.0, 0.5, (4, 12))), "l2": cuba(4),
         "y": out((4,))}
    g = nir.NIRGraph(nodes=n, edges=[("x", "fc"), ("fc", "rsyn"), ("rsyn", "fc2"),
                                     ("fc2", "l2"), ("l2", "y")])
    x = {"x": spikes((6,), steps=60)}
    net = compare(g, x)
    assert set(net.populations) == {"rsyn.lif", "l2"}
    assert {p.name for p in net.projections} == {"fc", "rsyn.w_rec", "fc2"}
    rec = next(p for p in net.projections if p.name == "rsyn.w_rec")
    assert rec.src == rec.dst == "rsyn.lif" and not rec.delay.any()
    chip_tracks(net, x)


def test_skip_connections_get_aligning_delays():
    rng = np.random.default_rng(6)
    n = {"x": inp((8,)), "fc1": nir.Linear(weight=rng.normal(0.4, 0.4, (8, 8))),
         "l1": cuba(8), "fc2": nir.Linear(weight=rng.normal(0.4, 0.4, (8, 8))), "l2": cuba(8),
         "fc3": nir.Linear(weight=rng.normal(0.3, 0.4, (4, 8))),
         "skip": nir.Linear(weight=rng.normal(0.2, 0.3, (4, 8))), "l3": cuba(4),
         "y": out((4,))}
    g = nir.NIRGraph(nodes=n, edges=[("x", "fc1"), ("fc1", "l1"), ("l1", "fc2"), ("fc2", "l2"),
                                     ("l2", "fc3"), ("fc3", "l3"), ("x", "skip"),
                                     ("skip", "l3"), ("l3", "y")])
    x = {"x": spikes((8,), steps=50)}
    net = compare(g, x)
    assert net.latency == {"l1": 0, "l2": 1, "l3": 2}
    skip = next(p for p in net.projections if p.name == "skip")
    assert set(skip.delay.tolist()) == {2}
    unaligned = from_nir(g, NIROptions(dt=DT, reset="subtract", align_latency=False))
    assert not any(p.delay.any() for p in unaligned.projections)


def test_graph_errors_name_the_node():
    loop = {"x": inp((4,)), "a": nir.Linear(weight=np.eye(4)), "la": lif((4,)),
            "b": nir.Linear(weight=np.eye(4)), "lb": lif((4,)), "c": nir.Linear(weight=np.eye(4)),
            "y": out((4,))}
    g = nir.NIRGraph(nodes=loop, edges=[("x", "a"), ("a", "la"), ("la", "b"), ("b", "lb"),
                                        ("lb", "c"), ("c", "la"), ("lb", "y")])
    with pytest.raises(NetworkError, match="loop through several populations \\(la, lb\\)"):
        from_nir(g, NIROptions(dt=DT))
    assert from_nir(g, NIROptions(dt=DT, align_latency=False)).latency == {"la": 0, "lb": 0}
    g = nir.NIRGraph(nodes={"x": inp((4,)), "fc": nir.Linear(weight=np.eye(4)), "y": out((4,))},
                     edges=[("x", "fc"), ("fc", "y")])
    with pytest.raises(NetworkError, match="'y': fed by Linear 'fc'.*add an LI readout"):
        from_nir(g, NIROptions(dt=DT))
    g = nir.NIRGraph(nodes={"x": inp((4,)), "fc": nir.Linear(weight=np.ones((3, 5))),
                            "l": lif((3,)), "y": out((3,))},
                     edges=[("x", "fc"), ("fc", "l"), ("l", "y")], type_check=False)
    with pytest.raises(NetworkError, match="'fc': weight shape \\(3, 5\\) does not take its 4"):
        from_nir(g, NIROptions(dt=DT))
