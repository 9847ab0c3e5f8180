"""Content-addressable flow table: N tags matched in parallel, one lookup per cycle.

The CAM holds a compact tag (a hash of the flow key) per entry, not the whole key: the owner
keeps the full key in memory and confirms it (DESIGN.md section 7: tags keep the parallel
compare small). The owner never writes the same tag into two entries, so at most one matches.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TagCam", "lowest_set", "onehot_index"]


def lowest_set(bits, count):
    """(any, index) of the lowest set bit of ``bits`` (combinational priority encoder).

    A balanced tree: log2(count) levels of 2:1 multiplexers, not a chain of ``count``.
    """
    bits = Value.cast(bits)

    def tree(lo, n):
        # (any, index relative to lo, index width) of bits[lo:lo+n]
        if n == 1:
            return bits[lo], Const(0, 0)
        half = 1 << ((n - 1).bit_length() - 1)
        a_lo, i_lo = tree(lo, half)
        a_hi, i_hi = tree(lo + half, n - half)
        hb = (half - 1).bit_length()
        idx = Mux(a_lo, Cat(i_lo, Const(0, hb + 1 - len(i_lo))),
                  Cat(i_hi, Const(0, hb - len(i_hi)), Const(1, 1)))
        return a_lo | a_hi, idx

    found, idx = tree(0, count)
    index = Signal(range(max(count, 2)))
    return found, Cat(idx, Const(0, max(0, len(index) - len(idx))))[:len(index)]


def onehot_index(bits, count):
    """Index of the set bit of ``bits``, which has at most one set bit (OR per index bit)."""
    width = max((count - 1).bit_length(), 1)
    return Cat(Cat(bits[i] for i in range(count) if i >> b & 1).any()
               if any(i >> b & 1 for i in range(count)) else Const(0, 1)
               for b in range(width))


class TagCam(wiring.Component):
    """N entries of (valid, ``tag_bits`` tag), looked up in a two-stage pipeline.

    Ports
    -----
    lookup_tag : in
        Tag to search, every cycle (throughput: one lookup per cycle).
    match : out
        Latency 1: bit i set when entry i holds the tag presented one cycle earlier (at most
        one bit is set). Combinational from stage 1's registers (see below).
    hit, index : out
        Latency 2: the same lookup's hit and the index of its (single) match (0 on a miss),
        registered, for an owner that addresses a memory with them.
    sel : out
        Latency 2: ``hit | free_any``, registered as one bit (the select of such an owner's
        address multiplexer: one register instead of an OR in front of it).
    we, w_index, w_tag, w_valid : in
        Write (or, with ``w_valid`` = 0, invalidate) entry ``w_index``.
    inv, inv_index : in
        Invalidate entry ``inv_index``: its valid bit only (a second write port that leaves the
        tags alone, so an owner's invalidate decision does not reach the tags' enables). A
        write through ``we`` to the same entry in the same cycle wins.
    valid : out
        The valid bit of every entry (for the owner's free-entry search).
    free_any, free_index : out
        Registered: some entry is invalid, and the lowest such index, as of the writes made
        up to the previous cycle (a write is seen one cycle later).

    A lookup sees every write made up to and including the cycle it is presented in, so an
    owner may write (or invalidate) and look up the next tag in the same cycle. Stage 1
    registers the compare with the stored tags (``raw``, before that cycle's write), which
    entries that cycle's write or invalidate replaces (``gone``), and whether the write's tag
    is the one looked up (``fwd``, with the written index); stage 2 drops the replaced
    entries from ``raw`` and adds the written entry when ``fwd``. So the tags' compare
    starts at registers and the lookup tag, and the write port's decision reaches only the
    registers ``gone`` and ``fwd``.

    Reset invalidates every entry.
    """

    LATENCY = 2

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
            "match": Out(entries), "hit": Out(1), "index": Out(idx), "sel": Out(1),
            "we": In(1), "w_index": In(idx), "w_tag": In(tag_bits), "w_valid": In(1),
            "inv": In(1), "inv_index": In(idx),
            "valid": Out(entries),
            "free_any": Out(1), "free_index": Out(idx),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.entries
        idx = range(max(n, 2))
        tags = Array(Signal(self.tag_bits, name=f"tag{i}") for i in range(n))
        valid = Signal(n)
        with m.If(self.inv):
            m.d.sync += valid.bit_select(self.inv_index, 1).eq(0)
        with m.If(self.we):
            m.d.sync += tags[self.w_index].eq(self.w_tag)
            m.d.sync += valid.bit_select(self.w_index, 1).eq(self.w_valid)
        # Stage 1: the parallel compare with the stored entries, the entries this cycle's
        # write and invalidate replace, and the write (for stage 2's forwarding).
        raw, gone = Signal(n), Signal(n)
        fwd, wi_r = Signal(), Signal(idx)
        m.d.sync += [
            raw.eq(Cat((tags[i] == self.lookup_tag) & valid[i] for i in range(n))),
            gone.eq(Cat((self.we & (self.w_index == i)) | (self.inv & (self.inv_index == i))
                        for i in range(n))),
            # (The write's own compare with the lookup, like the stored tags': registered.)
            fwd.eq(self.we & self.w_valid & (self.w_tag == self.lookup_tag)),
            wi_r.eq(self.w_index),
        ]
        # Stage 2: the surviving match or the forwarded write (never both: the owner never
        # holds one tag in two entries).
        kept = Signal(n)
        m.d.comb += [kept.eq(raw & ~gone),
                     self.match.eq(kept | (fwd.as_unsigned() << wi_r)[:n])]
        free, free_index = lowest_set(~valid, n)
        free_any_r = Signal()
        free_index_r = Signal(idx)
        m.d.sync += [
            self.hit.eq(kept.any() | fwd),
            self.index.eq(Mux(fwd, wi_r, onehot_index(kept, n))),
            self.sel.eq(kept.any() | fwd | free),
            free_any_r.eq(free), free_index_r.eq(free_index),
        ]
        m.d.comb += [self.valid.eq(valid), self.free_any.eq(free_any_r),
                     self.free_index.eq(free_index_r)]
        return m
