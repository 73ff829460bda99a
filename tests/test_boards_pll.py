"""The board clock: PLL divider settings (exact, within the data-sheet limits),
the PLL in the elaborated board top, and the reset held until it locks."""

import dataclasses

import pytest
from amaranth.sim import Simulator

from neuromesh.boards.catalog import BOARDS
from neuromesh.boards.pll import (
    ECP5_F_VCO,
    ICE40_F_OUT,
    ICE40_F_PFD,
    ICE40_F_VCO,
    PLLError,
    ecp5_pll,
    ice40_pll,
)
from neuromesh.boards.top import ResetHold


def test_ice40_24mhz_from_12mhz_is_icepll_setting():
    # `icepll -i 12 -o 24` prints DIVR 0, DIVF 63, DIVQ 5, FILTER_RANGE 1
    p = ice40_pll(12e6, 24e6)
    assert (p.divr, p.divf, p.divq, p.filter_range) == (0, 63, 5, 1)
    assert p.f_vco == 768e6


def test_ecp5_50mhz_from_25mhz():
    p = ecp5_pll(25e6, 50e6)
    assert (p.clki_div, p.clkfb_div, p.clkop_div) == (1, 2, 12)
    assert p.f_vco == 600e6


@pytest.mark.parametrize("f_in, f_out", [(12e6, f) for f in (18e6, 24e6, 30e6, 36e6, 48e6, 96e6)]
                         + [(25e6, 50e6), (48e6, 72e6)])
def test_ice40_settings_make_the_frequency_within_limits(f_in, f_out):
    p = ice40_pll(f_in, f_out)
    f_pfd = f_in / (p.divr + 1)
    assert ICE40_F_PFD[0] <= f_pfd <= ICE40_F_PFD[1]
    assert ICE40_F_VCO[0] <= p.f_vco <= ICE40_F_VCO[1]
    assert p.f_vco / 2 ** p.divq == pytest.approx(f_out, abs=1e-3)
    assert 1 <= p.divq <= 6 and 0 <= p.divf < 128 and 1 <= p.filter_range <= 6


@pytest.mark.parametrize("f_out", [30e6, 40e6, 50e6, 62.5e6, 75e6, 100e6])
def test_ecp5_settings_make_the_frequency_within_limits(f_out):
    p = ecp5_pll(25e6, f_out)
    assert 25e6 / p.clki_div * p.clkfb_div == pytest.approx(f_out, abs=1e-3)
    assert ECP5_F_VCO[0] <= p.f_vco <= ECP5_F_VCO[1]


def test_unreachable_frequencies_are_refused_with_the_limits():
    with pytest.raises(PLLError, match="no divider setting makes exactly 25 MHz from 12 MHz"):
        ice40_pll(12e6, 25e6)           # 12 * (DIVF+1) / 2**DIVQ never hits 25
    with pytest.raises(PLLError, match=r"output 8 MHz is outside 16 MHz\.\.275 MHz"):
        ice40_pll(12e6, 8e6)
    assert ICE40_F_OUT == (16e6, 275e6)
    with pytest.raises(PLLError, match="input 5 MHz is outside"):
        ecp5_pll(5e6, 50e6)
    with pytest.raises(PLLError, match="no divider setting makes exactly 33 MHz"):
        ecp5_pll(25e6, 33e6)


def test_icebreaker_runs_at_24mhz_through_the_pll():
    b = BOARDS["icebreaker"]
    assert b.uses_pll and b.osc_hz == 12e6 and b.clk_hz == 24e6
    assert b.for_build(learning=True) is b         # one clock for both builds


def test_ulx3s_runs_both_builds_at_50mhz_the_learning_one_without_overlap():
    b = BOARDS["ulx3s-85f"]
    assert b.uses_pll and (b.osc_hz, b.clk_hz) == (25e6, 50e6)
    lb = b.for_build(learning=True)
    assert lb.clk_hz == 50e6 and lb.uses_pll
    assert lb.chip_args == {"core_args": {"overlap": False}} and b.chip_args == {}
    assert b.for_build(learning=False) is b


