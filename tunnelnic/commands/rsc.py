"""``tunnelnic rsc IN.pcap OUT.pcap --profile vxlan [--model]``: what the NIC's RSC hands the host.

Runs every frame of ``IN.pcap`` through the parser model and then through the RSC engine, the
RTL in simulation by default (cocotb, hw/rsc.py) or the reference model with ``--model``, and
writes the resulting packets (aggregates and pass-throughs) to ``OUT.pcap``. A flush-all
follows the last frame. The counters are printed.
"""

import json
import os
import sys
import tempfile

__all__ = ["register", "main", "run_model", "run_rtl", "read_pcap", "write_pcap"]

CYCLES_PER_US = 10


def register(subparsers):
    p = subparsers.add_parser(
        "rsc", help="run a pcap through RSC (receive segment coalescing)",
        description=__doc__.split("\n\n")[1].strip())
    p.add_argument("input", metavar="IN.pcap")
    p.add_argument("output", metavar="OUT.pcap")
    p.add_argument("--profile", default="plain",
                   help="preset of the tunnel profile (plain: no profile; "
                        "gre-key, gre-cks, nvgre, vxlan, vxlan-csum, geneve, private-udp)")
    p.add_argument("--model", action="store_true", help="use the reference model, not the RTL")
    p.add_argument("--width", type=int, default=8, help="RTL datapath bytes per beat")
    p.add_argument("--contexts", type=int, default=32, help="flow contexts (N)")
    p.add_argument("--timeout-us", type=int, default=0, help="flush timeout, 0 = none")
    p.add_argument("--max-segs", type=int, default=64, help="segments per aggregate")
    p.add_argument("--max-bytes", type=int, default=65535,
                   help="cap of an aggregate's outer IPv4 total length")
    p.set_defaults(func=main)


def _profiles(name):
    from tunnelnic.presets import preset
    return [] if name == "plain" else [preset(name)]


def _config(args):
    from tunnelnic.model.rsc import RscConfig
    return RscConfig(contexts=args.contexts, timeout_us=args.timeout_us,
                     max_segs=args.max_segs, max_bytes=args.max_bytes)


def run_model(frames, profiles, config):
    """[(frame, time_us)] -> ([(frame, time_us)], counters) through the reference model."""
    from tunnelnic.model import parse
    from tunnelnic.model.rsc import RscModel
    model = RscModel(config)
    out = []
    t = 0
    for frame, t in frames:
        out += [(o.frame, t) for o in model.push(frame, parse(frame, profiles), t)]
    out += [(o.frame, t) for o in model.flush_all()]
    return out, model.counters


def run_rtl(frames, profiles, config, width=8):
    """Same as :func:`run_model`, through the RTL in simulation (cocotb)."""
    from tunnelnic.rtlsim.runner import run
    with tempfile.TemporaryDirectory() as tmp:
        job = {"frames": [(f.hex(), t) for f, t in frames], "profiles": profiles,
               "timeout_us": config.timeout_us, "max_segs": config.max_segs,
               "max_bytes": config.max_bytes, "out": os.path.join(tmp, "out.json")}
        with open(os.path.join(tmp, "job.json"), "w") as fh:
            json.dump(job, fh)
        # Same parameters and name as sim/test_rsc.py's builds, so they share one build.
        build = dict(contexts=config.contexts, pages=192, page_bytes=512, max_frame=2048,
                     chain=False)
        run(lambda: _make_dut(width, **build), dict(build, width=width),
            "tunnelnic.commands.rsc", name=f"rsc-w{width}",
            extra_env={"RSC_JOB": os.path.join(tmp, "job.json")})
        with open(job["out"]) as fh:
            result = json.load(fh)
    return [(bytes.fromhex(f), t) for f, t in result["frames"]], result["counters"]


def _make_dut(width, contexts, pages, page_bytes, max_frame, chain=False):
    from sim.test_rsc_top import RscTop
    return RscTop(width, contexts=contexts, pages=pages, page_bytes=page_bytes,
                  max_frame=max_frame, cycles_per_us=CYCLES_PER_US)


