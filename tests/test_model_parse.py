"""Targeted cases of the reference model (docs/parse-record.md), one rule at a time."""

import pytest

from hw.layouts import Kind, Reason
from tunnelnic.model import parse
from tunnelnic.packets import ENCAPS, build_packet, dissect, fix_ipv4_checksum
from tunnelnic.presets import PRESETS, preset

TUNNELS = [e for e in ENCAPS if e != "plain"]
ALL = [PRESETS[n] for n in ("gre-key", "gre-cks", "nvgre", "vxlan", "geneve", "private-udp")]
INDEX = {"gre-key": 0, "gre-cks": 1, "nvgre": 2, "vxlan": 3, "geneve": 4, "private-udp": 5}


def reason(rec):
    return Reason(rec["cls"]["reason"])


def kind(rec):
    return Kind(rec["cls"]["kind"])


def edit(frame, offset, value, *, fix=None):
    """``frame`` with bytes ``value`` at ``offset``; ``fix`` = IPv4 header offset to re-checksum."""
    frame = bytearray(frame)
    frame[offset:offset + len(value)] = value
    return fix_ipv4_checksum(bytes(frame), fix) if fix is not None else bytes(frame)


# --- Profiles and classification --------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_matches_own_packets_only(name):
    profiles = [PRESETS[name]]
    own = {"vxlan-csum": "vxlan"}.get(name, name)
    for encap in ENCAPS:
        for kw in ({}, {"vlans": 2, "geneve_options": 3, "payload": b"p" * 33}):
            rec = parse(build_packet(encap, flow=0xABCDEF, **kw), profiles)
            if encap == own:
                assert kind(rec) == Kind.TUNNEL and rec["cls"]["profile"] == 0
                assert (rec["cls"]["tso_ok"], rec["cls"]["rsc_ok"]) == (1, 1)
            elif encap == "plain":
                assert kind(rec) == Kind.PLAIN and rec["cls"]["profile"] == 0
            else:
                # A tunnel that no profile recognises: outer protocol is not TCP.
                assert kind(rec) == Kind.OTHER and reason(rec) == Reason.NOT_TCP
                assert rec["cls"]["flow"] == 0 and rec["cls"]["udp"] == 0


@pytest.mark.parametrize("name", ["gre-key", "gre-cks", "nvgre", "vxlan", "geneve",
                                  "private-udp"])
def test_format_value_one_bit_off(name):
    prof = PRESETS[name]
    frame = build_packet(name, flow=77)
    assert kind(parse(frame, [prof])) == Kind.TUNNEL
    for bit in range(8 * prof["fmt_len"]):
        if not prof["fmt_mask"] >> bit & 1:
            continue
        off = dict(prof, fmt_value=prof["fmt_value"] ^ (1 << bit))
        assert kind(parse(frame, [off])) != Kind.TUNNEL, f"bit {bit}"
        # ... unless that bit is masked out.
        loose = dict(off, fmt_mask=prof["fmt_mask"] & ~(1 << bit))
        assert kind(parse(frame, [loose])) == Kind.TUNNEL, f"bit {bit}"


def test_first_match_wins_and_disabled_profiles_skip():
    frame = build_packet("vxlan", flow=5)
    vx, vxc = PRESETS["vxlan"], PRESETS["vxlan-csum"]
    rec = parse(frame, [None, dict(vx, enable=0), vxc, vx])
    assert rec["cls"]["profile"] == 2 and rec["cls"]["udp_csum"] == 1
    rec = parse(frame, [None, vx, vxc])
    assert rec["cls"]["profile"] == 1 and rec["cls"]["udp_csum"] == 0
    rec = parse(frame, [dict(vx, outer_proto=47), None])
    assert kind(rec) == Kind.OTHER and reason(rec) == Reason.NOT_TCP


def test_profile_flags_copied():
    frame = build_packet("gre-key", flow=9)
    prof = dict(PRESETS["gre-key"], tso_en=0, rsc_en=1, ipid_fixed=1, udp=1, udp_csum=1)
    cls = parse(frame, [prof])["cls"]
    assert (cls["tso_ok"], cls["rsc_ok"], cls["ipid_fixed"], cls["udp"], cls["udp_csum"]) \
        == (0, 1, 1, 1, 1)
    cls = parse(frame, [dict(prof, tso_en=1, rsc_en=0)])["cls"]
    assert (cls["tso_ok"], cls["rsc_ok"]) == (1, 0)


