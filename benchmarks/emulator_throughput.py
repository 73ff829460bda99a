"""Emulator throughput against a hand-written numpy kernel of the same network.

B1: 784 -> 512 -> 10 CuBa LIF feed-forward, 5 % Poisson input, batch 1 and 64,
    on a 3x3 mesh (8 cores of 64 hidden neurons, 1 output core).
B2: 10,000 neurons, recurrent, connection probability 0.02 (~2 M synapses),
    on 40 cores of 256 neurons, driven by bias.

Exact kernels run in this process on the same input, interleaved, best of
``--repeats``; their spikes are checked to be identical to the emulator's, so
the comparison is between implementations of one computation. Peers users
compare with join when installed: the torch backend, plain torch and
snnTorch (float32, not the chip's arithmetic: speed only). Then the scaling
sweep: random recurrent nets of 1k ... 100k neurons at fan-in 200
(``recurrent_net.py``), each in its own process for an honest peak RSS.
Times are CPU seconds of one thread (BLAS and torch pinned to one thread).
Run::

    python benchmarks/emulator_throughput.py [--steps 1000] [--quick] [--sweep 1000,10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator

DU, DV = 410, 205          # tau_syn ~ 10 steps, tau_mem ~ 20 steps


# --- hand kernel: the spec arithmetic, one population at a time -----------

def lif(u, v, q, bias, vth, du=DU, dv=DV):
    """One CuBa LIF update with reset to zero (no refractory), in place."""
    p = u * (4096 - du)
    p += (p >> 63) & 4095
    p >>= 12
    p += q
    p <<= 40
    p >>= 40
    u[:] = p
    p = v * (4096 - dv)
    p += (p >> 63) & 4095
    p >>= 12
    p += u
    p += bias
    np.clip(p, -(2**23 - 1), 2**23 - 1, out=p)
    s = p > vth
    p[s] = 0
    v[:] = p
    return s


# --- B1 ------------------------------------------------------------------------

def build_b1(seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-40, 60, (784, 512))          # mantissas, shift 6
    w2 = rng.integers(-60, 100, (512, 10))
    g = Geometry(rows=3, cols=3, n_neurons=64, n_axons=784, n_synapses=784 * 64,
                 n_fanout=64, n_profiles=1, n_groups=1, delay_slots=2)
    b = ChipBuilder(g)
    vth1, vth2 = 600, 300
    for k in range(8):
        c = b.core(k % 3, k // 3)
        c.profile(0, du=DU, dv=DV, vth_mant=vth1)
        c.group(0, w_shift=6)
        c.neurons(range(64), profile=0)
        axon, tgt = np.meshgrid(np.arange(784), np.arange(64), indexing="ij")
        c.synapses(axon=axon.ravel(), target=tgt.ravel(),
                   w_mant=w1[:, 64 * k:64 * (k + 1)].ravel())
        c.route(np.arange(64), 2, 2, 64 * k + np.arange(64))
        b.input(np.arange(784), k % 3, k // 3, np.arange(784))
    c = b.core(2, 2)
    c.profile(0, du=DU, dv=DV, vth_mant=vth2)
    c.group(0, w_shift=6)
    c.neurons(range(10), profile=0)
    axon, tgt = np.meshgrid(np.arange(512), np.arange(10), indexing="ij")
    c.synapses(axon=axon.ravel(), target=tgt.ravel(), w_mant=w2.ravel())
    c.to_host(np.arange(10), np.arange(10))
    return b.build(), dict(w1=w1 << 6, w2=w2 << 6, vth1=vth1 << 6, vth2=vth2 << 6)


def hand_b1(net, x):
    """Plain numpy B1: input at t lands at t, hidden spikes at t land at t+1."""
    steps, batch, _ = x.shape
    w1 = net["w1"].astype(np.float32)     # |column sums| < 2**24: exact
    w2 = net["w2"].astype(np.float32)
    u1 = np.zeros((batch, 512), np.int64)
    v1 = np.zeros_like(u1)
    u2 = np.zeros((batch, 10), np.int64)
    v2 = np.zeros_like(u2)
    q2 = np.zeros((batch, 10), np.int64)
    out = np.zeros((steps, batch, 10), bool)
    events = 0
    for t in range(steps):
        if batch == 1:
            idx = np.flatnonzero(x[t, 0])
            q1 = w1[idx].sum(0, keepdims=True).astype(np.int64)
        else:
            q1 = (x[t].astype(np.float32) @ w1).astype(np.int64)
        s1 = lif(u1, v1, q1, 0, net["vth1"])
        out[t] = lif(u2, v2, q2, 0, net["vth2"])
        q2 = (s1.astype(np.float32) @ w2).astype(np.int64)
        events += int(x[t].sum()) * 512 + int(s1.sum()) * 10
    return out, events


# --- B2 ------------------------------------------------------------------------

N2, P2, PER_CORE = 10_000, 0.02, 256


def build_b2(seed=0):
    rng = np.random.default_rng(seed)
    n_cores = -(-N2 // PER_CORE)
    mask = rng.random((N2, N2)) < P2
    src, tgt = np.nonzero(mask)
    del mask
    w = rng.integers(-12, 10, src.size)
    bias = rng.integers(20, 80, N2)
    g = Geometry(rows=5, cols=8, n_neurons=PER_CORE, n_axons=N2, n_synapses=65536,
                 n_fanout=16384, n_profiles=1, n_groups=1, delay_slots=2)
    b = ChipBuilder(g)
    tcore = tgt // PER_CORE
    for k in range(n_cores):
        c = b.core(k % 8, k // 8)
        c.profile(0, du=DU, dv=DV, vth_mant=100)
        c.group(0, w_shift=6)
        n = min(PER_CORE, N2 - k * PER_CORE)
        c.neurons(range(n), profile=0, bias_mant=bias[k * PER_CORE:k * PER_CORE + n], bias_exp=3)
        sel = tcore == k
        # axon number = global source index
        c.synapses(axon=src[sel], target=tgt[sel] - k * PER_CORE, w_mant=w[sel])
    pairs = np.unique(src * n_cores + tcore)     # (source, target core) fan-out entries
    psrc, pcore = pairs // n_cores, pairs % n_cores
    for k in range(n_cores):
        sel = psrc // PER_CORE == k
        b.core(k % 8, k // 8).route(psrc[sel] - k * PER_CORE, pcore[sel] % 8,
                                    pcore[sel] // 8, psrc[sel])
        if k == 0:
            b.core(0, 0).to_host(np.arange(PER_CORE), np.arange(PER_CORE))
    order = np.argsort(src, kind="stable")
    return b.build(), dict(src=src[order], tgt=tgt[order], w=(w[order] << 6),
                           bias=bias << 3, vth=100 << 6)


def hand_b2(net, steps):
    """Plain numpy B2: event-driven CSR gather + bincount per step."""
    indptr = np.concatenate([[0], np.cumsum(np.bincount(net["src"], minlength=N2))])
    tgt, w = net["tgt"], net["w"].astype(np.float64)
    u = np.zeros((1, N2), np.int64)
    v = np.zeros_like(u)
    q = np.zeros((1, N2), np.int64)
    out = np.zeros((steps, 1, PER_CORE), bool)
    events = 0
    for t in range(steps):
        s = lif(u, v, q, net["bias"], net["vth"])
        out[t] = s[:, :PER_CORE]
        idx = np.flatnonzero(s[0])
        start, lens = indptr[idx], indptr[idx + 1] - indptr[idx]
        pos = np.repeat(start - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
        q = np.bincount(tgt[pos], weights=w[pos], minlength=N2).astype(np.int64)[None]
        events += pos.size
    return out, events


# --- peers users compare with (when installed) ---------------------------------

def torch_b1(net, x):
    """Plain torch, as a torch user writes B1: float32 matmuls and a float32
    LIF with the same decays. Not the chip's integer arithmetic, so its
    spikes are not compared; it is here for speed."""
    import torch
    steps, batch, _ = x.shape
    w1 = torch.from_numpy(net["w1"].astype(np.float32))
    w2 = torch.from_numpy(net["w2"].astype(np.float32))
    xt = torch.from_numpy(x)
    a_u, a_v = 1 - DU / 4096, 1 - DV / 4096
    u1 = torch.zeros(batch, 512)
    v1 = torch.zeros(batch, 512)
    u2 = torch.zeros(batch, 10)
    v2 = torch.zeros(batch, 10)
    q2 = torch.zeros(batch, 10)
    out = torch.zeros(steps, batch, 10, dtype=torch.bool)
    with torch.no_grad():
        for t in range(steps):
            u1 = a_u * u1 + xt[t].float() @ w1
            v1 = a_v * v1 + u1
            s1 = v1 > net["vth1"]
            v1 = v1.masked_fill(s1, 0)
            u2 = a_u * u2 + q2
            v2 = a_v * v2 + u2
            out[t] = v2 > net["vth2"]
            v2 = v2.masked_fill(out[t], 0)
            q2 = s1.float() @ w2
    return out.numpy(), None


def snntorch_b1(net, x):
    """snnTorch's CuBa neuron (Synaptic) on B1, float32, reset to zero. Not
    the chip's arithmetic either; spikes not compared."""
    import snntorch
    import torch
    steps, batch, _ = x.shape
    fc1 = torch.nn.Linear(784, 512, bias=False)
    fc2 = torch.nn.Linear(512, 10, bias=False)
    with torch.no_grad():
        fc1.weight.copy_(torch.from_numpy(net["w1"].T.astype(np.float32)))
        fc2.weight.copy_(torch.from_numpy(net["w2"].T.astype(np.float32)))
    lif1 = snntorch.Synaptic(alpha=1 - DU / 4096, beta=1 - DV / 4096,
                             threshold=float(net["vth1"]), reset_mechanism="zero")
    lif2 = snntorch.Synaptic(alpha=1 - DU / 4096, beta=1 - DV / 4096,
                             threshold=float(net["vth2"]), reset_mechanism="zero")
    xt = torch.from_numpy(x)
    syn1, mem1 = lif1.init_synaptic()
    syn2, mem2 = lif2.init_synaptic()
    out = torch.zeros(steps, batch, 10, dtype=torch.bool)
    with torch.no_grad():
        for t in range(steps):
            s1, syn1, mem1 = lif1(fc1(xt[t].float()), syn1, mem1)
            s2, syn2, mem2 = lif2(fc2(s1), syn2, mem2)
            out[t] = s2 > 0
    return out.numpy(), None


