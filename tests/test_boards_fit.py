"""The fit check of board builds (neuromesh.boards.fit): block-RAM counts
derived from the elaborated RTL equal those of the recorded builds
(docs/boards.md), and a geometry that cannot fit is refused, with the
numbers, before any tool runs."""

import dataclasses
import re

import pytest

pytest.importorskip("amaranth_boards")

from neuromesh.boards import build as build_module  # noqa: E402
from neuromesh.boards.build import build  # noqa: E402
from neuromesh.boards.catalog import BOARDS  # noqa: E402
from neuromesh.boards.fit import (  # noqa: E402
    ECP5_DP16KD,
    ECP5_LUTRAM,
    ICE40_EBR,
    FitError,
    check_fit,
    estimate,
    map_memory,
)
from neuromesh.chip import Geometry  # noqa: E402
from neuromesh.cli import main  # noqa: E402


def test_icebreaker_default_build_matches_the_recorded_build():
    # docs/boards.md: 28 of 30 EBRs, 2 of 4 SPRAMs, 5 DSPs, 5056 logic cells (the
    # logic is calibrated on that build; the memories are counted)
    est = estimate("icebreaker", BOARDS["icebreaker"].geometry)
    assert est.needed["EBR"] == 28 and est.needed["SPRAM"] == 2
    assert est.needed["DSP"] == 5
    assert est.needed["logic cells"] == 5056
    assert est.fits
    # and per memory, as docs/boards.md lists them
    ebr = {m.path.rsplit(".", 1)[-1] if "storage" not in m.path else m.path.split(".")[-2]:
           m.cells for m in est.memories if m.resource == "EBR"}
    assert ebr == {"mem_accum": 6, "mem_state": 4, "mem_profile": 4, "mem_neuron": 3,
                   "mem_axon": 2, "mem_fanout": 2, "spikes": 2, "payload": 3, "queue": 1,
                   "outbuf": 1}


def test_ulx3s_default_build_matches_the_recorded_build():
    # docs/boards.md: 147 DP16KD (18 per core, 3 for the host link), 33 DSPs,
    # built with the core without overlap; the overlapped core's two ACCUM
    # banks (1024 x 24 each: 2 DP16KD) take one more than one ring (2048 x 24:
    # 3 DP16KD), so 19 per core (docs/synthesis.md).
    est = estimate("ulx3s-85f", BOARDS["ulx3s-85f"].geometry)
    assert est.needed["DP16KD"] == 147 + 8 and est.needed["DSP"] == 33
    core = [m for m in est.memories if ".core_0_0." in m.path and m.resource == "DP16KD"]
    assert sum(m.cells for m in core) == 19
    assert {m.path.split(".")[-1]: m.cells for m in core if "mem_accum" in m.path} == \
        {"mem_accum0": 2, "mem_accum1": 2}
    assert {m.path.split(".")[-1]: m.cells for m in core if "mem_synapse" in m.path} == \
        {"mem": 7}
    assert est.fits


def test_ulx3s_learning_build_matches_the_recorded_build():
    # docs/boards.md: 195 DP16KD, 81 DSPs, as nextpnr counted them for the
    # catalog's learning build (cores without overlap, RULE in block RAM):
    # 6 more per core than without learning (TAG 2, RULE 2, XTRACE 1,
    # YTRACE 1) and one less for the single accumulator ring.
    est = estimate("ulx3s-85f", BOARDS["ulx3s-85f"].geometry, learning=True)
    assert est.needed["DP16KD"] == 195 and est.needed["DSP"] == 81
    names = ("mem_tag", "mem_xtrace", "mem_ytrace", "mem_rule")
    learn = {m.path.rsplit(".", 1)[-1]: (m.resource, m.cells) for m in est.memories
             if ".core_0_0.learning." in m.path and m.path.rsplit(".", 1)[-1] in names}
    assert learn == {"mem_tag": ("DP16KD", 2), "mem_xtrace": ("DP16KD", 1),
                     "mem_ytrace": ("DP16KD", 1), "mem_rule": ("DP16KD", 2)}
    assert est.fits
    # The other forms of docs/synthesis.md: the overlapped core (one DP16KD
    # more per core) and RULE in distributed RAM (two less per core).
    forms = {(True, None): 203, (True, "distributed"): 187, (False, "distributed"): 179}
    for (overlap, rule), need in forms.items():
        core_args = {"overlap": overlap, **({"rule_ram_style": rule} if rule else {})}
        other = dataclasses.replace(BOARDS["ulx3s-85f"],
                                    learning_chip_args={"core_args": core_args})
        assert estimate(other, other.geometry, learning=True).needed["DP16KD"] == need


