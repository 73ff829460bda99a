"""The host-link gateware against the host-side codec of neuromesh.protocol.

Commands are built with ``neuromesh.protocol.cmd_*`` and the answers decoded
with its ``FrameDecoder``. Around the host link, Python models play the rest
of the chip: a dict as the address map (1-3 cycles of read latency) and a
timestep controller that consumes injected spikes, emits host-bound packets
per step and waits for ``step_ack``.
"""

import gc
import random
import struct

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.sim import Simulator

from neuromesh.chip import Geometry, Region, core_id, pack_address
from neuromesh.protocol import (
    INFO_LAYOUT,
    MAX_SPIKES,
    MAX_WORDS,
    PROTOCOL_VERSION,
    Command,
    ErrorCode,
    FrameDecoder,
    ResetMode,
    Response,
    cmd_identify,
    cmd_read,
    cmd_reset,
    cmd_run,
    cmd_spikes,
    cmd_status,
    cmd_write,
    crc16,
    encode,
)
from neuromesh.rtl.crc import CRC16, crc16_next
from neuromesh.rtl.hostlink import HostLink

GEOMETRY = Geometry(rows=2, cols=3, n_neurons=16, n_axons=20, n_synapses=64, n_fanout=32,
                    n_profiles=4, n_groups=2, delay_slots=4)
TIMEOUT = 40
FINAL = {Response.ACK, Response.DATA, Response.INFO, Response.STATUS, Response.DONE,
         Response.ERROR}


def addr(x, y, region, offset):
    return int(pack_address(core_id(x, y), region, offset))


# --- CRC ------------------------------------------------------------------------

def test_crc16_next_matches_protocol():
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc, byte))
    rng = random.Random(1)
    cases = [(0xFFFF, b) for b in range(256)] + [
        (rng.randrange(1 << 16), rng.randrange(256)) for _ in range(500)]

    async def testbench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc16(bytes([b]), c), (hex(c), b)

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()


def test_crc16_register_check_value():
    dut = CRC16()

    async def testbench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for b in b"123456789":
            ctx.set(dut.valid, 1)
            ctx.set(dut.data, b)
            await ctx.tick()
        ctx.set(dut.valid, 0)
        assert ctx.get(dut.crc) == 0x29B1 == crc16(b"123456789")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


# --- Harness ----------------------------------------------------------------------

# The models run as background testbenches that are still waiting when the
# simulation ends; they only use one-shot ``await ctx.tick()`` because the
# async generators behind ``until``/``repeat``/``async for`` complain when such
# a coroutine is closed (an unraisable exception, an error under pytest).

async def until(ctx, condition, *exprs):
    """Tick until ``condition`` was high at a clock edge; the ``exprs`` sampled then."""
    while True:
        _, _, done, *values = await ctx.tick().sample(condition, *exprs)
        if done:
            return values


async def ticks(ctx, count):
    for _ in range(count):
        await ctx.tick()


async def put(ctx, port, payload):
    ctx.set(port.valid, 1)
    ctx.set(port.payload, payload)
    await until(ctx, port.ready)
    ctx.set(port.valid, 0)


async def pulse(ctx, signal):
    ctx.set(signal, 1)
    await ctx.tick()
    ctx.set(signal, 0)


