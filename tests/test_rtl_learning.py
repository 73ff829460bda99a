"""The learning engine gateware (rtl/learning.py, rtl/lfsr.py) against the
emulator's learning engine, exactly: random learning chips (the generator of
tests/test_learning_reference.py), every step's traces, reward, phase and LFSR,
every epoch's weights and tags, as the chip's memory words; plus directed
corner cases, the LFSR sequence and the cycle cost.

The engine's memories are :class:`amaranth.lib.memory.Memory` instances in a
harness, initialised from the image's words; the testbench writes the step's
pre/post event bits into them and reads every word back after each
operation."""

import os

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal, unsigned
from amaranth.back import verilog
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator
from test_learning import G as G_DIRECTED
from test_learning import chip, dependency_chip
from test_learning import inputs as pulses
from test_learning_reference import random_chip

from neuromesh import Geometry
from neuromesh.chip import (
    LAYOUTS,
    LEARN_LAYOUTS,
    LEARN_WORD_LAYOUTS,
    LEARN_WORDS,
    LearnRegion,
    LearnWord,
    Region,
)
from neuromesh.config import decode
from neuromesh.emulator import Emulator
from neuromesh.learning_lfsr import draw
from neuromesh.rtl.layouts import stored_layout
from neuromesh.rtl.learning import LearningEngine
from neuromesh.rtl.learning_unit import LearningUnit
from neuromesh.rtl.lfsr import LFSR, lfsr_draw
from neuromesh.sim.verilator import lint

# (engine port prefix, region, writable)
MEMORIES = (
    ("axon", Region.AXON, False),
    ("synapse", Region.SYNAPSE, True),
    ("lgroup", LearnRegion.LGROUP, False),
    ("rule", LearnRegion.RULE, False),
    ("xtrace", LearnRegion.XTRACE, True),
    ("ytrace", LearnRegion.YTRACE, True),
    ("tag", LearnRegion.TAG, True),
)
#: Regions compared word for word after every operation.
COMPARED = (Region.SYNAPSE, LearnRegion.XTRACE, LearnRegion.YTRACE, LearnRegion.TAG)


class Harness(Elaboratable):
    """One core's learning memories around a :class:`LearningEngine`."""

    def __init__(self, geometry, words, narrow=False):
        # ``narrow``: AXON and SYNAPSE as a core with ``narrow_fields`` stores them.
        self.stored = {r: stored_layout(r, geometry) for r in (Region.AXON, Region.SYNAPSE)} \
            if narrow else {}
        self.engine = e = LearningEngine(geometry, axon_layout=self.stored.get(Region.AXON),
                                         synapse_layout=self.stored.get(Region.SYNAPSE))
        self.mems = {}
        for name, region, _ in MEMORIES:
            port = getattr(e, name if name in ("axon", "synapse", "lgroup", "rule")
                           else f"{name}_r")
            shape = port.rdata if name == "synapse" else port.data
            width = len(shape.as_value())
            init = words[region]
            if region in self.stored:
                init = to_stored(init, region, self.stored[region])
            init = [int(w) & ((1 << width) - 1) for w in init]
            self.mems[region] = Memory(shape=unsigned(width), depth=max(len(init), 2),
                                       init=init)
        self.pre = Memory(shape=1, depth=max(geometry.n_axons, 2), init=[])
        self.post = Memory(shape=1, depth=max(geometry.n_neurons, 2), init=[])

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = e = self.engine
        for name, mem in (("pre", self.pre), ("post", self.post)):
            m.submodules[name] = mem
            rp, ep = mem.read_port(), getattr(e, f"{name}_event")
            m.d.comb += [rp.addr.eq(ep.addr), rp.en.eq(ep.en), ep.data.eq(rp.data)]
        wp = self.pre.write_port()
        m.d.comb += [wp.addr.eq(e.pre_event_w.addr), wp.data.eq(e.pre_event_w.data),
                     wp.en.eq(e.pre_event_w.en)]
        for name, region, writable in MEMORIES:
            mem = self.mems[region]
            m.submodules[f"mem_{name}"] = mem
            wp = mem.write_port() if writable else None
            rp = mem.read_port()
            if name == "synapse":       # single port: no read while writing
                sp = e.synapse
                m.d.comb += [rp.addr.eq(sp.addr), rp.en.eq(~sp.we), sp.rdata.eq(rp.data),
                             wp.addr.eq(sp.addr), wp.data.eq(sp.wdata), wp.en.eq(sp.we)]
                continue
            ep = getattr(e, name if not writable else f"{name}_r")
            m.d.comb += [rp.addr.eq(ep.addr), rp.en.eq(ep.en), ep.data.eq(rp.data)]
            if writable:
                ew = getattr(e, f"{name}_w")
                m.d.comb += [wp.addr.eq(ew.addr), wp.data.eq(ew.data), wp.en.eq(ew.en)]
        return m


