"""Chip image files and objects: round trip, every load error, content checks,
and the Geometry notation."""

import dataclasses
import json
import re
import struct
import zlib

import numpy as np
import pytest

from neuromesh import ChipBuilder, ChipError, ChipImage, Geometry, ImageError, Region, load, save
from neuromesh.chip import GEOMETRY_LIMITS, LAYOUTS, core_id, pack_address
from neuromesh.config import decode
from neuromesh.emulator import Emulator
from neuromesh.image import FORMAT_VERSION, MAGIC, InputPort

# The file header as docs/architecture.md §8 specifies it, written out here
# independently of neuromesh.image so a change of the format is noticed.
# (The spec writes the pad byte as "x"; it is read here as a u8 so tests can set it.)
HEADER = struct.Struct("<8sHHBBHHIHBBBBIIII")
HEADER_FIELDS = ("magic", "version", "flags", "rows", "cols", "n_neurons", "n_axons",
                 "n_synapses", "n_fanout", "n_profiles", "n_groups", "delay_slots", "pad",
                 "n_runs", "runs_bytes", "meta_bytes", "crc")
RUN = struct.Struct("<II")

GEOM = Geometry(rows=1, cols=2, n_neurons=8, n_axons=8, n_synapses=32, n_fanout=16,
                n_profiles=4, n_groups=2, delay_slots=8)


def sample_image(meta=None) -> ChipImage:
    """A small two-core network touching every region."""
    b = ChipBuilder(GEOM)
    c = b.core(0, 0)
    c.profile(0, du=410, dv=300, vth_mant=20)
    c.profile(1, du=0, dv=4096, vth_mant=12, refractory=2, reset="subtract")
    c.group(0, w_shift=4)
    c.group(1, w_shift=1)
    c.neurons(range(4), profile=[0, 1, 0, 1], bias_mant=[0, 3, 0, -2], bias_exp=[0, 2, 0, 1])
    c.synapses(axon=0, target=[0, 1, 2, 3], w_mant=[60, 70, -20, 90], delay=[0, 1, 2, 3])
    c.synapses(axon=2, target=[3, 0], w_mant=[127, -128], delay=6, group=1)
    c.state(1, u=100, v=-50, refractory=1)
    c.route(neuron=3, x=1, y=0, axon=1)
    c.route(neuron=0, x=0, y=0, axon=2)
    c.to_host(neuron=2, channel=0)
    d = b.core(1, 0)
    d.profile(0, du=1000, dv=200, vth_mant=15)
    d.group(0, w_shift=5)
    d.neurons([0, 1], profile=0)
    d.synapses(axon=1, target=[0, 1], w_mant=[90, 40])
    d.accum(2, 0, 500)
    d.to_host(neuron=1, channel=1)
    d.to_host(neuron=0, channel=2)
    b.input(channel=0, x=0, y=0, axon=0)
    b.input(channel=1, x=1, y=0, axon=1)
    b.input(channel=1, x=0, y=0, axon=2)
    return b.build(meta=meta if meta is not None else
                   {"name": "sample", "nested": {"a": [1, 2.5, None, "x"]}})


@pytest.fixture
def image():
    return sample_image()


@pytest.fixture
def image_bytes(image, tmp_path):
    path = tmp_path / "sample.nmi"
    save(image, path)
    return path.read_bytes()


def header(data: bytes) -> dict:
    return dict(zip(HEADER_FIELDS, HEADER.unpack_from(data), strict=True))


def rebuild(data: bytes, *, runs: bytes | None = None, meta: bytes | None = None,
            fix_crc: bool = True, fix_sizes: bool = True, **fields) -> bytes:
    """``data`` with header fields, write section or JSON section replaced,
    and (by default) section sizes and CRC recomputed."""
    h = header(data)
    old_runs = data[HEADER.size:HEADER.size + h["runs_bytes"]]
    old_meta = data[HEADER.size + h["runs_bytes"]:]
    runs = old_runs if runs is None else runs
    meta = old_meta if meta is None else meta
    if fix_sizes:
        h["runs_bytes"], h["meta_bytes"] = len(runs), len(meta)
    h.update(fields)
    head = HEADER.pack(*(h[k] for k in HEADER_FIELDS))
    if fix_crc:
        h["crc"] = zlib.crc32(head[:-4] + runs + meta)
        head = HEADER.pack(*(h[k] for k in HEADER_FIELDS))
    return head + runs + meta


def load_bytes(tmp_path, data: bytes, **kw) -> ChipImage:
    path = tmp_path / "test.nmi"
    path.write_bytes(data)
    return load(path, **kw)


def assert_same_image(a: ChipImage, b: ChipImage):
    assert a.geometry == b.geometry
    np.testing.assert_array_equal(a.addresses, b.addresses)
    np.testing.assert_array_equal(a.words, b.words)
    assert a.addresses.dtype == b.addresses.dtype == np.uint32
    assert a.words.dtype == b.words.dtype == np.uint64
    assert a.inputs == b.inputs
    assert (a.n_inputs, a.n_outputs) == (b.n_inputs, b.n_outputs)
    assert a.meta == b.meta
    for region in Region:
        np.testing.assert_array_equal(a.memory(region), b.memory(region))


# --- Round trip --------------------------------------------------------------------

def test_round_trip(image, tmp_path):
    path = tmp_path / "a.nmi"
    save(image, path)
    loaded = load(path)
    assert_same_image(image, loaded)
    assert loaded.inputs == [InputPort(0, core_id(0, 0), 0), InputPort(1, core_id(1, 0), 1),
                             InputPort(1, core_id(0, 0), 2)]
    assert (loaded.n_inputs, loaded.n_outputs) == (2, 3)
    assert loaded.meta == {"name": "sample", "nested": {"a": [1, 2.5, None, "x"]}}


