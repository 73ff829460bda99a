"""Hardening (issue 14): every bad input gets a one-line error and exit status 2,
no traceback, no half-written file, and memory a run needs is refused with
the figures before it is allocated."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from neuromesh.chip import LAYOUTS, Geometry, Region, pack_address
from neuromesh.cli import main, parse_neurons
from neuromesh.config import check, decode
from neuromesh.emulator import Emulator
from neuromesh.emulator.emulator import memory_estimate
from neuromesh.emulator.synapses import count_edges, expand
from neuromesh.examples import feedforward_2x2
from neuromesh.files import atomic_write, write_bytes
from neuromesh.image import MAGIC, ChipImage, ImageError, load, save
from neuromesh.limits import ImageTooLargeError, MemoryLimitError, parse_size

HEADER = struct.Struct("<8sHHBBHHIHBBBBIIII")
ROOT = Path(__file__).resolve().parents[1]
SNNTORCH = ROOT / "tests" / "data" / "snntorch"


# --- helpers -----------------------------------------------------------------------

def cli(argv, capsys):
    """Run ``neuromesh argv``; return (exit status, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:       # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(result, *needles):
    """Exit status 2, one line on stderr holding every needle, no traceback."""
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def image_bytes(geometry: Geometry, runs=(), meta=None, flags: int = 0) -> bytes:
    """A chip image file from raw parts (the §8 layout, CRC computed)."""
    body = b"".join(struct.pack("<II", start, len(words))
                    + np.asarray(words, "<u8").tobytes() for start, words in runs)
    if meta is None:
        meta = {"n_inputs": 0, "n_outputs": 0, "inputs": [], "meta": {}}
    meta = meta if isinstance(meta, bytes) else json.dumps(meta, separators=(",", ":")).encode()
    g = geometry
    fields = (MAGIC, 1, flags, g.rows, g.cols, g.n_neurons, g.n_axons, g.n_synapses,
              g.n_fanout, g.n_profiles, g.n_groups, g.delay_slots, 0, len(runs), len(body),
              len(meta))
    head = HEADER.pack(*fields, 0)[:-4]
    crc = zlib.crc32(meta, zlib.crc32(body, zlib.crc32(head)))
    return HEADER.pack(*fields, crc) + body + meta


def word(region, **fields) -> int:
    return int(LAYOUTS[region].pack(**fields))


def fanout_bomb(n_neurons=64, n_fanout=64, n_synapses=65536) -> bytes:
    """A small legal image that expands hugely: every neuron's fan-out list
    is the same n_fanout entries, each reaching an axon whose synapse run is
    the whole synapse memory (never-written synapses are legal zero words)."""
    g = Geometry(n_neurons=n_neurons, n_axons=n_fanout, n_synapses=n_synapses,
                 n_fanout=n_fanout)
    runs = [
        (int(pack_address(0, Region.PROFILE, 0)), [word(Region.PROFILE, du=10, dv=10,
                                                        vth_mant=1)]),
        (int(pack_address(0, Region.NEURON, 0)),
         [word(Region.NEURON, fanout_base=0, fanout_len=n_fanout, bias_mant=100)] * n_neurons),
        (int(pack_address(0, Region.AXON, 0)),
         [word(Region.AXON, syn_base=0, syn_len=n_synapses)] * n_fanout),
        (int(pack_address(0, Region.FANOUT, 0)),
         [word(Region.FANOUT, axon=a) for a in range(n_fanout)]),
    ]
    return image_bytes(g, runs)


@pytest.fixture
def example(tmp_path):
    path = tmp_path / "ex.nmi"
    save(feedforward_2x2(), path)
    return path


# --- the loader ------------------------------------------------------------------------

def test_deeply_nested_json_is_refused_by_every_command(tmp_path, capsys):
    meta = b'{"n_inputs": 0, "n_outputs": 0, "inputs": [], "meta": {"x": ' \
        + b"[" * 1000 + b"]" * 1000 + b"}}"
    path = tmp_path / "deep.nmi"
    path.write_bytes(image_bytes(Geometry(), meta=meta))
    for command in (["info"], ["report"], ["run", "--steps", "1"]):
        argv = [command[0], path, *command[1:]]
        assert_one_line_error(cli(argv, capsys), str(path), "nests deeper than MAX_JSON_DEPTH 64")
    # 64 levels are fine (the limit is inclusive), 65 are not: the section
    # object and "meta" are two levels, the list the rest.
    for depth, ok in ((62, True), (63, False)):
        nested = json.loads("[" * depth + "]" * depth)
        path.write_bytes(image_bytes(Geometry(), meta={"n_inputs": 0, "n_outputs": 0,
                                                       "inputs": [], "meta": {"x": nested}}))
        if ok:
            load(path)
        else:
            with pytest.raises(ImageError, match="nests deeper"):
                load(path)


@pytest.mark.parametrize("compiler, problem", [
    ({"quantization": 5}, "wrong type"),
    ({"quantization": {}}, "has no 'populations'"),
    ({"quantization": {"p": {"w_shift": 1}}}, "has no 'max_abs_error'"),
    ({"quantization": {}, "populations": {"a": 3}, "placement": {"clusters": {"a[0]": [0]}},
      "scales": {"a": 1.0}}, "wrong type or shape"),
])
def test_report_with_a_malformed_compiler_record(tmp_path, capsys, compiler, problem):
    path = tmp_path / "odd.nmi"
    image = feedforward_2x2()
    image.meta = {"name": "odd", "compiler": compiler}
    save(image, path)
    assert cli(["info", path], capsys)[0] == 0        # the image itself is fine
    assert_one_line_error(cli(["report", path], capsys), "meta.compiler", problem)


def test_info_escapes_the_name(tmp_path, capsys):
    path = tmp_path / "name.nmi"
    image = feedforward_2x2()
    image.meta = {"name": "evil\nname\x1b[31m" + "x" * 300}
    save(image, path)
    code, out, _ = cli(["info", path], capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("name"))
    assert line.startswith("name       evil\\nname\\x1b[31mxxx") and line.endswith("...")
    assert "\x1b" not in out


def test_address_past_the_end_of_the_address_space(tmp_path):
    path = tmp_path / "a.nmi"
    path.write_bytes(image_bytes(Geometry(), [(0xFFFFFFFF, [0, 0])]))
    with pytest.raises(ImageError, match=r"write run #0: 2 words at 0xffffffff run past the "
                                         r"last address 0xffffffff"):
        load(path)


@pytest.mark.parametrize("ports, message", [
    ([[-1, 0, 0]], r"input port #0: channel -1 is negative \(channels are 0 .. n_inputs - 1 "
                   r"= 1\)"),
    ([[0, 0, -3]], r"input port #0: axon -3 is negative \(axons are 0 .. n_axons - 1 = 255\)"),
    ([[0, -1, 0]], r"input port #0: core id -1 \(not in \[0, 255\], y << 4 \| x\) is outside"),
])
def test_negative_port_map_values(tmp_path, ports, message):
    path = tmp_path / "p.nmi"
    path.write_bytes(image_bytes(Geometry(), meta={"n_inputs": 2, "n_outputs": 0,
                                                   "inputs": ports, "meta": {}}))
    with pytest.raises(ImageError, match=message):
        load(path)


def test_non_regular_files_are_refused(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)        # no writer: reading it would block forever
    assert_one_line_error(cli(["info", fifo], capsys), "is a FIFO, not a regular file")
    assert_one_line_error(cli(["info", "/dev/zero"], capsys), "is a device, not a regular file")
    assert_one_line_error(cli(["info", tmp_path], capsys), "is a folder")
    assert_one_line_error(cli(["info", tmp_path / "none.nmi"], capsys), "no such file")


def test_info_of_the_largest_geometry_stays_cheap(tmp_path, capsys):
    """94 bytes with every geometry field at its maximum: the loader's checks
    and the utilization table read the writes, not the 340 MB of memory the
    chip would have."""
    from neuromesh.chip import GEOMETRY_LIMITS
    g = Geometry(**{k: hi for k, (lo, hi) in GEOMETRY_LIMITS.items()})
    path = tmp_path / "max.nmi"
    path.write_bytes(image_bytes(g))
    assert path.stat().st_size == 94
    tracemalloc.start()
    code, out, _ = cli(["info", path], capsys)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 0 and "16x16" in out
    assert peak < 16 << 20, peak
    # Running it is refused with the figures, before anything is allocated.
    line = assert_one_line_error(cli(["run", path, "--steps", "1", "--max-memory", "100M"],
                                     capsys), "needs an estimated", "more than the memory "
                                                                    "limit 100.0 MiB")
    assert "tables of" in line


# --- memory: estimated, refused with numbers -----------------------------------------

def test_fanout_bomb_is_refused_before_allocating(tmp_path, capsys):
    data = fanout_bomb()
    assert len(data) < 2300          # the 2.2 KB image
    path = tmp_path / "bomb.nmi"
    path.write_bytes(data)
    image = load(path)               # legal
    entries, edges = count_edges(image, check(image))
    assert (entries, edges) == (64 * 64, 64 * 64 * 65536)
    tracemalloc.start()
    with pytest.raises(ImageTooLargeError, match=r"needs an estimated 16\.\d GiB \(268,435,456 "
                                                 r"synaptic edges, 4,096 fan-out entries"):
        Emulator(image, max_memory=1 << 30)
    assert tracemalloc.get_traced_memory()[1] < 32 << 20
    tracemalloc.stop()
    assert isinstance(ImageTooLargeError("x"), ImageError)
    line = assert_one_line_error(cli(["run", path, "--steps", "1", "--max-memory", "1G"],
                                     capsys), "268,435,456 synaptic edges", "1.0 GiB")
    assert "--max-memory" in line


def test_the_terabyte_image_is_refused_by_the_default_limit(tmp_path, capsys):
    path = tmp_path / "tera.nmi"
    path.write_bytes(fanout_bomb(n_neurons=1024, n_fanout=1024, n_synapses=65536))
    assert path.stat().st_size < 40_000
    assert_one_line_error(cli(["run", path, "--steps", "1"], capsys),
                          "68,719,476,736 synaptic edges", "4.0 TiB", "memory limit")


@pytest.mark.parametrize("block", [3, 1 << 20])
def test_edge_count_matches_the_expansion(monkeypatch, block):
    import neuromesh.emulator.synapses as synapses
    monkeypatch.setattr(synapses, "COUNT_BLOCK", block)
    rng = np.random.default_rng(5)
    for _ in range(30):
        g = Geometry(rows=1, cols=2, n_neurons=8, n_axons=8, n_synapses=16, n_fanout=8)
        runs = []
        for core in (0, 1):
            base = rng.integers(0, 8, 8)
            runs.append((int(pack_address(core, Region.NEURON, 0)),
                         [word(Region.NEURON, fanout_base=int(b),
                               fanout_len=int(rng.integers(0, 9 - b))) for b in base]))
            sb = rng.integers(0, 16, 8)
            runs.append((int(pack_address(core, Region.AXON, 0)),
                         [word(Region.AXON, syn_base=int(b), syn_len=int(rng.integers(0, 17 - b)))
                          for b in sb]))
            written = int(rng.integers(0, 9))      # part of the fan-out table stays zero
            runs.append((int(pack_address(core, Region.FANOUT, 0)),
                         [word(Region.FANOUT, axon=int(rng.integers(8)), x=int(rng.integers(2)))
                          if rng.random() < 0.7 else word(Region.FANOUT, to_host=1, channel=0)
                          for _ in range(written)]))
        image = ChipImage(g, np.concatenate([np.arange(s, s + len(w)) for s, w in runs]),
                          np.concatenate([np.array(w, np.uint64) for _, w in runs]),
                          inputs=[(0, 1, 3), (1, 0, 0)], n_inputs=2, n_outputs=1)
        try:
            config = decode(image)
        except ImageError:
            continue      # two host-bound entries on channel 0
        edges = expand(config)
        fanout = int(config[Region.NEURON]["fanout_len"].sum())
        assert count_edges(image, check(image)) == (fanout, edges.src.size)


def test_edge_count_on_the_far_cores_of_a_16x16_mesh():
    """count_edges widens the compact checked fields: a fan-out entry to core
    (15, 15) is core index 255, which y * cols + x in int8 would wrap."""
    g = Geometry(rows=16, cols=16, n_neurons=4, n_axons=4, n_synapses=8, n_fanout=4)
    runs = [(int(pack_address(0, Region.NEURON, 1)), [word(Region.NEURON, fanout_base=2,
                                                           fanout_len=2)]),
            (int(pack_address(0, Region.FANOUT, 2)), [word(Region.FANOUT, axon=3, x=15, y=15),
                                                      word(Region.FANOUT, axon=1, x=2, y=9)]),
            (int(pack_address(0xFF, Region.AXON, 3)), [word(Region.AXON, syn_base=1,
                                                            syn_len=5)]),
            (int(pack_address(0x92, Region.AXON, 1)), [word(Region.AXON, syn_len=2)]),
            (int(pack_address(0xFF, Region.SYNAPSE, 1)), [word(Region.SYNAPSE, target=3,
                                                               w_mant=7)] * 5)]
    image = ChipImage(g, np.concatenate([np.arange(s, s + len(w)) for s, w in runs]),
                      np.concatenate([np.array(w, np.uint64) for _, w in runs]))
    edges = expand(decode(image))
    assert edges.src.size == 7
    assert count_edges(image, check(image)) == (2, 7)

def test_memory_estimate_is_above_the_measured_peak():
    """BYTES_PER_EDGE and friends, measured: the estimate must not be
    below what building the emulator really holds."""
    for data in (fanout_bomb(16, 16, 2048), fanout_bomb(256, 4, 256)):
        image = _load_bytes(data)
        need, _ = memory_estimate(image)
        tracemalloc.start()
        Emulator(image)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < need < 4 * peak + (16 << 20), (peak, need)


def _load_bytes(data: bytes):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.nmi"
        path.write_bytes(data)
        return load(path)


@pytest.mark.parametrize("argv, needles", [
    (["--steps", "1000000000"], ["a run of 1,000,000,000 steps x batch 1 needs an estimated "
                                 "7.5 GiB", "8 output channels"]),
    (["--steps", "1", "--batch", "100000000"], ["batch 100000000 needs an estimated"]),
    (["--steps", "10", "--probe", "0-100000000"], ["--probe: '0-100000000' is outside the "
                                                   "chip's neurons 0-127"]),
])
def test_run_sizes_are_refused_with_numbers(example, capsys, argv, needles):
    assert_one_line_error(cli(["run", example, "--max-memory", "4G", *argv], capsys), *needles)


def test_run_memory_of_probes_is_estimated(example):
    emu = Emulator(load(example), max_memory=64 << 20)
    with pytest.raises(MemoryLimitError, match=r"a run of 1,000,000 steps x batch 1 needs an "
                                               r"estimated 865\.9 MiB \(8 output channels, 100 "
                                               r"probed neurons x spikes, u, v\)"):
        emu.run(steps=1_000_000, probe=np.arange(100))
    assert emu.step == 0                  # refused before anything ran


def test_example_steps_are_refused_with_numbers(capsys):
    assert_one_line_error(cli(["example", "--steps", "100000000", "--quiet"], capsys),
                          "100,000,000 steps x batch 4 needs an estimated", "GiB")


def test_parse_size():
    assert parse_size("512M") == 512 << 20
    assert parse_size("1.5g") == 3 << 29
    assert parse_size("4GiB") == 4 << 30
    assert parse_size("1000") == 1000
    for bad in ("", "-1G", "lots", "0"):
        with pytest.raises(ValueError):
            parse_size(bad)


# --- the command line ------------------------------------------------------------------

@pytest.mark.parametrize("argv, needles", [
    (["run", "{img}", "--steps", "-1"], ["argument --steps", "-1 is below the minimum 1"]),
    (["run", "{img}", "--steps", "0"], ["argument --steps", "0 is below the minimum 1"]),
    (["run", "{img}", "--batch", "0", "--steps", "3"], ["argument --batch", "minimum 1"]),
    (["example", "--steps", "0"], ["argument --steps", "0 is below the minimum 1"]),
    (["example", "--batch", "x"], ["argument --batch", "'x' is not an integer"]),
    (["demo", "--limit", "-1"], ["argument --limit", "-1 is below the minimum 1"]),
    (["cosim-campaign", "--cases", "-1"], ["argument --cases", "-1 is below the minimum 1"]),
    (["cosim", "{img}", "--steps", "-5"], ["argument --steps", "minimum 1"]),
    (["run", "{img}", "--steps", "2", "--max-memory", "lots"], ["argument --max-memory",
                                                                "cannot read 'lots'"]),
    (["compile", "m.nir", "-o", "x.nmi", "--framework", "snntorch", "--dt", "0"],
     ["argument --dt", "'0' must be a finite number > 0"]),
    (["compile", "m.nir", "-o", "x.nmi", "--dt", "inf"], ["argument --dt", "finite"]),
    (["compile", "m.nir", "-o", "x.nmi", "--dt", "nan"], ["argument --dt", "finite"]),
    (["rtl", "-o", "{tmp}/x.v", "--geometry", ""], ["argument --geometry: empty; expected RxC"]),
    (["compile", "m.nir", "-o", "x.nmi", "--dt", "1", "--geometry", " "],
     ["argument --geometry: empty"]),
    (["rtl", "-o", "{tmp}/x.v", "--geometry", "2x2,rows=3"], ["rows is given twice"]),
    (["run", "{img}", "--steps", "2", "--probe", ""], ["--probe: empty"]),
    (["run", "{img}", "--steps", "2", "--probe", "3-1"], ["--probe: range '3-1' is empty"]),
    (["run", "{img}", "--steps", "2", "--probe", "-4"], ["--probe: cannot read '-4'"]),
    (["nosuchcommand"], ["invalid choice"]),
])
def test_bad_arguments(example, tmp_path, capsys, argv, needles):
    argv = [a.format(img=example, tmp=tmp_path) for a in argv]
    assert_one_line_error(cli(argv, capsys), *needles)
    assert not (tmp_path / "x.v").exists()


def test_bad_input_files(example, tmp_path, capsys):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((3, 64)))
    assert_one_line_error(cli(["run", example, "--input", npy], capsys),
                          "a single .npy array; give an .npz file with an array named 'spikes'")
    for shape in ((64,), ()):
        np.savez(tmp_path / "s.npz", spikes=np.zeros(shape))
        assert_one_line_error(cli(["run", example, "--input", tmp_path / "s.npz"], capsys),
                              f"'spikes' has shape {shape}; expected [steps, batch, n_inputs]")
    np.savez(tmp_path / "t.npz", spikes=np.array([["a"] * 64]))
    assert_one_line_error(cli(["run", example, "--input", tmp_path / "t.npz"], capsys),
                          "'spikes' holds <U1, not 0/1 numbers")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    assert_one_line_error(cli(["run", example, "--input", tmp_path / "junk.npz"], capsys),
                          "not a readable npz file")
    np.savez(tmp_path / "o.npz", other=np.zeros(3))
    assert_one_line_error(cli(["cosim", example, "--input", tmp_path / "o.npz"], capsys),
                          "no array named 'spikes' (found other)")
    np.savez(tmp_path / "w.npz", spikes=np.zeros((3, 5)))
    assert_one_line_error(cli(["cosim", example, "--input", tmp_path / "w.npz"], capsys),
                          f"--input {tmp_path / 'w.npz'}: 'spikes' has shape (3, 5); the image "
                          f"expects [steps, batch, 64] or [steps, 64] (64 input channels)")
    np.savez(tmp_path / "v.npz", spikes=np.full((3, 64), 2))
    assert_one_line_error(cli(["run", example, "--input", tmp_path / "v.npz"], capsys),
                          "inputs[0, 0, 0] = 2: a spike input must be 0 or 1")


