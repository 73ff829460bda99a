"""Evaluation throughput on Dask workers against the single-process emulator.

The demo's digits model (compiled for the demo's 2x2 geometry) on
scikit-learn's digits test split repeated to at least 10,000 samples, 17
chip steps each. Three ways, interleaved, best of ``--reps``:

- one process: ``Emulator(image, batch=N).run(x)`` in this process, BLAS
  pinned to one thread (threadpoolctl), the baseline;
- one process in chunks: ``evaluate`` without a client, the same chunks one
  after the other here (separates the effect of the chunk size from Dask's);
- ``evaluate`` on a local cluster of 1 worker process;
- ``evaluate`` on a local cluster of 2 worker processes.

Dask starts its worker processes with OMP_NUM_THREADS=1 (and the other BLAS
variables), one thread each, so every way uses one thread per process. The
merged results are checked to be identical to the baseline before any number
is printed. Then the overhead per task: the wall time of many empty tasks
divided by their number, and the extra time of an evaluation cut into small
chunks over one in large chunks, per extra task. Run::

    python benchmarks/cluster_scaling.py [--repeat 23] [--reps 5] [--chunk 512]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def best_of(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=23,
                   help="copies of the 450 test images (default: %(default)s = 10,350 samples)")
    p.add_argument("--reps", type=int, default=5, help="best of (default: %(default)s)")
    p.add_argument("--chunk", type=int, default=512, help="samples per task (default: 512)")
    args = p.parse_args()

    from threadpoolctl import threadpool_limits

    from neuromesh.cluster import Task, connect, evaluate, run_tasks
    from neuromesh.cluster.datasets import chip_spikes, digits_test_set
    from neuromesh.demo import compile_demo
    from neuromesh.emulator import Emulator

    compiled = compile_demo()
    image = compiled.image
    data = digits_test_set(repeat=args.repeat)
    x = chip_spikes(data.spikes, image.n_inputs, 0, max(compiled.network.latency.values()))
    n = x.shape[1]
    print(f"digits model on {image.geometry}: {n} samples x {x.shape[0]} steps, "
          f"chunks of {args.chunk}")
    print(f"threads: this process {os.environ.get('OMP_NUM_THREADS', 'unset')} "
          f"(BLAS limited to 1 by threadpoolctl); workers: Dask's OMP_NUM_THREADS=1, "
          f"1 thread each")

    with threadpool_limits(1), connect(1) as (one, _), connect(2) as (two, _):
        def single():
            return Emulator(image, batch=n).run(x)

        def spread(client, chunk=args.chunk):
            return evaluate(image, x, client=client, chunk=chunk)

        want = single()
        for client in (one, two):                  # warm up: imports, decoded images
            got = spread(client).result
            assert all(np.array_equal(getattr(got, k), getattr(want, k))
                       for k in ("outputs", "neuron_spikes", "synaptic_events"))
        print("merged results identical to the single-process run: yes\n")

        times = {"one process": [], "in chunks": [], "1 worker": [], "2 workers": []}
        for _ in range(args.reps):                 # interleaved
            times["one process"].append(best_of(single, 1))
            times["in chunks"].append(best_of(lambda: spread(None), 1))
            times["1 worker"].append(best_of(lambda: spread(one), 1))
            times["2 workers"].append(best_of(lambda: spread(two), 1))
        base = min(times["one process"])
        print(f"{'way':<14}{'best s':>9}{'samples/s':>12}{'vs one process':>16}")
        for way, ts in times.items():
            t = min(ts)
            print(f"{way:<14}{t:>9.3f}{n / t:>12.0f}{base / t:>15.2f}x")
        print(f"2 workers / 1 worker: {min(times['1 worker']) / min(times['2 workers']):.2f}x")

        print("\noverhead per task")
        k = 400
        empty = [Task(f"task {i}", 1, int, ("0",)) for i in range(k)]
        for name, client in (("1 worker", one), ("2 workers", two)):
            run_tasks(empty, client)
            t = best_of(lambda c=client: run_tasks(empty, c), args.reps)
            print(f"  {k} empty tasks on {name}: {t:.3f} s, {1e3 * t / k:.2f} ms per task")
        small, large = 64, 2048
        ts = best_of(lambda: spread(two, small), args.reps)
        tl = best_of(lambda: spread(two, large), args.reps)
        extra = -(-n // small) - -(-n // large)
        print(f"  eval on 2 workers, chunks of {small}: {ts:.3f} s ({-(-n // small)} tasks); "
              f"of {large}: {tl:.3f} s ({-(-n // large)} tasks): "
              f"{1e3 * (ts - tl) / extra:.2f} ms per extra task")


if __name__ == "__main__":
    main()
