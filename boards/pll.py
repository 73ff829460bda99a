"""Phase-locked loops: the design clock of a board from its oscillator.

A board whose design clock (:attr:`~neuromesh.boards.catalog.Board.clk_hz`)
differs from its oscillator (:attr:`~neuromesh.boards.catalog.Board.osc_hz`)
gets a PLL: ``SB_PLL40_PAD`` on the iCE40 UltraPlus, ``EHXPLLL`` on the ECP5.
The divider settings are found here by exhaustive search over the ranges of
the vendors' data sheets, the way ``icepll`` and ``ecppll`` (the Project
IceStorm / Trellis helpers) find them. Only exact output frequencies are
accepted: the UART divisor and the host link's timeout are computed from the
design clock, so a PLL that ran a little off would make them silently wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Instance, Module, Signal
from amaranth.lib import io

__all__ = ["PLLError", "Ice40PLL", "Ecp5PLL", "ice40_pll", "ecp5_pll", "add_pll"]


class PLLError(ValueError):
    """No divider setting of the FPGA's PLL makes the asked frequency."""


def _mhz(hz: float) -> str:
    return f"{hz / 1e6:g} MHz"


@dataclass(frozen=True)
class Ice40PLL:
    """Divider settings of an iCE40 ``SB_PLL40_PAD`` in SIMPLE feedback mode:
    ``f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)``."""

    divr: int
    divf: int
    divq: int
    filter_range: int
    f_in: float
    f_out: float

    @property
    def f_vco(self) -> float:
        return self.f_in / (self.divr + 1) * (self.divf + 1)


#: iCE40 PLL limits (Lattice TN1251 / iCE40 UltraPlus data sheet), in Hz.
ICE40_F_IN = (10e6, 133e6)
ICE40_F_PFD = (10e6, 133e6)
ICE40_F_VCO = (533e6, 1066e6)
ICE40_F_OUT = (16e6, 275e6)


def ice40_pll(f_in: float, f_out: float) -> Ice40PLL:
    """The ``SB_PLL40_PAD`` settings that make exactly ``f_out`` from
    ``f_in`` (both in Hz); of several, the one with the lowest reference
    divider (the highest phase-detector frequency, the least jitter).
    Raises :class:`PLLError` when none does, naming the limits."""
    lo, hi = ICE40_F_IN
    if not lo <= f_in <= hi:
        raise PLLError(f"iCE40 PLL: input {_mhz(f_in)} is outside {_mhz(lo)}..{_mhz(hi)}")
    lo, hi = ICE40_F_OUT
    if not lo <= f_out <= hi:
        raise PLLError(f"iCE40 PLL: output {_mhz(f_out)} is outside {_mhz(lo)}..{_mhz(hi)}")
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not ICE40_F_PFD[0] <= f_pfd <= ICE40_F_PFD[1]:
            continue
        for divq in range(1, 7):
            for divf in range(128):
                f_vco = f_pfd * (divf + 1)
                if not ICE40_F_VCO[0] <= f_vco <= ICE40_F_VCO[1]:
                    continue
                if abs(f_vco / 2 ** divq - f_out) < 1e-3:
                    # The loop filter follows the phase-detector frequency
                    # (the table icepll uses).
                    filter_range = next(i + 1 for i, top in
                                        enumerate((17e6, 26e6, 44e6, 66e6, 101e6, float("inf")))
                                        if f_pfd < top)
                    return Ice40PLL(divr, divf, divq, filter_range, f_in, f_out)
    raise PLLError(f"iCE40 PLL: no divider setting makes exactly {_mhz(f_out)} from "
                   f"{_mhz(f_in)} (VCO {_mhz(ICE40_F_VCO[0])}..{_mhz(ICE40_F_VCO[1])}, "
                   f"output = VCO / 2..64)")


@dataclass(frozen=True)
class Ecp5PLL:
    """Divider settings of an ECP5 ``EHXPLLL`` fed back from CLKOP:
    ``f_out = f_in / CLKI_DIV * CLKFB_DIV``, ``f_vco = f_out * CLKOP_DIV``."""

    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in: float
    f_out: float

    @property
    def f_vco(self) -> float:
        return self.f_out * self.clkop_div


#: ECP5 PLL limits (Lattice FPGA-DS-02012, sysCLOCK PLL timing), in Hz.
ECP5_F_IN = (8e6, 400e6)
ECP5_F_PFD_MIN = 3.125e6
ECP5_F_VCO = (400e6, 800e6)
ECP5_F_OUT = (3.125e6, 400e6)


def ecp5_pll(f_in: float, f_out: float) -> Ecp5PLL:
    """The ``EHXPLLL`` settings that make exactly ``f_out`` from ``f_in``
    (both in Hz): the lowest input divider, then the VCO nearest the middle
    of its range. Raises :class:`PLLError` when none does."""
    for name, f, (lo, hi) in (("input", f_in, ECP5_F_IN), ("output", f_out, ECP5_F_OUT)):
        if not lo <= f <= hi:
            raise PLLError(f"ECP5 PLL: {name} {_mhz(f)} is outside {_mhz(lo)}..{_mhz(hi)}")
    mid = sum(ECP5_F_VCO) / 2
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if f_pfd < ECP5_F_PFD_MIN:
            break
        fits = [(abs(f_out * op - mid), fb, op)
                for fb in range(1, 81) if abs(f_pfd * fb - f_out) < 1e-3
                for op in range(1, 129)
                if ECP5_F_VCO[0] <= f_out * op <= ECP5_F_VCO[1]]
        if fits:
            _, fb, op = min(fits)
            return Ecp5PLL(clki_div, fb, op, f_in, f_out)
    raise PLLError(f"ECP5 PLL: no divider setting makes exactly {_mhz(f_out)} from "
                   f"{_mhz(f_in)} (f_in / 1..128 * 1..80, VCO "
                   f"{_mhz(ECP5_F_VCO[0])}..{_mhz(ECP5_F_VCO[1])})")


def add_pll(m: Module, family: str, pad, f_in: float, f_out: float) -> tuple[Signal, Signal]:
    """Add to ``m`` the PLL of ``family`` (``"ice40"`` or ``"ecp5"``) that
    makes ``f_out`` from the oscillator on clock pin ``pad`` (an Amaranth I/O
    port, requested with ``dir="-"``) at ``f_in``; returns ``(clock, lock)``.
    On the iCE40 the PLL takes the pin itself (``SB_PLL40_PAD``: the
    iCEBreaker's oscillator is on the PLL's dedicated pad); on the ECP5 the
    pin goes through an input buffer to the PLL's reference input."""
    clk, lock = Signal(name="pll_clk"), Signal(name="pll_lock")
    if family == "ice40":
        p = ice40_pll(f_in, f_out)
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            p_DIVR=p.divr, p_DIVF=p.divf, p_DIVQ=p.divq, p_FILTER_RANGE=p.filter_range,
            i_PACKAGEPIN=pad.io, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk, o_LOCK=lock)
    elif family == "ecp5":
        p = ecp5_pll(f_in, f_out)
        m.submodules.pll_ref = ref = io.Buffer("i", pad)
        m.submodules.pll = Instance(
            "EHXPLLL",
            # the attributes nextpnr reads to constrain the output clock
            a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=p.clki_div, p_CLKFB_DIV=p.clkfb_div, p_CLKOP_DIV=p.clkop_div,
            p_CLKOP_CPHASE=p.clkop_div // 2, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=ref.i, i_CLKFB=clk, i_RST=0, i_STDBY=0,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk, o_LOCK=lock)
    else:
        raise ValueError(f"no PLL for FPGA family {family!r}")
    return clk, lock
