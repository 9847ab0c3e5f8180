"""Classifier profile presets (DESIGN.md section 3), with the values of their RFCs.

Each preset is a dict of :class:`hw.profile.Profile` fields (all of them, explicit zeros
included), ready for :func:`hw.profile.pack_words` or :func:`tunnelnic.model.parse`. Offsets
are relative to the start of the opaque region (the first byte after the outer IPv4 header).

Use :func:`preset` to get a validated copy, with overrides::

    preset("vxlan")                              # VXLAN, UDP checksum zeroed
    preset("private-udp", fmt_value=7100)        # the private encapsulation on port 7100
    preset("private-udp", port=7100)             # same, by the friendlier name

docs/presets.md has the table and the sources.
"""

from hw.profile import FIELDS

__all__ = ["PRESETS", "preset", "describe", "validate", "OPAQUE_BYTES", "PRIVATE_UDP_PORT",
           "VXLAN_PORT", "GENEVE_PORT"]

#: The parser's default opaque capture (bytes); every field must lie inside it.
OPAQUE_BYTES = 64
VXLAN_PORT = 4789        # RFC 7348 section 5 (IANA)
GENEVE_PORT = 6081       # RFC 8926 section 3.3 (IANA)
#: The framework's private UDP encapsulation has no registered port: 7000 is this project's
#: default, override it with ``preset("private-udp", port=N)``.
PRIVATE_UDP_PORT = 7000

_WIDTHS = {name: width for name, _word, _lsb, width in FIELDS}

# Fields every preset shares: enabled, TSO and RSC allowed, IP IDs incrementing, no inner
# Ethernet header (the presets that end with one set ``inner_eth=1``), no check field (the
# UDP presets whose format field is the port set one).
_COMMON = dict(enable=1, tso_en=1, rsc_en=1, ipid_fixed=0, len_mode=0, udp=0, udp_csum=0,
               len_off=0, len_bytes=0, len_shift=0, len_scale=0, len_mask=0, inner_eth=0,
               check_off=0, check_value=0, check_mask=0)

_UDP_DPORT = dict(fmt_off=2, fmt_len=2, fmt_mask=0xFFFF)   # UDP destination port
# VXLAN flags byte (offset 8) and the reserved byte after it: the I flag (0x08) must be set.
_VXLAN_I = dict(check_off=8, check_value=0x0800, check_mask=0x0800)

_DESCRIPTIONS = {}


def _define(name, description, **fields):
    profile = dict(_COMMON)
    profile.update(fields)
    _DESCRIPTIONS[name] = description
    return name, profile


