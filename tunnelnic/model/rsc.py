"""Reference model of the RSC engine (receive segment coalescing), the executable spec of hw/rsc.py.

Input: frames in arrival order, each with its parse record (:func:`tunnelnic.model.parse`) and
an arrival time in microseconds. Output: what the engine hands the host, in order: aggregates
(several in-order TCP segments of one flow merged into one valid packet) and pass-through
frames (byte-for-byte unchanged), each with its RX metadata; plus the counters.

The rules follow Linux GRO (net/ipv4/tcp_offload.c, af_inet.c, udp_offload.c,
gre_offload.c); every deliberate difference is listed in docs/rsc.md. The model mirrors the
engine's *structure* where that decides the output: contexts live in N numbered slots (the
lowest free slot is taken, the oldest by allocation order is evicted when all are busy), and a
flow is found through a 32-bit tag (:func:`flow_tag`); a packet whose tag names another flow's
context is passed through (the table never holds two contexts with one tag).

Words used below:

*flow packet*   a packet with a usable TCP header (``tcp.present`` and ``off.l4 != 0``): it has
                a flow key, whatever its classification.
*candidate*     a flow packet that may be merged at all (:meth:`RscModel.candidate`).
*mergeable*     a candidate that continues its flow's context (:meth:`RscModel.continues`).
"""

from dataclasses import dataclass, field

from hw.layouts import Kind, TCP_ACK, TCP_PSH
from .parse import ones_sum

__all__ = ["RscConfig", "RscOutput", "RscModel", "rsc", "flow_key", "flow_tag", "key_words",
           "FLUSH_REASONS", "COUNTERS", "packet_csum_ok"]

GRE_PROTO = 47
#: GRE C (checksum) and S (sequence number) flags in the first opaque byte: such packets are
#: never merged (GRO does not merge GRE with S; a GRE checksum would need a fix-up).
GRE_CS_BITS = 0x90

#: Why a context was flushed (each has its own counter ``flush_<reason>``).
FLUSH_REASONS = ("size", "segs", "timeout", "psh", "short", "mismatch", "other", "full",
                 "all", "pool")

#: Every counter the engine keeps (per-cycle increments in hardware).
COUNTERS = ("packets_in", "merged", "aggregates_out", "pass_through", "dropped",
            "collisions") + tuple(f"flush_{r}" for r in FLUSH_REASONS) + ("pool_exhausted",)


@dataclass
class RscConfig:
    """The engine's configuration ports, as numbers."""
    enable: bool = True
    timeout_us: int = 0         #: 0 = no timeout flush
    max_bytes: int = 65535      #: cap on the aggregate's outer IPv4 total length (<= 65535)
    max_segs: int = 64          #: segment-count cap (1..255)
    contexts: int = 32          #: N
    buffer_bytes: int = 2048    #: longest frame the engine stores (longer: dropped, counted)
    opaque_bytes: int = 64      #: the parser's opaque capture

    def __post_init__(self):
        if not 0 < self.max_bytes <= 65535:
            raise ValueError(f"max_bytes must be 1..65535, not {self.max_bytes}")
        if not 1 <= self.max_segs <= 255:
            raise ValueError(f"max_segs must be 1..255, not {self.max_segs}")
        if self.contexts < 1:
            raise ValueError(f"contexts must be at least 1, not {self.contexts}")


@dataclass
class RscOutput:
    """One packet handed to the host, with the engine's RX metadata."""
    frame: bytes
    agg: bool          #: built from several segments (else: the input frame unchanged)
    segs: int          #: segments in it (1 for a pass-through)
    mss: int           #: payload length of the first segment (0 for a non-TCP pass-through)
    ctx: int           #: context slot that held it (0 for a pass-through)
    profile: int
    kind: int          #: the parse record's cls.kind
    csum_ok: bool      #: IPv4 header checksums and TCP (and non-zero UDP) checksum are valid
    key: tuple = None  #: the flow key (None for a packet without one), for per-flow checks


def key_words(key):
    """The flow key as 32-bit words, the form the CAM tag is computed from."""
    tunnel, profile, osrc, odst, isrc, idst, sport, dport, flow = key
    return [(tunnel << 3) | profile, osrc, odst, isrc, idst, (sport << 16) | dport, flow]


def _rotl(x, n):
    n %= 32
    return ((x << n) | (x >> (32 - n))) & 0xFFFF_FFFF if n else x


def flow_tag(key):
    """32-bit tag of a flow key: the words XORed after rotating word ``i`` by ``7*i`` bits.
    hw/rsc_key.py computes the same function in gateware."""
    tag = 0
    for i, w in enumerate(key_words(key)):
        tag ^= _rotl(w, 7 * i)
    return tag


