"""Reward-modulated STDP with a host-given reward learns an associative task.

Four stimuli (each a burst, 30 % per step, on its own group of 10 of 40
inputs, over 0.5 % background noise) must be mapped to two actions: stimuli 0 and 1 to action
0, stimuli 2 and 3 to action 1. Each action is one LIF neuron on its own
core of a 1x2 mesh, and every input feeds both cores. The synapses learn by

    dt = 2^-1*x1*y0 - 2^-2*t*u0      (the tag: an eligibility trace of
                                      pre-before-post pairings, decaying)
    dw = 2^-7*t*r*u0                 (the weight follows tag x reward)

A trial presents a stimulus for 20 steps with the reward at 0; the action
is the neuron that spiked more (a tie is broken at random by the host). The
host then writes the reward register of the *chosen* core only -- +r if the
action was right, -r if it was wrong -- and runs 3 steps, during which
``dw = t*r`` turns the tags of the synapses that made the choice into weight
changes; then the reward goes back to 0 and a 10-step pause lets the tags
decay. Reward per core is what gives each action its own credit.

Every batch row is an independent learner with its own weights and tags
(the initial, random weights come from the image and are the same in every
row; stimulus order, input noise and tie-breaks differ), so ``--batch 16``
trains 16 learners at once; the learning curve is their mean accuracy per
block of trials, from chance (0.5) to 1. The weights from the right
stimuli go to the maximum; the others creep up slowly through background
spikes paired with rewarded choices, and are pushed back whenever they
cause a wrong choice.

``python examples/stdp_reward.py`` takes about 10 s, prints the curve and
saves ``stdp_reward.png`` (accuracy, and the mean weights of both action
neurons from the four stimulus groups, batch row 0).
"""

from __future__ import annotations

import argparse

import numpy as np

from neuromesh import ChipBuilder, Geometry
from neuromesh.emulator import Emulator

RULE = "dt = 2^-1*x1*y0 - 2^-2*t*u0; dw = 2^-7*t*r*u0"
N_IN, GROUP, STIMULI = 40, 10, 4
TARGET = np.array([0, 0, 1, 1])          # stimulus -> right action
PRESENT, REWARD_STEPS, PAUSE = 20, 3, 10
NOISE = 0.005                            # background spike probability per step


def build_chip(seed=0, vth_mant=700):
    rng = np.random.default_rng(seed)
    g = Geometry(rows=1, cols=2, n_neurons=2, n_axons=N_IN, n_synapses=N_IN, n_fanout=2,
                 n_groups=2)
    b = ChipBuilder(g)
    for x in range(2):
        c = b.core(x, 0)
        c.profile(0, du=2048, dv=1024, vth_mant=vth_mant, refractory=2)
        c.neurons(0, profile=0)
        c.group(0, w_shift=5, rule=RULE, w_bits=8, sign="excitatory")
        c.synapses(axon=np.arange(N_IN), target=0, w_mant=rng.integers(30, 51, N_IN), group=0)
        c.learning(t_epoch=1, x1=(40, 742), stochastic=("w", "t"))
        c.to_host(0, channel=x)
    channels = np.arange(N_IN)
    b.input(np.concatenate([channels, channels]), np.repeat([0, 1], N_IN), 0,
            np.concatenate([channels, channels]))
    return b.build()


def stimulus(rng, which, batch):
    """Spikes ``[PRESENT, batch, N_IN]``: 30 % per step on the stimulus'
    group, ``NOISE`` elsewhere."""
    p = np.full((batch, N_IN), NOISE)
    for row, s in enumerate(which):
        p[row, s * GROUP:(s + 1) * GROUP] = 0.3
    return rng.random((PRESENT, batch, N_IN)) < p[None]


def train(trials=400, batch=8, seed=0, reward=16):
    rng = np.random.default_rng(seed + 1)
    emu = Emulator(build_chip(seed), batch=batch)
    correct = np.zeros((trials, batch), bool)
    weights = []
    rows = np.arange(batch)
    for k in range(trials):
        which = rng.integers(0, STIMULI, batch)
        emu.set_reward(0)
        out = emu.run(stimulus(rng, which, batch)).outputs.sum(axis=0)      # [batch, 2]
        tie = out[:, 0] == out[:, 1]
        action = np.where(tie, rng.integers(0, 2, batch), out.argmax(axis=1))
        correct[k] = action == TARGET[which]
        r = np.zeros((batch, 2), np.int64)
        r[rows, action] = np.where(correct[k], reward, -reward)
        emu.set_reward(r)
        emu.run(steps=REWARD_STEPS)
        emu.set_reward(0)
        emu.run(steps=PAUSE)
        weights.append(emu.read_state()["w_mant"][0, :, :N_IN].copy())
    return correct, np.stack(weights)          # [trials, batch], [trials, 2 cores, N_IN]


def plot(correct, weights, block, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    acc = correct.reshape(-1, block, correct.shape[1]).mean(axis=(1, 2))
    ax[0].plot((np.arange(acc.size) + 0.5) * block, acc, "o-")
    ax[0].axhline(0.5, color="0.6", ls="--", lw=1)
    ax[0].set(xlabel="trial", ylabel="accuracy (mean over batch rows)", ylim=(0, 1.05),
              title="R-STDP learning curve")
    for core, style in ((0, "-"), (1, "--")):
        for s in range(STIMULI):
            ax[1].plot(weights[:, core, s * GROUP:(s + 1) * GROUP].mean(axis=1), style,
                       color=f"C{s}", label=f"action {core} <- stimulus {s}")
    ax[1].set(xlabel="trial", ylabel="mean w_mant", title="weights (batch row 0)")
    ax[1].legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=400)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--block", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", default="stdp_reward.png")
    args = p.parse_args(argv)
    correct, weights = train(args.trials, args.batch, args.seed)
    acc = correct.reshape(-1, args.block, args.batch).mean(axis=(1, 2))
    print(f"rule: {RULE}   ({STIMULI} stimuli -> 2 actions, batch {args.batch})")
    print(f"{'trials':>11}  accuracy")
    for i, a in enumerate(acc):
        print(f"{i * args.block:>4}-{(i + 1) * args.block:<6}  {a:8.2f}")
    plot(correct, weights, args.block, args.png)
    print(f"saved {args.png}")
    return correct, weights


if __name__ == "__main__":
    main()
