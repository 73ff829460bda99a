"""The emulator's run loop on torch tensors (``Emulator(image, backend="torch")``).

The same tables and the same arithmetic as the numpy loop, so the same bits:
integers everywhere except the dense products, which use the float32 or
float64 matrices that §10.5 proves exact. The accumulator ring is int64
here: one step adds below ``2**42`` per neuron and a slot is cleared every
``delay_slots`` steps, so it never overflows and no wrap-around arithmetic
is relied on; every 24-bit wrap is done with masks. State stays on the
device during a run and is copied back to the emulator's numpy arrays at its
end (``read_state``, probes and outputs read those). CPU and CUDA alike;
integer scatter-adds (``index_add_``) are exact in any order.

torch is an optional dependency: ``pip install 'neuromesh[torch]'``.
"""

from __future__ import annotations

import numpy as np

from neuromesh.chip import DECAY_BITS, U_BITS, V_MAX

from .synapses import DensePropagator, SparsePropagator, as_slice

__all__ = ["TorchRunner", "load_torch"]

_LOW = (1 << DECAY_BITS) - 1
_MASK24 = (1 << U_BITS) - 1


def load_torch():
    """Import torch, or explain how to get it."""
    try:
        import torch
    except ImportError:
        raise ImportError("backend='torch' needs PyTorch: pip install 'neuromesh[torch]' "
                          "(torch==2.13.0, the CPU wheel)") from None
    return torch


def _wrap24(x):
    """Two's-complement wrap to 24 bits with masks only (no overflow anywhere)."""
    w = x & _MASK24
    return w - ((w >> (U_BITS - 1)) << U_BITS)


def _decay(x, factor):
    """trunc0 on int32 s24 values, as :func:`~.neuron.decay` (split products)."""
    p = (x & _LOW) * factor
    p += (x >> 31) & _LOW
    p >>= DECAY_BITS
    p += (x >> DECAY_BITS) * factor
    return p


