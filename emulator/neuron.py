"""The neuron (compartment) arithmetic of docs/architecture.md §3, vectorized.

These functions are the golden model of the neuron datapath: the emulator
runs them on whole ``[batch, neurons]`` arrays and the RTL tests compare the
gateware against them vector by vector. They work on int64 arrays and, for
the emulator's speed, on int32 arrays (half the memory traffic): every value
of the contract fits 24 bits, and the one wide intermediate, the decay
product ``|x| * factor < 2**37``, is formed exactly in float64
(:func:`decay`). The results are identical in both dtypes
(tests/test_neuron.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuromesh.chip import (
    DECAY_BITS,
    DECAY_ONE,
    FLOOR_SHIFT,
    U_BITS,
    V_MAX,
    VTH_SHIFT,
    Region,
    ResetTiming,
)

__all__ = ["wrap24", "decay", "NeuronParams", "NeuronState", "neuron_step"]

_WRAP_SHIFT = 64 - U_BITS
_ROUND = DECAY_ONE - 1
#: From this many values up, :func:`neuron_step` clamps with np.clip.
_CLIP_MIN = 4096
#: The clamp bounds in each state dtype (a bound of the array's own type
#: keeps np.clip in its vectorized loop without a conversion per call).
_V_BOUNDS = {np.dtype(t): (t(-V_MAX), t(V_MAX)) for t in (np.int32, np.int64)}


def _scale(factor):
    """``factor / 4096`` in float64 (exact: a division by a power of two): a
    Python float for a single factor (converted at no cost by the ufunc), an
    array for per-neuron factors."""
    factor = np.asarray(factor)
    if factor.ndim:
        return factor / np.float64(DECAY_ONE)
    return int(factor) / DECAY_ONE


def wrap24(x):
    """Two's-complement wrap of int64 values to 24 bits (returns a new array)."""
    x = np.asarray(x, dtype=np.int64)
    return (x << _WRAP_SHIFT) >> _WRAP_SHIFT


def decay(x, factor, out=None):
    """``trunc0(x, f) = sign(x) * ((|x| * f) >> 12)``, rounding toward zero.

    ``factor`` is ``4096 - d`` for a decay constant ``d``. Computed as an
    arithmetic shift of ``x * factor`` with a +4095 bias for negative
    products, which is the same as rounding the quotient toward zero.

    An int32 ``x`` (an s24 value, as every u and v is) gives an int32 result,
    computed as ``x * (factor / 4096)`` in float64, where every step is
    exact: ``|x * factor| < 2**37`` needs 37 of the 53 mantissa bits, and
    dividing by 4096 only changes the exponent; the cast back to int32 (C's
    conversion) truncates toward zero. ``out``: an int32 array of the
    result's shape to write into (``x`` itself is allowed).
    """
    x = np.asarray(x)
    if x.dtype == np.int32:
        # One ufunc pass: int32 -> float64, the exact product, and the
        # truncating cast back to int32, chunk by chunk in numpy's buffers
        # (no float64 temporary of the whole array).
        if out is None:
            out = np.empty(np.broadcast_shapes(x.shape, np.shape(factor)), np.int32)
        return np.multiply(x, _scale(factor), out=out, casting="unsafe")
    p = np.multiply(x, factor, dtype=np.int64)
    p += (p >> 63) & _ROUND
    p >>= DECAY_BITS
    if out is not None:
        out[...] = p
        return out
    return p


