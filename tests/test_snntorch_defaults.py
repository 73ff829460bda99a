"""snnTorch models trained with the library's defaults compile exactly.

Every fixture in ``tests/data/snntorch_defaults/`` is a snnTorch model as
people build it without touching options -- ``nn.Linear`` with its default
bias, ``Leaky``/``Synaptic``/``RLeaky``/``RSynaptic`` with snnTorch's default
delayed subtract reset (``reset_delay=True``), a convolution -- exported by
snnTorch's own NIR exporter, with the spikes and membranes snnTorch itself
recorded (``tests/data/make_snntorch_fixtures.py --defaults``).

Imported with the ``snntorch`` preset (which is snnTorch's defaults), the
float reference reproduces every layer's spikes exactly and its membranes to
float32 precision; and the compiled chip, at the fixture's ``chip_scale``,
reproduces the spikes *and* the membranes exactly: the fixtures are built on
a grid the chip holds without rounding (see the generator's docstring), so
any difference is a bug in the importer, the bias neurons, the delayed reset
or the latency alignment. One fixture also runs through the RTL in Verilator.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from neuromesh.chip import Geometry
from neuromesh.compiler import compile_network
from neuromesh.compiler.nir_import import FRAMEWORKS, from_nir
from neuromesh.compiler.reference import simulate
from neuromesh.demo import DEFAULT_GEOMETRY
from neuromesh.emulator import Emulator

DATA = Path(__file__).parent / "data" / "snntorch_defaults"
CASES = ("leaky_default", "leaky_zero_default", "synaptic_default", "rleaky_default",
         "rsynaptic_default", "conv_default")
#: The demo's geometry: its Verilator build is already made (and cached) by the
#: demo's co-simulation test.
GEOM = Geometry.parse(DEFAULT_GEOMETRY)


def load(case):
    """``(fixture, network)``: the export read with snnTorch's defaults (the
    zero-reset case sets only the reset mechanism the model was built with)."""
    f = np.load(DATA / f"{case}.npz")
    options = dataclasses.replace(FRAMEWORKS["snntorch"], reset=str(f["reset"]))
    assert options.reset_delay == bool(f["reset_delay"]) is True
    return f, from_nir(DATA / f"{case}.nir", options)


def padded_input(f, net):
    x = f["input"].astype(np.float64)
    steps, batch = x.shape[:2]
    (port,) = net.host_inputs()
    lag = max(net.latency.values())
    x = x.reshape(steps, batch, -1)
    return {port: np.concatenate([x, np.zeros((lag, *x.shape[1:]))])}, steps + lag


def window(f, net, pop, record):
    steps, batch = f["input"].shape[:2]
    lat = net.latency[pop]
    return record[lat:lat + steps].reshape(steps, batch, -1)


def test_fixtures_are_the_documented_set():
    files = sorted(p.name for p in DATA.iterdir())
    assert files == sorted(f"{c}.{e}" for c in CASES for e in ("nir", "npz"))
    assert sum((DATA / p).stat().st_size for p in files) < 400_000


@pytest.mark.parametrize("case", CASES)
def test_float_reference_reproduces_snntorch_defaults(case):
    f, net = load(case)
    x, steps = padded_input(f, net)
    ref = simulate(net, x, steps, record_v=True)
    for layer, pop in zip(f["layers"], f["populations"]):
        layer, pop = str(layer), str(pop)
        want = f[f"spikes_{layer}"].astype(bool)
        want = want.reshape(want.shape[0], want.shape[1], -1)
        assert 0.05 < want.mean() < 0.95, (layer, "fixture spikes too rarely or too often")
        np.testing.assert_array_equal(window(f, net, pop, ref[pop]), want, err_msg=layer)
        mem = f[f"mem_{layer}"].reshape(want.shape)
        np.testing.assert_allclose(window(f, net, pop, ref[pop + ".v"]), mem, rtol=0, atol=1e-5)


def compiled_at_fixture_scale(f, net):
    pops = {k: dataclasses.replace(p, scale=float(f["chip_scale"]))
            for k, p in net.populations.items()}
    # the convolution's 128 + 6 neurons and two bias neurons need more cores
    big = sum(p.size for p in net.populations.values()) > 64
    geometry = dataclasses.replace(GEOM, rows=4) if big else GEOM
    return compile_network(dataclasses.replace(net, populations=pops), geometry)


@pytest.mark.parametrize("case", CASES)
def test_chip_reproduces_snntorch_defaults_exactly(case):
    f, net = load(case)
    compiled = compiled_at_fixture_scale(f, net)
    x, steps = padded_input(f, net)
    batch = f["input"].shape[1]
    probe = np.concatenate([compiled.neurons(str(p)) for p in f["populations"]])
    r = Emulator(compiled.image, batch=batch).run(compiled.chip_inputs(x), probe=probe,
                                                 record=("spikes", "v"))
    first = 0
    for layer, pop in zip(f["layers"], f["populations"]):
        layer, pop = str(layer), str(pop)
        n = net.populations[pop].size
        want = f[f"spikes_{layer}"].astype(bool)
        want = want.reshape(want.shape[0], want.shape[1], -1)
        got = window(f, net, pop, r.probes["spikes"][:, :, first:first + n])
        np.testing.assert_array_equal(got, want, err_msg=layer)
        v = window(f, net, pop, r.probes["v"][:, :, first:first + n]) / float(f["chip_scale"])
        np.testing.assert_array_equal(v, f[f"mem_{layer}"].reshape(want.shape), err_msg=layer)
        first += n
    if case in ("rsynaptic_default", "synaptic_default"):
        # the biases into the synaptic current come from bias neurons
        assert compiled.bias_neurons


def test_one_default_fixture_is_identical_in_the_rtl(tmp_path):
    from neuromesh.sim.runner import run_verilator, write_case
    f, net = load("rsynaptic_default")
    compiled = compiled_at_fixture_scale(f, net)
    x, steps = padded_input(f, net)
    chip_x = compiled.chip_inputs({k: v[:, :1] for k, v in x.items()})[:, 0]
    case = write_case(tmp_path, "rsynaptic_default", compiled.image, chip_x)
    result = run_verilator(compiled.image.geometry, [case])
    assert result.identical, result.summary()
