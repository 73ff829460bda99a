"""Geometry.fit / --geometry auto: the fewest cores, then the smallest
per-core sizes that hold a network, within the chip's or a board's limits,
with the reason for each choice."""

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from neuromesh import digits
from neuromesh.chip import Geometry
from neuromesh.cli import main
from neuromesh.compiler import Network, compile_network
from neuromesh.compiler.drc import design_rule_check
from neuromesh.compiler.fit import PER_CORE, FitError, fit_geometry, largest_geometry
from neuromesh.compiler.nir_import import from_nir
from neuromesh.emulator import Emulator
from neuromesh.image import load

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "compile_time.py"


def benchmark_networks():
    spec = importlib.util.spec_from_file_location("compile_time", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digits_net():
    return from_nir(digits.model_path(), digits.model_options())


def test_digits_fit_one_icebreaker_core_sized_by_hand():
    """128 + 10 neurons share one core: 64 input + 128 hidden sources, 64 x
    128 + 128 x 10 synapses, 128 entries to the output layer + 10 to the
    host, two profiles and groups, no delays; the chip gives the 2x2 chip's
    spikes."""
    net = digits_net()
    fit = fit_geometry(net, board="icebreaker")
    assert str(fit.geometry) == ("1x1,n_neurons=138,n_axons=192,n_synapses=9472,n_fanout=138,"
                                 "n_profiles=2,n_groups=2,delay_slots=2")
    assert (fit.cores, fit.clusters) == (1, 2)
    board = Geometry.parse("1x1,n_neurons=256,n_axons=256,n_synapses=16384,n_fanout=256,"
                           "n_profiles=8,n_groups=4,delay_slots=4")
    assert all(getattr(fit.geometry, k) <= getattr(board, k) for k in PER_CORE)
    assert "138: the most one core needs (the core of lif1[0]+lif2[0])" in fit.reasons["n_neurons"]
    assert fit.reasons["delay_slots"] == "2: no delays (the minimum)"
    assert Geometry.fit(net, board="icebreaker") == fit.geometry
    one, four = compile_network(net, fit.geometry), compile_network(net, Geometry(2, 2))
    x = digits.encode(digits.load_split()[1][:8], digits.STEPS)       # test images
    (port,) = net.host_inputs()
    a, b = (c.outputs(Emulator(c.image, batch=8).run(c.chip_inputs(c.padded({port: x}))))
            for c in (one, four))
    for pop in a:
        np.testing.assert_array_equal(a[pop], b[pop])
    assert sum(int(v.sum()) for v in a.values()) > 0


def test_a_conv_network_of_a_million_synapses_fits_without_a_search_by_hand():
    net = benchmark_networks().conv_net()
    n_syn = sum(p.pre.size for p in net.projections)
    assert n_syn == 1_150_992
    fit = fit_geometry(net)
    g = fit.geometry
    assert set(fit.reasons) == {"mesh", "", *PER_CORE}
    assert design_rule_check(net, g) == []
    compiled = compile_network(net, g)
    assert len(set(compiled.positions.values())) == fit.cores == g.n_cores
    assert len(compiled.clusters) == fit.clusters
    # the fewest cores: one fewer does not hold it even at the largest cores
    area, rows, cols = max((r * c, r, c) for r in range(1, 17) for c in range(1, 17)
                           if r * c < fit.cores)
    (v,) = design_rule_check(net, largest_geometry(rows, cols))
    assert (v.resource, v.limit) == ("cores", area) and v.value >= fit.cores
    # every per-core size is what some core needs, not more
    for attr in ("n_neurons", "n_axons", "n_synapses", "n_fanout"):
        assert fit.reasons[attr].startswith(f"{getattr(g, attr)}: the most one core needs")
    assert fit.reasons["n_groups"].startswith("2: one weight group per incoming projection")


def test_fit_errors_give_the_numbers():
    net = benchmark_networks().conv_net()
    with pytest.raises(FitError, match=r"(?s)does not fit the chip: at most 4 cores of 1024 "
                                       r"neurons, .*: 1 design-rule violation.*network: cores = 20 "
                                       r"exceeds the limit 4 by 16 \(at least: the 23 clusters "
                                       r"need 20070 neurons in all, 1024 per core"):
        fit_geometry(net, max_cores=4)
    with pytest.raises(FitError, match=r"(?s)does not fit board 'icebreaker': at most 1 core "
                                       r"of 256 neurons.*cores = .* "
                                       r"exceeds the limit 1"):
        fit_geometry(net, board="icebreaker")
    with pytest.raises(ValueError, match="unknown board 'nope'"):
        fit_geometry(net, board="nope")
    with pytest.raises(ValueError, match="no populations"):
        fit_geometry(Network())
    with pytest.raises(ValueError, match="max_cores = 0"):
        fit_geometry(digits_net(), max_cores=0)
    # a delay longer than any core's ring
    small = digits_net()
    small.projections[0] = dataclasses.replace(small.projections[0],
                                               delay=np.full(small.projections[0].pre.size, 3))
    with pytest.raises(FitError, match=r"projection 'fc1': delay = 3 exceeds the limit 2"):
        fit_geometry(small, board="icebreaker")


def test_compile_geometry_auto_and_board(tmp_path, capsys):
    model = str(digits.model_path())
    out = tmp_path / "d.nmi"
    assert main(["compile", model, "-o", str(out), "--framework", "snntorch",
                 "--geometry", "auto"]) == 0
    text = capsys.readouterr().out
    assert "geometry 1x1,n_neurons=138,n_axons=192,n_synapses=9472" in text
    assert "  n_fanout     138: the most one core needs" in text
    assert str(load(out).geometry).startswith("1x1,n_neurons=138")
    # --board alone means auto within the board
    assert main(["compile", model, "-o", str(out), "--framework", "snntorch",
                 "--board", "ulx3s-85f"]) == 0
    assert ("(board 'ulx3s-85f': at most 8 cores of 256 neurons, 256 axons, 4096 synapses, "
            "512 fan-out entries, 8 profiles, 4 groups, 8 delay slots)"
            in capsys.readouterr().out)
    assert main(["compile", model, "-o", str(tmp_path / "x.nmi"), "--framework", "snntorch",
                 "--board", "icebreaker", "--geometry", "2x2"]) == 2
    err = capsys.readouterr().err
    assert "--geometry 2x2 exceeds board 'icebreaker'" in err
    assert "4 cores > 1, n_fanout = 512 > 256, delay_slots = 8 > 4" in err
    assert not (tmp_path / "x.nmi").exists()


def test_fit_keeps_the_limits_when_smaller_cores_would_cut_differently(monkeypatch):
    """If the geometry with every per-core size at what a core needs does
    not hold the network as the search found (here: made to fail), the sizes
    stay at the limits and the reasons say so."""
    import neuromesh.compiler.fit as fit_module
    from neuromesh.compiler.drc import Violation
    real = fit_module.layout

    def shrunk_fails(net, geometry, **kw):
        lay = real(net, geometry, **kw)
        if geometry.n_synapses < 16384:                    # the shrunk attempt
            lay.violations = [Violation("network", "cores", 1, 2)]
        return lay

    monkeypatch.setattr(fit_module, "layout", shrunk_fails)
    fit = fit_geometry(digits_net(), board="icebreaker")
    assert str(fit.geometry) == ("1x1,n_synapses=16384,n_fanout=256,delay_slots=2")
    assert fit.reasons["n_synapses"] == ("16384: the limit; this cut needs 9472, but cores "
                                         "that small cut the network into more clusters")
    assert fit.reasons["delay_slots"] == "2: no delays (the minimum)"


def test_compile_with_the_fits_layout_gives_the_same_image():
    """compile_network(layout=fit.layout) skips the check and gives the words
    of a compile that runs it; a layout of another network or geometry is
    refused."""
    net = benchmark_networks().recurrent_net(600, fan_in=20, n_in=30, seed=3)
    fit = fit_geometry(net)
    assert fit.layout is not None and fit.layout.geometry == fit.geometry
    a = compile_network(net, fit.geometry).image
    b = compile_network(net, fit.geometry, layout=fit.layout).image
    np.testing.assert_array_equal(a.addresses, b.addresses)
    np.testing.assert_array_equal(a.words, b.words)
    other = benchmark_networks().recurrent_net(600, fan_in=20, n_in=30, seed=3)
    with pytest.raises(ValueError, match="the layout given is of another network"):
        compile_network(other, fit.geometry, layout=fit.layout)
    bigger = dataclasses.replace(fit.geometry, n_neurons=fit.geometry.n_neurons + 1)
    with pytest.raises(ValueError, match=r"the layout given is for geometry .* not "):
        compile_network(net, bigger, layout=fit.layout)
