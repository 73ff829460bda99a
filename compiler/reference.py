"""Float reference simulation of a :class:`~neuromesh.compiler.network.Network`.

The same discretisation, timing and spike/reset conventions as the chip
(docs/architecture.md §3–§4) in float64 and without the 24-bit wrap and the
clamp at ``V_MAX`` (a population's ``v_floor`` is applied), so comparing it
with the compiled chip shows exactly what quantization cost.
"""

from __future__ import annotations

import numpy as np

from .network import Network

__all__ = ["simulate"]

#: Projections with at most this many (source, target) pairs are applied as
#: dense matrix products (fast for batches); larger ones synapse by synapse.
DENSE_LIMIT = 1 << 22


def simulate(net: Network, inputs: dict, steps: int | None = None, *, record_v=False):
    """Run ``net`` in float.

    ``inputs[name]``: 0/1 ``[steps, batch, size]`` (or ``[steps, size]``) per
    host input port; shorter inputs are padded with silence up to ``steps``.
    Always-on ports spike every step. Returns ``{population: bool [steps,
    batch, size]}`` spikes (and ``{population + ".v": float v}`` with
    ``record_v``).
    """
    arrays = {}
    for name, port in net.host_inputs().items():
        x = np.asarray(inputs.get(name, np.zeros((steps or 0, port.size))), dtype=np.float64)
        arrays[name] = x[:, None, :] if x.ndim == 2 else x
    steps = steps if steps is not None else max((a.shape[0] for a in arrays.values()), default=0)
    for name, x in arrays.items():
        if x.shape[0] < steps:
            arrays[name] = np.concatenate([x, np.zeros((steps - x.shape[0], *x.shape[1:]))])
    for name, port in net.inputs.items():
        if port.always_on:
            arrays[name] = np.ones((steps, 1, port.size))
    batch = max((a.shape[1] for a in arrays.values()), default=1)
    max_delay = max((int(p.delay.max(initial=0)) for p in net.projections), default=0)
    ring = max_delay + 2
    pops = net.populations
    acc = {n: np.zeros((ring, batch, p.size)) for n, p in pops.items()}
    u = {n: np.repeat(p.initial_state()[0][None], batch, axis=0) for n, p in pops.items()}
    v = {n: np.repeat(p.initial_state()[1][None], batch, axis=0) for n, p in pops.items()}
    ref = {n: np.zeros((batch, p.size), dtype=np.int64) for n, p in pops.items()}
    keep = {n: net.retention(p) for n, p in pops.items()}
    bias = {n: p.bias_array() for n, p in pops.items()}
    out = {n: np.zeros((steps, batch, p.size), dtype=bool) for n, p in pops.items()}
    vrec = {n: np.zeros((steps, batch, p.size)) for n, p in pops.items()} if record_v else {}

    sizes = {**{n: p.size for n, p in net.inputs.items()}, **{n: p.size for n, p in pops.items()}}
    plans = {}          # projection -> [(delay, dense [n_src, n_dst] or None, selection)]
    for proj in net.projections:
        plan = []
        for d in np.unique(proj.delay):
            sel = proj.delay == d
            dense = None
            if sizes[proj.src] * pops[proj.dst].size <= DENSE_LIMIT:
                dense = np.zeros((sizes[proj.src], pops[proj.dst].size))
                np.add.at(dense, (proj.pre[sel], proj.post[sel]), proj.weight[sel])
            plan.append((int(d), dense, sel))
        plans[id(proj)] = plan

    def deliver(proj, spikes, t_arrive):
        for d, dense, sel in plans[id(proj)]:
            if dense is not None:
                contrib = spikes @ dense
            else:
                contrib = np.zeros((batch, pops[proj.dst].size))
                active = spikes[:, proj.pre[sel]] * proj.weight[sel]
                for b in range(batch):
                    np.add.at(contrib[b], proj.post[sel], active[b])
            acc[proj.dst][(t_arrive + d) % ring] += contrib

    for t in range(steps):
        for proj in net.projections:
            if proj.src in arrays:
                x = arrays[proj.src]
                deliver(proj, np.broadcast_to(x[t], (batch, x.shape[2])), t)
        spikes_now = {}
        for n, p in pops.items():
            alpha, beta = keep[n]
            q = acc[n][t % ring].copy()
            acc[n][t % ring] = 0
            u[n] = alpha * u[n] + q
            held = ref[n] > 0
            pending, v_prev, threshold = None, v[n], p.threshold
            if p.reset_retest and p.spiking:
                # snnTorch 1.0, reset_delay=False: a potential left above the
                # threshold after the reset needs twice the threshold
                threshold = np.where(_fires(p, v[n]), 2 * p.threshold, p.threshold)
            if p.reset_delay and p.spiking:
                # the reset of last step's spike (v still passes the test),
                # on the stored v before its decay or on the new sum
                pending = _fires(p, v[n])
                if p.reset_stored:
                    v_prev = np.where(pending, v_prev - p.threshold if p.reset == "subtract"
                                      else 0.0, v_prev)
                    pending = None
            vn = beta * v_prev + u[n] + bias[n]
            if pending is not None:
                vn = np.where(pending, vn - p.threshold if p.reset == "subtract" else 0.0, vn)
            if p.v_floor is not None:
                vn = np.maximum(vn, p.v_floor)
            s = _fires(p, vn, threshold) & ~held & p.spiking
            vn = np.where(held, 0.0, vn)
            if not p.reset_delay:
                vn = np.where(s, vn - p.threshold if p.reset == "subtract" else 0.0, vn)
            ref[n] = np.where(s, p.refractory, np.maximum(ref[n] - 1, 0))
            v[n] = vn
            out[n][t] = s
            if record_v:
                vrec[n][t] = vn
            spikes_now[n] = s.astype(np.float64)
        for proj in net.projections:
            if proj.src in pops:
                deliver(proj, spikes_now[proj.src], t + 1)
    if record_v:
        out.update({f"{n}.v": a for n, a in vrec.items()})
    return out


def _fires(pop, v, threshold=None):
    """The threshold test of ``pop`` (``v > threshold`` or ``v >= threshold``)."""
    threshold = pop.threshold if threshold is None else threshold
    return v >= threshold if pop.threshold_ge else v > threshold