def test_run_out_prints_the_real_path_and_refuses_its_input(example, tmp_path, capsys):
    code, out, _ = cli(["run", example, "--steps", "3", "-o", tmp_path / "adir",
                        "--quiet"], capsys)
    assert code == 0
    assert f"wrote {tmp_path / 'adir.npz'}: outputs" in out
    assert (tmp_path / "adir.npz").exists() and not (tmp_path / "adir").exists()
    inputs = tmp_path / "in.npz"
    np.savez(inputs, spikes=np.zeros((3, 64), bool))
    before = inputs.read_bytes()
    assert_one_line_error(cli(["run", example, "--input", inputs, "-o", inputs], capsys),
                          f"-o/--output {inputs} is --input")
    assert_one_line_error(cli(["run", example, "--input", inputs, "-o", tmp_path / "in"],
                              capsys), "is --input")
    assert inputs.read_bytes() == before
    assert_one_line_error(cli(["run", example, "--steps", "2", "-o",
                               tmp_path / "no" / "o.npz"], capsys), "does not exist")


def test_compile_checks_its_outputs_before_writing(tmp_path, capsys):
    out = tmp_path / "m.nmi"
    out.write_bytes(b"previous")
    model = SNNTORCH / "leaky_zero.nir"
    assert_one_line_error(cli(["compile", model, "-o", out, "--framework", "snntorch",
                               "--heatmap", "/nonexistent/h.png"], capsys),
                          "--heatmap /nonexistent/h.png: the folder /nonexistent does not exist")
    assert out.read_bytes() == b"previous"