def to_stored(words, region, layout):
    """Spec words of ``region`` -> words of the narrowed ``layout``."""
    f = LAYOUTS[region].unpack(np.asarray(words, dtype=np.uint64))
    out = []
    for i in range(len(words)):
        w = 0
        for name, member in layout:
            w |= (int(f[name][i]) & ((1 << member.width) - 1)) << member.offset
        out.append(w)
    return out


def from_stored(words, region, layout):
    """Words of the narrowed ``layout`` -> spec words of ``region``."""
    fields = {}
    for name, member in layout:
        raw = [(int(w) >> member.offset) & ((1 << member.width) - 1) for w in words]
        if member.shape.signed:
            raw = [v - (1 << member.width) if v >> (member.width - 1) else v for v in raw]
        fields[name] = np.asarray(raw, dtype=np.int64)
    return [int(w) for w in LAYOUTS[region].pack(**fields)]


def core_words(image, core):
    regions = [r for _, r, _ in MEMORIES] + [LearnRegion.LEARN]
    return {r: image.memory(r)[core] for r in regions}


class Bench:
    """Helpers for one testbench run (``ctx`` set by the testbench)."""

    def __init__(self, harness):
        self.h = harness
        self.e = harness.engine
        self.ctx = None
        self.cycles = []

    async def write_learn(self, words):
        ctx, e = self.ctx, self.e
        for i, w in enumerate(words):
            ctx.set(e.learn.addr, i)
            ctx.set(e.learn.w_data, int(w))
            ctx.set(e.learn.w_en, 1)
            await ctx.tick()
        ctx.set(e.learn.w_en, 0)

    def read_learn(self):
        out = []
        for i in range(LEARN_WORDS):
            self.ctx.set(self.e.learn.addr, i)
            out.append(self.ctx.get(self.e.learn.r_data))
        return out

    async def run(self, start, pre=(), post=()):
        """Set the event bits, pulse ``start``, wait for ``done``; the clocks
        from the pulse to ``done`` inclusive go to ``self.cycles``."""
        ctx, h = self.ctx, self.h
        for mem, hits in ((h.pre, pre), (h.post, post)):
            for i in range(mem.depth):
                ctx.set(mem.data[i], int(i in hits))
        ctx.set(start, 1)
        await ctx.tick()
        ctx.set(start, 0)
        n = 1
        while not ctx.get(self.e.done):
            await ctx.tick()
            n += 1
        await ctx.tick()
        self.cycles.append(n + 1)

    def words(self, region):
        mem = self.h.mems[region]
        out = [self.ctx.get(mem.data[i]) for i in range(len(self.ref_len[region]))]
        if region in self.h.stored:
            out = from_stored(out, region, self.h.stored[region])
        return out


def simulate(geometry, words, script, narrow=False):
    """Run ``script(bench)`` (an async function) on a harness of ``words``."""
    h = Harness(geometry, words, narrow)
    bench = Bench(h)
    bench.ref_len = words

    async def testbench(ctx):
        bench.ctx = ctx
        await bench.write_learn(words[LearnRegion.LEARN])
        await script(bench)

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return bench


