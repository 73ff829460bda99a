"""Design-rule check: every way a network breaks the chip's limits, at once,
counted exactly as the compiler will lay the network out.

:func:`design_rule_check` collects *all* violations (layer, resource, limit,
value, by how much) before anything is compiled, so a user fixes a network
in one round rather than one error at a time. It and
:func:`~neuromesh.compiler.compile_network` call the same :func:`layout`,
which partitions every population into clusters and the clusters into cores
from the exact needs of each neuron (:class:`NetworkNeeds`): what the check
accepts, the compiler places, and the cores the check counts are the cores
the compiler uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from neuromesh.chip import ChipError, Geometry

from .intsort import distinct, sort_pairs
from .network import Network
from .placement import RESOURCES, CoreGroup, NeuronNeeds, cut, pack

__all__ = ["Violation", "DesignRuleError", "NetworkNeeds", "Layout", "layout",
           "design_rule_check"]

#: Fractions of a core's fan-out entries kept free, round by round, when
#: a population is cut again with the fan-out of its previous cut
#: (:func:`layout`).
FANOUT_MARGINS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``layer`` needs ``value`` of ``resource``; the limit is ``limit``.
    ``note`` says where the need comes from, when that helps."""

    layer: str
    resource: str
    limit: int
    value: int
    note: str = field(default="", compare=False)

    def __str__(self):
        text = (f"{self.layer}: {self.resource} = {self.value} exceeds the limit {self.limit} "
                f"by {self.value - self.limit}")
        return f"{text} ({self.note})" if self.note else text


class DesignRuleError(ChipError):
    """The network breaks one or more chip limits (all are listed)."""

    def __init__(self, violations: list[Violation]):
        self.violations = list(violations)
        super().__init__(f"{len(self.violations)} design-rule violation(s):\n" +
                         "\n".join(f"  - {v}" for v in self.violations))


def _index_dtype(n: int):
    return np.int32 if n < (1 << 31) - 1 else np.int64


