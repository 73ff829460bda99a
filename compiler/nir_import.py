"""NIR front end: a NIR graph (``nir`` 1.0.x) to a :class:`Network`.

NIR describes neurons in continuous time; the chip steps in discrete time.
How a framework discretised its model -- ``dt``, Euler or exact decays, the
reset mode and whether the reset is delayed a step -- is not in the file, so
it is an explicit :class:`NIROptions` (with documented per-framework presets
in :data:`FRAMEWORKS`), never guessed.

Supported now: Input, Output, Affine, Linear, Scale, Flatten (of a 1-D
layer), LIF, CubaLIF and IF, connected as a feed-forward graph of
``weights -> neurons`` stages. Any other node is an error naming it.

Mapping (for ``method="euler"``; ``"exact"`` uses ``1 - exp(-dt/tau)`` for
the gains): CubaLIF ``tau_syn dI/dt = -I + w_in x``, ``tau_mem dv/dt =
v_leak - v + r I`` becomes ``u = (1 - dt/tau_syn) u + q``, ``v = (1 -
dt/tau_mem) v + u + (dt/tau_mem) v_leak`` with the incoming weights
multiplied by ``(dt/tau_syn) w_in (dt/tau_mem) r``; LIF and IF likewise
with ``u = q``. An Affine bias is exact for LIF and IF (it becomes the v
bias) and rejected for CubaLIF (it would enter the decaying current).
On the chip every layer adds one step of latency (docs/architecture.md §4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .network import Network, NetworkError

__all__ = ["NIROptions", "FRAMEWORKS", "from_nir"]


@dataclass(frozen=True)
class NIROptions:
    """How the source framework discretised its NIR graph.

    Attributes
    ----------
    dt:
        Timestep in the graph's time unit (snnTorch exports assume 1e-4).
    method:
        ``"euler"`` (retention ``1 - dt/tau``) or ``"exact"`` (``exp(-dt/tau)``).
    reset:
        ``"zero"`` or ``"subtract"`` (NIR has no subtract node).
    reset_delay:
        True when a spiking neuron keeps its potential for the step and is
        reset on the next one (snnTorch's default). With zero reset this is
        exactly a one-step refractory period; with subtract reset it has no
        chip equivalent and is rejected.
    """

    dt: float
    method: str = "euler"
    reset: str = "zero"
    reset_delay: bool = False

    def __post_init__(self):
        if not self.dt > 0:
            raise NetworkError(f"NIR options: dt = {self.dt} must be > 0")
        if self.method not in ("euler", "exact"):
            raise NetworkError(f"NIR options: method {self.method!r} is not 'euler' or 'exact'")
        if self.reset not in ("zero", "subtract"):
            raise NetworkError(f"NIR options: reset {self.reset!r} is not 'zero' or 'subtract'")


#: Documented conventions of the frameworks that export NIR (reset delay off:
#: train with ``reset_delay=False`` in snnTorch for an exact match).
FRAMEWORKS = {
    "snntorch": NIROptions(dt=1e-4, method="euler", reset="subtract", reset_delay=False),
    "norse": NIROptions(dt=1e-3, method="euler", reset="zero"),
    "lava-dl": NIROptions(dt=1.0, method="euler", reset="zero"),
    "rockpool": NIROptions(dt=1e-3, method="exact", reset="subtract"),
    "sinabs": NIROptions(dt=1.0, method="exact", reset="subtract"),
}

_WEIGHTS = ("Affine", "Linear", "Scale")
_NEURONS = ("LIF", "CubaLIF", "IF")


def _uniform(node_name, field, value):
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size and not np.allclose(a, a[0], rtol=1e-6, atol=0):
        raise NetworkError(f"NIR node {node_name!r}: {field} differs between neurons "
                           f"({a.min():g} .. {a.max():g}); a population shares one value")
    return float(a[0]) if a.size else 0.0


def _size(shape) -> int:
    return int(np.prod(np.asarray(shape, dtype=np.int64)))


def from_nir(graph, options: NIROptions) -> Network:
    """Build a :class:`Network` from a NIR graph (or the path of a NIR file)."""
    import nir
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(graph)
    if options.reset_delay and options.reset == "subtract":
        raise NetworkError("NIR options: subtract reset delayed by one step (snnTorch "
                           "reset_delay=True) has no exact chip equivalent; export with "
                           "reset_delay=False or use zero reset")
    nodes = graph.nodes
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise NetworkError(f"NIR edge ({a!r}, {b!r}) names a missing node")
        preds[b].append(a)
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind not in ("Input", "Output", "Flatten", *_WEIGHTS, *_NEURONS):
            raise NetworkError(f"NIR node {name!r}: {kind} is not supported (yet)")

    def source(name):
        """Skip Flatten nodes back to an Input or a neuron node."""
        while type(nodes[name]).__name__ == "Flatten":
            if len(preds[name]) != 1:
                raise NetworkError(f"NIR node {name!r}: Flatten needs exactly one input")
            name = preds[name][0]
        kind = type(nodes[name]).__name__
        if kind not in ("Input", *_NEURONS):
            raise NetworkError(f"NIR node {name!r}: {kind} cannot feed a weight node here")
        return name

    net = Network(dt=options.dt, method=options.method)
    for name, node in nodes.items():
        if type(node).__name__ == "Input":
            net.input(name, _size(node.input_type["input"]))

    def keep(tau):
        """Per-step retention of a time constant under the chosen method."""
        if options.method == "euler":
            return min(max(1.0 - options.dt / tau, 0.0), 1.0)
        return math.exp(-options.dt / tau)

    order = [n for n in nodes if type(nodes[n]).__name__ in _NEURONS]
    pending = list(order)
    while pending:            # neurons in dependency order (feed-forward)
        progress = False
        for name in list(pending):
            node = nodes[name]
            kind = type(node).__name__
            ins = []
            for w in preds[name]:
                if type(nodes[w]).__name__ not in _WEIGHTS or len(preds[w]) != 1:
                    raise NetworkError(f"NIR node {name!r}: input {w!r} must be one "
                                       f"Affine/Linear/Scale node with one input")
                ins.append((w, source(preds[w][0])))
            if any(src in pending for _, src in ins):
                continue
            size = _size(np.shape(node.v_threshold)) or 1
            threshold = _uniform(name, "v_threshold", node.v_threshold)
            if node.v_reset is not None and np.any(np.asarray(node.v_reset) != 0):
                raise NetworkError(f"NIR node {name!r}: v_reset must be 0 (the chip resets "
                                   f"to 0 or subtracts the threshold)")
            r = _uniform(name, "r", node.r)
            if kind == "CubaLIF":
                tau_syn = _uniform(name, "tau_syn", node.tau_syn)
                tau_mem = _uniform(name, "tau_mem", node.tau_mem)
                w_in = _uniform(name, "w_in", node.w_in)
                gain = (1 - keep(tau_syn)) * w_in * (1 - keep(tau_mem)) * r
                leak = (1 - keep(tau_mem)) * np.broadcast_to(np.asarray(node.v_leak, float),
                                                            (size,))
                params = dict(kind="cuba", tau_syn=tau_syn, tau_mem=tau_mem)
                v_gain = None
            elif kind == "LIF":
                tau_mem = _uniform(name, "tau", node.tau)
                gain = v_gain = (1 - keep(tau_mem)) * r
                leak = (1 - keep(tau_mem)) * np.broadcast_to(np.asarray(node.v_leak, float),
                                                            (size,))
                params = dict(kind="lif", tau_mem=tau_mem)
            else:
                gain = v_gain = r
                leak = np.zeros(size)
                params = dict(kind="if")
            bias = leak.copy()
            weights = []
            for w, src in ins:
                wnode = nodes[w]
                wkind = type(wnode).__name__
                n_src = (net.inputs.get(src) or net.populations[src]).size
                if wkind == "Scale":
                    mat = np.diag(np.asarray(wnode.scale, float).reshape(-1))
                else:
                    mat = np.asarray(wnode.weight, float).reshape(size, -1)
                if mat.shape != (size, n_src):
                    raise NetworkError(f"NIR node {w!r}: weight shape {mat.shape} does not "
                                       f"connect {src!r} ({n_src}) to {name!r} ({size})")
                if wkind == "Affine" and np.any(np.asarray(wnode.bias) != 0):
                    if v_gain is None:
                        raise NetworkError(
                            f"NIR node {w!r}: an Affine bias feeding CubaLIF {name!r} would "
                            f"enter the decaying synaptic current, which the chip cannot do "
                            f"(its bias adds to v); retrain without bias or use LIF")
                    bias += v_gain * np.broadcast_to(np.asarray(wnode.bias, float), (size,))
                weights.append((src, w, mat.T * gain))
            net.population(name, size, threshold=threshold, bias=bias, reset=options.reset,
                           refractory=1 if options.reset_delay else 0, **params)
            for src, w, mat in weights:
                net.connect(src, name, mat, name=w)
            pending.remove(name)
            progress = True
        if not progress:
            raise NetworkError(f"NIR graph has a cycle through {', '.join(pending)}; "
                               f"recurrent subgraphs are not supported yet")
    for name, node in nodes.items():
        if type(node).__name__ == "Output":
            for p in preds[name]:
                net.output(source(p))
    return net
