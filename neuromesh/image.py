"""Chip images: the list of memory writes that configures a chip, as a file.

A chip image is what the compiler emits, what the emulator decodes into its
arrays and what the host driver streams into the RTL or a board over the host
link. Besides the writes it carries the host-side port map (which input
channel feeds which core/axon, how many output channels exist). The file
format is specified in ``docs/architecture.md`` §8.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .chip import (
    MAX_CHANNELS,
    ChipError,
    Geometry,
    Region,
    core_xy,
    region_name,
    region_words,
)

__all__ = ["ImageError", "ChipImage", "InputPort", "MAGIC", "FORMAT_VERSION", "FLAG_LEARNING",
           "MAX_JSON_DEPTH", "save", "load"]

MAGIC = b"\x89NMI\r\n\x1a\n"
FORMAT_VERSION = 1
#: Header flag: the image uses the learning engine, so regions 8..13 exist (§11).
FLAG_LEARNING = 0x0001
# magic, version, flags, rows, cols, n_neurons, n_axons, n_synapses, n_fanout,
# n_profiles, n_groups, delay_slots, pad (0), n_runs, runs_bytes, meta_bytes, crc32
_HEADER = struct.Struct("<8sHHBBHHIHBBBBIIII")
_RUN = struct.Struct("<II")


class ImageError(ChipError):
    """A chip image file or object is malformed."""


@dataclass(frozen=True)
class InputPort:
    """Host input channel ``channel`` sends a spike to ``axon`` of core ``core``.

    ``core`` is a core id (``y << 4 | x``). One channel may feed several axons
    (a layer split over cores); each is one row of the port map.
    """

    channel: int
    core: int
    axon: int


@dataclass
class ChipImage:
    """Memory writes plus the host port map for one chip geometry.

    Attributes
    ----------
    geometry:
        The chip the image is for.
    addresses, words:
        Parallel arrays (uint32, uint64): write ``words[i]`` to ``addresses[i]``,
        in order (a later write to the same address wins).
    inputs:
        The input port map, a list of :class:`InputPort`.
    n_inputs, n_outputs:
        Number of host input and output channels.
    meta:
        Free-form JSON-able information (name, compiler report...).
    learning:
        The image configures the learning engine (header flag
        ``FLAG_LEARNING``): only then do the learning regions 8..13 exist.
    """

    geometry: Geometry
    addresses: np.ndarray
    words: np.ndarray
    inputs: list[InputPort] = field(default_factory=list)
    n_inputs: int = 0
    n_outputs: int = 0
    meta: dict = field(default_factory=dict)
    learning: bool = False

    def __post_init__(self):
        self.addresses = np.ascontiguousarray(self.addresses, dtype=np.uint32)
        self.words = np.ascontiguousarray(self.words, dtype=np.uint64)
        self.inputs = [InputPort(*map(int, (p.channel, p.core, p.axon)
                                          if isinstance(p, InputPort) else p))
                       for p in self.inputs]
        self.n_inputs, self.n_outputs = int(self.n_inputs), int(self.n_outputs)
        self.learning = bool(self.learning)
        self.validate()

    # -- checks ---------------------------------------------------------------

    def validate(self):
        """Check every write address and the port map against the geometry.

        Field contents are checked by :func:`neuromesh.config.decode`.
        """
        g = self.geometry
        if self.addresses.shape != self.words.shape or self.addresses.ndim != 1:
            raise ImageError(
                f"image: {self.addresses.shape} addresses but {self.words.shape} words")
        sizes = np.array([region_words(g, r, self.learning) for r in range(16)])
        # In blocks of 32-bit fields: an image may hold 10^8 writes.
        block = 1 << 20
        for first in range(0, self.addresses.size, block):
            addr = self.addresses[first:first + block]
            region, offset = (addr >> 20) & 0xF, addr & 0xFFFFF
            x, y = (addr >> 24) & 0xF, addr >> 28
            bad = (x >= g.cols) | (y >= g.rows) | (offset >= sizes[region])
            if bad.any():
                break
        else:
            bad = None
        if bad is not None:
            j = int(np.flatnonzero(bad)[0])
            i = first + j
            r = int(region[j])
            rname = region_name(r) if sizes[r] or r in Region._value2member_map_ \
                else f"reserved region {r}"
            raise ImageError(
                f"image write #{i}: address 0x{int(self.addresses[i]):08x} "
                f"(core x={int(x[j])} y={int(y[j])}, {rname}, word {int(offset[j])}) "
                f"is outside the {g.rows}x{g.cols} mesh / region of "
                f"{sizes[r]} words")
        for name, value in (("n_inputs", self.n_inputs), ("n_outputs", self.n_outputs)):
            if not 0 <= value <= MAX_CHANNELS:
                raise ImageError(f"image: {name} = {value} is outside [0, {MAX_CHANNELS}]")
        for i, p in enumerate(self.inputs):
            if p.channel < 0:
                raise ImageError(f"input port #{i}: channel {p.channel} is negative (channels "
                                 f"are 0 .. n_inputs - 1 = {self.n_inputs - 1})")
            if p.channel >= self.n_inputs:
                raise ImageError(f"input port #{i}: channel {p.channel} >= n_inputs "
                                 f"{self.n_inputs}")
            if not 0 <= p.core <= 0xFF:
                raise ImageError(f"input port #{i}: core id {p.core} (not in [0, 255], "
                                 f"y << 4 | x) is outside the {g.rows}x{g.cols} mesh")
            px, py = core_xy(p.core)
            if not (px < g.cols and py < g.rows):
                raise ImageError(f"input port #{i}: core x={px} y={py} is outside the "
                                 f"{g.rows}x{g.cols} mesh")
            if p.axon < 0:
                raise ImageError(f"input port #{i}: axon {p.axon} is negative (axons are "
                                 f"0 .. n_axons - 1 = {g.n_axons - 1})")
            if p.axon >= g.n_axons:
                raise ImageError(f"input port #{i}: axon {p.axon} >= n_axons {g.n_axons}")

    # -- views ----------------------------------------------------------------

    def _region_of_writes(self) -> np.ndarray:
        """The region of every write, uint8 (one byte per write: computed
        once when several regions are read, see :meth:`_region_writes`)."""
        block = 1 << 20
        out = np.empty(self.addresses.size, np.uint8)
        for first in range(0, self.addresses.size, block):
            out[first:first + block] = (self.addresses[first:first + block] >> 20) & 0xF
        return out

    def _region_writes(self, region: int, regions: np.ndarray | None = None) -> np.ndarray:
        """Indices of the writes that end up in ``region`` (the last write to
        an address wins), in address order, i.e. by core index ``y * cols +
        x`` and offset. Found a block of writes at a time: an image may hold
        10^8 writes, and only this region's are ever unpacked. The indices
        are int32 while they fit (half the memory of int64). ``regions``:
        :meth:`_region_of_writes`, if the caller has it."""
        block = 1 << 20
        index = np.int32 if self.addresses.size <= np.iinfo(np.int32).max else np.int64
        if regions is not None:
            sel = np.flatnonzero(regions == region).astype(index)
        else:
            parts = [(np.flatnonzero(((self.addresses[first:first + block] >> 20) & 0xF)
                                     == region) + first).astype(index)
                     for first in range(0, self.addresses.size, block)]
            sel = np.concatenate(parts) if parts else np.zeros(0, index)
            del parts
        if sel.size > 1:
            addr = self.addresses[sel]
            if not (addr[1:] > addr[:-1]).all():
                # np.unique sorts by address and returns the first occurrence
                # in the reversed order: the last write.
                _, first = np.unique(addr[::-1], return_index=True)
                sel = sel[::-1][first]
        return sel

    def final_writes(self, region: int):
        """The words that end up in ``region``: ``(core index, offset, word)``
        arrays, one entry per address written (the last write wins), sorted
        by core index ``y * cols + x`` and offset. Costs in proportion to the
        writes, not to the region's size."""
        sel = self._region_writes(region)
        addr = self.addresses[sel].astype(np.int64)
        x, y = core_xy(addr >> 24)
        return y * self.geometry.cols + x, addr & 0xFFFFF, self.words[sel]

    def memory(self, region: Region) -> np.ndarray:
        """The final contents of ``region`` in every core, uint64 ``[n_cores, size]``.

        Cores are indexed ``y * cols + x``. Words never written are zero.
        """
        g = self.geometry
        out = np.zeros((g.n_cores, region_words(g, region, self.learning)), dtype=np.uint64)
        sel = self._region_writes(region)
        flat = out.reshape(-1)
        block = 1 << 20
        for i in range(0, sel.size, block):
            part = sel[i:i + block]
            addr = self.addresses[part]
            core = addr >> 24
            index = ((core >> 4) * g.cols + (core & 0xF)).astype(np.int64) * out.shape[1]
            index += addr & 0xFFFFF
            flat[index] = self.words[part]
        return out

    def runs(self):
        """The writes as ``(start address, words)`` runs of consecutive addresses."""
        a = self.addresses.astype(np.int64)
        if a.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(a) != 1) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [a.size]])
        return [(int(a[s]), self.words[s:e]) for s, e in zip(starts, ends)]


