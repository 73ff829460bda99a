"""Labelled spike data sets for evaluations and sweeps.

A :class:`DataSet` holds spikes in the *model's* time (one input port,
``[steps, batch, size]``) and one label per sample. :func:`digits_test_set`
is the demo's: scikit-learn's digits test split under the regular rate code
(:mod:`neuromesh.digits`), optionally repeated to make a large batch.
:func:`chip_spikes` turns a data set into a chip image's host input, with the
silent steps the chip needs to finish (it runs ``latency`` steps behind the
model, docs/compiler.md).

``python -m neuromesh.cluster.datasets IMAGE -o DATA.npz [--repeat N]``
writes the digits test split for a compiled digits image as the input (and
labels) of ``neuromesh eval``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuromesh.chip import ChipError

__all__ = ["DataSet", "digits_test_set", "load_dataset", "chip_spikes", "image_channels",
           "main"]


@dataclass
class DataSet:
    """Spikes ``bool [steps, batch, size]`` of one input port, ``labels``
    ``int64 [batch]`` and a ``name`` for reports."""

    spikes: np.ndarray
    labels: np.ndarray
    name: str

    @property
    def samples(self) -> int:
        return self.spikes.shape[1]

    @property
    def steps(self) -> int:
        return self.spikes.shape[0]


def digits_test_set(limit: int | None = None, repeat: int = 1) -> DataSet:
    """scikit-learn's digits test split (450 images, :data:`~neuromesh.digits.STEPS`
    steps), the first ``limit`` images, the whole repeated ``repeat`` times."""
    from neuromesh import digits
    if repeat < 1:
        raise ChipError(f"repeat = {repeat}: must be at least 1")
    _, x_test, _, y_test = digits.load_split()
    if limit is not None:
        x_test, y_test = x_test[:limit], y_test[:limit]
    spikes = digits.encode(x_test, digits.STEPS)
    name = f"scikit-learn digits test split, {len(y_test)} images"
    name += f" x {repeat}" if repeat > 1 else ""
    return DataSet(np.tile(spikes, (1, repeat, 1)), np.tile(y_test, repeat), name)


def load_dataset(path) -> DataSet:
    """A data set from an npz with ``spikes`` 0/1 ``[steps, batch, size]``
    and ``labels`` ``[batch]``."""
    with np.load(path) as f:
        missing = [k for k in ("spikes", "labels") if k not in f]
        if missing:
            raise ChipError(f"{path}: no array named {', '.join(map(repr, missing))} "
                            f"(found {', '.join(f.files) or 'none'})")
        spikes, labels = f["spikes"], f["labels"]
    if spikes.ndim != 3:
        raise ChipError(f"{path}: spikes have shape {spikes.shape}; need "
                        f"[steps, batch, inputs]")
    if labels.shape != (spikes.shape[1],):
        raise ChipError(f"{path}: labels have shape {labels.shape}; need one per sample "
                        f"({spikes.shape[1]},)")
    if spikes.dtype != np.bool_:
        bad = (spikes != 0) & (spikes != 1)
        if bad.any():
            t, b, c = (int(i[0]) for i in np.nonzero(bad))
            raise ChipError(f"{path}: spikes[{t}, {b}, {c}] = {spikes[t, b, c].item()!r}: "
                            f"a spike input must be 0 or 1")
        spikes = spikes.astype(bool)
    return DataSet(spikes, labels.astype(np.int64), Path(path).name)


def chip_spikes(spikes: np.ndarray, n_inputs: int, first: int = 0, lag: int = 0) -> np.ndarray:
    """Model-time spikes ``[steps, batch, size]`` as a chip's host input
    ``bool [steps + lag, batch, n_inputs]``: channels ``first ..``, then
    ``lag`` silent steps."""
    steps, batch, size = spikes.shape
    if first + size > n_inputs:
        raise ChipError(f"{size} input channels from {first} do not fit the image's "
                        f"{n_inputs} host inputs")
    x = np.zeros((steps + lag, batch, n_inputs), dtype=bool)
    x[:steps, :, first:first + size] = spikes
    return x


def image_channels(image) -> tuple[int, int]:
    """(first input channel, latency of the output) of a compiled image with
    one input port, from its compiler record."""
    from .evaluate import output_window
    rec = image.meta.get("compiler") or {}
    ports = rec.get("input_channels") or {"input": 0}
    if len(ports) != 1:
        raise ChipError(f"the image has {len(ports)} input ports ({', '.join(ports)}); "
                        f"the data set feeds one")
    return int(next(iter(ports.values()))), output_window(image)


def main(argv=None) -> int:
    """Write the digits test split as ``neuromesh eval`` input for an image."""
    from neuromesh import digits
    from neuromesh.cli import _Parser
    from neuromesh.files import check_output_path
    from neuromesh.image import load

    from .output import save_npz
    p = _Parser(
        prog="python -m neuromesh.cluster.datasets",
        description="Write scikit-learn's digits test split, rate-coded as the demo does, as "
                    "the input of a compiled digits image (an npz with 'spikes' [steps, batch, "
                    "n_inputs] and 'labels' [batch]), for `neuromesh eval`.")
    p.add_argument("image", help="the compiled digits model (.nmi)")
    p.add_argument("-o", "--output", required=True, metavar="NPZ", help="file to write")
    p.add_argument("--repeat", type=int, default=1,
                   help="repeat the 450 images this many times (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        check_output_path(args.output, "-o/--output")
        image = load(args.image)
        first, lag = image_channels(image)
        data = digits_test_set(repeat=args.repeat)
        if data.spikes.shape[2] != digits.N_INPUTS or image.n_inputs < digits.N_INPUTS:
            raise ChipError(f"{args.image}: {image.n_inputs} host inputs; the digits need "
                            f"{digits.N_INPUTS}")
        x = chip_spikes(data.spikes, image.n_inputs, first, lag)
        save_npz(args.output, spikes=x, labels=data.labels)
    except (ChipError, OSError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: spikes {list(x.shape)}, labels [{data.samples}] "
          f"({data.name}; outputs count from step {lag})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