def test_file_header_layout(image, image_bytes):
    h = header(image_bytes)
    g = image.geometry
    assert image_bytes[:8] == MAGIC == b"\x89NMI\r\n\x1a\n"
    assert h["version"] == FORMAT_VERSION == 1
    assert h["flags"] == 0 and h["pad"] == 0
    assert HEADER.size == 44
    assert {k: h[k] for k in g.as_dict()} == g.as_dict()
    assert h["n_runs"] == len(image.runs())
    assert h["runs_bytes"] == RUN.size * h["n_runs"] + 8 * image.words.size
    assert HEADER.size + h["runs_bytes"] + h["meta_bytes"] == len(image_bytes)
    assert h["crc"] == zlib.crc32(image_bytes[:HEADER.size - 4] + image_bytes[HEADER.size:])
    meta = json.loads(image_bytes[HEADER.size + h["runs_bytes"]:])
    assert meta["n_inputs"] == 2 and meta["n_outputs"] == 3
    # Walk the runs: they reproduce the writes in order.
    pos, addrs, words = HEADER.size, [], []
    for _ in range(h["n_runs"]):
        start, count = RUN.unpack_from(image_bytes, pos)
        pos += RUN.size
        addrs += range(start, start + count)
        words += struct.unpack_from(f"<{count}Q", image_bytes, pos)
        pos += 8 * count
    assert addrs == image.addresses.tolist()
    assert words == image.words.tolist()


def test_round_trip_emulates_identically(image, tmp_path):
    path = tmp_path / "a.nmi"
    save(image, path)
    loaded = load(path)
    rng = np.random.default_rng(5)
    inputs = rng.random((40, 3, 2)) < 0.4
    probe = np.arange(GEOM.n_cores * GEOM.n_neurons)
    r1 = Emulator(image, batch=3).run(inputs, probe=probe)
    r2 = Emulator(loaded, batch=3).run(inputs, probe=probe)
    assert r1.outputs.any(), "the sample network should spike"
    np.testing.assert_array_equal(r1.outputs, r2.outputs)
    for name in r1.probes:
        np.testing.assert_array_equal(r1.probes[name], r2.probes[name])
    np.testing.assert_array_equal(r1.synaptic_events, r2.synaptic_events)


def test_round_trip_empty_image(tmp_path):
    g = Geometry(rows=2, cols=3)
    img = ChipImage(g, np.zeros(0), np.zeros(0))
    path = tmp_path / "e.nmi"
    save(img, path)
    assert header(path.read_bytes())["n_runs"] == 0
    assert_same_image(img, load(path))


def test_round_trip_extreme_geometry(tmp_path):
    hi = {name: lim[1] for name, lim in GEOMETRY_LIMITS.items()}
    g = Geometry(**hi)
    last = pack_address(core_id(15, 15), Region.SYNAPSE, g.n_synapses - 1)
    accum = pack_address(core_id(3, 9), Region.ACCUM, g.delay_slots * g.n_neurons - 1)
    img = ChipImage(g, [int(last), int(accum)], [5, 0xFFFFFF], n_inputs=65536, n_outputs=65536)
    path = tmp_path / "x.nmi"
    save(img, path)
    # The header and the writes; decoding the largest geometry's 134 M synapse
    # words (GBs, every word checked) is the Loihi-scale benchmark's job.
    loaded = load(path, check_config=False)
    assert loaded.geometry == g
    assert_same_image(img, loaded)


def test_round_trip_keeps_write_order_and_duplicates(tmp_path):
    g = Geometry(n_neurons=8)
    a = [int(pack_address(0, Region.STATE, i)) for i in (5, 6, 5, 0, 1, 6)]
    w = LAYOUTS[Region.STATE].pack(u=[1, 2, 3, 4, 5, 6])
    img = ChipImage(g, a, w)
    path = tmp_path / "d.nmi"
    save(img, path)
    loaded = load(path)
    assert_same_image(img, loaded)
    assert LAYOUTS[Region.STATE].unpack(loaded.memory(Region.STATE))["u"][0, [0, 1, 5, 6]] \
        .tolist() == [4, 5, 3, 6]


def test_runs_split_at_gaps():
    g = Geometry()
    base = int(pack_address(0, Region.SYNAPSE, 0))
    a = [base + i for i in (10, 11, 12, 20, 21, 21, 5)]
    img = ChipImage(g, a, np.arange(7))
    runs = img.runs()
    assert [(s - base, w.tolist()) for s, w in runs] == [
        (10, [0, 1, 2]), (20, [3, 4]), (21, [5]), (5, [6])]


def test_load_without_config_check(tmp_path):
    # A word with a bad field value: load refuses it unless check_config=False.
    g = Geometry()
    img = ChipImage(g, [int(pack_address(0, Region.PROFILE, 0))],
                    LAYOUTS[Region.PROFILE].pack(du=[5000]))
    path = tmp_path / "c.nmi"
    save(img, path)
    with pytest.raises(ImageError, match=r"du = 5000 > 4096"):
        load(path)
    assert_same_image(img, load(path, check_config=False))


def test_save_accepts_numpy_channel_counts(tmp_path):
    img = ChipImage(Geometry(), np.zeros(0), np.zeros(0),
                    n_inputs=np.int64(3), n_outputs=np.int64(2))
    path = tmp_path / "n.nmi"
    save(img, path)
    loaded = load(path)
    assert (loaded.n_inputs, loaded.n_outputs) == (3, 2)
    assert type(img.n_inputs) is int and type(img.n_outputs) is int


