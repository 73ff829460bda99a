"""What quantization cost, layer by layer: the compiled chip (emulator)
against the float reference on the same input spikes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuromesh.emulator import Emulator

from .lower import Compiled
from .reference import simulate

__all__ = ["LayerAgreement", "Comparison", "compare_with_reference"]


@dataclass(frozen=True)
class LayerAgreement:
    """Spike counts of one population on the chip and in the float reference.

    ``coincident`` counts spikes at the same neuron and step in both;
    ``count_ratio`` is chip / reference (1.0 = same number of spikes).
    """

    population: str
    reference_spikes: int
    chip_spikes: int
    coincident: int

    @property
    def count_ratio(self) -> float:
        return self.chip_spikes / self.reference_spikes if self.reference_spikes else float(
            self.chip_spikes == 0)

    @property
    def coincident_fraction(self) -> float:
        """Fraction of the reference's spikes the chip reproduces exactly."""
        return self.coincident / self.reference_spikes if self.reference_spikes else 1.0

    def row(self) -> str:
        return (f"{self.population:<24} {self.reference_spikes:>11} {self.chip_spikes:>11} "
                f"{self.count_ratio:>8.3f} {self.coincident_fraction:>11.1%}")


@dataclass
class Comparison:
    """Both runs: per-population spikes ``bool [steps, batch, size]``, the
    emulator's result, the per-layer agreement and the emulator's activity
    counters (docs/architecture.md §13, uint32 ``[batch, n_cores, 7]``)."""

    reference: dict
    chip: dict
    result: object
    layers: list
    counters: object = None

    def table(self) -> str:
        """The per-layer agreement as printable text."""
        head = (f"{'population':<24} {'float spikes':>11} {'chip spikes':>11} {'ratio':>8} "
                f"{'same step':>11}")
        return "\n".join([head, *(a.row() for a in self.layers)])


def compare_with_reference(compiled: Compiled, inputs: dict, steps: int | None = None, *,
                           progress: bool = False) -> Comparison:
    """Run ``inputs`` (per input port, 0/1 ``[steps, batch, size]``) through
    the float reference and the compiled chip, recording every population's
    spikes on both (the chip's by probing every neuron)."""
    net = compiled.network
    ref = simulate(net, inputs, steps)
    x = compiled.chip_inputs(inputs, steps)
    pops = list(net.populations)
    index = {p: compiled.neurons(p) for p in pops}
    probe = np.concatenate([index[p] for p in pops])
    emu = Emulator(compiled.image, batch=x.shape[1])
    result = emu.run(x, probe=probe, record=("spikes",), progress=progress)
    chip, first, layers = {}, 0, []
    for p in pops:
        n = index[p].size
        chip[p] = result.probes["spikes"][:, :, first:first + n]
        first += n
        layers.append(LayerAgreement(p, int(ref[p].sum()), int(chip[p].sum()),
                                     int((ref[p] & chip[p]).sum())))
    return Comparison(reference=ref, chip=chip, result=result, layers=layers,
                      counters=emu.counters())
