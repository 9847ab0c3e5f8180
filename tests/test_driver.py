"""Driver unit tests against an in-memory device: identity refusal, profile validation and
load order, settings validation, counters and flow-table walk."""

import asyncio

import pytest

from hw.profile import pack_words
from tests.fakedev import FakeDevice
from tunnelnic.driver import BusError, IdentityError, Nic
from tunnelnic.presets import preset


def run(coro):
    return asyncio.run(coro)


def connected(**kw):
    dev = FakeDevice(kw.pop("params", None), **kw)
    nic = Nic(dev)
    run(nic.connect())
    return dev, nic


def test_identity_accepts_matching_device():
    _, nic = connected(params={"P": 4, "N": 16})
    assert nic.identity["P"] == 4 and nic.identity["N"] == 16 and nic.identity["version"] == "1.1"


@pytest.mark.parametrize("kw, match", [
    ({"magic": 0xDEADBEEF}, "no TunnelNIC"),
    ({"version": 2 << 16}, "version 2.0"),
    ({"layout": 0x12345678}, "layout hash"),
])
def test_identity_refuses_mismatch(kw, match):
    with pytest.raises(IdentityError, match=match):
        run(Nic(FakeDevice(**kw)).connect())


def test_load_preset_writes_words_enable_last():
    dev, nic = connected()
    run(nic.load_profile(3, "vxlan"))
    base = nic.map["profile[3].word0"].address
    words = pack_words(preset("vxlan"))
    assert dev.writes[0] == (base, words[0] & ~1)          # disabled while changing
    assert dev.writes[-1] == (base, words[0])              # enabled by the last write
    assert run(nic.read_profile(3)) == preset("vxlan")
    run(nic.enable_profile(3, False))
    assert run(nic.read_profile(3))["enable"] == 0
    assert run(nic.read_profile(3))["fmt_value"] == 4789


@pytest.mark.parametrize("args, kwargs, match", [
    ((8, "vxlan"), {}, "slot 8 out of range"),
    ((-1, "vxlan"), {}, "out of range"),
    ((0, "nonesuch"), {}, "unknown preset"),
    ((0, None), {"fmt_len": 5, "outer_proto": 17}, "fmt_len"),
    ((0, None), {"fmt_len": 0}, "fmt_len"),
    ((0, None), {"fmt_len": 2, "fmt_off": 63, "outer_proto": 17}, "."),
    ((0, None), {"bogus": 1}, "unknown profile field"),
    ((0, "vxlan"), {"flow_off": 62}, "."),
])
def test_profile_validation(args, kwargs, match):
    dev, nic = connected()
    with pytest.raises(ValueError, match=match):
        run(nic.load_profile(*args, **kwargs))
    assert dev.writes == []   # nothing written on a refused profile


def test_tso_rsc_settings_and_validation():
    dev, nic = connected()
    run(nic.set_tso(enable=True, mss_default=1000))
    assert run(nic.read_reg("tso.ctrl")) == {"enable": 1, "mss_default": 1000}
    run(nic.set_tso(mss_default=536))   # read-modify-write keeps enable
    assert run(nic.read_reg("tso.ctrl")) == {"enable": 1, "mss_default": 536}
    for bad in ({"mss_default": 0}, {"mss_default": 1 << 14}):
        with pytest.raises(ValueError, match="mss_default"):
            run(nic.set_tso(**bad))
    run(nic.set_rsc(enable=True, timeout_us=100, size_cap=40000, seg_cap=20))
    assert run(nic.read_reg("rsc.timeout")) == {"timeout_us": 100}
    assert run(nic.read_reg("rsc.caps")) == {"size_cap": 40000, "seg_cap": 20}
    run(nic.set_rsc(timeout_us=0))      # 0: no timeout flush
    assert run(nic.read_reg("rsc.timeout")) == {"timeout_us": 0}
    for bad, name in (({"timeout_us": -1}, "timeout_us"), ({"timeout_us": 1 << 16}, "timeout_us"),
                      ({"size_cap": 70000}, "size_cap"), ({"seg_cap": 0}, "seg_cap")):
        with pytest.raises(ValueError, match=name):
            run(nic.set_rsc(**bad))
    with pytest.raises(ValueError, match="no writable field"):
        run(nic.write_reg("tso.ctrl", bogus=1))


def test_counters_snapshot_and_totals():
    dev, nic = connected()
    merged = nic.map["rsc_stats.merged"].address
    hits = nic.map["rx_parser_stats.profile_hits[2]"].address
    dev.mem[merged], dev.mem[hits] = 7, 3
    snap = run(nic.counters())
    assert snap["rsc_stats"]["merged"] == 7 and snap["rx_parser_stats"]["profile_hits[2]"] == 3
    assert snap["core_stats"]["tx_pkts_in"] == 0
    dev.mem[merged] = 5
    assert run(nic.counters())["rsc_stats"]["merged"] == 5      # clear-on-read: a delta
    assert nic.totals["rsc_stats"]["merged"] == 12


def test_flow_table_walk_decode_and_bus_errors():
    from tunnelnic.model.rsc import flow_tag
    dev, nic = connected(params={"N": 4})
    empty = run(nic.flow_table())
    assert [c["slot"] for c in empty] == [0, 1, 2, 3]
    assert all(not c["valid"] and c["tag"] is None and c["next_seq"] == 0 for c in empty)
    sel = nic.map["flow.select"].address
    assert [w for w in dev.writes if w[0] == sel] == [(sel, i) for i in range(4)]
    assert run(nic.flow_table(active=True)) == []
    # A fake device cannot follow flow.select: every slot shows the words stored here.
    rm = nic.map
    for path, fields in (("state", {"valid": 1, "tunnel": 1, "profile": 2, "count": 5,
                                    "mss": 1448}),
                         ("next_seq", {"seq": 0x89ABCDEF}),
                         ("outer_src", {"addr": 0x0A000001}), ("outer_dst", {"addr": 0x0A000002}),
                         ("inner_src", {"addr": 0xC0A80101}), ("inner_dst", {"addr": 0xC0A80102}),
                         ("ports", {"sport": 40000, "dport": 80}),
                         ("flow_field", {"value": 4242})):
        reg = rm[f"flow.{path}"]
        dev.mem[reg.address] = reg.encode(fields)
    ctx = run(nic.flow_table(contexts=1))[0]
    key = (1, 2, 0x0A000001, 0x0A000002, 0xC0A80101, 0xC0A80102, 40000, 80, 4242)
    assert ctx == {"slot": 0, "valid": True, "tunnel": 1, "profile": 2, "count": 5, "mss": 1448,
                   "next_seq": 0x89ABCDEF, "outer_src": 0x0A000001, "outer_dst": 0x0A000002,
                   "inner_src": 0xC0A80101, "inner_dst": 0xC0A80102, "sport": 40000, "dport": 80,
                   "flow": 4242, "tag": flow_tag(key)}
    assert Nic.flow_key(ctx) == key
    with pytest.raises(BusError):
        run(dev.write(nic.map["id.magic"].address, 0))
    with pytest.raises(RuntimeError, match="connect"):
        run(Nic(dev).read_reg("tso.ctrl"))
