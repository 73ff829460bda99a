"""The whole chip in Amaranth's simulator, driven only through its host link
by the real host driver, against the emulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from neuromesh.chip import Geometry
from neuromesh.emulator import Emulator
from neuromesh.host import HostDriver
from neuromesh.rtl.chip import Chip
from neuromesh.sim.amaranth_transport import SimTransport
from neuromesh.sim.randomgen import random_image, random_inputs


def run_on_chip(image, inputs, check_every=None):
    """Load ``image`` over the host link, run ``inputs`` step by step and read
    the state back; returns (outputs, [(step, state), ...])."""
    dut = Chip(image.geometry, timeout_cycles=10_000)
    result = {}

    async def testbench(ctx):
        drv = HostDriver(SimTransport(ctx, dut), max_idle_reads=2000)
        geometry, step = await drv.identify()
        assert geometry == image.geometry and step == 0
        await drv.load_image(image)
        states, outs = [], []
        every = check_every or inputs.shape[0]
        for t0 in range(0, inputs.shape[0], every):
            outs.append(await drv.run_inputs(image, inputs[t0:t0 + every]))
            states.append((t0 + every, await drv.read_state(image.geometry)))
        result["outputs"] = np.concatenate(outs)
        result["states"] = states

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return result["outputs"], result["states"]


def compare(image, inputs, check_every=None):
    outputs, states = run_on_chip(image, inputs, check_every)
    emu = Emulator(image)
    t = 0
    for t_end, state in states:
        r = emu.run(inputs[t:t_end])
        np.testing.assert_array_equal(outputs[t:t_end], r.outputs[:, 0], err_msg=f"outputs {t}..")
        expect = emu.read_state()
        for name in ("u", "v", "refractory", "accum"):
            np.testing.assert_array_equal(state[name], expect[name][0], err_msg=f"{name} @ {t_end}")
        t = t_end
    return outputs


@pytest.mark.parametrize("seed,rows,cols", [(2, 1, 1), (2, 2, 2)])
def test_chip_matches_emulator(seed, rows, cols):
    g = Geometry(rows=rows, cols=cols, n_neurons=6, n_axons=10, n_synapses=24, n_fanout=12,
                 n_profiles=2, n_groups=2, delay_slots=4)
    image = random_image(seed, g, n_inputs=3, density=0.7)
    inputs = random_inputs(seed, image, 50)
    outputs = compare(image, inputs, check_every=25)
    assert outputs.any()
