"""Test packets: scapy builders for plain and tunneled TCP, and scapy-based checkers.

Every test of the project builds its frames here and checks every output frame with
:func:`check_checksums`, an oracle independent of the gateware *and* of the reference model
(it uses scapy's own checksum code).

Encapsulations (``ENCAPS``) and where the tenant id ``flow`` goes:

============== ==========================================================================
``plain``      Ethernet | IPv4 | TCP (``flow`` unused)
``gre-key``    ... | IPv4 (47) | GRE K=1 proto 0x0800, key = ``flow`` | IPv4 | TCP
``gre-cks``    ... | IPv4 (47) | GRE C,K,S proto 0x0800, checksum, key = ``flow``, seq | IPv4 | TCP
``nvgre``      ... | IPv4 (47) | GRE K=1 proto 0x6558, VSID = ``flow``, FlowID | Ether | IPv4 | TCP
``vxlan``      ... | IPv4 (17) | UDP 4789 | VXLAN I=1, VNI = ``flow`` | Ether | IPv4 | TCP
``geneve``     ... | IPv4 (17) | UDP 6081 | Geneve VNI = ``flow`` + options | Ether | IPv4 | TCP
``private-udp``... | IPv4 (17) | UDP ``port`` | 12-byte header, bytes 0-1 = ``flow`` | IPv4 | TCP
============== ==========================================================================

The inner Ethernet of NVGRE/VXLAN/Geneve has type 0x0800 (0x86DD with ``inner_ipv6``), unless
``inner_ethertype`` says otherwise (the inner IP header follows it all the same).
"""

from scapy.compat import raw
from scapy.contrib.geneve import GENEVE
from scapy.layers.inet import IP, TCP, UDP, IPOption, in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.layers.l2 import GRE, Dot1Q, Dot1AD, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from scapy.utils import checksum

from .presets import GENEVE_PORT, PRIVATE_UDP_PORT, VXLAN_PORT

__all__ = ["ENCAPS", "build_packet", "dissect", "check_checksums", "geneve_option_bytes",
           "fix_ipv4_checksum", "PRIVATE_HEADER_LEN"]

ENCAPS = ("plain", "gre-key", "gre-cks", "nvgre", "vxlan", "geneve", "private-udp")
PRIVATE_HEADER_LEN = 12
_INNER_ETHER = {"nvgre", "vxlan", "geneve"}


def geneve_option_bytes(words):
    """``words`` 4-byte words of Geneve options (RFC 8926 section 3.5), as bytes.

    Options of at most 32 words each (a 4-byte option header and up to 31 data words), class
    0x0102, types counting from 0x01, data a recognisable pattern.
    """
    if not 0 <= words <= 63:
        raise ValueError(f"Geneve options are 0..63 words, got {words}")
    out = b""
    kind = 1
    while words:
        chunk = min(words, 32)
        data = bytes((kind * 16 + i) & 0xFF for i in range(4 * (chunk - 1)))
        out += bytes([0x01, 0x02, kind, chunk - 1]) + data
        words -= chunk
        kind += 1
    return out


def _ip_options(options):
    """Raw option bytes (a multiple of 4) -> scapy IP options."""
    if not options:
        return []
    if len(options) % 4 or len(options) > 40:
        raise ValueError("IP options must be a multiple of 4 bytes, at most 40")
    return [IPOption(options)]


def _tcp_ip(*, ipv6, src, dst, ttl, tos, ident, df, mf, frag, ip_options, proto,
            sport, dport, seq, ack, flags, window, urg, tcp_options, payload):
    """The inner (or plain) IP | TCP | payload as scapy layers."""
    if ipv6:
        ip = IPv6(src=src if ":" in src else "2001:db8::1", dst=dst if ":" in dst
                  else "2001:db8::2", hlim=ttl, tc=tos)
    else:
        ip = IP(src=src, dst=dst, ttl=ttl, tos=tos, id=ident,
                flags=(2 if df else 0) | (1 if mf else 0), frag=frag,
                options=_ip_options(ip_options))
        if proto is not None:
            ip.proto = proto
    l4 = TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window,
             urgptr=urg, options=list(tcp_options))
    return ip / l4 / Raw(payload) if payload else ip / l4


