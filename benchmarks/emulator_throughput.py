"""Emulator throughput against a hand-written numpy kernel of the same network.

B1: 784 -> 512 -> 10 CuBa LIF feed-forward, 5 % Poisson input, batch 1 and 64,
    on a 3x3 mesh (8 cores of 64 hidden neurons, 1 output core).
B2: 10,000 neurons, recurrent, connection probability 0.02 (~2 M synapses),
    on 40 cores of 256 neurons, driven by bias.

Both kernels run in this process on the same input; their spikes are checked
to be identical before any number is printed, so the comparison is between
two implementations of one computation. Run::

    python benchmarks/emulator_throughput.py [--steps 1000] [--quick]
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


# --- measurement ------------------------------------------------------------------

def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


def report(name, steps, batch, neurons, t_emu, ev_emu, t_hand, ev_hand):
    print(f"{name:<14} {batch:>5} {steps / t_emu:>10.0f} {neurons * batch * steps / t_emu:>12.3g} "
          f"{ev_emu / t_emu:>12.3g} {ev_hand / t_hand:>12.3g} {t_hand / t_emu:>8.2f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="100 steps, smaller batch (smoke run)")
    args = ap.parse_args(argv)
    steps = 100 if args.quick else args.steps
    print(f"{'network':<14} {'batch':>5} {'steps/s':>10} {'neuron upd/s':>12} "
          f"{'syn ev/s':>12} {'hand ev/s':>12} {'vs hand':>9}")
    image, net = build_b1()
    rng = np.random.default_rng(1)
    for batch in (1, 8 if args.quick else 64):
        x = rng.random((steps, batch, 784)) < 0.05
        emu = Emulator(image, batch=batch)
        r, t_emu = timed(emu.run, x)
        (out, ev_hand), t_hand = timed(hand_b1, net, x)
        np.testing.assert_array_equal(r.outputs, out)
        assert int(r.synaptic_events.sum()) == ev_hand
        report("B1 784-512-10", steps, batch, 522, t_emu, ev_hand, t_hand, ev_hand)
    image, net = build_b2()
    emu = Emulator(image)
    r, t_emu = timed(emu.run, None, steps)
    (out, ev_hand), t_hand = timed(hand_b2, net, steps)
    np.testing.assert_array_equal(r.outputs, out)
    assert int(r.synaptic_events.sum()) == ev_hand
    report("B2 10k recur.", steps, 1, N2, t_emu, ev_hand, t_hand, ev_hand)
    print(f"(B2: {int(r.neuron_spikes.sum()) / steps / N2:.1%} of neurons spike per step; "
          f"ratio > 1 means the emulator is faster than the hand kernel)")


if __name__ == "__main__":
    main()
