"""The five-port mesh router: input FIFOs, dimension-order (XY) routing and
round-robin output arbitration (architecture §6.3–§6.5)."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .layouts import PACKET, packet_stream

__all__ = ["DIRECTIONS", "Router"]

#: Port names of a router, in the order used for arbitration priority and for
#: the one-hot routing decision.
DIRECTIONS = ("north", "east", "south", "west", "local")


class Router(wiring.Component):
    """Router of the core at mesh position ``(x, y)``.

    Every input has a small FIFO (:class:`~amaranth.lib.fifo.SyncFIFO`, whose
    ``w_rdy`` and ``r_rdy`` are functions of its registered level only). A
    packet at the head of an input FIFO is routed by dimension order — first
    along x, then along y (§6.3) — and each output grants one of the inputs
    that want it, round-robin, one packet per clock. Since input ``ready`` never
    depends on any output ``ready`` and output ``valid`` never depends on any
    input ``valid``, no valid/ready path crosses more than one hop.

    Once an output has presented a packet (``valid`` high) it keeps presenting
    the same packet until it is taken, even if an input of higher round-robin
    priority starts requesting meanwhile, so every output obeys the stream rule
    that ``valid`` and the payload are held stable until the transfer.

    Packets live only in the input FIFOs: outputs are driven combinationally
    from the FIFO heads and a packet leaves one FIFO at the same clock edge at
    which it enters the next one (or its sink). So a packet that has been
    accepted by some router and not yet accepted by a sink is, at every
    instant, in exactly one input FIFO of exactly one router, and the AND of
    all routers' :attr:`idle` signals is an exact "mesh empty" indicator
    (packets still waiting at a ``local`` or host input, before their
    handshake, are not in the mesh yet). The timestep barrier relies on this.

    Ports facing outside the mesh at its edges are present all the same; the
    mesh ties them off. Routing never sends a core-bound packet whose
    destination lies inside the mesh through such a port, and host-bound
    packets leave only through the west port of (0, 0), the host port.

    Parameters
    ----------
    x, y : int
        Mesh position of this router (column, row).
    rows, cols : int
        Mesh size, used to check the position.
    fifo_depth : int
        Depth of each input FIFO; 2 or more sustains one packet per clock
        through each input.

    Attributes
    ----------
    i_north, i_east, i_south, i_west, i_local : In(packet_stream())
        Inputs from the neighbours (north = −y, east = +x, south = +y,
        west = −x) and from the local core. The west input of (0, 0) is the
        host's injection port.
    o_north, o_east, o_south, o_west, o_local : Out(packet_stream())
        Outputs to the neighbours and to the local core's synapse unit. The
        west output of (0, 0) is the host's ejection port.
    idle : Out(1)
        High when all input FIFOs of this router are empty.
    """

    i_north: In(packet_stream())
    i_east: In(packet_stream())
    i_south: In(packet_stream())
    i_west: In(packet_stream())
    i_local: In(packet_stream())
    o_north: Out(packet_stream())
    o_east: Out(packet_stream())
    o_south: Out(packet_stream())
    o_west: Out(packet_stream())
    o_local: Out(packet_stream())
    idle: Out(1)

    def __init__(self, x: int, y: int, rows: int, cols: int, *, fifo_depth: int = 2):
        if not (1 <= rows <= 16 and 1 <= cols <= 16):
            raise ValueError(f"router: mesh {rows}x{cols} is outside 1x1 .. 16x16")
        if not (0 <= x < cols and 0 <= y < rows):
            raise ValueError(f"router: position ({x}, {y}) is outside the {rows}x{cols} mesh")
        if fifo_depth < 1:
            raise ValueError(f"router: fifo_depth must be at least 1, got {fifo_depth}")
        self.x, self.y = x, y
        self.rows, self.cols = rows, cols
        self.fifo_depth = fifo_depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        n = len(DIRECTIONS)
        east, west = DIRECTIONS.index("east"), DIRECTIONS.index("west")
        north, south = DIRECTIONS.index("north"), DIRECTIONS.index("south")
        local = DIRECTIONS.index("local")

        heads = []   # packet at the head of each input FIFO
        wants = []   # one-hot output request of each input (0 when its FIFO is empty)
        takes = []   # each input's FIFO read enable
        empty = []
        for d in DIRECTIONS:
            port = getattr(self, f"i_{d}")
            fifo = m.submodules[f"fifo_{d}"] = SyncFIFO(width=PACKET.size, depth=self.fifo_depth)
            m.d.comb += [
                fifo.w_data.eq(port.payload),
                fifo.w_en.eq(port.valid),
                port.ready.eq(fifo.w_rdy),
            ]
            head = PACKET(fifo.r_data)

            # A host-bound packet heads for core (0, 0) whatever its x, y say.
            dx = Mux(head.to_host, 0, head.x)
            dy = Mux(head.to_host, 0, head.y)
            out = Signal(range(n), name=f"route_{d}")
            with m.If(dx > self.x):
                m.d.comb += out.eq(east)
            with m.Elif(dx < self.x):
                m.d.comb += out.eq(west)
            with m.Elif(dy > self.y):
                m.d.comb += out.eq(south)
            with m.Elif(dy < self.y):
                m.d.comb += out.eq(north)
            with m.Elif(head.to_host):
                m.d.comb += out.eq(west)
            with m.Else():
                m.d.comb += out.eq(local)

            want = Signal(n, name=f"want_{d}")
            m.d.comb += want.eq(Mux(fifo.r_rdy, 1 << out, 0))
            take = Signal(name=f"take_{d}")
            m.d.comb += fifo.r_en.eq(take)

            heads.append(head)
            wants.append(want)
            takes.append(take)
            empty.append(fifo.level == 0)

        m.d.comb += self.idle.eq(Cat(empty).all())

        granted = [[] for _ in range(n)]  # per input: "output o transfers from me"
        for o, d in enumerate(DIRECTIONS):
            port = getattr(self, f"o_{d}")
            req = Signal(n, name=f"req_{d}")
            m.d.comb += req.eq(Cat(want[o] for want in wants))

            # Round-robin: the requester that follows the last granted input
            # in DIRECTIONS order wins, so each waits at most n - 1 grants.
            last = Signal(range(n), init=n - 1, name=f"last_{d}")
            rr = Signal(range(n), name=f"rr_{d}")
            with m.Switch(last):
                for prev in range(n):
                    with m.Case(prev):
                        # Later assignments win: go from lowest to highest priority.
                        for k in reversed(range(1, n + 1)):
                            i = (prev + k) % n
                            with m.If(req[i]):
                                m.d.comb += rr.eq(i)

            # Hold the grant of a presented packet until it is taken (stream rule).
            locked = Signal(name=f"locked_{d}")
            held = Signal(range(n), name=f"held_{d}")
            grant = Signal(range(n), name=f"grant_{d}")
            m.d.comb += grant.eq(Mux(locked, held, rr))

            m.d.comb += port.valid.eq(req.bit_select(grant, 1))
            with m.Switch(grant):
                for i in range(n):
                    with m.Case(i):
                        m.d.comb += port.payload.eq(heads[i])

            transfer = port.valid & port.ready
            m.d.sync += [
                locked.eq(port.valid & ~port.ready),
                held.eq(grant),
            ]
            with m.If(transfer):
                m.d.sync += last.eq(grant)
            for i in range(n):
                granted[i].append(transfer & (grant == i))

        for take, terms in zip(takes, granted, strict=True):
            m.d.comb += take.eq(Cat(terms).any())

        return m
