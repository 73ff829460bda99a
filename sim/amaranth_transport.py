"""A host-driver transport over the chip's byte streams in Amaranth's simulator.

:class:`SimTransport` lets :class:`neuromesh.host.HostDriver` -- the same code
that talks to a board -- drive a :class:`neuromesh.rtl.chip.Chip` inside an
async Amaranth testbench: the clock advances while the driver awaits.
"""

from __future__ import annotations

__all__ = ["SimTransport"]


class SimTransport:
    """Byte transport on ``dut.rx`` / ``dut.tx`` for an Amaranth testbench.

    Parameters
    ----------
    ctx:
        The testbench context.
    dut:
        A component with ``rx`` (In byte stream) and ``tx`` (Out byte stream).
    read_cycles:
        Clock cycles one :meth:`read` lets pass.
    """

    def __init__(self, ctx, dut, read_cycles: int = 32):
        self.ctx = ctx
        self.dut = dut
        self.read_cycles = read_cycles
        self.received = bytearray()
        self.cycles = 0

    async def _tick(self):
        ctx, tx = self.ctx, self.dut.tx
        ctx.set(tx.ready, 1)
        byte = ctx.get(tx.payload) if ctx.get(tx.valid) else None
        await ctx.tick()
        self.cycles += 1
        if byte is not None:
            self.received.append(byte)

    async def write(self, data: bytes):
        """Send ``data`` one byte per accepted handshake."""
        ctx, rx = self.ctx, self.dut.rx
        for byte in data:
            ctx.set(rx.payload, byte)
            ctx.set(rx.valid, 1)
            while True:
                ready = ctx.get(rx.ready)
                await self._tick()
                if ready:
                    break
        ctx.set(rx.valid, 0)

    async def read(self) -> bytes:
        """Let ``read_cycles`` clocks pass; return the bytes received meanwhile."""
        for _ in range(self.read_cycles):
            await self._tick()
        data, self.received = bytes(self.received), bytearray()
        return data

    async def idle(self, cycles: int):
        """Let ``cycles`` clocks pass (bytes received are kept for :meth:`read`)."""
        for _ in range(cycles):
            await self._tick()
