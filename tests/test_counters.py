"""The activity counters of docs/architecture.md §13: known values on a
hand-built chip in the emulator and in the RTL (read over the host link),
RESET, the read-only region, a chip built without them, and the
co-simulation catching a wrong count."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from neuromesh import ChipBuilder, Geometry
from neuromesh.chip import COUNTERS_REGION, PASS_LATENCY, Counter, pack_address
from neuromesh.emulator import Emulator
from neuromesh.host import CountersUnavailableError, HostDriver, HostLinkError
from neuromesh.protocol import ErrorCode, ResetMode
from neuromesh.rtl.chip import Chip
from neuromesh.sim.amaranth_transport import SimTransport
from neuromesh.sim.runner import run_amaranth

G = Geometry(rows=2, cols=2, n_neurons=4, n_axons=4, n_synapses=8, n_fanout=8,
             n_profiles=2, n_groups=1, delay_slots=4)


def known_chip():
    """Core (0,0) neuron 0 and core (1,1) neuron 1 spike every step.
    (0,0)/0 sends to (1,1) axon 0 (a run of 3 synapses, weight 0: 2 hops)
    and to host channel 0 (0 hops); (1,1)/1 sends to (1,0) axon 1 (run of
    2: 1 hop) and to host channel 1 (2 hops). Host input channel 0 feeds
    (0,1) axon 2 (run of 4)."""
    b = ChipBuilder(G)
    for y in range(2):
        for x in range(2):
            c = b.core(x, y)
            c.profile(0, du=4096, dv=4096, vth_mant=0)
            c.profile(1, du=4096, dv=4096, vth_mant=2**17 - 1)
            c.group(0, w_shift=0)
            c.neurons(range(4), profile=1)
    b.core(0, 0).neurons(0, profile=0, bias_mant=1)
    b.core(0, 0).route(0, 1, 1, 0).to_host(0, 0)
    b.core(1, 1).neurons(1, profile=0, bias_mant=1)
    b.core(1, 1).route(1, 1, 0, 1).to_host(1, 1)
    b.core(1, 1).synapses(axon=0, target=[0, 1, 2], w_mant=0)
    b.core(1, 0).synapses(axon=1, target=[0, 1], w_mant=0)
    b.core(0, 1).synapses(axon=2, target=[0, 1, 2, 3], w_mant=0)
    b.input(0, 0, 1, 2)
    return b.build()


def expected(steps, host_spikes):
    """Counters after ``steps`` steps with ``host_spikes`` input spikes."""
    n = G.n_neurons
    rows = {  # SPIKES, UPDATES, SYNOPS, PACKETS, HOPS, LEARN (CLOCKS below)
        0: (steps, steps * n, 0, 2 * steps, 2 * steps, 0),
        1: (0, steps * n, 2 * steps, 0, 0, 0),
        2: (0, steps * n, 4 * host_spikes, 0, 0, 0),
        3: (steps, steps * n, 3 * steps, 2 * steps, 3 * steps, 0),
    }
    out = np.zeros((G.n_cores, len(Counter)), np.uint32)
    for k, row in rows.items():
        out[k, :6] = row
        out[k, Counter.CLOCKS] = steps * (n + PASS_LATENCY) + row[Counter.SYNOPS]
    return out


INPUTS = np.array([[1], [0], [1], [1], [0]], bool)


def test_emulator_counts_known_values():
    emu = Emulator(known_chip())
    assert emu.counters().shape == (1, G.n_cores, len(Counter))
    assert not emu.counters().any()
    emu.run(INPUTS[:2])
    np.testing.assert_array_equal(emu.counters()[0], expected(2, 1))
    emu.run(INPUTS[2:])
    np.testing.assert_array_equal(emu.counters()[0], expected(5, 3))
    emu.reset()
    assert not emu.counters().any()


def test_emulator_counters_per_batch_row_and_wrap():
    emu = Emulator(known_chip(), batch=2)
    x = np.zeros((5, 2, 1), bool)
    x[:, 0] = INPUTS
    emu.run(x)
    c = emu.counters()
    np.testing.assert_array_equal(c[0], expected(5, 3))
    np.testing.assert_array_equal(c[1], expected(5, 0))
    # u32, wrapping: 2**32 steps' worth of updates read as the remainder.
    emu._steps_total += 1 << 30
    assert int(emu.counters()[1, 0, Counter.UPDATES]) == (5 * 4 + (4 << 30)) % (1 << 32)


def run_chip(image, body, **chip_args):
    dut = Chip(image.geometry, **chip_args)
    out = {}

    async def testbench(ctx):
        drv = HostDriver(SimTransport(ctx, dut, read_cycles=4))
        await drv.load_image(image)
        await body(drv, out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def test_rtl_counts_known_values_reset_and_read_only():
    image = known_chip()

    async def body(drv, out):
        out["start"] = await drv.read_counters(G)
        out["steps"] = []
        for t in range(len(INPUTS)):
            await drv.run_inputs(image, INPUTS[t:t + 1])
            out["steps"].append(await drv.read_counters(G))
        await drv.reset(ResetMode.STATE)
        out["after_reset"] = await drv.read_counters(G)
        try:
            await drv.write(int(pack_address(0x11, COUNTERS_REGION, 2)), [5])
        except HostLinkError as e:
            out["write"] = (e.code, e.detail)
        try:
            await drv.read(int(pack_address(0, COUNTERS_REGION, 3)), len(Counter))
        except HostLinkError as e:
            out["past_end"] = (e.code, e.detail)

    out = run_chip(image, body, counters=True)
    assert not out["start"].any()
    for t, got in enumerate(out["steps"]):
        np.testing.assert_array_equal(got, expected(t + 1, int(INPUTS[:t + 1].sum())))
    assert not out["after_reset"].any()
    assert out["write"] == (ErrorCode.BAD_ADDRESS, pack_address(0x11, COUNTERS_REGION, 2))
    assert out["past_end"] == (ErrorCode.BAD_ADDRESS,
                               pack_address(0, COUNTERS_REGION, len(Counter)))


def test_a_chip_without_counters_says_so():
    async def body(drv, out):
        try:
            await drv.read_counters(G)
        except CountersUnavailableError as e:
            out["error"] = str(e)

    out = run_chip(known_chip(), body)
    assert out["error"].startswith("the chip has no activity counters")
    assert "\n" not in out["error"]


@pytest.mark.parametrize("overlap", [False, True])
def test_clocks_is_the_cycle_law_of_the_real_step(overlap):
    """On one core with no packets in flight at the end of the pass, the
    real step length (controller cycles) of the pipeline without overlap
    minus CLOCKS is the same constant for every n and e: CLOCKS carries all
    of the n + e of the cycle law. With overlap, CLOCKS counts the same
    busy clocks, and the step is shorter by what the two units overlap."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    from rtl_cycles import workload

    gaps = set()
    for n, e in ((8, 0), (8, 12), (16, 12)):
        image = workload(1, 1, n, e, n, 12)
        dut = Chip(image.geometry, counters=True, core_args={"overlap": overlap})
        out = {}

        async def testbench(ctx, dut=dut, image=image, out=out):
            drv = HostDriver(SimTransport(ctx, dut, read_cycles=4))
            await drv.load_image(image)
            await drv.run(1)
            before = (ctx.get(dut.cycles), (await drv.read_counters(image.geometry))[0])
            await drv.run(1)
            after = (ctx.get(dut.cycles), (await drv.read_counters(image.geometry))[0])
            out["cycles"] = after[0] - before[0]
            out["clocks"] = int(after[1][Counter.CLOCKS] - before[1][Counter.CLOCKS])
            out["synops"] = int(after[1][Counter.SYNOPS] - before[1][Counter.SYNOPS])

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(testbench)
        sim.run()
        assert out["synops"] == e
        assert out["clocks"] == n + PASS_LATENCY + e
        gaps.add(out["cycles"] - out["clocks"] - 3 * (e > 0))
    if overlap:
        # (8, 12): the 12 synaptic ops run beside the last clocks of the pass.
        assert max(gaps) <= 9 and min(gaps) < 9, gaps
    else:
        assert gaps == {9}, gaps      # docs/rtl.md: a step costs CLOCKS + 9 + 3p


