"""Header layouts: what the parser and classifier tell every later block about a packet.

The parser output stream (:func:`parsed_signature`) carries a :class:`ParseRecord` as ``meta``
on every beat of a packet, constant over the packet. The record is complete when the first beat
leaves the parser. Numbers are host integers (already converted from wire byte order); offsets
are byte offsets from the first byte of the frame.

Which headers are what
----------------------
``outer``  the first IPv4 header after Ethernet (and up to two VLAN tags).
``inner``  the IPv4 header that carries the TCP segment: for a tunneled packet the header
           after the opaque region, for plain TCP the *same* header as ``outer`` (so TSO and
           RSC treat ``inner``/``tcp`` uniformly and apply outer fix-ups only when
           ``cls.kind == Kind.TUNNEL``).
``tcp``    the TCP header at ``off.l4``.

Frame length and payload bytes are not in the record: a block that needs them (TSO, RSC)
counts the beats itself. The parser only flags frames that end inside their headers
(``err.truncated``) or inside the header window before the IP total length is reached
(``err.short_frame``).
"""

from amaranth import *
from amaranth.lib import data, enum, stream

from .stream import packet_layout

__all__ = ["OFFSET_BITS", "Kind", "Reason", "EthFields", "Ipv4Fields", "TcpFields",
           "Offsets", "Errors", "Classification", "ParseRecord", "TsoRequest", "parsed_layout",
           "parsed_signature",
           "TCP_FIN", "TCP_SYN", "TCP_RST", "TCP_PSH", "TCP_ACK", "TCP_URG", "TCP_ECE",
           "TCP_CWR"]

#: Width of every byte offset in the record: header windows up to 1023 bytes.
OFFSET_BITS = 10

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = (1 << i for i in range(8))


class Kind(enum.Enum, shape=2):
    """What the classifier decided a packet is."""
    OTHER = 0   #: not offloadable (see ``cls.reason``): pass through unchanged
    PLAIN = 1   #: plain TCP over IPv4, no profile matched
    TUNNEL = 2  #: a profile matched: outer IPv4 | opaque | inner IPv4 | TCP


class Reason(enum.Enum, shape=4):
    """Why a packet is ``Kind.OTHER`` (the first reason found, in this priority order)."""
    NONE = 0          #: offloadable
    NOT_IP = 1        #: ethertype is neither IPv4 nor IPv6 (ARP, LLDP...)
    IPV6 = 2          #: outer or inner IPv6: recognised, unsupported for now
    INNER_ETHERTYPE = 3  #: the profile's inner Ethernet header (``inner_eth``) is not IPv4
    TRUNCATED = 4     #: frame ended inside its headers
    BAD_IHL = 5       #: an IPv4 IHL below 5, or a version field that is not 4 where 4 is needed
    WINDOW = 6        #: headers extend beyond the parser's header window
    FRAGMENT = 7      #: an IPv4 header has MF set or a non-zero fragment offset
    IP_OPTIONS = 8    #: an IPv4 header has options (IHL > 5)
    NOT_TCP = 9       #: no profile matched and the outer protocol is not TCP, or inner not TCP
    FIELD_OUTSIDE = 10  #: the matched profile's flow/length field lies outside the capture
    BAD_LENGTH = 11   #: IP total length smaller than its headers, or the opaque length invalid
    TCP_DOFF = 12     #: TCP data offset below 5


class EthFields(data.Struct):
    dst: 48
    src: 48
    vlans: 2        #: number of 802.1Q/802.1ad tags (0..2)
    tci0: 16        #: first tag's TCI (0 if none)
    tci1: 16
    ethertype: 16   #: the final ethertype (after tags)


class Ipv4Fields(data.Struct):
    """One IPv4 header; ``present`` is 0 when no IPv4 header was found where it should be."""
    present: 1
    version: 4
    ihl: 4
    tos: 8
    total_len: 16
    ident: 16
    flags: 3        #: bit 2 = reserved, bit 1 = DF, bit 0 = MF (as on the wire)
    frag_off: 13
    ttl: 8
    proto: 8
    csum: 16
    src: 32
    dst: 32
    csum_ok: 1      #: the header checksum (options included) verifies


