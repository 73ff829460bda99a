"""NIR graphs (built with the nir package, written and read back) compiled
onto the chip and checked against the float reference of the same network."""

import nir
import numpy as np
import pytest

from neuromesh.chip import Geometry
from neuromesh.compiler import compile_network
from neuromesh.compiler.network import NetworkError
from neuromesh.compiler.nir_import import FRAMEWORKS, NIROptions, from_nir
from neuromesh.compiler.reference import simulate
from neuromesh.emulator import Emulator

GEOM = Geometry(rows=2, cols=2, n_neurons=32, n_axons=64, n_synapses=2048, n_fanout=128,
                n_groups=2)
DT = 1e-4


def two_layer(kind="CubaLIF", bias=False, seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.3, 0.4, (24, 16))
    w2 = rng.normal(0.3, 0.5, (5, 24))
    n = {"in": nir.Input(input_type={"input": np.array([16])})}
    n["fc1"] = nir.Affine(weight=w1, bias=np.full(24, 0.05 if bias else 0.0))
    n["fc2"] = nir.Linear(weight=w2)
    for name, size in (("lif1", 24), ("lif2", 5)):
        if kind == "CubaLIF":
            n[name] = nir.CubaLIF(tau_syn=np.full(size, 2 * DT), tau_mem=np.full(size, 4 * DT),
                                  r=np.full(size, 4.0), v_leak=np.zeros(size),
                                  v_threshold=np.ones(size), v_reset=np.zeros(size),
                                  w_in=np.full(size, 2.0))
        elif kind == "LIF":
            n[name] = nir.LIF(tau=np.full(size, 5 * DT), r=np.full(size, 5.0),
                              v_leak=np.zeros(size), v_threshold=np.ones(size),
                              v_reset=np.zeros(size))
        else:
            n[name] = nir.IF(r=np.ones(size), v_threshold=np.full(size, 2.0),
                             v_reset=np.zeros(size))
    n["out"] = nir.Output(output_type={"output": np.array([5])})
    edges = [("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "out")]
    return nir.NIRGraph(nodes=n, edges=edges)


@pytest.mark.parametrize("kind,bias", [("CubaLIF", False), ("CubaLIF", True), ("LIF", True),
                                       ("IF", True)])
@pytest.mark.parametrize("reset,delay", [("zero", False), ("subtract", False),
                                         ("subtract", True)])
def test_nir_file_compiles_and_tracks_the_float_reference(tmp_path, kind, bias, reset, delay):
    path = tmp_path / "model.nir"
    nir.write(path, two_layer(kind, bias))
    net = from_nir(path, NIROptions(dt=DT, reset=reset, reset_delay=delay))
    assert set(net.populations) == {"lif1", "lif2"} and net.outputs == ["lif2"]
    compiled = compile_network(net, GEOM)
    x = np.random.default_rng(3).random((120, 2, 16)) < 0.3
    r = Emulator(compiled.image, batch=2).run(compiled.chip_inputs({"in": x}))
    chip = compiled.outputs(r)["lif2"]
    ref = simulate(net, {"in": x}, 120)["lif2"]
    assert ref.sum() > 20
    assert abs(int(chip.sum()) - int(ref.sum())) <= 0.1 * ref.sum() + 2
    assert (chip & ref).sum() >= 0.7 * ref.sum()


def test_gains_follow_the_euler_discretisation():
    net = from_nir(two_layer("CubaLIF"), NIROptions(dt=DT))
    pop = net.populations["lif1"]
    assert net.retention(pop) == (0.5, 0.75)
    # weights scaled by (dt/tau_syn) w_in (dt/tau_mem) r = 0.5 * 2 * 0.25 * 4 = 1
    proj = next(p for p in net.projections if p.name == "fc1")
    w1 = two_layer("CubaLIF").nodes["fc1"].weight
    np.testing.assert_allclose(np.sort(proj.weight), np.sort(w1[w1 != 0].T.reshape(-1)))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_delayed_resets_are_a_profile_option(reset):
    net = from_nir(two_layer("LIF"), NIROptions(dt=DT, reset=reset, reset_delay=True))
    for pop in net.populations.values():
        assert pop.reset == reset and pop.reset_delay and pop.refractory == 0
    compiled = compile_network(net, GEOM)
    from neuromesh.chip import Region
    from neuromesh.config import decode
    prof = decode(compiled.image)[Region.PROFILE]
    used = prof["vth_mant"] > 0
    from neuromesh.chip import ResetTiming
    timing = ResetTiming.DELAYED_STORED if pop.reset_stored else ResetTiming.DELAYED
    assert (prof["reset_timing"][used] == timing).all()
    assert (prof["reset_subtract"][used] == (reset == "subtract")).all()


def test_unsupported_and_unrepresentable_nodes_are_named():
    g = two_layer("LIF")
    g.nodes["lif1"] = nir.Threshold(threshold=np.ones(24))
    with pytest.raises(NetworkError, match="'lif1': Threshold is not supported"):
        from_nir(g, NIROptions(dt=DT))
    for dt in (0, -1, float("inf"), float("nan")):
        with pytest.raises(NetworkError, match=f"dt = {dt} must be a finite number > 0"):
            NIROptions(dt=dt)
    g = two_layer("LIF")
    g.nodes["lif2"].tau[:] = 0
    with pytest.raises(NetworkError, match="'lif2': tau = 0 must be > 0"):
        from_nir(g, NIROptions(dt=DT))
    assert FRAMEWORKS["snntorch"].dt == 1e-4


def test_compile_and_report_commands(tmp_path, capsys):
    from neuromesh.cli import main
    from neuromesh.image import load
    model, image = tmp_path / "model.nir", tmp_path / "net.nmi"
    nir.write(model, two_layer("LIF", True))
    assert main(["compile", str(model), "-o", str(image), "--geometry", "2x2,n_neurons=32",
                 "--dt", "1e-4", "--reset", "subtract"]) == 0
    out = capsys.readouterr().out
    assert "conventions: dt = 0.0001, euler decays, subtract reset, v > threshold (given)" in out
    assert load(image).meta["name"] == "model"
    png = tmp_path / "mesh.png"
    assert main(["report", str(image), "--heatmap", str(png)]) == 0
    report = capsys.readouterr().out
    assert "fc1" in report and "placement:" in report and "lif2" in report
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # decays and their error: tau = 5 dt, Euler: retention 0.8, dv = 819 (0.19995)
    row = next(line for line in report.splitlines() if line.startswith("lif1 "))
    assert " 819 " in row and "4.9e-05" in row
    assert main(["compile", str(model), "-o", str(image)]) == 2
    assert "give --dt" in capsys.readouterr().err
    assert main(["compile", str(model), "-o", str(image), "--framework", "snntorch"]) == 0
