"""A single-port RAM: one address for reads and writes, one clock of read
latency, output held during a write.

On iCE40 UltraPlus parts (``platform.device`` ``iCE40UP…``) it is built from
``SB_SPRAM256KA`` blocks (16384 x 16 each, as many side by side as the word
needs); everywhere else, including simulation and ECP5, it is a portable
:class:`amaranth.lib.memory.Memory` whose read port is disabled during writes,
so both behave alike. SPRAM contents are undefined after configuration: the
chip must be cleared (RESET ALL, docs/architecture.md §9.7) before use.
"""

from amaranth import Cat, ClockSignal, Instance, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SinglePortRAM", "SPRAM_DEPTH", "SPRAM_WIDTH", "spram_blocks"]

SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def spram_blocks(width: int, depth: int) -> int:
    """``SB_SPRAM256KA`` blocks a ``depth`` x ``width`` RAM takes."""
    return -(-width // SPRAM_WIDTH) * -(-depth // SPRAM_DEPTH)


def _has_spram(platform) -> bool:
    device = getattr(platform, "device", None) or ""
    return device.startswith("iCE40UP")


class SinglePortRAM(wiring.Component):
    """Single-port RAM of ``depth`` words of ``shape``.

    Parameters
    ----------
    shape:
        Word shape (a layout gives ``rdata`` and ``wdata`` that view).
    depth:
        Words.

    Attributes
    ----------
    addr: In(range(depth))
        The word read (data on ``rdata`` one clock later) or written.
    wdata: In(shape), we: In(1)
        Write ``wdata`` at ``addr`` when ``we``; ``rdata`` keeps its value.
    rdata: Out(shape)
    """

    def __init__(self, shape, depth: int):
        self.shape = shape
        self.depth = depth
        super().__init__({
            "addr": In(range(max(depth, 2))),
            "wdata": In(shape),
            "we": In(1),
            "rdata": Out(shape),
        })

    def elaborate(self, platform):
        m = Module()
        width = len(Value.cast(self.wdata))
        if _has_spram(platform):
            self._spram(m, width)
        else:
            m.submodules.mem = mem = Memory(shape=width, depth=max(self.depth, 2), init=[],
                                          attrs={"no_rw_check": 1})
            wr = mem.write_port()
            rd = mem.read_port()
            m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.wdata), wr.en.eq(self.we),
                         rd.addr.eq(self.addr), rd.en.eq(~self.we),
                         self.rdata.eq(rd.data)]
        return m

    def _spram(self, m, width):
        banks = -(-self.depth // SPRAM_DEPTH)
        lanes = -(-width // SPRAM_WIDTH)
        wdata = Signal(lanes * SPRAM_WIDTH)
        m.d.comb += wdata.eq(self.wdata)
        address = Signal(14)
        m.d.comb += address.eq(self.addr)
        bank = Signal(range(max(banks, 2)))
        bank_q = Signal.like(bank)
        m.d.comb += bank.eq(self.addr >> 14)
        with m.If(~self.we):
            m.d.sync += bank_q.eq(bank)
        outs = []
        for b in range(banks):
            lane_outs = []
            for j in range(lanes):
                dout = Signal(SPRAM_WIDTH, name=f"spram_{b}_{j}_dout")
                m.submodules[f"spram_{b}_{j}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=address,
                    i_DATAIN=wdata[SPRAM_WIDTH * j:SPRAM_WIDTH * (j + 1)],
                    i_MASKWREN=0b1111,
                    i_WREN=self.we & (bank == b),
                    i_CHIPSELECT=1,
                    i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=dout)
                lane_outs.append(dout)
            outs.append(Cat(*lane_outs))
        rdata = Signal(lanes * SPRAM_WIDTH)
        with m.Switch(bank_q):
            for b, out in enumerate(outs):
                with m.Case(b):
                    m.d.comb += rdata.eq(out)
        m.d.comb += self.rdata.eq(rdata[:width])
