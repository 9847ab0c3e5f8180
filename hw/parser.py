"""Streaming header parser: Ethernet/VLAN, outer IPv4, opaque region, inner IPv4, TCP.

:class:`HeaderParser` passes every packet through unchanged and attaches a
:class:`hw.layouts.ParseRecord` (``meta``) to all of its beats, computed exactly as
docs/parse-record.md specifies. The profile decision of the :class:`hw.classifier.Classifier`
is part of the record, because the inner headers cannot be found without it.

How it works (see docs/architecture.md for the picture): all stages advance together
(``adv``) whenever the output FIFOs have room, so the pipeline moves one beat per cycle.

1. Input: the Ethernet/VLAN bytes (fixed offsets 0..21) are captured as beats enter.
2. Stage B holds one beat: it captures the outer IPv4 version/IHL/protocol at the VLAN-dependent
   offset, learns where the opaque region starts, and feeds the classifier, which captures each
   profile's fields and, once they have all passed (or the packet ended), decides.
3. A delay line of ``D = opaque_bytes / W + 5`` beats gives the decision time to arrive.
4. Stage I captures every record field (Ethernet, outer and inner IPv4, the opaque bytes, TCP)
   and sums both IPv4 header checksums, at offsets now known. When the packet ends or its
   header window has passed, the record is finalised and queued.
5. Beats wait in a FIFO (2 x header window) until their record is queued, then leave together.

Latency: about ``D + 3`` cycles plus the time to see ``min(frame, header_window)`` bytes.
Throughput: one beat per cycle, back-to-back packets of any length, no bubbles in steady state.
Backpressure: ``o.ready`` low fills the FIFOs, then ``i.ready`` drops. ``error`` is a sticky
internal-consistency flag (a decision arriving late or lost); it never rises with legal
parameters and tests check it stays low.
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .buffer import StreamFifo
from .byteorder import be_value
from .capture import beat_index_bits, capture_region, region_sum
from .checksum import fold
from .classifier import Classifier, Decision
from .layouts import Kind, Reason, parsed_layout, ParseRecord
from .profile import Profile
from .stream import PacketSignature, check_width, keep_count

__all__ = ["HeaderParser"]

ETH_BYTES = 22           # two VLAN tags + ethertype
MAX_OPAQUE_START = 22 + 60   # l3 with two tags + IPv4 header with 40 bytes of options


def _stats_layout(profiles):
    fields = {"packets": 1, "plain": 1, "tunnel": 1, "other": 1, "profile_hits": profiles}
    for r in Reason:
        if r is not Reason.NONE:
            fields[f"reason_{r.name.lower()}"] = 1
    return data.StructLayout(fields)


class HeaderParser(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    width : int
        Datapath width W (4, 8 or 16 bytes).
    header_window : int
        H: bytes of each packet that headers may occupy (a multiple of W, at most 512 and at
        least ``82 + opaque_bytes + W`` so every profile decision fits before it).
    opaque_bytes : int
        C: bytes of the opaque region captured into the record (and searched for fields).
    profiles : int
        P: classifier profiles (1..8).
    user : shape or None
        Layout of the input's own ``meta``, passed through as ``user``.
    """

    def __init__(self, width=8, *, header_window=256, opaque_bytes=64, profiles=8, user=None):
        self.width = check_width(width)
        if not 4 <= opaque_bytes <= 128:
            raise ValueError(f"opaque_bytes must be 4..128, not {opaque_bytes}")
        t_max = MAX_OPAQUE_START + opaque_bytes
        if header_window % width or not t_max + width <= header_window <= 512:
            raise ValueError(f"header_window must be a multiple of {width} between "
                             f"{t_max + width} and 512, not {header_window}")
        if not 1 <= profiles <= 8:
            raise ValueError(f"profile count must be 1..8, not {profiles}")
        self.header_window = header_window
        self.opaque_bytes = opaque_bytes
        self.profiles = profiles
        self.user = user
        self.delay = -(-opaque_bytes // width) + 5
        super().__init__({
            "i": In(PacketSignature(width, user)),
            "o": Out(stream.Signature(parsed_layout(width, opaque_bytes, user))),
            "table": In(data.ArrayLayout(Profile, profiles)),
            "stats": Out(_stats_layout(profiles)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, H, C, P = self.width, self.header_window, self.opaque_bytes, self.profiles
        lw = (W - 1).bit_length()
        BB = beat_index_bits(W)
        t_max = MAX_OPAQUE_START + C
        user_w = Shape.cast(self.user).width if self.user is not None else 0

        adv = Signal()

        def masked_lanes(dat, keep):
            return [Mux(keep[i], dat.word_select(i, 8), 0) for i in range(W)]

        def bump(count, last):
            sat = (1 << BB) - 1
            return Mux(last, 0, Mux(count == sat, sat, count + 1))

        def beat_end(beat):
            return Cat(Const(W - 1, lw), beat) if lw else beat

        def frame_len(beat, keep):
            return (beat << lw) + keep_count(keep, W)

        # ---- input: Ethernet bytes at fixed offsets ------------------------------------
        in_beat = Signal(BB)
        in_take = adv & self.i.valid
        m.d.comb += self.i.ready.eq(adv)
        in_lanes = masked_lanes(self.i.p.data, self.i.p.keep)
        with m.If(in_take):
            m.d.sync += in_beat.eq(bump(in_beat, self.i.p.last))
        eth_b, _ = capture_region(m, width=W, count=ETH_BYTES, start=Const(0, 1), beat=in_beat,
                                  lanes=in_lanes, take=in_take, first=in_beat == 0, name="ethB")
        l3_b, is4_b = self._eth(m, eth_b, "B")[:2]

        # ---- stage B ---------------------------------------------------------------------
        beat_layout = data.StructLayout({"valid": 1, "data": 8 * W, "keep": W, "last": 1,
                                         "user": max(user_w, 1), "beat": BB})
        sb = Signal(beat_layout)
        with m.If(adv):
            m.d.sync += [sb.valid.eq(self.i.valid), sb.data.eq(Cat(*in_lanes)),
                         sb.keep.eq(self.i.p.keep), sb.last.eq(self.i.p.last),
                         sb.beat.eq(in_beat)]
            if self.user is not None:
                m.d.sync += sb.user.eq(self.i.p.meta)
        take_b = adv & sb.valid
        first_b = sb.beat == 0
        lanes_b = [sb.data.word_select(i, 8) for i in range(W)]
        _, ob = capture_region(m, width=W, count=10, start=l3_b, beat=sb.beat, lanes=lanes_b,
                               take=take_b, first=first_b, name="outerB")
        ihl_b, ver_b, proto_b = ob[0][:4], ob[0][4:8], ob[9]
        reached = beat_end(sb.beat) >= l3_b
        opaque_reg = Signal(10)
        known_reg = Signal()
        outer_ok_reg = Signal()
        trig_done = Signal()
        known_b = known_reg & ~first_b
        with m.If(take_b & reached & ~known_b):
            m.d.sync += [opaque_reg.eq(l3_b + (ihl_b << 2)), known_reg.eq(1),
                         outer_ok_reg.eq(is4_b & (ver_b == 4) & (ihl_b >= 5))]
        with m.Elif(take_b & first_b):
            m.d.sync += known_reg.eq(0)
        bend_b = beat_end(sb.beat)
        trig = (~(trig_done & ~first_b) &
                (sb.last | (bend_b >= t_max) |
                 (known_b & (~outer_ok_reg | (bend_b >= opaque_reg + C - 1)))))
        with m.If(take_b):
            m.d.sync += trig_done.eq((trig_done & ~first_b) | trig)
        flen_b = frame_len(sb.beat, sb.keep)
        avail20 = (l3_b + 20 <= H) & (~sb.last | (l3_b + 20 <= flen_b))

        m.submodules.classifier = cls = Classifier(W, profiles=P, opaque_bytes=C,
                                                   header_window=H, beat_bits=BB)
        m.d.comb += [
            cls.table.eq(self.table), cls.take.eq(take_b), cls.first.eq(first_b),
            cls.beat.eq(sb.beat), cls.data.eq(sb.data),
            cls.opaque.eq(opaque_reg), cls.opaque_known.eq(known_b),
            cls.outer_valid.eq(is4_b & (ver_b == 4) & (ihl_b >= 5) & avail20),
            cls.outer_proto.eq(proto_b), cls.trigger.eq(trig),
            cls.ended.eq(sb.last), cls.frame_len.eq(flen_b),
        ]
        dec_depth = 1 << (self.delay + 4).bit_length()
        m.submodules.decisions = decq = fifo.SyncFIFO(width=Decision.as_shape().size,
                                                       depth=dec_depth)
        m.d.comb += [decq.w_data.eq(cls.o), decq.w_en.eq(cls.o_valid)]
        with m.If(cls.o_valid & ~decq.w_rdy):
            m.d.sync += self.error.eq(1)

        # ---- delay line --------------------------------------------------------------------
        side_layout = data.StructLayout({"b": beat_layout, "l3": 5, "opaque": 10, "known": 1})
        line = [Signal(side_layout, name=f"dly{k}") for k in range(self.delay)]
        with m.If(adv):
            m.d.sync += [line[0].b.eq(sb), line[0].l3.eq(l3_b), line[0].opaque.eq(opaque_reg),
                         line[0].known.eq(known_b)]
            for k in range(1, self.delay):
                m.d.sync += line[k].eq(line[k - 1])
        si = line[-1]

        # ---- stage I -----------------------------------------------------------------------
        take_i = adv & si.b.valid
        first_i = si.b.beat == 0
        lanes_i = [si.b.data.word_select(i, 8) for i in range(W)]
        bend_i = beat_end(si.b.beat)
        dec = Decision(decq.r_data)
        dec_ok = decq.r_rdy
        common = dict(width=W, beat=si.b.beat, lanes=lanes_i, take=take_i, first=first_i)
        _, eth_n = capture_region(m, count=ETH_BYTES, start=Const(0, 1), name="ethI", **common)
        _, outer_n = capture_region(m, count=20, start=si.l3, name="outerI", **common)
        _, opq_n = capture_region(m, count=C, start=si.opaque, gate=si.known, name="opq",
                                  **common)
        o_ihl = outer_n[0][:4]
        sum_args = dict(width=W, beat=si.b.beat, data=si.b.data, take=take_i, first=first_i)
        _, osum_n = region_sum(m, start=si.l3, end=si.l3 + (Mux(o_ihl < 5, 5, o_ihl) << 2),
                               name="osum", **sum_args)
        inner_l3 = Signal(20)
        m.d.comb += inner_l3.eq(Mux(dec.matched, si.opaque + dec.opaque_len, si.l3))
        gate_in = dec_ok & Mux(dec.matched, si.known, 1)
        inner_r, inner_n = capture_region(m, count=20, start=inner_l3, gate=gate_in,
                                          name="innerI", **common)
        i_ihl_n = inner_n[0][:4]
        _, isum_n = region_sum(m, start=Mux(gate_in, inner_l3, 0xFFFFF),
                               end=inner_l3 + (Mux(i_ihl_n < 5, 5, i_ihl_n) << 2),
                               name="isum", **sum_args)
        inner_seen = Signal()
        with m.If(take_i):
            m.d.sync += inner_seen.eq((inner_seen & ~first_i) |
                                      (gate_in & (bend_i >= inner_l3)))
        l4 = Signal(20)
        m.d.comb += l4.eq(inner_l3 + (inner_r[0][:4] << 2))
        _, tcp_n = capture_region(m, count=20, start=l4, gate=gate_in & inner_seen & ~first_i,
                                  name="tcpI", **common)
        # A decision must be here before stage I reaches the opaque region.
        with m.If(take_i & si.known & ~dec_ok & (bend_i >= si.opaque)):
            m.d.sync += self.error.eq(1)

        done = Signal()
        done_i = done & ~first_i
        compl = take_i & ~done_i & (si.b.last | (bend_i >= H - 1))
        with m.If(take_i):
            m.d.sync += done.eq(done_i | compl)
        m.d.comb += decq.r_en.eq(compl)
        with m.If(compl & ~dec_ok):
            m.d.sync += self.error.eq(1)

        # Latch everything the record is computed from.
        fin = {
            "eth": Signal(8 * ETH_BYTES), "outer": Signal(160), "opaque": Signal(8 * C),
            "inner": Signal(160), "tcp": Signal(160), "osum": Signal(21), "isum": Signal(21),
            "dec": Signal(Decision), "ended": Signal(), "flen": Signal(16),
        }
        fin_valid = Signal()
        m.d.sync += fin_valid.eq(compl)
        with m.If(compl):
            m.d.sync += [
                fin["eth"].eq(Cat(*eth_n)), fin["outer"].eq(Cat(*outer_n)),
                fin["opaque"].eq(Cat(*opq_n)), fin["inner"].eq(Cat(*inner_n)),
                fin["tcp"].eq(Cat(*tcp_n)), fin["osum"].eq(osum_n), fin["isum"].eq(isum_n),
                fin["dec"].eq(Mux(dec_ok, decq.r_data, 0)), fin["ended"].eq(si.b.last),
                fin["flen"].eq(frame_len(si.b.beat, si.b.keep)),
            ]
        rec = Signal(ParseRecord(C))
        self._finalize(m, fin, rec)

        rec_depth = 4
        m.submodules.records = recq = fifo.SyncFIFO(width=rec.shape().size, depth=rec_depth)
        m.d.comb += [recq.w_data.eq(rec), recq.w_en.eq(fin_valid)]

        # ---- output FIFO and join -----------------------------------------------------------
        out_layout = data.StructLayout({"data": 8 * W, "keep": W, "last": 1,
                                        "user": max(user_w, 1)})
        m.submodules.beats = beats = StreamFifo(out_layout, depth=2 * H // W)
        m.d.comb += [
            beats.i.valid.eq(take_i), beats.i.p.data.eq(si.b.data), beats.i.p.keep.eq(si.b.keep),
            beats.i.p.last.eq(si.b.last), beats.i.p.user.eq(si.b.user),
            adv.eq(beats.i.ready & (recq.level < rec_depth - 1)),
        ]
        m.d.comb += [
            self.o.valid.eq(beats.o.valid & recq.r_rdy),
            self.o.p.data.eq(beats.o.p.data), self.o.p.keep.eq(beats.o.p.keep),
            self.o.p.last.eq(beats.o.p.last), self.o.p.meta.eq(recq.r_data),
            beats.o.ready.eq(self.o.ready & recq.r_rdy),
            recq.r_en.eq(self.o.ready & self.o.valid & beats.o.p.last),
        ]
        if self.user is not None:
            m.d.comb += self.o.p.user.eq(beats.o.p.user)

        # ---- statistics (one packet per queued record) --------------------------------------
        st = self.stats
        m.d.comb += [
            st.packets.eq(fin_valid),
            st.plain.eq(fin_valid & (rec.cls.kind == Kind.PLAIN)),
            st.tunnel.eq(fin_valid & (rec.cls.kind == Kind.TUNNEL)),
            st.other.eq(fin_valid & (rec.cls.kind == Kind.OTHER)),
        ]
        for p in range(P):
            m.d.comb += st.profile_hits[p].eq(fin_valid & (rec.cls.kind == Kind.TUNNEL) &
                                              (rec.cls.profile == p))
        for r in Reason:
            if r is not Reason.NONE:
                m.d.comb += st[f"reason_{r.name.lower()}"].eq(fin_valid & (rec.cls.reason == r))
        return m

    @staticmethod
    def _eth(m, b, tag):
        """(l3, is_ipv4, is_ipv6, vlans, tci0, tci1, ethertype) from the Ethernet bytes."""
        def tpid(v):
            return (v == 0x8100) | (v == 0x88A8)
        t0, t1, t2 = be_value(b[12:14]), be_value(b[16:18]), be_value(b[20:22])
        v0 = tpid(t0)
        v1 = v0 & tpid(t1)
        et = Signal(16, name=f"ethertype{tag}")
        m.d.comb += et.eq(Mux(v1, t2, Mux(v0, t1, t0)))
        vlans = Signal(2, name=f"vlans{tag}")
        m.d.comb += vlans.eq(v0 + v1)
        l3 = Signal(5, name=f"l3{tag}")
        m.d.comb += l3.eq(14 + (vlans << 2))
        return (l3, et == 0x0800, et == 0x86DD, vlans, Mux(v0, be_value(b[14:16]), 0),
                Mux(v1, be_value(b[18:20]), 0), et)

    def _finalize(self, m, fin, rec):
        """Compute the record from the latched bytes, as docs/parse-record.md specifies."""
        H = self.header_window
        byte = lambda sig, i: sig.word_select(i, 8)
        bytes_of = lambda sig, n: [byte(sig, i) for i in range(n)]
        E = bytes_of(fin["eth"], ETH_BYTES)
        l3, is4, is6, vlans, tci0, tci1, et = self._eth(m, E, "F")
        dec = fin["dec"]
        ended, flen = fin["ended"], fin["flen"]
        short = ended & (flen <= H)
        limit = Mux(short, flen, H)
        trunc_terms, window_terms = [], []

        def need(cond, end):
            bad = cond & (end > limit)
            trunc_terms.append(bad & short)
            window_terms.append(bad & ~short)

        def avail(end):
            return end <= limit

        def ipv4(sig, present, name):
            b = bytes_of(sig, 20)
            f = Signal(rec.outer.shape(), name=name)
            with m.If(present):
                m.d.comb += [
                    f.present.eq(1), f.version.eq(b[0][4:8]), f.ihl.eq(b[0][:4]),
                    f.tos.eq(b[1]), f.total_len.eq(be_value(b[2:4])),
                    f.ident.eq(be_value(b[4:6])), f.flags.eq(b[6][5:8]),
                    f.frag_off.eq(Cat(b[7], b[6][:5])), f.ttl.eq(b[8]), f.proto.eq(b[9]),
                    f.csum.eq(be_value(b[10:12])), f.src.eq(be_value(b[12:16])),
                    f.dst.eq(be_value(b[16:20])),
                ]
            return f

        m.d.comb += [
            rec.eth.dst.eq(be_value(E[0:6])), rec.eth.src.eq(be_value(E[6:12])),
            rec.eth.vlans.eq(vlans), rec.eth.tci0.eq(tci0), rec.eth.tci1.eq(tci1),
            rec.eth.ethertype.eq(et),
        ]
        need(1, l3)
        o_present = is4 & avail(l3 + 20)
        need(is4, l3 + 20)
        outer = ipv4(fin["outer"], o_present, "outer_f")
        o_valid = o_present & (outer.version == 4) & (outer.ihl >= 5)
        o_hlen = outer.ihl << 2
        need(o_valid, l3 + o_hlen)
        o_csum_ok = o_valid & avail(l3 + o_hlen) & (fold(fin["osum"]) == 0xFFFF)
        opaque_off = Mux(o_valid, l3 + o_hlen, 0)

        matched = dec.matched
        inner_def = o_valid & Mux(matched, ~dec.len_outside, outer.proto == 6)
        inner_l3 = Signal(20)
        m.d.comb += inner_l3.eq(Mux(matched, opaque_off + dec.opaque_len, l3))
        i_present = inner_def & avail(inner_l3 + 20)
        need(inner_def, inner_l3 + 20)
        inner = ipv4(fin["inner"], i_present, "inner_f")
        i_valid = i_present & (inner.version == 4) & (inner.ihl >= 5)
        i_hlen = inner.ihl << 2
        need(i_valid, inner_l3 + i_hlen)
        i_csum_ok = i_valid & avail(inner_l3 + i_hlen) & (fold(fin["isum"]) == 0xFFFF)
        l4_def = i_valid & (inner.proto == 6)
        l4 = Signal(20)
        m.d.comb += l4.eq(inner_l3 + i_hlen)
        t_present = l4_def & avail(l4 + 20)
        need(l4_def, l4 + 20)
        T = bytes_of(fin["tcp"], 20)
        doff = T[12][4:8]
        tcp_ok = t_present & (doff >= 5)
        payload_off = Signal(20)
        m.d.comb += payload_off.eq(l4 + (doff << 2))
        need(tcp_ok, payload_off)
        with m.If(t_present):
            m.d.comb += [
                rec.tcp.present.eq(1), rec.tcp.sport.eq(be_value(T[0:2])),
                rec.tcp.dport.eq(be_value(T[2:4])), rec.tcp.seq.eq(be_value(T[4:8])),
                rec.tcp.ack.eq(be_value(T[8:12])), rec.tcp.doff.eq(doff),
                rec.tcp.rsv.eq(T[12][:4]), rec.tcp.flags.eq(T[13]),
                rec.tcp.window.eq(be_value(T[14:16])), rec.tcp.csum.eq(be_value(T[16:18])),
                rec.tcp.urg.eq(be_value(T[18:20])),
            ]
        hdrs = i_hlen + (doff << 2)
        pay_len = inner.total_len - hdrs
        with m.If(tcp_ok & (inner.total_len >= hdrs)):
            m.d.comb += rec.payload_len.eq(pay_len)

        # The classifier already split a matched profile's cut fields into truncation/window.
        trunc_terms.append(matched & dec.field_trunc)
        window_terms.append(matched & dec.field_window)

        err = rec.err
        o_frag = (outer.flags[0] | (outer.frag_off != 0))
        i_frag = (inner.flags[0] | (inner.frag_off != 0))
        m.d.comb += [
            err.truncated.eq(Cat(*trunc_terms).any()),
            err.window.eq(Cat(*window_terms).any()),
            err.short_frame.eq(o_valid & short & (flen < l3 + outer.total_len)),
            err.outer_bad_ihl.eq(o_present & ((outer.version != 4) | (outer.ihl < 5))),
            err.inner_bad_ihl.eq(i_present & matched & (inner.version != 6) &
                                 ((inner.version != 4) | (inner.ihl < 5))),
            err.outer_bad_csum.eq(o_valid & ~o_csum_ok),
            err.inner_bad_csum.eq(i_valid & ~i_csum_ok),
            err.outer_bad_len.eq(o_valid & (outer.total_len < o_hlen)),
            err.inner_bad_len.eq((tcp_ok & (inner.total_len < hdrs)) |
                                 (matched & i_valid &
                                  (inner_l3 + inner.total_len > l3 + outer.total_len))),
        ]
        conds = [
            (Reason.NOT_IP, ~is4 & ~is6),
            (Reason.IPV6, is6 | (matched & i_present & (inner.version == 6))),
            (Reason.TRUNCATED, err.truncated | err.short_frame),
            (Reason.BAD_IHL, err.outer_bad_ihl | err.inner_bad_ihl),
            (Reason.WINDOW, err.window),
            (Reason.FRAGMENT, (o_valid & o_frag) | (i_valid & i_frag)),
            (Reason.IP_OPTIONS, (o_valid & (outer.ihl > 5)) | (i_valid & (inner.ihl > 5))),
            (Reason.NOT_TCP, (~matched & (outer.proto != 6)) |
                             (matched & i_valid & (inner.proto != 6))),
            (Reason.FIELD_OUTSIDE, matched & (dec.len_outside | dec.flow_outside)),
            (Reason.BAD_LENGTH, err.outer_bad_len | err.inner_bad_len),
            (Reason.TCP_DOFF, t_present & (doff < 5)),
        ]
        reason = Signal(Reason)
        for r, c in reversed(conds):
            with m.If(c):
                m.d.comb += reason.eq(r)
        cls = rec.cls
        kind = Mux(reason != Reason.NONE, Kind.OTHER, Mux(matched, Kind.TUNNEL, Kind.PLAIN))
        m.d.comb += [
            cls.reason.eq(reason), cls.kind.eq(kind),
            rec.outer.eq(outer), rec.inner.eq(inner),
            rec.outer.csum_ok.eq(o_csum_ok), rec.inner.csum_ok.eq(i_csum_ok),
            rec.off.l3.eq(l3), rec.off.opaque.eq(opaque_off),
            rec.off.inner_l3.eq(Mux(inner_def, inner_l3, 0)),
            rec.off.l4.eq(Mux(l4_def, l4, 0)),
            rec.off.payload.eq(Mux(tcp_ok, payload_off, 0)),
            rec.opaque.eq(Mux(o_valid, fin["opaque"], 0)),
        ]
        with m.If(matched):
            m.d.comb += [
                cls.profile.eq(dec.profile), cls.opaque_len.eq(dec.opaque_len),
                cls.flow.eq(dec.flow), cls.udp.eq(dec.udp), cls.udp_csum.eq(dec.udp_csum),
                cls.ipid_fixed.eq(dec.ipid_fixed),
            ]
        is_plain = reason == Reason.NONE
        m.d.comb += [
            cls.tso_ok.eq(is_plain & (~matched | dec.tso_en)),
            cls.rsc_ok.eq(is_plain & (~matched | dec.rsc_en) & o_csum_ok & i_csum_ok),
        ]
