"""Simulation tests of the mesh router and the mesh (architecture §6.3–§6.5).

The router is checked against a plain-Python routing function input by input
and destination by destination; the mesh is driven with random traffic and
random back-pressure and every packet is tracked from its injection handshake
to its delivery handshake.
"""

import random
from collections import defaultdict

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from neuromesh.chip import Geometry
from neuromesh.rtl.mesh import Mesh
from neuromesh.rtl.router import DIRECTIONS, Router


def expected_route(rx, ry, x, y, to_host):
    """The output port of router ``(rx, ry)`` for a packet (§6.3, spec pseudocode)."""
    if to_host:
        x = y = 0
    if x > rx:
        return "east"
    if x < rx:
        return "west"
    if y > ry:
        return "south"
    if y < ry:
        return "north"
    return "west" if to_host else "local"


def packet(payload, x, y, to_host):
    return {"payload": payload, "x": x, "y": y, "to_host": to_host}


def as_tuple(const):
    """A sampled :data:`~neuromesh.rtl.layouts.PACKET` as ``(payload, x, y, to_host)``."""
    return (const.payload, const.x, const.y, const.to_host)


def run(dut, *testbenches, background=(), vcd=None):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


# --- single router -------------------------------------------------------------------------

@pytest.mark.parametrize("rx, ry", [(x, y) for y in range(3) for x in range(3)])
def test_router_routing_table(rx, ry):
    """At every position of a 3×3 mesh (centre, edges, corners): every
    input, every destination of the mesh and host-bound packets
    (with arbitrary x, y, which the router must ignore) leave through the
    port of the XY rule, unchanged, one at a time."""
    rows = cols = 3
    dut = Router(rx, ry, rows, cols)
    inputs = {d: getattr(dut, f"i_{d}") for d in DIRECTIONS}
    outputs = {d: getattr(dut, f"o_{d}") for d in DIRECTIONS}
    cases = [packet(0x1000 + 16 * y + x, x, y, 0) for y in range(rows) for x in range(cols)]
    cases += [packet(0xF000 + 16 * y + x, x, y, 1) for y, x in [(0, 0), (1, 2), (2, 1), (15, 15)]]
    checked = []

    async def testbench(ctx):
        for d in DIRECTIONS:
            ctx.set(outputs[d].ready, 0)
        for i_dir in DIRECTIONS:
            for pkt in cases:
                assert ctx.get(dut.idle)
                assert ctx.get(inputs[i_dir].ready)
                ctx.set(inputs[i_dir].payload, pkt)
                ctx.set(inputs[i_dir].valid, 1)
                await ctx.tick()
                ctx.set(inputs[i_dir].valid, 0)
                assert not ctx.get(dut.idle)
                want = expected_route(rx, ry, pkt["x"], pkt["y"], pkt["to_host"])
                valid = {d for d in DIRECTIONS if ctx.get(outputs[d].valid)}
                assert valid == {want}, (i_dir, pkt)
                assert as_tuple(ctx.get(outputs[want].payload)) == tuple(pkt.values())
                ctx.set(outputs[want].ready, 1)
                await ctx.tick()
                ctx.set(outputs[want].ready, 0)
                assert not any(ctx.get(outputs[d].valid) for d in DIRECTIONS)
                checked.append((i_dir, want))

    run(dut, testbench)
    assert len(checked) == len(DIRECTIONS) * len(cases)