def flow_key(rec):
    """The flow key of a record, or None when the packet has no usable TCP header."""
    if not rec["tcp"]["present"] or rec["off"]["l4"] == 0:
        return None
    tunnel = int(rec["off"]["inner_l3"] != rec["off"]["l3"])
    o, i, t = rec["outer"], rec["inner"], rec["tcp"]
    return (tunnel, rec["cls"]["profile"], o["src"], o["dst"], i["src"], i["dst"],
            t["sport"], t["dport"], rec["cls"]["flow"])


def _be(v, n):
    return v.to_bytes(n, "big")


def _csum(data):
    return (~ones_sum(data)) & 0xFFFF


def _pseudo(src, dst, proto, length):
    return _be(src, 4) + _be(dst, 4) + bytes([0, proto]) + _be(length, 2)


def tcp_csum_ok(frame, rec):
    """The TCP checksum of the segment verifies (over the inner pseudo-header)."""
    i, off = rec["inner"], rec["off"]
    end = off["inner_l3"] + i["total_len"]
    seg = frame[off["l4"]:end]
    return ones_sum(_pseudo(i["src"], i["dst"], 6, len(seg)) + seg) == 0xFFFF


def udp_csum_ok(frame, rec):
    """True when the outer UDP checksum is zero or verifies (only asked for ``cls.udp``)."""
    o, off = rec["outer"], rec["off"]
    udp = frame[off["opaque"]:off["l3"] + o["total_len"]]
    if udp[6:8] == b"\0\0":
        return True
    return ones_sum(_pseudo(o["src"], o["dst"], 17, len(udp)) + udp) == 0xFFFF


def packet_csum_ok(frame, rec):
    """The RX metadata's checksum status of a pass-through: an offloadable TCP packet (kind
    PLAIN or TUNNEL) whose IPv4 header checksums, TCP checksum and (for a UDP profile) non-zero
    UDP checksum all verify."""
    c = rec["cls"]
    if c["kind"] not in (Kind.PLAIN.value, Kind.TUNNEL.value):
        return False
    if not (rec["outer"]["csum_ok"] and rec["inner"]["csum_ok"] and tcp_csum_ok(frame, rec)):
        return False
    return not (c["kind"] == Kind.TUNNEL.value and c["udp"] and not udp_csum_ok(frame, rec))


@dataclass
class _Context:
    key: tuple
    tag: int
    stamp: int          #: allocation order (eviction picks the smallest)
    start_us: int
    first: bytes        #: the first segment's frame
    rec: dict           #: its parse record
    hdr_len: int        #: off.payload: bytes before the payload
    mss: int
    next_seq: int
    count: int = 1
    payload: list = field(default_factory=list)
    ack: int = 0
    window: int = 0
    psh: bool = False
    outer_tl: int = 0   #: outer IPv4 total length of the aggregate so far
    id_mode: str = None  #: None (one segment), "inc" or "fixed"