def installed(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


# --- measurement ------------------------------------------------------------------

def cpu_time(fn, *args):
    """(result, seconds of this process's CPU time). With one thread, CPU time
    is the computation's time, unlike wall time on a shared, loaded machine."""
    t0 = time.process_time()
    result = fn(*args)
    return result, time.process_time() - t0


def race(contenders, repeats):
    """Run every contender ``repeats`` times, interleaved; best time of each.

    ``contenders``: ``{name: (fn, check)}``; ``fn()`` returns ``(outputs,
    events)``; ``check(outputs)`` raises if they differ from the reference.
    """
    best = {name: float("inf") for name in contenders}
    for _ in range(repeats):
        for name, (fn, check) in contenders.items():
            (out, _), t = cpu_time(fn)
            if check is not None:
                check(out)
            best[name] = min(best[name], t)
    return best


def print_rows(title, events, best, baseline):
    print(f"\n{title}: {events:,} synaptic events per run; ratio = best time of "
          f"{baseline!r} / best time of the row (> 1: the row is faster)")
    for name, t in best.items():
        print(f"  {name:<34} {t * 1e3:>9.1f} ms {events / t:>11.3g} ev/s "
              f"{best[baseline] / t:>8.2f}x")


def b1_rows(steps, batch, repeats):
    import functools
    image, net = build_b1()
    x = np.random.default_rng(1).random((steps, batch, 784)) < 0.05
    ref, events = hand_b1(net, x)

    def same(out):
        np.testing.assert_array_equal(out, ref)

    def emulator(backend):
        emu = Emulator(image, batch=batch, **({"backend": backend} if backend else {}))

        def run():
            emu.reset()
            r = emu.run(x)
            assert int(r.synaptic_events.sum()) == events
            return r.outputs, None
        return run

    rows = {"emulator (numpy)": (emulator(None), same),
            "numpy f32-BLAS kernel (exact)": (functools.partial(hand_b1, net, x), same)}
    if installed("torch"):
        rows["emulator (torch backend, CPU)"] = (emulator("torch"), same)
        rows["plain torch (float32 LIF)"] = (functools.partial(torch_b1, net, x), None)
    if installed("snntorch"):
        rows["snnTorch Synaptic (float32)"] = (functools.partial(snntorch_b1, net, x), None)
    best = race(rows, repeats)
    print_rows(f"B1 784-512-10, batch {batch}, {steps} steps", events, best,
               "numpy f32-BLAS kernel (exact)")
    return best


def b2_rows(steps, repeats):
    import functools
    image, net = build_b2()
    ref, events = hand_b2(net, steps)

    def same(out):
        np.testing.assert_array_equal(out, ref)

    def emulator(backend):
        emu = Emulator(image, **({"backend": backend} if backend else {}))

        def run():
            emu.reset()
            r = emu.run(None, steps)
            assert int(r.synaptic_events.sum()) == events
            return r.outputs, None
        return run

    rows = {"emulator (numpy)": (emulator(None), same),
            "numpy CSR kernel (exact)": (functools.partial(hand_b2, net, steps), same)}
    if installed("torch"):
        rows["emulator (torch backend, CPU)"] = (emulator("torch"), same)
    best = race(rows, repeats)
    print_rows(f"B2 10k recurrent, batch 1, {steps} steps", events, best,
               "numpy CSR kernel (exact)")


# --- the scaling sweep: one subprocess per size -------------------------------------

SWEEP = (1_000, 10_000, 25_000, 50_000, 100_000)


def sweep_child(n, steps, fan_in=200):
    """Build, set up and run the recurrent net of ``n`` neurons; print one JSON
    line. Run in a fresh process, so ru_maxrss is this size's peak."""
    import json
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import recurrent_net

    def status(key):
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec() from the
        # parent, VmHWM belongs to this process's memory alone.
        with open("/proc/self/status") as f:
            return int(f.read().split(key + ":")[1].split()[0]) * 1024

    base = status("VmRSS")
    image, t_build = cpu_time(recurrent_net.build, n, fan_in)
    peak_build = status("VmHWM")
    emu, t_setup = cpu_time(Emulator, image)
    peak = status("VmHWM")
    try:        # give the allocator's free pages back: steady = memory in use
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    steady = status("VmRSS")
    own = image.addresses.nbytes + image.words.nbytes
    tables = sum(p.nbytes for _, p in emu._blocks)
    emu.run(None, 10)                                  # warm the tables
    best = float("inf")
    for _ in range(3):
        t0, w0 = time.process_time(), time.perf_counter()
        r = emu.run(None, steps)
        t, wall = time.process_time() - t0, time.perf_counter() - w0
        best = min(best, t)
    events = int(r.synaptic_events.sum())
    synapses = n * fan_in
    print(json.dumps(dict(
        n=n, synapses=synapses, geometry=str(image.geometry), words=int(image.words.size),
        build_s=t_build, setup_s=t_setup, step_ms=best / steps * 1e3, wall_step_ms=wall /
        steps * 1e3, ns_per_event=best / events * 1e9, spikes_per_step=int(
            r.neuron_spikes.sum()) / steps, peak_build_b=(peak_build - base) / synapses,
        peak_b=(peak - base) / synapses, steady_b=(steady - base) / synapses,
        image_b=own / synapses, tables_b=tables / synapses)))


def sweep(sizes, steps, malloc_default=False):
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ)
    if malloc_default:
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
    else:
        # A fixed mmap threshold: freed arrays go back to the system at once,
        # so the peak RSS is the memory the run needs, not glibc's heap
        # fragmentation (which adds ~30 bytes per synapse at 100k neurons).
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    print(f"\nscaling sweep: random recurrent nets, fan-in 200, {steps} steps, batch 1; one "
          f"process per size (peak = max RSS - RSS at start, per synapse; glibc "
          f"{'defaults' if malloc_default else 'MALLOC_MMAP_THRESHOLD_=131072'})")
    print(f"{'neurons':>8} {'synapses':>11} {'ms/step':>8} {'ns/event':>9} {'vs 10k':>7} "
          f"{'build s':>8} {'setup s':>8} {'build pk':>8} {'peak B/syn':>10} {'steady':>7} "
          f"{'image':>6} {'tables':>7}")
    ref = None
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--sweep-child", str(n), "--steps",
                              str(steps)], capture_output=True, text=True, env=env)
        if out.returncode:
            print(f"{n:>8} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        d = json.loads(out.stdout.strip().splitlines()[-1])
        if n == 10_000:
            ref = d["ns_per_event"]
        vs = f"{d['ns_per_event'] / ref:.2f}x" if ref else "-"
        print(f"{n:>8} {d['synapses']:>11,} {d['step_ms']:>8.2f} {d['ns_per_event']:>9.2f} "
              f"{vs:>7} {d['build_s']:>8.1f} {d['setup_s']:>8.1f} {d['peak_build_b']:>8.0f} "
              f"{d['peak_b']:>10.0f} {d['steady_b']:>7.0f} {d['image_b']:>6.1f} "
              f"{d['tables_b']:>7.1f}")
    print("(times: CPU seconds of one thread; 'build pk': the peak of the build alone, 'peak': "
          "of build + setup; 'steady': RSS after setup and malloc_trim, incl. the image; "
          "'image', 'tables': the image's and the propagation tables' own bytes per synapse)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs per row (best)")
    ap.add_argument("--quick", action="store_true",
                    help="100 steps, batch 8, one repeat, sweep to 10k (smoke run)")
    ap.add_argument("--sweep", default=",".join(map(str, SWEEP)),
                    help="neuron counts of the scaling sweep ('' to skip)")
    ap.add_argument("--sweep-steps", type=int, default=100)
    ap.add_argument("--no-peers", action="store_true", help="only the scaling sweep")
    ap.add_argument("--malloc-default", action="store_true",
                    help="sweep with glibc's default allocator settings")
    ap.add_argument("--sweep-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    if installed("torch"):
        import torch
        torch.set_num_threads(1)
    if args.sweep_child:
        sweep_child(args.sweep_child, args.sweep_steps)
        return
    steps = 100 if args.quick else args.steps
    repeats = 1 if args.quick else args.repeats
    print("one thread (threadpoolctl, torch.set_num_threads); numpy", np.__version__,
          *(["torch", __import__("torch").__version__] if installed("torch") else []),
          *(["snntorch", __import__("snntorch").__version__] if installed("snntorch") else []))
    if not args.no_peers:
        b1_rows(steps, 1, repeats)
        b1_rows(steps, 8 if args.quick else 64, repeats)
        b2_rows(steps, repeats)
    sizes = [int(v) for v in args.sweep.split(",") if v]
    if args.quick:
        sizes = [n for n in sizes if n <= 10_000]
    if sizes:
        sweep(sizes, 20 if args.quick else args.sweep_steps, args.malloc_default)


if __name__ == "__main__":
    main()
