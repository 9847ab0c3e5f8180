"""The classifier profile: how to recognise one encapsulation and where its flow lives.

All offsets are relative to the start of the opaque region (the first byte after the outer
IPv4 header) and must lie inside the parser's opaque capture (``OPAQUE_BYTES``, default 64).
Multi-byte fields are big-endian, right-aligned in their register.

Opaque length: ``len_mode == 0``: ``opaque_len`` bytes. ``len_mode == 1``: read ``len_bytes``
(1 or 2) bytes at ``len_off`` as a big-endian number ``v``; the length is
``(((v & len_mask) >> len_shift) << len_scale) + opaque_len`` (Geneve: byte 8, mask 0x3F,
shift 0, scale 2, base 30).

Format: ``fmt_len`` (1..4) bytes at ``fmt_off``; the profile matches when
``(field & fmt_mask) == (fmt_value & fmt_mask)`` and the outer IPv4 protocol is
``outer_proto``. Flow: ``flow_len`` (0..4, 0 = none) bytes at ``flow_off``.

Check: a second compare that is part of the match, on the 2 bytes at ``check_off`` (for the
UDP encapsulations, whose format field is the destination port: Geneve's protocol type,
VXLAN's I flag). With ``check_mask != 0`` the profile matches only if those bytes lie inside
the capture and the frame (as the format field) and ``(field & check_mask) == (check_value &
check_mask)``; ``check_mask == 0`` (reset) checks nothing.

Inner Ethernet: with ``inner_eth`` the opaque region ends with an inner Ethernet header
(NVGRE, VXLAN, Geneve), and the packet is offloadable only if that header's EtherType (the
two bytes just before the inner IPv4 header) is 0x0800; otherwise, or when the fixed length
(the base in variable mode) ``opaque_len`` is below 14 and so cannot hold an Ethernet header,
the reason is ``INNER_ETHERTYPE`` (docs/parse-record.md).

The profile is also stored as :data:`WORDS` 32-bit words; :data:`FIELDS` says where each field
sits, and is what register maps and drivers are built from.
"""

from amaranth import *
from amaranth.lib import data

__all__ = ["Profile", "FIELDS", "WORDS", "pack_words", "unpack_words"]


class Profile(data.Struct):
    enable: 1
    outer_proto: 8
    len_mode: 1
    udp: 1
    udp_csum: 1
    tso_en: 1
    rsc_en: 1
    ipid_fixed: 1
    inner_eth: 1     #: the opaque region ends with an inner Ethernet header: check its type
    opaque_len: 10   #: fixed opaque length, or the base added in variable mode
    len_off: 6
    len_bytes: 2     #: 1 or 2
    len_shift: 4
    len_scale: 2
    len_mask: 16
    fmt_off: 6
    fmt_len: 3       #: 1..4
    flow_off: 6
    flow_len: 3      #: 0..4
    fmt_value: 32
    fmt_mask: 32
    check_off: 6     #: 2 bytes at this offset ...
    check_value: 16  #: ... compared with this value ...
    check_mask: 16   #: ... under this mask (0: no check)


#: (field, word, lsb, width): where each field sits in the profile's 32-bit register words.
FIELDS = (
    ("enable", 0, 0, 1), ("len_mode", 0, 1, 1), ("udp", 0, 2, 1), ("udp_csum", 0, 3, 1),
    ("tso_en", 0, 4, 1), ("rsc_en", 0, 5, 1), ("ipid_fixed", 0, 6, 1),
    ("inner_eth", 0, 7, 1),
    ("outer_proto", 0, 8, 8), ("opaque_len", 0, 16, 10),
    ("len_off", 1, 0, 6), ("len_bytes", 1, 6, 2), ("len_shift", 1, 8, 4), ("len_scale", 1, 12, 2),
    ("len_mask", 1, 16, 16),
    ("fmt_off", 2, 0, 6), ("fmt_len", 2, 8, 3), ("flow_off", 2, 16, 6), ("flow_len", 2, 24, 3),
    ("fmt_value", 3, 0, 32),
    ("fmt_mask", 4, 0, 32),
    ("check_off", 5, 0, 6),
    ("check_value", 6, 0, 16), ("check_mask", 6, 16, 16),
)
WORDS = 7


def pack_words(fields):
    """Host side: a dict of profile fields -> list of :data:`WORDS` register words."""
    words = [0] * WORDS
    for name, word, lsb, width in FIELDS:
        value = int(fields.get(name, 0))
        if not 0 <= value < (1 << width):
            raise ValueError(f"profile field {name}={value} does not fit {width} bits")
        words[word] |= value << lsb
    return words


def unpack_words(words):
    """Host side: register words -> dict of profile fields."""
    return {name: (words[word] >> lsb) & ((1 << width) - 1) for name, word, lsb, width in FIELDS}
