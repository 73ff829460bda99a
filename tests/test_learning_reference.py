"""The emulator's learning engine against a plain, per-synapse Python model
written from docs/architecture.md §11 (the shape of the future RTL engine):
random rules, random plastic synapse sets, random traces/reward settings,
with and without stochastic rounding, >= 20 epochs, compared every step."""

import numpy as np
import pytest

from neuromesh import ChipBuilder, Geometry
from neuromesh.chip import LearnRegion, Region
from neuromesh.config import decode, sign_range
from neuromesh.emulator import Emulator
from neuromesh.learning_lfsr import draw

G = Geometry(rows=1, cols=2, n_neurons=6, n_axons=6, n_synapses=32, n_fanout=12,
             n_groups=3, delay_slots=4)
VARS = ["x1", "x2", "y1", "y2", "y3", "r", "w", "t"]


def random_side(rng, n):
    out = []
    for k in range(n):
        m = int(rng.choice([-8, -5, -3, -2, -1, 1, 2, 3, 5, 7]))
        e = int(rng.integers(-7, 3))
        parts = [] if (abs(m), e) == (1, 0) else [f"{abs(m)}*2^{e}"]
        for _ in range(int(rng.integers(0, 5))):
            v = str(rng.choice(VARS))
            c = int(rng.integers(-30, 31)) if rng.random() < 0.3 else 0
            parts.append(v if c == 0 else f"({v} {'+' if c > 0 else '-'} {abs(c)})")
        parts += [["u0"], ["x0"], ["y0"], ["x0", "y0"]][int(rng.integers(0, 4))]
        sign = "-" if m < 0 else ("+" if k else "")
        out.append(f"{' ' if k else ''}{sign}{' ' if k else ''}{'*'.join(parts)}")
    return "".join(out)


def random_chip(seed, stochastic):
    rng = np.random.default_rng(seed)
    b = ChipBuilder(G)
    for x in range(2):
        c = b.core(x, 0)
        c.profile(0, du=4096, dv=2048, vth_mant=int(rng.integers(1, 4)))
        c.neurons(range(6), profile=0, bias_mant=rng.integers(0, 40, 6))
        c.group(0, w_shift=6)
        for gi in (1, 2):
            dw = random_side(rng, int(rng.integers(1, 6)))
            dt = random_side(rng, int(rng.integers(0, 4)))
            rule = f"dw = {dw}" + (f"; dt = {dt}" if dt else "")
            c.group(gi, w_shift=int(rng.integers(2, 7)), rule=rule,
                    w_bits=int(rng.integers(3, 9)), sign=str(rng.choice(
                        ["mixed", "excitatory", "inhibitory"])))
        n = 24
        axon = rng.integers(0, 6, n)
        group = rng.integers(0, 3, n)
        c.synapses(axon=axon, target=rng.integers(0, 6, n), w_mant=np.where(group == 0, 1, 0),
                   delay=rng.integers(0, 3, n), group=group, tag=rng.integers(-20, 20, n))
        c.route(rng.integers(0, 6, 8), rng.integers(0, 2, 8), 0, rng.integers(0, 6, 8))
        c.learning(t_epoch=int(rng.integers(1, 4)),
                   **{k: (int(rng.integers(0, 128)), int(rng.integers(0, 4096)))
                      for k in ("x1", "x2", "y1", "y2", "y3")},
                   stochastic=("trace", "w", "t") if stochastic else (),
                   reward=int(rng.integers(-20, 20)), reward_axon=int(rng.integers(0, 6)),
                   reward_impulse=int(rng.integers(-30, 30)),
                   reward_decay=int(rng.integers(0, 4096)),
                   seed=int(rng.integers(1, 2**32)))
        c.pre_traces(range(6), x1=rng.integers(0, 128, 6), x2=rng.integers(0, 128, 6))
        c.post_traces(range(6), y1=rng.integers(0, 128, 6))
    b.input(range(6), [0, 0, 0, 1, 1, 1], 0, [0, 1, 2, 0, 1, 2])
    return b.build()


