"""Host-link byte protocol: CRC, frame codec, stream decoder, command builders."""

import binascii
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuromesh.chip import GEOMETRY_LIMITS
from neuromesh.protocol import (
    INFO_LAYOUT,
    MAX_CHANNELS_PER_FRAME,
    MAX_PAYLOAD,
    MAX_SPIKES,
    MAX_WORDS,
    SOF_CHIP,
    SOF_HOST,
    Command,
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
    crc16,
    encode,
)


def decode_one(data: bytes, sof: int = SOF_HOST) -> Frame:
    """Decode ``data`` that must hold exactly one complete frame."""
    dec = FrameDecoder(sof=sof)
    frames = dec.feed(data)
    assert len(frames) == 1
    assert dec.pending == 0
    assert dec.discarded == 0
    return frames[0]


# --- CRC ------------------------------------------------------------------------

def test_crc16_check_value():
    assert crc16(b"123456789") == 0x29B1


def test_crc16_empty_is_init():
    assert crc16(b"") == 0xFFFF


def test_crc16_is_incremental():
    assert crc16(b"6789", crc16(b"12345")) == 0x29B1


@settings(max_examples=50, deadline=None, database=None)
@given(st.binary(max_size=64))
def test_crc16_matches_reference(data):
    # binascii.crc_hqx is CRC-16/CCITT (poly 0x1021, unreflected); with init
    # 0xFFFF it is CCITT-FALSE.
    assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)


# --- Constants ----------------------------------------------------------------

def test_payload_limits_are_consistent():
    assert MAX_PAYLOAD == 6 + 8 * MAX_WORDS == 1030
    assert MAX_SPIKES == 342 and 2 + 3 * MAX_SPIKES <= MAX_PAYLOAD < 2 + 3 * (MAX_SPIKES + 1)
    assert MAX_CHANNELS_PER_FRAME == 512
    assert 6 + 2 * MAX_CHANNELS_PER_FRAME <= MAX_PAYLOAD


def test_info_layout_holds_the_largest_geometry():
    hi = {name: lim[1] for name, lim in GEOMETRY_LIMITS.items()}
    values = (1, hi["rows"], hi["cols"], hi["n_neurons"], hi["n_axons"], hi["n_synapses"],
              hi["n_fanout"], hi["n_profiles"], hi["n_groups"], hi["delay_slots"], 2**32 - 1)
    assert INFO_LAYOUT.unpack(INFO_LAYOUT.pack(*values)) == values


# --- Frame layout ---------------------------------------------------------------

def test_encode_layout():
    frame = encode(0x06, b"\x01\x02\x03")
    body = b"\x06\x03\x00\x01\x02\x03"
    assert frame == bytes([SOF_HOST]) + body + struct.pack("<H", crc16(body))


@pytest.mark.parametrize("frame, expected", [
    (cmd_identify(), "A5 01 00 00 AC FB"),
    (cmd_run(5), "A5 05 04 00 05 00 00 00 8D 32"),
    (encode(Response.DONE, struct.pack("<I", 5), sof=SOF_CHIP), "5A 86 04 00 05 00 00 00 F6 41"),
], ids=["identify", "run5", "done5"])
def test_spec_frame_examples(frame, expected):
    assert frame == bytes.fromhex(expected)


def test_encode_chip_sof():
    frame = encode(Response.DONE, struct.pack("<I", 7), sof=SOF_CHIP)
    assert frame[0] == SOF_CHIP
    assert decode_one(frame, SOF_CHIP) == Frame(SOF_CHIP, Response.DONE, struct.pack("<I", 7))


def test_encode_max_payload_ok_and_oversize_rejected():
    payload = bytes(range(256)) * 4 + b"\x00" * 6
    assert len(payload) == MAX_PAYLOAD
    assert decode_one(encode(0x82, payload, sof=SOF_CHIP), SOF_CHIP).payload == payload
    with pytest.raises(ProtocolError, match=r"1031 bytes exceeds MAX_PAYLOAD 1030"):
        encode(0x82, payload + b"\x00")


# --- Command round trips --------------------------------------------------------

def test_cmd_identify_round_trip():
    assert decode_one(cmd_identify()) == Frame(SOF_HOST, Command.IDENTIFY, b"")


def test_cmd_status_round_trip():
    assert decode_one(cmd_status()) == Frame(SOF_HOST, Command.STATUS, b"")


@pytest.mark.parametrize("words", [[0], [2**64 - 1, 1, 0x0123456789ABCDEF],
                                   list(range(1000, 1000 + MAX_WORDS))])
