"""Train the spiking digits classifier that ``neuromesh demo`` ships, export it to NIR.

The network is 64 inputs -> ``--hidden`` current-based LIF neurons -> 10
current-based LIF neurons (snnTorch ``Synaptic``), with bias-free linear
layers, trained with surrogate gradients on the regular rate code of
:mod:`neuromesh.digits` (scikit-learn's digits set, fixed split).

Every choice is made so the exported graph means the same on the chip:

* ``reset_mechanism="subtract"`` and ``reset_delay=False``: the shipped
  model was trained so, before the chip had snnTorch's delayed reset; the
  import uses :func:`neuromesh.digits.model_options`. ``--reset-delay``
  trains with snnTorch's default instead, which the chip runs exactly
  (``--framework snntorch``).
* No bias (``--bias`` adds them): the chip runs a bias into a CubaLIF
  current with a bias neuron per core, which the shipped model does not need.
* One alpha, beta and threshold per layer, not learned: a chip population
  shares one parameter set. They are passed as per-neuron tensors of one
  value because snnTorch's exporter takes the layer size from their shape
  (scalars export a CubaLIF of size 1 that no longer type-checks).
* Weights clipped to ``[-clip, clip]`` after every update: the chip keeps
  8-bit mantissas with one power-of-two shift per layer, so a few large
  outliers would cost the other weights their resolution.
* A penalty (``--headroom``) on membrane potential left above the threshold
  after a spike's reset. snnTorch 1.0's ``reset_delay=False`` is not quite
  "subtract the threshold in the step of the spike": a neuron whose reset
  potential stays above threshold needs twice the threshold to fire again.
  The chip now does the same (``reset_timing`` RETEST), so the penalty is no
  longer needed for agreement; it stays because the shipped model was
  trained with it.

Reproducibility: on one machine and software set (torch 2.13.0+cpu,
snnTorch 1.0.0, nirtorch 2.6, ``--threads 2``) two runs give the same
weights bit for bit, and the shipped model is such a run (test accuracy
97.56 %, 10 min on 2 loaded cores). Another thread count or torch build may
reorder float sums and train a different model.

Outputs, in ``--out-dir`` (default ``digits-model/``, a new folder; the
shipped files are never touched unless ``--replace-shipped``): the NIR graph
``digits_cuba.nir``, written by snnTorch's own exporter, and a small fixture
for the torch-free tests, ``digits_snntorch_reference.npz``: input, hidden and
output spikes of the snnTorch model for the first ``--fixture-samples`` test
images, and its accuracies. Then the graph is imported with neuromesh's NIR
front end and run in the float reference to report its accuracy and how many
spikes agree with snnTorch. ``--replace-shipped`` (for maintainers) writes
``neuromesh/data/digits_cuba.nir`` and ``tests/data/digits_snntorch_reference.npz``.

Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``,
CPU only, a fixed thread count (a different count may reorder float sums).
One to two minutes on 2 idle cores. Needs the ``train`` extra (torch, snntorch)::

    python examples/train_digits.py
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from neuromesh.digits import N_CLASSES, N_INPUTS, decode, encode, load_split

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None):
    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        """Defaults in the option help, the module docstring as written."""

    p = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    p.add_argument("--steps", type=int, default=16,
                   help="time steps per image (16: spike count = pixel value)")
    p.add_argument("--hidden", type=int, default=128, help="hidden neurons")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="synaptic current retention per step (chip decay du = 4096 (1 - alpha))")
    p.add_argument("--beta", type=float, default=0.75,
                   help="membrane retention per step (chip decay dv = 4096 (1 - beta))")
    p.add_argument("--epochs", type=int, default=40, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=64, help="images per Adam step")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=1.0,
                   help="weights are clipped to [-clip, clip] after each update")
    p.add_argument("--slope", type=float, default=10.0, help="fast-sigmoid surrogate slope")
    p.add_argument("--headroom", type=float, default=50.0,
                   help="weight of the penalty on membrane left above threshold after a reset")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the weight initialisation and the batch order")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--reset-delay", action="store_true",
                   help="snnTorch's default delayed reset (the shipped model has none)")
    p.add_argument("--bias", action="store_true", help="Linear layers with biases")
    p.add_argument("--out-dir", type=Path, default=Path("digits-model"),
                   help="folder for the NIR file and the fixture")
    p.add_argument("--replace-shipped", action="store_true",
                   help="maintainers: overwrite the shipped model and the tests' fixture")
    p.add_argument("--no-fixture", action="store_true", help="do not write the fixture")
    p.add_argument("--fixture-samples", type=int, default=32,
                   help="test images in the fixture (the first ones of the split)")
    args = p.parse_args(argv)
    if args.replace_shipped:
        args.output = ROOT / "neuromesh/data/digits_cuba.nir"
        args.fixture = ROOT / "tests/data/digits_snntorch_reference.npz"
    else:
        args.output = args.out_dir / "digits_cuba.nir"
        args.fixture = args.out_dir / "digits_snntorch_reference.npz"
    if args.no_fixture:
        args.fixture = None
    return args


def build_model(args):
    """The snnTorch network as a named Sequential (the names become NIR node names)."""
    from collections import OrderedDict

    import snntorch as snn
    import torch
    from snntorch import surrogate

    grad = surrogate.fast_sigmoid(slope=args.slope)

    def lif(n, output=False):
        # init_hidden keeps the state in the module, which the exporter needs;
        # the tensors of one value are explained in the module docstring.
        return snn.Synaptic(alpha=torch.full((n,), args.alpha),
                            beta=torch.full((n,), args.beta),
                            threshold=torch.full((n,), 1.0),
                            spike_grad=grad, init_hidden=True, output=output,
                            learn_alpha=False, learn_beta=False, learn_threshold=False,
                            reset_mechanism="subtract", reset_delay=args.reset_delay)

    return torch.nn.Sequential(OrderedDict([
        ("fc1", torch.nn.Linear(N_INPUTS, args.hidden, bias=args.bias)),
        ("lif1", lif(args.hidden)),
        ("fc2", torch.nn.Linear(args.hidden, N_CLASSES, bias=args.bias)),
        ("lif2", lif(N_CLASSES, output=True)),
    ]))


def run(model, x):
    """Run the model on input spikes ``x [T, batch, 64]``.

    Returns hidden and output spikes ``[T, batch, n]`` and the headroom
    penalty: the excess of each layer's membrane over its threshold after
    the step's reset, averaged over steps, images and neurons, summed over
    the layers (see ``--headroom``).
    """
    import torch

    model.lif1.reset_mem()
    model.lif2.reset_mem()
    hidden, out, excess = [], [], 0.0
    for t in range(x.shape[0]):
        h = model.lif1(model.fc1(x[t]))
        o, _, _ = model.lif2(model.fc2(h))
        hidden.append(h)
        out.append(o)
        for lif in (model.lif1, model.lif2):
            excess = excess + torch.relu(lif.mem - lif.threshold).mean()
    return torch.stack(hidden), torch.stack(out), excess / x.shape[0]


def accuracy(model, x, y, batch=512):
    """Fraction of images whose output spike count is largest for the label."""
    import torch

    hits = 0
    with torch.no_grad():
        for i in range(0, x.shape[1], batch):
            _, out, _ = run(model, x[:, i:i + batch])
            hits += int((decode(out.numpy()) == y[i:i + batch]).sum())
    return hits / x.shape[1]


def train(args, x_train, y_train):
    """Train the model with Adam on the cross-entropy of the output spike counts."""
    import torch

    model = build_model(args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    targets = torch.as_tensor(y_train)
    n = x_train.shape[1]
    with torch.no_grad():                 # start inside the clipping range
        for lin in (model.fc1, model.fc2):
            lin.weight.clamp_(-args.clip, args.clip)
    for epoch in range(args.epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, args.batch_size):
            idx = order[i:i + args.batch_size]
            _, out, excess = run(model, x_train[:, idx])
            # Spike counts (0..T) are the logits: the class read out is the argmax.
            loss = torch.nn.functional.cross_entropy(out.sum(0), targets[idx])
            loss = loss + args.headroom * excess
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for lin in (model.fc1, model.fc2):
                    lin.weight.clamp_(-args.clip, args.clip)
            total += loss.detach().item() * idx.numel()
        print(f"epoch {epoch + 1:3d}/{args.epochs}: loss {total / n:.4f}", flush=True)
    return model


def export(model, path):
    """Write the model as a NIR graph with snnTorch's exporter; return the graph."""
    import nir
    import torch
    from snntorch.export_nir import export_to_nir

    # The sample drives one forward pass to trace the graph; ignore_dims=[0]
    # drops its batch dimension from the recorded input and output types.
    graph = export_to_nir(model, torch.zeros(1, N_INPUTS), ignore_dims=[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), graph)
    return graph


