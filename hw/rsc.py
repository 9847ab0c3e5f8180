"""RSC engine: receive segment coalescing of plain and tunneled TCP (DESIGN.md section 5).

Three stages around a shared page pool (hw/pool.py):

* ingress (hw/rsc_ingress.py) stores every frame in a page, one beat per cycle, and describes
  it (parse record, length, TCP options, checksums of its regions);
* the decision stage (this file) looks the flow up in the CAM (hw/cam.py), applies the merge
  and flush rules of :mod:`tunnelnic.model.rsc` (the executable spec), updates the context
  table and queues emit jobs;
* the emitter (hw/rsc_emit.py) sends pass-through frames unchanged and builds aggregates from
  their page chain, patching lengths, checksums, ACK, window and flags on the fly.
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .cam import TagCam
from .checksum import fold, ones_add, swap16, wide_sum, csum_update
from .layouts import (EthFields, Kind, Offsets, OFFSET_BITS, TCP_ACK, TCP_PSH,
                      parsed_signature)
from .pool import PagePool
from .rsc_emit import JOB_AGG, JOB_DROP, JOB_RAW, RscEmitter, job_layout
from .rsc_ingress import RscIngress
from .rsc_layouts import (OPT_BYTES, RxMeta, STAT_NAMES, flow_tag, key_words,
                          rsc_stats_layout)
from .stream import check_width, packet_layout

__all__ = ["RscEngine", "ctx_layout"]

GRE_PROTO = 47
GRE_CS_BITS = 0x90
ID_NONE, ID_INC, ID_FIXED = 0, 1, 2


def ctx_layout(pages, opaque_bytes):
    return data.StructLayout({
        "key": 7 * 32, "eth": EthFields, "off": Offsets, "opaque_len": OFFSET_BITS,
        "opaque": 8 * opaque_bytes, "opts": 8 * OPT_BYTES,
        "o_ttl": 8, "o_tos": 8, "o_df": 1, "i_ttl": 8, "i_tos": 8, "i_df": 1,
        "o_id": 16, "i_id": 16, "o_csum": 16, "i_csum": 16, "first_otl": 16, "first_itl": 16,
        "tunnel": 1, "udp": 1, "udp_csum": 1, "profile": 3, "kind": 2,
        "s_mid": 16, "hdr_base": 16, "flags": 8, "doff": 4,
        "mss": 16, "head": range(pages), "tail": range(pages),
        "next_seq": 32, "count": 8, "otl": 17, "ack": 32, "win": 16, "psh": 1,
        "id_mode": 2, "last_pl": 16, "s_pay": 16, "start": 16,
    })


def _w16(v):
    v = Value.cast(v)
    return [v[16:32], v[0:16]]


class RscEngine(wiring.Component):
    """The RSC engine.

    Parameters
    ----------
    width : datapath bytes per beat (4, 8 or 16).
    contexts : N, flow contexts (CAM entries), 1..256.
    pages, page_bytes : the pool: ``pages`` pages of ``page_bytes`` bytes (default 144 x 512 =
        72 KB: one 64 KB aggregate of 1460-byte segments, 3 pages each, plus room).
    max_frame : longest frame stored (longer ones are dropped and counted).
    cycles_per_us : clock cycles per microsecond (the timeout's time base).
    opaque_bytes : the parser's opaque capture.

    Ports
    -----
    i : parser output (:func:`hw.layouts.parsed_signature`).
    o : packets for the host, ``meta`` = :class:`hw.rsc_layouts.RxMeta`.
    enable, timeout_us (0 = none), max_bytes (cap of the outer IPv4 total length), max_segs,
    flush_all (strobe): configuration.
    stats : per-cycle increments (:data:`hw.rsc_layouts.STAT_NAMES`), registered.
    dbg_index -> dbg_valid, dbg_tag, dbg_seq, dbg_count, dbg_mss, dbg_key: a read port onto
        a copy of the context table (one cycle latency): CAM tag, expected sequence number,
        segments merged, MSS, and the flow key as the seven words of
        :func:`hw.rsc_layouts.key_words`. Only ``dbg_valid`` is meaningful for a context
        without an open aggregate (the others keep its last values).

    Throughput: ingress takes one beat per cycle and deasserts ``i.ready`` only at the first
    beat of a frame, when no page is free or 4 frames wait for the decision stage (which needs
    4 to 8 cycles per frame). Backpressure on ``o`` propagates through the emitter to the
    pool, and from there to ``i``. Reset empties the table and the pool.
    """

    def __init__(self, width=8, *, contexts=32, pages=144, page_bytes=512, max_frame=2048,
                 cycles_per_us=125, opaque_bytes=64):
        self.width = check_width(width)
        if not 1 <= contexts <= 256:
            raise ValueError(f"contexts must be 1..256, not {contexts}")
        PagePool.check(width, pages, page_bytes)
        if page_bytes < 512:
            raise ValueError(f"page_bytes must be at least 512 (a segment's headers must fit "
                             f"its first page), not {page_bytes}")
        if max_frame % width or not 64 <= max_frame <= 16384:
            raise ValueError(f"max_frame must be a multiple of the width in 64..16384, "
                             f"not {max_frame}")
        #: Flush the oldest context when fewer pages are free (a frame's worth and some).
        self.reserve = -(-max_frame // page_bytes) + 2
        if pages < 2 * self.reserve:
            raise ValueError(f"the pool needs at least {2 * self.reserve} pages for "
                             f"{max_frame}-byte frames, not {pages}")
        if cycles_per_us < 1:
            raise ValueError(f"cycles_per_us must be positive, not {cycles_per_us}")
        self.contexts, self.pages, self.page_bytes = contexts, pages, page_bytes
        self.max_frame = max_frame
        self.cycles_per_us, self.opaque_bytes = cycles_per_us, opaque_bytes
        ci = range(max(contexts, 2))
        super().__init__({
            "i": In(parsed_signature(width, opaque_bytes)),
            "o": Out(stream.Signature(packet_layout(width, RxMeta))),
            "enable": In(1), "timeout_us": In(16), "max_bytes": In(16), "max_segs": In(8),
            "flush_all": In(1),
            "stats": Out(rsc_stats_layout()),
            "dbg_index": In(ci), "dbg_valid": Out(1), "dbg_tag": Out(32), "dbg_seq": Out(32),
            "dbg_count": Out(8), "dbg_mss": Out(16), "dbg_key": Out(7 * 32),
        })

    def elaborate(self, platform):
        m = Module()
        W, N, P = self.width, self.contexts, self.pages
        m.submodules.pool = pool = PagePool(W, P, self.page_bytes)
        m.submodules.ing = ing = RscIngress(W, P, self.page_bytes, self.opaque_bytes,
                                                 max_frame=self.max_frame)
        m.submodules.emit = emit = RscEmitter(W, P, self.page_bytes)
        m.submodules.cam = cam = TagCam(N, 32)
        wiring.connect(m, wiring.flipped(self.i), ing.i)
        wiring.connect(m, emit.o, wiring.flipped(self.o))
        m.d.comb += [
            ing.alloc_ok.eq(pool.alloc_ok), ing.alloc_page.eq(pool.alloc_page),
            pool.alloc.eq(ing.alloc),
            pool.w_en.eq(ing.w_en), pool.w_page.eq(ing.w_page), pool.w_beat.eq(ing.w_beat),
            pool.w_data.eq(ing.w_data),
            pool.r_en.eq(emit.r_en), pool.r_page.eq(emit.r_page), pool.r_beat.eq(emit.r_beat),
            emit.r_data.eq(pool.r_data),
            pool.free.eq(emit.free), pool.free_page.eq(emit.free_page),
        ]
        # Page links. Frame links: flink[p] = the frame's page after p (written by ingress).
        # Segment links: link[p] = the first page of the segment after the one starting at p.
        m.submodules.flink = flink = Memory(shape=range(P), depth=P, init=[])
        flink_w = flink.write_port()
        flink_r = flink.read_port(domain="sync")
        m.d.comb += [flink_w.addr.eq(ing.fl_page), flink_w.data.eq(ing.fl_next),
                     flink_w.en.eq(ing.fl_en),
                     flink_r.addr.eq(emit.link_page), flink_r.en.eq(emit.link_en),
                     emit.flink_data.eq(flink_r.data)]
        m.submodules.link = link = Memory(shape=range(P), depth=P, init=[])
        link_w = link.write_port()
        link_r = link.read_port(domain="sync")
        m.d.comb += [link_r.addr.eq(emit.link_page), link_r.en.eq(emit.link_en),
                     emit.slink_data.eq(link_r.data)]

        # Jobs for the emitter.
        jl = job_layout(P)
        m.submodules.jq = jq = fifo.SyncFIFO(width=Shape.cast(jl).width, depth=4)
        m.d.comb += [emit.j.payload.eq(jq.r_data), emit.j.valid.eq(jq.r_rdy),
                     jq.r_en.eq(emit.j.ready)]

        # Context table (everything but the CAM tags and allocation stamps).
        cl = ctx_layout(P, self.opaque_bytes)
        m.submodules.ctx = ctxm = Memory(shape=cl, depth=N, init=[])
        cw = ctxm.write_port()
        cr = ctxm.read_port(domain="sync", transparent_for=(cw,))
        # The debug view reads a small copy (tag, next seq, count), written with the table,
        # so the wide table keeps a single read port.
        dbg_l = data.StructLayout({"tag": 32, "seq": 32, "count": 8, "mss": 16,
                                   "key0": 4, "key": 6 * 32})
        m.submodules.dbg = dbgm = Memory(shape=dbg_l, depth=N, init=[])
        dw = dbgm.write_port()
        dr = dbgm.read_port(domain="sync")
        m.d.comb += [dw.addr.eq(cw.addr), dw.en.eq(cw.en),
                     dw.data.seq.eq(cw.data.next_seq), dw.data.count.eq(cw.data.count),
                     dr.addr.eq(self.dbg_index), self.dbg_seq.eq(dr.data.seq),
                     self.dbg_count.eq(dr.data.count), self.dbg_tag.eq(dr.data.tag)]
        # The flow key too (word 0 holds only profile and tunnel bits), and the MSS.
        m.d.comb += [dw.data.mss.eq(cw.data.mss), dw.data.key0.eq(cw.data.key[:4]),
                     dw.data.key.eq(cw.data.key[32:]), self.dbg_mss.eq(dr.data.mss),
                     self.dbg_key.eq(Cat(dr.data.key0, Const(0, 28), dr.data.key))]
        dbg_valid = Signal()
        m.d.sync += dbg_valid.eq(cam.valid.bit_select(self.dbg_index, 1))
        m.d.comb += self.dbg_valid.eq(dbg_valid)
        ctx = cr.data
        raddr = Signal(range(max(N, 2)))
        rsel = Signal(range(max(N, 2)))
        m.d.comb += [rsel.eq(raddr), cr.addr.eq(rsel)]

        # Allocation stamps: the oldest valid context is the eviction victim.
        stamp_now = Signal(32)
        stamps = Array(Signal(32, name=f"stamp{i}") for i in range(N))
        oldest = Signal(range(max(N, 2)))
        best_age = Const(0, 33)
        best = Const(0, range(max(N, 2)))
        for i in range(N):
            # One signal per step: reusing the expressions would make the tree exponential.
            age = Signal(33, name=f"age{i}")
            m.d.comb += age.eq(Mux(cam.valid[i], stamp_now - stamps[i], 0))
            better = Signal(name=f"older{i}")
            m.d.comb += better.eq(age > best_age)
            nb, na = Signal.like(best, name=f"best{i}"), Signal(33, name=f"best_age{i}")
            m.d.comb += [nb.eq(Mux(better, i, best)), na.eq(Mux(better, age, best_age))]
            best, best_age = nb, na
        m.d.comb += oldest.eq(best)

        # Time base.
        tick = Signal(range(self.cycles_per_us))
        now = Signal(16)
        m.d.sync += tick.eq(Mux(tick == self.cycles_per_us - 1, 0, tick + 1))
        with m.If(tick == self.cycles_per_us - 1):
            m.d.sync += now.eq(now + 1)

        # The packet being decided.
        cur = Signal(ing.dlayout)
        rec = cur.rec
        off = rec.off
        tunnel = Signal()
        m.d.comb += tunnel.eq(off.inner_l3 != off.l3)
        kwords = key_words(tunnel, rec.cls.profile, rec.outer.src, rec.outer.dst,
                           rec.inner.src, rec.inner.dst, rec.tcp.sport, rec.tcp.dport,
                           rec.cls.flow)
        key = Signal(7 * 32)
        m.d.comb += key.eq(Cat(*kwords))
        tag = Signal(32)
        m.d.sync += tag.eq(flow_tag(kwords))
        m.d.comb += dw.data.tag.eq(tag)
        m.d.comb += cam.lookup_tag.eq(tag)
        flow_pkt = rec.tcp.present & (off.l4 != 0)

        kind_ok = (rec.cls.kind == Kind.PLAIN) | (rec.cls.kind == Kind.TUNNEL)
        is_tun = rec.cls.kind == Kind.TUNNEL
        itl, otl = rec.inner.total_len, rec.outer.total_len
        opq = [rec.opaque.word_select(k, 8) for k in range(self.opaque_bytes)]

        def pseudo(src, dst, proto, length):
            return _w16(src) + _w16(dst) + [Const(proto, 16), length]

        tcp_len = Signal(16)
        m.d.comb += tcp_len.eq(itl - rec.inner.ihl * 4)
        tcp_ok = Signal()
        m.d.comb += tcp_ok.eq(fold(wide_sum([cur.s_tcp] + pseudo(rec.inner.src, rec.inner.dst,
                                                                  6, tcp_len))) == 0xFFFF)
        udp_len = Signal(16)
        m.d.comb += udp_len.eq(otl - rec.outer.ihl * 4)
        udp_ok = Signal()
        m.d.comb += udp_ok.eq(((opq[6] == 0) & (opq[7] == 0)) |
                              (fold(wide_sum([cur.s_udp] + pseudo(rec.outer.src,
                                                                  rec.outer.dst, 17,
                                                                  udp_len))) == 0xFFFF))
        csum_ok = Signal()
        m.d.comb += csum_ok.eq(kind_ok & rec.outer.csum_ok & rec.inner.csum_ok & tcp_ok &
                               ~(is_tun & rec.cls.udp & ~udp_ok))
        flags = rec.tcp.flags
        cand = Signal()
        m.d.comb += cand.eq(
            self.enable & kind_ok & rec.cls.rsc_ok &
            (cur.length == off.l3 + otl) & (off.inner_l3 + itl == cur.length) &
            ~off.inner_l3[0] & ~cur.oversize & (rec.payload_len != 0) &
            ((flags == TCP_ACK) | (flags == TCP_ACK | TCP_PSH)) & (rec.tcp.rsv == 0) &
            ~(is_tun & (rec.cls.opaque_len > self.opaque_bytes)) &
            ~(is_tun & (rec.outer.proto == GRE_PROTO) & ((opq[0] & GRE_CS_BITS) != 0)) &
            tcp_ok & ~(is_tun & rec.cls.udp & ~udp_ok))
        psh = (flags & TCP_PSH) != 0

        # Does ``cur`` continue the context read from the table?
        opq_c = [ctx.opaque.word_select(k, 8) for k in range(self.opaque_bytes)]
        opq_ok = []
        for k in range(self.opaque_bytes):
            ok = (opq[k] == opq_c[k]) | (rec.cls.opaque_len <= k)
            if 4 <= k < 8:
                ok = ok | rec.cls.udp     # UDP length and checksum: per packet
            opq_ok.append(ok)
        opq_eq = Cat(*opq_ok).all()
        d_i = Signal(16)
        d_o = Signal(16)
        m.d.comb += [d_i.eq(rec.inner.ident - ctx.i_id), d_o.eq(rec.outer.ident - ctx.o_id)]
        id_same = ~ctx.tunnel | (d_i == d_o)
        id_inc = id_same & (ctx.id_mode != ID_FIXED) & (d_i == ctx.count)
        id_fix = id_same & (ctx.id_mode != ID_INC) & (d_i == 0)
        outer_eq = ~ctx.tunnel | ((rec.outer.ttl == ctx.o_ttl) & (rec.outer.tos == ctx.o_tos) &
                                  (rec.outer.flags[1] == ctx.o_df))
        cont = Signal()
        m.d.comb += cont.eq(
            (off.as_value() == ctx.off.as_value()) & (rec.cls.opaque_len == ctx.opaque_len) &
            (rec.tcp.seq == ctx.next_seq) & (rec.payload_len <= ctx.mss) &
            (rec.eth.as_value() == ctx.eth.as_value()) &
            (rec.inner.ttl == ctx.i_ttl) & (rec.inner.tos == ctx.i_tos) &
            (rec.inner.flags[1] == ctx.i_df) & outer_eq & opq_eq &
            (cur.opts == ctx.opts) & (id_inc | id_fix))
        size_ok = ctx.otl + rec.payload_len <= self.max_bytes
        key_eq = ctx.key == key

        # A new context from ``cur``.
        fw = Cat(rec.tcp.flags, rec.tcp.rsv, rec.tcp.doff)
        newc = Signal(cl)
        m.d.comb += [
            newc.key.eq(key), newc.eth.eq(rec.eth), newc.off.eq(off),
            newc.opaque_len.eq(rec.cls.opaque_len), newc.opaque.eq(rec.opaque),
            newc.opts.eq(cur.opts),
            newc.o_ttl.eq(rec.outer.ttl), newc.o_tos.eq(rec.outer.tos),
            newc.o_df.eq(rec.outer.flags[1]), newc.i_ttl.eq(rec.inner.ttl),
            newc.i_tos.eq(rec.inner.tos), newc.i_df.eq(rec.inner.flags[1]),
            newc.o_id.eq(rec.outer.ident), newc.i_id.eq(rec.inner.ident),
            newc.o_csum.eq(rec.outer.csum), newc.i_csum.eq(rec.inner.csum),
            newc.first_otl.eq(otl), newc.first_itl.eq(itl),
            newc.tunnel.eq(tunnel), newc.udp.eq(rec.cls.udp), newc.udp_csum.eq(rec.cls.udp_csum),
            newc.profile.eq(rec.cls.profile), newc.kind.eq(rec.cls.kind),
            newc.s_mid.eq(cur.s_mid),
            newc.hdr_base.eq(fold(wide_sum([cur.s_tcp, ~cur.s_pay] +
                                           [~w for w in _w16(rec.tcp.ack)] +
                                           [~fw, ~rec.tcp.window, ~rec.tcp.csum]))),
            newc.flags.eq(rec.tcp.flags), newc.doff.eq(rec.tcp.doff),
            newc.mss.eq(rec.payload_len), newc.head.eq(cur.page), newc.tail.eq(cur.page),
            newc.next_seq.eq(rec.tcp.seq + rec.payload_len), newc.count.eq(1),
            newc.otl.eq(otl), newc.ack.eq(rec.tcp.ack), newc.win.eq(rec.tcp.window),
            newc.psh.eq(0), newc.id_mode.eq(ID_NONE), newc.last_pl.eq(rec.payload_len),
            newc.s_pay.eq(cur.s_pay), newc.start.eq(now),
        ]
        # The context after merging ``cur``.
        updc = Signal(cl)
        odd = ctx.count[0] & ctx.mss[0]
        m.d.comb += [
            updc.eq(ctx),
            updc.tail.eq(cur.page), updc.next_seq.eq(ctx.next_seq + rec.payload_len),
            updc.count.eq(ctx.count + 1), updc.otl.eq(ctx.otl + rec.payload_len),
            updc.ack.eq(rec.tcp.ack), updc.win.eq(rec.tcp.window), updc.psh.eq(ctx.psh | psh),
            updc.id_mode.eq(Mux(id_inc, ID_INC, ID_FIXED)), updc.last_pl.eq(rec.payload_len),
            updc.s_pay.eq(ones_add(ctx.s_pay, Mux(odd, swap16(cur.s_pay), cur.s_pay))),
        ]
        flush_after = psh | (rec.payload_len < ctx.mss) | (ctx.count + 1 >= self.max_segs)
        after_reason = Mux(psh, 0, Mux(rec.payload_len < ctx.mss, 1, 2))

        # Jobs: flush of context ``fc`` (slot ``fslot``), pass-through / drop of ``cur``.
        fc = Signal(cl)
        fslot = Signal(range(max(N, 2)))
        fjob = Signal(jl)
        grow = Signal(16)
        a_itl = Signal(16)
        a_tl = Signal(16)
        m.d.comb += [grow.eq(fc.otl - fc.first_otl), a_itl.eq(fc.first_itl + grow),
                     a_tl.eq(a_itl - 20)]
        a_ulen = Signal(16)
        m.d.comb += a_ulen.eq(fc.otl - (fc.off.opaque - fc.off.l3))
        fwo = Cat(fc.flags | Mux(fc.psh, TCP_PSH, 0), Const(0, 4), fc.doff)
        isrc, idst = fc.key[96:128], fc.key[128:160]
        osrc, odst = fc.key[32:64], fc.key[64:96]
        ps_tcp = fold(wide_sum(pseudo(isrc, idst, 6, a_tl)))
        tsum = fold(wide_sum([fc.hdr_base, fc.s_pay, fwo, fc.win, ps_tcp] + _w16(fc.ack)))
        fopq = [fc.opaque.word_select(k, 8) for k in range(8)]
        usum = fold(wide_sum(pseudo(osrc, odst, 17, a_ulen) +
                             [Cat(fopq[1], fopq[0]), Cat(fopq[3], fopq[2]), a_ulen, fc.s_mid,
                              ~ps_tcp]))
        ucs = Signal(16)
        m.d.comb += ucs.eq(Mux(fc.udp_csum, Mux(~usum == 0, 0xFFFF, ~usum), 0))
        single = fc.count == 1
        m.d.comb += [
            fjob.kind.eq(Mux(single, JOB_RAW, JOB_AGG)), fjob.page.eq(fc.head),
            fjob.length.eq(fc.off.payload + fc.mss), fjob.count.eq(fc.count),
            fjob.hdr.eq(fc.off.payload), fjob.mss.eq(fc.mss), fjob.last_pl.eq(fc.last_pl),
            fjob.l3.eq(fc.off.l3), fjob.opaque.eq(fc.off.opaque),
            fjob.inner_l3.eq(fc.off.inner_l3), fjob.l4.eq(fc.off.l4),
            fjob.tunnel.eq(fc.tunnel), fjob.udp.eq(fc.udp),
            fjob.otl.eq(fc.otl), fjob.ocs.eq(csum_update(fc.o_csum, fc.first_otl, fc.otl)),
            fjob.ulen.eq(a_ulen), fjob.ucs.eq(ucs),
            fjob.itl.eq(a_itl), fjob.ics.eq(csum_update(fc.i_csum, fc.first_itl, a_itl)),
            fjob.ack.eq(fc.ack), fjob.flags.eq(fwo), fjob.win.eq(fc.win),
            fjob.tcs.eq(~tsum),
            fjob.meta.agg.eq(~single), fjob.meta.segs.eq(fc.count), fjob.meta.mss.eq(fc.mss),
            fjob.meta.ctx.eq(fslot), fjob.meta.profile.eq(fc.profile),
            fjob.meta.kind.eq(fc.kind), fjob.meta.csum_ok.eq(1),
        ]
        pjob = Signal(jl)
        m.d.comb += [
            pjob.kind.eq(Mux(cur.oversize, JOB_DROP, JOB_RAW)), pjob.page.eq(cur.page),
            pjob.length.eq(Mux(cur.oversize, self.max_frame, cur.length)), pjob.count.eq(1),
            pjob.meta.segs.eq(1), pjob.meta.mss.eq(Mux(flow_pkt, rec.payload_len, 0)),
            pjob.meta.profile.eq(rec.cls.profile), pjob.meta.kind.eq(rec.cls.kind),
            pjob.meta.csum_ok.eq(csum_ok),
        ]

        # Statistics are computed here and registered (one cycle late, no comb path out).
        stats = Signal(rsc_stats_layout())
        m.d.sync += self.stats.eq(stats)
        slot = Signal(range(max(N, 2)))     # the context slot ``cur`` uses
        scan = Signal(range(max(N, 2)))     # timeout / flush-all scan position
        flush_req = Signal()
        with m.If(self.flush_all):
            m.d.sync += flush_req.eq(1)
        desc_valid = ing.d.valid

        def push(job):
            m.d.comb += [jq.w_data.eq(job), jq.w_en.eq(1)]

        def flush_ctx(value, at, reason):
            m.d.comb += [fc.eq(value), fslot.eq(at)]
            push(fjob)
            m.d.comb += [cam.we.eq(1), cam.w_index.eq(at), cam.w_valid.eq(0),
                         stats.aggregates_out.eq(1), stats[f"flush_{reason}"].eq(1)]

        def open_ctx(at):
            m.d.comb += [cw.addr.eq(at), cw.data.eq(newc), cw.en.eq(1),
                         cam.we.eq(1), cam.w_index.eq(at), cam.w_tag.eq(tag), cam.w_valid.eq(1),
                         stats.merged.eq(1)]
            m.d.sync += [stamps[at].eq(stamp_now + 1), stamp_now.eq(stamp_now + 1)]

        def pass_cur():
            push(pjob)
            with m.If(cur.oversize):
                m.d.comb += stats.dropped.eq(1)
            with m.Else():
                m.d.comb += stats.pass_through.eq(1)

        # (Registered straight from the expression: a lone comb assignment to one bit of
        # ``stats`` becomes an always block Icarus may never run, leaving it X.) Must follow
        # the ``self.stats.eq(stats)`` above, which it overrides for this bit.
        m.d.sync += self.stats.pool_exhausted.eq(self.i.valid & ~ing.i.ready & ~pool.alloc_ok)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(flush_req):
                    m.d.sync += [flush_req.eq(0), scan.eq(0)]
                    m.next = "FA_READ"
                with m.Elif(desc_valid):
                    m.d.comb += [ing.d.ready.eq(1), stats.packets_in.eq(1)]
                    m.d.sync += cur.eq(ing.d.payload)
                    m.next = "TAG"
                with m.Elif((pool.free_count < self.reserve) & cam.valid.any()):
                    m.d.comb += rsel.eq(oldest)
                    m.d.sync += [raddr.eq(oldest), slot.eq(oldest)]
                    m.next = "POOL"
                with m.Elif(self.timeout_us != 0):
                    m.d.comb += rsel.eq(scan)
                    m.d.sync += [raddr.eq(scan), slot.eq(scan),
                                 scan.eq(Mux(scan == N - 1, 0, scan + 1))]
                    with m.If(cam.valid.bit_select(scan, 1)):
                        m.next = "TIMEOUT"
            with m.State("TAG"):
                # ``tag`` is being registered; the CAM looks it up next cycle.
                with m.If(cur.oversize | ~flow_pkt):
                    with m.If(jq.w_rdy):
                        pass_cur()
                        m.next = "IDLE"
                with m.Else():
                    m.next = "CAM"
            with m.State("CAM"):
                m.next = "LOOK"       # the CAM compares ``tag`` (result next cycle)
            with m.State("LOOK"):
                with m.If(cam.hit):
                    m.d.comb += rsel.eq(cam.index)
                    m.d.sync += [raddr.eq(cam.index), slot.eq(cam.index)]
                    m.next = "HIT"
                with m.Else():
                    m.d.sync += slot.eq(cam.free_index)
                    m.next = "MISS"
            with m.State("HIT"):
                with m.If(jq.w_rdy):
                    with m.If(~key_eq):
                        m.d.comb += stats.collisions.eq(1)
                        pass_cur()
                        m.next = "IDLE"
                    with m.Elif(~cand):
                        flush_ctx(ctx, slot, "other")
                        m.next = "PASS"
                    with m.Elif(cont & size_ok):
                        m.d.comb += [cw.addr.eq(slot), cw.data.eq(updc), cw.en.eq(1),
                                     link_w.addr.eq(ctx.tail), link_w.data.eq(cur.page),
                                     link_w.en.eq(1), stats.merged.eq(1)]
                        with m.If(flush_after):
                            m.d.comb += [fc.eq(updc), fslot.eq(slot)]
                            push(fjob)
                            m.d.comb += [cam.we.eq(1), cam.w_index.eq(slot),
                                         cam.w_valid.eq(0), stats.aggregates_out.eq(1)]
                            with m.Switch(after_reason):
                                with m.Case(0):
                                    m.d.comb += stats.flush_psh.eq(1)
                                with m.Case(1):
                                    m.d.comb += stats.flush_short.eq(1)
                                with m.Default():
                                    m.d.comb += stats.flush_segs.eq(1)
                        m.next = "IDLE"
                    with m.Elif(cont):
                        flush_ctx(ctx, slot, "size")
                        m.next = "NEW"
                    with m.Else():
                        flush_ctx(ctx, slot, "mismatch")
                        m.next = "NEW"
            with m.State("MISS"):
                with m.If(~cand | psh | (self.max_segs <= 1)):
                    with m.If(jq.w_rdy):
                        pass_cur()
                        m.next = "IDLE"
                with m.Elif(cam.free_any):
                    open_ctx(cam.free_index)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += rsel.eq(oldest)
                    m.d.sync += [raddr.eq(oldest), slot.eq(oldest)]
                    m.next = "EVICT"
            with m.State("EVICT"):
                with m.If(jq.w_rdy):
                    flush_ctx(ctx, slot, "full")
                    m.next = "NEW"
            with m.State("NEW"):
                with m.If(psh | (self.max_segs <= 1)):
                    with m.If(jq.w_rdy):
                        pass_cur()
                        m.next = "IDLE"
                with m.Else():
                    open_ctx(slot)
                    m.next = "IDLE"
            with m.State("PASS"):
                with m.If(jq.w_rdy):
                    pass_cur()
                    m.next = "IDLE"
            with m.State("POOL"):
                with m.If(jq.w_rdy):
                    flush_ctx(ctx, slot, "pool")
                    m.next = "IDLE"
            with m.State("TIMEOUT"):
                with m.If((now - ctx.start)[:16] >= self.timeout_us):
                    with m.If(jq.w_rdy):
                        flush_ctx(ctx, slot, "timeout")
                        m.next = "IDLE"
                with m.Else():
                    m.next = "IDLE"
            with m.State("FA_READ"):
                m.d.comb += rsel.eq(scan)
                m.d.sync += [raddr.eq(scan), slot.eq(scan)]
                m.next = "FA"
            with m.State("FA"):
                with m.If(~cam.valid.bit_select(slot, 1) | jq.w_rdy):
                    with m.If(cam.valid.bit_select(slot, 1)):
                        flush_ctx(ctx, slot, "all")
                    m.d.sync += scan.eq(scan + 1)
                    with m.If(scan == N - 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "FA_READ"
        return m