def build_packet(encap, *, payload=b"", seq=1000, ack=1, flags="A", window=8192, urg=0,
                 tcp_options=(), sport=40000, dport=80, flow=0,
                 eth_src="02:00:00:00:00:01", eth_dst="02:00:00:00:00:02",
                 vlans=0, vlan_ids=(100, 200), qinq_tpid=0x88A8,
                 outer_src="10.0.0.1", outer_dst="10.0.0.2", outer_ttl=64, outer_tos=0,
                 outer_id=0x1000, outer_df=True, outer_mf=False, outer_frag=0,
                 outer_options=b"", outer_ipv6=False,
                 inner_src="192.168.1.1", inner_dst="192.168.1.2", inner_ttl=63, inner_tos=0,
                 inner_id=0x2000, inner_df=True, inner_mf=False, inner_frag=0,
                 inner_options=b"", inner_ipv6=False, inner_proto=None,
                 udp_sport=50000, udp_csum=False, port=None, geneve_options=0,
                 gre_seq=7, nvgre_flowid=0, private_header=None,
                 inner_eth_src="02:00:00:00:01:01", inner_eth_dst="02:00:00:00:01:02",
                 inner_ethertype=None, min_size=60):
    """One Ethernet frame (no FCS) of encapsulation ``encap``, lengths and checksums correct.

    ``flow`` is the tenant id (GRE key / VSID / VNI / private slot id); ``vlans`` 0, 1 or 2
    (802.1Q, or QinQ with ``qinq_tpid`` outside); ``geneve_options`` the Geneve option length in
    4-byte words; ``udp_csum`` computes the outer UDP checksum (else 0); ``port`` overrides the
    UDP destination port (``private-udp`` defaults to 7000); ``inner_proto`` overrides the inner
    IPv4 protocol (the TCP header stays); ``private_header`` gives the 12 private-udp bytes;
    ``inner_ethertype`` overrides the type of NVGRE/VXLAN/Geneve's inner Ethernet header.
    Frames shorter than ``min_size`` (default 60, Ethernet's minimum without FCS) are padded
    with zeros after the outer datagram.
    For ``plain`` the ``inner_*`` arguments describe the only IP header (``outer_*`` unused).
    """
    if encap not in ENCAPS:
        raise ValueError(f"unknown encapsulation {encap!r} (known: {', '.join(ENCAPS)})")
    if vlans not in (0, 1, 2):
        raise ValueError(f"vlans must be 0, 1 or 2, got {vlans}")
    inner = _tcp_ip(ipv6=inner_ipv6, src=inner_src, dst=inner_dst, ttl=inner_ttl,
                    tos=inner_tos, ident=inner_id, df=inner_df, mf=inner_mf, frag=inner_frag,
                    ip_options=inner_options, proto=inner_proto, sport=sport, dport=dport,
                    seq=seq, ack=ack, flags=flags, window=window, urg=urg,
                    tcp_options=tcp_options, payload=payload)
    inner_type = 0x86DD if inner_ipv6 else 0x0800
    if encap in _INNER_ETHER:
        inner = Ether(src=inner_eth_src, dst=inner_eth_dst,
                      type=inner_type if inner_ethertype is None else inner_ethertype) / inner

    if encap == "plain":
        l3 = inner
    else:
        if encap == "gre-key":
            opaque = GRE(key_present=1, key=flow, proto=inner_type)
        elif encap == "gre-cks":
            opaque = GRE(chksum_present=1, key_present=1, seqnum_present=1, offset=0,
                         key=flow, sequence_number=gre_seq, proto=inner_type)
        elif encap == "nvgre":
            opaque = GRE(key_present=1, proto=0x6558,
                         key=((flow & 0xFFFFFF) << 8) | (nvgre_flowid & 0xFF))
        else:
            udp_port = {"vxlan": VXLAN_PORT, "geneve": GENEVE_PORT,
                        "private-udp": PRIVATE_UDP_PORT}[encap] if port is None else port
            opaque = UDP(sport=udp_sport, dport=udp_port)
            if not udp_csum:
                opaque.chksum = 0
            if encap == "vxlan":
                opaque = opaque / VXLAN(flags=0x08, vni=flow & 0xFFFFFF)
            elif encap == "geneve":
                opt = geneve_option_bytes(geneve_options)
                opaque = opaque / GENEVE(proto=0x6558, vni=flow & 0xFFFFFF,
                                         optionlen=len(opt) // 4) / Raw(opt)
            else:
                if private_header is None:
                    private_header = (flow & 0xFFFF).to_bytes(2, "big") + bytes(
                        range(0xA0, 0xA0 + PRIVATE_HEADER_LEN - 2))
                if len(private_header) != PRIVATE_HEADER_LEN:
                    raise ValueError(f"private_header must be {PRIVATE_HEADER_LEN} bytes")
                opaque = opaque / Raw(private_header)
        proto = 47 if encap.startswith("gre") or encap == "nvgre" else 17
        if outer_ipv6:
            outer = IPv6(src="2001:db8:0:1::1", dst="2001:db8:0:1::2", nh=proto,
                         hlim=outer_ttl, tc=outer_tos)
        else:
            outer = IP(src=outer_src, dst=outer_dst, ttl=outer_ttl, tos=outer_tos,
                       id=outer_id, flags=(2 if outer_df else 0) | (1 if outer_mf else 0),
                       frag=outer_frag, proto=proto, options=_ip_options(outer_options))
        # Build the inner part first so its bytes are final, then wrap (UDP/GRE checksums
        # are computed over exactly these bytes).
        l3 = outer / opaque / Raw(raw(inner))

    eth = Ether(src=eth_src, dst=eth_dst)
    if vlans == 2:
        eth = eth / Dot1AD(vlan=vlan_ids[0]) / Dot1Q(vlan=vlan_ids[1])
    elif vlans == 1:
        eth = eth / Dot1Q(vlan=vlan_ids[0])
    frame = raw(eth / l3)
    if vlans == 2 and qinq_tpid != 0x88A8:
        frame = frame[:12] + qinq_tpid.to_bytes(2, "big") + frame[14:]
    return frame + bytes(max(0, min_size - len(frame)))


def fix_ipv4_checksum(frame, offset):
    """``frame`` with the IPv4 header checksum at ``offset`` recomputed (after a test edited
    the header); the header length comes from its IHL."""
    frame = bytearray(frame)
    hlen = 4 * (frame[offset] & 0xF)
    frame[offset + 10:offset + 12] = b"\0\0"
    frame[offset + 10:offset + 12] = checksum(bytes(frame[offset:offset + hlen])).to_bytes(2, "big")
    return bytes(frame)


# --- Dissection and checks ----------------------------------------------------------------------

def _offset(frame, layer):
    """Byte offset of a dissected scapy layer in ``frame``."""
    return len(frame) - len(layer.original)


def dissect(frame, encap):
    """Scapy's view of ``frame`` as ``encap``: a dict with the scapy layers ``outer`` (IP or
    IPv6), ``opaque`` (bytes between outer and inner IP), ``inner`` (IP/IPv6), ``tcp`` (TCP) and
    ``payload`` (TCP payload bytes, per the inner IP total length), the offsets ``l3``,
    ``opaque_off``, ``inner_l3``, ``l4``, ``payload_off`` and ``vlans``. Layers that are not
    there are None."""
    pkt = Ether(frame)
    out = dict(outer=None, opaque=b"", inner=None, tcp=None, payload=b"", vlans=0,
               l3=None, opaque_off=None, inner_l3=None, l4=None, payload_off=None)
    layer = pkt.payload
    while isinstance(layer, (Dot1Q, Dot1AD)):
        out["vlans"] += 1
        layer = layer.payload
    if not isinstance(layer, (IP, IPv6)):
        return out
    out["outer"], out["l3"] = layer, _offset(frame, layer)
    if encap == "plain":
        inner = layer
        out["opaque_off"] = None
    else:
        out["opaque_off"] = out["l3"] + (layer.ihl * 4 if isinstance(layer, IP) else 40)
        # Re-dissect the outer payload from the frame's own bytes (scapy stops at non-first
        # fragments, and this way offsets are exact).
        end = out["l3"] + (layer.len if isinstance(layer, IP) else 40 + layer.plen)
        body = frame[out["opaque_off"]:end]
        proto = layer.proto if isinstance(layer, IP) else layer.nh
        if proto not in (17, 47) or len(body) < 8:
            return out
        if encap == "private-udp":
            # scapy does not know the private header: the inner IPv4 follows its 12 bytes.
            start = 8 + PRIVATE_HEADER_LEN
            if len(body) <= start:
                return out
            inner = IP(body[start:]) if body[start] >> 4 == 4 else IPv6(body[start:])
        else:
            cand = (GRE if proto == 47 else UDP)(body)
            while cand and not isinstance(cand, (IP, IPv6)):
                cand = cand.payload
            if not cand:
                return out
            inner = cand
            start = len(body) - len(inner.original)
        inner_off = out["opaque_off"] + start
        out["inner"] = inner
        out["inner_l3"] = inner_off
        out["opaque"] = frame[out["opaque_off"]:out["inner_l3"]]
    if encap == "plain":
        out["inner"], out["inner_l3"] = inner, out["l3"]
    tcp = inner.payload
    if isinstance(tcp, TCP):
        out["tcp"] = tcp
        ihl = inner.ihl * 4 if isinstance(inner, IP) else 40
        out["l4"] = out["inner_l3"] + ihl
        out["payload_off"] = out["l4"] + tcp.dataofs * 4
        total = inner.len if isinstance(inner, IP) else inner.plen + 40
        out["payload"] = frame[out["payload_off"]:out["inner_l3"] + total]
    return out


def _check_ipv4(ip, frame, start, end, name, problems):
    """IPv4 header checksum and total length (``end`` = where the datagram should end)."""
    hdr = frame[start:start + ip.ihl * 4]
    if checksum(hdr) != 0:
        problems.append(f"{name} IPv4 header checksum {ip.chksum:#06x} is wrong")
    if ip.len != end - start:
        problems.append(f"{name} IPv4 total length {ip.len} != {end - start} bytes present")


def check_checksums(frame, encap, *, gre_csum=True):
    """Every length and checksum problem of ``frame`` as ``encap`` (an empty list when clean).

    Checked: outer and inner IPv4 header checksums and total lengths (the outer datagram ends
    at the frame end, minus Ethernet padding for frames of 60 bytes; the inner one at the outer
    one's end), the TCP checksum over the inner pseudo-header, the outer UDP length and
    (when non-zero) checksum, the GRE checksum when present (unless ``gre_csum=False``, for
    output of a block that copies a GRE checksum unchanged).
    """
    problems = []
    d = dissect(frame, encap)
    outer, inner, tcp = d["outer"], d["inner"], d["tcp"]
    if outer is None:
        return [f"no outer IP header found for {encap}"]
    if inner is None or tcp is None:
        return problems + [f"no inner IP/TCP found for {encap}"]
    if isinstance(outer, IP):
        outer_end = d["l3"] + outer.len
        if outer_end > len(frame) or (outer_end < len(frame) and len(frame) > 60):
            problems.append(f"outer IPv4 total length {outer.len} does not match the frame "
                            f"({len(frame) - d['l3']} bytes after the Ethernet header)")
        _check_ipv4(outer, frame, d["l3"], min(outer_end, len(frame)), "outer", problems)
    else:
        outer_end = d["l3"] + 40 + outer.plen
    if encap != "plain":
        if isinstance(inner, IP):
            _check_ipv4(inner, frame, d["inner_l3"], outer_end, "inner", problems)
        if isinstance(outer.payload, UDP):
            udp = outer.payload
            udp_bytes = frame[d["opaque_off"]:outer_end]
            if udp.len != len(udp_bytes):
                problems.append(f"UDP length {udp.len} != {len(udp_bytes)}")
            if udp.chksum != 0:
                fixed = udp_bytes[:6] + b"\0\0" + udp_bytes[8:]
                want = in4_chksum(17, outer, fixed) if isinstance(outer, IP) \
                    else in6_chksum(17, outer, fixed)
                want = want or 0xFFFF
                if udp.chksum != want:
                    problems.append(f"UDP checksum {udp.chksum:#06x}, expected {want:#06x}")
        if gre_csum and isinstance(outer.payload, GRE) and outer.payload.chksum_present:
            gre_bytes = frame[d["opaque_off"]:outer_end]
            if checksum(gre_bytes) != 0:
                problems.append("GRE checksum is wrong")
    inner_end = d["inner_l3"] + (inner.len if isinstance(inner, IP) else inner.plen + 40)
    seg = frame[d["l4"]:inner_end]
    fixed = seg[:16] + b"\0\0" + seg[18:]
    want = in4_chksum(6, inner, fixed) if isinstance(inner, IP) else in6_chksum(6, inner, fixed)
    if tcp.chksum != want:
        problems.append(f"TCP checksum {tcp.chksum:#06x}, expected {want:#06x}")
    return problems
