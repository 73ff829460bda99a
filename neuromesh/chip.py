"""The one definition of the chip that every part of neuromesh shares.

Geometry, arithmetic constants, the packed word layouts of every memory
region and the address map live here, so the emulator, the RTL, the compiler
and the host driver cannot drift apart. ``docs/architecture.md`` is the prose
form of this module; the two must agree.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ChipError", "Geometry", "Field", "WordLayout", "Region", "LAYOUTS",
    "U_BITS", "V_MAX", "VTH_SHIFT", "DECAY_ONE", "DECAY_BITS", "FLOOR_SHIFT", "FLOOR_MANT_MAX",
    "ResetTiming",
    "pack_address", "unpack_address", "core_id", "core_xy",
    "LearnRegion", "LEARN_LAYOUTS", "LEARN_WORD_LAYOUTS", "LearnWord", "learn_region_size",
    "region_words", "COUNTERS_REGION", "Counter", "COUNTER_BITS", "PASS_LATENCY",
]


class ChipError(ValueError):
    """A chip image, geometry or memory word breaks a limit of the spec."""


# --- Arithmetic contract (docs/architecture.md §3) -------------------------

U_BITS = 24                    #: width of u, v and the dendritic accumulators
V_MAX = (1 << (U_BITS - 1)) - 1  #: v clamps to [-V_MAX, V_MAX]
DECAY_BITS = 12                #: decays are fractions of DECAY_ONE
DECAY_ONE = 1 << DECAY_BITS    #: du = dv = DECAY_ONE means "forget at once"
VTH_SHIFT = 6                  #: threshold = vth_mant << VTH_SHIFT
FLOOR_SHIFT = 14               #: lower clamp of v = -(floor_mant << FLOOR_SHIFT), if floor_mant
FLOOR_MANT_MAX = 511           #: floor_mant is u9: the floor reaches -(511 << 14) > -V_MAX


class ResetTiming(enum.IntEnum):
    """When a spike's reset acts (the PROFILE field ``reset_timing``, §3.2)."""

    IMMEDIATE = 0       #: in the spike's own step
    DELAYED = 1         #: in the next update, on the new sum (snnTorch reset_delay=True)
    DELAYED_STORED = 2  #: in the next update, on the stored v before its decay (Leaky, zero)
    RETEST = 3          #: immediate, but a stored v past the threshold counts it twice
                        #: in the next test (snnTorch 1.0 with reset_delay=False)


# --- Geometry ----------------------------------------------------------------

#: (minimum, maximum) of every geometry parameter. The maxima follow from the
#: field widths of the word layouts below (e.g. a synapse names its target
#: with 10 bits, so a core holds at most 1024 neurons) and of the image
#: header (``n_axons`` and ``n_fanout`` are u16 there). The Loihi-scale
#: family -- up to 256 cores of 1024 neurons and 2**19 synapses: 262,144
#: neurons and 134 M synapses -- lets a core of a 100,000-neuron random
#: recurrent net take input from tens of thousands of sources.
GEOMETRY_LIMITS = {
    "rows":        (1, 16),
    "cols":        (1, 16),
    "n_neurons":   (1, 1024),
    "n_axons":     (1, 65535),
    "n_synapses":  (1, 1 << 19),
    "n_fanout":    (1, 65535),
    "n_profiles":  (1, 16),
    "n_groups":    (1, 16),
    "delay_slots": (2, 64),
}


