"""Layouts of the RSC engine: its output metadata, statistics, and the records passed between its
stages (ingress descriptor, context, emit job). See hw/rsc.py for the engine.
"""

from amaranth import *
from amaranth.lib import data

from .layouts import OFFSET_BITS

__all__ = ["RxMeta", "rsc_stats_layout", "STAT_NAMES", "OPT_BYTES", "flow_tag",
           "key_words"]

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