def test_cmd_write_round_trip(words):
    f = decode_one(cmd_write(0xDEADBEEF, words))
    assert (f.sof, f.type) == (SOF_HOST, Command.WRITE)
    assert len(f.payload) == 6 + 8 * len(words) <= MAX_PAYLOAD
    addr, count = struct.unpack_from("<IH", f.payload)
    assert (addr, count) == (0xDEADBEEF, len(words))
    assert list(struct.unpack_from(f"<{count}Q", f.payload, 6)) == words


def test_cmd_write_accepts_numpy_words():
    np = pytest.importorskip("numpy")
    f = decode_one(cmd_write(4, np.array([1, 2**63], dtype=np.uint64)))
    assert struct.unpack_from("<2Q", f.payload, 6) == (1, 2**63)


@pytest.mark.parametrize("count", [1, 77, MAX_WORDS])
def test_cmd_read_round_trip(count):
    f = decode_one(cmd_read(0x01234567, count))
    assert f.type == Command.READ
    assert struct.unpack("<IH", f.payload) == (0x01234567, count)


@pytest.mark.parametrize("spikes", [[], [(0x00, 0)], [(0x31, 4095), (0xFF, 65535), (0x10, 7)],
                                    [(i % 256, i) for i in range(MAX_SPIKES)]])
def test_cmd_spikes_round_trip(spikes):
    f = decode_one(cmd_spikes(spikes))
    assert f.type == Command.SPIKES
    (count,) = struct.unpack_from("<H", f.payload)
    assert count == len(spikes)
    assert len(f.payload) == 2 + 3 * count
    got = [struct.unpack_from("<BH", f.payload, 2 + 3 * i) for i in range(count)]
    assert got == [tuple(s) for s in spikes]


def test_cmd_spikes_accepts_a_generator():
    f = decode_one(cmd_spikes((c, c * 3) for c in range(3)))
    assert f.payload == struct.pack("<H", 3) + b"".join(
        struct.pack("<BH", c, c * 3) for c in range(3))


@pytest.mark.parametrize("steps", [1, 1000, 2**32 - 1])
def test_cmd_run_round_trip(steps):
    f = decode_one(cmd_run(steps))
    assert f.type == Command.RUN
    assert struct.unpack("<I", f.payload) == (steps,)


@pytest.mark.parametrize("mode", list(ResetMode))
def test_cmd_reset_round_trip(mode):
    f = decode_one(cmd_reset(mode))
    assert f.type == Command.RESET
    assert f.payload == bytes([int(mode)])


def test_cmd_reset_default_is_state():
    assert decode_one(cmd_reset()).payload == bytes([ResetMode.STATE])


# --- Command argument checks ----------------------------------------------------

def test_cmd_write_rejects_zero_words():
    with pytest.raises(ProtocolError, match=r"WRITE of 0 words; 1\.\.128"):
        cmd_write(0, [])


def test_cmd_write_rejects_129_words():
    with pytest.raises(ProtocolError, match=r"WRITE of 129 words; 1\.\.128"):
        cmd_write(0, range(129))


@pytest.mark.parametrize("count", [0, -1, 129])
def test_cmd_read_rejects_bad_count(count):
    with pytest.raises(ProtocolError, match=rf"READ of {count} words"):
        cmd_read(0, count)


@pytest.mark.parametrize("steps", [0, -5, 2**32])
def test_cmd_run_rejects_bad_steps(steps):
    with pytest.raises(ProtocolError, match=rf"RUN of {steps} steps"):
        cmd_run(steps)


def test_cmd_spikes_rejects_too_many():
    with pytest.raises(ProtocolError, match=r"343 spikes in one frame; at most 342"):
        cmd_spikes([(0, 0)] * (MAX_SPIKES + 1))


# --- Stream decoder -------------------------------------------------------------

def _chip_frames():
    return [
        encode(Response.ACK, bytes([Command.WRITE]), sof=SOF_CHIP),
        encode(Response.OUTPUT, struct.pack("<IH3H", 9, 3, 1, 2, 500), sof=SOF_CHIP),
        encode(Response.DONE, struct.pack("<I", 10), sof=SOF_CHIP),
        encode(Response.STATUS, b"", sof=SOF_CHIP),
    ]


def _expected(frames):
    return [Frame(SOF_CHIP, f[1], f[4:-2]) for f in frames]


def test_decoder_defaults_to_chip_sof_and_splits_a_stream():
    frames = _chip_frames()
    dec = FrameDecoder()
    assert dec.feed(b"".join(frames)) == _expected(frames)
    assert dec.pending == 0 and dec.discarded == 0