# --- File errors -----------------------------------------------------------------

def test_error_names_the_file(image_bytes, tmp_path):
    path = tmp_path / "named.nmi"
    path.write_bytes(image_bytes[:-1])
    with pytest.raises(ImageError, match=r"^" + re.escape(str(path)) + r": truncated"):
        load(path)


@pytest.mark.parametrize("cut", [9, 12, 30, HEADER.size - 1])
def test_truncated_inside_header(image_bytes, tmp_path, cut):
    with pytest.raises(ImageError,
                       match=rf"truncated: the header needs {HEADER.size} bytes, "
                             rf"the file has {cut}"):
        load_bytes(tmp_path, image_bytes[:cut])


@pytest.mark.parametrize("where", ["header_end", "run_header", "run_words", "writes_end",
                                   "json_start", "json_middle", "json_last"])
def test_truncated_inside_body(image_bytes, tmp_path, where):
    h = header(image_bytes)
    wend = HEADER.size + h["runs_bytes"]
    cut = {"header_end": HEADER.size, "run_header": HEADER.size + 4,
           "run_words": HEADER.size + RUN.size + 3, "writes_end": wend - 1,
           "json_start": wend, "json_middle": wend + h["meta_bytes"] // 2,
           "json_last": len(image_bytes) - 1}[where]
    with pytest.raises(ImageError, match=rf"truncated: header announces {len(image_bytes)} "
                                         rf"bytes, the file has {cut}"):
        load_bytes(tmp_path, image_bytes[:cut])


@pytest.mark.parametrize("cut", [0, 3, 7])
def test_truncated_inside_magic(image_bytes, tmp_path, cut):
    # A prefix of the magic is reported as truncation, not as a wrong magic.
    with pytest.raises(ImageError, match=rf"truncated: {cut} bytes, not even the 8-byte magic"):
        load_bytes(tmp_path, image_bytes[:cut])


@pytest.mark.parametrize("data", [b"PK\x03", b"\x89NMX", b"\x89NMI\r\n\x1a\x0b" + bytes(40)])
def test_short_or_foreign_file_is_wrong_magic(tmp_path, data):
    with pytest.raises(ImageError, match=r"not a neuromesh chip image \(wrong magic"):
        load_bytes(tmp_path, data)


@pytest.mark.parametrize("where", ["n_neurons", "crc", "first_word", "last_word", "json"])
def test_corrupted_byte(image_bytes, tmp_path, where):
    h = header(image_bytes)
    wend = HEADER.size + h["runs_bytes"]
    pos = {"n_neurons": 14, "crc": HEADER.size - 1, "first_word": HEADER.size + RUN.size,
           "last_word": wend - 1, "json": wend + 5}[where]
    data = bytearray(image_bytes)
    data[pos] ^= 0x04
    with pytest.raises(ImageError, match=rf"checksum mismatch: stored 0x{header(data)['crc']:08x}"
                                         r", computed 0x[0-9a-f]{8} \(the file is corrupted\)"):
        load_bytes(tmp_path, bytes(data))


def test_wrong_magic(image_bytes, tmp_path):
    data = b"\x89PNG\r\n\x1a\n" + image_bytes[8:]
    with pytest.raises(ImageError, match=r"wrong magic b'\\x89PNG"):
        load_bytes(tmp_path, data)


def test_wrong_version(image_bytes, tmp_path):
    data = rebuild(image_bytes, version=2)
    with pytest.raises(ImageError, match=r"unsupported format version 2 \(this neuromesh reads "
                                         r"version 1\)"):
        load_bytes(tmp_path, data)


def test_rebuild_helper_is_faithful(image, image_bytes, tmp_path):
    # rebuild() with no change gives the file back, and its CRC fix is accepted.
    assert rebuild(image_bytes) == image_bytes
    assert_same_image(image, load_bytes(tmp_path, rebuild(image_bytes, crc=0)))


def test_unknown_flags(image_bytes, tmp_path):
    with pytest.raises(ImageError, match=r"unknown header flags 0x0004"):
        load_bytes(tmp_path, rebuild(image_bytes, flags=4))


def test_nonzero_pad_byte(image_bytes, tmp_path):
    with pytest.raises(ImageError, match=r"pad byte 0x01"):
        load_bytes(tmp_path, rebuild(image_bytes, pad=1))


@pytest.mark.parametrize("extra", [b"\x00", b"garbage!"])
def test_trailing_bytes(image_bytes, tmp_path, extra):
    with pytest.raises(ImageError, match=rf"{len(extra)} unexpected bytes after the end of the "
                                         rf"image \({len(image_bytes)} bytes\)"):
        load_bytes(tmp_path, image_bytes + extra)


# Header field widths: rows..delay_slots are B,B,H,H,I,H,B,B,B. Every value
# just outside a limit fits its field, except above n_axons and n_fanout,
# whose limits are the u16 fields' maximum (no header can exceed them).
_HEADER_FIELD_MAX = {"n_axons": 0xFFFF, "n_fanout": 0xFFFF}
_HEADER_BAD_GEOMETRY = [(name, value) for name, (lo, hi) in GEOMETRY_LIMITS.items()
                        for value in (lo - 1, hi + 1)
                        if value <= _HEADER_FIELD_MAX.get(name, value)]


def test_header_fields_hold_every_legal_geometry():
    assert GEOMETRY_LIMITS["n_axons"][1] == GEOMETRY_LIMITS["n_fanout"][1] == 0xFFFF


@pytest.mark.parametrize("field, value", _HEADER_BAD_GEOMETRY)
def test_header_geometry_outside_limits(image_bytes, tmp_path, field, value):
    lo, hi = GEOMETRY_LIMITS[field]
    with pytest.raises(ImageError, match=rf"geometry: {field} = {value} is outside "
                                         rf"\[{lo}, {hi}\]"):
        load_bytes(tmp_path, rebuild(image_bytes, **{field: value}))


