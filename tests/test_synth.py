"""The synthesis report (tunnelnic.synth, `tunnelnic synth`) on tiny designs, so it stays fast.

Each real flow run costs a few seconds (plus a one-off ~1 minute compiling the WebAssembly tools
into the YoWASP cache on a fresh machine). Full-block runs are marked ``long``.
"""

import json

import pytest
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tunnelnic.cli import main
from tunnelnic.commands.synth import BlockError, block_nextpnr_args, make_block, resolve_block
from tunnelnic.synth import synthesize
from tunnelnic.synth_harness import SynthHarness


class Counter(wiring.Component):
    """A 16-bit counter with enable: 16 FF and a 16-bit carry chain."""

    def __init__(self, width=16):
        super().__init__({"en": In(1), "count": Out(width)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


class TwoDomains(wiring.Component):
    """Two counters in two clock domains (the report must give fmax for both)."""

    a: Out(12)
    b: Out(12)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.a.eq(self.a + 1)
        m.d.fast += self.b.eq(self.b + 1)
        return m


class Equal(wiring.Component):
    """Compares two inputs: folds to a constant if the harness fed both from one net."""

    x: In(32)
    y: In(32)
    eq: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.eq.eq(self.x == self.y)
        return m


@pytest.fixture(scope="module")
def counter_report(tmp_path_factory):
    return synthesize(Counter(), workdir=tmp_path_factory.mktemp("counter"))


def test_counter_resources_and_fmax(counter_report):
    r = counter_report
    assert r["ff"] == 16                      # the core's own flip-flops, harness excluded
    assert 16 <= r["lut4"] <= 40              # an adder chain: CCU2C cells count as 2 LUT4
    assert r["carry"] >= 8
    assert r["ebr"] == 0 and r["dsp"] == 0
    assert r["target"] == {"sync": 125.0}
    assert r["fmax"]["sync"] > 200.0          # a 16-bit counter is far above 125 MHz on ECP5
    assert r["met"] is True
    crit = r["critical"]["sync"]                 # the carry chain, inside the core
    assert crit["ns"] < 8.0 and crit["from"].startswith("core.")
    assert r["part"] == "LFE5UM-45F-8CABGA381"
    # The harness keeps pins few: 1 serial input, 4 outputs, clock and reset.
    assert r["device"]["TRELLIS_IO"]["used"] <= 7
    assert r["harness"] == {"in_bits": 1, "out_bits": 16}


def test_harness_keeps_independent_inputs(tmp_path):
    # x == y survives only if x and y come from distinct registers: 32-bit compare -> LUTs.
    r = synthesize(Equal(), workdir=tmp_path)
    assert r["lut4"] >= 8
    assert r["ff"] == 1


def test_missed_target_is_reported(tmp_path):
    r = synthesize(Counter(32), clocks={"sync": 900.0}, workdir=tmp_path)
    assert r["target"] == {"sync": 900.0}
    assert r["fmax"]["sync"] < 900.0
    assert r["met"] is False


def test_two_clock_domains(tmp_path):
    r = synthesize(TwoDomains(), clocks={"sync": 100.0, "fast": 200.0}, workdir=tmp_path)
    assert set(r["fmax"]) == {"sync", "fast"}
    assert r["target"] == {"sync": 100.0, "fast": 200.0}
    assert r["ff"] == 24


def test_harness_bit_counts():
    h = SynthHarness(Equal())
    assert (h.in_bits, h.out_bits) == (64, 1)
    with pytest.raises(TypeError, match="wiring.Component"):
        SynthHarness(Module())
    with pytest.raises(ValueError, match="n_out"):
        SynthHarness(Equal(), n_out=0)


def test_bad_clock_target():
    with pytest.raises(ValueError, match="positive MHz"):
        synthesize(Counter(), clocks={"sync": 0})


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_block_registry_errors():
    with pytest.raises(BlockError, match="unknown block 'nope'"):
        resolve_block("nope")
    with pytest.raises(BlockError, match="does not exist"):
        resolve_block("hw.no_such_block:Thing")
    with pytest.raises(BlockError, match="has no Missing"):
        resolve_block("hw.buffer:Missing")
    assert resolve_block("tests.test_synth:Counter") is Counter
    assert len(make_block("tests.test_synth:Counter", params={"width": 5}).count) == 5
    with pytest.raises(BlockError, match="cannot construct"):
        make_block("tests.test_synth:Counter", params={"depth": 3})


def test_cli_json(tmp_path, capsys):
    code = main(["synth", "tests.test_synth:Counter", "--param", "width=8", "--json",
                 "--workdir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["ff"] == 8 and out["met"] is True and out["block"] == "tests.test_synth:Counter"


def test_cli_table_and_failing_exit(tmp_path, capsys):
    code = main(["synth", "tests.test_synth:Counter", "--param", "width=32", "--freq", "900",
                 "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "LUT4" in out and "FAILED" in out and "NOT MET" in out


def test_cli_unknown_block(capsys):
    assert main(["synth", "nope"]) == 2
    assert "unknown block" in capsys.readouterr().err


@pytest.mark.long
@pytest.mark.parametrize("block", ["parser", "classifier", "tso", "rsc", "core"])
def test_full_block_meets_125(block, tmp_path):
    try:
        component = make_block(block, 8)
    except BlockError as exc:
        pytest.skip(str(exc))
    r = synthesize(component, workdir=tmp_path, nextpnr_args=block_nextpnr_args(block))
    assert r["met"], r


def test_block_router_default_and_override(monkeypatch):
    """`synth tso` routes with router1 (router2 does not converge on it); --router wins.

    The parser routes with --tmg-ripup unless --no-tmg-ripup says otherwise."""
    import tunnelnic.synth as synth_mod
    seen = []

    def fake(block, **kw):
        seen.append(list(kw["nextpnr_args"]))
        raise synth_mod.FlowError("stop here")

    monkeypatch.setattr(synth_mod, "synthesize", fake)
    # The block itself does not matter here (and an unelaborated one would warn).
    monkeypatch.setattr("tunnelnic.commands.synth.make_block", lambda *a, **k: object())
    assert main(["synth", "tso", "--json"]) == 1
    assert main(["synth", "tso", "--json", "--nextpnr-arg=--router", "--nextpnr-arg=router2"]) == 1
    assert main(["synth", "parser", "--json"]) == 1
    assert main(["synth", "parser", "--json", "--no-tmg-ripup"]) == 1
    assert main(["synth", "classifier", "--json"]) == 1
    assert seen == [["--router", "router1"], ["--router", "router2"], ["--tmg-ripup"], [], []]


@pytest.mark.parametrize("stop", ["synth", "pack", "place"])
def test_flow_stops_early(stop, tmp_path):
    """``stop``: yosys counts only; packing adds the device utilization; placement adds
    nextpnr's fmax estimate (from its log: the report's fmax is empty without routing)."""
    r = synthesize(Counter(), workdir=tmp_path, stop=stop)
    assert r["stage"] == stop and r["ff"] == 16 and "bitstream" not in r
    assert bool(r["device"]) == (stop != "synth")
    if stop == "place":
        assert r["fmax"]["sync"] > 125.0 and r["met"] is True
    else:
        assert r["fmax"] == {} and r["met"] is None
    assert not (tmp_path / "top.config").exists()


def test_placed_fmax_from_log():
    from tunnelnic.synth import _placed_fmax
    pre = "Info: Max frequency for clock "
    log = (f"{pre}'$glbnet$clk$TRELLIS_IO_IN': 111.00 MHz (FAIL at 125.00 MHz)\n"
           f"{pre}        '$glbnet$eth1.rx1_clk': 123.96 MHz (FAIL at 125.00 MHz)\n"
           f"{pre}'rx1_clk': 150.50 MHz (PASS at 125.00 MHz)\n"
           f"{pre}'$glbnet$clk$TRELLIS_IO_IN': 118.60 MHz (FAIL at 125.00 MHz)\n")
    assert _placed_fmax(log) == {
        "$glbnet$clk$TRELLIS_IO_IN": {"achieved": 118.6, "constraint": 125.0},
        "rx1_clk": {"achieved": 150.5, "constraint": 125.0},
        "$glbnet$eth1.rx1_clk": {"achieved": 123.96, "constraint": 125.0}}


def test_cli_stop_synth(tmp_path, capsys):
    code = main(["synth", "tests.test_synth:Counter", "--stop", "synth",
                 "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "not analysed (stopped after yosys)" in out
