"""Learning configuration in chip images: the LEARNING flag, the learning
regions, every content rule, and builder errors that change nothing."""

import numpy as np
import pytest

from neuromesh import ChipBuilder, Geometry
from neuromesh.chip import (
    LEARN_LAYOUTS,
    LEARN_WORD_LAYOUTS,
    ChipError,
    LearnRegion,
    LearnWord,
    pack_address,
)
from neuromesh.config import decode
from neuromesh.image import FLAG_LEARNING, ChipImage, ImageError, load, save
from neuromesh.learning import LearningRule, RuleError

G = Geometry(n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4, n_groups=2)
STDP = "dw = 2^-2*x1*y0 - 2^-2*y1*x0"


def learning_builder():
    b = ChipBuilder(G)
    c = b.core(0, 0)
    c.profile(0, du=4096, dv=4096, vth_mant=1)
    c.neurons(range(2), profile=0)
    c.group(1, w_shift=6, rule=STDP, w_bits=6, sign="excitatory")
    c.synapses(axon=0, target=[0, 1], w_mant=[3, 31], group=1, tag=[-5, 7])
    c.learning(t_epoch=5, x1=(40, 512), y1=(30, 100), stochastic=("w",), seed=77,
               reward_axon=3, reward_impulse=-4, reward_decay=9)
    b.input(0, 0, 0, 0)
    return b


def with_writes(image, *writes):
    """``image`` plus raw writes ``(region, offset, word)`` to core (0, 0)."""
    addr = [int(pack_address(0, r, o)) for r, o, _ in writes]
    words = [w for _, _, w in writes]
    return ChipImage(image.geometry, np.concatenate([image.addresses, addr]),
                     np.concatenate([image.words, np.array(words, np.uint64)]),
                     inputs=image.inputs, n_inputs=image.n_inputs,
                     n_outputs=image.n_outputs, learning=image.learning)


def test_learning_image_round_trips_through_a_file(tmp_path):
    image = learning_builder().build()
    assert image.learning
    save(image, tmp_path / "l.nmi")
    data = (tmp_path / "l.nmi").read_bytes()
    assert int.from_bytes(data[10:12], "little") == FLAG_LEARNING
    back = load(tmp_path / "l.nmi")
    assert back.learning
    np.testing.assert_array_equal(back.words, image.words)
    cfg = decode(back)
    assert cfg.rules == {(0, 1): LearningRule.parse(STDP)}
    learn = cfg[LearnRegion.LEARN]
    assert (int(learn["t_epoch"][0]), int(learn["sr_w"][0]), int(learn["lfsr"][0])) == (5, 1, 77)
    assert (int(learn["reward_axon"][0]), int(learn["reward_impulse"][0])) == (3, -4)
    assert (int(learn["x1_impulse"][0]), int(learn["x1_decay"][0])) == (40, 512)
    lg = cfg[LearnRegion.LGROUP]
    assert [int(lg[k][0, 1]) for k in ("plastic", "sign", "w_bits", "rule_base",
                                       "rule_len")] == [1, 1, 6, 0, 2]
    assert cfg[LearnRegion.TAG]["tag"][0, :2].tolist() == [-5, 7]


def test_learning_free_images_are_unchanged(tmp_path):
    b = ChipBuilder(G)
    b.core(0, 0).group(0, w_shift=3).synapses(axon=0, target=0, w_mant=1)
    image = b.build()
    assert not image.learning
    save(image, tmp_path / "p.nmi")
    assert (tmp_path / "p.nmi").read_bytes()[10:12] == b"\0\0"
    cfg = decode(load(tmp_path / "p.nmi"))
    assert cfg.rules == {} and LearnRegion.LEARN not in cfg.regions
    # without the flag the learning regions do not exist
    with pytest.raises(ImageError, match=r"reserved region 9, word 0\) is outside .* region "
                                         r"of 0 words"):
        ChipImage(G, [int(pack_address(0, 9, 0))], [0])


