"""Host driver: the host side of the host-link protocol, for every backend.

The same code talks to the RTL in a simulator and to a board over UART; only
the byte transport differs. The driver is written with ``async`` methods so
that a simulator testbench (whose clock advances inside ``await``) and a
plain blocking serial port (wrapped by :func:`run_sync`) can both drive it.

A transport is any object with ``async write(data: bytes)`` and
``async read() -> bytes`` (return what has arrived, possibly nothing, after
letting time pass).
"""

from __future__ import annotations

import asyncio
import struct

import numpy as np

from .chip import LAYOUTS, Geometry, Region, pack_address
from .image import ChipImage
from .protocol import (
    INFO_LAYOUT,
    MAX_SPIKES,
    MAX_WORDS,
    Command,
    ErrorCode,
    Frame,
    FrameDecoder,
    ProtocolError,
    ResetMode,
    Response,
    cmd_identify,
    cmd_read,
    cmd_reset,
    cmd_run,
    cmd_spikes,
    cmd_status,
    cmd_write,
)

__all__ = ["HostLinkError", "GeometryMismatchError", "CountersUnavailableError", "HostDriver",
           "run_sync"]

_TERMINAL = {Response.ACK, Response.DATA, Response.INFO, Response.STATUS, Response.DONE,
             Response.ERROR}

#: The response each command must get (besides ERROR).
_ANSWER = {Command.IDENTIFY: Response.INFO, Command.WRITE: Response.ACK,
           Command.READ: Response.DATA, Command.SPIKES: Response.ACK, Command.RUN: Response.DONE,
           Command.STATUS: Response.STATUS, Command.RESET: Response.ACK}

#: Payload bytes of the fixed-size responses (§9).
_PAYLOAD = {Response.ACK: 1, Response.INFO: INFO_LAYOUT.size, Response.STATUS: 8,
            Response.DONE: 4, Response.ERROR: 6}


def _name(type_: int) -> str:
    for enum_ in (Response, Command):
        if type_ in enum_._value2member_map_:
            return enum_(type_).name
    return f"0x{type_:02x}"


class HostLinkError(RuntimeError):
    """The chip answered a command with an ERROR frame (or not at all)."""

    def __init__(self, message, code=None, command=None, detail=None):
        super().__init__(message)
        self.code, self.command, self.detail = code, command, detail


class GeometryMismatchError(HostLinkError):
    """The chip's geometry (``chip``, from IDENTIFY) is not the image's
    (``image``): nothing was written."""

    def __init__(self, image, chip):
        super().__init__(f"image is for {image}, the chip is {chip}")
        self.image, self.chip = image, chip


