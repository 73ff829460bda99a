"""Verilog generation of the chip top level."""

from amaranth.back import verilog
from amaranth.hdl import Fragment
from amaranth.hdl._ir import PortDirection  # as verilog.convert() uses it (amaranth 0.5)
from amaranth.lib import wiring

from neuromesh.chip import Geometry

from .chip import Chip
from .layouts import check_rtl_geometry

__all__ = ["generate_verilog", "write_verilog", "STAGES", "TOP_NAME"]

TOP_NAME = "neuromesh_chip"

#: The stages of :func:`write_verilog` (``neuromesh rtl``), in order.
STAGES = ["elaborate", "convert (RTLIL, yosys)", "write"]


def _ports(chip) -> dict:
    """The top-level ports from the component's signature, as
    :func:`amaranth.back.verilog.convert` names them."""
    ports = {}
    for path, member, value in chip.signature.flatten(chip):
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value.as_value() if hasattr(value, "as_value")
                                            else value, direction)
    return ports


def generate_verilog(geometry: Geometry, *, name: str = TOP_NAME, progress=None,
                     **hostlink_args) -> str:
    """Verilog source of :class:`~neuromesh.rtl.chip.Chip` for ``geometry``.

    The ports are ``clk``, ``rst``, the host link's byte streams
    (``rx__valid/ready/payload``, ``tx__valid/ready/payload``) and ``cycles``.
    ``progress``: a :class:`~neuromesh.progress.Progress` told of the
    elaborate and convert stages.
    """
    check_rtl_geometry(geometry)                 # before any stage is shown
    if progress is not None:
        progress.stage(STAGES[0])
    chip = Chip(geometry, **hostlink_args)
    ports = _ports(chip)
    fragment = Fragment.get(chip, None)
    if progress is not None:
        progress.stage(STAGES[1])
    text, _ = verilog.convert_fragment(fragment, ports, name, emit_src=True)
    return text


def write_verilog(path, geometry: Geometry, *, quiet: bool = False, verbose: bool = False,
                  **hostlink_args) -> str:
    """Generate the chip's Verilog (:func:`generate_verilog`) and write it to
    ``path``, showing the stages and their elapsed time on stderr
    (:class:`~neuromesh.progress.Progress`); returns the source."""
    from neuromesh.files import write_text
    from neuromesh.progress import Progress
    with Progress("rtl", STAGES, quiet=quiet, verbose=verbose) as progress:
        source = generate_verilog(geometry, progress=progress, **hostlink_args)
        progress.stage(STAGES[2])
        write_text(path, source)
    return source
