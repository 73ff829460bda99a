"""The learning engine's LFSR (docs/architecture.md §11.5): pinned values,
maximal length, and the vectorized generator against the plain reference."""

import numpy as np
import pytest

from neuromesh.chip import LFSR_POLY, LFSR_STEPS_PER_DRAW
from neuromesh.learning_lfsr import _STEP, _compose, advance, draw, sequence, step

# States after draws 1..8 from seed 1 (each draw = 16 single steps).
PINNED = [0xB6F6B6C3, 0x8A0F3DB5, 0x09E5F3CF, 0x90BD2FA6,
          0xB914DE3E, 0x44C38D95, 0x82A7E500, 0x972542A4]


def test_single_steps_by_hand():
    assert LFSR_POLY == 0x80200003 and LFSR_STEPS_PER_DRAW == 16
    # seed 1: the 1 falls out, the register is 0 ^ poly
    assert step(1) == 0x80200003
    # 0x80200003 >> 1 = 0x40100001, a 1 fell out -> ^ poly
    assert step(0x80200003) == 0x40100001 ^ 0x80200003 == 0xC0300002
    # a 0 falls out: a plain shift
    assert step(0xC0300002) == 0x60180001
    assert step(0) == 0                 # the one state it must never hold


def test_pinned_draws_from_seed_1():
    s, states, v12, v7 = 1, [], [], []
    for _ in range(8):
        s, v = draw(s, 12)
        states.append(s)
        v12.append(v)
        v7.append(s & 0x7F)
    assert states == PINNED
    assert v12 == [x & 0xFFF for x in PINNED] == [0x6C3, 0xDB5, 0x3CF, 0xFA6, 0xE3E, 0xD95,
                                                   0x500, 0x2A4]
    assert v7 == [0x43, 0x35, 0x4F, 0x26, 0x3E, 0x15, 0x00, 0x24]
    assert sequence(np.array([1]), 8)[0].tolist() == PINNED


def _matpow(cols, e):
    result = [1 << j for j in range(32)]
    while e:
        if e & 1:
            result = _compose(cols, result)
        cols = _compose(cols, cols)
        e >>= 1
    return result


def test_maximal_length():
    # Period 2^32 - 1: M^(2^32-1) = I and M^((2^32-1)/p) != I for every prime p
    # dividing 2^32 - 1 = 3 * 5 * 17 * 257 * 65537.
    identity = [1 << j for j in range(32)]
    n = 2**32 - 1
    assert _matpow(_STEP, n) == identity
    for p in (3, 5, 17, 257, 65537):
        assert _matpow(_STEP, n // p) != identity


@pytest.mark.parametrize("n", [0, 1, 5, 64, 100])
def test_sequence_matches_the_reference(n):
    rng = np.random.default_rng(n)
    seeds = rng.integers(1, 2**32, size=(3, 2), dtype=np.uint64)
    seq = sequence(seeds, n)
    assert seq.shape == (3, 2, n)
    for idx in np.ndindex(3, 2):
        s = int(seeds[idx])
        for k in range(n):
            s, _ = draw(s, 32)
            assert int(seq[idx][k]) == s


def test_advance_by_per_register_counts():
    seeds = np.array([1, 1, 7, 123456789], dtype=np.uint64)
    counts = np.array([0, 8, 3, 1000])
    out = advance(seeds, counts)
    expect = []
    for s, c in zip(seeds.tolist(), counts.tolist()):
        for _ in range(c):
            s, _ = draw(s, 32)
        expect.append(s)
    assert out.tolist() == expect
    assert out[1] == PINNED[-1]
