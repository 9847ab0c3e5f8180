"""Parser + TSO chain (the TX path before the MAC): frames and requests in, segments out, equal
to the reference model's ``tso(frame, profiles)`` (which runs the parser model itself)."""

import os
import random

import cocotb
import pytest

from tunnelnic.rtlsim.runner import params, run


def make_chain(width):
    from amaranth import Module
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out

    from hw.buffer import SkidBuffer
    from hw.layouts import TsoRequest
    from hw.parser import HeaderParser
    from hw.profile import Profile
    from hw.stream import PacketSignature
    from hw.tso import TsoEngine
    from hw.tso_defs import tso_stats_layout

    class TxChain(wiring.Component):
        def __init__(self):
            super().__init__({
                "i": In(PacketSignature(width, TsoRequest)),
                "o": Out(PacketSignature(width)),
                "table": In(data.ArrayLayout(Profile, 8)),
                "enable": In(1), "mss_default": In(14),
                "stats": Out(tso_stats_layout(width)),
            })

        def elaborate(self, platform):
            m = Module()
            m.submodules.parser = parser = HeaderParser(width, user=TsoRequest)
            m.submodules.tso = tso = TsoEngine(width)
            # A register slice between the blocks, as the NIC core will have: the engine's
            # i.ready depends combinationally on its input beat (keep/last).
            m.submodules.slice = sl = SkidBuffer(parser.o.payload.shape())
            wiring.connect(m, wiring.flipped(self.i), parser.i)
            wiring.connect(m, parser.o, sl.i)
            wiring.connect(m, sl.o, tso.i)
            wiring.connect(m, tso.o, wiring.flipped(self.o))
            m.d.comb += [parser.table.eq(self.table), tso.enable.eq(self.enable),
                         tso.mss_default.eq(self.mss_default), self.stats.eq(tso.stats)]
            return m

    return TxChain()


@cocotb.test()
async def chain(dut):
    from amaranth.lib import data

    from hw.profile import Profile
    from tests.test_model_tso import make_frame
    from tunnelnic.model.tso import tso
    from tunnelnic.presets import preset
    from tunnelnic.rtlsim.bench import StreamBench, frame_bytes
    p = params()
    rng = random.Random(5)
    table = [preset(n) for n in ("gre-key", "gre-cks", "nvgre", "vxlan", "geneve",
                                 "private-udp")]
    dut.table.value = data.ArrayLayout(Profile, 8).const(table + [{}, {}]).as_bits()
    tb = StreamBench(dut, seed=p["seed"])
    dut.enable.value = 1
    dut.mss_default.value = 1448
    await tb.reset()
    cases = []
    for name in ("plain", "gre-key", "gre-cks", "nvgre", "vxlan", "geneve", "private-udp"):
        mss = rng.choice([536, 999, 1448])
        frame = make_frame(name, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))),
                           flags="FPA")
        cases.append((frame, mss))
    cases.append((make_frame("plain", b"abc"), 0))
    for frame, mss in cases:
        await tb.send(frame, 1 | (mss << 1))
    for frame, mss in cases:
        want, _ = tso(frame, table, mss=mss, default_mss=1448)
        for w in want:
            got = frame_bytes(await tb.recv(timeout_cycles=100000))
            assert got == w


@pytest.mark.parametrize("width", [8])
def test_tso_chain(width):
    run(lambda: make_chain(width), {"width": width, "seed": 2}, "sim.test_tso_chain",
        name=f"tso-chain-w{width}")
