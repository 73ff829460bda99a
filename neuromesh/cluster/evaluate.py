"""Evaluating a chip image over a large batch of samples on Dask workers.

The batch axis is cut into chunks of consecutive samples; each chunk is one
task that runs the bit-accurate emulator on its rows. Batch rows of the
emulator are independent chips, so the merged result -- outputs, spike and
event counts, probes, placed back by sample id -- is identical bit for bit to
one :class:`~neuromesh.emulator.Emulator` run over the whole batch, which
:func:`evaluate` with ``client=None`` (or ``neuromesh run``) computes.

What travels: the image once per worker (scattered to all of them); each
chunk's input spikes, packed 8 per byte, with its task; each chunk's outputs
back. Workers keep decoded emulators per image and chunk size, so a worker
decodes an image once, not once per task. Tasks are pure: a chunk recomputed
after a worker dies gives the same arrays.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from neuromesh.chip import ChipError
from neuromesh.emulator import PROBE_FIELDS, Emulator, RunResult
from neuromesh.image import ChipImage

from .tasks import RunStats, Task, run_tasks

__all__ = ["DEFAULT_CHUNK", "Evaluation", "evaluate", "run_arrays", "check_spikes",
           "image_digest", "result_bytes", "output_window", "accuracy", "worker_cache_info"]

#: Samples per task: large enough that Dask's per-task cost (a few ms) is
#: small against the emulator's work, small enough to spread over workers.
DEFAULT_CHUNK = 512

#: The fields ``neuromesh run --probe`` records (the emulator's default).
DEFAULT_RECORD = ("spikes", "u", "v")


@dataclass
class Evaluation:
    """What :func:`evaluate` produced: the merged ``result`` (as one emulator
    run over the whole batch), the ``probe`` neurons and the run's ``stats``."""

    result: RunResult
    probe: np.ndarray | None
    stats: RunStats = field(default_factory=RunStats)
    chunk: int = DEFAULT_CHUNK

    def arrays(self) -> dict:
        """The arrays ``neuromesh run --out`` writes (:func:`run_arrays`)."""
        return run_arrays(self.result, self.probe)


def run_arrays(result: RunResult, probe=None) -> dict:
    """The output npz of ``neuromesh run``: ``outputs``, ``neuron_spikes``,
    ``synaptic_events`` and, with probes, ``probe_neurons`` and
    ``probe_<field>`` per recorded field."""
    arrays = {"outputs": result.outputs, "neuron_spikes": result.neuron_spikes,
              "synaptic_events": result.synaptic_events}
    if probe is not None:
        arrays["probe_neurons"] = np.asarray(probe, dtype=np.int64)
        arrays.update({f"probe_{k}": v for k, v in result.probes.items()})
    return arrays


def image_digest(image: ChipImage) -> str:
    """A content hash of a chip image (its writes, port map and geometry):
    the key of the workers' emulator cache."""
    h = hashlib.sha256()
    h.update(repr((image.geometry, image.n_inputs, image.n_outputs, image.learning,
                   [tuple(vars(p).values()) for p in image.inputs])).encode())
    h.update(np.ascontiguousarray(image.addresses).tobytes())
    h.update(np.ascontiguousarray(image.words).tobytes())
    return h.hexdigest()[:24]


def check_spikes(spikes, n_inputs: int, where: str = "inputs") -> np.ndarray:
    """Input spikes as bool ``[steps, batch, n_inputs]`` (a ``[steps,
    n_inputs]`` array is one sample), or a one-line error naming ``where``,
    the first bad index and the value."""
    x = np.asarray(spikes)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[2] != n_inputs:
        raise ChipError(f"{where}: spikes have shape {np.shape(spikes)}; the image needs "
                        f"[steps, batch, {n_inputs}] (or [steps, {n_inputs}])")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ChipError(f"{where}: spikes have shape {x.shape}: no steps or no samples")
    if x.dtype != np.bool_:
        bad = (x != 0) & (x != 1)
        if bad.any():
            t, b, c = (int(i[0]) for i in np.nonzero(bad))
            raise ChipError(f"{where}: spikes[{t}, {b}, {c}] = {x[t, b, c].item()!r} "
                            f"(sample {b}): a spike input must be 0 or 1")
        x = x.astype(bool)
    return x