def hits(cfg, spikes, channels):
    """(core, axon) pairs with a pre event, from the neurons that spiked and
    the host channels that fired (§11.3)."""
    g = cfg.geometry
    out = set()
    for p in cfg.image.inputs:
        if p.channel in channels:
            out.add(((p.core >> 4) * g.cols + (p.core & 15), p.axon))
    neur, fan = cfg[Region.NEURON], cfg[Region.FANOUT]
    for c, n in spikes:
        base, length = int(neur["fanout_base"][c, n]), int(neur["fanout_len"][c, n])
        for e in range(base, base + length):
            if not fan["to_host"][c, e]:
                out.add((int(fan["y"][c, e]) * g.cols + int(fan["x"][c, e]),
                         int(fan["axon"][c, e])))
    return out


def run_against_emulator(image, steps, inputs=None, narrow=False):
    """Run the emulator (batch 1) for ``steps`` steps, then every core's engine
    with the same events; assert identical words after every step. Returns,
    per core, the list of per-step words (SYNAPSE, XTRACE, YTRACE, TAG as
    lists; LEARN as its five words) and the :class:`Bench` (clock counts)."""
    cfg = decode(image)
    g = cfg.geometry
    if inputs is not None:
        inputs = np.asarray(inputs).reshape(steps, 1, -1)
    emu = Emulator(image, batch=1)
    probe = np.arange(g.n_cores * g.n_neurons)
    events, expected = [], []
    for t in range(steps):
        x = inputs[t:t + 1] if inputs is not None else None
        r = emu.run(x, steps=1, probe=probe, record=("spikes",))
        spikes = {divmod(int(i), g.n_neurons) for i in np.flatnonzero(r.probes["spikes"][0, 0])}
        channels = set(np.flatnonzero(inputs[t, 0]).tolist()) if inputs is not None else set()
        events.append((hits(cfg, spikes, channels), spikes))
        expected.append({k: v[0] for k, v in emu.learning_words().items()})
    results = []
    for core in range(g.n_cores):
        words = core_words(image, core)
        got = []

        async def script(b, core=core, got=got):
            b.events = [({a for c, a in pre if c == core}, {n for c, n in post if c == core})
                        for pre, post in events]
            for pre, post in b.events:
                await b.run(b.e.step_start, pre=pre, post=post)
                if b.ctx.get(b.e.enabled):      # the step consumed its pre events
                    assert not any(b.ctx.get(b.h.pre.data[a]) for a in range(g.n_axons))
                got.append({**{r: b.words(r) for r in COMPARED},
                            LearnRegion.LEARN: b.read_learn()})

        bench = simulate(g, words, script, narrow)
        for t, (w, e) in enumerate(zip(got, expected)):
            for region, vals in w.items():
                want = [int(v) for v in e[region][core]]
                assert vals == want, f"core {core} step {t} {region.name}: {vals} != {want}"
        results.append((got, bench))
    return results


def field(words, region, name):
    """Field ``name`` of a list of words of ``region``."""
    layout = LAYOUTS[region] if region in LAYOUTS else LEARN_LAYOUTS[region]
    return layout.unpack(np.asarray(words, dtype=np.uint64))[name].tolist()


def test_lfsr_draw_networks_of_several_draws():
    """``lfsr_draw(state, j)``, one flat XOR network, is ``j`` draws in series
    (the trace unit's three draws of a word, the weight's and the tag's)."""
    m = Module()
    state = Signal(32)
    outs = {j: Signal(32, name=f"after{j}") for j in (1, 2, 3)}
    m.d.comb += [outs[j].eq(lfsr_draw(state, j)) for j in outs]
    rng = np.random.default_rng(3)
    seeds = [1, 0xFFFFFFFF, 0x80000000, *rng.integers(1, 2**32, 20).tolist()]
    got = []

    async def testbench(ctx):
        for seed in seeds:
            ctx.set(state, seed)
            got.append([ctx.get(outs[j]) for j in outs])

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    for seed, row in zip(seeds, got):
        want, s = [], seed
        for _ in range(3):
            s, _ = draw(s, 32)
            want.append(s)
        assert row == want, hex(seed)


