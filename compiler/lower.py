"""Lowering a :class:`~neuromesh.compiler.network.Network` onto a chip:
quantize, partition into cores, place on the mesh, route, emit the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from neuromesh.builder import ChipBuilder
from neuromesh.chip import DECAY_ONE, FLOOR_MANT_MAX, FLOOR_SHIFT, U_BITS, V_MAX, Geometry
from neuromesh.image import ChipImage

from .drc import DesignRuleError, Layout
from .drc import layout as lay_out
from .intsort import stable_sort
from .network import Network, NetworkError
from .placement import HOST, Traffic, group_traffic, place
from .quantize import (
    VTH_MANT_MAX,
    W_MANT_MAX,
    W_MANT_MIN,
    WeightStats,
    choose_scale,
    decay_from_factor,
    quantize_bias,
    quantize_threshold,
    quantize_weights,
)

__all__ = ["Compiled", "compile_network", "estimate_rates", "readout_headroom"]

#: Largest state headroom given to a readout (non-spiking) population.
READOUT_HEADROOM_MAX = 64.0


def readout_headroom(alpha: float, beta: float) -> float:
    """State headroom of a non-spiking readout with retentions ``alpha``
    (u) and ``beta`` (v).

    A readout never resets, so ``v`` settles at ``J / ((1 - alpha) (1 -
    beta))`` under a steady one-step input ``J``; that factor, capped at
    :data:`READOUT_HEADROOM_MAX` (an IF readout integrates without bound), is
    the headroom. Its threshold is the largest the chip has, ``(2**17 - 1)
    << 6``, just below ``v``'s clamp, so it fires only if ``v`` saturates.
    """
    gain = 1.0 / max((1.0 - alpha) * (1.0 - beta), 1.0 / READOUT_HEADROOM_MAX)
    return max(1.0, gain)


@dataclass
class Compiled:
    """A compiled network: the chip image and how to talk to it.

    Attributes
    ----------
    image:
        The chip image.
    input_channels, output_channels:
        ``{port or population: first host channel}``; a port of size ``n``
        uses channels ``first .. first + n - 1``.
    clusters, positions, offsets:
        The partition, where each cluster sits (core x, y) and its first
        neuron on that core (0 unless clusters share the core).
    scales:
        Chip units per float unit of each population.
    quantization:
        Per projection: ``(w_shift, max_abs_error, rms_rel_error, flushed)``.
    placement_cost, naive_cost:
        Expected packet-hops per step of the placement and of row-major.
    """

    image: ChipImage
    network: Network
    input_channels: dict
    output_channels: dict
    clusters: list
    positions: dict
    scales: dict
    quantization: dict = field(default_factory=dict)
    placement_cost: float = 0.0
    naive_cost: float = 0.0
    synapse_sites: dict = field(default_factory=dict)
    w_shifts: dict = field(default_factory=dict)
    offsets: dict = field(default_factory=dict)
    #: ``{(x, y): core neuron}`` of every core's bias neuron (the always-on
    #: source, fires every step).
    bias_neurons: dict = field(default_factory=dict)

    def chip_inputs(self, inputs: dict, steps: int | None = None) -> np.ndarray:
        """Pack per-port 0/1 arrays ``[steps, (batch,) size]`` into the image's
        ``[steps, batch, n_inputs]`` input."""
        arrays = {k: (np.asarray(v)[:, None, :] if np.ndim(v) == 2 else np.asarray(v))
                  for k, v in inputs.items()}
        steps = steps or max(a.shape[0] for a in arrays.values())
        batch = max((a.shape[1] for a in arrays.values()), default=1)
        x = np.zeros((steps, batch, self.image.n_inputs), dtype=bool)
        for name, a in arrays.items():
            first = self.input_channels[name]
            x[:, :, first:first + a.shape[2]] = a[:steps]
        return x

    @property
    def lag(self) -> int:
        """Steps the chip's outputs and readouts run behind the source model
        (the largest latency among them, ``Network.latency``)."""
        lat = self.network.latency
        return max((int(lat.get(p, 0)) for p in (*self.network.outputs,
                                                  *self.network.readouts)), default=0)

    def padded(self, inputs: dict) -> dict:
        """The source model's per-port inputs ``[steps, ...]`` followed by
        :attr:`lag` silent steps, so that every output's window fits in the
        run (use with :meth:`chip_inputs`, then :meth:`read_window`)."""
        lag = self.lag
        return {k: np.concatenate([np.asarray(v), np.zeros((lag, *np.shape(v)[1:]),
                                                         dtype=np.asarray(v).dtype)])
                for k, v in inputs.items()}

    def read_window(self, record, population: str, steps: int) -> np.ndarray:
        """The ``steps`` steps of ``record`` (``[run steps, ...]``, e.g. from
        :meth:`outputs`, :meth:`readouts` or the float reference) that
        correspond to the source model's steps ``0 .. steps - 1`` for
        ``population``: ``record[latency : latency + steps]``."""
        lat = int(self.network.latency.get(population, 0))
        record = np.asarray(record)
        if record.shape[0] < lat + steps:
            raise ValueError(f"read_window: {population!r} runs {lat} step(s) behind the "
                             f"source model, so {steps} steps need a run of {lat + steps}, "
                             f"got {record.shape[0]} (pad the input with padded())")
        return record[lat:lat + steps]

    def outputs(self, result) -> dict:
        """``{population: bool [steps, batch, size]}`` from an emulator result."""
        return {p: result.outputs[:, :, first:first + self.network.populations[p].size]
                for p, first in self.output_channels.items()}

    def neurons(self, population: str) -> np.ndarray:
        """Global neuron indices (``core * n_neurons + neuron``, the
        emulator's ``probe`` numbering) of ``population``, in its order."""
        g = self.image.geometry
        parts = []
        for c in self.clusters:
            if c.population == population:
                x, y = self.positions[c.name]
                parts.append((c.start, (y * g.cols + x) * g.n_neurons
                              + self.offsets.get(c.name, 0) + np.arange(c.stop - c.start)))
        if not parts:
            raise KeyError(f"no population {population!r} in this compiled network")
        return np.concatenate([p for _, p in sorted(parts, key=lambda t: t[0])])

    def cores(self, population: str) -> np.ndarray:
        """Core indices (``y * cols + x``) holding ``population``."""
        cols = self.image.geometry.cols
        return np.array(sorted({self.positions[c.name][1] * cols + self.positions[c.name][0]
                                for c in self.clusters if c.population == population}),
                        dtype=np.int64)

    def set_reward(self, emulator, population: str, reward):
        """Write the reward register (s8) of the cores of ``population``
        (one value, or one per batch row); other cores keep theirs."""
        state = emulator.read_state()["reward"]
        state[:, self.cores(population)] = np.asarray(reward, dtype=np.int64).reshape(-1, 1)
        emulator.set_reward(state)

    def weights(self, state: dict, projection: str) -> np.ndarray:
        """The learned float weights of plastic ``projection`` from an
        emulator's :meth:`read_state`: ``[batch, synapses]`` in the
        projection's synapse order (``pre``, ``post``)."""
        if projection not in self.synapse_sites:
            raise KeyError(f"{projection!r} is not a plastic projection of this network")
        core, slot = self.synapse_sites[projection]
        p = next(p for p in self.network.projections if p.name == projection)
        mant = state["w_mant"][:, core, slot]
        return mant * float(1 << self.w_shifts[projection]) / self.scales[p.dst]

    def readout_probe(self) -> np.ndarray:
        """The ``probe`` argument for the emulator that records every readout."""
        parts = [self.neurons(p) for p in self.network.readouts]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def readouts(self, result) -> dict:
        """``{readout population: float v [steps, batch, size]}`` from an
        emulator run made with ``probe=self.readout_probe()`` and ``v``
        recorded, in the network's float units."""
        out, first = {}, 0
        for p in self.network.readouts:
            n = self.network.populations[p].size
            out[p] = result.probes["v"][:, :, first:first + n] / self.scales[p]
            first += n
        return out


def estimate_rates(net: Network, sample_inputs: dict, steps: int | None = None) -> dict:
    """Spikes per neuron per step of every population (and host input spikes
    per step, key ``"host"``) from a short float run on ``sample_inputs``."""
    from .reference import simulate
    spikes = simulate(net, sample_inputs, steps)
    rates = {n: s.mean(axis=(0, 1)) for n, s in spikes.items() if n in net.populations}
    host = 0.0
    for x in sample_inputs.values():
        x = np.asarray(x, dtype=np.float64)
        host += float(x.sum() / x.shape[0] / (x.shape[1] if x.ndim == 3 else 1))
    rates[HOST] = host
    return rates


def compile_network(net: Network, geometry: Geometry, *, rates: dict | None = None,
                    sample_inputs: dict | None = None, seed: int = 0,
                    name: str = "compiled network", layout: Layout | None = None) -> Compiled:
    """Map ``net`` onto a chip of ``geometry``.

    ``rates``: expected spikes per neuron per step of each population (and
    of the host inputs, key ``"host"``) for placement; or ``sample_inputs``
    (per input port, 0/1 ``[steps, (batch,) size]``) to estimate them with a
    short float run (:func:`estimate_rates`); otherwise 0.1 everywhere.
    Raises :class:`~neuromesh.compiler.drc.DesignRuleError` listing every
    violated limit before compiling anything.

    ``layout``: the design-rule check's :func:`~neuromesh.compiler.drc.layout`
    of ``net`` on ``geometry``, when the caller already has it (e.g.
    :attr:`GeometryFit.layout <neuromesh.compiler.fit.GeometryFit.layout>`):
    the check is not run again. It must be of this very network (not
    changed since) and geometry; a layout of another one raises ValueError.
    """
    image_name = name
    if layout is None:
        lay = lay_out(net, geometry)
    elif layout.needs is None or layout.needs.network is not net:
        raise ValueError("compile_network: the layout given is of another network")
    elif layout.geometry != geometry:
        raise ValueError(f"compile_network: the layout given is for geometry "
                         f"{layout.geometry}, not {geometry}")
    else:
        lay = layout
    if lay.violations:
        raise DesignRuleError(lay.violations)
    pops = net.populations
    incoming = {n: [p for p in net.projections if p.dst == n] for n in pops}

    # 1. Quantization: one scale per population, one shift per projection.
    scales, params, quant, proj_q, decay_err = {}, {}, {}, {}, {}
    for n, pop in pops.items():
        alpha, beta = net.retention(pop)
        du = pop.du if pop.du is not None else int(decay_from_factor(alpha, name=n).d)
        dv = pop.dv if pop.dv is not None else int(decay_from_factor(beta, name=n).d)
        win = []
        for p in incoming[n]:
            w = p.weight
            if p.plastic is not None and p.plastic.w_max is not None:
                # learned weights may reach w_max on every synapse
                w = np.full(w.shape, -p.plastic.w_max if p.plastic.sign == "inhibitory"
                            else p.plastic.w_max)
            win.append(WeightStats.of_synapses(p.post, w, pop.size, name=p.name))
        if pop.spiking:
            choice = choose_scale(pop.threshold, win, pop.bias_array(), name=n)
        else:
            choice = choose_scale(0.0, win, pop.bias_array(), name=n,
                                  headroom=readout_headroom(alpha, beta))
        s = _population_scale(pop, choice.scale)
        vth_mant = (int(quantize_threshold(pop.threshold, s, name=n).vth_mant) if pop.spiking
                    else VTH_MANT_MAX)
        scales[n] = s
        b = quantize_bias(pop.bias_array(), s, name=n)
        params[n] = dict(du=du, dv=dv, vth_mant=vth_mant, bias_mant=b.bias_mant,
                         bias_exp=b.bias_exp, v_floor=_floor(pop, s),
                         state=_initial_state(pop, s))
        decay_err[n] = (abs((1 - du / DECAY_ONE) - alpha), abs((1 - dv / DECAY_ONE) - beta))
        for p in incoming[n]:
            extra = {} if p.plastic is None else dict(w_bits=p.plastic.w_bits,
                                                      w_max=p.plastic.w_max)
            q = quantize_weights(p.weight, s, name=p.name, **extra)
            proj_q[p.name] = q
            quant[p.name] = (q.w_shift, q.max_abs_error, q.rms_rel_error, q.n_flushed)
        del win

    # 2. Partition under every per-core limit: the design-rule check's, so
    # what it accepts fits (small clusters share cores if cores run out).
    clusters, core_groups = lay.clusters, lay.cores

    # 3. Placement by expected traffic.
    if rates is None and sample_inputs is not None:
        rates = estimate_rates(net, sample_inputs)
    rates = dict(rates or {})
    for n in pops:
        rates.setdefault(n, 0.1)
    rates.setdefault(HOST, 0.1 * sum(i.size for i in net.inputs.values()))
    # (a bias neuron's packets stay on its core: no traffic)
    pairs = [(HOST if p.src in net.inputs else p.src, p.dst) for p in net.projections
             if p.src not in net.inputs or not net.inputs[p.src].always_on]
    pairs += [(n, HOST) for n in net.outputs]
    traffic = group_traffic(Traffic.from_rates(clusters, rates, pairs), core_groups)
    # (every perturbation round of the search costs clusters x cores per
    # step: fewer rounds for large layouts)
    kicks = 32 if len(core_groups) <= 64 else max(4, 2048 // len(core_groups))
    placement = place([g.as_cluster() for g in core_groups], traffic, geometry, seed=seed,
                      kicks=kicks)
    positions, offsets = {}, {}
    for g in core_groups:
        for c, first in zip(g.members, g.offsets):
            positions[c.name] = placement.positions[g.name]
            offsets[c.name] = first

    # 4. Routing and emission.
    b = ChipBuilder(geometry)
    cols, n_cores = geometry.cols, geometry.n_cores
    input_channels, first = {}, 0
    for name, port in net.host_inputs().items():
        input_channels[name] = first
        first += port.size
    b.n_inputs = first
    output_channels, first = {}, 0
    for n in net.outputs:
        output_channels[n] = first
        first += pops[n].size
    b.n_outputs = first

    # Every neuron's core (index y * cols + x) and its neuron on that core.
    core_of = {n: np.zeros(p.size, np.int64) for n, p in pops.items()}
    local_of = {n: np.zeros(p.size, np.int64) for n, p in pops.items()}
    for c in clusters:
        x, y = positions[c.name]
        core_of[c.population][c.start:c.stop] = y * cols + x
        local_of[c.population][c.start:c.stop] = offsets[c.name] + np.arange(c.stop - c.start)

    # Per core, each population takes the next profile and the next weight
    # groups (one per incoming projection); a lone population gets 0 and 0.
    profile_of, used, filled = {}, {}, {}
    group_base = {n: np.zeros(n_cores, np.int64) for n in pops}
    for g in core_groups:
        xy = placement.positions[g.name]
        last = g.members[-1]
        filled[xy] = g.offsets[-1] + last.stop - last.start     # neurons on the core
        for c in g.members:
            if (xy, c.population) not in profile_of:
                n_prof, n_grp = used.get(xy, (0, 0))
                profile_of[xy, c.population] = n_prof
                group_base[c.population][xy[1] * cols + xy[0]] = n_grp
                used[xy] = (n_prof + 1, n_grp + len(incoming[c.population]))

    for c in clusters:
        n, pop, pr = c.population, pops[c.population], params[c.population]
        (x, y), at, start, stop = positions[c.name], offsets[c.name], c.start, c.stop
        core = b.core(x, y)
        prof, g0 = profile_of[(x, y), n], int(group_base[n][y * cols + x])
        core.profile(prof, du=pr["du"], dv=pr["dv"], vth_mant=pr["vth_mant"],
                     refractory=pop.refractory, reset=pop.reset,
                     reset_delay=pop.reset_delay and pop.spiking,
                     reset_stored=pop.reset_stored and pop.reset_delay and pop.spiking,
                     reset_retest=pop.reset_retest and pop.spiking,
                     threshold_ge=pop.threshold_ge and pop.spiking, v_floor=pr["v_floor"])
        core.neurons(at + np.arange(stop - start), profile=prof,
                     bias_mant=pr["bias_mant"][start:stop], bias_exp=pr["bias_exp"][start:stop])
        if pr["state"] is not None:
            u0, v0 = pr["state"]
            core.state(at + np.arange(stop - start), u=u0[start:stop], v=v0[start:stop])
        for gi, p in enumerate(incoming[n]):
            if p.plastic is None:
                core.group(g0 + gi, w_shift=proj_q[p.name].w_shift)
            else:
                core.group(g0 + gi, w_shift=proj_q[p.name].w_shift, rule=p.plastic.rule,
                           w_bits=p.plastic.w_bits, sign=p.plastic.sign)
        plastic = [p.plastic for p in incoming[n] if p.plastic is not None]
        if plastic:
            core.learning(**plastic[0].engine())
        if n in output_channels:
            core.to_host(at + np.arange(stop - start),
                         output_channels[n] + np.arange(start, stop))

    # Axons: one per (source, target core) -- a host input channel, a neuron
    # or the always-on signal (source ids of NetworkNeeds; always-on is id
    # 0) -- shared by every synapse from that source into the core, numbered
    # by source id on each core. The always-on axon (axon 0 where present)
    # is fed by the core's bias neuron, which fires at every step from step
    # 0. Its spike of step t arrives at t + 1 + delay, so a synapse of
    # network delay d >= 1 gets delay d - 1; one of delay 0 gets delay 0
    # (steps 1, 2, ...) and its weight is preloaded into the accumulator of
    # step 0.
    ids, n_ids = lay.needs.first, lay.needs.n_ids
    # A synapse's target, mantissa, delay and group travel packed in one
    # int64 (one gather through the sort's order instead of four).
    t_bits = max(geometry.n_neurons - 1, 1).bit_length()
    d_bits = max(geometry.max_delay, 1).bit_length()
    w_bits = (W_MANT_MAX - W_MANT_MIN).bit_length()     # the mantissa, offset to >= 0
    w_at, d_at = t_bits, t_bits + w_bits
    g_at = d_at + d_bits
    syn, preload, sizes = [], [], []
    plastic_names = {}
    for n in pops:
        for gi, p in enumerate(incoming[n]):
            q = proj_q[p.name]
            # a plastic synapse at zero can still grow, so it stays
            nonzero = q.w_mant != 0
            keep = slice(None) if p.plastic is not None or nonzero.all() \
                else np.flatnonzero(nonzero)
            del nonzero
            post, delay, w_mant = p.post[keep], p.delay[keep], q.w_mant[keep]
            core, local = core_of[n][post], local_of[n][post]
            if ids[p.src] == 0:
                key = np.zeros(post.size, np.int64)
                now = delay == 0
                preload.append((core[now], local[now],
                                w_mant[now].astype(np.int64) << int(q.w_shift)))
                delay = np.maximum(delay - 1, 0)
            else:
                key = p.pre[keep].astype(np.int64, copy=False) + ids[p.src]
            if p.plastic is not None:
                plastic_names[p.name] = len(syn)
            payload = w_mant.astype(np.int64) - W_MANT_MIN
            payload <<= w_at
            payload |= local
            payload |= delay.astype(np.int64) << d_at
            payload |= (group_base[n][core] + gi) << g_at
            key += core * n_ids
            syn.append((key, payload))
            sizes.append(post.size)
            del post, delay, w_mant, core, local, key, payload
    if syn:
        pair, payload = (np.concatenate(a) for a in zip(*syn))
    else:
        pair = payload = np.zeros(0, np.int64)
    del syn
    # synapses by (core, source), in the order above within one; a core's
    # axons are numbered by source
    pair, order = stable_sort(pair)
    new = np.r_[True, pair[1:] != pair[:-1]] if pair.size else np.zeros(0, bool)
    rank = np.cumsum(new) - 1                       # (core, source) of each sorted synapse
    firsts = np.flatnonzero(new)                    # the first synapse of each
    pair = pair[new]
    del new
    pair_core, pair_key = pair // n_ids, pair % n_ids
    core_first = np.searchsorted(pair_core, np.arange(n_cores + 1))
    pair_axon = np.arange(pair.size) - core_first[pair_core]
    axon = pair_axon[rank]
    bounds = np.r_[firsts, order.size][core_first]  # each core's sorted synapses
    del firsts
    payload = payload[order]
    for k in np.flatnonzero(np.diff(bounds)).tolist():
        at = slice(bounds[k], bounds[k + 1])
        word = payload[at]
        # already in the builder's layout order (by axon, stable)
        b.core(k % cols, k // cols).synapses(
            axon=axon[at], target=word & ((1 << t_bits) - 1),
            w_mant=((word >> w_at) & ((1 << w_bits) - 1)) + W_MANT_MIN,
            delay=(word >> d_at) & ((1 << d_bits) - 1),
            group=word >> g_at)
    del payload, axon
    sites = {}
    if plastic_names:
        first = np.cumsum([0] + sizes)
        core = pair_core[rank]                      # of the sorted synapses
        slot = np.empty(order.size, np.int64)
        slot[order] = np.arange(order.size) - bounds[core]
        unsorted_core = np.empty(order.size, np.int64)
        unsorted_core[order] = core
        for name, i in plastic_names.items():
            at = slice(first[i], first[i + 1])
            sites[name] = np.stack([unsorted_core[at], slot[at]])
    del rank, order

    # The bias neurons, after every other neuron of their core.
    bias_neurons = {}
    if preload:
        pc, pl, pv = (np.concatenate(a) for a in zip(*preload))
    else:
        pc = pl = pv = np.zeros(0, np.int64)
    for k in pair_core[pair_key == 0].tolist():
        xy = (k % cols, k // cols)
        mine = pc == k
        targets, sums = _sum_by(pl[mine], pv[mine])
        bias_neurons[xy] = _bias_neuron(b.core(*xy), filled[xy], used.get(xy, (0, 0))[0],
                                        0, targets, sums)
    # Host input channels to their axons (channel = source id - 1).
    host = (pair_key >= 1) & (pair_key < lay.needs.first_population)
    if host.any():
        b.input(pair_key[host] - 1, pair_core[host] % cols, pair_core[host] // cols,
                pair_axon[host])
    # Fan-out entries: each source neuron, one per target core it reaches, in
    # the builder's layout order (by source core, then neuron, then target
    # core): one sort of (source, target core, axon) packed in an int64.
    nn = geometry.n_neurons
    a_bits = max(geometry.n_axons - 1, 1).bit_length()
    c_bits = max(n_cores - 1, 1).bit_length()
    assert (n_cores * nn).bit_length() + c_bits + a_bits <= 63
    source = np.zeros(n_ids, np.int64)              # source id -> core * n_neurons + neuron
    for n, pop in pops.items():
        source[ids[n]:ids[n] + pop.size] = core_of[n] * nn + local_of[n]
    neuron = pair_key >= lay.needs.first_population
    entry = source[pair_key[neuron]] << (c_bits + a_bits)
    del source
    entry |= pair_core[neuron] << a_bits
    entry |= pair_axon[neuron]
    del neuron
    entry.sort()
    src = entry >> (c_bits + a_bits)
    bounds = np.searchsorted(src, np.arange(n_cores + 1) * nn)
    for k in np.flatnonzero(np.diff(bounds)).tolist():
        e = entry[bounds[k]:bounds[k + 1]]
        dst_core = (e >> a_bits) & ((1 << c_bits) - 1)
        b.core(k % cols, k // cols).route(src[bounds[k]:bounds[k + 1]] - k * nn,
                                          dst_core % cols, dst_core // cols,
                                          e & ((1 << a_bits) - 1))
    del entry, src
    report = {
        "populations": {n: p.size for n, p in pops.items()},
        "input_channels": input_channels, "output_channels": output_channels,
        "scales": {n: float(v) for n, v in scales.items()},
        "decays": {n: {"du": int(params[n]["du"]), "dv": int(params[n]["dv"]),
                       "u_error": float(decay_err[n][0]), "v_error": float(decay_err[n][1])}
                   for n in pops},
        "latency": {n: int(net.latency.get(n, 0)) for n in pops},
        "conventions": {n: p.conventions() for n, p in pops.items()},
        "floors": {n: {"float": float(p.v_floor), "chip": params[n]["v_floor"] / scales[n]}
                   for n, p in pops.items() if params[n]["v_floor"] is not None},
        "bias_neurons": {f"{x},{y}": int(k) for (x, y), k in sorted(bias_neurons.items())},
        "readouts": list(net.readouts),
        "quantization": {k: {"w_shift": int(v[0]), "max_abs_error": float(v[1]),
                             "rms_rel_error": float(v[2]), "flushed": int(v[3])}
                         for k, v in quant.items()},
        "placement": {"cost": float(placement.cost), "row_major_cost": float(placement.naive_cost),
                      "clusters": {c.name: [*map(int, positions[c.name]), c.start, c.stop,
                                            offsets[c.name]] for c in clusters}},
    }
    image = b.build(meta={"name": image_name, "compiler": report})
    return Compiled(image=image, network=net, input_channels=input_channels,
                    output_channels=output_channels, clusters=clusters, positions=positions,
                    offsets=offsets,
                    scales=scales, quantization=quant, placement_cost=placement.cost,
                    naive_cost=placement.naive_cost, synapse_sites=sites,
                    w_shifts={k: int(v.w_shift) for k, v in proj_q.items()},
                    bias_neurons=bias_neurons)


def _bias_neuron(core, index, profile, axon, targets, values) -> int:
    """Put the bias neuron on ``core`` as neuron ``index`` with ``profile``
    (the next free ones); it fires at every step from step 0 (u and v forget
    at once, bias 1 > threshold 0) and feeds the always-on ``axon`` of its
    own core. ``targets``/``values``: core neurons and their summed input
    for step 0 (accumulator slot 0), wrapped to the 24-bit accumulator.
    Returns ``index``."""
    core.profile(profile, du=DECAY_ONE, dv=DECAY_ONE, vth_mant=0)
    core.neurons(index, profile=profile, bias_mant=1, bias_exp=0)
    core.route(index, core.x, core.y, axon)
    if targets.size:
        half = 1 << (U_BITS - 1)
        core.accum(0, targets, (values + half) % (1 << U_BITS) - half)
    return index


def _sum_by(index: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``index`` values, sorted, and the exact int64 sum of
    ``values`` at each."""
    if not index.size:
        return index, values
    order = np.argsort(index, kind="stable")
    index, values = index[order], values[order]
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    return index[starts], np.add.reduceat(values, starts)


def _population_scale(pop, chosen: float) -> float:
    """The scale of ``pop``: the user's if given, else the compiler's choice,
    lowered so that a floor fits ``floor_mant`` and falls on its grid."""
    s = float(pop.scale) if pop.scale is not None else float(chosen)
    if pop.v_floor is None or pop.v_floor == 0:
        return s
    step = float(1 << FLOOR_SHIFT)
    top = FLOOR_MANT_MAX * step / -pop.v_floor
    if pop.scale is not None:
        if s > top * (1 + 1e-12):
            raise NetworkError(f"population {pop.name!r}: v_floor {pop.v_floor:g} x scale "
                               f"{s:g} is below the deepest floor -{FLOOR_MANT_MAX} << "
                               f"{FLOOR_SHIFT}; the scale must be <= {top:g}")
        return s
    # The largest scale <= s at which the floor is a whole number of steps
    # (Sinabs' usual min_v_mem = -threshold then keeps both exact), unless
    # that would cost more than half the scale.
    k = math.floor(min(s, top) * -pop.v_floor / step)
    aligned = k * step / -pop.v_floor
    return aligned if aligned >= 0.5 * s else min(s, top)


def _floor(pop, scale) -> int | None:
    """The chip floor (``v_floor`` argument of the profile) of ``pop``."""
    if pop.v_floor is None or not pop.spiking:
        return None
    step = 1 << FLOOR_SHIFT
    # floor_mant = 0 means "no floor": the shallowest floor is one step
    mant = max(1, min(int(round(-pop.v_floor * scale / step)), FLOOR_MANT_MAX))
    return -mant * step


def _initial_state(pop, scale):
    """``(u0, v0)`` in chip units, or ``None`` when both are zero."""
    u0, v0 = pop.initial_state()
    if not (u0.any() or v0.any()):
        return None
    u, v = np.rint(u0 * scale).astype(np.int64), np.rint(v0 * scale).astype(np.int64)
    for what, a, lo in (("u0", u, -(1 << (U_BITS - 1))), ("v0", v, -V_MAX)):
        bad = (a < lo) | (a > V_MAX)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise NetworkError(f"population {pop.name!r}: {what}[{i}] x scale {scale:g} = "
                               f"{int(a[i])} does not fit the 24-bit state "
                               f"[{lo}, {V_MAX}]")
    return u, v
