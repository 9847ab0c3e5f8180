"""Reference model of the TX TSO engine (DESIGN.md section 4): one superframe in, segments out.

Readable rather than fast: the RTL (hw/tso.py) is tested for byte-exact agreement with
:func:`tso`. The decisions use the parse record of :func:`tunnelnic.model.parse.parse`
(docs/parse-record.md); everything else works on the frame bytes.

Rules, per segment ``k`` of ``N = max(1, ceil(payload_len / mss))``:

* bytes ``[0, hl)`` (Ethernet, outer IPv4, opaque header, inner IPv4, TCP header with options;
  ``hl = off.payload``) are copied, then followed by payload bytes ``[k*mss, k*mss + n_k)``;
* tunnel only: outer IPv4 total length, ID (``first + k`` unless the profile fixes IDs) and
  header checksum; when the profile says ``udp``: UDP length, and UDP checksum zero or, with
  ``udp_csum``, computed over the outer pseudo-header and everything after it (0 sent as 0xFFFF);
* inner IPv4 (the only IPv4 header for plain TCP): total length, ID, header checksum;
* TCP: ``seq = first + k*mss``; FIN and PSH kept on the last segment only, CWR on the first
  only; checksum computed from scratch (the incoming checksum field is ignored);
* GRE (outer protocol 47) with the C bit set: the GRE checksum (opaque bytes 4-5) computed over
  the GRE header and everything after it (RFC 2784; a computed 0 is sent as 0xFFFF, which is
  the same one's-complement value).

Pass-through (the frame unchanged, with the reason): no request or engine disabled; record says
not offloadable; effective MSS 0; ``hl + mss > max_frame``; tunnel whose inner datagram does not
end where the outer one does. Bytes after the IP datagram (Ethernet padding) are not part of any
segment. A frame shorter than its IP total length (beyond the parser's header window, so the
parser could not flag it) is *truncated*: the segments whose bytes all arrived are sent, the
rest is dropped, and the result's reason is ``TsoReason.TRUNCATED``.

An IPv4 total length is 16 bits, so a superframe can never describe more than 64 KB; there is
no separate "over 64 KB" case to refuse.
"""

from hw.layouts import TCP_CWR, TCP_FIN, TCP_PSH, Kind
from hw.tso_defs import DEFAULT_MAX_FRAME, DEFAULT_MSS, GRE_C, GRE_PROTO, TsoReason

__all__ = ["tso", "tso_record", "decide", "ones_sum", "TsoReason"]