@pytest.mark.parametrize("flow_len", [1, 2, 3, 4])
def test_flow_fields_of_1_to_4_bytes(flow_len):
    key = 0x8899AABB
    frame = build_packet("gre-key", flow=key)
    for flow_off in range(0, 9 - flow_len):
        prof = preset("gre-key", flow_off=flow_off, flow_len=flow_len)
        rec = parse(frame, [prof])
        start = rec["off"]["opaque"] + flow_off
        assert rec["cls"]["flow"] == int.from_bytes(frame[start:start + flow_len], "big")
        assert reason(rec) == Reason.NONE
    assert parse(frame, [preset("gre-key", flow_len=0)])["cls"]["flow"] == 0
    assert parse(frame, [preset("gre-key")])["cls"]["flow"] == key


def test_geneve_variable_length():
    for words in range(0, 9):
        frame = build_packet("geneve", geneve_options=words, payload=b"x" * 10)
        rec = parse(frame, ALL)
        assert rec["cls"]["opaque_len"] == 30 + 4 * words
        assert rec["off"]["inner_l3"] == dissect(frame, "geneve")["inner_l3"]
        assert kind(rec) == Kind.TUNNEL and rec["payload_len"] == 10


def test_length_field_scaling_and_wide_values():
    # A 2-byte length field read from the GRE key: ((v & mask) >> shift) << scale + base.
    frame = build_packet("gre-key", flow=0x00030000, payload=b"z" * 50)
    prof = preset("gre-key", len_mode=1, len_off=4, len_bytes=2, len_mask=0xFFFF,
                  len_shift=0, len_scale=2, opaque_len=8)
    rec = parse(frame, [prof])
    assert rec["cls"]["opaque_len"] == 3 * 4 + 8
    assert rec["off"]["inner_l3"] == 34 + 20
    # A huge length: kept mod 1024 in the record, compared full width (window error).
    prof = dict(prof, len_mask=0xFFFF, len_shift=0, len_scale=3)
    frame = build_packet("gre-key", flow=0xFFFF0000)
    rec = parse(frame, [prof], header_window=64)
    n = (0xFFFF << 3) + 8
    assert rec["cls"]["opaque_len"] == n % 1024
    assert rec["off"]["inner_l3"] == (34 + n) % 1024
    assert reason(rec) == Reason.WINDOW and rec["err"]["window"] and not rec["inner"]["present"]
    # The same frame within the window is simply truncated.
    assert reason(parse(frame, [prof])) == Reason.TRUNCATED


# --- FIELD_OUTSIDE ----------------------------------------------------------------------------

def test_flow_field_outside_capture():
    frame = build_packet("vxlan", flow=1, payload=b"q" * 200)
    rec = parse(frame, [dict(PRESETS["vxlan"], flow_off=62, flow_len=4)])
    assert reason(rec) == Reason.FIELD_OUTSIDE and rec["cls"]["flow"] == 0
    assert not rec["err"]["window"] and not rec["err"]["truncated"]
    assert rec["cls"]["profile"] == 0 and rec["inner"]["present"]   # inner still parsed
    # A smaller capture moves the same flow field (VNI at 12..14) outside.
    assert reason(parse(frame, [PRESETS["vxlan"]], opaque_bytes=15)) == Reason.NONE
    assert reason(parse(frame, [PRESETS["vxlan"]], opaque_bytes=14)) == Reason.FIELD_OUTSIDE


def test_length_field_outside_capture():
    frame = build_packet("geneve", payload=b"q" * 200)
    rec = parse(frame, [dict(PRESETS["geneve"], len_off=63, len_bytes=2)])
    assert reason(rec) == Reason.FIELD_OUTSIDE
    assert rec["cls"]["opaque_len"] == 0 and rec["off"]["inner_l3"] == rec["off"]["opaque"]
    assert not rec["inner"]["present"] and not rec["tcp"]["present"] and rec["off"]["l4"] == 0


def test_field_inside_capture_but_past_frame_end_is_truncated():
    frame = build_packet("gre-key", flow=3)[:34 + 6]   # ends inside the key
    rec = parse(frame, [PRESETS["gre-key"]])
    assert rec["err"]["truncated"] and reason(rec) == Reason.TRUNCATED
    assert rec["cls"]["profile"] == 0 and rec["cls"]["flow"] == 0


