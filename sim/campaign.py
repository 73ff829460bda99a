"""Randomized co-simulation campaigns: many random chip images and inputs
on a few fixed geometries, RTL against the emulator, reproducers on failure.

Each geometry is compiled once (Verilator builds are cached); all its cases
run in one simulation. A case is fully determined by ``(geometry name,
seed)``; a failing one is saved as an image plus inputs, with the command
that replays it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuromesh.builder import ChipBuilder
from neuromesh.chip import Geometry
from neuromesh.image import ChipImage

from .randomgen import random_image, random_inputs
from .runner import CosimResult, run_verilator, stages, write_case

__all__ = ["GEOMETRIES", "corner_cases", "Campaign", "campaign_plan", "make_cases",
           "merge_results", "save_reproducers", "run_campaign"]

#: The geometries campaigns cycle through (1x1 ... 2x2, all delay ring sizes
#: from 2 to 16).
GEOMETRIES = {
    "1x1": Geometry(rows=1, cols=1, n_neurons=16, n_axons=24, n_synapses=64, n_fanout=32,
                    n_profiles=4, n_groups=4, delay_slots=8),
    "1x2": Geometry(rows=1, cols=2, n_neurons=8, n_axons=16, n_synapses=48, n_fanout=24,
                    n_profiles=3, n_groups=2, delay_slots=2),
    "2x1": Geometry(rows=2, cols=1, n_neurons=6, n_axons=12, n_synapses=40, n_fanout=16,
                    n_profiles=2, n_groups=3, delay_slots=16),
    "2x2": Geometry(rows=2, cols=2, n_neurons=8, n_axons=16, n_synapses=48, n_fanout=24,
                    n_profiles=4, n_groups=4, delay_slots=4),
}


def corner_cases(g: Geometry) -> list[tuple[str, ChipImage, np.ndarray]]:
    """Directed cases for ``g``: u wrapping both ways, v clamping both ways,
    round-toward-zero decays of negative values, the strict threshold,
    refractory holds, subtract reset, the extreme bias, every delay, the
    delayed resets, the ``>=`` threshold (also at zero), the floor, and a
    spike chain through every core."""
    cases = []
    n = g.n_neurons
    vmax = 2**23 - 1

    def one(name, *, profile, u=0, v=0, bias=(0, 0), w=None, steps=20, every=1):
        b = ChipBuilder(g)
        c = b.core(0, 0)
        c.profile(0, **profile)
        c.neurons(range(n), profile=0, bias_mant=bias[0], bias_exp=bias[1])
        c.state(range(n), u=u, v=v)
        c.to_host(0, 0)
        if w is not None:
            c.group(0, w_shift=w[1])
            c.synapses(axon=0, target=range(n), w_mant=w[0], delay=np.arange(n) % (g.max_delay + 1))
            b.input(0, 0, 0, 0)
        b.n_inputs = 1
        x = np.zeros((steps, 1), bool)
        x[::every] = w is not None
        cases.append((name, b.build(meta={"name": name}), x))

    one("u-wraps-up", profile=dict(vth_mant=2**17 - 1), u=vmax - 5, w=(127, 15))
    one("u-wraps-down", profile=dict(vth_mant=2**17 - 1), u=-2**23 + 5, w=(-128, 15))
    one("v-clamps-up", profile=dict(vth_mant=2**17 - 1, reset="subtract"), v=vmax - 3,
        u=2**22, every=3, w=(1, 0))
    one("v-clamps-down", profile=dict(vth_mant=2**17 - 1), v=-vmax + 3, u=-2**22)
    one("negative-decays", profile=dict(du=2048, dv=3000, vth_mant=2**17 - 1),
        u=-(2**20) - 7, v=-(2**21) - 3)
    one("threshold-and-refractory", profile=dict(vth_mant=3, refractory=3, dv=4096),
        bias=(3, 6), w=(1, 6))
    one("subtract-reset", profile=dict(vth_mant=2, reset="subtract", refractory=1),
        bias=(100, 0))
    one("bias-extremes", profile=dict(vth_mant=2**17 - 1, dv=1), bias=(-4096, 7))
    one("every-delay", profile=dict(du=4096, dv=4096, vth_mant=1), w=(2, 6), every=5)
    one("delayed-subtract-reset", profile=dict(du=4096, dv=1024, vth_mant=20,
                                               reset="subtract", reset_delay=True),
        bias=(5, 7), w=(9, 6), every=2)
    one("delayed-zero-reset", profile=dict(du=4096, dv=1024, vth_mant=20, reset_delay=True),
        bias=(5, 7), v=2000, w=(-9, 6), every=4)
    one("delayed-resets-on-the-stored-v",
        profile=dict(du=4096, dv=1024, vth_mant=20, reset_delay=True, reset_stored=True),
        bias=(5, 7), w=(9, 6), every=3)
    one("re-tested-subtract-reset",
        profile=dict(du=4096, dv=64, vth_mant=20, reset="subtract", reset_retest=True),
        w=(100, 5), every=7)
    one("threshold-ge", profile=dict(du=4096, dv=4096, vth_mant=8, threshold_ge=True),
        bias=(4, 7), w=(-1, 6), every=3)
    one("threshold-ge-zero-fires-at-rest", profile=dict(vth_mant=0, threshold_ge=True))
    one("floor", profile=dict(vth_mant=2**17 - 1, v_floor=-(3 << 14), reset="subtract"),
        u=-2**20, w=(100, 15), every=6)
    # A chain through every core, one hop per step.
    b = ChipBuilder(g)
    cores = [(x, y) for y in range(g.rows) for x in range(g.cols)]
    for i, (x, y) in enumerate(cores):
        c = b.core(x, y)
        c.profile(0, du=4096, dv=4096, vth_mant=1)
        c.group(0, w_shift=6)
        c.neurons(range(n), profile=0)
        c.synapses(axon=1, target=i % n, w_mant=2, delay=i % (g.max_delay + 1))
        nx, ny = cores[(i + 1) % len(cores)]
        c.route(i % n, nx, ny, 1)
        c.to_host(i % n, i)
    b.input(0, 0, 0, 1)
    x = np.zeros((30, 1), bool)
    x[[0, 7]] = True
    cases.append(("mesh-chain", b.build(meta={"name": "mesh-chain"}), x))
    return cases


@dataclass
class Campaign:
    """Result of :func:`run_campaign`."""

    seed: int
    results: dict = field(default_factory=dict)     # geometry name -> CosimResult
    reproducers: list = field(default_factory=list)  # (case name, replay command)
    seconds: float = 0.0

    @property
    def cases(self) -> int:
        return sum(r.cases for r in self.results.values())

    @property
    def steps(self) -> int:
        return sum(r.steps for r in self.results.values())

    @property
    def divergences(self) -> list:
        return [d for r in self.results.values() for d in r.divergences]

    def summary(self) -> str:
        lines = [f"co-simulation campaign, seed {self.seed}: {self.cases} cases, "
                 f"{self.steps} steps, {len(self.divergences)} divergences, "
                 f"{self.seconds:.0f} s"]
        for name, r in self.results.items():
            lines.append(f"  {name}: {r.summary()}")
        for name, cmd in self.reproducers:
            lines.append(f"  reproduce {name}: {cmd}")
        return "\n".join(lines)


def campaign_plan(n_cases: int, seed: int, geometries, *, corners: bool = True) -> dict:
    """Which cases a campaign runs: ``{geometry name: [case, ...]}`` in run
    order, a case being ``(case name, seed)`` for a random one (seeds ``seed,
    seed + 1, ...`` dealt round-robin over the geometries) or ``(case name,
    corner name)`` for a directed one (after the random ones)."""
    names = list(geometries)
    plan = {name: [] for name in names}
    for k in range(n_cases):
        name = names[k % len(names)]
        plan[name].append((f"{name}-seed{seed + k}", seed + k))
    if corners:
        for name in names:
            plan[name] += [(f"{name}-{cname}", cname)
                           for cname, _, _ in corner_cases(geometries[name])]
    return plan


def make_cases(geometry: Geometry, cases, steps: int, workdir: Path) -> list[dict]:
    """Write the images and inputs of ``cases`` (from :func:`campaign_plan`,
    all of ``geometry``) under ``workdir``; return their job entries. A case
    depends only on its geometry and seed or corner name."""
    corners = None
    jobs = []
    for case_name, what in cases:
        if isinstance(what, str):
            if corners is None:
                corners = {c: (image, x) for c, image, x in corner_cases(geometry)}
            image, x = corners[what]
        else:
            image = random_image(what, geometry)
            x = random_inputs(what, image, steps)
        jobs.append(write_case(workdir, case_name, image, x))
    return jobs


def merge_results(parts) -> CosimResult:
    """One result from the results of consecutive runs of one geometry's
    cases, as if they had run in one simulation: counts add up (the chip's
    cycle counter counts RUN cycles only, which a case's activity decides)
    and divergences keep case order."""
    out = CosimResult()
    for r in parts:
        out.cases += r.cases
        out.steps += r.steps
        out.cycles += r.cycles
        out.divergences += r.divergences
    return out


def save_reproducers(divergences, case_files, repro_dir: Path) -> list:
    """Write each diverging case's image and inputs (``case_files``: case
    name -> (image bytes, inputs bytes)) to ``repro_dir``; return ``(case
    name, replay command)`` pairs in divergence order."""
    out = []
    for d in divergences:
        image_bytes, input_bytes = case_files[d["case"]]
        repro_dir.mkdir(parents=True, exist_ok=True)
        img = repro_dir / f"{d['case']}.nmi"
        inp = repro_dir / f"{d['case']}.inputs.npz"
        img.write_bytes(image_bytes)
        inp.write_bytes(input_bytes)
        out.append((d["case"], f"neuromesh cosim {img} --input {inp} --sim verilator"))
    return out


def run_campaign(n_cases: int, steps: int, seed: int, workdir: Path, *,
                 corners: bool = True, geometries=None, chip_factory=None,
                 repro_dir: Path | None = None, quiet: bool = True,
                 verbose: bool = False) -> Campaign:
    """Run ``n_cases`` random cases (``steps`` steps each) spread over
    ``geometries`` (default :data:`GEOMETRIES`), plus the directed corner
    cases, in this process: one Verilator simulation per geometry. Seeds of
    the cases are ``seed, seed + 1, ...``. ``neuromesh.cluster.campaign``
    runs the same plan on Dask workers. The stages (per geometry: Verilog,
    Verilator compile, simulate) go to stderr unless ``quiet``
    (:class:`~neuromesh.progress.Progress`; ``verbose``: the compiler's
    output too)."""
    from neuromesh.progress import Progress
    geometries = geometries or GEOMETRIES
    t0 = time.perf_counter()
    camp = Campaign(seed=seed)
    plan = campaign_plan(n_cases, seed, geometries, corners=corners)
    jobs = {name: make_cases(geometries[name], cases, steps, Path(workdir) / name)
            for name, cases in plan.items()}
    names = [name for name, cases in jobs.items() if cases]
    with Progress("cosim-campaign", [s for name in names for s in stages(f"{name}: ")],
                  quiet=quiet, verbose=verbose) as progress:
        for name in names:
            camp.results[name] = run_verilator(geometries[name], jobs[name],
                                               chip_factory=chip_factory,
                                               stop_on_divergence=False,
                                               progress=progress, label=f"{name}: ")
    camp.seconds = time.perf_counter() - t0
    files = {c["name"]: (Path(c["image"]).read_bytes(), Path(c["inputs"]).read_bytes())
             for cases in jobs.values() for c in cases
             if any(d["case"] == c["name"] for d in camp.divergences)}
    camp.reproducers = save_reproducers(camp.divergences, files,
                                        Path(repro_dir or Path(workdir) / "reproducers"))
    return camp
