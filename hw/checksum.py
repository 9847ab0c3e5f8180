"""One's-complement (RFC 1071) checksum arithmetic, shared by the parser, TSO and RSC.

Conventions: a *sum* is the folded 16-bit one's-complement sum of big-endian 16-bit words; the
*checksum* placed in a header is its complement (``~sum``). Because datapath width W is even and
every packet starts on lane 0, lane ``2k`` of a beat is always the high byte of a 16-bit word.
A region that starts on an odd byte offset is summed as usual and its result byte-swapped
(:func:`swap16`), which is exact for one's-complement sums.

The wide-sum trick: adding many 16-bit words into a wider accumulator and folding once at the
end is exact, and keeps each cycle's adder short (DESIGN.md section 7: the per-beat fold is what
limits fmax, not the adds).
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .byteorder import lane
from .stream import check_width

__all__ = ["ones_add", "fold", "wide_sum", "swap16", "beat_words", "csum_update",
           "ChecksumAccumulator"]


def ones_add(a, b):
    """16-bit one's-complement addition (end-around carry), combinational."""
    s = Value.cast(a).as_unsigned() + Value.cast(b).as_unsigned()
    return (s[:16] + s[16:])[:16]


def fold(value):
    """Fold a wide unsigned sum of 16-bit words to a 16-bit one's-complement sum (combinational).

    Exact for any width: each round adds the high part back into the low 16 bits.
    """
    value = Value.cast(value).as_unsigned()
    while len(value) > 17:
        value = value[:16] + value[16:]
    if len(value) == 17:
        # Two end-around adds settle a 17-bit value: the first can carry only when the low
        # half was 0xFFFF, and then the second cannot.
        value = value[:16] + value[16]
        value = (value[:16] + value[16])[:16]
    return value


def wide_sum(values):
    """Balanced adder tree of unsigned values, widened so nothing is lost (fold afterwards)."""
    values = [Value.cast(v).as_unsigned() for v in values]
    if not values:
        return Const(0, 16)
    while len(values) > 1:
        pairs = []
        for i in range(0, len(values) - 1, 2):
            pairs.append(values[i] + values[i + 1])
        if len(values) % 2:
            pairs.append(values[-1])
        values = pairs
    return values[0]


def swap16(value):
    """Swap the two bytes of a 16-bit sum (for regions starting at odd byte offsets)."""
    value = Value.cast(value)
    return Cat(value[8:16], value[0:8])


def beat_words(data, mask, width):
    """The W/2 big-endian 16-bit words of a beat, each byte zeroed where ``mask`` is clear."""
    words = []
    for k in range(width // 2):
        hi = Mux(mask[2 * k], lane(data, 2 * k), 0)
        lo = Mux(mask[2 * k + 1], lane(data, 2 * k + 1), 0)
        words.append(Cat(lo, hi))
    return words


def csum_update(checksum, old, new):
    """Incremental checksum update for a 16-bit field changing ``old`` -> ``new`` (RFC 1624 eq. 3).

    ``checksum`` is the header's checksum field (already complemented); so is the result.
    """
    return ~ones_add(ones_add(~Value.cast(checksum)[:16], ~Value.cast(old)[:16]),
                     Value.cast(new)[:16])


class ChecksumAccumulator(wiring.Component):
    """Running one's-complement sum of selected bytes of a packet stream, one beat per cycle.

    Parameters
    ----------
    width : int
        Datapath width W in bytes.

    Ports
    -----
    i_valid, i_first, i_data, i_mask : in
        A beat to add: ``i_mask`` selects the lanes that belong to the summed region; ``i_first``
        starts a new sum with this beat (the previous sum is discarded).
    o_valid, o_sum : out
        ``o_sum`` is the folded sum of every beat since the last ``i_first`` up to and including
        the beat presented :attr:`LATENCY` cycles earlier; ``o_valid`` pulses with it.

    Latency 3 cycles (words -> partial sum -> accumulate -> fold), throughput 1 beat per cycle,
    no backpressure: the caller delays its own control by :attr:`LATENCY`. The 32-bit
    accumulator is exact for regions up to 128 KiB, beyond any IPv4 packet.
    """

    LATENCY = 3

    def __init__(self, width=8):
        self.width = check_width(width)
        super().__init__({
            "i_valid": In(1), "i_first": In(1),
            "i_data": In(8 * width), "i_mask": In(width),
            "o_valid": Out(1), "o_sum": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        part = Signal(16 + (self.width // 2).bit_length())
        part_valid = Signal()
        part_first = Signal()
        m.d.sync += [
            part.eq(wide_sum(beat_words(self.i_data, self.i_mask, self.width))),
            part_valid.eq(self.i_valid),
            part_first.eq(self.i_first),
        ]
        acc = Signal(32)
        acc_valid = Signal()
        with m.If(part_valid):
            m.d.sync += acc.eq(Mux(part_first, 0, acc) + part)
        m.d.sync += acc_valid.eq(part_valid)
        m.d.sync += [
            self.o_sum.eq(fold(acc)),
            self.o_valid.eq(acc_valid),
        ]
        return m
