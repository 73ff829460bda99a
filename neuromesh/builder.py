"""Low-level builder: write a chip image by hand, core by core.

This is the layer under the compiler, and what the tests use to set up
exact situations. Every call takes scalars or numpy arrays (broadcast
together), so large networks are built without Python loops. Synapse runs
and fan-out lists are laid out in memory by :meth:`ChipBuilder.build`.

Example::

    b = ChipBuilder(Geometry(rows=1, cols=2))
    c = b.core(0, 0)
    c.profile(0, du=410, dv=410, vth_mant=100)
    c.neurons(range(4), profile=0)
    c.synapses(axon=0, target=range(4), w_mant=60, group=0)
    c.group(0, w_shift=6)
    c.route(neuron=3, x=1, y=0, axon=0)      # neuron 3 -> core (1,0) axon 0
    b.input(channel=0, x=0, y=0, axon=0)      # host input 0 -> axon 0
    image = b.build()

Plastic synapses (docs/architecture.md §11): give a group a rule and the core
its learning parameters::

    c.group(1, w_shift=6, rule="dw = 2^-2*x1*y0 - 2^-2*y1*x0", w_bits=8,
            sign="excitatory")
    c.learning(t_epoch=1, x1=(40, 512), y1=(40, 512))   # (impulse, decay)
"""

from __future__ import annotations

import numpy as np

from .chip import (
    FLOOR_MANT_MAX,
    FLOOR_SHIFT,
    LAYOUTS,
    LEARN_LAYOUTS,
    LEARN_WORD_LAYOUTS,
    RULE_WORDS,
    ChipError,
    Geometry,
    LearnRegion,
    LearnWord,
    Region,
    ResetTiming,
    core_id,
    pack_address,
)
from .config import synapse_checks
from .image import ChipImage, InputPort
from .learning import LearningRule, RuleError

__all__ = ["ChipBuilder", "CoreBuilder", "SIGN_MODES"]

#: Sign modes of plastic groups and their LGROUP codes.
SIGN_MODES = {"mixed": 0, "excitatory": 1, "inhibitory": 2}


def _bcast(*values, copy=True):
    """Broadcast scalars/arrays/ranges together into 1-D int64 arrays.
    ``copy=False``: 1-D integer arrays (any integer dtype) that may be views
    of the arguments, for callers that copy them next anyway."""
    if copy:
        arrays = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in values))
        return [a.reshape(-1).copy() for a in arrays]
    arrays = [np.asarray(v) for v in values]
    arrays = np.broadcast_arrays(*(a if a.dtype.kind in "iu" else a.astype(np.int64)
                                   for a in arrays))
    return [a.reshape(-1) for a in arrays]


def _cat(parts, dtype=np.int64):
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


#: Regions the builder lays out itself (sized by synapses, axons, fan-out
#: entries: up to 10^8 words on a Loihi-scale chip). They are kept as packed
#: words per core, never as int64 field arrays.
_LAID_OUT = (Region.AXON, Region.SYNAPSE, Region.FANOUT)


def _ascending(a: np.ndarray) -> bool:
    """``a`` is sorted (non-decreasing): its stable order is the identity."""
    return bool(a.size < 2 or (a[1:] >= a[:-1]).all())