def test_lfsr_sequence():
    """The one-clock draw network against neuromesh.learning_lfsr, from the
    spec's seed 1 (§11.5 pins the first four states) and from random seeds."""
    dut = LFSR()
    seeds = [1, 0x9E3779B9, 0xFFFFFFFF, 0x80000000]
    got = {}

    async def testbench(ctx):
        for seed in seeds:
            ctx.set(dut.seed, seed)
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.advance, 1)
            got[seed] = []
            for _ in range(300):
                await ctx.tick()
                got[seed].append(ctx.get(dut.state))
            ctx.set(dut.advance, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got[1][:4] == [0xB6F6B6C3, 0x8A0F3DB5, 0x09E5F3CF, 0x90BD2FA6]
    for seed in seeds:
        s, want = seed, []
        for _ in range(300):
            s, _v = draw(s, 12)
            want.append(s)
        assert got[seed] == want


@pytest.mark.parametrize("seed,stochastic,narrow", [(s, s % 2 == 1, s >= 4) for s in range(6)])
def test_random_chips_match_the_emulator(seed, stochastic, narrow):
    """Random rules (products, factors, constants, scales, dependencies),
    random plastic synapse sets, sign modes and precisions, reward settings;
    both cores, every step compared; the last two with AXON and SYNAPSE
    narrowed as a ``narrow_fields`` core stores them."""
    image = random_chip(seed, stochastic)
    rng = np.random.default_rng(1000 + seed)
    steps = 20
    x = rng.random((steps, 6)) < 0.35
    results = run_against_emulator(image, steps, x, narrow)
    cfg = decode(image)
    epochs = changes = 0
    for core, (got, _) in enumerate(results):
        t_epoch = int(cfg[LearnRegion.LEARN]["t_epoch"][core])
        epochs += steps // t_epoch
        w0 = cfg[Region.SYNAPSE]["w_mant"][core].tolist()
        changes += sum(a != b for a, b in zip(field(got[-1][Region.SYNAPSE], Region.SYNAPSE,
                                                     "w_mant"), w0))
    assert epochs >= 10 and changes > 0


@pytest.mark.slow
def test_long_run_random_chips():
    """Opt-in (``pytest -m slow``): 1000 random chips (``NEUROMESH_LEARN_CASES``
    overrides), 65 steps each, half with stochastic rounding, every third with
    narrowed AXON/SYNAPSE words; every step compared."""
    cases = int(os.environ.get("NEUROMESH_LEARN_CASES", 1000))
    for seed in range(100, 100 + cases):
        x = np.random.default_rng(1000 + seed).random((65, 6)) < 0.35
        try:
            run_against_emulator(random_chip(seed, seed % 2 == 1), 65, x, seed % 3 == 0)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}: {e}") from None


# --- directed cases (the chips of tests/test_learning.py: one core, host
# channel k feeds axon k, neuron 0 relays axon 0, the synapse under test is
# in group 1) ---------------------------------------------------------------------

def plastic_word(image):
    return int(np.flatnonzero(decode(image)[Region.SYNAPSE]["group"][0] == 1)[0])


def final(image, steps, x=None, name="w_mant", region=Region.SYNAPSE):
    got, _ = run_against_emulator(image, steps, x)[0]
    return [field(s[region], region, name) for s in got]