def check_import(path, x_test, y_test, hidden_ref, out_ref, reset_delay=False):
    """Import the NIR file with neuromesh's front end, run the float reference.

    The chip's timing: the first layer sees a host input in the same step,
    every later layer one step later, so the run is ``T + 1`` steps (the
    input, then one step of zeros), the hidden spikes of steps ``0..T-1``
    and the output spikes of steps ``1..T`` correspond to snnTorch's steps
    ``0..T-1``. Returns the reference's test accuracy and the number of
    differing hidden and output spikes.
    """
    from neuromesh.compiler.nir_import import FRAMEWORKS, from_nir
    from neuromesh.compiler.reference import simulate
    from neuromesh.digits import model_options

    net = from_nir(path, FRAMEWORKS["snntorch"] if reset_delay else model_options())
    (port,) = net.host_inputs()
    steps = x_test.shape[0]
    padded = np.concatenate([x_test, np.zeros_like(x_test[:1])])
    spikes = simulate(net, {port: padded}, steps + 1)
    (out_pop,) = net.outputs
    (hid_pop,) = (p for p in net.populations if p != out_pop)
    acc = float((decode(spikes[out_pop], start=1) == y_test).mean())
    d_hidden = int((spikes[hid_pop][:steps] != hidden_ref).sum())
    d_out = int((spikes[out_pop][1:] != out_ref).sum())
    return acc, d_hidden, d_out


