"""TagCam and PagePool (amaranth.sim unit tests) against dict/set models."""

import random

import pytest
from amaranth.sim import Simulator

from hw.cam import TagCam
from hw.pool import PagePool


def _sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


async def _check_lookup(ctx, dut, rng, model, entries, write=None):
    """Look up a stored tag (or a random one): the match one cycle later, the hit, index and
    select two cycles later (a second lookup tag presented meanwhile must not disturb them),
    against ``model`` (index -> tag), with the free entry and the valid bits.

    ``write`` (optional) is applied in the lookup's own cycle, which the lookup must see:
    it is called with no arguments, sets the write and invalidate ports and updates
    ``model``; the ports are cleared after that cycle."""
    # (The tag is drawn from the entries before and after the write, so that both the
    # replaced entries and the written one are looked up.)
    tags = list(model.values())
    if write is not None:
        write()
    want_tag = rng.choice(tags + list(model.values()) + [rng.randrange(256)])
    hits = [i for i, t in model.items() if t == want_tag]
    free = [i for i in range(entries) if i not in model]
    ctx.set(dut.lookup_tag, want_tag)
    await ctx.tick()
    for port in (dut.we, dut.inv):
        ctx.set(port, 0)
    # Latency 1: the match vector.
    assert ctx.get(dut.match) == sum(1 << i for i in hits)
    ctx.set(dut.lookup_tag, rng.randrange(256))
    await ctx.tick()
    # Latency 2: the hit, its index and the owner's select (hit or a free entry).
    assert ctx.get(dut.hit) == bool(hits)
    assert ctx.get(dut.index) == (hits[0] if hits else 0)
    assert ctx.get(dut.sel) == bool(hits or free)
    assert ctx.get(dut.free_any) == bool(free)
    if free:
        assert ctx.get(dut.free_index) == free[0]
    assert ctx.get(dut.valid) == sum(1 << i for i in model)


@pytest.mark.parametrize("entries", [1, 5, 32])
def test_cam_random(entries):
    dut = TagCam(entries, tag_bits=8)
    rng = random.Random(entries)
    model = {}

    async def bench(ctx):
        for _ in range(400):
            # A write (or invalidate), never a second entry with a tag already present.
            if rng.random() < 0.5:
                idx = rng.randrange(entries)
                tag = rng.randrange(256)
                if rng.random() < 0.3 or any(t == tag for i, t in model.items() if i != idx):
                    ctx.set(dut.we, 1)
                    ctx.set(dut.w_index, idx)
                    ctx.set(dut.w_valid, 0)
                    model.pop(idx, None)
                else:
                    ctx.set(dut.we, 1)
                    ctx.set(dut.w_index, idx)
                    ctx.set(dut.w_tag, tag)
                    ctx.set(dut.w_valid, 1)
                    model[idx] = tag
                await ctx.tick()
                ctx.set(dut.we, 0)
            await _check_lookup(ctx, dut, rng, model, entries)

    _sim(dut, bench)


@pytest.mark.parametrize("entries", [1, 5, 32])
def test_cam_invalidate_port(entries):
    # Writes through ``we``, invalidates through ``inv`` (alone, or with a write in the same
    # cycle, to the same entry or another: a write to the same entry wins).
    dut = TagCam(entries, tag_bits=8)
    rng = random.Random(100 + entries)
    model = {}

    async def bench(ctx):
        for _ in range(400):
            wr = inv = None
            if rng.random() < 0.5:
                idx = rng.randrange(entries)
                tag = rng.randrange(256)
                if not any(t == tag for i, t in model.items() if i != idx):
                    wr = (idx, tag)
            if rng.random() < 0.4:
                inv = rng.randrange(entries)
            if wr is not None and inv is not None and wr[0] != inv and model.get(inv) == wr[1]:
                wr = None            # (the tag would be present twice for a cycle)

            def write(wr=wr, inv=inv):
                if inv is not None:
                    ctx.set(dut.inv, 1)
                    ctx.set(dut.inv_index, inv)
                    model.pop(inv, None)
                if wr is not None:
                    ctx.set(dut.we, 1)
                    ctx.set(dut.w_index, wr[0])
                    ctx.set(dut.w_tag, wr[1])
                    ctx.set(dut.w_valid, 1)
                    model[wr[0]] = wr[1]
            # Half the time the lookup is presented in the write's own cycle (the owner's
            # pattern: an open or a flush and the next packet's lookup together).
            if rng.random() < 0.5:
                await _check_lookup(ctx, dut, rng, model, entries, write)
            else:
                write()
                await ctx.tick()
                ctx.set(dut.we, 0)
                ctx.set(dut.inv, 0)
                await _check_lookup(ctx, dut, rng, model, entries)

    _sim(dut, bench)


