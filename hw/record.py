"""Record builder: turns a packet's captured header bytes into its parse record.

:class:`RecordBuilder` computes, from the bytes the parser captured and the classifier's
decision, every field of :class:`hw.layouts.ParseRecord` exactly as docs/parse-record.md says.
It is a five-stage pipeline (A: Ethernet and outer header, the inner Ethernet type compare;
B1: the inner header's and TCP's offsets and end positions, checksum checks; B2: their
compares against the frame/window limit, and the header-field flags (version, IHL, protocol,
data offset) so that B3 only ANDs registered flags; B3: presence, lengths, errors; C: reason
and classification), so no cycle holds more
than one adder or one compare and a few LUTs; stages are registered and never read the
record back (Icarus turns such read-backs into zero-time loops).

Latency 5 cycles from ``i_valid`` to ``o_valid``. The inputs are read in the ``i_valid`` cycle
and the next one (``busy``); the caller may load new inputs in the cycle after that. Stage
registers are held for the stages after them, so a new record may start (``i_valid``) every
4 cycles: line rate for packets of 4 beats or more (60-byte frames at W <= 16). The record
``o`` is valid in the ``o_valid`` cycle only (its last stage is loaded every cycle).
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .byteorder import be_value
from .checksum import wide_sum
from .classifier import Decision
from .layouts import Ipv4Fields, Kind, ParseRecord, Reason, TcpFields

__all__ = ["RecordBuilder", "ETH_BYTES", "eth_fields"]

ETH_BYTES = 22   # two VLAN tags + ethertype


def eth_fields(m, b, tag):
    """(l3, is_ipv4, is_ipv6, vlans, tci0, tci1, ethertype) from the 22 Ethernet bytes."""
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


def _bytes(sig, n):
    return [sig.word_select(i, 8) for i in range(n)]


def _ipv4(b, present):
    """Ipv4Fields value (without csum_ok) of 20 captured bytes, all zero unless ``present``."""
    fields = Cat(
        Const(1, 1), b[0][4:8], b[0][:4], b[1], be_value(b[2:4]), be_value(b[4:6]),
        b[6][5:8], Cat(b[7], b[6][:5]), b[8], b[9], be_value(b[10:12]), be_value(b[12:16]),
        be_value(b[16:20]), Const(0, 1))
    return Mux(present, fields, 0)


def _tcp(b, present):
    fields = Cat(
        Const(1, 1), be_value(b[0:2]), be_value(b[2:4]), be_value(b[4:8]), be_value(b[8:12]),
        b[12][4:8], b[12][:4], b[13], be_value(b[14:16]), be_value(b[16:18]),
        be_value(b[18:20]))
    return Mux(present, fields, 0)


class RecordBuilder(wiring.Component):
    """See the module docstring. ``header_window`` is H, ``opaque_bytes`` is C.

    ``osum``/``isum`` are the two IPv4 header sums as ``sum_words`` unfolded 21-bit partial
    sums (one per word lane of the parser's beat), added in stage A and checked in stage B.
    """

    def __init__(self, *, header_window=256, opaque_bytes=64, sum_words=1):
        self.header_window = header_window
        self.opaque_bytes = opaque_bytes
        self.sum_words = sum_words
        super().__init__({
            "i_valid": In(1),
            "eth": In(8 * ETH_BYTES), "outer": In(160), "inner": In(160), "tcp": In(160),
            # The two bytes before the inner header (a profile's inner Ethernet type).
            "inner_et": In(16),
            "opaque": In(8 * opaque_bytes),
            "osum": In(21 * sum_words), "isum": In(21 * sum_words),
            "dec": In(Decision), "ended": In(1), "flen": In(16),
            # From the parser, equal to what the Ethernet bytes and the frame length give:
            # the outer header's offset, "IPv4", "IPv6", and "ended within the window".
            # ``inner`` is a tunnel's inner header; for plain TCP ``outer`` is used.
            "l3": In(5), "is4": In(1), "is6": In(1), "short": In(1),
            "busy": Out(1), "o_valid": Out(1), "o": Out(ParseRecord(opaque_bytes)),
        })

    def elaborate(self, platform):
        m = Module()
        H = self.header_window
        dec = self.dec
        va = Signal()   # stage B1 runs (then B2 with vb1, B3 with vb2, C with vb3)
        m.d.sync += va.eq(self.i_valid)
        # New inputs may be latched from the cycle stage B2 runs, not while A or B1 read them.
        m.d.comb += self.busy.eq(self.i_valid | va)

        # ---- stage A: Ethernet, outer IPv4, where the inner header is -----------------------
        E = _bytes(self.eth, ETH_BYTES)
        _, _, _, vlans, tci0, tci1, et = eth_fields(m, E, "R")
        l3, is4, is6, short = self.l3, self.is4, self.is6, self.short
        limit = Mux(short, self.flen, H)
        outer_b = _bytes(self.outer, 20)
        o_present = is4 & (l3 + 20 <= limit)
        o_ver, o_ihl = outer_b[0][4:8], outer_b[0][:4]
        o_valid = o_present & (o_ver == 4) & (o_ihl >= 5)
        opaque_off = Mux(o_valid, l3 + (o_ihl << 2), 0)
        a = {name: Signal(shape, name=f"a_{name}") for name, shape in {
            "l3": 5, "is4": 1, "is6": 1, "vlans": 2, "tci0": 16, "tci1": 16, "et": 16,
            "limit": 16, "short": 1, "o_present": 1, "o_valid": 1, "o_hlen": 8,
            "opaque_off": 8, "inner_l3": 20, "inner_def": 1, "osum": 24, "isum": 24,
            "outer": Ipv4Fields, "et_ip4": 1}.items()}
        with m.If(self.i_valid):
            m.d.sync += [
                a["l3"].eq(l3), a["is4"].eq(is4), a["is6"].eq(is6), a["vlans"].eq(vlans),
                a["tci0"].eq(tci0), a["tci1"].eq(tci1), a["et"].eq(et),
                a["limit"].eq(limit), a["short"].eq(short), a["o_present"].eq(o_present),
                a["o_valid"].eq(o_valid), a["o_hlen"].eq(o_ihl << 2),
                a["opaque_off"].eq(opaque_off),
                a["inner_l3"].eq(Mux(dec.matched, dec.inner_l3, l3)),
                a["inner_def"].eq(o_valid & Mux(dec.matched, ~dec.len_outside,
                                                outer_b[9] == 6)),
                a["osum"].eq(wide_sum(self.osum.word_select(k, 21)
                                      for k in range(self.sum_words))),
                a["isum"].eq(wide_sum(self.isum.word_select(k, 21)
                                      for k in range(self.sum_words))),
                a["outer"].eq(_ipv4(outer_b, 1)),   # zeroed unless present in stage B1
                a["et_ip4"].eq(self.inner_et == 0x0800),
            ]

        # ---- stage B1: the inner header's and TCP's offsets, sums, checksum checks ----------
        # Only adders here (their compares against the limit are stage B2's); inputs that
        # later stages need are copied, so the inputs are read in the first three cycles only.
        # Plain TCP's inner header is its outer one.
        inner_b = _bytes(Mux(dec.matched, self.inner, self.outer), 20)
        T = _bytes(self.tcp, 20)
        i_ihl, doff = inner_b[0][:4], T[12][4:8]
        i_hlen = Signal(6)
        m.d.comb += i_hlen.eq(i_ihl << 2)
        inner_l3 = a["inner_l3"]

        def sum_ok(v):
            # fold(v) == 0xFFFF: v is a non-zero multiple of 0xFFFF; v < 2**24, so its first
            # fold step (below 2 * 0xFFFF) must be exactly 0xFFFF.
            return (v[:16] + v[16:]) == 0xFFFF

        E = _bytes(self.eth, ETH_BYTES)
        b1 = {name: Signal(shape, name=f"b1_{name}") for name, shape in {
            "inner": Ipv4Fields, "tcp": TcpFields, "l3_20": 6, "l3_oh": 7,
            "il3_20": 21, "l4": 21, "l4_20": 21, "payload": 21, "i_end": 21, "o_end": 17,
            "hdrs": 7, "osum_ok": 1, "isum_ok": 1, "dec": Decision, "eth_addr": 96,
            "o_frag": 1, "outer": Ipv4Fields}.items()}
        outer = a["outer"]
        with m.If(va):
            m.d.sync += [
                b1["inner"].eq(_ipv4(inner_b, 1)), b1["tcp"].eq(_tcp(T, 1)),
                b1["l3_20"].eq(a["l3"] + 20), b1["l3_oh"].eq(a["l3"] + a["o_hlen"]),
                b1["il3_20"].eq(inner_l3 + 20), b1["l4"].eq(inner_l3 + i_hlen),
                b1["l4_20"].eq(inner_l3 + (i_hlen + 20)),
                b1["payload"].eq(inner_l3 + (i_hlen + (doff << 2))),
                b1["i_end"].eq(inner_l3 + be_value(inner_b[2:4])),
                b1["o_end"].eq(a["l3"] + outer.total_len),
                b1["hdrs"].eq(i_hlen + (doff << 2)),
                b1["osum_ok"].eq(sum_ok(a["osum"])), b1["isum_ok"].eq(sum_ok(a["isum"])),
                b1["dec"].eq(dec), b1["eth_addr"].eq(Cat(be_value(E[0:6]), be_value(E[6:12]))),
                b1["o_frag"].eq(outer.flags[0] | (outer.frag_off != 0)),
                b1["outer"].eq(Mux(a["o_present"], outer, 0)),
            ]
        # The opaque bytes go straight to the record (they only depend on stage A's verdict);
        # the previous record left the output register long before (records are >= 4 apart).
        with m.If(va):
            m.d.sync += self.o.opaque.eq(Mux(a["o_valid"], self.opaque, 0))
        vb1 = Signal()
        m.d.sync += vb1.eq(va)

        # ---- stage B2: every compare against the limit (and the length compares) -----------
        lim = a["limit"]
        inner = b1["inner"]
        i_total = inner.total_len
        hdrs = b1["hdrs"]
        # (il3: the inner header's start, the end of a profile's inner Ethernet type.)
        ends = {"l3": a["l3"], "l3_20": b1["l3_20"], "l3_oh": b1["l3_oh"],
                "il3": a["inner_l3"], "il3_20": b1["il3_20"], "l4": b1["l4"],
                "l4_20": b1["l4_20"], "payload": b1["payload"]}
        g = {f"av_{k}": Signal(name=f"g_av_{k}") for k in ends}
        g.update({name: Signal(shape, name=f"g_{name}") for name, shape in {
            "short_lt": 1, "hdrs_fit": 1, "pay_len": 16, "iend_gt": 1, "olen_lt": 1,
            "i_hdr": 1, "l4_hdr": 1, "tcp_hdr": 1, "doff_lt5": 1, "i_ver6": 1,
            "i_bad_ihl": 1, "i_frag": 1, "i_opts": 1, "i_not_tcp": 1, "o_bad_ihl": 1,
            "o_opts": 1, "o_not_tcp": 1}.items()})
        # The header-field flags too (they only read stage B1's and A's registers), so that
        # stage B3 only ANDs registered flags with the availability compares before its wide
        # multiplexers: a single LUT level. i_hdr: the inner header would be valid (if
        # present); l4_hdr: it also carries TCP; tcp_hdr: and the TCP data offset is >= 5.
        i_ver, i_ihl, i_proto = inner.version, inner.ihl, inner.proto
        i_hdr = a["inner_def"] & (i_ver == 4) & (i_ihl >= 5)
        l4_hdr = i_hdr & (i_proto == 6)
        doff_lt5 = b1["tcp"].doff < 5
        b1_outer = b1["outer"]
        with m.If(vb1):
            m.d.sync += [g[f"av_{k}"].eq(v <= lim) for k, v in ends.items()]
            m.d.sync += [
                g["short_lt"].eq(lim < b1["o_end"]),
                g["hdrs_fit"].eq(i_total >= hdrs),
                g["pay_len"].eq(i_total - hdrs),
                g["iend_gt"].eq(b1["i_end"] > b1["o_end"]),
                g["olen_lt"].eq(b1_outer.total_len < a["o_hlen"]),
                g["i_hdr"].eq(i_hdr), g["l4_hdr"].eq(l4_hdr),
                g["tcp_hdr"].eq(l4_hdr & ~doff_lt5), g["doff_lt5"].eq(doff_lt5),
                g["i_ver6"].eq(i_ver == 6),
                g["i_bad_ihl"].eq((i_ver != 6) & ((i_ver != 4) | (i_ihl < 5))),
                g["i_frag"].eq(inner.flags[0] | (inner.frag_off != 0)),
                g["i_opts"].eq(i_ihl > 5), g["i_not_tcp"].eq(i_proto != 6),
                g["o_bad_ihl"].eq((b1_outer.version != 4) | (b1_outer.ihl < 5)),
                g["o_opts"].eq(b1_outer.ihl > 5), g["o_not_tcp"].eq(b1_outer.proto != 6),
            ]
        vb2 = Signal()
        m.d.sync += vb2.eq(vb1)

        # ---- stage B3: inner IPv4, TCP, lengths, errors ----------------------------------------
        dec = b1["dec"]
        matched = dec.matched
        trunc, window = [], []

        def avail(key):
            return g[f"av_{key}"]

        def need(cond, key):
            bad = cond & ~avail(key)
            trunc.append(bad & a["short"])
            window.append(bad & ~a["short"])

        need(1, "l3")
        need(a["is4"], "l3_20")
        need(a["o_valid"], "l3_oh")
        o_csum_ok = a["o_valid"] & avail("l3_oh") & b1["osum_ok"]
        i_present = a["inner_def"] & avail("il3_20")
        need(a["inner_def"], "il3_20")
        # (Stage B2's header flags: see there.)
        i_valid = g["i_hdr"] & avail("il3_20")
        need(i_valid, "l4")
        i_csum_ok = i_valid & avail("l4") & b1["isum_ok"]
        l4_def = g["l4_hdr"] & avail("il3_20")
        t_present = l4_def & avail("l4_20")
        need(l4_def, "l4_20")
        tcp_ok = g["tcp_hdr"] & avail("il3_20") & avail("l4_20")
        need(tcp_ok, "payload")
        trunc.append(matched & dec.field_trunc)
        window.append(matched & dec.field_window)
        b = {name: Signal(shape, name=f"b_{name}") for name, shape in {
            "inner": Ipv4Fields, "tcp": TcpFields, "o_csum_ok": 1, "i_csum_ok": 1,
            "inner_l3": 10, "l4": 10, "payload": 10, "payload_len": 16,
            "truncated": 1, "window": 1, "short_frame": 1, "outer_bad_ihl": 1,
            "inner_bad_ihl": 1, "outer_bad_csum": 1, "inner_bad_csum": 1,
            "outer_bad_len": 1, "inner_bad_len": 1,
            "c_ipv6": 1, "c_eth": 1, "c_frag": 1, "c_opts": 1, "c_not_tcp": 1, "c_field": 1,
            "c_doff": 1, "dec": Decision, "eth_addr": 96}.items()}
        with m.If(vb2):
            m.d.sync += [
                b["inner"].eq(Mux(i_present, inner, 0)),
                b["tcp"].eq(Mux(t_present, b1["tcp"], 0)),
                b["o_csum_ok"].eq(o_csum_ok), b["i_csum_ok"].eq(i_csum_ok),
                # A matched profile sets it even when its length field is outside (n = 0).
                b["inner_l3"].eq(Mux(a["inner_def"] | matched, inner_l3, 0)),
                b["l4"].eq(Mux(l4_def, b1["l4"], 0)),
                b["payload"].eq(Mux(tcp_ok, b1["payload"], 0)),
                b["payload_len"].eq(Mux(tcp_ok & g["hdrs_fit"], g["pay_len"], 0)),
                b["truncated"].eq(Cat(*trunc).any()),
                b["window"].eq(Cat(*window).any()),
                b["short_frame"].eq(a["o_valid"] & a["short"] & g["short_lt"]),
                b["outer_bad_ihl"].eq(a["o_present"] & g["o_bad_ihl"]),
                b["inner_bad_ihl"].eq(i_present & matched & g["i_bad_ihl"]),
                b["outer_bad_csum"].eq(a["o_valid"] & ~o_csum_ok),
                b["inner_bad_csum"].eq(i_valid & ~i_csum_ok),
                b["outer_bad_len"].eq(a["o_valid"] & g["olen_lt"]),
                b["inner_bad_len"].eq((tcp_ok & ~g["hdrs_fit"]) |
                                      (matched & i_valid & g["iend_gt"])),
                b["c_ipv6"].eq(a["is6"] | (matched & i_present & g["i_ver6"])),
                # The inner Ethernet type, when the profile has one and it is in the frame.
                b["c_eth"].eq(matched & a["inner_def"] & dec.inner_eth &
                              (dec.eth_short | (avail("il3") & ~a["et_ip4"]))),
                b["c_frag"].eq((a["o_valid"] & b1["o_frag"]) | (i_valid & g["i_frag"])),
                b["c_opts"].eq((a["o_valid"] & g["o_opts"]) | (i_valid & g["i_opts"])),
                b["c_not_tcp"].eq((~matched & g["o_not_tcp"]) |
                                  (matched & i_valid & g["i_not_tcp"])),
                b["c_field"].eq(matched & (dec.len_outside | dec.flow_outside)),
                b["c_doff"].eq(t_present & g["doff_lt5"]),
                b["dec"].eq(dec), b["eth_addr"].eq(b1["eth_addr"]),
            ]
        vb3 = Signal()
        m.d.sync += [vb3.eq(vb2), self.o_valid.eq(vb3)]

        # ---- stage C: reason, classification, the record ---------------------------------------
        conds = [
            (Reason.NOT_IP, ~a["is4"] & ~a["is6"]),
            (Reason.IPV6, b["c_ipv6"]),
            (Reason.INNER_ETHERTYPE, b["c_eth"]),
            (Reason.TRUNCATED, b["truncated"] | b["short_frame"]),
            (Reason.BAD_IHL, b["outer_bad_ihl"] | b["inner_bad_ihl"]),
            (Reason.WINDOW, b["window"]),
            (Reason.FRAGMENT, b["c_frag"]),
            (Reason.IP_OPTIONS, b["c_opts"]),
            (Reason.NOT_TCP, b["c_not_tcp"]),
            (Reason.FIELD_OUTSIDE, b["c_field"]),
            (Reason.BAD_LENGTH, b["outer_bad_len"] | b["inner_bad_len"]),
            (Reason.TCP_DOFF, b["c_doff"]),
        ]
        reason = Reason.NONE
        for r, c in reversed(conds):
            reason = Mux(c, r, reason)
        ok = Signal()
        m.d.comb += ok.eq(Cat(*(c for _, c in conds)) == 0)
        dec = b["dec"]
        matched = dec.matched
        rec = self.o
        # Loaded in every cycle, not only with vb3: the record is read only in the o_valid
        # cycle, when it holds what the held stage registers gave in the vb3 cycle. vb3 as
        # the clock enable of ~760 record flip-flops (all but the opaque bytes), spread over
        # the die towards the record queue's slices, was the worst routed path (7.74 ns on
        # that one net, seed 1).
        m.d.sync += [
            rec.eth.eq(Cat(b["eth_addr"], a["vlans"], a["tci0"], a["tci1"], a["et"])),
            rec.outer.eq(Cat(b1["outer"].as_value()[:-1], b["o_csum_ok"])),
            rec.inner.eq(Cat(b["inner"].as_value()[:-1], b["i_csum_ok"])),
            rec.tcp.eq(b["tcp"]),
            rec.off.eq(Cat(Const(0, 10) | a["l3"], Const(0, 10) | a["opaque_off"],
                           b["inner_l3"], b["l4"], b["payload"])),
            rec.payload_len.eq(b["payload_len"]),
            rec.err.eq(Cat(b["truncated"], b["short_frame"], b["outer_bad_ihl"],
                           b["inner_bad_ihl"], b["outer_bad_csum"], b["inner_bad_csum"],
                           b["outer_bad_len"], b["inner_bad_len"], b["window"])),
            rec.cls.eq(Cat(
                Mux(ok, Mux(matched, Kind.TUNNEL, Kind.PLAIN), Kind.OTHER), reason,
                Mux(matched, dec.profile, 0), Mux(matched, dec.opaque_len[:10], 0),
                Mux(matched, dec.flow, 0),
                ok & (~matched | dec.tso_en),
                ok & (~matched | dec.rsc_en) & b["o_csum_ok"] & b["i_csum_ok"],
                matched & dec.udp, matched & dec.udp_csum, matched & dec.ipid_fixed)),
        ]
        return m
