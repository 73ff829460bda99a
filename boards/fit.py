"""Will a geometry fit a board? An estimate made before synthesis starts.

:func:`estimate` elaborates the board's top level for a geometry (well
under a second per core, no tool runs) and walks the result:

* **Memories** are read off the elaborated design: every
  :class:`amaranth.lib.memory.Memory` with its word width, depth and ports,
  and every ``SB_SPRAM256KA`` instance. Each memory is mapped the way
  yosys's ``memory_libmap`` maps it: onto the FPGA's block RAM in the
  cheapest of its aspect ratios (iCE40 EBR 2048x2 ... 256x16; ECP5 DP16KD
  16384x1 ... 1024x18 and 512x36), onto ECP5 distributed RAM (16x4), or
  into logic, whichever costs least by yosys's cost model (a block RAM 64
  (iCE40) or 128 (ECP5), a 16x4 LUT RAM 4, a bit of logic 1, plus read
  multiplexers). Memories with a combinational read port cannot be block
  RAM. This reproduces the block-RAM counts of the recorded builds exactly
  (docs/boards.md: iCEBreaker 28 EBR and 2 SPRAM, ULX3S-85F 147 DP16KD,
  with learning 195).
* **Logic and DSPs** are scaled per core from those recorded builds
  (``LOGIC``): a fixed part (host link, controller, UART) plus a part per
  core. Logic is an estimate to a few per cent; the memory counts are what
  usually decide.

:func:`check_fit` raises :class:`FitError` with the numbers (needed and
available per resource) and the largest geometry that fits.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from neuromesh.chip import ChipError, Geometry

from .catalog import Board, get_board

__all__ = ["Device", "DEVICES", "MemoryUse", "FitEstimate", "FitError", "estimate",
           "check_fit", "largest_fit", "map_memory"]


@dataclass(frozen=True)
class BlockRam:
    """A RAM primitive yosys can map a memory onto."""

    name: str                   #: the resource row it counts against
    modes: tuple                #: (width, depth) of each aspect ratio
    cost: float                 #: yosys's cost of one cell
    kind: str = "block"         #: "block" (synchronous read) or "distributed"


ICE40_EBR = BlockRam("EBR", ((2, 2048), (4, 1024), (8, 512), (16, 256)), 64)
ECP5_DP16KD = BlockRam("DP16KD", ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024),
                                  (36, 512)), 128)
ECP5_LUTRAM = BlockRam("LUT RAM (16x4)", ((4, 16),), 4, kind="distributed")

#: yosys memory_libmap's weights of a read multiplexer bit and a write-enable
#: demultiplexer bit.
FACTOR_MUX = 0.5
FACTOR_DEMUX = 0.5


@dataclass(frozen=True)
class Device:
    """An FPGA's resources as the fit check counts them."""

    name: str
    family: str                  #: "ice40" or "ecp5"
    logic: str                   #: the name of the logic row
    available: dict              #: resource -> count
    rams: tuple                  #: BlockRam options, block RAM first


DEVICES = {
    "icebreaker": Device("iCE40UP5K", "ice40", "logic cells",
                         {"logic cells": 5280, "EBR": 30, "SPRAM": 4, "DSP": 8},
                         (ICE40_EBR,)),
    "ulx3s-85f": Device("LFE5U-85F", "ecp5", "LUT4 slots",
                        {"LUT4 slots": 83640, "DP16KD": 208, "DSP": 156},
                        (ECP5_DP16KD, ECP5_LUTRAM)),
}

#: Logic and DSPs per family: (fixed, per core, per core with a learning
#: engine), from the recorded builds of docs/boards.md. iCE40: 5056 logic
#: cells for one core (the iCEBreaker build of 2026-12-07), split by the
#: hierarchical synthesis of docs/synthesis.md (core + router 53.5 %), and
#: the ECP5 learning engine's 3467 LUT4 slots per core; ECP5: host link and
#: controller 2677 LUT4 slots (docs/synthesis.md), 23972 for 8 cores, 51709
#: for 8 cores with learning; DSPs: 5 for one core, 33 for 8, 81 for 8 with
#: learning.
LOGIC = {
    "ice40": {"logic": (2426, 2630, 2630 + 3467), "DSP": (1, 4, 10)},
    "ecp5": {"logic": (2677, 2662, 6129), "DSP": (1, 4, 10)},
}