@pytest.mark.parametrize("mark", [0, 1, 3, 8])
def test_pool_count_and_low(mark):
    # Allocations and returns at random, often in the same cycle (the count stays): the free
    # count and ``low`` every cycle against a set of pages in use, from reset on (during the
    # refill every page is counted as it is put back).
    dut = PagePool(width=8, pages=8, page_bytes=64, low_mark=mark)
    rng = random.Random(mark)

    async def bench(ctx):
        used = set()
        for cycle in range(600):
            free_now = min(cycle, 8) - len(used)
            assert ctx.get(dut.free_count) == free_now
            assert ctx.get(dut.low) == (free_now < mark)
            alloc = ctx.get(dut.alloc_ok) and rng.random() < 0.5
            give = cycle >= 8 and used and rng.random() < 0.5
            ctx.set(dut.alloc, alloc)
            ctx.set(dut.free, bool(give))
            if give:
                page = rng.choice(sorted(used))
                ctx.set(dut.free_page, page)
            if alloc:
                got = ctx.get(dut.alloc_page)
                assert got not in used
            await ctx.tick()
            if give:
                used.discard(page)
            if alloc:
                used.add(got)

    _sim(dut, bench)


@pytest.mark.parametrize("latency,bank_words", [(1, 1024), (2, 16), (2, 1024)])
def test_pool_alloc_free_and_data(latency, bank_words):
    # Latency 2 with 16-word banks: 4 banks of 2 pages each.
    dut = PagePool(width=8, pages=8, page_bytes=64, read_latency=latency, bank_words=bank_words,
                   low_mark=3)
    rng = random.Random(1)

    async def bench(ctx):
        used = {}
        # After reset the free list is refilled, one page per cycle.
        await ctx.tick().repeat(8)
        for step in range(300):
            ok = ctx.get(dut.alloc_ok)
            assert ok == (len(used) < 8)
            assert ctx.get(dut.free_count) == 8 - len(used)
            assert ctx.get(dut.low) == (8 - len(used) < 3)
            if ok and (rng.random() < 0.6 or not used):
                page = ctx.get(dut.alloc_page)
                assert page not in used and 0 <= page < 8
                word = rng.getrandbits(64)
                ctx.set(dut.alloc, 1)
                ctx.set(dut.w_en, 1)
                ctx.set(dut.w_page, page)
                ctx.set(dut.w_beat, 3)
                ctx.set(dut.w_data, word)
                await ctx.tick()
                ctx.set(dut.alloc, 0)
                ctx.set(dut.w_en, 0)
                used[page] = word
            elif used:
                page = rng.choice(list(used))
                ctx.set(dut.r_en, 1)
                ctx.set(dut.r_page, page)
                ctx.set(dut.r_beat, 3)
                ctx.set(dut.free, 1)
                ctx.set(dut.free_page, page)
                await ctx.tick()
                ctx.set(dut.r_en, 0)
                ctx.set(dut.free, 0)
                if latency == 2:
                    # Another read issued meanwhile does not disturb the first one's data.
                    ctx.set(dut.r_en, 1)
                    ctx.set(dut.r_page, rng.randrange(8))
                    await ctx.tick()
                    ctx.set(dut.r_en, 0)
                assert ctx.get(dut.r_data) == used.pop(page)
                await ctx.tick()     # a freed page is offered again after the list's latency

    _sim(dut, bench)


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_parameters_checked():
    with pytest.raises(ValueError):
        TagCam(0)
    with pytest.raises(ValueError):
        PagePool.check(8, pages=1, page_bytes=2048)
    with pytest.raises(ValueError):
        PagePool.check(8, pages=8, page_bytes=100)
    for mark in (-1, 9):
        with pytest.raises(ValueError, match="low_mark"):
            PagePool(8, pages=8, page_bytes=64, low_mark=mark)
    from hw.rsc import RscEngine
    with pytest.raises(ValueError):
        RscEngine(8, contexts=0)
    with pytest.raises(ValueError):
        RscEngine(8, pages=4)
    with pytest.raises(ValueError):
        RscEngine(6)
