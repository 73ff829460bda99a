"""The learning engine's random source in gateware: one draw of the per-core
32-bit Galois LFSR (docs/architecture.md §11.5) as a fixed XOR network, so a
draw costs one clock.

The network is derived from :func:`neuromesh.learning_lfsr.step`: a draw is
:data:`~neuromesh.chip.LFSR_STEPS_PER_DRAW` steps, each linear over GF(2), so
every bit of the new state is the XOR of a fixed set of bits of the old one.
"""

import functools
from functools import reduce

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from neuromesh.chip import LFSR_BITS, LFSR_STEPS_PER_DRAW
from neuromesh.learning_lfsr import step

__all__ = ["DRAW_TAPS", "lfsr_draw", "LFSR"]


def _draw_columns(draws: int = 1):
    cols = []
    for j in range(LFSR_BITS):
        s = 1 << j
        for _ in range(draws * LFSR_STEPS_PER_DRAW):
            s = step(s)
        cols.append(s)
    return cols


@functools.cache
def _taps(draws: int):
    cols = _draw_columns(draws)
    return tuple(tuple(j for j in range(LFSR_BITS) if cols[j] >> i & 1)
                 for i in range(LFSR_BITS))


#: ``DRAW_TAPS[i]``: the bits of the old state whose XOR is bit ``i`` of the
#: state after one draw.
DRAW_TAPS = _taps(1)


def lfsr_draw(state, draws: int = 1):
    """The state after ``draws`` draws (16 steps each) of ``state`` (a 32-bit
    value), as one XOR network: several draws in one clock take the depth of
    one network, not of ``draws`` networks in series."""
    bits = [reduce(lambda a, b: a ^ b, (state[j] for j in taps)) if taps else Const(0, 1)
            for taps in _taps(draws)]
    return Cat(*bits)


class LFSR(wiring.Component):
    """A free-standing LFSR register (used by the tests; the learning engine
    keeps its own register and uses :func:`lfsr_draw`).

    Attributes
    ----------
    load, seed:
        Load ``seed`` into the register.
    advance:
        Make one draw: the register takes the state after 16 steps.
    state:
        The register; the value of a ``k``-bit draw is its low ``k`` bits
        after the draw.
    """

    load: In(1)
    seed: In(LFSR_BITS)
    advance: In(1)
    state: Out(LFSR_BITS)

    def elaborate(self, platform):
        m = Module()
        reg = Signal(LFSR_BITS)
        with m.If(self.load):
            m.d.sync += reg.eq(self.seed)
        with m.Elif(self.advance):
            m.d.sync += reg.eq(lfsr_draw(reg))
        m.d.comb += self.state.eq(reg)
        return m
