"""Choosing a geometry for a network (``neuromesh compile --geometry auto``,
:meth:`Geometry.fit <neuromesh.chip.Geometry.fit>`).

The search is lexicographic: first the mesh with the fewest cores that
holds the network when every core is as large as allowed (the chip's field
widths, or a board's geometry), then, on that mesh, the smallest size of
each per-core memory that still holds it. Every choice is checked with the
design-rule check's :func:`~neuromesh.compiler.drc.layout` -- the partition
the compiler uses -- and comes with the reason: which cores, clusters or
projections set it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from neuromesh.chip import GEOMETRY_LIMITS, Geometry

from .drc import DesignRuleError, Layout, NetworkNeeds, Violation, layout
from .network import Network
from .placement import RESOURCES, pack

__all__ = ["GeometryFit", "FitError", "fit_geometry", "largest_geometry", "board_limits"]

#: The per-core parameters chosen after the mesh, in report order.
PER_CORE = ("n_neurons", "n_axons", "n_synapses", "n_fanout", "n_profiles", "n_groups",
            "delay_slots")

_WORDS = {"n_neurons": "neurons", "n_axons": "axons", "n_synapses": "synapses",
          "n_fanout": "fan-out entries", "n_profiles": "profiles", "n_groups": "groups",
          "delay_slots": "delay slots"}


class FitError(DesignRuleError):
    """The network fits no geometry within the limits (every violation at
    the largest allowed cores is listed)."""

    def __init__(self, what: str, violations: list[Violation]):
        super().__init__(violations)
        self.args = (f"the network does not fit {what}: {self.args[0]}",)


@dataclass
class GeometryFit:
    """The geometry :func:`fit_geometry` chose, and why.

    Attributes
    ----------
    geometry : Geometry
    reasons : dict
        ``{parameter: why}`` for the mesh (``"mesh"``) and every per-core
        parameter.
    limits : Geometry
        The largest per-core sizes searched within (the chip's, or a board's).
    max_cores : int
        The most cores allowed.
    cores : int
        Cores the compiler uses on ``geometry``.
    clusters : int
        Clusters the populations are cut into.
    layout : Layout
        The network laid out on ``geometry`` (the design-rule check's
        answer): ``compile_network(net, fit.geometry, layout=fit.layout)``
        compiles without running the check again.
    """

    geometry: Geometry
    reasons: dict = field(default_factory=dict)
    limits: Geometry | None = None
    max_cores: int = 0
    cores: int = 0
    clusters: int = 0
    layout: Layout | None = field(default=None, repr=False, compare=False)

    def report(self) -> str:
        """The geometry and one line per parameter with its reason."""
        lines = [f"geometry {self.geometry}  ({self.cores} of {self.geometry.n_cores} "
                 f"cores used, {self.clusters} clusters)"]
        width = max(len(k) for k in self.reasons)
        for name, why in self.reasons.items():
            lines.append(f"  {name:<{width}}  {why}")
        return "\n".join(lines)

    def __str__(self):
        return self.report()


def largest_geometry(rows: int = 1, cols: int = 1) -> Geometry:
    """The ``rows x cols`` geometry with every per-core size at the chip's maximum."""
    top = {k: hi for k, (lo, hi) in GEOMETRY_LIMITS.items()}
    return Geometry(**{**top, "rows": rows, "cols": cols})


def board_limits(board) -> tuple[Geometry, int]:
    """A board's per-core limits (its catalog geometry) and its core count.
    ``board``: a name from :mod:`neuromesh.boards.catalog` or a ``Board``."""
    from neuromesh.boards.catalog import get_board
    b = get_board(board) if isinstance(board, str) else board
    g = Geometry.parse(b.geometry)
    return g, g.n_cores


def _meshes(max_cores: int):
    """Every ``(rows, cols)`` allowed, as ``(area, imbalance, rows, cols)``."""
    hi_r, hi_c = GEOMETRY_LIMITS["rows"][1], GEOMETRY_LIMITS["cols"][1]
    return sorted((r * c, abs(r - c), r, c) for r in range(1, hi_r + 1)
                  for c in range(r, hi_c + 1) if r * c <= max_cores)


def _mesh_for(cores: int, max_cores: int) -> tuple[int, int] | None:
    """The smallest, then squarest, mesh of at least ``cores`` cores."""
    for area, _, r, c in _meshes(max_cores):
        if area >= cores:
            return r, c
    return None


def _per_core_needs(lay: Layout) -> list[tuple[dict, object]]:
    """``[(needs, core group)]`` of every core of a layout, with its groups."""
    out = []
    for g in lay.cores:
        d = g.needs()
        d["groups"] = g.groups
        out.append((d, g))
    return out


def _who(group) -> str:
    names = [c.name for c in group.members]
    return names[0] if len(names) == 1 else "+".join(names[:3]) + \
        ("" if len(names) <= 3 else f" (+{len(names) - 3})")


