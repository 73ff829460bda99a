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

    Stage 1 registers the decay factors, the threshold test on the stored v
    and the bias (with a delayed subtract reset folded in); stage 2 the two
    signed products ``x * (4096 - d)`` (the only multipliers, 24 x 13 bits)
    as their floor quotient by 4096 and a round-up bit; stage 3 adds them up:
    u (the 24-bit wrap) and v's decay plus the bias, with the round-up bits
    as carries in; stage 4 finishes v: the sum, the clamp (with the
    profile's floor), the threshold test, reset and refractory, the tests
    and the reset's subtraction side by side on the unclamped sum (docs/
    architecture.md §3.5 shows why that is exact).

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

    LATENCY = 4

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

        # Stage 1: decay factors, bias, the delayed reset's effects.
        s1 = Signal(data.StructLayout({
            "valid": 1, "tag": self.tag_width,
            "u": signed(U_BITS), "v": signed(U_BITS),
            "u_factor": unsigned(13), "v_factor": unsigned(13),
            "q": signed(U_BITS), "bias": signed(25), "vth": unsigned(17 + VTH_SHIFT),
            "not_fire_at": signed(19 + VTH_SHIFT),
            "refractory": unsigned(8), "refractory_delay": unsigned(8), "reset_subtract": 1,
            "reset_delay": 1, "threshold_ge": 1, "pending_zero": 1, "zero_fires": 1,
            "floor": signed(U_BITS),
        }))
        # A delayed reset is pending when the stored v passed the threshold
        # test (it fired last step and kept its potential). DELAYED_STORED:
        # it acts on the stored v before the decay (v - vth >= 0, or 0).
        # Otherwise subtract mode takes vth off the new sum: folded into the
        # bias here, so the later stages keep their adders; zero mode
        # replaces the sum by 0 (pending_zero). RETEST: the test of this step
        # is against 2 vth (fire_at).
        vth = Signal(unsigned(17 + VTH_SHIFT))
        fired = Signal()
        delayed = Signal()
        early = Signal()
        late = Signal()
        v_in = Signal(signed(U_BITS))
        # The threshold test ``v > vth - threshold_ge`` as one carry chain:
        # the sign of v - vth - 1 + threshold_ge, with threshold_ge the carry in.
        vth_s = Signal(signed(U_BITS))
        test = Signal(signed(U_BITS + 2))
        fire_at = Signal(signed(19 + VTH_SHIFT))
        bias = Signal(signed(21))
        m.d.comb += [
            vth.eq(i.vth_mant << VTH_SHIFT), vth_s.eq(vth),
            bias.eq(i.bias_mant << i.bias_exp),
            test.eq(i.v + ~vth_s + i.threshold_ge),
            fired.eq(~test[-1]),
            delayed.eq((i.reset_timing == ResetTiming.DELAYED)
                       | (i.reset_timing == ResetTiming.DELAYED_STORED)),
            early.eq(fired & (i.reset_timing == ResetTiming.DELAYED_STORED)),
            late.eq(fired & (i.reset_timing == ResetTiming.DELAYED)),
            # (v >= vth here: v - vth >= 0 fits)
            v_in.eq(Mux(early, Mux(i.reset_subtract, i.v - vth, 0), i.v)),
            fire_at.eq(Mux(fired & (i.reset_timing == ResetTiming.RETEST), vth << 1, vth)),
        ]
        m.d.sync += [
            s1.valid.eq(self.i_valid), s1.tag.eq(self.tag_in),
            s1.u.eq(i.u), s1.v.eq(v_in),
            s1.u_factor.eq(DECAY_ONE - i.du), s1.v_factor.eq(DECAY_ONE - i.dv),
            s1.q.eq(i.q),
            s1.bias.eq(Mux(late & i.reset_subtract, bias - vth, bias)),
            s1.vth.eq(vth),
            s1.not_fire_at.eq(~fire_at),
            s1.refractory.eq(i.refractory), s1.refractory_delay.eq(i.refractory_delay),
            s1.reset_subtract.eq(i.reset_subtract), s1.reset_delay.eq(delayed),
            s1.threshold_ge.eq(i.threshold_ge), s1.pending_zero.eq(late & ~i.reset_subtract),
            # A pending zero reset leaves v = 0, which passes the test only
            # as 0 >= 0 (fire_at is vth: no re-test in delayed mode).
            s1.zero_fires.eq((i.vth_mant == 0) & i.threshold_ge),
            s1.floor.eq(Mux(i.floor_mant != 0, -(i.floor_mant << FLOOR_SHIFT), -V_MAX)),
        ]

        # Stage 2: the signed products x * factor (|x| <= 2**23, factor <=
        # 4096) and their quotient by 4096 rounded toward zero: the floor
        # (the high bits) plus one for a negative product with a nonzero
        # remainder, added later as a carry in.
        s2 = Signal(data.StructLayout({
            "valid": 1, "tag": self.tag_width,
            "u_hi": signed(U_BITS), "u_up": 1, "v_hi": signed(U_BITS + 1), "v_up": 1,
            "q": signed(U_BITS), "bias": signed(25), "vth": unsigned(17 + VTH_SHIFT),
            "not_fire_at": signed(19 + VTH_SHIFT),
            "refractory": unsigned(8), "refractory_delay": unsigned(8), "reset_subtract": 1,
            "reset_delay": 1, "threshold_ge": 1, "pending_zero": 1, "zero_fires": 1,
            "floor": signed(U_BITS),
        }))
        for hi, up, x, factor in ((s2.u_hi, s2.u_up, s1.u, s1.u_factor),
                                  (s2.v_hi, s2.v_up, s1.v, s1.v_factor)):
            prod = Signal(signed(U_BITS + 14))
            m.d.comb += prod.eq(x * factor)
            m.d.sync += hi.eq(prod[DECAY_BITS:])
            if self.round_toward_zero:
                m.d.sync += up.eq(prod[-1] & (prod[:DECAY_BITS] != 0))
        m.d.sync += [
            s2.valid.eq(s1.valid), s2.tag.eq(s1.tag), s2.not_fire_at.eq(s1.not_fire_at),
            s2.q.eq(s1.q), s2.bias.eq(s1.bias), s2.vth.eq(s1.vth),
            s2.refractory.eq(s1.refractory), s2.refractory_delay.eq(s1.refractory_delay),
            s2.reset_subtract.eq(s1.reset_subtract), s2.reset_delay.eq(s1.reset_delay),
            s2.threshold_ge.eq(s1.threshold_ge), s2.pending_zero.eq(s1.pending_zero),
            s2.zero_fires.eq(s1.zero_fires), s2.floor.eq(s1.floor),
        ]

        # Stage 3: the two sums that do not depend on each other: u (its
        # truncation to 24 bits is the wrap) and v's decay plus the bias.
        s3 = Signal(data.StructLayout({
            "valid": 1, "tag": self.tag_width,
            "u": signed(U_BITS), "v_part": signed(U_BITS + 3),
            "vth": unsigned(17 + VTH_SHIFT), "not_fire_at": signed(19 + VTH_SHIFT),
            "threshold_ge": 1, "held": 1, "refractory": unsigned(8), "reset_subtract": 1,
            "reset_delay": 1, "pending_zero": 1, "zero_fires": 1, "max_fires": 1,
            "floor": signed(U_BITS),
        }))
        held = s2.refractory != 0
        m.d.sync += [
            s3.valid.eq(s2.valid), s3.tag.eq(s2.tag),
            s3.u.eq(s2.q + s2.u_hi + s2.u_up),
            s3.v_part.eq(s2.bias + s2.v_hi + s2.v_up),
            s3.vth.eq(s2.vth), s3.not_fire_at.eq(s2.not_fire_at),
            s3.threshold_ge.eq(s2.threshold_ge), s3.held.eq(held),
            # the refractory count if held, else the one a spike starts
            s3.refractory.eq(Mux(held, s2.refractory - 1, s2.refractory_delay)),
            s3.reset_subtract.eq(s2.reset_subtract), s3.reset_delay.eq(s2.reset_delay),
            s3.pending_zero.eq(s2.pending_zero), s3.zero_fires.eq(s2.zero_fires),
            # V_MAX passes the test iff fire_at < 2**23: fire_at is a
            # multiple of 64 (vth or 2 vth), so "<= V_MAX" and "< V_MAX" agree.
            s3.max_fires.eq(s2.not_fire_at[U_BITS - 1]),
            s3.floor.eq(s2.floor),
        ]

        # Stage 4: the sum of v, then in parallel from it: the clamp tests
        # (the floor and V_MAX), the threshold test and the subtract reset,
        # each one carry chain. A v clamped to V_MAX passes the test iff
        # V_MAX does (max_fires); one clamped to the floor never does (the
        # floor is below -2**13, the threshold at least -1); a pending zero
        # reset leaves 0 (zero_fires) and any reset of 0 is 0 (vth = 0 when
        # it fires).
        v_sum = Signal(signed(U_BITS + 3))
        m.d.comb += v_sum.eq(s3.v_part + s3.u)
        over = Signal()
        under = Signal()
        test = Signal(signed(U_BITS + 4))
        m.d.comb += [
            over.eq(~v_sum[-1] & (v_sum[U_BITS - 1:] != 0)),          # v_sum > V_MAX
            under.eq(v_sum < s3.floor),
            test.eq(v_sum + s3.not_fire_at + s3.threshold_ge),
        ]
        spike = Signal()
        m.d.comb += spike.eq(~s3.held & Mux(s3.pending_zero, s3.zero_fires,
                                            Mux(over, s3.max_fires, ~test[-1])))
        v_reset = Signal(signed(U_BITS))         # v after a spike's reset (not clamped low)
        with m.If(s3.reset_delay):
            m.d.comb += v_reset.eq(Mux(over, V_MAX, v_sum))
        with m.Elif(s3.reset_subtract):
            m.d.comb += v_reset.eq(Mux(over, V_MAX - s3.vth, v_sum - s3.vth))
        v_out = Signal(signed(U_BITS))
        with m.If(s3.held | s3.pending_zero):
            m.d.comb += v_out.eq(0)
        with m.Elif(spike):
            m.d.comb += v_out.eq(v_reset)
        with m.Elif(under):
            m.d.comb += v_out.eq(s3.floor)
        with m.Elif(over):
            m.d.comb += v_out.eq(V_MAX)
        with m.Else():
            m.d.comb += v_out.eq(v_sum)
        m.d.sync += [
            self.o_valid.eq(s3.valid), self.tag_out.eq(s3.tag),
            self.o.u.eq(s3.u), self.o.v.eq(v_out),
            self.o.refractory.eq(Mux(s3.held | spike, s3.refractory, 0)),
            self.o.spike.eq(spike),
        ]
        return m
