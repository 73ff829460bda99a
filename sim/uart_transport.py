"""A bit-level UART model for Amaranth testbenches, as a host-driver transport.

:class:`UARTLineTransport` plays the host's serial port: it drives the
chip's RX line bit by bit (8N1) and decodes the chip's TX line every clock,
so :class:`neuromesh.host.HostDriver` -- unchanged from what talks to a
board -- can drive a UART top level inside Amaranth's simulator.
"""

from __future__ import annotations

__all__ = ["UARTLineTransport", "UARTDecoder"]


class UARTDecoder:
    """Decodes an 8N1 line sampled once per clock (``bit_cycles`` per bit)."""

    def __init__(self, bit_cycles: float):
        self.bit_cycles = bit_cycles
        self.bytes = bytearray()
        self.framing_errors = 0
        self._t = None          # clocks since the start edge, None while idle
        self._bits = []

    def sample(self, level: int):
        if self._t is None:
            if not level:
                self._t, self._bits = 0, []
            return
        self._t += 1
        k = len(self._bits)               # next bit to take: 0 start, 1..8 data, 9 stop
        if self._t >= (k + 0.5) * self.bit_cycles:
            self._bits.append(level)
            if k == 9:
                if self._bits[0] == 0 and level == 1:
                    self.bytes.append(sum(b << i for i, b in enumerate(self._bits[1:9])))
                else:
                    self.framing_errors += 1
                self._t = None


class UARTLineTransport:
    """Host-driver transport over a UART top level's pins in Amaranth's simulator.

    Parameters
    ----------
    ctx:
        The testbench context.
    rx_pin, tx_pin:
        The chip's receive line (driven here) and transmit line (decoded here).
    bit_cycles:
        Clock cycles per bit on the host side; a value other than the chip's
        divisor models a baud-rate mismatch.
    read_cycles:
        Clock cycles one :meth:`read` lets pass.
    gap_cycles:
        Idle clocks between two bytes the host sends.
    """

    def __init__(self, ctx, rx_pin, tx_pin, bit_cycles: float, *, read_cycles: int = 256,
                 gap_cycles: int = 0):
        self.ctx = ctx
        self.rx_pin, self.tx_pin = rx_pin, tx_pin
        self.bit_cycles = bit_cycles
        self.read_cycles = read_cycles
        self.gap_cycles = gap_cycles
        self.decoder = UARTDecoder(bit_cycles)
        self.cycles = 0
        ctx.set(rx_pin, 1)

    async def _tick(self):
        level = self.ctx.get(self.tx_pin)
        await self.ctx.tick()
        self.cycles += 1
        self.decoder.sample(level)

    async def write(self, data: bytes):
        """Send ``data`` as 8N1 frames (never stalls: a UART has no flow control)."""
        ctx = self.ctx
        start = self.cycles
        elapsed = 0.0
        for byte in data:
            bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1]
            for b in bits:
                ctx.set(self.rx_pin, b)
                elapsed += self.bit_cycles
                while self.cycles - start < round(elapsed):
                    await self._tick()
            for _ in range(self.gap_cycles):
                await self._tick()
            start, elapsed = self.cycles, 0.0
        ctx.set(self.rx_pin, 1)

    async def read(self) -> bytes:
        """Let ``read_cycles`` clocks pass; return the bytes decoded meanwhile."""
        for _ in range(self.read_cycles):
            await self._tick()
        data, self.decoder.bytes = bytes(self.decoder.bytes), bytearray()
        return data
