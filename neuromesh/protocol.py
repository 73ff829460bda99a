"""The host-link byte protocol (docs/architecture.md §9): constants and codec.

Every backend speaks it: the RTL's host link over a byte stream, a board over
UART, and the host driver. A frame is::

    SOF | TYPE | LEN (u16 LE) | PAYLOAD (LEN bytes) | CRC16 (u16 LE)

with ``CRC16`` = CRC-16/CCITT-FALSE over ``TYPE, LEN, PAYLOAD``. All
multi-byte integers are little-endian.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

__all__ = [
    "SOF_HOST", "SOF_CHIP", "MAX_PAYLOAD", "MAX_WORDS", "MAX_SPIKES", "MAX_CHANNELS_PER_FRAME",
    "Command", "Response", "ErrorCode", "ResetMode", "ProtocolError", "Frame",
    "crc16", "encode", "FrameDecoder", "INFO_LAYOUT", "PROTOCOL_VERSION",
    "cmd_identify", "cmd_write", "cmd_read", "cmd_spikes", "cmd_run", "cmd_status", "cmd_reset",
]

PROTOCOL_VERSION = 1
SOF_HOST = 0xA5            #: first byte of a host -> chip frame
SOF_CHIP = 0x5A            #: first byte of a chip -> host frame
MAX_WORDS = 128            #: words per WRITE / READ frame
MAX_PAYLOAD = 6 + 8 * MAX_WORDS   #: largest payload either side sends (1030 bytes)
MAX_SPIKES = (MAX_PAYLOAD - 2) // 3        #: spikes per SPIKES frame (342)
MAX_CHANNELS_PER_FRAME = (MAX_PAYLOAD - 6) // 2  #: channels per OUTPUT frame (512)


class Command(enum.IntEnum):
    """Frame types the host sends."""

    IDENTIFY = 0x01  #: ``()`` -> INFO
    WRITE = 0x02     #: ``addr u32, count u16, count x word u64`` -> ACK
    READ = 0x03      #: ``addr u32, count u16`` -> DATA
    SPIKES = 0x04    #: ``count u16, count x (core u8, axon u16)`` -> ACK
    RUN = 0x05       #: ``steps u32`` -> OUTPUT* then DONE
    STATUS = 0x06    #: ``()`` -> STATUS
    RESET = 0x07     #: ``mode u8`` -> ACK


class Response(enum.IntEnum):
    """Frame types the chip sends."""

    ACK = 0x81       #: ``command u8``
    DATA = 0x82      #: ``addr u32, count u16, count x word u64``
    INFO = 0x83      #: ``version u8, geometry, step u32`` (see INFO_LAYOUT)
    STATUS = 0x84    #: ``step u32, queued_spikes u16, discarded u16``
    OUTPUT = 0x85    #: ``step u32, count u16, count x channel u16``
    DONE = 0x86      #: ``step u32`` (the step counter after the run)
    ERROR = 0xEE     #: ``code u8, command u8, detail u32``


class ErrorCode(enum.IntEnum):
    """``code`` of an ERROR response. A rejected frame changes no state."""

    BAD_CHECKSUM = 1     #: CRC mismatch; detail = received CRC
    UNKNOWN_COMMAND = 2  #: TYPE is not a Command; detail = TYPE
    BAD_LENGTH = 3       #: LEN does not fit the command; detail = LEN
    BAD_ADDRESS = 4      #: a word or axon outside the address map; detail = address
    TIMEOUT = 5          #: the frame stopped arriving mid-way; detail = bytes received
    BAD_VALUE = 6        #: a count/steps/mode outside its range; detail = the value


class ResetMode(enum.IntEnum):
    """Payload of RESET."""

    STATE = 0   #: zero u, v, refractory, accumulators, input queue; step = 0
    ALL = 1     #: also zero every configuration memory


class ProtocolError(ValueError):
    """A byte stream or frame that breaks the protocol (host side)."""


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its SOF, type byte and payload."""

    sof: int
    type: int
    payload: bytes


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout).

    ``crc16(b"123456789") == 0x29B1``.
    """
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def encode(type_: int, payload: bytes = b"", *, sof: int = SOF_HOST) -> bytes:
    """One frame, ready to send."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD "
                            f"{MAX_PAYLOAD}")
    body = struct.pack("<BH", type_, len(payload)) + payload
    return bytes([sof]) + body + struct.pack("<H", crc16(body))