def test_out_of_range_register_values():
    frame = build_packet("gre-key", flow=3)
    assert kind(parse(frame, [dict(PRESETS["gre-key"], fmt_len=0)])) == Kind.OTHER
    assert kind(parse(frame, [dict(PRESETS["gre-key"], fmt_len=5)])) == Kind.OTHER
    assert reason(parse(frame, [dict(PRESETS["gre-key"], flow_len=5)])) == Reason.FIELD_OUTSIDE
    geneve = build_packet("geneve")
    for lb in (0, 3):
        rec = parse(geneve, [dict(PRESETS["geneve"], len_bytes=lb)])
        assert reason(rec) == Reason.FIELD_OUTSIDE


# --- Truncation and the header window --------------------------------------------------------

@pytest.mark.parametrize("encap", ENCAPS)
@pytest.mark.parametrize("vlans", [0, 1, 2])
def test_truncated_at_every_byte(encap, vlans):
    full = build_packet(encap, vlans=vlans, flow=0x1234, geneve_options=2, payload=b"d" * 7,
                        tcp_options=[("MSS", 1460)])
    d = dissect(full, encap)
    end = d["payload_off"] + 7
    for n in range(end):
        rec = parse(full[:n], ALL)
        r = reason(rec)
        assert kind(rec) == Kind.OTHER
        l3 = 14 + 4 * vlans
        if n < l3 - 1:
            # The ethertype reads partly as zero: NOT_IP (or a tag/IPv4 by zero-extension).
            assert r in (Reason.NOT_IP, Reason.TRUNCATED), n
        else:
            assert r == Reason.TRUNCATED, n
        if n < d["l4"] + 20:
            assert rec["err"]["truncated"] or rec["err"]["short_frame"]
        assert not rec["err"]["window"]
    rec = parse(full, ALL)
    assert reason(rec) == Reason.NONE


def test_short_frame_inside_payload():
    frame = build_packet("vxlan", payload=b"x" * 100)
    rec = parse(frame[:-1], ALL)
    assert rec["err"]["short_frame"] and not rec["err"]["truncated"]
    assert reason(rec) == Reason.TRUNCATED
    # Beyond the window the frame's end is unknown: no short_frame.
    rec = parse(frame[:-1], ALL, header_window=128)
    assert not rec["err"]["short_frame"] and reason(rec) == Reason.NONE


def test_ethernet_padding_is_fine():
    frame = build_packet("plain")                       # 54 bytes padded to 60
    assert len(frame) == 60
    rec = parse(frame, ALL)
    assert kind(rec) == Kind.PLAIN and rec["payload_len"] == 0


def test_header_window_boundary():
    frame = build_packet("plain", payload=b"x" * 20, tcp_options=[("MSS", 1)])  # ends at 58
    assert reason(parse(frame, [], header_window=58)) == Reason.NONE
    rec = parse(frame, [], header_window=57)
    assert reason(rec) == Reason.WINDOW and rec["err"]["window"] and not rec["err"]["truncated"]
    assert rec["tcp"]["present"] and rec["off"]["payload"] == 58   # TCP's first 20 bytes seen
    rec = parse(frame, [], header_window=53)
    assert reason(rec) == Reason.WINDOW and not rec["tcp"]["present"] and rec["off"]["l4"] == 34
    rec = parse(frame, [], header_window=33)
    assert reason(rec) == Reason.WINDOW and not rec["outer"]["present"]
    # A frame no longer than the window that ends inside its headers is truncated instead.
    assert reason(parse(frame[:57], [], header_window=57)) == Reason.TRUNCATED
    # The tunnel's last header byte at exactly H.
    t = build_packet("geneve", geneve_options=4, payload=b"y" * 30)
    end = dissect(t, "geneve")["payload_off"]
    assert reason(parse(t, ALL, header_window=end)) == Reason.NONE
    assert reason(parse(t, ALL, header_window=end - 1)) == Reason.WINDOW
    # Zero extension: the opaque capture stops at L.
    rec = parse(t, ALL, header_window=60)
    assert rec["opaque"] >> (8 * (60 - 34)) == 0


# --- IPv4 header problems ---------------------------------------------------------------------