@pytest.mark.parametrize("value", [3, 12, 48])
def test_header_delay_slots_not_power_of_two(image_bytes, tmp_path, value):
    with pytest.raises(ImageError, match=rf"geometry: delay_slots = {value} is not a power "
                                         r"of two"):
        load_bytes(tmp_path, rebuild(image_bytes, delay_slots=value))


def test_header_geometry_too_small_for_writes(image_bytes, tmp_path):
    # A valid geometry that the writes do not fit: the mesh shrinks to 1x1.
    with pytest.raises(ImageError, match=r"core x=1 y=0.*outside the 1x1 mesh"):
        load_bytes(tmp_path, rebuild(image_bytes, cols=1))


def test_file_write_outside_mesh(image_bytes, tmp_path):
    h = header(image_bytes)
    data = bytearray(image_bytes)
    start, count = RUN.unpack_from(data, HEADER.size)
    bad = int(pack_address(core_id(0, 1), Region.NEURON, 0))
    RUN.pack_into(data, HEADER.size, bad, count)
    with pytest.raises(ImageError, match=rf"image write #0: address 0x{bad:08x} \(core x=0 y=1, "
                                         r"NEURON, word 0\) is outside the 1x2 mesh"):
        load_bytes(tmp_path, rebuild(bytes(data)))
    assert h["n_runs"] >= 1


def test_run_count_beyond_write_section(image_bytes, tmp_path):
    h = header(image_bytes)
    data = bytearray(image_bytes)
    start, count = RUN.unpack_from(data, HEADER.size)
    RUN.pack_into(data, HEADER.size, start, 10_000)
    with pytest.raises(ImageError, match=r"write run #0: 10000 words at 0x[0-9a-f]{8} run past "
                                         r"the write section"):
        load_bytes(tmp_path, rebuild(bytes(data)))
    with pytest.raises(ImageError, match=rf"write run #{h['n_runs']}: header runs past"):
        load_bytes(tmp_path, rebuild(image_bytes, n_runs=h["n_runs"] + 1))


def test_any_run_split_is_accepted(image, image_bytes, tmp_path):
    # One run per word, each preceded by an empty run; plus an empty run at the
    # last address. The image is the same.
    runs, n_runs = b"", 0
    for a, w in zip(image.addresses.tolist(), image.words.tolist(), strict=True):
        runs += RUN.pack(a, 0) + RUN.pack(a, 1) + struct.pack("<Q", w)
        n_runs += 2
    runs += RUN.pack(0xFFFFFFFF, 0)
    data = rebuild(image_bytes, runs=runs, n_runs=n_runs + 1)
    assert_same_image(image, load_bytes(tmp_path, data))


def test_run_past_the_last_address(image_bytes, tmp_path):
    runs = RUN.pack(0xFFFFFFFF, 2) + bytes(16)
    with pytest.raises(ImageError, match=r"write run #0: 2 words at 0xffffffff run past"):
        load_bytes(tmp_path, rebuild(image_bytes, runs=runs, n_runs=1))


def test_leftover_bytes_in_write_section(image_bytes, tmp_path):
    h = header(image_bytes)
    runs = image_bytes[HEADER.size:HEADER.size + h["runs_bytes"]]
    with pytest.raises(ImageError, match=rf"write section: 8 bytes left after {h['n_runs']} runs"):
        load_bytes(tmp_path, rebuild(image_bytes, runs=runs + bytes(8)))


@pytest.mark.parametrize("meta", [
    b"{oops", b"", b"[]", b"null", b"\xff\xfe", b'{"n_inputs": 0, "n_outputs": 0}',
    b'{"n_inputs": "two", "n_outputs": 0, "inputs": []}',
    b'{"n_inputs": 2, "n_outputs": 3, "inputs": [[0, 0]]}',
    b'{"n_inputs": 2, "n_outputs": 3, "inputs": 7}',
])
def test_malformed_json_section(image_bytes, tmp_path, meta):
    with pytest.raises(ImageError, match=r"port map / metadata section is malformed"):
        load_bytes(tmp_path, rebuild(image_bytes, meta=meta))


def test_json_section_is_ascii(tmp_path):
    img = sample_image(meta={"name": "Größe → ∞", "emoji": "\U0001f9e0"})
    path = tmp_path / "u.nmi"
    save(img, path)
    data = path.read_bytes()
    h = header(data)
    data[HEADER.size + h["runs_bytes"]:].decode("ascii")
    assert load(path).meta == {"name": "Größe → ∞", "emoji": "\U0001f9e0"}


@pytest.mark.parametrize("section", [
    {"n_inputs": "2", "n_outputs": 3, "inputs": [[0, 0, 0]]},
    {"n_inputs": 2.7, "n_outputs": 3, "inputs": [[0, 0, 0]]},
    {"n_inputs": True, "n_outputs": 3, "inputs": [[0, 0, 0]]},
    {"n_inputs": 2, "n_outputs": 3, "inputs": [["0", 0.9, False]]},
    {"n_inputs": 2, "n_outputs": 3, "inputs": {}},
    {"n_inputs": 2, "n_outputs": 3, "inputs": [], "meta": [["a", 1]]},
], ids=["str_count", "float_count", "bool_count", "port_row_types", "inputs_object",
        "meta_list"])
def test_json_wrong_types_are_malformed(image_bytes, tmp_path, section):
    with pytest.raises(ImageError, match=r"port map / metadata section is malformed"):
        load_bytes(tmp_path, rebuild(image_bytes, meta=json.dumps(section).encode()))


