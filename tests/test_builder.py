"""The low-level builder: memory layout of synapse runs and fan-out lists,
range checks with clear messages, and last-write-wins semantics."""

import numpy as np
import pytest

from neuromesh import ChipBuilder, ChipError, ChipImage, Geometry, ImageError, Region
from neuromesh.chip import LAYOUTS, core_id, pack_address, unpack_address
from neuromesh.config import decode
from neuromesh.image import InputPort

G = Geometry(rows=2, cols=2, n_neurons=8, n_axons=8, n_synapses=16, n_fanout=12,
             n_profiles=4, n_groups=4, delay_slots=8)


def core_index(x, y, g=G):
    return y * g.cols + x


def synapse_table(cfg, k, n):
    s = cfg[Region.SYNAPSE]
    return [(int(s["target"][k, i]), int(s["w_mant"][k, i]), int(s["delay"][k, i]),
             int(s["group"][k, i])) for i in range(n)]


# --- Layout -----------------------------------------------------------------------

def test_synapse_runs_in_axon_order_keeping_given_order():
    b = ChipBuilder(G)
    c = b.core(1, 0)
    c.profile(0, vth_mant=1)
    c.group(1, w_shift=2)
    # Interleaved axons over three calls.
    c.synapses(axon=[5, 2, 5, 0], target=[1, 2, 3, 4], w_mant=[10, 20, 30, 40],
               delay=[1, 2, 3, 4], group=[0, 1, 0, 1])
    c.synapses(axon=2, target=[7, 6, 5], w_mant=-5, delay=6)
    c.synapses(axon=[0, 5], target=0, w_mant=[-128, 127], group=1)
    cfg = decode(b.build())
    k = core_index(1, 0)
    a = cfg[Region.AXON]
    expected_runs = {0: (0, 2), 2: (2, 4), 5: (6, 3)}
    for axon in range(G.n_axons):
        base, length = expected_runs.get(axon, (0, 0))
        assert (a["syn_base"][k, axon], a["syn_len"][k, axon]) == (base, length), axon
    assert synapse_table(cfg, k, 9) == [
        # axon 0: first call's element, then third call's
        (4, 40, 4, 1), (0, -128, 0, 1),
        # axon 2: first call, then the second call in its order
        (2, 20, 2, 1), (7, -5, 6, 0), (6, -5, 6, 0), (5, -5, 6, 0),
        # axon 5
        (1, 10, 1, 0), (3, 30, 3, 0), (0, 127, 0, 1),
    ]
    # Nothing beyond the used entries, nothing in the other cores.
    assert synapse_table(cfg, k, G.n_synapses)[9:] == [(0, 0, 0, 0)] * (G.n_synapses - 9)
    for other in range(G.n_cores):
        if other != k:
            assert not cfg[Region.AXON]["syn_len"][other].any()


def test_synapses_fill_the_whole_memory():
    g = Geometry(n_neurons=4, n_axons=4, n_synapses=8)
    b = ChipBuilder(g)
    c = b.core(0, 0)
    c.synapses(axon=[3, 0, 3, 1, 0, 3, 2, 1], target=np.arange(8) % 4, w_mant=np.arange(8))
    cfg = decode(b.build())
    a = cfg[Region.AXON]
    assert a["syn_base"][0].tolist() == [0, 2, 4, 5]
    assert a["syn_len"][0].tolist() == [2, 2, 1, 3]
    assert cfg[Region.SYNAPSE]["w_mant"][0].tolist() == [1, 4, 3, 7, 6, 0, 2, 5]


def test_fanout_lists_in_neuron_order_keeping_given_order():
    b = ChipBuilder(G)
    c = b.core(0, 1)
    c.route(neuron=[3, 1, 3], x=[1, 0, 0], y=[1, 1, 0], axon=[7, 6, 5])
    c.to_host(neuron=[1, 6], channel=[4, 2])
    c.route(neuron=3, x=1, y=0, axon=[0, 1])
    cfg = decode(b.build())
    k = core_index(0, 1)
    n = cfg[Region.NEURON]
    expected = {1: (0, 2), 3: (2, 4), 6: (6, 1)}
    for neuron in range(G.n_neurons):
        base, length = expected.get(neuron, (0, 0))
        assert (n["fanout_base"][k, neuron], n["fanout_len"][k, neuron]) == (base, length)
    f = cfg[Region.FANOUT]
    entries = [(int(f["to_host"][k, i]), int(f["x"][k, i]), int(f["y"][k, i]),
                int(f["axon"][k, i]), int(f["channel"][k, i])) for i in range(G.n_fanout)]
    assert entries == [
        (0, 0, 1, 6, 0), (1, 0, 0, 0, 4),                                       # neuron 1
        (0, 1, 1, 7, 0), (0, 0, 0, 5, 0), (0, 1, 0, 0, 0), (0, 1, 0, 1, 0),     # neuron 3
        (1, 0, 0, 0, 2),                                                        # neuron 6
    ] + [(0, 0, 0, 0, 0)] * (G.n_fanout - 7)
    assert b.build().n_outputs == 5


