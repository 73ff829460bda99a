"""The board path without a board: the UART top level in Amaranth's simulator,
driven through a bit-level UART model by the real host driver, equals the
emulator every step (outputs and the full state)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from neuromesh.boards.top import board_chip
from neuromesh.chip import Geometry
from neuromesh.host import HostDriver
from neuromesh.rtl.uart import UARTChip
from neuromesh.sim.compare import describe, lockstep
from neuromesh.sim.randomgen import random_image, random_inputs
from neuromesh.sim.uart_transport import UARTLineTransport

DIVISOR = 4


def uart_lockstep(image, inputs, *, board, bit_cycles=DIVISOR, gap_cycles=0):
    chip = board_chip(board, image.geometry, timeout_cycles=400 * DIVISOR)
    dut = UARTChip(chip, DIVISOR)
    result = {}

    async def testbench(ctx):
        line = UARTLineTransport(ctx, dut.rx_pin, dut.tx_pin, bit_cycles,
                                 read_cycles=40 * DIVISOR, gap_cycles=gap_cycles)
        drv = HostDriver(line, max_idle_reads=500)
        geometry, _ = await drv.identify()
        assert geometry == image.geometry
        result["steps"], result["bad"] = await lockstep(drv, image, inputs, len(inputs))
        result["framing_errors"] = line.decoder.framing_errors
        result["overruns"] = ctx.get(dut.bridge.overruns)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result


@pytest.mark.parametrize("board,seed,rows,cols,skew,gap,steps", [
    ("icebreaker", 4, 1, 1, 1.025, 3, 8),
    ("ulx3s-85f", 5, 2, 1, 0.975, 0, 3),
])
def test_uart_top_matches_emulator(board, seed, rows, cols, skew, gap, steps):
    g = Geometry(rows=rows, cols=cols, n_neurons=6, n_axons=8, n_synapses=24, n_fanout=12,
                 n_profiles=2, n_groups=2, delay_slots=4)
    image = random_image(seed, g, n_inputs=3, density=0.7)
    inputs = random_inputs(seed, image, steps)
    r = uart_lockstep(image, inputs, board=board, bit_cycles=DIVISOR * skew, gap_cycles=gap)
    assert r["bad"] is None, describe(r["bad"])
    assert r["steps"] == len(inputs)
    assert r["framing_errors"] == 0 and r["overruns"] == 0


def test_uart_cosim_catches_a_wrong_chip(monkeypatch):
    """Mutation check: a datapath that rounds the wrong way diverges here too."""
    from neuromesh.rtl.neuron import NeuronDatapath
    from neuromesh.sim.campaign import corner_cases
    monkeypatch.setattr(NeuronDatapath, "round_toward_zero", False)
    g = Geometry(rows=1, cols=1, n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4,
                 n_profiles=2, n_groups=2, delay_slots=4)
    name, image, x = next(c for c in corner_cases(g) if c[0] == "negative-decays")
    r = uart_lockstep(image, np.asarray(x[:2], bool), board="icebreaker")
    assert r["bad"] is not None and r["bad"]["field"] in ("u", "v")
