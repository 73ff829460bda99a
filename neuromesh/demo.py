"""The end-to-end demo: a trained spiking digits classifier on the chip.

A CuBa-LIF network trained with snnTorch on scikit-learn's digits
(``examples/train_digits.py``) ships in the package as a NIR file. The demo
imports it with snnTorch's documented discretisation, compiles it onto a
multi-core geometry, runs the whole test split through the bit-accurate
emulator and reports accuracy against the float reference, activity, an
energy estimate and per-layer agreement; it draws a spike raster and the
mesh map. ``--cosim N`` also runs the first N test images through the RTL
(Verilator) and checks every step against the emulator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import digits

__all__ = ["DEFAULT_GEOMETRY", "LOIHI_PJ", "DemoResult", "compile_demo",
           "run_demo", "energy_estimate", "spike_raster", "cosim_samples", "report", "counted"]

#: Where the demo puts it: four cores, so the model is split over a mesh.
DEFAULT_GEOMETRY = "2x2,n_neurons=64,n_axons=128,n_synapses=8192,n_fanout=256"
#: Loihi's published energy per operation (Davies et al., "Loihi: a
#: neuromorphic manycore processor with on-chip learning", IEEE Micro 38(1),
#: 2018, Table 1): a synaptic operation, and a neuron update (inactive ..
#: active), in picojoules.
LOIHI_PJ = {"synaptic_op": 23.6, "neuron_update": (52.0, 81.0)}


def energy_estimate(synaptic_ops: float, neuron_updates: float) -> tuple[float, float]:
    """(low, high) energy in joules for the given operation counts, from
    :data:`LOIHI_PJ`: a rough guide to what a Loihi-class chip would spend,
    not a measurement of this design."""
    lo, hi = LOIHI_PJ["neuron_update"]
    base = synaptic_ops * LOIHI_PJ["synaptic_op"]
    return ((base + neuron_updates * lo) * 1e-12, (base + neuron_updates * hi) * 1e-12)


@dataclass
class DemoResult:
    """Everything the demo measured (see :func:`run_demo`)."""

    n_images: int
    steps: int
    reference_accuracy: float
    chip_accuracy: float
    spikes_per_inference: float
    synaptic_ops_per_inference: float
    neuron_updates_per_inference: float
    energy_per_inference: tuple
    agreement: object
    compiled: object
    labels: np.ndarray
    chip_predictions: np.ndarray
    reference_predictions: np.ndarray
    seconds: float
    #: The emulator's activity counters over the whole run (docs/architecture.md
    #: §13), uint32 ``[n_images, n_cores, 7]``.
    counters: np.ndarray = None


def compile_demo(geometry: str = DEFAULT_GEOMETRY, model: str | Path | None = None):
    """Import the digits model (snnTorch conventions) and compile it for
    ``geometry``; placement rates come from a short float run on training
    images."""
    from .chip import Geometry
    from .compiler import compile_network
    from .compiler.nir_import import from_nir
    net = from_nir(model or digits.model_path(), digits.model_options())
    (port,) = net.host_inputs()
    train_x = digits.encode(digits.load_split()[0][:64], digits.STEPS)
    return compile_network(net, Geometry.parse(geometry), name="digits",
                           sample_inputs={port: train_x})


def run_demo(*, geometry: str = DEFAULT_GEOMETRY, limit: int | None = None,
             model: str | Path | None = None, progress: bool = False) -> DemoResult:
    """Compile the digits model and run the test split on the emulator and
    the float reference.

    ``limit``: only the first ``limit`` test images. ``model``: another NIR
    file with the same interface (64 inputs, 10 spiking outputs, snnTorch
    conventions).
    """
    from .compiler.agreement import compare_with_reference

    t0 = time.perf_counter()
    compiled = compile_demo(geometry, model)
    net = compiled.network
    (port,) = net.host_inputs()
    (out,) = net.outputs
    _, x_test, _, y_test = digits.load_split()
    if limit is not None:
        x_test, y_test = x_test[:limit], y_test[:limit]
    steps = digits.STEPS
    lag = compiled.lag
    x = compiled.padded({port: digits.encode(x_test, steps)})
    cmp = compare_with_reference(compiled, x, progress=progress)
    ref_pred = digits.decode(compiled.read_window(cmp.reference[out], out, steps))
    chip_pred = digits.decode(compiled.read_window(cmp.chip[out], out, steps))
    n = len(y_test)
    syn_ops = float(cmp.result.synaptic_events.mean())
    updates = float(sum(p.size for p in net.populations.values()) * (steps + lag))
    return DemoResult(
        n_images=n, steps=steps + lag,
        reference_accuracy=float((ref_pred == y_test).mean()),
        chip_accuracy=float((chip_pred == y_test).mean()),
        spikes_per_inference=float(cmp.result.neuron_spikes.mean()),
        synaptic_ops_per_inference=syn_ops, neuron_updates_per_inference=updates,
        energy_per_inference=energy_estimate(syn_ops, updates), agreement=cmp,
        compiled=compiled, labels=y_test, chip_predictions=chip_pred,
        reference_predictions=ref_pred, seconds=time.perf_counter() - t0,
        counters=cmp.counters)


def spike_raster(result: DemoResult, path, index: int = 0):
    """Draw the chip's spikes for test image ``index``: input, every layer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cmp = result.agreement
    net = result.compiled.network
    (port,) = net.host_inputs()
    _, x_test, _, _ = digits.load_split()
    inp = digits.encode(x_test[index:index + 1], digits.STEPS)[:, 0]
    panels = [(f"host input '{port}' ({inp.shape[1]} channels)", "channel", inp)]
    panels += [(f"{p} ({net.populations[p].size}, latency {net.latency.get(p, 0)})", "neuron",
                cmp.chip[p][:, index]) for p in net.populations]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.2 + 1.6 * len(panels)), sharex=True)
    for ax, (title, what, s) in zip(axes, panels):
        t, i = np.nonzero(s)
        ax.scatter(t, i, s=6, marker="|", color="black")
        ax.set_ylabel(what)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
    axes[-1].set_xlabel("step")
    axes[-1].set_xlim(-0.5, result.steps - 0.5)
    fig.suptitle(f"test image {index}: label {result.labels[index]}, chip says "
                 f"{result.chip_predictions[index]}", fontsize=10)
    fig.tight_layout()
    from .files import atomic_write
    with atomic_write(path) as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)


