"""hw.compare: constant compares as plain logic, against Python's operators (amaranth.sim)."""

import random

import pytest
from amaranth import *
from amaranth.sim import Simulator

from hw.compare import above, ge_const, gt_const, le_const, lt_const

OPS = {"lt": (lt_const, lambda a, b: a < b), "le": (le_const, lambda a, b: a <= b),
       "gt": (gt_const, lambda a, b: a > b), "ge": (ge_const, lambda a, b: a >= b)}


def _check(width, consts, values):
    m = Module()
    x = Signal(width)
    outs = {}
    for name, (fn, _) in OPS.items():
        for k in consts:
            o = Signal(name=f"{name}_{k}")
            m.d.comb += o.eq(fn(x, k))
            outs[name, k] = o
    th = Signal(min(width + 2, 70))
    m.d.comb += th.eq(above(x, len(th)))
    errors = []

    async def bench(ctx):
        for v in values:
            ctx.set(x, v)
            for (name, k), o in outs.items():
                if ctx.get(o) != OPS[name][1](v, k):
                    errors.append((name, v, k))
            t = ctx.get(th)
            if t != sum(1 << k for k in range(len(th)) if v > k):
                errors.append(("above", v, t))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not errors, errors[:10]


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 6])
def test_exhaustive(width):
    """Every value against every constant of the range (and just outside it)."""
    _check(width, range(-1, (1 << width) + 2), range(1 << width))


@pytest.mark.parametrize("width", [9, 16, 17, 32])
def test_random_wide(width):
    rng = random.Random(width)
    consts = [0, 1, (1 << width) - 1, 1 << width] + [rng.randrange(1 << width) for _ in range(12)]
    values = set(consts[:3]) | {c + d for c in consts for d in (-1, 1) if 0 <= c + d < 1 << width}
    values |= {rng.randrange(1 << width) for _ in range(200)}
    _check(width, consts, sorted(values))


def test_signed_rejected():
    with pytest.raises(TypeError):
        lt_const(Signal(signed(4)), 3)


@pytest.mark.parametrize("width", [1, 4, 8])
def test_region_lanes(width):
    """hw.capture.region_lanes: lane j of beat b is in [lo, hi) iff lo <= b * W + j < hi."""
    from hw.capture import region_lanes
    m = Module()
    beat, lo, hi = Signal(16), Signal(17), Signal(17)
    mask = Signal(width)
    m.d.comb += mask.eq(Cat(*region_lanes(m, width=width, start=lo, end=hi, beat=beat)))
    rng = random.Random(width)
    errors = []

    async def bench(ctx):
        for _ in range(1500):
            b = rng.randrange(1 << 16) if rng.random() < 0.1 else rng.randrange(40)
            base = b * width + rng.randrange(-2 * width, 2 * width)
            lv = min(max(base, 0), (1 << 17) - 1)
            hv = min(max(lv + rng.randrange(-2, 3 * width), 0), (1 << 17) - 1)
            ctx.set(beat, b)
            ctx.set(lo, lv)
            ctx.set(hi, hv)
            want = sum(1 << j for j in range(width) if lv <= b * width + j < hv)
            if ctx.get(mask) != want:
                errors.append((b, lv, hv, ctx.get(mask), want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not errors, errors[:10]
