"""The whole chip: a mesh of cores, the timestep controller and the host link.

Its only ports are the host link's byte streams, so everything -- loading a
chip image, injecting spikes, running, reading state -- goes through the
protocol of docs/architecture.md §9, exactly as a board would be driven.
"""


from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from neuromesh.chip import ADDRESS, Geometry

from .controller import TimestepController
from .core import NeuronCore
from .hostlink import HostLink
from .layouts import byte_stream, check_rtl_geometry
from .mesh import Mesh

__all__ = ["Chip"]


class Chip(wiring.Component):
    """A neuromesh chip of the given geometry.

    Parameters
    ----------
    geometry:
        Mesh and core sizes.
    core_args:
        Keyword arguments for every :class:`~neuromesh.rtl.core.NeuronCore`
        (e.g. ``profile_ram_style``).
    learning:
        Give every core its learning engine (docs/architecture.md §11): the
        host link maps regions 8–13 and the controller runs a learning phase
        after each step's barrier. Off by default (the small boards have no
        room for it); the co-simulation builds for learning images turn it on.
    hostlink_args:
        Extra keyword arguments for :class:`~neuromesh.rtl.hostlink.HostLink`
        (e.g. ``timeout_cycles``).

    Attributes
    ----------
    rx, tx:
        The host link's byte streams.
    cycles:
        Clock cycles spent running (for cycle reports).
    """

    rx: In(byte_stream())
    tx: Out(byte_stream())
    cycles: Out(64)

    def __init__(self, geometry: Geometry, *, core_args: dict | None = None,
                 learning: bool = False, counters: bool = False, **hostlink_args):
        try:
            check_rtl_geometry(geometry)
        except Exception:
            # A chip refused by its constructor is never elaborated: without
            # this, Amaranth warns (UnusedElaboratable) whenever it is collected,
            # inside whatever runs then.
            self._MustUse__silence = True
            raise
        self.geometry = geometry
        self.learning = learning
        self.counters = counters
        self.core_args = dict(core_args or {})
        self.hostlink_args = hostlink_args
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        learn = {"learning": True} if self.learning else {}
        count = {"counters": True} if self.counters else {}
        m.submodules.hostlink = link = HostLink(g, **learn, **count, **self.hostlink_args)
        m.submodules.mesh = mesh = Mesh(g)
        m.submodules.controller = ctl = TimestepController(**learn)
        cores = []
        for k in range(g.n_cores):
            if self.counters:
                count = {"counters": True, "position": (k % g.cols, k // g.cols)}
            core = NeuronCore(g, **learn, **count, **self.core_args)
            m.submodules[f"core_{k % g.cols}_{k // g.cols}"] = core
            cores.append(core)
            wiring.connect(m, core.packet_out, mesh.local_in[k])
            wiring.connect(m, mesh.local_out[k], core.packet_in)
            m.d.comb += [core.pass_start.eq(ctl.pass_start), core.step.eq(ctl.step),
                         core.syn_base.eq(ctl.syn_base), core.clear_start.eq(ctl.clear_start),
                         core.clear_all.eq(ctl.clear_all)]
            if self.learning:
                m.d.comb += core.learn_start.eq(ctl.learn_start)
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        wiring.connect(m, link.inject, mesh.host_in)
        wiring.connect(m, mesh.host_out, link.host_out)

        # The barrier is registered (L = 1 of docs/architecture.md §7.3, where
        # the argument is): no path runs from a core's memories through its
        # idle logic across the die into the controller's state; the
        # controller's guard states cover the one clock of delay.
        idle_q = Signal(len(cores) + 1)
        m.d.sync += idle_q.eq(Cat(mesh.idle, *(core.idle for core in cores)))
        all_idle = Signal()
        m.d.comb += all_idle.eq(idle_q.all())
        if self.learning:
            any_enabled = 0
            for core in cores:
                any_enabled = any_enabled | core.learn_enabled
            m.d.comb += ctl.learn_enabled.eq(any_enabled)
        m.d.comb += [
            ctl.run_start.eq(link.run_start), ctl.run_steps.eq(link.run_steps),
            ctl.injecting.eq(link.injecting), ctl.step_ack.eq(link.step_ack),
            ctl.reset_start.eq(link.reset_start), ctl.reset_mode.eq(link.reset_mode),
            ctl.all_idle.eq(all_idle),
            link.step.eq(ctl.step), link.step_done.eq(ctl.step_done),
            link.run_done.eq(ctl.run_done), link.reset_done.eq(ctl.reset_done),
            self.cycles.eq(ctl.cycles),
        ]

        # Memory bus: one host access at a time, routed by the core field.
        # Both directions are registered, so no path runs from the host link's
        # state through a core's access multiplexers into its memories (that
        # was the 2x4 learning build's critical path, docs/synthesis.md). The
        # link waits for each read's word, so the extra clocks are absorbed;
        # a write leaves the register the clock after the link hands it over
        # (the cores are idle whenever the link serves a command), long
        # before the link has acknowledged it and parsed another command.
        req = link.mem_req
        addr_core = req.payload.addr[ADDRESS["core"].lsb:][:8]
        # At least one bit: a zero-width net is legal Amaranth but not clean Verilog.
        target = Signal(range(max(g.n_cores, 2)))
        m.d.comb += target.eq((addr_core >> 4) * g.cols + (addr_core & 0xF))
        held = Signal()                   # a request waits in the registers below
        held_core = Signal.like(target)
        held_region = Signal(4)
        held_offset = Signal(ADDRESS["offset"].width)
        held_data = Signal.like(req.payload.data)
        held_write = Signal()
        read_pending = Signal()           # from a read's hand-over to its word's
        resp_core = Signal.like(target)
        m.d.comb += req.ready.eq(~held & ~read_pending)
        with m.If(req.valid & req.ready):
            m.d.sync += [held.eq(1), held_core.eq(target),
                         held_region.eq(req.payload.addr[ADDRESS["region"].lsb:][:4]),
                         held_offset.eq(req.payload.addr[:ADDRESS["offset"].width]),
                         held_data.eq(req.payload.data), held_write.eq(req.payload.write)]
            with m.If(~req.payload.write):
                m.d.sync += [read_pending.eq(1), resp_core.eq(target)]
        resp = link.mem_resp
        resp_valid = Signal()
        resp_data = Signal.like(resp.payload)
        m.d.comb += [resp.valid.eq(resp_valid), resp.payload.eq(resp_data)]
        with m.If(resp.valid & resp.ready):
            m.d.sync += [resp_valid.eq(0), read_pending.eq(0)]
        for k, core in enumerate(cores):
            m.d.comb += [core.cfg_req.payload.region.eq(held_region),
                         core.cfg_req.payload.offset.eq(held_offset),
                         core.cfg_req.payload.data.eq(held_data),
                         core.cfg_req.payload.write.eq(held_write),
                         core.cfg_req.valid.eq(held & (held_core == k)),
                         core.cfg_resp.ready.eq(read_pending & ~resp_valid &
                                                (resp_core == k))]
            with m.If(core.cfg_req.valid & core.cfg_req.ready):
                m.d.sync += held.eq(0)
            with m.If(core.cfg_resp.valid & core.cfg_resp.ready):
                m.d.sync += [resp_valid.eq(1), resp_data.eq(core.cfg_resp.payload)]
        return m
