"""A random recurrent network of any size at a fixed fan-in, built core by core.

The scaling sweep of ``emulator_throughput.py`` uses it: ``n`` CuBa LIF
neurons, each with ``fan_in`` presynaptic partners drawn uniformly from all
neurons (the worst case for locality), driven by bias. Neurons fill cores of
``max(256, ceil(n / 256))`` neurons on a mesh of up to 16 x 16; each core's
axons are its distinct sources, so a 100,000-neuron net needs the
Loihi-scale geometry family (docs/architecture.md §2.1).

The compiler is not used: it would need the network as whole-population
projections, and at this size its placement and design-rule check are the
subject of other work. The builder is fed one core at a time, with compact
arrays, so building stays within a few hundred bytes per synapse.
"""

from __future__ import annotations

import numpy as np

from neuromesh import ChipBuilder, Geometry

DU, DV = 410, 205          # tau_syn ~ 10 steps, tau_mem ~ 20 steps
VTH_MANT, W_SHIFT, BIAS_EXP = 100, 6, 3


def layout(n: int):
    """(neurons per core, number of cores, rows, cols) for ``n`` neurons."""
    per_core = max(256, -(-n // 256))
    n_cores = -(-n // per_core)
    cols = min(16, n_cores)
    rows = -(-n_cores // cols)
    return per_core, n_cores, rows, cols


def draw_core(n: int, fan_in: int, seed: int, k: int):
    """Core ``k``'s draw: ``(sources [n_k, fan_in] int32, weights int8)``.
    Each core has its own generator, so a core can be drawn again alone."""
    per_core, *_ = layout(n)
    n_k = min(per_core, n - k * per_core)
    rng = np.random.default_rng([seed, k])
    src = rng.integers(0, n, (n_k, fan_in), dtype=np.int32)
    w = rng.integers(-12, 10, (n_k, fan_in), dtype=np.int8)
    return src, w


def biases(n: int, seed: int):
    return np.random.default_rng([seed, -1 % 2**32]).integers(20, 80, n).astype(np.int16)


def build(n: int, fan_in: int = 200, seed: int = 0):
    """The chip image of the net.

    Each target core gets one axon per distinct source (in ascending source
    order) and each source neuron one fan-out entry per core it reaches. The
    draw is made twice (the axons of every core first, then the synapses one
    core at a time) so that no whole-network array exists.
    """
    per_core, n_cores, rows, cols = layout(n)
    bias = biases(n, seed)
    uniq = [np.unique(draw_core(n, fan_in, seed, k)[0]) for k in range(n_cores)]
    # Fan-out entries per source core: (source neuron, target core, axon).
    fan = [[] for _ in range(n_cores)]
    for k, u in enumerate(uniq):
        src_core = u // per_core
        bounds = np.searchsorted(src_core, np.arange(n_cores + 1))
        for sc in np.flatnonzero(np.diff(bounds)):
            a, b = bounds[sc], bounds[sc + 1]
            fan[sc].append(((u[a:b] - sc * per_core).astype(np.int16), k,
                            np.arange(a, b, dtype=np.int32)))
    n_out = min(per_core, n, 256)    # core 0 also reports neurons 0..255 to the host
    n_fanout = max(sum(len(f[0]) for f in fs) + (n_out if k == 0 else 0)
                   for k, fs in enumerate(fan))
    g = Geometry(rows=rows, cols=cols, n_neurons=per_core,
                 n_axons=max(u.size for u in uniq),
                 n_synapses=max(min(per_core, n - k * per_core) for k in range(n_cores)) * fan_in,
                 n_fanout=max(n_fanout, 1), n_profiles=1, n_groups=1, delay_slots=2)
    b = ChipBuilder(g)
    for k in range(n_cores):
        c = b.core(k % cols, k // cols)
        c.profile(0, du=DU, dv=DV, vth_mant=VTH_MANT)
        c.group(0, w_shift=W_SHIFT)
        src, w = draw_core(n, fan_in, seed, k)
        n_k = src.shape[0]
        c.neurons(range(n_k), profile=0, bias_mant=bias[k * per_core:k * per_core + n_k],
                  bias_exp=BIAS_EXP)
        axon = np.searchsorted(uniq[k], src).astype(np.int32)
        target = np.repeat(np.arange(n_k, dtype=np.int16), fan_in)
        c.synapses(axon=axon.reshape(-1), target=target, w_mant=w.reshape(-1))
        del src, w, axon, target
        uniq[k] = None
        for neuron, tk, axon in fan[k]:
            c.route(neuron, tk % cols, tk // cols, axon)
        fan[k] = None
        if k == 0:
            c.to_host(np.arange(n_out), np.arange(n_out))
    return b.build(meta={"name": f"recurrent {n} x {fan_in}"})


def reference(n: int, fan_in: int, seed: int, steps: int):
    """Host output (neurons 0..255) of the net, from a plain numpy kernel."""
    from emulator_throughput import lif
    per_core, n_cores, *_ = layout(n)
    bias = biases(n, seed)
    cores = [draw_core(n, fan_in, seed, k) for k in range(n_cores)]
    src = np.concatenate([s.reshape(-1) for s, _ in cores]).astype(np.int64)
    w = np.concatenate([x.reshape(-1) for _, x in cores]).astype(np.int64) << W_SHIFT
    del cores
    tgt = np.repeat(np.arange(n), fan_in)
    order = np.argsort(src, kind="stable")
    src, tgt, w = src[order], tgt[order], w[order].astype(np.float64)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    u = np.zeros((1, n), np.int64)
    v = np.zeros_like(u)
    q = np.zeros_like(u)
    out = np.zeros((steps, 1, min(n, 256)), bool)
    for t in range(steps):
        s = lif(u, v, q, bias.astype(np.int64) << BIAS_EXP, VTH_MANT << 6)
        out[t] = s[:, :out.shape[2]]
        idx = np.flatnonzero(s[0])
        start, lens = indptr[idx], indptr[idx + 1] - indptr[idx]
        pos = np.repeat(start - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
        q = np.bincount(tgt[pos], weights=w[pos], minlength=n).astype(np.int64)[None]
    return out
