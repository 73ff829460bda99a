"""Random chip images and inputs for differential testing (RTL vs emulator).

Parameters span the full field ranges, with a bias toward the extremes that
hit wrap, clamp, refractory and delay edges, and connectivity mixes sparse
and dense fan-out within and across cores. Everything is reproducible from
one integer seed.
"""

from __future__ import annotations

import numpy as np

from neuromesh.builder import ChipBuilder
from neuromesh.chip import Geometry
from neuromesh.image import ChipImage

__all__ = ["random_geometry", "random_image", "random_inputs"]


def random_geometry(rng: np.random.Generator, *, max_side: int = 2, max_neurons: int = 16):
    """A small random geometry (1x1 .. max_side x max_side)."""
    rows, cols = (int(rng.integers(1, max_side + 1)) for _ in range(2))
    n = int(rng.integers(2, max_neurons + 1))
    return Geometry(rows=rows, cols=cols, n_neurons=n, n_axons=int(rng.integers(4, 3 * n)),
                    n_synapses=int(rng.integers(8, 6 * n)), n_fanout=int(rng.integers(4, 3 * n)),
                    n_profiles=int(rng.integers(1, 5)), n_groups=int(rng.integers(1, 5)),
                    delay_slots=int(2 ** rng.integers(1, 4)))


def _extreme(rng, lo, hi, size, p=0.25):
    """Uniform in [lo, hi], with probability ``p`` replaced by lo or hi."""
    v = rng.integers(lo, hi + 1, size)
    edge = rng.random(size) < p
    v[edge] = np.where(rng.random(edge.sum()) < 0.5, lo, hi)
    return v


def _timing(t: int) -> dict:
    """The builder's arguments for ``reset_timing`` value ``t``."""
    return dict(reset_delay=t in (1, 2), reset_stored=t == 2, reset_retest=t == 3)


def random_image(seed: int, geometry: Geometry | None = None, *, n_inputs: int | None = None,
                 density: float | None = None) -> ChipImage:
    """A random, valid chip image (reproducible from ``seed``)."""
    rng = np.random.default_rng(seed)
    g = geometry or random_geometry(rng)
    b = ChipBuilder(g)
    n = g.n_neurons
    density = float(rng.uniform(0.1, 1.0)) if density is None else density
    n_in = int(rng.integers(1, 9)) if n_inputs is None else n_inputs
    out_channel = 0
    cores = [(x, y) for y in range(g.rows) for x in range(g.cols)]
    for x, y in cores:
        c = b.core(x, y)
        for p in range(g.n_profiles):
            c.profile(p, du=int(_extreme(rng, 0, 4096, 1)[0]),
                      dv=int(_extreme(rng, 0, 4096, 1)[0]),
                      vth_mant=int(rng.choice([0, rng.integers(0, 300), rng.integers(0, 2**17)],
                                              p=[0.1, 0.7, 0.2])),
                      refractory=int(rng.choice([0, rng.integers(1, 4), 255], p=[0.5, 0.4, 0.1])),
                      reset=["zero", "subtract"][int(rng.integers(0, 2))],
                      **_timing(int(rng.integers(0, 4)) * (rng.random() < 0.6)),
                      threshold_ge=bool(rng.random() < 0.3),
                      v_floor=(None if rng.random() < 0.7
                               else -(int(_extreme(rng, 1, 511, 1)[0]) << 14)))
        for k in range(g.n_groups):
            c.group(k, w_shift=int(_extreme(rng, 0, 15, 1)[0]))
        c.neurons(range(n), profile=rng.integers(0, g.n_profiles, n),
                  bias_mant=_extreme(rng, -4096, 4095, n) * (rng.random(n) < 0.4),
                  bias_exp=rng.integers(0, 8, n))
        c.state(range(n), u=_extreme(rng, -2**23, 2**23 - 1, n),
                v=_extreme(rng, -2**23 + 1, 2**23 - 1, n), refractory=rng.integers(0, 3, n))
        n_syn = int(rng.integers(1, g.n_synapses + 1) * density) or 1
        c.synapses(axon=rng.integers(0, g.n_axons, n_syn), target=rng.integers(0, n, n_syn),
                   w_mant=_extreme(rng, -128, 127, n_syn),
                   delay=_extreme(rng, 0, g.max_delay, n_syn),
                   group=rng.integers(0, g.n_groups, n_syn))
        n_fan = int(rng.integers(0, g.n_fanout + 1) * density)
        n_host = min(int(rng.integers(0, n // 2 + 1)), g.n_fanout - min(n_fan, g.n_fanout - 1) - 1)
        n_fan = min(n_fan, g.n_fanout - max(n_host, 0))
        if n_fan > 0:
            dest = rng.integers(0, len(cores), n_fan)
            c.route(rng.integers(0, n, n_fan), [cores[d][0] for d in dest],
                    [cores[d][1] for d in dest], rng.integers(0, g.n_axons, n_fan))
        if n_host > 0:
            src = rng.choice(n, n_host, replace=False)
            c.to_host(src, out_channel + np.arange(n_host))
            out_channel += n_host
        for s in range(g.delay_slots):
            c.accum(s, range(n), _extreme(rng, -2**23, 2**23 - 1, n) * (rng.random(n) < 0.2))
    for ch in range(n_in):
        for _ in range(int(rng.integers(1, 3))):
            x, y = cores[int(rng.integers(0, len(cores)))]
            b.input(ch, x, y, int(rng.integers(0, g.n_axons)))
    b.n_inputs = n_in
    return b.build(meta={"name": f"random-{seed}"})


def random_inputs(seed: int, image: ChipImage, steps: int) -> np.ndarray:
    """Random 0/1 host input ``[steps, n_inputs]`` at a random rate."""
    rng = np.random.default_rng(seed + 7919)
    rate = float(rng.choice([0.05, 0.2, 0.5, 0.9]))
    return rng.random((steps, image.n_inputs)) < rate
