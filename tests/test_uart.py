"""The UART bridge (rtl/uart.py) against a bit-level line model."""

import random

import pytest
from amaranth.sim import Simulator

from neuromesh.rtl.uart import UARTBridge, UARTRx, UARTTx, divisor_for
from neuromesh.sim.uart_transport import UARTDecoder, UARTLineTransport


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("divisor", [4, 7, 12])
def test_tx_sends_8n1_frames(divisor):
    rng = random.Random(divisor)
    data = bytes(rng.randrange(256) for _ in range(40))
    dut = UARTTx(divisor)
    decoder = UARTDecoder(divisor)
    cycles_per_byte = []

    async def testbench(ctx):
        t = 0
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            start = t
            while True:
                ready = ctx.get(dut.i.ready)
                decoder.sample(ctx.get(dut.pin))
                await ctx.tick()
                t += 1
                if ready:
                    break
            cycles_per_byte.append(t - start)
        ctx.set(dut.i.valid, 0)
        for _ in range(12 * divisor):
            decoder.sample(ctx.get(dut.pin))
            await ctx.tick()

    simulate(dut, testbench)
    assert bytes(decoder.bytes) == data
    assert decoder.framing_errors == 0
    # Back to back: exactly 10 bits per byte once the first byte is going.
    assert cycles_per_byte[2:] == [10 * divisor] * (len(data) - 2)


@pytest.mark.parametrize("divisor,skew", [(4, 1.0), (12, 1.0), (12, 0.975), (12, 1.025),
                                          (25, 0.97), (25, 1.03)])
def test_rx_tolerates_baud_mismatch(divisor, skew):
    rng = random.Random(divisor * 100 + int(skew * 1000))
    data = bytes(rng.randrange(256) for _ in range(30))
    dut = UARTRx(divisor)
    got = []

    async def testbench(ctx):
        line = UARTLineTransport(ctx, dut.pin, dut.valid, divisor * skew)
        orig = line._tick

        async def tick():
            if ctx.get(dut.valid):
                got.append(ctx.get(dut.data))
            await orig()
        line._tick = tick
        await line.write(data)
        for _ in range(2 * divisor):
            await tick()

    simulate(dut, testbench)
    assert bytes(got) == data


def test_rx_drops_a_frame_without_stop_bit_and_recovers():
    divisor = 8
    dut = UARTRx(divisor)
    got, errors = [], []

    async def testbench(ctx):
        async def hold(level, bits):
            ctx.set(dut.pin, level)
            for _ in range(bits * divisor):
                if ctx.get(dut.valid):
                    got.append(ctx.get(dut.data))
                errors.append(ctx.get(dut.framing_error))
                await ctx.tick()
        await hold(1, 2)
        await hold(0, 10)           # 0x00 with a missing stop bit (a break)
        await hold(1, 2)
        for b in [0] + [(0xA5 >> i) & 1 for i in range(8)] + [1, 1, 1]:
            await hold(b, 1)

    simulate(dut, testbench)
    assert sum(errors) == 1
    assert got == [0xA5]


def test_bridge_fifo_keeps_order_and_counts_overruns():
    divisor, depth = 4, 8
    dut = UARTBridge(divisor, fifo_depth=depth)
    data = bytes(range(0x30, 0x30 + depth + 3))
    got = []

    async def testbench(ctx):
        ctx.set(dut.rx.ready, 0)
        line = UARTLineTransport(ctx, dut.rx_pin, dut.tx_pin, divisor)
        await line.write(data)          # nobody reads: the FIFO fills, 3 bytes overrun
        for _ in range(4 * divisor):
            await ctx.tick()
        assert ctx.get(dut.overruns) == 3
        ctx.set(dut.rx.ready, 1)
        for _ in range(2 * depth):
            if ctx.get(dut.rx.valid):
                got.append(ctx.get(dut.rx.payload))
            await ctx.tick()

    simulate(dut, testbench)
    assert bytes(got) == data[:depth]


def test_bridge_loopback():
    """Bytes into ``tx`` come out on ``tx_pin``; wired back to ``rx_pin`` they
    come out of ``rx`` unchanged."""
    divisor = 5
    dut = UARTBridge(divisor)
    data = bytes(random.Random(5).randrange(256) for _ in range(25))
    got = []

    async def testbench(ctx):
        ctx.set(dut.rx.ready, 1)
        i = 0
        for _ in range(len(data) * 10 * divisor + 50):
            if i < len(data):
                ctx.set(dut.tx.payload, data[i])
                ctx.set(dut.tx.valid, 1)
            else:
                ctx.set(dut.tx.valid, 0)
            accepted = ctx.get(dut.tx.valid) and ctx.get(dut.tx.ready)
            if ctx.get(dut.rx.valid):
                got.append(ctx.get(dut.rx.payload))
            ctx.set(dut.rx_pin, ctx.get(dut.tx_pin))
            await ctx.tick()
            i += accepted

    simulate(dut, testbench)
    assert bytes(got) == data
    assert len(got) == len(data)


def test_divisor_for():
    assert divisor_for(12e6, 1_000_000) == 12
    assert divisor_for(25e6, 1_000_000) == 25
    assert divisor_for(12e6, 115_200) == 104
    with pytest.raises(ValueError, match="at least 4"):
        divisor_for(12e6, 6_000_000)
    with pytest.raises(ValueError, match="off by"):
        divisor_for(12e6, 2_000_000 + 300_000)
