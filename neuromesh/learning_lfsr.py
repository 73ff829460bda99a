"""The learning engine's per-core random source: a 32-bit Galois LFSR.

One *step* shifts the register right by one bit and, if the bit shifted out
was 1, XORs :data:`~neuromesh.chip.LFSR_POLY` into it. A *draw* is
:data:`~neuromesh.chip.LFSR_STEPS_PER_DRAW` steps; its value is the low bits
of the new state (docs/architecture.md §11.5). :func:`draw` is the plain
reference; :func:`sequence` produces many consecutive draws of many registers
at once with numpy (every step is linear over GF(2), so ``k`` draws are one
32x32 bit matrix, applied with four byte tables).
"""

from __future__ import annotations

import numpy as np

from .chip import LFSR_BITS, LFSR_POLY, LFSR_STEPS_PER_DRAW

__all__ = ["step", "draw", "sequence", "advance"]

_MASK = (1 << LFSR_BITS) - 1


def step(state: int) -> int:
    """One LFSR step of a 32-bit state."""
    out = state & 1
    state >>= 1
    return state ^ LFSR_POLY if out else state


def draw(state: int, bits: int) -> tuple[int, int]:
    """One draw: ``(new state, low `bits` bits of the new state)``."""
    for _ in range(LFSR_STEPS_PER_DRAW):
        state = step(state)
    return state, state & ((1 << bits) - 1)


# --- linear algebra over GF(2) ---------------------------------------------------
# A linear map of 32-bit vectors is stored as the images of the 32 unit
# vectors (its columns).

def _apply_cols(cols, x: int) -> int:
    y = 0
    for j in range(LFSR_BITS):
        if x >> j & 1:
            y ^= cols[j]
    return y


def _compose(a, b):
    """Columns of ``a o b`` (apply ``b`` first)."""
    return [_apply_cols(a, c) for c in b]


_STEP = [step(1 << j) for j in range(LFSR_BITS)]
_DRAW = [1 << j for j in range(LFSR_BITS)]
for _ in range(LFSR_STEPS_PER_DRAW):
    _DRAW = _compose(_STEP, _DRAW)


def _tables(cols) -> np.ndarray:
    """Four 256-entry tables: the map applied to each byte position."""
    t = np.zeros((4, 256), dtype=np.uint64)
    for k in range(4):
        for b in range(256):
            t[k, b] = _apply_cols(cols, b << (8 * k))
    return t


# _POW[i]: tables of the map "2^i draws".
_POW = [_tables(_DRAW)]
_POW_COLS = [_DRAW]


def _pow_tables(i: int) -> np.ndarray:
    while len(_POW) <= i:
        _POW_COLS.append(_compose(_POW_COLS[-1], _POW_COLS[-1]))
        _POW.append(_tables(_POW_COLS[-1]))
    return _POW[i]


def _apply(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    m = np.uint64(0xFF)
    return (t[0][x & m] ^ t[1][(x >> np.uint64(8)) & m] ^ t[2][(x >> np.uint64(16)) & m]
            ^ t[3][(x >> np.uint64(24)) & m])


def sequence(states, n: int) -> np.ndarray:
    """States after draws 1..n of every register: uint64 ``[*states.shape, n]``.

    ``out[..., k]`` is the state after ``k + 1`` draws; the value of draw
    ``k + 1`` is its low bits.
    """
    states = np.asarray(states, dtype=np.uint64)
    flat = states.reshape(-1, 1)
    if n <= 0:
        return np.zeros((*states.shape, 0), np.uint64)
    seq = _apply(_POW[0], flat)
    i = 0
    while seq.shape[1] < n:
        seq = np.concatenate([seq, _apply(_pow_tables(i), seq)], axis=1)
        i += 1
    return seq[:, :n].reshape(*states.shape, n)


def advance(states, counts) -> np.ndarray:
    """Every register advanced by its own number of draws (``counts``, broadcast)."""
    states = np.asarray(states, dtype=np.uint64)
    counts = np.broadcast_to(np.asarray(counts, dtype=np.int64), states.shape)
    out = states.copy()
    i = 0
    c = counts.copy()
    while c.any():
        sel = (c & 1).astype(bool)
        if sel.any():
            out[sel] = _apply(_pow_tables(i), out[sel])
        c >>= 1
        i += 1
    return out