PRESETS = dict([
    _define("gre-key",
            "GRE with key (RFC 2890), inner IPv4: 4-byte base header C=0 K=1 S=0 version 0 "
            "protocol 0x0800, then the 4-byte key (flow).",
            outer_proto=47, opaque_len=8,
            fmt_off=0, fmt_len=4, fmt_value=0x2000_0800, fmt_mask=0xFFFF_FFFF,
            flow_off=4, flow_len=4),
    _define("gre-cks",
            "GRE with checksum, key and sequence number (RFC 2784 + RFC 2890), the framework's "
            "example: base 4 + checksum/reserved 4 + key 4 + sequence 4 = 16 bytes. Format: "
            "flags word 0xB000 (C, K, S set; routing, strict source route, recursion, flags and "
            "version 0) and protocol type 0x0800 (inner IPv4), 0xB000_0800 under mask "
            "0xFFFF_FFFF; flow: the low 2 bytes of the key (offset 10).",
            outer_proto=47, opaque_len=16,
            fmt_off=0, fmt_len=4, fmt_value=0xB000_0800, fmt_mask=0xFFFF_FFFF,
            flow_off=10, flow_len=2),
    _define("nvgre",
            "NVGRE (RFC 7637): GRE 8 (K=1, protocol 0x6558 Transparent Ethernet Bridging) + "
            "inner Ethernet 14 (its EtherType must be 0x0800); flow: the 24-bit VSID (key "
            "bytes 0-2, offset 4).",
            outer_proto=47, opaque_len=22, inner_eth=1,
            fmt_off=0, fmt_len=4, fmt_value=0x2000_6558, fmt_mask=0xFFFF_FFFF,
            flow_off=4, flow_len=3),
    _define("vxlan",
            "VXLAN (RFC 7348): UDP 8 + VXLAN 8 + inner Ethernet 14 = 30 (inner EtherType must "
            "be 0x0800); format: UDP destination port 4789; check: the I flag (0x08 of "
            "byte 8, the VNI is valid); flow: the 24-bit VNI (offset 12); UDP length fixed "
            "up, checksum zeroed.",
            outer_proto=17, opaque_len=30, udp=1, udp_csum=0, inner_eth=1,
            fmt_value=VXLAN_PORT, flow_off=12, flow_len=3, **_UDP_DPORT, **_VXLAN_I),
    _define("vxlan-csum",
            "VXLAN (RFC 7348) as 'vxlan', with the outer UDP checksum recomputed.",
            outer_proto=17, opaque_len=30, udp=1, udp_csum=1, inner_eth=1,
            fmt_value=VXLAN_PORT, flow_off=12, flow_len=3, **_UDP_DPORT, **_VXLAN_I),
    _define("geneve",
            "Geneve (RFC 8926): UDP 8 + Geneve 8 + options (Opt Len, low 6 bits of byte 8, in "
            "4-byte words) + inner Ethernet 14 (EtherType must be 0x0800): length "
            "(byte 8 & 0x3F) * 4 + 30; format: UDP destination port 6081; check: the "
            "protocol type (offset 10) is 0x6558 (Ethernet); flow: the 24-bit VNI "
            "(offset 12); UDP checksum zeroed.",
            outer_proto=17, len_mode=1, len_off=8, len_bytes=1, len_mask=0x3F, len_shift=0,
            len_scale=2, opaque_len=30, udp=1, udp_csum=0, inner_eth=1,
            check_off=10, check_value=0x6558, check_mask=0xFFFF,
            fmt_value=GENEVE_PORT, flow_off=12, flow_len=3, **_UDP_DPORT),
    _define("private-udp",
            "The framework's private UDP encapsulation: UDP 8 + a 12-byte private header = 20; "
            f"format: UDP destination port (configurable, default {PRIVATE_UDP_PORT}); flow: "
            "the slot ids (configurable, default offset 8, 2 bytes: the first 2 bytes of the "
            "private header).",
            outer_proto=17, opaque_len=20, udp=1, udp_csum=0,
            fmt_value=PRIVATE_UDP_PORT, flow_off=8, flow_len=2, **_UDP_DPORT),
])

# Friendly override names -> profile fields.
_ALIASES = {"port": "fmt_value", "proto": "outer_proto"}