@dataclass(frozen=True)
class Geometry:
    """Elaboration parameters of a chip: the mesh and the size of each core.

    Every core of a chip has the same geometry. All parts of neuromesh (RTL,
    emulator, compiler, host driver) are built from one of these.

    Parameters
    ----------
    rows, cols:
        Mesh size. Core ``(x, y)`` has ``0 <= x < cols``, ``0 <= y < rows``.
    n_neurons:
        Neurons (compartments) per core, time-multiplexed on one datapath.
    n_axons:
        Input axons per core; a spike packet names one of them.
    n_synapses:
        Synapse memory entries per core.
    n_fanout:
        Fan-out (output routing) entries per core.
    n_profiles:
        Shared neuron parameter sets per core.
    n_groups:
        Synapse groups per core (weight shift, later learning settings).
    delay_slots:
        D, the length of each neuron's dendritic accumulator ring; a power of
        two. Synaptic delays range over ``0 .. D-2``.
    """

    rows: int = 1
    cols: int = 1
    n_neurons: int = 256
    n_axons: int = 256
    n_synapses: int = 4096
    n_fanout: int = 512
    n_profiles: int = 8
    n_groups: int = 4
    delay_slots: int = 8

    def __post_init__(self):
        for name, (lo, hi) in GEOMETRY_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ChipError(f"geometry: {name} must be an integer, got {value!r}")
            if not lo <= value <= hi:
                raise ChipError(f"geometry: {name} = {value} is outside [{lo}, {hi}]")
        if self.delay_slots & (self.delay_slots - 1):
            raise ChipError(
                f"geometry: delay_slots = {self.delay_slots} is not a power of two")

    @property
    def n_cores(self) -> int:
        """Number of cores in the mesh."""
        return self.rows * self.cols

    @property
    def max_delay(self) -> int:
        """Largest synaptic delay, ``delay_slots - 2``."""
        return self.delay_slots - 2

    def region_size(self, region: Region) -> int:
        """Number of words of ``region`` in one core."""
        return {
            Region.PROFILE: self.n_profiles,
            Region.NEURON: self.n_neurons,
            Region.STATE: self.n_neurons,
            Region.AXON: self.n_axons,
            Region.SYNAPSE: self.n_synapses,
            Region.GROUP: self.n_groups,
            Region.FANOUT: self.n_fanout,
            Region.ACCUM: self.delay_slots * self.n_neurons,
        }.get(region, 0)

    def as_dict(self) -> dict:
        """The geometry as a plain dict (for JSON and reports)."""
        return dataclasses.asdict(self)

    def __str__(self):
        default = Geometry()
        extra = [f"{f.name}={getattr(self, f.name)}"
                 for f in dataclasses.fields(self)
                 if f.name not in ("rows", "cols")
                 and getattr(self, f.name) != getattr(default, f.name)]
        return ",".join([f"{self.rows}x{self.cols}", *extra])

    @classmethod
    def fit(cls, network, board=None, max_cores: int | None = None) -> Geometry:
        """The smallest geometry that holds ``network`` (a compiler
        ``Network``): the fewest cores, then the smallest per-core sizes,
        within the chip's limits or ``board``'s (a name from the boards
        catalog) and at most ``max_cores`` cores.
        :func:`neuromesh.compiler.fit.fit_geometry` gives the reason for each
        choice; it raises ``FitError`` with the numbers if nothing fits."""
        from neuromesh.compiler.fit import fit_geometry  # the compiler imports chip
        return fit_geometry(network, board=board, max_cores=max_cores).geometry

    @classmethod
    def parse(cls, text: str) -> Geometry:
        """Parse ``"RxC[,name=value...]"``, e.g. ``"2x2,n_neurons=128"``.

        Parameters not named keep their defaults (``""`` is the default
        geometry); naming one twice is an error. ``str(geometry)`` gives the
        same notation back.
        """
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        kwargs = {}
        if parts and (m := re.fullmatch(r"(\d+)x(\d+)", parts[0])):
            kwargs["rows"], kwargs["cols"] = int(m[1]), int(m[2])
            parts = parts[1:]
        names = {f.name for f in dataclasses.fields(cls)}
        for part in parts:
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in names:
                raise ChipError(
                    f"geometry {text!r}: cannot read {part!r}; expected RxC or "
                    f"name=value with name one of {', '.join(sorted(names))}")
            if name in kwargs:
                raise ChipError(f"geometry {text!r}: {name} is given twice"
                                + (" (RxC sets rows and cols)" if name in ("rows", "cols")
                                   else ""))
            try:
                kwargs[name] = int(value, 0)
            except ValueError:
                raise ChipError(f"geometry {text!r}: {name} = {value!r} is not an integer") \
                    from None
        return cls(**kwargs)


