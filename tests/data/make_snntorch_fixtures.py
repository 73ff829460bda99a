"""Write the snnTorch convention fixtures of ``tests/test_snntorch_conventions.py``.

For every case a small snnTorch model with random weights is run on random
0/1 input spikes, and snnTorch's own recorded spikes are stored in
``tests/data/snntorch/<case>.npz`` next to the model as exported by snnTorch's
own NIR exporter (``<case>.nir``, ``snntorch.export_nir.export_to_nir``). The
torch-free test imports each ``.nir`` with neuromesh's front end and must
reproduce the ``.npz`` spikes.

Cases (all ``reset_delay=False`` unless noted; alpha, beta and threshold are
per-neuron tensors of one value, as the exporter takes the layer size from
their shape):

* ``leaky_subtract``, ``leaky_zero``: Linear (no bias) -> Leaky -> Linear ->
  Leaky, with subtract and zero reset.
* ``leaky_bias``: the same with ``nn.Linear(bias=True)`` (exported as NIR
  Affine; the importer makes the bias of a LIF its v bias).
* ``leaky_subtract_hot``: ``leaky_subtract`` with larger weights, so that
  snnTorch 1.0's re-subtracted reset (see ``FRAMEWORKS`` in
  ``compiler/nir_import.py``) actually flips spikes.
* ``synaptic_subtract``, ``synaptic_zero``: Synaptic (current-based) layers.
* ``rleaky_subtract``, ``rleaky_zero``: Linear -> RLeaky (all-to-all,
  ``linear_features=N``) -> Linear -> Leaky. RLeaky's recurrent
  ``nn.Linear`` always has a bias; it is exported as an Affine inside the
  recurrent cycle.
* ``rsynaptic_zero_delayed``: Linear -> RSynaptic -> Linear -> Synaptic,
  zero reset with snnTorch's default ``reset_delay=True``: RSynaptic's
  ``reset_delay=False`` branch is broken in snnTorch 1.0.0 (it reads the
  ``spk``/``mem`` forward arguments, which are None with ``init_hidden=True``:
  TypeError; without init_hidden it assigns the local ``mem`` and discards
  it, so the reset stays delayed). The recurrent bias is zeroed: an Affine
  bias into a CubaLIF current is rejected by the importer.
* ``conv``: Conv2d (with bias) -> Leaky -> AvgPool2d -> Flatten -> Linear ->
  Leaky (snnTorch's exporter handles Conv2d and AvgPool2d; it has no
  MaxPool2d and NIR has no max pooling).

Recorded per case: ``input`` ``[T, B, ...]``; per neuron layer ``<layer>``
(see ``layers``; its neuromesh population name in ``populations``):
``spikes_<layer>``, ``mem_<layer>`` for the last layer only (the
readout-like membrane after the step's reset), ``corner_<layer>``: how many
(step, sample, neuron) started a step with the potential still above the
threshold (with subtract reset and ``reset_delay=False`` that is where
snnTorch re-subtracts the reset, the only source of disagreement; with the
delayed reset it is every spike), and ``flips_<layer>``: how many spikes differ from the same
weights run in torch with the chip's convention (reset applied in the step
of the spike, once). The generator prints these counts.

Default-convention cases (``tests/data/snntorch_defaults/``, written with
``--defaults``): the models people train without touching snnTorch's
options -- ``nn.Linear`` with its default ``bias=True``, ``Leaky``,
``Synaptic``, ``RLeaky`` and ``RSynaptic`` with their default delayed
subtract reset (``reset_mechanism="subtract"``, ``reset_delay=True``), one
zero-reset ``Leaky`` (``leaky_zero_default``, still delayed) and a
convolution. They are built so that the chip can be *exact*, not only
close: weights and biases are multiples of 1/64, alpha = beta = 1/2, the
threshold 1 and 12 steps, so every value snnTorch computes in float32 is an
exact binary fraction that the chip holds exactly at the recorded
``chip_scale`` (2**18 chip units per unit, 2**20 for the convolution; a
decay is an exact halving for 12 steps). Recorded per layer: spikes and membrane (``mem_<layer>``).

Deterministic (the .npz files and the graphs; the HDF5 bytes hold creation
times): fixed seeds, CPU, one torch thread. Needs torch and snntorch
(the ``train`` extra); a few seconds::

    python tests/data/make_snntorch_fixtures.py
    python tests/data/make_snntorch_fixtures.py --defaults
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DT = 1e-4      # snnTorch's exporter assumes this timestep


def parse_args(argv=None):
    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        """Defaults in the option help, the module docstring as written."""

    p = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    p.add_argument("--out", type=Path, default=HERE / "snntorch", help="output directory")
    p.add_argument("--steps", type=int, default=None, help="time steps (40; 12 with --defaults)")
    p.add_argument("--batch", type=int, default=8, help="input samples")
    p.add_argument("--rate", type=float, default=None,
                   help="input spike probability per step (0.3; 0.4 with --defaults)")
    p.add_argument("--seed", type=int, default=0, help="base seed (case i uses seed + i)")
    p.add_argument("--only", nargs="*", default=None, help="write only these cases")
    p.add_argument("--defaults", action="store_true",
                   help="write the default-convention cases to snntorch_defaults/ "
                        "(12 steps, chip-exact grid) instead")
    args = p.parse_args(argv)
    if args.defaults and args.out == HERE / "snntorch":
        args.out = HERE / "snntorch_defaults"
    args.steps = args.steps or (12 if args.defaults else 40)
    args.rate = args.rate or (0.4 if args.defaults else 0.3)
    return args


# -- models -------------------------------------------------------------------------

def _neuron(kind, n, reset, *, alpha=0.6, beta=0.8, threshold=1.0, reset_delay=False):
    import snntorch as snn
    import torch

    def full(v):
        return torch.full(n if isinstance(n, tuple) else (n,), v)

    common = dict(threshold=full(threshold), init_hidden=True, reset_mechanism=reset,
                  reset_delay=reset_delay)
    size = n if isinstance(n, int) else None
    if kind == "leaky":
        return snn.Leaky(beta=full(beta), **common)
    if kind == "synaptic":
        return snn.Synaptic(alpha=full(alpha), beta=full(beta), **common)
    if kind == "rleaky":
        return snn.RLeaky(beta=full(beta), linear_features=size, **common)
    if kind == "rsynaptic":
        return snn.RSynaptic(alpha=full(alpha), beta=full(beta), linear_features=size, **common)
    raise ValueError(kind)


def _init(linear, mean, std, gen, bias=None):
    import torch

    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=gen) * std + mean)
        if linear.bias is not None:
            linear.bias.copy_(torch.rand(linear.bias.shape, generator=gen) * bias)


def build(case, gen):
    """``(model, input shape, reset, reset_delay)`` of a case, weights drawn from ``gen``."""
    import torch
    from torch import nn

    n_in, n_hid, n_out = 12, 16, 6
    kind1 = kind2 = "leaky"
    reset, reset_delay, bias, scale = "subtract", False, False, 1.0
    if case == "leaky_zero":
        reset = "zero"
    elif case == "leaky_bias":
        bias = True
    elif case == "leaky_subtract_hot":
        scale = 2.0
    elif case.startswith("synaptic_"):
        kind1 = kind2 = "synaptic"
        reset = case.split("_")[1]
    elif case.startswith("rleaky_"):
        kind1, reset = "rleaky", case.split("_")[1]
    elif case == "rsynaptic_zero_delayed":
        kind1, kind2, reset, reset_delay = "rsynaptic", "synaptic", "zero", True
    elif case == "conv":
        conv = nn.Conv2d(1, 2, 3, padding=1, bias=True)
        _init(conv, 0.1, 0.2, gen, bias=0.05)
        fc = nn.Linear(32, n_out, bias=False)
        _init(fc, 0.25, 0.25, gen)
        model = nn.Sequential(OrderedDict([
            ("conv", conv), ("lif1", _neuron("leaky", (2, 8, 8), reset)),
            ("pool", nn.AvgPool2d(2)), ("flat", nn.Flatten()), ("fc", fc),
            ("lif2", _neuron("leaky", n_out, reset))]))
        return model, (1, 8, 8), reset, reset_delay
    elif case != "leaky_subtract":
        raise ValueError(f"unknown case {case!r}")
    # Scales chosen so that neurons fire often but rarely end a step above the
    # threshold (potentials below twice the threshold before a subtract reset):
    # Synaptic integrates its current twice, so smaller weights for the same rates.
    k1, m2, s2 = (0.5, 0.04, 0.075) if kind1 in ("synaptic", "rsynaptic") else (0.6, 0.12, 0.1)
    fc1 = nn.Linear(n_in, n_hid, bias=bias)
    fc2 = nn.Linear(n_hid, n_out, bias=bias)
    _init(fc1, 0.1 * k1 * scale, 0.15 * k1 * scale, gen, bias=0.02)
    _init(fc2, m2 * scale, s2 * scale, gen, bias=0.02)
    lif1 = _neuron(kind1, n_hid, reset, reset_delay=reset_delay)
    if kind1 in ("rleaky", "rsynaptic"):
        _init(lif1.recurrent, 0.0, 0.1 * k1, gen, bias=0.02)
        if kind1 == "rsynaptic":
            with torch.no_grad():
                lif1.recurrent.bias.zero_()
    model = nn.Sequential(OrderedDict([
        ("fc1", fc1), ("lif1", lif1), ("fc2", fc2),
        ("lif2", _neuron(kind2, n_out, reset, reset_delay=reset_delay))]))
    return model, (n_in,), reset, reset_delay


CASES = ("leaky_subtract", "leaky_zero", "leaky_bias", "leaky_subtract_hot",
         "synaptic_subtract", "synaptic_zero", "rleaky_subtract", "rleaky_zero",
         "rsynaptic_zero_delayed", "conv")


# -- runs ---------------------------------------------------------------------------

def _is_neuron(m):
    import snntorch as snn

    return isinstance(m, (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic))


def run_snntorch(model, x):
    """snnTorch's own forward: per neuron layer spikes, membrane, corner count."""
    import torch

    for m in model:
        if _is_neuron(m):
            m.reset_mem()
    spikes = {n: [] for n, m in model.named_children() if _is_neuron(m)}
    mem = {n: [] for n in spikes}
    corner = dict.fromkeys(spikes, 0)
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = x[t]
            for name, m in model.named_children():
                if _is_neuron(m) and m.mem.shape == h.shape:
                    # mem is the potential after the previous step's reset
                    corner[name] += int((m.mem > m.threshold).sum())
                h = m(h)
                if _is_neuron(m):
                    spikes[name].append(h.clone())
                    mem[name].append(m.mem.clone())
    return ({n: torch.stack(s).numpy() for n, s in spikes.items()},
            {n: torch.stack(v).numpy() for n, v in mem.items()}, corner)


