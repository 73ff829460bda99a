"""Bit-accurate numpy emulator of the neuromesh chip: the golden model.

Same chip image in, identical spikes and neuron state out, every timestep, as
the RTL and a board. See :class:`Emulator`.
"""

from .emulator import PROBE_FIELDS, Emulator, RunResult
from .neuron import NeuronParams, NeuronState, decay, neuron_step, wrap24

__all__ = ["Emulator", "RunResult", "PROBE_FIELDS",
           "NeuronParams", "NeuronState", "neuron_step", "decay", "wrap24"]
