"""Throughput of the RTL in clock cycles (deterministic, not timed): each
extra neuron costs one clock, each extra synaptic operation one clock; the
learning phase costs what docs/rtl.md says."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

import numpy as np  # noqa: E402
from rtl_cycles import cycles_per_step, workload  # noqa: E402

from neuromesh import ChipBuilder, Geometry  # noqa: E402


def test_one_neuron_update_and_one_synaptic_op_per_clock():
    """The pipeline without overlap: a step costs n + e + constant clocks."""
    def cycles(n, e):
        return cycles_per_step(workload(1, 1, n, e, n, 40), n, steps=2, overlap=False)

    base = cycles(8, 8)
    assert cycles(16, 8) - base == 8       # 8 more neurons: 8 more clocks
    assert cycles(8, 40) - base == 32      # 32 more synapses in the run: 32 more clocks


def test_overlap_costs_the_longer_of_the_pass_and_the_synapse_work():
    """With overlap, a step costs about max(n, e) + constant clocks (the
    packet of neuron 0 reaches the synapse unit a fixed 12 clocks or so
    into the pass); a word for the bank the pass is using (odd delay) waits
    for the pass to leave it."""
    def cycles(n, e, delay=0, overlap=True):
        return cycles_per_step(workload(1, 1, n, e, n, 96, delay=delay), n, steps=2,
                               overlap=overlap)

    pass_only = cycles(64, 0)
    assert cycles(64, 16) == cycles(64, 48) == pass_only          # synaptic work hidden
    assert pass_only - cycles(32, 0) == 32                          # one neuron per clock
    assert cycles(16, 96) == cycles(64, 96)                         # the pass hidden
    assert cycles(16, 96) - cycles(16, 48) == 48                    # one op per clock
    assert cycles(64, 96) < cycles(64, 96, overlap=False) - 48      # n + e -> max(n, e)
    # Odd delays meet the pass's bank: the ops wait for the pass to end,
    # then run one per clock; even delays do not wait.
    assert cycles(64, 48, delay=2) == pass_only
    assert cycles(64, 48, delay=1) > pass_only
    assert cycles(64, 96, delay=1) - cycles(64, 48, delay=1) == 48


def learning_workload(n, axons, t_epoch):
    """rtl_cycles' one-core workload (neuron 0 fires every step and sends a
    packet to axon 0, whose run holds 4 static synapses) on a geometry of
    ``n`` neurons and ``axons`` axons, with the learning engine at
    ``t_epoch`` (None: no learning configuration at all)."""
    g = Geometry(rows=1, cols=1, n_neurons=n, n_axons=axons, n_synapses=8, n_fanout=4,
                 n_profiles=2, n_groups=1, delay_slots=4)
    b = ChipBuilder(g)
    c = b.core(0, 0)
    c.profile(0, du=4096, dv=4096, vth_mant=0)
    c.profile(1, du=4096, dv=4096, vth_mant=2**17 - 1)
    c.group(0, w_shift=0)
    c.neurons(0, profile=0, bias_mant=1)
    c.neurons(range(1, n), profile=1)
    c.synapses(axon=0, target=np.arange(4) % n, w_mant=1)
    c.route(0, 0, 0, 0)
    if t_epoch is not None:
        c.learning(t_epoch=t_epoch)
    return b.build()


def test_learning_phase_costs_the_engine_plus_two_clocks():
    """docs/rtl.md: engine off -> no learning phase, cycles as the default
    build; each step's trace update n_neurons + n_axons + 3 clocks plus two
    controller clocks (LEARN, and the registered barrier's one clock); a
    step that ends an epoch adds epoch - 1, with
    epoch = 3 + n_axons + max(n_axons, n_neurons) + R + 3 * S_static (one
    non-empty run, R = 1, of four static synapses)."""
    for n, axons in ((8, 4), (16, 8)):
        plain = cycles_per_step(learning_workload(n, axons, None), n)
        assert cycles_per_step(learning_workload(n, axons, 0), n, learning=True) == plain
        traces = cycles_per_step(learning_workload(n, axons, 63), n, learning=True)
        assert traces - plain == n + axons + 3 + 2
        epoch = 3 + axons + max(axons, n) + 1 + 3 * 4
        every = cycles_per_step(learning_workload(n, axons, 1), n, learning=True)
        assert every - traces == epoch - 1
