"""The handwritten-digits task of the demo: data split, spike encoding, decoding.

The data is scikit-learn's digits set (1797 images of 8x8 pixels, values
0..16, shipped inside scikit-learn, nothing downloaded). The training script
(``examples/train_digits.py``) and the demo both use this module, so the
model is trained on exactly the spike trains the chip is later fed, and the
encoder is plain numpy: the demo runs without torch.

Encoding ("regular" rate code): pixel ``p`` in ``0..max_value`` has rate
``r = p / max_value`` and spikes at step ``t`` iff
``floor((t + 1) * r) > floor(t * r)``, computed in integers as
``((t + 1) * p) // max_value > (t * p) // max_value``. The spikes are as
evenly spaced as the rate allows, the first one late rather than early (rate
1/2 spikes at steps 1, 3, 5, ...), and over ``steps`` steps a pixel spikes
``(steps * p) // max_value`` times: with the default 16 steps, exactly ``p``
times.

Decoding: the predicted class is the output neuron with the most spikes.

The trained model ships as a NIR file (:func:`model_path`), exported by
snnTorch; read it with :func:`neuromesh.compiler.nir_import.from_nir` and
:func:`model_options` (the ``"snntorch"`` preset with the reset the model
was trained with).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["MAX_VALUE", "STEPS", "N_INPUTS", "N_CLASSES", "model_path", "model_options",
           "load_split", "encode", "decode"]

#: Largest pixel value of the digits set.
MAX_VALUE = 16
#: Encoding length used by the shipped model (pixel value = spike count).
STEPS = 16
#: Pixels per image (8 x 8), the network's input channels.
N_INPUTS = 64
#: Digit classes, the network's output neurons.
N_CLASSES = 10


def model_path() -> Path:
    """Path of the shipped pretrained model, ``neuromesh/data/digits_cuba.nir``.

    Two layers of CubaLIF neurons (64 -> 128 -> 10) trained by
    ``examples/train_digits.py`` on :func:`encode` with :data:`STEPS` steps.
    """
    return Path(str(resources.files("neuromesh").joinpath("data", "digits_cuba.nir")))


def model_options():
    """The conventions the shipped model was trained with
    (``examples/train_digits.py``): snnTorch's preset, but with the subtract
    reset applied in the step of the spike (``reset_delay=False``, which the
    preset re-tests as snnTorch 1.0 does), not snnTorch's default delayed
    reset."""
    import dataclasses

    from .compiler.nir_import import FRAMEWORKS
    return dataclasses.replace(FRAMEWORKS["snntorch"], reset_delay=False)


def load_split():
    """The fixed train/test split of scikit-learn's digits set.

    ``train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)``,
    so the same on every machine: 1347 training and 450 test images.

    Returns
    -------
    x_train, x_test:
        ``int64 [n, 64]`` pixel values in ``0..16`` (rows of the 8x8 image).
    y_train, y_test:
        ``int64 [n]`` labels in ``0..9``.
    """
    # Imported here so that encoding and decoding work without scikit-learn.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data.astype(np.int64)          # stored as float64 holding integers
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y)
    return x_train, x_test, y_train, y_test


def encode(images, steps: int = STEPS, *, max_value: int = MAX_VALUE) -> np.ndarray:
    """Spike trains of images under the regular rate code (module docstring).

    Parameters
    ----------
    images:
        ``[batch, 64]`` or ``[batch, 8, 8]`` (any trailing shape; it is
        flattened) of integer pixel values in ``0..max_value``; float arrays
        holding integers, as scikit-learn returns them, are accepted.
    steps:
        Number of time steps, >= 1.
    max_value:
        The pixel value that spikes on every step.

    Returns
    -------
    ``bool [steps, batch, pixels]``.
    """
    a = np.asarray(images)
    if a.ndim < 1:
        raise ValueError("encode: images must have a batch dimension")
    if steps < 1 or max_value < 1:
        raise ValueError(f"encode: steps ({steps}) and max_value ({max_value}) must be >= 1")
    p = a.reshape(a.shape[0], -1)
    if not np.all(np.isfinite(p)) or np.any(p != np.round(p)):
        raise ValueError("encode: pixel values must be integers")
    p = p.astype(np.int64)
    if p.size and (p.min() < 0 or p.max() > max_value):
        raise ValueError(f"encode: pixel values must be in 0..{max_value}, "
                         f"got {p.min()}..{p.max()}")
    # Integer arithmetic, so the phase of every spike is exact on any machine
    # (a float (t + 1) * r could round across an integer).
    t = np.arange(steps, dtype=np.int64)[:, None, None]
    return ((t + 1) * p) // max_value > (t * p) // max_value


def decode(output_spikes, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Predicted classes from output spikes: the neuron that spiked most.

    Parameters
    ----------
    output_spikes:
        ``[steps, batch, classes]`` spikes (bool or 0/1).
    start, stop:
        Count the steps ``start .. stop - 1`` only. On the chip every layer
        after the first adds one step of latency, so the output of a network
        with ``L`` layers fed ``T`` input steps is read over ``L - 1 ..
        L - 2 + T`` (two layers: ``start=1, stop=T+1``).

    Returns
    -------
    ``int64 [batch]``. Ties go to the lowest class index (``numpy.argmax``),
    so an image with no output spike at all is classified as 0.
    """
    s = np.asarray(output_spikes)
    if s.ndim != 3:
        raise ValueError(f"decode: output spikes must be [steps, batch, classes], "
                         f"got shape {s.shape}")
    counts = s[start:stop].astype(np.int64).sum(axis=0)
    return np.argmax(counts, axis=-1).astype(np.int64)
