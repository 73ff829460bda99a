"""The activity counters of docs/architecture.md §13, predicted from the
chip image and the spike counts of a run -- exactly what the RTL counts.

Every counter is linear in events the emulator already knows: the spikes of
each neuron, the host input spikes of each channel, the number of steps and
the number of epochs each core's learning engine ended. The tables here
turn those into the per-core counts.
"""

from __future__ import annotations

import numpy as np

from neuromesh.chip import COUNTER_BITS, PASS_LATENCY, Counter, Region

__all__ = ["CounterTables"]


class CounterTables:
    """Per-neuron and per-input-port weights of the counters, from a decoded
    image (:class:`~neuromesh.config.ChipConfig`).

    ``compact`` maps global neuron indices to the emulator's active-neuron
    indices (-1: never active, so never spikes).
    """

    def __init__(self, config, compact):
        g = config.geometry
        self.geometry = g
        n_total = g.n_cores * g.n_neurons
        active = np.flatnonzero(compact >= 0)
        #: Core of each active neuron.
        self.core = active // g.n_neurons
        neur, fan, ax = config[Region.NEURON], config[Region.FANOUT], config[Region.AXON]
        syn_len = ax["syn_len"].astype(np.int64)                      # [C, A]
        flen = neur["fanout_len"].astype(np.int64).reshape(-1)        # [C * N]
        #: Packets each active neuron's spike sends (its whole fan-out).
        self.packets = flen[active]
        # Every fan-out entry of every neuron that can spike.
        core_n, neuron = np.nonzero(neur["fanout_len"] > 0)
        lens = neur["fanout_len"][core_n, neuron].astype(np.int64)
        start = np.cumsum(lens) - lens
        entry = (np.repeat(neur["fanout_base"][core_n, neuron].astype(np.int64) - start, lens)
                 + np.arange(int(lens.sum())))
        ecore = np.repeat(core_n, lens)
        src = compact[np.repeat(core_n * g.n_neurons + neuron, lens)]
        keep = src >= 0
        entry, ecore, src = entry[keep], ecore[keep], src[keep]
        to_host = fan["to_host"][ecore, entry] != 0
        dx = fan["x"][ecore, entry].astype(np.int64)
        dy = fan["y"][ecore, entry].astype(np.int64)
        sx, sy = ecore % g.cols, ecore // g.cols
        # XY routing: |dx| + |dy| links; a host-bound packet travels to
        # router (0, 0) and leaves through its west port (not a link).
        hops = np.where(to_host, sx + sy, np.abs(dx - sx) + np.abs(dy - sy))
        #: Hops of all packets of one spike of each active neuron.
        self.hops = np.bincount(src, weights=hops, minlength=active.size).astype(np.int64) \
            if src.size else np.zeros(active.size, np.int64)
        # Synaptic ops: each core-bound packet walks its axon's run at the target.
        dest = dy * g.cols + dx
        axon = fan["axon"][ecore, entry].astype(np.int64)
        core_bound = ~to_host
        self.e_src = src[core_bound]
        self.e_dest = dest[core_bound]
        self.e_len = syn_len[self.e_dest, axon[core_bound]]
        ports = np.array([(p.channel, p.core, p.axon) for p in config.image.inputs],
                         dtype=np.int64).reshape(-1, 3)
        self.p_channel = ports[:, 0]
        self.p_dest = (ports[:, 1] >> 4) * g.cols + (ports[:, 1] & 0xF)
        self.p_len = syn_len[self.p_dest, ports[:, 2]] if ports.size else np.zeros(0, np.int64)
        del n_total

    def counts(self, spikes, inputs, steps, epochs=None, plastic=None) -> np.ndarray:
        """The counters, uint32 ``[batch, n_cores, len(Counter)]``.

        ``spikes``: int64 ``[batch, n_active]`` spikes of each active neuron;
        ``inputs``: int64 ``[batch, n_inputs]`` host input spikes per channel;
        ``steps``: steps run; ``epochs``/``plastic``: int64 ``[n_cores]``
        epochs ended and plastic synapses walked per epoch, or None.
        """
        g = self.geometry
        b = spikes.shape[0]
        out = np.zeros((b, g.n_cores, len(Counter)), dtype=np.int64)
        for c in range(g.n_cores):
            mine = self.core == c
            s = spikes[:, mine]
            out[:, c, Counter.SPIKES] = s.sum(axis=1)
            out[:, c, Counter.PACKETS] = s @ self.packets[mine]
            out[:, c, Counter.HOPS] = s @ self.hops[mine]
            into = self.e_dest == c
            syn = spikes[:, self.e_src[into]] @ self.e_len[into]
            port = self.p_dest == c
            if port.any():
                syn = syn + inputs[:, self.p_channel[port]] @ self.p_len[port]
            out[:, c, Counter.SYNOPS] = syn
        out[:, :, Counter.UPDATES] = steps * g.n_neurons
        out[:, :, Counter.CLOCKS] = (steps * (g.n_neurons + PASS_LATENCY)
                                     + out[:, :, Counter.SYNOPS])
        if epochs is not None:
            out[:, :, Counter.LEARN] = epochs * plastic
        return (out & ((1 << COUNTER_BITS) - 1)).astype(np.uint32)
