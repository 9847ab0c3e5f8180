"""Format/flow classifier: P run-time profiles matched against the bytes after the outer IPv4.

:class:`ProfileTable` holds the profiles (register words of :mod:`hw.profile`) behind a simple
word write/read port. :class:`Classifier` watches the beats of a packet as they pass the
parser's outer stage, captures every profile's format, check, length and flow field at its
configured offset from the opaque start (in-stream, so no wide multiplexer over the captured
header is needed), and when told (``trigger``) decides which profile matches first, the opaque
length and the flow field. The rules are docs/parse-record.md, section "Classifier". The
decision also carries the matched profile's ``inner_eth`` flag; the inner Ethernet type itself
sits just before the inner header, wherever the opaque length puts it (past this capture for
Geneve with long options), so the parser captures it with the inner header and the record
builder checks it.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .byteorder import be_value
from .capture import capture_byte
from .profile import FIELDS, WORDS, Profile
from .replicate import replicas
from .stream import check_width

__all__ = ["ProfileTable", "Decision", "Classifier"]

#: Register words reserved per profile in the table's address space.
PROFILE_STRIDE = 8


class ProfileTable(wiring.Component):
    """P profiles in registers, written and read one 32-bit word at a time.

    Address ``p * 8 + w`` is word ``w`` (0..6, see :data:`hw.profile.FIELDS`) of profile ``p``.
    A write takes effect the next cycle; ``rdata`` is registered (one cycle after ``addr``).
    Unused bits read as zero. Reset: every profile disabled and zero.
    """

    def __init__(self, profiles=8):
        if not 1 <= profiles <= 8:
            raise ValueError(f"profile count must be 1..8, not {profiles}")
        self.profiles = profiles
        super().__init__({
            "addr": In(range(profiles * PROFILE_STRIDE)),
            "wdata": In(32), "we": In(1), "rdata": Out(32),
            "table": Out(data.ArrayLayout(Profile, profiles)),
        })

    def elaborate(self, platform):
        m = Module()
        words = [[Signal(32, name=f"p{p}_w{w}") for w in range(WORDS)]
                 for p in range(self.profiles)]
        for p in range(self.profiles):
            for name, word, lsb, width in FIELDS:
                m.d.comb += self.table[p][name].eq(words[p][word][lsb:lsb + width])
            for w in range(WORDS):
                used = sum(((1 << width) - 1) << lsb for _, wd, lsb, width in FIELDS if wd == w)
                with m.If(self.we & (self.addr == p * PROFILE_STRIDE + w)):
                    m.d.sync += words[p][w].eq(self.wdata & used)
        with m.Switch(self.addr):
            for p in range(self.profiles):
                for w in range(WORDS):
                    with m.Case(p * PROFILE_STRIDE + w):
                        m.d.sync += self.rdata.eq(words[p][w])
            with m.Default():
                m.d.sync += self.rdata.eq(0)
        return m


class Decision(data.Struct):
    matched: 1
    profile: 3
    opaque_len: 20      #: full width (the record keeps it mod 1024)
    inner_l3: 20        #: opaque start + opaque_len (full width), valid when matched
    len_outside: 1
    flow: 32
    flow_outside: 1
    field_trunc: 1      #: a needed field is past the end of a frame no longer than the window
    field_window: 1     #: a needed field is past the header window
    udp: 1
    udp_csum: 1
    ipid_fixed: 1
    tso_en: 1
    rsc_en: 1
    inner_eth: 1        #: check the inner Ethernet header's EtherType (before inner_l3)
    eth_short: 1        #: ... which does not fit: inner_eth with opaque_len below 14


def right_align(value32, nbytes):
    """The first ``nbytes`` (1..4) of a big-endian 4-byte capture, as a number."""
    return Mux(nbytes == 1, value32[24:32],
               Mux(nbytes == 2, value32[16:32], Mux(nbytes == 3, value32[8:32], value32)))


def left_align(value32, nbytes):
    """A right-aligned ``nbytes`` (1..4) number moved to the top of 32 bits (big-endian first)."""
    return Mux(nbytes == 1, value32 << 24,
               Mux(nbytes == 2, value32 << 16, Mux(nbytes == 3, value32 << 8, value32)))[:32]


#: Field kind -> (table offset field, bytes captured).
FIELD_KINDS = {"fmt": ("fmt_off", 4), "chk": ("check_off", 2), "len": ("len_off", 2),
               "flow": ("flow_off", 4)}


class Classifier(wiring.Component):
    """Capture every profile's fields from the passing beats and decide the first match.

    Inputs describe the beat leaving the parser's outer stage: ``take`` (it leaves now),
    ``first``, ``beat`` (index in the packet), ``data`` (W lanes, zero past ``keep``),
    ``opaque``/``opaque_known`` (start of the opaque region, at most 82: 8 bits keep every
    offset adder short), the outer header's ``outer_is4`` (ethertype), ``outer_vihl`` (its
    version/IHL byte), ``outer_avail`` (its 20 bytes are in the frame and the window) and
    ``outer_proto``. ``opaque_p`` holds one copy of ``opaque`` per profile (equal to it
    whenever ``opaque_known``; the parser drives them from separate registers, so no single
    net feeds every profile's field-start adders).
    On ``trigger`` (with ``take``: all fields of every profile lie in beats already taken, or
    the packet ends here with ``ended``/``frame_len``) the decision starts; ``o_valid`` pulses
    :attr:`LATENCY` cycles later with ``o``. One decision per packet; the pipeline accepts a
    trigger every cycle and has no backpressure. Field availability uses ``header_window`` and,
    when ``ended``, ``frame_len`` (docs/parse-record.md).

    Timing structure (every stage is registered; no stage holds more than one short adder or
    compare in series, since routing dominates on the ECP5):

    * the inputs are registered first, so none of the parser's stage-B logic reaches a capture;
      the beat is registered in one copy per profile (:func:`hw.replicate.replicas`), so no
      register drives the lane multiplexers of more than one profile;
    * each profile's field start (``opaque + off``), its beat index and the beat after, and the
      lane select of every byte phase are registered from the (registered) opaque start, so a
      captured byte is a beat-index equality and a W:1 lane multiplexer on registered selects;
    * that multiplexer's byte and the byte's hit are registered (stage c), the capture register
      takes them a cycle later;
    * the fields are latched with the trigger beat, then matched (1a: compares against
      pre-aligned value/mask registers, availability; the format match and the check field
      in separate registers; 1b: their AND, first-match one-hot, opaque length), selected (2:
      AND-OR over the one-hot) and finished (3: inner header offset).

    Values derived from the configuration (``table``, expected to come from registers) are
    registered: a profile write takes full effect two cycles later. Reset: no decision in
    flight.
    """

    LATENCY = 7

    def __init__(self, width=8, *, profiles=8, opaque_bytes=64, header_window=256,
                 beat_bits=8):
        self.width = check_width(width)
        self.profiles = profiles
        self.opaque_bytes = opaque_bytes
        self.header_window = header_window
        super().__init__({
            "table": In(data.ArrayLayout(Profile, profiles)),
            "take": In(1), "first": In(1), "beat": In(beat_bits), "data": In(8 * width),
            "opaque": In(8), "opaque_known": In(1),
            "opaque_p": In(data.ArrayLayout(8, profiles)),
            "outer_is4": In(1), "outer_vihl": In(8), "outer_avail": In(1),
            "outer_proto": In(8),
            "trigger": In(1), "ended": In(1), "frame_len": In(16),
            "o_valid": Out(1), "o": Out(Decision),
        })

    def elaborate(self, platform):
        m = Module()
        W, C, H, P = self.width, self.opaque_bytes, self.header_window, self.profiles
        lw = (W - 1).bit_length()
        BB = len(self.beat)

        # ---- configuration, registered (it changes only when the host writes a profile) ----
        cfg = []
        for p in range(P):
            prof = self.table[p]
            # Plain fields are used as they are (they are registers already); derived ones
            # are registered here.
            c = {name: prof[name] for name in (
                "enable", "outer_proto", "len_mode", "udp", "udp_csum", "tso_en", "rsc_en",
                "ipid_fixed", "inner_eth", "opaque_len", "len_bytes", "len_shift", "len_scale",
                "len_mask", "fmt_len", "flow_len", "fmt_off", "len_off", "flow_off",
                "check_off")}
            fv, fm = Signal(32, name=f"p{p}_cfg_fv"), Signal(32, name=f"p{p}_cfg_fm")
            m.d.sync += [fv.eq(left_align(prof.fmt_value, prof.fmt_len)),
                         fm.eq(left_align(prof.fmt_mask, prof.fmt_len))]
            # The field is compared right-aligned: value bits above it must be masked or zero.
            above = Mux(prof.fmt_len == 1, 0xFFFFFF00, Mux(prof.fmt_len == 2, 0xFFFF0000,
                                                           Mux(prof.fmt_len == 3, 0xFF000000, 0)))
            fhi = Signal(name=f"p{p}_cfg_fhi")
            m.d.sync += fhi.eq((prof.fmt_value & prof.fmt_mask & above) == 0)
            c["fv"], c["fm"], c["fhi"] = fv, fm, fhi
            # An inner Ethernet header needs 14 opaque bytes (the base of a variable length).
            eth_short = Signal(name=f"p{p}_cfg_eth_short")
            m.d.sync += eth_short.eq(prof.inner_eth & (prof.opaque_len < 14))
            c["eth_short"] = eth_short
            # The check field takes part only with a non-zero mask (reset: no check).
            chk_on = Signal(name=f"p{p}_cfg_chk_on")
            m.d.sync += chk_on.eq(prof.check_mask != 0)
            c["chk_on"], c["cv"], c["cm"] = chk_on, prof.check_value, prof.check_mask
            # Field end (offset + size) relative to the opaque start, and "inside the capture".
            sizes = {"fmt": prof.fmt_len, "chk": 2, "len": prof.len_bytes,
                     "flow": prof.flow_len}
            for kind, size in sizes.items():
                offsz = Signal(8, name=f"p{p}_cfg_{kind}_offsz")
                inside = Signal(name=f"p{p}_cfg_{kind}_in")
                m.d.sync += [offsz.eq(prof[FIELD_KINDS[kind][0]] + size),
                             inside.eq(prof[FIELD_KINDS[kind][0]] + size <= C)]
                c[f"{kind}_offsz"], c[f"{kind}_in"] = offsz, inside
            cfg.append(c)

        # ---- input register ----------------------------------------------------------------
        r = {name: Signal(len(port), name=f"r_{name}") for name, port in (
            ("ended", self.ended),
            ("flen", self.frame_len), ("is4", self.outer_is4), ("vihl", self.outer_vihl),
            ("avail", self.outer_avail),
            ("proto", self.outer_proto), ("opaque", self.opaque))}
        r["trig"] = Signal(name="r_trig")
        m.d.sync += [
            r["ended"].eq(self.ended), r["flen"].eq(self.frame_len),
            r["is4"].eq(self.outer_is4), r["vihl"].eq(self.outer_vihl),
            r["avail"].eq(self.outer_avail), r["proto"].eq(self.outer_proto),
            r["opaque"].eq(self.opaque), r["trig"].eq(self.take & self.trigger),
        ]
        # The registered beat feeds 12 field-byte lane multiplexers per profile, spread over
        # the die: each profile reads its own copy of the beat (data, index, first and known
        # flags; read only with ``take``; the first six variants need no clock enable, the
        # other two add a load on ``take``) and one of two copies of ``take``. With six copies
        # for eight profiles, one copy feeding profiles 0 and 1 (placed 38 columns apart) was
        # the worst routed path at seed 1 (main 63560dd: 7.53 ns on that one net).
        beat_in = Cat(self.data, self.beat, self.first, self.opaque_known)
        beat_reps = replicas(m, beat_in, P, name="r_beat", enable=self.take)
        take_reps = replicas(m, self.take, min(P, 2), name="r_take")

        # Stage c (the capture's lane multiplexer) delays everything else by a cycle.
        c_trig = Signal(name="c_trig")
        m.d.sync += c_trig.eq(r["trig"])

        # ---- per-profile field capture, on registered starts ----------------------------------
        # The starts are registered from the same-cycle opaque input as the beat, so they
        # describe the registered beat exactly.
        latched = []
        for p in range(P):
            c = cfg[p]
            regs = {}
            rep = beat_reps[p * len(beat_reps) // P]
            p_data, p_beat = rep[:8 * W], rep[8 * W:8 * W + BB]
            p_first, p_known = rep[8 * W + BB], rep[8 * W + BB + 1]
            p_take = take_reps[p * len(take_reps) // P]
            p_opaque = self.opaque_p[p]   # read only with p_known (see the class doc)
            lane_array = Array(p_data.word_select(i, 8) for i in range(W))
            # The lane multiplexer is a stage of its own (c): its output byte and the byte's
            # hit are registered, and the capture register takes them a cycle later.
            c_first, c_take = Signal(name=f"p{p}_c_first"), Signal(name=f"p{p}_c_take")
            m.d.sync += [c_first.eq(p_first), c_take.eq(p_take)]
            for kind, (off_name, count) in FIELD_KINDS.items():
                assert count <= W
                off = c[off_name]
                start = p_opaque + off
                st_beat = Signal(BB, name=f"p{p}_{kind}_sb")
                st_beat1 = Signal(BB, name=f"p{p}_{kind}_sb1")
                m.d.sync += [st_beat.eq(start >> lw), st_beat1.eq((start >> lw) + 1)]
                eq0, eq1 = Signal(name=f"p{p}_{kind}_eq0"), Signal(name=f"p{p}_{kind}_eq1")
                m.d.comb += [eq0.eq(p_beat == st_beat), eq1.eq(p_beat == st_beat1)]
                nexts = []
                for k in range(count):
                    sel = Signal(lw + 1, name=f"p{p}_{kind}_sel{k}")
                    # The lane of byte k, and whether it is one beat after the start beat.
                    m.d.sync += sel.eq((p_opaque[:lw] + off[:lw])[:lw] + k)
                    byte = Signal(8, name=f"p{p}_{kind}_lane{k}")
                    m.d.sync += byte.eq(lane_array[sel[:lw]])
                    hit = Signal(name=f"p{p}_{kind}_hit{k}")
                    m.d.sync += hit.eq(p_known & Mux(sel[lw], eq1, eq0))
                    _, nxt = capture_byte(m, hit=hit, byte=byte, first=c_first, take=c_take,
                                          name=f"p{p}_{kind}{k}")
                    nexts.append(nxt)
                lat = Signal(8 * count, name=f"p{p}_{kind}_lat")
                with m.If(c_trig):
                    m.d.sync += lat.eq(be_value(nexts))
                regs[kind] = lat
            latched.append(regs)

        # ---- stage 0: what the decision needs besides the fields -------------------------------
        r_in = r
        r = {name: Signal(len(v), name=f"c_{name}") for name, v in r_in.items()}
        m.d.sync += [r[name].eq(v) for name, v in r_in.items()]
        s0 = {name: Signal(len(r[name]), name=f"s0_{name}")
              for name in ("opaque", "proto", "ended", "flen")}
        s0["outer"] = Signal(name="s0_outer")
        s0_valid = Signal()
        m.d.sync += s0_valid.eq(r["trig"])
        with m.If(r["trig"]):
            m.d.sync += [s0[name].eq(r[name]) for name in s0 if name != "outer"]
            # The outer header is valid: IPv4, version 4, IHL >= 5, 20 bytes available.
            m.d.sync += s0["outer"].eq(r["is4"] & (r["vihl"][4:8] == 4) &
                                       (r["vihl"][:4] >= 5) & r["avail"])
        # The check fields' availability reads its own copy of the frame end: the frame length
        # into the match registers was the parser's worst path on main (seed 1).
        chk_end = replicas(m, Cat(r["ended"], r["flen"]), 1, name="s0_chk_flen",
                           enable=r["trig"])[0]
        chk_ended, chk_flen = chk_end[0], chk_end[1:]
        s0_short = Signal()
        m.d.comb += s0_short.eq(s0["ended"] & (s0["flen"] <= H))
        # Each profile's availability compares read their own copy of s0's frame length and
        # ended flag: the one register feeding every profile's compares across the die was
        # the worst routed path at seeds 1 and 2 (5.3 ns on the s0_flen net alone, seed 2).
        # The copies are read only in the cycle after the trigger, as stage 1a reads s0.
        fe_reps = replicas(m, Cat(r["flen"], r["ended"]), min(P, 12), name="s0_fe",
                           enable=r["trig"])
        # Absolute field ends, one cycle behind the registered opaque start (so they match s0).
        ends = []
        for p in range(P):
            e = {}
            for kind in FIELD_KINDS:
                end = Signal(9, name=f"p{p}_{kind}_end")
                m.d.sync += end.eq(r["opaque"] + cfg[p][f"{kind}_offsz"])
                e[kind] = end
            ends.append(e)

        # ---- stage 1a: compares, availability, field values --------------------------------
        a_valid = Signal()
        m.d.sync += a_valid.eq(s0_valid)
        a_opaque = Signal(8)
        m.d.sync += a_opaque.eq(s0["opaque"])
        a = []
        for p in range(P):
            c, lat, e = cfg[p], latched[p], ends[p]
            fe = fe_reps[p % len(fe_reps)]
            flen_p, ended_p = fe[:16], fe[16]
            sig = {name: Signal(width, name=f"p{p}_a_{name}") for name, width in (
                ("match", 1), ("chk_ok", 1), ("len_v", 16), ("len_out", 1),
                ("flow", 32), ("flow_ok", 1), ("flow_out", 1), ("cut", 1), ("short", 1))}

            def avail(end):
                return (end <= H) & (~ended_p | (end <= flen_p))

            len_size_ok = (c["len_bytes"] == 1) | (c["len_bytes"] == 2)
            len_val = Mux(c["len_bytes"] == 1, lat["len"][8:16], lat["len"])
            has_flow = c["flow_len"] != 0
            flow_size_ok = c["flow_len"] <= 4
            l_av, w_av = avail(e["len"]), avail(e["flow"])
            m.d.sync += [
                sig["match"].eq(c["enable"] & c["fhi"] & s0["outer"] &
                                (s0["proto"] == c["outer_proto"]) &
                                (c["fmt_len"] >= 1) & (c["fmt_len"] <= 4) & c["fmt_in"] &
                                avail(e["fmt"]) &
                                (((lat["fmt"] ^ c["fv"]) & c["fm"]) == 0)),
                # The check field, a register of its own (ANDed with the match in 1b), so
                # the match register's logic is what it was.
                sig["chk_ok"].eq(~c["chk_on"] |
                                 (c["chk_in"] & (e["chk"] <= H) &
                                  (~chk_ended | (e["chk"] <= chk_flen)) &
                                  (((lat["chk"] ^ c["cv"]) & c["cm"]) == 0))),
                sig["len_v"].eq((len_val & c["len_mask"]) >> c["len_shift"]),
                sig["len_out"].eq(c["len_mode"] & ~(len_size_ok & c["len_in"] & l_av)),
                sig["flow"].eq(right_align(lat["flow"], c["flow_len"])),
                sig["flow_ok"].eq(has_flow & flow_size_ok & c["flow_in"] & w_av),
                sig["flow_out"].eq(has_flow & ~(flow_size_ok & c["flow_in"] & w_av)),
                # Fields inside the capture but past the frame/window end: truncation/window.
                sig["cut"].eq((c["len_mode"] & len_size_ok & c["len_in"] & ~l_av) |
                              (has_flow & flow_size_ok & c["flow_in"] & ~w_av)),
                sig["short"].eq(s0_short),
            ]
            a.append(sig)

        # ---- stage 1b: match, first-match one-hot, opaque length -------------------------
        b_valid = Signal()
        m.d.sync += b_valid.eq(a_valid)
        b_opaque = Signal(8)
        m.d.sync += b_opaque.eq(a_opaque)
        matches = [a[p]["match"] & a[p]["chk_ok"] for p in range(P)]
        win = Signal(P)
        for p in range(P):
            earlier = Cat(*matches[:p]).any() if p else Const(0)
            m.d.sync += win[p].eq(matches[p] & ~earlier)
        per = []
        for p in range(P):
            c, sa = cfg[p], a[p]
            rd = Signal(Decision, name=f"p{p}_dec")
            var_len = (sa["len_v"] << c["len_scale"]) + c["opaque_len"]
            o_len = Mux(c["len_mode"], var_len, c["opaque_len"])
            m.d.sync += [
                rd.matched.eq(1),
                rd.profile.eq(p),
                rd.opaque_len.eq(Mux(sa["len_out"], 0, o_len)),
                rd.len_outside.eq(sa["len_out"]),
                rd.flow.eq(Mux(sa["flow_ok"], sa["flow"], 0)),
                rd.flow_outside.eq(sa["flow_out"]),
                rd.field_trunc.eq(sa["cut"] & sa["short"]),
                rd.field_window.eq(sa["cut"] & ~sa["short"]),
                rd.udp.eq(c["udp"]), rd.udp_csum.eq(c["udp_csum"]),
                rd.ipid_fixed.eq(c["ipid_fixed"]), rd.tso_en.eq(c["tso_en"]),
                rd.rsc_en.eq(c["rsc_en"]),
                rd.inner_eth.eq(c["inner_eth"]), rd.eth_short.eq(c["eth_short"]),
            ]
            per.append(rd)

        # ---- stage 2: the first matching profile wins (AND-OR over the one-hot) --------------
        sel_valid = Signal()
        m.d.sync += sel_valid.eq(b_valid)
        sel_opaque = Signal(8)
        m.d.sync += sel_opaque.eq(b_opaque)
        chosen = Signal(Decision)
        terms = [Mux(win[p], per[p].as_value(), 0) for p in range(P)]
        acc = terms[0]
        for t in terms[1:]:
            acc = acc | t
        m.d.sync += chosen.eq(acc)

        # ---- stage 3: where the inner header starts ----------------------------------------------
        m.d.sync += self.o_valid.eq(sel_valid)
        m.d.sync += [self.o.eq(chosen),
                     self.o.inner_l3.eq(Mux(chosen.matched, sel_opaque + chosen.opaque_len, 0))]
        return m
