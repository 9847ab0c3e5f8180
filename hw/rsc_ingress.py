"""RSC ingress: store each arriving frame in a pool page and describe it for the decision stage.

Per frame it produces one *descriptor*: the parse record, the page, the frame length, whether
the frame was too long for a page, the TCP option bytes, and four one's-complement sums taken
while the frame streams by (TCP segment, TCP payload, outer UDP datagram, opaque bytes after the
UDP header). Nothing is decided here.
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .byteorder import lane
from .checksum import ChecksumAccumulator
from .layouts import ParseRecord, parsed_signature
from .rsc_layouts import OPT_BYTES
from .stream import check_width, keep_count

__all__ = ["RscIngress", "desc_layout"]


def desc_layout(pages, opaque_bytes=64):
    return data.StructLayout({
        "rec": ParseRecord(opaque_bytes),
        "page": range(pages),
        "length": 17,          #: frame bytes
        "oversize": 1,         #: longer than max_frame: stored only in part
        "opts": 8 * OPT_BYTES,  #: TCP option bytes, wire order, zero past the options
        "s_tcp": 16, "s_pay": 16, "s_udp": 16, "s_mid": 16,
    })


class RscIngress(wiring.Component):
    """Frames in (``i``, one beat per cycle), descriptors out (``d``), page writes to the pool.

    A frame occupies a chain of pages: its first page, then one more every ``page_bytes``,
    each linked from the previous one through ``fl_*`` (the frame-link table). Frames longer
    than ``max_frame`` bytes are consumed but stored only up to ``max_frame`` and flagged
    ``oversize`` (the decision stage drops them).

    Latency: a descriptor is offered 4 cycles after the frame's last beat (checksum
    accumulators). ``i.ready`` is low only at a beat that starts a page when no pool page is
    free, or at the first beat of a frame when ``depth`` descriptors are waiting. Reset forgets
    a frame in progress (reset the pool with it).
    """

    def __init__(self, width=8, pages=32, page_bytes=2048, opaque_bytes=64, depth=4,
                 max_frame=2048):
        self.width = check_width(width)
        self.pages, self.page_bytes, self.depth = pages, page_bytes, depth
        self.page_beats = page_bytes // width
        self.opaque_bytes = opaque_bytes
        self.max_frame = max_frame
        self.dlayout = desc_layout(pages, opaque_bytes)
        super().__init__({
            "i": In(parsed_signature(width, opaque_bytes)),
            "d": Out(stream.Signature(self.dlayout)),
            "alloc_ok": In(1), "alloc_page": In(range(pages)), "alloc": Out(1),
            "w_en": Out(1), "w_page": Out(range(pages)), "w_beat": Out(range(self.page_beats)),
            "w_data": Out(8 * width),
            "fl_en": Out(1), "fl_page": Out(range(pages)), "fl_next": Out(range(pages)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        p = self.i.payload
        rec = p.meta
        m.submodules.dq = dq = fifo.SyncFIFO(width=Shape.cast(self.dlayout).width,
                                             depth=self.depth)
        m.submodules.sq = sq = fifo.SyncFIFO(width=64, depth=self.depth)

        in_pkt = Signal()
        page = Signal(range(self.pages))
        first_page = Signal(range(self.pages))
        beat = Signal(16)
        opts = Signal(8 * OPT_BYTES)
        pb = (self.page_beats - 1).bit_length()

        first = ~in_pkt
        store = beat * W < self.max_frame            # this beat is stored
        new_page = store & (beat[:pb] == 0)          # ... and starts a page
        m.d.comb += self.i.ready.eq((in_pkt | dq.w_rdy) & (~new_page | self.alloc_ok))
        take = self.i.valid & self.i.ready
        cur_page = Mux(new_page, self.alloc_page, page)
        m.d.comb += [
            self.alloc.eq(take & new_page),
            self.w_en.eq(take & store),
            self.w_page.eq(cur_page),
            self.w_beat.eq(beat[:pb]),
            self.w_data.eq(p.data),
            self.fl_en.eq(take & new_page & in_pkt),
            self.fl_page.eq(page), self.fl_next.eq(self.alloc_page),
        ]
        with m.If(take):
            m.d.sync += [in_pkt.eq(~p.last), beat.eq(Mux(p.last, 0, beat + 1)),
                         page.eq(cur_page)]
            with m.If(first):
                m.d.sync += first_page.eq(self.alloc_page)
        frame_page = Mux(first, self.alloc_page, first_page)

        # Byte positions of this beat's lanes, and the regions the sums cover.
        pos = [Signal(17, name=f"pos{j}") for j in range(W)]
        for j in range(W):
            m.d.comb += pos[j].eq(beat * W + j)
        off = rec.off
        ipend = Signal(17)
        oend = Signal(17)
        m.d.comb += [ipend.eq(off.inner_l3 + rec.inner.total_len),
                     oend.eq(off.l3 + rec.outer.total_len)]

        def region(lo, hi):
            return Cat((pos[j] >= lo) & (pos[j] < hi) & p.keep[j] for j in range(W))

        masks = {
            "s_tcp": region(off.l4, ipend),
            "s_pay": region(off.payload, ipend),
            "s_udp": region(off.opaque, oend),
            "s_mid": region(off.opaque + 8, off.inner_l3),
        }
        last_d = Signal(ChecksumAccumulator.LATENCY)
        m.d.sync += last_d.eq(Cat(take & p.last, last_d))
        sums = []
        for name, mask in masks.items():
            acc = ChecksumAccumulator(W)
            m.submodules[f"acc_{name}"] = acc
            m.d.comb += [acc.i_valid.eq(take), acc.i_first.eq(first), acc.i_data.eq(p.data),
                         acc.i_mask.eq(mask)]
            sums.append(acc.o_sum)
        m.d.comb += [sq.w_data.eq(Cat(*sums)), sq.w_en.eq(last_d[-1])]

        # TCP option bytes: option byte k sits at l4 + 20 + k (before the payload). Each beat's
        # option lanes are shifted into place with one variable shift.
        ostart = Signal(17)
        m.d.comb += ostart.eq(off.l4 + 20)
        omask = Cat(((pos[j] >= ostart) & (pos[j] < off.payload) & p.keep[j]).replicate(8)
                    for j in range(W))
        masked = Signal(8 * W)
        m.d.comb += masked.eq(p.data & omask)
        placed = Signal(8 * OPT_BYTES + 8 * W)
        with m.If(beat * W >= ostart):
            m.d.comb += placed.eq(masked << ((beat * W - ostart)[:6] * 8))
        with m.Else():
            m.d.comb += placed.eq(masked >> ((ostart - beat * W)[:6] * 8))
        opt_next = Signal(8 * OPT_BYTES)
        m.d.comb += opt_next.eq(Mux(first, 0, opts) | placed[:8 * OPT_BYTES])
        with m.If(take):
            m.d.sync += opts.eq(opt_next)

        desc = Signal(self.dlayout)
        m.d.comb += [
            desc.rec.eq(rec),
            desc.page.eq(frame_page),
            desc.length.eq(beat * W + keep_count(p.keep, W)),
            desc.oversize.eq(beat * W + keep_count(p.keep, W) > self.max_frame),
            desc.opts.eq(opt_next),
            dq.w_data.eq(desc),
            dq.w_en.eq(take & p.last),
        ]

        out = Signal(self.dlayout)
        m.d.comb += [
            out.eq(dq.r_data),
            self.d.payload.eq(out),
            self.d.payload.s_tcp.eq(sq.r_data[0:16]),
            self.d.payload.s_pay.eq(sq.r_data[16:32]),
            self.d.payload.s_udp.eq(sq.r_data[32:48]),
            self.d.payload.s_mid.eq(sq.r_data[48:64]),
            self.d.valid.eq(dq.r_rdy & sq.r_rdy),
            dq.r_en.eq(self.d.ready & sq.r_rdy),
            sq.r_en.eq(self.d.ready & dq.r_rdy),
        ]
        return m
