"""Content-addressable flow table: N tags matched in parallel, one lookup per cycle.

The CAM holds a compact tag (a hash of the flow key) per entry, not the whole key: the owner
keeps the full key in memory and confirms it (DESIGN.md section 7: tags keep the parallel
compare small). The owner never writes the same tag into two entries, so at most one matches.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TagCam", "lowest_set"]


def lowest_set(bits, count):
    """(any, index) of the lowest set bit of ``bits`` (combinational priority encoder)."""
    index = Signal(range(max(count, 2)))
    found = Signal()
    for i in reversed(range(count)):
        with_this = bits[i]
        index = Mux(with_this, i, index)
        found = found | with_this
    return found, index


class TagCam(wiring.Component):
    """N entries of (valid, ``tag_bits`` tag).

    Ports
    -----
    lookup_tag : in
        Tag to search, every cycle.
    hit, index : out
        Registered result of the lookup presented one cycle earlier (latency 1; throughput one
        lookup per cycle). A write in that same earlier cycle is *not* seen by the lookup: the
        owner sequences writes before the lookups that depend on them.
    we, w_index, w_tag, w_valid : in
        Write (or, with ``w_valid`` = 0, invalidate) entry ``w_index``.
    valid : out
        The valid bit of every entry (for the owner's free-entry search).
    free_any, free_index : out
        Combinational: some entry is invalid, and the lowest such index.

    Reset invalidates every entry.
    """

    def __init__(self, entries=32, tag_bits=32):
        if not 1 <= entries <= 256:
            raise ValueError(f"CAM entries must be 1..256, not {entries}")
        if tag_bits < 1:
            raise ValueError(f"tag width must be positive, not {tag_bits}")
        self.entries = entries
        self.tag_bits = tag_bits
        idx = range(max(entries, 2))
        super().__init__({
            "lookup_tag": In(tag_bits),
            "hit": Out(1), "index": Out(idx),
            "we": In(1), "w_index": In(idx), "w_tag": In(tag_bits), "w_valid": In(1),
            "valid": Out(entries),
            "free_any": Out(1), "free_index": Out(idx),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.entries
        tags = Array(Signal(self.tag_bits, name=f"tag{i}") for i in range(n))
        valid = Signal(n)
        with m.If(self.we):
            m.d.sync += tags[self.w_index].eq(self.w_tag)
            m.d.sync += valid.bit_select(self.w_index, 1).eq(self.w_valid)
        match = Cat((tags[i] == self.lookup_tag) & valid[i] for i in range(n))
        hit, index = lowest_set(match, n)
        m.d.sync += [self.hit.eq(hit), self.index.eq(index)]
        free, free_index = lowest_set(~valid, n)
        m.d.comb += [self.valid.eq(valid), self.free_any.eq(free),
                     self.free_index.eq(free_index)]
        return m
