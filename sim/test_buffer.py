"""Stream buffers under random stalls: every beat arrives, in order, unchanged."""

import random

import cocotb
import pytest

from tunnelnic.rtlsim.runner import params, run


def make_dut(kind, width):
    from hw.buffer import SkidBuffer, StreamFifo
    from hw.stream import packet_layout
    layout = packet_layout(width, meta=16)
    if kind == "skid":
        return SkidBuffer(layout)
    return StreamFifo(layout, depth=16, ram={"fifo": None, "block": "block"}[kind])


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


@pytest.mark.parametrize("kind", ["skid", "fifo", "block"])
@pytest.mark.parametrize("width", [8, 4])
def test_buffer(kind, width):
    run(lambda: make_dut(kind, width), {"kind": kind, "width": width, "seed": width},
        "sim.test_buffer", name=f"buffer-{kind}", testcase="run_random_packets")


@pytest.mark.parametrize("head", [False, True])
@pytest.mark.parametrize("slices", [1, 4, 8])
def test_reserved_fifo(head, slices):
    """ReservedFifo: order, ``level`` and ``r_rdy`` under random writes (within the reserved
    room) and random reads; with ``head`` the head register holds still while not read."""
    from amaranth.sim import Simulator
    from hw.buffer import ReservedFifo

    depth, width = 8, 12
    dut = ReservedFifo(width, depth, slices=slices, head=head)
    rng = random.Random(slices * 2 + head)
    got, sent = [], []

    async def bench(ctx):
        model = []          # entries stored, oldest first
        count = 0
        for _ in range(3000):
            # (Without the head register the memory holds depth - 1: see the docstring.)
            w = len(model) < depth - (not head) and rng.random() < 0.6
            r = rng.random() < 0.5
            data = rng.randrange(1 << width)
            ctx.set(dut.w_en, w)
            ctx.set(dut.w_data, data)
            ctx.set(dut.r_en, r)
            await ctx.delay(1e-9)
            assert ctx.get(dut.level) == len(model)
            rdy = ctx.get(dut.r_rdy)
            if rdy:
                assert model, "r_rdy with nothing stored"
                assert ctx.get(dut.r_data) == model[0]
            if r and rdy:
                got.append(model.pop(0))
            await ctx.tick()
            if w:
                model.append(data)
                sent.append(data)
                count += 1
        assert count > 1000 and len(got) > 1000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == sent[:len(got)]