class FrameDecoder:
    """Split a received byte stream into frames (host side).

    Bytes before a SOF are skipped (and counted in ``discarded``), as the chip
    does. A frame with a bad CRC or an oversize LEN raises
    :class:`ProtocolError`.
    """

    def __init__(self, sof: int = SOF_CHIP):
        self.sof = sof
        self.buffer = bytearray()
        self.discarded = 0
        self._error = None

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames completed by them.

        A bad frame raises :class:`ProtocolError`; if good frames came before
        it in the same call they are returned first and the error is raised
        by the next call.
        """
        self.buffer += data
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        frames = []
        while True:
            try:
                frame = self._next()
            except ProtocolError as e:
                if not frames:
                    raise
                self._error = e
                return frames
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> Frame | None:
        start = self.buffer.find(self.sof)
        if start < 0:
            self.discarded += len(self.buffer)
            self.buffer.clear()
            return None
        self.discarded += start
        del self.buffer[:start]
        if len(self.buffer) < 4:
            return None
        type_, length = struct.unpack_from("<BH", self.buffer, 1)
        if length > MAX_PAYLOAD:
            del self.buffer[:1]
            raise ProtocolError(f"frame type 0x{type_:02x} announces {length} payload "
                                f"bytes (MAX_PAYLOAD {MAX_PAYLOAD})")
        if len(self.buffer) < 6 + length:
            return None
        body = bytes(self.buffer[1:4 + length])
        (crc,) = struct.unpack_from("<H", self.buffer, 4 + length)
        del self.buffer[:6 + length]
        if crc != crc16(body):
            raise ProtocolError(f"frame type 0x{type_:02x}: CRC 0x{crc:04x} does not "
                                f"match computed 0x{crc16(body):04x}")
        return Frame(self.sof, type_, body[3:])

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero = truncated)."""
        return len(self.buffer)


# --- Host -> chip commands --------------------------------------------------

def cmd_identify() -> bytes:
    """IDENTIFY frame: ask for protocol version, geometry and step counter."""
    return encode(Command.IDENTIFY)


def cmd_write(address: int, words) -> bytes:
    """WRITE frame: ``words`` (1..128) to consecutive addresses from ``address``."""
    words = [int(w) for w in words]
    if not 1 <= len(words) <= MAX_WORDS:
        raise ProtocolError(f"WRITE of {len(words)} words; 1..{MAX_WORDS} per frame")
    return encode(Command.WRITE, struct.pack(f"<IH{len(words)}Q", address, len(words), *words))


def cmd_read(address: int, count: int) -> bytes:
    """READ frame: ``count`` (1..128) words from ``address`` on."""
    if not 1 <= count <= MAX_WORDS:
        raise ProtocolError(f"READ of {count} words; 1..{MAX_WORDS} per frame")
    return encode(Command.READ, struct.pack("<IH", address, count))


def cmd_spikes(spikes) -> bytes:
    """SPIKES frame: queue ``(core id, axon)`` pairs as input of the next step."""
    spikes = list(spikes)
    if len(spikes) > MAX_SPIKES:
        raise ProtocolError(f"{len(spikes)} spikes in one frame; at most {MAX_SPIKES}")
    payload = struct.pack("<H", len(spikes)) + b"".join(
        struct.pack("<BH", int(c), int(a)) for c, a in spikes)
    return encode(Command.SPIKES, payload)


def cmd_run(steps: int) -> bytes:
    """RUN frame: advance the chip ``steps`` (>= 1) timesteps."""
    if not 1 <= steps < 1 << 32:
        raise ProtocolError(f"RUN of {steps} steps; 1..2**32-1")
    return encode(Command.RUN, struct.pack("<I", steps))


def cmd_status() -> bytes:
    """STATUS frame."""
    return encode(Command.STATUS)


def cmd_reset(mode: ResetMode = ResetMode.STATE) -> bytes:
    """RESET frame (see :class:`ResetMode`)."""
    return encode(Command.RESET, struct.pack("<B", int(mode)))


#: Layout of the INFO payload: version, rows, cols, n_neurons, n_axons,
#: n_synapses, n_fanout, n_profiles, n_groups, delay_slots, step.
INFO_LAYOUT = struct.Struct("<BBBHHIHBBBI")
