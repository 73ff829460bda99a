"""The learning engine of docs/architecture.md §11, vectorized over batch rows,
cores, traces and plastic synapses.

:class:`LearningEngine` holds every learning state variable per batch row
(weights of plastic synapses, tags, traces, reward, LFSR) and does, per step,
the trace and reward updates and, at the end of an epoch, the walk over the
plastic synapses. It also propagates spikes over plastic synapses (their
weights differ between batch rows, so they cannot live in the shared
matrices of :mod:`.synapses`). The only Python loops are over rules and
their products, never over synapses, neurons or axons.
"""

from __future__ import annotations

import numpy as np

from neuromesh.chip import (
    ACC_FRAC,
    DECAY_ONE,
    LAYOUTS,
    LEARN_LAYOUTS,
    LEARN_WORD_LAYOUTS,
    REWARD_MAX,
    REWARD_MIN,
    S_EXP_MIN,
    TAG_MAX,
    TAG_MIN,
    TRACE_DECAY_BITS,
    TRACE_DRAW_BITS,
    TRACE_MAX,
    UPDATE_DRAW_BITS,
    LearnRegion,
    Region,
)
from neuromesh.config import sign_range
from neuromesh.learning import DEP_X0, DEP_Y0
from neuromesh.learning_lfsr import sequence

from .neuron import decay

__all__ = ["LearningEngine", "draw_values"]

_X_NAMES = ("x1", "x2")
_Y_NAMES = ("y1", "y2", "y3")


def draw_values(lfsr, need, core_of, bits):
    """Random values for the draws marked in ``need``, consumed in order.

    ``lfsr``: uint64 ``[B, C]`` register of each row and core, advanced in
    place. ``need``: bool ``[B, M]``, the operations in consumption order;
    ``core_of``: int ``[M]``, the core of each operation, non-decreasing (each
    core's operations are contiguous). Returns int64 ``[B, M]``: the low
    ``bits`` bits of the draw for every marked operation, 0 elsewhere.
    """
    b, m = need.shape
    if m == 0 or not need.any():
        return np.zeros(need.shape, np.int64)
    n_cores = lfsr.shape[1]
    cs = np.cumsum(need, axis=1)
    starts = np.searchsorted(core_of, np.arange(n_cores))          # segment start per core
    ends = np.searchsorted(core_of, np.arange(n_cores), side="right")
    padded = np.concatenate([np.zeros((b, 1), cs.dtype), cs], axis=1)
    before = padded[:, starts]                                       # [B, C]
    counts = padded[:, ends] - before                                # [B, C]
    pos = cs - 1 - before[:, core_of]
    seq = sequence(lfsr, int(counts.max()))                          # [B, C, n]
    rows = np.arange(b)[:, None]
    vals = seq[rows, core_of[None, :], np.maximum(pos, 0)].astype(np.int64)
    out = np.where(need, vals & ((1 << bits) - 1), 0)
    has = counts > 0
    last = seq[np.arange(b)[:, None], np.arange(n_cores)[None, :], np.maximum(counts - 1, 0)]
    lfsr[has] = last[has]
    return out


