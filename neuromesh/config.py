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


def _fail(region: Region, field: str, mask: np.ndarray, values: np.ndarray, limit: str):
    core, offset = (int(i[0]) for i in np.nonzero(mask))
    count = int(mask.sum())
    more = f" (and {count - 1} more words)" if count > 1 else ""
    raise ImageError(
        f"core {core} {region.name} word {offset}: {field} = {int(values[core, offset])} "
        f"{limit}{more}")


def _unpack_region(image: ChipImage, region: Region, layout, fields: bool = True):
    """The field arrays of ``region``, reserved bits checked; a block of cores at
    a time, so the temporaries stay small next to a Loihi-scale region.
    ``fields=False``: check the reserved bits only."""
    words = image.memory(region)
    n_cores, size = words.shape
    compact = region in COMPACT_REGIONS
    out = None
    step = max(1, (1 << 22) // max(size, 1))
    for first in range(0, n_cores, step):
        rows = slice(first, first + step)
        reserved = layout.reserved_bits(words[rows])
        if reserved.any():
            mask = np.zeros(words.shape, bool)
            mask[rows] = reserved
            _fail(region, "reserved bits", mask, words.astype(object), "must be zero")
        if not fields:
            continue
        part = layout.unpack(words[rows], compact=compact)
        if out is None:
            out = {k: np.empty(words.shape, v.dtype) for k, v in part.items()}
        for k, v in part.items():
            out[k][rows] = v
    return out


def decode(image: ChipImage) -> ChipConfig:
    """Decode and check all memory regions of ``image``.

    Raises :class:`~neuromesh.image.ImageError` naming the core (index
    ``y * cols + x``), region, word, field, value and limit of the first
    violation.
    """
    return _decode(image, keep=True)


def check(image: ChipImage) -> None:
    """Every check of :func:`decode`, in the same order, without keeping the
    decoded fields: the regions that grow with the synapses are decoded one
    at a time and dropped (the builder's final check of a Loihi-scale image).
    """
    _decode(image, keep=False)


def _decode(image: ChipImage, keep: bool):
    g = image.geometry
    regions = {}
    deferred = set()
    for region, layout in LAYOUTS.items():
        later = not keep and region in COMPACT_REGIONS and not image.learning
        regions[region] = _unpack_region(image, region, layout, fields=not later)
        if later:
            deferred.add(region)
    regions[Region.ACCUM]["value"] = regions[Region.ACCUM]["value"].reshape(
        g.n_cores, g.delay_slots, g.n_neurons)

    def fields(region):
        if region in deferred:
            regions[region] = _unpack_region(image, region, LAYOUTS[region])
        return regions[region]

    def done(region, *needed):
        if region in deferred:
            regions[region] = {k: regions[region][k] for k in needed}

    def require(region, field, bad, limit):
        if bad.any():
            _fail(region, field, bad, regions[region][field], limit)

    p = regions[Region.PROFILE]
    require(Region.PROFILE, "du", p["du"] > DECAY_ONE, f"> {DECAY_ONE}")
    require(Region.PROFILE, "dv", p["dv"] > DECAY_ONE, f"> {DECAY_ONE}")
    n = regions[Region.NEURON]
    require(Region.NEURON, "profile", n["profile"] >= g.n_profiles,
          f">= n_profiles {g.n_profiles}")
    require(Region.NEURON, "fanout_len", n["fanout_base"] + n["fanout_len"] > g.n_fanout,
          f"(from fanout_base) runs past n_fanout {g.n_fanout}")
    a = fields(Region.AXON)
    require(Region.AXON, "syn_len", a["syn_base"] + a["syn_len"] > g.n_synapses,
          f"(from syn_base) runs past n_synapses {g.n_synapses}")
    del a
    done(Region.AXON)
    s = fields(Region.SYNAPSE)
    require(Region.SYNAPSE, "target", s["target"] >= g.n_neurons,
          f">= n_neurons {g.n_neurons}")
    require(Region.SYNAPSE, "delay", s["delay"] > g.max_delay,
          f"> max delay {g.max_delay} (delay_slots - 2)")
    require(Region.SYNAPSE, "group", s["group"] >= g.n_groups, f">= n_groups {g.n_groups}")
    del s
    done(Region.SYNAPSE)
    f = fields(Region.FANOUT)
    host = f["to_host"] == 1
    require(Region.FANOUT, "x", ~host & (f["x"] >= g.cols), f">= cols {g.cols}")
    require(Region.FANOUT, "y", ~host & (f["y"] >= g.rows), f">= rows {g.rows}")
    require(Region.FANOUT, "axon", ~host & (f["axon"] >= g.n_axons),
          f">= n_axons {g.n_axons}")
    require(Region.FANOUT, "channel", ~host & (f["channel"] != 0),
          "must be 0 in a core-bound entry")
    for name in ("axon", "x", "y"):
        require(Region.FANOUT, name, host & (f[name] != 0), "must be 0 in a host-bound entry")
    require(Region.FANOUT, "channel", host & (f["channel"] >= image.n_outputs),
          f">= n_outputs {image.n_outputs}")
    del f, host
    done(Region.FANOUT, "to_host", "channel")
    _check_unique_channels(image, regions)
    rules = _decode_learning(image, regions) if image.learning else {}
    return ChipConfig(image, regions, rules) if keep else None


def _check_unique_channels(image: ChipImage, regions):
    """Each host output channel must be fed by at most one neuron."""
    n = regions[Region.NEURON]
    f = regions[Region.FANOUT]
    core, neuron = np.nonzero(n["fanout_len"] > 0)
    if core.size == 0:
        return
    lens = n["fanout_len"][core, neuron]
    entry = np.repeat(n["fanout_base"][core, neuron] - np.cumsum(lens) + lens, lens) \
        + np.arange(lens.sum())
    ecore = np.repeat(core, lens)
    host = f["to_host"][ecore, entry] == 1
    channels = f["channel"][ecore[host], entry[host]]
    uniq, counts = np.unique(channels, return_counts=True)
    if (counts > 1).any():
        ch = int(uniq[counts > 1][0])
        refs = np.flatnonzero(host)[channels == ch]
        eneuron = np.repeat(neuron, lens)
        src = [f"core {int(ecore[i])} neuron {int(eneuron[i])}" for i in refs[:2]]
        raise ImageError(f"output channel {ch} is fed by {refs.size} fan-out references "
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


def _decode_learning(image: ChipImage, regions) -> dict:
    from .learning import LearningRule, RuleError

    g = image.geometry
    learn = {}
    words = image.memory(LearnRegion.LEARN)
    for w, layout in LEARN_WORD_LAYOUTS.items():
        reserved = layout.reserved_bits(words[:, w])
        if reserved.any():
            core = int(np.flatnonzero(reserved)[0])
            raise ImageError(f"core {core} LEARN word {int(w)} ({w.name}): reserved bits = "
                             f"0x{int(words[core, w]):016x} must be zero")
        learn.update(layout.unpack(words[:, w]))
    regions[LearnRegion.LEARN] = learn
    for region, layout in LEARN_LAYOUTS.items():
        words = image.memory(region)
        reserved = layout.reserved_bits(words)
        if reserved.any():
            _fail(region, "reserved bits", reserved, words.astype(object), "must be zero")
        regions[region] = layout.unpack(words)

    def learn_fail(bad, word, field, limit):
        if bad.any():
            core = int(np.flatnonzero(bad)[0])
            raise ImageError(f"core {core} LEARN word {int(word)} ({word.name}): {field} = "
                             f"{int(learn[field][core])} {limit}")

    def check(region, field, bad, limit):
        if bad.any():
            _fail(region, field, bad, regions[region][field], limit)

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

    lg = regions[LearnRegion.LGROUP]
    plastic = lg["plastic"] == 1
    for name in ("sign", "w_bits", "rule_base", "rule_len"):
        check(LearnRegion.LGROUP, name, ~plastic & (lg[name] != 0),
              "must be 0 in a non-plastic group")
    check(LearnRegion.LGROUP, "w_bits", plastic & ((lg["w_bits"] < W_BITS_MIN)
                                                   | (lg["w_bits"] > W_BITS_MAX)),
          f"is outside [{W_BITS_MIN}, {W_BITS_MAX}]")
    check(LearnRegion.LGROUP, "sign", plastic & (lg["sign"] > 2),
          "is not a sign mode (0 mixed, 1 excitatory, 2 inhibitory)")
    check(LearnRegion.LGROUP, "rule_len", plastic & (lg["rule_len"] > MAX_PRODUCTS),
          f"> MAX_PRODUCTS {MAX_PRODUCTS}")
    check(LearnRegion.LGROUP, "rule_len", plastic & (lg["rule_base"] + lg["rule_len"]
                                                     > RULE_WORDS),
          f"(from rule_base) runs past the {RULE_WORDS} RULE words")

    rule_words = image.memory(LearnRegion.RULE)
    rw = regions[LearnRegion.RULE]
    for k in range(4):
        check(LearnRegion.RULE, f"var{k}", rw[f"var{k}"] > 8, "is not a variable code (0..8)")
        check(LearnRegion.RULE, f"c{k}", (rw[f"var{k}"] == 0) & (rw[f"c{k}"] != 0),
              "must be 0 in an empty factor slot (var = 0)")
    rules = {}
    for core, group in zip(*np.nonzero(plastic)):
        base, n = int(lg["rule_base"][core, group]), int(lg["rule_len"][core, group])
        try:
            rules[int(core), int(group)] = LearningRule.decode(rule_words[core, base:base + n])
        except RuleError as e:   # pragma: no cover - the checks above catch every case
            raise ImageError(f"core {core} RULE words {base}..{base + n - 1}: {e}") from None

    # Plastic synapses: within their group's range, and in at most one axon run.
    syn = regions[Region.SYNAPSE]
    cores = np.arange(g.n_cores)[:, None]
    splastic = plastic[cores, syn["group"]]
    lo, hi = sign_range(lg["w_bits"][cores, syn["group"]], lg["sign"][cores, syn["group"]])
    check(Region.SYNAPSE, "w_mant", splastic & ((syn["w_mant"] < lo) | (syn["w_mant"] > hi)),
          "is outside the clamp range of its plastic group (precision w_bits, sign mode)")
    ax = regions[Region.AXON]
    refs = np.zeros((g.n_cores, g.n_synapses + 1), dtype=np.int64)
    np.add.at(refs, (cores, ax["syn_base"]), 1)
    np.add.at(refs, (cores, ax["syn_base"] + ax["syn_len"]), -1)
    refs = np.cumsum(refs, axis=1)[:, :g.n_synapses]
    check(Region.SYNAPSE, "group", splastic & (refs > 1),
          "is plastic, but the synapse lies in the runs of more than one axon")
    return rules