@pytest.mark.parametrize("encap", ["plain", "vxlan", "gre-key"])
def test_bad_ihl_and_version(encap):
    frame = build_packet(encap, payload=b"a" * 20)
    for byte in (0x44, 0x40, 0x41, 0x65, 0x35):
        rec = parse(edit(frame, 14, bytes([byte]), fix=14), ALL)
        assert reason(rec) == Reason.BAD_IHL and rec["err"]["outer_bad_ihl"], hex(byte)
        assert rec["outer"]["present"] and rec["off"]["opaque"] == 0 and rec["opaque"] == 0
    if encap != "plain":
        il3 = dissect(frame, encap)["inner_l3"]
        for byte in (0x44, 0x30, 0x55):
            rec = parse(edit(frame, il3, bytes([byte]), fix=il3), ALL)
            assert reason(rec) == Reason.BAD_IHL and rec["err"]["inner_bad_ihl"]
            assert not rec["err"]["outer_bad_ihl"]
        # Inner version 6 is "IPv6, unsupported", not a bad IHL.
        rec = parse(edit(frame, il3, b"\x65"), ALL)
        assert reason(rec) == Reason.IPV6 and not rec["err"]["inner_bad_ihl"]


@pytest.mark.parametrize("encap", ["plain", "nvgre", "private-udp"])
def test_bad_checksums(encap):
    frame = build_packet(encap, payload=b"c" * 10)
    d = dissect(frame, encap)
    rec = parse(edit(frame, 14 + 10, b"\x12\x34"), ALL)
    assert rec["err"]["outer_bad_csum"] and not rec["outer"]["csum_ok"]
    assert reason(rec) == Reason.NONE and rec["cls"]["tso_ok"] and not rec["cls"]["rsc_ok"]
    if encap == "plain":
        assert rec["err"]["inner_bad_csum"] and not rec["inner"]["csum_ok"]
        return
    assert not rec["err"]["inner_bad_csum"]
    rec = parse(edit(frame, d["inner_l3"] + 10, b"\x12\x34"), ALL)
    assert rec["err"]["inner_bad_csum"] and not rec["err"]["outer_bad_csum"]
    assert reason(rec) == Reason.NONE and rec["cls"]["tso_ok"] and not rec["cls"]["rsc_ok"]


def test_checksum_covers_options():
    frame = build_packet("gre-key", outer_options=b"\x01\x01\x01\x00")
    assert parse(frame, ALL)["outer"]["csum_ok"]
    rec = parse(edit(frame, 14 + 23, b"\x07"), ALL)   # last option byte
    assert rec["err"]["outer_bad_csum"] and reason(rec) == Reason.IP_OPTIONS


@pytest.mark.parametrize("encap", ["plain", "geneve"])
def test_ip_options_shift_offsets(encap):
    for words in range(1, 11):
        opts = b"\x01" * (4 * words)
        frame = build_packet(encap, inner_options=opts, outer_options=opts, payload=b"o" * 9)
        rec, d = parse(frame, ALL), dissect(frame, encap)
        assert (rec["off"]["inner_l3"], rec["off"]["l4"], rec["off"]["payload"]) == \
            (d["inner_l3"], d["l4"], d["payload_off"])
        assert reason(rec) == Reason.IP_OPTIONS and rec["payload_len"] == 9
        assert rec["inner"]["ihl"] == 5 + words


@pytest.mark.parametrize("where", ["outer", "inner"])
def test_fragments(where):
    for kw in ({f"{where}_mf": True}, {f"{where}_frag": 1}, {f"{where}_frag": 0x1FFF}):
        frame = build_packet("vxlan", **kw)
        rec = parse(frame, ALL)
        assert reason(rec) == Reason.FRAGMENT and kind(rec) == Kind.OTHER
    rec = parse(build_packet("vxlan", outer_df=False, inner_df=False), ALL)
    assert reason(rec) == Reason.NONE and rec["outer"]["flags"] == 0


