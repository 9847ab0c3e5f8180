"""hw.counter_bank.CounterBank against a plain Python count per counter: events every cycle on
many counters (1-bit and 5-bit increments), random reads as close as the bank allows (reads
racing the sweep and their own increments), saturation at all-ones, reset with stale RAM, and
the pre-counter width check."""

import random
from collections import deque

import pytest
from amaranth import Module, ResetInserter, Signal
from amaranth.sim import Simulator

from hw.counter_bank import CounterBank, drain_interval, pre_counter_width

MAX = 0xFFFF_FFFF


def run_bank(incrwidths, cycles, *, seed, read_spacing=2, p_read=0.7, p_event=0.6,
             preset=None, reset_at=()):
    """Drive ``cycles`` cycles of random events and reads; every read is checked against the
    model when it answers. ``preset``: a value written into every RAM word after the first
    sweep (in a quiet start, twice, so no slot in flight overwrites it). ``reset_at``: cycles
    in which the bank is held in reset. Returns the number of reads checked."""
    rng = random.Random(seed)
    bank = CounterBank(incrwidths, read_spacing=read_spacing)
    rst = Signal()
    m = Module()
    m.submodules.bank = ResetInserter(rst)(bank)
    n = len(incrwidths)
    acc = [0] * n
    checked = 0

    async def bench(ctx):
        nonlocal checked
        pending = deque()          # (cycle the answer is due, expected value)
        last_read = -read_spacing
        quiet = set()
        if preset is not None:
            quiet = set(range(n + 12))     # no events or reads before the preset
        drain = 0                  # after ``cycles``: events off, every counter read once more
        cyc = 0
        while drain < n or pending:
            in_reset = cyc in reset_at
            tail = cyc >= cycles
            incs = [0] * n
            if cyc not in quiet and not tail:
                for k, w in enumerate(incrwidths):
                    if rng.random() < p_event:
                        incs[k] = rng.choice([1, (1 << w) - 1, rng.randrange(1 << w)])
            read = (not in_reset and cyc not in quiet and cyc - last_read >= read_spacing
                    and (rng.random() < p_read if not tail else drain < n))
            k = rng.randrange(n) if not tail else drain
            drain += read and tail
            for i, v in enumerate(incs):
                ctx.set(bank.inc[f"c{i}"], v)
            ctx.set(bank.rd_stb, read)
            ctx.set(bank.rd_idx, k)
            ctx.set(rst, in_reset)
            if preset is not None and cyc in (n + 5, n + 8):
                for i in range(n):
                    ctx.set(bank.counts[i], preset)
                acc[:] = [preset] * n
            # The answer of a read issued LATENCY cycles ago.
            valid = ctx.get(bank.rd_valid)
            if pending and pending[0][0] == cyc:
                assert valid, f"cycle {cyc}: no answer"
                assert ctx.get(bank.rd_data) == pending.popleft()[1], f"cycle {cyc}"
                checked += 1
            else:
                assert not valid or in_reset or cyc - 1 in reset_at, f"cycle {cyc}: stray answer"
            if in_reset:
                acc[:] = [0] * n
                pending.clear()
            else:
                if read:
                    last_read = cyc
                    pending.append((cyc + CounterBank.LATENCY, min(acc[k], MAX)))
                    acc[k] = 0
                for i, v in enumerate(incs):
                    acc[i] += v
            cyc += 1
            await ctx.tick()
        assert acc == [0] * n

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return checked


def widths(n1, n5):
    w = [1] * n1 + [5] * n5
    random.Random(n1 * 31 + n5).shuffle(w)
    return w


def test_bank_loses_nothing_under_reads_every_other_cycle():
    assert run_bank(widths(24, 8), 4000, seed=1, read_spacing=2, p_read=0.9) > 1000


def test_bank_reads_racing_every_event_at_full_rate():
    # Every counter counts every cycle at its widest increment, between sparse reads: the
    # pre-counters see their worst case.
    assert run_bank(widths(6, 4), 3000, seed=2, read_spacing=3, p_event=1.0, p_read=0.5) > 300


def test_bank_single_counter_and_small_banks():
    for n, seed in ((1, 3), (2, 4), (3, 5)):
        assert run_bank([1] * (n - 1) + [5], 600, seed=seed, p_read=0.6) > 50


def test_bank_saturates_at_all_ones():
    assert run_bank(widths(6, 6), 800, seed=6, preset=0xFFFF_FF00, p_read=0.3) > 100


def test_bank_reset_with_stale_ram():
    # Reset twice mid-run: the RAM keeps its words, the first sweep after reset ignores them.
    assert run_bank(widths(10, 4), 1500, seed=7, reset_at={400, 401, 402, 900}) > 300


def test_pre_counter_width_check():
    assert drain_interval(100, 2) == 100 + 102
    assert pre_counter_width(1, 100, 2) == 8
    assert pre_counter_width(5, 100, 2) == 13
    assert pre_counter_width(5, 100, 2, width=13) == 13
    with pytest.raises(ValueError, match="needs 13 bits"):
        pre_counter_width(5, 100, 2, width=12)
    with pytest.raises(ValueError, match="pre-counter"):
        CounterBank([1] * 300, pre_widths=[8] * 300)
    with pytest.raises(ValueError, match="2 cycles apart"):
        CounterBank([1, 1], read_spacing=1)
    with pytest.raises(ValueError, match="at least one counter"):
        CounterBank([])
