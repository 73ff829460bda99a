"""Board top levels: the chip behind a UART on a board's clock and pins.

Each board in :data:`~neuromesh.boards.catalog.BOARDS` names an
``amaranth-boards`` platform, the clock the design runs at, a UART baud rate,
a default geometry that fits the FPGA, and the RTL options of its build
(:func:`board_chip`). :class:`BoardTop`
is what gets built; :class:`neuromesh.rtl.uart.UARTChip` is the same thing
less the pins, for simulation.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, DomainRenamer, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from neuromesh.chip import Geometry
from neuromesh.rtl.chip import Chip
from neuromesh.rtl.uart import UARTChip, divisor_for

from .catalog import BOARDS, Board, get_board
from .pll import add_pll

__all__ = ["Board", "BOARDS", "BoardTop", "ResetHold", "board_chip", "get_board"]

#: Clock cycles the design is held in reset after configuration.
POR_CYCLES = 1023


def board_chip(board: str | Board, geometry: Geometry, **overrides) -> Chip:
    """The :class:`~neuromesh.rtl.chip.Chip` exactly as ``board`` builds it
    (its RTL options), for ``geometry``; ``overrides`` replace host-link
    arguments (simulations use a short ``timeout_cycles``)."""
    b = board if isinstance(board, Board) else get_board(board)
    b = b.for_build(learning=overrides.get("learning", False))
    args = {"timeout_cycles": max(1, round(b.timeout_s * b.clk_hz)), **b.chip_args,
            **overrides}
    return Chip(geometry, **args)


class ResetHold(wiring.Component):
    """Holds ``rst`` for ``cycles`` clocks after configuration and after the
    clock's PLL locks (``lock`` high; tie it to 1 without a PLL): iCE40 block
    RAM reads are unreliable for the first few microseconds, and a PLL's
    clock is not steady before it locks. ``lock`` is asynchronous to the
    clock (it comes from the PLL's analog loop), so it passes two flip-flops
    first. Runs in a reset-less domain: it makes the reset."""

    def __init__(self, cycles: int):
        self.cycles = cycles
        super().__init__({"lock": In(1), "rst": Out(1)})

    def elaborate(self, platform):
        m = Module()
        locked = Signal(2)
        m.d.sync += locked.eq(Cat(self.lock, locked[0]))
        delay = Signal(range(self.cycles + 1), init=self.cycles)
        with m.If(~locked[1]):
            m.d.sync += delay.eq(self.cycles)
        with m.Elif(delay != 0):
            m.d.sync += delay.eq(delay - 1)
        m.d.comb += self.rst.eq(delay != 0)
        return m


class BoardTop(Elaboratable):
    """The chip on a board: UART pins, the board's design clock (from its
    oscillator, through a PLL when the two differ) as the ``sync`` domain.
    ``learning``, ``counters``: the chip's learning engines and activity
    counters (docs/architecture.md §11, §13), both off by default."""

    def __init__(self, board: str | Board, geometry: Geometry, *, baud: int | None = None,
                 learning: bool = False, counters: bool = False):
        self.board = (board if isinstance(board, Board) else get_board(board)).for_build(
            learning=learning)
        self.geometry = geometry
        self.baud = baud or self.board.baud
        self.learning = learning
        self.counters = counters
        self.divisor = divisor_for(self.board.clk_hz, self.baud)

    def elaborate(self, platform):
        m = Module()
        b = self.board
        pad = platform.request(b.clock, 0, dir="-")
        if b.uses_pll:
            clk, lock = add_pll(m, b.family, pad, b.osc_hz, b.clk_hz)
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", pad)
            clk, lock = clk_buf.i, 1
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.por = por = ClockDomain("por", reset_less=True)
        m.d.comb += [sync.clk.eq(clk), por.clk.eq(clk)]
        platform.add_clock_constraint(sync.clk, b.clk_hz)
        m.submodules.reset = reset = DomainRenamer("por")(ResetHold(POR_CYCLES))
        m.d.comb += [reset.lock.eq(lock), sync.rst.eq(reset.rst)]

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