class LearningEngine:
    """Learning state and dynamics of every batch row of one chip.

    Parameters
    ----------
    config:
        The decoded chip (with the learning flag).
    batch:
        Number of independent rows.
    edges:
        All :class:`~.synapses.Edges` of the chip; the engine keeps those whose
        synapse is plastic (``self.plastic[edges.synapse]``).
    compact:
        Global neuron index -> index among the emulator's active neurons (-1
        for inactive ones).
    """

    def __init__(self, config, batch, edges, compact):
        g = config.geometry
        self.geometry = g
        self.batch = batch
        learn = config[LearnRegion.LEARN]
        self.t_epoch = learn["t_epoch"]
        self.enabled = self.t_epoch > 0
        self.sr_trace = learn["sr_trace"].astype(bool) & self.enabled
        self.sr_w = learn["sr_w"].astype(bool)
        self.sr_t = learn["sr_t"].astype(bool)
        self.x_imp = np.stack([learn[f"{n}_impulse"] for n in _X_NAMES], -1)       # [C, 2]
        self.x_fac = DECAY_ONE - np.stack([learn[f"{n}_decay"] for n in _X_NAMES], -1)
        self.y_imp = np.stack([learn[f"{n}_impulse"] for n in _Y_NAMES], -1)       # [C, 3]
        self.y_fac = DECAY_ONE - np.stack([learn[f"{n}_decay"] for n in _Y_NAMES], -1)
        self.reward_en = learn["reward_en"].astype(bool)
        self.reward_flat = np.arange(g.n_cores) * g.n_axons + learn["reward_axon"]
        self.reward_imp = learn["reward_impulse"]
        self.reward_fac = DECAY_ONE - learn["reward_decay"]

        xt, yt = config[LearnRegion.XTRACE], config[LearnRegion.YTRACE]
        syn = config[Region.SYNAPSE]
        lg = config[LearnRegion.LGROUP]
        self._init = dict(
            x=np.stack([xt[n] for n in _X_NAMES], -1), x0=xt["x0"].astype(bool),
            y=np.stack([yt[n] for n in _Y_NAMES], -1), y0=yt["y0"].astype(bool),
            w=syn["w_mant"].reshape(-1).astype(np.int64),
            tag=config[LearnRegion.TAG]["tag"].reshape(-1),
            reward=learn["reward"], lfsr=learn["lfsr"].astype(np.uint64),
            phase=learn["epoch_phase"])

        # Plastic synapses in walk order: cores, then axons, then run order.
        cores = np.arange(g.n_cores)[:, None]
        plastic_group = lg["plastic"] == 1
        self.plastic = plastic_group[cores, syn["group"]].reshape(-1)      # [C * S]
        ax = config[Region.AXON]
        core_a, axon_a = np.nonzero(ax["syn_len"] > 0)
        lens = ax["syn_len"][core_a, axon_a]
        start = np.cumsum(lens) - lens
        sidx = np.repeat(ax["syn_base"][core_a, axon_a] - start, lens) + np.arange(lens.sum())
        pcore = np.repeat(core_a, lens)
        flat = pcore * g.n_synapses + sidx
        keep = self.plastic[flat]
        self.p_core = pcore[keep]
        self.p_axon = np.repeat(axon_a, lens)[keep]
        self.p_syn = flat[keep]
        self.p_tgt = syn["target"].reshape(-1)[self.p_syn]
        #: Plastic synapses each core's epoch walk updates (counter LEARN, §13).
        self.p_count = np.bincount(self.p_core, minlength=g.n_cores).astype(np.int64)
        p_group = syn["group"].reshape(-1)[self.p_syn]
        self.p_lo, self.p_hi = sign_range(lg["w_bits"][self.p_core, p_group],
                                          lg["sign"][self.p_core, p_group])
        self.rule_sets = []
        for (core, group), rule in sorted(config.rules.items()):
            idx = np.flatnonzero((self.p_core == core) & (p_group == group))
            if idx.size:
                contiguous = idx[-1] - idx[0] + 1 == idx.size
                self.rule_sets.append((core, slice(int(idx[0]), int(idx[-1]) + 1)
                                       if contiguous else idx, idx, rule))

        # Axon hits: which axons each source reaches (fan-out and port map).
        n_total = g.n_cores * g.n_neurons
        neur, fan = config[Region.NEURON], config[Region.FANOUT]
        core_n, neuron = np.nonzero(neur["fanout_len"] > 0)
        flen = neur["fanout_len"][core_n, neuron]
        fstart = np.cumsum(flen) - flen
        entry = np.repeat(neur["fanout_base"][core_n, neuron] - fstart, flen) + np.arange(
            flen.sum())
        ecore = np.repeat(core_n, flen)
        src = compact[np.repeat(core_n * g.n_neurons + neuron, flen)]
        to_core = fan["to_host"][ecore, entry] == 0
        dest = fan["y"][ecore, entry].astype(np.int64) * g.cols + fan["x"][ecore, entry]
        ok = to_core & (src >= 0)
        self.hit_src = src[ok]
        self.hit_axon = (dest * g.n_axons + fan["axon"][ecore, entry])[ok]
        ports = np.array([(p.channel, p.core, p.axon) for p in config.image.inputs],
                         dtype=np.int64).reshape(-1, 3)
        self.hit_channel = ports[:, 0]
        self.hit_channel_axon = ((ports[:, 1] >> 4) * g.cols + (ports[:, 1] & 0xF)) \
            * g.n_axons + ports[:, 2]

        # Plastic edges for propagation.
        pe = edges.subset(self.plastic[edges.synapse])
        is_neuron = pe.src < n_total
        shift = config[Region.GROUP]["w_shift"]
        gsyn = syn["group"].reshape(-1)[pe.synapse]
        pe_shift = shift[pe.synapse // g.n_synapses, gsyn]
        tgt = compact[pe.tgt]
        nsrc = compact[np.where(is_neuron, pe.src, 0)]
        ok = ~is_neuron | (nsrc >= 0)
        self.e_neuron = [a[is_neuron & ok] for a in (nsrc, tgt, pe.delay, pe.synapse, pe_shift)]
        self.e_input = [a[~is_neuron] for a in (pe.src - n_total, tgt, pe.delay, pe.synapse,
                                                pe_shift)]
        self.config = config
        self._active = np.flatnonzero(compact >= 0)
        self._active_compact = compact[self._active]
        self.reset()

    # -- state ------------------------------------------------------------------

    def reset(self):
        """Every row back to the image's learning state."""
        b = self.batch
        for name, value in self._init.items():
            if name == "phase":
                self.phase = value.copy()
            else:
                setattr(self, name, np.repeat(value[None], b, axis=0))
        self.events = np.zeros(b, np.int64)
        #: Epochs each core ended since the reset (counter LEARN, §13).
        self.epochs = np.zeros(self.geometry.n_cores, np.int64)

    def read_state(self, out: dict):
        """Add the learning state (chip memory view) to ``out``."""
        g = self.geometry
        b = self.batch
        out["w_mant"] = self.w.reshape(b, g.n_cores, g.n_synapses).copy()
        out["tag"] = self.tag.reshape(b, g.n_cores, g.n_synapses).copy()
        for i, name in enumerate(_X_NAMES):
            out[name] = self.x[..., i].copy()
        out["x0"] = self.x0.astype(np.int64)
        for i, name in enumerate(_Y_NAMES):
            out[name] = self.y[..., i].copy()
        out["y0"] = self.y0.astype(np.int64)
        out["reward"] = self.reward.copy()
        out["epoch_phase"] = np.repeat(self.phase[None], b, axis=0)
        out["lfsr"] = self.lfsr.astype(np.int64)

    def memory_words(self) -> dict:
        """The words the chip's memories hold now, uint64 ``[batch, n_cores, size]``
        per region: SYNAPSE (with the learned ``w_mant``) and every learning
        region (8..13) -- what a co-simulation compares after each step."""
        g, b = self.geometry, self.batch
        cfg = self.config
        state = {}
        self.read_state(state)
        syn = dict(cfg[Region.SYNAPSE])
        syn["w_mant"] = state["w_mant"]
        out = {Region.SYNAPSE: LAYOUTS[Region.SYNAPSE].pack(**{
            k: np.broadcast_to(v, (b, g.n_cores, g.n_synapses)) for k, v in syn.items()})}
        learn = dict(cfg[LearnRegion.LEARN])
        learn.update(reward=state["reward"], epoch_phase=state["epoch_phase"],
                     lfsr=state["lfsr"])
        words = [layout.pack(**{k: np.broadcast_to(learn[k], (b, g.n_cores))
                                for k in layout.fields})
                 for layout in LEARN_WORD_LAYOUTS.values()]
        out[LearnRegion.LEARN] = np.stack(words, axis=-1)
        for region in (LearnRegion.LGROUP, LearnRegion.RULE):
            out[region] = np.repeat(self.config.image.memory(region)[None], b, axis=0)
        out[LearnRegion.XTRACE] = LEARN_LAYOUTS[LearnRegion.XTRACE].pack(
            x1=state["x1"], x2=state["x2"], x0=state["x0"])
        out[LearnRegion.YTRACE] = LEARN_LAYOUTS[LearnRegion.YTRACE].pack(
            y1=state["y1"], y2=state["y2"], y3=state["y3"], y0=state["y0"])
        out[LearnRegion.TAG] = LEARN_LAYOUTS[LearnRegion.TAG].pack(tag=state["tag"])
        return out

    def set_reward(self, value):
        value = np.broadcast_to(np.asarray(value), self.reward.shape)
        if not np.issubdtype(value.dtype, np.integer) or value.min() < REWARD_MIN \
                or value.max() > REWARD_MAX:
            raise ValueError(f"reward must be integers in [{REWARD_MIN}, {REWARD_MAX}] "
                             f"(s8), broadcastable to [batch, n_cores] = "
                             f"{list(self.reward.shape)}")
        self.reward = value.astype(np.int64).copy()

    # -- propagation over plastic synapses ------------------------------------------

    def propagate(self, acc, sources, which, step):
        """Add the contributions of plastic edges from ``sources`` (bool
        ``[B, n]``: active-neuron spikes for ``which="neuron"``, host input
        channels for ``which="input"``) into the accumulator slots of step
        ``step + 1 + delay``."""
        src, tgt, delay, syn, shift = self.e_neuron if which == "neuron" else self.e_input
        if sources is None or src.size == 0:
            return
        rows, e = np.nonzero(sources[:, src])
        if rows.size == 0:
            return
        self.events += np.bincount(rows, minlength=self.batch)
        d = self.geometry.delay_slots
        contrib = (self.w[rows, syn[e]] << shift[e]).astype(np.int32)
        # An integer scatter-add into the int32 ring (exact modulo 2**32, of
        # which only the low 24 bits matter, §11.10).
        _, b, n = acc.shape
        flat = ((step + 1 + delay[e].astype(np.int64)) % d * b + rows) * n + tgt[e]
        np.add.at(acc.reshape(-1), flat, contrib)

    # -- per-step dynamics ------------------------------------------------------------

    def step(self, spikes, inputs):
        """Traces, reward and (where an epoch ends) the weight/tag walk after one
        step. ``spikes``: bool ``[B, n_active]``; ``inputs``: bool ``[B,
        n_inputs]`` host input of the step, or None."""
        g = self.geometry
        b = self.batch
        en = self.enabled
        if not en.any():
            return
        full = np.zeros((b, g.n_cores * g.n_neurons), dtype=bool)
        full[:, self._active] = spikes[:, self._active_compact]
        post = full.reshape(b, g.n_cores, g.n_neurons)
        hits = np.zeros((b, g.n_cores * g.n_axons), dtype=bool)
        rows, e = np.nonzero(spikes[:, self.hit_src])
        hits[rows, self.hit_axon[e]] = True
        if inputs is not None and self.hit_channel.size:
            rows, e = np.nonzero(inputs[:, self.hit_channel])
            hits[rows, self.hit_channel_axon[e]] = True
        pre = hits.reshape(b, g.n_cores, g.n_axons)

        # Traces: decay (floor or stochastic), impulse, saturate. Draw order
        # per core: neurons in index order (y1, y2, y3), then axons (x1, x2).
        py = self.y * self.y_fac[None, :, None, :]
        px = self.x * self.x_fac[None, :, None, :]
        mask = (1 << TRACE_DECAY_BITS) - 1
        if self.sr_trace.any():
            need = np.concatenate([(py & mask).reshape(b, g.n_cores, -1),
                                   (px & mask).reshape(b, g.n_cores, -1)], axis=2) != 0
            need &= self.sr_trace[None, :, None]
            k = need.shape[2]
            r = draw_values(self.lfsr, need.reshape(b, -1),
                            np.repeat(np.arange(g.n_cores), k), TRACE_DRAW_BITS)
            r = r.reshape(b, g.n_cores, k)
            ny = g.n_neurons * 3
            py = py + r[:, :, :ny].reshape(py.shape)
            px = px + r[:, :, ny:].reshape(px.shape)
        y = np.minimum((py >> TRACE_DECAY_BITS) + post[..., None] * self.y_imp[None, :, None],
                       TRACE_MAX)
        x = np.minimum((px >> TRACE_DECAY_BITS) + pre[..., None] * self.x_imp[None, :, None],
                       TRACE_MAX)
        on = en[None, :, None]
        self.y = np.where(on[..., None], y, self.y)
        self.x = np.where(on[..., None], x, self.x)
        self.y0 = np.where(on, self.y0 | post, self.y0)
        self.x0 = np.where(on, self.x0 | pre, self.x0)

        # Reward: decays toward zero, plus the impulse if its axon was hit.
        hit = hits[:, self.reward_flat] & self.reward_en[None, :]
        r = decay(self.reward, self.reward_fac[None, :]) + np.where(hit, self.reward_imp, 0)
        self.reward = np.where(en[None, :], np.clip(r, REWARD_MIN, REWARD_MAX), self.reward)

        self.phase = np.where(en, self.phase + 1, self.phase)
        fire = en & (self.phase == self.t_epoch)
        if fire.any():
            self.epochs += fire
            self._epoch(fire)
            self.phase[fire] = 0
            self.x0[:, fire] = False
            self.y0[:, fire] = False

    def _epoch(self, fire):
        """Apply the rules to every plastic synapse of the cores in ``fire``."""
        b = self.batch
        n = self.p_syn.size
        acc = {"dw": np.zeros((b, n), np.int64), "dt": np.zeros((b, n), np.int64)}
        w = self.w[:, self.p_syn]
        tag = self.tag[:, self.p_syn]
        for core, idx, members, rule in self.rule_sets:
            if not fire[core]:
                continue
            axon, tgt = self.p_axon[idx], self.p_tgt[idx]
            xs, ys = self.x[:, core, axon], self.y[:, core, tgt]
            values = {"x1": xs[..., 0], "x2": xs[..., 1], "y1": ys[..., 0],
                      "y2": ys[..., 1], "y3": ys[..., 2], "r": self.reward[:, core, None],
                      "w": w[:, idx], "t": tag[:, idx]}
            x0, y0 = self.x0[:, core, axon], self.y0[:, core, tgt]
            for p in rule.products:
                term = np.full((b, members.size), p.s_mant, dtype=np.int64)
                for f in p.factors:
                    term *= values[f.var] + f.const
                term <<= p.s_exp - S_EXP_MIN
                if p.dep & DEP_X0:
                    term *= x0
                if p.dep & DEP_Y0:
                    term *= y0
                acc[p.target][:, idx] += term
        sel = np.flatnonzero(fire[self.p_core])
        a = np.stack([acc["dw"][:, sel], acc["dt"][:, sel]])
        frac = (1 << ACC_FRAC) - 1
        need = np.stack([(a[0] & frac != 0) & self.sr_w[self.p_core[sel]],
                         (a[1] & frac != 0) & self.sr_t[self.p_core[sel]]], axis=2)
        if need.any():
            r = draw_values(self.lfsr, need.reshape(b, -1), np.repeat(self.p_core[sel], 2),
                            UPDATE_DRAW_BITS).reshape(b, -1, 2)
            a = a + np.moveaxis(r, 2, 0)
        dw, dt = a >> ACC_FRAC
        syn = self.p_syn[sel]
        self.w[:, syn] = np.clip(w[:, sel] + dw, self.p_lo[sel], self.p_hi[sel])
        self.tag[:, syn] = np.clip(tag[:, sel] + dt, TAG_MIN, TAG_MAX)
