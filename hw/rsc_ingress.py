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

from .capture import capture_region, capture_selects, region_lanes
from .checksum import ChecksumAccumulator
from .compare import above, gt_const, lt_const
from .layouts import parsed_signature
from .rsc_layouts import OPT_BYTES, flow_tag, key_words, rsc_record, rsc_record_layout
from .stream import check_width, keep_count

__all__ = ["RscIngress", "desc_layout", "EARLY_FIELDS", "EARLY_OPAQUE"]

#: The descriptor fields the decision stage reads from the slot itself (``sel_now``, in its first
#: stage); every other field it reads only from ``sel_data``, one cycle later, and those can be
#: kept in a memory with a registered read (block RAM). Paths into :func:`desc_layout`.
EARLY_FIELDS = frozenset({
    ("rec", "outer", n) for n in ("ihl", "total_len", "csum", "src", "dst", "csum_ok", "gre")
} | {
    ("rec", "inner", n) for n in ("ihl", "total_len", "csum", "src", "dst", "csum_ok")
} | {
    ("rec", "tcp", n) for n in ("flags", "rsv", "doff", "ack", "window", "csum", "seq")
} | {
    ("rec", "off", n) for n in ("l3", "opaque", "inner_l3")
} | {
    ("rec", "cls", n) for n in ("kind", "rsc_ok", "opaque_len", "udp")
} | {("rec", "payload_len"), ("length",), ("oversize",), ("s_tcp",), ("s_pay",)})
#: ... and the first opaque bytes (the UDP or GRE header's words the first stage looks at).
EARLY_OPAQUE = 8


def desc_layout(pages, opaque_bytes=64):
    return data.StructLayout({
        "rec": rsc_record_layout(opaque_bytes),   #: what the decision uses of the record
        "page": range(pages),
        "length": 17,          #: frame bytes
        "oversize": 1,         #: longer than max_frame: stored only in part
        "opts": 8 * OPT_BYTES,  #: TCP option bytes, wire order, zero past the options
        "s_tcp": 16, "s_pay": 16, "s_udp": 16, "s_mid": 16,
    })


def _leaves(layout, path=()):
    """(path, shape) of every field of ``layout``, into nested struct layouts."""
    out = []
    for name, field in layout:
        shape = field.shape
        sub = None
        if isinstance(shape, data.StructLayout):
            sub = shape
        elif isinstance(shape, type) and issubclass(shape, data.Struct):
            sub = data.Layout.cast(shape)
        if sub is not None and path + (name,) != ("rec", "eth"):
            out += _leaves(sub, path + (name,))
        else:
            out.append((path + (name,), shape))
    return out


def _view_at(view, path):
    for name in path:
        view = getattr(view, name)
    return view