def test_region_sizes_with_the_flag():
    ok = [(8, 4), (9, G.n_groups - 1), (10, 63), (11, G.n_axons - 1), (12, G.n_neurons - 1),
          (13, G.n_synapses - 1)]
    for region, offset in ok:
        ChipImage(G, [int(pack_address(0, region, offset))], [0], learning=True)
    for region, offset in [(8, 5), (10, 64), (13, G.n_synapses), (14, 0), (15, 0)]:
        with pytest.raises(ImageError, match="is outside"):
            ChipImage(G, [int(pack_address(0, region, offset))], [0], learning=True)


def _ctrl(**fields):
    return int(LEARN_WORD_LAYOUTS[LearnWord.CONTROL].pack(**fields))


@pytest.mark.parametrize("writes, message", [
    ([(8, 0, 1 << 50)], r"core 0 LEARN word 0 \(CONTROL\): reserved bits = 0x0004000000000000"),
    ([(8, 0, _ctrl(t_epoch=5, reward_en=1, reward_axon=9))],
     r"LEARN word 0 \(CONTROL\): reward_axon = 9 >= n_axons 4"),
    ([(8, 3, 7 << 8)], r"LEARN word 3 \(LSTATE\): epoch_phase = 7 must be < t_epoch"),
    ([(8, 0, 0), (8, 3, 1 << 8)], r"epoch_phase = 1 must be 0 while t_epoch = 0"),
    ([(8, 4, 0)], r"LEARN word 4 \(LFSR\): lfsr = 0 must be non-zero when stochastic"),
    ([(9, 0, 1 << 5)], r"core 0 LGROUP word 0: w_bits = 4 must be 0 in a non-plastic group"),
    ([(9, 1, 1 | 0 << 3)], r"LGROUP word 1: w_bits = 0 is outside \[1, 8\]"),
    ([(9, 1, 1 | 3 << 1 | 8 << 3)], r"LGROUP word 1: sign = 3 is not a sign mode"),
    ([(9, 1, 1 | 8 << 3 | 17 << 13)], r"LGROUP word 1: rule_len = 17 > MAX_PRODUCTS 16"),
    ([(9, 1, 1 | 8 << 3 | 60 << 7 | 5 << 13)], r"rule_len = 5 \(from rule_base\) runs past "
                                               r"the 64 RULE words"),
    ([(10, 9, 9 << 11)], r"core 0 RULE word 9: var0 = 9 is not a variable code"),
    ([(10, 9, 3 << 39)], r"core 0 RULE word 9: c2 = 3 must be 0 in an empty factor slot"),
    ([(11, 2, 1 << 20)], r"core 0 XTRACE word 2: reserved bits"),
    ([(13, 0, 1 << 8)], r"core 0 TAG word 0: reserved bits"),
    ([(9, 1, 1 | 1 << 1 | 5 << 3 | 2 << 13)],
     r"core 0 SYNAPSE word 1: w_mant = 31 is outside the clamp range of its plastic group"),
    ([(3, 1, 0 | 2 << 17)], r"core 0 SYNAPSE word 0: group = 1 is plastic, but the synapse "
                            r"lies in the runs of more than one axon"),
])
def test_content_rules(writes, message):
    image = learning_builder().build()
    with pytest.raises(ImageError, match=message):
        decode(with_writes(image, *writes))


def test_rule_words_decode_to_the_rule():
    image = learning_builder().build()
    words = image.memory(LearnRegion.RULE)[0, :2]
    assert LearningRule.decode(words) == LearningRule.parse(STDP)
    f = LEARN_LAYOUTS[LearnRegion.RULE].unpack(words)
    assert f["dep"].tolist() == [2, 1] and f["s_exp"].tolist() == [5, 5]


