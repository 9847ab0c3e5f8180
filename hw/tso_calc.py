"""TSO header calculator: per segment, the values of every patched header byte.

Internal to :class:`hw.tso.TsoEngine`. Takes one descriptor at a time and produces ``next_*``
(held until the segment side takes it).
Lengths, IDs, sequence number and flags come from dedicated adders; the four checksums (outer
and inner IPv4 header, TCP, and UDP or GRE) from four one's-complement accumulators (the TCP
and UDP/GRE ones with a helper each that sums part of their operands) that run one shared
one-hot micro-program step in parallel, each adding one operand per cycle (operand selection
registered, so each cycle is an AND-OR *or* an add), then folding. Sums of regions that
start on an odd byte are multiplied by 256 (a byte swap, exactly, modulo 0xFFFF) instead of
being swapped after folding.

19 cycles per segment from taking a descriptor to ``next_valid``, for every kind of frame; the
segment side overlaps this with sending the previous segment. The segment's output beat counts
are computed here too (``next_rem``, ``next_one``, ``next_end_mask``, ``next_ring``).
"""

from amaranth import *

from .byteorder import be_bytes
from .layouts import TCP_CWR, TCP_FIN, TCP_PSH
from .tso_layouts import PATCH_BYTES, DescKind, context_layout, descriptor_layout

__all__ = ["TsoCalc"]

ACC_BITS = 48
FOLDS = 5


