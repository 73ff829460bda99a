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
``(dt/tau_syn) w_in (dt/tau_mem) r``; LIF and IF likewise with ``u = q``.

Biases
------
An Affine or convolution bias is a constant input. Into a LIF or IF at
latency 0 it is the neuron's v bias (13-bit mantissa). Into a CubaLIF it
enters the decaying synaptic current, and into any population at latency
``L > 0`` it must start at step ``L`` (before that the population is at
rest in the source model): both are a projection from an *always-on* input
(:class:`~neuromesh.compiler.network.Input`), whose spikes the chip makes
with one bias neuron per core that needs it (``bias_source=False`` rejects
such biases instead, naming every node that carries one). A LIF's
``v_leak`` goes the same way; a CubaLIF's ``v_leak`` adds to ``v`` directly,
so at latency ``L > 0`` it starts ``L`` steps early (noted in
``Network.notes``).

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

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .convolution import conv1d_synapses, conv2d_synapses, pool2d_synapses
from .network import Network, NetworkError

__all__ = ["NIROptions", "FRAMEWORKS", "BIAS_INPUT", "from_nir", "SUPPORTED"]


@dataclass(frozen=True)
class NIROptions:
    """How the source framework discretised and ran its NIR graph.

    NIR stores neither the discretisation nor the spike and reset
    conventions, so they are options (with per-framework presets in
    :data:`FRAMEWORKS`), never guessed.

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
        reset on the next one (snnTorch's default ``reset_delay=True``); the
        chip does this exactly for both reset modes (docs/architecture.md §3.2).
    delayed_zero:
        With zero reset and ``reset_delay``: ``"sum"`` zeroes the next
        step's potential (``v = 0``), ``"stored"`` zeroes the stored one
        before the decay (``v = input``), ``"snntorch"`` does what snnTorch
        1.0 does: ``"stored"`` for ``Leaky`` (a LIF without a recurrent
        projection onto itself), ``"sum"`` for ``RLeaky``, ``Synaptic`` and
        ``RSynaptic``.
    subtract_retest:
        With subtract reset and no ``reset_delay``: snnTorch 1.0's test --
        a neuron whose potential is still above the threshold after the
        reset needs twice the threshold to fire in the next step (the chip's
        ``reset_timing`` RETEST, exact).
    threshold_ge:
        The neuron fires when ``v >= threshold`` (Sinabs) instead of ``v >
        threshold`` (snnTorch, Norse, Lava).
    v_floor:
        Lower clamp of the membrane potential (Sinabs' ``min_v_mem``), in
        the graph's units; ``None``: no clamp.
    multi_spike:
        The source emits ``floor(v / threshold)`` spikes in one step
        (Sinabs' ``MultiSpike``). The chip emits at most one, so this is
        refused unless ``approximate_multi_spike``.
    approximate_multi_spike:
        Accept the chip's one spike per step for a multi-spike model: with
        subtract reset, charge above the threshold stays in ``v`` and fires
        in the following steps (spike counts are kept, spikes are spread
        over time); with zero reset the extra spikes are lost. See
        docs/compiler.md.
    bias_source:
        Allow biases that need an always-on source (see the module
        docstring); False rejects them, naming every node.
    align_latency:
        Add delays so every population runs a fixed number of steps behind
        the source model (see the module docstring).
    """

    dt: float
    method: str = "euler"
    reset: str = "zero"
    reset_delay: bool = False
    delayed_zero: str = "sum"
    subtract_retest: bool = False
    threshold_ge: bool = False
    v_floor: float | None = None
    multi_spike: bool = False
    approximate_multi_spike: bool = False
    bias_source: bool = True
    align_latency: bool = True

    def __post_init__(self):
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise NetworkError(f"NIR options: dt = {self.dt} must be a finite number > 0")
        if self.method not in ("euler", "exact"):
            raise NetworkError(f"NIR options: method {self.method!r} is not 'euler' or 'exact'")
        if self.reset not in ("zero", "subtract"):
            raise NetworkError(f"NIR options: reset {self.reset!r} is not 'zero' or 'subtract'")
        if self.delayed_zero not in ("sum", "stored", "snntorch"):
            raise NetworkError(f"NIR options: delayed_zero {self.delayed_zero!r} is not 'sum', "
                               f"'stored' or 'snntorch'")
        if self.v_floor is not None and not (math.isfinite(self.v_floor)
                                             and self.v_floor <= 0):
            raise NetworkError(f"NIR options: v_floor = {self.v_floor} must be finite and "
                               f"<= 0")

    def describe(self) -> str:
        """The conventions in one line, for ``neuromesh compile``'s output."""
        reset = f"{self.reset} reset"
        if self.reset_delay:
            reset += " delayed a step"
            if self.reset == "zero":
                reset += {"sum": "", "stored": " (on the stored v)",
                          "snntorch": " (on the stored v for Leaky, as snnTorch)"}[
                              self.delayed_zero]
        elif self.reset == "subtract" and self.subtract_retest:
            reset += " (re-tested as snnTorch 1.0)"
        parts = [f"dt = {self.dt:g}", f"{self.method} decays", reset,
                 "v >= threshold" if self.threshold_ge else "v > threshold"]
        if self.v_floor is not None:
            parts.append(f"v floor {self.v_floor:g}")
        if self.multi_spike:
            parts.append("multi-spike approximated by one spike per step"
                         if self.approximate_multi_spike else "multi-spike")
        return ", ".join(parts)


