"""Decoding a chip image into per-field arrays, with every content check.

:func:`decode` turns the memory writes of a :class:`~neuromesh.image.ChipImage`
into one int64 array per word field, shaped ``[n_cores, region size]`` (cores
indexed ``y * cols + x``), and rejects any word that breaks the spec. The
emulator is built from this; the compiler and reports read it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chip import (
    DECAY_ONE,
    LAYOUTS,
    LEARN_LAYOUTS,
    LEARN_WORD_LAYOUTS,
    MAX_PRODUCTS,
    RULE_WORDS,
    W_BITS_MAX,
    W_BITS_MIN,
    Geometry,
    LearnRegion,
    LearnWord,
    Region,
    _compact_dtype,
    region_words,
)
from .image import ChipImage, ImageError

__all__ = ["ChipConfig", "decode", "check", "COMPACT_REGIONS"]

#: Regions decoded into compact dtypes (they grow with the synapses).
COMPACT_REGIONS = (Region.AXON, Region.SYNAPSE, Region.FANOUT)


@dataclass
class ChipConfig:
    """Field arrays of every memory region of a chip.

    ``regions[Region.X][field]`` is an integer array ``[n_cores, size]``:
    int64, except in the three regions that grow with the synapses (AXON,
    SYNAPSE, FANOUT: up to 10^8 words on a Loihi-scale chip), whose fields
    come in the smallest signed dtype that holds them (int8 ... int32; widen
    before arithmetic that could leave it). The accumulator ring is reshaped
    to ``[n_cores, delay_slots, n_neurons]``.
    Images with the learning flag also have ``regions[LearnRegion.X]`` for
    the learning regions (the LEARN region as one int64 array ``[n_cores]``
    per field of its five words), and ``rules[(core, group)]``, the
    :class:`~neuromesh.learning.LearningRule` of every plastic group.
    """

    image: ChipImage
    regions: dict
    rules: dict = None

    @property
    def learning(self) -> bool:
        """The image configures the learning engine."""
        return self.image.learning

    @property
    def geometry(self) -> Geometry:
        return self.image.geometry

    def __getitem__(self, region: Region) -> dict:
        return self.regions[region]


class _Words:
    """The final contents of the words an image writes in one region (the
    last write to an address wins), sorted by core index and offset, with
    their fields unpacked. Words never written are zero, and a zero word
    passes every per-word check, so checking only these is complete.

    In the regions that grow with the synapses (:data:`COMPACT_REGIONS`,
    10^7 words and more at Loihi scale) ``core`` is int16, ``offset`` int32
    and the fields come in compact dtypes, as :func:`decode` gives them:
    widen before arithmetic that could leave the dtype (:meth:`key` does)."""

    def __init__(self, region, layout, core, offset, fields):
        self.region, self.layout = region, layout
        self.core, self.offset = core, offset
        self.fields = fields
        self.failed = []    # (field, limit, count, (core, offset, value)) of block checks

    def __getitem__(self, name):
        return self.fields[name]

    def key(self, stride, mask=None):
        """``core * stride + offset`` as int64 (of the words in ``mask``)."""
        core, offset = (self.core, self.offset) if mask is None else \
            (self.core[mask], self.offset[mask])
        key = core.astype(np.int64) * stride
        key += offset
        return key

    def fail(self, field, mask, values, limit):
        """Raise the error for the first word in ``mask`` (and count the rest)."""
        _raise(self.region, field, self.core, self.offset, mask, values, limit)

    def check(self, field, bad, limit):
        if bad.any():
            self.fail(field, bad, self.fields[field], limit)

    def raise_failed(self):
        """Raise the error of the first block check that failed (in order)."""
        for field, limit, count, first in self.failed:
            if count:
                raise ImageError(_message(self.region, field, *first, limit, count))

    def dense(self, n_cores, size):
        """The region as int64 field arrays ``[n_cores, size]``."""
        out = {}
        for name, values in self.fields.items():
            a = np.zeros((n_cores, size), dtype=np.int64)
            a[self.core, self.offset] = values
            out[name] = a
        return out


def _message(region, field, core, offset, value, limit, count):
    more = f" (and {count - 1} more words)" if count > 1 else ""
    return (f"core {int(core)} {region.name} word {int(offset)}: {field} = {int(value)} "
            f"{limit}{more}")


def _raise(region, field, core, offset, mask, values, limit):
    i = int(np.flatnonzero(mask)[0])
    raise ImageError(_message(region, field, core[i], offset[i], values[i], limit,
                              int(np.count_nonzero(mask))))


#: Writes unpacked at a time by :func:`_final_words` (the temporaries of a
#: block stay small next to a Loihi-scale region).
_BLOCK = 1 << 20


def _final_words(image: ChipImage, region, layout, checks=(), keep=True,
                 regions=None) -> _Words:
    """The region's final words, reserved bits checked, unpacked a block of
    writes at a time into compact arrays (int64 outside
    :data:`COMPACT_REGIONS`): no whole-region uint64 or int64 temporaries.

    ``checks``: ``(field, bad(fields) -> mask, limit)`` run on each block;
    the first failure and the count of each are recorded for
    :meth:`_Words.raise_failed` (so the errors keep the order of
    :func:`check`). ``keep=False``: the words are not kept (no arrays).
    ``regions``: the image's ``_region_of_writes()``, if known."""
    cols = image.geometry.cols
    sel = image._region_writes(region, regions)
    compact = region in COMPACT_REGIONS
    n = sel.size if keep else 0
    core = np.empty(n, np.int16 if compact else np.int64)
    offset = np.empty(n, np.int32 if compact else np.int64)
    fields = {name: np.empty(n, _compact_dtype(f) if compact else np.int64)
              for name, f in layout.fields.items()}
    reserved_count, first = 0, None
    failed = [[0, None] for _ in checks]
    for i in range(0, sel.size, _BLOCK):
        part = sel[i:i + _BLOCK]
        addr = image.addresses[part]
        core_id = addr >> 24
        block_core = (core_id >> 4) * cols + (core_id & 0xF)
        block_offset = addr & 0xFFFFF
        del addr, core_id
        words = image.words[part]
        reserved = layout.reserved_bits(words)
        if reserved.any():
            reserved_count += int(np.count_nonzero(reserved))
            if first is None:
                j = int(np.flatnonzero(reserved)[0])
                first = block_core[j], block_offset[j], words[j]
        block = layout.unpack(words, compact=compact)
        del words
        for (field, bad, _), f in zip(checks, failed):
            mask = bad(block)
            if mask.any():
                f[0] += int(np.count_nonzero(mask))
                if f[1] is None:
                    j = int(np.flatnonzero(mask)[0])
                    f[1] = block_core[j], block_offset[j], block[field][j]
        if keep:
            core[i:i + part.size] = block_core
            offset[i:i + part.size] = block_offset
            for name, values in block.items():
                fields[name][i:i + part.size] = values
    del sel
    if reserved_count:
        raise ImageError(_message(region, "reserved bits", *first, "must be zero",
                                  reserved_count))
    out = _Words(region, layout, core, offset, fields)
    out.failed = [(field, limit, *f) for (field, _, limit), f in zip(checks, failed)]
    return out


