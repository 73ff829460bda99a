"""Clock cycles per timestep of the RTL, as a function of neurons and
synaptic events, for a 1-core chip and a 2x2 mesh.

Each core gets ``n`` neurons; neuron 0 spikes every step (bias over a zero
threshold) and sends one packet to an axon of its own core whose run holds
``e`` synapses, so every step costs each core ``n`` neuron updates and ``e``
synaptic operations. The chip runs in Amaranth's simulator, driven through
its host link; the controller's cycle counter gives the cycles of each RUN.
Both core pipelines are measured: the one where the neuron pass and the
synapse unit take turns (``NeuronCore(overlap=False)``, the iCEBreaker's),
where a least-squares fit ``cycles = a + b*n + c*e + d*p`` (``p`` = packets
per step, 0 or 1 here; ``d`` is the fixed latency of one packet) gives the
steady-state throughput ``1/b`` neuron updates and ``1/c`` synaptic
operations per clock and per core (ODIN, the best-known open core, does 0.5
SOP/clk); and the overlapped one (the default), where a step costs
``max(n, e)`` plus a small constant. It also prints what the rates give at
the Fmax of each recorded board build.

Run::

    python benchmarks/rtl_cycles.py [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np
from amaranth.sim import Simulator

from neuromesh import ChipBuilder, Geometry
from neuromesh.host import HostDriver
from neuromesh.rtl.chip import Chip
from neuromesh.sim.amaranth_transport import SimTransport


def workload(rows, cols, n, e, n_max, e_max, delay=0):
    """The image of the sweep: ``e`` synapses of ``delay`` behind each core's
    one packet per step (docstring of the module)."""
    g = Geometry(rows=rows, cols=cols, n_neurons=n_max, n_axons=4, n_synapses=max(e_max, 1),
                 n_fanout=4, n_profiles=2, n_groups=1, delay_slots=4)
    b = ChipBuilder(g)
    for y in range(rows):
        for x in range(cols):
            c = b.core(x, y)
            c.profile(0, du=4096, dv=4096, vth_mant=0)
            c.profile(1, du=4096, dv=4096, vth_mant=2**17 - 1)
            c.group(0, w_shift=0)
            c.neurons(0, profile=0, bias_mant=1)
            c.neurons(range(1, n_max), profile=1)
            if e:
                c.synapses(axon=0, target=np.arange(e) % n_max, w_mant=1, delay=delay)
            c.route(0, x, y, 0)
    return b.build()


def cycles_per_step(image, n_active, steps=3, *, learning=False, overlap=True):
    """Cycles of one RUN 1, the same in each of ``steps`` RUNs after a warm-up.

    The pass length is ``n_neurons`` of the geometry, so ``n_active`` only
    documents the workload; the caller varies the geometry. ``learning``:
    the build with learning engines; ``overlap``: the pipeline whose synapse
    unit runs beside the neuron pass (False: the two take turns).
    """
    dut = Chip(image.geometry, learning=learning, core_args={"overlap": overlap})
    out = {}

    async def testbench(ctx):
        drv = HostDriver(SimTransport(ctx, dut, read_cycles=4))
        await drv.load_image(image)
        await drv.run(1)
        samples = []
        for _ in range(steps):
            before = ctx.get(dut.cycles)
            await drv.run(1)
            samples.append(ctx.get(dut.cycles) - before)
        out["cycles"] = samples

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(set(out["cycles"])) == 1, out["cycles"]   # deterministic
    return out["cycles"][0]


def sweep(rows, cols, ns, es, *, overlap=True):
    rows_out = []
    for n in ns:
        for e in es:
            image = workload(rows, cols, n, e, n, max(es))
            rows_out.append((n, e, cycles_per_step(image, n, overlap=overlap)))
    return rows_out


def fit(points):
    a = np.array([[1, n, e, e > 0] for n, e, _ in points], float)
    y = np.array([c for _, _, c in points], float)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef


#: Fmax of the recorded bitstream builds (docs/boards.md), MHz, and cores.
RECORDED_FMAX = {
    "icebreaker (1 core)": (29.53, 1),
    "ulx3s-85f (2x4)": (53.34, 8),
    "ulx3s-85f (2x4, --learning)": (53.02, 8),
}


def at_board_clocks(b: float, c: float, n: int = 256):
    """Print what the fitted per-clock costs give at each recorded Fmax:
    synaptic operations per second per core and for the chip, and the
    neuron pass of ``n`` neurons in microseconds."""
    print("at the recorded Fmax of each board build (docs/boards.md):")
    for board, (mhz, cores) in RECORDED_FMAX.items():
        sop = mhz * 1e6 / c
        print(f"  {board:<30} {mhz:6.2f} MHz: {sop / 1e6:6.2f} M SOP/s per core, "
              f"{cores * sop / 1e6:7.2f} M SOP/s chip; {n} neuron updates take "
              f"{n * b / mhz:6.2f} us")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, smaller points")
    args = ap.parse_args(argv)
    ns = (8, 32) if args.quick else (16, 64, 256)
    es = (0, 16, 48) if args.quick else (0, 64, 256)
    for rows, cols in ((1, 1), (2, 2)):
        turns = sweep(rows, cols, ns, es, overlap=False)
        overlap = sweep(rows, cols, ns, es, overlap=True)
        a, b, c, d = fit(turns)
        print(f"{rows}x{cols} mesh ({rows * cols} cores; per core: n neurons, e synaptic ops "
              f"per step)")
        print(f"{'n':>6} {'e':>6} {'taking turns':>13} {'fit':>8} {'overlap':>8} "
              f"{'- max(n, e)':>12}")
        for (n, e, cyc), (_, _, cyc_o) in zip(turns, overlap):
            print(f"{n:>6} {e:>6} {cyc:>13} {a + b * n + c * e + d * (e > 0):>8.1f} "
                  f"{cyc_o:>8} {cyc_o - max(n, e):>12}")
        print(f"taking turns (NeuronCore(overlap=False)): cycles = {a:.1f} + {b:.3f}*n + "
              f"{c:.3f}*e + {d:.1f}*p  ->  {1 / b:.2f} neuron updates/clk/core, "
              f"{1 / c:.2f} SOP/clk/core; chip: {rows * cols / b:.2f} updates/clk, "
              f"{rows * cols / c:.2f} SOP/clk")
        extra = [cyc_o - max(n, e) for n, e, cyc_o in overlap]
        print(f"overlap (the default): cycles = max(n, e) + {min(extra)}..{max(extra)}; "
              f"the pass and the synapse unit each keep 1 per clock, together up to "
              f"2 operations/clk/core\n")
        if (rows, cols) == (1, 1):
            at_board_clocks(b, c)
            print()


if __name__ == "__main__":
    main()