def test_memory_mapping_follows_the_block_ram_aspect_ratios():
    # docs/synthesis.md, the unnarrowed core on each family
    assert map_memory(28, 4096, rams=(ICE40_EBR,)) == ("EBR", 28)       # 2048x2, 2 deep
    assert map_memory(24, 2048, rams=(ICE40_EBR,)) == ("EBR", 12)
    assert map_memory(52, 8, rams=(ICE40_EBR,)) == ("EBR", 4)          # 256x16, wide
    assert map_memory(8, 1030, rams=(ICE40_EBR,)) == ("EBR", 3)        # 512x8, 3 deep
    ecp5 = (ECP5_DP16KD, ECP5_LUTRAM)
    assert map_memory(28, 4096, rams=ecp5) == ("DP16KD", 7)            # 4096x4
    assert map_memory(24, 2048, rams=ecp5) == ("DP16KD", 3)            # 2048x9
    assert map_memory(39, 512, rams=ecp5) == ("DP16KD", 2)             # 512x36
    assert map_memory(52, 8, rams=ecp5) == ("LUT RAM (16x4)", 13)      # PROFILE
    # too small for a block RAM, or read combinationally: logic
    assert map_memory(25, 3, rams=(ICE40_EBR,)) == ("logic", 75)
    assert map_memory(4, 4, async_read=True, rams=(ICE40_EBR,)) == ("logic", 16)
    assert map_memory(52, 8, rams=(ICE40_EBR,), style="logic") == ("logic", 416)


@pytest.mark.parametrize("geometry, numbers", [
    ("2x2", ["logic cells ~12946 needed / 5280 available", "EBR 130 needed / 30 available",
             "SPRAM 8 needed / 4 available", "DSP 17 needed / 8 available"]),
    ("4x4", ["logic cells ~44506 needed / 5280 available", "EBR 502 needed / 30 available",
             "SPRAM 32 needed / 4 available", "DSP 65 needed / 8 available"]),
])
def test_icebreaker_refuses_2x2_and_4x4_with_the_numbers(geometry, numbers):
    with pytest.raises(FitError) as e:
        check_fit("icebreaker", geometry)
    message = str(e.value)
    for text in numbers:
        assert text in message
    est = e.value.estimate
    assert est.over == {k: (est.needed[k], est.available[k])
                        for k in ("logic cells", "EBR", "SPRAM", "DSP")}
    # one core of these sizes needs 36 EBRs, so the offer is the board's default
    default = Geometry.parse(BOARDS["icebreaker"].geometry)
    assert e.value.suggestion == default
    assert f"the largest geometry that fits is {default} (the board's default)" in message
    assert estimate("icebreaker", e.value.suggestion).fits
    assert message.endswith("--force builds anyway")


def test_ulx3s_offers_the_largest_mesh_inside_the_requested_one():
    with pytest.raises(FitError) as e:
        check_fit("ulx3s-85f", "4x4")
    assert "DP16KD 307 needed / 208 available" in str(e.value)   # 16 x 19 + 3
    assert e.value.suggestion == Geometry.parse("3x3")            # 9 x 19 + 3 = 174
    assert "largest geometry that fits is 3x3;" in str(e.value)
    assert estimate("ulx3s-85f", "3x4").needed["DP16KD"] == 231   # 12 cores: over


@pytest.fixture
def no_tools(monkeypatch):
    """Fail the test if a build gets past the fit check (elaboration for the
    build, or any tool)."""
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a tool or the build ran")

    monkeypatch.setattr(build_module, "_build", forbidden)
    monkeypatch.setattr(build_module, "run_tool", forbidden)
    monkeypatch.setattr("subprocess.Popen", forbidden)
    monkeypatch.setattr("subprocess.run", forbidden)
    return calls


def test_refusal_happens_before_any_tool_runs(tmp_path, no_tools, capsys):
    out = tmp_path / "out"
    with pytest.raises(FitError):
        build("icebreaker", "2x2", out)
    assert not out.exists() and not no_tools
    err = capsys.readouterr().err
    assert "build 1/6: fit check" in err and "build: failed" in err
    assert "elaborate" not in err.split("failed")[0].split("fit check")[1]


