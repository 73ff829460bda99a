"""One core in the Amaranth simulator against the emulator, step by step.

The testbench plays the timestep controller and a loop-back mesh: packets a
core sends to itself come straight back in, host-bound ones are collected.
After every step the whole state (u, v, refractory, accumulator ring) is
read back through the host-access port and compared with the emulator.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from neuromesh import ChipBuilder, Geometry
from neuromesh.chip import LAYOUTS, Region, unpack_address
from neuromesh.emulator import Emulator
from neuromesh.rtl.core import NeuronCore


def random_core_image(seed, g):
    """A random recurrent 1-core network with host inputs and outputs."""
    rng = np.random.default_rng(seed)
    b = ChipBuilder(g)
    c = b.core(0, 0)
    n = g.n_neurons
    for p in range(g.n_profiles):
        c.profile(p, du=int(rng.integers(0, 4097)), dv=int(rng.integers(0, 4097)),
                  vth_mant=int(rng.integers(0, 400)), refractory=int(rng.integers(0, 3)),
                  reset=["zero", "subtract"][int(rng.integers(0, 2))])
    for k in range(g.n_groups):
        c.group(k, w_shift=int(rng.integers(0, 16)))
    c.neurons(range(n), profile=rng.integers(0, g.n_profiles, n),
              bias_mant=rng.integers(-200, 400, n) * (rng.random(n) < 0.5),
              bias_exp=rng.integers(0, 8, n))
    c.state(range(n), u=rng.integers(-2**23, 2**23, n), v=rng.integers(-2**20, 2**20, n),
            refractory=rng.integers(0, 3, n))
    # host axons 0..3, recurrent axons 4..
    n_syn = min(g.n_synapses, 4 * n)
    axon = rng.integers(0, g.n_axons, n_syn)
    c.synapses(axon=axon, target=rng.integers(0, n, n_syn), w_mant=rng.integers(-128, 128, n_syn),
               delay=rng.integers(0, g.max_delay + 1, n_syn),
               group=rng.integers(0, g.n_groups, n_syn))
    for i in range(n):
        k = int(rng.integers(0, 3))
        if k:
            c.route(i, 0, 0, rng.integers(4, g.n_axons, k))
    c.to_host(np.arange(n // 2), np.arange(n // 2))
    b.input(np.arange(4), 0, 0, np.arange(4))
    for s in range(g.delay_slots):
        c.accum(s, range(n), rng.integers(-1000, 1000, n) * (rng.random(n) < 0.3))
    return b.build()


class Harness:
    """Drive a NeuronCore cycle by cycle from an async testbench."""

    def __init__(self, dut):
        self.dut = dut
        self.inbox = []      # packets waiting to enter packet_in (payloads = axon)
        self.outputs = []    # host channels received in the current step

    async def cycle(self, ctx):
        dut = self.dut
        if self.inbox:
            ctx.set(dut.packet_in.valid, 1)
            ctx.set(dut.packet_in.payload, {"payload": self.inbox[0], "x": 0, "y": 0,
                                            "to_host": 0})
        else:
            ctx.set(dut.packet_in.valid, 0)
        ctx.set(dut.packet_out.ready, 1)
        taken = ctx.get(dut.packet_in.valid) and ctx.get(dut.packet_in.ready)
        out = ctx.get(dut.packet_out.payload) if ctx.get(dut.packet_out.valid) else None
        await ctx.tick()
        if taken:
            self.inbox.pop(0)
        if out is not None:
            if out.to_host:
                self.outputs.append(out.payload)
            else:
                assert (out.x, out.y) == (0, 0)
                self.inbox.append(out.payload)

    async def settle(self, ctx, limit=100_000):
        for _ in range(limit):
            await self.cycle(ctx)
            if not self.inbox and ctx.get(self.dut.idle):
                return
        raise AssertionError("core did not go idle")

    async def access(self, ctx, region, offset, data=0, write=False):
        dut = self.dut
        ctx.set(dut.cfg_req.payload, {"region": int(region), "offset": int(offset),
                                      "data": int(data), "write": int(write)})
        ctx.set(dut.cfg_req.valid, 1)
        while not ctx.get(dut.cfg_req.ready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(dut.cfg_req.valid, 0)
        if write:
            return None
        ctx.set(dut.cfg_resp.ready, 1)
        while not ctx.get(dut.cfg_resp.valid):
            await ctx.tick()
        value = ctx.get(dut.cfg_resp.payload)
        await ctx.tick()
        ctx.set(dut.cfg_resp.ready, 0)
        return value

    async def read_region(self, ctx, region, size):
        return [await self.access(ctx, region, i) for i in range(size)]


def run_core(image, inputs, steps, *, overlap=True):
    """Load ``image`` into a NeuronCore, run ``steps`` and return per-step
    (outputs, state) read back from the gateware."""
    g = image.geometry
    dut = NeuronCore(g, overlap=overlap)
    h = Harness(dut)
    record = []

    async def testbench(ctx):
        _, region, offset = unpack_address(image.addresses)
        for r, o, w in zip(region, offset, image.words):
            await h.access(ctx, r, o, w, write=True)
        for t in range(steps):
            ctx.set(dut.syn_base, t)
            h.inbox += [axon for ch in np.flatnonzero(inputs[t])
                        for axon in [p.axon for p in image.inputs if p.channel == ch]]
            await h.settle(ctx)
            ctx.set(dut.step, t)
            ctx.set(dut.syn_base, t + 1)
            ctx.set(dut.pass_start, 1)
            await h.cycle(ctx)
            ctx.set(dut.pass_start, 0)
            await h.settle(ctx)
            outs, h.outputs = sorted(h.outputs), []
            state = await h.read_region(ctx, Region.STATE, g.n_neurons)
            accum = await h.read_region(ctx, Region.ACCUM, g.delay_slots * g.n_neurons)
            record.append((outs, state, accum))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return record


@pytest.mark.parametrize("seed, n, slots, overlap", [
    (1, 8, 4, True), (2, 8, 4, True), (3, 8, 4, True),
    # Longer passes with packets arriving during them: words of odd delay
    # stall at t1 until the pass leaves their bank (8 slots: delays 0-6).
    (4, 24, 4, True), (5, 24, 8, True),
    # The form without overlap (one bank; the iCEBreaker's).
    (1, 8, 4, False), (4, 24, 4, False)])
def test_core_matches_emulator_every_step(seed, n, slots, overlap):
    g = Geometry(n_neurons=n, n_axons=12, n_synapses=4 * n, n_fanout=3 * n, n_profiles=3,
                 n_groups=3, delay_slots=slots)
    image = random_core_image(seed, g)
    steps = 30
    rng = np.random.default_rng(100 + seed)
    inputs = rng.random((steps, image.n_inputs)) < 0.3
    emu = Emulator(image)
    record = run_core(image, inputs, steps, overlap=overlap)
    state_layout, accum_layout = LAYOUTS[Region.STATE], LAYOUTS[Region.ACCUM]
    for t, (outs, state, accum) in enumerate(record):
        r = emu.run(inputs[t:t + 1])
        expect = emu.read_state()
        assert outs == np.flatnonzero(r.outputs[0, 0]).tolist(), f"outputs of step {t}"
        words = state_layout.unpack(np.array(state, dtype=np.uint64))
        for name in ("u", "v", "refractory"):
            np.testing.assert_array_equal(words[name], expect[name][0, 0], err_msg=f"{name} @ {t}")
        ring = accum_layout.unpack(np.array(accum, dtype=np.uint64))["value"]
        np.testing.assert_array_equal(ring.reshape(g.delay_slots, g.n_neurons),
                                      expect["accum"][0, 0], err_msg=f"accum @ {t}")
    assert sum(len(o) for o, _, _ in record) > 0

