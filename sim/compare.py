"""Exact comparison of chip results with the emulator, naming the first
difference (step, core, neuron, field, both values)."""

import numpy as np

__all__ = ["first_divergence", "learning_divergence", "counter_divergence", "read_learning",
           "write_reward", "describe", "lockstep"]

STATE_FIELDS = ("u", "v", "refractory", "accum")


def first_divergence(step, chip_outputs, emu_outputs, chip_state, emu_state, geometry):
    """``None`` if the step's outputs and the full state agree, else a dict.

    ``chip_state`` holds ``[n_cores, ...]`` arrays (one chip), ``emu_state``
    is :meth:`~neuromesh.emulator.Emulator.read_state` (batch row 0 is used).
    """
    chip_outputs = np.asarray(chip_outputs, bool)
    emu_outputs = np.asarray(emu_outputs, bool)
    if not np.array_equal(chip_outputs, emu_outputs):
        ch = int(np.flatnonzero(chip_outputs != emu_outputs)[0])
        return {"step": step, "field": "output", "channel": ch,
                "chip": bool(chip_outputs[ch]), "emulator": bool(emu_outputs[ch])}
    for name in STATE_FIELDS:
        a, b = np.asarray(chip_state[name]), np.asarray(emu_state[name][0])
        if not np.array_equal(a, b):
            idx = tuple(int(i[0]) for i in np.nonzero(a != b))
            core = idx[0]
            where = {"core": core, "x": core % geometry.cols, "y": core // geometry.cols,
                     "neuron": idx[-1]}
            if name == "accum":
                where["slot"] = idx[1]
            return {"step": step, "field": name, **where,
                    "chip": int(a[idx]), "emulator": int(b[idx])}
    return None


async def read_learning(driver, geometry, regions) -> dict:
    """READ the words of ``regions`` (SYNAPSE and learning regions 8..13) of
    every core: uint64 ``[n_cores, size]`` per region."""
    from neuromesh.chip import pack_address
    g = geometry
    out = {}
    for region, size in regions.items():
        rows = []
        for k in range(g.n_cores):
            core = (k // g.cols) << 4 | (k % g.cols)
            rows.append(await driver.read(int(pack_address(core, region, 0)), size))
        out[region] = np.stack(rows)
    return out


def learning_divergence(step, chip_words, emu_words, geometry):
    """``None`` if the learning state words (:func:`read_learning`) equal
    :meth:`~neuromesh.emulator.Emulator.learning_words` (batch row 0), else a
    dict naming region, core, word and both values."""
    from neuromesh.chip import region_name
    for region, want in emu_words.items():
        a, b = np.asarray(chip_words[region], np.uint64), np.asarray(want[0], np.uint64)
        if not np.array_equal(a, b):
            core, word = (int(i[0]) for i in np.nonzero(a != b))
            return {"step": step, "field": f"{region_name(int(region))} word", "core": core,
                    "x": core % geometry.cols, "y": core // geometry.cols, "word": word,
                    "chip": hex(int(a[core, word])), "emulator": hex(int(b[core, word]))}
    return None


def counter_divergence(step, chip_counts, emu_counts, geometry):
    """``None`` if the chip's activity counters (uint32 ``[n_cores,
    len(Counter)]``, :meth:`~neuromesh.host.HostDriver.read_counters`) equal
    :meth:`~neuromesh.emulator.Emulator.counters` (batch row 0), else a dict
    naming the counter, the core and both values."""
    from neuromesh.chip import Counter
    a, b = np.asarray(chip_counts, np.uint32), np.asarray(emu_counts[0], np.uint32)
    if np.array_equal(a, b):
        return None
    core, word = (int(i[0]) for i in np.nonzero(a != b))
    return {"step": step, "field": f"counter {Counter(word).name}", "core": core,
            "x": core % geometry.cols, "y": core // geometry.cols,
            "chip": int(a[core, word]), "emulator": int(b[core, word])}


def describe(d) -> str:
    """One line for a divergence dict."""
    if d is None:
        return "identical"
    where = ", ".join(f"{k} {d[k]}" for k in ("case", "core", "x", "y", "slot", "neuron",
                                              "word", "channel")
                      if k in d and d[k] is not None)
    return (f"first divergence at step {d['step']}: {d['field']} ({where}): "
            f"chip {d['chip']}, emulator {d['emulator']}")


async def write_reward(driver, geometry, rewards):
    """The host's reward write (§11.4): LSTATE.reward of core ``k`` :=
    ``rewards[k]``, keeping the core's ``epoch_phase`` (read first)."""
    from neuromesh.chip import LEARN_WORD_LAYOUTS, LearnRegion, LearnWord, pack_address
    g = geometry
    lstate = LEARN_WORD_LAYOUTS[LearnWord.LSTATE]
    for k in range(g.n_cores):
        core = (k // g.cols) << 4 | (k % g.cols)
        a = int(pack_address(core, LearnRegion.LEARN, LearnWord.LSTATE))
        phase = int(lstate.unpack(await driver.read(a, 1))["epoch_phase"][0])
        await driver.write(a, lstate.pack(reward=[int(rewards[k])], epoch_phase=[phase]))


async def lockstep(driver, image, inputs, steps, rewards=None, counters=None):
    """Load ``image`` through ``driver`` (a :class:`~neuromesh.host.HostDriver`
    on any simulator), then run it and the emulator side by side, comparing
    outputs and the full read-back state after every step. For a learning
    image (§11) the state includes every word of SYNAPSE and of regions 8..13
    (learned weights, tags, traces, LEARN registers, LGROUP, RULE), compared
    with :meth:`~neuromesh.emulator.Emulator.learning_words`; the chip must be
    a learning build (``Chip(..., learning=True)``). ``rewards``: ``{step:
    [reward per core]}``, written by the host (:func:`write_reward`) and by
    ``Emulator.set_reward`` before that step. ``counters``: also compare
    the activity counters (§13) with :meth:`~neuromesh.emulator.Emulator.counters`
    after every step; ``None`` (default): if the chip has them (a build with
    ``Chip(..., counters=True)``, as the co-simulation's).

    Returns ``(steps run, first divergence or None)``.
    """
    from neuromesh.emulator import Emulator
    emu = Emulator(image)
    await driver.load_image(image)
    if counters is None:
        counters = await has_counters(driver, image.geometry)
    rewards = {int(t): r for t, r in (rewards or {}).items()}
    for t in range(steps):
        if t in rewards:
            await write_reward(driver, image.geometry, rewards[t])
            emu.set_reward(np.asarray(rewards[t]))
        chip_out = await driver.run_inputs(image, inputs[t:t + 1])
        r = emu.run(inputs[t:t + 1])
        chip_state = await driver.read_state(image.geometry)
        bad = first_divergence(t, chip_out[0], r.outputs[0, 0], chip_state,
                               emu.read_state(), image.geometry)
        if bad is None and emu.learning:
            want = emu.learning_words()
            got = await read_learning(driver, image.geometry,
                                      {region: w.shape[-1] for region, w in want.items()})
            bad = learning_divergence(t, got, want, image.geometry)
        if bad is None and counters:
            bad = counter_divergence(t, await driver.read_counters(image.geometry),
                                     emu.counters(), image.geometry)
        if bad:
            return t + 1, bad
    return steps, None


async def has_counters(driver, geometry) -> bool:
    """The chip behind ``driver`` was built with activity counters (a READ of
    region COUNTERS of core 0 is answered)."""
    from neuromesh.host import CountersUnavailableError
    try:
        await driver.read_counters(geometry)
    except CountersUnavailableError:
        return False
    return True
