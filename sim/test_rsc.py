"""RSC engine (hw/rsc.py) against the reference model (tunnelnic/model/rsc.py) and scapy.

Frames are built by tunnelnic.packets, their parse records computed by the parser model and
sent as tuser (the engine's input is the parser's output); random valid pauses and ready
backpressure on both sides. Every case checks: the output frames and their metadata equal the
model's, in order; every aggregate (and every pass-through flagged checksum-good) passes
scapy's length and checksum checks; the statistics equal the model's counters.
"""

import json
import os
import random

import cocotb
import pytest
from cocotb.triggers import ClockCycles, RisingEdge

from sim.test_rsc_streams import TABLE
from tunnelnic.rtlsim.runner import params, run

CYCLES_PER_US = 10
#: The engine under test (contexts = the matrix's TABLE; 192 pages so that the pool never
#: runs low: the model has no pool).
CONFIG = dict(contexts=TABLE, pages=192, page_bytes=512, max_frame=2048)


def make_dut(width, contexts, pages, page_bytes, max_frame, chain=False,
             desc_ram="distributed"):
    from sim.test_rsc_top import RscChainTop, RscTop
    top = RscChainTop if chain else RscTop
    return top(width, contexts=contexts, pages=pages, page_bytes=page_bytes,
               max_frame=max_frame, cycles_per_us=CYCLES_PER_US, desc_ram=desc_ram)


def table_bits(profiles, count=2):
    """The parser's profile table port value for ``profiles`` (the rest disabled)."""
    from amaranth.lib import data
    from hw.profile import Profile
    rows = list(profiles) + [{}] * (count - len(profiles))
    return data.ArrayLayout(Profile, count).const(rows).as_bits()


class RscBench:
    def __init__(self, dut, p):
        from tunnelnic.rtlsim.bench import StreamBench
        self.dut, self.p = dut, p
        self.tb = StreamBench(dut, seed=p["seed"], stalls=p.get("stalls", True))
        dut.enable.value = 1
        dut.timeout_us.value = 0
        dut.max_bytes.value = 65535
        dut.max_segs.value = 64
        dut.flush_all.value = 0
        dut.dbg_index.value = 0
        if p.get("chain"):
            dut.table.value = 0
        from hw.rsc_layouts import STAT_NAMES
        self.names = STAT_NAMES
        self.counts = dict.fromkeys(STAT_NAMES, 0)
        self.max_stall = 0

    async def monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            raw = self.dut.stats.value
            if not raw.is_resolvable:
                raise AssertionError(f"stats not 0/1: {raw} valid={self.dut.s_axis_tvalid.value} ready={self.dut.s_axis_tready.value} "
                                     f"({list(zip(reversed(self.names), str(raw)))})")
            v = int(raw)
            for i, name in enumerate(self.names):
                if v >> i & 1:
                    self.counts[name] += 1

    async def start(self):
        await self.tb.reset()
        cocotb.start_soon(self.monitor())

    async def run_case(self, profiles, frames, cfg):
        """Send ``frames`` ([(frame, time_us)]), flush all, return (hw outputs, model)."""
        from tunnelnic.model import encode_record, parse
        from tunnelnic.model.rsc import RscConfig, RscModel
        from tunnelnic.rtlsim.bench import frame_bytes, frame_meta
        from amaranth.lib import data
        from hw.rsc_layouts import RxMeta
        dut = self.dut
        dut.timeout_us.value = cfg.get("timeout_us", 0)
        dut.max_segs.value = cfg.get("max_segs", 64)
        dut.max_bytes.value = cfg.get("max_bytes", 65535)
        model = RscModel(RscConfig(contexts=self.p["contexts"],
                                   buffer_bytes=self.p["max_frame"], **cfg))
        expected = []
        before = dict(self.counts)
        now = 0
        for frame, t in frames:
            if t > now:
                # Let time pass on the engine too (the input has drained first), long enough
                # for its timeout scan to visit every slot (4 cycles per held context).
                await self.drain()
                await ClockCycles(dut.clk, (t - now) * CYCLES_PER_US + 4 * self.p["contexts"] + 8)
                now = t
            if frame is None:              # no frame: only time passes
                expected += model.advance(now)
                continue
            rec = parse(frame, profiles)
            expected += model.push(frame, rec, now)
            await self.tb.send(frame, None if self.p.get("chain") else encode_record(rec))
        await self.drain()
        # The debug read port shows what the model holds in every slot.
        for slot, ctx in enumerate(model.slots):
            dut.dbg_index.value = slot
            await ClockCycles(dut.clk, 2)
            assert int(dut.dbg_valid.value) == (ctx is not None), f"slot {slot} valid"
            if ctx is not None:
                assert int(dut.dbg_count.value) == ctx.count, f"slot {slot} count"
        dut.flush_all.value = 1
        await RisingEdge(dut.clk)
        dut.flush_all.value = 0
        expected += model.flush_all()
        got = []
        for _ in expected:
            f = await self.tb.recv(timeout_cycles=200000)
            meta = data.Layout.cast(RxMeta).from_bits(frame_meta(f))
            got.append((frame_bytes(f), meta))
        await ClockCycles(dut.clk, 200)
        if not self.tb.sink["m_axis"].empty():
            extra = await self.tb.recv()
            got.append((frame_bytes(extra), None))
        delta = {k: self.counts[k] - before[k] for k in self.counts}
        return got, expected, delta, model

    async def drain(self):
        src = self.tb.source["s_axis"]
        while not src.idle():
            await RisingEdge(self.dut.clk)
        # The parser (chain) holds up to a header window of beats plus its pipeline.
        await ClockCycles(self.dut.clk, 400 if self.p.get("chain") else 40)


