"""Exact comparison of chip results with the emulator, naming the first
difference (step, core, neuron, field, both values)."""

import numpy as np

__all__ = ["first_divergence", "describe", "lockstep"]

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


def describe(d) -> str:
    """One line for a divergence dict."""
    if d is None:
        return "identical"
    where = ", ".join(f"{k} {d[k]}" for k in ("case", "core", "x", "y", "slot", "neuron",
                                              "channel") if k in d and d[k] is not None)
    return (f"first divergence at step {d['step']}: {d['field']} ({where}): "
            f"chip {d['chip']}, emulator {d['emulator']}")


async def lockstep(driver, image, inputs, steps):
    """Load ``image`` through ``driver`` (a :class:`~neuromesh.host.HostDriver`
    on any simulator), then run it and the emulator side by side, comparing
    outputs and the full read-back state after every step.

    Returns ``(steps run, first divergence or None)``.
    """
    from neuromesh.emulator import Emulator
    emu = Emulator(image)
    await driver.load_image(image)
    for t in range(steps):
        chip_out = await driver.run_inputs(image, inputs[t:t + 1])
        r = emu.run(inputs[t:t + 1])
        chip_state = await driver.read_state(image.geometry)
        bad = first_divergence(t, chip_out[0], r.outputs[0, 0], chip_state,
                               emu.read_state(), image.geometry)
        if bad:
            return t + 1, bad
    return steps, None
