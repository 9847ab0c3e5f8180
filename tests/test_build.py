"""Board tops, `tunnelnic build` and `tunnelnic program`.

The Versa build with the NIC core (``--datapath nic``; place and route, no bitstream packing)
asserts every clock is present and meets its target (125 MHz for the RGMII clocks, the board's
core clock for ``core``). It takes about half an hour here, so it is ``long`` like the
bitstream of every board; CI's ``./dev build`` builds the same NIC (the Versa's default
``auto``, boards/top.py) and fails when a clock misses.
"""

import shutil

import pytest

from boards import BOARDS, DEFAULT_BOARD, get_spec
from tunnelnic.cli import main
from tunnelnic.commands.program import loader_command
from tunnelnic.synth_board import _check_clocks, build_board, expected_clocks


def test_board_registry():
    assert DEFAULT_BOARD == "versa"
    versa = get_spec("versa")
    assert versa.platform().device == "LFE5UM-45F"
    assert versa.eth_ports == (0, 1)
    assert get_spec("ecpix5").eth_ports == (0,)
    with pytest.raises(ValueError, match="unknown board 'nope'"):
        get_spec("nope")
    assert expected_clocks(versa) == {"sync": 125.0, "tx90": 125.0, "rx0": 125.0, "rx1": 125.0}
    assert expected_clocks(versa, core_div=12) == {"sync": 125.0, "tx90": 125.0, "rx0": 125.0,
                                                  "rx1": 125.0, "core": 52.083}


def test_clock_check_fails_on_missing_or_slow_clock():
    expected = {"sync": 125.0, "rx0": 125.0}
    r = {"fmax": {"clk": 150.0, "eth0.rx0_clk": 200.0}, "target": {}}
    _check_clocks(r, expected)
    assert r["met"] and r["fmax"] == {"sync": 150.0, "rx0": 200.0}
    r = {"fmax": {"clk": 150.0}, "target": {}}          # rx0 has no timed path: not a pass
    _check_clocks(r, expected)
    assert not r["met"] and r["missing_clocks"] == ["rx0"]
    r = {"fmax": {"clk": 120.0, "eth0.rx0_clk": 200.0}, "target": {}}
    _check_clocks(r, expected)
    assert not r["met"]


@pytest.fixture(scope="module")
def versa_report(tmp_path_factory):
    return build_board("versa", tmp_path_factory.mktemp("build"), bitstream=False, datapath="nic")


@pytest.mark.long
def test_versa_places_routes_and_meets_timing(versa_report):
    from boards.clocking import core_mhz
    from boards.top import NIC_PARAMS
    r = versa_report
    assert r["part"] == "LFE5UM-45F-8CABGA381"
    assert r["datapath"] == "nic"
    assert set(r["fmax"]) == {"sync", "tx90", "rx0", "rx1", "core"}
    assert r["target"].pop("core") == round(core_mhz(NIC_PARAMS["core_div"]), 3)
    assert all(t == 125.0 for t in r["target"].values())
    assert r["met"], r["fmax"]
    assert r["device"]["EHXPLLL"]["used"] == 1
    # Two RGMII ports of 12 data/control/clock pins each are DDR: IOLOGIC used.
    assert r["device"]["IOLOGIC"]["used"] >= 20
    assert r["device"]["TRELLIS_COMB"]["used"] < r["device"]["TRELLIS_COMB"]["available"]


def test_build_stops_after_packing(tmp_path, capsys):
    """``--stop pack``: utilization without placement, no bitstream, no timing verdict."""
    assert main(["build", "--datapath", "standin", "--stop", "pack", "--out", str(tmp_path),
                 "--json"]) == 0
    import json
    r = json.loads(capsys.readouterr().out)
    assert r["stage"] == "pack" and r["met"] is None and r["fmax"] == {}
    assert r["device"]["TRELLIS_COMB"]["used"] > 0 and "bitstream" not in r


def test_program_command_for_each_board():
    assert loader_command("versa", "out") == ["openFPGALoader", "-c", "ft2232", "out/versa/top.bit"]
    assert loader_command("ecpix5", "b", flash=True) == [
        "openFPGALoader", "-b", "ecpix5", "-f", "b/ecpix5/top.bit"]


def test_program_prints_command_without_loader(tmp_path, capsys, monkeypatch):
    (tmp_path / "versa").mkdir()
    (tmp_path / "versa" / "top.bit").write_bytes(b"\xff")
    monkeypatch.setenv("OPENFPGALOADER", "no-such-openFPGALoader")
    assert main(["program", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert out.out.strip() == f"no-such-openFPGALoader -c ft2232 {tmp_path}/versa/top.bit"
    assert "not found" in out.err


def test_program_without_bitstream(tmp_path, capsys):
    assert main(["program", "--out", str(tmp_path)]) == 1
    assert "tunnelnic build" in capsys.readouterr().err


def test_build_rejects_unknown_board():
    with pytest.raises(SystemExit) as exc:
        main(["build", "--board", "nope"])
    assert exc.value.code == 2


@pytest.mark.long
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_bitstream_for_every_board(board, tmp_path, capsys):
    code = main(["build", "--board", board, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert (tmp_path / board / "top.bit").stat().st_size > 100_000
    assert (tmp_path / board / "top.svf").exists()
    assert "timing met on every clock" in out


def test_datapath_choice():
    from boards.top import BoardTop, mac_available
    spec = get_spec("versa")
    top = BoardTop(spec, datapath="standin")
    spec.platform().prepare(top)
    assert top.chosen_datapath == "standin"
    auto = BoardTop(spec)
    spec.platform().prepare(auto)
    # The NIC where it routes timing-clean (the Versa), else the MACs alone (boards/top.py).
    assert spec.auto_nic
    assert auto.chosen_datapath == ("nic" if mac_available() else "standin")
    for board in sorted(BOARDS):
        spec = get_spec(board)
        auto = BoardTop(spec)
        spec.platform().prepare(auto)
        assert auto.chosen_datapath == ("nic" if spec.auto_nic else "mac")
    for board in sorted(BOARDS):   # the NIC elaborates on every board
        spec = get_spec(board)
        nic = BoardTop(spec, datapath="nic")
        spec.platform().prepare(nic)
        assert nic.chosen_datapath == "nic"
    with pytest.raises(ValueError, match="unknown datapath"):
        BoardTop(spec, datapath="nope")
