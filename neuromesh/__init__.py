"""neuromesh: an open neuromorphic chip and its toolchain.

The shared definition of the chip lives in this package: geometry and word
layouts (:mod:`neuromesh.chip`), the chip image file (:mod:`neuromesh.image`),
its decoding (:mod:`neuromesh.config`), the host-link protocol
(:mod:`neuromesh.protocol`) and the low-level builder
(:mod:`neuromesh.builder`). The parts are subpackages: ``neuromesh.rtl``,
``neuromesh.emulator``, ``neuromesh.compiler``, ``neuromesh.sim`` and
``neuromesh.boards``.
"""

from .builder import ChipBuilder, CoreBuilder
from .chip import ChipError, Geometry, Region
from .image import ChipImage, ImageError, load, save

__version__ = "0.1.0"
__all__ = ["Geometry", "Region", "ChipError", "ChipImage", "ImageError", "load", "save",
           "ChipBuilder", "CoreBuilder", "__version__"]