def run_chip_convention(model, x, reset, reset_delay):
    """The same weights with the chip's convention: ``u = alpha u + in``,
    ``v = beta v + u``, fire if ``v > threshold``, then reset in that step
    (subtract the threshold once, or zero); ``reset_delay`` (zero reset only)
    is one step of refractory period."""
    import snntorch as snn
    import torch

    state, spikes = {}, {}
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = x[t]
            for name, m in model.named_children():
                if not _is_neuron(m):
                    h = m(h)
                    continue
                u, v, s, held = state.get(name, (0.0, torch.zeros_like(h), torch.zeros_like(h),
                                                 torch.zeros_like(h, dtype=torch.bool)))
                drive = h + (m.recurrent(s) if hasattr(m, "recurrent") else 0.0)
                if isinstance(m, (snn.Synaptic, snn.RSynaptic)):
                    u = m.alpha.clamp(0, 1) * u + drive
                else:
                    u = drive
                v = m.beta.clamp(0, 1) * v + u
                s = (v > m.threshold) & ~held
                v = torch.where(held, torch.zeros_like(v), v)
                v = v - s * m.threshold if reset == "subtract" else torch.where(s, 0.0, v)
                held = s if reset_delay else torch.zeros_like(s)
                s = s.float()
                state[name] = (u, v, s, held)
                spikes.setdefault(name, []).append(s)
                h = s
    return {n: torch.stack(s).numpy() for n, s in spikes.items()}