def test_layout_is_per_core():
    b = ChipBuilder(G)
    b.core(0, 0).synapses(axon=1, target=[0, 1], w_mant=3)
    b.core(1, 1).synapses(axon=0, target=2, w_mant=4)
    b.core(1, 1).synapses(axon=1, target=3, w_mant=5)
    b.core(0, 0).route(neuron=2, x=1, y=1, axon=1)
    b.core(1, 1).route(neuron=2, x=0, y=0, axon=1)
    cfg = decode(b.build())
    a, n = cfg[Region.AXON], cfg[Region.NEURON]
    k0, k3 = core_index(0, 0), core_index(1, 1)
    assert (a["syn_base"][k0, 1], a["syn_len"][k0, 1]) == (0, 2)
    assert (a["syn_base"][k3, 0], a["syn_len"][k3, 0]) == (0, 1)
    assert (a["syn_base"][k3, 1], a["syn_len"][k3, 1]) == (1, 1)
    assert (n["fanout_base"][k0, 2], n["fanout_len"][k0, 2]) == (0, 1)
    assert (n["fanout_base"][k3, 2], n["fanout_len"][k3, 2]) == (0, 1)
    assert cfg[Region.FANOUT]["x"][k0, 0] == 1 and cfg[Region.FANOUT]["x"][k3, 0] == 0


def test_parameters_state_and_ports():
    b = ChipBuilder(G)
    c = b.core(1, 1)
    c.profile(2, du=4096, dv=17, vth_mant=(1 << 17) - 1, refractory=255, reset="subtract")
    c.profile(slice(0, 2), du=7)
    c.group(3, w_shift=15)
    c.neurons(range(2, 5), profile=2, bias_mant=[-4096, 0, 4095], bias_exp=7)
    c.neurons([4], profile=1)                    # bias stays as set before
    c.state(np.array([0, 7]), u=[-(1 << 23), (1 << 23) - 1], v=5, refractory=3)
    c.accum(5, [1, 2], [100, -100])
    c.accum(7, slice(6, 8), 9)
    b.input(channel=[0, 2], x=1, y=[1, 0], axon=[3, 4])
    img = b.build()
    cfg = decode(img)
    k = core_index(1, 1)
    p = cfg[Region.PROFILE]
    assert [int(p[f][k, 2]) for f in ("du", "dv", "vth_mant", "refractory", "reset_subtract")] \
        == [4096, 17, (1 << 17) - 1, 255, 1]
    assert p["du"][k, :2].tolist() == [7, 7] and p["reset_subtract"][k, :2].tolist() == [0, 0]
    assert cfg[Region.GROUP]["w_shift"][k].tolist() == [0, 0, 0, 15]
    n = cfg[Region.NEURON]
    assert n["profile"][k, 2:5].tolist() == [2, 2, 1]
    assert n["bias_mant"][k, 2:5].tolist() == [-4096, 0, 4095]
    assert n["bias_exp"][k, 2:5].tolist() == [7, 7, 7]
    s = cfg[Region.STATE]
    assert s["u"][k, [0, 7]].tolist() == [-(1 << 23), (1 << 23) - 1]
    assert s["v"][k, [0, 7]].tolist() == [5, 5]
    assert s["refractory"][k, [0, 7]].tolist() == [3, 3]
    acc = cfg[Region.ACCUM]["value"][k]
    assert acc[5, 1] == 100 and acc[5, 2] == -100 and acc[7, 6] == acc[7, 7] == 9
    assert np.count_nonzero(acc) == 4
    assert img.inputs == [InputPort(0, core_id(1, 1), 3), InputPort(2, core_id(1, 0), 4)]
    assert img.n_inputs == 3 and img.n_outputs == 0


def test_only_written_words_are_emitted():
    b = ChipBuilder(G)
    c = b.core(1, 0)
    c.neurons([2, 5], profile=1)
    c.profile(3, du=1)
    img = b.build()
    core, region, offset = unpack_address(img.addresses)
    got = sorted(zip(core.tolist(), region.tolist(), offset.tolist(), strict=True))
    cid = core_id(1, 0)
    assert got == [(cid, int(Region.PROFILE), 3), (cid, int(Region.NEURON), 2),
                   (cid, int(Region.NEURON), 5)]


