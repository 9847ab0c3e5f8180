"""Internal layouts of the TSO engine: per-superframe context, segment descriptor, patch list.

The *context* is what the segment side needs to know about a superframe (taken from its parse
record when the input side accepts it); the engine keeps one per header bank. A *descriptor*
travels from the input side to the segment side once per segment (or pass-through packet, or
dropped truncated segment). *Patches* are the header bytes rewritten in every segment.
"""

from amaranth.lib import data, enum

from .layouts import OFFSET_BITS

__all__ = ["PATCHES", "PATCH_BYTES", "DescKind", "context_layout", "descriptor_layout"]

#: (name, header, byte offset from that header's start, bytes): the fields rewritten per
#: segment, in the order of the patch byte vector. Headers: ``l3`` (outer IPv4), ``opaque``
#: (UDP header of a ``udp`` profile), ``inner_l3`` (inner or only IPv4), ``l4`` (TCP).
PATCHES = (
    ("outer_len", "l3", 2, 2), ("outer_id", "l3", 4, 2), ("outer_csum", "l3", 10, 2),
    ("udp_len", "opaque", 4, 2), ("udp_csum", "opaque", 6, 2),
    ("inner_len", "inner_l3", 2, 2), ("inner_id", "inner_l3", 4, 2),
    ("inner_csum", "inner_l3", 10, 2),
    ("seq", "l4", 4, 4), ("flags", "l4", 13, 1), ("tcp_csum", "l4", 16, 2),
)
PATCH_BYTES = sum(size for *_, size in PATCHES)


class DescKind(enum.Enum, shape=2):
    SEGMENT = 0   #: a complete segment is in the ring
    PASS = 1      #: the next input packet passes through unchanged (cut-through)
    DROP = 2      #: a truncated superframe ended: nothing to send, release its header bank


def context_layout():
    ipv4 = data.StructLayout({
        "ident": 16, "w0": 16, "w3": 16, "w4": 16, "src": 32, "dst": 32,
    })
    return data.StructLayout({
        "tunnel": 1, "udp": 1, "udp_csum": 1, "gre_csum": 1, "ipid_fixed": 1, "l4_odd": 1,
        "hl": OFFSET_BITS,            # header length = offset of the first payload byte
        "outer_hdr": 16,              # outer total length minus payload
        "inner_hdr": 16,              # inner total length minus payload
        "outer": ipv4, "inner": ipv4,
        "seq": 32, "flag_word": 16, "tcp_csum": 16, "flags": 8,
        "udp_len": 16, "udp_csum_in": 16,   # (GRE with C: the GRE checksum as it arrived)
        "patch_off": data.ArrayLayout(OFFSET_BITS, PATCH_BYTES),   # frame offset per byte
        "patch_en": PATCH_BYTES,
    })


def descriptor_layout():
    return data.StructLayout({
        "kind": DescKind, "bank": 1, "first": 1, "last": 1, "n": 14,
        "psum": 32,       # payload sum, lanes paired as in the output frame
        "opq_sum": 24,    # sum of [opaque, inner_l3) (UDP checksum)
        "tcph_sum": 24,   # sum of [l4, hl) (TCP header and options)
    })
