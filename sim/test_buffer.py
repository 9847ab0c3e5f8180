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


# ---- ChunkedFifo (cocotb) ---------------------------------------------------------------

@cocotb.test()
async def chunked_fifo_random(dut):
    """ChunkedFifo under random writes (at most every ``chunks`` cycles, within ``depth``)
    and random reads: every entry in order and unchanged, ``level`` and ``r_rdy`` exact, the
    head steady while not read; then the limits its docstring states: latency ``chunks + 1``
    into an empty FIFO, and no bubble when writes and reads come every ``chunks`` cycles."""
    from cocotb.clock import Clock
    from cocotb.triggers import ReadOnly, RisingEdge
    p = params()
    width, depth, k = p["width"], p["depth"], p["chunks"]
    rng = random.Random(p["seed"])
    dut.rst.value = 1
    dut.w_en.value = 0
    dut.r_en.value = 0
    dut.w_data.value = 0
    cocotb.start_soon(Clock(dut.clk, 8, unit="ns").start())
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    model = []              # entries stored (head first)
    sent, got = [], []
    since_write = k         # cycles since the last w_en

    async def cycle(w, r, data):
        """Drive one cycle; check the outputs against the model; return whether read."""
        nonlocal since_write
        dut.w_en.value = int(w)
        dut.w_data.value = data
        dut.r_en.value = int(r)
        await ReadOnly()
        assert int(dut.level.value) == len(model), (int(dut.level.value), len(model))
        rdy = int(dut.r_rdy.value)
        if rdy:
            assert model, "r_rdy with nothing stored"
            assert int(dut.r_data.value) == model[0]
        read = bool(r and rdy)
        await RisingEdge(dut.clk)
        if read:
            got.append(model.pop(0))
        if w:
            model.append(data)
            sent.append(data)
            since_write = 0
        else:
            since_write += 1
        return read, rdy

    # Random phase: several write and read rates, including reads that come as soon as the
    # head is there (bursts of r_en) and writers that fill the FIFO to depth.
    for phase in range(8):
        pw = (0.3, 0.6, 0.9, 1.0)[phase % 4]
        pr = (0.2, 0.5, 0.9, 1.0, 0.05)[phase % 5]
        for _ in range(1500):
            w = since_write >= k and len(model) < depth and rng.random() < pw
            r = rng.random() < pr
            await cycle(w, r, rng.randrange(1 << width))
    # Drain.
    for _ in range(depth * (k + 2) + 10):
        await cycle(False, True, 0)
    assert not model and got == sent, "entries lost, reordered or changed"
    assert len(sent) > 1000

    # Latency into an empty FIFO: r_rdy chunks + 1 cycles after w_en.
    await cycle(True, False, 1)
    for n in range(1, k + 1):
        _, rdy = await cycle(False, False, 0)
        assert rdy == 0, f"head after {n} cycles, expected {k + 1}"
    _, rdy = await cycle(False, True, 0)
    assert rdy, f"no head {k + 1} cycles after the write"

    # Throughput: a write and a read every k cycles, once started, never miss a read.
    misses = 0
    for n in range(40 * k):
        w = n % k == 0 and len(model) < depth
        r = n > 4 * k and n % k == (k - 1) % k
        read, rdy = await cycle(w, r, rng.randrange(1 << width))
        misses += r and not rdy
    assert misses == 0, f"{misses} reads found no head"
    for _ in range(depth * (k + 2) + 10):
        await cycle(False, True, 0)
    assert not model and got == sent


@pytest.mark.parametrize("width,depth,chunks", [
    (37, 5, 4),     # a partial last chunk; the parser record queue's depth and chunks
    (24, 6, 3),
    (16, 9, 2),
    (12, 4, 1),
])
def test_chunked_fifo(width, depth, chunks):
    from hw.buffer import ChunkedFifo
    run(lambda: ChunkedFifo(width, depth, chunks=chunks),
        {"width": width, "depth": depth, "chunks": chunks, "seed": width + chunks},
        "sim.test_buffer", name=f"chunked-{width}-{depth}-{chunks}",
        testcase="chunked_fifo_random")


def test_chunked_fifo_params():
    from hw.buffer import ChunkedFifo
    for args, kw in [((0, 4), {"chunks": 1}), ((8, 1), {"chunks": 2}), ((8, 4), {"chunks": 0}),
                     ((8, 4), {"chunks": 9})]:
        with pytest.raises(ValueError):
            ChunkedFifo(*args, **kw)
    assert ChunkedFifo(1018, 5, chunks=4).mem_depth == 16
    assert ChunkedFifo(1018, 5, chunks=4).chunk_width == 255
