"""Width converters and async FIFOs between two unrelated clocks, under random stalls.

The DUT is a loop: W-byte packets in ``sync`` -> AsyncStreamFifo -> StreamNarrower (1 byte per
beat) -> StreamWidener -> AsyncStreamFifo -> W-byte packets back in ``sync``; the narrow
middle runs in a second clock domain ``other`` with a period unrelated to ``sync``'s. Every
packet must come back unchanged, with its meta, in order.
"""

import hashlib
import random
from pathlib import Path

import cocotb
import pytest

from tunnelnic.rtlsim.runner import params, run

_SRC = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]


def make_dut(width):
    from amaranth import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.cdc import AsyncStreamFifo
    from hw.stream import PacketSignature, packet_layout
    from hw.width import StreamNarrower, StreamWidener

    class Loop(wiring.Component):
        def __init__(self):
            super().__init__({"i": In(PacketSignature(width, 16)),
                              "o": Out(PacketSignature(width, 16))})

        def elaborate(self, platform):
            from amaranth import DomainRenamer
            m = Module()
            layout = packet_layout(width, 16)
            m.submodules.a = a = AsyncStreamFifo(layout, 8, w_domain="sync", r_domain="other")
            m.submodules.n = n = DomainRenamer("other")(StreamNarrower(width, 16))
            m.submodules.w = w = DomainRenamer("other")(StreamWidener(width, 16))
            m.submodules.b = b = AsyncStreamFifo(layout, 8, w_domain="other", r_domain="sync")
            wiring.connect(m, wiring.flipped(self.i), a.i)
            wiring.connect(m, a.o, n.i)
            wiring.connect(m, n.o, w.i)
            wiring.connect(m, w.o, b.i)
            wiring.connect(m, b.o, wiring.flipped(self.o))
            return m

    return Loop()


@cocotb.test()
async def loop_random_packets(dut):
    from cocotb.clock import Clock

    from tunnelnic.rtlsim.bench import StreamBench, frame_bytes, frame_meta
    p = params()
    dut.other_rst.value = 1
    cocotb.start_soon(Clock(dut.other_clk, p["other_ns"], unit="ns").start())
    tb = StreamBench(dut, seed=p["seed"], period_ns=8)
    await tb.cycles(3)
    dut.other_rst.value = 0
    await tb.reset()
    rng = random.Random(p["seed"])
    sizes = [1, 2, 3, p["width"] - 1, p["width"], p["width"] + 1, 2 * p["width"], 64, 1514]
    sizes += [rng.randint(1, 300) for _ in range(50)]
    sent = [(bytes(rng.randrange(256) for _ in range(n)), rng.randrange(1 << 16)) for n in sizes]
    for pkt, meta in sent:
        await tb.send(pkt, meta)
    for pkt, meta in sent:
        frame = await tb.recv(timeout_cycles=50000)
        assert frame_bytes(frame) == pkt, f"packet of {len(pkt)} bytes came back changed"
        assert frame_meta(frame) == meta
        # The widener re-packs: every beat full except the last one.
        keeps = frame.tkeep
        if keeps is not None and len(keeps) > len(pkt):
            raise AssertionError("bytes with keep=0 inside a packet")
    assert tb.sink["m_axis"].empty()


@pytest.mark.parametrize("width", [8, 4])
def test_width_cdc_loop(width):
    # The narrow side's clock is unrelated to sync's 8 ns (and slower per byte than W bytes).
    from sim.test_mac import run_icarus_safe
    run_icarus_safe(lambda: make_dut(width),
        {"width": width, "seed": width + 1, "other_ns": 5.3, "src": _SRC},
        "sim.test_width", name=f"width-loop-{width}")
