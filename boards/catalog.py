"""The boards neuromesh builds for: platform, clock, UART rate, default
geometry and RTL options of each (no Amaranth import, so the command line
can list them cheaply)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["Board", "BOARDS", "get_board"]


@dataclass(frozen=True)
class Board:
    """What a build for one board needs to know."""

    name: str
    platform: str              #: "module:Class" of the amaranth-boards platform
    clock: str                 #: the platform's clock resource
    clk_hz: float              #: the design clock
    baud: int                  #: UART rate
    geometry: str              #: default geometry, fits the FPGA
    #: keyword arguments of :class:`~neuromesh.rtl.chip.Chip` for this board
    chip_args: dict = field(default_factory=dict)
    #: inter-byte timeout of the host link, in seconds (USB-serial adapters
    #: pause between USB packets; §9.2 asks for several byte-times)
    timeout_s: float = 0.1
    #: tools the board's build flow runs (programmers excluded)
    tools: tuple = ()
    #: the board's oscillator; when it differs from ``clk_hz``, a PLL makes
    #: the design clock from it (:mod:`neuromesh.boards.pll`)
    osc_hz: float | None = None
    #: the design clock of the build with learning engines (``--learning``),
    #: when it is not ``clk_hz``: the engines make a bigger design, which may
    #: not meet the clock the board's default build meets
    learning_clk_hz: float | None = None
    #: :attr:`chip_args` of the build with learning engines, when they are
    #: not the default build's: the engines take block RAM and timing margin
    #: the default build spends on other things
    learning_chip_args: dict | None = None

    def for_build(self, *, learning: bool = False) -> Board:
        """The board as its build with (``learning``) or without learning
        engines sees it: :attr:`clk_hz` is that build's design clock (and
        :attr:`uses_pll` whether a PLL makes it), :attr:`chip_args` its RTL
        options."""
        changes = {}
        if learning and self.learning_clk_hz is not None:
            changes["clk_hz"] = self.learning_clk_hz
        if learning and self.learning_chip_args is not None:
            changes["chip_args"] = self.learning_chip_args
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def uses_pll(self) -> bool:
        """Whether the design clock comes from a PLL, not the oscillator."""
        return self.osc_hz is not None and self.osc_hz != self.clk_hz

    @property
    def family(self) -> str:
        """The FPGA family its tools build for: ``"ice40"`` or ``"ecp5"``."""
        return "ice40" if "nextpnr-ice40" in self.tools else "ecp5"

    def make_platform(self):
        import importlib
        module, cls = self.platform.split(":")
        plat_cls = getattr(importlib.import_module(module), cls)
        tools = list(self.tools)

        class BuildOnly(plat_cls):
            # ULX3S lists openFPGALoader as a required tool; building needs none.
            required_tools = tools

        BuildOnly.__name__ = plat_cls.__name__
        return BuildOnly()


BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        # 24 MHz from the 12 MHz oscillator through the PLL: the build has
        # the margin (docs/synthesis.md, "iCEBreaker timing").
        clock="clk12", osc_hz=12e6, clk_hz=24e6, baud=1_000_000,
        # 256 neurons; SYNAPSE fills two SPRAMs (16384 words); a 4-slot ring
        # (delays 0-2), 256 fan-out entries and words narrowed to the
        # geometry keep the EBRs within the UP5K's 30 (docs/boards.md). The
        # core without overlap: the banked accumulator's multiplexers do not
        # fit the UP5K's logic cells (docs/synthesis.md).
        geometry="1x1,n_neurons=256,n_axons=256,n_synapses=16384,n_fanout=256,"
                 "n_profiles=8,n_groups=4,delay_slots=4",
        chip_args={"core_args": {"narrow_fields": True, "overlap": False},
                   "output_buffer": 256},
        tools=("yosys", "nextpnr-ice40", "icepack"),
    ),
    "ulx3s-85f": Board(
        name="ulx3s-85f",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        # 50 MHz from the 25 MHz oscillator through the PLL, with or without
        # learning engines (docs/synthesis.md, "ULX3S timing").
        clock="clk25", osc_hz=25e6, clk_hz=50e6, baud=1_000_000,
        geometry="2x4,n_neurons=256",
        # The learning build's cores without overlap: 195 of the 208 DP16KD
        # (the banked accumulator takes one more per core) and the form whose
        # routed build met 50 MHz (docs/synthesis.md).
        learning_chip_args={"core_args": {"overlap": False}},
        tools=("yosys", "nextpnr-ecp5", "ecppack"),
    ),
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; known: {', '.join(BOARDS)}") from None
