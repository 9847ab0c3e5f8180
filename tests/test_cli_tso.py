"""``tunnelnic tso``: the --model path end to end on a pcap (the RTL path: sim/test_tso_cli.py)."""

from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from tunnelnic.cli import main
from tunnelnic.model.tso import tso
from tunnelnic.packets import build_packet
from tunnelnic.presets import preset


def pcap_frames(tmp_path):
    frames = [build_packet("vxlan", payload=bytes(range(256)) * 12, flags="PA"),
              build_packet("plain", payload=b"hello"),
              build_packet("vxlan", payload=bytes(3000), udp_csum=True)]
    src = tmp_path / "in.pcap"
    wrpcap(str(src), [Ether(f) for f in frames])
    return frames, src


def test_model_path(tmp_path, capsys):
    frames, src = pcap_frames(tmp_path)
    dst = tmp_path / "out.pcap"
    assert main(["tso", str(src), str(dst), "--profile", "vxlan", "--mss", "1000",
                 "--model"]) == 0
    got = [bytes(p) for p in rdpcap(str(dst))]
    want = []
    for f in frames:
        want += tso(f, [preset("vxlan")], mss=1000)[0]
    assert got == want
    out = capsys.readouterr().out
    assert "superframes            3" in out and f"segments               {len(want)}" in out


def test_explicit_fields_and_errors(tmp_path, capsys):
    frames, src = pcap_frames(tmp_path)
    dst = tmp_path / "out.pcap"
    fields = ",".join(f"{k}={v}" for k, v in preset("vxlan").items())
    assert main(["tso", str(src), str(dst), "--profile-fields", fields, "--model"]) == 0
    assert len(rdpcap(str(dst))) == 3 + 1 + 3   # default MSS 1448: 3072 B, 5 B, 3000 B
    assert main(["tso", str(src), str(dst), "--profile-fields", "bogus=1", "--model"]) == 2