# --- Packed words ------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One bit field of a memory word: ``width`` bits from bit ``lsb`` up.

    A field widened after the first release keeps its low ``width`` bits
    where they were and takes its high bits from ``ext_width`` formerly
    reserved bits at ``ext_lsb`` (unsigned fields only): an old image, with
    those bits zero, means what it meant, and a first-release tool rejects a
    word that uses them (its reserved-bit check). ``bits`` is the value's
    width, ``width + ext_width``.
    """

    name: str
    lsb: int
    width: int
    signed: bool = False
    ext_lsb: int = 0
    ext_width: int = 0

    def __post_init__(self):
        assert not (self.signed and self.ext_width), self

    @property
    def bits(self) -> int:
        """Width of the value (low part plus extension)."""
        return self.width + self.ext_width

    @property
    def mask(self) -> int:
        """The word bits this field occupies."""
        return (((1 << self.width) - 1) << self.lsb) | \
            (((1 << self.ext_width) - 1) << self.ext_lsb)

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


class WordLayout:
    """A packed 64-bit memory word made of named fields.

    ``pack`` and ``unpack`` work on numpy arrays, so a whole memory region is
    encoded or decoded with a handful of array operations. Bits not covered by
    a field are reserved and must be zero.
    """

    def __init__(self, name: str, *fields: Field):
        self.name = name
        self.fields = {f.name: f for f in fields}
        used = 0
        for f in fields:
            assert not used & f.mask and f.mask < 1 << 64, (name, f)
            used |= f.mask
        self.used_mask = used

    def __getitem__(self, name) -> Field:
        return self.fields[name]

    @property
    def width(self) -> int:
        """Bits up to and including the highest field (extensions included)."""
        return self.used_mask.bit_length()

    @property
    def base_width(self) -> int:
        """Bits up to and including the highest field, without the extension
        bits of widened fields: the first release's word."""
        return max(f.lsb + f.width for f in self.fields.values())

    def pack(self, **values) -> np.ndarray:
        """Pack field arrays (broadcast together) into uint64 words.

        Raises ChipError naming the field, the first bad value and the range.
        Fields not given are zero.
        """
        unknown = set(values) - set(self.fields)
        if unknown:
            raise ChipError(f"{self.name}: no field named {', '.join(sorted(unknown))}")
        # integer arrays stay in their (often compact) dtype: the range check
        # reads them once, the cast to uint64 is the one copy
        arrays = {}
        for k, v in values.items():
            a = np.asarray(v)
            arrays[k] = a if a.dtype.kind in "iu" else a.astype(np.int64)
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values())) if arrays else ()
        word = np.zeros(shape, dtype=np.uint64)
        for name, a in arrays.items():
            f = self.fields[name]
            if a.size and (a.min() < f.min or a.max() > f.max):
                bad = (a < f.min) | (a > f.max)
                raise ChipError(
                    f"{self.name}.{name} = {int(a[bad].flat[0])} is outside "
                    f"[{f.min}, {f.max}] ({'signed' if f.signed else 'unsigned'} "
                    f"{f.bits}-bit field)")
            raw = a.astype(np.uint64)             # negative values: two's complement
            raw &= np.uint64((1 << f.width) - 1)
            raw <<= np.uint64(f.lsb)
            word |= raw
            del raw
            if f.ext_width:
                word |= (a.astype(np.int64) >> f.width).astype(np.uint64) \
                    << np.uint64(f.ext_lsb)
        return word

    def unpack(self, words, compact: bool = False) -> dict[str, np.ndarray]:
        """Split uint64 words into int64 field arrays (signed fields sign-extended).

        ``compact``: each field in the smallest signed integer dtype that
        holds it (int8 ... int64) instead of int64 -- for the big regions of a
        Loihi-scale chip; arithmetic on such arrays must widen first.
        """
        words = np.asarray(words, dtype=np.uint64)
        out = {}
        for name, f in self.fields.items():
            dtype = _compact_dtype(f) if compact else np.int64
            raw = ((words >> np.uint64(f.lsb)) & np.uint64((1 << f.width) - 1)).astype(dtype)
            if f.ext_width:
                ext = ((words >> np.uint64(f.ext_lsb)) & np.uint64((1 << f.ext_width) - 1))
                raw |= (ext << np.uint64(f.width)).astype(dtype)
            if f.signed and np.iinfo(dtype).bits > f.width:
                # (a field exactly as wide as its dtype was sign-converted by the cast)
                raw = np.where(raw >= (1 << (f.width - 1)), raw - (1 << f.width), raw) \
                    .astype(dtype)
            out[name] = raw
        return out

    def reserved_bits(self, words) -> np.ndarray:
        """Boolean array: which words have a reserved bit set."""
        return (np.asarray(words, dtype=np.uint64) & np.uint64(~self.used_mask & (2**64 - 1))) != 0


