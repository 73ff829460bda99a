"""An independent float evaluator of NIR graphs with the frameworks' timing,
for tests: every node is evaluated in graph order within one step (zero
latency per layer, like snnTorch/Norse), an edge that closes a loop carries
the previous step's value (snnTorch's recurrent layers), convolutions are
computed with shifted slices rather than synapse lists.

It shares no code with the importer, so comparing the two (shifted by the
importer's latency) checks the importer's folding, conv expansion, delays
and latency alignment.
"""

from __future__ import annotations

import math

import nir
import numpy as np


def _flatten(graph, prefix=""):
    nodes, edges, ins, outs = {}, [], {}, {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            n2, e2 = _flatten(node, f"{prefix}{name}.")
            nodes.update(n2)
            edges += e2
            ins[name] = [f"{prefix}{name}.{k}" for k, v in node.nodes.items()
                         if isinstance(v, nir.Input)]
            outs[name] = [f"{prefix}{name}.{k}" for k, v in node.nodes.items()
                          if isinstance(v, nir.Output)]
        else:
            nodes[prefix + name] = node
    for a, b in graph.edges:
        edges += [(x, y) for x in outs.get(a, [prefix + a]) for y in ins.get(b, [prefix + b])]
    return nodes, edges


def _conv2d(x, w, stride, pad, dilation, groups):
    c_out, c_per, kh, kw = w.shape
    x = np.pad(x, ((0, 0), pad[0], pad[1]))
    _, h, wd = x.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((c_out, oh, ow))
    per_group = c_out // groups
    for co in range(c_out):
        g = co // per_group
        for ci in range(c_per):
            for ky in range(kh):
                for kx in range(kw):
                    y0, x0 = ky * dilation[0], kx * dilation[1]
                    patch = x[g * c_per + ci, y0:y0 + stride[0] * (oh - 1) + 1:stride[0],
                              x0:x0 + stride[1] * (ow - 1) + 1:stride[1]]
                    y[co] += w[co, ci, ky, kx] * patch
    return y


def _pair(v):
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[-1]))