def test_bad_lengths():
    frame = build_packet("gre-key", payload=b"l" * 40)
    d = dissect(frame, "gre-key")
    # Outer total length below its header length (and a short frame is not claimed).
    rec = parse(edit(frame, 16, (19).to_bytes(2, "big"), fix=14), ALL)
    assert rec["err"]["outer_bad_len"] and reason(rec) == Reason.BAD_LENGTH
    # Inner total length below IHL*4 + doff*4.
    il3 = d["inner_l3"]
    rec = parse(edit(frame, il3 + 2, (39).to_bytes(2, "big"), fix=il3), ALL)
    assert rec["err"]["inner_bad_len"] and reason(rec) == Reason.BAD_LENGTH
    assert rec["payload_len"] == 0
    # Inner datagram longer than the room the outer one leaves.
    rec = parse(edit(frame, il3 + 2, (101).to_bytes(2, "big"), fix=il3), ALL)
    assert rec["err"]["inner_bad_len"] and reason(rec) == Reason.BAD_LENGTH
    # Plain: total length smaller than the headers.
    p = build_packet("plain", payload=b"l" * 40)
    rec = parse(edit(p, 16, (39).to_bytes(2, "big"), fix=14), ALL)
    assert rec["err"]["inner_bad_len"] and not rec["err"]["outer_bad_len"]


def test_tcp_doff():
    frame = build_packet("plain", payload=b"t" * 8)
    for doff in range(5):
        rec = parse(edit(frame, 34 + 12, bytes([doff << 4])), ALL)
        assert reason(rec) == Reason.TCP_DOFF and rec["tcp"]["doff"] == doff
        assert rec["off"]["payload"] == 0 and rec["payload_len"] == 0


def test_not_tcp():
    frame = build_packet("gre-key", inner_proto=17)
    rec = parse(frame, ALL)
    assert reason(rec) == Reason.NOT_TCP and rec["inner"]["present"] and rec["off"]["l4"] == 0
    plain_udp = edit(build_packet("plain"), 14 + 9, b"\x11", fix=14)
    rec = parse(plain_udp, ALL)
    assert reason(rec) == Reason.NOT_TCP and rec["off"]["inner_l3"] == 0
    assert not rec["inner"]["present"] and rec["off"]["opaque"] == 34


# --- Ethernet, VLANs, IPv6 --------------------------------------------------------------------

def test_vlan_and_qinq():
    for vlans, tpid in ((1, None), (2, 0x88A8), (2, 0x8100)):
        kw = {"qinq_tpid": tpid} if tpid else {}
        frame = build_packet("nvgre", vlans=vlans, vlan_ids=(0x123, 0x456), flow=4, **kw)
        rec = parse(frame, ALL)
        assert rec["eth"]["vlans"] == vlans and rec["off"]["l3"] == 14 + 4 * vlans
        assert rec["eth"]["tci0"] == 0x123
        assert rec["eth"]["tci1"] == (0x456 if vlans == 2 else 0)
        assert kind(rec) == Kind.TUNNEL and rec["cls"]["flow"] == 4
    # A third tag is not parsed: its TPID is the final ethertype.
    frame = build_packet("plain", vlans=2)
    three = frame[:12] + b"\x81\x00\x07\x77" + frame[12:]
    rec = parse(three, ALL)
    assert rec["eth"]["vlans"] == 2 and rec["eth"]["ethertype"] == 0x8100
    assert reason(rec) == Reason.NOT_IP and not rec["outer"]["present"]


def test_non_ip():
    arp = bytes(12) + b"\x08\x06" + bytes(46)
    rec = parse(arp, ALL)
    assert reason(rec) == Reason.NOT_IP and rec["off"]["l3"] == 14
    assert rec["off"]["opaque"] == rec["off"]["inner_l3"] == 0
    assert parse(b"", ALL)["cls"]["reason"] == Reason.NOT_IP.value


def test_ipv6_outer_and_inner():
    rec = parse(build_packet("vxlan", outer_ipv6=True), ALL)
    assert reason(rec) == Reason.IPV6 and not rec["outer"]["present"]
    assert rec["eth"]["ethertype"] == 0x86DD
    for encap in ("vxlan", "geneve", "nvgre", "private-udp"):
        rec = parse(build_packet(encap, inner_ipv6=True), ALL)
        assert reason(rec) == Reason.IPV6, encap
        assert rec["inner"]["present"] and rec["inner"]["version"] == 6
    # GRE with key: protocol 0x86DD does not match the IPv4 format value.
    assert reason(parse(build_packet("gre-key", inner_ipv6=True), ALL)) == Reason.NOT_TCP


def test_plain_inner_is_outer():
    frame = build_packet("plain", payload=b"p" * 5, inner_options=b"\x01" * 4)
    rec = parse(frame, ALL)
    assert rec["inner"] == rec["outer"] and rec["off"]["inner_l3"] == rec["off"]["l3"]
    assert rec["cls"]["opaque_len"] == 0 and reason(rec) == Reason.IP_OPTIONS