def synapse_checks(g: Geometry) -> list:
    """The per-word checks of the SYNAPSE region on ``g``: ``(field,
    bad(fields) -> mask, limit text)``, run by :func:`check` and, on the
    values it packs, by :meth:`~neuromesh.builder.ChipBuilder.build`."""
    return [
        ("target", lambda s: s["target"] >= g.n_neurons, f">= n_neurons {g.n_neurons}"),
        ("delay", lambda s: s["delay"] > g.max_delay,
         f"> max delay {g.max_delay} (delay_slots - 2)"),
        ("group", lambda s: s["group"] >= g.n_groups, f">= n_groups {g.n_groups}"),
    ]


def check(image: ChipImage, *, synapses_checked: list | None = None) -> dict:
    """Check every memory word of ``image`` against the spec, at a cost in
    proportion to the writes (not to the geometry): what
    :func:`neuromesh.image.load` runs. Returns the checked words by region
    (for :func:`decode`); the SYNAPSE words (10^8 at Loihi scale) only in an
    image with learning, whose checks read them again: they are checked a
    block at a time and not kept. Raises
    :class:`~neuromesh.image.ImageError` like :func:`decode`.

    ``synapses_checked``: the outcome of :func:`synapse_checks` already run
    by the caller on the very values it packed into the SYNAPSE words, with
    zero reserved bits (the builder's): ``(field, limit, count, (core,
    offset, value) of the first failure or None)`` per check. In an image
    without learning the SYNAPSE words are then not read again; the errors
    are raised at the same point of the check as its own would be."""
    g = image.geometry
    checks = synapse_checks(g)
    skip = synapses_checked is not None and not image.learning
    regions = image._region_of_writes()
    w = {region: _final_words(image, region, layout, checks=checks,
                              keep=image.learning, regions=regions) if region == Region.SYNAPSE
         else _final_words(image, region, layout, regions=regions)
         for region, layout in LAYOUTS.items() if not (skip and region == Region.SYNAPSE)}
    del regions
    if skip:
        w[Region.SYNAPSE] = _Words(Region.SYNAPSE, LAYOUTS[Region.SYNAPSE], None, None, {})
        w[Region.SYNAPSE].failed = list(synapses_checked)
    p = w[Region.PROFILE]
    p.check("du", p["du"] > DECAY_ONE, f"> {DECAY_ONE}")
    p.check("dv", p["dv"] > DECAY_ONE, f"> {DECAY_ONE}")
    n = w[Region.NEURON]
    n.check("profile", n["profile"] >= g.n_profiles, f">= n_profiles {g.n_profiles}")
    n.check("fanout_len", n["fanout_base"] + n["fanout_len"] > g.n_fanout,
            f"(from fanout_base) runs past n_fanout {g.n_fanout}")
    a = w[Region.AXON]
    a.check("syn_len", a["syn_base"] + a["syn_len"] > g.n_synapses,
            f"(from syn_base) runs past n_synapses {g.n_synapses}")
    w[Region.SYNAPSE].raise_failed()
    if not image.learning:
        del w[Region.SYNAPSE]
    f = w[Region.FANOUT]
    host = f["to_host"] == 1
    f.check("x", ~host & (f["x"] >= g.cols), f">= cols {g.cols}")
    f.check("y", ~host & (f["y"] >= g.rows), f">= rows {g.rows}")
    f.check("axon", ~host & (f["axon"] >= g.n_axons), f">= n_axons {g.n_axons}")
    f.check("channel", ~host & (f["channel"] != 0), "must be 0 in a core-bound entry")
    for name in ("axon", "x", "y"):
        f.check(name, host & (f[name] != 0), "must be 0 in a host-bound entry")
    f.check("channel", host & (f["channel"] >= image.n_outputs),
            f">= n_outputs {image.n_outputs}")
    _check_unique_channels(image, w)
    if image.learning:
        w.update(_check_learning(image, w))
    return w


