"""Partitioning of a spiking network into cores and placement on the mesh.

Three steps of the compiler live here, all pure functions of plain data:

1. :func:`cut` splits a population into the fewest *clusters* (contiguous
   neuron index ranges) such that each cluster fits one core under every
   per-core limit of the :class:`~neuromesh.chip.Geometry` (``n_neurons``,
   ``n_axons``, ``n_synapses``, ``n_fanout``, ``n_profiles``;
   ``docs/architecture.md`` §2.1), charging each cluster its neurons' exact
   needs (:class:`NeuronNeeds`); the compiler and its design-rule check use
   it (:func:`neuromesh.compiler.drc.layout`). :func:`partition` does the
   same from per-population bounds (:class:`PopulationNeeds`), for when only
   those are known.
2. :func:`pack`, only when the clusters outnumber the cores, puts several
   small clusters on one core (a :class:`CoreGroup`) within the summed
   limits; :func:`group_traffic` sums their traffic.
3. :func:`place` assigns the clusters (or core groups) to distinct cores of the
   ``rows x cols`` mesh so that the expected routing load ::

       cost = sum_ij T[i, j] * hops(p_i, p_j)
              + sum_i (from_host[i] + to_host[i]) * (x_i + y_i + 1)

   is small. ``T`` is the expected number of spike packets per step between
   clusters, ``from_host``/``to_host`` the packets per step from/to the host
   (:class:`Traffic`). With XY routing (§6.3) a packet from core ``(xa, ya)``
   to ``(xb, yb)`` travels ``|xa - xb| + |ya - yb|`` hops; the host port is
   on the west side of core ``(0, 0)`` (§2.3), so host traffic of core
   ``(x, y)`` travels ``x + y + 1`` hops. The unit of cost is
   *packet-hops per step*. The result is compared with a naive row-major
   placement (:func:`naive_placement`).

Example::

    g = Geometry(rows=2, cols=2, n_neurons=128)
    clusters = partition([PopulationNeeds("in", 200, fan_in=0),
                          PopulationNeeds("out", 10, fan_in=200)], g)
    traffic = Traffic.from_rates(clusters, {"in": 0.05, "out": 0.1, HOST: 10.0},
                                 [(HOST, "in"), ("in", "out"), ("out", HOST)])
    p = place(clusters, traffic, g)
    print(p.report())
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from neuromesh.chip import ChipError, Geometry

from .intsort import distinct

__all__ = [
    "HOST", "RESOURCES", "PlacementError", "PopulationNeeds", "Cluster", "Traffic",
    "Placement", "CoreGroup", "NeuronNeeds", "max_neurons_per_core", "partition", "cut", "pack",
    "group_traffic",
    "hops", "host_hops",
    "naive_placement", "placement_cost", "place",
]

#: Name of the host in :class:`Traffic` edges and :meth:`Traffic.from_rates`
#: projections. No cluster may have this name.
HOST = "host"

#: Per-core resources of a cluster, mapped to the :class:`Geometry` limit
#: each one is checked against.
RESOURCES = {
    "neurons": "n_neurons",
    "axons": "n_axons",
    "synapses": "n_synapses",
    "fanout": "n_fanout",
    "profiles": "n_profiles",
}

XY = tuple[int, int]

#: What a core's bias neuron takes besides its axon: itself, its profile and
#: its one fan-out entry (to its own core).
_BIAS_OVERHEAD = ("neurons", "profiles", "fanout")


class PlacementError(ChipError):
    """A network cannot be partitioned or placed on the given chip."""


def _check_count(owner: str, name: str, value, minimum: int = 0) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise PlacementError(f"{owner}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise PlacementError(f"{owner}: {name} = {value} is below the minimum {minimum}")
    return int(value)


# --- Data model ---------------------------------------------------------------------


@dataclass(frozen=True)
class PopulationNeeds:
    """What one population of neurons needs from the cores it is placed on.

    Parameters
    ----------
    name : str
        Population name; unique in a network, not :data:`HOST`.
    size : int
        Number of neurons (at least 1).
    fan_in : int
        Incoming synapses per neuron (the largest over the population's
        neurons if they differ). Each takes one synapse memory entry of the
        neuron's core.
    n_sources : int or None
        Number of distinct sources (neurons of any population, or host input
        channels) that send spikes to the population. A core needs one axon
        per source that reaches one of its neurons. ``None`` (default) means
        ``fan_in``: every neuron hears the same ``fan_in`` sources, as in a
        dense projection from a layer of ``fan_in`` neurons.
    fanout : int
        Fan-out entries per neuron: one per destination core the neuron sends
        to plus one per host output channel it drives (the largest over the
        population's neurons). It depends on how the target populations are
        partitioned; a conservative value is the number of clusters of all
        target populations (plus one for host output).
    profiles : int
        Number of distinct neuron profiles (parameter sets) the population
        uses (at least 1).
    bias : int
        1 if the population hears an always-on source (a bias into the
        synaptic current): every core holding some of its neurons then also
        holds one bias neuron, with a profile and a fan-out entry of its own
        (its axon is one of the ``n_sources``); 0 otherwise.

    Notes
    -----
    The needs of a cluster of ``k`` neurons are upper bounds that hold however
    the population is connected (:meth:`cluster_needs`).
    """

    name: str
    size: int
    fan_in: int = 0
    n_sources: int | None = None
    fanout: int = 1
    profiles: int = 1
    bias: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name == HOST:
            raise PlacementError(
                f"population name must be a non-empty string other than {HOST!r}, "
                f"got {self.name!r}")
        owner = f"population {self.name!r}"
        _check_count(owner, "size", self.size, 1)
        if self.bias not in (0, 1):
            raise PlacementError(f"{owner}: bias = {self.bias!r} must be 0 or 1")
        _check_count(owner, "fan_in", self.fan_in)
        _check_count(owner, "fanout", self.fanout)
        _check_count(owner, "profiles", self.profiles, 1)
        if self.n_sources is None:
            object.__setattr__(self, "n_sources", int(self.fan_in))
        _check_count(owner, "n_sources", self.n_sources)
        if (self.fan_in == 0) != (self.n_sources == 0):
            raise PlacementError(
                f"{owner}: fan_in = {self.fan_in} and n_sources = {self.n_sources} "
                f"disagree (a population has synapses if and only if it has sources)")

    def cluster_needs(self, k: int) -> dict[str, int]:
        """Resources a core needs to hold ``k`` neurons of this population.

        Parameters
        ----------
        k : int
            Number of neurons on the core.

        Returns
        -------
        dict
            ``{resource: need}`` for every key of :data:`RESOURCES`:
            ``neurons = k``, ``synapses = k * fan_in``,
            ``axons = min(n_sources, k * fan_in)`` (one axon per distinct
            source, and there cannot be more sources than synapses),
            ``fanout = k * fanout`` and ``profiles = min(profiles, k)``;
            plus ``bias`` neurons, profiles and fan-out entries (the core's
            bias neuron).
        """
        b = self.bias
        return {
            "neurons": k + b,
            "axons": min(self.n_sources, k * self.fan_in),
            "synapses": k * self.fan_in,
            "fanout": k * self.fanout + b,
            "profiles": min(self.profiles, k) + b,
        }


@dataclass(frozen=True)
class Cluster:
    """A piece of one population that will live on one core.

    Parameters
    ----------
    name : str
        Unique cluster name; :func:`partition` uses ``"population[i]"``.
    population : str
        Name of the population the neurons belong to.
    start, stop : int
        The cluster holds the population's neurons ``start .. stop - 1``.
    neurons, axons, synapses, fanout, profiles : int
        Per-core resources the cluster needs (compare :data:`RESOURCES`);
        ``neurons`` must equal ``stop - start + bias``.
    bias : int
        1 if the core also needs a bias neuron for this cluster (see
        :class:`PopulationNeeds`); it is counted in ``neurons``,
        ``fanout`` and ``profiles``, once per core however many clusters on
        the core need it.
    """

    name: str
    population: str
    start: int
    stop: int
    neurons: int
    axons: int = 0
    synapses: int = 0
    fanout: int = 0
    profiles: int = 1
    bias: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name == HOST:
            raise PlacementError(
                f"cluster name must be a non-empty string other than {HOST!r}, "
                f"got {self.name!r}")
        owner = f"cluster {self.name!r}"
        _check_count(owner, "start", self.start)
        _check_count(owner, "stop", self.stop, self.start + 1)
        for resource in RESOURCES:
            _check_count(owner, resource, getattr(self, resource))
        if self.bias not in (0, 1):
            raise PlacementError(f"{owner}: bias = {self.bias!r} must be 0 or 1")
        if self.neurons != self.stop - self.start + self.bias:
            raise PlacementError(
                f"{owner}: neurons = {self.neurons} but the index range "
                f"{self.start}..{self.stop - 1} holds {self.stop - self.start}"
                + (" plus the bias neuron" if self.bias else ""))

    def needs(self) -> dict[str, int]:
        """``{resource: need}`` for every key of :data:`RESOURCES`."""
        return {resource: getattr(self, resource) for resource in RESOURCES}

    def check(self, geometry: Geometry) -> None:
        """Raise :class:`PlacementError` if the cluster does not fit one core.

        The message names the cluster, the resource, the core's limit and the
        cluster's need, for every resource that is exceeded.
        """
        over = [f"{need} {resource} but a core has {RESOURCES[resource]} = "
                f"{getattr(geometry, RESOURCES[resource])}"
                for resource, need in self.needs().items()
                if need > getattr(geometry, RESOURCES[resource])]
        if over:
            raise PlacementError(f"cluster {self.name!r} does not fit a core: it needs "
                                 + "; ".join(over))


def _names_of(clusters) -> tuple[str, ...]:
    names = tuple(c.name if isinstance(c, Cluster) else c for c in clusters)
    for name in names:
        if not isinstance(name, str) or not name or name == HOST:
            raise PlacementError(
                f"traffic: cluster names must be non-empty strings other than {HOST!r}, "
                f"got {name!r}")
    seen = set()
    for name in names:
        if name in seen:
            raise PlacementError(f"traffic: cluster name {name!r} appears twice")
        seen.add(name)
    return names


def _frozen_array(value, shape, what) -> np.ndarray:
    a = np.array(value, dtype=np.float64)
    if a.shape != shape:
        raise PlacementError(f"traffic: {what} has shape {a.shape}, expected {shape}")
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise PlacementError(f"traffic: {what}{list(idx)} = {a[idx]} is not a finite "
                             f"non-negative number of packets per step")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Traffic:
    """Expected spike packets per step between clusters and the host.

    Parameters
    ----------
    names : sequence of str or Cluster
        The clusters, in the order of the rows and columns of ``matrix``.
    matrix : array_like, shape (n, n)
        ``matrix[i, j]``: expected packets per step from cluster ``i`` to
        cluster ``j``. The diagonal (a cluster to its own core) costs no hops.
        ``None`` means no traffic between clusters.
    from_host : array_like, shape (n,)
        Expected host input packets per step to each cluster (``None``: 0).
    to_host : array_like, shape (n,)
        Expected host-bound packets per step from each cluster (``None``: 0).

    See Also
    --------
    Traffic.from_edges : build it from a sparse list of edges.
    Traffic.from_rates : build it from spike rates and projections.
    """

    names: tuple[str, ...]
    matrix: np.ndarray = None
    from_host: np.ndarray = None
    to_host: np.ndarray = None

    def __post_init__(self):
        names = _names_of(self.names)
        n = len(names)
        object.__setattr__(self, "names", names)
        for attr, shape in (("matrix", (n, n)), ("from_host", (n,)), ("to_host", (n,))):
            value = getattr(self, attr)
            value = np.zeros(shape) if value is None else value
            object.__setattr__(self, attr, _frozen_array(value, shape, attr))

    def __len__(self):
        return len(self.names)

    def index(self, name: str) -> int:
        """Row/column of cluster ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise PlacementError(f"traffic: no cluster named {name!r}") from None

    @property
    def total(self) -> float:
        """Expected packets per step, all kinds together."""
        return float(self.matrix.sum() + self.from_host.sum() + self.to_host.sum())

    @classmethod
    def from_edges(cls, names, edges: Iterable[tuple[str, str, float]]) -> Traffic:
        """Traffic from a sparse list of ``(source, destination, packets_per_step)``.

        Parameters
        ----------
        names : sequence of str or Cluster
            All clusters, in order.
        edges : iterable of (str, str, float)
            Source and destination are cluster names or :data:`HOST`. Repeated
            edges add up.

        Returns
        -------
        Traffic
        """
        names = _names_of(names)
        t = cls(names)
        matrix, from_host, to_host = (np.array(a) for a in (t.matrix, t.from_host, t.to_host))
        index = {name: i for i, name in enumerate(names)}

        def lookup(name, edge):
            if name != HOST and name not in index:
                raise PlacementError(f"traffic edge {edge!r}: no cluster named {name!r}")
            return index.get(name)

        for edge in edges:
            src, dst, rate = edge
            s, d = lookup(src, edge), lookup(dst, edge)
            if s is None and d is None:
                raise PlacementError(f"traffic edge {edge!r}: host to host is not traffic")
            if s is None:
                from_host[d] += rate
            elif d is None:
                to_host[s] += rate
            else:
                matrix[s, d] += rate
        return cls(names, matrix, from_host, to_host)

    @classmethod
    def from_rates(cls, clusters: Sequence[Cluster], rates: Mapping[str, object],
                   projections: Iterable[tuple[str, str]]) -> Traffic:
        """Traffic from spike rates of populations and the projections between them.

        Each spike of a neuron sends one packet to every cluster of every
        population it projects to (one fan-out entry per destination core),
        and one packet to the host if its population projects to
        :data:`HOST`. Each host input spike to a population is one packet to
        each of its clusters (a host channel feeds one axon per core of the
        layer). For sparse projections, where a neuron reaches only some
        clusters of the target, this is an upper bound.

        Parameters
        ----------
        clusters : sequence of Cluster
            The clusters, e.g. from :func:`partition`.
        rates : mapping
            ``rates[population]``: expected spikes per neuron per step, either
            one number for all its neurons or one value per neuron (length =
            population size), e.g. mean spike counts per step of a short
            floating-point run. ``rates[HOST]``: expected host input spikes
            per step over all input channels (needed if a projection starts
            at the host).
        projections : iterable of (str, str)
            ``(source, target)`` population names or :data:`HOST`. A pair
            listed twice counts twice.

        Returns
        -------
        Traffic
        """
        clusters = list(clusters)
        names = _names_of(clusters)
        by_pop: dict[str, list[int]] = {}
        size: dict[str, int] = {}
        for i, c in enumerate(clusters):
            by_pop.setdefault(c.population, []).append(i)
            size[c.population] = max(size.get(c.population, 0), c.stop)

        def members(pop, edge):
            if pop == HOST:
                return None
            if pop not in by_pop:
                raise PlacementError(
                    f"projection {edge!r}: no population {pop!r} among the clusters "
                    f"(populations: {', '.join(sorted(by_pop))})")
            return by_pop[pop]

        def out_rates(pop, edge) -> np.ndarray:
            """Spikes per step of each cluster of ``pop`` (or of the host)."""
            if pop not in rates:
                raise PlacementError(f"projection {edge!r}: no rate given for {pop!r}")
            r = np.asarray(rates[pop], dtype=np.float64)
            if pop == HOST:
                if r.ndim != 0:
                    raise PlacementError(f"rates[{HOST!r}] must be one number (host input "
                                         f"spikes per step), got shape {r.shape}")
            elif r.ndim == 0:
                r = np.full(size[pop], float(r))
            elif r.shape != (size[pop],):
                raise PlacementError(
                    f"rates[{pop!r}] has shape {r.shape}; expected one number or "
                    f"({size[pop]},), one rate per neuron of the population")
            if not np.all(np.isfinite(r) & (r >= 0)):
                raise PlacementError(f"rates[{pop!r}] holds a negative or non-finite value")
            if pop == HOST:
                return r.reshape(1)
            return np.array([r[clusters[i].start:clusters[i].stop].sum()
                             for i in by_pop[pop]])

        n = len(clusters)
        matrix, from_host, to_host = np.zeros((n, n)), np.zeros(n), np.zeros(n)
        for edge in projections:
            src, dst = edge
            s, d = members(src, edge), members(dst, edge)
            if s is None and d is None:
                raise PlacementError(f"projection {edge!r}: host to host is not traffic")
            r = out_rates(src, edge)
            if s is None:
                from_host[d] += r[0]
            elif d is None:
                to_host[s] += r
            else:
                matrix[np.ix_(s, d)] += r[:, None]
        return cls(names, matrix, from_host, to_host)


# --- Partitioning -------------------------------------------------------------------


def max_neurons_per_core(needs: PopulationNeeds, geometry: Geometry) -> tuple[int, str]:
    """The most neurons of a population one core can hold, and what limits it.

    Parameters
    ----------
    needs : PopulationNeeds
    geometry : Geometry

    Returns
    -------
    k : int
        Largest ``k`` such that :meth:`PopulationNeeds.cluster_needs` ``(k)``
        is within every per-core limit (0 if not even one neuron fits).
    resource : str
        The binding resource (a key of :data:`RESOURCES`); the first one in
        that order if several bind equally.
    """
    limits = {r: getattr(geometry, attr) for r, attr in RESOURCES.items()}
    big = math.inf
    b = needs.bias            # the core's bias neuron, profile and fan-out entry
    per = {
        "neurons": limits["neurons"] - b,
        "axons": big if needs.n_sources <= limits["axons"]
        else limits["axons"] // needs.fan_in,
        "synapses": limits["synapses"] // needs.fan_in if needs.fan_in else big,
        "fanout": (limits["fanout"] - b) // needs.fanout if needs.fanout else big,
        "profiles": big if needs.profiles + b <= limits["profiles"]
        else limits["profiles"] - b,
    }
    resource = min(per, key=lambda r: per[r])   # first minimum in RESOURCES order
    return int(per[resource]), resource


def partition(populations: Iterable[PopulationNeeds], geometry: Geometry, *,
              check_cores: bool = True) -> list[Cluster]:
    """Split populations into the fewest clusters that each fit one core.

    Each population is cut into ``ceil(size / k)`` contiguous index ranges of
    as equal sizes as possible (they differ by at most one neuron), where
    ``k`` is :func:`max_neurons_per_core`. Since every need grows with the
    number of neurons, no partition of a population into fewer pieces fits.

    Parameters
    ----------
    populations : iterable of PopulationNeeds
        Populations with unique names; the clusters come out in this order.
    geometry : Geometry
        The chip; every cluster respects its ``n_neurons``, ``n_axons``,
        ``n_synapses``, ``n_fanout`` and ``n_profiles``.

    Returns
    -------
    list of Cluster
        Named ``"population[i]"``, ``i = 0, 1, ...`` in neuron index order.

    Raises
    ------
    PlacementError
        If a population cannot fit even one neuron per core (the message names
        the population, the resource, the limit and the need), if names repeat,
        or, with ``check_cores``, if the clusters outnumber the cores ("needs K
        cores, the mesh has M").

    Notes
    -----
    Each cluster holds neurons of one population. When there are more
    clusters than cores, :func:`pack` puts several small clusters on one core.
    """
    populations = list(populations)
    seen = set()
    for p in populations:
        if not isinstance(p, PopulationNeeds):
            raise PlacementError(f"partition: expected PopulationNeeds, got {p!r}")
        if p.name in seen:
            raise PlacementError(f"partition: population name {p.name!r} appears twice")
        seen.add(p.name)

    clusters: list[Cluster] = []
    summary = []
    for p in populations:
        k, binding = max_neurons_per_core(p, geometry)
        if k < 1:
            one = p.cluster_needs(1)
            over = [f"{resource}: one neuron needs {one[resource]}, a core has "
                    f"{attr} = {getattr(geometry, attr)}"
                    for resource, attr in RESOURCES.items()
                    if one[resource] > getattr(geometry, attr)]
            raise PlacementError(f"population {p.name!r} cannot be placed even one neuron "
                                 f"per core: " + "; ".join(over))
        count = -(-p.size // k)
        base, extra = divmod(p.size, count)
        start = 0
        for i in range(count):
            stop = start + base + (i < extra)
            clusters.append(Cluster(name=f"{p.name}[{i}]", population=p.name,
                                    start=start, stop=stop, bias=p.bias,
                                    **p.cluster_needs(stop - start)))
            start = stop
        summary.append(f"{p.name!r}: {count} (at most {k} neurons/core, "
                       f"limited by {RESOURCES[binding]})")

    if check_cores and len(clusters) > geometry.n_cores:
        raise PlacementError(
            f"partition needs {len(clusters)} cores, the mesh has {geometry.n_cores} "
            f"({geometry.rows}x{geometry.cols}); clusters per population: "
            + ", ".join(summary))
    return clusters


@dataclass(frozen=True, eq=False)
class NeuronNeeds:
    """The exact needs of every neuron of one population, for :func:`cut`.

    Where :class:`PopulationNeeds` bounds a population by its worst neuron,
    this lists each neuron's needs, so a cluster is charged what its own
    neurons take.

    Parameters
    ----------
    name : str
        Population name.
    synapses : int array, shape (size,)
        Incoming synapses of each neuron (one synapse memory entry each).
    fanout : int array, shape (size,)
        Fan-out entries of each neuron (one per destination core, one per
        host output channel).
    first_seen : int array, shape (sum(synapses),)
        The incoming synapses listed by target neuron (neuron 0's, then
        neuron 1's, ...). For each: the target neuron of the previous synapse
        from the same source in that order, or -1. Neurons ``s .. e - 1`` then
        hear one distinct source -- one axon of their core -- per synapse of
        theirs whose ``first_seen < s``.
    profiles : int
        Neuron profiles the population uses.
    bias : int
        1 if every core holding neurons of the population also holds a bias
        neuron (see :class:`PopulationNeeds`).
    sources : int array, shape (size,), optional
        Distinct sources of each neuron, if already known (else computed
        from ``first_seen`` when needed).
    """

    name: str
    synapses: np.ndarray
    fanout: np.ndarray
    first_seen: np.ndarray
    profiles: int = 1
    bias: int = 0
    sources: np.ndarray | None = None

    def __post_init__(self):
        owner = f"population {self.name!r}"
        syn = np.asarray(self.synapses, dtype=np.int64).reshape(-1)
        fan = np.asarray(self.fanout, dtype=np.int64).reshape(-1)
        if syn.size < 1 or fan.shape != syn.shape:
            raise PlacementError(f"{owner}: synapses and fanout need one entry per neuron "
                                 f"(got {syn.size} and {fan.size})")
        if (syn < 0).any() or (fan < 0).any():
            raise PlacementError(f"{owner}: negative synapse or fan-out count")
        prefix = np.zeros(syn.size + 1, dtype=np.int64)
        np.cumsum(syn, out=prefix[1:])
        first = np.asarray(self.first_seen).reshape(-1)
        if first.size != prefix[-1]:
            raise PlacementError(f"{owner}: first_seen has {first.size} entries for "
                                 f"{prefix[-1]} synapses")
        _check_count(owner, "profiles", self.profiles, 1)
        if self.bias not in (0, 1):
            raise PlacementError(f"{owner}: bias = {self.bias!r} must be 0 or 1")
        fan_prefix = np.zeros(fan.size + 1, dtype=np.int64)
        np.cumsum(fan, out=fan_prefix[1:])
        object.__setattr__(self, "synapses", syn)
        object.__setattr__(self, "fanout", fan)
        object.__setattr__(self, "first_seen", first)
        object.__setattr__(self, "_syn_prefix", prefix)
        object.__setattr__(self, "_fan_prefix", fan_prefix)

    @property
    def size(self) -> int:
        """Number of neurons."""
        return int(self.synapses.size)

    def axons(self) -> np.ndarray:
        """Distinct sources each neuron hears alone (its axons on a core to itself)."""
        if self.sources is not None:
            return np.asarray(self.sources)
        target = np.repeat(np.arange(self.size), self.synapses)
        return np.bincount(target[self.first_seen < target], minlength=self.size)

    def one_neuron(self) -> dict[str, int]:
        """``{resource: need}`` of the most demanding single neuron on a core
        (with the bias neuron if any), resource by resource."""
        b = self.bias
        return {"neurons": 1 + b, "axons": int(self.axons().max(initial=0)),
                "synapses": int(self.synapses.max(initial=0)),
                "fanout": int(self.fanout.max(initial=0)) + b, "profiles": 1 + b}

    def range_needs(self, start: int, stop: int) -> dict[str, int]:
        """``{resource: need}`` of a core holding neurons ``start .. stop - 1``."""
        p, f = self._syn_prefix, self._fan_prefix
        b = self.bias
        axons = int((self.first_seen[p[start]:p[stop]] < start).sum())
        return {"neurons": stop - start + b, "axons": axons,
                "synapses": int(p[stop] - p[start]), "fanout": int(f[stop] - f[start]) + b,
                "profiles": min(self.profiles, stop - start) + b}


def _greedy(needs: NeuronNeeds, limits: dict, cap: int, at_most: int | None = None,
            spread: bool = False):
    """Cut ``needs`` from neuron 0 up into the longest ranges within
    ``limits`` (and ``cap`` neurons; with ``spread``, also at most the
    neurons left over the ``at_most`` clusters left): ``[(start, stop,
    axons, binding)]``, or ``None`` once there would be more than
    ``at_most``."""
    n, p, f, first = needs.size, needs._syn_prefix, needs._fan_prefix, needs.first_seen
    out = []
    s = 0
    while s < n:
        if spread:
            cap = -(-(n - s) // max(at_most - len(out), 1))
        ends = {"neurons": min(n, s + limits["neurons"]),
                "synapses": int(np.searchsorted(p, p[s] + limits["synapses"], "right")) - 1,
                "fanout": int(np.searchsorted(f, f[s] + limits["fanout"], "right")) - 1,
                "profiles": s + limits["profiles"] if needs.profiles > limits["profiles"]
                else n}
        binding = min(ends, key=ends.get)
        e = ends[binding]
        if cap < e - s:
            e, binding = s + cap, "cap"
        if e >= n:
            e, binding = n, "end"
        # distinct sources of s .. e - 1: the synapses whose source's
        # previous synapse lies before s
        new = first[p[s]:p[e]] < s
        axons = int(np.count_nonzero(new))
        if axons > limits["axons"]:
            # the same for s .. t - 1, every t up to e
            seen = np.zeros(e - s + 1, dtype=np.int64)
            at = p[s + 1:e + 1] - p[s]
            seen[1:][at > 0] = np.cumsum(new)[at[at > 0] - 1]
            e = s + int(np.searchsorted(seen, limits["axons"], "right")) - 1
            axons, binding = int(seen[e - s]), "axons"
        if e <= s:          # cut() checked every neuron first
            raise PlacementError(f"population {needs.name!r}: neuron {s} does not fit a core")
        out.append((s, e, axons, binding))
        s = e
        if at_most is not None and len(out) > at_most:
            return None
    return out


def cut(needs: NeuronNeeds, geometry: Geometry) -> tuple[list[Cluster], str]:
    """Cut one population into the fewest contiguous clusters that each fit a
    core, charging every cluster its neurons' exact needs; sizes balanced.

    First a greedy cut from neuron 0 takes, cluster after cluster, the most
    neurons that fit every per-core limit (``n_neurons``, ``n_synapses``,
    ``n_fanout`` from prefix sums of the per-neuron needs, ``n_axons`` from
    the distinct sources of the range, :class:`NeuronNeeds`). Every need of a
    range grows with the range, so no cut into contiguous ranges has fewer
    clusters. Then the cut is evened out at that number: each cluster takes
    at most its share of the neurons left if that still makes no more
    clusters, else at most the smallest cap on neurons per cluster that does
    (found by bisection), so the clusters come out of even size when the
    neuron count binds.

    Returns
    -------
    clusters : list of Cluster
        Named ``"name[i]"`` in neuron order, with their exact needs.
    binding : str
        The resource (a :data:`RESOURCES` key) that ended most clusters of
        the greedy cut, ``"end"`` if one cluster holds the whole population.

    Raises
    ------
    PlacementError
        If one neuron alone needs more than a core has (with the numbers).
    """
    b = needs.bias
    limits = {"neurons": geometry.n_neurons - b, "synapses": geometry.n_synapses,
              "fanout": geometry.n_fanout - b, "axons": geometry.n_axons,
              "profiles": geometry.n_profiles - b}
    one = needs.one_neuron()
    over = [f"{r}: one neuron needs {one[r]}, a core has {RESOURCES[r]} = "
            f"{getattr(geometry, RESOURCES[r])}" for r in RESOURCES
            if one[r] > getattr(geometry, RESOURCES[r])]
    if over:
        raise PlacementError(f"population {needs.name!r} cannot be placed even one neuron "
                             f"per core: " + "; ".join(over))
    greedy = _greedy(needs, limits, needs.size)
    kinds = [g[3] for g in greedy if g[3] != "end"]
    binding = max(RESOURCES, key=kinds.count) if kinds else "end"
    m = len(greedy)
    even = _greedy(needs, limits, needs.size, at_most=m, spread=True) if m > 1 else None
    if even is not None:
        greedy = even
    elif m > 1:
        lo, hi = -(-needs.size // m), max(e - s for s, e, _, _ in greedy)
        while lo < hi:
            mid = (lo + hi) // 2
            if _greedy(needs, limits, mid, at_most=m) is None:
                lo = mid + 1
            else:
                hi = mid
        greedy = _greedy(needs, limits, lo)
    clusters = []
    for i, (s, e, axons, _) in enumerate(greedy):
        d = needs.range_needs(s, e)
        d["axons"] = axons
        clusters.append(Cluster(name=f"{needs.name}[{i}]", population=needs.name, start=s,
                                stop=e, bias=b, **d))
    return clusters, binding


@dataclass(frozen=True)
class CoreGroup:
    """Clusters that share one core (:func:`pack`).

    Attributes
    ----------
    name : str
        The member names joined by ``"+"`` (a lone cluster keeps its name).
    members : tuple of Cluster
        In the order their neurons sit on the core: member ``i`` starts at
        core neuron ``offsets[i]``.
    offsets : tuple of int
    groups : int
        Weight groups (``n_groups``) the members' incoming projections take.
    axons : int or None
        Axons of the core when known exactly (sources counted once, see
        :func:`pack`); ``None``: the members' sum, an upper bound.
    """

    name: str
    members: tuple[Cluster, ...]
    offsets: tuple[int, ...]
    groups: int = 0
    axons: int | None = None

    def needs(self) -> dict[str, int]:
        """Summed ``{resource: need}`` of the members, with :attr:`axons` if
        known."""
        d = {r: sum(getattr(c, r) for c in self.members) for r in RESOURCES}
        extra_bias = max(sum(c.bias for c in self.members) - 1, 0)    # one per core
        for r in _BIAS_OVERHEAD:
            d[r] -= extra_bias
        if self.axons is not None:
            d["axons"] = self.axons
        return d

    @property
    def bias(self) -> int:
        """1 if the core holds a bias neuron."""
        return int(any(c.bias for c in self.members))

    def as_cluster(self) -> Cluster:
        """A :class:`Cluster` standing for the whole core in :func:`place`."""
        if len(self.members) == 1:
            return self.members[0]
        last = self.members[-1]
        return Cluster(name=self.name, population="+".join(c.population for c in self.members),
                       start=0, stop=self.offsets[-1] + last.stop - last.start, bias=self.bias,
                       **self.needs())


def pack(clusters: Sequence[Cluster], geometry: Geometry, *,
         groups: Mapping[str, int] | None = None, exclusive: Iterable[str] = (),
         sources: Mapping[str, np.ndarray] | None = None,
         check_cores: bool = True) -> list[CoreGroup]:
    """Put clusters on the fewest cores this heuristic finds: first-fit
    decreasing, largest share of a core first.

    A core takes clusters while the sums of their needs stay within every
    per-core limit, including ``n_groups`` (``groups[population]``: incoming
    projections, one weight group each; 0 if not given). Clusters of a
    population in ``exclusive`` share a core with no other population's
    (plastic populations: a core has one learning engine configuration).
    ``sources[cluster name]``: ids of the distinct sources its neurons hear;
    then a core needs one axon per source in the union of its clusters'
    (a source's axon serves all its synapses in the core), otherwise the
    sum of the clusters' ``axons`` (an upper bound).

    Returns one :class:`CoreGroup` per core, in the order of their first
    clusters in ``clusters``. (The compiler packs only when the clusters
    outnumber the cores: a core to itself per cluster spreads the load.)

    Raises
    ------
    PlacementError
        With ``check_cores``, if the cores still outnumber the mesh; the
        message gives the count and what the clusters need in total.
    """
    clusters = list(clusters)
    groups = dict(groups or {})
    exclusive = set(exclusive)
    limits = {r: getattr(geometry, attr) for r, attr in RESOURCES.items()}
    limits["groups"] = geometry.n_groups

    def need(c):
        d = c.needs()
        d["groups"] = groups.get(c.population, 0)
        return d

    def share(c):
        return max(v / limits[r] for r, v in need(c).items())

    order = sorted(range(len(clusters)), key=lambda i: (-share(clusters[i]), i))
    bins: list[dict] = []       # {"members", "used", "pops", "sources"}
    for i in order:
        c, d = clusters[i], need(clusters[i])
        src = None if sources is None else distinct(np.asarray(sources[c.name]))
        for b in bins:
            pops = b["pops"] | {c.population}
            if len(pops) > 1 and pops & exclusive:
                continue
            # a population's weight groups are counted once per core, and
            # so is the bias neuron
            extra = dict(d, groups=0 if c.population in b["pops"] else d["groups"])
            if c.bias and b["bias"]:
                for r in _BIAS_OVERHEAD:
                    extra[r] -= 1
            if src is not None:            # at least the larger of the two source sets
                extra["axons"] = max(src.size - b["used"]["axons"], 0)
            if not all(b["used"][r] + extra[r] <= limits[r] for r in limits):
                continue
            union = None
            if src is not None:            # the exact union only for a core that may take c
                union = distinct(np.concatenate([b["sources"], src]))
                extra["axons"] = union.size - b["used"]["axons"]
            if b["used"]["axons"] + extra["axons"] <= limits["axons"]:
                b["members"].append(i)
                b["pops"].add(c.population)
                b["bias"] |= bool(c.bias)
                b["sources"] = union
                for r in limits:
                    b["used"][r] += extra[r]
                break
        else:
            if src is not None:
                d["axons"] = src.size
            bins.append({"members": [i], "used": dict(d), "pops": {c.population},
                         "bias": bool(c.bias), "sources": src})
    if check_cores and len(bins) > geometry.n_cores:
        total = {r: sum(need(c)[r] for c in clusters) for r in limits}
        raise PlacementError(
            f"the network needs {len(bins)} cores even with small clusters sharing cores, "
            f"the mesh has {geometry.n_cores} ({geometry.rows}x{geometry.cols}); "
            f"{len(clusters)} clusters need in total "
            + ", ".join(f"{v} {r} (per core {limits[r]})" for r, v in total.items()))
    out = []
    for b in sorted(bins, key=lambda b: min(b["members"])):
        members = tuple(clusters[i] for i in sorted(b["members"]))
        offsets = tuple(int(x) for x in np.cumsum([0] + [c.stop - c.start
                                                         for c in members[:-1]]))
        out.append(CoreGroup(name="+".join(c.name for c in members), members=members,
                             offsets=offsets, groups=b["used"]["groups"],
                             axons=None if sources is None else b["used"]["axons"]))
    return out


def group_traffic(traffic: Traffic, core_groups: Sequence[CoreGroup]) -> Traffic:
    """``traffic`` between clusters summed into traffic between cores; packets
    between clusters of one core stay on it (the diagonal, no hops)."""
    index = {name: i for i, name in enumerate(traffic.names)}
    member = np.zeros((len(traffic.names), len(core_groups)))
    for k, g in enumerate(core_groups):
        for c in g.members:
            member[index[c.name], k] = 1.0
    return Traffic(tuple(g.name for g in core_groups), member.T @ traffic.matrix @ member,
                   traffic.from_host @ member, traffic.to_host @ member)


# --- Cost ---------------------------------------------------------------------------


def hops(a: XY, b: XY) -> int:
    """Hops of a packet from core ``a = (x, y)`` to core ``b`` under XY routing."""
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def host_hops(a: XY) -> int:
    """Hops between core ``a = (x, y)`` and the host port: ``x + y + 1``."""
    return a[0] + a[1] + 1


def _positions_array(positions: Mapping[str, XY], traffic: Traffic,
                     geometry: Geometry | None) -> np.ndarray:
    missing = [name for name in traffic.names if name not in positions]
    if missing:
        raise PlacementError(f"placement: no core for cluster(s) {', '.join(missing)}")
    xy = np.array([tuple(positions[name]) for name in traffic.names],
                  dtype=np.int64).reshape(-1, 2)
    if geometry is not None:
        used = {}
        for name, (x, y) in zip(traffic.names, xy.tolist()):
            if not (0 <= x < geometry.cols and 0 <= y < geometry.rows):
                raise PlacementError(
                    f"placement: cluster {name!r} is on core ({x},{y}), outside the "
                    f"{geometry.rows}x{geometry.cols} mesh")
            if (x, y) in used:
                raise PlacementError(
                    f"placement: clusters {used[(x, y)]!r} and {name!r} share core ({x},{y})")
            used[(x, y)] = name
    return xy


def _cost_parts(xy: np.ndarray, traffic: Traffic) -> tuple[float, float]:
    d = np.abs(xy[:, None, :] - xy[None, :, :]).sum(axis=2)
    mesh = float((traffic.matrix * d).sum())
    host = float(((traffic.from_host + traffic.to_host) * (xy.sum(axis=1) + 1)).sum())
    return mesh, host


def placement_cost(positions: Mapping[str, XY], traffic: Traffic,
                   geometry: Geometry | None = None) -> float:
    """Expected packet-hops per step of a placement.

    Parameters
    ----------
    positions : mapping of str to (int, int)
        Core ``(x, y)`` of every cluster named in ``traffic``.
    traffic : Traffic
    geometry : Geometry, optional
        If given, also check that every core is in the mesh and that no two
        clusters share one.

    Returns
    -------
    float
        ``sum(matrix[i, j] * hops(p_i, p_j)) +
        sum((from_host[i] + to_host[i]) * host_hops(p_i))``.
    """
    mesh, host = _cost_parts(_positions_array(positions, traffic, geometry), traffic)
    return mesh + host


def naive_placement(clusters: Sequence[Cluster | str], geometry: Geometry) -> dict[str, XY]:
    """Row-major placement in cluster order: cluster ``k`` on core index ``k``.

    Core index ``k`` is ``(x, y) = (k % cols, k // cols)``
    (``docs/architecture.md`` §2.2).

    Parameters
    ----------
    clusters : sequence of Cluster or str
    geometry : Geometry

    Returns
    -------
    dict
        Cluster name to ``(x, y)``.
    """
    names = _names_of(clusters)
    if len(names) > geometry.n_cores:
        raise PlacementError(f"placement needs {len(names)} cores, the mesh has "
                             f"{geometry.n_cores} ({geometry.rows}x{geometry.cols})")
    return {name: (k % geometry.cols, k // geometry.cols) for k, name in enumerate(names)}


# --- Search -------------------------------------------------------------------------
#
# Internally clusters are 0..n-1 (traffic order), cores 0..M-1 (core index), a
# placement is an int array pos[n] of distinct cores. W = T + T^T with a zero
# diagonal and h = from_host + to_host give cost(pos) = 1/2 sum W D[pos,pos] + h H[pos].
# G[i, c] = sum_k W[i, k] D[pos_k, c] + h_i H[c] is the cost of cluster i's
# traffic were it on core c, everything else fixed; it makes the cost change of
# every move/swap one vectorised expression.


class _Problem:
    def __init__(self, traffic: Traffic, geometry: Geometry):
        t = traffic.matrix
        self.W = t + t.T
        np.fill_diagonal(self.W, 0.0)
        self.h = traffic.from_host + traffic.to_host
        cores = np.arange(geometry.n_cores)
        self.xy = np.stack([cores % geometry.cols, cores // geometry.cols], axis=1)
        self.D = np.abs(self.xy[:, None, :] - self.xy[None, :, :]).sum(axis=2).astype(float)
        self.H = self.xy.sum(axis=1) + 1.0
        self.n, self.M = len(self.h), geometry.n_cores
        scale = (self.W.sum() / 2 + self.h.sum()) * (geometry.rows + geometry.cols)
        self.tol = 1e-12 * scale        # improvements smaller than rounding are none

    def cost(self, pos: np.ndarray) -> float:
        return float(0.5 * (self.W * self.D[np.ix_(pos, pos)]).sum() + self.h @ self.H[pos])

    def greedy(self) -> np.ndarray:
        """Constructive placement: most attached cluster first, on its cheapest core."""
        W, h, D, H = self.W, self.h, self.D, self.H
        pos = np.full(self.n, -1, dtype=np.int64)
        free = np.ones(self.M, dtype=bool)
        placed = np.zeros(self.n, dtype=bool)
        attached = h.copy()                 # traffic to the host and to placed clusters
        total = W.sum(axis=1) + h
        G = h[:, None] * H[None, :]         # cost of i on each core w.r.t. placed ones
        for _ in range(self.n):
            i = min(np.flatnonzero(~placed).tolist(),
                    key=lambda k: (-attached[k], -total[k], k))
            c = int(np.argmin(np.where(free, G[i], np.inf)))   # ties: lowest core index
            pos[i], placed[i], free[c] = c, True, False
            attached += W[:, i]
            G += W[:, i][:, None] * D[c][None, :]
        return pos

    def descend(self, pos: np.ndarray) -> np.ndarray:
        """Steepest descent over all moves to a free core and all pairwise swaps."""
        W, h, D, H = self.W, self.h, self.D, self.H
        n, M = self.n, self.M
        pos = pos.copy()
        occ = np.full(M, -1, dtype=np.int64)
        occ[pos] = np.arange(n)
        G = W @ D[pos] + h[:, None] * H[None, :]
        rows, cols = np.arange(n), np.arange(M)
        while True:
            a = pos
            delta = G - G[rows, a][:, None]                     # move i: a_i -> b
            occupied = occ >= 0
            j = np.where(occupied, occ, 0)
            swap = (G[j[None, :], a[:, None]] - G[j, cols][None, :]   # j: b -> a_i
                    + 2.0 * W[rows[:, None], j[None, :]] * D[a[:, None], cols[None, :]])
            delta += np.where(occupied[None, :], swap, 0.0)
            best = int(np.argmin(delta))                        # ties: first (i, b)
            i, b = divmod(best, M)
            if not delta[i, b] < -self.tol:
                return pos
            ai, jb = int(pos[i]), int(occ[b])
            w = W[:, i] - (W[:, jb] if jb >= 0 else 0.0)
            G += w[:, None] * (D[b] - D[ai])[None, :]
            pos[i], occ[b], occ[ai] = b, i, jb
            if jb >= 0:
                pos[jb] = ai


def _check_inputs(clusters, traffic: Traffic, geometry: Geometry) -> tuple[list, Traffic]:
    clusters = list(clusters)
    for c in clusters:
        if not isinstance(c, Cluster):
            raise PlacementError(f"place: expected Cluster, got {c!r}")
    names = _names_of(clusters)
    if len(clusters) > geometry.n_cores:
        raise PlacementError(f"placement needs {len(clusters)} cores, the mesh has "
                             f"{geometry.n_cores} ({geometry.rows}x{geometry.cols})")
    for c in clusters:
        c.check(geometry)
    if set(names) != set(traffic.names):
        extra = sorted(set(traffic.names) - set(names))
        missing = sorted(set(names) - set(traffic.names))
        raise PlacementError(
            "place: traffic and clusters name different clusters"
            + (f"; not in traffic: {', '.join(missing)}" if missing else "")
            + (f"; not among the clusters: {', '.join(extra)}" if extra else ""))
    if names != traffic.names:                      # reorder traffic to cluster order
        order = [traffic.index(name) for name in names]
        traffic = Traffic(names, traffic.matrix[np.ix_(order, order)],
                          traffic.from_host[order], traffic.to_host[order])
    return clusters, traffic


@dataclass(frozen=True, eq=False)
class Placement:
    """Clusters assigned to cores, with the cost against row-major placement.

    Attributes
    ----------
    clusters : tuple of Cluster
    traffic : Traffic
        In cluster order.
    geometry : Geometry
    positions : dict
        Cluster name to core ``(x, y)``; distinct cores.
    cost : float
        :func:`placement_cost` of ``positions``, packet-hops per step.
    naive_cost : float
        :func:`placement_cost` of :func:`naive_placement`.
    """

    clusters: tuple[Cluster, ...]
    traffic: Traffic
    geometry: Geometry
    positions: dict[str, XY] = field(default_factory=dict)
    cost: float = 0.0
    naive_cost: float = 0.0

    def core_of(self, cluster: Cluster | str) -> XY:
        """Core ``(x, y)`` of a cluster (given by object or name)."""
        return self.positions[cluster.name if isinstance(cluster, Cluster) else cluster]

    @property
    def saving(self) -> float:
        """Fraction of the naive cost saved, in [0, 1] (0 if the naive cost is 0)."""
        return 1.0 - self.cost / self.naive_cost if self.naive_cost else 0.0

    def report(self) -> str:
        """Human-readable summary: costs, one line per cluster, and a mesh map."""
        g, t = self.geometry, self.traffic
        xy = _positions_array(self.positions, t, None)
        mesh, host = _cost_parts(xy, t)
        packets = t.total - float(np.trace(t.matrix))
        lines = [
            f"placement of {len(self.clusters)} clusters of "
            f"{len({c.population for c in self.clusters})} populations on a "
            f"{g.rows}x{g.cols} mesh ({len(self.clusters)} of {g.n_cores} cores used)",
            f"cost: {_num(self.cost)} packet-hops/step "
            f"(core to core {_num(mesh)}, host {_num(host)})",
            f"naive row-major: {_num(self.naive_cost)} packet-hops/step; "
            f"saved {_num(self.naive_cost - self.cost)} ({100 * self.saving:.1f} %)",
        ]
        if packets > 0:
            lines.append(f"traffic: {_num(packets)} packets/step leave their core, "
                         f"{self.cost / packets:.2f} hops each on average")
        header = ("cluster", "population", "neurons", "core", "axons", "synapses",
                  "fanout", "profiles", "pkt/step out", "pkt-hops")
        rows = []
        for i, c in enumerate(self.clusters):
            x, y = self.positions[c.name]
            d = np.abs(xy - xy[i]).sum(axis=1)
            own = (t.matrix[i] * d).sum() + (t.from_host[i] + t.to_host[i]) * (x + y + 1)
            out = t.matrix[i].sum() - t.matrix[i, i] + t.to_host[i]
            rows.append((c.name, c.population, f"{c.start}..{c.stop - 1}", f"({x},{y})",
                         str(c.axons), str(c.synapses), str(c.fanout), str(c.profiles),
                         _num(out), _num(own)))
        limits = ("", "", f"/{g.n_neurons}", "", f"/{g.n_axons}", f"/{g.n_synapses}",
                  f"/{g.n_fanout}", f"/{g.n_profiles}", "", "")
        table = [header, *rows, limits]
        widths = [max(len(r[k]) for r in table) for k in range(len(header))]
        lines.append("")
        lines += ["  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip() for r in table]
        lines.append("(pkt-hops: the cluster's outgoing and host packets times their hops; "
                     "last row: per-core limits)")
        grid = [["."] * g.cols for _ in range(g.rows)]
        for name, (x, y) in self.positions.items():
            grid[y][x] = name
        width = max(len(s) for row in grid for s in row + [f"x={g.cols - 1}"])
        lines += ["", "mesh (host port west of (0,0)):",
                  " " * 6 + " ".join(f"x={x}".ljust(width) for x in range(g.cols)).rstrip()]
        lines += [f"  y={y:<2}" + " ".join(s.ljust(width) for s in row).rstrip()
                  for y, row in enumerate(grid)]
        return "\n".join(lines)


def _num(x: float) -> str:
    return str(int(round(x))) if abs(x - round(x)) < 1e-9 else f"{x:.3f}"


def place(clusters: Sequence[Cluster], traffic: Traffic, geometry: Geometry, *,
          seed: int = 0, kicks: int = 32) -> Placement:
    """Assign clusters to distinct cores, minimising expected packet-hops per step.

    Parameters
    ----------
    clusters : sequence of Cluster
        Each must fit one core (:meth:`Cluster.check`); at most ``n_cores``.
    traffic : Traffic
        Naming the same clusters (any order).
    geometry : Geometry
    seed : int
        Seed of the random perturbations (step 3 below).
    kicks : int
        Number of perturbation rounds (0: greedy + descent only).

    Returns
    -------
    Placement
        With ``cost <= naive_cost`` always.

    Raises
    ------
    PlacementError
        If there are more clusters than cores, a cluster exceeds a per-core
        limit, or ``traffic`` names other clusters.

    Notes
    -----
    1. *Greedy construction.* Repeatedly take the unplaced cluster with the
       most traffic to the host and to already placed clusters (ties: most
       traffic overall, then cluster order) and put it on the free core where
       that traffic costs least (ties: lowest core index).
    2. *Local search.* Steepest descent over all single moves (a cluster to a
       free core) and all pairwise swaps, with the exact cost change of every
       candidate computed at once, until no move improves. This runs from the
       greedy placement and from the naive row-major one; the better result
       is kept, so the cost is never above the naive cost.
    3. *Iterated local search.* ``kicks`` times, perturb the best placement
       with 2-4 random moves/swaps (``numpy.random.default_rng(seed)``),
       descend again, and keep the result if it is strictly better.

    The result depends only on the inputs and ``seed``. The search is a
    heuristic (placement is a quadratic assignment problem, NP-hard); it
    finds the optimum of small cases but not necessarily of large ones.
    """
    clusters, traffic = _check_inputs(clusters, traffic, geometry)
    kicks = _check_count("place", "kicks", kicks)
    naive = naive_placement(clusters, geometry)
    naive_cost = placement_cost(naive, traffic)
    n = len(clusters)
    if n == 0:
        return Placement((), traffic, geometry, {}, 0.0, 0.0)

    prob = _Problem(traffic, geometry)
    starts = [prob.greedy(), np.arange(n, dtype=np.int64)]
    found = [prob.descend(p) for p in starts]
    costs = [prob.cost(p) for p in found]
    best = found[int(np.argmin(costs))]
    best_cost = min(costs)

    rng = np.random.default_rng(seed)
    if prob.M > 1:
        for _ in range(kicks):
            p = best.copy()
            occ = np.full(prob.M, -1, dtype=np.int64)
            occ[p] = np.arange(n)
            for _ in range(int(rng.integers(2, 5))):
                i, b = int(rng.integers(n)), int(rng.integers(prob.M))
                a, j = int(p[i]), int(occ[b])
                p[i], occ[b], occ[a] = b, i, j
                if j >= 0:
                    p[j] = a
            p = prob.descend(p)
            c = prob.cost(p)
            if c < best_cost - prob.tol:
                best, best_cost = p, c

    positions = {c.name: (int(prob.xy[k, 0]), int(prob.xy[k, 1]))
                 for c, k in zip(clusters, best.tolist())}
    cost = placement_cost(positions, traffic, geometry)
    if cost > naive_cost:                 # only by rounding; never return worse than naive
        positions, cost = naive, naive_cost
    return Placement(tuple(clusters), traffic, geometry, positions, cost, naive_cost)