def _or(terms):
    """OR of a list of values, as a balanced tree."""
    terms = [Value.cast(x) for x in terms]
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class TsoCalc(Elaboratable):
    def __init__(self, width):
        self.width = width
        self.d_valid = Signal()
        self.d_ready = Signal()
        self.d = Signal(descriptor_layout())
        self.ctx = [Signal(context_layout(), name=f"ctx{i}") for i in range(2)]

        self.next_valid = Signal()
        self.next_take = Signal()          # in: the segment side takes `next`
        self.next_kind = Signal(DescKind)
        self.next_bank = Signal()
        self.next_first = Signal()
        self.next_last = Signal()
        self.next_n = Signal(14)
        # The segment's output beat counts, precomputed so the segment side only copies them:
        self.next_rem = Signal(16)         # output beats after the first
        self.next_one = Signal()           # ... is 0 (a one-beat segment)
        self.next_end_mask = Signal(width)  # keep of the last beat
        self.next_ring = Signal(16)        # ring beats of the payload
        self.next_vals = Signal(8 * PATCH_BYTES)   # patch bytes in PATCHES order

    def elaborate(self, platform):
        m = Module()
        d = Signal(descriptor_layout())
        c = Signal(context_layout())
        m.d.comb += c.eq(Mux(d.bank, self.ctx[1], self.ctx[0]))
        # The operands read a registered copy (taken in PREP), so the micro-program's operand
        # mux does not start at the bank select.
        cr = Signal(context_layout())
        W = self.width
        lw = (W - 1).bit_length()
        total = Signal(16)                 # hl + n: bytes of the segment

        outer_len = Signal(16)
        inner_len = Signal(16)
        udp_len = Signal(16)
        tcp_len = Signal(16)
        outer_id = Signal(16)
        inner_id = Signal(16)
        seq = Signal(32)
        prev_n = Signal(14)
        flags = Signal(8)
        flag_word = Signal(16)
        outer_csum = Signal(16)
        inner_csum = Signal(16)
        tcp_csum = Signal(16)
        udp_csum = Signal(16)

        odd = cr.l4_odd

        def neg(x):
            return Const(0xFFFF, 16) ^ x

        def sw(x):  # value of a region starting on an odd offset relative to its header
            return Mux(odd, Value.cast(x) << 8, x)

        # Four accumulators, one per checksum, run the same micro-program step in parallel:
        # at step i each adds operand i of its list (the first clears), then folds FOLDS
        # times, then stores. Operand and action are registered, so each cycle is a mux *or*
        # an add. The UDP and GRE checksums share the fourth (a profile is one or the other).
        ip_o, ip_i = cr.outer, cr.inner

        def ip_ops(ip, length, ident):
            return [ip.w0, ip.w3, ip.w4, ip.src[16:], ip.src[:16], ip.dst[16:], ip.dst[:16],
                    length, ident]

        # The TCP segment, checksum included, sums to minus its pseudo-header.
        k_tcp = sw(Const(0xFFFF ^ 6, 16))
        minus_tcp = [sw(neg(ip_i.src[16:])), sw(neg(ip_i.src[:16])), sw(neg(ip_i.dst[16:])),
                     sw(neg(ip_i.dst[:16])), k_tcp, sw(neg(tcp_len))]
        # The UDP pseudo-header's protocol (17) is folded into the constant of minus_tcp.
        k_udp = Mux(odd, Const(((0xFFFF ^ 6) << 8) + 17, 24), Const((0xFFFF ^ 6) + 17, 17))
        udp_ops = [ip_o.src[16:], ip_o.src[:16], ip_o.dst[16:], ip_o.dst[:16],
                   udp_len, d.opq_sum, neg(cr.udp_len), neg(cr.udp_csum_in),
                   udp_len, *minus_tcp[:4], k_udp, minus_tcp[5]]
        # GRE checksum (RFC 2784): GRE header with the field as 0, then the inner datagram; its
        # IPv4 header sums to 0 and its TCP segment to minus its pseudo-header.
        gre_ops = [d.opq_sum, neg(cr.udp_csum_in), *minus_tcp]
        gre_ops += [Const(0, 16)] * (len(udp_ops) - len(gre_ops))
        tcp_ops = [ip_i.src[16:], ip_i.src[:16], ip_i.dst[16:], ip_i.dst[:16], Const(6, 16),
                   tcp_len, sw(d.tcph_sum),
                   neg(cr.seq[16:]), neg(cr.seq[:16]), neg(cr.flag_word), neg(cr.tcp_csum),
                   seq[16:], seq[:16], flag_word, sw(d.psum)]
        l4_ops = [Mux(cr.gre_csum, g, u) for g, u in zip(gre_ops, udp_ops)]
        # The TCP and UDP/GRE lists (15 operands each) are split over two accumulators: a
        # helper sums the last 7, which its main lane adds as its 9th operand (the helper is
        # complete exactly then), so every lane is 9 operands long. The integer sum is the
        # same, hence so is the folded checksum.
        assert len(tcp_ops) == len(l4_ops) == 15
        HELP = 7
        lanes = [  # (operands, accumulator bits, target or None)
            (ip_ops(ip_o, outer_len, outer_id), 20, outer_csum),
            (ip_ops(ip_i, inner_len, inner_id), 20, inner_csum),
        ]
        helpers = []
        for ops, target in ((tcp_ops, tcp_csum), (l4_ops, udp_csum)):
            helper = Signal(ACC_BITS, name=f"acc_help{len(helpers)}")
            helpers.append((ops[-HELP:], helper))
            lanes.append(([*ops[:-HELP], helper], ACC_BITS, target))
        n_main = len(lanes[0][0])
        assert all(len(ops) == n_main for ops, _, _ in lanes)
        last_step = n_main + FOLDS

        # One-hot step (a shift register), so each operand register is an AND-OR of its
        # operands rather than a decoded multiplexer.
        stp = Signal(last_step + 1)
        m.d.sync += stp.eq(stp << 1)
        act_rs = []
        all_lanes = [(ops, bits, t, None) for ops, bits, t in lanes] + \
                    [(ops, ACC_BITS, None, acc) for ops, acc in helpers]
        for j, (ops, nbits, target, acc) in enumerate(all_lanes):
            if acc is None:
                acc = Signal(nbits, name=f"acc{j}")
            op_r = Signal(nbits, name=f"op_r{j}")
            act_r = Signal(3, name=f"act_r{j}")   # 0 none, 1 clr, 2 add, 3 fold, 4 store
            act_rs.append(act_r)
            with m.Switch(act_r):
                with m.Case(1):
                    m.d.sync += acc.eq(op_r)
                with m.Case(2):
                    m.d.sync += acc.eq(acc + op_r)
                if target is not None:
                    with m.Case(3):
                        m.d.sync += acc.eq(acc[:16] + acc[16:])
                    with m.Case(4):
                        m.d.sync += target.eq(~acc[:16])
            n = len(ops)
            op_terms, act_terms = [], []
            for i in range(last_step + 1):
                if i < n:
                    op_terms.append(Mux(stp[i], ops[i], 0))
                code = 1 if i == 0 else 2 if i < n else 0
                if target is not None and not code:
                    code = 3 if i < n + FOLDS else 4 if i == n + FOLDS else 0
                if code:
                    act_terms.append(Mux(stp[i], code, 0))
            m.d.sync += [op_r.eq(_or(op_terms)), act_r.eq(_or(act_terms))]

        idle = Signal()
        m.d.comb += self.d_ready.eq(idle & self.d_valid & ~self.next_valid)
        with m.FSM() as fsm:
            m.d.comb += idle.eq(fsm.ongoing("IDLE"))
            with m.State("IDLE"):
                with m.If(self.d_ready):
                    m.d.sync += d.eq(self.d)
                    with m.If(self.d.kind == DescKind.SEGMENT):
                        m.next = "PREP"
                    with m.Else():
                        m.d.sync += [self.next_valid.eq(1), self.next_kind.eq(self.d.kind),
                                     self.next_bank.eq(self.d.bank)]
            with m.State("PREP"):
                step_id = Mux(c.ipid_fixed, 0, 1)
                m.d.sync += [
                    outer_len.eq(c.outer_hdr + d.n), inner_len.eq(c.inner_hdr + d.n),
                    outer_id.eq(Mux(d.first, c.outer.ident, outer_id + step_id)),
                    inner_id.eq(Mux(d.first, c.inner.ident, inner_id + step_id)),
                    seq.eq(Mux(d.first, c.seq, seq + prev_n)),
                    prev_n.eq(d.n),
                ]
                fl = c.flags & Mux(d.last, 0xFF, ~(TCP_FIN | TCP_PSH) & 0xFF) \
                    & Mux(d.first, 0xFF, ~TCP_CWR & 0xFF)
                m.d.sync += [flags.eq(fl), flag_word.eq(Cat(fl, c.flag_word[8:])),
                             cr.eq(c), total.eq(c.hl + d.n)]
                m.next = "PREP2"
            with m.State("PREP2"):
                m.d.sync += [udp_len.eq(outer_len - 20), tcp_len.eq(inner_len - 20),
                             stp.eq(1)]
                m.d.sync += [
                    self.next_rem.eq(((total + W - 1) >> lw) - 1),
                    self.next_one.eq(total <= W),
                    self.next_end_mask.eq(Mux(total[:lw] != 0, (1 << total[:lw]) - 1,
                                              (1 << W) - 1)),
                    self.next_ring.eq(Mux(d.n == 0, 0, ((cr.hl[:lw] + d.n - 1) >> lw) + 1)),
                ]
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(stp[last_step]):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # Let the last store land (operand and action are one cycle behind).
                with m.If(Cat(*act_rs) == 0):
                    m.d.sync += [self.next_valid.eq(1), self.next_kind.eq(DescKind.SEGMENT),
                                 self.next_bank.eq(d.bank), self.next_first.eq(d.first),
                                 self.next_last.eq(d.last), self.next_n.eq(d.n)]
                    m.next = "IDLE"

        with m.If(self.next_take):
            m.d.sync += self.next_valid.eq(0)

        ucs = Mux(cr.udp_csum | cr.gre_csum, Mux(udp_csum == 0, 0xFFFF, udp_csum), 0)
        vals = [*be_bytes(outer_len, 2), *be_bytes(outer_id, 2), *be_bytes(outer_csum, 2),
                *be_bytes(udp_len, 2), *be_bytes(ucs, 2),
                *be_bytes(inner_len, 2), *be_bytes(inner_id, 2), *be_bytes(inner_csum, 2),
                *be_bytes(seq, 4), flags, *be_bytes(tcp_csum, 2)]
        assert len(vals) == PATCH_BYTES
        m.d.comb += self.next_vals.eq(Cat(*vals))
        return m