def test_explicit_channel_counts():
    b = ChipBuilder(G)
    b.core(0, 0).to_host(0, 1)
    b.n_inputs, b.n_outputs = 5, 9
    img = b.build()
    assert (img.n_inputs, img.n_outputs) == (5, 9)
    b.n_outputs = 1
    with pytest.raises(ImageError, match=r"channel = 1 >= n_outputs 1"):
        b.build()


def test_build_is_repeatable():
    b = ChipBuilder(G)
    c = b.core(0, 0)
    c.synapses(axon=[1, 0], target=[1, 2], w_mant=3)
    c.route(1, 1, 0, 2)
    first = b.build()
    second = b.build()
    np.testing.assert_array_equal(first.addresses, second.addresses)
    np.testing.assert_array_equal(first.words, second.words)
    # More synapses after a build are laid out afresh.
    c.synapses(axon=0, target=5, w_mant=1)
    cfg = decode(b.build())
    assert cfg[Region.AXON]["syn_base"][0, :2].tolist() == [0, 2]
    assert cfg[Region.AXON]["syn_len"][0, :2].tolist() == [2, 1]
    assert cfg[Region.SYNAPSE]["target"][0, :3].tolist() == [2, 5, 1]


# --- Errors ------------------------------------------------------------------------

def test_too_many_synapses():
    b = ChipBuilder(G)
    c = b.core(1, 0)
    c.synapses(axon=0, target=np.arange(8), w_mant=1)
    c.synapses(axon=1, target=np.arange(8), w_mant=1)
    b.build()                                         # exactly n_synapses: fine
    c.synapses(axon=2, target=0, w_mant=1)
    with pytest.raises(ChipError, match=r"core \(1,0\): 17 synapses exceed n_synapses 16"):
        b.build()


def test_too_many_fanout_entries():
    b = ChipBuilder(G)
    c = b.core(0, 1)
    c.route(neuron=np.arange(8), x=0, y=0, axon=0)
    c.to_host(neuron=np.arange(4), channel=np.arange(4))
    b.build()                                         # exactly n_fanout: fine
    c.route(neuron=0, x=1, y=1, axon=1)
    with pytest.raises(ChipError, match=r"core \(0,1\): 13 fan-out entries exceed n_fanout 12"):
        b.build()


@pytest.mark.parametrize("call, message", [
    (lambda c: c.neurons(8, profile=0), r"core \(1,1\) NEURON: index 8 is outside \[0, 8\)"),
    (lambda c: c.neurons([0, -1], profile=0), r"NEURON: index -1 is outside \[0, 8\)"),
    (lambda c: c.state(range(6, 10), u=1), r"core \(1,1\) STATE: index 8 is outside \[0, 8\)"),
    (lambda c: c.profile(4, du=1), r"PROFILE: index 4 is outside \[0, 4\)"),
    (lambda c: c.group(9, w_shift=1), r"GROUP: index 9 is outside \[0, 4\)"),
    (lambda c: c.synapses(axon=[0, 8], target=0, w_mant=1),
     r"core \(1,1\): axon 8 is outside \[0, 8\)"),
    (lambda c: c.synapses(axon=-1, target=0, w_mant=1), r"axon -1 is outside \[0, 8\)"),
    (lambda c: c.accum(8, 0, 1), r"core \(1,1\): accumulator slot 8 is outside \[0, 8\)"),
    (lambda c: c.accum(-1, 0, 1), r"accumulator slot -1 is outside \[0, 8\)"),
], ids=["neuron", "neuron_negative", "state", "profile", "group", "axon", "axon_negative",
        "accum_slot", "accum_slot_negative"])
def test_index_outside_region(call, message):
    c = ChipBuilder(G).core(1, 1)
    with pytest.raises(ChipError, match=message):
        call(c)


@pytest.mark.parametrize("index, bad", [(8, 8), (-1, -1), ([0, 9], 9), (range(7, 9), 8)])
def test_accum_neuron_index_outside_core(index, bad):
    # slot * n_neurons + index would stay inside the ACCUM region and silently
    # hit another slot; the neuron index itself must be checked.
    c = ChipBuilder(G).core(0, 0)
    with pytest.raises(ChipError, match=rf"core \(0,0\) ACCUM: neuron {bad} is outside "
                                        r"\[0, 8\)"):
        c.accum(2, index, 1)