def export(model, shape, path):
    """snnTorch's exporter (``ignore_dims=[0]`` drops the sample's batch dimension)."""
    import nir
    import torch
    from snntorch.export_nir import export_to_nir

    graph = export_to_nir(model, torch.zeros(1, *shape), ignore_dims=[0])
    # nirtorch collects the edges in a set: their order changes with Python's
    # string hash seed. Sorted, the graph's content is the same on every run
    # (the HDF5 file's bytes are not: it stores creation times).
    graph.edges = sorted(graph.edges)
    nir.write(str(path), graph, compression=None)    # unchunked: ~25 KB, not ~55
    return graph


def write_case(case, seed, args):
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model, shape, reset, reset_delay = build(case, gen)
    model.eval()
    x = (torch.rand((args.steps, args.batch, *shape), generator=gen) < args.rate).float()
    spikes, mem, corner = run_snntorch(model, x)
    chip = run_chip_convention(model, x, reset, reset_delay)
    layers = list(spikes)
    graph = export(model, shape, args.out / f"{case}.nir")
    pops = [f"{n}.lif" if f"{n}.lif" in graph.nodes else n for n in layers]
    arrays = dict(input=x.numpy().astype(np.uint8), layers=np.array(layers),
                  populations=np.array(pops), reset=np.array(reset),
                  reset_delay=np.array(reset_delay), seed=np.array(seed))
    last = layers[-1]
    arrays[f"mem_{last}"] = mem[last].astype(np.float32)
    report = []
    for n in layers:
        s = spikes[n].astype(bool)
        flips = int((s != chip[n].astype(bool)).sum())
        arrays[f"spikes_{n}"] = s.astype(np.uint8)
        arrays[f"corner_{n}"] = np.array(corner[n])
        arrays[f"flips_{n}"] = np.array(flips)
        report.append(f"{n}: {int(s.sum())} spikes of {s.size} ({s.mean():.1%}), "
                      f"corner {corner[n]}, flips {flips}, max mem {mem[n].max():.2f}")
    np.savez_compressed(args.out / f"{case}.npz", **arrays)
    print(f"{case} (seed {seed}, reset {reset}, reset_delay {reset_delay}): " + "; ".join(report))