def test_internal_errors_are_one_line_and_traceback_on_request(monkeypatch, capsys, example):
    import neuromesh.cli as cli_module

    def broken(args):
        raise KeyError("bug")
    monkeypatch.setattr(cli_module, "cmd_info", broken)
    code, _, err = cli(["info", example], capsys)
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "internal error: KeyError: 'bug' (a bug; NEUROMESH_TRACEBACK=1 shows where)" in err
    monkeypatch.setenv("NEUROMESH_TRACEBACK", "1")
    with pytest.raises(KeyError):
        main(["info", str(example)])


def test_parse_neurons_checks_bounds_before_expanding():
    assert parse_neurons("0-3,7", 8).tolist() == [0, 1, 2, 3, 7]
    with pytest.raises(ValueError, match=r"'0-99999999999' is outside the chip's neurons 0-7"):
        parse_neurons("0-99999999999", 8)


# --- files: atomic writes ----------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write(b"new, half")
            raise RuntimeError("failed while producing the data")
    assert path.read_bytes() == b"old"
    write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)     # permissions kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


_FSIZE_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    from neuromesh.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("command", ["example", "run"])
def test_a_write_that_fails_leaves_the_previous_file(tmp_path, example, command):
    """RLIMIT_FSIZE stands in for a full disk: the write fails part-way, the
    command reports it in one line, and the previous file is untouched.
    (``compile``, ``--heatmap`` and ``rtl``: the test below.)"""
    target = tmp_path / {"example": "ex2.nmi", "run": "out.npz"}[command]
    target.write_bytes(b"previous contents")
    argv = {"example": ["example", "--steps", "2", "--batch", "1", "--quiet", "-o", target],
            "run": ["run", example, "--steps", "3000", "--batch", "4", "--probe", "0-127",
                    "-o", target, "--quiet"]}[command]
    proc = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, *map(str, argv)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "File too large" in proc.stderr
    assert target.read_bytes() == b"previous contents"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


