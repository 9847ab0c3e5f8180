"""Packet builders and the scapy checkers every other test relies on; record encode/decode."""

import random

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from amaranth.lib import data

from hw.layouts import ParseRecord
from tunnelnic.model import decode_record, encode_record, empty_record, parse
from tunnelnic.model.record import diff_records
from tunnelnic.packets import (ENCAPS, build_packet, check_checksums, dissect,
                               fix_ipv4_checksum, geneve_option_bytes)
from tunnelnic.presets import PRESETS

OPTS = [("MSS", 1460), ("NOP", None), ("NOP", None), ("Timestamp", (5, 6))]


@pytest.mark.parametrize("encap", ENCAPS)
@pytest.mark.parametrize("vlans", [0, 1, 2])
def test_built_packets_are_clean(encap, vlans):
    for udp_csum in (False, True):
        for size in (0, 1, 7, 100, 1400):
            payload = bytes(random.Random(size).randrange(256) for _ in range(size))
            frame = build_packet(encap, vlans=vlans, payload=payload, udp_csum=udp_csum,
                                 tcp_options=OPTS, geneve_options=size % 9, flow=0x42)
            assert check_checksums(frame, encap) == []
            d = dissect(frame, encap)
            assert d["payload"] == payload and d["vlans"] == vlans
            assert d["tcp"].options[0] == ("MSS", 1460)
            if encap != "plain":
                udp = d["outer"].payload
                if isinstance(udp, UDP):
                    assert (udp.chksum != 0) == udp_csum


@pytest.mark.parametrize("encap", ENCAPS)
def test_checker_catches_corruption(encap):
    frame = build_packet(encap, payload=b"0123456789", udp_csum=True, flow=3)
    d = dissect(frame, encap)
    targets = {"outer ip csum": d["l3"] + 10, "inner ip csum": d["inner_l3"] + 10,
               "tcp csum": d["l4"] + 16, "payload": len(frame) - 1, "tcp seq": d["l4"] + 4,
               "inner src": d["inner_l3"] + 12}
    for what, pos in targets.items():
        bad = bytearray(frame)
        bad[pos] ^= 0x01
        assert check_checksums(bytes(bad), encap), what
    # Lengths: outer total length one byte too long, with a correct header checksum.
    bad = bytearray(frame)
    bad[d["l3"] + 2:d["l3"] + 4] = (d["outer"].len + 1).to_bytes(2, "big")
    assert any("length" in p for p in check_checksums(fix_ipv4_checksum(bytes(bad), d["l3"]),
                                                      encap))
    if encap in ("vxlan", "geneve", "private-udp"):
        bad = bytearray(frame)
        bad[d["opaque_off"] + 5] ^= 1                     # UDP length
        assert any("UDP length" in p for p in check_checksums(bytes(bad), encap))


def test_gre_checksum_check_optional():
    frame = build_packet("gre-cks", payload=b"g" * 20)
    d = dissect(frame, "gre-cks")
    bad = bytearray(frame)
    bad[d["opaque_off"] + 4] ^= 0xFF                 # the GRE checksum itself
    assert check_checksums(bytes(bad), "gre-cks") == ["GRE checksum is wrong"]
    assert check_checksums(bytes(bad), "gre-cks", gre_csum=False) == []


def test_fields_land_where_asked():
    frame = build_packet("vxlan", flow=0xABCDEF, seq=11, ack=22, flags="PA", window=333,
                         inner_id=44, outer_id=55, outer_ttl=9, inner_tos=0x28,
                         udp_sport=1234, sport=5, dport=6, outer_df=False)
    d = dissect(frame, "vxlan")
    assert (d["outer"].id, d["outer"].ttl, int(d["outer"].flags)) == (55, 9, 0)
    assert (d["inner"].id, d["inner"].tos, int(d["inner"].flags)) == (44, 0x28, 2)
    assert (d["tcp"].seq, d["tcp"].ack, str(d["tcp"].flags), d["tcp"].window) == \
        (11, 22, "PA", 333)
    assert (d["tcp"].sport, d["tcp"].dport, d["outer"].payload.sport) == (5, 6, 1234)
    assert d["outer"].payload.payload.vni == 0xABCDEF
    assert frame[d["inner_l3"] - 2:d["inner_l3"]] == b"\x08\x00"   # inner Ethernet type
    assert len(d["opaque"]) == 30


