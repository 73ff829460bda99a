"""Property tests of the emulator (hypothesis).

A random *logical* network (neurons with parameters and initial state,
synaptic edges with weights and delays, host inputs and outputs) is laid out
on a chip by :func:`build_image` under a *placement*: which core and slot
each neuron gets, which hardware profile/group index each logical one uses,
which axon numbers carry which edges, whether a source's edges into a core
share one axon or are split over several, and the order of all builder
calls. Every placement of one logical network is the same computation, so:

(a) batch independence: each batch row equals a batch-1 run of its input;
(b) placement independence: spikes, u, v, refractory counters and
    accumulators per logical neuron, and the host outputs, do not depend on
    the placement;
(c) propagation equivalence: dense and sparse propagation agree exactly;
(d) a run split into several ``run`` calls equals one call.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator

RECORD = ("spikes", "u", "v", "refractory")

#: Per-core sizes of every test chip; large enough for any placement below.
CORE = dict(n_neurons=16, n_axons=64, n_synapses=128, n_fanout=64, n_profiles=8, n_groups=4)

MAX_NEURONS = 10
MAX_EDGES = 30
MAX_INPUT_EDGES = 16

# Hypothesis: modest example counts; no example database in the work tree.
SETTINGS = dict(deadline=None, database=None)


# --- Logical networks -----------------------------------------------------------------

@dataclass
class Net:
    """A network independent of any chip layout.

    ``edges``: ``(src, tgt, w_mant, delay, group)`` between logical neurons.
    ``input_edges``: ``(channel, tgt, w_mant, delay, group)`` from host inputs.
    ``outputs[ch]``: the logical neuron reporting to host output channel ``ch``.
    ``groups[g]``: the weight shift of logical synapse group ``g``.
    """

    delay_slots: int
    profiles: list[dict]
    groups: list[int]
    neurons: list[dict]
    edges: list[tuple] = field(default_factory=list)
    input_edges: list[tuple] = field(default_factory=list)
    n_inputs: int = 0
    outputs: list[int] = field(default_factory=list)


def _mostly_zero(lo, hi):
    return st.one_of(st.just(0), st.integers(lo, hi))


@st.composite
def nets(draw, max_neurons=MAX_NEURONS, min_inputs=0):
    d_slots = draw(st.sampled_from([2, 4, 8]))
    decay = st.one_of(st.sampled_from([0, 1, 2048, 4095, 4096]), st.integers(0, 4096))
    profiles = draw(st.lists(st.fixed_dictionaries(dict(
        du=decay, dv=decay,
        vth_mant=st.one_of(st.integers(0, 40), st.integers(0, (1 << 17) - 1)),
        refractory=st.one_of(st.just(0), st.integers(1, 3)),
        reset=st.sampled_from(["zero", "subtract"]))), min_size=1, max_size=3))
    groups = draw(st.lists(st.one_of(st.integers(0, 8), st.integers(9, 15)),
                           min_size=1, max_size=3))
    n = draw(st.integers(1, max_neurons))
    neurons = draw(st.lists(st.fixed_dictionaries(dict(
        profile=st.integers(0, len(profiles) - 1),
        bias_mant=st.one_of(st.just(0), st.integers(-300, 300), st.integers(-4096, 4095)),
        bias_exp=st.integers(0, 7),
        u=_mostly_zero(-(1 << 23), (1 << 23) - 1),
        v=_mostly_zero(-(1 << 23) + 1, (1 << 23) - 1),
        refractory=_mostly_zero(1, 5),
        accum=st.dictionaries(st.integers(0, d_slots - 1),
                              st.integers(-(1 << 23), (1 << 23) - 1), max_size=2))),
        min_size=n, max_size=n))
    neuron = st.integers(0, n - 1)
    synapse = (st.integers(-128, 127), st.integers(0, d_slots - 2),
               st.integers(0, len(groups) - 1))
    edges = draw(st.lists(st.tuples(neuron, neuron, *synapse), max_size=MAX_EDGES))
    n_inputs = draw(st.integers(min_inputs, 3))
    input_edges = draw(st.lists(st.tuples(st.integers(0, n_inputs - 1), neuron, *synapse),
                                max_size=MAX_INPUT_EDGES)) if n_inputs else []
    outputs = draw(st.lists(neuron, unique=True, max_size=min(n, 4)))
    return Net(d_slots, profiles, groups, neurons, edges, input_edges, n_inputs, outputs)


# --- Logical net -> chip image under a placement -----------------------------------------

@dataclass
class Layout:
    image: object
    places: list[tuple[int, int]]     # (core index, slot) per logical neuron

    @property
    def probe(self):
        n = self.image.geometry.n_neurons
        return [core * n + slot for core, slot in self.places]


def build_image(net: Net, rows: int = 1, cols: int = 1, rng=None, places=None) -> Layout:
    """Lay ``net`` out on a ``rows x cols`` chip.

    Without ``rng``: the canonical layout (neuron ``i`` in slot ``i`` of the
    cores in order, identity profile/group maps, axons numbered from 0, one
    axon per (source, destination core), calls in logical order). With
    ``rng``: random slots (unless ``places`` is given), random profile,
    group and axon numbers per core, random splitting of a source's edges
    over several axons, random call order.
    """
    g = Geometry(rows=rows, cols=cols, delay_slots=net.delay_slots, **CORE)
    n_cores, n_slots = g.n_cores, g.n_neurons
    if places is None:
        if rng is None:
            places = [(i // n_slots, i % n_slots) for i in range(len(net.neurons))]
        else:
            flat = rng.choice(n_cores * n_slots, len(net.neurons), replace=False)
            places = [(int(f) // n_slots, int(f) % n_slots) for f in flat]
    places = [tuple(map(int, p)) for p in places]

    def perm(size):
        return [int(i) for i in (rng.permutation(size) if rng is not None else range(size))]

    def shuffled(items):
        return [items[i] for i in perm(len(items))]

    profile_of = [perm(g.n_profiles) for _ in range(n_cores)]
    group_of = [perm(g.n_groups) for _ in range(n_cores)]
    axon_pool = [perm(g.n_axons) for _ in range(n_cores)]
    next_axon = [0] * n_cores

    b = ChipBuilder(g)
    b.n_inputs, b.n_outputs = net.n_inputs, len(net.outputs)

    def core_xy(core):
        return core % cols, core // cols

    def cb(core):
        return b.core(*core_xy(core))

    for core in perm(n_cores):
        for p in perm(len(net.profiles)):
            cb(core).profile(profile_of[core][p], **net.profiles[p])
        for k in perm(len(net.groups)):
            cb(core).group(group_of[core][k], w_shift=net.groups[k])
    for i in perm(len(net.neurons)):
        nrn = net.neurons[i]
        core, slot = places[i]
        c = cb(core)
        c.neurons(slot, profile=profile_of[core][nrn["profile"]],
                  bias_mant=nrn["bias_mant"], bias_exp=nrn["bias_exp"])
        if nrn["u"] or nrn["v"] or nrn["refractory"] or rng is not None:
            c.state(slot, u=nrn["u"], v=nrn["v"], refractory=nrn["refractory"])
        for s, value in nrn["accum"].items():
            c.accum(s, slot, value)

    # Group edges by source, then by destination core; give each (source,
    # core) pair one axon, or with rng possibly one axon per chunk of edges.
    by_source = defaultdict(list)
    for src, tgt, w, d, grp in net.edges:
        by_source["neuron", src].append((tgt, w, d, grp))
    for ch, tgt, w, d, grp in net.input_edges:
        by_source["input", ch].append((tgt, w, d, grp))
    synapse_calls, fanout_calls, port_calls = [], [], []
    for (kind, src), syns in by_source.items():
        per_core = defaultdict(list)
        for tgt, w, d, grp in syns:
            core, slot = places[tgt]
            per_core[core].append((slot, w, d, group_of[core][grp]))
        for core, entries in per_core.items():
            if rng is not None and rng.random() < 0.5:
                cuts = sorted(set(rng.integers(0, len(entries) + 1, 2).tolist()))
                chunks = [entries[a:z] for a, z in zip([0, *cuts], [*cuts, len(entries)],
                                                       strict=True)]
                chunks = [ch for ch in chunks if ch]
            else:
                chunks = [entries]
            for chunk in chunks:
                axon = axon_pool[core][next_axon[core]]
                next_axon[core] += 1
                synapse_calls += [(core, axon, *e) for e in chunk]
                x, y = core_xy(core)
                if kind == "neuron":
                    fanout_calls.append((*places[src], "route", (x, y, axon)))
                else:
                    port_calls.append((src, x, y, axon))
    for ch, nrn in enumerate(net.outputs):
        fanout_calls.append((*places[nrn], "host", ch))

    # Within an axon (a fan-out list) the order of entries does not matter.
    if rng is not None:
        synapse_calls, fanout_calls = shuffled(synapse_calls), shuffled(fanout_calls)
        port_calls = shuffled(port_calls)
    for core, axon, slot, w, d, grp in synapse_calls:
        cb(core).synapses(axon=axon, target=slot, w_mant=w, delay=d, group=grp)
    for core, slot, kind, arg in fanout_calls:
        if kind == "route":
            cb(core).route(neuron=slot, x=arg[0], y=arg[1], axon=arg[2])
        else:
            cb(core).to_host(neuron=slot, channel=arg)
    for ch, x, y, axon in port_calls:
        b.input(channel=ch, x=x, y=y, axon=axon)
    return Layout(b.build(), places)


# --- Helpers ------------------------------------------------------------------------------

def random_inputs(rng, steps, batch, n_inputs):
    rate = rng.uniform(0.05, 0.7)
    return rng.random((steps, batch, n_inputs)) < rate


def run(layout: Layout, inputs, **kw):
    emu = Emulator(layout.image, batch=inputs.shape[1], **kw)
    result = emu.run(inputs, probe=layout.probe, record=RECORD)
    return emu, result


def logical_state(emu, layout: Layout) -> dict:
    """read_state() per logical neuron: u/v/refractory ``[B, N]``, accum ``[B, D, N]``."""
    s = emu.read_state()
    core = np.array([c for c, _ in layout.places])
    slot = np.array([n for _, n in layout.places])
    out = {name: s[name][:, core, slot] for name in ("u", "v", "refractory")}
    out["accum"] = s["accum"][:, core, :, slot].transpose(1, 2, 0)
    out["step"] = s["step"]
    return out


def assert_results_equal(r1, r2, rows1=slice(None), rows2=slice(None)):
    np.testing.assert_array_equal(r1.outputs[:, rows1], r2.outputs[:, rows2])
    assert set(r1.probes) == set(r2.probes) == set(RECORD)
    for name in RECORD:
        np.testing.assert_array_equal(r1.probes[name][:, rows1], r2.probes[name][:, rows2],
                                      err_msg=name)
    np.testing.assert_array_equal(r1.neuron_spikes[rows1], r2.neuron_spikes[rows2])
    np.testing.assert_array_equal(r1.synaptic_events[rows1], r2.synaptic_events[rows2])


def assert_states_equal(s1, s2, rows1=slice(None), rows2=slice(None)):
    assert s1["step"] == s2["step"]
    for name in ("u", "v", "refractory", "accum"):
        np.testing.assert_array_equal(s1[name][rows1], s2[name][rows2], err_msg=name)


MESHES = [(1, 1), (1, 2), (2, 1), (2, 2)]


# --- (a) batch independence ---------------------------------------------------------------

@settings(max_examples=250, **SETTINGS)
@given(net=nets(min_inputs=1), mesh=st.sampled_from(MESHES), batch=st.integers(2, 5),
       steps=st.integers(1, 24), seed=st.integers(0, 2**32 - 1),
       propagation=st.sampled_from(["auto", "dense", "sparse"]))
def test_batch_rows_are_independent(net, mesh, batch, steps, seed, propagation):
    rng = np.random.default_rng(seed)
    layout = build_image(net, *mesh, rng=rng)
    x = random_inputs(rng, steps, batch, net.n_inputs)
    emu, r = run(layout, x, propagation=propagation)
    full = emu.read_state()
    assert r.outputs.shape == (steps, batch, len(net.outputs))
    for b in range(batch):
        emu1, r1 = run(layout, x[:, b:b + 1], propagation=propagation)
        assert_results_equal(r, r1, rows1=slice(b, b + 1))
        one = emu1.read_state()
        for name in ("u", "v", "refractory", "accum"):
            np.testing.assert_array_equal(full[name][b], one[name][0], err_msg=name)
        assert full["step"] == one["step"] == steps


def test_batch_rows_are_independent_smoke():
    # A fixed network whose rows clearly differ: the property above is not vacuous.
    net = Net(delay_slots=4,
              profiles=[dict(du=1000, dv=500, vth_mant=3, refractory=1, reset="subtract")],
              groups=[5], neurons=[dict(profile=0, bias_mant=0, bias_exp=0, u=0, v=0,
                                        refractory=0, accum={})] * 3,
              edges=[(0, 1, 50, 1, 0), (1, 2, 60, 2, 0), (2, 0, -40, 0, 0)],
              input_edges=[(0, 0, 100, 0, 0), (1, 1, 30, 0, 0)], n_inputs=2,
              outputs=[2, 0])
    layout = build_image(net, 2, 2, rng=np.random.default_rng(1))
    x = np.zeros((30, 3, 2), bool)
    x[::3, 1, 0] = True
    x[:, 2, :] = True
    emu, r = run(layout, x)
    assert not r.probes["spikes"][:, 0].any()
    assert r.probes["spikes"][:, 1].any() and r.probes["spikes"][:, 2].any()
    assert not np.array_equal(r.probes["v"][:, 1], r.probes["v"][:, 2])
    for b in range(3):
        _, r1 = run(layout, x[:, b:b + 1])
        assert_results_equal(r, r1, rows1=slice(b, b + 1))


# --- (b) placement independence -------------------------------------------------------------

def check_placement(net, mesh, seed, steps, places=None, batch=2):
    rng = np.random.default_rng(seed)
    canonical = build_image(net)                      # everything on one core, in order
    placed = build_image(net, *mesh, rng=rng, places=places)
    x = random_inputs(rng, steps, batch, net.n_inputs)
    emu_a, ra = run(canonical, x)
    emu_b, rb = run(placed, x)
    assert_results_equal(ra, rb)
    assert_states_equal(logical_state(emu_a, canonical), logical_state(emu_b, placed))


# A regression case: the emulator groups source cores into blocks by the
# cores they reach and orders the blocks by their first core, so here the
# neuron rows are [core 0, core 2, core 1, core 3]. An earlier _as_slice()
# looked only at the first and last index and turned that permutation into
# slice(0, 4), gathering the spikes of the wrong neurons.
_BLOCK_ORDER_NET = Net(
    delay_slots=4,
    profiles=[dict(du=4096, dv=4096, vth_mant=10, refractory=0, reset="zero")],
    groups=[0],
    neurons=[dict(profile=0, bias_mant=bias, bias_exp=0, u=0, v=0, refractory=0, accum={})
             for bias in (0, 1000, 1, 0)],
    edges=[(0, 3, 1, 0, 0), (2, 3, 1, 0, 0), (1, 0, 1, 0, 0), (3, 1, 1, 0, 0)],
    n_inputs=0, outputs=[3, 0])
_BLOCK_ORDER_PLACES = [(0, 0), (1, 0), (2, 0), (3, 0)]


def test_placement_independence_block_order():
    check_placement(_BLOCK_ORDER_NET, (2, 2), seed=0, steps=5, places=_BLOCK_ORDER_PLACES)
    # Neuron 1 (bias 1000) spikes every step and drives neuron 0 only.
    layout = build_image(_BLOCK_ORDER_NET, 2, 2, rng=np.random.default_rng(0),
                         places=_BLOCK_ORDER_PLACES)
    _, r = run(layout, np.zeros((5, 1, 0), bool))
    assert r.probes["spikes"][:, 0, 1].all()
    np.testing.assert_array_equal(r.probes["u"][:, 0, 0], [0, 1, 1, 1, 1])
    assert not r.probes["u"][:, 0, 3].any()


@settings(max_examples=400, **SETTINGS)
@given(net=nets(), mesh=st.sampled_from([(1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 1)]),
       steps=st.integers(1, 24), seed=st.integers(0, 2**32 - 1), places=st.none())
@example(net=_BLOCK_ORDER_NET, mesh=(2, 2), steps=5, seed=0, places=_BLOCK_ORDER_PLACES)
def test_placement_independence(net, mesh, steps, seed, places):
    check_placement(net, mesh, seed, steps, places=places)


def test_placement_changes_the_image():
    # The two layouts really differ (not the same words under another name).
    net = _BLOCK_ORDER_NET
    a = build_image(net)
    b = build_image(net, 2, 2, rng=np.random.default_rng(3))
    assert a.image.geometry != b.image.geometry
    assert sorted(b.places) != sorted(a.places)
    assert b.probe != a.probe


# --- (c) dense and sparse propagation ----------------------------------------------------

@settings(max_examples=250, **SETTINGS)
@given(net=nets(), mesh=st.sampled_from(MESHES), batch=st.integers(1, 4),
       steps=st.integers(1, 24), seed=st.integers(0, 2**32 - 1))
def test_dense_and_sparse_propagation_agree(net, mesh, batch, steps, seed):
    rng = np.random.default_rng(seed)
    layout = build_image(net, *mesh, rng=rng)
    x = random_inputs(rng, steps, batch, net.n_inputs)
    emu_d, rd = run(layout, x, propagation="dense")
    emu_s, rs = run(layout, x, propagation="sparse")
    emu_a, ra = run(layout, x, propagation="auto")
    assert_results_equal(rd, rs)
    assert_results_equal(rd, ra)
    sd = emu_d.read_state()
    assert_states_equal(sd, emu_s.read_state())
    assert_states_equal(sd, emu_a.read_state())


def test_dense_float32_limit_is_exact():
    # Five input channels, each adding (127 << 15) - 1 to every neuron: the
    # sum 20807675 is odd and above 2**24, so a float32 product would round.
    n = 4
    net = Net(delay_slots=2,
              profiles=[dict(du=0, dv=0, vth_mant=(1 << 17) - 1, refractory=0, reset="zero")],
              groups=[15, 0],
              neurons=[dict(profile=0, bias_mant=0, bias_exp=0, u=0, v=0, refractory=0,
                            accum={})] * n,
              edges=[], n_inputs=5,
              input_edges=[(c, t, w, 0, grp) for c in range(5) for t in range(n)
                           for w, grp in ((127, 0), (1, 1), (-2, 1))])
    layout = build_image(net)
    x = np.ones((4, 2, 5), bool)
    x[1, 0, 1] = False
    emu_d, rd = run(layout, x, propagation="dense")
    emu_s, rs = run(layout, x, propagation="sparse")
    assert_results_equal(rd, rs)
    assert_states_equal(emu_d.read_state(), emu_s.read_state())
    # Row 1 gets 5 * ((127 << 15) - 1) per step; u never decays (du = 0) and
    # wraps to 24 bits.
    per_step = 5 * ((127 << 15) - 1)
    assert per_step > 1 << 24 and per_step % 2
    expected = (per_step * np.arange(1, 5) + (1 << 23)) % (1 << 24) - (1 << 23)
    np.testing.assert_array_equal(rd.probes["u"][:, 1, 0], expected)


# --- (d) chunked runs ------------------------------------------------------------------------

@settings(max_examples=150, **SETTINGS)
@given(net=nets(), mesh=st.sampled_from(MESHES), steps=st.integers(2, 24),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_split_run_equals_one_run(net, mesh, steps, seed, data):
    rng = np.random.default_rng(seed)
    layout = build_image(net, *mesh, rng=rng)
    x = random_inputs(rng, steps, 2, net.n_inputs)
    emu, r = run(layout, x)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, steps - 1), min_size=1, max_size=3))))
    emu2 = Emulator(layout.image, batch=2)
    parts = [emu2.run(x[a:z], probe=layout.probe, record=RECORD)
             for a, z in zip([0, *cuts], [*cuts, steps], strict=True)]
    assert [p.first_step for p in parts] == [0, *cuts]
    np.testing.assert_array_equal(r.outputs, np.concatenate([p.outputs for p in parts]))
    for name in RECORD:
        np.testing.assert_array_equal(r.probes[name],
                                      np.concatenate([p.probes[name] for p in parts]))
    np.testing.assert_array_equal(r.neuron_spikes, sum(p.neuron_spikes for p in parts))
    np.testing.assert_array_equal(r.synaptic_events, sum(p.synaptic_events for p in parts))
    assert_states_equal(emu.read_state(), emu2.read_state())
