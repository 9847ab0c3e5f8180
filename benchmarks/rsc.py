"""RSC benchmark: line-rate input (ready never deasserted?) and aggregate sizes, in simulation.

    python -m benchmarks.rsc [--quick]

For each scenario (frame size x number of interleaved flows), plain TCP frames are offered
back to back (valid never paused, output always ready) and the benchmark counts the cycles
in which the engine held ``i.ready`` low while a beat was offered, and the average number of
segments per aggregate. Then the engine (W=8, N=32) is synthesized for LFE5UM-45F speed 8 with
``tunnelnic.synth`` (LUT4/FF/EBR, fmax; skip with ``--no-synth``).
"""

import argparse
import json
import os
import sys
import tempfile

CONTEXTS = 32
BUILD = dict(width=8, contexts=CONTEXTS, pages=144, page_bytes=512)


def scenarios(quick):
    n = 24 if quick else 96
    out = []
    for size in (1514, 64):
        for flows in (1, 8, CONTEXTS):
            count = n if size == 1514 else 8 * n
            out.append({"size": size, "flows": flows, "frames": max(count, 2 * flows)})
    return out


def _make_dut(width, contexts, pages, page_bytes):
    from sim.test_rsc_top import RscTop
    return RscTop(width, contexts=contexts, pages=pages, page_bytes=page_bytes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames per scenario")
    ap.add_argument("--no-synth", action="store_true", help="skip synthesis (yosys/nextpnr)")
    args = ap.parse_args(argv)
    from tunnelnic.rtlsim.runner import run
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        run(lambda: _make_dut(**BUILD), BUILD, "benchmarks.rsc", name="rsc-bench",
            extra_env={"RSC_BENCH": json.dumps({"scenarios": scenarios(args.quick),
                                                "out": out})})
        with open(out) as fh:
            results = json.load(fh)
    print("RSC engine, W=8, N=32, 144 pages of 512 B, plain TCP back to back, output ready")
    print(f"{'frame':>6} {'flows':>5} {'frames':>6} {'cycles':>7} {'ready low':>9} "
          f"{'aggregates':>10} {'avg segs':>8}")
    for r in results:
        print(f"{r['size']:>6} {r['flows']:>5} {r['frames']:>6} {r['cycles']:>7} "
              f"{r['stalls']:>9} {r['aggs']:>10} {r['avg_segs']:>8.1f}")
    if args.no_synth:
        return 0
    from hw.rsc import RscEngine
    from tunnelnic.synth import format_report, synthesize
    result = synthesize(RscEngine(8, contexts=CONTEXTS), clocks={"sync": 125.0})
    print(format_report(result, title="RSC engine W=8 N=32, LFE5UM-45F speed 8, 125 MHz target"))
    return 0


# --- cocotb side -------------------------------------------------------------------------------

try:
    import cocotb
except ImportError:      # pragma: no cover
    cocotb = None

if cocotb is not None:
    @cocotb.test()
    async def bench(dut):
        from amaranth.lib import data
        from cocotb.triggers import ClockCycles, RisingEdge
        from cocotbext.axi import AxiStreamFrame
        from hw.rsc_layouts import RxMeta
        from tunnelnic.model import encode_record, parse
        from tunnelnic.rtlsim.bench import StreamBench, frame_meta
        from sim.test_rsc_streams import Flow
        job = json.loads(os.environ["RSC_BENCH"])
        tb = StreamBench(dut, stalls=False)
        dut.enable.value = 1
        dut.timeout_us.value = 0
        dut.max_bytes.value = 65535
        dut.max_segs.value = 64
        dut.flush_all.value = 0
        dut.dbg_index.value = 0
        await tb.reset()
        results = []
        for sc in job["scenarios"]:
            payload = sc["size"] - 54
            flows = [Flow("plain", sport=3000 + i) for i in range(sc["flows"])]
            frames = []
            for k in range(sc["frames"]):
                f = flows[k % len(flows)].seg(payload)
                frames.append((f, encode_record(parse(f, []))))
            stalls = 0
            cycles = 0
            metas = []

            async def collect():
                while True:
                    fr = await tb.sink["m_axis"].recv()
                    metas.append(data.Layout.cast(RxMeta).from_bits(frame_meta(fr)))

            task = cocotb.start_soon(collect())
            src = tb.source["s_axis"]
            for f, rec in frames:
                await src.send(AxiStreamFrame(f, tuser=rec))
            while not src.idle():
                await RisingEdge(dut.clk)
                cycles += 1
                if int(dut.s_axis_tvalid.value) and not int(dut.s_axis_tready.value):
                    stalls += 1
            await ClockCycles(dut.clk, 100)
            dut.flush_all.value = 1
            await RisingEdge(dut.clk)
            dut.flush_all.value = 0
            await ClockCycles(dut.clk, 3000)
            task.cancel()
            aggs = [m for m in metas if m.agg]
            results.append(dict(sc, cycles=cycles, stalls=stalls, aggs=len(aggs),
                                avg_segs=(sum(int(m.segs) for m in aggs) / len(aggs))
                                if aggs else 0.0))
        with open(job["out"], "w") as fh:
            json.dump(results, fh)


if __name__ == "__main__":
    sys.exit(main())
