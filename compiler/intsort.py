"""Sorting of large integer arrays, as the compiler's counting and emission
need it: orders, distinct values and pair sorts by one ``np.sort`` of packed
int64 keys, several times faster than a stable ``argsort`` or the hashing
``np.unique`` on the arrays of millions of synapses they handle."""

from __future__ import annotations

import numpy as np

__all__ = ["stable_sort", "stable_order", "distinct", "sort_pairs"]


def _bits(limit: int) -> int:
    return max(int(limit), 1).bit_length()


def stable_sort(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sorted values, order)`` with ``order = np.argsort(values,
    kind="stable")``, for non-negative integers."""
    values = np.asarray(values, dtype=np.int64)
    if not values.size:
        return values, np.zeros(0, np.int64)
    bits = _bits(values.size)
    if _bits(int(values.max()) + 1) + bits > 62:
        order = np.argsort(values, kind="stable")
        return values[order], order
    packed = np.sort((values << bits) | np.arange(values.size))
    return packed >> bits, packed & ((1 << bits) - 1)


def stable_order(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` for non-negative integers."""
    return stable_sort(values)[1]


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (``np.unique`` without its hashing)."""
    v = np.sort(np.asarray(values))
    return v[np.r_[True, v[1:] != v[:-1]]] if v.size else v


def sort_pairs(major, minor, minor_limit: int, *, minor_first: bool = False):
    """``(major, minor)`` sorted by ``major`` then ``minor`` -- non-negative
    integers, ``minor < minor_limit`` -- as int64 arrays; with
    ``minor_first`` returned as ``(minor, major)``."""
    bits = _bits(minor_limit)
    major = np.asarray(major, dtype=np.int64)
    minor = np.asarray(minor, dtype=np.int64)
    if major.size and _bits(int(major.max()) + 1) + bits > 62:
        order = np.lexsort((minor, major))
        a, b = major[order], minor[order]
    else:
        packed = np.sort((major << bits) | minor)
        a, b = packed >> bits, packed & ((1 << bits) - 1)
    return (b, a) if minor_first else (a, b)