def cosim_samples(result: DemoResult, n: int, workdir) -> object:
    """Run the first ``n`` test images through the RTL (Verilator) in
    lockstep with the emulator; returns the co-simulation result."""
    from .sim.runner import run_verilator, write_case
    compiled = result.compiled
    net = compiled.network
    (port,) = net.host_inputs()
    _, x_test, _, _ = digits.load_split()
    cases = []
    for i in range(n):
        s = compiled.padded({port: digits.encode(x_test[i:i + 1], digits.STEPS)[:, 0]})
        x = compiled.chip_inputs(s)[:, 0]
        cases.append(write_case(Path(workdir), f"digit{i}", compiled.image, x))
    return run_verilator(compiled.image.geometry, cases)


def report(result: DemoResult) -> str:
    """The demo's printed summary."""
    r = result
    lo, hi = r.energy_per_inference
    # in whole images: a float difference of equal accuracies prints as -0.00
    gap = int(round(r.chip_accuracy * r.n_images)) - int(round(r.reference_accuracy * r.n_images))
    lines = [
        f"float reference   accuracy {r.reference_accuracy:7.2%}  "
        f"({int(round(r.reference_accuracy * r.n_images))}/{r.n_images})",
        f"chip (emulator)   accuracy {r.chip_accuracy:7.2%}  "
        f"({int(round(r.chip_accuracy * r.n_images))}/{r.n_images}, "
        + (f"{gap / r.n_images * 100:+.2f} points)" if gap else "the same)"),
        f"predictions identical to the float reference: "
        f"{(r.chip_predictions == r.reference_predictions).mean():.1%}",
        "",
        f"per inference ({r.steps} steps): {r.spikes_per_inference:.1f} spikes, "
        f"{r.synaptic_ops_per_inference:.0f} synaptic ops, "
        f"{r.neuron_updates_per_inference:.0f} neuron updates",
        f"energy estimate  {lo * 1e6:.2f}-{hi * 1e6:.2f} uJ per inference (Loihi's published "
        f"{LOIHI_PJ['synaptic_op']} pJ/synaptic op, "
        f"{LOIHI_PJ['neuron_update'][0]:g}-{LOIHI_PJ['neuron_update'][1]:g} pJ/neuron update)",
    ]
    if r.counters is not None:
        lines += ["", counted(r.counters, r.steps, r.n_images, "emulator")]
    lines += ["", r.agreement.table()]
    return "\n".join(lines)


def counted(counters, steps: int, n_images: int, source: str) -> str:
    """The activity counters (docs/architecture.md §13) of ``n_images``
    inferences of ``steps`` steps each, per inference, with the energy they
    imply (:func:`neuromesh.energy.energy_report`) and the busy clocks per
    step."""
    from .chip import Counter
    from .energy import energy_report
    c = np.asarray(counters, dtype=np.int64).reshape(-1, np.shape(counters)[-2],
                                                     len(Counter))
    total = c.sum(axis=(0, 1)) / n_images
    head = (f"counted by the {source} (docs/architecture.md §13), per inference: "
            f"{total[Counter.SPIKES]:.1f} spikes, {total[Counter.SYNOPS]:.0f} synaptic ops, "
            f"{total[Counter.UPDATES]:.0f} neuron updates, {total[Counter.PACKETS]:.1f} "
            f"packets over {total[Counter.HOPS]:.1f} hops")
    return head + "\n" + energy_report(c, steps, per="inference", n=n_images)
