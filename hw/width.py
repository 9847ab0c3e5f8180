"""Packet stream width converters between the MAC's 1-byte beats and the core's W-byte beats.

Both follow the convention of :mod:`hw.stream` (``data``/``keep``/``last`` and an optional
per-packet ``meta``, carried through unchanged). Packets must hold at least one byte (a beat
with ``keep == 0`` is treated as if lane 0 were valid).
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .stream import PacketSignature, check_width

__all__ = ["byte_layout", "ByteSignature", "StreamWidener", "StreamNarrower"]


def byte_layout(meta=None):
    """:func:`hw.stream.packet_layout` for 1 byte per beat (the MAC side; ``keep`` is always 1).

    ``hw.stream.check_width`` admits only the core widths, so the 1-byte layout lives here.
    """
    fields = {"data": 8, "keep": 1, "last": 1}
    if meta is not None:
        fields["meta"] = meta
    return data.StructLayout(fields)


def ByteSignature(meta=None):
    """A stream signature of :func:`byte_layout` payloads."""
    return stream.Signature(byte_layout(meta))


class StreamWidener(wiring.Component):
    """1-byte packet stream ``i`` to ``width``-byte packet stream ``o``.

    Bytes are packed from lane 0 up; a beat leaves when ``width`` bytes are gathered or the
    packet ends (then partial, ``keep`` contiguous from lane 0). ``meta`` is taken from the
    input beat that completes the output beat (constant per packet, so any beat will do).

    Latency: 1 cycle after the completing byte. Throughput: 1 input byte per cycle while
    ``o`` is not stalled. Backpressure: ``i.ready`` is low only while a completed output beat
    waits for ``o.ready``. Reset: drops any partly gathered beat.
    """

    def __init__(self, width, meta=None):
        self.width = check_width(width)
        self.meta = meta
        super().__init__({
            "i": In(ByteSignature(meta)),
            "o": Out(PacketSignature(width, meta)),
        })

    def elaborate(self, platform):
        # Whole-signal assignments only (no field/slice targets under conditions): Icarus
        # loops forever on always_comb blocks that assign slices of a signal.
        m = Module()
        w = self.width
        acc = Signal(8 * (w - 1))          # lanes 0..w-2 gathered so far
        cnt = Signal(range(w))              # next lane to fill
        byte = self.i.p.data

        out_free = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(out_free)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        old = [acc.word_select(k, 8) for k in range(w - 1)]
        gathered = Cat(*(Mux(cnt == k, byte, old[k]) for k in range(w - 1)))
        lanes = [Mux(cnt > k, old[k], Mux(cnt == k, byte, 0)) for k in range(w - 1)]
        lanes.append(Mux(cnt == w - 1, byte, 0))
        keep = Cat(*(cnt >= k for k in range(w)))
        fields = [Cat(*lanes), keep, self.i.p.last]
        if self.meta is not None:
            fields.append(self.i.p.meta)
        beat = Cat(*fields)

        with m.If(self.i.valid & self.i.ready):
            with m.If(self.i.p.last | (cnt == w - 1)):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(beat), cnt.eq(0)]
            with m.Else():
                m.d.sync += [acc.eq(gathered), cnt.eq(cnt + 1)]
        return m


class StreamNarrower(wiring.Component):
    """``width``-byte packet stream ``i`` to 1-byte packet stream ``o``.

    Each input beat is held in a shift register and sent lane by lane, lane 0 first, up to its
    last ``keep`` lane; ``last`` is set on the final byte of the packet. The output byte is
    the register's low byte (shifted down one lane per byte sent), so ``o`` comes from
    flip-flops with no lane multiplexer in front of the consumer (the transmit CRC).

    Latency: 1 cycle. Throughput: 1 output byte per cycle (the next input beat is taken in the
    cycle its predecessor's final byte leaves). Backpressure: ``i.ready`` is high when the
    register is empty or its final byte is being taken. Reset: drops the held beat.
    """

    def __init__(self, width, meta=None):
        self.width = check_width(width)
        self.meta = meta
        super().__init__({
            "i": In(PacketSignature(width, meta)),
            "o": Out(ByteSignature(meta)),
        })

    def elaborate(self, platform):
        # Whole-signal assignments only (see StreamWidener).
        m = Module()
        w = self.width
        data = Signal(8 * w)   # lane 0 (the byte on o) in the low byte
        keep = Signal(w)       # keep[k]: lane k of data is still to be sent
        last = Signal()
        full = Signal()

        # The final byte of the held beat: the next lane is not kept.
        final = ~keep[1]

        meta = Signal(self.meta) if self.meta is not None else None
        fields = [data[:8], C(1, 1), last & final]
        if meta is not None:
            fields.append(meta)
        m.d.comb += [
            self.o.valid.eq(full),
            self.o.payload.eq(Cat(*fields)),
            self.i.ready.eq(~full | (self.o.ready & final)),
        ]
        with m.If(self.o.valid & self.o.ready):
            with m.If(final):
                m.d.sync += full.eq(0)
            with m.Else():
                m.d.sync += [data.eq(data >> 8), keep.eq(keep >> 1)]
        with m.If(self.i.valid & self.i.ready):
            # keep is contiguous from lane 0; a beat with keep == 0 sends lane 0 only.
            m.d.sync += [full.eq(1), data.eq(self.i.p.data), keep.eq(self.i.p.keep | 1),
                         last.eq(self.i.p.last)]
            if meta is not None:
                m.d.sync += meta.eq(self.i.p.meta)
        return m
