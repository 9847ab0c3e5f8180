"""TSO input side: decide per packet, store headers, cut the payload into segments in a ring.

Internal to :class:`hw.tso.TsoEngine`; see its docstring for the whole picture.
"""

from amaranth import *
from amaranth.lib import data

from .byteorder import be_value, lanes
from .checksum import beat_words, wide_sum
from .layouts import OFFSET_BITS, Kind, TsoRequest, parsed_layout
from .stream import keep_count
from .tso_defs import GRE_C, GRE_PROTO, TsoReason
from .tso_layouts import PATCHES, PATCH_BYTES, DescKind, context_layout, descriptor_layout

__all__ = ["TsoWriter"]


class TsoWriter(Elaboratable):
    """Per packet: register the record, decide (2 more cycles: the compares are registered
    before anything acts on them), then either hand the packet to the
    segment side for cut-through (``PASS`` descriptor) or store its header beats in header bank
    ``bank`` and its payload, segment by segment, realigned so that each segment's first payload
    byte sits on the lane it will have in the output frame (``hl mod W``), in the ring.

    Per input beat 1 cycle, plus 1 cycle per segment boundary inside a beat and 1 per segment
    whose last ring beat spills over. Sums (payload per segment, UDP and TCP header regions)
    are accumulated in a 3-stage pipeline whose last stage pushes the descriptor.
    """

    def __init__(self, width, header_window, ring_depth, max_frame, opaque_bytes):
        self.width = width
        self.lw = (width - 1).bit_length()
        self.hb = header_window // width
        self.header_window = header_window
        self.ring_depth = ring_depth
        self.max_frame = max_frame
        self.ptr_bits = (ring_depth - 1).bit_length() + 1
        self.layout = parsed_layout(width, opaque_bytes, TsoRequest)

        self.i_valid = Signal()
        self.i_ready = Signal()
        self.i_p = Signal(self.layout)
        self.enable = Signal()
        self.mss_default = Signal(14)

        self.bank_busy = Signal(2)
        self.claim = Signal()            # pulse: header bank `bank` now in use
        self.bank = Signal()
        self.ctx = Signal(context_layout())

        self.ring_rptr = Signal(self.ptr_bits)
        self.ring_we = Signal()
        self.ring_waddr = Signal(self.ptr_bits - 1)
        self.ring_wdata = Signal(8 * width)
        self.hdr_we = Signal()
        self.hdr_waddr = Signal(range(2 * self.hb))
        self.hdr_wdata = Signal(8 * width)

        self.desc_room = Signal()        # the descriptor FIFO can take 4 more
        self.desc_valid = Signal()
        self.desc = Signal(descriptor_layout())
        self.pass_done = Signal()        # pulse: the segment side finished a pass-through

        self.reason = Signal(TsoReason)  # with decided: the decision (stats)
        self.decided = Signal()
        self.truncated = Signal()

    def elaborate(self, platform):
        m = Module()
        W, lw = self.width, self.lw

        # ---- Packet registers, filled from the first beat --------------------------------
        rec = Signal(self.layout.members["meta"])
        req = Signal(TsoRequest)
        hl = Signal(OFFSET_BITS)
        s = Signal(lw)                     # hl mod W: lane of the first payload byte
        hbeat = Signal(OFFSET_BITS - lw)   # hl div W
        pl = Signal(16)                    # payload bytes
        mss = Signal(14)
        mss_mod = Signal(lw)
        m.d.comb += [s.eq(hl[:lw]), hbeat.eq(hl[lw:])]

        wptr = Signal(self.ptr_bits)
        seg_wptr = Signal(self.ptr_bits)
        room = Signal()
        # Registered (one cycle old), so it keeps a margin of 2 beats: at most one write per
        # cycle, and the read pointer only frees space.
        m.d.sync += room.eq((wptr - self.ring_rptr)[:self.ptr_bits] < self.ring_depth - 2)
        m.d.comb += self.ring_waddr.eq(wptr[:-1])

        # ---- Decision: compares on the registered record in DECIDE, registered; acted on in
        # DECIDE2 (so no wide compare drives the claim) ---------------------------------------
        cls, off = rec.cls, rec.off
        # Registered when the first beat is captured, so DECIDE's compares start from a register.
        eff_mss = Signal(14)
        reason_c = Signal(TsoReason)
        reason = Signal(TsoReason)
        tunnel = cls.kind == Kind.TUNNEL
        len_mismatch = (off.l3 + rec.outer.total_len) != (off.inner_l3 + rec.inner.total_len)
        m.d.comb += reason_c.eq(
            Mux(~self.enable | ~req.tso, TsoReason.NO_REQUEST,
            Mux(~cls.tso_ok | (cls.kind == Kind.OTHER) | (off.payload > self.header_window),
                TsoReason.NOT_OFFLOADABLE,
            Mux(eff_mss == 0, TsoReason.MSS_ZERO,
            Mux(off.payload + eff_mss > self.max_frame, TsoReason.MSS_TOO_LARGE,
            Mux(tunnel & len_mismatch, TsoReason.LENGTH, TsoReason.SEGMENTED))))))
        m.d.comb += self.reason.eq(reason)

        # ---- Context of the superframe (written into the bank on claim) ------------------
        ctx = self.ctx
        bases = {"l3": off.l3, "opaque": off.opaque, "inner_l3": off.inner_l3, "l4": off.l4}
        index = 0
        # GRE (RFC 2784) with the C bit: its checksum (opaque bytes 4-5) takes the UDP
        # checksum's patch slot and calculator block (a profile is UDP or GRE, never both).
        opq = lanes(rec.opaque, 8)
        gre_csum = Signal()
        m.d.comb += gre_csum.eq(tunnel & ~cls.udp & (rec.outer.proto == GRE_PROTO) &
                                ((opq[0] & GRE_C) != 0))
        for name, base, delta, size in PATCHES:
            enabled = {"outer_len": tunnel, "outer_id": tunnel, "outer_csum": tunnel,
                       "udp_len": tunnel & cls.udp,
                       "udp_csum": (tunnel & cls.udp) | gre_csum}.get(name, 1)
            for b in range(size):
                start = bases[base] + delta + b
                if name == "udp_csum":
                    start = Mux(gre_csum, bases[base] + 4 + b, start)
                m.d.comb += [ctx.patch_off[index].eq(start),
                             ctx.patch_en[index].eq(enabled)]
                index += 1
        assert index == PATCH_BYTES

        def ipv4_ctx(dst, src):
            return [dst.ident.eq(src.ident),
                    dst.w0.eq(Cat(src.tos, src.ihl, src.version)),
                    dst.w3.eq(Cat(src.frag_off, src.flags)),
                    dst.w4.eq(Cat(src.proto, src.ttl)),
                    dst.src.eq(src.src), dst.dst.eq(src.dst)]
        m.d.comb += [
            ctx.tunnel.eq(tunnel), ctx.gre_csum.eq(gre_csum), ctx.udp.eq(tunnel & cls.udp),
            ctx.udp_csum.eq(tunnel & cls.udp & cls.udp_csum), ctx.ipid_fixed.eq(cls.ipid_fixed),
            ctx.l4_odd.eq(off.l4[0]), ctx.hl.eq(off.payload),
            ctx.outer_hdr.eq(rec.outer.total_len - rec.payload_len),
            ctx.inner_hdr.eq(rec.inner.total_len - rec.payload_len),
            *ipv4_ctx(ctx.outer, rec.outer), *ipv4_ctx(ctx.inner, rec.inner),
            ctx.seq.eq(rec.tcp.seq),
            ctx.flag_word.eq(Cat(rec.tcp.flags, rec.tcp.rsv, rec.tcp.doff)),
            ctx.tcp_csum.eq(rec.tcp.csum), ctx.flags.eq(rec.tcp.flags),
            ctx.udp_len.eq(be_value(opq[4:6])), ctx.udp_csum_in.eq(Mux(gre_csum, be_value(opq[4:6]), be_value(opq[6:8]))),
        ]

        # ---- Segment sizes, one segment ahead -----------------------------------------------
        # `nn` is the size of the next segment to start, computed from `g_rem` (payload not yet
        # given to a segment) the cycle after the previous one started, so a segment start only
        # copies registers. Primed the cycle after the claim (the header takes at least 3
        # cycles); a segment that could end in the cycle right after its start (its first chunk
        # is `fin`) waits one cycle for `nn`.
        g_rem = Signal(16)
        nn = Signal(14)
        nn_last = Signal()                      # ... it is the last segment
        nn_small = Signal()                     # ... nn <= W
        nn_zero = Signal()                      # ... nn == 0 (payload 0)
        mss_small = Signal()                    # mss <= W
        prime = Signal()
        gen_pop = Signal()
        gen_pop_r = Signal()                    # the generator runs one cycle after a start
        g_lt = Signal()
        m.d.sync += gen_pop_r.eq(gen_pop)
        with m.If(gen_pop_r | prime):
            m.d.sync += [nn.eq(Mux(g_lt, g_rem, mss)), nn_last.eq(g_rem <= mss),
                         g_rem.eq(Mux(g_lt, 0, g_rem - mss)),
                         nn_small.eq(Mux(g_lt, g_rem <= W, mss_small)),
                         nn_zero.eq(g_rem == 0)]
        m.d.comb += g_lt.eq(g_rem < mss)

        # ---- Segment state ---------------------------------------------------------------
        # Per chunk (the bytes of one input beat that belong to one segment) everything is a
        # function of registers: `fin` (this chunk ends the segment: need <= W - a) is kept
        # one chunk ahead, so the input beat's keep only decides truncation.
        b_in = Signal(OFFSET_BITS - lw + 1)     # input beat index while in the header
        hb_left = Signal(OFFSET_BITS - lw + 1)  # full header beats still to come (hbeat - b_in)
        a = Signal(lw)                          # next unconsumed lane of the input beat
        n_cur = Signal(14)                      # current segment's payload bytes
        need = Signal(14)                       # ... still to store
        fin = Signal()                          # need <= W - a
        zero = Signal()                         # the segment has no payload
        seg_last = Signal()                     # the current segment is the superframe's last
        p = Signal(lw)                          # fill lane of the partial ring beat
        r = Signal(lw)                          # rotation: (k * mss) mod W
        part = Signal(8 * W)                    # partial ring beat (zeros where unfilled)
        first = Signal()
        ended = Signal()                        # the packet's last beat has been consumed
        lo = Signal()                           # p + need > W (for the current p and need)
        hb_one = Signal()                       # hb_left == 1

        # Pipeline entry (stage A input), driven by the FSM below.
        e_valid = Signal()
        e_wr = Signal()
        e_data = Signal(8 * W)
        e_hdr = Signal()
        e_sf = Signal()
        e_end = Signal()
        e_kind = Signal(DescKind)
        e_first = Signal()
        e_last = Signal()
        e_n = Signal(14)
        m.d.comb += [self.ring_wdata.eq(e_data), self.ring_we.eq(e_wr),
                     self.hdr_wdata.eq(self.i_p.data)]

        # `lo` for a segment starting now (p = s, need = nn): registers only.
        lo_start = Signal()
        m.d.comb += lo_start.eq(s + nn[:lw + 1] > W)

        # `fits(a_new)`: a segment starting at lane a_new ends in its first chunk (with nn_small).
        def start_segment(fits, rotation, is_first, wp):
            return [n_cur.eq(nn), need.eq(nn), zero.eq(nn_zero), seg_last.eq(nn_last),
                    fin.eq(nn_small & fits), lo.eq(lo_start),
                    p.eq(s), r.eq(rotation), part.eq(0), first.eq(is_first), seg_wptr.eq(wp)]

        rot_all = Signal(8 * W)
        m.d.comb += rot_all.eq(Cat(self.i_p.data, self.i_p.data) >> (r * 8))
        rot = [rot_all.word_select(x, 8) for x in range(W)]

        # PAY datapath, unconditional (plain assigns; see docs/tso.md on Icarus).
        # A chunk either ends the segment (`fin`: c = need) or takes the rest of the beat
        # (c = W - a, and then the ring beat is full exactly when p >= a); each control
        # signal below is computed for both cases from registers and selected by `fin`.
        avail = Signal(lw + 1)
        c = Signal(lw + 1)
        e = Signal(lw + 1)                      # lane after the chunk (W: beat consumed)
        e_fin = Signal(lw + 1)
        fill_fin = Signal(lw + 2)
        m.d.comb += [avail.eq(W - a), c.eq(Mux(fin, need[:lw + 1], avail)),
                     e_fin.eq(a + need[:lw + 1]), e.eq(Mux(fin, e_fin, W)),
                     fill_fin.eq(p + need[:lw + 1])]
        fill = Signal(range(2 * W + 1))
        m.d.comb += fill.eq(p + c)
        # The lane masks and `full` are small functions of (p, need mod 2W) when `fin` and of
        # (p, a) otherwise: looked up in constant tables, so no carry chain sits between these
        # registers and the ring's write data.
        n4 = need[:lw + 1]

        def table(fn, *sigs):
            widths = [len(x) for x in sigs]
            value = 0
            for index in range(1 << sum(widths)):
                args, rest = [], index
                for w in widths:
                    args.append(rest & ((1 << w) - 1))
                    rest >>= w
                value |= int(bool(fn(*args))) << index
            return Const(value, 1 << sum(widths)).bit_select(Cat(*sigs), 1)

        full = Signal()
        m.d.comb += full.eq(Mux(fin, table(lambda p_, n_: p_ + n_ >= W, p, n4),
                                table(lambda p_, a_: p_ >= a_, p, a)))
        merged = Signal(8 * W)
        wrapped = Signal(8 * W)
        for x in range(W):
            sel = Mux(fin, table(lambda p_, n_: p_ <= x < p_ + n_, p, n4),
                      table(lambda p_, a_: p_ <= x < p_ + W - a_, p, a))
            wsel = Mux(fin, table(lambda p_, n_: x + W < p_ + n_, p, n4),
                       table(lambda p_, a_: x + W < p_ + W - a_, p, a))
            m.d.comb += [
                merged.word_select(x, 8).eq(Mux(sel, rot[x], part.word_select(x, 8))),
                wrapped.word_select(x, 8).eq(Mux(wsel, rot[x], 0)),
            ]
        # A chunk that does not end the segment consumes the beat (a becomes 0), leaves
        # p' = (p - a) mod W and need' = need - (W - a); `lo` for those (only used when the
        # next chunk is `fin`, i.e. need' <= W, so need'[:lw + 1] is exact).
        lo_mid = Signal()
        p_mid = Signal(lw)
        n_mid = Signal(lw + 1)
        m.d.comb += [p_mid.eq(p - a), n_mid.eq(need[:lw + 1] + a + W),
                     lo_mid.eq(p_mid + n_mid > W)]
        leftover = Signal()
        wrote = Signal()
        consumed = Signal()
        trunc_now = Signal()                    # the last beat ends before this chunk does
        mid_fin = Signal()                      # after a chunk that does not end the segment
        m.d.comb += [leftover.eq(fin & lo), wrote.eq(full | fin),
                     consumed.eq(~fin | table(lambda a_, n_: a_ + n_ >= W, a, n4)),
                     trunc_now.eq(self.i_p.last & ~Cat(Const(1, 1), self.i_p.keep).bit_select(e, 1)),
                     mid_fin.eq(need <= 2 * W - a)]
        next_r = (r + mss_mod)[:lw]
        wp_after = Signal.like(wptr)
        m.d.comb += wp_after.eq(Mux(wrote, wptr + 1, wptr))

        # The state is one-hot registers (no decoder in front of the segment start enables),
        # and every combinational output below is a plain expression of them (no comb
        # assignment inside a state): Icarus evaluates chains of conditionally assigned
        # always_comb blocks with exponential glitch events.
        st = {name: Signal(name=f"st_{name.lower()}", init=name == "IDLE") for name in
              ("IDLE", "DECIDE", "DECIDE2", "WAIT_PASS", "HDR", "PAY", "FLUSH", "DRAIN",
               "TRUNC")}

        def goto(cur, nxt):
            return [st[cur].eq(0), st[nxt].eq(1)]
        seg_ok = Signal()
        bank_free = Signal()
        full_hdr = Signal()                     # hb_left != 0
        m.d.comb += [seg_ok.eq(reason == TsoReason.SEGMENTED),
                     bank_free.eq(~self.bank_busy.bit_select(~self.bank, 1)),
                     ]
        decide_claim = Signal()
        decide_pass = Signal()
        hdr_act = Signal()
        hdr_start = Signal()
        pay_ok = Signal()
        pay_zero = Signal()
        pay_trunc = Signal()
        pay_take = Signal()
        pay_end = Signal()
        flush_act = Signal()
        drain_take = Signal()
        trunc_act = Signal()
        seg_desc = Signal()
        m.d.comb += [
            decide_claim.eq(st["DECIDE2"] & seg_ok & bank_free & self.desc_room),
            decide_pass.eq(st["DECIDE2"] & ~seg_ok & self.desc_room),
            hdr_act.eq(st["HDR"] & self.i_valid),
            hdr_start.eq(hdr_act & (~full_hdr | (hb_one & (s == 0)))),
            pay_ok.eq(st["PAY"] & room & self.desc_room & ~(gen_pop_r & fin)),
            pay_zero.eq(pay_ok & zero),
            pay_trunc.eq(pay_ok & ~zero & ended),
            pay_take.eq(pay_ok & ~zero & ~ended & self.i_valid),
            pay_end.eq(pay_take & fin & ~leftover & ~trunc_now),
            flush_act.eq(st["FLUSH"] & room & self.desc_room),
            drain_take.eq(st["DRAIN"] & ~ended),
            trunc_act.eq(st["TRUNC"] & self.desc_room),
            seg_desc.eq(pay_zero | pay_end | flush_act),
            gen_pop.eq(hdr_start | (pay_take & fin & ~leftover & ~seg_last) |
                       (flush_act & ~seg_last)),
            self.claim.eq(decide_claim),
            self.decided.eq(decide_claim | decide_pass),
            self.truncated.eq(trunc_act),
            self.hdr_we.eq(hdr_act),
            self.i_ready.eq((hdr_act & full_hdr) | (pay_take & consumed) | drain_take),
            e_sf.eq(decide_claim),
            e_hdr.eq(hdr_act),
            e_end.eq(decide_pass | seg_desc | trunc_act),
            e_kind.eq(Mux(decide_pass, DescKind.PASS,
                          Mux(trunc_act, DescKind.DROP, DescKind.SEGMENT))),
            e_first.eq(first), e_last.eq(seg_last), e_n.eq(n_cur),
            e_valid.eq(decide_claim | decide_pass | hdr_act | pay_zero | pay_take |
                       flush_act | trunc_act),
            e_wr.eq((pay_take & wrote) | flush_act),
        ]
        m.d.sync += prime.eq(decide_claim)

        with m.If(st["IDLE"]):
            m.d.sync += ended.eq(0)
            with m.If(self.i_valid):
                m.d.sync += [rec.eq(self.i_p.meta), req.eq(self.i_p.user),
                             eff_mss.eq(Mux(self.i_p.user.mss != 0, self.i_p.user.mss,
                                            self.mss_default)),
                             *goto("IDLE", "DECIDE")]

        with m.If(st["DECIDE"]):
            m.d.sync += [hl.eq(off.payload), pl.eq(rec.payload_len), mss.eq(eff_mss),
                         mss_mod.eq(eff_mss[:lw]), mss_small.eq(eff_mss <= W),
                         reason.eq(reason_c), b_in.eq(0), *goto("DECIDE", "DECIDE2")]

        with m.If(st["DECIDE2"]):
            with m.If(decide_claim):
                m.d.sync += [self.bank.eq(~self.bank), seg_wptr.eq(wptr), g_rem.eq(pl),
                             hb_left.eq(hbeat), full_hdr.eq(hbeat != 0), hb_one.eq(hbeat == 1),
                             *goto("DECIDE2", "HDR")]
            with m.If(decide_pass):
                m.d.sync += goto("DECIDE2", "WAIT_PASS")

        with m.If(st["WAIT_PASS"]):
            with m.If(self.pass_done):
                m.d.sync += goto("WAIT_PASS", "IDLE")

        with m.If(st["HDR"]):
            with m.If(hdr_act):
                m.d.sync += [b_in.eq(b_in + 1), hb_left.eq(hb_left - 1),
                             full_hdr.eq(~hb_one), hb_one.eq(hb_left == 2)]
                with m.If(full_hdr):
                    m.d.sync += ended.eq(self.i_p.last)
                    with m.If(hb_one & (s == 0)):
                        m.d.sync += [a.eq(0), *start_segment(nn[:lw + 1] <= W, 0, 1, wptr),
                                     *goto("HDR", "PAY")]
                    with m.Elif(self.i_p.last):
                        m.d.sync += goto("HDR", "TRUNC")
                with m.Else():
                    m.d.sync += [a.eq(s), *start_segment(nn[:lw + 1] + s <= W, 0, 1, wptr),
                                 *goto("HDR", "PAY")]

        with m.If(st["PAY"]):
            with m.If(pay_zero):
                m.d.sync += goto("PAY", "DRAIN")
            with m.If(pay_trunc):
                m.d.sync += goto("PAY", "TRUNC")
            with m.If(pay_take):
                m.d.sync += [wptr.eq(wp_after), a.eq(e[:lw])]
                with m.If(full):
                    m.d.sync += [part.eq(wrapped), p.eq(fill - W)]
                with m.Else():
                    m.d.sync += [part.eq(merged), p.eq(fill)]
                with m.If(consumed):
                    m.d.sync += ended.eq(self.i_p.last)
                with m.If(fin):
                    with m.If(~leftover & ~seg_last):
                        # The next segment starts at lane (a + need) mod W: a table, not
                        # two adders in series.
                        fits = table(lambda a_, n_, m_: (a_ + n_) % W + m_ <= W,
                                     a, n4, nn[:lw + 1])
                        m.d.sync += start_segment(fits, next_r, 0, wp_after)
                with m.Else():
                    m.d.sync += [need.eq(need - avail), fin.eq(mid_fin), lo.eq(lo_mid)]
                with m.If(trunc_now):
                    m.d.sync += goto("PAY", "TRUNC")
                with m.Elif(fin & leftover):
                    m.d.sync += goto("PAY", "FLUSH")
                with m.Elif(fin & seg_last):
                    m.d.sync += goto("PAY", "DRAIN")

        with m.If(st["FLUSH"]):
            with m.If(flush_act):
                m.d.sync += wptr.eq(wptr + 1)
                with m.If(seg_last):
                    m.d.sync += goto("FLUSH", "DRAIN")
                with m.Else():
                    m.d.sync += [*start_segment(nn[:lw + 1] + a <= W, next_r, 0, wptr + 1),
                                 *goto("FLUSH", "PAY")]

        with m.If(st["DRAIN"]):
            # Bytes after the IP datagram (padding): consumed, not sent.
            with m.If(ended | (self.i_valid & self.i_p.last)):
                m.d.sync += goto("DRAIN", "IDLE")

        with m.If(st["TRUNC"]):
            with m.If(trunc_act):
                m.d.sync += wptr.eq(seg_wptr)
                with m.If(ended):
                    m.d.sync += goto("TRUNC", "IDLE")
                with m.Else():
                    m.d.sync += goto("TRUNC", "DRAIN")

        m.d.comb += e_data.eq(Mux(st["FLUSH"], part, merged))

        # ---- Sum pipeline: A (word sums) -> B (accumulate) -> C (descriptor push) ---------
        o_hdr = Signal(OFFSET_BITS + 1)
        m.d.comb += o_hdr.eq(b_in << lw)
        m_opq = Signal(W)
        m_tcph = Signal(W)
        for x in range(W):
            o = o_hdr + x
            m.d.comb += [
                m_opq[x].eq((o >= off.opaque) & (o < off.inner_l3)),
                m_tcph[x].eq((o >= off.l4) & (o < off.payload)),
            ]
        a_valid = Signal()
        a_wr = Signal()
        a_data = Signal(8 * W)
        a_hdr = Signal()
        a_hdata = Signal(8 * W)
        a_mopq = Signal(W)
        a_mtcph = Signal(W)
        a_sf = Signal()
        a_desc = Signal(descriptor_layout())
        a_end = Signal()
        m.d.sync += [a_valid.eq(e_valid), a_wr.eq(e_wr), a_data.eq(e_data), a_hdr.eq(e_hdr),
                     a_hdata.eq(self.i_p.data), a_mopq.eq(m_opq), a_mtcph.eq(m_tcph),
                     a_sf.eq(e_sf), a_end.eq(e_end),
                     a_desc.kind.eq(e_kind), a_desc.bank.eq(self.bank),
                     a_desc.first.eq(e_first), a_desc.last.eq(e_last), a_desc.n.eq(e_n)]
        ones = Const(-1, W)
        zeros = Const(0, W)
        ws_pay = Signal(16 + lw)
        ws_opq = Signal(16 + lw)
        ws_tcph = Signal(16 + lw)
        b_valid = Signal()
        b_sf = Signal()
        b_end = Signal()
        b_desc = Signal(descriptor_layout())
        m.d.sync += [
            ws_pay.eq(wide_sum(beat_words(a_data, Mux(a_wr, ones, zeros), W))),
            ws_opq.eq(wide_sum(beat_words(a_hdata, Mux(a_hdr, a_mopq, zeros), W))),
            ws_tcph.eq(wide_sum(beat_words(a_hdata, Mux(a_hdr, a_mtcph, zeros), W))),
            b_valid.eq(a_valid), b_sf.eq(a_sf), b_end.eq(a_end), b_desc.eq(a_desc),
        ]
        acc_pay = Signal(32)
        acc_opq = Signal(24)
        acc_tcph = Signal(24)
        clr_pay = Signal(init=1)
        c_end = Signal()
        c_desc = Signal(descriptor_layout())
        with m.If(b_valid):
            m.d.sync += [acc_pay.eq(Mux(clr_pay, 0, acc_pay) + ws_pay), clr_pay.eq(b_end)]
            with m.If(b_sf):
                m.d.sync += [acc_opq.eq(0), acc_tcph.eq(0)]
            with m.Else():
                m.d.sync += [acc_opq.eq(acc_opq + ws_opq), acc_tcph.eq(acc_tcph + ws_tcph)]
        m.d.sync += [c_end.eq(b_valid & b_end), c_desc.eq(b_desc)]
        m.d.comb += [
            self.desc_valid.eq(c_end),
            self.desc.eq(c_desc),
            self.desc.psum.eq(acc_pay), self.desc.opq_sum.eq(acc_opq),
            self.desc.tcph_sum.eq(acc_tcph),
        ]
        m.d.comb += self.hdr_waddr.eq(Cat(b_in[:len(self.hdr_waddr) - 1], self.bank))
        return m
