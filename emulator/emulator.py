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

from neuromesh.chip import LEARN_LAYOUTS, Region
from neuromesh.config import ChipConfig, check, decode
from neuromesh.image import ChipImage
from neuromesh.limits import ImageTooLargeError, MemoryLimitError, check_memory, format_size

from .learning import LearningEngine
from .neuron import NeuronParams, NeuronState, neuron_step, wrap24
from .synapses import DensePropagator, as_slice, count_edges, expand, make_propagator

__all__ = ["Emulator", "RunResult", "PROBE_FIELDS", "memory_estimate", "run_memory_estimate"]

#: The chip's step counter is 32 bits wide and wraps (delay_slots divides 2**32,
#: so ring slots agree across the wrap).
STEP_MASK = (1 << 32) - 1

#: Below this many neuron values (batch x active neurons) the state is int64.
SMALL_STATE = 4096

#: Quantities a probe can record, and their dtypes.
PROBE_FIELDS = {"spikes": np.bool_, "u": np.int32, "v": np.int32, "refractory": np.int16}


#: Peak bytes that building the emulator holds per fan-out entry and per
#: synaptic edge of the expanded tables (measured with tracemalloc on dense,
#: sparse and overlapping-fan-out images, rounded up: tests/test_bad_input.py
#: checks the estimate stays above the measured peak).
BYTES_PER_FANOUT_ENTRY = 96
BYTES_PER_EDGE = 64
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
    # Per batch row: u, v, refractory, the accumulator ring (float64), spike
    # counts, and the activity counters' spike totals (§13).
    state = 8 * batch * n_total * (g.delay_slots + 6)
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
    backend:
        ``"numpy"`` (default) or ``"torch"`` (the optional ``[torch]`` extra:
        the same loop on torch tensors, bit-exact too; learning-free images).
    device:
        The torch device, e.g. ``"cpu"`` (default) or ``"cuda"``.
    """

    def __init__(self, image, batch: int = 1, *, propagation: str = "auto",
                 max_memory: int | None = None, backend: str = "numpy", device=None):
        if not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        if backend not in ("numpy", "torch"):
            raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
        if backend == "numpy" and device is not None:
            raise ValueError("device is a torch backend option (backend='torch')")
        if propagation not in ("auto", "dense", "sparse"):
            raise ValueError(f"propagation must be 'auto', 'dense' or 'sparse', "
                             f"got {propagation!r}")
        self.max_memory = max_memory
        own_config = not isinstance(image, ChipConfig)
        if own_config:
            checked = check(image)
            self._check_memory(image, int(batch), checked)
            # decode reads the checked words of the learning regions only: the
            # others (AXON and FANOUT: ~20 bytes per synapse at 100k neurons)
            # go before it unpacks the chip.
            checked = {r: checked[r] for r in LEARN_LAYOUTS if r in checked}
            config = decode(image, checked)
            del checked
        else:
            config = image
            self._check_memory(image.image, int(batch), None)
        # The decoded fields are needed only while the tables are built (and by
        # the learning engine); a learning-free emulator keeps its own tables
        # and the image only.
        self._config = config if config.learning else None
        self.image: ChipImage = config.image
        self.geometry = g = config.geometry
        self.batch = int(batch)
        n_total = g.n_cores * g.n_neurons
        # The tables are built from the edges; the big regions' fields (5-20
        # bytes per synapse) of the emulator's own decode go as soon as read.
        edges = expand(config, with_synapses=config.learning,
                       release=own_config and not config.learning)
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
        # int32 arithmetic (half the memory traffic) pays on big arrays; on a
        # few thousand values the per-call cost rules, and int64 needs fewer
        # calls (neuron.decay).
        self._itype = np.int32 if self.batch * self.active.size > SMALL_STATE else np.int64
        self.params = params.take(self.active).astype(self._itype)
        self._acc0 = acc0[:, self.active].astype(self._itype)

        # Plastic synapses have a weight per batch row: the learning engine
        # propagates them; everything else goes through the shared tables.
        self._learn = None
        if config.learning:
            self._learn = LearningEngine(config, self.batch, edges, compact)
            edges = edges.subset(~self._learn.plastic[edges.synapse])
        self._build_blocks(edges, active, propagation)
        out_ok = active[edges.out_neuron]
        self._out_neuron = compact[edges.out_neuron[out_ok]]
        self._out_channel = edges.out_channel[out_ok]
        self._out_neuron_sel = as_slice(self._out_neuron)
        self._out_channel_sel = as_slice(self._out_channel)
        self._modes = self.params.modes()
        self.backend = backend
        self._torch = None
        self.reset()
        if backend == "torch":
            if self._learn is not None:
                raise ValueError("backend='torch' runs learning-free images; this image uses "
                                 "the learning engine (use backend='numpy')")
            from .torch_backend import TorchRunner
            self._torch = TorchRunner(self, device)

    def _build_blocks(self, edges, active, propagation):
        """Group the propagation rows into blocks and build their tables.

        Rows are the neurons that can spike and have out-edges, then the host
        input channels that feed an axon. Sources are grouped in blocks by
        the set of cores they reach (a layer feeds a layer), so each block
        touches only its own ring columns and its own delays.
        """
        g = self.geometry
        n_total = g.n_cores * g.n_neurons
        compact = self._compact
        src = edges.src
        is_neuron = src < n_total
        keep = ~is_neuron | active[np.where(is_neuron, src, 0)]
        del is_neuron
        if not keep.all():
            edges = edges.subset(keep)
            src = edges.src
        del keep
        src_core = np.minimum(src // g.n_neurons, g.n_cores).astype(np.int32)
        tgt_core = edges.tgt // g.n_neurons
        n_keys = (g.n_cores + 1) * g.n_cores
        pairs = np.flatnonzero(np.bincount(src_core * g.n_cores + tgt_core, minlength=n_keys))
        del tgt_core
        reach = {}
        for sc in np.unique(pairs // g.n_cores):
            targets = tuple(pairs[pairs // g.n_cores == sc] % g.n_cores)
            reach.setdefault((sc == g.n_cores, targets), []).append(sc)
        row_of = np.full(n_total + self.image.n_inputs, -1, dtype=np.int32)
        compact = compact.astype(np.int32)      # (4 bytes per edge where it is gathered)
        active_core = self.active // g.n_neurons
        blocks, sources, block_targets, start = [], [], [], 0
        groups = sorted(reach.items(), key=lambda kv: (kv[0][0], kv[1][0]))
        for (_, targets), cores in groups:
            if len(groups) == 1:
                sel = slice(None)
                block_src = np.flatnonzero(np.bincount(src, minlength=1))
            else:
                in_core = np.zeros(g.n_cores + 1, bool)
                in_core[cores] = True
                sel = in_core[src_core]
                block_src = np.flatnonzero(np.bincount(src[sel], minlength=1))
            row_of[block_src] = np.arange(start, start + block_src.size)
            cols = np.flatnonzero(np.isin(active_core, targets))
            prop = make_propagator(
                row_of[src[sel]] - start, compact[edges.tgt[sel]], edges.delay[sel],
                edges.weight[sel], block_src.size, cols, propagation)
            blocks.append((slice(start, start + block_src.size), prop))
            block_targets.append(frozenset(int(c) for c in targets))
            sources.append(block_src)
            start += block_src.size
        self._blocks = blocks
        # The cores each block's contributions reach, and each ring slot's
        # cores written since run() cleared it (None: not known to be zero).
        self._block_info = [(row_sel, prop, _delays(prop), targets,
                             isinstance(prop, DensePropagator))
                            for (row_sel, prop), targets in zip(blocks, block_targets)]
        self._written = [None] * g.delay_slots
        self._track = False
        all_rows = np.concatenate(sources) if sources else np.zeros(0, np.int64)
        self._outdeg = np.bincount(row_of[src], minlength=all_rows.size)
        self._row_neurons = self._compact[all_rows[all_rows < n_total]]
        self._row_inputs = all_rows[all_rows >= n_total] - n_total
        self._row_neuron_slice = as_slice(self._row_neurons)
        self._row_input_slice = as_slice(self._row_inputs)

    @property
    def config(self) -> ChipConfig:
        """The decoded image (:func:`~neuromesh.config.decode`; decoded anew on
        each access of a learning-free emulator, which does not keep it)."""
        return self._config if self._config is not None else decode(self.image)

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
        # int32 (or, for small states, int64) neuron state -- every value of
        # the contract fits 24 bits -- and an accumulator ring of the same
        # type: the chip's accumulators modulo 2**32 (or 2**64).
        self.state = NeuronState(
            np.repeat(self._u0[a][None].astype(self._itype), b, axis=0),
            np.repeat(self._v0[a][None].astype(self._itype), b, axis=0),
            np.repeat(self._ref0[a][None].astype(np.int16), b, axis=0))
        self._acc = np.repeat(self._acc0[:, None, :], b, axis=1)
        # For the activity counters (§13): spikes per active neuron, host
        # input spikes per channel and steps, all since the reset.
        self._spike_total = np.zeros((b, self.active.size), np.int64)
        self._input_total = np.zeros((b, self.image.n_inputs), np.int64)
        self._steps_total = 0
        self._refractory_until = int(self._ref0.max(initial=0))
        if self._learn is not None:
            self._learn.reset()
        if getattr(self, "_torch", None) is not None:
            self._torch.load_state()

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

    def counters(self) -> np.ndarray:
        """The activity counters of every core (docs/architecture.md §13),
        uint32 ``[batch, n_cores, len(Counter)]`` (index with
        :class:`~neuromesh.chip.Counter`): cumulative since construction or
        :meth:`reset`, wrapping modulo 2**32 -- exactly the chip's READ of
        region COUNTERS after the same steps."""
        if getattr(self, "_counter_tables", None) is None:
            from .counters import CounterTables
            self._counter_tables = CounterTables(self.config, self._compact)
        learn = self._learn
        return self._counter_tables.counts(
            self._spike_total, self._input_total, self._steps_total,
            None if learn is None else learn.epochs, None if learn is None else learn.p_count)

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
        """Check the host input without copying it: returns a ``[steps, batch or
        1, n_inputs]`` view and the number of steps. Values other than 0/1
        are looked for a block of steps at a time."""
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
            chunk = max(1, (1 << 22) // max(1, x[0].size))
            for t0 in range(0, x.shape[0], chunk):
                part = x[t0:t0 + chunk]
                bad = (part != 0) & (part != 1)
                if bad.any():
                    t, b, c = (int(i[0]) for i in np.nonzero(bad))
                    raise ValueError(f"inputs[{t0 + t}, {b}, {c}] = {part[t, b, c].item()!r}: "
                                     f"a spike input must be 0 or 1")
        return x, x.shape[0]

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
            Read one step at a time, never copied whole (a ``numpy.memmap``
            streams from disk).
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
        # Spike counts for the synaptic events; int64 only for runs so long
        # that an int32 count could overflow.
        count_type = np.int32 if steps < (1 << 31) else np.int64
        spike_counts = np.zeros((b, self.active.size), dtype=count_type)
        input_counts = np.zeros((b, self._row_inputs.size), dtype=count_type)
        # Each step's spikes of a big state go into a uint8 count (an add of
        # one type: a quarter of the time of adding bools to int32), moved
        # into spike_counts every 255 steps.
        recent = np.zeros((b, self.active.size), dtype=np.uint8) \
            if self._itype == np.int32 else None
        in_recent = 0
        neuron_rows = self._row_neuron_slice
        modes = dict(self._modes)
        refractory_always = modes.pop("refractory")
        d_slots = self.geometry.delay_slots
        acc = self._acc
        learn = self._learn
        if learn is not None:
            learn.events[:] = 0

        def host_input(t):
            """The host input of the run's step ``t`` as bool ``[B or 1, n_inputs]``
            (streamed from ``x``: one step at a time, never copied whole)."""
            xt = x[t]
            return xt if xt.dtype == np.bool_ else xt != 0

        if self._torch is not None:
            spike_counts, input_counts = self._torch.run(x, steps, pslots, pidx, probes,
                                                         outputs, self._modes)
            self._count(spike_counts, x, steps)
            return self._result(outputs, probes, first, spike_counts, input_counts, None)
        xt = None
        in_rows = self._row_input_slice
        # Ring slots known to be zero: none yet (the ring may hold the image's
        # accumulators or an earlier run's input); the learning engine adds
        # into the ring on its own, so with it no slot ever is. (Tracked for
        # big states only: on a small one the bookkeeping costs more than the
        # pass it saves.)
        written = self._written = [None] * d_slots
        track = self._track = learn is None and self._itype == np.int32
        if x is not None and steps:
            xt = host_input(0)
            rows[:, k:] = xt[:, in_rows]
            self._propagate(rows, self.step - 1)
            if learn is not None:
                learn.propagate(acc, np.broadcast_to(xt, (b, xt.shape[1])), "input",
                                self.step - 1)
        ticks = range(steps)
        if progress:
            from tqdm import tqdm
            ticks = tqdm(ticks, desc="emulating", unit="step", leave=False, disable=None)
        for t in ticks:
            # 1. The neuron update of step t reads and clears ring slot t % D.
            slot = acc[self.step % d_slots]
            spikes = neuron_step(
                self.state, slot, self.params, **modes,
                refractory=refractory_always or self.step < self._refractory_until)
            slot.fill(0)
            if track:
                written[self.step % d_slots] = frozenset()
            if recent is None:
                spike_counts += spikes
            else:
                np.add(recent, spikes.view(np.uint8), out=recent)
                in_recent += 1
                if in_recent == 255:
                    spike_counts += recent
                    recent.fill(0)
                    in_recent = 0
            if self._out_neuron.size:
                outputs[t][:, self._out_channel_sel] = spikes[:, self._out_neuron_sel]
            for name, arr in probes.items():
                src = spikes if name == "spikes" else getattr(self.state, name)
                arr[t][:, pslots] = src[:, pidx]
            # 2. Spikes of step t and host input of step t + 1 share the base t + 1.
            rows[:, :k] = spikes[:, neuron_rows]
            x_next = host_input(t + 1) if x is not None and t + 1 < steps else None
            if x is not None:
                if x_next is None:
                    rows[:, k:] = False
                else:
                    rows[:, k:] = x_next[:, in_rows]
            self._propagate(rows, self.step)
            if learn is not None:
                # Spikes of step t travel with the weights of step t; the epoch
                # ends step t; host input of step t + 1 sees its new weights.
                learn.propagate(acc, spikes, "neuron", self.step)
                learn.step(spikes, None if xt is None else np.broadcast_to(xt, (b, xt.shape[1])))
                if x_next is not None:
                    learn.propagate(acc, np.broadcast_to(x_next, (b, x_next.shape[1])),
                                    "input", self.step)
            xt = x_next
            self.step = (self.step + 1) & STEP_MASK
        if recent is not None:
            spike_counts += recent
        totals = None
        if x is not None:
            totals = self._channel_counts(x)
            input_counts += totals[:, self._row_inputs]
        self._count(spike_counts, x, steps, totals)
        return self._result(outputs, probes, first, spike_counts, input_counts, learn)

    def _count(self, spike_counts, x, steps, totals=None):
        """Add a run's spikes, host input and steps to the counter totals."""
        self._spike_total += np.asarray(spike_counts, dtype=np.int64)
        if x is not None:
            self._input_total += self._channel_counts(x) if totals is None else totals
        self._steps_total += steps

    def _channel_counts(self, x):
        """Spikes per batch row and input channel over the run, int64 ``[batch,
        n_inputs]``: one pass over the input, a block of steps at a time (not
        a per-step addition)."""
        total = np.zeros((x.shape[1], x.shape[2]), np.int64)
        chunk = max(1, (1 << 22) // max(1, x[0].size))
        for t0 in range(0, x.shape[0], chunk):
            part = x[t0:t0 + chunk]
            total += part.sum(axis=0, dtype=np.int64) if part.dtype == np.bool_ else \
                (part != 0).sum(axis=0, dtype=np.int64)
        return np.broadcast_to(total, (self.batch, x.shape[2]))

    def _result(self, outputs, probes, first, spike_counts, input_counts, learn):
        # Synaptic events: every spike of a row visits that row's synapses.
        k = self._row_neurons.size
        events = spike_counts[:, self._row_neurons].astype(np.int64) @ self._outdeg[:k]
        events += input_counts.astype(np.int64) @ self._outdeg[k:]
        if learn is not None:
            events += learn.events
        return RunResult(outputs=outputs, probes=probes, first_step=first,
                         neuron_spikes=spike_counts.sum(axis=1, dtype=np.int64),
                         synaptic_events=events)

    def _propagate(self, rows, step):
        """Add the contributions of ``rows`` (spikes of ``step``, host inputs of
        ``step + 1``) into the accumulator slots of step ``step + 1 + delay``.

        A block whose columns of a slot are known to hold zero (the slot was
        cleared after its neuron update and no block reaching the same cores
        has written it since) writes its sums there instead of adding them:
        one pass fewer."""
        written, d_slots, acc, base = self._written, self.geometry.delay_slots, self._acc, step + 1
        if not self._track:
            for row_sel, prop in self._blocks:
                prop.add_into(rows[:, row_sel], acc, base)
            return
        for row_sel, prop, delays, targets, dense in self._block_info:
            fresh = ()
            if dense:
                fresh = [s for s in [(base + d) % d_slots for d in delays]
                         if written[s] is not None and written[s].isdisjoint(targets)]
            prop.add_into(rows[:, row_sel], acc, base, fresh)
            for d in delays:
                s = (base + d) % d_slots
                if written[s] is not None:
                    written[s] = written[s] | targets


def _delays(prop):
    """The delays a propagator's contributions take."""
    return prop.delays if isinstance(prop, DensePropagator) else [d for d, *_ in prop.tables]


def _fits(need, max_memory) -> bool:
    from neuromesh.limits import default_max_memory
    return need <= (default_max_memory() if max_memory is None else max_memory)
