"""The board NIC's small blocks in amaranth.sim: FrameArbiter, InjectBuffer, CaptureBuffer.

Packets are plain bytes; the oracle is the list of what was sent. The arbiter's inputs pause at
random and its output is backpressured at random; packets must leave whole, unmixed, in order
per input, and neither input may starve.
"""

import random

import pytest
from amaranth.sim import Simulator

from hw.board_nic import CaptureBuffer, FrameArbiter, InjectBuffer

W = 4


def _beats(pkt, w=W):
    out = []
    for k in range(0, len(pkt), w):
        chunk = pkt[k:k + w]
        out.append((int.from_bytes(chunk.ljust(w, b"\0"), "little"), (1 << len(chunk)) - 1,
                    int(k + w >= len(pkt))))
    return out


def _unbeat(data, keep, w=W):
    n = bin(keep).count("1")
    return data.to_bytes(w, "little")[:n]


async def _send(ctx, port, packets, rng, meta=None):
    for pkt in packets:
        for data, keep, last in _beats(pkt):
            while rng.random() < 0.3:
                ctx.set(port.valid, 0)
                await ctx.tick()
            ctx.set(port.valid, 1)
            ctx.set(port.p.data, data)
            ctx.set(port.p.keep, keep)
            ctx.set(port.p.last, last)
            await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


async def _recv(ctx, port, count, rng, timeout=20000):
    packets, cur = [], b""
    for _ in range(timeout):
        ready = rng.random() > 0.3
        ctx.set(port.ready, ready)
        _, _, valid, data, keep, last = await ctx.tick().sample(
            port.valid, port.p.data, port.p.keep, port.p.last)
        if valid and ready:
            cur += _unbeat(data, keep)
            if last:
                packets.append(cur)
                cur = b""
                if len(packets) == count:
                    return packets
    raise AssertionError(f"only {len(packets)} of {count} packets left")


def test_frame_arbiter_whole_packets_both_inputs():
    rng = random.Random(1)
    dut = FrameArbiter(W)
    a = [bytes([0xA0 + i]) * rng.randrange(1, 40) for i in range(12)]
    b = [bytes([0xB0 + i]) * rng.randrange(1, 40) for i in range(12)]
    got = []

    async def tb(ctx):
        got.extend(await _recv(ctx, dut.o, len(a) + len(b), rng))

    async def src_a(ctx):
        await _send(ctx, dut.i0, a, random.Random(2))

    async def src_b(ctx):
        await _send(ctx, dut.i1, b, random.Random(3))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.add_testbench(src_a, background=True)
    sim.add_testbench(src_b, background=True)
    sim.run()
    assert [p for p in got if p[0] >> 4 == 0xA] == a
    assert [p for p in got if p[0] >> 4 == 0xB] == b
    # Taking turns: no more than one packet of one input while the other one waits.
    first_b = next(i for i, p in enumerate(got) if p[0] >> 4 == 0xB)
    assert first_b <= 2


def test_inject_buffer_sends_and_refuses():
    rng = random.Random(4)
    dut = InjectBuffer(W, 64)
    frames = [bytes(range(1, 1 + n)) for n in (1, 5, 64, 17)]
    got, refused = [], []

    async def tb(ctx):
        for frame in frames + [b"x" * 65, b""]:
            ctx.set(dut.rewind, 1)
            await ctx.tick()
            ctx.set(dut.rewind, 0)
            padded = frame + bytes(-len(frame) % 4)
            for k in range(0, min(len(padded), 64), 4):
                ctx.set(dut.w_data, int.from_bytes(padded[k:k + 4], "little"))
                ctx.set(dut.w_en, 1)
                await ctx.tick()
            ctx.set(dut.w_en, 0)
            ctx.set(dut.length, len(frame))
            ctx.set(dut.go, 1)
            _, _, ref = await ctx.tick().sample(dut.refused)
            refused.append(ref)
            ctx.set(dut.go, 0)
            if not ref:
                got.extend(await _recv(ctx, dut.o, 1, rng))
            assert not ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got == frames
    assert refused == [0, 0, 0, 0, 1, 1]   # too long for the buffer; length 0


@pytest.mark.parametrize("width", [4, 8])
def test_capture_buffer_whole_frames_until_full(width):
    dut = CaptureBuffer(width, 64, frames=3)
    frames = [bytes(range(n)) for n in (10, 20, 3)]
    late = bytes(range(40))   # after the buffer is full: missed, capture stops

    async def tap(ctx, pkt):
        for data, keep, last in _beats(pkt, width):
            ctx.set(dut.tap_valid, 1)
            ctx.set(dut.tap_payload.data, data)
            ctx.set(dut.tap_payload.keep, keep)
            ctx.set(dut.tap_payload.last, last)
            await ctx.tick()
            ctx.set(dut.tap_valid, 0)
            await ctx.tick()      # a gap inside the packet: the tap is not a stream

    async def tb(ctx):
        await tap(ctx, b"before arm")
        ctx.set(dut.arm, 1)
        await ctx.tick()
        ctx.set(dut.arm, 0)
        events = []
        for pkt in frames + [late, b"after"]:
            for data, keep, last in _beats(pkt, width):
                ctx.set(dut.tap_valid, 1)
                ctx.set(dut.tap_payload.data, data)
                ctx.set(dut.tap_payload.keep, keep)
                ctx.set(dut.tap_payload.last, last)
                _, _, cap, miss = await ctx.tick().sample(dut.captured, dut.missed)
                events.append((cap, miss))
            ctx.set(dut.tap_valid, 0)
            await ctx.tick()
        assert sum(c for c, _ in events) == 3 and sum(m for _, m in events) == 1
        assert ctx.get(dut.count) == 3 and not ctx.get(dut.armed)
        out = []
        for _ in range(3):
            n = ctx.get(dut.length)
            ctx.set(dut.length_next, 1)
            await ctx.tick()
            ctx.set(dut.length_next, 0)
            words = -(-n // width) * width // 4
            raw = b""
            for _ in range(words):
                await ctx.tick()
                await ctx.tick()
                raw += ctx.get(dut.data).to_bytes(4, "little")
                ctx.set(dut.data_next, 1)
                await ctx.tick()
                ctx.set(dut.data_next, 0)
            out.append(raw[:n])
        assert out == frames

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
