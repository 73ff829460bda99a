"""The Python network API: populations, projections, input and output ports.

A :class:`Network` describes a spiking network in float units with the
chip's timing: a host input spike at step ``t`` reaches its targets at step
``t + delay``, a neuron's spike at step ``t`` at step ``t + 1 + delay``
(docs/architecture.md §4). :func:`neuromesh.compiler.compile_network` maps it
onto a chip; :func:`neuromesh.compiler.reference.simulate` runs it in float
with the same discretisation, so the difference is the quantization alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from neuromesh.chip import ChipError

__all__ = ["NetworkError", "Input", "Population", "Projection", "Plasticity", "Network",
           "KINDS"]

#: Neuron models: "cuba" (current-based LIF: synaptic current decays with
#: tau_syn), "lif" (the current is the input of this step only) and "if"
#: (no membrane leak either).
KINDS = ("cuba", "lif", "if")


class NetworkError(ChipError):
    """A network description that is inconsistent or out of range."""


@dataclass(frozen=True)
class Input:
    """A host input port of ``size`` channels.

    ``always_on``: a constant source that spikes on every channel at every
    step (biases into the synaptic current go through it). It is not a host
    channel: the compiler puts a neuron that fires every step on each core
    that needs it, so every backend feeds it alike.
    """

    name: str
    size: int
    always_on: bool = False


@dataclass(frozen=True)
class Population:
    """A population of identical neurons (one parameter set).

    Parameters are float time constants in units of ``dt`` of the network
    (or seconds when ``dt`` is in seconds). ``alpha``/``beta`` override the
    per-step retentions of u and v that the time constants give, and
    ``du``/``dv`` the decays, with raw 12-bit chip values. ``bias`` may be
    one value or one per neuron.
    ``spiking=False`` makes a readout that integrates without ever firing
    (NIR's LI / CubaLI); its membrane potential is read by probing ``v``.

    The spike and reset conventions (docs/architecture.md §3.2):
    ``threshold_ge`` fires when ``v >= threshold`` (Sinabs) instead of ``v >
    threshold``; ``reset_delay`` applies a spike's reset (``reset``: zero or
    subtract) in the next step, snnTorch's default; ``v_floor`` clamps ``v``
    from below (Sinabs' ``min_v_mem``; ``None``: no floor). ``scale``: chip
    units per float unit, fixed by the user instead of chosen by the
    compiler. ``u0``/``v0``: the initial state (float, one value or one per
    neuron).
    """

    name: str
    size: int
    kind: str = "cuba"
    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    bias: object = 0.0
    refractory: int = 0
    reset: str = "zero"
    du: int | None = None
    dv: int | None = None
    alpha: float | None = None
    beta: float | None = None
    spiking: bool = True
    reset_delay: bool = False
    reset_stored: bool = False
    reset_retest: bool = False
    threshold_ge: bool = False
    v_floor: float | None = None
    scale: float | None = None
    u0: object = 0.0
    v0: object = 0.0

    def bias_array(self) -> np.ndarray:
        """The v bias, one float per neuron."""
        return np.broadcast_to(np.asarray(self.bias, dtype=np.float64), (self.size,)).copy()

    def initial_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(u0, v0)``, one float per neuron each."""
        return tuple(np.broadcast_to(np.asarray(x, dtype=np.float64), (self.size,)).copy()
                     for x in (self.u0, self.v0))

    def conventions(self) -> str:
        """The spike and reset conventions in words (for reports)."""
        parts = [f"{self.reset} reset"]
        if self.reset_delay:
            parts[0] += (", delayed a step (on the stored v)" if self.reset_stored
                         else ", delayed a step")
        elif self.reset_retest:
            parts[0] += " (re-tested as snnTorch 1.0)"
        parts.append("v >= threshold" if self.threshold_ge else "v > threshold")
        if self.v_floor is not None:
            parts.append(f"v floor {self.v_floor:g}")
        if self.refractory:
            parts.append(f"refractory {self.refractory}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Plasticity:
    """On-chip learning of a projection (docs/architecture.md §11).

    ``rule``: Lava-syntax rule, e.g. ``"dw = 2^-2*x1*y0 - 2^-2*y1*x0"`` (a
    tag rule ``dt = ...`` on another line or after ``;``). The learning
    engine works on the chip's weight mantissas: ``w_bits`` (1..8) bits in
    sign mode ``sign`` (``"mixed"``, ``"excitatory"``, ``"inhibitory"``), and
    ``w_max`` is the float weight the largest mantissa stands for (default:
    the initial weights' largest magnitude), which fixes the projection's
    ``w_shift``.

    The rest is per core of the target population, so every plastic
    projection into one population must agree on it: ``t_epoch`` (steps per
    learning epoch, 1..63), the traces ``x1, x2`` (per source) and ``y1, y2,
    y3`` (per target) as ``(impulse 0..127, tau in steps)`` -- ``tau`` becomes
    the 12-bit decay ``round(4096 (1 - exp(-1/tau)))``; ``math.inf`` never
    decays -- ``stochastic`` rounding (any of ``"trace"``, ``"w"``, ``"t"``)
    and the LFSR ``seed`` (default per core, see the builder).
    """

    rule: str
    w_max: float | None = None
    w_bits: int = 8
    sign: str = "mixed"
    t_epoch: int = 1
    x1: tuple = (0, math.inf)
    x2: tuple = (0, math.inf)
    y1: tuple = (0, math.inf)
    y2: tuple = (0, math.inf)
    y3: tuple = (0, math.inf)
    stochastic: tuple = ()
    seed: int | None = None

    def engine(self) -> dict:
        """The core-level settings, as :meth:`CoreBuilder.learning` arguments."""
        def trace(name):
            impulse, tau = getattr(self, name)
            if not tau > 0:
                raise NetworkError(f"plasticity: {name} tau = {tau} must be > 0")
            decay = 0 if math.isinf(tau) else round(4096 * (1 - math.exp(-1 / tau)))
            return int(impulse), min(int(decay), 4095)
        return dict(t_epoch=self.t_epoch, stochastic=tuple(self.stochastic), seed=self.seed,
                    **{t: trace(t) for t in ("x1", "x2", "y1", "y2", "y3")})


@dataclass(frozen=True)
class Projection:
    """Synapses from ``src`` (an input or a population) to population ``dst``,
    as parallel arrays: source index, target index, float weight, delay."""

    name: str
    src: str
    dst: str
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    delay: np.ndarray
    plastic: Plasticity | None = None


@dataclass
class Network:
    """A spiking network to compile.

    Parameters
    ----------
    dt:
        The timestep, in the unit of the time constants.
    method:
        How time constants become per-step retention: ``"euler"``
        (``1 - dt/tau``, snnTorch, Norse, Lava) or ``"exact"``
        (``exp(-dt/tau)``, Rockpool, Sinabs).
    """

    dt: float = 1.0
    method: str = "euler"
    inputs: dict = field(default_factory=dict)
    populations: dict = field(default_factory=dict)
    projections: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    readouts: list = field(default_factory=list)
    #: Steps by which each population runs behind the source model (NIR and
    #: the frameworks have no per-layer latency, the chip adds one step per
    #: hop); set by the NIR importer, 0 for populations not listed.
    latency: dict = field(default_factory=dict)
    #: What an importer could not carry over exactly, in words (shown by
    #: ``neuromesh compile``).
    notes: list = field(default_factory=list)
    #: What an importer found that makes part of the model do nothing (a
    #: projection whose every synapse carries 0), in words; ``neuromesh
    #: compile`` prints each on stderr.
    warnings: list = field(default_factory=list)

    def _new_name(self, name):
        if name in self.inputs or name in self.populations:
            raise NetworkError(f"the name {name!r} is used twice")

    def input(self, name: str, size: int, *, always_on: bool = False) -> Input:
        """Add a host input port of ``size`` channels (``always_on``: a
        constant source, see :class:`Input`)."""
        self._new_name(name)
        if size < 1:
            raise NetworkError(f"input {name!r}: size {size} < 1")
        self.inputs[name] = port = Input(name, int(size), bool(always_on))
        return port

    def host_inputs(self) -> dict:
        """The input ports fed by the host (not the always-on sources)."""
        return {k: v for k, v in self.inputs.items() if not v.always_on}

    def population(self, name: str, size: int, **params) -> Population:
        """Add a population; see :class:`Population` for the parameters."""
        self._new_name(name)
        pop = Population(name, int(size), **params)
        where = f"population {name!r}"
        if pop.size < 1:
            raise NetworkError(f"{where}: size {pop.size} < 1")
        if pop.kind not in KINDS:
            raise NetworkError(f"{where}: kind {pop.kind!r} is not one of {', '.join(KINDS)}")
        if pop.reset not in ("zero", "subtract"):
            raise NetworkError(f"{where}: reset {pop.reset!r} is not 'zero' or 'subtract'")
        if not 0 <= pop.refractory <= 255:
            raise NetworkError(f"{where}: refractory {pop.refractory} is outside [0, 255]")
        if not pop.threshold >= 0:
            raise NetworkError(f"{where}: threshold {pop.threshold} must be >= 0")
        for t in ("tau_mem", "tau_syn"):
            if not getattr(pop, t) > 0:
                raise NetworkError(f"{where}: {t} = {getattr(pop, t)} must be > 0")
        for r in ("alpha", "beta"):
            if getattr(pop, r) is not None and not 0 <= getattr(pop, r) <= 1:
                raise NetworkError(f"{where}: {r} = {getattr(pop, r)} must be in [0, 1]")
        if pop.reset_stored and not pop.reset_delay:
            raise NetworkError(f"{where}: reset_stored needs reset_delay")
        if pop.reset_retest and pop.reset_delay:
            raise NetworkError(f"{where}: reset_retest is for an immediate reset, not with "
                               f"reset_delay")
        if pop.v_floor is not None and not (math.isfinite(pop.v_floor) and pop.v_floor <= 0):
            raise NetworkError(f"{where}: v_floor = {pop.v_floor} must be finite and <= 0")
        if pop.scale is not None and not (math.isfinite(pop.scale) and pop.scale > 0):
            raise NetworkError(f"{where}: scale = {pop.scale} must be finite and > 0")
        for what, value in zip(("u0", "v0"), (pop.u0, pop.v0)):
            try:
                a = np.broadcast_to(np.asarray(value, dtype=np.float64), (pop.size,))
            except (ValueError, TypeError):
                raise NetworkError(f"{where}: {what} must be one number or {pop.size} "
                                   f"(one per neuron), got shape {np.shape(value)}") from None
            if not np.isfinite(a).all():
                raise NetworkError(f"{where}: {what} is not finite")
        self.populations[name] = pop
        return pop

    def connect(self, src: str, dst: str, weights, *, delay=0, name: str | None = None,
                plastic: Plasticity | None = None):
        """Connect ``src`` (input or population) to population ``dst``.

        ``weights`` is a dense ``[src.size, dst.size]`` array (zeros are not
        synapses) or a sparse triple ``(pre, post, weight)``. ``delay`` (in
        steps) is one value or one per synapse. ``plastic``: the synapses
        learn on the chip (:class:`Plasticity`; the float reference keeps
        them fixed). Give a plastic projection's synapses explicitly (sparse)
        when zero-weight synapses should be able to grow.
        """
        name = name or f"{src}->{dst}"
        if src not in self.inputs and src not in self.populations:
            raise NetworkError(f"projection {name!r}: unknown source {src!r}")
        if dst not in self.populations:
            raise NetworkError(f"projection {name!r}: target {dst!r} is not a population")
        n_src = (self.inputs.get(src) or self.populations[src]).size
        n_dst = self.populations[dst].size
        if isinstance(weights, tuple):
            pre, post, w = (np.asarray(a) for a in weights)
            pre, post, w = np.broadcast_arrays(pre.astype(np.int64), post.astype(np.int64),
                                               w.astype(np.float64))
            bad = ~np.isfinite(w.reshape(-1))
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise NetworkError(f"projection {name!r}: weight[{k}] = {w.reshape(-1)[k]} "
                                   f"(synapse {int(pre.reshape(-1)[k])} -> "
                                   f"{int(post.reshape(-1)[k])}) is not finite")
        else:
            dense = np.asarray(weights, dtype=np.float64)
            if dense.shape != (n_src, n_dst):
                raise NetworkError(f"projection {name!r}: weights have shape {dense.shape}, "
                                   f"expected ({n_src}, {n_dst})")
            bad = ~np.isfinite(dense)
            if bad.any():
                i, j = (int(k[0]) for k in np.nonzero(bad))
                raise NetworkError(f"projection {name!r}: weight[{i}, {j}] = {dense[i, j]} is "
                                   f"not finite")
            pre, post = np.nonzero(dense)
            w = dense[pre, post]
        for what, idx, n in (("source", pre, n_src), ("target", post, n_dst)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise NetworkError(f"projection {name!r}: {what} index "
                                   f"{int(idx[(idx < 0) | (idx >= n)][0])} outside [0, {n})")
        d = np.asarray(delay)
        if d.dtype.kind not in "biuf":
            raise NetworkError(f"projection {name!r}: delay holds {d.dtype}, not numbers")
        bad = (~np.isfinite(d) | (d < 0)) if d.dtype.kind == "f" else d < 0
        if bad.any():       # checked before the cast: NaN would become -2**63
            at = np.argwhere(bad)[0]
            index = "" if d.ndim == 0 else f"[{', '.join(str(int(k)) for k in at)}]"
            raise NetworkError(f"projection {name!r}: delay{index} = {d[tuple(at)]} "
                               f"{'is negative' if d[tuple(at)] < 0 else 'is not finite'}")
        try:
            d = np.broadcast_to(d.astype(np.int64), pre.shape)
        except ValueError:
            raise NetworkError(f"projection {name!r}: delay has shape {d.shape}; expected one "
                               f"value or one per synapse ({pre.size})") from None
        if plastic is not None:
            self._check_plastic(name, dst, plastic)
        proj = Projection(name, src, dst, pre.reshape(-1).copy(), post.reshape(-1).copy(),
                          w.reshape(-1).copy(), d.reshape(-1).copy(), plastic)
        self.projections.append(proj)
        return proj

    def _check_plastic(self, name, dst, plastic):
        from neuromesh.learning import LearningRule
        where = f"projection {name!r}"
        if not isinstance(plastic, Plasticity):
            raise NetworkError(f"{where}: plastic must be a Plasticity, got {plastic!r}")
        if any(p.name == name for p in self.projections):
            raise NetworkError(f"{where}: a plastic projection needs a unique name")
        LearningRule.parse(plastic.rule)            # raises RuleError pointing at the token
        engine = plastic.engine()
        for other in self.projections:
            if other.dst == dst and other.plastic is not None \
                    and other.plastic.engine() != engine:
                raise NetworkError(
                    f"{where}: its traces, t_epoch, stochastic rounding or seed differ from "
                    f"plastic projection {other.name!r} into the same population {dst!r}; "
                    f"one core has one learning engine, so they must agree")

    def conv(self, src: str, dst: str, weight, input_shape, *, stride=1, padding=0,
             dilation=1, groups=1, delay=0, name: str | None = None):
        """Connect ``src`` to ``dst`` by a 1-D or 2-D convolution.

        ``weight`` is ``[C_out, C_in/groups, k]`` or ``[C_out, C_in/groups,
        kH, kW]`` (PyTorch/NIR order), ``input_shape`` is the source's
        ``(C, L)`` or ``(C, H, W)``; the target population must have exactly
        the output's size. Stored as explicit synapses
        (:mod:`~neuromesh.compiler.convolution`). Returns the output shape.
        """
        from .convolution import conv1d_synapses, conv2d_synapses
        name = name or f"{src}->{dst}"
        fn = conv2d_synapses if np.ndim(weight) == 4 else conv1d_synapses
        pre, post, w, shape = fn(input_shape, weight, stride=stride, padding=padding,
                                 dilation=dilation, groups=groups, name=name)
        self._check_shape(name, src, dst, input_shape, shape)
        self.connect(src, dst, (pre, post, w), delay=delay, name=name)
        return shape

    def pool(self, src: str, dst: str, kernel_size, input_shape, *, stride=None, padding=0,
             mode: str = "sum", delay=0, name: str | None = None):
        """Connect ``src`` to ``dst`` by 2-D sum or average pooling of a
        ``(C, H, W)`` source. Returns the output shape."""
        from .convolution import pool2d_synapses
        name = name or f"{src}->{dst}"
        pre, post, w, shape = pool2d_synapses(input_shape, kernel_size, stride=stride,
                                              padding=padding, mode=mode, name=name)
        self._check_shape(name, src, dst, input_shape, shape)
        self.connect(src, dst, (pre, post, w), delay=delay, name=name)
        return shape

    def _check_shape(self, name, src, dst, in_shape, out_shape):
        n_src = (self.inputs.get(src) or self.populations.get(src))
        n_dst = self.populations.get(dst)
        if n_src is not None and n_src.size != int(np.prod(in_shape)):
            raise NetworkError(f"projection {name!r}: input shape {tuple(in_shape)} has "
                               f"{int(np.prod(in_shape))} elements, {src!r} has {n_src.size}")
        if n_dst is not None and n_dst.size != int(np.prod(out_shape)):
            raise NetworkError(f"projection {name!r}: output shape {out_shape} has "
                               f"{int(np.prod(out_shape))} elements, {dst!r} has {n_dst.size}")

    def output(self, population: str):
        """Send the spikes of ``population`` to host output channels."""
        if population not in self.populations:
            raise NetworkError(f"output: {population!r} is not a population")
        if not self.populations[population].spiking:
            raise NetworkError(f"output: {population!r} does not spike; use readout()")
        if population not in self.outputs:
            self.outputs.append(population)

    def readout(self, population: str):
        """Mark a non-spiking population whose ``v`` is the network's answer
        (probed on the chip, recorded by the reference)."""
        if population not in self.populations:
            raise NetworkError(f"readout: {population!r} is not a population")
        if self.populations[population].spiking:
            raise NetworkError(f"readout: {population!r} spikes; use output()")
        if population not in self.readouts:
            self.readouts.append(population)

    # -- derived -----------------------------------------------------------------

    def retention(self, pop: Population) -> tuple[float, float]:
        """Float per-step retention (alpha of u, beta of v) of ``pop``."""
        def keep(tau):
            if self.method == "euler":
                return min(max(1.0 - self.dt / tau, 0.0), 1.0)
            return math.exp(-self.dt / tau)

        alpha = {"cuba": keep(pop.tau_syn), "lif": 0.0, "if": 0.0}[pop.kind]
        beta = 1.0 if pop.kind == "if" else keep(pop.tau_mem)
        if pop.alpha is not None:
            alpha = float(pop.alpha)
        if pop.beta is not None:
            beta = float(pop.beta)
        if pop.du is not None:
            alpha = 1.0 - pop.du / 4096
        if pop.dv is not None:
            beta = 1.0 - pop.dv / 4096
        return alpha, beta
