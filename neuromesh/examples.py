"""Built-in example chip images, built with the low-level builder.

They give the CLI and the README something real to run before any compiler
is involved, and they double as readable examples of the builder.
"""

from __future__ import annotations

import numpy as np

from .builder import ChipBuilder
from .chip import Geometry
from .image import ChipImage

__all__ = ["EXAMPLES", "feedforward_2x2", "example_inputs"]


def feedforward_2x2(seed: int = 0) -> ChipImage:
    """A 64 -> 3x32 -> 8 network of CuBa LIF neurons on a 2x2 mesh.

    Host inputs 0..63 feed three hidden cores ((0,0), (1,0), (0,1)) of 32
    neurons each, with random weights and delays 0..3; every hidden neuron
    also inhibits its core neighbours through a recurrent axon. The hidden
    neurons send to the output core (1,1), whose 8 neurons (subtract reset,
    refractory 2) report to host output channels 0..7.
    """
    rng = np.random.default_rng(seed)
    g = Geometry(rows=2, cols=2, n_neurons=32, n_axons=128, n_synapses=4096, n_fanout=64,
                 n_profiles=2, n_groups=2, delay_slots=8)
    b = ChipBuilder(g)
    hidden = [(0, 0), (1, 0), (0, 1)]
    for k, (x, y) in enumerate(hidden):
        c = b.core(x, y)
        c.profile(0, du=512, dv=256, vth_mant=120, refractory=1)
        c.group(0, w_shift=6)
        c.group(1, w_shift=4)
        c.neurons(range(32), profile=0, bias_mant=rng.integers(0, 20, 32), bias_exp=2)
        axon, target = np.meshgrid(np.arange(64), np.arange(32), indexing="ij")
        c.synapses(axon=axon.ravel(), target=target.ravel(),
                   w_mant=rng.integers(-30, 90, axon.size),
                   delay=rng.integers(0, 4, axon.size))
        # Recurrent inhibition: neuron i's spike arrives on axon 64 + i.
        src, dst = np.nonzero(rng.random((32, 32)) < 0.2)
        c.synapses(axon=64 + src, target=dst, w_mant=-100, group=1)
        c.route(np.arange(32), x, y, 64 + np.arange(32))
        c.route(np.arange(32), 1, 1, 32 * k + np.arange(32))
        b.input(np.arange(64), x, y, np.arange(64))
    c = b.core(1, 1)
    c.profile(0, du=1024, dv=512, vth_mant=5000, refractory=2, reset="subtract")
    c.group(0, w_shift=6)
    c.neurons(range(8), profile=0)
    axon, target = np.meshgrid(np.arange(96), np.arange(8), indexing="ij")
    c.synapses(axon=axon.ravel(), target=target.ravel(),
               w_mant=rng.integers(-60, 80, axon.size), delay=rng.integers(0, 2, axon.size))
    c.to_host(np.arange(8), np.arange(8))
    return b.build(meta={"name": "feedforward_2x2",
                         "description": "64 -> 3x32 (recurrent inhibition) -> 8, 2x2 mesh"})


def example_inputs(image: ChipImage, steps: int = 200, batch: int = 4, rate: float = 0.05,
                   seed: int = 1) -> np.ndarray:
    """Poisson input spikes ``[steps, batch, n_inputs]`` with per-row rates
    rising from ``rate / 2`` to ``2 * rate`` (so the rows differ visibly)."""
    rng = np.random.default_rng(seed)
    rates = np.linspace(rate / 2, rate * 2, batch)[None, :, None]
    return rng.random((steps, batch, image.n_inputs)) < rates


EXAMPLES = {"feedforward_2x2": feedforward_2x2}
