"""Format/flow classifier: P run-time profiles matched against the bytes after the outer IPv4.

:class:`ProfileTable` holds the profiles (register words of :mod:`hw.profile`) behind a simple
word write/read port. :class:`Classifier` watches the beats of a packet as they pass the
parser's outer stage, captures every profile's format, length and flow field at its configured
offset from the opaque start (in-stream, so no wide multiplexer over the captured header is
needed), and when told (``trigger``) decides which profile matches first, the opaque length and
the flow field. The rules are docs/parse-record.md, section "Classifier".
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .byteorder import be_value
from .capture import capture_region
from .profile import FIELDS, WORDS, Profile
from .stream import check_width

__all__ = ["ProfileTable", "Decision", "Classifier"]

#: Register words reserved per profile in the table's address space.
PROFILE_STRIDE = 8


class ProfileTable(wiring.Component):
    """P profiles in registers, written and read one 32-bit word at a time.

    Address ``p * 8 + w`` is word ``w`` (0..4, see :data:`hw.profile.FIELDS`) of profile ``p``.
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


def right_align(value32, nbytes):
    """The first ``nbytes`` (1..4) of a big-endian 4-byte capture, as a number."""
    return Mux(nbytes == 1, value32[24:32],
               Mux(nbytes == 2, value32[16:32], Mux(nbytes == 3, value32[8:32], value32)))