@pytest.mark.parametrize("rule, w_after", [
    ("dw = 2^-2*x1*y0 - 2^-2*y1*x0", 15),      # the §11.12 table
    ("dw = 2^-4*y3", 16),                      # 6.25 -> 6
    ("dw = -2^-4*y3", 3),                      # -6.25 -> -7: floor of a negative
    ("dw = (x1 - 30)*(y1 + 2)*2^-4", 23),
    ("dw = 5*2^-7*x1*y1*(r + 4)", 41),
    ("dw = 2^8*x1", 127),
    ("dw = -2^8*x1*y1*y3", -128),
    ("dw = 3*2^-1*x2 + r - w + t", 10 + 36 - 3 - 10 + 0),
    ("dw = 2^-7*x1*x2*(y1 - 19)*(y2 - 11)", 17),      # four factors, 7.5 -> 7
    ("dw = -8*2^8*(x1 - 128)*(x2 - 128)*(y1 - 128)*(y2 - 128)", -128),   # |v| = 2^50-ish
])
def test_factors_scales_and_floor(rule, w_after):
    img = chip(rule)
    assert final(img, 1, pulses(1, {0: [0]}))[-1][plastic_word(img)] == w_after


def test_trace_saturation_and_decay():
    img = chip(learning=dict(x1=(100, 2048), x2=(5, 4095), y1=(100, 2048), y2=(127, 0),
                             y3=(90, 4095), t_epoch=63))
    x = pulses(9, {0: [0, 1]})
    assert [v[0] for v in final(img, 9, x, "x1", LearnRegion.XTRACE)] == \
        [100, 127, 63, 31, 15, 7, 3, 1, 0]
    assert [v[0] for v in final(img, 9, x, "y2", LearnRegion.YTRACE)] == [127] * 9
    assert [v[0] for v in final(img, 9, x, "y3", LearnRegion.YTRACE)][:3] == [90, 90, 0]


def test_stochastic_trace_decay():
    img = chip(drive=False, learning=dict(x1=(100, 1000), x2=(0, 0), y1=(0, 0), y2=(0, 0),
                                          y3=(0, 0), stochastic=("trace",), seed=1))
    assert [v[0] for v in final(img, 5, pulses(5, {0: [0]}), "x1", LearnRegion.XTRACE)] == \
        [100, 76, 58, 44, 34]


@pytest.mark.parametrize("w_bits, sign, up, down", [
    (8, "mixed", 127, -128), (4, "mixed", 7, -8), (1, "mixed", 0, -1),
    (4, "excitatory", 7, 0), (8, "excitatory", 127, 0),
    (4, "inhibitory", 0, -8), (8, "inhibitory", 0, -128),
])
def test_clamp_by_precision_and_sign(w_bits, sign, up, down):
    for rule, expect in (("dw = 2^8*u0", up), ("dw = -2^8*u0", down)):
        img = chip(rule, w=0, w_bits=w_bits, sign=sign, drive=False)
        assert final(img, 1)[-1][plastic_word(img)] == expect


def test_each_dependency():
    w = final(dependency_chip(), 1, pulses(1, {0: [0]})[:, :2])[-1]
    assert [w[i] for i in (1, 3, 2, 4)] == [1 + 2 + 4 + 4, 2 + 4, 1 + 4, 4]


def test_stochastic_weight_and_tag_updates_in_order():
    img = chip("dw = 2^-1*u0; dt = 3*2^-2*u0", w=0, drive=False,
               learning=dict(stochastic=("w", "t"), seed=1))
    i = plastic_word(img)
    got, _ = run_against_emulator(img, 4)[0]
    assert [field(s[Region.SYNAPSE], Region.SYNAPSE, "w_mant")[i] for s in got] == [1, 2, 2, 2]
    assert [field(s[LearnRegion.TAG], LearnRegion.TAG, "tag")[i] for s in got] == [1, 2, 2, 3]