_FSIZE_OUTPUT_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    limit, argv = int(sys.argv[1]), sys.argv[2:]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot            # its font cache is written before the limit
    if argv[0] == "rtl":                # the generator runs yosys (big files): stand in
        import neuromesh.rtl.generate as generate
        generate.generate_verilog = lambda geometry, **kw: "// neuromesh_chip\\n" * 20000
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from neuromesh.cli import main
    sys.exit(main(argv))
""")


@pytest.mark.parametrize("command", ["compile", "heatmap", "rtl"])
def test_compile_rtl_and_heatmap_writes_that_fail_leave_the_previous_file(tmp_path, command):
    """``compile -o``, ``--heatmap`` and ``rtl -o`` write through the atomic
    writer too: a write cut short by RLIMIT_FSIZE (a full disk) is one error
    line, and the previous file stays as it was. The compiled image is 4 KB
    and its heatmap 38 KB: with a 16 KB limit the image is written and the
    heatmap fails."""
    model = SNNTORCH / "leaky_zero.nir"
    image, heatmap, verilog = tmp_path / "m.nmi", tmp_path / "h.png", tmp_path / "chip.v"
    target, limit, argv = {
        "compile": (image, 1024, ["compile", model, "-o", image, "--framework", "snntorch"]),
        "heatmap": (heatmap, 16384, ["compile", model, "-o", image, "--framework", "snntorch",
                                     "--heatmap", heatmap]),
        "rtl": (verilog, 4096, ["rtl", "-o", verilog, "--geometry", "1x1", "--quiet"]),
    }[command]
    target.write_bytes(b"previous contents")
    proc = subprocess.run([sys.executable, "-c", _FSIZE_OUTPUT_SCRIPT, str(limit),
                           *map(str, argv)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"neuromesh {argv[0]}: error: ") and "File too large" in lines[0]
    assert target.read_bytes() == b"previous contents"
    if command == "heatmap":            # written before the heatmap failed
        assert load(image).geometry.n_cores >= 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- NIR files ---------------------------------------------------------------------------

def _h5(path, build):
    import h5py
    with h5py.File(path, "w") as f:
        build(f)
    return path


def _node(group, type_, **data):
    import h5py
    group.create_dataset("type", data=type_, dtype=h5py.string_dtype())
    for k, v in data.items():
        if isinstance(v, str):
            group.create_dataset(k, data=v, dtype=h5py.string_dtype())
        else:
            group.create_dataset(k, data=v)


def _graph(f, nodes, edges, root="node"):
    """A NIR graph group: ``nodes`` = {name: (type, fields) or (nodes, edges)}."""
    import h5py
    g = f.create_group(root)
    g.create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
    g.create_dataset("edges", data=np.array(edges, dtype=object) if edges else np.zeros(0),
                     dtype=h5py.string_dtype() if edges else None)
    ng = g.create_group("nodes")
    for name, spec in nodes.items():
        if isinstance(spec[0], dict):
            _graph(ng, spec[0], spec[1], root=name)
        else:
            _node(ng.create_group(name), spec[0], **spec[1])
    return g


def _lif(n=4, **over):
    fields = dict(tau=np.full(n, 2e-3), r=np.ones(n), v_leak=np.zeros(n),
                  v_threshold=np.ones(n), v_reset=np.zeros(n))
    fields.update(over)
    return ("LIF", fields)


def _ff(**lif):
    return ({"input": ("Input", {"shape": np.array([3])}),
             "fc": ("Affine", {"weight": np.ones((4, 3)), "bias": np.zeros(4)}),
             "lif": _lif(**lif),
             "output": ("Output", {"shape": np.array([4])})},
            [("input", "fc"), ("fc", "lif"), ("lif", "output")])


def _recurrent_subgraph(inner_edges):
    """The NIR paper's SRNN shape: a subgraph 'lif1' whose nodes are keyed
    'lif1.lif', 'lif1.w_rec', ... with inner edges as given."""
    cuba = dict(tau_mem=np.full(4, 1e-3), tau_syn=np.full(4, 5e-4), r=np.ones(4),
                v_leak=np.zeros(4), v_threshold=np.ones(4), v_reset=np.zeros(4),
                w_in=np.ones(4))
    sub = ({"lif1.input": ("Input", {"shape": np.array([4])}),
            "lif1.lif": ("CubaLIF", cuba),
            "lif1.w_rec": ("Linear", {"weight": np.eye(4) * 0.5}),
            "lif1.output": ("Output", {"shape": np.array([4])})}, inner_edges)
    lif2 = dict(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                v_reset=np.zeros(2))
    return ({"input": ("Input", {"shape": np.array([3])}),
             "fc1": ("Linear", {"weight": np.ones((4, 3))}),
             "lif1": sub,
             "fc2": ("Linear", {"weight": np.ones((2, 4))}),
             "lif2": ("LIF", lif2),
             "output": ("Output", {"shape": np.array([2])})},
            [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")])


def _write_graph(path, spec):
    return _h5(path, lambda f: _graph(f, *spec))


@pytest.mark.parametrize("name, spec, needles", [
    ("unknown_type", ({"input": ("Input", {"shape": np.array([3])}),
                       "x": ("Frobnicate", {"weight": np.ones(3)})}, [("input", "x")]),
     ["node 'x': unknown node type 'Frobnicate' (NIR 1.0 has Affine,"]),
    ("missing_field", ({"input": ("Input", {"shape": np.array([3])}),
                        "fc": ("Affine", {"weight": np.ones((4, 3))})}, [("input", "fc")]),
     ["node 'fc' (Affine): missing field 'bias'"]),
    ("length_mismatch", _ff(r=np.ones(5)),
     ["node 'lif' (LIF): parameter shapes differ (every parameter has one value per "
      "neuron): r (5,); tau, v_leak, v_reset, v_threshold (4,)"]),
    ("stride_0", ({"input": ("Input", {"shape": np.array([1, 8, 8])}),
                   "conv": ("Conv2d", {"input_shape": [8, 8], "weight": np.ones((2, 1, 3, 3)),
                                       "stride": [0, 1],
                                       "padding": [0, 0], "dilation": [1, 1], "groups": 1,
                                       "bias": np.zeros(2)})}, [("input", "conv")]),
     ["node 'conv' (Conv2d): field 'stride' = [0, 1] must be >= 1"]),
    ("string_weight", ({"input": ("Input", {"shape": np.array([3])}),
                        "fc": ("Linear", {"weight": "ones"})}, [("input", "fc")]),
     ["node 'fc' (Linear): field 'weight' holds a string, not numbers"]),
    ("nan_weight", ({"input": ("Input", {"shape": np.array([3])}),
                     "fc": ("Linear", {"weight": np.array([[1.0, np.nan, 0]])})},
                    [("input", "fc")]),
     ["node 'fc' (Linear): field 'weight' holds NaN or infinity"]),
    ("bad_edge", ({"input": ("Input", {"shape": np.array([3])})}, [("input", "ghost")]),
     ["edge ('input', 'ghost') names 'ghost', which is not a node of it"]),
    ("type_mismatch", ({"input": ("Input", {"shape": np.array([3])}),
                        "fc": ("Linear", {"weight": np.ones((4, 5))}),
                        "output": ("Output", {"shape": np.array([4])})},
                       [("input", "fc"), ("fc", "output")]),
     ["the top graph: the graph's type check fails: ValueError"]),
])
def test_malformed_nir_files(tmp_path, capsys, name, spec, needles):
    import nir
    path = _write_graph(tmp_path / f"{name}.nir", spec)
    if name != "nan_weight":                # nir reads NaN weights without a word
        with pytest.raises(Exception):  # noqa: B017 - nir fails, each case its own way
            nir.read(path)
    out = tmp_path / "out.nmi"
    line = assert_one_line_error(
        cli(["compile", path, "-o", out, "--framework", "snntorch"], capsys),
        f"not a readable NIR file: {path}: ", *needles)
    assert line.startswith("neuromesh compile: error: ")
    assert not out.exists()


def test_files_that_are_not_nir(tmp_path, capsys):
    from neuromesh.compiler.nir_read import NIRReadError, read_nir
    text = tmp_path / "t.nir"
    text.write_text("hello")
    with pytest.raises(NIRReadError, match=r"t.nir: not an HDF5 file"):
        read_nir(text)
    other = _h5(tmp_path / "o.h5", lambda f: f.create_dataset("data", data=np.ones(3)))
    with pytest.raises(NIRReadError, match=r"an HDF5 file without a 'node' group \(not NIR; "
                                           r"top-level entries: data\)"):
        read_nir(other)
    with pytest.raises(NIRReadError, match=r"not a readable NIR file: /dev/zero: is a device"):
        read_nir("/dev/zero")


def test_inner_name_edges_are_repaired(tmp_path, capsys):
    """A recurrent subgraph keyed 'lif1.lif' etc. whose inner edges say 'lif':
    nir 1.0 refuses the file; read_nir reads it with the documented repair, and
    it compiles to the same chip as the consistently named file."""
    import nir

    from neuromesh.compiler.nir_import import FRAMEWORKS, from_nir
    from neuromesh.compiler.nir_read import NIRReadError, read_nir
    good = _write_graph(tmp_path / "good.nir", _recurrent_subgraph(
        [("lif1.input", "lif1.lif"), ("lif1.lif", "lif1.w_rec"), ("lif1.w_rec", "lif1.lif"),
         ("lif1.lif", "lif1.output")]))
    bad = _write_graph(tmp_path / "inner.nir", _recurrent_subgraph(
        [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]))
    with pytest.raises(ValueError, match="which does not exist in the graph"):
        nir.read(bad)
    graph = read_nir(bad)
    repairs = graph.metadata["neuromesh_repairs"]
    assert repairs[0] == ("node 'lif1': edge end 'input' read as node 'lif1.input' (inner name "
                          "of subgraph 'lif1')")
    assert len(repairs) == 4          # one line per name, not per edge end
    assert sorted(graph.nodes["lif1"].edges) == sorted(read_nir(good).nodes["lif1"].edges)
    with pytest.raises(NIRReadError, match=r"node 'lif1': edge \('input', 'lif'\) names 'input', "
                                           r"which is not a node of it .*'lif1.input' would "
                                           r"match"):
        read_nir(bad, repair=False)
    options = FRAMEWORKS["norse"]
    a, b = from_nir(str(good), options), from_nir(str(bad), options)
    assert a.populations.keys() == b.populations.keys()
    # the file keys the subgraph's nodes "lif1.lif": the name is not doubled
    assert list(a.populations) == ["lif1.lif", "lif2"]
    code, out, _ = cli(["compile", bad, "-o", tmp_path / "r.nmi", "--framework", "norse"],
                       capsys)
    assert code == 0
    assert "repaired: node 'lif1': edge end 'lif' read as node 'lif1.lif'" in out
    cli(["compile", good, "-o", tmp_path / "g.nmi", "--framework", "norse"], capsys)
    ra, rb = load(tmp_path / "g.nmi"), load(tmp_path / "r.nmi")
    np.testing.assert_array_equal(ra.words, rb.words)
    np.testing.assert_array_equal(ra.addresses, rb.addresses)


def test_only_the_documented_pattern_is_repaired(tmp_path):
    """An inner edge naming a node under no convention (a typo) stays an
    error, and so does an unknown name in the top graph (it has no key)."""
    from neuromesh.compiler.nir_read import NIRReadError, read_nir
    path = _write_graph(tmp_path / "typo.nir", _recurrent_subgraph(
        [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif_"), ("lif", "output")]))
    with pytest.raises(NIRReadError, match=r"node 'lif1': edge \('w_rec', 'lif_'\) names "
                                           r"'lif_', which is not a node of it"):
        read_nir(path)
    spec = _recurrent_subgraph([("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
                                ("lif", "output")])
    spec[1].append(("fc1", "lif1.lif"))       # the top graph: no repair
    with pytest.raises(NIRReadError, match=r"the top graph: edge \('fc1', 'lif1.lif'\) names "
                                           r"'lif1.lif'"):
        read_nir(_write_graph(tmp_path / "top.nir", spec))


# --- host driver against a misbehaving device ------------------------------------------

class FakeDevice:
    """A transport that answers each command with scripted frames."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.sent = []
        self.pending = b""

    async def write(self, data):
        self.sent.append(data)
        self.pending += self.answers.pop(0) if self.answers else b""

    async def read(self):
        data, self.pending = self.pending, b""
        return data


