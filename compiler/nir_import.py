"""NIR front end: a NIR graph (``nir`` 1.0.x) to a :class:`Network`.

NIR describes neurons in continuous time; the chip steps in discrete time.
How a framework discretised its model -- ``dt``, Euler or exact decays, the
reset mode and whether the reset is delayed a step -- is not in the file, so
it is an explicit :class:`NIROptions` (with documented per-framework presets
in :data:`FRAMEWORKS`), never guessed.

Nodes
-----
Neurons (each becomes a population): LIF, CubaLIF, IF, and the non-spiking
readouts LI and CubaLI (their ``v`` is probed, :meth:`Network.readout`).
Everything between neurons is linear and is folded into synapses: Affine,
Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, Delay (in
steps of ``dt``), and the Input/Output nodes inside subgraphs. Subgraphs
(``NIRGraph`` nodes, e.g. the recurrent CubaLIF + Affine cycle snnTorch
exports for ``RSynaptic``) are inlined with dotted names. Any other node is
an error naming it.

Mapping (``method="euler"``; ``"exact"`` uses ``1 - exp(-dt/tau)`` for the
gains): CubaLIF ``tau_syn dI/dt = -I + w_in x``, ``tau_mem dv/dt = v_leak -
v + r I`` becomes ``u = (1 - dt/tau_syn) u + q``, ``v = (1 - dt/tau_mem) v +
u + (dt/tau_mem) v_leak`` with the incoming weights multiplied by
``(dt/tau_syn) w_in (dt/tau_mem) r``; LIF and IF likewise with ``u = q``. An
Affine/convolution bias is exact for LIF and IF (it becomes the v bias) and
rejected for CubaLIF (it would enter the decaying current).

Timing
------
NIR (and the frameworks) pass a spike through any number of layers within
one step; the chip adds one step per neuron-to-neuron hop (docs/
architecture.md §4). With ``align_latency`` (the default) each population
gets a *latency* -- its depth, the longest chain of hops from an input --
recorded in ``Network.latency``, and every projection that skips layers
gets ``depth(target) - depth(source) - 1`` extra steps of delay (an input
projection ``depth(target)``). Then every population runs exactly its
latency behind the source model: same spikes, shifted. A recurrent
projection onto the same population keeps the chip's one step, which is
what the frameworks do (the previous step's spikes). A loop through
several populations cannot be aligned and is an error unless
``align_latency=False``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .convolution import conv1d_synapses, conv2d_synapses, pool2d_synapses
from .network import Network, NetworkError

__all__ = ["NIROptions", "FRAMEWORKS", "from_nir", "SUPPORTED"]


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
    align_latency:
        Add delays so every population runs a fixed number of steps behind
        the source model (see the module docstring).
    """

    dt: float
    method: str = "euler"
    reset: str = "zero"
    reset_delay: bool = False
    align_latency: bool = True

    def __post_init__(self):
        if not self.dt > 0:
            raise NetworkError(f"NIR options: dt = {self.dt} must be > 0")
        if self.method not in ("euler", "exact"):
            raise NetworkError(f"NIR options: method {self.method!r} is not 'euler' or 'exact'")
        if self.reset not in ("zero", "subtract"):
            raise NetworkError(f"NIR options: reset {self.reset!r} is not 'zero' or 'subtract'")


#: Documented conventions of the frameworks that export NIR. snnTorch: train
#: with ``reset_delay=False``. Even then snnTorch 1.0 differs in one corner:
#: each step it subtracts ``H(v_prev - threshold) * threshold`` (from the
#: already reset potential of the previous step) before deciding to fire and
#: adds it back if the neuron does not fire, so a neuron still above its
#: threshold after a subtract reset (one that was above twice the threshold
#: when it fired) needs twice the threshold to fire again, where the chip
#: needs once. Potentials agree; only such spikes differ. Models that keep
#: v below twice the threshold match exactly (``examples/train_digits.py``
#: penalises the excess: 20 of 56,926 spikes differ on the digits test split).
#: Zero reset is exact. ``RSynaptic(reset_delay=False)`` is broken in snnTorch
#: 1.0 (its reset stays delayed): import it with zero reset and
#: ``reset_delay=True``. Its recurrent ``nn.Linear`` always has a bias, which
#: into a CubaLIF current is rejected: zero and freeze it before training.
#: Fixtures recorded from snnTorch itself: ``tests/data/snntorch/``.
FRAMEWORKS = {
    "snntorch": NIROptions(dt=1e-4, method="euler", reset="subtract", reset_delay=False),
    "norse": NIROptions(dt=1e-3, method="euler", reset="zero"),
    "lava-dl": NIROptions(dt=1.0, method="euler", reset="zero"),
    "rockpool": NIROptions(dt=1e-3, method="exact", reset="subtract"),
    "sinabs": NIROptions(dt=1.0, method="exact", reset="subtract"),
}

