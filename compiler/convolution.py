"""Convolutions and pooling as explicit synapse lists.

The chip has no weight sharing: a convolution is stored as the sparse
connectivity it implies, one synapse per (input pixel, output pixel, kernel
tap) that falls inside the input. These functions produce that list as
parallel arrays ``(pre, post, weight)`` over the flattened (channel-major,
row-major: PyTorch and NIR order) input and output, plus the output shape.

Conventions follow PyTorch, which NIR copies: ``weight`` is ``[C_out,
C_in / groups, kH, kW]``; ``padding`` is zeros around the input (a number,
a pair, or ``"same"``/``"valid"``; ``"same"`` pads ``dilation * (k - 1)``
in total, the smaller half before the input); the output size along an
axis is ``floor((n + pad_before + pad_after - dilation * (k - 1) - 1) /
stride) + 1``. Average pooling counts padded zeros in its divisor (PyTorch's
``count_include_pad=True``).
"""

from __future__ import annotations

import numpy as np

from .network import NetworkError

__all__ = ["conv2d_synapses", "conv1d_synapses", "pool2d_synapses", "conv_output_size"]


def _pair(value, what, where) -> tuple[int, int]:
    a = np.asarray(value).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2 or not np.all(a == np.round(a)):
        raise NetworkError(f"{where}: {what} {value!r} is not an integer or a pair of integers")
    return int(a[0]), int(a[1])


def _padding(padding, kernel, dilation, stride, where) -> tuple[tuple[int, int], ...]:
    """``((before_y, after_y), (before_x, after_x))`` for a padding spec."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise NetworkError(f"{where}: padding 'same' needs stride 1, got {stride}")
            total = [d * (k - 1) for d, k in zip(dilation, kernel)]
            return tuple((t // 2, t - t // 2) for t in total)
        raise NetworkError(f"{where}: padding {padding!r} is not a number, a pair, "
                           f"'same' or 'valid'")
    p = _pair(padding, "padding", where)
    if min(p) < 0:
        raise NetworkError(f"{where}: negative padding {p}")
    return ((p[0], p[0]), (p[1], p[1]))


def conv_output_size(n: int, k: int, stride: int, pad: tuple[int, int], dilation: int) -> int:
    """Output length of one axis (PyTorch's formula)."""
    return (n + pad[0] + pad[1] - dilation * (k - 1) - 1) // stride + 1


def conv2d_synapses(input_shape, weight, *, stride=1, padding=0, dilation=1, groups=1,
                    name="conv2d"):
    """Synapses of a 2-D convolution of an input ``(C_in, H, W)``.

    Returns ``(pre, post, weight, output_shape)``; taps with weight 0 and
    taps that land on padding are left out.
    """
    where = f"convolution {name!r}"
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 4:
        raise NetworkError(f"{where}: weight has shape {w.shape}, expected "
                           f"[C_out, C_in/groups, kH, kW]")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise NetworkError(f"{where}: input shape {shape} is not (channels, height, width)")
    c_in, h, wd = shape
    c_out, c_per, kh, kw = w.shape
    if groups < 1 or c_in % groups or c_out % groups or c_per != c_in // groups:
        raise NetworkError(f"{where}: {c_in} input and {c_out} output channels do not split "
                           f"into {groups} groups of a [{c_out}, {c_per}, ...] kernel")
    s = _pair(stride, "stride", where)
    d = _pair(dilation, "dilation", where)
    if min(s) < 1 or min(d) < 1:
        raise NetworkError(f"{where}: stride {s} and dilation {d} must be >= 1")
    pad = _padding(padding, (kh, kw), d, s, where)
    oh = conv_output_size(h, kh, s[0], pad[0], d[0])
    ow = conv_output_size(wd, kw, s[1], pad[1], d[1])
    if oh < 1 or ow < 1:
        raise NetworkError(f"{where}: a {kh}x{kw} kernel does not fit the {h}x{wd} input")
    # Every (output channel, input channel of its group, tap, output pixel).
    co, ci, ky, kx, oy, ox = np.meshgrid(np.arange(c_out), np.arange(c_per), np.arange(kh),
                                         np.arange(kw), np.arange(oh), np.arange(ow),
                                         indexing="ij", sparse=False)
    iy = oy * s[0] - pad[0][0] + ky * d[0]
    ix = ox * s[1] - pad[1][0] + kx * d[1]
    cin = (co // (c_out // groups)) * c_per + ci
    tap = w[co, ci, ky, kx]
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd) & (tap != 0)
    pre = (cin[ok] * h + iy[ok]) * wd + ix[ok]
    post = (co[ok] * oh + oy[ok]) * ow + ox[ok]
    return pre.astype(np.int64), post.astype(np.int64), tap[ok], (c_out, oh, ow)


def conv1d_synapses(input_shape, weight, *, stride=1, padding=0, dilation=1, groups=1,
                    name="conv1d"):
    """Synapses of a 1-D convolution of an input ``(C_in, L)``; see
    :func:`conv2d_synapses`. Returns ``(pre, post, weight, (C_out, L_out))``."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 3:
        raise NetworkError(f"convolution {name!r}: weight has shape {w.shape}, expected "
                           f"[C_out, C_in/groups, k]")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 2:
        raise NetworkError(f"convolution {name!r}: input shape {shape} is not (channels, length)")
    if isinstance(padding, str):
        pad2 = padding
    else:
        pad2 = (0, int(np.asarray(padding).reshape(-1)[0]))
    pre, post, tap, (c, _, n) = conv2d_synapses(
        (shape[0], 1, shape[1]), w[:, :, None, :], stride=(1, int(np.asarray(stride).flat[0])),
        padding=pad2, dilation=(1, int(np.asarray(dilation).flat[0])), groups=groups, name=name)
    return pre, post, tap, (c, n)


def pool2d_synapses(input_shape, kernel_size, *, stride=None, padding=0, mode="sum",
                    name="pool2d"):
    """Synapses of sum or average pooling of an input ``(C, H, W)``, channel
    by channel. ``stride`` defaults to the kernel size. Returns ``(pre,
    post, weight, output_shape)``."""
    if mode not in ("sum", "avg"):
        raise NetworkError(f"pooling {name!r}: mode {mode!r} is not 'sum' or 'avg'")
    k = _pair(kernel_size, "kernel size", f"pooling {name!r}")
    c = int(input_shape[0])
    tap = 1.0 if mode == "sum" else 1.0 / (k[0] * k[1])
    w = np.zeros((c, 1, *k))
    w[...] = tap
    return conv2d_synapses(input_shape, w, stride=k if stride is None else stride,
                           padding=padding, groups=c, name=name)