def test_tags_epochs_reward_and_engine_off():
    cases = [
        (chip("dw = t; dt = 2^-1*x1"), 3, pulses(3, {0: [0]})),
        (chip("dt = 2^8*x1", tag=-100), 1, pulses(1, {0: [0]})),
        (chip("dt = -2^8*x1 + t"), 1, pulses(1, {0: [0]})),
        (chip("dw = x0 + 2*u0", w=0, drive=False, learning=dict(t_epoch=3)), 9,
         pulses(9, {0: [1]})),
        (chip("dw = 2^3*u0", w=0, learning=dict(t_epoch=0)), 3, pulses(3, {0: [0, 1]})),
        (chip("dw = r*u0", learning=dict(reward=0, reward_axon=2, reward_impulse=100,
                                         reward_decay=2048, t_epoch=2)), 6,
         pulses(6, {2: [0, 1]})),
        (chip("dw = r*u0", learning=dict(reward=-100, reward_axon=2, reward_impulse=-60,
                                         reward_decay=1000, t_epoch=1)), 4,
         pulses(4, {2: [0, 2]})),
    ]
    for img, steps, x in cases:
        run_against_emulator(img, steps, x)


# --- cycle cost, host port, RESET, the epoch operation -------------------------------

def expected_cycles(image, core, got, events):
    """Clocks of every step by the formula of rtl/learning.py's docstring."""
    cfg = decode(image)
    g = cfg.geometry
    learn = {k: int(v[core]) for k, v in cfg[LearnRegion.LEARN].items()}
    if learn["t_epoch"] == 0:
        return [2] * len(events)
    ax, syn = cfg[Region.AXON], cfg[Region.SYNAPSE]
    lg, rule = cfg[LearnRegion.LGROUP], cfg[LearnRegion.RULE]
    x0 = field(image.memory(LearnRegion.XTRACE)[core], LearnRegion.XTRACE, "x0")
    y0 = field(image.memory(LearnRegion.YTRACE)[core], LearnRegion.YTRACE, "y0")
    phase = learn["epoch_phase"]
    out = []
    for t, (pre, post) in enumerate(events):
        x0 = [int(v or a in pre) for a, v in enumerate(x0)]
        y0 = [int(v or n in post) for n, v in enumerate(y0)]
        cycles = g.n_neurons + g.n_axons + 3
        phase += 1
        if phase == learn["t_epoch"]:
            phase = 0
            epoch = 2 + g.n_axons + max(g.n_axons, g.n_neurons) + 1
            for a in range(g.n_axons):
                base, length = int(ax["syn_base"][core, a]), int(ax["syn_len"][core, a])
                epoch += length != 0
                for i in range(base, base + length):
                    gr = int(syn["group"][core, i])
                    if not lg["plastic"][core, gr]:
                        epoch += 3
                        continue
                    n = int(syn["target"][core, i])
                    rb, rl = int(lg["rule_base"][core, gr]), int(lg["rule_len"][core, gr])
                    epoch += 5 + (i + 1 < base + length) + (rl != 0)
                    for m in range(rb, rb + rl):
                        dep = int(rule["dep"][core, m])
                        skip = (dep & 1 and not x0[a]) or (dep & 2 and not y0[n])
                        factors = sum(int(rule[f"var{k}"][core, m]) != 0 for k in range(4))
                        epoch += 1 if skip else 2 + factors
            cycles += epoch - 1
            x0 = [0] * len(x0)
            y0 = [0] * len(y0)
        out.append(cycles)
        assert field(got[t][LearnRegion.XTRACE], LearnRegion.XTRACE, "x0") == x0
    return out


@pytest.mark.parametrize("seed", [4, 5])
def test_cycle_cost(seed):
    image = random_chip(seed, seed % 2 == 1)
    x = np.random.default_rng(seed).random((12, 6)) < 0.35
    for core, (got, bench) in enumerate(run_against_emulator(image, 12, x)):
        assert bench.cycles == expected_cycles(image, core, got, bench.events)
    off = chip("dw = 2^3*u0", w=0, learning=dict(t_epoch=0))
    (got, bench), = run_against_emulator(off, 2, pulses(2, {0: [0]}))
    assert bench.cycles == [2, 2]


