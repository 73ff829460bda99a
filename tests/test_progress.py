"""neuromesh.progress: stage lines off a terminal, one redrawn line on one,
--quiet and --verbose, and stages advanced by a tool's output."""

import io
import re
import sys

import pytest

from neuromesh.progress import Progress, ToolFailed, run_tool


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def make(stages=("a", "b", "c"), **kw):
    out, clock = io.StringIO(), Clock()
    kw.setdefault("tty", False)
    return Progress("job", stages, stream=out, clock=clock, refresh=0, **kw), out, clock


def test_non_tty_prints_one_line_per_stage_with_elapsed_seconds():
    p, out, clock = make()
    with p:
        p.stage("a")
        clock.t += 1.5
        p.stage("b")
        p.detail("not shown off a terminal")
        clock.t += 2.25
        p.stage("c")
        clock.t += 0.5
    assert out.getvalue().splitlines() == [
        "[0.0 s] job 1/3: a",
        "[1.5 s] job 2/3: b",
        "[3.8 s] job 3/3: c",
        "[4.2 s] job: done in 4.2 s (a 1.5 s, b 2.2 s, c 0.5 s)",
    ]
    assert "\r" not in out.getvalue()
    assert p.times == {"a": 1.5, "b": 2.25, "c": 0.5}


def test_failure_is_reported_and_the_exception_passes():
    p, out, clock = make()
    with pytest.raises(RuntimeError), p:
        p.stage("a")
        clock.t += 3
        raise RuntimeError("boom")
    assert out.getvalue().splitlines()[-1] == "[3.0 s] job: failed in 3.0 s (a 3.0 s)"


def test_tty_redraws_one_line_with_a_bar_over_the_stages():
    p, out, clock = make(stages=[f"s{i}" for i in range(4)], tty=True)
    p.stage("s0")
    clock.t += 1
    p.stage("s2")
    clock.t += 7
    p.detail("ABC9   pass")
    text = out.getvalue()
    assert "\n" not in text                       # nothing but redraws so far
    frames = text.split("\r")[1:]
    assert frames[0].rstrip() == "job [....................] 1/4 s0 0 s (total 0 s)"
    assert frames[1].rstrip() == "job [##########..........] 3/4 s2 0 s (total 1 s)"
    assert frames[2].rstrip() == "job [##########..........] 3/4 s2 7 s (total 8 s)  ABC9 pass"
    p.finish()
    assert out.getvalue().endswith("job: done in 8.0 s (s0 1.0 s, s2 7.0 s)\n")
    # The final line replaces the redrawn one: it is blanked first.
    last = out.getvalue().rsplit("\r", 1)[1]
    assert last == "job: done in 8.0 s (s0 1.0 s, s2 7.0 s)\n"


def test_tty_redraws_are_throttled_but_stage_changes_are_not():
    p, out, clock = make(tty=True)
    p.stage("a")
    for _ in range(50):
        p.detail("x")                             # same instant: not redrawn
    assert out.getvalue().count("\r") == 1
    clock.t += 0.2
    p.detail("y")
    p.stage("b")
    assert out.getvalue().count("\r") == 3


def test_message_between_redraws_gets_a_line_of_its_own():
    p, out, clock = make(tty=True)
    p.stage("a")
    p.message("warning: something")
    lines = out.getvalue().split("\n")
    assert lines[0].endswith("warning: something")
    assert lines[1].lstrip("\r").startswith("job [")


def test_quiet_prints_nothing_but_still_times_the_stages():
    for tty in (False, True):
        p, out, clock = make(quiet=True, tty=tty)
        with p:
            p.stage("a")
            clock.t += 2
            p.detail("x")
            p.tool_line("tool output\n")
            p.message("note")
            p.stage("b")
        assert out.getvalue() == ""
        assert p.times == {"a": 2.0, "b": 0.0}


def test_verbose_streams_tool_lines_between_stage_lines_even_on_a_tty():
    p, out, clock = make(verbose=True, tty=True)
    assert not p.tty
    with p:
        p.stage("a")
        p.tool_line("yosys says hello\n")
        p.tool_line("no newline")
    assert out.getvalue().splitlines() == [
        "[0.0 s] job 1/3: a", "yosys says hello", "no newline",
        "[0.0 s] job: done in 0.0 s (a 0.0 s)"]


def test_stages_never_go_back_and_unlisted_stages_have_no_count():
    p, out, clock = make()
    p.stage("b")
    p.advance_to("a")          # a trigger seen again later in the log
    p.advance_to("b")
    p.advance_to("c")
    p.stage("extra")
    assert [line.split("] ", 1)[1] for line in out.getvalue().splitlines()] == [
        "job 2/3: b", "job 3/3: c", "job: extra"]


FAKE_TOOL = r"""
import sys
lines = '''2.1. Executing HIERARCHY pass (managing design hierarchy).
2.45. Executing ABC9 pass.
Info: Packing constants..
Info: Creating initial analytic placement for 4400 cells, random placement wirelen = 99.
Info: Placing...
Info: Routing globals...
Info: Setting up routing queue.
Info: Routing 18000 arcs.
Info: Placing an afterthought
Info: Program finished normally.'''.splitlines()
for line in lines:
    print(line, flush=True)
if len(sys.argv) > 1:
    print("ERROR: Max frequency for clock 'clk': 3 MHz", file=sys.stderr, flush=True)
    sys.exit(int(sys.argv[1]))
"""


