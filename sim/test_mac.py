"""EthMac against cocotbext-eth's GMII models (a MAC written by someone else checking ours).

Three unrelated clocks: the core ``sync`` clock (W-byte streams, random valid pauses and ready
backpressure), ``eth_rx`` (GmiiSource drives the PHY side) and ``eth_tx`` (GmiiSink listens).
Frames are random bytes; the oracle is zlib's CRC-32 inside cocotbext-eth and plain Python
lists of what was sent. Counters are the MAC's ``stats`` pulses, summed by the bench.
"""

import hashlib
import random
from pathlib import Path

import cocotb
import pytest

from tunnelnic.rtlsim.runner import params, run

_SRC = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]


def icarus_safe_verilog(dut, name="top"):
    """Like :func:`tunnelnic.rtlsim.wrapper.to_verilog`, but Icarus-safe for the MAC.

    The harness turns ``always @*`` into ``always_comb`` (Icarus skips ``always @*`` at time
    0). With ``always_comb``, two comb processes that read each other's vectors (and write a
    default before the real value, as Amaranth's output always does) re-trigger each other
    forever at zero delay: MacRx alone spun for minutes on 2500 cycles. Instead keep
    ``always @*`` and fix the time-0 problem where it comes from: Yosys makes every such
    block read a ``dump_module`` trigger register meant to fire once at time 0; Icarus ignores
    its declaration initializer, so set it again after a ``#0``.
    """
    import re

    from amaranth.back import verilog

    from tunnelnic.rtlsim.wrapper import AxisTop
    top = AxisTop(dut)
    text = verilog.convert(top, name=name, ports=top.ports(), emit_src=False)
    return re.sub(r"(reg (\\\S+dump_module\$\d+) += 0;)",
                  lambda m: m.group(1) + "\n  initial #0 " + m.group(2) + " = 1'h1;", text)


def run_icarus_safe(make_dut, params, test_module, **kwargs):
    """:func:`tunnelnic.rtlsim.runner.run` with :func:`icarus_safe_verilog` as converter."""
    from tunnelnic.rtlsim import runner
    saved = runner.to_verilog
    runner.to_verilog = icarus_safe_verilog
    try:
        return run(make_dut, {**params, "verilog": "always@*+kick"}, test_module, **kwargs)
    finally:
        runner.to_verilog = saved

STAT_NAMES = ["rx_good", "rx_fcs_error", "rx_runt", "rx_oversize", "rx_phy_error",
              "rx_preamble_error", "rx_fifo_drop", "tx_frame", "tx_oversize", "tx_underrun"]