def result_bytes(steps: int, batch: int, n_outputs: int, n_probe: int = 0,
                 record=DEFAULT_RECORD) -> dict:
    """Bytes of the merged result by array: outputs, counts, probes."""
    out = {"outputs": steps * batch * n_outputs, "counts": 16 * batch}
    if n_probe:
        out["probes"] = sum(steps * batch * n_probe * np.dtype(PROBE_FIELDS[f]).itemsize
                            for f in record)
    return out


def _available_memory() -> int | None:
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        try:
            import os
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _check_memory(parts: dict, available: int | None):
    need = sum(parts.values())
    if available is not None and need > 0.8 * available:
        detail = ", ".join(f"{k} {_gb(v)}" for k, v in parts.items())
        raise ChipError(f"the merged result needs {_gb(need)} ({detail}) but only "
                        f"{_gb(available)} of memory is available (limit 80 %); probe "
                        f"fewer neurons or evaluate the samples in parts")


# --- on the workers ---------------------------------------------------------------------

class _EmulatorCache:
    """Decoded emulators per (image digest, batch), least recently used first
    out. A worker's threads each take one out while running, so two tasks
    never share an emulator's state."""

    def __init__(self, size: int = 8):
        self.size = size
        self.lock = threading.Lock()
        self.idle: OrderedDict = OrderedDict()     # key -> [Emulator, ...]
        self.built = 0

    def take(self, key, image, batch) -> Emulator:
        with self.lock:
            free = self.idle.get((key, batch))
            if free:
                self.idle.move_to_end((key, batch))
                return free.pop()
        emu = Emulator(image, batch=batch)
        with self.lock:
            self.built += 1
        return emu

    def give(self, key, emu: Emulator):
        with self.lock:
            self.idle.setdefault((key, emu.batch), []).append(emu)
            self.idle.move_to_end((key, emu.batch))
            while len(self.idle) > self.size:
                self.idle.popitem(last=False)


_CACHE = _EmulatorCache()


def worker_cache_info() -> dict:
    """This process's emulator cache: how many emulators it decoded and which
    (image, batch) pairs it holds (for tests and ``client.run``)."""
    with _CACHE.lock:
        return {"built": _CACHE.built, "keys": sorted(_CACHE.idle)}


def _run_chunk(image, key, packed, n_inputs, probe, record):
    """One task: the emulator on one chunk of samples, from step 0."""
    x = np.unpackbits(packed, axis=-1, count=n_inputs).astype(bool)
    emu = _CACHE.take(key, image, x.shape[1])
    try:
        emu.reset()
        r = emu.run(x, probe=probe, record=record)
    finally:
        _CACHE.give(key, emu)
    return {"outputs": r.outputs, "neuron_spikes": r.neuron_spikes,
            "synaptic_events": r.synaptic_events, "probes": r.probes}


# --- on the client --------------------------------------------------------------------

