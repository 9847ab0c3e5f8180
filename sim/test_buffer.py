"""Stream buffers under random stalls: every beat arrives, in order, unchanged."""

import random

import cocotb
import pytest

from tunnelnic.rtlsim.runner import params, run


def make_dut(kind, width):
    from hw.buffer import SkidBuffer, StreamFifo
    from hw.stream import packet_layout
    layout = packet_layout(width, meta=16)
    return SkidBuffer(layout) if kind == "skid" else StreamFifo(layout, depth=16)


@cocotb.test()
async def run_random_packets(dut):
    from tunnelnic.rtlsim.bench import StreamBench, frame_bytes, frame_meta
    p = params()
    tb = StreamBench(dut, seed=p["seed"])
    await tb.reset()
    rng = random.Random(p["seed"])
    sent = [(bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))), rng.randrange(1 << 16))
            for _ in range(60)]
    for pkt, meta in sent:
        await tb.send(pkt, meta)
    for pkt, meta in sent:
        frame = await tb.recv(timeout_cycles=20000)
        assert frame_bytes(frame) == pkt
        assert frame_meta(frame) == meta


@pytest.mark.parametrize("kind", ["skid", "fifo"])
@pytest.mark.parametrize("width", [8, 4])
def test_buffer(kind, width):
    run(lambda: make_dut(kind, width), {"kind": kind, "width": width, "seed": width},
        "sim.test_buffer", name=f"buffer-{kind}")
