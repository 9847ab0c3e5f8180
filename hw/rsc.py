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

from .cam import TagCam, onehot_index
from .checksum import ones_add, swap16, wide_sum
from .compare import gt_const, le_const, lt_const
from .layouts import (EthFields, Kind, Offsets, OFFSET_BITS, TCP_ACK, TCP_PSH,
                      parsed_signature)
from .pool import PagePool
from .rsc_emit import JOB_AGG, JOB_DROP, JOB_RAW, RscEmitter, job_layout
from .rsc_ingress import RscIngress
from .rsc_layouts import (OPT_BYTES, RxMeta, STAT_NAMES, flow_tag, key_words,
                          rsc_stats_layout)
from .stream import check_width, packet_layout

__all__ = ["RscEngine", "ctx_layout", "CTX_DYNAMIC"]

GRE_CS_BITS = 0x90
ID_NONE, ID_INC, ID_FIXED = 0, 1, 2


def ctx_layout(pages, opaque_bytes):
    # ``key``: words 1..6 of :func:`hw.rsc_layouts.key_words`; word 0 is (profile, tunnel)
    # and 28 zero bits, and the context holds those two fields anyway.
    return data.StructLayout({
        "key": 6 * 32, "eth": EthFields, "off": Offsets, "opaque_len": OFFSET_BITS,
        "opaque": 8 * opaque_bytes, "opts": 8 * OPT_BYTES,
        "o_ttl": 8, "o_tos": 8, "o_df": 1, "i_ttl": 8, "i_tos": 8, "i_df": 1,
        "o_id": 16, "i_id": 16,
        # Constants of the flush job, computed while the context's first segment is decided,
        # so that the job needs only short additions (see ``_job_pipeline``).
        "o_base": 16, "i_base": 16,     # ones_add(~checksum, ~first total length): RFC 1624
        "d_itl": 16, "d_tl": 16,        # first inner total length (- 20) - first outer one
        "u_off": 16,                    # off.opaque - off.l3: UDP length = otl - u_off
        "p_in": 16,                     # inner pseudo-header sum without the length (folded)
        "u_base": 16,                   # outer pseudo-header without length + ports + s_mid
        "tunnel": 1, "udp": 1, "udp_csum": 1, "profile": 3, "kind": 2,
        "hdr_base": 16, "flags": 8, "doff": 4,
        "mss": 16, "head": range(pages), "tail": range(pages),
        "next_seq": 32, "count": 8, "otl": 17, "ack": 32, "win": 16, "psh": 1,
        "id_mode": 2, "last_pl": 16, "s_pay": 16, "start": 16,
    })


#: The context fields a merge changes (the others are written only when the context opens): they
#: live in a small table of their own, so the wide one is written from ``cur`` alone.
CTX_DYNAMIC = ("tail", "next_seq", "count", "otl", "ack", "win", "psh", "id_mode", "last_pl",
               "s_pay", "start")


def _halves(layout, rows=2):
    """The fields of ``layout`` in ``rows`` (1 or 2) lists of about equal width (largest first
    into the lighter one), and the widest list's width: the static table holds each context as
    that many rows."""
    if rows == 1:
        return ([n for n, _ in layout], []), Shape.cast(layout).width
    halves, widths = ([], []), [0, 0]
    for name, f in sorted(layout, key=lambda nf: -Shape.cast(nf[1].shape).width):
        k = 0 if widths[0] <= widths[1] else 1
        halves[k].append(name)
        widths[k] += Shape.cast(f.shape).width
    return halves, max(widths)


def _sub_layout(layout, names, keep):
    return data.StructLayout({n: f.shape for n, f in layout if (n in names) == keep})


def _w16(v):
    v = Value.cast(v)
    return [v[16:32], v[0:16]]


def _fold17(v):
    """The 16-bit one's-complement value of a sum below 0x20000 (two end-around adds)."""
    v = Value.cast(v)
    a = (v[:16] + v[16])[:17]
    return (a[:16] + a[16])[:16]


def _half_fold(v):
    """First step of a fold: low 16 bits plus the rest (a value below 0x20000 for sums of
    fewer than 2**16 words)."""
    v = Value.cast(v)
    return (v[:16] + v[16:])[:17]


def _is_ffff(v17):
    """fold17(v) == 0xFFFF for v < 0x20000, without the additions."""
    return (v17 == 0xFFFF) | (v17 == 0x1FFFE)