def check_round_trip(got, frames, profiles):
    """TSO (reference model) of every aggregate with its metadata's MSS re-creates segments
    that were sent: the outputs, re-segmented, are the inputs (as a multiset)."""
    from collections import Counter
    from tunnelnic.model import parse
    from tunnelnic.model.tso import tso_record
    rebuilt = []
    for frame, meta in got:
        if meta.agg:
            segs, reason = tso_record(frame, parse(frame, profiles), mss=int(meta.mss))
            assert reason is None, f"TSO refuses an aggregate: {reason}"
            rebuilt += segs
        else:
            rebuilt.append(frame)
    assert Counter(rebuilt) == Counter(f for f, _ in frames if f is not None), \
        "TSO(RSC(x)) != x"


#: Matrix cases whose aggregates TSO re-creates exactly (constant ACK and window, incrementing
#: IDs, PSH only on a last segment).
ROUND_TRIP = {"equal", "large_small", "small_large", "psh_middle", "seq_gap", "interleaved",
              "flows_n", "tenant_isolation", "boundary_exact"}


def check(got, expected, delta, model_counters_before, model, encap):
    from tunnelnic.packets import check_checksums
    for n, ((frame, meta), e) in enumerate(zip(got, expected)):
        where = f"output {n}: expected segs={e.segs} agg={e.agg} len={len(e.frame)}"
        if frame != e.frame:
            diff = [i for i in range(min(len(frame), len(e.frame))) if frame[i] != e.frame[i]]
            raise AssertionError(f"{where}: frame differs (got {len(frame)} bytes, first "
                                 f"differing bytes {diff[:8]})")
        want = (e.agg, e.segs, e.mss, e.ctx, e.profile, e.kind, e.csum_ok)
        have = (bool(meta.agg), int(meta.segs), int(meta.mss), int(meta.ctx),
                int(meta.profile), int(meta.kind), bool(meta.csum_ok))
        assert have == want, f"{where}: meta {have} != {want}"
        if e.agg or e.csum_ok:
            assert check_checksums(frame, encap) == [], where
    assert len(got) == len(expected), f"{len(got)} outputs, the model gives {len(expected)}"
    for name, value in delta.items():
        want = model.counters.get(name, 0) - model_counters_before.get(name, 0)
        assert value == want, f"counter {name}: {value} != model {want}"


@cocotb.test()
async def matrix(dut):
    """The GRO-selftest-style matrix (sim/test_rsc_streams.py) for the requested presets."""
    from sim.test_rsc_streams import (MATRIX, TUNNEL_MATRIX, PRESET_ENCAP, case_config,
                                      profiles_for)
    p = case_params()
    bench = RscBench(dut, p)
    await bench.start()
    for name in p["presets"]:
        cases = dict(MATRIX)
        if name != "plain":
            cases.update(TUNNEL_MATRIX)
        if p.get("chain"):
            dut.table.value = table_bits(profiles_for(name))
        for case in p.get("cases") or list(cases):
            frames, _ = cases[case](name)
            frames = [f if isinstance(f, tuple) else (f, 0) for f in frames]
            got, expected, delta, model = await bench.run_case(profiles_for(name), frames,
                                                               case_config(case))
            dut._log.info(f"{name} {case}: {len(frames)} in, {len(got)} out")
            try:
                check(got, expected, delta, {}, model, PRESET_ENCAP[name][0])
                if case in ROUND_TRIP and name != "gre-cks":
                    check_round_trip(got, frames, profiles_for(name))
            except AssertionError as exc:
                raise AssertionError(f"{name} / {case}: {exc}") from exc


