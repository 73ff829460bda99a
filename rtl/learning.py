"""The per-core learning engine (docs/architecture.md §11) as a standalone
component: trace and reward updates after a step, and the epoch walk over the
plastic synapses with one wide multiplier.

The engine owns the LEARN registers (region 8) and reaches every other memory
it needs through ports with :mod:`amaranth.lib.memory`'s synchronous protocol:
a read port returns ``data`` one clock after ``addr`` with ``en`` high and holds
it while ``en`` is low; a write port writes ``data`` at ``addr`` when ``en``.
SYNAPSE is one single-port RAM (:class:`~neuromesh.rtl.ram.SinglePortRAM`'s
signature, seen from its user). While ``busy`` the engine must own all of its
ports; a core grants them in its learning phase, after the barrier of a step
and before the host input of the next one (§11.7).

Operations (a one-clock pulse on ``step_start`` or ``epoch_start`` while
idle; ``done`` pulses in the last clock of the operation):

* **step** — what §11 does at the end of every step of a core whose engine
  is on (CONTROL.t_epoch > 0; otherwise nothing at all): the y traces
  (neurons 0, 1, … with their post events from ``post_event``), then the x
  traces (axons 0, 1, … with their pre events from ``pre_event``), the reward,
  ``epoch_phase + 1``, and when it reaches ``t_epoch`` the epoch walk, the
  clearing of x0/y0 and ``epoch_phase = 0``;
* **epoch** — the walk, the clearing and ``epoch_phase = 0`` alone.

Cycle cost, from the start pulse to ``done`` inclusive (pinned by
``tests/test_rtl_learning.py``)::

    step    n_neurons + n_axons + 3                    (+ epoch - 1 when one ends)
    epoch   3 + n_axons + max(n_axons, n_neurons) + R + 3*S_static
              + sum over plastic synapses of (5 + F + G + sum over its products of c)

with ``R`` the non-empty axon runs, ``S_static`` the non-plastic synapses in
axon runs and, per plastic synapse, ``F`` = 1 if another synapse follows it
in its run (the single-port SYNAPSE cannot be read in the clock it is
written), ``G`` = 1 if its group has products and per product ``c = 1``
if its dependency skips it, else ``2 + factors`` (its non-empty factor
slots). A trace word takes one clock in a three-stage pipeline: the word
and its decay factors registered, a 7x13 multiply per trace, then its draw
(the state one, two or three draws ahead, each a flat XOR network). A product takes one
clock for its microcode word, one per factor (the one s37 x s10 multiplier)
and one to accumulate. No memory's output reaches another memory's address
in the clock it is read: a run's first SYNAPSE word is read a clock after
its AXON word, a synapse's group, tag and target trace a clock after its
SYNAPSE word (``R`` and the fifth clock per synapse) and its group's first
rule word a clock after the group word (``G``). A step with the engine off
takes 2 clocks.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from neuromesh.chip import (
    ACC_BITS,
    ACC_FRAC,
    DECAY_ONE,
    LEARN_LAYOUTS,
    LEARN_WORD_LAYOUTS,
    LEARN_WORDS,
    LFSR_BITS,
    MAX_FACTORS,
    RULE_WORDS,
    TRACE_DECAY_BITS,
    TRACE_MAX,
    Geometry,
    LearnRegion,
    LearnWord,
    Region,
)

from .layouts import struct_layout, word_layout
from .lfsr import lfsr_draw

__all__ = ["LearningEngine", "learn_layout", "learn_word_layout", "addr_width",
           "single_port_signature", "register_port_signature"]

#: Width of a product before its scale shift: |s_mant * F^4| <= 8 * 256^4 = 2^35.
PRODUCT_BITS = 37
#: Width of a factor ``value + C``: [-256, 254].
FACTOR_BITS = 10


def learn_layout(region: LearnRegion) -> data.StructLayout:
    """The word of learning region ``region`` (LGROUP … TAG) at the spec's bit
    positions (reserved bits above the last field are not stored)."""
    return struct_layout(LEARN_LAYOUTS[region])


def learn_word_layout(word: LearnWord) -> data.StructLayout:
    """Word ``word`` of the LEARN region."""
    return struct_layout(LEARN_WORD_LAYOUTS[word])


def addr_width(depth: int) -> int:
    """Address width of a memory of ``depth`` words (at least two words, as in
    :class:`~neuromesh.rtl.core.NeuronCore`)."""
    return (max(depth, 2) - 1).bit_length()


def single_port_signature(shape, depth: int) -> wiring.Signature:
    """A single-port RAM seen from the RAM (``In(...)`` of it is its user)."""
    return wiring.Signature({
        "addr": In(range(max(depth, 2))),
        "wdata": In(shape),
        "we": In(1),
        "rdata": Out(shape),
    })


def register_port_signature() -> wiring.Signature:
    """Host access to the LEARN words, seen from the host: ``r_data`` is word
    ``addr`` (combinational); ``w_en`` writes ``w_data`` to it."""
    return wiring.Signature({
        "addr": Out(range(LEARN_WORDS)),
        "w_data": Out(64),
        "w_en": Out(1),
        "r_data": In(64),
    })


class LearningEngine(wiring.Component):
    """The learning engine of one core.

    Parameters
    ----------
    geometry:
        Sizes of the core's memories.
    axon_layout, synapse_layout:
        Word layouts of AXON and SYNAPSE as the core stores them (default: the
        spec's, :func:`~neuromesh.rtl.layouts.word_layout`; a core built with
        ``narrow_fields`` passes its narrowed ones). The engine uses
        ``syn_base``/``syn_len`` and ``target``/``w_mant``/``group`` and writes
        SYNAPSE words back whole with only ``w_mant`` changed.

    Attributes
    ----------
    step_start, epoch_start:
        Pulse while idle: run a step or an epoch (module docstring).
    busy:
        An operation runs.
    done:
        Pulse in the last clock of an operation.
    clear_state, clear_all:
        Pulse while idle: RESET STATE clears LSTATE (reward, epoch phase);
        with ``clear_all`` every LEARN register, LFSR included (§11.9). The
        memories are cleared by the core.
    learn:
        Host access to the LEARN words (region 8), while idle.
    enabled:
        CONTROL.t_epoch != 0: the engine is on. A core sets pre-event bits
        only then, so they are all clear whenever the engine is idle.
    pre_event, post_event:
        One bit per axon / neuron: the pre / post event of this step (§11.3).
        The core sets ``pre_event`` bits as packets arrive and writes every
        neuron's ``post_event`` bit in its neuron pass.
    pre_event_w:
        The step operation clears each pre-event bit as it consumes it.
    axon, lgroup, rule, xtrace_r, ytrace_r, tag_r:
        Read ports of AXON, LGROUP, RULE, XTRACE, YTRACE, TAG.
    xtrace_w, ytrace_w, tag_w:
        Write ports of XTRACE, YTRACE, TAG.
    synapse:
        The SYNAPSE single-port RAM.
    """

    def __init__(self, geometry: Geometry, *, axon_layout=None, synapse_layout=None):
        g = self.geometry = geometry
        self.axon_layout = axon_layout or word_layout(Region.AXON)
        self.synapse_layout = synapse_layout or word_layout(Region.SYNAPSE)
        xt, yt, tg = (learn_layout(r) for r in (LearnRegion.XTRACE, LearnRegion.YTRACE,
                                                   LearnRegion.TAG))
        aw_a, aw_n, aw_s = (addr_width(n) for n in (g.n_axons, g.n_neurons, g.n_synapses))
        super().__init__({
            "step_start": In(1),
            "epoch_start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "clear_state": In(1),
            "clear_all": In(1),
            "learn": In(register_port_signature()),
            "enabled": Out(1),
            "pre_event": In(ReadPort.Signature(addr_width=aw_a, shape=1)),
            "pre_event_w": In(WritePort.Signature(addr_width=aw_a, shape=1)),
            "post_event": In(ReadPort.Signature(addr_width=aw_n, shape=1)),
            "axon": In(ReadPort.Signature(addr_width=aw_a, shape=self.axon_layout)),
            "synapse": In(single_port_signature(self.synapse_layout, g.n_synapses)),
            "lgroup": In(ReadPort.Signature(addr_width=addr_width(g.n_groups),
                                            shape=learn_layout(LearnRegion.LGROUP))),
            "rule": In(ReadPort.Signature(addr_width=addr_width(RULE_WORDS),
                                          shape=learn_layout(LearnRegion.RULE))),
            "xtrace_r": In(ReadPort.Signature(addr_width=aw_a, shape=xt)),
            "xtrace_w": In(WritePort.Signature(addr_width=aw_a, shape=xt)),
            "ytrace_r": In(ReadPort.Signature(addr_width=aw_n, shape=yt)),
            "ytrace_w": In(WritePort.Signature(addr_width=aw_n, shape=yt)),
            "tag_r": In(ReadPort.Signature(addr_width=aw_s, shape=tg)),
            "tag_w": In(WritePort.Signature(addr_width=aw_s, shape=tg)),
        })

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        n_axons, n_neurons = g.n_axons, g.n_neurons

        # --- LEARN registers and their host port ------------------------------
        control = Signal(learn_word_layout(LearnWord.CONTROL))
        xcfg = Signal(learn_word_layout(LearnWord.XCFG))
        ycfg = Signal(learn_word_layout(LearnWord.YCFG))
        reward = Signal(signed(8))
        phase = Signal(6)
        lfsr = Signal(LFSR_BITS)
        lstate = Signal(learn_word_layout(LearnWord.LSTATE))
        m.d.comb += [lstate.reward.eq(reward), lstate.epoch_phase.eq(phase)]
        words = {LearnWord.CONTROL: control, LearnWord.XCFG: xcfg, LearnWord.YCFG: ycfg,
                 LearnWord.LSTATE: lstate, LearnWord.LFSR: lfsr}
        port = self.learn
        with m.Switch(port.addr):
            for word, sig in words.items():
                with m.Case(word):
                    m.d.comb += port.r_data.eq(Value.cast(sig))
        with m.If(self.clear_state | self.clear_all):
            m.d.sync += [reward.eq(0), phase.eq(0)]
            with m.If(self.clear_all):
                m.d.sync += [control.eq(0), xcfg.eq(0), ycfg.eq(0), lfsr.eq(0)]
        with m.Elif(port.w_en):
            with m.Switch(port.addr):
                for word, sig in words.items():
                    with m.Case(word):
                        if word == LearnWord.LSTATE:
                            layout = learn_word_layout(word)
                            new = data.View(layout, port.w_data[:layout.size])
                            m.d.sync += [reward.eq(new.reward), phase.eq(new.epoch_phase)]
                        else:
                            m.d.sync += sig.eq(port.w_data)

        # --- read ports: enabled only where an operation issues a read ---------
        read_ports = (self.pre_event, self.post_event, self.axon, self.lgroup, self.rule,
                      self.xtrace_r, self.ytrace_r, self.tag_r)
        for rp in read_ports:
            m.d.comb += rp.en.eq(0)

        def read(rp, addr):
            return [rp.addr.eq(addr), rp.en.eq(1)]

        # --- the LFSR: at most one draw per clock -------------------------------
        drawn = lfsr_draw(lfsr)
        draw = Signal()                                   # this clock takes a draw
        with m.If(draw):
            m.d.sync += lfsr.eq(drawn)

        # --- trace unit: one trace word (2 or 3 values) per clock, three stages --
        # Stage 0 (the word and its event on the read ports): registers each
        # value z, its factor 4096 - d and its impulse (or 0 without an
        # event). Stage 1 (the next clock): the products z * (4096 - d) and
        # whether each needs a draw. Stage 2 (the clock after): the draws in
        # slot order (y1, y2, y3 / x1, x2), and the write-back. An x word has an empty third slot
        # (z = 0 takes no draw). Stage 0 keeps the memory's output and the
        # x/y select of the decay out of the multipliers' inputs (the ECP5
        # 2x4 learning build's critical path, docs/synthesis.md).
        idx = Signal(range(max(n_axons, n_neurons) + 1))
        rew_hit = Signal()
        s1_z = [Signal(7, name=f"trace_z{k}") for k in range(3)]
        s1_d = [Signal(12, name=f"trace_d{k}") for k in range(3)]
        s1_imp = [Signal(7, name=f"trace_impulse{k}") for k in range(3)]
        s1_event = Signal()
        s1_flag = Signal()
        s1_load = Signal()
        s0_valid = Signal()
        s0_x = Signal()                                   # stage 0 holds an x word
        s0_idx = Signal.like(idx)
        s0_flag = Signal()
        s0_z = [Signal(7, name=f"trace_z{k}_q") for k in range(3)]
        s0_f = [Signal(TRACE_DECAY_BITS + 1, name=f"trace_f{k}_q") for k in range(3)]
        s0_add = [Signal(7, name=f"trace_add{k}_q") for k in range(3)]
        m.d.sync += s0_valid.eq(s1_load)
        with m.If(s1_load):
            m.d.sync += [s0_idx.eq(idx), s0_flag.eq(s1_flag | s1_event)]
            for k in range(3):
                m.d.sync += [s0_z[k].eq(s1_z[k]), s0_f[k].eq(DECAY_ONE - s1_d[k]),
                             s0_add[k].eq(Mux(s1_event, s1_imp[k], 0))]
        tq_valid = Signal()
        tq_x = Signal()                                   # stage 2 holds an x word
        tq_idx = Signal.like(idx)
        tq_flag = Signal()
        tq_p = [Signal(7 + TRACE_DECAY_BITS + 1, name=f"trace_p{k}") for k in range(3)]
        tq_need = [Signal(name=f"trace_need{k}") for k in range(3)]
        tq_add = [Signal(7, name=f"trace_add{k}") for k in range(3)]
        m.d.sync += tq_valid.eq(s0_valid)
        with m.If(s0_valid):
            m.d.sync += [tq_idx.eq(s0_idx), tq_flag.eq(s0_flag), tq_x.eq(s0_x)]
            for k in range(3):
                p = s0_z[k] * s0_f[k]
                m.d.sync += [tq_p[k].eq(p),
                             tq_need[k].eq(control.sr_trace & (p[:TRACE_DECAY_BITS] != 0)),
                             tq_add[k].eq(s0_add[k])]
        # The draws of a word in slot order: slot k's draw is the state after
        # as many draws as slots 0..k need, one of three flat networks
        # (lfsr_draw(lfsr, j), j = 1, 2, 3) picked by that count, rather than
        # three networks in series (the path into the trace memories' write
        # data).
        ahead = [lfsr, drawn, lfsr_draw(lfsr, 2), lfsr_draw(lfsr, 3)]
        t_new = []
        count = Const(0, 2)
        for k in range(3):
            count = count + tq_need[k]
            rand = Signal(TRACE_DECAY_BITS, name=f"trace_rand{k}")
            total = Signal(9, name=f"trace_sum{k}")
            new = Signal(7, name=f"trace_new{k}")
            with m.Switch(count):
                for j in (1, 2, 3):
                    with m.Case(j):
                        m.d.comb += rand.eq(ahead[j][:TRACE_DECAY_BITS])
            m.d.comb += [
                total.eq(((tq_p[k] + Mux(tq_need[k], rand, 0))
                          >> TRACE_DECAY_BITS) + tq_add[k]),
                new.eq(Mux(total > TRACE_MAX, TRACE_MAX, total)),
            ]
            t_new.append(new)
        after = Signal(LFSR_BITS, name="trace_lfsr")
        with m.Switch(count):
            for j in range(4):
                with m.Case(j):
                    m.d.comb += after.eq(ahead[j])
        with m.If(tq_valid):
            m.d.sync += lfsr.eq(after)
            with m.If(tq_x):
                m.d.comb += [self.xtrace_w.addr.eq(tq_idx), self.xtrace_w.en.eq(1),
                             self.xtrace_w.data.x1.eq(t_new[0]),
                             self.xtrace_w.data.x2.eq(t_new[1]),
                             self.xtrace_w.data.x0.eq(tq_flag)]
            with m.Else():
                m.d.comb += [self.ytrace_w.addr.eq(tq_idx), self.ytrace_w.en.eq(1),
                             self.ytrace_w.data.y1.eq(t_new[0]),
                             self.ytrace_w.data.y2.eq(t_new[1]),
                             self.ytrace_w.data.y3.eq(t_new[2]),
                             self.ytrace_w.data.y0.eq(tq_flag)]

        # --- epoch walk state ---------------------------------------------------
        sl = self.synapse_layout
        syn_i = Signal(range(g.n_synapses + 1))
        syn_end = Signal(range(2 * g.n_synapses + 1))
        syn_q = Signal(sl)
        ax_x = Signal(learn_layout(LearnRegion.XTRACE))   # the run's axon traces
        y_q = Signal(learn_layout(LearnRegion.YTRACE))
        tag_q = Signal(signed(8))
        grp = Signal(learn_layout(LearnRegion.LGROUP))
        prod_m = Signal(range(17))
        fslot = Signal(range(MAX_FACTORS))
        v = Signal(signed(PRODUCT_BITS))
        acc_w = Signal(signed(ACC_BITS))
        acc_t = Signal(signed(ACC_BITS))
        P = self.rule.data
        s_exp_q = Signal.like(P.s_exp)
        target_q = Signal.like(P.target)

        # Factor value of slot ``fsel`` of the current product, registered in
        # ``factor_q`` for the multiply of the next clock. Every slot's factor
        # is computed side by side from the rule word and the one of the
        # lowest slot in ``fsel_from`` is picked (AND-OR on its one-hot bit):
        # selecting the slot's variable first and then its value put two
        # multiplexers and the priority encoder in series after the rule
        # memory's output, the ECP5 build's critical path (docs/synthesis.md).
        fsel_from = Signal(MAX_FACTORS)                   # candidate slots
        fsel = Signal(range(MAX_FACTORS))
        slot_factor = []
        for k in range(MAX_FACTORS):
            var_k = P[f"var{k}"]
            value = Signal(signed(9), name=f"factor_value{k}")
            with m.Switch(var_k):
                for code, src in ((1, ax_x.x1), (2, ax_x.x2), (3, y_q.y1), (4, y_q.y2),
                                  (5, y_q.y3), (6, reward), (7, syn_q.w_mant), (8, tag_q)):
                    with m.Case(code):
                        m.d.comb += value.eq(src)
            f_k = Signal(signed(FACTOR_BITS), name=f"factor{k}")
            m.d.comb += f_k.eq(Mux(var_k == 0, 1, value + P[f"c{k}"]))
            slot_factor.append(f_k)
        first = Signal(MAX_FACTORS)                       # lowest set bit of fsel_from
        m.d.comb += first.eq(fsel_from & -fsel_from)
        factor = Signal(signed(FACTOR_BITS))
        m.d.comb += factor.eq(reduce(operator.or_, (Mux(first[k], slot_factor[k], 0)
                                                    for k in range(MAX_FACTORS))))
        factor_q = Signal(signed(FACTOR_BITS))
        product = Signal(signed(PRODUCT_BITS))
        m.d.comb += product.eq(v * factor_q)              # the one wide multiplier
        skip = Signal()
        m.d.comb += skip.eq((P.dep[0] & ~ax_x.x0) | (P.dep[1] & ~y_q.y0))
        # Empty factor slots take no clock: the next non-empty slot after
        # ``fslot`` (or the first one, entering from W_RULE).
        filled = Signal(MAX_FACTORS)
        m.d.comb += filled.eq(Cat(*(P[f"var{k}"] != 0 for k in range(MAX_FACTORS))))
        later = Signal(MAX_FACTORS)
        m.d.comb += later.eq(filled & ~((Const(2, MAX_FACTORS + 1) << fslot) - 1))

        def lowest(bits):
            out = Const(MAX_FACTORS - 1, 2)
            for k in reversed(range(MAX_FACTORS - 1)):
                out = Mux(bits[k], k, out)
            return out

        rule_addr = Signal(7)
        m.d.comb += rule_addr.eq(grp.rule_base + prod_m + 1)
        last_product = Signal()
        m.d.comb += last_product.eq(prod_m + 1 == grp.rule_len)

        # Rounding and clamping.
        frac = (1 << ACC_FRAC) - 1
        w_draw = Signal()
        tag_draw = Signal()
        m.d.comb += [w_draw.eq(control.sr_w & ((acc_w & frac) != 0)),
                     tag_draw.eq(control.sr_t & ((acc_t & frac) != 0))]
        # The tag's rounded accumulator is registered in W_ROUND, one clock
        # before W_WRITE uses it, so that the LFSR's draw network, this add,
        # the tag add and the clamp are not one path into TAG's write data
        # (the critical path of the ECP5 learning builds, docs/synthesis.md).
        # The tag's draw is the one after the weight's: from the state W_ROUND
        # leaves (one draw further when the weight draws). acc_t does not
        # change between W_ROUND and W_WRITE, so tag_draw is the same in both.
        tag_rand = Mux(w_draw, lfsr_draw(lfsr, 2), drawn)[:ACC_FRAC]
        acc_t_r = Signal(signed(ACC_BITS + 1))
        half = Signal(9)
        m.d.comb += half.eq(Const(1, 9) << (grp.w_bits - 1)[:3])
        lo = Signal(signed(10))
        hi = Signal(signed(10))
        m.d.comb += [lo.eq(Mux(grp.sign == 1, 0, -half)),
                     hi.eq(Mux(grp.sign == 2, 0, half - 1))]
        w_sum = Signal(signed(ACC_BITS - ACC_FRAC + 2))
        tag_sum = Signal(signed(ACC_BITS - ACC_FRAC + 2))
        m.d.comb += [w_sum.eq(syn_q.w_mant + (acc_w >> ACC_FRAC)),
                     tag_sum.eq(tag_q + (acc_t_r >> ACC_FRAC))]
        w_new = Signal(signed(8))
        tag_new = Signal(signed(8))
        m.d.comb += [w_new.eq(Mux(w_sum < lo, lo, Mux(w_sum > hi, hi, w_sum))),
                     tag_new.eq(Mux(tag_sum < -128, -128, Mux(tag_sum > 127, 127, tag_sum)))]

        # Reward update: r = clamp(trunc0(r, 4096 - d) + hit * impulse).
        r_mag = Signal(8)
        m.d.comb += r_mag.eq(Mux(reward < 0, -reward, reward))
        r_dec = Signal(8)
        m.d.comb += r_dec.eq((r_mag * (DECAY_ONE - control.reward_decay)) >> 12)
        # The decayed reward is registered every clock, so that the multiply
        # and the clamp of REWARD are not in one clock (the ECP5 1x2 build's
        # critical path after the factor select, 21.6 ns). It is never stale
        # when REWARD reads it: ``reward`` and ``reward_decay`` change only in
        # REWARD, on a host write or on a RESET, and each of those is at least
        # three clocks before the next REWARD (IDLE, then at least one clock of
        # Y_TRACE and one of X_TRACE).
        r_decayed = Signal(signed(9))
        m.d.sync += r_decayed.eq(Mux(reward < 0, -r_dec, r_dec))
        r_sum = Signal(signed(11))
        m.d.comb += r_sum.eq(r_decayed +
                             Mux(rew_hit & control.reward_en, control.reward_impulse, 0))

        m.d.comb += [self.busy.eq(1), self.enabled.eq(control.t_epoch != 0)]
        synapse = self.synapse

        def next_synapse():
            """Go on with the next synapse of the run, else the next axon, else
            the clearing pass."""
            with m.If(syn_i + 1 < syn_end):
                m.d.sync += syn_i.eq(syn_i + 1)
                m.next = "W_SYN"
            with m.Elif(idx == n_axons - 1):
                m.d.comb += [*read(self.xtrace_r, 0), *read(self.ytrace_r, 0)]
                m.d.sync += idx.eq(0)
                m.next = "CLEAR"
            with m.Else():
                m.d.comb += [*read(self.axon, idx + 1), *read(self.xtrace_r, idx + 1)]
                m.d.sync += idx.eq(idx + 1)
                m.next = "W_AXON"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.step_start):
                    with m.If(control.t_epoch != 0):
                        m.d.comb += [*read(self.ytrace_r, 0), *read(self.post_event, 0)]
                        m.d.sync += [idx.eq(0), rew_hit.eq(0)]
                        m.next = "Y_TRACE"
                    with m.Else():
                        m.next = "DONE"
                with m.Elif(self.epoch_start):
                    m.next = "W_START"

            # Trace passes: the word and the event of neuron/axon ``idx`` are on
            # the read ports; stage 1 takes them, the next word is read.
            with m.State("Y_TRACE"):
                yr = self.ytrace_r.data
                m.d.comb += [s1_load.eq(1), s1_event.eq(self.post_event.data),
                             s1_flag.eq(yr.y0)]
                for k in range(3):
                    m.d.comb += [s1_z[k].eq(yr[f"y{k + 1}"]), s1_d[k].eq(ycfg[f"y{k + 1}_decay"]),
                                 s1_imp[k].eq(ycfg[f"y{k + 1}_impulse"])]
                m.d.sync += s0_x.eq(0)
                with m.If(idx == n_neurons - 1):
                    m.d.comb += [*read(self.xtrace_r, 0), *read(self.pre_event, 0)]
                    m.d.sync += idx.eq(0)
                    m.next = "X_TRACE"
                with m.Else():
                    m.d.comb += [*read(self.ytrace_r, idx + 1), *read(self.post_event, idx + 1)]
                    m.d.sync += idx.eq(idx + 1)

            with m.State("X_TRACE"):
                xr, ev = self.xtrace_r.data, self.pre_event.data
                m.d.comb += [s1_load.eq(1), s1_event.eq(ev), s1_flag.eq(xr.x0),
                             self.pre_event_w.addr.eq(idx), self.pre_event_w.data.eq(0),
                             self.pre_event_w.en.eq(1)]
                for k in range(2):
                    m.d.comb += [s1_z[k].eq(xr[f"x{k + 1}"]), s1_d[k].eq(xcfg[f"x{k + 1}_decay"]),
                                 s1_imp[k].eq(xcfg[f"x{k + 1}_impulse"])]
                m.d.sync += s0_x.eq(1)
                with m.If((idx == control.reward_axon) & ev):
                    m.d.sync += rew_hit.eq(1)
                with m.If(idx == n_axons - 1):
                    m.next = "REWARD"      # stage 2 writes the last word the clock after
                with m.Else():
                    m.d.comb += [*read(self.xtrace_r, idx + 1), *read(self.pre_event, idx + 1)]
                    m.d.sync += idx.eq(idx + 1)

            with m.State("REWARD"):
                m.d.sync += reward.eq(Mux(r_sum < -128, -128, Mux(r_sum > 127, 127, r_sum)))
                with m.If(phase + 1 == control.t_epoch):
                    m.next = "W_DRAIN"
                with m.Else():
                    m.d.sync += phase.eq(phase + 1)
                    m.next = "DONE"

            # Stage 2 writes the last x word; W_START would read XTRACE word 0
            # in the same clock (the same word when there is one axon).
            with m.State("W_DRAIN"):
                m.next = "W_START"

            # Epoch walk (§11.7).
            with m.State("W_START"):
                m.d.comb += [*read(self.axon, 0), *read(self.xtrace_r, 0)]
                m.d.sync += idx.eq(0)
                m.next = "W_AXON"

            with m.State("W_AXON"):
                run = self.axon.data
                m.d.sync += [ax_x.eq(self.xtrace_r.data), syn_i.eq(run.syn_base),
                             syn_end.eq(run.syn_base + run.syn_len)]
                # Every read address here depends on ``idx`` alone, not on the
                # AXON word: the reads the next state may need are issued
                # whether or not the run is empty (the next axon's word and
                # traces, CLEAR's first words), and the ones it does not need
                # are harmless (after a run, ``next_synapse`` reads AXON and
                # XTRACE again). The run's first synapse word is read by W_SYN
                # from ``syn_i``, a clock later: no memory's output reaches
                # another memory's address in one clock (AXON's output into
                # XTRACE's and SYNAPSE's read addresses were the ECP5 learning
                # builds' critical paths, docs/synthesis.md).
                with m.If(idx == n_axons - 1):
                    m.d.comb += [*read(self.xtrace_r, 0), *read(self.ytrace_r, 0)]
                with m.Else():
                    m.d.comb += [*read(self.axon, idx + 1), *read(self.xtrace_r, idx + 1)]
                with m.If(run.syn_len != 0):
                    m.next = "W_SYN"
                with m.Elif(idx == n_axons - 1):
                    m.d.sync += idx.eq(0)
                    m.next = "CLEAR"
                with m.Else():
                    m.d.sync += idx.eq(idx + 1)

            with m.State("W_SYN"):
                m.d.comb += synapse.addr.eq(syn_i)
                m.next = "W_SYNLAT"

            # The synapse word is registered before its group, tag and target
            # trace are read (W_SYNQ): SYNAPSE's output (a core memory, spread
            # over many block RAMs on a full die) does not reach the engine's
            # memories' addresses in the same clock.
            with m.State("W_SYNLAT"):
                m.d.sync += syn_q.eq(synapse.rdata)
                m.next = "W_SYNQ"

            with m.State("W_SYNQ"):
                m.d.comb += [*read(self.lgroup, syn_q.group), *read(self.tag_r, syn_i),
                             *read(self.ytrace_r, syn_q.target)]
                m.next = "W_GROUP"

            with m.State("W_GROUP"):
                g_word = self.lgroup.data
                m.d.sync += [grp.eq(g_word), tag_q.eq(self.tag_r.data.tag),
                             y_q.eq(self.ytrace_r.data), acc_w.eq(0), acc_t.eq(0),
                             prod_m.eq(0)]
                # SYNAPSE's address does not depend on whether the group is
                # plastic (LGROUP's output): the next synapse word is read in
                # any case (a plastic synapse's W_SYN reads it again).
                m.d.comb += synapse.addr.eq(syn_i + 1)
                with m.If(~g_word.plastic):
                    with m.If(syn_i + 1 < syn_end):
                        m.d.sync += syn_i.eq(syn_i + 1)
                        m.next = "W_SYNLAT"
                    with m.Else():
                        next_synapse()
                with m.Elif(g_word.rule_len == 0):
                    m.next = "W_ROUND"
                with m.Else():
                    m.next = "W_RULE0"

            # The group's first rule word, read from the registered group word.
            with m.State("W_RULE0"):
                m.d.comb += read(self.rule, grp.rule_base)
                m.next = "W_RULE"

            with m.State("W_RULE"):
                m.d.comb += [fsel_from.eq(filled), fsel.eq(lowest(filled))]
                # W_ACC's shift and target come from registers, not from the
                # rule memory's output through the shifter and the 56-bit add.
                m.d.sync += [v.eq(P.s_mant), fslot.eq(fsel), factor_q.eq(factor),
                             s_exp_q.eq(P.s_exp), target_q.eq(P.target)]
                with m.If(~skip & (filled != 0)):
                    m.next = "W_MUL"
                with m.Elif(~skip):
                    m.next = "W_ACC"
                with m.Elif(last_product):
                    m.next = "W_ROUND"
                with m.Else():
                    m.d.comb += read(self.rule, rule_addr)
                    m.d.sync += prod_m.eq(prod_m + 1)

            with m.State("W_MUL"):
                m.d.comb += [fsel_from.eq(later), fsel.eq(lowest(later))]
                m.d.sync += [v.eq(product), fslot.eq(fsel), factor_q.eq(factor)]
                with m.If(later == 0):
                    m.next = "W_ACC"

            with m.State("W_ACC"):
                scaled = v << s_exp_q
                with m.If(target_q):
                    m.d.sync += acc_t.eq(acc_t + scaled)
                with m.Else():
                    m.d.sync += acc_w.eq(acc_w + scaled)
                m.d.sync += prod_m.eq(prod_m + 1)
                with m.If(last_product):
                    m.next = "W_ROUND"
                with m.Else():
                    m.d.comb += read(self.rule, rule_addr)
                    m.next = "W_RULE"

            with m.State("W_ROUND"):
                # The weight's draw first, then (in W_WRITE) the tag's.
                with m.If(w_draw):
                    m.d.comb += draw.eq(1)
                    m.d.sync += acc_w.eq(acc_w + drawn[:ACC_FRAC])
                m.d.sync += acc_t_r.eq(acc_t + Mux(tag_draw, tag_rand, 0))
                m.next = "W_WRITE"

            with m.State("W_WRITE"):
                m.d.comb += [draw.eq(tag_draw),
                             synapse.addr.eq(syn_i), synapse.wdata.eq(syn_q),
                             synapse.wdata.w_mant.eq(w_new), synapse.we.eq(1),
                             self.tag_w.addr.eq(syn_i), self.tag_w.data.tag.eq(tag_new),
                             self.tag_w.en.eq(1)]
                next_synapse()

            # x0 = 0 for every axon, y0 = 0 for every neuron: word ``idx`` is
            # on the read ports; write it back cleared, read the next.
            with m.State("CLEAR"):
                with m.If(idx < n_axons):
                    m.d.comb += [self.xtrace_w.addr.eq(idx), self.xtrace_w.en.eq(1),
                                 self.xtrace_w.data.eq(self.xtrace_r.data),
                                 self.xtrace_w.data.x0.eq(0)]
                with m.If(idx < n_neurons):
                    m.d.comb += [self.ytrace_w.addr.eq(idx), self.ytrace_w.en.eq(1),
                                 self.ytrace_w.data.eq(self.ytrace_r.data),
                                 self.ytrace_w.data.y0.eq(0)]
                with m.If(idx == max(n_axons, n_neurons) - 1):
                    m.d.sync += phase.eq(0)
                    m.next = "DONE"
                with m.Else():
                    with m.If(idx + 1 < n_axons):
                        m.d.comb += read(self.xtrace_r, idx + 1)
                    with m.If(idx + 1 < n_neurons):
                        m.d.comb += read(self.ytrace_r, idx + 1)
                    m.d.sync += idx.eq(idx + 1)

            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"

        return m