# -- snnTorch's defaults, chip-exact ------------------------------------------------

#: The default-convention cases (``--defaults``).
DEFAULT_CASES = ("leaky_default", "leaky_zero_default", "synaptic_default", "rleaky_default",
                 "rsynaptic_default", "conv_default")
#: Chip units per unit at which the default cases are exact (see the docstring);
#: AvgPool2d's 1/4 puts the convolution case's second layer on a grid of 1/256,
#: which needs two more bits for 12 exact halvings.
CHIP_SCALE = 2.0 ** 18
CONV_CHIP_SCALE = 2.0 ** 20
GRID = 64


def _grid(shape, lo, hi, gen):
    """Multiples of 1/GRID in [lo, hi] (a fifth of them zero)."""
    import torch

    k = torch.randint(round(lo * GRID), round(hi * GRID) + 1, shape, generator=gen)
    keep = torch.rand(shape, generator=gen) < 0.8
    return (k * keep).float() / GRID


def _set_grid(layer, lo, hi, bias, gen):
    import torch

    with torch.no_grad():
        layer.weight.copy_(_grid(layer.weight.shape, lo, hi, gen))
        if layer.bias is not None:
            layer.bias.copy_(_grid(layer.bias.shape, -bias, bias, gen))


def _default_neuron(kind, n):
    """A layer with snnTorch's defaults, alpha = beta = 1/2, threshold 1."""
    import snntorch as snn
    import torch

    def half():
        return torch.full(n if isinstance(n, tuple) else (n,), 0.5)

    size = n if isinstance(n, int) else None
    reset = "zero" if kind == "leaky_zero" else "subtract"
    common = dict(threshold=torch.full(n if isinstance(n, tuple) else (n,), 1.0),
                  init_hidden=True, reset_mechanism=reset)
    if kind in ("leaky", "leaky_zero"):
        return snn.Leaky(beta=half(), **common)
    if kind == "synaptic":
        return snn.Synaptic(alpha=half(), beta=half(), **common)
    if kind == "rleaky":
        return snn.RLeaky(beta=half(), linear_features=size, **common)
    return snn.RSynaptic(alpha=half(), beta=half(), linear_features=size, **common)


