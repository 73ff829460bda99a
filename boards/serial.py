"""The host driver over a serial port, with the emulator's API.

:class:`SerialTransport` is the byte transport of
:class:`neuromesh.host.HostDriver` on a pyserial port (the same driver code
that the simulators use). :class:`BoardBackend` wraps it in the interface of
:class:`neuromesh.emulator.Emulator` -- construct with an image, ``run``,
``read_state``, ``reset`` -- so a board can stand in for the emulator
(``neuromesh run --backend board --port /dev/ttyUSB1 …``).
"""

from __future__ import annotations

import numpy as np

from neuromesh.chip import LAYOUTS, Region, pack_address
from neuromesh.host import HostDriver, run_sync
from neuromesh.image import ChipImage
from neuromesh.protocol import ResetMode

__all__ = ["SerialTransport", "BoardBackend", "DEFAULT_BAUD", "DEFAULT_TIMEOUT"]

DEFAULT_BAUD = 1_000_000

#: Seconds a board may send nothing, or take no bytes, before a command fails.
DEFAULT_TIMEOUT = 10.0

#: Longest RUN the backend sends: about 0.5 s of a 256-neuron core at 12 MHz.
MAX_STEPS_PER_RUN = 10_000

#: Bytes per serial write: the write timeout is a no-progress timeout per piece.
WRITE_CHUNK = 64


class SerialTransport:
    """Host-driver transport on a serial port.

    Parameters
    ----------
    port:
        Device (``/dev/ttyUSB1``, ``COM3``) or a pyserial URL.
    baud:
        Must match the bitstream's (docs/boards.md).
    read_timeout:
        Seconds one :meth:`read` waits for the first byte.
    write_timeout:
        Seconds a write may make no progress (no :data:`WRITE_CHUNK` bytes
        taken) before it counts as failed.
    serial:
        An already open pyserial-like object instead of ``port``.
    """

    def __init__(self, port: str | None = None, baud: int = DEFAULT_BAUD, *,
                 read_timeout: float = 0.02, write_timeout: float = DEFAULT_TIMEOUT,
                 serial=None):
        if serial is None:
            import serial as pyserial
            serial = pyserial.serial_for_url(port, baudrate=baud, timeout=read_timeout,
                                             write_timeout=write_timeout)
        self.serial = serial
        self.port = port
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout

    async def write(self, data: bytes):
        """Send ``data``. The timeout bounds each :data:`WRITE_CHUNK`-byte piece,
        not the whole command: a long WRITE (an image load) to a slow receiver
        (a simulated chip, a low baud rate) is fine while bytes keep moving."""
        import serial as pyserial
        for at in range(0, len(data), WRITE_CHUNK):
            try:
                self.serial.write(data[at:at + WRITE_CHUNK])
            except pyserial.SerialTimeoutException:
                raise TimeoutError(
                    f"serial port {self.port or self.serial}: the receiver took no bytes for "
                    f"{self.write_timeout:g} s (byte {at} of a {len(data)}-byte command); "
                    f"is the neuromesh bitstream running at this baud rate?") from None
        self.serial.flush()

    async def read(self) -> bytes:
        """What has arrived; waits up to ``read_timeout`` for a first byte."""
        first = self.serial.read(1)
        if not first:
            return b""
        waiting = self.serial.in_waiting
        return first + (self.serial.read(waiting) if waiting else b"")

    def close(self):
        self.serial.close()