def _chip(type_, payload=b""):
    from neuromesh.protocol import SOF_CHIP, encode
    return encode(type_, payload, sof=SOF_CHIP)


def _malformed_cases():
    from neuromesh.protocol import INFO_LAYOUT, Command, Response
    info = INFO_LAYOUT.pack(1, 1, 1, 256, 256, 4096, 512, 8, 4, 8, 0)
    out = lambda step, *ch: _chip(Response.OUTPUT, struct.pack(f"<IH{len(ch)}H", step,  # noqa
                                                                  len(ch), *ch))
    done = lambda step: _chip(Response.DONE, struct.pack("<I", step))  # noqa: E731
    return [
        ("identify", [_chip(Response.INFO, info[:-1])], r"INFO frame \(answer to IDENTIFY\) "
         r"has a 19-byte payload; §9 says 20 bytes"),
        ("status", [_chip(Response.STATUS, b"\x01\x02")], r"STATUS frame .* 2-byte payload"),
        ("run", [_chip(Response.DONE, b"\x01")], r"DONE frame \(answer to RUN\) has a 1-byte"),
        ("run", [_chip(Response.OUTPUT, b"\x00\x00") + done(1)],
         r"OUTPUT frame has a 2-byte payload; §9 says at least 6"),
        ("run", [_chip(Response.OUTPUT, struct.pack("<IH", 0, 3) + b"\x00\x00") + done(1)],
         r"OUTPUT frame for step 0 announces 3 channels in a 8-byte payload; §9 says 12"),
        ("run", [out(0, 9) + done(1)], r"OUTPUT frame for step 0 names channel 9; the image "
                                      r"has 4 output channels"),
        ("run", [out(7, 1) + done(1)], r"OUTPUT frame for step 7 during a RUN of steps 0..0"),
        ("reset", [out(0, 1) + _chip(Response.ACK, bytes([Command.RESET]))],
         r"OUTPUT frame in answer to RESET; only RUN produces output"),
        ("reset", [_chip(Response.ERROR, b"\x01\x07")], r"ERROR frame .* 2-byte payload; "
                                                        r"§9 says 6"),
        ("reset", [_chip(Response.ACK, b"")], r"ACK frame .* 0-byte payload; §9 says 1"),
        ("reset", [_chip(Response.ACK, bytes([Command.WRITE]))],
         r"ACK frame acknowledges command 0x02, not the RESET sent"),
        ("identify", [_chip(Response.STATUS, b"\x00" * 8)], r"STATUS frame answers IDENTIFY; "
                                                           r"§9 says INFO"),
        ("status", [_chip(0x99, b"")], r"unexpected frame type 0x99 \(answer to STATUS\)"),
        ("status", [_chip(Response.STATUS, b"\x00" * 8)[:-1] + b"\x00"], r"CRC 0x"),
    ]


