"""Co-simulation throughput: timesteps/s and simulated clock cycles/s of a
2x2 chip with 256 neurons per core, on Verilator (cocotb) and on Amaranth's
simulator, running the same image through the host link.

The workload is the one of ``benchmarks/rtl_cycles.py``: per core and step,
256 neuron updates and 64 synaptic operations. Only the RUN is timed (not
compilation or image loading). Run::

    python benchmarks/cosim_throughput.py [--steps 2000] [--amaranth-steps 10]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

sys.path.insert(0, str(Path(__file__).parent))
from rtl_cycles import workload  # noqa: E402

from neuromesh.host import HostDriver  # noqa: E402
from neuromesh.rtl.chip import Chip  # noqa: E402
from neuromesh.sim.amaranth_transport import SimTransport  # noqa: E402
from neuromesh.sim.runner import build_verilator, run_verilator, write_case  # noqa: E402


def amaranth_throughput(image, steps):
    dut = Chip(image.geometry)
    out = {}

    async def testbench(ctx):
        transport = SimTransport(ctx, dut)
        drv = HostDriver(transport)
        await drv.load_image(image)
        c0, k0 = ctx.get(dut.cycles), transport.cycles
        t0 = time.perf_counter()
        await drv.run(steps)
        out["wall"] = time.perf_counter() - t0
        out["cycles"] = ctx.get(dut.cycles) - c0
        out["sim_cycles"] = transport.cycles - k0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000, help="Verilator steps")
    ap.add_argument("--amaranth-steps", type=int, default=10)
    ap.add_argument("--neurons", type=int, default=256)
    args = ap.parse_args(argv)
    image = workload(2, 2, args.neurons, 64, args.neurons, 64)
    t0 = time.perf_counter()
    build_verilator(image.geometry)
    print(f"Verilator build (cached after the first): {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        case = write_case(Path(tmp), "bench", image, np.zeros((args.steps, 0), bool))
        v = run_verilator(image.geometry, [case], mode="throughput")
    a = amaranth_throughput(image, args.amaranth_steps)
    print(f"2x2 chip, {args.neurons} neurons/core, 64 SOP/core/step "
          f"({v.cycles // args.steps} cycles/step)")
    print(f"{'simulator':<12} {'steps':>7} {'seconds':>9} {'steps/s':>9} {'cycles/s':>11}")
    rows = [("verilator", args.steps, v.wall, v.sim_cycles),
            ("amaranth", args.amaranth_steps, a["wall"], a["sim_cycles"])]
    for name, steps, wall, cycles in rows:
        print(f"{name:<12} {steps:>7} {wall:>9.2f} {steps / wall:>9.1f} {cycles / wall:>11.0f}")
    print(f"verilator / amaranth: {(args.steps / v.wall) / (args.amaranth_steps / a['wall']):.0f}x")


if __name__ == "__main__":
    main()
