"""Exact comparison of chip results with the emulator, naming the first
difference (step, core, neuron, field, both values)."""

import numpy as np

__all__ = ["first_divergence", "describe"]

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