def _in_order(a: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``a[order]``, or ``a`` itself for the identity order ``None``."""
    return a if order is None else a[order]


def _compact(values, fields, layout):
    """The arrays ``values`` of a layout's ``fields``, each in the smallest
    dtype that holds the field (5-10 bytes per synapse instead of 48), or
    as they are when a value is outside its field (build() reports it)."""
    out = []
    for v, name in zip(values, fields):
        f = layout[name]
        dtype = np.int8 if f.bits < 8 or (f.signed and f.bits == 8) else \
            np.int16 if f.bits < 16 or (f.signed and f.bits == 16) else np.int32
        if v.size and (v.min() < f.min or v.max() > f.max):
            out.append(np.array(v, dtype=np.int64))
        else:
            out.append(v.astype(dtype))
    return tuple(out)


def _neuron_index(n):
    """Fan-out source neurons as int16 when they can be (checked at layout)."""
    return n.astype(np.int16) if not n.size or 0 <= n.min() <= n.max() < 1 << 15 else n


def _drain(parts: list, dtype) -> np.ndarray:
    """Concatenate ``parts`` while emptying the list, so the pieces are freed
    as they are copied (the peak is the result plus one piece)."""
    out = np.empty(sum(p.size for p in parts), dtype)
    pos = 0
    parts.reverse()
    while parts:
        p = parts.pop()
        out[pos:pos + p.size] = p
        pos += p.size
    return out


class CoreBuilder:
    """Configuration of one core; get it from :meth:`ChipBuilder.core`."""

    def __init__(self, geometry: Geometry, x: int, y: int):
        self.geometry = geometry
        self.x, self.y = x, y
        self._fields = {r: {name: np.zeros(geometry.region_size(r), dtype=np.int64)
                            for name in layout.fields}
                        for r, layout in LAYOUTS.items() if r not in _LAID_OUT}
        self._written = {r: np.zeros(geometry.region_size(r), dtype=bool) for r in LAYOUTS
                         if r not in _LAID_OUT}
        self._synapses = []   # (axon, target, w_mant, delay, group, tag) compact arrays
        self._fanout = []     # (neuron, x, y, axon, to_host, channel) compact arrays
        self._laid_out = {}   # Region -> packed words of offsets 0.. (after _layout)
        self._learn = None    # LEARN region fields, once learning() is called
        self._plastic = {}    # group -> (rule, sign, w_bits)
        self._traces = {}     # LearnRegion -> (index array, {field: values})
        self._tags = None     # per laid-out synapse, once _layout() ran

    def __repr__(self):
        return f"CoreBuilder(x={self.x}, y={self.y})"

    def _set(self, region: Region, index, **values):
        size = self.geometry.region_size(region)
        idx = np.arange(size)[index] if isinstance(index, slice) else \
            np.asarray(index if not isinstance(index, range) else list(index), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise ChipError(f"core ({self.x},{self.y}) {region.name}: index "
                            f"{int(idx[(idx < 0) | (idx >= size)].flat[0])} is outside "
                            f"[0, {size})")
        fields = self._fields[region]
        for name, value in values.items():
            if value is not None:
                fields[name][idx] = np.broadcast_to(np.asarray(value, dtype=np.int64), idx.shape)
        self._written[region][idx] = True
        return self

    # -- parameters and state -----------------------------------------------

    def profile(self, index, *, du=0, dv=0, vth_mant=0, refractory=0, reset="zero",
                reset_delay=False, reset_stored=False, reset_retest=False,
                threshold_ge=False, v_floor=None):
        """Set neuron profile ``index`` (docs/architecture.md §3.2).

        ``du``/``dv``: decays (0..4096); ``vth_mant``: threshold mantissa
        (``vth = vth_mant << 6``); ``refractory``: steps held after a spike;
        ``reset``: ``"zero"`` or ``"subtract"``. The reset's timing
        (``reset_timing``): immediate by default; ``reset_delay``: in the
        next step (snnTorch's default), on the new sum or, with
        ``reset_stored``, on the stored v before its decay; ``reset_retest``:
        immediate, but a stored v past the threshold counts the threshold
        twice in the next test (snnTorch 1.0 with ``reset_delay=False``).
        ``threshold_ge``: spike when ``v >= vth`` instead of ``v > vth``
        (Sinabs); ``v_floor``: lower clamp of ``v`` in chip units, a
        multiple of ``2**14`` in ``[-(511 << 14), -(1 << 14)]`` (``None``:
        ``-V_MAX``, no floor).
        """
        where = f"core ({self.x},{self.y}) profile {index}"
        if reset not in ("zero", "subtract"):
            raise ChipError(f"{where}: reset must be 'zero' or 'subtract', got {reset!r}")
        if reset_stored and not reset_delay:
            raise ChipError(f"{where}: reset_stored needs reset_delay")
        if reset_retest and reset_delay:
            raise ChipError(f"{where}: reset_retest is an immediate reset; it excludes "
                            f"reset_delay")
        timing = (ResetTiming.RETEST if reset_retest else ResetTiming.DELAYED_STORED
                  if reset_stored else ResetTiming.DELAYED if reset_delay
                  else ResetTiming.IMMEDIATE)
        floor_mant = 0
        if v_floor is not None:
            v_floor = int(v_floor)
            step = 1 << FLOOR_SHIFT
            if v_floor >= 0 or v_floor % step or -v_floor // step > FLOOR_MANT_MAX:
                raise ChipError(f"{where}: v_floor = {v_floor} must be a multiple of {step} "
                                f"in [{-(FLOOR_MANT_MAX << FLOOR_SHIFT)}, {-step}]")
            floor_mant = -v_floor // step
        return self._set(Region.PROFILE, index, du=du, dv=dv, vth_mant=vth_mant,
                         refractory=refractory, reset_subtract=int(reset == "subtract"),
                         reset_timing=int(timing), threshold_ge=int(bool(threshold_ge)),
                         floor_mant=floor_mant)

    def group(self, index, *, w_shift=0, rule=None, w_bits=8, sign="mixed"):
        """Set synapse group ``index``: a synapse contributes ``w_mant << w_shift``.

        With ``rule`` (a Lava-syntax string or a
        :class:`~neuromesh.learning.LearningRule`) the group is plastic: its
        weights learn by that rule and are clamped to ``w_bits`` (1..8) bits
        in sign mode ``"mixed"``, ``"excitatory"`` (>= 0) or ``"inhibitory"``
        (<= 0). The core also needs :meth:`learning`.
        """
        where = f"core ({self.x},{self.y}) group {index}"
        if rule is not None:
            if sign not in SIGN_MODES:
                raise ChipError(f"{where}: sign must be one of {', '.join(SIGN_MODES)}, "
                                f"got {sign!r}")
            if not isinstance(w_bits, (int, np.integer)) or not 1 <= w_bits <= 8:
                raise ChipError(f"{where}: w_bits = {w_bits!r} is outside [1, 8]")
            if not isinstance(index, (int, np.integer)) or not 0 <= index < \
                    self.geometry.n_groups:
                raise ChipError(f"{where}: a plastic group must be one index in "
                                f"[0, {self.geometry.n_groups})")
            if not isinstance(rule, LearningRule):
                try:
                    rule = LearningRule.parse(rule)
                except RuleError as e:
                    raise RuleError(f"{where}: {e}") from None
        self._set(Region.GROUP, index, w_shift=w_shift)
        idx = np.arange(self.geometry.n_groups)[index] if isinstance(index, slice) else \
            np.atleast_1d(np.asarray(list(index) if isinstance(index, range) else index))
        for i in idx.tolist():
            self._plastic.pop(i, None)
            if rule is not None:
                self._plastic[i] = (rule, SIGN_MODES[sign], int(w_bits))
        return self

    def learning(self, *, t_epoch=1, x1=(0, 0), x2=(0, 0), y1=(0, 0), y2=(0, 0), y3=(0, 0),
                 stochastic=(), reward=0, reward_axon=None, reward_impulse=0,
                 reward_decay=0, seed=None):
        """Switch on this core's learning engine.

        ``t_epoch``: steps per learning epoch (1..63; 0 switches the engine
        off). ``x1`` ... ``y3``: ``(impulse, decay)`` of each trace (impulse
        0..127 added on a spike, decay 0..4095: the trace is multiplied by
        ``(4096 - decay) / 4096`` every step). ``stochastic``: any of
        ``"trace"``, ``"w"``, ``"t"`` -- round trace decays, weight and tag
        updates stochastically instead of down. ``reward``: initial reward
        register (s8); ``reward_axon``: an axon whose packets add
        ``reward_impulse`` to it; ``reward_decay``: its decay (0..4095).
        ``seed``: the initial LFSR state (non-zero u32; default
        ``0x9E3779B9 ^ core id``).
        """
        where = f"core ({self.x},{self.y}) learning"
        bad = set(stochastic) - {"trace", "w", "t"}
        if isinstance(stochastic, str) or bad:
            raise ChipError(f"{where}: stochastic must be a collection of 'trace', 'w', 't'; "
                            f"got {stochastic!r}")
        fields = dict(t_epoch=t_epoch, sr_trace=int("trace" in stochastic),
                      sr_w=int("w" in stochastic), sr_t=int("t" in stochastic),
                      reward_en=int(reward_axon is not None),
                      reward_axon=0 if reward_axon is None else reward_axon,
                      reward_impulse=reward_impulse, reward_decay=reward_decay, reward=reward,
                      epoch_phase=0,
                      lfsr=(0x9E3779B9 ^ core_id(self.x, self.y)) if seed is None else seed)
        for name, value in (("x1", x1), ("x2", x2), ("y1", y1), ("y2", y2), ("y3", y3)):
            try:
                impulse, decay = value
            except (TypeError, ValueError):
                raise ChipError(f"{where}: {name} must be (impulse, decay), got "
                                f"{value!r}") from None
            fields[f"{name}_impulse"], fields[f"{name}_decay"] = impulse, decay
        for layout in LEARN_WORD_LAYOUTS.values():
            try:
                layout.pack(**{k: v for k, v in fields.items() if k in layout.fields})
            except ChipError as e:
                raise ChipError(f"{where}: {e}") from None
        self._learn = fields
        return self

    def neurons(self, index, *, profile=None, bias_mant=None, bias_exp=None):
        """Set profile and bias (``bias_mant << bias_exp``) of neurons ``index``."""
        return self._set(Region.NEURON, index, profile=profile, bias_mant=bias_mant,
                         bias_exp=bias_exp)

    def state(self, index, *, u=None, v=None, refractory=None):
        """Set the initial u, v and refractory counter of neurons ``index``."""
        return self._set(Region.STATE, index, u=u, v=v, refractory=refractory)

    def accum(self, slot, index, value):
        """Preload accumulator ring ``slot`` (the input of step ``slot``) of neurons ``index``."""
        n = self.geometry.n_neurons
        if not 0 <= slot < self.geometry.delay_slots:
            raise ChipError(f"core ({self.x},{self.y}): accumulator slot {slot} is outside "
                            f"[0, {self.geometry.delay_slots})")
        idx = np.arange(n)[index] if isinstance(index, slice) else \
            np.asarray(list(index) if isinstance(index, range) else index, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ChipError(f"core ({self.x},{self.y}) ACCUM: neuron "
                            f"{int(idx[(idx < 0) | (idx >= n)].flat[0])} is outside [0, {n})")
        return self._set(Region.ACCUM, slot * n + idx, value=value)

    # -- connectivity ---------------------------------------------------------

    def synapses(self, axon, target, w_mant, delay=0, group=0, tag=0):
        """Add synapses: a spike on ``axon`` adds ``w_mant << w_shift(group)``
        to neuron ``target`` ``delay`` steps late. Arguments broadcast; one
        element per synapse. The synapses of an axon keep the order given.
        ``tag``: initial tag of plastic synapses (s8; learning images only)."""
        a, t, w, d, gr, tg = _bcast(axon, target, w_mant, delay, group, tag, copy=False)
        n_axons = self.geometry.n_axons
        if a.size and (a.min() < 0 or a.max() >= n_axons):
            raise ChipError(f"core ({self.x},{self.y}): axon "
                            f"{int(a[(a < 0) | (a >= n_axons)][0])} is outside [0, {n_axons})")
        syn = _compact((t, w, d, gr), ("target", "w_mant", "delay", "group"),
                       LAYOUTS[Region.SYNAPSE])
        tag_ok = not tg.size or -128 <= tg.min() <= tg.max() <= 127
        self._synapses.append((a.astype(np.int32), *syn,
                               tg.astype(np.int8) if tag_ok else np.array(tg, np.int64)))
        return self

    def pre_traces(self, axon, *, x1=None, x2=None):
        """Initial pre traces (0..127) of input ``axon`` (learning images only)."""
        return self._trace_state(LearnRegion.XTRACE, axon, self.geometry.n_axons,
                                 x1=x1, x2=x2)

    def post_traces(self, neuron, *, y1=None, y2=None, y3=None):
        """Initial post traces (0..127) of ``neuron`` (learning images only)."""
        return self._trace_state(LearnRegion.YTRACE, neuron, self.geometry.n_neurons,
                                 y1=y1, y2=y2, y3=y3)

    def _trace_state(self, region, index, size, **values):
        idx = np.atleast_1d(np.asarray(list(index) if isinstance(index, range) else index,
                                       dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise ChipError(f"core ({self.x},{self.y}) {region.name}: index "
                            f"{int(idx[(idx < 0) | (idx >= size)][0])} is outside [0, {size})")
        layout = LEARN_LAYOUTS[region]
        old_idx, old = self._traces.get(region, (np.zeros(0, np.int64), {}))
        fields = {k: np.zeros(size, np.int64) for k in layout.fields}
        written = np.zeros(size, bool)
        written[old_idx] = True
        for k, v in old.items():
            fields[k][old_idx] = v
        for k, v in values.items():
            if v is not None:
                fields[k][idx] = np.broadcast_to(np.asarray(v, dtype=np.int64), idx.shape)
        written[idx] = True
        keep = np.flatnonzero(written)
        try:
            layout.pack(**{k: v[keep] for k, v in fields.items()})
        except ChipError as e:
            raise ChipError(f"core ({self.x},{self.y}) {region.name}: {e}") from None
        self._traces[region] = (keep, {k: v[keep] for k, v in fields.items()})
        return self

    def route(self, neuron, x, y, axon):
        """Add fan-out entries: a spike of ``neuron`` sends a packet to ``axon``
        of core ``(x, y)``. Arguments broadcast; one element per entry."""
        n, xx, yy, a = _bcast(neuron, x, y, axon)
        z = np.zeros_like(n)
        self._add_fanout(n, xx, yy, a, z, z)
        return self

    def to_host(self, neuron, channel):
        """Add fan-out entries sending spikes of ``neuron`` to host output ``channel``."""
        n, ch = _bcast(neuron, channel)
        z = np.zeros_like(n)
        self._add_fanout(n, z, z, z, np.ones_like(n), ch)
        return self

    def _add_fanout(self, neuron, x, y, axon, to_host, channel):
        fields = _compact((x, y, axon, to_host, channel),
                          ("x", "y", "axon", "to_host", "channel"), LAYOUTS[Region.FANOUT])
        self._fanout.append((_neuron_index(neuron), *fields))

    # -- layout -----------------------------------------------------------------

    def _pack(self, region, **values):
        try:
            return LAYOUTS[region].pack(**values)
        except ChipError as e:
            raise ChipError(f"core ({self.x},{self.y}) {region.name}: {e}") from None

    def _layout(self):
        """Lay out synapse runs and fan-out lists; pack the AXON, SYNAPSE and
        FANOUT words (kept packed: 8 bytes per word)."""
        g = self.geometry
        where = f"core ({self.x},{self.y})"
        self._laid_out = {}
        self._synapse_failed, self._synapse_values = [], None
        n_syn = sum(p[0].size for p in self._synapses)
        if n_syn > g.n_synapses:
            raise ChipError(f"{where}: {n_syn} synapses exceed n_synapses {g.n_synapses}")
        if n_syn:
            a = np.concatenate([p[0] for p in self._synapses])
            # (the compiler hands its synapses over already in axon order)
            order = None if _ascending(a) else np.argsort(a, kind="stable")
            count = np.bincount(a, minlength=g.n_axons)
            del a
            used = np.flatnonzero(count)
            base = np.cumsum(count) - count
            self._laid_out[Region.AXON] = (used, self._pack(
                Region.AXON, syn_base=base[used], syn_len=count[used]))
            fields = {}
            for i, name in enumerate(("target", "w_mant", "delay", "group", "tag"), 1):
                fields[name] = _in_order(np.concatenate([p[i] for p in self._synapses]), order)
            self._tags = fields.pop("tag")
            # the check's per-word checks, on the values before packing (the
            # words are then not read again, see ChipBuilder.build)
            self._synapse_failed = []
            for _, bad, _ in synapse_checks(g):
                mask = bad(fields)
                count = int(np.count_nonzero(mask))
                self._synapse_failed.append((count, int(np.argmax(mask)) if count else None))
            self._laid_out[Region.SYNAPSE] = (None, self._pack(Region.SYNAPSE, **fields))
            self._synapse_values = {k: fields[k] for k in ("target", "delay", "group")} \
                if any(c for c, _ in self._synapse_failed) else None
        else:
            self._tags = np.zeros(0, np.int8)
        n_fan = sum(p[0].size for p in self._fanout)
        if n_fan > g.n_fanout:
            raise ChipError(f"{where}: {n_fan} fan-out entries exceed n_fanout {g.n_fanout}")
        if n_fan:
            n = np.concatenate([p[0] for p in self._fanout])
            if n.min() < 0 or n.max() >= g.n_neurons:
                raise ChipError(f"{where}: fan-out source neuron "
                                f"{int(n[(n < 0) | (n >= g.n_neurons)][0])} is outside "
                                f"[0, {g.n_neurons})")
            order = None if _ascending(n) else np.argsort(n, kind="stable")
            count = np.bincount(n, minlength=g.n_neurons)
            del n
            used = np.flatnonzero(count)
            base = np.cumsum(count) - count
            self._set(Region.NEURON, used, fanout_base=base[used], fanout_len=count[used])
            fields = {name: _in_order(np.concatenate([p[i] for p in self._fanout]), order)
                      for i, name in enumerate(("x", "y", "axon", "to_host", "channel"), 1)}
            self._laid_out[Region.FANOUT] = (None, self._pack(Region.FANOUT, **fields))

    def _max_channel(self) -> int:
        """The highest host output channel this core's fan-out names (-1: none)."""
        return max((int(p[5][p[4] == 1].max(initial=-1)) for p in self._fanout), default=-1)

    def _uses_learning(self) -> bool:
        tags = any(p[5].any() for p in self._synapses)
        return self._learn is not None or bool(self._plastic) or bool(self._traces) or tags

    def _learning_writes(self):
        """Writes of the learning regions (only in images with learning)."""
        cid = core_id(self.x, self.y)
        for region, (idx, fields) in self._traces.items():
            yield pack_address(cid, int(region), idx), LEARN_LAYOUTS[region].pack(**fields)
        if self._tags is not None and self._tags.any():
            try:
                words = LEARN_LAYOUTS[LearnRegion.TAG].pack(tag=self._tags)
            except ChipError as e:
                raise ChipError(f"core ({self.x},{self.y}) TAG: {e}") from None
            yield pack_address(cid, int(LearnRegion.TAG), np.arange(self._tags.size)), words
        if self._learn is not None:
            words = [LEARN_WORD_LAYOUTS[w].pack(**{k: v for k, v in self._learn.items()
                                                   if k in LEARN_WORD_LAYOUTS[w].fields})
                     for w in LearnWord]
            yield pack_address(cid, int(LearnRegion.LEARN), np.arange(len(words))), \
                np.array(words, dtype=np.uint64)
        if not self._plastic:
            return
        placed, code = {}, []
        groups = sorted(self._plastic)
        fields = {k: [] for k in ("plastic", "sign", "w_bits", "rule_base", "rule_len")}
        for gi in groups:
            rule, sign, w_bits = self._plastic[gi]
            if rule not in placed:
                placed[rule] = sum(len(c) for c in code)
                code.append(rule.encode())
            for k, v in (("plastic", 1), ("sign", sign), ("w_bits", w_bits),
                         ("rule_base", placed[rule]), ("rule_len", len(rule.products))):
                fields[k].append(v)
        words = np.concatenate(code)
        if words.size > RULE_WORDS:
            raise ChipError(f"core ({self.x},{self.y}): the learning rules need {words.size} "
                            f"microcode words; the RULE region holds {RULE_WORDS}")
        yield pack_address(cid, int(LearnRegion.LGROUP), np.array(groups)), \
            LEARN_LAYOUTS[LearnRegion.LGROUP].pack(**fields)
        if words.size:
            yield pack_address(cid, int(LearnRegion.RULE), np.arange(words.size)), words

    def _writes(self):
        cid = core_id(self.x, self.y)
        for region in LAYOUTS:
            if region in _LAID_OUT:
                if region not in self._laid_out:
                    continue
                idx, words = self._laid_out[region]
                if idx is None:
                    idx = np.arange(words.size)
            else:
                idx = np.flatnonzero(self._written[region])
                if idx.size == 0:
                    continue
                words = self._pack(region, **{k: v[idx] for k, v in self._fields[region].items()})
            yield pack_address(cid, int(region), idx).astype(np.uint32), words


class ChipBuilder:
    """Build a :class:`~neuromesh.image.ChipImage` for ``geometry``."""

    def __init__(self, geometry: Geometry):
        self.geometry = geometry
        self._cores = {}
        self._inputs = []
        self.n_inputs = None
        self.n_outputs = None

    def core(self, x: int, y: int) -> CoreBuilder:
        """The builder of core ``(x, y)`` (created on first use)."""
        g = self.geometry
        if not (0 <= x < g.cols and 0 <= y < g.rows):
            raise ChipError(f"core ({x},{y}) is outside the {g.rows}x{g.cols} mesh")
        if (x, y) not in self._cores:
            self._cores[x, y] = CoreBuilder(g, x, y)
        return self._cores[x, y]

    def input(self, channel, x, y, axon):
        """Host input ``channel`` feeds ``axon`` of core ``(x, y)`` (broadcasts)."""
        for ch, xx, yy, a in np.broadcast(np.asarray(channel), x, y, axon):
            self.core(int(xx), int(yy))
            self._inputs.append(InputPort(int(ch), core_id(int(xx), int(yy)), int(a)))
        return self

    def build(self, meta: dict | None = None) -> ChipImage:
        """Lay out synapse runs and fan-out lists, pack every word, and check
        the result with :func:`neuromesh.config.check` (every check of
        :func:`~neuromesh.config.decode`; the SYNAPSE words' checks run on
        the values before they are packed, not on the packed words)."""
        from .config import check
        addrs, words = [], []
        max_channel = -1
        learning = any(c._uses_learning() for c in self._cores.values())
        checks = synapse_checks(self.geometry)
        failed = [[field, limit, 0, None] for field, _, limit in checks]
        # cores in address order (y, then x), each region's words in offset
        # order: every region's writes are then sorted by address, which the
        # check reads without a sort
        for _, core in sorted(self._cores.items(), key=lambda kv: kv[0][::-1]):
            core._layout()
            for f, (count, first) in zip(failed, core._synapse_failed):
                if count and f[3] is None:
                    value = core._synapse_values[f[0]][first]
                    f[3] = (core.y * self.geometry.cols + core.x, first, int(value))
                f[2] += count
            core._synapse_values = None
            for a, w in core._writes():
                addrs.append(a)
                words.append(w)
            for a, w in core._learning_writes():
                addrs.append(a)
                words.append(w)
            core._laid_out = {}     # packed into the image now
            max_channel = max(max_channel, core._max_channel())
        n_inputs = self.n_inputs if self.n_inputs is not None else \
            max((p.channel for p in self._inputs), default=-1) + 1
        n_outputs = self.n_outputs if self.n_outputs is not None else max_channel + 1
        image = ChipImage(self.geometry, _drain(addrs, np.uint32), _drain(words, np.uint64),
                          inputs=self._inputs, n_inputs=n_inputs, n_outputs=n_outputs,
                          meta=dict(meta or {}), learning=learning)
        check(image, synapses_checked=[tuple(f) for f in failed])
        return image