class FitError(ChipError):
    """A geometry that does not fit its board; ``estimate`` holds the numbers
    and ``suggestion`` the largest geometry that fits (or ``None``)."""

    def __init__(self, message: str, estimate: FitEstimate, suggestion: Geometry | None):
        super().__init__(message)
        self.estimate = estimate
        self.suggestion = suggestion


@dataclass
class MemoryUse:
    """One memory of the design and what it maps to."""

    path: str
    width: int
    depth: int
    resource: str          #: "EBR", "DP16KD", "SPRAM", "LUT RAM (16x4)" or "logic"
    cells: int             #: cells of that resource (bits for "logic")


@dataclass
class FitEstimate:
    """Resources a geometry needs on a board (before synthesis)."""

    board: str
    device: str
    geometry: str
    learning: bool
    needed: dict = field(default_factory=dict)       #: resource -> count
    available: dict = field(default_factory=dict)    #: resource -> count
    memories: list = field(default_factory=list)     #: MemoryUse, in design order
    estimated: tuple = ()                            #: rows that are scaled, not counted

    @property
    def over(self) -> dict:
        """Resources needed beyond what the device has: name -> (needed, available)."""
        return {k: (v, self.available[k]) for k, v in self.needed.items()
                if k in self.available and v > self.available[k]}

    @property
    def fits(self) -> bool:
        return not self.over

    def row(self, name: str) -> str:
        approx = "~" if name in self.estimated else ""
        return f"{name} {approx}{self.needed[name]} needed / {self.available[name]} available"

    def summary(self) -> str:
        lines = [f"fit check  {self.board} ({self.device}), geometry {self.geometry}"
                 + (", with learning engines" if self.learning else ""),
                 f"{'resource':<16} {'needed':>8} {'available':>10} {'%':>7}"]
        for name, avail in self.available.items():
            need = self.needed.get(name, 0)
            approx = "~" if name in self.estimated else ""
            flag = "  OVER" if need > avail else ""
            lines.append(f"{name:<16} {approx + str(need):>8} {avail:>10} "
                         f"{100 * need / avail:>6.1f}%{flag}")
        return "\n".join(lines)


def map_memory(width: int, depth: int, *, n_read: int = 1, n_write: int = 1,
               async_read: bool = False, rams=(ICE40_EBR,),
               style: str | None = None) -> tuple[str, int]:
    """Where yosys puts a ``depth`` x ``width`` memory: ``(resource, cells)``
    of the cheapest option (``("logic", bits)`` when flip-flops and LUTs
    win, as yosys keeps logic unless another option costs strictly less).
    ``style``: the memory's ``ram_style`` attribute, if any."""
    bits = width * depth
    if style in ("logic", "registers"):
        return "logic", bits
    best, best_cost = ("logic", bits), float(bits)
    for ram in rams:
        if ram.kind == "block" and (async_read or style == "distributed"):
            continue
        if ram.kind == "distributed" and style == "block":
            continue
        for mode_width, mode_depth in ram.modes:
            mult_a = math.ceil(depth / mode_depth)           # address blocks
            cells = mult_a * math.ceil(width / mode_width) * max(n_read, 1)
            cost = ram.cost * cells
            cost += FACTOR_MUX * (mult_a - 1) * width * n_read
            if mult_a > 1:
                cost += FACTOR_DEMUX * mult_a * n_write
            if cost < best_cost:
                best, best_cost = (ram.name, cells), cost
    return best


def _walk(fragment, path=""):
    from amaranth.hdl import Instance
    from amaranth.lib.memory import Memory
    for origin in getattr(fragment, "origins", None) or ():
        if isinstance(origin, Memory):
            yield path, origin
            break
    if isinstance(fragment, Instance):
        yield path, fragment
    for sub, name, *_ in getattr(fragment, "subfragments", ()):
        yield from _walk(sub, f"{path}.{name}" if path else str(name))


