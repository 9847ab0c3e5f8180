"""Compares of a signal against a constant, built as plain logic.

yosys (``synth_ecp5``, its ``alumacc`` pass) maps every ``<``, ``<=``, ``>``, ``>=`` onto a carry
chain (``CCU2C`` cells, two TRELLIS_COMB each), even when one side is a constant. Against a
constant the answer is a small function of the signal's bits: these helpers build it as a
balanced tree of and/or terms (the top half decides unless it equals the constant's top half),
which ABC packs into LUT4s, a few levels deep, with no carry chain. Unsigned operands only.
"""

from amaranth import *

__all__ = ["lt_const", "le_const", "gt_const", "ge_const", "above"]


def _and(a, b):
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True:
        return a
    return a & b


def _or(a, b):
    if a is True or b is True:
        return True
    if a is False:
        return b
    if b is False:
        return a
    return a | b


def _lt_eq(bits, k):
    """``(bits < k, bits == k)`` for ``0 <= k < 2 ** len(bits)``; each a Value or a bool."""
    if len(bits) == 1:
        b = bits[0]
        return (~b, b) if k & 1 else (False, ~b)
    h = len(bits) // 2
    lt_lo, eq_lo = _lt_eq(bits[:h], k & ((1 << h) - 1))
    lt_hi, eq_hi = _lt_eq(bits[h:], k >> h)
    return _or(lt_hi, _and(eq_hi, lt_lo)), _and(eq_hi, eq_lo)


def _value(v):
    return Const(int(v), 1) if isinstance(v, bool) else v


def lt_const(x, k):
    """``x < k`` (``x`` an unsigned Value, ``k`` an int), as a 1-bit Value without a carry
    chain."""
    x = Value.cast(x)
    if x.shape().signed:
        raise TypeError("lt_const compares unsigned values only")
    k = int(k)
    if k <= 0:
        return Const(0, 1)
    if k >= 1 << len(x):
        return Const(1, 1)
    return _value(_lt_eq([x[i] for i in range(len(x))], k)[0])


def le_const(x, k):
    """``x <= k``."""
    return lt_const(x, int(k) + 1)


def gt_const(x, k):
    """``x > k``."""
    return ~le_const(x, k)


def ge_const(x, k):
    """``x >= k``."""
    return ~lt_const(x, k)


def above(x, n):
    """The thermometer ``Cat(x > k for k in range(n))``: bit ``k`` is set when ``x > k``."""
    return Cat(*(gt_const(x, k) for k in range(n)))
