"""The neuron (compartment) datapath: docs/architecture.md §3 in gateware.

One update enters per clock and leaves :data:`NeuronDatapath.LATENCY` clocks
later. The golden model is :func:`neuromesh.emulator.neuron_step`; the tests
compare the two on random vectors over the full field ranges.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from neuromesh.chip import (
    DECAY_BITS,
    DECAY_ONE,
    FLOOR_SHIFT,
    U_BITS,
    V_MAX,
    VTH_SHIFT,
    ResetTiming,
)

__all__ = ["NEURON_IN", "NEURON_OUT", "NeuronDatapath"]

#: One update: the neuron's state, its accumulated input and its parameters
#: (profile fields resolved, bias still as mantissa/exponent).
NEURON_IN = data.StructLayout({
    "u": signed(U_BITS),
    "v": signed(U_BITS),
    "refractory": unsigned(8),
    "q": signed(U_BITS),
    "du": unsigned(13),
    "dv": unsigned(13),
    "vth_mant": unsigned(17),
    "refractory_delay": unsigned(8),
    "reset_subtract": unsigned(1),
    "reset_timing": unsigned(2),
    "threshold_ge": unsigned(1),
    "floor_mant": unsigned(9),
    "bias_mant": signed(13),
    "bias_exp": unsigned(3),
})

NEURON_OUT = data.StructLayout({
    "u": signed(U_BITS),
    "v": signed(U_BITS),
    "refractory": unsigned(8),
    "spike": unsigned(1),
})


class NeuronDatapath(wiring.Component):
    """Pipelined neuron update, one per clock, fixed latency.

    Stage 1 registers magnitudes and decay factors, and folds a delayed
    subtract reset into the bias; stage 2 the two products ``|x| * (4096 -
    d)`` (the only multipliers, 24 x 13 bits); stage 3 finishes the update:
    truncation toward zero, the 24-bit wrap of u, the v clamp (with the
    profile's floor), the threshold test, reset and refractory.

    Attributes
    ----------
    i_valid, i:
        An update entering the pipeline.
    o_valid, o:
        Its result, ``LATENCY`` clocks later.
    tag_in, tag_out:
        A caller-defined value carried along with the update (e.g. the
        neuron index), ``tag_width`` bits.
    """

    LATENCY = 3

    #: The spec rounds decays toward zero. Only a test-only variant that must
    #: be caught by co-simulation (the "mutation check") sets this False,
    #: which rounds toward minus infinity instead.
    round_toward_zero = True

    def __init__(self, tag_width: int = 1):
        self.tag_width = tag_width
        super().__init__({
            "i_valid": In(1), "i": In(NEURON_IN), "tag_in": In(tag_width),
            "o_valid": Out(1), "o": Out(NEURON_OUT), "tag_out": Out(tag_width),
        })

    def elaborate(self, platform):
        m = Module()
        i = self.i

        # Stage 1: magnitudes, signs, decay factors, bias.
        s1 = Signal(data.StructLayout({
            "valid": 1, "tag": self.tag_width,
            "u_mag": unsigned(U_BITS), "u_neg": 1, "v_mag": unsigned(U_BITS), "v_neg": 1,
            "u_factor": unsigned(13), "v_factor": unsigned(13),
            "q": signed(U_BITS), "bias": signed(25), "vth": unsigned(17 + VTH_SHIFT),
            "fire_at": unsigned(18 + VTH_SHIFT),
            "refractory": unsigned(8), "refractory_delay": unsigned(8), "reset_subtract": 1,
            "reset_delay": 1, "threshold_ge": 1, "pending_zero": 1, "floor": signed(U_BITS),
        }))
        # A delayed reset is pending when the stored v passed the threshold
        # test (it fired last step and kept its potential). DELAYED_STORED:
        # it acts on the stored v before the decay (v - vth >= 0, or 0).
        # Otherwise subtract mode takes vth off the new sum: folded into the
        # bias here, so stage 3 keeps its adders; zero mode replaces the sum
        # by 0 (pending_zero). RETEST: the test of this step is against
        # 2 vth (fire_at).
        vth = Signal(unsigned(17 + VTH_SHIFT))
        fired = Signal()
        delayed = Signal()
        early = Signal()
        late = Signal()
        v_in = Signal(signed(U_BITS))
        m.d.comb += [
            vth.eq(i.vth_mant << VTH_SHIFT),
            fired.eq(Mux(i.threshold_ge, i.v >= vth, i.v > vth)),
            delayed.eq((i.reset_timing == ResetTiming.DELAYED)
                       | (i.reset_timing == ResetTiming.DELAYED_STORED)),
            early.eq(fired & (i.reset_timing == ResetTiming.DELAYED_STORED)),
            late.eq(fired & (i.reset_timing == ResetTiming.DELAYED)),
            v_in.eq(Mux(early, Mux(i.reset_subtract, i.v - vth, 0), i.v)),
        ]
        m.d.sync += [
            s1.valid.eq(self.i_valid), s1.tag.eq(self.tag_in),
            s1.u_neg.eq(i.u < 0), s1.u_mag.eq(Mux(i.u < 0, -i.u, i.u)),
            s1.v_neg.eq(v_in < 0), s1.v_mag.eq(Mux(v_in < 0, -v_in, v_in)),
            s1.u_factor.eq(DECAY_ONE - i.du), s1.v_factor.eq(DECAY_ONE - i.dv),
            s1.q.eq(i.q),
            s1.bias.eq((i.bias_mant << i.bias_exp) - Mux(late & i.reset_subtract, vth, 0)),
            s1.vth.eq(vth),
            s1.fire_at.eq(Mux(fired & (i.reset_timing == ResetTiming.RETEST), vth << 1, vth)),
            s1.refractory.eq(i.refractory), s1.refractory_delay.eq(i.refractory_delay),
            s1.reset_subtract.eq(i.reset_subtract), s1.reset_delay.eq(delayed),
            s1.threshold_ge.eq(i.threshold_ge), s1.pending_zero.eq(late & ~i.reset_subtract),
            s1.floor.eq(Mux(i.floor_mant != 0, -(i.floor_mant << FLOOR_SHIFT), -V_MAX)),
        ]

        # Stage 2: the products (|x| < 2**24, factor <= 4096: 36 bits).
        s2 = Signal(data.StructLayout({
            "valid": 1, "tag": self.tag_width,
            "u_prod": unsigned(U_BITS + 13), "u_neg": 1,
            "v_prod": unsigned(U_BITS + 13), "v_neg": 1,
            "q": signed(U_BITS), "bias": signed(25), "vth": unsigned(17 + VTH_SHIFT),
            "fire_at": unsigned(18 + VTH_SHIFT),
            "refractory": unsigned(8), "refractory_delay": unsigned(8), "reset_subtract": 1,
            "reset_delay": 1, "threshold_ge": 1, "pending_zero": 1, "floor": signed(U_BITS),
        }))
        m.d.sync += [
            s2.valid.eq(s1.valid), s2.tag.eq(s1.tag), s2.fire_at.eq(s1.fire_at),
            s2.u_prod.eq(s1.u_mag * s1.u_factor), s2.u_neg.eq(s1.u_neg),
            s2.v_prod.eq(s1.v_mag * s1.v_factor), s2.v_neg.eq(s1.v_neg),
            s2.q.eq(s1.q), s2.bias.eq(s1.bias), s2.vth.eq(s1.vth),
            s2.refractory.eq(s1.refractory), s2.refractory_delay.eq(s1.refractory_delay),
            s2.reset_subtract.eq(s1.reset_subtract), s2.reset_delay.eq(s1.reset_delay),
            s2.threshold_ge.eq(s1.threshold_ge), s2.pending_zero.eq(s1.pending_zero),
            s2.floor.eq(s1.floor),
        ]

        # Stage 3: truncate toward zero (shift the magnitude, then restore the
        # sign), wrap u, clamp v between the floor and V_MAX, threshold, reset,
        # refractory.
        u_dec = Signal(signed(U_BITS + 1))
        v_dec = Signal(signed(U_BITS + 1))
        round_up = 0 if self.round_toward_zero else (1 << DECAY_BITS) - 1
        for dec, prod, neg in ((u_dec, s2.u_prod, s2.u_neg), (v_dec, s2.v_prod, s2.v_neg)):
            m.d.comb += dec.eq(Mux(neg, -((prod + round_up) >> DECAY_BITS), prod >> DECAY_BITS))
        u_new = Signal(signed(U_BITS))
        m.d.comb += u_new.eq(u_dec + s2.q)                 # truncation = the 24-bit wrap
        v_sum = Signal(signed(U_BITS + 3))
        m.d.comb += v_sum.eq(Mux(s2.pending_zero, 0, v_dec + u_new + s2.bias))
        v_clamped = Signal(signed(U_BITS))
        m.d.comb += v_clamped.eq(Mux(v_sum > V_MAX, V_MAX,
                                     Mux(v_sum < s2.floor, s2.floor, v_sum)))
        held = s2.refractory != 0
        spike = Signal()
        m.d.comb += spike.eq(~held & Mux(s2.threshold_ge, v_clamped >= s2.fire_at,
                                         v_clamped > s2.fire_at))
        v_out = Signal(signed(U_BITS))
        ref_out = Signal(8)
        with m.If(held):
            m.d.comb += [v_out.eq(0), ref_out.eq(s2.refractory - 1)]
        with m.Elif(spike):
            m.d.comb += [v_out.eq(Mux(s2.reset_delay, v_clamped,
                                      Mux(s2.reset_subtract, v_clamped - s2.vth, 0))),
                         ref_out.eq(s2.refractory_delay)]
        with m.Else():
            m.d.comb += [v_out.eq(v_clamped), ref_out.eq(0)]
        m.d.sync += [
            self.o_valid.eq(s2.valid), self.tag_out.eq(s2.tag),
            self.o.u.eq(u_new), self.o.v.eq(v_out), self.o.refractory.eq(ref_out),
            self.o.spike.eq(spike),
        ]
        return m
