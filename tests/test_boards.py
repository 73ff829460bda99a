"""Board builds: the iCEBreaker bitstream (in CI) and the ULX3S-85F one (slow),
built from pip packages only, must fit and meet their target clock."""

import argparse
import json

import numpy as np
import pytest
from amaranth.hdl import Fragment

from neuromesh.boards.build import BuildReport, _parse_report, build, tool_env
from neuromesh.boards.cli import cmd_build, make_backend, register
from neuromesh.boards.top import BOARDS, BoardTop, board_chip
from neuromesh.chip import ChipError, Geometry

pytest.importorskip("amaranth_boards")


def parse(argv):
    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def test_icebreaker_bitstream_fits_and_meets_timing(tmp_path, capsys):
    args = parse(["build", "--board", "icebreaker", "-o", str(tmp_path)])
    cmd_build(args)                         # raises ChipError unless it passed
    out = capsys.readouterr().out
    assert "PASS" in out
    report = json.loads((tmp_path / "neuromesh.report.json").read_text())
    assert report["passed"] and report["fits"] and report["meets_timing"]
    g = Geometry.parse(report["geometry"])
    assert g.n_cores == 1 and g.n_neurons >= 256
    used = {name: u for name, (u, avail) in report["resources"].items()}
    assert used["block RAM (EBR)"] <= 30 and used["SPRAM"] == 2
    assert used["logic cells"] <= 5280
    assert report["fmax_mhz"] >= report["clock_mhz"] == 24     # through the PLL
    assert (tmp_path / "neuromesh.bin").stat().st_size > 100_000


@pytest.mark.slow
def test_ulx3s_bitstream_fits_and_meets_timing(tmp_path):
    report = build("ulx3s-85f", None, tmp_path)
    print(report.summary())
    assert report.passed, report.summary()
    g = Geometry.parse(report.geometry)
    assert g.n_cores >= 8 and g.n_neurons >= 256
    assert (tmp_path / "neuromesh.bit").exists()


@pytest.mark.slow
def test_ulx3s_learning_bitstream_fits_and_meets_timing(tmp_path):
    """`neuromesh build --board ulx3s-85f --learning`: eight cores, each with
    its learning engine (docs/boards.md records the numbers)."""
    args = parse(["build", "--board", "ulx3s-85f", "--learning", "-o", str(tmp_path)])
    cmd_build(args)                         # raises ChipError unless it passed
    report = json.loads((tmp_path / "neuromesh.report.json").read_text())
    assert report["passed"] and report["learning"]
    assert report["fmax_mhz"] >= report["clock_mhz"] == 50     # through the PLL
    assert (tmp_path / "neuromesh.bit").exists()


def test_report_fails_when_over_or_slow(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({
        "utilization": {"ICESTORM_LC": {"used": 5697, "available": 5280},
                        "ICESTORM_RAM": {"used": 28, "available": 30}},
        "fmax": {"clk": {"achieved": 11.5, "constraint": 12.0}}}))
    r = BuildReport(board="icebreaker", geometry="1x1", family="ice40", clock_mhz=12.0,
                    bitstream="x.bin")
    _parse_report(r, path)
    assert r.resources["logic cells"] == [5697, 5280]
    assert not r.fits and not r.meets_timing and not r.passed
    assert "OVER" in r.summary() and "MISSED" in r.summary() and "FAIL" in r.summary()
    r.resources["logic cells"] = [5000, 5280]
    r.fmax_mhz = 12.5
    assert r.passed


def test_tools_are_the_yowasp_wheels():
    env = tool_env("ice40")
    assert set(env) == {"YOSYS", "NEXTPNR_ICE40", "ICEPACK"}
    assert all("yowasp-" in path for path in env.values())
    assert set(tool_env("ecp5")) == {"YOSYS", "NEXTPNR_ECP5", "ECPPACK"}


def test_board_defaults_and_options():
    for name, board in BOARDS.items():
        g = Geometry.parse(board.geometry)
        assert g.n_neurons >= 256
        assert "openFPGALoader" not in board.make_platform().required_tools
        small = Geometry(rows=1, cols=1, n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4,
                         n_profiles=2, n_groups=2, delay_slots=4)
        plain = board_chip(name, small)
        Fragment.get(plain, None)    # the options elaborate
        # --learning reaches every core (its LearningUnit elaborates too)
        chip = board_chip(name, small, learning=True)
        Fragment.get(chip, None)
        assert chip.learning
        # Counters only when asked (build --counters): the board's RTL is unchanged.
        assert not plain.counters
        top = BoardTop(name, small)
        top._MustUse__silence = True     # built by `neuromesh build` only (a platform)
        assert not top.counters
        chip = board_chip(name, small, counters=True)
        Fragment.get(chip, None)
        assert chip.counters
    assert Geometry.parse(BOARDS["ulx3s-85f"].geometry).n_cores >= 8
    args = parse(["build", "--board", "ulx3s-85f", "--geometry", "2x2", "-o", "out"])
    assert (args.board, args.geometry, args.output) == ("ulx3s-85f", "2x2", "out")
    assert not args.counters
    assert parse(["build", "--board", "ulx3s-85f", "--counters"]).counters
    with pytest.raises(SystemExit):
        parse(["build", "--board", "nexys"])


def test_make_backend():
    from neuromesh.emulator import Emulator
    from neuromesh.sim.randomgen import random_image
    image = random_image(1, Geometry(rows=1, cols=1, n_neurons=4, n_axons=4, n_synapses=8,
                                     n_fanout=4, n_profiles=2, n_groups=2, delay_slots=4),
                         n_inputs=2)
    args = argparse.Namespace(backend="emulator", port=None, baud=115200)
    assert isinstance(make_backend(args, image, 2), Emulator)
    args.backend = "board"
    with pytest.raises(ChipError, match="--port"):
        make_backend(args, image, 1)


def test_digits_runner_matches_the_demo():
    """The board's digits loop (reset, run one image, decode) gives the demo's
    predictions when the backend is the emulator (a board is bit-exact)."""
    from neuromesh.boards.digits import compile_digits, run_digits
    from neuromesh.demo import run_demo
    from neuromesh.emulator import Emulator
    geometry = BOARDS["ulx3s-85f"].geometry
    compiled = compile_digits(geometry)
    r = run_digits(Emulator(compiled.image), compiled, limit=12)
    demo = run_demo(geometry=geometry, limit=12)
    np.testing.assert_array_equal(r["predictions"], demo.chip_predictions)
    assert r["accuracy"] == demo.chip_accuracy >= 0.75
    # Image by image from a reset, the counters add up to the demo's batch run's.
    np.testing.assert_array_equal(r["counters"], demo.counters.astype(np.int64).sum(axis=0))