def ones_sum(data):
    """Folded 16-bit one's-complement sum of ``data`` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _put16(buf, offset, value):
    buf[offset:offset + 2] = (value & 0xFFFF).to_bytes(2, "big")


def _ipv4_fix(buf, start, total_len, ident):
    _put16(buf, start + 2, total_len)
    _put16(buf, start + 4, ident)
    _put16(buf, start + 10, 0)
    _put16(buf, start + 10, ~ones_sum(buf[start:start + 20]))


def decide(frame, rec, *, tso=True, mss=0, default_mss=DEFAULT_MSS, enable=True,
           max_frame=DEFAULT_MAX_FRAME, header_window=256):
    """``(reason, effective_mss)``: ``TsoReason.SEGMENTED`` or why the frame passes through."""
    cls, off = rec["cls"], rec["off"]
    if not (enable and tso):
        return TsoReason.NO_REQUEST, 0
    if not cls["tso_ok"] or cls["kind"] == Kind.OTHER.value or off["payload"] > header_window:
        return TsoReason.NOT_OFFLOADABLE, 0
    eff = mss or default_mss
    if eff == 0:
        return TsoReason.MSS_ZERO, 0
    if off["payload"] + eff > max_frame:
        return TsoReason.MSS_TOO_LARGE, eff
    if cls["kind"] == Kind.TUNNEL.value:
        if off["l3"] + rec["outer"]["total_len"] != off["inner_l3"] + rec["inner"]["total_len"]:
            return TsoReason.LENGTH, eff
    return TsoReason.SEGMENTED, eff


def tso_record(frame, rec, **kwargs):
    """:func:`tso` with the parse record already computed. Returns ``(frames, reason)``:
    ``reason`` is ``None`` when the frame was segmented completely, a pass-through
    :class:`TsoReason` (``frames == [frame]``), or ``TsoReason.TRUNCATED``."""
    frame = bytes(frame)
    reason, mss = decide(frame, rec, **kwargs)
    if reason != TsoReason.SEGMENTED:
        return [frame], reason
    cls, off = rec["cls"], rec["off"]
    tunnel = cls["kind"] == Kind.TUNNEL.value
    hl, pl = off["payload"], rec["payload_len"]
    l3, opq, il3, l4 = off["l3"], off["opaque"], off["inner_l3"], off["l4"]
    outer, inner, tcp = rec["outer"], rec["inner"], rec["tcp"]
    step = 0 if cls["ipid_fixed"] else 1
    gre_csum = (tunnel and not cls["udp"] and outer["proto"] == GRE_PROTO
                and frame[opq] & GRE_C)
    nseg = max(1, -(-pl // mss))
    segments = []
    for k in range(nseg):
        start = k * mss
        n = min(mss, pl - start)
        if hl + start + n > len(frame):
            return segments, TsoReason.TRUNCATED
        seg = bytearray(frame[:hl] + frame[hl + start:hl + start + n])
        inner_len = inner["total_len"] - pl + n
        tcp_len = inner_len - 20
        # TCP: sequence number, flags, checksum over pseudo-header + segment.
        seg[l4 + 4:l4 + 8] = ((tcp["seq"] + start) & 0xFFFFFFFF).to_bytes(4, "big")
        flags = tcp["flags"]
        if k != nseg - 1:
            flags &= ~(TCP_FIN | TCP_PSH)
        if k != 0:
            flags &= ~TCP_CWR
        seg[l4 + 13] = flags
        _put16(seg, l4 + 16, 0)
        pseudo = (seg[il3 + 12:il3 + 20] + b"\0\x06" + tcp_len.to_bytes(2, "big"))
        _put16(seg, l4 + 16, ~ones_sum(pseudo + seg[l4:]))
        _ipv4_fix(seg, il3, inner_len, inner["ident"] + step * k)
        if tunnel:
            outer_len = outer["total_len"] - pl + n
            _ipv4_fix(seg, l3, outer_len, outer["ident"] + step * k)
            if cls["udp"]:
                udp_len = outer_len - 20
                _put16(seg, opq + 4, udp_len)
                _put16(seg, opq + 6, 0)
                if cls["udp_csum"]:
                    pseudo = seg[l3 + 12:l3 + 20] + b"\0\x11" + udp_len.to_bytes(2, "big")
                    csum = ~ones_sum(pseudo + seg[opq:]) & 0xFFFF
                    _put16(seg, opq + 6, csum or 0xFFFF)
            elif gre_csum:
                # RFC 2784: over the GRE header (checksum field 0) and everything after it.
                _put16(seg, opq + 4, 0)
                _put16(seg, opq + 4, (~ones_sum(seg[opq:]) & 0xFFFF) or 0xFFFF)
        segments.append(bytes(seg))
    return segments, None


def tso(frame, profiles, *, tso=True, mss=0, default_mss=DEFAULT_MSS, enable=True,
        max_frame=DEFAULT_MAX_FRAME, header_window=256, opaque_bytes=64):
    """Segment ``frame`` as the engine does, with the classifier's ``profiles`` (a list of
    profile dicts, see :mod:`tunnelnic.presets`). ``tso``/``mss`` are the packet's request
    (``mss == 0``: use ``default_mss``); ``enable``/``default_mss``/``max_frame`` the engine's
    settings. Returns ``(frames, reason)`` as :func:`tso_record`."""
    from .parse import parse
    rec = parse(frame, profiles, header_window=header_window, opaque_bytes=opaque_bytes)
    return tso_record(frame, rec, tso=tso, mss=mss, default_mss=default_mss, enable=enable,
                      max_frame=max_frame, header_window=header_window)