def evaluate(image: ChipImage, inputs, *, client=None, chunk: int = DEFAULT_CHUNK,
             probe=None, record=DEFAULT_RECORD, progress: bool = False, on_chunk=None,
             where: str = "inputs") -> Evaluation:
    """Run ``image`` on every sample of ``inputs`` and merge the results.

    Parameters
    ----------
    image:
        The chip image.
    inputs:
        0/1 host input spikes ``[steps, batch, n_inputs]`` (``[steps,
        n_inputs]``: one sample). Every sample starts from the image's
        initial state at step 0.
    client:
        A :class:`distributed.Client` (:func:`~neuromesh.cluster.connect`);
        ``None`` runs the chunks one after the other in this process.
    chunk:
        Samples per task.
    probe, record:
        As :meth:`Emulator.run`: global neuron indices and the fields kept
        for them every step.
    progress:
        A progress bar in samples (and samples/s) on stderr.
    on_chunk:
        ``on_chunk(index, start, stop)`` after each chunk is merged.
    where:
        Names the inputs in error messages (e.g. the file).

    Returns an :class:`Evaluation` whose ``result`` equals, array for array,
    ``Emulator(image, batch).run(inputs, probe=probe, record=record)``.
    """
    x = check_spikes(inputs, image.n_inputs, where)
    steps, batch, n_in = x.shape
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ChipError(f"chunk = {chunk!r}: need a positive number of samples per task")
    g = image.geometry
    n_total = g.n_cores * g.n_neurons
    probe_ids = None
    if probe is not None:
        probe_ids = np.asarray(probe, dtype=np.int64).reshape(-1)
        bad = probe_ids[(probe_ids < 0) | (probe_ids >= n_total)]
        if bad.size:
            raise ChipError(f"probe neuron {int(bad[0])} is outside [0, {n_total}) "
                            f"(index = core * n_neurons + neuron)")
    for name in record:
        if name not in PROBE_FIELDS:
            raise ChipError(f"cannot record {name!r}; choose from {', '.join(PROBE_FIELDS)}")
    record = tuple(record)
    n_probe = 0 if probe_ids is None else probe_ids.size
    _check_memory(result_bytes(steps, batch, image.n_outputs, n_probe, record),
                  _available_memory())

    key = image_digest(image)
    shared = image if client is None else client.scatter(image, broadcast=True, hash=False)
    bounds = [(s, min(s + chunk, batch)) for s in range(0, batch, chunk)]
    tasks = [Task(f"samples {a}..{b - 1}", b - a, _run_chunk,
                  (shared, key, np.packbits(x[:, a:b], axis=-1), n_in, probe_ids, record))
             for a, b in bounds]

    merged: dict = {}

    def place(i, part):
        a, b = bounds[i]
        if not merged:
            merged["outputs"] = np.zeros((steps, batch, image.n_outputs), bool)
            for name in ("neuron_spikes", "synaptic_events"):
                merged[name] = np.zeros(batch, part[name].dtype)
            merged["probes"] = {f: np.zeros((steps, batch, n_probe), v.dtype)
                                for f, v in part["probes"].items()}
        merged["outputs"][:, a:b] = part["outputs"]
        merged["neuron_spikes"][a:b] = part["neuron_spikes"]
        merged["synaptic_events"][a:b] = part["synaptic_events"]
        for f, v in part["probes"].items():
            merged["probes"][f][:, a:b] = v
        if on_chunk is not None:
            on_chunk(i, a, b)

    stats = RunStats()
    # The scattered image is released when ``shared`` goes (Future.__del__).
    run_tasks(tasks, client, name="neuromesh-eval", unit="sample", progress=progress,
              on_result=place, stats=stats)
    result = RunResult(outputs=merged["outputs"], probes=merged["probes"], first_step=0,
                       neuron_spikes=merged["neuron_spikes"],
                       synaptic_events=merged["synaptic_events"])
    return Evaluation(result=result, probe=probe_ids, stats=stats, chunk=chunk)


def output_window(image: ChipImage) -> int:
    """The first step whose outputs belong to the input: the largest latency
    (steps behind the source model, docs/compiler.md) of the image's output
    populations from its compiler record, 0 when the image has none."""
    rec = image.meta.get("compiler") or {}
    latency, outs = rec.get("latency") or {}, rec.get("output_channels") or {}
    return max((int(latency.get(p, 0)) for p in outs), default=0)


def accuracy(outputs, labels, start: int = 0, stop: int | None = None) -> tuple[float, int]:
    """(fraction, count) of samples whose output channel with the most spikes
    over steps ``start .. stop - 1`` is the label (ties: lowest channel)."""
    from neuromesh.digits import decode
    labels = np.asarray(labels).reshape(-1)
    predicted = decode(outputs, start, stop)
    correct = int((predicted == labels).sum())
    return correct / max(labels.size, 1), correct