def validate(profile, opaque_bytes=OPAQUE_BYTES):
    """Raise ``ValueError`` unless ``profile`` is a well-formed profile for this parser."""
    for name, value in profile.items():
        if name not in _WIDTHS:
            raise ValueError(f"unknown profile field {name!r} (known: {', '.join(_WIDTHS)})")
        if not isinstance(value, int):
            raise ValueError(f"profile field {name} must be an int, got {value!r}")
        if not 0 <= value < (1 << _WIDTHS[name]):
            raise ValueError(f"profile field {name}={value} does not fit its "
                             f"{_WIDTHS[name]}-bit register field")
    g = lambda name: profile.get(name, 0)
    if not 1 <= g("fmt_len") <= 4:
        raise ValueError(f"fmt_len={g('fmt_len')} must be 1..4")
    if g("fmt_off") + g("fmt_len") > opaque_bytes:
        raise ValueError(f"format field (fmt_off={g('fmt_off')}, fmt_len={g('fmt_len')}) "
                         f"extends past the {opaque_bytes}-byte opaque capture")
    if g("fmt_value") & ~g("fmt_mask") & 0xFFFF_FFFF:
        raise ValueError(f"fmt_value={g('fmt_value'):#x} has bits outside fmt_mask="
                         f"{g('fmt_mask'):#x} (they would be ignored)")
    if g("fmt_mask") >> (8 * g("fmt_len")):
        raise ValueError(f"fmt_mask={g('fmt_mask'):#x} is wider than fmt_len={g('fmt_len')} "
                         "bytes")
    if not 0 <= g("flow_len") <= 4:
        raise ValueError(f"flow_len={g('flow_len')} must be 0..4")
    if g("flow_len") and g("flow_off") + g("flow_len") > opaque_bytes:
        raise ValueError(f"flow field (flow_off={g('flow_off')}, flow_len={g('flow_len')}) "
                         f"extends past the {opaque_bytes}-byte opaque capture")
    if g("len_mode"):
        if g("len_bytes") not in (1, 2):
            raise ValueError(f"len_bytes={g('len_bytes')} must be 1 or 2")
        if g("len_off") + g("len_bytes") > opaque_bytes:
            raise ValueError(f"length field (len_off={g('len_off')}, len_bytes="
                             f"{g('len_bytes')}) extends past the {opaque_bytes}-byte "
                             "opaque capture")
        if g("len_mask") == 0:
            raise ValueError("len_mode=1 with len_mask=0: the length would never vary")
    if g("check_mask") and g("check_off") + 2 > opaque_bytes:
        raise ValueError(f"check field (check_off={g('check_off')}, 2 bytes) extends past the "
                         f"{opaque_bytes}-byte opaque capture")
    if g("check_value") & ~g("check_mask"):
        raise ValueError(f"check_value={g('check_value'):#x} has bits outside check_mask="
                         f"{g('check_mask'):#x} (they would be ignored)")
    if g("udp") and g("opaque_len") < 8:
        raise ValueError("udp=1 needs at least 8 opaque bytes (the UDP header)")
    if g("udp_csum") and not g("udp"):
        raise ValueError("udp_csum=1 needs udp=1")
    if g("inner_eth") and g("opaque_len") < 14:
        raise ValueError("inner_eth=1 needs opaque_len >= 14 (the inner Ethernet header)")
    return profile


def preset(name, *, opaque_bytes=OPAQUE_BYTES, **overrides):
    """A validated copy of preset ``name`` with ``overrides`` applied.

    ``overrides`` are profile fields (``fmt_value=7100``, ``flow_off=10``, ``flow_len=4``...)
    or the aliases ``port`` (= ``fmt_value``) and ``proto`` (= ``outer_proto``).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    profile = dict(PRESETS[name])
    for key, value in overrides.items():
        key = _ALIASES.get(key, key)
        if key not in _WIDTHS:
            raise ValueError(f"unknown profile field {key!r} in override for preset {name!r}")
        profile[key] = value
    return validate(profile, opaque_bytes)


def describe(name):
    """One paragraph: what preset ``name`` recognises, and its field values."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    p = PRESETS[name]
    if p["len_mode"]:
        length = (f"variable: ((bytes {p['len_off']}..+{p['len_bytes']} & {p['len_mask']:#x}) "
                  f">> {p['len_shift']} << {p['len_scale']}) + {p['opaque_len']}")
    else:
        length = f"{p['opaque_len']} bytes"
    flow = (f"off {p['flow_off']}, {p['flow_len']} B" if p["flow_len"] else "none")
    return (f"{name}: {_DESCRIPTIONS[name]}\n"
            f"  outer proto {p['outer_proto']}; opaque length {length}; format off "
            f"{p['fmt_off']}, {p['fmt_len']} B = {p['fmt_value']:#x} mask {p['fmt_mask']:#x}; "
            f"flow {flow}; udp {p['udp']} udp_csum {p['udp_csum']}; tso_en {p['tso_en']} "
            f"rsc_en {p['rsc_en']} ipid_fixed {p['ipid_fixed']} inner_eth {p['inner_eth']}"
            + (f"; check off {p['check_off']}, 2 B = {p['check_value']:#x} mask "
               f"{p['check_mask']:#x}" if p["check_mask"] else ""))
