"""Header parser + classifier against the reference model, under random stalls on both sides.

Each case sends a list of frames through ``HeaderParser`` and checks that every frame comes out
byte-for-byte unchanged, in order, with a record (tuser) equal to ``tunnelnic.model.parse``'s,
that the statistics pulses count exactly, and that the internal error flag stays low.
"""

import random

import cocotb
import pytest
from cocotb.triggers import RisingEdge

from tunnelnic.rtlsim.runner import params, run

HEADER_WINDOW = 256
OPAQUE = 64


def table_profiles(kind="presets"):
    from tunnelnic.presets import preset
    if kind == "presets":
        names = ["gre-key", "gre-cks", "nvgre", "vxlan", "geneve", "private-udp"]
        return [preset(n) for n in names] + [None, None]
    if kind.startswith("flow"):
        # Flow fields of 1..4 bytes on VXLAN-like profiles that differ only in flow length
        # and UDP port (so each packet matches exactly one).
        out = []
        for n in range(1, 5):
            out.append(preset("vxlan", port=4789 + n, flow_off=12, flow_len=n))
        # A profile whose flow field lies outside the capture, and one past short frames.
        out.append(preset("vxlan", port=5000, flow_off=62, flow_len=2))
        out.append(dict(preset("vxlan", port=5001), flow_off=63, flow_len=2))
        out.append(dict(preset("geneve", port=5002), len_off=63, len_bytes=2))
        return out + [None]
    if kind == "innereth":
        # The presets, then VXLAN-like profiles: inner_eth with no room for an Ethernet
        # header (opaque_len 12: never offloadable), and without inner_eth (type unchecked).
        return (table_profiles("presets")[:6]
                + [dict(preset("vxlan", port=INNERETH_SHORT_PORT), opaque_len=12),
                   preset("vxlan", port=INNERETH_OFF_PORT, inner_eth=0)])
    if kind == "check":
        # The presets (Geneve checks its protocol type, VXLAN its I flag), a private-udp
        # profile checking 2 bytes at an odd offset under a partial mask (the field crosses a
        # beat at W=4 and W=8), and a Geneve profile without the check: what fails the first
        # Geneve profile's check falls to it.
        return (table_profiles("presets")[:6]
                + [preset("private-udp", port=CHECK_PORT, check_off=CHECK_OFF,
                          check_value=CHECK_VALUE, check_mask=CHECK_MASK),
                   preset("geneve", check_mask=0, check_value=0)])
    raise ValueError(kind)


#: The "check" table's private-udp profile: port, check offset, value and mask.
CHECK_PORT, CHECK_OFF, CHECK_VALUE, CHECK_MASK = 7001, 13, 0xA503, 0xFF0F
#: Geneve protocol types tried: Ethernet, test_mix_long[8]'s bit flip, IPv4, IPv6, MPLS, 0.
GENEVE_PROTOS = (0x6558, 0x6158, 0x0800, 0x86DD, 0x8847, 0x0000, 0x6559, 0xE558)


def check_frames(rng):
    """Frames for the "check" table, each with the (kind, profile) it must get, known from
    how it was built (not from the model): ``[(frame, (kind, profile) or None)]``."""
    from hw.layouts import Kind
    from tunnelnic.packets import build_packet
    out = []

    def opq(vlans):
        return 14 + 4 * vlans + 20

    def payload():
        return bytes(rng.randrange(256) for _ in range(rng.choice((0, 9, 300))))

    for vlans in (0, 1, 2):
        for proto in GENEVE_PROTOS:
            words = rng.randrange(16)
            frame = corrupt2(build_packet("geneve", vlans=vlans, geneve_options=words,
                                          flow=rng.randrange(1 << 24), payload=payload()),
                             opq(vlans) + 10, proto)
            out.append((frame, (Kind.TUNNEL, 4 if proto == 0x6558 else 7)))
        for flags in (0x08, 0x00, 0x0C, 0xF7, 0xFF, 0x80):
            frame = build_packet("vxlan", vlans=vlans, flow=rng.randrange(1 << 24),
                                 payload=payload())
            frame = corrupt(frame, opq(vlans) + 8, flags)
            out.append((frame, (Kind.TUNNEL, 3) if flags & 0x08 else (Kind.OTHER, 0)))
        for hdr5, ok in ((0xA5, True), (0xA4, False), (0x25, False)):
            for hdr6 in (0x03, 0x53, 0xF3, 0x02, 0x13):
                header = bytes([1, 2, 3, 4, 5, hdr5, hdr6, 8, 9, 10, 11, 12])
                frame = build_packet("private-udp", port=CHECK_PORT, vlans=vlans,
                                     private_header=header, payload=payload())
                hit = ok and hdr6 & 0x0F == 0x03
                out.append((frame, (Kind.TUNNEL, 6) if hit else (Kind.OTHER, 0)))
    # Cut around the check fields: the profile matches only once its 2 bytes are in the frame
    # (the model says the rest: truncated either way).
    for encap, off, kw in (("geneve", 10, {}), ("vxlan", 8, {}),
                           ("private-udp", CHECK_OFF,
                            {"port": CHECK_PORT,
                             "private_header": bytes([0, 0, 0, 0, 0, 0xA5, 3, 0, 0, 0, 0, 0])})):
        full = build_packet(encap, payload=b"c" * 40, min_size=0, **kw)
        end = opq(0) + off + 2
        for cut in range(end - 3, end + 2):
            out.append((full[:cut], None))
    return out