def make_dut(width, max_frame):
    from amaranth import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.mac import MAC_STATS, EthMac, GmiiSignature
    from hw.stream import PacketSignature

    assert list(MAC_STATS.members) == STAT_NAMES

    class MacTop(wiring.Component):
        """EthMac with ``rx``/``tx`` renamed ``o``/``i`` and stats/status as plain vectors."""

        def __init__(self):
            super().__init__({"gmii": Out(GmiiSignature()), "o": Out(PacketSignature(width)),
                              "i": In(PacketSignature(width)),
                              "stats": Out(MAC_STATS.size), "status": Out(4)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.mac = mac = EthMac(width, max_frame)
            wiring.connect(m, wiring.flipped(self.gmii), mac.gmii)
            wiring.connect(m, mac.rx, wiring.flipped(self.o))
            wiring.connect(m, wiring.flipped(self.i), mac.tx)
            m.d.comb += [self.stats.eq(mac.stats.as_value()),
                         self.status.eq(mac.status.as_value())]
            return m

    return MacTop()


class TB:
    """Clocks, resets, GMII models, the core-side stream bench and the stats counters."""

    def __init__(self, dut, seed):
        from cocotb.clock import Clock
        from cocotbext.eth import GmiiSink, GmiiSource

        from tunnelnic.rtlsim.bench import StreamBench
        p = params()
        self.dut = dut
        self.p = p
        for rst in (dut.eth_rx_rst, dut.eth_tx_rst, dut.rst):
            rst.value = 1
        cocotb.start_soon(Clock(dut.eth_rx_clk, 8, unit="ns").start())
        cocotb.start_soon(Clock(dut.eth_tx_clk, 8050, unit="ps").start())
        self.bench = StreamBench(dut, seed=seed, period_ns=p["core_ns"])
        self.source = GmiiSource(dut.gmii__rxd, dut.gmii__rx_er, dut.gmii__rx_dv,
                                 dut.eth_rx_clk, dut.eth_rx_rst)
        self.sink = GmiiSink(dut.gmii__txd, dut.gmii__tx_er, dut.gmii__tx_en,
                             dut.eth_tx_clk, dut.eth_tx_rst)
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        self.gaps = []   # idle eth_tx cycles between consecutive frames
        # First 8 bytes of every TX frame, seen on the pins (GmiiSink drops the first byte
        # of each frame: it starts a frame on the first tx_en cycle without storing it).
        self.preambles = []

    async def reset(self):
        from cocotb.triggers import ClockCycles
        await ClockCycles(self.dut.eth_rx_clk, 4)
        self.dut.eth_rx_rst.value = 0
        self.dut.eth_tx_rst.value = 0
        await self.bench.reset()
        await ClockCycles(self.dut.eth_rx_clk, 4)
        cocotb.start_soon(self._count_stats())
        cocotb.start_soon(self._measure_ifg())

    async def _count_stats(self):
        from cocotb.triggers import RisingEdge
        clk = self.dut.clk
        while True:
            await RisingEdge(clk)
            v = int(self.dut.stats.value)
            if v:
                for k, name in enumerate(STAT_NAMES):
                    if v >> k & 1:
                        self.stats[name] += 1

    async def _measure_ifg(self):
        from cocotb.triggers import RisingEdge
        clk, en = self.dut.eth_tx_clk, self.dut.gmii__tx_en
        txd = self.dut.gmii__txd
        seen, idle, prev = False, 0, 0
        while True:
            await RisingEdge(clk)
            on = int(en.value)
            if on and not prev:
                if seen:
                    self.gaps.append(idle)
                self.preambles.append(bytearray())
            if on:
                seen, idle = True, 0
                if len(self.preambles[-1]) < 8:
                    self.preambles[-1].append(int(txd.value))
            else:
                idle += 1
            prev = on

    async def expect_rx(self, frames):
        from tunnelnic.rtlsim.bench import frame_bytes
        for k, pkt in enumerate(frames):
            got = frame_bytes(await self.bench.recv(timeout_cycles=200000))
            assert got == pkt, f"RX frame {k}: {len(got)} bytes received, {len(pkt)} expected"

    async def settle(self, cycles=400):
        await self.bench.cycles(cycles)


def _payload(rng, n):
    return bytes(rng.randrange(256) for _ in range(n))


def _rx_sizes(p):
    top = p["max_frame"] - 4
    sizes = list(range(60, 1515, p["step"])) + [1514]
    if top > 1514:
        sizes += [top]
    return sizes


@cocotb.test()
async def rx_sizes_and_bad_frames(dut):
    """Every size (with a step) back to back at line rate, bad frames mixed in: only the good
    ones arrive, whole, in order; every bad one is counted under its reason."""
    from cocotbext.eth import GmiiFrame
    p = params()
    tb = TB(dut, p["seed"])
    await tb.reset()
    rng = random.Random(p["seed"])
    top = p["max_frame"] - 4
    good, expect = [], dict.fromkeys(STAT_NAMES, 0)
    kinds = ["fcs", "runt", "oversize", "phy", "preamble"]
    for n in _rx_sizes(p) + [60] * 20:
        pkt = _payload(rng, n)
        await tb.source.send(GmiiFrame.from_payload(pkt))
        good.append(pkt)
        expect["rx_good"] += 1
        if rng.random() < 0.5:
            kind = rng.choice(kinds)
            if kind == "fcs":
                f = GmiiFrame.from_payload(_payload(rng, rng.randint(60, 600)))
                f.data[-1 - rng.randrange(4)] ^= 1 << rng.randrange(8)
                expect["rx_fcs_error"] += 1
            elif kind == "runt":
                f = GmiiFrame.from_payload(_payload(rng, rng.randint(0, 59)), min_len=0)
                expect["rx_runt"] += 1
            elif kind == "oversize":
                f = GmiiFrame.from_payload(_payload(rng, top + rng.choice([1, 2, 100])))
                expect["rx_oversize"] += 1
            elif kind == "phy":
                f = GmiiFrame.from_payload(_payload(rng, rng.randint(60, 300)))
                f.error = [0] * len(f.data)
                f.error[rng.randrange(8, len(f.data))] = 1
                expect["rx_phy_error"] += 1
            else:
                f = GmiiFrame.from_payload(_payload(rng, 100))
                f.data[3] = 0x00
                expect["rx_preamble_error"] += 1
            await tb.source.send(f)
    await tb.expect_rx(good)
    await tb.source.wait()
    await tb.settle()
    assert tb.bench.sink["m_axis"].empty(), "a bad frame was delivered"
    for name in STAT_NAMES:
        assert tb.stats[name] == expect[name], f"{name}: {tb.stats[name]} != {expect[name]}"

    # RGMII-style in-band status between frames: link up, 1000 Mb/s, full duplex.
    dut.gmii__rxd.value = 0b1101
    await tb.settle(20)
    assert int(dut.status.value) == 0b1101


@cocotb.test()
async def rx_overflow_drops_whole_frames(dut):
    """The core stops taking frames: whole frames are dropped and counted, never cut."""
    from cocotbext.eth import GmiiFrame

    from tunnelnic.rtlsim.bench import frame_bytes
    p = params()
    tb = TB(dut, p["seed"] + 1)
    await tb.reset()
    rng = random.Random(p["seed"] + 1)
    sink = tb.bench.sink["m_axis"]
    tb.bench.set_stalls(False)   # a pause generator would override sink.pause
    sink.pause = True
    # Well over what the RX FIFO (next power of two >= max_frame bytes) can hold.
    sent, total = [], 0
    while total < 3 * p["max_frame"] or len(sent) < 8:
        sent.append(_payload(rng, rng.randint(60, min(p["max_frame"] - 4, 900 * (1 + len(sent) % 3)))))
        total += len(sent[-1])
    for pkt in sent:
        await tb.source.send(GmiiFrame.from_payload(pkt))
    await tb.source.wait()
    await tb.settle(200)
    sink.pause = False
    got = []
    for _ in range(200):   # the FIFO drains at line rate: up to ~max_frame * 3 eth cycles
        await tb.settle(500)
        while not sink.empty():
            got.append(frame_bytes(sink.recv_nowait()))
        if len(got) >= tb.stats["rx_good"] and tb.bench.source["s_axis"].empty():
            break
    await tb.settle(500)
    while not sink.empty():
        got.append(frame_bytes(sink.recv_nowait()))
    # What arrived is a subsequence of what was sent, every frame whole.
    it = iter(sent)
    for pkt in got:
        assert any(pkt == s for s in it), "a frame arrived changed or out of order"
    assert tb.stats["rx_fifo_drop"] > 0, "the test did not overflow the FIFO"
    assert tb.stats["rx_good"] == len(got)
    assert tb.stats["rx_good"] + tb.stats["rx_fifo_drop"] == len(sent)


@cocotb.test()
async def tx_sizes_padding_fcs_ifg(dut):
    """Frames from 1 byte up go out with preamble, zero padding to 60, a correct FCS and
    exactly 12 idle bytes between back-to-back frames; an oversize frame is dropped whole."""
    p = params()
    tb = TB(dut, p["seed"] + 2)
    await tb.reset()
    rng = random.Random(p["seed"] + 2)
    top = p["max_frame"] - 4
    sizes = [1, 2, 17, 59] + _rx_sizes(p)
    sent = [_payload(rng, n) for n in sizes]
    # An oversize frame in the middle must vanish without disturbing its neighbours.
    sent_all = sent[:3] + [_payload(rng, top + 1)] + sent[3:]
    for pkt in sent_all:
        await tb.bench.send(pkt)
    for k, pkt in enumerate(sent):
        f = await tb.sink.recv()
        assert bytes(tb.preambles[k]) == b"\x55" * 7 + b"\xd5", f"TX frame {k}: preamble"
        assert f.error is None, f"TX frame {k}: tx_er asserted"
        assert f.check_fcs(), f"TX frame {k}: bad FCS"
        padded = pkt + bytes(max(0, 60 - len(pkt)))
        assert bytes(f.get_payload()) == padded, f"TX frame {k} of {len(pkt)} bytes differs"
    await tb.settle()
    assert tb.sink.empty()
    assert tb.stats["tx_frame"] == len(sent)
    assert tb.stats["tx_oversize"] == 1
    assert tb.stats["tx_underrun"] == 0
    assert len(tb.gaps) == len(sent) - 1
    assert min(tb.gaps) >= 12, f"inter-frame gap below 12 bytes: {min(tb.gaps)}"


@cocotb.test()
async def tx_line_rate(dut):
    """Queued frames leave back to back at line rate: every gap is exactly 12 idle bytes."""
    p = params()
    tb = TB(dut, p["seed"] + 3)
    await tb.reset()
    rng = random.Random(p["seed"] + 3)
    sent = [_payload(rng, n) for n in [60] * 16 + [300] * 6 + [1514] * 3]
    for pkt in sent:
        await tb.bench.send(pkt)
    for k, pkt in enumerate(sent):
        f = await tb.sink.recv()
        assert f.check_fcs() and bytes(f.get_payload()) == pkt, f"TX frame {k} differs"
    assert tb.gaps and all(g == 12 for g in tb.gaps), f"gaps {sorted(set(tb.gaps))}, not 12"


def _run(width, max_frame, step, testcase=None):
    run_icarus_safe(lambda: make_dut(width, max_frame),
        {"width": width, "max_frame": max_frame, "step": step, "seed": width,
         "core_ns": 7 if width == 8 else 6, "src": _SRC},
        "sim.test_mac", name=f"mac-{width}-{max_frame}-{step}", testcase=testcase)


@pytest.mark.parametrize("width", [8, 4])
def test_mac(width):
    _run(width, 1518, 97)


def test_mac_jumbo():
    _run(8, 9600, 487)


@pytest.mark.long
@pytest.mark.parametrize("width", [8, 4])
def test_mac_full_sweep(width):
    _run(width, 1518, 1)
