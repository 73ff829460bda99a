"""Verilog generation: the CLI writes it and Verilator's -Wall lint is clean
apart from the documented generated-code waivers."""

import re

import pytest

from neuromesh.cli import main
from neuromesh.sim.verilator import LINT_WAIVERS, lint


@pytest.mark.parametrize("geometry", [
    "1x1,n_neurons=16,n_axons=16,n_synapses=64,n_fanout=32,n_groups=1,n_profiles=1",
    "2x2,n_neurons=8,n_axons=8,n_synapses=32,n_fanout=16"])
def test_rtl_command_writes_lint_clean_verilog(tmp_path, capsys, geometry):
    out = tmp_path / "chip.v"
    assert main(["rtl", "--geometry", geometry, "-o", str(out), "--lint"]) == 0
    text = capsys.readouterr().out
    assert "verilator --lint-only -Wall: clean" in text
    source = out.read_text()
    assert re.search(r"^module neuromesh_chip\(", source, re.M)
    cores = 4 if geometry.startswith("2x2") else 1
    assert len(re.findall(r"^module \\neuromesh_chip\.core_\d_\d ", source, re.M)) == cores


def test_counters_and_learning_verilog_is_lint_clean(tmp_path, capsys):
    """The activity counters (§13), with the learning engines, lint clean."""
    out = tmp_path / "chip.v"
    assert main(["rtl", "--geometry", "1x2,n_neurons=8,n_axons=8,n_synapses=32,n_fanout=16",
                 "-o", str(out), "--lint", "--counters", "--learning"]) == 0
    assert "verilator --lint-only -Wall: clean" in capsys.readouterr().out
    assert "count_hops" in out.read_text()


def test_lint_reports_real_problems(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output b); assign b = c; endmodule\n")
    problems = lint(bad)
    assert problems and any("c" in p for p in problems)
    assert "WIDTHEXPAND" in LINT_WAIVERS