@pytest.mark.parametrize("command, answers, message", _malformed_cases())
def test_host_driver_names_each_malformed_frame(command, answers, message):
    from neuromesh.host import HostDriver, run_sync
    from neuromesh.protocol import ProtocolError
    drv = HostDriver(FakeDevice(answers), max_idle_reads=3)
    drv.n_outputs = 4
    call = {"identify": drv.identify, "status": drv.status, "reset": drv.reset,
            "run": lambda: drv.run(1)}[command]
    with pytest.raises(ProtocolError, match=message):
        run_sync(call())


def test_host_driver_accepts_well_formed_output():
    from neuromesh.host import HostDriver, run_sync
    from neuromesh.protocol import Response
    frames = (_chip(Response.OUTPUT, struct.pack("<IH2H", 5, 2, 0, 3))
              + _chip(Response.OUTPUT, struct.pack("<IH1H", 6, 1, 1))
              + _chip(Response.DONE, struct.pack("<I", 7)))
    drv = HostDriver(FakeDevice([frames]), max_idle_reads=3)
    drv.n_outputs = 4
    assert run_sync(drv.run(2)) == 7
    assert drv.outputs == {5: [0, 3], 6: [1]}


# --- fuzz: mutated images end in success or ImageError -----------------------------------

_FUZZ_SCRIPT = textwrap.dedent("""
    import resource, struct, sys, zlib
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import numpy as np
    from hypothesis import HealthCheck, given, settings, strategies as st
    from neuromesh.emulator import Emulator
    from neuromesh.image import ImageError, load
    from neuromesh.examples import feedforward_2x2
    from neuromesh.image import save
    sys.path.insert(0, sys.argv[1])
    from test_bad_input import fanout_bomb
    import tempfile, pathlib
    tmp = pathlib.Path(tempfile.mkdtemp()) / "seed.nmi"
    save(feedforward_2x2(), tmp)
    seeds = [tmp.read_bytes(), fanout_bomb(8, 8, 64)]
    case = tmp.with_name("case.nmi")
    HEAD = struct.calcsize("<8sHHBBHHIHBBBBIIII")

    def with_crc(data):
        crc = zlib.crc32(data[HEAD:], zlib.crc32(data[:HEAD - 4]))
        return data[:HEAD - 4] + struct.pack("<I", crc) + data[HEAD:]

    outcomes = {"ok": 0, "ImageError": 0}

    @settings(max_examples=int(sys.argv[2]), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, 1), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                       min_size=1, max_size=6), st.booleans())
    def fuzz(which, edits, fix_crc):
        data = bytearray(seeds[which])
        for where, value in edits:
            data[min(int(where * len(data)), len(data) - 1)] = value
        data = bytes(data)
        if fix_crc:
            data = with_crc(data)
        case.write_bytes(data)
        try:
            image = load(case)
            emu = Emulator(image, batch=2, max_memory=256 << 20)
            emu.run(steps=3)
            outcomes["ok"] += 1
        except ImageError:
            outcomes["ImageError"] += 1

    fuzz()
    print("outcomes", outcomes["ok"], outcomes["ImageError"])
""")


