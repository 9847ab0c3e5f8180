"""RSC benchmark: line-rate input (is ``i.ready`` ever deasserted?) and aggregate sizes, in
simulation, then synthesis.

    python -m benchmarks.rsc [--quick] [--no-synth]

Scenarios (DESIGN.md section 8, issue 4): plain TCP frames of 1514 and of 64 bytes, offered
back to back (valid never paused: one beat per cycle, 8 cycles per 64-byte frame at W=8),
the flows interleaved round robin, 1, 8, N = 32 and N + 1 of them (then every frame evicts
the oldest context: it is the flow whose frame comes next); the output is always ready. Then
a long bulk flow of 1514-byte frames (MSS 1460), which should give aggregates of
``(65535 - 40) // 1460`` = 44 segments, the most that fit an IPv4 total length.

For each, the benchmark counts the cycles in which a beat was offered and ``i.ready`` was low
(from the first beat offered to the last one taken), the aggregates and their average size,
and waits until every frame has come out (in an aggregate or alone) before the next scenario.
Then the engine (W=8, N=32, default pool) is synthesized for LFE5UM-45F speed 8
(:mod:`tunnelnic.synth`: LUT4/FF/EBR, fmax, critical path).
"""

import argparse
import json
import os
import sys
import tempfile

CONTEXTS = 32
BUILD = dict(width=8, contexts=CONTEXTS, pages=144, page_bytes=512)


def scenarios(quick):
    n = 48 if quick else 192
    out = []
    for size in (1514, 64):
        for flows in (1, 8, CONTEXTS, CONTEXTS + 1):
            count = n if size == 1514 else 8 * n
            out.append({"name": "line rate", "size": size, "flows": flows,
                        "frames": max(count, 4 * flows)})
    out.append({"name": "bulk", "size": 1514, "flows": 1, "frames": 2 * 44 if quick else 4 * 44})
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
    print("RSC engine, W=8, N=32, 144 pages of 512 B, plain TCP, input back to back, "
          "output always ready")
    print(f"{'scenario':>9} {'frame':>6} {'flows':>5} {'frames':>6} {'cycles':>7} "
          f"{'ready low':>9} {'out':>5} {'aggregates':>10} {'avg segs':>8} {'max segs':>8}")
    for r in results:
        print(f"{r['name']:>9} {r['size']:>6} {r['flows']:>5} {r['frames']:>6} "
              f"{r['cycles']:>7} {r['stalls']:>9} {r['outputs']:>5} {r['aggs']:>10} "
              f"{r['avg_segs']:>8.1f} {r['max_segs']:>8}")
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
        import logging
        from amaranth.lib import data
        from cocotb.triggers import ClockCycles, RisingEdge
        from cocotbext.axi import AxiStreamFrame
        from hw.rsc_layouts import RxMeta
        from tunnelnic.model import encode_record, parse
        from tunnelnic.rtlsim.bench import StreamBench, frame_meta
        from sim.test_rsc_streams import Flow
        job = json.loads(os.environ["RSC_BENCH"])
        tb = StreamBench(dut, stalls=False)
        for model in list(tb.source.values()) + list(tb.sink.values()):
            model.log.setLevel(logging.WARNING)     # not every frame in the log
        dut.enable.value = 1
        dut.timeout_us.value = 0
        dut.max_bytes.value = 65535
        dut.max_segs.value = 64
        dut.flush_all.value = 0
        dut.dbg_index.value = 0
        from hw.rsc_layouts import STAT_NAMES
        counts = dict.fromkeys(STAT_NAMES, 0)
        events = []
        clock = [0]
        done = [0]       # frames of the scenarios before

        async def monitor():
            while True:
                await RisingEdge(dut.clk)
                clock[0] += 1
                v = dut.stats.value
                if v.is_resolvable and int(v):
                    for i, name in enumerate(STAT_NAMES):
                        if int(v) >> i & 1:
                            counts[name] += 1
                            events.append((clock[0], name))
                if int(dut.flush_all.value):
                    events.append((clock[0], "FLUSH_ALL_IN"))

        await tb.reset()
        cocotb.start_soon(monitor())
        await ClockCycles(dut.clk, BUILD["pages"] + 10)   # the free list refills after reset
        results = []
        base = 3000
        for sc in job["scenarios"]:
            payload = sc["size"] - 54
            flows = [Flow("plain", sport=base + i) for i in range(sc["flows"])]
            base += sc["flows"]
            frames = []
            for k in range(sc["frames"]):
                f = flows[k % len(flows)].seg(payload)
                frames.append((f, encode_record(parse(f, []))))
            metas = []
            src = tb.source["s_axis"]
            for f, rec in frames:
                await src.send(AxiStreamFrame(f, tuser=rec))
            stalls = 0
            cycles = 0
            started = False
            while not src.idle():
                await RisingEdge(dut.clk)
                offered = int(dut.s_axis_tvalid.value)
                started = started or offered
                if started:
                    cycles += 1
                    if offered and not int(dut.s_axis_tready.value):
                        stalls += 1
            # Every frame decided (the decision can wait for room in the job queue), then
            # flush what is held.
            while counts["packets_in"] < sum(1 for _ in frames) + done[0]:
                await RisingEdge(dut.clk)
            await ClockCycles(dut.clk, 100)
            done[0] += len(frames)
            dut.flush_all.value = 1
            await RisingEdge(dut.clk)
            dut.flush_all.value = 0
            snk = tb.sink["m_axis"]
            while sum(int(m.segs) for m in metas) < len(frames):
                try:
                    fr = await tb.recv(timeout_cycles=20000)
                except Exception:
                    e = dut.dut.engine
                    state = {n: str(getattr(h, n).value) for h, names in (
                        (e, ["fsm_state", "free_count", "s_axis_tready" if False else "i__ready",
                             "room", "inflight"]),
                        (e.emit, ["fsm_state", "j__valid", "o__valid"]),
                        (e.cam, ["valid"]),
                        (e.ing, ["d__valid", "alloc_ok"])) for n in names}
                    raise AssertionError(f"{sum(int(m.segs) for m in metas)} of {len(frames)} "
                                         f"frames out, then nothing; engine: {state}; "
                                         f"counters {counts}; events {events[-14:]}; outputs "
                                         f"{[(int(m.segs), int(m.ctx)) for m in metas]}")
                metas.append(data.Layout.cast(RxMeta).from_bits(frame_meta(fr)))
            assert sum(int(m.segs) for m in metas) == len(frames)
            await ClockCycles(dut.clk, 50)
            assert snk.empty(), "more output than input"
            aggs = [int(m.segs) for m in metas if m.agg]
            results.append(dict(sc, cycles=cycles, stalls=stalls, outputs=len(metas),
                                aggs=len(aggs), max_segs=max(aggs, default=0),
                                avg_segs=sum(aggs) / len(aggs) if aggs else 0.0))
            dut._log.warning(f"{results[-1]}")
        with open(job["out"], "w") as fh:
            json.dump(results, fh)


if __name__ == "__main__":
    sys.exit(main())
