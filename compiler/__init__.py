"""Compiler from spiking networks to chip images.

Build a :class:`Network` (populations, dense/sparse/convolutional/pooling
projections with delays, recurrence, input ports, spiking outputs and
non-spiking readouts) or import one from NIR
(:func:`~neuromesh.compiler.nir_import.from_nir`), then
:func:`compile_network` checks every per-core limit
(:mod:`~neuromesh.compiler.drc`), quantizes it
(:mod:`~neuromesh.compiler.quantize`), partitions and places it on the mesh
(:mod:`~neuromesh.compiler.placement`), routes it and emits the chip image
with its report (:mod:`~neuromesh.compiler.report`).
:func:`~neuromesh.compiler.reference.simulate` is the float reference with
the same discretisation and :mod:`~neuromesh.compiler.agreement` compares
the two layer by layer.
"""

from .lower import Compiled, compile_network
from .network import Network, NetworkError

__all__ = ["Network", "NetworkError", "Compiled", "compile_network"]