class Reference:
    """§11 with Python integers, one operation after another."""

    def __init__(self, image):
        cfg = decode(image)
        self.cfg = cfg
        L = cfg[LearnRegion.LEARN]
        self.L = {k: v.tolist() for k, v in L.items()}
        xt, yt = cfg[LearnRegion.XTRACE], cfg[LearnRegion.YTRACE]
        C = G.n_cores
        self.x = [[[int(xt["x1"][c, a]), int(xt["x2"][c, a])] for a in range(G.n_axons)]
                  for c in range(C)]
        self.x0 = [[bool(xt["x0"][c, a]) for a in range(G.n_axons)] for c in range(C)]
        self.y = [[[int(yt[k][c, n]) for k in ("y1", "y2", "y3")] for n in range(G.n_neurons)]
                  for c in range(C)]
        self.y0 = [[bool(yt["y0"][c, n]) for n in range(G.n_neurons)] for c in range(C)]
        self.w = cfg[Region.SYNAPSE]["w_mant"].tolist()
        self.tag = cfg[LearnRegion.TAG]["tag"].tolist()
        self.r = list(self.L["reward"])
        self.phase = list(self.L["epoch_phase"])
        self.lfsr = list(self.L["lfsr"])

    def draw(self, c, bits):
        self.lfsr[c], v = draw(self.lfsr[c], bits)
        return v

    def trace(self, c, z, d):
        p = z * (4096 - d)
        if self.L["sr_trace"][c] and p % 4096:
            p += self.draw(c, 12)
        return p >> 12

    def hits(self, spikes, channels):
        cfg = self.cfg
        out = set()
        for p in cfg.image.inputs:
            if p.channel in channels:
                out.add(((p.core >> 4) * G.cols + (p.core & 15), p.axon))
        neur, fan = cfg[Region.NEURON], cfg[Region.FANOUT]
        for c, n in spikes:
            base, length = int(neur["fanout_base"][c, n]), int(neur["fanout_len"][c, n])
            for e in range(base, base + length):
                if not fan["to_host"][c, e]:
                    out.add((int(fan["y"][c, e]) * G.cols + int(fan["x"][c, e]),
                             int(fan["axon"][c, e])))
        return out

    def step(self, spikes, channels):
        hits = self.hits(spikes, channels)
        L = self.L
        for c in range(G.n_cores):
            if L["t_epoch"][c] == 0:
                continue
            for n in range(G.n_neurons):
                s = (c, n) in spikes
                for k, name in enumerate(("y1", "y2", "y3")):
                    z = self.trace(c, self.y[c][n][k], L[f"{name}_decay"][c])
                    self.y[c][n][k] = min(z + (L[f"{name}_impulse"][c] if s else 0), 127)
                self.y0[c][n] |= s
            for a in range(G.n_axons):
                h = (c, a) in hits
                for k, name in enumerate(("x1", "x2")):
                    z = self.trace(c, self.x[c][a][k], L[f"{name}_decay"][c])
                    self.x[c][a][k] = min(z + (L[f"{name}_impulse"][c] if h else 0), 127)
                self.x0[c][a] |= h
            r = self.r[c]
            r = int(np.sign(r)) * (abs(r) * (4096 - L["reward_decay"][c]) >> 12)
            if L["reward_en"][c] and (c, L["reward_axon"][c]) in hits:
                r += L["reward_impulse"][c]
            self.r[c] = min(max(r, -128), 127)
            self.phase[c] += 1
            if self.phase[c] == L["t_epoch"][c]:
                self.epoch(c)
                self.phase[c] = 0
                self.x0[c] = [False] * G.n_axons
                self.y0[c] = [False] * G.n_neurons

    def epoch(self, c):
        cfg = self.cfg
        ax, syn = cfg[Region.AXON], cfg[Region.SYNAPSE]
        lg, rule = cfg[LearnRegion.LGROUP], cfg[LearnRegion.RULE]
        for a in range(G.n_axons):
            base, length = int(ax["syn_base"][c, a]), int(ax["syn_len"][c, a])
            for i in range(base, base + length):
                n, gr = int(syn["target"][c, i]), int(syn["group"][c, i])
                if not lg["plastic"][c, gr]:
                    continue
                w, t = self.w[c][i], self.tag[c][i]
                values = [None, *self.x[c][a], *self.y[c][n], self.r[c], w, t]
                acc = [0, 0]
                rb, rl = int(lg["rule_base"][c, gr]), int(lg["rule_len"][c, gr])
                for m in range(rb, rb + rl):
                    dep = int(rule["dep"][c, m])
                    if (dep & 1 and not self.x0[c][a]) or (dep & 2 and not self.y0[c][n]):
                        continue
                    v = int(rule["s_mant"][c, m])
                    for k in range(4):
                        var = int(rule[f"var{k}"][c, m])
                        if var:
                            v *= values[var] + int(rule[f"c{k}"][c, m])
                    acc[int(rule["target"][c, m])] += v << int(rule["s_exp"][c, m])
                for k, flag in ((0, "sr_w"), (1, "sr_t")):
                    if self.L[flag][c] and acc[k] % 128:
                        acc[k] += self.draw(c, 7)
                lo, hi = sign_range(int(lg["w_bits"][c, gr]), int(lg["sign"][c, gr]))
                self.w[c][i] = min(max(w + (acc[0] >> 7), int(lo)), int(hi))
                self.tag[c][i] = min(max(t + (acc[1] >> 7), -128), 127)

    def state(self):
        return {"w_mant": self.w, "tag": self.tag,
                "x1": [[v[0] for v in core] for core in self.x],
                "x2": [[v[1] for v in core] for core in self.x],
                "x0": [[int(v) for v in core] for core in self.x0],
                "y1": [[v[0] for v in core] for core in self.y],
                "y2": [[v[1] for v in core] for core in self.y],
                "y3": [[v[2] for v in core] for core in self.y],
                "y0": [[int(v) for v in core] for core in self.y0],
                "reward": self.r, "epoch_phase": self.phase, "lfsr": self.lfsr}


