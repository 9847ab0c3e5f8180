"""Register copies that synthesis keeps apart (register duplication).

A register whose output drives block RAMs spread over the die (an address, a read enable) can
be copied, one copy per group of them, so that each copy sits near its group. Yosys merges
flip-flops with the same input (``opt_merge``) unless the flip-flop cell is marked ``keep``:
the synthesis flow (``tunnelnic.synth``) marks every flip-flop that drives a signal with the
attribute :data:`DUP_ATTR`.
"""

from amaranth import Signal

__all__ = ["DUP_ATTR", "dup_signal"]

#: Attribute of a signal whose flip-flops the synthesis flow keeps (not merged with copies).
DUP_ATTR = "tn_dup"


def dup_signal(shape, name):
    """A register meant as one of several copies (no reset: every use follows a load)."""
    return Signal(shape, name=name, reset_less=True, attrs={DUP_ATTR: 1})
