"""TSO engine under random stalls: byte-exact agreement with the reference model, every segment
checked by scapy independently of the model, pass-throughs and counters exact.

Each cocotb test sends a list of *cases* (frame, profile table, request) built by
:func:`cases_for` from the test's parameter set, back to back, and compares the whole output
stream with the model's, frame by frame, then the counters.
"""

import os
import random

import cocotb
import pytest
from cocotb.triggers import RisingEdge

from tunnelnic.rtlsim.runner import params, run

SEED = 3
#: TCP flags of the superframes: FIN and PSH (last segment only), CWR (first only), and the
#: ones copied (ACK, ECE, SYN).
FLAG_SETS = ["A", "PA", "FPA", "CA", "FPACE", "SA"]


def make_dut(width, ring_bytes=16384):
    from hw.tso import TsoEngine
    return TsoEngine(width, ring_bytes=ring_bytes)


# ---- Cases --------------------------------------------------------------------------------

def cases_for(kind, width):
    """[(name, frame, profiles, request dict)] for test set ``kind``."""
    from tests.test_model_tso import make_frame, profiles_for
    from tunnelnic.packets import build_packet
    from tunnelnic.presets import preset
    rng = random.Random(f"{kind}-{width}")

    def payload(n):
        return bytes(rng.randrange(256) for _ in range(n))

    out = []
    if kind == "encaps":
        # Every encapsulation, payload lengths around the MSS, odd MSS values, flags.
        for i, name in enumerate(["plain", "gre-key", "gre-cks", "nvgre", "vxlan",
                                  "vxlan-csum", "geneve", "private-udp"]):
            mss = [1448, 1460, 999, 537, 1001, 1447, 733, 1203][i]
            for j, plen in enumerate([0, 1, mss - 1, mss, mss + 1, 2 * mss] if i < 2 else
                                     [rng.choice([1, mss - 1, mss + 1]),
                                      2 * mss + rng.randrange(mss)]):
                # Every flag combination on plain and GRE; DF set and clear on both headers.
                flags = FLAG_SETS[(j + i) % len(FLAG_SETS)] if i < 2 else rng.choice(FLAG_SETS)
                frame = make_frame(name, payload(plen), flags=flags,
                                   seq=rng.randrange(1 << 32), vlans=rng.choice([0, 0, 1, 2]),
                                   outer_df=bool(j % 2), inner_df=bool((j + i) // 2 % 2))
                out.append((name, frame, profiles_for(name), dict(tso=1, mss=mss)))
        # Fixed IP IDs, default MSS from the register (request mss = 0).
        out.append(("vxlan", make_frame("vxlan", payload(4000)),
                    [preset("vxlan", ipid_fixed=1)], dict(tso=1, mss=0)))
    elif kind == "small_mss":
        for mss in (1, 2, 3, 7, 13):
            name = rng.choice(["plain", "vxlan-csum", "gre-key"])
            out.append((name, make_frame(name, payload(rng.randrange(20, 60)), flags="FPA"),
                        profiles_for(name), dict(tso=1, mss=mss)))
    elif kind == "refusals":
        name = "plain"
        base = dict(tso=1, mss=500)
        out.append(("plain", make_frame("plain", payload(1200)), [], dict(tso=0, mss=500)))
        out.append(("plain", make_frame("plain", payload(900)), [], base))     # segmented
        out.append(("plain", make_frame("plain", payload(300)), [], dict(tso=1, mss=9200)))
        out.append(("plain", build_packet("plain", payload=payload(100), inner_mf=True), [],
                    base))
        out.append(("plain", build_packet("plain", payload=payload(100),
                                          inner_options=b"\x01\x01\x01\x00"), [], base))
        out.append(("vxlan", build_packet("vxlan", payload=payload(100), inner_proto=17),
                    [preset("vxlan")], base))
        out.append(("vxlan", make_frame("vxlan", payload(700)), [preset("vxlan", tso_en=0)],
                    base))
        out.append(("plain", bytes.fromhex("ffffffffffff020000000001080600010800060400010200"
                                           "00000001c0a80101000000000000c0a80102") + bytes(18),
                    [], base))                                                # ARP
        bad = bytearray(make_frame("gre-key", payload(600)) + bytes(4))
        bad[16:18] = (int.from_bytes(bad[16:18], "big") + 4).to_bytes(2, "big")
        from tunnelnic.packets import fix_ipv4_checksum
        out.append(("gre-key", fix_ipv4_checksum(bytes(bad), 14), [preset("gre-key")], base))
        full = make_frame("plain", payload(1500))
        out.append(("plain", full[:54 + 1100], [], base))                     # truncated
        out.append(("vxlan-csum", make_frame("vxlan-csum", payload(1100)),
                    [preset("vxlan-csum")], base))
        out.append(("plain", make_frame("plain", payload(3)), [], base))       # padded
        # Headers beyond the 256-byte header window (Geneve options of 63 words), and IPv6.
        out.append(("geneve", make_frame("geneve", payload(400), geneve_options=63),
                    [preset("geneve")], base))
        out.append(("vxlan", build_packet("vxlan", payload=payload(600), inner_ipv6=True),
                    [preset("vxlan")], base))
    elif kind == "registers":
        # The default-MSS register at 0 (a request with mss 0 is refused as MSS_ZERO, one with
        # an MSS is segmented), then the engine disabled (everything passes, NO_REQUEST).
        zero = dict(tso=1, mss=0, default_mss=0)
        out.append(("plain", make_frame("plain", payload(1000)), [], zero))
        out.append(("plain", make_frame("plain", payload(1000)), [], dict(zero, mss=300)))
        out.append(("vxlan", make_frame("vxlan", payload(700)), [preset("vxlan")], zero))
        off = dict(tso=1, mss=300, enable=0)
        out.append(("plain", make_frame("plain", payload(1000)), [], off))
        out.append(("gre-key", make_frame("gre-key", payload(500)), [preset("gre-key")], off))
    elif kind == "big":
        # Back-to-back 64 KB superframes with the benchmark MSS values.
        for name, mss in (("plain", 1448), ("vxlan-csum", 9000)):
            hl = 54 if name == "plain" else 104
            frame = make_frame(name, payload(65535 - (hl - 14)))
            out.append((name, frame, profiles_for(name), dict(tso=1, mss=mss)))
    return out


def expected(cases, default_mss=1448):
    from tunnelnic.model.parse import parse
    from tunnelnic.model.tso import tso_record
    exp, counts = [], {"superframes": 0, "segments": 0, "passed": 0, "truncated": 0,
                       "bytes_out": 0}
    from hw.tso_defs import TsoReason
    for name, frame, profiles, req in cases:
        rec = parse(frame, profiles)
        frames, reason = tso_record(frame, rec, tso=req["tso"], mss=req["mss"],
                                    default_mss=req.get("default_mss", default_mss),
                                    enable=bool(req.get("enable", 1)))
        exp.append((name, frame, rec, req, frames, reason))
        if reason in (None, TsoReason.TRUNCATED):
            counts["superframes"] += 1
            counts["segments"] += len(frames)
            counts["truncated"] += reason == TsoReason.TRUNCATED
        else:
            counts["passed"] += 1
            key = "pass_" + reason.name.lower()
            counts[key] = counts.get(key, 0) + 1
        counts["bytes_out"] += sum(len(f) for f in frames)
    return exp, counts


# ---- cocotb side --------------------------------------------------------------------------

def tuser(rec, req):
    from hw.layouts import ParseRecord
    from amaranth.hdl import Shape
    from tunnelnic.model.record import encode_record
    width = Shape.cast(ParseRecord(64)).width
    return encode_record(rec) | ((req["tso"] | (req["mss"] << 1)) << width)


class Stats:
    """Sums the engine's per-cycle ``stats`` increments, field by field."""

    def __init__(self, dut, width):
        from hw.tso_defs import tso_stats_layout
        self.fields = []
        for name, field in tso_stats_layout(width):
            self.fields.append((name, field.offset, field.width))
        self.totals = {name: 0 for name, _, _ in self.fields}
        self.dut = dut
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.dut.clk)
            v = self.dut.stats.value
            if not v.is_resolvable:
                continue
            v = int(v)
            if v:
                for name, off, width in self.fields:
                    self.totals[name] += (v >> off) & ((1 << width) - 1)


def quiet(tb):
    """The bus models log every frame in full at INFO; 64 KB superframes make that most of the
    run time. Keep warnings."""
    import logging
    for model in (*tb.source.values(), *tb.sink.values()):
        model.log.setLevel(logging.WARNING)


@cocotb.test()
async def run_cases(dut):
    from tunnelnic.rtlsim.bench import StreamBench
    p = params()
    width = p["width"]
    tb = StreamBench(dut, seed=p["seed"], stalls=p.get("stalls", True),
                     pause=p.get("pause", 0.2), backpressure=p.get("backpressure", 0.3))
    quiet(tb)
    dut.enable.value = 1
    dut.mss_default.value = 1448
    await tb.reset()
    stats = Stats(dut, width)
    exp, counts = expected(cases_for(os.environ["TSO_KIND"], width))
    # Cases run in groups of equal register settings: set them, send the group, receive it.
    groups = []
    for i, case in enumerate(exp):
        regs = (case[3].get("default_mss", 1448), case[3].get("enable", 1))
        if not groups or groups[-1][0] != regs:
            groups.append((regs, []))
        groups[-1][1].append((i, case))
    for (default_mss, enable), group in groups:
        dut.mss_default.value = default_mss
        dut.enable.value = enable
        await tb.cycles(2)
        for _, (name, frame, rec, req, frames, reason) in group:
            await tb.send(frame, tuser(rec, req))
        await receive(tb, group)
    await tb.cycles(50)
    assert tb.sink["m_axis"].empty(), "unexpected extra output"
    for key, value in counts.items():
        assert stats.totals[key] == value, f"counter {key}: {stats.totals[key]} != {value}"
    for key in stats.totals:
        if key.startswith("pass_") and key not in counts:
            assert stats.totals[key] == 0, f"counter {key}: {stats.totals[key]} != 0"


async def receive(tb, group):
    from tests.test_model_tso import check_segments
    from tunnelnic.rtlsim.bench import frame_bytes
    for i, (name, frame, rec, req, frames, reason) in group:
        for k, want in enumerate(frames):
            got = frame_bytes(await tb.recv(timeout_cycles=200000))
            assert got == want, (f"case {i} ({name}, reason {reason}, {len(frame)} bytes, "
                                 f"req {req}): output {k} of {len(frames)} differs "
                                 f"(got {len(got)} bytes, want {len(want)}); first diff at "
                                 f"{next((x for x in range(min(len(got), len(want))) if got[x] != want[x]), None)}")
        if reason is None:
            mss = req["mss"] or req.get("default_mss", 1448)
            check_segments(frame, frames, name, mss,
                           ipid_fixed=bool(rec["cls"]["ipid_fixed"]))


@pytest.mark.parametrize("width", [8, 4])
@pytest.mark.parametrize("kind", ["encaps", "refusals", "small_mss", "registers"])
def test_tso(kind, width):
    run(lambda: make_dut(width), {"width": width, "seed": SEED}, "sim.test_tso",
        name=f"tso-w{width}", extra_env={"TSO_KIND": kind})


@pytest.mark.parametrize("width", [8, pytest.param(4, marks=pytest.mark.long)])
def test_tso_big(width):
    """The 64 KB maximum: a plain superframe of IPv4 total length 65535 (MSS 1448) and a VXLAN
    one with computed UDP checksum whose outer total length is 65535 (MSS 9000), back to back.
    At W=8 this runs by default, with lighter (still random, both sides) stalls to keep its
    cycle count, about 20k, within the CI budget; W=4 with the full stalls is ``-m long``."""
    p = {"width": width, "seed": SEED}
    if width == 8:
        p.update(pause=0.05, backpressure=0.1)
    run(lambda: make_dut(width), p, "sim.test_tso", name=f"tso-w{width}",
        extra_env={"TSO_KIND": "big"}, build_params={"width": width, "seed": SEED})