def compare(seed, stochastic):
    """Run a random chip (batch 2) step by step against the reference; return
    how many weights changed."""
    image = random_chip(seed, stochastic)
    rng = np.random.default_rng(1000 + seed)
    steps = 20 * 3 + 5                                   # >= 20 epochs at t_epoch <= 3
    x = rng.random((steps, 2, 6)) < 0.35
    emu = Emulator(image, batch=2)
    refs = [Reference(image), Reference(image)]
    probe = np.arange(G.n_cores * G.n_neurons)
    start = emu.read_state()["w_mant"].copy()
    for t in range(steps):
        r = emu.run(x[t:t + 1], probe=probe, record=("spikes",))
        s = emu.read_state()
        for row, ref in enumerate(refs):
            spk = r.probes["spikes"][0, row]
            ref.step({divmod(int(i), G.n_neurons) for i in np.flatnonzero(spk)},
                     set(np.flatnonzero(x[t, row]).tolist()))
            for k, v in ref.state().items():
                got = s[k][row]
                np.testing.assert_array_equal(got, np.asarray(v), err_msg=f"step {t} {k}")
    return int((s["w_mant"] != start).sum())


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_emulator_matches_the_reference_every_step(seed, stochastic):
    assert compare(seed, stochastic) > 0                 # the rules did something


@pytest.mark.slow
def test_long_run_against_the_reference():
    """Opt-in (``pytest -m slow``): 1000 random chips, half with stochastic rounding."""
    active = 0
    for seed in range(100, 1100):
        try:
            active += compare(seed, bool(seed % 2)) > 0
        except AssertionError as e:
            raise AssertionError(f"seed {seed}, stochastic {bool(seed % 2)}: {e}") from None
    assert active > 900                                  # nearly every case learned something
