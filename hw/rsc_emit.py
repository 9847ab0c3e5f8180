"""RSC emitter: turns emit jobs into output packets read from the page pool.

A job is a pass-through (one page, sent unchanged), an aggregate (a chain of pages: the first
segment whole with its header fields patched, then the payload of every further segment,
packed byte-exactly behind it), or a drop (the page is freed, nothing is sent).
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .byteorder import lane
from .layouts import OFFSET_BITS
from .rsc_layouts import RxMeta
from .stream import check_width, packet_layout

__all__ = ["RscEmitter", "job_layout", "JOB_RAW", "JOB_AGG", "JOB_DROP"]

JOB_RAW, JOB_AGG, JOB_DROP = 0, 1, 2


def job_layout(pages):
    return data.StructLayout({
        "kind": 2,
        "page": range(pages),     #: first page
        "length": 17,             #: raw: frame bytes; aggregate: first segment's frame bytes
        "count": 8,               #: segments (aggregate)
        "hdr": OFFSET_BITS,       #: header bytes before the payload (= off.payload)
        "mss": 16, "last_pl": 16,
        "l3": OFFSET_BITS, "opaque": OFFSET_BITS, "inner_l3": OFFSET_BITS, "l4": OFFSET_BITS,
        "tunnel": 1, "udp": 1,
        "otl": 16, "ocs": 16, "ulen": 16, "ucs": 16, "itl": 16, "ics": 16,
        "ack": 32, "flags": 16, "win": 16, "tcs": 16,
        "meta": RxMeta,
    })


class RscEmitter(wiring.Component):
    """Jobs in (``j``), packets out (``o``, ``meta`` = :class:`RxMeta`).

    Pages: a frame is a chain of pages (frame links, ``flink``); an aggregate chains the first
    pages of its segments (segment links, ``slink``); both tables are read through ``link_*``
    (one cycle latency). A segment's header must lie in its first page.

    Throughput: one output beat per cycle within a page and across back-to-back jobs; 1 idle
    cycle at each page boundary and between segments of an aggregate (following a link). A
    drop walks the frame's pages without output. Backpressure on ``o`` stops
    the pool reads through a credit counter; nothing is lost. Pages are freed (``free``) as
    soon as their last word has been read. Latency from job to first beat: 3 cycles.
    """

    DEPTH = 8

    def __init__(self, width=8, pages=32, page_bytes=2048):
        self.width = check_width(width)
        self.pages, self.page_bytes = pages, page_bytes
        self.page_beats = page_bytes // width
        self.jlayout = job_layout(pages)
        super().__init__({
            "j": In(stream.Signature(self.jlayout)),
            "o": Out(stream.Signature(packet_layout(width, RxMeta))),
            "r_en": Out(1), "r_page": Out(range(pages)), "r_beat": Out(range(self.page_beats)),
            "r_data": In(8 * width),
            "link_en": Out(1), "link_page": Out(range(pages)),
            "flink_data": In(range(pages)), "slink_data": In(range(pages)),
            "free": Out(1), "free_page": Out(range(pages)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        job = Signal(self.jlayout)
        page = Signal(range(self.pages))
        beat = Signal(16)
        seg = Signal(8)
        lw = (W - 1).bit_length()

        info = data.StructLayout({"s": range(W), "c": range(W + 1), "last": 1, "patch": 1,
                                  "bpos": 17, "meta": RxMeta})
        entry = data.StructLayout({"data": 8 * W, "info": info})
        m.submodules.q = q = fifo.SyncFIFO(width=Shape.cast(entry).width, depth=self.DEPTH)
        issued = Signal()
        rinfo = Signal(info)
        credit = q.level + issued < self.DEPTH - 1

        # Region of the current segment, in bytes of its page: [lo, hi).
        lo = Signal(17)
        hi = Signal(17)
        last_seg = seg + 1 >= job.count
        m.d.comb += [
            lo.eq(Mux(seg == 0, 0, job.hdr)),
            hi.eq(Mux(job.kind == JOB_RAW, job.length,
                      Mux(seg == 0, job.length,
                          job.hdr + Mux(last_seg, job.last_pl, job.mss)))),
        ]
        bstart = beat * W
        blo = Signal(17)
        bhi = Signal(17)
        m.d.comb += [blo.eq(Mux(bstart > lo, bstart, lo)),
                     bhi.eq(Mux(bstart + W < hi, bstart + W, hi))]
        seg_done = bstart + W >= hi
        cur = Signal(info)
        m.d.comb += [
            cur.s.eq(blo - bstart), cur.c.eq(bhi - blo),
            cur.last.eq(seg_done & ((job.kind == JOB_RAW) | last_seg)),
            cur.patch.eq((job.kind == JOB_AGG) & (seg == 0)),
            cur.bpos.eq(bstart), cur.meta.eq(job.meta),
        ]
        pb = (self.page_beats - 1).bit_length()
        seg_first = Signal(range(self.pages))
        drop = job.kind == JOB_DROP
        page_end = (beat + 1)[:pb] == 0
        m.d.comb += [self.r_page.eq(page), self.r_beat.eq(beat[:pb])]
        m.d.sync += issued.eq(0)

        # The next segment's first page is read as soon as a segment starts (its first page
        # may be freed and reused before the segment ends).
        next_seg = Signal(range(self.pages))
        grab = Signal()
        m.d.sync += grab.eq(0)
        with m.If(grab):
            m.d.sync += next_seg.eq(self.slink_data)

        def start(nxt):
            m.d.sync += [job.eq(nxt), page.eq(nxt.page), seg_first.eq(nxt.page), beat.eq(0),
                         seg.eq(0), grab.eq(1)]
            m.d.comb += [self.link_en.eq(1), self.link_page.eq(nxt.page)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.j.ready.eq(1)
                with m.If(self.j.valid):
                    start(self.j.payload)
                    m.next = "READ"
            with m.State("READ"):
                with m.If(credit | drop):
                    m.d.comb += self.r_en.eq(~drop)
                    m.d.sync += [issued.eq(~drop), rinfo.eq(cur), beat.eq(beat + 1)]
                    with m.If(seg_done | page_end):
                        m.d.comb += [self.free.eq(1), self.free_page.eq(page)]
                    with m.If(seg_done):
                        with m.If(cur.last):
                            # Chain straight into the next job, so back-to-back frames
                            # leave without a bubble.
                            with m.If(self.j.valid):
                                m.d.comb += self.j.ready.eq(1)
                                start(self.j.payload)
                            with m.Else():
                                m.next = "IDLE"
                        with m.Else():
                            m.next = "SLINK"
                    with m.Elif(page_end):
                        m.d.comb += [self.link_en.eq(1), self.link_page.eq(page)]
                        m.next = "FLINK"
            with m.State("FLINK"):
                # The frame continues in the page linked from the one just read.
                m.d.sync += page.eq(self.flink_data)
                m.next = "READ"
            with m.State("SLINK"):
                # The next segment starts in the page read from the segment link table.
                m.d.sync += [page.eq(next_seg), seg_first.eq(next_seg), seg.eq(seg + 1),
                             beat.eq(job.hdr >> lw), grab.eq(1)]
                m.d.comb += [self.link_en.eq(1), self.link_page.eq(next_seg)]
                m.next = "READ"

        # Read data arrives one cycle after the request: patch the header, queue it.
        patched = self.r_data
        patches = [
            (job.l3 + 2, job.otl, job.tunnel), (job.l3 + 10, job.ocs, job.tunnel),
            (job.opaque + 4, job.ulen, job.tunnel & job.udp),
            (job.opaque + 6, job.ucs, job.tunnel & job.udp),
            (job.inner_l3 + 2, job.itl, 1), (job.inner_l3 + 10, job.ics, 1),
            (job.l4 + 8, job.ack[16:], 1), (job.l4 + 10, job.ack[:16], 1),
            (job.l4 + 12, job.flags, 1), (job.l4 + 14, job.win, 1), (job.l4 + 16, job.tcs, 1),
        ]
        # Every patched 16-bit field sits at an even offset (the engine merges only frames
        # whose headers start at even offsets), so it never straddles two beats.
        stage = patched
        for at, value, en in patches:
            at = Value.cast(at)[:17]
            rel = (at - rinfo.bpos)[:lw]
            hit = rinfo.patch & en & ((at >> lw) == (rinfo.bpos >> lw))
            fmask = Const(0xFFFF, 8 * W) << (rel * 8)
            nxt = Signal(8 * W)
            m.d.comb += nxt.eq(Mux(hit, (stage & ~fmask) | (Cat(value[8:16], value[0:8])
                                                            << (rel * 8)), stage))
            stage = nxt
        patched = stage

        qin = Signal(entry)
        m.d.comb += [qin.data.eq(patched), qin.info.eq(rinfo),
                     q.w_data.eq(qin), q.w_en.eq(issued)]

        # Packer: bytes [s, s+c) of each queued word, appended behind the ``n`` held bytes.
        qout = Signal(entry)
        m.d.comb += qout.eq(q.r_data)
        acc = Signal(8 * W)
        n = Signal(range(W))
        tail = Signal()
        tail_meta = Signal(RxMeta)
        advance = ~self.o.valid | self.o.ready
        d = qout.data
        lanemask = Cat(((j >= qout.info.s) & (j < qout.info.s + qout.info.c)).replicate(8)
                       for j in range(W))
        shifted = Signal(16 * W)
        m.d.comb += shifted.eq(((d & lanemask) >> (qout.info.s * 8)) << (n * 8))
        combined = Signal(16 * W)
        m.d.comb += combined.eq(shifted | acc)
        total = Signal(range(2 * W + 1))
        m.d.comb += total.eq(n + qout.info.c)

        def keep_of(count):
            return (Const(1, W + 1) << count) - 1

        with m.If(advance):
            with m.If(tail):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(acc),
                             self.o.payload.keep.eq(keep_of(n)), self.o.payload.last.eq(1),
                             self.o.payload.meta.eq(tail_meta),
                             tail.eq(0), n.eq(0), acc.eq(0)]
            with m.Elif(q.r_rdy):
                m.d.comb += q.r_en.eq(1)
                with m.If(total >= W):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(combined[:8 * W]),
                                 self.o.payload.keep.eq((1 << W) - 1),
                                 self.o.payload.last.eq(qout.info.last & (total == W)),
                                 self.o.payload.meta.eq(qout.info.meta),
                                 acc.eq(combined[8 * W:]), n.eq(total - W),
                                 tail.eq(qout.info.last & (total > W)),
                                 tail_meta.eq(qout.info.meta)]
                with m.Elif(qout.info.last):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(combined[:8 * W]),
                                 self.o.payload.keep.eq(keep_of(total)),
                                 self.o.payload.last.eq(1),
                                 self.o.payload.meta.eq(qout.info.meta),
                                 acc.eq(0), n.eq(0)]
                with m.Else():
                    m.d.sync += [self.o.valid.eq(0), acc.eq(combined[:8 * W]), n.eq(total)]
            with m.Else():
                m.d.sync += self.o.valid.eq(0)
        return m