class TorchRunner:
    """Device copies of an :class:`~.emulator.Emulator`'s state and tables."""

    def __init__(self, emu, device=None):
        torch = self.torch = load_torch()
        self.device = torch.device(device if device is not None else "cpu")
        self.emu = emu

        def t(a, dtype=None):
            a = np.asarray(a)
            out = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            return out if dtype is None else out.to(dtype)

        p = emu.params
        self.p = {name: t(getattr(p, name)) for name in p.__dataclass_fields__}
        # (the numpy loop may hold a small state in int64; here it is always int32)
        for name in ("u_factor", "v_factor", "bias", "vth", "fire_above", "floor"):
            self.p[name] = self.p[name].to(torch.int32)
        self.p["refractory"] = self.p["refractory"].to(torch.int16)
        self.blocks = []
        for row_sel, prop in emu._blocks:
            if isinstance(prop, DensePropagator):
                cols = prop.cols if isinstance(prop.cols, slice) else t(prop.cols, torch.int64)
                self.blocks.append(("dense", row_sel, t(prop.w), prop.delays, prop.n_cols, cols))
            else:
                assert isinstance(prop, SparsePropagator)
                tables = [(d, t(indptr), t(col, torch.int64), t(w, torch.int64) << shift)
                          for d, indptr, col, w, shift in prop.csr_tables()]
                self.blocks.append(("sparse", row_sel, tables))
        def index(a):
            """A slice where the numpy loop has one, else an index tensor."""
            sel = as_slice(np.asarray(a))
            return sel if isinstance(sel, slice) else t(a, torch.int64)

        self.n_row_neurons = emu._row_neurons.size
        self.n_row_inputs = emu._row_inputs.size
        self.n_out = emu._out_neuron.size
        self.row_neurons = index(emu._row_neurons)
        self.row_inputs = index(emu._row_inputs)
        self.out_neuron = index(emu._out_neuron)
        self.out_channel = index(emu._out_channel)
        self.load_state()

    def load_state(self):
        """Copy the emulator's numpy state to the device."""
        torch, e = self.torch, self.emu
        self.u = torch.from_numpy(e.state.u.astype(np.int32)).to(self.device)
        self.v = torch.from_numpy(e.state.v.astype(np.int32)).to(self.device)
        self.ref = torch.from_numpy(e.state.refractory.copy()).to(self.device)
        self.ring = torch.from_numpy(e._acc.astype(np.int64)).to(self.device)

    def store_state(self):
        """Copy the device state back into the emulator's numpy arrays."""
        e = self.emu
        e.state.u = self.u.cpu().numpy().astype(e._itype)
        e.state.v = self.v.cpu().numpy().astype(e._itype)
        e.state.refractory = self.ref.cpu().numpy().copy()
        e._acc = self.ring.cpu().numpy().astype(e._itype)

    # -- the neuron update (§3.2), as emulator/neuron.py:neuron_step ------------------

    def neuron_step(self, q, refractory, reset_mode, floor, delayed):
        torch, p = self.torch, self.p
        u = _wrap24(_decay(self.u, p["u_factor"]).to(torch.int64) + q).to(torch.int32)
        v = _decay(self.v, p["v_factor"])
        v += u
        v += p["bias"]
        if delayed:
            # (no data-dependent branch: on a GPU it would wait for the device)
            pending = p["delayed"] & (self.v > p["fire_above"])
            v = torch.where(pending, torch.where(p["subtract"], v - p["vth"],
                                                 torch.zeros_like(v)), v)
        lo = p["floor"] if floor else torch.tensor(-V_MAX, dtype=torch.int32,
                                                   device=self.device)
        v = torch.minimum(torch.maximum(v, lo), torch.tensor(V_MAX, dtype=torch.int32,
                                                             device=self.device))
        spikes = v > p["fire_above"]
        if refractory:
            held = self.ref > 0
            v = v.masked_fill(held, 0)
            spikes &= ~held
        now = spikes & ~p["delayed"] if delayed else spikes
        if reset_mode == "zero":
            v = v.masked_fill(now, 0)
        elif reset_mode == "subtract":
            v = v - torch.where(now, p["vth"], 0)
        else:
            v = v - torch.where(now, torch.where(p["subtract"], p["vth"], v), 0)
        if refractory:
            ref = self.ref - held.to(self.ref.dtype)
            self.ref = torch.where(spikes, p["refractory"], ref)
        self.u, self.v = u, v
        return spikes

    # -- propagation ---------------------------------------------------------------------

    def propagate(self, rows, step):
        """Add ``rows`` (bool ``[B, n_rows]``: spikes of ``step``, host input of
        ``step + 1``) into the ring slots of step ``step + 1 + delay``."""
        torch = self.torch
        d_slots, batch, n = self.ring.shape
        base = step + 1
        for block in self.blocks:
            sel = rows[:, block[1]]
            if block[0] == "dense":
                _, _, w, delays, n_cols, cols = block
                c = (sel.to(w.dtype) @ w).to(torch.int64)
                for i, d in enumerate(delays):
                    part = c[:, i * n_cols:(i + 1) * n_cols] if len(delays) > 1 else c
                    target = self.ring[(base + d) % d_slots]
                    if isinstance(cols, slice):
                        target[:, cols] += part
                    else:
                        target.index_add_(1, cols, part)
                continue
            brow, r = torch.nonzero(sel, as_tuple=True)
            if r.numel() == 0:
                continue
            for d, indptr, col, weight in block[2]:
                start = indptr[r]
                lens = indptr[r + 1] - start
                total = int(lens.sum())
                if total == 0:
                    continue
                offset = torch.repeat_interleave(start - (torch.cumsum(lens, 0) - lens), lens)
                pos = offset + torch.arange(total, device=self.device)
                idx = col[pos]
                if batch > 1:
                    idx = idx + torch.repeat_interleave(brow * n, lens)
                self.ring[(base + d) % d_slots].view(-1).index_add_(0, idx, weight[pos])

    # -- the run loop (as Emulator.run) -----------------------------------------------

    def run(self, x, steps, pslots, pidx, probes_np, outputs_np, modes):
        """Advance ``steps`` steps; fill ``outputs_np``/``probes_np``; return the
        spike counts ``([B, active], [B, input rows])`` as numpy int64."""
        torch, e = self.torch, self.emu
        dev = self.device
        b = e.batch
        d_slots = e.geometry.delay_slots
        k = self.n_row_neurons
        rows = torch.zeros((b, k + self.n_row_inputs), dtype=torch.bool, device=dev)
        spike_counts = torch.zeros((b, e.active.size), device=dev,
                                   dtype=torch.int32 if steps < 1 << 31 else torch.int64)
        outputs = torch.zeros(outputs_np.shape, dtype=torch.bool, device=dev)
        probes = {name: torch.zeros(arr.shape, dtype=getattr(torch, _PROBE_TYPES[name]),
                                    device=dev)
                  for name, arr in probes_np.items()}
        pslots_t = torch.from_numpy(pslots).to(dev)
        pidx_t = torch.from_numpy(np.asarray(pidx, np.int64)).to(dev)
        modes = dict(modes)
        refractory_always = modes.pop("refractory")

        def host_input(t):
            xt = x[t]
            xt = xt if xt.dtype == np.bool_ else xt != 0
            return torch.from_numpy(np.ascontiguousarray(xt)).to(dev)

        if x is not None and steps:
            rows[:, k:] = host_input(0)[:, self.row_inputs]
            self.propagate(rows, e.step - 1)
        for t in range(steps):
            slot = e.step % d_slots
            spikes = self.neuron_step(self.ring[slot], refractory=refractory_always
                                      or e.step < e._refractory_until, **modes)
            self.ring[slot].zero_()
            spike_counts += spikes
            if self.n_out:
                outputs[t][:, self.out_channel] = spikes[:, self.out_neuron]
            for name, arr in probes.items():
                src = {"spikes": spikes, "u": self.u, "v": self.v,
                       "refractory": self.ref}[name]
                arr[t][:, pslots_t] = src[:, pidx_t].to(arr.dtype)
            rows[:, :k] = spikes[:, self.row_neurons]
            if x is not None:
                if t + 1 < steps:
                    rows[:, k:] = host_input(t + 1)[:, self.row_inputs]
                else:
                    rows[:, k:] = False
            self.propagate(rows, e.step)
            e.step = (e.step + 1) & 0xFFFFFFFF
        outputs_np[...] = outputs.cpu().numpy()
        for name, arr in probes.items():
            probes_np[name][...] = arr.cpu().numpy()
        self.store_state()
        counts = np.zeros((b, self.n_row_inputs), np.int64)
        if x is not None:
            counts += e._channel_counts(x)[:, e._row_inputs]
        return spike_counts.cpu().numpy(), counts


#: torch dtype (by name) of each probe field, as PROBE_FIELDS.
_PROBE_TYPES = {"spikes": "bool", "u": "int32", "v": "int32", "refractory": "int16"}
