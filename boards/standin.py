"""STAND-IN datapath for the board tops, until ``hw.mac`` and ``hw.core.NicCore`` are on main.

It proves what the board flow needs proven (PLL, clock domains, RGMII pins and DDR I/O, UART
pins, LEDs, timing of every clock, the bitstream) with the least logic that still exercises
those paths. It is NOT the NIC: no MAC, no parser, no offloads, no registers.

:class:`StandInRepeater` forwards received bytes (preamble to FCS, untouched) from one port's
receive domain to another port's transmit side through an async FIFO: a bump-in-the-wire
repeater. It waits for a few bytes before starting a frame to absorb the ppm difference between
the two clocks and drops (and counts) frames on overflow.
"""

from amaranth import *
from amaranth.lib import fifo
from amaranth.lib.cdc import PulseSynchronizer

__all__ = ["StandInRepeater", "Stretch"]


class StandInRepeater(Elaboratable):
    """Forward frames from ``src`` (a :class:`~boards.rgmii_pads.RgmiiPads`) receive side to ``dst`` transmit side.

    An async FIFO of 64 bytes; a frame starts on the transmit side once 8 bytes are queued (or
    the frame ended), so ppm drift never underruns mid-frame. A frame that overflows the FIFO is
    cut short with ``tx_en`` dropped; ``overflows`` counts them (in ``sync``).
    """

    def __init__(self, src, dst):
        self.src = src
        self.dst = dst
        self.rx_activity = Signal()
        self.tx_activity = Signal()
        self.overflows = Signal(16)

    def elaborate(self, platform):
        m = Module()
        rxd = self.src.rx_domain
        m.submodules.fifo = q = fifo.AsyncFIFO(width=9, depth=64, r_domain="sync", w_domain=rxd)
        # Write side: byte + end-of-frame marker, written on every rx byte and on the frame's end.
        prev_dv = Signal()
        m.d[rxd] += prev_dv.eq(self.src.rx_dv)
        m.d.comb += [
            q.w_en.eq(self.src.rx_dv | prev_dv),
            q.w_data.eq(Cat(self.src.rx_data, ~self.src.rx_dv)),
            self.rx_activity.eq(self.src.rx_dv),
        ]
        lost = Signal()
        m.d[rxd] += lost.eq(q.w_en & ~q.w_rdy)

        # Read side: idle until 8 bytes (or a whole short frame) are queued, then stream.
        sending = Signal()
        eof = q.r_data[8]
        m.d.comb += q.r_en.eq(sending | (q.r_rdy & eof))
        with m.If(~sending & q.r_rdy & ~eof & (q.r_level >= 8)):
            m.d.sync += sending.eq(1)
        with m.If(sending & (~q.r_rdy | eof)):
            m.d.sync += sending.eq(0)
        m.d.sync += [
            self.dst.tx_en.eq(sending & q.r_rdy & ~eof),
            self.dst.tx_data.eq(q.r_data[:8]),
        ]
        m.d.comb += self.tx_activity.eq(self.dst.tx_en)
        m.submodules.lost_sync = lost_sync = PulseSynchronizer(i_domain=rxd, o_domain="sync")
        m.d.comb += lost_sync.i.eq(lost)
        with m.If(lost_sync.o):
            m.d.sync += self.overflows.eq(self.overflows + 1)
        return m


class Stretch(Elaboratable):
    """``o`` stays high for ``2**bits`` ``sync`` cycles after ``i`` (a synchronous pulse)."""

    def __init__(self, bits=22):
        self.i = Signal()
        self.o = Signal()
        self._bits = bits

    def elaborate(self, platform):
        m = Module()
        count = Signal(self._bits)
        with m.If(self.i):
            m.d.sync += count.eq(~0)
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        m.d.comb += self.o.eq(count != 0)
        return m
