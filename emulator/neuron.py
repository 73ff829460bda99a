"""The neuron (compartment) arithmetic of docs/architecture.md §3, vectorized.

These functions are the golden model of the neuron datapath: the emulator
runs them on whole ``[batch, neurons]`` arrays and the RTL tests compare the
gateware against them vector by vector. Everything is int64; the widest
intermediate is ``|x| * factor < 2**35``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuromesh.chip import DECAY_BITS, DECAY_ONE, U_BITS, V_MAX, VTH_SHIFT, Region

__all__ = ["wrap24", "decay", "NeuronParams", "NeuronState", "neuron_step"]

_WRAP_SHIFT = 64 - U_BITS
_ROUND = DECAY_ONE - 1


def wrap24(x):
    """Two's-complement wrap of int64 values to 24 bits (returns a new array)."""
    x = np.asarray(x, dtype=np.int64)
    return (x << _WRAP_SHIFT) >> _WRAP_SHIFT


def decay(x, factor):
    """``trunc0(x, factor) = sign(x) * ((|x| * factor) >> 12)``, rounding toward zero.

    ``factor`` is ``4096 - d`` for a decay constant ``d``. Computed as an
    arithmetic shift of ``x * factor`` with a +4095 bias for negative
    products, which is the same as rounding the quotient toward zero.
    """
    p = np.multiply(x, factor, dtype=np.int64)
    p += (p >> 63) & _ROUND
    p >>= DECAY_BITS
    return p


@dataclass
class NeuronParams:
    """Per-neuron parameters, already resolved through each neuron's profile.

    All arrays are int64 of one shape (the neuron axis), except ``subtract``
    (bool).

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
    """

    u_factor: np.ndarray
    v_factor: np.ndarray
    bias: np.ndarray
    vth: np.ndarray
    refractory: np.ndarray
    subtract: np.ndarray

    @classmethod
    def from_config(cls, config) -> NeuronParams:
        """Parameters of every neuron of a chip, flattened core-major."""
        prof = config[Region.PROFILE]
        neur = config[Region.NEURON]
        core = np.arange(neur["profile"].shape[0])[:, None]

        def per_neuron(field):
            return prof[field][core, neur["profile"]].reshape(-1)

        return cls(
            u_factor=DECAY_ONE - per_neuron("du"),
            v_factor=DECAY_ONE - per_neuron("dv"),
            bias=(neur["bias_mant"] << neur["bias_exp"]).reshape(-1),
            vth=per_neuron("vth_mant") << VTH_SHIFT,
            refractory=per_neuron("refractory"),
            subtract=per_neuron("reset_subtract").astype(bool))

    def take(self, index) -> NeuronParams:
        """The parameters of a subset of neurons."""
        return NeuronParams(**{k: getattr(self, k)[index] for k in self.__dataclass_fields__})


@dataclass
class NeuronState:
    """Dynamic state of a set of neurons: int64 arrays ``[..., neurons]``."""

    u: np.ndarray
    v: np.ndarray
    refractory: np.ndarray

    def copy(self) -> NeuronState:
        return NeuronState(self.u.copy(), self.v.copy(), self.refractory.copy())


def neuron_step(state: NeuronState, q, p: NeuronParams, *, refractory=True,
                reset_mode=None):
    """Advance ``state`` by one timestep in place; return the spikes (bool).

    ``q`` is the accumulated synaptic input of this step (any int64 values;
    only its low 24 bits matter). ``refractory=False`` skips the refractory
    logic, which is exact when no counter is running and no profile in ``p``
    has a refractory delay. ``reset_mode`` may be ``"zero"`` or
    ``"subtract"`` when every neuron in ``p`` uses that mode (a shortcut);
    ``None`` handles a mix.
    """
    u = decay(state.u, p.u_factor)
    u += q
    u <<= _WRAP_SHIFT
    u >>= _WRAP_SHIFT
    v = decay(state.v, p.v_factor)
    v += u
    v += p.bias
    np.clip(v, -V_MAX, V_MAX, out=v)
    spikes = v > p.vth
    if refractory:
        held = state.refractory > 0
        v[held] = 0
        spikes &= ~held
    if reset_mode == "zero":
        v[spikes] = 0
    elif reset_mode == "subtract":
        v -= np.where(spikes, p.vth, 0)
    else:
        v -= np.where(spikes, np.where(p.subtract, p.vth, v), 0)
    if refractory:
        ref = state.refractory - held
        np.copyto(ref, np.broadcast_to(p.refractory, ref.shape), where=spikes)
        state.refractory = ref
    state.u = u
    state.v = v
    return spikes
