"""The bit-accurate, batched emulator of a neuromesh chip.

Each batch row is an independent copy of the chip with its own input
stream. Per timestep the emulator does a fixed number of numpy operations on
``[batch, neurons]`` arrays -- never a Python loop over neurons or synapses.
Neurons that provably never change (no input, no bias, zero state) are left
out of the arrays; they read back as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuromesh.chip import Region
from neuromesh.config import ChipConfig, check, decode
from neuromesh.image import ChipImage
from neuromesh.limits import ImageTooLargeError, MemoryLimitError, check_memory, format_size

from .learning import LearningEngine
from .neuron import NeuronParams, NeuronState, neuron_step, wrap24
from .synapses import count_edges, expand, make_propagator

__all__ = ["Emulator", "RunResult", "PROBE_FIELDS", "memory_estimate", "run_memory_estimate"]

#: The chip's step counter is 32 bits wide and wraps (delay_slots divides 2**32,
#: so ring slots agree across the wrap).
STEP_MASK = (1 << 32) - 1

#: Quantities a probe can record, and their dtypes.
PROBE_FIELDS = {"spikes": np.bool_, "u": np.int32, "v": np.int32, "refractory": np.int16}


#: Peak bytes that building the emulator holds per fan-out entry and per
#: synaptic edge of the expanded tables (measured with tracemalloc on dense,
#: sparse and overlapping-fan-out images, rounded up: tests/test_bad_input.py
#: checks the estimate stays above the measured peak).
BYTES_PER_FANOUT_ENTRY = 96
BYTES_PER_EDGE = 256
#: Bytes of working arrays that do not grow with the image (index maps, blocks).
BYTES_FIXED = 8 << 20


def memory_estimate(image: ChipImage, batch: int = 1, checked: dict | None = None):
    """Bytes ``Emulator(image, batch)`` needs at its peak, estimated from the
    image's tables without expanding them, and the figures behind it as text.
    ``checked``: the words :func:`neuromesh.config.check` returned."""
    g = image.geometry
    words = check(image) if checked is None else checked
    entries, edges = count_edges(image, words)
    from neuromesh.chip import LAYOUTS, LEARN_LAYOUTS, region_words
    tables = 8 * g.n_cores * sum(
        region_words(g, r, image.learning) * len(layout.fields)
        for r, layout in {**LAYOUTS, **(LEARN_LAYOUTS if image.learning else {})}.items())
    n_total = g.n_cores * g.n_neurons
    # Per batch row: u, v, refractory, the accumulator ring (float64), spike counts.
    state = 8 * batch * n_total * (g.delay_slots + 5)
    if image.learning:   # per-row plastic weights, tags and traces
        state += 8 * batch * g.n_cores * (2 * g.n_synapses + g.n_axons + g.n_neurons)
    need = (BYTES_FIXED + tables + state + BYTES_PER_FANOUT_ENTRY * entries
            + BYTES_PER_EDGE * edges)
    detail = (f"{edges:,} synaptic edges, {entries:,} fan-out entries, tables of "
              f"{format_size(tables)}, batch {batch} state {format_size(state)}")
    return need, detail


def run_memory_estimate(steps: int, batch: int, n_outputs: int, n_inputs: int = 0,
                        n_probe: int = 0, record=("spikes", "u", "v")) -> int:
    """Bytes the arrays :meth:`Emulator.run` allocates for ``steps`` steps:
    outputs, probes and the gathered inputs."""
    per_probe = sum(np.dtype(PROBE_FIELDS[r]).itemsize for r in record if r in PROBE_FIELDS)
    return steps * batch * (n_outputs + n_inputs + n_probe * per_probe)


@dataclass
class RunResult:
    """What one :meth:`Emulator.run` call produced.

    Attributes
    ----------
    outputs:
        bool ``[steps, batch, n_outputs]``: spikes on the host output channels.
    probes:
        ``{field: [steps, batch, len(probe)]}`` for each recorded field.
    first_step:
        Chip step counter at the start of the run.
    neuron_spikes:
        int64 ``[batch]``: spikes emitted by all neurons during the run.
    synaptic_events:
        int64 ``[batch]``: synapse-memory entries visited (one per synapse of
        every packet delivered, host input included).
    """

    outputs: np.ndarray
    probes: dict = field(default_factory=dict)
    first_step: int = 0
    neuron_spikes: np.ndarray = None
    synaptic_events: np.ndarray = None

    @property
    def steps(self) -> int:
        return self.outputs.shape[0]


class Emulator:
    """Run a chip image on a batch of independent input streams.

    Parameters
    ----------
    image:
        A :class:`~neuromesh.image.ChipImage` (checked with
        :func:`~neuromesh.config.decode`) or an already decoded
        :class:`~neuromesh.config.ChipConfig`.
    batch:
        Number of independent chips run side by side.
    propagation:
        ``"auto"`` (default), ``"dense"`` or ``"sparse"``: how spikes are
        summed into the accumulators. All give identical results.
    max_memory:
        Bytes the emulator may use (default: half of the machine's memory,
        :func:`neuromesh.limits.default_max_memory`). Construction and
        :meth:`run` estimate what they need first and raise
        :class:`~neuromesh.limits.MemoryLimitError` (for an image too large
        even at batch 1: :class:`~neuromesh.limits.ImageTooLargeError`, an
        :class:`~neuromesh.image.ImageError`) instead of allocating more.
    """

    def __init__(self, image, batch: int = 1, *, propagation: str = "auto",
                 max_memory: int | None = None):
        if not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        self.max_memory = max_memory
        if isinstance(image, ChipConfig):
            config = image
            self._check_memory(image.image, int(batch), None)
        else:
            checked = check(image)
            self._check_memory(image, int(batch), checked)
            config = decode(image, checked)
        self.config = config
        self.image: ChipImage = config.image
        self.geometry = g = config.geometry
        self.batch = int(batch)
        n_total = g.n_cores * g.n_neurons
        edges = expand(config)
        state = config[Region.STATE]
        self._u0 = state["u"].reshape(-1)
        self._v0 = state["v"].reshape(-1)
        self._ref0 = state["refractory"].reshape(-1)
        acc0 = config[Region.ACCUM]["value"].transpose(1, 0, 2).reshape(g.delay_slots, -1)
        params = NeuronParams.from_config(config)

        active = np.zeros(n_total, dtype=bool)
        active[edges.tgt] = True
        active |= (params.bias != 0) | (self._u0 != 0) | (self._v0 != 0) | (self._ref0 != 0)
        active |= params.fires_at_rest()
        active |= (acc0 != 0).any(axis=0)
        self.active = np.flatnonzero(active)
        compact = np.full(n_total, -1, dtype=np.int64)
        compact[self.active] = np.arange(self.active.size)
        self._compact = compact
        self.params = params.take(self.active)
        self._acc0 = acc0[:, self.active]

        # Plastic synapses have a weight per batch row: the learning engine
        # propagates them; everything else goes through the shared matrices.
        self._learn = None
        if config.learning:
            self._learn = LearningEngine(config, self.batch, edges, compact)
            edges = edges.subset(~self._learn.plastic[edges.synapse])

        # Rows of the propagation: neurons that can spike and have out-edges,
        # then host input channels that feed an axon. Sources are grouped in
        # blocks by the set of cores they reach (a layer feeds a layer), so
        # each block multiplies only its own columns.
        is_neuron = edges.src < n_total
        keep = ~is_neuron | active[np.where(is_neuron, edges.src, 0)]
        src, tgt = edges.src[keep], edges.tgt[keep]
        delay = edges.delay[keep]
        weight = edges.weight[keep]
        src_core = np.where(src < n_total, src // g.n_neurons, g.n_cores)
        tgt_core = tgt // g.n_neurons
        pairs = np.unique(src_core * g.n_cores + tgt_core)
        reach = {}
        for sc in np.unique(pairs // g.n_cores):
            targets = tuple(pairs[pairs // g.n_cores == sc] % g.n_cores)
            reach.setdefault((sc == g.n_cores, targets), []).append(sc)
        self.delays = np.unique(delay)
        n_delays = self.delays.size
        delay_index = np.searchsorted(self.delays, delay)
        row_of = np.full(n_total + self.image.n_inputs, -1, dtype=np.int64)
        active_core = self.active // g.n_neurons
        blocks, sources, start = [], [], 0
        for (_, targets), cores in sorted(reach.items(), key=lambda kv: (kv[0][0], kv[1][0])):
            in_block = np.isin(src_core, cores)
            block_src = np.unique(src[in_block])
            row_of[block_src] = np.arange(start, start + block_src.size)
            cols = np.flatnonzero(np.isin(active_core, targets))
            local_col = np.searchsorted(cols, compact[tgt[in_block]])
            prop = make_propagator(
                row_of[src[in_block]] - start, delay_index[in_block] * cols.size + local_col,
                weight[in_block], block_src.size, n_delays * cols.size, propagation)
            blocks.append((slice(start, start + block_src.size), _as_slice(cols),
                           cols.size, prop))
            sources.append(block_src)
            start += block_src.size
        self._blocks = blocks
        all_rows = np.concatenate(sources) if sources else np.zeros(0, np.int64)
        self._outdeg = np.bincount(row_of[src], minlength=all_rows.size)
        self._row_neurons = compact[all_rows[all_rows < n_total]]
        self._row_inputs = all_rows[all_rows >= n_total] - n_total
        self._row_neuron_slice = _as_slice(self._row_neurons)

        out_ok = active[edges.out_neuron]
        self._out_neuron = compact[edges.out_neuron[out_ok]]
        self._out_channel = edges.out_channel[out_ok]
        self._modes = self.params.modes()
        self.reset()

    def _check_memory(self, image, batch, checked):
        need, detail = memory_estimate(image, batch, checked)
        name = image.meta.get("name") if isinstance(image.meta.get("name"), str) else None
        what = f"image {name!r}" if name else "the image"
        one, _ = memory_estimate(image, 1, checked) if batch > 1 else (need, detail)
        error = ImageTooLargeError if batch == 1 or \
            not _fits(one, self.max_memory) else MemoryLimitError
        check_memory(need, self.max_memory, f"emulating {what} with batch {batch}", detail,
                     error=error)

    # -- state ------------------------------------------------------------------

    def reset(self):
        """Return every batch row to the image's initial state, step 0."""
        b = self.batch
        a = self.active
        self.step = 0
        self.state = NeuronState(
            np.repeat(self._u0[a][None], b, axis=0),
            np.repeat(self._v0[a][None], b, axis=0),
            np.repeat(self._ref0[a][None], b, axis=0))
        self._acc = np.repeat(self._acc0[:, None, :].astype(np.float64), b, axis=1)
        self._refractory_until = int(self._ref0.max(initial=0))
        if self._learn is not None:
            self._learn.reset()

    def read_state(self) -> dict:
        """Full neuron state of every batch row, as the chip's memories hold it.

        Returns ``u``, ``v``, ``refractory`` as int64 ``[batch, n_cores,
        n_neurons]`` and ``accum`` as int64 ``[batch, n_cores, delay_slots,
        n_neurons]`` (ring slot ``s`` holds the input of the next step ``t``
        with ``t % delay_slots == s``), plus ``step``.
        """
        g = self.geometry
        shape = (self.batch, g.n_cores, g.n_neurons)
        out = {}
        for name in ("u", "v", "refractory"):
            full = np.zeros((self.batch, g.n_cores * g.n_neurons), dtype=np.int64)
            full[:, self.active] = getattr(self.state, name)
            out[name] = full.reshape(shape)
        acc = np.zeros((g.delay_slots, self.batch, g.n_cores * g.n_neurons), dtype=np.int64)
        acc[:, :, self.active] = wrap24(self._acc.astype(np.int64))
        out["accum"] = acc.reshape(g.delay_slots, *shape).transpose(1, 2, 0, 3)
        out["step"] = self.step
        if self._learn is not None:
            self._learn.read_state(out)
        return out

    @property
    def learning(self) -> bool:
        """The image uses the learning engine (``read_state`` then also returns
        ``w_mant``, ``tag``, traces, ``reward``, ``epoch_phase`` and ``lfsr``)."""
        return self._learn is not None

    def learning_words(self) -> dict:
        """The chip memory words of the learning state, uint64 ``[batch,
        n_cores, size]`` by region: SYNAPSE (learned ``w_mant``) and regions
        8..13 (§11.2). For exact comparison with a chip's READ after a step."""
        if self._learn is None:
            raise ValueError("this image does not use the learning engine")
        return self._learn.memory_words()

    def set_reward(self, reward):
        """Write the reward register of every core of every row (the host's
        WRITE of the LSTATE ``reward`` field, §11.4): integers in [-128, 127],
        broadcast to ``[batch, n_cores]``."""
        if self._learn is None:
            raise ValueError("this image does not use the learning engine (no reward register)")
        self._learn.set_reward(reward)

    # -- running ------------------------------------------------------------------

    def _check_inputs(self, inputs, steps):
        n_in = self.image.n_inputs
        if inputs is None:
            if steps is None:
                raise ValueError("give inputs, steps, or both")
            if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
                raise ValueError(f"steps = {steps!r} must be a non-negative integer")
            return None, int(steps)
        if steps is not None and (not isinstance(steps, (int, np.integer))
                                  or isinstance(steps, bool) or steps < 0):
            raise ValueError(f"steps = {steps!r} must be a non-negative integer")
        x = np.asarray(inputs)
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3 or x.shape[1] not in (1, self.batch) or x.shape[2] != n_in:
            raise ValueError(
                f"inputs have shape {np.shape(inputs)}; expected [steps, batch={self.batch}, "
                f"n_inputs={n_in}] (or [steps, n_inputs] for the same input in every row)")
        if steps is not None and steps != x.shape[0]:
            raise ValueError(f"steps = {steps} but inputs cover {x.shape[0]} steps")
        if x.dtype != np.bool_:
            bad = (x != 0) & (x != 1)
            if bad.any():
                t, b, c = (int(i[0]) for i in np.nonzero(bad))
                raise ValueError(f"inputs[{t}, {b}, {c}] = {x[t, b, c].item()!r}: a spike input "
                                 f"must be 0 or 1")
            x = x.astype(bool)
        return np.broadcast_to(x, (x.shape[0], self.batch, n_in)), x.shape[0]

    def _check_probe(self, probe, record):
        g = self.geometry
        probe = np.asarray([] if probe is None else probe, dtype=np.int64).reshape(-1)
        n_total = g.n_cores * g.n_neurons
        if probe.size and (probe.min() < 0 or probe.max() >= n_total):
            bad = probe[(probe < 0) | (probe >= n_total)][0]
            raise ValueError(f"probe neuron {bad} is outside [0, {n_total}) "
                             f"(index = core * n_neurons + neuron)")
        for name in record:
            if name not in PROBE_FIELDS:
                raise ValueError(f"cannot record {name!r}; choose from "
                                 f"{', '.join(PROBE_FIELDS)}")
        where = self._compact[probe]
        return np.flatnonzero(where >= 0), where[where >= 0]

    def run(self, inputs=None, steps=None, *, probe=None,
            record=("spikes", "u", "v"), progress=False) -> RunResult:
        """Advance every batch row by ``steps`` timesteps.

        Parameters
        ----------
        inputs:
            Host input spikes, 0/1 ``[steps, batch, n_inputs]`` (or
            ``[steps, n_inputs]``, shared by all rows). Row ``t`` is
            delivered for the ``t``-th step of this run. ``None``: no input.
        steps:
            Number of steps; defaults to ``len(inputs)``.
        probe:
            Global neuron indices (``core * n_neurons + neuron``, core
            ``= y * cols + x``) whose ``record`` fields are kept every step.
        progress:
            Show a progress bar (tqdm) on stderr, if it is a terminal.

        The state carries over between calls; :meth:`reset` starts again.
        """
        x, steps = self._check_inputs(inputs, steps)
        pslots, pidx = self._check_probe(probe, record)
        b = self.batch
        n_probe = 0 if probe is None else np.size(probe)
        need = run_memory_estimate(steps, b, self.image.n_outputs,
                                   0 if x is None else self._row_inputs.size, n_probe, record)
        check_memory(need, self.max_memory,
                     f"a run of {steps:,} steps x batch {b}",
                     f"{self.image.n_outputs} output channels"
                     + (f", {n_probe} probed neurons x {', '.join(record)}" if n_probe else ""))
        probes = {name: np.zeros((steps, b, n_probe), dtype=PROBE_FIELDS[name])
                  for name in (record if n_probe else ())}
        outputs = np.zeros((steps, b, self.image.n_outputs), dtype=bool)
        first = self.step
        k = self._row_neurons.size
        rows = np.zeros((b, k + self._row_inputs.size), dtype=bool)
        spike_counts = np.zeros((b, self.active.size), dtype=np.int64)
        # Gather the input channels that feed axons once for the whole run.
        xin = None if x is None else np.ascontiguousarray(x[:, :, self._row_inputs])
        neuron_rows = self._row_neuron_slice
        modes = dict(self._modes)
        refractory_always = modes.pop("refractory")
        d_slots = self.geometry.delay_slots
        acc = self._acc
        learn = self._learn
        if learn is not None:
            learn.events[:] = 0
        if xin is not None and steps:
            rows[:, k:] = xin[0]
            self._propagate(rows, self.step - 1)
            if learn is not None:
                learn.propagate(acc, x[0], "input", self.step - 1)
        ticks = range(steps)
        if progress:
            from tqdm import tqdm
            ticks = tqdm(ticks, desc="emulating", unit="step", leave=False, disable=None)
        for t in ticks:
            slot = self.step % d_slots
            q = acc[slot].astype(np.int64)
            acc[slot] = 0
            spikes = neuron_step(
                self.state, q, self.params, **modes,
                refractory=refractory_always or self.step < self._refractory_until)
            spike_counts += spikes
            if self._out_neuron.size:
                outputs[t][:, self._out_channel] = spikes[:, self._out_neuron]
            for name, arr in probes.items():
                src = spikes if name == "spikes" else getattr(self.state, name)
                arr[t][:, pslots] = src[:, pidx]
            rows[:, :k] = spikes[:, neuron_rows]
            if xin is not None:
                rows[:, k:] = xin[t + 1] if t + 1 < steps else False
            self._propagate(rows, self.step)
            if learn is not None:
                # Spikes of step t travel with the weights of step t; the epoch
                # ends step t; host input of step t + 1 sees its new weights.
                learn.propagate(acc, spikes, "neuron", self.step)
                learn.step(spikes, None if x is None else x[t])
                if x is not None and t + 1 < steps:
                    learn.propagate(acc, x[t + 1], "input", self.step)
            self.step = (self.step + 1) & STEP_MASK
        # Synaptic events: every spike of a row visits that row's synapses.
        events = spike_counts[:, self._row_neurons] @ self._outdeg[:k]
        if xin is not None:
            events += xin.sum(axis=0, dtype=np.int64) @ self._outdeg[k:]
        if learn is not None:
            events += learn.events
        return RunResult(outputs=outputs, probes=probes, first_step=first,
                         neuron_spikes=spike_counts.sum(axis=1), synaptic_events=events)

    def _propagate(self, rows, step):
        """Add the contributions of ``rows`` (spikes of ``step``, host inputs of
        ``step + 1``) into the accumulator slots of step ``step + 1 + delay``."""
        d_slots = self.geometry.delay_slots
        single = self.delays.size == 1
        for row_sel, cols, n_cols, prop in self._blocks:
            c = prop(rows[:, row_sel])
            if c is None:
                continue
            for i, d in enumerate(self.delays):
                target = self._acc[(step + 1 + int(d)) % d_slots]
                target[:, cols] += c if single else c[:, i * n_cols:(i + 1) * n_cols]


def _fits(need, max_memory) -> bool:
    from neuromesh.limits import default_max_memory
    return need <= (default_max_memory() if max_memory is None else max_memory)


def _as_slice(index):
    """``index`` as a slice when it is an ascending run of consecutive integers
    (a view is cheaper than a gather), else ``index`` itself."""
    if index.size and (np.diff(index) == 1).all():
        return slice(int(index[0]), int(index[-1]) + 1)
    return index
