"""Quantization pass: float SNN parameters to the chip's fixed-point fields.

Maps time constants to 12-bit decays, chooses one scale per population so
that its threshold, biases and state fit their fields, turns the weights of
each projection into ``w_mant << w_shift`` and reports the error of every
step (docs/architecture.md §3 is the arithmetic this targets).

The model
---------
The float network and the chip run the same recurrence (DESIGN.md §2.1)::

    u[t] = alpha * u[t-1] + sum_j w_ij * s_j[t]      chip: trunc0(u, 4096 - du) + q
    v[t] = beta  * v[t-1] + u[t] + b                 chip: trunc0(v, 4096 - dv) + u + b
    spike = v[t] > theta                             chip: v > vth_mant << 6

Every population gets one scale ``s`` (chip value ≈ ``s`` × float value) for
``u``, ``v``, its threshold, its biases and the weights *into* it. Spikes are
0/1 on both sides, so the scale of the source population never enters. Any
input gain of the source's discretisation (e.g. ``dt / tau`` in a Norse or
NIR ``LIF``) belongs to the weights and must be folded in before this pass.

Rounding
--------
All mantissas are rounded to nearest, ties to even (``numpy.rint``). The
rule is odd-symmetric (``-x`` rounds to minus the rounding of ``x``), so
excitatory and inhibitory weights of equal size stay equal, and unlike ties
away from zero it does not inflate magnitudes on ties -- which are common
when already integer-valued weights are divided by ``2**w_shift``.

Decays round the *retention factor* to the nearest multiple of 1/4096. The
chip also rounds each decayed value toward zero (``trunc0``), which shortens
the effective time constant of small values by up to one chip unit per
step; a large scale keeps that negligible, one reason :func:`choose_scale`
picks a scale within a factor of two of the largest the fields allow.

Typical use, per population (the graph pass does this for every layer)::

    layer = quantize_layer("hidden", threshold=1.0, weights_in={"in->hidden": W},
                           bias=b, u_decay=decay_from_tau(tau_syn, dt, "euler"),
                           v_decay=decay_from_tau(tau_mem, dt, "euler"))
    report = QuantizationReport([layer])
    print(report.table())
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from neuromesh.chip import DECAY_ONE, LAYOUTS, V_MAX, VTH_SHIFT, ChipError, Region

__all__ = [
    "QuantizationError", "Decay", "Threshold", "Bias", "ScaleChoice", "QuantizedProjection",
    "LayerQuantization", "QuantizationReport", "DEFAULT_HEADROOM",
    "WeightStats", "decay_from_tau", "decay_from_factor", "choose_scale", "quantize_weights",
    "quantize_threshold", "quantize_bias", "quantize_layer",
]

# Field limits, taken from the word layouts so they cannot drift from the chip.
_W = LAYOUTS[Region.SYNAPSE]["w_mant"]
W_MANT_MIN, W_MANT_MAX = _W.min, _W.max                          #: -128, 127
W_SHIFT_MAX = LAYOUTS[Region.GROUP]["w_shift"].max               #: 15
VTH_MANT_MAX = LAYOUTS[Region.PROFILE]["vth_mant"].max           #: 2**17 - 1
_B = LAYOUTS[Region.NEURON]["bias_mant"]
BIAS_MANT_MIN, BIAS_MANT_MAX = _B.min, _B.max                    #: -4096, 4095
BIAS_EXP_MAX = LAYOUTS[Region.NEURON]["bias_exp"].max            #: 7

#: Default ``headroom`` of :func:`choose_scale`: u and v may reach this many
#: times (threshold + largest one-step input + |bias|) before they saturate.
DEFAULT_HEADROOM = 4.0


class QuantizationError(ChipError):
    """A float parameter cannot be represented in its chip field."""


# --- small helpers ---------------------------------------------------------------

def _where(kind: str, name) -> str:
    """Message prefix naming the layer or projection, if it has a name."""
    return f"{kind} {name!r}: " if name is not None else ""


def _index(mask: np.ndarray) -> tuple[str, tuple]:
    """Text and index tuple of the first True element of ``mask``."""
    if mask.ndim == 0:
        return "", ()
    idx = tuple(int(i) for i in np.argwhere(mask)[0])
    return "[" + ", ".join(map(str, idx)) + "]", idx


def _out(a: np.ndarray):
    """Python scalar for 0-d results, the array otherwise."""
    return a.item() if a.ndim == 0 else a


def _floats(value, what: str, name) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    bad = np.isnan(a)
    if bad.any():
        at, _ = _index(bad)
        raise QuantizationError(f"{_where('layer', name)}{what}{at} is NaN")
    return a


def _finite(value, what: str, name, kind: str = "layer") -> np.ndarray:
    """``value`` as floats; raise naming the first element that is not finite."""
    a = _floats(value, what, name)
    if not np.isfinite(a).all():
        at, idx = _index(~np.isfinite(a))
        raise QuantizationError(f"{_where(kind, name)}{what}{at} = {float(a[idx]):g} "
                                f"is not finite")
    return a


def _thresholds(threshold, name) -> np.ndarray:
    """Threshold(s) as floats; raise unless every one is finite and >= 0."""
    th = _floats(threshold, "threshold", name)
    bad = ~(np.isfinite(th) & (th >= 0))
    if bad.any():
        at, idx = _index(bad)
        raise QuantizationError(
            f"{_where('layer', name)}threshold{at} = {float(th[idx]):g}; the chip threshold "
            f"vth_mant << 6 is finite and >= 0")
    return th


def _check_scale(scale, name) -> float:
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        raise QuantizationError(
            f"{_where('layer', name)}scale must be finite and > 0, got {scale}")
    return s


# --- decays --------------------------------------------------------------------------

class Decay(NamedTuple):
    """A 12-bit decay constant and its retention error.

    Attributes
    ----------
    d:
        The chip decay (``du`` or ``dv``), 0 … 4096; the chip keeps a
        fraction ``(4096 - d) / 4096`` of the state each step (int, or an
        int64 array for per-neuron values). This is the contract's value;
        Lava's bit-accurate LIF takes ``du_lava = du - 1`` for the current
        (DESIGN.md §6), ``dv_lava = dv``.
    error:
        ``|(4096 - d) / 4096 - r|``, the absolute error of the per-step
        retention ``r`` (≤ 1/8192 for any ``r`` in [0, 1]).
    """

    d: int | np.ndarray
    error: float | np.ndarray


def decay_from_factor(alpha, *, name=None) -> Decay:
    """Decay constant for a per-step retention factor given directly.

    For frameworks that store the factor rather than a time constant, e.g.
    snnTorch's ``alpha`` (synaptic current) and ``beta`` (membrane).

    Parameters
    ----------
    alpha:
        Retention per step, in [0, 1]; scalar or array (per neuron). Values
        are read as float64 exactly, so a float32 ``0.75`` stays 0.75;
        snnTorch factors computed in float64 (0.7499999937) round to the
        same ``d`` anyway.
    name:
        Layer name for error messages.

    Returns
    -------
    Decay
        ``d = 4096 - rint(4096 * alpha)`` and the retention error. ``alpha
        = 1`` gives ``d = 0`` (no decay), ``alpha = 0`` gives ``d = 4096``
        (forget at once).

    Raises
    ------
    QuantizationError
        If a factor is NaN or outside [0, 1] (a growing or sign-flipping
        state has no chip decay).
    """
    a = _floats(alpha, "retention factor", name)
    bad = ~((a >= 0) & (a <= 1))
    if bad.any():
        at, idx = _index(bad)
        raise QuantizationError(
            f"{_where('layer', name)}retention factor{at} = {float(a[idx]):g} is outside "
            f"[0, 1]; the chip keeps (4096 - d) / 4096 of the state with 0 <= d <= 4096")
    keep = np.rint(a * DECAY_ONE)
    d = (DECAY_ONE - keep).astype(np.int64)
    return Decay(_out(d), _out(np.abs(keep / DECAY_ONE - a)))


def decay_from_tau(tau, dt, method: str = "euler", *, name=None) -> Decay:
    """Decay constant for a time constant under the source's discretisation.

    Parameters
    ----------
    tau:
        Time constant(s), > 0, same unit as ``dt``; ``inf`` means no decay.
        Scalar or array (per neuron); broadcast with ``dt``.
    dt:
        Timestep, finite and > 0.
    method:
        ``"euler"``: retention ``1 - dt/tau`` clipped to [0, 1] (snnTorch's
        NIR export, Norse, Lava); ``dt >= tau`` forgets at once (d = 4096).
        ``"exact"``: retention ``exp(-dt/tau)`` (Rockpool, Sinabs).
    name:
        Layer name for error messages.

    Returns
    -------
    Decay
        As :func:`decay_from_factor` of the retention. Example: ``tau = 10,
        dt = 1`` gives d = 410 (factor 3686, retention 0.9) with Euler and
        d = 390 (retention 0.904837) exact.

    Raises
    ------
    QuantizationError
        For ``tau <= 0``, NaN, ``dt`` not finite and positive, or an unknown
        method.
    """
    if method not in ("euler", "exact"):
        raise QuantizationError(
            f"{_where('layer', name)}decay method must be 'euler' or 'exact', got {method!r}")
    t = _floats(tau, "tau", name)
    step = _floats(dt, "dt", name)
    bad = ~((step > 0) & np.isfinite(step))
    if bad.any():
        at, idx = _index(bad)
        raise QuantizationError(
            f"{_where('layer', name)}dt{at} = {float(step[idx]):g} must be finite and > 0")
    bad = ~(t > 0)
    if bad.any():
        at, idx = _index(bad)
        raise QuantizationError(
            f"{_where('layer', name)}tau{at} = {float(t[idx]):g} must be > 0 (inf: no decay)")
    ratio = step / t                     # tau = inf gives 0: retention 1
    if method == "euler":
        retention = np.clip(1.0 - ratio, 0.0, 1.0)
    else:
        retention = np.exp(-ratio)
    return decay_from_factor(retention, name=name)


# --- scale -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ScaleChoice:
    """The scale of one population and why.

    Attributes
    ----------
    scale:
        Chip units per float unit for u, v, threshold, bias and incoming
        weights.
    binding:
        The constraint that sets ``max_scale`` (a key of ``limits``), or
        ``"none"`` when nothing constrains the scale (all parameters zero;
        scale 1).
    limits:
        Largest scale each constraint allows (``inf`` when it does not
        constrain): ``"threshold"``, ``"bias"``, ``"weights"``,
        ``"state"``.
    reasons:
        One readable line per constraint, then the result.
    max_scale:
        The largest scale the constraints allow (``scale`` is at most this;
        lower when aligned to the weights or rounded to a power of two).
    """

    scale: float
    binding: str
    limits: dict = field(default_factory=dict)
    reasons: tuple = ()
    max_scale: float | None = None

    def __str__(self):
        return "\n".join(self.reasons)


@dataclass(frozen=True)
class WeightStats:
    """What :func:`choose_scale` reads of one projection's weights, for a
    projection given as synapse lists (no dense ``[n_post, n_pre]`` matrix).

    Attributes
    ----------
    exc, inh:
        The largest sum over one target's synapses of the positive (``exc``)
        and of the negated negative (``inh``) weights, >= 0: the most input
        of each sign one step can bring to one target. Synapses of one
        (source, target) pair are counted apart, as the chip holds them (a
        bound as safe as the dense matrix's, equal to it without such pairs).
    w_max, w_min:
        The largest and the smallest synapse weight, with 0 counted:
        ``w_max >= 0 >= w_min`` (what each synapse's mantissa must hold).
    """

    exc: float
    inh: float
    w_max: float
    w_min: float

    @classmethod
    def of_synapses(cls, post, weight, n_post: int, *, name=None) -> WeightStats:
        """The statistics of synapses into targets ``post[i]`` of weight
        ``weight[i]``, ``n_post`` targets: ``O(S)`` for ``S`` synapses.
        Raises :class:`QuantizationError` for a non-finite weight."""
        post = np.asarray(post)
        weight = np.asarray(weight, dtype=np.float64)
        if not weight.size:
            return cls(0.0, 0.0, 0.0, 0.0)
        w_max, w_min = float(weight.max()), float(weight.min())
        if not (math.isfinite(w_max) and math.isfinite(w_min)):
            k = int(np.flatnonzero(~np.isfinite(weight))[0])
            raise QuantizationError(f"{_where('layer', name)}weight[{k}] = {weight[k]:g} "
                                    f"(synapse into {int(post[k])}) is not finite")
        exc = np.bincount(post, weights=np.maximum(weight, 0.0), minlength=n_post)
        inh = np.bincount(post, weights=np.maximum(-weight, 0.0), minlength=n_post)
        return cls(float(exc.max()), float(inh.max()), max(w_max, 0.0), min(w_min, 0.0))


def _weight_list(weights_in) -> list[tuple[str, np.ndarray | WeightStats]]:
    if weights_in is None:
        return []
    if isinstance(weights_in, Mapping):
        items = list(weights_in.items())
    elif isinstance(weights_in, (np.ndarray, WeightStats)):
        items = [("0", weights_in)]
    else:
        items = [(str(i), w) for i, w in enumerate(weights_in)]
    return [(str(k), w if isinstance(w, WeightStats) else np.asarray(w, dtype=np.float64))
            for k, w in items]


def _neg(magnitude: float) -> float:
    """``-magnitude`` without printing ``-0``."""
    return -magnitude if magnitude else 0.0


def _one_step_input(w: np.ndarray) -> tuple[float, float]:
    """Largest excitatory and inhibitory input one step can bring to a target.

    ``ndim >= 2``: ``[n_post, n_pre, ...]``, every source may spike at once.
    ``ndim <= 1``: one-to-one (elementwise) weights, e.g. a NIR ``Scale``.
    """
    if w.size == 0:
        return 0.0, 0.0
    if w.ndim <= 1:
        return float(max(w.max(), 0.0)), float(max(-w.min(), 0.0))
    w2 = w.reshape(w.shape[0], -1)
    return (float(np.clip(w2, 0, None).sum(axis=1).max()),
            float(np.clip(-w2, 0, None).sum(axis=1).max()))


def _weight_caps(projections) -> list[tuple[str, float]]:
    """Per nonzero projection, the scale ``c`` at which its extreme weights
    exactly fill the mantissa at shift 0 (127 up, -128 down); at shift k it
    fits while ``s <= c * 2**k``."""
    caps = []
    for pname, w in projections:
        if isinstance(w, WeightStats):
            if w.w_max or w.w_min:
                caps.append((pname, min(W_MANT_MAX / w.w_max if w.w_max > 0 else math.inf,
                                        -W_MANT_MIN / -w.w_min if w.w_min < 0 else math.inf)))
        elif w.size and w.any():
            pos, neg = float(w.max()), float(-w.min())
            caps.append((pname, min(W_MANT_MAX / pos if pos > 0 else math.inf,
                                    -W_MANT_MIN / neg if neg > 0 else math.inf)))
    return caps


def _fill(s: float, cap: float) -> float:
    """Fraction of the mantissa range the largest weight uses at scale s."""
    if s <= cap:
        return s / cap                                   # shift 0
    return s / (cap * 2.0 ** math.ceil(math.log2(s / cap)))


def _align(s_max: float, caps) -> tuple[float, float]:
    """The scale in (s_max / 2, s_max] maximising the smallest fill; its fill."""
    candidates = [s_max]
    for _, cap in caps:
        if cap <= s_max:
            c = cap * 2.0 ** math.floor(math.log2(s_max / cap))
            candidates.append(min(c, s_max))
    best = max(candidates, key=lambda c: (min(_fill(c, cap) for _, cap in caps), c))
    return best, min(_fill(best, cap) for _, cap in caps)


def choose_scale(threshold, weights_in=(), bias=None, *, headroom: float = DEFAULT_HEADROOM,
                 align_weights: bool = True, power_of_two: bool = False,
                 name=None) -> ScaleChoice:
    """The scale of a population: as large as the fields allow, aligned to its weights.

    A larger scale gives finer thresholds and biases, makes the chip's
    round-toward-zero decay negligible and keeps small weights from rounding
    to zero. The weights are the coarsest field (8-bit mantissas), and their
    resolution depends on where the largest weight falls between two shifts:
    at ``127 << k`` it uses the whole mantissa, just above it only half (it
    needs shift ``k + 1`` and mantissa 64). So the scale is found in two
    steps. First the largest scale ``max_scale`` meeting all of:

    ``threshold``
        ``s * max(threshold) <= (2**17 - 1) << 6`` (vth_mant is u17).
    ``bias``
        ``s * max(bias) <= 4095 << 7`` and ``s * -min(bias) <= 4096 << 7``.
    ``weights``
        The largest weights still fit ``w_mant << 15``: ``s * max(w) <=
        127 << 15``, ``s * -min(w) <= 128 << 15``.
    ``state``
        ``s * headroom * (max(threshold) + J + max|bias|) <= 2**23 - 1``,
        where ``J`` is the largest input one step can bring to one neuron
        (every source spiking, excitatory and inhibitory counted apart).
        Just before a spike ``v <= threshold``, so one step takes it to at
        most ``threshold + J + bias`` when ``u`` holds a single step's input
        (no synaptic decay). ``headroom`` covers what that does not bound:
        ``u`` summing several steps under a slow synaptic decay (steady
        state ``J / (1 - alpha)``) and inhibition driving ``v`` negative. It
        is a heuristic, not a guarantee: raise it for slow synapses, lower
        it for sparse activity when weights lose resolution.

    Then (``align_weights``) the scale in ``(max_scale / 2, max_scale]`` at
    which the projection that uses its mantissa range least uses it most:
    with one projection its largest weight becomes exactly ``127 << k``
    (or ``-128 << k``), so its weights are quantized in steps of ``max|w|
    / 127``. Ties go to the larger scale. At most one bit of threshold and
    bias resolution (which have 17 and 13 bits) is given up for up to one
    bit of weight resolution.

    Parameters
    ----------
    threshold:
        Firing threshold(s) in float units, >= 0; scalar or per neuron.
    weights_in:
        The weights of every projection into the population: one numpy
        array, a sequence of arrays (one per projection -- a nested list of
        numbers is read as such a sequence, not as one matrix) or a mapping
        ``name -> array``. Arrays with two or more axes are ``[n_post,
        n_pre, ...]`` (NIR/PyTorch order; the first axis is the target);
        0-d and 1-d arrays are one-to-one weights. A :class:`WeightStats`
        may stand for a projection's array.
    bias:
        Bias(es) added to v every step, float units; scalar or per neuron.
    headroom:
        Factor >= 1 between the one-step bound above and the state range.
    align_weights:
        Lower the scale to align the weights, as above (default True).
    power_of_two:
        Instead, round ``max_scale`` down to a power of two (then weights
        and thresholds that are exact binary fractions stay exact).
    name:
        Layer name for error messages.

    Returns
    -------
    ScaleChoice
        The scale, the binding constraint, each constraint's limit and a
        line of explanation for each.

    Raises
    ------
    QuantizationError
        For a negative or non-finite threshold, non-finite weights or bias,
        or ``headroom < 1``.
    """
    where = _where("layer", name)
    h = float(headroom)
    if not (math.isfinite(h) and h >= 1):
        raise QuantizationError(f"{where}headroom must be finite and >= 1, got {headroom}")
    th = _thresholds(threshold, name)
    b = _finite(0.0 if bias is None else bias, "bias", name)
    projections = _weight_list(weights_in)
    j_exc = j_inh = 0.0
    w_pos = w_neg = 0.0
    for pname, w in projections:
        if isinstance(w, WeightStats):
            j_exc += w.exc
            j_inh += w.inh
            w_pos = max(w_pos, w.w_max)
            w_neg = max(w_neg, -w.w_min)
            continue
        if not np.isfinite(w).all():
            at, idx = _index(~np.isfinite(w))
            raise QuantizationError(
                f"{where}projection {pname!r} weight{at} = {float(w[idx]):g} is not finite")
        e, i = _one_step_input(w)
        j_exc += e
        j_inh += i
        if w.size:
            w_pos = max(w_pos, float(w.max()))
            w_neg = max(w_neg, float(-w.min()))

    th_max = float(th.max()) if th.size else 0.0
    b_pos = float(max(b.max(), 0.0)) if b.size else 0.0
    b_neg = float(max(-b.min(), 0.0)) if b.size else 0.0
    j = max(j_exc, j_inh)
    reach = h * (th_max + j + max(b_pos, b_neg))

    def limit(top, value):
        return top / value if value > 0 else math.inf

    vth_top = VTH_MANT_MAX << VTH_SHIFT
    limits = {
        "threshold": limit(vth_top, th_max),
        "bias": min(limit(BIAS_MANT_MAX << BIAS_EXP_MAX, b_pos),
                    limit(-BIAS_MANT_MIN << BIAS_EXP_MAX, b_neg)),
        "weights": min(limit(W_MANT_MAX << W_SHIFT_MAX, w_pos),
                       limit(-W_MANT_MIN << W_SHIFT_MAX, w_neg)),
        "state": limit(V_MAX, reach),
    }
    reasons = [
        f"threshold: max {th_max:.6g} must fit vth_mant << 6 <= {vth_top}: "
        f"s <= {limits['threshold']:.6g}",
        f"bias: range [{_neg(b_neg):.6g}, {b_pos:.6g}] must fit bias_mant << bias_exp in "
        f"[{BIAS_MANT_MIN << BIAS_EXP_MAX}, {BIAS_MANT_MAX << BIAS_EXP_MAX}]: "
        f"s <= {limits['bias']:.6g}",
        f"weights: range [{_neg(w_neg):.6g}, {w_pos:.6g}] must fit w_mant << 15 in "
        f"[{W_MANT_MIN << W_SHIFT_MAX}, {W_MANT_MAX << W_SHIFT_MAX}]: "
        f"s <= {limits['weights']:.6g}",
        f"state: headroom {h:g} x (threshold {th_max:.6g} + one-step input {j:.6g} + "
        f"|bias| {max(b_pos, b_neg):.6g}) = {reach:.6g} must stay within +-{V_MAX}: "
        f"s <= {limits['state']:.6g}",
    ]
    binding = min(limits, key=limits.get)
    s_max = limits[binding]
    if math.isinf(s_max):
        binding, s_max = "none", 1.0
        reasons.append("nothing constrains the scale (all parameters zero): s = 1")
    else:
        reasons.append(f"largest scale {s_max:.6g}, set by {binding}")
    s = s_max
    caps = _weight_caps(projections)
    if power_of_two:
        s = 2.0 ** math.floor(math.log2(s_max))
        reasons.append(f"rounded down to a power of two: s = {s:.6g}")
    elif align_weights and caps and binding != "none":
        s, fill = _align(s_max, caps)
        before = min(_fill(s_max, cap) for _, cap in caps)
        if s < s_max:
            reasons.append(
                f"aligned to the weights: s = {s:.6g} (x{s / s_max:.4g}); the largest weight "
                f"of the least-filled projection uses {fill:.1%} of the mantissa range "
                f"(at the largest scale {before:.1%})")
        else:
            reasons.append(f"s = {s:.6g}; the weights use at least {fill:.1%} of the "
                           f"mantissa range")
    return ScaleChoice(scale=s, binding=binding, limits=limits, reasons=tuple(reasons),
                       max_scale=s_max)


# --- weights -------------------------------------------------------------------------

@dataclass(frozen=True)
class QuantizedProjection:
    """The weights of one projection (one synapse group) in chip form.

    Attributes
    ----------
    w_mant:
        int64 array, the shape of the float weights, in [-128, 127].
    w_shift:
        The group's shift, 0 … 15; a synapse contributes ``w_mant <<
        w_shift`` chip units.
    scale:
        The target population's scale the weights were multiplied by.
    max_abs_error:
        Largest ``|w - w_mant * 2**w_shift / scale|``, float units (at most
        half a step, ``2**(w_shift - 1) / scale``).
    rms_abs_error:
        Root mean square of the same error, float units.
    rms_weight:
        Root mean square of the float weights (0 for an empty or all-zero
        projection).
    n_flushed:
        Nonzero float weights that became ``w_mant = 0``.
    name:
        The projection's name, if given.
    """

    w_mant: np.ndarray
    w_shift: int
    scale: float
    max_abs_error: float
    rms_abs_error: float
    rms_weight: float
    n_flushed: int
    name: str | None = None

    @property
    def rms_rel_error(self) -> float:
        """RMS error over RMS weight (0 for an all-zero projection)."""
        return self.rms_abs_error / self.rms_weight if self.rms_weight else 0.0

    @property
    def contribution(self) -> np.ndarray:
        """``w_mant << w_shift``: what each synapse adds, chip units (int64)."""
        return self.w_mant << self.w_shift

    def dequantized(self) -> np.ndarray:
        """The weights the chip implements, in float units."""
        return self.contribution / self.scale


def quantize_weights(weights, scale, *, name=None, w_bits: int = 8,
                     w_max: float | None = None) -> QuantizedProjection:
    """Quantize one projection's weights to 8-bit mantissas and one shift.

    ``w * scale`` is represented as ``w_mant << w_shift`` with the
    *smallest* shift at which every ``rint(w * scale / 2**w_shift)`` lies in
    [-128, 127]: the smallest shift has the finest step, so it minimises the
    error bound ``2**(w_shift - 1)`` (chip units) for every weight.
    Rounding is to nearest, ties to even (see the module docstring).

    Parameters
    ----------
    weights:
        Float weights of any shape (an all-zero or empty projection gives
        shift 0 and zero mantissas).
    scale:
        The target population's scale (:func:`choose_scale`), > 0.
    name:
        Projection name for error messages and the result.
    w_bits:
        Mantissa width, 1..8 (a plastic group's precision, whose learned
        weights clamp to ``w_bits`` two's complement).
    w_max:
        Also cover ``[-w_max, w_max]`` (float units) with the shift: the
        range a plastic projection may learn into. Its weights may then all
        be zero.

    Returns
    -------
    QuantizedProjection

    Raises
    ------
    QuantizationError
        Overflow: a weight needs ``w_shift > 15``. Underflow: the projection
        has nonzero weights but all of them round to 0 (it would vanish).
        Also for non-finite weights or a bad scale.
    """
    where = _where("projection", name)
    s = _check_scale(scale, name)
    w = _finite(weights, "weight", name, kind="projection")
    if not (isinstance(w_bits, (int, np.integer)) and 1 <= w_bits <= 8):
        raise QuantizationError(f"{where}w_bits = {w_bits!r} is outside [1, 8]")
    m_max, m_min = (1 << (w_bits - 1)) - 1, -(1 << (w_bits - 1))
    x = w * s
    span = 0.0 if w_max is None else float(_finite(w_max, "w_max", name, "projection")) * s
    if (x.size == 0 or not x.any()) and span == 0:
        zero = np.zeros(w.shape, dtype=np.int64)
        return QuantizedProjection(zero, 0, s, 0.0, 0.0, 0.0, 0, name)
    hi = max(float(x.max(initial=0.0)), abs(span))
    lo = min(float(x.min(initial=0.0)), -abs(span))
    # rint is monotone, so the extremes decide whether a shift fits.
    for shift in range(W_SHIFT_MAX + 1):
        step = float(1 << shift)
        if np.rint(hi / step) <= m_max and np.rint(lo / step) >= m_min:
            break
    else:
        big = np.abs(x) >= max(hi, -lo) if x.size else np.zeros(0, bool)
        top = min(((m_max << W_SHIFT_MAX) / hi) if hi > 0 and m_max > 0 else math.inf,
                  ((-m_min << W_SHIFT_MAX) / -lo) if lo < 0 else math.inf)
        what = "w_max" if not big.any() else None
        if what is None:
            at, idx = _index(big)
            what = f"weight{at} = {w[idx]:.6g} x scale {s:.6g} = {x[idx]:.6g} chip units"
        raise QuantizationError(
            f"{where}{what} overflows w_mant << w_shift (w_mant in [{m_min}, {m_max}], w_shift "
            f"<= {W_SHIFT_MAX}: range [{m_min << W_SHIFT_MAX}, "
            f"{m_max << W_SHIFT_MAX}]); the scale must be <= {top:.6g}")
    mant = np.rint(x / step).astype(np.int64)
    nonzero = w != 0
    flushed = nonzero & (mant == 0)
    if flushed.sum() == nonzero.sum() and w_max is None:
        m = float(np.abs(x).max())
        raise QuantizationError(
            f"{where}all {int(nonzero.sum())} nonzero weights round to w_mant = 0 at "
            f"w_shift 0 (largest |w x scale| = {m:.6g} chip units, needs > 0.5); the "
            f"projection would vanish -- the scale {s:.6g} must be > {0.5 * s / m:.6g}")
    err = w - (mant * step) / s
    return QuantizedProjection(
        w_mant=mant, w_shift=shift, scale=s,
        max_abs_error=float(np.abs(err).max(initial=0.0)),
        rms_abs_error=float(np.sqrt(np.mean(err * err))) if err.size else 0.0,
        rms_weight=float(np.sqrt(np.mean(w * w))) if w.size else 0.0,
        n_flushed=int(flushed.sum()), name=name)


# --- threshold and bias ------------------------------------------------------------

class Threshold(NamedTuple):
    """A quantized threshold: ``vth = vth_mant << 6`` chip units.

    Attributes
    ----------
    vth_mant:
        u17 mantissa (int, or int64 array for per-neuron thresholds).
    error:
        ``|threshold - (vth_mant << 6) / scale|``, float units.
    """

    vth_mant: int | np.ndarray
    error: float | np.ndarray


def quantize_threshold(threshold, scale, *, name=None) -> Threshold:
    """Quantize a firing threshold to ``vth_mant << 6``.

    ``vth_mant = rint(threshold * scale / 64)``. Both the float model and
    the chip fire on a strict ``v > threshold``.

    Parameters
    ----------
    threshold:
        Threshold(s), float units, >= 0; scalar or array.
    scale:
        The population's scale, > 0.
    name:
        Layer name for error messages.

    Returns
    -------
    Threshold

    Raises
    ------
    QuantizationError
        For a negative or non-finite threshold; overflow (``vth_mant >
        2**17 - 1``); or a positive threshold that rounds to 0 (the neuron
        would fire whenever v > 0).
    """
    where = _where("layer", name)
    s = _check_scale(scale, name)
    th = _thresholds(threshold, name)
    unit = float(1 << VTH_SHIFT)
    mant = np.rint(th * s / unit)
    bad = mant > VTH_MANT_MAX
    if bad.any():
        at, idx = _index(bad)
        raise QuantizationError(
            f"{where}threshold{at} = {th[idx]:.6g} x scale {s:.6g} needs vth_mant = "
            f"{mant[idx]:.0f} > {VTH_MANT_MAX} (u17); the scale must be <= "
            f"{(VTH_MANT_MAX << VTH_SHIFT) / th[idx]:.6g}")
    bad = (th > 0) & (mant == 0)
    if bad.any():
        at, idx = _index(bad)
        raise QuantizationError(
            f"{where}threshold{at} = {th[idx]:.6g} x scale {s:.6g} rounds to vth_mant = 0 "
            f"(the neuron would fire whenever v > 0); the scale must be > "
            f"{unit / 2 / th[idx]:.6g}")
    err = np.abs(th - mant * unit / s)
    return Threshold(_out(mant.astype(np.int64)), _out(err))


class Bias(NamedTuple):
    """A quantized bias: ``bias_mant << bias_exp`` chip units per step.

    Attributes
    ----------
    bias_mant:
        s13 mantissa, -4096 … 4095 (int or int64 array).
    bias_exp:
        u3 exponent, 0 … 7 (int or int64 array; per neuron on the chip).
    error:
        ``|bias - (bias_mant << bias_exp) / scale|``, float units.
    """

    bias_mant: int | np.ndarray
    bias_exp: int | np.ndarray
    error: float | np.ndarray


def quantize_bias(bias, scale, *, name=None) -> Bias:
    """Quantize bias(es) to ``bias_mant << bias_exp``, each neuron on its own.

    Every exponent 0 … 7 is tried with the mantissa ``rint(bias * scale /
    2**exp)`` clipped to s13; the one with the smallest error wins, the
    smallest exponent on ties (zero is ``0 << 0``).

    Parameters
    ----------
    bias:
        Bias(es), float units; scalar or array.
    scale:
        The population's scale, > 0.
    name:
        Layer name for error messages.

    Returns
    -------
    Bias

    Raises
    ------
    QuantizationError
        For a non-finite bias; overflow (``rint(bias * scale / 128)``
        outside [-4096, 4095]); or nonzero biases that all round to 0.
    """
    where = _where("layer", name)
    s = _check_scale(scale, name)
    b = _finite(bias, "bias", name)
    x = b * s
    top = float(1 << BIAS_EXP_MAX)
    coarse = np.rint(x / top)
    bad = (coarse > BIAS_MANT_MAX) | (coarse < BIAS_MANT_MIN)
    if bad.any():
        at, idx = _index(bad)
        limit = (BIAS_MANT_MAX if x[idx] > 0 else -BIAS_MANT_MIN) * top / abs(b[idx])
        raise QuantizationError(
            f"{where}bias{at} = {b[idx]:.6g} x scale {s:.6g} = {x[idx]:.6g} chip units "
            f"overflows bias_mant << bias_exp (s13 mantissa, exponent <= {BIAS_EXP_MAX}: "
            f"range [{BIAS_MANT_MIN << BIAS_EXP_MAX}, {BIAS_MANT_MAX << BIAS_EXP_MAX}]); "
            f"the scale must be <= {limit:.6g}")
    steps = 2.0 ** np.arange(BIAS_EXP_MAX + 1)
    mants = np.clip(np.rint(x[..., None] / steps), BIAS_MANT_MIN, BIAS_MANT_MAX)
    errs = np.abs(x[..., None] - mants * steps)
    exp = np.argmin(errs, axis=-1)                    # first minimum: smallest exponent
    mant = np.take_along_axis(mants, exp[..., None], axis=-1)[..., 0]
    nonzero = b != 0
    if nonzero.any() and not (mant[nonzero] != 0).any():
        m = float(np.abs(x).max())
        raise QuantizationError(
            f"{where}all {int(nonzero.sum())} nonzero biases round to 0 (largest "
            f"|bias x scale| = {m:.6g} chip units, needs > 0.5); the scale {s:.6g} must be "
            f"> {0.5 * s / m:.6g}")
    err = np.abs(b - mant * 2.0 ** exp / s)
    return Bias(_out(mant.astype(np.int64)), _out(exp.astype(np.int64)), _out(err))


# --- layers and the report ---------------------------------------------------------------

def _max(value) -> float:
    a = np.asarray(value, dtype=np.float64)
    return float(a.max()) if a.size else 0.0


@dataclass(frozen=True)
class LayerQuantization:
    """Everything the quantizer decided for one population.

    Attributes
    ----------
    name:
        Layer name.
    scale:
        The :class:`ScaleChoice` (``scale.scale`` is the number).
    projections:
        ``{projection name: QuantizedProjection}`` of the weights into it.
    threshold:
        :class:`Threshold`.
    bias:
        :class:`Bias`, or None when the layer has none.
    u_decay, v_decay:
        :class:`Decay` of the current and the voltage.
    """

    name: str
    scale: ScaleChoice
    projections: dict
    threshold: Threshold
    bias: Bias | None
    u_decay: Decay
    v_decay: Decay

    @property
    def weight_max_abs_error(self) -> float:
        """Largest weight error over all projections, float units."""
        return max((p.max_abs_error for p in self.projections.values()), default=0.0)

    @property
    def weight_rms_rel_error(self) -> float:
        """RMS weight error over RMS weight, all projections pooled."""
        n = [p.w_mant.size for p in self.projections.values()]
        err = sum(k * p.rms_abs_error ** 2 for k, p in zip(n, self.projections.values()))
        ref = sum(k * p.rms_weight ** 2 for k, p in zip(n, self.projections.values()))
        return math.sqrt(err / ref) if ref else 0.0

    def row(self) -> dict:
        """The layer's summary (what :meth:`QuantizationReport.table` prints)."""
        def values(v):
            a = np.unique(np.asarray(v))
            return ",".join(str(int(i)) for i in a) if a.size <= 3 else \
                f"{int(a.min())}..{int(a.max())}"

        return {
            "layer": self.name,
            "scale": self.scale.scale,
            "w_shift": ",".join(str(p.w_shift) for p in self.projections.values()) or "-",
            "w_max_err": self.weight_max_abs_error,
            "w_rms_rel": self.weight_rms_rel_error,
            "du": values(self.u_decay.d),
            "u_decay_err": _max(self.u_decay.error),
            "dv": values(self.v_decay.d),
            "v_decay_err": _max(self.v_decay.error),
            "vth_mant": values(self.threshold.vth_mant),
            "vth_err": _max(self.threshold.error),
            "bias_err": _max(self.bias.error) if self.bias is not None else 0.0,
        }


def quantize_layer(name: str, threshold, weights_in, *, u_decay: Decay, v_decay: Decay,
                   bias=None, scale=None, headroom: float = DEFAULT_HEADROOM,
                   align_weights: bool = True, power_of_two: bool = False
                   ) -> LayerQuantization:
    """Quantize one population: scale, incoming weights, threshold, bias.

    Parameters
    ----------
    name:
        Layer name (used in errors and the report).
    threshold, bias:
        As for :func:`choose_scale`; ``bias=None`` means no bias.
    weights_in:
        ``{projection name: weights}`` (or a sequence or single array, as
        for :func:`choose_scale`); each projection becomes one synapse group.
    u_decay, v_decay:
        From :func:`decay_from_tau` or :func:`decay_from_factor`. A neuron
        without synaptic current state (snnTorch ``Leaky``) has ``u_decay =
        decay_from_factor(0)`` (d = 4096: u is the input of the step).
    scale:
        Use this scale instead of choosing one (still reported).
    headroom, align_weights, power_of_two:
        Passed to :func:`choose_scale`.

    Returns
    -------
    LayerQuantization
    """
    choice = choose_scale(threshold, weights_in, bias, headroom=headroom,
                          align_weights=align_weights, power_of_two=power_of_two, name=name)
    if scale is not None:
        s = _check_scale(scale, name)
        choice = ScaleChoice(s, "given", choice.limits,
                             choice.reasons + (f"overridden by the caller: s = {s:.6g}",),
                             choice.max_scale)
    s = choice.scale
    projections = {}
    for pname, w in _weight_list(weights_in):
        label = f"{name}/{pname}" if name is not None else pname
        projections[pname] = quantize_weights(w, s, name=label)
    return LayerQuantization(
        name=name, scale=choice, projections=projections,
        threshold=quantize_threshold(threshold, s, name=name),
        bias=None if bias is None else quantize_bias(bias, s, name=name),
        u_decay=u_decay, v_decay=v_decay)


_COLUMNS = [  # key, heading, format
    ("layer", "layer", "{}"),
    ("scale", "scale", "{:.4g}"),
    ("w_shift", "w_shift", "{}"),
    ("w_max_err", "w max err", "{:.3g}"),
    ("w_rms_rel", "w rms rel", "{:.3g}"),
    ("du", "du", "{}"),
    ("u_decay_err", "u decay err", "{:.3g}"),
    ("dv", "dv", "{}"),
    ("v_decay_err", "v decay err", "{:.3g}"),
    ("vth_mant", "vth_mant", "{}"),
    ("vth_err", "vth err", "{:.3g}"),
    ("bias_err", "bias err", "{:.3g}"),
]


@dataclass
class QuantizationReport:
    """The quantization error of a whole network, layer by layer.

    Errors are in float units of the source network: weights as largest
    absolute and RMS-relative error (RMS error / RMS weight, projections
    pooled), decays as absolute error of the per-step retention factor,
    threshold and bias as largest absolute error.

    Attributes
    ----------
    layers:
        :class:`LayerQuantization` per population, in order.
    """

    layers: list = field(default_factory=list)

    def add(self, layer: LayerQuantization) -> LayerQuantization:
        """Append a layer; returns it."""
        self.layers.append(layer)
        return layer

    def rows(self) -> list[dict]:
        """One summary dict per layer (see :meth:`LayerQuantization.row`)."""
        return [layer.row() for layer in self.layers]

    def table(self, projections: bool = False) -> str:
        """A plain-text table, one line per layer.

        With ``projections=True`` each layer is followed by one indented line
        per incoming projection (its shift and weight errors).
        """
        heads = [h for _, h, _ in _COLUMNS]
        lines = []
        for layer in self.layers:
            row = layer.row()
            lines.append([fmt.format(row[k]) for k, _, fmt in _COLUMNS])
            if projections:
                for pname, p in layer.projections.items():
                    cells = [""] * len(_COLUMNS)
                    cells[0] = f"  <- {pname}"
                    cells[2] = str(p.w_shift)
                    cells[3] = f"{p.max_abs_error:.3g}"
                    cells[4] = f"{p.rms_rel_error:.3g}"
                    lines.append(cells)
        widths = [max(len(c) for c in col) for col in zip(heads, *lines)]

        def fmt(cells):
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([fmt(heads), rule, *(fmt(c) for c in lines)])

    def __str__(self):
        return self.table()
