"""The digits task (neuromesh.digits) and the shipped model, without torch.

The fixture ``tests/data/digits_snntorch_reference.npz`` was written by
``examples/train_digits.py`` together with the model: snnTorch's own input,
hidden and output spikes for the first 32 test images. The model imported
from NIR and run in the float reference must reproduce them exactly.
"""

from pathlib import Path

import numpy as np
import pytest

from neuromesh.compiler.nir_import import from_nir
from neuromesh.compiler.reference import simulate
from neuromesh.digits import (
    MAX_VALUE,
    STEPS,
    decode,
    encode,
    load_split,
    model_options,
    model_path,
)

FIXTURE = Path(__file__).parent / "data" / "digits_snntorch_reference.npz"


# -- encoding ------------------------------------------------------------------

def test_encode_rate_zero_never_spikes_and_rate_one_always():
    s = encode(np.array([[0, MAX_VALUE]]), 40)
    assert s.shape == (40, 1, 2) and s.dtype == np.bool_
    assert not s[:, 0, 0].any()
    assert s[:, 0, 1].all()


def test_encode_rate_half_spikes_on_odd_steps():
    s = encode(np.array([[8]]), 8)[:, 0, 0]
    np.testing.assert_array_equal(np.flatnonzero(s), [1, 3, 5, 7])


def test_encode_rate_quarter_phase():
    # floor((t + 1) / 4) > floor(t / 4) first at t = 3.
    s = encode(np.array([[4]]), 12)[:, 0, 0]
    np.testing.assert_array_equal(np.flatnonzero(s), [3, 7, 11])


@pytest.mark.parametrize("steps", [1, 7, 16, 33])
def test_encode_spike_count_is_floor_of_steps_times_rate(steps):
    p = np.arange(MAX_VALUE + 1)[None, :]
    counts = encode(p, steps).sum(axis=0)[0]
    np.testing.assert_array_equal(counts, (steps * p[0]) // MAX_VALUE)


def test_encode_default_steps_count_equals_pixel_value_and_flattens_images():
    img = np.arange(64).reshape(1, 8, 8) % (MAX_VALUE + 1)
    s = encode(img.astype(np.float64))          # scikit-learn hands out floats
    assert s.shape == (STEPS, 1, 64)
    np.testing.assert_array_equal(s.sum(axis=0)[0], img.reshape(-1))


@pytest.mark.parametrize("bad", [[[-1]], [[MAX_VALUE + 1]], [[0.5]], [[np.nan]]])
def test_encode_rejects_values_that_are_not_pixels(bad):
    with pytest.raises(ValueError):
        encode(np.array(bad), 4)


# -- decoding ------------------------------------------------------------------

def test_decode_counts_spikes_and_ties_go_to_the_lowest_index():
    s = np.zeros((4, 3, 5), dtype=bool)
    s[:, 0, 3] = True                       # image 0: class 3 spikes 4 times
    s[:2, 1, 4] = s[2:, 1, 2] = True        # image 1: 2 and 4 tie -> 2
    # image 2: no spike at all -> 0
    np.testing.assert_array_equal(decode(s), [3, 2, 0])


def test_decode_window():
    s = np.zeros((5, 1, 3), dtype=bool)
    s[0, 0, 1] = s[0, 0, 2] = True          # step 0: classes 1 and 2
    s[1:, 0, 0] = True                      # steps 1..4: class 0
    assert decode(s)[0] == 0
    assert decode(s, stop=1)[0] == 1        # step 0 only: classes 1 and 2 tie
    with pytest.raises(ValueError):
        decode(s[:, 0])


# -- data split ----------------------------------------------------------------

def test_load_split_sizes_and_determinism():
    pytest.importorskip("sklearn")
    a, b = load_split(), load_split()
    x_train, x_test, y_train, y_test = a
    assert x_train.shape == (1347, 64) and x_test.shape == (450, 64)
    assert y_train.shape == (1347,) and y_test.shape == (450,)
    assert x_train.min() >= 0 and x_train.max() <= MAX_VALUE
    whole = np.bincount(np.concatenate([y_train, y_test]))
    assert np.all(np.abs(np.bincount(y_test) - whole / 4) <= 1)     # stratified
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


# -- the shipped model -----------------------------------------------------------

def _model():
    net = from_nir(model_path(), model_options())
    (port,) = net.host_inputs()
    (out,) = net.outputs
    (hidden,) = (p for p in net.populations if p != out)
    return net, port, hidden, out


def _run(net, port, x):
    """The chip's timing: the output layer lags one step, so feed one more step of zeros."""
    padded = np.concatenate([x, np.zeros_like(x[:1])])
    return simulate(net, {port: padded}, x.shape[0] + 1)


def test_model_imports_as_two_cuba_layers():
    net, port, hidden, out = _model()
    assert net.inputs[port].size == 64
    assert net.populations[hidden].kind == net.populations[out].kind == "cuba"
    assert net.populations[out].size == 10
    assert all(p.reset == "subtract" and p.refractory == 0 for p in net.populations.values())


def test_float_reference_reproduces_the_snntorch_spikes_exactly():
    f = np.load(FIXTURE)
    x = f["input_spikes"].astype(bool)
    steps = x.shape[0]
    assert steps == int(f["steps"]) == STEPS
    net, port, hidden, out = _model()
    s = _run(net, port, x)
    # Hidden layer: same steps. Output layer: one step later on the chip.
    np.testing.assert_array_equal(s[hidden][:steps], f["hidden_spikes"].astype(bool))
    np.testing.assert_array_equal(s[out][1:], f["output_spikes"].astype(bool))
    assert not s[out][0].any()
    assert f["output_spikes"].sum() > 100            # not a vacuous comparison


def test_fixture_inputs_are_the_encoded_test_split_and_accuracy_holds():
    pytest.importorskip("sklearn")
    f = np.load(FIXTURE)
    _, x_test, _, y_test = load_split()
    k = f["labels"].size
    np.testing.assert_array_equal(f["labels"], y_test[:k])
    np.testing.assert_array_equal(f["input_spikes"].astype(bool), encode(x_test[:k]))
    net, port, _, out = _model()
    acc = (decode(_run(net, port, encode(x_test))[out], start=1) == y_test).mean()
    assert acc >= 0.92
    assert abs(acc - float(f["snntorch_test_accuracy"])) <= 0.01
