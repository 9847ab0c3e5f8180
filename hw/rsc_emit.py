"""RSC emitter: turns emit jobs into output packets read from the page pool.

A job is a pass-through (one page, sent unchanged), an aggregate (a chain of pages: the first
segment whole with its header fields patched, then the payload of every further segment,
packed byte-exactly behind it), or a drop (the page is freed, nothing is sent).
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .compare import above, gt_const, le_const, lt_const
from .layouts import OFFSET_BITS
from .rsc_layouts import RxMeta
from .stream import check_width, packet_layout

__all__ = ["RscEmitter", "job_layout", "JOB_RAW", "JOB_AGG", "JOB_DROP"]

JOB_RAW, JOB_AGG, JOB_DROP = 0, 1, 2


def job_layout(pages):
    return data.StructLayout({
        "kind": 2,
        "page": range(pages),     #: first page
        "end": 17,                #: last byte's offset: raw: frame bytes - 1; aggregate: the
                                  #: first segment's frame bytes - 1
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
    pages of its segments (segment links, ``slink``); both tables are read at ``link_page``
    (one cycle latency, every cycle: the owner's read ports need no enable), which is the
    page being read, a register: no job or state decision sits in front of the tables' read
    address. A segment's header must lie in its first page.

    ``j.valid`` should come from a register (the engine registers it from its job queue's
    next level): it drives the state machine's start decision. A start loads only the few
    registers of the first beat's read (page, beat, its bounds from ``end``); the job itself
    is taken from a copy of ``j.payload`` registered in every cycle (no enable) one cycle
    later, so the start decision does not reach the enables of the job's ~400 bits. No
    patched field lies in a job's first beat (the first one sits at offset 16, after the
    Ethernet header and two bytes of the outer IP header, and W <= 16), so that beat needs
    no patch positions.

    Throughput: one output beat per cycle within a page and across back-to-back jobs; 1 idle
    cycle at each page boundary and between segments of an aggregate (following a link). A
    drop walks the frame's pages without output. Backpressure on ``o`` stops
    the pool reads through a credit counter; nothing is lost. Pages are freed (``free``) as
    soon as their last word has been read. Latency from job to first beat: 3 cycles plus the
    pool's ``read_latency`` (1 or 2; the read data is registered, then patched or aligned,
    then queued). The read data is used only for the reads issued with ``r_en``: a pool may
    read in every cycle instead (the engine's does).
    """

    DEPTH = 8

    def __init__(self, width=8, pages=32, page_bytes=2048, *, read_latency=1):
        self.width = check_width(width)
        assert read_latency in (1, 2)
        self.read_latency = read_latency
        self.pages, self.page_bytes = pages, page_bytes
        self.page_beats = page_bytes // width
        self.jlayout = job_layout(pages)
        super().__init__({
            "j": In(stream.Signature(self.jlayout)),
            "o": Out(stream.Signature(packet_layout(width, RxMeta))),
            "r_en": Out(1), "r_page": Out(range(pages)), "r_beat": Out(range(self.page_beats)),
            "r_data": In(8 * width),
            "link_page": Out(range(pages)),
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
        NW = max(W // 2, 1)           # 16-bit words per beat

        # The header fields an aggregate's first segment gets: (offset, value, enable).
        def patch_list(j):
            return [
                (j.l3 + 2, j.otl, j.tunnel), (j.l3 + 10, j.ocs, j.tunnel),
                (j.opaque + 4, j.ulen, j.tunnel & j.udp),
                (j.opaque + 6, j.ucs, j.tunnel & j.udp),
                (j.inner_l3 + 2, j.itl, 1), (j.inner_l3 + 10, j.ics, 1),
                (j.l4 + 8, j.ack[16:], 1), (j.l4 + 10, j.ack[:16], 1),
                (j.l4 + 12, j.flags, 1), (j.l4 + 14, j.win, 1), (j.l4 + 16, j.tcs, 1),
            ]
        NP = len(patch_list(job))

        info = data.StructLayout({"s": range(W), "c": range(W + 1), "lm": W, "last": 1,
                                  "patch": 1, "psel": NP * NW, "meta": RxMeta})
        # A queued word carries its byte count ``c`` and, for the packer, the same count as a
        # thermometer ``th`` (bit k: c > k), so its decisions need no addition.
        entry = data.StructLayout({"data": 8 * W, "c": range(W + 1), "th": W, "last": 1,
                                   "meta": RxMeta})
        m.submodules.q = q = fifo.SyncFIFO(width=Shape.cast(entry).width, depth=self.DEPTH)
        # Reads in flight: issued (v1, info1), data being registered (v2, d2, info2). With a
        # pool of read latency 2, one more stage (va, infoa) sits between them.
        v1, v2 = Signal(), Signal()
        info1, info2 = Signal(info), Signal(info)
        d2 = Signal(8 * W)
        if self.read_latency == 1:
            m.d.sync += [v2.eq(v1), info2.eq(info1)]
        else:
            va, infoa = Signal(), Signal(info)
            m.d.sync += [va.eq(v1), infoa.eq(info1), v2.eq(va), info2.eq(infoa)]
        m.d.sync += d2.eq(self.r_data)
        # ``used`` = q.level + v1 + v2, kept as a counter so that ``credit`` is one compare of a
        # register (it gates the reads and, through the job's end, the load of ``job``).
        # ``credit`` itself is registered from the counter's next value.
        used = Signal(range(self.DEPTH + 2 + self.read_latency))
        issued = Signal()
        credit = Signal(init=1)
        used_n = Signal.like(used)
        m.d.comb += used_n.eq(used + issued - q.r_en)
        m.d.sync += [used.eq(used_n), credit.eq(lt_const(used_n, self.DEPTH - 1))]

        # The current segment, computed when it starts: first beat's start lane ``s0`` (0
        # for a segment that starts the frame), the beats ``left`` after the current one
        # (counted down as beats are read) and ``seg_done``, registered: the current beat is
        # the last (no compare of ``beat`` in front of the state machine and the job's load),
        # the last beat's byte count ``c_last``, whether it is the job's last segment (a
        # pass-through's only one), and ``pend``, registered: the current beat ends its page.
        s0 = Signal(range(W))
        at_first = Signal()
        left = Signal(16)
        seg_done = Signal()
        c_last = Signal(range(W + 1))
        last_seg = Signal()
        pend = Signal()
        # Patch positions of the job: beat and 16-bit word of each field.
        pbeat = [Signal(16, name=f"pbeat{i}") for i in range(NP)]
        pword = [Signal(range(NW), name=f"pword{i}") for i in range(NP)]
        # The job: ``jp`` copies the offered job in every cycle; ``start_r`` (the cycle after a
        # start) loads ``job`` and the patch positions from it. In that cycle ``job`` still
        # holds the previous job, so what the first beat's read needs of the job (its kind
        # and metadata) is taken from ``jp``.
        jp = Signal(self.jlayout)
        start_r = Signal()
        m.d.sync += [jp.eq(self.j.payload), start_r.eq(0)]
        with m.If(start_r):
            m.d.sync += job.eq(jp)
            for i, (at, _, _) in enumerate(patch_list(jp)):
                at = Value.cast(at)[:17]
                m.d.sync += [pbeat[i].eq(at[lw:]), pword[i].eq(at[1:lw] if lw > 1 else 0)]
        jcur_kind = Mux(start_r, jp.kind, job.kind)

        cur = Signal(info)
        cur_end = Signal(range(W + 1))                # cur.s + cur.c
        m.d.comb += [
            cur_end.eq(Mux(seg_done, c_last, W)),
            cur.s.eq(Mux(at_first, s0, 0)),
            cur.c.eq(cur_end - Mux(at_first, s0, 0)),
            cur.last.eq(seg_done & last_seg),
            cur.patch.eq((jcur_kind == JOB_AGG) & (seg == 0) & ~start_r),
            cur.meta.eq(Mux(start_r, jp.meta, job.meta)),
        ]
        m.d.comb += cur.lm.eq(Cat(le_const(cur.s, j) & gt_const(cur_end, j) for j in range(W)))
        psel = []
        for i, (_, _, en) in enumerate(patch_list(job)):
            hit = cur.patch & en & (beat == pbeat[i])
            psel += [hit & (pword[i] == w) for w in range(NW)]
        m.d.comb += cur.psel.eq(Cat(*psel))

        pb = (self.page_beats - 1).bit_length()
        seg_first = Signal(range(self.pages))
        # The job is a drop: a register loaded at the start (``jcur_kind`` == JOB_DROP in every
        # READ cycle), as it gates the reads and every register the READ state loads.
        drop = Signal()
        page_end = pend
        PB_LAST = (1 << pb) - 1 if pb else 0
        m.d.comb += [self.r_page.eq(page), self.r_beat.eq(beat[:pb]),
                     self.link_page.eq(page)]
        # (``info1`` is loaded in every cycle: it matters only with ``v1``.)
        m.d.sync += [v1.eq(0), info1.eq(cur)]

        # The next segment's first page is read as soon as a segment starts (its first page
        # may be freed and reused before the segment ends): the link tables are read at
        # ``page`` every cycle, so in the segment's first READ cycle they are read at its first
        # page (``page`` changes only at a start, a page link or a segment link), and the
        # data is there one cycle later (``grab2``; a segment link in that very cycle takes
        # it straight from the table).
        next_seg = Signal(range(self.pages))
        grab, grab2 = Signal(), Signal()
        m.d.sync += [grab.eq(0), grab2.eq(grab)]
        with m.If(grab2):
            m.d.sync += next_seg.eq(self.slink_data)
        next_seg_now = Mux(grab2, self.slink_data, next_seg)

        # The bounds of an aggregate's next segment (the one a segment link starts), computed
        # ahead from ``job`` and ``seg`` in free-running registers, so that SLINK only selects
        # between two precomputed sets: ``nb_last`` = it is the job's last segment (ready one
        # cycle after ``seg`` changes, and a segment link follows no sooner), ``nb_m`` /
        # ``nb_l``: a segment of ``mss`` / ``last_pl`` payload bytes (ready four cycles after
        # a start, ``job`` being loaded one cycle after it; the first segment, with its
        # headers, takes more cycles than that).
        nb_last = Signal()
        nb_pend = Signal()
        m.d.sync += [nb_last.eq(seg + 2 >= job.count),
                     nb_pend.eq((job.hdr >> lw)[:pb] == PB_LAST if pb else 1)]

        def next_bounds(size, name):
            end = Signal(17, name=f"nb_{name}_end")
            m.d.sync += end.eq(job.hdr + size - 1)
            last, first = (end[lw:], job.hdr[lw:]) if lw else (end, job.hdr)
            out = {"left": Signal(16, name=f"nb_{name}_left"),
                   "done": Signal(name=f"nb_{name}_done"),
                   "c": Signal(range(W + 1), name=f"nb_{name}_c")}
            m.d.sync += [out["left"].eq(last - first), out["done"].eq(last == first),
                         out["c"].eq(end[:lw] + 1 if lw else 1)]
            return out
        nb_m = next_bounds(job.mss, "m")
        nb_l = next_bounds(job.last_pl, "l")

        def start(nxt):
            # The first segment: [0, end] of its first page.
            m.d.sync += [start_r.eq(1), drop.eq(nxt.kind == JOB_DROP),
                         page.eq(nxt.page), seg_first.eq(nxt.page), beat.eq(0),
                         seg.eq(0), grab.eq(1), pend.eq(pb == 0),
                         s0.eq(0), at_first.eq(1),
                         left.eq(nxt.end[lw:]), seg_done.eq(nxt.end[lw:] == 0),
                         c_last.eq(nxt.end[:lw] + 1),
                         last_seg.eq((nxt.kind == JOB_RAW) | le_const(nxt.count, 1))]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.j.ready.eq(1)
                with m.If(self.j.valid):
                    start(self.j.payload)
                    m.next = "READ"
            with m.State("READ"):
                with m.If(credit | drop):
                    m.d.comb += [self.r_en.eq(~drop), issued.eq(~drop)]
                    m.d.sync += [v1.eq(~drop), beat.eq(beat + 1),
                                 at_first.eq(0), left.eq(left - 1), seg_done.eq(left == 1),
                                 pend.eq(beat[:pb] == PB_LAST - 1 if pb else 1)]
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
                        m.next = "FLINK"
            with m.State("FLINK"):
                # The frame continues in the page linked from the one just read.
                m.d.sync += page.eq(self.flink_data)
                m.next = "READ"
            with m.State("SLINK"):
                # The next segment starts in the page read from the segment link table; its
                # bounds were computed ahead (``nb_*``).
                m.d.sync += [page.eq(next_seg_now), seg_first.eq(next_seg_now), seg.eq(seg + 1),
                             beat.eq(job.hdr >> lw), grab.eq(1), pend.eq(nb_pend),
                             s0.eq(job.hdr[:lw] if lw else 0), at_first.eq(1),
                             left.eq(Mux(nb_last, nb_l["left"], nb_m["left"])),
                             seg_done.eq(Mux(nb_last, nb_l["done"], nb_m["done"])),
                             c_last.eq(Mux(nb_last, nb_l["c"], nb_m["c"])),
                             last_seg.eq(nb_last)]
                m.next = "READ"

        # Read data, registered (d2, info2): the first segment of an aggregate gets its
        # header fields (selected per 16-bit word when the read was issued); any other beat
        # keeps lanes [s, s + c), moved down to lane 0. Every patched field sits at an even
        # offset (the engine merges only frames whose headers start at even offsets), so it
        # never straddles two beats. The field values are the job's as they were one cycle
        # after the read was issued (with read latency 2 a copy delayed by a cycle, without
        # an enable: the job may change between the read and the patch).
        if self.read_latency == 1:
            pvals = [Value.cast(v)[:16] for _, v, _ in patch_list(job)]
        else:
            pvals = [Signal(16, name=f"pval{i}") for i in range(NP)]
            m.d.sync += [pv.eq(Value.cast(v)[:16]) for pv, (_, v, _) in zip(pvals, patch_list(job))]
        lmask = Cat(info2.lm[j].replicate(8) for j in range(W))
        d2m = Signal(8 * W)
        m.d.comb += d2m.eq(d2 & lmask)
        words = []
        for w in range(NW):
            orig = d2m.word_select(w, 16)
            sel = [info2.psel[i * NW + w] for i in range(NP)]
            repl = 0
            for i, v in enumerate(pvals):
                repl = repl | Mux(sel[i], Cat(v[8:16], v[0:8]), 0)
            words.append(Mux(Cat(*sel).any(), repl, orig))
        patched = Cat(*words)
        aligned = d2m >> (info2.s * 8)
        qin = Signal(entry)
        m.d.comb += [qin.data.eq(Mux(info2.patch, patched, aligned)), qin.c.eq(info2.c),
                     qin.th.eq(above(info2.c, W)),
                     qin.last.eq(info2.last), qin.meta.eq(info2.meta),
                     q.w_data.eq(qin), q.w_en.eq(v2)]

        # Packer: bytes [s, s+c) of each queued word, appended behind the ``n`` held bytes.
        # Whether the word completes a beat (``ge``: n + c >= W), exactly (``eq``) or with
        # bytes left over (``gt``) is one bit of its thermometer selected by ``n`` (a
        # register); the output registers are loaded whenever a word is taken (their content
        # matters only with ``o.valid``), so those flags reach only ``o.valid``, ``last``,
        # ``tail``, ``acc`` and ``n``, not the enables of the wide output registers.
        qout = Signal(entry)
        m.d.comb += qout.eq(q.r_data)
        acc = Signal(8 * W)
        n = Signal(range(W))
        tail = Signal()
        tail_meta = Signal(RxMeta)
        advance = ~self.o.valid | self.o.ready
        d = qout.data
        shifted = Signal(16 * W)
        m.d.comb += shifted.eq(d << (n * 8))
        combined = Signal(16 * W)
        m.d.comb += combined.eq(shifted | acc)
        total = Signal(range(2 * W + 1))
        m.d.comb += total.eq(n + qout.c)
        thx = Cat(qout.th, Const(0, 1))          # thx[k] = c > k, for k = 0..W
        ge, gt = Signal(), Signal()
        m.d.comb += [ge.eq(Array(thx[W - 1 - k] for k in range(W))[n]),
                     gt.eq(Array(thx[W - k] for k in range(W))[n])]

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
                # ge: a full beat (last if the word is the packet's last and nothing is left
                # over, else the rest waits in ``acc``, sent next as the tail if last); not
                # ge: the packet's last word gives a short beat, any other word is held.
                m.d.sync += [self.o.valid.eq(ge | qout.last),
                             self.o.payload.data.eq(combined[:8 * W]),
                             self.o.payload.keep.eq(keep_of(total)),
                             self.o.payload.last.eq(qout.last & ~gt),
                             self.o.payload.meta.eq(qout.meta),
                             tail.eq(qout.last & gt), tail_meta.eq(qout.meta)]
                with m.If(ge):
                    m.d.sync += [acc.eq(combined[8 * W:]), n.eq(total - W)]
                with m.Elif(qout.last):
                    m.d.sync += [acc.eq(0), n.eq(0)]
                with m.Else():
                    m.d.sync += [acc.eq(combined[:8 * W]), n.eq(total)]
            with m.Else():
                m.d.sync += self.o.valid.eq(0)
        return m
