"""Reading NIR files: ``nir.read`` with a diagnosis, and documented repairs.

``nir.read`` (nir 1.0.x) fails on a malformed file with whatever its code
meets first -- an ``AssertionError`` without a message, a ``KeyError``
naming a dataset, a ``ZeroDivisionError`` -- and never says which node.
:func:`read_nir` reads the HDF5 file itself, checks every node before
building it, and turns every failure into one :class:`NIRReadError`::

    not a readable NIR file: <file>: <node or field>: <reason>

It builds the graph with nir's own classes exactly as ``nir.read`` does
(subgraphs and the top graph type-checked), so a file ``nir.read`` accepts
gives the same graph.

Repairs
-------
One kind of file that ``nir.read`` rejects has an unambiguous meaning and
is repaired (pass ``repair=False`` to refuse it instead). Each repair is
listed in the returned graph's ``metadata["neuromesh_repairs"]`` and printed
by ``neuromesh compile``:

* **Edges that name a subgraph's node by its inner name.** Recurrent layers
  exported as a subgraph (e.g. the NIR paper's Braille SRNN, built by the
  helpers that turn snnTorch's flat ``lif1.lif``/``lif1.w_rec`` pair into a
  subgraph ``lif1``) sometimes key the inner nodes ``lif1.lif`` but list the
  inner edges as ``("lif", "w_rec")`` -- or the reverse. Within the subgraph
  with key ``S``, an edge end ``X`` that names no node is replaced by the
  one node named ``S.X``; an end ``S.X`` that names no node by the one node
  named ``X``. Only that pattern is repaired, and only when exactly one node
  matches; anything else stays an error naming the edge.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .network import NetworkError

__all__ = ["NIRReadError", "read_nir", "MAX_SUBGRAPH_DEPTH"]

#: Deepest nesting of subgraphs read (a file nested deeper is refused).
MAX_SUBGRAPH_DEPTH = 32

#: Fields that are not numeric parameters.
_STRUCTURE = {"type", "metadata", "nodes", "edges", "shape", "input_type", "output_type"}

#: Neuron nodes: all their parameters have one shape (nir asserts it without a word).
_NEURONS = {"LIF", "CubaLIF", "IF", "LI", "CubaLI"}

#: Fields that must be positive integers (a stride of 0 divides by zero).
_POSITIVE = {"stride", "dilation", "kernel_size", "groups"}


class NIRReadError(NetworkError):
    """A NIR file that cannot be read, with the node and field at fault."""


def read_nir(source, *, repair: bool = True):
    """Read a NIR graph from a file (or check an in-memory ``nir.NIRGraph``).

    Raises :class:`NIRReadError` ("not a readable NIR file: ...") naming the
    file, the node (dotted path through subgraphs) and the field. With
    ``repair`` the documented repairs (module docstring) are applied and
    listed in ``graph.metadata["neuromesh_repairs"]``.
    """
    import nir
    if isinstance(source, nir.NIRGraph):
        repairs: list[str] = []
        _fix_graph_edges(source, "", repair, repairs, "graph")
        if repairs:
            source.metadata = {**(source.metadata or {}), "neuromesh_repairs": repairs}
        return source
    path = Path(source)
    where = f"not a readable NIR file: {path}"
    from neuromesh.chip import ChipError
    from neuromesh.files import check_regular_file
    try:
        check_regular_file(path, "NIR file")
    except ChipError as e:
        raise NIRReadError(f"{where}: {str(e).split(': ', 1)[-1]}") from None
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise NIRReadError(f"{where}: not an HDF5 file ({str(e).split('(')[0].strip()})") \
            from None
    with f:
        if "node" not in f or not isinstance(f["node"], h5py.Group):
            raise NIRReadError(f"{where}: an HDF5 file without a 'node' group (not NIR; "
                               f"top-level entries: {', '.join(list(f)[:8]) or 'none'})")
        try:
            tree = _read_group(f["node"], "node", 0)
        except NIRReadError as e:
            raise NIRReadError(f"{where}: {e}") from None
    repairs = []
    try:
        graph = _build(tree, "", repair, repairs)
    except NIRReadError as e:
        raise NIRReadError(f"{where}: {e}") from None
    if repairs:
        graph.metadata = {**(graph.metadata or {}), "neuromesh_repairs": repairs}
    return graph


def _read_group(group, where: str, depth: int) -> dict:
    """An HDF5 group as a dict of numpy values / strings / dicts."""
    import h5py
    if depth > MAX_SUBGRAPH_DEPTH * 2 + 4:
        raise NIRReadError(f"{where}: nested deeper than {MAX_SUBGRAPH_DEPTH} subgraphs")
    out = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _read_group(item, f"{where}/{key}", depth + 1)
        elif isinstance(item, h5py.Dataset):
            try:
                value = item[()]
            except (OSError, TypeError, ValueError) as e:
                raise NIRReadError(f"{where}/{key}: cannot read the dataset ({e})") from None
            out[key] = value.decode("utf8", "replace") if isinstance(value, bytes) else value
        else:   # pragma: no cover - links to nowhere
            raise NIRReadError(f"{where}/{key}: neither a group nor a dataset")
    return out


def _node_classes():
    import nir
    return {name: getattr(nir, name) for name in (
        "Affine", "AvgPool2d", "Conv1d", "Conv2d", "CubaLI", "CubaLIF", "Delay", "Flatten",
        "I", "IF", "Input", "LI", "LIF", "Linear", "NIRGraph", "Output", "Scale",
        "SumPool2d", "Threshold") if hasattr(nir, name)}


def _required(cls) -> set:
    """Constructor fields of a nir node class that have no default."""
    return {f.name for f in dataclasses.fields(cls) if f.init
            and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            and f.name not in ("input_type", "output_type", "metadata")}


def _check_node(node: dict, name: str):
    """Check one node dict before nir builds it; return its type name."""
    classes = _node_classes()
    label = f"node {name!r}" if name else "the top graph"
    if not isinstance(node, dict):
        raise NIRReadError(f"{label}: a dataset where a node group is expected")
    kind = node.get("type")
    if kind is None:
        raise NIRReadError(f"{label}: has no 'type' field")
    if not isinstance(kind, str):
        raise NIRReadError(f"{label}: field 'type' holds {type(kind).__name__}, not a string")
    if kind not in classes:
        raise NIRReadError(f"{label}: unknown node type {kind!r} (NIR 1.0 has "
                           f"{', '.join(sorted(classes))})")
    fields = {f.name for f in dataclasses.fields(classes[kind])}
    needed = _required(classes[kind])
    if kind in ("Input", "Output"):
        needed = (needed - {"input_type", "output_type"}) | {"shape"}
    for field in sorted(needed):
        if field not in node:
            raise NIRReadError(f"{label} ({kind}): missing field {field!r}")
    for field, value in node.items():
        if field in _STRUCTURE or (field == "padding" and isinstance(value, str)):
            continue
        if field not in fields:
            raise NIRReadError(f"{label} ({kind}): unknown field {field!r} (a {kind} has "
                               f"{', '.join(sorted(fields - {'input_type', 'output_type'}))})")
        if isinstance(value, dict) or isinstance(value, str) or \
                np.asarray(value).dtype.kind not in "biuf":
            what = "a group" if isinstance(value, dict) else \
                f"{np.asarray(value).dtype}" if not isinstance(value, str) else "a string"
            raise NIRReadError(f"{label} ({kind}): field {field!r} holds {what}, not numbers")
        a = np.asarray(value)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise NIRReadError(f"{label} ({kind}): field {field!r} holds NaN or infinity")
        if field in _POSITIVE and (a < 1).any():
            raise NIRReadError(f"{label} ({kind}): field {field!r} = {a.tolist()} must be "
                               f">= 1")
    if kind in _NEURONS:
        shapes: dict = {}
        for field, value in node.items():
            if field not in _STRUCTURE and field != "w_in":     # nir broadcasts w_in
                shapes.setdefault(np.shape(value), []).append(field)
        if len(shapes) > 1:
            raise NIRReadError(f"{label} ({kind}): parameter shapes differ (every parameter "
                               f"has one value per neuron): " + "; ".join(
                                   f"{', '.join(f)} {tuple(int(n) for n in shape)}"
                                   for shape, f in sorted(shapes.items(),
                                                          key=lambda x: len(x[1]))))
    if kind in ("Input", "Output"):
        shape = np.asarray(node["shape"])
        if shape.dtype.kind not in "iu" or (shape < 1).any() or shape.ndim > 1:
            raise NIRReadError(f"{label} ({kind}): field 'shape' = {shape.tolist()} must be "
                               f"positive integers")
    return kind


def _build(node: dict, name: str, repair: bool, repairs: list, depth: int = 0):
    """Build the nir node (a graph bottom-up), attributing failures to it."""
    import nir
    kind = _check_node(node, name)
    label = f"node {name!r}" if name else "the top graph"
    metadata = node.get("metadata", {})
    if kind != "NIRGraph":
        try:
            return nir.dict2NIRNode(dict(node))
        except Exception as e:   # nir's own checks: asserts, shape errors
            raise NIRReadError(f"{label} ({kind}): {_reason(e)}") from None
    if depth > MAX_SUBGRAPH_DEPTH:
        raise NIRReadError(f"{label}: nested deeper than {MAX_SUBGRAPH_DEPTH} subgraphs")
    if not isinstance(node["nodes"], dict):
        raise NIRReadError(f"{label}: field 'nodes' is a dataset, not a group of nodes")
    prefix = f"{name}." if name else ""
    nodes = {key: _build(child, prefix + key, repair, repairs, depth + 1)
             for key, child in node["nodes"].items()}
    edges = _edges(node["edges"], label)
    edges = _fix_edges(nodes, edges, name.rsplit(".", 1)[-1] if name else "", repair,
                       repairs, label)
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges,
                            metadata=metadata if isinstance(metadata, dict) else {},
                            type_check=True)
    except Exception as e:
        raise NIRReadError(f"{label}: the graph's type check fails: {_reason(e)}") from None


def _edges(value, label) -> list:
    """The edge list of a graph node: pairs of node names."""
    a = np.asarray(value)
    if a.size == 0:
        return []
    if a.ndim != 2 or a.shape[1] != 2 or a.dtype.kind not in "OSU":
        raise NIRReadError(f"{label}: field 'edges' has shape {a.shape} and type {a.dtype}; "
                           f"expected pairs of node names")
    return [tuple(x.decode("utf8", "replace") if isinstance(x, bytes) else str(x) for x in e)
            for e in a]


def _fix_edges(nodes: dict, edges: list, key: str, repair: bool, repairs: list,
               label: str) -> list:
    """Apply the inner-name repair to ``edges`` of the graph with key ``key``."""
    out = []
    for a, b in edges:
        ends = []
        for end in (a, b):
            if end in nodes:
                ends.append(end)
                continue
            match = _inner_name_match(nodes, end, key)
            if match is None or not repair:
                known = ", ".join(sorted(nodes)[:12])
                hint = (f"; {match!r} would match (repair=True renames it)" if match else "")
                raise NIRReadError(f"{label}: edge ({a!r}, {b!r}) names {end!r}, which is not "
                                   f"a node of it (nodes: {known}){hint}")
            note = (f"{label}: edge end {end!r} read as node {match!r} (inner name of "
                    f"subgraph {key!r})")
            if note not in repairs:
                repairs.append(note)
            ends.append(match)
        out.append(tuple(ends))
    return out


def _inner_name_match(nodes, end: str, key: str):
    """The one node that ``end`` means by the inner-name convention, or None."""
    if not key:
        return None
    candidates = {f"{key}.{end}"} if not end.startswith(f"{key}.") \
        else {end[len(key) + 1:]}
    found = [n for n in nodes if n in candidates]
    return found[0] if len(found) == 1 else None


def _fix_graph_edges(graph, name: str, repair: bool, repairs: list, label: str):
    """The same repair on an in-memory graph (subgraphs first)."""
    import nir
    for key, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            full = f"{name}.{key}" if name else key
            _fix_graph_edges(node, full, repair, repairs, f"node {full!r}")
    graph.edges = _fix_edges(graph.nodes, list(graph.edges),
                             name.rsplit(".", 1)[-1] if name else "", repair, repairs, label)


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
