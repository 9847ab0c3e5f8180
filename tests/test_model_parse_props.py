"""Property tests: the reference model against scapy's own dissection of generated packets.

For random encapsulations, profile orders, VLAN tags, Geneve option lengths, IP and TCP options,
fragments, payload sizes and header windows, every field, offset, the flow key and the reason
the model reports must agree with what scapy (an independent parser) says about the frame.
"""

import ipaddress

from hypothesis import HealthCheck, given, settings, strategies as st
from hw.layouts import Kind, Reason
from tunnelnic.model import decode_record, encode_record, parse
from tunnelnic.packets import ENCAPS, build_packet, dissect
from tunnelnic.presets import PRESETS

# Which preset recognises each encapsulation (vxlan packets also match vxlan-csum).
PRESET_OF = {"gre-key": "gre-key", "gre-cks": "gre-cks", "nvgre": "nvgre", "vxlan": "vxlan",
             "geneve": "geneve", "private-udp": "private-udp"}

TCP_OPTIONS = [
    [],
    [("MSS", 1460)],
    [("NOP", None), ("NOP", None), ("Timestamp", (123456, 654321))],
    [("MSS", 1400), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None), ("WScale", 7)],
    [("SAck", (1, 2, 3, 4, 5, 6)), ("NOP", None), ("NOP", None),
     ("Timestamp", (9, 10))],
]


def ip_fields(ip):
    """The record's Ipv4Fields of a scapy IP layer (as scapy dissected it)."""
    return dict(present=1, version=ip.version, ihl=ip.ihl, tos=ip.tos, total_len=ip.len,
                ident=ip.id, flags=int(ip.flags), frag_off=ip.frag, ttl=ip.ttl, proto=ip.proto,
                csum=ip.chksum, src=int(ipaddress.IPv4Address(ip.src)),
                dst=int(ipaddress.IPv4Address(ip.dst)), csum_ok=1)


def tcp_fields(tcp):
    return dict(present=1, sport=tcp.sport, dport=tcp.dport, seq=tcp.seq, ack=tcp.ack,
                doff=tcp.dataofs, rsv=tcp.reserved, flags=int(tcp.flags) & 0xFF,
                window=tcp.window, csum=tcp.chksum, urg=tcp.urgptr)


def expected_flow(encap, kwargs):
    flow = kwargs["flow"]
    return {"gre-key": flow, "gre-cks": flow & 0xFFFF, "nvgre": flow & 0xFFFFFF,
            "vxlan": flow & 0xFFFFFF, "geneve": flow & 0xFFFFFF,
            "private-udp": flow & 0xFFFF, "plain": 0}[encap]