def test_builder_errors_change_nothing():
    b = learning_builder()
    c = b.core(0, 0)
    before = b.build().words.copy()
    with pytest.raises(RuleError, match=r"core \(0,0\) group 0: learning rule, column 6: "
                                        r"unknown name 'q1'"):
        c.group(0, w_shift=9, rule="dw = q1")
    with pytest.raises(ChipError, match=r"group 0: sign must be one of mixed, excitatory, "
                                        r"inhibitory, got 'positive'"):
        c.group(0, w_shift=9, rule="dw = x1", sign="positive")
    with pytest.raises(ChipError, match=r"group 0: w_bits = 9 is outside \[1, 8\]"):
        c.group(0, w_shift=9, rule="dw = x1", w_bits=9)
    with pytest.raises(ChipError, match=r"learning: stochastic must be a collection of "
                                        r"'trace', 'w', 't'"):
        c.learning(stochastic="w")
    with pytest.raises(ChipError, match=r"learning: learn.xcfg.x1_impulse = 200 is outside "
                                        r"\[0, 127\]"):
        c.learning(x1=(200, 0))
    with pytest.raises(ChipError, match=r"learning: learn.control.t_epoch = 64 is outside"):
        c.learning(t_epoch=64)
    with pytest.raises(ChipError, match=r"learning: y2 must be \(impulse, decay\)"):
        c.learning(y2=5)
    with pytest.raises(ChipError, match=r"XTRACE: index 4 is outside \[0, 4\)"):
        c.pre_traces(4, x1=1)
    with pytest.raises(ChipError, match=r"YTRACE: ytrace.y1 = 128 is outside \[0, 127\]"):
        c.post_traces(0, y1=128)
    np.testing.assert_array_equal(b.build().words, before)


def test_rules_share_microcode_and_overflow_is_reported():
    b = ChipBuilder(Geometry(n_groups=16))
    c = b.core(0, 0)
    c.group(0, rule=STDP)
    c.group(1, rule=STDP)
    c.group(2, rule="dt = t")
    image = b.build()
    lg = decode(image)[LearnRegion.LGROUP]
    assert lg["rule_base"][0, :3].tolist() == [0, 0, 2]
    assert lg["rule_len"][0, :3].tolist() == [2, 2, 1]
    big = "dw = " + " + ".join(f"{k + 1}*x1" for k in range(7)) + " + " + \
        " + ".join(["y0"] * 9)
    for gi in range(5):
        c.group(gi, rule=big.replace("y0", f"(y{gi % 3 + 1} + {gi})", 1))
    with pytest.raises(ChipError, match=r"core \(0,0\): the learning rules need 80 microcode "
                                        r"words; the RULE region holds 64"):
        b.build()


def test_emulator_of_learning_free_image_has_no_learning_state():
    from neuromesh.emulator import Emulator
    b = ChipBuilder(G)
    b.core(0, 0).group(0, w_shift=3).synapses(axon=0, target=0, w_mant=1)
    e = Emulator(b.build())
    assert not e.learning
    assert set(e.read_state()) == {"u", "v", "refractory", "accum", "step"}
    with pytest.raises(ValueError, match="does not use the learning engine"):
        e.set_reward(1)


def test_learning_words_are_the_chip_memory():
    """After a run, the emulator's learning state packed as chip words decodes
    (as a fresh image) to the same state: what a co-simulation compares."""
    from neuromesh.chip import Region
    from neuromesh.emulator import Emulator
    image = learning_builder().build()
    e = Emulator(image, batch=2)
    x = np.zeros((7, 2, 1), bool)
    x[[0, 3], 0] = True
    e.run(x)
    words = e.learning_words()
    state = e.read_state()
    for row in range(2):
        addrs, data = [], []
        for region, w in words.items():
            addrs.append(pack_address(0, int(region), np.arange(w.shape[2])))
            data.append(w[row, 0])
        fresh = ChipImage(image.geometry, np.concatenate(addrs), np.concatenate(data),
                          learning=True)
        cfg = decode(fresh)
        assert cfg[Region.SYNAPSE]["w_mant"][0].tolist() == state["w_mant"][row, 0].tolist()
        assert cfg[LearnRegion.TAG]["tag"][0].tolist() == state["tag"][row, 0].tolist()
        for k in ("x1", "x2", "x0"):
            assert cfg[LearnRegion.XTRACE][k][0].tolist() == state[k][row, 0].tolist()
        for k in ("y1", "y2", "y3", "y0"):
            assert cfg[LearnRegion.YTRACE][k][0].tolist() == state[k][row, 0].tolist()
        learn = cfg[LearnRegion.LEARN]
        for k in ("reward", "epoch_phase", "lfsr"):
            assert int(learn[k][0]) == int(state[k][row, 0])
        assert int(learn["t_epoch"][0]) == 5
    assert (state["x1"][0] != state["x1"][1]).any()        # the rows had different inputs