@cocotb.test()
async def mix(dut):
    """Random mixes of flows and garbage: equal to the model, every frame accounted for."""
    from sim.test_rsc_streams import PRESET_ENCAP, profiles_for, random_mix
    p = case_params()
    bench = RscBench(dut, p)
    await bench.start()
    rng = random.Random(p["seed"])
    for name in p["presets"]:
        if p.get("chain"):
            dut.table.value = table_bits(profiles_for(name))
        frames = [(f, 0) for f in random_mix(name, rng, p["count"])]
        cfg = {"max_segs": 8}
        got, expected, delta, model = await bench.run_case(profiles_for(name), frames, cfg)
        check(got, expected, delta, {}, model, PRESET_ENCAP[name][0])
        c = model.counters
        assert c["merged"] + c["pass_through"] + c["dropped"] == len(frames)
        assert sum(e.segs for e in expected) + c["dropped"] == len(frames)
        dut._log.info(f"{name}: {len(frames)} frames, {len(got)} out, {c}")


def case_params():
    """Inside a cocotb test: the build parameters plus this test's own settings."""
    p = params()
    p.update(json.loads(os.environ.get("RSC_TEST", "{}")))
    return p


def _run(width, presets, cases=None, seed=1, testcase=None, chain=False,
         desc_ram="distributed", **extra):
    cfg = dict(CONFIG, chain=chain, desc_ram=desc_ram)
    settings = dict(presets=presets, cases=cases, seed=seed, **extra)
    run(lambda: make_dut(width, **cfg), dict(cfg, width=width), "sim.test_rsc",
        name=f"rsc{'-chain' if chain else ''}-w{width}", testcase=testcase,
        extra_env={"RSC_TEST": json.dumps(settings)})


@pytest.mark.long
@pytest.mark.parametrize("width", [8, 4])
def test_matrix_plain(width):
    _run(width, ["plain"], testcase="matrix")


@pytest.mark.parametrize("preset", ["plain", "vxlan-csum"])
def test_matrix_default(preset):
    """Every matrix case at W=8 for plain TCP and for VXLAN with UDP checksum (the tunnel
    preset with the most fix-ups): the issue's matrix in the default run, one simulation per
    preset so that pytest-xdist runs them side by side."""
    _run(8, [preset], testcase="matrix")


def test_smoke_w4():
    """The other width: a few cases of plain TCP and Geneve, with the boards' descriptor
    fields in block RAM (``desc_ram="block"``, hw.core at <= 80 MHz)."""
    _run(4, ["plain", "geneve"], cases=["equal", "large_small", "ipid_switch"],
         testcase="matrix", desc_ram="block")


def test_desc_ram_checked():
    from hw.rsc import RscEngine
    from hw.rsc_ingress import RscIngress
    for cls in (RscEngine, RscIngress):
        with pytest.raises(ValueError, match="desc_ram must be"):
            cls(4, desc_ram="lutram")


@pytest.mark.long
@pytest.mark.parametrize("preset", ["gre-key", "gre-cks", "nvgre", "vxlan", "vxlan-csum",
                                    "geneve", "private-udp"])
def test_matrix_preset(preset):
    _run(8, [preset], testcase="matrix")


def test_chain_w8():
    """HeaderParser + RSC engine: the RX path from raw frames (no model record as input)."""
    _run(8, ["plain", "vxlan-csum"], cases=["equal", "bad_tcp_csum"], testcase="matrix",
         chain=True)


def test_mix_w8():
    """A short random mix (plain TCP and VXLAN with checksum) at W=8."""
    _run(8, ["plain", "vxlan-csum"], testcase="mix", count=60, seed=3)


@pytest.mark.long
@pytest.mark.parametrize("width", [8, 4])
def test_mix_long(width):
    _run(width, ["plain", "gre-key", "nvgre", "vxlan", "vxlan-csum", "geneve", "private-udp"],
         testcase="mix", count=600, seed=11)
