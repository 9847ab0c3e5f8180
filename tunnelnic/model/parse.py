"""Reference model of the parser and classifier: frame bytes + profile table -> parse record.

This module *is* the executable form of docs/parse-record.md; comments quote the rule each line
implements ("spec: ..."). The RTL (hw/parser.py, hw/classifier.py) is tested for bit-exact
agreement with :func:`parse`, so readability beats speed here.

The result is a nested dict with exactly the field names of :func:`hw.layouts.ParseRecord`
(``eth``/``outer``/``inner``/``tcp``/``off``/``payload_len``/``err``/``cls``/``opaque``), every
value an ``int`` (enums as their values, ``opaque`` as the little-endian integer of the captured
bytes: byte 0 in bits 0..7, like a beat). :func:`tunnelnic.model.record.encode_record` turns it
into the bits of the layout.

Readings of the spec where the text leaves room (the parser RTL, hw/classifier.py, reads them
the same way):

* A profile field (length or flow) with ``off + len > C`` is FIELD_OUTSIDE *only*: it never
  raises ``truncated``/``window`` (spec: "A field that is outside only the capture ... is not a
  window error, only FIELD_OUTSIDE"). A field inside the capture but not available in the frame
  is both FIELD_OUTSIDE and a needed region (``truncated``/``window``).
* ``flow_len`` 5..7 and ``len_bytes`` 0 or 3 (the register widths allow them, the spec's ranges
  do not) make the field FIELD_OUTSIDE, like a field outside the capture.
* With FIELD_OUTSIDE on the length field, ``n = 0``, so ``off.inner_l3 = off.opaque`` (the
  formula ``inner_l3 = opaque + n`` is applied for every matched profile); no inner header is
  parsed.
* ``inner_bad_ihl``: a present tunnel inner header with version not 6 and (version != 4 or
  ``ihl < 5``); for plain TCP it is 0 (the outer bit covers the one header).
* ``off.opaque`` and the ``opaque`` capture are set for every valid outer header, plain TCP
  included (they then hold the TCP header), as the spec's outer rule says.
* ``inner_eth``: the EtherType is read at ``inner_l3 - 2`` (the end of the opaque region,
  wherever a variable length puts it, also past the capture ``C``); it is not a needed region
  of its own (it lies before the inner header, which is one).
"""

from hw.layouts import OFFSET_BITS, Kind, Reason

__all__ = ["parse", "flow_key", "ETH_VLAN_TPIDS", "ETHERTYPE_IPV4", "ETHERTYPE_IPV6", "IPPROTO_TCP",
           "ones_sum", "empty_record"]

ETH_VLAN_TPIDS = (0x8100, 0x88A8)
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_TCP = 6
OFF_MASK = (1 << OFFSET_BITS) - 1

IPV4_FIELDS = ("present", "version", "ihl", "tos", "total_len", "ident", "flags", "frag_off",
               "ttl", "proto", "csum", "src", "dst", "csum_ok")
TCP_FIELDS = ("present", "sport", "dport", "seq", "ack", "doff", "rsv", "flags", "window",
              "csum", "urg")


def empty_record():
    """A record with every field 0 (the starting point of :func:`parse`)."""
    return {
        "eth": dict.fromkeys(("dst", "src", "vlans", "tci0", "tci1", "ethertype"), 0),
        "outer": dict.fromkeys(IPV4_FIELDS, 0),
        "inner": dict.fromkeys(IPV4_FIELDS, 0),
        "tcp": dict.fromkeys(TCP_FIELDS, 0),
        "off": dict.fromkeys(("l3", "opaque", "inner_l3", "l4", "payload"), 0),
        "payload_len": 0,
        "err": dict.fromkeys(("truncated", "short_frame", "outer_bad_ihl", "inner_bad_ihl",
                              "outer_bad_csum", "inner_bad_csum", "outer_bad_len",
                              "inner_bad_len", "window"), 0),
        "cls": dict.fromkeys(("kind", "reason", "profile", "opaque_len", "flow", "tso_ok",
                              "rsc_ok", "udp", "udp_csum", "ipid_fixed"), 0),
        "opaque": 0,
    }


