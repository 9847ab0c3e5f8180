"""EthMac behind the behavioural RGMII adapter, against cocotbext-eth's RgmiiPhy at 1 Gb/s.

Checks the RGMII nibble order and the control encoding (DV on the rising edge, DV^ER on the
falling edge) both ways. The PHY model drives ``rx_clk``; the bench forwards ``eth_tx`` to the
PHY's TX clock input 2 ns late, as the adapter's DELAYG would.
"""

import hashlib
import random
from pathlib import Path

import cocotb

from tunnelnic.rtlsim.runner import params

_SRC = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]


def make_dut(width):
    from amaranth import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.mac import MAC_STATS, EthMac
    from hw.rgmii import RgmiiModelAdapter
    from hw.stream import PacketSignature

    class Top(wiring.Component):
        def __init__(self):
            super().__init__({
                "o": Out(PacketSignature(width)), "i": In(PacketSignature(width)),
                "stats": Out(MAC_STATS.size),
                "rx_clk": In(1), "rx_ctl": In(1), "rxd": In(4),
                "tx_clk": Out(1), "tx_ctl": Out(1), "txd": Out(4), "tx_clk_dly": In(1),
            })

        def elaborate(self, platform):
            m = Module()
            m.submodules.mac = mac = EthMac(width)
            m.submodules.phy = phy = RgmiiModelAdapter()
            wiring.connect(m, phy.gmii, mac.gmii)
            wiring.connect(m, mac.rx, wiring.flipped(self.o))
            wiring.connect(m, wiring.flipped(self.i), mac.tx)
            m.d.comb += [
                self.stats.eq(mac.stats.as_value()),
                phy.rx_clk.eq(self.rx_clk), phy.rx_ctl.eq(self.rx_ctl), phy.rxd.eq(self.rxd),
                self.tx_clk.eq(phy.tx_clk), self.tx_ctl.eq(phy.tx_ctl), self.txd.eq(phy.txd),
            ]
            return m

    return Top()


@cocotb.test()
async def rgmii_both_ways(dut):
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, Timer
    from cocotbext.eth import GmiiFrame, RgmiiPhy

    from tunnelnic.rtlsim.bench import StreamBench, frame_bytes
    p = params()
    dut.eth_tx_rst.value = 1
    cocotb.start_soon(Clock(dut.eth_tx_clk, 8, unit="ns").start())
    bench = StreamBench(dut, seed=p["seed"], period_ns=7)
    phy = RgmiiPhy(dut.txd, dut.tx_ctl, dut.tx_clk_dly, dut.rxd, dut.rx_ctl, dut.rx_clk,
                   dut.eth_tx_rst, speed=1000e6)
    await Timer(2, unit="ns")
    cocotb.start_soon(Clock(dut.tx_clk_dly, 8, unit="ns").start())
    await ClockCycles(dut.eth_tx_clk, 8)
    dut.eth_tx_rst.value = 0
    await bench.reset()
    await ClockCycles(dut.eth_tx_clk, 8)

    counts = {"rx_good": 0, "rx_fcs_error": 0, "rx_runt": 0, "tx_frame": 0}
    names = ["rx_good", "rx_fcs_error", "rx_runt", "rx_oversize", "rx_phy_error",
             "rx_preamble_error", "rx_fifo_drop", "tx_frame", "tx_oversize", "tx_underrun"]

    async def count():
        from cocotb.triggers import RisingEdge
        while True:
            await RisingEdge(dut.clk)
            v = int(dut.stats.value)
            for k, name in enumerate(names):
                if v >> k & 1:
                    counts[name] = counts.get(name, 0) + 1
    cocotb.start_soon(count())

    rng = random.Random(p["seed"])
    good = [bytes(rng.randrange(256) for _ in range(n)) for n in (60, 61, 64, 333, 1000, 1514)]
    for k, pkt in enumerate(good):
        await phy.rx.send(GmiiFrame.from_payload(pkt))
        if k == 2:
            bad = GmiiFrame.from_payload(bytes(100))
            bad.data[-1] ^= 0x80
            await phy.rx.send(bad)
            await phy.rx.send(GmiiFrame.from_payload(bytes(20), min_len=0))
    for k, pkt in enumerate(good):
        got = frame_bytes(await bench.recv(timeout_cycles=100000))
        assert got == pkt, f"RGMII RX frame {k} differs"

    sent = [bytes(rng.randrange(256) for _ in range(n)) for n in (1, 59, 60, 200, 1514)]
    for pkt in sent:
        await bench.send(pkt)
    for k, pkt in enumerate(sent):
        f = await phy.tx.recv()
        assert f.error is None and f.check_fcs(), f"RGMII TX frame {k}: error or bad FCS"
        assert bytes(f.get_payload()) == pkt + bytes(max(0, 60 - len(pkt))), \
            f"RGMII TX frame {k} differs"
    await ClockCycles(dut.clk, 300)
    assert counts["rx_good"] == len(good)
    assert counts["rx_fcs_error"] == 1 and counts["rx_runt"] == 1
    assert counts["tx_frame"] == len(sent)


def test_rgmii():
    from sim.test_mac import run_icarus_safe
    run_icarus_safe(lambda: make_dut(8), {"width": 8, "seed": 5, "src": _SRC},
                    "sim.test_rgmii", name="rgmii-8")