class Classifier(wiring.Component):
    """Capture every profile's fields from the passing beats and decide the first match.

    Inputs describe the beat leaving the parser's outer stage: ``take`` (it leaves now),
    ``first``, ``beat`` (index in the packet), ``data`` (W lanes, zero past ``keep``),
    ``opaque``/``opaque_known`` (start of the opaque region), ``outer_valid``/``outer_proto``.
    On ``trigger`` (with ``take``: all fields of every profile lie in beats already taken, or
    the packet ends here with ``ended``/``frame_len``) the decision starts; ``o_valid`` pulses
    :attr:`LATENCY` cycles later with ``o``. One decision per packet; the pipeline accepts a
    trigger every cycle. Field availability uses ``header_window`` and, when ``ended``,
    ``frame_len`` (docs/parse-record.md).
    """

    LATENCY = 2

    def __init__(self, width=8, *, profiles=8, opaque_bytes=64, header_window=256,
                 beat_bits=8):
        self.width = check_width(width)
        self.profiles = profiles
        self.opaque_bytes = opaque_bytes
        self.header_window = header_window
        super().__init__({
            "table": In(data.ArrayLayout(Profile, profiles)),
            "take": In(1), "first": In(1), "beat": In(beat_bits), "data": In(8 * width),
            "opaque": In(20), "opaque_known": In(1),
            "outer_valid": In(1), "outer_proto": In(8),
            "trigger": In(1), "ended": In(1), "frame_len": In(16),
            "o_valid": Out(1), "o": Out(Decision),
        })

    def elaborate(self, platform):
        m = Module()
        W, C, H = self.width, self.opaque_bytes, self.header_window
        lanes = [self.data.word_select(i, 8) for i in range(W)]

        def cap(p, kind, off, count):
            start = Signal(20, name=f"p{p}_{kind}_start")
            m.d.comb += start.eq(self.opaque + off)
            _, nexts = capture_region(m, width=W, count=count, start=start, beat=self.beat,
                                      lanes=lanes, take=self.take, first=self.first,
                                      gate=self.opaque_known, name=f"p{p}_{kind}")
            return nexts

        # Stage 0 (with the trigger beat): latch every profile's captured field bytes.
        latched = []
        for p in range(self.profiles):
            prof = self.table[p]
            fields = {"fmt": (prof.fmt_off, 4), "len": (prof.len_off, 2),
                      "flow": (prof.flow_off, 4)}
            regs = {}
            for kind, (off, count) in fields.items():
                nexts = cap(p, kind, off, count)
                reg = Signal(8 * count, name=f"p{p}_{kind}_lat")
                with m.If(self.take & self.trigger):
                    m.d.sync += reg.eq(be_value(nexts))
                regs[kind] = reg
            latched.append(regs)
        s0_valid = Signal()
        s0_opaque = Signal(20)
        s0_outer = Signal()
        s0_proto = Signal(8)
        s0_ended = Signal()
        s0_flen = Signal(16)
        m.d.sync += s0_valid.eq(self.take & self.trigger)
        with m.If(self.take & self.trigger):
            m.d.sync += [s0_opaque.eq(self.opaque), s0_outer.eq(self.outer_valid),
                         s0_proto.eq(self.outer_proto), s0_ended.eq(self.ended),
                         s0_flen.eq(self.frame_len)]

        def field_status(off, size):
            """(inside capture, available, truncated-not-window) of an opaque-relative field."""
            inside = (off + size) <= C
            end = s0_opaque + off + size
            avail = (end <= H) & (~s0_ended | (end <= s0_flen))
            trunc = s0_ended & (s0_flen <= H)
            return inside, avail, trunc

        # Stage 1: per-profile match, opaque length and flow (registered).
        per = []
        for p in range(self.profiles):
            prof = self.table[p]
            regs = latched[p]
            r = Signal(Decision, name=f"p{p}_dec")
            match = Signal(name=f"p{p}_match")
            f_in, f_av, _ = field_status(prof.fmt_off, prof.fmt_len)
            fmt_ok = (prof.fmt_len >= 1) & (prof.fmt_len <= 4) & f_in & f_av
            fmt_val = right_align(regs["fmt"], prof.fmt_len)
            m.d.comb += match.eq(prof.enable & s0_outer & (s0_proto == prof.outer_proto) &
                                 fmt_ok & (((fmt_val ^ prof.fmt_value) & prof.fmt_mask) == 0))
            l_in, l_av, l_tr = field_status(prof.len_off, prof.len_bytes)
            len_size_ok = (prof.len_bytes == 1) | (prof.len_bytes == 2)
            len_out = prof.len_mode & ~(len_size_ok & l_in & l_av)
            len_val = Mux(prof.len_bytes == 1, regs["len"][8:16], regs["len"])
            var_len = (((len_val & prof.len_mask) >> prof.len_shift) << prof.len_scale)
            o_len = Mux(prof.len_mode, var_len + prof.opaque_len, prof.opaque_len)
            w_in, w_av, w_tr = field_status(prof.flow_off, prof.flow_len)
            has_flow = prof.flow_len != 0
            flow_out = has_flow & ~((prof.flow_len <= 4) & w_in & w_av)
            flow_val = right_align(regs["flow"], prof.flow_len)
            # Fields inside the capture but past the frame/window end are truncation/window.
            len_cut = prof.len_mode & len_size_ok & l_in & ~l_av
            flow_cut = has_flow & (prof.flow_len <= 4) & w_in & ~w_av
            cut = len_cut | flow_cut
            m.d.sync += [
                r.matched.eq(match),
                r.profile.eq(p),
                r.opaque_len.eq(Mux(len_out, 0, o_len)),
                r.len_outside.eq(len_out),
                r.flow.eq(Mux(flow_out | ~has_flow, 0, flow_val)),
                r.flow_outside.eq(flow_out),
                r.field_trunc.eq(cut & l_tr),
                r.field_window.eq(cut & ~l_tr),
                r.udp.eq(prof.udp), r.udp_csum.eq(prof.udp_csum),
                r.ipid_fixed.eq(prof.ipid_fixed), r.tso_en.eq(prof.tso_en),
                r.rsc_en.eq(prof.rsc_en),
            ]
            per.append(r)
        s1_valid = Signal()
        m.d.sync += s1_valid.eq(s0_valid)

        # Stage 2: the first matching profile wins (registered output).
        m.d.sync += self.o_valid.eq(s1_valid)
        with m.If(s1_valid):
            m.d.sync += self.o.eq(0)
            for r in reversed(per):
                with m.If(r.matched):
                    m.d.sync += self.o.eq(r)
        return m
