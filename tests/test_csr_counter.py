"""hw.csr.read_clear_counter at 4 bits against a model: saturates at all-ones, a clear returns
the count before it, and an increment in the clear's cycle is counted afterwards (none lost)."""

import random

from amaranth import Module, Signal
from amaranth.sim import Simulator

from hw.csr import read_clear_counter


def test_read_clear_counter_loses_nothing_between_reads():
    """Random increments, a clear at least every 10 cycles (no saturation): the reads and the
    final count add up to the increments."""
    m = Module()
    inc, clear = Signal(), Signal()
    count = read_clear_counter(m, inc, clear, width=4)
    rng = random.Random(7)
    totals = []

    async def bench(ctx):
        read = sent = since = 0
        for _ in range(3000):
            i = int(rng.random() < 0.6)
            since += 1
            c = int(since >= 10 or rng.random() < 0.2)
            since = 0 if c else since
            ctx.set(inc, i)
            ctx.set(clear, c)
            value = ctx.get(count)
            assert value < 15
            read += value if c else 0
            sent += i
            await ctx.tick()
        ctx.set(inc, 0)
        ctx.set(clear, 0)
        await ctx.tick().repeat(2)
        totals.append((read + ctx.get(count), sent))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert totals[0][0] == totals[0][1]


def test_read_clear_counter_counts_the_clear_cycles_increment():
    m = Module()
    inc, clear = Signal(), Signal()
    count = read_clear_counter(m, inc, clear, width=4)
    seen = []

    async def bench(ctx):
        for _ in range(3):                  # count 3
            ctx.set(inc, 1)
            await ctx.tick()
        ctx.set(clear, 1)                   # read 3, with an increment in the same cycle
        seen.append(ctx.get(count))
        await ctx.tick()
        ctx.set(clear, 0)
        ctx.set(inc, 0)
        await ctx.tick().repeat(2)
        seen.append(ctx.get(count))         # the read's increment, not lost
        for _ in range(20):                 # saturate
            ctx.set(inc, 1)
            await ctx.tick()
        seen.append(ctx.get(count))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [3, 1, 15]
