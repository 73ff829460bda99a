"""The board host driver (pyserial) end to end: BoardBackend opens a real
pseudo-terminal whose other end feeds the chip's byte streams in Amaranth's
simulator (:mod:`neuromesh.sim.pty_board`, a process of its own), and must
give the emulator's results."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from neuromesh.boards.serial import BoardBackend, SerialTransport
from neuromesh.chip import Counter, Geometry
from neuromesh.emulator import Emulator
from neuromesh.host import CountersUnavailableError
from neuromesh.sim.pty_board import PtyBoard
from neuromesh.sim.randomgen import random_image, random_inputs

pytest.importorskip("serial")


def test_board_backend_matches_emulator_over_a_pty(monkeypatch):
    import neuromesh.boards.serial
    monkeypatch.setattr(neuromesh.boards.serial, "MAX_STEPS_PER_RUN", 3)
    g = Geometry(rows=1, cols=2, n_neurons=6, n_axons=8, n_synapses=24, n_fanout=12,
                 n_profiles=2, n_groups=2, delay_slots=4)
    image = random_image(11, g, n_inputs=3, density=0.7)
    x = random_inputs(11, image, 12)
    x[3:9] = False                      # quiet steps: merged into RUNs of up to 3
    emu = Emulator(image)
    with PtyBoard(g, counters=True) as chip:
        board = BoardBackend(image, port=chip.port, baud=115200, response_timeout=20)
        try:
            for part in (x[:6], x[6:]):
                r, e = board.run(part), emu.run(part)
                np.testing.assert_array_equal(r.outputs, e.outputs)
                got, want = board.read_state(), emu.read_state()
                for name in ("u", "v", "refractory", "accum", "step"):
                    np.testing.assert_array_equal(got[name], want[name], err_msg=name)
                # The activity counters (§13), also over merged RUNs.
                np.testing.assert_array_equal(board.counters(), emu.counters())
            assert board.counters().dtype == np.uint32
            assert board.counters()[0, :, Counter.SPIKES].sum() > 0
            r, e = board.run(steps=3), emu.run(steps=3)
            np.testing.assert_array_equal(r.outputs, e.outputs)
            board.reset()
            emu.reset()
            assert not board.counters().any()
            r, e = board.run(x[:4]), emu.run(x[:4])
            np.testing.assert_array_equal(r.outputs, e.outputs)
            np.testing.assert_array_equal(board.counters(), emu.counters())
            got, want = board.read_state(), emu.read_state()
            for name in ("u", "v", "refractory", "accum", "step"):
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
            with pytest.raises(ValueError, match="batch 1"):
                board.run(np.zeros((2, 2, image.n_inputs), bool))
        finally:
            board.close()


def test_serial_transport_reads_what_arrived():
    import serial
    port = serial.serial_for_url("loop://", timeout=0.01)
    t = SerialTransport(serial=port, read_timeout=0.01)
    import asyncio
    asyncio.run(t.write(b"\xa5\x01\x00"))
    assert asyncio.run(t.read()) == b"\xa5\x01\x00"
    assert asyncio.run(t.read()) == b""
    t.close()


class StuckPort:
    """A pyserial port whose receiver takes 100 bytes, then nothing."""
    def __init__(self):
        self.taken = bytearray()

    def write(self, data):
        import serial
        if len(self.taken) + len(data) > 100:
            raise serial.SerialTimeoutException("Write timeout")
        self.taken += data

    def flush(self):
        pass


def test_serial_write_times_out_per_piece_with_a_clear_error():
    import asyncio
    port = StuckPort()
    t = SerialTransport(serial=port, write_timeout=3)
    asyncio.run(t.write(bytes(100)))             # taken in pieces of 64 and 36 bytes
    assert len(port.taken) == 100
    with pytest.raises(TimeoutError, match=r"took no bytes for 3 s \(byte 0 of a 200-byte"):
        asyncio.run(t.write(bytes(200)))


def test_board_backend_wants_batch_one():
    with pytest.raises(ValueError, match="batch 1"):
        BoardBackend(None, batch=4, transport=object())


def test_neuromesh_run_backend_board(tmp_path, capsys):
    """`neuromesh run --backend board --port ...` gives the emulator's outputs."""
    from neuromesh.cli import main
    from neuromesh.image import save
    g = Geometry(rows=1, cols=1, n_neurons=6, n_axons=8, n_synapses=24, n_fanout=12,
                 n_profiles=2, n_groups=2, delay_slots=4)
    # Seed 54: an image with activity (12 output spikes).
    image = random_image(54, g, n_inputs=3, density=0.8)
    x = random_inputs(54, image, 10)
    save(image, tmp_path / "net.nmi")
    np.savez(tmp_path / "x.npz", spikes=x)
    with PtyBoard(g, counters=True) as chip:
        rc = main(["run", str(tmp_path / "net.nmi"), "--input", str(tmp_path / "x.npz"),
                   "--backend", "board", "--port", chip.port, "--baud", "115200",
                   "--timeout", "60", "-o", str(tmp_path / "out.npz"), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    emu = Emulator(image)
    want = emu.run(x).outputs
    assert want.sum() >= 10
    with np.load(tmp_path / "out.npz") as f:
        np.testing.assert_array_equal(f["outputs"], want)
    # The board's counters, printed as the emulator's would be.
    from neuromesh.counters import counter_table
    table = counter_table(emu.counters(), g, len(x), "board")
    assert table in out and "activity counters from the board" in out


def assert_same_learning_words(board, emu, when):
    got, want = board.learning_words(), emu.learning_words()
    assert set(got) == set(want)
    for region in want:
        np.testing.assert_array_equal(got[region], want[region], err_msg=f"{when}: {region!r}")


@pytest.mark.parametrize("simulator, board", [("amaranth", None), ("verilator", "ulx3s-85f")])
def test_board_backend_learns_like_the_emulator(simulator, board):
    """A learning image on the learning build behind a pty (Amaranth's
    simulator; Verilator with the ULX3S's RTL options): after each run, a
    host reward write and reset(), SYNAPSE and regions 8..13 read from the
    chip equal Emulator.learning_words()."""
    from test_learning_reference import G, random_chip
    image = random_chip(3, True)
    x = np.random.default_rng(7).random((12, 6)) < 0.5
    emu = Emulator(image)
    before = emu.learning_words()
    with PtyBoard(G, learning=True, simulator=simulator, board=board) as chip:
        board = BoardBackend(image, port=chip.port, baud=115200, response_timeout=30)
        try:
            assert board.learning
            assert_same_learning_words(board, emu, "loaded")
            for t, part in enumerate((x[:5], x[5:])):
                np.testing.assert_array_equal(board.run(part).outputs, emu.run(part).outputs)
                assert_same_learning_words(board, emu, f"run {t}")
                board.set_reward([-77, 27])
                emu.set_reward(np.array([-77, 27]))
            # the runs did learn: weights and traces moved
            after = emu.learning_words()
            assert any((after[r] != before[r]).any() for r in after)
            board.reset()
            emu.reset()
            assert_same_learning_words(board, emu, "reset")
            np.testing.assert_array_equal(board.run(x[:4]).outputs, emu.run(x[:4]).outputs)
            assert_same_learning_words(board, emu, "after reset")
            with pytest.raises(ValueError, match="s8 range"):
                board.set_reward(200)
        finally:
            board.close()


def test_learning_image_on_a_board_without_the_engine_is_refused():
    from test_learning_reference import G, random_chip
    with PtyBoard(G) as chip:
        with pytest.raises(ValueError, match="no learning engine.*neuromesh build --learning"):
            BoardBackend(random_chip(3, True), port=chip.port, baud=115200,
                         response_timeout=30).close()
        plain = random_image(4, G, n_inputs=3)
        board = BoardBackend(plain, port=chip.port, baud=115200, response_timeout=30)
        try:
            x = random_inputs(4, plain, 6)
            np.testing.assert_array_equal(board.run(x).outputs, Emulator(plain).run(x).outputs)
            with pytest.raises(ValueError, match="does not use the learning engine"):
                board.learning_words()
            # A bitstream without counters says so in one line (§13).
            with pytest.raises(CountersUnavailableError,
                               match="^the board's bitstream has no activity counters.*"
                                     "neuromesh build --counters`$"):
                board.counters()
        finally:
            board.close()


def test_verilator_pty_board_and_bad_simulator():
    g = Geometry(rows=1, cols=2, n_neurons=6, n_axons=8, n_synapses=24, n_fanout=12,
                 n_profiles=2, n_groups=2, delay_slots=4)
    # Seed 15: an image with activity (37 output spikes), so equality means something.
    image = random_image(15, g, n_inputs=3, density=0.7)
    x = random_inputs(15, image, 30)
    with PtyBoard(g, simulator="verilator") as chip:
        board = BoardBackend(image, port=chip.port, baud=115200, response_timeout=60)
        try:
            r, e = board.run(x), Emulator(image).run(x)
            np.testing.assert_array_equal(r.outputs, e.outputs)
            assert e.outputs.sum() > 10
        finally:
            board.close()
    with pytest.raises(ValueError, match="simulator 'iverilog'"):
        PtyBoard(g, simulator="iverilog")


def _descendants(pid: int) -> set[int]:
    """Process ids below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _cpu_seconds(pids) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])      # utime + stime
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def test_verilator_pty_board_idles_on_io_and_stops_on_sigterm():
    """An idle simulated board waits on its terminal (no clock running), and
    SIGTERM to the Python process stops the Verilator model it started."""
    g = Geometry(rows=1, cols=2, n_neurons=6, n_axons=8, n_synapses=24, n_fanout=12,
                 n_profiles=2, n_groups=2, delay_slots=4)
    proc = subprocess.Popen([sys.executable, "-m", "neuromesh.sim.pty_board", str(g),
                             "--simulator", "verilator"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = "-"
        while line and not line.startswith("/"):
            line = proc.stdout.readline()
        port = line.strip()
        assert port.startswith("/dev/")
        image = random_image(10, g, n_inputs=3, density=0.7)
        board = BoardBackend(image, port=port, baud=115200, response_timeout=60)
        try:
            x = random_inputs(10, image, 10)
            np.testing.assert_array_equal(board.run(x).outputs, Emulator(image).run(x).outputs)
        finally:
            board.close()
        below = _descendants(proc.pid)
        assert below                                # the Verilator model runs below it
        cpu0, t0 = _cpu_seconds([proc.pid, *below]), time.monotonic()
        time.sleep(2.0)
        busy = (_cpu_seconds([proc.pid, *below]) - cpu0) / (time.monotonic() - t0)
        assert busy < 0.2, f"an idle board used {busy:.0%} of a core"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{p}") for p in below) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in below if os.path.exists(f"/proc/{p}")]
        assert not left, f"processes left behind: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_a_board_of_another_geometry_is_one_line_naming_both(tmp_path, capsys):
    """`run --backend board` and `demo --board` on a board whose geometry is
    not the image's: one line naming the image, the port and both
    geometries (no HostLinkError traceback), and nothing is run."""
    from neuromesh.boards.catalog import get_board
    from neuromesh.cli import main
    from neuromesh.image import save
    g = Geometry(rows=1, cols=1, n_neurons=6, n_axons=8, n_synapses=24, n_fanout=12,
                 n_profiles=2, n_groups=2, delay_slots=4)
    other = Geometry(rows=1, cols=2, n_neurons=6, n_axons=8, n_synapses=24, n_fanout=12,
                     n_profiles=2, n_groups=2, delay_slots=4)
    image = random_image(5, other, n_inputs=3, density=0.8)
    save(image, tmp_path / "net.nmi")
    board = get_board("icebreaker")
    with PtyBoard(g) as chip:
        rc = main(["run", str(tmp_path / "net.nmi"), "--steps", "3", "--backend", "board",
                   "--port", chip.port, "--baud", "115200", "--timeout", "60",
                   "-o", str(tmp_path / "out.npz"), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2
        assert err == [f"neuromesh run: error: image {tmp_path / 'net.nmi'} is for geometry "
                       f"{other}, but the board on {chip.port} has geometry {g}; compile it "
                       f"for the board's geometry"]
        rc = main(["demo", "--board", "icebreaker", "--limit", "1", "--port", chip.port,
                   "--baud", "115200", "--timeout", "60"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2
        assert err == [f"neuromesh demo: error: the demo image is for geometry "
                       f"{Geometry.parse(board.geometry)}, but the board on {chip.port} has "
                       f"geometry {g}; compile it for the board's geometry"]
    assert not (tmp_path / "out.npz").exists()
