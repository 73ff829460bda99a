"""Verilog generation of the chip top level."""

from amaranth.back import verilog

from neuromesh.chip import Geometry

from .chip import Chip

__all__ = ["generate_verilog", "TOP_NAME"]

TOP_NAME = "neuromesh_chip"


def generate_verilog(geometry: Geometry, *, name: str = TOP_NAME, **hostlink_args) -> str:
    """Verilog source of :class:`~neuromesh.rtl.chip.Chip` for ``geometry``.

    The ports are ``clk``, ``rst``, the host link's byte streams
    (``rx__valid/ready/payload``, ``tx__valid/ready/payload``) and ``cycles``.
    """
    chip = Chip(geometry, **hostlink_args)
    return verilog.convert(chip, name=name, ports=None)
