"""TX TCP segmentation offload (TSO) for plain and tunneled TCP over IPv4.

See :class:`TsoEngine`; the rules are in DESIGN.md section 4, docs/tso.md and the reference
model :mod:`tunnelnic.model.tso`.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .buffer import StreamFifo
from .byteorder import lanes
from .layouts import OFFSET_BITS, TsoRequest, parsed_signature
from .stream import PacketSignature, check_width, keep_count, packet_layout
from .tso_calc import TsoCalc
from .tso_defs import DEFAULT_MAX_FRAME, DEFAULT_MSS, TsoReason, tso_stats_layout
from .tso_layouts import PATCH_BYTES, DescKind, context_layout, descriptor_layout
from .tso_writer import TsoWriter

__all__ = ["TsoEngine"]

OUT_FIFO_DEPTH = 8
DESC_FIFO_DEPTH = 8


class TsoEngine(wiring.Component):
    """Cuts TCP superframes into wire-size segments, W bytes per beat.

    Ports
    -----
    i : In(parsed_signature(width, opaque_bytes, user=TsoRequest))
        Frames from the parser, with their parse record (``meta``) and TSO request (``user``).
    o : Out(PacketSignature(width))
        Segments and pass-through frames, in input order.
    enable : In(1)
        0: every frame passes through (counted as ``pass_no_request``).
    mss_default : In(14)
        MSS used when a request says ``mss == 0``.
    stats : Out(tso_stats_layout(width))
        Per-cycle event pulses (see :func:`hw.tso_defs.tso_stats_layout`).

    Structure: the input side (:class:`~hw.tso_writer.TsoWriter`) decides per frame from the
    record, keeps a superframe's headers in one of two header banks (``header_window`` bytes
    each) and writes each segment's payload into a ring of ``ring_bytes`` bytes, already on the
    lanes it will occupy in the output frame; when a segment is complete it pushes a
    descriptor carrying the segment's payload sum. The calculator (:class:`~hw.tso_calc.TsoCalc`)
    turns a descriptor into the patched header bytes; the segment side replays the header bank
    with those bytes patched in, then the payload from the ring, through a 3-stage registered
    read pipeline into an 8-entry output FIFO (issue is credit-based, so backpressure never
    stalls the pipeline). A pass-through frame is cut-through: once every earlier segment has
    been sent, its beats go from ``i`` through the same pipeline to ``o``.

    Throughput: 1 output beat per cycle while segments are ready, with 1 idle cycle between
    segments; a segment cannot start before the calculator has its header (19 cycles after it
    took the previous one), which bounds small-MSS throughput (docs/tso.md). Input: 1 beat
    per cycle plus up to 2 cycles per segment, 3 cycles per frame to decide.

    Latency: the first segment leaves after its whole payload is in the ring (a segment's
    TCP checksum sits in its header) plus the calculator time.

    Backpressure: ``o.ready`` low stops issue; ``i.ready`` drops when the ring, the descriptor
    FIFO or the header banks are full, or while a pass-through waits for earlier segments.
    Reset empties everything and forgets any partial packet.

    Truncated superframes (frame shorter than its IP total length): the segments completely
    received are sent, the partial one is dropped, ``stats.truncated`` pulses.
    """

    def __init__(self, width=8, *, header_window=256, opaque_bytes=64,
                 max_frame=DEFAULT_MAX_FRAME, ring_bytes=16384):
        check_width(width)
        if header_window not in (64, 128, 256, 512):
            raise ValueError(f"header_window must be 64, 128, 256 or 512 bytes, "
                             f"not {header_window}")
        if not 64 <= max_frame <= 16383 + header_window:
            raise ValueError(f"max_frame must be between 64 and {16383 + header_window}, "
                             f"not {max_frame}")
        ring_depth = ring_bytes // width
        if ring_bytes % width or ring_depth & (ring_depth - 1):
            raise ValueError(f"ring_bytes must be a power of two multiple of the width, "
                             f"not {ring_bytes}")
        if ring_depth < (max_frame + 2 * width) // width + 4:
            raise ValueError(f"a {ring_bytes}-byte ring cannot hold one {max_frame}-byte "
                             f"segment")
        self.width = width
        self.header_window = header_window
        self.opaque_bytes = opaque_bytes
        self.max_frame = max_frame
        self.ring_depth = ring_depth
        super().__init__({
            "i": In(parsed_signature(width, opaque_bytes, TsoRequest)),
            "o": Out(PacketSignature(width)),
            "enable": In(1, init=1),
            "mss_default": In(14, init=DEFAULT_MSS),
            "stats": Out(tso_stats_layout(width)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        lw = (W - 1).bit_length()
        hb = self.header_window // W

        m.submodules.writer = wr = TsoWriter(W, self.header_window, self.ring_depth,
                                             self.max_frame, self.opaque_bytes)
        m.submodules.calc = calc = TsoCalc(W)
        m.submodules.ring = ring = Memory(shape=8 * W, depth=self.ring_depth, init=[])
        m.submodules.hdr = hdr = Memory(shape=8 * W, depth=2 * hb, init=[])
        ring_w = ring.write_port()
        ring_r = ring.read_port()
        hdr_w = hdr.write_port()
        hdr_r = hdr.read_port()
        dlayout = descriptor_layout()
        m.submodules.desc = desc = StreamFifo(dlayout, DESC_FIFO_DEPTH)
        m.submodules.out = out = StreamFifo(packet_layout(W), OUT_FIFO_DEPTH)
        wiring.connect(m, out.o, wiring.flipped(self.o))

        # ---- Input side ------------------------------------------------------------------
        pass_ready = Signal()
        m.d.comb += [
            wr.i_valid.eq(self.i.valid), wr.i_p.eq(self.i.payload),
            self.i.ready.eq(wr.i_ready | pass_ready),
            wr.enable.eq(self.enable), wr.mss_default.eq(self.mss_default),
            ring_w.en.eq(wr.ring_we), ring_w.addr.eq(wr.ring_waddr),
            ring_w.data.eq(wr.ring_wdata),
            hdr_w.en.eq(wr.hdr_we), hdr_w.addr.eq(wr.hdr_waddr), hdr_w.data.eq(wr.hdr_wdata),
            desc.i.valid.eq(wr.desc_valid), desc.i.payload.eq(wr.desc),
        ]
        # Registered (one cycle old, so one more entry of margin).
        desc_room = Signal()
        m.d.sync += desc_room.eq(desc.level <= DESC_FIFO_DEPTH - 5)
        m.d.comb += wr.desc_room.eq(desc_room)
        bank_busy = Signal(2)
        release = Signal()
        release_bank = Signal()
        ctx = calc.ctx
        with m.If(wr.claim):
            m.d.sync += bank_busy.bit_select(~wr.bank, 1).eq(1)
            with m.If(wr.bank):
                m.d.sync += ctx[0].eq(wr.ctx)
            with m.Else():
                m.d.sync += ctx[1].eq(wr.ctx)
        with m.If(release):
            m.d.sync += bank_busy.bit_select(release_bank, 1).eq(0)
        m.d.comb += wr.bank_busy.eq(bank_busy)

        # ---- Calculator ------------------------------------------------------------------
        m.d.comb += [calc.d_valid.eq(desc.o.valid), calc.d.eq(desc.o.payload),
                     desc.o.ready.eq(calc.d_ready)]

        # ---- Segment side: issue (R0) -> memory (R1) -> merge (R2) -> patch (R3) -> FIFO --
        rptr = Signal(wr.ptr_bits)
        m.d.comb += wr.ring_rptr.eq(rptr)
        r1 = Signal(); r2 = Signal(); r3 = Signal()
        credit = Signal()
        # Registered: assumes this cycle issues, so next cycle's count is never underestimated.
        m.d.sync += credit.eq(out.level + r1 + r2 + r3 + 1 < OUT_FIFO_DEPTH)

        tog = Signal()                                   # which patch value set
        vals = [Signal(8 * PATCH_BYTES, name=f"vals{i}") for i in range(2)]
        seg_ctx = Signal(context_layout())
        seg_bank = Signal()
        seg_last = Signal()
        b = Signal(OFFSET_BITS + 5)                      # output beat index
        rem = Signal(16)                                 # output beats after this one
        last_r = Signal()                                # rem == 0
        ring_left = Signal(16)                           # ring beats still to read
        end_mask = Signal(W)                             # keep of the last beat

        # Per-beat control computed at issue.
        i_valid = Signal(); i_pass = Signal(); i_last = Signal()
        i_keep = Signal(W); i_hmask = Signal(W); i_tog = Signal()
        i_sel = Signal(W * PATCH_BYTES)
        i_data = Signal(8 * W)

        next_ctx = Signal(context_layout())
        m.d.comb += next_ctx.eq(Mux(calc.next_bank, ctx[1], ctx[0]))
        hl = seg_ctx.hl
        hbeat = hl[lw:]
        s = hl[:lw]

        m.d.comb += [hdr_r.addr.eq(Cat(b[:(hb - 1).bit_length()], seg_bank)),
                     ring_r.addr.eq(rptr[:-1])]

        # Combinational outputs as plain expressions of registered state (see TsoWriter).
        # One-hot state registers.
        st_idle = Signal(init=1); st_seg = Signal(); st_pass = Signal()
        take = Signal(); take_seg = Signal(); take_pass = Signal(); take_drop = Signal()
        issue = Signal(); is_last = Signal(); rd_ring = Signal(); pass_beat = Signal()
        m.d.comb += [
            take.eq(st_idle & calc.next_valid),
            take_seg.eq(take & (calc.next_kind == DescKind.SEGMENT)),
            take_pass.eq(take & (calc.next_kind == DescKind.PASS)),
            take_drop.eq(take & (calc.next_kind == DescKind.DROP)),
            issue.eq(st_seg & credit),
            is_last.eq(last_r),
            rd_ring.eq((b >= hbeat) & (ring_left != 0)),
            pass_beat.eq(st_pass & credit & self.i.valid),
            pass_ready.eq(st_pass & credit),
            calc.next_take.eq(take),
            self.stats.segments.eq(take_seg),
            release.eq(take_drop | (issue & is_last & seg_last)),
            release_bank.eq(Mux(take_drop, calc.next_bank, seg_bank)),
            i_valid.eq(issue | pass_beat),
            i_pass.eq(pass_beat),
            i_last.eq(Mux(st_pass, self.i.payload.last, is_last)),
            i_tog.eq(tog),
            i_data.eq(self.i.payload.data),
            hdr_r.en.eq(issue),
            ring_r.en.eq(issue & rd_ring),
            i_keep.eq(Mux(st_pass, self.i.payload.keep, Mux(is_last, end_mask, (1 << W) - 1))),
            wr.pass_done.eq(pass_beat & self.i.payload.last),
        ]
        for x in range(W):
            m.d.comb += i_hmask[x].eq((b < hbeat) | ((b == hbeat) & (x < s)))
        for k in range(PATCH_BYTES):
            off = seg_ctx.patch_off[k]
            hit = seg_ctx.patch_en[k] & (off[lw:] == b)
            for x in range(W):
                m.d.comb += i_sel[x * PATCH_BYTES + k].eq(hit & (off[:lw] == x))

        with m.If(st_idle):
            with m.If(take_seg):
                cx = next_ctx
                m.d.sync += [
                    seg_ctx.eq(cx), seg_bank.eq(calc.next_bank),
                    seg_last.eq(calc.next_last),
                    b.eq(0), rem.eq(calc.next_rem), last_r.eq(calc.next_one),
                    end_mask.eq(calc.next_end_mask), ring_left.eq(calc.next_ring),
                    tog.eq(~tog),
                    vals[0].eq(Mux(tog, calc.next_vals, vals[0])),
                    vals[1].eq(Mux(tog, vals[1], calc.next_vals)),
                    st_idle.eq(0), st_seg.eq(1),
                ]
            with m.If(take_pass):
                m.d.sync += [st_idle.eq(0), st_pass.eq(1)]
        with m.If(st_seg):
            with m.If(issue):
                with m.If(rd_ring):
                    m.d.sync += [rptr.eq(rptr + 1), ring_left.eq(ring_left - 1)]
                m.d.sync += [b.eq(b + 1), rem.eq(rem - 1), last_r.eq(rem == 1)]
                with m.If(is_last):
                    m.d.sync += [st_seg.eq(0), st_idle.eq(1)]
        with m.If(st_pass):
            with m.If(pass_beat & self.i.payload.last):
                m.d.sync += [st_pass.eq(0), st_idle.eq(1)]

        # R1: memory data appears; carry the control.
        r1_pass = Signal(); r1_last = Signal(); r1_keep = Signal(W); r1_hmask = Signal(W)
        r1_tog = Signal(); r1_sel = Signal(W * PATCH_BYTES); r1_data = Signal(8 * W)
        r1_ring = Signal()
        m.d.sync += r1_ring.eq(ring_r.en)
        m.d.sync += [r1.eq(i_valid), r1_pass.eq(i_pass), r1_last.eq(i_last), r1_keep.eq(i_keep),
                     r1_hmask.eq(i_hmask), r1_tog.eq(i_tog), r1_sel.eq(i_sel),
                     r1_data.eq(i_data)]
        # R2: merge header lanes and ring lanes (or the pass-through beat), registered.
        r2_last = Signal(); r2_keep = Signal(W); r2_tog = Signal()
        r2_sel = Signal(W * PATCH_BYTES); r2_data = Signal(8 * W)
        merged = Cat(*[Mux(r1_pass, lanes(r1_data, W)[x],
                           Mux(r1_hmask[x], lanes(hdr_r.data, W)[x],
                               Mux(r1_ring, lanes(ring_r.data, W)[x], 0)))
                       for x in range(W)])
        m.d.sync += [r2.eq(r1), r2_last.eq(r1_last), r2_keep.eq(r1_keep), r2_tog.eq(r1_tog),
                     r2_sel.eq(Mux(r1_pass, 0, r1_sel)), r2_data.eq(merged)]
        # R3: patch.
        r3_last = Signal(); r3_keep = Signal(W); r3_data = Signal(8 * W)
        cur_vals = Mux(r2_tog, vals[1], vals[0])
        val_bytes = [cur_vals.word_select(k, 8) for k in range(PATCH_BYTES)]
        patched = []
        for x in range(W):
            sel = r2_sel[x * PATCH_BYTES:(x + 1) * PATCH_BYTES]
            byte = Mux(sel.any(), 0, lanes(r2_data, W)[x])
            for k in range(PATCH_BYTES):
                byte = byte | Mux(sel[k], val_bytes[k], 0)
            patched.append(byte)
        m.d.sync += [r3.eq(r2), r3_last.eq(r2_last), r3_keep.eq(r2_keep),
                     r3_data.eq(Cat(*patched))]
        m.d.comb += [out.i.valid.eq(r3), out.i.payload.data.eq(r3_data),
                     out.i.payload.keep.eq(r3_keep), out.i.payload.last.eq(r3_last)]

        # ---- Statistics ------------------------------------------------------------------
        st = self.stats
        reason = wr.reason
        m.d.comb += [
            st.superframes.eq(wr.decided & (reason == TsoReason.SEGMENTED)),
            st.passed.eq(wr.decided & (reason != TsoReason.SEGMENTED)),
            st.pass_no_request.eq(wr.decided & (reason == TsoReason.NO_REQUEST)),
            st.pass_not_offloadable.eq(wr.decided & (reason == TsoReason.NOT_OFFLOADABLE)),
            st.pass_mss_zero.eq(wr.decided & (reason == TsoReason.MSS_ZERO)),
            st.pass_mss_too_large.eq(wr.decided & (reason == TsoReason.MSS_TOO_LARGE)),
            st.pass_length.eq(wr.decided & (reason == TsoReason.LENGTH)),
            st.truncated.eq(wr.truncated),
            st.bytes_out.eq(Mux(self.o.valid & self.o.ready, keep_count(self.o.payload.keep, W),
                                0)),
        ]
        return m