_NEURONS = ("LIF", "CubaLIF", "IF", "LI", "CubaLI")
_LINEAR = ("Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
           "Flatten", "Delay", "_Pass")
#: Every NIR node type the importer accepts.
SUPPORTED = ("Input", "Output", *_NEURONS, *_LINEAR[:-1], "NIRGraph")


class _Pass:
    """An Input or Output node inside a subgraph: passes its signal through."""

    def __init__(self, node):
        self.inner = node


def _kind(node) -> str:
    return type(node).__name__


def _flatten_graph(graph, prefix=""):
    """Inline subgraphs: ``(nodes, edges)`` with dotted names."""
    import nir
    nodes, edges, ins, outs = {}, [], {}, {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten_graph(node, full + ".")
            nodes.update(sub_nodes)
            edges += sub_edges
            ins[name] = [f"{full}.{n}" for n, x in node.nodes.items() if _kind(x) == "Input"]
            outs[name] = [f"{full}.{n}" for n, x in node.nodes.items() if _kind(x) == "Output"]
        elif prefix and _kind(node) in ("Input", "Output"):
            nodes[full] = _Pass(node)
        else:
            nodes[full] = node
    for a, b in graph.edges:
        for x in outs.get(a, [prefix + a]):
            for y in ins.get(b, [prefix + b]):
                edges.append((x, y))
    return nodes, edges


def _uniform(node_name, field, value):
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size and not np.allclose(a, a[0], rtol=1e-6, atol=0):
        raise NetworkError(f"NIR node {node_name!r}: {field} differs between neurons "
                           f"({a.min():g} .. {a.max():g}); a population shares one value")
    return float(a[0]) if a.size else 0.0


def _shape(value) -> tuple:
    return tuple(int(s) for s in np.asarray(value).reshape(-1))


class _Terms:
    """The input of a node as synapses from sources (inputs, neurons).

    ``syn[src] = (pre, post, weight, delay)`` arrays; ``const`` is a constant
    input per output element (biases), ``size`` the output size.
    """

    def __init__(self, size, syn=None, const=None, via=None):
        self.size = size
        self.syn = syn or {}
        self.const = np.zeros(size) if const is None else const
        self.via = via or {src: () for src in self.syn}    # weight nodes passed, per source

    @classmethod
    def source(cls, name, size):
        i = np.arange(size)
        return cls(size, {name: (i, i, np.ones(size), np.zeros(size, dtype=np.int64))})

    def __add__(self, other):
        syn = dict(self.syn)
        for src, arrays in other.syn.items():
            if src in syn:
                syn[src] = tuple(np.concatenate(p) for p in zip(syn[src], arrays))
            else:
                syn[src] = arrays
        via = {src: tuple(dict.fromkeys(self.via.get(src, ()) + other.via.get(src, ())))
               for src in syn}
        return _Terms(self.size, syn, self.const + other.const, via)

    def passed(self, name):
        """The same terms, having passed weight node ``name``."""
        self.via = {src: (*v, name) for src, v in self.via.items()}
        return self

    def matrix(self, a_in, a_out, a_w, n_out, bias=None):
        """Compose with a sparse linear map (``a_in -> a_out``, weight ``a_w``)."""
        order = np.argsort(a_in, kind="stable")
        a_in, a_out, a_w = a_in[order], a_out[order], a_w[order]
        starts = np.searchsorted(a_in, np.arange(self.size))
        counts = np.bincount(a_in, minlength=self.size)
        syn = {}
        for src, (pre, mid, w, d) in self.syn.items():
            c = counts[mid]
            rep = np.repeat(np.arange(mid.size), c)
            k = starts[mid][rep] + np.arange(rep.size) - np.repeat(np.cumsum(c) - c, c)
            syn[src] = _merge(pre[rep], a_out[k], w[rep] * a_w[k], d[rep], n_out)
        const = np.bincount(a_out, weights=a_w * self.const[a_in], minlength=n_out)
        if bias is not None:
            const = const + bias
        return _Terms(n_out, syn, const, dict(self.via))

    def delayed(self, steps):
        """Add ``steps[element]`` of delay to every synapse ending there."""
        syn = {src: (pre, mid, w, d + steps[mid]) for src, (pre, mid, w, d) in self.syn.items()}
        return _Terms(self.size, syn, self.const, dict(self.via))


def _merge(pre, post, w, d, n_post):
    """Sum synapses with the same (pre, post, delay); drop zeros."""
    if pre.size == 0:
        return pre, post, w, d
    key = (pre * n_post + post) * (int(d.max()) + 1) + d
    uniq, inv = np.unique(key, return_inverse=True)
    wsum = np.bincount(inv, weights=w)
    first = np.zeros(uniq.size, dtype=np.int64)
    first[inv[::-1]] = np.arange(inv.size)[::-1]
    keep = wsum != 0
    return pre[first][keep], post[first][keep], wsum[keep], d[first][keep]


def from_nir(graph, options: NIROptions) -> Network:
    """Build a :class:`Network` from a NIR graph (or the path of a NIR file).

    Raises :class:`NetworkError` naming the node for anything the chip
    cannot represent exactly (unsupported node types, per-neuron parameters
    that differ within a population, a nonzero ``v_reset``, a bias into a
    CubaLIF current, a delay that is not a whole number of steps, ...).
    """
    from .nir_read import read_nir
    graph = read_nir(graph)
    if options.reset_delay and options.reset == "subtract":
        raise NetworkError("NIR options: subtract reset delayed by one step (snnTorch "
                           "reset_delay=True) has no exact chip equivalent; export with "
                           "reset_delay=False or use zero reset")
    top_kinds = {n: _kind(x) for n, x in graph.nodes.items()}
    nodes, edges = _flatten_graph(graph)
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise NetworkError(f"NIR edge ({a!r}, {b!r}) names a missing node {end!r}")
        preds[b].append(a)
    for name, node in nodes.items():
        if _kind(node) not in ("Input", "Output", *_NEURONS, *_LINEAR):
            raise NetworkError(f"NIR node {name!r}: {_kind(node)} is not supported "
                               f"(supported: {', '.join(SUPPORTED)})")
    net = Network(dt=options.dt, method=options.method)

    # -- shapes -------------------------------------------------------------------
    shapes: dict[str, tuple] = {}
    visiting: set[str] = set()

    def in_shape(name):
        if not preds[name]:
            raise NetworkError(f"NIR node {name!r}: has no input")
        sizes = {int(np.prod(out_shape(p))) for p in preds[name]}
        if len(sizes) > 1:
            raise NetworkError(f"NIR node {name!r}: its inputs have different sizes {sizes}")
        return out_shape(preds[name][0])

    def out_shape(name):
        if name in shapes:
            return shapes[name]
        node, kind = nodes[name], _kind(nodes[name])
        if name in visiting:
            raise NetworkError(f"NIR node {name!r}: its shape depends on itself (a loop "
                               f"without neuron parameters of known shape)")
        visiting.add(name)
        if kind == "Input":
            shape = _shape(node.input_type["input"])
        elif kind in _NEURONS:
            field = {"LIF": "tau", "CubaLIF": "tau_mem", "IF": "r", "LI": "tau",
                     "CubaLI": "tau_mem"}[kind]
            shape = np.shape(getattr(node, field)) or in_shape(name)
        else:
            shape = _linear(name, node, in_shape(name), None)[1]
        visiting.discard(name)
        shapes[name] = tuple(int(s) for s in shape)
        return shapes[name]

    def _linear(name, node, shape_in, terms):
        """Apply linear node ``node`` to ``terms`` (or only compute its shape)."""
        kind = _kind(node)
        n_in = int(np.prod(shape_in))
        if kind in ("Affine", "Linear"):
            w = np.asarray(node.weight, dtype=np.float64)
            if w.ndim != 2 or w.shape[1] != n_in:
                raise NetworkError(f"NIR node {name!r}: weight shape {w.shape} does not take "
                                   f"its {n_in} inputs")
            if terms is None:
                return None, (w.shape[0],)
            post, pre = np.nonzero(w)
            bias = np.asarray(node.bias, float).reshape(-1) if kind == "Affine" else None
            return terms.matrix(pre, post, w[post, pre], w.shape[0], bias), (w.shape[0],)
        if kind == "Scale":
            scale = np.broadcast_to(np.asarray(node.scale, float).reshape(-1), (n_in,))
            if terms is None:
                return None, shape_in
            i = np.arange(n_in)
            return terms.matrix(i, i, scale, n_in), shape_in
        if kind in ("Conv1d", "Conv2d"):
            w = np.asarray(node.weight, dtype=np.float64)
            spatial = 1 if kind == "Conv1d" else 2
            if node.input_shape is not None:
                full = (w.shape[1] * node.groups, *np.atleast_1d(node.input_shape).tolist())
            else:
                full = tuple(shape_in)
            if len(full) != spatial + 1 or int(np.prod(full)) != n_in:
                raise NetworkError(f"NIR node {name!r}: input shape {tuple(full)} does not "
                                   f"match its {n_in} inputs as (channels, {spatial}-D)")
            fn = conv2d_synapses if spatial == 2 else conv1d_synapses
            pre, post, tap, shape = fn(full, w, stride=node.stride, padding=node.padding,
                                       dilation=node.dilation, groups=node.groups, name=name)
            if terms is None:
                return None, shape
            bias = np.repeat(np.broadcast_to(np.asarray(node.bias, float).reshape(-1),
                                             (shape[0],)), int(np.prod(shape[1:])))
            return terms.matrix(pre, post, tap, int(np.prod(shape)), bias), shape
        if kind in ("SumPool2d", "AvgPool2d"):
            if len(shape_in) != 3:
                raise NetworkError(f"NIR node {name!r}: pooling needs a (channels, height, "
                                   f"width) input, got {tuple(shape_in)}")
            pre, post, tap, shape = pool2d_synapses(
                shape_in, node.kernel_size, stride=node.stride, padding=node.padding,
                mode="sum" if kind == "SumPool2d" else "avg", name=name)
            if terms is None:
                return None, shape
            return terms.matrix(pre, post, tap, int(np.prod(shape))), shape
        if kind == "Delay":
            steps_f = np.broadcast_to(np.asarray(node.delay, float).reshape(-1), (n_in,))
            steps = np.rint(steps_f / options.dt)
            bad = np.abs(steps * options.dt - steps_f) > 1e-6 * max(options.dt, 1e-30)
            if bad.any() or (steps < 0).any():
                raise NetworkError(f"NIR node {name!r}: delay {steps_f[bad | (steps < 0)][0]:g}"
                                   f" is not a whole, non-negative number of steps of "
                                   f"dt = {options.dt:g}")
            if terms is None:
                return None, shape_in
            return terms.delayed(steps.astype(np.int64)), shape_in
        # Flatten and subgraph Input/Output: the same values, in C order.
        if terms is None:
            if kind == "Flatten" and node.output_type.get("output") is not None:
                out = _shape(node.output_type["output"])
                if int(np.prod(out)) == n_in:
                    return None, out
            return None, shape_in if kind == "_Pass" else (n_in,)
        return terms, out_shape(name)

    # -- input of every neuron as synapses from sources -------------------------------
    memo: dict[str, _Terms] = {}

    def terms_of(name, stack=()):
        node, kind = nodes[name], _kind(nodes[name])
        if kind == "Input" or kind in _NEURONS:
            return _Terms.source(name, int(np.prod(out_shape(name))))
        if name in memo:
            return memo[name]
        if name in stack:
            raise NetworkError(f"NIR graph: a loop of weight nodes without neurons "
                               f"through {' -> '.join((*stack, name))}")
        total = None
        for p in preds[name]:
            t = terms_of(p, (*stack, name))
            total = t if total is None else total + t
        if total is None:
            raise NetworkError(f"NIR node {name!r}: has no input")
        out = _linear(name, node, in_shape(name), total)[0]
        memo[name] = out.passed(name) if kind not in ("Flatten", "_Pass") else out
        return memo[name]

    def keep(tau):
        """Per-step retention of a time constant under the chosen method."""
        if options.method == "euler":
            return min(max(1.0 - options.dt / tau, 0.0), 1.0)
        return math.exp(-options.dt / tau)

    for name, node in nodes.items():
        if _kind(node) == "Input" and name in top_kinds:
            net.input(name, int(np.prod(out_shape(name))))
    projections = []
    for name, node in nodes.items():
        kind = _kind(node)
        if kind not in _NEURONS:
            continue
        size = int(np.prod(out_shape(name)))
        spiking = kind in ("LIF", "CubaLIF", "IF")
        r = _uniform(name, "r", node.r)
        if kind in ("CubaLIF", "CubaLI"):
            tau_syn = _uniform(name, "tau_syn", node.tau_syn)
            tau_mem = _uniform(name, "tau_mem", node.tau_mem)
            w_in = _uniform(name, "w_in", node.w_in)
            gain = (1 - keep(tau_syn)) * w_in * (1 - keep(tau_mem)) * r
            params = dict(kind="cuba", tau_syn=tau_syn, tau_mem=tau_mem)
            v_gain = None
        elif kind in ("LIF", "LI"):
            tau_mem = _uniform(name, "tau", node.tau)
            gain = v_gain = (1 - keep(tau_mem)) * r
            params = dict(kind="lif", tau_mem=tau_mem)
        else:
            tau_mem = None
            gain = v_gain = r
            params = dict(kind="if")
        leak = np.zeros(size)
        if tau_mem is not None:
            leak = (1 - keep(tau_mem)) * np.broadcast_to(
                np.asarray(node.v_leak, float).reshape(-1), (size,))
        if spiking:
            threshold = _uniform(name, "v_threshold", node.v_threshold)
            if node.v_reset is not None and np.any(np.asarray(node.v_reset) != 0):
                raise NetworkError(f"NIR node {name!r}: v_reset must be 0 (the chip resets "
                                   f"to 0 or subtracts the threshold)")
        else:
            threshold = 0.0
        terms = _Terms(size)
        for p in preds[name]:
            t = terms_of(p)
            if t.size != size:
                raise NetworkError(f"NIR node {name!r}: input {p!r} has {t.size} values "
                                   f"for its {size} neurons")
            terms = terms + t
        bias = leak.copy()
        if np.any(terms.const != 0):
            if v_gain is None:
                raise NetworkError(
                    f"NIR node {name!r}: a bias (Affine or convolution) into {kind} would "
                    f"enter the decaying synaptic current, which the chip cannot do (its "
                    f"bias adds to v); retrain without bias or use LIF")
            bias += v_gain * terms.const
        net.population(name, size, threshold=threshold, bias=bias, reset=options.reset,
                       refractory=1 if (options.reset_delay and spiking) else 0,
                       spiking=spiking, **params)
        for src, (pre, post, w, d) in terms.syn.items():
            label = "+".join(terms.via.get(src, ())) or f"{src}->{name}"
            projections.append((src, name, pre, post, w * gain, d, label))

    latency = _align(net, projections, options.align_latency)
    net.latency = latency
    for src, dst, pre, post, w, d, label in projections:
        extra = 0
        if options.align_latency:
            extra = latency[dst] - (latency[src] + 1 if src in latency else 0)
            extra = 0 if src == dst else extra
        net.connect(src, dst, (pre, post, w), delay=d + extra, name=label)
    for name, node in nodes.items():
        if _kind(node) == "Output" and name in top_kinds:
            for p in preds[name]:
                if _kind(nodes[p]) not in _NEURONS:
                    raise NetworkError(
                        f"NIR node {name!r}: fed by {_kind(nodes[p])} {p!r}; the chip's "
                        f"outputs are spikes or readout potentials, so an Output must follow "
                        f"neurons (add an LI readout layer)")
                if net.populations[p].spiking:
                    net.output(p)
                else:
                    net.readout(p)
    return net


def _align(net, projections, enabled) -> dict:
    """Latency (depth) of every population; see the module docstring."""
    pops = list(net.populations)
    if not enabled:
        return {p: 0 for p in pops}
    succ = {p: set() for p in pops}
    indeg = {p: 0 for p in pops}
    for src, dst, *_ in projections:
        if src in succ and src != dst and dst not in succ[src]:
            succ[src].add(dst)
            indeg[dst] += 1
    depth = {p: 0 for p in pops}
    ready = [p for p in pops if indeg[p] == 0]
    done = 0
    while ready:
        p = ready.pop()
        done += 1
        for q in succ[p]:
            depth[q] = max(depth[q], depth[p] + 1)
            indeg[q] -= 1
            if indeg[q] == 0:
                ready.append(q)
    if done < len(pops):
        loop = [p for p in pops if indeg[p] > 0]
        raise NetworkError(f"NIR graph: a loop through several populations "
                           f"({', '.join(loop)}) cannot keep the source's timing on the chip "
                           f"(one step per hop); pass align_latency=False to accept it")
    return depth