class NetworkNeeds:
    """Exact per-neuron counts of a network, independent of the geometry.

    Every source -- a host input channel or a neuron -- gets one id (all
    always-on ports share id 0: one signal, one axon per core). For each
    population it keeps its incoming synapses sorted by target neuron (their
    source ids and, for the distinct-source count of any neuron range,
    :attr:`NeuronNeeds.first_seen`) and the same synapses sorted by source
    (for the fan-out of the source neurons once the population is cut).
    Built once in ``O(S log S)`` for ``S`` synapses; :func:`layout` reuses it
    for every geometry.
    """

    def __init__(self, net: Network):
        self.network = net
        first, n = {}, 1
        for name, port in net.inputs.items():
            if port.always_on:
                first[name] = 0
            else:
                first[name], n = n, n + port.size
        self.first_population = n
        for name, pop in net.populations.items():
            first[name], n = n, n + pop.size
        #: ``{source name: its first id}``
        self.first = first
        #: number of ids
        self.n_ids = n
        dt = _index_dtype(n)
        self.incoming = {name: [p for p in net.projections if p.dst == name]
                         for name in net.populations}
        #: ``{population: 1 if it hears an always-on port}``
        self.bias = {}
        self._by_target = {}
        self._by_source = {}
        self._prefix = {}
        #: ``{population: distinct sources of each neuron}``
        self.axons = {}
        for name, pop in net.populations.items():
            projs = self.incoming[name]
            self.bias[name] = int(any(first[p.src] == 0 for p in projs))
            keys = np.concatenate([np.zeros(p.pre.size, np.int64) if first[p.src] == 0
                                   else first[p.src] + p.pre for p in projs]
                                  ) if projs else np.zeros(0, np.int64)
            post = np.concatenate([p.post for p in projs]) if projs \
                else np.zeros(0, np.int64)
            # by target neuron (any order within one), then by source id,
            # each source's synapses in target order
            post, keys = sort_pairs(post, keys, n)
            pos, k2 = sort_pairs(keys, np.arange(keys.size), keys.size, minor_first=True)
            q2 = post[pos]
            prev = np.full(k2.size, -1, dtype=dt)
            same = k2[1:] == k2[:-1]
            prev[1:][same] = q2[:-1][same]
            first_seen = np.empty_like(prev)
            first_seen[pos] = prev
            synapses = np.bincount(post, minlength=pop.size).astype(np.int64)
            self.axons[name] = np.bincount(post[first_seen < post], minlength=pop.size)
            self._by_target[name] = (synapses, keys.astype(dt), first_seen)
            self._prefix[name] = np.concatenate([[0], np.cumsum(synapses)])
            cut_at = int(np.searchsorted(k2, self.first_population))   # neurons only
            k2, q2 = k2[cut_at:], q2[cut_at:]
            starts = np.flatnonzero(np.r_[True, k2[1:] != k2[:-1]]) if k2.size \
                else np.zeros(0, np.int64)
            # each source neuron's synapses into the population: q2[starts[i]:...]
            self._by_source[name] = (k2[starts], starts, q2.astype(dt))

    def synapses(self, population: str) -> np.ndarray:
        """Incoming synapses of each neuron of ``population``."""
        return self._by_target[population][0]

    def sources(self, population: str, start: int, stop: int) -> np.ndarray:
        """Sorted distinct source ids heard by neurons ``start .. stop - 1``."""
        prefix, keys = self._prefix[population], self._by_target[population][1]
        return distinct(keys[prefix[start]:prefix[stop]])

    def neuron_needs(self, population: str, fanout: np.ndarray) -> NeuronNeeds:
        """:class:`NeuronNeeds` of ``population`` with fan-out ``fanout`` per neuron."""
        synapses, _, first_seen = self._by_target[population]
        return NeuronNeeds(population, synapses, fanout, first_seen, profiles=1,
                           bias=self.bias[population], sources=self.axons[population])

    def fanout(self, cluster_of: dict) -> dict:
        """Fan-out entries of every neuron, ``{population: int array}``, when
        each population ``B`` is cut as ``cluster_of[B]`` (cluster number per
        neuron; clusters of different populations are different cores): one
        per distinct target cluster it reaches, plus one per host output."""
        net = self.network
        count = np.zeros(self.n_ids, dtype=np.int64)
        for name, (key, starts, q2) in self._by_source.items():
            if not q2.size:
                continue
            # a source's targets come in target order, so its clusters in
            # cluster order: count where the cluster changes
            cid = cluster_of[name][q2]
            new = np.empty(q2.size, dtype=np.int32)
            np.not_equal(cid[1:], cid[:-1], out=new[1:], casting="unsafe")
            new[starts] = 1
            count[key] += np.add.reduceat(new, starts)
        out = {}
        for name, pop in net.populations.items():
            f = self.first[name]
            out[name] = count[f:f + pop.size] + (1 if name in net.outputs else 0)
        return out

    def fanout_bound(self) -> dict:
        """Fan-out entries of every neuron that hold for any partition: its
        outgoing synapses (each reaches at most one cluster) plus one per
        host output."""
        count = np.zeros(self.n_ids, dtype=np.int64)
        for key, starts, q2 in self._by_source.values():
            count[key] += np.diff(np.r_[starts, q2.size])
        net = self.network
        return {name: count[self.first[name]:self.first[name] + pop.size]
                + (1 if name in net.outputs else 0) for name, pop in net.populations.items()}


