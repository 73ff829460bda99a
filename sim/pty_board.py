"""A simulated chip behind a pseudo-terminal: the board flow without a board.

The chip's RTL (:class:`neuromesh.rtl.chip.Chip`, byte streams in and out)
runs in Amaranth's simulator and serves the host protocol on the master side
of a pseudo-terminal; the slave side is a serial port that
:class:`neuromesh.boards.serial.BoardBackend` and ``neuromesh run --backend
board --port …`` open like a board's. Bytes go straight into the host link's
streams (no UART bit timing: the UART is co-simulated separately, see
``tests/test_uart_cosim.py``), so the baud rate does not matter.

The simulator runs in a process of its own: in a thread it would share the
host's interpreter lock and answer each command only after the lock's switch
interval. POSIX only (pseudo-terminals)::

    $ python -m neuromesh.sim.pty_board 1x1,n_neurons=16
    /dev/pts/3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

__all__ = ["PtyBoard", "serve"]

#: Cycles without traffic after which the simulator polls the terminal only
#: every millisecond instead of every 16 cycles (an idle board costs no CPU).
IDLE_CYCLES = 20_000


def serve(geometry, *, learning: bool = False, timeout_cycles: int = 1_000_000,
          out=sys.stdout):
    """Open a pseudo-terminal, print its serial port's path to ``out`` and
    serve the host protocol there until the process is killed. ``learning``:
    the build with a learning engine per core (``Chip(learning=True)``)."""
    from amaranth.sim import Simulator

    from neuromesh.rtl.chip import Chip

    master, slave = os.openpty()
    dut = Chip(geometry, learning=learning, timeout_cycles=timeout_cycles)
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


class PtyBoard:
    """:func:`serve` in a child process, as a context manager.

    ``with PtyBoard(geometry) as board:`` gives ``board.port``; leaving the
    block stops the simulator and raises :class:`RuntimeError` with its
    traceback if it failed on its own. ``learning``: as in :func:`serve`.
    """

    def __init__(self, geometry, *, learning: bool = False):
        self.geometry = geometry
        self.learning = learning
        self.process = None
        self.port = None

    def __enter__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "neuromesh.sim.pty_board", str(self.geometry),
             *(["--learning"] if self.learning else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The first line is the port; it comes after the imports and the
        # elaboration (a second or two, more on a busy machine).
        line = self.process.stdout.readline().strip()
        if not line:
            _, err = self._stop()
            raise RuntimeError(f"the simulated board did not start:\n{err}")
        self.port = line
        return self

    def _stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        out, err = self.process.communicate(timeout=30)
        return out, err

    def __exit__(self, *exc):
        failed = self.process.poll() is not None    # it ended before we stopped it
        _, err = self._stop()
        if failed:      # the more telling error, also when the block failed
            raise RuntimeError(f"the simulated board stopped by itself:\n{err}")
        return False

    def check(self):
        """Raise if the simulator process has ended (its traceback attached)."""
        if self.process.poll() is not None:
            raise RuntimeError(f"the simulated board stopped:\n{self.process.stderr.read()}")


def main(argv=None):
    """Serve a simulated chip of GEOMETRY on a new pseudo-terminal."""
    from neuromesh.chip import Geometry
    parser = argparse.ArgumentParser(
        prog="python -m neuromesh.sim.pty_board", description=main.__doc__ +
        " Prints the serial port, then serves until interrupted.")
    parser.add_argument("geometry", help="RxC[,name=value...], as in `neuromesh info`")
    parser.add_argument("--learning", action="store_true",
                        help="the build with a learning engine per core")
    parser.add_argument("--timeout-cycles", type=int, default=1_000_000,
                        help="host link timeout in clock cycles (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        serve(Geometry.parse(args.geometry), learning=args.learning,
              timeout_cycles=args.timeout_cycles)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