def corrupt2(frame, index, value):
    """``frame`` with the big-endian 2 bytes ``value`` at ``index``."""
    b = bytearray(frame)
    b[index:index + 2] = value.to_bytes(2, "big")
    return bytes(b)


#: UDP ports of the "innereth" table's two extra VXLAN-like profiles.
INNERETH_SHORT_PORT, INNERETH_OFF_PORT = 5004, 5005
#: Inner EtherTypes tried: IPv4, then IPv6, a VLAN tag, 802.1X (the bit flip that found the
#: bug: 0x0800 ^ 0x8000), ARP, zero, and types one bit from 0x0800.
INNER_ETHERTYPES = (0x0800, 0x86DD, 0x8100, 0x8800, 0x0806, 0x0000, 0x0801, 0x0900, 0x1800)


def innereth_frames(rng):
    """Frames whose inner Ethernet type varies, each with the reason a NIC must report,
    known from how it was built (not from the model): ``[(frame, reason or None)]``
    (None: not checked beyond the model)."""
    from hw.layouts import Reason
    from tunnelnic.packets import build_packet
    out = []

    def et_offset(encap, vlans, words):
        # Outer header without options: opaque at l3 + 20; the type ends the opaque region.
        n = {"nvgre": 22, "vxlan": 30, "geneve": 30 + 4 * words}[encap]
        return 14 + 4 * vlans + 20 + n - 2

    for encap in ("nvgre", "vxlan", "geneve"):
        for et in INNER_ETHERTYPES:
            for vlans in (0, 1, 2):
                # Geneve: options up to 15 words put the type past the 64-byte capture.
                words = rng.randrange(16) if encap == "geneve" else 0
                frame = build_packet(encap, inner_ethertype=et, vlans=vlans,
                                     geneve_options=words, flow=rng.randrange(1 << 24),
                                     payload=bytes(rng.randrange(256)
                                                   for _ in range(rng.choice((0, 7, 200)))),
                                     udp_csum=bool(rng.randrange(2)))
                out.append((frame, Reason.NONE if et == 0x0800 else Reason.INNER_ETHERTYPE))
        # Every Geneve option length 0..15 at one VLAN count (every lane phase at W <= 16).
        for words in range(16):
            et = INNER_ETHERTYPES[words % len(INNER_ETHERTYPES)]
            frame = build_packet("geneve", inner_ethertype=et, geneve_options=words)
            out.append((frame, Reason.NONE if et == 0x0800 else Reason.INNER_ETHERTYPE))
        # A real inner IPv6 packet stays IPV6 (a higher-priority reason).
        out.append((build_packet(encap, inner_ipv6=True), Reason.IPV6))
        # Cut around the type: before it ends the packet is truncated (its bytes are not
        # there); once it is there, a wrong type is reported however short the rest is.
        for et in (0x0800, 0x8800):
            words = 3 if encap == "geneve" else 0
            full = build_packet(encap, inner_ethertype=et, geneve_options=words,
                                payload=b"t" * 30, min_size=0)
            end = et_offset(encap, 0, words) + 2
            for cut in range(end - 3, end + 3):
                reason = (Reason.TRUNCATED if cut < end or et == 0x0800
                          else Reason.INNER_ETHERTYPE)
                out.append((full[:cut], reason))
    # The two extra profiles: no room for the header (always refused), type unchecked.
    for et in (0x0800, 0x8800):
        out.append((build_packet("vxlan", port=INNERETH_SHORT_PORT, inner_ethertype=et),
                    Reason.INNER_ETHERTYPE))
        out.append((build_packet("vxlan", port=INNERETH_OFF_PORT, inner_ethertype=et),
                    Reason.NONE))
    # GRE with key carries IPv4 itself (no inner Ethernet): the type check does not apply.
    out.append((build_packet("gre-key"), Reason.NONE))
    return out


def pack_table(profiles):
    from hw.profile import Profile
    from amaranth.lib import data
    layout = data.ArrayLayout(Profile, len(profiles))
    return layout.const([p or {} for p in profiles]).as_bits()