def test_a_learning_build_may_have_its_own_clock():
    # A board whose learning build cannot meet the default build's clock
    # runs it at another one: at the oscillator's, it needs no PLL.
    b = dataclasses.replace(BOARDS["ulx3s-85f"], learning_clk_hz=25e6)
    lb = b.for_build(learning=True)
    assert lb.clk_hz == 25e6 and not lb.uses_pll
    assert lb.chip_args == b.learning_chip_args
    assert b.for_build(learning=False).clk_hz == 50e6


@pytest.mark.parametrize("board, learning, cell", [
    ("icebreaker", False, "SB_PLL40_PAD"),
    ("ulx3s-85f", False, "EHXPLLL"),
    ("ulx3s-85f", True, "EHXPLLL"),
    (dataclasses.replace(BOARDS["ulx3s-85f"], learning_clk_hz=25e6), True, None),
])
def test_board_top_instantiates_its_pll(board, learning, cell):
    pytest.importorskip("amaranth_boards")
    from neuromesh.boards.top import BoardTop, board_chip
    from neuromesh.chip import Geometry
    b = BOARDS[board] if isinstance(board, str) else board
    g = Geometry.parse("1x1,n_neurons=16,n_axons=16,n_synapses=64,n_fanout=16,delay_slots=2")
    top = BoardTop(b, g, learning=learning)
    plan = b.make_platform().prepare(top, name="t")
    rtlil = plan.files["t.il"]
    clk_hz = b.for_build(learning=learning).clk_hz
    # The UART divisor and the host link's timeout follow the build's clock.
    assert top.divisor == round(clk_hz / b.baud)
    chip = board_chip(b, g, learning=learning)
    assert chip.hostlink_args["timeout_cycles"] == round(b.timeout_s * clk_hz)
    # ... and the cores are the build's form (the ULX3S learning build's
    # without overlap).
    assert chip.core_args == b.for_build(learning=learning).chip_args.get("core_args", {})
    chip._MustUse__silence = True                 # built only to read its arguments
    if cell is None:
        assert "SB_PLL40" not in rtlil and "EHXPLLL" not in rtlil
    elif cell == "EHXPLLL":
        assert f"cell \\{cell} " in rtlil
        p = ecp5_pll(b.osc_hz, b.clk_hz)
        assert (f"parameter \\CLKFB_DIV {p.clkfb_div}" in rtlil
                and f"parameter \\CLKOP_DIV {p.clkop_div}" in rtlil)
    else:
        assert f"cell \\{cell} " in rtlil
        p = ice40_pll(b.osc_hz, b.clk_hz)
        assert f"parameter \\DIVF {p.divf}" in rtlil and f"parameter \\DIVQ {p.divq}" in rtlil


def test_reset_is_held_until_lock_then_for_the_count():
    dut = ResetHold(5)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    trace = []

    async def bench(ctx):
        ctx.set(dut.lock, 0)
        for _ in range(4):                      # no lock: reset stays high
            await ctx.tick()
            trace.append(ctx.get(dut.rst))
        ctx.set(dut.lock, 1)
        for _ in range(10):
            await ctx.tick()
            trace.append(ctx.get(dut.rst))
        ctx.set(dut.lock, 0)                    # lost lock: reset again
        for _ in range(3):
            await ctx.tick()
            trace.append(ctx.get(dut.rst))

    sim.add_testbench(bench)
    sim.run()
    # 4 unlocked; the lock passes the two synchronizer stages (the first
    # tick loads the count), then the count of 5 runs down: 6 more ticks in
    # reset. The lost lock reaches the counter 2 ticks later.
    assert trace == [1] * 4 + [1] * 6 + [0] * 4 + [0, 0, 1]