@pytest.mark.parametrize("call, message", [
    (lambda c: c.route(neuron=8, x=0, y=0, axon=0),
     r"core \(0,0\): fan-out source neuron 8 is outside \[0, 8\)"),
    (lambda c: c.to_host(neuron=[1, -2], channel=0),
     r"core \(0,0\): fan-out source neuron -2 is outside \[0, 8\)"),
], ids=["route", "to_host"])
def test_fanout_source_outside_core(call, message):
    b = ChipBuilder(G)
    call(b.core(0, 0))
    with pytest.raises(ChipError, match=message):
        b.build()


@pytest.mark.parametrize("reset", ["Zero", "sub", None, 1])
def test_bad_reset_mode(reset):
    c = ChipBuilder(G).core(0, 1)
    with pytest.raises(ChipError, match=rf"core \(0,1\) profile 2: reset must be 'zero' or "
                                        rf"'subtract', got {reset!r}"):
        c.profile(2, reset=reset)


def test_core_outside_mesh():
    b = ChipBuilder(G)
    with pytest.raises(ChipError, match=r"core \(2,0\) is outside the 2x2 mesh"):
        b.core(2, 0)
    with pytest.raises(ChipError, match=r"core \(0,-1\) is outside the 2x2 mesh"):
        b.core(0, -1)
    with pytest.raises(ChipError, match=r"core \(0,2\) is outside the 2x2 mesh"):
        b.input(channel=0, x=0, y=2, axon=0)


@pytest.mark.parametrize("setup, message", [
    (lambda c: c.synapses(axon=0, target=0, w_mant=200),
     r"SYNAPSE: synapse.w_mant = 200 is outside \[-128, 127\] "
     r"\(signed 8-bit field\)"),
    (lambda c: c.synapses(axon=0, target=0, w_mant=[5, -129]),
     r"synapse.w_mant = -129 is outside \[-128, 127\]"),
    (lambda c: c.synapses(axon=0, target=0, w_mant=1, delay=64),
     r"SYNAPSE: synapse.delay = 64 is outside \[0, 63\] \(unsigned 6-bit field\)"),
    (lambda c: c.synapses(axon=0, target=1024, w_mant=1),
     r"synapse.target = 1024 is outside \[0, 1023\]"),
    (lambda c: c.neurons(0, bias_mant=4096), r"NEURON: neuron.bias_mant = 4096 is outside "
                                              r"\[-4096, 4095\]"),
    (lambda c: c.neurons(0, bias_exp=8), r"neuron.bias_exp = 8 is outside \[0, 7\]"),
    (lambda c: c.profile(0, du=-1), r"PROFILE: profile.du = -1 is outside \[0, 8191\]"),
    (lambda c: c.profile(0, refractory=256), r"profile.refractory = 256 is outside \[0, 255\]"),
    (lambda c: c.group(0, w_shift=16), r"GROUP: group.w_shift = 16 is outside \[0, 15\]"),
    (lambda c: c.state(0, u=1 << 23), r"STATE: state.u = 8388608 is outside "
                                      r"\[-8388608, 8388607\]"),
    (lambda c: c.accum(0, 0, -(1 << 23) - 1), r"ACCUM: accum.value = -8388609 is outside"),
    (lambda c: c.route(0, x=16, y=0, axon=0), r"FANOUT: fanout.x = 16 is outside \[0, 15\]"),
    (lambda c: c.to_host(0, channel=1 << 16), r"fanout.channel = 65536 is outside \[0, 65535\]"),
], ids=["w_mant_200", "w_mant_-129", "delay", "target", "bias_mant", "bias_exp", "du", "refractory",
        "w_shift", "u", "accum", "x", "channel"])
def test_value_outside_field_range(setup, message):
    b = ChipBuilder(G)
    setup(b.core(0, 0))
    with pytest.raises(ChipError, match=r"^core \(0,0\) .*" + message):
        b.build()


@pytest.mark.parametrize("setup, message", [
    (lambda c: c.synapses(axon=0, target=8, w_mant=1),
     r"core 0 SYNAPSE word 0: target = 8 >= n_neurons 8"),
    (lambda c: c.synapses(axon=0, target=0, w_mant=1, delay=7),
     r"SYNAPSE word 0: delay = 7 > max delay 6"),
    (lambda c: c.synapses(axon=0, target=0, w_mant=1, group=4),
     r"SYNAPSE word 0: group = 4 >= n_groups 4"),
    (lambda c: c.neurons(3, profile=4), r"NEURON word 3: profile = 4 >= n_profiles 4"),
    (lambda c: c.profile(1, du=4097), r"PROFILE word 1: du = 4097 > 4096"),
    (lambda c: c.route(0, x=2, y=0, axon=0), r"FANOUT word 0: x = 2 >= cols 2"),
    (lambda c: c.route(0, x=0, y=0, axon=8), r"FANOUT word 0: axon = 8 >= n_axons 8"),
    (lambda c: c.to_host([0, 1], channel=0),
     r"output channel 0 is fed by 2 fan-out references"),
], ids=["target", "delay", "group", "profile", "du", "x", "axon", "channel"])
def test_build_runs_the_content_checks(setup, message):
    b = ChipBuilder(G)
    setup(b.core(0, 0))
    with pytest.raises(ImageError, match=message):
        b.build()