class BoardBackend:
    """A chip on a board, used like :class:`~neuromesh.emulator.Emulator`.

    Constructing it checks the board's geometry against the image's and loads
    the image (RESET ALL, then every word). One batch row: a chip runs one
    input stream. A learning image (§11) needs a bitstream built with
    ``--learning``; then :meth:`learning_words` and :meth:`set_reward` work
    as the emulator's.

    Parameters
    ----------
    image:
        A chip image for the board's geometry.
    batch:
        Must be 1.
    port, baud, transport:
        The serial port (see :class:`SerialTransport`), or a ready transport.
    response_timeout:
        Seconds without a byte received, or without bytes taken by the board,
        before a command counts as failed.
    """

    def __init__(self, image: ChipImage, batch: int = 1, *, port: str | None = None,
                 baud: int = DEFAULT_BAUD, transport=None,
                 response_timeout: float = DEFAULT_TIMEOUT):
        if batch != 1:
            raise ValueError(f"batch = {batch}: a board runs one input stream (batch 1)")
        self.image = image
        self.geometry = image.geometry
        self.batch = 1
        self.transport = transport or SerialTransport(port, baud,
                                                      write_timeout=response_timeout)
        reads = max(1, round(response_timeout / getattr(self.transport, "read_timeout", 0.02)))
        self.driver = HostDriver(self.transport, max_idle_reads=reads)
        self.step = 0
        try:
            if image.learning:
                run_sync(self._check_learning_build())
            run_sync(self.driver.load_image(image))
        except BaseException:
            if transport is None:       # the port we opened
                self.close()
            raise

    async def _check_learning_build(self):
        """Before anything is written: a learning image needs a bitstream
        with the learning engine (only that maps regions 8..13)."""
        from neuromesh.chip import LearnRegion
        from neuromesh.host import HostLinkError
        from neuromesh.protocol import ErrorCode
        try:
            await self.driver.read(int(pack_address(0, LearnRegion.LEARN, 0)), 1)
        except HostLinkError as e:
            if e.code != ErrorCode.BAD_ADDRESS:
                raise
            raise ValueError(
                f"image {self.image.meta.get('name', '')!r} uses on-chip learning, but the "
                f"board's bitstream has no learning engine (region LEARN is not mapped); "
                f"build it with `neuromesh build --learning`") from None

    @property
    def learning(self) -> bool:
        """The image uses the learning engine (see :meth:`learning_words`)."""
        return self.image.learning

    def learning_words(self) -> dict:
        """SYNAPSE and learning regions 8..13 read from the chip, uint64
        ``[1, n_cores, size]`` by region: the arrays of
        :meth:`Emulator.learning_words <neuromesh.emulator.Emulator.learning_words>`."""
        from neuromesh.chip import LearnRegion, region_words
        if not self.learning:
            raise ValueError("this image does not use the learning engine")
        g = self.geometry
        out = {}
        for region in (Region.SYNAPSE, *LearnRegion):
            size = region_words(g, region, True)
            rows = [run_sync(self.driver.read(int(pack_address(
                (k // g.cols) << 4 | (k % g.cols), region, 0)), size)) for k in range(g.n_cores)]
            out[region] = np.stack(rows).astype(np.uint64)[None]
        return out

    def counters(self) -> np.ndarray:
        """The chip's activity counters (docs/architecture.md §13), uint32
        ``[1, n_cores, 7]``: the array of :meth:`Emulator.counters
        <neuromesh.emulator.Emulator.counters>`, counted since the image was
        loaded or :meth:`reset`. A bitstream built without counters raises
        :class:`~neuromesh.host.CountersUnavailableError` in one line."""
        from neuromesh.host import CountersUnavailableError
        try:
            return run_sync(self.driver.read_counters(self.geometry))[None]
        except CountersUnavailableError:
            raise CountersUnavailableError(
                "the board's bitstream has no activity counters (region COUNTERS is not "
                "mapped); build it with `neuromesh build --counters`") from None

    def set_reward(self, reward):
        """Write the reward register (s8) of every core -- one value, or one
        per core (the host WRITE of LSTATE.reward, keeping epoch_phase; like
        :meth:`Emulator.set_reward <neuromesh.emulator.Emulator.set_reward>`)."""
        from neuromesh.sim.compare import write_reward
        if not self.learning:
            raise ValueError("this image does not use the learning engine (no reward register)")
        r = np.broadcast_to(np.asarray(reward, dtype=np.int64).reshape(-1),
                            (self.geometry.n_cores,))
        if ((r < -128) | (r > 127)).any():
            raise ValueError(f"reward {r.tolist()} outside the s8 range [-128, 127]")
        run_sync(write_reward(self.driver, self.geometry, r))

    def close(self):
        if hasattr(self.transport, "close"):
            self.transport.close()

    def reset(self):
        """Back to the image's initial state at step 0, like ``Emulator.reset``:
        RESET STATE, then the image's STATE and ACCUM words again (§9.7) and,
        for a learning image, its SYNAPSE and learning words (learned weights,
        traces, tags, reward and LFSR as loaded)."""
        again = {Region.STATE, Region.ACCUM}
        if self.learning:
            from neuromesh.chip import LearnRegion
            again |= {Region.SYNAPSE, *LearnRegion}

        async def go():
            await self.driver.reset(ResetMode.STATE)
            for start, words in self.image.runs():
                region = (start >> 20) & 0xF
                if region in again:
                    await self.driver.write(start, words)
        run_sync(go())
        self.step = 0

    def run(self, inputs=None, steps=None, *, probe=None, record=("spikes", "u", "v"),
            progress=False):
        """Advance by ``steps`` steps; returns a
        :class:`~neuromesh.emulator.emulator.RunResult` with ``outputs``
        ``[steps, 1, n_outputs]``. ``neuron_spikes`` and ``synaptic_events``
        are ``[-1]``; a board built with counters counts those per core
        instead (:meth:`counters`)."""
        from neuromesh.emulator.emulator import RunResult
        if probe is not None:
            raise ValueError("the board backend records no probes (read_state reads the "
                             "whole state after a run)")
        if inputs is None:
            if steps is None:
                raise ValueError("give inputs, steps, or both")
            x = np.zeros((int(steps), self.image.n_inputs), dtype=bool)
        else:
            x = np.asarray(inputs)
            if x.ndim == 3:
                if x.shape[1] != 1:
                    raise ValueError(f"inputs have batch {x.shape[1]}; a board runs batch 1")
                x = x[:, 0]
            if x.ndim != 2 or x.shape[1] != self.image.n_inputs:
                raise ValueError(f"inputs have shape {np.shape(inputs)}; expected "
                                 f"[steps, n_inputs={self.image.n_inputs}]")
            if steps is not None and steps != x.shape[0]:
                raise ValueError(f"steps = {steps} but inputs cover {x.shape[0]} steps")
        first = self.step
        outputs = run_sync(self._run(x.astype(bool), progress))
        return RunResult(outputs=outputs[:, None, :], first_step=first,
                         neuron_spikes=np.array([-1]), synaptic_events=np.array([-1]))

    async def _run(self, x, progress):
        drv = self.driver
        targets: dict[int, list] = {}
        for p in self.image.inputs:
            targets.setdefault(p.channel, []).append((p.core, p.axon))
        out = np.zeros((x.shape[0], self.image.n_outputs), dtype=bool)
        drv.outputs.clear()
        t0 = self.step
        t = 0
        while t < x.shape[0]:
            pairs = [pa for ch in np.flatnonzero(x[t]) for pa in targets.get(int(ch), [])]
            if pairs:
                await drv.spikes(pairs)
            # Steps without input after this one go in the same RUN (bounded,
            # so that DONE comes well within the response timeout).
            n = 1
            while t + n < x.shape[0] and n < MAX_STEPS_PER_RUN and not x[t + n].any():
                n += 1
            self.step = await drv.run(n)
            t += n
        for step, channels in drv.outputs.items():
            k = (step - t0) & 0xFFFFFFFF
            if k < x.shape[0]:
                out[k, channels] = True
        drv.outputs.clear()
        return out

    def read_state(self) -> dict:
        """``u``, ``v``, ``refractory`` ``[1, n_cores, n_neurons]`` and
        ``accum`` ``[1, n_cores, delay_slots, n_neurons]`` read from the chip,
        plus ``step`` -- the arrays of ``Emulator.read_state``."""
        state = run_sync(self.driver.read_state(self.geometry))
        out = {k: np.asarray(v, dtype=np.int64)[None] for k, v in state.items()}
        out["step"] = self.step
        return out

    def read_words(self, core: int, region: Region, offset: int, count: int) -> dict:
        """Fields of ``count`` words of a region (for debugging a board)."""
        words = run_sync(self.driver.read(int(pack_address(core, region, offset)), count))
        return LAYOUTS[region].unpack(words)