@dataclass
class NeuronParams:
    """Per-neuron parameters, already resolved through each neuron's profile.

    All arrays are int64 of one shape (the neuron axis), except the flags
    ``subtract`` and ``delayed`` (bool).

    Attributes
    ----------
    u_factor, v_factor:
        ``4096 - du`` and ``4096 - dv``.
    bias:
        ``bias_mant << bias_exp``.
    vth:
        ``vth_mant << 6``.
    refractory:
        Steps v is held at 0 after a spike.
    subtract:
        True for subtract reset, False for reset to zero.
    fire_above:
        A neuron spikes when ``v > fire_above``: ``vth`` for the strict
        test, ``vth - 1`` with ``threshold_ge`` (``v >= vth``).
    floor:
        Lower clamp of v: ``-(floor_mant << 14)``, or ``-V_MAX`` when
        ``floor_mant`` is 0.
    delayed:
        ``reset_delay``: a spike's reset is applied in the next step.
    stored:
        ``reset_timing`` DELAYED_STORED: a delayed reset acts on the stored
        v before its decay (instead of on the new sum).
    retest:
        ``reset_timing`` RETEST: an immediate reset, but a stored v that
        passes the test makes the next test count the threshold twice.
    """

    u_factor: np.ndarray
    v_factor: np.ndarray
    bias: np.ndarray
    vth: np.ndarray
    refractory: np.ndarray
    subtract: np.ndarray
    fire_above: np.ndarray | None = None
    floor: np.ndarray | None = None
    delayed: np.ndarray | None = None
    stored: np.ndarray | None = None
    retest: np.ndarray | None = None

    def __post_init__(self):
        # The defaults are the profile fields at zero: strict test, no floor,
        # immediate reset.
        if self.fire_above is None:
            self.fire_above = np.asarray(self.vth, dtype=np.int64)
        if self.floor is None:
            self.floor = np.full(np.shape(self.vth), -V_MAX, dtype=np.int64)
        if self.delayed is None:
            self.delayed = np.zeros(np.shape(self.vth), dtype=bool)
        if self.stored is None:
            self.stored = np.zeros(np.shape(self.vth), dtype=bool)
        if self.retest is None:
            self.retest = np.zeros(np.shape(self.vth), dtype=bool)

    @classmethod
    def from_config(cls, config) -> NeuronParams:
        """Parameters of every neuron of a chip, flattened core-major."""
        prof = config[Region.PROFILE]
        neur = config[Region.NEURON]
        core = np.arange(neur["profile"].shape[0])[:, None]

        def per_neuron(field):
            return prof[field][core, neur["profile"]].reshape(-1)

        vth = per_neuron("vth_mant") << VTH_SHIFT
        timing = per_neuron("reset_timing")
        return cls(
            u_factor=DECAY_ONE - per_neuron("du"),
            v_factor=DECAY_ONE - per_neuron("dv"),
            bias=(neur["bias_mant"] << neur["bias_exp"]).reshape(-1),
            vth=vth,
            refractory=per_neuron("refractory"),
            subtract=per_neuron("reset_subtract").astype(bool),
            fire_above=vth - per_neuron("threshold_ge"),
            floor=np.where(per_neuron("floor_mant") != 0,
                           -(per_neuron("floor_mant") << FLOOR_SHIFT), -V_MAX),
            delayed=np.isin(timing, (ResetTiming.DELAYED, ResetTiming.DELAYED_STORED)),
            stored=timing == ResetTiming.DELAYED_STORED,
            retest=timing == ResetTiming.RETEST)

    def take(self, index) -> NeuronParams:
        """The parameters of a subset of neurons."""
        return NeuronParams(**{k: getattr(self, k)[index] for k in self.__dataclass_fields__})

    def astype(self, dtype) -> NeuronParams:
        """The integer parameters in ``dtype`` (every value fits int32, §3.5),
        each collapsed to a scalar where all neurons share it -- a broadcast
        scalar costs no memory traffic in :func:`neuron_step`."""
        out = {}
        for name in self.__dataclass_fields__:
            a = np.asarray(getattr(self, name))
            if a.dtype != np.bool_:
                a = a.astype(dtype)
            if a.size and (a == a.flat[0]).all():
                a = a.reshape(-1)[:1].reshape(())
            out[name] = a
        return NeuronParams(**out)

    def fires_at_rest(self) -> np.ndarray:
        """Neurons that spike with u = v = 0 and no input: ``v >= 0`` with a
        zero threshold. Every other neuron with zero state stays inert."""
        return self.fire_above < 0

    def modes(self) -> dict:
        """Which optional parts of the update these parameters use (for
        :func:`neuron_step`'s shortcuts)."""
        return dict(refractory=bool(self.refractory.any()),
                    reset_mode=(None if self.subtract.any() and not self.subtract.all()
                                else "subtract" if self.subtract.any() else "zero"),
                    floor=bool((self.floor != -V_MAX).any()),
                    delayed=bool(self.delayed.any() or self.retest.any()))