#: Documented conventions of the frameworks that export NIR, as each one runs
#: its neurons by default (docs/compiler.md has the table).
#:
#: snnTorch (``Leaky``, ``Synaptic``, ``RLeaky``, ``RSynaptic``): subtract
#: reset delayed by a step (``reset_mechanism="subtract"``,
#: ``reset_delay=True``), ``v > threshold``, Euler at the exporter's dt =
#: 1e-4. Exact on the chip. With ``reset="zero"`` snnTorch 1.0's classes
#: differ (``delayed_zero="snntorch"``). A model trained with
#: ``reset_delay=False`` needs ``reset_delay=False`` here; snnTorch 1.0 then
#: subtracts ``H(v_prev - threshold) * threshold`` from the already reset
#: potential before deciding to fire and adds it back if the neuron does not
#: fire, so a neuron still above its threshold after a subtract reset needs
#: twice the threshold to fire again: ``subtract_retest``, exact on the chip
#: too. Fixtures recorded from snnTorch itself: ``tests/data/snntorch/`` and
#: ``tests/data/snntorch_defaults/``.
#:
#: Sinabs (``IAF``, ``LIF`` with ``MultiSpike`` and ``MembraneSubtract``):
#: ``v >= threshold``, several spikes per step, exact decays at dt = 1;
#: ``min_v_mem`` is not in the file (set ``v_floor``). Refused unless the
#: one-spike-per-step approximation is accepted.
FRAMEWORKS = {
    "snntorch": NIROptions(dt=1e-4, method="euler", reset="subtract", reset_delay=True,
                           delayed_zero="snntorch", subtract_retest=True),
    "norse": NIROptions(dt=1e-3, method="euler", reset="zero"),
    "lava-dl": NIROptions(dt=1.0, method="euler", reset="zero"),
    "rockpool": NIROptions(dt=1e-3, method="exact", reset="subtract"),
    "sinabs": NIROptions(dt=1.0, method="exact", reset="subtract", threshold_ge=True,
                         multi_spike=True),
}

#: The name of the always-on input the importer adds for biases (made
#: unique against the graph's own names).
BIAS_INPUT = "bias"

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


