"""Command-line pieces of the cluster package, plugged into ``neuromesh``:
the ``eval`` and ``sweep`` commands (:func:`register`) and the ``--workers``
/ ``--scheduler`` options of ``cosim-campaign``
(:func:`add_cluster_arguments`, :func:`campaign_on_cluster`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from neuromesh.chip import ChipError

from .connection import SCHEDULER_ENV

__all__ = ["register", "add_cluster_arguments", "wants_cluster", "campaign_on_cluster",
           "cmd_eval", "cmd_sweep", "parse_window"]


def add_cluster_arguments(parser, *, local_default: bool = True):
    """``--workers N | --scheduler ADDR`` (and ``--quiet``'s sibling
    options stay with the command)."""
    group = parser.add_mutually_exclusive_group()
    default = ("default: one per CPU, or the scheduler in $" + SCHEDULER_ENV) if local_default \
        else "default: this process, or the scheduler in $" + SCHEDULER_ENV
    group.add_argument("--workers", type=int, metavar="N",
                       help=f"run on a local Dask cluster of N worker processes ({default})")
    group.add_argument("--scheduler", metavar="ADDR",
                       help="run on the workers of a running Dask scheduler, e.g. "
                            "tcp://host:8786 (docs/cluster.md)")


def wants_cluster(args) -> bool:
    """Whether ``cosim-campaign`` should run distributed: ``--workers``,
    ``--scheduler`` or ``$DASK_SCHEDULER_ADDRESS``."""
    return (getattr(args, "workers", None) is not None or getattr(args, "scheduler", None)
            is not None or bool(os.environ.get(SCHEDULER_ENV)))


def _interruptible(command: str, body):
    """Run ``body()``; on Ctrl-C (after the cluster is closed by ``connect``)
    print one line and exit with status 130."""
    try:
        body()
    except KeyboardInterrupt:
        print(f"neuromesh {command}: interrupted: pending tasks cancelled, cluster closed",
              file=sys.stderr)
        raise SystemExit(130) from None


def parse_window(text: str) -> tuple[int, int | None]:
    """``"A:B"``, ``"A:"`` or ``"A"`` -> (start, stop or None)."""
    lo, sep, hi = text.partition(":")
    try:
        start = int(lo) if lo.strip() else 0
        stop = int(hi) if sep and hi.strip() else None
    except ValueError:
        raise ChipError(f"--window {text!r}: use START:STOP in steps, e.g. 1:17") from None
    if start < 0 or (stop is not None and stop <= start):
        raise ChipError(f"--window {text!r}: need 0 <= START < STOP")
    return start, stop


def _load_spikes(path, option: str = "--input"):
    """The ``spikes`` array of an npz file, or one line naming the file and
    what it should hold (as ``neuromesh run --input``)."""
    from neuromesh.cli import _load_spikes as load
    return load(path, option)


def _load_labels(path, batch: int) -> np.ndarray:
    """The class labels of ``--labels`` (an npz with ``labels`` or an
    .npy), checked to be one integer per sample."""
    from neuromesh.cli import check_npz_file
    check_npz_file(path, "--labels", "labels")
    if str(path).endswith(".npy"):
        labels = np.load(path)
    else:
        with np.load(path) as f:
            if "labels" not in f:
                raise ChipError(f"{path}: no array named 'labels' (found "
                                f"{', '.join(f.files) or 'none'})")
            labels = f["labels"]
    labels = np.asarray(labels).reshape(-1)
    if labels.size != batch:
        raise ChipError(f"{path}: {labels.size} labels for {batch} samples")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ChipError(f"{path}: labels are {labels.dtype}; need integer classes")
    return labels


def cmd_eval(args):
    """Evaluate a chip image over every sample of an input file on Dask
    workers (a local cluster of worker processes, or --scheduler): the batch
    is cut into chunks, each run on the bit-accurate emulator, and the
    results are merged by sample id into the npz `neuromesh run -o`
    writes -- identical bit for bit. With --labels, print the accuracy
    (output channel with the most spikes = the label)."""
    from neuromesh.image import load

    from .connection import connect
    from .evaluate import accuracy, check_spikes, evaluate, output_window
    from .output import save_npz
    if args.output:
        from neuromesh.files import check_output_path
        check_output_path(args.output, "-o/--output")
    image = load(args.image)
    x = check_spikes(_load_spikes(args.input), image.n_inputs, args.input)
    steps, batch = x.shape[:2]
    labels = _load_labels(args.labels, batch) if args.labels else None
    start, stop = parse_window(args.window) if args.window else (output_window(image), None)
    if start >= steps:
        raise ChipError(f"--window starts at step {start}; the input has {steps} steps")
    probe = None
    if args.probe:
        from neuromesh.cli import parse_neurons
        probe = parse_neurons(args.probe)

    def body():
        with connect(args.workers, args.scheduler) as (client, info):
            print(info, flush=True)
            ev = evaluate(image, x, client=client, chunk=args.chunk, probe=probe,
                          progress=not args.quiet, where=args.input)
        r, s = ev.result, ev.stats
        print(f"evaluated {batch} samples x {steps} steps: {s.tasks} chunk"
              f"{'s' if s.tasks != 1 else ''} of up to {ev.chunk} in {s.seconds:.2f} s "
              f"({s.rate:.0f} samples/s)")
        print(f"per sample: {r.outputs.sum() / batch:.1f} output spikes, "
              f"{r.neuron_spikes.mean():.1f} neuron spikes, "
              f"{r.synaptic_events.mean():.0f} synaptic events")
        if labels is not None:
            acc, correct = accuracy(r.outputs, labels, start, stop)
            last = (stop if stop is not None else steps) - 1
            print(f"accuracy {acc:.2%} ({correct}/{batch}), output spikes counted over "
                  f"steps {start}..{min(last, steps - 1)}")
        if args.output:
            arrays = ev.arrays()
            save_npz(args.output, **arrays)
            print(f"wrote {args.output}: {', '.join(arrays)}")

    _interruptible("eval", body)


def cmd_sweep(args):
    """Compile a NIR model for every combination of the given compile options
    (geometry x dt x method x reset x reset delay; each option takes one or
    more values) and evaluate each on a labelled data set on Dask workers;
    print a table of accuracy per option and plot it. Default: the shipped
    digits model (snnTorch preset) on scikit-learn's digits test split.
    Another model starts from --framework's preset, or from the first --dt
    with Euler decays and zero reset (as `neuromesh compile`). Options the
    compiler rejects are listed with its message."""
    from neuromesh.compiler.nir_import import FRAMEWORKS, NIROptions
    from neuromesh.demo import DEFAULT_GEOMETRY
    from neuromesh.digits import model_path
    from neuromesh.files import check_output_path

    from .connection import connect
    from .datasets import digits_test_set, load_dataset
    from .sweep import grid, plot, sweep, table
    check_output_path(args.output, "-o/--output")
    if args.model:
        from neuromesh.cli import _check_nir_file
        _check_nir_file(args.model)
    if args.input:
        from neuromesh.cli import check_npz_file
        check_npz_file(args.input)      # before any compile
    shipped = args.model is None
    model = Path(args.model) if args.model else model_path()
    if args.framework or shipped:
        base = FRAMEWORKS[args.framework or "snntorch"]
    elif args.dt:
        base = NIROptions(dt=args.dt[0])
    else:
        raise ChipError("give --framework (the discretisation preset the model was trained "
                        f"with: {', '.join(FRAMEWORKS)}) or --dt, so the grid has a base")
    geometries = args.geometry or [DEFAULT_GEOMETRY if shipped else "2x2"]
    delays = [v == "yes" for v in (args.reset_delay or [])]
    points = grid(base, geometries=geometries, dt=args.dt or (), method=args.method or (),
                  reset=args.reset or (), reset_delay=delays)
    if args.limit is not None and args.limit < 1:
        raise ChipError(f"--limit {args.limit}: need at least 1 sample")
    if args.input and args.repeat != 1:
        raise ChipError("--repeat repeats the digits test split; it cannot be used with "
                        "--input")
    if args.input:
        data = load_dataset(args.input)
        if args.limit:
            data.spikes, data.labels = data.spikes[:, :args.limit], data.labels[:args.limit]
    else:
        data = digits_test_set(limit=args.limit, repeat=args.repeat)
    print(f"model      {model.name}, {len(points)} option set"
          f"{'s' if len(points) != 1 else ''}")
    print(f"data       {data.name}: {data.samples} samples, {data.steps} steps")

    def body():
        t0 = time.perf_counter()
        with connect(args.workers, args.scheduler) as (client, info):
            print(info, flush=True)
            res = sweep(model, points, data, client=client, chunk=args.chunk,
                        progress=not args.quiet)
        c, e = res.compile_stats, res.eval_stats
        print(f"compiled {c.tasks} option sets in {c.seconds:.1f} s; evaluated "
              f"{e.weight} samples in {e.seconds:.1f} s ({e.rate:.0f} samples/s); "
              f"{time.perf_counter() - t0:.1f} s in all\n")
        print(table(res))
        plot(res, args.output)
        print(f"\nwrote {args.output}")

    _interruptible("sweep", body)


def campaign_on_cluster(args, seed: int):
    """``cosim-campaign`` on Dask workers: the same cases and summary as
    the serial campaign for the same seed."""
    from .campaign import run_campaign
    from .connection import connect
    if args.cases < 0 or args.steps < 1 or args.cases_per_task < 1:
        raise ChipError(f"--cases {args.cases}, --steps {args.steps}, --cases-per-task "
                        f"{args.cases_per_task}: need cases >= 0, steps >= 1 and at least "
                        f"1 case per task")

    def body():
        with connect(args.workers, args.scheduler) as (client, info):
            print(info, flush=True)
            camp = run_campaign(args.cases, args.steps, seed, client=client,
                                corners=not args.no_corners,
                                repro_dir=Path(args.output),
                                cases_per_task=args.cases_per_task,
                                progress=not getattr(args, "quiet", False))
        print(camp.summary())
        if camp.divergences:
            raise SystemExit(1)

    _interruptible("cosim-campaign", body)


def register(subparsers):
    """Add the ``eval`` and ``sweep`` commands to ``neuromesh``'s subparsers."""
    from .evaluate import DEFAULT_CHUNK
    s = subparsers.add_parser(
        "eval", help="evaluate a chip image over a large input batch on Dask workers",
        description=cmd_eval.__doc__ + " Input npz: 'spikes' = 0/1 [steps, batch, n_inputs]. "
        "Output npz: as `neuromesh run -o`.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("image", help="chip image file (.nmi)")
    s.add_argument("--input", required=True, metavar="NPZ", help="input spikes (see above)")
    s.add_argument("--labels", metavar="FILE",
                   help="class labels, one per sample: an npz with 'labels' (may be the "
                        "input file) or an .npy")
    s.add_argument("--window", metavar="START:STOP",
                   help="count output spikes over these steps for the accuracy (default: "
                        "from the output's latency in the image's compiler record to the end)")
    s.add_argument("--probe", metavar="NEURONS",
                   help="record spikes/u/v of global neurons core*n_neurons+neuron, "
                        "e.g. 0-15,300")
    s.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, metavar="N",
                   help="samples per task (default: %(default)s)")
    s.add_argument("-o", "--output", metavar="NPZ", help="write the merged outputs here")
    add_cluster_arguments(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_eval)

    s = subparsers.add_parser(
        "sweep", help="accuracy of a NIR model over a grid of compile options, on Dask workers",
        description=cmd_sweep.__doc__)
    s.add_argument("model", nargs="?",
                   help="NIR file (default: the shipped digits model, snnTorch preset)")
    s.add_argument("--framework", choices=["snntorch", "norse", "lava-dl", "rockpool", "sinabs"],
                   help="the discretisation preset the grid starts from")
    s.add_argument("--geometry", nargs="+", metavar="GEOMETRY",
                   help="chip geometries RxC[,name=value...] (default: the demo's for the "
                        "shipped model, else 2x2)")
    s.add_argument("--dt", nargs="+", type=float, metavar="DT", help="timesteps")
    s.add_argument("--method", nargs="+", choices=["euler", "exact"],
                   help="decay discretisations")
    s.add_argument("--reset", nargs="+", choices=["zero", "subtract"], help="reset modes")
    s.add_argument("--reset-delay", nargs="+", choices=["no", "yes"],
                   help="reset one step after the spike (snnTorch reset_delay=True)")
    s.add_argument("--input", metavar="NPZ",
                   help="labelled data set: 'spikes' 0/1 [steps, batch, inputs] in the model's "
                        "time and 'labels' [batch] (default: the digits test split)")
    s.add_argument("--limit", type=int, metavar="N", help="only the first N samples")
    s.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="repeat the digits test split N times (default: %(default)s)")
    s.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, metavar="N",
                   help="samples per task (default: %(default)s)")
    s.add_argument("-o", "--output", default="sweep.png", metavar="PNG",
                   help="the plot of accuracy per option (default: %(default)s)")
    add_cluster_arguments(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)
