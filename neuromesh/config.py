"""Decoding a chip image into per-field arrays, with every content check.

:func:`decode` turns the memory writes of a :class:`~neuromesh.image.ChipImage`
into one int64 array per word field, shaped ``[n_cores, region size]`` (cores
indexed ``y * cols + x``), and rejects any word that breaks the spec. The
emulator is built from this; the compiler and reports read it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chip import DECAY_ONE, LAYOUTS, Geometry, Region
from .image import ChipImage, ImageError

__all__ = ["ChipConfig", "decode"]


@dataclass
class ChipConfig:
    """Field arrays of every memory region of a chip.

    ``regions[Region.X][field]`` is an int64 array ``[n_cores, size]``; the
    accumulator ring is reshaped to ``[n_cores, delay_slots, n_neurons]``.
    """

    image: ChipImage
    regions: dict

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


def decode(image: ChipImage) -> ChipConfig:
    """Decode and check all memory regions of ``image``.

    Raises :class:`~neuromesh.image.ImageError` naming the core (index
    ``y * cols + x``), region, word, field, value and limit of the first
    violation.
    """
    g = image.geometry
    regions = {}
    for region, layout in LAYOUTS.items():
        words = image.memory(region)
        reserved = layout.reserved_bits(words)
        if reserved.any():
            _fail(region, "reserved bits", reserved, words.astype(object),
                  "must be zero")
        regions[region] = layout.unpack(words)
    regions[Region.ACCUM]["value"] = regions[Region.ACCUM]["value"].reshape(
        g.n_cores, g.delay_slots, g.n_neurons)

    def check(region, field, bad, limit):
        if bad.any():
            _fail(region, field, bad, regions[region][field], limit)

    p = regions[Region.PROFILE]
    check(Region.PROFILE, "du", p["du"] > DECAY_ONE, f"> {DECAY_ONE}")
    check(Region.PROFILE, "dv", p["dv"] > DECAY_ONE, f"> {DECAY_ONE}")
    n = regions[Region.NEURON]
    check(Region.NEURON, "profile", n["profile"] >= g.n_profiles,
          f">= n_profiles {g.n_profiles}")
    check(Region.NEURON, "fanout_len", n["fanout_base"] + n["fanout_len"] > g.n_fanout,
          f"(from fanout_base) runs past n_fanout {g.n_fanout}")
    a = regions[Region.AXON]
    check(Region.AXON, "syn_len", a["syn_base"] + a["syn_len"] > g.n_synapses,
          f"(from syn_base) runs past n_synapses {g.n_synapses}")
    s = regions[Region.SYNAPSE]
    check(Region.SYNAPSE, "target", s["target"] >= g.n_neurons,
          f">= n_neurons {g.n_neurons}")
    check(Region.SYNAPSE, "delay", s["delay"] > g.max_delay,
          f"> max delay {g.max_delay} (delay_slots - 2)")
    check(Region.SYNAPSE, "group", s["group"] >= g.n_groups, f">= n_groups {g.n_groups}")
    f = regions[Region.FANOUT]
    host = f["to_host"] == 1
    check(Region.FANOUT, "x", ~host & (f["x"] >= g.cols), f">= cols {g.cols}")
    check(Region.FANOUT, "y", ~host & (f["y"] >= g.rows), f">= rows {g.rows}")
    check(Region.FANOUT, "axon", ~host & (f["axon"] >= g.n_axons),
          f">= n_axons {g.n_axons}")
    check(Region.FANOUT, "channel", ~host & (f["channel"] != 0),
          "must be 0 in a core-bound entry")
    for name in ("axon", "x", "y"):
        check(Region.FANOUT, name, host & (f[name] != 0), "must be 0 in a host-bound entry")
    check(Region.FANOUT, "channel", host & (f["channel"] >= image.n_outputs),
          f">= n_outputs {image.n_outputs}")
    _check_unique_channels(image, regions)
    return ChipConfig(image, regions)


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