def _compact_dtype(field: Field):
    """The smallest signed integer dtype holding every value of ``field``
    (unpacking works with one bit to spare, so u8 goes to int16)."""
    for dtype in (np.int8, np.int16, np.int32):
        if field.bits + (0 if field.signed else 1) <= np.iinfo(dtype).bits:
            return dtype
    return np.int64


class Region(enum.IntEnum):
    """Memory regions of a core (the ``region`` field of an address)."""

    PROFILE = 0   #: shared neuron parameters
    NEURON = 1    #: per-neuron configuration
    STATE = 2     #: per-neuron dynamic state u, v, refractory counter
    AXON = 3      #: input axon -> run of synapse memory
    SYNAPSE = 4   #: synapse entries
    GROUP = 5     #: synapse group settings
    FANOUT = 6    #: output routing entries
    ACCUM = 7     #: dendritic accumulator ring, word = slot * n_neurons + neuron
    # 8..14 are reserved for the learning engine (traces, rule microcode,
    # reward, LFSR); 15 is reserved for per-core control registers.


LAYOUTS: dict[Region, WordLayout] = {
    Region.PROFILE: WordLayout(
        "profile",
        Field("du", 0, 13), Field("dv", 13, 13), Field("vth_mant", 26, 17),
        Field("refractory", 43, 8), Field("reset_subtract", 51, 1),
        Field("reset_timing", 52, 2), Field("threshold_ge", 54, 1),
        Field("floor_mant", 55, 9)),
    Region.NEURON: WordLayout(
        "neuron",
        Field("profile", 0, 4), Field("bias_mant", 4, 13, signed=True),
        Field("bias_exp", 17, 3), Field("fanout_base", 20, 15, ext_lsb=50, ext_width=1),
        Field("fanout_len", 35, 15, ext_lsb=51, ext_width=1)),
    Region.STATE: WordLayout(
        "state",
        Field("u", 0, 24, signed=True), Field("v", 24, 24, signed=True),
        Field("refractory", 48, 8)),
    Region.AXON: WordLayout(
        "axon", Field("syn_base", 0, 17, ext_lsb=34, ext_width=3),
        Field("syn_len", 17, 17, ext_lsb=37, ext_width=3)),
    Region.SYNAPSE: WordLayout(
        "synapse",
        Field("target", 0, 10), Field("w_mant", 10, 8, signed=True),
        Field("delay", 18, 6), Field("group", 24, 4)),
    Region.GROUP: WordLayout(
        "group", Field("w_shift", 0, 4)),
    Region.FANOUT: WordLayout(
        "fanout",
        Field("axon", 0, 14, ext_lsb=39, ext_width=2), Field("x", 14, 4), Field("y", 18, 4),
        Field("to_host", 22, 1), Field("channel", 23, 16)),
    Region.ACCUM: WordLayout(
        "accum", Field("value", 0, 24, signed=True)),
}

#: Number of host output channels a fan-out entry can name.
MAX_CHANNELS = 1 << 16


# --- Address map -------------------------------------------------------------

ADDRESS = WordLayout(
    "address", Field("offset", 0, 20), Field("region", 20, 4), Field("core", 24, 8))


def core_id(x: int, y: int) -> int:
    """The 8-bit core field of an address: ``y << 4 | x``."""
    return (y << 4) | x


def core_xy(core: int) -> tuple[int, int]:
    """Inverse of :func:`core_id`."""
    return core & 0xF, core >> 4


def pack_address(core, region, offset):
    """Address of word ``offset`` of ``region`` in core ``core`` (a core id)."""
    return ADDRESS.pack(core=core, region=region, offset=offset)


def unpack_address(addr):
    """(core id, region, offset) arrays of addresses."""
    f = ADDRESS.unpack(addr)
    return f["core"], f["region"], f["offset"]