def _nest(leaves):
    """A struct layout of ``leaves`` ((path, shape) pairs), nested as their paths say."""
    members = {}
    for path, shape in leaves:
        members.setdefault(path[0], []).append((path[1:], shape))
    return data.StructLayout({name: (sub[0][1] if sub[0][0] == () else _nest(sub))
                              for name, sub in members.items()})


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
    through ``sel``: ``sel_now`` is the part of slot ``sel`` the decision reads first
    (:data:`EARLY_FIELDS`, asynchronous: no register, no enable between the distributed RAM
    and the reader's own registers), ``sel_data`` the whole descriptor of the slot ``sel``
    named in the previous cycle (the early part through a register, the rest from a memory
    with a registered read: block RAM with ``desc_ram="block"``, where the wide fields
    that are only compared and copied, the Ethernet header, opaque bytes and TCP options,
    cost no distributed RAM). A slot is rewritten only ``SLOTS - depth`` frames after it was
    taken.

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
                 max_frame=2048, desc_ram="distributed"):
        self.width = check_width(width)
        if desc_ram not in ("distributed", "block"):
            raise ValueError(f"desc_ram must be 'distributed' or 'block', not {desc_ram!r}")
        self.desc_ram = desc_ram
        self.pages, self.page_bytes, self.depth = pages, page_bytes, depth
        self.page_beats = page_bytes // width
        self.opaque_bytes = opaque_bytes
        self.max_frame = max_frame
        self.dlayout = desc_layout(pages, opaque_bytes)
        self.early_opaque = min(EARLY_OPAQUE, opaque_bytes)
        self.early_leaves, self.late_leaves = [], []
        for path, shape in _leaves(self.dlayout):
            if path == ("rec", "opaque"):
                self.early_leaves.append((path, 8 * self.early_opaque))
                if opaque_bytes > self.early_opaque:
                    self.late_leaves.append((("rec", "opaque_late"),
                                             8 * (opaque_bytes - self.early_opaque)))
            elif path in EARLY_FIELDS:
                self.early_leaves.append((path, shape))
            elif path[0] not in ("opts", "s_udp", "s_mid"):   # (their own memories)
                self.late_leaves.append((path, shape))
        #: The fields of ``sel_now`` (:data:`EARLY_FIELDS`).
        self.early_layout = _nest(self.early_leaves)
        #: Descriptor slots: the waiting ones and the one being decided, a power of 2.
        self.slots = 1 << depth.bit_length()
        super().__init__({
            "i": In(parsed_signature(width, opaque_bytes)),
            "d": Out(stream.Signature(data.StructLayout({"tag": 32,
                                                         "index": range(self.slots)}))),
            "sel": In(range(self.slots)), "sel_now": Out(self.early_layout),
            "sel_data": Out(self.dlayout),
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
        # ``dq`` holds the record's early fields (see EARLY_FIELDS) and ``lq`` the others, both
        # written at ``wp_d``; ``lq`` and ``oq`` are read through a register (``sel_data``).
        qlayout = data.StructLayout({"rec": rsc_record_layout(self.opaque_bytes),
                                     "page": range(self.pages), "length": 17, "oversize": 1})
        early_q = [(p, s) for p, s in self.early_leaves if p[0] not in ("s_tcp", "s_pay")]
        dq_width = sum(Shape.cast(s).width for _, s in early_q)
        lq_width = sum(Shape.cast(s).width for _, s in self.late_leaves)
        S = self.slots
        late = {"ram_style": self.desc_ram}
        if self.desc_ram == "block":
            # (Reads may return anything at a collision: see the read ports below.)
            late["no_rw_check"] = 1
        m.submodules.dq = dq = Memory(shape=dq_width, depth=S, init=[])
        m.submodules.lq = lq = Memory(shape=lq_width, depth=S, init=[], attrs=late)
        m.submodules.tq = tq = Memory(shape=32, depth=S, init=[])
        m.submodules.oq = oq = Memory(shape=8 * OPT_BYTES, depth=S, init=[], attrs=late)
        m.submodules.sq = sq = Memory(shape=64, depth=S, init=[])
        dq_w, lq_w, tq_w = dq.write_port(), lq.write_port(), tq.write_port()
        oq_w, sq_w = oq.write_port(), sq.write_port()
        wp_d, wp_o, wp_s, rp = (Signal(range(S), name=n) for n in ("wp_d", "wp_o", "wp_s", "rp"))
        m.d.comb += [dq_w.addr.eq(wp_d), lq_w.addr.eq(wp_d), tq_w.addr.eq(wp_d),
                     oq_w.addr.eq(wp_o), sq_w.addr.eq(wp_s)]
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
        room_n = Signal()
        assert self.max_frame % W == 0
        fits_n = lt_const(beat_n, self.max_frame // W)     # beat_n * W < max_frame
        m.d.sync += [store.eq(fits_n),
                     new_page.eq(fits_n & (beat_n[:pb] == 0)),
                     room.eq(room_n)]
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
            desc.oversize.eq(gt_const(length, self.max_frame)),
        ]
        # (Registered without an enable, so that the wide write port is driven by registers.)
        def pick(view, leaves):
            out = []
            for path, shape in leaves:
                if path == ("rec", "opaque"):
                    out.append(Value.cast(view.rec.opaque)[:8 * self.early_opaque])
                elif path == ("rec", "opaque_late"):
                    out.append(Value.cast(view.rec.opaque)[8 * self.early_opaque:])
                else:
                    out.append(Value.cast(_view_at(view, path)))
            return Cat(*out)

        rec_d = desc.rec
        tunnel = rec_d.off.inner_l3 != rec_d.off.l3
        m.d.sync += [
            dq_w.data.eq(pick(desc, early_q)), lq_w.data.eq(pick(desc, self.late_leaves)),
            dq_w.en.eq(take & p.last),
            tq_w.data.eq(flow_tag(key_words(tunnel, rec_d.cls.profile, rec_d.outer.src,
                                            rec_d.outer.dst, rec_d.inner.src, rec_d.inner.dst,
                                            rec_d.tcp.sport, rec_d.tcp.dport, rec_d.cls.flow))),
        ]
        m.d.comb += [tq_w.en.eq(dq_w.en), lq_w.en.eq(dq_w.en)]

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

        def region(lo, hi, name):
            # (The beat index against each bound once, the lane against its remainder.)
            lanes = region_lanes(m, width=W, start=lo, end=hi, beat=beat1, name=name)
            return Cat(lane & keep1[j] for j, lane in enumerate(lanes))

        # Stage 2 (registered): the beat once more, with its region masks (the compares of
        # stage 1), for the checksum accumulators and the option capture.
        v2, first2, last2 = Signal(), Signal(), Signal()
        d2 = Signal(8 * W)
        m.d.sync += [v2.eq(v1), first2.eq(first1), last2.eq(last1), d2.eq(d1)]
        masks = {
            "s_tcp": region(b["l4"], b["ipend"], "r_s_tcp"),
            "s_pay": region(b["payload"], b["ipend"], "r_s_pay"),
            "s_udp": region(b["opaque"], b["oend"], "r_s_udp"),
            "s_mid": region(b["mid"], b["inner_l3"], "r_s_mid"),
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
        m.d.sync += [omask2.eq(Cat(nopt_pos & (nopt_big | gt_k)
                                   for gt_k in above(nopt[:6], OPT_BYTES))),
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
        # (The take comes from the decision's branch logic: the pointer's, the level's and
        # ``d.valid``'s next values are each selected by it between two outcomes computed
        # without it.)
        rp1 = (rp + 1)[:len(rp)]
        rp_n = Mux(take_d, rp1, rp)
        wp_sa = Signal(range(S))
        wp_n = [(wp + en)[:len(wp)] for wp, en in ((wp_d, dq_w.en), (wp_o, oq_w.en),
                                                   (wp_sa, last_d[-2]))]
        m.d.sync += [wp.eq(n) for wp, n in zip((wp_d, wp_o, wp_sa), wp_n)]
        m.d.sync += wp_s.eq(wp_s + sq_w.en)
        lv_in = level + (take & p.last)
        m.d.comb += [level_n.eq(Mux(take_d, lv_in - 1, lv_in)),
                     room_n.eq(Mux(take_d, lv_in - 1 != self.depth, lv_in != self.depth))]
        m.d.sync += [rp.eq(rp_n), level.eq(level_n),
                     self.d.valid.eq(Mux(take_d, Cat(rp1 != wp for wp in wp_n).all(),
                                         Cat(rp != wp for wp in wp_n).all()))]
        dq_r, sq_r = (q.read_port(domain="comb") for q in (dq, sq))
        # ``lq`` and ``oq`` are read through a register, so what a read returns while its slot
        # is written does not matter if that never happens while the data is used: ``sel`` is
        # the slot being decided (``RscEngine``'s ``cur_idx``), taken from ``d``, so written
        # (all three parts) before it was offered; from the take on ``rp`` is the slot after
        # it, and the slots written (``wp_d``, ``wp_o``) are those of the at most ``depth``
        # descriptors waiting, ``rp .. rp + depth - 1`` (``room``), never ``rp - 1`` since
        # ``depth < S``. (Before the first take ``sel`` is 0 and may be written; nothing reads
        # ``sel_data`` then.) So the block RAM form has ``no_rw_check`` and a combinational
        # read port with a register after it: yosys honours the attribute only when it merges
        # that register into the port (memory_dff), and then maps the read to the DP16KD's own
        # (any other form costs the write delay or the bypass multiplexer that give a read of
        # the slot being written a defined value: about 820 FF or 750 LUT4 at W=4, C=32).
        # The distributed RAM form keeps a transparent synchronous read (a registered address
        # before the LUT RAM: no bypass, and the read data straight from the RAM's cells).
        if self.desc_ram == "block":
            lq_r, oq_r = (q.read_port(domain="comb") for q in (lq, oq))
            # (No reset, as the synchronous read port's data had none: nothing to emulate.)
            lq_data = Signal(lq_width, reset_less=True)
            oq_data = Signal(8 * OPT_BYTES, reset_less=True)
            m.d.sync += [lq_data.eq(lq_r.data), oq_data.eq(oq_r.data)]
        else:
            lq_r = lq.read_port(domain="sync", transparent_for=(lq_w,))
            oq_r = oq.read_port(domain="sync", transparent_for=(oq_w,))
            lq_data, oq_data = lq_r.data, oq_r.data
        m.d.comb += [q.addr.eq(self.sel) for q in (dq_r, sq_r, lq_r, oq_r)]
        sums = {"s_tcp": sq_r.data[0:16], "s_pay": sq_r.data[16:32],
                "s_udp": sq_r.data[32:48], "s_mid": sq_r.data[48:64]}
        # sel_now: the early fields, as stored.
        pos = 0
        for path, shape in early_q:
            w = Shape.cast(shape).width
            m.d.comb += Value.cast(_view_at(self.sel_now, path)).eq(dq_r.data[pos:pos + w])
            pos += w
        m.d.comb += [self.sel_now.s_tcp.eq(sums["s_tcp"]), self.sel_now.s_pay.eq(sums["s_pay"])]
        # sel_data: the early fields and the sums registered, the rest from the registered reads.
        now_q = Signal(self.early_layout)
        sums_q = Signal(64)
        m.d.sync += [now_q.eq(self.sel_now), sums_q.eq(sq_r.data)]
        for path, shape in early_q:
            if path == ("rec", "opaque"):
                continue
            m.d.comb += Value.cast(_view_at(self.sel_data, path)).eq(
                Value.cast(_view_at(now_q, path)))
        pos = 0
        opq_late = Const(0, 0)
        for path, shape in self.late_leaves:
            w = Shape.cast(shape).width
            if path == ("rec", "opaque_late"):
                opq_late = lq_data[pos:pos + w]
            else:
                m.d.comb += Value.cast(_view_at(self.sel_data, path)).eq(lq_data[pos:pos + w])
            pos += w
        m.d.comb += [
            self.sel_data.rec.opaque.eq(Cat(now_q.rec.opaque, opq_late)),
            self.sel_data.opts.eq(oq_data),
            self.sel_data.s_tcp.eq(sums_q[0:16]), self.sel_data.s_pay.eq(sums_q[16:32]),
            self.sel_data.s_udp.eq(sums_q[32:48]), self.sel_data.s_mid.eq(sums_q[48:64]),
        ]
        return m
