"""The digits demo: the shipped model meets the accuracy acceptance on the
emulator, the CLI writes its plots, and a few images pass RTL co-simulation."""

import numpy as np
import pytest

from neuromesh import digits
from neuromesh.cli import main
from neuromesh.compiler.nir_import import from_nir
from neuromesh.counters import NO_COUNTERS
from neuromesh.demo import (
    LOIHI_PJ,
    cosim_samples,
    energy_estimate,
    run_demo,
)
from neuromesh.digits import model_options, model_path


@pytest.fixture(scope="module")
def demo():
    return run_demo()


def test_shipped_model_is_a_two_layer_cuba_network():
    net = from_nir(model_path(), model_options())
    assert [p.size for p in net.inputs.values()] == [digits.N_INPUTS]
    assert all(p.kind == "cuba" and p.reset == "subtract" for p in net.populations.values())
    (out,) = net.outputs
    assert net.populations[out].size == digits.N_CLASSES and net.latency[out] == 1


def test_chip_accuracy_within_one_point_of_the_float_reference(demo):
    assert demo.n_images == 450 and demo.steps == digits.STEPS + 1
    assert demo.reference_accuracy >= 0.90
    assert abs(demo.chip_accuracy - demo.reference_accuracy) <= 0.01
    # per-layer agreement: spike counts within 1 %, most spikes on the same step
    for layer in demo.agreement.layers:
        assert abs(layer.count_ratio - 1) <= 0.01, layer
        assert layer.coincident_fraction >= 0.8, layer


def test_activity_counts_are_consistent(demo):
    # every neuron is updated every step; synaptic ops come from the emulator
    n = sum(p.size for p in demo.compiled.network.populations.values())
    assert demo.neuron_updates_per_inference == n * demo.steps
    assert demo.synaptic_ops_per_inference > demo.spikes_per_inference > 0
    lo, hi = demo.energy_per_inference
    assert lo < hi


def test_counted_energy_known_values():
    """neuromesh.energy prices each counter from its table."""
    from neuromesh.chip import Counter
    from neuromesh.energy import LOIHI_TABLE, energy_pj, energy_report
    c = np.zeros((2, 3, len(Counter)), np.uint32)       # two rows, three cores
    c[0, 0, Counter.UPDATES] = 100
    c[1, 2, Counter.SPIKES] = 10
    c[0, 1, Counter.SYNOPS] = 1000
    c[1, 1, Counter.PACKETS] = 4
    c[0, 2, Counter.HOPS] = 6
    c[1, 0, Counter.LEARN] = 2
    c[0, 0, Counter.CLOCKS] = 240
    c[1, 1, Counter.CLOCKS] = 120
    e = energy_pj(c)
    assert e["total"] == pytest.approx(100 * 52 + 10 * 29 + 1000 * 23.6 + 4 * 1.7 + 6 * 3.5
                                       + 2 * 120)
    assert LOIHI_TABLE["synaptic_op"] == 23.6 and LOIHI_TABLE["learn"] == 120
    assert energy_pj(c, {**LOIHI_TABLE, "hop": 0})["hop"] == 0
    text = energy_report(c, 10, per="row", n=2)
    assert text.startswith(f"energy from the counters: {e['total'] / 2 / 1e6:.3g} uJ per row")
    # busiest core: 240 and 120 clocks over 10 steps -> 18 per step on average
    assert "busy clocks per step: 18.0 (busiest core) -> 0.75 us at 24 MHz (icebreaker)" in text
    assert "overlapped" not in text           # no synaptic ops to hide behind the passes
    # 300 busy clocks of which 100 synaptic ops: the overlapped core
    # (ULX3S) needs at best max(200, 100) clocks; the iCEBreaker's core all 300.
    c = np.zeros((1, 1, len(Counter)), np.uint32)
    c[0, 0, Counter.CLOCKS], c[0, 0, Counter.SYNOPS] = 300, 100
    text = energy_report(c, 1)
    assert ("300.0 (busiest core) -> 12.5 us at 24 MHz (icebreaker), 6 us at 50 MHz "
            "(ulx3s-85f; at best 4 us overlapped)") in text
    # An image that learns runs on the ULX3S's build with learning engines:
    # 50 MHz too, but its cores have no overlap (boards/catalog.py).
    text = energy_report(c, 1, learning=True)
    assert ("300.0 (busiest core) -> 12.5 us at 24 MHz (icebreaker), 6 us at 50 MHz "
            "(ulx3s-85f); the mesh") in text


