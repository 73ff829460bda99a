"""A UART bridge for the host link: 8N1 receive and transmit at a baud rate
set by a clock divisor, with a receive FIFO in front of the link.

A board connects its UART pins to :class:`UARTBridge` and the bridge's byte
streams to :class:`~neuromesh.rtl.chip.Chip` (docs/architecture.md §9).

Flow: the host link refuses bytes (``rx.ready`` low) from the end of a
command frame until that command's final response has been handed to its
transmitter (§9.2). A UART cannot stall the sender, so bytes that arrive
meanwhile wait in the receive FIFO; once it is full they are dropped and
counted in ``overruns``. The bridge relies on the **host respecting flow**:
one command at a time, the next sent only after the final response of the
previous one, which is what :class:`neuromesh.host.HostDriver` does. The FIFO
then only needs to bridge the few clocks in which the link is between
states, and is small (``fifo_depth``, default 8), not a frame (1036 bytes).
"""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .layouts import byte_stream

__all__ = ["UARTRx", "UARTTx", "UARTBridge", "UARTChip", "divisor_for"]


def divisor_for(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``; fails if the rate
    would be off by more than 2 % (a UART frame tolerates about 4 %)."""
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise ValueError(f"baud {baud} needs at least 4 clocks per bit; "
                         f"the clock of {clk_hz / 1e6:g} MHz gives {clk_hz / baud:.2f}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"baud {baud} at {clk_hz / 1e6:g} MHz: divisor {divisor} is off "
                         f"by {100 * error:.1f} % (more than 2 %)")
    return divisor


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor = {divisor!r} must be an integer of at least 4 "
                         f"(clock cycles per bit)")


class UARTRx(wiring.Component):
    """8N1 receiver.

    The line is synchronised by two flip-flops. A falling edge starts a
    frame; the start bit is confirmed at its middle, then each data bit and
    the stop bit are sampled at their middles, ``divisor`` clocks apart. A
    frame whose stop bit reads 0 is dropped (``framing_error`` pulses).

    Parameters
    ----------
    divisor:
        Clock cycles per bit (at least 4).

    Attributes
    ----------
    pin: In(1)
        The serial line (idle high).
    data: Out(8), valid: Out(1)
        ``valid`` pulses for one clock with each received byte in ``data``.
    framing_error: Out(1)
        Pulses when a stop bit is missing.
    """

    pin: In(1, init=1)
    data: Out(8)
    valid: Out(1)
    framing_error: Out(1)

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.pin), line.eq(sync1)]

        timer = Signal(range(self.divisor))
        bit = Signal(range(8))
        shreg = Signal(8)
        m.d.sync += [self.valid.eq(0), self.framing_error.eq(0)]
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(line):          # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq((shreg >> 1) | (line << 7)),
                                 timer.eq(self.divisor - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.sync += [self.data.eq(shreg), self.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter: start bit, 8 data bits LSB first, one stop bit.

    Parameters
    ----------
    divisor:
        Clock cycles per bit (at least 4).

    Attributes
    ----------
    i: In(byte_stream())
        Bytes to send; a byte is taken when the previous stop bit has ended.
    pin: Out(1)
        The serial line (idle high).
    """

    i: In(byte_stream())
    pin: Out(1, init=1)

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        bits_left = Signal(range(11))
        shreg = Signal(10, init=0x3FF)     # stop, data[7:0], start; shifted out LSB first
        # Ready in the last clock of the stop bit too, so bytes go back to back.
        m.d.comb += [self.pin.eq(shreg[0]),
                     self.i.ready.eq((bits_left == 0) | ((bits_left == 1) & (timer == 0)))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq((1 << 9) | (self.i.payload << 1)), bits_left.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(bits_left != 0):
            with m.If(timer == 0):
                m.d.sync += [shreg.eq((shreg >> 1) | (1 << 9)), bits_left.eq(bits_left - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTBridge(wiring.Component):
    """UART pins to and from the host link's byte streams.

    Parameters
    ----------
    divisor:
        Clock cycles per bit (use :func:`divisor_for`).
    fifo_depth:
        Receive FIFO entries, its output register included, at least 2 (see
        the module docstring for why it can be small).

    Attributes
    ----------
    rx_pin: In(1), tx_pin: Out(1)
        The serial lines (idle high).
    rx: Out(byte_stream())
        Received bytes, to the host link's ``rx``.
    tx: In(byte_stream())
        Bytes from the host link's ``tx``, to be sent.
    overruns: Out(16)
        Bytes dropped because the FIFO was full (saturates).
    framing_errors: Out(16)
        Frames dropped for a missing stop bit (saturates).
    """

    rx_pin: In(1, init=1)
    tx_pin: Out(1, init=1)
    rx: Out(byte_stream())
    tx: In(byte_stream())
    overruns: Out(16)
    framing_errors: Out(16)

    def __init__(self, divisor: int, *, fifo_depth: int = 8):
        _check_divisor(divisor)
        if fifo_depth < 2:
            raise ValueError(f"fifo_depth = {fifo_depth} must be at least 2 "
                             f"(a FIFO and its output register)")
        self.divisor = divisor
        self.fifo_depth = fifo_depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = UARTRx(self.divisor)
        m.submodules.transmitter = transmitter = UARTTx(self.divisor)
        # A few entries in flip-flops (an unbuffered FIFO reads through a
        # multiplexer), then one output register: the byte the host link
        # sees comes straight from flip-flops, not through that multiplexer
        # (it was on the iCEBreaker's critical path, docs/synthesis.md).
        # The register is one of the ``fifo_depth`` entries.
        m.submodules.fifo = fifo = SyncFIFO(width=8, depth=self.fifo_depth - 1)
        out_valid = Signal()
        out_data = Signal(8)
        m.d.comb += [
            receiver.pin.eq(self.rx_pin),
            fifo.w_data.eq(receiver.data),
            fifo.w_en.eq(receiver.valid),
            self.rx.valid.eq(out_valid),
            self.rx.payload.eq(out_data),
            fifo.r_en.eq(~out_valid | self.rx.ready),
            self.tx_pin.eq(transmitter.pin),
        ]
        with m.If(fifo.r_en & fifo.r_rdy):
            m.d.sync += [out_valid.eq(1), out_data.eq(fifo.r_data)]
        with m.Elif(self.rx.ready):
            m.d.sync += out_valid.eq(0)
        wiring.connect(m, wiring.flipped(self.tx), transmitter.i)
        with m.If(receiver.valid & ~fifo.w_rdy & (self.overruns != 0xFFFF)):
            m.d.sync += self.overruns.eq(self.overruns + 1)
        with m.If(receiver.framing_error & (self.framing_errors != 0xFFFF)):
            m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
        return m


class UARTChip(wiring.Component):
    """A :class:`~neuromesh.rtl.chip.Chip` behind a :class:`UARTBridge`: the
    top level of a board, less its clock and pins.

    Parameters
    ----------
    chip:
        The chip (its ``rx``/``tx`` byte streams are bridged).
    divisor, fifo_depth:
        As for :class:`UARTBridge`.

    Attributes
    ----------
    rx_pin: In(1), tx_pin: Out(1)
        The serial lines.
    cycles: Out(64)
        The chip's running-cycle counter.
    """

    rx_pin: In(1, init=1)
    tx_pin: Out(1, init=1)
    cycles: Out(64)

    def __init__(self, chip, divisor: int, *, fifo_depth: int = 8):
        self.chip = chip
        self.bridge = UARTBridge(divisor, fifo_depth=fifo_depth)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.chip = chip = self.chip
        m.submodules.uart = bridge = self.bridge
        wiring.connect(m, bridge.rx, chip.rx)
        wiring.connect(m, chip.tx, bridge.tx)
        m.d.comb += [bridge.rx_pin.eq(self.rx_pin), self.tx_pin.eq(bridge.tx_pin),
                     self.cycles.eq(chip.cycles)]
        return m
