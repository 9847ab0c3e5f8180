"""Fuzzing the reference model: mangled frames never crash it, and its record is consistent.

The RTL is compared with the model on random and broken traffic, so the model must give a
defined record for *any* bytes and any profile table; these invariants follow from
docs/parse-record.md whatever the input.
"""

from hypothesis import given, settings, strategies as st

from hw.layouts import Kind, Reason
from hw.profile import FIELDS
from tunnelnic.model import decode_record, encode_record, flow_key, parse
from tunnelnic.packets import ENCAPS, build_packet
from tunnelnic.presets import PRESETS

WIDTHS = {name: width for name, _w, _l, width in FIELDS}


@st.composite
def mangled(draw):
    frame = bytearray(build_packet(draw(st.sampled_from(ENCAPS)), vlans=draw(st.integers(0, 2)),
                                   payload=draw(st.binary(max_size=80)),
                                   geneve_options=draw(st.integers(0, 8)),
                                   tcp_options=draw(st.sampled_from([[], [("MSS", 1)]]))))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(frame) - 1))
        frame[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    return bytes(frame[:cut] if draw(st.booleans()) else frame)


random_profile = st.fixed_dictionaries({name: st.integers(0, (1 << w) - 1)
                                        for name, w in WIDTHS.items()})
profile_tables = st.lists(st.one_of(st.none(), st.sampled_from(list(PRESETS.values())),
                                    random_profile), max_size=8)


@settings(max_examples=400, deadline=None)
@given(mangled(), profile_tables, st.sampled_from([40, 64, 100, 256]),
       st.sampled_from([16, 32, 64]))
def test_any_input_gives_a_consistent_record(frame, profiles, window, capture):
    rec = parse(frame, profiles, header_window=window, opaque_bytes=capture)
    assert decode_record(encode_record(rec, capture), capture) == rec   # fits the layout
    err, cls, off = rec["err"], rec["cls"], rec["off"]
    kind, reason = Kind(cls["kind"]), Reason(cls["reason"])
    assert (kind == Kind.OTHER) == (reason != Reason.NONE)
    assert off["l3"] == 14 + 4 * rec["eth"]["vlans"]
    if err["window"]:
        assert len(frame) > window and not err["truncated"] and not err["short_frame"]
    if err["truncated"] or err["short_frame"]:
        assert len(frame) <= window
    if kind != Kind.OTHER:
        assert not (err["truncated"] or err["short_frame"] or err["window"]
                    or err["outer_bad_ihl"] or err["inner_bad_ihl"] or err["outer_bad_len"]
                    or err["inner_bad_len"])
        assert rec["outer"]["present"] and rec["inner"]["present"] and rec["tcp"]["present"]
        assert rec["tcp"]["doff"] >= 5 and rec["outer"]["ihl"] == rec["inner"]["ihl"] == 5
        assert off["l4"] == off["inner_l3"] + 20
        assert off["payload"] == off["l4"] + 4 * rec["tcp"]["doff"] <= window
        assert rec["payload_len"] == rec["inner"]["total_len"] - 20 - 4 * rec["tcp"]["doff"]
        assert cls["tso_ok"] or (kind == Kind.TUNNEL and not profiles[cls["profile"]]["tso_en"])
        assert flow_key(rec) is not None
    else:
        assert not cls["tso_ok"] and not cls["rsc_ok"] and flow_key(rec) is None
    if kind == Kind.PLAIN:
        assert rec["inner"] == rec["outer"] and cls["opaque_len"] == 0 and cls["profile"] == 0
    if kind == Kind.TUNNEL:
        prof = profiles[cls["profile"]]
        assert prof and prof["enable"] and prof["outer_proto"] == rec["outer"]["proto"]
    if not rec["outer"]["present"]:
        assert off["opaque"] == off["inner_l3"] == off["l4"] == off["payload"] == 0
        assert rec["opaque"] == 0
    if cls["rsc_ok"]:
        assert rec["outer"]["csum_ok"] and rec["inner"]["csum_ok"]
