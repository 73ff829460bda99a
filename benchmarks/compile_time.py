"""Compile time of a network with about one million synapses.

A 1000-channel input feeds 1000 CuBa LIF neurons densely (1,000,000
synapses), which feed 10 output neurons; it is compiled onto a 5x4 mesh of
cores with 65536 synapses each. Prints the time of each phase (building the
Network, compiling to a chip image, checking the image by decoding it). Run::

    python benchmarks/compile_time.py [--inputs 1000] [--neurons 1000]
"""

import argparse
import time

import numpy as np

from neuromesh.chip import Geometry
from neuromesh.compiler import Network, compile_network
from neuromesh.config import decode


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=1000)
    ap.add_argument("--neurons", type=int, default=1000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    net = Network()
    net.input("x", args.inputs)
    net.population("h", args.neurons, tau_mem=20.0, tau_syn=5.0, threshold=1.0)
    net.population("o", 10, tau_mem=20.0, tau_syn=5.0, threshold=1.0)
    net.connect("x", "h", rng.normal(0.0, 0.1, (args.inputs, args.neurons)))
    net.connect("h", "o", rng.normal(0.0, 0.1, (args.neurons, 10)))
    net.output("o")
    t1 = time.perf_counter()
    geometry = Geometry(rows=5, cols=4, n_neurons=256, n_axons=4096, n_synapses=65536,
                        n_fanout=1024, n_profiles=2, n_groups=2)
    compiled = compile_network(net, geometry)
    t2 = time.perf_counter()
    decode(compiled.image)
    t3 = time.perf_counter()
    n_syn = sum(p.pre.size for p in net.projections)
    print(f"network: {n_syn:,} synapses, {len(compiled.clusters)} clusters on {geometry}")
    print(f"build network    {t1 - t0:6.2f} s")
    print(f"compile          {t2 - t1:6.2f} s   (target <= 10 s)")
    print(f"decode + check   {t3 - t2:6.2f} s")
    print(f"placement cost {compiled.placement_cost:.0f} vs row-major {compiled.naive_cost:.0f} "
          f"packet-hops/step")


if __name__ == "__main__":
    main()