# --- Learning engine (docs/architecture.md §11) --------------------------------
#
# Regions 8..13 exist only in images that set the LEARNING header flag (§8.1);
# in every other image they have size 0, exactly as in a learning-free chip,
# and the RTL (which has no learning engine yet) rejects them over the host
# link. The layouts of regions 0..7 above are untouched.

TRACE_BITS = 7                  #: x1, x2, y1, y2, y3 are u7
TRACE_MAX = (1 << TRACE_BITS) - 1
TRACE_DECAY_BITS = 12           #: trace decays d are u12; factor 4096 - d in [1, 4096]
REWARD_MIN, REWARD_MAX = -128, 127   #: the reward r is s8
TAG_MIN, TAG_MAX = -128, 127         #: the tag t is s8
ACC_FRAC = 7                    #: fractional bits of the sum-of-products accumulator
ACC_BITS = 56                   #: its width (signed); no legal rule can overflow it
S_EXP_MIN, S_EXP_MAX = -7, 8    #: scale exponent; stored as s_exp - S_EXP_MIN (u4)
S_MANT_MIN, S_MANT_MAX = -8, 7  #: scale mantissa, s4
CONST_MIN, CONST_MAX = -128, 127     #: the constant C of a factor (var + C), s8
MAX_FACTORS = 4                 #: factor slots per product (microcode word)
MAX_PRODUCTS = 16               #: products per rule (dw and dt together)
RULE_WORDS = 64                 #: microcode words per core
LEARN_WORDS = 5                 #: words of the LEARN region
T_EPOCH_MAX = 63                #: t_epoch is u6; 0 switches the core's engine off
W_BITS_MIN, W_BITS_MAX = 1, 8   #: weight precision of a plastic group
LFSR_BITS = 32
#: Galois LFSR toggle mask (shift right; if the bit shifted out was 1, XOR this):
#: x^32 + x^22 + x^2 + x + 1, maximal length 2^32 - 1 (tests/test_learning_lfsr.py).
LFSR_POLY = 0x80200003
LFSR_STEPS_PER_DRAW = 16        #: single LFSR steps per random draw
TRACE_DRAW_BITS = TRACE_DECAY_BITS   #: bits of a draw used for a trace decay
UPDATE_DRAW_BITS = ACC_FRAC          #: bits of a draw used for a dw/dt update


class LearnRegion(enum.IntEnum):
    """Memory regions of the learning engine (valid only in LEARNING images)."""

    LEARN = 8     #: per-core control, trace parameters, reward/epoch state, LFSR
    LGROUP = 9    #: per synapse group: plasticity, precision, sign mode, rule
    RULE = 10     #: rule microcode, one product per word
    XTRACE = 11   #: per input axon: pre traces x1, x2 and the x0 flag
    YTRACE = 12   #: per neuron: post traces y1, y2, y3 and the y0 flag
    TAG = 13      #: per synapse: the tag (eligibility trace) t
    # 14 is COUNTERS (below, any build with counters); 15 is reserved for
    # per-core control registers.


# --- Activity counters (docs/architecture.md §13) -------------------------------

COUNTERS_REGION = 14            #: read-only region of the activity counters
COUNTER_BITS = 32               #: every counter is u32, cumulative, wrapping modulo 2**32
#: Clocks a neuron pass keeps the accumulator busy beyond one per neuron (the
#: pipeline fill of docs/architecture.md §3.5): CLOCKS grows by
#: ``n_neurons + PASS_LATENCY`` per step.
PASS_LATENCY = 6


class Counter(enum.IntEnum):
    """Word offsets of the COUNTERS region (docs/architecture.md §13)."""

    SPIKES = 0      #: neurons of the core that spiked
    UPDATES = 1     #: neuron updates of the neuron pass
    SYNOPS = 2      #: synapse words walked by the synapse unit
    PACKETS = 3     #: packets the fan-out unit sent into the mesh
    HOPS = 4        #: router-to-router links those packets cross (XY path length)
    LEARN = 5       #: plastic-synapse updates of the learning engine's epochs
    CLOCKS = 6      #: busy clocks: neuron pass (n_neurons + PASS_LATENCY) + SYNOPS