def _crc(*parts: bytes) -> int:
    crc = 0
    for p in parts:
        crc = zlib.crc32(p, crc)
    return crc


def save(image: ChipImage, path) -> None:
    """Write ``image`` to ``path`` in the chip image file format (atomically:
    a failed write leaves a previous file at ``path`` as it was)."""
    g = image.geometry
    body = bytearray()
    runs = image.runs()
    for start, words in runs:
        body += _RUN.pack(start, len(words))
        body += words.astype("<u8").tobytes()
    meta = json.dumps({
        "n_inputs": int(image.n_inputs), "n_outputs": int(image.n_outputs),
        "inputs": [[p.channel, p.core, p.axon] for p in image.inputs],
        "meta": image.meta,
    }, separators=(",", ":")).encode()
    flags = FLAG_LEARNING if image.learning else 0
    fields = (MAGIC, FORMAT_VERSION, flags, g.rows, g.cols, g.n_neurons, g.n_axons,
              g.n_synapses, g.n_fanout, g.n_profiles, g.n_groups, g.delay_slots, 0,
              len(runs), len(body), len(meta))
    header_wo_crc = _HEADER.pack(*fields, 0)[:-4]
    crc = _crc(header_wo_crc, bytes(body), meta)
    from .files import write_bytes
    write_bytes(path, _HEADER.pack(*fields, crc) + bytes(body) + meta)