def test_host_port_reset_and_epoch_operation():
    """LEARN words read back as written; RESET STATE clears reward and phase
    only, RESET ALL every register; an epoch operation walks, clears x0/y0 and
    the phase, with the same result as the emulator's epoch."""
    img = chip("dw = 2^-1*x1*y0 + r; dt = x2", w=0, drive=True,
               learning=dict(t_epoch=5, reward=7, stochastic=("w",), seed=77))
    words = core_words(img, 0)
    learn = [int(w) for w in words[LearnRegion.LEARN]]
    seen = {}

    async def script(b):
        seen["initial"] = b.read_learn()
        await b.run(b.e.step_start, pre={0}, post={0})
        seen["step"] = b.read_learn()
        await b.run(b.e.epoch_start)
        seen["epoch"] = {r: b.words(r) for r in COMPARED}
        seen["epoch_learn"] = b.read_learn()
        b.ctx.set(b.e.clear_state, 1)
        await b.ctx.tick()
        b.ctx.set(b.e.clear_state, 0)
        seen["reset_state"] = b.read_learn()
        b.ctx.set(b.e.clear_all, 1)
        await b.ctx.tick()
        b.ctx.set(b.e.clear_all, 0)
        seen["reset_all"] = b.read_learn()

    simulate(G_DIRECTED, words, script)
    assert seen["initial"] == learn
    # the same step with t_epoch = 1 ends in an epoch: the emulator's result
    one = chip("dw = 2^-1*x1*y0 + r; dt = x2", w=0, drive=True,
               learning=dict(t_epoch=1, reward=7, stochastic=("w",), seed=77))
    (got, _), = run_against_emulator(one, 1, pulses(1, {0: [0]}))
    assert seen["epoch"] == {r: got[0][r] for r in COMPARED}
    lstate = LEARN_WORD_LAYOUTS[LearnWord.LSTATE]
    assert lstate.unpack(np.uint64(seen["step"][3]))["epoch_phase"] == 1
    assert lstate.unpack(np.uint64(seen["epoch_learn"][3]))["epoch_phase"] == 0
    assert seen["epoch_learn"][:3] == learn[:3] and seen["epoch_learn"][4] == got[0][
        LearnRegion.LEARN][4]
    assert seen["reset_state"][3] == 0 and seen["reset_state"][:3] == learn[:3] \
        and seen["reset_state"][4] == seen["epoch_learn"][4]
    assert seen["reset_all"] == [0] * LEARN_WORDS


@pytest.mark.parametrize("component", ["LearningEngine", "LearningUnit"])
def test_verilog_is_lint_clean(tmp_path, component):
    """The engine, and the unit with its memories, at the default geometry:
    Verilator -Wall is clean with the generated-code waivers of sim/verilator.py."""
    dut = {"LearningEngine": LearningEngine, "LearningUnit": LearningUnit}[component]
    path = tmp_path / "learning.v"
    path.write_text(verilog.convert(dut(Geometry()), name="neuromesh_learning"))
    assert lint(path) == []


# --- the learning unit: engine + its memories, host access, RESET --------------------

class UnitHarness(Elaboratable):
    """A :class:`LearningUnit` with the core's AXON and SYNAPSE memories."""

    def __init__(self, geometry, words):
        self.unit = u = LearningUnit(geometry)
        self.axon = Memory(shape=unsigned(len(u.axon.data.as_value())),
                           depth=max(geometry.n_axons, 2),
                           init=[int(w) for w in words[Region.AXON]])
        width = len(u.synapse.rdata.as_value())
        self.synapse = Memory(shape=unsigned(width), depth=max(geometry.n_synapses, 2),
                              init=[int(w) & ((1 << width) - 1) for w in words[Region.SYNAPSE]])

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        m.submodules.axon, m.submodules.synapse = self.axon, self.synapse
        rp = self.axon.read_port()
        m.d.comb += [rp.addr.eq(u.axon.addr), rp.en.eq(u.axon.en), u.axon.data.eq(rp.data)]
        rp, wp = self.synapse.read_port(), self.synapse.write_port()
        sp = u.synapse
        m.d.comb += [rp.addr.eq(sp.addr), rp.en.eq(~sp.we), sp.rdata.eq(rp.data),
                     wp.addr.eq(sp.addr), wp.data.eq(sp.wdata), wp.en.eq(sp.we)]
        return m