def read_pcap(path):
    """[(frame bytes, time in microseconds from the first frame)] of a pcap file."""
    from scapy.utils import RawPcapReader
    frames = []
    t0 = None
    with RawPcapReader(path) as reader:
        for data, meta in reader:
            t = meta.sec * 1_000_000 + meta.usec
            t0 = t if t0 is None else t0
            frames.append((bytes(data), t - t0))
    return frames


def write_pcap(path, frames):
    """Write [(frame bytes, time_us)] as a classic Ethernet pcap (bytes exactly as given)."""
    import struct
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for frame, t in frames:
            fh.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame),
                                 len(frame)))
            fh.write(frame)


def main(args):
    frames = read_pcap(args.input)
    profiles = _profiles(args.profile)
    config = _config(args)
    if args.model:
        out, counters = run_model(frames, profiles, config)
    else:
        out, counters = run_rtl(frames, profiles, config, args.width)
    write_pcap(args.output, out)
    print(f"rsc ({'model' if args.model else 'RTL'}, profile {args.profile}): "
          f"{len(frames)} frames in, {len(out)} packets out")
    for name, value in counters.items():
        print(f"  {name:16s} {value}")
    return 0


# --- the cocotb side of run_rtl (runs inside the simulator) ----------------------------------

try:
    import cocotb
except ImportError:      # pragma: no cover - cocotb is a pinned dependency
    cocotb = None

if cocotb is not None:
    @cocotb.test()
    async def rsc_job(dut):
        from cocotb.triggers import ClockCycles, RisingEdge
        from tunnelnic.model import encode_record, parse
        from tunnelnic.rtlsim.bench import StreamBench, frame_bytes
        from hw.rsc_layouts import STAT_NAMES
        with open(os.environ["RSC_JOB"]) as fh:
            job = json.load(fh)
        tb = StreamBench(dut, stalls=False)
        dut.enable.value = 1
        dut.timeout_us.value = job["timeout_us"]
        dut.max_segs.value = job["max_segs"]
        dut.max_bytes.value = job["max_bytes"]
        dut.flush_all.value = 0
        dut.dbg_index.value = 0
        await tb.reset()
        counts = dict.fromkeys(STAT_NAMES, 0)
        out = []

        async def monitor():
            while True:
                await RisingEdge(dut.clk)
                v = int(dut.stats.value)
                for i, name in enumerate(STAT_NAMES):
                    counts[name] += v >> i & 1

        async def collect():
            while True:
                f = await tb.sink["m_axis"].recv()
                out.append((frame_bytes(f).hex(), 0))

        cocotb.start_soon(monitor())
        cocotb.start_soon(collect())
        src = tb.source["s_axis"]
        now = 0
        for hexframe, t in job["frames"]:
            frame = bytes.fromhex(hexframe)
            if t > now and job["timeout_us"]:
                while not src.idle():
                    await RisingEdge(dut.clk)
                wait = min(t - now, job["timeout_us"] + 1) * CYCLES_PER_US + 100
                await ClockCycles(dut.clk, wait)
            now = t
            await src.send(__import__("cocotbext.axi", fromlist=["AxiStreamFrame"])
                           .AxiStreamFrame(frame, tuser=encode_record(
                               parse(frame, job["profiles"]))))
        while not src.idle():
            await RisingEdge(dut.clk)
        await ClockCycles(dut.clk, 100)
        dut.flush_all.value = 1
        await RisingEdge(dut.clk)
        dut.flush_all.value = 0
        idle = 0
        while idle < 2000:        # until the output has been quiet for a while
            n = len(out)
            await ClockCycles(dut.clk, 100)
            idle = idle + 100 if len(out) == n else 0
        with open(job["out"], "w") as fh:
            json.dump({"frames": out, "counters": counts}, fh)