def fit_geometry(net: Network, *, board=None, max_cores: int | None = None,
                 limits: Geometry | None = None) -> GeometryFit:
    """The smallest geometry that holds ``net``: fewest cores first, then the
    smallest per-core sizes on that mesh.

    Parameters
    ----------
    net : Network
    board : str or Board, optional
        Stay within this board's geometry (:mod:`neuromesh.boards.catalog`):
        at most its cores, each at most its per-core sizes.
    max_cores : int, optional
        At most this many cores (default: the chip's 16 x 16, or the board's).
    limits : Geometry, optional
        Per-core sizes not to exceed (default: the chip's maxima).

    Returns
    -------
    GeometryFit
        The geometry, with a reason for each choice.

    Raises
    ------
    FitError
        If the network does not fit even the largest allowed cores, listing
        every violation there (with the numbers).
    """
    top = largest_geometry()
    owner = "the chip"
    most = GEOMETRY_LIMITS["rows"][1] * GEOMETRY_LIMITS["cols"][1]
    if board is not None:
        limits, most = board_limits(board)
        owner = f"board {board if isinstance(board, str) else board.name!r}"
    if limits is not None:
        top = dataclasses.replace(top, **{k: min(getattr(top, k), getattr(limits, k))
                                          for k in PER_CORE})
    if max_cores is not None:
        if max_cores < 1:
            raise ValueError(f"max_cores = {max_cores} must be at least 1")
        most = min(most, max_cores)
    where = (f"{owner}: at most {most} core{'s' if most != 1 else ''} of "
             + ", ".join(f"{getattr(top, k)} {_WORDS[k]}" for k in PER_CORE))
    if not net.populations:
        raise ValueError("the network has no populations: nothing to fit")
    needs = NetworkNeeds(net)
    # 1. The fewest cores at the largest per-core sizes.
    _, _, r0, c0 = max(_meshes(most))
    big = dataclasses.replace(top, rows=r0, cols=c0)
    lay = layout(net, big, needs=needs)
    if lay.violations:
        raise FitError(where, lay.violations)
    clusters = lay.clusters
    used = len(lay.cores)
    if len(clusters) > 1 and used == len(clusters):
        # clusters that could share cores share them on a smaller mesh
        sources = {c.name: needs.sources(c.population, c.start, c.stop) for c in clusters}
        exclusive = {p.dst for p in net.projections if p.plastic is not None}
        groups = {n: len(needs.incoming[n]) for n in net.populations}
        used = len(pack(clusters, big, groups=groups, exclusive=exclusive, sources=sources,
                        check_cores=False))
    rows, cols = _mesh_for(used, most)
    mesh = dataclasses.replace(top, rows=rows, cols=cols)
    lay = layout(net, mesh, needs=needs)
    assert not lay.violations, lay.violations      # the same clusters, packed as above
    shared = len(lay.cores) < len(clusters)
    reasons = {"mesh": (
        f"{rows}x{cols}: {len(lay.cores)} core{'s' if len(lay.cores) != 1 else ''}, the "
        f"fewest that hold the {len(clusters)} cluster{'s' if len(clusters) != 1 else ''}"
        + (" (small ones sharing cores)" if shared else "")
        + f" with cores at the limits ({where})"),
        "": lay.summary()}

    # 2. The smallest per-core sizes on that mesh.
    per_core = _per_core_needs(lay)
    chosen, why = {}, {}
    for resource, attr in RESOURCES.items():
        value, group = max(((d[resource], g) for d, g in per_core), key=lambda t: t[0])
        chosen[attr] = max(value, 1)
        why[attr] = (f"{value}: the most one core needs (the core of {_who(group)})" if value
                     else "1: no core needs any (the minimum)")
    value, group = max(((d["groups"], g) for d, g in per_core), key=lambda t: t[0])
    chosen["n_groups"] = max(value, 1)
    why["n_groups"] = (f"{value}: one weight group per incoming projection (the core of "
                       f"{_who(group)})" if value else "1: no synapses (the minimum)")
    longest = max(((int(p.delay.max(initial=0)), p.name) for p in net.projections),
                  default=(0, None))
    slots = 2
    while slots - 2 < longest[0]:
        slots *= 2
    chosen["delay_slots"] = slots
    why["delay_slots"] = (f"{slots}: the longest delay is {longest[0]} (projection "
                          f"{longest[1]!r}), delays reach delay_slots - 2, a power of two"
                          if longest[0] else f"{slots}: no delays (the minimum)")
    geometry = dataclasses.replace(mesh, **chosen)
    final = layout(net, geometry, needs=needs)
    if final.violations or len(final.cores) > len(lay.cores):
        # smaller cores cut or packed the network differently: keep the
        # sizes that held it
        for attr in ("n_neurons", "n_axons", "n_synapses", "n_fanout", "n_profiles",
                     "n_groups"):
            why[attr] = (f"{getattr(mesh, attr)}: the limit; this cut needs "
                         f"{why[attr].split(':')[0]}, but cores that small cut the network "
                         f"into more clusters")
        geometry = dataclasses.replace(geometry, **{a: getattr(mesh, a) for a in
                                                    ("n_neurons", "n_axons", "n_synapses",
                                                     "n_fanout", "n_profiles", "n_groups")})
        final = layout(net, geometry, needs=needs)
        assert not final.violations, final.violations
    for attr in PER_CORE:
        reasons[attr] = why[attr]
    return GeometryFit(geometry, reasons, limits=top, max_cores=most,
                       cores=len(final.cores), clusters=len(final.clusters), layout=final)