def test_energy_estimate_known_values():
    lo, hi = energy_estimate(1000, 100)
    assert lo == pytest.approx((1000 * 23.6 + 100 * 52) * 1e-12)
    assert hi == pytest.approx((1000 * 23.6 + 100 * 81) * 1e-12)
    assert LOIHI_PJ["synaptic_op"] == 23.6


def test_demo_command_prints_and_draws(tmp_path, capsys):
    assert main(["demo", "--limit", "30", "-o", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "float reference   accuracy" in out and "chip (emulator)   accuracy" in out
    assert "uJ per inference" in out and "same step" in out
    # The emulator's activity counters (§13) and the energy and clocks they imply.
    assert "counted by the emulator (docs/architecture.md §13), per inference:" in out
    assert "energy from the counters:" in out and "us at 24 MHz (icebreaker)" in out
    for png in ("raster.png", "mesh.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_a_few_digits_pass_rtl_cosimulation(tmp_path):
    small = run_demo(limit=3)
    result = cosim_samples(small, 3, tmp_path)
    assert result.cases == 3 and result.identical, result.summary()
    assert np.array_equal(small.labels, digits.load_split()[3][:3])


ICEBREAKER = "1x1,n_neurons=256,n_axons=256,n_synapses=16384,n_fanout=256,n_profiles=8," \
             "n_groups=4,delay_slots=4"


def test_digits_fit_the_one_icebreaker_core(tmp_path):
    """Both layers (128 + 10 neurons) share the iCEBreaker's single core; the
    whole test split gives the 2x2 chip's predictions and counts, and two
    images are identical on the RTL."""
    from neuromesh.boards.catalog import get_board
    assert get_board("icebreaker").geometry == ICEBREAKER
    one, four = run_demo(geometry=ICEBREAKER), run_demo()
    c = one.compiled
    assert set(c.positions.values()) == {(0, 0)}
    assert c.offsets == {"lif1[0]": 0, "lif2[0]": 128}
    np.testing.assert_array_equal(one.chip_predictions, four.chip_predictions)
    assert one.synaptic_ops_per_inference == four.synaptic_ops_per_inference
    assert one.chip_accuracy == four.chip_accuracy
    result = cosim_samples(one, 2, tmp_path)
    assert result.cases == 2 and result.identical, result.summary()


def test_demo_on_a_simulated_icebreaker(capsys):
    """`neuromesh demo --board icebreaker --port PTY` against the iCEBreaker's
    RTL options in Verilator behind a pseudo-terminal: the board path end to
    end (pyserial, BoardBackend, reset per image), predictions identical."""
    pytest.importorskip("serial")
    from neuromesh.chip import Geometry
    from neuromesh.sim.pty_board import PtyBoard
    with PtyBoard(Geometry.parse(ICEBREAKER), simulator="verilator",
                  board="icebreaker") as chip:
        rc = main(["demo", "--board", "icebreaker", "--port", chip.port, "--limit", "20",
                   "--timeout", "120"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "icebreaker accuracy" in out
    assert "(predictions identical to the emulator: 100.0%)" in out
    # The iCEBreaker build has no counters: said in one line, not an error.
    assert NO_COUNTERS in out.splitlines()


def test_demo_on_a_board_needs_its_port(capsys):
    assert main(["demo", "--board", "ulx3s-85f"]) == 2
    assert "--board needs --port" in capsys.readouterr().err


def test_demo_on_a_board_prints_its_counters(monkeypatch, capsys):
    """`demo --board` with a backend that has counters prints them per
    inference and checks them against the emulator's (here the "board" is
    an emulator, so they agree; a board that counts differently fails)."""
    import neuromesh.boards.cli
    from neuromesh.emulator import Emulator

    class FakeBoard(Emulator):
        def close(self):
            pass

    monkeypatch.setattr(neuromesh.boards.cli, "open_board",
                        lambda args, image, what=None: FakeBoard(image))
    assert main(["demo", "--board", "icebreaker", "--port", "/dev/null", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "counted by the icebreaker (docs/architecture.md §13), per inference:" in out
    assert "counters identical to the emulator's: yes" in out

    class MiscountingBoard(FakeBoard):
        def counters(self):
            return super().counters() + np.uint32(1)

    monkeypatch.setattr(neuromesh.boards.cli, "open_board",
                        lambda args, image, what=None: MiscountingBoard(image))
    with pytest.raises(SystemExit):
        main(["demo", "--board", "icebreaker", "--port", "/dev/null", "--limit", "3"])
    assert "counters identical to the emulator's: NO" in capsys.readouterr().out