@pytest.mark.parametrize("counter", [Counter.SYNOPS, Counter.HOPS])
def test_the_cosimulation_catches_a_wrong_count(monkeypatch, counter):
    """Mutation check: an emulator that counts one too many is reported at
    step 0 with the counter's name and the core."""
    counters = Emulator.counters

    def off_by_one(self):
        c = counters(self)
        c[:, 3, counter] += 1
        return c

    monkeypatch.setattr(Emulator, "counters", off_by_one)
    result = run_amaranth(known_chip(), INPUTS[:2])
    assert not result.identical
    d = result.divergences[0]
    assert d["step"] == 0 and d["field"] == f"counter {counter.name}" and d["core"] == 3
    assert d["chip"] + 1 == d["emulator"]


def test_torch_backend_counts_the_same():
    pytest.importorskip("torch")
    x = np.zeros((5, 2, 1), bool)
    x[:, 0] = INPUTS
    a, b = Emulator(known_chip(), batch=2), Emulator(known_chip(), batch=2, backend="torch")
    a.run(x)
    b.run(x)
    np.testing.assert_array_equal(a.counters(), b.counters())
    np.testing.assert_array_equal(b.counters()[0], expected(5, 3))


def test_run_on_a_board_without_counters_says_so_in_one_line():
    """``neuromesh run``/``demo`` print one line instead of the table."""
    from neuromesh.counters import NO_COUNTERS, backend_counters

    class Board:
        def counters(self):
            raise CountersUnavailableError("no counters")

    assert backend_counters(Board()) is None
    assert "\n" not in NO_COUNTERS and "neuromesh build --counters" in NO_COUNTERS
    assert backend_counters(Emulator(known_chip())).shape == (1, 4, 7)