def ones_sum(data):
    """Folded 16-bit one's-complement sum of big-endian words (RFC 1071), odd length padded."""
    if len(data) % 2:
        data = data + b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


class _Window:
    """The frame as the parser sees it: ``frame[:L]`` with ``L = min(F, H)``, zero-extended.

    spec: "Every byte read at or beyond L reads as 0"; a region ``[a, b)`` is available when
    ``b <= L``; a needed region that is not available is ``truncated`` when ``F <= H``, else
    beyond the ``window``.
    """

    def __init__(self, frame, header_window):
        self.F = len(frame)
        self.H = header_window
        self.L = min(self.F, self.H)
        self.visible = bytes(frame[:self.L])
        self.truncated = False
        self.window = False

    def read(self, start, length):
        """``length`` bytes at ``start``, zero past L."""
        chunk = self.visible[start:start + length] if start < self.L else b""
        return chunk + bytes(length - len(chunk))

    def be(self, start, length):
        return int.from_bytes(self.read(start, length), "big")

    def available(self, start, end):
        return end <= self.L

    def need(self, start, end):
        """Record a needed region; returns whether it is available."""
        if self.available(start, end):
            return True
        if self.F <= self.H:
            self.truncated = True
        else:
            self.window = True
        return False


# --- Ethernet -----------------------------------------------------------------------------------

def _parse_eth(win, eth):
    """spec: dst 0-5, src 6-11, ethertype t at 12-13, then up to two 802.1Q/802.1ad tags."""
    eth["dst"] = win.be(0, 6)
    eth["src"] = win.be(6, 6)
    t = win.be(12, 2)
    vlans = 0
    while t in ETH_VLAN_TPIDS and vlans < 2:
        pos = 14 + 4 * vlans
        eth[f"tci{vlans}"] = win.be(pos, 2)   # "tci<vlans> = the 2 bytes after t"
        t = win.be(pos + 2, 2)                 # "t = the next 2"
        vlans += 1
    eth["vlans"] = vlans
    eth["ethertype"] = t
    l3 = 14 + 4 * vlans                        # "l3 = 14 + 4*vlans (always set)"
    win.need(0, l3)                            # "Needed region [0, l3)"
    return t, l3


# --- IPv4 ---------------------------------------------------------------------------------------

def _capture_ipv4(win, pos, ip):
    """Capture the 20 fixed bytes at ``pos`` raw into ``ip`` (present = 1)."""
    h = win.read(pos, 20)
    ip["present"] = 1
    ip["version"] = h[0] >> 4
    ip["ihl"] = h[0] & 0xF
    ip["tos"] = h[1]
    ip["total_len"] = int.from_bytes(h[2:4], "big")
    ip["ident"] = int.from_bytes(h[4:6], "big")
    ip["flags"] = h[6] >> 5                                  # top 3 bits of byte 6
    ip["frag_off"] = int.from_bytes(h[6:8], "big") & 0x1FFF  # low 13 bits of bytes 6-7
    ip["ttl"] = h[8]
    ip["proto"] = h[9]
    ip["csum"] = int.from_bytes(h[10:12], "big")
    ip["src"] = int.from_bytes(h[12:16], "big")
    ip["dst"] = int.from_bytes(h[16:20], "big")
    # spec: csum_ok iff present, the ihl*4 region is available and sums to 0xFFFF (ihl >= 5).
    hlen = 4 * ip["ihl"]
    ip["csum_ok"] = int(ip["ihl"] >= 5 and win.available(pos, pos + hlen)
                        and ones_sum(win.read(pos, hlen)) == 0xFFFF)


def _ipv4_valid(ip):
    """spec: valid iff present, version == 4 and ihl >= 5."""
    return bool(ip["present"]) and ip["version"] == 4 and ip["ihl"] >= 5


def _ipv4_fragment(ip):
    """spec (FRAGMENT): MF set or frag_off != 0."""
    return bool(ip["flags"] & 1) or ip["frag_off"] != 0


# --- Classifier ---------------------------------------------------------------------------------

