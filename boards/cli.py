"""Command-line pieces of the boards package, plugged into ``neuromesh``:
the ``build`` command (:func:`register`) and the ``--backend board`` option
of ``run`` (:func:`add_backend_arguments`, :func:`make_backend`)."""

from __future__ import annotations

from neuromesh.chip import ChipError
from neuromesh.progress import add_progress_arguments

from .catalog import BOARDS

__all__ = ["register", "cmd_build", "add_backend_arguments", "add_port_arguments",
           "open_board", "make_backend"]


def cmd_build(args):
    """Build the FPGA bitstream of a board with the YoWASP tools and report
    utilization and Fmax against the target clock (exit status 2 if the
    design does not fit or misses timing). A geometry that cannot fit the
    board is refused before synthesis, with the numbers and the largest
    geometry that fits (--force builds it anyway)."""
    from neuromesh.chip import Geometry
    from neuromesh.files import check_output_dir

    from .build import build
    board = BOARDS[args.board]
    geometry = Geometry.parse(args.geometry or board.geometry)
    check_output_dir(args.output, "-o/--output")
    print(f"building {board.name} for {geometry} in {args.output} ...", flush=True)
    report = build(board, geometry, args.output, baud=args.baud, seed=args.seed,
                   verbose=args.verbose, quiet=args.quiet, learning=args.learning,
                   force=args.force, counters=args.counters)
    print(report.summary())
    print(f"wrote {args.output}/neuromesh.report.txt and neuromesh.report.json")
    if not report.passed:
        why = report.error or ("does not fit" if not report.fits else
                               f"Fmax {report.fmax_mhz} MHz < {report.clock_mhz:g} MHz")
        raise ChipError(f"{board.name}: build failed: {why.splitlines()[0]}")


def register(subparsers):
    """Add the ``build`` command to ``neuromesh``'s subparsers."""
    s = subparsers.add_parser(
        "build", help="build an FPGA bitstream for a board (iCEBreaker, ULX3S-85F)",
        description=cmd_build.__doc__)
    s.add_argument("--board", required=True, choices=sorted(BOARDS), help="target board")
    s.add_argument("--geometry", help="RxC[,name=value...] (default: the board's: " +
                   "; ".join(f"{b.name} {b.geometry}" for b in BOARDS.values()) + ")")
    s.add_argument("-o", "--output", default="build", metavar="DIR",
                   help="build directory (default: %(default)s)")
    s.add_argument("--baud", type=int, help="UART baud rate (default: the board's, 1000000)")
    s.add_argument("--seed", type=int, help="nextpnr placement seed")
    s.add_argument("--learning", action="store_true",
                   help="a learning engine per core, for images with plastic synapses "
                        "(fits the ULX3S-85F, not the iCEBreaker)")
    s.add_argument("--counters", action="store_true",
                   help="activity counters per core (docs/architecture.md §13), read by "
                        "`neuromesh run --backend board`; the iCEBreaker has no room for them")
    s.add_argument("--force", action="store_true",
                   help="build even when the fit check (run before synthesis) says the "
                        "geometry cannot fit the board")
    add_progress_arguments(s)
    s.set_defaults(func=cmd_build)
    return s


def add_backend_arguments(parser):
    """``--backend {emulator,board}`` and the serial link
    (:func:`add_port_arguments`) for ``neuromesh run``."""
    parser.add_argument("--backend", choices=["emulator", "board"], default="emulator",
                        help="run on the emulator or on a board over its serial port "
                             "(default: %(default)s)")
    add_port_arguments(parser)


def add_port_arguments(parser):
    """``--port``, ``--baud``, ``--timeout``: the serial link to a board."""
    from .serial import DEFAULT_BAUD, DEFAULT_TIMEOUT
    parser.add_argument("--port", help="serial port of the board, e.g. /dev/ttyUSB1")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                        help="board UART rate (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="give up when the board sends nothing, or takes no bytes, for "
                             "this long (default: %(default)s)")


def open_board(args, image, what: str | None = None):
    """The :class:`~neuromesh.boards.serial.BoardBackend` on ``--port``
    (``--baud``, ``--timeout``), with ``image`` loaded. A board of another
    geometry is refused in one line naming ``what`` (default: the image
    file ``args.image``) and both geometries."""
    if not args.port:
        raise ChipError("a board needs --port (its serial port, e.g. /dev/ttyUSB1)")
    from neuromesh.host import GeometryMismatchError

    from .serial import BoardBackend
    try:
        return BoardBackend(image, port=args.port, baud=args.baud,
                            response_timeout=args.timeout)
    except GeometryMismatchError as e:
        what = what or f"image {getattr(args, 'image', None) or ''}".strip()
        raise ChipError(f"{what} is for geometry {e.image}, but the board on {args.port} "
                        f"has geometry {e.chip}; compile it for the board's geometry") from None


def make_backend(args, image, batch: int):
    """The emulator, or the board named by ``--port`` (same API)."""
    if getattr(args, "backend", "emulator") == "board":
        if batch != 1:
            raise ChipError(f"batch {batch}: a board runs one input stream (batch 1)")
        return open_board(args, image)
    from neuromesh.emulator import Emulator
    return Emulator(image, batch=batch, max_memory=getattr(args, "max_memory", None))