def main(argv=None):
    args = parse_args(argv)
    import torch

    t0 = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)

    x_train, x_test, y_train, y_test = load_split()
    s_train = encode(x_train, args.steps)
    s_test = encode(x_test, args.steps)
    model = train(args, torch.as_tensor(s_train, dtype=torch.float32), y_train)
    t_test = torch.as_tensor(s_test, dtype=torch.float32)
    acc_train = accuracy(model, torch.as_tensor(s_train, dtype=torch.float32), y_train)
    acc_test = accuracy(model, t_test, y_test)
    print(f"snnTorch accuracy: train {acc_train:.4f}, test {acc_test:.4f}")
    w = [model.fc1.weight.detach().abs(), model.fc2.weight.detach().abs()]
    print(f"weights |w|: fc1 max {float(w[0].max()):.3f}, fc2 max {float(w[1].max()):.3f}")

    with torch.no_grad():
        hidden, out, _ = run(model, t_test)
    hidden, out = hidden.numpy().astype(bool), out.numpy().astype(bool)
    export(model, args.output)
    print(f"wrote {args.output}")

    if args.fixture is not None:
        k = args.fixture_samples
        args.fixture.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            args.fixture,
            input_spikes=s_test[:, :k].astype(np.uint8),
            hidden_spikes=hidden[:, :k].astype(np.uint8),
            output_spikes=out[:, :k].astype(np.uint8),
            labels=y_test[:k],
            steps=args.steps,
            snntorch_test_accuracy=acc_test,
            snntorch_train_accuracy=acc_train,
        )
        print(f"wrote {args.fixture} ({k} test images)")

    acc_ref, d_hidden, d_out = check_import(args.output, s_test, y_test, hidden, out,
                                            args.reset_delay)
    print(f"neuromesh float reference (from_nir + simulate): test accuracy {acc_ref:.4f}")
    print(f"spikes differing from snnTorch: hidden {d_hidden} of {hidden.size} "
          f"({int(hidden.sum())} spikes), output {d_out} of {out.size} ({int(out.sum())} spikes)")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
