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

from .drc import DesignRuleError, design_rule_check, population_needs, sharing_args
from .network import Network, NetworkError
from .placement import (
    HOST,
    CoreGroup,
    Traffic,
    group_traffic,
    max_neurons_per_core,
    pack,
    partition,
    place,
)
from .quantize import (
    VTH_MANT_MAX,
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
                    name: str = "compiled network") -> Compiled:
    """Map ``net`` onto a chip of ``geometry``.

    ``rates``: expected spikes per neuron per step of each population (and
    of the host inputs, key ``"host"``) for placement; or ``sample_inputs``
    (per input port, 0/1 ``[steps, (batch,) size]``) to estimate them with a
    short float run (:func:`estimate_rates`); otherwise 0.1 everywhere.
    Raises :class:`~neuromesh.compiler.drc.DesignRuleError` listing every
    violated limit before compiling anything.
    """
    image_name = name
    violations = design_rule_check(net, geometry)
    if violations:
        raise DesignRuleError(violations)
    pops = net.populations
    incoming = {n: [p for p in net.projections if p.dst == n] for n in pops}

    # 1. Quantization: one scale per population, one shift per projection.
    scales, params, quant, proj_q, decay_err = {}, {}, {}, {}, {}
    for n, pop in pops.items():
        alpha, beta = net.retention(pop)
        du = pop.du if pop.du is not None else int(decay_from_factor(alpha, name=n).d)
        dv = pop.dv if pop.dv is not None else int(decay_from_factor(beta, name=n).d)
        # Weights as [n_post, n_pre] (quantize's layout), for the estimate of
        # the largest input one step can bring to one neuron.
        win = []
        for p in incoming[n]:
            dense = np.zeros((pop.size, int(p.pre.max(initial=0)) + 1))
            w = p.weight
            if p.plastic is not None and p.plastic.w_max is not None:
                # learned weights may reach w_max on every synapse
                w = np.full(w.shape, -p.plastic.w_max if p.plastic.sign == "inhibitory"
                            else p.plastic.w_max)
            np.add.at(dense, (p.post, p.pre), w)
            win.append(dense)
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

    # 2. Partition under every per-core limit.
    def needs(n, fanout):
        return population_needs(net, n, fanout)

    k_of = {n: max_neurons_per_core(needs(n, 1), geometry)[0] for n in pops}
    fanout = {}
    for n in pops:
        f = sum(-(-pops[p.dst].size // k_of[p.dst]) for p in net.projections if p.src == n)
        fanout[n] = max(1, f + (1 if n in net.outputs else 0))
    clusters = partition([needs(n, fanout[n]) for n in pops], geometry, check_cores=False)
    if len(clusters) > geometry.n_cores:
        # Too many for a core each: small clusters share cores.
        core_groups = pack(clusters, geometry, **sharing_args(net, clusters))
    else:
        core_groups = [CoreGroup(c.name, (c,), (0,), len(incoming[c.population]))
                       for c in clusters]

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
    placement = place([g.as_cluster() for g in core_groups], traffic, geometry, seed=seed)
    positions, offsets = {}, {}
    for g in core_groups:
        for c, first in zip(g.members, g.offsets):
            positions[c.name] = placement.positions[g.name]
            offsets[c.name] = first

    # 4. Routing and emission.
    b = ChipBuilder(geometry)
    home = {}    # population -> (core x, y, first neuron, stop, first core neuron) per cluster
    for c in clusters:
        home.setdefault(c.population, []).append((*positions[c.name], c.start, c.stop,
                                                  offsets[c.name]))
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

    def locate(pop, idx):
        """(cluster number, neuron on its core) of neurons ``idx`` of ``pop``."""
        starts = np.array([h[2] for h in home[pop]])
        firsts = np.array([h[4] for h in home[pop]])
        k = np.searchsorted(starts, idx, side="right") - 1
        return k, idx - starts[k] + firsts[k]

    # Per core, each population takes the next profile and the next weight
    # groups (one per incoming projection); a lone population gets 0 and 0.
    profile_of, group_of, used = {}, {}, {}
    for g in core_groups:
        xy = placement.positions[g.name]
        for c in g.members:
            if (xy, c.population) not in profile_of:
                n_prof, n_grp = used.get(xy, (0, 0))
                profile_of[xy, c.population] = n_prof
                group_of[xy, c.population] = n_grp
                used[xy] = (n_prof + 1, n_grp + len(incoming[c.population]))

    for n, pop in pops.items():
        for x, y, start, stop, at in home[n]:
            c = b.core(x, y)
            pr = params[n]
            prof, g0 = profile_of[(x, y), n], group_of[(x, y), n]
            c.profile(prof, du=pr["du"], dv=pr["dv"], vth_mant=pr["vth_mant"],
                      refractory=pop.refractory, reset=pop.reset,
                      reset_delay=pop.reset_delay and pop.spiking,
                      reset_stored=pop.reset_stored and pop.reset_delay and pop.spiking,
                      reset_retest=pop.reset_retest and pop.spiking,
                      threshold_ge=pop.threshold_ge and pop.spiking, v_floor=pr["v_floor"])
            c.neurons(at + np.arange(stop - start), profile=prof,
                      bias_mant=pr["bias_mant"][start:stop], bias_exp=pr["bias_exp"][start:stop])
            if pr["state"] is not None:
                u0, v0 = pr["state"]
                c.state(at + np.arange(stop - start), u=u0[start:stop], v=v0[start:stop])
            for g, p in enumerate(incoming[n]):
                if p.plastic is None:
                    c.group(g0 + g, w_shift=proj_q[p.name].w_shift)
                else:
                    c.group(g0 + g, w_shift=proj_q[p.name].w_shift, rule=p.plastic.rule,
                            w_bits=p.plastic.w_bits, sign=p.plastic.sign)
            plastic = [p.plastic for p in incoming[n] if p.plastic is not None]
            if plastic:
                c.learning(**plastic[0].engine())
        if n in output_channels:
            for x, y, start, stop, at in home[n]:
                b.core(x, y).to_host(at + np.arange(stop - start),
                                     output_channels[n] + np.arange(start, stop))

    # Axons: one per (source neuron or input channel, target core), shared by
    # every synapse from that source into the core. Every always-on port is
    # the same signal: one axon per core, fed by the core's bias neuron,
    # which fires at every step from step 0. Its spike of step t arrives at
    # t + 1 + delay, so a synapse of network delay d >= 1 gets delay d - 1;
    # one of delay 0 gets delay 0 (steps 1, 2, ...) and its weight is
    # preloaded into the accumulator of step 0.
    always_on = {k for k, v in net.inputs.items() if v.always_on}
    preload: dict = {}     # (x, y) -> {core neuron: summed contribution for step 0}
    size_of = {**{k: v.size for k, v in net.inputs.items()}, **{k: v.size for k, v in pops.items()}}
    calls: dict = {}       # (x, y) -> [(plastic projection or None, its synapses, axons)]
    axon_of: dict = {}     # (x, y) -> {source name: axon id per source index, -1 = none}
    next_axon: dict = {}
    for n in pops:
        for g, p in enumerate(incoming[n]):
            q = proj_q[p.name]
            k, local = locate(n, p.post)
            # a plastic synapse at zero can still grow, so it stays
            keep = q.w_mant != 0 if p.plastic is None else np.ones(q.w_mant.shape, bool)
            for ci, (x, y, *_) in enumerate(home[n]):
                sel = keep & (k == ci)
                if not sel.any():
                    continue
                src_key, pre = p.src, p.pre[sel]
                delay = p.delay[sel]
                if p.src in always_on:
                    src_key, pre = _ALWAYS_ON, np.zeros_like(pre)
                    w0 = (q.w_mant[sel] << q.w_shift)[delay == 0]
                    at0 = preload.setdefault((x, y), {})
                    for t, w in zip(local[sel][delay == 0].tolist(), w0.tolist()):
                        at0[t] = at0.get(t, 0) + int(w)
                    delay = np.maximum(delay - 1, 0)
                table = axon_of.setdefault((x, y), {}).setdefault(
                    src_key, np.full(1 if src_key == _ALWAYS_ON else size_of[p.src], -1,
                                     dtype=np.int64))
                new = np.unique(pre[table[pre] < 0])
                first_id = next_axon.get((x, y), 0)
                table[new] = first_id + np.arange(new.size)
                next_axon[(x, y)] = first_id + new.size
                b.core(x, y).synapses(axon=table[pre], target=local[sel],
                                      w_mant=q.w_mant[sel], delay=delay,
                                      group=group_of[(x, y), n] + g)
                calls.setdefault((x, y), []).append(
                    (p.name if p.plastic is not None else None, np.flatnonzero(sel),
                     table[p.pre[sel]]))
    sites = _synapse_sites(calls, geometry, {p.name: p.weight.size for p in net.projections
                                             if p.plastic is not None})
    # Fan-out entries and input ports from the axon tables.
    bias_neurons = {}
    for (x, y), tables in axon_of.items():
        for src, table in tables.items():
            idx = np.flatnonzero(table >= 0)
            if src == _ALWAYS_ON:
                bias_neurons[(x, y)] = _bias_neuron(b.core(x, y), home, used.get((x, y), (0, 0))[0],
                                                    int(table[0]), preload.get((x, y), {}), (x, y))
                continue
            if src in net.inputs:
                b.input(input_channels[src] + idx, x, y, table[idx])
                continue
            k, local = locate(src, idx)
            for ci in np.unique(k):
                sx, sy = home[src][int(ci)][:2]
                b.core(sx, sy).route(local[k == ci], x, y, table[idx[k == ci]])
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


def _synapse_sites(calls, geometry, plastic_sizes) -> dict:
    """``{plastic projection: (core, synapse slot) int64 [2, n]}`` in the
    projection's synapse order. The builder lays a core's synapses out by a
    stable sort on the axon of everything added, in the order added."""
    sites = {name: np.full((2, n), -1, dtype=np.int64) for name, n in plastic_sizes.items()}
    for (x, y), entries in calls.items():
        axons = np.concatenate([a for _, _, a in entries])
        slot = np.empty(axons.size, dtype=np.int64)
        slot[np.argsort(axons, kind="stable")] = np.arange(axons.size)
        first = 0
        for name, idx, a in entries:
            if name is not None:
                sites[name][0, idx] = y * geometry.cols + x
                sites[name][1, idx] = slot[first:first + a.size]
            first += a.size
    return sites



#: The axon-table key of the always-on signal (not a valid population name:
#: names never start with a NUL).
_ALWAYS_ON = "\0always-on"


def _bias_neuron(core, home, profile, axon, preload, xy) -> int:
    """Put the bias neuron on ``core``: the next free neuron and profile;
    it fires at every step from step 0 (u and v forget at once, bias 1 >
    threshold 0) and feeds the always-on ``axon``. ``preload``: ``{core
    neuron: contribution}`` for step 0 (accumulator slot 0). Returns the
    bias neuron's index."""
    index = max((at + stop - start for entries in home.values()
                 for x, y, start, stop, at in entries if (x, y) == xy), default=0)
    core.profile(profile, du=DECAY_ONE, dv=DECAY_ONE, vth_mant=0)
    core.neurons(index, profile=profile, bias_mant=1, bias_exp=0)
    core.route(index, xy[0], xy[1], axon)
    if preload:
        targets = np.array(sorted(preload))
        half = 1 << (U_BITS - 1)
        values = (np.array([preload[t] for t in targets]) + half) % (1 << U_BITS) - half
        core.accum(0, targets, values)
    return index


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