@st.composite
def packets(draw):
    encap = draw(st.sampled_from(ENCAPS))
    kwargs = dict(
        payload=draw(st.binary(max_size=300)),
        seq=draw(st.integers(0, 2**32 - 1)), ack=draw(st.integers(0, 2**32 - 1)),
        flags=draw(st.sampled_from(["A", "PA", "S", "SA", "FA", "RA", "UA", "EC", "A"])),
        window=draw(st.integers(0, 0xFFFF)), urg=draw(st.integers(0, 0xFFFF)),
        tcp_options=draw(st.sampled_from(TCP_OPTIONS)),
        sport=draw(st.integers(1, 0xFFFF)), dport=draw(st.integers(1, 0xFFFF)),
        flow=draw(st.integers(0, 2**32 - 1)),
        vlans=draw(st.integers(0, 2)),
        vlan_ids=(draw(st.integers(0, 4095)), draw(st.integers(0, 4095))),
        outer_ttl=draw(st.integers(0, 255)), outer_tos=draw(st.integers(0, 255)),
        inner_ttl=draw(st.integers(0, 255)), inner_tos=draw(st.integers(0, 255)),
        outer_id=draw(st.integers(0, 0xFFFF)), inner_id=draw(st.integers(0, 0xFFFF)),
        outer_df=draw(st.booleans()), inner_df=draw(st.booleans()),
        udp_csum=draw(st.booleans()), udp_sport=draw(st.integers(1, 0xFFFF)),
        geneve_options=draw(st.integers(0, 8)),
    )
    # Rarer: IP options and fragments (not offloadable, but parsed all the same).
    kwargs["inner_options"] = draw(st.sampled_from([b""] * 6 + [b"\x01" * 4, b"\x01" * 40]))
    kwargs["outer_options"] = draw(st.sampled_from([b""] * 6 + [b"\x01" * 8, b"\x01" * 40]))
    kwargs["inner_mf"] = draw(st.sampled_from([False] * 9 + [True]))
    kwargs["outer_frag"] = draw(st.sampled_from([0] * 9 + [185]))
    order = draw(st.permutations(list(PRESETS)))
    window = draw(st.sampled_from([128, 160, 256, 512]))
    return encap, kwargs, order, window


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets())
def test_model_agrees_with_scapy(case):
    encap, kwargs, order, window = case
    profiles = [PRESETS[name] for name in order]
    frame = build_packet(encap, **kwargs)
    rec = parse(frame, profiles, header_window=window)
    d = dissect(frame, encap)
    outer, inner, tcp = d["outer"], d["inner"], d["tcp"]

    # The reason, from what was built (and scapy's header length).
    frag = kwargs["inner_mf"] or (encap != "plain" and kwargs["outer_frag"])
    options = kwargs["inner_options"] or (encap != "plain" and kwargs["outer_options"])
    if d["payload_off"] > window:
        reason = Reason.WINDOW
    elif frag:
        reason = Reason.FRAGMENT
    elif options:
        reason = Reason.IP_OPTIONS
    else:
        reason = Reason.NONE
    assert rec["cls"]["reason"] == reason.value
    if reason == Reason.WINDOW:
        # Beyond the window the record describes only the first H bytes.
        assert rec["err"]["window"] == 1 and rec["err"]["truncated"] == 0
        assert rec["cls"]["kind"] == Kind.OTHER.value
        return
    assert not any(rec["err"].values())

    # Ethernet.
    assert rec["eth"]["vlans"] == kwargs["vlans"] == d["vlans"]
    assert rec["eth"]["dst"] == 0x020000000002 and rec["eth"]["src"] == 0x020000000001
    assert rec["eth"]["ethertype"] == 0x0800
    tags = [v & 0xFFF for v in kwargs["vlan_ids"]][:kwargs["vlans"]]
    assert [rec["eth"]["tci0"] & 0xFFF, rec["eth"]["tci1"] & 0xFFF][:len(tags)] == tags

    # Offsets.
    assert rec["off"]["l3"] == d["l3"]
    assert rec["off"]["opaque"] == d["l3"] + 4 * outer.ihl
    assert rec["off"]["inner_l3"] == d["inner_l3"]
    assert rec["off"]["l4"] == d["l4"]
    assert rec["off"]["payload"] == d["payload_off"]
    assert rec["payload_len"] == len(d["payload"]) == len(kwargs["payload"])

    # Header fields.
    assert rec["outer"] == ip_fields(outer)
    assert rec["inner"] == ip_fields(inner)
    assert rec["tcp"] == tcp_fields(tcp)
    capture = frame[rec["off"]["opaque"]:rec["off"]["opaque"] + 64]
    assert rec["opaque"] == int.from_bytes(capture.ljust(64, b"\0"), "little")

    # Classification.
    cls = rec["cls"]
    assert cls["opaque_len"] == len(d["opaque"])
    if encap == "plain":
        assert cls["profile"] == 0 and cls["flow"] == 0
    else:
        want = [n for n in order if n == PRESET_OF[encap]
                or (encap == "vxlan" and n == "vxlan-csum")][0]
        assert order[cls["profile"]] == want
        assert cls["flow"] == expected_flow(encap, kwargs)
        assert (cls["udp"], cls["udp_csum"]) == (PRESETS[want]["udp"], PRESETS[want]["udp_csum"])
    kind = Kind.OTHER if reason != Reason.NONE else (
        Kind.PLAIN if encap == "plain" else Kind.TUNNEL)
    assert cls["kind"] == kind.value
    assert cls["tso_ok"] == cls["rsc_ok"] == int(kind != Kind.OTHER)

    # The record survives the trip through the layout's bits.
    assert decode_record(encode_record(rec)) == rec