def test_json_port_map_is_validated(image_bytes, tmp_path):
    meta = json.dumps({"n_inputs": 1, "n_outputs": 3, "inputs": [[4, 0, 0]], "meta": {}})
    with pytest.raises(ImageError, match=r"input port #0: channel 4 >= n_inputs 1"):
        load_bytes(tmp_path, rebuild(image_bytes, meta=meta.encode()))


def test_json_section_may_omit_meta(image_bytes, tmp_path):
    meta = json.dumps({"n_inputs": 2, "n_outputs": 3, "inputs": [[0, 0, 0]]})
    img = load_bytes(tmp_path, rebuild(image_bytes, meta=meta.encode()))
    assert img.meta == {}
    assert img.inputs == [InputPort(0, 0, 0)]


# --- ChipImage checks (constructed directly) -----------------------------------------

def _img(g, addr, words=None, **kw):
    addr = np.atleast_1d(np.asarray(addr, dtype=np.int64))
    words = np.zeros(addr.shape, np.uint64) if words is None else words
    return ChipImage(g, addr, words, **kw)


def test_write_outside_mesh():
    g = Geometry(rows=2, cols=3)
    ok = int(pack_address(core_id(2, 1), Region.NEURON, 0))
    _img(g, ok)
    bad = int(pack_address(core_id(3, 1), Region.NEURON, 0))
    with pytest.raises(ImageError, match=r"image write #1: address 0x[0-9a-f]{8} \(core x=3 y=1, "
                                         r"NEURON, word 0\) is outside the 2x3 mesh"):
        _img(g, [ok, bad])
    bad_y = int(pack_address(core_id(0, 2), Region.NEURON, 0))
    with pytest.raises(ImageError, match=r"core x=0 y=2"):
        _img(g, bad_y)


@pytest.mark.parametrize("region, size_name", [
    (Region.PROFILE, "n_profiles"), (Region.NEURON, "n_neurons"), (Region.STATE, "n_neurons"),
    (Region.AXON, "n_axons"), (Region.SYNAPSE, "n_synapses"), (Region.GROUP, "n_groups"),
    (Region.FANOUT, "n_fanout"), (Region.ACCUM, None)])
def test_write_beyond_region(region, size_name):
    g = Geometry(n_neurons=16, n_axons=32, n_synapses=64, n_fanout=8, n_profiles=4,
                 n_groups=2, delay_slots=4)
    size = getattr(g, size_name) if size_name else g.delay_slots * g.n_neurons
    assert g.region_size(region) == size
    _img(g, int(pack_address(0, region, size - 1)))
    with pytest.raises(ImageError, match=rf"image write #0: address 0x[0-9a-f]{{8}} \(core x=0 "
                                         rf"y=0, {region.name}, word {size}\) is outside the "
                                         rf"1x1 mesh / region of {size} words"):
        _img(g, int(pack_address(0, region, size)))


@pytest.mark.parametrize("region", [8, 11, 15])
def test_write_in_reserved_region(region):
    with pytest.raises(ImageError, match=rf"reserved region {region}, word 0\) is outside .* "
                                         r"region of 0 words"):
        _img(Geometry(), int(pack_address(0, region, 0)))


def test_address_word_count_mismatch():
    with pytest.raises(ImageError, match=r"\(2,\) addresses but \(3,\) words"):
        ChipImage(Geometry(), [0, 1], [0, 0, 0])


@pytest.mark.parametrize("kw, message", [
    (dict(n_inputs=-1), r"n_inputs = -1 is outside \[0, 65536\]"),
    (dict(n_outputs=65537), r"n_outputs = 65537 is outside \[0, 65536\]"),
    (dict(n_inputs=2, inputs=[(2, 0, 0)]), r"input port #0: channel 2 >= n_inputs 2"),
    (dict(n_inputs=2, inputs=[(0, 0, 0), (1, core_id(1, 0), 0)]),
     r"input port #1: core x=1 y=0 is outside the 1x1 mesh"),
    (dict(n_inputs=1, inputs=[(0, 0x100, 0)]), r"input port #0: core .* outside the 1x1 mesh"),
    (dict(n_inputs=1, inputs=[(0, 0, 256)]), r"input port #0: axon 256 >= n_axons 256"),
])
def test_port_map_errors(kw, message):
    with pytest.raises(ImageError, match=message):
        ChipImage(Geometry(), np.zeros(0), np.zeros(0), **kw)


def test_image_error_is_a_chip_error():
    assert issubclass(ImageError, ChipError) and issubclass(ChipError, ValueError)


# --- Content checks (config.decode) -------------------------------------------------

CG = Geometry(rows=1, cols=2, n_neurons=16, n_axons=16, n_synapses=32, n_fanout=16,
              n_profiles=4, n_groups=2, delay_slots=8)


def content_image(writes, n_outputs=4, geometry=CG) -> ChipImage:
    """``writes``: list of (core id, region, offset, field dict) or raw word."""
    addrs, words = [], []
    for core, region, offset, value in writes:
        addrs.append(int(pack_address(core, region, offset)))
        words.append(int(LAYOUTS[region].pack(**value)) if isinstance(value, dict) else value)
    return ChipImage(geometry, np.array(addrs, np.int64), np.array(words, np.uint64),
                     n_outputs=n_outputs)


def assert_content_error(tmp_path, writes, message, **kw):
    img = content_image(writes, **kw)
    with pytest.raises(ImageError, match=message):
        decode(img)
    # load() runs the same checks, and skips them on request.
    path = tmp_path / "content.nmi"
    save(img, path)
    with pytest.raises(ImageError, match=message):
        load(path)
    load(path, check_config=False)


