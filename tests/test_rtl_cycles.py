"""Throughput of the RTL in clock cycles (deterministic, not timed): each
extra neuron costs one clock, each extra synaptic operation one clock."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

from rtl_cycles import cycles_per_step, workload  # noqa: E402


def test_one_neuron_update_and_one_synaptic_op_per_clock():
    def cycles(n, e):
        return cycles_per_step(workload(1, 1, n, e, n, 40), n, steps=2)

    base = cycles(8, 8)
    assert cycles(16, 8) - base == 8       # 8 more neurons: 8 more clocks
    assert cycles(8, 40) - base == 32      # 32 more synapses in the run: 32 more clocks