def test_decoder_skips_and_counts_garbage():
    frames = _chip_frames()
    garbage1 = b"\x00\xa5\x13\xff"          # no 0x5A in it
    garbage2 = b"\x01\x02"
    stream = garbage1 + frames[0] + frames[1] + garbage2 + frames[2]
    dec = FrameDecoder()
    assert dec.feed(stream) == _expected(frames[:3])
    assert dec.discarded == len(garbage1) + len(garbage2)
    assert dec.pending == 0


def test_decoder_counts_garbage_without_any_sof():
    dec = FrameDecoder()
    assert dec.feed(b"\x00\x01\x02") == []
    assert dec.feed(b"\x03\x04") == []
    assert dec.discarded == 5
    assert dec.pending == 0


def test_decoder_host_side_ignores_host_sof():
    # A chip-side decoder looks for 0xA5, a host-side one for 0x5A.
    frame = cmd_identify()
    dec = FrameDecoder(sof=SOF_CHIP)
    assert dec.feed(frame) == []
    assert dec.discarded == len(frame)


def test_decoder_bad_crc_raises_and_then_resynchronises():
    good = _chip_frames()
    bad = bytearray(good[1])
    bad[-1] ^= 0x40
    dec = FrameDecoder()
    with pytest.raises(ProtocolError, match=r"frame type 0x85: CRC 0x[0-9a-f]{4} does not match"):
        dec.feed(bytes(bad))
    assert dec.pending == 0
    assert dec.feed(good[2]) == _expected([good[2]])


def test_decoder_bad_payload_byte_raises():
    frame = bytearray(_chip_frames()[1])
    frame[7] ^= 0x01
    with pytest.raises(ProtocolError, match="does not match"):
        FrameDecoder().feed(bytes(frame))


@pytest.mark.parametrize("kind", ["bad_crc", "oversize_len"])
def test_decoder_does_not_lose_good_frames_before_a_bad_one(kind):
    good = _chip_frames()
    if kind == "bad_crc":
        bad = bytearray(good[2])
        bad[-2] ^= 0xFF
    else:
        bad = bytes([SOF_CHIP, 0x85]) + struct.pack("<H", 0xFFFF)
    dec = FrameDecoder()
    got = []
    # The two complete good frames must reach the caller; the error about the
    # bad one may wait for the next feed.
    with pytest.raises(ProtocolError):
        got += dec.feed(good[0] + good[1] + bytes(bad))
        got += dec.feed(b"")
    assert got == _expected(good[:2])


def test_decoder_oversize_len_raises_and_then_resynchronises():
    good = _chip_frames()[2]
    bogus = bytes([SOF_CHIP, 0x85]) + struct.pack("<H", MAX_PAYLOAD + 1)
    dec = FrameDecoder()
    with pytest.raises(ProtocolError, match=r"announces 1031 payload bytes \(MAX_PAYLOAD 1030\)"):
        dec.feed(bogus)
    # The bogus SOF was dropped; the rest is skipped as garbage.
    assert dec.feed(good) == _expected([good])
    assert dec.discarded == 3


def test_decoder_max_len_is_not_oversize():
    payload = b"\x11" * MAX_PAYLOAD
    dec = FrameDecoder()
    frame = encode(Response.DATA, payload, sof=SOF_CHIP)
    assert dec.feed(frame[:-1]) == []
    assert dec.pending == len(frame) - 1
    assert dec.feed(frame[-1:]) == [Frame(SOF_CHIP, Response.DATA, payload)]


def test_decoder_byte_by_byte():
    frames = _chip_frames()
    stream = b"\x00\x00" + b"".join(frames)
    dec = FrameDecoder()
    got = []
    for i in range(len(stream)):
        got += dec.feed(stream[i:i + 1])
    assert got == _expected(frames)
    assert dec.discarded == 2
    assert dec.pending == 0


@settings(max_examples=30, deadline=None, database=None)
@given(st.lists(st.integers(0, 200), max_size=8))
def test_decoder_any_split(cuts):
    frames = _chip_frames()
    stream = b"".join(frames)
    points = sorted({0, len(stream), *[min(c, len(stream)) for c in cuts]})
    dec = FrameDecoder()
    got = []
    for a, b in zip(points, points[1:], strict=False):
        got += dec.feed(stream[a:b])
    assert got == _expected(frames)
    assert dec.pending == 0


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 8])
def test_decoder_truncated_frame_stays_pending(cut):
    frame = _chip_frames()[1]
    dec = FrameDecoder()
    assert dec.feed(frame[:-cut]) == []
    assert dec.pending == len(frame) - cut
    assert dec.discarded == 0
    assert dec.feed(frame[-cut:]) == _expected([frame])
    assert dec.pending == 0


def test_decoder_short_header_stays_pending():
    dec = FrameDecoder()
    assert dec.feed(bytes([SOF_CHIP, 0x86, 0x04])) == []
    assert dec.pending == 3