def test_content_ok_baseline(tmp_path):
    # The limits themselves are accepted: nothing below is off by one.
    img = content_image([
        (0, Region.PROFILE, 3, dict(du=4096, dv=4096)),
        (1, Region.NEURON, 15, dict(profile=3, fanout_base=14, fanout_len=2)),
        (0, Region.AXON, 15, dict(syn_base=30, syn_len=2)),
        (0, Region.SYNAPSE, 31, dict(target=15, delay=6, group=1)),
        (1, Region.FANOUT, 14, dict(x=1, y=0, axon=15)),
        (1, Region.FANOUT, 15, dict(to_host=1, channel=3)),
    ])
    cfg = decode(img)
    assert cfg[Region.PROFILE]["du"][0, 3] == 4096
    assert cfg[Region.NEURON]["fanout_len"][1, 15] == 2
    assert cfg[Region.SYNAPSE]["delay"][0, 31] == 6
    assert cfg[Region.FANOUT]["channel"][1, 15] == 3
    assert cfg[Region.ACCUM]["value"].shape == (2, 8, 16)


def test_du_above_4096(tmp_path):
    assert_content_error(tmp_path, [(1, Region.PROFILE, 2, dict(du=4097))],
                         r"core 1 PROFILE word 2: du = 4097 > 4096")


def test_dv_above_4096(tmp_path):
    assert_content_error(tmp_path, [(0, Region.PROFILE, 0, dict(dv=8191)),
                                    (0, Region.PROFILE, 1, dict(dv=5000))],
                         r"core 0 PROFILE word 0: dv = 8191 > 4096 \(and 1 more words\)")


def test_profile_index_too_large(tmp_path):
    assert_content_error(tmp_path, [(0, Region.NEURON, 7, dict(profile=4))],
                         r"core 0 NEURON word 7: profile = 4 >= n_profiles 4")


def test_fanout_run_past_end(tmp_path):
    assert_content_error(tmp_path, [(0, Region.NEURON, 1, dict(fanout_base=10, fanout_len=7))],
                         r"core 0 NEURON word 1: fanout_len = 7 \(from fanout_base\) runs past "
                         r"n_fanout 16")


def test_synapse_run_past_end(tmp_path):
    assert_content_error(tmp_path, [(1, Region.AXON, 3, dict(syn_base=31, syn_len=2))],
                         r"core 1 AXON word 3: syn_len = 2 \(from syn_base\) runs past "
                         r"n_synapses 32")


def test_synapse_target_outside_core(tmp_path):
    assert_content_error(tmp_path, [(0, Region.SYNAPSE, 4, dict(target=16))],
                         r"core 0 SYNAPSE word 4: target = 16 >= n_neurons 16")


def test_synapse_delay_too_large(tmp_path):
    assert_content_error(tmp_path, [(1, Region.SYNAPSE, 0, dict(delay=7))],
                         r"core 1 SYNAPSE word 0: delay = 7 > max delay 6 \(delay_slots - 2\)")


def test_synapse_group_too_large(tmp_path):
    assert_content_error(tmp_path, [(0, Region.SYNAPSE, 0, dict(group=2))],
                         r"SYNAPSE word 0: group = 2 >= n_groups 2")


@pytest.mark.parametrize("value, message", [
    (dict(x=2), r"core 0 FANOUT word 5: x = 2 >= cols 2"),
    (dict(y=1), r"core 0 FANOUT word 5: y = 1 >= rows 1"),
    (dict(axon=16), r"core 0 FANOUT word 5: axon = 16 >= n_axons 16"),
    (dict(channel=1), r"core 0 FANOUT word 5: channel = 1 must be 0 in a core-bound entry"),
    (dict(to_host=1, x=1), r"core 0 FANOUT word 5: x = 1 must be 0 in a host-bound entry"),
    (dict(to_host=1, axon=3), r"axon = 3 must be 0 in a host-bound entry"),
])
def test_bad_fanout_entry(tmp_path, value, message):
    assert_content_error(tmp_path, [(core_id(0, 0), Region.FANOUT, 5, value)], message)


def test_fanout_to_core_outside_mesh_on_second_core(tmp_path):
    # Core (1,0) has core id 1 and index 1; x = 3 is outside a 2-column mesh.
    assert_content_error(tmp_path, [(core_id(1, 0), Region.FANOUT, 0, dict(x=3))],
                         r"core 1 FANOUT word 0: x = 3 >= cols 2")


def test_host_channel_not_below_n_outputs(tmp_path):
    assert_content_error(tmp_path, [(0, Region.FANOUT, 2, dict(to_host=1, channel=4))],
                         r"core 0 FANOUT word 2: channel = 4 >= n_outputs 4")


# Width of each word layout (one past its highest field bit), per the spec;
# the widened fields' extension bits (§5.3) included.
_LAYOUT_WIDTHS = {Region.PROFILE: 64, Region.NEURON: 52, Region.STATE: 56, Region.AXON: 40,
                  Region.SYNAPSE: 28, Region.GROUP: 4, Region.FANOUT: 41, Region.ACCUM: 24}
# The first release's words (what the RTL stores).
_BASE_WIDTHS = {**_LAYOUT_WIDTHS, Region.NEURON: 50, Region.AXON: 34, Region.FANOUT: 39}


def test_layout_widths():
    assert {r: LAYOUTS[r].width for r in LAYOUTS} == _LAYOUT_WIDTHS
    assert {r: LAYOUTS[r].base_width for r in LAYOUTS} == _BASE_WIDTHS


