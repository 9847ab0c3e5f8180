"""The compiled register map: FIELDS consistency, parameters, layout hash, encode/decode."""

import pytest

import tunnelnic.regmap as regmap
from hw.profile import FIELDS, WORDS


def test_profile_registers_match_fields():
    rm = regmap.compile_map({"P": 3})
    for slot in range(3):
        got = {(f.name, int(r.path[-1][-1]), f.lsb, f.width)
               for r in rm.group("profile") if r.path[1] == slot for f in r.fields}
        assert got == set(FIELDS)


def test_drift_from_fields_is_refused(monkeypatch):
    import hw.profile
    changed = tuple(("fmt_len", 2, 8, 4) if f[0] == "fmt_len" else f for f in FIELDS)
    monkeypatch.setattr(hw.profile, "FIELDS", changed)
    regmap._compile.cache_clear()
    try:
        with pytest.raises(regmap.RegmapError, match="differ from hw/profile.py FIELDS"):
            regmap.compile_map({"P": 5})
    finally:
        regmap._compile.cache_clear()


def test_parameters_and_hash():
    a, b = regmap.compile_map(), regmap.compile_map({"P": 4})
    assert WORDS == 7
    assert len(a.group("profile")) == 8 * WORDS and len(b.group("profile")) == 4 * WORDS
    assert a.layout_hash != b.layout_hash
    # The hash ignores reset values (capabilities), not the layout.
    assert regmap.compile_map({"POOL": 128}).layout_hash == a.layout_hash
    assert a["id.caps0"].reset_value() == 8 | 8 << 8 | 32 << 16
    with pytest.raises(ValueError, match="unknown register map parameters"):
        regmap.compile_map({"Q": 1})
    addrs = [r.address for r in a]
    assert len(addrs) == len(set(addrs)) and all(x % 4 == 0 for x in addrs)


def test_encode_decode():
    reg = regmap.compile_map()["tso.ctrl"]
    word = reg.encode({"enable": 1, "mss_default": 1448})
    assert word == 1 | 1448 << 16 and reg.decode(word) == {"enable": 1, "mss_default": 1448}
    assert reg.encode({"enable": 0}, base=word) == 1448 << 16
    with pytest.raises(ValueError, match="does not fit"):
        reg.encode({"mss_default": 1 << 14})
    with pytest.raises(KeyError, match="no field"):
        reg.encode({"mss": 1})
    with pytest.raises(KeyError, match="no register"):
        regmap.compile_map()["tso.nothing"]


def test_counters_are_clear_on_read_saturating():
    rm = regmap.compile_map()
    counters = [r for r in rm if r.fields[0].counter]
    assert len(counters) > 40
    assert all(r.fields[0].rclr and r.fields[0].width == 32 and not r.writable for r in counters)


def test_checked_in_docs_and_header_are_in_step():
    from tunnelnic.commands.regs import check
    assert check() == [], "run `python -m tunnelnic regs` and commit docs/regs and include/"


def test_cli_commands_are_registered():
    from tunnelnic.cli import build_parser
    p = build_parser()
    a = p.parse_args(["profile", "load", "vxlan", "--slot", "0", "--port", "/dev/null",
                      "--set", "port=7100"])
    assert (a.action, a.preset, a.slot, a.set) == ("load", "vxlan", 0, ["port=7100"])
    assert p.parse_args(["status", "--port", "/dev/ttyUSB1"]).baud == 115200
    assert p.parse_args(["regs", "--check"]).check