def test_too_many_profiles():
    with pytest.raises(ValueError, match="at most 8"):
        parse(b"", [None] * 9)


# --- Readings of the spec (see the tunnelnic/model/parse.py docstring) ------------------------

def test_zero_extension_of_the_ethertype():
    frame = build_packet("plain")
    rec = parse(frame[:13], ALL)            # byte 13 (0x00) reads as zero: t is still 0x0800
    assert rec["eth"]["ethertype"] == 0x0800 and reason(rec) == Reason.TRUNCATED
    rec = parse(frame[:12], ALL)
    assert rec["eth"]["ethertype"] == 0 and reason(rec) == Reason.NOT_IP
    assert rec["err"]["truncated"] and rec["eth"]["dst"] == 0x020000000002


def test_csum_ok_does_not_need_version_4():
    frame = edit(build_packet("plain"), 14, b"\x55", fix=14)   # version 5, ihl 5, checksum right
    rec = parse(frame, ALL)
    assert rec["outer"]["csum_ok"] and rec["err"]["outer_bad_ihl"]
    assert not rec["err"]["outer_bad_csum"]                        # only for a valid header
    assert reason(rec) == Reason.BAD_IHL


def test_field_outside_capture_is_never_a_window_error():
    # Flow field at 60..63 of the capture while the frame ends (and the window) before it.
    frame = build_packet("gre-key", payload=b"w" * 100)
    prof = dict(PRESETS["gre-key"], flow_off=61, flow_len=4)     # 65 > 64: outside capture
    rec = parse(frame, [prof], header_window=90)
    assert reason(rec) == Reason.FIELD_OUTSIDE and not rec["err"]["window"]
    prof = dict(PRESETS["gre-key"], flow_off=60, flow_len=4)     # inside capture, past H
    rec = parse(frame, [prof], header_window=90)
    assert reason(rec) == Reason.WINDOW and rec["err"]["window"] and rec["cls"]["flow"] == 0


def test_flow_key():
    from tunnelnic.model import flow_key
    rec = parse(build_packet("vxlan", flow=0x55, sport=1, dport=2), ALL)
    assert flow_key(rec) == (3, (0x0A000001, 0x0A000002), (0xC0A80101, 0xC0A80102), 6, (1, 2),
                             0x55)
    rec = parse(build_packet("plain", sport=1, dport=2), ALL)
    assert flow_key(rec)[0] == -1 and flow_key(rec)[1] == flow_key(rec)[2]
    assert flow_key(parse(b"", ALL)) is None


# --- Inner Ethernet type (profile inner_eth) ----------------------------------------------------

#: encapsulation, builder arguments: VXLAN, Geneve with options (the type at a variable offset,
#: the last case past the 64-byte capture), NVGRE.
INNER_ETH_CASES = [("vxlan", {}), ("vxlan", {"vlans": 2}), ("geneve", {"geneve_options": 3}),
                   ("geneve", {"geneve_options": 12}), ("nvgre", {})]


