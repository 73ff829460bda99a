"""One neuromesh core: its memories, the neuron pass, the synapse unit and the
fan-out unit (docs/architecture.md §3–§6).

Per timestep:

* the **neuron pass** updates neurons ``0 .. n_neurons-1``, one per clock,
  reading (and clearing) the accumulator slot of step ``t``; spiking neurons
  are queued in the *spike list*, which the **fan-out unit** drains into the
  mesh at one packet per clock while the pass goes on. The spike list holds
  ``n_neurons`` entries, so the pass never waits for the mesh;
* the **synapse unit** adds arriving packets into the accumulator ring, one
  synaptic operation per clock.

Both need a read and a write port of the accumulator memory in every clock
(docs/architecture.md §6.7). With ``overlap`` (the default) the ring is two
banks, even and odd slots: the synapse unit works beside the pass in the
bank the pass does not use, and a word for the pass's bank (odd delay)
stalls until the pass has left it. Without it, one bank, and the synapse
unit waits for the pass to finish; packets that arrive meanwhile wait in the
mesh. Either way no pass can be held up by the mesh, so this cannot
deadlock.

Host accesses (``cfg``) reach every memory while the core is idle.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from neuromesh.chip import COUNTER_BITS, COUNTERS_REGION, U_BITS, Counter, Geometry, Region

from .layouts import PACKET, packet_stream, stored_layout, word_layout
from .neuron import NeuronDatapath
from .ram import SinglePortRAM

__all__ = ["CFG_REQUEST", "NeuronCore"]

#: A host access to one core: word ``offset`` of ``region``.
CFG_REQUEST = data.StructLayout({
    "region": unsigned(4),
    "offset": unsigned(20),
    "data": unsigned(64),
    "write": unsigned(1),
})


class _PortView:
    """The ``addr``/``data``/``en`` of a memory port, as plain signals (for
    the single-port SYNAPSE RAM, which the port multiplexing below drives
    like the other memories' ports)."""

    def __init__(self, addr, data, en=None):
        self.addr, self.data, self.en = addr, data, en


class NeuronCore(wiring.Component):
    """A core of the chip.

    Parameters
    ----------
    geometry:
        Sizes of the memories and of the mesh.
    profile_ram_style:
        Synthesis attribute ``ram_style`` for the PROFILE memory, e.g.
        ``"logic"`` to keep it out of block RAM (a small, wide table that
        costs four iCE40 EBRs).
    rule_ram_style:
        (``learning`` only) ``ram_style`` for the learning engine's RULE
        memory, e.g. ``"distributed"`` on ECP5: 64 words of 59 bits that
        otherwise take two DP16KD per core.
    learning:
        Instantiate the learning engine (:class:`~neuromesh.rtl.learning_unit.LearningUnit`,
        docs/architecture.md §11): host access to regions 8–13, the ports
        ``learn_start`` and ``learn_enabled``. Off by default (the engine does
        not fit the small boards).
    narrow_fields:
        Store only the bits of each word that ``geometry`` can use
        (:func:`~neuromesh.rtl.layouts.stored_layout`). Results are unchanged
        for every image that passes the content rules; a host READ returns
        the stored fields zero- or sign-extended, so bits an image may leave
        free (§5.4) read back as 0.
    counters:
        The activity counters of docs/architecture.md §13 (host READ of
        region 14, zeroed by both RESET modes). Off by default (they cost
        on iCE40 about 450 LUT4 and 190 flip-flops per core).
    overlap:
        Let the synapse unit run beside the neuron pass (the default): the
        accumulator ring is split into two banks, even and odd slots, so the
        pass reads and clears slot ``t`` in one while the synapse unit adds
        into the other, and a step costs about ``max(n, e)`` clocks instead
        of ``n + e``. Off: one bank, and the two take turns (the smaller
        form the iCEBreaker builds). Results are identical either way.
    position:
        ``(x, y)`` of the core in the mesh; with ``counters``, the HOPS
        counter measures each packet's path from here.

    Attributes
    ----------
    pass_start:
        Pulse: run the neuron pass of step ``step``.
    step:
        The step counter ``t`` (the pass reads slot ``t % delay_slots``).
    syn_base:
        Step that a delay-0 packet arriving now lands in: ``t`` while host
        spikes are injected before step ``t``, ``t + 1`` during step ``t``.
    clear_start, clear_all:
        Pulse: zero the state memories (STATE, ACCUM), or with ``clear_all``
        every memory.
    idle:
        No pass, no clearing, spike list empty, fan-out and synapse units idle.
    packet_in, packet_out:
        Packets from and to the mesh (local port of this core's router).
    cfg_req, cfg_resp:
        Host accesses; a read returns its word on ``cfg_resp``. Only served
        while ``idle``.
    learn_start:
        (``learning`` only) Pulse after the barrier of a step: the learning
        engine's step operation (traces, reward, epoch). The engine then owns
        AXON's read port and the SYNAPSE RAM until the core is ``idle`` again.
    learn_enabled:
        (``learning`` only) The core's engine is on (CONTROL.t_epoch != 0).
    """

    def __init__(self, geometry: Geometry, *, profile_ram_style: str | None = None,
                 rule_ram_style: str | None = None, narrow_fields: bool = False,
                 learning: bool = False, counters: bool = False, overlap: bool = True,
                 position: tuple[int, int] = (0, 0)):
        self.geometry = geometry
        self.overlap = overlap
        self.counters = counters
        self.position = tuple(position)
        self.profile_ram_style = profile_ram_style
        self.rule_ram_style = rule_ram_style
        self.narrow_fields = narrow_fields
        self.learning = learning
        ports = {}
        if learning:
            ports = {"learn_start": In(1), "learn_enabled": Out(1)}
        super().__init__({
            **ports,
            "pass_start": In(1),
            "step": In(32),
            "syn_base": In(32),
            "clear_start": In(1),
            "clear_all": In(1),
            "idle": Out(1),
            "packet_in": In(packet_stream()),
            "packet_out": Out(packet_stream()),
            "cfg_req": In(stream.Signature(CFG_REQUEST)),
            "cfg_resp": Out(stream.Signature(unsigned(64))),
        })

    def _narrow(self, region, stored, word):
        """Assign the host's 64-bit ``word`` to a memory word as stored."""
        if not self.narrow_fields:
            return stored.eq(word[:stored.shape().size])
        full = data.View(word_layout(region), word[:word_layout(region).size])
        return [stored[name].eq(full[name]) for name, _ in stored.shape()]

    def _widen(self, m, region, stored):
        """The 64-bit host word of a memory word as stored."""
        if not self.narrow_fields:
            return stored.as_value()
        full = Signal(word_layout(region), name=f"readback_{region.name.lower()}")
        m.d.comb += [full[name].eq(stored[name]) for name, _ in stored.shape()]
        return full.as_value()

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        n_neurons, d_slots = g.n_neurons, g.delay_slots

        mems, rports, wports = {}, {}, {}
        regions = (Region.PROFILE, Region.NEURON, Region.STATE, Region.AXON,
                   Region.SYNAPSE, Region.GROUP, Region.FANOUT)
        layouts = {region: stored_layout(region, g) if self.narrow_fields else word_layout(region)
                   for region in (*regions, Region.ACCUM)}
        for region in regions:
            # At least two words: a one-word memory has a zero-width address,
            # which Verilog cannot declare. The host link never addresses the
            # extra word.
            depth = max(g.region_size(region), 2)
            if region == Region.SYNAPSE:
                # Read by the synapse walk, written only by the host and by
                # clearing, never in the same clock: one port is enough, so
                # it can live in SPRAM (rtl/ram.py).
                ram = SinglePortRAM(layouts[region], depth)
                m.submodules.mem_synapse = mems[region] = ram
                rports[region] = _PortView(Signal.like(ram.addr), ram.rdata)
                wports[region] = _PortView(Signal.like(ram.addr),
                                           Signal(layouts[region]), Signal())
                continue
            attrs = {}
            if region == Region.PROFILE and self.profile_ram_style:
                attrs["ram_style"] = self.profile_ram_style
            if region != Region.GROUP:
                # No word is read in the clock it is written: synthesis need
                # not emulate read-during-write (iCE40 EBRs do not define it).
                attrs["no_rw_check"] = 1
            mem = Memory(shape=layouts[region], depth=depth, init=[], attrs=attrs)
            m.submodules[f"mem_{region.name.lower()}"] = mems[region] = mem
            wports[region] = mem.write_port()
        for region, mem in mems.items():
            if region == Region.SYNAPSE:
                continue
            if region == Region.GROUP:
                rports[region] = mem.read_port(domain="comb")
            else:
                rports[region] = mem.read_port()

        # The accumulator ring (ACCUM): one bank, or with ``overlap`` two
        # banks holding the even and the odd slots. Each bank has one read
        # and one write port; read-modify-write of one word on consecutive
        # clocks must see the previous write, so the read port is transparent.
        n_banks = 2 if self.overlap else 1
        bank_depth = max(g.region_size(Region.ACCUM) // n_banks, 2)
        accum_r, accum_w = [], []
        for b in range(n_banks):
            mem = Memory(shape=layouts[Region.ACCUM], depth=bank_depth, init=[])
            m.submodules[f"mem_accum{b}" if self.overlap else "mem_accum"] = mem
            accum_w.append(mem.write_port())
            accum_r.append(mem.read_port(transparent_for=(accum_w[b],)))
        bank_addr_width = accum_w[0].addr.shape().width

        def accum_word(bank):
            """The word read from bank ``bank`` (a signal; bank 0 if one bank)."""
            return Mux(bank, accum_r[-1].data.as_value(), accum_r[0].data.as_value())

        prof, neur, state = rports[Region.PROFILE], rports[Region.NEURON], rports[Region.STATE]

        # --- learning engine (optional) ----------------------------------------------
        lu = None
        if self.learning:
            from .learning_unit import LearningUnit
            m.submodules.learning = lu = LearningUnit(
                g, axon_layout=layouts[Region.AXON], synapse_layout=layouts[Region.SYNAPSE],
                rule_ram_style=self.rule_ram_style)
            m.d.comb += [lu.start.eq(self.learn_start), self.learn_enabled.eq(lu.enabled),
                         lu.clear_start.eq(self.clear_start), lu.clear_all.eq(self.clear_all)]

        # --- neuron pass ------------------------------------------------------
        # The tag: the neuron index and its fan-out run, as wide as the
        # geometry's words make them.
        n_bits = max(1, (n_neurons - 1).bit_length())
        base_bits = len(neur.data.fanout_base)
        len_bits = len(neur.data.fanout_len)
        m.submodules.datapath = dp = NeuronDatapath(tag_width=n_bits + base_bits + len_bits)
        pass_run = Signal()           # issuing reads
        pass_n = Signal(range(n_neurons + 1))
        # The pass's slot ``t % delay_slots``: its bank and first word there.
        # (Bank numbers are one bit even with one bank, where they are
        # constant 0: a zero-width signal is not clean Verilog.)
        pass_bank = Signal()
        slot_base = Signal(bank_addr_width)
        s1_valid = Signal()
        s1_n = Signal(range(n_neurons))
        s2 = Signal(data.StructLayout({
            "valid": 1, "n": unsigned(10), "bias_mant": signed(13), "bias_exp": unsigned(3),
            "fanout_base": unsigned(15), "fanout_len": unsigned(15),
            "u": signed(U_BITS), "v": signed(U_BITS), "refractory": unsigned(8),
            "q": signed(U_BITS)}))
        in_flight = Signal(range(8))  # updates inside stages 1..datapath output

        with m.If(self.pass_start):
            m.d.sync += [pass_run.eq(1), pass_n.eq(0),
                         pass_bank.eq(self.step % n_banks),
                         slot_base.eq((self.step % d_slots) // n_banks * n_neurons)]
        with m.Elif(pass_run):
            m.d.sync += pass_n.eq(pass_n + 1)
            with m.If(pass_n == n_neurons - 1):
                m.d.sync += pass_run.eq(0)
        issue = Signal()
        m.d.comb += issue.eq(pass_run)
        m.d.sync += [s1_valid.eq(issue), s1_n.eq(pass_n)]

        # Stage 0 (issue): read NEURON, STATE and the accumulator of this step.
        # Stage 1: clear the accumulator word, read the profile.
        # Stage 2: the datapath gets everything.
        accum_pass_addr = Signal(bank_addr_width)
        m.d.comb += accum_pass_addr.eq(slot_base + pass_n)
        neuron_word = neur.data
        m.d.sync += [
            s2.valid.eq(s1_valid), s2.n.eq(s1_n),
            s2.bias_mant.eq(neuron_word.bias_mant), s2.bias_exp.eq(neuron_word.bias_exp),
            s2.fanout_base.eq(neuron_word.fanout_base), s2.fanout_len.eq(neuron_word.fanout_len),
            s2.u.eq(state.data.u), s2.v.eq(state.data.v),
            s2.refractory.eq(state.data.refractory),
            s2.q.eq(data.View(layouts[Region.ACCUM], accum_word(pass_bank)).value),
        ]
        m.d.comb += [
            dp.i_valid.eq(s2.valid),
            dp.i.u.eq(s2.u), dp.i.v.eq(s2.v), dp.i.refractory.eq(s2.refractory),
            dp.i.q.eq(s2.q),
            dp.i.du.eq(prof.data.du), dp.i.dv.eq(prof.data.dv),
            dp.i.vth_mant.eq(prof.data.vth_mant),
            dp.i.refractory_delay.eq(prof.data.refractory),
            dp.i.reset_subtract.eq(prof.data.reset_subtract),
            dp.i.reset_timing.eq(prof.data.reset_timing),
            dp.i.threshold_ge.eq(prof.data.threshold_ge),
            dp.i.floor_mant.eq(prof.data.floor_mant),
            dp.i.bias_mant.eq(s2.bias_mant), dp.i.bias_exp.eq(s2.bias_exp),
            dp.tag_in.eq(s2.n[:n_bits] | (s2.fanout_base[:base_bits] << n_bits)
                         | (s2.fanout_len[:len_bits] << (n_bits + base_bits))),
        ]
        m.d.sync += in_flight.eq(in_flight + issue - dp.o_valid)
        pass_busy = Signal()
        m.d.comb += pass_busy.eq(pass_run | (in_flight != 0))

        out_n = dp.tag_out[:n_bits]
        out_base = dp.tag_out[n_bits:n_bits + base_bits]
        out_len = dp.tag_out[n_bits + base_bits:]

        # Spike list: (fanout_base, fanout_len) of every spiking neuron.
        # (At least 3 entries: SyncFIFOBuffered of depth 2 has zero-width
        # pointers, which Verilog cannot declare.)
        m.submodules.spikes = spikes = SyncFIFOBuffered(width=30, depth=max(n_neurons, 3))
        m.d.comb += [spikes.w_data.eq(out_base | (out_len << 15)),
                     spikes.w_en.eq(dp.o_valid & dp.o.spike & (out_len != 0))]

        # --- synapse unit -----------------------------------------------------
        syn_enable = Signal()
        clear_busy = Signal()
        # Without ``overlap`` the synapse unit waits for the neuron pass to
        # finish; with it, it runs beside the pass and stalls only on a word
        # for the bank the pass is using (``stall`` below).
        syn_free = ~clear_busy & ~self.pass_start
        if not self.overlap:
            syn_free = syn_free & ~pass_busy
        if lu is not None:
            syn_free = syn_free & ~lu.busy
        m.d.comb += syn_enable.eq(syn_free)
        axon_r, syn_r, group_r = rports[Region.AXON], rports[Region.SYNAPSE], rports[Region.GROUP]
        m.submodules.runs = runs = SyncFIFO(width=layouts[Region.AXON].size, depth=4)
        lookup_q = Signal()
        lookup = Signal()
        m.d.comb += lookup.eq(syn_enable & self.packet_in.valid &
                              (runs.level + lookup_q < runs.depth - 1))
        m.d.comb += self.packet_in.ready.eq(lookup)
        m.d.sync += lookup_q.eq(lookup)
        m.d.comb += [
            runs.w_data.eq(axon_r.data.as_value()),
            runs.w_en.eq(lookup_q & (axon_r.data.syn_len != 0)),
        ]
        walk_addr = Signal(17)
        walk_left = Signal(18)
        walk_issue = Signal()
        walk_load = Signal()
        stall = Signal()          # the word at t1 waits for the pass to leave its bank
        run_word = data.View(layouts[Region.AXON], runs.r_data)
        m.d.comb += [walk_issue.eq((walk_left != 0) & ~stall),
                     walk_load.eq(runs.r_rdy & ((walk_left == 0) |
                                                ((walk_left == 1) & ~stall))),
                     runs.r_en.eq(walk_load)]
        with m.If(walk_load):
            m.d.sync += [walk_addr.eq(run_word.syn_base), walk_left.eq(run_word.syn_len)]
        with m.Elif(walk_issue):
            m.d.sync += [walk_addr.eq(walk_addr + 1), walk_left.eq(walk_left - 1)]
        t1_valid = Signal()
        m.d.sync += t1_valid.eq(walk_issue | stall)
        # t1: synapse word arrives; weight, group shift and ring address.
        if self.overlap:
            # A stalled word is held here: the SYNAPSE RAM's output moves on.
            held = Signal()
            hold = Signal(layouts[Region.SYNAPSE])
            syn = Signal(layouts[Region.SYNAPSE])
            m.d.comb += syn.eq(Mux(held, hold.as_value(), syn_r.data.as_value()))
            m.d.sync += [held.eq(stall), hold.eq(syn)]
        else:
            syn = syn_r.data
        contrib = Signal(signed(U_BITS))
        syn_slot = Signal(range(d_slots))
        m.d.comb += [
            group_r.addr.eq(syn.group),
            contrib.eq(syn.w_mant << group_r.data.w_shift),
            syn_slot.eq((self.syn_base + syn.delay) % d_slots),
        ]
        t2 = Signal(data.StructLayout({"valid": 1, "bank": 1,
                                       "addr": unsigned(bank_addr_width),
                                       "contrib": signed(U_BITS)}))
        t1_bank = Signal()
        t1_addr = Signal(bank_addr_width)
        m.d.comb += [t1_bank.eq(syn_slot % n_banks),
                     t1_addr.eq(syn_slot // n_banks * n_neurons + syn.target)]
        if self.overlap:
            # The pass reads its bank while ``pass_run`` and clears it one
            # clock later: a word for that bank may neither read it now (t1)
            # nor write it next clock (t2). Only odd delays meet the pass's
            # bank; delay 0, the common case, never stalls.
            m.d.comb += stall.eq(t1_valid & pass_run & (t1_bank == pass_bank))
        m.d.sync += [t2.valid.eq(t1_valid & ~stall), t2.bank.eq(t1_bank), t2.addr.eq(t1_addr),
                     t2.contrib.eq(contrib)]
        # t2: accumulator word arrives (transparent for the t2 write before it).
        syn_sum = Signal(signed(U_BITS))
        m.d.comb += syn_sum.eq(data.View(layouts[Region.ACCUM], accum_word(t2.bank)).value
                               + t2.contrib)
        syn_busy = Signal()
        m.d.comb += syn_busy.eq(lookup_q | (runs.level != 0) | walk_issue | t1_valid | t2.valid)

        # --- fan-out unit -------------------------------------------------------
        fan_r = rports[Region.FANOUT]
        m.submodules.packets = packets = SyncFIFOBuffered(width=PACKET.size, depth=4)
        fan_addr = Signal(15)
        fan_left = Signal(16)
        fan_q = Signal()
        fan_issue = Signal()
        m.d.comb += fan_issue.eq((fan_left != 0) & (packets.level + fan_q < packets.depth - 1))
        fan_load = Signal()
        m.d.comb += [fan_load.eq(spikes.r_rdy & ((fan_left == 0) | ((fan_left == 1) & fan_issue))),
                     spikes.r_en.eq(fan_load)]
        with m.If(fan_load):
            m.d.sync += [fan_addr.eq(spikes.r_data[:15]), fan_left.eq(spikes.r_data[15:30])]
        with m.Elif(fan_issue):
            m.d.sync += [fan_addr.eq(fan_addr + 1), fan_left.eq(fan_left - 1)]
        m.d.sync += fan_q.eq(fan_issue)
        entry = fan_r.data
        packet = Signal(PACKET)
        m.d.comb += [
            packet.to_host.eq(entry.to_host),
            packet.payload.eq(Mux(entry.to_host, entry.channel, entry.axon)),
            packet.x.eq(Mux(entry.to_host, 0, entry.x)),
            packet.y.eq(Mux(entry.to_host, 0, entry.y)),
            packets.w_data.eq(packet.as_value()),
            packets.w_en.eq(fan_q),
            self.packet_out.valid.eq(packets.r_rdy),
            self.packet_out.payload.eq(packets.r_data),
            packets.r_en.eq(self.packet_out.ready),
        ]
        fan_busy = Signal()
        m.d.comb += fan_busy.eq((spikes.level != 0) | (fan_left != 0) |
                                fan_q | (packets.level != 0))

        # --- clearing (RESET) ------------------------------------------------------
        largest = max(bank_depth, *(g.region_size(r) for r in mems))
        clear_i = Signal(range(largest + 1))
        clear_every = Signal()
        with m.If(self.clear_start):
            m.d.sync += [clear_busy.eq(1), clear_i.eq(0), clear_every.eq(self.clear_all)]
        with m.Elif(clear_busy):
            m.d.sync += clear_i.eq(clear_i + 1)
            with m.If(clear_i == largest - 1):
                m.d.sync += clear_busy.eq(0)

        # --- host accesses ----------------------------------------------------------
        req = self.cfg_req
        resp_pending = Signal()
        resp_region = Signal(4)
        resp_data = Signal(64)
        resp_valid = Signal()
        accept = req.valid & req.ready
        if lu is None:
            m.d.comb += req.ready.eq(~resp_pending & ~resp_valid)
        else:
            own = Signal()        # a request for regions 0..7 (the rest go to the engine)
            accept = accept & own
            free = Signal()
            own_regions = req.payload.region < 8
            if self.counters:
                own_regions = own_regions | (req.payload.region == COUNTERS_REGION)
            m.d.comb += [own.eq(own_regions),
                         free.eq(~resp_pending & ~resp_valid & ~lu.cfg_resp.valid),
                         req.ready.eq(free & (own | lu.cfg_req.ready)),
                         lu.cfg_req.payload.eq(req.payload),
                         lu.cfg_req.valid.eq(req.valid & free & ~own)]
        cfg_write = Signal()
        cfg_read = Signal()
        m.d.comb += [cfg_write.eq(accept & req.payload.write),
                     cfg_read.eq(accept & ~req.payload.write)]
        # A host offset in ACCUM (``slot * n_neurons + neuron``) as a bank
        # and a word there.
        host_bank = Signal()
        host_accum_addr = Signal(bank_addr_width)
        resp_bank = Signal()
        if self.overlap:
            offset = req.payload.offset
            with m.If(offset < n_neurons):
                m.d.comb += [host_bank.eq(0), host_accum_addr.eq(offset)]
            for slot in range(1, d_slots):
                with m.Elif(offset < (slot + 1) * n_neurons):
                    m.d.comb += [host_bank.eq(slot % 2),
                                 host_accum_addr.eq(offset - (slot + 1) // 2 * n_neurons)]
        else:
            m.d.comb += host_accum_addr.eq(req.payload.offset)
        accum_host_data = Signal(layouts[Region.ACCUM])
        m.d.comb += accum_host_data.eq(accum_word(resp_bank))
        with m.If(cfg_read):
            m.d.sync += [resp_pending.eq(1), resp_region.eq(req.payload.region),
                         resp_bank.eq(host_bank)]
        with m.If(resp_pending):
            m.d.sync += [resp_pending.eq(0), resp_valid.eq(1)]
            with m.Switch(resp_region):
                for region, port in rports.items():
                    with m.Case(region):
                        if region == Region.GROUP:
                            continue
                        m.d.sync += resp_data.eq(self._widen(m, region, port.data))
                with m.Case(Region.ACCUM):
                    m.d.sync += resp_data.eq(self._widen(m, Region.ACCUM, accum_host_data))
        with m.If(self.cfg_resp.valid & self.cfg_resp.ready):
            m.d.sync += resp_valid.eq(0)
        # GROUP has a combinational read port: capture it in the request cycle.
        with m.If(cfg_read & (req.payload.region == Region.GROUP)):
            m.d.sync += resp_data.eq(self._widen(m, Region.GROUP, group_r.data))
        if self.counters:
            counts = self._counters(m, dp, walk_issue, pass_busy, lu, clear_busy)
            # Like GROUP: the word is captured in the request cycle.
            with m.If(cfg_read & (req.payload.region == COUNTERS_REGION)):
                with m.Switch(req.payload.offset):
                    for word, value in counts.items():
                        with m.Case(word):
                            m.d.sync += resp_data.eq(value)
        if lu is None:
            m.d.comb += [self.cfg_resp.valid.eq(resp_valid),
                         self.cfg_resp.payload.eq(resp_data)]
        else:
            m.d.comb += [self.cfg_resp.valid.eq(resp_valid | lu.cfg_resp.valid),
                         self.cfg_resp.payload.eq(Mux(lu.cfg_resp.valid, lu.cfg_resp.payload,
                                                      resp_data)),
                         lu.cfg_resp.ready.eq(self.cfg_resp.ready)]

        # --- memory port multiplexing -------------------------------------------------
        # Priority: host access (only while idle), clearing, then the datapaths.
        for region, port in rports.items():
            if region == Region.GROUP:
                continue
            with m.If(cfg_read & (req.payload.region == region)):
                m.d.comb += port.addr.eq(req.payload.offset)
        with m.If(cfg_read & (req.payload.region == Region.GROUP)):
            m.d.comb += group_r.addr.eq(req.payload.offset)
        with m.If(~cfg_read):
            m.d.comb += [
                neur.addr.eq(pass_n), state.addr.eq(pass_n),
                prof.addr.eq(neuron_word.profile),
                axon_r.addr.eq(self.packet_in.payload.payload),
                syn_r.addr.eq(walk_addr),
                fan_r.addr.eq(fan_addr),
            ]
        for b, port in enumerate(accum_r):
            with m.If(cfg_read & (req.payload.region == Region.ACCUM)):
                m.d.comb += port.addr.eq(host_accum_addr)
            if self.overlap:
                with m.Elif(pass_run & (pass_bank == b)):
                    m.d.comb += port.addr.eq(accum_pass_addr)
            else:
                with m.Elif(pass_busy | self.pass_start):
                    m.d.comb += port.addr.eq(accum_pass_addr)
            with m.Else():
                m.d.comb += port.addr.eq(t1_addr)

        for region, port in wports.items():
            with m.If(cfg_write & (req.payload.region == region)):
                m.d.comb += [port.addr.eq(req.payload.offset),
                             self._narrow(region, port.data, req.payload.data),
                             port.en.eq(1)]
            with m.Elif(clear_busy & (clear_every | (region == Region.STATE))
                        & (clear_i < g.region_size(region))):
                m.d.comb += [port.addr.eq(clear_i), port.data.eq(0), port.en.eq(1)]
            if region == Region.STATE:
                with m.Elif(dp.o_valid):
                    m.d.comb += [port.addr.eq(out_n), port.en.eq(1),
                                 port.data.u.eq(dp.o.u), port.data.v.eq(dp.o.v),
                                 port.data.refractory.eq(dp.o.refractory)]
        for b, port in enumerate(accum_w):
            with m.If(cfg_write & (req.payload.region == Region.ACCUM) & (host_bank == b)):
                m.d.comb += [port.addr.eq(host_accum_addr),
                             self._narrow(Region.ACCUM, port.data, req.payload.data),
                             port.en.eq(1)]
            with m.Elif(clear_busy & (clear_i < g.region_size(Region.ACCUM) // n_banks)):
                m.d.comb += [port.addr.eq(clear_i), port.data.eq(0), port.en.eq(1)]
            with m.Elif(s1_valid & (pass_bank == b)):
                m.d.comb += [port.addr.eq(slot_base + s1_n), port.data.eq(0), port.en.eq(1)]
            with m.Elif(t2.valid & (t2.bank == b)):
                m.d.comb += [port.addr.eq(t2.addr), port.data.value.eq(syn_sum), port.en.eq(1)]

        syn_ram, syn_w = mems[Region.SYNAPSE], wports[Region.SYNAPSE]
        m.d.comb += [syn_ram.addr.eq(Mux(syn_w.en, syn_w.addr, rports[Region.SYNAPSE].addr)),
                     syn_ram.wdata.eq(syn_w.data), syn_ram.we.eq(syn_w.en)]

        idle = ~pass_busy & ~syn_busy & ~fan_busy & ~clear_busy & ~resp_pending & ~resp_valid
        if lu is not None:
            # The engine runs after the barrier, when nothing else uses AXON
            # and SYNAPSE: while busy it owns both (and the core is not idle).
            m.d.comb += [lu.axon.data.eq(axon_r.data), lu.synapse.rdata.eq(syn_ram.rdata),
                         lu.pre_hit.eq(lookup), lu.pre_axon.eq(self.packet_in.payload.payload),
                         lu.post_valid.eq(dp.o_valid), lu.post_neuron.eq(out_n),
                         lu.post_spike.eq(dp.o.spike)]
            # (The unit is also busy while RESET clears its memories; while
            # the core clears its own, SYNAPSE stays with the core's clearing.)
            with m.If(lu.busy & ~clear_busy):
                m.d.comb += [axon_r.addr.eq(lu.axon.addr), axon_r.en.eq(lu.axon.en),
                             syn_ram.addr.eq(lu.synapse.addr), syn_ram.wdata.eq(lu.synapse.wdata),
                             syn_ram.we.eq(lu.synapse.we)]
            idle = idle & ~lu.busy & ~lu.cfg_resp.valid
        m.d.comb += self.idle.eq(idle)
        return m

    def _counters(self, m, dp, walk_issue, pass_busy, lu, clear_busy):
        """The activity counters of docs/architecture.md §13: u32 each,
        cumulative, wrapping; ``clear_start`` (either RESET mode) zeroes them.
        Returns ``{Counter: Signal}``."""
        g = self.geometry
        counts = {c: Signal(COUNTER_BITS, name=f"count_{c.name.lower()}") for c in Counter}
        # HOPS: router-to-router links of the XY path of each packet sent
        # (a host-bound packet goes to router (0, 0), then out of its west port).
        x0, y0 = self.position
        sent = self.packet_out.valid & self.packet_out.ready
        pkt = self.packet_out.payload
        width = max(g.cols, g.rows).bit_length() + 1
        dx, dy, hops = Signal(width), Signal(width), Signal(width + 1)
        m.d.comb += [
            dx.eq(Mux(pkt.x >= x0, pkt.x - x0, x0 - pkt.x)),
            dy.eq(Mux(pkt.y >= y0, pkt.y - y0, y0 - pkt.y)),
            hops.eq(Mux(pkt.to_host, x0 + y0, dx + dy)),
        ]
        learn = 0
        if lu is not None:
            learn = lu.synapse.we & lu.busy & ~clear_busy
        step = {
            Counter.SPIKES: dp.o_valid & dp.o.spike,
            Counter.UPDATES: dp.o_valid,
            Counter.SYNOPS: walk_issue,
            Counter.PACKETS: sent,
            Counter.HOPS: Mux(sent, hops, 0),
            Counter.LEARN: learn,
            Counter.CLOCKS: pass_busy + walk_issue,
        }
        with m.If(self.clear_start):
            m.d.sync += [c.eq(0) for c in counts.values()]
        with m.Else():
            m.d.sync += [c.eq(c + step[k]) for k, c in counts.items()]
        return counts
