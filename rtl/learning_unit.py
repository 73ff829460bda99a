"""The learning engine with the memories only it uses (LGROUP, RULE, XTRACE,
YTRACE, TAG and the per-step event bits), host access to regions 8–13 and
RESET: the piece a :class:`~neuromesh.rtl.core.NeuronCore` instantiates to
learn (docs/architecture.md §11, docs/rtl.md).

The core keeps AXON and SYNAPSE and lends their ports to the unit while it
is ``busy``; it forwards host accesses of regions 8–13 on the same
``cfg_req``/``cfg_resp`` protocol as its own, reports packet arrivals
(``pre_hit``) and the neuron pass's spikes (``post_*``), and pulses ``start``
after the barrier of every step.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out

from neuromesh.chip import RULE_WORDS, Geometry, LearnRegion, Region

from .core import CFG_REQUEST
from .layouts import word_layout
from .learning import LearningEngine, addr_width, learn_layout, single_port_signature

__all__ = ["LearningUnit"]

_REGIONS = (LearnRegion.LGROUP, LearnRegion.RULE, LearnRegion.XTRACE, LearnRegion.YTRACE,
            LearnRegion.TAG)


class LearningUnit(wiring.Component):
    """A core's learning engine and its memories.

    Parameters
    ----------
    geometry, axon_layout, synapse_layout:
        As for :class:`~neuromesh.rtl.learning.LearningEngine`.
    rule_ram_style:
        Synthesis attribute ``ram_style`` for the RULE memory (e.g.
        ``"distributed"``: on ECP5 its 64 words otherwise take two DP16KD).

    Attributes
    ----------
    start:
        Pulse while idle, after the barrier of a step: the engine's step
        operation (traces, reward, epoch when one ends).
    busy:
        The engine runs or the memories are being cleared; the unit then owns
        ``axon`` and ``synapse``.
    enabled:
        The engine is on (CONTROL.t_epoch != 0).
    clear_start, clear_all:
        RESET (§9.7, §11.9): XTRACE, YTRACE, TAG, the event bits, reward and
        epoch phase := 0; with ``clear_all`` also LGROUP, RULE and every LEARN
        word. One word of every affected memory per clock.
    pre_hit, pre_axon:
        A packet for ``pre_axon`` arrived (injection or delivery phase).
    post_valid, post_neuron, post_spike:
        The neuron pass updated ``post_neuron``; ``post_spike``: it spiked.
    axon, synapse:
        The core's AXON read port and SYNAPSE RAM, used while ``busy``.
    cfg_req, cfg_resp:
        Host accesses of regions 8–13 (``offset`` within the region), only
        while idle; a read answers on ``cfg_resp`` one or two clocks later.
    """

    def __init__(self, geometry: Geometry, *, axon_layout=None, synapse_layout=None,
                 rule_ram_style: str | None = None):
        g = self.geometry = geometry
        self.rule_ram_style = rule_ram_style
        self.axon_layout = axon_layout or word_layout(Region.AXON)
        self.synapse_layout = synapse_layout or word_layout(Region.SYNAPSE)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "enabled": Out(1),
            "clear_start": In(1),
            "clear_all": In(1),
            "pre_hit": In(1),
            "pre_axon": In(range(max(g.n_axons, 2))),
            "post_valid": In(1),
            "post_neuron": In(range(max(g.n_neurons, 2))),
            "post_spike": In(1),
            "axon": In(ReadPort.Signature(addr_width=addr_width(g.n_axons),
                                          shape=self.axon_layout)),
            "synapse": In(single_port_signature(self.synapse_layout, g.n_synapses)),
            "cfg_req": In(stream.Signature(CFG_REQUEST)),
            "cfg_resp": Out(stream.Signature(64)),
        })

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        m.submodules.engine = eng = LearningEngine(g, axon_layout=self.axon_layout,
                                                   synapse_layout=self.synapse_layout)
        sizes = {LearnRegion.LGROUP: g.n_groups, LearnRegion.RULE: RULE_WORDS,
                 LearnRegion.XTRACE: g.n_axons, LearnRegion.YTRACE: g.n_neurons,
                 LearnRegion.TAG: g.n_synapses}
        mems, rports, wports = {}, {}, {}
        for region in _REGIONS:
            # The engine never reads and writes one word in one clock.
            attrs = {"no_rw_check": 1}
            if region == LearnRegion.RULE and self.rule_ram_style:
                attrs["ram_style"] = self.rule_ram_style
            mem = Memory(shape=learn_layout(region), depth=max(sizes[region], 2), init=[],
                         attrs=attrs)
            m.submodules[f"mem_{region.name.lower()}"] = mems[region] = mem
            rports[region], wports[region] = mem.read_port(), mem.write_port()
        pre = Memory(shape=1, depth=max(g.n_axons, 2), init=[])
        post = Memory(shape=1, depth=max(g.n_neurons, 2), init=[])
        m.submodules.mem_pre_event, m.submodules.mem_post_event = pre, post
        pre_r, pre_w, post_r, post_w = (pre.read_port(), pre.write_port(), post.read_port(),
                                        post.write_port())

        # --- clearing (RESET) -------------------------------------------------
        largest = max(*sizes.values(), g.n_axons, g.n_neurons)
        clearing = Signal()
        clear_i = Signal(range(largest + 1))
        clear_every = Signal()
        with m.If(self.clear_start):
            m.d.sync += [clearing.eq(1), clear_i.eq(0), clear_every.eq(self.clear_all)]
        with m.Elif(clearing):
            m.d.sync += clear_i.eq(clear_i + 1)
            with m.If(clear_i == largest - 1):
                m.d.sync += clearing.eq(0)
        m.d.comb += [eng.clear_state.eq(self.clear_start & ~self.clear_all),
                     eng.clear_all.eq(self.clear_start & self.clear_all)]

        m.d.comb += [self.busy.eq(eng.busy | clearing), self.enabled.eq(eng.enabled),
                     eng.step_start.eq(self.start)]

        # --- host accesses --------------------------------------------------------
        req = self.cfg_req
        resp_pending = Signal()
        resp_region = Signal(4)
        resp_data = Signal(64)
        resp_valid = Signal()
        m.d.comb += req.ready.eq(~self.busy & ~resp_pending & ~resp_valid)
        accept = Signal()
        m.d.comb += accept.eq(req.valid & req.ready)
        cfg_write = Signal()
        cfg_read = Signal()
        m.d.comb += [cfg_write.eq(accept & req.payload.write),
                     cfg_read.eq(accept & ~req.payload.write)]
        with m.If(cfg_read):
            m.d.sync += resp_region.eq(req.payload.region)
            with m.If(req.payload.region == LearnRegion.LEARN):
                m.d.sync += [resp_data.eq(eng.learn.r_data), resp_valid.eq(1)]
            with m.Else():
                m.d.sync += resp_pending.eq(1)
        with m.If(resp_pending):
            m.d.sync += [resp_pending.eq(0), resp_valid.eq(1)]
            with m.Switch(resp_region):
                for region in _REGIONS:
                    with m.Case(region):
                        m.d.sync += resp_data.eq(rports[region].data.as_value())
        with m.If(self.cfg_resp.valid & self.cfg_resp.ready):
            m.d.sync += resp_valid.eq(0)
        m.d.comb += [self.cfg_resp.valid.eq(resp_valid), self.cfg_resp.payload.eq(resp_data),
                     eng.learn.addr.eq(req.payload.offset),
                     eng.learn.w_data.eq(req.payload.data),
                     eng.learn.w_en.eq(cfg_write & (req.payload.region == LearnRegion.LEARN))]

        # --- memory ports: host (idle only), clearing, then the engine -------------
        engine_r = {LearnRegion.LGROUP: eng.lgroup, LearnRegion.RULE: eng.rule,
                    LearnRegion.XTRACE: eng.xtrace_r, LearnRegion.YTRACE: eng.ytrace_r,
                    LearnRegion.TAG: eng.tag_r}
        engine_w = {LearnRegion.XTRACE: eng.xtrace_w, LearnRegion.YTRACE: eng.ytrace_w,
                    LearnRegion.TAG: eng.tag_w}
        for region in _REGIONS:
            rp, wp, er = rports[region], wports[region], engine_r[region]
            m.d.comb += er.data.eq(rp.data)
            with m.If(cfg_read & (req.payload.region == region)):
                m.d.comb += [rp.addr.eq(req.payload.offset), rp.en.eq(1)]
            with m.Else():
                m.d.comb += [rp.addr.eq(er.addr), rp.en.eq(er.en)]
            state = region in (LearnRegion.XTRACE, LearnRegion.YTRACE, LearnRegion.TAG)
            with m.If(cfg_write & (req.payload.region == region)):
                m.d.comb += [wp.addr.eq(req.payload.offset), wp.data.eq(req.payload.data),
                             wp.en.eq(1)]
            with m.Elif(clearing & (clear_every | state) & (clear_i < sizes[region])):
                m.d.comb += [wp.addr.eq(clear_i), wp.data.eq(0), wp.en.eq(1)]
            if region in engine_w:
                with m.Elif(eng.busy):
                    ew = engine_w[region]
                    m.d.comb += [wp.addr.eq(ew.addr), wp.data.eq(ew.data), wp.en.eq(ew.en)]

        # Event bits: set by arrivals and the neuron pass, read (and the pre
        # bits cleared) by the engine's step operation.
        m.d.comb += [pre_r.addr.eq(eng.pre_event.addr), pre_r.en.eq(eng.pre_event.en),
                     eng.pre_event.data.eq(pre_r.data),
                     post_r.addr.eq(eng.post_event.addr), post_r.en.eq(eng.post_event.en),
                     eng.post_event.data.eq(post_r.data)]
        with m.If(clearing & (clear_i < g.n_axons)):
            m.d.comb += [pre_w.addr.eq(clear_i), pre_w.data.eq(0), pre_w.en.eq(1)]
        with m.Elif(self.pre_hit & eng.enabled):
            m.d.comb += [pre_w.addr.eq(self.pre_axon), pre_w.data.eq(1), pre_w.en.eq(1)]
        with m.Else():
            m.d.comb += [pre_w.addr.eq(eng.pre_event_w.addr), pre_w.data.eq(eng.pre_event_w.data),
                         pre_w.en.eq(eng.pre_event_w.en)]
        with m.If(clearing & (clear_i < g.n_neurons)):
            m.d.comb += [post_w.addr.eq(clear_i), post_w.data.eq(0), post_w.en.eq(1)]
        with m.Else():
            m.d.comb += [post_w.addr.eq(self.post_neuron), post_w.data.eq(self.post_spike),
                         post_w.en.eq(self.post_valid)]

        # AXON and SYNAPSE belong to the engine while it runs (the core muxes
        # them by ``busy``).
        wiring.connect(m, wiring.flipped(self.axon), eng.axon)
        wiring.connect(m, wiring.flipped(self.synapse), eng.synapse)
        return m
