"""The 2-D mesh of routers that carries spike packets between cores and to and
from the host port (architecture §2.3, §6.3–§6.5)."""

from amaranth import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from neuromesh.chip import Geometry

from .layouts import packet_stream
from .router import Router

__all__ = ["Mesh"]


class Mesh(wiring.Component):
    """A ``rows × cols`` mesh with one :class:`~neuromesh.rtl.router.Router`
    per core.

    Neighbouring routers are connected east↔west and north↔south (north is
    −y, row 0 is the northern edge). The host port is the west side of router
    (0, 0). Every other port on the edge of the mesh is tied off: its input
    with ``valid = 0``, its output with ``ready = 1``. XY routing never sends
    a packet to such an output as long as core-bound destinations lie inside
    the mesh (§5.4), so none can be lost there.

    Parameters
    ----------
    geometry : Geometry
        The chip geometry; only ``rows`` and ``cols`` are used.
    fifo_depth : int
        Depth of each router input FIFO.

    Attributes
    ----------
    local_in : In(packet_stream()).array(n_cores)
        Packets injected by core ``k = y * cols + x`` (its router's local
        input).
    local_out : Out(packet_stream()).array(n_cores)
        Packets delivered to core ``k`` (its router's local output, to the
        core's synapse unit).
    host_in : In(packet_stream())
        Host input spikes as core-bound packets; the west input of router
        (0, 0).
    host_out : Out(packet_stream())
        Host-bound packets; the west output of router (0, 0).
    idle : Out(1)
        High when every router input FIFO is empty, i.e. no packet that has
        been accepted at a ``local_in`` or at ``host_in`` is still waiting to
        be accepted at a ``local_out`` or at ``host_out`` (see
        :class:`~neuromesh.rtl.router.Router` for why this is exact).
    """

    def __init__(self, geometry: Geometry, *, fifo_depth: int = 2):
        self.geometry = geometry
        self.fifo_depth = fifo_depth
        n = geometry.n_cores
        super().__init__({
            "local_in": In(packet_stream()).array(n),
            "local_out": Out(packet_stream()).array(n),
            "host_in": In(packet_stream()),
            "host_out": Out(packet_stream()),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.geometry.rows, self.geometry.cols

        routers = {}
        for y in range(rows):
            for x in range(cols):
                router = Router(x, y, rows, cols, fifo_depth=self.fifo_depth)
                m.submodules[f"router_{x}_{y}"] = router
                routers[x, y] = router

        for (x, y), router in routers.items():
            k = y * cols + x
            wiring.connect(m, wiring.flipped(self.local_in[k]), router.i_local)
            wiring.connect(m, router.o_local, wiring.flipped(self.local_out[k]))

            # Each link is made once, from its western / northern end.
            if x + 1 < cols:
                wiring.connect(m, router.o_east, routers[x + 1, y].i_west)
                wiring.connect(m, routers[x + 1, y].o_west, router.i_east)
            else:
                self._tie_off(m, router.i_east, router.o_east)
            if y + 1 < rows:
                wiring.connect(m, router.o_south, routers[x, y + 1].i_north)
                wiring.connect(m, routers[x, y + 1].o_north, router.i_south)
            else:
                self._tie_off(m, router.i_south, router.o_south)
            if x == 0:
                if y == 0:
                    wiring.connect(m, wiring.flipped(self.host_in), router.i_west)
                    wiring.connect(m, router.o_west, wiring.flipped(self.host_out))
                else:
                    self._tie_off(m, router.i_west, router.o_west)
            if y == 0:
                self._tie_off(m, router.i_north, router.o_north)

        m.d.comb += self.idle.eq(Cat(router.idle for router in routers.values()).all())
        return m

    @staticmethod
    def _tie_off(m, i_port, o_port):
        m.d.comb += [
            i_port.valid.eq(0),
            o_port.ready.eq(1),
        ]