def test_widened_fields_keep_old_words_and_reach_the_loihi_scale_limits():
    """A value below the first release's limit packs to the same word as
    before (extension bits zero); the largest values set the extension bits."""
    axon, neuron, fan = LAYOUTS[Region.AXON], LAYOUTS[Region.NEURON], LAYOUTS[Region.FANOUT]
    assert int(axon.pack(syn_base=5, syn_len=3)) == 5 | 3 << 17
    assert int(axon.pack(syn_base=300_000, syn_len=7)) == 0x00000008000E93E0   # the spec's
    assert int(axon.pack(syn_base=1 << 19, syn_len=(1 << 19) - 1)) == \
        (1 << 36) | ((1 << 17) - 1) << 17 | 3 << 37
    assert int(fan.pack(axon=65534, x=1, y=2)) == 0x84000 | 0x3FFE | 3 << 39
    assert int(neuron.pack(fanout_base=65535)) == 0x7FFF << 20 | 1 << 50
    word = axon.pack(syn_base=[0, 300_000, 524_288], syn_len=[524_288, 7, 0])
    for compact in (False, True):
        out = axon.unpack(word, compact=compact)
        assert out["syn_base"].tolist() == [0, 300_000, 524_288]
        assert out["syn_len"].tolist() == [524_288, 7, 0]
    with pytest.raises(ChipError, match=r"syn_len = 1048576 is outside \[0, 1048575\] "
                                        r"\(unsigned 20-bit field\)"):
        axon.pack(syn_len=1 << 20)


@pytest.mark.parametrize("region, bit", [(r, w) for r, w in _LAYOUT_WIDTHS.items() if w < 64]
                         + [(r, 63) for r, w in _LAYOUT_WIDTHS.items() if w < 64])
def test_reserved_bits(tmp_path, region, bit):
    word = 1 << bit
    assert_content_error(tmp_path, [(1, region, 0, word)],
                         rf"core 1 {region.name} word 0: reserved bits = {word} must be zero")


def test_two_neurons_feed_one_output_channel(tmp_path):
    writes = [
        (1, Region.NEURON, 2, dict(fanout_base=0, fanout_len=2)),
        (1, Region.FANOUT, 0, dict(x=0, axon=1)),
        (1, Region.FANOUT, 1, dict(to_host=1, channel=3)),
        (0, Region.NEURON, 9, dict(fanout_base=4, fanout_len=1)),
        (0, Region.FANOUT, 4, dict(to_host=1, channel=3)),
    ]
    assert_content_error(tmp_path, writes,
                         r"output channel 3 is fed by 2 fan-out references \(core 0 neuron 9, "
                         r"core 1 neuron 2, \.\.\.\); a channel may have one source neuron")


def test_shared_host_entry_counts_twice(tmp_path):
    # Two neurons pointing at the same host-bound entry also feed one channel twice.
    writes = [
        (0, Region.NEURON, 0, dict(fanout_base=3, fanout_len=1)),
        (0, Region.NEURON, 1, dict(fanout_base=3, fanout_len=1)),
        (0, Region.FANOUT, 3, dict(to_host=1, channel=0)),
    ]
    assert_content_error(tmp_path, writes, r"output channel 0 is fed by 2 fan-out references")


def test_one_neuron_listing_a_channel_twice(tmp_path):
    writes = [
        (1, Region.NEURON, 4, dict(fanout_base=0, fanout_len=2)),
        (1, Region.FANOUT, 0, dict(to_host=1, channel=2)),
        (1, Region.FANOUT, 1, dict(to_host=1, channel=2)),
    ]
    assert_content_error(tmp_path, writes, r"output channel 2 is fed by 2 fan-out references "
                                           r"\(core 1 neuron 4, core 1 neuron 4")


def test_distinct_output_channels_are_fine():
    img = content_image([
        (0, Region.NEURON, 0, dict(fanout_base=0, fanout_len=1)),
        (0, Region.NEURON, 1, dict(fanout_base=1, fanout_len=1)),
        (0, Region.FANOUT, 0, dict(to_host=1, channel=0)),
        (0, Region.FANOUT, 1, dict(to_host=1, channel=1)),
        # An unreferenced host entry on a used channel does not count.
        (0, Region.FANOUT, 2, dict(to_host=1, channel=1)),
    ])
    decode(img)


def test_content_check_sees_last_write():
    # A bad word overwritten by a good one is fine, and the other way round not.
    bad = (0, Region.PROFILE, 0, dict(du=5000))
    good = (0, Region.PROFILE, 0, dict(du=10))
    assert decode(content_image([bad, good]))[Region.PROFILE]["du"][0, 0] == 10
    with pytest.raises(ImageError, match="du = 5000"):
        decode(content_image([good, bad]))


# --- Geometry ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("", Geometry()),
    ("1x1", Geometry()),
    ("2x3", Geometry(rows=2, cols=3)),
    ("2x2,n_neurons=128", Geometry(rows=2, cols=2, n_neurons=128)),
    (" 4x1 , delay_slots = 16 ,n_groups=0x10", Geometry(rows=4, cols=1, delay_slots=16,
                                                         n_groups=16)),
    ("n_axons=100,rows=3", Geometry(rows=3, n_axons=100)),
])
def test_geometry_parse(text, expected):
    assert Geometry.parse(text) == expected


@pytest.mark.parametrize("g", [
    Geometry(), Geometry(rows=16, cols=16), Geometry(rows=2, cols=5, n_neurons=1024),
    Geometry(**{k: v[0] for k, v in GEOMETRY_LIMITS.items()}),
    Geometry(**{k: v[1] for k, v in GEOMETRY_LIMITS.items()}),
    Geometry(rows=3, n_axons=7, n_synapses=9, n_fanout=11, n_profiles=13, n_groups=1,
             delay_slots=2),
])
def test_geometry_str_round_trip(g):
    text = str(g)
    assert Geometry.parse(text) == g
    assert text.startswith(f"{g.rows}x{g.cols}")


