"""cocotb bench: the chip's Verilog, driven through its host link only, against
the emulator, every step.

The job (which images, inputs and steps) comes from the JSON file named by
``NEUROMESH_COSIM_JOB``; the result is written to the file named there. The
host driver is :class:`neuromesh.host.HostDriver`, the code that also talks
to boards; only its byte transport is cocotb-specific.
"""

import json
import os

import cocotb
import cocotb.utils
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, Timer

from neuromesh.host import HostDriver
from neuromesh.image import load
from neuromesh.protocol import (
    MAX_PAYLOAD,
    SOF_CHIP,
    SOF_HOST,
    FrameDecoder,
    ProtocolError,
    Response,
)
from neuromesh.sim.compare import lockstep
from neuromesh.sim.harness import RX_BYTES

CLOCK_NS = 10
READ_WAIT_CYCLES = 4096


class CocotbTransport:
    """Host-driver transport over :class:`~neuromesh.sim.harness.CosimTop`."""

    def __init__(self, dut):
        self.dut = dut

    async def write(self, data: bytes):
        dut = self.dut
        for start in range(0, len(data), RX_BYTES):
            chunk = data[start:start + RX_BYTES]
            dut.rx_frame.value = int.from_bytes(chunk, "little")
            dut.rx_len.value = len(chunk)
            dut.rx_go.value = 1
            await RisingEdge(dut.clk)
            dut.rx_go.value = 0
            await ReadOnly()
            if dut.rx_busy.value:
                await FallingEdge(dut.rx_busy)
            await RisingEdge(dut.clk)

    async def read(self) -> bytes:
        dut = self.dut
        if not dut.tx_attention.value:
            await First(RisingEdge(dut.tx_attention),
                        Timer(READ_WAIT_CYCLES * CLOCK_NS, unit="ns"))
        n = int(dut.tx_len.value)
        if n == 0:
            return b""
        buf = dut.tx_buf.value.to_unsigned() & ((1 << (8 * n)) - 1)
        dut.tx_clear.value = 1
        await RisingEdge(dut.clk)
        dut.tx_clear.value = 0
        # Signals sampled at an edge hold their values from before it: one
        # more edge, so that a read right after this one sees the cleared
        # buffer rather than these bytes again.
        await RisingEdge(dut.clk)
        return buf.to_bytes(n, "big")


async def run_case(drv, case):
    """Load, run and compare one case; return (steps run, divergence or None)."""
    image = load(case["image"])
    with np.load(case["inputs"]) as f:
        inputs = f["spikes"]
    return await lockstep(drv, image, inputs, int(case.get("steps", inputs.shape[0])),
                          rewards=case.get("rewards"))


async def run_host_case(drv, case):
    """Mode ``learning-host``: the host-access checks of a learning image
    (:func:`~neuromesh.sim.learning_host.host_access_checks`)."""
    from neuromesh.sim.learning_host import host_access_checks
    image = load(case["image"])
    with np.load(case["inputs"]) as f:
        inputs = f["spikes"]
    problems = await host_access_checks(drv, image, inputs, reward_step=case.get("reward_step"),
                                        rewards=case.get("rewards"))
    return len(inputs), (problems[0] if problems else None)


async def measure_throughput(dut, drv, job):
    """Load the first case's image and time one RUN of its steps."""
    import time
    case = job["cases"][0]
    await drv.load_image(load(case["image"]))
    cycles0 = int(dut.cycles.value)
    sim0 = cocotb.utils.get_sim_time(unit="ns")
    t0 = time.perf_counter()
    await drv.run(int(case["steps"]))
    wall = time.perf_counter() - t0
    with open(job["result"], "w") as f:
        json.dump({"cases": 1, "steps": int(case["steps"]), "divergences": [],
                   "cycles": int(dut.cycles.value) - cycles0, "wall": wall,
                   "sim_cycles": (cocotb.utils.get_sim_time(unit="ns") - sim0) / CLOCK_NS},
                  f)