def _second_row(m, prefix, then, split, rsel, rd_hi, slot, enter=()):
    """The FSM states after a context read's first cycle ``prefix``: ``prefix + "2"`` waits
    for the block RAM's read data and, with the static context in two rows (``split``),
    addresses the second row of ``slot``, whose data ``prefix + "3"`` waits for; then ``then``.
    The decision path and the flush path read a context the same way. ``enter``: statements
    (sync) of the cycle that enters ``then``."""
    with m.State(prefix + "2"):
        if split:
            m.d.comb += [rsel.eq(slot), rd_hi.eq(1)]
            m.next = prefix + "3"
        else:
            m.d.sync += enter
            m.next = then
    if split:
        with m.State(prefix + "3"):
            m.d.sync += enter
            m.next = then


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
    ctx_rows : 1 or 2 (default: 1 at W >= 8, 2 at W = 4): rows of block RAM per context for
        its static part. 2 halves the DP16KD of the context table (21 instead of 42: block
        RAM is used for its width) for one more decision cycle, which keeps the line rate of
        64-byte frames at W = 4 (16 cycles each) but not at W = 8 (8 cycles).
    desc_ram : "distributed" (default) or "block": where the ingress keeps the descriptor
        fields the decision reads a cycle after the slot (:class:`hw.rsc_ingress.RscIngress`:
        Ethernet header, opaque bytes past the eighth, TCP options, TTLs, IDs, ports...).
        "block" trades about 205 distributed-RAM cells (W=4, 32 opaque bytes) for 23 DP16KD,
        whose read latch (4.3 ns clock-to-out, DESIGN.md section 7) then starts the
        decision's compares: for slow clocks. Same behaviour either way. (yosys 0.70 also adds
        about 840 LUT4 with it, most likely its bypass for a read of the slot being written,
        which never happens here: docs/boards.md.)

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

    Throughput: ingress takes one beat per cycle and deasserts ``i.ready`` only at a beat that
    starts a page when no page is free, or at the first beat of a frame when 4 frames wait for
    the decision stage. The decision stage takes 6 cycles per frame (pipelined inside: CAM
    compare, context read, read data registered, two compare stages, decision; one more
    with ``ctx_rows`` = 2, the second row's read), also when the table is full and the
    oldest context is evicted, one more when a flush is followed by a pass-through; it waits
    only when a job must be queued and the job queue is full. Flushes for the timeout, the
    pool and flush-all use idle cycles (4 cycles each, 5 with ``ctx_rows`` = 2).
    Backpressure on
    ``o`` propagates through the emitter to the pool, and from there to ``i``.

    Latency: a descriptor leaves the ingress 5 cycles after the frame's last beat; a job
    reaches the emitter 7 cycles after the decision (its lengths and checksums are computed
    in 6 stages); the first beat leaves 4 cycles later. Reset empties the table and refills
    the pool's free list (``pages`` cycles, during which ``i.ready`` is low).
    """

    def __init__(self, width=8, *, contexts=32, pages=144, page_bytes=512, max_frame=2048,
                 cycles_per_us=125, opaque_bytes=64, ctx_rows=None, desc_ram="distributed"):
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
        if ctx_rows is None:
            ctx_rows = 2 if width <= 4 else 1
        if ctx_rows not in (1, 2):
            raise ValueError(f"ctx_rows must be 1 or 2, not {ctx_rows}")
        self.ctx_rows = ctx_rows
        if desc_ram not in ("distributed", "block"):
            raise ValueError(f"desc_ram must be 'distributed' or 'block', not {desc_ram!r}")
        self.desc_ram = desc_ram
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
        NI = max(N, 2)
        # The pool's read data is registered per bank of block RAM before the bank is selected
        # (read latency 2; the emitter carries one more stage). Its read ports are enabled in
        # every cycle: the emitter uses the read data only for the reads it issued (``r_en``,
        # tracked along its read stages), so no enable net runs from the emitter's credit
        # logic to the pool's block RAMs.
        m.submodules.pool = pool = PagePool(W, P, self.page_bytes, read_latency=2,
                                            low_mark=self.reserve)
        m.submodules.ing = ing = RscIngress(W, P, self.page_bytes, self.opaque_bytes,
                                            max_frame=self.max_frame, desc_ram=self.desc_ram)
        m.submodules.emit = emit = RscEmitter(W, P, self.page_bytes, read_latency=2)
        m.submodules.cam = cam = TagCam(N, 32)
        wiring.connect(m, wiring.flipped(self.i), ing.i)
        wiring.connect(m, emit.o, wiring.flipped(self.o))
        m.d.comb += [
            ing.alloc_ok.eq(pool.alloc_ok), ing.alloc_page.eq(pool.alloc_page),
            pool.alloc.eq(ing.alloc),
            pool.w_en.eq(ing.w_en), pool.w_page.eq(ing.w_page), pool.w_beat.eq(ing.w_beat),
            pool.w_data.eq(ing.w_data),
            pool.r_en.eq(1), pool.r_page.eq(emit.r_page), pool.r_beat.eq(emit.r_beat),
            emit.r_data.eq(pool.r_data),
            pool.free.eq(emit.free), pool.free_page.eq(emit.free_page),
        ]
        # Page links. Frame links: flink[p] = the frame's page after p (written by ingress).
        # Segment links: link[p] = the first page of the segment after the one starting at p.
        # Both are read every cycle at the emitter's current page (a register).
        m.submodules.flink = flink = Memory(shape=range(P), depth=P, init=[])
        # The frame link is written one cycle after the ingress decides it, from registers:
        # its enable comes from the ingress's ``i.ready`` (through the pool's free list), and
        # it drives the write enables of every LUTRAM cell of the table. The emitter reads a
        # frame's links only after the frame's descriptor was decided, many cycles later.
        flink_w = flink.write_port()
        flink_r = flink.read_port(domain="sync")
        m.d.sync += [flink_w.addr.eq(ing.fl_page), flink_w.data.eq(ing.fl_next),
                     flink_w.en.eq(ing.fl_en)]
        m.d.comb += [flink_r.addr.eq(emit.link_page),
                     emit.flink_data.eq(flink_r.data)]
        m.submodules.link = link = Memory(shape=range(P), depth=P, init=[])
        # (Written one cycle after the merge that links, from registers, as the frame links:
        # the emitter reads an aggregate's links only after its flush job went through the
        # job pipeline.)
        link_w = link.write_port()
        m.d.sync += link_w.en.eq(0)
        link_r = link.read_port(domain="sync")
        m.d.comb += [link_r.addr.eq(emit.link_page), emit.slink_data.eq(link_r.data)]

        # Jobs for the emitter, through the job pipeline (see below) into ``jq``.
        jl = job_layout(P)
        # ``j.valid`` is registered from the queue's next level (equal to ``jq.r_rdy`` in every
        # cycle), so that the queue's level counter does not drive the emitter's start.
        m.submodules.jq = jq = fifo.SyncFIFO(width=Shape.cast(jl).width, depth=self.JOB_DEPTH)
        jq_v = Signal()
        jq_wr, jq_rd = jq.w_en & jq.w_rdy, jq.r_en & jq.r_rdy
        m.d.sync += jq_v.eq(jq_wr | Mux(jq_rd, jq.level != 1, jq.level != 0))
        m.d.comb += [emit.j.payload.eq(jq.r_data), emit.j.valid.eq(jq_v),
                     jq.r_en.eq(emit.j.ready)]

        # Context table (everything but the CAM tags and the allocation order), in block RAM,
        # in two parts: the static fields (key, headers, options, constants: ~1.5 kbit, written
        # only when a context opens, from ``cur``) and the dynamic ones (``CTX_DYNAMIC``,
        # written at opens and merges). Block RAM is used for its width (36 bits per DP16KD),
        # so with ``ctx_rows`` = 2 the static part is stored as two rows per context
        # (``shalf``: address 2 * slot + half, half the DP16KD of one wide row; with 1, one
        # row, read and written in one cycle as a half 0) and read in two cycles: the rows
        # of half 0 and the dynamic part land in ``ctx`` the cycle after their read, half 1 one
        # cycle later (``ld_a``, ``ld_b``: registered from the read, the only enables of
        # ``ctx``; the read ports hold their data between reads). An open writes its static
        # row and dynamic part in the cycle after the deciding one (with two rows: half 0 in
        # the deciding cycle, half 1 from a registered copy in the next). Writes and the
        # reads that depend on them are sequenced by the state machine, so the ports need no
        # transparency; and no read is ever enabled in a cycle the table is written: the
        # writes are in the cycle after DEC (an open's static row or half 1 and its dynamic
        # part, a merge's dynamic part, ``wb``) and, with two rows, in DEC (an open's half
        # 0); the reads are in RD / X_RD and the cycle after (``rd_go``, ``rd_hi``), at least
        # 2 cycles after DEC (DEC -> CAM or IDLE -> RD or X_RD) and 4 before the next DEC
        # (RD, RD2, [RD3,] CMP, CMP2). So the
        # two memories have ``no_rw_check`` and combinational read ports followed by
        # registers with the read enables (``sr_q``, ``dr_q``): yosys merges those into the
        # ports and honours the attribute only then (memory_dff), mapping the reads to plain
        # DP16KD reads; a synchronous read port instead gets yosys's read-first emulation
        # (the writes delayed by a register of the memory's width, and a bypass).
        cl = ctx_layout(P, self.opaque_bytes)
        sl = _sub_layout(cl, CTX_DYNAMIC, False)
        dl = _sub_layout(cl, CTX_DYNAMIC, True)
        split = self.ctx_rows == 2
        shalf, swidth = _halves(sl, self.ctx_rows)
        ebr = {"ram_style": "block"}
        ebr_nrw = {"ram_style": "block", "no_rw_check": 1}
        m.submodules.ctx_s = ctx_sm = Memory(shape=swidth, depth=self.ctx_rows * N, init=[],
                                             attrs=ebr_nrw)
        sw, sr = ctx_sm.write_port(), ctx_sm.read_port(domain="comb")
        m.submodules.ctx_d = ctx_dm = Memory(shape=dl, depth=N, init=[], attrs=ebr_nrw)
        dw_, dr_ = ctx_dm.write_port(), ctx_dm.read_port(domain="comb")
        # (No reset, as a synchronous read port's data had none: nothing to emulate.)
        sr_q = Signal(swidth, reset_less=True)
        dr_q = Signal(dl, reset_less=True)
        ctx = Signal(cl)
        rd_en = Signal()           # read the context ``rsel``: half 0 and the dynamic part
        rd_hi = Signal()           # ... its half 1 (the cycle after ``rd_en``)
        ld_a, ld_b = Signal(), Signal()
        # ``rd_en`` is a register, set on the way into the states that read (RD, X_RD): it
        # drives the read enables of every block RAM of the table.
        rd_go = Signal()
        m.d.sync += rd_go.eq(0)
        m.d.comb += rd_en.eq(rd_go)
        with m.If(rd_go | rd_hi):
            m.d.sync += sr_q.eq(sr.data)
        with m.If(rd_go):
            m.d.sync += dr_q.eq(dr_.data)
        m.d.sync += [ld_a.eq(rd_en), ld_b.eq(rd_hi)]

        def unpack(names, bits):
            out, pos = [], 0
            for n in names:
                w = Shape.cast(cl[n].shape).width
                out.append((n, bits[pos:pos + w]))
                pos += w
            return out

        for k, ld in ((0, ld_a), (1, ld_b)):
            with m.If(ld):
                m.d.sync += [getattr(ctx, n).eq(v) for n, v in unpack(shalf[k], sr_q)]
        m.d.sync += [getattr(ctx, n).eq(getattr(dr_q, n)) for n, _ in dl]
        # The debug view reads small copies (tag, MSS and key with the static part; next seq
        # and count with the dynamic one), so the wide table keeps a single read port.
        dbgs_l = data.StructLayout({"tag": 32, "mss": 16, "key0": 4, "key": 6 * 32})
        dbgd_l = data.StructLayout({"seq": 32, "count": 8})
        m.submodules.dbg_s = dbg_sm = Memory(shape=dbgs_l, depth=N, init=[], attrs=ebr)
        m.submodules.dbg_d = dbg_dm = Memory(shape=dbgd_l, depth=N, init=[], attrs=ebr)
        dsw, dsr = dbg_sm.write_port(), dbg_sm.read_port(domain="sync")
        ddw, ddr = dbg_dm.write_port(), dbg_dm.read_port(domain="sync")
        m.d.comb += [ddw.addr.eq(dw_.addr), ddw.en.eq(dw_.en),
                     ddw.data.seq.eq(dw_.data.next_seq), ddw.data.count.eq(dw_.data.count),
                     dsr.addr.eq(self.dbg_index), ddr.addr.eq(self.dbg_index),
                     self.dbg_seq.eq(ddr.data.seq), self.dbg_count.eq(ddr.data.count),
                     self.dbg_tag.eq(dsr.data.tag), self.dbg_mss.eq(dsr.data.mss),
                     self.dbg_key.eq(Cat(dsr.data.key0, Const(0, 28), dsr.data.key))]
        dbg_valid = Signal()
        m.d.sync += dbg_valid.eq(cam.valid.bit_select(self.dbg_index, 1))
        m.d.comb += self.dbg_valid.eq(dbg_valid)
        rsel = Signal(range(NI))
        m.d.comb += [sr.addr.eq(Cat(rd_hi, rsel) if split else rsel), dr_.addr.eq(rsel)]

        # Allocation order: older[i][j] = context i was opened before context j. The oldest
        # valid context (eviction and pool victim) is registered (as an index) from it; a
        # change is seen two cycles later (the state machine never asks sooner).
        older = [Signal(N, name=f"older{i}") for i in range(N)]
        valid = cam.valid
        oh = Cat(valid[i] & Cat(older[i][j] | ~valid[j] for j in range(N) if j != i).all()
                 for i in range(N))
        oldest, oldest_n = Signal(range(NI)), Signal(range(NI))
        m.d.comb += oldest_n.eq(onehot_index(oh, N))
        m.d.sync += oldest.eq(oldest_n)

        # Time base.
        tick = Signal(range(self.cycles_per_us))
        now = Signal(16)
        m.d.sync += tick.eq(Mux(tick == self.cycles_per_us - 1, 0, tick + 1))
        with m.If(tick == self.cycles_per_us - 1):
            m.d.sync += now.eq(now + 1)
        # The timeout check of state X_DO, registered one cycle ahead from the dynamic part's
        # read data (which ``ctx`` will hold in X_DO) and the time base's next value, so that
        # the flush it starts does not wait behind a subtraction and a compare.
        now_next = Mux(tick == self.cycles_per_us - 1, now + 1, now)[:16]
        expired = Signal()
        expired_n = (now_next - dr_q.start)[:16] >= self.timeout_us
        m.d.sync += expired.eq(expired_n)

        # --- the packet being decided (``cur``) and what is derived from it ----------------
        # The descriptor stays in the ingress's slot ``cur_idx`` while it is decided: ``cur`` is
        # its registered copy, loaded every cycle (no enable: the accept decision drives only
        # the few bits of ``cur_idx`` and ``tag``), valid from the cycle after the accept's
        # next one; stage a reads the slot itself (``now_``), valid one cycle earlier, as
        # ``cur`` was when it was loaded at the accept. Everything below is registered in a
        # free-running chain (stages a..e); the slot stays for the 6 (or 7) cycles of its
        # decision, so every stage has settled when the decision (state DEC) uses it.
        # (``cur`` is the ingress's ``sel_data``: its register, or its block RAM's read latch.)
        cur_idx = Signal(range(ing.slots))
        now_ = ing.sel_now
        cur = ing.sel_data
        m.d.comb += ing.sel.eq(cur_idx)
        tag = Signal(32)
        rec = cur.rec
        off = rec.off
        tunnel = Signal()
        m.d.comb += tunnel.eq(off.inner_l3 != off.l3)
        kwords = key_words(tunnel, rec.cls.profile, rec.outer.src, rec.outer.dst,
                           rec.inner.src, rec.inner.dst, rec.tcp.sport, rec.tcp.dport,
                           rec.cls.flow)
        key = Signal(7 * 32)
        m.d.comb += key.eq(Cat(*kwords))
        # The CAM compares the offered descriptor's tag: the lookup is presented in the accept
        # cycle (and sees that cycle's open or flush: the CAM forwards its own writes), its
        # results (latency 2) are there in state RD.
        m.d.comb += cam.lookup_tag.eq(ing.d.payload.tag)
        pl = rec.payload_len
        opq = [rec.opaque.word_select(k, 8) for k in range(self.opaque_bytes)]
        flags = rec.tcp.flags
        psh = (flags & TCP_PSH) != 0

        def reg(name, value, width=None):
            r = Signal(width or len(Value.cast(value)), name=name)
            m.d.sync += r.eq(value)
            return r

        # (Stage a: from the slot, ``now_``.)
        rec_a, off_a = now_.rec, now_.rec.off
        kind_ok = (rec_a.cls.kind == Kind.PLAIN) | (rec_a.cls.kind == Kind.TUNNEL)
        is_tun = rec_a.cls.kind == Kind.TUNNEL
        itl, otl = rec_a.inner.total_len, rec_a.outer.total_len
        pl_a = rec_a.payload_len
        opq_a = [rec_a.opaque.word_select(k, 8) for k in range(8)]
        flags_a = rec_a.tcp.flags
        fw = Cat(rec_a.tcp.flags, rec_a.tcp.rsv, rec_a.tcp.doff)
        # a
        tcp_len_a = reg("tcp_len_a", (itl - rec_a.inner.ihl * 4)[:16])
        udp_len_a = reg("udp_len_a", (otl - rec_a.outer.ihl * 4)[:16])
        pin_a = reg("pin_a", wide_sum(_w16(rec_a.inner.src) + _w16(rec_a.inner.dst)))
        pout_a = reg("pout_a", wide_sum(_w16(rec_a.outer.src) + _w16(rec_a.outer.dst)))
        hb1_a = reg("hb1_a", now_.s_tcp + ~now_.s_pay)
        hb2_a = reg("hb2_a", ~rec_a.tcp.ack[16:] + ~rec_a.tcp.ack[:16])
        hb3_a = reg("hb3_a", ~fw + ~rec_a.tcp.window)
        hb4_a = reg("hb4_a", ~rec_a.tcp.csum, 16)
        uo_a = reg("uo_a", Cat(opq_a[1], opq_a[0]) + Cat(opq_a[3], opq_a[2]))
        o_base_a = reg("o_base_a", ones_add(~rec_a.outer.csum, ~otl), 16)
        i_base_a = reg("i_base_a", ones_add(~rec_a.inner.csum, ~itl), 16)
        d_itl_a = reg("d_itl_a", (itl - otl)[:16])
        u_off_a = reg("u_off_a", (off_a.opaque - off_a.l3)[:16], 16)
        nseq_a = reg("nseq_a", (rec_a.tcp.seq + pl_a)[:32])
        len_ok_a = reg("len_ok_a", (now_.length == off_a.l3 + otl) &
                       (off_a.inner_l3 + itl == now_.length))
        cst_a = reg("cst_a", self.enable & kind_ok & rec_a.cls.rsc_ok &
                    ~off_a.inner_l3[0] & ~now_.oversize & (pl_a != 0) &
                    ((flags_a == TCP_ACK) | (flags_a == TCP_ACK | TCP_PSH)) &
                    (rec_a.tcp.rsv == 0) &
                    ~(is_tun & gt_const(rec_a.cls.opaque_len, self.opaque_bytes)) &
                    ~(is_tun & rec_a.outer.gre &
                      ((opq_a[0] & GRE_CS_BITS) != 0)))
        cbase_a = reg("cbase_a", kind_ok & rec_a.outer.csum_ok & rec_a.inner.csum_ok)
        udp_chk_a = reg("udp_chk_a", is_tun & rec_a.cls.udp)
        u_zero_a = reg("u_zero_a", (opq_a[6] == 0) & (opq_a[7] == 0))
        opq_mask_a = reg("opq_mask_a", Cat(le_const(rec_a.cls.opaque_len, k) |
                                           (rec_a.cls.udp if 4 <= k < 8 else 0)
                                           for k in range(self.opaque_bytes)))
        # b
        ts_b = reg("ts_b", (pin_a + tcp_len_a) + (cur.s_tcp + 6))
        us_b = reg("us_b", (pout_a + udp_len_a) + (cur.s_udp + 17))
        hb_b = reg("hb_b", (hb1_a + hb2_a) + (hb3_a + hb4_a))
        pi_b = reg("pi_b", pin_a + 6)
        ub_b = reg("ub_b", (pout_a + 17) + (uo_a + cur.s_mid))
        d_tl_b = reg("d_tl_b", (d_itl_a - 20)[:16])
        # c
        ts_c = reg("ts_c", _half_fold(ts_b))
        us_c = reg("us_c", _half_fold(us_b))
        hb_c = reg("hb_c", _half_fold(hb_b))
        pi_c = reg("pi_c", _half_fold(pi_b))
        ub_c = reg("ub_c", _half_fold(ub_b))
        # d
        tcp_ok_c, udp_ok_c = _is_ffff(ts_c), u_zero_a | _is_ffff(us_c)
        tcp_ok_d = reg("tcp_ok_d", tcp_ok_c)
        udp_ok_d = reg("udp_ok_d", udp_ok_c)
        hdr_base_d = reg("hdr_base_d", _fold17(hb_c), 16)
        p_in_d = reg("p_in_d", _fold17(pi_c), 16)
        u_base_d = reg("u_base_d", _fold17(ub_c), 16)
        # (From stage d's registers: settled from CMP2 on.)
        udp_bad = udp_chk_a & ~udp_ok_d
        # (One register of its own, so the decision's branch sees one bit: settled from CMP2.)
        cand_d = reg("cand_d", cst_a & len_ok_a & tcp_ok_c & ~(udp_chk_a & ~udp_ok_c))

        # A new context from ``cur`` (written in the cycle after DEC; ``now_d``: DEC's time).
        now_d = reg("now_d", now)
        newc = Signal(cl)
        m.d.comb += [
            newc.key.eq(key[32:]), newc.eth.eq(rec.eth), newc.off.eq(off),
            newc.opaque_len.eq(rec.cls.opaque_len), newc.opaque.eq(rec.opaque),
            newc.opts.eq(cur.opts),
            newc.o_ttl.eq(rec.outer.ttl), newc.o_tos.eq(rec.outer.tos),
            newc.o_df.eq(rec.outer.df), newc.i_ttl.eq(rec.inner.ttl),
            newc.i_tos.eq(rec.inner.tos), newc.i_df.eq(rec.inner.df),
            newc.o_id.eq(rec.outer.ident), newc.i_id.eq(rec.inner.ident),
            newc.o_base.eq(o_base_a), newc.i_base.eq(i_base_a),
            newc.d_itl.eq(d_itl_a), newc.d_tl.eq(d_tl_b), newc.u_off.eq(u_off_a),
            newc.p_in.eq(p_in_d), newc.u_base.eq(u_base_d),
            newc.tunnel.eq(tunnel), newc.udp.eq(rec.cls.udp), newc.udp_csum.eq(rec.cls.udp_csum),
            newc.profile.eq(rec.cls.profile), newc.kind.eq(rec.cls.kind),
            newc.hdr_base.eq(hdr_base_d),
            newc.flags.eq(rec.tcp.flags), newc.doff.eq(rec.tcp.doff),
            newc.mss.eq(pl), newc.head.eq(cur.page), newc.tail.eq(cur.page),
            newc.next_seq.eq(nseq_a), newc.count.eq(1),
            newc.otl.eq(rec.outer.total_len), newc.ack.eq(rec.tcp.ack), newc.win.eq(rec.tcp.window),
            newc.psh.eq(0), newc.id_mode.eq(ID_NONE), newc.last_pl.eq(pl),
            newc.s_pay.eq(cur.s_pay), newc.start.eq(now_d),
        ]

        # --- comparison of ``cur`` with the context read (state CMP, then CMP2) ----------
        # (Chunks of 128 bits and 16 opaque bytes: as many LUT levels as 64 bits and 8 bytes
        # with LUT4s, half as many parts for the branch to reduce in CMP2.)
        def chunks_eq(a, b, size=128):
            a, b = Value.cast(a), Value.cast(b)
            return [a[i:i + size] == b[i:i + size] for i in range(0, len(a), size)]

        opq_c = [ctx.opaque.word_select(k, 8) for k in range(self.opaque_bytes)]
        opq_ok = [(opq[k] == opq_c[k]) | opq_mask_a[k] for k in range(self.opaque_bytes)]
        d_i = (rec.inner.ident - ctx.i_id)[:16]
        d_o = (rec.outer.ident - ctx.o_id)[:16]
        id_same = ~ctx.tunnel | (d_i == d_o)
        outer_eq = ~ctx.tunnel | ((rec.outer.ttl == ctx.o_ttl) & (rec.outer.tos == ctx.o_tos) &
                                  (rec.outer.df == ctx.o_df))
        parts = (chunks_eq(ctx.opts, cur.opts) + chunks_eq(ctx.eth.as_value(), rec.eth.as_value())
                 + [Cat(opq_ok[i:i + 16]).all() for i in range(0, self.opaque_bytes, 16)]
                 + [(off.as_value() == ctx.off.as_value()) &
                    (rec.cls.opaque_len == ctx.opaque_len),
                    rec.tcp.seq == ctx.next_seq, pl <= ctx.mss,
                    (rec.inner.ttl == ctx.i_ttl) & (rec.inner.tos == ctx.i_tos) &
                    (rec.inner.df == ctx.i_df) & outer_eq])
        cmp_parts = reg("cmp_parts", Cat(*parts))
        key_parts = reg("key_parts", Cat(*chunks_eq(ctx.key, key[32:], 112),
                                         Cat(ctx.profile, ctx.tunnel) == key[:4]))
        id_inc = reg("id_inc", id_same & (ctx.id_mode != ID_FIXED) & (d_i == ctx.count))
        id_fix = reg("id_fix", id_same & (ctx.id_mode != ID_INC) & (d_i == 0))
        size_ok_1 = reg("size_ok_1", ctx.otl + pl <= self.max_bytes)
        short_1 = reg("short_1", pl < ctx.mss)
        segs_1 = reg("segs_1", ctx.count + 1 >= self.max_segs)
        # The context after merging ``cur`` (fields that change; the rest is ``ctx``).
        odd = ctx.count[0] & ctx.mss[0]
        u_nseq = reg("u_nseq", (ctx.next_seq + pl)[:32])
        u_count = reg("u_count", (ctx.count + 1)[:8])
        u_otl = reg("u_otl", (ctx.otl + pl)[:17])
        u_psh = reg("u_psh", ctx.psh | psh)
        u_spay = reg("u_spay", ones_add(ctx.s_pay, Mux(odd, swap16(cur.s_pay), cur.s_pay)),
                     16)
        u_idm = Signal(2)
        # (Also registered: the job pipeline reads ``updc`` in the cycle after the decision,
        # when ``cur`` may already hold the next packet.)
        u_tail = reg("u_tail", cur.page)
        u_ack = reg("u_ack", rec.tcp.ack)
        u_win = reg("u_win", rec.tcp.window)
        u_lpl = reg("u_lpl", pl)
        # CMP2
        cont_2 = reg("cont_2", cmp_parts.all() & (id_inc | id_fix))
        key_eq_2 = reg("key_eq_2", key_parts.all())
        fa_2 = reg("fa_2", psh | short_1 | segs_1)
        why_2 = reg("why_2", Mux(psh, 0, Mux(short_1, 1, 2)), 2)
        m.d.sync += u_idm.eq(Mux(id_inc, ID_INC, ID_FIXED))
        updc = Signal(cl)
        m.d.comb += [
            updc.eq(ctx),
            updc.tail.eq(u_tail), updc.next_seq.eq(u_nseq), updc.count.eq(u_count),
            updc.otl.eq(u_otl), updc.ack.eq(u_ack), updc.win.eq(u_win),
            updc.psh.eq(u_psh), updc.id_mode.eq(u_idm), updc.last_pl.eq(u_lpl),
            updc.s_pay.eq(u_spay),
        ]

        # --- context table writes ------------------------------------------------------
        # The writes land in the cycle after the decision (DEC + 1), from registers: the
        # enables (``open_late``, ``dwe``), the addresses (``wr_hi_at``, ``wb_addr``) and the
        # write-data selects (``wb``, ``open_late``), so the decision's branch logic reaches no
        # block RAM's write or byte enables. The data is ``newc``: ``cur`` and its chain
        # still hold the decided packet in DEC + 1 (the next one's index is loaded then and
        # its data one cycle later), except the time base and the tag, whose DEC values are
        # registered (``now_d``, ``tag_d``). A merge writes the dynamic fields of ``updc``,
        # registered in DEC (``wb_data``). With two rows, the static part keeps half 0 in DEC
        # and half 1 (a registered copy) in DEC + 1.
        wb = Signal()
        wb_addr = Signal(range(NI))
        wb_data = Signal(dl)
        dwe = Signal()
        open_now = Signal()
        open_at = Signal(range(NI))
        m.d.sync += [wb.eq(0), dwe.eq(open_now), wb_addr.eq(open_at)]
        open_late = Signal()          # DEC + 1 of an open (with two rows: half 1's write)
        wr_hi_at = Signal(range(NI))
        wr_hi_data = Signal(swidth)
        m.d.sync += [open_late.eq(open_now), wr_hi_at.eq(open_at),
                     wr_hi_data.eq(Cat(getattr(newc, n) for n in shalf[1]))]
        if split:
            m.d.comb += [
                sw.en.eq(open_now | open_late),
                sw.addr.eq(Mux(open_late, Cat(Const(1, 1), wr_hi_at),
                               Cat(Const(0, 1), open_at))),
                sw.data.eq(Mux(open_late, wr_hi_data,
                               Cat(getattr(newc, n) for n in shalf[0])))]
        else:
            m.d.comb += [sw.en.eq(open_late), sw.addr.eq(wr_hi_at),
                         sw.data.eq(Cat(getattr(newc, n) for n in shalf[0]))]
        tag_d = reg("tag_d", tag)
        m.d.comb += [dsw.addr.eq(wr_hi_at), dsw.en.eq(open_late), dsw.data.tag.eq(tag_d),
                     dsw.data.mss.eq(newc.mss), dsw.data.key0.eq(Cat(newc.profile, newc.tunnel)),
                     dsw.data.key.eq(newc.key)]
        # An open's dynamic part is registered in DEC too (with DEC's time base, as ``now_d``
        # holds it in DEC + 1), so the table's write data starts at registers, not at the
        # ingress's slot read (``cur``).
        new_dl = Signal(dl)
        m.d.sync += [getattr(new_dl, n).eq(now if n == "start" else getattr(newc, n))
                     for n, _ in dl]
        m.d.comb += [dw_.en.eq(dwe), dw_.addr.eq(wb_addr)]
        m.d.comb += [getattr(dw_.data, n).eq(Mux(wb, getattr(wb_data, n), getattr(new_dl, n)))
                     for n, _ in dl]

        # --- the job pipeline ------------------------------------------------------------
        # A job is issued in one cycle (``issue``: flush of the context ``ctx`` or ``updc``,
        # or pass-through / drop of ``cur``), its fields are computed over JOB_STAGES
        # registered stages of short additions, then it enters ``jq``. ``room`` says a job
        # may be issued (registered, with a margin for the job issued meanwhile).
        j0 = Signal(data.StructLayout({"v": 1, "flush": 1, "upd": 1, "slot": range(NI),
                                       "pjob": jl}))
        inflight = Signal(range(self.JOB_STAGES + 3))
        room = Signal()
        issue = Signal()
        push = Signal()
        # (``room``'s two outcomes are computed from registers; ``issue``, from the decision,
        # only selects between them.)
        m.d.sync += [j0.v.eq(0), inflight.eq(inflight + issue - push),
                     room.eq(Mux(issue, lt_const(jq.level + inflight + 1, self.JOB_DEPTH - 1),
                                 lt_const(jq.level + inflight, self.JOB_DEPTH - 1)))]
        self._job_pipeline(m, j0, ctx, updc, jq, push)
        # A pass-through's job, registered from ``cur`` (which holds from RD until the next
        # accept: DEC or PASS reads it a cycle or more later), so J0's load starts at
        # registers, not at the ingress's slot read; its checksum status from stage d's
        # registers (settled in CMP2).
        # (Its selects are registers of their own, stage b's: yosys makes a select to 0 a
        # flip-flop's synchronous reset, whose setup is long.)
        big_b = reg("big_b", cur.oversize)
        flow_b = reg("flow_b", rec.tcp.present & (off.l4 != 0))
        pjob = Signal(jl)
        m.d.sync += [
            pjob.kind.eq(Mux(big_b, JOB_DROP, JOB_RAW)), pjob.page.eq(cur.page),
            pjob.end.eq(Mux(big_b, self.max_frame, cur.length)), pjob.count.eq(1),
            pjob.meta.segs.eq(1), pjob.meta.mss.eq(Mux(flow_b, pl, 0)),
            pjob.meta.profile.eq(rec.cls.profile), pjob.meta.kind.eq(rec.cls.kind),
            pjob.meta.csum_ok.eq(cbase_a & tcp_ok_d & ~udp_bad),
        ]

        # Statistics are computed here and registered (one cycle late, no comb path out).
        stats = Signal(rsc_stats_layout())
        m.d.sync += self.stats.eq(stats)
        slot = Signal(range(NI))      # the context slot ``cur`` found (or the victim's)
        hit = Signal()
        free_any = Signal()
        free_idx = Signal(range(NI))
        open_idx = Signal(range(NI))  # where DEC opens (see ``open_ctx``)
        xslot = Signal(range(NI))     # the slot of a pool / timeout / flush-all operation
        X_POOL, X_TIMEOUT, X_ALL = 0, 1, 2
        xop = Signal(2)
        # X_DO flushes (if there is room): every operation but a timeout not expired. (With
        # ``xop``, set two cycles before, in one register: it gates the CAM's invalidate.)
        x_flush = Signal()
        m.d.sync += x_flush.eq((xop != X_TIMEOUT) | expired_n)
        scan = Signal(range(NI))      # timeout / flush-all scan position
        flush_req = Signal()
        with m.If(self.flush_all):
            m.d.sync += flush_req.eq(1)
        desc_valid = ing.d.valid

        def issue_flush(at, upd, reason):
            m.d.comb += issue.eq(1)
            m.d.sync += [j0.v.eq(1), j0.flush.eq(1), j0.upd.eq(upd), j0.slot.eq(at)]
            # (The CAM's invalidate of ``at`` is ``cam.inv``, below the state machine.)
            m.d.comb += [stats.aggregates_out.eq(1), stats[f"flush_{reason}"].eq(1)]

        def issue_pass():
            m.d.comb += issue.eq(1)
            m.d.sync += [j0.v.eq(1), j0.flush.eq(0), j0.pjob.eq(pjob)]
            with m.If(cur.oversize):
                m.d.comb += stats.dropped.eq(1)
            with m.Else():
                m.d.comb += stats.pass_through.eq(1)

        # Where DEC opens a context: the lowest free slot on a miss with room, else ``slot``
        # (the victim on a miss with the table full, the flow's own on a flush-and-reopen).
        # Registered from the RD results, which hold through DEC, so that the index decoded at
        # the CAM's tags, the table's write address and ``older`` comes from a register, not
        # from the branch multiplexer.
        open_oh = Signal(N)           # ``open_idx`` one-hot (``older``'s enables)
        open_n = Mux(~hit & free_any, free_idx, slot)
        m.d.sync += [open_idx.eq(open_n), open_oh.eq(Cat(open_n == i for i in range(N)))]
        # The write addresses and the CAM's write index and tag are that register whether or
        # not DEC opens: only the enables (``open_now``, ``cam.we``) come from the decision.
        m.d.comb += [open_at.eq(open_idx), cam.w_index.eq(open_idx), cam.w_tag.eq(tag),
                     cam.w_valid.eq(1)]

        def open_ctx():
            # (The enables of the open, ``open_now`` = ``cam.we``, are computed below the state
            # machine. It may follow an ``issue_flush`` of the same slot in the same cycle: the
            # CAM's write wins over its invalidate.)
            m.d.comb += stats.merged.eq(1)

        # (Per bit: an open of i clears row i, an open of j sets column j; each enable is
        # ``open_now`` and two bits of the registered one-hot index.)
        for i in range(N):
            for j in range(N):
                if j != i:
                    with m.If(open_now & (open_oh[i] | open_oh[j])):
                        m.d.sync += older[i][j].eq(~open_oh[i])

        def accept():
            m.d.comb += [ing.d.ready.eq(1), stats.packets_in.eq(1)]
            m.d.sync += [cur_idx.eq(ing.d.payload.index), tag.eq(ing.d.payload.tag)]

        def finish():
            """The decision is complete: take the next descriptor at once if one waits."""
            m.d.sync += in_dec_r.eq(0)
            with m.If(desc_valid & ~flush_req):
                accept()
                m.next = "CAM"
            with m.Else():
                m.next = "IDLE"

        # (Registered straight from the expression: a lone comb assignment to one bit of
        # ``stats`` becomes an always block Icarus may never run, leaving it X.) Must follow
        # the ``self.stats.eq(stats)`` above, which it overrides for this bit.
        m.d.sync += self.stats.pool_exhausted.eq(self.i.valid & ~ing.i.ready & ~pool.alloc_ok &
                                                  ~pool.filling)

        # The decision's branch, registered one-hot from CMP2 (every input has settled there:
        # the packet's chain, the CAM result, the compare stage), so that state DEC only
        # combines it with ``room``: the wide enables (``cur``, the table's write port, the
        # CAM) are two or three LUTs from registers. Recomputed every cycle: it holds while
        # ``cur`` and ``ctx`` do (through DEC; later states do not use it).
        # (Its inputs that come from the packet alone are registered too: stage a's copy of
        # the flags, and ``cur``.)
        no_open = reg("no_open_a", (flags_a & TCP_PSH).any() | (self.max_segs <= 1))
        no_flow = reg("no_flow_b", cur.oversize | ~(rec.tcp.present & off.l4.any()))
        key_eq_c = key_parts.all()
        cont_c = cmp_parts.all() & (id_inc | id_fix)
        br = Signal(data.StructLayout({
            "pass_": 1,       # pass through (oversize, not a flow packet, nothing to open)
            "coll": 1,        # ... a tag collision (counted)
            "open": 1,        # open a context in the lowest free slot
            "evict": 1,       # open one, the table is full: evict the oldest
            "flush_pass": 1,  # flush the flow's context, then pass through
            "merge": 1,       # merge (``fa_2``: and flush)
            "flush_new": 1,   # flush (size or mismatch), then open anew (or pass: ``no_open``)
            "no_open": 1,
            "we_room": 1,     # DEC writes the CAM (opens) if the job queue has room
            "inv_room": 1,    # DEC invalidates ``slot`` in the CAM (flushes) if it has room
        }))
        # (The terms of the packet and the CAM result, settled in CMP, registered there: the
        # branch then combines them with the compare stage's results and ``cand_d`` alone.)
        hf = reg("hf_1", ~no_flow & hit)
        hfo = reg("hfo_1", ~no_flow & hit & ~no_open)
        mo = reg("mo_1", ~no_flow & ~hit & ~no_open)
        evict_c = mo & cand_d & ~free_any
        flush_pass_c = hf & key_eq_c & ~cand_d
        merge_c = hf & key_eq_c & cand_d & cont_c & size_ok_1
        flush_new_c = hf & key_eq_c & cand_d & ~(cont_c & size_ok_1)
        m.d.sync += [
            br.pass_.eq(no_flow | (~hit & (~cand_d | no_open)) | (hit & ~key_eq_c)),
            br.coll.eq(hf & ~key_eq_c),
            br.open.eq(mo & cand_d & free_any),
            br.evict.eq(evict_c),
            br.flush_pass.eq(flush_pass_c),
            br.merge.eq(merge_c),
            br.flush_new.eq(flush_new_c),
            br.no_open.eq(no_open),
            # (What DEC does with room in those branches; ``fa_2`` is registered from
            # ``psh | short_1 | segs_1``.)
            br.we_room.eq(evict_c | (hfo & key_eq_c & cand_d & ~(cont_c & size_ok_1))),
            br.inv_room.eq(evict_c | flush_pass_c | flush_new_c |
                           (merge_c & (psh | short_1 | segs_1))),
        ]

        # The read address, from registers only (it goes to every block RAM of the table), one
        # multiplexer level: in RD the CAM's match (registered with its index) or, on a miss
        # with the table full, the oldest context (``cam.sel``: registered hit | free_any);
        # in X_RD the operation's slot ``xaddr`` (``xmode``: set on the way in; for the pool,
        # the oldest context as ``oldest`` will hold it in X_RD, from its next value).
        xmode = Signal()
        xaddr = Signal(range(NI))
        in_dec_r, in_xdo_r = Signal(), Signal()   # the state is DEC, X_DO (see below)
        m.d.comb += rsel.eq(Mux(xmode, xaddr, Mux(cam.sel, cam.index, oldest)))

        def start_read(x, at=None):
            """Read the table in the next cycle: at ``at`` (``x`` = 1), else at the CAM's
            match or the oldest context."""
            m.d.sync += [rd_go.eq(1), xmode.eq(x)]
            if at is not None:
                m.d.sync += xaddr.eq(at)

        def to_x_rd(at):
            start_read(1, at)
            m.next = "X_RD"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(flush_req):
                    m.d.sync += [flush_req.eq(0), scan.eq(0)]
                    m.next = "FA"
                with m.Elif(desc_valid):
                    accept()
                    m.next = "CAM"
                with m.Elif(pool.low & valid.any() & ~jq_v &
                            (inflight == 0)):
                    # (Only when no flush is queued: the free count lags the flushes whose
                    # pages the emitter has yet to read; one flush at a time.)
                    m.d.sync += xop.eq(X_POOL)
                    to_x_rd(oldest_n)
                with m.Elif(self.timeout_us != 0):
                    m.d.sync += scan.eq(Mux(scan == N - 1, 0, scan + 1))
                    with m.If(valid.bit_select(scan, 1)):
                        m.d.sync += [xop.eq(X_TIMEOUT), xslot.eq(scan)]
                        to_x_rd(scan)
            with m.State("CAM"):
                start_read(0)
                m.next = "RD"          # the CAM's second stage (the lookup was at the accept)
            with m.State("RD"):
                # A miss with the table full reads the oldest context instead: the decision
                # uses the context read only on a hit, and an eviction flushes that one.
                # (``rsel``, see above; ``rd_en`` is set.)
                m.d.sync += [slot.eq(rsel), hit.eq(cam.hit),
                             free_any.eq(cam.free_any), free_idx.eq(cam.free_index)]
                m.next = "RD2"
            _second_row(m, "RD", "CMP", split, rsel, rd_hi, slot)
            with m.State("CMP"):
                m.next = "CMP2"
            with m.State("CMP2"):
                m.d.sync += in_dec_r.eq(1)
                m.next = "DEC"
            with m.State("DEC"):
                # A branch that issues a job waits for ``room``; opens and plain merges
                # never wait. (``in_dec_r`` holds unless DEC is left: ``finish`` or PASS.)
                m.d.sync += in_dec_r.eq(1)
                with m.If(br.pass_):
                    with m.If(room):
                        with m.If(br.coll):
                            m.d.comb += stats.collisions.eq(1)
                        issue_pass()
                        finish()
                with m.Elif(br.open):
                    open_ctx()
                    finish()
                with m.Elif(br.evict):
                    # The table is full: the oldest context (``slot``, read in RD) makes room.
                    with m.If(room):
                        issue_flush(slot, 0, "full")
                        open_ctx()
                        finish()
                with m.Elif(br.flush_pass):
                    with m.If(room):
                        issue_flush(slot, 0, "other")
                        m.d.sync += in_dec_r.eq(0)
                        m.next = "PASS"
                with m.Elif(br.merge):
                    with m.If(~fa_2 | room):
                        m.d.sync += [wb.eq(1), dwe.eq(1), wb_addr.eq(slot)]
                        m.d.sync += [getattr(wb_data, n).eq(getattr(updc, n))
                                     for n, _ in dl]
                        m.d.sync += [link_w.addr.eq(ctx.tail), link_w.data.eq(cur.page),
                                     link_w.en.eq(1)]
                        m.d.comb += stats.merged.eq(1)
                        with m.If(fa_2):
                            m.d.comb += issue.eq(1)
                            m.d.sync += [j0.v.eq(1), j0.flush.eq(1), j0.upd.eq(1),
                                         j0.slot.eq(slot)]
                            m.d.comb += stats.aggregates_out.eq(1)
                            with m.Switch(why_2):
                                with m.Case(0):
                                    m.d.comb += stats.flush_psh.eq(1)
                                with m.Case(1):
                                    m.d.comb += stats.flush_short.eq(1)
                                with m.Default():
                                    m.d.comb += stats.flush_segs.eq(1)
                        finish()
                with m.Else():
                    with m.If(room):
                        with m.If(cont_2):
                            issue_flush(slot, 0, "size")
                        with m.Else():
                            issue_flush(slot, 0, "mismatch")
                        with m.If(br.no_open):
                            m.d.sync += in_dec_r.eq(0)
                            m.next = "PASS"
                        with m.Else():
                            open_ctx()
                            finish()
            with m.State("PASS"):
                with m.If(room):
                    issue_pass()
                    finish()
            with m.State("FA"):
                # Flush-all: every valid slot in order.
                with m.If(valid.bit_select(scan, 1)):
                    m.d.sync += [xop.eq(X_ALL), xslot.eq(scan)]
                    to_x_rd(scan)
                with m.Elif(scan == N - 1):
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += scan.eq(scan + 1)
            with m.State("X_RD"):
                # (Reads ``rsel``: the oldest context for the pool, else ``xslot``.)
                with m.If(xop == X_POOL):
                    m.d.sync += xslot.eq(oldest)
                m.next = "X_RD2"
            _second_row(m, "X_RD", "X_DO", split, rsel, rd_hi, xslot, [in_xdo_r.eq(1)])
            with m.State("X_DO"):
                # (``in_xdo_r`` holds while X_DO waits for ``room``.)
                m.d.sync += in_xdo_r.eq(1)
                with m.Switch(xop):
                    with m.Case(X_POOL):
                        with m.If(room):
                            issue_flush(xslot, 0, "pool")
                            m.d.sync += in_xdo_r.eq(0)
                            m.next = "IDLE"
                    with m.Case(X_TIMEOUT):
                        with m.If(expired):       # (now - ctx.start)[:16] >= timeout_us
                            with m.If(room):
                                issue_flush(xslot, 0, "timeout")
                                m.d.sync += in_xdo_r.eq(0)
                                m.next = "IDLE"
                        with m.Else():
                            m.d.sync += in_xdo_r.eq(0)
                            m.next = "IDLE"
                    with m.Default():
                        with m.If(room):
                            issue_flush(xslot, 0, "all")
                            m.d.sync += in_xdo_r.eq(0)
                            with m.If(scan == N - 1):
                                m.next = "IDLE"
                            with m.Else():
                                m.d.sync += scan.eq(scan + 1)
                                m.next = "FA"

        # The CAM's write and invalidate enables, the same as the branches above decide them
        # (DEC: an open, a flush of ``slot``; X_DO: a flush of ``xslot``), but computed from
        # the state and the registered branch flags in two LUT levels: they reach every tag's
        # clock enable and valid bit across the CAM, and ``older``'s enables. ``xmode`` is 1
        # in X_DO (set on the way into X_RD) and 0 in DEC (set in CAM), so it selects the
        # invalidated slot. The states come from registers of their own (``in_dec_r``,
        # ``in_xdo_r``: set on the way in, cleared on the way out), not from a decode of the
        # state register.
        in_dec, in_xdo = in_dec_r, in_xdo_r
        m.d.comb += [
            open_now.eq(in_dec & (br.open | (room & br.we_room))),
            cam.we.eq(open_now),
            cam.inv.eq(room & ((in_dec & br.inv_room) |
                               (in_xdo & x_flush))),
            cam.inv_index.eq(Mux(xmode, xslot, slot)),
        ]
        return m

    #: Registered stages between a job's issue and ``jq``; ``jq``'s depth.
    JOB_STAGES = 6
    JOB_DEPTH = 8

    def _job_pipeline(self, m, j0, ctx, updc, jq, push):
        """Flush jobs from a context: lengths and checksums in stages of at most two short
        additions each (DESIGN.md section 7: 2-input adds, fold deferred)."""
        jl = job_layout(self.pages)
        NI = max(self.contexts, 2)
        # J0: the context (``updc`` after a merge, else ``ctx``: both hold still for the few
        # cycles after the issue), its static fields, first sums.
        fc = Signal(ctx_layout(self.pages, self.opaque_bytes))
        m.d.comb += fc.eq(Mux(j0.upd, updc, ctx))
        single = fc.count == 1
        fjob = Signal(jl)
        fwo = Cat(fc.flags | Mux(fc.psh, TCP_PSH, 0), Const(0, 4), fc.doff)
        m.d.comb += [
            fjob.kind.eq(Mux(single, JOB_RAW, JOB_AGG)), fjob.page.eq(fc.head),
            fjob.end.eq(fc.off.payload + fc.mss), fjob.count.eq(fc.count),
            fjob.hdr.eq(fc.off.payload), fjob.mss.eq(fc.mss), fjob.last_pl.eq(fc.last_pl),
            fjob.l3.eq(fc.off.l3), fjob.opaque.eq(fc.off.opaque),
            fjob.inner_l3.eq(fc.off.inner_l3), fjob.l4.eq(fc.off.l4),
            fjob.tunnel.eq(fc.tunnel), fjob.udp.eq(fc.udp), fjob.otl.eq(fc.otl),
            fjob.ack.eq(fc.ack), fjob.flags.eq(fwo), fjob.win.eq(fc.win),
            fjob.meta.agg.eq(~single), fjob.meta.segs.eq(fc.count), fjob.meta.mss.eq(fc.mss),
            fjob.meta.ctx.eq(j0.slot), fjob.meta.profile.eq(fc.profile),
            fjob.meta.kind.eq(fc.kind), fjob.meta.csum_ok.eq(1),
        ]
        otl = fc.otl[:16]

        def stage(n, fields):
            """Register ``fields`` (name -> value) as stage ``n``; returns name -> register."""
            out = {}
            for name, value in fields.items():
                value = Value.cast(value)
                r = Signal(len(value), name=f"j{n}_{name}")
                m.d.sync += r.eq(value)
                out[name] = r
            return out

        s = stage(1, {
            "v": j0.v, "flush": j0.flush, "job": Mux(j0.flush, fjob, j0.pjob),
            "udp_csum": fc.udp_csum,
            "a_itl": (otl + fc.d_itl)[:16], "a_tl": (otl + fc.d_tl)[:16],
            "a_ulen": (otl - fc.u_off)[:16], "oc": otl + fc.o_base,
            "t1": fc.hdr_base + fc.s_pay, "t2": fwo + fc.win,
            "t3": fc.ack[16:] + fc.ack[:16],
            "p_in": fc.p_in, "i_base": fc.i_base, "u_base": fc.u_base,
        })
        # (``end`` holds the frame's length up to here, where it becomes the last byte's
        # offset: the subtraction sits in a stage of its own rather than in the emitter's
        # start or in front of J1's multiplexer.)
        job2 = Signal(jl)
        m.d.comb += [job2.eq(s["job"]), job2.end.eq(data.View(jl, s["job"]).end - 1)]
        s = stage(2, {
            "v": s["v"], "flush": s["flush"], "job": job2, "udp_csum": s["udp_csum"],
            "ocs": ~_fold17(s["oc"]), "ps1": s["p_in"] + s["a_tl"],
            "ic": s["i_base"] + s["a_itl"], "t12": s["t1"] + s["t2"], "t3": s["t3"],
            "u1": s["u_base"] + s["a_ulen"], "a_ulen": s["a_ulen"], "a_itl": s["a_itl"],
        })
        s = stage(3, {
            "v": s["v"], "flush": s["flush"], "job": s["job"], "udp_csum": s["udp_csum"],
            "ocs": s["ocs"], "a_ulen": s["a_ulen"], "a_itl": s["a_itl"],
            "ps": _fold17(s["ps1"]), "ics": ~_fold17(s["ic"]), "t123": s["t12"] + s["t3"],
            "u2": s["u1"] + s["a_ulen"],
        })
        s = stage(4, {
            "v": s["v"], "flush": s["flush"], "job": s["job"], "udp_csum": s["udp_csum"],
            "ocs": s["ocs"], "ics": s["ics"], "a_ulen": s["a_ulen"], "a_itl": s["a_itl"],
            "t": s["t123"] + s["ps"], "u": s["u2"] + ~s["ps"][:16],
        })
        s = stage(5, {
            "v": s["v"], "flush": s["flush"], "job": s["job"], "udp_csum": s["udp_csum"],
            "ocs": s["ocs"], "ics": s["ics"], "a_ulen": s["a_ulen"], "a_itl": s["a_itl"],
            "t": _half_fold(s["t"]), "u": _half_fold(s["u"]),
        })
        s = stage(6, {
            "v": s["v"], "flush": s["flush"], "job": s["job"], "udp_csum": s["udp_csum"],
            "ocs": s["ocs"], "ics": s["ics"], "a_ulen": s["a_ulen"], "a_itl": s["a_itl"],
            "tsum": _fold17(s["t"]), "usum": _fold17(s["u"]),
        })
        assert self.JOB_STAGES == 6
        job = Signal(jl)
        m.d.comb += job.eq(s["job"])
        with m.If(s["flush"]):
            m.d.comb += [
                job.ocs.eq(s["ocs"]), job.ics.eq(s["ics"]), job.itl.eq(s["a_itl"]),
                job.ulen.eq(s["a_ulen"]), job.tcs.eq(~s["tsum"]),
                job.ucs.eq(Mux(s["udp_csum"], Mux(s["usum"] == 0xFFFF, 0xFFFF, ~s["usum"]),
                               0)),
            ]
        m.d.comb += [jq.w_data.eq(job), jq.w_en.eq(s["v"]), push.eq(s["v"])]