@pytest.mark.parametrize("content, needle", [
    (None, "not a readable JSON file"),
    ("[1, 2]", "expected a JSON object"),
    ('{"hops": 1}', "unknown operation 'hops'; known: neuron_update"),
    ('{"hop": -1}', "hop = -1 is not a number >= 0"),
    ('{"learn": "a lot"}', "learn = 'a lot' is not a number >= 0"),
])
def test_a_bad_energy_table_is_one_line_before_the_run(tmp_path, capsys, content, needle):
    from test_bad_input import assert_one_line_error, cli

    from neuromesh.image import save
    save(known_chip(), tmp_path / "k.nmi")
    table = tmp_path / "t.json"
    if content is not None:
        table.write_text(content)
    line = assert_one_line_error(cli(["run", tmp_path / "k.nmi", "--steps", "2",
                                      "--energy-table", table], capsys), needle)
    assert line.startswith(f"neuromesh run: error: --energy-table {table}: ")


def test_a_custom_energy_table_prices_the_run(tmp_path, capsys):
    from neuromesh.cli import main
    from neuromesh.image import save
    save(known_chip(), tmp_path / "k.nmi")
    table = tmp_path / "t.json"
    table.write_text('{"neuron_update": 0, "spike": 0, "synaptic_op": 0, "packet": 0, '
                     '"hop": 1000000, "learn": 0}')
    assert main(["run", str(tmp_path / "k.nmi"), "--steps", "2", "--quiet",
                 "--energy-table", str(table)]) == 0
    # 2 steps x (2 + 3) hops x 1 uJ
    assert "energy from the counters: 10 uJ per run (the given table" in capsys.readouterr().out