class Answers:
    """How many final responses the chip still owes the host.

    Mirrors the chip's receiver (docs/architecture.md §9.2): every frame the
    host starts (a ``0xA5`` while hunting) ends in exactly one final
    response -- its result, or an ERROR for a bad frame, an oversize LEN or
    a timeout -- and OUTPUT frames are not final. While nothing is owed the
    chip is waiting for the host, so the pty loop can wait on the terminal
    instead of running the clock.
    """

    def __init__(self):
        self.owed = 0
        self._need = None            # bytes left of the frame being received
        self._header = bytearray()
        self._out = FrameDecoder(SOF_CHIP)

    def sent(self, data: bytes):
        """Bytes the host sent."""
        for byte in data:
            if self._need is None:                  # hunting
                if byte == SOF_HOST:
                    self.owed += 1
                    self._need, self._header = -1, bytearray()
            elif self._need < 0:                    # TYPE and LEN
                self._header.append(byte)
                if len(self._header) == 3:
                    length = int.from_bytes(self._header[1:], "little")
                    self._need = None if length > MAX_PAYLOAD else length + 2
            else:
                self._need -= 1
                if self._need == 0:
                    self._need = None

    def received(self, data: bytes):
        """Bytes the chip answered."""
        try:
            frames = self._out.feed(data)
        except ProtocolError:
            frames, self._out = [], FrameDecoder(SOF_CHIP)
        finals = sum(1 for f in frames if f.type != Response.OUTPUT)
        self.owed = max(0, self.owed - finals)


async def serve_pty(transport, job):
    """Mode ``pty``: serve the host protocol on a new pseudo-terminal, whose
    path goes to the file ``job["port_file"]``, until ``job["stop_file"]``
    exists (:mod:`neuromesh.sim.pty_board`). While the chip owes no answer
    the loop waits on the terminal (no clock runs, no CPU is used)."""
    import select
    import time
    master, slave = os.openpty()
    os.set_blocking(master, False)
    with open(job["port_file"] + ".tmp", "w") as f:
        f.write(os.ttyname(slave))
    os.replace(job["port_file"] + ".tmp", job["port_file"])
    answers = Answers()
    idle = 0
    while not os.path.exists(job["stop_file"]):
        if not answers.owed:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            data = b""
        if data:
            answers.sent(data)
            await transport.write(data)
        out = await transport.read()        # waits up to READ_WAIT_CYCLES simulated
        if out:
            answers.received(out)
            os.write(master, out)
        idle = 0 if (data or out) else idle + 1
        if idle > 100:                      # a long RUN without output: slow the polling
            time.sleep(0.002)
    os.close(master)
    os.close(slave)


@cocotb.test()
async def cosim(dut):
    """Run every case of the job; fail on the first divergence."""
    job_path = os.environ["NEUROMESH_COSIM_JOB"]
    with open(job_path) as f:
        job = json.load(f)
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rx_go.value = 0
    dut.tx_clear.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    drv = HostDriver(CocotbTransport(dut), max_idle_reads=200)
    if os.environ.get("NEUROMESH_COSIM_PROFILE"):
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    result = {"cases": 0, "steps": 0, "divergences": []}
    if job.get("mode") == "throughput":
        await measure_throughput(dut, drv, job)
        return
    if job.get("mode") == "pty":
        await serve_pty(drv.transport, job)
        return
    for case in job["cases"]:
        if job.get("mode") == "learning-host":
            steps, bad = await run_host_case(drv, case)
        else:
            steps, bad = await run_case(drv, case)
        result["cases"] += 1
        result["steps"] += steps
        if bad:
            result["divergences"].append({"case": case.get("name"), **bad})
            if job.get("stop_on_divergence", True):
                break
    result["cycles"] = int(dut.cycles.value)
    if os.environ.get("NEUROMESH_COSIM_PROFILE"):
        prof.disable()
        prof.dump_stats(os.environ["NEUROMESH_COSIM_PROFILE"])
    with open(job["result"], "w") as f:
        json.dump(result, f)
    assert not result["divergences"], result["divergences"][0]
