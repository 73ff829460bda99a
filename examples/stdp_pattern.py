"""STDP picks out a repeated spike pattern hidden in noise, on the emulated chip.

One LIF neuron listens to 200 inputs, each through a plastic, excitatory
synapse (8-bit, ``w_mant`` in [0, 127]) with the pair-based STDP rule

    dw = 2^-3*x1*y0 - 7*2^-6*y1*x0

compiled to the learning engine's microcode: potentiate by the pre trace x1
(tau 5 steps) when the neuron spikes, depress by the post trace y1 (tau 10
steps) when an input spikes, weights rounded stochastically, one epoch per
step. Depression wins for inputs whose spikes are unrelated to the neuron's.

Every input fires at random (3 % per step). Half of them also replay a fixed
16-step pattern -- a frozen sample of their noise at 4.5 % per step -- that
reappears every 10..40 steps at random, buried in the noise of the other
half. At the start all weights are equal and the neuron answers part of the
presentations (the pattern is a mild burst). STDP first depresses the
noise-only inputs, then concentrates on the pattern inputs that fire
earliest in the pattern: they go to the maximum weight, the later ones to 0
(Masquelier, Guyonneau & Thorpe 2008, in miniature). The neuron ends up
answering (almost) every presentation, a few steps after its onset, and
staying silent otherwise.

``python examples/stdp_pattern.py`` (about 10 s) prints a learning curve
(hit rate, false alarms per 1000 steps, latency of the answer, mean weight
of pattern and noise-only inputs per block) and saves ``stdp_pattern.png``
(weight evolution, final weights ordered by first spike in the pattern, the
learning curve). ``--batch B`` runs B independent chips side by side
(different noise and presentation times, same pattern; each batch row has
its own weights) and averages the curve over them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator

RULE = "dw = 2^-3*x1*y0 - 7*2^-6*y1*x0"


@dataclass
class Task:
    """The input statistics."""

    afferents: int = 200
    pattern_len: int = 16        # steps of the pattern window
    noise: float = 0.03          # spike probability per input per step
    pattern_rate: float = 0.045  # the same, for pattern inputs inside the pattern
    gap: tuple = (10, 40)        # steps between pattern presentations
    w0: int = 48                 # initial weight of every synapse
    vth_mant: int = 6436         # threshold = vth_mant << 6
    du: int = 1024               # current decay (4096ths per step)
    dv: int = 410                # voltage decay
    rule: str = RULE
    x_impulse: int = 64          # pre trace x1: impulse
    y_impulse: int = 64          # post trace y1: impulse
    x_decay: int = 742           # x1 decay: tau = 5 steps
    y_decay: int = 390           # y1 decay: tau = 10 steps (depression wins on noise)


def build_chip(task: Task):
    n = task.afferents
    g = Geometry(n_neurons=4, n_axons=n, n_synapses=n, n_fanout=4, n_groups=2)
    b = ChipBuilder(g)
    c = b.core(0, 0)
    c.profile(0, du=task.du, dv=task.dv, vth_mant=task.vth_mant, refractory=5)
    c.neurons(0, profile=0)
    c.group(0, w_shift=5, rule=task.rule, w_bits=8, sign="excitatory")
    c.synapses(axon=np.arange(n), target=0, w_mant=task.w0, group=0)
    c.learning(t_epoch=1, x1=(task.x_impulse, task.x_decay), y1=(task.y_impulse, task.y_decay),
               stochastic=("w",))
    c.to_host(0, channel=0)
    b.input(np.arange(n), 0, 0, np.arange(n))
    return b.build()


def make_inputs(task: Task, steps: int, batch: int, seed: int):
    """Noise plus pattern presentations; returns ``(spikes [steps, batch, n],
    onsets [batch] lists, pattern membership [n] bool, the pattern [len, n])``.

    The pattern is a frozen sample of the same noise on half of the inputs:
    during a presentation those inputs replay it, the others stay random, so
    no input fires more often during the pattern than outside it."""
    rng = np.random.default_rng(seed)
    n = task.afferents
    member = np.zeros(n, bool)
    member[rng.choice(n, n // 2, replace=False)] = True
    pattern = (rng.random((task.pattern_len, n)) < task.pattern_rate) & member
    x = rng.random((steps, batch, n)) < task.noise
    onsets = []
    for row in range(batch):
        t, row_onsets = int(rng.integers(*task.gap)), []
        while t + task.pattern_len < steps:
            window = x[t:t + task.pattern_len, row]
            window[:, member] = pattern[:, member]
            row_onsets.append(t)
            t += task.pattern_len + int(rng.integers(*task.gap))
        onsets.append(np.array(row_onsets))
    return x, onsets, member, pattern


def score(spikes, onsets, task: Task, start: int, stop: int):
    """Hit rate (presentations answered by a spike within the window + 5
    steps), false alarms (spikes elsewhere, per 1000 steps) and the mean
    latency of the first answering spike, in [start, stop)."""
    inside = np.zeros(stop - start, bool)
    sel = onsets[(onsets >= start) & (onsets + task.pattern_len + 5 < stop)]
    latency = []
    for t in sel:
        lo, hi = t - start, t - start + task.pattern_len + 5
        inside[lo:hi] = True
        if spikes[lo:hi].any():
            latency.append(int(np.argmax(spikes[lo:hi])))
    false = int((spikes & ~inside).sum())
    return (len(latency) / max(sel.size, 1), 1000 * false / max((~inside).sum(), 1),
            np.mean(latency) if latency else np.nan)


def simulate(task: Task, steps: int, batch: int = 1, seed: int = 0, chunk: int = 250):
    image = build_chip(task)
    emu = Emulator(image, batch=batch)
    x, onsets, member, pattern = make_inputs(task, steps, batch, seed)
    spikes = np.zeros((steps, batch), bool)
    times, weights = [0], [emu.read_state()["w_mant"][:, 0, :task.afferents].copy()]
    for start in range(0, steps, chunk):
        r = emu.run(x[start:start + chunk])
        spikes[start:start + chunk] = r.outputs[:, :, 0]
        times.append(min(start + chunk, steps))
        weights.append(emu.read_state()["w_mant"][:, 0, :task.afferents].copy())
    return dict(image=image, spikes=spikes, onsets=onsets, member=member, pattern=pattern,
                times=np.array(times), weights=np.stack(weights))   # [T, batch, n]


def learning_curve(res, task: Task, blocks: int):
    steps = res["spikes"].shape[0]
    edges = np.linspace(0, steps, blocks + 1).astype(int)
    member = res["member"]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        hit, fa, lat = np.nanmean([score(res["spikes"][lo:hi, b], res["onsets"][b], task, lo,
                                         hi) for b in range(res["spikes"].shape[1])], axis=0)
        k = int(np.searchsorted(res["times"], hi))
        w = res["weights"][min(k, len(res["times"]) - 1)]
        rows.append((lo, hi, hit, fa, lat, w[:, member].mean(), w[:, ~member].mean()))
    return rows


def plot(res, rows, task: Task, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    member = res["member"]
    w = res["weights"][:, 0]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    ax[0].plot(res["times"], w[:, ~member], color="0.7", lw=0.5)
    ax[0].plot(res["times"], w[:, member], color="tab:blue", lw=0.5)
    ax[0].plot(res["times"], w[:, member].mean(1), color="navy", lw=2, label="pattern inputs")
    ax[0].plot(res["times"], w[:, ~member].mean(1), color="k", lw=2, label="noise-only inputs")
    ax[0].set(xlabel="step", ylabel="w_mant", title="weight evolution (batch row 0)")
    # outside the axes: the weight traces fill the whole panel
    ax[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    first = np.where(res["pattern"].any(0), res["pattern"].argmax(0), task.pattern_len)
    order = np.lexsort((first, ~member))
    ax[1].bar(np.arange(task.afferents), w[-1][order],
              color=np.where(member[order], "tab:blue", "0.6"))
    ax[1].set(xlabel="input (pattern inputs by first spike in the pattern, then noise-only)",
              ylabel="final w_mant",
              title="final weights")
    mid = [(r[0] + r[1]) / 2 for r in rows]
    ax[2].plot(mid, [r[2] for r in rows], "o-", color="tab:green", label="hit rate")
    ax[2].set(xlabel="step", ylabel="hit rate", ylim=(-0.05, 1.05), title="learning curve")
    twin = ax[2].twinx()
    twin.plot(mid, [r[3] for r in rows], "s--", color="tab:red", label="false alarms")
    twin.set_ylabel("false alarms per 1000 steps")
    lines = ax[2].get_lines() + twin.get_lines()
    ax[2].legend(lines, [ln.get_label() for ln in lines], loc="upper center",
                 bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blocks", type=int, default=15)
    p.add_argument("--png", default="stdp_pattern.png")
    args = p.parse_args(argv)
    task = Task()
    res = simulate(task, args.steps, args.batch, args.seed)
    rows = learning_curve(res, task, args.blocks)
    print(f"rule: {RULE}   ({task.afferents} inputs, {task.afferents // 2} in the pattern, "
          f"noise {task.noise}/step, batch {args.batch})")
    print(f"{'steps':>13}  {'hit rate':>8}  {'false/1000':>10}  {'latency':>7}  "
          f"{'w pattern':>9}  {'w noise':>7}")
    for lo, hi, hit, fa, lat, wp, wn in rows:
        print(f"{lo:>6}-{hi:<6}  {hit:8.2f}  {fa:10.1f}  {lat:7.1f}  {wp:9.1f}  {wn:7.1f}")
    plot(res, rows, task, args.png)
    print(f"saved {args.png}")
    return res, rows


if __name__ == "__main__":
    main()