def test_router_round_robin():
    """All five inputs compete for one output that is always ready: the
    output moves one packet per clock, the grants rotate over all inputs and
    every input's packets come out in order."""
    dut = Router(1, 1, 3, 3)
    per_input = 12
    got = []

    def sender(i, d):
        async def tb(ctx):
            port = getattr(dut, f"i_{d}")
            for seq in range(per_input):
                ctx.set(port.payload, packet(16 * i + seq, 1, 1, 0))
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)
        return tb

    async def receiver(ctx):
        ctx.set(dut.o_local.ready, 1)
        while len(got) < 5 * per_input:
            _, _, valid, payload = await ctx.tick().sample(dut.o_local.valid, dut.o_local.payload)
            if valid:
                got.append(payload.payload)
            elif got:
                # After the first packet, the output must never go idle
                # while inputs still hold packets.
                assert len(got) == 5 * per_input, "output bubble"

    run(dut, *(sender(i, d) for i, d in enumerate(DIRECTIONS)), receiver)
    sources = [p // 16 for p in got]
    for k in range(0, len(sources), 5):
        assert sorted(sources[k:k + 5]) == list(range(5)), sources
    for i in range(5):
        assert [p % 16 for p in got if p // 16 == i] == list(range(per_input))


# --- mesh -----------------------------------------------------------------------------------

def mesh_traffic(geometry, seed, n_packets, p_gap=0.3, p_ready=0.6, fifo_depth=2):
    """Random traffic through a :class:`Mesh`, tracked at every handshake.

    Each core and the host send ``n_packets`` random packets with random gaps;
    every sink applies random back-pressure. A monitor samples all handshakes
    at every clock edge and checks that ``idle`` is high exactly when no
    accepted packet is undelivered, and that every output holds ``valid`` and
    its payload until the transfer.
    """
    rng = random.Random(seed)
    rows, cols, n = geometry.rows, geometry.cols, geometry.n_cores
    dut = Mesh(geometry, fifo_depth=fifo_depth)
    host = n  # source/sink index of the host port
    sources = [*dut.local_in, dut.host_in]
    sinks = [*dut.local_out, dut.host_out]

    # The payload names the source and a per-source sequence number, so that
    # every packet is unique and its origin and order can be recovered.
    traffic = []
    for s in range(n + 1):
        pkts = []
        for seq in range(n_packets):
            payload = (s << 10) | seq
            if s != host and rng.random() < 0.2:
                pkts.append(packet(payload, 0, 0, 1))
            else:
                pkts.append(packet(payload, rng.randrange(cols), rng.randrange(rows), 0))
        traffic.append(pkts)
    total = sum(len(p) for p in traffic)

    accepted = defaultdict(list)   # source -> packets, in handshake order
    delivered = defaultdict(list)  # sink -> packets, in handshake order
    state = {"in_flight": 0, "delivered": 0, "busy_cycles": 0, "max_in_flight": 0}

    def sender(s):
        async def tb(ctx):
            port = sources[s]
            for pkt in traffic[s]:
                while rng.random() < p_gap:
                    await ctx.tick()
                ctx.set(port.payload, pkt)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
        return tb

    def receiver(k):
        async def tb(ctx):
            while True:
                ctx.set(sinks[k].ready, rng.random() < p_ready)
                await ctx.tick()
        return tb

    async def monitor(ctx):
        watched = []
        for port in (*sources, *sinks):
            watched += [port.valid, port.ready, port.payload]
        stalled = {}  # sink -> packet presented but not taken at the previous edge
        cycles = 0
        while state["delivered"] < total:
            cycles += 1
            assert cycles < 200 * total, "mesh stuck"
            _, _, idle, *values = await ctx.tick().sample(dut.idle, *watched)
            assert bool(idle) == (state["in_flight"] == 0), (cycles, state)
            state["busy_cycles"] += not idle
            for j in range(len(sources) + len(sinks)):
                valid, ready, payload = values[3 * j:3 * j + 3]
                if j < len(sources):
                    if valid and ready:
                        accepted[j].append(as_tuple(payload))
                        state["in_flight"] += 1
                        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
                    continue
                k = j - len(sources)
                if k in stalled:
                    assert valid and as_tuple(payload) == stalled.pop(k), "unstable output"
                if valid and ready:
                    delivered[k].append(as_tuple(payload))
                    state["in_flight"] -= 1
                    state["delivered"] += 1
                elif valid:
                    stalled[k] = as_tuple(payload)
        # Everything is out: the mesh reports idle from now on.
        for _ in range(4):
            assert ctx.get(dut.idle)
            await ctx.tick()

    run(dut, *(sender(s) for s in range(n + 1)), monitor,
        background=[receiver(k) for k in range(n + 1)])

    # Every packet was injected as sent, and delivered exactly once to its sink.
    for s in range(n + 1):
        assert accepted[s] == [tuple(p.values()) for p in traffic[s]]
    sent = sorted(tuple(p.values()) for pkts in traffic for p in pkts)
    assert sorted(p for pkts in delivered.values() for p in pkts) == sent
    for k, pkts in delivered.items():
        for _, x, y, to_host in pkts:
            assert k == (host if to_host else y * cols + x)
    # XY routing through FIFOs preserves order per (source, sink) pair.
    for pkts in delivered.values():
        by_source = defaultdict(list)
        for p in pkts:
            by_source[p[0] >> 10].append(p[0] & 0x3FF)
        for seqs in by_source.values():
            assert seqs == sorted(seqs)
    assert state["busy_cycles"] > 0
    return state


@pytest.mark.parametrize("rows, cols, n_packets", [
    (1, 1, 200),
    (1, 3, 100),
    (2, 2, 100),
    (3, 3, 50),
    (4, 4, 25),
])
def test_mesh_random_traffic(rows, cols, n_packets):
    mesh_traffic(Geometry(rows=rows, cols=cols), seed=rows * 16 + cols, n_packets=n_packets)


def test_mesh_saturated():
    """No gaps and sinks that are nearly always ready: heavy load."""
    state = mesh_traffic(Geometry(rows=2, cols=3), seed=7, n_packets=50, p_gap=0.0, p_ready=0.9)
    assert state["max_in_flight"] > 20


def test_mesh_sparse():
    """Long gaps: the mesh keeps emptying and refilling, so ``idle`` toggles
    often and must follow every packet."""
    mesh_traffic(Geometry(rows=3, cols=3), seed=8, n_packets=20, p_gap=0.95, p_ready=0.8)


@pytest.mark.parametrize("fifo_depth", [1, 3])
def test_mesh_fifo_depth(fifo_depth):
    mesh_traffic(Geometry(rows=2, cols=2), seed=fifo_depth, n_packets=50, fifo_depth=fifo_depth)


def test_mesh_verilog():
    text = verilog.convert(Mesh(Geometry(rows=2, cols=2)), name="mesh")
    assert "module mesh(" in text
    for k in range(4):
        assert f"local_in__{k}__valid" in text
