"""Compiler from spiking networks to chip images.

Build a :class:`Network` (populations, projections with delays, input and
output ports), then :func:`compile_network` quantizes it
(:mod:`~neuromesh.compiler.quantize`), partitions and places it on the mesh
(:mod:`~neuromesh.compiler.placement`), routes it and emits the chip image;
:func:`~neuromesh.compiler.reference.simulate` is the float reference with
the same discretisation. NIR import, convolutions, the design-rule report
and the digits demo are not built yet (see the compiler issue).
"""

from .lower import Compiled, compile_network
from .network import Network, NetworkError

__all__ = ["Network", "NetworkError", "Compiled", "compile_network"]
