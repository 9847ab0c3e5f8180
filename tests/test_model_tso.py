"""The TSO reference model against scapy: every segment checked independently of the model.

:func:`check_segments` is the model-free oracle, also used by the RTL tests (sim/test_tso.py).
"""

import random

import pytest

from hw.layouts import TCP_ACK, TCP_CWR, TCP_FIN, TCP_PSH
from hw.tso_defs import TsoReason
from tunnelnic.model.tso import tso
from tunnelnic.packets import build_packet, check_checksums, dissect
from tunnelnic.presets import preset

ENCAP_PRESET = {"plain": None, "gre-key": "gre-key", "gre-cks": "gre-cks", "nvgre": "nvgre",
                "vxlan": "vxlan", "vxlan-csum": "vxlan", "geneve": "geneve",
                "private-udp": "private-udp"}


def profiles_for(name):
    """Profile table for test case ``name`` (a preset name, or ``plain``: no profile)."""
    return [] if name == "plain" else [preset(name)]


def encap_of(name):
    return "vxlan" if name == "vxlan-csum" else name


def make_frame(name, payload, **kw):
    kw.setdefault("flags", "A")
    if name == "vxlan-csum":
        kw["udp_csum"] = True
    if name == "geneve":
        kw.setdefault("geneve_options", 2)
    return build_packet(encap_of(name), payload=payload, **kw)


def check_segments(original, segments, name, mss, *, ipid_fixed=False):
    """Independently of the model: lengths and checksums of every segment (scapy), sequence
    numbers consecutive, payloads concatenating to the original's, flags and IP IDs per rule.
    Returns nothing; raises AssertionError with the first problem."""
    encap = encap_of(name)
    d0 = dissect(original, encap)
    payload = d0["payload"]
    assert segments, "no segment"
    want = max(1, -(-len(payload) // mss))
    assert len(segments) == want, f"{len(segments)} segments, expected {want}"
    got = b""
    for k, seg in enumerate(segments):
        problems = check_checksums(seg, encap)
        assert not problems, f"segment {k}: {problems}"
        d = dissect(seg, encap)
        assert seg[:d["l3"]] == original[:d0["l3"]], "Ethernet header changed"
        if encap != "plain":
            assert d["opaque"][8:] == d0["opaque"][8:], "opaque header changed"
        tcp = d["tcp"]
        assert tcp.seq == (d0["tcp"].seq + len(got)) & 0xFFFFFFFF, f"segment {k}: seq"
        flags = int(d0["tcp"].flags)
        if k != len(segments) - 1:
            flags &= ~(TCP_FIN | TCP_PSH)
        if k != 0:
            flags &= ~TCP_CWR
        assert int(tcp.flags) == flags, f"segment {k}: flags {tcp.flags}"
        assert tcp.ack == d0["tcp"].ack and tcp.window == d0["tcp"].window
        assert bytes(tcp.options and seg[d["l4"] + 20:d["payload_off"]]) == \
            bytes(d0["tcp"].options and original[d0["l4"] + 20:d0["payload_off"]])
        step = 0 if ipid_fixed else k
        assert d["inner"].id == (d0["inner"].id + step) & 0xFFFF, f"segment {k}: inner id"
        if encap != "plain":
            assert d["outer"].id == (d0["outer"].id + step) & 0xFFFF, f"segment {k}: outer id"
            assert d["outer"].flags == d0["outer"].flags
        assert d["inner"].flags == d0["inner"].flags
        assert len(d["payload"]) == min(mss, len(payload) - len(got))
        got += d["payload"]
    assert got == payload, "payloads do not concatenate to the original"


NAMES = list(ENCAP_PRESET)


CASES = [(0, 1448), (1, 1448), (1447, 1448), (1448, 1448), (1449, 1448), (3 * 1460, 1460),
         (150, 1), (4000, 999), (20000, 9000)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("plen,mss", CASES + [
    pytest.param(65535 - 200, 1448, marks=pytest.mark.long),
    pytest.param(3000, 7, marks=pytest.mark.long)])
def test_segments_valid(name, plen, mss):
    rng = random.Random(plen * 7 + mss)
    payload = bytes(rng.randrange(256) for _ in range(plen))
    if plen > 60000 and name != "plain":
        payload = payload[:60000]
    frame = make_frame(name, payload, flags="FPAC" if plen % 2 else "PA", seq=0xFFFFF000)
    segs, reason = tso(frame, profiles_for(name), mss=mss)
    assert reason is None
    check_segments(frame, segs, name, mss)


@pytest.mark.parametrize("df", [True, False])
def test_ipid_fixed_and_df(df):
    prof = preset("vxlan", ipid_fixed=1)
    frame = build_packet("vxlan", payload=bytes(3000), outer_df=df, inner_df=df)
    segs, reason = tso(frame, [prof], mss=1000)
    assert reason is None
    check_segments(frame, segs, "vxlan", 1000, ipid_fixed=True)


def test_tcp_options_and_vlans():
    frame = build_packet("geneve", payload=bytes(range(256)) * 10, vlans=2, geneve_options=3,
                         tcp_options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])
    segs, reason = tso(frame, [preset("geneve")], mss=777)
    assert reason is None
    check_segments(frame, segs, "geneve", 777)


def test_refusals():
    frame = build_packet("plain", payload=bytes(2000))
    assert tso(frame, [], tso=False) == ([frame], TsoReason.NO_REQUEST)
    assert tso(frame, [], enable=False) == ([frame], TsoReason.NO_REQUEST)
    assert tso(frame, [], mss=0, default_mss=0) == ([frame], TsoReason.MSS_ZERO)
    assert tso(frame, [], mss=9200) == ([frame], TsoReason.MSS_TOO_LARGE)
    frag = build_packet("plain", payload=bytes(100), inner_mf=True)
    assert tso(frag, [], mss=10) == ([frag], TsoReason.NOT_OFFLOADABLE)
    udp_inner = build_packet("vxlan", payload=bytes(100), inner_proto=17)
    assert tso(udp_inner, [preset("vxlan")], mss=10)[1] == TsoReason.NOT_OFFLOADABLE
    opts = build_packet("plain", payload=bytes(100), inner_options=b"\x01\x01\x01\x00")
    assert tso(opts, [], mss=10)[1] == TsoReason.NOT_OFFLOADABLE
    off = build_packet("vxlan", payload=bytes(100))
    assert tso(off, [preset("vxlan", tso_en=0)], mss=10)[1] == TsoReason.NOT_OFFLOADABLE
    # Outer datagram longer than the inner one (trailing bytes inside the tunnel).
    bad = bytearray(build_packet("gre-key", payload=bytes(100)) + bytes(4))
    bad[16:18] = (int.from_bytes(bad[16:18], "big") + 4).to_bytes(2, "big")
    from tunnelnic.packets import fix_ipv4_checksum
    bad = fix_ipv4_checksum(bytes(bad), 14)
    assert tso(bad, [preset("gre-key")], mss=10) == ([bad], TsoReason.LENGTH)


def test_truncated_beyond_window():
    frame = build_packet("plain", payload=bytes(range(250)) * 20)
    cut = frame[:54 + 2500]
    segs, reason = tso(cut, [], mss=1000)
    assert reason == TsoReason.TRUNCATED
    assert len(segs) == 2
    full, _ = tso(frame, [], mss=1000)
    assert segs == full[:2]


def test_padding_not_sent():
    frame = build_packet("plain", payload=b"x")   # padded to 60 bytes
    segs, reason = tso(frame, [], mss=100)
    assert reason is None and len(segs) == 1 and len(segs[0]) == 55