def test_cli_refuses_in_one_line_with_exit_status_2(tmp_path, no_tools, capsys):
    out = tmp_path / "out"
    assert main(["build", "--board", "icebreaker", "--geometry", "2x2", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("neuromesh build: error: geometry 2x2 does not fit the "
                              "icebreaker (iCE40UP5K): logic cells ~12946 needed / 5280")
    assert "EBR 130 needed / 30 available" in err[-1]
    assert not out.exists() and not no_tools


def test_force_skips_the_check(tmp_path, monkeypatch):
    seen = []

    def fake_build(b, geometry, out, *args, **kwargs):
        seen.append(str(geometry))
        return "report"

    monkeypatch.setattr(build_module, "_build", fake_build)
    monkeypatch.setattr(build_module, "check_fit", None, raising=False)
    assert build("icebreaker", "2x2", tmp_path, force=True, quiet=True) == "report"
    assert seen == ["2x2"]


FAKE_TOOL = """#!{python}
import sys
from pathlib import Path
name = Path(sys.argv[0]).name
lines = {{
    "yosys": ["2.1. Executing HIERARCHY pass (managing design hierarchy).",
              "2.45. Executing ABC9 pass."],
    "nextpnr": ["Info: Packing constants..", "Info: Placing..", "Info: Routing globals...",
                "Info: Routing 18000 arcs.", "Info: Program finished normally."],
    "icepack": [],
}}[name]
for line in lines:
    print(line, flush=True)
if name == "nextpnr" and {fail!r} == "nextpnr":
    print("ERROR: Unable to place cell 'x'", file=sys.stderr)
    sys.exit(1)
if name == "icepack":
    Path(sys.argv[-1]).write_bytes(b"bitstream"[:{cut}])
    if {fail!r} == "pack":
        print("Error: disk full", file=sys.stderr)
        sys.exit(1)
"""


@pytest.mark.parametrize("fail", [None, "nextpnr", "pack"])
def test_build_stages_follow_the_tools_output(tmp_path, monkeypatch, capsys, fail):
    """The stages of a build from a fake toolchain's output (elaboration and
    Amaranth's build script are real): fit check, elaborate, synthesize,
    place, route (from nextpnr's log), pack; the full log in neuromesh.log,
    named on failure. The bitstream is renamed into place: a failed build
    (a packer that wrote half a file) leaves the previous one whole."""
    import sys
    tools = {}
    for var, name in [("YOSYS", "yosys"), ("NEXTPNR_ICE40", "nextpnr"), ("ICEPACK", "icepack")]:
        path = tmp_path / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(FAKE_TOOL.format(python=sys.executable, fail=fail,
                                         cut=4 if fail == "pack" else 9))
        path.chmod(0o755)
        tools[var] = str(path)
    monkeypatch.setattr(build_module, "tool_env", lambda family: tools)
    out = tmp_path / "out"
    out.mkdir()
    (out / "neuromesh.bin").write_bytes(b"previous")
    report = build("icebreaker", None, out)
    err = capsys.readouterr().err.splitlines()
    stages = [re.sub(r"^\[[\d.]+ s\] build:? ", "", line) for line in err]
    log = (out / "neuromesh.log").read_text()
    assert "2.45. Executing ABC9 pass." in log and "Info: Routing 18000 arcs." in log
    assert log.splitlines()[0].startswith('$ "$YOSYS"')
    assert not list(out.glob(".*.tmp"))
    assert (out / "neuromesh.bin").read_bytes() == (b"bitstream" if fail is None else b"previous")
    if fail is None:
        assert stages == ["1/6: fit check", "2/6: elaborate", "3/6: synthesize (yosys)",
                          "4/6: place (nextpnr)", "5/6: route (nextpnr)", "6/6: pack (icepack)",
                          stages[-1]]
        assert stages[-1].startswith("done in ")
        assert report.bitstream == str((out / "neuromesh.bin").resolve())
        assert report.error is None
    elif fail == "pack":
        assert stages[-2] == "6/6: pack (icepack)" and stages[-1].startswith("failed in ")
        assert report.bitstream is None and "Error: disk full" in report.error
    else:
        assert stages[:5] == ["1/6: fit check", "2/6: elaborate", "3/6: synthesize (yosys)",
                              "4/6: place (nextpnr)", "5/6: route (nextpnr)"]
        assert stages[-1].startswith("failed in ") and f"full log: {out.resolve()}" in err[-1]
        assert report.bitstream is None
        assert report.error == ("toolchain failed: nextpnr failed (exit 1): ERROR: Unable to "
                                f"place cell 'x' (full log: {(out / 'neuromesh.log').resolve()})")