def _field(win, opaque_start, capture, off, length):
    """A big-endian profile field at ``off`` in the opaque region.

    Returns ``(value, inside)``: inside iff it lies within the capture (``off + length <= C``)
    and within the frame (``opaque + off + length <= L``). The needed-region bookkeeping is the
    caller's (format fields are not needed regions; length and flow fields are).
    """
    in_capture = off + length <= capture
    in_frame = win.available(opaque_start + off, opaque_start + off + length)
    if not (in_capture and in_frame):
        return 0, False
    return win.be(opaque_start + off, length), True


def _matches(win, opaque_start, capture, outer, prof):
    """spec: profile p matches iff outer valid, enable, proto, format field inside capture and
    frame with 1 <= fmt_len <= 4, and (field & fmt_mask) == (fmt_value & fmt_mask); and, when
    check_mask != 0, the 2-byte check field inside capture and frame with
    (check & check_mask) == (check_value & check_mask)."""
    if prof is None or not prof.get("enable", 0):
        return False
    if outer["proto"] != prof.get("outer_proto", 0):
        return False
    fmt_len = prof.get("fmt_len", 0)
    if not 1 <= fmt_len <= 4:
        return False
    value, inside = _field(win, opaque_start, capture, prof.get("fmt_off", 0), fmt_len)
    if not inside:
        return False
    mask = prof.get("fmt_mask", 0)
    if (value & mask) != (prof.get("fmt_value", 0) & mask):
        return False
    # Check field (Geneve's protocol type, VXLAN's I flag): mask 0 checks nothing.
    check_mask = prof.get("check_mask", 0)
    if check_mask == 0:
        return True
    value, inside = _field(win, opaque_start, capture, prof.get("check_off", 0), 2)
    return inside and (value & check_mask) == (prof.get("check_value", 0) & check_mask)


def _needed_field(win, opaque_start, capture, off, length, length_ok):
    """A matched profile's length or flow field: returns ``(value, field_outside)``.

    Inside the capture it is a needed region (truncated/window when beyond L); outside the
    capture it is only FIELD_OUTSIDE (see the module docstring for this reading).
    """
    if not length_ok or off + length > capture:
        return 0, True
    start = opaque_start + off
    if not win.need(start, start + length):
        return 0, True
    return win.be(start, length), False


def _classify(win, capture, opaque_start, prof):
    """The matched profile's opaque length ``n`` and flow; returns (n, flow, len_outside,
    flow_outside)."""
    g = lambda name: prof.get(name, 0)
    # Opaque length n.
    len_outside = False
    if g("len_mode") == 0:
        n = g("opaque_len")
    else:
        v, len_outside = _needed_field(win, opaque_start, capture, g("len_off"), g("len_bytes"),
                                       g("len_bytes") in (1, 2))
        if len_outside:
            n = 0                                              # "(and n = 0)"
        else:
            n = (((v & g("len_mask")) >> g("len_shift")) << g("len_scale")) + g("opaque_len")
    # Flow field (flow_len 0 = none).
    flow, flow_outside = 0, False
    if g("flow_len") > 0:
        flow, flow_outside = _needed_field(win, opaque_start, capture, g("flow_off"),
                                           g("flow_len"), g("flow_len") <= 4)
    return n, flow, len_outside, flow_outside


# --- The whole record ---------------------------------------------------------------------------