def test_run_tool_advances_stages_from_the_log_and_keeps_the_full_log(tmp_path):
    tool = tmp_path / "tool.py"
    tool.write_text(FAKE_TOOL)
    log = tmp_path / "tool.log"
    p, out, clock = make(stages=["synthesize", "place", "route", "pack"])
    p.stage("synthesize")
    run_tool(p, [sys.executable, str(tool)], log=log,
             triggers=[(r"^Info: Packing", "place"), (r"^Info: (Placing|Creating)", "place"),
                       (r"^Info: Routing", "route")],
             detail=r"^\d+(?:\.\d+)*\. Executing (\S+)")
    p.stage("pack")
    stages = [re.sub(r"^\[.*?\] job \d/4: ", "", line) for line in out.getvalue().splitlines()]
    assert stages == ["synthesize", "place", "route", "pack"]
    assert log.read_text().splitlines()[0].startswith("2.1. Executing HIERARCHY")
    assert len(log.read_text().splitlines()) == 10
    assert p._detail == ""                # reset by the stage change
    p2, _, _ = make(stages=["synthesize"], tty=True)
    p2.stage("synthesize")
    run_tool(p2, [sys.executable, str(tool)], detail=r"^\d+(?:\.\d+)*\. Executing (\S+)")
    assert p2._detail == "ABC9"


def test_run_tool_failure_names_the_first_error_and_the_log(tmp_path):
    tool = tmp_path / "tool.py"
    tool.write_text(FAKE_TOOL)
    log = tmp_path / "tool.log"
    p, out, clock = make(verbose=True)
    p.stage("a")
    with pytest.raises(ToolFailed) as e:
        run_tool(p, [sys.executable, str(tool), "3"], log=log, what="nextpnr")
    assert e.value.returncode == 3 and e.value.log == log
    assert str(e.value) == ("nextpnr failed (exit 3): ERROR: Max frequency for clock 'clk': "
                            f"3 MHz (full log: {log})")
    # verbose: the tool's own lines went to the stream too
    assert "Info: Routing 18000 arcs." in out.getvalue()
    assert "ERROR: Max frequency" in log.read_text()


def test_many_stages_close_without_the_breakdown():
    p, out, clock = make(stages=[f"s{i}" for i in range(8)])
    with p:
        for i in range(8):
            p.stage(f"s{i}")
            clock.t += 1
    assert out.getvalue().splitlines()[-1] == "[8.0 s] job: done in 8.0 s"


RTL_GEOMETRY = "1x1,n_neurons=8,n_axons=8,n_synapses=16,n_fanout=8,n_profiles=2,n_groups=1"


def test_cli_rtl_prints_its_stages_on_stderr(tmp_path, capsys):
    from neuromesh.cli import main
    out = tmp_path / "chip.v"
    assert main(["rtl", "--geometry", RTL_GEOMETRY, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert [re.sub(r"^\[ *[\d.]+ s\] ", "", line) for line in lines[:3]] == [
        "rtl 1/3: elaborate", "rtl 2/3: convert (RTLIL, yosys)", "rtl 3/3: write"]
    assert re.fullmatch(r"\[ *[\d.]+ s\] rtl: done in [\d.]+ s \(elaborate [\d.]+ s, "
                        r"convert \(RTLIL, yosys\) [\d.]+ s, write [\d.]+ s\)", lines[3])
    assert len(lines) == 4
    assert captured.out.startswith(f"wrote {out}: neuromesh_chip for ")   # stdout unchanged
    assert "module neuromesh_chip" in out.read_text()


def test_cli_rtl_quiet_prints_no_stages(tmp_path, capsys):
    from neuromesh.cli import main
    out = tmp_path / "chip.v"
    assert main(["rtl", "--geometry", RTL_GEOMETRY, "-o", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith(f"wrote {out}")


def test_nothing_is_printed_when_no_stage_started():
    p, out, clock = make()
    with pytest.raises(ValueError), p:
        raise ValueError("refused before any work")
    assert out.getvalue() == ""


def test_cli_rtl_refuses_a_geometry_without_stage_lines(tmp_path, capsys):
    from neuromesh.cli import main
    assert main(["rtl", "--geometry", "16x16,n_neurons=1024,n_axons=65535", "-o",
                 str(tmp_path / "chip.v")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("neuromesh rtl: error: geometry 16x16")


def test_follow_file_streams_a_growing_log_and_counts_compiled_files(tmp_path):
    from neuromesh.progress import follow_file
    from neuromesh.sim.runner import CompileCount
    log = tmp_path / "build.log"
    log.write_text("")
    p, out, clock = make(verbose=True)
    p.stage("a")
    f = follow_file(p, log, detail=CompileCount())
    with open(log, "a") as w:
        w.write("- Verilator: Built from 1.578 MB sources in 57 modules, into 2.371 MB in "
                "12 C++ files needing 0.008 MB\n")
        w.write("c++ -Os -I. -c -o verilated.o /x/include/verilated.cpp\n")
        w.write("c++ -Os -I. -include Vtop__pch.h.fast -c Vtop.cpp\n")
        w.write("c++ -Os -I. -include Vtop__pch.h.slow -c Vtop__Sl")      # half a line
    f.poll()
    assert p._detail == "compiling Vtop.cpp, C++ 1/12"
    assert out.getvalue().splitlines()[-1] == "c++ -Os -I. -include Vtop__pch.h.fast -c Vtop.cpp"
    with open(log, "a") as w:
        w.write("ow.cpp\n")
    f.poll()
    assert p._detail == "compiling Vtop__Slow.cpp, C++ 2/12"
    assert out.getvalue().count("Vtop__Slow.cpp") == 1        # echoed once, whole
    small = CompileCount()
    small("- Verilator: Built from 0.5 MB sources in 9 modules, into 0.7 MB in 4 C++ files")
    assert small("c++ -Os -c Vtop__ALL.cpp") == \
        "compiling Vtop__ALL.cpp (all 4 generated C++ files)"