def load(path, *, check_config: bool = True) -> ChipImage:
    """Read a chip image file, checking it completely.

    Raises :class:`ImageError` for what is not a regular file (a folder, a
    FIFO, a device), a truncated file, a wrong magic number, an unsupported
    version, a checksum mismatch, a geometry outside the limits, a write
    outside the address map, a JSON section nested deeper than
    :data:`MAX_JSON_DEPTH` or (with ``check_config``) a memory word whose
    fields break the spec. The error names the file and the problem. The
    checks cost in proportion to the file, not to the chip it configures
    (docs/architecture.md §8.5 lists every limit).
    """
    from .files import check_regular_file
    path = Path(path)
    try:
        check_regular_file(path, "chip image")
    except ChipError as e:
        raise ImageError(str(e)) from None
    data = path.read_bytes()
    try:
        return _parse(data, check_config)
    except ChipError as e:
        raise ImageError(f"{path}: {e}") from None


#: Deepest nesting of arrays/objects the JSON section may have (§8.5).
MAX_JSON_DEPTH = 64


def _json_depth(value) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d > MAX_JSON_DEPTH:
                break
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _port_map(meta):
    """Read the JSON section strictly: integers must be JSON integers."""
    def integer(value, what):
        if type(value) is not int:
            raise TypeError(f"{what} must be an integer, got {value!r}")
        return value

    if not isinstance(meta, dict):
        raise TypeError(f"the section must be an object, got {type(meta).__name__}")
    rows = meta["inputs"]
    if not isinstance(rows, list):
        raise TypeError(f"'inputs' must be a list, got {type(rows).__name__}")
    ports = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 3:
            raise TypeError(f"inputs[{i}] must be [channel, core, axon], got {row!r}")
        ports.append(InputPort(*(integer(v, f"inputs[{i}]") for v in row)))
    extra = meta.get("meta", {})
    if not isinstance(extra, dict):
        raise TypeError(f"'meta' must be an object, got {type(extra).__name__}")
    return (ports, integer(meta["n_inputs"], "n_inputs"),
            integer(meta["n_outputs"], "n_outputs"), extra)


