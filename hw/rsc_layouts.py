"""Layouts of the RSC engine: its output metadata, statistics, and the records passed between its
stages (ingress descriptor, context, emit job). See hw/rsc.py for the engine.
"""

from amaranth import *
from amaranth.lib import data

from .layouts import EthFields, Kind, Offsets, OFFSET_BITS

__all__ = ["RxMeta", "rsc_stats_layout", "STAT_NAMES", "OPT_BYTES", "flow_tag",
           "key_words", "rsc_record_layout", "rsc_record"]

#: TCP option bytes captured per segment (the most a TCP header holds).
OPT_BYTES = 40

#: Per-cycle statistics increments, one bit each (the register map turns them into counters).
#: Same names as :data:`tunnelnic.model.rsc.COUNTERS`.
STAT_NAMES = ("packets_in", "merged", "aggregates_out", "pass_through", "dropped",
              "collisions", "flush_size", "flush_segs", "flush_timeout", "flush_psh",
              "flush_short", "flush_mismatch", "flush_other", "flush_full", "flush_all",
              "flush_pool", "pool_exhausted")


def rsc_stats_layout():
    return data.StructLayout({name: 1 for name in STAT_NAMES})


class RxMeta(data.Struct):
    """RX per-packet result handed to the host with every output packet (constant over it).

    ``agg``      1: built from ``segs`` >= 2 segments; 0: an input frame, unchanged.
    ``segs``     segments in the packet (1 for a pass-through).
    ``mss``      payload bytes of the first segment (0 for a packet without TCP header):
                 TSO with this MSS re-creates the segments.
    ``ctx``      the context slot that held it (0 for a pass-through).
    ``profile``  the parse record's ``cls.profile``; ``kind`` its ``cls.kind``.
    ``csum_ok``  both IPv4 header checksums, the TCP checksum and a non-zero UDP checksum (UDP
                 profiles) verify: always 1 for a packet that went through a context.
    """
    agg: 1
    segs: 8
    mss: 16
    ctx: 8
    profile: 3
    kind: 2
    csum_ok: 1


def key_words(tunnel, profile, osrc, odst, isrc, idst, sport, dport, flow):
    """The flow key as seven 32-bit words (same order as the model's ``key_words``)."""
    return [Cat(profile, tunnel, Const(0, 28)), osrc, odst, isrc, idst, Cat(dport, sport), flow]


def flow_tag(words):
    """32-bit CAM tag: XOR of word ``i`` rotated left by ``7*i`` (= model's ``flow_tag``)."""
    tag = Const(0, 32)
    for i, w in enumerate(words):
        tag = tag ^ Value.cast(w)[:32].rotate_left((7 * i) % 32)
    return tag


GRE_PROTO = 47

_IPV4 = {"ihl": 4, "tos": 8, "total_len": 16, "ident": 16, "df": 1, "ttl": 8, "csum": 16,
         "src": 32, "dst": 32, "csum_ok": 1}


def rsc_record_layout(opaque_bytes=64):
    """The part of a :func:`hw.layouts.ParseRecord` the decision stage uses (what the
    ingress queues per frame): no error bits, version, fragment fields, inner protocol, urgent
    pointer, reason or TSO bits; each IPv4 header's flags reduced to DF and the outer protocol
    to "is GRE" (1 274 -> 1 188 bits at 64 opaque bytes)."""
    return data.StructLayout({
        "eth": EthFields,
        "outer": data.StructLayout({**_IPV4, "gre": 1}),
        "inner": data.StructLayout(_IPV4),
        "tcp": data.StructLayout({"present": 1, "sport": 16, "dport": 16, "seq": 32, "ack": 32,
                                  "doff": 4, "rsv": 4, "flags": 8, "window": 16, "csum": 16}),
        "off": Offsets,
        "payload_len": 16,
        "cls": data.StructLayout({"kind": Kind, "profile": 3, "opaque_len": OFFSET_BITS,
                                  "flow": 32, "rsc_ok": 1, "udp": 1, "udp_csum": 1}),
        "opaque": 8 * opaque_bytes,
    })


def rsc_record(rec):
    """``rec`` (a :func:`hw.layouts.ParseRecord` view) as a :func:`rsc_record_layout` value."""
    out = []
    for name, field in rsc_record_layout(len(rec.opaque) // 8):
        src = getattr(rec, name)
        if name in ("outer", "inner", "tcp", "cls"):
            for sub, _ in field.shape:
                if sub == "df":
                    out.append(src.flags[1])
                elif sub == "gre":
                    out.append(src.proto == GRE_PROTO)
                else:
                    out.append(Value.cast(getattr(src, sub)))
        else:
            out.append(Value.cast(src))
    return Cat(*out)