class LinkBench:
    """A HostLink in simulation with models of the rest of the chip.

    Parameters
    ----------
    outputs:
        ``{step: [channel, ...]}``: host-bound packets the controller model
        sends during each step.
    seed:
        Randomises memory latency and the host's ``tx.ready``.

    Attributes
    ----------
    mem:
        The address map as a dict, address -> word.
    writes, reads:
        Addresses accessed, in order.
    injected:
        Per RUN, the ``(x, y, axon)`` of every packet taken from ``inject``.
    frames:
        Every response frame decoded from ``tx``.
    acks:
        Per acknowledged step, ``(step, number of frames received by then)``.
    """

    def __init__(self, geometry=GEOMETRY, outputs=None, seed=0, **kwargs):
        self.dut = HostLink(geometry, timeout_cycles=kwargs.pop("timeout_cycles", TIMEOUT),
                            **kwargs)
        self.outputs = outputs or {}
        self.rng = random.Random(seed)
        self.mem = {}
        self.writes, self.reads, self.injected, self.resets = [], [], [], []
        self.acks, self.runs = [], []
        self.decoder = FrameDecoder()
        self.frames = []
        self.step = 0

    # Background models ---------------------------------------------------------

    async def host_rx(self, ctx):
        dut = self.dut
        while True:
            _, _, valid, ready, byte = await ctx.tick().sample(
                dut.tx.valid, dut.tx.ready, dut.tx.payload)
            if valid and ready:
                self.frames += self.decoder.feed(bytes([byte]))
            # A host that is not always ready exercises the sender's handshake.
            ctx.set(dut.tx.ready, self.rng.random() < 0.8)

    async def memory(self, ctx):
        dut = self.dut
        while True:
            ctx.set(dut.mem_req.ready, 1)
            (req,) = await until(ctx, dut.mem_req.valid, dut.mem_req.payload)
            ctx.set(dut.mem_req.ready, 0)
            if req.write:
                self.writes.append(req.addr)
                self.mem[req.addr] = req.data
            else:
                self.reads.append(req.addr)
                await ticks(ctx, self.rng.randint(1, 3))
                await put(ctx, dut.mem_resp, self.mem.get(req.addr, 0))

    async def controller(self, ctx):
        dut = self.dut
        while True:
            run, steps, reset, mode = await until(
                ctx, dut.run_start | dut.reset_start,
                dut.run_start, dut.run_steps, dut.reset_start, dut.reset_mode)
            if reset:
                self.resets.append(mode)
                await ticks(ctx, 3)
                self.step = 0
                ctx.set(dut.step, 0)
                await pulse(ctx, dut.reset_done)
                continue
            assert run
            self.runs.append(steps)
            # Phase I: take packets while the host link says it is injecting.
            packets = []
            ctx.set(dut.inject.ready, 1)
            while True:
                _, _, injecting, valid, ready, pkt = await ctx.tick().sample(
                    dut.injecting, dut.inject.valid, dut.inject.ready, dut.inject.payload)
                if valid and ready:
                    assert injecting
                    assert pkt.to_host == 0
                    packets.append((pkt.x, pkt.y, pkt.payload))
                if not injecting:
                    break
                ctx.set(dut.inject.ready, self.rng.random() < 0.7)
            ctx.set(dut.inject.ready, 0)
            self.injected.append(packets)
            for _ in range(steps):
                for channel in self.outputs.get(self.step, []):
                    await put(ctx, dut.host_out, {"payload": channel, "to_host": 1})
                await pulse(ctx, dut.step_done)
                await until(ctx, dut.step_ack)
                self.acks.append((self.step, len(self.frames)))
                self.step = (self.step + 1) & 0xFFFFFFFF
                ctx.set(dut.step, self.step)
            await pulse(ctx, dut.run_done)

    # Host side -------------------------------------------------------------------

    async def send(self, ctx, data):
        for byte in data:
            await put(ctx, self.dut.rx, byte)

    async def command(self, ctx, data, max_cycles=20_000):
        """Send ``data`` and return the frames up to the final response."""
        first = len(self.frames)
        await self.send(ctx, data)
        for _ in range(max_cycles):
            if len(self.frames) > first and self.frames[-1].type in FINAL:
                return self.frames[first:]
            await ctx.tick()
        raise AssertionError(f"no final response; got {self.frames[first:]}")

    async def quiet(self, ctx, cycles):
        """Wait ``cycles`` and check that nothing was sent meanwhile."""
        first = len(self.frames)
        await ticks(ctx, cycles)
        assert self.frames[first:] == [] and self.decoder.pending == 0

    def simulate(self, script):
        sim = Simulator(self.dut)
        sim.add_clock(1e-6)
        sim.add_testbench(self.host_rx, background=True)
        sim.add_testbench(self.memory, background=True)
        sim.add_testbench(self.controller, background=True)
        sim.add_testbench(script)
        sim.run()


