"""RSC ingress: store each arriving frame in a pool page and describe it for the decision stage.

Per frame it produces one *descriptor*: the parse record, the page, the frame length, whether
the frame was too long for a page, the TCP option bytes, and four one's-complement sums taken
while the frame streams by (TCP segment, TCP payload, outer UDP datagram, opaque bytes after the
UDP header). Nothing is decided here.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .capture import capture_region, capture_selects
from .checksum import ChecksumAccumulator
from .layouts import parsed_signature
from .rsc_layouts import OPT_BYTES, flow_tag, key_words, rsc_record, rsc_record_layout
from .stream import check_width, keep_count

__all__ = ["RscIngress", "desc_layout"]


def desc_layout(pages, opaque_bytes=64):
    return data.StructLayout({
        "rec": rsc_record_layout(opaque_bytes),   #: what the decision uses of the record
        "page": range(pages),
        "length": 17,          #: frame bytes
        "oversize": 1,         #: longer than max_frame: stored only in part
        "opts": 8 * OPT_BYTES,  #: TCP option bytes, wire order, zero past the options
        "s_tcp": 16, "s_pay": 16, "s_udp": 16, "s_mid": 16,
    })


class RscIngress(wiring.Component):
    """Frames in (``i``, one beat per cycle), descriptors out, page writes to the pool.

    A frame occupies a chain of pages: its first page, then one more every ``page_bytes``,
    each linked from the previous one through ``fl_*`` (the frame-link table). Frames longer
    than ``max_frame`` bytes are consumed but stored only up to ``max_frame`` and flagged
    ``oversize`` (the decision stage drops them).

    Descriptors wait in ``SLOTS`` slots of distributed RAM. ``d`` offers the oldest waiting
    one as its slot number and the flow tag of its key (:func:`hw.rsc_layouts.flow_tag`,
    computed here as it is stored); taking it frees its place in the queue of ``depth``, but
    not its slot: the decision stage reads the descriptor itself, as long as it needs it,
    through ``sel`` -> ``sel_data`` (asynchronous: no register, no enable between the
    distributed RAM and the reader's own registers). A slot is rewritten only ``SLOTS -
    depth`` frames after it was taken.

    Latency: a descriptor is offered 5 cycles after the frame's last beat (two registered
    copies of each beat: the first for the region compares, the second for the option capture
    and the checksum accumulators; the record part is written one cycle after the last beat,
    from registers, the option bytes three cycles after it, from their capture registers).
    Its sums (``s_*``) are written in the cycle it is first offered, so they read correctly
    from the next cycle on: a reader must not use them in the cycle it takes the descriptor.
    ``i.ready`` is low only at a beat that starts a page when no pool page is free, or at the
    first beat of a frame when ``depth`` descriptors are waiting. Reset forgets a frame in
    progress and the waiting descriptors (reset the pool with it).
    """

    def __init__(self, width=8, pages=32, page_bytes=2048, opaque_bytes=64, depth=4,
                 max_frame=2048):
        self.width = check_width(width)
        self.pages, self.page_bytes, self.depth = pages, page_bytes, depth
        self.page_beats = page_bytes // width
        self.opaque_bytes = opaque_bytes
        self.max_frame = max_frame
        self.dlayout = desc_layout(pages, opaque_bytes)
        #: Descriptor slots: the waiting ones and the one being decided, a power of 2.
        self.slots = 1 << depth.bit_length()
        super().__init__({
            "i": In(parsed_signature(width, opaque_bytes)),
            "d": Out(stream.Signature(data.StructLayout({"tag": 32,
                                                         "index": range(self.slots)}))),
            "sel": In(range(self.slots)), "sel_data": Out(self.dlayout),
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
        lw = (W - 1).bit_length()
        # What is known at the last beat (record, page, length, tag) is stored in ``dq`` one
        # cycle later, from registers; the option bytes (``oq``) and the sums (``sq``) follow a
        # few cycles later. Each has its own write pointer; ``rp`` is the oldest waiting slot.
        qlayout = data.StructLayout({"rec": rsc_record_layout(self.opaque_bytes),
                                     "page": range(self.pages), "length": 17, "oversize": 1})
        S = self.slots
        m.submodules.dq = dq = Memory(shape=qlayout, depth=S, init=[])
        m.submodules.tq = tq = Memory(shape=32, depth=S, init=[])
        m.submodules.oq = oq = Memory(shape=8 * OPT_BYTES, depth=S, init=[])
        m.submodules.sq = sq = Memory(shape=64, depth=S, init=[])
        dq_w, tq_w = dq.write_port(), tq.write_port()
        oq_w, sq_w = oq.write_port(), sq.write_port()
        wp_d, wp_o, wp_s, rp = (Signal(range(S), name=n) for n in ("wp_d", "wp_o", "wp_s", "rp"))
        m.d.comb += [dq_w.addr.eq(wp_d), tq_w.addr.eq(wp_d), oq_w.addr.eq(wp_o),
                     sq_w.addr.eq(wp_s)]
        # Descriptors waiting (written or about to be: counted at the last beat, as a FIFO
        # written then would count them).
        level = Signal(range(self.depth + 1))

        # Stage 0: take the beat, store it, describe the frame at its last beat.
        in_pkt = Signal()
        page = Signal(range(self.pages))
        first_page = Signal(range(self.pages))
        beat = Signal(16)
        pb = (self.page_beats - 1).bit_length()

        first = ~in_pkt
        # Whether this beat is stored, whether it also starts a page, and whether a frame may
        # start (fewer than ``depth`` descriptors wait): registered from the next values of
        # ``beat`` and ``level``, so that ``i.ready``, the allocation, the frame link's and the
        # pool's write enables are a few gates from registers (no compare of ``beat``).
        store, new_page, room = Signal(init=1), Signal(init=1), Signal(init=1)
        beat_n = Signal(16)
        level_n = Signal(range(self.depth + 1))
        m.d.sync += [store.eq(beat_n * W < self.max_frame),
                     new_page.eq((beat_n * W < self.max_frame) & (beat_n[:pb] == 0)),
                     room.eq(level_n != self.depth)]
        m.d.comb += self.i.ready.eq((in_pkt | room) & (~new_page | self.alloc_ok))
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
        m.d.comb += beat_n.eq(Mux(take, Mux(p.last, 0, beat + 1), beat))
        m.d.sync += beat.eq(beat_n)
        with m.If(take):
            m.d.sync += [in_pkt.eq(~p.last), page.eq(cur_page)]
            with m.If(first):
                m.d.sync += first_page.eq(self.alloc_page)
        frame_page = Mux(first, self.alloc_page, first_page)

        desc = Signal(qlayout)
        length = Signal(17)
        m.d.comb += [
            length.eq(beat * W + keep_count(p.keep, W)),
            desc.rec.eq(rsc_record(rec)),
            desc.page.eq(frame_page),
            desc.length.eq(length),
            desc.oversize.eq(length > self.max_frame),
        ]
        # (Registered without an enable, so that the wide write port is driven by registers.)
        rec_d = desc.rec
        tunnel = rec_d.off.inner_l3 != rec_d.off.l3
        m.d.sync += [
            dq_w.data.eq(desc), dq_w.en.eq(take & p.last),
            tq_w.data.eq(flow_tag(key_words(tunnel, rec_d.cls.profile, rec_d.outer.src,
                                            rec_d.outer.dst, rec_d.inner.src, rec_d.inner.dst,
                                            rec_d.tcp.sport, rec_d.tcp.dport, rec_d.cls.flow))),
        ]
        m.d.comb += tq_w.en.eq(dq_w.en)

        # Stage 1 (registered): the beat again, with the region bounds of its frame computed
        # from the record, for the sums and the option capture (no addition on their path).
        off = rec.off
        v1, first1, last1 = Signal(), Signal(), Signal()
        beat1 = Signal(16)
        keep1 = Signal(W)
        d1 = Signal(8 * W)
        m.d.sync += [v1.eq(take), first1.eq(first), last1.eq(p.last), beat1.eq(beat),
                     keep1.eq(p.keep),
                     d1.eq(p.data & Cat(p.keep[j].replicate(8) for j in range(W)))]
        bounds = {
            "l4": off.l4, "ipend": off.inner_l3 + rec.inner.total_len,
            "payload": off.payload, "opaque": off.opaque,
            "oend": off.l3 + rec.outer.total_len, "mid": off.opaque + 8,
            "inner_l3": off.inner_l3, "ostart": off.l4 + 20,
        }
        b = {}
        for name, value in bounds.items():
            b[name] = Signal(17, name=f"b_{name}")
            m.d.sync += b[name].eq(value)
        # Option byte k is kept when k < doff * 4 - 20 (the option bytes of the header).
        nopt = Signal(signed(12))
        m.d.sync += nopt.eq(off.payload - off.l4 - 20)

        pos = [Cat(Const(j, lw), beat1) if lw else beat1 for j in range(W)]

        def region(lo, hi):
            return Cat((pos[j] >= lo) & (pos[j] < hi) & keep1[j] for j in range(W))

        # Stage 2 (registered): the beat once more, with its region masks (the compares of
        # stage 1), for the checksum accumulators and the option capture.
        v2, first2, last2 = Signal(), Signal(), Signal()
        d2 = Signal(8 * W)
        m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1), d2.eq(d1)]
        masks = {
            "s_tcp": region(b["l4"], b["ipend"]),
            "s_pay": region(b["payload"], b["ipend"]),
            "s_udp": region(b["opaque"], b["oend"]),
            "s_mid": region(b["mid"], b["inner_l3"]),
        }
        # The sums are written to ``sq`` the cycle after the descriptor is offered (``d.valid``
        # counts them written one cycle earlier, through ``wp_sa``, as before stage 2 was
        # added): the decision stage reads them no sooner than the cycle after its accept
        # (its stage a), so it never sees a slot without its sums.
        last_d = Signal(ChecksumAccumulator.LATENCY + 1)
        m.d.sync += last_d.eq(Cat(v1 & last1, last_d))
        sums = []
        for name, mask in masks.items():
            mask2 = Signal(W, name=f"mask_{name}")
            m.d.sync += mask2.eq(mask)
            acc = ChecksumAccumulator(W)
            m.submodules[f"acc_{name}"] = acc
            m.d.comb += [acc.i_valid.eq(v2), acc.i_first.eq(first2), acc.i_data.eq(d2),
                         acc.i_mask.eq(mask2)]
            sums.append(acc.o_sum)
        m.d.comb += [sq_w.data.eq(Cat(*sums)), sq_w.en.eq(last_d[-1])]

        # TCP option bytes: byte k sits at l4 + 20 + k (before the payload). Captured in a
        # stage of their own (stage 2), whose byte hits and lane selects are registered from
        # stage 1 (:func:`hw.capture.capture_selects`), and written to ``oq`` from the byte
        # registers one cycle after the last beat left stage 2 (stage 3), masked by the option
        # count: no subtraction, compare or lane multiplexer in front of the queue's write port.
        # (Still two cycles before the sums, which decide when the descriptor is offered.)
        rel1 = Signal(signed(18), name="opt_rel1")
        m.d.comb += rel1.eq(beat1 - b["ostart"][lw:])
        pre = capture_selects(m, width=W, count=OPT_BYTES, start_low=b["ostart"][:lw],
                              rel=rel1, name="opt_sel")
        v3 = Signal()
        omask2, omask3 = Signal(OPT_BYTES), Signal(OPT_BYTES)
        # (nopt > k, written as a sign, a high part and a 6-bit compare per byte: the plain
        # signed compares were a 9-level chain at ee2655e's placement.)
        nopt_pos = ~nopt[-1]
        nopt_big = nopt[6:-1].any()
        assert OPT_BYTES <= 64
        m.d.sync += [omask2.eq(Cat(nopt_pos & (nopt_big | (nopt[:6] > k))
                                   for k in range(OPT_BYTES))),
                     v3.eq(v2 & last2), omask3.eq(omask2)]
        lanes = [d2.word_select(j, 8) for j in range(W)]
        opt_regs, _ = capture_region(m, width=W, count=OPT_BYTES, start=None, beat=None,
                                     lanes=lanes, take=v2, first=first2, pre=pre, name="opt")
        m.d.comb += [oq_w.data.eq(Cat(*opt_regs) & Cat(omask3[k].replicate(8)
                                                         for k in range(OPT_BYTES))),
                     oq_w.en.eq(v3)]

        # The head (slot ``rp``) is offered once all three parts are stored; any slot is read
        # through ``sel``.
        # (``d.valid`` is registered from the pointers' next values: the decision's accept
        # logic sits far from the write pointers.)
        take_d = self.d.valid & self.d.ready
        tq_r = tq.read_port(domain="comb")
        m.d.comb += [tq_r.addr.eq(rp), self.d.payload.tag.eq(tq_r.data),
                     self.d.payload.index.eq(rp)]
        rp_n = (rp + take_d)[:len(rp)]
        wp_sa = Signal(range(S))
        wp_n = [(wp + en)[:len(wp)] for wp, en in ((wp_d, dq_w.en), (wp_o, oq_w.en),
                                                   (wp_sa, last_d[-2]))]
        m.d.sync += [wp.eq(n) for wp, n in zip((wp_d, wp_o, wp_sa), wp_n)]
        m.d.sync += wp_s.eq(wp_s + sq_w.en)
        m.d.comb += level_n.eq(level + (take & p.last) - take_d)
        m.d.sync += [rp.eq(rp_n), level.eq(level_n),
                     self.d.valid.eq(Cat(rp_n != wp for wp in wp_n).all())]
        dq_r, oq_r, sq_r = (q.read_port(domain="comb") for q in (dq, oq, sq))
        out = Signal(qlayout)
        m.d.comb += [
            dq_r.addr.eq(self.sel), oq_r.addr.eq(self.sel), sq_r.addr.eq(self.sel),
            out.eq(dq_r.data),
            self.sel_data.rec.eq(out.rec), self.sel_data.page.eq(out.page),
            self.sel_data.length.eq(out.length), self.sel_data.oversize.eq(out.oversize),
            self.sel_data.opts.eq(oq_r.data),
            self.sel_data.s_tcp.eq(sq_r.data[0:16]),
            self.sel_data.s_pay.eq(sq_r.data[16:32]),
            self.sel_data.s_udp.eq(sq_r.data[32:48]),
            self.sel_data.s_mid.eq(sq_r.data[48:64]),
        ]
        return m