@dataclass
class Layout:
    """How a network is laid out on a geometry, and what breaks.

    Attributes
    ----------
    violations : list of Violation
        Empty if the network fits.
    clusters : list of Cluster
        Every population cut into clusters with their exact needs (the
        populations that fit a core at all).
    cores : list of CoreGroup or None
        The clusters on cores: one each when there are enough cores, else
        packed (:func:`~neuromesh.compiler.placement.pack`). ``None`` when
        they do not fit the mesh.
    binding : dict
        ``{population: resource}`` that ends most of its clusters (a
        :data:`~neuromesh.compiler.placement.RESOURCES` key, ``"end"``
        for a population on one core).
    fanout : dict
        ``{population: fan-out entries per neuron}`` under this partition.
    needs : NetworkNeeds
        The counts the layout was made from.
    geometry : Geometry
        The geometry it lays the network out on.
    """

    violations: list
    clusters: list = field(default_factory=list)
    cores: list | None = None
    binding: dict = field(default_factory=dict)
    fanout: dict = field(default_factory=dict)
    needs: NetworkNeeds | None = None
    geometry: Geometry | None = None

    def summary(self) -> str:
        """Clusters per population and what limits them, in one line."""
        count = {}
        for c in self.clusters:
            count[c.population] = count.get(c.population, 0) + 1
        parts = []
        for name, k in count.items():
            widest = max(c.stop - c.start for c in self.clusters if c.population == name)
            why = self.binding.get(name, "end")
            parts.append(f"{name} {k}" + ("" if why == "end" else
                                          f" (<= {widest} neurons/core, {RESOURCES[why]})"))
        return "clusters per population: " + ", ".join(parts)


def _one_neuron_violations(name, needs: NeuronNeeds, g: Geometry) -> list[Violation]:
    one = needs.one_neuron()
    return [Violation(f"population {name!r} (one neuron)", attr, getattr(g, attr), one[r])
            for r, attr in RESOURCES.items() if one[r] > getattr(g, attr)]


