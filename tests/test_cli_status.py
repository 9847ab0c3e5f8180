"""``tunnelnic status``: identity, counters and (``--flows``) the open RSC contexts, against an
in-memory device."""

import argparse

from tests.fakedev import FakeDevice
from tunnelnic.commands import status
from tunnelnic.driver import Nic


def _device(has_rsc):
    dev = FakeDevice({"N": 2})
    rm = dev.rm
    caps2 = rm["id.caps2"]
    dev.mem[caps2.address] |= int(has_rsc) << 9
    dev.mem[rm["rsc_stats.merged"].address] = 3
    for path, fields in (("state", {"valid": 1, "tunnel": 1, "profile": 0, "count": 3,
                                    "mss": 500}),
                         ("next_seq", {"seq": 2500}),
                         ("outer_src", {"addr": 0x0A000001}), ("outer_dst", {"addr": 0x0A000002}),
                         ("inner_src", {"addr": 0xC0A80101}), ("inner_dst", {"addr": 0xC0A80102}),
                         ("ports", {"sport": 40000, "dport": 80}),
                         ("flow_field", {"value": 42})):
        reg = rm[f"flow.{path}"]
        dev.mem[reg.address] = reg.encode(fields)
    return dev


def _run(monkeypatch, capsys, dev, *argv):
    monkeypatch.setattr(status, "open_nic", lambda args: Nic(dev))
    p = argparse.ArgumentParser()
    status.register(p.add_subparsers())
    args = p.parse_args(["status", "--port", "/dev/null", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_status_counters_and_flows(monkeypatch, capsys):
    out = _run(monkeypatch, capsys, _device(True), "--flows")
    assert "has_rsc=True" in out and "merged" in out
    # The fake device shows the same words for every selected slot: both slots are "open".
    assert "flow table: 2 of 2 contexts open" in out
    assert ("192.168.1.1:40000 > 192.168.1.2:80 in profile 0 10.0.0.1 > 10.0.0.2 flow 42  "
            "next_seq 2500  segments 3  mss 500") in out


def test_status_flows_without_rsc(monkeypatch, capsys):
    out = _run(monkeypatch, capsys, _device(False), "--flows")
    assert "no RSC engine" in out
    assert "flow table" not in _run(monkeypatch, capsys, _device(False))