def _local_names(graph, prefix: str) -> dict:
    """``{key: dotted name}`` of a (sub)graph's nodes under ``prefix``. Some
    exporters key a subgraph's nodes with the subgraph's own name already
    (``lif1.lif`` inside ``lif1``): that name is not repeated (``lif1.lif``,
    not ``lif1.lif1.lif``) when the shortened names stay distinct."""
    own = prefix[:-1].rsplit(".", 1)[-1] if prefix else ""
    short = {k: k[len(own) + 1:] if own and k.startswith(own + ".") and len(k) > len(own) + 1
             else k for k in graph.nodes}
    if len(set(short.values())) < len(short):
        short = {k: k for k in graph.nodes}
    return {k: prefix + v for k, v in short.items()}


def _flatten_graph(graph, prefix=""):
    """Inline subgraphs: ``(nodes, edges)`` with dotted names."""
    import nir
    nodes, edges, ins, outs = {}, [], {}, {}
    full_name = _local_names(graph, prefix)
    for name, node in graph.nodes.items():
        full = full_name[name]
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten_graph(node, full + ".")
            nodes.update(sub_nodes)
            edges += sub_edges
            inner = _local_names(node, full + ".")
            ins[name] = [inner[n] for n, x in node.nodes.items() if _kind(x) == "Input"]
            outs[name] = [inner[n] for n, x in node.nodes.items() if _kind(x) == "Output"]
        elif prefix and _kind(node) in ("Input", "Output"):
            nodes[full] = _Pass(node)
        else:
            nodes[full] = node
    for a, b in graph.edges:
        for x in outs.get(a, [full_name.get(a, prefix + a)]):
            for y in ins.get(b, [full_name.get(b, prefix + b)]):
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

    def __init__(self, size, syn=None, const=None, via=None, const_from=()):
        self.size = size
        self.syn = syn or {}
        self.const = np.zeros(size) if const is None else const
        self.via = via or {src: () for src in self.syn}    # weight nodes passed, per source
        self.const_from = tuple(const_from)                # nodes whose bias is in const
        self._biased = False

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
        return _Terms(self.size, syn, self.const + other.const, via,
                      dict.fromkeys(self.const_from + other.const_from))

    def passed(self, name):
        """The same terms, having passed weight node ``name``."""
        self.via = {src: (*v, name) for src, v in self.via.items()}
        if self._biased:
            self.const_from = (*self.const_from, name)
            self._biased = False
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
        const_from = self.const_from if const.any() else ()
        out = _Terms(n_out, syn, const, dict(self.via), const_from)
        if bias is not None and np.any(bias != 0):
            out.const = const + bias
            out._biased = True
        return out

    def delayed(self, steps, name):
        """Add ``steps[element]`` of delay to every synapse ending there."""
        if np.any(self.const[steps > 0] != 0):
            raise NetworkError(f"NIR node {name!r}: delays a bias (of "
                               f"{', '.join(map(repr, self.const_from))}); a delayed constant "
                               f"is not supported, move the bias after the Delay node")
        syn = {src: (pre, mid, w, d + steps[mid]) for src, (pre, mid, w, d) in self.syn.items()}
        return _Terms(self.size, syn, self.const, dict(self.via), self.const_from)


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

    A projection whose every synapse carries 0 (all-zero weights; an input
    gain of 0 from ``r = 0``, ``w_in = 0`` or a ``dt`` lost against ``tau``
    in the retention) is listed in ``Network.warnings``; when no synapse
    carries anything anywhere the graph is refused with the reasons.
    """
    from .nir_read import read_nir
    graph = read_nir(graph)
    if options.multi_spike and not options.approximate_multi_spike:
        raise NetworkError(
            "NIR options: the source model may emit several spikes in one step (Sinabs "
            "MultiSpike) and the chip emits at most one; accept the documented approximation "
            "(approximate_multi_spike=True, `neuromesh compile --multi-spike approximate`: "
            "charge above the threshold carries over to the next steps) or export the model "
            "with single spikes (SingleSpike)")
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
            return terms.delayed(steps.astype(np.int64), name), shape_in
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
    projections, notes = [], []
    vanished, total_live = [], 0      # projections whose every synapse carries 0
    constants = {}          # population -> (const of its input, gain, nodes it came from)
    for name, node in nodes.items():
        kind = _kind(node)
        if kind not in _NEURONS:
            continue
        size = int(np.prod(out_shape(name)))
        spiking = kind in ("LIF", "CubaLIF", "IF")
        # Coefficients derived from float32 parameters (snnTorch writes its
        # beta as tau = dt / (1 - beta)) are rounded to float32: they have no
        # more precision, and beta = 1/2 comes back as 1/2, not 0.49999999.
        fp = _precision(node)
        r = _uniform(name, "r", node.r)
        if kind in ("CubaLIF", "CubaLI"):
            tau_syn = _time_constant(name, "tau_syn", node.tau_syn, options.dt, notes)
            tau_mem = _time_constant(name, "tau_mem", node.tau_mem, options.dt, notes)
            w_in = _uniform(name, "w_in", node.w_in)
            alpha, beta = fp(keep(tau_syn)), fp(keep(tau_mem))
            gain = fp(fp((1 - alpha) * w_in) * fp((1 - beta) * r))
            params = dict(kind="cuba", tau_syn=tau_syn, tau_mem=tau_mem, alpha=alpha, beta=beta)
            v_gain = None
        elif kind in ("LIF", "LI"):
            tau_mem = _time_constant(name, "tau", node.tau, options.dt, notes)
            beta = fp(keep(tau_mem))
            gain = v_gain = fp((1 - beta) * r)
            params = dict(kind="lif", tau_mem=tau_mem, beta=beta)
        else:
            tau_mem = None
            gain = v_gain = r
            params = dict(kind="if")
        leak = np.zeros(size)
        if tau_mem is not None:
            leak = (1 - beta) * np.broadcast_to(
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
        constants[name] = (terms.const, gain, v_gain, leak, terms.const_from)
        stored = options.reset == "zero" and (
            options.delayed_zero == "stored" or options.delayed_zero == "snntorch"
            and kind == "LIF" and name not in terms.syn)      # Leaky: no self-recurrence
        net.population(name, size, threshold=threshold, reset=options.reset,
                       reset_delay=options.reset_delay and spiking,
                       reset_stored=bool(stored and options.reset_delay and spiking),
                       reset_retest=bool(options.subtract_retest and options.reset == "subtract"
                                         and not options.reset_delay and spiking),
                       threshold_ge=options.threshold_ge and spiking,
                       v_floor=options.v_floor if spiking else None,
                       spiking=spiking, **params)
        for src, (pre, post, w, d) in terms.syn.items():
            label = "+".join(terms.via.get(src, ())) or f"{src}->{name}"
            carried = w * gain
            live = int(np.count_nonzero(carried))
            total_live += live
            if live == 0:
                if w.size == 0:
                    why = _zero_weights(nodes, terms.via.get(src, ()))
                else:
                    why = (f"NIR node {name!r} ({kind}) has "
                           f"{_no_gain(node, kind, options, r, gain, fp, keep)}, so its "
                           f"{w.size} synapses carry no current")
                vanished.append(f"projection {label!r} ({src} -> {name}): {why}")
            projections.append((src, name, pre, post, carried, d, label))

    if vanished and total_live == 0:
        more = f" (and {len(vanished) - 3} more)" if len(vanished) > 3 else ""
        raise NetworkError(f"NIR graph: no synapse carries any current, so the chip would "
                           f"ignore its input: {'; '.join(vanished[:3])}{more}")
    latency = _align(net, projections, options.align_latency)
    net.latency = latency
    projections += _biases(net, constants, latency, options, top_kinds, notes)
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
    net.notes.extend(notes)
    net.warnings.extend(f"{v}; it carries no current" if "carry no current" not in v else v
                        for v in vanished)
    return net


def _zero_weights(nodes, via) -> str:
    """Why a projection through weight nodes ``via`` has no synapse."""
    for v in via:
        node = nodes.get(v)
        w = getattr(node, "weight", getattr(node, "scale", None))
        if w is not None and not np.any(w):
            return f"all {np.size(w)} weights of NIR node {v!r} ({_kind(node)}) are 0"
    return (f"the weights through {', '.join(map(repr, via)) or 'it'} sum to 0 on every "
            f"synapse")


def _no_gain(node, kind, options, r, gain, fp, keep) -> str:
    """Why the input gain of neuron node ``node`` is 0, in words."""
    parts = [] if r != 0 else ["r = 0"]
    if kind in ("CubaLIF", "CubaLI") and _uniform("", "w_in", node.w_in) == 0:
        parts.append("w_in = 0")
    rule = "1 - dt/tau" if options.method == "euler" else "exp(-dt/tau)"
    taus = {"CubaLIF": ("tau_syn", "tau_mem"), "CubaLI": ("tau_syn", "tau_mem"),
            "LIF": ("tau",), "LI": ("tau",)}.get(kind, ())
    for field in taus:
        tau = _uniform("", field, getattr(node, field))
        if fp(keep(tau)) == 1:
            parts.append(f"{field} = {tau:g}, whose retention {rule} rounds to 1 at "
                         f"dt = {options.dt:g}")
    if parts:
        return " and ".join(parts)
    return (f"an input gain of {gain:g}" + (" (its factors underflow)" if gain == 0 else
                                             ", which the weights underflow to 0 against"))


def _precision(node):
    """Rounding for coefficients derived from ``node``'s parameters: to
    float32 when they are stored as float32, otherwise none."""
    arrays = [v for v in vars(node).values() if isinstance(v, np.ndarray)
              and v.dtype.kind == "f"]
    if arrays and all(a.dtype == np.float32 for a in arrays):
        return lambda x: float(np.float32(x))
    return float


def _time_constant(node, field, value, dt, notes) -> float:
    """A time constant shared by a population: > 0 (``inf``: no decay); one
    below ``dt`` is noted (Euler then forgets at once)."""
    tau = _uniform(node, field, value)
    if not tau > 0:
        raise NetworkError(f"NIR node {node!r}: {field} = {tau:g} must be > 0 (a time "
                           f"constant; inf means no decay)")
    if tau < dt:
        notes.append(f"{node}: {field} = {tau:g} is below dt = {dt:g}")
    return tau


def _biases(net, constants, latency, options, top_kinds, notes) -> list:
    """Turn every population's constant input into a v bias or a projection
    from the always-on input (see the module docstring)."""
    gated, rejected = [], []
    for name, (const, gain, v_gain, leak, origin) in constants.items():
        pop = net.populations[name]
        late = latency.get(name, 0) > 0
        current = gain * const if v_gain is None else (v_gain * const + leak)
        if v_gain is None:                   # CubaLIF: into the current; the leak into v
            bias = leak
            if late and np.any(leak != 0):
                notes.append(f"{name}: v_leak starts {latency[name]} step(s) early (latency "
                             f"{latency[name]}; a CubaLIF leak adds to v directly)")
        elif late:
            bias = np.zeros(pop.size)        # a LIF/IF bias gated by the latency
        else:
            bias, current = current, np.zeros(pop.size)
        net.populations[name] = dataclasses.replace(pop, bias=bias)
        if np.any(current != 0):
            gated.append((name, current))
            rejected.extend(o for o in origin if o not in rejected)
    if not gated:
        return []
    if not options.bias_source:
        raise NetworkError(
            f"NIR graph: the bias of {', '.join(map(repr, rejected or ['a leak']))} "
            f"must enter the synaptic current or start after the population's latency, which "
            f"needs an always-on bias source (bias_source=False forbids it)")
    src = BIAS_INPUT
    while src in net.populations or src in net.inputs or src in top_kinds:
        src = "_" + src
    net.input(src, 1, always_on=True)
    out = []
    for name, current in gated:
        post = np.flatnonzero(current)
        out.append((src, name, np.zeros(post.size, dtype=np.int64), post, current[post],
                    np.zeros(post.size, dtype=np.int64), f"{src}->{name}"))
    return out


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