def build_default(case, gen):
    """``(model, input shape)`` of a default-convention case."""
    from torch import nn

    n_in, n_hid, n_out = 12, 16, 6
    if case == "conv_default":
        conv = nn.Conv2d(1, 2, 3, padding=1)
        _set_grid(conv, -0.25, 0.5, 0.125, gen)
        fc = nn.Linear(32, n_out)
        _set_grid(fc, -0.5, 1.0, 0.125, gen)
        return nn.Sequential(OrderedDict([
            ("conv", conv), ("lif1", _default_neuron("leaky", (2, 8, 8))),
            ("pool", nn.AvgPool2d(2)), ("flat", nn.Flatten()), ("fc", fc),
            ("lif2", _default_neuron("leaky", n_out))])), (1, 8, 8)
    kind1 = case.removesuffix("_default")
    kind2 = {"rleaky": "leaky", "rsynaptic": "synaptic"}.get(kind1, kind1)
    fc1, fc2 = nn.Linear(n_in, n_hid), nn.Linear(n_hid, n_out)
    _set_grid(fc1, -0.25, 0.5, 0.125, gen)
    _set_grid(fc2, -0.25, 0.5, 0.125, gen)
    lif1 = _default_neuron(kind1, n_hid)
    if kind1 in ("rleaky", "rsynaptic"):
        _set_grid(lif1.recurrent, -0.25, 0.25, 0.125, gen)      # its bias too (default)
    return nn.Sequential(OrderedDict([("fc1", fc1), ("lif1", lif1), ("fc2", fc2),
                                      ("lif2", _default_neuron(kind2, n_out))])), (n_in,)


def write_default_case(case, seed, args):
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model, shape = build_default(case, gen)
    model.eval()
    x = (torch.rand((args.steps, args.batch, *shape), generator=gen) < args.rate).float()
    spikes, mem, _ = run_snntorch(model, x)
    layers = list(spikes)
    graph = export(model, shape, args.out / f"{case}.nir")
    pops = [f"{n}.lif" if f"{n}.lif" in graph.nodes else n for n in layers]
    first = next(m for m in model if _is_neuron(m))
    arrays = dict(input=x.numpy().astype(np.uint8), layers=np.array(layers),
                  populations=np.array(pops), reset=np.array(first.reset_mechanism),
                  reset_delay=np.array(bool(first.reset_delay)), seed=np.array(seed),
                  chip_scale=np.array(CONV_CHIP_SCALE if case.startswith("conv")
                                      else CHIP_SCALE))
    report = []
    for n in layers:
        s = spikes[n].astype(bool)
        arrays[f"spikes_{n}"] = s.astype(np.uint8)
        arrays[f"mem_{n}"] = mem[n].astype(np.float32)
        report.append(f"{n}: {int(s.sum())} spikes of {s.size} ({s.mean():.1%}), "
                      f"|mem| <= {np.abs(mem[n]).max():.3f}")
    np.savez_compressed(args.out / f"{case}.npz", **arrays)
    print(f"{case} (seed {seed}): " + "; ".join(report))


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    cases, write = (DEFAULT_CASES, write_default_case) if args.defaults else (CASES, write_case)
    for i, case in enumerate(cases):
        if args.only is None or case in args.only:
            write(case, args.seed + i, args)


if __name__ == "__main__":
    main()
