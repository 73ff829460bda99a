"""Board top levels: the chip behind a UART on a board's clock and pins.

Each board in :data:`~neuromesh.boards.catalog.BOARDS` names an
``amaranth-boards`` platform, the clock the design runs at, a UART baud rate,
a default geometry that fits the FPGA, and the RTL options of its build
(:func:`board_chip`). :class:`BoardTop`
is what gets built; :class:`neuromesh.rtl.uart.UARTChip` is the same thing
less the pins, for simulation.
"""

from __future__ import annotations

from amaranth import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io

from neuromesh.chip import Geometry
from neuromesh.rtl.chip import Chip
from neuromesh.rtl.uart import UARTChip, divisor_for

from .catalog import BOARDS, Board, get_board

__all__ = ["Board", "BOARDS", "BoardTop", "board_chip", "get_board"]

#: Clock cycles the design is held in reset after configuration.
POR_CYCLES = 1023


def board_chip(board: str | Board, geometry: Geometry, **overrides) -> Chip:
    """The :class:`~neuromesh.rtl.chip.Chip` exactly as ``board`` builds it
    (its RTL options), for ``geometry``; ``overrides`` replace host-link
    arguments (simulations use a short ``timeout_cycles``)."""
    b = board if isinstance(board, Board) else get_board(board)
    args = {"timeout_cycles": max(1, round(b.timeout_s * b.clk_hz)), **b.chip_args,
            **overrides}
    return Chip(geometry, **args)


class BoardTop(Elaboratable):
    """The chip on a board: UART pins, the board clock as the ``sync`` domain.
    ``learning``, ``counters``: the chip's learning engines and activity
    counters (docs/architecture.md §11, §13), both off by default."""

    def __init__(self, board: str | Board, geometry: Geometry, *, baud: int | None = None,
                 learning: bool = False, counters: bool = False):
        self.board = board if isinstance(board, Board) else get_board(board)
        self.geometry = geometry
        self.baud = baud or self.board.baud
        self.learning = learning
        self.counters = counters
        self.divisor = divisor_for(self.board.clk_hz, self.baud)

    def elaborate(self, platform):
        m = Module()
        clk = platform.request(self.board.clock, 0, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk)
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.por = por = ClockDomain("por", reset_less=True)
        m.d.comb += [sync.clk.eq(clk_buf.i), por.clk.eq(clk_buf.i)]
        platform.add_clock_constraint(sync.clk, self.board.clk_hz)
        # Hold reset for POR_CYCLES after configuration: iCE40 block RAM reads
        # are unreliable for the first few microseconds.
        delay = Signal(range(POR_CYCLES + 1), init=POR_CYCLES)
        with m.If(delay != 0):
            m.d.por += delay.eq(delay - 1)
        m.d.comb += sync.rst.eq(delay != 0)

        # Counters only when asked: off, the board's RTL is unchanged.
        extra = {"counters": True} if self.counters else {}
        m.submodules.top = top = UARTChip(board_chip(self.board, self.geometry,
                                                    learning=self.learning, **extra),
                                          self.divisor)
        res = platform.lookup("uart", 0)
        uart = platform.request("uart", 0, dir={sub.name: "-" for sub in res.ios})
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx_pin.eq(rx_buf.i), tx_buf.o.eq(top.tx_pin)]
        return m
