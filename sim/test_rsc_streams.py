"""Segment streams for the RSC tests (model and RTL): the GRO-selftest-style matrix.

Not a test module by itself (no test functions); sim/test_rsc.py and tests/test_model_rsc.py
import it. Every case is a function ``case(encap) -> (inputs, expected)`` where ``inputs`` is
a list of frames (time 0) or of (frame, time_us) pairs (a frame of ``None``: nothing arrives,
time passes) and ``expected`` the segment counts of the outputs in order (after the final
flush-all); the expectations are written by hand from the rules of the issue and GRO,
independently of the model. Engine settings per case: :func:`case_config`; contexts:
:data:`TABLE`.
"""

from tunnelnic.packets import build_packet
from tunnelnic.presets import preset

__all__ = ["PRESET_ENCAP", "profiles_for", "Flow", "MATRIX", "TUNNEL_MATRIX", "TABLE",
           "plain_or", "random_mix", "case_config"]

#: preset name -> (packet builder encapsulation, extra builder arguments)
PRESET_ENCAP = {
    "plain": ("plain", {}),
    "gre-key": ("gre-key", {}),
    "gre-cks": ("gre-cks", {}),
    "nvgre": ("nvgre", {}),
    "vxlan": ("vxlan", {}),
    "vxlan-csum": ("vxlan", {"udp_csum": True}),
    "geneve": ("geneve", {"geneve_options": 2}),
    "private-udp": ("private-udp", {}),
}

MSS = 200

#: Flow contexts of the engine under test (sim/test_rsc.py) and of the model in the matrix
#: tests: the "N flows" and "N + 1 flows" cases use it.
TABLE = 8


def profiles_for(name):
    """The profile table for a preset name ("plain": an empty table)."""
    return [] if name == "plain" else [preset(name)]


def plain_or(name, plain, tunnel):
    return plain if name == "plain" else tunnel


class Flow:
    """One TCP flow of preset ``name``: :meth:`seg` builds its next segment."""

    def __init__(self, name, *, sport=40000, flow=7, seq=1000, ident=0x100, **kw):
        encap, extra = PRESET_ENCAP[name]
        self.name, self.encap = name, encap
        self.kw = dict(extra, sport=sport, flow=flow, **kw)
        self.seq, self.ident, self.count = seq, ident, 0

    def seg(self, length=MSS, *, flags="A", advance=True, id_step=1, seq=None, **kw):
        args = dict(self.kw)
        args.update(kw)
        payload = bytes((self.seq + i * 7 + self.count) & 0xFF for i in range(length))
        frame = build_packet(self.encap, payload=payload,
                             seq=self.seq if seq is None else seq, flags=flags,
                             inner_id=args.pop("inner_id", self.ident),
                             outer_id=args.pop("outer_id", self.ident + 0x5000), **args)
        if advance:
            self.seq = (self.seq + length) & 0xFFFF_FFFF
        self.ident = (self.ident + id_step) & 0xFFFF
        self.count += 1
        return frame


def _corrupt(frame, pos):
    b = bytearray(frame)
    b[pos] ^= 0x5A
    return bytes(b)


def _special(name, flags=None, **kw):
    """2 segments, one special packet, 2 more: [2, 1, 2]."""
    def case(p):
        f = Flow(p)
        frames = [f.seg(), f.seg(), f.seg(flags=flags or "A", **kw), f.seg(), f.seg()]
        return frames, [2, 1, 2]
    case.__name__ = name
    return case


def equal(p):
    f = Flow(p)
    return [f.seg() for _ in range(5)], [5]