def test_geometry_str_lists_only_non_defaults():
    assert str(Geometry()) == "1x1"
    assert str(Geometry(rows=2, cols=2, n_neurons=128)) == "2x2,n_neurons=128"


@pytest.mark.parametrize("text, message", [
    ("2x", r"cannot read '2x'"),
    ("axb", r"cannot read 'axb'"),
    ("2X2", r"cannot read '2X2'"),
    ("2x2,foo=1", r"cannot read 'foo=1'; expected RxC or name=value with name one of "
                  r"cols, delay_slots"),
    ("2x2,n_neurons", r"cannot read 'n_neurons'"),
    ("2x2,n_neurons=abc", r"n_neurons = 'abc' is not an integer"),
    ("2x2,n_neurons=1.5", r"n_neurons = '1.5' is not an integer"),
    ("0x1", r"rows = 0 is outside \[1, 16\]"),
    ("1x17", r"cols = 17 is outside \[1, 16\]"),
    ("1x1,n_neurons=2048", r"n_neurons = 2048 is outside \[1, 1024\]"),
    ("1x1,delay_slots=12", r"delay_slots = 12 is not a power of two"),
])
def test_geometry_parse_errors(text, message):
    with pytest.raises(ChipError, match=message):
        Geometry.parse(text)


@pytest.mark.parametrize("slots", [3, 6, 24, 48, 63])
def test_delay_slots_must_be_power_of_two(slots):
    with pytest.raises(ChipError, match=rf"delay_slots = {slots} is not a power of two"):
        Geometry(delay_slots=slots)


@pytest.mark.parametrize("slots", [2, 4, 8, 16, 32, 64])
def test_delay_slots_powers_of_two_accepted(slots):
    g = Geometry(delay_slots=slots)
    assert g.max_delay == slots - 2
    assert g.region_size(Region.ACCUM) == slots * g.n_neurons


@pytest.mark.parametrize("name", list(GEOMETRY_LIMITS))
def test_geometry_limits(name):
    lo, hi = GEOMETRY_LIMITS[name]
    ok_hi = hi if name != "delay_slots" else 64
    Geometry(**{name: ok_hi})
    with pytest.raises(ChipError, match=rf"geometry: {name} = {lo - 1} is outside "
                                        rf"\[{lo}, {hi}\]"):
        Geometry(**{name: lo - 1})
    with pytest.raises(ChipError, match=rf"geometry: {name} = {hi + 1} is outside"):
        Geometry(**{name: hi + 1})


@pytest.mark.parametrize("value", [True, 2.0, "2", None])
def test_geometry_rejects_non_integers(value):
    with pytest.raises(ChipError, match=r"geometry: rows must be an integer, got "
                                        + re.escape(repr(value))):
        Geometry(rows=value)


def test_geometry_accepts_numpy_integers():
    g = Geometry(rows=np.int64(2), n_neurons=np.int32(64))
    assert g == Geometry(rows=2, n_neurons=64)
    assert g.n_cores == 2


def test_geometry_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Geometry().rows = 3


@pytest.mark.parametrize("block", [2, 3, 1 << 20])
def test_content_checks_a_block_of_writes_at_a_time(monkeypatch, tmp_path, block):
    """check() unpacks a region's words a block of writes at a time: the
    first bad word and the count of the others are the same for any block."""
    import neuromesh.config as config
    monkeypatch.setattr(config, "_BLOCK", block)
    reserved = [(1, Region.SYNAPSE, k, (1 << 40) if k in (1, 3, 4) else 0) for k in range(6)]
    assert_content_error(tmp_path, reserved, r"core 1 SYNAPSE word 1: reserved bits = "
                         rf"{1 << 40} must be zero \(and 2 more words\)$")
    targets = [(0, Region.SYNAPSE, k, dict(target=16 + k if k % 2 else 3, w_mant=-5))
               for k in range(7)]
    assert_content_error(tmp_path, targets, r"core 0 SYNAPSE word 1: target = 17 >= n_neurons "
                         r"16 \(and 2 more words\)$")


def test_checked_words_of_the_big_regions_are_compact():
    """The checked words of AXON and FANOUT come in compact dtypes
    (the decode's), with their int64 keys exact on the far cores of a 16 x 16
    mesh, where core * size leaves int16."""
    from neuromesh.config import check
    g = Geometry(rows=16, cols=16, n_neurons=16, n_axons=16, n_synapses=32, n_fanout=16)
    writes = [(255, Region.SYNAPSE, 31, dict(target=15, w_mant=-128, delay=1)),
              (254, Region.AXON, 15, dict(syn_base=16, syn_len=16)),
              (255, Region.FANOUT, 15, dict(axon=15, x=15, y=15)),
              (255, Region.NEURON, 15, dict(fanout_base=15, fanout_len=1))]
    words = check(content_image(writes, geometry=g))
    # A learning-free image's synapses are checked a block at a time, not kept.
    assert Region.SYNAPSE not in words
    a = words[Region.AXON]
    assert (a.core.dtype, a.offset.dtype, a["syn_base"].dtype) == (np.int16, np.int32, np.int32)
    assert a.key(g.n_axons).tolist() == [254 * 16 + 15]
    f = words[Region.FANOUT]
    assert (f["x"].dtype, f["y"].dtype, int(f["y"][0])) == (np.int8, np.int8, 15)
    n = words[Region.NEURON]
    assert n.core.dtype == np.int64 and n["fanout_len"].dtype == np.int64
