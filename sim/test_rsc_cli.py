"""``tunnelnic rsc``: both paths (reference model and RTL in simulation) on a small pcap."""

from tunnelnic.cli import main
from tunnelnic.commands.rsc import read_pcap, write_pcap

from sim.test_rsc_streams import Flow


def _input(tmp_path):
    a, b = Flow("vxlan", flow=1), Flow("vxlan", flow=2)
    frames = [a.seg(), b.seg(), a.seg(), b.seg(), a.seg(flags="PA"), b.seg(),
              bytes(range(60))]
    path = tmp_path / "in.pcap"
    write_pcap(str(path), [(f, 10 * i) for i, f in enumerate(frames)])
    return path, frames


def test_rsc_cli_model(tmp_path, capsys):
    path, frames = _input(tmp_path)
    out = tmp_path / "out.pcap"
    assert main(["rsc", str(path), str(out), "--profile", "vxlan", "--model"]) == 0
    got = [f for f, _ in read_pcap(str(out))]
    # flow 1: 3 segments (PSH flushes), the garbage frame, flow 2 at the final flush.
    assert len(got) == 3
    assert got[1] == frames[-1]
    text = capsys.readouterr().out
    assert "aggregates_out   2" in text and "pass_through     1" in text


def test_rsc_cli_rtl(tmp_path, capsys):
    path, frames = _input(tmp_path)
    model_out, rtl_out = tmp_path / "m.pcap", tmp_path / "r.pcap"
    assert main(["rsc", str(path), str(model_out), "--profile", "vxlan", "--model",
                 "--contexts", "8"]) == 0
    assert main(["rsc", str(path), str(rtl_out), "--profile", "vxlan", "--contexts", "8"]) == 0
    assert [f for f, _ in read_pcap(str(rtl_out))] == [f for f, _ in read_pcap(str(model_out))]
    assert "merged           6" in capsys.readouterr().out