def single(frames, type_):
    assert len(frames) == 1, frames
    assert frames[0].type == type_, frames
    return frames[0].payload


def error_of(frames):
    code, command, detail = struct.unpack("<BBI", single(frames, Response.ERROR))
    return ErrorCode(code), command, detail


def ack_of(frames):
    return single(frames, Response.ACK)[0]


def status_of(frames):
    return struct.unpack("<IHH", single(frames, Response.STATUS))


# --- Commands -----------------------------------------------------------------------

def test_identify_reports_geometry_and_step():
    g = GEOMETRY
    bench = LinkBench()

    async def script(ctx):
        info = INFO_LAYOUT.unpack(single(await bench.command(ctx, cmd_identify()),
                                         Response.INFO))
        assert info == (PROTOCOL_VERSION, g.rows, g.cols, g.n_neurons, g.n_axons,
                        g.n_synapses, g.n_fanout, g.n_profiles, g.n_groups, g.delay_slots, 0)
        ctx.set(bench.dut.step, 0xDEADBEEF)   # step comes straight from the controller
        info = INFO_LAYOUT.unpack(single(await bench.command(ctx, cmd_identify()),
                                         Response.INFO))
        assert info[-1] == 0xDEADBEEF

    bench.simulate(script)


def test_write_then_read_round_trip():
    rng = random.Random(5)
    runs = [
        (addr(0, 0, Region.PROFILE, 0), GEOMETRY.n_profiles),     # whole region
        (addr(2, 1, Region.SYNAPSE, 60), 4),                      # ends exactly at the end
        (addr(1, 0, Region.ACCUM, 0), MAX_WORDS // 2),           # 64 = D * n_neurons words
        (addr(2, 0, Region.FANOUT, 7), 1),
    ]
    bench = LinkBench(seed=3)

    async def script(ctx):
        expected = {}
        for a, n in runs:
            words = [rng.randrange(1 << 64) for _ in range(n)]
            words[0] = (1 << 64) - 1
            assert ack_of(await bench.command(ctx, cmd_write(a, words))) == Command.WRITE
            expected.update({a + i: w for i, w in enumerate(words)})
        assert bench.mem == expected
        assert bench.writes == [a + i for a, n in runs for i in range(n)]
        for a, n in runs:
            data = single(await bench.command(ctx, cmd_read(a, n)), Response.DATA)
            assert data[:6] == struct.pack("<IH", a, n)
            assert list(struct.unpack(f"<{n}Q", data[6:])) == [expected[a + i]
                                                                for i in range(n)]
        # A word never written reads as zero (the memory model's default).
        data = single(await bench.command(ctx, cmd_read(addr(1, 1, Region.STATE, 3), 2)),
                      Response.DATA)
        assert data[6:] == bytes(16)

    bench.simulate(script)


def test_largest_write_and_read():
    g = Geometry(rows=1, cols=1, n_synapses=4096)
    words = [(i * 0x9E3779B97F4A7C15) & ((1 << 64) - 1) for i in range(MAX_WORDS)]
    a = addr(0, 0, Region.SYNAPSE, g.n_synapses - MAX_WORDS)
    bench = LinkBench(geometry=g)

    async def script(ctx):
        assert ack_of(await bench.command(ctx, cmd_write(a, words))) == Command.WRITE
        data = single(await bench.command(ctx, cmd_read(a, MAX_WORDS)), Response.DATA)
        assert len(data) == 6 + 8 * MAX_WORDS
        assert list(struct.unpack(f"<{MAX_WORDS}Q", data[6:])) == words

    bench.simulate(script)


def test_status_counts_queue_and_discarded_bytes():
    bench = LinkBench()

    async def script(ctx):
        assert status_of(await bench.command(ctx, cmd_status())) == (0, 0, 0)
        # Garbage outside frames, including a would-be chip SOF, is counted.
        garbage = bytes([0x00, 0x5A, 0xFF, 0x13, 0x37])
        ack = await bench.command(ctx, garbage + cmd_spikes([(core_id(1, 1), 3)] * 4))
        assert ack_of(ack) == Command.SPIKES
        assert status_of(await bench.command(ctx, cmd_status())) == (0, 4, len(garbage))
        ctx.set(bench.dut.step, 77)
        assert status_of(await bench.command(ctx, b"\x01" + cmd_status())) == (
            77, 4, len(garbage) + 1)

    bench.simulate(script)


def test_discarded_counter_saturates():
    bench = LinkBench()

    async def script(ctx):
        # Drive the 16-bit counter close to its limit quickly, then over it.
        await bench.send(ctx, bytes(65535 - 3))
        await bench.send(ctx, bytes(10))
        assert status_of(await bench.command(ctx, cmd_status()))[2] == 65535

    bench.simulate(script)


def test_reset_modes_and_queue_cleared():
    bench = LinkBench()

    async def script(ctx):
        await bench.command(ctx, cmd_spikes([(0, 0), (core_id(2, 1), 19)]))
        ctx.set(bench.dut.step, 12)
        bench.step = 12
        assert status_of(await bench.command(ctx, cmd_status()))[:2] == (12, 2)
        assert ack_of(await bench.command(ctx, cmd_reset(ResetMode.ALL))) == Command.RESET
        assert status_of(await bench.command(ctx, cmd_status()))[:2] == (0, 0)
        assert ack_of(await bench.command(ctx, cmd_reset(ResetMode.STATE))) == Command.RESET
        assert bench.resets == [1, 0]

    bench.simulate(script)


# --- RUN -------------------------------------------------------------------------

def test_run_injects_spikes_and_reports_outputs_per_step():
    spikes = [(core_id(0, 0), 0), (core_id(2, 1), 19), (core_id(1, 0), 7), (core_id(1, 0), 7)]
    outputs = {5: [3, 0, 65535], 6: [], 7: [42]}
    bench = LinkBench(outputs=outputs, seed=2)

    async def script(ctx):
        ctx.set(bench.dut.step, 5)
        bench.step = 5
        assert ack_of(await bench.command(ctx, cmd_spikes(spikes[:1]))) == Command.SPIKES
        assert ack_of(await bench.command(ctx, cmd_spikes(spikes[1:]))) == Command.SPIKES
        frames = await bench.command(ctx, cmd_run(3))
        assert bench.runs == [3]
        assert bench.injected == [[(c & 0xF, c >> 4, a) for c, a in spikes]]
        *outs, done = frames
        assert done.type == Response.DONE and struct.unpack("<I", done.payload) == (8,)
        got = {}
        for f in outs:
            assert f.type == Response.OUTPUT
            step, n = struct.unpack_from("<IH", f.payload)
            assert len(f.payload) == 6 + 2 * n and n >= 1
            got.setdefault(step, []).extend(struct.unpack_from(f"<{n}H", f.payload, 6))
        assert got == {5: [3, 0, 65535], 7: [42]}
        # Every OUTPUT frame of a step was out before its step_ack.
        base = len(bench.frames) - len(frames)
        assert bench.acks == [(5, base + 1), (6, base + 1), (7, base + 2)]
        # The queue was emptied by the run; the next run injects nothing.
        assert status_of(await bench.command(ctx, cmd_status())) == (8, 0, 0)
        frames = await bench.command(ctx, cmd_run(1))
        assert [f.type for f in frames] == [Response.DONE]
        assert bench.injected[1] == []
        assert struct.unpack("<I", frames[0].payload) == (9,)

    bench.simulate(script)


def test_run_splits_a_step_larger_than_the_output_buffer():
    # Step 0 overflows the 4-channel buffer twice; step 1 fills it exactly,
    # which must not produce an empty frame; step 2 has nothing.
    outputs = {0: list(range(100, 111)), 1: [9, 8, 7, 6], 3: [1]}
    bench = LinkBench(outputs=outputs, output_buffer=4, seed=4)

    async def script(ctx):
        *outs, done = await bench.command(ctx, cmd_run(4))
        decoded = []
        for f in outs:
            assert f.type == Response.OUTPUT
            step, n = struct.unpack_from("<IH", f.payload)
            decoded.append((step, list(struct.unpack_from(f"<{n}H", f.payload, 6))))
        ch = outputs[0]
        assert decoded == [(0, ch[0:4]), (0, ch[4:8]), (0, ch[8:11]), (1, [9, 8, 7, 6]),
                           (3, [1])]
        assert done.type == Response.DONE and struct.unpack("<I", done.payload) == (4,)

    bench.simulate(script)


def test_spike_queue_capacity():
    bench = LinkBench(spike_queue_depth=MAX_SPIKES + 10)

    async def script(ctx):
        full = [(core_id(i % 3, i % 2), i % GEOMETRY.n_axons) for i in range(MAX_SPIKES)]
        assert ack_of(await bench.command(ctx, cmd_spikes(full))) == Command.SPIKES
        assert ack_of(await bench.command(ctx, cmd_spikes(full[:10]))) == Command.SPIKES
        assert error_of(await bench.command(ctx, cmd_spikes(full[:1]))) == (
            ErrorCode.BAD_VALUE, Command.SPIKES, MAX_SPIKES + 11)
        assert status_of(await bench.command(ctx, cmd_status()))[1] == MAX_SPIKES + 10
        frames = await bench.command(ctx, cmd_run(1), max_cycles=50_000)
        assert frames[-1].type == Response.DONE
        assert bench.injected == [[(c & 0xF, c >> 4, a) for c, a in full + full[:10]]]

    bench.simulate(script)


# --- Rejected frames ----------------------------------------------------------------

def corrupt_crc(frame):
    return frame[:-2] + bytes([frame[-2] ^ 0x01, frame[-1]])


def test_bad_checksum_changes_nothing():
    bench = LinkBench()
    good = cmd_write(addr(0, 0, Region.NEURON, 0), [1, 2, 3])

    async def script(ctx):
        bad = corrupt_crc(good)
        (received_crc,) = struct.unpack("<H", bad[-2:])
        assert error_of(await bench.command(ctx, bad)) == (
            ErrorCode.BAD_CHECKSUM, Command.WRITE, received_crc)
        assert bench.writes == []
        # A corrupted payload byte, CRC left as it was.
        bad = good[:10] + bytes([good[10] ^ 0x80]) + good[11:]
        assert error_of(await bench.command(ctx, bad))[0] == ErrorCode.BAD_CHECKSUM
        bad = corrupt_crc(cmd_spikes([(0, 1)]))
        assert error_of(await bench.command(ctx, bad))[0] == ErrorCode.BAD_CHECKSUM
        bad = corrupt_crc(cmd_run(1))
        assert error_of(await bench.command(ctx, bad))[0] == ErrorCode.BAD_CHECKSUM
        assert bench.writes == [] and bench.runs == []
        assert status_of(await bench.command(ctx, cmd_status())) == (0, 0, 0)
        # And the link still works.
        assert ack_of(await bench.command(ctx, good)) == Command.WRITE
        assert bench.mem == {addr(0, 0, Region.NEURON, i): i + 1 for i in range(3)}

    bench.simulate(script)


def test_unknown_command():
    bench = LinkBench()

    async def script(ctx):
        for type_ in (0x00, 0x08, 0x81, 0xFF):
            assert error_of(await bench.command(ctx, encode(type_, b"\x01\x02"))) == (
                ErrorCode.UNKNOWN_COMMAND, type_, type_)

    bench.simulate(script)


def test_bad_lengths():
    bench = LinkBench()
    write = cmd_write(addr(0, 0, Region.STATE, 0), [5, 6])[4:-2]   # payload only
    cases = [
        (Command.IDENTIFY, b"\x00"),
        (Command.STATUS, b"\x00\x00"),
        (Command.READ, struct.pack("<IHB", addr(0, 0, 0, 0), 1, 0)),
        (Command.READ, struct.pack("<I", addr(0, 0, 0, 0))),
        (Command.WRITE, write[:-1]),                     # one byte short of count words
        (Command.WRITE, write + bytes(8)),               # one word more than count
        (Command.WRITE, write[:5]),                      # shorter than the header
        (Command.SPIKES, struct.pack("<HBH", 2, 0, 1)),   # count 2, one entry
        (Command.SPIKES, b"\x00"),
        (Command.RUN, struct.pack("<IB", 1, 0)),
        (Command.RUN, struct.pack("<H", 1)),
        (Command.RESET, b""),
        (Command.RESET, b"\x00\x00"),
    ]

    async def script(ctx):
        for type_, payload in cases:
            assert error_of(await bench.command(ctx, encode(type_, payload))) == (
                ErrorCode.BAD_LENGTH, type_, len(payload)), (type_, payload)
        assert bench.writes == [] and bench.reads == [] and bench.runs == [] \
            and bench.resets == []
        # LEN > MAX_PAYLOAD is rejected right after LEN; the rest of the frame
        # is hunted through as discarded bytes.
        frame = bytes([0xA5, Command.WRITE]) + struct.pack("<H", 1031) + bytes(7)
        assert error_of(await bench.command(ctx, frame)) == (
            ErrorCode.BAD_LENGTH, Command.WRITE, 1031)
        assert status_of(await bench.command(ctx, cmd_status())) == (0, 0, 7)

    bench.simulate(script)


def test_bad_values():
    bench = LinkBench()
    a = addr(0, 0, Region.STATE, 0)

    async def script(ctx):
        cases = [
            (encode(Command.WRITE, struct.pack("<IH", a, 0)), Command.WRITE, 0),
            (encode(Command.READ, struct.pack("<IH", a, 0)), Command.READ, 0),
            (encode(Command.READ, struct.pack("<IH", a, 129)), Command.READ, 129),
            (encode(Command.RUN, struct.pack("<I", 0)), Command.RUN, 0),
            (encode(Command.RESET, b"\x02"), Command.RESET, 2),
            (encode(Command.RESET, b"\xff"), Command.RESET, 255),
        ]
        for frame, command, value in cases:
            assert error_of(await bench.command(ctx, frame)) == (
                ErrorCode.BAD_VALUE, command, value)
        assert bench.writes == [] and bench.reads == [] and bench.runs == [] \
            and bench.resets == []

    bench.simulate(script)


def test_addresses_outside_the_map_write_nothing():
    g = GEOMETRY
    bench = LinkBench()
    cases = [
        (addr(3, 0, Region.STATE, 0), 1, addr(3, 0, Region.STATE, 0)),       # x = cols
        (addr(0, 2, Region.STATE, 0), 1, addr(0, 2, Region.STATE, 0)),       # y = rows
        (addr(15, 15, Region.STATE, 0), 1, addr(15, 15, Region.STATE, 0)),
        (addr(0, 0, 8, 0), 1, addr(0, 0, 8, 0)),                             # reserved
        (addr(1, 1, 15, 2), 3, addr(1, 1, 15, 2)),
        (addr(0, 0, Region.GROUP, g.n_groups), 1,                            # past the end
         addr(0, 0, Region.GROUP, g.n_groups)),
        (addr(0, 0, Region.PROFILE, 0xFFFFF), 1, addr(0, 0, Region.PROFILE, 0xFFFFF)),
        (addr(2, 1, Region.ACCUM, 60), 5, addr(2, 1, Region.ACCUM, 64)),     # run crosses end
        (addr(1, 0, Region.SYNAPSE, 0), 65, addr(1, 0, Region.SYNAPSE, 64)),
    ]

    async def script(ctx):
        for a, n, first_bad in cases:
            for frame, command in ((cmd_write(a, range(1, n + 1)), Command.WRITE),
                                   (cmd_read(a, n), Command.READ)):
                assert error_of(await bench.command(ctx, frame)) == (
                    ErrorCode.BAD_ADDRESS, command, first_bad), (hex(a), n, command)
        assert bench.writes == [] and bench.reads == []
        # The largest valid region ends are accepted.
        last = addr(2, 1, Region.ACCUM, g.delay_slots * g.n_neurons - 1)
        assert ack_of(await bench.command(ctx, cmd_write(last, [9]))) == Command.WRITE
        assert bench.mem == {last: 9}

    bench.simulate(script)


def test_spikes_with_a_bad_destination_queue_nothing():
    g = GEOMETRY
    bench = LinkBench()
    good = [(core_id(0, 0), 0), (core_id(2, 1), g.n_axons - 1)]
    cases = [
        (good + [(core_id(0, 0), g.n_axons)], core_id(0, 0) << 16 | g.n_axons),
        (good + [(core_id(3, 0), 1), (core_id(0, 0), 99)], core_id(3, 0) << 16 | 1),
        ([(core_id(0, 2), 0)] + good, core_id(0, 2) << 16),
        (good * 3 + [(0xFF, 0xFFFF)], 0xFF << 16 | 0xFFFF),
    ]

    async def script(ctx):
        for spikes, detail in cases:
            assert error_of(await bench.command(ctx, cmd_spikes(spikes))) == (
                ErrorCode.BAD_ADDRESS, Command.SPIKES, detail)
        assert status_of(await bench.command(ctx, cmd_status()))[1] == 0
        assert ack_of(await bench.command(ctx, cmd_spikes([]))) == Command.SPIKES
        assert ack_of(await bench.command(ctx, cmd_spikes(good))) == Command.SPIKES
        await bench.command(ctx, cmd_run(1))
        assert bench.injected == [[(0, 0, 0), (2, 1, g.n_axons - 1)]]

    bench.simulate(script)


def test_truncated_frame_times_out():
    bench = LinkBench()
    write = cmd_write(addr(0, 0, Region.STATE, 0), [1, 2])

    async def script(ctx):
        for cut in (1, 2, 5, len(write) - 1):
            await bench.send(ctx, write[:cut])
            assert error_of(await bench.command(ctx, b"", max_cycles=TIMEOUT + 50)) == (
                ErrorCode.TIMEOUT, Command.WRITE if cut > 1 else 0, cut)
        assert bench.writes == []
        # A byte every TIMEOUT - 1 cycles keeps the frame alive.
        frame = cmd_status()
        for byte in frame[:-1]:
            await bench.send(ctx, bytes([byte]))
            await bench.quiet(ctx, TIMEOUT - 3)
        assert status_of(await bench.command(ctx, frame[-1:])) == (0, 0, 0)
        # No timeout while hunting.
        await bench.quiet(ctx, 3 * TIMEOUT)

    bench.simulate(script)


def test_a5_inside_a_frame_is_data():
    bench = LinkBench()
    a = addr(0, 0, Region.NEURON, 5)
    words = [0xA5A5A5A5A5A5A5A5, 0x5AA5]

    async def script(ctx):
        assert ack_of(await bench.command(ctx, cmd_write(a, words))) == Command.WRITE
        assert bench.mem == {a: words[0], a + 1: words[1]}

    bench.simulate(script)


# --- Elaboration --------------------------------------------------------------------

def test_elaborates_to_verilog():
    text = verilog.convert(HostLink(Geometry(rows=2, cols=2)), name="hostlink")
    assert "module hostlink" in text


@pytest.mark.parametrize("kwargs", [
    {"spike_queue_depth": MAX_SPIKES - 1},
    {"spike_queue_depth": 65536},
    {"output_buffer": 0},
    {"output_buffer": 513},
    {"timeout_cycles": 0},
])
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        HostLink(GEOMETRY, **kwargs)
    # The half-built component warns when collected; let that happen here,
    # under the filter above, rather than in a later test.
    gc.collect()
