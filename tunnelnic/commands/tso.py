"""``tunnelnic tso IN.pcap OUT.pcap``: segment the TCP superframes of a pcap, as the NIC would.

Every frame of IN.pcap is handed to the TSO with a request (``--mss``, 0 = the default MSS
register ``--default-mss``; ``--no-request`` sends none, so everything passes through). By
default the RTL engine (:class:`hw.tso.TsoEngine`) runs in simulation (Icarus, through
:mod:`tunnelnic.rtlsim`), fed with the parse records of the reference parser model; ``--model``
runs the reference model (:mod:`tunnelnic.model.tso`) instead. The segments and pass-through
frames are written to OUT.pcap in order, and the engine's counters are printed.

Profiles: ``--profile NAME`` (a preset, repeatable, first match wins) and/or
``--profile-fields k=v,k=v,...`` (explicit :class:`hw.profile.Profile` fields, repeatable).
"""

import json
import os
import sys
import tempfile

import cocotb

__all__ = ["register", "load_profiles", "run_model", "run_rtl"]

COUNTERS = ("superframes", "segments", "bytes_out", "passed", "pass_no_request",
            "pass_not_offloadable", "pass_mss_zero", "pass_mss_too_large", "pass_length",
            "truncated")


def load_profiles(presets=(), explicit=()):
    """Profile table from preset names and ``k=v,k=v`` strings (in that order)."""
    from tunnelnic.presets import preset, validate
    table = [preset(name) for name in presets]
    for text in explicit:
        fields = {k: 0 for k in preset("vxlan")}
        for item in filter(None, text.split(",")):
            key, _, value = item.partition("=")
            if key.strip() not in fields:
                raise ValueError(f"unknown profile field {key.strip()!r}")
            fields[key.strip()] = int(value, 0)
        validate(fields)
        table.append(fields)
    if len(table) > 8:
        raise ValueError(f"at most 8 profiles, got {len(table)}")
    return table


def run_model(frames, profiles, *, mss, default_mss, request=True):
    """Reference model over ``frames``: (output frames, counters)."""
    from hw.tso_defs import TsoReason
    from tunnelnic.model.tso import tso
    out, counts = [], dict.fromkeys(COUNTERS, 0)
    for frame in frames:
        segs, reason = tso(frame, profiles, tso=request, mss=mss, default_mss=default_mss)
        out += segs
        counts["bytes_out"] += sum(len(s) for s in segs)
        if reason in (None, TsoReason.TRUNCATED):
            counts["superframes"] += 1
            counts["segments"] += len(segs)
            counts["truncated"] += reason == TsoReason.TRUNCATED
        else:
            counts["passed"] += 1
            counts["pass_" + reason.name.lower()] += 1
    return out, counts


@cocotb.test()
async def rtl_pcap(dut):
    """cocotb side of :func:`run_rtl` (inputs and outputs through JSON files)."""
    from cocotb.triggers import RisingEdge

    from hw.tso_defs import tso_stats_layout
    from tunnelnic.rtlsim.bench import StreamBench, frame_bytes
    from tunnelnic.rtlsim.runner import params
    with open(os.environ["TSO_PCAP_IN"]) as f:
        job = json.load(f)
    tb = StreamBench(dut, stalls=False)
    dut.enable.value = 1
    dut.mss_default.value = job["default_mss"]
    await tb.reset()
    fields = [(name, f.offset, f.width) for name, f in tso_stats_layout(params()["width"])]
    counts = dict.fromkeys(COUNTERS, 0)
    for item in job["frames"]:
        await tb.send(bytes.fromhex(item["frame"]), int(item["tuser"], 16))
    out = []
    idle = 0
    while idle < 2000:
        await RisingEdge(dut.clk)
        v = int(dut.stats.value)
        for name, off, width in fields:
            counts[name] += (v >> off) & ((1 << width) - 1)
        if not tb.sink["m_axis"].empty():
            out.append(frame_bytes(tb.sink["m_axis"].recv_nowait()).hex())
            idle = 0
        elif tb.source["s_axis"].empty() and not int(dut.m_axis_tvalid.value):
            idle += 1
    with open(os.environ["TSO_PCAP_OUT"], "w") as f:
        json.dump({"frames": out, "counts": counts}, f)


def run_rtl(frames, profiles, *, mss, default_mss, request=True, width=8):
    """The RTL engine in simulation over ``frames``: (output frames, counters)."""
    from amaranth.hdl import Shape

    from hw.layouts import ParseRecord
    from hw.tso import TsoEngine
    from tunnelnic.model.parse import parse
    from tunnelnic.model.record import encode_record
    from tunnelnic.rtlsim.runner import run
    rec_bits = Shape.cast(ParseRecord(64)).width
    user = (int(request) | (mss << 1)) << rec_bits
    job = {"default_mss": default_mss,
           "frames": [{"frame": bytes(fr).hex(),
                       "tuser": f"{encode_record(parse(bytes(fr), profiles)) | user:x}"}
                      for fr in frames]}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
        with open(src, "w") as f:
            json.dump(job, f)
        run(lambda: TsoEngine(width), {"width": width, "seed": 3}, __name__,
            name=f"tso-w{width}", extra_env={"TSO_PCAP_IN": src, "TSO_PCAP_OUT": dst})
        with open(dst) as f:
            res = json.load(f)
    return [bytes.fromhex(h) for h in res["frames"]], res["counts"]


def _main(args):
    from scapy.utils import rdpcap, wrpcap
    from scapy.layers.l2 import Ether
    try:
        profiles = load_profiles(args.profile or (), args.profile_fields or ())
    except ValueError as exc:
        print(f"tunnelnic tso: {exc}", file=sys.stderr)
        return 2
    frames = [bytes(p) for p in rdpcap(args.input)]
    kw = dict(mss=args.mss, default_mss=args.default_mss, request=not args.no_request)
    if args.model:
        out, counts = run_model(frames, profiles, **kw)
    else:
        out, counts = run_rtl(frames, profiles, width=args.width, **kw)
    wrpcap(args.output, [Ether(f) for f in out])
    print(f"{len(frames)} frames in, {len(out)} frames out "
          f"({'model' if args.model else f'RTL W={args.width}'})")
    for name in COUNTERS:
        print(f"  {name:<22} {counts.get(name, 0)}")
    return 0


def register(subparsers):
    p = subparsers.add_parser("tso", help="segment a pcap's TCP superframes (RTL sim or model)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("input", metavar="IN.pcap")
    p.add_argument("output", metavar="OUT.pcap")
    p.add_argument("--profile", action="append", metavar="NAME",
                   help="profile preset (gre-key, gre-cks, nvgre, vxlan, vxlan-csum, geneve, "
                        "private-udp); repeatable, first match wins")
    p.add_argument("--profile-fields", action="append", metavar="K=V,...",
                   help="a profile by explicit fields (hw.profile.Profile); repeatable")
    p.add_argument("--mss", type=int, default=0,
                   help="MSS requested for every frame (0: the default MSS register)")
    p.add_argument("--default-mss", type=int, default=1448, help="default MSS register")
    p.add_argument("--no-request", action="store_true", help="send no TSO request")
    p.add_argument("--model", action="store_true", help="run the reference model, not the RTL")
    p.add_argument("--width", type=int, default=8, help="datapath width of the RTL (4, 8, 16)")
    p.set_defaults(func=_main)