def test_input_port_axon_checked():
    b = ChipBuilder(G)
    b.input(channel=0, x=1, y=1, axon=8)
    with pytest.raises(ImageError, match=r"input port #0: axon 8 >= n_axons 8"):
        b.build()


# --- Word layouts: the examples of docs/architecture.md §5 ----------------------------

def test_spec_word_examples():
    assert int(pack_address(core_id(1, 2), Region.SYNAPSE, 5)) == 0x21400005
    assert int(LAYOUTS[Region.SYNAPSE].pack(target=3, w_mant=-2, delay=1, group=2)) \
        == 0x000000000207F803
    assert int(LAYOUTS[Region.FANOUT].pack(axon=7, x=1, y=2)) == 0x84007
    assert int(LAYOUTS[Region.FANOUT].pack(to_host=1, channel=5)) == 0x2C00000
    assert int(LAYOUTS[Region.ACCUM].pack(value=-7)) == 0x0000000000FFFFF9


def test_builder_writes_the_spec_words():
    b = ChipBuilder(Geometry(rows=3, cols=2, n_neurons=8))
    c = b.core(1, 2)
    c.synapses(axon=0, target=3, w_mant=-2, delay=1, group=2)
    c.route(0, x=1, y=2, axon=7)
    c.to_host(1, channel=5)
    c.accum(0, 0, -7)
    img = b.build()
    k = 2 * 2 + 1
    assert img.memory(Region.SYNAPSE)[k, 0] == 0x000000000207F803
    assert img.memory(Region.FANOUT)[k, :2].tolist() == [0x84007, 0x2C00000]
    assert img.memory(Region.ACCUM)[k, 0] == 0xFFFFF9
    assert 0x21400000 in img.addresses.tolist()


# --- Last write wins ------------------------------------------------------------------

def test_memory_last_write_wins():
    g = Geometry(rows=1, cols=2, n_neurons=4)
    lay = LAYOUTS[Region.STATE]
    a = lambda core, i: int(pack_address(core, Region.STATE, i))  # noqa: E731
    addrs = [a(0, 1), a(1, 1), a(0, 2), a(0, 1), a(1, 1), a(0, 1), a(1, 3)]
    us = [1, 2, 3, 4, 5, 6, 7]
    img = ChipImage(g, addrs, lay.pack(u=us))
    u = lay.unpack(img.memory(Region.STATE))["u"]
    assert u.tolist() == [[0, 6, 3, 0], [0, 5, 0, 7]]
    assert decode(img)[Region.STATE]["u"].tolist() == [[0, 6, 3, 0], [0, 5, 0, 7]]
    # Other regions see nothing.
    assert not img.memory(Region.NEURON).any()
    assert img.memory(Region.NEURON).shape == (2, 4)
    assert img.memory(Region.ACCUM).shape == (2, g.delay_slots * 4)


def test_memory_last_write_wins_across_many_duplicates():
    g = Geometry(n_neurons=16)
    rng = np.random.default_rng(0)
    offsets = rng.integers(0, 16, 200)
    words = rng.integers(0, 1 << 40, 200).astype(np.uint64) & np.uint64(LAYOUTS[Region.STATE]
                                                                        .used_mask)
    img = ChipImage(g, pack_address(0, Region.STATE, offsets), words)
    expected = np.zeros(16, np.uint64)
    for o, w in zip(offsets, words, strict=True):
        expected[o] = w
    np.testing.assert_array_equal(img.memory(Region.STATE)[0], expected)


def test_builder_overwrite_keeps_last_value():
    b = ChipBuilder(G)
    c = b.core(0, 0)
    c.profile(1, du=5, vth_mant=9)
    c.profile(1, du=6)                     # vth_mant back to its default 0
    c.neurons(2, profile=1, bias_mant=3)
    c.neurons(2, bias_mant=-3)             # profile kept
    cfg = decode(b.build())
    assert cfg[Region.PROFILE]["du"][0, 1] == 6
    assert cfg[Region.PROFILE]["vth_mant"][0, 1] == 0
    assert cfg[Region.NEURON]["profile"][0, 2] == 1
    assert cfg[Region.NEURON]["bias_mant"][0, 2] == -3
