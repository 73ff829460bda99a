"""Randomized co-simulation campaigns on Dask workers.

The plan is the serial campaign's (:func:`neuromesh.sim.campaign.campaign_plan`:
the same case seeds, geometries and corner cases for the same seed). Each
geometry's cases are cut into chunks of consecutive cases; a chunk is one
task, which makes its cases on the worker from their seeds (nothing but the
seed travels), runs them in one Verilator simulation and sends back the
counts, the divergences and the files of any diverging case. The client
merges the chunks of a geometry in case order and writes the reproducers
with their replay command, so the summary has the same content as the
serial campaign's (only the wall time differs).

Verilator builds: each worker process builds a geometry's model at most once
and keeps the build folder for its later chunks; builds are cached on disk
by a hash of the Verilog (``~/.cache/neuromesh``), and a file lock per
geometry makes workers sharing a disk wait for one build instead of racing
to make the same one.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from neuromesh.chip import ChipError

from .tasks import Task, run_tasks

__all__ = ["DEFAULT_CASES_PER_TASK", "run_campaign", "worker_build_counts", "worker_builds"]

#: Cases per task: a Verilator simulation starts in about a second; 25 cases
#: of 100 steps take about 20 s to compare step by step.
DEFAULT_CASES_PER_TASK = 25

_BUILDS: dict = {}
_BUILDS_LOCK = threading.Lock()
#: Per geometry, in this process: calls of build_verilator, and tasks served.
_BUILD_CALLS: Counter = Counter()
_BUILD_USES: Counter = Counter()


def worker_builds() -> dict:
    """This process's Verilator builds: ``{geometry: build folder}`` (for
    tests and ``client.run``)."""
    with _BUILDS_LOCK:
        return {str(g): str(b) for (g, _), b in _BUILDS.items()}


def worker_build_counts() -> dict:
    """This process's ``{geometry: (builds, tasks)}``: how often it called
    the Verilator build for a geometry, and how many tasks used the model
    (for tests and ``client.run``: builds stay at 1 however many tasks)."""
    with _BUILDS_LOCK:
        return {g: (_BUILD_CALLS[g], _BUILD_USES[g]) for g in _BUILD_USES}


@contextmanager
def _file_lock(path: Path):
    import fcntl
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_for(geometry, chip_factory) -> Path:
    """The Verilator build of ``geometry`` in this worker: made (or found in
    the disk cache) once, under a lock shared by the workers of one disk."""
    from neuromesh.sim.runner import build_verilator, cache_dir
    key = (geometry, chip_factory)
    with _BUILDS_LOCK:
        build = _BUILDS.get(key)
        _BUILD_USES[str(geometry)] += 1
    if build is not None and (build / "ready").exists():
        return build
    factory = "" if chip_factory is None else \
        f"{getattr(chip_factory, '__module__', '')}.{getattr(chip_factory, '__qualname__', '')}"
    tag = hashlib.sha256(f"{geometry}|{factory}".encode()).hexdigest()[:16]
    with _file_lock(cache_dir() / f"build-{tag}.lock"):
        build = build_verilator(geometry, chip_factory=chip_factory)
    with _BUILDS_LOCK:
        _BUILDS[key] = build
        _BUILD_CALLS[str(geometry)] += 1
    return build


def _run_cases(geometry, cases, steps, chip_factory):
    """One task: make ``cases`` of ``geometry`` here, run them in one
    Verilator simulation, return the result and the files of diverging cases."""
    from neuromesh.sim.campaign import make_cases
    from neuromesh.sim.runner import run_verilator
    build = _build_for(geometry, chip_factory)
    with tempfile.TemporaryDirectory(prefix="neuromesh-cosim-") as tmp:
        jobs = make_cases(geometry, cases, steps, Path(tmp) / "cases")
        result = run_verilator(geometry, jobs, chip_factory=chip_factory,
                               stop_on_divergence=False, build=build, workdir=tmp)
        bad = {d["case"] for d in result.divergences}
        files = {j["name"]: (Path(j["image"]).read_bytes(), Path(j["inputs"]).read_bytes())
                 for j in jobs if j["name"] in bad}
    return {"result": result, "files": files}


def run_campaign(n_cases: int, steps: int, seed: int, *, client, corners: bool = True,
                 geometries=None, chip_factory=None, repro_dir: Path | None = None,
                 cases_per_task: int = DEFAULT_CASES_PER_TASK, progress: bool = False):
    """The campaign of :func:`neuromesh.sim.campaign.run_campaign` with its
    cases spread over the workers of ``client`` (``None``: in this process,
    chunk by chunk). Returns the same :class:`~neuromesh.sim.campaign.Campaign`
    (results per geometry, reproducers written to ``repro_dir``, default
    ``cosim-reproducers``). ``chip_factory`` must be importable on the
    workers (a module-level function)."""
    from neuromesh.sim.campaign import (
        GEOMETRIES,
        Campaign,
        campaign_plan,
        merge_results,
        save_reproducers,
    )
    if n_cases < 0 or steps < 1:
        raise ChipError(f"--cases {n_cases} / --steps {steps}: need cases >= 0 and steps >= 1")
    if cases_per_task < 1:
        raise ChipError(f"cases per task = {cases_per_task}: must be at least 1")
    geometries = geometries or GEOMETRIES
    t0 = time.perf_counter()
    plan = campaign_plan(n_cases, seed, geometries, corners=corners)
    chunks = {name: [cases[i:i + cases_per_task]
                     for i in range(0, len(cases), cases_per_task)]
              for name, cases in plan.items()}
    # Geometries interleaved: the first tasks build different models at once.
    order = [(name, k) for k in range(max(map(len, chunks.values()), default=0))
             for name in chunks if k < len(chunks[name])]
    tasks = [Task(f"{name} cases {chunks[name][k][0][0]}..{chunks[name][k][-1][0]}",
                  len(chunks[name][k]), _run_cases,
                  (geometries[name], chunks[name][k], steps, chip_factory))
             for name, k in order]
    parts = run_tasks(tasks, client, name="neuromesh-cosim", unit="case", progress=progress)
    by_chunk = dict(zip(order, parts))
    camp = Campaign(seed=seed)
    files = {}
    for name in chunks:
        if chunks[name]:
            done = [by_chunk[(name, k)] for k in range(len(chunks[name]))]
            camp.results[name] = merge_results([p["result"] for p in done])
            for p in done:
                files.update(p["files"])
    camp.seconds = time.perf_counter() - t0
    camp.reproducers = save_reproducers(camp.divergences, files,
                                        Path(repro_dir or "cosim-reproducers"))
    return camp