@dataclass
class NeuronState:
    """Dynamic state of a set of neurons: int64 arrays ``[..., neurons]``."""

    u: np.ndarray
    v: np.ndarray
    refractory: np.ndarray

    def copy(self) -> NeuronState:
        return NeuronState(self.u.copy(), self.v.copy(), self.refractory.copy())


def neuron_step(state: NeuronState, q, p: NeuronParams, *, refractory=True,
                reset_mode=None, floor=True, delayed=True):
    """Advance ``state`` by one timestep in place; return the spikes (bool).

    ``state`` holds int64 or int32 arrays (int32: every u, v in s24), ``q``
    the accumulated synaptic input of this step in the same dtype (any
    values; only their low 24 bits matter); for int32, ``p`` should be int32
    too (:meth:`NeuronParams.astype`). The keyword flags are shortcuts for
    parameter sets that do not use a part of the update (all default to the
    general form; :meth:`NeuronParams.modes` computes them):
    ``refractory=False`` skips the refractory logic, which is exact when no
    counter is running and no profile in ``p`` has a refractory delay;
    ``reset_mode`` may be ``"zero"`` or ``"subtract"`` when every neuron in
    ``p`` uses that mode (``None`` handles a mix); ``floor=False`` when no
    neuron has a floor; ``delayed=False`` when every reset is immediate
    (``reset_timing`` 0).
    """
    # An int32 state is updated in its own arrays (no temporaries); int64
    # (small states) in new ones.
    own = state.u.dtype == np.int32 and state.u.flags.writeable
    u = decay(state.u, p.u_factor, out=state.u if own else None)
    u += q                                   # int32 wraps mod 2**32: the low 24 bits stay exact
    shift = 8 * u.dtype.itemsize - U_BITS
    u <<= shift
    u >>= shift
    v_prev, pending, fire_above = state.v, None, p.fire_above
    if delayed:
        # The stored v still passes the test: the neuron fired last step and
        # its reset is pending, or (RETEST) it was left above the threshold.
        passed = state.v > p.fire_above
        if p.retest.any():             # ... then this step's test counts vth twice
            fire_above = fire_above + np.where(p.retest & passed, p.vth, 0)
        pending = p.delayed & passed
        if not pending.any():
            pending = None
        elif p.stored.any():           # a delayed reset on the stored v, before its decay
            early = pending & p.stored
            v_prev = np.where(early, np.where(p.subtract, state.v - p.vth, 0), state.v)
            pending &= ~p.stored
    own = v_prev.dtype == np.int32 and v_prev.flags.writeable
    v = decay(v_prev, p.v_factor, out=v_prev if own else None)
    v += u
    bias = np.asarray(p.bias)
    if bias.ndim or bias:              # (a shared zero bias adds nothing)
        v += bias
    if pending is not None:             # ... or to the new sum
        v = np.where(pending, np.where(p.subtract, v - p.vth, 0), v)
    low, high = _V_BOUNDS.get(v.dtype, (-V_MAX, V_MAX))
    if floor:
        low = np.asarray(p.floor)
        if low.dtype != v.dtype and low.ndim == 0:
            low = v.dtype.type(low)
    if v.size < _CLIP_MIN:
        # (two ufuncs: np.clip's Python wrapper costs more than the work on
        # a core's worth of neurons)
        np.maximum(v, low, out=v)
        np.minimum(v, high, out=v)
    else:
        # (np.clip: one pass, where maximum and minimum with a scalar run
        # unvectorized: 3x the time on a batch of 64 x 522 int32)
        np.clip(v, low, high, out=v)
    spikes = v > fire_above
    if refractory:
        held = state.refractory > 0
        v[held] = 0
        spikes &= ~held
    now = spikes & ~p.delayed if delayed else spikes
    if reset_mode == "zero":
        np.copyto(v, 0, where=now)
    elif reset_mode == "subtract":
        v -= np.where(now, p.vth, 0)
    else:
        v -= np.where(now, np.where(p.subtract, p.vth, v), 0)
    if refractory:
        ref = state.refractory - held
        np.copyto(ref, np.broadcast_to(p.refractory, ref.shape), where=spikes)
        state.refractory = ref
    state.u = u
    state.v = v
    return spikes
