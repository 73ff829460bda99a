"""The Loihi-scale geometry family (docs/architecture.md §2.1, §5.3): fields
that need their extension bits, through the builder, a file, the decoder,
the emulator (numpy and torch) and the compiler; the RTL's refusal."""

from __future__ import annotations

import numpy as np
import pytest

from neuromesh import ChipBuilder, ChipError, Geometry, Region, load, save
from neuromesh.chip import GEOMETRY_LIMITS
from neuromesh.config import decode
from neuromesh.emulator import Emulator
from neuromesh.rtl.layouts import RTL_LIMITS, check_rtl_geometry

#: Beyond every first-release limit (16384 axons and fan-out entries, 65536
#: synapses), small enough for a test.
BIG = Geometry(rows=1, cols=2, n_neurons=4, n_axons=40000, n_synapses=140000,
               n_fanout=40000, n_profiles=1, n_groups=1, delay_slots=4)


def relay_chip():
    """Host -> core 0 neuron 1 -> core 1 neuron 1 -> host, where every table
    entry on the path sits above a first-release limit: core 0's synapse run
    starts at 131,072 + 4 (syn_base bit 17), neuron 1's fan-out list at
    32,768 + 5 (fanout_base bit 15) and names axon 39,999 of core 1 (axon
    bits 14-15), whose run starts at 139,000."""
    b = ChipBuilder(BIG)
    c0, c1 = b.core(0, 0), b.core(1, 0)
    for c in (c0, c1):
        c.profile(0, du=4096, dv=4096, vth_mant=10)
        c.group(0, w_shift=7)
        c.neurons(range(4), profile=0)
    # Filler synapses on low axons push the interesting runs up.
    c0.synapses(axon=np.repeat(np.arange(1, 9), 16384 + 1)[:(1 << 17) + 4],
                target=3, w_mant=0)
    c0.synapses(axon=30000, target=1, w_mant=100)
    b.input(0, 0, 0, 30000)
    c0.route(neuron=np.full(32768 + 5, 0), x=1, y=0, axon=np.arange(32768 + 5) % 100)
    c0.route(neuron=1, x=1, y=0, axon=39999)
    c1.synapses(axon=np.repeat(np.arange(100), 1390), target=3, w_mant=0)
    c1.synapses(axon=39999, target=1, w_mant=100, delay=2)
    c1.to_host(1, 0)
    return b.build()


def test_relay_through_extended_fields(tmp_path):
    image = relay_chip()
    cfg = decode(image)
    assert cfg[Region.AXON]["syn_base"][0, 30000] == (1 << 17) + 4
    assert cfg[Region.AXON]["syn_base"][1, 39999] == 139000
    assert cfg[Region.NEURON]["fanout_base"][0, 1] == 32768 + 5
    assert cfg[Region.FANOUT]["axon"][0, 32768 + 5] == 39999
    path = tmp_path / "big.nmi"
    save(image, path)
    image = load(path)
    x = np.zeros((8, 1), bool)
    x[1] = True
    backends = ["numpy"]
    try:
        import torch  # noqa: F401
        backends.append("torch")
    except ImportError:
        pass
    for backend in backends:
        r = Emulator(image, backend=backend).run(x)
        # input at 1 -> core 0 neuron 1 spikes at 1 -> delay 2 -> core 1 neuron 1 at 1+1+2
        assert np.flatnonzero(r.outputs[:, 0, 0]).tolist() == [4], backend


def test_limits_hold_loihi_scale():
    hi = {name: lim[1] for name, lim in GEOMETRY_LIMITS.items()}
    g = Geometry(**hi)
    assert g.n_cores * g.n_neurons >= 131_072
    assert g.n_cores * g.n_synapses >= 100_000_000


def test_rtl_builds_the_first_release_limits_only():
    check_rtl_geometry(Geometry(**RTL_LIMITS))
    for name, limit in RTL_LIMITS.items():
        with pytest.raises(ChipError, match=rf"{name} = {limit + 1} exceeds the RTL's limit "
                                            rf"{limit}"):
            check_rtl_geometry(Geometry(**{name: limit + 1}))
    from neuromesh.rtl.chip import Chip
    with pytest.raises(ChipError, match="n_axons = 40000 exceeds the RTL's limit"):
        Chip(BIG)


def test_compiler_accepts_a_loihi_scale_geometry():
    from neuromesh.compiler import Network, compile_network
    n, fan = 3000, 100
    rng = np.random.default_rng(0)
    net = Network()
    net.input("x", 50)
    net.population("h", n)
    net.connect("x", "h", rng.normal(0.5, 0.1, (50, n)))
    net.connect("h", "h", (rng.integers(0, n, n * fan), np.repeat(np.arange(n), fan),
                           rng.normal(0, 0.05, n * fan)))
    net.output("h")
    g = Geometry.parse("2x2,n_neurons=1024,n_axons=20000,n_synapses=120000,n_fanout=20000")
    image = compile_network(net, g).image
    cfg = decode(image)
    assert (cfg[Region.AXON]["syn_len"] > 0).sum(axis=1).max() > 0
    assert (cfg[Region.AXON]["syn_base"] + cfg[Region.AXON]["syn_len"]).max() > 65536
    r = Emulator(image).run(np.random.default_rng(1).random((10, 50)) < 0.2)
    assert r.neuron_spikes.sum() > 0