def test_fuzzed_images_end_in_success_or_image_error():
    """Random byte edits of two seed images (the checksum recomputed half the
    time, so edits reach the content checks), under a 3 GiB address-space
    limit and a 256 MiB emulator limit: every outcome is a loaded, run image
    or an ImageError -- never MemoryError, IndexError or anything else."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _FUZZ_SCRIPT, str(Path(__file__).parent),
                           "500"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ok, refused = map(int, proc.stdout.split("outcomes")[1].split())
    assert ok > 0 and refused > 0 and ok + refused >= 100


# --- issue 16: checked before the expensive work, one line naming the file ----------------

def test_compile_names_a_missing_or_non_nir_model(tmp_path, example, capsys):
    out = tmp_path / "m.nmi"
    missing = tmp_path / "nope.nir"
    line = assert_one_line_error(cli(["compile", missing, "-o", out, "--framework", "snntorch"],
                                     capsys))
    assert line == f"neuromesh compile: error: {missing}: not found"
    line = assert_one_line_error(cli(["compile", example, "-o", out, "--framework", "snntorch"],
                                     capsys))
    assert line == (f"neuromesh compile: error: {example}: not a readable NIR file (expected "
                    f"an HDF5 NIR graph): it is a chip image, .nmi")
    text = tmp_path / "model.nir"
    text.write_text("not a model\n")
    line = assert_one_line_error(cli(["compile", text, "-o", out, "--dt", "1e-3"], capsys))
    assert line == (f"neuromesh compile: error: {text}: not a readable NIR file (expected an "
                    f"HDF5 NIR graph): no HDF5 signature")
    assert not out.exists()


def test_run_input_that_is_not_an_npz_says_what_it_should_be(tmp_path, example, capsys):
    model = SNNTORCH / "leaky_zero.nir"
    line = assert_one_line_error(cli(["run", example, "--input", model], capsys))
    assert line == (f"neuromesh run: error: --input {model}: not an .npz file with a 'spikes' "
                    f"array (it is an HDF5 file, e.g. a NIR model); write one with "
                    f"np.savez(file, spikes=...)")
    line = assert_one_line_error(cli(["run", example, "--input", example], capsys))
    assert "(it is a chip image, .nmi)" in line
    good = tmp_path / "x.npz"
    np.savez(good, spikes=np.zeros((3, 64), bool))
    line = assert_one_line_error(cli(["eval", example, "--input", good, "--labels", model],
                                     capsys))
    assert line == (f"neuromesh eval: error: --labels {model}: not an .npz file with a "
                    f"'labels' array (it is an HDF5 file, e.g. a NIR model); write one with "
                    f"np.savez(file, labels=...)")
    line = assert_one_line_error(cli(["sweep", "--input", model], capsys))
    assert line.startswith(f"neuromesh sweep: error: --input {model}: not an .npz file")


def test_wrong_input_width_names_the_real_and_the_expected_shape(tmp_path, example, capsys):
    """The shape check comes before any simulator or board: cosim with
    Amaranth's simulator and run on a board that does not exist both refuse
    the file at once, naming its real shape (not one batch row's)."""
    import time
    wide = tmp_path / "w.npz"
    np.savez(wide, spikes=np.zeros((10, 2, 5), bool))
    want = (f"--input {wide}: 'spikes' has shape (10, 2, 5); the image expects "
            f"[steps, batch, 64] or [steps, 64] (64 input channels)")
    t0 = time.perf_counter()
    line = assert_one_line_error(cli(["cosim", example, "--input", wide, "--sim", "amaranth"],
                                     capsys))
    assert line == f"neuromesh cosim: error: {want}"
    line = assert_one_line_error(cli(["run", example, "--input", wide, "--backend", "board",
                                      "--port", tmp_path / "no-such-tty"], capsys))
    assert line == f"neuromesh run: error: {want}"
    assert time.perf_counter() - t0 < 30


def test_output_paths_are_checked_before_the_work(tmp_path, example, capsys):
    """Every command that writes refuses an output it cannot create first
    (fast: the run, the demo, the campaign or the synthesis never starts)."""
    import time
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (["example", "-o", "/nonexistent/x.nmi"],
         "neuromesh example: error: -o/--output /nonexistent/x.nmi: the folder /nonexistent "
         "does not exist"),
        (["example", "-o", tmp_path], f"-o/--output {tmp_path}: is a folder, not a file"),
        (["run", example, "--steps", "2", "-o", "/nonexistent/o.npz"],
         "neuromesh run: error: -o/--output /nonexistent/o.npz: the folder /nonexistent "
         "does not exist"),
        (["rtl", "-o", tmp_path], f"neuromesh rtl: error: -o/--output {tmp_path}: is a folder"),
        (["demo", "-o", a_file / "sub"],
         f"neuromesh demo: error: -o/--output {a_file / 'sub'}: {a_file} is a file, "
         f"not a folder"),
        (["cosim-campaign", "-o", a_file],
         f"neuromesh cosim-campaign: error: -o/--output {a_file}: is a file, not a folder"),
        (["build", "--board", "icebreaker", "-o", a_file],
         f"neuromesh build: error: -o/--output {a_file}: is a file, not a folder"),
        (["cosim", example, "--steps", "2", "--waves", "/nonexistent/w.vcd"],
         "neuromesh cosim: error: --waves /nonexistent/w.vcd: the folder /nonexistent "
         "does not exist"),
        (["report", example, "--heatmap", tmp_path],
         f"neuromesh report: error: --heatmap {tmp_path}: is a folder, not a file"),
        (["eval", example, "--input", a_file, "-o", "/nonexistent/e.npz"],
         "neuromesh eval: error: -o/--output /nonexistent/e.npz: the folder /nonexistent "
         "does not exist"),
        (["sweep", "-o", "/nonexistent/s.png"],
         "neuromesh sweep: error: -o/--output /nonexistent/s.png: the folder /nonexistent "
         "does not exist"),
        (["sweep", "--input", example],
         f"neuromesh sweep: error: --input {example}: not an .npz file with a 'spikes' array"),
    ]
    for argv, want in cases:
        t0 = time.perf_counter()
        line = assert_one_line_error(cli(argv, capsys))
        assert want in line, (argv, line)
        assert time.perf_counter() - t0 < 20, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex.nmi", "file"]
    assert a_file.read_text() == "x"


def test_a_closed_stdout_ends_quietly_with_status_141(example):
    """`neuromesh ... | head -1`: the reader goes away; no "Broken pipe"
    message, no traceback, the shell's status for SIGPIPE."""
    proc = subprocess.Popen([sys.executable, "-m", "neuromesh.cli", "info", str(example)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                 # before the command has printed anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert err == b""


# --- the Python network API ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(weights=np.array([[1.0, 0], [0, np.nan]])),
     "projection 'x->p': weight[1, 1] = nan is not finite"),
    (dict(weights=(np.array([0, 1]), np.array([0, 1]), np.array([1.0, np.inf]))),
     "projection 'x->p': weight[1] = inf (synapse 1 -> 1) is not finite"),
    (dict(weights=np.eye(2), delay=np.array([0.0, np.nan])),
     "projection 'x->p': delay[1] = nan is not finite"),
    (dict(weights=np.eye(2), delay=np.inf, name="fc"),
     "projection 'fc': delay = inf is not finite"),
    (dict(weights=np.eye(2), delay=np.array([0, -3])),
     "projection 'x->p': delay[1] = -3 is negative"),
    (dict(weights=np.eye(2), delay=np.array([0, 1, 2])),
     "projection 'x->p': delay has shape (3,); expected one value or one per synapse (2)"),
])
def test_network_connect_names_non_finite_weights_and_delays(kwargs, message):
    """A NaN delay was reported as 'negative delay -9223372036854775808' (the
    cast came first), a NaN weight as projection '0' of the target layer."""
    from neuromesh.compiler import Network, NetworkError
    net = Network(dt=1.0)
    net.input("x", 2)
    net.population("p", 2)
    weights = kwargs.pop("weights")
    with pytest.raises(NetworkError) as info:
        net.connect("x", "p", weights, **kwargs)
    assert str(info.value) == message
    assert net.projections == []