class HostDriver:
    """Drive a neuromesh chip over a byte transport.

    Parameters
    ----------
    transport:
        Object with ``async write(bytes)`` and ``async read() -> bytes``.
    max_idle_reads:
        Give up waiting for a response after this many empty reads.
    """

    def __init__(self, transport, *, max_idle_reads: int = 1_000_000):
        self.transport = transport
        self.decoder = FrameDecoder()
        self.max_idle_reads = max_idle_reads
        self.outputs: dict[int, list[int]] = {}
        #: Output channels of the loaded image: an OUTPUT frame naming a
        #: channel beyond it is a ProtocolError (None: not known yet).
        self.n_outputs: int | None = None
        self._run_outputs: list[int] = []

    async def transact(self, frame: bytes) -> Frame:
        """Send one command frame; return its terminal response frame.

        OUTPUT frames received meanwhile are collected in ``self.outputs``
        (step -> channels). An ERROR response raises :class:`HostLinkError`.
        A response that breaks the protocol (a CRC error, a payload of the
        wrong size, the wrong response type, an OUTPUT frame outside a RUN or
        naming a channel the image does not have) raises
        :class:`~neuromesh.protocol.ProtocolError` naming the frame.
        """
        await self.transport.write(frame)
        command = frame[1]
        idle = 0
        pending: list[Frame] = []
        self._run_outputs = []
        while True:
            if not pending:
                data = await self.transport.read()
                idle = 0 if data else idle + 1
                if idle > self.max_idle_reads:
                    raise HostLinkError(f"no response to command 0x{frame[1]:02x}")
                pending = self.decoder.feed(data) if data else []
                continue
            f = pending.pop(0)
            size = _PAYLOAD.get(f.type)
            if size is not None and len(f.payload) != size:
                raise ProtocolError(f"{_name(f.type)} frame (answer to {_name(command)}) has a "
                                    f"{len(f.payload)}-byte payload; §9 says {size} bytes")
            if f.type == Response.OUTPUT:
                self._output(f, command)
            elif f.type == Response.ERROR:
                code, cmd, detail = struct.unpack("<BBI", f.payload)
                name = ErrorCode(code).name if code in ErrorCode._value2member_map_ else code
                raise HostLinkError(f"chip rejected command 0x{cmd:02x}: {name} "
                                    f"(detail 0x{detail:x})", code, cmd, detail)
            elif f.type in _TERMINAL:
                expected = _ANSWER.get(command)
                if expected is not None and f.type != expected:
                    raise ProtocolError(f"{_name(f.type)} frame answers {_name(command)}; "
                                        f"§9 says {expected.name}")
                if f.type == Response.ACK and f.payload[0] != command:
                    raise ProtocolError(f"ACK frame acknowledges command 0x{f.payload[0]:02x}, "
                                        f"not the {_name(command)} sent")
                if pending:
                    raise HostLinkError(f"{len(pending)} unexpected frames after the "
                                        f"response to command 0x{frame[1]:02x}")
                return f
            else:
                raise ProtocolError(f"unexpected frame type 0x{f.type:02x} (answer to "
                                    f"{_name(command)})")

    def _output(self, f: Frame, command: int):
        """Collect one OUTPUT frame, checking its length and channels."""
        if command != Command.RUN:
            raise ProtocolError(f"OUTPUT frame in answer to {_name(command)}; only RUN "
                                f"produces output")
        if len(f.payload) < 6:
            raise ProtocolError(f"OUTPUT frame has a {len(f.payload)}-byte payload; §9 says "
                                f"at least 6 (step u32, count u16)")
        step, count = struct.unpack_from("<IH", f.payload)
        if len(f.payload) != 6 + 2 * count:
            raise ProtocolError(f"OUTPUT frame for step {step} announces {count} channels in "
                                f"a {len(f.payload)}-byte payload; §9 says {6 + 2 * count}")
        channels = struct.unpack_from(f"<{count}H", f.payload, 6)
        if self.n_outputs is not None:
            bad = [c for c in channels if c >= self.n_outputs]
            if bad:
                raise ProtocolError(f"OUTPUT frame for step {step} names channel {bad[0]}; the "
                                    f"image has {self.n_outputs} output channels")
        self.outputs.setdefault(step, []).extend(channels)
        self._run_outputs.append(step)

    # -- commands ------------------------------------------------------------------

    async def identify(self) -> tuple[Geometry, int]:
        """The chip's geometry and step counter."""
        f = await self.transact(cmd_identify())
        (_, rows, cols, n_neurons, n_axons, n_synapses, n_fanout, n_profiles, n_groups,
         delay_slots, step) = INFO_LAYOUT.unpack(f.payload)
        return Geometry(rows=rows, cols=cols, n_neurons=n_neurons, n_axons=n_axons,
                        n_synapses=n_synapses, n_fanout=n_fanout, n_profiles=n_profiles,
                        n_groups=n_groups, delay_slots=delay_slots), step

    async def status(self) -> dict:
        """STATUS: step counter, queued spikes, discarded bytes."""
        f = await self.transact(cmd_status())
        step, queued, discarded = struct.unpack("<IHH", f.payload)
        return {"step": step, "queued_spikes": queued, "discarded": discarded}

    async def reset(self, mode: ResetMode = ResetMode.STATE):
        """RESET the chip (state only, or every memory)."""
        await self.transact(cmd_reset(mode))

    async def write(self, address: int, words):
        """Write consecutive words from ``address`` (split into frames)."""
        words = np.asarray(words, dtype=np.uint64)
        for start in range(0, words.size, MAX_WORDS):
            await self.transact(cmd_write(address + start, words[start:start + MAX_WORDS]))

    async def read(self, address: int, count: int) -> np.ndarray:
        """Read ``count`` consecutive words from ``address``."""
        out = []
        for start in range(0, count, MAX_WORDS):
            n = min(MAX_WORDS, count - start)
            f = await self.transact(cmd_read(address + start, n))
            echo = struct.unpack_from("<IH", f.payload) if len(f.payload) >= 6 else None
            if f.type != Response.DATA or echo != (address + start, n) \
                    or len(f.payload) != 6 + 8 * n:
                raise HostLinkError(f"READ of {n} words at 0x{address + start:08x} answered "
                                    f"by frame 0x{f.type:02x} with header {echo}")
            out.append(np.frombuffer(f.payload, "<u8", n, 6))
        return np.concatenate(out).astype(np.uint64) if out else np.zeros(0, np.uint64)

    async def load_image(self, image: ChipImage):
        """Check ``image`` (geometry against the chip's, every field), clear
        every memory, then write the image's words."""
        from .config import decode
        decode(image)
        geometry, _ = await self.identify()
        if geometry != image.geometry:
            raise GeometryMismatchError(image.geometry, geometry)
        await self.reset(ResetMode.ALL)
        for start, words in image.runs():
            await self.write(start, words)
        self.n_outputs = image.n_outputs

    async def spikes(self, pairs):
        """Queue host spikes ``(core id, axon)`` for the next step."""
        pairs = list(pairs)
        for start in range(0, len(pairs), MAX_SPIKES):
            await self.transact(cmd_spikes(pairs[start:start + MAX_SPIKES]))

    async def run(self, steps: int) -> int:
        """RUN ``steps`` steps; returns the step counter after it."""
        f = await self.transact(cmd_run(steps))
        (step,) = struct.unpack("<I", f.payload)
        first = (step - steps) & 0xFFFFFFFF
        for s in self._run_outputs:
            if (s - first) & 0xFFFFFFFF >= steps:
                raise ProtocolError(f"OUTPUT frame for step {s} during a RUN of steps "
                                    f"{first}..{(step - 1) & 0xFFFFFFFF}")
        return step

    # -- the emulator-like API ------------------------------------------------------

    async def run_inputs(self, image: ChipImage, inputs) -> np.ndarray:
        """Run one input stream ``[steps, n_inputs]`` (0/1) step by step.

        Returns bool ``[steps, n_outputs]``, like one batch row of
        :meth:`neuromesh.emulator.Emulator.run`.
        """
        inputs = np.asarray(inputs)
        targets: dict[int, list] = {}
        for p in image.inputs:
            targets.setdefault(p.channel, []).append((p.core, p.axon))
        out = np.zeros((inputs.shape[0], image.n_outputs), dtype=bool)
        for t in range(inputs.shape[0]):
            pairs = [pa for ch in np.flatnonzero(inputs[t]) for pa in targets.get(int(ch), [])]
            if pairs:
                await self.spikes(pairs)
            self.outputs.clear()
            step = await self.run(1)
            for ch in self.outputs.get((step - 1) & 0xFFFFFFFF, []):
                out[t, ch] = True
        return out

    async def read_state(self, geometry: Geometry) -> dict:
        """Read u, v, refractory ``[n_cores, n_neurons]`` and the accumulator
        ring ``[n_cores, delay_slots, n_neurons]``, like ``Emulator.read_state``
        for one batch row."""
        g = geometry
        out = {"u": [], "v": [], "refractory": [], "accum": []}
        for k in range(g.n_cores):
            core = (k // g.cols) << 4 | (k % g.cols)
            words = await self.read(int(pack_address(core, Region.STATE, 0)), g.n_neurons)
            fields = LAYOUTS[Region.STATE].unpack(words)
            for name in ("u", "v", "refractory"):
                out[name].append(fields[name])
            words = await self.read(int(pack_address(core, Region.ACCUM, 0)),
                                    g.delay_slots * g.n_neurons)
            out["accum"].append(LAYOUTS[Region.ACCUM].unpack(words)["value"]
                                .reshape(g.delay_slots, g.n_neurons))
        return {k: np.stack(v) for k, v in out.items()}

    async def read_counters(self, geometry: Geometry) -> np.ndarray:
        """The activity counters (docs/architecture.md §13): uint32 ``[n_cores,
        len(Counter)]``, like ``Emulator.counters()`` for one batch row. A chip
        built without counters raises :class:`CountersUnavailableError`."""
        from neuromesh.chip import COUNTERS_REGION, Counter
        g = geometry
        rows = []
        for k in range(g.n_cores):
            core = (k // g.cols) << 4 | (k % g.cols)
            try:
                words = await self.read(int(pack_address(core, COUNTERS_REGION, 0)),
                                        len(Counter))
            except HostLinkError as e:
                if e.code != ErrorCode.BAD_ADDRESS:
                    raise
                raise CountersUnavailableError(
                    "the chip has no activity counters (region COUNTERS is not mapped): "
                    "its RTL was built without them (Chip(counters=False))") from None
            rows.append(np.asarray(words, dtype=np.uint64))
        return np.stack(rows).astype(np.uint32)


class CountersUnavailableError(HostLinkError):
    """A counter READ on a chip built without activity counters."""


def run_sync(coroutine):
    """Run a driver coroutine to completion on a blocking transport."""
    return asyncio.run(coroutine)