def corrupt(frame, index, value):
    b = bytearray(frame)
    b[index] = value
    return bytes(b)


def case_frames(case, rng):
    """The frames of a named case (built with scapy through tunnelnic.packets)."""
    from tunnelnic.packets import ENCAPS, build_packet, fix_ipv4_checksum
    frames = []
    if case == "presets":
        for encap in ENCAPS + ("vxlan",):
            for vlans in (0, 1, 2):
                for size in (0, 1, 100, 1400):
                    frames.append(build_packet(encap, payload=bytes(rng.randrange(256)
                                                                    for _ in range(size)),
                                               vlans=vlans, flow=rng.randrange(1 << 16),
                                               seq=rng.randrange(1 << 32),
                                               udp_csum=bool(size & 1)))
        for words in range(0, 9):
            frames.append(build_packet("geneve", payload=b"x" * 30, geneve_options=words,
                                       flow=words))
        # Options, fragments, IPv6, non-TCP, a format value one bit off.
        frames.append(build_packet("plain", inner_options=b"\x01" * 4))
        frames.append(build_packet("vxlan", outer_options=b"\x01" * 8))
        frames.append(build_packet("gre-key", inner_options=b"\x01" * 40))
        frames.append(build_packet("plain", inner_mf=True))
        frames.append(build_packet("nvgre", outer_frag=3))
        frames.append(build_packet("plain", inner_ipv6=True))
        frames.append(build_packet("vxlan", inner_ipv6=True))
        frames.append(build_packet("vxlan", outer_ipv6=True))
        frames.append(build_packet("gre-key", inner_proto=17))
        frames.append(build_packet("vxlan", port=4789 ^ 0x100))
        frames.append(build_packet("gre-key", tcp_options=[("MSS", 1460), ("NOP", None),
                                                           ("WScale", 7)]))
        return frames
    if case == "errors":
        base = {e: build_packet(e, payload=b"p" * 40, vlans=rng.choice((0, 1)))
                for e in ("plain", "vxlan", "gre-key")}
        for encap, frame in base.items():
            # Truncated at every byte of the headers (and a little beyond).
            for cut in range(1, min(len(frame), 140)):
                frames.append(frame[:cut])
        f = base["vxlan"]
        l3 = 14 + 4 * (f[12:14] == b"\x81\x00")
        frames.append(corrupt(f, l3, 0x44))                    # outer IHL 4
        frames.append(corrupt(f, l3 + 10, f[l3 + 10] ^ 1))     # outer checksum
        frames.append(corrupt(f, l3, 0x65))                    # version 6, IHL 5
        g = base["gre-key"]
        l3g = 14 + 4 * (g[12:14] == b"\x81\x00")
        frames.append(corrupt(g, l3g + 28, 0x43))             # inner IHL 3
        frames.append(corrupt(g, l3g + 28 + 10, g[l3g + 38] ^ 0x80))  # inner checksum
        frames.append(corrupt(g, l3g + 28 + 20 + 12, 0x40))   # TCP data offset 4
        frames.append(corrupt(g, l3g + 2, 0x00))               # outer total length small
        frames.append(fix_ipv4_checksum(corrupt(g, l3g + 3, 0x10), l3g))
        frames.append(bytes(rng.randrange(256) for _ in range(200)))
        frames.append(b"\xff" * 12 + b"\x81\x00" * 6 + b"\x08\x00" + b"\x45" * 60)
        return frames
    if case == "flow":
        for n in range(1, 5):
            frames.append(build_packet("vxlan", port=4789 + n, flow=0x123456, payload=b"a" * 9))
        frames.append(build_packet("vxlan", port=5000, flow=1))
        frames.append(build_packet("vxlan", port=5001, flow=1, payload=b"z" * 20))
        frames.append(build_packet("vxlan", port=5001, flow=1)[:60])
        frames.append(build_packet("vxlan", port=5002, flow=1))
        return frames
    if case == "random":
        for _ in range(120):
            encap = rng.choice(ENCAPS)
            frame = build_packet(encap, payload=bytes(rng.randrange(256)
                                                      for _ in range(rng.choice((0, 6, 300)))),
                                 vlans=rng.choice((0, 0, 1, 2)), flow=rng.randrange(1 << 24),
                                 geneve_options=rng.randrange(9),
                                 outer_options=rng.choice((b"", b"", b"\x01" * 4)))
            r = rng.random()
            if r < 0.15:
                frame = frame[:rng.randrange(1, len(frame) + 1)]
            elif r < 0.3:
                frame = corrupt(frame, rng.randrange(len(frame)), rng.randrange(256))
            frames.append(frame)
        return frames
    if case == "innereth":
        return [f for f, _ in innereth_frames(rng)]
    if case == "check":
        return [f for f, _ in check_frames(rng)]
    if case == "min60":
        return [build_packet("plain", payload=b"", min_size=60)[:60] for _ in range(64)]
    raise ValueError(case)


