"""``tunnelnic tso`` RTL path: the pcap through the simulated engine equals the model's output."""

from scapy.utils import rdpcap

from tunnelnic.cli import main
from tunnelnic.commands.tso import run_model


def test_rtl_path(tmp_path, capsys):
    from tests.test_cli_tso import pcap_frames
    from tunnelnic.presets import preset
    frames, src = pcap_frames(tmp_path)
    dst = tmp_path / "out.pcap"
    assert main(["tso", str(src), str(dst), "--profile", "vxlan", "--mss", "1000"]) == 0
    got = [bytes(p) for p in rdpcap(str(dst))]
    want, counts = run_model(frames, [preset("vxlan")], mss=1000, default_mss=1448)
    assert got == want
    out = capsys.readouterr().out
    for name, value in counts.items():
        assert f"  {name:<22} {value}\n" in out