class LearnWord(enum.IntEnum):
    """The words of the LEARN region."""

    CONTROL = 0
    XCFG = 1
    YCFG = 2
    LSTATE = 3
    LFSR = 4


def _factor_fields():
    out = []
    for i in range(MAX_FACTORS):
        lsb = 11 + 12 * i
        out += [Field(f"var{i}", lsb, 4), Field(f"c{i}", lsb + 4, 8, signed=True)]
    return out


#: Word layouts of the LEARN region, by word index.
LEARN_WORD_LAYOUTS: dict[LearnWord, WordLayout] = {
    LearnWord.CONTROL: WordLayout(
        "learn.control",
        Field("t_epoch", 0, 6), Field("sr_trace", 6, 1), Field("sr_w", 7, 1),
        Field("sr_t", 8, 1), Field("reward_en", 9, 1), Field("reward_axon", 10, 14),
        Field("reward_impulse", 24, 8, signed=True), Field("reward_decay", 32, 12)),
    LearnWord.XCFG: WordLayout(
        "learn.xcfg",
        Field("x1_decay", 0, 12), Field("x1_impulse", 12, 7),
        Field("x2_decay", 19, 12), Field("x2_impulse", 31, 7)),
    LearnWord.YCFG: WordLayout(
        "learn.ycfg",
        Field("y1_decay", 0, 12), Field("y1_impulse", 12, 7),
        Field("y2_decay", 19, 12), Field("y2_impulse", 31, 7),
        Field("y3_decay", 38, 12), Field("y3_impulse", 50, 7)),
    LearnWord.LSTATE: WordLayout(
        "learn.lstate", Field("reward", 0, 8, signed=True), Field("epoch_phase", 8, 6)),
    LearnWord.LFSR: WordLayout("learn.lfsr", Field("lfsr", 0, 32)),
}

#: Word layouts of the other learning regions (one layout per region).
LEARN_LAYOUTS: dict[LearnRegion, WordLayout] = {
    LearnRegion.LGROUP: WordLayout(
        "lgroup",
        Field("plastic", 0, 1), Field("sign", 1, 2), Field("w_bits", 3, 4),
        Field("rule_base", 7, 6), Field("rule_len", 13, 5)),
    LearnRegion.RULE: WordLayout(
        "rule",
        Field("target", 0, 1), Field("dep", 1, 2), Field("s_mant", 3, 4, signed=True),
        Field("s_exp", 7, 4), *_factor_fields()),
    LearnRegion.XTRACE: WordLayout(
        "xtrace", Field("x1", 0, 7), Field("x2", 7, 7), Field("x0", 14, 1)),
    LearnRegion.YTRACE: WordLayout(
        "ytrace", Field("y1", 0, 7), Field("y2", 7, 7), Field("y3", 14, 7),
        Field("y0", 21, 1)),
    LearnRegion.TAG: WordLayout("tag", Field("tag", 0, 8, signed=True)),
}


def learn_region_size(geometry: Geometry, region: int) -> int:
    """Words of learning region ``region`` (8..15) in one core of a LEARNING image."""
    g = geometry
    return {
        LearnRegion.LEARN: LEARN_WORDS,
        LearnRegion.LGROUP: g.n_groups,
        LearnRegion.RULE: RULE_WORDS,
        LearnRegion.XTRACE: g.n_axons,
        LearnRegion.YTRACE: g.n_neurons,
        LearnRegion.TAG: g.n_synapses,
    }.get(region, 0)


def region_words(geometry: Geometry, region: int, learning: bool = False) -> int:
    """Words of any region number 0..15 in one core; regions 8..13 only with ``learning``."""
    if region in Region._value2member_map_:
        return geometry.region_size(Region(region))
    if region == COUNTERS_REGION:
        return 0            # not part of an image: read-only, only in builds with counters
    return learn_region_size(geometry, region) if learning else 0


def region_name(region: int) -> str:
    """Name of region number ``region`` (0..15) for messages."""
    for enum_ in (Region, LearnRegion):
        if region in enum_._value2member_map_:
            return enum_(region).name
    if region == COUNTERS_REGION:
        return "COUNTERS"
    return f"reserved region {region}"