# --- compile: NIR values a user must hear about -------------------------------------------

def _compile(tmp_path, capsys, spec, *options, name="m"):
    """Write ``spec`` as a NIR file and compile it; (status, stdout, stderr)."""
    path = _write_graph(tmp_path / f"{name}.nir", spec)
    return cli(["compile", path, "-o", tmp_path / f"{name}.nmi", "--geometry", "1x1",
                *(options or ("--dt", "1e-3"))], capsys)


def test_an_empty_graph_is_refused(tmp_path, capsys):
    """Input -> Output only: nothing to put on the chip."""
    spec = ({"input": ("Input", {"shape": np.array([4])}),
             "output": ("Output", {"shape": np.array([4])})}, [("input", "output")])
    assert_one_line_error(_compile(tmp_path, capsys, spec),
                          "NIR node 'output': fed by Input 'input'; the chip's outputs are "
                          "spikes or readout potentials, so an Output must follow neurons")
    assert not (tmp_path / "m.nmi").exists()


def test_a_zero_time_constant_is_refused_by_the_cli(tmp_path, capsys):
    assert_one_line_error(_compile(tmp_path, capsys, _ff(tau=np.zeros(4))),
                          "NIR node 'lif': tau = 0 must be > 0")
    assert not (tmp_path / "m.nmi").exists()


def test_tau_below_dt_is_noted_and_an_infinite_dt_refused(tmp_path, capsys):
    """A time constant below dt makes Euler forget at once (du = dv = 4096):
    compiled, with a note naming the node and both numbers."""
    code, out, err = _compile(tmp_path, capsys, _ff(), "--dt", "1e300")
    assert code == 0, err
    assert "note: lif: tau = 0.002 is below dt = 1e+300" in out.splitlines()
    code, out, err = _compile(tmp_path, capsys, _ff(tau=np.full(4, 1e-5)), name="small")
    assert code == 0, err
    assert "note: lif: tau = 1e-05 is below dt = 0.001" in out.splitlines()
    for dt in ("inf", "nan", "0", "-1e-3"):
        assert_one_line_error(_compile(tmp_path, capsys, _ff(), f"--dt={dt}", name="x"),
                              "argument --dt", f"'{dt}' must be a finite number > 0")
    assert not (tmp_path / "x.nmi").exists()


def _two_layers(w2=None, lif2=None):
    """input(3) -> fc1 -> lif1(4) -> fc2 -> lif2(2) -> output."""
    return ({"input": ("Input", {"shape": np.array([3])}),
             "fc1": ("Linear", {"weight": np.ones((4, 3))}),
             "lif1": _lif(4),
             "fc2": ("Linear", {"weight": np.ones((2, 4)) if w2 is None else w2}),
             "lif2": _lif(2, **(lif2 or {})),
             "output": ("Output", {"shape": np.array([2])})},
            [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")])


@pytest.mark.parametrize("spec, options, needle", [
    (_ff(), ("--dt", "1e-300"),
     "projection 'fc' (input -> lif): NIR node 'lif' (LIF) has tau = 0.002, whose retention "
     "1 - dt/tau rounds to 1 at dt = 1e-300, so its 12 synapses carry no current"),
    (_ff(r=np.zeros(4)), (),
     "projection 'fc' (input -> lif): NIR node 'lif' (LIF) has r = 0, so its 12 synapses "
     "carry no current"),
    (({"input": ("Input", {"shape": np.array([3])}),
       "fc": ("Affine", {"weight": np.zeros((4, 3)), "bias": np.zeros(4)}),
       "lif": _lif(), "output": ("Output", {"shape": np.array([4])})},
      [("input", "fc"), ("fc", "lif"), ("lif", "output")]), (),
     "projection 'fc' (input -> lif): all 12 weights of NIR node 'fc' (Affine) are 0"),
    (({"input": ("Input", {"shape": np.array([3])}),
       "fc": ("Linear", {"weight": np.ones((4, 3))}),
       "lif": ("CubaLIF", dict(tau_mem=np.full(4, 2e-3), tau_syn=np.full(4, 1e-3),
                               r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4),
                               v_reset=np.zeros(4), w_in=np.zeros(4))),
       "output": ("Output", {"shape": np.array([4])})},
      [("input", "fc"), ("fc", "lif"), ("lif", "output")]), (),
     "NIR node 'lif' (CubaLIF) has w_in = 0, so its 12 synapses carry no current"),
    (_two_layers(w2=np.zeros((2, 4)), lif2=dict(r=np.zeros(2))), ("--dt", "1e-300"),
     "(input -> lif1): NIR node 'lif1' (LIF) has tau = 0.002, whose retention"),
])
def test_a_network_that_carries_nothing_is_refused(tmp_path, capsys, spec, options, needle):
    """Every projection vanishes ("16 input channels -> 0 axons" before):
    the image would ignore its input, so it is refused, naming why."""
    line = assert_one_line_error(_compile(tmp_path, capsys, spec, *options),
                                 "NIR graph: no synapse carries any current, so the chip "
                                 "would ignore its input: ", needle)
    assert "Traceback" not in line
    assert not (tmp_path / "m.nmi").exists()


@pytest.mark.parametrize("spec, needle", [
    (_two_layers(w2=np.zeros((2, 4))),
     "projection 'fc2' (lif1 -> lif2): all 8 weights of NIR node 'fc2' (Linear) are 0; it "
     "carries no current"),
    (_two_layers(lif2=dict(r=np.zeros(2))),
     "projection 'fc2' (lif1 -> lif2): NIR node 'lif2' (LIF) has r = 0, so its 8 synapses "
     "carry no current"),
])
def test_a_projection_that_vanishes_is_warned_about(tmp_path, capsys, spec, needle):
    """Part of the network still works: compiled, with one warning line on
    stderr naming the projection, the node and the number of weights."""
    code, out, err = _compile(tmp_path, capsys, spec)
    assert code == 0, err
    assert err.splitlines() == [f"neuromesh compile: warning: {needle}"]
    assert "wrote" in out and (tmp_path / "m.nmi").exists()


def test_weights_that_all_round_to_zero_are_refused(tmp_path, capsys):
    """A dt not small enough to lose dt/tau in the retention, but small
    enough that every weight rounds to w_mant = 0: the quantizer's error,
    naming the projection, the count and the scale it would need."""
    assert_one_line_error(_compile(tmp_path, capsys, _ff(), "--dt", "1e-14"),
                          "projection 'fc': all 12 nonzero weights round to w_mant = 0",
                          "the projection would vanish -- the scale")
    assert not (tmp_path / "m.nmi").exists()