class RscModel:
    """The RSC engine, one packet at a time. :meth:`push` returns the outputs it causes."""

    def __init__(self, config=None):
        self.config = config or RscConfig()
        self.slots = [None] * self.config.contexts
        self.stamp = 0
        self.counters = dict.fromkeys(COUNTERS, 0)

    # --- classification of one packet ------------------------------------------------------

    def candidate(self, frame, rec):
        """A flow packet that may be merged at all (GRO's per-packet checks)."""
        c, t, off = rec["cls"], rec["tcp"], rec["off"]
        if not self.config.enable or c["kind"] not in (Kind.PLAIN.value, Kind.TUNNEL.value):
            return False
        if not c["rsc_ok"]:                                   # profile RSC off, bad IP csum
            return False
        if len(frame) != off["l3"] + rec["outer"]["total_len"]:  # padding, or short
            return False
        if off["inner_l3"] + rec["inner"]["total_len"] != len(frame):  # bytes after inner
            return False
        if off["inner_l3"] % 2:                               # odd opaque length
            return False
        if len(frame) > self.config.buffer_bytes or rec["payload_len"] == 0:
            return False
        if t["flags"] not in (TCP_ACK, TCP_ACK | TCP_PSH) or t["rsv"] != 0:
            return False
        if c["kind"] == Kind.TUNNEL.value and c["opaque_len"] > self.config.opaque_bytes:
            return False                                      # opaque not fully captured
        if (c["kind"] == Kind.TUNNEL.value and rec["outer"]["proto"] == GRE_PROTO
                and rec["opaque"] & GRE_CS_BITS):
            return False                                      # GRE checksum or sequence
        if not tcp_csum_ok(frame, rec):
            return False
        if c["kind"] == Kind.TUNNEL.value and c["udp"] and not udp_csum_ok(frame, rec):
            return False
        return True

    def continues(self, ctx, frame, rec):
        """A candidate continues context ``ctx`` (same headers, in order, sizes fit)."""
        f, r = ctx.first, ctx.rec
        off = rec["off"]
        if off != r["off"] or rec["cls"]["opaque_len"] != r["cls"]["opaque_len"]:
            return False
        if rec["tcp"]["seq"] != ctx.next_seq or rec["payload_len"] > ctx.mss:
            return False
        if rec["eth"] != r["eth"]:
            return False
        tunnel = ctx.key[0]
        for name in ("outer", "inner") if tunnel else ("inner",):
            a, b = rec[name], r[name]
            if a["ttl"] != b["ttl"] or a["tos"] != b["tos"] or (a["flags"] ^ b["flags"]) & 2:
                return False
        # Opaque header equal to the stored one, apart from UDP length and checksum.
        lo, hi = off["opaque"], off["inner_l3"]
        a, b = bytearray(frame[lo:hi]), bytearray(f[lo:hi])
        if rec["cls"]["udp"]:
            a[4:8] = b[4:8] = b"\0\0\0\0"
        if a != b:
            return False
        # TCP options byte-equal.
        if frame[off["l4"] + 20:off["payload"]] != f[off["l4"] + 20:off["payload"]]:
            return False
        if self.mergeable_id(ctx, rec) is None:
            return False
        return True

    @staticmethod
    def mergeable_id(ctx, rec):
        """IP ID mode after merging ``rec`` ("inc"/"fixed"), or None when IDs do not fit."""
        names = ("outer", "inner") if ctx.key[0] else ("inner",)
        deltas = {(rec[n]["ident"] - ctx.rec[n]["ident"]) & 0xFFFF for n in names}
        if len(deltas) != 1:
            return None
        delta = deltas.pop()
        if ctx.id_mode in (None, "inc") and delta == ctx.count:
            return "inc"
        if ctx.id_mode in (None, "fixed") and delta == 0:
            return "fixed"
        return None

    # --- the engine ------------------------------------------------------------------------

    def push(self, frame, rec, time_us=0):
        """Process one input frame arriving at ``time_us``; returns the list of outputs."""
        frame = bytes(frame)
        out = self.advance(time_us)
        self.counters["packets_in"] += 1
        if len(frame) > self.config.buffer_bytes:
            self.counters["dropped"] += 1
            return out
        key = flow_key(rec)
        if key is None:
            out.append(self._pass(frame, rec, None))
            return out
        tag = flow_tag(key)
        slot = next((s for s, c in enumerate(self.slots) if c is not None and c.tag == tag),
                    None)
        if slot is not None and self.slots[slot].key != key:
            # The tag names another flow's context: this packet cannot have one.
            self.counters["collisions"] += 1
            out.append(self._pass(frame, rec, key))
            return out
        cand = self.candidate(frame, rec)
        if slot is not None:
            ctx = self.slots[slot]
            if not cand:
                out.append(self._flush(slot, "other"))
                out.append(self._pass(frame, rec, key))
                return out
            if self.continues(ctx, frame, rec):
                if ctx.outer_tl + rec["payload_len"] > self.config.max_bytes:
                    out.append(self._flush(slot, "size"))
                else:
                    self._merge(ctx, frame, rec)
                    reason = self._after_merge(ctx, rec)
                    if reason:
                        out.append(self._flush(slot, reason))
                    return out
            else:
                out.append(self._flush(slot, "mismatch"))
        elif not cand:
            out.append(self._pass(frame, rec, key))
            return out
        # A candidate that starts a new aggregate.
        if rec["tcp"]["flags"] & TCP_PSH or self.config.max_segs == 1:
            out.append(self._pass(frame, rec, key))
            return out
        if slot is None:
            free = [s for s, c in enumerate(self.slots) if c is None]
            if free:
                slot = free[0]
            else:
                slot = min(range(len(self.slots)), key=lambda s: self.slots[s].stamp)
                out.append(self._flush(slot, "full"))
        self.slots[slot] = self._open(key, tag, frame, rec, time_us)
        return out

    def _after_merge(self, ctx, rec):
        if rec["tcp"]["flags"] & TCP_PSH:
            return "psh"
        if rec["payload_len"] < ctx.mss:
            return "short"
        if ctx.count >= self.config.max_segs:
            return "segs"
        return None

    def advance(self, time_us):
        """Let time pass: flush every context older than the timeout, in slot order."""
        out = []
        if self.config.timeout_us:
            for s, c in enumerate(self.slots):
                if c is not None and time_us - c.start_us >= self.config.timeout_us:
                    out.append(self._flush(s, "timeout"))
        return out

    def flush_all(self):
        """The explicit flush-all command: every context, in slot order."""
        return [self._flush(s, "all") for s, c in enumerate(self.slots) if c is not None]

    def _open(self, key, tag, frame, rec, time_us):
        self.counters["merged"] += 1
        self.stamp += 1
        return _Context(key=key, tag=tag, stamp=self.stamp, start_us=time_us, first=frame,
                        rec=rec, hdr_len=rec["off"]["payload"], mss=rec["payload_len"],
                        next_seq=(rec["tcp"]["seq"] + rec["payload_len"]) & 0xFFFF_FFFF,
                        payload=[frame[rec["off"]["payload"]:]], ack=rec["tcp"]["ack"],
                        window=rec["tcp"]["window"], psh=False,
                        outer_tl=rec["outer"]["total_len"])

    def _merge(self, ctx, frame, rec):
        self.counters["merged"] += 1
        ctx.id_mode = self.mergeable_id(ctx, rec)
        ctx.count += 1
        ctx.payload.append(frame[rec["off"]["payload"]:])
        ctx.next_seq = (ctx.next_seq + rec["payload_len"]) & 0xFFFF_FFFF
        ctx.ack, ctx.window = rec["tcp"]["ack"], rec["tcp"]["window"]
        ctx.psh |= bool(rec["tcp"]["flags"] & TCP_PSH)
        ctx.outer_tl += rec["payload_len"]

    def _pass(self, frame, rec, key):
        self.counters["pass_through"] += 1
        return RscOutput(frame=frame, agg=False, segs=1,
                         mss=rec["payload_len"] if key is not None else 0, ctx=0,
                         profile=rec["cls"]["profile"], kind=rec["cls"]["kind"],
                         csum_ok=packet_csum_ok(frame, rec), key=key)

    def _flush(self, slot, reason):
        ctx = self.slots[slot]
        self.slots[slot] = None
        self.counters[f"flush_{reason}"] += 1
        self.counters["aggregates_out"] += 1
        return RscOutput(frame=self.build(ctx), agg=ctx.count > 1, segs=ctx.count,
                         mss=ctx.mss, ctx=slot, profile=ctx.rec["cls"]["profile"],
                         kind=ctx.rec["cls"]["kind"], csum_ok=True, key=ctx.key)

    @staticmethod
    def build(ctx):
        """The aggregate's frame: first headers with fixed-up lengths and checksums."""
        if ctx.count == 1:
            return ctx.first
        rec, off = ctx.rec, ctx.rec["off"]
        payload = b"".join(ctx.payload)
        f = bytearray(ctx.first[:ctx.hdr_len]) + payload
        grow = len(payload) - rec["payload_len"]

        def put16(pos, v):
            f[pos:pos + 2] = _be(v & 0xFFFF, 2)

        il3, l4 = off["inner_l3"], off["l4"]
        inner_tl = rec["inner"]["total_len"] + grow
        # TCP: ack and window from the latest segment, PSH if any had it, checksum.
        f[l4 + 8:l4 + 12] = _be(ctx.ack, 4)
        if ctx.psh:
            f[l4 + 13] |= TCP_PSH
        put16(l4 + 14, ctx.window)
        put16(l4 + 16, 0)
        seg = bytes(f[l4:il3 + inner_tl])
        i = rec["inner"]
        put16(l4 + 16, _csum(_pseudo(i["src"], i["dst"], 6, len(seg)) + seg))
        # Inner IPv4 (for plain TCP the only one).
        put16(il3 + 2, inner_tl)
        put16(il3 + 10, 0)
        put16(il3 + 10, _csum(bytes(f[il3:il3 + 20])))
        if il3 != off["l3"]:
            l3, o = off["l3"], rec["outer"]
            put16(l3 + 2, o["total_len"] + grow)
            put16(l3 + 10, 0)
            put16(l3 + 10, _csum(bytes(f[l3:l3 + 20])))
            if rec["cls"]["udp"]:
                u = off["opaque"]
                udp_len = len(f) - u
                put16(u + 4, udp_len)
                put16(u + 6, 0)
                if rec["cls"]["udp_csum"]:
                    s = _csum(_pseudo(o["src"], o["dst"], 17, udp_len) + bytes(f[u:]))
                    put16(u + 6, s or 0xFFFF)
        return bytes(f)


def rsc(inputs, config=None, *, flush_at_end=True):
    """Run the model over ``inputs`` = [(frame, record, time_us), ...].

    Returns ``(outputs, counters)``; with ``flush_at_end`` a flush-all follows the last input
    (what a test does with the engine's flush strobe).
    """
    model = RscModel(config)
    out = []
    for frame, rec, t in inputs:
        out += model.push(frame, rec, t)
    if flush_at_end:
        out += model.flush_all()
    return out, model.counters
