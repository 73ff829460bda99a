"""Sweeps: a grid of compile options over a NIR model, times a data set.

The options are the compiler's own, nothing else: the NIR discretisation
(:class:`~neuromesh.compiler.nir_import.NIROptions`: ``dt``, Euler or exact
decays, zero or subtract reset, the one-step reset delay) and the chip
geometry of :func:`~neuromesh.compiler.compile_network` (which also decides
how the network is partitioned and placed). Weight quantization has no
knob: the compiler chooses one scale per population and one shift per
projection itself (docs/compiler.md).

Every grid point is compiled on a worker; a point the compiler rejects (a
geometry too small, a reset it cannot represent) is reported with the
compiler's message and the sweep goes on. Then every (point, chunk of
samples) pair is one task; the data set travels once per worker, each image
once per worker. The predictions equal those of a single-process run of the
same compiled image (:func:`sweep` with ``client=None``).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

import numpy as np

from neuromesh.chip import ChipError

from .datasets import DataSet, chip_spikes
from .evaluate import _CACHE, DEFAULT_CHUNK, image_digest
from .tasks import RunStats, Task, run_tasks

__all__ = ["SweepPoint", "PointResult", "SweepResult", "grid", "sweep", "table", "plot"]


@dataclass(frozen=True)
class SweepPoint:
    """One set of compile options: a geometry and the NIR discretisation."""

    geometry: str
    options: object          # NIROptions

    def label(self, short: bool = False) -> str:
        o = self.options
        geometry = self.geometry.split(",")[0] if short else self.geometry
        delay = ", delayed" if o.reset_delay else ""
        return f"{geometry} dt={o.dt:g} {o.method} {o.reset}{delay}"


@dataclass
class PointResult:
    """How one point did: ``error`` (the compiler's message) or the accuracy,
    the predictions ``int64 [batch]`` and activity per sample."""

    point: SweepPoint
    error: str | None = None
    correct: int = 0
    samples: int = 0
    predictions: np.ndarray | None = None
    neuron_spikes: float = 0.0
    synaptic_events: float = 0.0
    cores_used: int = 0
    compile_seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")


@dataclass
class SweepResult:
    """The points' results in grid order and the run's statistics."""

    points: list
    data: str
    samples: int
    compile_stats: RunStats = field(default_factory=RunStats)
    eval_stats: RunStats = field(default_factory=RunStats)


def grid(base, *, geometries, dt=(), method=(), reset=(), reset_delay=()) -> list[SweepPoint]:
    """The product of the given values (an empty list keeps ``base``'s
    value), geometries outermost, in the order given."""
    from neuromesh.compiler.nir_import import NIROptions
    if not isinstance(base, NIROptions):
        raise ChipError(f"sweep base options must be NIROptions, got {type(base).__name__}")
    axes = [list(dt) or [base.dt], list(method) or [base.method], list(reset) or [base.reset],
            list(reset_delay) or [base.reset_delay]]
    points = []
    for g in geometries:
        for d, m, r, rd in itertools.product(*axes):
            points.append(SweepPoint(g, replace(base, dt=float(d), method=m, reset=r,
                                                reset_delay=bool(rd))))
    if not points:
        raise ChipError("the sweep grid is empty: give at least one geometry")
    return points


# --- on the workers ---------------------------------------------------------------------

def _compile_point(graph, point: SweepPoint, sample):
    """Compile one point; a compiler rejection is a result, not a failure."""
    from neuromesh.chip import Geometry
    from neuromesh.compiler import compile_network
    from neuromesh.compiler.nir_import import from_nir
    t0 = time.perf_counter()
    try:
        net = from_nir(graph, point.options)
        if len(net.inputs) != 1 or len(net.outputs) != 1:
            raise ChipError(f"the model has {len(net.inputs)} input ports and "
                            f"{len(net.outputs)} output populations; a sweep decodes one "
                            f"input and one spiking output")
        (port,) = net.inputs
        if net.inputs[port].size != sample.shape[2]:
            raise ChipError(f"the model's input {port!r} has {net.inputs[port].size} "
                            f"channels, the data set {sample.shape[2]}")
        compiled = compile_network(net, Geometry.parse(point.geometry), name="sweep",
                                   sample_inputs={port: sample})
    except ChipError as e:
        return {"error": f"{type(e).__name__}: {' '.join(str(e).split())}",
                "seconds": time.perf_counter() - t0}
    (out,) = net.outputs
    image = compiled.image
    used = len({tuple(compiled.positions[c.name]) for c in compiled.clusters})
    return {"image": image, "first_input": compiled.input_channels[port],
            "first_output": compiled.output_channels[out],
            "n_classes": net.populations[out].size, "lag": int(net.latency.get(out, 0)),
            "cores_used": used, "seconds": time.perf_counter() - t0}


def _eval_chunk(image, key, packed, size, first, lag, first_out, n_classes):
    """Predictions and activity of one chunk of one compiled point."""
    from neuromesh.digits import decode
    spikes = np.unpackbits(packed, axis=-1, count=size).astype(bool)
    steps = spikes.shape[0]
    x = chip_spikes(spikes, image.n_inputs, first, lag)
    emu = _CACHE.take(key, image, x.shape[1])
    try:
        emu.reset()
        r = emu.run(x)
    finally:
        _CACHE.give(key, emu)
    out = r.outputs[:, :, first_out:first_out + n_classes]
    return {"predictions": decode(out, lag, lag + steps), "neuron_spikes": r.neuron_spikes,
            "synaptic_events": r.synaptic_events}


# --- on the client --------------------------------------------------------------------

def sweep(model, points: list[SweepPoint], data: DataSet, *, client=None,
          chunk: int = DEFAULT_CHUNK, progress: bool = False) -> SweepResult:
    """Compile ``model`` (a NIR file or graph) at every point and evaluate it
    on ``data``: accuracy = predicted class (the output neuron with the most
    spikes over the model's steps, read ``latency`` steps later on the chip)
    equals the label. Placement rates come from the first 64 samples (they
    change where neurons sit, never what they compute). ``client=None``
    runs everything in this process."""
    import nir
    graph = model if isinstance(model, nir.NIRGraph) else nir.read(model)
    if chunk < 1:
        raise ChipError(f"chunk = {chunk}: need a positive number of samples per task")
    sample = data.spikes[:, :64]
    result = SweepResult(points=[], data=data.name, samples=data.samples)
    scatter = (lambda v: v) if client is None else \
        (lambda v: client.scatter(v, broadcast=True, hash=False))

    shared_graph = scatter(graph)
    compiled = run_tasks([Task(f"compile {p.label()}", 1, _compile_point,
                               (shared_graph, p, sample)) for p in points],
                         client, name="neuromesh-compile", unit="point", progress=progress,
                         stats=result.compile_stats)

    batch, size = data.samples, data.spikes.shape[2]
    bounds = [(a, min(a + chunk, batch)) for a in range(0, batch, chunk)]
    chunks = [scatter(np.packbits(data.spikes[:, a:b], axis=-1)) for a, b in bounds]
    tasks, owner = [], []
    for i, (p, c) in enumerate(zip(points, compiled)):
        res = PointResult(p, error=c.get("error"), samples=batch,
                          compile_seconds=c["seconds"])
        result.points.append(res)
        if res.error:
            continue
        res.cores_used = c["cores_used"]
        res.predictions = np.zeros(batch, np.int64)
        image = scatter(c["image"])
        key = image_digest(c["image"])
        for (a, b), packed in zip(bounds, chunks):
            tasks.append(Task(f"{p.label()}: samples {a}..{b - 1}", b - a, _eval_chunk,
                              (image, key, packed, size, c["first_input"], c["lag"],
                               c["first_output"], c["n_classes"])))
            owner.append((i, a, b))
    spikes = np.zeros(len(points))
    events = np.zeros(len(points))

    def merge(k, part):
        i, a, b = owner[k]
        res = result.points[i]
        res.predictions[a:b] = part["predictions"]
        spikes[i] += part["neuron_spikes"].sum()
        events[i] += part["synaptic_events"].sum()

    run_tasks(tasks, client, name="neuromesh-sweep", unit="sample", progress=progress,
              on_result=merge, stats=result.eval_stats)
    for i, res in enumerate(result.points):
        if res.error is None:
            res.correct = int((res.predictions == data.labels).sum())
            res.neuron_spikes = spikes[i] / batch
            res.synaptic_events = events[i] / batch
    return result


def table(result: SweepResult) -> str:
    """The sweep as a printable table, failed points' messages below it."""
    rows = [("#", "geometry", "dt", "method", "reset", "delay", "cores", "accuracy",
             "correct", "spikes/sample")]
    notes = []
    for i, r in enumerate(result.points, 1):
        o = r.point.options
        head = (str(i), r.point.geometry, f"{o.dt:g}", o.method, o.reset,
                "yes" if o.reset_delay else "no")
        if r.error:
            rows.append((*head, "-", "-", "-", "-"))
            notes.append(f"  {i}: {r.error}")
        else:
            rows.append((*head, str(r.cores_used), f"{r.accuracy:.2%}",
                         f"{r.correct}/{r.samples}", f"{r.neuron_spikes:.1f}"))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    right = {0, 2, 6, 7, 8, 9}
    lines = ["  ".join(c.rjust(w) if k in right else c.ljust(w)
                       for k, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    return "\n".join(lines + notes)


def plot(result: SweepResult, path, title: str | None = None):
    """A dot plot of accuracy per point (points the compiler rejected are
    marked), written atomically to ``path`` (PNG, or the suffix's format).
    The axis starts a little below the lowest accuracy, so that differences
    of a few tenths of a point stay visible."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .output import save_figure
    n = len(result.points)
    labels = [f"{i}: {r.point.label(short=True)}" for i, r in enumerate(result.points, 1)]
    ok = [(k, 100 * r.accuracy) for k, r in enumerate(result.points) if not r.error]
    lowest = min((a for _, a in ok), default=100.0)
    lo = max(0.0, 5 * np.floor((lowest - 1) / 5))
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.38 * n))
    y = np.arange(n)[::-1]
    for k, a in ok:
        ax.plot([lo, a], [y[k], y[k]], color="#c8d4e3", lw=1, zorder=1)
        ax.plot(a, y[k], "o", color="#3a6ea5", zorder=2)
        ax.annotate(f"{a:.2f}%", (a, y[k]), xytext=(0, 7), textcoords="offset points",
                    ha="center", fontsize=7)
    for k, r in enumerate(result.points):
        if r.error:
            ax.text(lo + 0.2, y[k], "rejected by the compiler", va="center", fontsize=8,
                    color="#777777")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(lo, 100.5)
    ax.grid(axis="x", color="#eeeeee")
    ax.set_xlabel(f"accuracy (%), {result.samples} samples")
    ax.set_title(title or f"accuracy per compile option ({result.data})", fontsize=9)
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)