class TcpFields(data.Struct):
    present: 1
    sport: 16
    dport: 16
    seq: 32
    ack: 32
    doff: 4         #: data offset in 32-bit words
    rsv: 4          #: reserved bits and NS (low nibble of byte 12)
    flags: 8        #: CWR ECE URG ACK PSH RST SYN FIN (bit 7 .. bit 0)
    window: 16
    csum: 16
    urg: 16


class Offsets(data.Struct):
    """Byte offsets from the start of the frame (0 where the header is absent)."""
    l3: OFFSET_BITS        #: outer IPv4 (14, 18 or 22)
    opaque: OFFSET_BITS    #: start of the opaque region (= l3 + 4*ihl)
    inner_l3: OFFSET_BITS  #: inner IPv4 (= opaque + opaque_len; = l3 for plain TCP)
    l4: OFFSET_BITS        #: TCP header
    payload: OFFSET_BITS   #: first TCP payload byte


class Errors(data.Struct):
    """Everything suspicious the parser saw, independently of the classification."""
    truncated: 1         #: frame ended inside a header it needed
    short_frame: 1       #: frame ended (within the window) before the outer IP total length
    outer_bad_ihl: 1
    inner_bad_ihl: 1
    outer_bad_csum: 1
    inner_bad_csum: 1
    outer_bad_len: 1     #: outer total length < its header length
    inner_bad_len: 1     #: inner total length < IHL*4 + doff*4, or > outer room
    window: 1            #: headers went past the header window


class Classification(data.Struct):
    kind: Kind
    reason: Reason
    profile: 3              #: matched profile index (valid for Kind.TUNNEL)
    opaque_len: OFFSET_BITS #: bytes between outer IPv4 header and inner IPv4 header
    flow: 32                #: the profile's flow field, right-aligned big-endian (0 if none)
    tso_ok: 1               #: TSO may segment this packet (profile/plain and header checks)
    rsc_ok: 1               #: RSC may merge it (as tso_ok, and both IPv4 checksums valid)
    udp: 1                  #: the opaque region starts with a UDP header to fix up
    udp_csum: 1             #: ... whose checksum is recomputed (else written as zero)
    ipid_fixed: 1           #: IP IDs stay fixed (else increment per segment)


def ParseRecord(opaque_bytes=64):
    """The full record layout, with the opaque region capture of ``opaque_bytes`` bytes.

    ``opaque`` holds the first ``opaque_bytes`` bytes after the outer IPv4 header in wire order
    (byte 0 in bits 0..7, like a beat), zero past the end of the frame.
    """
    return data.StructLayout({
        "eth": EthFields,
        "outer": Ipv4Fields,
        "inner": Ipv4Fields,
        "tcp": TcpFields,
        "off": Offsets,
        "payload_len": 16,    #: inner total length - inner IHL*4 - doff*4 (TCP payload bytes)
        "err": Errors,
        "cls": Classification,
        "opaque": 8 * opaque_bytes,
    })


class TsoRequest(data.Struct):
    """TX per-packet request (the host's descriptor bits), carried as ``user`` to the TSO.

    ``mss == 0`` means "use the default MSS register".
    """
    tso: 1
    mss: 14


def parsed_layout(width, opaque_bytes=64, user=None):
    """Payload of the parser's output: packet beat, ``meta`` = :func:`ParseRecord`, and the
    input stream's own ``meta`` passed through unchanged as ``user`` (when there is one)."""
    layout = dict(packet_layout(width, ParseRecord(opaque_bytes)).members)
    if user is not None:
        layout["user"] = user
    return data.StructLayout(layout)


def parsed_signature(width, opaque_bytes=64, user=None):
    """Packet stream whose ``meta`` is a :func:`ParseRecord` (see :func:`parsed_layout`)."""
    return stream.Signature(parsed_layout(width, opaque_bytes, user))