UNIT_REGIONS = (LearnRegion.LEARN, LearnRegion.LGROUP, LearnRegion.RULE, LearnRegion.XTRACE,
                LearnRegion.YTRACE, LearnRegion.TAG)


async def cfg(ctx, u, region, offset, data=None):
    """One host access through ``cfg_req``; a read returns its word."""
    ctx.set(u.cfg_req.payload, {"region": region, "offset": offset, "data": data or 0,
                                "write": data is not None})
    ctx.set(u.cfg_req.valid, 1)
    await ctx.tick().until(u.cfg_req.ready)
    ctx.set(u.cfg_req.valid, 0)
    if data is not None:
        return None
    ctx.set(u.cfg_resp.ready, 1)
    word, = await ctx.tick().sample(u.cfg_resp.payload).until(u.cfg_resp.valid)
    ctx.set(u.cfg_resp.ready, 0)
    return word


def test_learning_unit_host_access_steps_and_reset():
    """Regions 8–13 loaded through the host-access port, events from arrivals
    and the neuron pass, every step read back through the same port and
    equal to the emulator; then RESET STATE and RESET ALL (§11.9)."""
    image = random_chip(3, True)
    steps = 8
    x = np.random.default_rng(3).random((steps, 6)) < 0.35
    expected = run_against_emulator(image, steps, x)[0]
    events, got_words = expected[1].events, expected[0]
    g = decode(image).geometry
    words = core_words(image, 0)
    h = UnitHarness(g, words)
    u = h.unit
    seen = {"steps": []}

    async def read_all(ctx):
        out = {}
        for region in UNIT_REGIONS:
            out[region] = [await cfg(ctx, u, region, i) for i in range(len(words[region]))]
        return out

    async def testbench(ctx):
        for region in UNIT_REGIONS:
            for i, w in enumerate(words[region]):
                await cfg(ctx, u, region, i, int(w))
        assert await read_all(ctx) == {r: [int(w) for w in words[r]] for r in UNIT_REGIONS}
        for pre, post in events:
            for a in sorted(pre):
                ctx.set(u.pre_hit, 1)
                ctx.set(u.pre_axon, a)
                await ctx.tick()
            ctx.set(u.pre_hit, 0)
            for n in range(g.n_neurons):
                ctx.set(u.post_valid, 1)
                ctx.set(u.post_neuron, n)
                ctx.set(u.post_spike, n in post)
                await ctx.tick()
            ctx.set(u.post_valid, 0)
            ctx.set(u.start, 1)
            await ctx.tick()
            ctx.set(u.start, 0)
            await ctx.tick().until(~u.busy)
            state = await read_all(ctx)
            state[Region.SYNAPSE] = [ctx.get(h.synapse.data[i]) for i in range(g.n_synapses)]
            seen["steps"].append(state)
        for mode in (0, 1):
            ctx.set(u.clear_start, 1)
            ctx.set(u.clear_all, mode)
            await ctx.tick()
            ctx.set(u.clear_start, 0)
            await ctx.tick().until(~u.busy)
            seen[f"reset{mode}"] = await read_all(ctx)

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    for t, (state, want) in enumerate(zip(seen["steps"], got_words)):
        for region in (*COMPARED, LearnRegion.LEARN):
            assert state[region] == want[region], f"step {t} {region.name}"
    last = seen["steps"][-1]
    kept = {**last, LearnRegion.XTRACE: [0] * g.n_axons, LearnRegion.YTRACE: [0] * g.n_neurons,
            LearnRegion.TAG: [0] * g.n_synapses}
    kept[LearnRegion.LEARN] = [*last[LearnRegion.LEARN][:3], 0, last[LearnRegion.LEARN][4]]
    assert seen["reset0"] == {r: kept[r] for r in UNIT_REGIONS}
    assert seen["reset1"] == {r: [0] * len(words[r]) for r in UNIT_REGIONS}