def parse(frame, profiles, *, header_window=256, opaque_bytes=64):
    """The parse record of ``frame`` under the profile table ``profiles``.

    Parameters
    ----------
    frame : bytes
        The frame, without preamble or FCS.
    profiles : list of (dict or None)
        The P profiles in priority order; each a dict of :class:`hw.profile.Profile` fields
        (missing keys read as 0) or ``None`` (disabled).
    header_window : int
        H, the parser's header window in bytes.
    opaque_bytes : int
        C, the number of opaque bytes captured.
    """
    if len(profiles) > 8:
        raise ValueError(f"at most 8 profiles (cls.profile is 3 bits), got {len(profiles)}")
    if header_window < 1 or opaque_bytes < 1:
        raise ValueError("header_window and opaque_bytes must be positive")
    rec = empty_record()
    eth, outer, inner, tcp = rec["eth"], rec["outer"], rec["inner"], rec["tcp"]
    off, err, cls = rec["off"], rec["err"], rec["cls"]
    win = _Window(frame, header_window)
    C = opaque_bytes

    # Ethernet.
    t, l3 = _parse_eth(win, eth)
    off["l3"] = l3

    # Outer IPv4: present iff t == 0x0800 and [l3, l3+20) available (a needed region).
    if t == ETHERTYPE_IPV4 and win.need(l3, l3 + 20):
        _capture_ipv4(win, l3, outer)
    outer_valid = _ipv4_valid(outer)
    opaque_start = 0
    if outer_valid:
        opaque_start = l3 + 4 * outer["ihl"]
        win.need(l3, opaque_start)
        # opaque: frame[off.opaque : off.opaque + C], zero-extended, zero at or past L.
        rec["opaque"] = int.from_bytes(win.read(opaque_start, C), "little")
    off["opaque"] = opaque_start

    # Classifier: the first enabled profile that matches wins.
    matched = None
    if outer_valid:
        for p, prof in enumerate(profiles):
            if _matches(win, opaque_start, C, outer, prof):
                matched = p
                break

    tunnel = matched is not None
    plain = not tunnel and outer_valid and outer["proto"] == IPPROTO_TCP
    field_outside = False
    inner_l3 = 0          # full width; the record keeps it mod 1024
    inner_parsed = False  # a tunnel inner header was looked for
    if tunnel:
        prof = profiles[matched]
        n, flow, len_outside, flow_outside = _classify(win, C, opaque_start, prof)
        field_outside = len_outside or flow_outside
        cls["profile"] = matched
        cls["udp"] = prof.get("udp", 0)
        cls["udp_csum"] = prof.get("udp_csum", 0)
        cls["ipid_fixed"] = prof.get("ipid_fixed", 0)
        cls["flow"] = flow
        cls["opaque_len"] = n & OFF_MASK
        inner_l3 = opaque_start + n
        # Inner IPv4 (tunnel): only when no FIELD_OUTSIDE on the length.
        if not len_outside:
            inner_parsed = True
            if win.need(inner_l3, inner_l3 + 20):
                _capture_ipv4(win, inner_l3, inner)
    elif plain:
        # Plain TCP: inner is a copy of outer (all fields, present, csum_ok).
        inner_l3 = l3
        inner.update(outer)
    off["inner_l3"] = inner_l3 & OFF_MASK

    # Inner Ethernet (profile inner_eth): the two bytes before the inner header are its
    # EtherType and must be 0x0800. Checked only when the inner header is looked for, and only
    # when those bytes are available (else the inner header is not either: truncated/window);
    # a profile whose opaque_len (the base in variable mode) is below 14 has no room for an
    # Ethernet header and always fails.
    inner_eth_bad = False
    if inner_parsed and prof.get("inner_eth", 0):
        inner_eth_bad = (prof.get("opaque_len", 0) < 14
                         or (win.available(inner_l3 - 2, inner_l3)
                             and win.be(inner_l3 - 2, 2) != ETHERTYPE_IPV4))

    inner_valid = _ipv4_valid(inner)
    if tunnel and inner_valid:
        win.need(inner_l3, inner_l3 + 4 * inner["ihl"])

    # TCP: at inner_l3 + 4*ihl iff inner valid and inner.proto == 6.
    tcp_doff_ok = False
    l4 = 0
    if inner_valid and inner["proto"] == IPPROTO_TCP:
        l4 = inner_l3 + 4 * inner["ihl"]
        if win.need(l4, l4 + 20):
            h = win.read(l4, 20)
            tcp.update(present=1, sport=int.from_bytes(h[0:2], "big"),
                       dport=int.from_bytes(h[2:4], "big"),
                       seq=int.from_bytes(h[4:8], "big"), ack=int.from_bytes(h[8:12], "big"),
                       doff=h[12] >> 4, rsv=h[12] & 0xF, flags=h[13],
                       window=int.from_bytes(h[14:16], "big"),
                       csum=int.from_bytes(h[16:18], "big"), urg=int.from_bytes(h[18:20], "big"))
            if tcp["doff"] >= 5:
                tcp_doff_ok = True
                payload = l4 + 4 * tcp["doff"]
                win.need(l4, payload)
                off["payload"] = payload & OFF_MASK
                plen = inner["total_len"] - 4 * inner["ihl"] - 4 * tcp["doff"]
                rec["payload_len"] = plen if plen >= 0 else 0
    off["l4"] = l4 & OFF_MASK

    # Errors.
    err["truncated"] = int(win.truncated)
    err["window"] = int(win.window)
    err["short_frame"] = int(outer_valid and win.F <= win.H
                             and win.F < l3 + outer["total_len"])
    err["outer_bad_ihl"] = int(bool(outer["present"]) and not outer_valid)
    inner_v6 = inner_parsed and bool(inner["present"]) and inner["version"] == 6
    err["inner_bad_ihl"] = int(inner_parsed and bool(inner["present"]) and not inner_valid
                               and not inner_v6)
    err["outer_bad_csum"] = int(outer_valid and not outer["csum_ok"])
    if plain:
        err["inner_bad_csum"] = err["outer_bad_csum"]
    else:
        err["inner_bad_csum"] = int(inner_parsed and inner_valid and not inner["csum_ok"])
    err["outer_bad_len"] = int(outer_valid and outer["total_len"] < 4 * outer["ihl"])
    inner_bad_len = (tcp_doff_ok
                     and inner["total_len"] < 4 * inner["ihl"] + 4 * tcp["doff"])
    if tunnel and inner_valid:
        inner_bad_len |= inner_l3 + inner["total_len"] > l3 + outer["total_len"]
    err["inner_bad_len"] = int(inner_bad_len)

    # Reason: the lowest-numbered that applies.
    valid_headers = [h for h, v in ((outer, outer_valid), (inner, inner_valid)) if v]
    reasons = [
        (Reason.NOT_IP, t not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6)),
        (Reason.IPV6, t == ETHERTYPE_IPV6 or inner_v6),
        (Reason.INNER_ETHERTYPE, inner_eth_bad),
        (Reason.TRUNCATED, err["truncated"] or err["short_frame"]),
        (Reason.BAD_IHL, err["outer_bad_ihl"] or err["inner_bad_ihl"]),
        (Reason.WINDOW, err["window"]),
        (Reason.FRAGMENT, any(_ipv4_fragment(h) for h in valid_headers)),
        (Reason.IP_OPTIONS, any(h["ihl"] > 5 for h in valid_headers)),
        (Reason.NOT_TCP, (not tunnel and outer["proto"] != IPPROTO_TCP)
                         or (tunnel and inner_valid and inner["proto"] != IPPROTO_TCP)),
        (Reason.FIELD_OUTSIDE, field_outside),
        (Reason.BAD_LENGTH, err["outer_bad_len"] or err["inner_bad_len"]),
        (Reason.TCP_DOFF, bool(tcp["present"]) and tcp["doff"] < 5),
    ]
    reason = next((r for r, applies in reasons if applies), Reason.NONE)
    cls["reason"] = reason.value

    if reason != Reason.NONE:
        kind = Kind.OTHER
    else:
        kind = Kind.TUNNEL if tunnel else Kind.PLAIN
    cls["kind"] = kind.value
    prof = profiles[matched] if tunnel else {}
    cls["tso_ok"] = int(kind == Kind.PLAIN or (kind == Kind.TUNNEL and bool(prof.get("tso_en"))))
    cls["rsc_ok"] = int((kind == Kind.PLAIN or (kind == Kind.TUNNEL and bool(prof.get("rsc_en"))))
                        and bool(outer["csum_ok"]) and bool(inner["csum_ok"]))
    return rec


def flow_key(rec):
    """The classifier's 6-tuple flow key of a record (DESIGN.md section 5), as a tuple:
    ``(profile, (outer src, outer dst), (inner src, inner dst), inner proto,
    (tcp sport, tcp dport), flow)``; the profile is -1 for plain TCP. ``None`` for
    ``Kind.OTHER`` (not offloadable: no key)."""
    kind = Kind(rec["cls"]["kind"])
    if kind == Kind.OTHER:
        return None
    outer, inner, tcp, cls = rec["outer"], rec["inner"], rec["tcp"], rec["cls"]
    return (cls["profile"] if kind == Kind.TUNNEL else -1, (outer["src"], outer["dst"]),
            (inner["src"], inner["dst"]), inner["proto"], (tcp["sport"], tcp["dport"]),
            cls["flow"])