def layout(net: Network, geometry: Geometry, *, needs: NetworkNeeds | None = None) -> Layout:
    """Partition ``net`` into clusters and cores of ``geometry``, with every
    violation of the chip's limits.

    Each population is cut into contiguous clusters by
    :func:`~neuromesh.compiler.placement.cut`, every cluster charged its
    neurons' exact synapses, distinct sources (axons) and fan-out entries.
    A neuron's fan-out depends on how its targets are cut, and a recurrent
    population is its own target, so the cut is iterated: cut with one
    entry per target population a neuron reaches, count each neuron's
    distinct target clusters under that cut, and cut again with those
    counts while keeping a margin of each core's fan-out free
    (:data:`FANOUT_MARGINS`, one per round) for the entries the new cut
    adds, until every cluster's entries fit; after the last round a bound
    valid for any cut (each neuron's outgoing synapses) is used, so this
    ends with clusters that fit. When the clusters outnumber the cores,
    small ones share cores (:func:`~neuromesh.compiler.placement.pack`),
    unless their summed neurons, synapses or fan-out entries already fill
    more cores than the mesh has (then the ``cores`` violation is that
    lower bound).

    Checked besides: synaptic delays against ``delay_slots - 2``, incoming
    projections per population against ``n_groups``, host channels against
    65536. ``needs``: the network's :class:`NetworkNeeds` if already built.
    """
    g = geometry
    out: list[Violation] = []
    for p in net.projections:
        d = int(p.delay.max(initial=0))
        if d > g.max_delay:
            out.append(Violation(f"projection {p.name!r}", "delay", g.max_delay, d))
    for what, total in (("input channels", sum(i.size for i in net.host_inputs().values())),
                        ("output channels", sum(net.populations[n].size for n in net.outputs))):
        if total > 1 << 16:
            out.append(Violation("network", what, 1 << 16, total))
    needs = needs if needs is not None else NetworkNeeds(net)
    groups = {n: len(needs.incoming[n]) for n in net.populations}
    for name, k in groups.items():
        if k > g.n_groups:
            out.append(Violation(f"population {name!r}", "incoming projections (n_groups)",
                                 g.n_groups, k))
    pops = net.populations
    single = {n: np.zeros(p.size, dtype=np.int64) for n, p in pops.items()}
    w = needs.fanout(single)            # one entry per target population reached
    fitting = []
    for name in pops:
        bad = _one_neuron_violations(name, needs.neuron_needs(name, w[name]), g)
        out += bad
        if not bad:
            fitting.append(name)
    cuts, binding = {}, {}

    def cut_all(margin):
        for name in fitting:
            # keep ``margin`` of each core's fan-out free for the fan-out this
            # cut adds (never less than one neuron needs)
            widest = int(w[name].max(initial=0)) + needs.bias[name]
            room = max(int(g.n_fanout * (1 - margin)), widest, 1)
            cuts[name], binding[name] = cut(needs.neuron_needs(name, w[name]),
                                            dataclasses.replace(g, n_fanout=room))

    def cluster_of():
        return {n: (np.repeat(np.arange(len(cuts[n])), [c.stop - c.start for c in cuts[n]])
                    if n in cuts else single[n]) for n in pops}

    def fits(f):
        for name in fitting:
            fan = np.concatenate([[0], np.cumsum(f[name])])
            if any(fan[c.stop] - fan[c.start] + c.bias > g.n_fanout for c in cuts[name]):
                return False
        return True

    def update(f, bound=None):
        for name in list(fitting):
            w[name] = f[name] if bound is None else np.maximum(f[name], bound[name])
            bad = _one_neuron_violations(name, needs.neuron_needs(name, w[name]), g)
            if bad:
                out.extend(dataclasses.replace(v, note="one entry per target cluster")
                           for v in bad)
                fitting.remove(name)
                cuts.pop(name, None)

    cut_all(0.0)
    for margin in FANOUT_MARGINS:
        f = needs.fanout(cluster_of())
        if fits(f):
            break
        update(f)
        cut_all(margin)
    else:
        f = needs.fanout(cluster_of())
        if not fits(f):     # a fan-out that holds for every cut ends the search
            update(f, needs.fanout_bound())
            cut_all(0.0)
            f = needs.fanout(cluster_of())
    clusters = []
    for name in fitting:
        fan = np.concatenate([[0], np.cumsum(f[name])])
        clusters += [dataclasses.replace(c, fanout=int(fan[c.stop] - fan[c.start]) + c.bias)
                     for c in cuts[name]]
    result = Layout(out, clusters, None, {n: binding[n] for n in fitting},
                    {n: f[n] for n in fitting}, needs, geometry)
    if not clusters:
        result.cores = []
        return result
    if len(clusters) <= g.n_cores:
        result.cores = [CoreGroup(c.name, (c,), (0,), groups[c.population]) for c in clusters]
        return result
    # Too many for a core each: small clusters share cores -- unless what
    # they need together already fills more cores than the mesh has.
    limits = {r: getattr(g, a) for r, a in RESOURCES.items()}
    # (without the bias neurons: clusters sharing a core share one)
    total = {r: sum(getattr(c, r) - (r != "synapses") * c.bias for c in clusters)
             for r in ("neurons", "synapses", "fanout")}
    least, resource = max((-(-total[r] // limits[r]), r) for r in total)
    if least > g.n_cores:
        out.append(Violation(
            "network", "cores", g.n_cores, least,
            note=f"at least: the {len(clusters)} clusters need {total[resource]} "
                 f"{resource} in all, {limits[resource]} per core; {result.summary()}"))
        return result
    sources = {c.name: needs.sources(c.population, c.start, c.stop) for c in clusters}
    exclusive = {p.dst for p in net.projections if p.plastic is not None}
    cores = pack(clusters, g, groups=groups, exclusive=exclusive, sources=sources,
                 check_cores=False)
    if len(cores) > g.n_cores:
        out.append(Violation("network", "cores", g.n_cores, len(cores),
                             note=f"{len(clusters)} clusters, packed; {result.summary()}"))
    else:
        result.cores = cores
    return result


def design_rule_check(net: Network, geometry: Geometry) -> list[Violation]:
    """All violations of ``net`` on ``geometry`` (empty list: it can be compiled).

    Checked: synaptic delays against ``delay_slots - 2``; incoming
    projections per population against ``n_groups``; each neuron's needs
    (synapses, distinct sources, fan-out entries, with its core's bias
    neuron) against one core; the cores the partition needs (after packing
    small clusters together when there are more clusters than cores)
    against the mesh; host channels against 65536. The partition is
    :func:`layout`'s, the one the compiler uses.
    """
    return layout(net, geometry).violations