def large_small(p):
    f = Flow(p)
    return [f.seg(), f.seg(), f.seg(MSS // 2), f.seg()], [3, 1]


def small_large(p):
    f = Flow(p)
    return [f.seg(MSS // 2), f.seg(), f.seg()], [1, 2]


def psh_middle(p):
    f = Flow(p)
    return [f.seg(), f.seg(flags="PA"), f.seg(), f.seg()], [2, 2]


def bad_tcp_csum(p):
    f = Flow(p)
    frames = [f.seg(), f.seg(), f.seg(), f.seg(), f.seg()]
    frames[2] = _corrupt(frames[2], len(frames[2]) - 1)   # a payload byte
    return frames, [2, 1, 2]


def bad_inner_ip_csum(p):
    f = Flow(p)
    frames = [f.seg(), f.seg(), f.seg(), f.seg(), f.seg()]
    b = bytearray(frames[2])
    il3 = len(b) - MSS - 40            # inner IPv4 header (no options here)
    b[il3 + 8] ^= 1                    # TTL: checksum now wrong
    frames[2] = bytes(b)
    return frames, [2, 1, 2]


def bad_outer_ip_csum(p):
    f = Flow(p)
    frames = [f.seg(), f.seg(), f.seg(), f.seg(), f.seg()]
    frames[2] = _corrupt(frames[2], 14 + 10)
    return frames, [2, 1, 2]


def seq_gap(p):
    f = Flow(p)
    frames = [f.seg(), f.seg()]
    f.seq += MSS
    return frames + [f.seg(), f.seg()], [2, 2]


def retransmit(p):
    f = Flow(p)
    a, b = f.seg(), f.seg()
    c = f.seg()
    f.seq -= MSS
    return [a, b, c, f.seg(), f.seg()], [3, 2]


def options_differ(p):
    f = Flow(p, tcp_options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
    frames = [f.seg(), f.seg(),
              f.seg(tcp_options=[("NOP", None), ("NOP", None), ("Timestamp", (2, 2))]),
              f.seg(tcp_options=[("NOP", None), ("NOP", None), ("Timestamp", (2, 2))])]
    return frames, [2, 2]


def _field_differs(name, **kw):
    def case(p):
        f = Flow(p)
        return [f.seg(), f.seg(), f.seg(**kw), f.seg(**kw)], [2, 2]
    case.__name__ = name
    return case


def ipid_fixed(p):
    f = Flow(p)
    return [f.seg(id_step=0) for _ in range(4)], [4]


def ipid_switch(p):
    f = Flow(p)
    frames = [f.seg(), f.seg(), f.seg(id_step=0), f.seg(id_step=0), f.seg()]
    # ids: 0x100, 0x101, 0x102, 0x102, 0x102: the 4th breaks "incrementing" and starts a
    # fixed-ID aggregate with the 5th.
    return frames, [3, 2]


def boundary_exact(p, extra=0):
    """Full-MSS segments then a short one that brings the outer total length to exactly
    65535 (``extra`` = 1: one byte more, which must not fit)."""
    f = Flow(p)
    probe = f.seg(advance=False)
    hdr = len(probe) - MSS - 14          # outer IP total length minus payload
    mss = 1400
    room = 65535 - hdr
    n = room // mss
    rest = room - n * mss + extra
    if rest >= mss:                      # keep the last one short
        n, rest = n - 1, rest + mss
    f = Flow(p)
    frames = [f.seg(mss) for _ in range(n)] + [f.seg(rest)]
    return frames, ([n + 1] if not extra else [n, 1])


def boundary_over(p):
    return boundary_exact(p, extra=1)


def interleaved(p, flows=4, segs=3):
    fl = [Flow(p, sport=41000 + i, flow=100 + i) for i in range(flows)]
    frames = [f.seg() for _ in range(segs) for f in fl]
    return frames, [segs] * flows


def tenant_isolation(p):
    # Same inner 5-tuple, different flow field (plain TCP: different outer/inner address).
    a = Flow(p, flow=1)
    b = Flow(p, flow=2) if p != "plain" else Flow(p, inner_src="192.168.1.9")
    frames = [x.seg() for _ in range(3) for x in (a, b)]
    return frames, [3, 3]


def flows_n(p, segs=3):
    """As many flows as contexts, interleaved: each keeps its context."""
    fl = [Flow(p, sport=42000 + i, flow=200 + i) for i in range(TABLE)]
    return [f.seg() for _ in range(segs) for f in fl], [segs] * TABLE


def flows_n_plus_1(p, segs=3):
    """One flow more than contexts, round robin: every segment evicts the oldest context
    (the next flow's), so every segment leaves alone."""
    fl = [Flow(p, sport=43000 + i, flow=300 + i) for i in range(TABLE + 1)]
    frames = [f.seg() for _ in range(segs) for f in fl]
    return frames, [1] * len(frames)


def timeout(p):
    f = Flow(p)
    # timeout 100 us: two segments, a pause, two more.
    frames = [(f.seg(), 0), (f.seg(), 10), (f.seg(), 500), (f.seg(), 510)]
    return frames, [2, 2]


def timeout_idle(p):
    """Timeout with the clock running and no traffic at all afterwards: the aggregate leaves
    by the timer alone (``(None, t)``: no frame, time passes until ``t``)."""
    f = Flow(p)
    return [(f.seg(), 0), (f.seg(), 10), (None, 400)], [2]


MATRIX = {c.__name__: c for c in [
    equal, large_small, small_large, psh_middle,
    _special("syn", flags="S"), _special("rst", flags="RA"), _special("urg", flags="UA"),
    _special("fin", flags="FA"), _special("cwr", flags="CA"),
    bad_tcp_csum, bad_inner_ip_csum, bad_outer_ip_csum, seq_gap, retransmit, options_differ,
    _field_differs("ttl_differs", inner_ttl=9), _field_differs("tos_differs", inner_tos=4),
    _field_differs("ecn_differs", inner_tos=1), _field_differs("df_differs", inner_df=False),
    _special("ip_options", inner_options=b"\x01\x01\x01\x00"),
    _special("fragment", inner_mf=True),
    ipid_fixed, ipid_switch, boundary_exact, boundary_over, interleaved, flows_n,
    flows_n_plus_1, tenant_isolation, timeout, timeout_idle,
]}

def opaque_differs(p):
    """Same flow key, an opaque byte outside the key differs (the outer UDP source port, or
    NVGRE's inner Ethernet source): never merged across the difference."""
    kw = {"nvgre": {"inner_eth_src": "02:00:00:00:01:09"}, "gre-key": None,
          "gre-cks": None}.get(p, {"udp_sport": 50001})
    f = Flow(p)
    if kw is None:          # an opaque header of format and flow fields only
        return [f.seg() for _ in range(4)], [4]
    return [f.seg(), f.seg(), f.seg(**kw), f.seg(**kw)], [2, 2]


#: Cases that only make sense with a tunnel (outer header fields, the opaque header).
TUNNEL_MATRIX = {c.__name__: c for c in [
    _field_differs("outer_ttl_differs", outer_ttl=9),
    _field_differs("outer_tos_differs", outer_tos=4),
    _field_differs("outer_df_differs", outer_df=False),
    _special("outer_options", outer_options=b"\x01\x01\x01\x00"),
    opaque_differs,
]}


def case_config(case):
    """Engine settings a matrix case needs (besides the defaults)."""
    return {"timeout_us": 100} if case.startswith("timeout") else {}


def random_mix(name, rng, count, flows=6):
    """``count`` frames: several flows of preset ``name`` (full and short segments, PSH, SYN/
    FIN/RST, retransmissions, corrupted bytes) mixed with garbage and oversize frames."""
    fl = [Flow(name, sport=2000 + i, flow=i) for i in range(flows)]
    frames = []
    for _ in range(count):
        f = rng.choice(fl)
        r = rng.random()
        if r < 0.04:
            frames.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 120))))
        elif r < 0.05:
            frames.append(bytes(rng.randrange(256) for _ in range(rng.randint(2049, 2100))))
        elif r < 0.10:
            frames.append(f.seg(rng.randint(1, MSS), flags="PA"))
        elif r < 0.14:
            frames.append(f.seg(MSS, flags=rng.choice(["S", "FA", "RA", "A"]),
                                seq=f.seq - MSS, advance=False))
        elif r < 0.18:
            b = bytearray(f.seg(MSS))
            b[rng.randrange(14, len(b))] ^= 1 << rng.randrange(8)
            frames.append(bytes(b))
        else:
            frames.append(f.seg(rng.choice([MSS, MSS, MSS, 50])))
    return frames
