"""Streaming header parser: Ethernet/VLAN, outer IPv4, opaque region, inner IPv4, TCP.

:class:`HeaderParser` passes every packet through unchanged and attaches a
:class:`hw.layouts.ParseRecord` (``meta``) to all of its beats, computed exactly as
docs/parse-record.md specifies. The profile decision of the :class:`hw.classifier.Classifier`
is part of the record, because the inner headers cannot be found without it.

How it works (see docs/architecture.md for the picture):

1. Input: the Ethernet/VLAN bytes (fixed offsets 0..21) are captured as beats enter.
2. Stage B holds one beat: it captures the outer IPv4 version/IHL/protocol at the VLAN-dependent
   offset, learns where the opaque region starts, and feeds the classifier, which captures each
   profile's fields and, once they have all passed (or the packet ended), decides.
3. An elastic line (a FIFO of ``2 * (opaque_bytes / W + 4)`` beats, rounded up to a power of
   two) lets stage B run ahead of stage I, which waits at the first beat that needs the packet's
   decision (its opaque region, or its last header beat) until the decision has arrived.
4. Stage I captures every record field (Ethernet, outer and inner IPv4, the opaque bytes, TCP)
   and sums both IPv4 header checksums, at offsets now known. When the packet ends or its
   header window has passed, :class:`hw.record.RecordBuilder` computes the record (3 cycles)
   and queues it.
5. Beats wait in a FIFO (2 x header window) until their record is queued, then leave together.

Latency: the time to see ``min(frame, header_window)`` bytes, plus about 10 cycles.
Throughput: one beat per cycle for back-to-back packets of 3 beats or more (every frame from
60 bytes up at W <= 16), no bubbles in steady state; shorter runts may wait a cycle or two.
Backpressure: ``o.ready`` low fills the FIFOs, then ``i.ready`` drops. ``error`` is a sticky
internal-consistency flag (a decision lost to a full queue); it never rises with legal
parameters and tests check it stays low.
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .buffer import StreamFifo
from .capture import beat_index_bits, capture_region, region_sum
from .classifier import Classifier, Decision
from .layouts import Kind, Reason, parsed_layout
from .record import ETH_BYTES, RecordBuilder, eth_fields
from .profile import Profile
from .stream import PacketSignature, check_width, keep_count

__all__ = ["HeaderParser"]

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
        # The line must hold the beats from a packet's opaque start to its trigger, and more.
        self.line_depth = 1 << (2 * (-(-opaque_bytes // width) + 4) - 1).bit_length()
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

        adv_b = Signal()   # stage B may take a new beat (it is empty or its beat leaves)

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
        in_take = adv_b & self.i.valid
        m.d.comb += self.i.ready.eq(adv_b)
        in_lanes = masked_lanes(self.i.p.data, self.i.p.keep)
        with m.If(in_take):
            m.d.sync += in_beat.eq(bump(in_beat, self.i.p.last))
        eth_b, _ = capture_region(m, width=W, count=ETH_BYTES, start=Const(0, 1), beat=in_beat,
                                  lanes=in_lanes, take=in_take, first=in_beat == 0, name="ethB")
        l3_b, is4_b = eth_fields(m, eth_b, "B")[:2]

        # ---- stage B ---------------------------------------------------------------------
        beat_layout = data.StructLayout({"valid": 1, "data": 8 * W, "keep": W, "last": 1,
                                         "user": max(user_w, 1), "beat": BB})
        sb = Signal(beat_layout)
        with m.If(adv_b):
            m.d.sync += [sb.valid.eq(self.i.valid), sb.data.eq(Cat(*in_lanes)),
                         sb.keep.eq(self.i.p.keep), sb.last.eq(self.i.p.last),
                         sb.beat.eq(in_beat)]
            if self.user is not None:
                m.d.sync += sb.user.eq(self.i.p.meta)
        take_b = Signal()
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
        # Decisions wait here for stage I; stage B stops before this could overflow.
        dec_depth = 2 * self.line_depth
        m.submodules.decisions = decq = fifo.SyncFIFO(width=Decision.as_shape().size,
                                                       depth=dec_depth)
        m.d.comb += [decq.w_data.eq(cls.o), decq.w_en.eq(cls.o_valid)]
        with m.If(cls.o_valid & ~decq.w_rdy):
            m.d.sync += self.error.eq(1)

        # ---- elastic line between stage B and stage I -------------------------------------
        # Stage I waits here for a packet's decision; meanwhile stage B runs ahead to the
        # beats that complete it. A FIFO (not a fixed delay) so that input pauses cannot let
        # stage I overtake the decision.
        side_layout = data.StructLayout({"b": beat_layout, "l3": 5, "opaque": 10, "known": 1})
        m.submodules.line = line = StreamFifo(side_layout, depth=self.line_depth)
        m.d.comb += [
            # Room for every decision still in the classifier's pipeline.
            line.i.valid.eq(sb.valid & (decq.level < dec_depth - (Classifier.LATENCY + 3))),
            line.i.p.b.eq(sb), line.i.p.l3.eq(l3_b), line.i.p.opaque.eq(opaque_reg),
            line.i.p.known.eq(known_b),
            take_b.eq(line.i.valid & line.i.ready),
            adv_b.eq(~sb.valid | take_b),
        ]
        si = line.o.p

        # ---- stage I -----------------------------------------------------------------------
        go_i = Signal()   # stage I takes the line's head beat this cycle, if there is one
        take_i = line.o.valid & go_i
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
        # The inner IPv4 header of a tunnel is captured here; plain TCP's is the outer one
        # (substituted when the record is finalised), because a plain packet's decision may
        # arrive after its IPv4 header has passed.
        inner_l3 = Signal(20)
        m.d.comb += inner_l3.eq(dec.inner_l3)
        gate_in = dec_ok & dec.matched & si.known
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
        # TCP: after the tunnel's inner header, or right after the outer one for plain TCP.
        l4 = Signal(20)
        m.d.comb += l4.eq(Mux(dec.matched, inner_l3 + (inner_r[0][:4] << 2), si.opaque))
        gate_tcp = dec_ok & si.known & ~first_i & (~dec.matched | inner_seen)
        _, tcp_n = capture_region(m, count=20, start=l4, gate=gate_tcp, name="tcpI", **common)

        done = Signal()
        done_i = done & ~first_i
        pending = line.o.valid & ~done_i & (si.b.last | (bend_i >= H - 1))
        # Beats from the opaque region on, and the completing beat, need the decision.
        # (Not after the record is done: the decision has been consumed by then.)
        needs = ~done_i & ((si.known & (bend_i >= si.opaque)) | pending)
        compl = take_i & pending
        with m.If(take_i):
            m.d.sync += done.eq(done_i | compl)
        m.d.comb += decq.r_en.eq(compl)

        # Latch everything the record is computed from; the builder takes three cycles.
        m.submodules.builder = bld = RecordBuilder(header_window=H, opaque_bytes=C)
        with m.If(compl):
            m.d.sync += [
                bld.eth.eq(Cat(*eth_n)), bld.outer.eq(Cat(*outer_n)),
                bld.opaque.eq(Cat(*opq_n)),
                # Plain TCP's inner header is its outer one.
                bld.inner.eq(Mux(dec.matched, Cat(*inner_n), Cat(*outer_n))),
                bld.tcp.eq(Cat(*tcp_n)), bld.osum.eq(osum_n),
                bld.isum.eq(Mux(dec.matched, isum_n, osum_n)),
                bld.dec.eq(Mux(dec_ok, decq.r_data, 0)), bld.ended.eq(si.b.last),
                bld.flen.eq(frame_len(si.b.beat, si.b.keep)),
            ]
        m.d.sync += bld.i_valid.eq(compl)
        rec = bld.o
        fin_valid = bld.o_valid

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
            go_i.eq(beats.i.ready & (recq.level < rec_depth - 2) & ~(pending & bld.busy) &
                    (dec_ok | ~needs)),
            line.o.ready.eq(go_i),
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
