"""Streaming header parser: Ethernet/VLAN, outer IPv4, opaque region, inner IPv4, TCP.

:class:`HeaderParser` passes every packet through unchanged and attaches a
:class:`hw.layouts.ParseRecord` (``meta``) to all of its beats, computed exactly as
docs/parse-record.md specifies. The profile decision of the :class:`hw.classifier.Classifier`
is part of the record, because the inner headers cannot be found without it.

How it works (see docs/architecture.md for the picture):

1. Input: flags of the candidate ethertype fields (bytes 12, 16, 20: VLAN tag, IPv4, IPv6) are
   captured as beats enter, and from them where the outer IPv4 header starts.
2. Stage B holds one beat: it captures the outer IPv4 version/IHL/protocol at the VLAN-dependent
   offset, learns where the opaque region starts, and feeds the classifier (a registered
   pipeline of its own, :attr:`hw.classifier.Classifier.LATENCY` cycles), which captures each
   profile's fields and, once they have all passed (or the packet ended), decides.
3. An elastic line (a FIFO of ``2 * (opaque_bytes / W + 4)`` beats, rounded up to a power of
   two) lets stage B run ahead of stage I, which waits at the first beat that needs the packet's
   decision (its opaque region, or its last header beat) until the decision has arrived. The
   line also carries the flags stage I's take decision needs, computed in stage B.
4. Stage I only decides whether the head beat moves on, and decodes from the head beat (and
   the head decision) where each capture region is: which of its beats this is (one-hot) and
   each byte phase's lane, registered into stage J. Stage J (a register after it) captures
   every record field (Ethernet, outer and inner IPv4 and the inner Ethernet type just before
   it, TCP) at offsets now known, each region from its own copy of the beat
   (:func:`hw.replicate.replicas`), and masks the two IPv4 header
   checksum regions; stage K adds the masked words into one accumulator per word lane and
   captures the opaque bytes and (at W <= 8) the TCP bytes (their lanes were selected in J).
   When the packet ends or its header window has passed, the captures and sums are latched
   the cycle after (the header bytes from J's capture registers, the opaque and TCP bytes
   and sums from K) and :class:`hw.record.RecordBuilder` computes the record (5 cycles) and
   queues it.
   Records complete at most every 4 cycles.
5. Beats wait in a FIFO (2 x header window) and a register slice after it until their record
   is at the head of the record queue (a register, two cycles after it was queued), then
   leave together.

Every stage is registered and holds at most one short adder or compare and a few LUTs
(DESIGN.md section 7: routing is most of every path on the ECP5); registers that would fan
out over the die are copied per region or per profile.

Latency: the time to see ``min(frame, header_window)`` bytes, plus about 19 cycles.
Throughput: one beat per cycle for back-to-back packets of 4 beats or more (every frame from
60 bytes up at W <= 16), no bubbles in steady state; shorter runts may wait a cycle or two.
Backpressure: ``o.ready`` low fills the FIFOs, then ``i.ready`` drops. ``error`` is a sticky
internal-consistency flag (a decision lost to a full queue, or a beat to a full line); it
never rises with legal parameters and tests check it stays low.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .buffer import HeadFifo, ReservedFifo, SkidBuffer, StreamFifo
from .byteorder import be_value
from .capture import (beat_index_bits, capture_byte, capture_region, capture_selects,
                      region_sum)
from .classifier import Classifier, Decision
from .layouts import Kind, Reason, parsed_layout
from .record import ETH_BYTES, RecordBuilder
from .profile import Profile
from .replicate import replicas
from .stream import PacketSignature, check_width

__all__ = ["HeaderParser"]

MAX_OPAQUE_START = 22 + 60   # l3 with two tags + IPv4 header with 40 bytes of options
#: Cycles between two records' completions: the record builder starts a record at most every
#: 4 cycles (hw/record.py), and its held inputs are latched before that (stage J latches the
#: captures, stage K the checksum sums, i_valid follows).
BUILD_SPACING = 4


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
    queue_ram : "distributed" or "block"
        Where the decision queue (``2 x line depth`` decisions of ~85 bits) and the elastic
        line are stored: distributed RAM (default; at W=4, C=32 88 and about 60 cells) or
        block RAM (3 and 4 EBR), whose read latch's clock-to-out (4.3 ns) then starts stage
        I's paths: for a slow core clock (the boards' 39 MHz), where the LUT area counts
        more. Same behaviour, cycle for cycle.
    """

    def __init__(self, width=8, *, header_window=256, opaque_bytes=64, profiles=8, user=None,
                 queue_ram="distributed"):
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
        if queue_ram not in ("distributed", "block"):
            raise ValueError(f"queue_ram must be 'distributed' or 'block', not {queue_ram!r}")
        self.queue_ram = queue_ram
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
            # keep is contiguous from lane 0: the length is the first clear lane's index,
            # or the next beat's start when every lane is kept (no adder tree over keep).
            low = Const(0, lw)
            for i in reversed(range(W)):
                low = Mux(~keep[i], i, low)
            return Mux(keep[W - 1], Cat(Const(0, lw), beat + 1), Cat(low, beat))

        # ---- input: Ethernet bytes at fixed offsets ------------------------------------
        in_beat = Signal(BB)
        in_take = adv_b & self.i.valid
        m.d.comb += self.i.ready.eq(adv_b)
        in_lanes = masked_lanes(self.i.p.data, self.i.p.keep)
        with m.If(in_take):
            m.d.sync += in_beat.eq(bump(in_beat, self.i.p.last))
        # Where the outer IPv4 header starts, registered with the beat that enters stage B:
        # flags of the candidate ethertype fields (bytes 12, 16, 20) are captured, not their
        # bytes, so no 16-bit compare follows a lane multiplexer.
        in_first = in_beat == 0
        flags = {}
        for pos, kinds in ((12, ("tpid", "ip4", "ip6")), (16, ("tpid", "ip4", "ip6")),
                           (20, ("ip4", "ip6"))):
            value = Cat(in_lanes[pos % W + 1], in_lanes[pos % W])   # big-endian, even offset
            for kind in kinds:
                hit = Signal(name=f"eth{pos}_{kind}")
                flag = Signal(name=f"eth{pos}_{kind}_seen")
                if kind == "tpid":
                    m.d.comb += hit.eq((value == 0x8100) | (value == 0x88A8))
                else:
                    m.d.comb += hit.eq(value == (0x0800 if kind == "ip4" else 0x86DD))
                nxt = Mux(in_beat == pos // W, hit, Mux(in_first, 0, flag))
                with m.If(in_take):
                    m.d.sync += flag.eq(nxt)
                flags[pos, kind] = nxt
        v0 = flags[12, "tpid"]
        v1 = v0 & flags[16, "tpid"]
        l3_b, is4_b, is6_b = Signal(5), Signal(), Signal()
        with m.If(in_take):
            m.d.sync += [l3_b.eq(14 + ((v0 + v1) << 2)),
                         is4_b.eq(Mux(v1, flags[20, "ip4"],
                                      Mux(v0, flags[16, "ip4"], flags[12, "ip4"]))),
                         is6_b.eq(Mux(v1, flags[20, "ip6"],
                                      Mux(v0, flags[16, "ip6"], flags[12, "ip6"])))]

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
        # The outer header's version/IHL and protocol bytes (bytes 0 and 9): the header
        # starts at 14, 18 or 22, so each candidate byte is captured at its fixed offset (a
        # registered "this is its beat" flag and a fixed lane: no beat compare, no lane
        # multiplexer; seed 3's worst path was the carry-chain compare and 8:1 multiplexer in
        # series here) and the VLAN tag count, registered with l3_b, picks one.
        tags_b = Signal(2)
        with m.If(in_take):
            m.d.sync += tags_b.eq(Cat(v0 & ~v1, v1))
        first_rb = Signal(init=1, name="outerB_first")   # first_b, registered
        with m.If(adv_b):
            m.d.sync += first_rb.eq(in_beat == 0)

        def by_tags(c):   # the candidate for the registered VLAN tag count (0, 1, 2)
            return Mux(tags_b[1], c[2], Mux(tags_b[0], c[1], c[0]))
        ob = {}
        for k in (0, 9):
            cand = []
            for base in (14, 18, 22):
                pos = base + k
                here = Signal(name=f"outerB_at{pos}", init=(pos // W == 0))
                with m.If(adv_b):
                    m.d.sync += here.eq(in_beat == pos // W)
                _, nxt = capture_byte(m, hit=here, byte=lanes_b[pos % W], first=first_rb,
                                      take=take_b, name=f"outerB_b{pos}")
                cand.append(nxt)
            ob[k] = by_tags(cand)
        proto_b = ob[9]
        # The opaque start (l3 + 4 * IHL) and the outer header's validity are loaded in the
        # beat that holds the header's first byte (the first beat reaching l3), whose IHL is
        # then always in that beat's own lane: so they are computed per candidate start as
        # the beat enters stage B (a 16-entry table of the lane's IHL, no adder) and picked by
        # the tag count, as is "this beat reaches l3". The capture above -> IHL -> opaque
        # start adder (carry chain) -> the opaque copies was the worst routed path at seed 1
        # (main 0c79002: 8.95 ns, 9 levels, 7.15 ns routing).
        opq_c, ok_c, reach_c = [], [], []
        for base in (14, 18, 22):
            vihl = in_lanes[base % W]
            opq = Signal(7, name=f"outerB_opq{base}")
            ok = Signal(name=f"outerB_ok{base}")
            reach = Signal(name=f"outerB_reach{base}", init=(base // W == 0))
            with m.If(adv_b):
                m.d.sync += [
                    opq.eq(Array(Const(base + 4 * v, 7) for v in range(16))[vihl[:4]]),
                    ok.eq((vihl[4:8] == 4) & (vihl[:4] >= 5)),
                    # beat_end(beat) >= base
                    reach.eq(in_beat >= base // W),
                ]
            opq_c.append(opq)
            ok_c.append(ok)
            reach_c.append(reach)

        opq_b, ok_b, reached = by_tags(opq_c), by_tags(ok_c), by_tags(reach_c)
        opaque_reg = Signal(10)
        known_reg = Signal()
        outer_ok_reg = Signal()
        trig_done = Signal()
        known_b = known_reg & ~first_b
        with m.If(take_b & reached & ~known_b):
            m.d.sync += [opaque_reg.eq(opq_b), known_reg.eq(1),
                         outer_ok_reg.eq(is4_b & ok_b)]
        # The classifier's profiles read their own copies of the opaque start: the one register
        # feeding every profile's field-start adders was the worst routed path at seed 1
        # (5.8 ns on that net). They are read only while the start is known (after a load).
        opq_load = take_b & reached & ~known_b
        opq_reps = replicas(m, opq_b, min(P, 6), name="opaque", enable=opq_load, hold=True)
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
            *[cls.opaque_p[p].eq(opq_reps[p * len(opq_reps) // P]) for p in range(P)],
            cls.outer_is4.eq(is4_b), cls.outer_vihl.eq(ob[0]), cls.outer_avail.eq(avail20),
            cls.outer_proto.eq(proto_b), cls.trigger.eq(trig),
            cls.ended.eq(sb.last), cls.frame_len.eq(flen_b),
        ]
        # Decisions wait here for stage I; stage B stops before this could overflow.
        dec_depth = 2 * self.line_depth
        # Its head is a register (HeadFifo: SyncFIFOBuffered's read landed in block RAM with
        # a 4.3 ns clock-to-out): stage I derives the inner header's capture offsets from the
        # head decision. (With queue_ram="block" that is accepted, for the area.)
        m.submodules.decisions = decq = HeadFifo(Decision.as_shape().size, dec_depth,
                                                 ram=self.queue_ram)
        m.d.comb += [decq.w_data.eq(cls.o), decq.w_en.eq(cls.o_valid)]
        with m.If(cls.o_valid & ~decq.w_rdy):
            m.d.sync += self.error.eq(1)

        # ---- elastic line between stage B and stage I -------------------------------------
        # Stage I waits here for a packet's decision; meanwhile stage B runs ahead to the
        # beats that complete it. A FIFO (not a fixed delay) so that input pauses cannot let
        # stage I overtake the decision.
        # Stage I's take decision reads only flags computed here (no compare on its path).
        side_layout = data.StructLayout({"b": beat_layout, "l3": 5, "opaque": 10, "known": 1,
                                         "first": 1, "in_opaque": 1, "ends": 1,
                                         "is4": 1, "is6": 1, "flen": 16, "short": 1,
                                         "rel_outer": signed(BB + 2), "rel_opq": signed(BB + 2)})
        m.submodules.line = line = StreamFifo(side_layout, depth=self.line_depth,
                                              ram=None if self.queue_ram == "distributed"
                                              else self.queue_ram)
        # Registered (a cycle late, hence one more entry of margin).
        dec_room = Signal()
        m.d.sync += dec_room.eq(decq.level < dec_depth - (Classifier.LATENCY + 4))
        # The line's own room is registered too (one entry of margin: the level grows by at
        # most one a cycle), so stage B's advance and ``i.ready`` do not depend on the FIFO
        # level combinationally (seed 2's worst routed path: level -> ready -> advance ->
        # i.ready -> stage B's enables). The FIFO is never written full.
        line_room = Signal()
        m.d.sync += line_room.eq(line.level < self.line_depth - 1)
        with m.If(line.i.valid & ~line.i.ready):
            m.d.sync += self.error.eq(1)
        m.d.comb += [
            # Room for every decision still in the classifier's pipeline.
            line.i.valid.eq(sb.valid & dec_room & line_room),
            line.i.p.b.eq(sb), line.i.p.l3.eq(l3_b), line.i.p.opaque.eq(opaque_reg),
            line.i.p.known.eq(known_b), line.i.p.first.eq(first_b),
            line.i.p.in_opaque.eq(known_b & (bend_b >= opaque_reg)),
            line.i.p.ends.eq(sb.last | (bend_b >= H - 1)),
            # What the record builder needs first, computed here where it is cheap.
            line.i.p.is4.eq(is4_b), line.i.p.is6.eq(is6_b), line.i.p.flen.eq(flen_b),
            line.i.p.short.eq(sb.last & (flen_b <= H)),
            # The beat index relative to the outer header's and the opaque region's start
            # beats, for stage I to decode into stage J's capture selects.
            line.i.p.rel_outer.eq(sb.beat - l3_b[lw:]),
            line.i.p.rel_opq.eq(sb.beat - opaque_reg[lw:]),
            take_b.eq(line.i.valid),
            adv_b.eq(~sb.valid | take_b),
        ]
        si = line.o.p

        # ---- stage I: the take decision --------------------------------------------------
        # Stage I decides whether the line's head beat moves on (its decision is there when it
        # needs one, the record queue and the builder have room); stage J, one register later,
        # captures from the taken beat, so the take decision drives only a few enables.
        go_i = Signal()   # stage I takes the line's head beat this cycle, if there is one
        take_i = line.o.valid & go_i
        first_i = si.first
        dec = Decision(decq.r_data)
        # Capture offsets past 1023 never fall inside the header window: saturate.
        inner_l3_i = Signal(10, name="inner_l3_i")
        m.d.comb += inner_l3_i.eq(Mux(dec.inner_l3[10:].any(), 1023, dec.inner_l3[:10]))
        dec_ok = decq.r_rdy
        done = Signal()
        done_i = done & ~first_i
        pending = line.o.valid & ~done_i & si.ends
        # Beats from the opaque region on, and the completing beat, need the decision.
        # (Not after the record is done: the decision has been consumed by then.)
        needs = ~done_i & (si.in_opaque | pending)
        compl = take_i & pending
        with m.If(take_i):
            m.d.sync += done.eq(done_i | compl)
        m.d.comb += decq.r_en.eq(compl)

        # ---- stage J: captures from the taken beat -----------------------------------------
        j_layout = data.StructLayout({"valid": 1, "compl": 1, "first": 1, "b": beat_layout,
                                      "l3": 5, "opaque": 10, "known": 1, "dec_ok": 1,
                                      "dec": Decision, "inner_l3": 10,
                                      "is4": 1, "is6": 1, "flen": 16, "short": 1})
        j = Signal(j_layout)
        m.d.sync += [
            j.valid.eq(take_i), j.compl.eq(compl), j.first.eq(first_i), j.b.eq(si.b),
            j.l3.eq(si.l3), j.opaque.eq(si.opaque), j.known.eq(si.known),
            j.is4.eq(si.is4), j.is6.eq(si.is6), j.flen.eq(si.flen), j.short.eq(si.short),
            j.dec_ok.eq(dec_ok), j.dec.eq(Mux(dec_ok, decq.r_data, 0)),
            j.inner_l3.eq(inner_l3_i),
        ]
        # Stage J's capture selects, decoded here from the line's head beat (every J register
        # is loaded every cycle), so J's captures hold no compare or adder: which beat of each
        # region this is (one-hot), and each byte phase's lane.
        pre_outer = capture_selects(m, width=W, count=20, start_low=si.l3[:lw],
                                    rel=si.rel_outer, name="outerS")
        pre_opq = capture_selects(m, width=W, count=C, start_low=si.opaque[:lw],
                                  rel=si.rel_opq, name="opqS")
        # The inner header's start comes with the decision (a stage I input): its beat offset
        # is subtracted here, the compare stays in J.
        rel_inner = Signal(signed(BB + 2), name="j_rel_inner")
        m.d.sync += rel_inner.eq(si.b.beat - inner_l3_i[lw:])
        pre_inner = capture_selects(m, width=W, count=20, start_low=inner_l3_i[:lw],
                                    rel=rel_inner, hot_now=True, name="innerS")
        take_j, first_j = j.valid, j.first
        lanes_j = [j.b.data.word_select(i, 8) for i in range(W)]
        bend_j = beat_end(j.b.beat)
        common = dict(width=W, beat=j.b.beat, lanes=lanes_j, take=take_j, first=first_j)
        # The taken beat feeds every capture region's lane multiplexers, and take/first every
        # capture byte: the outer, opaque, inner and TCP regions each read their own copy of
        # the beat's data and first flag (copy 0 is J's own register), the opaque region
        # (512 flip-flops) its own copy of take and of the record latch's enable.
        beat_reps = replicas(m, Cat(si.b.data, first_i), 5, name="j_beat", enable=take_i)
        take_reps = replicas(m, take_i, 2, name="j_take")
        compl_reps = replicas(m, compl, 2, name="j_compl")

        def region(n, take=take_reps[0]):
            rep = beat_reps[n]
            return dict(common, lanes=[rep.word_select(i, 8) for i in range(W)],
                        first=rep[8 * W], take=take)
        sum_args = dict(width=W, beat=j.b.beat, data=j.b.data, take=take_j, first=first_j)
        # The Ethernet bytes sit at fixed offsets: each byte's lane is fixed and its beat flag
        # is registered in stage I (eth_hot[q]: J holds beat q), so a byte's enable is one LUT
        # of registers. Compared in J, the beat index's decode (shared by synthesis with the
        # checksum masks' compares) -> byte 11's enable was the worst routed path at seed 1
        # (main 63560dd with --tmg-ripup: 8.11 ns, 4 levels, 6.99 ns routing).
        # At W < 8 (the boards' W=4 at 39 MHz, far from this limit) the bytes keep the
        # region capture: with the registered flags the Versa NIC's netlist changed and
        # router1 did not finish it (about 4,100 arcs left after 21 minutes, seed 1;
        # docs/boards.md), while the earlier form routes there.
        if W >= 8:
            eth_beats = -(-ETH_BYTES // W)
            eth_hot = Signal(eth_beats, name="ethS_hot")
            m.d.sync += eth_hot.eq(Cat(*(si.b.beat == q for q in range(eth_beats))))
            eth_r = [capture_byte(m, hit=eth_hot[k // W], byte=lanes_j[k % W], first=first_j,
                                  take=take_j, name=f"ethI{k}")[0] for k in range(ETH_BYTES)]
        else:
            eth_r, _ = capture_region(m, count=ETH_BYTES, start=Const(0, 1), name="ethI",
                                      **common)
        outer_r, outer_n = capture_region(m, count=20, start=j.l3, pre=pre_outer,
                                          name="outerI", **region(1))
        # The opaque bytes (the largest region) take their lanes a stage later (stage K),
        # and are latched into the builder with the checksum sums.
        _, opq_n = capture_region(m, count=C, start=j.opaque, gate=j.known, pre=pre_opq,
                                  lane_stage=True, name="opq", **region(2, take_reps[1]))

        def header_end(base, ihl_reg, ihl_next, name, fallback=None):
            """``base + 4 * max(5, ihl)``: the end of an IPv4 header's checksummed region.

            At W <= 8 from the *registered* IHL, one cycle late: the beat after the IHL byte's
            lies wholly inside the first 20 header bytes, so it cannot tell, and a stale IHL
            (the previous packet's, or zero) reads as 5. At W = 16 that beat may hold options,
            so the end is computed from the byte as it is captured.
            """
            if W > 8:
                return base + (Mux(ihl_next < 5, 5, ihl_next) << 2)
            end = Signal(11, name=name)
            value = base + (Mux(ihl_reg < 5, 5, ihl_reg) << 2)
            m.d.sync += end.eq(value if fallback is None else Mux(fallback, 2047, value))
            return end

        osum_n = region_sum(m, start=j.l3, end=header_end(j.l3, outer_r[0][:4],
                                                          outer_n[0][:4], "osum_end"),
                            name="osum", **sum_args)
        # The inner IPv4 header of a tunnel is captured here; plain TCP's is the outer one
        # (substituted when the record is finalised), because a plain packet's decision may
        # arrive after its IPv4 header has passed.
        inner_l3 = j.inner_l3
        # (j.dec_ok & j.dec.matched & j.known, registered from what J loads.)
        gate_in = Signal(name="j_gate_in")
        m.d.sync += gate_in.eq(dec_ok & dec.matched & si.known)
        inner_r, inner_n = capture_region(m, count=20, start=inner_l3, gate=gate_in,
                                          pre=pre_inner, name="innerI", **region(3))
        isum_n = region_sum(m, start=inner_l3, gate=gate_in,
                            end=header_end(inner_l3, inner_r[0][:4], inner_n[0][:4],
                                           "isum_end", fallback=~gate_in),
                            name="isum", **sum_args)
        # The inner Ethernet header's EtherType (checked when the profile says inner_eth): the
        # two bytes before the inner header, wherever the opaque length put it. They are bytes
        # W-2 and W-1 of a region starting one beat before the inner header (inner_l3 - W),
        # which has the inner header's lane phases: they reuse its registered lane selects and
        # carries (pre_inner), and only the beat compare is new (rel == -1: the beat before
        # the inner header's first). The same structure as every other captured byte.
        inner_beat_before = Signal(name="j_inner_before")
        m.d.comb += inner_beat_before.eq(rel_inner == -1)
        et_rep = beat_reps[3]
        et_lanes = Array(et_rep.word_select(i, 8) for i in range(W))
        et_r = []
        for k in range(2):
            kr = W - 2 + k
            et_byte = Signal(8, name=f"innerE_lane{k}")
            et_hit = Signal(name=f"innerE_hit{k}")
            m.d.comb += [et_byte.eq(et_lanes[pre_inner[2][kr]]),
                         et_hit.eq(gate_in & Mux(pre_inner[1][kr], pre_inner[0][0],
                                                 inner_beat_before))]
            reg, _ = capture_byte(m, hit=et_hit, byte=et_byte, first=et_rep[8 * W],
                                  take=take_reps[0], name=f"innerE{k}")
            et_r.append(reg)
        inner_seen = Signal()
        with m.If(take_j):
            m.d.sync += inner_seen.eq((inner_seen & ~first_j) |
                                      (gate_in & (bend_j >= inner_l3)))
        # TCP: after the tunnel's inner header, or right after the outer one for plain TCP.
        # A tunnel's TCP offset is registered from the captured inner IHL (and so is its
        # gate): the TCP header starts at least 20 bytes after the IHL byte, two beats later
        # at W <= 8.
        # The start itself is registered too (W <= 8): a plain packet's TCP header (at the
        # opaque start) is at least two beats after the beat that made the start known, and
        # a tunnel's is gated by the registered IHL as above. A stale start (the previous
        # beat's) can only capture bytes before the header, which its own bytes overwrite.
        l4_calc = Mux(j.dec.matched, inner_l3 + (inner_r[0][:4] << 2), j.opaque)
        if W <= 8:
            # Registered too: the start's lanes (from l4_calc, like the start) and the gate,
            # j.dec_ok & j.known & ~first_j & (~j.dec.matched | l4_tun_ok), from what J
            # loads (l4_tun_ok is inner_seen one cycle late).
            l4 = Signal(11, name="l4_start")
            m.d.sync += l4.eq(l4_calc)
            gate_tcp = Signal(name="j_gate_tcp")
            m.d.sync += gate_tcp.eq(dec_ok & si.known & ~first_i &
                                    (~(dec_ok & dec.matched) | inner_seen))
            rel_tcp = Signal(signed(BB + 2), name="j_rel_tcp")
            m.d.comb += rel_tcp.eq(j.b.beat - l4[lw:])
            # The start's lanes (registered from l4_calc[:lw], as capture_selects would) depend
            # on the IHL only through its low lw - 2 bits (the header is 4 * IHL bytes): every
            # byte phase's carry and lane are computed a stage early (in stage I, from what J
            # loads) for each value of those bits, and J picks one by the captured IHL, with
            # no adder in that cycle. The TCP start adder -> plain/tunnel multiplexer -> lane
            # select was the worst routed path (parser7 9e552f6, seed 1: 8.39 ns, 7.46 ns
            # routing).
            nb = max(lw - 2, 0)
            tun_i = dec_ok & dec.matched   # j.dec.matched, a cycle early
            cands = []
            for v in range(1 << nb):
                low = Mux(tun_i, (inner_l3_i[:lw] + 4 * v)[:lw], si.opaque[:lw]) if lw else 0
                cand = []
                for kr in range(min(W, 20)):
                    c = Signal(lw + 1, name=f"tcpS_v{v}_{kr}")
                    m.d.sync += c.eq(Value.cast(low)[:lw] + kr)
                    cand.append(c)
                cands.append(cand)
            ihl_lo = inner_r[0][:nb] if nb else Const(0, 1)
            tcp_beats = (20 - 1) // W + 2
            hot = Signal(tcp_beats, name="tcpS_hot")
            m.d.comb += hot.eq(Cat(*(rel_tcp == q for q in range(tcp_beats))))
            carry, lane = [], []
            for kr in range(min(W, 20)):
                sel = Signal(lw + 1, name=f"tcpS_s{kr}")
                m.d.sync += sel.eq(Array(cand[kr] for cand in cands)[ihl_lo])
                carry.append(sel[lw])
                lane.append(sel[:lw])
            pre_tcp = (hot, carry, lane)
        else:
            l4, l4_tun_ok = l4_calc, inner_seen
            gate_tcp = (j.dec_ok & j.known & ~first_j & (~j.dec.matched | l4_tun_ok))
            pre_tcp = None
        # At W <= 8 the TCP bytes take their lanes a stage later (stage K, like the opaque
        # bytes) and are latched with them: lane multiplexer -> capture byte -> record latch in
        # one cycle was the worst routed path (8.73 ns, 6 levels) once the record queue's head
        # was a register. Nothing reads the TCP byte registers before the record latch.
        tcp_late = W <= 8
        _, tcp_n = capture_region(m, count=20, start=l4, gate=gate_tcp, pre=pre_tcp,
                                  lane_stage=tcp_late, name="tcpI", **region(4))

        # Latch everything the record is computed from (the checksum sums one cycle later).
        m.submodules.builder = bld = RecordBuilder(header_window=H, opaque_bytes=C,
                                                   sum_words=W // 2)
        k_compl_opq = Signal(name="k_compl_opq")
        m.d.sync += k_compl_opq.eq(compl_reps[1])
        with m.If(k_compl_opq):
            m.d.sync += bld.opaque.eq(Cat(*opq_n))
            if tcp_late:
                m.d.sync += bld.tcp.eq(Cat(*tcp_n))
        # The Ethernet, outer and inner header bytes (and the inner Ethernet type) are latched
        # a cycle later too, from their capture registers (which then hold what their next
        # values were in the completing cycle), still before the builder reads them
        # (i_valid): the inner header's beat decode -> byte hit -> capture byte -> builder
        # latch, pulled across the die towards the builder, was the worst routed path at
        # seed 3 (8.51 ns, 5 levels, 3.4 ns on the decode's net).
        k_compl_hdr = replicas(m, compl_reps[0], 2, name="k_compl_hdr")[1]
        with m.If(k_compl_hdr):
            m.d.sync += [
                bld.eth.eq(Cat(*eth_r)), bld.outer.eq(Cat(*outer_r)),
                # (Plain TCP's inner header is its outer one: the builder substitutes it.)
                bld.inner.eq(Cat(*inner_r)), bld.inner_et.eq(be_value(et_r)),
            ]
        with m.If(compl_reps[0]):
            m.d.sync += [
                *([] if tcp_late else [bld.tcp.eq(Cat(*tcp_n))]),
                bld.dec.eq(j.dec), bld.ended.eq(j.b.last), bld.flen.eq(j.flen),
                bld.l3.eq(j.l3), bld.is4.eq(j.is4), bld.is6.eq(j.is6), bld.short.eq(j.short),
            ]
        k_compl, k_matched = Signal(), Signal()
        m.d.sync += [k_compl.eq(j.compl), k_matched.eq(j.dec.matched)]
        with m.If(k_compl):
            m.d.sync += [bld.osum.eq(Cat(*osum_n)),
                         bld.isum.eq(Mux(k_matched, Cat(*isum_n), Cat(*osum_n)))]
        m.d.sync += bld.i_valid.eq(k_compl)
        # A record may complete only every BUILD_SPACING cycles (the builder reads its
        # inputs for three cycles after i_valid, see hw/record.py).
        # `spaced` is low for BUILD_SPACING - 1 cycles after a completion: its own register
        # (not the OR of a shift register whose taps synthesis merges with j.compl and the
        # builder's i_valid, which sit far away: 4.2 ns on that net to stage I's take decision).
        recent = Signal(BUILD_SPACING - 2)
        spaced = Signal(init=1)
        m.d.sync += [recent.eq(Cat(compl, recent[:-1])), spaced.eq(~(compl | recent.any()))]
        rec = bld.o
        fin_valid = bld.o_valid

        # Room is reserved before a record can start (room below), so the queue is written
        # every cycle and its ~270 distributed-RAM cells share no write-enable net (the top
        # routed path after the classifier's copies was that enable: 6 ns on the one net);
        # Slices with their own pointers, so no address net reaches all of them either.
        # The head is a register (`head`): the read pointer -> RAM cells -> `meta` path was the
        # worst routed path (9.25 ns, 7.6 ns on one slice's pointer net) with `meta` read
        # combinationally; now `meta` starts at a flip-flop. The head's load enable follows
        # o.ready in the same cycle, one LUT per slice: eight slices, so each enable net
        # reaches ~160 flip-flops (of the record's 1274 bits).
        rec_depth = 8
        m.submodules.records = recq = ReservedFifo(rec.shape().size, rec_depth, slices=8,
                                                   head=True)
        m.d.comb += [recq.w_data.eq(rec), recq.w_en.eq(fin_valid)]

        # ---- output FIFO and join -----------------------------------------------------------
        out_layout = data.StructLayout({"data": 8 * W, "keep": W, "last": 1,
                                        "user": max(user_w, 1)})
        # (In block RAM either way, being deep; with queue_ram="block" a HeadFifo, same timing,
        # whose read yosys maps without its read-first emulation, see HeadFifo.)
        beats_depth = 2 * H // W
        beats_ram = ("block" if self.queue_ram == "block" and not beats_depth & (beats_depth - 1)
                     else None)
        m.submodules.beats = beats = StreamFifo(out_layout, depth=beats_depth, ram=beats_ram)
        # Room in both output queues, registered (a cycle late: one more entry of margin).
        # (One register for both: one input less on stage I's take decision.)
        room = Signal()
        m.d.sync += room.eq((beats.level < beats.depth - 2) & (recq.level < rec_depth - 5))
        m.d.comb += [
            beats.i.valid.eq(take_i), beats.i.p.data.eq(si.b.data), beats.i.p.keep.eq(si.b.keep),
            beats.i.p.last.eq(si.b.last), beats.i.p.user.eq(si.b.user),
            go_i.eq(room & (spaced | ~pending) & (dec_ok | ~needs)),
            line.o.ready.eq(go_i),
        ]
        # The FIFO is in block RAM, whose output register yosys leaves off (4.1 ns clock-to-out
        # routed): a register slice after it, so the beat's valid and last, which the record
        # queue's head load enables follow, start at flip-flops.
        m.submodules.beats_out = bout = SkidBuffer(out_layout)
        wiring.connect(m, beats.o, bout.i)
        m.d.comb += [
            self.o.valid.eq(bout.o.valid & recq.r_rdy),
            self.o.p.data.eq(bout.o.p.data), self.o.p.keep.eq(bout.o.p.keep),
            self.o.p.last.eq(bout.o.p.last), self.o.p.meta.eq(recq.r_data),
            bout.o.ready.eq(self.o.ready & recq.r_rdy),
            # (r_en is ignored while r_rdy is low: without r_rdy here, each slice's head load
            # enable is one LUT of o.ready, the beat's valid and last, and its own valid.)
            recq.r_en.eq(self.o.ready & bout.o.valid & bout.o.p.last),
        ]
        if self.user is not None:
            m.d.comb += self.o.p.user.eq(bout.o.p.user)

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
