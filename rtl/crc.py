"""CRC-16/CCITT-FALSE of the host link (docs/architecture.md §9.1), one byte per clock.

:func:`crc16_next` is the combinational update by one byte; :class:`CRC16`
keeps a running CRC in a register. The reference is
:func:`neuromesh.protocol.crc16`.
"""

from functools import reduce
from operator import xor

from amaranth import Cat, Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["POLY", "INIT", "crc16_next", "CRC16"]

POLY = 0x1021   #: generator polynomial x^16 + x^12 + x^5 + 1
INIT = 0xFFFF   #: initial value; CCITT-FALSE has no reflection and no final XOR


def _bitwise_next(crc: int, byte: int) -> int:
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _taps() -> list[list[int]]:
    # Without reflection or final XOR the update is linear over GF(2) in the
    # 24 input bits (16 CRC bits, then 8 data bits), so each output bit is the
    # XOR of a fixed set of input bits. Pushing each unit vector through the
    # bitwise definition finds those sets; the result is a flat XOR network
    # instead of eight chained multiplexers.
    columns = [_bitwise_next(1 << i, 0) if i < 16 else _bitwise_next(0, 1 << (i - 16))
               for i in range(24)]
    return [[i for i, col in enumerate(columns) if col >> j & 1] for j in range(16)]


_TAPS = _taps()


def crc16_next(crc, byte) -> Value:
    """The CRC after feeding one more byte (combinational).

    Parameters
    ----------
    crc:
        The running CRC, 16 bits (:data:`INIT` before the first byte).
    byte:
        The next byte, 8 bits, most significant bit first as CCITT-FALSE
        prescribes.

    Returns
    -------
    Value
        16 bits; ``crc16_next(c, b)`` equals ``neuromesh.protocol.crc16(bytes([b]), c)``.
    """
    inputs = Cat(Value.cast(crc)[:16], Value.cast(byte)[:8])
    return Cat(*(reduce(xor, (inputs[i] for i in taps)) for taps in _TAPS))


class CRC16(wiring.Component):
    """A running CRC-16/CCITT-FALSE register, updated by one byte per clock.

    Attributes
    ----------
    clear: In(1)
        Restart at :data:`INIT` on the next clock. Takes precedence over ``valid``.
    valid: In(1)
        Fold ``data`` into the CRC on the next clock.
    data: In(8)
        The byte to fold in.
    crc: Out(16)
        The CRC of every byte folded in since the last ``clear``.
    """

    clear: In(1)
    valid: In(1)
    data: In(8)
    crc: Out(16, init=INIT)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.clear):
            m.d.sync += self.crc.eq(INIT)
        with m.Elif(self.valid):
            m.d.sync += self.crc.eq(crc16_next(self.crc, self.data))
        return m


# Checked at import time: the derived XOR network must reproduce the check
# value of the spec, or every frame the gateware sends would be rejected.
def _self_check():
    crc = INIT
    for byte in b"123456789":
        out = 0
        bits = crc | byte << 16
        for j, taps in enumerate(_TAPS):
            out |= (sum(bits >> i & 1 for i in taps) & 1) << j
        crc = out
    assert crc == 0x29B1, hex(crc)


_self_check()