def _parse(data: bytes, check_config: bool) -> ChipImage:
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        raise ImageError(f"truncated: {len(data)} bytes, not even the {len(MAGIC)}-byte magic")
    if data[:len(MAGIC)] != MAGIC:
        raise ImageError(f"not a neuromesh chip image (wrong magic {data[:8]!r}, "
                         f"expected {MAGIC!r})")
    if len(data) < _HEADER.size:
        raise ImageError(f"truncated: the header needs {_HEADER.size} bytes, "
                         f"the file has {len(data)}")
    (magic, version, flags, rows, cols, n_neurons, n_axons, n_synapses, n_fanout,
     n_profiles, n_groups, delay_slots, pad, n_runs, runs_bytes, meta_bytes,
     crc) = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise ImageError(f"unsupported format version {version} "
                         f"(this neuromesh reads version {FORMAT_VERSION})")
    expected = _HEADER.size + runs_bytes + meta_bytes
    if len(data) < expected:
        raise ImageError(f"truncated: header announces {expected} bytes, "
                         f"the file has {len(data)}")
    if len(data) > expected:
        raise ImageError(f"{len(data) - expected} unexpected bytes after the end "
                         f"of the image ({expected} bytes)")
    computed = _crc(data[:_HEADER.size - 4], data[_HEADER.size:])
    if computed != crc:
        raise ImageError(f"checksum mismatch: stored 0x{crc:08x}, computed "
                         f"0x{computed:08x} (the file is corrupted)")
    if flags & ~FLAG_LEARNING or pad:
        raise ImageError(f"unknown header flags 0x{flags & ~FLAG_LEARNING:04x} / pad byte "
                         f"0x{pad:02x} (both must be zero in version {FORMAT_VERSION}; the "
                         f"only defined flag is LEARNING = 0x{FLAG_LEARNING:04x})")
    geometry = Geometry(rows=rows, cols=cols, n_neurons=n_neurons, n_axons=n_axons,
                        n_synapses=n_synapses, n_fanout=n_fanout, n_profiles=n_profiles,
                        n_groups=n_groups, delay_slots=delay_slots)
    pos = _HEADER.size
    end = pos + runs_bytes
    runs = []
    for i in range(n_runs):
        if pos + _RUN.size > end:
            raise ImageError(f"write run #{i}: header runs past the write section")
        start, count = _RUN.unpack_from(data, pos)
        pos += _RUN.size
        if pos + 8 * count > end:
            raise ImageError(f"write run #{i}: {count} words at 0x{start:08x} "
                             f"run past the write section")
        if start + count > 1 << 32:
            raise ImageError(f"write run #{i}: {count} words at 0x{start:08x} "
                             f"run past the last address 0xffffffff")
        runs.append((start, count, pos))
        pos += 8 * count
    if pos != end:
        raise ImageError(f"write section: {end - pos} bytes left after {n_runs} runs")
    # Copied once into arrays of the final size and dtype (the addresses are
    # below 2**32, checked above): the peak is the file plus the image.
    total = sum(count for _, count, _ in runs)
    addresses = np.empty(total, np.uint32)
    words = np.empty(total, np.uint64)
    at = 0
    for start, count, pos in runs:
        addresses[at:at + count] = np.arange(start, start + count, dtype=np.uint32)
        words[at:at + count] = np.frombuffer(data, "<u8", count, pos)
        at += count
    del runs
    try:
        meta = json.loads(data[end:].decode())
        depth = _json_depth(meta)
        if depth > MAX_JSON_DEPTH:
            raise RecursionError
        ports, n_inputs, n_outputs, extra = _port_map(meta)
    except RecursionError:
        raise ImageError(f"port map / metadata section nests deeper than MAX_JSON_DEPTH "
                         f"{MAX_JSON_DEPTH} levels") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ImageError(f"port map / metadata section is malformed: {e}") from None
    image = ChipImage(
        geometry, addresses, words,
        inputs=ports, n_inputs=n_inputs, n_outputs=n_outputs, meta=extra,
        learning=bool(flags & FLAG_LEARNING))
    if check_config:
        from .config import check
        check(image)
    return image

