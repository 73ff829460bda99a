"""The digits demo on a board: the shipped classifier compiled for the board's
geometry, each test image run on the chip (or on anything with the
emulator's API), predictions decoded as in ``neuromesh demo``."""

from __future__ import annotations

import numpy as np

from neuromesh import digits

__all__ = ["compile_digits", "run_digits"]


def compile_digits(geometry: str):
    """Compile the shipped digits model for ``geometry`` (as the demo does)."""
    from neuromesh.demo import compile_demo
    return compile_demo(geometry)


def run_digits(backend, compiled, limit: int | None = None, progress=None) -> dict:
    """Classify the test split image by image on ``backend`` (a
    :class:`~neuromesh.boards.serial.BoardBackend` or an
    :class:`~neuromesh.emulator.Emulator` of ``compiled.image``), resetting
    it before each image. Returns accuracy, predictions and labels, and
    ``counters``: the backend's activity counters summed over the images
    (int64 ``[n_cores, 7]``, docs/architecture.md §13), ``None`` for a board
    built without them."""
    from neuromesh.counters import backend_counters
    net = compiled.network
    (port,) = net.host_inputs()
    (out,) = net.outputs
    _, x_test, _, y_test = digits.load_split()
    if limit is not None:
        x_test, y_test = x_test[:limit], y_test[:limit]
    first = compiled.output_channels[out]
    size = net.populations[out].size
    preds = []
    counters = 0
    for i in range(len(y_test)):
        s = compiled.padded({port: digits.encode(x_test[i:i + 1], digits.STEPS)[:, 0]})
        backend.reset()
        r = backend.run(compiled.chip_inputs(s)[:, :1])
        spikes = compiled.read_window(r.outputs[:, :1, first:first + size], out, digits.STEPS)
        preds.append(int(digits.decode(spikes)[0]))
        if counters is not None:      # since the reset: this image's
            c = backend_counters(backend)
            counters = None if c is None else counters + c[0].astype(np.int64)
        if progress:
            progress(i + 1, len(y_test))
    preds = np.array(preds)
    return {"accuracy": float((preds == y_test).mean()), "predictions": preds,
            "labels": y_test, "counters": counters if len(y_test) else None}
