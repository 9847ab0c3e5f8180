"""Register replicas that survive synthesis, to split a high-fanout register into local copies.

yosys merges flip-flops of equal type, inputs and reset (``opt_merge``), and a ``keep``
attribute on the signal does not stop it, so plain copies of a register collapse into one
net again. Copies that differ in how they are built survive: the stored polarity (the copy
holds the inverse and its reader inverts again, which folds into the reader's LUT), the reset
(synchronous reset to 0 or 1, or none) and the clock enable. :func:`replicas` hands out up to
12 such variants of one registered value.

Only some variants are exact at every cycle. :func:`replicas` with ``enable`` returns copies
that equal ``value`` of the previous cycle whenever ``enable`` was high then, and are
otherwise unspecified (stale or reset): use them for values read only under that condition
(the data, first flag and offsets of a beat that is being taken). Without ``enable`` the
copies are exact after every cycle, reset included, which leaves two variants (the value and
its inverse, each reset to what makes the copy read 0).

With ``hold`` (and ``enable``) every copy is a register loaded with ``value`` when ``enable``
is high and holding otherwise, like ``with m.If(enable): reg.eq(value)``: up to six variants
(all with a clock enable). The first two reset to what reads 0; the others equal such a
register from its first load on (use them where the value is read only after a load).
"""

from amaranth import *

__all__ = ["replicas"]

#: (stored inverted, reset kind, clock enable) of each "data" variant, first the plain one;
#: the six without a clock enable first (an enable is one more load on its net).
_VARIANTS = [(inv, rst, ce) for ce in (False, True) for rst in ("r0", "none", "r1")
             for inv in (False, True)]


def replicas(m, value, count, *, name, enable=None, hold=False):
    """``count`` one-cycle-delayed copies of ``value``, each its own flip-flops after synthesis.

    With ``enable`` (a 1-bit value): the copies are only guaranteed in the cycle after
    ``enable`` was high (see the module doc); up to 12. Without: exact copies; up to 2
    (reset value 0 as read). Returns the copies as values of ``value``'s width, already
    re-inverted. With ``hold``: copies of a register loaded under ``enable``; up to 6.
    """
    value = Value.cast(value)
    width = len(value)
    if hold:
        if enable is None:
            raise ValueError("hold replicas need an enable")
        held = [v for v in _VARIANTS if v[2]]
        # The exact ones (reset reads 0) first.
        held.sort(key=lambda v: (v[1] != ("r1" if v[0] else "r0")))
        if not 1 <= count <= len(held):
            raise ValueError(f"hold replicas: 1..{len(held)}, not {count}")
        variants = held[:count]
    elif enable is None:
        if not 1 <= count <= 2:
            raise ValueError(f"exact replicas: 1 or 2, not {count}")
        variants = [(False, "r0", False), (True, "r1", False)][:count]
    else:
        if not 1 <= count <= len(_VARIANTS):
            raise ValueError(f"replicas: 1..{len(_VARIANTS)}, not {count}")
        variants = _VARIANTS[:count]
    out = []
    for n, (inv, rst, ce) in enumerate(variants):
        init = ((1 << width) - 1) if rst == "r1" else 0
        reg = Signal(width, name=f"{name}_rep{n}", init=init, reset_less=(rst == "none"))
        d = ~value if inv else value
        if ce:
            with m.If(enable):
                m.d.sync += reg.eq(d)
        else:
            m.d.sync += reg.eq(d)
        out.append(~reg if inv else reg)
    return out