@cocotb.test()
async def run_case(dut):
    from tunnelnic.model.parse import parse
    from tunnelnic.model.record import decode_record, diff_records
    from tunnelnic.rtlsim.bench import StreamBench, frame_bytes, frame_meta
    p = params()
    rng = random.Random(p["seed"])
    profiles = table_profiles(p["table"])
    dut.table.value = pack_table(profiles)
    tb = StreamBench(dut, seed=p["seed"], stalls=p["stalls"])
    await tb.reset()
    if p["case"] == "innereth":
        # The frames and the reason each must get, independently of the model.
        checked = innereth_frames(random.Random(p["seed"]))
        frames = [f for f, _ in checked]
        reasons = [r for _, r in checked]
    elif p["case"] == "check":
        checked = check_frames(random.Random(p["seed"]))
        frames = [f for f, _ in checked]
        reasons = [None] * len(frames)
    else:
        frames = case_frames(p["case"], rng)
        reasons = [None] * len(frames)
    stats = {"packets": 0, "other": 0}
    cycles = {"n": 0, "out_beats": 0}

    async def count_stats():
        while True:
            await RisingEdge(dut.clk)
            cycles["n"] += 1
            raw = int(dut.stats.value)
            stats["packets"] += raw & 1
            stats["other"] += (raw >> 3) & 1
            if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value):
                cycles["out_beats"] += 1

    cocotb.start_soon(count_stats())
    for frame in frames:
        await tb.send(frame)
    expected_other = 0
    first_cycle = None
    for n, frame in enumerate(frames):
        out = await tb.recv(timeout_cycles=50000)
        if first_cycle is None:
            first_cycle = cycles["n"]
        assert frame_bytes(out) == frame, f"frame {n}: bytes changed"
        want = parse(frame, profiles, header_window=HEADER_WINDOW, opaque_bytes=OPAQUE)
        got = decode_record(frame_meta(out), OPAQUE)
        diffs = diff_records(want, got)
        assert not diffs, (f"frame {n} ({frame[:64].hex()}...), error flag "
                           f"{dut.error.value}: " + "; ".join(diffs[:12]))
        if reasons[n] is not None:
            assert got["cls"]["reason"] == reasons[n].value, (
                f"frame {n} ({frame[:64].hex()}...): reason {got['cls']['reason']}, "
                f"want {reasons[n]!r}")
        if p["case"] == "check" and checked[n][1] is not None:
            kind, profile = checked[n][1]
            assert (got["cls"]["kind"], got["cls"]["profile"]) == (kind.value, profile), (
                f"frame {n} ({frame[:64].hex()}...): kind {got['cls']['kind']} profile "
                f"{got['cls']['profile']}, want {kind!r} profile {profile}")
        expected_other += want["cls"]["kind"] == 0
    await tb.cycles(10)
    assert stats["packets"] == len(frames)
    assert stats["other"] == expected_other
    assert int(dut.error.value) == 0, "internal decision timing error"
    if not p["stalls"]:
        # Line rate: every beat of every frame leaves in consecutive cycles once started.
        beats = sum(-(-max(len(f), 1) // p["width"]) for f in frames)
        span = cycles["n"] - first_cycle
        assert span <= beats + 12, f"{beats} beats took {span} cycles: bubbles"


def make_dut(width, queue_ram="distributed"):
    from hw.parser import HeaderParser
    return HeaderParser(width, header_window=HEADER_WINDOW, opaque_bytes=OPAQUE,
                        queue_ram=queue_ram)


CASES = [("presets", "presets", True), ("errors", "presets", True), ("flow", "flow", True),
         ("random", "presets", True), ("min60", "presets", False),
         ("innereth", "innereth", True), ("check", "check", True)]


@pytest.mark.parametrize("case,table,stalls", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("width", [8, 4])
def test_parser(width, case, table, stalls):
    run(lambda: make_dut(width), {"width": width, "case": case, "table": table,
                                  "stalls": stalls, "seed": 7 + width},
        "sim.test_parser", name="parser", build_params={"width": width})


@pytest.mark.parametrize("case,table,stalls", [c for c in CASES if c[0] in ("random", "min60")],
                         ids=["random", "min60"])
def test_parser_block_ram(case, table, stalls):
    """The boards' parser (decision queue and line in block RAM, hw.core at <= 80 MHz): the
    same results, and line rate from 60 bytes up."""
    run(lambda: make_dut(4, "block"), {"width": 4, "case": case, "table": table,
                                       "stalls": stalls, "seed": 11},
        "sim.test_parser", name="parser-bram", build_params={"width": 4, "ram": "block"})