def _dense_fields(image: ChipImage, region: Region, layout) -> dict:
    """The field arrays ``[n_cores, size]`` of ``region`` (already checked),
    unpacked a block of cores at a time so the temporaries stay small next to
    a Loihi-scale region; the regions that grow with the synapses in compact
    dtypes."""
    words = image.memory(region)
    n_cores, size = words.shape
    compact = region in COMPACT_REGIONS
    out = None
    step = max(1, (1 << 22) // max(size, 1))
    for first in range(0, n_cores, step):
        rows = slice(first, first + step)
        part = layout.unpack(words[rows], compact=compact)
        if out is None:
            out = {k: np.empty(words.shape, v.dtype) for k, v in part.items()}
        for k, v in part.items():
            out[k][rows] = v
    return out


def decode(image: ChipImage, checked: dict | None = None) -> ChipConfig:
    """Decode and check all memory regions of ``image``.

    Raises :class:`~neuromesh.image.ImageError` naming the core (index
    ``y * cols + x``), region, word, field, value and limit of the first
    violation. The arrays cover the whole chip (memory in proportion to the
    geometry); :func:`check` alone costs only in proportion to the writes.
    ``checked``: what :func:`check` returned for this image (not checked again;
    only the words of the learning regions are read from it).
    """
    g = image.geometry
    words = check(image) if checked is None else checked
    regions = {region: _dense_fields(image, region, layout) for region, layout in LAYOUTS.items()}
    regions[Region.ACCUM]["value"] = regions[Region.ACCUM]["value"].reshape(
        g.n_cores, g.delay_slots, g.n_neurons)
    rules = {}
    if image.learning:
        rules = _decode_learning(image, words, regions)
    return ChipConfig(image, regions, rules)


def _check_unique_channels(image: ChipImage, w):
    """Each host output channel must be fed by at most one neuron.

    Fan-out lists may overlap, so the references to an entry are counted as
    the number of neuron ranges covering it, never by listing the ranges."""
    g = image.geometry
    n, f = w[Region.NEURON], w[Region.FANOUT]
    has = n["fanout_len"] > 0
    host = f["to_host"] == 1
    if not has.any() or not host.any():
        return
    ncore, base, length = n.core[has], n["fanout_base"][has], n["fanout_len"][has]
    starts = np.sort(ncore * g.n_fanout + base)
    ends = np.sort(ncore * g.n_fanout + base + length)
    ekey = f.key(g.n_fanout, host)
    cover = np.searchsorted(starts, ekey, "right") - np.searchsorted(ends, ekey, "right")
    channels = f["channel"][host]
    totals = np.bincount(channels, weights=cover, minlength=1)
    if (totals > 1).any():
        ch = int(np.flatnonzero(totals > 1)[0])
        entries = ekey[channels == ch]
        # The feeding neurons in (core, neuron) order, once per entry they reach.
        lo = ncore * g.n_fanout + base
        reach = np.searchsorted(entries, lo + length) - np.searchsorted(entries, lo)
        src = [f"core {int(c)} neuron {int(k)}" for c, k in
               zip(np.repeat(ncore, reach), np.repeat(n.offset[has], reach))][:2]
        raise ImageError(f"output channel {ch} is fed by {int(totals[ch])} fan-out references "
                         f"({', '.join(src)}, ...); a channel may have one source neuron")


# --- learning regions (docs/architecture.md §11.8) ------------------------------------

def sign_range(w_bits, sign):
    """Clamp range ``(lo, hi)`` of a plastic weight of precision ``w_bits`` and
    sign mode ``sign`` (0 mixed, 1 excitatory, 2 inhibitory); works on arrays."""
    w_bits = np.asarray(w_bits, dtype=np.int64)
    sign = np.asarray(sign, dtype=np.int64)
    half = np.left_shift(1, np.maximum(w_bits - 1, 0))
    lo = np.where(sign == 1, 0, -half)
    hi = np.where(sign == 2, 0, half - 1)
    return lo, hi


def _check_learning(image: ChipImage, w) -> dict:
    """The checks of the learning regions (§11.8); returns their words."""
    g = image.geometry
    out = {}
    learn = _learn_fields(image)
    for region, layout in LEARN_LAYOUTS.items():
        out[region] = _final_words(image, region, layout)

    def learn_fail(bad, word, field, limit):
        if bad.any():
            core = int(np.flatnonzero(bad)[0])
            raise ImageError(f"core {core} LEARN word {int(word)} ({word.name}): {field} = "
                             f"{int(learn[field][core])} {limit}")

    on = learn["t_epoch"] > 0
    learn_fail(learn["reward_en"].astype(bool) & (learn["reward_axon"] >= g.n_axons),
               LearnWord.CONTROL, "reward_axon", f">= n_axons {g.n_axons}")
    learn_fail(on & (learn["epoch_phase"] >= learn["t_epoch"]), LearnWord.LSTATE,
               "epoch_phase", "must be < t_epoch")
    learn_fail(~on & (learn["epoch_phase"] != 0), LearnWord.LSTATE, "epoch_phase",
               "must be 0 while t_epoch = 0")
    stochastic = (learn["sr_trace"] | learn["sr_w"] | learn["sr_t"]).astype(bool)
    learn_fail(on & stochastic & (learn["lfsr"] == 0), LearnWord.LFSR, "lfsr",
               "must be non-zero when stochastic rounding is on (a zero LFSR never leaves 0)")

    lg = out[LearnRegion.LGROUP]
    plastic = lg["plastic"] == 1
    for name in ("sign", "w_bits", "rule_base", "rule_len"):
        lg.check(name, ~plastic & (lg[name] != 0), "must be 0 in a non-plastic group")
    lg.check("w_bits", plastic & ((lg["w_bits"] < W_BITS_MIN) | (lg["w_bits"] > W_BITS_MAX)),
             f"is outside [{W_BITS_MIN}, {W_BITS_MAX}]")
    lg.check("sign", plastic & (lg["sign"] > 2),
             "is not a sign mode (0 mixed, 1 excitatory, 2 inhibitory)")
    lg.check("rule_len", plastic & (lg["rule_len"] > MAX_PRODUCTS),
             f"> MAX_PRODUCTS {MAX_PRODUCTS}")
    lg.check("rule_len", plastic & (lg["rule_base"] + lg["rule_len"] > RULE_WORDS),
             f"(from rule_base) runs past the {RULE_WORDS} RULE words")

    rw = out[LearnRegion.RULE]
    for k in range(4):
        rw.check(f"var{k}", rw[f"var{k}"] > 8, "is not a variable code (0..8)")
        rw.check(f"c{k}", (rw[f"var{k}"] == 0) & (rw[f"c{k}"] != 0),
                 "must be 0 in an empty factor slot (var = 0)")

    # Plastic synapses: within their group's range, and in at most one axon run.
    lgd = lg.dense(g.n_cores, g.n_groups)
    pl = lgd["plastic"] == 1
    syn = w[Region.SYNAPSE]
    sgroup = syn["group"]
    splastic = pl[syn.core, sgroup]
    lo, hi = sign_range(lgd["w_bits"][syn.core, sgroup], lgd["sign"][syn.core, sgroup])
    syn.check("w_mant", splastic & ((syn["w_mant"] < lo) | (syn["w_mant"] > hi)),
              "is outside the clamp range of its plastic group (precision w_bits, sign mode)")
    _check_plastic_overlap(g, w[Region.AXON], syn, splastic, pl[:, 0])
    return out


def _learn_fields(image: ChipImage) -> dict:
    """The fields of the LEARN region's five words, int64 ``[n_cores]`` each."""
    learn = {}
    words = image.memory(LearnRegion.LEARN)
    for w, layout in LEARN_WORD_LAYOUTS.items():
        reserved = layout.reserved_bits(words[:, w])
        if reserved.any():
            core = int(np.flatnonzero(reserved)[0])
            raise ImageError(f"core {core} LEARN word {int(w)} ({w.name}): reserved bits = "
                             f"0x{int(words[core, w]):016x} must be zero")
        learn.update(layout.unpack(words[:, w]))
    return learn


def _check_plastic_overlap(g, axon, syn, splastic, group0_plastic):
    """A plastic synapse may lie in the run of at most one axon. Runs are
    swept as intervals, so the cost follows the writes, not n_synapses; a
    synapse never written is in group 0 and plastic when group 0 is."""
    has = axon["syn_len"] > 0
    if not has.any():
        return
    lo = axon.core[has].astype(np.int64) * g.n_synapses
    lo += axon["syn_base"][has]
    hi = lo + axon["syn_len"][has]
    # Sweep: the coverage between consecutive run ends; keep the stretches > 1.
    points = np.concatenate([lo, hi])
    delta = np.concatenate([np.ones(lo.size, np.int64), -np.ones(hi.size, np.int64)])
    order = np.argsort(points, kind="stable")
    points, cover = points[order], np.cumsum(delta[order])
    seg = np.flatnonzero((cover > 1) & (np.diff(points, append=points[-1]) > 0))
    if not seg.size:
        return
    seg_lo, seg_hi = points[seg], points[seg + 1]
    key = syn.key(g.n_synapses)
    at = np.searchsorted(seg_lo, key, "right") - 1
    inside = (at >= 0) & (key < seg_hi[np.maximum(at, 0)])
    bad = splastic & inside
    count = int(np.count_nonzero(bad))
    first = int(key[bad][0]) if count else None
    # Never-written synapses in the stretches, on cores whose group 0 is plastic.
    written = np.searchsorted(key, seg_hi) - np.searchsorted(key, seg_lo)
    unwritten = (seg_hi - seg_lo) - written
    zero = group0_plastic[seg_lo // g.n_synapses] & (unwritten > 0)
    count += int(unwritten[zero].sum())
    for i in np.flatnonzero(zero):
        if first is not None and seg_lo[i] >= first:
            break
        taken = key[np.searchsorted(key, seg_lo[i]):np.searchsorted(key, seg_hi[i])]
        gap = np.flatnonzero(taken != seg_lo[i] + np.arange(taken.size))
        k = int(seg_lo[i] + (gap[0] if gap.size else taken.size))
        first = k if first is None else min(first, k)
        break
    if first is None:
        return
    where = np.searchsorted(key, first)
    group = int(syn["group"][where]) if where < key.size and key[where] == first else 0
    more = f" (and {count - 1} more words)" if count > 1 else ""
    raise ImageError(f"core {first // g.n_synapses} SYNAPSE word {first % g.n_synapses}: group = "
                     f"{group} is plastic, but the synapse lies in the runs of more than one "
                     f"axon{more}")


def _decode_learning(image: ChipImage, words, regions) -> dict:
    """Dense learning regions into ``regions``; returns the decoded rules."""
    from .learning import LearningRule, RuleError

    g = image.geometry
    regions[LearnRegion.LEARN] = _learn_fields(image)
    for region in LEARN_LAYOUTS:
        regions[region] = words[region].dense(g.n_cores, region_words(g, region, True))
    plastic = regions[LearnRegion.LGROUP]["plastic"] == 1
    lg = regions[LearnRegion.LGROUP]
    rule_words = image.memory(LearnRegion.RULE)
    rules = {}
    for core, group in zip(*np.nonzero(plastic)):
        base, n = int(lg["rule_base"][core, group]), int(lg["rule_len"][core, group])
        try:
            rules[int(core), int(group)] = LearningRule.decode(rule_words[core, base:base + n])
        except RuleError as e:   # pragma: no cover - the checks above catch every case
            raise ImageError(f"core {core} RULE words {base}..{base + n - 1}: {e}") from None
    return rules