def estimate(board: str | Board, geometry: Geometry | str, *,
             learning: bool = False) -> FitEstimate:
    """The resources ``geometry`` needs on ``board``: memories counted on the
    elaborated design, logic and DSPs scaled per core (see the module
    docstring). No tool runs."""
    from amaranth.hdl import Fragment, Instance, Shape
    from amaranth.lib.memory import Memory

    from .top import BoardTop
    b = board if isinstance(board, Board) else get_board(board)
    g = Geometry.parse(geometry) if isinstance(geometry, str) else geometry
    dev = DEVICES[b.name]
    est = FitEstimate(board=b.name, device=dev.name, geometry=str(g), learning=learning,
                      available=dict(dev.available))
    needed = {name: 0 for name in dev.available}
    fragment = Fragment.get(BoardTop(b, g, learning=learning), b.make_platform())
    for path, thing in _walk(fragment):
        if isinstance(thing, Instance):
            if thing.type == "SB_SPRAM256KA":
                est.memories.append(MemoryUse(path, 16, 16384, "SPRAM", 1))
                needed["SPRAM"] += 1
            continue
        assert isinstance(thing, Memory)
        width = Shape.cast(thing.shape).width
        resource, cells = map_memory(
            width, thing.depth, n_read=len(thing.read_ports), n_write=len(thing.write_ports),
            async_read=any(p.domain == "comb" for p in thing.read_ports),
            rams=dev.rams, style=(thing.attrs or {}).get("ram_style"))
        est.memories.append(MemoryUse(path, width, thing.depth, resource, cells))
        if resource in needed:
            needed[resource] += cells
    fixed, per_core, per_learning = LOGIC[dev.family]["logic"]
    needed[dev.logic] = fixed + g.n_cores * (per_learning if learning else per_core)
    fixed, per_core, per_learning = LOGIC[dev.family]["DSP"]
    needed["DSP"] = fixed + g.n_cores * (per_learning if learning else per_core)
    est.needed = needed
    est.estimated = (dev.logic,)
    return est


def _smaller_meshes(g: Geometry):
    """Meshes inside ``g``'s (rows <= R, cols <= C, fewer cores), largest
    first, the squarer first among equals."""
    meshes = [(r, c) for r in range(1, g.rows + 1) for c in range(1, g.cols + 1)
              if r * c < g.n_cores]
    meshes.sort(key=lambda rc: (-rc[0] * rc[1], abs(rc[0] - rc[1]), rc[0]))
    for r, c in meshes:
        yield dataclasses.replace(g, rows=r, cols=c)


def largest_fit(board: str | Board, geometry: Geometry, *, learning: bool = False,
                cache: dict | None = None) -> Geometry | None:
    """The largest geometry that fits ``board``: ``geometry``'s per-core sizes
    on the largest mesh inside its mesh, else the board's default geometry
    (if it fits with ``learning``), else ``None``. Meshes whose need,
    interpolated between one core and ``geometry``, is clearly over are not
    elaborated."""
    b = board if isinstance(board, Board) else get_board(board)
    cache = {} if cache is None else cache

    def est(g):
        key = str(g)
        if key not in cache:
            cache[key] = estimate(b, g, learning=learning)
        return cache[key]

    if geometry.n_cores > 1:
        one = est(dataclasses.replace(geometry, rows=1, cols=1))
        if one.fits:
            full = est(geometry)
            for g in _smaller_meshes(geometry):
                k = (g.n_cores - 1) / (geometry.n_cores - 1)
                predicted = {name: one.needed[name] + k * (full.needed[name] - one.needed[name])
                             for name in one.available}
                if any(predicted[name] > 1.05 * one.available[name] for name in predicted):
                    continue
                if est(g).fits:
                    return g
            return dataclasses.replace(geometry, rows=1, cols=1)
    default = Geometry.parse(b.geometry)
    if default != geometry and est(default).fits:
        return default
    return None


def check_fit(board: str | Board, geometry: Geometry | str, *,
              learning: bool = False) -> FitEstimate:
    """Return the estimate if ``geometry`` fits ``board``; raise
    :class:`FitError` (the resources over, needed vs available, and the
    largest geometry that fits) if it does not."""
    b = board if isinstance(board, Board) else get_board(board)
    g = Geometry.parse(geometry) if isinstance(geometry, str) else geometry
    est = estimate(b, g, learning=learning)
    if est.fits:
        return est
    suggestion = largest_fit(b, g, learning=learning, cache={str(g): est})
    over = "; ".join(est.row(name) for name in est.over)
    if suggestion is None:
        offer = "no geometry of this kind fits"
    else:
        offer = f"the largest geometry that fits is {suggestion}" + (
            " (the board's default)" if suggestion == Geometry.parse(b.geometry) else "")
    what = " with learning engines" if learning else ""
    raise FitError(f"geometry {g}{what} does not fit the {b.name} ({est.device}): {over}; "
                   f"{offer}; --force builds anyway", est, suggestion)