class Evaluator:
    """Step a NIR graph in float64 with Euler (or exact) discretisation."""

    def __init__(self, graph, dt, *, method="euler", reset="subtract", reset_delay=False,
                 delayed_zero="sum", subtract_retest=False, threshold_ge=False, v_floor=None,
                 multi_spike=False):
        """``reset_delay``: snnTorch's ``v_t = beta v_{t-1} + in - H(v_{t-1} - th) th``
        (or ``* (1 - H)`` for zero reset; with ``delayed_zero="stored"`` the
        zero reset clears ``v_{t-1}`` instead, snnTorch's Leaky: ``v_t =
        beta (1 - H) v_{t-1} + in``); ``subtract_retest``: snnTorch 1.0's
        ``reset_delay=False``, ``m = beta v + in - H(v_{t-1} - th) th``, ``s =
        H(m - th)``, ``v = m - (s - H(v_{t-1} - th)) th``; ``threshold_ge``, ``v_floor`` and
        ``multi_spike``: Sinabs' ``v >= th``, ``min_v_mem`` (a clamp applied
        after the spike and its reset, as Sinabs does) and ``MultiSpike``
        (``floor(v / th)`` spikes, each subtracting ``th``)."""
        self.nodes, self.edges = _flatten(graph)
        self.dt, self.method, self.reset = dt, method, reset
        self.reset_delay, self.threshold_ge = reset_delay, threshold_ge
        self.delayed_zero = delayed_zero
        self.subtract_retest = subtract_retest
        self.v_floor, self.multi_spike = v_floor, multi_spike
        self.preds = {n: [] for n in self.nodes}
        for a, b in self.edges:
            self.preds[b].append(a)
        # Graph order by DFS from the inputs; an edge to a node already on the
        # DFS stack closes a loop and reads the previous step.
        order, state, self.back = [], {}, set()

        def visit(n):
            state[n] = 1
            for a, b in self.edges:
                if a == n:
                    if state.get(b) == 1:
                        self.back.add((a, b))
                    elif b not in state:
                        visit(b)
            state[n] = 2
            order.append(n)

        for n, node in self.nodes.items():
            if isinstance(node, nir.Input) and "." not in n:
                visit(n)
        self.order = order[::-1]

    def keep(self, tau):
        if self.method == "euler":
            return 1.0 - self.dt / tau
        return math.exp(-self.dt / tau)

    def run(self, inputs: dict, steps: int) -> dict:
        """``inputs[name]``: ``[steps, *shape]``. Returns every node's output
        per step (``name + ".v"`` for neuron potentials)."""
        out = {n: [] for n in self.nodes}
        vrec = {}
        prev, state, delays = self._at_rest(inputs), {}, {}
        for t in range(steps):
            cur = {}
            for n in self.order:
                node = self.nodes[n]
                if isinstance(node, nir.Input) and "." not in n:
                    cur[n] = np.asarray(inputs[n][t], dtype=np.float64)
                    continue
                xs = [(prev.get(a) if (a, n) in self.back else cur[a]) for a in self.preds[n]]
                xs = [x for x in xs if x is not None]
                x = sum(xs) if xs else None
                cur[n] = self._node(n, node, x, state, delays, t)
                if n in state and "v" in state[n]:
                    vrec.setdefault(n + ".v", []).append(state[n]["v"].copy())
            for n, v in cur.items():
                out[n].append(v)
            prev = cur
        res = {n: np.array(v) for n, v in out.items() if v and v[0] is not None}
        res.update({k: np.array(v) for k, v in vrec.items()})
        return res

    def _at_rest(self, inputs):
        """Every node's output in the step before the first: no input, no
        spikes, but linear nodes still add their biases (snnTorch's
        recurrent ``nn.Linear`` adds its bias to zero spikes at step 0)."""
        cur = {}
        for n in self.order:
            node = self.nodes[n]
            if isinstance(node, nir.Input) and "." not in n:
                cur[n] = np.zeros(np.shape(inputs[n][0]))
                continue
            xs = [cur.get(a) for a in self.preds[n] if (a, n) not in self.back]
            xs = [x for x in xs if x is not None]
            x = sum(xs) if xs else None
            if type(node).__name__ in ("LIF", "CubaLIF", "IF", "LI", "CubaLI"):
                cur[n] = None if x is None else np.zeros(np.shape(x))
            else:
                cur[n] = self._node(n, node, x, {}, {}, -1)
        return cur

    def _node(self, n, node, x, state, delays, t):
        kind = type(node).__name__
        if kind in ("Input", "Output", "Flatten"):
            return x
        if x is None:
            x = 0.0
        if kind == "Affine":
            return node.weight @ x.reshape(-1) + node.bias
        if kind == "Linear":
            return node.weight @ x.reshape(-1)
        if kind == "Scale":
            return node.scale * x
        if kind == "Delay":
            steps = np.rint(np.asarray(node.delay) / self.dt).astype(int).reshape(-1)
            ring = delays.setdefault(n, {})
            ring[t] = x.reshape(-1).copy()
            flat = np.zeros(steps.size)
            for i, d in enumerate(steps):
                flat[i] = ring[t - d][i] if t - d in ring else 0.0
            return flat.reshape(np.shape(x))
        if kind in ("Conv2d", "Conv1d"):
            w = np.asarray(node.weight, float)
            if kind == "Conv1d":
                w = w[:, :, None, :]
                x = x.reshape(w.shape[1] * node.groups, 1, -1)
                stride, dil = (1, int(node.stride)), (1, int(node.dilation))
                p = int(node.padding)
                pad = ((0, 0), (p, p))
            else:
                stride, dil = _pair(node.stride), _pair(node.dilation)
                p = _pair(node.padding)
                pad = ((p[0], p[0]), (p[1], p[1]))
                x = x.reshape(w.shape[1] * node.groups, *node.input_shape)
            y = _conv2d(x, w, stride, pad, dil, node.groups)
            y += np.asarray(node.bias, float).reshape(-1, 1, 1)
            return y.reshape(y.shape[0], -1) if kind == "Conv1d" else y
        if kind in ("SumPool2d", "AvgPool2d"):
            k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
            c = x.shape[0]
            w = np.ones((c, 1, *k)) / (1 if kind == "SumPool2d" else k[0] * k[1])
            return _conv2d(x, w, s, ((p[0], p[0]), (p[1], p[1])), (1, 1), c)
        st = state.setdefault(n, {"u": np.zeros(np.shape(x)), "v": np.zeros(np.shape(x))})
        v_prev = st["v"].copy()
        th = np.asarray(getattr(node, "v_threshold", 0.0), float)

        def above(v):
            return v >= th if self.threshold_ge else v > th

        early = self.reset_delay and self.reset == "zero" and self.delayed_zero == "stored"
        if early and kind in ("LIF", "CubaLIF", "IF"):
            st["v"] = np.where(above(v_prev), 0.0, st["v"])
        if kind in ("CubaLIF", "CubaLI"):
            a, b = self.keep(node.tau_syn), self.keep(node.tau_mem)
            st["u"] = a * st["u"] + (1 - a) * node.w_in * x
            st["v"] = b * st["v"] + (1 - b) * (node.v_leak + node.r * st["u"])
        elif kind in ("LIF", "LI"):
            b = self.keep(node.tau)
            st["v"] = b * st["v"] + (1 - b) * (node.v_leak + node.r * x)
        elif kind == "IF":
            st["v"] = st["v"] + node.r * x
        else:
            raise NotImplementedError(kind)
        if kind in ("LI", "CubaLI"):
            return st["v"].copy()
        if self.reset_delay and not early:
            # snnTorch: the reset of the previous step's spike, read from the
            # stored (not yet reset) potential
            fired = above(v_prev)
            if self.reset == "subtract":
                st["v"] = st["v"] - fired * th
            else:
                st["v"] = np.where(fired, 0.0, st["v"])
        if self.subtract_retest and not self.reset_delay and self.reset == "subtract":
            pre = above(v_prev).astype(np.float64)
            m = st["v"] - pre * th
            s = above(m).astype(np.float64)
            st["v"] = m - (s - pre) * th
            if self.v_floor is not None:
                st["v"] = np.maximum(st["v"], self.v_floor)
            return s
        if self.multi_spike:
            s = np.where(above(st["v"]), np.floor(st["v"] / th), 0.0)
        else:
            s = above(st["v"]).astype(np.float64)
        if not self.reset_delay:
            if self.reset == "subtract":
                st["v"] = st["v"] - s * th
            else:
                st["v"] = np.where(s > 0, 0.0, st["v"])
        if self.v_floor is not None:
            st["v"] = np.maximum(st["v"], self.v_floor)
        return s
