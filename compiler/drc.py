"""Design-rule check: every way a network breaks the chip's limits, at once.

:func:`design_rule_check` collects *all* violations (layer, resource, limit,
value, by how much) before anything is compiled, so a user fixes a network
in one round rather than one error at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuromesh.chip import ChipError, Geometry

from .network import Network
from .placement import RESOURCES, PopulationNeeds

__all__ = ["Violation", "DesignRuleError", "design_rule_check", "cluster_sources",
           "sharing_args"]


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``layer`` needs ``value`` of ``resource``; the limit is ``limit``."""

    layer: str
    resource: str
    limit: int
    value: int

    def __str__(self):
        return (f"{self.layer}: {self.resource} = {self.value} exceeds the limit {self.limit} "
                f"by {self.value - self.limit}")


class DesignRuleError(ChipError):
    """The network breaks one or more chip limits (all are listed)."""

    def __init__(self, violations: list[Violation]):
        self.violations = list(violations)
        super().__init__(f"{len(self.violations)} design-rule violation(s):\n" +
                         "\n".join(f"  - {v}" for v in self.violations))


def population_needs(net: Network, name: str, fanout: int = 1) -> PopulationNeeds:
    """Per-neuron resource needs of population ``name`` (for partitioning)."""
    pop = net.populations[name]
    count = np.zeros(pop.size, dtype=np.int64)
    sources, bias = 0, 0
    for p in net.projections:
        if p.dst == name:
            np.add.at(count, p.post, 1)
            if net.inputs.get(p.src) is not None and net.inputs[p.src].always_on:
                bias = 1                      # every always-on port shares one axon
            else:
                sources += np.unique(p.pre).size
    fan_in = int(count.max(initial=0))
    return PopulationNeeds(name, pop.size, fan_in=fan_in,
                           n_sources=max(sources + bias, 1) if fan_in else 0, fanout=fanout,
                           profiles=1, bias=bias)


def cluster_sources(net: Network, clusters) -> dict[str, np.ndarray]:
    """``{cluster name: ids of the distinct sources its neurons hear}`` (input
    channels and neurons of every port and population, numbered one after
    another), for :func:`~neuromesh.compiler.placement.pack`: on a shared
    core each source takes one axon."""
    first, n = {}, 1            # id 0: every always-on port (one signal, one axon)
    for name, size in [*((k, v.size) for k, v in net.inputs.items() if not v.always_on),
                       *((k, v.size) for k, v in net.populations.items())]:
        first[name] = n
        n += size
    for name, port in net.inputs.items():
        if port.always_on:
            first[name] = 0
    out = {}
    for c in clusters:
        parts = [first[p.src] + (0 if net.inputs.get(p.src) is not None
                                 and net.inputs[p.src].always_on else 1) *
                 p.pre[(p.post >= c.start) & (p.post < c.stop)]
                 for p in net.projections if p.dst == c.population]
        out[c.name] = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return out


def sharing_args(net: Network, clusters) -> dict:
    """The network's keyword arguments of :func:`~neuromesh.compiler.placement.pack`."""
    return dict(exclusive={p.dst for p in net.projections if p.plastic is not None},
                groups={n: sum(1 for p in net.projections if p.dst == n)
                        for n in net.populations},
                sources=cluster_sources(net, clusters))


def design_rule_check(net: Network, geometry: Geometry) -> list[Violation]:
    """All violations of ``net`` on ``geometry`` (empty list: it can be compiled).

    Checked: synaptic delays against ``delay_slots - 2``; incoming
    projections per population against ``n_groups``; per-neuron needs
    (synapses, axons, fan-out) against one core; the total number of cores
    the partition needs (after packing small clusters together when there
    are more clusters than cores) against the mesh; host channels against
    65536.
    """
    g = geometry
    out: list[Violation] = []
    for p in net.projections:
        d = int(p.delay.max(initial=0))
        if d > g.max_delay:
            out.append(Violation(f"projection {p.name!r}", "delay", g.max_delay, d))
    needs_of = {}
    for name in net.populations:
        n_in = sum(1 for p in net.projections if p.dst == name)
        if n_in > g.n_groups:
            out.append(Violation(f"population {name!r}", "incoming projections (n_groups)",
                                 g.n_groups, n_in))
        fanout = sum(1 for p in net.projections if p.src == name) + (name in net.outputs)
        needs = population_needs(net, name, max(fanout, 1))
        fits = True
        for resource, attr in RESOURCES.items():
            if needs.cluster_needs(1)[resource] > getattr(g, attr):
                out.append(Violation(f"population {name!r} (one neuron)", f"{attr}",
                                     getattr(g, attr), needs.cluster_needs(1)[resource]))
                fits = False
        if fits:
            needs_of[name] = needs
    if needs_of:
        from .placement import pack, partition
        clusters = partition(needs_of.values(), g, check_cores=False)
        cores = len(clusters)
        if cores > g.n_cores:       # then small clusters share cores
            cores = len(pack(clusters, g, **sharing_args(net, clusters), check_cores=False))
        if cores > g.n_cores:
            out.append(Violation("network", "cores", g.n_cores, cores))
    for what, total in (("input channels", sum(i.size for i in net.host_inputs().values())),
                        ("output channels", sum(net.populations[n].size for n in net.outputs))):
        if total > 1 << 16:
            out.append(Violation("network", what, 1 << 16, total))
    return out