def test_private_udp_header_and_port():
    frame = build_packet("private-udp", flow=0xBEEF, port=7100)
    d = dissect(frame, "private-udp")
    assert d["outer"].payload.dport == 7100
    assert d["opaque"][8:10] == b"\xbe\xef" and len(d["opaque"]) == 20
    custom = bytes(range(12))
    d = dissect(build_packet("private-udp", private_header=custom), "private-udp")
    assert d["opaque"][8:] == custom


def test_geneve_options():
    assert geneve_option_bytes(0) == b""
    for words in range(1, 64):
        opt = geneve_option_bytes(words)
        assert len(opt) == 4 * words
        frame = build_packet("geneve", geneve_options=words)
        assert frame[34 + 8] & 0x3F == words
        assert check_checksums(frame, "geneve") == []
    with pytest.raises(ValueError):
        geneve_option_bytes(64)


def test_builder_errors():
    with pytest.raises(ValueError, match="unknown encapsulation"):
        build_packet("ipip")
    with pytest.raises(ValueError, match="vlans"):
        build_packet("plain", vlans=3)
    with pytest.raises(ValueError, match="multiple of 4"):
        build_packet("plain", inner_options=b"\x01")
    with pytest.raises(ValueError, match="12 bytes"):
        build_packet("private-udp", private_header=b"x")


def test_padding_and_min_size():
    assert len(build_packet("plain")) == 60
    assert len(build_packet("plain", min_size=0)) == 54
    assert check_checksums(build_packet("plain"), "plain") == []


# --- record.py --------------------------------------------------------------------------------

def random_record(rng, opaque_bytes):
    layout = ParseRecord(opaque_bytes)
    rec = empty_record()
    for name, field in layout:
        if name in ("payload_len", "opaque"):
            rec[name] = rng.getrandbits(field.width)
            continue
        for sub, subfield in data.Layout.cast(field.shape):
            rec[name][sub] = rng.getrandbits(subfield.width)
    rec["cls"]["kind"] = rng.randrange(3)
    rec["cls"]["reason"] = rng.randrange(12)
    return rec


@pytest.mark.parametrize("opaque_bytes", [64, 32, 16])
def test_record_round_trip_random(opaque_bytes):
    rng = random.Random(opaque_bytes)
    width = ParseRecord(opaque_bytes).size
    for _ in range(200):
        rec = random_record(rng, opaque_bytes)
        bits = encode_record(rec, opaque_bytes)
        assert 0 <= bits < (1 << width)
        assert decode_record(bits, opaque_bytes) == rec
        assert diff_records(rec, decode_record(bits, opaque_bytes)) == []


def test_record_bit_positions():
    rec = empty_record()
    rec["eth"]["dst"] = 1                      # first member of the first struct: bit 0
    assert encode_record(rec) == 1
    rec = empty_record()
    rec["opaque"] = 0xAB                       # the last member: the top bits
    assert encode_record(rec) == 0xAB << (ParseRecord(64).size - 512)
    bad = empty_record()
    bad["cls"]["flow"] = 7
    assert diff_records(empty_record(), decode_record(encode_record(bad))) == \
        ["cls.flow: expected 0x0, got 0x7"]


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(ENCAPS), st.integers(0, 2), st.binary(max_size=64))
def test_parsed_records_round_trip(encap, vlans, payload):
    rec = parse(build_packet(encap, vlans=vlans, payload=payload), list(PRESETS.values()))
    assert decode_record(encode_record(rec)) == rec
