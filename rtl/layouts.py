"""Packed layouts and stream signatures shared by the RTL components.

The memory word layouts are derived from :data:`neuromesh.chip.LAYOUTS`, so
the gateware and the emulator read the same bit positions.
"""

from __future__ import annotations

from amaranth import signed, unsigned
from amaranth.lib import data, stream

from neuromesh.chip import LAYOUTS, ChipError, Geometry, Region

__all__ = ["word_layout", "struct_layout", "stored_layout", "PACKET", "MEM_REQUEST",
           "packet_stream", "mem_request_stream", "mem_response_stream", "byte_stream",
           "RTL_LIMITS", "check_rtl_geometry"]

#: Geometry maxima of the RTL: the first release's limits. The RTL stores the
#: first release's word (the low part of each widened field, docs/architecture.md
#: §5.3) and its packets carry 16-bit axons; the Loihi-scale geometries above
#: these limits run on the emulator only.
RTL_LIMITS = {"n_axons": 16384, "n_synapses": 65536, "n_fanout": 16384}


def check_rtl_geometry(geometry: Geometry) -> None:
    """Raise :class:`~neuromesh.chip.ChipError` if the RTL cannot build ``geometry``."""
    for name, limit in RTL_LIMITS.items():
        value = getattr(geometry, name)
        if value > limit:
            raise ChipError(f"geometry {geometry}: {name} = {value} exceeds the RTL's limit "
                            f"{limit} (the RTL builds n_axons <= {RTL_LIMITS['n_axons']}, "
                            f"n_synapses <= {RTL_LIMITS['n_synapses']}, n_fanout <= "
                            f"{RTL_LIMITS['n_fanout']}; larger geometries run on the emulator)")


def word_layout(region: Region) -> data.StructLayout:
    """The :class:`~amaranth.lib.data.StructLayout` of a memory word of ``region``.

    Fields sit at the bit positions of the spec; reserved bits are padding
    (and are not stored). Widened fields keep only their low part (the
    extension bits are zero in every geometry the RTL builds,
    :func:`check_rtl_geometry`).
    """
    return struct_layout(LAYOUTS[region])


def struct_layout(layout) -> data.StructLayout:
    """A :class:`~neuromesh.chip.WordLayout` as an Amaranth struct: fields at
    their bit positions, gaps as padding members; of a widened field only its
    low part (the first release's word)."""
    fields = sorted(layout.fields.values(), key=lambda f: f.lsb)
    members, pos = {}, 0
    for i, f in enumerate(fields):
        if f.lsb > pos:
            members[f"_pad{i}"] = unsigned(f.lsb - pos)
        members[f.name] = signed(f.width) if f.signed else unsigned(f.width)
        pos = f.lsb + f.width
    return data.StructLayout(members)


def _bits(n: int) -> int:
    return max(0, int(n)).bit_length()


def stored_layout(region: Region, geometry: Geometry) -> data.StructLayout:
    """The word of ``region`` as stored when only the bits ``geometry`` can use
    are kept: index and length fields narrowed to the largest value the
    content rules allow (docs/architecture.md §5.4), no padding. Fields a
    rule leaves free (e.g. ``axon`` of a host-bound FANOUT entry, which is
    never used) lose their high bits; everything the chip computes with is
    unchanged."""
    g = geometry
    limits = {
        Region.NEURON: {"profile": _bits(g.n_profiles - 1),
                        "fanout_base": _bits(g.n_fanout), "fanout_len": _bits(g.n_fanout)},
        Region.AXON: {"syn_base": _bits(g.n_synapses), "syn_len": _bits(g.n_synapses)},
        Region.SYNAPSE: {"target": _bits(g.n_neurons - 1), "delay": _bits(g.max_delay),
                         "group": _bits(g.n_groups - 1)},
        Region.FANOUT: {"axon": _bits(g.n_axons - 1), "x": _bits(g.cols - 1),
                        "y": _bits(g.rows - 1)},
    }.get(region, {})
    members = {}
    for name, f in sorted(LAYOUTS[region].fields.items(), key=lambda kv: kv[1].lsb):
        # At least one bit: a zero-width field is fine in Amaranth but not
        # in the Verilog it generates.
        width = max(1, min(f.width, limits.get(name, f.width)))
        members[name] = signed(width) if f.signed else unsigned(width)
    return data.StructLayout(members)


#: A spike packet on the mesh: to axon ``payload`` of core ``(x, y)``, or,
#: with ``to_host``, to host output channel ``payload``.
PACKET = data.StructLayout({
    "payload": unsigned(16),
    "x": unsigned(4),
    "y": unsigned(4),
    "to_host": unsigned(1),
})

#: A host-link access to the address map (``neuromesh.chip.ADDRESS``).
MEM_REQUEST = data.StructLayout({
    "addr": unsigned(32),
    "data": unsigned(64),
    "write": unsigned(1),
})


def packet_stream():
    """Stream of :data:`PACKET` (valid/ready)."""
    return stream.Signature(PACKET)


def mem_request_stream():
    """Stream of :data:`MEM_REQUEST`."""
    return stream.Signature(MEM_REQUEST)


def mem_response_stream():
    """Stream of 64-bit read data, one per read request, in order."""
    return stream.Signature(unsigned(64))


def byte_stream():
    """Stream of bytes (the host link's wire)."""
    return stream.Signature(unsigned(8))