@pytest.mark.parametrize("encap,kw", INNER_ETH_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("ethertype", [0x0800, 0x86DD, 0x8100, 0x8800, 0x0806])
def test_inner_ethertype(encap, kw, ethertype):
    """Only an inner Ethernet type of 0x0800 is offloadable; the IPv4 | TCP bytes after any
    other type (here a valid header) are not looked at as such (the bug of test_mix_long[8])."""
    frame = build_packet(encap, inner_ethertype=ethertype, payload=b"e" * 50, flow=3, **kw)
    d = dissect(build_packet(encap, payload=b"e" * 50, flow=3, **kw), encap)
    assert frame[d["inner_l3"] - 2:d["inner_l3"]] == ethertype.to_bytes(2, "big")
    rec = parse(frame, [PRESETS[encap]])
    assert rec["cls"]["profile"] == 0 and rec["off"]["inner_l3"] == d["inner_l3"]
    assert rec["inner"]["present"] and rec["tcp"]["present"]   # captured all the same
    if ethertype == 0x0800:
        assert kind(rec) == Kind.TUNNEL and reason(rec) == Reason.NONE
        assert (rec["cls"]["tso_ok"], rec["cls"]["rsc_ok"]) == (1, 1)
    else:
        assert kind(rec) == Kind.OTHER and reason(rec) == Reason.INNER_ETHERTYPE
        assert (rec["cls"]["tso_ok"], rec["cls"]["rsc_ok"]) == (0, 0)
    # Without inner_eth the type is not looked at (the profile of an opaque region that does
    # not end with an Ethernet header).
    rec = parse(frame, [dict(PRESETS[encap], inner_eth=0)])
    assert kind(rec) == Kind.TUNNEL and reason(rec) == Reason.NONE


@pytest.mark.parametrize("encap", ["vxlan", "geneve", "nvgre"])
def test_inner_ethertype_presets_set_it(encap):
    assert PRESETS[encap]["inner_eth"] == 1
    for name in ("gre-key", "gre-cks", "private-udp"):
        assert PRESETS[name]["inner_eth"] == 0


def test_inner_ethertype_priority():
    """A real inner IPv6 packet stays IPV6; a frame cut inside the type is TRUNCATED; once
    the type is there a wrong one wins over the truncation after it; a length field outside
    the capture is FIELD_OUTSIDE (the type's position is unknown then)."""
    assert reason(parse(build_packet("vxlan", inner_ipv6=True), [PRESETS["vxlan"]])) \
        == Reason.IPV6
    full = build_packet("vxlan", inner_ethertype=0x8800, payload=b"t" * 30, min_size=0)
    end = 14 + 20 + 30
    assert reason(parse(full[:end - 1], [PRESETS["vxlan"]])) == Reason.TRUNCATED
    assert reason(parse(full[:end], [PRESETS["vxlan"]])) == Reason.INNER_ETHERTYPE
    assert reason(parse(full[:end + 25], [PRESETS["vxlan"]])) == Reason.INNER_ETHERTYPE
    good = build_packet("vxlan", payload=b"t" * 30, min_size=0)
    assert reason(parse(good[:end + 25], [PRESETS["vxlan"]])) == Reason.TRUNCATED
    geneve = build_packet("geneve", inner_ethertype=0x8800)
    far = dict(PRESETS["geneve"], len_off=63, len_bytes=2)
    assert reason(parse(geneve, [far])) == Reason.FIELD_OUTSIDE


def test_inner_ethertype_needs_room():
    """inner_eth with opaque_len below 14 cannot hold an Ethernet header: never offloadable
    (and the presets refuse it)."""
    frame = build_packet("vxlan")
    rec = parse(frame, [dict(PRESETS["vxlan"], opaque_len=13)])
    assert reason(rec) == Reason.INNER_ETHERTYPE
    with pytest.raises(ValueError, match="inner_eth=1 needs opaque_len >= 14"):
        preset("vxlan", opaque_len=13)
    assert preset("vxlan", opaque_len=13, inner_eth=0)["opaque_len"] == 13


@pytest.mark.parametrize("proto", [0x6558, 0x86DD, 0x8847])
def test_gre_cks_checks_protocol(proto):
    """gre-cks carries IPv4 directly: a GRE C,K,S packet of another protocol type (here with
    the IPv4 | TCP bytes of a valid packet after the 16-byte header) matches no profile."""
    frame = build_packet("gre-cks", payload=b"g" * 20)
    assert kind(parse(frame, [PRESETS["gre-cks"]])) == Kind.TUNNEL
    other = edit(frame, 14 + 20 + 2, proto.to_bytes(2, "big"))
    rec = parse(other, [PRESETS["gre-cks"]])
    assert kind(rec) == Kind.OTHER and reason(rec) == Reason.NOT_TCP


# --- Check field (profile check_off/check_value/check_mask) -------------------------------------

def _udp_opaque(frame):
    """Offset of the opaque region (the outer UDP header) of an unoptioned IPv4 frame."""
    return 14 + 4 * (frame[12:14] == b"\x81\x00") + 20


@pytest.mark.parametrize("words", [0, 3, 12])
@pytest.mark.parametrize("proto", [0x6558, 0x6158, 0x0800, 0x86DD])
def test_geneve_checks_protocol_type(words, proto):
    """The Geneve preset matches only protocol type 0x6558 (Ethernet) at opaque bytes 10-11.
    0x6158 is test_mix_long[8]'s bit flip: the inner Ethernet | IPv4 | TCP stays valid, so
    only the check field can tell. Not matched means exactly a format mismatch: no profile,
    UDP is not TCP, so OTHER / NOT_TCP, and a later profile may still match."""
    frame = build_packet("geneve", geneve_options=words, payload=b"q" * 40, flow=5)
    o = _udp_opaque(frame)
    assert frame[o + 10:o + 12] == b"\x65\x58"
    frame = edit(frame, o + 10, proto.to_bytes(2, "big"))
    rec = parse(frame, [PRESETS["geneve"]])
    if proto == 0x6558:
        assert kind(rec) == Kind.TUNNEL and rec["cls"]["profile"] == 0
    else:
        assert kind(rec) == Kind.OTHER and reason(rec) == Reason.NOT_TCP
        assert rec["cls"]["profile"] == 0 and rec["off"]["inner_l3"] == 0
        assert not rec["inner"]["present"]
    # The same profile without the check (mask 0, the reset value) does not look.
    assert kind(parse(frame, [dict(PRESETS["geneve"], check_mask=0)])) == Kind.TUNNEL
    # Failing the check falls to the next profile, like a format mismatch.
    rec = parse(frame, [PRESETS["geneve"], dict(PRESETS["geneve"], check_mask=0)])
    assert kind(rec) == Kind.TUNNEL and rec["cls"]["profile"] == (proto != 0x6558)


@pytest.mark.parametrize("flags", [0x08, 0x00, 0x0C, 0x80, 0xFF, 0xF7])
def test_vxlan_checks_i_flag(flags):
    """vxlan and vxlan-csum match only with the I flag (0x08 of opaque byte 8) set; the other
    flag bits and the reserved byte 9 are not looked at."""
    frame = build_packet("vxlan", payload=b"v" * 20, flow=7)
    o = _udp_opaque(frame)
    assert frame[o + 8] == 0x08
    frame = edit(frame, o + 8, bytes([flags, 0x5A]))
    for name in ("vxlan", "vxlan-csum"):
        rec = parse(frame, [PRESETS[name]])
        if flags & 0x08:
            assert kind(rec) == Kind.TUNNEL and rec["cls"]["flow"] == 7
        else:
            assert kind(rec) == Kind.OTHER and reason(rec) == Reason.NOT_TCP


def test_check_field_value_and_mask():
    """(field & check_mask) == (check_value & check_mask), on the 2 bytes at check_off."""
    frame = build_packet("private-udp", payload=b"c" * 20)
    o = _udp_opaque(frame)
    field = int.from_bytes(frame[o + 8:o + 10], "big")
    base = PRESETS["private-udp"]
    for value, mask, hit in ((field, 0xFFFF, True), (field ^ 1, 0xFFFF, False),
                             (field ^ 1, 0xFFFE, True), (field & 0xFF00, 0xFF00, True),
                             (field ^ 0x100, 0xFF00, False), (0x1234, 0, True)):
        prof = dict(base, check_off=8, check_value=value, check_mask=mask)
        assert (kind(parse(frame, [prof])) == Kind.TUNNEL) == hit, (value, mask)


def test_check_field_must_be_in_capture_and_frame():
    """With a non-zero mask the check bytes must lie inside the capture (check_off + 2 <= C)
    and the frame, as the format field; with mask 0 nothing is required."""
    frame = build_packet("private-udp", payload=b"c" * 60)
    o = _udp_opaque(frame)
    base = PRESETS["private-udp"]
    at = lambda off, mask: dict(base, check_off=off, check_mask=mask,
                                check_value=int.from_bytes(frame[o + off:o + off + 2], "big")
                                & mask)
    assert kind(parse(frame, [at(62, 0xFFFF)])) == Kind.TUNNEL
    assert kind(parse(frame, [at(62, 0xFFFF)], opaque_bytes=63)) == Kind.OTHER
    assert kind(parse(frame, [at(62, 0)], opaque_bytes=63)) == Kind.TUNNEL
    # Cut the frame inside the check field: the profile does not match (no inner header is
    # looked for: inner_l3 stays 0); with mask 0 it matches. Both are truncated (the outer
    # total length says more).
    short = frame[:o + 41]
    rec = parse(short, [at(40, 0xFFFF)])
    assert rec["off"]["inner_l3"] == 0 and reason(rec) == Reason.TRUNCATED
    rec = parse(short, [at(40, 0)])
    assert rec["off"]["inner_l3"] == o + base["opaque_len"] and reason(rec) == Reason.TRUNCATED

