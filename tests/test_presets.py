"""Profile presets: RFC values, register packing, validation errors."""

import pytest

from hw.profile import FIELDS, pack_words, unpack_words
from tunnelnic.presets import PRESETS, describe, preset, validate

NAMES = ["gre-key", "gre-cks", "nvgre", "vxlan", "vxlan-csum", "geneve", "private-udp"]


def test_all_presets_present():
    assert sorted(PRESETS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_preset_is_complete_valid_and_packs(name):
    p = preset(name)
    assert set(p) == {f[0] for f in FIELDS}
    assert (p["enable"], p["tso_en"], p["rsc_en"], p["ipid_fixed"]) == (1, 1, 1, 0)
    assert unpack_words(pack_words(p)) == p
    assert p is not PRESETS[name] and p == PRESETS[name]
    assert name in describe(name)


def test_rfc_values():
    g = PRESETS["gre-key"]
    assert (g["outer_proto"], g["opaque_len"], g["fmt_off"], g["fmt_len"], g["fmt_value"],
            g["fmt_mask"], g["flow_off"], g["flow_len"]) == (47, 8, 0, 4, 0x20000800,
                                                               0xFFFFFFFF, 4, 4)
    c = PRESETS["gre-cks"]
    assert (c["outer_proto"], c["opaque_len"], c["fmt_off"], c["fmt_len"], c["fmt_value"],
            c["flow_off"], c["flow_len"]) == (47, 16, 0, 4, 0xB0000800, 10, 2)
    assert (c["fmt_mask"] >> 16) & 0xB007 == 0xB007  # C, K, S and the version checked
    assert c["fmt_mask"] & 0xFFFF == 0xFFFF          # ... and the protocol type (IPv4)
    n = PRESETS["nvgre"]
    assert (n["outer_proto"], n["opaque_len"], n["fmt_value"], n["flow_off"], n["flow_len"]) \
        == (47, 22, 0x20006558, 4, 3)
    for name, csum in (("vxlan", 0), ("vxlan-csum", 1)):
        v = PRESETS[name]
        assert (v["outer_proto"], v["opaque_len"], v["fmt_off"], v["fmt_len"], v["fmt_value"],
                v["flow_off"], v["flow_len"], v["udp"], v["udp_csum"]) == \
            (17, 30, 2, 2, 4789, 12, 3, 1, csum)
    ge = PRESETS["geneve"]
    assert (ge["len_mode"], ge["len_off"], ge["len_bytes"], ge["len_mask"], ge["len_shift"],
            ge["len_scale"], ge["opaque_len"], ge["fmt_value"], ge["flow_off"], ge["udp"]) == \
        (1, 8, 1, 0x3F, 0, 2, 30, 6081, 12, 1)
    pu = PRESETS["private-udp"]
    assert (pu["outer_proto"], pu["opaque_len"], pu["fmt_off"], pu["fmt_len"], pu["fmt_value"],
            pu["flow_off"], pu["flow_len"]) == (17, 20, 2, 2, 7000, 8, 2)


def test_overrides_and_aliases():
    p = preset("private-udp", port=7100, flow_off=8, flow_len=4)
    assert (p["fmt_value"], p["flow_len"]) == (7100, 4)
    assert preset("vxlan", ipid_fixed=1)["ipid_fixed"] == 1
    assert preset("gre-key", proto=99)["outer_proto"] == 99


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="nope"), "unknown preset"),
    (dict(name="vxlan", colour=3), "unknown profile field"),
    (dict(name="vxlan", port=70000), "outside fmt_mask"),
    (dict(name="vxlan", fmt_value=2**32), "does not fit"),
    (dict(name="vxlan", opaque_len=1024), "does not fit"),
    (dict(name="vxlan", flow_off=-1), "does not fit"),
    (dict(name="vxlan", enable="yes"), "must be an int"),
    (dict(name="vxlan", fmt_len=0), "fmt_len"),
    (dict(name="gre-key", fmt_len=5), "fmt_len"),
    (dict(name="vxlan", fmt_off=63), "format field"),
    (dict(name="vxlan", flow_off=62, flow_len=3), "flow field"),
    (dict(name="vxlan", flow_len=5), "flow_len"),
    (dict(name="geneve", len_bytes=3), "len_bytes"),
    (dict(name="geneve", len_bytes=0), "len_bytes"),
    (dict(name="geneve", len_off=63, len_bytes=2), "length field"),
    (dict(name="geneve", len_mask=0), "len_mask"),
    (dict(name="vxlan", fmt_mask=0xFF), "outside fmt_mask"),
    (dict(name="vxlan", fmt_mask=0x1FFFF, fmt_value=0x12B5), "wider than fmt_len"),
    (dict(name="gre-key", udp_csum=1), "udp_csum=1 needs udp=1"),
    (dict(name="vxlan", opaque_len=4), "at least 8 opaque bytes"),
    (dict(name="geneve", check_off=63), "check field"),
    (dict(name="vxlan", check_value=0x0808), "outside check_mask"),
])
def test_validation_errors(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=message):
        preset(name, **kwargs)


def test_smaller_capture_validation():
    preset("vxlan", opaque_bytes=15)
    with pytest.raises(ValueError, match="flow field"):
        preset("vxlan", opaque_bytes=14)
    with pytest.raises(ValueError, match="unknown preset"):
        describe("gre")
    assert validate({"fmt_len": 1, "fmt_mask": 0xFF, "fmt_value": 0x11})
    # A check field past the capture is refused only when it checks something.
    assert validate({"fmt_len": 1, "check_off": 63})
    with pytest.raises(ValueError, match="check field"):
        validate({"fmt_len": 1, "check_off": 63, "check_mask": 1})


def test_check_fields_and_gre_formats():
    """Geneve checks its protocol type, VXLAN its I flag (the format field holds the UDP
    port); the GRE presets need no check field: their 4-byte format covers the GRE flags and
    protocol type (0x0800 IPv4, 0x6558 Ethernet for NVGRE)."""
    g = PRESETS["geneve"]
    assert (g["check_off"], g["check_value"], g["check_mask"]) == (10, 0x6558, 0xFFFF)
    for name in ("vxlan", "vxlan-csum"):
        v = PRESETS[name]
        assert (v["check_off"], v["check_value"], v["check_mask"]) == (8, 0x0800, 0x0800)
    for name, proto in (("gre-key", 0x0800), ("gre-cks", 0x0800), ("nvgre", 0x6558)):
        p = PRESETS[name]
        assert p["check_mask"] == 0 and (p["fmt_off"], p["fmt_len"]) == (0, 4)
        assert p["fmt_mask"] & 0xFFFF == 0xFFFF and p["fmt_value"] & 0xFFFF == proto
    assert PRESETS["private-udp"]["check_mask"] == 0
    assert "check off 10, 2 B = 0x6558" in describe("geneve")
    assert "check" not in describe("gre-key").split("\n")[1]
